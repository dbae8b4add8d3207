//! [`Ring`]: a ring whose sides' modes are in its type. Used directly
//! (shared by reference, `&self` operations) when both sides are of a
//! [`SharedMode`]; [`split`](Ring::split) into a [`Producer`] and a
//! [`Consumer`] otherwise (or to hand the ends to threads).

use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::buffer::{Sink, Source};
use crate::builder::RingBuilder;
use crate::ends::{Consumer, Producer};
use crate::error::{BuildError, RingEmpty, RingFull};
use crate::guard::{ReadGuard, WriteGuard};
use crate::indices::{len_u32, Behaviour};
use crate::mode::{Hts, Mode, Multi, Rts, SharedMode, Solo};
use crate::ops::End;
use crate::raw::RawRing;

/// A fixed-capacity lock-free ring of owned values, `P` the producers'
/// [`Mode`] and `C` the consumers' ([`Multi`] for both unless built
/// otherwise).
///
/// `Ring::new(n)` holds exactly `n` values and is multi-producer /
/// multi-consumer: share it by reference (`Arc<Ring<T>>`, a `static`), as
/// crossbeam's `ArrayQueue`, or [`split`](Self::split) it into ends to hand
/// to threads. [`Ring::builder`] picks other modes ([`Single`](crate::Single),
/// [`Hts`], [`Rts`]), DPDK sizing and where the slots live. Whatever is left
/// in the ring when it (or its last end) drops is dropped with it.
///
/// ```
/// use pktmem_ring::Ring;
/// use std::sync::Arc;
///
/// let ring = Arc::new(Ring::<String>::new(1024).unwrap()); // holds 1024
/// let r2 = Arc::clone(&ring);
/// let t = std::thread::spawn(move || {
///     for i in 0..100 {
///         let mut s = i.to_string();
///         while let Err(back) = r2.enqueue(s) {
///             s = back; // full: handed back, try again
///         }
///     }
/// });
/// let mut got = 0;
/// while got < 100 {
///     if let Some(s) = ring.dequeue() {
///         assert_eq!(s, got.to_string());
///         got += 1;
///     }
/// }
/// t.join().unwrap();
/// ```
pub struct Ring<T, P = Multi, C = Multi> {
    raw: RawRing<T>,
    _modes: PhantomData<(P, C)>,
}

impl<T: Send> Ring<T> {
    /// A multi-producer / multi-consumer ring on the heap holding exactly
    /// `capacity` values (any count from 1 to [`MAX_CAPACITY`](crate::MAX_CAPACITY)).
    ///
    /// ```
    /// use pktmem_ring::{BuildError, Ring};
    /// assert_eq!(Ring::<usize>::new(1000).unwrap().capacity(), 1000);
    /// assert_eq!(Ring::<usize>::new(0).unwrap_err(), BuildError::ZeroCapacity);
    /// ```
    pub fn new(capacity: usize) -> Result<Self, BuildError> {
        Self::builder(capacity).build()
    }

    /// A builder for a ring of `capacity`: modes, sizing, memory.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (p, c) = Ring::<u64>::builder(100)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// assert_eq!(p.enqueue_burst(&[7; 150]), 100);
    /// assert!(c.is_full());
    /// ```
    pub fn builder(capacity: usize) -> RingBuilder<T> {
        RingBuilder::new(capacity)
    }
}

impl<T: Send, P: Mode, C: Mode> Ring<T, P, C> {
    pub(crate) fn from_raw(raw: RawRing<T>) -> Self {
        Ring {
            raw,
            _modes: PhantomData,
        }
    }

    /// Splits the ring into its producer and consumer ends, typed by mode:
    /// ends of a shared mode can be cloned, a [`Single`](crate::Single) end
    /// cannot. The ring (and what is left in it) is dropped with the last
    /// end.
    ///
    /// ```
    /// use pktmem_ring::{Consumer, Producer, Ring, Single};
    /// let (p, c): (Producer<u16>, Consumer<u16, Single>) =
    ///     Ring::builder(8).consumer(Single).build().unwrap().split();
    /// p.clone().enqueue(1).unwrap();
    /// assert_eq!(c.dequeue(), Some(1));
    /// ```
    pub fn split(self) -> (Producer<T, P>, Consumer<T, C>) {
        let raw = Arc::new(self.raw);
        (Producer::new(Arc::clone(&raw)), Consumer::new(raw))
    }

