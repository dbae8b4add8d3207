//! [`Producer`] and [`Consumer`]: the two ends of a [split](crate::Ring::split)
//! ring, each typed by its side's [`Mode`]. One generic pair for every
//! mode; what differs between modes is in the type: shared modes' ends are
//! `Clone + Send + Sync`, a [`Single`](crate::Single) end is `Send` only,
//! and zero-copy exists only for [`InPlaceMode`]s.

use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::buffer::{Sink, Source};
use crate::error::{RingEmpty, RingFull, TryDequeueError};
use crate::guard::{ReadGuard, WriteGuard};
use crate::indices::{Behaviour, Claim};
use crate::mode::sealed::Algorithm;
use crate::mode::{InPlaceMode, Mode, Multi, SharedMode};
use crate::ops::End;
use crate::raw::RawRing;
use crate::sync::Ordering;

/// The producer end of a ring, its side in mode `M`.
///
/// A [`Single`](crate::Single) producer is its ring's only one: it moves to
/// another thread, but cannot be shared or cloned, so single-ness is checked
/// by the compiler. Producers of a [`SharedMode`] are cloned, one per
/// producing thread.
///
/// ```
/// use pktmem_ring::{Ring, Single};
/// let (p, c) = Ring::<Vec<u8>>::builder(64)
///     .producer(Single)
///     .consumer(Single)
///     .build()
///     .unwrap()
///     .split();
/// let t = std::thread::spawn(move || {
///     for i in 0..100u8 {
///         let mut v = vec![i];
///         while let Err(back) = p.enqueue(v) {
///             v = back;
///         }
///     }
/// });
/// for i in 0..100u8 {
///     loop {
///         if let Some(v) = c.dequeue() {
///             assert_eq!(v, [i]);
///             break;
///         }
///     }
/// }
/// t.join().unwrap();
/// ```
///
/// Sharing a single producer between threads does not compile:
///
/// ```compile_fail
/// use pktmem_ring::{Ring, Single};
/// use std::sync::Arc;
/// let (p, _c) = Ring::<u32>::builder(8).producer(Single).build().unwrap().split();
/// let p = Arc::new(p);
/// let p2 = Arc::clone(&p);
/// std::thread::spawn(move || p2.enqueue(1)); // `Producer<u32, Single>` is not `Sync`
/// p.enqueue(2).unwrap();
/// ```
///
/// Nor does cloning it:
///
/// ```compile_fail
/// use pktmem_ring::{Ring, Single};
/// let (p, _c) = Ring::<u32>::builder(8).producer(Single).build().unwrap().split();
/// let p2 = p.clone();
/// ```
pub struct Producer<T, M: Mode = Multi> {
    ring: Arc<RawRing<T>>,
    state: M::State,
}

/// The consumer end of a ring, its side in mode `M`; see [`Producer`].
///
/// ```compile_fail
/// use pktmem_ring::{Ring, Single};
/// let (_p, c) = Ring::<u32>::builder(8).consumer(Single).build().unwrap().split();
/// let c2 = c.clone(); // a single consumer is not `Clone`
/// ```
///
/// ```compile_fail
/// use pktmem_ring::{Ring, Single};
/// let (_p, c) = Ring::<u32>::builder(8).consumer(Single).build().unwrap().split();
/// std::thread::scope(|s| {
///     s.spawn(|| c.dequeue()); // `&Consumer<u32, Single>` cannot cross threads
///     c.dequeue();
/// });
/// ```
///
/// Peek and zero-copy exist only where the mode allows them:
///
/// ```compile_fail
/// use pktmem_ring::Ring;
/// let (_p, mut c) = Ring::<u32>::new(8).unwrap().split(); // multi-thread consumers
/// let g = c.dequeue_start(4);
/// ```
///
/// A peek lends `&T`, so a read guard is shared between threads only when
/// `T` is `Sync` (here `Cell` is not):
///
/// ```compile_fail
/// use pktmem_ring::{Hts, Ring};
/// use std::cell::Cell;
/// let r = Ring::<Cell<u32>>::builder(4).consumer(Hts).build().unwrap();
/// r.enqueue(Cell::new(1)).unwrap();
/// let g = r.dequeue_start(1);
/// std::thread::scope(|s| {
///     s.spawn(|| g.get(0).unwrap().set(2));
///     g.get(0).unwrap().set(3);
/// });
/// ```
pub struct Consumer<T, M: Mode = Multi> {
    ring: Arc<RawRing<T>>,
    state: M::State,
}

