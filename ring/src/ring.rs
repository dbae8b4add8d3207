//! [`Ring`], its builder and the head/tail algorithms every end shares.

use std::alloc::Layout;
use std::fmt;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crossbeam_utils::CachePadded;

use crate::error::{End, NotHts, RejectedMemory, RingEmpty, RingError, RingFull};
use crate::guard::{GuardEnd, ReadGuard, WriteGuard};
use crate::mem::{HeapMemory, RingMemory};
use crate::ops::{self, len_u32, RingEnd};
use crate::sync::{new_slot, spin_loop, AtomicU32, AtomicU64, Ordering, Slot};

/// The largest capacity a ring can be asked for (2³⁰ elements).
pub const MAX_CAPACITY: usize = 1 << 30;

/// Alignment, in bytes, of a ring's slot array (one cache line at least).
const SLOT_ALIGN: usize = 64;

/// DPDK's default RTS head-tail distance is the capacity divided by this.
const RTS_DEFAULT_DISTANCE_DIV: u32 = 8;

/// How the threads on one side of a shared [`Ring`] take turns.
///
/// Single-thread ends are not a mode: they are the [`Producer`](crate::Producer)
/// and [`Consumer`](crate::Consumer) handles, whose single-ness the compiler
/// checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SyncMode {
    /// Multi-thread (DPDK's MP/MC): threads claim slots with a CAS on the
    /// head, copy concurrently, and publish in claim order.
    #[default]
    Multi,
    /// Head-tail sync: one thread at a time moves the head and the tail,
    /// which makes peek and zero-copy access possible on a shared side.
    Hts,
    /// Relaxed tail sync: threads claim with a CAS as in `Multi`, but a
    /// finishing thread does not wait for earlier claimers; the last one to
    /// finish moves the tail over everything. Suits more threads than cores
    /// (a preempted claimer does not stall the others' publication, only
    /// delays it).
    Rts,
}

/// One side's indices. Indices run freely over `u32` and wrap; a slot is
/// `index & mask`.
///
/// Invariants (all arithmetic wrapping):
/// - `tail <= head <= tail + slots`: slots `tail..head` are claimed by this
///   side and being copied; everything before `tail` is published to the
///   other side.
/// - producer `tail - consumer tail <= capacity`: the producer never claims
///   a slot the consumer has not released.
/// - `hts` packs `{ head: low 32 bits, tail: high 32 bits }` for an HTS side;
///   its `tail` half equals `tail` whenever `head == tail`.
/// - For an RTS side, `hts` is the head `{ position: low, claims: high }` and
///   `rts_tail` the tail `{ position: low, finishes: high }`; when finishes
///   catch up with claims the tail position jumps to the head position.
///   `tail` mirrors the tail position and only moves forward.
///
/// Layout: the claim words (`head`, `hts`, `rts_tail`), touched only by this
/// side's threads, share one cache line; `tail`, which the other side
/// reads, has its own, so the other side's reads never stall a claim's CAS.
#[repr(C)]
pub(crate) struct HeadTail {
    /// Next index to claim (multi-thread side only).
    pub(crate) head: AtomicU32,
    /// Head and tail moved as one (HTS side); the counted head (RTS side).
    pub(crate) hts: AtomicU64,
    /// The counted tail (RTS side only).
    pub(crate) rts_tail: AtomicU64,
    /// Everything before it is published to the other side.
    pub(crate) tail: CachePadded<AtomicU32>,
}

impl HeadTail {
    fn new(start: u32) -> Self {
        HeadTail {
            head: AtomicU32::new(start),
            tail: CachePadded::new(AtomicU32::new(start)),
            hts: AtomicU64::new(pack(start, start)),
            rts_tail: AtomicU64::new(pack(start, start)),
        }
    }

    fn set(&mut self, start: u32) {
        // Relaxed: `&mut self` means no other thread looks at these.
        self.head.store(start, Ordering::Relaxed);
        self.tail.store(start, Ordering::Relaxed);
        self.hts.store(pack(start, start), Ordering::Relaxed);
        self.rts_tail.store(pack(start, start), Ordering::Relaxed);
    }
}

#[inline(always)]
fn pack(head: u32, tail: u32) -> u64 {
    (u64::from(tail) << 32) | u64::from(head)
}

#[inline(always)]
fn unpack(p: u64) -> (u32, u32) {
    (p as u32, (p >> 32) as u32)
}

/// What to do when fewer slots than asked for are free (or full).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// All or nothing (`*_bulk`).
    Fixed,
    /// As many as possible (`*_burst`).
    Variable,
}

/// Slots a side has claimed: `start..start + n`; `avail` is what the claim saw
/// free (producer) or filled (consumer).
#[derive(Clone, Copy)]
pub(crate) struct Claim {
    pub(crate) start: u32,
    pub(crate) n: u32,
    pub(crate) avail: u32,
}

#[inline(always)]
pub(crate) fn grant(n: u32, avail: u32, b: Behaviour) -> u32 {
    match b {
        Behaviour::Fixed => {
            if n <= avail {
                n
            } else {
                0
            }
        }
        Behaviour::Variable => n.min(avail),
    }
}

