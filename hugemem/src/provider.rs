//! The provider: builder, lists, allocation, limits, events, external memory.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, Weak};

use crate::asan;
use crate::chunk::{segments_of, RawChunk};
use crate::error::human;
use crate::iova::phys_of_small_pages;
use crate::small::{Shared as SmallShared, SmallHeap};
use crate::sync::{AtomicBool, Mutex, MutexGuard, Ordering};
use crate::sys::{self, BackingError};
use crate::table::{Segment, SegmentTable, MAX_SEGMENTS};
use crate::{AllocRequest, Chunk, HugememError, Iova, IovaMode, PageInfo, PageSize};

/// Where the provider's own pages come from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageSource {
    /// `memfd_create(MFD_HUGETLB)`, one fd per page-size list (the default;
    /// no mount needed; the fds can be shared with other processes).
    Memfd,
    /// Anonymous private `MAP_HUGETLB` mappings (no fd; not shareable).
    AnonHugetlb,
    /// An unlinked file per list in this hugetlbfs directory.
    Hugetlbfs(PathBuf),
    /// Ordinary heap memory of this many bytes, "4 KiB pages", IOVA = VA:
    /// for portable unit tests and models. Never returns memory to the system.
    Heap(usize),
}

/// What happened to memory, for [`Provider::register_event_callback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Pages were mapped (or external memory registered); called after mapping.
    Alloc,
    /// Pages are about to be unmapped (or external memory unregistered).
    Free,
}

/// One memory event: a VA range that appeared or is about to disappear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemEvent {
    /// Alloc or Free.
    pub kind: EventKind,
    /// First byte of the range.
    pub va: usize,
    /// Length of the range in bytes.
    pub len: usize,
    /// Whether the range is external memory.
    pub external: bool,
}

/// What a validator is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrowthQuery {
    /// Bytes mapped by the provider now.
    pub mapped: usize,
    /// Bytes that would be mapped after the allocation.
    pub new_total: usize,
    /// The validator's threshold.
    pub threshold: usize,
    /// Page size of the growth.
    pub page_size: usize,
}

/// Identifies a registered external range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExternalId(pub(crate) usize, pub(crate) u64);

type EventFn = dyn Fn(&MemEvent) + Send + Sync;
type ValidatorFn = dyn Fn(&GrowthQuery) -> bool + Send + Sync;

struct EventEntry {
    name: String,
    /// Cleared on unregister so a snapshot taken before it skips the entry.
    active: AtomicBool,
    f: Box<EventFn>,
}

struct Validator {
    name: String,
    threshold: usize,
    f: Arc<ValidatorFn>,
}

/// Builds a [`Provider`].
///
/// ```
/// use pktmem_hugemem::{PageSize, Provider};
/// let p = Provider::builder()
///     .page_sizes(&[PageSize::Huge2M])
///     .allow_small_page_fallback(true)
///     .va_reserve(PageSize::Huge2M, 4 << 30)
///     .limit(1 << 30)
///     .build()
///     .unwrap();
/// let c = p.alloc(1 << 20).unwrap();
/// assert!(c.page_size() == 2 << 20 || c.page_size() == 4096);
/// ```
#[derive(Clone, Debug)]
pub struct ProviderBuilder {
    preferred: Vec<PageSize>,
    fallback: bool,
    va_reserve: [usize; 3],
    min_keep: usize,
    limit: usize,
    iova_mode: Option<IovaMode>,
    source: PageSource,
    quiet: bool,
}

fn size_index(ps: PageSize) -> usize {
    match ps {
        PageSize::Small4K => 0,
        PageSize::Huge2M => 1,
        PageSize::Huge1G => 2,
    }
}

impl Default for ProviderBuilder {
    fn default() -> Self {
        ProviderBuilder {
            preferred: vec![PageSize::Huge2M],
            fallback: true,
            va_reserve: [16 << 30, 64 << 30, 64 << 30],
            min_keep: 0,
            limit: usize::MAX,
            iova_mode: None,
            source: PageSource::Memfd,
            quiet: false,
        }
    }
}

impl ProviderBuilder {
    /// Hugepage sizes tried by default, in order (default: 2 MiB only; a
    /// request may still name any size with [`AllocRequest::page_size`]).
    pub fn page_sizes(mut self, sizes: &[PageSize]) -> Self {
        self.preferred = sizes.iter().copied().filter(|s| s.is_huge()).collect();
        self
    }

    /// Whether to fall back to 4 KiB pages when no hugepage can be had (default true).
    pub fn allow_small_page_fallback(mut self, yes: bool) -> Self {
        self.fallback = yes;
        self
    }

    /// VA reserved up front for the list of `size` pages (rounded up to
    /// pages; zero makes `build` fail with [`HugememError::ZeroLength`]).
    pub fn va_reserve(mut self, size: PageSize, bytes: usize) -> Self {
        self.va_reserve[size_index(size)] = bytes;
        self
    }

    /// Bytes mapped at build time and never given back (default 0).
    pub fn min_keep(mut self, bytes: usize) -> Self {
        self.min_keep = bytes;
        self
    }

    /// Upper limit on bytes mapped by the provider (external memory not counted).
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Forces the IOVA mode instead of detecting it.
    pub fn iova_mode(mut self, mode: IovaMode) -> Self {
        self.iova_mode = Some(mode);
        self
    }

    /// Where pages come from (default [`PageSource::Memfd`]).
    pub fn source(mut self, source: PageSource) -> Self {
        self.source = source;
        self
    }

    /// Shorthand for `source(PageSource::Heap(bytes))`.
    pub fn heap_backed(self, bytes: usize) -> Self {
        self.source(PageSource::Heap(bytes))
    }

    /// Do not print the fallback note on stderr (it is still in [`Provider::info`]).
    pub fn quiet(mut self, yes: bool) -> Self {
        self.quiet = yes;
        self
    }

    /// Builds the provider: detects the IOVA mode and maps `min_keep` bytes.
    pub fn build(self) -> Result<Provider, HugememError> {
        if self.va_reserve.contains(&0) {
            return Err(HugememError::ZeroLength);
        }
        if let PageSource::Heap(0) = self.source {
            return Err(HugememError::ZeroLength);
        }
        let iova_mode = match (self.iova_mode, &self.source) {
            (Some(m), _) => m,
            (None, PageSource::Heap(_)) => IovaMode::Va,
            (None, _) => IovaMode::detect(),
        };
        let min_keep = self.min_keep;
        // std even under loom: a static counter whose value only needs to be unique.
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        let inner = Arc::new(Inner {
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            cfg: self,
            iova_mode,
            table: SegmentTable::new(),
            state: Mutex::new(State::default()),
            events: Mutex::new(Vec::new()),
            init_error: None,
            small: Mutex::new(Weak::new()),
        });
        let p = Provider { inner };
        if min_keep > 0 {
            // Mapped now, freed at once: the free keeps it (mapped <= min_keep).
            let c = p.alloc(min_keep)?;
            drop(c);
        }
        Ok(p)
    }
}

/// Per-page state in a list.
const UNMAPPED: u8 = 0;
/// Mapped, not handed out (kept minimum, or external memory).
const KEPT: u8 = 1;
/// Handed out in a chunk.
const USED: u8 = 2;
/// Mapped, being given back: its Free event is firing (not reusable).
const FREEING: u8 = 3;

enum Backing {
    Fd(OwnedFd),
    AnonHuge,
    Heap {
        ptr: usize,
        layout: std::alloc::Layout,
    },
    External,
}

