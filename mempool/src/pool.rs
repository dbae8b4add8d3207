//! The pool: shared state, creation, population, serving and counts.

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::backend::{Backend, BackendKind, StackBackend};
use crate::cache::{Cache, CacheCore, Counter, CACHE_MAX_SIZE};
use crate::default_cache::{self, Slot, Slots};
use crate::error::{AuditError, GetError, MempoolError, PopulateError};
use crate::events::{self, MempoolEvent};
use crate::layout::{
    calc_obj_size, iova_add, ObjHeader, ObjSize, Placement, COOKIE_FREE, COOKIE_TAKEN,
};
use crate::lf_stack::LfStackBackend;
use crate::ring_backend::RingPlacement;
use crate::sync::{lock, AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::{Iova, Provider};

/// A function run when a chunk's memory is no longer used by the pool.
pub type ChunkFree = Box<dyn FnOnce() + Send>;

/// A per-object initialiser run by the `create*` methods.
pub(crate) type ObjInit = Box<dyn FnMut(&ObjInfo)>;

/// One chunk of memory objects were placed in.
pub(crate) struct ChunkRec {
    pub(crate) va: usize,
    pub(crate) iova: Iova,
    pub(crate) len: usize,
    /// Index of the chunk's first object among all the pool's objects.
    pub(crate) first_index: usize,
    /// Objects placed; `placement.for_each(va, len, count, ..)` finds them.
    pub(crate) count: usize,
    pub(crate) placement: Placement,
    pub(crate) on_free: Option<ChunkFree>,
}

/// The built-in backends, dispatched without a virtual call, and user ones.
/// (The ring variant is large, but the enum is built once and never moved.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum BackendImpl {
    Ring(crate::ring_backend::RingBackend),
    Stack(StackBackend),
    LfStack(LfStackBackend),
    Custom(Box<dyn Backend>),
}

impl BackendImpl {
    #[inline(always)]
    fn put_bulk(&self, objs: &[NonNull<u8>]) -> bool {
        match self {
            Self::Ring(r) => r.put_bulk(objs),
            Self::Stack(s) => s.put_bulk(objs).is_ok(),
            Self::LfStack(s) => s.put_bulk(objs).is_ok(),
            Self::Custom(c) => c.put_bulk(objs).is_ok(),
        }
    }

