//! The one place the crate takes its atomics from: `std` normally, `loom`
//! under `--cfg loom` (tokio's `src/loom/` pattern, as in the mempool and
//! the ring), so the loom models in the root `tests/loom_mbuf.rs` explore
//! the real refcount code.
//!
//! Under loom an `AtomicU16` is loom's tracking handle (8 bytes, 8-aligned),
//! so the header is larger than its two cache lines; [`HEADER_SIZE`] and
//! the layout after it follow the real size there, and the offset asserts
//! hold for the `std` build only.
//!
//! [`HEADER_SIZE`]: crate::HEADER_SIZE

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicU16, Ordering};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicU16, Ordering};

/// Takes one more reference on a 16-bit count held by the caller (a direct
/// mbuf's refcount, an external buffer's shared count); `false`, nothing
/// taken, when the count is at its maximum.
#[inline(always)]
pub(crate) fn try_acquire(count: &AtomicU16) -> bool {
    // Relaxed: a new reference taken from one already held publishes
    // nothing (as `Arc::clone`); the releases order the accesses.
    if count.fetch_add(1, Ordering::Relaxed) == u16::MAX {
        // Undo the wrap: nobody can have seen 0 as a release meanwhile,
        // since the caller's own reference keeps the count above 0.
        count.fetch_sub(1, Ordering::Relaxed);
        return false;
    }
    true
}
