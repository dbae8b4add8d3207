//! The provider: a cheap handle over one set of page lists.
//!
//! The floor plan, one concern per file:
//!
//! | file | what it holds |
//! |---|---|
//! | `mod.rs` | [`Provider`] and [`WeakProvider`], the shared state, translation |
//! | `builder.rs` | [`ProviderBuilder`] and [`PageSource`] |
//! | `page_list.rs` | one list of page slots: the per-page state, the free-run search |
//! | `alloc.rs` | allocation (choosing a list, growing it, limits) and free |
//! | `backing.rs` | where pages come from: creating a list's backing, mapping and unmapping page runs |
//! | `events.rs` | event callbacks and growth validators, and how they fire |
//! | `gate.rs` | release gates: runs of pages held mapped until something outside says they may go |
//! | `dma.rs` | DMA mappers: told about every range mapped and unmapped |
//! | `external.rs` | external memory: registrations and leases |
//! | `heap.rs` | heaps of external memory serving chunks and zones |
//! | `zones.rs` | named zones |
//! | `introspect.rs` | walks, lists, region table, info and dump |

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use crate::chunk::RawChunk;
use crate::small::{Shared as SmallShared, SmallHeap};
use crate::sync::{Mutex, MutexGuard};
use crate::table::{Segment, SegmentTable};
use crate::{
    AllocError, AllocRequest, Chunk, Iova, IovaMode, LeaseError, PageInfo, RegisterError,
    SharedChunk, UnregisterError,
};

mod alloc;
mod backing;
mod builder;
mod dma;
mod events;
mod external;
mod gate;
mod heap;
mod introspect;
mod page_list;
mod zones;

pub use builder::{PageSource, ProviderBuilder};
pub use dma::{DmaMapError, DmaMapper, DmaMapperGuard, DmaRange, DmaRegisterError};
pub use events::{EventGuard, EventKind, GrowthQuery, MemEvent, ValidatorGuard};
pub use external::{ExternalId, ExternalLease, ExternalMem};
pub use gate::{ReleaseGateGuard, ReleaseHold};
pub use heap::ExternalHeap;
pub(crate) use heap::HeapRef;
pub use introspect::{ListInfo, ProviderInfo, Region, VaRun};
pub use zones::{Zone, ZoneInfo};

use events::{EventEntry, Validator};
use external::ExternalId as RegId;
use page_list::{PageList, PageState};

/// The bookkeeping behind the provider lock.
#[derive(Default)]
struct State {
    lists: Vec<PageList>,
    /// Bytes mapped by the provider's own lists.
    mapped: usize,
    validators: Vec<Arc<Validator>>,
    /// The last heap id handed out.
    next_heap_id: u64,
    /// Retired segments, alive until the provider drops (see `SegmentTable::slots`).
    graveyard: Vec<Arc<Segment>>,
    fallback: Option<String>,
    fallback_count: usize,
    /// Generations of external lists and lease numbers (one counter).
    next_generation: u64,
    /// Bytes of own pages in the `Freeing` state.
    releasing: usize,
    /// Events queued under the lock, fired by `settle` once it is released.
    pending_events: Vec<MemEvent>,
    /// Page runs `(list, first, count)` to unmap after their Free events
    /// (offered to the release gates first).
    pending_unmap: Vec<(usize, usize, usize)>,
    /// Page runs whose last release hold dropped: unmapped with no gate asked.
    pending_release: Vec<(usize, usize, usize)>,
    /// External lists to remove after their Free events.
    pending_removal: Vec<usize>,
    /// Owners of removed external lists, dropped by `settle` unlocked.
    released_owners: Vec<external::Owner>,
    /// The DMA mappers and the ranges they hold.
    dma: dma::DmaState,
}

pub(crate) struct Inner {
    /// This allocation, for what must find the provider again later
    /// without keeping it alive (release holds).
    me: Weak<Inner>,
    id: u64,
    cfg: ProviderBuilder,
    pub(crate) iova_mode: IovaMode,
    pub(crate) table: SegmentTable,
    state: Mutex<State>,
    events: Mutex<Vec<Arc<EventEntry>>>,
    /// Release gates (`gate.rs`), their own lock: asked with none held.
    gates: Mutex<Vec<Arc<gate::GateEntry>>>,
    /// Live zones by name (their own lock: a zone dropped anywhere, even
    /// inside a validator, only takes this one).
    zones: Mutex<BTreeMap<String, ZoneInfo>>,
    init_error: Option<String>,
    /// The heap [`Provider::small_heap`] shares, while some handle or block
    /// of it lives. Weak: the heap holds the provider, so a strong pointer
    /// here would keep both alive forever.
    small: Mutex<Weak<SmallShared>>,
}

