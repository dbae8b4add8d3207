//! Packet pools: the reference's per-pool behaviour tests on pools with
//! their own buffers (anonymous memory and the provider's), and what is
//! particular to building pools: the geometry (header, private area, data
//! room, IOVAs), the builder's typed errors, bulk allocation and bulk free
//! across pools (`test_pktmbuf_pool_bulk`).

#[macro_use]
mod common;

use std::mem::MaybeUninit;

use common::{anon, assert_fresh, assert_full, mbuf_with, provider, Kind};
use pktmem_mbuf::{
    free_bulk, AllocError, BuildError, Mbuf, MbufError, PktPool, DEFAULT_DATA_ROOM, HEADER_SIZE,
    HEADROOM, MAX_DATA_ROOM,
};

behaviour_tests!(Kind::NORMAL);

#[test]
fn default_geometry_is_the_references() {
    let pool = PktPool::builder(4).build_anonymous().unwrap();
    assert_eq!(pool.data_room(), DEFAULT_DATA_ROOM);
    assert_eq!(DEFAULT_DATA_ROOM, 2048 + 128);
    assert_eq!(pool.private_size(), 0);
    assert!(!pool.is_pinned());
    let m = pool.alloc_default().unwrap();
    assert_fresh(&m);
    assert_eq!(
        (m.buf_len(), m.headroom(), m.tailroom()),
        (2176, HEADROOM, 2048)
    );
    let hdr = std::ptr::from_ref(m.header()) as usize;
    assert_eq!(m.buf_addr().as_ptr() as usize, hdr + HEADER_SIZE);
    assert_eq!(hdr % 64, 0, "header on a cache line");
    assert_eq!(m.buf_iova(), None, "anonymous memory has no IOVA");
    assert_eq!(m.data_iova(), None);
}

/// The reference's `pktmbuf_pool2`: a private area of 128 bytes and no
/// data room; the buffer address is right after the private area and the
/// headroom is 0.
#[test]
fn private_area_and_empty_data_room() {
    let pool = PktPool::builder(8)
        .private_size(128)
        .data_room(0)
        .build_anonymous()
        .unwrap();
    assert_eq!((pool.private_size(), pool.data_room()), (128, 0));
    let mut m = pool.alloc_default().unwrap();
    assert_fresh(&m);
    let hdr = std::ptr::from_ref(m.header()) as usize;
    assert_eq!(m.buf_addr().as_ptr() as usize, hdr + HEADER_SIZE + 128);
    assert_eq!(m.data().as_ptr() as usize, hdr + HEADER_SIZE + 128);
    assert_eq!((m.buf_len(), m.headroom(), m.tailroom()), (0, 0, 0));
    assert_eq!(m.private_size(), 128);
    assert_eq!(m.private_area().len(), 128);
    assert!(
        m.private_area().iter().all(|&b| b == 0),
        "private area zeroed"
    );
    m.private_area_mut().fill(0xab);
    assert!(m.private_area().iter().all(|&b| b == 0xab));
    assert_eq!(
        m.append(1),
        Err(pktmem_mbuf::DataError::NoTailroom {
            len: 1,
            tailroom: 0
        })
    );
    assert_eq!(
        m.prepend(1),
        Err(pktmem_mbuf::DataError::NoHeadroom {
            len: 1,
            headroom: 0
        })
    );
    drop(m);
    assert_full(&[&pool]);
}

/// Data rooms below the default headroom: the headroom is the whole room.
#[test]
fn small_data_rooms_clamp_the_headroom() {
    for room in [1, 8, 64, 127, 128, 129, 200] {
        let pool = PktPool::builder(2)
            .data_room(room)
            .build_anonymous()
            .unwrap();
        let m = pool.alloc_default().unwrap();
        assert_fresh(&m);
        assert_eq!(m.buf_len(), room);
        assert_eq!(m.headroom(), room.min(HEADROOM));
        assert_eq!(m.tailroom(), room.saturating_sub(HEADROOM));
    }
}

