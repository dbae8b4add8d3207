//! Creating a pool: [`MempoolBuilder`], the memory choice made visible
//! (`build_on` a provider, `build_anonymous`, or `build_empty` to populate
//! by hand).

use std::any::Any;
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::backend::{Backend, BackendKind, StackBackend};
use crate::cache::{CacheCore, Counter, CACHE_MAX_SIZE};
use crate::default_cache::{self, Slot, Slots};
use crate::error::{BuildError, CreateError};
use crate::introspect::ObjInfo;
use crate::layout::{calc_obj_size, CACHE_LINE, MAX_ALIGN, MIN_ALIGN};
use crate::lf_stack::LfStackBackend;
use crate::pool::{Attachment, BackendImpl, Life, Line, PoolInner, Population};
use crate::populate::ObjInit;
use crate::sync::{lock, AtomicBool, AtomicUsize, Mutex};
use crate::{Mempool, PageSize, Provider};

/// Configures and creates a [`Mempool`].
///
/// The memory is chosen by the final call: [`build_on`](Self::build_on) a
/// provider (hugepages when it has them), [`build_anonymous`](Self::build_anonymous)
/// (small pages, no IOVA), or [`build_empty`](Self::build_empty) and then the
/// pool's `populate_*` methods.
///
/// ```
/// use pktmem_mempool::{BackendKind, Mempool};
/// let pool = Mempool::builder(100, 200)
///     .name("b")
///     .cache(16)
///     .backend_kind(BackendKind::Stack)
///     .build_empty()
///     .unwrap();
/// assert_eq!((pool.size(), pool.populated(), pool.avail_count()), (100, 0, 0));
/// assert_eq!(pool.name(), "b");
/// ```
#[must_use = "a builder does nothing until one of its `build_*` methods is called"]
pub struct MempoolBuilder {
    name: String,
    n: usize,
    elt_size: usize,
    cache_size: usize,
    private_size: usize,
    align: usize,
    iova_contig: bool,
    single_producer: bool,
    single_consumer: bool,
    kind: BackendKind,
    custom: Option<Box<dyn Backend>>,
    init: Option<ObjInit>,
    attachment: Option<Box<dyn Any + Send + Sync>>,
    populate_threads: usize,
    page_size: Option<PageSize>,
}

impl std::fmt::Debug for MempoolBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MempoolBuilder")
            .field("name", &self.name)
            .field("n", &self.n)
            .field("elt_size", &self.elt_size)
            .field("cache_size", &self.cache_size)
            .field("align", &self.align)
            .field("iova_contig", &self.iova_contig)
            .field("kind", &self.kind)
            .field("attachment", &self.attachment.is_some())
            .field("populate_threads", &self.populate_threads)
            .finish_non_exhaustive()
    }
}

impl Mempool {
    /// Starts configuring a pool of `n` objects of `elt_size` bytes (named
    /// "unnamed" unless [`name`](MempoolBuilder::name) says otherwise).
    pub fn builder(n: usize, elt_size: usize) -> MempoolBuilder {
        MempoolBuilder {
            name: "unnamed".to_string(),
            n,
            elt_size,
            cache_size: 0,
            private_size: 0,
            align: CACHE_LINE,
            iova_contig: true,
            single_producer: false,
            single_consumer: false,
            kind: BackendKind::Ring,
            custom: None,
            init: None,
            attachment: None,
            populate_threads: 0,
            page_size: None,
        }
    }
}

impl MempoolBuilder {
    /// A name for humans (messages, events); pools need not have distinct
    /// names.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Size of the per-core caches (0: no cache; at most [`CACHE_MAX_SIZE`]
    /// and `n`): what [`Mempool::cache`] makes and the default caches hold.
    pub fn cache(mut self, size: usize) -> Self {
        self.cache_size = size;
        self
    }

    /// Bytes of the pool's private area (see [`Mempool::private_area`]).
    pub fn private_size(mut self, size: usize) -> Self {
        self.private_size = size;
        self
    }

    /// Aligns object bodies to `align` bytes (a power of two from
    /// [`MIN_ALIGN`] to [`MAX_ALIGN`]; default [`CACHE_LINE`]).
    ///
    /// ```
    /// use pktmem_mempool::{BuildError, Mempool};
    /// let pool = Mempool::builder(4, 100).align(1024).build_anonymous().unwrap();
    /// let o = pool.get_default().unwrap();
    /// assert_eq!(o.as_ptr().align_offset(1024), 0);
    /// assert_eq!(pool.obj_size().total_size, 2048); // a 1 KiB header line, then the body
    /// // SAFETY: given back once.
    /// unsafe { pool.put_default(o) };
    /// let e = Mempool::builder(4, 100).align(8192).build_empty().unwrap_err();
    /// assert!(matches!(e, BuildError::BadAlign { align: 8192, .. }));
    /// ```
    pub fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Packs objects at 8-byte alignment instead of a cache line
    /// (`align(8)`).
    pub fn no_cache_align(self) -> Self {
        self.align(MIN_ALIGN)
    }

