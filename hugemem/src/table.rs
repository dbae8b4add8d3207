//! The translation table: one [`Segment`] per list (page-size list or
//! external range), each a VA range with a flat array of per-page IOVAs, and
//! a fixed array of segment slots that lookups scan without locks.

use std::sync::Arc;

use crate::sync::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};

use crate::{Iova, Node};

/// Maximum number of segments (lists plus external ranges) per provider.
#[cfg(not(loom))]
pub(crate) const MAX_SEGMENTS: usize = 64;
/// Under loom, few slots keep the model small.
#[cfg(loom)]
pub(crate) const MAX_SEGMENTS: usize = 4;

/// One VA range with per-page IOVAs.
#[derive(Debug)]
pub(crate) struct Segment {
    /// First byte of the range; aligned to `1 << shift`.
    pub base: usize,
    /// Length of the range in bytes; a multiple of `1 << shift`.
    pub len: usize,
    /// log2 of the page size.
    pub shift: u32,
    /// NUMA node of the pages (`None` when unknown).
    pub node: Option<Node>,
    /// Memory the provider did not allocate.
    pub external: bool,
    /// Index of the provider list this segment belongs to.
    pub list: usize,
    /// Pages at and past this index have never been mapped (so walks stop
    /// there). Raised under the provider's state lock.
    hwm: AtomicUsize,
    /// Per page, the raw IOVA stored inverted (`!raw`, see
    /// [`Iova::to_raw`]): a zeroed entry reads as "no IOVA" (the raw
    /// [`Iova::BAD`]), so a fresh table needs no initialising pass. Written
    /// only under the provider's state lock: set after the page is mapped,
    /// cleared before it is unmapped.
    iova_inv: Box<[AtomicU64]>,
}

#[cfg(not(loom))]
const _: () = assert!(std::mem::align_of::<AtomicU64>() == std::mem::align_of::<u64>());
#[cfg(not(loom))]
const _: () = assert!(std::mem::size_of::<AtomicU64>() == std::mem::size_of::<u64>());

impl Segment {
    pub(crate) fn new(
        base: usize,
        len: usize,
        shift: u32,
        node: Option<Node>,
        external: bool,
        list: usize,
    ) -> Segment {
        let pages = len >> shift;
        #[cfg(not(loom))]
        let iova_inv = {
            // A zeroed Vec comes from calloc: untouched pages stay unbacked until used.
            let v: Vec<u64> = vec![0u64; pages];
            let raw = Box::into_raw(v.into_boxed_slice());
            // SAFETY: AtomicU64 has the size and alignment of u64 (asserted above)
            // and the same bit validity, so the allocation is a valid [AtomicU64].
            unsafe { Box::from_raw(raw as *mut [AtomicU64]) }
        };
        #[cfg(loom)]
        let iova_inv: Box<[AtomicU64]> = (0..pages).map(|_| AtomicU64::new(0)).collect();
        Segment {
            base,
            len,
            shift,
            node,
            external,
            list,
            hwm: AtomicUsize::new(0),
            iova_inv,
        }
    }

    #[inline]
    pub(crate) fn pages(&self) -> usize {
        self.len >> self.shift
    }

    #[inline]
    pub(crate) fn page_size(&self) -> usize {
        1 << self.shift
    }

    #[inline]
    pub(crate) fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }

    /// IOVA of page `i` (`None`: unmapped, or no IOVA).
    #[inline]
    pub(crate) fn page_iova(&self, i: usize) -> Option<Iova> {
        // Acquire: pairs with the Release store in `set_page_iova`.
        Iova::from_raw(!self.iova_inv[i].load(Ordering::Acquire))
    }

    /// IOVA of `addr`, which must be inside the range (`None`: the page
    /// has none, or is not mapped).
    #[inline]
    pub(crate) fn lookup(&self, addr: usize) -> Option<Iova> {
        let off = addr.wrapping_sub(self.base);
        debug_assert!(off < self.len);
        // Acquire: pairs with the Release store in `set_page_iova`.
        let inv = self.iova_inv[off >> self.shift].load(Ordering::Acquire);
        if inv == 0 {
            None
        } else {
            Some(Iova(
                (!inv).wrapping_add((off & ((1 << self.shift) - 1)) as u64),
            ))
        }
    }

    /// Records the IOVA of page `i` (`None` clears it).
    pub(crate) fn set_page_iova(&self, i: usize, iova: Option<Iova>) {
        // Release: pairs with the Acquire loads in `lookup` / `page_iova`.
        self.iova_inv[i].store(!Iova::to_raw(iova), Ordering::Release);
        // Relaxed: single writer (state lock); readers only use it to bound
        // a walk, and load each entry with Acquire themselves.
        if self.hwm.load(Ordering::Relaxed) <= i {
            // Release: pairs with the Acquire load in `walk_len`.
            self.hwm.store(i + 1, Ordering::Release);
        }
    }

    /// Pages worth walking: one past the highest page ever mapped.
    pub(crate) fn walk_len(&self) -> usize {
        // Acquire: pairs with the Release store in `set_page_iova`.
        self.hwm.load(Ordering::Acquire)
    }
}

/// Fixed slots of segment pointers, scanned in order by `virt2iova`.
#[derive(Debug)]
pub(crate) struct SegmentTable {
    /// Each non-null slot points to a `Segment` kept alive by an `Arc` held
    /// in the provider's state (live lists or the graveyard) until the
    /// provider itself is dropped, so a pointer read here stays valid for
    /// as long as the `&Provider` it was read through.
    slots: [AtomicPtr<Segment>; MAX_SEGMENTS],
    /// One past the highest slot ever used.
    used: AtomicUsize,
}

