//! Populating a pool: placing objects in chunks of memory (caller memory,
//! anonymous memory, the hugepage provider, external memory), writing their
//! headers, running the pool's initialiser and storing them in the backend.

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use pktmem_hugemem::{AllocRequest, Chunk, PageSize, Provider};

use crate::error::PopulateError;
use crate::events::{self, MempoolEvent};
use crate::introspect::ObjInfo;
use crate::layout::{
    calc_mem_size, iova_add, ObjHeader, Placement, COOKIE_FREE, NO_IOVA, OBJ_HEADER_SIZE,
};
use crate::pool::{ChunkFree, ChunkRec, Population};
use crate::sync::{lock, Ordering};
use crate::{Iova, Mempool, Obj};

/// A run of memory objects may be placed in: IOVA-contiguous when `iova` is
/// `Some`; otherwise objects keep within its pages (unless the pool does
/// not track IOVAs).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Run {
    pub(crate) base: NonNull<u8>,
    pub(crate) iova: Option<Iova>,
    pub(crate) len: usize,
}

impl Mempool {
    /// Adds objects from IOVA-contiguous memory starting at `addr` (IOVA
    /// `iova`, `None` when unknown), `len` bytes. Objects may cross page
    /// boundaries inside it. Returns how many objects were added (0 when
    /// not even one fits; then `on_free` runs at once).
    ///
    /// # Safety
    /// - `addr..addr+len` is valid, writable memory, used by nothing else,
    ///   until `on_free` runs (or, without `on_free`, until the pool is freed);
    /// - when `iova` is `Some` it is the IO address of `addr`, contiguous
    ///   over `len`.
    ///
    /// ```
    /// use pktmem_mempool::{Iova, Mempool};
    /// let pool = Mempool::builder(4, 64).build_empty().unwrap();
    /// #[repr(align(64))]
    /// struct Mem([u8; 512]);
    /// let mem: &'static mut Mem = Box::leak(Box::new(Mem([0; 512])));
    /// // SAFETY: leaked memory, used only by the pool.
    /// let n = unsafe {
    ///     pool.populate_iova(std::ptr::NonNull::from(mem).cast(), Some(Iova(0x1000_0000)), 512, None)
    /// }.unwrap();
    /// assert_eq!(n, 4); // 512 B hold 4 elements of 128 B
    /// assert!(!pool.is_non_io());
    /// ```
    pub unsafe fn populate_iova(
        &self,
        addr: NonNull<u8>,
        iova: Option<Iova>,
        len: usize,
        on_free: Option<ChunkFree>,
    ) -> Result<usize, PopulateError> {
        let iova = iova.filter(|_| self.inner.iova_contig);
        let run = Run {
            base: addr,
            iova,
            len,
        };
        // SAFETY: forwarded to the caller.
        unsafe { self.populate_runs(&[run], 0, on_free) }
    }

    /// Adds objects from virtual memory `addr..addr+len` made of pages of
    /// `page_size` bytes, asking `lookup` for each page's IOVA and merging
    /// IOVA-consecutive pages; no object straddles two runs. Pages without
    /// an IOVA are not merged (objects stay within a page). A pool that does
    /// not [track IOVAs](Mempool::tracks_iova) takes the whole range as one
    /// run.
    ///
    /// # Safety
    /// The conditions of [`populate_iova`](Self::populate_iova), for the whole
    /// range, with `lookup` telling the truth.
    ///
    /// ```
    /// use pktmem_mempool::{Iova, Mempool};
    /// use std::ptr::NonNull;
    /// let pool = Mempool::builder(64, 64).build_empty().unwrap();
    /// let mem: &'static mut [u8] = Vec::leak(vec![0u8; 5 * 4096]);
    /// let base = mem.as_ptr() as u64;
    /// // Made-up IOVAs: every page maps where its address says.
    /// // SAFETY: leaked memory, used only by the pool; the lookup is consistent.
    /// let n = unsafe {
    ///     pool.populate_virt(NonNull::from(mem).cast(), 5 * 4096, 4096, |p| {
    ///         Some(Iova(0x4000_0000 + (p.as_ptr() as u64 - base)))
    ///     }, None)
    /// }.unwrap();
    /// assert_eq!(n, 64);
    /// ```
    pub unsafe fn populate_virt(
        &self,
        addr: NonNull<u8>,
        len: usize,
        page_size: usize,
        mut lookup: impl FnMut(NonNull<u8>) -> Option<Iova>,
        on_free: Option<ChunkFree>,
    ) -> Result<usize, PopulateError> {
        if !page_size.is_power_of_two() {
            if let Some(f) = on_free {
                f();
            }
            return Err(PopulateError::BadPageSize {
                name: self.inner.name.clone(),
                page_size,
            });
        }
        if !self.inner.iova_contig {
            let run = Run {
                base: addr,
                iova: None,
                len,
            };
            // SAFETY: forwarded to the caller.
            return unsafe { self.populate_runs(&[run], 0, on_free) };
        }
        let va = addr.as_ptr() as usize;
        let mut runs: Vec<Run> = Vec::new();
        let mut off = 0;
        while off < len {
            let pva = va + off;
            let plen = ((pva / page_size + 1) * page_size - pva).min(len - off);
            // SAFETY: `off < len`: inside the caller's range.
            let page = unsafe { addr.add(off) };
            let piova = lookup(page);
            match (runs.last_mut(), piova) {
                (Some(r), Some(p))
                    if r.iova.is_some_and(|ri| ri.0 + r.len as u64 == p.0)
                        && r.base.as_ptr() as usize + r.len == pva =>
                {
                    r.len += plen;
                }
                _ => runs.push(Run {
                    base: page,
                    iova: piova,
                    len: plen,
                }),
            }
            off += plen;
        }
        // SAFETY: forwarded to the caller; each run is IOVA-contiguous or a
        // single page without an IOVA.
        unsafe { self.populate_runs(&runs, page_size, on_free) }
    }

