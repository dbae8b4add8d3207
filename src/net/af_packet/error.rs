//! What opening, waiting on and reading a `TPACKET_V3` ring can fail with.

use std::fmt;
use std::time::Duration;

use crate::hugemem::RegisterError;

/// Why a [`PacketRing`](super::PacketRing) could not be opened.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The block size is zero, not a multiple of the page size, or above
    /// the largest block.
    BlockSize {
        /// Block size asked for.
        block_size: usize,
        /// The page size it must be a multiple of.
        page_size: usize,
        /// Largest block size ([`MAX_BLOCK_SIZE`](super::MAX_BLOCK_SIZE)).
        max: usize,
    },
    /// No blocks, or more than [`MAX_BLOCK_COUNT`](super::MAX_BLOCK_COUNT) or than fit
    /// [`MAX_RING_SIZE`](super::MAX_RING_SIZE).
    BlockCount {
        /// Blocks asked for.
        block_count: usize,
        /// Most blocks of this size.
        max: usize,
    },
    /// The frame size is not a multiple of the alignment, or outside
    /// `min..=max` (`max`: what a block holds after its descriptor).
    FrameSize {
        /// Frame size asked for.
        frame_size: usize,
        /// Smallest frame size ([`MIN_FRAME_SIZE`](super::MIN_FRAME_SIZE)).
        min: usize,
        /// Largest frame size for this block size.
        max: usize,
        /// Alignment (16).
        align: usize,
    },
    /// The retire timeout is below 1 ms or above `max_ms`.
    RetireTimeout {
        /// Timeout asked for.
        timeout: Duration,
        /// Largest timeout in milliseconds.
        max_ms: u32,
    },
    /// The interface index is zero, too large, or names no interface.
    NoSuchInterface {
        /// The index given.
        ifindex: u32,
    },
    /// The process may not open packet sockets (needs `CAP_NET_RAW`).
    NotPermitted {
        /// The call that was refused.
        call: &'static str,
    },
    /// The kernel refused the receive ring (`PACKET_RX_RING`): out of
    /// memory, or a geometry this kernel does not accept.
    RxRing {
        /// Block size.
        block_size: usize,
        /// Blocks.
        block_count: usize,
        /// Frame size.
        frame_size: usize,
        /// The kernel's error.
        err: std::io::Error,
    },
    /// Mapping the ring failed.
    Mmap {
        /// Bytes to map.
        len: usize,
        /// The kernel's error.
        err: std::io::Error,
    },
    /// The provider refused to register the ring's memory.
    Register(RegisterError),
    /// Another system call failed.
    Sys {
        /// The call.
        call: &'static str,
        /// Its error.
        err: std::io::Error,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BlockSize {
                block_size,
                page_size,
                max,
            } => write!(
                f,
                "block size {block_size} B is not a non-zero multiple of {page_size} B up to \
                 {max} B"
            ),
            Self::BlockCount { block_count, max } => {
                write!(f, "block count {block_count} is not in 1..={max}")
            }
            Self::FrameSize {
                frame_size,
                min,
                max,
                align,
            } => write!(
                f,
                "frame size {frame_size} B is not a multiple of {align} in {min}..={max} B"
            ),
            Self::RetireTimeout { timeout, max_ms } => write!(
                f,
                "retire timeout {timeout:?} is not between 1 ms and {max_ms} ms"
            ),
            Self::NoSuchInterface { ifindex } => write!(f, "no interface with index {ifindex}"),
            Self::NotPermitted { call } => write!(
                f,
                "{call} was refused: packet sockets need root (CAP_NET_RAW)"
            ),
            Self::RxRing {
                block_size,
                block_count,
                frame_size,
                err,
            } => write!(
                f,
                "the kernel refused a TPACKET_V3 ring of {block_count} blocks of {block_size} B \
                 (frames of {frame_size} B): {err}"
            ),
            Self::Mmap { len, err } => write!(f, "mapping the {len}-byte ring failed: {err}"),
            Self::Register(e) => write!(f, "registering the ring with the provider: {e}"),
            Self::Sys { call, err } => write!(f, "{call}: {err}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::RxRing { err, .. } | Self::Mmap { err, .. } | Self::Sys { err, .. } => Some(err),
            Self::Register(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`PacketRing::wait`](super::PacketRing::wait) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WaitError {
    /// `poll` failed.
    Poll(std::io::Error),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Poll(e) => write!(f, "poll on the packet socket: {e}"),
        }
    }
}

impl std::error::Error for WaitError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Poll(e) => Some(e),
        }
    }
}

/// Why [`PacketRing::stats`](super::PacketRing::stats) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum StatsError {
    /// `getsockopt(PACKET_STATISTICS)` failed.
    Getsockopt(std::io::Error),
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Getsockopt(e) => write!(f, "getsockopt(PACKET_STATISTICS): {e}"),
        }
    }
}

impl std::error::Error for StatsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Getsockopt(e) => Some(e),
        }
    }
}
