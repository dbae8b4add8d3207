//! [`RawRing`]: the part of a ring every mode shares — the slot array, the
//! memory it lives in, both sides' indices, moving values in and out of
//! slots, and dropping what is left when the ring goes.

use std::marker::PhantomData;
use std::mem::needs_drop;
use std::ptr::NonNull;

use crate::indices::Indices;
use crate::mem::RingMemory;
use crate::sync::{new_slot, AtomicU64, Ordering, Slot};

/// Slots, indices and memory of a ring, with no opinion on how threads take
/// turns (that is the [`Mode`](crate::Mode) of each end).
pub struct RawRing<T> {
    /// Slot array: `slots` entries, aligned to 64, inside `memory` (or in
    /// memory `build_in`'s caller keeps valid). A slot at index `i` is
    /// written only by the producer that claimed `i` and read (moved out)
    /// only by the consumer that claimed `i`, each between its claim (head
    /// move) and its publication (tail move); the [`Side`](crate::indices::Side)
    /// invariants keep these windows disjoint. Slots from the consumer tail
    /// to the producer tail hold initialised values, owned by the ring.
    slots_ptr: NonNull<Slot<T>>,
    /// Number of slots, a power of two, at least the capacity.
    slots: u32,
    /// `slots - 1`.
    mask: u32,
    /// Index both sides start at (and `reset` returns to).
    initial: u32,
    /// The owner of the memory `slots_ptr` points into (`None` under
    /// `build_in`, whose caller keeps the memory alive). Dropped after the
    /// slots, when the ring drops.
    memory: Option<Box<dyn RingMemory>>,
    /// Both sides' heads and tails.
    pub(crate) ix: Indices,
    /// Live ends of each side once the ring is split (see
    /// [`Producer::is_disconnected`](crate::Producer::is_disconnected));
    /// 0 on an unsplit ring.
    pub(crate) ends: EndCounts,
    _t: PhantomData<T>,
}

/// How many producer and consumer ends of a split ring are alive.
#[derive(Debug)]
pub(crate) struct EndCounts {
    pub(crate) producers: AtomicU64,
    pub(crate) consumers: AtomicU64,
}

// SAFETY: a ring moves `T` values between threads and nothing else; the slot
// array is owned through `memory` (a `Send + Sync` owner), or borrowed for
// the ring's life under `build_in`'s contract.
unsafe impl<T: Send> Send for RawRing<T> {}
// SAFETY: every slot access is fenced by the head/tail protocol (see the
// `slots_ptr` invariant), so shared use from many threads only moves `T`s
// from one thread to another; no `&T` is shared across threads except
// through a zero-copy read guard, which a single thread holds.
unsafe impl<T: Send> Sync for RawRing<T> {}

impl<T> Drop for RawRing<T> {
    fn drop(&mut self) {
        if needs_drop::<T>() {
            // Relaxed: `&mut self` means every other thread's use of the ring
            // happened before (they gave up their handles through a join or
            // an `Arc` drop, both synchronising).
            let c = self.ix.cons.tail.load(Ordering::Relaxed);
            let p = self.ix.prod.tail.load(Ordering::Relaxed);
            // SAFETY: slots `c..p` hold the values the ring owns (the
            // `slots_ptr` invariant); nothing reads them after this.
            unsafe { self.drop_values(c, p.wrapping_sub(c)) };
        }
        // SAFETY: `slots_ptr` holds `slots` slot cells (written by `new`);
        // dropping a cell is a no-op under std and ends loom's tracking
        // under loom. The values in them were dropped just above.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.slots_ptr.as_ptr(),
                self.slots as usize,
            ));
        }
        // `memory` (if owned) drops after this body, freeing the region.
    }
}

