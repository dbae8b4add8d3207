//! The reference's per-pool behaviour tests (`test_pktmbuf_pool`,
//! `test_pktmbuf_pool_ptr`, `test_one_pktmbuf`, clone, copy, linearize,
//! bulk, read, ...), each a function of the pool it runs on, so that a
//! pinned pool passes exactly the tests a normal pool passes.
//!
//! Each function leaves `pool` (and `clone_pool`) full, and asserts it.

use std::mem::MaybeUninit;

use pktmem_mbuf::{AllocError, CloneError, CopyError, DataError, Mbuf, PktPool, Segment, HEADROOM};

use super::{
    assert_consistent, assert_fresh, assert_full, chain_of, mbuf_with, packet, pattern, snapshot,
};

/// The reference's `MBUF_TEST_DATA_LEN`, `..._LEN2`, `..._LEN3`.
const LEN: usize = 1464;
const LEN2: usize = 50;
const LEN3: usize = 256;
/// The reference's two header lengths.
const HDR1: usize = 20;
const HDR2: usize = 30;
/// An Ethernet header.
const ETH: usize = 14;

/// References to a segment's buffer as the reference's
/// `testclone_refcnt_read` counts them: the shared info's count for an
/// external (pinned) buffer, else the mbuf's own refcount.
pub fn refs(s: &Segment) -> u16 {
    s.ext_refcnt().unwrap_or_else(|| s.refcnt())
}

/// Takes every mbuf of the pool through the thread's default cache.
fn alloc_all(pool: &PktPool) -> Vec<Mbuf> {
    (0..pool.size())
        .map(|i| {
            pool.alloc_default()
                .unwrap_or_else(|e| panic!("mbuf {i} of {}: {e}", pool.size()))
        })
        .collect()
}

/// `test_pktmbuf_pool`: all `n` mbufs can be taken, then the pool is
/// exhausted (a typed error with the numbers, also for a clone), and every
/// one comes back. Run twice, as the reference does.
pub fn pool_exhaustion(pool: &PktPool) {
    for round in 0..2 {
        let ms = alloc_all(pool);
        assert_eq!(pool.in_use_count(), pool.size(), "round {round}");
        for m in &ms {
            assert_fresh(m);
        }
        assert_eq!(
            pool.alloc_default().unwrap_err(),
            AllocError::Exhausted {
                requested: 1,
                available: 0
            }
        );
        let mut cache = pool.cache();
        assert!(matches!(
            pool.alloc(&mut cache),
            Err(AllocError::Exhausted { requested: 1, .. })
        ));
        drop(cache);
        let expect = if pool.is_pinned() {
            CloneError::PinnedPool
        } else {
            CloneError::Exhausted {
                needed: 1,
                obtained: 0,
            }
        };
        assert_eq!(ms[0].clone_in(pool).unwrap_err(), expect);
        // The failed clone took no reference.
        assert_eq!(refs(&ms[0]), 1);
        let addrs: std::collections::HashSet<usize> =
            ms.iter().map(|m| m.buf_addr().as_ptr() as usize).collect();
        assert_eq!(addrs.len(), ms.len(), "every mbuf has its own buffer");
        drop(ms);
        assert_full(&[pool]);
    }
}

/// `test_pktmbuf_pool_ptr`: moving the data offset of every mbuf does not
/// survive a free: each comes back with the default headroom.
pub fn pool_ptr(pool: &PktPool) {
    let mut ms = alloc_all(pool);
    for m in &mut ms {
        m.append(64).unwrap();
        m.adj(64).unwrap();
        assert_eq!(m.headroom(), HEADROOM + 64);
        m.set_port(Some(3));
        m.set_vlan_tci(7);
        m.set_packet_type(0x11);
        m.set_ol_flags_bits(1);
    }
    drop(ms);
    let ms = alloc_all(pool);
    for m in &ms {
        assert_fresh(m);
        assert_eq!(m.headroom(), HEADROOM);
    }
    drop(ms);
    assert_full(&[pool]);
}

