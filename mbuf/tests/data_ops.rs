//! Data operations beyond the reference's suite: what a shared buffer
//! refuses (typed errors, mbuf unchanged), `grow_tail`, linearize and copy
//! limits, copies from an exhausted pool, reads across segments at every
//! offset, and the dump.

mod common;

use common::{anon, assert_consistent, assert_full, chain_of, mbuf_with, pattern, snapshot};
use pktmem_mbuf::{CopyError, DataError, MbufError, PktPool, HEADROOM};

/// While a clone shares the buffer, writes are refused (typed error or
/// `None`) and nothing changes; removals (adj, trim) still work; once the
/// clone goes the buffer is writable again.
#[test]
fn a_shared_buffer_refuses_writes() {
    let pool = anon(8);
    let mut m = mbuf_with(&pool, b"0123456789");
    let c = m.clone_in(&pool).unwrap();
    assert!(!m.is_writable() && !c.is_writable());
    assert!(m.data_mut().is_none());
    let before = snapshot(&m);
    assert_eq!(m.prepend(1), Err(DataError::NotWritable));
    assert_eq!(m.append(1), Err(DataError::NotWritable));
    // Limits are checked first, with their numbers.
    assert_eq!(
        m.prepend(HEADROOM + 1),
        Err(DataError::NoHeadroom {
            len: HEADROOM + 1,
            headroom: HEADROOM
        })
    );
    assert_eq!(snapshot(&m), before);
    // The clone is indirect: never writable.
    let mut c = c;
    assert!(c.data_mut().is_none());
    assert_eq!(c.append(1), Err(DataError::NotWritable));
    assert_eq!(c.prepend(1), Err(DataError::NotWritable));
    // Removing bytes writes nothing: allowed on both.
    c.adj(2).unwrap();
    c.trim(2).unwrap();
    assert_eq!(c.data(), b"234567");
    assert_eq!(m.data(), b"0123456789", "the original's view is its own");
    m.trim(1).unwrap();
    assert_eq!(m.data(), b"012345678");
    drop(c);
    assert!(m.is_writable());
    m.append(1).unwrap()[0] = b'X';
    m.data_mut().unwrap()[0] = b'Y';
    assert_eq!(m.data(), b"Y12345678X");
    let e: MbufError = DataError::NotWritable.into();
    assert!(matches!(e, MbufError::Data(DataError::NotWritable)));
    drop(m);
    assert_full(&[&pool]);
}

/// `grow_tail` takes the tailroom's bytes as they are (what a device
/// wrote), also on a shared buffer; past the tailroom it is a typed error.
#[test]
fn grow_tail_takes_bytes_in_place() {
    let pool = PktPool::builder(4)
        .data_room(HEADROOM + 16)
        .build_anonymous()
        .unwrap();
    let mut m = pool.alloc_default().unwrap();
    m.append(16).unwrap().copy_from_slice(b"abcdefghijklmnop");
    m.trim(10).unwrap();
    assert_eq!(m.data(), b"abcdef");
    m.grow_tail(4).unwrap();
    assert_eq!(m.data(), b"abcdefghij", "the bytes left in the buffer");
    assert_eq!(
        m.grow_tail(7),
        Err(DataError::NoTailroom {
            len: 7,
            tailroom: 6
        })
    );
    assert_eq!(m.pkt_len(), 10);
    let c = m.clone_in(&pool).unwrap();
    m.grow_tail(6).unwrap();
    assert_eq!(m.data(), b"abcdefghijklmnop");
    assert_eq!(c.data(), b"abcdefghij");
    assert_consistent(&m);
    drop((m, c));
    assert_full(&[&pool]);
}