    #[inline(always)]
    fn get_bulk(&self, objs: &mut [NonNull<u8>]) -> bool {
        match self {
            Self::Ring(r) => r.get_bulk(objs),
            Self::Stack(s) => s.get_bulk(objs).is_ok(),
            Self::LfStack(s) => s.get_bulk(objs).is_ok(),
            Self::Custom(c) => c.get_bulk(objs).is_ok(),
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
pub(crate) struct Line([u8; 64]);

/// The state every handle of a pool shares.
pub(crate) struct PoolInner {
    name: String,
    size: usize,
    cache_size: usize,
    flags: PoolFlags,
    obj: ObjSize,
    /// The pool's private area: `private_size` bytes, zeroed at creation,
    /// 64-byte aligned; the pool itself never reads or writes it.
    private: Box<[UnsafeCell<Line>]>,
    private_size: usize,
    backend: BackendImpl,
    /// Default caches (empty when `cache_size == 0`).
    slots: Slots,
    /// Published lengths of every cache (default slots and user caches).
    counters: Mutex<Vec<Counter>>,
    /// Chunks in population order.
    chunks: Mutex<Vec<ChunkRec>>,
    /// Objects placed so far; only grows, under the `chunks` lock.
    populated: AtomicUsize,
    /// No object can be used for IO (see `Mempool::is_non_io`).
    non_io: AtomicBool,
    #[cfg(feature = "stats")]
    stats: crate::stats::StatsCells,
}

// SAFETY: `private` is raw memory handed out as a pointer (writes through it
// are the caller's `unsafe`); the headers behind `chunks` are written only
// under the `chunks` lock; everything else is `Sync` already.
unsafe impl Sync for PoolInner {}
// SAFETY: as above; the chunk records own their memory.
unsafe impl Send for PoolInner {}

impl PoolInner {
    pub(crate) fn slots(&self) -> &[CachePadded<Slot>] {
        &self.slots
    }

    /// Out of line: the cache paths stay small enough to inline everywhere.
    #[inline(never)]
    pub(crate) fn backend_get(&self, out: &mut [NonNull<u8>]) -> Result<(), GetError> {
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
    pub(crate) fn backend_put(&self, objs: &[NonNull<u8>]) {
        self.stat_backend();
        let ok = self.backend.put_bulk(objs);
        // The backend holds every object of the pool; a put of objects that
        // are out cannot find it full (the `Backend` contract).
        debug_assert!(ok, "pool '{}': backend refused a put", self.name);
    }

    #[inline(always)]
    pub(crate) fn stat_hit(&self, _n: usize) {
        #[cfg(feature = "stats")]
        self.stats.hit(_n);
    }

    #[inline(always)]
    pub(crate) fn stat_put_hit(&self, _n: usize) {
        #[cfg(feature = "stats")]
        self.stats.put_hit(_n);
    }

    #[inline(always)]
    pub(crate) fn stat_get(&self, _n: usize) {
        #[cfg(feature = "stats")]
        self.stats.get(_n);
    }

    #[inline(always)]
    pub(crate) fn stat_put(&self, _n: usize) {
        #[cfg(feature = "stats")]
        self.stats.put(_n);
    }

    #[inline(always)]
    fn stat_backend(&self) {
        #[cfg(feature = "stats")]
        self.stats.backend();
    }

    fn register_counter(&self) -> Counter {
        let c: Counter = Arc::new(CachePadded::new(AtomicUsize::new(0)));
        lock(&self.counters).push(c.clone());
        c
    }

    pub(crate) fn unregister_counter(&self, c: &Counter) {
        lock(&self.counters).retain(|x| !Arc::ptr_eq(x, c));
    }

    /// Debug builds: checks each object is this pool's and free, marks it taken.
    #[inline(always)]
    pub(crate) fn debug_mark_taken(&self, _objs: &[NonNull<u8>]) {
        #[cfg(debug_assertions)]
        for o in _objs {
            // SAFETY: the pointer came from this pool's backend or cache,
            // which hold only this pool's objects (with headers).
            let h = unsafe { &mut *ObjHeader::of(o.as_ptr()) };
            assert!(
                std::ptr::eq(h.pool, self as *const Self as *const ()) && h.cookie == COOKIE_FREE,
                "pool '{}': object {:p} handed out has a bad header (cookie {:#x}): overwritten or put twice",
                self.name,
                o.as_ptr(),
                h.cookie
            );
            h.cookie = COOKIE_TAKEN;
        }
    }

    /// Debug builds: checks each object is this pool's and taken, marks it free.
    #[inline(always)]
    pub(crate) fn debug_mark_free(&self, _objs: &[NonNull<u8>]) {
        #[cfg(debug_assertions)]
        for o in _objs {
            // SAFETY: the caller of put promised these are this pool's objects.
            let h = unsafe { &mut *ObjHeader::of(o.as_ptr()) };
            assert!(
                std::ptr::eq(h.pool, self as *const Self as *const ()),
                "pool '{}': object {:p} put back is not from this pool (or its header was overwritten)",
                self.name,
                o.as_ptr()
            );
            assert!(
                h.cookie == COOKIE_TAKEN,
                "pool '{}': object {:p} put back twice (cookie {:#x})",
                self.name,
                o.as_ptr(),
                h.cookie
            );
            h.cookie = COOKIE_FREE;
        }
    }

    /// Every get path, once `out` holds the objects: counts, debug cookies,
    /// ASan.
    #[inline(always)]
    pub(crate) fn handed_out(&self, out: &[NonNull<u8>]) {
        self.stat_get(out.len());
        self.debug_mark_taken(out);
        self.asan_unpoison(out);
    }

    /// Every put path, before the objects reach a cache or the backend
    /// (where another thread's get can see them).
    #[inline(always)]
    pub(crate) fn taken_back(&self, objs: &[NonNull<u8>]) {
        self.debug_mark_free(objs);
        self.asan_poison(objs);
        self.stat_put(objs.len());
    }

    /// `cfg(pktmem_asan)`: marks the objects' bodies unaddressable while
    /// they are free (in a cache or the backend). Headers stay readable.
    #[inline(always)]
    pub(crate) fn asan_poison(&self, _objs: &[NonNull<u8>]) {
        #[cfg(pktmem_asan)]
        for o in _objs {
            // SAFETY: the objects are this pool's (get or put contract), so
            // their bodies lie in its chunks; nobody uses a free object.
            unsafe { pktmem_hugemem::asan::poison(o.as_ptr(), self.obj.elt_size) };
        }
    }

    /// `cfg(pktmem_asan)`: makes the bodies of objects handed out addressable.
    #[inline(always)]
    pub(crate) fn asan_unpoison(&self, _objs: &[NonNull<u8>]) {
        #[cfg(pktmem_asan)]
        for o in _objs {
            // SAFETY: as in `asan_poison`; the objects are now the caller's.
            unsafe { pktmem_hugemem::asan::unpoison(o.as_ptr(), self.obj.elt_size) };
        }
    }

    fn event_info(&self) -> events::EventInfo<'_> {
        events::EventInfo {
            name: &self.name,
            size: self.size,
            populated: self.populated.load(Ordering::Relaxed),
        }
    }
}

impl Drop for PoolInner {
    fn drop(&mut self) {
        events::fire(MempoolEvent::Destroyed, &self.event_info());
        let chunks = std::mem::take(&mut *lock(&self.chunks));
        for c in chunks.into_iter().rev() {
            // Free objects are poisoned (`asan_poison`); the chunk goes back
            // clean, as ASan's shadow outlives an unmap.
            // SAFETY: the chunk's memory is still held (`on_free` not run).
            unsafe { pktmem_hugemem::asan::unpoison(c.va as *const u8, c.len) };
            if let Some(f) = c.on_free {
                f();
            }
        }
    }
}

/// Flags of a pool.
///
/// ```
/// use pktmem_mempool::PoolFlags;
/// let f = PoolFlags::from_bits(0x20).unwrap();
/// assert!(f.contains(PoolFlags::NO_IOVA_CONTIG));
/// assert!(PoolFlags::from_bits(0x8000).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolFlags(u32);

impl PoolFlags {
    /// Do not align objects to cache lines (8-byte alignment).
    pub const NO_CACHE_ALIGN: Self = Self(0x2);
    /// Objects need not be IOVA-contiguous: they may straddle pages and their
    /// IOVA is not tracked (the pool is "no-IO").
    pub const NO_IOVA_CONTIG: Self = Self(0x20);
    /// Single producer (set by [`MempoolBuilder::single_producer`]).
    pub(crate) const SP_PUT: Self = Self(0x4);
    /// Single consumer (set by [`MempoolBuilder::single_consumer`]).
    pub(crate) const SC_GET: Self = Self(0x8);
    const PUBLIC: u32 = 0x2 | 0x20;

    /// No flag.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The flags in `bits`; unknown bits (including the single-producer and
    /// single-consumer bits, which need the builder's `unsafe` methods) are
    /// an error.
    pub fn from_bits(bits: u32) -> Result<Self, MempoolError> {
        if bits & !Self::PUBLIC != 0 {
            return Err(MempoolError::UnknownFlags {
                bits: bits & !Self::PUBLIC,
            });
        }
        Ok(Self(bits))
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for PoolFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        Self(self.0 | rhs.0)
    }
}

/// What a callback learns about one object.
#[derive(Debug, Clone, Copy)]
pub struct ObjInfo {
    /// The object body.
    pub ptr: NonNull<u8>,
    /// IOVA of the body, or `Iova::BAD` when unknown.
    pub iova: Iova,
    /// Index of the object in population order.
    pub index: usize,
}

/// What a callback learns about one chunk.
#[derive(Debug, Clone, Copy)]
pub struct ChunkInfo {
    /// Start of the chunk.
    pub addr: NonNull<u8>,
    /// IOVA of its start (the chunk is IOVA-contiguous), or `Iova::BAD`.
    pub iova: Iova,
    /// Its length in bytes.
    pub len: usize,
    /// Objects placed in it.
    pub objects: usize,
}

/// What [`Mempool::audit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditReport {
    /// Objects placed.
    pub objects: usize,
    /// Objects whose header says "taken" (debug builds; 0 in release).
    pub taken: usize,
    /// Chunks.
    pub chunks: usize,
}

/// A pool of fixed-size objects; a cheap-to-clone shared handle.
///
/// See the [crate documentation](crate) for the model. The pool (its memory,
/// chunks and backend) lives until the last handle, cache and typed object
/// is dropped.
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
            .finish()
    }
}

