//! Rings of owned, non-`Copy` values: what is left in a ring is dropped with
//! it exactly once (every mode, shared and split, heap and caller memory,
//! `reset`), a failed enqueue hands the value back, bulk and burst move
//! exactly what fits out of a `Vec` or `ArrayVec` (the rest stays, in
//! order), zero-copy guards move or drop each value once (also when a guard
//! is dropped or leaked), and values cross threads with none lost or
//! doubled.

// Test code names ends, guards and buffers `p`, `c`, `g`, `v` as the
// crate docs do, and keeps each randomised sequence in one function.
#![allow(
    clippy::many_single_char_names,
    clippy::similar_names,
    clippy::too_many_lines
)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrayvec::ArrayVec;
use common::{Drops, Tracked};
use pktmem_ring::{Hts, Mode, Multi, Ring, RingFull, Rts, Single};

fn leftovers_drop_with_split_ends<P: Mode, C: Mode>(p: P, c: C) {
    let drops = Drops::new(10);
    let (prod, cons) = Ring::<Tracked>::builder(8)
        .initial_index(u32::MAX - 3)
        .producer(p)
        .consumer(c)
        .build()
        .unwrap()
        .split();
    for id in 0..6 {
        prod.enqueue(drops.make(id)).unwrap();
    }
    let got = cons.dequeue().unwrap();
    assert_eq!(got.id, 0);
    drop(got);
    assert_eq!(drops.live(), 5);
    drop(prod);
    assert_eq!(drops.live(), 5, "the consumer end keeps the ring alive");
    drop(cons);
    assert_eq!(
        drops.live(),
        0,
        "{}/{}: leftovers dropped",
        P::NAME,
        C::NAME
    );
    drops.assert_all_dropped_once(6);
}

#[test]
fn leftovers_are_dropped_once_with_the_ring() {
    for_all_pairs();
    // A shared ring, dropped directly.
    let drops = Drops::new(8);
    let ring = Ring::<Tracked>::new(4).unwrap();
    for id in 0..3 {
        ring.enqueue(drops.make(id)).unwrap();
    }
    drop(ring);
    drops.assert_all_dropped_once(3);
    // `reset` drops them too, and the ring is usable after.
    let drops = Drops::new(8);
    let mut ring = Ring::<Tracked>::builder(4)
        .producer(Hts)
        .consumer(Rts)
        .build()
        .unwrap();
    for id in 0..4 {
        ring.enqueue(drops.make(id)).unwrap();
    }
    ring.reset();
    assert_eq!(drops.live(), 0);
    ring.enqueue(drops.make(4)).unwrap();
    assert_eq!(ring.dequeue().map(|t| t.id), Some(4));
    drops.assert_all_dropped_once(5);
}

fn for_all_pairs() {
    fn with<P: Mode>(p: P) {
        leftovers_drop_with_split_ends(p, Single);
        leftovers_drop_with_split_ends(p, Multi);
        leftovers_drop_with_split_ends(p, Hts);
        leftovers_drop_with_split_ends(p, Rts);
    }
    with(Single);
    with(Multi);
    with(Hts);
    with(Rts);
}

#[test]
fn a_failed_enqueue_hands_the_value_back() {
    let drops = Drops::new(4);
    let (p, c) = Ring::<Tracked>::builder(1)
        .producer(Single)
        .consumer(Single)
        .build()
        .unwrap()
        .split();
    p.enqueue(drops.make(0)).unwrap();
    let back = p.enqueue(drops.make(1)).unwrap_err();
    assert_eq!(back.id, 1);
    assert!(back.intact());
    assert_eq!(drops.live(), 2, "nothing dropped by the failed enqueue");
    assert_eq!(c.dequeue().map(|t| t.id), Some(0));
    p.enqueue(back).unwrap();
    assert_eq!(c.dequeue().map(|t| t.id), Some(1));
    drops.assert_all_dropped_once(2);
}

