//! [`RingBuilder`]: capacity and sizing, each side's [`Mode`], the RTS
//! distance limits, and where the slots live (heap, an owned
//! [`RingMemory`], or caller memory).

use std::alloc::Layout;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::error::{BuildError, RejectedMemory};
use crate::mem::{HeapMemory, RingMemory};
use crate::mode::{Mode, Multi, Rts};
use crate::raw::RawRing;
use crate::ring::Ring;
use crate::sync::Slot;

/// The largest capacity a ring can be asked for (2³⁰ elements).
///
/// ```
/// use pktmem_ring::{BuildError, Ring, MAX_CAPACITY};
/// let e = Ring::<()>::new(MAX_CAPACITY + 1).unwrap_err();
/// assert_eq!(e, BuildError::TooLarge { requested: MAX_CAPACITY + 1, max: MAX_CAPACITY });
/// ```
pub const MAX_CAPACITY: usize = 1 << 30;

/// Alignment, in bytes, of a ring's slot array (one cache line at least).
const SLOT_ALIGN: usize = 64;

/// DPDK's default RTS head-tail distance is the capacity divided by this.
const RTS_DEFAULT_DISTANCE_DIV: u32 = 8;

/// Builds a [`Ring`]: capacity, each side's mode (`P` for the producers,
/// `C` for the consumers, [`Multi`] unless set), sizing, and where the
/// slots live. Made by [`Ring::builder`].
///
/// ```
/// use pktmem_ring::{Hts, Ring, Single};
/// let (p, c) = Ring::<[u8; 20]>::builder(1000)
///     .producer(Single)
///     .consumer(Hts)
///     .build()
///     .unwrap()
///     .split();
/// assert_eq!(p.capacity(), 1000);
/// let c2 = c.clone(); // HTS consumers may be many
/// # drop(c2);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct RingBuilder<T, P = Multi, C = Multi> {
    capacity: usize,
    /// DPDK sizing: `capacity` a power of two, holding `capacity - 1`.
    dpdk: bool,
    initial: u32,
    prod_max_distance: Option<u32>,
    cons_max_distance: Option<u32>,
    _t: PhantomData<fn() -> T>,
    _modes: PhantomData<(P, C)>,
}

impl<T, P: Mode, C: Mode> fmt::Debug for RingBuilder<T, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuilder")
            .field("capacity", &self.capacity)
            .field("dpdk_sizing", &self.dpdk)
            .field("producer", &P::NAME)
            .field("consumer", &C::NAME)
            .field("initial_index", &self.initial)
            .field("producer_max_distance", &self.prod_max_distance)
            .field("consumer_max_distance", &self.cons_max_distance)
            .finish()
    }
}

impl<T, P, C> Clone for RingBuilder<T, P, C> {
    fn clone(&self) -> Self {
        RingBuilder { ..*self }
    }
}

impl<T: Send> RingBuilder<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        RingBuilder {
            capacity,
            dpdk: false,
            initial: 0,
            prod_max_distance: None,
            cons_max_distance: None,
            _t: PhantomData,
            _modes: PhantomData,
        }
    }
}

impl<T: Send, P: Mode, C: Mode> RingBuilder<T, P, C> {
    /// Sets how producers take turns: [`Single`](crate::Single),
    /// [`Multi`] (the default), [`Hts`](crate::Hts) or [`Rts`]. The mode
    /// becomes part of the ring's type and of its producer end's.
    ///
    /// ```
    /// use pktmem_ring::{Producer, Ring, Rts};
    /// let (p, _c) = Ring::<u64>::builder(64).producer(Rts).build().unwrap().split();
    /// let _: Producer<u64, Rts> = p;
    /// ```
    pub fn producer<P2: Mode>(self, mode: P2) -> RingBuilder<T, P2, C> {
        let _ = mode;
        RingBuilder {
            capacity: self.capacity,
            dpdk: self.dpdk,
            initial: self.initial,
            prod_max_distance: None,
            cons_max_distance: self.cons_max_distance,
            _t: PhantomData,
            _modes: PhantomData,
        }
    }

    /// Sets how consumers take turns (default [`Multi`]); see
    /// [`producer`](Self::producer).
    ///
    /// ```
    /// use pktmem_ring::{Consumer, Hts, Ring};
    /// let (_p, c) = Ring::<u64>::builder(64).consumer(Hts).build().unwrap().split();
    /// let _: Consumer<u64, Hts> = c.clone(); // HTS consumers may be many
    /// ```
    pub fn consumer<C2: Mode>(self, mode: C2) -> RingBuilder<T, P, C2> {
        let _ = mode;
        RingBuilder {
            capacity: self.capacity,
            dpdk: self.dpdk,
            initial: self.initial,
            prod_max_distance: self.prod_max_distance,
            cons_max_distance: None,
            _t: PhantomData,
            _modes: PhantomData,
        }
    }

