//! The default cache: what the `*_default` methods of the pool
//! (`get_default`, `put_bulk_default`, ...) use, and the typed layer with them.
//!
//! Each pool with a cache size keeps a few cache slots, each on its own cache
//! line. A thread gets a small tag the first time it touches any pool; it uses
//! slot `tag % slots`. The slot's `owner` word says which thread owns it:
//!
//! ```text
//!   owner == my tag  → use the slot (one relaxed load, then the plain cache path)
//!   owner == 0       → claim it with one compare-exchange, remember the claim
//!   anything else    → another live thread owns it: go to the backend
//! ```
//!
//! A thread gives its slots back when it exits (a thread-local destructor
//! flushes each slot to its pool's backend and clears `owner`), so no lock or
//! read-modify-write is on the hit path and no cached object is stranded by a
//! thread that ended.
//!
//! Objects in a slot are out of the backend, so they keep their pool alive
//! (see `Life`). Three things give them back: the owner thread's exit, its
//! [`flush_thread_caches`], and the drop of the pool's last handle, which
//! flushes and frees the dropping thread's own slot. No slot is claimed once
//! the last handle is gone, so objects put back after that (through
//! `Obj::owner_ref`) by a thread without a slot go to the backend, and the
//! last one frees the pool. What stays in other live threads' slots keeps
//! the pool until those threads exit or flush.
//!
//! The claim records (`Claims`) hold a `Weak` of the pool: the pool's
//! memory (`PoolInner`) goes when its reference count reaches 0 whatever
//! the records, and a record only keeps the `Arc`'s allocation. A record's
//! `upgrade` can succeed only while the strong count is held, so its flush
//! touches a live pool; it may upgrade a pool whose count just reached 0
//! (not yet dropped): its slot is then empty (objects in a slot are
//! counted), the flush releases nothing, and the pool goes when the
//! upgraded `Arc` drops.

use std::cell::{Cell, RefCell, UnsafeCell};
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crossbeam_utils::CachePadded;

use crate::cache::CacheCore;
use crate::error::GetError;
use crate::pool::PoolInner;
use crate::Obj;

/// One default cache.
pub(crate) struct Slot {
    /// Tag of the owning thread, 0 when free. Invariant: only the thread
    /// whose tag is stored here touches `core`; the tag goes 0 → tag by that
    /// thread's compare-exchange and tag → 0 by that thread when it exits.
    owner: AtomicU64,
    core: UnsafeCell<CacheCore>,
}

// SAFETY: `core` is only touched by the owner thread (invariant on `owner`);
// ownership passes through the Release store / Acquire CAS of `owner`.
unsafe impl Sync for Slot {}

impl Slot {
    pub(crate) fn new(core: CacheCore) -> Self {
        Self {
            owner: AtomicU64::new(0),
            core: UnsafeCell::new(core),
        }
    }
}

/// The default caches of a pool.
pub(crate) type Slots = Box<[CachePadded<Slot>]>;

/// How many default caches a pool keeps: a power of two, so a thread finds
/// its slot with a mask.
pub(crate) fn slot_count() -> usize {
    let cpus = std::thread::available_parallelism().map_or(4, std::num::NonZero::get);
    (2 * cpus).clamp(8, 64).next_power_of_two()
}

static NEXT_TAG: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's tag, 0 until first use.
    static TAG: Cell<u64> = const { Cell::new(0) };
    /// Slots this thread owns, given back when it exits.
    static CLAIMS: Claims = const { Claims(RefCell::new(Vec::new())) };
}

/// Slots this thread owns: the pool (weak: the pool goes when its count
/// reaches 0), slot index, this thread's tag.
type Claim = (Weak<PoolInner>, usize, u64);

struct Claims(RefCell<Vec<Claim>>);

impl Drop for Claims {
    fn drop(&mut self) {
        give_back_all(self.0.take());
    }
}

