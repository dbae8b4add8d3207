//! Device mapping: DMA mappers (an IOMMU container, a device's address
//! translation table) told about every range of memory the provider maps,
//! the role of the reference's `rte_vfio_container_dma_map` and of the
//! memory-event callback its VFIO container registers.
//!
//! The model (replay, granularity, ordering, failure) is documented on
//! [`DmaMapper`], where users look for it.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::{Arc, Weak};

use super::events::{hold_panic, InCallback, PanicPayload};
use super::{lock, Deferred, Inner, Provider, State};
use crate::error::human;
use crate::table::Segment;
use crate::Iova;

/// A range of memory a device may be given: `len` bytes at `va`, at
/// `iova` for the device (`None`: memory without an IOVA).
///
/// Both the VA and the IOVA range are contiguous; `len` is a multiple of
/// `page_size`. See [`DmaMapper`] for the granularity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct DmaRange {
    /// First byte, in this process.
    pub va: usize,
    /// First byte, for the device; `None` for memory without an IOVA
    /// (external memory registered without IOVAs, pages the page map gave
    /// no frame for).
    pub iova: Option<Iova>,
    /// Length in bytes.
    pub len: usize,
    /// Size of the pages under the range, in bytes.
    pub page_size: usize,
    /// Whether it is external memory (registered, not the provider's own).
    pub external: bool,
}

impl DmaRange {
    /// One past the last byte, in this process.
    pub fn va_end(&self) -> usize {
        self.va + self.len
    }
}

impl fmt::Display for DmaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}+{}", self.va, human(self.len))?;
        match self.iova {
            Some(i) => write!(f, " (IOVA {:#x})", i.0),
            None => write!(f, " (no IOVA)"),
        }
    }
}

