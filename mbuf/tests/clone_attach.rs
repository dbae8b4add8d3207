//! Indirect mbufs: clones of chains (each segment's refcount, the data),
//! clones from an exhausted pool (nothing taken, counts back), attach to an
//! indirect mbuf (goes to the direct one), attach across pools with
//! different private sizes (`test_attach_from_different_pool`), detach, and
//! the refused attaches (typed errors, mbuf unchanged).

mod common;

use common::{
    anon, assert_consistent, assert_fresh, assert_full, chain_of, mbuf_with, pattern, snapshot,
};
use pktmem_mbuf::{AttachErrorKind, CloneError, ExtBuf, MbufError, PktPool, HEADER_SIZE, HEADROOM};

/// A clone of a chain: one indirect segment per segment, pointing at the
/// same bytes; every direct segment's refcount up by one per clone, back
/// when the clones go, in any order.
#[test]
fn clones_of_chains_count_every_segment() {
    let pool = anon(64);
    let m = chain_of(&pool, &[10, 0, 20, 5]);
    let mut clones = Vec::new();
    for k in 1..=5u16 {
        let c = if k % 2 == 0 {
            clones.last().map_or_else(
                || m.clone_in(&pool),
                |c: &pktmem_mbuf::Mbuf| c.clone_in(&pool),
            )
        } else {
            let mut cache = pool.cache();
            let c = m.clone_in_cache(&pool, &mut cache);
            drop(cache);
            c
        }
        .unwrap();
        assert_eq!((c.nb_segs(), c.pkt_len()), (4, 35));
        assert_eq!(c.to_vec(), m.to_vec());
        assert!(c.segments().all(|s| s.is_indirect() && s.refcnt() == 1));
        for (cs, ms) in c.segments().zip(m.segments()) {
            assert_eq!(cs.data().as_ptr(), ms.data().as_ptr());
            assert_eq!(
                (cs.data_len(), cs.headroom(), cs.buf_len()),
                (ms.data_len(), ms.headroom(), ms.buf_len())
            );
        }
        assert_consistent(&c);
        clones.push(c);
        assert!(
            m.segments().all(|s| s.refcnt() == 1 + k),
            "after {k} clones"
        );
    }
    // Drop from the middle, then the original, then the rest.
    clones.remove(2);
    assert!(m.segments().all(|s| s.refcnt() == 5));
    drop(m);
    for c in &clones {
        assert_eq!(c.to_vec(), (0..35).map(pattern).collect::<Vec<_>>());
    }
    drop(clones);
    assert_full(&[&pool]);
}

/// A clone from a pool that cannot give every segment fails with the
/// numbers, takes nothing (pool counts) and leaves every refcount as it
/// was.
#[test]
fn clone_from_an_exhausted_pool_takes_nothing() {
    let pool = anon(16);
    let clones = anon(5);
    let m = chain_of(&pool, &[1, 2, 3, 4, 5, 6]);
    let hold: Vec<_> = (0..2).map(|_| clones.alloc_default().unwrap()).collect();
    let before = snapshot(&m);
    let e = m.clone_in(&clones).unwrap_err();
    assert_eq!(
        e,
        CloneError::Exhausted {
            needed: 6,
            obtained: 3
        }
    );
    assert!(
        e.to_string().contains('6') && e.to_string().contains('3'),
        "{e}"
    );
    assert_eq!(snapshot(&m), before, "refcounts unchanged");
    assert_eq!(clones.in_use_count(), 2, "what it took went back");
    drop(hold);
    let c = m.clone_in(&clones).unwrap_err();
    assert_eq!(
        c,
        CloneError::Exhausted {
            needed: 6,
            obtained: 5
        }
    );
    assert_eq!(snapshot(&m), before);
    let umbrella: MbufError = c.into();
    assert!(matches!(
        umbrella,
        MbufError::Clone(CloneError::Exhausted { .. })
    ));
    assert_full(&[&clones]);
    drop(m);
    assert_full(&[&pool]);
}