    /// Adds objects from fresh anonymous memory (`mmap`, small pages, no
    /// IOVA) for every object still missing; the memory is unmapped when
    /// the pool is freed. Returns how many objects were added.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(100, 64).build_empty().unwrap();
    /// assert_eq!(pool.populate_anonymous().unwrap(), 100);
    /// assert!(pool.populate_anonymous().is_err()); // full
    /// ```
    pub fn populate_anonymous(&self) -> Result<usize, PopulateError> {
        let missing = self.inner.size - self.populated();
        if missing == 0 {
            return Err(self.full_error());
        }
        let pg = crate::os::page_size();
        let total = self.inner.obj.total_size;
        let page = if self.inner.iova_contig { pg } else { 0 };
        let bytes = calc_mem_size(missing, total, page).ok_or_else(|| {
            PopulateError::ObjectLargerThanPage {
                name: self.inner.name.clone(),
                obj_size: total,
                page_size: pg,
            }
        })?;
        let bytes = (bytes + self.inner.obj.align).next_multiple_of(pg);
        let map = crate::os::AnonMap::new(bytes).map_err(PopulateError::Io)?;
        let addr = map.addr();
        let on_free: ChunkFree = Box::new(move || drop(map));
        // SAFETY: a fresh private mapping owned by `on_free`; no IOVAs.
        unsafe { self.populate_virt(addr, bytes, pg, |_| None, Some(on_free)) }
    }

    /// Populates the pool from `provider` until it holds all its objects.
    ///
    /// Asks for memory for every missing object in one chunk of whatever
    /// IOVA contiguity the provider can give; objects are placed in the
    /// chunk's IOVA-contiguous runs (never across two runs). When an
    /// allocation fails, the request is halved, down to one object; only when
    /// one object's worth cannot be had does it fail, keeping what it placed
    /// (the pool stays usable, partially populated). Returns the objects
    /// added.
    ///
    /// ```
    /// use pktmem_mempool::{Mempool, Provider};
    /// let provider = Provider::builder().quiet(true).build().unwrap();
    /// let pool = Mempool::builder(1000, 2048).build_empty().unwrap();
    /// let n = pool.populate_from_provider(&provider).unwrap();
    /// assert_eq!(n, 1000);
    /// pool.for_each_obj(|o| {
    ///     assert_eq!(o.iova, provider.virt2iova(o.obj.as_ptr()));
    /// });
    /// ```
    pub fn populate_from_provider(&self, provider: &Provider) -> Result<usize, PopulateError> {
        self.populate_from_provider_with(provider, None)
    }

