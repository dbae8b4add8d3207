//! The operating-system calls, in one place: VA reservation, memfd, fallocate,
//! fixed mappings, hole punching, locking. Everything else in the crate is
//! bookkeeping on top of these.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::OsError;
use crate::Node;

const MFD_CLOEXEC: libc::c_uint = 0x1;
const MFD_HUGETLB: libc::c_uint = 0x4;
const MFD_ALLOW_SEALING: libc::c_uint = 0x2;
const HUGE_SHIFT: u32 = 26;

/// Reserves `len` bytes of VA aligned to `align` with no memory behind it
/// (`PROT_NONE`, `MAP_NORESERVE`). Returns the aligned base.
pub(crate) fn reserve_va(len: usize, align: usize) -> Result<usize, OsError> {
    let total = len.checked_add(align).ok_or(OsError {
        op: "reserve VA",
        source: std::io::Error::from(std::io::ErrorKind::OutOfMemory),
    })?;
    // SAFETY: a fresh anonymous PROT_NONE mapping at an address the kernel
    // chooses touches no existing memory.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            total,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(OsError::last("mmap (reserve VA)"));
    }
    let start = p as usize;
    let base = (start + align - 1) & !(align - 1);
    let head = base - start;
    let tail = total - head - len;
    if head > 0 {
        // SAFETY: [start, base) is part of the reservation just made and nothing uses it.
        unsafe { libc::munmap(start as *mut _, head) };
    }
    if tail > 0 {
        // SAFETY: [base + len, start + total) is part of the reservation and unused.
        unsafe { libc::munmap((base + len) as *mut _, tail) };
    }
    Ok(base)
}

/// Gives a VA reservation (and anything mapped in it) back.
///
/// # Safety
/// - `[base, base + len)` is a reservation made by [`reserve_va`] that no
///   live reference points into.
pub(crate) unsafe fn release_va(base: usize, len: usize) {
    // SAFETY: the caller guarantees the range is ours and unused.
    unsafe { libc::munmap(base as *mut _, len) };
}

/// Puts `[addr, addr + len)` back to reserved (`PROT_NONE`, no memory).
///
/// # Safety
/// - the range lies inside a reservation owned by the caller and nothing
///   references the memory mapped there.
pub(crate) unsafe fn unmap_to_reserved(addr: usize, len: usize) -> Result<(), OsError> {
    // SAFETY: MAP_FIXED over our own reservation; the caller guarantees no
    // reference into the range survives.
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(OsError::last("mmap (unmap to reserved)"));
    }
    Ok(())
}

/// Creates the backing file of one list: a memfd (hugetlb of `page_shift`
/// when `huge`), or an unlinked file in a hugetlbfs directory, sized `len`.
pub(crate) fn create_backing(
    dir: Option<&Path>,
    huge: bool,
    page_shift: u32,
    len: usize,
    tag: &str,
) -> Result<OwnedFd, OsError> {
    let fd = match dir {
        None => {
            let name = CString::new(format!("pktmem-{tag}")).unwrap_or_default();
            let mut flags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
            if huge {
                flags |= MFD_HUGETLB | (page_shift << HUGE_SHIFT);
            }
            // SAFETY: `name` is a valid NUL-terminated string.
            let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
            if fd < 0 {
                return Err(OsError::last("memfd_create"));
            }
            // SAFETY: `fd` was just returned by memfd_create and is owned by no one else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        }
        Some(dir) => {
            use std::os::unix::ffi::OsStrExt;
            static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            // Relaxed: only uniqueness of the counter value matters.
            let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let path = dir.join(format!("pktmem-{}-{tag}-{n}", std::process::id()));
            let cpath = CString::new(path.as_os_str().as_bytes()).map_err(|_| OsError {
                op: "open hugetlbfs file",
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })?;
            // SAFETY: `cpath` is a valid NUL-terminated path.
            let fd = unsafe {
                libc::open(
                    cpath.as_ptr(),
                    libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                    0o600,
                )
            };
            if fd < 0 {
                return Err(OsError::last("open hugetlbfs file"));
            }
            // SAFETY: `cpath` is valid; the open fd keeps the file alive.
            unsafe { libc::unlink(cpath.as_ptr()) };
            // SAFETY: `fd` was just returned by open and is owned by no one else.
            unsafe { OwnedFd::from_raw_fd(fd) }
        }
    };
    // SAFETY: plain syscall on an fd we own.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(OsError::last("ftruncate"));
    }
    if dir.is_none() {
        // The size never changes again: sealed, so that a process the fd
        // is shared with cannot shrink the file under our mappings (a
        // SIGBUS here) nor grow it. Hole punching stays possible (ours).
        let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
        // SAFETY: plain syscall on an fd we own.
        if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } != 0 {
            return Err(OsError::last("fcntl(F_ADD_SEALS)"));
        }
    }
    Ok(fd)
}