/// A fixed-capacity lock-free ring of `Copy` elements, shared by reference.
///
/// Both sides are multi-thread ([`SyncMode::Multi`], DPDK's MP/MC) or
/// head-tail synchronised ([`SyncMode::Hts`]), chosen with
/// [`Ring::builder`]; every operation takes `&self`, so a ring is shared as
/// `Arc<Ring<T>>` or `&'static Ring<T>`. For a single-thread producer or
/// consumer, [`Ring::into_spsc`] and friends hand out ends that cannot be
/// shared and skip the CAS.
///
/// ```
/// use pktmem_ring::Ring;
/// use std::sync::Arc;
///
/// let ring = Arc::new(Ring::<u64>::new(1024).unwrap()); // holds 1023
/// let r2 = Arc::clone(&ring);
/// let t = std::thread::spawn(move || {
///     for i in 0..100u64 {
///         while r2.enqueue(i).is_err() {}
///     }
/// });
/// let mut sum = 0;
/// let mut got = 0;
/// while got < 100 {
///     if let Some(v) = ring.dequeue() {
///         sum += v;
///         got += 1;
///     }
/// }
/// t.join().unwrap();
/// assert_eq!(sum, 4950);
/// ```
pub struct Ring<T> {
    /// Slot array: `slots` entries, aligned to 64, inside `memory` (or in
    /// memory `build_in`'s caller keeps valid). A slot at index `i` is
    /// written only by the producer that claimed `i` and read only by the
    /// consumer that claimed `i`, each between its claim (head move) and its
    /// publication (tail move); the [`HeadTail`] invariants keep these
    /// windows disjoint.
    slots_ptr: NonNull<Slot<T>>,
    /// Number of slots, a power of two.
    slots: u32,
    /// `slots - 1`.
    mask: u32,
    /// Usable elements: `slots - 1`, or the asked-for count when exact-size.
    capacity: u32,
    /// Index both sides start at (and `reset` returns to).
    initial: u32,
    prod_mode: SyncMode,
    cons_mode: SyncMode,
    /// RTS producer side: a claim waits while the head is more than this
    /// ahead of the tail (DPDK's `htd_max`). Unused on other modes.
    prod_max_distance: u32,
    /// The same for an RTS consumer side.
    cons_max_distance: u32,
    /// The owner of the memory `slots_ptr` points into (`None` under
    /// `build_in`, whose caller keeps the memory alive). Dropped after the
    /// slots, when the ring drops.
    memory: Option<Box<dyn RingMemory>>,
    prod: CachePadded<HeadTail>,
    cons: CachePadded<HeadTail>,
    _t: PhantomData<T>,
}

// SAFETY: a ring moves `T` values between threads and nothing else; the slot
// array is owned through `memory` (a `Send + Sync` owner), or borrowed for
// the ring's life under `build_in`'s contract.
unsafe impl<T: Send> Send for Ring<T> {}
// SAFETY: every slot access is fenced by the head/tail protocol (see the
// `slots_ptr` invariant), so shared use from many threads only moves `T`s.
unsafe impl<T: Send> Sync for Ring<T> {}

impl<T: Copy + Send> fmt::Debug for Ring<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity)
            .field("slots", &self.slots)
            .field("len", &self.len())
            .field("producer", &self.prod_mode)
            .field("consumer", &self.cons_mode)
            .field(
                "memory",
                &if self.memory.is_some() {
                    "owned"
                } else {
                    "borrowed"
                },
            )
            .finish()
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: `slots_ptr` holds `slots` initialised slot cells (written
        // by `init_slots`); dropping them is a no-op under std and ends loom's
        // tracking under loom. Elements are `Copy` in every public API, so
        // nothing else needs dropping.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.slots_ptr.as_ptr(),
                self.slots as usize,
            ));
        }
        // `memory` (if owned) drops after this body, freeing the region.
    }
}

/// Builds a [`Ring`]: capacity, exact size, each side's [`SyncMode`], and
/// where the slots live.
///
/// ```
/// use pktmem_ring::{Ring, SyncMode};
/// let ring = Ring::<[u8; 20]>::builder(1000)
///     .exact_size(true)
///     .producer(SyncMode::Multi)
///     .consumer(SyncMode::Hts)
///     .build()
///     .unwrap();
/// assert_eq!(ring.capacity(), 1000);
/// ```
pub struct RingBuilder<T> {
    capacity: usize,
    exact: bool,
    prod: SyncMode,
    cons: SyncMode,
    initial: u32,
    prod_max_distance: Option<u32>,
    cons_max_distance: Option<u32>,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for RingBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RingBuilder")
            .field("capacity", &self.capacity)
            .field("exact", &self.exact)
            .field("producer", &self.prod)
            .field("consumer", &self.cons)
            .field("initial_index", &self.initial)
            .field("producer_max_distance", &self.prod_max_distance)
            .field("consumer_max_distance", &self.cons_max_distance)
            .finish()
    }
}

impl<T> Clone for RingBuilder<T> {
    fn clone(&self) -> Self {
        RingBuilder { ..*self }
    }
}

impl<T: Copy + Send> RingBuilder<T> {
    /// With `true`, the ring holds exactly `capacity` elements (any count);
    /// with `false` (the default) `capacity` must be a power of two and the
    /// ring holds `capacity - 1`, as DPDK's rings do.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::builder(4096).exact_size(true).build().unwrap();
    /// assert_eq!(r.capacity(), 4096);
    /// let r = Ring::<u32>::builder(4096).build().unwrap();
    /// assert_eq!(r.capacity(), 4095);
    /// ```
    pub fn exact_size(mut self, exact: bool) -> Self {
        self.exact = exact;
        self
    }

    /// Sets how producers take turns (default [`SyncMode::Multi`]).
    pub fn producer(mut self, mode: SyncMode) -> Self {
        self.prod = mode;
        self
    }

    /// Sets how consumers take turns (default [`SyncMode::Multi`]).
    pub fn consumer(mut self, mode: SyncMode) -> Self {
        self.cons = mode;
        self
    }

    /// Starts the free-running indices at `index` instead of 0, so a test can
    /// cross the `u32` wrap within a few operations.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u8>::builder(4).initial_index(u32::MAX - 1).build().unwrap();
    /// for i in 0..10u8 {
    ///     r.enqueue(i).unwrap();
    ///     assert_eq!(r.dequeue(), Some(i));
    /// }
    /// ```
    pub fn initial_index(mut self, index: u32) -> Self {
        self.initial = index;
        self
    }

