//! What the machine offers: the hugepage inventory from sysfs (overall and
//! per NUMA node), whether this process may change it, and which IOVA mode
//! the page map allows and why.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::{IovaMode, Node, TranslateError};

/// Where the kernel keeps its hugepage pools (one `hugepages-<N>kB`
/// directory per size).
const HUGEPAGES_DIR: &str = "/sys/kernel/mm/hugepages";

/// One hugepage size as the kernel counts it (`/sys/kernel/mm/hugepages`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HugepageInventory {
    /// Page size in bytes.
    pub page_size: usize,
    /// Pages reserved in the pool (`nr_hugepages`).
    pub total: u64,
    /// Pages free (`free_hugepages`).
    pub free: u64,
    /// Pages promised to mappings but not yet faulted (`resv_hugepages`).
    pub reserved: u64,
    /// Surplus pages (`surplus_hugepages`).
    pub surplus: u64,
}

impl fmt::Display for HugepageInventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: total {}, free {}, reserved {}, surplus {}",
            crate::error::human(self.page_size),
            self.total,
            self.free,
            self.reserved,
            self.surplus
        )
    }
}

/// The hugepage sizes the kernel offers, with their counts; empty when
/// sysfs has no hugepage directory.
///
/// ```
/// for h in pktmem_hugemem::inventory() {
///     assert!(h.page_size >= 2 << 20 || h.page_size == 64 << 10);
///     assert!(h.free <= h.total + h.surplus);
///     println!("{h}");
/// }
/// ```
pub fn inventory() -> Vec<HugepageInventory> {
    let mut out: Vec<HugepageInventory> = size_dirs(Path::new(HUGEPAGES_DIR))
        .into_iter()
        .map(|(page_size, base)| HugepageInventory {
            page_size,
            total: read_count(&base, "nr_hugepages"),
            free: read_count(&base, "free_hugepages"),
            reserved: read_count(&base, "resv_hugepages"),
            surplus: read_count(&base, "surplus_hugepages"),
        })
        .collect();
    out.sort_by_key(|h| h.page_size);
    out
}

/// The `hugepages-<N>kB` directories under `root`, with their page sizes
/// in bytes (unsorted; none when `root` cannot be read).
fn size_dirs(root: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(dir) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let kb = name
                .strip_prefix("hugepages-")
                .and_then(|s| s.strip_suffix("kB"))
                .and_then(|s| s.parse::<usize>().ok())?;
            Some((kb * 1024, e.path()))
        })
        .collect()
}

/// The number in `dir/file`, 0 when it cannot be read.
fn read_count(dir: &Path, file: &str) -> u64 {
    crate::sys::read_num(&dir.join(file).to_string_lossy()).unwrap_or(0)
}

impl HugepageInventory {
    /// Pages a new mapping can still get: free pages not promised to an
    /// existing mapping (`free - reserved`). What an allocation of this
    /// size can count on.
    ///
    /// ```
    /// use pktmem_hugemem::HugepageInventory;
    /// let h = HugepageInventory { page_size: 2 << 20, total: 8, free: 5, reserved: 2, surplus: 0 };
    /// assert_eq!(h.available(), 3);
    /// ```
    pub fn available(&self) -> u64 {
        self.free.saturating_sub(self.reserved)
    }

    /// The sysfs file that sizes this pool: writing `N` to it asks the
    /// kernel for `N` persistent pages of this size (see
    /// [`check_pool_access`] for whether this process may).
    ///
    /// ```
    /// use pktmem_hugemem::HugepageInventory;
    /// let h = HugepageInventory { page_size: 2 << 20, total: 0, free: 0, reserved: 0, surplus: 0 };
    /// assert_eq!(
    ///     h.nr_hugepages_path().to_str(),
    ///     Some("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages")
    /// );
    /// ```
    pub fn nr_hugepages_path(&self) -> PathBuf {
        nr_hugepages_path(self.page_size)
    }
}

/// `/sys/kernel/mm/hugepages/hugepages-<N>kB/nr_hugepages` for `page_size` bytes.
fn nr_hugepages_path(page_size: usize) -> PathBuf {
    Path::new(HUGEPAGES_DIR)
        .join(format!("hugepages-{}kB", page_size / 1024))
        .join("nr_hugepages")
}

/// One hugepage size on one NUMA node, as the kernel counts it
/// (`/sys/devices/system/node/node<N>/hugepages`). The kernel keeps no
/// per-node count of reserved pages: see [`inventory`] for those.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeHugepages {
    /// The node.
    pub node: Node,
    /// Page size in bytes.
    pub page_size: usize,
    /// Persistent pages of the node (`nr_hugepages`).
    pub total: u64,
    /// Pages free on the node (`free_hugepages`).
    pub free: u64,
    /// Surplus pages on the node (`surplus_hugepages`).
    pub surplus: u64,
}

