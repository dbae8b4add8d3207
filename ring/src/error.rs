//! Typed errors: construction ([`RingError`]), an all-or-nothing enqueue that
//! did not fit ([`RingFull`]), an all-or-nothing dequeue that found too few
//! ([`RingEmpty`]), a zero-copy call on a side that is not HTS ([`NotHts`])
//! and memory refused by [`RingBuilder::build_on`](crate::RingBuilder::build_on)
//! ([`RejectedMemory`], which hands the memory back).

use std::fmt;

/// Why a ring could not be built.
///
/// ```
/// use pktmem_ring::{Ring, RingError};
/// assert_eq!(Ring::<u64>::new(0).unwrap_err(), RingError::ZeroCapacity);
/// assert!(matches!(
///     Ring::<u64>::new(1000),
///     Err(RingError::NotPowerOfTwo { requested: 1000 })
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingError {
    /// A capacity of 0 was asked for.
    ZeroCapacity,
    /// The capacity is above [`MAX_CAPACITY`](crate::MAX_CAPACITY).
    TooLarge {
        /// The capacity asked for.
        requested: usize,
        /// The largest capacity a ring can have.
        max: usize,
    },
    /// Without `exact_size(true)` the capacity must be a power of two (the
    /// ring then holds `capacity - 1` elements, as DPDK's rings do).
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
    /// A head-tail distance limit was set for a side that is not
    /// [`SyncMode::Rts`](crate::SyncMode::Rts) (the limit means nothing
    /// there; DPDK refuses it the same way).
    MaxDistanceNotRts {
        /// The side the limit was set for.
        end: End,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::ZeroCapacity => write!(f, "ring capacity must be at least 1"),
            RingError::TooLarge { requested, max } => {
                write!(f, "ring capacity {requested} is above the maximum {max}")
            }
            RingError::NotPowerOfTwo { requested } => write!(
                f,
                "ring capacity {requested} is not a power of two (use exact_size(true) for any capacity)"
            ),
            RingError::AllocFailed { bytes } => {
                write!(f, "could not allocate {bytes} bytes for the ring's slots")
            }
            RingError::MemoryTooSmall { needed, provided } => write!(
                f,
                "ring needs {needed} bytes of memory, {provided} bytes were provided"
            ),
            RingError::MemoryMisaligned { align, addr } => write!(
                f,
                "ring memory at {addr:#x} is not aligned to {align} bytes"
            ),
            RingError::MaxDistanceNotRts { end } => write!(
                f,
                "a head-tail distance limit was set for the {} side, which is not in RTS mode",
                end.name()
            ),
        }
    }
}

impl std::error::Error for RingError {}

/// An all-or-nothing enqueue did not fit; nothing was enqueued.
///
/// ```
/// use pktmem_ring::{Ring, RingFull};
/// let ring = Ring::<u32>::new(4).unwrap(); // holds 3
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

/// Which end of a ring an error or setting is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum End {
    /// The enqueue side.
    Producer,
    /// The dequeue side.
    Consumer,
}

/// Zero-copy and peek calls on a shared [`Ring`](crate::Ring) need that side
/// to be [`SyncMode::Hts`](crate::SyncMode::Hts) (one thread at a time owns
/// the reserved slots); this side is [`SyncMode::Multi`](crate::SyncMode::Multi)
/// or [`SyncMode::Rts`](crate::SyncMode::Rts).
///
/// ```
/// use pktmem_ring::{End, NotHts, Ring};
/// let ring = Ring::<u32>::new(4).unwrap();
/// assert_eq!(ring.dequeue_start(1).unwrap_err(), NotHts { end: End::Consumer });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotHts {
    /// The end that was asked for zero-copy access.
    pub end: End,
}

impl End {
    /// "producer" or "consumer", for messages.
    fn name(self) -> &'static str {
        match self {
            End::Producer => "producer",
            End::Consumer => "consumer",
        }
    }
}

impl fmt::Display for NotHts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let end = self.end.name();
        write!(
            f,
            "zero-copy and peek need the {end} side in HTS mode; it is in another mode"
        )
    }
}

impl std::error::Error for NotHts {}

/// [`RingBuilder::build_on`](crate::RingBuilder::build_on) refused the
/// memory (or the builder's settings); the memory is handed back unharmed.
///
/// ```
/// use pktmem_ring::{HeapMemory, Ring, RingError};
/// use std::alloc::Layout;
///
/// let small = HeapMemory::new(Layout::from_size_align(256, 64).unwrap()).unwrap();
/// let err = Ring::<u64>::builder(64).build_on(small).unwrap_err();
/// assert_eq!(err.error, RingError::MemoryTooSmall { needed: 512, provided: 256 });
/// let small: HeapMemory = err.memory; // not lost: reuse it for a smaller ring
/// let ring = Ring::<u64>::builder(32).build_on(small).unwrap();
/// assert_eq!(ring.capacity(), 31);
/// ```
#[non_exhaustive]
pub struct RejectedMemory<M> {
    /// Why the ring was not built.
    pub error: RingError,
    /// The memory that was offered, untouched.
    pub memory: M,
}

impl<M> RejectedMemory<M> {
    pub(crate) fn new(error: RingError, memory: M) -> Self {
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