/// Why getting backing failed.
pub(crate) enum BackingError {
    /// No more pages of this size (ENOSPC / ENOMEM).
    NoSpace,
    /// Anything else.
    Other(OsError),
    /// A DMA mapper refused the pages (they are unmapped again).
    Dma(crate::DmaMapError),
}

/// Allocates backing for `[off, off + len)` of `fd` (the SIGBUS-free way to
/// learn that no hugepage is left: ENOSPC here instead of a fault later).
pub(crate) fn fallocate(fd: &OwnedFd, off: usize, len: usize) -> Result<(), BackingError> {
    // SAFETY: plain syscall on an fd we own.
    let r = unsafe { libc::fallocate(fd.as_raw_fd(), 0, off as libc::off_t, len as libc::off_t) };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::ENOSPC | libc::ENOMEM) => Err(BackingError::NoSpace),
        _ => Err(BackingError::Other(OsError {
            op: "fallocate",
            source: e,
        })),
    }
}

/// Releases the backing of `[off, off + len)` of `fd`.
pub(crate) fn punch_hole(fd: &OwnedFd, off: usize, len: usize) -> Result<(), OsError> {
    // SAFETY: plain syscall on an fd we own.
    let r = unsafe {
        libc::fallocate(
            fd.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            off as libc::off_t,
            len as libc::off_t,
        )
    };
    if r != 0 {
        return Err(OsError::last("fallocate (punch hole)"));
    }
    Ok(())
}

/// Maps `[off, off + len)` of `fd` read-write, shared and populated, at `addr`.
///
/// # Safety
/// - `[addr, addr + len)` lies inside a reservation owned by the caller and
///   is currently reserved (nothing mapped that anyone references).
pub(crate) unsafe fn map_file_fixed(
    addr: usize,
    len: usize,
    fd: &OwnedFd,
    off: usize,
) -> Result<(), OsError> {
    // SAFETY: MAP_FIXED replaces only our own reserved range (caller's contract).
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(OsError::last("mmap (page)"));
    }
    Ok(())
}

/// Maps `[off, off + len)` of the hugetlb file `fd` read-write and shared
/// at `addr` **without** faulting it in: the kernel reserves the hugepages
/// at `mmap` (so a later fault cannot run out of pages), and the caller
/// faults them in, possibly from several threads ([`populate_write`]). No
/// hugepage to reserve is [`BackingError::NoSpace`]; on failure the range
/// is reserved again.
///
/// # Safety
/// As [`map_file_fixed`].
pub(crate) unsafe fn map_file_fixed_unpopulated(
    addr: usize,
    len: usize,
    fd: &OwnedFd,
    off: usize,
) -> Result<(), BackingError> {
    // SAFETY: MAP_FIXED replaces only our own reserved range (caller's contract).
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd.as_raw_fd(),
            off as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        // The failed MAP_FIXED may have removed the reservation: put it back.
        // SAFETY: same range, still ours.
        let _ = unsafe { unmap_to_reserved(addr, len) };
        return Err(match e.raw_os_error() {
            Some(libc::ENOMEM | libc::ENOSPC) => BackingError::NoSpace,
            _ => BackingError::Other(OsError {
                op: "mmap (page, unpopulated)",
                source: e,
            }),
        });
    }
    Ok(())
}