    /// Values the ring can hold.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(2).unwrap();
    /// assert_eq!(r.capacity(), 2);
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.raw.capacity()
    }

    /// Values in the ring now (a snapshot when other threads are active).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(7).unwrap();
    /// r.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// assert_eq!((r.len(), r.free_count()), (3, 4));
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.raw.len()
    }

    /// Free slots now (`capacity() - len()`).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(2).unwrap();
    /// r.enqueue(1).unwrap();
    /// assert_eq!(r.free_count(), 1);
    /// ```
    #[inline]
    pub fn free_count(&self) -> usize {
        self.capacity() - self.len()
    }

    /// Whether the ring holds nothing.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(2).unwrap();
    /// assert!(r.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring has no free slot.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(2).unwrap();
    /// r.enqueue_bulk(&[1, 2]).unwrap();
    /// assert!(r.is_full());
    /// ```
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }

    /// Addresses of the slot array: where the ring's values live (in the
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
        self.raw.memory_range()
    }

    /// Empties the ring, dropping what is in it; `&mut self` proves no
    /// other thread is inside.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let mut r = Ring::<Box<u32>>::new(8).unwrap();
    /// r.enqueue(Box::new(1)).unwrap();
    /// r.reset(); // the box is dropped here
    /// assert!(r.is_empty());
    /// ```
    pub fn reset(&mut self) {
        self.raw.reset();
    }
}

impl<T: Send, C: Mode> Ring<T, Rts, C> {
    /// The RTS producer side's head-tail distance limit (see
    /// [`RingBuilder::producer_max_distance`]).
    ///
    /// ```
    /// use pktmem_ring::{Ring, Rts};
    /// let r = Ring::<u32>::builder(64).producer(Rts).producer_max_distance(4).build().unwrap();
    /// assert_eq!(r.producer_max_distance(), 4);
    /// ```
    pub fn producer_max_distance(&self) -> u32 {
        self.raw.ix.prod_max_distance
    }
}

impl<T: Send, P: Mode> Ring<T, P, Rts> {
    /// The RTS consumer side's head-tail distance limit (see
    /// [`RingBuilder::consumer_max_distance`]).
    ///
    /// ```
    /// use pktmem_ring::{Ring, Rts};
    /// let r = Ring::<u32>::builder(64).consumer(Rts).build().unwrap();
    /// assert_eq!(r.consumer_max_distance(), 8); // an eighth of the capacity
    /// ```
    pub fn consumer_max_distance(&self) -> u32 {
        self.raw.ix.cons_max_distance
    }
}