/// The largest data room (65,535 bytes) builds on the provider and holds
/// its whole tailroom; detached, an mbuf gets its whole buffer back.
#[test]
fn largest_data_room_fits() {
    let r = PktPool::builder(2)
        .data_room(MAX_DATA_ROOM)
        .build_on(provider());
    let Some(pool) = common::big_pool_or_skip("largest_data_room_fits", r) else {
        return;
    };
    let mut m = pool.alloc_default().unwrap();
    assert_eq!(m.buf_len(), 65_535);
    let room = m.tailroom();
    assert_eq!(room, 65_535 - HEADROOM);
    m.append(room).unwrap().fill(3);
    assert_eq!(m.pkt_len(), room);
    assert_eq!(m.tailroom(), 0);
    let mut i = pool.alloc_default().unwrap();
    i.attach(&m).unwrap();
    assert_eq!(i.data_len(), room);
    i.detach();
    assert_eq!(
        (i.buf_len(), i.headroom(), i.tailroom()),
        (65_535, HEADROOM, room)
    );
    drop((m, i));
    assert_full(&[&pool]);
}

#[test]
fn data_room_past_16_bits_is_a_typed_error() {
    for room in [MAX_DATA_ROOM + 1, 100_000, usize::MAX] {
        let e = PktPool::builder(4)
            .data_room(room)
            .build_anonymous()
            .unwrap_err();
        assert!(
            matches!(e, BuildError::DataRoomTooLarge { data_room, max: 65_535 } if data_room == room),
            "{e:?}"
        );
        assert!(e.to_string().contains(&room.to_string()), "{e}");
        assert!(e.to_string().contains("65535"), "{e}");
        let e = PktPool::builder(4)
            .data_room(room)
            .build_on(provider())
            .unwrap_err();
        assert!(matches!(e, BuildError::DataRoomTooLarge { .. }), "{e:?}");
        let umbrella: MbufError = e.into();
        assert!(matches!(umbrella, MbufError::Build(_)));
    }
}

#[test]
fn private_size_not_a_multiple_of_8_is_a_typed_error() {
    for size in [1, 4, 7, 9, 12, 100, 65_535] {
        let e = PktPool::builder(4)
            .private_size(size)
            .build_anonymous()
            .unwrap_err();
        assert!(
            matches!(e, BuildError::PrivateSizeUnaligned { private_size } if private_size == size),
            "{e:?}"
        );
        assert!(e.to_string().contains(&size.to_string()), "{e}");
        let e = PktPool::builder(4)
            .private_size(size)
            .build_on(provider())
            .unwrap_err();
        assert!(
            matches!(e, BuildError::PrivateSizeUnaligned { .. }),
            "{e:?}"
        );
    }
    for size in [0, 8, 64, 128, 1024] {
        let pool = PktPool::builder(4)
            .private_size(size)
            .build_anonymous()
            .unwrap();
        let m = pool.alloc_default().unwrap();
        assert_eq!(m.private_area().len(), size);
        let hdr = std::ptr::from_ref(m.header()) as usize;
        assert_eq!(m.buf_addr().as_ptr() as usize, hdr + HEADER_SIZE + size);
        assert_eq!(m.buf_addr().as_ptr() as usize % 8, 0);
    }
    let e = PktPool::builder(4)
        .private_size(65_536)
        .build_anonymous()
        .unwrap_err();
    assert!(
        matches!(e, BuildError::PrivateSizeTooLarge { private_size: 65_536, max } if max < 65_536 && max % 8 == 0),
        "{e:?}"
    );
}

/// On the provider's memory every buffer has the IOVA of its address, and
/// the data IOVA follows the data offset.
#[test]
fn buffers_on_the_provider_carry_their_iova() {
    let p = provider();
    let pool = PktPool::builder(64)
        .private_size(64)
        .cache(8)
        .build_on(p)
        .unwrap();
    if !pool.mempool().tracks_iova() {
        common::skip(format_args!("the provider's memory has no IOVAs here"));
        return;
    }
    let mut ms: Vec<Mbuf> = (0..64).map(|_| pool.alloc_default().unwrap()).collect();
    for m in &mut ms {
        let buf = m.buf_addr().as_ptr();
        assert_eq!(m.buf_iova(), p.virt2iova(buf), "buffer IOVA");
        m.prepend(14).unwrap();
        assert_eq!(
            m.data_iova().unwrap().0,
            m.buf_iova().unwrap().0 + (HEADROOM - 14) as u64
        );
        assert_eq!(m.data_iova(), p.virt2iova(m.data().as_ptr()));
        let hdr = std::ptr::from_ref(m.header()).cast::<u8>();
        assert_eq!(buf as usize, hdr as usize + HEADER_SIZE + 64);
    }
    drop(ms);
    assert_full(&[&pool]);
}