/// What maps memory for a device: given every range the provider maps and
/// unmaps, with its VA, IOVA and length.
///
/// A mapper registered with [`Provider::register_dma_mapper`] is given, in
/// this order:
///
/// 1. **replay**: every range the provider maps at that moment (its own
///    page runs and registered external memory), by ascending VA;
/// 2. then every range mapped later (growth, external registration), and
///    the unmap of every range that goes (shrink, hole punch, external
///    unregistration);
/// 3. when its [`DmaMapperGuard`] drops (or the provider does, for a kept
///    mapper): the unmap of every range it still holds.
///
/// **Granularity.** A [`DmaRange`] is VA-contiguous and IOVA-contiguous
/// (or has no IOVA at all), inside one page list, and is unmapped exactly
/// as it was mapped: the mapper's `unmap` receives a range equal to one it
/// was given by `map`, never a part or a union of ranges (VFIO type1 cannot
/// unmap part of a mapping). The provider coalesces what it can keep whole:
///
/// | memory | one range per |
/// |---|---|
/// | own pages, provider with no kept minimum | IOVA-contiguous run of the pages one allocation mapped |
/// | own pages, provider with [`min_keep`](crate::ProviderBuilder::min_keep) | page (a freed chunk keeps pages one by one, so any page may go alone) |
/// | external memory | IOVA-contiguous run of the registered range (it goes whole) |
/// | external memory without IOVAs | the registered range (`iova: None`) |
///
/// Memory without an IOVA comes with `iova: None`: a mapper in IOVA-as-VA
/// mode maps it at its VA, one that needs physical addresses refuses it or
/// accepts it without mapping (either way it is unmapped like any other).
///
/// **Ordering and locking.** Mappers run under the provider's lock, which
/// is what makes "map before use, unmap after the last user" hold without
/// a window: a range is mapped after its pages are and before they are
/// handed out (before its Alloc event fires), and unmapped after its Free
/// event has fired and its last user has let go, before the pages are
/// released to the system. The replay runs under the same lock, so an
/// allocation racing a registration is either replayed or given after it,
/// never both and never neither. A mapper must not call the provider:
/// everything it needs is in the [`DmaRange`]. Allocating or registering
/// from inside a mapper returns a `Reentrant` error; a chunk or guard
/// dropped inside one does its work once the lock is released; other calls
/// that take the lock (walks, lookups by address) would deadlock.
/// Translation ([`Provider::virt2iova`]) takes no lock and is fine.
///
/// **Failure.** A mapper that refuses a range during replay makes the
/// registration fail ([`DmaRegisterError::Map`]) after the ranges the
/// replay had given it are unmapped again: no mapper is left half
/// registered. One that refuses a range of growth refuses the allocation
/// ([`AllocError::DmaMap`](crate::AllocError::DmaMap), naming the mapper
/// and the range): the mappers that took the range give it back, the
/// pages are unmapped, and the provider is as before (memory a device
/// cannot reach is of no use to a DMA user). External registration is
/// refused the same way ([`RegisterError::DmaMap`](crate::RegisterError::DmaMap)).
/// A mapper that panics is treated as one that refused (or, in `unmap`, as
/// one that returned); the provider finishes its bookkeeping, then the
/// panic goes on in the thread that called the provider.
///
/// **Cost.** The provider keeps its range table (one entry per range, the
/// table [`Provider::dma_ranges`] shows) whether or not a mapper is
/// registered, so that a replay gives the ranges as they were mapped; an
/// allocation that maps pages adds an entry per range, under the lock it
/// already holds to map them. Allocations served from mapped pages (the
/// kept minimum, external heaps) and translation do not touch it.
///
/// `unmap` is only ever given a range `map` accepted, and only once.
///
/// ```
/// use pktmem_hugemem::{DmaMapper, DmaRange, Provider};
/// use std::collections::BTreeMap;
/// use std::sync::{Arc, Mutex};
///
/// /// Keeps the device's view: IOVA-as-VA for memory without an IOVA.
/// #[derive(Default)]
/// struct Iommu(Mutex<BTreeMap<usize, (u64, usize)>>);
///
/// impl DmaMapper for Iommu {
///     fn map(&self, r: &DmaRange) -> std::io::Result<()> {
///         let iova = r.iova.map_or(r.va as u64, |i| i.0);
///         self.0.lock().unwrap().insert(r.va, (iova, r.len));
///         Ok(())
///     }
///     fn unmap(&self, r: &DmaRange) {
///         self.0.lock().unwrap().remove(&r.va);
///     }
///     fn label(&self) -> &str {
///         "iommu"
///     }
/// }
///
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let before = p.alloc(8192).unwrap();
/// let iommu = Arc::new(Iommu::default());
/// let guard = p.register_dma_mapper(iommu.clone()).unwrap(); // replays `before`
/// assert_eq!(iommu.0.lock().unwrap().len(), 1);
/// let after = p.alloc(4096).unwrap(); // mapped before it is handed out
/// let va = after.as_ptr().as_ptr() as usize;
/// assert_eq!(iommu.0.lock().unwrap()[&va], (after.iova().unwrap().0, 4096));
/// drop(after); // unmapped with its pages
/// assert_eq!(iommu.0.lock().unwrap().len(), 1);
/// drop(guard); // everything it still held
/// assert!(iommu.0.lock().unwrap().is_empty());
/// # drop(before);
/// ```
pub trait DmaMapper: Send + Sync {
    /// Maps `range` for the device. An error refuses it: the registration
    /// (during replay), the allocation or the external registration that
    /// brought the range fails, naming this mapper and the range.
    fn map(&self, range: &DmaRange) -> io::Result<()>;

    /// Unmaps `range`, one this mapper's `map` accepted. Cannot fail: the
    /// memory goes regardless (a mapper that cannot unmap can only report it).
    fn unmap(&self, range: &DmaRange);

