//! Populating a pool: placing objects in chunks of memory (caller memory,
//! anonymous memory, the hugepage provider, external memory), writing their
//! headers, running the pool's initialiser and storing them in the backend.

use std::ptr::NonNull;

use pktmem_hugemem::{AllocRequest, Chunk, Provider};

use crate::error::PopulateError;
use crate::events::{self, MempoolEvent};
use crate::introspect::ObjInfo;
use crate::layout::{calc_mem_size, iova_add, ObjHeader, Placement, COOKIE_FREE, NO_IOVA};
use crate::pool::{ChunkFree, ChunkRec, ObjInit, Population};
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
                let req = AllocRequest::new(bytes)
                    .align(obj.align)
                    .iova_contiguous(contiguous);
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

    /// Places up to `remaining` objects in `run` by `placement`: writes each
    /// header, runs `init`, stores the objects in the backend in batches.
    /// Returns how many were stored (stops at the first refused batch).
    ///
    /// # Safety
    /// The conditions of `populate_iova` for `run`; called under the
    /// population lock.
    unsafe fn place_run(
        &self,
        run: &Run,
        placement: Placement,
        populated: usize,
        remaining: usize,
        init: &mut Option<ObjInit>,
        batch: &mut Vec<Obj>,
    ) -> usize {
        let inner = &*self.inner;
        let me: *const () = std::sync::Arc::as_ptr(&self.inner).cast();
        let h = inner.obj.header_size;
        let mut stored = 0;
        let mut failed = false;
        let va = run.base.as_ptr() as usize;
        placement.for_each(va, run.len, remaining, |off| {
            if failed {
                return;
            }
            // SAFETY: `off + total_size <= len` (placement), so the
            // element lies in the run (caller's memory).
            let body = unsafe { run.base.add(off + h) };
            let iova = iova_add(run.iova, off + h);
            // SAFETY: the header lies in the element, before the body
            // (`header_size >= OBJ_HEADER_SIZE`), in memory the caller
            // gave the pool; aligned to 8 (bodies are aligned to 8 at
            // least, and the header size is a multiple of 8).
            unsafe {
                ObjHeader::of(body.as_ptr()).write(ObjHeader {
                    pool: me,
                    iova: iova.map_or(NO_IOVA, |i| i.0),
                    cookie: COOKIE_FREE,
                });
            }
            let obj = Obj::from_non_null(body);
            if let Some(init) = init.as_mut() {
                // SAFETY: the body is `elt_size` bytes of the caller's
                // memory, owned by the pool and not yet handed out.
                let bytes = unsafe {
                    std::slice::from_raw_parts_mut(body.as_ptr().cast(), inner.obj.elt_size)
                };
                let info = ObjInfo {
                    obj,
                    iova,
                    index: populated + stored + batch.len(),
                };
                init(&info, bytes);
            }
            batch.push(obj);
            if batch.len() == batch.capacity() {
                if inner.store_new(batch) {
                    stored += batch.len();
                } else {
                    failed = true;
                }
                batch.clear();
            }
        });
        if !batch.is_empty() && !failed && inner.store_new(batch) {
            stored += batch.len();
        }
        batch.clear();
        stored
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
        let Population { chunks, init } = &mut *guard;
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
        let mut batch: Vec<Obj> = Vec::with_capacity(64);
        for run in runs {
            let remaining = inner.size - populated;
            if remaining == 0 {
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
            // SAFETY: forwarded from the caller (the run is theirs).
            let stored =
                unsafe { self.place_run(run, placement, populated, remaining, init, &mut batch) };
            if stored > 0 {
                chunks.push(ChunkRec {
                    base: run.base,
                    iova: run.iova,
                    len: run.len,
                    first_index: populated,
                    count: stored,
                    placement,
                    on_free: None,
                });
                populated += stored;
                added += stored;
                got_iova |= run.iova.is_some();
                // Relaxed: ordered by the population lock for writers;
                // readers only use it as a count.
                inner.populated.store(populated, Ordering::Relaxed);
            }
        }
        if chunks.len() > before {
            if let Some(c) = chunks.last_mut() {
                c.on_free = on_free;
            }
        } else if let Some(f) = on_free {
            drop(guard);
            f();
            return Ok(0);
        }
        if got_iova && inner.iova_contig {
            // Relaxed: an informational state flag.
            inner.non_io.store(false, Ordering::Relaxed);
        }
        let full = populated == inner.size;
        drop(guard);
        if full && added > 0 {
            events::fire(MempoolEvent::Ready, &inner.event_info());
        }
        Ok(added)
    }
}
