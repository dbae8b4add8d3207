//! The peer's view of the exporter's memory: per list a reservation in this
//! process, the list's fd, and a flat per-page table; translation scans the
//! (at most [`MAX_LISTS`]) lists and loads one entry, with no lock and no
//! system call.
//!
//! ```text
//!  slots[0..used]  (AtomicPtr, published once, freed when the view drops)
//!   └─ ListSlot: exp_base, local_base, reserve, shift, fd
//!        entries[page] (AtomicU64, process-private):
//!          0                     unmapped
//!          iova | MAPPED         mapped, IOVA (page aligned)
//!          MAPPED | NO_IOVA      mapped, no IOVA
//! ```
//!
//! One writer at a time (the attach handshake, then the attachment's
//! thread): Map maps the pages into the reservation, then stores the
//! entries with Release; Unmap clears the entries (Release), then puts the
//! range back to `PROT_NONE`. Lookups load with Acquire.

use std::os::fd::OwnedFd;
use std::ptr::NonNull;

use super::error::AttachError;
use super::sys;
use super::wire::MAX_LISTS;
use crate::sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use crate::Iova;

const MAPPED: u64 = 1;
const NO_IOVA: u64 = 2;
/// Most pages per list (the table of 2²⁶ entries is 512 MiB of VA, backed
/// only where written).
pub(crate) const MAX_LIST_PAGES: u64 = 1 << 26;

/// Where one list of the exporter's memory is in this process
/// ([`Attachment::placement`](super::Attachment::placement)).
///
/// ```
/// use pktmem_hugemem::share::{Attachment, Exporter, Placement};
/// use pktmem_hugemem::{AllocRequest, Provider};
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let c = p.alloc_shared(&AllocRequest::new(3 << 20))?;
/// let exp = Exporter::builder(&p).unbound()?;
/// let fd = exp.connect_pair().unwrap();
/// let a = std::thread::spawn(move || Attachment::builder("w").placement(Placement::Relocate).from_fd(fd))
///     .join().unwrap()?;
/// let l = a.placement()[0];
/// assert_eq!(l.mapped_pages * l.page_size, p.mapped_bytes());
/// let va = c.as_ptr().as_ptr() as u64;
/// let local = a.to_local(va, 1).unwrap().as_ptr() as usize;
/// assert_eq!(local - l.local_base, (va - l.exporter_base) as usize); // offset mode
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListPlacement {
    /// The exporter's list id.
    pub list: u16,
    /// Page size in bytes.
    pub page_size: usize,
    /// Where the list's reservation starts in the exporter.
    pub exporter_base: u64,
    /// Where it starts here.
    pub local_base: usize,
    /// Its length in bytes.
    pub reserve: usize,
    /// Pages mapped here now.
    pub mapped_pages: usize,
    /// Whether it sits at the exporter's addresses (pointers valid unchanged).
    pub same_va: bool,
}

/// A mapped page, as [`Attachment::walk_pages`](super::Attachment::walk_pages)
/// reports it (a read-only record: a copy of the table's state).
///
/// ```
/// use pktmem_hugemem::share::{Attachment, Exporter};
/// use pktmem_hugemem::{AllocRequest, Provider};
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let _c = p.alloc_shared(&AllocRequest::new(5 << 20))?;
/// let exp = Exporter::builder(&p).unbound()?;
/// let fd = exp.connect_pair().unwrap();
/// let a = std::thread::spawn(move || Attachment::builder("w").from_fd(fd)).join().unwrap()?;
/// let mut n = 0;
/// a.walk_pages(|pg| {
///     assert_eq!(pg.iova, p.virt2iova(pg.exp_va as *const u8));
///     assert_eq!(a.to_exporter(pg.local_va as *const u8), Some(pg.exp_va));
///     n += pg.len;
/// });
/// assert_eq!(n, p.mapped_bytes());
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerPage {
    /// The exporter's list id.
    pub list: u16,
    /// The page's address in the exporter.
    pub exp_va: u64,
    /// Its address here.
    pub local_va: usize,
    /// Its length (the page size).
    pub len: usize,
    /// Its IOVA, as the exporter gave it.
    pub iova: Option<Iova>,
}