    /// [`populate_from_provider`](Self::populate_from_provider), asking for
    /// pages of `page_size` first (`None`: chosen by [`auto_page_size`]).
    pub(crate) fn populate_from_provider_with(
        &self,
        provider: &Provider,
        page_size: Option<PageSize>,
    ) -> Result<usize, PopulateError> {
        let size = self.size();
        if self.populated() == size {
            return Err(self.full_error());
        }
        let obj = self.obj_size();
        let out_of_memory = |source| PopulateError::OutOfMemory {
            name: self.name().to_string(),
            needed: size,
            obj_size: obj.total_size,
            placed: self.populated(),
            source,
        };
        let configured = lock(&self.inner.population).populate_threads;
        let mut want = size - self.populated();
        let mut added = 0;
        let mut last_err = None;
        while self.populated() < size {
            want = want.min(size - self.populated());
            // No slack for aligning the first object: the request below is
            // aligned to `obj.align`, and so is every later run (a page).
            let bytes =
                calc_mem_size(want, obj.total_size, 0).ok_or_else(|| out_of_memory(None))?;
            let mut placed_here = None;
            for contiguous in [false, true] {
                // Fresh hugepages are zeroed by the kernel as they are
                // faulted in: by several threads for a big chunk.
                let mut req = AllocRequest::new(bytes)
                    .align(obj.align)
                    .iova_contiguous(contiguous)
                    .fault_threads(threads_for(configured, bytes));
                if let Some(ps) = page_size.or_else(|| auto_page_size(bytes)) {
                    req = req.page_size(ps);
                }
                match provider.alloc_with(&req) {
                    Ok(chunk) => {
                        let n = self.populate_chunk(chunk)?;
                        if n > 0 {
                            placed_here = Some(n);
                            break;
                        }
                        // Not even one object fit in a run (objects larger
                        // than a page): try an IOVA-contiguous chunk.
                    }
                    Err(e) => {
                        last_err = Some(e);
                        if !contiguous {
                            // A plain allocation failed: a contiguous one
                            // of the same size will too.
                            break;
                        }
                    }
                }
            }
            match placed_here {
                Some(n) => added += n,
                None if want > 1 => want = want.div_ceil(2),
                None => return Err(out_of_memory(last_err.map(Box::new))),
            }
        }
        Ok(added)
    }

    /// Places objects in a provider chunk's IOVA runs; the chunk is freed
    /// with the pool (or at once if nothing fits).
    fn populate_chunk(&self, chunk: Chunk) -> Result<usize, PopulateError> {
        let page = chunk.page_size();
        let base = chunk.as_ptr();
        let runs: Vec<Run> = if self.inner.iova_contig {
            chunk
                .segments()
                .map(|r| Run {
                    // SAFETY: each run lies inside the chunk, so its offset
                    // from the chunk's start is in bounds (the pointer keeps
                    // the chunk's provenance).
                    base: unsafe { base.add(r.va - base.as_ptr() as usize) },
                    iova: r.iova,
                    len: r.len,
                })
                .collect()
        } else {
            vec![Run {
                base,
                iova: None,
                len: chunk.mapped_len(),
            }]
        };
        let on_free: ChunkFree = Box::new(move || drop(chunk));
        // SAFETY: the chunk's pages are owned by `on_free` until the pool
        // drops it; each run is IOVA-contiguous per the provider (or a single
        // page without an IOVA).
        unsafe { self.populate_runs(&runs, page, Some(on_free)) }
    }

    /// Populates from external memory registered with `provider`
    /// ([`Provider::register_external`]), looking each page's IOVA up in it.
    ///
    /// The pool takes a **lease** on the registration (labelled with the
    /// pool's name) for as long as it uses the memory: while the pool lives,
    /// unregistering the memory is refused with
    /// `UnregisterError::InUse` naming the pool, and dropping the
    /// registration waits for the pool to go. Memory that is not inside one
    /// registration is refused ([`PopulateError::NotRegistered`]; `on_free`
    /// runs at once).
    ///
    /// # Safety
    /// The conditions of [`populate_iova`](Self::populate_iova) for the range.
    ///
    /// ```
    /// use pktmem_mempool::{Mempool, Provider};
    /// use std::ptr::NonNull;
    /// let provider = Provider::builder().heap_backed(1 << 20).quiet(true).build().unwrap();
    /// let mem: &'static mut [u8] = Vec::leak(vec![0u8; 5 * 4096]);
    /// let off = mem.as_ptr().align_offset(4096);
    /// let base = NonNull::from(&mut mem[off]);
    /// let ext = provider.register_external(base.as_ptr(), 4 * 4096, 4096, None).unwrap();
    /// let pool = Mempool::builder(16, 64).name("ext").build_empty().unwrap();
    /// // SAFETY: leaked memory, used only by the pool.
    /// unsafe { pool.populate_external(&provider, base, 4 * 4096, 4096, None) }.unwrap();
    /// let e = ext.unregister().unwrap_err(); // the pool still uses it
    /// assert!(e.to_string().contains("pool 'ext'"), "{e}");
    /// drop(pool);
    /// ext.unregister().unwrap();
    /// ```
    pub unsafe fn populate_external(
        &self,
        provider: &Provider,
        addr: NonNull<u8>,
        len: usize,
        page_size: usize,
        on_free: Option<ChunkFree>,
    ) -> Result<usize, PopulateError> {
        let user = format!("pool '{}'", self.inner.name);
        let lease = match provider.lease_external(addr.as_ptr(), len, &user) {
            Ok(lease) => lease,
            Err(source) => {
                if let Some(f) = on_free {
                    f();
                }
                return Err(PopulateError::NotRegistered {
                    name: self.inner.name.clone(),
                    source,
                });
            }
        };
        // The lease goes with the chunk: released when the pool gives the
        // memory back (or at once if nothing fits), before the caller's own
        // callback (which may free the memory).
        let on_free: ChunkFree = Box::new(move || {
            drop(lease);
            if let Some(f) = on_free {
                f();
            }
        });
        let lookup = |p: NonNull<u8>| provider.virt2iova(p.as_ptr());
        // SAFETY: forwarded to the caller.
        unsafe { self.populate_virt(addr, len, page_size, lookup, Some(on_free)) }
    }

