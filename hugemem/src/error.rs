//! The crate's errors: one enum per operation, each with only the variants
//! that operation can produce, and [`HugememError`], the umbrella every one
//! converts into for `?`.
//!
//! | operation | error |
//! |---|---|
//! | [`ProviderBuilder::build`](crate::ProviderBuilder::build) | [`BuildError`] |
//! | [`Provider::alloc`](crate::Provider::alloc), [`SmallHeap::alloc`](crate::SmallHeap::alloc), [`ExternalHeap::alloc`](crate::ExternalHeap::alloc) | [`AllocError`] |
//! | [`Provider::zone_reserve`](crate::Provider::zone_reserve) | [`ZoneError`] |
//! | [`Provider::register_external`](crate::Provider::register_external), [`ExternalHeap::add_memory`](crate::ExternalHeap::add_memory) | [`RegisterError`] |
//! | [`ExternalMem::unregister`](crate::ExternalMem::unregister), [`ExternalHeap::remove_memory`](crate::ExternalHeap::remove_memory) | [`UnregisterError`] |
//! | [`ExternalMem::lease`](crate::ExternalMem::lease), [`Provider::lease_external`](crate::Provider::lease_external) | [`LeaseError`] |
//! | [`virt2phys`](crate::virt2phys) | [`TranslateError`] |
//! | [`Provider::register_dma_mapper`](crate::Provider::register_dma_mapper) | [`DmaRegisterError`](crate::DmaRegisterError) |

use std::fmt;
use std::io;

use crate::Node;

/// A system call that failed: the operation and the OS error (carried by
/// the `Io` variants of the operation errors).
#[derive(Debug)]
pub(crate) struct OsError {
    pub(crate) op: &'static str,
    pub(crate) source: io::Error,
}

impl OsError {
    /// The last OS error, for `op`.
    pub(crate) fn last(op: &'static str) -> OsError {
        OsError {
            op,
            source: io::Error::last_os_error(),
        }
    }
}

impl fmt::Display for OsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.op, self.source)
    }
}

fn bytes(b: usize) -> String {
    human(b)
}