impl NodeHugepages {
    /// The sysfs file that sizes this node's pool of this page size
    /// (writing `N` asks for `N` pages on this node only).
    ///
    /// ```
    /// use pktmem_hugemem::{Node, NodeHugepages};
    /// let h = NodeHugepages { node: Node::new(1), page_size: 1 << 30, total: 0, free: 0, surplus: 0 };
    /// assert_eq!(
    ///     h.nr_hugepages_path().to_str(),
    ///     Some("/sys/devices/system/node/node1/hugepages/hugepages-1048576kB/nr_hugepages")
    /// );
    /// ```
    pub fn nr_hugepages_path(&self) -> PathBuf {
        Path::new(NODES_DIR)
            .join(format!("node{}", self.node.id()))
            .join("hugepages")
            .join(format!("hugepages-{}kB", self.page_size / 1024))
            .join("nr_hugepages")
    }
}

impl fmt::Display for NodeHugepages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: total {}, free {}, surplus {}",
            self.node,
            crate::error::human(self.page_size),
            self.total,
            self.free,
            self.surplus
        )
    }
}

/// Where the kernel lists NUMA nodes.
const NODES_DIR: &str = "/sys/devices/system/node";

/// The hugepage counts of every NUMA node, by node then page size; empty
/// when sysfs has no node directory (a kernel without NUMA support).
/// Summed over the nodes, the totals and free counts are those of
/// [`inventory`] (up to pages allocated or freed between the reads).
///
/// ```
/// use pktmem_hugemem::{inventory, node_inventory};
/// let nodes = node_inventory();
/// for h in &nodes {
///     assert!(h.free <= h.total + h.surplus, "{h}");
/// }
/// if !nodes.is_empty() {
///     for h in inventory() {
///         let total: u64 = nodes.iter().filter(|n| n.page_size == h.page_size).map(|n| n.total).sum();
///         assert_eq!(total, h.total, "the nodes' {} pools add up to the machine's", h.page_size);
///     }
/// }
/// ```
pub fn node_inventory() -> Vec<NodeHugepages> {
    let Ok(dir) = std::fs::read_dir(NODES_DIR) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(id) = name
            .strip_prefix("node")
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        for (page_size, base) in size_dirs(&e.path().join("hugepages")) {
            out.push(NodeHugepages {
                node: Node::new(id),
                page_size,
                total: read_count(&base, "nr_hugepages"),
                free: read_count(&base, "free_hugepages"),
                surplus: read_count(&base, "surplus_hugepages"),
            });
        }
    }
    out.sort_by_key(|h| (h.node, h.page_size));
    out
}

/// Why this process may not resize a hugepage pool ([`check_pool_access`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolAccessError {
    /// The kernel offers no hugepages of this size (no sysfs directory).
    NoSuchSize {
        /// The page size asked about, in bytes.
        page_size: usize,
    },
    /// The file may not be written by this process (not root, or no
    /// `CAP_SYS_ADMIN`).
    NotPermitted {
        /// The file.
        path: PathBuf,
        /// The process's effective user id.
        euid: u32,
    },
    /// sysfs is mounted read-only (a container without the privilege).
    ReadOnly {
        /// The file.
        path: PathBuf,
    },
    /// Opening the file failed otherwise.
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for PoolAccessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoSuchSize { page_size } => write!(
                f,
                "the kernel offers no {} hugepages (no {})",
                crate::error::human(*page_size),
                nr_hugepages_path(*page_size).display()
            ),
            Self::NotPermitted { path, euid } => write!(
                f,
                "{} is not writable by this process (euid {euid}; needs root)",
                path.display()
            ),
            Self::ReadOnly { path } => {
                write!(f, "{} is on a read-only sysfs", path.display())
            }
            Self::Io { path, source } => write!(f, "opening {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for PoolAccessError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// This process's effective user id.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Whether this process may resize the pool of `page_size`-byte
/// hugepages: opens its `nr_hugepages` file for writing (and closes it
/// without writing, so nothing changes). `Ok` is the file to write the
/// wanted page count to.
///
/// ```
/// use pktmem_hugemem::{check_pool_access, PoolAccessError};
/// match check_pool_access(2 << 20) {
///     Ok(path) => assert!(path.ends_with("hugepages-2048kB/nr_hugepages")),
///     Err(e) => println!("cannot reserve 2 MiB pages: {e}"),
/// }
/// assert!(matches!(
///     check_pool_access(12_345),
///     Err(PoolAccessError::NoSuchSize { page_size: 12_345 })
/// ));
/// ```
pub fn check_pool_access(page_size: usize) -> Result<PathBuf, PoolAccessError> {
    let path = nr_hugepages_path(page_size);
    if !path.exists() {
        return Err(PoolAccessError::NoSuchSize { page_size });
    }
    match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(_) => Ok(path),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(PoolAccessError::NotPermitted { path, euid: euid() })
        }
        Err(e) if e.raw_os_error() == Some(libc::EROFS) => Err(PoolAccessError::ReadOnly { path }),
        Err(source) => Err(PoolAccessError::Io { path, source }),
    }
}