impl<T: Send, M: SharedMode> Clone for Producer<T, M> {
    fn clone(&self) -> Self {
        // Relaxed: a new end made from a live one, as `Arc::clone` counts.
        self.ring.ends.producers.fetch_add(1, Ordering::Relaxed);
        Producer {
            ring: Arc::clone(&self.ring),
            state: (),
        }
    }
}

impl<T: Send, M: SharedMode> Clone for Consumer<T, M> {
    fn clone(&self) -> Self {
        // Relaxed: as for `Producer::clone`.
        self.ring.ends.consumers.fetch_add(1, Ordering::Relaxed);
        Consumer {
            ring: Arc::clone(&self.ring),
            state: (),
        }
    }
}

/// Claims exactly `n` slots of side `PROD` for a zero-copy guard, or returns
/// the room there was.
pub(crate) fn reserve_bulk<T, A: Algorithm, const PROD: bool>(
    ring: &RawRing<T>,
    state: &A::State,
    n: usize,
) -> Result<Claim, usize> {
    if n > ring.capacity() {
        let used = ring.len();
        return Err(if PROD { ring.capacity() - used } else { used });
    }
    // No truncation: `n <= capacity <= MAX_CAPACITY`.
    let c = End::<T, A, PROD>::new(ring, state).claim(n as u32, Behaviour::Fixed);
    if c.n as usize == n {
        Ok(c)
    } else {
        Err(c.avail as usize)
    }
}

impl<T: Send, M: Mode> Producer<T, M> {
    pub(crate) fn new(ring: Arc<RawRing<T>>) -> Self {
        let state = M::state::<true>(&ring.ix);
        // Relaxed: the end is made before it is handed to any thread.
        ring.ends.producers.fetch_add(1, Ordering::Relaxed);
        Producer { ring, state }
    }

    /// Whether every consumer end of the ring has been dropped: what is
    /// enqueued from now on is never dequeued (it is dropped with the
    /// ring's last end).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(4).unwrap().split();
    /// assert!(!p.is_disconnected());
    /// drop(c);
    /// assert!(p.is_disconnected());
    /// ```
    #[inline]
    pub fn is_disconnected(&self) -> bool {
        // Acquire: pairs with the Release decrement in `Consumer::drop`, so
        // what the consumers did before dropping happens before what the
        // caller does on seeing 0.
        self.ring.ends.consumers.load(Ordering::Acquire) == 0
    }

