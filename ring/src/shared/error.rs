//! [`ShmRingError`]: everything a shared ring can report, with the numbers.

use std::fmt;

/// Which shared index a [`ShmRingError::Corrupt`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShmIndex {
    /// The consumer's `head` (as read by the producer or the exporter).
    Head,
    /// The producer's `tail` (as read by the consumer or the exporter).
    Tail,
}

impl fmt::Display for ShmIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ShmIndex::Head => "head",
            ShmIndex::Tail => "tail",
        })
    }
}

/// Why a shared-ring operation failed. Nothing was moved by a call that
/// returns one, and the end stays usable: a [`Corrupt`](Self::Corrupt)
/// index is reported again on every call that needs to read it until the
/// other side writes a valid one.
///
/// ```
/// use std::ptr::NonNull;
/// use pktmem_ring::shared::{init_shm_ring, shm_ring_bytes, ShmRingError};
///
/// let mut mem = vec![0u64; shm_ring_bytes(8) / 8];
/// let p = NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap();
/// let len = mem.len() * 8;
/// // SAFETY: `mem` is ours, alive for the call and touched by nothing else.
/// let err = unsafe { init_shm_ring(p, len, 12) }.unwrap_err();
/// assert_eq!(err, ShmRingError::BadCapacity { capacity: 12, max: 1 << 24 });
/// // SAFETY: as above.
/// let err = unsafe { init_shm_ring(p, len, 16) }.unwrap_err();
/// assert_eq!(err, ShmRingError::TooSmall { need: 384 + 16 * 16, have: len });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ShmRingError {
    /// The memory's address is not aligned to
    /// [`layout::ALIGN`](super::layout::ALIGN).
    Misaligned {
        /// The address given.
        addr: usize,
        /// The alignment needed.
        align: usize,
    },
    /// The memory is shorter than the ring (header, or header + slots of
    /// the capacity asked for / found in the header).
    TooSmall {
        /// Bytes needed.
        need: usize,
        /// Bytes given.
        have: usize,
    },
    /// The first word is not [`layout::MAGIC`](super::layout::MAGIC): not
    /// a shared ring, or not yet initialised.
    BadMagic {
        /// The word found.
        found: u64,
        /// The magic expected.
        expected: u64,
    },
    /// The header's layout version is not ours.
    BadVersion {
        /// The version found.
        found: u32,
        /// The version this code speaks.
        ours: u32,
    },
    /// A capacity (asked for, or found in the header) that is not a power
    /// of two in `1..=max`.
    BadCapacity {
        /// The capacity.
        capacity: u32,
        /// The largest allowed.
        max: u32,
    },
    /// An all-or-nothing enqueue did not fit; nothing was enqueued.
    Full {
        /// Descriptors the call tried to enqueue.
        need: usize,
        /// Free slots the ring had.
        free: usize,
    },
    /// An all-or-nothing dequeue found too few; nothing was dequeued.
    Empty {
        /// Descriptors the call tried to dequeue.
        need: usize,
        /// Descriptors published.
        available: usize,
    },
    /// An index written by the other side (or found at attach) is outside
    /// what an honest other side can have written: it went backwards, ran
    /// past ours, or is more than the capacity away. `min..=max` is the
    /// range it had to be in (wrapping `u64` order).
    Corrupt {
        /// The index read.
        which: ShmIndex,
        /// Its value.
        seen: u64,
        /// This end's own index (the producer's tail, the consumer's head;
        /// for the exporter's view, the other shared index).
        ours: u64,
        /// Lowest valid value.
        min: u64,
        /// Highest valid value.
        max: u64,
    },
}

impl fmt::Display for ShmRingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShmRingError::Misaligned { addr, align } => write!(
                f,
                "shared ring memory at {addr:#x} is not aligned to {align} bytes"
            ),
            ShmRingError::TooSmall { need, have } => write!(
                f,
                "shared ring needs {need} bytes of memory, {have} bytes were given"
            ),
            ShmRingError::BadMagic { found, expected } => write!(
                f,
                "not a shared ring: magic {found:#018x}, expected {expected:#018x}"
            ),
            ShmRingError::BadVersion { found, ours } => write!(
                f,
                "shared ring layout version {found}, this code speaks version {ours}"
            ),
            ShmRingError::BadCapacity { capacity, max } => write!(
                f,
                "shared ring capacity {capacity} is not a power of two in 1..={max}"
            ),
            ShmRingError::Full { need, free } => write!(
                f,
                "shared ring full: {need} descriptors to enqueue, {free} slots free"
            ),
            ShmRingError::Empty { need, available } => write!(
                f,
                "shared ring empty: {need} descriptors to dequeue, {available} published"
            ),
            ShmRingError::Corrupt {
                which,
                seen,
                ours,
                min,
                max,
            } => write!(
                f,
                "shared ring corrupt: {which} index {seen} is outside {min}..={max} \
                 (ours is {ours}); the other side wrote a value no honest end can"
            ),
        }
    }
}

impl std::error::Error for ShmRingError {}
