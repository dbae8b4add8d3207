//! Loom models of the ring (run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_ring`).
//! Small on purpose: capacities 2–4, two or three threads, a conservation
//! assertion each.

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread::{self, JoinHandle};
use pktmem::ring::{Hts, Ring, RingBuilder, Rts, SharedMode, Single};

/// A builder for a ring of 4 slots holding 3 (DPDK sizing). An RTS side
/// built from it is given no head-tail limit (the default, capacity / 8,
/// is 0 here and would serialise the claims these models are about).
fn four() -> RingBuilder<u32> {
    Ring::<u32>::builder(4).dpdk_sizing()
}

/// Runs `f` on a new thread with its own handle on `ring`.
fn spawn_with<T: Send + 'static, P: SharedMode, C: SharedMode, R, F>(
    ring: &Arc<Ring<T, P, C>>,
    f: F,
) -> JoinHandle<R>
where
    R: Send + 'static,
    F: FnOnce(&Ring<T, P, C>) -> R + Send + 'static,
{
    let ring = Arc::clone(ring);
    thread::spawn(move || f(&ring))
}

/// Runs `f(ring, v)` on one thread per value of `vals`; returns their
/// results in order.
fn each_on_a_thread<P: SharedMode, C: SharedMode, R: Send + 'static>(
    ring: &Arc<Ring<u32, P, C>>,
    vals: [u32; 2],
    f: fn(&Ring<u32, P, C>, u32) -> R,
) -> Vec<R> {
    let hs: Vec<_> = vals
        .into_iter()
        .map(|v| spawn_with(ring, move |ring| f(ring, v)))
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Dequeues what is left after `got`, and checks that together they are
/// exactly `want` (in any order) and that the ring ends empty.
fn assert_drains_to<P: SharedMode, C: SharedMode>(
    ring: &Ring<u32, P, C>,
    mut got: Vec<u32>,
    want: &[u32],
) {
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
fn enqueue_dequeue_conserves<P: SharedMode, C: SharedMode>(ring: Ring<u32, P, C>) {
    let ring = Arc::new(ring);
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
    loom::model(|| enqueue_dequeue_conserves(four().build().unwrap()));
}

/// The same on an RTS ring, where a finishing thread does not wait for
/// earlier claimers: the tail still ends up covering every finished
/// operation (nothing is left unpublished), and values are conserved.
#[test]
fn rts_conservation() {
    loom::model(|| {
        let b = four().producer(Rts).consumer(Rts);
        let b = b
            .producer_max_distance(u32::MAX)
            .consumer_max_distance(u32::MAX);
        enqueue_dequeue_conserves(b.build().unwrap());
    });
}

/// Two RTS producers publish to a consumer thread that only consumes: the
/// consumer sees both values, written before they were published.
#[test]
fn rts_producers_publish() {
    loom::model(|| {
        let b = four().producer(Rts).producer_max_distance(u32::MAX);
        let ring = Arc::new(b.build().unwrap());
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
                .producer(Rts)
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
            .producer(Single)
            .consumer(Single)
            .build()
            .unwrap()
            .split();
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
        let ring = Arc::new(Ring::<u32>::new(3).unwrap());
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
        let ring = Arc::new(four().consumer(Hts).build().unwrap());
        ring.enqueue_bulk(&[1, 2]).unwrap();
        let a = spawn_with(&ring, |ring| {
            let g = ring.dequeue_start(1);
            let v = g.get(0).copied();
            g.finish(1);
            v
        });
        let b = spawn_with(&ring, |ring| {
            let g = ring.dequeue_start(2);
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
        let ring = Arc::new(four().producer(Hts).build().unwrap());
        let a = spawn_with(&ring, |ring| {
            let mut w = ring.enqueue_start(2);
            w.push(7).unwrap();
            w.commit()
        });
        let b = spawn_with(&ring, |ring| ring.enqueue(8).is_ok());
        assert_eq!(a.join().unwrap(), 1);
        assert!(b.join().unwrap());
        assert_drains_to(&ring, Vec::new(), &[7, 8]);
    });
}

/// Owned values (boxes, each dropped exactly once or the model fails)
/// through a ring of 2: two producer threads each move one box in, the
/// consumer thread takes one out and drops it, and the ring drops what is
/// left when the last handle goes. Every box is dropped exactly once.
#[test]
fn owned_values_dropped_once() {
    use loom::sync::atomic::{AtomicUsize, Ordering};

    struct Counted(Box<u32>, Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            // Relaxed: the count is read after every thread has joined.
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let ring = Arc::new(Ring::<Counted>::new(2).unwrap());
        let ps: Vec<_> = [1u32, 2]
            .into_iter()
            .map(|v| {
                let (ring, drops) = (Arc::clone(&ring), Arc::clone(&drops));
                thread::spawn(move || {
                    ring.enqueue(Counted(Box::new(v), drops))
                        .map_err(|_| ())
                        .expect("room for both");
                })
            })
            .collect();
        let r2 = Arc::clone(&ring);
        let c = thread::spawn(move || r2.dequeue().map(|c| *c.0));
        for p in ps {
            p.join().unwrap();
        }
        let got = c.join().unwrap();
        let dropped = usize::from(got.is_some());
        assert_eq!(drops.load(Ordering::Relaxed), dropped);
        assert_eq!(ring.len(), 2 - dropped);
        drop(ring);
        assert_eq!(drops.load(Ordering::Relaxed), 2, "each box dropped once");
    });
}

/// The same with single-thread ends and a zero-copy consumer: the producer
/// moves two boxes in, the consumer peeks, pops the first (moving it out)
/// and leaves the rest; dropping the ends drops what is left, once.
#[test]
fn owned_values_through_single_ends_and_guards() {
    loom::model(|| {
        let (p, mut c) = Ring::<Box<u32>>::builder(2)
            .producer(Single)
            .consumer(Single)
            .build()
            .unwrap()
            .split();
        let t = thread::spawn(move || {
            for v in [1u32, 2] {
                let mut b = Box::new(v);
                loop {
                    match p.enqueue(b) {
                        Ok(()) => break,
                        Err(back) => {
                            b = back;
                            thread::yield_now();
                        }
                    }
                }
            }
        });
        let first = loop {
            let mut g = c.dequeue_start(2);
            if let Some(b) = g.pop() {
                break b;
            }
            drop(g);
            thread::yield_now();
        };
        assert_eq!(*first, 1);
        t.join().unwrap();
        assert_eq!(c.len(), 1);
        let g = c.dequeue_start(2);
        assert_eq!(g.get(0).map(|b| **b), Some(2));
        drop(g); // left in the ring, dropped with it
        drop(c);
    });
}

/// Multi-thread consumers share a cached copy of the producer tail: one
/// consumer's bulk dequeue of 2 finds only 1 element, refreshing the cache
/// on the way out (it claims nothing), and another consumer may claim from
/// that cached copy without reading the real tail. The element it reads
/// must have been written before (loom reports the slot access otherwise):
/// the refresher's Release store of the cache hands on what its Acquire
/// load of the producer tail took.
#[test]
fn multi_consumers_claim_from_the_cached_tail() {
    loom::model(|| {
        let ring = Arc::new(Ring::<Box<u32>>::new(2).unwrap());
        let r = Arc::clone(&ring);
        let p = thread::spawn(move || r.enqueue(Box::new(7)).map_err(|_| ()).unwrap());
        let r = Arc::clone(&ring);
        let refresher = thread::spawn(move || {
            let mut out = [
                std::mem::MaybeUninit::uninit(),
                std::mem::MaybeUninit::uninit(),
            ];
            assert!(
                r.dequeue_bulk_uninit(&mut out).is_err(),
                "only one was sent"
            );
        });
        let r = Arc::clone(&ring);
        let c = thread::spawn(move || r.dequeue().map(|b| *b));
        p.join().unwrap();
        refresher.join().unwrap();
        let got = c.join().unwrap();
        let rest = ring.dequeue().map(|b| *b);
        assert_eq!(got.xor(rest), Some(7), "the element arrives exactly once");
        assert!(ring.is_empty());
    });
}

/// The same on the producer side: a full ring of 2; a consumer takes one
/// element out; one producer's bulk enqueue of 2 cannot fit (refreshing the
/// producers' cached consumer tail on the way), and another producer may
/// reuse the freed slot on the strength of that cache alone. Its write must
/// come after the consumer's read (loom reports the slot access otherwise).
#[test]
fn multi_producers_claim_from_the_cached_tail() {
    loom::model(|| {
        let ring = Arc::new(Ring::<Box<u32>>::new(2).unwrap());
        ring.enqueue(Box::new(1)).map_err(|_| ()).unwrap();
        ring.enqueue(Box::new(2)).map_err(|_| ()).unwrap();
        let r = Arc::clone(&ring);
        let c = thread::spawn(move || r.dequeue().map(|b| *b));
        let r = Arc::clone(&ring);
        let refresher = thread::spawn(move || {
            let mut two = vec![Box::new(8), Box::new(9)];
            assert!(
                r.enqueue_bulk_from(&mut two).is_err(),
                "one slot free at most"
            );
            assert_eq!(two.len(), 2, "nothing moved");
        });
        let r = Arc::clone(&ring);
        let p = thread::spawn(move || r.enqueue(Box::new(3)).is_ok());
        let got = c.join().unwrap();
        refresher.join().unwrap();
        let sent = p.join().unwrap();
        assert_eq!(got, Some(1), "the consumer ran on a full ring");
        assert_eq!(ring.dequeue().map(|b| *b), Some(2));
        assert_eq!(ring.dequeue().map(|b| *b), sent.then_some(3));
        assert!(ring.is_empty());
    });
}

/// An HTS consumer pops a value out of a read guard, which hands its slot
/// back to the producers at once (before the guard ends); a producer
/// waiting on the full ring reuses that slot, and another consumer waits for
/// the guard. The producer's write must come after the pop's read (loom
/// reports the slot access otherwise), and every value arrives once.
#[test]
fn hts_pop_hands_the_slot_back() {
    loom::model(|| {
        let ring = Arc::new(Ring::<Box<u32>>::builder(2).consumer(Hts).build().unwrap());
        ring.enqueue(Box::new(1)).map_err(|_| ()).unwrap();
        ring.enqueue(Box::new(2)).map_err(|_| ()).unwrap();
        let a = spawn_with(&ring, |ring| {
            let mut g = ring.dequeue_start(2);
            let v = g.pop().map(|b| *b);
            drop(g); // consumes only the popped one
            v
        });
        let b = spawn_with(&ring, |ring| ring.dequeue().map(|b| *b));
        let p = spawn_with(&ring, |ring| ring.enqueue(Box::new(3)).is_ok());
        let mut got: Vec<u32> = [a.join().unwrap(), b.join().unwrap()]
            .into_iter()
            .flatten()
            .collect();
        let sent = p.join().unwrap();
        while let Some(v) = ring.dequeue() {
            got.push(*v);
        }
        got.sort_unstable();
        let want: &[u32] = if sent { &[1, 2, 3] } else { &[1, 2] };
        assert_eq!(got, want);
    });
}

/// A producer end enqueues two values and drops; the consumer takes values
/// until `try_dequeue` says the stream ended. `Disconnected` never comes
/// before a value the dropped producer enqueued (the Release decrement on
/// drop pairs with the consumer's Acquire load).
#[test]
fn disconnected_only_after_every_value() {
    loom::model(|| {
        let (p, c) = Ring::<u32>::builder(2)
            .producer(Single)
            .consumer(Single)
            .build()
            .unwrap()
            .split();
        let h = thread::spawn(move || {
            p.enqueue(1).unwrap();
            p.enqueue(2).unwrap();
        });
        let mut got = Vec::new();
        loop {
            match c.try_dequeue() {
                Ok(v) => got.push(v),
                Err(pktmem::ring::TryDequeueError::Empty) => thread::yield_now(),
                Err(pktmem::ring::TryDequeueError::Disconnected) => break,
                Err(e) => panic!("{e}"),
            }
        }
        h.join().unwrap();
        assert_eq!(got, [1, 2]);
    });
}
