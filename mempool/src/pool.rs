//! The pool's shared state, its handle, and what it says about itself
//! (sizes, counts, placement of its ring).
//!
//! Creation is in `builder.rs`, population in `populate.rs`, serving in
//! `serve.rs`, iteration and audit in `introspect.rs`.

use std::any::Any;
use std::cell::UnsafeCell;
use std::marker::PhantomData;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::backend::{Backend, StackBackend};
use crate::cache::{Cache, CacheCore, Counter, CACHE_MAX_SIZE};
use crate::default_cache::{Slot, Slots};
use crate::error::{CacheError, GetError};
use crate::events::{self, MempoolEvent};
use crate::layout::{ObjSize, Placement};
use crate::lf_stack::LfStackBackend;
use crate::ring_backend::RingPlacement;
use crate::sync::{fence, lock, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::{Iova, Obj};

/// A function run when a chunk's memory is no longer used by the pool.
pub type ChunkFree = Box<dyn FnOnce() + Send>;

/// A per-object initialiser (see [`MempoolBuilder::obj_init`](crate::MempoolBuilder::obj_init)).
pub(crate) use crate::populate::ObjInit;

/// One chunk of memory objects were placed in.
pub(crate) struct ChunkRec {
    /// Start of the chunk. Invariant: `len` bytes of memory the pool may use
    /// until `on_free` runs (or the pool goes).
    pub(crate) base: NonNull<u8>,
    pub(crate) iova: Option<Iova>,
    pub(crate) len: usize,
    /// Index of the chunk's first object among all the pool's objects.
    pub(crate) first_index: usize,
    /// Objects placed; `placement.for_each(base, len, count, ..)` finds them.
    pub(crate) count: usize,
    pub(crate) placement: Placement,
    pub(crate) on_free: Option<ChunkFree>,
}

impl ChunkRec {
    /// The index in this chunk of the object whose body is at `obj`, by
    /// arithmetic on the chunk's placement (nothing is read).
    pub(crate) fn index_of(&self, obj: Obj, header: usize) -> Option<usize> {
        let base = self.base.as_ptr() as usize;
        let a = obj.as_ptr() as usize;
        let off = a.checked_sub(base)?.checked_sub(header)?;
        self.placement.index_of(base, self.len, self.count, off)
    }
}

/// What population guards: the chunks and the initialiser run on every
/// object placed in them.
pub(crate) struct Population {
    /// Chunks in population order.
    pub(crate) chunks: Vec<ChunkRec>,
    pub(crate) init: Option<ObjInit>,
    /// Threads that populate (0: chosen by size, see `populate.rs`).
    pub(crate) populate_threads: usize,
}

/// The built-in backends, dispatched without a virtual call, and user ones.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // built once per pool and never moved
pub(crate) enum BackendImpl {
    Ring(crate::ring_backend::RingBackend),
    Stack(StackBackend),
    LfStack(LfStackBackend),
    Custom(Box<dyn Backend>),
}

impl BackendImpl {
    #[inline(always)]
    fn put_bulk(&self, objs: &[Obj]) -> bool {
        match self {
            Self::Ring(r) => r.put_bulk(objs),
            Self::Stack(s) => s.put_bulk(objs).is_ok(),
            Self::LfStack(s) => s.put_bulk(objs).is_ok(),
            Self::Custom(c) => c.put_bulk(objs).is_ok(),
        }
    }

    /// On `true`, every element of `out` is initialised (the `Backend`
    /// contract; the ring's `dequeue_bulk_uninit` likewise).
    #[inline(always)]
    fn get_bulk(&self, out: &mut [MaybeUninit<Obj>]) -> bool {
        match self {
            Self::Ring(r) => r.get_bulk(out),
            Self::Stack(s) => s.get_bulk(out).is_ok(),
            Self::LfStack(s) => s.get_bulk(out).is_ok(),
            Self::Custom(c) => c.get_bulk(out).is_ok(),
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Ring(r) => r.len(),
            Self::Stack(s) => s.len(),
            Self::LfStack(s) => s.len(),
            Self::Custom(c) => c.len(),
        }
    }
}

/// 64 bytes of the private area (no padding, so all of it is zeroed).
#[repr(C, align(64))]
pub(crate) struct Line(pub(crate) [u8; 64]);

/// The pool's own reference count, on its own cache line (refills and
/// flushes of every thread write it; the read-mostly fields stay clean).
pub(crate) struct Life {
    /// Handles (`Mempool`, and so `Cache` and `TypedPool`) plus objects out
    /// of the backend (held by callers, or in any cache, default or user).
    /// Invariant: at least 1 while the pool is usable; it never goes from 0
    /// back up (every way to take a reference needs a handle or an object
    /// out, each of which is counted). Its holders collectively own the one
    /// strong count of the pool's `Arc`, dropped by whoever takes `refs` to 0
    /// (`PoolInner::release`).
    pub(crate) refs: AtomicUsize,
    /// Handles alone. Advisory: it says which thread drops the last handle
    /// (that thread flushes and gives back its default cache) and stops new
    /// default-cache claims once no handle is left. Freeing never reads it.
    pub(crate) handles: AtomicUsize,
}

/// A typed value kept with the pool (see `MempoolBuilder::attachment`):
/// the leaked box, freed when the pool's memory goes.
pub(crate) struct Attachment(NonNull<dyn Any + Send + Sync>);

impl Attachment {
    pub(crate) fn new(value: Box<dyn Any + Send + Sync>) -> Self {
        Self(NonNull::from(Box::leak(value)))
    }

    pub(crate) fn get(&self) -> &(dyn Any + Send + Sync) {
        // SAFETY: the box leaked in `new`, freed only in `drop`.
        unsafe { self.0.as_ref() }
    }

    /// The value's address, for `attachment_unchecked`.
    pub(crate) fn thin(&self) -> *const () {
        self.0.as_ptr().cast_const().cast()
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // SAFETY: the box leaked in `new`; dropped once, here.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// The state every handle of a pool shares.
pub(crate) struct PoolInner {
    /// Reference counts (see [`Life`]).
    pub(crate) life: CachePadded<Life>,
    /// The attachment's address (null without one), read by
    /// `Mempool::attachment_unchecked` without a type check.
    pub(crate) attachment_ptr: *const (),
    pub(crate) attachment: Option<Attachment>,
    pub(crate) name: String,
    pub(crate) size: usize,
    pub(crate) cache_size: usize,
    /// Objects keep out of page boundaries outside IOVA-contiguous runs and
    /// carry their IOVA (false for `.no_iova_contig()` pools).
    pub(crate) iova_contig: bool,
    pub(crate) obj: ObjSize,
    /// The pool's private area: `private_size` bytes, zeroed at creation,
    /// 64-byte aligned; the pool itself never reads or writes it.
    pub(crate) private: Box<[UnsafeCell<Line>]>,
    pub(crate) private_size: usize,
    pub(crate) backend: BackendImpl,
    /// Default caches (empty when `cache_size == 0`).
    pub(crate) slots: Slots,
    /// Published lengths of every cache (default slots and user caches).
    pub(crate) counters: Mutex<Vec<Counter>>,
    pub(crate) population: Mutex<Population>,
    /// Objects placed so far; only grows, under the `population` lock.
    pub(crate) populated: AtomicUsize,
    /// No object can be used for IO (see `Mempool::is_non_io`).
    pub(crate) non_io: AtomicBool,
    #[cfg(feature = "stats")]
    pub(crate) stats: crate::stats::StatsCells,
}

// SAFETY: `private` is raw memory handed out as a pointer (writes through it
// are the caller's `unsafe`); the chunk records (pointers to memory the pool
// owns) and the headers in them are written only under the `population`
// lock; the attachment is `Send + Sync` (its pointers are only read);
// everything else is `Sync` already.
unsafe impl Sync for PoolInner {}
// SAFETY: as above; the chunk records own their memory (their `on_free` is
// `Send`).
unsafe impl Send for PoolInner {}

impl PoolInner {
    pub(crate) fn slots(&self) -> &[CachePadded<Slot>] {
        &self.slots
    }

    /// Out of line: the cache paths stay small enough to inline everywhere.
    /// On `Ok`, every element of `out` is initialised, and counted in
    /// `life.refs` (objects out of the backend keep the pool alive).
    #[inline(never)]
    pub(crate) fn backend_get(&self, out: &mut [MaybeUninit<Obj>]) -> Result<(), GetError> {
        self.stat_backend();
        if self.backend.get_bulk(out) {
            // Relaxed: as `Arc::clone`: the caller holds a counted reference
            // (a handle or an object out) until after this, so the count
            // cannot reach 0 meanwhile; the objects' later put orders its own
            // decrement (Release in `release`) after this increment, by
            // coherence, since the put happens after this get.
            self.life.refs.fetch_add(out.len(), Ordering::Relaxed);
            Ok(())
        } else {
            Err(GetError::Empty {
                requested: out.len(),
                available: self.backend.len(),
            })
        }
    }

    /// Out of line, as `backend_get`. The objects stay counted in
    /// `life.refs`: the caller releases them with [`release`](Self::release)
    /// once it no longer touches the pool (the release may free it).
    #[inline(never)]
    pub(crate) fn backend_put(&self, objs: &[Obj]) {
        self.stat_backend();
        let ok = self.backend.put_bulk(objs);
        // The backend holds every object of the pool; a put of objects that
        // are out cannot find it full (the `Backend` contract).
        debug_assert!(ok, "pool '{}': backend refused a put", self.name);
    }

    /// Stores freshly placed objects (population): poisoned before a get can
    /// see them, opened again if the backend refuses them.
    pub(crate) fn store_new(&self, objs: &[Obj]) -> bool {
        self.asan_poison(objs);
        let ok = self.backend.put_bulk(objs);
        if !ok {
            self.asan_unpoison(objs);
        }
        ok
    }

    /// Gives up `n` counted references (objects now back in the backend, or
    /// a handle): the last access to the pool on every put path. Free for
    /// `n == 0` (the cache hit paths pass a constant 0, and the compiler
    /// drops the call).
    ///
    /// # Safety
    /// - `this` is the pool's address (`Arc::as_ptr` of its `Arc`), and the
    ///   caller owns `n` of its counted references, which it gives up;
    /// - nothing derived from the pool's memory (a `&PoolInner`, a
    ///   `&mut CacheCore` of one of its default caches, ...) is used after
    ///   this call or held by a frame still running: the pool may be freed
    ///   by this call, or by another thread as soon as the count is down.
    #[inline(always)]
    pub(crate) unsafe fn release(this: *const PoolInner, n: usize) {
        if n != 0 {
            // SAFETY: the caller's conditions.
            unsafe { Self::release_slow(this, n) };
        }
    }

    #[inline(never)]
    unsafe fn release_slow(this: *const PoolInner, n: usize) {
        // SAFETY: the pool is alive: the caller owns `n >= 1` references.
        // Only the counts are borrowed (atomics: interior-mutable, not the
        // whole `PoolInner`), and the borrow is not used after the decrement.
        let life: &Life = unsafe { &(*this).life };
        // Release: pairs with the Acquire fence below, on whichever thread
        // takes the count to 0: everything this thread did to the pool (its
        // backend put, cache and slot writes, object headers, and object
        // bodies it wrote) happens before the pool is freed. The decrements
        // form one release sequence, so the fence synchronises with all.
        let old = life.refs.fetch_sub(n, Ordering::Release);
        debug_assert!(old >= n, "pool reference count below zero");
        if old != n {
            return;
        }
        // Acquire: pairs with the Release decrements of every other thread
        // (see above), before the memory goes.
        fence(Ordering::Acquire);
        // SAFETY: the count is 0: no handle and no object out is left, and
        // nothing can take a new reference (the count never rises from 0),
        // so the strong count its holders owned together is ours to drop.
        // (A thread-exit flush may hold its own strong count from its
        // `Weak`: the pool then goes when that one drops.)
        drop(unsafe { Arc::from_raw(this) });
    }

    pub(crate) fn backend_len(&self) -> usize {
        self.backend.len()
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    pub(crate) fn stat_hit(&self, n: usize) {
        #[cfg(feature = "stats")]
        self.stats.hit(n);
        #[cfg(not(feature = "stats"))]
        let _ = n;
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    pub(crate) fn stat_put_hit(&self, n: usize) {
        #[cfg(feature = "stats")]
        self.stats.put_hit(n);
        #[cfg(not(feature = "stats"))]
        let _ = n;
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    fn stat_get(&self, n: usize) {
        #[cfg(feature = "stats")]
        self.stats.get(n);
        #[cfg(not(feature = "stats"))]
        let _ = n;
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    fn stat_put(&self, n: usize) {
        #[cfg(feature = "stats")]
        self.stats.put(n);
        #[cfg(not(feature = "stats"))]
        let _ = n;
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    fn stat_backend(&self) {
        #[cfg(feature = "stats")]
        self.stats.backend();
    }

    pub(crate) fn register_counter(&self) -> Counter {
        let c: Counter = Arc::new(CachePadded::new(AtomicUsize::new(0)));
        lock(&self.counters).push(c.clone());
        c
    }

    pub(crate) fn unregister_counter(&self, c: &Counter) {
        lock(&self.counters).retain(|x| !Arc::ptr_eq(x, c));
    }

    /// Objects in every cache (default and user), as last published.
    pub(crate) fn cached(&self) -> usize {
        lock(&self.counters)
            .iter()
            // Relaxed: a count, paired with nothing (see `CacheCore::publish`).
            .map(|c| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Debug builds: checks each object is this pool's and free, marks it taken.
    #[inline(always)]
    fn debug_mark_taken(&self, objs: &[Obj]) {
        #[cfg(not(debug_assertions))]
        let _ = (self, objs);
        #[cfg(debug_assertions)]
        for o in objs {
            // SAFETY: the object came from this pool's backend or cache,
            // which hold only this pool's objects (with headers).
            let h = unsafe { &mut *crate::layout::ObjHeader::of(o.as_ptr()) };
            assert!(
                std::ptr::eq(h.pool, std::ptr::from_ref(self).cast()) && h.cookie == crate::layout::COOKIE_FREE,
                "pool '{}': object {o:?} handed out has a bad header (cookie {:#x}): overwritten or put twice",
                self.name,
                h.cookie
            );
            h.cookie = crate::layout::COOKIE_TAKEN;
        }
    }

    /// Debug builds: checks each object is this pool's and taken, marks it free.
    #[inline(always)]
    fn debug_mark_free(&self, objs: &[Obj]) {
        #[cfg(not(debug_assertions))]
        let _ = (self, objs);
        #[cfg(debug_assertions)]
        for o in objs {
            // SAFETY: the caller of put promised these are this pool's objects.
            let h = unsafe { &mut *crate::layout::ObjHeader::of(o.as_ptr()) };
            assert!(
                std::ptr::eq(h.pool, std::ptr::from_ref(self).cast()),
                "pool '{}': object {o:?} put back is not from this pool (or its header was overwritten)",
                self.name,
            );
            assert!(
                h.cookie == crate::layout::COOKIE_TAKEN,
                "pool '{}': object {o:?} put back twice (cookie {:#x})",
                self.name,
                h.cookie
            );
            h.cookie = crate::layout::COOKIE_FREE;
        }
    }

    /// Every get path, once `out` holds the objects: counts, debug cookies,
    /// `ASan` poisoning.
    #[inline(always)]
    pub(crate) fn handed_out(&self, out: &[Obj]) {
        self.stat_get(out.len());
        self.debug_mark_taken(out);
        self.asan_unpoison(out);
    }

    /// Every put path, before the objects reach a cache or the backend
    /// (where another thread's get can see them).
    #[inline(always)]
    pub(crate) fn taken_back(&self, objs: &[Obj]) {
        self.debug_mark_free(objs);
        self.asan_poison(objs);
        self.stat_put(objs.len());
    }

    /// `cfg(pktmem_asan)`: marks the objects' bodies unaddressable while
    /// they are free (in a cache or the backend). Headers stay readable.
    // `self` is used under `cfg(pktmem_asan)`.
    #[cfg_attr(not(pktmem_asan), allow(clippy::unused_self))]
    #[inline(always)]
    pub(crate) fn asan_poison(&self, _objs: &[Obj]) {
        #[cfg(pktmem_asan)]
        for o in _objs {
            // SAFETY: the objects are this pool's (get or put contract), so
            // their bodies lie in its chunks; nobody uses a free object.
            unsafe { pktmem_hugemem::asan::poison(o.as_ptr(), self.obj.elt_size) };
        }
    }

    /// `cfg(pktmem_asan)`: makes the bodies of objects handed out addressable.
    // `self` is used under `cfg(pktmem_asan)`.
    #[cfg_attr(not(pktmem_asan), allow(clippy::unused_self))]
    #[inline(always)]
    pub(crate) fn asan_unpoison(&self, _objs: &[Obj]) {
        #[cfg(pktmem_asan)]
        for o in _objs {
            // SAFETY: as in `asan_poison`; the objects are now the caller's.
            unsafe { pktmem_hugemem::asan::unpoison(o.as_ptr(), self.obj.elt_size) };
        }
    }

    pub(crate) fn event_info(&self) -> events::EventInfo<'_> {
        events::EventInfo {
            name: &self.name,
            size: self.size,
            // Relaxed: a count for the callback's information.
            populated: self.populated.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        events::fire(MempoolEvent::Destroyed, &self.event_info());
        // The attachment goes while the objects' memory is still there (its
        // `Drop` may look at objects through pointers it kept).
        drop(self.attachment.take());
        let chunks = std::mem::take(&mut lock(&self.population).chunks);
        for c in chunks.into_iter().rev() {
            // Free objects are poisoned (`asan_poison`); the chunk goes back
            // clean, as ASan's shadow outlives an unmap.
            // SAFETY: the chunk's memory is still held (`on_free` not run).
            unsafe { pktmem_hugemem::asan::unpoison(c.base.as_ptr(), c.len) };
            if let Some(f) = c.on_free {
                f();
            }
        }
    }
}

/// A pool of fixed-size objects; a cheap-to-clone shared handle.
///
/// See the [crate documentation](crate) for the model. The pool's memory
/// (chunks, backend, caches' slots, attachment) lives while any handle
/// (`Mempool`, [`Cache`], [`TypedPool`](crate::TypedPool)) exists **or** any
/// object is out of the backend (held by a caller, or sitting in a cache):
/// objects are counted in bulk where they cross the backend boundary (a
/// refill of `k`, a flush of `k`), never on a cache hit. So an object taken
/// from the pool may be kept, sent to another thread and put back (through
/// [`Obj::owner_ref`]) after every handle is gone; the put that brings the
/// last one back frees the pool.
///
/// ```
/// use pktmem_mempool::Mempool;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
///
/// struct Gone(Arc<AtomicBool>); // set when the pool's memory goes
/// impl Drop for Gone {
///     fn drop(&mut self) { self.0.store(true, Ordering::SeqCst) }
/// }
/// let gone = Arc::new(AtomicBool::new(false));
/// let pool = Mempool::builder(8, 64)
///     .cache(4)
///     .attachment(Gone(gone.clone()))
///     .build_anonymous()
///     .unwrap();
/// let o = pool.get_default().unwrap();
/// drop(pool); // the last handle: the object out keeps the pool's memory
/// assert!(!gone.load(Ordering::SeqCst));
/// std::thread::spawn(move || {
///     // SAFETY: `o` is out of its pool (taken above, not put back); the
///     // `PoolRef` is not used after the put, which frees the pool.
///     unsafe { o.owner_ref().put_default(o) };
/// })
/// .join()
/// .unwrap();
/// assert!(gone.load(Ordering::SeqCst)); // the last object back freed it
/// ```
pub struct Mempool {
    /// An uncounted copy of the pool's `Arc`: all handles and objects out
    /// together own its one strong count (see [`Life`]); each handle owns
    /// one count in `life.refs` and one in `life.handles`, given back by
    /// `Drop`.
    pub(crate) inner: ManuallyDrop<Arc<PoolInner>>,
}

impl Mempool {
    /// Makes the first handle of a new pool.
    pub(crate) fn from_inner(inner: PoolInner) -> Self {
        debug_assert_eq!(
            // Relaxed: the pool is not shared yet.
            (
                inner.life.refs.load(Ordering::Relaxed),
                inner.life.handles.load(Ordering::Relaxed)
            ),
            (1, 1)
        );
        Self {
            inner: ManuallyDrop::new(Arc::new(inner)),
        }
    }

    /// A handle of the pool at `this` that owns no count: it must never be
    /// dropped (it is returned inside `ManuallyDrop`), and may be used only
    /// while the pool is kept alive by something else.
    ///
    /// # Safety
    /// - `this` is `Arc::as_ptr` of a pool's `Arc` (what [`Mempool::as_ptr`]
    ///   returns and object headers hold).
    #[inline(always)]
    pub(crate) unsafe fn alias(this: *const PoolInner) -> ManuallyDrop<Mempool> {
        // SAFETY: the caller's condition; `from_raw` touches no count, and
        // the `Arc` made is never dropped (it is inside `ManuallyDrop`).
        let inner = ManuallyDrop::new(unsafe { Arc::from_raw(this) });
        ManuallyDrop::new(Mempool { inner })
    }

    /// The pool's shared state, as a raw pointer (for `PoolInner::release`).
    #[inline(always)]
    pub(crate) fn inner_ptr(&self) -> *const PoolInner {
        Arc::as_ptr(&self.inner)
    }

    /// The pool's identity: the address its objects' headers record, equal
    /// for every handle of one pool and distinct between live pools
    /// ([`same_pool`](Self::same_pool) compares it). A packet buffer keeps
    /// it to find its pool again ([`PoolRef::from_ptr`]).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(4, 64).build_anonymous().unwrap();
    /// let other = Mempool::builder(4, 64).build_empty().unwrap();
    /// let o = pool.get_default().unwrap();
    /// assert_eq!(pool.clone().as_ptr(), pool.as_ptr());
    /// assert_ne!(pool.as_ptr(), other.as_ptr());
    /// // SAFETY: `o` is out of its pool, and `pool` is alive.
    /// assert_eq!(unsafe { o.owner_ref() }.as_ptr(), pool.as_ptr());
    /// // SAFETY: given back once.
    /// unsafe { pool.put_default(o) };
    /// ```
    #[inline(always)]
    pub fn as_ptr(&self) -> *const () {
        self.inner_ptr().cast()
    }

    /// The value given to [`MempoolBuilder::attachment`](crate::MempoolBuilder::attachment),
    /// if it is a `T` (a checked downcast). It lives as long as the pool's
    /// memory: until the last handle is gone and the last object is back.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// #[derive(Debug, PartialEq)]
    /// struct Room(u16);
    /// let pool = Mempool::builder(4, 64).attachment(Room(2176)).build_anonymous().unwrap();
    /// assert_eq!(pool.attachment::<Room>(), Some(&Room(2176)));
    /// assert_eq!(pool.attachment::<u32>(), None);
    /// ```
    pub fn attachment<T: Any>(&self) -> Option<&T> {
        self.inner.attachment.as_ref()?.get().downcast_ref::<T>()
    }

    /// The attachment as a `T`, with no type check: one load (the fast path
    /// of code that made the pool, such as a packet-buffer pool reading its
    /// configuration on every allocation).
    ///
    /// # Safety
    /// - the pool was built with an [`attachment`](crate::MempoolBuilder::attachment)
    ///   whose type is `T`.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(4, 64).attachment(7u64).build_anonymous().unwrap();
    /// // SAFETY: the attachment is a `u64`.
    /// assert_eq!(unsafe { *pool.attachment_unchecked::<u64>() }, 7);
    /// ```
    #[inline(always)]
    pub unsafe fn attachment_unchecked<T>(&self) -> &T {
        // SAFETY: the caller's condition: the attachment is a `T`, boxed and
        // kept (never moved) until the pool's memory goes, which `&self`
        // keeps alive.
        unsafe { &*self.inner.attachment_ptr.cast::<T>() }
    }
}

impl Clone for Mempool {
    /// One more handle: one count in `life.refs`, one in `life.handles`.
    fn clone(&self) -> Self {
        // Relaxed (both): as `Arc::clone`: `self` is counted, so the count
        // cannot reach 0 meanwhile; the new handle's decrement orders itself.
        let old = self.inner.life.refs.fetch_add(1, Ordering::Relaxed);
        // As `Arc`: a count this large means handles were leaked in a loop;
        // stop before it can wrap.
        if old > isize::MAX as usize {
            std::process::abort();
        }
        self.inner.life.handles.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `self`'s pointer; the counts taken above are the new
        // handle's, given back by its `Drop`.
        ManuallyDrop::into_inner(unsafe { Mempool::alias(self.inner_ptr()) })
    }
}

impl Drop for Mempool {
    /// Gives back this handle's counts. The last handle also flushes the
    /// dropping thread's default cache of the pool and gives the slot back:
    /// objects there would otherwise keep the pool alive until the thread
    /// exits. Objects in other live threads' default caches keep it until
    /// those threads exit or call [`flush_thread_caches`](crate::flush_thread_caches).
    fn drop(&mut self) {
        let this = self.inner_ptr();
        let inner: &PoolInner = &self.inner;
        let mut n = 1;
        // Relaxed: `handles` is advisory (see `Life`); freeing is decided by
        // `refs` alone.
        if inner.life.handles.fetch_sub(1, Ordering::Relaxed) == 1 {
            n += crate::default_cache::on_last_handle(&self.inner);
        }
        // SAFETY: this handle's count plus the objects just flushed; `inner`
        // is not used after.
        unsafe { PoolInner::release(this, n) };
    }
}

/// A handle of an object's pool that holds no count, made from the object
/// ([`Obj::owner_ref`]) or the pool's address ([`PoolRef::from_ptr`]):
/// derefs to a [`Mempool`] for the object's way back (`put_default`,
/// `put_bulk_default`, a put through a [`Cache`]) at no cost. It is valid
/// while the object it came from is out of the pool; not `Send`, so it
/// stays with the code that vouched for that. A put through it may be what
/// frees the pool: do not use it after.
///
/// ```
/// use pktmem_mempool::{Mempool, PoolRef};
/// let pool = Mempool::builder(4, 64).cache(2).build_anonymous().unwrap();
/// let o = pool.get_default().unwrap();
/// // SAFETY: `o` is out of `pool`, which is alive.
/// let r: PoolRef<'_> = unsafe { PoolRef::from_ptr(pool.as_ptr()) };
/// assert!(r.same_pool(&pool));
/// // SAFETY: `o` is out of its pool; `r` is not used after the put.
/// unsafe { r.put_default(o) };
/// ```
///
/// It cannot cross threads (the object may, and make a new one there):
///
/// ```compile_fail
/// use pktmem_mempool::Mempool;
/// let pool = Mempool::builder(4, 64).build_anonymous().unwrap();
/// let o = pool.get_default().unwrap();
/// // SAFETY: `o` is out of its pool.
/// let r = unsafe { o.owner_ref() };
/// std::thread::spawn(move || drop(r)); // error: `PoolRef` is not `Send`
/// ```
pub struct PoolRef<'a> {
    pool: ManuallyDrop<Mempool>,
    _borrow: PhantomData<(&'a Mempool, *const ())>,
}

impl PoolRef<'_> {
    /// The pool whose identity ([`Mempool::as_ptr`]) is `pool`, without
    /// touching its counts: how a packet buffer that stored its pool's
    /// address reaches it again.
    ///
    /// # Safety
    /// - `pool` is [`Mempool::as_ptr`] of a pool;
    /// - that pool is kept alive while the result is used: the caller holds
    ///   one of its objects out of it (taken by a get, not yet put back) or
    ///   a handle, except for a final put through the result, after which it
    ///   is not used.
    #[inline(always)]
    pub unsafe fn from_ptr(pool: *const ()) -> Self {
        Self {
            // SAFETY: the caller's first condition.
            pool: unsafe { Mempool::alias(pool.cast()) },
            _borrow: PhantomData,
        }
    }
}

impl std::ops::Deref for PoolRef<'_> {
    type Target = Mempool;
    #[inline(always)]
    fn deref(&self) -> &Mempool {
        &self.pool
    }
}

impl std::fmt::Debug for PoolRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("PoolRef").field(&self.pool.name()).finish()
    }
}

impl std::fmt::Debug for Mempool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mempool")
            .field("name", &self.inner.name)
            .field("size", &self.inner.size)
            .field("populated", &self.populated())
            .field("avail", &self.avail_count())
            .field("cache_size", &self.inner.cache_size)
            .field("obj", &self.inner.obj)
            .field("ring_placement", &self.ring_placement())
            .finish_non_exhaustive()
    }
}

impl Mempool {
    /// Where the pool's ring keeps its slots, or `None` when the pool's
    /// backend is not the built-in ring. Pools built on a provider
    /// ([`MempoolBuilder::build_on`](crate::MempoolBuilder::build_on)) put
    /// them in that provider's memory when it can give it.
    ///
    /// ```
    /// use pktmem_mempool::{BackendKind, Mempool, RingPlacement};
    /// let pool = Mempool::builder(10, 64).build_empty().unwrap();
    /// assert_eq!(pool.ring_placement(), Some(RingPlacement::Heap));
    /// let pool = Mempool::builder(10, 64).backend_kind(BackendKind::Stack).build_empty().unwrap();
    /// assert_eq!(pool.ring_placement(), None);
    /// ```
    pub fn ring_placement(&self) -> Option<RingPlacement> {
        match &self.inner.backend {
            BackendImpl::Ring(r) => Some(r.placement()),
            _ => None,
        }
    }

    /// Addresses of the ring's slots (see [`ring_placement`](Self::ring_placement)),
    /// or `None` when the backend is not the built-in ring.
    ///
    /// ```
    /// use pktmem_mempool::{Mempool, Provider, RingPlacement};
    /// let p = Provider::global();
    /// let pool = Mempool::builder(1000, 64).build_on(p).unwrap();
    /// let at = pool.ring_memory_range().unwrap();
    /// if pool.ring_placement() == Some(RingPlacement::Provider) {
    ///     assert!(p.page_of(at.start).is_some()); // a page of the provider
    /// }
    /// ```
    pub fn ring_memory_range(&self) -> Option<std::ops::Range<usize>> {
        match &self.inner.backend {
            BackendImpl::Ring(r) => Some(r.memory_range()),
            _ => None,
        }
    }

    /// The pool's name (for humans: messages and events).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Objects the pool holds when fully populated.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Objects placed so far.
    pub fn populated(&self) -> usize {
        // Relaxed: a count; population itself is ordered by its lock.
        self.inner.populated.load(Ordering::Relaxed)
    }

    /// The size of the caches [`cache`](Self::cache) makes (and of the
    /// default caches).
    pub fn cache_size(&self) -> usize {
        self.inner.cache_size
    }

    /// Whether objects carry their IOVA and keep out of page boundaries
    /// outside IOVA-contiguous memory: true unless the pool was built with
    /// [`no_iova_contig`](crate::MempoolBuilder::no_iova_contig).
    pub fn tracks_iova(&self) -> bool {
        self.inner.iova_contig
    }

    /// The layout of one element.
    pub fn obj_size(&self) -> ObjSize {
        self.inner.obj
    }

    /// Bytes of memory the objects still missing need in pages of
    /// `page_size` bytes that objects must not straddle (0: one
    /// IOVA-contiguous chunk), plus the alignment slack of one chunk: what to
    /// ask for before a `populate_*` call. `None` when an object does not fit
    /// in a page.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(100, 64).build_empty().unwrap();
    /// assert_eq!(pool.mem_needed(0), Some(100 * 128 + 64));
    /// assert_eq!(pool.mem_needed(4096), Some(3 * 4096 + 4 * 128 + 64));
    /// ```
    pub fn mem_needed(&self, page_size: usize) -> Option<usize> {
        let missing = self.inner.size - self.populated();
        crate::layout::calc_mem_size(missing, self.inner.obj.total_size, page_size)?
            .checked_add(self.inner.obj.align)
    }

    /// Whether no object may be used for IO: true until a chunk with an
    /// IOVA is added, and always for pools that do not
    /// [track IOVAs](Self::tracks_iova) (their objects may straddle pages).
    pub fn is_non_io(&self) -> bool {
        // Relaxed: a state flag read for information.
        self.inner.non_io.load(Ordering::Relaxed)
    }

    /// The private area: [`MempoolBuilder::private_size`](crate::MempoolBuilder::private_size)
    /// bytes, zeroed at creation, 64-byte aligned, for the pool's user (the
    /// pool never touches it). Dangling when the size is 0.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(4, 64).private_size(100).build_empty().unwrap();
    /// let p = pool.private_area();
    /// assert_eq!(p.as_ptr().align_offset(64), 0);
    /// // SAFETY: 100 bytes, zeroed, owned by the pool, alive here.
    /// assert!(unsafe { std::slice::from_raw_parts(p.as_ptr(), 100) }.iter().all(|&b| b == 0));
    /// ```
    pub fn private_area(&self) -> NonNull<u8> {
        match self.inner.private.first() {
            Some(c) => NonNull::new(c.get().cast::<u8>()).unwrap_or(NonNull::dangling()),
            None => NonNull::dangling(),
        }
    }

    /// Bytes of the private area.
    pub fn private_size(&self) -> usize {
        self.inner.private_size
    }

    /// Whether `self` and `other` are handles of the same pool.
    pub fn same_pool(&self, other: &Mempool) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// A new user-owned cache of the pool's cache size: the fast path.
    pub fn cache(&self) -> Cache {
        Cache::new(
            self.clone(),
            CacheCore::new(self.inner.cache_size, self.inner.register_counter()),
        )
    }

    /// A new user-owned cache of `size` objects (at most [`CACHE_MAX_SIZE`]
    /// and the pool's size).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(100, 64).build_anonymous().unwrap();
    /// assert_eq!(pool.cache_with_size(50).unwrap().size(), 50);
    /// assert!(pool.cache_with_size(101).is_err());
    /// ```
    pub fn cache_with_size(&self, size: usize) -> Result<Cache, CacheError> {
        let max = CACHE_MAX_SIZE.min(self.inner.size);
        if size > max {
            return Err(CacheError::TooLarge {
                name: self.inner.name.clone(),
                size,
                max,
            });
        }
        Ok(Cache::new(
            self.clone(),
            CacheCore::new(size, self.inner.register_counter()),
        ))
    }

    /// Objects available: in the backend plus every cache (default and user).
    /// Exact when no get or put runs concurrently.
    pub fn avail_count(&self) -> usize {
        (self.inner.backend_len() + self.inner.cached()).min(self.populated())
    }

    /// Objects held by callers: populated minus available.
    pub fn in_use_count(&self) -> usize {
        self.populated() - self.avail_count()
    }

    /// Whether every object of the fully-sized pool is available.
    pub fn is_full(&self) -> bool {
        self.avail_count() == self.inner.size
    }

    /// Whether no object is available.
    pub fn is_empty(&self) -> bool {
        self.avail_count() == 0
    }
}