    /// The mapper's name in errors and [`Provider::dma_mappers`] (default:
    /// its type's name).
    fn label(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

impl<T: DmaMapper + ?Sized> DmaMapper for Arc<T> {
    fn map(&self, range: &DmaRange) -> io::Result<()> {
        (**self).map(range)
    }
    fn unmap(&self, range: &DmaRange) {
        (**self).unmap(range);
    }
    fn label(&self) -> &str {
        (**self).label()
    }
}

/// The closures form of a mapper ([`Provider::register_dma_mapper_fn`]).
struct FnMapper<M, U> {
    label: String,
    map: M,
    unmap: U,
}

impl<M, U> DmaMapper for FnMapper<M, U>
where
    M: Fn(&DmaRange) -> io::Result<()> + Send + Sync,
    U: Fn(&DmaRange) + Send + Sync,
{
    fn map(&self, range: &DmaRange) -> io::Result<()> {
        (self.map)(range)
    }
    fn unmap(&self, range: &DmaRange) {
        (self.unmap)(range);
    }
    fn label(&self) -> &str {
        &self.label
    }
}

/// A mapper refused a range (or panicked while mapping it).
#[derive(Debug)]
#[non_exhaustive]
pub struct DmaMapError {
    /// The mapper's [`label`](DmaMapper::label).
    pub mapper: String,
    /// The range it refused.
    pub range: DmaRange,
    /// Why.
    pub source: io::Error,
}

impl fmt::Display for DmaMapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DMA mapper '{}' refused {}: {}",
            self.mapper, self.range, self.source
        )
    }
}

impl std::error::Error for DmaMapError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Why a mapper could not be registered (nothing stays mapped by it).
///
/// ```
/// use pktmem_hugemem::{DmaRegisterError, Provider};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let _c = p.alloc(4096).unwrap();
/// let e = p
///     .register_dma_mapper_fn("full", |_| Err(std::io::Error::other("no IOMMU slot")), |_| ())
///     .unwrap_err();
/// assert!(matches!(&e, DmaRegisterError::Map(m) if m.mapper == "full" && m.range.len == 4096));
/// assert!(e.to_string().starts_with("DMA mapper 'full' refused 0x"));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DmaRegisterError {
    /// The mapper refused a range the provider maps already (during the
    /// replay); the ranges the replay had given it were unmapped again.
    Map(DmaMapError),
    /// Called from inside a validator or a DMA mapper of the same
    /// provider, which run under the provider lock.
    Reentrant,
}

impl fmt::Display for DmaRegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DmaRegisterError::Map(e) => e.fmt(f),
            DmaRegisterError::Reentrant => f.write_str(
                "called from inside a validator or DMA mapper of the same provider (they run under the provider lock)",
            ),
        }
    }
}

impl std::error::Error for DmaRegisterError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DmaRegisterError::Map(e) => Some(e),
            DmaRegisterError::Reentrant => None,
        }
    }
}

/// One registered mapper.
pub(super) struct MapperEntry {
    mapper: Box<dyn DmaMapper>,
}

/// The mappers and what they hold, behind the provider lock.
#[derive(Default)]
pub(super) struct DmaState {
    /// The registered mappers, in registration order.
    mappers: Vec<Arc<MapperEntry>>,
    /// Every range the provider maps, by VA: the ranges do not overlap and
    /// cover every mapped page (own and external) exactly once; every
    /// registered mapper holds exactly these. Kept with no mapper
    /// registered too, so a replay gives the ranges as they were mapped
    /// (and as they will be unmapped).
    ranges: BTreeMap<usize, DmaRange>,
}