impl<T> RawRing<T> {
    /// A ring of `slots` slots (a power of two) holding up to `capacity`,
    /// its slots at `ptr`.
    ///
    /// # Safety
    ///
    /// - `ptr` is valid and aligned for `slots` slots and exclusively the
    ///   ring's for its life (if `memory` is `Some`, for as long as it lives);
    /// - `slots` is a power of two no larger than 2³⁰, and `capacity <= slots`.
    pub(crate) unsafe fn new(
        ptr: NonNull<Slot<T>>,
        memory: Option<Box<dyn RingMemory>>,
        slots: u32,
        capacity: u32,
        initial: u32,
        max_distance: (u32, u32),
    ) -> Self {
        debug_assert!(slots.is_power_of_two() && capacity <= slots);
        for i in 0..slots as usize {
            // SAFETY: `i < slots`, within the memory the caller vouched for.
            unsafe { ptr.as_ptr().add(i).write(new_slot()) };
        }
        RawRing {
            slots_ptr: ptr,
            slots,
            mask: slots - 1,
            initial,
            memory,
            ix: Indices::new(capacity, initial, max_distance),
            ends: EndCounts {
                producers: AtomicU64::new(0),
                consumers: AtomicU64::new(0),
            },
            _t: PhantomData,
        }
    }