    /// On an RTS producer side ([`SyncMode::Rts`]), lets a claim move the
    /// head only while the head is at most `max` elements ahead of the tail
    /// (DPDK's `htd_max`): producers that finish out of order cannot drift
    /// arbitrarily far ahead of the one that is slow to finish, which bounds
    /// how much of the ring sits claimed but unpublished. A claim that finds
    /// the head further ahead spins until enough earlier claims finish.
    ///
    /// `0` serialises the side (one claim in flight at a time); a `max` at
    /// or above the capacity is no limit. The default is an eighth of the
    /// capacity, as in DPDK. Setting it for a side that is not RTS makes
    /// `build` fail with [`RingError::MaxDistanceNotRts`].
    ///
    /// ```
    /// use pktmem_ring::{End, Ring, RingError, SyncMode};
    /// let r = Ring::<u64>::builder(1024).producer(SyncMode::Rts).build().unwrap();
    /// assert_eq!(r.producer_max_distance(), Some(1023 / 8)); // the default
    /// let r = Ring::<u64>::builder(1024)
    ///     .producer(SyncMode::Rts)
    ///     .producer_max_distance(16)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!((r.producer_max_distance(), r.consumer_max_distance()), (Some(16), None));
    /// assert_eq!(
    ///     Ring::<u64>::builder(1024).producer_max_distance(16).build().unwrap_err(),
    ///     RingError::MaxDistanceNotRts { end: End::Producer }
    /// );
    /// ```
    pub fn producer_max_distance(mut self, max: u32) -> Self {
        self.prod_max_distance = Some(max);
        self
    }

    /// The same limit for an RTS consumer side; see
    /// [`producer_max_distance`](Self::producer_max_distance).
    ///
    /// ```
    /// use pktmem_ring::{Ring, SyncMode};
    /// let r = Ring::<u64>::builder(64)
    ///     .consumer(SyncMode::Rts)
    ///     .consumer_max_distance(0) // one dequeue at a time
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(r.consumer_max_distance(), Some(0));
    /// ```
    pub fn consumer_max_distance(mut self, max: u32) -> Self {
        self.cons_max_distance = Some(max);
        self
    }

    /// Each side's RTS head-tail distance limit (the default where none was
    /// set; unused on a side that is not RTS), or why not.
    fn max_distances(&self, capacity: u32) -> Result<(u32, u32), RingError> {
        let side = |mode: SyncMode, set: Option<u32>, end: End| match (mode, set) {
            (SyncMode::Rts, Some(max)) => Ok(max),
            (_, None) => Ok(capacity / RTS_DEFAULT_DISTANCE_DIV),
            (_, Some(_)) => Err(RingError::MaxDistanceNotRts { end }),
        };
        Ok((
            side(self.prod, self.prod_max_distance, End::Producer)?,
            side(self.cons, self.cons_max_distance, End::Consumer)?,
        ))
    }

    /// Number of slots (a power of two) and usable capacity, or why not.
    fn geometry(&self) -> Result<(u32, u32), RingError> {
        let c = self.capacity;
        if c == 0 {
            return Err(RingError::ZeroCapacity);
        }
        if c > MAX_CAPACITY {
            return Err(RingError::TooLarge {
                requested: c,
                max: MAX_CAPACITY,
            });
        }
        if self.exact {
            // `c <= 2^30`, so `c + 1` rounds up to at most 2^31.
            let slots = (c + 1).next_power_of_two();
            Ok((slots as u32, c as u32))
        } else if c.is_power_of_two() {
            // DPDK semantics: one slot stays empty, so a ring of 1 holds 0.
            Ok((c as u32, c as u32 - 1))
        } else {
            Err(RingError::NotPowerOfTwo { requested: c })
        }
    }

    /// Size and alignment of the memory [`build_in`](Self::build_in) needs.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let l = Ring::<u64>::builder(1024).memory_layout().unwrap();
    /// assert_eq!(l.size(), 1024 * 8);
    /// assert_eq!(l.align(), 64);
    /// ```
    pub fn memory_layout(&self) -> Result<Layout, RingError> {
        let (slots, _) = self.geometry()?;
        let bytes = (slots as usize)
            .checked_mul(std::mem::size_of::<Slot<T>>())
            .ok_or(RingError::TooLarge {
                requested: self.capacity,
                max: MAX_CAPACITY,
            })?;
        Layout::from_size_align(bytes, Self::memory_align()).map_err(|_| RingError::TooLarge {
            requested: self.capacity,
            max: MAX_CAPACITY,
        })
    }

    /// Bytes of memory [`build_in`](Self::build_in) needs.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// assert_eq!(Ring::<u32>::builder(100).exact_size(true).memory_size().unwrap(), 128 * 4);
    /// ```
    pub fn memory_size(&self) -> Result<usize, RingError> {
        Ok(self.memory_layout()?.size())
    }

    /// Alignment, in bytes, [`build_in`](Self::build_in) needs: 64, or `T`'s
    /// alignment if that is larger.
    pub fn memory_align() -> usize {
        SLOT_ALIGN.max(std::mem::align_of::<Slot<T>>())
    }

    /// Builds the ring with its slots on the heap.
    ///
    /// ```
    /// use pktmem_ring::{Ring, RingError};
    /// assert!(Ring::<u64>::builder(8).build().is_ok());
    /// assert_eq!(
    ///     Ring::<u64>::builder(usize::MAX).build().unwrap_err(),
    ///     RingError::TooLarge { requested: usize::MAX, max: pktmem_ring::MAX_CAPACITY }
    /// );
    /// ```
    pub fn build(self) -> Result<Ring<T>, RingError> {
        let layout = self.memory_layout()?;
        // Settings first, so a bad one allocates nothing.
        self.max_distances(0)?;
        let mem = HeapMemory::new(layout)?;
        self.build_on(mem).map_err(|r| r.error)
    }