/// The registration of a DMA mapper: dropping it unmaps, from that mapper,
/// every range it still holds and unregisters it; [`keep`](Self::keep)
/// keeps it registered for the provider's life (the provider unmaps
/// everything from it when it drops).
///
/// ```
/// use pktmem_hugemem::Provider;
/// use std::sync::atomic::{AtomicIsize, Ordering};
/// use std::sync::Arc;
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// // Ranges the device holds. Relaxed: the mapper runs on the thread that
/// // calls the provider, this one; the count publishes nothing else.
/// let held = Arc::new(AtomicIsize::new(0));
/// let (m, u) = (held.clone(), held.clone());
/// p.register_dma_mapper_fn(
///     "count",
///     move |_| { m.fetch_add(1, Ordering::Relaxed); Ok(()) },
///     move |_| { u.fetch_sub(1, Ordering::Relaxed); },
/// )
/// .unwrap()
/// .keep();
/// let c = p.alloc(4096).unwrap();
/// assert_eq!(held.load(Ordering::Relaxed), 1);
/// drop(c);
/// assert_eq!(p.dma_mappers(), ["count"]);
/// drop(p); // the provider unmaps what its kept mappers hold
/// assert_eq!(held.load(Ordering::Relaxed), 0);
/// ```
#[must_use = "dropping the guard unmaps everything from the mapper at once (`keep()` keeps it)"]
pub struct DmaMapperGuard {
    provider: Weak<Inner>,
    entry: Arc<MapperEntry>,
    kept: bool,
}

impl DmaMapperGuard {
    /// The mapper's [`label`](DmaMapper::label).
    pub fn label(&self) -> &str {
        self.entry.mapper.label()
    }

    /// Keeps the mapper registered for the provider's life (the guard goes,
    /// the registration stays; the provider unmaps everything from the
    /// mapper when it drops).
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for DmaMapperGuard {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // The provider gone: it unmapped everything from its mappers.
        if let Some(inner) = self.provider.upgrade() {
            inner.drop_mapper(&self.entry);
        }
    }
}

impl fmt::Debug for DmaMapperGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DmaMapperGuard")
            .field("label", &self.label())
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Registers `mapper`: it is given every range the provider maps now
    /// (replay), then every range mapped and unmapped later, until the
    /// returned guard drops (see [`DmaMapper`] for the model).
    ///
    /// Pass an `Arc` of the mapper to keep a handle to it. Refused with
    /// [`DmaRegisterError::Map`] if the mapper refuses a range during the
    /// replay (after the replay's ranges are unmapped from it again).
    pub fn register_dma_mapper(
        &self,
        mapper: impl DmaMapper + 'static,
    ) -> Result<DmaMapperGuard, DmaRegisterError> {
        let entry = Arc::new(MapperEntry {
            mapper: Box::new(mapper),
        });
        self.inner.register_mapper(&entry)?;
        Ok(DmaMapperGuard {
            provider: Arc::downgrade(&self.inner),
            entry,
            kept: false,
        })
    }

    /// [`register_dma_mapper`](Self::register_dma_mapper) with closures:
    /// `map` maps a range (an error refuses it), `unmap` unmaps one `map`
    /// accepted; `label` names the mapper in errors.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocError, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// // A device window that reaches 8 KiB of memory at most.
    /// let window = std::sync::Mutex::new(0usize);
    /// let guard = p
    ///     .register_dma_mapper_fn(
    ///         "window",
    ///         move |r| {
    ///             let mut w = window.lock().unwrap();
    ///             if *w + r.len > 8192 {
    ///                 return Err(std::io::Error::other("window full"));
    ///             }
    ///             *w += r.len; // (a real one would give it back in unmap)
    ///             Ok(())
    ///         },
    ///         |_| (),
    ///     )
    ///     .unwrap();
    /// let a = p.alloc(8192).unwrap();
    /// let e = p.alloc(4096).unwrap_err(); // the device cannot reach it: refused
    /// assert!(matches!(&e, AllocError::DmaMap(m) if m.mapper == "window"));
    /// assert_eq!(p.mapped_bytes(), 8192); // the refused pages went back
    /// # drop((a, guard));
    /// ```
    pub fn register_dma_mapper_fn(
        &self,
        label: &str,
        map: impl Fn(&DmaRange) -> io::Result<()> + Send + Sync + 'static,
        unmap: impl Fn(&DmaRange) + Send + Sync + 'static,
    ) -> Result<DmaMapperGuard, DmaRegisterError> {
        self.register_dma_mapper(FnMapper {
            label: label.to_string(),
            map,
            unmap,
        })
    }

    /// The labels of the registered mappers, in registration order.
    pub fn dma_mappers(&self) -> Vec<String> {
        lock(&self.inner.state)
            .dma
            .mappers
            .iter()
            .map(|e| e.mapper.label().to_string())
            .collect()
    }

    /// The ranges every registered mapper holds, by VA: what a mapper
    /// registered now would be given by its replay. They cover every page
    /// [`walk_pages`](Self::walk_pages) reports, once.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc(3 * 4096).unwrap();
    /// let r = p.dma_ranges();
    /// assert_eq!((r.len(), r[0].va, r[0].len), (1, c.as_ptr().as_ptr() as usize, 3 * 4096));
    /// assert_eq!(r[0].iova, c.iova()); // heap memory: IOVA = VA
    /// ```
    pub fn dma_ranges(&self) -> Vec<DmaRange> {
        lock(&self.inner.state)
            .dma
            .ranges
            .values()
            .copied()
            .collect()
    }
}