impl<T: Send, P: SharedMode, C: Mode> Ring<T, P, C> {
    #[inline(always)]
    fn prod(&self) -> End<'_, T, P, true> {
        End::new(&self.raw, &())
    }

    /// Enqueues one value, or hands it back when the ring is full.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<String>::new(1).unwrap();
    /// assert_eq!(r.enqueue("a".into()), Ok(()));
    /// assert_eq!(r.enqueue("b".into()), Err("b".to_string())); // full: handed back
    /// ```
    #[inline]
    pub fn enqueue(&self, value: T) -> Result<(), T> {
        self.prod().enqueue(value)
    }

    /// Enqueues copies of all of `src` or, if they do not fit, nothing.
    ///
    /// ```
    /// use pktmem_ring::{Ring, RingFull};
    /// let r = Ring::<u32>::new(3).unwrap();
    /// r.enqueue_bulk(&[1, 2]).unwrap();
    /// assert_eq!(r.enqueue_bulk(&[3, 4]), Err(RingFull { requested: 2, free: 1 }));
    /// assert_eq!(r.len(), 2);
    /// ```
    #[inline]
    pub fn enqueue_bulk(&self, src: &[T]) -> Result<(), RingFull>
    where
        T: Copy,
    {
        self.prod().enqueue_bulk(src)
    }

    /// Enqueues copies of as much of `src` as fits, in order; returns how
    /// many.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(3).unwrap();
    /// assert_eq!(r.enqueue_burst(&[1, 2, 3, 4, 5]), 3);
    /// ```
    #[inline]
    pub fn enqueue_burst(&self, src: &[T]) -> usize
    where
        T: Copy,
    {
        self.prod().enqueue_burst(src)
    }

    /// Moves all of `src`'s values into the ring (leaving `src` empty) or,
    /// if they do not fit, none.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<Box<u8>>::new(3).unwrap();
    /// let mut v = vec![Box::new(1), Box::new(2)];
    /// r.enqueue_bulk_from(&mut v).unwrap();
    /// assert!(v.is_empty());
    /// let mut v = vec![Box::new(3), Box::new(4)];
    /// assert!(r.enqueue_bulk_from(&mut v).is_err());
    /// assert_eq!(v.len(), 2); // nothing moved
    /// ```
    #[inline]
    pub fn enqueue_bulk_from<S: Source<T> + ?Sized>(&self, src: &mut S) -> Result<(), RingFull> {
        self.prod().enqueue_bulk_from(src)
    }

    /// Moves as many of `src`'s values as fit into the ring, front first;
    /// returns how many. The rest stay in `src`, in order.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<String>::new(2).unwrap();
    /// let mut v: Vec<String> = ["a", "b", "c"].map(String::from).into();
    /// assert_eq!(r.enqueue_burst_from(&mut v), 2);
    /// assert_eq!(v, ["c"]);
    /// ```
    #[inline]
    pub fn enqueue_burst_from<S: Source<T> + ?Sized>(&self, src: &mut S) -> usize {
        self.prod().enqueue_burst_from(src)
    }
}

impl<T: Send, C: Mode> Ring<T, Multi, C> {
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
    pub unsafe fn enqueue_bulk_single_producer(&self, src: &[T]) -> Result<(), RingFull>
    where
        T: Copy,
    {
        End::<T, Solo, true>::new(&self.raw, &()).enqueue_bulk(src)
    }

    /// [`enqueue_burst`](Self::enqueue_burst) without the CAS.
    ///
    /// # Safety
    ///
    /// As for [`enqueue_bulk_single_producer`](Self::enqueue_bulk_single_producer).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(3).unwrap();
    /// // SAFETY: `r` is local to this thread.
    /// assert_eq!(unsafe { r.enqueue_burst_single_producer(&[1, 2, 3, 4]) }, 3);
    /// ```
    #[inline]
    pub unsafe fn enqueue_burst_single_producer(&self, src: &[T]) -> usize
    where
        T: Copy,
    {
        End::<T, Solo, true>::new(&self.raw, &()).enqueue_burst(src)
    }
}

