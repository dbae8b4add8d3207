//! Loom models of the mbuf refcount protocols (run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_mbuf`).
//!
//! Each model runs the real code: packet pools of 1-3 mbufs (no cache, so
//! frees go straight to the mempool's ring backend, which is loom-wired
//! too), external buffers, clones, a pinned pool; two threads (plus the
//! main one) dropping references concurrently. What each checks:
//!
//! - **exactly once**: the release of an external buffer runs once (its
//!   owner dropped once, or its free callback called once), and every mbuf
//!   returns to its pool once: at the end the pool is full, each mbuf comes
//!   out once more with refcount 1, and one more allocation fails;
//! - **ordering**: loom cannot see plain memory, so each buffer carries a
//!   [`Probe`], a loom-tracked cell written at its first byte, through which
//!   the threads model their use of the bytes: they read it while they hold
//!   a reference, and the release (owner drop, free callback) or the next
//!   owner of a buffer taken back writes it. The refcount's Release
//!   decrements and Acquire loads/fences are the only thing ordering those
//!   reads before that write (the threads share nothing else that loom
//!   sees: handles are shared through `std::sync::Arc`, invisible to loom),
//!   so weakening one makes loom report the read and the write as racing.

#![cfg(loom)]

use std::mem::align_of;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use loom::cell::UnsafeCell;
use loom::thread;
use pktmem::mbuf::{ExtBuf, Mbuf, PinnedArea, PktPool};

// ---- the probe: a loom-tracked stand-in for a buffer's bytes ----

/// What the setup writes in a probe.
const FRESH: u32 = 0x5e7;
/// What a release or a buffer's next owner writes.
const REUSED: u32 = 0xdead;

/// A loom-tracked cell at a buffer's first byte, standing for the bytes.
#[repr(transparent)]
struct Probe(UnsafeCell<u32>);

impl Probe {
    /// Writes a fresh probe at `buf`.
    ///
    /// # Safety
    /// - `buf` is valid for writes of a `Probe` and nothing else uses those
    ///   bytes while the model runs (the models never touch data bytes).
    unsafe fn install(buf: NonNull<u8>) {
        assert_eq!(
            buf.as_ptr() as usize % align_of::<Probe>(),
            0,
            "probe unaligned"
        );
        // SAFETY: condition; a `Probe` needs no drop (loom's cell has none).
        unsafe {
            buf.cast::<Probe>()
                .as_ptr()
                .write(Probe(UnsafeCell::new(FRESH)));
        }
    }

    /// The probe installed at `buf`.
    ///
    /// # Safety
    /// - [`Probe::install`] wrote one at `buf`, and the memory lives for `'a`.
    unsafe fn at<'a>(buf: NonNull<u8>) -> &'a Probe {
        // SAFETY: condition.
        unsafe { &*buf.cast::<Probe>().as_ptr() }
    }

    /// A reader's use of the bytes (while it holds a reference).
    fn read(&self) -> u32 {
        // SAFETY: loom checks this access against the writes.
        self.0.with(|p| unsafe { *p })
    }

    /// A writer's use of the bytes (a release, or the buffer's next owner).
    /// Nothing while the thread unwinds from a failed check: the releases
    /// run in destructors, and a second loom panic there would abort the
    /// whole test binary instead of failing this model.
    fn write(&self, v: u32) {
        if thread::panicking() {
            return;
        }
        // SAFETY: loom checks this access against every other.
        self.0.with_mut(|p| unsafe { *p = v });
    }
}

/// Reads the probe at the buffer of `m`'s first segment, which must be the
/// setup's value (nobody writes a buffer while it is shared).
fn read_buffer(m: &Mbuf) {
    // SAFETY: every buffer the models use got a probe at setup; `m` holds a
    // reference to its buffer, so the memory lives.
    assert_eq!(unsafe { Probe::at(m.buf_addr()) }.read(), FRESH);
}

/// Runs `f` under loom; prints the interleavings explored and the time.
fn model<F: Fn() + Send + Sync + 'static>(name: &str, f: F) {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&runs);
    let t = Instant::now();
    loom::model(move || {
        r.fetch_add(1, Ordering::Relaxed);
        f();
    });
    eprintln!(
        "loom_mbuf {name}: {} interleavings in {:.1?}",
        runs.load(Ordering::Relaxed),
        t.elapsed()
    );
}

/// A pool of `n` mbufs with small buffers and no cache; every mbuf's own
/// buffer gets a probe.
fn probed_pool(n: usize) -> PktPool {
    let pool = PktPool::builder(n)
        .data_room(256)
        .name("loom")
        .build_anonymous()
        .unwrap();
    let all: Vec<Mbuf> = (0..n).map(|_| pool.alloc_default().unwrap()).collect();
    for m in &all {
        // SAFETY: the mbuf's own buffer, 256 bytes, 64-aligned; the models
        // use no data bytes.
        unsafe { Probe::install(m.buf_addr()) };
    }
    drop(all);
    assert!(pool.is_full());
    pool
}