/// `b` bytes in the largest unit that divides it ("2 MiB", "12 KiB", "100 B").
pub(crate) fn human(b: usize) -> String {
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

/// Why a provider could not be built.
///
/// ```
/// use pktmem_hugemem::{BuildError, PageSize, Provider};
/// let e = Provider::builder().va_reserve(PageSize::Huge2M, 0).build().unwrap_err();
/// assert!(matches!(e, BuildError::ZeroVaReserve { page_size: 0x20_0000 }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// A page-size list was given no VA to reserve.
    ZeroVaReserve {
        /// The list's page size, in bytes.
        page_size: usize,
    },
    /// A heap page source of zero bytes.
    ZeroHeap,
    /// Mapping the kept minimum failed.
    MinKeep {
        /// The minimum asked for, in bytes.
        min_keep: usize,
        /// Why.
        source: AllocError,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::ZeroVaReserve { page_size } => write!(
                f,
                "the {} list was given no VA to reserve",
                bytes(*page_size)
            ),
            BuildError::ZeroHeap => write!(f, "a heap page source of zero bytes"),
            BuildError::MinKeep { min_keep, source } => {
                write!(
                    f,
                    "could not map the kept minimum of {}: {source}",
                    bytes(*min_keep)
                )
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::MinKeep { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Why an allocation (a chunk, a zone's memory, a small block) failed.
///
/// ```
/// use pktmem_hugemem::{AllocError, Provider};
/// let p = Provider::builder().heap_backed(1 << 20).limit(8192).build().unwrap();
/// assert!(matches!(p.alloc(0), Err(AllocError::ZeroLength)));
/// let e = p.alloc(3 * 4096).unwrap_err();
/// assert!(matches!(e, AllocError::LimitExceeded { requested: 12288, mapped: 0, limit: 8192 }));
/// assert_eq!(e.to_string(), "allocating 12 KiB with 0 B mapped would pass the limit of 8 KiB");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AllocError {
    /// A length of zero was asked for.
    ZeroLength,
    /// The alignment is not a power of two.
    BadAlignment {
        /// The alignment asked for.
        align: usize,
    },
    /// The NUMA node does not exist on this machine.
    UnknownNode {
        /// The node asked for.
        node: Node,
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
    /// The heap has no memory that could serve the request (none added, or
    /// none of the page size required).
    NoHeapMemory {
        /// The heap's label.
        heap: String,
        /// Bytes asked for.
        len: usize,
    },
    /// The list's reserved VA range (or the heap's memory) has no free run
    /// long enough.
    VaExhausted {
        /// Page size of the list, in bytes.
        page_size: usize,
        /// Pages needed.
        pages: usize,
        /// Pages the list holds.
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
    /// The provider is exportable: its memory may be written by other
    /// processes, so it hands out no [`Chunk`](crate::Chunk) with slices
    /// (nor zones, small blocks or pools over them); allocate with
    /// [`Provider::alloc_shared`](crate::Provider::alloc_shared).
    Exportable,
    /// A validator refused growth past its threshold.
    RefusedByValidator {
        /// The validator's label, if it was given one.
        label: Option<String>,
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
    /// An IOVA-contiguous chunk was asked for and the memory found has no
    /// IOVA at all (external memory registered without IOVAs, or pages the
    /// page map gave no frame for).
    NoIova {
        /// Bytes asked for.
        len: usize,
        /// The first byte of the memory found.
        va: usize,
    },
    /// Too many lists (page-size lists plus external ranges); the table holds this many.
    TooManyLists {
        /// The table's size.
        max: usize,
    },
    /// Called from inside a validator of the same provider, which runs under
    /// the provider lock.
    Reentrant,
    /// The process-wide provider ([`Provider::global`](crate::Provider::global))
    /// could not be built.
    InitFailed(String),
    /// A DMA mapper refused the new pages (they were unmapped again).
    DmaMap(crate::DmaMapError),
    /// A system call failed.
    Io {
        /// The operation (`memfd_create`, `mmap`, ...).
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl From<OsError> for AllocError {
    fn from(e: OsError) -> Self {
        AllocError::Io {
            op: e.op,
            source: e.source,
        }
    }
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllocError::ZeroLength => write!(f, "zero-length request"),
            AllocError::BadAlignment { align } => {
                write!(f, "alignment {align} is not a power of two")
            }
            AllocError::UnknownNode { node } => write!(f, "NUMA node {} does not exist", node.id()),
            AllocError::NoPages {
                page_size,
                pages,
                reason,
            } => write!(
                f,
                "could not get {pages} page(s) of {}: {reason}",
                bytes(*page_size)
            ),
            AllocError::NoHeapMemory { heap, len } => write!(
                f,
                "heap '{heap}' has no memory that could serve {}",
                bytes(*len)
            ),
            AllocError::VaExhausted {
                page_size,
                pages,
                reserved_pages,
            } => write!(
                f,
                "no free run of {pages} page(s) in the {} list of {reserved_pages} pages",
                bytes(*page_size)
            ),
            AllocError::LimitExceeded {
                requested,
                mapped,
                limit,
            } => write!(
                f,
                "allocating {} with {} mapped would pass the limit of {}",
                bytes(*requested),
                bytes(*mapped),
                bytes(*limit)
            ),
            AllocError::Exportable => f.write_str(
                "the provider is exportable (other processes may write its memory): \
                 it hands out no slices; allocate with Provider::alloc_shared",
            ),
            AllocError::RefusedByValidator {
                label,
                new_total,
                threshold,
            } => write!(
                f,
                "validator {} refused growth to {} (threshold {})",
                label
                    .as_deref()
                    .map_or("(unlabelled)".to_string(), |l| format!("'{l}'")),
                bytes(*new_total),
                bytes(*threshold)
            ),
            AllocError::NotIovaContiguous { len, segments } => write!(
                f,
                "{} asked IOVA-contiguous, the pages found form {segments} IOVA runs",
                bytes(*len)
            ),
            AllocError::NoIova { len, va } => write!(
                f,
                "{} asked IOVA-contiguous, the memory found at {va:#x} has no IOVA",
                bytes(*len)
            ),
            AllocError::TooManyLists { max } => write!(f, "the provider holds at most {max} lists"),
            AllocError::Reentrant => f.write_str(REENTRANT),
            AllocError::InitFailed(m) => write!(f, "provider could not be built: {m}"),
            AllocError::DmaMap(e) => fmt::Display::fmt(e, f),
            AllocError::Io { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

const REENTRANT: &str =
    "called from inside a validator or DMA mapper of the same provider (they run under the provider lock)";

impl std::error::Error for AllocError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AllocError::Io { source, .. } => Some(source),
            AllocError::DmaMap(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a named zone could not be reserved.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, Provider, ZoneError};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let _z = p.zone_reserve("rx", &AllocRequest::new(100)).unwrap();
/// let e = p.zone_reserve("rx", &AllocRequest::new(100)).unwrap_err();
/// assert!(matches!(e, ZoneError::DuplicateName { .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ZoneError {
    /// A zone of that name exists already.
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The memory could not be allocated.
    Alloc {
        /// The zone's name.
        name: String,
        /// Why.
        source: AllocError,
    },
}

impl fmt::Display for ZoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ZoneError::DuplicateName { name } => write!(f, "a zone named '{name}' exists already"),
            ZoneError::Alloc { name, source } => write!(f, "zone '{name}': {source}"),
        }
    }
}

impl std::error::Error for ZoneError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ZoneError::Alloc { source, .. } => Some(source),
            ZoneError::DuplicateName { .. } => None,
        }
    }
}

/// Why external memory could not be registered.
///
/// ```
/// use pktmem_hugemem::{Provider, RegisterError};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let mut buf = vec![0u8; 3 * 4096];
/// let e = p.register_external(buf.as_mut_ptr(), 4096, 3000, None).unwrap_err();
/// assert!(matches!(e, RegisterError::BadPageSize { page_size: 3000 }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum RegisterError {
    /// A length of zero.
    ZeroLength,
    /// A page size that is not a power of two of at least 4096 bytes.
    BadPageSize {
        /// The page size given, in bytes.
        page_size: usize,
    },
    /// The address (or length) is not a multiple of the page size.
    Misaligned {
        /// The address or length at fault.
        value: usize,
        /// The page size it must be a multiple of.
        page_size: usize,
    },
    /// The per-page IOVA table does not have one entry per page.
    IovaTableLength {
        /// Pages in the range.
        expected: usize,
        /// Entries given.
        got: usize,
    },
    /// An entry of the IOVA table is [`Iova::BAD`](crate::Iova::BAD)
    /// (a range has IOVAs for all its pages or none: pass `None`).
    BadIova {
        /// The page whose entry it is.
        page: usize,
    },
    /// The range overlaps memory the provider already knows.
    Overlap {
        /// Start of the new range.
        addr: usize,
        /// Its length.
        len: usize,
    },
    /// Too many lists (page-size lists plus external ranges).
    TooManyLists {
        /// The table's size.
        max: usize,
    },
    /// Called from inside a validator of the same provider.
    Reentrant,
    /// The process-wide provider could not be built.
    InitFailed(String),
    /// A DMA mapper refused the range (it is not registered).
    DmaMap(crate::DmaMapError),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::ZeroLength => write!(f, "zero-length external range"),
            RegisterError::BadPageSize { page_size } => write!(
                f,
                "page size {page_size} is not a power of two of at least 4096 bytes"
            ),
            RegisterError::Misaligned { value, page_size } => write!(
                f,
                "{value:#x} is not a multiple of the page size {}",
                bytes(*page_size)
            ),
            RegisterError::IovaTableLength { expected, got } => write!(
                f,
                "IOVA table has {got} entries, the range has {expected} pages"
            ),
            RegisterError::BadIova { page } => {
                write!(f, "the IOVA table's entry for page {page} is Iova::BAD")
            }
            RegisterError::Overlap { addr, len } => write!(
                f,
                "range {addr:#x}+{} overlaps memory the provider already knows",
                bytes(*len)
            ),
            RegisterError::TooManyLists { max } => {
                write!(f, "the provider holds at most {max} lists")
            }
            RegisterError::Reentrant => f.write_str(REENTRANT),
            RegisterError::InitFailed(m) => write!(f, "provider could not be built: {m}"),
            RegisterError::DmaMap(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for RegisterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RegisterError::DmaMap(e) => Some(e),
            _ => None,
        }
    }
}

/// Why external memory could not be unregistered (it stays registered).
///
/// ```
/// use pktmem_hugemem::{Provider, UnregisterError};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let layout = std::alloc::Layout::from_size_align(4096, 4096).unwrap();
/// // SAFETY: non-zero size.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout) };
/// let ext = p.register_external(mem, 4096, 4096, None).unwrap();
/// let lease = ext.lease("pool 'rx'").unwrap();
/// let e = ext.unregister().unwrap_err();
/// assert!(matches!(&e, UnregisterError::InUse { users, .. } if users == &["pool 'rx'"]));
/// drop(lease);
/// ext.unregister().unwrap();
/// # unsafe { std::alloc::dealloc(mem, layout) };
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum UnregisterError {
    /// The memory is in use: leased by the named users, or carved into chunks.
    InUse {
        /// Start of the range.
        addr: usize,
        /// Its length.
        len: usize,
        /// Who holds it: the lease labels ("pool 'rx'"), then "N page(s) in chunks".
        users: Vec<String>,
    },
    /// The range is not registered (any more) with this provider.
    NotRegistered {
        /// Start of the range.
        addr: usize,
    },
    /// The heap holds no memory of that id.
    NotInHeap {
        /// The heap's label.
        heap: String,
    },
    /// Called from inside a validator of the same provider.
    Reentrant,
}

impl fmt::Display for UnregisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnregisterError::InUse { addr, len, users } => write!(
                f,
                "external memory {addr:#x}+{} is in use by {}",
                bytes(*len),
                users.join(", ")
            ),
            UnregisterError::NotRegistered { addr } => {
                write!(f, "{addr:#x} is not registered with this provider")
            }
            UnregisterError::NotInHeap { heap } => {
                write!(f, "heap '{heap}' holds no memory of that id")
            }
            UnregisterError::Reentrant => f.write_str(REENTRANT),
        }
    }
}