impl<T: Send, P: Mode, C: SharedMode> Ring<T, P, C> {
    #[inline(always)]
    fn cons(&self) -> End<'_, T, C, false> {
        End::new(&self.raw, &())
    }

    /// Dequeues one value, or `None` when the ring is empty.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<String>::new(4).unwrap();
    /// assert_eq!(r.dequeue(), None);
    /// r.enqueue("x".into()).unwrap();
    /// assert_eq!(r.dequeue().as_deref(), Some("x"));
    /// ```
    #[inline]
    pub fn dequeue(&self) -> Option<T> {
        self.cons().dequeue()
    }

    /// Fills all of `out` or, if the ring holds fewer, dequeues nothing.
    ///
    /// ```
    /// use pktmem_ring::{Ring, RingEmpty};
    /// let r = Ring::<u32>::new(4).unwrap();
    /// r.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// let mut out = [0; 2];
    /// r.dequeue_bulk(&mut out).unwrap();
    /// assert_eq!(out, [1, 2]);
    /// assert_eq!(r.dequeue_bulk(&mut out), Err(RingEmpty { requested: 2, available: 1 }));
    /// ```
    #[inline]
    pub fn dequeue_bulk(&self, out: &mut [T]) -> Result<(), RingEmpty>
    where
        T: Copy,
    {
        self.cons().dequeue_bulk(out)
    }

    /// Dequeues as many values as are there, up to `out.len()`; returns how
    /// many were written to the front of `out`.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(4).unwrap();
    /// r.enqueue_bulk(&[1, 2]).unwrap();
    /// let mut out = [0; 4];
    /// assert_eq!(r.dequeue_burst(&mut out), 2);
    /// assert_eq!(out[..2], [1, 2]);
    /// ```
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        self.cons().dequeue_burst(out)
    }

    /// Moves `out.len()` values into uninitialised memory, or none if the
    /// ring holds fewer; returns `out`, now initialised. The values are the
    /// caller's: `out` does not drop them (move them on, e.g. with
    /// `ptr::read`, or use [`dequeue_burst_into`](Self::dequeue_burst_into)).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// use std::mem::MaybeUninit;
    /// let r = Ring::<u32>::new(4).unwrap();
    /// r.enqueue_bulk(&[1, 2]).unwrap();
    /// let mut buf = [MaybeUninit::uninit(); 2];
    /// assert_eq!(r.dequeue_bulk_uninit(&mut buf).unwrap(), &[1, 2]);
    /// ```
    #[inline]
    pub fn dequeue_bulk_uninit<'o>(
        &self,
        out: &'o mut [MaybeUninit<T>],
    ) -> Result<&'o mut [T], RingEmpty> {
        self.cons().dequeue_bulk_uninit(out)
    }

    /// Moves up to `out.len()` values into uninitialised memory; returns the
    /// initialised front of `out` (the caller's, as in
    /// [`dequeue_bulk_uninit`](Self::dequeue_bulk_uninit)).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// use std::mem::MaybeUninit;
    /// let r = Ring::<u32>::new(4).unwrap();
    /// r.enqueue(3).unwrap();
    /// let mut buf = [MaybeUninit::uninit(); 4];
    /// assert_eq!(r.dequeue_burst_uninit(&mut buf), &[3]);
    /// ```
    #[inline]
    pub fn dequeue_burst_uninit<'o>(&self, out: &'o mut [MaybeUninit<T>]) -> &'o mut [T] {
        self.cons().dequeue_burst_uninit(out)
    }

    /// Moves up to `max` values onto the end of `dst` (a `Vec` grows for
    /// them; an `ArrayVec` takes what fits); returns how many.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let r = Ring::<String>::new(4).unwrap();
    /// r.enqueue("a".into()).unwrap();
    /// r.enqueue("b".into()).unwrap();
    /// let mut out = Vec::new();
    /// assert_eq!(r.dequeue_burst_into(&mut out, 8), 2);
    /// assert_eq!(out, ["a", "b"]);
    /// ```
    #[inline]
    pub fn dequeue_burst_into<S: Sink<T> + ?Sized>(&self, dst: &mut S, max: usize) -> usize {
        self.cons().dequeue_burst_into(dst, max)
    }
}

impl<T: Send, P: Mode> Ring<T, P, Multi> {
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
    pub unsafe fn dequeue_bulk_single_consumer(&self, out: &mut [T]) -> Result<(), RingEmpty>
    where
        T: Copy,
    {
        End::<T, Solo, false>::new(&self.raw, &()).dequeue_bulk(out)
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
    pub unsafe fn dequeue_burst_single_consumer(&self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        End::<T, Solo, false>::new(&self.raw, &()).dequeue_burst(out)
    }
}

impl<T: Send, C: Mode> Ring<T, Hts, C> {
    /// Reserves up to `max` free slots in place for writing (zero-copy
    /// enqueue). Other producers wait until the returned guard is committed
    /// or dropped — so a thread must not hold two at once. Fewer (possibly
    /// 0) slots are reserved when fewer are free.
    ///
    /// ```
    /// use pktmem_ring::{Hts, Ring};
    /// let r = Ring::<u32>::builder(8).producer(Hts).build().unwrap();
    /// let mut w = r.enqueue_start(3);
    /// w.push(10).unwrap();
    /// w.push(11).unwrap();
    /// w.commit(); // publishes the two pushed
    /// assert_eq!(r.len(), 2);
    /// ```
    ///
    /// Only sides that can hold slots in place have it:
    ///
    /// ```compile_fail
    /// use pktmem_ring::Ring;
    /// let r = Ring::<u32>::new(8).unwrap(); // multi-thread producers
    /// let w = r.enqueue_start(3);
    /// ```
    pub fn enqueue_start(&self, max: usize) -> WriteGuard<'_, T, Hts> {
        let c = self.prod().claim(len_u32(max), Behaviour::Variable);
        WriteGuard::new(&self.raw, &(), c)
    }

