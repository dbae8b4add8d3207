//! Errors, one type per operation: building a ring ([`BuildError`]), an
//! all-or-nothing enqueue that did not fit ([`RingFull`]), an all-or-nothing
//! dequeue that found too few ([`RingEmpty`]), memory refused by
//! [`RingBuilder::build_on`](crate::RingBuilder::build_on) ([`RejectedMemory`],
//! which hands the memory back), and [`RingError`], which each converts into
//! for `?`.
//!
//! A failed single-element enqueue is not an error type: it hands the value
//! back (`Err(value)`), as crossbeam's `ArrayQueue::push` does.

use std::fmt;

/// Why a ring could not be built.
///
/// ```
/// use pktmem_ring::{BuildError, Ring, MAX_CAPACITY};
/// assert_eq!(Ring::<u64>::new(0).unwrap_err(), BuildError::ZeroCapacity);
/// assert_eq!(
///     Ring::<u64>::new(MAX_CAPACITY + 1).unwrap_err(),
///     BuildError::TooLarge { requested: MAX_CAPACITY + 1, max: MAX_CAPACITY }
/// );
/// assert_eq!(
///     Ring::<u64>::builder(1000).dpdk_sizing().build().unwrap_err(),
///     BuildError::NotPowerOfTwo { requested: 1000 }
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// A capacity of 0 was asked for.
    ZeroCapacity,
    /// The capacity is above [`MAX_CAPACITY`](crate::MAX_CAPACITY).
    TooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The largest capacity a ring can have.
        max: usize,
    },
    /// With [`RingBuilder::dpdk_sizing`](crate::RingBuilder::dpdk_sizing)
    /// the capacity must be a power of two (the ring then holds
    /// `capacity - 1` elements, as DPDK's rings do).
    NotPowerOfTwo {
        /// The capacity asked for.
        requested: usize,
    },
    /// The heap could not give the slot array.
    AllocFailed {
        /// Bytes asked of the allocator.
        bytes: usize,
    },
    /// Caller-provided memory is smaller than [`RingBuilder::memory_size`](crate::RingBuilder::memory_size).
    MemoryTooSmall {
        /// Bytes the ring needs.
        needed: usize,
        /// Bytes provided.
        provided: usize,
    },
    /// Caller-provided memory is not aligned to [`RingBuilder::memory_align`](crate::RingBuilder::memory_align).
    MemoryMisaligned {
        /// Alignment the ring needs.
        align: usize,
        /// Address provided.
        addr: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroCapacity => write!(f, "ring capacity must be at least 1"),
            BuildError::TooLarge { requested, max } => {
                write!(f, "ring capacity {requested} is above the maximum {max}")
            }
            BuildError::NotPowerOfTwo { requested } => write!(
                f,
                "ring capacity {requested} is not a power of two (DPDK sizing needs one; \
                 the default sizing takes any capacity)"
            ),
            BuildError::AllocFailed { bytes } => {
                write!(f, "could not allocate {bytes} bytes for the ring's slots")
            }
            BuildError::MemoryTooSmall { needed, provided } => write!(
                f,
                "ring needs {needed} bytes of memory, {provided} bytes were provided"
            ),
            BuildError::MemoryMisaligned { align, addr } => write!(
                f,
                "ring memory at {addr:#x} is not aligned to {align} bytes"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// An all-or-nothing enqueue did not fit; nothing was enqueued (owned values
/// stay in the caller's buffer).
///
/// ```
/// use pktmem_ring::{Ring, RingFull};
/// let ring = Ring::<u32>::new(3).unwrap();
/// let err = ring.enqueue_bulk(&[1, 2, 3, 4]).unwrap_err();
/// assert_eq!(err, RingFull { requested: 4, free: 3 });
/// assert!(ring.is_empty());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingFull {
    /// Elements the call tried to enqueue.
    pub requested: usize,
    /// Free slots the ring had when the call gave up.
    pub free: usize,
}

impl fmt::Display for RingFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ring full: {} elements to enqueue, {} slots free",
            self.requested, self.free
        )
    }
}

impl std::error::Error for RingFull {}

/// An all-or-nothing dequeue found too few elements; nothing was dequeued.
///
/// ```
/// use pktmem_ring::{Ring, RingEmpty};
/// let ring = Ring::<u32>::new(4).unwrap();
/// ring.enqueue(7).unwrap();
/// let mut out = [0; 2];
/// assert_eq!(
///     ring.dequeue_bulk(&mut out).unwrap_err(),
///     RingEmpty { requested: 2, available: 1 }
/// );
/// assert_eq!(ring.len(), 1);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingEmpty {
    /// Elements the call tried to dequeue.
    pub requested: usize,
    /// Elements the ring held when the call gave up.
    pub available: usize,
}

