//! External buffers: memory the pool does not own, attached to mbufs, with a
//! shared, refcounted info that releases the buffer when its last reference
//! goes.

use std::sync::atomic::AtomicU16;

/// The shared info of an external buffer (its first, fixed part).
#[repr(C)]
#[derive(Debug)]
pub struct SharedHdr {
    /// References to the buffer.
    pub(crate) refcnt: AtomicU16,
}