    /// Objects need not be IOVA-contiguous: they may straddle page boundaries
    /// and carry no IOVA (the pool stays [non-IO](Mempool::is_non_io)).
    pub fn no_iova_contig(mut self) -> Self {
        self.iova_contig = false;
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
        self.single_producer = true;
        self
    }

    /// Gets go through a single-consumer ring.
    ///
    /// # Safety
    /// - no two gets on the pool (including cache refills) ever run
    ///   concurrently.
    pub unsafe fn single_consumer(mut self) -> Self {
        self.single_consumer = true;
        self
    }

    /// Runs `init` on every object when it is placed, whichever way the pool
    /// is populated (`build_on`, `build_anonymous`, or `build_empty` then any
    /// `populate_*`), before the object can be handed out. It gets the
    /// object's description and its body (`obj_size().elt_size` bytes, of
    /// unknown content) to write; it runs under the pool's population lock,
    /// so it must not populate the pool.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(4, 8)
    ///     .obj_init(|info, body| {
    ///         body[0].write(info.index as u8);
    ///     })
    ///     .build_anonymous()
    ///     .unwrap();
    /// let mut seen = Vec::new();
    /// pool.for_each_obj(|o| {
    ///     // SAFETY: the pool is quiet; the first byte was written by `init`.
    ///     seen.push(unsafe { *o.obj.as_ptr() });
    /// });
    /// assert_eq!(seen, [0, 1, 2, 3]);
    /// ```
    ///
    /// An `obj_init` runs on the populating thread alone, in population
    /// order; an initialiser that can run on several threads at once is
    /// [`obj_init_shared`](Self::obj_init_shared) (the last one given wins).
    ///
    /// The initialiser may write the body with non-temporal stores (on
    /// `x86_64`, `_mm_stream_*`): each populating thread issues a store
    /// fence (`sfence`) after its last call, also when one panics, before
    /// any of its objects is stored in the pool or handed out.
    pub fn obj_init(
        mut self,
        init: impl FnMut(&ObjInfo, &mut [MaybeUninit<u8>]) + Send + 'static,
    ) -> Self {
        self.init = Some(ObjInit::Sequential(Box::new(init)));
        self
    }

    /// Like [`obj_init`](Self::obj_init), but `init` may be called on
    /// several threads at once, so that a big pool is initialised on
    /// several cores ([`populate_threads`](Self::populate_threads)). Each
    /// object is still initialised exactly once, by one thread, before it
    /// can be handed out, and [`ObjInfo::index`] is its population index;
    /// the order of the calls is unspecified. It runs under the pool's
    /// population lock, so it must not populate the pool. Like `obj_init`,
    /// it may write with non-temporal stores (each populating thread fences
    /// them before its objects are published).
    ///
    /// ```
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// use pktmem_mempool::Mempool;
    /// let calls = Arc::new(AtomicUsize::new(0));
    /// let c = calls.clone();
    /// let pool = Mempool::builder(10_000, 64)
    ///     .populate_threads(2)
    ///     .obj_init_shared(move |info, body| {
    ///         body[..8].copy_from_slice(&(info.index as u64).to_ne_bytes().map(std::mem::MaybeUninit::new));
    ///         c.fetch_add(1, Ordering::Relaxed);
    ///     })
    ///     .build_anonymous()
    ///     .unwrap();
    /// assert_eq!(calls.load(Ordering::Relaxed), 10_000);
    /// let mut i = 0;
    /// pool.for_each_obj(|o| {
    ///     // SAFETY: the pool is quiet; `init` wrote the first 8 bytes.
    ///     assert_eq!(unsafe { o.obj.as_ptr().cast::<u64>().read() }, i);
    ///     i += 1;
    /// });
    /// ```
    pub fn obj_init_shared(
        mut self,
        init: impl Fn(&ObjInfo, &mut [MaybeUninit<u8>]) + Send + Sync + 'static,
    ) -> Self {
        self.init = Some(ObjInit::Shared(Box::new(init)));
        self
    }