impl fmt::Display for RingEmpty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ring empty: {} elements to dequeue, {} available",
            self.requested, self.available
        )
    }
}

impl std::error::Error for RingEmpty {}

/// Why [`Consumer::try_dequeue`](crate::Consumer::try_dequeue) returned no
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TryDequeueError {
    /// The ring is empty, and a producer end is alive: more may come.
    Empty,
    /// The ring is empty and every producer end has been dropped: nothing
    /// can come any more.
    Disconnected,
}

impl fmt::Display for TryDequeueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryDequeueError::Empty => write!(f, "ring empty"),
            TryDequeueError::Disconnected => {
                write!(f, "ring empty and every producer end dropped")
            }
        }
    }
}

impl std::error::Error for TryDequeueError {}

/// Any ring error, for `?` in code that builds rings and moves bulks.
///
/// ```
/// use pktmem_ring::{Ring, RingError};
///
/// fn relay() -> Result<u32, RingError> {
///     let ring = Ring::<u32>::new(8)?; // a `BuildError`
///     ring.enqueue_bulk(&[1, 2])?; // a `RingFull`
///     let mut out = [0; 2];
///     ring.dequeue_bulk(&mut out)?; // a `RingEmpty`
///     Ok(out[0] + out[1])
/// }
/// assert_eq!(relay().unwrap(), 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// Building the ring failed.
    Build(BuildError),
    /// An all-or-nothing enqueue did not fit.
    Full(RingFull),
    /// An all-or-nothing dequeue found too few elements.
    Empty(RingEmpty),
    /// A ring in shared memory ([`shared`](crate::shared)) refused an
    /// operation (bad layout, full, empty, an index the other process
    /// corrupted).
    Shared(crate::shared::ShmRingError),
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::Build(e) => e.fmt(f),
            RingError::Full(e) => e.fmt(f),
            RingError::Empty(e) => e.fmt(f),
            RingError::Shared(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RingError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RingError::Build(e) => Some(e),
            RingError::Full(e) => Some(e),
            RingError::Empty(e) => Some(e),
            RingError::Shared(e) => Some(e),
        }
    }
}

impl From<crate::shared::ShmRingError> for RingError {
    fn from(e: crate::shared::ShmRingError) -> Self {
        RingError::Shared(e)
    }
}

impl From<BuildError> for RingError {
    fn from(e: BuildError) -> Self {
        RingError::Build(e)
    }
}

impl From<RingFull> for RingError {
    fn from(e: RingFull) -> Self {
        RingError::Full(e)
    }
}

impl From<RingEmpty> for RingError {
    fn from(e: RingEmpty) -> Self {
        RingError::Empty(e)
    }
}

impl<M> From<RejectedMemory<M>> for RingError {
    fn from(e: RejectedMemory<M>) -> Self {
        RingError::Build(e.error)
    }
}

/// [`RingBuilder::build_on`](crate::RingBuilder::build_on) refused the
/// memory; the memory is handed back unharmed.
///
/// ```
/// use pktmem_ring::{BuildError, HeapMemory, Ring};
/// use std::alloc::Layout;
///
/// let small = HeapMemory::new(Layout::from_size_align(256, 64).unwrap()).unwrap();
/// let err = Ring::<u64>::builder(64).build_on(small).unwrap_err();
/// assert_eq!(err.error, BuildError::MemoryTooSmall { needed: 512, provided: 256 });
/// let small: HeapMemory = err.memory; // not lost: reuse it for a smaller ring
/// let ring = Ring::<u64>::builder(32).build_on(small).unwrap();
/// assert_eq!(ring.capacity(), 32);
/// ```
#[non_exhaustive]
pub struct RejectedMemory<M> {
    /// Why the ring was not built.
    pub error: BuildError,
    /// The memory that was offered, untouched.
    pub memory: M,
}

impl<M> RejectedMemory<M> {
    pub(crate) fn new(error: BuildError, memory: M) -> Self {
        RejectedMemory { error, memory }
    }
}

impl<M> fmt::Debug for RejectedMemory<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RejectedMemory")
            .field("error", &self.error)
            .field("memory", &std::any::type_name::<M>())
            .finish()
    }
}

impl<M> fmt::Display for RejectedMemory<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ring memory refused: {}", self.error)
    }
}

impl<M> std::error::Error for RejectedMemory<M> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}
