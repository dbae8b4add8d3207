//! Typed errors of the pool. Each carries the numbers that matter.

use std::fmt;

/// Why a pool could not be created or configured.
#[derive(Debug)]
#[non_exhaustive]
pub enum MempoolError {
    /// The object count was zero.
    ZeroObjects {
        /// Name of the pool.
        name: String,
    },
    /// The element size was zero.
    ZeroElementSize {
        /// Name of the pool.
        name: String,
    },
    /// The cache size is above [`CACHE_MAX_SIZE`](crate::CACHE_MAX_SIZE) or
    /// above the object count.
    CacheTooLarge {
        /// Requested cache size.
        cache_size: usize,
        /// Largest cache size allowed for this pool.
        max: usize,
    },
    /// A flag word held bits this crate does not know.
    UnknownFlags {
        /// The unknown bits.
        bits: u32,
    },
    /// The element (plus header) does not fit in a `u32`-indexed layout or
    /// overflows the address space.
    ElementTooLarge {
        /// Requested element size.
        elt_size: usize,
    },
    /// A user backend holds fewer slots than the pool has objects.
    BackendTooSmall {
        /// The backend's capacity.
        capacity: usize,
        /// Objects the pool must hold.
        needed: usize,
    },
    /// A user backend was not empty when handed over.
    BackendNotEmpty {
        /// Elements it already held.
        len: usize,
    },
    /// The ring backend could not be built.
    Ring(pktmem_ring::RingError),
    /// The lock-free stack backend could not be built.
    LfStack(crate::LfStackError),
    /// `n` objects of this size overflow the address space.
    PoolTooLarge {
        /// Objects asked for.
        n: usize,
        /// Bytes per element, header included.
        obj_size: usize,
    },
    /// The private area asked for is larger than 1 GiB.
    PrivateAreaTooLarge {
        /// Bytes asked for.
        size: usize,
    },
    /// Population failed; the pool was dropped and its memory returned.
    Populate(PopulateError),
}

impl fmt::Display for MempoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroObjects { name } => write!(f, "pool '{name}': object count is 0"),
            Self::ZeroElementSize { name } => write!(f, "pool '{name}': element size is 0"),
            Self::CacheTooLarge { cache_size, max } => {
                write!(f, "cache size {cache_size} is above the maximum {max}")
            }
            Self::UnknownFlags { bits } => write!(f, "unknown pool flags {bits:#x}"),
            Self::ElementTooLarge { elt_size } => {
                write!(f, "element size {elt_size} B is too large")
            }
            Self::BackendTooSmall { capacity, needed } => write!(
                f,
                "backend holds {capacity} objects, the pool needs {needed}"
            ),
            Self::BackendNotEmpty { len } => write!(f, "backend already holds {len} objects"),
            Self::Ring(e) => write!(f, "ring backend: {e}"),
            Self::LfStack(e) => write!(f, "stack backend: {e}"),
            Self::PoolTooLarge { n, obj_size } => {
                write!(f, "{n} objects of {obj_size} B overflow the address space")
            }
            Self::PrivateAreaTooLarge { size } => {
                write!(f, "private area of {size} B is larger than 1 GiB")
            }
            Self::Populate(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for MempoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Populate(e) => Some(e),
            Self::Ring(e) => Some(e),
            Self::LfStack(e) => Some(e),
            _ => None,
        }
    }
}

impl From<PopulateError> for MempoolError {
    fn from(e: PopulateError) -> Self {
        Self::Populate(e)
    }
}

/// Why memory could not be added to a pool.
#[derive(Debug)]
#[non_exhaustive]
pub enum PopulateError {
    /// The pool already holds all its objects.
    Full {
        /// Name of the pool.
        name: String,
        /// Its object count.
        size: usize,
    },
    /// An object is larger than a page and the memory is not IOVA-contiguous.
    ObjectLargerThanPage {
        /// Bytes per object, header included.
        obj_size: usize,
        /// Page size of the memory.
        page_size: usize,
    },
    /// The page size given is not a power of two.
    BadPageSize {
        /// The page size given.
        page_size: usize,
    },
    /// The provider could not give even one object's worth of memory.
    OutOfMemory {
        /// Name of the pool.
        name: String,
        /// Objects the pool needed in all.
        needed: usize,
        /// Objects placed before memory ran out.
        placed: usize,
        /// Bytes per object, header included.
        obj_size: usize,
        /// The provider's last error.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// An OS call failed (e.g. `mmap` of anonymous memory).
    Io(std::io::Error),
}

impl fmt::Display for PopulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { name, size } => write!(f, "pool '{name}' already holds its {size} objects"),
            Self::ObjectLargerThanPage { obj_size, page_size } => write!(
                f,
                "object of {obj_size} B does not fit in a page of {page_size} B and the memory is not IOVA-contiguous"
            ),
            Self::BadPageSize { page_size } => write!(f, "page size {page_size} is not a power of two"),
            Self::OutOfMemory { name, needed, placed, obj_size, source } => {
                write!(
                    f,
                    "pool '{name}' needs {needed} objects of {obj_size} B, memory ran out after {placed}"
                )?;
                if let Some(s) = source {
                    write!(f, ": {s}")?;
                }
                Ok(())
            }
            Self::Io(e) => write!(f, "populate: {e}"),
        }
    }
}

impl std::error::Error for PopulateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::OutOfMemory {
                source: Some(s), ..
            } => Some(&**s),
            _ => None,
        }
    }
}

/// A bulk get could not be served in full (nothing was taken).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GetError {
    /// Fewer objects were available than requested.
    Empty {
        /// Objects requested.
        requested: usize,
        /// Objects available in the backend at the time (caches excluded).
        available: usize,
    },
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty {
                requested,
                available,
            } => write!(
                f,
                "pool cannot give {requested} objects, its backend holds {available}"
            ),
        }
    }
}

impl std::error::Error for GetError {}

/// What [`Mempool::audit`](crate::Mempool::audit) found wrong with an object.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// The header's pool pointer is not this pool: the header was overwritten.
    ForeignHeader {
        /// Index of the object.
        index: usize,
        /// Its address.
        addr: usize,
    },
    /// The header's cookie is neither "in pool" nor "taken": overwritten.
    BadCookie {
        /// Index of the object.
        index: usize,
        /// Its address.
        addr: usize,
        /// The cookie found.
        cookie: u64,
    },
    /// The counts do not add up (only checked when no cookie is bad).
    Count {
        /// Objects placed in the pool.
        populated: usize,
        /// Objects the backend and the caches say they hold.
        available: usize,
    },
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForeignHeader { index, addr } => {
                write!(
                    f,
                    "object {index} at {addr:#x}: header points to another pool"
                )
            }
            Self::BadCookie {
                index,
                addr,
                cookie,
            } => {
                write!(
                    f,
                    "object {index} at {addr:#x}: header cookie {cookie:#x} overwritten"
                )
            }
            Self::Count {
                populated,
                available,
            } => write!(
                f,
                "{available} objects available but only {populated} were placed"
            ),
        }
    }
}

impl std::error::Error for AuditError {}

/// Registering or unregistering an event callback failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// This callback and argument are already registered.
    AlreadyRegistered,
    /// This callback and argument are not registered.
    NotRegistered,
}

impl fmt::Display for EventError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyRegistered => write!(f, "event callback already registered"),
            Self::NotRegistered => write!(f, "event callback not registered"),
        }
    }
}

impl std::error::Error for EventError {}
