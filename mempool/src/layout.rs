//! Object layout: a header before each object, sizes, and how many bytes a
//! pool needs.
//!
//! ```text
//!   element (total_size bytes, a multiple of 64 unless NO_CACHE_ALIGN)
//!  ┌──────────── header_size ────────────┬──────── elt_size ───────┬ trailer ┐
//!  │ padding │ ObjHeader {pool,iova,cookie}│ object body (user bytes)│ padding │
//!  └─────────┴────────────────────────────┴─────────────────────────┴─────────┘
//!                                         ▲ Obj (aligned to the pool's alignment:
//!                                           64 by default, 8 up to a page)
//! ```

use crate::Iova;

/// Cache line size the layout aligns to by default.
pub const CACHE_LINE: usize = 64;

/// Smallest object alignment (the header's).
pub const MIN_ALIGN: usize = 8;

/// Largest object alignment a pool accepts: a small page.
pub const MAX_ALIGN: usize = 4096;

/// The header's `iova` when the object has none.
pub(crate) const NO_IOVA: u64 = u64::MAX;

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
    /// IOVA of the object body, or [`NO_IOVA`].
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
    // Aligned: bodies are aligned to at least `MIN_ALIGN` (8) and the header
    // size is a multiple of 8, so the header is 8-aligned too.
    #[allow(clippy::cast_ptr_alignment)]
    pub(crate) unsafe fn of(obj: *const u8) -> *mut ObjHeader {
        // SAFETY: every object is placed `OBJ_HEADER_SIZE` bytes after its
        // header inside the same chunk (caller's condition).
        unsafe { obj.sub(OBJ_HEADER_SIZE).cast::<ObjHeader>().cast_mut() }
    }
}

/// The sizes of one element of a pool.
///
/// ```
/// use pktmem_mempool::{calc_obj_size, CACHE_LINE};
/// let s = calc_obj_size(64, CACHE_LINE).unwrap();
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

