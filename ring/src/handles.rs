//! Ends of a ring with a single-thread side: [`Producer`] and [`Consumer`]
//! (one each, `Send` but neither `Sync` nor `Clone`), and the shared ends
//! [`SharedProducer`] / [`SharedConsumer`] that go with them.
//!
//! A single end keeps its own head in a plain cell and a cached copy of the
//! other side's tail, re-reading the shared atomic only when the cache says
//! full (producer) or empty (consumer) — no CAS and, most of the time, no
//! cache line shared with the other core.

use std::cell::Cell;
use std::fmt;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::error::{NotHts, RingEmpty, RingFull};
use crate::guard::{GuardEnd, ReadGuard, WriteGuard};
use crate::ring::{grant, Behaviour, Claim, Ring};
use crate::sync::Ordering;

/// The only producer of its ring: moves to another thread, but cannot be
/// shared or cloned, so single-ness is checked by the compiler.
///
/// ```
/// use pktmem_ring::Ring;
/// let (p, c) = Ring::<u32>::builder(1024).build_spsc().unwrap();
/// let t = std::thread::spawn(move || {
///     for i in 0..1000 {
///         while p.enqueue(i).is_err() {}
///     }
/// });
/// for i in 0..1000 {
///     loop {
///         if let Some(v) = c.dequeue() {
///             assert_eq!(v, i);
///             break;
///         }
///     }
/// }
/// t.join().unwrap();
/// ```
///
/// Sharing a producer between threads does not compile:
///
/// ```compile_fail
/// use pktmem_ring::Ring;
/// use std::sync::Arc;
/// let (p, _c) = Ring::<u32>::builder(8).build_spsc().unwrap();
/// let p = Arc::new(p);
/// let p2 = Arc::clone(&p);
/// std::thread::spawn(move || p2.enqueue(1)); // `Producer<u32>` is not `Sync`
/// p.enqueue(2).unwrap();
/// ```
pub struct Producer<T: Copy + Send> {
    ring: Arc<Ring<T>>,
    /// Our head = the producer tail we last published; only we move it.
    head: Cell<u32>,
    /// A consumer tail we read; the real one is at or past it.
    cached: Cell<u32>,
}

/// The only consumer of its ring: moves to another thread, but cannot be
/// shared or cloned.
///
/// ```compile_fail
/// use pktmem_ring::Ring;
/// let (_p, c) = Ring::<u32>::builder(8).build_spsc().unwrap();
/// let c2 = c.clone(); // `Consumer` is not `Clone`
/// ```
///
/// ```compile_fail
/// use pktmem_ring::Ring;
/// let (_p, c) = Ring::<u32>::builder(8).build_spsc().unwrap();
/// std::thread::scope(|s| {
///     s.spawn(|| c.dequeue()); // `&Consumer<u32>` cannot cross threads
///     c.dequeue();
/// });
/// ```
pub struct Consumer<T: Copy + Send> {
    ring: Arc<Ring<T>>,
    /// Our head = the consumer tail we last published; only we move it.
    head: Cell<u32>,
    /// A producer tail we read; the real one is at or past it.
    cached: Cell<u32>,
}

/// The shared producer side of a ring whose consumer is a [`Consumer`];
/// clone it for each producing thread.
#[derive(Clone)]
pub struct SharedProducer<T: Copy + Send> {
    ring: Arc<Ring<T>>,
}

/// The shared consumer side of a ring whose producer is a [`Producer`];
/// clone it for each consuming thread.
#[derive(Clone)]
pub struct SharedConsumer<T: Copy + Send> {
    ring: Arc<Ring<T>>,
}

impl<T: Copy + Send> Ring<T> {
    /// Turns the ring into a single-thread [`Producer`] and [`Consumer`].
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u16>::new(8).unwrap().into_spsc();
    /// p.enqueue(1).unwrap();
    /// assert_eq!(c.dequeue(), Some(1));
    /// ```
    pub fn into_spsc(self) -> (Producer<T>, Consumer<T>) {
        let ring = Arc::new(self);
        (Producer::new(Arc::clone(&ring)), Consumer::new(ring))
    }