/// `test_one_pktmbuf`: append, trim, prepend, adj and their limits, with
/// the numbers in the errors; the mbuf unchanged on each error; the data
/// not corrupted. Run twice (allocation must reset what the first run did).
#[allow(clippy::too_many_lines)] // one reference test, step by step
pub fn one_pktmbuf(pool: &PktPool) {
    for _ in 0..2 {
        let mut m = pool.alloc_default().unwrap();
        assert_fresh(&m);
        let mut dump = String::new();
        m.dump(&mut dump, 0).unwrap();
        assert!(dump.contains("pkt_len=0"), "{dump}");

        let data = m.append(LEN).unwrap();
        data.fill(0x66);
        let data_addr = data.as_ptr() as usize;
        assert_eq!((m.pkt_len(), m.data_len(), m.nb_segs()), (LEN, LEN, 1));
        assert_consistent(&m);
        let mut dump = String::new();
        m.dump(&mut dump, 2 * LEN).unwrap();
        assert!(dump.contains(&format!("pkt_len={LEN}")) && dump.contains("66 66"));

        // Append past the tailroom: refused with both numbers, unchanged.
        let tailroom = m.tailroom();
        assert_eq!(tailroom, m.buf_len() - HEADROOM - LEN);
        let before = snapshot(&m);
        assert_eq!(
            m.append(tailroom + 1),
            Err(DataError::NoTailroom {
                len: tailroom + 1,
                tailroom
            })
        );
        assert_eq!(
            m.append(usize::MAX),
            Err(DataError::NoTailroom {
                len: usize::MAX,
                tailroom
            })
        );
        assert_eq!(snapshot(&m), before);

        m.append(LEN2).unwrap().fill(0x77);
        assert_eq!((m.pkt_len(), m.data_len()), (LEN + LEN2, LEN + LEN2));
        m.trim(LEN2).unwrap();
        assert_eq!((m.pkt_len(), m.data_len()), (LEN, LEN));

        // Trim past the data.
        let before = snapshot(&m);
        assert_eq!(
            m.trim(LEN + 1),
            Err(DataError::TooShort {
                len: LEN + 1,
                have: LEN
            })
        );
        assert_eq!(
            m.trim(usize::MAX),
            Err(DataError::TooShort {
                len: usize::MAX,
                have: LEN
            })
        );
        assert_eq!(snapshot(&m), before);

        // Two headers in front.
        let hdr = m.prepend(HDR1).unwrap();
        assert_eq!(data_addr - hdr.as_ptr() as usize, HDR1);
        hdr.fill(0x55);
        assert_eq!((m.pkt_len(), m.data_len()), (LEN + HDR1, LEN + HDR1));
        let hdr = m.prepend(HDR2).unwrap();
        assert_eq!(data_addr - hdr.as_ptr() as usize, HDR1 + HDR2);
        hdr.fill(0x55);
        assert_eq!(m.pkt_len(), LEN + HDR1 + HDR2);
        assert_eq!(m.headroom(), HEADROOM - HDR1 - HDR2);
        assert_consistent(&m);

        // Prepend past the headroom.
        let headroom = m.headroom();
        let before = snapshot(&m);
        assert_eq!(
            m.prepend(headroom + 1),
            Err(DataError::NoHeadroom {
                len: headroom + 1,
                headroom
            })
        );
        assert_eq!(
            m.prepend(usize::MAX),
            Err(DataError::NoHeadroom {
                len: usize::MAX,
                headroom
            })
        );
        assert_eq!(snapshot(&m), before);

        // Remove the headers.
        m.adj(HDR1 + HDR2).unwrap();
        assert_eq!(m.data().as_ptr() as usize, data_addr);
        assert_eq!((m.pkt_len(), m.data_len()), (LEN, LEN));
        let before = snapshot(&m);
        assert_eq!(
            m.adj(LEN + 1),
            Err(DataError::TooShort {
                len: LEN + 1,
                have: LEN
            })
        );
        assert_eq!(
            m.adj(usize::MAX),
            Err(DataError::TooShort {
                len: usize::MAX,
                have: LEN
            })
        );
        assert_eq!(snapshot(&m), before);

        assert!(m.data().iter().all(|&b| b == 0x66), "data corrupted");
        assert_consistent(&m);
        drop(m);
    }
    assert_full(&[pool]);
}

/// `test_pktmbuf_with_non_ascii_data`: bytes 0xff written and read back.
pub fn non_ascii_data(pool: &PktPool) {
    let mut m = pool.alloc_default().unwrap();
    m.append(LEN).unwrap().fill(0xff);
    assert_eq!((m.pkt_len(), m.data_len()), (LEN, LEN));
    assert_eq!(m.nb_segs(), 1);
    let mut tmp = vec![0; LEN];
    assert!(m.read(0, LEN, &mut tmp).unwrap().iter().all(|&b| b == 0xff));
    let mut dump = String::new();
    m.dump(&mut dump, LEN).unwrap();
    assert!(dump.contains("ff ff ff"));
    drop(m);
    assert_full(&[pool]);
}

