//! Chains: segment counts and packet lengths add up, `free_first_segment`
//! splits them, the 65,535-segment limit is a typed error that hands the
//! tail back and leaves the head unchanged, and every segment goes back to
//! its pool (several pools in one chain).

mod common;

use common::{anon, assert_consistent, assert_full, chain_of, mbuf_with, pattern, snapshot};
use pktmem_mbuf::{ChainErrorKind, ExtBuf, Mbuf, MbufError, PktPool, MAX_SEGS};

#[test]
fn chain_adds_counts_and_lengths() {
    let pool = anon(16);
    let mut a = chain_of(&pool, &[3, 4]);
    let b = {
        let mut b = mbuf_with(&pool, &[9; 5]);
        b.chain(mbuf_with(&pool, &[8; 6])).unwrap();
        b.chain(mbuf_with(&pool, &[])).unwrap();
        b
    };
    assert_eq!((b.nb_segs(), b.pkt_len()), (3, 11));
    a.chain(b).unwrap();
    assert_eq!((a.nb_segs(), a.pkt_len()), (5, 18));
    assert_consistent(&a);
    let lens: Vec<usize> = a.segments().map(pktmem_mbuf::Segment::data_len).collect();
    assert_eq!(lens, [3, 4, 5, 6, 0]);
    // Appending and trimming work on the last segment.
    a.append(2).unwrap().fill(7);
    assert_eq!(a.segments().last().unwrap().data_len(), 2);
    a.trim(2).unwrap();
    assert_eq!(
        a.trim(1),
        Err(pktmem_mbuf::DataError::TooShort { len: 1, have: 0 })
    );
    // Split it again.
    let mut rest = a.free_first_segment().unwrap();
    assert_eq!((rest.nb_segs(), rest.pkt_len()), (4, 15));
    assert_consistent(&rest);
    for _ in 0..3 {
        rest = rest.free_first_segment().unwrap();
        assert_consistent(&rest);
    }
    assert_eq!((rest.nb_segs(), rest.pkt_len()), (1, 0));
    assert!(rest.free_first_segment().is_none());
    assert_full(&[&pool]);
}

/// The reference's limit: a chain may have 65,535 segments. A pool of
/// 65,536 empty-buffer mbufs builds one cheaply; the next chain is refused
/// with both numbers, the tail handed back unchanged and the head too; all
/// of it goes back to the pool.
#[test]
fn chain_past_65535_segments_is_refused() {
    let pool = PktPool::builder(MAX_SEGS + 1)
        .data_room(0)
        .build_anonymous()
        .unwrap();
    let mut cache = pool.cache();
    // Built from the tail so each chain walks one segment.
    let mut head = pool.alloc(&mut cache).unwrap();
    for _ in 1..MAX_SEGS - 1 {
        let mut s = pool.alloc(&mut cache).unwrap();
        s.chain(head).unwrap();
        head = s;
    }
    assert_eq!(head.nb_segs(), MAX_SEGS - 1);
    let mut two = pool.alloc(&mut cache).unwrap();
    two.chain(pool.alloc(&mut cache).unwrap()).unwrap();
    assert!(pool.mempool().is_empty());

    // 65,534 + 2 segments: one too many.
    let before = (head.nb_segs(), head.pkt_len());
    let e = head.chain(two).unwrap_err();
    assert_eq!(
        e.kind,
        ChainErrorKind::TooManySegments {
            total: MAX_SEGS + 1,
            max: MAX_SEGS
        }
    );
    assert!(
        e.to_string().contains("65536") && e.to_string().contains("65535"),
        "{e}"
    );
    assert_eq!((head.nb_segs(), head.pkt_len()), before, "head unchanged");
    let two = e.tail;
    assert_eq!((two.nb_segs(), two.pkt_len()), (2, 0), "tail unchanged");
    assert_consistent(&two);

    // Split the tail: one more segment fits exactly.
    let one = two.free_first_segment().unwrap();
    head.chain(one).unwrap();
    assert_eq!(head.nb_segs(), MAX_SEGS);
    assert_consistent(&head);
    let last = pool.alloc(&mut cache).unwrap();
    let e = head.chain(last).unwrap_err();
    assert_eq!(
        e.kind,
        ChainErrorKind::TooManySegments {
            total: MAX_SEGS + 1,
            max: MAX_SEGS
        }
    );
    assert_eq!(head.nb_segs(), MAX_SEGS);
    let umbrella: MbufError = e.into(); // the tail is dropped with it
    assert!(matches!(
        umbrella,
        MbufError::Chain(ChainErrorKind::TooManySegments { .. })
    ));
    drop(cache);
    pool.mempool().flush_default_cache();
    assert_eq!(pool.in_use_count(), MAX_SEGS);

    // A clone of the longest chain is one too.
    let clones = PktPool::builder(MAX_SEGS)
        .data_room(0)
        .build_anonymous()
        .unwrap();
    let c = head.clone_in(&clones).unwrap();
    assert_eq!(c.nb_segs(), MAX_SEGS);
    assert!(head.segments().all(|s| s.refcnt() == 2));
    drop(c);
    assert!(head.segments().all(|s| s.refcnt() == 1));
    drop(head);
    assert_full(&[&pool, &clones]);
}

