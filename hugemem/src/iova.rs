//! IO addresses, the IOVA mode, page sizes and the kernel's page map.

use std::fmt;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

use crate::TranslateError;

/// An IO virtual address: what a device uses to reach memory by DMA.
///
/// In [`IovaMode::Pa`] it is the physical address, in [`IovaMode::Va`] the
/// virtual address. The crate's APIs say "no IOVA" with `Option<Iova>`
/// (`None`): memory registered without IOVAs, addresses the provider does
/// not know. [`Iova::BAD`] is the raw form of `None`, for where a plain
/// 64-bit field must hold "no IOVA": a device descriptor, an object header
/// (a mempool object's IOVA field), a table of raw values.
///
/// ```
/// use pktmem_hugemem::Iova;
/// assert!(Iova::BAD.is_bad());
/// assert_eq!(Iova(0x1000).offset(0x10), Iova(0x1010));
/// assert_eq!(Iova::from_raw(0x2000), Some(Iova(0x2000)));
/// assert_eq!(Iova::from_raw(Iova::BAD.0), None);
/// assert_eq!(Iova::to_raw(None), Iova::BAD.0);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Iova(pub u64);

impl Iova {
    /// The raw "no IOVA" value, for 64-bit fields that cannot hold an
    /// `Option` (device descriptors, object headers); APIs use `None`.
    pub const BAD: Iova = Iova(u64::MAX);

    /// The IOVA a raw field holds: `None` for [`Iova::BAD`]'s value.
    #[inline]
    pub const fn from_raw(raw: u64) -> Option<Iova> {
        if raw == Iova::BAD.0 {
            None
        } else {
            Some(Iova(raw))
        }
    }

    /// The raw field value of `iova`: [`Iova::BAD`]'s value for `None`.
    #[inline]
    pub const fn to_raw(iova: Option<Iova>) -> u64 {
        match iova {
            Some(i) => i.0,
            None => Iova::BAD.0,
        }
    }

    /// Whether this is [`Iova::BAD`].
    #[inline]
    pub fn is_bad(self) -> bool {
        self == Iova::BAD
    }

    /// `self + off`, or [`Iova::BAD`] if `self` is bad.
    #[inline]
    #[must_use]
    pub fn offset(self, off: u64) -> Iova {
        if self.is_bad() {
            self
        } else {
            Iova(self.0.wrapping_add(off))
        }
    }
}

impl fmt::Debug for Iova {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_bad() {
            write!(f, "Iova::BAD")
        } else {
            write!(f, "Iova({:#x})", self.0)
        }
    }
}

/// How IOVAs are chosen.
///
/// ```
/// use pktmem_hugemem::IovaMode;
/// let m = IovaMode::detect();
/// assert!(m == IovaMode::Pa || m == IovaMode::Va);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IovaMode {
    /// IOVA = physical address, read from `/proc/self/pagemap` when a page is mapped.
    Pa,
    /// IOVA = virtual address (pagemap does not give frame numbers, e.g. not root).
    Va,
}

impl IovaMode {
    /// PA when `/proc/self/pagemap` yields frame numbers for this process, VA otherwise.
    pub fn detect() -> IovaMode {
        let probe = Box::new(0x5au64);
        let addr = std::ptr::from_ref::<u64>(std::hint::black_box(&*probe)) as usize;
        match virt2phys(addr) {
            Ok(_) => IovaMode::Pa,
            Err(_) => IovaMode::Va,
        }
    }
}

/// The page sizes the provider maps itself.
///
/// ```
/// use pktmem_hugemem::PageSize;
/// assert_eq!(PageSize::Huge2M.bytes(), 2 << 20);
/// assert_eq!(PageSize::from_bytes(4096), Some(PageSize::Small4K));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PageSize {
    /// 4 KiB small pages (the fallback; locked when mapped).
    Small4K,
    /// 2 MiB hugepages.
    Huge2M,
    /// 1 GiB hugepages.
    Huge1G,
}

impl PageSize {
    /// Size in bytes.
    #[inline]
    pub const fn bytes(self) -> usize {
        1 << self.shift()
    }