/// Configures and creates a [`Mempool`].
///
/// ```
/// use pktmem_mempool::{BackendKind, Mempool};
/// let pool = Mempool::builder("b", 100, 200)
///     .cache_size(16)
///     .backend_kind(BackendKind::Stack)
///     .create_empty()
///     .unwrap();
/// assert_eq!((pool.size(), pool.populated(), pool.avail_count()), (100, 0, 0));
/// ```
pub struct MempoolBuilder {
    name: String,
    n: usize,
    elt_size: usize,
    cache_size: usize,
    private_size: usize,
    flags: PoolFlags,
    kind: BackendKind,
    custom: Option<Box<dyn Backend>>,
    init: Option<ObjInit>,
}

impl std::fmt::Debug for MempoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MempoolBuilder")
            .field("name", &self.name)
            .field("n", &self.n)
            .field("elt_size", &self.elt_size)
            .field("cache_size", &self.cache_size)
            .field("flags", &self.flags)
            .field("kind", &self.kind)
            .finish()
    }
}

impl MempoolBuilder {
    /// Per-core cache size (0: no cache; at most [`CACHE_MAX_SIZE`] and `n`).
    pub fn cache_size(mut self, size: usize) -> Self {
        self.cache_size = size;
        self
    }

    /// Bytes of the pool's private area (see [`Mempool::private_area`]).
    pub fn private_size(mut self, size: usize) -> Self {
        self.private_size = size;
        self
    }

    /// Adds `flags` ([`PoolFlags::NO_CACHE_ALIGN`], [`PoolFlags::NO_IOVA_CONTIG`]).
    pub fn flags(mut self, flags: PoolFlags) -> Self {
        self.flags = self.flags | flags;
        self
    }

    /// Picks a built-in backend (default: the ring).
    pub fn backend_kind(mut self, kind: BackendKind) -> Self {
        self.kind = kind;
        self
    }

    /// Uses `backend` (empty, capacity at least `n`) for free objects.
    pub fn backend(mut self, backend: Box<dyn Backend>) -> Self {
        self.custom = Some(backend);
        self
    }

    /// Puts go through a single-producer ring.
    ///
    /// # Safety
    /// - no two puts on the pool (including cache flushes, cache drops,
    ///   population and typed objects going back) ever run concurrently.
    pub unsafe fn single_producer(mut self) -> Self {
        self.flags = self.flags | PoolFlags::SP_PUT;
        self
    }

    /// Gets go through a single-consumer ring.
    ///
    /// # Safety
    /// - no two gets on the pool (including cache refills) ever run
    ///   concurrently.
    pub unsafe fn single_consumer(mut self) -> Self {
        self.flags = self.flags | PoolFlags::SC_GET;
        self
    }

    /// Runs `init` on every object once the pool is populated by
    /// [`create`](Self::create) or [`create_anonymous`](Self::create_anonymous).
    pub fn obj_init(mut self, init: impl FnMut(&ObjInfo) + 'static) -> Self {
        self.init = Some(Box::new(init));
        self
    }

    /// Creates the pool with no memory; populate it with the `populate_*`
    /// methods of [`Mempool`].
    pub fn create_empty(self) -> Result<Mempool, MempoolError> {
        self.build(None).map(|(p, _)| p)
    }

