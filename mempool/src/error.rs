//! Errors, one type per operation, each with only the variants that
//! operation can produce and the numbers that matter; all convert into
//! [`MempoolError`] for `?`.
//!
//! | operation | error |
//! |---|---|
//! | [`MempoolBuilder::build_empty`](crate::MempoolBuilder::build_empty) | [`BuildError`] |
//! | [`MempoolBuilder::build_on`](crate::MempoolBuilder::build_on), [`build_anonymous`](crate::MempoolBuilder::build_anonymous) | [`CreateError`] |
//! | `Mempool::populate_*` | [`PopulateError`] |
//! | [`Mempool::get`](crate::Mempool::get) and the other gets | [`GetError`] |
//! | [`Mempool::cache_with_size`](crate::Mempool::cache_with_size) | [`CacheError`] |
//! | [`Mempool::audit`](crate::Mempool::audit) | [`AuditError`] |

use std::fmt;

use pktmem_hugemem::{AllocError, LeaseError};

/// Why a pool could not be configured ([`MempoolBuilder`](crate::MempoolBuilder)).
///
/// ```
/// use pktmem_mempool::{BuildError, Mempool};
/// let e = Mempool::builder(0, 64).name("rx").build_empty().unwrap_err();
/// assert!(matches!(e, BuildError::ZeroObjects { .. }));
/// assert_eq!(e.to_string(), "pool 'rx': object count is 0");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
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
        /// Name of the pool.
        name: String,
        /// Requested cache size.
        cache_size: usize,
        /// Largest cache size allowed for this pool.
        max: usize,
    },
    /// The alignment is not a power of two from [`MIN_ALIGN`](crate::MIN_ALIGN)
    /// to [`MAX_ALIGN`](crate::MAX_ALIGN) (for a typed pool: the type's
    /// alignment is above the maximum).
    BadAlign {
        /// Name of the pool.
        name: String,
        /// The alignment asked for (or the type's).
        align: usize,
    },
    /// The element (plus header) reaches 4 GiB.
    ElementTooLarge {
        /// Name of the pool.
        name: String,
        /// Requested element size.
        elt_size: usize,
    },
    /// `n` objects of this size overflow the address space.
    PoolTooLarge {
        /// Name of the pool.
        name: String,
        /// Objects asked for.
        n: usize,
        /// Bytes per element, header included.
        obj_size: usize,
    },
    /// The private area asked for is larger than 1 GiB.
    PrivateAreaTooLarge {
        /// Name of the pool.
        name: String,
        /// Bytes asked for.
        size: usize,
    },
    /// A user backend holds fewer slots than the pool has objects.
    BackendTooSmall {
        /// Name of the pool.
        name: String,
        /// The backend's capacity.
        capacity: usize,
        /// Objects the pool must hold.
        needed: usize,
    },
    /// A user backend was not empty when handed over.
    BackendNotEmpty {
        /// Name of the pool.
        name: String,
        /// Elements it already held.
        len: usize,
    },
    /// The ring backend could not be built.
    Ring(pktmem_ring::BuildError),
    /// The lock-free stack backend could not be built.
    LfStack(crate::LfStackError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroObjects { name } => write!(f, "pool '{name}': object count is 0"),
            Self::ZeroElementSize { name } => write!(f, "pool '{name}': element size is 0"),
            Self::CacheTooLarge {
                name,
                cache_size,
                max,
            } => write!(
                f,
                "pool '{name}': cache size {cache_size} is above the maximum {max}"
            ),
            Self::BadAlign { name, align } => write!(
                f,
                "pool '{name}': alignment {align} B is not a power of two from {} to {} B",
                crate::MIN_ALIGN,
                crate::MAX_ALIGN
            ),
            Self::ElementTooLarge { name, elt_size } => write!(
                f,
                "pool '{name}': element size {elt_size} B with its header reaches 4 GiB"
            ),
            Self::PoolTooLarge { name, n, obj_size } => write!(
                f,
                "pool '{name}': {n} objects of {obj_size} B overflow the address space"
            ),
            Self::PrivateAreaTooLarge { name, size } => write!(
                f,
                "pool '{name}': private area of {size} B is larger than 1 GiB"
            ),
            Self::BackendTooSmall {
                name,
                capacity,
                needed,
            } => write!(
                f,
                "pool '{name}': backend holds {capacity} objects, the pool needs {needed}"
            ),
            Self::BackendNotEmpty { name, len } => {
                write!(f, "pool '{name}': backend already holds {len} objects")
            }
            Self::Ring(e) => write!(f, "ring backend: {e}"),
            Self::LfStack(e) => write!(f, "stack backend: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ring(e) => Some(e),
            Self::LfStack(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a pool could not be built and populated in one call
/// ([`build_on`](crate::MempoolBuilder::build_on),
/// [`build_anonymous`](crate::MempoolBuilder::build_anonymous)). Nothing is
/// left behind: memory already taken went back.
///
/// ```
/// use pktmem_mempool::{CreateError, Mempool, PopulateError};
/// // Objects of 10 KiB do not fit in the 4 KiB pages of anonymous memory.
/// let e = Mempool::builder(4, 10_000).build_anonymous().unwrap_err();
/// assert!(matches!(e, CreateError::Populate(PopulateError::ObjectLargerThanPage { .. })));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CreateError {
    /// The configuration was refused.
    Build(BuildError),
    /// Population failed.
    Populate(PopulateError),
}

impl fmt::Display for CreateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(e) => e.fmt(f),
            Self::Populate(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CreateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build(e) => Some(e),
            Self::Populate(e) => Some(e),
        }
    }
}