    /// Turns the ring into a single-thread [`Producer`] and a
    /// [`SharedConsumer`] (in the ring's consumer mode).
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u16>::new(8).unwrap().into_sp_mc();
    /// p.enqueue(1).unwrap();
    /// assert_eq!(c.clone().dequeue(), Some(1));
    /// ```
    pub fn into_sp_mc(self) -> (Producer<T>, SharedConsumer<T>) {
        let ring = Arc::new(self);
        (Producer::new(Arc::clone(&ring)), SharedConsumer { ring })
    }

    /// Turns the ring into a [`SharedProducer`] (in the ring's producer
    /// mode) and a single-thread [`Consumer`].
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, c) = Ring::<u16>::new(8).unwrap().into_mp_sc();
    /// p.clone().enqueue(1).unwrap();
    /// assert_eq!(c.dequeue(), Some(1));
    /// ```
    pub fn into_mp_sc(self) -> (SharedProducer<T>, Consumer<T>) {
        let ring = Arc::new(self);
        (
            SharedProducer {
                ring: Arc::clone(&ring),
            },
            Consumer::new(ring),
        )
    }
}

macro_rules! counts {
    () => {
        /// Elements the ring can hold.
        #[inline]
        pub fn capacity(&self) -> usize {
            self.ring.capacity()
        }

        /// Elements in the ring now.
        #[inline]
        pub fn len(&self) -> usize {
            self.ring.len()
        }

        /// Free slots now.
        #[inline]
        pub fn free_count(&self) -> usize {
            self.ring.free_count()
        }

        /// Whether the ring holds nothing.
        #[inline]
        pub fn is_empty(&self) -> bool {
            self.ring.is_empty()
        }

        /// Whether the ring has no free slot.
        #[inline]
        pub fn is_full(&self) -> bool {
            self.ring.is_full()
        }
    };
}

impl<T: Copy + Send> Producer<T> {
    fn new(ring: Arc<Ring<T>>) -> Self {
        // Relaxed: the ring was owned by this thread until now.
        let head = ring.prod_tail().load(Ordering::Relaxed);
        let cached = ring.cons_tail().load(Ordering::Relaxed);
        Producer {
            ring,
            head: Cell::new(head),
            cached: Cell::new(cached),
        }
    }

    counts!();

    /// Claims up to `n` slots from the cached consumer tail, refreshing it
    /// only when it says there is not enough room.
    #[inline(always)]
    fn claim(&self, n: u32, b: Behaviour) -> Claim {
        let head = self.head.get();
        let mut avail = self.ring.avail::<true>(head, self.cached.get());
        if avail < n {
            // Acquire: pairs with the consumer's Release store of its tail;
            // the slots it released are no longer being read.
            let t = self.ring.cons_tail().load(Ordering::Acquire);
            self.cached.set(t);
            avail = self.ring.avail::<true>(head, t);
        }
        Claim {
            start: head,
            n: grant(n, avail, b),
            avail,
        }
    }

    #[inline(always)]
    fn put(&self, src: *const T, n: u32, b: Behaviour) -> Claim {
        let c = self.claim(n, b);
        if c.n != 0 {
            // SAFETY: we are the ring's only producer (this handle is neither
            // `Sync` nor `Clone`, and the consumer end never enqueues), and
            // slots `start..+n` are free by `claim`; `src` valid for `n`.
            unsafe { self.ring.write_slots(c.start, src, c.n) };
            let end = c.start.wrapping_add(c.n);
            self.head.set(end);
            // Release: pairs with the consumer's Acquire load of the
            // producer tail; our slot writes are visible before it.
            self.ring.prod_tail().store(end, Ordering::Release);
        }
        c
    }

    /// Enqueues one element, or hands it back when the ring is full.
    #[inline]
    pub fn enqueue(&self, value: T) -> Result<(), T> {
        if self.put(&value, 1, Behaviour::Fixed).n == 1 {
            Ok(())
        } else {
            Err(value)
        }
    }

    /// Enqueues all of `src` or nothing.
    #[inline]
    pub fn enqueue_bulk(&self, src: &[T]) -> Result<(), RingFull> {
        if src.len() > self.ring.capacity() {
            return Err(RingFull {
                requested: src.len(),
                free: self.free_count(),
            });
        }
        let n = src.len() as u32;
        let c = self.put(src.as_ptr(), n, Behaviour::Fixed);
        if c.n == n {
            Ok(())
        } else {
            Err(RingFull {
                requested: src.len(),
                free: c.avail as usize,
            })
        }
    }