/// Linearize: refused when the head's tailroom cannot take the rest (with
/// both numbers) or the head is shared; the chain unchanged either way.
#[test]
fn linearize_limits() {
    let pool = PktPool::builder(16)
        .data_room(HEADROOM + 100)
        .build_anonymous()
        .unwrap();
    let mut m = chain_of(&pool, &[60, 30, 11]);
    let before = snapshot(&m);
    assert_eq!(
        m.linearize(),
        Err(DataError::NoTailroom {
            len: 41,
            tailroom: 40
        })
    );
    assert_eq!(snapshot(&m), before);
    m.trim(1).unwrap();
    let c = m.clone_in(&pool).unwrap();
    let before = snapshot(&m);
    assert_eq!(m.linearize(), Err(DataError::NotWritable));
    assert_eq!(snapshot(&m), before);
    drop(c);
    m.linearize().unwrap();
    assert_eq!((m.nb_segs(), m.data_len(), m.tailroom()), (1, 100, 0));
    assert!(m.data().iter().enumerate().all(|(i, &b)| b == pattern(i)));
    // A single segment: nothing to do.
    m.linearize().unwrap();
    drop(m);
    // Inner segments shared with a clone may be linearized away: the clone
    // keeps them.
    let mut m = chain_of(&pool, &[10, 20, 30]);
    let whole = m.clone_in(&pool).unwrap();
    assert_eq!(m.linearize(), Err(DataError::NotWritable), "head shared");
    let inner = whole.free_first_segment().unwrap();
    assert_eq!(inner.to_vec(), (10..60).map(pattern).collect::<Vec<_>>());
    assert!(m.is_writable());
    m.linearize().unwrap();
    assert_eq!(m.to_vec(), (0..60).map(pattern).collect::<Vec<_>>());
    assert_eq!(inner.to_vec(), (10..60).map(pattern).collect::<Vec<_>>());
    assert_eq!(inner.nb_segs(), 2);
    drop((m, inner));
    assert_full(&[&pool]);
}

/// Copies: the bytes of any range, into chains of small mbufs when the
/// destination pool's buffers are small; metadata kept; typed errors out of
/// range, past 65,535 segments, and from an exhausted pool, with nothing
/// leaked.
#[test]
fn copy_ranges_limits_and_exhaustion() {
    let src_pool = anon(64);
    let small = PktPool::builder(64)
        .data_room(HEADROOM + 7)
        .build_anonymous()
        .unwrap();
    let mut m = chain_of(&src_pool, &[100, 3, 0, 50]);
    m.set_port(Some(4));
    m.set_rss_hash(0xdead);
    m.set_vlan_tci(12);
    m.set_packet_type(0x21);
    m.set_timestamp(99);
    let all: Vec<u8> = (0..153).map(pattern).collect();
    for (off, len) in [
        (0, 153),
        (0, 1),
        (152, 1),
        (99, 5),
        (7, 14),
        (100, 3),
        (153, 0),
        (10, 0),
    ] {
        let c = m.copy(&small, off, len).unwrap();
        assert_eq!(c.to_vec(), &all[off..off + len], "copy({off}, {len})");
        assert_eq!(c.nb_segs(), len.div_ceil(7).max(1));
        assert!(c.segments().all(|s| s.data_len() <= 7 && s.is_direct()));
        assert_eq!(
            (c.port(), c.rss_hash(), c.vlan_tci()),
            (Some(4), 0xdead, 12)
        );
        assert_eq!((c.packet_type(), c.timestamp()), (0x21, 99));
        assert_consistent(&c);
        let mut cache = small.cache();
        let c2 = m.copy_in_cache(&small, &mut cache, off, len).unwrap();
        assert_eq!(c2.to_vec(), c.to_vec());
        small.free(&mut cache, c2);
    }
    assert_full(&[&small]);

    // From a pool that runs out part way: a typed error, everything it had
    // taken back.
    let before = snapshot(&m);
    let tiny = PktPool::builder(5)
        .data_room(HEADROOM + 7)
        .build_anonymous()
        .unwrap();
    let hold: Vec<_> = (0..2).map(|_| tiny.alloc_default().unwrap()).collect();
    assert_eq!(
        m.copy(&tiny, 0, 50).unwrap_err(),
        CopyError::Exhausted {
            needed: 8,
            obtained: 3
        }
    );
    drop(hold);
    assert_full(&[&tiny]);
    let all_taken: Vec<_> = (0..5).map(|_| tiny.alloc_default().unwrap()).collect();
    assert_eq!(
        m.copy(&tiny, 0, 1).unwrap_err(),
        CopyError::Exhausted {
            needed: 1,
            obtained: 0
        }
    );
    drop(all_taken);

    // A pool whose buffers have no tailroom cannot hold a byte.
    let none = PktPool::builder(4)
        .data_room(HEADROOM)
        .build_anonymous()
        .unwrap();
    assert!(matches!(m.copy(&none, 0, 1), Err(CopyError::NoDataRoom)));
    assert_eq!(
        m.copy(&none, usize::MAX, 2).unwrap_err(),
        CopyError::OutOfRange {
            offset: usize::MAX,
            len: 2,
            pkt_len: 153
        }
    );
    assert_eq!(
        snapshot(&m),
        before,
        "the source unchanged by failed copies"
    );
    let empty = m.copy(&none, 5, 0).unwrap();
    assert_eq!(empty.pkt_len(), 0);
    drop(empty);
    assert_full(&[&none, &tiny]);
    drop(m);
    assert_full(&[&src_pool]);
}