/// The reference's `test_attach_from_different_pool`: mbufs of a pool
/// with a 128-byte private area and no data room attach to an mbuf of a
/// normal pool (and to one of its clones: that goes to the direct mbuf);
/// detach restores their own (empty) buffers.
#[test]
fn attach_from_a_pool_with_another_private_size() {
    let pool = anon(8);
    let pool2 = PktPool::builder(8)
        .private_size(128)
        .data_room(0)
        .build_anonymous()
        .unwrap();
    let mut m = mbuf_with(&pool, b"direct data");
    m.prepend(2).unwrap().copy_from_slice(b"<<");
    let data = m.data().as_ptr();

    let mut clone = pool2.alloc_default().unwrap();
    assert_eq!((pool2.data_room(), pool2.private_size()), (0, 128));
    clone.private_area_mut().fill(0);
    let own = clone.data().as_ptr();
    assert_eq!(
        own as usize,
        std::ptr::from_ref(clone.header()) as usize + HEADER_SIZE + 128
    );
    assert_eq!(clone.headroom(), 0);
    clone.attach(&m).unwrap();
    assert_eq!(clone.data().as_ptr(), data);
    assert_eq!(clone.headroom(), HEADROOM - 2);
    assert_eq!(clone.data(), b"<<direct data");
    assert!(clone.is_indirect());
    assert_eq!(m.refcnt(), 2);

    let mut clone2 = pool2.alloc_default().unwrap();
    let own2 = clone2.data().as_ptr();
    clone2.attach(&clone).unwrap();
    assert_eq!(clone2.data().as_ptr(), data, "attached to the direct mbuf");
    assert_eq!(m.refcnt(), 3);
    assert_eq!(
        clone.refcnt(),
        1,
        "the indirect mbuf's own count is untouched"
    );

    clone.detach();
    assert_eq!(clone.data().as_ptr(), own);
    assert!(clone.is_direct());
    assert_eq!(
        (clone.data_len(), clone.pkt_len(), clone.buf_len()),
        (0, 0, 0)
    );
    assert_eq!(m.refcnt(), 2);
    clone2.detach();
    assert_eq!(clone2.data().as_ptr(), own2);
    assert_eq!(m.refcnt(), 1);
    assert_fresh(&clone2);
    // Detaching a direct mbuf is nothing.
    let before = snapshot(&m);
    m.detach();
    assert_eq!(snapshot(&m), before);
    drop((clone, clone2));
    assert_full(&[&pool2]);
    // Metadata travels with an attach.
    m.set_port(Some(9));
    m.set_rss_hash(77);
    m.set_vlan_tci(5);
    let mut i = pool.alloc_default().unwrap();
    i.attach(&m).unwrap();
    assert_eq!((i.port(), i.rss_hash(), i.vlan_tci()), (Some(9), 77, 5));
    drop((i, m));
    assert_full(&[&pool]);
}

/// Attaching to the head of a chain attaches to its first segment only.
#[test]
fn attach_to_a_chain_takes_its_first_segment() {
    let pool = anon(8);
    let m = chain_of(&pool, &[4, 6]);
    let mut i = pool.alloc_default().unwrap();
    i.attach(&m).unwrap();
    assert_eq!((i.nb_segs(), i.pkt_len()), (1, 4));
    assert_eq!(i.data(), &[0, 1, 2, 3]);
    assert_eq!(m.refcnt(), 2);
    assert_eq!(m.segments().nth(1).unwrap().refcnt(), 1);
    assert_consistent(&i);
    drop((m, i));
    assert_full(&[&pool]);
}

/// The refused attaches: already attached (indirect or external), not
/// writable (shared own buffer), a chain; each typed, the mbuf and the
/// target unchanged.
#[test]
fn refused_attaches_leave_everything_unchanged() {
    let pool = anon(16);
    let target = mbuf_with(&pool, b"target");
    let other = mbuf_with(&pool, b"other");

    // Already attached to an mbuf.
    let mut i = pool.alloc_default().unwrap();
    i.attach(&target).unwrap();
    let (bi, bt, bo) = (snapshot(&i), snapshot(&target), snapshot(&other));
    assert_eq!(i.attach(&other), Err(AttachErrorKind::AlreadyAttached));
    let ext = ExtBuf::from_owner(vec![0u8; 32], None).unwrap();
    let e = i.attach_extbuf(ext.clone()).unwrap_err();
    assert_eq!(e.kind, AttachErrorKind::AlreadyAttached);
    assert_eq!(
        ext.refcnt(),
        2,
        "the refused reference comes back in the error"
    );
    drop(e);
    assert_eq!(ext.refcnt(), 1);
    assert_eq!(
        (snapshot(&i), snapshot(&target), snapshot(&other)),
        (bi, bt, bo.clone())
    );

    // Already attached to an external buffer.
    let mut x = pool.alloc_default().unwrap();
    x.attach_extbuf(ext.clone()).unwrap();
    let bx = snapshot(&x);
    assert_eq!(x.attach(&other), Err(AttachErrorKind::AlreadyAttached));
    let e = x.attach_extbuf(ext.clone()).unwrap_err();
    assert_eq!(e.kind, AttachErrorKind::AlreadyAttached);
    drop(e);
    assert_eq!(ext.refcnt(), 2);
    assert_eq!(snapshot(&x), bx);

    // Not writable: its own buffer is shared with a clone.
    let mut shared = mbuf_with(&pool, b"shared");
    let c = shared.clone_in(&pool).unwrap();
    let bs = snapshot(&shared);
    assert_eq!(shared.attach(&other), Err(AttachErrorKind::NotWritable));
    let e = shared.attach_extbuf(ext.clone()).unwrap_err();
    assert_eq!(e.kind, AttachErrorKind::NotWritable);
    drop(e);
    assert_eq!(snapshot(&shared), bs);
    assert_eq!(snapshot(&other), bo);
    assert_eq!(c.data(), b"shared");

    // A chain.
    let mut chain = chain_of(&pool, &[1, 1, 1]);
    let bc = snapshot(&chain);
    assert_eq!(
        chain.attach(&other),
        Err(AttachErrorKind::Chained { nb_segs: 3 })
    );
    let e = chain.attach_extbuf(ext.clone()).unwrap_err();
    assert_eq!(e.kind, AttachErrorKind::Chained { nb_segs: 3 });
    assert!(e.to_string().contains('3'), "{e}");
    drop(e);
    assert_eq!(snapshot(&chain), bc);

    // Itself: `attach(&mut self, &Mbuf)` cannot be called with one mbuf
    // for both in safe code (two handles of one mbuf cannot exist), so
    // `SelfAttach` is unreachable here; its message is checked.
    assert!(AttachErrorKind::SelfAttach.to_string().contains("itself"));

    let umbrella: MbufError = AttachErrorKind::NotWritable.into();
    assert!(matches!(
        umbrella,
        MbufError::Attach(AttachErrorKind::NotWritable)
    ));
    drop((i, x, shared, c, chain, target, other, ext));
    assert_full(&[&pool]);
}