/// One list: its reservation here, its fd, its page table.
pub(crate) struct ListSlot {
    pub(crate) id: u16,
    pub(crate) shift: u32,
    pub(crate) exp_base: u64,
    pub(crate) local_base: usize,
    pub(crate) reserve: usize,
    pub(crate) same_va: bool,
    pub(crate) fd: OwnedFd,
    /// The list's VA here (released after the table, when the slot drops).
    va_range: Reservation,
    /// `pages` entries in an anonymous mapping of `table_len` bytes,
    /// process-private, owned by the slot.
    entries: NonNull<AtomicU64>,
    pages: usize,
    table_len: usize,
    /// Pages mapped now.
    mapped: AtomicUsize,
    /// One past the highest page ever mapped (bounds walks).
    hwm: AtomicUsize,
}

// SAFETY: the raw table pointer is owned by the slot (freed in Drop) and
// only accessed through atomics; everything else is plain data.
unsafe impl Send for ListSlot {}
// SAFETY: as above; shared access is atomic loads only.
unsafe impl Sync for ListSlot {}

impl ListSlot {
    /// The slot of `l`, placed at `va`: allocates its page table.
    fn new(l: PendingList, va: Reservation) -> Result<ListSlot, AttachError> {
        let shift = l.page_size.trailing_zeros();
        let pages = (l.reserve >> shift) as usize;
        let table_len = (pages * 8).div_ceil(4096) * 4096;
        let table = sys::alloc_table(table_len).map_err(|source| AttachError::Map {
            list: l.id,
            va: 0,
            len: table_len as u64,
            source,
        })?;
        Ok(ListSlot {
            id: l.id,
            shift,
            exp_base: l.exp_base,
            local_base: va.base,
            reserve: va.len,
            same_va: va.same_va,
            fd: l.fd,
            va_range: va,
            // SAFETY: alloc_table never returns 0 (mmap failure is an error).
            entries: unsafe { NonNull::new_unchecked(table as *mut AtomicU64) },
            pages,
            table_len,
            mapped: AtomicUsize::new(0),
            hwm: AtomicUsize::new(0),
        })
    }

    #[inline]
    fn entry(&self, i: usize) -> &AtomicU64 {
        debug_assert!(i < self.pages);
        // SAFETY: `i < pages` (callers check against `reserve`), the table
        // holds `pages` zero-initialised AtomicU64 and lives as long as `self`;
        // it is private to this process.
        unsafe { &*self.entries.as_ptr().add(i) }
    }

    pub(crate) fn page_size(&self) -> usize {
        1 << self.shift
    }

    pub(crate) fn pages(&self) -> usize {
        self.pages
    }

    /// Maps pages `[first, first + iovas.len())` (already checked to lie
    /// inside the list and to have page-aligned IOVAs); pages mapped
    /// already only get their IOVA updated.
    pub(crate) fn map(&self, first: usize, iovas: &[u64]) -> Result<(), AttachError> {
        let ps = self.page_size();
        let mut i = 0;
        while i < iovas.len() {
            // Relaxed: this thread is the table's only writer.
            if self.entry(first + i).load(Ordering::Relaxed) & MAPPED != 0 {
                i += 1;
                continue;
            }
            let start = i;
            // Relaxed: as above.
            while i < iovas.len() && self.entry(first + i).load(Ordering::Relaxed) & MAPPED == 0 {
                i += 1;
            }
            let addr = self.local_base + ((first + start) << self.shift);
            let len = (i - start) * ps;
            let off = ((first + start) << self.shift) as u64;
            let mut hole = false;
            // SAFETY: the range is inside this slot's reservation, and its
            // pages are unmapped here (entries zero), so nothing can
            // legitimately reference it.
            let r = unsafe { sys::map_shared_fixed(addr, len, &self.fd, off, &mut hole) };
            if hole {
                self.va_range.poison();
            }
            r.map_err(|source| AttachError::Map {
                list: self.id,
                va: addr as u64,
                len: len as u64,
                source,
            })?;
            // Relaxed: single writer; readers only bound their walk by it.
            self.mapped.fetch_add(i - start, Ordering::Relaxed);
        }
        for (k, &raw) in iovas.iter().enumerate() {
            let e = match Iova::from_raw(raw) {
                Some(iova) => iova.0 | MAPPED,
                None => MAPPED | NO_IOVA,
            };
            // Release: pairs with the Acquire loads in the lookups, so a
            // reader that sees the entry sees the mapping made above.
            self.entry(first + k).store(e, Ordering::Release);
        }
        let end = first + iovas.len();
        // Relaxed: single writer.
        if self.hwm.load(Ordering::Relaxed) < end {
            // Release: pairs with the Acquire load in `walk`.
            self.hwm.store(end, Ordering::Release);
        }
        Ok(())
    }