/// A pool on 2 MiB hugepages only; SKIP when none are free.
#[test]
fn pool_on_hugepages() {
    let Some(p) = common::huge2m_provider("pool_on_hugepages", 4) else {
        return;
    };
    let pool = PktPool::builder(1024).cache(32).build_on(&p).unwrap();
    common::behaviour::pool_exhaustion(&pool);
    common::behaviour::one_pktmbuf(&pool);
}

/// Allocation through an explicit cache and without one, all-or-nothing
/// bulks, and the counts.
#[test]
fn exhaustion_through_an_explicit_cache() {
    let pool = PktPool::builder(100).cache(16).build_anonymous().unwrap();
    let mut cache = pool.cache();
    let mut ms = Vec::new();
    loop {
        match pool.alloc(&mut cache) {
            Ok(m) => ms.push(m),
            Err(e) => {
                assert_eq!(
                    e,
                    AllocError::Exhausted {
                        requested: 1,
                        available: 0
                    }
                );
                assert!(e.to_string().contains('1'), "{e}");
                break;
            }
        }
        assert!(ms.len() <= 100, "more mbufs than the pool holds");
    }
    assert_eq!(ms.len(), 100);
    assert_eq!((pool.in_use_count(), pool.avail_count()), (100, 0));
    assert!(pool.alloc_default().is_err());
    for m in ms.drain(..50) {
        pool.free(&mut cache, m);
    }
    assert_eq!(pool.in_use_count(), 50);
    drop(ms); // through the default cache
    drop(cache);
    assert_full(&[&pool]);
}

/// `test_pktmbuf_pool_bulk`: pools without caches, bulk alloc in one go
/// and bulk free in four steps (counts exact after each), then four bulks
/// and one free, one long chain freed by a bulk free, and chains of
/// segments of two pools (each pool gets its segments back).
#[test]
fn bulk_alloc_and_bulk_free_across_two_pools() {
    const N: usize = 128;
    const CHAIN_LEN: usize = 16;
    let pool = anon(N);
    let pool2 = anon(N);
    assert!(pool.is_full() && pool2.is_full());
    assert_eq!((pool.avail_count(), pool2.avail_count()), (N, N));
    let mut cache = pool.cache();

    // One bulk in, four bulk frees out.
    let mut ms: Vec<Mbuf> = pool
        .alloc_array::<N>(&mut cache)
        .unwrap()
        .into_iter()
        .collect();
    assert!(pool.mempool().is_empty());
    for i in 0..4 {
        free_bulk(ms.drain(..N / 4));
        assert_eq!(pool.avail_count(), (i + 1) * N / 4);
    }

    // Four bulks in, one bulk free out.
    let mut bufs: Vec<MaybeUninit<Mbuf>> = (0..N).map(|_| MaybeUninit::uninit()).collect();
    for part in bufs.chunks_mut(N / 4) {
        let got = pool.alloc_bulk(&mut cache, part).unwrap();
        assert_eq!(got.len(), N / 4);
    }
    assert!(pool.mempool().is_empty());
    // SAFETY: every element was initialised by the four bulks above; each
    // is read out once, and the Vec of MaybeUninit does not drop them.
    let ms: Vec<Mbuf> = bufs
        .iter()
        .map(|b| unsafe { b.assume_init_read() })
        .collect();
    free_bulk(ms);
    assert!(pool.is_full());

    // One long chain of every mbuf, freed by one bulk free.
    let mut ms = pool.alloc_array::<N>(&mut cache).unwrap().into_iter();
    let mut head = ms.next().unwrap();
    for m in ms {
        head.chain(m).unwrap();
    }
    assert_eq!(head.nb_segs(), N);
    free_bulk([head]);
    assert!(pool.is_full());

    // Chains of CHAIN_LEN segments alternating between the pools in runs
    // of four.
    let mut chains: Vec<Mbuf> = Vec::new();
    for i in 0..N * 2 {
        let m = if i & 4 != 0 {
            pool2.alloc_default()
        } else {
            pool.alloc_default()
        }
        .unwrap();
        if i % CHAIN_LEN == 0 {
            chains.push(m);
        } else {
            chains.last_mut().unwrap().chain(m).unwrap();
        }
    }
    assert!(pool.mempool().is_empty() && pool2.mempool().is_empty());
    let mut rest = chains.split_off(1);
    free_bulk(chains);
    assert_eq!(
        (pool.avail_count(), pool2.avail_count()),
        (CHAIN_LEN / 2, CHAIN_LEN / 2),
        "the first chain's segments went back to their own pools"
    );
    // The rest through the explicit cache of the first pool (the second
    // pool's segments go to their pool).
    pool.free_bulk(&mut cache, rest.drain(..));
    drop(cache);
    assert_full(&[&pool, &pool2]);
}

