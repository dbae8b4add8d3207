//! The pool's shared state, its handle, and what it says about itself
//! (sizes, counts, placement of its ring).
//!
//! Creation is in `builder.rs`, population in `populate.rs`, serving in
//! `serve.rs`, iteration and audit in `introspect.rs`.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::backend::{Backend, StackBackend};
use crate::cache::{Cache, CacheCore, Counter, CACHE_MAX_SIZE};
use crate::default_cache::{Slot, Slots};
use crate::error::{CacheError, GetError};
use crate::events::{self, MempoolEvent};
use crate::introspect::ObjInfo;
use crate::layout::{ObjSize, Placement};
use crate::lf_stack::LfStackBackend;
use crate::ring_backend::RingPlacement;
use crate::sync::{lock, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::{Iova, Obj};

/// A function run when a chunk's memory is no longer used by the pool.
pub type ChunkFree = Box<dyn FnOnce() + Send>;

/// A per-object initialiser (see [`MempoolBuilder::obj_init`](crate::MempoolBuilder::obj_init)).
pub(crate) type ObjInit = Box<dyn FnMut(&ObjInfo, &mut [MaybeUninit<u8>]) + Send>;

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

/// The state every handle of a pool shares.
pub(crate) struct PoolInner {
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
// lock; everything else is `Sync` already.
unsafe impl Sync for PoolInner {}
// SAFETY: as above; the chunk records own their memory (their `on_free` is
// `Send`).
unsafe impl Send for PoolInner {}

impl PoolInner {
    pub(crate) fn slots(&self) -> &[CachePadded<Slot>] {
        &self.slots
    }

    /// Out of line: the cache paths stay small enough to inline everywhere.
    /// On `Ok`, every element of `out` is initialised.
    #[inline(never)]
    pub(crate) fn backend_get(&self, out: &mut [MaybeUninit<Obj>]) -> Result<(), GetError> {
        self.stat_backend();
        if self.backend.get_bulk(out) {
            Ok(())
        } else {
            Err(GetError::Empty {
                requested: out.len(),
                available: self.backend.len(),
            })
        }
    }

    /// Out of line, as `backend_get`.
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

    pub(crate) fn backend_len(&self) -> usize {
        self.backend.len()
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    pub(crate) fn stat_hit(&self, _n: usize) {
        #[cfg(feature = "stats")]
        self.stats.hit(_n);
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    pub(crate) fn stat_put_hit(&self, _n: usize) {
        #[cfg(feature = "stats")]
        self.stats.put_hit(_n);
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    fn stat_get(&self, _n: usize) {
        #[cfg(feature = "stats")]
        self.stats.get(_n);
    }

    // `self` is used with the `stats` feature.
    #[cfg_attr(not(feature = "stats"), allow(clippy::unused_self))]
    #[inline(always)]
    fn stat_put(&self, _n: usize) {
        #[cfg(feature = "stats")]
        self.stats.put(_n);
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
/// See the [crate documentation](crate) for the model. The pool (its memory,
/// chunks and backend) lives until the last handle, cache and typed object
/// is dropped; an [`Obj`] does not keep it alive.
#[derive(Clone)]
pub struct Mempool {
    pub(crate) inner: Arc<PoolInner>,
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

    /// The pool's identity: the address its objects' headers record (equal
    /// for every handle of one pool, distinct between live pools).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let a = Mempool::builder(4, 64).build_empty().unwrap();
    /// let b = Mempool::builder(4, 64).build_empty().unwrap();
    /// assert_eq!(a.as_ptr(), a.clone().as_ptr());
    /// assert_ne!(a.as_ptr(), b.as_ptr());
    /// ```
    #[inline(always)]
    pub fn as_ptr(&self) -> *const () {
        Arc::as_ptr(&self.inner).cast()
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