pub(crate) struct PageList {
    kind: ListKind,
    pub(crate) seg: Arc<Segment>,
    slot: usize,
    backing: Backing,
    /// One entry per page of the segment: UNMAPPED, KEPT or USED.
    state: Vec<u8>,
    /// Pages at and past `hwm` were never touched (all UNMAPPED).
    hwm: usize,
    used: usize,
    mapped: usize,
    lock_failed: bool,
    /// The last attempt to get hugepages for this list failed: check the
    /// kernel's free count before trying again (a failing hugetlb
    /// `fallocate` costs milliseconds).
    short: bool,
    removed: bool,
    /// Bumped for external lists so stale ids do not match a reused index.
    generation: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum ListKind {
    /// Own pages of this size, bound to this node (-1: the default policy).
    Own(PageSize, i32),
    External {
        heap: Option<String>,
    },
}

#[derive(Default)]
struct State {
    lists: Vec<PageList>,
    /// Bytes mapped by the provider's own lists.
    mapped: usize,
    validators: Vec<Validator>,
    zones: BTreeMap<String, RawChunk>,
    heaps: BTreeMap<String, ()>,
    /// Retired segments, alive until the provider drops (see `SegmentTable::slots`).
    graveyard: Vec<Arc<Segment>>,
    fallback: Option<String>,
    fallback_count: usize,
    next_generation: u64,
    /// Bytes of own pages in FREEING state.
    releasing: usize,
    /// Events queued under the lock, fired by `settle` once it is released.
    pending_events: Vec<MemEvent>,
    /// Page runs `(list, first, count)` to unmap after their Free events.
    pending_unmap: Vec<(usize, usize, usize)>,
    /// External lists to remove after their Free events.
    pending_removal: Vec<usize>,
}

pub(crate) struct Inner {
    id: u64,
    cfg: ProviderBuilder,
    pub(crate) iova_mode: IovaMode,
    pub(crate) table: SegmentTable,
    state: Mutex<State>,
    events: Mutex<Vec<Arc<EventEntry>>>,
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
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A cheap, cloneable handle to a memory provider.
///
/// See the [crate documentation](crate) for the model.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, Provider};
/// let p = Provider::global();
/// let c = p.alloc_with(&AllocRequest::new(64 << 10)).unwrap();
/// assert_eq!(p.virt2iova(c.as_ptr().as_ptr()), c.iova());
/// assert!(p.iova2virt(c.iova()).is_some() || c.iova().is_bad());
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
/// p.register_event_callback("lookup", move |e| {
///     if let Some(p) = w.upgrade() {
///         assert!(p.page_of(e.va).is_some());
///     }
/// })
/// .unwrap();
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

enum ListFail {
    /// No pages of this size: the reason.
    NoSpace(String),
    Hard(HugememError),
}

impl Provider {
    /// A builder with the defaults: memfd 2 MiB pages, small-page fallback,
    /// large VA reservations, no minimum, no limit, detected IOVA mode.
    pub fn builder() -> ProviderBuilder {
        ProviderBuilder::default()
    }