/// Runs `f` (a mapper's method) marked as a callback of provider `id`
/// (so the provider refuses to be re-entered from it), catching a panic.
fn call<R>(id: u64, f: impl FnOnce() -> R) -> Result<R, PanicPayload> {
    let _in_mapper = InCallback::enter(id);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
}

/// `m.map(r)`; a panic is a refusal whose payload goes to `panic`.
fn map_one(
    id: u64,
    m: &MapperEntry,
    r: &DmaRange,
    panic: &mut Option<PanicPayload>,
) -> io::Result<()> {
    match call(id, || m.mapper.map(r)) {
        Ok(res) => res,
        Err(payload) => {
            panic.get_or_insert(payload);
            Err(io::Error::other("the mapper panicked"))
        }
    }
}

/// `m.unmap(r)`; a panic's payload goes to `panic`.
fn unmap_one(id: u64, m: &MapperEntry, r: &DmaRange, panic: &mut Option<PanicPayload>) {
    if let Err(payload) = call(id, || m.mapper.unmap(r)) {
        panic.get_or_insert(payload);
    }
}

/// The ranges of pages `[first, first + count)` of `seg`: one per page, or
/// one per IOVA-contiguous run (pages without IOVA run together).
fn ranges_of(seg: &Segment, first: usize, count: usize, per_page: bool) -> Vec<DmaRange> {
    let ps = seg.page_size();
    let mut out: Vec<DmaRange> = Vec::new();
    for i in first..first + count {
        let va = seg.base + (i << seg.shift);
        let iova = seg.page_iova(i);
        if let Some(last) = out.last_mut().filter(|_| !per_page) {
            let follows = match (last.iova, iova) {
                (Some(a), Some(b)) => a.0.checked_add(last.len as u64) == Some(b.0),
                (None, None) => true,
                _ => false,
            };
            if follows && last.va_end() == va {
                last.len += ps;
                continue;
            }
        }
        out.push(DmaRange {
            va,
            iova,
            len: ps,
            page_size: ps,
            external: seg.external,
        });
    }
    out
}

/// Gives `ranges` to every mapper of `dma` and records them; on a refusal
/// takes back what it gave and says who refused what. Panics go to `panic`.
fn add_ranges(
    id: u64,
    dma: &mut DmaState,
    ranges: &[DmaRange],
    panic: &mut Option<PanicPayload>,
) -> Result<(), DmaMapError> {
    for (i, r) in ranges.iter().enumerate() {
        for (j, m) in dma.mappers.iter().enumerate() {
            if let Err(source) = map_one(id, m, r, panic) {
                for m2 in dma.mappers[..j].iter().rev() {
                    unmap_one(id, m2, r, panic);
                }
                for r2 in ranges[..i].iter().rev() {
                    for m2 in dma.mappers.iter().rev() {
                        unmap_one(id, m2, r2, panic);
                    }
                }
                return Err(DmaMapError {
                    mapper: m.mapper.label().to_string(),
                    range: *r,
                    source,
                });
            }
        }
    }
    for r in ranges {
        let old = dma.ranges.insert(r.va, *r);
        debug_assert!(old.is_none(), "range {r} mapped twice");
    }
    Ok(())
}