/// Why IOVAs are what they are: the answer of [`probe_iova`] for this
/// process, or of [`Provider::iova_reason`](crate::Provider::iova_reason)
/// for one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IovaReason {
    /// `/proc/self/pagemap` gives this process page frame numbers (it has
    /// `CAP_SYS_ADMIN`, i.e. runs as root): IOVA = physical address.
    FrameNumbers,
    /// `/proc/self/pagemap` can be read but hides frame numbers (zeroes
    /// them for processes without `CAP_SYS_ADMIN`): IOVA = virtual address.
    NoFrameNumbers {
        /// The process's effective user id.
        euid: u32,
    },
    /// `/proc/self/pagemap` could not be opened or read: IOVA = virtual address.
    PagemapUnreadable {
        /// What failed.
        op: &'static str,
        /// How.
        kind: io::ErrorKind,
    },
    /// The provider's builder chose the mode
    /// ([`ProviderBuilder::iova_mode`](crate::ProviderBuilder::iova_mode)).
    Forced(IovaMode),
    /// A heap-backed provider ([`PageSource::Heap`](crate::PageSource::Heap)):
    /// ordinary memory, IOVA = virtual address by definition.
    HeapSource,
    /// A global provider that could not be built (it has no memory; see
    /// [`ProviderInfo::init_error`](crate::ProviderInfo::init_error)).
    NotBuilt,
}

impl IovaReason {
    /// The mode this reason leads to.
    ///
    /// ```
    /// use pktmem_hugemem::{probe_iova, IovaMode, IovaReason};
    /// assert_eq!(probe_iova().mode(), IovaMode::detect());
    /// assert_eq!(IovaReason::Forced(IovaMode::Pa).mode(), IovaMode::Pa);
    /// assert_eq!(IovaReason::HeapSource.mode(), IovaMode::Va);
    /// ```
    pub fn mode(&self) -> IovaMode {
        match self {
            Self::FrameNumbers => IovaMode::Pa,
            Self::Forced(m) => *m,
            Self::NoFrameNumbers { .. }
            | Self::PagemapUnreadable { .. }
            | Self::HeapSource
            | Self::NotBuilt => IovaMode::Va,
        }
    }
}

impl fmt::Display for IovaReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FrameNumbers => f.write_str(
                "/proc/self/pagemap gives this process page frame numbers (CAP_SYS_ADMIN): \
                 IOVA = physical address",
            ),
            Self::NoFrameNumbers { euid } => write!(
                f,
                "/proc/self/pagemap hides frame numbers from this process (euid {euid}, \
                 no CAP_SYS_ADMIN): IOVA = virtual address"
            ),
            Self::PagemapUnreadable { op, kind } => {
                write!(f, "{op} failed ({kind}): IOVA = virtual address")
            }
            Self::Forced(m) => write!(f, "forced by the provider's builder: {m:?}"),
            Self::HeapSource => {
                f.write_str("heap-backed provider (ordinary memory): IOVA = virtual address")
            }
            Self::NotBuilt => f.write_str("the provider could not be built: no memory, no IOVAs"),
        }
    }
}

/// Which IOVA mode this process can have and why: translates a freshly
/// written heap page through `/proc/self/pagemap`, as
/// [`IovaMode::detect`] does (same call, same verdict), and says what
/// the answer rests on.
///
/// ```
/// use pktmem_hugemem::{probe_iova, IovaMode, IovaReason};
/// let why = probe_iova();
/// println!("IOVA mode {:?}: {why}", why.mode());
/// assert_eq!(why.mode(), IovaMode::detect());
/// assert!(matches!(
///     why,
///     IovaReason::FrameNumbers | IovaReason::NoFrameNumbers { .. } | IovaReason::PagemapUnreadable { .. }
/// ));
/// ```
pub fn probe_iova() -> IovaReason {
    let probe = Box::new(0x5au64);
    let addr = std::ptr::from_ref::<u64>(std::hint::black_box(&*probe)) as usize;
    match crate::virt2phys(addr) {
        Ok(_) => IovaReason::FrameNumbers,
        // The page was just written, so it is present: a missing frame
        // number is the page map hiding it.
        Err(TranslateError::NotPresent { .. }) => IovaReason::NoFrameNumbers { euid: euid() },
        Err(TranslateError::Io { op, source }) => IovaReason::PagemapUnreadable {
            op,
            kind: source.kind(),
        },
    }
}

/// This process's `HugetlbPages:` from `/proc/self/status`, in bytes.
///
/// ```
/// let b = pktmem_hugemem::process_hugetlb_bytes();
/// assert!(b.is_none() || b.unwrap() % 4096 == 0);
/// ```
pub fn process_hugetlb_bytes() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("HugetlbPages:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