    /// Builds the ring with its slots in `mem`, which the ring keeps and
    /// drops (after its slots) when the ring and every handle made from it
    /// are gone. Hugepage memory, a mapped file, an aligned buffer
    /// ([`HeapMemory`]): see [`RingMemory`].
    ///
    /// `mem` must hold [`memory_size`](Self::memory_size) bytes at an
    /// address aligned to [`memory_align`](Self::memory_align); when it does
    /// not (or the builder's settings are invalid) the error carries the
    /// numbers and hands `mem` back.
    ///
    /// ```
    /// use pktmem_ring::{HeapMemory, Ring, RingError, RingMemory};
    /// use std::alloc::Layout;
    ///
    /// let b = Ring::<u64>::builder(1024);
    /// let mem = HeapMemory::new(b.memory_layout().unwrap()).unwrap();
    /// let (p, c) = b.build_on(mem).unwrap().into_spsc();
    /// p.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// assert_eq!(c.dequeue(), Some(1));
    ///
    /// // Too small: the error says by how much and gives the memory back.
    /// let mem = HeapMemory::new(Layout::from_size_align(4096, 64).unwrap()).unwrap();
    /// let err = Ring::<u64>::builder(1024).build_on(mem).unwrap_err();
    /// assert_eq!(err.error, RingError::MemoryTooSmall { needed: 8192, provided: 4096 });
    /// assert_eq!(err.memory.size(), 4096);
    /// ```
    pub fn build_on<M: RingMemory + 'static>(
        self,
        mut mem: M,
    ) -> Result<Ring<T>, RejectedMemory<M>> {
        let base = mem.base_ptr();
        if let Err(e) = self.check_memory(base, mem.size()) {
            return Err(RejectedMemory::new(e, mem));
        }
        let ptr = base.cast::<Slot<T>>();
        // SAFETY: size and alignment checked just above; `RingMemory`'s
        // contract makes the region valid and exclusive while `mem` lives,
        // and the ring keeps `mem` until after its last slot access.
        Ok(unsafe { self.assemble(ptr, Some(Box::new(mem))) })
    }

    /// Whether `len` bytes at `mem` can hold this builder's ring (and the
    /// builder's settings are valid).
    fn check_memory(&self, mem: NonNull<u8>, len: usize) -> Result<(), RingError> {
        let layout = self.memory_layout()?;
        let (_, capacity) = self.geometry()?;
        self.max_distances(capacity)?;
        if len < layout.size() {
            return Err(RingError::MemoryTooSmall {
                needed: layout.size(),
                provided: len,
            });
        }
        let addr = mem.as_ptr() as usize;
        if addr % layout.align() != 0 {
            return Err(RingError::MemoryMisaligned {
                align: layout.align(),
                addr,
            });
        }
        Ok(())
    }

    /// Builds the ring with its slots in caller-provided memory (hugepage
    /// memory, a shared mapping), which the ring does not free.
    ///
    /// # Safety
    ///
    /// - `mem` is valid for reads and writes of `len` bytes for as long as the
    ///   returned ring (or any handle made from it) lives;
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
    /// let mem = NonNull::new(unsafe { alloc(layout) }).unwrap();
    /// // SAFETY: `mem` is ours, `layout.size()` bytes, and outlives `ring`.
    /// let ring = unsafe { b.build_in(mem, layout.size()) }.unwrap();
    /// ring.enqueue(5).unwrap();
    /// assert_eq!(ring.dequeue(), Some(5));
    /// drop(ring);
    /// unsafe { dealloc(mem.as_ptr(), layout) };
    /// ```
    pub unsafe fn build_in(self, mem: NonNull<u8>, len: usize) -> Result<Ring<T>, RingError> {
        self.check_memory(mem, len)?;
        // SAFETY: size and alignment checked above; validity and exclusivity
        // for the ring's life are the caller's contract.
        Ok(unsafe { self.assemble(mem.cast(), None) })
    }

    /// Builds a ring with a single-thread producer and consumer; see
    /// [`Ring::into_spsc`].
    pub fn build_spsc(self) -> Result<(crate::Producer<T>, crate::Consumer<T>), RingError> {
        Ok(self.build()?.into_spsc())
    }

    /// Builds a ring with a single-thread producer and a shared consumer side
    /// (of this builder's consumer mode); see [`Ring::into_sp_mc`].
    pub fn build_sp_mc(self) -> Result<(crate::Producer<T>, crate::SharedConsumer<T>), RingError> {
        Ok(self.build()?.into_sp_mc())
    }

    /// Builds a ring with a shared producer side (of this builder's producer
    /// mode) and a single-thread consumer; see [`Ring::into_mp_sc`].
    pub fn build_mp_sc(self) -> Result<(crate::SharedProducer<T>, crate::Consumer<T>), RingError> {
        Ok(self.build()?.into_mp_sc())
    }

    /// # Safety
    ///
    /// - `ptr` is valid and aligned for `memory_layout()` and exclusively the
    ///   ring's for its life (if `memory` is `Some`, for as long as it lives);
    /// - `check_memory` accepted this builder (geometry and distances).
    unsafe fn assemble(
        self,
        ptr: NonNull<Slot<T>>,
        memory: Option<Box<dyn RingMemory>>,
    ) -> Ring<T> {
        // Unwrap-free: `check_memory` already validated these.
        let (slots, capacity) = self.geometry().unwrap_or((1, 0));
        let (prod_max_distance, cons_max_distance) = self.max_distances(capacity).unwrap_or((0, 0));
        for i in 0..slots as usize {
            // SAFETY: `i < slots`, within the memory the caller vouched for.
            unsafe { ptr.as_ptr().add(i).write(new_slot()) };
        }
        Ring {
            slots_ptr: ptr,
            slots,
            mask: slots - 1,
            capacity,
            initial: self.initial,
            prod_mode: self.prod,
            cons_mode: self.cons,
            prod_max_distance,
            cons_max_distance,
            memory,
            prod: CachePadded::new(HeadTail::new(self.initial)),
            cons: CachePadded::new(HeadTail::new(self.initial)),
            _t: PhantomData,
        }
    }
}

impl<T: Copy + Send> Ring<T> {
    /// A multi-producer / multi-consumer ring on the heap; `capacity` must be
    /// a power of two and the ring holds `capacity - 1` elements (DPDK
    /// semantics; use [`builder`](Self::builder) for exact sizes).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<usize>::new(4096).unwrap();
    /// assert_eq!(r.capacity(), 4095);
    /// ```
    pub fn new(capacity: usize) -> Result<Self, RingError> {
        Self::builder(capacity).build()
    }

    /// A builder for a ring of `capacity` (see [`RingBuilder::exact_size`]).
    pub fn builder(capacity: usize) -> RingBuilder<T> {
        RingBuilder {
            capacity,
            exact: false,
            prod: SyncMode::Multi,
            cons: SyncMode::Multi,
            initial: 0,
            prod_max_distance: None,
            cons_max_distance: None,
            _t: PhantomData,
        }
    }