/// Takes every range inside `[va, va + len)` from the mappers (last
/// registered first) and forgets it. Panics go to `panic`.
fn remove_span(
    id: u64,
    dma: &mut DmaState,
    va: usize,
    len: usize,
    panic: &mut Option<PanicPayload>,
) {
    let end = va + len;
    // Ranges do not overlap, so those meeting the span are the last ones
    // starting before its end, back to the first that ends after its start.
    let hit: Vec<usize> = dma
        .ranges
        .range(..end)
        .rev()
        .take_while(|(_, r)| r.va_end() > va)
        .map(|(&k, _)| k)
        .collect();
    let mut pieces = Vec::new();
    for k in hit {
        let Some(r) = dma.ranges.remove(&k) else {
            continue;
        };
        for m in dma.mappers.iter().rev() {
            unmap_one(id, m, &r, panic);
        }
        // A range is mapped and unmapped whole (see the granularity table);
        // should one ever reach past the span, what stays is mapped again
        // so that every mapped page stays covered.
        debug_assert!(
            r.va >= va && r.va_end() <= end,
            "DMA range {r} reaches past the unmapped span {va:#x}+{len:#x}"
        );
        if r.va < va {
            pieces.push(DmaRange {
                len: va - r.va,
                ..r
            });
        }
        if r.va_end() > end {
            let off = end - r.va;
            pieces.push(DmaRange {
                va: end,
                iova: r.iova.map(|i| i.offset(off as u64)),
                len: r.va_end() - end,
                ..r
            });
        }
    }
    for p in pieces {
        // A refusal rolls the piece back from every mapper: not recorded,
        // so the mappers still hold exactly what `ranges` says.
        let _ = add_ranges(id, dma, &[p], panic);
    }
}

impl Inner {
    /// Gives the freshly mapped own pages `[first, first + count)` of list
    /// `list` to the mappers (called by `map_pages` once their IOVAs are
    /// recorded, before anything can use them). On a refusal nothing of the
    /// run stays with a mapper.
    pub(super) fn dma_map_pages(
        &self,
        st: &mut State,
        list: usize,
        first: usize,
        count: usize,
    ) -> Result<(), DmaMapError> {
        let per_page = self.cfg.min_keep > 0;
        let ranges = ranges_of(&st.lists[list].seg, first, count, per_page);
        self.dma_add(st, &ranges)
    }

    /// Gives a whole external range (all its pages) to the mappers.
    pub(super) fn dma_map_external(
        &self,
        st: &mut State,
        seg: &Segment,
    ) -> Result<(), DmaMapError> {
        let ranges = ranges_of(seg, 0, seg.pages(), false);
        self.dma_add(st, &ranges)
    }

    fn dma_add(&self, st: &mut State, ranges: &[DmaRange]) -> Result<(), DmaMapError> {
        let mut panic = None;
        let r = add_ranges(self.id, &mut st.dma, ranges, &mut panic);
        if let Some(payload) = panic {
            // Resumed by `settle` once the bookkeeping is done.
            hold_panic(payload);
        }
        r
    }

    /// Takes `[va, va + len)` from the mappers (called by `unmap_pages` and
    /// `finish_removal` before the memory goes).
    pub(super) fn dma_unmap(&self, st: &mut State, va: usize, len: usize) {
        let mut panic = None;
        remove_span(self.id, &mut st.dma, va, len, &mut panic);
        if let Some(payload) = panic {
            hold_panic(payload);
        }
    }