    #[inline(always)]
    fn end(&self) -> End<'_, T, M, true> {
        End::new(&self.ring, &self.state)
    }

    /// Enqueues one value, or hands it back when the ring is full.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<String>::new(1).unwrap().split();
    /// assert_eq!(p.enqueue("a".into()), Ok(()));
    /// assert_eq!(p.enqueue("b".into()), Err("b".to_string())); // full: handed back
    /// assert_eq!(c.dequeue().as_deref(), Some("a"));
    /// ```
    #[inline]
    pub fn enqueue(&self, value: T) -> Result<(), T> {
        self.end().enqueue(value)
    }

    /// Enqueues copies of all of `src` or, if they do not fit, nothing.
    ///
    /// ```
    /// use pktmem_ring::{Ring, RingFull, Single};
    /// let (p, c) = Ring::<u32>::builder(3).producer(Single).build().unwrap().split();
    /// p.enqueue_bulk(&[1, 2]).unwrap();
    /// assert_eq!(p.enqueue_bulk(&[3, 4]), Err(RingFull { requested: 2, free: 1 }));
    /// assert_eq!(c.len(), 2);
    /// ```
    #[inline]
    pub fn enqueue_bulk(&self, src: &[T]) -> Result<(), RingFull>
    where
        T: Copy,
    {
        self.end().enqueue_bulk(src)
    }

    /// Enqueues copies of as much of `src` as fits, in order; returns how
    /// many.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (p, c) = Ring::<u32>::builder(3).producer(Single).build().unwrap().split();
    /// assert_eq!(p.enqueue_burst(&[1, 2, 3, 4, 5]), 3);
    /// assert_eq!(c.dequeue(), Some(1));
    /// ```
    #[inline]
    pub fn enqueue_burst(&self, src: &[T]) -> usize
    where
        T: Copy,
    {
        self.end().enqueue_burst(src)
    }

    /// Moves all of `src`'s values into the ring (leaving `src` empty) or,
    /// if they do not fit, none.
    ///
    /// ```
    /// use arrayvec::ArrayVec;
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<Box<u8>>::new(3).unwrap().split();
    /// let mut v: ArrayVec<Box<u8>, 4> = (1..=4).map(Box::new).collect();
    /// assert!(p.enqueue_bulk_from(&mut v).is_err()); // 4 do not fit in 3
    /// v.pop();
    /// p.enqueue_bulk_from(&mut v).unwrap();
    /// assert!(v.is_empty() && c.is_full());
    /// ```
    #[inline]
    pub fn enqueue_bulk_from<S: Source<T> + ?Sized>(&self, src: &mut S) -> Result<(), RingFull> {
        self.end().enqueue_bulk_from(src)
    }

    /// Moves as many of `src`'s values as fit into the ring, front first;
    /// returns how many. The rest stay in `src`, in order.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, _c) = Ring::<String>::new(2).unwrap().split();
    /// let mut v: Vec<String> = ["a", "b", "c"].map(String::from).into();
    /// assert_eq!(p.enqueue_burst_from(&mut v), 2);
    /// assert_eq!(v, ["c"]);
    /// ```
    #[inline]
    pub fn enqueue_burst_from<S: Source<T> + ?Sized>(&self, src: &mut S) -> usize {
        self.end().enqueue_burst_from(src)
    }
}

impl<T: Send, M: InPlaceMode> Producer<T, M> {
    /// Reserves up to `max` free slots in place (zero-copy enqueue); see
    /// [`WriteGuard`]. Fewer (possibly 0) are reserved when fewer are free.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, c) = Ring::<u32>::builder(3).producer(Single).build().unwrap().split();
    /// let mut w = p.enqueue_start(5);
    /// assert_eq!(w.len(), 3); // as many as are free
    /// w.push(1).unwrap();
    /// assert_eq!(w.commit(), 1);
    /// assert_eq!(c.dequeue(), Some(1));
    /// ```
    pub fn enqueue_start(&mut self, max: usize) -> WriteGuard<'_, T, M> {
        let c = self
            .end()
            .claim(crate::indices::len_u32(max), Behaviour::Variable);
        WriteGuard::new(&self.ring, &self.state, c)
    }

    /// Reserves exactly `n` free slots in place, or none (all or nothing).
    ///
    /// ```
    /// use pktmem_ring::{Hts, Ring, RingFull};
    /// let (mut p, _c) = Ring::<u32>::builder(4).producer(Hts).build().unwrap().split();
    /// assert_eq!(p.enqueue_start_bulk(5).unwrap_err(), RingFull { requested: 5, free: 4 });
    /// assert_eq!(p.enqueue_start_bulk(4).unwrap().len(), 4);
    /// ```
    pub fn enqueue_start_bulk(&mut self, n: usize) -> Result<WriteGuard<'_, T, M>, RingFull> {
        match reserve_bulk::<T, M, true>(&self.ring, &self.state, n) {
            Ok(c) => Ok(WriteGuard::new(&self.ring, &self.state, c)),
            Err(free) => Err(RingFull { requested: n, free }),
        }
    }
}