/// Dropping a chain that spans two pools returns each segment to its own
/// pool (`Drop`, `PktPool::free` through the other pool's cache, and
/// `free_first_segment`).
#[test]
fn chains_spanning_two_pools_free_to_both() {
    let a = PktPool::builder(16).cache(4).build_anonymous().unwrap();
    let b = PktPool::builder(16)
        .cache(4)
        .private_size(16)
        .data_room(512)
        .build_on(provider())
        .unwrap();
    let build = || {
        let mut m = mbuf_with(&a, b"a0");
        m.chain(mbuf_with(&b, b"b0")).unwrap();
        m.chain(mbuf_with(&a, b"a1")).unwrap();
        m.chain(mbuf_with(&b, b"b1")).unwrap();
        assert_eq!(m.to_vec(), b"a0b0a1b1");
        m
    };
    drop(build());
    assert_full(&[&a, &b]);
    let mut cb = b.cache();
    b.free(&mut cb, build());
    drop(cb);
    assert_full(&[&a, &b]);
    let mut m = Some(build());
    while let Some(x) = m {
        m = x.free_first_segment();
    }
    assert_full(&[&a, &b]);
    let mut ca = a.cache();
    a.free_bulk(&mut ca, [build(), build()]);
    drop(ca);
    assert_full(&[&a, &b]);
}

/// Mbufs outlive the last handle of their pool: the pool (and a pinned
/// pool's registered memory) goes only after the last of them, chains and
/// clones included, on whichever thread drops it.
#[test]
fn mbufs_outlive_their_pool_handle() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    static UNIQUE: AtomicUsize = AtomicUsize::new(0);
    for kind in Kind::ALL {
        let name = format!(
            "outlive-{}-{kind:?}",
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        );
        let destroyed = Arc::new(AtomicUsize::new(0));
        let d = Arc::clone(&destroyed);
        let watched = name.clone();
        let _guard = pktmem_mempool::on_event(move |ev, info| {
            if matches!(ev, pktmem_mempool::MempoolEvent::Destroyed) && info.name == watched {
                // Relaxed: read on this thread after the drops below.
                d.fetch_add(1, Ordering::Relaxed);
            }
        });
        let pool = common::pool_of(kind, &name, 8, 4, 2048);
        let other = anon(8);
        let mut m = mbuf_with(&pool, b"still here");
        m.chain(mbuf_with(&pool, b" and here")).unwrap();
        let c = m.clone_in(&other).unwrap();
        drop(pool);
        assert_eq!(
            destroyed.load(Ordering::Relaxed),
            0,
            "{kind:?}: gone with mbufs out"
        );
        assert_eq!(m.to_vec(), b"still here and here");
        m.check().unwrap();
        drop(m);
        assert_eq!(
            c.to_vec(),
            b"still here and here",
            "{kind:?}: the clone keeps the buffers"
        );
        std::thread::spawn(move || drop(c)).join().unwrap();
        assert_eq!(
            destroyed.load(Ordering::Relaxed),
            1,
            "{kind:?}: destroyed once, after the last mbuf"
        );
        assert_full(&[&other]);
    }
}

/// Counts and caches the mempool refuses come back typed (its error inside
/// ours), never as a panic.
#[test]
fn bad_counts_and_cache_sizes_are_typed_errors() {
    use pktmem_mempool::{BuildError as MpBuild, CreateError};
    let is_build = |e: &BuildError| matches!(e, BuildError::Mempool(CreateError::Build(_)));
    let e = PktPool::builder(0).build_anonymous().unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::Mempool(CreateError::Build(MpBuild::ZeroObjects { .. }))
        ),
        "{e:?}"
    );
    for e in [
        PktPool::builder(8)
            .cache(1 << 20)
            .build_anonymous()
            .unwrap_err(),
        PktPool::builder(usize::MAX).build_anonymous().unwrap_err(),
        PktPool::builder(1 << 40).build_on(provider()).unwrap_err(),
        PktPool::builder(0)
            .pinned([])
            .build_anonymous()
            .unwrap_err(),
    ] {
        assert!(is_build(&e), "{e:?}");
        assert!(std::error::Error::source(&e).is_some());
        assert!(!e.to_string().is_empty());
    }
}