/// After a model: every mbuf of `pool` is back exactly once, reset
/// (refcount 1, direct or, for a pinned pool, external with its own shared
/// refcount 1). Checks the buffers are the pool's own (`own`, when given).
fn assert_all_back_once(pool: &PktPool, own: Option<&[NonNull<u8>]>) {
    let n = pool.size();
    assert!(pool.is_full(), "{} of {n} back", pool.avail_count());
    assert_eq!(pool.avail_count(), n);
    let all: Vec<Mbuf> = (0..n).map(|_| pool.alloc_default().unwrap()).collect();
    assert!(pool.alloc_default().is_err(), "an mbuf was returned twice");
    let mut bufs: Vec<_> = all.iter().map(|m| m.buf_addr()).collect();
    bufs.sort_unstable();
    bufs.dedup();
    assert_eq!(bufs.len(), n, "two mbufs share a buffer");
    if let Some(own) = own {
        let mut own = own.to_vec();
        own.sort_unstable();
        assert_eq!(bufs, own, "an mbuf kept a foreign buffer");
    }
    for m in &all {
        assert_eq!(m.refcnt(), 1);
        assert!(!m.is_indirect());
        if pool.is_pinned() {
            assert_eq!(m.ext_refcnt(), Some(1));
        } else {
            assert!(m.is_direct());
        }
    }
}

/// The buffer addresses of `pool`'s mbufs (taken and given back).
fn own_buffers(pool: &PktPool) -> Vec<NonNull<u8>> {
    let all: Vec<Mbuf> = (0..pool.size())
        .map(|_| pool.alloc_default().unwrap())
        .collect();
    all.iter().map(|m| m.buf_addr()).collect()
}

/// Takes one mbuf of `pool` if one is back, and writes its buffer at once,
/// as its new owner may (a device writing by IOVA does not ask
/// `is_writable` first, so neither does this: its Acquire load would
/// order the writes by itself and hide a missing Acquire in the free path).
fn reuse_one(pool: &PktPool) {
    if let Ok(m) = pool.alloc_default() {
        // SAFETY: a buffer of the pool, probed at setup; `m` owns it.
        unsafe { Probe::at(m.buf_addr()) }.write(REUSED);
        assert_eq!(m.refcnt(), 1);
        assert!(m.is_writable());
    }
}

// ---- 1. external buffers: the last two references dropped concurrently ----

/// An owner of external bytes (16 words) that counts its drops; its drop
/// is the release, which writes the bytes as freeing them would.
struct Owner {
    words: Vec<u64>,
    drops: Arc<AtomicUsize>,
}

impl Owner {
    fn new(drops: &Arc<AtomicUsize>) -> Owner {
        let mut words = vec![0u64; 16];
        // SAFETY: 128 bytes, 8-aligned, used only through the probe.
        unsafe { Probe::install(NonNull::new(words.as_mut_ptr()).unwrap().cast()) };
        Owner {
            words,
            drops: Arc::clone(drops),
        }
    }
}

impl AsMut<[u8]> for Owner {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: the words' bytes, as bytes.
        unsafe {
            std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast(), self.words.len() * 8)
        }
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // SAFETY: installed in `new`; the Vec lives until after this.
        unsafe { Probe::at(NonNull::new(self.words.as_mut_ptr()).unwrap().cast()) }.write(REUSED);
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// How the external buffer of [`ext_last_two_refs`] is made.
#[derive(Clone, Copy, Debug)]
enum ExtKind {
    /// `ExtBuf::from_owner`: the release drops the owner.
    Owner,
    /// `ExtBuf::from_raw`: the release calls the free callback (heap info).
    Raw,
    /// `ExtBuf::from_raw_tail_shinfo`: the info sits in the buffer's tail.
    Tail,
}

