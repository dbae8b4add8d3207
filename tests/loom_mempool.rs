//! Loom model of the pool (run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_mempool`).
//! A pool of 4 objects over the MP/MC ring backend (and over the lock-free
//! stack), two threads with caches of 2: whatever the interleaving, no object
//! is handed out twice and all come back (conservation).

#![cfg(loom)]

use std::ptr::NonNull;

use loom::thread;
use pktmem::mempool::{BackendKind, Mempool};

#[test]
fn two_caches_conserve_objects() {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    two_caches(BackendKind::Ring, &RUNS);
}

#[test]
fn two_caches_conserve_objects_lf_stack() {
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    two_caches(BackendKind::LockFreeStack, &RUNS);
}

fn two_caches(kind: BackendKind, runs: &'static std::sync::atomic::AtomicUsize) {
    loom::model(move || {
        runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let pool = Mempool::builder("loom", 4, 64)
            .cache_size(2)
            .backend_kind(kind)
            .create_anonymous()
            .unwrap();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let mut cache = pool.cache();
                    let mut objs = [NonNull::dangling(); 2];
                    // Refill from the backend (2 objects: the miss plus size/2).
                    let got = pool.get_bulk(Some(&mut cache), &mut objs[..1]).is_ok();
                    let addr = got.then(|| objs[0].as_ptr() as usize);
                    if got {
                        // SAFETY: the object just taken, returned once.
                        unsafe { pool.put_bulk(Some(&mut cache), &objs[..1]) };
                    }
                    // Dropping the cache flushes it to the backend.
                    drop(cache);
                    addr
                })
            })
            .collect();
        let got: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        // Each thread's refill took 2 of the 4 objects: both succeed.
        assert!(got.iter().all(|a| a.is_some()), "{got:?}");
        assert_ne!(got[0], got[1], "one object handed to two threads");
        assert_eq!(pool.avail_count(), 4);
        let mut all = [NonNull::dangling(); 4];
        pool.get_bulk(None, &mut all).unwrap();
        let mut addrs: Vec<usize> = all.iter().map(|p| p.as_ptr() as usize).collect();
        addrs.sort_unstable();
        addrs.dedup();
        assert_eq!(addrs.len(), 4, "all four objects came back, once each");
        // SAFETY: returned once.
        unsafe { pool.put_bulk(None, &all) };
    });
    eprintln!(
        "loom_mempool ({kind:?}): {} interleavings explored",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}