    fn full_error(&self) -> PopulateError {
        PopulateError::Full {
            name: self.inner.name.clone(),
            size: self.inner.size,
        }
    }

    /// Places objects in `runs` (each IOVA-contiguous, or one page when it
    /// has no IOVA and `page_size != 0`); `on_free` goes with the last record.
    ///
    /// The objects of all the runs are placed first (headers written, `init`
    /// run), on several threads when the pool says so ([`threads_for`]),
    /// each over its own page-aligned part of the memory; then they are
    /// stored in the backend in address order, on this thread.
    ///
    /// # Safety
    /// The conditions of `populate_iova` for every run.
    pub(crate) unsafe fn populate_runs(
        &self,
        runs: &[Run],
        page_size: usize,
        on_free: Option<ChunkFree>,
    ) -> Result<usize, PopulateError> {
        let inner = &*self.inner;
        let mut guard = lock(&inner.population);
        let Population {
            chunks,
            init,
            populate_threads,
        } = &mut *guard;
        let populate_threads = *populate_threads;
        // Relaxed: written only under the population lock, which we hold.
        let mut populated = inner.populated.load(Ordering::Relaxed);
        if populated == inner.size {
            drop(guard);
            if let Some(f) = on_free {
                f();
            }
            return Err(self.full_error());
        }
        let before = chunks.len();
        let mut added = 0;
        let mut got_iova = false;
        // A panicking `init` unwinds out of here: nothing of this call is
        // stored or recorded, and the memory goes back (below).
        let placed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // SAFETY: forwarded from the caller.
            let (n, io) = unsafe {
                self.place_and_store(runs, page_size, populated, init, populate_threads, chunks)
            };
            populated += n;
            added += n;
            got_iova = io;
            // Relaxed: ordered by the population lock for writers;
            // readers only use it as a count.
            inner.populated.store(populated, Ordering::Relaxed);
        }));
        if chunks.len() > before {
            if let Some(c) = chunks.last_mut() {
                c.on_free = on_free;
            }
        } else if let Some(f) = on_free {
            drop(guard);
            f();
            if let Err(payload) = placed {
                std::panic::resume_unwind(payload);
            }
            return Ok(0);
        }
        if got_iova && inner.iova_contig {
            // Relaxed: an informational state flag.
            inner.non_io.store(false, Ordering::Relaxed);
        }
        if let Err(payload) = placed {
            drop(guard);
            std::panic::resume_unwind(payload);
        }
        let full = populated == inner.size;
        drop(guard);
        if full && added > 0 {
            events::fire(MempoolEvent::Ready, &inner.event_info());
        }
        Ok(added)
    }

    /// The work of [`populate_runs`](Self::populate_runs) under the lock:
    /// places the objects of `runs` after the `populated` ones (on several
    /// threads as [`threads_for`] says), stores them in the backend, and
    /// records a chunk for each run that got objects. Returns the objects
    /// stored and whether any has an IOVA.
    ///
    /// # Safety
    /// The conditions of `populate_iova` for every run; `populated` is the
    /// pool's count, under the population lock.
    unsafe fn place_and_store(
        &self,
        runs: &[Run],
        page_size: usize,
        populated: usize,
        init: &mut Option<ObjInit>,
        populate_threads: usize,
        chunks: &mut Vec<ChunkRec>,
    ) -> (usize, bool) {
        let inner = &*self.inner;
        let plans = self.plan_runs(runs, page_size, inner.size - populated);
        let total: usize = plans.iter().map(|p| p.count).sum();
        let bytes: usize = plans.iter().map(|p| p.run.len).sum();
        let threads = match init {
            Some(ObjInit::Sequential(_)) => 1,
            _ => threads_for(populate_threads, bytes),
        };
        let split = page_size.max(crate::os::page_size());
        let pieces = cut_pieces(&plans, threads, split, bytes);
        let mut objs: Vec<Obj> = Vec::with_capacity(total);
        let out = &mut objs.spare_capacity_mut()[..total];
        let writer = Writer {
            plans: &plans,
            pool: std::sync::Arc::as_ptr(&self.inner).cast(),
            header: inner.obj.header_size,
            elt_size: inner.obj.elt_size,
            first_index: populated,
        };
        match init.as_mut() {
            Some(ObjInit::Sequential(f)) => {
                // SAFETY: the runs are the caller's (forwarded); the
                // pieces cover the planned objects in order, once.
                unsafe { writer.write_pieces(&pieces, out, &mut InitRef::Seq(&mut **f)) };
            }
            shared => {
                let f = match shared {
                    Some(ObjInit::Shared(f)) => Some(&**f),
                    _ => None,
                };
                // SAFETY: as above.
                unsafe { writer.write_parallel(&pieces, out, threads, f) };
            }
        }
        // SAFETY: the pieces wrote all `total` slots (a panic in `init`
        // unwinds past this line, the length staying 0).
        unsafe { objs.set_len(total) };
        let mut stored = 0;
        for batch in objs.chunks(STORE_BATCH) {
            if !inner.store_new(batch) {
                break;
            }
            stored += batch.len();
        }
        let mut next_index = populated;
        let mut got_iova = false;
        for plan in &plans {
            let count = stored.saturating_sub(plan.first).min(plan.count);
            if count == 0 {
                continue;
            }
            chunks.push(ChunkRec {
                base: plan.run.base,
                iova: plan.run.iova,
                len: plan.run.len,
                first_index: next_index,
                count,
                placement: plan.placement,
                on_free: None,
            });
            next_index += count;
            got_iova |= plan.run.iova.is_some();
        }
        (stored, got_iova)
    }

    /// How the objects go in `runs`, at most `remaining` of them: each
    /// run's placement, object count and the index (in this call) of its
    /// first object. Arithmetic only: no memory is touched.
    fn plan_runs(&self, runs: &[Run], page_size: usize, remaining: usize) -> Vec<RunPlan> {
        let inner = &*self.inner;
        let mut plans = Vec::with_capacity(runs.len());
        let mut first = 0;
        for run in runs {
            let left = remaining - first;
            if left == 0 {
                break;
            }
            // Objects may straddle pages only in IOVA-contiguous runs (or
            // when the pool tracks no IOVA); single pages keep them in.
            let placement = Placement {
                size: inner.obj,
                page_size: if run.iova.is_none() && inner.iova_contig {
                    page_size
                } else {
                    0
                },
            };
            let va = run.base.as_ptr() as usize;
            let count = count_objects(&placement, va, run.len, left);
            if count > 0 {
                plans.push(RunPlan {
                    run: *run,
                    placement,
                    first,
                    count,
                });
                first += count;
            }
        }
        plans
    }
}