    /// log2 of the size.
    #[inline]
    pub const fn shift(self) -> u32 {
        match self {
            PageSize::Small4K => 12,
            PageSize::Huge2M => 21,
            PageSize::Huge1G => 30,
        }
    }

    /// Whether this is a hugepage size.
    pub const fn is_huge(self) -> bool {
        !matches!(self, PageSize::Small4K)
    }

    /// The size of `bytes` bytes, if it is one of the three.
    pub const fn from_bytes(bytes: usize) -> Option<PageSize> {
        match bytes {
            4096 => Some(PageSize::Small4K),
            0x20_0000 => Some(PageSize::Huge2M),
            0x4000_0000 => Some(PageSize::Huge1G),
            _ => None,
        }
    }
}

impl fmt::Display for PageSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PageSize::Small4K => "4 KiB",
            PageSize::Huge2M => "2 MiB",
            PageSize::Huge1G => "1 GiB",
        })
    }
}

const PAGEMAP_PRESENT: u64 = 1 << 63;
const PAGEMAP_PFN_MASK: u64 = (1 << 55) - 1;
const BASE_PAGE: usize = 4096;

fn pagemap() -> Result<&'static File, TranslateError> {
    static PAGEMAP: OnceLock<Option<File>> = OnceLock::new();
    PAGEMAP
        .get_or_init(|| File::open("/proc/self/pagemap").ok())
        .as_ref()
        .ok_or_else(|| TranslateError::Io {
            op: "open /proc/self/pagemap",
            source: std::io::Error::from(std::io::ErrorKind::NotFound),
        })
}

/// The physical address of `addr`, read from `/proc/self/pagemap`.
///
/// Errors when the page is not present or the page map gives no frame
/// number (not root). Costs one `pread` (the file stays open).
///
/// ```
/// let x = Box::new(7u64);
/// let addr = std::ptr::from_ref::<u64>(&*x) as usize;
/// match pktmem_hugemem::virt2phys(addr) {
///     Ok(pa) => assert_eq!(pa & 0xfff, addr as u64 & 0xfff),
///     Err(e) => println!("no physical address: {e}"),
/// }
/// ```
pub fn virt2phys(addr: usize) -> Result<u64, TranslateError> {
    let f = pagemap()?;
    let mut buf = [0u8; 8];
    let off = (addr / BASE_PAGE * 8) as u64;
    f.read_exact_at(&mut buf, off)
        .map_err(|e| TranslateError::Io {
            op: "read /proc/self/pagemap",
            source: e,
        })?;
    let e = u64::from_ne_bytes(buf);
    let pfn = e & PAGEMAP_PFN_MASK;
    if e & PAGEMAP_PRESENT == 0 || pfn == 0 {
        return Err(TranslateError::NotPresent { addr });
    }
    Ok(pfn * BASE_PAGE as u64 + (addr % BASE_PAGE) as u64)
}

/// Physical addresses of `out.len()` consecutive 4 KiB pages starting at
/// `addr` (page aligned), one `pread`. Entries are `None` for pages that
/// are not present.
pub(crate) fn phys_of_small_pages(
    addr: usize,
    out: &mut [Option<Iova>],
) -> Result<(), TranslateError> {
    let f = pagemap()?;
    let mut buf = vec![0u8; out.len() * 8];
    f.read_exact_at(&mut buf, (addr / BASE_PAGE * 8) as u64)
        .map_err(|e| TranslateError::Io {
            op: "read /proc/self/pagemap",
            source: e,
        })?;
    for (o, b) in out.iter_mut().zip(buf.chunks_exact(8)) {
        // `chunks_exact(8)`: always 8 bytes (the fallback is never taken).
        let e = u64::from_ne_bytes(b.try_into().unwrap_or([0; 8]));
        let pfn = e & PAGEMAP_PFN_MASK;
        *o = (e & PAGEMAP_PRESENT != 0 && pfn != 0).then(|| Iova(pfn * BASE_PAGE as u64));
    }
    Ok(())
}