    /// Replays the mapped ranges to `entry`, then registers it.
    fn register_mapper(&self, entry: &Arc<MapperEntry>) -> Result<(), DmaRegisterError> {
        if self.in_validator() {
            return Err(DmaRegisterError::Reentrant);
        }
        let mut st = lock(&self.state);
        let mut panic = None;
        let mut refused = None;
        let ranges: Vec<DmaRange> = st.dma.ranges.values().copied().collect();
        for (i, r) in ranges.iter().enumerate() {
            if let Err(source) = map_one(self.id, entry, r, &mut panic) {
                for r2 in ranges[..i].iter().rev() {
                    unmap_one(self.id, entry, r2, &mut panic);
                }
                refused = Some(DmaMapError {
                    mapper: entry.mapper.label().to_string(),
                    range: *r,
                    source,
                });
                break;
            }
        }
        if refused.is_none() {
            st.dma.mappers.push(entry.clone());
        }
        // `settle`: what the mapper dropped meanwhile (chunks, guards) goes now.
        let later = self.settle(st);
        if let Some(payload) = panic.or(later) {
            std::panic::resume_unwind(payload);
        }
        refused.map_or(Ok(()), |e| Err(DmaRegisterError::Map(e)))
    }

    /// Unregisters `entry` and unmaps from it everything it holds; from
    /// inside a validator or mapper (the lock held further up this thread),
    /// once the lock is released.
    fn drop_mapper(&self, entry: &Arc<MapperEntry>) {
        if self.in_validator() {
            self.defer(Deferred::DropMapper(entry.clone()));
            return;
        }
        let mut st = lock(&self.state);
        self.drop_mapper_locked(&mut st, entry);
        if let Some(payload) = self.settle(st) {
            if !std::thread::panicking() {
                std::panic::resume_unwind(payload);
            }
        }
    }

    /// [`drop_mapper`](Self::drop_mapper) with the lock held (a mapper's
    /// panic is held for `settle`).
    pub(super) fn drop_mapper_locked(&self, st: &mut State, entry: &Arc<MapperEntry>) {
        let Some(i) = st.dma.mappers.iter().position(|e| Arc::ptr_eq(e, entry)) else {
            return;
        };
        st.dma.mappers.remove(i);
        let mut panic = None;
        for r in st.dma.ranges.values().rev() {
            unmap_one(self.id, entry, r, &mut panic);
        }
        if let Some(payload) = panic {
            hold_panic(payload);
        }
    }
}