/// How a pool initialises its objects (see [`MempoolBuilder::obj_init`](crate::MempoolBuilder::obj_init)
/// and [`obj_init_shared`](crate::MempoolBuilder::obj_init_shared)).
pub(crate) enum ObjInit {
    /// Called on one thread, in population order.
    Sequential(Box<SeqInit>),
    /// May be called on several threads at once, each object once.
    Shared(Box<SharedInit>),
}

/// An initialiser called on one thread.
type SeqInit = dyn FnMut(&ObjInfo, &mut [MaybeUninit<u8>]) + Send;

/// An initialiser several populating threads may call at once.
type SharedInit = dyn Fn(&ObjInfo, &mut [MaybeUninit<u8>]) + Send + Sync;

/// The initialiser one populating thread calls.
enum InitRef<'a> {
    Seq(&'a mut SeqInit),
    Shared(Option<&'a SharedInit>),
}

/// Objects in one batch handed to the backend while populating.
const STORE_BATCH: usize = 512;

/// Memory smaller than this is populated by the calling thread alone
/// unless the pool was told a thread count: a thread costs tens of
/// microseconds to start, a megabyte of fresh hugepage memory about a
/// hundred to fault in.
pub(crate) const PARALLEL_MIN_BYTES: usize = 16 << 20;

/// At most this many threads populate a pool that was not told a count:
/// faulting and writing fresh memory is bound by memory bandwidth, which a
/// few cores use up.
pub(crate) const MAX_AUTO_THREADS: usize = 8;

/// The threads that populate `bytes` of memory: the count the pool was
/// given (`configured`, 0 when none), else the machine's cores (at most
/// [`MAX_AUTO_THREADS`]) for [`PARALLEL_MIN_BYTES`] or more, else 1.
pub(crate) fn threads_for(configured: usize, bytes: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    if bytes < PARALLEL_MIN_BYTES {
        return 1;
    }
    std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_AUTO_THREADS))
}

/// The page size a pool populated from a provider asks for first when it
/// was not told one: 1 GiB pages for `bytes` that fill at least 7/8 of the
/// last of them, when the system has that many free (and not promised);
/// else `None` (the provider's preferred sizes). Bigger pages mean fewer
/// faults, page records and IOVA runs, but the kernel zeroes a whole page
/// at once, so a mostly empty one costs more than it saves.
pub(crate) fn auto_page_size(bytes: usize) -> Option<PageSize> {
    let gib = PageSize::Huge1G.bytes();
    let pages = bytes.div_ceil(gib);
    let waste = pages * gib - bytes;
    if bytes < gib - gib / 8 || waste > gib / 8 {
        return None;
    }
    let free = pktmem_hugemem::inventory()
        .iter()
        .find(|h| h.page_size == gib)
        .map_or(0, |h| h.free.saturating_sub(h.reserved));
    (free >= pages as u64).then_some(PageSize::Huge1G)
}