/// A copy needing more than 65,535 one-byte segments is refused before
/// taking them.
#[test]
fn copy_past_the_segment_limit_is_refused() {
    let src = anon(40);
    let lens = vec![2048; 33]; // 67,584 bytes
    let m = chain_of(&src, &lens);
    let one_byte = PktPool::builder(8)
        .data_room(HEADROOM + 1)
        .build_anonymous()
        .unwrap();
    assert_eq!(
        m.copy(&one_byte, 0, 65_536).unwrap_err(),
        CopyError::TooManySegments { needed: 65_536 }
    );
    let e = m.copy(&one_byte, 0, m.pkt_len()).unwrap_err();
    assert_eq!(e, CopyError::TooManySegments { needed: 33 * 2048 });
    assert!(e.to_string().contains("67584"), "{e}");
    assert_full(&[&one_byte]);
    drop(m);
    assert_full(&[&src]);
}

/// `read` at every offset and length of a chain with uneven and empty
/// segments: the pattern, in place when the range lies in one segment,
/// `None` for every range that ends past the packet.
#[test]
fn read_every_range_of_a_chain() {
    let pool = anon(16);
    let lens = [5, 0, 1, 7, 0, 3];
    let m = chain_of(&pool, &lens);
    let n = m.pkt_len();
    assert_eq!(n, 16);
    let mut bounds = vec![0];
    for l in lens {
        bounds.push(bounds.last().unwrap() + l);
    }
    let mut buf = [0u8; 32];
    for off in 0..=n + 2 {
        for len in 0..=n + 2 {
            let got = m.read(off, len, &mut buf).map(<[u8]>::to_vec);
            if off + len > n {
                assert_eq!(got, None, "read({off}, {len})");
                continue;
            }
            let expect: Vec<u8> = (off..off + len).map(pattern).collect();
            assert_eq!(got.as_deref(), Some(&expect[..]), "read({off}, {len})");
        }
    }
    // In place when the range lies inside one segment.
    let third = m.segments().nth(3).unwrap();
    let inside = m.read(6, 7, &mut buf).unwrap();
    assert_eq!(inside.as_ptr(), third.data().as_ptr());
    for (off, len) in [
        (usize::MAX, 1),
        (1, usize::MAX),
        (usize::MAX, usize::MAX),
        (n, 1),
        (n + 1, 0),
    ] {
        assert_eq!(m.read(off, len, &mut buf), None, "read({off}, {len})");
    }
    drop(m);
    assert_full(&[&pool]);
}