impl<T: Send, M: Mode> Consumer<T, M> {
    pub(crate) fn new(ring: Arc<RawRing<T>>) -> Self {
        let state = M::state::<false>(&ring.ix);
        // Relaxed: as in `Producer::new`.
        ring.ends.consumers.fetch_add(1, Ordering::Relaxed);
        Consumer { ring, state }
    }

    /// Whether every producer end of the ring has been dropped. Once it
    /// says so, every value they enqueued is visible to this end: a dequeue
    /// that then finds the ring empty means the stream has ended (no value
    /// can arrive any more). [`try_dequeue`](Self::try_dequeue) does that
    /// check for one value.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(4).unwrap().split();
    /// let t = std::thread::spawn(move || { p.enqueue_bulk(&[1, 2, 3]).unwrap(); });
    /// let mut got = Vec::new();
    /// loop {
    ///     let ended = c.is_disconnected(); // first: then the ring's last values are visible
    ///     while let Some(v) = c.dequeue() { got.push(v); }
    ///     if ended { break; }
    ///     std::hint::spin_loop();
    /// }
    /// t.join().unwrap();
    /// assert_eq!(got, [1, 2, 3]);
    /// ```
    #[inline]
    pub fn is_disconnected(&self) -> bool {
        // Acquire: pairs with the Release decrement in `Producer::drop`, so
        // every enqueue of the dropped producers (their tail publications)
        // happens before the caller's next dequeue.
        self.ring.ends.producers.load(Ordering::Acquire) == 0
    }

    /// One value, or why there is none: [`TryDequeueError::Empty`] (a
    /// producer end is alive: more may come) or
    /// [`TryDequeueError::Disconnected`] (every producer end is gone and
    /// the ring is empty: the stream has ended).
    ///
    /// ```
    /// use pktmem_ring::{Ring, TryDequeueError};
    /// let (p, c) = Ring::<u32>::new(4).unwrap().split();
    /// assert_eq!(c.try_dequeue(), Err(TryDequeueError::Empty));
    /// p.enqueue(7).unwrap();
    /// drop(p);
    /// assert_eq!(c.try_dequeue(), Ok(7)); // what was sent is still there
    /// assert_eq!(c.try_dequeue(), Err(TryDequeueError::Disconnected));
    /// ```
    #[inline]
    pub fn try_dequeue(&self) -> Result<T, TryDequeueError> {
        if let Some(v) = self.dequeue() {
            return Ok(v);
        }
        if !self.is_disconnected() {
            return Err(TryDequeueError::Empty);
        }
        // Every producer is gone and its enqueues are visible now (the
        // Acquire above): a last look decides.
        self.dequeue().ok_or(TryDequeueError::Disconnected)
    }