impl std::error::Error for UnregisterError {}

/// Why a lease on external memory could not be taken.
///
/// ```
/// use pktmem_hugemem::{LeaseError, Provider};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let buf = vec![0u8; 64];
/// let e = p.lease_external(buf.as_ptr(), 64, "pool 'rx'").unwrap_err();
/// assert!(matches!(e, LeaseError::NotRegistered { len: 64, .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LeaseError {
    /// No single registered external range holds `[addr, addr + len)`.
    NotRegistered {
        /// Start of the range asked for.
        addr: usize,
        /// Its length.
        len: usize,
    },
    /// The range's registration was dropped and waits for its last user to
    /// go: it takes no new users.
    Unregistering {
        /// Start of the registered range.
        addr: usize,
    },
    /// Called from inside a validator of the same provider.
    Reentrant,
}

impl fmt::Display for LeaseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaseError::NotRegistered { addr, len } => write!(
                f,
                "{addr:#x}+{} is not inside one registered external range",
                bytes(*len)
            ),
            LeaseError::Unregistering { addr } => write!(
                f,
                "external memory at {addr:#x} is being unregistered (no new users)"
            ),
            LeaseError::Reentrant => f.write_str(REENTRANT),
        }
    }
}

impl std::error::Error for LeaseError {}

/// Why [`virt2phys`](crate::virt2phys) found no physical address.
///
/// ```
/// use pktmem_hugemem::{virt2phys, TranslateError};
/// // Address 0 is never mapped.
/// assert!(matches!(virt2phys(0), Err(TranslateError::NotPresent { addr: 0 } | TranslateError::Io { .. })));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum TranslateError {
    /// The page is not present, or the page map gives no frame number
    /// (the process is not root).
    NotPresent {
        /// The address.
        addr: usize,
    },
    /// Reading the page map failed.
    Io {
        /// The operation.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TranslateError::NotPresent { addr } => write!(
                f,
                "no physical address for {addr:#x} (page not present, or no frame numbers without root)"
            ),
            TranslateError::Io { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

impl std::error::Error for TranslateError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TranslateError::Io { source, .. } => Some(source),
            TranslateError::NotPresent { .. } => None,
        }
    }
}

