//! Where a pool keeps the objects that are not in a cache.
//!
//! A backend is a bag of [`Obj`]s with all-or-nothing bulk put and get. The pool picks a ring (multi-producer/multi-consumer by default,
//! single-producer/single-consumer from the flags), a stack behind a lock or
//! a lock-free stack ([`LfStackBackend`](crate::LfStackBackend)); users can
//! plug their own through [`Backend`].

use std::mem::MaybeUninit;

use crate::Obj;

use crate::sync::{lock, AtomicUsize, Mutex, Ordering};

/// The backend is full: the put was refused and nothing was stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendFull {
    /// Objects offered.
    pub requested: usize,
    /// Free slots at the time.
    pub free: usize,
}

/// The backend holds too few objects: the get was refused and nothing taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendEmpty {
    /// Objects asked for.
    pub requested: usize,
    /// Objects held at the time.
    pub available: usize,
}

/// Storage for the free objects of a pool.
///
/// # Safety
/// Implementors promise, because the pool hands the objects they return to
/// safe code as objects it owns:
/// - `get_bulk` on `Ok` has written every element of `out`, each with an
///   object earlier given to `put_bulk` and not yet returned by a
///   `get_bulk`, each object once; on `Err` it takes nothing;
/// - `put_bulk` never fails while `len() + objs.len() <= capacity()`, and on
///   `Err` keeps nothing;
/// - it is safe to call from several threads at once (the trait requires
///   `Send + Sync`);
/// - it does not call back into the pool that owns it (the pool calls it
///   while using a cache it owns exclusively).
///
/// ```
/// use pktmem_mempool::{Backend, BackendEmpty, BackendFull, Mempool, Obj};
/// use std::{mem::MaybeUninit, sync::Mutex};
///
/// /// A free list behind a lock.
/// #[derive(Debug)]
/// struct Locked(Mutex<Vec<Obj>>, usize);
/// // SAFETY: a `Vec` behind a lock stores and returns each object once.
/// unsafe impl Backend for Locked {
///     fn put_bulk(&self, objs: &[Obj]) -> Result<(), BackendFull> {
///         let mut v = self.0.lock().unwrap();
///         if v.len() + objs.len() > self.1 {
///             return Err(BackendFull { requested: objs.len(), free: self.1 - v.len() });
///         }
///         v.extend_from_slice(objs);
///         Ok(())
///     }
///     fn get_bulk(&self, out: &mut [MaybeUninit<Obj>]) -> Result<(), BackendEmpty> {
///         let mut v = self.0.lock().unwrap();
///         if v.len() < out.len() {
///             return Err(BackendEmpty { requested: out.len(), available: v.len() });
///         }
///         let at = v.len() - out.len();
///         for (o, p) in out.iter_mut().zip(v.drain(at..)) {
///             o.write(p);
///         }
///         Ok(())
///     }
///     fn len(&self) -> usize { self.0.lock().unwrap().len() }
///     fn capacity(&self) -> usize { self.1 }
/// }
///
/// let pool = Mempool::builder(100, 32)
///     .backend(Box::new(Locked(Mutex::new(Vec::new()), 100)))
///     .build_anonymous()
///     .unwrap();
/// assert_eq!(pool.avail_count(), 100);
/// ```
pub unsafe trait Backend: Send + Sync + std::fmt::Debug {
    /// Stores all of `objs`, or none of them.
    fn put_bulk(&self, objs: &[Obj]) -> Result<(), BackendFull>;
    /// Fills all of `out`, or takes nothing.
    fn get_bulk(&self, out: &mut [MaybeUninit<Obj>]) -> Result<(), BackendEmpty>;
    /// Objects held now (a snapshot when others run concurrently).
    fn len(&self) -> usize;
    /// Objects it can hold.
    fn capacity(&self) -> usize;
    /// Whether it holds no object.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which built-in backend a pool uses.
///
/// ```
/// use pktmem_mempool::{BackendKind, Mempool};
/// for kind in [BackendKind::Ring, BackendKind::Stack, BackendKind::LockFreeStack] {
///     let pool = Mempool::builder(16, 64).backend_kind(kind).build_anonymous().unwrap();
///     assert!(pool.is_full());
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BackendKind {
    /// A lock-free ring: multi-producer/multi-consumer unless the pool was
    /// made single-producer or single-consumer.
    #[default]
    Ring,
    /// A LIFO stack behind a lock: hands back the most recently freed
    /// (cache-warm) objects first.
    Stack,
    /// A lock-free LIFO stack ([`LfStackBackend`](crate::LfStackBackend)):
    /// the same order as [`Stack`](Self::Stack), and no thread waits on one
    /// preempted while it holds a lock. Pick it for that progress, not for
    /// speed: it walks node links one by one, so with no contention it is
    /// slower than [`Stack`](Self::Stack) (about 2× for single objects and
    /// 4–5× for bursts of 32 in `benches/mempool.rs` on a 2-core machine).
    LockFreeStack,
}

/// A LIFO stack of objects behind a lock.
#[derive(Debug)]
pub struct StackBackend {
    /// The stored objects, most recent last. Invariant: `len <= capacity`.
    stack: Mutex<Vec<Obj>>,
    /// Mirror of `stack.len()` for lock-free counting; written under the lock.
    len: AtomicUsize,
    capacity: usize,
}

impl StackBackend {
    /// An empty stack for `capacity` objects.
    ///
    /// ```
    /// use pktmem_mempool::{Backend, StackBackend};
    /// let s = StackBackend::new(8);
    /// assert_eq!((s.len(), s.capacity()), (0, 8));
    /// ```
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            // Grows on demand past 64 Ki entries: a huge capacity costs nothing up front.
            stack: Mutex::new(Vec::with_capacity(capacity.min(1 << 16))),
            len: AtomicUsize::new(0),
            capacity,
        }
    }
}

// SAFETY: objects are pushed and popped under one lock, each stored once.
unsafe impl Backend for StackBackend {
    fn put_bulk(&self, objs: &[Obj]) -> Result<(), BackendFull> {
        let mut s = lock(&self.stack);
        if s.len() + objs.len() > self.capacity {
            return Err(BackendFull {
                requested: objs.len(),
                free: self.capacity - s.len(),
            });
        }
        s.extend_from_slice(objs);
        // Relaxed: a count for statistics; the lock orders the data.
        self.len.store(s.len(), Ordering::Relaxed);
        Ok(())
    }

    fn get_bulk(&self, out: &mut [MaybeUninit<Obj>]) -> Result<(), BackendEmpty> {
        let mut s = lock(&self.stack);
        if s.len() < out.len() {
            return Err(BackendEmpty {
                requested: out.len(),
                available: s.len(),
            });
        }
        let at = s.len() - out.len();
        for (o, &p) in out.iter_mut().rev().zip(&s[at..]) {
            o.write(p);
        }
        s.truncate(at);
        // Relaxed: as in `put_bulk`.
        self.len.store(s.len(), Ordering::Relaxed);
        Ok(())
    }

    fn len(&self) -> usize {
        // Relaxed: a snapshot count.
        self.len.load(Ordering::Relaxed)
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}
