//! Loom models of the lock-free stack backend (run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_stack`).
//!
//! Each model: a stack of 2-3 fake objects, two or three threads taking and
//! giving back in bulk. A per-object flag catches an object held by two
//! threads at once; at the end every object is in the stack exactly once.
//! The first model is the ABA case the head tags exist for: a thread reads
//! the top node and its `next`, another takes two nodes and puts one back
//! (the same node back on top, its `next` changed).

#![cfg(loom)]

use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use loom::sync::Arc;
use loom::thread;
use pktmem::mempool::{Backend, BackendEmpty, LfStackBackend, Obj};

/// Memory the fake objects point into (never dereferenced: the stack only
/// stores addresses), so they have real addresses.
static ARENA: [u64; 32] = [0; 32];

fn arena() -> NonNull<u8> {
    NonNull::from(&ARENA).cast()
}

/// Fake object `i` (`i < 4`), 64 bytes apart in the arena.
fn obj(i: usize) -> Obj {
    assert!(i < 4);
    // SAFETY: `i * 64 < 256`: inside the arena.
    Obj::from_non_null(unsafe { arena().add(i * 64) })
}

/// Index of fake object `o`, checked in range.
fn index(o: Obj, n: usize) -> usize {
    let off = (o.as_ptr() as usize).wrapping_sub(arena().as_ptr() as usize);
    assert!(off % 64 == 0 && off / 64 < n, "not an object: {o:?}");
    off / 64
}

/// Takes `k` objects (at most 3) from `s`.
fn get(s: &LfStackBackend, k: usize) -> Result<Vec<Obj>, BackendEmpty> {
    let mut buf = [MaybeUninit::uninit(); 3];
    s.get_bulk(&mut buf[..k])?;
    // SAFETY: a successful get initialised the first `k` elements.
    Ok(buf[..k]
        .iter()
        .map(|o| unsafe { o.assume_init() })
        .collect())
}

/// Per-object "held by a thread" flags (plain std atomics: loom runs one
/// thread at a time, so these only observe the model, they do not sync it).
/// `gets` counts the successful gets.
struct Held {
    flags: Vec<AtomicBool>,
    gets: AtomicUsize,
}

impl Held {
    fn new(n: usize) -> Self {
        Self {
            flags: (0..n).map(|_| AtomicBool::new(false)).collect(),
            gets: AtomicUsize::new(0),
        }
    }
    fn take(&self, objs: &[Obj]) {
        self.gets.fetch_add(1, Ordering::SeqCst);
        for &o in objs {
            let i = index(o, self.flags.len());
            assert!(
                !self.flags[i].swap(true, Ordering::SeqCst),
                "object {i} twice"
            );
        }
    }
    fn give(&self, objs: &[Obj]) {
        for &o in objs {
            let i = index(o, self.flags.len());
            assert!(
                self.flags[i].swap(false, Ordering::SeqCst),
                "object {i} not held"
            );
        }
    }
}

/// Runs `threads` on a stack of `cap` holding objects `0..full`, then checks
/// at least `min_gets` gets succeeded (a get fails only when other threads
/// hold the objects) and every object came back once.
fn run(
    name: &str,
    cap: usize,
    full: usize,
    min_gets: usize,
    threads: Vec<fn(&LfStackBackend, &Held) -> bool>,
) {
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    loom::model(move || {
        r.fetch_add(1, Ordering::Relaxed);
        let s = Arc::new(LfStackBackend::new(cap).unwrap());
        let objs: Vec<_> = (0..full).map(obj).collect();
        s.put_bulk(&objs).unwrap();
        let held = Arc::new(Held::new(full));
        let hs: Vec<_> = threads
            .iter()
            .map(|&f| {
                let (s, held) = (s.clone(), held.clone());
                thread::spawn(move || {
                    f(&s, &held);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let gets = held.gets.load(Ordering::SeqCst);
        assert!(gets >= min_gets, "{gets} gets succeeded, {min_gets} must");
        assert_eq!(s.len(), full);
        let all = get(&s, full).unwrap();
        let mut idx: Vec<_> = all.iter().map(|&o| index(o, full)).collect();
        idx.sort_unstable();
        assert_eq!(idx, (0..full).collect::<Vec<_>>(), "each object once");
        assert!(s.is_empty());
    });
    eprintln!("{name}: {} interleavings", runs.load(Ordering::Relaxed));
}

/// Takes `k` objects and gives them back; false when fewer than `k` were in
/// (then nothing was taken).
fn cycle(s: &LfStackBackend, held: &Held, k: usize) -> bool {
    let Ok(o) = get(s, k) else {
        return false;
    };
    held.take(&o);
    held.give(&o);
    s.put_bulk(&o).unwrap();
    true
}

/// [`cycle`] of one object.
fn single(s: &LfStackBackend, held: &Held) -> bool {
    cycle(s, held, 1)
}

#[test]
fn aba_two_out_one_back() {
    run(
        "aba_two_out_one_back",
        3,
        3,
        2,
        vec![
            // Both gets always succeed (1 + 2 objects of 3): min_gets 2.
            single,
            |s, h| {
                let o = get(s, 2).unwrap();
                h.take(&o);
                h.give(&o);
                s.put_bulk(&o[..1]).unwrap();
                s.put_bulk(&o[1..]).unwrap();
                true
            },
        ],
    );
}

#[test]
fn bulk_put_races_bulk_get() {
    // Capacity 4, 2 objects in: one thread moves 2 out and back, the other
    // 1: either may find too few while the other holds some, not both.
    run(
        "bulk_put_races_bulk_get",
        4,
        2,
        1,
        vec![|s, h| cycle(s, h, 2), single],
    );
}

#[test]
fn three_threads_single() {
    run(
        "three_threads_single",
        2,
        2,
        2,
        // Two objects, three threads: a get fails only while both others
        // hold one, so at most one fails.
        vec![single, single, single],
    );
}
