//! Across crates, in safe code only: `PoolBox`es from a typed pool cross a
//! `Ring<PoolBox<T>>` to another thread (one at a time through every pair of
//! single and shared ends, and in bulk) and come back to their pool, and
//! boxes still in flight keep the pool alive after its last handle is
//! dropped. A drop counter on the boxed values and the
//! pool's own counts prove nothing leaks or is dropped twice, including what
//! is left in a ring when it goes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pktmem::hugemem::Provider;
use pktmem::mempool::{PoolBox, TypedPool};
use pktmem::ring::{Mode, Multi, Ring, Single};

/// A value whose drops are counted.
struct Item {
    seq: u64,
    drops: Arc<AtomicUsize>,
}

impl Drop for Item {
    fn drop(&mut self) {
        // Relaxed: read after the threads are joined.
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

fn provider() -> Provider {
    Provider::builder().quiet(true).build().unwrap()
}

/// Bulk out through one ring, back through another: the worker checks and
/// returns every box; the main thread drops them (back to the pool).
#[test]
fn boxes_go_to_a_worker_in_bulk_and_back() {
    const ROUNDS: u64 = 200;
    const BULK: usize = 32;
    let provider = provider();
    let pool = TypedPool::<Item>::builder(2 * BULK)
        .name("through-ring")
        .cache(8)
        .build_on(&provider)
        .unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let (to_worker, from_main) = Ring::<PoolBox<Item>>::new(BULK).unwrap().split();
    let (to_main, from_worker) = Ring::<PoolBox<Item>>::new(BULK).unwrap().split();
    let worker = std::thread::spawn(move || {
        let mut seen = 0u64;
        let mut batch: Vec<PoolBox<Item>> = Vec::with_capacity(BULK);
        while seen < ROUNDS * BULK as u64 {
            from_main.dequeue_burst_into(&mut batch, BULK);
            for b in &batch {
                assert_eq!(b.seq, seen, "in order, once");
                seen += 1;
            }
            while !batch.is_empty() {
                to_main.enqueue_burst_from(&mut batch);
                std::hint::spin_loop();
            }
        }
    });
    let mut cache = pool.pool().cache();
    let mut seq = 0;
    for _ in 0..ROUNDS {
        let mut batch: Vec<PoolBox<Item>> = (0..BULK)
            .map(|_| {
                let item = Item {
                    seq,
                    drops: Arc::clone(&drops),
                };
                seq += 1;
                pool.alloc_in(&mut cache, item)
                    .ok()
                    .expect("pool holds two bulks")
            })
            .collect();
        assert!(batch.iter().all(|b| pool.pool().owns(b.obj())));
        to_worker.enqueue_bulk_from(&mut batch).unwrap();
        assert!(batch.is_empty(), "all moved into the ring");
        let mut back = Vec::with_capacity(BULK);
        while back.len() < BULK {
            let want = BULK - back.len();
            from_worker.dequeue_burst_into(&mut back, want);
        }
        // Dropped here: each value once, each object back to the pool.
        drop(back);
    }
    worker.join().unwrap();
    drop(cache);
    pool.pool().flush_default_cache();
    assert_eq!(drops.load(Ordering::Relaxed), (ROUNDS as usize) * BULK);
    assert!(pool.pool().is_full(), "every object back");
    pool.pool().audit().unwrap();
}

/// Boxes left in a ring when the pool's handles are gone: the boxes keep
/// the pool alive, and dropping the ring drops each value once and returns
/// its object.
#[test]
fn boxes_in_a_ring_outlive_the_pool_handle() {
    let provider = provider();
    let pool = TypedPool::<Item>::builder(16).build_on(&provider).unwrap();
    let raw = pool.pool().clone();
    let drops = Arc::new(AtomicUsize::new(0));
    let ring = Ring::<PoolBox<Item>>::new(16).unwrap();
    for seq in 0..10 {
        let item = Item {
            seq,
            drops: Arc::clone(&drops),
        };
        ring.enqueue(pool.alloc(item).ok().unwrap()).ok().unwrap();
    }
    drop(pool);
    let ring = std::thread::spawn(move || {
        // On another thread: take two, drop them there.
        drop(ring.dequeue().unwrap());
        drop(ring.dequeue().unwrap());
        ring
    })
    .join()
    .unwrap();
    assert_eq!(drops.load(Ordering::Relaxed), 2);
    assert_eq!(raw.in_use_count(), 8, "eight still in the ring");
    drop(ring);
    assert_eq!(drops.load(Ordering::Relaxed), 10, "each dropped once");
    raw.flush_default_cache();
    assert!(raw.is_full());
}

/// One box at a time, in order, through ends of modes `p` and `c`; the
/// last few are left in the ring and go back to the pool when it drops.
fn boxes_cross_a_ring<P: Mode, C: Mode>(name: &str, p: P, c: C) {
    const N: u64 = 5_000;
    let pool = TypedPool::<Item>::builder(64)
        .name(name)
        .build_anonymous()
        .unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = Ring::<PoolBox<Item>>::builder(16)
        .producer(p)
        .consumer(c)
        .build()
        .unwrap()
        .split();
    let (pool2, drops2) = (pool.clone(), Arc::clone(&drops));
    let producer = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        for seq in 0..N {
            let mut item = Item {
                seq,
                drops: Arc::clone(&drops2),
            };
            // The pool (64) is larger than the ring (16), so boxes are
            // always there once the consumer keeps up.
            let mut b = loop {
                match pool2.alloc(item) {
                    Ok(b) => break b,
                    Err(back) => item = back,
                }
                assert!(Instant::now() < deadline, "pool ran dry");
                std::thread::yield_now();
            };
            while let Err(back) = tx.enqueue(b) {
                b = back;
                assert!(Instant::now() < deadline, "ring stayed full");
                std::hint::spin_loop();
            }
        }
    });
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    // Take all but the last few; those are left in the ring.
    while next < N - 5 {
        if let Some(b) = rx.dequeue() {
            assert_eq!(b.seq, next, "{name}: in order, once");
            next += 1;
            // `b` drops here: its `Item` is dropped, its object goes back.
        }
        assert!(Instant::now() < deadline, "{name}: consumer stalled");
    }
    producer.join().unwrap();
    assert_eq!(rx.len(), 5, "{name}: the rest is in the ring");
    assert_eq!(pool.pool().in_use_count(), 5, "{name}: held by the ring");
    drop(rx);
    assert_eq!(
        pool.pool().in_use_count(),
        0,
        "{name}: the ring gave them back"
    );
    assert_eq!(
        drops.load(Ordering::Relaxed),
        N as usize,
        "{name}: each dropped once"
    );
}

#[test]
fn pool_boxes_cross_threads_through_single_ends() {
    boxes_cross_a_ring("ring-boxes-spsc", Single, Single);
}

#[test]
fn pool_boxes_cross_threads_through_shared_ends() {
    boxes_cross_a_ring("ring-boxes-mpmc", Multi, Multi);
}
