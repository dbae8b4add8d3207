//! Pool objects through rings, across crates: `PoolBox`es (owned values
//! from a `pktmem-mempool` typed pool) go from one thread to another through
//! a ring and back to their pool when dropped, with no `unsafe` here. A drop
//! counter on the boxed values and the pool's own count prove that nothing
//! leaks or is freed twice, including what is left in the ring when it goes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