    /// DPDK's sizing: the capacity asked for must be a power of two and the
    /// ring holds one less (as `rte_ring_create` without
    /// `RING_F_EXACT_SZ`). Without it a ring holds exactly what was asked
    /// for, any count.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// assert_eq!(Ring::<u32>::builder(4096).build().unwrap().capacity(), 4096);
    /// assert_eq!(Ring::<u32>::builder(4096).dpdk_sizing().build().unwrap().capacity(), 4095);
    /// ```
    pub fn dpdk_sizing(mut self) -> Self {
        self.dpdk = true;
        self
    }

    /// Starts the free-running indices at `index` instead of 0, so a test can
    /// cross the `u32` wrap within a few operations.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u8>::builder(3).initial_index(u32::MAX - 1).build().unwrap();
    /// for i in 0..10u8 {
    ///     r.enqueue(i).unwrap();
    ///     assert_eq!(r.dequeue(), Some(i));
    /// }
    /// ```
    pub fn initial_index(mut self, index: u32) -> Self {
        self.initial = index;
        self
    }

    /// Number of slots (a power of two) and usable capacity, or why not.
    fn geometry(&self) -> Result<(u32, u32), BuildError> {
        let c = self.capacity;
        if c == 0 {
            return Err(BuildError::ZeroCapacity);
        }
        if c > MAX_CAPACITY {
            return Err(BuildError::TooLarge {
                requested: c,
                max: MAX_CAPACITY,
            });
        }
        if !self.dpdk {
            // `c <= 2^30`, so the rounding stays within 2^30.
            Ok((c.next_power_of_two() as u32, c as u32))
        } else if c.is_power_of_two() {
            // DPDK semantics: one slot stays empty, so a ring of 1 holds 0.
            Ok((c as u32, c as u32 - 1))
        } else {
            Err(BuildError::NotPowerOfTwo { requested: c })
        }
    }

    /// Each side's RTS head-tail distance limit (the default where none was
    /// set; unused on a side that is not RTS).
    fn max_distances(&self, capacity: u32) -> (u32, u32) {
        let default = capacity / RTS_DEFAULT_DISTANCE_DIV;
        (
            self.prod_max_distance.unwrap_or(default),
            self.cons_max_distance.unwrap_or(default),
        )
    }

    /// Size and alignment of the memory [`build_on`](Self::build_on) and
    /// [`build_in`](Self::build_in) need.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let l = Ring::<u64>::builder(1024).memory_layout().unwrap();
    /// assert_eq!((l.size(), l.align()), (1024 * 8, 64));
    /// let l = Ring::<u64>::builder(1000).memory_layout().unwrap();
    /// assert_eq!(l.size(), 1024 * 8); // slots are a power of two
    /// ```
    pub fn memory_layout(&self) -> Result<Layout, BuildError> {
        let (slots, _) = self.geometry()?;
        let too_large = BuildError::TooLarge {
            requested: self.capacity,
            max: MAX_CAPACITY,
        };
        let bytes = (slots as usize)
            .checked_mul(std::mem::size_of::<Slot<T>>())
            .ok_or(too_large.clone())?;
        Layout::from_size_align(bytes, Self::memory_align()).map_err(|_| too_large)
    }

    /// Bytes of memory [`build_on`](Self::build_on) and
    /// [`build_in`](Self::build_in) need.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// assert_eq!(Ring::<u32>::builder(100).memory_size().unwrap(), 128 * 4);
    /// ```
    pub fn memory_size(&self) -> Result<usize, BuildError> {
        Ok(self.memory_layout()?.size())
    }

    /// Alignment, in bytes, the slot memory needs: 64, or `T`'s alignment
    /// if that is larger.
    ///
    /// ```
    /// use pktmem_ring::RingBuilder;
    /// assert_eq!(RingBuilder::<u8>::memory_align(), 64);
    /// ```
    pub fn memory_align() -> usize {
        SLOT_ALIGN.max(std::mem::align_of::<Slot<T>>())
    }