    /// Elements the ring can hold.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    /// Elements in the ring now (a snapshot when other threads are active).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(8).unwrap();
    /// r.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// assert_eq!((r.len(), r.free_count()), (3, 4));
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.used() as usize
    }

    #[inline]
    pub(crate) fn used(&self) -> u32 {
        // The consumer tail is read first: it never passes the producer tail,
        // so the difference cannot go negative. Acquire: pairs with the
        // Release tail stores in the publish paths.
        let c = self.cons.tail.load(Ordering::Acquire);
        let p = self.prod.tail.load(Ordering::Acquire);
        p.wrapping_sub(c).min(self.capacity)
    }

    /// Free slots now (`capacity() - len()`).
    #[inline]
    pub fn free_count(&self) -> usize {
        (self.capacity - self.used()) as usize
    }

    /// Whether the ring holds nothing.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.used() == 0
    }

    /// Whether the ring has no free slot.
    #[inline]
    pub fn is_full(&self) -> bool {
        self.used() == self.capacity
    }

    /// The producer side's mode.
    pub fn producer_mode(&self) -> SyncMode {
        self.prod_mode
    }

    /// The consumer side's mode.
    pub fn consumer_mode(&self) -> SyncMode {
        self.cons_mode
    }

    /// The producer side's RTS head-tail distance limit (see
    /// [`RingBuilder::producer_max_distance`]), or `None` when the side is
    /// not [`SyncMode::Rts`].
    pub fn producer_max_distance(&self) -> Option<u32> {
        (self.prod_mode == SyncMode::Rts).then_some(self.prod_max_distance)
    }

    /// The consumer side's RTS head-tail distance limit, or `None` when the
    /// side is not [`SyncMode::Rts`].
    pub fn consumer_max_distance(&self) -> Option<u32> {
        (self.cons_mode == SyncMode::Rts).then_some(self.cons_max_distance)
    }

    /// Addresses of the slot array: where the ring's elements live (in the
    /// memory given to [`RingBuilder::build_on`] or `build_in`, or on the
    /// heap).
    ///
    /// ```
    /// use pktmem_ring::{HeapMemory, Ring, RingMemory};
    /// let b = Ring::<u64>::builder(8);
    /// let mem = HeapMemory::new(b.memory_layout().unwrap()).unwrap();
    /// let at = mem.as_ptr().as_ptr() as usize;
    /// let r = b.build_on(mem).unwrap();
    /// assert_eq!(r.memory_range(), at..at + 64);
    /// ```
    pub fn memory_range(&self) -> std::ops::Range<usize> {
        let start = self.slots_ptr.as_ptr() as usize;
        start..start + self.slots as usize * std::mem::size_of::<Slot<T>>()
    }

    /// Empties the ring; `&mut self` proves no other thread is inside.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let mut r = Ring::<u32>::new(8).unwrap();
    /// r.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// r.reset();
    /// assert!(r.is_empty());
    /// ```
    pub fn reset(&mut self) {
        let s = self.initial;
        self.prod.set(s);
        self.cons.set(s);
    }

    // ---- slot copies -------------------------------------------------

    /// Copies `n` elements from `src` into slots `start..start + n`.
    ///
    /// # Safety
    ///
    /// - the caller's side has claimed slots `start..start + n` for writing
    ///   (`n <= slots`), see the `slots_ptr` invariant;
    /// - `src` is valid for `n` reads.
    #[inline(always)]
    pub(crate) unsafe fn write_slots(&self, start: u32, src: *const T, n: u32) {
        let idx = (start & self.mask) as usize;
        let n = n as usize;
        #[cfg(not(loom))]
        {
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
            let at = (idx + i) & self.mask as usize;
            // SAFETY: `at < slots`; the slot is claimed by us; `src` is valid
            // for `n` reads.
            unsafe {
                let v = src.add(i).read();
                (*self.slots_ptr.as_ptr().add(at)).with_mut(|p| (*p).write(v));
            }
        }
    }

    /// Copies slots `start..start + n` out to `dst`.
    ///
    /// # Safety
    ///
    /// - the caller's side has claimed slots `start..start + n` for reading
    ///   and the producer published them (so they are initialised);
    /// - `dst` is valid for `n` writes.
    #[inline(always)]
    pub(crate) unsafe fn read_slots(&self, start: u32, dst: *mut T, n: u32) {
        let idx = (start & self.mask) as usize;
        let n = n as usize;
        #[cfg(not(loom))]
        {
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
            let at = (idx + i) & self.mask as usize;
            // SAFETY: `at < slots`; the slot is claimed by us and initialised.
            unsafe {
                let v = (*self.slots_ptr.as_ptr().add(at)).with(|p| (*p).assume_init());
                dst.add(i).write(v);
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

    /// Reads one slot: the single-element path, without `read_slots`'
    /// wrap check.
    ///
    /// # Safety
    ///
    /// The caller's side has claimed slot `index` for reading and the
    /// producer published it (so it is initialised).
    #[inline(always)]
    pub(crate) unsafe fn read_one(&self, index: u32) -> T {
        let at = (index & self.mask) as usize;
        // SAFETY: `at < slots`, inside the slot array; the slot is ours to
        // read and initialised (caller).
        #[cfg(not(loom))]
        unsafe {
            self.slots_ptr.as_ptr().cast::<T>().add(at).read()
        }
        // SAFETY: as above.
        #[cfg(loom)]
        unsafe {
            (*self.slots_ptr.as_ptr().add(at)).with(|p| (*p).assume_init())
        }
    }

    /// Writes one slot: the single-element path, without `write_slots`'
    /// wrap check.
    ///
    /// # Safety
    ///
    /// The caller's side has claimed slot `index` for writing.
    #[inline(always)]
    pub(crate) unsafe fn write_one(&self, index: u32, v: T) {
        let at = (index & self.mask) as usize;
        // SAFETY: `at < slots`, inside the slot array; `Slot<T>` is laid out
        // as `T`, and the slot is ours to write (caller).
        #[cfg(not(loom))]
        unsafe {
            self.slots_ptr.as_ptr().cast::<T>().add(at).write(v)
        }
        // SAFETY: as above.
        #[cfg(loom)]
        unsafe {
            (*self.slots_ptr.as_ptr().add(at)).with_mut(|p| (*p).write(v));
        }
    }

    // ---- head moves ----------------------------------------------------

    #[inline(always)]
    fn mode(&self, prod: bool) -> SyncMode {
        if prod {
            self.prod_mode
        } else {
            self.cons_mode
        }
    }

    #[inline(always)]
    fn side(&self, prod: bool) -> (&HeadTail, &AtomicU32) {
        if prod {
            (&self.prod, &self.cons.tail)
        } else {
            (&self.cons, &self.prod.tail)
        }
    }

    /// Free (producer) or filled (consumer) slots given the other side's tail.
    #[inline(always)]
    pub(crate) fn avail<const PROD: bool>(&self, head: u32, other_tail: u32) -> u32 {
        if PROD {
            self.capacity.wrapping_add(other_tail).wrapping_sub(head)
        } else {
            other_tail.wrapping_sub(head)
        }
    }

    /// Multi-thread claim: CAS the head forward (DPDK's MP/MC scheme).
    #[inline(always)]
    fn multi_claim<const PROD: bool>(&self, n: u32, b: Behaviour) -> Claim {
        let (ht, other) = self.side(PROD);
        // Acquire: pairs with the AcqRel CAS below in the thread that moved
        // the head last, so the other side's tail we read next is no older
        // than the one it read (else `avail` could underflow).
        let mut head = ht.head.load(Ordering::Acquire);
        loop {
            // Acquire: pairs with the Release tail store in the other side's
            // publish; the slots it releases are done with.
            let o = other.load(Ordering::Acquire);
            let avail = self.avail::<PROD>(head, o);
            let k = grant(n, avail, b);
            if k == 0 {
                return Claim {
                    start: head,
                    n: 0,
                    avail,
                };
            }
            // AcqRel: Release publishes our read of the other tail to the next
            // claimer (its Acquire head load); Acquire as for the first load.
            match ht.head.compare_exchange_weak(
                head,
                head.wrapping_add(k),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Claim {
                        start: head,
                        n: k,
                        avail,
                    }
                }
                Err(cur) => head = cur,
            }
        }
    }

    /// Multi-thread publish: wait for earlier claims, then move the tail.
    #[inline(always)]
    fn multi_publish<const PROD: bool>(&self, c: Claim) {
        let (ht, _) = self.side(PROD);
        // Acquire: pairs with the Release store below in the thread whose
        // claim ends at `c.start`; a plain store does not continue its
        // release sequence, so we take its slot accesses on before publishing.
        while ht.tail.load(Ordering::Acquire) != c.start {
            spin_loop();
        }
        // Release: pairs with the other side's Acquire load of this tail
        // (in its claim), publishing our slot writes (producer) or the end of
        // our slot reads (consumer).
        ht.tail.store(c.start.wrapping_add(c.n), Ordering::Release);
    }

    /// HTS claim: wait until no one owns the side, then move the head alone.
    #[inline(always)]
    pub(crate) fn hts_claim<const PROD: bool>(&self, n: u32, b: Behaviour) -> Claim {
        let (ht, other) = self.side(PROD);
        // Acquire: pairs with the Release store of `hts` in `hts_publish`:
        // the previous owner's slot accesses and tail read happen before ours.
        let mut p = ht.hts.load(Ordering::Acquire);
        loop {
            let (head, tail) = unpack(p);
            if head != tail {
                spin_loop();
                // Acquire: as above.
                p = ht.hts.load(Ordering::Acquire);
                continue;
            }
            // Acquire: pairs with the Release tail store of the other side.
            let o = other.load(Ordering::Acquire);
            let avail = self.avail::<PROD>(head, o);
            let k = grant(n, avail, b);
            if k == 0 {
                return Claim {
                    start: head,
                    n: 0,
                    avail,
                };
            }
            // Acquire on both outcomes: as for the load above.
            match ht.hts.compare_exchange_weak(
                p,
                pack(head.wrapping_add(k), tail),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Claim {
                        start: head,
                        n: k,
                        avail,
                    }
                }
                Err(cur) => p = cur,
            }
        }
    }

    /// HTS publish of `n` of the claimed slots (`n` may be below the claim:
    /// peek and partial zero-copy commits), releasing the side.
    #[inline(always)]
    pub(crate) fn hts_publish<const PROD: bool>(&self, start: u32, n: u32) {
        let (ht, _) = self.side(PROD);
        let end = start.wrapping_add(n);
        // Release: pairs with the other side's Acquire load of this tail.
        // Stored before `hts` so the next owner's tail store comes after ours.
        ht.tail.store(end, Ordering::Release);
        // Release: pairs with the Acquire loads of `hts` in `hts_claim`.
        ht.hts.store(pack(end, end), Ordering::Release);
    }

    /// RTS claim: CAS the counted head forward.
    #[inline(always)]
    fn rts_claim<const PROD: bool>(&self, n: u32, b: Behaviour) -> Claim {
        let (ht, other) = self.side(PROD);
        let max = if PROD {
            self.prod_max_distance
        } else {
            self.cons_max_distance
        };
        // Acquire: pairs with the AcqRel CAS below in the previous claimer,
        // as in `multi_claim`.
        let mut h = ht.hts.load(Ordering::Acquire);
        loop {
            let (pos, claims) = unpack(h);
            // Head-tail distance limit: wait while this side's head is more
            // than `max` ahead of its tail. Progress only, not safety (the
            // slots a claim may take are decided by `avail` below), so the
            // orderings matter only for freshness. Acquire: pairs with the
            // AcqRel tail CAS in `rts_publish`. A tail read newer than `h`
            // may be ahead of it: the wrapped distance is then huge and we
            // re-read the head, which is at least that tail.
            let (tpos, _) = unpack(ht.rts_tail.load(Ordering::Acquire));
            if pos.wrapping_sub(tpos) > max {
                spin_loop();
                // Acquire: as for the first load of `hts`.
                h = ht.hts.load(Ordering::Acquire);
                continue;
            }
            // Acquire: pairs with the other side's Release publication of
            // its tail.
            let o = other.load(Ordering::Acquire);
            let avail = self.avail::<PROD>(pos, o);
            let k = grant(n, avail, b);
            if k == 0 {
                return Claim {
                    start: pos,
                    n: 0,
                    avail,
                };
            }
            // AcqRel: as in `multi_claim`.
            match ht.hts.compare_exchange_weak(
                h,
                pack(pos.wrapping_add(k), claims.wrapping_add(1)),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Claim {
                        start: pos,
                        n: k,
                        avail,
                    }
                }
                Err(cur) => h = cur,
            }
        }
    }

    /// RTS publish: count our finish; if it is the last outstanding one,
    /// move the tail to the head.
    #[inline(always)]
    fn rts_publish<const PROD: bool>(&self) {
        let (ht, _) = self.side(PROD);
        // Acquire: pairs with the AcqRel CAS below by earlier finishers, so
        // their slot accesses happen before any publication we make.
        let mut t = ht.rts_tail.load(Ordering::Acquire);
        loop {
            let (tpos, finishes) = unpack(t);
            // Acquire: pairs with the AcqRel head CAS of the claims it counts.
            let (hpos, claims) = unpack(ht.hts.load(Ordering::Acquire));
            let finishes = finishes.wrapping_add(1);
            let pos = if claims == finishes { hpos } else { tpos };
            // AcqRel: Release hands our slot accesses on to later finishers
            // (and through them to the publication); Acquire as above.
            match ht.rts_tail.compare_exchange_weak(
                t,
                pack(pos, finishes),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if pos != tpos {
                        self.advance_tail(&ht.tail, pos);
                    }
                    return;
                }
                Err(cur) => t = cur,
            }
        }
    }

    /// Moves a mirrored tail forward to `pos` unless another thread already
    /// moved it further.
    #[inline(always)]
    fn advance_tail(&self, tail: &AtomicU32, pos: u32) {
        // Relaxed: only a starting guess; the CAS below decides.
        let mut m = tail.load(Ordering::Relaxed);
        while (pos.wrapping_sub(m) as i32) > 0 {
            // Release: pairs with the other side's Acquire load of this tail;
            // everything before `pos` is complete (see `rts_publish`).
            match tail.compare_exchange_weak(m, pos, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(cur) => m = cur,
            }
        }
    }

    // ---- public operations ------------------------------------------------

    /// What the shared operation bodies drive: the ring itself.
    #[inline(always)]
    fn ops_end(&self) -> &Self {
        self
    }

    crate::ops::enqueue_methods! {
        setup: "use pktmem_ring::Ring;\nlet r = Ring::<u32>::new(4).unwrap(); // holds 3",
        p: "r",
        c: "r"
    }

    crate::ops::dequeue_methods! {
        setup: "use pktmem_ring::Ring;\nlet r = Ring::<u32>::new(4).unwrap(); // holds 3",
        p: "r",
        c: "r"
    }

    // ---- unsafe single-thread twins ---------------------------------------

    /// [`enqueue_bulk`](Self::enqueue_bulk) without the CAS, for an owner
    /// that knows it is the only producer (a pool whose puts are
    /// single-threaded).
    ///
    /// # Safety
    ///
    /// - no other thread enqueues on this ring concurrently;
    /// - earlier enqueues from other threads happen-before this call (the
    ///   exclusivity was handed over through a synchronising operation).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(8).unwrap();
    /// // SAFETY: `r` is local to this thread.
    /// unsafe { r.enqueue_bulk_single_producer(&[1, 2]) }.unwrap();
    /// assert_eq!(r.dequeue(), Some(1));
    /// ```
    #[inline]
    pub unsafe fn enqueue_bulk_single_producer(&self, src: &[T]) -> Result<(), RingFull> {
        // SAFETY: `Solo::new`'s contract is ours, passed on by the caller.
        ops::enqueue_bulk(&unsafe { Solo::new(self) }, src)
    }

    /// [`enqueue_burst`](Self::enqueue_burst) without the CAS.
    ///
    /// # Safety
    ///
    /// As for [`enqueue_bulk_single_producer`](Self::enqueue_bulk_single_producer).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(4).unwrap(); // holds 3
    /// // SAFETY: `r` is local to this thread.
    /// assert_eq!(unsafe { r.enqueue_burst_single_producer(&[1, 2, 3, 4]) }, 3);
    /// ```
    #[inline]
    pub unsafe fn enqueue_burst_single_producer(&self, src: &[T]) -> usize {
        // SAFETY: `Solo::new`'s contract is ours, passed on by the caller.
        ops::enqueue_burst(&unsafe { Solo::new(self) }, src)
    }

    /// [`dequeue_bulk`](Self::dequeue_bulk) without the CAS, for an owner
    /// that knows it is the only consumer.
    ///
    /// # Safety
    ///
    /// - no other thread dequeues from this ring concurrently;
    /// - earlier dequeues from other threads happen-before this call.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(8).unwrap();
    /// r.enqueue_bulk(&[1, 2]).unwrap();
    /// let mut out = [0; 2];
    /// // SAFETY: `r` is local to this thread.
    /// unsafe { r.dequeue_bulk_single_consumer(&mut out) }.unwrap();
    /// assert_eq!(out, [1, 2]);
    /// ```
    #[inline]
    pub unsafe fn dequeue_bulk_single_consumer(&self, out: &mut [T]) -> Result<(), RingEmpty> {
        // SAFETY: `Solo::new`'s contract is ours, passed on by the caller.
        ops::dequeue_bulk(&unsafe { Solo::new(self) }, out)
    }

    /// [`dequeue_burst`](Self::dequeue_burst) without the CAS.
    ///
    /// # Safety
    ///
    /// As for [`dequeue_bulk_single_consumer`](Self::dequeue_bulk_single_consumer).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(8).unwrap();
    /// r.enqueue(5).unwrap();
    /// let mut out = [0; 4];
    /// // SAFETY: `r` is local to this thread.
    /// assert_eq!(unsafe { r.dequeue_burst_single_consumer(&mut out) }, 1);
    /// assert_eq!(out[0], 5);
    /// ```
    #[inline]
    pub unsafe fn dequeue_burst_single_consumer(&self, out: &mut [T]) -> usize {
        // SAFETY: `Solo::new`'s contract is ours, passed on by the caller.
        ops::dequeue_burst(&unsafe { Solo::new(self) }, out)
    }

    // ---- zero-copy and peek (HTS sides) -----------------------------------

    /// Reserves up to `max` free slots in place for writing (zero-copy
    /// enqueue); the producer side must be [`SyncMode::Hts`]. Other
    /// producers wait until the returned guard is committed or dropped.
    /// Fewer (possibly 0) slots are reserved when fewer are free.
    ///
    /// ```
    /// use pktmem_ring::{Ring, SyncMode};
    /// let r = Ring::<u32>::builder(8).producer(SyncMode::Hts).build().unwrap();
    /// let mut w = r.enqueue_start(3).unwrap();
    /// w.push(10).unwrap();
    /// w.push(11).unwrap();
    /// w.commit(); // publishes the two pushed
    /// assert_eq!(r.len(), 2);
    /// ```
    pub fn enqueue_start(&self, max: usize) -> Result<WriteGuard<'_, T>, NotHts> {
        if self.prod_mode != SyncMode::Hts {
            return Err(NotHts { end: End::Producer });
        }
        let c = self.hts_claim::<true>(len_u32(max), Behaviour::Variable);
        Ok(WriteGuard::new(self, c, GuardEnd::Hts))
    }

    /// Reserves up to `max` elements in place for reading (peek and
    /// zero-copy dequeue); the consumer side must be [`SyncMode::Hts`].
    /// Finishing the guard with `k` consumes the first `k`; dropping it
    /// consumes none.
    ///
    /// ```
    /// use pktmem_ring::{Ring, SyncMode};
    /// let r = Ring::<u32>::builder(8).consumer(SyncMode::Hts).build().unwrap();
    /// r.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// let g = r.dequeue_start(2).unwrap();
    /// assert_eq!((g.get(0), g.get(1), g.len()), (Some(1), Some(2), 2));
    /// g.finish(1); // consume only the first
    /// assert_eq!(r.dequeue(), Some(2));
    /// ```
    pub fn dequeue_start(&self, max: usize) -> Result<ReadGuard<'_, T>, NotHts> {
        if self.cons_mode != SyncMode::Hts {
            return Err(NotHts { end: End::Consumer });
        }
        let c = self.hts_claim::<false>(len_u32(max), Behaviour::Variable);
        Ok(ReadGuard::new(self, c, GuardEnd::Hts))
    }

    /// The producer tail (for the single-thread handles).
    #[inline(always)]
    pub(crate) fn prod_tail(&self) -> &AtomicU32 {
        &self.prod.tail
    }

    /// The consumer tail (for the single-thread handles).
    #[inline(always)]
    pub(crate) fn cons_tail(&self) -> &AtomicU32 {
        &self.cons.tail
    }
}