/// One run's share of a populate call.
struct RunPlan {
    run: Run,
    placement: Placement,
    /// Index (among this call's objects) of the run's first object.
    first: usize,
    /// Objects placed in the run.
    count: usize,
}

/// A piece of one run that one thread writes: `n` objects from the one at
/// offset `off0` (index `k0` in the run).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Piece {
    plan: usize,
    k0: usize,
    off0: usize,
    n: usize,
}

/// Objects `placement` puts in `va..va + len`, at most `max`.
fn count_objects(placement: &Placement, va: usize, len: usize, max: usize) -> usize {
    if placement.page_size == 0 {
        let first = va.next_multiple_of(placement.size.align) - va;
        return max.min(len.saturating_sub(first) / placement.size.total_size);
    }
    placement.for_each(va, len, max, |_| ())
}

/// Cuts the planned objects into pieces for `threads` threads: runs longer
/// than a thread's share of `bytes` are cut at `split`-aligned addresses
/// ([`split_run`]); the others are one piece each. In population order.
fn cut_pieces(plans: &[RunPlan], threads: usize, split: usize, bytes: usize) -> Vec<Piece> {
    let share = (bytes / threads.max(1)).max(split);
    let mut pieces = Vec::with_capacity(plans.len());
    for (i, plan) in plans.iter().enumerate() {
        let va = plan.run.base.as_ptr() as usize;
        let parts = plan.run.len.div_ceil(share);
        let cuts = split_run(&plan.placement, va, plan.run.len, plan.count, parts, split);
        pieces.extend(cuts.windows(2).map(|w| Piece {
            plan: i,
            k0: w[0].0,
            off0: w[0].1,
            n: w[1].0 - w[0].0,
        }));
    }
    pieces
}

/// Cuts the `count` objects `placement` puts in `va..va + len` into up to
/// `parts` parts at `split`-aligned addresses: each part holds the objects
/// that start in its range, so with `split` a page, a page is written (and
/// first touched) by one part only, save an object that straddles a
/// boundary. Returns each part's (index of its first object in the run,
/// offset of that object), then (`count`, `len`).
fn split_run(
    placement: &Placement,
    va: usize,
    len: usize,
    count: usize,
    parts: usize,
    split: usize,
) -> Vec<(usize, usize)> {
    let first = va.next_multiple_of(placement.size.align) - va;
    let total = placement.size.total_size;
    // Boundaries: offsets of the split-aligned addresses at or after the
    // even cuts, increasing, inside the run.
    let bounds: Vec<usize> = (1..parts)
        .filter_map(|t| {
            let cut = va.checked_add(t.checked_mul(len)? / parts)?;
            Some(cut.checked_next_multiple_of(split)? - va)
        })
        .filter(|&b| b > first && b < len)
        .collect();
    let mut out = vec![(0, first)];
    if bounds.is_empty() {
        out.push((count, len));
        return out;
    }
    if placement.page_size == 0 {
        // Objects back to back: the first object at or after a boundary
        // is arithmetic.
        for b in bounds {
            let k = (b - first).div_ceil(total);
            if k > out.last().map_or(0, |p| p.0) && k < count {
                out.push((k, first + k * total));
            }
        }
    } else {
        // Objects skip page boundaries: walk the placement (arithmetic
        // only, nothing is touched) to the first object past each boundary.
        let mut next = 0;
        let mut k = 0;
        placement.for_each(va, len, count, |off| {
            let mut crossed = false;
            while next < bounds.len() && off >= bounds[next] {
                next += 1;
                crossed = true;
            }
            if crossed && k > out.last().map_or(0, |p| p.0) {
                out.push((k, off));
            }
            k += 1;
        });
    }
    out.push((count, len));
    out
}

/// Writes the headers of a populate call's objects and initialises them;
/// shared by the populating threads, each over its own pieces.
struct Writer<'a> {
    plans: &'a [RunPlan],
    /// The pool's shared state, written into each header.
    pool: *const (),
    header: usize,
    elt_size: usize,
    /// Population index of the call's first object.
    first_index: usize,
}

// SAFETY: the writer holds addresses and the plan only; the threads it is
// shared with write disjoint objects (`write_piece`'s contract), and
// nothing is read through `pool` here.
unsafe impl Sync for Writer<'_> {}

