//! Loom model of the pool (run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_mempool`).
//! A pool of 4 objects over the MP/MC ring backend (and over the lock-free
//! stack), two threads with caches of 2: whatever the interleaving, no object
//! is handed out twice and all come back (conservation). The final take of
//! all four goes through the `*_default` family, which under loom (no
//! default cache slots) is the backend path.
//!
//! The keep-alive models: the pool's memory goes when the last handle is
//! dropped and the last object is back, whichever thread does which, and
//! exactly once. The pool's attachment is the witness: its `Drop` counts
//! the frees and reads one loom cell per thread, each written by its thread
//! before it gave up its last reference, so a missing happens-before (a
//! Relaxed decrement, no Acquire fence before the free) is a loom error.

#![cfg(loom)]

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicUsize, Ordering};

use loom::cell::UnsafeCell;
use loom::thread;
use pktmem::mempool::{BackendKind, Mempool, Obj};

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

/// The pool's attachment in the keep-alive models.
struct Witness {
    /// Frees of the pool's memory (this value's drops), shared with the model.
    frees: std::sync::Arc<AtomicUsize>,
    /// One cell per model thread, written by that thread only, before it
    /// gives up its last reference to the pool.
    cells: [UnsafeCell<u32>; 2],
}

// SAFETY: each cell is written by one thread, then read by the drop, which
// runs after every reference is given up (what the models check).
unsafe impl Sync for Witness {}

impl Drop for Witness {
    fn drop(&mut self) {
        for c in &self.cells {
            // SAFETY: see `Sync`; loom checks the write happened before.
            let v = c.with(|p| unsafe { *p });
            assert_eq!(v, 1, "a thread's write is not visible at the free");
        }
        // Relaxed: a count read after the model's threads are joined.
        self.frees.fetch_add(1, Ordering::Relaxed);
    }
}

/// A pool of `n` objects with caches of `cache` whose attachment counts its
/// frees in the returned counter.
fn witnessed(n: usize, cache: usize) -> (Mempool, std::sync::Arc<AtomicUsize>) {
    let frees = std::sync::Arc::new(AtomicUsize::new(0));
    let pool = Mempool::builder(n, 64)
        .name("loom-keepalive")
        .cache(cache)
        .attachment(Witness {
            frees: frees.clone(),
            cells: [UnsafeCell::new(0), UnsafeCell::new(0)],
        })
        .build_anonymous()
        .unwrap();
    (pool, frees)
}

/// Thread `i`'s write, through a pool reference it holds.
fn mark(pool: &Mempool, i: usize) {
    let w = pool
        .attachment::<Witness>()
        .expect("the witness attachment");
    // SAFETY: cell `i` is written by this thread only (see `Witness`).
    w.cells[i].with_mut(|p| unsafe { *p = 1 });
}

/// Thread `i` returns `o`, perhaps the pool's last reference, through the
/// object's own way back (no handle).
fn return_last(o: Obj, i: usize) {
    // SAFETY: `o` is out of its pool until the put below.
    let owner = unsafe { o.owner_ref() };
    mark(&owner, i);
    // SAFETY: `o` is out of its pool, given back once; the `PoolRef` is not
    // used after (this put may free the pool).
    unsafe { o.owner_ref().put_default(o) };
}

/// Every handle dropped first; two threads each return one of the last two
/// objects: whichever is last frees the pool, once.
#[test]
fn two_threads_return_the_last_objects() {
    loom::model(|| {
        let (pool, frees) = witnessed(2, 0);
        let a = pool.get_default().unwrap();
        let b = pool.get_default().unwrap();
        drop(pool);
        assert_eq!(frees.load(Ordering::Relaxed), 0, "freed with objects out");
        let hs: Vec<_> = [a, b]
            .into_iter()
            .enumerate()
            .map(|(i, o)| thread::spawn(move || return_last(o, i)))
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(frees.load(Ordering::Relaxed), 1, "freed exactly once");
    });
}

/// One thread drops the last handle while the other returns the last
/// object: freed once, by whichever comes second.
#[test]
fn last_handle_and_last_object_race() {
    loom::model(|| {
        let (pool, frees) = witnessed(2, 0);
        let o = pool.get_default().unwrap();
        let t0 = thread::spawn(move || {
            mark(&pool, 0);
            drop(pool);
        });
        let t1 = thread::spawn(move || return_last(o, 1));
        t0.join().unwrap();
        t1.join().unwrap();
        assert_eq!(frees.load(Ordering::Relaxed), 1, "freed exactly once");
    });
}

/// Objects in a cache count: a thread refills its cache (taking 2 from the
/// backend in one count), puts its object back into the cache (a hit, no
/// count), then drops the cache (a flush of 2) and the last handle, while
/// the other thread returns the last object taken before.
#[test]
fn cached_objects_and_last_object_race() {
    loom::model(|| {
        let (pool, frees) = witnessed(3, 2);
        let o = pool.get_default().unwrap();
        let t0 = thread::spawn(move || {
            let mut cache = pool.cache();
            let mine = pool.get(&mut cache).unwrap();
            // SAFETY: the object just taken, returned once.
            unsafe { pool.put(&mut cache, mine) };
            assert_eq!(cache.len(), 2, "the refill's two objects are in the cache");
            mark(&pool, 0);
            drop(cache);
            drop(pool);
        });
        let t1 = thread::spawn(move || return_last(o, 1));
        t0.join().unwrap();
        t1.join().unwrap();
        assert_eq!(frees.load(Ordering::Relaxed), 1, "freed exactly once");
    });
}
