//! What making or reading an `AF_XDP` socket can fail with.

use std::fmt;
use std::io;

use crate::hugemem::AllocError;
use crate::mbuf::{BuildError, PinnedAreaError};

use super::umem::{UmemConfigError, UmemGeometry, UmemMemoryError};

/// Why an [`XskSocket`](super::XskSocket) could not be made.
#[derive(Debug)]
#[non_exhaustive]
pub enum XskError {
    /// The UMEM geometry breaks a kernel rule.
    Config(UmemConfigError),
    /// The memory the provider gave breaks a UMEM rule.
    Memory(UmemMemoryError),
    /// The provider could not give the UMEM's memory.
    Alloc(AllocError),
    /// The UMEM could not be cut into frames.
    Area(PinnedAreaError),
    /// The frame pool could not be built.
    Pool(BuildError),
    /// A ring size is not a power of two (or is zero).
    RingSize {
        /// Which ring.
        ring: &'static str,
        /// The size asked for.
        size: u32,
    },
    /// The fill target is zero, or above the fill ring's size or the frames.
    FillTarget {
        /// The target asked for.
        target: usize,
        /// Entries of the fill ring.
        fill_size: u32,
        /// Frames of the UMEM.
        frames: usize,
    },
    /// The kernel lacks a feature.
    Unsupported {
        /// What is missing.
        feature: &'static str,
        /// The errno that said so.
        errno: i32,
    },
    /// The process lacks the privilege (root, or `CAP_NET_RAW` and
    /// `CAP_NET_ADMIN`).
    NotPermitted {
        /// The call refused.
        call: &'static str,
    },
    /// The kernel refused a UMEM geometry the validator accepted (the
    /// kernel's rules differ from this kernel's).
    UmemRejected {
        /// The geometry.
        geometry: UmemGeometry,
        /// The errno.
        errno: i32,
    },
    /// Pinning the UMEM passed `RLIMIT_MEMLOCK` (`ENOBUFS`).
    MemlockLimit {
        /// Bytes of the UMEM.
        bytes: usize,
    },
    /// The interface cannot bind in zero-copy mode (`EOPNOTSUPP`; veth
    /// cannot).
    ZeroCopyUnsupported {
        /// The interface.
        ifindex: u32,
        /// The queue.
        queue: u32,
    },
    /// `bind` failed for another reason (no such interface or queue, the
    /// queue taken by another socket).
    Bind {
        /// The interface.
        ifindex: u32,
        /// The queue.
        queue: u32,
        /// The error.
        err: io::Error,
    },
    /// Another system call failed.
    Sys {
        /// The call.
        call: &'static str,
        /// Its error.
        err: io::Error,
    },
}

impl XskError {
    /// Whether the error says this machine cannot run `AF_XDP` at all here
    /// (a kernel feature or a privilege is missing): programs skip on it.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unsupported { .. } | Self::NotPermitted { .. } | Self::MemlockLimit { .. }
        )
    }
}

impl fmt::Display for XskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(e) => write!(f, "xsk: {e}"),
            Self::Memory(e) => write!(f, "xsk: {e}"),
            Self::Alloc(e) => write!(f, "xsk: UMEM memory: {e}"),
            Self::Area(e) => write!(f, "xsk: UMEM frames: {e}"),
            Self::Pool(e) => write!(f, "xsk: frame pool: {e}"),
            Self::RingSize { ring, size } => {
                write!(f, "xsk: {ring} ring size {size} is not a power of two")
            }
            Self::FillTarget {
                target,
                fill_size,
                frames,
            } => write!(
                f,
                "xsk: fill target {target} must be 1..={} (fill ring {fill_size}, {frames} frames)",
                (*fill_size as usize).min(*frames)
            ),
            Self::Unsupported { feature, errno } => write!(
                f,
                "xsk: this kernel lacks {feature} ({})",
                io::Error::from_raw_os_error(*errno)
            ),
            Self::NotPermitted { call } => write!(
                f,
                "xsk: {call} was refused: AF_XDP needs root (CAP_NET_RAW, CAP_NET_ADMIN, CAP_IPC_LOCK)"
            ),
            Self::UmemRejected { geometry, errno } => write!(
                f,
                "xsk: the kernel refused UMEM {} frames x {} B, headroom {}, {:?} ({})",
                geometry.frames(),
                geometry.frame_size(),
                geometry.headroom(),
                geometry.mode(),
                io::Error::from_raw_os_error(*errno)
            ),
            Self::MemlockLimit { bytes } => write!(
                f,
                "xsk: pinning the {bytes}-byte UMEM passes RLIMIT_MEMLOCK (raise it, or run with CAP_IPC_LOCK)"
            ),
            Self::ZeroCopyUnsupported { ifindex, queue } => write!(
                f,
                "xsk: interface {ifindex} queue {queue} has no zero-copy support (EOPNOTSUPP); bind in copy mode"
            ),
            Self::Bind {
                ifindex,
                queue,
                err,
            } => write!(f, "xsk: bind to interface {ifindex} queue {queue}: {err}"),
            Self::Sys { call, err } => write!(f, "xsk: {call}: {err}"),
        }
    }
}

impl std::error::Error for XskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(e) => Some(e),
            Self::Memory(e) => Some(e),
            Self::Alloc(e) => Some(e),
            Self::Area(e) => Some(e),
            Self::Pool(e) => Some(e),
            Self::Bind { err, .. } | Self::Sys { err, .. } => Some(err),
            _ => None,
        }
    }
}

/// Why [`XskSocket::kernel_stats`](super::XskSocket::kernel_stats) failed.
#[derive(Debug)]
#[non_exhaustive]
pub struct StatsError {
    /// The `getsockopt(XDP_STATISTICS)` error.
    pub err: io::Error,
}

impl fmt::Display for StatsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "xsk: getsockopt(XDP_STATISTICS): {}", self.err)
    }
}

impl std::error::Error for StatsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.err)
    }
}
