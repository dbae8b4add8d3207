//! Loom model of the pool (run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_mempool`).
//! A pool of 4 objects over the MP/MC ring backend (and over the lock-free
//! stack), two threads with caches of 2: whatever the interleaving, no object
//! is handed out twice and all come back (conservation). The final take of
//! all four goes through the `*_default` family, which under loom (no
//! default cache slots) is the backend path.

#![cfg(loom)]

use std::mem::MaybeUninit;

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
        let pool = Mempool::builder(4, 64)
            .name("loom")
            .cache(2)
            .backend_kind(kind)
            .build_anonymous()
            .unwrap();
        let hs: Vec<_> = (0..2)
            .map(|_| {
                let pool = pool.clone();
                thread::spawn(move || {
                    let mut cache = pool.cache();
                    // Refill from the backend (2 objects: the miss plus size/2).
                    let got = pool.get(&mut cache).ok();
                    if let Some(o) = got {
                        // SAFETY: the object just taken, returned once.
                        unsafe { pool.put(&mut cache, o) };
                    }
                    // Dropping the cache flushes it to the backend.
                    drop(cache);
                    got
                })
            })
            .collect();
        let got: Vec<_> = hs.into_iter().map(|h| h.join().unwrap()).collect();
        // Each thread's refill took 2 of the 4 objects: both succeed.
        assert!(got.iter().all(|a| a.is_some()), "{got:?}");
        assert_ne!(got[0], got[1], "one object handed to two threads");
        assert_eq!(pool.avail_count(), 4);
        let mut buf = [MaybeUninit::uninit(); 4];
        let all = pool.get_bulk_default(&mut buf).unwrap();
        let mut objs = all.to_vec();
        objs.sort_unstable();
        objs.dedup();
        assert_eq!(objs.len(), 4, "all four objects came back, once each");
        // SAFETY: returned once.
        unsafe { pool.put_bulk_default(all) };
    });
    eprintln!(
        "loom_mempool ({kind:?}): {} interleavings explored",
        runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}