// SAFETY: `claim` moves this side's head past the claimed slots in the
// side's mode (CAS, HTS ownership or counted CAS), so no other thread of the
// side claims them, and grants only slots the other side's tail has passed
// (`avail`); `publish` stores the tail with Release once earlier claims are
// done.
unsafe impl<T: Copy + Send, const PROD: bool> RingEnd<T, PROD> for Ring<T> {
    #[inline(always)]
    fn ring(&self) -> &Ring<T> {
        self
    }

    #[inline(always)]
    fn claim(&self, n: u32, b: Behaviour) -> Claim {
        match self.mode(PROD) {
            SyncMode::Multi => self.multi_claim::<PROD>(n, b),
            SyncMode::Hts => self.hts_claim::<PROD>(n, b),
            SyncMode::Rts => self.rts_claim::<PROD>(n, b),
        }
    }

    #[inline(always)]
    fn publish(&self, c: Claim) {
        match self.mode(PROD) {
            SyncMode::Multi => self.multi_publish::<PROD>(c),
            SyncMode::Hts => self.hts_publish::<PROD>(c.start, c.n),
            SyncMode::Rts => self.rts_publish::<PROD>(),
        }
    }
}

/// A ring used by a thread that is, for now, the only one on the side it
/// uses: a multi-thread side's head moves with a plain store, no CAS (the
/// `*_single_producer` / `*_single_consumer` twins). HTS and RTS sides keep
/// their heads elsewhere and take their usual path.
struct Solo<'a, T>(&'a Ring<T>);