    /// The process-wide provider, built with the defaults on first use.
    ///
    /// Never panics: if building fails, the first allocation returns
    /// [`HugememError::InitFailed`].
    pub fn global() -> &'static Provider {
        static GLOBAL: OnceLock<Provider> = OnceLock::new();
        GLOBAL.get_or_init(|| match Provider::builder().build() {
            Ok(p) => p,
            Err(e) => Provider {
                inner: Arc::new(Inner {
                    id: u64::MAX,
                    cfg: ProviderBuilder::default(),
                    iova_mode: IovaMode::Va,
                    table: SegmentTable::new(),
                    state: Mutex::new(State::default()),
                    events: Mutex::new(Vec::new()),
                    init_error: Some(e.to_string()),
                    small: Mutex::new(Weak::new()),
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

    /// Allocates `len` bytes with default options.
    pub fn alloc(&self, len: usize) -> Result<Chunk, HugememError> {
        self.alloc_with(&AllocRequest::new(len))
    }

    /// Allocates as `req` says.
    pub fn alloc_with(&self, req: &AllocRequest) -> Result<Chunk, HugememError> {
        let raw = self.inner.alloc_raw(req)?;
        let seg = lock(&self.inner.state).lists[raw.list].seg.clone();
        Ok(Chunk {
            provider: self.clone(),
            raw,
            seg,
        })
    }

    /// IOVA of any address the provider knows (its pages or registered
    /// external memory); [`Iova::BAD`] otherwise. No lock, no syscall.
    #[inline]
    pub fn virt2iova(&self, ptr: *const u8) -> Iova {
        match self.inner.table.find(ptr as usize) {
            Some(seg) => seg.lookup(ptr as usize),
            None => Iova::BAD,
        }
    }

    /// The virtual address of `iova` in this provider's memory, if mapped.
    /// Walks the mapped pages (no syscall).
    pub fn iova2virt(&self, iova: Iova) -> Option<std::ptr::NonNull<u8>> {
        if iova.is_bad() {
            return None;
        }
        let mut found = None;
        self.inner.table.for_each(|seg| {
            let size = seg.page_size() as u64;
            for i in 0..seg.walk_len() {
                let p = seg.page_iova(i);
                if !p.is_bad() && iova.0 >= p.0 && iova.0 - p.0 < size {
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
        if state == UNMAPPED {
            return None;
        }
        Some(PageInfo {
            va: seg.base + (i << seg.shift),
            iova: seg.page_iova(i),
            size: seg.page_size(),
            node: seg.node,
            external: seg.external,
            list: seg.list,
            in_use: state == USED,
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

    // ---- events ----

    /// Registers `f` under `name`, called for every page Alloc (after
    /// mapping) and Free (before unmapping), external memory included.
    /// Callbacks run with no provider lock held, so they may use the
    /// provider (translate, look up pages, allocate, free, (un)register
    /// callbacks): hold it as a [`WeakProvider`] ([`downgrade`](Self::downgrade));
    /// a captured `Provider` clone keeps the provider and its memory alive
    /// until the callback is unregistered. Events for a range arrive in
    /// order: a range's Free comes before the Alloc of anything mapped again
    /// at those addresses.
    ///
    /// ```
    /// use pktmem_hugemem::{EventKind, Provider};
    /// use std::sync::{Arc, Mutex};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// p.register_event_callback("log", move |e| s.lock().unwrap().push(e.kind)).unwrap();
    /// drop(p.alloc(4096).unwrap());
    /// assert_eq!(*seen.lock().unwrap(), vec![EventKind::Alloc, EventKind::Free]);
    /// assert!(p.register_event_callback("log", |_| ()).is_err());
    /// p.unregister_event_callback("log").unwrap();
    /// ```
    pub fn register_event_callback(
        &self,
        name: &str,
        f: impl Fn(&MemEvent) + Send + Sync + 'static,
    ) -> Result<(), HugememError> {
        let mut ev = lock(&self.inner.events);
        if ev.iter().any(|e| e.name == name) {
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        ev.push(Arc::new(EventEntry {
            name: name.to_string(),
            active: AtomicBool::new(true),
            f: Box::new(f),
        }));
        Ok(())
    }

    /// Unregisters the callback `name` (may be called from inside it).
    pub fn unregister_event_callback(&self, name: &str) -> Result<(), HugememError> {
        let mut ev = lock(&self.inner.events);
        let i = ev
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| HugememError::UnknownName(name.to_string()))?;
        // Release: pairs with the Acquire load in `fire`.
        ev[i].active.store(false, Ordering::Release);
        ev.remove(i);
        Ok(())
    }

    // ---- limits ----

    /// Registers a validator called whenever growth would take the mapped
    /// bytes past `threshold`; returning false refuses the allocation with
    /// [`HugememError::RefusedByValidator`]. Validators run under the
    /// provider's lock: everything they need is in the [`GrowthQuery`];
    /// allocating from inside one returns [`HugememError::Reentrant`].
    ///
    /// ```
    /// use pktmem_hugemem::{HugememError, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// p.register_validator("cap", 8192, |q| q.new_total <= 12288).unwrap();
    /// let a = p.alloc(8192).unwrap(); // up to the threshold: not asked
    /// let b = p.alloc(4096).unwrap(); // asked, allowed
    /// assert!(matches!(p.alloc(4096), Err(HugememError::RefusedByValidator { .. })));
    /// drop((a, b));
    /// ```
    pub fn register_validator(
        &self,
        name: &str,
        threshold: usize,
        f: impl Fn(&GrowthQuery) -> bool + Send + Sync + 'static,
    ) -> Result<(), HugememError> {
        let mut st = lock(&self.inner.state);
        if st.validators.iter().any(|v| v.name == name) {
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        st.validators.push(Validator {
            name: name.to_string(),
            threshold,
            f: Arc::new(f),
        });
        Ok(())
    }

    /// Removes the validator `name`.
    pub fn unregister_validator(&self, name: &str) -> Result<(), HugememError> {
        let mut st = lock(&self.inner.state);
        let i = st
            .validators
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| HugememError::UnknownName(name.to_string()))?;
        st.validators.remove(i);
        Ok(())
    }

    // ---- external memory ----

    /// Registers memory the provider did not allocate: `len` bytes at `ptr`
    /// in pages of `page_size` bytes, with one IOVA per page (or none: the
    /// pages then translate to [`Iova::BAD`]). Fires an Alloc event.
    ///
    /// ```
    /// use pktmem_hugemem::{Iova, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let layout = std::alloc::Layout::from_size_align(8192, 4096).unwrap();
    /// let mem = unsafe { std::alloc::alloc_zeroed(layout) };
    /// let id = p.register_external(mem, 8192, 4096, Some(&[Iova(0x10000), Iova(0x40000)])).unwrap();
    /// assert_eq!(p.virt2iova(unsafe { mem.add(4097) }), Iova(0x40001));
    /// p.unregister_external(id).unwrap();
    /// assert!(p.virt2iova(mem).is_bad());
    /// unsafe { std::alloc::dealloc(mem, layout) };
    /// ```
    pub fn register_external(
        &self,
        ptr: *mut u8,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
    ) -> Result<ExternalId, HugememError> {
        self.inner
            .register_external(ptr as usize, len, page_size, iovas, None)
    }

    /// Unregisters external memory; refused while chunks use it. Fires a Free event.
    ///
    /// Lookups run without locks, so the range's translation table (8 bytes
    /// per page) is retired rather than freed: it stays allocated until the
    /// provider drops.
    pub fn unregister_external(&self, id: ExternalId) -> Result<(), HugememError> {
        self.inner.unregister_external(id, None)
    }

    /// Unregisters the external range that starts at `ptr` (not in a heap).
    pub fn unregister_external_at(&self, ptr: *const u8) -> Result<(), HugememError> {
        let id = {
            let st = lock(&self.inner.state);
            let li = st
                .lists
                .iter()
                .position(|l| {
                    !l.removed
                        && l.seg.base == ptr as usize
                        && l.kind == ListKind::External { heap: None }
                })
                .ok_or(HugememError::NotRegistered { addr: ptr as usize })?;
            ExternalId(li, st.lists[li].generation)
        };
        self.inner.unregister_external(id, None)
    }

    /// Creates an empty named external heap.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Iova, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let layout = std::alloc::Layout::from_size_align(4 * 4096, 4096).unwrap();
    /// let mem = unsafe { std::alloc::alloc_zeroed(layout) };
    /// let iovas: Vec<Iova> = (0..4).map(|i| Iova(0x8000_0000 + i * 4096)).collect();
    /// p.create_heap("dev").unwrap();
    /// // SAFETY: `mem` is ours, zeroed, and outlives its time in the heap.
    /// let id = unsafe { p.heap_add_memory("dev", mem, 4 * 4096, 4096, Some(&iovas)) }.unwrap();
    /// let c = p.alloc_with(&AllocRequest::new(8192).heap("dev")).unwrap();
    /// assert_eq!(c.iova(), Iova(0x8000_0000));
    /// assert!(p.heap_remove_memory("dev", id).is_err()); // busy
    /// drop(c);
    /// p.heap_remove_memory("dev", id).unwrap();
    /// p.destroy_heap("dev").unwrap();
    /// unsafe { std::alloc::dealloc(mem, layout) };
    /// ```
    pub fn create_heap(&self, name: &str) -> Result<(), HugememError> {
        let mut st = lock(&self.inner.state);
        if st.heaps.contains_key(name) {
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        st.heaps.insert(name.to_string(), ());
        Ok(())
    }

    /// Adds external memory to heap `name` (registering it as
    /// [`register_external`](Self::register_external) does). Chunks and zones
    /// are then allocated from it with [`AllocRequest::heap`].
    ///
    /// # Safety
    /// Chunks carved from the memory give safe read/write access to it, so:
    /// - `[ptr, ptr + len)` is valid for reads and writes of initialised bytes;
    /// - it stays valid, and nothing else accesses it, until it is removed
    ///   with [`heap_remove_memory`](Self::heap_remove_memory) or the
    ///   provider is dropped.
    pub unsafe fn heap_add_memory(
        &self,
        name: &str,
        ptr: *mut u8,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
    ) -> Result<ExternalId, HugememError> {
        if !lock(&self.inner.state).heaps.contains_key(name) {
            return Err(HugememError::UnknownName(name.to_string()));
        }
        self.inner
            .register_external(ptr as usize, len, page_size, iovas, Some(name))
    }

    /// Removes memory from heap `name`; refused while chunks use it.
    pub fn heap_remove_memory(&self, name: &str, id: ExternalId) -> Result<(), HugememError> {
        self.inner.unregister_external(id, Some(name))
    }

    /// Destroys heap `name`; refused while it still holds memory.
    pub fn destroy_heap(&self, name: &str) -> Result<(), HugememError> {
        let mut st = lock(&self.inner.state);
        if !st.heaps.contains_key(name) {
            return Err(HugememError::UnknownName(name.to_string()));
        }
        let pages: usize = st
            .lists
            .iter()
            .filter(|l| {
                !l.removed
                    && l.kind
                        == ListKind::External {
                            heap: Some(name.to_string()),
                        }
            })
            .map(|l| l.seg.pages())
            .sum();
        if pages > 0 {
            return Err(HugememError::InUse {
                what: format!("heap '{name}' (still holds memory)"),
                pages,
            });
        }
        st.heaps.remove(name);
        Ok(())
    }

    // ---- zones ----

    /// Reserves a named zone as `req` says; the memory stays until [`zone_free`](Self::zone_free).
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let z = p.zone_reserve("rx", &AllocRequest::new(5000)).unwrap();
    /// assert_eq!(p.zone_lookup("rx").unwrap().va, z.va);
    /// assert!(p.zone_reserve("rx", &AllocRequest::new(1)).is_err());
    /// p.zone_free("rx").unwrap();
    /// assert!(p.zone_lookup("rx").is_none());
    /// ```
    pub fn zone_reserve(&self, name: &str, req: &AllocRequest) -> Result<Zone, HugememError> {
        if lock(&self.inner.state).zones.contains_key(name) {
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        let raw = self.inner.alloc_raw(req)?;
        let mut st = lock(&self.inner.state);
        if st.zones.contains_key(name) {
            drop(st);
            self.inner.free_raw(raw);
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        let z = zone_info(name, &raw, &st.lists[raw.list].seg);
        st.zones.insert(name.to_string(), raw);
        Ok(z)
    }

    /// The zone `name`, if reserved.
    pub fn zone_lookup(&self, name: &str) -> Option<Zone> {
        let st = lock(&self.inner.state);
        let raw = st.zones.get(name)?;
        Some(zone_info(name, raw, &st.lists[raw.list].seg))
    }

    /// Frees the zone `name`.
    pub fn zone_free(&self, name: &str) -> Result<(), HugememError> {
        let raw = lock(&self.inner.state)
            .zones
            .remove(name)
            .ok_or_else(|| HugememError::UnknownName(name.to_string()))?;
        self.inner.free_raw(raw);
        Ok(())
    }

    /// Names of the reserved zones.
    pub fn zone_names(&self) -> Vec<String> {
        lock(&self.inner.state).zones.keys().cloned().collect()
    }

    // ---- walks ----

    /// Calls `f` for every mapped page of every list (external included),
    /// with no lock held.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let _c = p.alloc(3 * 4096).unwrap();
    /// let mut n = 0;
    /// p.walk_pages(|pg| {
    ///     assert!(pg.in_use && !pg.external);
    ///     n += 1;
    /// });
    /// assert_eq!(n, 3);
    /// assert_eq!(p.va_runs().len(), 1);
    /// assert_eq!(p.lists()[0].used_pages, 3);
    /// assert!(p.dump().contains("3 in use"));
    /// ```
    pub fn walk_pages(&self, mut f: impl FnMut(&PageInfo)) {
        // Collected first: `f` runs with no lock held and may use the provider.
        let pages: Vec<PageInfo> = {
            let st = lock(&self.inner.state);
            let mut v = Vec::new();
            for l in st.lists.iter().filter(|l| !l.removed) {
                for i in 0..l.hwm {
                    if l.state[i] != UNMAPPED {
                        v.push(PageInfo {
                            va: l.seg.base + (i << l.seg.shift),
                            iova: l.seg.page_iova(i),
                            size: l.seg.page_size(),
                            node: l.seg.node,
                            external: l.seg.external,
                            list: l.seg.list,
                            in_use: l.state[i] == USED,
                        });
                    }
                }
            }
            v
        };
        for p in &pages {
            f(p);
        }
    }

    /// Every VA-contiguous run of mapped pages: `(va, len, page_size, external)`.
    pub fn va_runs(&self) -> Vec<(usize, usize, usize, bool)> {
        let mut out: Vec<(usize, usize, usize, bool)> = Vec::new();
        self.walk_pages(|p| {
            if let Some(last) = out.last_mut() {
                if last.0 + last.1 == p.va && last.2 == p.size && last.3 == p.external {
                    last.1 += p.size;
                    return;
                }
            }
            out.push((p.va, p.size, p.size, p.external));
        });
        out
    }

    /// Every list: one entry per page-size list and external range.
    pub fn lists(&self) -> Vec<ListInfo> {
        let st = lock(&self.inner.state);
        st.lists
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.removed)
            .map(|(id, l)| ListInfo {
                id,
                page_size: l.seg.page_size(),
                va: l.seg.base,
                va_len: l.seg.len,
                mapped_pages: l.mapped,
                used_pages: l.used,
                external: l.seg.external,
                heap: match &l.kind {
                    ListKind::External { heap } => heap.clone(),
                    ListKind::Own(..) => None,
                },
                locked: !l.lock_failed,
                shareable: matches!(l.backing, Backing::Fd(_)),
            })
            .collect()
    }

    /// The region table of fd-backed lists: for each VA-contiguous run of
    /// mapped pages, the fd, file offset, VA, length, page size and IOVA of
    /// its first page. Another process can map `fd` at `offset` to `va`.
    /// The fds are the provider's (close-on-exec; clear the flag to pass
    /// them to a child) and stay open while the provider lives.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().quiet(true).build().unwrap();
    /// let c = p.alloc(5000).unwrap();
    /// let r = p.regions();
    /// assert_eq!(r.len(), 1);
    /// assert_eq!(r[0].va, c.as_ptr().as_ptr() as usize);
    /// let list = c.pages().next().unwrap().list;
    /// let base = p.lists().iter().find(|l| l.id == list).unwrap().va;
    /// assert_eq!(r[0].offset, r[0].va - base);
    /// ```
    pub fn regions(&self) -> Vec<Region> {
        use std::os::fd::AsRawFd;
        let st = lock(&self.inner.state);
        let mut out = Vec::new();
        for l in st.lists.iter().filter(|l| !l.removed) {
            let Backing::Fd(fd) = &l.backing else {
                continue;
            };
            let mut i = 0;
            while i < l.hwm {
                if l.state[i] == UNMAPPED {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < l.hwm && l.state[i] != UNMAPPED {
                    i += 1;
                }
                out.push(Region {
                    fd: fd.as_raw_fd(),
                    offset: start << l.seg.shift,
                    va: l.seg.base + (start << l.seg.shift),
                    len: (i - start) << l.seg.shift,
                    page_size: l.seg.page_size(),
                    iova: l.seg.page_iova(start),
                });
            }
        }
        out
    }

    /// What the provider chose and why: IOVA mode, source, lists, fallback note.
    pub fn info(&self) -> ProviderInfo {
        let st = lock(&self.inner.state);
        ProviderInfo {
            iova_mode: self.inner.iova_mode,
            source: self.inner.cfg.source.clone(),
            preferred: self.inner.cfg.preferred.clone(),
            fallback_allowed: self.inner.cfg.fallback,
            fallback: st.fallback.clone(),
            fallback_count: st.fallback_count,
            mapped: st.mapped,
            min_keep: self.inner.cfg.min_keep,
            limit: self.inner.cfg.limit,
            zones: st.zones.len(),
            init_error: self.inner.init_error.clone(),
        }
    }

    /// A human-readable dump of the provider, its lists and pages.
    pub fn dump(&self) -> String {
        use std::fmt::Write;
        let info = self.info();
        let mut s = format!("{info}\n");
        for l in self.lists() {
            let _ = writeln!(s, "  {l}");
        }
        for (va, len, ps, ext) in self.va_runs() {
            let _ = writeln!(
                s,
                "    run {va:#x}..{:#x} {} in {} pages{}",
                va + len,
                human(len),
                human(ps),
                if ext { " (external)" } else { "" }
            );
        }
        self.walk_pages(|p| {
            let _ = writeln!(
                s,
                "      page {:#x} iova {:?} {}{}",
                p.va,
                p.iova,
                human(p.size),
                if p.external { " external" } else { "" }
            );
        });
        s
    }
}

fn zone_info(name: &str, raw: &RawChunk, seg: &Segment) -> Zone {
    Zone {
        name: name.to_string(),
        va: raw.va,
        len: raw.len,
        iova: seg.lookup(raw.va),
        page_size: seg.page_size(),
        iova_contiguous: raw.contiguous,
    }
}

/// A named zone's description (the memory stays until `zone_free`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Its name.
    pub name: String,
    /// First byte.
    pub va: usize,
    /// Bytes reserved.
    pub len: usize,
    /// IOVA of the first byte.
    pub iova: Iova,
    /// Page size in bytes.
    pub page_size: usize,
    /// Whether it is one IOVA run.
    pub iova_contiguous: bool,
}

/// One row of [`Provider::regions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The backing fd.
    pub fd: i32,
    /// Offset in the fd.
    pub offset: usize,
    /// Virtual address it is mapped at.
    pub va: usize,
    /// Length in bytes.
    pub len: usize,
    /// Page size in bytes.
    pub page_size: usize,
    /// IOVA of its first page.
    pub iova: Iova,
}

/// One row of [`Provider::lists`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListInfo {
    /// The list's index (as in [`PageInfo::list`]).
    pub id: usize,
    /// Page size in bytes.
    pub page_size: usize,
    /// Start of the VA range (reservation, or the external range).
    pub va: usize,
    /// Its length.
    pub va_len: usize,
    /// Pages mapped.
    pub mapped_pages: usize,
    /// Pages handed out.
    pub used_pages: usize,
    /// External memory.
    pub external: bool,
    /// The external heap it belongs to.
    pub heap: Option<String>,
    /// Small pages that could be locked (always true for hugepages).
    pub locked: bool,
    /// fd-backed (appears in [`Provider::regions`]).
    pub shareable: bool,
}

impl fmt::Display for ListInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "list {} pages at {:#x}+{}: {} mapped, {} in use{}{}{}",
            human(self.page_size),
            self.va,
            human(self.va_len),
            self.mapped_pages,
            self.used_pages,
            if self.external { ", external" } else { "" },
            match &self.heap {
                Some(h) => format!(", heap '{h}'"),
                None => String::new(),
            },
            if self.locked { "" } else { ", NOT locked" },
        )
    }
}

/// What [`Provider::info`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderInfo {
    /// IOVA mode.
    pub iova_mode: IovaMode,
    /// Page source.
    pub source: PageSource,
    /// Hugepage sizes tried by default.
    pub preferred: Vec<PageSize>,
    /// Whether small-page fallback is allowed.
    pub fallback_allowed: bool,
    /// Why the provider first fell back to small pages, if it did.
    pub fallback: Option<String>,
    /// How many allocations fell back.
    pub fallback_count: usize,
    /// Bytes mapped by the provider's own lists.
    pub mapped: usize,
    /// The kept minimum.
    pub min_keep: usize,
    /// The upper limit.
    pub limit: usize,
    /// Zones reserved.
    pub zones: usize,
    /// For a global provider that could not be built: why.
    pub init_error: Option<String>,
}

impl fmt::Display for ProviderInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "provider: iova {:?}, source {:?}, {} mapped, min_keep {}, limit {}, {} zone(s)",
            self.iova_mode,
            self.source,
            human(self.mapped),
            human(self.min_keep),
            if self.limit == usize::MAX {
                "none".to_string()
            } else {
                human(self.limit)
            },
            self.zones
        )?;
        if let Some(fb) = &self.fallback {
            write!(
                f,
                "; fell back to 4 KiB pages {} time(s): {fb}",
                self.fallback_count
            )?;
        }
        if let Some(e) = &self.init_error {
            write!(f, "; init failed: {e}")?;
        }
        Ok(())
    }
}

impl Inner {
    fn guard(&self) -> Result<(), HugememError> {
        if let Some(e) = &self.init_error {
            return Err(HugememError::InitFailed(e.clone()));
        }
        if IN_CALLBACK.with(|c| c.get()) == self.id {
            return Err(HugememError::Reentrant);
        }
        Ok(())
    }

    fn fire(&self, evs: &[MemEvent]) {
        if evs.is_empty() {
            return;
        }
        let snapshot: Vec<Arc<EventEntry>> = lock(&self.events).clone();
        if snapshot.is_empty() {
            return;
        }
        for ev in evs {
            for e in &snapshot {
                // Acquire: pairs with the Release store in `unregister_event_callback`.
                if e.active.load(Ordering::Acquire) {
                    // A panicking callback must not leave pages half given
                    // back: finish the bookkeeping, then let the panic go on.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (e.f)(ev)));
                    if let Err(payload) = r {
                        PANIC.with(|p| {
                            p.borrow_mut().get_or_insert(payload);
                        });
                    }
                }
            }
        }
    }

    /// Releases the lock, fires the queued events, then (locked again)
    /// unmaps the pages and removes the lists whose Free events just fired;
    /// frees chunks dropped inside validators. Callbacks thus run with no
    /// provider lock held.
    ///
    /// Returns the payload of a callback's panic, for the caller to resume
    /// once its own state is consistent.
    #[must_use]
    fn settle<'a>(&'a self, mut st: MutexGuard<'a, State>) -> Option<PanicPayload> {
        loop {
            let evs = std::mem::take(&mut st.pending_events);
            let unmaps = std::mem::take(&mut st.pending_unmap);
            let removals = std::mem::take(&mut st.pending_removal);
            let deferred: Vec<RawChunk> = DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                let (mine, rest): (Vec<_>, Vec<_>) =
                    d.drain(..).partition(|(id, _)| *id == self.id);
                *d = rest;
                mine.into_iter().map(|(_, r)| r).collect()
            });
            if evs.is_empty() && unmaps.is_empty() && removals.is_empty() && deferred.is_empty() {
                drop(st);
                return PANIC.with(|p| p.borrow_mut().take());
            }
            drop(st);
            self.fire(&evs);
            st = lock(&self.state);
            for (li, s, c) in unmaps {
                self.unmap_pages(&mut st, li, s, c);
                st.releasing -= c << st.lists[li].seg.shift;
            }
            for li in removals {
                self.finish_removal(&mut st, li);
            }
            for raw in deferred {
                self.free_locked(&mut st, raw);
            }
        }
    }

    pub(crate) fn alloc_raw(&self, req: &AllocRequest) -> Result<RawChunk, HugememError> {
        self.guard()?;
        if req.len == 0 {
            return Err(HugememError::ZeroLength);
        }
        if !req.align.is_power_of_two() {
            return Err(HugememError::BadAlignment { align: req.align });
        }
        if req.node >= 0 && !sys::node_exists(req.node) {
            return Err(HugememError::UnknownNode(req.node));
        }
        if req.node < -1 {
            return Err(HugememError::UnknownNode(req.node));
        }
        let mut st = lock(&self.state);
        let r = self.alloc_locked(&mut st, req);
        if let Ok(raw) = &r {
            if let Some((va, len)) = page_span(&st, raw) {
                // SAFETY: the chunk's pages are mapped in this list's
                // reservation and now the caller's alone.
                unsafe { asan::unpoison(va as *const u8, len) };
            }
        }
        if let Some(payload) = self.settle(st) {
            if let Ok(raw) = r {
                self.free_raw(raw);
            }
            std::panic::resume_unwind(payload);
        }
        r
    }

    fn settle_or_unwind<'a>(&'a self, st: MutexGuard<'a, State>) {
        if let Some(payload) = self.settle(st) {
            std::panic::resume_unwind(payload);
        }
    }

    fn candidates(&self, req: &AllocRequest) -> Vec<PageSize> {
        let mut c = Vec::new();
        if let PageSource::Heap(_) = self.cfg.source {
            c.push(PageSize::Small4K);
            return c;
        }
        if let Some(p) = req.page_size {
            c.push(p);
            if req.require_page_size {
                return c;
            }
        }
        for p in &self.cfg.preferred {
            if !c.contains(p) {
                c.push(*p);
            }
        }
        if self.cfg.fallback && !c.contains(&PageSize::Small4K) {
            c.push(PageSize::Small4K);
        }
        c
    }

    fn alloc_locked(&self, st: &mut State, req: &AllocRequest) -> Result<RawChunk, HugememError> {
        if let Some(h) = &req.heap {
            return self.alloc_from_heap(st, h, req);
        }
        let cands = self.candidates(req);
        if let (PageSource::Heap(_), Some(p)) = (&self.cfg.source, req.page_size) {
            if req.require_page_size && p != PageSize::Small4K {
                return Err(HugememError::NoPages {
                    page_size: p.bytes(),
                    pages: req.len.div_ceil(p.bytes()),
                    reason: "a heap-backed provider has only 4 KiB pages".into(),
                });
            }
        }
        let mut why: Vec<String> = Vec::new();
        let mut soft: Option<HugememError> = None;
        let mut last_ps = PageSize::Small4K;
        for ps in cands {
            last_ps = ps;
            let li = match self.list_for(st, ps, req.node) {
                Ok(li) => li,
                Err(ListFail::NoSpace(r)) => {
                    why.push(r);
                    continue;
                }
                Err(ListFail::Hard(e)) => return Err(e),
            };
            match self.alloc_in_list(st, li, req) {
                Ok(raw) => {
                    if ps == PageSize::Small4K && !why.is_empty() {
                        st.fallback_count += 1;
                        if st.fallback.is_none() {
                            let note = why.join("; ");
                            if !self.cfg.quiet {
                                eprintln!(
                                    "pktmem-hugemem: {note}; falling back to 4 KiB pages (locked)"
                                );
                            }
                            st.fallback = Some(note);
                        }
                    }
                    return Ok(raw);
                }
                Err(ListFail::NoSpace(r)) => why.push(r),
                // Limits and VA are per page size: a smaller size may still fit.
                Err(ListFail::Hard(
                    e @ (HugememError::LimitExceeded { .. }
                    | HugememError::RefusedByValidator { .. }
                    | HugememError::VaExhausted { .. }),
                )) => {
                    why.push(e.to_string());
                    soft.get_or_insert(e);
                }
                Err(ListFail::Hard(e)) => return Err(e),
            }
        }
        if let Some(e) = soft {
            return Err(e);
        }
        Err(HugememError::NoPages {
            page_size: last_ps.bytes(),
            pages: req.len.div_ceil(last_ps.bytes()),
            reason: if why.is_empty() {
                "no page size allowed".into()
            } else {
                why.join("; ")
            },
        })
    }

    /// The list of own pages of size `ps`, created on first use.
    fn list_for(&self, st: &mut State, ps: PageSize, node: i32) -> Result<usize, ListFail> {
        // Heap memory has no placement: one list whatever the node.
        let node = if let PageSource::Heap(_) = self.cfg.source {
            -1
        } else {
            node
        };
        if let Some(i) = st
            .lists
            .iter()
            .position(|l| !l.removed && l.kind == ListKind::Own(ps, node))
        {
            return Ok(i);
        }
        let shift = ps.shift();
        let (reserve, backing, base) = match &self.cfg.source {
            PageSource::Heap(bytes) => {
                let len = bytes.div_ceil(4096) * 4096;
                let layout = std::alloc::Layout::from_size_align(len, 4096)
                    .map_err(|_| ListFail::Hard(HugememError::ZeroLength))?;
                // SAFETY: `layout` has non-zero size (checked in `build`).
                let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
                if ptr.is_null() {
                    return Err(ListFail::NoSpace(format!(
                        "heap allocation of {} failed",
                        human(len)
                    )));
                }
                (
                    len,
                    Backing::Heap {
                        ptr: ptr as usize,
                        layout,
                    },
                    ptr as usize,
                )
            }
            src => {
                let reserve = self.cfg.va_reserve[size_index(ps)].div_ceil(ps.bytes()) * ps.bytes();
                let backing = match src {
                    PageSource::AnonHugetlb if ps.is_huge() => Backing::AnonHuge,
                    PageSource::Hugetlbfs(dir) if ps.is_huge() => Backing::Fd(
                        sys::create_backing(Some(dir), true, shift, reserve, &ps.to_string())
                            .map_err(|e| ListFail::NoSpace(format!("{ps} hugetlbfs file: {e}")))?,
                    ),
                    _ => Backing::Fd(
                        sys::create_backing(None, ps.is_huge(), shift, reserve, &format!("{ps}"))
                            .map_err(|e| ListFail::NoSpace(format!("{ps} memfd: {e}")))?,
                    ),
                };
                let base = sys::reserve_va(reserve, ps.bytes()).map_err(ListFail::Hard)?;
                (reserve, backing, base)
            }
        };
        let rec_node = if node >= 0 {
            node
        } else if sys::node_exists(1) {
            -1
        } else {
            0
        };
        let seg = Arc::new(Segment::new(
            base,
            reserve,
            shift,
            rec_node,
            false,
            st.lists.len(),
        ));
        let slot = match self.table.publish(&seg) {
            Some(s) => s,
            None => {
                release_backing(&backing, base, reserve);
                return Err(ListFail::Hard(HugememError::TooManyLists(MAX_SEGMENTS)));
            }
        };
        st.lists.push(PageList {
            kind: ListKind::Own(ps, node),
            state: vec![UNMAPPED; seg.pages()],
            seg,
            slot,
            backing,
            hwm: 0,
            used: 0,
            mapped: 0,
            lock_failed: false,
            short: false,
            removed: false,
            generation: 0,
        });
        Ok(st.lists.len() - 1)
    }

    /// First-fit run of `n` pages that are not in use (UNMAPPED or KEPT)
    /// whose first page's VA is a multiple of `step` pages.
    fn find_run(l: &PageList, n: usize, step: usize) -> Option<usize> {
        let total = l.state.len();
        // Index `i` is aligned when (base_page + i) % step == 0.
        let base_page = l.seg.base >> l.seg.shift;
        let off = (step - base_page % step) % step;
        let align_up = |x: usize| -> Option<usize> {
            let k = x.checked_sub(off).map_or(0, |d| d.div_ceil(step));
            k.checked_mul(step)?.checked_add(off)
        };
        let mut i = align_up(0)?;
        while i.checked_add(n)? <= total {
            if i >= l.hwm {
                return Some(i);
            }
            match l.state[i..i + n].iter().rposition(|&s| s >= USED) {
                None => return Some(i),
                Some(k) => i = align_up(i + k + 1)?,
            }
        }
        None
    }

    fn alloc_in_list(
        &self,
        st: &mut State,
        li: usize,
        req: &AllocRequest,
    ) -> Result<RawChunk, ListFail> {
        let (shift, external) = (st.lists[li].seg.shift, st.lists[li].seg.external);
        let ps = 1usize << shift;
        let n = req.len.div_ceil(ps);
        let step = (req.align >> shift).max(1);
        let l = &st.lists[li];
        let first =
            Self::find_run(l, n, step).ok_or(ListFail::Hard(HugememError::VaExhausted {
                page_size: ps,
                pages: n,
                reserved_pages: l.state.len(),
            }))?;
        // Sub-runs that need mapping.
        let mut to_map: Vec<(usize, usize)> = Vec::new();
        for i in first..first + n {
            if l.state[i] == UNMAPPED {
                match to_map.last_mut() {
                    Some((s, c)) if *s + *c == i => *c += 1,
                    _ => to_map.push((i, 1)),
                }
            }
        }
        let new_pages: usize = to_map.iter().map(|r| r.1).sum();
        let new_bytes = new_pages << shift;
        if !external && new_bytes > 0 {
            let new_total = st.mapped.saturating_add(new_bytes);
            if new_total > self.cfg.limit {
                return Err(ListFail::Hard(HugememError::LimitExceeded {
                    requested: new_bytes,
                    mapped: st.mapped,
                    limit: self.cfg.limit,
                }));
            }
            let q_base = GrowthQuery {
                mapped: st.mapped,
                new_total,
                threshold: 0,
                page_size: ps,
            };
            let _in_validator = InCallback::enter(self.id);
            let refused = st.validators.iter().find(|v| {
                new_total > v.threshold
                    && !(v.f)(&GrowthQuery {
                        threshold: v.threshold,
                        ..q_base
                    })
            });
            drop(_in_validator);
            if let Some(v) = refused {
                return Err(ListFail::Hard(HugememError::RefusedByValidator {
                    name: v.name.clone(),
                    new_total,
                    threshold: v.threshold,
                }));
            }
        }
        // Map.
        if st.lists[li].short && new_pages > 0 && ps > 4096 {
            let avail = crate::info::inventory()
                .iter()
                .find(|h| h.page_size == ps)
                .map(|h| h.free.saturating_sub(h.reserved))
                .unwrap_or(0);
            if (avail as usize) < new_pages {
                return Err(ListFail::NoSpace(no_space_reason(
                    ps,
                    n,
                    st.lists[li].mapped,
                )));
            }
        }
        for (k, &(s, c)) in to_map.iter().enumerate() {
            if let Err(e) = self.map_pages(st, li, s, c) {
                for &(s2, c2) in &to_map[..k] {
                    self.unmap_pages(st, li, s2, c2);
                }
                return Err(match e {
                    BackingError::NoSpace => {
                        st.lists[li].short = true;
                        ListFail::NoSpace(no_space_reason(ps, n, st.lists[li].mapped))
                    }
                    BackingError::Other(e) => ListFail::Hard(e),
                });
            }
        }
        st.lists[li].short = false;
        let va = st.lists[li].seg.base + (first << shift);
        let contiguous = {
            let seg = &st.lists[li].seg;
            let pages = (first..first + n).map(|i| PageInfo {
                va: seg.base + (i << shift),
                iova: seg.page_iova(i),
                size: ps,
                node: seg.node,
                external,
                list: li,
                in_use: true,
            });
            let segs = segments_of(pages);
            if req.iova_contiguous && segs.len() != 1 {
                let nsegs = segs.len();
                for &(s, c) in &to_map {
                    self.unmap_pages(st, li, s, c);
                }
                return Err(ListFail::Hard(HugememError::NotIovaContiguous {
                    len: req.len,
                    segments: nsegs,
                }));
            }
            segs.len() == 1 && !segs[0].1.is_bad()
        };
        let l = &mut st.lists[li];
        for i in first..first + n {
            l.state[i] = USED;
        }
        l.used += n;
        l.hwm = l.hwm.max(first + n);
        let evs: Vec<MemEvent> = to_map
            .iter()
            .map(|&(s, c)| MemEvent {
                kind: EventKind::Alloc,
                va: l.seg.base + (s << shift),
                len: c << shift,
                external,
            })
            .collect();
        st.pending_events.extend(evs);
        Ok(RawChunk {
            list: li,
            first,
            pages: n,
            va,
            len: req.len,
            contiguous,
        })
    }

    /// Maps pages `[s, s + c)` of list `li`, records their IOVAs.
    fn map_pages(&self, st: &mut State, li: usize, s: usize, c: usize) -> Result<(), BackingError> {
        let l = &mut st.lists[li];
        let shift = l.seg.shift;
        let addr = l.seg.base + (s << shift);
        let len = c << shift;
        let off = s << shift;
        if !l.seg.external {
            // Pages freed earlier stay poisoned (`unmap_pages`); the heap
            // backing is zeroed below.
            // SAFETY: the range is inside this list's reservation.
            unsafe { asan::unpoison(addr as *const u8, len) };
        }
        // Pages of a node's list are allocated under a policy bound to it.
        let _bind = match l.kind {
            ListKind::Own(_, node) if node >= 0 && !matches!(l.backing, Backing::Heap { .. }) => {
                Some(sys::BindNode::new(node).map_err(BackingError::Other)?)
            }
            _ => None,
        };
        match &l.backing {
            Backing::Fd(fd) => {
                sys::fallocate(fd, off, len).inspect_err(|_| {
                    let _ = sys::punch_hole(fd, off, len);
                })?;
                // SAFETY: [addr, addr+len) is inside this list's reservation and
                // UNMAPPED (nothing references it).
                if let Err(e) = unsafe { sys::map_file_fixed(addr, len, fd, off) } {
                    let _ = sys::punch_hole(fd, off, len);
                    return Err(BackingError::Other(e));
                }
                if shift == 12 && !sys::mlock(addr, len) {
                    l.lock_failed = true;
                }
            }
            Backing::AnonHuge => {
                // SAFETY: as above.
                unsafe { sys::map_anon_huge_fixed(addr, len, shift) }?;
            }
            Backing::Heap { .. } => {
                // SAFETY: the range is inside the heap block this list owns and
                // UNMAPPED, so no chunk references it.
                unsafe { std::ptr::write_bytes(addr as *mut u8, 0, len) };
            }
            Backing::External => {}
        }
        // IOVAs.
        let seg = &l.seg;
        let pa = self.iova_mode == IovaMode::Pa && !matches!(l.backing, Backing::Heap { .. });
        if !pa {
            for i in s..s + c {
                seg.set_page_iova(i, Iova((seg.base + (i << shift)) as u64));
            }
        } else if shift == 12 {
            let mut buf = vec![Iova::BAD; c];
            if phys_of_small_pages(addr, &mut buf).is_err() {
                buf.iter_mut().for_each(|b| *b = Iova::BAD);
            }
            for (k, iova) in buf.into_iter().enumerate() {
                seg.set_page_iova(s + k, iova);
            }
        } else {
            for i in s..s + c {
                let va = seg.base + (i << shift);
                let iova = crate::virt2phys(va).map(Iova).unwrap_or(Iova::BAD);
                seg.set_page_iova(i, iova);
            }
        }
        for i in s..s + c {
            l.state[i] = KEPT;
        }
        l.mapped += c;
        l.hwm = l.hwm.max(s + c);
        if !l.seg.external {
            st.mapped += len;
        }
        Ok(())
    }

    /// Unmaps pages `[s, s + c)` of list `li` (no events; callers fire them).
    fn unmap_pages(&self, st: &mut State, li: usize, s: usize, c: usize) {
        let l = &mut st.lists[li];
        let shift = l.seg.shift;
        let addr = l.seg.base + (s << shift);
        let len = c << shift;
        for i in s..s + c {
            l.seg.set_page_iova(i, Iova::BAD);
            l.state[i] = UNMAPPED;
        }
        if !l.seg.external {
            // The VA stays reserved (a heap backing stays accessible):
            // poisoned until `map_pages` maps it again.
            // SAFETY: the range is in this list's reservation, no chunk's.
            unsafe { asan::poison(addr as *const u8, len) };
        }
        match &l.backing {
            Backing::Fd(fd) => {
                // SAFETY: the pages are no longer handed out (their chunk is gone).
                let _ = unsafe { sys::unmap_to_reserved(addr, len) };
                let _ = sys::punch_hole(fd, s << shift, len);
            }
            Backing::AnonHuge => {
                // SAFETY: as above.
                let _ = unsafe { sys::unmap_to_reserved(addr, len) };
            }
            Backing::Heap { .. } | Backing::External => {}
        }
        l.mapped -= c;
        if !l.seg.external {
            st.mapped -= len;
        }
    }

    pub(crate) fn free_raw(&self, raw: RawChunk) {
        if IN_CALLBACK.with(|c| c.get()) == self.id {
            // Inside a validator: our lock is held further up this thread's
            // stack. `settle` frees it once the lock is released.
            DEFERRED.with(|d| d.borrow_mut().push((self.id, raw)));
            return;
        }
        let mut st = lock(&self.state);
        self.free_locked(&mut st, raw);
        self.settle_or_unwind(st);
    }

    /// Marks the chunk's pages free; queues the Free event and the unmap of
    /// those beyond the kept minimum (done by `settle`).
    fn free_locked(&self, st: &mut State, raw: RawChunk) {
        let li = raw.list;
        let external = st.lists[li].seg.external;
        let shift = st.lists[li].seg.shift;
        {
            let l = &mut st.lists[li];
            for i in raw.first..raw.first + raw.pages {
                debug_assert_eq!(l.state[i], USED);
                l.state[i] = KEPT;
            }
            l.used -= raw.pages;
        }
        if external {
            return;
        }
        // Keep pages while that holds the mapped total (less what is being
        // released already) at or under min_keep.
        let ps = 1usize << shift;
        let staying = st.mapped - st.releasing - (raw.pages << shift);
        let keep_bytes = self.cfg.min_keep.saturating_sub(staying);
        let keep = keep_bytes.div_ceil(ps).min(raw.pages);
        // Kept pages are poisoned until handed out again (`alloc_raw`); the
        // others once their Free event has fired (`unmap_pages`). `Inner`'s
        // drop clears the shadow.
        // SAFETY: the pages are in this list's reservation, their chunk gone.
        unsafe {
            asan::poison(
                (st.lists[li].seg.base + (raw.first << shift)) as *const u8,
                keep << shift,
            )
        };
        let s = raw.first + keep;
        let c = raw.pages - keep;
        if c == 0 {
            return;
        }
        let l = &mut st.lists[li];
        for i in s..s + c {
            l.state[i] = FREEING;
        }
        let base = l.seg.base;
        st.releasing += c << shift;
        st.pending_events.push(MemEvent {
            kind: EventKind::Free,
            va: base + (s << shift),
            len: c << shift,
            external: false,
        });
        st.pending_unmap.push((li, s, c));
    }

    fn register_external(
        &self,
        addr: usize,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
        heap: Option<&str>,
    ) -> Result<ExternalId, HugememError> {
        self.guard()?;
        if len == 0 {
            return Err(HugememError::ZeroLength);
        }
        if !page_size.is_power_of_two() || page_size < 4096 {
            return Err(HugememError::BadPageSize { page_size });
        }
        if addr == 0 || addr % page_size != 0 {
            return Err(HugememError::Misaligned {
                value: addr,
                page_size,
            });
        }
        if len % page_size != 0 {
            return Err(HugememError::Misaligned {
                value: len,
                page_size,
            });
        }
        let pages = len / page_size;
        if let Some(t) = iovas {
            if t.len() != pages {
                return Err(HugememError::IovaTableLength {
                    expected: pages,
                    got: t.len(),
                });
            }
        }
        let end = addr
            .checked_add(len)
            .ok_or(HugememError::Overlap { addr, len })?;
        let mut st = lock(&self.state);
        let overlap = st
            .lists
            .iter()
            .filter(|l| !l.removed)
            .any(|l| addr < l.seg.base + l.seg.len && l.seg.base < end);
        if overlap {
            return Err(HugememError::Overlap { addr, len });
        }
        let seg = Arc::new(Segment::new(
            addr,
            len,
            page_size.trailing_zeros(),
            -1,
            true,
            st.lists.len(),
        ));
        for i in 0..pages {
            seg.set_page_iova(i, iovas.map(|t| t[i]).unwrap_or(Iova::BAD));
        }
        let slot = self
            .table
            .publish(&seg)
            .ok_or(HugememError::TooManyLists(MAX_SEGMENTS))?;
        st.next_generation += 1;
        let generation = st.next_generation;
        st.lists.push(PageList {
            kind: ListKind::External {
                heap: heap.map(str::to_string),
            },
            state: vec![KEPT; pages],
            seg,
            slot,
            backing: Backing::External,
            hwm: pages,
            used: 0,
            mapped: pages,
            lock_failed: false,
            short: false,
            removed: false,
            generation,
        });
        let id = ExternalId(st.lists.len() - 1, generation);
        st.pending_events.push(MemEvent {
            kind: EventKind::Alloc,
            va: addr,
            len,
            external: true,
        });
        self.settle_or_unwind(st);
        Ok(id)
    }

    fn unregister_external(&self, id: ExternalId, heap: Option<&str>) -> Result<(), HugememError> {
        self.guard()?;
        let mut st = lock(&self.state);
        if let Some(h) = heap {
            if !st.heaps.contains_key(h) {
                return Err(HugememError::UnknownName(h.to_string()));
            }
        }
        let l = match st.lists.get(id.0) {
            Some(l)
                if !l.removed
                    && l.generation == id.1
                    && !l.state.contains(&FREEING)
                    && l.kind
                        == ListKind::External {
                            heap: heap.map(str::to_string),
                        } =>
            {
                l
            }
            Some(l) => return Err(HugememError::NotRegistered { addr: l.seg.base }),
            None => return Err(HugememError::NotRegistered { addr: 0 }),
        };
        if l.used > 0 {
            return Err(HugememError::InUse {
                what: format!("external memory at {:#x}", l.seg.base),
                pages: l.used,
            });
        }
        let (base, len) = (l.seg.base, l.seg.len);
        // FREEING: no chunk can be carved from it while its Free event fires.
        st.lists[id.0].state.iter_mut().for_each(|s| *s = FREEING);
        st.pending_events.push(MemEvent {
            kind: EventKind::Free,
            va: base,
            len,
            external: true,
        });
        st.pending_removal.push(id.0);
        self.settle_or_unwind(st);
        Ok(())
    }

    /// Drops an external list whose Free event has fired.
    fn finish_removal(&self, st: &mut State, li: usize) {
        let l = &mut st.lists[li];
        for i in 0..l.seg.pages() {
            l.seg.set_page_iova(i, Iova::BAD);
        }
        l.removed = true;
        l.state = Vec::new();
        self.table.retire(l.slot);
        let seg = l.seg.clone();
        st.graveyard.push(seg);
    }

    fn alloc_from_heap(
        &self,
        st: &mut State,
        name: &str,
        req: &AllocRequest,
    ) -> Result<RawChunk, HugememError> {
        if !st.heaps.contains_key(name) {
            return Err(HugememError::UnknownName(name.to_string()));
        }
        let want = ListKind::External {
            heap: Some(name.to_string()),
        };
        let idx: Vec<usize> = (0..st.lists.len())
            .filter(|&i| !st.lists[i].removed && st.lists[i].kind == want)
            .collect();
        let mut last = None;
        for li in idx {
            if let (Some(ps), true) = (req.page_size, req.require_page_size) {
                if st.lists[li].seg.page_size() != ps.bytes() {
                    continue;
                }
            }
            match self.alloc_in_list(st, li, req) {
                Ok(r) => return Ok(r),
                Err(ListFail::Hard(e)) => last = Some(e),
                Err(ListFail::NoSpace(r)) => {
                    last = Some(HugememError::NoPages {
                        page_size: st.lists[li].seg.page_size(),
                        pages: 0,
                        reason: r,
                    })
                }
            }
        }
        Err(last.unwrap_or(HugememError::NoPages {
            page_size: 0,
            pages: 0,
            reason: format!("heap '{name}' has no memory that fits {} bytes", req.len),
        }))
    }
}

/// Marks this thread as running a validator of provider `id` until dropped
/// (also on unwind).
struct InCallback(u64);

impl InCallback {
    fn enter(id: u64) -> InCallback {
        InCallback(IN_CALLBACK.with(|c| c.replace(id)))
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(self.0));
    }
}

type PanicPayload = Box<dyn std::any::Any + Send + 'static>;

/// Why `n` pages of `ps` bytes could not be had, with `mapped` pages of
/// the list mapped already.
fn no_space_reason(ps: usize, n: usize, mapped: usize) -> String {
    if ps == 4096 {
        return format!("no memory for {n} 4 KiB pages");
    }
    let sys_total = crate::info::inventory()
        .iter()
        .find(|h| h.page_size == ps)
        .map(|h| h.total)
        .unwrap_or(0);
    if sys_total == 0 {
        format!("no {} hugepages reserved", human(ps))
    } else {
        format!(
            "ran out of {} hugepages after {mapped} page(s) ({sys_total} reserved system-wide)",
            human(ps)
        )
    }
}

thread_local! {
    /// A callback's panic, held until the provider's bookkeeping is done.
    static PANIC: std::cell::RefCell<Option<PanicPayload>> = const { std::cell::RefCell::new(None) };
    static DEFERRED: std::cell::RefCell<Vec<(u64, RawChunk)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The pages of `raw` as `(va, len)`, for own (not external) lists: the
/// range the provider poisons while free.
fn page_span(st: &State, raw: &RawChunk) -> Option<(usize, usize)> {
    let seg = &st.lists[raw.list].seg;
    (!seg.external).then(|| (seg.base + (raw.first << seg.shift), raw.pages << seg.shift))
}

fn release_backing(b: &Backing, base: usize, len: usize) {
    match b {
        Backing::Heap { ptr, layout } => {
            // SAFETY: `ptr` was allocated with `layout` in `list_for` and the
            // list (and every chunk of it) is gone.
            unsafe { std::alloc::dealloc(*ptr as *mut u8, *layout) };
        }
        Backing::External => {}
        Backing::Fd(_) | Backing::AnonHuge => {
            // SAFETY: the reservation is this list's and no chunk of it survives.
            unsafe { sys::release_va(base, len) };
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let zones = std::mem::take(&mut st.zones);
        let lists = std::mem::take(&mut st.lists);
        drop(zones);
        for l in lists.iter().filter(|l| !l.removed) {
            if !l.seg.external {
                // Free pages are poisoned (`free_locked`, `unmap_pages`) and
                // ASan's shadow outlives an unmap: clear it, up to the
                // high-water mark (ASan writes every shadow byte of the range).
                // SAFETY: the range is this list's reservation, still held.
                unsafe { asan::unpoison(l.seg.base as *const u8, l.hwm << l.seg.shift) };
            }
            release_backing(&l.backing, l.seg.base, l.seg.len);
        }
        // fds close as `lists` drops.
    }
}