    /// Creates the empty pool; a ring backend keeps its slots in
    /// `ring_provider`'s memory when given (see [`RingPlacement`]).
    pub(crate) fn build(
        self,
        ring_provider: Option<&Provider>,
    ) -> Result<(Mempool, Option<ObjInit>), MempoolError> {
        let Self {
            name,
            n,
            elt_size,
            cache_size,
            private_size,
            flags,
            kind,
            custom,
            init,
        } = self;
        if n == 0 {
            return Err(MempoolError::ZeroObjects { name });
        }
        if elt_size == 0 {
            return Err(MempoolError::ZeroElementSize { name });
        }
        let max = CACHE_MAX_SIZE.min(n);
        if cache_size > max {
            return Err(MempoolError::CacheTooLarge { cache_size, max });
        }
        let obj =
            calc_obj_size(elt_size, flags).ok_or(MempoolError::ElementTooLarge { elt_size })?;
        if !matches!(n.checked_mul(obj.total_size), Some(b) if b <= isize::MAX as usize) {
            return Err(MempoolError::PoolTooLarge {
                n,
                obj_size: obj.total_size,
            });
        }
        if private_size > 1 << 30 {
            return Err(MempoolError::PrivateAreaTooLarge { size: private_size });
        }
        let backend = match custom {
            Some(b) => {
                if b.capacity() < n {
                    return Err(MempoolError::BackendTooSmall {
                        capacity: b.capacity(),
                        needed: n,
                    });
                }
                if !b.is_empty() {
                    return Err(MempoolError::BackendNotEmpty { len: b.len() });
                }
                BackendImpl::Custom(b)
            }
            None => match kind {
                BackendKind::Stack => BackendImpl::Stack(StackBackend::new(n)),
                BackendKind::LockFreeStack => {
                    BackendImpl::LfStack(LfStackBackend::new(n).map_err(MempoolError::LfStack)?)
                }
                BackendKind::Ring => BackendImpl::Ring(crate::ring_backend::RingBackend::new(
                    n,
                    flags.contains(PoolFlags::SP_PUT),
                    flags.contains(PoolFlags::SC_GET),
                    ring_provider,
                )?),
            },
        };
        let counters = Mutex::new(Vec::new());
        let mut slots = Vec::new();
        if cache_size > 0 && cfg!(not(loom)) {
            for _ in 0..default_cache::slot_count() {
                let c: Counter = Arc::new(CachePadded::new(AtomicUsize::new(0)));
                lock(&counters).push(c.clone());
                slots.push(CachePadded::new(Slot::new(CacheCore::new(cache_size, c))));
            }
        }
        let private = (0..private_size.div_ceil(64))
            .map(|_| UnsafeCell::new(Line([0u8; 64])))
            .collect();
        let inner = PoolInner {
            name,
            size: n,
            cache_size,
            flags,
            obj,
            private,
            private_size,
            backend,
            slots: slots.into_boxed_slice(),
            counters,
            chunks: Mutex::new(Vec::new()),
            populated: AtomicUsize::new(0),
            non_io: AtomicBool::new(true),
            #[cfg(feature = "stats")]
            stats: Default::default(),
        };
        Ok((
            Mempool {
                inner: Arc::new(inner),
            },
            init,
        ))
    }

    /// Creates the pool and populates it from anonymous memory (small pages,
    /// no IOVA: the pool stays no-IO), then runs the `obj_init` callback.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder("anon", 1000, 64).cache_size(32).create_anonymous().unwrap();
    /// assert!(pool.is_full() && pool.is_non_io());
    /// ```
    pub fn create_anonymous(self) -> Result<Mempool, MempoolError> {
        let (pool, init) = self.build(None)?;
        pool.populate_anonymous()?;
        pool.finish_create(init);
        Ok(pool)
    }
}

impl Mempool {
    /// Starts configuring a pool of `n` objects of `elt_size` bytes.
    pub fn builder(name: impl Into<String>, n: usize, elt_size: usize) -> MempoolBuilder {
        MempoolBuilder {
            name: name.into(),
            n,
            elt_size,
            cache_size: 0,
            private_size: 0,
            flags: PoolFlags::empty(),
            kind: BackendKind::Ring,
            custom: None,
            init: None,
        }
    }

    pub(crate) fn finish_create(&self, init: Option<ObjInit>) {
        if let Some(mut init) = init {
            // Objects start free (poisoned at placement): open each for its
            // initialiser only.
            self.for_each_obj(|o| {
                self.inner.asan_unpoison(&[o.ptr]);
                init(o);
                self.inner.asan_poison(&[o.ptr]);
            });
        }
    }

    /// Where the pool's ring keeps its slots, or `None` when the pool's
    /// backend is not the built-in ring. Pools created from a provider
    /// ([`MempoolBuilder::create`], [`MempoolBuilder::create_with_provider`])
    /// put them in that provider's memory when it can give it.
    ///
    /// ```
    /// use pktmem_mempool::{BackendKind, Mempool, RingPlacement};
    /// let pool = Mempool::builder("r", 10, 64).create_empty().unwrap();
    /// assert_eq!(pool.ring_placement(), Some(RingPlacement::Heap));
    /// let pool = Mempool::builder("s", 10, 64).backend_kind(BackendKind::Stack).create_empty().unwrap();
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
    /// let pool = Mempool::builder("where", 1000, 64).create_with_provider(p).unwrap();
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

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Objects the pool holds when fully populated.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// Objects placed so far.
    pub fn populated(&self) -> usize {
        // Relaxed: a count; population itself is ordered by the chunks lock.
        self.inner.populated.load(Ordering::Relaxed)
    }

    /// The default per-core cache size.
    pub fn cache_size(&self) -> usize {
        self.inner.cache_size
    }