    /// Unmaps pages `[first, first + count)` (checked to lie inside the list).
    pub(crate) fn unmap(&self, first: usize, count: usize) {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for p in first..first + count {
            // Release: pairs with the Acquire loads in the lookups (a reader
            // that sees 0 does not use the page); Acquire: pairs with the
            // Release store in `map` (single writer, so only for form).
            let old = self.entry(p).swap(0, Ordering::AcqRel);
            if old & MAPPED != 0 {
                match runs.last_mut() {
                    Some((s, c)) if *s + *c == p => *c += 1,
                    _ => runs.push((p, 1)),
                }
            }
        }
        for (s, c) in runs {
            // SAFETY: inside our reservation; the exporter withdrew the
            // pages (the caller of `to_local` was told in the docs that
            // addresses of withdrawn pages stop being valid).
            let r = unsafe {
                sys::unmap_to_reserved(self.local_base + (s << self.shift), c << self.shift)
            };
            if r.is_err() {
                // The range may be a hole something else maps into later.
                self.va_range.poison();
            }
            // Relaxed: single writer.
            self.mapped.fetch_sub(c, Ordering::Relaxed);
        }
    }

    pub(crate) fn placement(&self) -> ListPlacement {
        ListPlacement {
            list: self.id,
            page_size: self.page_size(),
            exporter_base: self.exp_base,
            local_base: self.local_base,
            reserve: self.reserve,
            // Relaxed: a count for reports.
            mapped_pages: self.mapped.load(Ordering::Relaxed),
            same_va: self.same_va,
        }
    }

    /// Whether every page of `[off, off + len)` (len ≥ 1, inside) is mapped.
    #[inline]
    fn all_mapped(&self, off: usize, len: usize) -> bool {
        let (a, b) = (off >> self.shift, (off + len - 1) >> self.shift);
        // Acquire: pairs with the Release stores in `map`.
        (a..=b).all(|p| self.entry(p).load(Ordering::Acquire) & MAPPED != 0)
    }
}

/// A list announced (and checked), not placed yet.
pub(crate) struct PendingList {
    pub(crate) id: u16,
    pub(crate) page_size: u64,
    pub(crate) exp_base: u64,
    pub(crate) reserve: u64,
    pub(crate) fd: OwnedFd,
}

/// A `PROT_NONE` reservation of ours, released when dropped.
struct Reservation {
    base: usize,
    len: usize,
    same_va: bool,
    /// A failed re-reserve left a hole in the range (F13): another mapping
    /// of this process may sit there now, so the range is never unmapped
    /// (its VA is leaked instead).
    poisoned: AtomicBool,
}

impl Reservation {
    fn poison(&self) {
        // Relaxed: read only by the drop, after the thread that sets it ended.
        self.poisoned.store(true, Ordering::Relaxed);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // Relaxed: see `poison`; `&mut self` orders it.
        if self.poisoned.load(Ordering::Relaxed) {
            return;
        }
        // SAFETY: our reservation, whole (not poisoned); whoever mapped into
        // it (a slot) is gone.
        unsafe { sys::release(self.base, self.len) };
    }
}