/// The provider is going: unmaps every range from every mapper (last
/// registered first) and drops them.
pub(super) fn release_all(id: u64, dma: &mut DmaState) {
    let mut panic = None;
    let mappers = std::mem::take(&mut dma.mappers);
    for m in mappers.iter().rev() {
        for r in dma.ranges.values().rev() {
            unmap_one(id, m, r, &mut panic);
        }
    }
    dma.ranges.clear();
    if let Some(payload) = panic {
        if !std::thread::panicking() {
            std::panic::resume_unwind(payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Calls in order: (mapper, map or unmap, VA).
    type Calls = Arc<Mutex<Vec<(&'static str, bool, usize)>>>;

    /// A mapper that logs its calls and refuses the VAs in `refuse`.
    struct Log {
        name: &'static str,
        refuse: Vec<usize>,
        calls: Calls,
    }

    impl DmaMapper for Log {
        fn map(&self, r: &DmaRange) -> io::Result<()> {
            if self.refuse.contains(&r.va) {
                return Err(io::Error::other("no"));
            }
            self.calls.lock().unwrap().push((self.name, true, r.va));
            Ok(())
        }
        fn unmap(&self, r: &DmaRange) {
            self.calls.lock().unwrap().push((self.name, false, r.va));
        }
        fn label(&self) -> &str {
            self.name
        }
    }

    const B: usize = 0x10_0000;

    /// Five 4 KiB pages at `B`: IOVAs 0x1000, 0x2000, (none), (none), 0x9000.
    fn segment() -> Segment {
        let seg = Segment::new(B, 5 * 4096, 12, None, false, 0);
        for (i, iova) in [Some(0x1000), Some(0x2000), None, None, Some(0x9000)]
            .into_iter()
            .enumerate()
        {
            seg.set_page_iova(i, iova.map(Iova));
        }
        seg
    }

    fn dma_with(mappers: Vec<(&'static str, Vec<usize>)>) -> (DmaState, Calls) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let mut dma = DmaState::default();
        for (name, refuse) in mappers {
            dma.mappers.push(Arc::new(MapperEntry {
                mapper: Box::new(Log {
                    name,
                    refuse,
                    calls: calls.clone(),
                }),
            }));
        }
        (dma, calls)
    }

    #[test]
    fn runs_coalesce_contiguous_iovas_and_pages_without_iova() {
        let seg = segment();
        let r = ranges_of(&seg, 0, 5, false);
        let got: Vec<_> = r.iter().map(|r| (r.va, r.iova, r.len)).collect();
        assert_eq!(
            got,
            [
                (B, Some(Iova(0x1000)), 2 * 4096),
                (B + 2 * 4096, None, 2 * 4096),
                (B + 4 * 4096, Some(Iova(0x9000)), 4096),
            ]
        );
        assert!(r.iter().all(|r| r.page_size == 4096 && !r.external));
        // Per page: one range each; a sub-run starts where asked.
        assert_eq!(ranges_of(&seg, 0, 5, true).len(), 5);
        let tail = ranges_of(&seg, 1, 2, false);
        assert_eq!(tail.len(), 2);
        assert_eq!((tail[0].va, tail[0].iova), (B + 4096, Some(Iova(0x2000))));
    }

    #[test]
    fn a_refusal_takes_back_exactly_what_was_given() {
        let seg = segment();
        let ranges = ranges_of(&seg, 0, 5, false);
        // "b" refuses the second range: "a" has it and the first, "b" the first.
        let (mut dma, calls) = dma_with(vec![("a", vec![]), ("b", vec![ranges[1].va])]);
        let mut panic = None;
        let e = add_ranges(7, &mut dma, &ranges, &mut panic).unwrap_err();
        assert_eq!((e.mapper.as_str(), e.range), ("b", ranges[1]));
        assert!(panic.is_none() && dma.ranges.is_empty());
        let (r0, r1) = (ranges[0].va, ranges[1].va);
        assert_eq!(
            *calls.lock().unwrap(),
            [
                ("a", true, r0),
                ("b", true, r0),
                ("a", true, r1),
                ("a", false, r1), // the refused range, from those that took it
                ("b", false, r0), // then the earlier ranges, last mapper first
                ("a", false, r0),
            ]
        );
    }

    #[test]
    fn a_span_takes_back_the_ranges_inside_it_last_mapper_first() {
        let seg = segment();
        let ranges = ranges_of(&seg, 0, 5, false);
        let (mut dma, calls) = dma_with(vec![("a", vec![]), ("b", vec![])]);
        let mut panic = None;
        add_ranges(7, &mut dma, &ranges, &mut panic).unwrap();
        calls.lock().unwrap().clear();
        // The last two ranges' span: the first stays.
        remove_span(7, &mut dma, B + 2 * 4096, 3 * 4096, &mut panic);
        assert_eq!(
            dma.ranges.values().copied().collect::<Vec<_>>(),
            [ranges[0]]
        );
        assert_eq!(
            *calls.lock().unwrap(),
            [
                ("b", false, ranges[2].va),
                ("a", false, ranges[2].va),
                ("b", false, ranges[1].va),
                ("a", false, ranges[1].va),
            ]
        );
        // A span holding no range takes nothing.
        calls.lock().unwrap().clear();
        remove_span(7, &mut dma, B + 3 * 4096, 4096, &mut panic);
        assert!(calls.lock().unwrap().is_empty());
        assert!(panic.is_none());
    }
}