/// Whether the kernel knows `MADV_POPULATE_WRITE` (Linux 5.14): a
/// zero-length call is refused only for advice it does not know. Asked
/// once.
pub(crate) fn populate_write_supported() -> bool {
    static SUPPORTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // SAFETY: a zero-length madvise touches no memory.
        unsafe { libc::madvise(std::ptr::null_mut(), 0, libc::MADV_POPULATE_WRITE) == 0 }
    })
}

/// Faults `[addr, addr + len)` in for writing (`MADV_POPULATE_WRITE`): each
/// fresh hugepage is allocated and zeroed by the kernel here, in the calling
/// thread. A page the kernel cannot give (no memory, a cgroup limit, a
/// memory policy with no page left) is an error here instead of a `SIGBUS`
/// later: `ENOMEM`, or `EFAULT` for a fault that would have signalled.
///
/// Safe to call: it only makes pages of an existing mapping present,
/// writing nothing the program can see (fresh pages read as zero).
pub(crate) fn populate_write(addr: usize, len: usize) -> std::io::Result<()> {
    loop {
        // SAFETY: populating changes no contents of the mapping; a range
        // that is not mapped is refused with ENOMEM.
        if unsafe { libc::madvise(addr as *mut _, len, libc::MADV_POPULATE_WRITE) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        // Interrupted (a signal): pages already present cost nothing again.
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Faults the hugepages of `page_size` bytes in `[addr, addr + len)` in for
/// writing ([`populate_write`]), one page at a time, each through its last
/// 4 KiB.
///
/// Where the fault lands matters: the kernel zeroes a fresh 2 MiB page
/// subpage by subpage, the faulting subpage last (to leave it in the
/// cache), so a fault at the page's start clears it back to front, and a
/// fault at its end front to back. Front to back measured 2.5 to 3 times
/// faster (a 512 MiB run: 22 ms against 59 ms on the development machine).
/// 1 GiB pages are cleared front to back either way.
pub(crate) fn populate_write_pages(
    addr: usize,
    len: usize,
    page_size: usize,
) -> std::io::Result<()> {
    const BASE: usize = 4096;
    let mut page = addr;
    while page < addr + len {
        populate_write(page + page_size - BASE, BASE)?;
        page += page_size;
    }
    Ok(())
}

/// Maps anonymous `MAP_HUGETLB` pages of `1 << page_shift` bytes at `addr`,
/// faulted in now when `populate` (else reserved only: the caller faults
/// them in with [`populate_write`]).
///
/// # Safety
/// As [`map_file_fixed`].
pub(crate) unsafe fn map_anon_huge_fixed(
    addr: usize,
    len: usize,
    page_shift: u32,
    populate: bool,
) -> Result<(), BackingError> {
    let populate = if populate { libc::MAP_POPULATE } else { 0 };
    // SAFETY: MAP_FIXED replaces only our own reserved range (caller's contract).
    let p = unsafe {
        libc::mmap(
            addr as *mut _,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE
                | libc::MAP_ANONYMOUS
                | libc::MAP_FIXED
                | populate
                | libc::MAP_HUGETLB
                | ((page_shift as libc::c_int) << HUGE_SHIFT),
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        let e = std::io::Error::last_os_error();
        // The failed MAP_FIXED may have removed the reservation: put it back.
        // SAFETY: same range, still ours.
        let _ = unsafe { unmap_to_reserved(addr, len) };
        return match e.raw_os_error() {
            Some(libc::ENOMEM | libc::ENOSPC) => Err(BackingError::NoSpace),
            _ => Err(BackingError::Other(OsError {
                op: "mmap (MAP_HUGETLB)",
                source: e,
            })),
        };
    }
    Ok(())
}

/// Locks small pages in memory; returns whether it worked.
pub(crate) fn mlock(addr: usize, len: usize) -> bool {
    // SAFETY: mlock only changes residency of a range we mapped.
    unsafe { libc::mlock(addr as *const _, len) == 0 }
}

/// Whether NUMA node `node` exists, from sysfs (only node 0 when sysfs
/// has no node directory).
pub(crate) fn node_exists(node: u32) -> bool {
    let p = format!("/sys/devices/system/node/node{node}");
    if Path::new("/sys/devices/system/node").exists() {
        Path::new(&p).exists()
    } else {
        node == 0
    }
}

/// Reads a sysfs/procfs number.
pub(crate) fn read_num(path: &str) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

const MPOL_BIND: libc::c_int = 2;
const MAX_NODES: usize = 1024;

/// Why a thread's memory policy could not be bound to a node.
pub(crate) enum BindError {
    /// The node is past what the policy mask holds.
    TooHigh,
    /// A system call failed.
    Os(OsError),
}

/// Binds this thread's memory policy to one node until dropped, then puts
/// the previous policy back.
pub(crate) struct BindNode {
    mode: libc::c_int,
    mask: [libc::c_ulong; MAX_NODES / 64],
}

impl BindNode {
    pub(crate) fn new(node: Node) -> Result<BindNode, BindError> {
        let node = node.id() as usize;
        if node >= MAX_NODES {
            return Err(BindError::TooHigh);
        }
        let mut old = BindNode {
            mode: 0,
            mask: [0; MAX_NODES / 64],
        };
        // SAFETY: get_mempolicy writes one int and a mask of MAX_NODES bits,
        // both pointing to memory of that size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_get_mempolicy,
                std::ptr::from_mut::<libc::c_int>(&mut old.mode),
                old.mask.as_mut_ptr(),
                MAX_NODES as libc::c_ulong,
                0usize,
                0usize,
            )
        };
        if r != 0 {
            return Err(BindError::Os(OsError::last("get_mempolicy")));
        }
        let mut mask = [0 as libc::c_ulong; MAX_NODES / 64];
        mask[node / 64] |= 1 << (node % 64);
        // SAFETY: set_mempolicy reads a mask of MAX_NODES bits from `mask`.
        let r = unsafe {
            libc::syscall(
                libc::SYS_set_mempolicy,
                MPOL_BIND,
                mask.as_ptr(),
                MAX_NODES as libc::c_ulong,
            )
        };
        if r != 0 {
            return Err(BindError::Os(OsError::last("set_mempolicy")));
        }
        Ok(old)
    }
}

impl Drop for BindNode {
    fn drop(&mut self) {
        // SAFETY: as in `new`: a mask of MAX_NODES bits.
        unsafe {
            libc::syscall(
                libc::SYS_set_mempolicy,
                self.mode,
                self.mask.as_ptr(),
                MAX_NODES as libc::c_ulong,
            )
        };
    }
}

/// The NUMA node of the page at `addr`, as the kernel reports it
/// (`get_mempolicy(MPOL_F_NODE | MPOL_F_ADDR)`); `None` when the address
/// is not mapped or the kernel has no NUMA support.
///
/// ```
/// let x = Box::new(1u8);
/// if let Some(n) = pktmem_hugemem::node_of(std::ptr::from_ref::<u8>(&*x) as usize) {
///     assert!(pktmem_hugemem::Node::exists(n));
/// }
/// ```
pub fn node_of(addr: usize) -> Option<Node> {
    const MPOL_F_NODE: libc::c_ulong = 1;
    const MPOL_F_ADDR: libc::c_ulong = 2;
    let mut node: libc::c_int = -1;
    // SAFETY: with MPOL_F_NODE | MPOL_F_ADDR the kernel writes one int.
    let r = unsafe {
        libc::syscall(
            libc::SYS_get_mempolicy,
            std::ptr::from_mut::<libc::c_int>(&mut node),
            std::ptr::null_mut::<libc::c_ulong>(),
            0usize,
            addr,
            MPOL_F_NODE | MPOL_F_ADDR,
        )
    };
    if r != 0 {
        return None;
    }
    u32::try_from(node).ok().map(Node::new)
}