    /// Builds the ring with its slots on the heap.
    ///
    /// ```
    /// use pktmem_ring::{BuildError, Ring, MAX_CAPACITY};
    /// assert!(Ring::<u64>::builder(8).build().is_ok());
    /// assert_eq!(
    ///     Ring::<u64>::builder(usize::MAX).build().unwrap_err(),
    ///     BuildError::TooLarge { requested: usize::MAX, max: MAX_CAPACITY }
    /// );
    /// ```
    pub fn build(self) -> Result<Ring<T, P, C>, BuildError> {
        let mem = HeapMemory::new(self.memory_layout()?)?;
        self.build_on(mem).map_err(|r| r.error)
    }

    /// Builds the ring with its slots in `mem`, which the ring keeps and
    /// drops (after its slots) when the ring and every end made from it
    /// are gone. Hugepage memory, a mapped file, an aligned buffer
    /// ([`HeapMemory`]): see [`RingMemory`].
    ///
    /// `mem` must hold [`memory_size`](Self::memory_size) bytes at an
    /// address aligned to [`memory_align`](Self::memory_align); when it does
    /// not (or the capacity is invalid) the error carries the numbers and
    /// hands `mem` back.
    ///
    /// ```
    /// use pktmem_ring::{BuildError, HeapMemory, Ring, RingMemory};
    /// use std::alloc::Layout;
    ///
    /// let b = Ring::<u64>::builder(1024);
    /// let mem = HeapMemory::new(b.memory_layout().unwrap()).unwrap();
    /// let (p, c) = b.build_on(mem).unwrap().split();
    /// p.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// assert_eq!(c.dequeue(), Some(1));
    ///
    /// // Too small: the error says by how much and gives the memory back.
    /// let mem = HeapMemory::new(Layout::from_size_align(4096, 64).unwrap()).unwrap();
    /// let err = Ring::<u64>::builder(1024).build_on(mem).unwrap_err();
    /// assert_eq!(err.error, BuildError::MemoryTooSmall { needed: 8192, provided: 4096 });
    /// assert_eq!(err.memory.size(), 4096);
    /// ```
    pub fn build_on<M: RingMemory + 'static>(
        self,
        mut mem: M,
    ) -> Result<Ring<T, P, C>, RejectedMemory<M>> {
        let base = mem.base_ptr();
        if let Err(e) = self.check_memory(base, mem.size()) {
            return Err(RejectedMemory::new(e, mem));
        }
        // SAFETY: size and alignment checked just above; `RingMemory`'s
        // contract makes the region valid and exclusive while `mem` lives,
        // and the ring keeps `mem` until after its last slot access.
        Ok(unsafe { self.assemble(base.cast(), Some(Box::new(mem))) })
    }

    /// Builds the ring with its slots in caller-provided memory (hugepage
    /// memory, a shared mapping), which the ring does not free.
    ///
    /// # Safety
    ///
    /// - `mem` is valid for reads and writes of `len` bytes for as long as the
    ///   returned ring (or any end made from it) lives;
    /// - nothing else reads or writes that memory in that time.
    ///
    /// Size and alignment are checked and reported as errors.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// use std::alloc::{alloc, dealloc};
    /// use std::ptr::NonNull;
    ///
    /// let b = Ring::<u64>::builder(64);
    /// let layout = b.memory_layout().unwrap();
    /// // SAFETY: `layout` has a non-zero size.
    /// let mem = NonNull::new(unsafe { alloc(layout) }).unwrap();
    /// // SAFETY: `mem` is ours, `layout.size()` bytes, and outlives `ring`.
    /// let ring = unsafe { b.build_in(mem, layout.size()) }.unwrap();
    /// ring.enqueue(5).unwrap();
    /// assert_eq!(ring.dequeue(), Some(5));
    /// drop(ring);
    /// // SAFETY: allocated above with `layout`; the ring is gone.
    /// unsafe { dealloc(mem.as_ptr(), layout) };
    /// ```
    pub unsafe fn build_in(
        self,
        mem: NonNull<u8>,
        len: usize,
    ) -> Result<Ring<T, P, C>, BuildError> {
        self.check_memory(mem, len)?;
        // SAFETY: size and alignment checked above; validity and exclusivity
        // for the ring's life are the caller's contract.
        Ok(unsafe { self.assemble(mem.cast(), None) })
    }

    /// Whether `len` bytes at `mem` can hold this builder's ring.
    fn check_memory(&self, mem: NonNull<u8>, len: usize) -> Result<(), BuildError> {
        let layout = self.memory_layout()?;
        if len < layout.size() {
            return Err(BuildError::MemoryTooSmall {
                needed: layout.size(),
                provided: len,
            });
        }
        let addr = mem.as_ptr() as usize;
        if addr % layout.align() != 0 {
            return Err(BuildError::MemoryMisaligned {
                align: layout.align(),
                addr,
            });
        }
        Ok(())
    }

    /// # Safety
    ///
    /// - `ptr` is valid and aligned for `memory_layout()` and exclusively the
    ///   ring's for its life (if `memory` is `Some`, for as long as it lives);
    /// - `check_memory` accepted this builder.
    unsafe fn assemble(
        self,
        ptr: NonNull<Slot<T>>,
        memory: Option<Box<dyn RingMemory>>,
    ) -> Ring<T, P, C> {
        // `check_memory` validated the geometry; the fallback is never used.
        let (slots, capacity) = self.geometry().unwrap_or((1, 0));
        // SAFETY: `ptr` is valid for `slots` slots (caller); `geometry`
        // gives a power-of-two slot count of at most 2^30 and
        // `capacity <= slots`.
        let raw = unsafe {
            RawRing::new(
                ptr,
                memory,
                slots,
                capacity,
                self.initial,
                self.max_distances(capacity),
            )
        };
        Ring::from_raw(raw)
    }
}

