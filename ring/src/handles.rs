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
use std::sync::Arc;

use crate::error::NotHts;
use crate::guard::{GuardEnd, ReadGuard, WriteGuard};
use crate::ops::{dequeue_methods, enqueue_methods, len_u32, RingEnd};
use crate::ring::{grant, Behaviour, Claim, Ring};
use crate::sync::{AtomicU32, Ordering};

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
    end: Single<T, true>,
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
    end: Single<T, false>,
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
        (
            Producer {
                end: Single::new(Arc::clone(&ring)),
            },
            Consumer {
                end: Single::new(ring),
            },
        )
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
        (
            Producer {
                end: Single::new(Arc::clone(&ring)),
            },
            SharedConsumer { ring },
        )
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
            Consumer {
                end: Single::new(ring),
            },
        )
    }
}

/// A handle's `ops_end` (what the shared operation bodies drive: `$end`,
/// at `self.$e`) and its counts, read from its ring at `self.$ring`.
macro_rules! end_common {
    ($end:ty = $($e:ident).+, ring = $($ring:ident).+) => {
        /// What the shared operation bodies drive.
        #[inline(always)]
        fn ops_end(&self) -> &$end {
            &self.$($e).+
        }

        /// Elements the ring can hold.
        #[inline]
        pub fn capacity(&self) -> usize {
            self.$($ring).+.capacity()
        }

        /// Elements in the ring now.
        #[inline]
        pub fn len(&self) -> usize {
            self.$($ring).+.len()
        }

        /// Free slots now.
        #[inline]
        pub fn free_count(&self) -> usize {
            self.$($ring).+.free_count()
        }

        /// Whether the ring holds nothing.
        #[inline]
        pub fn is_empty(&self) -> bool {
            self.$($ring).+.is_empty()
        }

        /// Whether the ring has no free slot.
        #[inline]
        pub fn is_full(&self) -> bool {
            self.$($ring).+.is_full()
        }
    };
}

/// The state of a single-thread end ([`Producer`] when `PROD`, else
/// [`Consumer`]): its own head in a plain cell and a cached copy of the
/// other side's tail.
struct Single<T: Copy + Send, const PROD: bool> {
    ring: Arc<Ring<T>>,
    /// Our head = our side's tail as we last published it; only we move it.
    head: Cell<u32>,
    /// The other side's tail as we last read it; the real one is at or past
    /// it.
    cached: Cell<u32>,
}

impl<T: Copy + Send, const PROD: bool> Single<T, PROD> {
    fn new(ring: Arc<Ring<T>>) -> Self {
        let (ours, other) = tails::<PROD, T>(&ring);
        // Relaxed: the ring was owned by this thread until now.
        let head = ours.load(Ordering::Relaxed);
        let cached = other.load(Ordering::Relaxed);
        Single {
            ring,
            head: Cell::new(head),
            cached: Cell::new(cached),
        }
    }

    /// Claims up to `max` slots for a zero-copy guard, which publishes
    /// through our head.
    fn reserve(&self, max: usize) -> (&Ring<T>, Claim, GuardEnd<'_>) {
        let c = RingEnd::<T, PROD>::claim(self, len_u32(max), Behaviour::Variable);
        (&self.ring, c, GuardEnd::Single(&self.head))
    }
}

/// This side's tail and the other side's.
#[inline(always)]
fn tails<const PROD: bool, T: Copy + Send>(ring: &Ring<T>) -> (&AtomicU32, &AtomicU32) {
    if PROD {
        (ring.prod_tail(), ring.cons_tail())
    } else {
        (ring.cons_tail(), ring.prod_tail())
    }
}

/// Publishes a single-thread end's slots up to `end`: moves its head and
/// its side's tail there. Shared with the guards' commit and finish.
#[inline(always)]
pub(crate) fn single_publish<const PROD: bool, T: Copy + Send>(
    ring: &Ring<T>,
    head: &Cell<u32>,
    end: u32,
) {
    head.set(end);
    // Release: pairs with the other side's Acquire load of this tail (in its
    // claim): our slot writes (producer) are visible, or our slot reads
    // (consumer) are done, before it uses the slots.
    tails::<PROD, T>(ring).0.store(end, Ordering::Release);
}

// SAFETY: the `Single` of a `Producer` (`PROD`) or `Consumer` is its ring's
// only one of that side (the handle is neither `Sync` nor `Clone`, and the
// other end never works on this side), so slots from `head` on are ours
// alone; `claim` grants only slots the other side's tail has passed (free
// for a producer, published for a consumer), and `single_publish` stores
// the tail with Release.
unsafe impl<T: Copy + Send, const PROD: bool> RingEnd<T, PROD> for Single<T, PROD> {
    #[inline(always)]
    fn ring(&self) -> &Ring<T> {
        &self.ring
    }

    /// Claims up to `n` slots from the cached tail of the other side,
    /// refreshing it only when it says there are not enough.
    #[inline(always)]
    fn claim(&self, n: u32, b: Behaviour) -> Claim {
        let head = self.head.get();
        let mut avail = self.ring.avail::<PROD>(head, self.cached.get());
        if avail < n {
            // Acquire: pairs with the other side's Release store of its
            // tail: the slots a consumer released are no longer being read,
            // the elements a producer published are written.
            let t = tails::<PROD, T>(&self.ring).1.load(Ordering::Acquire);
            self.cached.set(t);
            avail = self.ring.avail::<PROD>(head, t);
        }
        Claim {
            start: head,
            n: grant(n, avail, b),
            avail,
        }
    }