/// Any error of this crate: what `?` turns the per-operation errors into.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, HugememError, Provider};
/// fn setup() -> Result<usize, HugememError> {
///     let p = Provider::builder().heap_backed(1 << 20).build()?; // BuildError
///     let z = p.zone_reserve("cfg", &AllocRequest::new(64))?; // ZoneError
///     let c = p.alloc(4096)?; // AllocError
///     Ok(z.len() + c.len())
/// }
/// assert_eq!(setup().unwrap(), 64 + 4096);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum HugememError {
    /// From [`ProviderBuilder::build`](crate::ProviderBuilder::build).
    Build(BuildError),
    /// From an allocation.
    Alloc(AllocError),
    /// From reserving a zone.
    Zone(ZoneError),
    /// From registering external memory.
    Register(RegisterError),
    /// From unregistering external memory.
    Unregister(UnregisterError),
    /// From leasing external memory.
    Lease(LeaseError),
    /// From [`virt2phys`](crate::virt2phys).
    Translate(TranslateError),
    /// From registering a DMA mapper.
    DmaRegister(crate::DmaRegisterError),
    /// From sharing memory with other processes ([`share`](crate::share)).
    Share(crate::share::ShareError),
}

macro_rules! umbrella {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(impl From<$ty> for HugememError {
            fn from(e: $ty) -> Self {
                HugememError::$variant(e)
            }
        })*

        impl fmt::Display for HugememError {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(HugememError::$variant(e) => fmt::Display::fmt(e, f),)*
                }
            }
        }

        impl std::error::Error for HugememError {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                match self {
                    $(HugememError::$variant(e) => Some(e),)*
                }
            }
        }
    };
}

umbrella!(
    Build(BuildError),
    Alloc(AllocError),
    Zone(ZoneError),
    Register(RegisterError),
    Unregister(UnregisterError),
    Lease(LeaseError),
    Translate(TranslateError),
    DmaRegister(crate::DmaRegisterError),
    Share(crate::share::ShareError),
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_the_largest_unit_that_divides_them() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(1000), "1000 B");
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(4097), "4097 B");
        assert_eq!(human(3 << 20), "3 MiB");
        assert_eq!(human((1 << 20) + 4096), "1028 KiB");
        assert_eq!(human(2 << 30), "2 GiB");
    }

    #[test]
    fn umbrella_keeps_display_and_source() {
        use std::error::Error as _;
        let e = HugememError::from(AllocError::Io {
            op: "mmap",
            source: io::Error::from(io::ErrorKind::OutOfMemory),
        });
        assert!(e.to_string().starts_with("mmap failed: "), "{e}");
        let inner = e.source().expect("the AllocError");
        assert!(inner.source().is_some(), "and its io::Error");
    }
}