#[test]
fn bulk_and_burst_move_exactly_what_fits() {
    let drops = Drops::new(64);
    let ring = Ring::<Tracked>::new(5).unwrap();
    // Bulk from a Vec: all or nothing.
    let mut v: Vec<Tracked> = (0..6).map(|i| drops.make(i)).collect();
    assert_eq!(
        ring.enqueue_bulk_from(&mut v),
        Err(RingFull {
            requested: 6,
            free: 5
        })
    );
    assert_eq!(v.len(), 6, "a failed bulk moves nothing");
    assert!(ring.is_empty());
    v.truncate(3); // drops ids 3, 4, 5
    ring.enqueue_bulk_from(&mut v).unwrap();
    assert!(v.is_empty());
    // Burst from an ArrayVec: as many as fit, the rest stay in order.
    let mut a: ArrayVec<Tracked, 8> = (6..10).map(|i| drops.make(i)).collect();
    assert_eq!(ring.enqueue_burst_from(&mut a), 2);
    assert_eq!(a.iter().map(|t| t.id).collect::<Vec<_>>(), [8, 9]);
    assert_eq!(ring.enqueue_burst_from(&mut a), 0, "full");
    drop(a);
    assert_eq!(drops.live(), 5);
    // Out into an ArrayVec that has room for 3 of the 5.
    let mut out: ArrayVec<Tracked, 4> = ArrayVec::new();
    out.push(drops.make(10));
    assert_eq!(ring.dequeue_burst_into(&mut out, 10), 3);
    assert_eq!(out.iter().map(|t| t.id).collect::<Vec<_>>(), [10, 0, 1, 2]);
    // The rest into a Vec, which grows.
    let mut rest = Vec::new();
    assert_eq!(ring.dequeue_burst_into(&mut rest, 10), 2);
    assert_eq!(rest.iter().map(|t| t.id).collect::<Vec<_>>(), [6, 7]);
    drop((out, rest));
    drops.assert_all_dropped_once(11);
}

#[test]
fn zero_copy_guards_move_or_drop_each_value_once() {
    let drops = Drops::new(32);
    let (mut p, mut c) = Ring::<Tracked>::builder(8)
        .producer(Single)
        .consumer(Hts)
        .build()
        .unwrap()
        .split();
    // Pushed then dropped uncommitted: the pushed values are dropped.
    {
        let mut w = p.enqueue_start(4);
        w.push(drops.make(0)).unwrap();
        w.push(drops.make(1)).unwrap();
    }
    assert_eq!((drops.dropped(0), drops.dropped(1)), (1, 1));
    assert!(c.is_empty());
    // A full guard hands the value back.
    let mut w = p.enqueue_start(1);
    w.push(drops.make(2)).unwrap();
    assert_eq!(w.push(drops.make(3)).unwrap_err().id, 3);
    assert_eq!(w.commit(), 1);
    // All or nothing in place.
    let mut w = p.enqueue_start_bulk(3).unwrap();
    for id in 4..7 {
        w.push(drops.make(id)).unwrap();
    }
    w.commit();
    assert_eq!(c.len(), 4);
    // Peek, pop one, finish one (dropped in place), leave the rest.
    let mut g = c.dequeue_start(8);
    assert_eq!(g.get(0).map(|t| t.id), Some(2));
    assert_eq!(g.pop().map(|t| t.id), Some(2));
    assert_eq!(g.len(), 3);
    g.finish(1);
    assert_eq!(drops.dropped(4), 1, "finish drops in place");
    assert_eq!(c.len(), 2);
    // A leaked read guard that popped: what it popped is not dropped again
    // by the ring, what it did not pop stays in the ring.
    let mut g = c.dequeue_start(8);
    let five = g.pop().unwrap();
    std::mem::forget(g);
    assert_eq!(five.id, 5);
    drop(five);
    // (The HTS consumer side is blocked for good by the leaked guard; the
    // producer side still works.)
    p.enqueue(drops.make(7)).unwrap();
    drop((p, c));
    for id in [0, 1, 2, 3, 4, 5, 6, 7] {
        assert_eq!(drops.dropped(id), 1, "value {id}");
    }
    assert_eq!(drops.live(), 0);
}