thread_local! {
    /// Id of the provider whose callbacks this thread is running (0: none).
    static IN_CALLBACK: Cell<u64> = const { Cell::new(0) };
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Work a drop could not do because it ran inside a validator (whose
/// provider lock is held further up the thread's stack): done by `settle`.
enum Deferred {
    /// A chunk to free.
    Free(RawChunk),
    /// A lease released.
    ReleaseLease(RegId, u64),
    /// An external registration dropped.
    DropRegistration(RegId),
    /// A DMA mapper's guard dropped.
    DropMapper(Arc<dma::MapperEntry>),
    /// The last release hold of a run `(list, first, count)` dropped.
    ReleaseHeld((usize, usize, usize)),
}

/// Why the provider refuses any work: it could not be built, or the call
/// comes from inside one of its validators.
enum Refusal {
    InitFailed(String),
    Reentrant,
}

impl From<Refusal> for AllocError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::InitFailed(m) => AllocError::InitFailed(m),
            Refusal::Reentrant => AllocError::Reentrant,
        }
    }
}

impl From<Refusal> for RegisterError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::InitFailed(m) => RegisterError::InitFailed(m),
            Refusal::Reentrant => RegisterError::Reentrant,
        }
    }
}

impl Refusal {
    /// As an unregistering error for the range at `addr` (a provider that
    /// was never built has no registrations).
    fn unregister_error(self, addr: usize) -> UnregisterError {
        match self {
            Refusal::InitFailed(_) => UnregisterError::NotRegistered { addr },
            Refusal::Reentrant => UnregisterError::Reentrant,
        }
    }

    /// As a leasing error for the range asked for.
    fn lease_error(self, addr: usize, len: usize) -> LeaseError {
        match self {
            Refusal::InitFailed(_) => LeaseError::NotRegistered { addr, len },
            Refusal::Reentrant => LeaseError::Reentrant,
        }
    }
}

/// A cheap, cloneable handle to a memory provider.
///
/// See the [crate documentation](crate) for the model.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, Provider};
/// let p = Provider::builder().quiet(true).build().unwrap();
/// let c = p.alloc_with(&AllocRequest::new(64 << 10)).unwrap();
/// assert_eq!(p.virt2iova(c.as_ptr().as_ptr()), c.iova());
/// let iova = c.iova().expect("the provider's own pages have IOVAs");
/// assert_eq!(p.iova2virt(iova), Some(c.as_ptr()));
/// ```
#[derive(Clone)]
pub struct Provider {
    pub(crate) inner: Arc<Inner>,
}

/// A provider reference that does not keep the provider alive: what an
/// event callback or validator registered on a provider should hold when
/// it needs that provider. (A captured [`Provider`] clone would keep the
/// provider, and every page it keeps mapped, alive until the callback is
/// unregistered.)
///
/// ```
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let weak = p.downgrade();
/// let w = weak.clone();
/// p.register_event_callback(move |e| {
///     if let Some(p) = w.upgrade() {
///         assert!(p.page_of(e.va).is_some());
///     }
/// })
/// .keep(); // for the provider's life
/// drop(p.alloc(4096).unwrap());
/// drop(p);
/// assert!(weak.upgrade().is_none(), "the callback did not keep the provider");
/// ```
#[derive(Clone)]
pub struct WeakProvider {
    inner: Weak<Inner>,
}

impl WeakProvider {
    /// The provider, while any [`Provider`] handle to it lives.
    pub fn upgrade(&self) -> Option<Provider> {
        self.inner.upgrade().map(|inner| Provider { inner })
    }
}

impl fmt::Debug for WeakProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakProvider")
            .field("alive", &(self.inner.strong_count() > 0))
            .finish()
    }
}

impl fmt::Debug for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Provider")
            .field("id", &self.inner.id)
            .field("iova_mode", &self.inner.iova_mode)
            .field("source", &self.inner.cfg.source)
            .field("mapped", &lock(&self.inner.state).mapped)
            .finish()
    }
}

impl Provider {
    /// A builder with the defaults: memfd 2 MiB pages, small-page fallback,
    /// large VA reservations, no minimum, no limit, detected IOVA mode.
    pub fn builder() -> ProviderBuilder {
        ProviderBuilder::default()
    }