/// The dump names each segment and prints the data in hex, up to the
/// limit asked for.
#[test]
fn dump_shows_segments_and_bytes() {
    let pool = anon(4);
    let mut m = mbuf_with(&pool, &[0xab, 0xcd, 0xef]);
    m.chain(mbuf_with(&pool, &[0x01, 0x02])).unwrap();
    let c = m.clone_in(&pool).unwrap();
    let mut s = String::new();
    m.dump(&mut s, 4).unwrap();
    assert!(s.contains("pkt_len=5") && s.contains("nb_segs=2"), "{s}");
    assert!(s.contains("segment 0") && s.contains("segment 1"), "{s}");
    let hex: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with("    "))
        .map(str::trim)
        .collect();
    assert_eq!(hex, ["ab cd ef", "01"], "four bytes at most: {s}");
    assert!(s.contains("refcnt=2"), "{s}");
    let mut s = String::new();
    c.dump(&mut s, 0).unwrap();
    assert!(s.contains("indirect"), "{s}");
    assert!(!s.contains("ab cd"), "{s}");
    drop((m, c));
    assert_full(&[&pool]);
}

/// `set_data_window`: the window becomes the data in place (bytes as they
/// are, headroom and tailroom follow), also on a shared buffer; windows
/// outside the buffer (including overflowing ones) are typed errors that
/// leave the mbuf unchanged; in a chain only the head's share changes.
#[test]
fn set_data_window_takes_bytes_in_place_and_checks_bounds() {
    let pool = PktPool::builder(8)
        .data_room(2048)
        .build_anonymous()
        .unwrap();
    let mut m = pool.alloc_default().unwrap();
    m.append(2048 - HEADROOM)
        .unwrap()
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8);
    m.set_data_window(300, 100).unwrap();
    assert_eq!((m.headroom(), m.data_len(), m.pkt_len()), (300, 100, 100));
    assert_eq!(m.tailroom(), 2048 - 400);
    let want: Vec<u8> = (300 - HEADROOM..400 - HEADROOM).map(|i| i as u8).collect();
    assert_eq!(m.data(), &want[..], "the bytes the \"device\" left there");
    m.set_data_window(0, 2048).unwrap();
    assert_eq!((m.headroom(), m.tailroom(), m.pkt_len()), (0, 0, 2048));
    m.set_data_window(2048, 0).unwrap();
    assert_eq!((m.headroom(), m.data_len()), (2048, 0));
    m.set_data_window(256, 60).unwrap();
    for (offset, len) in [
        (2000, 49),
        (0, 2049),
        (2049, 0),
        (usize::MAX, 2),
        (1, usize::MAX),
    ] {
        assert_eq!(
            m.set_data_window(offset, len),
            Err(DataError::OutsideBuffer {
                offset,
                len,
                buf_len: 2048
            })
        );
        assert_eq!(
            (m.headroom(), m.data_len(), m.pkt_len()),
            (256, 60, 60),
            "unchanged"
        );
    }
    let e = m.set_data_window(5000, 1).unwrap_err();
    assert!(
        e.to_string().contains("5000") && e.to_string().contains("2048"),
        "{e}"
    );
    // A shared buffer: nothing is written, so the window may move.
    let c = m.clone_in(&pool).unwrap();
    m.set_data_window(10, 20).unwrap();
    assert_eq!((m.headroom(), m.data_len()), (10, 20));
    assert_eq!(
        (c.headroom(), c.data_len()),
        (256, 60),
        "the clone keeps its own"
    );
    drop(c);
    // A chain: the head's window changes, the tail's bytes stay counted.
    let mut tail = pool.alloc_default().unwrap();
    tail.append(7).unwrap();
    m.chain(tail).unwrap();
    m.set_data_window(500, 40).unwrap();
    assert_eq!((m.data_len(), m.pkt_len(), m.nb_segs()), (40, 47, 2));
    drop(m);
    assert_full(&[&pool]);
}