impl Writer<'_> {
    /// Places the objects of `piece`: writes each header, runs `init`, and
    /// fills `out` (`piece.n` slots).
    ///
    /// # Safety
    /// - the piece's run is memory the pool may write (the conditions of
    ///   `populate_iova`) and the piece is one `cut_pieces` made of it;
    /// - no other thread writes those objects meanwhile.
    unsafe fn write_piece(
        &self,
        piece: Piece,
        out: &mut [MaybeUninit<Obj>],
        init: &mut InitRef<'_>,
    ) {
        let plan = &self.plans[piece.plan];
        let run = &plan.run;
        let va = run.base.as_ptr() as usize;
        let first_index = self.first_index + plan.first + piece.k0;
        let mut k = 0;
        // Resuming the walk at an object's start reproduces the walk from
        // the run's start: its only state is the offset.
        plan.placement
            .for_each(va + piece.off0, run.len - piece.off0, piece.n, |o| {
                let off = piece.off0 + o;
                // SAFETY: `off + total_size <= len` (placement), so the
                // element lies in the run (caller's memory).
                let body = unsafe { run.base.add(off + self.header) };
                let iova = iova_add(run.iova, off + self.header);
                let hdr = ObjHeader {
                    pool: self.pool,
                    iova: iova.map_or(NO_IOVA, |i| i.0),
                    cookie: COOKIE_FREE,
                };
                // SAFETY: the header lies in the element, before the body
                // (`header_size >= OBJ_HEADER_SIZE`), in memory the caller
                // gave the pool, written by this thread alone; aligned to 8
                // (bodies are aligned to 8 at least, and the header size is a
                // multiple of 8); `write_pieces` fences before returning.
                unsafe { write_obj_header(body.as_ptr(), self.header, hdr) };
                let obj = Obj::from_non_null(body);
                let info = ObjInfo {
                    obj,
                    iova,
                    index: first_index + k,
                };
                let body = || {
                    // SAFETY: the body is `elt_size` bytes of the caller's
                    // memory, owned by the pool, not yet handed out, and
                    // written by this thread only.
                    unsafe { std::slice::from_raw_parts_mut(body.as_ptr().cast(), self.elt_size) }
                };
                match init {
                    InitRef::Seq(f) => f(&info, body()),
                    InitRef::Shared(Some(f)) => f(&info, body()),
                    InitRef::Shared(None) => {}
                }
                out[k].write(obj);
                k += 1;
            });
        assert_eq!(
            k, piece.n,
            "the placement walk finds the objects it counted"
        );
    }

    /// [`write_piece`](Self::write_piece) for each of `pieces` in order.
    ///
    /// # Safety
    /// `write_piece`'s conditions for every piece; `out` has one slot per
    /// object of the pieces, in order.
    unsafe fn write_pieces(
        &self,
        pieces: &[Piece],
        out: &mut [MaybeUninit<Obj>],
        init: &mut InitRef<'_>,
    ) {
        // Ordering: the object headers (`write_obj_header`) and maybe the
        // initialiser write with non-temporal stores, which are weakly
        // ordered; this thread fences them once, after its last object
        // (also when `init` panics), before returning. Every object is
        // published after that: this thread's ones by its own later stores
        // into the backend, another thread's ones after the join (which
        // orders its fence before the joiner's stores).
        let _fence = FenceOnDrop;
        let mut rest = out;
        for &piece in pieces {
            let (part, tail) = rest.split_at_mut(piece.n);
            // SAFETY: forwarded.
            unsafe { self.write_piece(piece, part, init) };
            rest = tail;
        }
    }

    /// [`write_pieces`](Self::write_pieces) on up to `threads` threads: the
    /// pieces are dealt out in order, about the same number of objects to
    /// each; this thread takes the first share, and any share whose thread
    /// the system cannot start. A panic in `init` on any thread is resumed
    /// here once all have finished.
    ///
    /// # Safety
    /// As `write_pieces`.
    unsafe fn write_parallel(
        &self,
        pieces: &[Piece],
        out: &mut [MaybeUninit<Obj>],
        threads: usize,
        init: Option<&SharedInit>,
    ) {
        let total: usize = pieces.iter().map(|p| p.n).sum();
        // Shares: runs of pieces, cut where the objects so far pass the
        // next even share.
        let mut shares: Vec<(&[Piece], &mut [MaybeUninit<Obj>])> = Vec::new();
        let (mut from, mut acc, mut rest) = (0, 0, out);
        for (i, p) in pieces.iter().enumerate() {
            acc += p.n;
            let goal = total * (shares.len() + 1) / threads.max(1);
            if acc >= goal || i + 1 == pieces.len() {
                let n: usize = pieces[from..=i].iter().map(|p| p.n).sum();
                let (part, tail) = rest.split_at_mut(n);
                shares.push((&pieces[from..=i], part));
                rest = tail;
                from = i + 1;
            }
        }
        if shares.len() <= 1 {
            let mut init = InitRef::Shared(init);
            for (ps, part) in shares {
                // SAFETY: forwarded.
                unsafe { self.write_pieces(ps, part, &mut init) };
            }
            return;
        }
        let mut shares = shares.into_iter();
        let mine = shares.next();
        std::thread::scope(|s| {
            let mut handles = Vec::new();
            let mut inline = Vec::new();
            for (ps, part) in shares {
                // Sent as an address and a length, so that a share whose
                // thread cannot be started stays with this thread.
                let (ptr, n) = (SendPtr(part.as_mut_ptr()), part.len());
                let job = move || {
                    let ptr = ptr;
                    // SAFETY: `ptr..ptr + n` is this share of `out`, borrowed
                    // for the scope and given to this thread alone.
                    let part = unsafe { std::slice::from_raw_parts_mut(ptr.0, n) };
                    // SAFETY: forwarded; the shares are disjoint.
                    unsafe { self.write_pieces(ps, part, &mut InitRef::Shared(init)) };
                };
                match std::thread::Builder::new()
                    .name("pktmem-populate".into())
                    .spawn_scoped(s, job)
                {
                    Ok(h) => handles.push(h),
                    Err(_) => inline.push((ps, ptr, n)),
                }
            }
            let mut panic = None;
            let mut run_here = |ps: &[Piece], part: &mut [MaybeUninit<Obj>]| {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    // SAFETY: forwarded; the shares are disjoint.
                    unsafe { self.write_pieces(ps, part, &mut InitRef::Shared(init)) };
                }));
                if let Err(p) = r {
                    panic.get_or_insert(p);
                }
            };
            if let Some((ps, part)) = mine {
                run_here(ps, part);
            }
            for (ps, ptr, n) in inline {
                // SAFETY: as in the thread's job: this share of `out`, given
                // to no thread (its spawn failed).
                let part = unsafe { std::slice::from_raw_parts_mut(ptr.0, n) };
                run_here(ps, part);
            }
            for h in handles {
                if let Err(p) = h.join() {
                    panic.get_or_insert(p);
                }
            }
            if let Some(p) = panic {
                std::panic::resume_unwind(p);
            }
        });
    }
}