    /// Enqueues as much of `src` as fits; returns how many.
    #[inline]
    pub fn enqueue_burst(&self, src: &[T]) -> usize {
        let n = src.len().min(u32::MAX as usize) as u32;
        self.put(src.as_ptr(), n, Behaviour::Variable).n as usize
    }

    /// Reserves up to `max` free slots in place (zero-copy enqueue); see
    /// [`WriteGuard`].
    pub fn enqueue_start(&mut self, max: usize) -> WriteGuard<'_, T> {
        let c = self.claim(max.min(u32::MAX as usize) as u32, Behaviour::Variable);
        WriteGuard::new(&self.ring, c, GuardEnd::Single(&self.head))
    }
}

impl<T: Copy + Send> Consumer<T> {
    fn new(ring: Arc<Ring<T>>) -> Self {
        // Relaxed: the ring was owned by this thread until now.
        let head = ring.cons_tail().load(Ordering::Relaxed);
        let cached = ring.prod_tail().load(Ordering::Relaxed);
        Consumer {
            ring,
            head: Cell::new(head),
            cached: Cell::new(cached),
        }
    }

    counts!();

    /// Claims up to `n` filled slots from the cached producer tail,
    /// refreshing it only when it says there are not enough.
    #[inline(always)]
    fn claim(&self, n: u32, b: Behaviour) -> Claim {
        let head = self.head.get();
        let mut avail = self.ring.avail::<false>(head, self.cached.get());
        if avail < n {
            // Acquire: pairs with the producer's Release store of its tail;
            // the elements before it are written.
            let t = self.ring.prod_tail().load(Ordering::Acquire);
            self.cached.set(t);
            avail = self.ring.avail::<false>(head, t);
        }
        Claim {
            start: head,
            n: grant(n, avail, b),
            avail,
        }
    }

    #[inline(always)]
    fn take(&self, dst: *mut T, n: u32, b: Behaviour) -> Claim {
        let c = self.claim(n, b);
        if c.n != 0 {
            // SAFETY: we are the ring's only consumer (see `Producer::put`),
            // slots `start..+n` are published by `claim`; `dst` valid for `n`.
            unsafe { self.ring.read_slots(c.start, dst, c.n) };
            let end = c.start.wrapping_add(c.n);
            self.head.set(end);
            // Release: pairs with the producer's Acquire load of the consumer
            // tail; our slot reads are done before it reuses the slots.
            self.ring.cons_tail().store(end, Ordering::Release);
        }
        c
    }

    /// Dequeues one element, or `None` when the ring is empty.
    #[inline]
    pub fn dequeue(&self) -> Option<T> {
        let mut v = MaybeUninit::<T>::uninit();
        if self.take(v.as_mut_ptr(), 1, Behaviour::Fixed).n == 1 {
            // SAFETY: `take` wrote one element.
            Some(unsafe { v.assume_init() })
        } else {
            None
        }
    }

    /// Fills all of `out` or dequeues nothing.
    #[inline]
    pub fn dequeue_bulk(&self, out: &mut [T]) -> Result<(), RingEmpty> {
        if out.len() > self.ring.capacity() {
            return Err(RingEmpty {
                requested: out.len(),
                available: self.len(),
            });
        }
        let n = out.len() as u32;
        let c = self.take(out.as_mut_ptr(), n, Behaviour::Fixed);
        if c.n == n {
            Ok(())
        } else {
            Err(RingEmpty {
                requested: out.len(),
                available: c.avail as usize,
            })
        }
    }

