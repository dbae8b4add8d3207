//! Loom models of the ring (run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_ring`).
//! Small on purpose: capacities 2–4, two or three threads, a conservation
//! assertion each.

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread::{self, JoinHandle};
use pktmem::ring::{Ring, SyncMode};

/// A shared ring of 4 slots (holds 3) with these producer and consumer
/// modes. An RTS side gets no head-tail limit (the default, capacity / 8,
/// is 0 here and would serialise the claims these models are about).
fn ring4(producer: SyncMode, consumer: SyncMode) -> Arc<Ring<u32>> {
    let mut b = Ring::<u32>::builder(4)
        .producer(producer)
        .consumer(consumer);
    if producer == SyncMode::Rts {
        b = b.producer_max_distance(u32::MAX);
    }
    if consumer == SyncMode::Rts {
        b = b.consumer_max_distance(u32::MAX);
    }
    Arc::new(b.build().unwrap())
}

/// Runs `f` on a new thread with its own handle on `ring`.
fn spawn_with<R, F>(ring: &Arc<Ring<u32>>, f: F) -> JoinHandle<R>
where
    R: Send + 'static,
    F: FnOnce(&Ring<u32>) -> R + Send + 'static,
{
    let ring = Arc::clone(ring);
    thread::spawn(move || f(&ring))
}

