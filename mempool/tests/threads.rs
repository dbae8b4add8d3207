//! Threads with their own caches (and others without a cache handle) pass
//! objects to each other through a `Ring<Obj>` for a bounded time: nothing
//! is lost, and threads' default caches are flushed when they exit.

mod common;

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{anon, put_all};
use pktmem_mempool::{BackendKind, Obj};
use pktmem_ring::Ring;

#[test]
fn threads_exchange_through_ring_lose_nothing() {
    let n = 4096;
    let pool = anon("threads", n, 64, 128, BackendKind::Ring);
    let ring = Arc::new(Ring::<Obj>::new(1024).unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    let moved = AtomicUsize::new(0);
    // Joined explicitly: `join` waits for the threads to end, thread-local
    // destructors (which flush their default caches) included.
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        for t in 0..4 {
            let (pool, ring, moved) = (pool.clone(), ring.clone(), &moved);
            hs.push(s.spawn(move || {
                let mut cache = if t % 2 == 0 { Some(pool.cache()) } else { None };
                let mut buf = [MaybeUninit::<Obj>::uninit(); 16];
                while std::time::Instant::now() < deadline {
                    let got = match cache.as_mut() {
                        Some(c) => pool.get_bulk(c, &mut buf),
                        None => pool.get_bulk_default(&mut buf),
                    };
                    if let Ok(objs) = got {
                        let sent = ring.enqueue_burst(objs);
                        // SAFETY: objects not sent are still ours.
                        unsafe { put_all(&pool, cache.as_mut(), &objs[sent..]) };
                    }
                    let got = ring.dequeue_burst_uninit(&mut buf);
                    moved.fetch_add(got.len(), Ordering::Relaxed);
                    // SAFETY: received through the ring: ours now, returned once.
                    unsafe { put_all(&pool, cache.as_mut(), got) };
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
    });
    let mut buf = [MaybeUninit::<Obj>::uninit(); 64];
    loop {
        let got = ring.dequeue_burst_uninit(&mut buf);
        if got.is_empty() {
            break;
        }
        assert!(got.iter().all(|&o| pool.owns(o)));
        // SAFETY: left in the ring: ours, returned once.
        unsafe { pool.put_bulk_default(got) };
    }
    pool.flush_default_cache();
    assert!(moved.load(Ordering::Relaxed) > 0);
    assert_eq!(
        pool.avail_count(),
        n,
        "the threads' default caches were flushed when they exited"
    );
    pool.audit().unwrap();
}