/// Computes the layout of one element of `elt_size` bytes whose body is
/// aligned to `align` (a power of two from [`MIN_ALIGN`] to [`MAX_ALIGN`];
/// pools use [`CACHE_LINE`] unless built with `.align(..)` or
/// `.no_cache_align()`). `None` when `align` is out of that range or the
/// size overflows (an element must stay below 4 GiB).
///
/// ```
/// use pktmem_mempool::calc_obj_size;
/// let s = calc_obj_size(64, 8).unwrap();
/// assert_eq!(s.total_size, 24 + 64);
/// let s = calc_obj_size(100, 4096).unwrap();
/// assert_eq!((s.header_size, s.total_size), (4096, 8192));
/// assert!(calc_obj_size(64, 48).is_none());
/// ```
pub fn calc_obj_size(elt_size: usize, align: usize) -> Option<ObjSize> {
    if !align.is_power_of_two() || !(MIN_ALIGN..=MAX_ALIGN).contains(&align) {
        return None;
    }
    let header_size = OBJ_HEADER_SIZE.next_multiple_of(align);
    let elt = elt_size.checked_next_multiple_of(8)?;
    let raw = header_size.checked_add(elt)?;
    let total = raw.checked_next_multiple_of(align)?;
    if u32::try_from(total).is_err() {
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
pub(crate) fn iova_add(base: Option<Iova>, off: usize) -> Option<Iova> {
    base.map(|b| Iova(b.0 + off as u64))
}

impl Placement {
    /// The index among this chunk's elements of the element starting `off`
    /// bytes into the chunk at address `va` of `len` bytes holding `count`
    /// elements (placed by [`for_each`](Self::for_each)), or `None` when no
    /// element starts there. Pure arithmetic: nothing is read.
    pub(crate) fn index_of(
        &self,
        va: usize,
        len: usize,
        count: usize,
        off: usize,
    ) -> Option<usize> {
        let total = self.size.total_size;
        let align = self.size.align;
        let first = va.next_multiple_of(align) - va;
        if off < first || off.checked_add(total)? > len {
            return None;
        }
        let index = if self.page_size == 0 {
            if (off - first) % total != 0 {
                return None;
            }
            (off - first) / total
        } else {
            let page = self.page_size;
            let start = va + off;
            if start / page != (start + total - 1) / page {
                return None; // would straddle: never placed there
            }
            let first_page = (va + first) / page;
            let this_page = start / page;
            // Elements of the chunk's first page start at `first`; those of
            // every later page at the page's first aligned byte.
            let page_first = if this_page == first_page {
                va + first
            } else {
                (this_page * page).next_multiple_of(align)
            };
            if start < page_first || (start - page_first) % total != 0 {
                return None;
            }
            let in_page = (start - page_first) / total;
            if this_page == first_page {
                in_page
            } else {
                // How many fit on the first page, then full pages.
                let first_end = ((first_page + 1) * page).min(va + len);
                let on_first = (first_end.saturating_sub(va + first)) / total;
                let per_page = (page
                    - ((this_page * page).next_multiple_of(align) - this_page * page))
                    / total;
                on_first + (this_page - first_page - 1) * per_page + in_page
            }
        };
        (index < count).then_some(index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every placed element is found again by `index_of`, at its index, and
    /// no other offset is.
    fn check(va: usize, len: usize, elt: usize, align: usize, page: usize, max: usize) {
        let p = Placement {
            size: calc_obj_size(elt, align).unwrap(),
            page_size: page,
        };
        let mut offs = Vec::new();
        let count = p.for_each(va, len, max, |off| offs.push(off));
        assert_eq!(count, offs.len());
        for (i, &off) in offs.iter().enumerate() {
            assert_eq!(
                p.index_of(va, len, count, off),
                Some(i),
                "va {va:#x} off {off}"
            );
            // Never across a page boundary.
            if let Some(first) = (va + off).checked_div(page) {
                assert_eq!(first, (va + off + p.size.total_size - 1) / page);
            }
        }
        for off in 0..len {
            if !offs.contains(&off) {
                assert_eq!(p.index_of(va, len, count, off), None, "off {off}");
            }
        }
    }

    #[test]
    fn index_of_inverts_for_each() {
        for &(va, len, elt, align, page, max) in &[
            (0x10000, 8192, 64, 64, 0, usize::MAX),
            (0x10008, 8192, 64, 64, 0, 10),
            (0x10000, 3 * 4096, 2000, 64, 4096, usize::MAX),
            (0x10040, 3 * 4096 + 100, 1000, 64, 4096, usize::MAX),
            (0x10000, 4 * 4096, 40, 8, 4096, 200),
            (0x10008, 4 * 4096, 4000, 8, 4096, usize::MAX),
            (0x10000, 4 * 4096, 100, 4096, 0, usize::MAX),
        ] {
            check(va, len, elt, align, page, max);
        }
    }

    #[test]
    fn mem_size_matches_placement() {
        // What `calc_mem_size` says is enough, placement fills exactly.
        for &(n, elt, page) in &[
            (100, 64, 4096),
            (33, 2000, 4096),
            (7, 64, 0),
            (1, 4000, 4096),
        ] {
            let size = calc_obj_size(elt, CACHE_LINE).unwrap();
            let bytes = calc_mem_size(n, size.total_size, page).unwrap();
            let p = Placement {
                size,
                page_size: page,
            };
            assert_eq!(p.for_each(0x20_0000, bytes, usize::MAX, |_| ()), n);
            assert_eq!(p.for_each(0x20_0000, bytes - 1, usize::MAX, |_| ()), n - 1);
        }
        assert_eq!(calc_mem_size(1, 8192, 4096), None);
    }

    #[test]
    fn obj_size_alignment() {
        assert!(calc_obj_size(8, 4).is_none());
        assert!(calc_obj_size(8, 8192).is_none());
        assert!(calc_obj_size(usize::MAX - 3, 8).is_none());
        for align in [8, 16, 64, 128, 4096] {
            let s = calc_obj_size(24, align).unwrap();
            assert_eq!(s.header_size % align, 0);
            assert_eq!(s.total_size % align, 0);
            assert!(s.header_size >= OBJ_HEADER_SIZE);
        }
    }
}
