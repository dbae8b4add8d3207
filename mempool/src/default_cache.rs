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

struct Claims(RefCell<Vec<(Weak<PoolInner>, usize, u64)>>);

impl Drop for Claims {
    fn drop(&mut self) {
        for (pool, index, tag) in self.0.take() {
            if let Some(pool) = pool.upgrade() {
                release(&pool, index, tag);
            }
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

/// Flushes slot `index` of `pool` and frees it; called by its owner.
fn release(pool: &PoolInner, index: usize, tag: u64) {
    let slot = &pool.slots()[index];
    // Relaxed: reads our own store.
    if slot.owner.load(Ordering::Relaxed) != tag {
        return;
    }
    // SAFETY: we own the slot (invariant on `owner`).
    let core = unsafe { &mut *slot.core.get() };
    core.flush(pool);
    // Release: pairs with the Acquire compare-exchange in `claim`, so the
    // next owner sees the cache as we left it.
    slot.owner.store(0, Ordering::Release);
}

#[cold]
fn claim(pool: &Arc<PoolInner>, index: usize, tag: u64) -> bool {
    let slot = &pool.slots()[index];
    // Acquire: pairs with the Release store in `release`.
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
        // Release: as in `release`.
        slot.owner.store(0, Ordering::Release);
    }
    remembered
}

/// Runs `f` on the calling thread's default cache of `pool`, or on `None`
/// when it has none (no cache size, or its slot is owned by another thread).
#[inline(always)]
fn with_slot<R>(pool: &Arc<PoolInner>, f: impl FnOnce(Option<&mut CacheCore>) -> R) -> R {
    let slots = pool.slots();
    if slots.is_empty() {
        return f(None);
    }
    let tag = tag();
    let index = tag as usize & (slots.len() - 1);
    let slot = &slots[index];
    // Relaxed: if it equals our tag we stored it ourselves.
    let owner = slot.owner.load(Ordering::Relaxed);
    if owner == tag || (owner == 0 && claim(pool, index, tag)) {
        // SAFETY: we own the slot (invariant on `owner`); `f` does not reenter
        // the pool's default cache (it only calls the backend).
        return f(Some(unsafe { &mut *slot.core.get() }));
    }
    f(None)
}

#[inline(always)]
pub(crate) fn get(pool: &Arc<PoolInner>, out: &mut [MaybeUninit<Obj>]) -> Result<(), GetError> {
    with_slot(pool, |c| match c {
        Some(c) => c.get(pool, out),
        None => pool.backend_get(out),
    })
}

#[inline(always)]
pub(crate) fn put(pool: &Arc<PoolInner>, objs: &[Obj]) {
    with_slot(pool, |c| match c {
        Some(c) => c.put(pool, objs),
        None => pool.backend_put(objs),
    });
}

/// Flushes the calling thread's default cache of `pool`, if it has one.
pub(crate) fn flush(pool: &Arc<PoolInner>) {
    with_slot(pool, |c| {
        if let Some(c) = c {
            c.flush(pool);
        }
    });
}