/// Places `lists` (every list of a snapshot, or one announced later) and
/// builds their slots. Every same-VA attempt (when `same_va_wanted`) comes
/// first, then the relocations, which avoid every exporter range of
/// `lists` and `known` (so a relocated list cannot take the range another
/// list wants), then the tables (so no table takes such a range either).
/// On failure everything reserved is released and the fds are closed.
pub(crate) fn place(
    lists: Vec<PendingList>,
    same_va_wanted: bool,
    known: &[(u64, u64)],
) -> Result<Vec<ListSlot>, AttachError> {
    let map_err = |l: &PendingList, va: u64, source| AttachError::Map {
        list: l.id,
        va,
        len: l.reserve,
        source,
    };
    for l in &lists {
        let pages = l.reserve >> l.page_size.trailing_zeros();
        if pages > MAX_LIST_PAGES {
            return Err(map_err(
                l,
                l.exp_base,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{pages} pages, at most {MAX_LIST_PAGES} per list"),
                ),
            ));
        }
    }
    let avoid: Vec<(u64, u64)> = known
        .iter()
        .copied()
        .chain(lists.iter().map(|l| (l.exp_base, l.reserve)))
        .collect();
    let mut placed: Vec<Option<Reservation>> = Vec::with_capacity(lists.len());
    for l in &lists {
        let r = if same_va_wanted {
            match sys::reserve_at(l.exp_base as usize, l.reserve as usize) {
                Ok(true) => Some(Reservation {
                    base: l.exp_base as usize,
                    len: l.reserve as usize,
                    same_va: true,
                    poisoned: AtomicBool::new(false),
                }),
                Ok(false) => None,
                Err(e) => return Err(map_err(l, l.exp_base, e)),
            }
        } else {
            None
        };
        placed.push(r);
    }
    for (l, r) in lists.iter().zip(placed.iter_mut()) {
        if r.is_none() {
            let len = l.reserve as usize;
            let base = relocate(len, l.page_size as usize, &avoid).map_err(|e| map_err(l, 0, e))?;
            *r = Some(Reservation {
                base,
                len,
                same_va: false,
                poisoned: AtomicBool::new(false),
            });
        }
    }
    lists
        .into_iter()
        .zip(placed)
        .map(|(l, r)| ListSlot::new(l, r.expect("placed above")))
        .collect()
}

/// Reserves `len` bytes anywhere, aligned to `page`, overlapping none of
/// the `avoid` ranges (reservations that do are kept while trying again,
/// then given back).
fn relocate(len: usize, page: usize, avoid: &[(u64, u64)]) -> std::io::Result<usize> {
    let overlaps = |b: usize| {
        avoid
            .iter()
            .any(|&(base, l)| (b as u64) < base + l && base < (b + len) as u64)
    };
    let mut held = Vec::new();
    let mut found = None;
    for _ in 0..16 {
        let b = match sys::reserve_anywhere(len, page) {
            Ok(b) => b,
            Err(e) => {
                found = Some(Err(e));
                break;
            }
        };
        if overlaps(b) {
            held.push(b);
        } else {
            found = Some(Ok(b));
            break;
        }
    }
    for b in held {
        // SAFETY: our own reservations, unused.
        unsafe { sys::release(b, len) };
    }
    found.unwrap_or_else(|| {
        Err(std::io::Error::other(
            "no VA apart from the exporter's lists",
        ))
    })
}

impl Drop for ListSlot {
    fn drop(&mut self) {
        // SAFETY: the table is this slot's; the slot is dropped only once
        // no lookup can reach it (`PeerTable` drop). The reservation (and
        // what is mapped in it) goes with the `va_range` field, after this.
        unsafe { sys::free_table(self.entries.as_ptr() as usize, self.table_len) };
    }
}

/// The lists of one attachment.
pub(crate) struct PeerTable {
    /// Each non-null slot is a `Box<ListSlot>` leaked into the table and
    /// freed only by the table's drop: a pointer read here is valid for as
    /// long as the `&PeerTable` it was read through.
    slots: [AtomicPtr<ListSlot>; MAX_LISTS],
    used: AtomicUsize,
}