impl From<BuildError> for CreateError {
    fn from(e: BuildError) -> Self {
        Self::Build(e)
    }
}

impl From<PopulateError> for CreateError {
    fn from(e: PopulateError) -> Self {
        Self::Populate(e)
    }
}

/// Why memory could not be added to a pool (the `populate_*` methods).
///
/// ```
/// use pktmem_mempool::{Mempool, PopulateError};
/// let pool = Mempool::builder(4, 64).name("rx").build_anonymous().unwrap();
/// let e = pool.populate_anonymous().unwrap_err();
/// assert!(matches!(e, PopulateError::Full { size: 4, .. }));
/// assert_eq!(e.to_string(), "pool 'rx' already holds its 4 objects");
/// ```
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
        /// Name of the pool.
        name: String,
        /// Bytes per object, header included.
        obj_size: usize,
        /// Page size of the memory.
        page_size: usize,
    },
    /// The page size given is not a power of two.
    BadPageSize {
        /// Name of the pool.
        name: String,
        /// The page size given.
        page_size: usize,
    },
    /// The provider could not give even one more object's worth of memory.
    OutOfMemory {
        /// Name of the pool.
        name: String,
        /// Objects the pool needs in all.
        needed: usize,
        /// Bytes per object, header included.
        obj_size: usize,
        /// Objects placed before memory ran out (what the provider could give).
        placed: usize,
        /// The provider's last error.
        source: Option<Box<AllocError>>,
    },
    /// The memory given to [`populate_external`](crate::Mempool::populate_external)
    /// is not inside one live registration of the provider (so the pool
    /// could not take a lease on it).
    NotRegistered {
        /// Name of the pool.
        name: String,
        /// Why the lease was refused (the range, or a registration being
        /// removed).
        source: LeaseError,
    },
    /// An OS call failed (e.g. `mmap` of anonymous memory).
    Io(std::io::Error),
}