    #[inline(always)]
    fn end(&self) -> End<'_, T, M, false> {
        End::new(&self.ring, &self.state)
    }

    /// Dequeues one value, or `None` when the ring is empty.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<String>::new(4).unwrap().split();
    /// assert_eq!(c.dequeue(), None);
    /// p.enqueue("x".into()).unwrap();
    /// assert_eq!(c.dequeue().as_deref(), Some("x"));
    /// ```
    #[inline]
    pub fn dequeue(&self) -> Option<T> {
        self.end().dequeue()
    }

    /// Fills all of `out` or, if the ring holds fewer, dequeues nothing.
    ///
    /// ```
    /// use pktmem_ring::{Ring, RingEmpty, Single};
    /// let (p, c) = Ring::<u32>::builder(4).consumer(Single).build().unwrap().split();
    /// p.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// let mut out = [0; 2];
    /// c.dequeue_bulk(&mut out).unwrap();
    /// assert_eq!(out, [1, 2]);
    /// assert_eq!(c.dequeue_bulk(&mut out), Err(RingEmpty { requested: 2, available: 1 }));
    /// ```
    #[inline]
    pub fn dequeue_bulk(&self, out: &mut [T]) -> Result<(), RingEmpty>
    where
        T: Copy,
    {
        self.end().dequeue_bulk(out)
    }

    /// Dequeues as many values as are there, up to `out.len()`; returns how
    /// many were written to the front of `out`.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (p, c) = Ring::<u32>::builder(4).consumer(Single).build().unwrap().split();
    /// p.enqueue_bulk(&[1, 2]).unwrap();
    /// let mut out = [0; 4];
    /// assert_eq!(c.dequeue_burst(&mut out), 2);
    /// assert_eq!(out[..2], [1, 2]);
    /// ```
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        self.end().dequeue_burst(out)
    }

    /// Moves `out.len()` values into uninitialised memory, or none if the
    /// ring holds fewer; returns `out`, now initialised. The values are the
    /// caller's: `out` does not drop them.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// use std::mem::MaybeUninit;
    /// let (p, c) = Ring::<u32>::new(4).unwrap().split();
    /// p.enqueue_bulk(&[1, 2]).unwrap();
    /// let mut buf = [MaybeUninit::uninit(); 2];
    /// assert_eq!(c.dequeue_bulk_uninit(&mut buf).unwrap(), &[1, 2]);
    /// ```
    #[inline]
    pub fn dequeue_bulk_uninit<'o>(
        &self,
        out: &'o mut [MaybeUninit<T>],
    ) -> Result<&'o mut [T], RingEmpty> {
        self.end().dequeue_bulk_uninit(out)
    }

    /// Moves up to `out.len()` values into uninitialised memory; returns the
    /// initialised front of `out` (the caller's).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// use std::mem::MaybeUninit;
    /// let (p, c) = Ring::<u32>::new(4).unwrap().split();
    /// p.enqueue(3).unwrap();
    /// let mut buf = [MaybeUninit::uninit(); 4];
    /// assert_eq!(c.dequeue_burst_uninit(&mut buf), &[3]);
    /// ```
    #[inline]
    pub fn dequeue_burst_uninit<'o>(&self, out: &'o mut [MaybeUninit<T>]) -> &'o mut [T] {
        self.end().dequeue_burst_uninit(out)
    }

    /// Moves up to `max` values onto the end of `dst` (a `Vec` grows for
    /// them; an `ArrayVec` takes what fits); returns how many.
    ///
    /// ```
    /// use arrayvec::ArrayVec;
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<Box<u32>>::new(8).unwrap().split();
    /// for i in 0..3 {
    ///     p.enqueue(Box::new(i)).unwrap();
    /// }
    /// let mut out = ArrayVec::<Box<u32>, 32>::new();
    /// assert_eq!(c.dequeue_burst_into(&mut out, 32), 3);
    /// assert_eq!(*out[2], 2);
    /// ```
    #[inline]
    pub fn dequeue_burst_into<S: Sink<T> + ?Sized>(&self, dst: &mut S, max: usize) -> usize {
        self.end().dequeue_burst_into(dst, max)
    }
}

impl<T: Send, M: InPlaceMode> Consumer<T, M> {
    /// Reserves up to `max` values in place (peek / zero-copy dequeue); see
    /// [`ReadGuard`].
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (p, mut c) = Ring::<u32>::builder(4).consumer(Single).build().unwrap().split();
    /// p.enqueue_bulk(&[1, 2]).unwrap();
    /// let g = c.dequeue_start(4);
    /// assert_eq!((g.len(), g.get(0)), (2, Some(&1)));
    /// g.finish(1); // consume only the first
    /// assert_eq!(c.dequeue(), Some(2));
    /// ```
    pub fn dequeue_start(&mut self, max: usize) -> ReadGuard<'_, T, M> {
        let c = self
            .end()
            .claim(crate::indices::len_u32(max), Behaviour::Variable);
        ReadGuard::new(&self.ring, &self.state, c)
    }

    /// Reserves exactly `n` values in place, or none (all or nothing).
    ///
    /// ```
    /// use pktmem_ring::{Ring, RingEmpty, Single};
    /// let (p, mut c) = Ring::<u32>::builder(4).consumer(Single).build().unwrap().split();
    /// p.enqueue(1).unwrap();
    /// assert_eq!(c.dequeue_start_bulk(2).unwrap_err(), RingEmpty { requested: 2, available: 1 });
    /// assert_eq!(c.dequeue_start_bulk(1).unwrap().get(0), Some(&1));
    /// ```
    pub fn dequeue_start_bulk(&mut self, n: usize) -> Result<ReadGuard<'_, T, M>, RingEmpty> {
        match reserve_bulk::<T, M, false>(&self.ring, &self.state, n) {
            Ok(c) => Ok(ReadGuard::new(&self.ring, &self.state, c)),
            Err(available) => Err(RingEmpty {
                requested: n,
                available,
            }),
        }
    }
}