    /// [`dequeue_bulk`](Self::dequeue_bulk) into uninitialised memory.
    #[inline]
    pub fn dequeue_bulk_uninit<'o>(
        &self,
        out: &'o mut [MaybeUninit<T>],
    ) -> Result<&'o mut [T], RingEmpty> {
        if out.len() > self.ring.capacity() {
            return Err(RingEmpty {
                requested: out.len(),
                available: self.len(),
            });
        }
        let n = out.len() as u32;
        let c = self.take(out.as_mut_ptr().cast(), n, Behaviour::Fixed);
        if c.n == n {
            // SAFETY: all `n` elements were written.
            Ok(unsafe { &mut *(out as *mut [MaybeUninit<T>] as *mut [T]) })
        } else {
            Err(RingEmpty {
                requested: out.len(),
                available: c.avail as usize,
            })
        }
    }

    /// Dequeues up to `out.len()` elements; returns how many.
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [T]) -> usize {
        let n = out.len().min(u32::MAX as usize) as u32;
        self.take(out.as_mut_ptr(), n, Behaviour::Variable).n as usize
    }

    /// [`dequeue_burst`](Self::dequeue_burst) into uninitialised memory;
    /// returns the initialised front of `out`.
    #[inline]
    pub fn dequeue_burst_uninit<'o>(&self, out: &'o mut [MaybeUninit<T>]) -> &'o mut [T] {
        let n = out.len().min(u32::MAX as usize) as u32;
        let c = self.take(out.as_mut_ptr().cast(), n, Behaviour::Variable);
        // SAFETY: the first `c.n` elements were written.
        unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), c.n as usize) }
    }

    /// Reserves up to `max` elements in place (peek / zero-copy dequeue);
    /// see [`ReadGuard`].
    pub fn dequeue_start(&mut self, max: usize) -> ReadGuard<'_, T> {
        let c = self.claim(max.min(u32::MAX as usize) as u32, Behaviour::Variable);
        ReadGuard::new(&self.ring, c, GuardEnd::Single(&self.head))
    }
}

impl<T: Copy + Send> SharedProducer<T> {
    counts!();

    /// See [`Ring::enqueue`].
    #[inline]
    pub fn enqueue(&self, value: T) -> Result<(), T> {
        self.ring.enqueue(value)
    }

    /// See [`Ring::enqueue_bulk`].
    #[inline]
    pub fn enqueue_bulk(&self, src: &[T]) -> Result<(), RingFull> {
        self.ring.enqueue_bulk(src)
    }

    /// See [`Ring::enqueue_burst`].
    #[inline]
    pub fn enqueue_burst(&self, src: &[T]) -> usize {
        self.ring.enqueue_burst(src)
    }

    /// See [`Ring::enqueue_start`] (HTS producer side only).
    pub fn enqueue_start(&self, max: usize) -> Result<WriteGuard<'_, T>, NotHts> {
        self.ring.enqueue_start(max)
    }
}

impl<T: Copy + Send> SharedConsumer<T> {
    counts!();

    /// See [`Ring::dequeue`].
    #[inline]
    pub fn dequeue(&self) -> Option<T> {
        self.ring.dequeue()
    }

    /// See [`Ring::dequeue_bulk`].
    #[inline]
    pub fn dequeue_bulk(&self, out: &mut [T]) -> Result<(), RingEmpty> {
        self.ring.dequeue_bulk(out)
    }

    /// See [`Ring::dequeue_bulk_uninit`].
    #[inline]
    pub fn dequeue_bulk_uninit<'o>(
        &self,
        out: &'o mut [MaybeUninit<T>],
    ) -> Result<&'o mut [T], RingEmpty> {
        self.ring.dequeue_bulk_uninit(out)
    }

    /// See [`Ring::dequeue_burst`].
    #[inline]
    pub fn dequeue_burst(&self, out: &mut [T]) -> usize {
        self.ring.dequeue_burst(out)
    }

    /// See [`Ring::dequeue_burst_uninit`].
    #[inline]
    pub fn dequeue_burst_uninit<'o>(&self, out: &'o mut [MaybeUninit<T>]) -> &'o mut [T] {
        self.ring.dequeue_burst_uninit(out)
    }

    /// See [`Ring::dequeue_start`] (HTS consumer side only).
    pub fn dequeue_start(&self, max: usize) -> Result<ReadGuard<'_, T>, NotHts> {
        self.ring.dequeue_start(max)
    }
}

macro_rules! debug_end {
    ($t:ident) => {
        impl<T: Copy + Send> fmt::Debug for $t<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("ring", &*self.ring)
                    .finish()
            }
        }
    };
}

debug_end!(Producer);
debug_end!(Consumer);
debug_end!(SharedProducer);
debug_end!(SharedConsumer);