    /// The pool's flags.
    pub fn flags(&self) -> PoolFlags {
        self.inner.flags
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
    /// let pool = Mempool::builder("need", 100, 64).create_empty().unwrap();
    /// assert_eq!(pool.mem_needed(0), Some(100 * 128 + 64));
    /// assert_eq!(pool.mem_needed(4096), Some(3 * 4096 + 4 * 128 + 64));
    /// ```
    pub fn mem_needed(&self, page_size: usize) -> Option<usize> {
        let missing = self.inner.size - self.populated();
        crate::layout::calc_mem_size(missing, self.inner.obj.total_size, page_size)?
            .checked_add(self.inner.obj.align)
    }

    /// Whether no object may be used for IO: true until a chunk with a valid
    /// IOVA is added, and always for pools created with
    /// [`PoolFlags::NO_IOVA_CONTIG`] (their objects may straddle pages, so
    /// they carry no IOVA).
    pub fn is_non_io(&self) -> bool {
        // Relaxed: a state flag read for information.
        self.inner.non_io.load(Ordering::Relaxed)
    }

    /// The private area: [`MempoolBuilder::private_size`] bytes, zeroed at
    /// creation, 64-byte aligned, for the pool's user (the pool never
    /// touches it). Dangling when the size is 0.
    pub fn private_area(&self) -> NonNull<u8> {
        match self.inner.private.first() {
            Some(c) => NonNull::new(c.get() as *mut u8).unwrap_or(NonNull::dangling()),
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

    /// A new user-owned cache of the pool's cache size.
    pub fn cache(&self) -> Cache {
        Cache {
            pool: self.clone(),
            core: CacheCore::new(self.inner.cache_size, self.inner.register_counter()),
        }
    }

    /// A new user-owned cache of `size` objects (at most [`CACHE_MAX_SIZE`]
    /// and the pool's size).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder("cs", 100, 64).create_anonymous().unwrap();
    /// assert_eq!(pool.cache_with_size(50).unwrap().size(), 50);
    /// assert!(pool.cache_with_size(101).is_err());
    /// ```
    pub fn cache_with_size(&self, size: usize) -> Result<Cache, MempoolError> {
        let max = CACHE_MAX_SIZE.min(self.inner.size);
        if size > max {
            return Err(MempoolError::CacheTooLarge {
                cache_size: size,
                max,
            });
        }
        Ok(Cache {
            pool: self.clone(),
            core: CacheCore::new(size, self.inner.register_counter()),
        })
    }

    /// Takes `out.len()` objects, all or nothing: through `cache` when given
    /// (a cache of another pool is ignored and the backend used), else through
    /// the calling thread's default cache.
    ///
    /// The default cache: a pool with a cache size keeps a few cache slots
    /// (a power of two, at least 8), each on its own cache line. A thread
    /// uses slot `thread tag & (slots - 1)`: it claims a free slot once with a
    /// compare-exchange and then uses it with one relaxed load of the owner
    /// word plus the plain cache path (no read-modify-write, no lock). A slot
    /// owned by another live thread sends the call to the backend. When a
    /// thread exits, its slots are flushed to the backend and freed. An
    /// explicit [`Cache`] is a little faster still (no thread-local lookup).
    ///
    /// The pointers are the objects' bodies (`obj_size().elt_size` bytes,
    /// aligned to 64 unless `NO_CACHE_ALIGN`); the caller owns them until it
    /// puts them back. Using them is `unsafe` raw-pointer work; the pool does
    /// not track them, so dropping the last pool handle while objects are out
    /// frees their memory (use [`TypedPool`](crate::TypedPool) for handles
    /// that keep the pool alive).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// use std::ptr::NonNull;
    /// let pool = Mempool::builder("g", 64, 64).cache_size(8).create_anonymous().unwrap();
    /// let mut objs = [NonNull::dangling(); 64];
    /// pool.get_bulk(None, &mut objs).unwrap();
    /// assert!(pool.get_bulk(None, &mut objs[..1]).is_err());
    /// // SAFETY: objects of this pool, returned once.
    /// unsafe { pool.put_bulk(None, &objs) };
    /// assert!(pool.is_full());
    /// ```
    #[inline(always)]
    pub fn get_bulk(
        &self,
        cache: Option<&mut Cache>,
        out: &mut [NonNull<u8>],
    ) -> Result<(), GetError> {
        match cache {
            Some(c) if Arc::ptr_eq(&c.pool.inner, &self.inner) => c.core.get(&self.inner, out)?,
            Some(_) => self.inner.backend_get(out)?,
            None => default_cache::get(&self.inner, out)?,
        }
        self.inner.handed_out(out);
        Ok(())
    }

    /// Gives objects back: through `cache` when given (a cache of another
    /// pool is ignored), else through the calling thread's default cache.
    /// Never fails.
    ///
    /// # Safety
    /// - every pointer in `objs` came from a get on this pool and is given
    ///   back once (not twice, not while still in use);
    /// - if the pool is single-producer, no other put runs concurrently.
    ///
    /// Debug builds panic on a double put or a foreign object (header cookies).
    #[inline(always)]
    pub unsafe fn put_bulk(&self, cache: Option<&mut Cache>, objs: &[NonNull<u8>]) {
        self.inner.taken_back(objs);
        match cache {
            Some(c) if Arc::ptr_eq(&c.pool.inner, &self.inner) => c.core.put(&self.inner, objs),
            Some(_) => self.inner.backend_put(objs),
            None => default_cache::put(&self.inner, objs),
        }
    }

    /// Takes one object (see [`get_bulk`](Self::get_bulk)).
    #[inline(always)]
    pub fn get(&self, cache: Option<&mut Cache>) -> Result<NonNull<u8>, GetError> {
        let mut o = [NonNull::dangling()];
        self.get_bulk(cache, &mut o)?;
        Ok(o[0])
    }

    /// Gives one object back (see [`put_bulk`](Self::put_bulk)).
    ///
    /// # Safety
    /// The conditions of [`put_bulk`](Self::put_bulk).
    #[inline(always)]
    pub unsafe fn put(&self, cache: Option<&mut Cache>, obj: NonNull<u8>) {
        // SAFETY: forwarded to the caller.
        unsafe { self.put_bulk(cache, &[obj]) }
    }

    /// Returns the calling thread's default cache to the backend.
    pub fn flush_default_cache(&self) {
        default_cache::flush(&self.inner);
    }

    /// The IOVA of an object's body, from its header.
    ///
    /// # Safety
    /// - `obj` is an object of a live pool.
    #[inline]
    pub unsafe fn obj_iova(obj: NonNull<u8>) -> Iova {
        // SAFETY: the caller's condition; headers are written before objects
        // are handed out and `iova` never changes after.
        Iova(unsafe { (*ObjHeader::of(obj.as_ptr())).iova })
    }

    /// Runs `f` with the pool `obj` belongs to, found through the object's
    /// header (no reference count is taken): how a packet buffer finds the
    /// pool to go back to.
    ///
    /// # Safety
    /// - `obj` is an object of a pool that stays alive during the call.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder("owner", 8, 64).create_anonymous().unwrap();
    /// let o = pool.get(None).unwrap();
    /// // SAFETY: `pool` is alive; the object is returned once.
    /// unsafe { Mempool::with_owner(o, |p| { assert!(p.same_pool(&pool)); p.put(None, o) }) };
    /// assert!(pool.is_full());
    /// ```
    #[inline(always)]
    pub unsafe fn with_owner<R>(obj: NonNull<u8>, f: impl FnOnce(&Mempool) -> R) -> R {
        // SAFETY: the header holds `Arc::as_ptr` of the owning pool (written
        // at placement, never changed), alive per the caller.
        let inner = unsafe { (*ObjHeader::of(obj.as_ptr())).pool } as *const PoolInner;
        // SAFETY: borrowed without taking a count: `ManuallyDrop` never
        // releases the count this `Arc` does not own.
        let inner = unsafe { Arc::from_raw(inner) };
        let pool = std::mem::ManuallyDrop::new(Mempool { inner });
        f(&pool)
    }

    /// Whether `obj` belongs to this pool, by its header.
    ///
    /// # Safety
    /// - `obj` is an object of some live pool.
    #[inline]
    pub unsafe fn owns(&self, obj: NonNull<u8>) -> bool {
        // SAFETY: the caller's condition.
        let p = unsafe { (*ObjHeader::of(obj.as_ptr())).pool };
        std::ptr::eq(p, Arc::as_ptr(&self.inner) as *const ())
    }

    /// Objects available: in the backend plus every cache (default and user).
    /// Exact when no get or put runs concurrently.
    pub fn avail_count(&self) -> usize {
        let cached: usize = lock(&self.inner.counters)
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        (self.inner.backend.len() + cached).min(self.populated())
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

    /// Calls `f` for every placed object, in population order. `f` runs
    /// under the pool's population lock: it must not populate this pool (it
    /// may get and put objects). The bodies of free objects belong to the
    /// pool (under `cfg(pktmem_asan)` they are poisoned: see the crate docs).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder("it", 10, 64).create_anonymous().unwrap();
    /// let mut n = 0;
    /// pool.for_each_obj(|o| { assert_eq!(o.index, n); n += 1 });
    /// assert_eq!(n, 10);
    /// ```
    pub fn for_each_obj(&self, mut f: impl FnMut(&ObjInfo)) {
        let chunks = lock(&self.inner.chunks);
        let h = self.inner.obj.header_size;
        for c in chunks.iter() {
            let mut k = 0;
            c.placement.for_each(c.va, c.len, c.count, |off| {
                let body = c.va + off + h;
                f(&ObjInfo {
                    // SAFETY: inside a chunk, so non-null.
                    ptr: unsafe { NonNull::new_unchecked(body as *mut u8) },
                    iova: iova_add(c.iova, off + h),
                    index: c.first_index + k,
                });
                k += 1;
            });
        }
    }

    /// Calls `f` for every chunk, in population order.
    pub fn for_each_chunk(&self, mut f: impl FnMut(&ChunkInfo)) {
        for c in lock(&self.inner.chunks).iter() {
            f(&ChunkInfo {
                // SAFETY: chunks are non-null memory.
                addr: unsafe { NonNull::new_unchecked(c.va as *mut u8) },
                iova: c.iova,
                len: c.len,
                objects: c.count,
            });
        }
    }

    /// Checks every object's header (pool pointer, cookie) and the counts.
    /// Meant for a quiet pool: a get, put or cache flush running meanwhile
    /// can make the count check report a transient excess.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder("au", 100, 64).create_anonymous().unwrap();
    /// let r = pool.audit().unwrap();
    /// assert_eq!((r.objects, r.taken), (100, 0));
    /// ```
    pub fn audit(&self) -> Result<AuditReport, AuditError> {
        let me = Arc::as_ptr(&self.inner) as *const ();
        let mut err = None;
        let mut taken = 0;
        let mut objects = 0;
        self.for_each_obj(|o| {
            objects += 1;
            if err.is_some() {
                return;
            }
            // SAFETY: `o` is an object of this live pool.
            let h = unsafe { &*ObjHeader::of(o.ptr.as_ptr()) };
            let addr = o.ptr.as_ptr() as usize;
            if !std::ptr::eq(h.pool, me) {
                err = Some(AuditError::ForeignHeader {
                    index: o.index,
                    addr,
                });
            } else if h.cookie == COOKIE_TAKEN {
                taken += 1;
            } else if h.cookie != COOKIE_FREE {
                err = Some(AuditError::BadCookie {
                    index: o.index,
                    addr,
                    cookie: h.cookie,
                });
            }
        });
        if let Some(e) = err {
            return Err(e);
        }
        let populated = self.populated();
        let cached: usize = lock(&self.inner.counters)
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        let available = self.inner.backend.len() + cached;
        if available > populated {
            return Err(AuditError::Count {
                populated,
                available,
            });
        }
        Ok(AuditReport {
            objects,
            taken,
            chunks: lock(&self.inner.chunks).len(),
        })
    }

    /// Statistics (with the `stats` feature).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder("st", 64, 64).cache_size(8).create_anonymous().unwrap();
    /// let o = pool.get(None).unwrap();
    /// // SAFETY: returned once.
    /// unsafe { pool.put(None, o) };
    /// let s = pool.stats();
    /// assert_eq!((s.gets, s.puts), (1, 1));
    /// ```
    #[cfg(feature = "stats")]
    pub fn stats(&self) -> crate::stats::PoolStats {
        self.inner.stats.snapshot()
    }

    // ---- population ----

    /// Adds objects from IOVA-contiguous memory starting at `addr` (IOVA
    /// `iova`, or `Iova::BAD` when unknown), `len` bytes. Objects may cross
    /// page boundaries inside it. Returns how many objects were added (0 when
    /// not even one fits; then `on_free` runs at once).
    ///
    /// # Safety
    /// - `addr..addr+len` is valid, writable memory, used by nothing else,
    ///   until `on_free` runs (or, without `on_free`, until the pool is freed);
    /// - when `iova` is not `BAD` it is the IO address of `addr`, contiguous
    ///   over `len`.
    ///
    /// ```
    /// use pktmem_mempool::{Iova, Mempool};
    /// let pool = Mempool::builder("iova", 4, 64).create_empty().unwrap();
    /// #[repr(align(64))]
    /// struct Mem([u8; 512]);
    /// let mem: &'static mut Mem = Box::leak(Box::new(Mem([0; 512])));
    /// // SAFETY: leaked memory, used only by the pool.
    /// let n = unsafe {
    ///     pool.populate_iova(std::ptr::NonNull::from(mem).cast(), Iova(0x1000_0000), 512, None)
    /// }.unwrap();
    /// assert_eq!(n, 4); // 512 B hold 4 elements of 128 B
    /// assert!(!pool.is_non_io());
    /// ```
    pub unsafe fn populate_iova(
        &self,
        addr: NonNull<u8>,
        iova: Iova,
        len: usize,
        on_free: Option<ChunkFree>,
    ) -> Result<usize, PopulateError> {
        let iova = if self.inner.flags.contains(PoolFlags::NO_IOVA_CONTIG) {
            Iova::BAD
        } else {
            iova
        };
        // SAFETY: forwarded to the caller.
        unsafe { self.populate_runs(&[(addr.as_ptr() as usize, iova, len)], 0, on_free) }
    }

    /// Adds objects from virtual memory `addr..addr+len` made of pages of
    /// `page_size` bytes, asking `lookup` for each page's IOVA and merging
    /// IOVA-consecutive pages; no object straddles two runs. Pages with
    /// `Iova::BAD` are not merged (objects stay within a page). With
    /// [`PoolFlags::NO_IOVA_CONTIG`] the whole range is one run, IOVA `BAD`.
    ///
    /// # Safety
    /// The conditions of [`populate_iova`](Self::populate_iova), for the whole
    /// range, with `lookup` telling the truth.
    pub unsafe fn populate_virt(
        &self,
        addr: NonNull<u8>,
        len: usize,
        page_size: usize,
        mut lookup: impl FnMut(*const u8) -> Iova,
        on_free: Option<ChunkFree>,
    ) -> Result<usize, PopulateError> {
        if !page_size.is_power_of_two() {
            if let Some(f) = on_free {
                f();
            }
            return Err(PopulateError::BadPageSize { page_size });
        }
        let va = addr.as_ptr() as usize;
        if self.inner.flags.contains(PoolFlags::NO_IOVA_CONTIG) {
            // SAFETY: forwarded to the caller.
            return unsafe { self.populate_runs(&[(va, Iova::BAD, len)], 0, on_free) };
        }
        let mut runs: Vec<(usize, Iova, usize)> = Vec::new();
        let mut off = 0;
        while off < len {
            let pva = va + off;
            let plen = ((pva / page_size + 1) * page_size - pva).min(len - off);
            let piova = lookup(pva as *const u8);
            match runs.last_mut() {
                Some((rva, riova, rlen))
                    if *riova != Iova::BAD
                        && piova != Iova::BAD
                        && riova.0 + *rlen as u64 == piova.0
                        && *rva + *rlen == pva =>
                {
                    *rlen += plen
                }
                _ => runs.push((pva, piova, plen)),
            }
            off += plen;
        }
        // SAFETY: forwarded to the caller; each run is IOVA-contiguous or a
        // single page (BAD).
        unsafe { self.populate_runs(&runs, page_size, on_free) }
    }

    /// Adds objects from fresh anonymous memory (`mmap`, small pages, IOVA
    /// unknown) for every object still missing; the memory is unmapped when
    /// the pool is freed. Returns how many objects were added.
    pub fn populate_anonymous(&self) -> Result<usize, PopulateError> {
        let missing = self.inner.size - self.populated();
        if missing == 0 {
            return Err(PopulateError::Full {
                name: self.inner.name.clone(),
                size: self.inner.size,
            });
        }
        let pg = crate::os::page_size();
        let total = self.inner.obj.total_size;
        let contig = self.inner.flags.contains(PoolFlags::NO_IOVA_CONTIG);
        let bytes = if contig {
            crate::layout::calc_mem_size(missing, total, 0)
        } else {
            crate::layout::calc_mem_size(missing, total, pg)
        }
        .ok_or(PopulateError::ObjectLargerThanPage {
            obj_size: total,
            page_size: pg,
        })?;
        let bytes = (bytes + self.inner.obj.align).next_multiple_of(pg);
        let map = crate::os::AnonMap::new(bytes).map_err(PopulateError::Io)?;
        let addr = map.addr();
        let on_free: ChunkFree = Box::new(move || drop(map));
        // SAFETY: a fresh private mapping owned by `on_free`; BAD IOVAs.
        unsafe { self.populate_virt(addr, bytes, pg, |_| Iova::BAD, Some(on_free)) }
    }

    /// Places objects in `runs` (each IOVA-contiguous, or one page when its
    /// IOVA is BAD and `page_size != 0`); `on_free` goes with the last record.
    ///
    /// # Safety
    /// The conditions of `populate_iova` for every run.
    pub(crate) unsafe fn populate_runs(
        &self,
        runs: &[(usize, Iova, usize)],
        page_size: usize,
        on_free: Option<ChunkFree>,
    ) -> Result<usize, PopulateError> {
        let inner = &*self.inner;
        let mut chunks = lock(&inner.chunks);
        let mut populated = inner.populated.load(Ordering::Relaxed);
        if populated == inner.size {
            drop(chunks);
            if let Some(f) = on_free {
                f();
            }
            return Err(PopulateError::Full {
                name: inner.name.clone(),
                size: inner.size,
            });
        }
        let before = chunks.len();
        let me = Arc::as_ptr(&self.inner) as *const ();
        let h = inner.obj.header_size;
        let mut added = 0;
        let mut got_iova = false;
        // Objects start free: poisoned before a get can see them, opened
        // again if the backend refuses them.
        let store = |objs: &[NonNull<u8>]| {
            inner.asan_poison(objs);
            let ok = inner.backend.put_bulk(objs);
            if !ok {
                inner.asan_unpoison(objs);
            }
            ok
        };
        for &(va, iova, len) in runs {
            let remaining = inner.size - populated;
            if remaining == 0 {
                break;
            }
            // Objects may straddle pages only in IOVA-contiguous runs (or
            // when the pool needs no contiguity); BAD single pages keep them in.
            let placement = Placement {
                size: inner.obj,
                page_size: if iova == Iova::BAD && !inner.flags.contains(PoolFlags::NO_IOVA_CONTIG)
                {
                    page_size
                } else {
                    0
                },
            };
            let mut batch = [NonNull::dangling(); 64];
            let mut nb = 0;
            let mut stored = 0;
            let mut failed = false;
            placement.for_each(va, len, remaining, |off| {
                if failed {
                    return;
                }
                let body = (va + off + h) as *mut u8;
                // SAFETY: `off + total_size <= len` (placement), so the header
                // and body lie in the caller's memory (caller's condition).
                unsafe {
                    ObjHeader::of(body).write(ObjHeader {
                        pool: me,
                        iova: iova_add(iova, off + h).0,
                        cookie: COOKIE_FREE,
                    });
                    batch[nb] = NonNull::new_unchecked(body);
                }
                nb += 1;
                if nb == batch.len() {
                    if store(&batch[..nb]) {
                        stored += nb;
                    } else {
                        failed = true;
                    }
                    nb = 0;
                }
            });
            if nb > 0 && !failed && store(&batch[..nb]) {
                stored += nb;
            }
            if stored > 0 {
                chunks.push(ChunkRec {
                    va,
                    iova,
                    len,
                    first_index: populated,
                    count: stored,
                    placement,
                    on_free: None,
                });
                populated += stored;
                added += stored;
                got_iova |= iova != Iova::BAD;
                // Relaxed: ordered by the chunks lock for writers; readers
                // only use it as a count.
                inner.populated.store(populated, Ordering::Relaxed);
            }
        }
        if chunks.len() > before {
            if let Some(c) = chunks.last_mut() {
                c.on_free = on_free;
            }
        } else if let Some(f) = on_free {
            drop(chunks);
            f();
            return Ok(0);
        }
        if got_iova && !inner.flags.contains(PoolFlags::NO_IOVA_CONTIG) {
            // Relaxed: an informational state flag.
            inner.non_io.store(false, Ordering::Relaxed);
        }
        let full = populated == inner.size;
        drop(chunks);
        if full && added > 0 {
            events::fire(MempoolEvent::Ready, &inner.event_info());
        }
        Ok(added)
    }
}