/// `test_pktmbuf_free_segment`: chains freed one segment at a time, each
/// segment back in the pool as it goes.
pub fn free_segment(pool: &PktPool) {
    let n = pool.size();
    let per = 4;
    let mut chains: Vec<Mbuf> = Vec::new();
    for c in 0..n / per {
        let mut head = mbuf_with(pool, &[c as u8]);
        for s in 1..per {
            head.chain(mbuf_with(pool, &[(c + s) as u8])).unwrap();
        }
        assert_eq!((head.nb_segs(), head.pkt_len()), (per, per));
        chains.push(head);
    }
    let mut in_use = pool.in_use_count();
    assert_eq!(in_use, n / per * per);
    for (c, head) in chains.into_iter().enumerate() {
        let mut cur = Some(head);
        let mut left = per;
        while let Some(m) = cur {
            assert_eq!((m.nb_segs(), m.pkt_len()), (left, left));
            assert_eq!(m.data(), &[(c + per - left) as u8]);
            assert_consistent(&m);
            cur = m.free_first_segment();
            left -= 1;
            pool.mempool().flush_default_cache();
            in_use -= 1;
            assert_eq!(pool.in_use_count(), in_use);
        }
        assert_eq!(left, 0);
    }
    assert_full(&[pool]);
}

/// `testclone_testupdate_testdetach`: a clone (from `clone_pool`) of a
/// one-segment and of a two-segment packet sees the data, each segment's
/// references go up by one per clone, a clone of the clone points at the
/// same buffers, and dropping in any order brings the counts back.
pub fn clone_update_detach(pool: &PktPool, clone_pool: &PktPool) {
    const MAGIC: [u8; 4] = 0x4242_4242u32.to_ne_bytes();
    let mut m = mbuf_with(pool, &MAGIC);
    let c = m.clone_in(clone_pool).unwrap();
    assert_eq!(c.data(), MAGIC);
    assert_eq!(c.buf_addr(), m.buf_addr());
    assert_eq!(refs(&m), 2);
    assert!(c.is_indirect() || c.is_external());
    assert_consistent(&c);
    drop(c);
    assert_eq!(refs(&m), 1);

    // The same with a chain.
    m.chain(mbuf_with(pool, &MAGIC)).unwrap();
    assert_eq!((m.nb_segs(), m.pkt_len()), (2, 8));
    let c = m.clone_in(clone_pool).unwrap();
    assert_eq!((c.nb_segs(), c.pkt_len()), (2, 8));
    assert_consistent(&c);
    let segs: Vec<&[u8]> = c.segments().map(Segment::data).collect();
    assert_eq!(segs, [MAGIC, MAGIC]);
    for s in m.segments() {
        assert_eq!(refs(s), 2);
    }
    let c2 = c.clone_in(clone_pool).unwrap();
    assert_eq!(c2.to_vec(), [MAGIC, MAGIC].concat());
    for (a, b) in c2.segments().zip(m.segments()) {
        assert_eq!(a.buf_addr(), b.buf_addr(), "clone of a clone: same buffer");
    }
    for s in m.segments() {
        assert_eq!(refs(s), 3);
    }
    let in_use = pool.in_use_count();
    drop(m); // the buffers live on in the clones
    assert_eq!(c.to_vec(), [MAGIC, MAGIC].concat());
    assert_eq!(c2.to_vec(), [MAGIC, MAGIC].concat());
    pool.mempool().flush_default_cache();
    assert_eq!(pool.in_use_count(), in_use, "buffers still referenced");
    drop(c);
    drop(c2);
    assert_full(&[pool, clone_pool]);
}

