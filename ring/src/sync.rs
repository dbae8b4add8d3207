//! The one place the ring takes its atomics, cells and spin hint from:
//! `std` normally, `loom` under `--cfg loom` (tokio's `src/loom/` pattern), so
//! the loom models in the root `tests/loom_ring.rs` explore the real code.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Tells the CPU (or loom's scheduler) that this thread is waiting on another.
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::thread::yield_now();
}

/// One ring slot. Under `std` this is `UnsafeCell<MaybeUninit<T>>`, which
/// has the layout of `T`, so runs of slots are copied with
/// `copy_nonoverlapping`; under loom it is loom's tracked cell and slots are
/// copied one by one so loom sees every access.
#[cfg(not(loom))]
pub(crate) type Slot<T> = std::cell::UnsafeCell<std::mem::MaybeUninit<T>>;

#[cfg(loom)]
pub(crate) type Slot<T> = loom::cell::UnsafeCell<std::mem::MaybeUninit<T>>;

/// A fresh, uninitialised slot.
#[inline(always)]
pub(crate) fn new_slot<T>() -> Slot<T> {
    Slot::new(std::mem::MaybeUninit::uninit())
}