    /// How many threads populate the pool: fault its hugepages in (the
    /// kernel zeroes each one then), write the object headers and run an
    /// [`obj_init_shared`](Self::obj_init_shared) initialiser, each thread
    /// over its own page-aligned part of the memory (an [`obj_init`](Self::obj_init)
    /// initialiser keeps the object writes on one thread). The threads are
    /// scoped: they live for one populate call. `0` (the default) chooses:
    /// the machine's cores, up to 8, for every chunk of 16 MiB or more, one
    /// thread for smaller ones. `1` keeps everything on the calling thread.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(1000, 64).populate_threads(1).build_anonymous().unwrap();
    /// assert!(pool.is_full());
    /// ```
    pub fn populate_threads(mut self, threads: usize) -> Self {
        self.populate_threads = threads;
        self
    }

    /// Keeps `value` with the pool: [`Mempool::attachment`] returns it
    /// (checked by type), [`Mempool::attachment_unchecked`] too (one load,
    /// no check). It lives as long as the pool's memory, so objects out of
    /// the pool may rely on it after every handle is gone: it is dropped
    /// when the last handle is gone and the last object is back, before the
    /// pool's chunks are given back. A second call replaces the first value.
    ///
    /// What it is for: per-pool state the users of its objects need on
    /// their fast path, such as a packet-buffer pool's data room size.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// struct Config { data_room: u16 }
    /// let pool = Mempool::builder(4, 64)
    ///     .attachment(Config { data_room: 2176 })
    ///     .build_anonymous()
    ///     .unwrap();
    /// assert_eq!(pool.attachment::<Config>().unwrap().data_room, 2176);
    /// ```
    pub fn attachment<T: Send + Sync + 'static>(mut self, value: T) -> Self {
        self.attachment = Some(Box::new(value));
        self
    }

    /// The page size [`build_on`](Self::build_on) asks the provider for
    /// first; when it has none of that size, it falls back as the provider
    /// does (its preferred sizes, then small pages unless forbidden).
    /// Without this call the pool chooses by size
    /// ([`Mempool::populate_from_provider`]): 1 GiB pages when the system
    /// has enough of them free and the pool's memory fills at least 7/8 of
    /// the last one, else the provider's preferred sizes (2 MiB unless it
    /// was built otherwise).
    ///
    /// ```
    /// use pktmem_mempool::{Mempool, PageSize, Provider};
    /// let provider = Provider::builder().quiet(true).build().unwrap();
    /// let pool = Mempool::builder(1000, 2048)
    ///     .page_size(PageSize::Huge2M)
    ///     .build_on(&provider)
    ///     .unwrap();
    /// // 2 MiB pages when the system has them, else the fallback's 4 KiB.
    /// let page = provider.page_of(pool.get_default().unwrap().as_ptr() as usize).unwrap();
    /// assert!(page.size == 2 << 20 || page.size == 4096);
    /// ```
    pub fn page_size(mut self, size: PageSize) -> Self {
        self.page_size = Some(size);
        self
    }

    /// Creates the pool with no memory; populate it with the `populate_*`
    /// methods of [`Mempool`]. Its ring (if the backend is the ring) is on
    /// the heap.
    pub fn build_empty(self) -> Result<Mempool, BuildError> {
        self.build(None)
    }

    /// Creates the pool and populates it from anonymous memory (small pages,
    /// no IOVA: the pool stays non-IO).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(1000, 64).cache(32).build_anonymous().unwrap();
    /// assert!(pool.is_full() && pool.is_non_io());
    /// ```
    pub fn build_anonymous(self) -> Result<Mempool, CreateError> {
        let pool = self.build(None)?;
        pool.populate_anonymous()?;
        Ok(pool)
    }

    /// Creates the pool and populates it from `provider`
    /// ([`Mempool::populate_from_provider`]); a ring backend keeps its slots
    /// in a block of `provider` too (or on the heap if the provider cannot
    /// give one: [`Mempool::ring_placement`] says which). On failure nothing
    /// is left behind (the memory already taken goes back).
    ///
    /// ```
    /// use pktmem_mempool::{Mempool, Provider};
    /// let provider = Provider::builder().quiet(true).build().unwrap();
    /// let pool = Mempool::builder(8191, 64).cache(256).build_on(&provider).unwrap();
    /// assert!(pool.is_full());
    /// ```
    pub fn build_on(self, provider: &Provider) -> Result<Mempool, CreateError> {
        let page_size = self.page_size;
        let pool = self.build(Some(provider))?;
        pool.populate_from_provider_with(provider, page_size)?;
        Ok(pool)
    }

    /// Creates the empty pool; a ring backend keeps its slots in
    /// `ring_provider`'s memory when given (see [`RingPlacement`](crate::RingPlacement)).
    fn build(self, ring_provider: Option<&Provider>) -> Result<Mempool, BuildError> {
        let Self {
            name,
            n,
            elt_size,
            cache_size,
            private_size,
            align,
            iova_contig,
            single_producer,
            single_consumer,
            kind,
            custom,
            init,
            attachment,
            populate_threads,
            page_size: _,
        } = self;
        if n == 0 {
            return Err(BuildError::ZeroObjects { name });
        }
        if elt_size == 0 {
            return Err(BuildError::ZeroElementSize { name });
        }
        let max = CACHE_MAX_SIZE.min(n);
        if cache_size > max {
            return Err(BuildError::CacheTooLarge {
                name,
                cache_size,
                max,
            });
        }
        if !align.is_power_of_two() || !(MIN_ALIGN..=MAX_ALIGN).contains(&align) {
            return Err(BuildError::BadAlign { name, align });
        }
        let Some(obj) = calc_obj_size(elt_size, align) else {
            return Err(BuildError::ElementTooLarge { name, elt_size });
        };
        if !matches!(n.checked_mul(obj.total_size), Some(b) if isize::try_from(b).is_ok()) {
            return Err(BuildError::PoolTooLarge {
                name,
                n,
                obj_size: obj.total_size,
            });
        }
        if private_size > 1 << 30 {
            return Err(BuildError::PrivateAreaTooLarge {
                name,
                size: private_size,
            });
        }
        let backend = BackendChoice {
            kind,
            custom,
            single_producer,
            single_consumer,
        }
        .make(&name, n, ring_provider)?;
        let counters = Mutex::new(Vec::new());
        let slots = default_slots(cache_size, &counters);
        let private = (0..private_size.div_ceil(64))
            .map(|_| UnsafeCell::new(Line([0u8; 64])))
            .collect();
        let attachment = attachment.map(Attachment::new);
        let inner = PoolInner {
            // The handle made below.
            life: CachePadded::new(Life {
                refs: AtomicUsize::new(1),
                handles: AtomicUsize::new(1),
            }),
            attachment_ptr: attachment
                .as_ref()
                .map_or(std::ptr::null(), Attachment::thin),
            attachment,
            name,
            size: n,
            cache_size,
            iova_contig,
            obj,
            private,
            private_size,
            backend,
            slots,
            counters,
            population: Mutex::new(Population {
                chunks: Vec::new(),
                init,
                populate_threads,
            }),
            populated: AtomicUsize::new(0),
            non_io: AtomicBool::new(true),
            #[cfg(feature = "stats")]
            stats: crate::stats::StatsCells::default(),
        };
        Ok(Mempool::from_inner(inner))
    }
}