/// A leaked write guard leaks what it holds, and the ring never drops it
/// (a second drop would be a double free). Leaks on purpose, so not run
/// under the leak sanitizer (`.ci/sanitizers` builds with `--cfg pktmem_asan`).
#[test]
#[cfg_attr(pktmem_asan, ignore = "leaks a value on purpose")]
fn a_leaked_write_guard_leaks_its_values_once() {
    let drops = Drops::new(4);
    let (mut p, c) = Ring::<Tracked>::builder(4)
        .producer(Single)
        .consumer(Single)
        .build()
        .unwrap()
        .split();
    p.enqueue(drops.make(0)).unwrap();
    let mut w = p.enqueue_start(1);
    w.push(drops.make(1)).unwrap();
    std::mem::forget(w);
    assert_eq!(c.len(), 1, "the uncommitted value is not published");
    drop((p, c));
    assert_eq!(drops.dropped(0), 1, "the published value is dropped once");
    assert_eq!(drops.dropped(1), 0, "leaked with its guard");
    assert_eq!(drops.live(), 1);
}

/// A producer thread sends owned values to a consumer thread that keeps
/// some and drops the others; the consumer stops early, so the ring drops
/// what is left. Every value is dropped exactly once.
fn across_threads<P: Mode, C: Mode>(p: P, c: C) {
    const N: u64 = 20_000;
    let drops = Drops::new(N as usize);
    let (prod, cons) = Ring::<Tracked>::builder(64)
        .initial_index(u32::MAX - 1_000)
        .producer(p)
        .consumer(c)
        .build()
        .unwrap()
        .split();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = Arc::clone(&stop);
    let d2 = drops.clone();
    let producer = std::thread::spawn(move || {
        let mut batch: Vec<Tracked> = Vec::new();
        let mut next = 0;
        let deadline = Instant::now() + Duration::from_secs(30);
        // Relaxed: only a stop request; the values travel through the ring.
        while next < N && !stop2.load(Ordering::Relaxed) && Instant::now() < deadline {
            while batch.len() < 16 && next < N {
                batch.push(d2.make(next));
                next += 1;
            }
            if next % 3 == 0 {
                let _ = prod.enqueue_bulk_from(&mut batch);
            } else {
                prod.enqueue_burst_from(&mut batch);
            }
        }
        drop(batch); // what did not fit
        next
    });
    let mut kept = Vec::new();
    let mut expect = 0;
    let mut out = Vec::new();
    while expect < N / 2 {
        out.clear();
        cons.dequeue_burst_into(&mut out, 8);
        for t in out.drain(..) {
            assert_eq!(t.id, expect, "in order, once");
            assert!(t.intact());
            expect += 1;
            if t.id % 100 == 0 {
                kept.push(t);
            }
        }
    }
    // Relaxed: see above.
    stop.store(true, Ordering::Relaxed);
    let made = producer.join().unwrap();
    assert!(drops.live() > kept.len(), "values were left in the ring");
    drop(cons);
    assert_eq!(drops.live(), kept.len(), "the ring dropped what it held");
    drop(kept);
    drops.assert_all_dropped_once(made);
}

#[test]
fn owned_values_cross_threads_once() {
    across_threads(Single, Single);
    across_threads(Multi, Multi);
    across_threads(Hts, Rts);
    across_threads(Rts, Hts);
}

#[test]
fn a_huge_burst_into_a_vec_asks_only_for_what_the_ring_holds() {
    let ring = Ring::<String>::new(4).unwrap();
    ring.enqueue("a".into()).unwrap();
    let mut out = Vec::new();
    assert_eq!(ring.dequeue_burst_into(&mut out, usize::MAX), 1);
    assert!(out.capacity() < 1024, "reserved {}", out.capacity());
}