/// Segments of three pools (one of them the provider's, one with a private
/// area) in one chain, freed by drop, by bulk free and segment by segment:
/// every pool full after.
#[test]
fn chains_across_three_pools() {
    let a = anon(32);
    let b = PktPool::builder(32)
        .cache(8)
        .private_size(32)
        .build_on(common::provider())
        .unwrap();
    let c = PktPool::builder(32)
        .data_room(300)
        .build_anonymous()
        .unwrap();
    let pools = [&a, &b, &c];
    let build = |n: usize| -> Mbuf {
        let mut head = mbuf_with(pools[0], &[pattern(0)]);
        for i in 1..n {
            head.chain(mbuf_with(pools[i % 3], &[pattern(i)])).unwrap();
        }
        head
    };
    let m = build(30);
    assert_eq!(m.to_vec(), (0..30).map(pattern).collect::<Vec<_>>());
    drop(m);
    assert_full(&pools);
    pktmem_mbuf::free_bulk([build(10), build(10), build(10)]);
    assert_full(&pools);
    let mut ms = Some(build(30));
    while let Some(m) = ms {
        ms = m.free_first_segment();
    }
    assert_full(&pools);
}

/// A chain whose last segment is an external buffer, grown after chaining
/// (`append`, `grow_tail`): freeing it detaches that segment without tripping
/// over the inner segment's own (stale) packet length.
#[test]
fn growing_an_external_last_segment_then_freeing() {
    let pool = anon(8);
    let mut head = mbuf_with(&pool, b"hdr");
    let mut payload = pool.alloc_default().unwrap();
    payload
        .attach_extbuf(ExtBuf::from_owner(vec![0u8; 256], None).unwrap())
        .unwrap();
    payload.append(10).unwrap().fill(1);
    head.chain(payload).unwrap();
    let before = snapshot(&head);
    head.append(20).unwrap().fill(2);
    head.grow_tail(5).unwrap();
    assert_eq!((head.pkt_len(), head.nb_segs()), (3 + 35, 2));
    assert_ne!(snapshot(&head), before);
    assert_consistent(&head);
    drop(head);
    assert_full(&[&pool]);

    // The same with a clone as the last segment, grown in place.
    let d = mbuf_with(&pool, &[5; 40]);
    let mut head = mbuf_with(&pool, b"h");
    let mut c = d.clone_in(&pool).unwrap();
    c.trim(30).unwrap();
    head.chain(c).unwrap();
    head.grow_tail(30).unwrap();
    assert_eq!(head.to_vec().len(), 41);
    drop(head);
    drop(d);
    assert_full(&[&pool]);
}
