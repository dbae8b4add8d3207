//! The crate's error type.

use std::fmt;
use std::io;

/// Everything that can go wrong in the provider.
///
/// Each variant carries the numbers that explain it. OS failures carry the
/// [`io::Error`] and the operation that failed.
///
/// ```
/// use pktmem_hugemem::{HugememError, Provider};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// assert!(matches!(p.alloc(0), Err(HugememError::ZeroLength)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HugememError {
    /// A length of zero was asked for.
    ZeroLength,
    /// The alignment is not a power of two.
    BadAlignment {
        /// The alignment asked for.
        align: usize,
    },
    /// A page size that is not a power of two of at least 4096 bytes, or one
    /// the provider does not serve.
    BadPageSize {
        /// The page size given, in bytes.
        page_size: usize,
    },
    /// No page source could provide `pages` pages of `page_size` bytes and
    /// falling back was not allowed (or failed too).
    NoPages {
        /// Page size tried last, in bytes.
        page_size: usize,
        /// Pages needed.
        pages: usize,
        /// Why: "no 2 MiB hugepages reserved", "ran out after 12 pages", ...
        reason: String,
    },
    /// The list's reserved VA range has no free run long enough.
    VaExhausted {
        /// Page size of the list, in bytes.
        page_size: usize,
        /// Pages needed.
        pages: usize,
        /// Pages the list's VA reservation holds.
        reserved_pages: usize,
    },
    /// Growing would pass the provider's upper limit.
    LimitExceeded {
        /// Bytes the allocation would add.
        requested: usize,
        /// Bytes mapped now.
        mapped: usize,
        /// The limit, in bytes.
        limit: usize,
    },
    /// A validator callback refused growth past its threshold.
    RefusedByValidator {
        /// The validator's name.
        name: String,
        /// Bytes that would be mapped after the allocation.
        new_total: usize,
        /// The validator's threshold, in bytes.
        threshold: usize,
    },
    /// An IOVA-contiguous chunk was asked for and the pages found are not.
    NotIovaContiguous {
        /// Bytes asked for.
        len: usize,
        /// How many IOVA-contiguous runs the pages formed.
        segments: usize,
    },
    /// An external address (or length) is not a multiple of its page size.
    Misaligned {
        /// The address or length at fault.
        value: usize,
        /// The page size it must be a multiple of.
        page_size: usize,
    },
    /// A per-page IOVA table does not have one entry per page.
    IovaTableLength {
        /// Pages in the range.
        expected: usize,
        /// Entries given.
        got: usize,
    },
    /// A range overlaps memory the provider already knows.
    Overlap {
        /// Start of the new range.
        addr: usize,
        /// Its length.
        len: usize,
    },
    /// No object of that name (zone, heap, validator, callback).
    UnknownName(String),
    /// An object of that name exists already.
    DuplicateName(String),
    /// The address is not memory registered with (or allocated by) this provider.
    NotRegistered {
        /// The address.
        addr: usize,
    },
    /// The memory is still in use (chunks allocated from it).
    InUse {
        /// What is busy ("external memory at 0x...", "heap 'x'").
        what: String,
        /// Pages in use.
        pages: usize,
    },
    /// The NUMA node does not exist on this machine.
    UnknownNode(i32),
    /// Called from inside a validator, which runs under the provider lock.
    Reentrant,
    /// Too many lists (page-size lists plus external ranges); the table holds this many.
    TooManyLists(usize),
    /// The provider could not be built (reported by [`Provider::global`](crate::Provider::global)'s
    /// first allocation).
    InitFailed(String),
    /// A DMA mapper refused memory the provider was mapping (the
    /// allocation or registration that brought it failed).
    DmaMap(crate::DmaMapError),
    /// A DMA mapper could not be registered.
    DmaRegister(crate::DmaRegisterError),
    /// A system call failed.
    Io {
        /// The operation ("memfd_create", "fallocate", "mmap", ...).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl HugememError {
    pub(crate) fn io(op: &'static str) -> Self {
        HugememError::Io {
            op,
            source: io::Error::last_os_error(),
        }
    }
}

fn mib(b: usize) -> String {
    if b >= 1 << 30 && b % (1 << 30) == 0 {
        format!("{} GiB", b >> 30)
    } else if b >= 1 << 20 && b % (1 << 20) == 0 {
        format!("{} MiB", b >> 20)
    } else if b >= 1 << 10 && b % (1 << 10) == 0 {
        format!("{} KiB", b >> 10)
    } else {
        format!("{b} B")
    }
}

pub(crate) fn human(b: usize) -> String {
    mib(b)
}

impl fmt::Display for HugememError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HugememError::*;
        match self {
            ZeroLength => write!(f, "zero-length request"),
            BadAlignment { align } => write!(f, "alignment {align} is not a power of two"),
            BadPageSize { page_size } => write!(
                f,
                "page size {page_size} is not served (must be a power of two >= 4096 the provider allows)"
            ),
            NoPages {
                page_size,
                pages,
                reason,
            } => write!(
                f,
                "could not get {pages} page(s) of {}: {reason}",
                mib(*page_size)
            ),
            VaExhausted {
                page_size,
                pages,
                reserved_pages,
            } => write!(
                f,
                "no free run of {pages} page(s) in the {} list's VA reservation of {reserved_pages} pages",
                mib(*page_size)
            ),
            LimitExceeded {
                requested,
                mapped,
                limit,
            } => write!(
                f,
                "allocating {} with {} mapped would pass the limit of {}",
                mib(*requested),
                mib(*mapped),
                mib(*limit)
            ),
            RefusedByValidator {
                name,
                new_total,
                threshold,
            } => write!(
                f,
                "validator '{name}' refused growth to {} (threshold {})",
                mib(*new_total),
                mib(*threshold)
            ),
            NotIovaContiguous { len, segments } => write!(
                f,
                "{} asked IOVA-contiguous, the pages found form {segments} IOVA runs",
                mib(*len)
            ),
            Misaligned { value, page_size } => write!(
                f,
                "{value:#x} is not a multiple of the page size {}",
                mib(*page_size)
            ),
            IovaTableLength { expected, got } => write!(
                f,
                "IOVA table has {got} entries, the range has {expected} pages"
            ),
            Overlap { addr, len } => write!(
                f,
                "range {addr:#x}+{} overlaps memory the provider already knows",
                mib(*len)
            ),
            UnknownName(n) => write!(f, "no object named '{n}'"),
            DuplicateName(n) => write!(f, "an object named '{n}' exists already"),
            NotRegistered { addr } => write!(f, "{addr:#x} is not this provider's memory"),
            InUse { what, pages } => write!(f, "{what} is in use ({pages} page(s) allocated)"),
            UnknownNode(n) => write!(f, "NUMA node {n} does not exist"),
            Reentrant => write!(
                f,
                "called from inside a validator of the same provider (it runs under the provider lock)"
            ),
            TooManyLists(n) => write!(f, "the provider holds at most {n} lists"),
            InitFailed(m) => write!(f, "provider could not be built: {m}"),
            DmaMap(e) => e.fmt(f),
            DmaRegister(e) => e.fmt(f),
            Io { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

impl std::error::Error for HugememError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HugememError::Io { source, .. } => Some(source),
            HugememError::DmaMap(e) => Some(e),
            HugememError::DmaRegister(e) => Some(e),
            _ => None,
        }
    }
}

impl From<crate::DmaRegisterError> for HugememError {
    fn from(e: crate::DmaRegisterError) -> Self {
        HugememError::DmaRegister(e)
    }
}