/// `test_pktmbuf_copy`: deep copies (of a packet, of a clone, of a chain,
/// at an offset, truncated) are direct one-segment mbufs of `pool` with the
/// right bytes.
pub fn copy(pool: &PktPool, clone_pool: &PktPool) {
    const MAGIC: u32 = 0x4242_4242;
    let mut m = mbuf_with(pool, &MAGIC.to_ne_bytes());
    let c = m.copy(pool, 0, m.pkt_len()).unwrap();
    assert_eq!((c.pkt_len(), c.data_len()), (4, 4));
    assert_eq!(c.data(), MAGIC.to_ne_bytes());
    assert_eq!(refs(&m), 1, "a copy takes no reference");
    drop(c);

    let cl = m.clone_in(clone_pool).unwrap();
    assert!(cl.is_indirect() || cl.is_external());
    let c = cl.copy(pool, 0, cl.pkt_len()).unwrap();
    assert!(!c.is_indirect(), "copy of a clone is not a clone");
    assert_eq!(c.data(), MAGIC.to_ne_bytes());
    assert!(c.is_writable());
    drop((cl, c));

    m.chain(mbuf_with(pool, &(MAGIC + 1).to_ne_bytes()))
        .unwrap();
    let c = m.copy(pool, 0, m.pkt_len()).unwrap();
    assert_eq!((c.pkt_len(), c.data_len(), c.nb_segs()), (8, 8, 1));
    assert_eq!(
        c.data(),
        [MAGIC.to_ne_bytes(), (MAGIC + 1).to_ne_bytes()].concat()
    );
    let c2 = c.copy(pool, 4, 4).unwrap();
    assert_eq!((c2.pkt_len(), c2.data_len()), (4, 4));
    assert_eq!(c2.data(), (MAGIC + 1).to_ne_bytes());
    let c3 = c.copy(pool, 0, 4).unwrap();
    assert_eq!(c3.data(), MAGIC.to_ne_bytes());
    let empty = c.copy(pool, 8, 0).unwrap();
    assert_eq!(empty.pkt_len(), 0);

    // Out of range, overflow-safe: typed errors, nothing taken.
    let in_use = pool.in_use_count();
    for (offset, len) in [
        (0, 9),
        (9, 0),
        (4, 5),
        (usize::MAX, 1),
        (1, usize::MAX),
        (usize::MAX, usize::MAX),
    ] {
        assert_eq!(
            c.copy(pool, offset, len).unwrap_err(),
            CopyError::OutOfRange {
                offset,
                len,
                pkt_len: 8
            }
        );
    }
    pool.mempool().flush_default_cache();
    assert_eq!(pool.in_use_count(), in_use);
    drop((m, c, c2, c3, empty));
    assert_full(&[pool, clone_pool]);
}

/// `test_mbuf_linearize_check`: packets of `size` bytes in `nb_segs`
/// segments become one contiguous segment with the pattern intact.
pub fn linearize(pool: &PktPool) {
    for (size, nb_segs) in [(128, 1), (64, 64), (512, 10), (250, 11), (123, 8)] {
        let seg_len = (size / nb_segs).max(1);
        let mut lens = Vec::new();
        let mut left = size;
        while left > 0 {
            let l = left.min(seg_len);
            lens.push(l);
            left -= l;
        }
        let mut m = chain_of(pool, &lens);
        assert_eq!(m.nb_segs(), lens.len());
        m.linearize().unwrap();
        assert_eq!((m.nb_segs(), m.pkt_len(), m.data_len()), (1, size, size));
        assert!(
            m.data().iter().enumerate().all(|(i, &b)| b == pattern(i)),
            "linearized data of {size} B in {nb_segs} segments"
        );
        assert_consistent(&m);
        drop(m);
        assert_full(&[pool]);
    }
}