/// A 32-word heap buffer with a probe at its start, leaked: the free
/// callback of the returned `ExtBuf` writes the probe, rebuilds and drops
/// the box, and counts.
fn raw_ext(kind: ExtKind, drops: &Arc<AtomicUsize>) -> ExtBuf {
    const WORDS: usize = 32;
    let buf: &'static mut [u64] = Box::leak(vec![0u64; WORDS].into_boxed_slice());
    let addr = NonNull::new(buf.as_mut_ptr()).unwrap().cast::<u8>();
    // SAFETY: 256 bytes, 8-aligned, ours; the probe takes the first 16 (a
    // tail info sits in the last 64 at most).
    unsafe { Probe::install(addr) };
    let d = Arc::clone(drops);
    let free = move |p: NonNull<u8>| {
        // SAFETY: the probe installed above; the buffer lives until the
        // box is dropped below.
        unsafe { Probe::at(p) }.write(REUSED);
        // SAFETY: the leaked box, rebuilt once (the release runs once).
        drop(unsafe {
            Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                p.cast::<u64>().as_ptr(),
                WORDS,
            ))
        });
        d.fetch_add(1, Ordering::Relaxed);
    };
    // SAFETY: the leaked buffer is used only through the ExtBuf until the
    // callback frees it.
    unsafe {
        match kind {
            ExtKind::Raw => ExtBuf::from_raw(addr, WORDS * 8, None, free),
            ExtKind::Tail => ExtBuf::from_raw_tail_shinfo(addr, WORDS * 8, None, free),
            ExtKind::Owner => unreachable!("not a raw buffer"),
        }
    }
    .unwrap()
}