    /// The process-wide provider, built with the defaults on first use: a
    /// convenience for programs and examples that want one provider and no
    /// plumbing. Libraries should take a `&Provider` from their caller
    /// instead (so the caller chooses page sizes, limits and the source),
    /// and nothing in pktmem uses this one unless told to.
    ///
    /// It lives for the whole process (its pages go back as chunks are
    /// freed; its VA reservations stay). Never panics: if building fails,
    /// every allocation returns [`AllocError::InitFailed`] with the reason,
    /// and [`info`](Self::info) carries it.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let c = Provider::global().alloc(4096).unwrap(); // built here, on first use
    /// assert!(Provider::global().info().init_error.is_none());
    /// assert_eq!(Provider::global().virt2iova(c.as_ptr().as_ptr()), c.iova());
    /// ```
    pub fn global() -> &'static Provider {
        static GLOBAL: OnceLock<Provider> = OnceLock::new();
        GLOBAL.get_or_init(|| match Provider::builder().build() {
            Ok(p) => p,
            Err(e) => Provider {
                inner: Arc::new_cyclic(|me| {
                    Inner::new(
                        u64::MAX,
                        ProviderBuilder::default(),
                        IovaMode::Va,
                        Some(e.to_string()),
                        me.clone(),
                    )
                }),
            },
        })
    }

    /// The IOVA mode in use.
    pub fn iova_mode(&self) -> IovaMode {
        self.inner.iova_mode
    }

    /// The provider's shared heap for small allocations: every call, from
    /// any clone of the provider, returns a handle to the same heap while
    /// some handle or block of it lives, so small users (pool rings, say)
    /// share pages instead of taking one each.
    ///
    /// The provider holds the heap weakly: once the last handle and the last
    /// block are gone the heap is gone with its pages, and the next call
    /// makes a new one. The heap gives its pages back as the
    /// [`SmallHeap`] docs say (all of them when no block is live).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let a = p.small_heap().alloc(1000, 64).unwrap(); // a user ...
    /// let b = p.clone().small_heap().alloc(1000, 64).unwrap(); // ... and another
    /// assert_eq!(p.mapped_bytes(), 4096); // one page serves both
    /// assert_eq!(p.page_of(a.as_ptr().as_ptr() as usize).unwrap().va,
    ///            p.page_of(b.as_ptr().as_ptr() as usize).unwrap().va);
    /// drop((a, b));
    /// assert_eq!(p.mapped_bytes(), 0); // nothing live: the page went back
    /// ```
    pub fn small_heap(&self) -> SmallHeap {
        SmallHeap::shared_in(&mut lock(&self.inner.small), self)
    }

    /// Allocates `len` bytes with default options (page aligned, any page
    /// size, any node, not necessarily IOVA-contiguous).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let mut c = p.alloc(10_000).unwrap();
    /// c.as_mut_slice().fill(1);
    /// assert_eq!(p.mapped_bytes(), 3 * 4096);
    /// drop(c);
    /// assert_eq!(p.mapped_bytes(), 0);
    /// ```
    pub fn alloc(&self, len: usize) -> Result<Chunk, AllocError> {
        self.alloc_with(&AllocRequest::new(len))
    }

    /// Allocates as `req` says.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc_with(&AllocRequest::new(5000).align(1 << 16).iova_contiguous(true)).unwrap();
    /// assert_eq!(c.as_ptr().as_ptr() as usize % (1 << 16), 0);
    /// assert!(c.is_iova_contiguous());
    /// ```
    pub fn alloc_with(&self, req: &AllocRequest) -> Result<Chunk, AllocError> {
        // External memory (a heap's) is never exported: its chunks may have slices.
        if self.inner.cfg.exportable && !req.has_heap() {
            return Err(AllocError::Exportable);
        }
        self.alloc_chunk(req)
    }

    /// Allocates as `req` says, memory that other processes may write: a
    /// [`SharedChunk`] gives raw pointers, never slices. The way to get
    /// memory from an exportable provider ([`ProviderBuilder::exportable`]);
    /// works on any provider.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider};
    /// let p = Provider::builder().exportable().quiet(true).build().unwrap();
    /// let c = p.alloc_shared(&AllocRequest::new(10_000))?;
    /// assert_eq!(c.len(), 10_000);
    /// assert_eq!(p.virt2iova(c.as_ptr().as_ptr()), c.iova());
    /// # Ok::<(), pktmem_hugemem::AllocError>(())
    /// ```
    pub fn alloc_shared(&self, req: &AllocRequest) -> Result<SharedChunk, AllocError> {
        self.alloc_chunk(req).map(SharedChunk)
    }

    /// Whether the provider was built [`exportable`](ProviderBuilder::exportable).
    pub fn is_exportable(&self) -> bool {
        self.inner.cfg.exportable
    }

    /// Allocation with no exportability check.
    pub(crate) fn alloc_chunk(&self, req: &AllocRequest) -> Result<Chunk, AllocError> {
        let raw = self.inner.alloc_raw(req)?;
        let seg = lock(&self.inner.state).lists[raw.list].seg.clone();
        Ok(Chunk {
            provider: self.clone(),
            raw,
            seg,
        })
    }

    /// IOVA of any address the provider knows (its mapped pages or
    /// registered external memory with IOVAs); `None` otherwise. No lock,
    /// no syscall: a scan of the list table and one load.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc(100).unwrap();
    /// let at = c.as_ptr().as_ptr().wrapping_add(42);
    /// assert_eq!(p.virt2iova(at), c.iova_at(42));
    /// assert_eq!(p.virt2iova(std::ptr::null()), None);
    /// ```
    #[inline]
    pub fn virt2iova(&self, ptr: *const u8) -> Option<Iova> {
        self.inner.table.find(ptr as usize)?.lookup(ptr as usize)
    }

    /// The virtual address of `iova` in this provider's memory, if mapped.
    /// Walks the mapped pages (no syscall).
    ///
    /// ```
    /// use pktmem_hugemem::{Iova, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc(100).unwrap();
    /// assert_eq!(p.iova2virt(c.iova().unwrap()), Some(c.as_ptr()));
    /// assert_eq!(p.iova2virt(Iova(1)), None);
    /// ```
    pub fn iova2virt(&self, iova: Iova) -> Option<std::ptr::NonNull<u8>> {
        if iova.is_bad() {
            return None;
        }
        let mut found = None;
        self.inner.table.for_each(|seg| {
            let size = seg.page_size() as u64;
            for i in 0..seg.walk_len() {
                let Some(p) = seg.page_iova(i) else {
                    continue;
                };
                if iova.0 >= p.0 && iova.0 - p.0 < size {
                    found = std::ptr::NonNull::new(
                        (seg.base + (i << seg.shift) + (iova.0 - p.0) as usize) as *mut u8,
                    );
                    return false;
                }
            }
            true
        });
        found
    }

    /// The record of the page holding `addr`, if the provider knows it
    /// (mapped pages of its lists, registered external memory).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc(100).unwrap();
    /// let pg = p.page_of(c.as_ptr().as_ptr() as usize + 50).unwrap();
    /// assert_eq!((pg.va, pg.size, pg.in_use), (c.as_ptr().as_ptr() as usize, 4096, true));
    /// drop(c);
    /// assert!(p.page_of(pg.va).is_none()); // unmapped again
    /// ```
    pub fn page_of(&self, addr: usize) -> Option<PageInfo> {
        let st = lock(&self.inner.state);
        let seg = self.inner.table.find(addr)?;
        let i = (addr - seg.base) >> seg.shift;
        let state = st.lists.get(seg.list)?.state.get(i).copied()?;
        if state == PageState::Unmapped {
            return None;
        }
        Some(PageInfo {
            va: seg.base + (i << seg.shift),
            iova: seg.page_iova(i),
            size: seg.page_size(),
            node: seg.node,
            external: seg.external,
            list: seg.list,
            in_use: state == PageState::InUse,
        })
    }

    /// A reference to this provider that does not keep it alive (for
    /// callbacks registered on it; see [`WeakProvider`]).
    pub fn downgrade(&self) -> WeakProvider {
        WeakProvider {
            inner: Arc::downgrade(&self.inner),
        }
    }

    /// Bytes currently mapped by the provider's own lists (kept minimum included).
    pub fn mapped_bytes(&self) -> usize {
        lock(&self.inner.state).mapped
    }
}