impl<T: Send, M: Mode> Producer<T, M> {
    /// Values the ring can hold.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(3).unwrap().split();
    /// assert_eq!((p.capacity(), c.capacity()), (3, 3));
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Values in the ring now (a snapshot when other threads are active).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(3).unwrap().split();
    /// p.enqueue(1).unwrap();
    /// assert_eq!((p.len(), c.len()), (1, 1));
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Free slots now.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(3).unwrap().split();
    /// p.enqueue(1).unwrap();
    /// assert_eq!((p.free_count(), c.free_count()), (2, 2));
    /// ```
    #[inline]
    pub fn free_count(&self) -> usize {
        self.capacity() - self.len()
    }

    /// Whether the ring holds nothing.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(3).unwrap().split();
    /// assert!(p.is_empty() && c.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring has no free slot.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(1).unwrap().split();
    /// p.enqueue(1).unwrap();
    /// assert!(p.is_full() && c.is_full());
    /// ```
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }
}

impl<T: Send, M: Mode> Consumer<T, M> {
    /// Values the ring can hold.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(3).unwrap().split();
    /// assert_eq!((p.capacity(), c.capacity()), (3, 3));
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.ring.capacity()
    }

    /// Values in the ring now (a snapshot when other threads are active).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(3).unwrap().split();
    /// p.enqueue(1).unwrap();
    /// assert_eq!((p.len(), c.len()), (1, 1));
    /// ```
    #[inline]
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Free slots now.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(3).unwrap().split();
    /// p.enqueue(1).unwrap();
    /// assert_eq!((p.free_count(), c.free_count()), (2, 2));
    /// ```
    #[inline]
    pub fn free_count(&self) -> usize {
        self.capacity() - self.len()
    }

    /// Whether the ring holds nothing.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(3).unwrap().split();
    /// assert!(p.is_empty() && c.is_empty());
    /// ```
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the ring has no free slot.
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u32>::new(1).unwrap().split();
    /// p.enqueue(1).unwrap();
    /// assert!(p.is_full() && c.is_full());
    /// ```
    #[inline]
    pub fn is_full(&self) -> bool {
        self.len() == self.capacity()
    }
}

impl<T: Send, M: Mode> fmt::Debug for Producer<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("mode", &M::NAME)
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T: Send, M: Mode> fmt::Debug for Consumer<T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("mode", &M::NAME)
            .field("capacity", &self.capacity())
            .field("len", &self.len())
            .finish()
    }
}

impl<T, M: Mode> Drop for Producer<T, M> {
    fn drop(&mut self) {
        // Release: this end's enqueues happen before a consumer's Acquire
        // load in `Consumer::is_disconnected` that sees the count fall.
        self.ring.ends.producers.fetch_sub(1, Ordering::Release);
    }
}

impl<T, M: Mode> Drop for Consumer<T, M> {
    fn drop(&mut self) {
        // Release: pairs with the Acquire load in `Producer::is_disconnected`.
        self.ring.ends.consumers.fetch_sub(1, Ordering::Release);
    }
}