/// Runs `f(ring, v)` on one thread per value of `vals`; returns their
/// results in order.
fn each_on_a_thread<R: Send + 'static>(
    ring: &Arc<Ring<u32>>,
    vals: [u32; 2],
    f: fn(&Ring<u32>, u32) -> R,
) -> Vec<R> {
    let hs: Vec<_> = vals
        .into_iter()
        .map(|v| spawn_with(ring, move |ring| f(ring, v)))
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Dequeues what is left after `got`, and checks that together they are
/// exactly `want` (in any order) and that the ring ends empty.
fn assert_drains_to(ring: &Ring<u32>, mut got: Vec<u32>, want: &[u32]) {
    while let Some(v) = ring.dequeue() {
        got.push(v);
    }
    got.sort_unstable();
    assert_eq!(got, want);
    assert!(ring.is_empty());
}

/// Two threads each enqueue one value and dequeue one; every finished
/// enqueue is published (dequeued or still in the ring) and values are
/// conserved.
fn enqueue_dequeue_conserves(ring: Arc<Ring<u32>>) {
    let got: Vec<u32> = each_on_a_thread(&ring, [10, 20], |ring, v| {
        ring.enqueue(v).unwrap();
        ring.dequeue()
    })
    .into_iter()
    .flatten()
    .collect();
    assert_eq!(ring.len() + got.len(), 2, "an enqueue was never published");
    assert_drains_to(&ring, got, &[10, 20]);
}

/// Two threads each enqueue one value and dequeue one: whatever interleaving,
/// the values dequeued plus those left are exactly the values enqueued.
#[test]
fn mpmc_conservation() {
    loom::model(|| enqueue_dequeue_conserves(ring4(SyncMode::Multi, SyncMode::Multi)));
}

/// The same on an RTS ring, where a finishing thread does not wait for
/// earlier claimers: the tail still ends up covering every finished
/// operation (nothing is left unpublished), and values are conserved.
#[test]
fn rts_conservation() {
    loom::model(|| enqueue_dequeue_conserves(ring4(SyncMode::Rts, SyncMode::Rts)));
}

/// Two RTS producers publish to a consumer thread that only consumes: the
/// consumer sees both values, written before they were published.
#[test]
fn rts_producers_publish() {
    loom::model(|| {
        let ring = ring4(SyncMode::Rts, SyncMode::Multi);
        let ps: Vec<_> = [10u32, 20]
            .into_iter()
            .map(|v| spawn_with(&ring, move |ring| ring.enqueue(v).unwrap()))
            .collect();
        let c = spawn_with(&ring, |ring| {
            let mut got = Vec::new();
            while got.len() < 2 {
                match ring.dequeue() {
                    Some(v) => got.push(v),
                    None => thread::yield_now(),
                }
            }
            got
        });
        for p in ps {
            p.join().unwrap();
        }
        assert_drains_to(&ring, c.join().unwrap(), &[10, 20]);
    });
}

/// RTS producers under a head-tail distance limit of 1: each thread
/// enqueues twice, so a third claim must wait for an earlier one to be
/// published. Nothing is lost, nothing is stuck (the model would not finish).
#[test]
fn rts_distance_limit() {
    loom::model(|| {
        let ring = Arc::new(
            Ring::<u32>::builder(4)
                .exact_size(true)
                .producer(SyncMode::Rts)
                .producer_max_distance(1)
                .build()
                .unwrap(),
        );
        each_on_a_thread(&ring, [10, 20], |ring, v| {
            ring.enqueue(v).unwrap();
            ring.enqueue(v + 1).unwrap();
        });
        assert_drains_to(&ring, Vec::new(), &[10, 11, 20, 21]);
    });
}

/// A single producer sends 1, 2, 3 through a ring of exactly 2; the single
/// consumer gets them in order.
#[test]
fn spsc_in_order() {
    loom::model(|| {
        let (p, c) = Ring::<u64>::builder(2)
            .exact_size(true)
            .build_spsc()
            .unwrap();
        let t = thread::spawn(move || {
            for v in 1..=3u64 {
                while p.enqueue(v).is_err() {
                    thread::yield_now();
                }
            }
        });
        for want in 1..=3u64 {
            loop {
                if let Some(v) = c.dequeue() {
                    assert_eq!(v, want);
                    break;
                }
                thread::yield_now();
            }
        }
        t.join().unwrap();
        assert!(c.is_empty());
    });
}

/// Two producers race bulk enqueues of two into a ring of exactly three while
/// a consumer bulk-dequeues two: a bulk moves all or nothing, pairs stay
/// together and in order, and nothing is lost or made up.
#[test]
fn bulk_all_or_nothing_under_contention() {
    loom::model(|| {
        let ring = Arc::new(Ring::<u32>::builder(3).exact_size(true).build().unwrap());
        let producers: Vec<_> = [100u32, 200]
            .into_iter()
            .map(|base| {
                spawn_with(&ring, move |ring| {
                    ring.enqueue_bulk(&[base, base + 1]).is_ok().then_some(base)
                })
            })
            .collect();
        let consumer = spawn_with(&ring, |ring| {
            let mut out = [0u32; 2];
            ring.dequeue_bulk(&mut out).ok().map(|_| out)
        });
        let sent: Vec<u32> = producers
            .into_iter()
            .filter_map(|h| h.join().unwrap())
            .collect();
        assert!(!sent.is_empty(), "the first bulk always fits");
        let mut got = Vec::new();
        if let Some(pair) = consumer.join().unwrap() {
            assert_eq!(pair[1], pair[0] + 1, "a bulk dequeue split a pair");
            assert!(sent.contains(&pair[0]));
            got.extend(pair);
        }
        let len = ring.len();
        assert_eq!(len % 2, 0, "a bulk enqueue was partial");
        let mut rest = vec![0u32; len];
        ring.dequeue_bulk(&mut rest).unwrap();
        got.extend(rest);
        let mut want: Vec<u32> = sent.iter().flat_map(|&b| [b, b + 1]).collect();
        want.sort_unstable();
        got.sort_unstable();
        assert_eq!(got, want);
    });
}

/// An HTS consumer side: one thread peeks two and consumes none, then
/// dequeues one; another peeks one and consumes it. Each element is consumed
/// exactly once, and a peek sees elements in ring order.
#[test]
fn hts_peek() {
    loom::model(|| {
        let ring = ring4(SyncMode::Multi, SyncMode::Hts);
        ring.enqueue_bulk(&[1, 2]).unwrap();
        let a = spawn_with(&ring, |ring| {
            let g = ring.dequeue_start(1).unwrap();
            let v = g.get(0);
            g.finish(1);
            v
        });
        let b = spawn_with(&ring, |ring| {
            let g = ring.dequeue_start(2).unwrap();
            let mut peek = [0u32; 2];
            let n = g.copy_to(&mut peek);
            if n == 2 {
                assert_eq!(peek, [1, 2], "peek out of order");
            }
            drop(g); // consumes nothing
            ring.dequeue()
        });
        let got = [a.join().unwrap(), b.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        assert_drains_to(&ring, got, &[1, 2]);
    });
}

/// HTS producers: one reserves in place and commits one of two slots while
/// another enqueues; both values arrive once, and the uncommitted slot is
/// never seen.
#[test]
fn hts_zero_copy_enqueue() {
    loom::model(|| {
        let ring = ring4(SyncMode::Hts, SyncMode::Multi);
        let a = spawn_with(&ring, |ring| {
            let mut w = ring.enqueue_start(2).unwrap();
            w.push(7).unwrap();
            w.commit()
        });
        let b = spawn_with(&ring, |ring| ring.enqueue(8).is_ok());
        assert_eq!(a.join().unwrap(), 1);
        assert!(b.join().unwrap());
        assert_drains_to(&ring, Vec::new(), &[7, 8]);
    });
}