impl fmt::Display for PopulateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Full { name, size } => write!(f, "pool '{name}' already holds its {size} objects"),
            Self::ObjectLargerThanPage {
                name,
                obj_size,
                page_size,
            } => write!(
                f,
                "pool '{name}': object of {obj_size} B does not fit in a page of {page_size} B and the memory is not IOVA-contiguous"
            ),
            Self::BadPageSize { name, page_size } => write!(
                f,
                "pool '{name}': page size {page_size} is not a power of two"
            ),
            Self::OutOfMemory {
                name,
                needed,
                obj_size,
                placed,
                source,
            } => {
                write!(
                    f,
                    "pool '{name}' needs {needed} objects of {obj_size} B, provider could give {placed}"
                )?;
                if let Some(s) = source {
                    write!(f, ": {s}")?;
                }
                Ok(())
            }
            Self::NotRegistered { name, source } => {
                write!(f, "pool '{name}': external memory: {source}")
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
            } => Some(s),
            Self::NotRegistered { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A get could not be served in full (nothing was taken).
///
/// ```
/// use pktmem_mempool::{GetError, Mempool};
/// let pool = Mempool::builder(4, 64).build_empty().unwrap();
/// let e = pool.get_default().unwrap_err();
/// assert_eq!(e, GetError::Empty { requested: 1, available: 0 });
/// assert_eq!(e.to_string(), "pool cannot give 1 objects, its backend holds 0");
/// ```
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

/// A cache could not be made ([`Mempool::cache_with_size`](crate::Mempool::cache_with_size)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheError {
    /// The size is above [`CACHE_MAX_SIZE`](crate::CACHE_MAX_SIZE) or the pool's size.
    TooLarge {
        /// Name of the pool.
        name: String,
        /// Size asked for.
        size: usize,
        /// Largest size allowed for this pool.
        max: usize,
    },
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { name, size, max } => write!(
                f,
                "pool '{name}': cache of {size} objects is above the maximum {max}"
            ),
        }
    }
}

impl std::error::Error for CacheError {}

/// What [`Mempool::audit`](crate::Mempool::audit) found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// The header's pool pointer is not this pool: the header was overwritten.
    ForeignHeader {
        /// Index of the object.
        index: usize,
        /// Its address (for the report; never dereferenced).
        addr: usize,
    },
    /// The header's cookie is neither "in pool" nor "taken": overwritten.
    BadCookie {
        /// Index of the object.
        index: usize,
        /// Its address (for the report; never dereferenced).
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
            } => write!(
                f,
                "object {index} at {addr:#x}: header cookie {cookie:#x} overwritten"
            ),
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

/// Any error of this crate, for `?` in code that mixes operations.
///
/// ```
/// use pktmem_mempool::{Mempool, MempoolError};
/// fn run() -> Result<(), MempoolError> {
///     let pool = Mempool::builder(8, 64).cache(4).build_anonymous()?;
///     let mut cache = pool.cache_with_size(2)?;
///     let o = pool.get(&mut cache)?;
///     // SAFETY: given back once.
///     unsafe { pool.put(&mut cache, o) };
///     Ok(())
/// }
/// run().unwrap();
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum MempoolError {
    /// See [`BuildError`].
    Build(BuildError),
    /// See [`PopulateError`].
    Populate(PopulateError),
    /// See [`GetError`].
    Get(GetError),
    /// See [`CacheError`].
    Cache(CacheError),
    /// See [`AuditError`].
    Audit(AuditError),
}

impl fmt::Display for MempoolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(e) => e.fmt(f),
            Self::Populate(e) => e.fmt(f),
            Self::Get(e) => e.fmt(f),
            Self::Cache(e) => e.fmt(f),
            Self::Audit(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MempoolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build(e) => Some(e),
            Self::Populate(e) => Some(e),
            Self::Get(e) => Some(e),
            Self::Cache(e) => Some(e),
            Self::Audit(e) => Some(e),
        }
    }
}

macro_rules! into_mempool_error {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for MempoolError {
            fn from(e: $t) -> Self {
                Self::$v(e)
            }
        }
    )*};
}
into_mempool_error!(BuildError => Build, PopulateError => Populate, GetError => Get, CacheError => Cache, AuditError => Audit);

impl From<CreateError> for MempoolError {
    fn from(e: CreateError) -> Self {
        match e {
            CreateError::Build(e) => Self::Build(e),
            CreateError::Populate(e) => Self::Populate(e),
        }
    }
}