/// Two `ExtBuf` handles to one external buffer, dropped on two threads
/// after each reads the bytes: the release runs exactly once, after both
/// reads, and the shared info goes with it.
fn ext_last_two_refs(kind: ExtKind) {
    model(&format!("ext_last_two_refs({kind:?})"), move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let ext = match kind {
            ExtKind::Owner => ExtBuf::from_owner(Owner::new(&drops), None).unwrap(),
            ExtKind::Raw | ExtKind::Tail => raw_ext(kind, &drops),
        };
        let other = ext.clone();
        assert_eq!(ext.refcnt(), 2);
        let hs: Vec<_> = [ext, other]
            .into_iter()
            .map(|e| {
                thread::spawn(move || {
                    // SAFETY: probed at setup; `e` holds a reference.
                    assert_eq!(unsafe { Probe::at(e.addr()) }.read(), FRESH);
                    drop(e);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "release ran {} times",
            drops.load(Ordering::Relaxed)
        );
    });
}

#[test]
fn ext_last_two_refs_owner() {
    ext_last_two_refs(ExtKind::Owner);
}

#[test]
fn ext_last_two_refs_free_callback() {
    ext_last_two_refs(ExtKind::Raw);
}

#[test]
fn ext_last_two_refs_tail_shinfo() {
    ext_last_two_refs(ExtKind::Tail);
}

/// An external buffer attached to an mbuf, and a clone of that mbuf (which
/// shares the buffer's shared info): the two mbufs are dropped on two
/// threads. The owner is dropped exactly once, after both threads read the
/// bytes; both mbufs go back to their pool once, detached (their own
/// buffers back, refcount 1).
#[test]
fn ext_attached_mbuf_and_clone_dropped_concurrently() {
    model("ext_attached_mbuf_and_clone", || {
        let pool = probed_pool(2);
        let own = own_buffers(&pool);
        let drops = Arc::new(AtomicUsize::new(0));
        let mut m = pool.alloc_default().unwrap();
        m.attach_extbuf(ExtBuf::from_owner(Owner::new(&drops), None).unwrap())
            .unwrap();
        let c = m.clone_in(&pool).unwrap();
        assert!(c.is_external() && c.ext_refcnt() == Some(2));
        let hs: Vec<_> = [m, c]
            .into_iter()
            .map(|m| {
                thread::spawn(move || {
                    read_buffer(&m);
                    drop(m);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(drops.load(Ordering::Relaxed), 1);
        assert_all_back_once(&pool, Some(&own));
    });
}

// ---- 2. direct mbufs and their clones ----

/// Thread A holds a direct mbuf, thread B an indirect clone of it; each
/// reads the buffer, drops its mbuf, then takes an mbuf back from the pool
/// if one is there and writes its buffer. The direct mbuf returns to the
/// pool exactly once (whoever drops last returns it), with refcount 1,
/// after both reads; the clone returns once, its own buffer restored.
#[test]
fn direct_and_clone_dropped_concurrently() {
    model("direct_and_clone", || {
        let pool = Arc::new(probed_pool(2));
        let own = own_buffers(&pool);
        let m = pool.alloc_default().unwrap();
        let c = m.clone_in(&pool).unwrap();
        assert!(c.is_indirect() && m.refcnt() == 2);
        let hs: Vec<_> = [m, c]
            .into_iter()
            .map(|m| {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    read_buffer(&m);
                    drop(m);
                    reuse_one(&pool);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_all_back_once(&pool, Some(&own));
    });
}

/// One direct mbuf shared by `&Mbuf` between two threads (through
/// `std::sync::Arc`, which loom does not see, so it adds no ordering of its
/// own; the pool handle too): each thread clones it (`clone_in(&self)`
/// racing the other's), drops its handle, reads through its clone and
/// drops the clone. Whichever drops the last handle frees the direct mbuf
/// while a clone may still hold its buffer, racing that clone's drop; then
/// the first thread takes an mbuf back if one is there and writes it (one
/// thread only: with both, the model takes minutes). The direct mbuf
/// returns exactly once (by its owner or by the last clone), after every
/// read of its buffer.
#[test]
fn clones_from_shared_mbuf_then_all_dropped() {
    model("clones_from_shared_mbuf", || {
        let pool = Arc::new(probed_pool(3));
        let own = own_buffers(&pool);
        let m = Arc::new(pool.alloc_default().unwrap());
        // The two handles go to the threads (the main thread keeps none).
        let hs: Vec<_> = [Arc::clone(&m), m]
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let pool = Arc::clone(&pool);
                thread::spawn(move || {
                    let c = m.clone_in(&pool).unwrap();
                    drop(m);
                    assert!(c.is_indirect());
                    read_buffer(&c);
                    drop(c);
                    if i == 0 {
                        reuse_one(&pool);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_all_back_once(&pool, Some(&own));
    });
}

/// Copy on write: thread B reads through a clone and drops it; thread A,
/// the owner of the mbuf it was cloned from, waits until its mbuf is
/// writable again (`data_mut` is `Some`) and writes the buffer.
/// `is_writable` turning true orders B's read before A's write: for a
/// direct mbuf through its refcount, for an external buffer through the
/// shared info's. Everything returns once (and the owner is dropped once).
fn owner_writes_after_clone(external: bool) {
    model(
        &format!("owner_writes_after_clone(external: {external})"),
        move || {
            let pool = probed_pool(2);
            let own = own_buffers(&pool);
            let drops = Arc::new(AtomicUsize::new(0));
            let mut m = pool.alloc_default().unwrap();
            if external {
                let ext = ExtBuf::from_owner(Owner::new(&drops), None).unwrap();
                m.attach_extbuf(ext).unwrap();
            }
            m.append(1).unwrap();
            let c = m.clone_in(&pool).unwrap();
            assert!(m.data_mut().is_none());
            let b = thread::spawn(move || {
                read_buffer(&c);
                drop(c);
            });
            let a = thread::spawn(move || {
                while m.data_mut().is_none() {
                    thread::yield_now();
                }
                // SAFETY: probed at setup; `m` owns the buffer, not shared now.
                unsafe { Probe::at(m.buf_addr()) }.write(REUSED);
                drop(m);
            });
            a.join().unwrap();
            b.join().unwrap();
            assert_eq!(drops.load(Ordering::Relaxed), usize::from(external));
            assert_all_back_once(&pool, Some(&own));
        },
    );
}

#[test]
fn owner_writes_only_after_clone_is_gone() {
    owner_writes_after_clone(false);
}

#[test]
fn owner_writes_only_after_clone_is_gone_external() {
    owner_writes_after_clone(true);
}

// ---- 3. pinned pools: the owner freed while a clone detaches ----

/// A pinned pool of one mbuf (its buffer a 64-byte element of caller
/// memory) and a plain pool of one for the clone. Thread A drops the
/// pinned mbuf (its owner), thread B drops a clone of it (an external mbuf
/// sharing the pinned buffer's info); each then takes the pinned mbuf back
/// if it is there and writes its buffer. The pinned mbuf returns to its
/// pool exactly once (by its owner's free, or by the clone's detach,
/// whichever is last), with its shared refcount 1, after both reads; the
/// clone returns to its pool, direct again.
#[test]
fn pinned_owner_freed_while_clone_detaches() {
    model("pinned_owner_and_clone", || {
        // Declared before the pools: dropped after them.
        let mut area = vec![0u64; 8];
        let addr = NonNull::new(area.as_mut_ptr()).unwrap().cast::<u8>();
        // SAFETY: 64 bytes, 8-aligned, used only through the pool.
        let pinned_area = unsafe { PinnedArea::new(addr, None, 64, 64) };
        // SAFETY: as above; the models use no data bytes.
        unsafe { Probe::install(addr) };
        let pinned = Arc::new(
            PktPool::builder(1)
                .pinned([pinned_area])
                .name("pinned")
                .build_anonymous()
                .unwrap(),
        );
        let plain = probed_pool(1);
        let plain_own = own_buffers(&plain);
        let m = pinned.alloc_default().unwrap();
        assert_eq!(m.buf_addr(), addr);
        let c = m.clone_in(&plain).unwrap();
        assert!(c.is_external() && m.ext_refcnt() == Some(2));
        let hs: Vec<_> = [m, c]
            .into_iter()
            .map(|m| {
                let pinned = Arc::clone(&pinned);
                thread::spawn(move || {
                    read_buffer(&m);
                    drop(m);
                    reuse_one(&pinned);
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_all_back_once(&pinned, Some(&[addr]));
        assert_all_back_once(&plain, Some(&plain_own));
        drop((pinned, plain));
        drop(area);
    });
}