/// `test_pktmbuf_alloc_bulk` and `test_neg_pktmbuf_alloc_bulk`: bulks of
/// the reference's sizes succeed (into a slice and into an array); bulks
/// larger than the pool fail whole, with the numbers, taking nothing.
pub fn alloc_bulk(pool: &PktPool) {
    let n = pool.size();
    let mut cache = pool.cache();
    for count in [0, 31, 33, 48, 64, 63, 65, 32] {
        let count = count.min(n);
        let mut buf: Vec<MaybeUninit<Mbuf>> = (0..count).map(|_| MaybeUninit::uninit()).collect();
        let ms = pool.alloc_bulk(&mut cache, &mut buf).unwrap();
        assert_eq!(ms.len(), count);
        for m in ms.iter() {
            assert_fresh(m);
        }
        assert_eq!(pool.in_use_count(), count);
        // SAFETY: `ms` lives in `buf`, a Vec of `MaybeUninit` that never
        // drops or reads the mbufs again.
        unsafe { pool.free_bulk_in_place(&mut cache, ms) };
        assert_eq!(pool.in_use_count(), 0);
    }
    let a = pool.alloc_array::<32>(&mut cache).unwrap();
    assert_eq!(a.len(), 32);
    assert_eq!(pool.in_use_count(), 32);
    pool.free_bulk(&mut cache, a);
    for count in [n + 1, n * 8] {
        let mut buf: Vec<MaybeUninit<Mbuf>> = (0..count).map(|_| MaybeUninit::uninit()).collect();
        match pool.alloc_bulk(&mut cache, &mut buf) {
            Err(AllocError::Exhausted {
                requested,
                available,
            }) => {
                assert_eq!(requested, count);
                assert!(available <= n, "{available} available of {n}");
            }
            Ok(ms) => panic!("a bulk of {count} from a pool of {n} gave {}", ms.len()),
            Err(e) => panic!("unexpected error {e:?}"),
        }
        assert_eq!(pool.in_use_count(), 0, "a failed bulk takes nothing");
    }
    // Take all but three, then a bulk of four fails and takes nothing.
    let mut buf: Vec<MaybeUninit<Mbuf>> = (0..n - 3).map(|_| MaybeUninit::uninit()).collect();
    let ms = pool.alloc_bulk(&mut cache, &mut buf).unwrap();
    assert!(pool.alloc_array::<4>(&mut cache).is_err());
    assert_eq!(pool.in_use_count(), n - 3);
    let three = pool.alloc_array::<3>(&mut cache).unwrap();
    assert!(pool.alloc(&mut cache).is_err());
    pool.free_bulk(&mut cache, three);
    // SAFETY: as above (`buf` is `MaybeUninit` storage).
    unsafe { pool.free_bulk_in_place(&mut cache, ms) };
    drop(cache);
    assert_full(&[pool]);
}

/// `test_pktmbuf_read`: a read of the whole segment is in place.
pub fn read(pool: &PktPool) {
    let mut m = pool.alloc_default().unwrap();
    m.append(LEN2).unwrap().fill(0xfe);
    let mut tmp = [0u8; 0];
    let got = m.read(0, LEN2, &mut tmp).unwrap();
    assert_eq!(got.as_ptr(), m.data().as_ptr(), "in place");
    assert!(got.iter().all(|&b| b == 0xfe));
    drop(m);
    assert_full(&[pool]);
}

/// `test_pktmbuf_read_from_offset`: reads at offsets of one segment, and
/// the ranges past the data refused (overflow-safe).
pub fn read_from_offset(pool: &PktPool) {
    let mut m = pool.alloc_default().unwrap();
    m.prepend(ETH).unwrap().fill(0xde);
    assert_eq!((m.pkt_len(), m.data_len()), (ETH, ETH));
    let hdr = m.data().as_ptr();
    let mut buf = vec![0u8; 4096];
    assert!(m.read(0, ETH, &mut buf).unwrap().iter().all(|&b| b == 0xde));
    m.append(LEN2).unwrap().fill(0xcc);
    assert_eq!((m.pkt_len(), m.data_len()), (ETH + LEN2, ETH + LEN2));
    assert!(m
        .read(ETH, LEN2, &mut buf)
        .unwrap()
        .iter()
        .all(|&b| b == 0xcc));
    let part = m.read(ETH + 5, LEN2 - 5, &mut buf).unwrap();
    assert_eq!(part.len(), LEN2 - 5);
    assert!(part.iter().all(|&b| b == 0xcc));
    // Longer than the data, than the packet.
    assert_eq!(m.read(ETH, m.data_len() + 1, &mut buf), None);
    assert_eq!(m.read(ETH, m.pkt_len() + 1, &mut buf), None);
    assert_eq!(m.read(0, m.pkt_len() + 1, &mut buf), None);
    // Empty reads inside the packet.
    assert_eq!(m.read(ETH, 0, &mut buf), Some(&[][..]));
    assert_eq!(m.read(m.pkt_len(), 0, &mut buf), Some(&[][..]));
    let all = m.read(0, m.pkt_len(), &mut buf).unwrap();
    assert_eq!(all.as_ptr(), hdr, "the whole packet in place");
    // Offsets and lengths at the top of the range.
    for (off, len) in [
        (usize::MAX, 0),
        (usize::MAX, 1),
        (usize::MAX, usize::MAX),
        (ETH, usize::MAX),
        (0, usize::MAX),
        (m.pkt_len() + 1, 0),
        (u32::MAX as usize, u32::MAX as usize),
    ] {
        assert_eq!(m.read(off, len, &mut buf), None, "read({off}, {len})");
    }
    let mut dump = String::new();
    m.dump(&mut dump, m.pkt_len()).unwrap();
    assert!(dump.contains("de de") && dump.contains("cc cc"));
    drop(m);
    assert_full(&[pool]);
}

