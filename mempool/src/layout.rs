//! Object layout: a header before each object, sizes, and how many bytes a
//! pool needs.
//!
//! ```text
//!   element (total_size bytes, a multiple of 64 unless NO_CACHE_ALIGN)
//!  ┌──────────── header_size ────────────┬──────── elt_size ───────┬ trailer ┐
//!  │ padding │ ObjHeader {pool,iova,cookie}│ object body (user bytes)│ padding │
//!  └─────────┴────────────────────────────┴─────────────────────────┴─────────┘
//!                                         ▲ object pointer (aligned to 64, or 8)
//! ```

use crate::Iova;

/// Cache line size the layout aligns to.
pub const CACHE_LINE: usize = 64;

/// Cookie of an object that is in the pool (backend or cache).
pub(crate) const COOKIE_FREE: u64 = 0xbadb_adbe_ef00_f4ee;
/// Cookie of an object that a caller holds.
pub(crate) const COOKIE_TAKEN: u64 = 0x0ddb_a11b_ee50_7a4e;

/// The header written before every object.
///
/// Invariant: written once when the object is placed; after that only
/// `cookie` changes (in debug builds, by get and put). Nothing else in the
/// pool writes to an object's memory.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct ObjHeader {
    /// The pool's shared state (`Arc::as_ptr`).
    pub(crate) pool: *const (),
    /// IOVA of the object body, or `Iova::BAD`.
    pub(crate) iova: u64,
    /// [`COOKIE_FREE`] or [`COOKIE_TAKEN`].
    pub(crate) cookie: u64,
}

/// Bytes of the header before each object (pool pointer, IOVA, cookie).
pub const OBJ_HEADER_SIZE: usize = std::mem::size_of::<ObjHeader>();

impl ObjHeader {
    /// The header of `obj`.
    ///
    /// # Safety
    /// - `obj` is an object pointer of a live pool (it has a header before it).
    #[inline(always)]
    pub(crate) unsafe fn of(obj: *const u8) -> *mut ObjHeader {
        // SAFETY: every object is placed `OBJ_HEADER_SIZE` bytes after its
        // header inside the same chunk (caller's condition).
        unsafe { obj.sub(OBJ_HEADER_SIZE) as *mut ObjHeader }
    }
}

/// The sizes of one element of a pool.
///
/// ```
/// use pktmem_mempool::{calc_obj_size, PoolFlags};
/// let s = calc_obj_size(64, PoolFlags::empty()).unwrap();
/// assert_eq!(s.total_size, 128); // 64 B header line + 64 B body
/// assert_eq!(s.total_size, s.header_size + s.elt_size + s.trailer_size);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjSize {
    /// Bytes before the body (the header, padded).
    pub header_size: usize,
    /// Bytes of the body (the element size rounded up to 8).
    pub elt_size: usize,
    /// Padding after the body.
    pub trailer_size: usize,
    /// Bytes one element takes in memory.
    pub total_size: usize,
    /// Alignment of the body (and of the element's start).
    pub align: usize,
}

/// Computes the layout of one element of `elt_size` bytes under `flags`:
/// header and element aligned to a cache line unless
/// [`PoolFlags::NO_CACHE_ALIGN`](crate::PoolFlags::NO_CACHE_ALIGN). `None` when the size overflows.
///
/// ```
/// use pktmem_mempool::{calc_obj_size, PoolFlags};
/// let s = calc_obj_size(64, PoolFlags::NO_CACHE_ALIGN).unwrap();
/// assert_eq!(s.total_size, 24 + 64);
/// ```
pub fn calc_obj_size(elt_size: usize, flags: crate::PoolFlags) -> Option<ObjSize> {
    let align = if flags.contains(crate::PoolFlags::NO_CACHE_ALIGN) {
        8
    } else {
        CACHE_LINE
    };
    let header_size = OBJ_HEADER_SIZE.next_multiple_of(align);
    let elt = elt_size.checked_next_multiple_of(8)?;
    let raw = header_size.checked_add(elt)?;
    let total = raw.checked_next_multiple_of(align)?;
    if total > u32::MAX as usize {
        return None;
    }
    Some(ObjSize {
        header_size,
        elt_size: elt,
        trailer_size: total - raw,
        total_size: total,
        align,
    })
}

/// Bytes of memory `n` objects of `total_size` need when placed in pages of
/// `page_size` bytes that objects must not straddle (`page_size == 0`: one
/// IOVA-contiguous chunk, objects may straddle pages). `None` when an object
/// does not fit in a page or on overflow.
///
/// ```
/// use pktmem_mempool::calc_mem_size;
/// assert_eq!(calc_mem_size(100, 128, 0), Some(12800));
/// // 32 objects of 128 B per 4 KiB page: 100 objects need 3 full pages + 4 objects
/// assert_eq!(calc_mem_size(100, 128, 4096), Some(3 * 4096 + 4 * 128));
/// ```
pub fn calc_mem_size(n: usize, total_size: usize, page_size: usize) -> Option<usize> {
    if page_size == 0 {
        return n.checked_mul(total_size);
    }
    let per_page = page_size / total_size;
    if per_page == 0 {
        return None;
    }
    if n == 0 {
        return Some(0);
    }
    // Full pages, then only what the last page's objects take.
    let pages = n.div_ceil(per_page);
    let last = n - (pages - 1) * per_page;
    (pages - 1)
        .checked_mul(page_size)?
        .checked_add(last * total_size)
}

/// How objects are laid out in one chunk: the rule used both to place them
/// and, later, to find them again (iteration, audit) without storing a list.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placement {
    pub(crate) size: ObjSize,
    /// Objects must not straddle a boundary of this many bytes (0: may).
    pub(crate) page_size: usize,
}

impl Placement {
    /// Calls `f(element offset in chunk)` for each of up to `max` elements
    /// that fit in `len` bytes at address `va`; returns how many.
    pub(crate) fn for_each(
        &self,
        va: usize,
        len: usize,
        max: usize,
        mut f: impl FnMut(usize),
    ) -> usize {
        let total = self.size.total_size;
        let mut off = va.next_multiple_of(self.size.align) - va;
        let mut count = 0;
        while count < max {
            let Some(end) = off.checked_add(total) else {
                break;
            };
            if end > len {
                break;
            }
            if let Some(first_page) = (va + off).checked_div(self.page_size) {
                let start = va + off;
                let last = start + total - 1;
                if first_page != last / self.page_size {
                    // Skip to the next page boundary, then realign.
                    let next = (first_page + 1) * self.page_size;
                    off = next.next_multiple_of(self.size.align) - va;
                    continue;
                }
            }
            f(off);
            count += 1;
            off = end;
        }
        count
    }
}

/// IOVA of the byte `off` bytes into a chunk whose start has IOVA `base`.
#[inline]
pub(crate) fn iova_add(base: Iova, off: usize) -> Iova {
    if base == Iova::BAD {
        Iova::BAD
    } else {
        Iova(base.0 + off as u64)
    }
}