/// Flushes and frees each claimed slot whose pool is alive, releasing the
/// flushed objects from the pool's count.
fn give_back_all(claims: Vec<Claim>) {
    for (pool, index, tag) in claims {
        if let Some(pool) = pool.upgrade() {
            let k = give_back(&pool, index, tag);
            // SAFETY: the `k` objects flushed were counted in the pool's
            // references; `pool` (our own strong count) keeps the memory
            // until it drops below, and nothing else of the pool is used.
            unsafe { PoolInner::release(Arc::as_ptr(&pool), k) };
        }
    }
}

#[inline(always)]
fn tag() -> u64 {
    TAG.with(|t| {
        let v = t.get();
        if v != 0 {
            return v;
        }
        // Relaxed: only uniqueness matters.
        let v = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        t.set(v);
        v
    })
}

/// Flushes slot `index` of `pool` and frees it, if `tag` owns it; returns
/// how many objects went to the backend, for the caller to release from the
/// pool's count after its last use of the pool.
#[must_use = "flushed objects must be released from the pool's count"]
fn give_back(pool: &PoolInner, index: usize, tag: u64) -> usize {
    let slot = &pool.slots()[index];
    // Relaxed: reads our own store.
    if slot.owner.load(Ordering::Relaxed) != tag {
        return 0;
    }
    // SAFETY: we own the slot (invariant on `owner`).
    let core = unsafe { &mut *slot.core.get() };
    let k = core.flush(pool);
    // Release: pairs with the Acquire compare-exchange in `claim`, so the
    // next owner sees the cache as we left it.
    slot.owner.store(0, Ordering::Release);
    k
}