/// `test_pktmbuf_read_from_chain`: the reference's table of chains and
/// reads across segments (including an empty segment), and the read past
/// the packet refused.
pub fn read_from_chain(pool: &PktPool) {
    // (segment lengths, Ethernet header in front, offset, length)
    let cases: [(&[usize], bool, usize, usize); 7] = [
        (&[100, 100, 100], false, 0, 300),
        (&[100, 125, 150], false, 99, 201),
        (&[100, 100], false, 0, 100),
        (&[100, 200], true, ETH, 150),
        (&[1000, 100], false, 0, 1000),
        (&[1024, 0, 100], false, 100, 1001),
        (&[1000, 1, 1000], false, 1000, 2),
    ];
    let mut buf = vec![0u8; DATA];
    for (lens, hdr, off, len) in cases {
        let m = packet(pool, if hdr { ETH } else { 0 }, lens);
        assert_eq!(
            m.pkt_len(),
            lens.iter().sum::<usize>() + if hdr { ETH } else { 0 }
        );
        let expect: Vec<u8> = (off..off + len).map(pattern).collect();
        let got = m
            .read(off, len, &mut buf)
            .unwrap_or_else(|| panic!("read({off}, {len}) of {lens:?}"));
        assert_eq!(got, &expect[..], "read({off}, {len}) of {lens:?}");
        assert_consistent(&m);
        drop(m);
    }
    // The negative case: 1000 + 2048 is past the packet.
    let m = chain_of(pool, &[LEN, LEN2, LEN3, 800, 10]);
    assert_eq!(m.read(1000, DATA, &mut buf), None);
    // A buffer too short for a copy across segments: None, nothing written.
    let mut small = [0u8; 10];
    assert_eq!(m.read(LEN - 5, 11, &mut small), None);
    assert_eq!(small, [0; 10]);
    assert_eq!(
        m.read(LEN - 5, 10, &mut small).unwrap(),
        &(LEN - 5..LEN + 5).map(pattern).collect::<Vec<_>>()[..]
    );
    drop(m);
    assert_full(&[pool]);
}

const DATA: usize = 2048;

/// `test_nb_segs_and_next_reset`: segments come back from a freed chain
/// (whole, or split by `free_first_segment`) as single fresh mbufs.
pub fn nb_segs_and_next_reset(pool: &PktPool) {
    let mut m0 = mbuf_with(pool, &[0; 500]);
    let mut m1 = mbuf_with(pool, &[1; 500]);
    let m2 = mbuf_with(pool, &[2; 500]);
    m1.chain(m2).unwrap();
    m0.chain(m1).unwrap();
    assert_eq!((m0.nb_segs(), m0.pkt_len()), (3, 1500));
    let rest = m0.free_first_segment().unwrap();
    assert_eq!((rest.nb_segs(), rest.pkt_len()), (2, 1000));
    assert_eq!(rest.data(), &[1; 500][..]);
    drop(rest);
    let again: Vec<Mbuf> = (0..3).map(|_| pool.alloc_default().unwrap()).collect();
    for m in &again {
        assert_fresh(m);
        assert_eq!(m.segments().count(), 1);
    }
    drop(again);
    assert_full(&[pool]);
}

/// The sanity check passes on everything the API builds from this pool.
pub fn sanity(pool: &PktPool, clone_pool: &PktPool) {
    let mut m = pool.alloc_default().unwrap();
    m.check().unwrap();
    m.append(100).unwrap();
    m.prepend(10).unwrap();
    m.check().unwrap();
    m.chain(chain_of(pool, &[5, 0, 7])).unwrap();
    m.check().unwrap();
    let c = m.clone_in(clone_pool).unwrap();
    c.check().unwrap();
    let cp = c.copy(pool, 3, 100).unwrap();
    cp.check().unwrap();
    m.trim(7).unwrap();
    m.adj(3).unwrap();
    m.check().unwrap();
    c.check().unwrap();
    drop((m, c, cp));
    assert_full(&[pool, clone_pool]);
}
