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