    /// Reserves exactly `n` free slots in place, or none (all or nothing,
    /// as DPDK's `rte_ring_enqueue_zc_bulk_start`).
    ///
    /// ```
    /// use pktmem_ring::{Hts, Ring, RingFull};
    /// let r = Ring::<u32>::builder(4).producer(Hts).build().unwrap();
    /// assert_eq!(r.enqueue_start_bulk(5).unwrap_err(), RingFull { requested: 5, free: 4 });
    /// let mut w = r.enqueue_start_bulk(4).unwrap();
    /// assert_eq!(w.extend_from_slice(&[1, 2, 3, 4]), 4);
    /// w.commit();
    /// assert!(r.is_full());
    /// ```
    pub fn enqueue_start_bulk(&self, n: usize) -> Result<WriteGuard<'_, T, Hts>, RingFull> {
        crate::ends::reserve_bulk::<T, Hts, true>(&self.raw, &(), n)
            .map(|c| WriteGuard::new(&self.raw, &(), c))
            .map_err(|free| RingFull { requested: n, free })
    }
}

impl<T: Send, P: Mode> Ring<T, P, Hts> {
    /// Reserves up to `max` values in place for reading (peek and zero-copy
    /// dequeue); see [`ReadGuard`]. Other consumers wait while the guard
    /// lives — so a thread must not hold two at once.
    ///
    /// ```
    /// use pktmem_ring::{Hts, Ring};
    /// let r = Ring::<u32>::builder(8).consumer(Hts).build().unwrap();
    /// r.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// let g = r.dequeue_start(2);
    /// assert_eq!((g.get(0), g.get(1), g.len()), (Some(&1), Some(&2), 2));
    /// g.finish(1); // consume only the first
    /// assert_eq!(r.dequeue(), Some(2));
    /// ```
    pub fn dequeue_start(&self, max: usize) -> ReadGuard<'_, T, Hts> {
        let c = End::<T, Hts, false>::new(&self.raw, &()).claim(len_u32(max), Behaviour::Variable);
        ReadGuard::new(&self.raw, &(), c)
    }

    /// Reserves exactly `n` values in place, or none (all or nothing, as
    /// DPDK's `rte_ring_dequeue_zc_bulk_start`).
    ///
    /// ```
    /// use pktmem_ring::{Hts, Ring, RingEmpty};
    /// let r = Ring::<u32>::builder(4).consumer(Hts).build().unwrap();
    /// r.enqueue(1).unwrap();
    /// assert_eq!(r.dequeue_start_bulk(2).unwrap_err(), RingEmpty { requested: 2, available: 1 });
    /// assert_eq!(r.dequeue_start_bulk(1).unwrap().get(0), Some(&1));
    /// ```
    pub fn dequeue_start_bulk(&self, n: usize) -> Result<ReadGuard<'_, T, Hts>, RingEmpty> {
        crate::ends::reserve_bulk::<T, Hts, false>(&self.raw, &(), n)
            .map(|c| ReadGuard::new(&self.raw, &(), c))
            .map_err(|available| RingEmpty {
                requested: n,
                available,
            })
    }
}

impl<T: Send, P: Mode, C: Mode> fmt::Debug for Ring<T, P, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .field("producer", &P::NAME)
            .field("consumer", &C::NAME)
            .field(
                "memory",
                &if self.raw.owns_memory() {
                    "owned"
                } else {
                    "borrowed"
                },
            )
            .finish()
    }
}