    /// Elements the ring can hold.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.ix.capacity as usize
    }

    /// Elements in the ring now.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.ix.used() as usize
    }

    /// Whether the slots are in memory the ring owns (not `build_in`'s).
    pub(crate) fn owns_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// Addresses of the slot array.
    pub(crate) fn memory_range(&self) -> std::ops::Range<usize> {
        let start = self.slots_ptr.as_ptr() as usize;
        start..start + self.slots as usize * std::mem::size_of::<Slot<T>>()
    }

    /// Drops every value in the ring and returns both sides to the initial
    /// index; `&mut self` proves no other thread is inside.
    pub(crate) fn reset(&mut self) {
        if needs_drop::<T>() {
            // Relaxed: exclusive access, as in `drop`.
            let c = self.ix.cons.tail.load(Ordering::Relaxed);
            let p = self.ix.prod.tail.load(Ordering::Relaxed);
            // Forget the values first: a panicking `Drop` then leaks the
            // rest instead of dropping them twice.
            self.ix.reset(self.initial);
            // SAFETY: slots `c..p` held the ring's values; the indices no
            // longer cover them, so they are dropped only here.
            unsafe { self.drop_values(c, p.wrapping_sub(c)) };
        } else {
            self.ix.reset(self.initial);
        }
    }

    /// Pointer to slot `index` (wrapped).
    #[inline(always)]
    fn slot(&self, index: u32) -> *mut Slot<T> {
        // `wrapping_add`: no dereference here; `index & mask < slots`.
        self.slots_ptr
            .as_ptr()
            .wrapping_add((index & self.mask) as usize)
    }

    /// Moves `n` values from `src` into slots `start..start + n`.
    ///
    /// # Safety
    ///
    /// - the caller's side has claimed slots `start..start + n` for writing
    ///   (`n <= slots`), see the `slots_ptr` invariant;
    /// - `src` is valid for `n` reads, and the caller forgets the values
    ///   there (they are the ring's now) unless `T: Copy`.
    #[inline(always)]
    pub(crate) unsafe fn write_slots(&self, start: u32, src: *const T, n: u32) {
        let n = n as usize;
        #[cfg(not(loom))]
        {
            let idx = (start & self.mask) as usize;
            let base = self.slots_ptr.as_ptr().cast::<T>();
            let room = self.slots as usize - idx;
            if n <= room {
                // SAFETY: `Slot<T>` is `UnsafeCell<MaybeUninit<T>>`, laid out
                // as `T`; `idx + n <= slots`, and the claimed slots are ours
                // to write.
                unsafe { std::ptr::copy_nonoverlapping(src, base.add(idx), n) };
            } else {
                // SAFETY: as above, in two runs: `idx..slots` and
                // `0..n - room` (`n - room <= idx` since `n <= slots`).
                unsafe {
                    std::ptr::copy_nonoverlapping(src, base.add(idx), room);
                    std::ptr::copy_nonoverlapping(src.add(room), base, n - room);
                }
            }
        }
        #[cfg(loom)]
        for i in 0..n {
            // SAFETY: the slot is claimed by us; `src` is valid for `n` reads.
            unsafe {
                let v = src.add(i).read();
                (*self.slot(start.wrapping_add(i as u32))).with_mut(|p| (*p).write(v));
            }
        }
    }

    /// Moves slots `start..start + n` out to `dst`.
    ///
    /// # Safety
    ///
    /// - the caller's side has claimed slots `start..start + n` for reading
    ///   and the producer published them (so they are initialised); after
    ///   this the values are the caller's (the slots are logically empty);
    /// - `dst` is valid for `n` writes.
    #[inline(always)]
    pub(crate) unsafe fn read_slots(&self, start: u32, dst: *mut T, n: u32) {
        let n = n as usize;
        #[cfg(not(loom))]
        {
            let idx = (start & self.mask) as usize;
            let base = self.slots_ptr.as_ptr().cast::<T>().cast_const();
            let room = self.slots as usize - idx;
            if n <= room {
                // SAFETY: as in `write_slots`; the slots hold published
                // elements.
                unsafe { std::ptr::copy_nonoverlapping(base.add(idx), dst, n) };
            } else {
                // SAFETY: as in `write_slots`, two runs.
                unsafe {
                    std::ptr::copy_nonoverlapping(base.add(idx), dst, room);
                    std::ptr::copy_nonoverlapping(base, dst.add(room), n - room);
                }
            }
        }
        #[cfg(loom)]
        for i in 0..n {
            // SAFETY: the slot is claimed by us and initialised.
            unsafe {
                let v =
                    (*self.slot(start.wrapping_add(i as u32))).with(|p| (*p).assume_init_read());
                dst.add(i).write(v);
            }
        }
    }

    /// Moves one value out of slot `index`: the single-element path, with
    /// no run split.
    ///
    /// # Safety
    ///
    /// As for [`read_slots`](Self::read_slots) with `n = 1`.
    #[inline(always)]
    pub(crate) unsafe fn read_one(&self, index: u32) -> T {
        // SAFETY: the slot is inside the array; it is ours to read and
        // initialised (caller).
        #[cfg(not(loom))]
        unsafe {
            self.slot(index).cast::<T>().read()
        }
        // SAFETY: as above.
        #[cfg(loom)]
        unsafe {
            (*self.slot(index)).with(|p| (*p).assume_init_read())
        }
    }

    /// Moves `v` into slot `index`: the single-element path.
    ///
    /// # Safety
    ///
    /// The caller's side has claimed slot `index` for writing.
    #[inline(always)]
    pub(crate) unsafe fn write_one(&self, index: u32, v: T) {
        // SAFETY: the slot is inside the array, laid out as `T`, and ours
        // to write (caller).
        #[cfg(not(loom))]
        unsafe {
            self.slot(index).cast::<T>().write(v);
        }
        // SAFETY: as above.
        #[cfg(loom)]
        unsafe {
            (*self.slot(index)).with_mut(|p| (*p).write(v));
        }
    }

    /// A shared view of the value in slot `index`.
    ///
    /// # Safety
    ///
    /// The caller's side has claimed slot `index` for reading, the producer
    /// published it, and the caller neither moves it out nor publishes the
    /// slot while the reference lives.
    #[inline(always)]
    pub(crate) unsafe fn get_ref(&self, index: u32) -> &T {
        // SAFETY: initialised and not written while the borrow lives
        // (caller).
        #[cfg(not(loom))]
        unsafe {
            &*self.slot(index).cast::<T>()
        }
        // SAFETY: as above (loom tracks the access only while `with` runs).
        #[cfg(loom)]
        unsafe {
            (*self.slot(index)).with(|p| &*(*p).as_ptr())
        }
    }

    /// Drops the values in slots `start..start + n` in place, one by one;
    /// if one's `Drop` panics the rest are leaked, never dropped twice.
    ///
    /// # Safety
    ///
    /// The slots hold initialised values that are the caller's to drop and
    /// that nothing reads afterwards.
    pub(crate) unsafe fn drop_values(&self, start: u32, n: u32) {
        for i in 0..n {
            let at = self.slot(start.wrapping_add(i));
            // SAFETY: initialised and ours to drop (caller).
            #[cfg(not(loom))]
            unsafe {
                std::ptr::drop_in_place(at.cast::<T>());
            }
            // SAFETY: as above.
            #[cfg(loom)]
            unsafe {
                (*at).with_mut(|p| (*p).assume_init_drop());
            }
        }
    }

    /// The slots `start..start + n` as up to two runs of the array.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn runs(&self, start: u32, n: u32) -> (*mut T, usize, *mut T, usize) {
        let idx = (start & self.mask) as usize;
        let n = n as usize;
        let first = n.min(self.slots as usize - idx);
        let base = self.slots_ptr.as_ptr().cast::<T>();
        // `wrapping_add`: no dereference here; `idx < slots`, in bounds.
        (base.wrapping_add(idx), first, base, n - first)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::mem::HeapMemory;
    use std::alloc::Layout;
    use std::rc::Rc;

    fn raw<T>(slots: u32, capacity: u32, initial: u32) -> RawRing<T> {
        let layout = Layout::from_size_align(
            (slots as usize * std::mem::size_of::<T>()).max(1),
            64.max(std::mem::align_of::<T>()),
        )
        .unwrap();
        let mut mem = HeapMemory::new(layout).unwrap();
        let ptr = crate::mem::RingMemory::base_ptr(&mut mem).cast();
        // SAFETY: `mem` is sized and aligned for `slots` slots, and moves
        // into the ring, which keeps it.
        unsafe { RawRing::new(ptr, Some(Box::new(mem)), slots, capacity, initial, (0, 0)) }
    }

    #[test]
    fn runs_split_at_the_end_of_the_array() {
        let r = raw::<u64>(8, 8, 0);
        let (a, an, b, bn) = r.runs(6, 4);
        assert_eq!((an, bn), (2, 2));
        assert_eq!(b as usize + 6 * 8, a as usize);
        let (_, an, _, bn) = r.runs(u32::MAX, 3); // slot 7, then 0 and 1
        assert_eq!((an, bn), (1, 2));
        let (_, an, _, bn) = r.runs(8, 8);
        assert_eq!((an, bn), (8, 0));
    }

    #[test]
    fn copies_wrap_and_round_trip() {
        let r = raw::<u32>(4, 4, 0);
        let src = [1, 2, 3];
        // SAFETY: no other side exists; slots 3, 0, 1 are ours.
        unsafe { r.write_slots(3, src.as_ptr(), 3) };
        let mut out = [0; 3];
        // SAFETY: written just above.
        unsafe { r.read_slots(3, out.as_mut_ptr(), 3) };
        assert_eq!(out, src);
        // SAFETY: slot 2 is ours; then read back.
        unsafe { r.write_one(6, 9) };
        // SAFETY: written just above.
        assert_eq!(unsafe { (r.read_one(2), *r.get_ref(6)) }, (9, 9));
    }

    #[test]
    fn drop_and_reset_drop_only_what_is_in_the_ring() {
        let tok = Rc::new(());
        let mut r = raw::<Rc<()>>(4, 4, u32::MAX - 1);
        for i in 0..3u32 {
            // SAFETY: single-threaded: slots MAX-1, MAX, 0 are free.
            unsafe { r.write_one((u32::MAX - 1).wrapping_add(i), Rc::clone(&tok)) };
        }
        r.ix.prod.tail.store(1, Ordering::Relaxed);
        // Consume the first by hand: it is ours now, not the ring's.
        // SAFETY: published above.
        let first = unsafe { r.read_one(u32::MAX - 1) };
        r.ix.cons.tail.store(u32::MAX, Ordering::Relaxed);
        assert_eq!(Rc::strong_count(&tok), 4);
        r.reset();
        assert_eq!(Rc::strong_count(&tok), 2, "reset dropped the two left");
        assert_eq!(r.len(), 0);
        // SAFETY: slot MAX-1 is free again after the reset.
        unsafe { r.write_one(u32::MAX - 1, first) };
        r.ix.prod.tail.store(u32::MAX, Ordering::Relaxed);
        drop(r);
        assert_eq!(Rc::strong_count(&tok), 1, "drop dropped the one left");
    }
}