/// Writes `hdr` before the object body at `body`. When the element's
/// header area ends in a whole cache line of its own (`header >= 64`, the
/// body 64-aligned), that line is written whole with non-temporal stores
/// (padding zeroed): fresh pool memory is cold, and a plain store would
/// first read the line in.
///
/// # Safety
/// - the `header` bytes before `body` are the element's header area,
///   writable and accessed by no other thread, `header >= OBJ_HEADER_SIZE`,
///   `body` 8-aligned;
/// - the calling thread calls [`store_fence`] before the object is
///   published or the memory accessed again.
#[allow(clippy::cast_ptr_alignment)] // aligned: see the safety conditions
unsafe fn write_obj_header(body: *mut u8, header: usize, hdr: ObjHeader) {
    #[cfg(target_arch = "x86_64")]
    if header >= 64 && (body as usize) % 64 == 0 {
        use std::arch::x86_64::_mm_stream_si64;
        const PAD: usize = (64 - OBJ_HEADER_SIZE) / 8;
        // SAFETY: the 64 bytes before `body` are the end of the header area
        // (`header >= 64`), 64-aligned, ours (caller).
        let line = unsafe { body.sub(64) }.cast::<i64>();
        let words = std::ptr::from_ref(&hdr).cast::<i64>();
        for i in 0..PAD {
            // SAFETY: inside the line, 8-aligned; padding nothing reads.
            unsafe { _mm_stream_si64(line.add(i), 0) };
        }
        for i in 0..OBJ_HEADER_SIZE / 8 {
            // SAFETY: `ObjHeader` is three 8-byte words (no padding); the
            // destination is its place at the end of the line.
            unsafe { _mm_stream_si64(line.add(PAD + i), words.add(i).read()) };
        }
        return;
    }
    let _ = header;
    // SAFETY: forwarded (caller).
    unsafe { ObjHeader::of(body).write(hdr) };
}

/// Calls [`store_fence`] when dropped (on return or unwind).
struct FenceOnDrop;

impl Drop for FenceOnDrop {
    fn drop(&mut self) {
        store_fence();
    }
}

/// Orders this thread's non-temporal stores before its later stores: on
/// `x86_64` an `sfence`; elsewhere nothing (no non-temporal stores are
/// used there).
fn store_fence() {
    // SAFETY: `sfence` is part of SSE, which every `x86_64` CPU has.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_sfence();
    }
}

/// A share of the populated objects' slots, sent to its thread.
#[derive(Clone, Copy)]
struct SendPtr(*mut MaybeUninit<Obj>);

// SAFETY: each `SendPtr` names a share of the slots that exactly one thread
// writes (`write_parallel`), while the slice it comes from is borrowed.
unsafe impl Send for SendPtr {}