impl SegmentTable {
    pub(crate) fn new() -> SegmentTable {
        SegmentTable {
            slots: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            used: AtomicUsize::new(0),
        }
    }

    /// Publishes `seg` in a free slot; returns the slot index. Called under
    /// the provider's state lock (single writer).
    pub(crate) fn publish(&self, seg: &Arc<Segment>) -> Option<usize> {
        // Relaxed: writers are serialised by the state lock.
        let used = self.used.load(Ordering::Relaxed);
        let idx = (0..MAX_SEGMENTS).find(|&i| {
            // Relaxed: single writer under the state lock.
            self.slots[i].load(Ordering::Relaxed).is_null()
        })?;
        // Release: pairs with the Acquire load in `find`, publishing the
        // segment's fields.
        self.slots[idx].store(Arc::as_ptr(seg).cast_mut(), Ordering::Release);
        if idx >= used {
            // Release: pairs with the Acquire load of `used` in `find`.
            self.used.store(idx + 1, Ordering::Release);
        }
        Some(idx)
    }

    /// Clears slot `idx` (the segment stays alive in the graveyard).
    pub(crate) fn retire(&self, idx: usize) {
        // Release: pairs with the Acquire load in `find`.
        self.slots[idx].store(std::ptr::null_mut(), Ordering::Release);
    }

    /// The segment containing `addr`.
    #[inline]
    pub(crate) fn find(&self, addr: usize) -> Option<&Segment> {
        // Acquire: pairs with the Release store of `used` in `publish`.
        let used = self.used.load(Ordering::Acquire);
        for slot in &self.slots[..used.min(MAX_SEGMENTS)] {
            // Acquire: pairs with the Release store in `publish`.
            let p = slot.load(Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            // SAFETY: non-null slots point to live segments (invariant on `slots`).
            let seg = unsafe { &*p };
            if seg.contains(addr) {
                return Some(seg);
            }
        }
        None
    }

    /// Calls `f` on every published segment.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Segment) -> bool) {
        // Acquire: pairs with the Release store of `used` in `publish`.
        let used = self.used.load(Ordering::Acquire);
        for slot in &self.slots[..used.min(MAX_SEGMENTS)] {
            // Acquire: pairs with the Release store in `publish`.
            let p = slot.load(Ordering::Acquire);
            if p.is_null() {
                continue;
            }
            // SAFETY: non-null slots point to live segments (invariant on `slots`).
            if !f(unsafe { &*p }) {
                return;
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fresh_entries_read_as_no_iova_and_lookup_adds_the_offset() {
        // 4 pages of 4 KiB at 0x10000.
        let seg = Segment::new(0x10000, 4 * 4096, 12, None, false, 0);
        assert_eq!(seg.pages(), 4);
        assert_eq!(seg.page_size(), 4096);
        assert!(seg.contains(0x10000) && seg.contains(0x13fff));
        assert!(!seg.contains(0x14000) && !seg.contains(0xffff));
        // A zeroed (inverted) entry is "no IOVA".
        assert_eq!(seg.page_iova(2), None);
        assert_eq!(seg.lookup(0x12345), None);
        assert_eq!(seg.walk_len(), 0);
        seg.set_page_iova(2, Some(Iova(0xab_c000)));
        assert_eq!(seg.page_iova(2), Some(Iova(0xab_c000)));
        assert_eq!(seg.lookup(0x12345), Some(Iova(0xab_c345)));
        assert_eq!(seg.walk_len(), 3, "one past the highest page set");
        seg.set_page_iova(0, Some(Iova(0x1000)));
        assert_eq!(seg.walk_len(), 3, "the mark only rises");
        // Clearing stores the raw "none", which reads back as no IOVA.
        seg.set_page_iova(2, None);
        assert_eq!(seg.lookup(0x12000), None);
        // IOVA 0 is a real IOVA (stored as !0), not "none".
        seg.set_page_iova(3, Some(Iova(0)));
        assert_eq!(seg.lookup(0x13008), Some(Iova(8)));
    }

    #[test]
    fn table_publishes_finds_and_retires() {
        let table = SegmentTable::new();
        let a = Arc::new(Segment::new(0x10000, 4096, 12, None, false, 0));
        let b = Arc::new(Segment::new(0x40000, 8192, 12, None, true, 1));
        assert_eq!(table.publish(&a), Some(0));
        assert_eq!(table.publish(&b), Some(1));
        assert_eq!(table.find(0x40fff).map(|s| s.list), Some(1));
        assert_eq!(table.find(0x10010).map(|s| s.list), Some(0));
        assert!(table.find(0x20000).is_none());
        table.retire(0);
        assert!(table.find(0x10010).is_none());
        // The freed slot is reused first.
        let c = Arc::new(Segment::new(0x80000, 4096, 12, None, false, 2));
        assert_eq!(table.publish(&c), Some(0));
        let mut seen = Vec::new();
        table.for_each(|s| {
            seen.push(s.list);
            true
        });
        assert_eq!(seen, vec![2, 1]);
        // Full: no slot.
        let rest: Vec<_> = (3..)
            .map(|i| Arc::new(Segment::new(0x100_0000 * i, 4096, 12, None, false, i)))
            .take(MAX_SEGMENTS - 2)
            .collect();
        for s in &rest {
            assert!(table.publish(s).is_some());
        }
        assert_eq!(
            table.publish(&Arc::new(Segment::new(0x1000, 4096, 12, None, false, 99))),
            None
        );
    }
}