#[cold]
fn claim(pool: &Arc<PoolInner>, index: usize, tag: u64) -> bool {
    // No new claims once the last handle is gone: objects coming back then
    // go to the backend, so the last one frees the pool (instead of waiting
    // in a slot for this thread to exit).
    // Relaxed: advisory (see `Life::handles`); a claim racing with the last
    // handle's drop only keeps objects until this thread flushes or exits.
    if pool.life.handles.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let slot = &pool.slots()[index];
    // Acquire: pairs with the Release store in `give_back`.
    if slot
        .owner
        .compare_exchange(0, tag, Ordering::Acquire, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    let remembered = CLAIMS
        .try_with(|c| {
            let mut c = c.0.borrow_mut();
            // Forget claims on pools that are gone (a long-lived thread may
            // touch many short-lived pools).
            c.retain(|(p, _, _)| p.strong_count() > 0);
            c.push((Arc::downgrade(pool), index, tag));
        })
        .is_ok();
    if !remembered {
        // The thread is exiting: do not keep the slot.
        // Release: as in `give_back`.
        slot.owner.store(0, Ordering::Release);
    }
    remembered
}

/// Runs `f` on the calling thread's default cache of `pool`, or on `None`
/// when it has none (no cache size, or its slot is owned by another thread,
/// or it is free and `claim_free` is false or the claim is refused).
#[inline(always)]
fn with_slot<R>(
    pool: &Arc<PoolInner>,
    claim_free: bool,
    f: impl FnOnce(Option<&mut CacheCore>) -> R,
) -> R {
    let slots = pool.slots();
    if slots.is_empty() {
        return f(None);
    }
    let tag = tag();
    let index = tag as usize & (slots.len() - 1);
    let slot = &slots[index];
    // Relaxed: if it equals our tag we stored it ourselves.
    let owner = slot.owner.load(Ordering::Relaxed);
    if owner == tag || (claim_free && owner == 0 && claim(pool, index, tag)) {
        // SAFETY: we own the slot (invariant on `owner`); `f` does not reenter
        // the pool's default cache (it only calls the backend).
        return f(Some(unsafe { &mut *slot.core.get() }));
    }
    f(None)
}

#[inline(always)]
pub(crate) fn get(pool: &Arc<PoolInner>, out: &mut [MaybeUninit<Obj>]) -> Result<(), GetError> {
    with_slot(pool, true, |c| match c {
        Some(c) => c.get(pool, out),
        None => pool.backend_get(out),
    })
}

/// Puts `objs` through the calling thread's default cache, else the
/// backend; returns how many went to the backend, for the caller to release
/// from the pool's count after its last use of the pool.
#[inline(always)]
#[must_use = "objects put to the backend must be released from the pool's count"]
pub(crate) fn put(pool: &Arc<PoolInner>, objs: &[Obj]) -> usize {
    with_slot(pool, true, |c| {
        if let Some(c) = c {
            c.put(pool, objs)
        } else {
            pool.backend_put(objs);
            objs.len()
        }
    })
}

/// Flushes the calling thread's default cache of `pool`, if it has one;
/// returns how many objects to release, as [`put`].
#[must_use = "flushed objects must be released from the pool's count"]
pub(crate) fn flush(pool: &Arc<PoolInner>) -> usize {
    with_slot(pool, false, |c| c.map_or(0, |c| c.flush(pool)))
}

/// The last handle of `pool` is being dropped on this thread: flushes and
/// frees this thread's slot of it and forgets the claim; returns how many
/// objects to release, as [`put`].
#[must_use = "flushed objects must be released from the pool's count"]
pub(crate) fn on_last_handle(pool: &Arc<PoolInner>) -> usize {
    let slots = pool.slots();
    if slots.is_empty() {
        return 0;
    }
    let tag = tag();
    let index = tag as usize & (slots.len() - 1);
    let k = give_back(pool, index, tag);
    // The record is stale now; drop it (this may run during thread exit,
    // when the records are already gone, or inside a borrow by an event
    // callback: then leave it, `give_back` ignores stale records).
    let me = Arc::as_ptr(pool);
    let _ = CLAIMS.try_with(|c| {
        if let Ok(mut c) = c.0.try_borrow_mut() {
            c.retain(|(p, i, _)| !(p.as_ptr() == me && *i == index));
        }
    });
    k
}

/// Flushes the calling thread's default caches of every pool back to their
/// backends and gives the slots back (the thread claims a slot again on its
/// next `*_default` call to a pool that still has a handle).
///
/// Objects in a default cache are out of the pool's backend and keep the
/// pool's memory alive; a thread's exit flushes its default caches, and
/// dropping a pool's last handle flushes the dropping thread's, but a live
/// thread that put objects back after that (or into a pool whose last
/// handle dropped elsewhere) keeps them until it calls this.
///
/// ```
/// use pktmem_mempool::{flush_thread_caches, Mempool};
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// struct Gone(Arc<AtomicBool>); // set when the pool's memory goes
/// impl Drop for Gone {
///     fn drop(&mut self) { self.0.store(true, Ordering::SeqCst) }
/// }
/// let gone = Arc::new(AtomicBool::new(false));
/// let pool = Mempool::builder(64, 64)
///     .cache(16)
///     .attachment(Gone(gone.clone()))
///     .build_anonymous()
///     .unwrap();
/// let o = pool.get_default().unwrap(); // this thread's default cache refills
/// // SAFETY: given back once.
/// unsafe { pool.put_default(o) };
/// // The last handle goes on another thread: this thread's default cache
/// // still holds objects, which keep the pool's memory.
/// std::thread::spawn(move || drop(pool)).join().unwrap();
/// assert!(!gone.load(Ordering::SeqCst));
/// flush_thread_caches();
/// assert!(gone.load(Ordering::SeqCst));
/// ```
pub fn flush_thread_caches() {
    let claims = CLAIMS
        .try_with(|c| c.0.try_borrow_mut().map(|mut c| std::mem::take(&mut *c)))
        .ok()
        .and_then(Result::ok)
        .unwrap_or_default();
    give_back_all(claims);
}