impl Inner {
    fn new(
        id: u64,
        cfg: ProviderBuilder,
        iova_mode: IovaMode,
        init_error: Option<String>,
        me: Weak<Inner>,
    ) -> Inner {
        Inner {
            me,
            id,
            cfg,
            iova_mode,
            table: SegmentTable::new(),
            state: Mutex::new(State::default()),
            events: Mutex::new(Vec::new()),
            gates: Mutex::new(Vec::new()),
            zones: Mutex::new(BTreeMap::new()),
            init_error,
            small: Mutex::new(Weak::new()),
        }
    }

    /// Refuses work on a provider that could not be built, and from inside
    /// one of its own validators (which run under the provider lock).
    fn check_usable(&self) -> Result<(), Refusal> {
        if let Some(e) = &self.init_error {
            return Err(Refusal::InitFailed(e.clone()));
        }
        if IN_CALLBACK.with(Cell::get) == self.id {
            return Err(Refusal::Reentrant);
        }
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Devices let go before the memory does.
        dma::release_all(self.id, &mut st.dma);
        let lists = std::mem::take(&mut st.lists);
        for l in lists.iter().filter(|l| !l.removed) {
            if !l.seg.external {
                // Free pages are poisoned (`free_locked`, `unmap_pages`) and
                // ASan's shadow outlives an unmap: clear it, up to the
                // high-water mark (ASan writes every shadow byte of the range).
                // SAFETY: the range is this list's reservation, still held.
                unsafe { crate::asan::unpoison(l.seg.base as *const u8, l.hwm << l.seg.shift) };
            }
            backing::release_backing(&l.backing, l.seg.base, l.seg.len);
        }
        // fds close as `lists` drops.
    }
}