impl<'a, T: Copy + Send> Solo<'a, T> {
    /// # Safety
    ///
    /// - while the `Solo` lives, no other thread is on the side(s) it is
    ///   used for;
    /// - earlier users of those sides happen-before its creation.
    #[inline(always)]
    unsafe fn new(ring: &'a Ring<T>) -> Self {
        Solo(ring)
    }
}

// SAFETY: on a multi-thread side no one else claims while the `Solo` lives
// (`new`'s contract), so the plain head store claims slots the other side's
// tail has passed (`avail`) for us alone; the tail store is Release. Other
// modes take `Ring`'s own claim and publish.
unsafe impl<T: Copy + Send, const PROD: bool> RingEnd<T, PROD> for Solo<'_, T> {
    #[inline(always)]
    fn ring(&self) -> &Ring<T> {
        self.0
    }

    #[inline(always)]
    fn claim(&self, n: u32, b: Behaviour) -> Claim {
        let r = self.0;
        if r.mode(PROD) != SyncMode::Multi {
            return RingEnd::<T, PROD>::claim(r, n, b);
        }
        let (ht, other) = r.side(PROD);
        // Relaxed: exclusive by `new`'s contract; earlier users
        // happen-before us.
        let head = ht.head.load(Ordering::Relaxed);
        // Acquire: pairs with the Release tail store of the other side.
        let o = other.load(Ordering::Acquire);
        let avail = r.avail::<PROD>(head, o);
        let k = grant(n, avail, b);
        if k != 0 {
            // Relaxed: only this side's claimers read the head, and none is
            // concurrent.
            ht.head.store(head.wrapping_add(k), Ordering::Relaxed);
        }
        Claim {
            start: head,
            n: k,
            avail,
        }
    }

    #[inline(always)]
    fn publish(&self, c: Claim) {
        let r = self.0;
        if r.mode(PROD) != SyncMode::Multi {
            return RingEnd::<T, PROD>::publish(r, c);
        }
        let (ht, _) = r.side(PROD);
        // Release: pairs with the other side's Acquire tail load.
        ht.tail.store(c.start.wrapping_add(c.n), Ordering::Release);
    }
}