impl<T: Send, C: Mode> RingBuilder<T, Rts, C> {
    /// Lets an RTS producer's claim move the head only while the head is at
    /// most `max` elements ahead of the tail (DPDK's `htd_max`): producers
    /// that finish out of order cannot drift arbitrarily far ahead of the
    /// one that is slow to finish, which bounds how much of the ring sits
    /// claimed but unpublished. A claim that finds the head further ahead
    /// spins until enough earlier claims finish.
    ///
    /// `0` serialises the side (one claim in flight at a time); a `max` at
    /// or above the capacity is no limit. The default is an eighth of the
    /// capacity, as in DPDK. Only an RTS side has the setting:
    ///
    /// ```
    /// use pktmem_ring::{Ring, Rts};
    /// let r = Ring::<u64>::builder(1024).producer(Rts).build().unwrap();
    /// assert_eq!(r.producer_max_distance(), 1024 / 8); // the default
    /// let r = Ring::<u64>::builder(1024)
    ///     .producer(Rts)
    ///     .producer_max_distance(16)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(r.producer_max_distance(), 16);
    /// ```
    ///
    /// ```compile_fail
    /// use pktmem_ring::Ring;
    /// // A multi-thread producer side has no distance limit.
    /// let b = Ring::<u64>::builder(1024).producer_max_distance(16);
    /// ```
    pub fn producer_max_distance(mut self, max: u32) -> Self {
        self.prod_max_distance = Some(max);
        self
    }
}

impl<T: Send, P: Mode> RingBuilder<T, P, Rts> {
    /// The same limit for an RTS consumer side; see
    /// [`producer_max_distance`](Self::producer_max_distance).
    ///
    /// ```
    /// use pktmem_ring::{Ring, Rts};
    /// let r = Ring::<u64>::builder(64)
    ///     .consumer(Rts)
    ///     .consumer_max_distance(0) // one dequeue at a time
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(r.consumer_max_distance(), 0);
    /// ```
    pub fn consumer_max_distance(mut self, max: u32) -> Self {
        self.cons_max_distance = Some(max);
        self
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn geometry_exact_and_dpdk() {
        let g = |n: usize, dpdk: bool| {
            let mut b = RingBuilder::<u64>::new(n);
            b.dpdk = dpdk;
            b.geometry()
        };
        assert_eq!(g(1, false), Ok((1, 1)));
        assert_eq!(g(5, false), Ok((8, 5)));
        assert_eq!(g(4096, false), Ok((4096, 4096)));
        assert_eq!(g(MAX_CAPACITY, false), Ok((1 << 30, 1 << 30)));
        assert_eq!(g(4096, true), Ok((4096, 4095)));
        assert_eq!(g(1, true), Ok((1, 0)));
        assert_eq!(g(6, true), Err(BuildError::NotPowerOfTwo { requested: 6 }));
        assert_eq!(g(0, false), Err(BuildError::ZeroCapacity));
    }

    #[test]
    fn default_distance_is_an_eighth() {
        let b = RingBuilder::<u64>::new(64).producer(Rts);
        assert_eq!(b.max_distances(64), (8, 8));
        let b = b.producer_max_distance(3);
        assert_eq!(b.max_distances(64), (3, 8));
        // Changing the mode forgets the limit set for the old one.
        let b = b.producer(Multi).producer(Rts);
        assert_eq!(b.max_distances(64), (8, 8));
    }
}