    #[inline(always)]
    fn publish(&self, c: Claim) {
        single_publish::<PROD, T>(&self.ring, &self.head, c.start.wrapping_add(c.n));
    }
}

impl<T: Copy + Send> Producer<T> {
    end_common!(Single<T, true> = end, ring = end.ring);

    enqueue_methods! {
        setup: "use pktmem_ring::Ring;\nlet (p, c) = Ring::<u32>::new(4).unwrap().into_spsc(); // holds 3",
        p: "p",
        c: "c"
    }

    /// Reserves up to `max` free slots in place (zero-copy enqueue); see
    /// [`WriteGuard`].
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (mut p, c) = Ring::<u32>::new(4).unwrap().into_spsc(); // holds 3
    /// let mut w = p.enqueue_start(5);
    /// assert_eq!(w.len(), 3); // as many as are free
    /// w.push(1).unwrap();
    /// assert_eq!(w.commit(), 1);
    /// assert_eq!(c.dequeue(), Some(1));
    /// ```
    pub fn enqueue_start(&mut self, max: usize) -> WriteGuard<'_, T> {
        let (ring, c, end) = self.end.reserve(max);
        WriteGuard::new(ring, c, end)
    }
}

impl<T: Copy + Send> Consumer<T> {
    end_common!(Single<T, false> = end, ring = end.ring);

    dequeue_methods! {
        setup: "use pktmem_ring::Ring;\nlet (p, c) = Ring::<u32>::new(4).unwrap().into_spsc(); // holds 3",
        p: "p",
        c: "c"
    }

    /// Reserves up to `max` elements in place (peek / zero-copy dequeue);
    /// see [`ReadGuard`].
    ///
    /// ```
    /// use pktmem_ring::Ring;
    /// let (p, mut c) = Ring::<u32>::new(4).unwrap().into_spsc();
    /// p.enqueue_bulk(&[1, 2]).unwrap();
    /// let g = c.dequeue_start(4);
    /// assert_eq!((g.len(), g.get(0)), (2, Some(1)));
    /// g.finish(1); // consume only the first
    /// assert_eq!(c.dequeue(), Some(2));
    /// ```
    pub fn dequeue_start(&mut self, max: usize) -> ReadGuard<'_, T> {
        let (ring, c, end) = self.end.reserve(max);
        ReadGuard::new(ring, c, end)
    }
}

impl<T: Copy + Send> SharedProducer<T> {
    end_common!(Ring<T> = ring, ring = ring);

    enqueue_methods! {
        setup: "use pktmem_ring::Ring;\nlet (p, c) = Ring::<u32>::new(4).unwrap().into_mp_sc(); // holds 3",
        p: "p",
        c: "c"
    }

    /// See [`Ring::enqueue_start`] (HTS producer side only).
    ///
    /// ```
    /// use pktmem_ring::{Ring, SyncMode};
    /// let (p, c) = Ring::<u32>::builder(4)
    ///     .producer(SyncMode::Hts)
    ///     .build_mp_sc()
    ///     .unwrap();
    /// let mut w = p.enqueue_start(1).unwrap();
    /// w.push(7).unwrap();
    /// w.commit();
    /// assert_eq!(c.dequeue(), Some(7));
    /// ```
    pub fn enqueue_start(&self, max: usize) -> Result<WriteGuard<'_, T>, NotHts> {
        self.ring.enqueue_start(max)
    }
}

impl<T: Copy + Send> SharedConsumer<T> {
    end_common!(Ring<T> = ring, ring = ring);

    dequeue_methods! {
        setup: "use pktmem_ring::Ring;\nlet (p, c) = Ring::<u32>::new(4).unwrap().into_sp_mc(); // holds 3",
        p: "p",
        c: "c"
    }

    /// See [`Ring::dequeue_start`] (HTS consumer side only).
    ///
    /// ```
    /// use pktmem_ring::{Ring, SyncMode};
    /// let (p, c) = Ring::<u32>::builder(4)
    ///     .consumer(SyncMode::Hts)
    ///     .build_sp_mc()
    ///     .unwrap();
    /// p.enqueue(7).unwrap();
    /// let g = c.dequeue_start(1).unwrap();
    /// assert_eq!(g.get(0), Some(7));
    /// g.finish_all();
    /// assert!(c.is_empty());
    /// ```
    pub fn dequeue_start(&self, max: usize) -> Result<ReadGuard<'_, T>, NotHts> {
        self.ring.dequeue_start(max)
    }
}

macro_rules! debug_end {
    ($t:ident, $($ring:ident).+) => {
        impl<T: Copy + Send> fmt::Debug for $t<T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))
                    .field("ring", &*self.$($ring).+)
                    .finish()
            }
        }
    };
}

debug_end!(Producer, end.ring);
debug_end!(Consumer, end.ring);
debug_end!(SharedProducer, ring);
debug_end!(SharedConsumer, ring);