impl PeerTable {
    pub(crate) fn new() -> PeerTable {
        PeerTable {
            slots: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            used: AtomicUsize::new(0),
        }
    }

    /// Publishes a new list (the caller checked there is room and the id
    /// is new). Single writer.
    pub(crate) fn push(&self, slot: ListSlot) {
        // Relaxed: single writer.
        let n = self.used.load(Ordering::Relaxed);
        assert!(n < MAX_LISTS, "checked by the caller");
        // Release: pairs with the Acquire load in `iter`, publishing the slot's fields.
        self.slots[n].store(Box::into_raw(Box::new(slot)), Ordering::Release);
        // Release: pairs with the Acquire load of `used` in `iter`.
        self.used.store(n + 1, Ordering::Release);
    }

    #[inline]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &ListSlot> + '_ {
        // Acquire: pairs with the Release store of `used` in `push`.
        let n = self.used.load(Ordering::Acquire).min(MAX_LISTS);
        self.slots[..n].iter().filter_map(|s| {
            // Acquire: pairs with the Release store in `push`.
            let p = s.load(Ordering::Acquire);
            // SAFETY: non-null slots are live boxes (invariant on `slots`).
            (!p.is_null()).then(|| unsafe { &*p })
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// The exporter ranges of the lists known.
    pub(crate) fn exporter_ranges(&self) -> Vec<(u64, u64)> {
        self.iter()
            .map(|s| (s.exp_base, s.reserve as u64))
            .collect()
    }

    pub(crate) fn get(&self, id: u16) -> Option<&ListSlot> {
        self.iter().find(|s| s.id == id)
    }

    #[inline]
    pub(crate) fn to_local(&self, exp_va: u64, len: usize) -> Option<NonNull<u8>> {
        for s in self.iter() {
            let off = exp_va.wrapping_sub(s.exp_base);
            if off < s.reserve as u64 {
                let off = off as usize;
                let len = len.max(1);
                if len > s.reserve - off || !s.all_mapped(off, len) {
                    return None;
                }
                return NonNull::new((s.local_base + off) as *mut u8);
            }
        }
        None
    }

    #[inline]
    pub(crate) fn to_exporter(&self, local: usize) -> Option<u64> {
        for s in self.iter() {
            let off = local.wrapping_sub(s.local_base);
            if off < s.reserve {
                return s.all_mapped(off, 1).then(|| s.exp_base + off as u64);
            }
        }
        None
    }

    #[inline]
    pub(crate) fn iova(&self, exp_va: u64) -> Option<Iova> {
        for s in self.iter() {
            let off = exp_va.wrapping_sub(s.exp_base);
            if off < s.reserve as u64 {
                // Acquire: pairs with the Release stores in `map`.
                let e = s.entry((off >> s.shift) as usize).load(Ordering::Acquire);
                if e & MAPPED == 0 || e & NO_IOVA != 0 {
                    return None;
                }
                let mask = (1u64 << s.shift) - 1;
                return Some(Iova((e & !0xfff) + (off & mask)));
            }
        }
        None
    }

    pub(crate) fn walk(&self, mut f: impl FnMut(&PeerPage)) {
        for s in self.iter() {
            // Acquire: pairs with the Release store in `map`.
            let hwm = s.hwm.load(Ordering::Acquire).min(s.pages);
            for p in 0..hwm {
                // Acquire: pairs with the Release stores in `map`.
                let e = s.entry(p).load(Ordering::Acquire);
                if e & MAPPED == 0 {
                    continue;
                }
                f(&PeerPage {
                    list: s.id,
                    exp_va: s.exp_base + ((p as u64) << s.shift),
                    local_va: s.local_base + (p << s.shift),
                    len: s.page_size(),
                    iova: (e & NO_IOVA == 0).then_some(Iova(e & !0xfff)),
                });
            }
        }
    }
}

impl Drop for PeerTable {
    fn drop(&mut self) {
        for s in &self.slots {
            // Relaxed: `&mut self`, no other access.
            let p = s.swap(std::ptr::null_mut(), Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: leaked by `push`, freed once here.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}