/// A refcount at its 16-bit maximum refuses one more clone or attach with a
/// typed error, taking nothing.
#[test]
fn refcount_at_its_maximum_refuses_more() {
    let max = usize::from(u16::MAX);
    let pool = anon(2);
    let clones = PktPool::builder(max + 1)
        .data_room(0)
        .build_anonymous()
        .unwrap();
    let m = mbuf_with(&pool, b"popular");
    let mut cache = clones.cache();
    let mut cs = Vec::with_capacity(max);
    for _ in 1..max {
        cs.push(m.clone_in_cache(&clones, &mut cache).unwrap());
    }
    assert_eq!(m.refcnt(), u16::MAX);
    // A count the API can build passes the sanity check (the reference
    // flags 65,535 as bad; here it is a reachable, valid count).
    m.check().unwrap();
    let before = snapshot(&m);
    assert_eq!(
        m.clone_in_cache(&clones, &mut cache).unwrap_err(),
        CloneError::RefcntOverflow
    );
    let mut i = clones.alloc(&mut cache).unwrap();
    assert_eq!(i.attach(&m), Err(AttachErrorKind::RefcntOverflow));
    assert!(i.is_direct());
    assert_eq!(snapshot(&m), before);
    assert_eq!(
        clones.in_use_count(),
        max,
        "the failed clone's mbuf went back"
    );
    // A clone of a clone also goes to the direct mbuf: refused too.
    assert_eq!(
        cs[0].clone_in_cache(&clones, &mut cache).unwrap_err(),
        CloneError::RefcntOverflow
    );
    clones.free(&mut cache, i);
    for c in cs.drain(..) {
        clones.free(&mut cache, c);
    }
    assert_eq!(m.refcnt(), 1);
    drop(cache);
    drop(m);
    assert_full(&[&pool, &clones]);
}

/// `data_mut` is refused while a clone exists, and comes back after.
#[test]
fn data_mut_follows_the_refcount() {
    let pool = anon(4);
    let mut m = mbuf_with(&pool, b"abcd");
    m.data_mut().unwrap()[0] = b'A';
    let c = m.clone_in(&pool).unwrap();
    assert!(m.data_mut().is_none());
    drop(c);
    m.data_mut().unwrap()[1] = b'B';
    assert_eq!(m.data(), b"ABcd");
    drop(m);
    assert_full(&[&pool]);
}

/// `SharedMbuf::try_clone` when one segment's refcount is at its maximum:
/// `None`, and the segments it had already counted go back.
#[test]
fn shared_clone_at_the_maximum_takes_nothing() {
    let max = usize::from(u16::MAX);
    let pool = anon(4);
    let clones = PktPool::builder(max)
        .data_room(0)
        .build_anonymous()
        .unwrap();
    let mut m = mbuf_with(&pool, b"head");
    let t = mbuf_with(&pool, b"tail");
    let mut cache = clones.cache();
    let held: Vec<_> = (1..max)
        .map(|_| t.clone_in_cache(&clones, &mut cache).unwrap())
        .collect();
    m.chain(t).unwrap();
    let counts = |m: &pktmem_mbuf::Mbuf| {
        m.segments()
            .map(pktmem_mbuf::Segment::refcnt)
            .collect::<Vec<_>>()
    };
    assert_eq!(counts(&m), [1, u16::MAX]);
    let s = m.into_shared();
    assert!(s.try_clone().is_none());
    assert_eq!(counts(&s), [1, u16::MAX], "the head's count went back");
    // Once a reference goes, a clone works and counts every segment.
    let mut held = held;
    clones.free(&mut cache, held.pop().unwrap());
    let s2 = s.try_clone().unwrap();
    assert_eq!(counts(&s2), [2, u16::MAX]);
    let s = s.into_unique().unwrap_err();
    drop(s2);
    let m = s.into_unique().unwrap_err(); // the tail is still shared by the clones
    for c in held {
        clones.free(&mut cache, c);
    }
    let mut m = m.into_unique().unwrap();
    assert!(m.data_mut().is_some());
    assert_eq!(m.to_vec(), b"headtail");
    drop(cache);
    drop(m);
    assert_full(&[&pool, &clones]);
}