/// What the builder was told about the backend.
struct BackendChoice {
    kind: BackendKind,
    custom: Option<Box<dyn Backend>>,
    single_producer: bool,
    single_consumer: bool,
}

impl BackendChoice {
    /// The backend for `n` objects of the pool `name`; a ring keeps its
    /// slots in `ring_provider`'s memory when given.
    fn make(
        self,
        name: &str,
        n: usize,
        ring_provider: Option<&Provider>,
    ) -> Result<BackendImpl, BuildError> {
        Ok(match self.custom {
            Some(b) => {
                if b.capacity() < n {
                    return Err(BuildError::BackendTooSmall {
                        name: name.to_string(),
                        capacity: b.capacity(),
                        needed: n,
                    });
                }
                if !b.is_empty() {
                    return Err(BuildError::BackendNotEmpty {
                        name: name.to_string(),
                        len: b.len(),
                    });
                }
                BackendImpl::Custom(b)
            }
            None => match self.kind {
                BackendKind::Stack => BackendImpl::Stack(StackBackend::new(n)),
                BackendKind::LockFreeStack => {
                    BackendImpl::LfStack(LfStackBackend::new(n).map_err(BuildError::LfStack)?)
                }
                BackendKind::Ring => BackendImpl::Ring(crate::ring_backend::RingBackend::new(
                    n,
                    self.single_producer,
                    self.single_consumer,
                    ring_provider,
                )?),
            },
        })
    }
}

/// The default cache slots of a pool with caches of `cache_size` (none
/// without a cache size, and none under loom, whose models use explicit
/// caches and the backend), their counters registered in `counters`.
fn default_slots(cache_size: usize, counters: &Mutex<Vec<Counter>>) -> Slots {
    let mut slots = Vec::new();
    if cache_size > 0 && cfg!(not(loom)) {
        for _ in 0..default_cache::slot_count() {
            let c: Counter = Arc::new(CachePadded::new(AtomicUsize::new(0)));
            lock(counters).push(c.clone());
            slots.push(CachePadded::new(Slot::new(CacheCore::new(cache_size, c))));
        }
    }
    slots.into_boxed_slice()
}
