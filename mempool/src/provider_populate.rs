//! Population from the hugepage provider, and `create`.

use std::ptr::NonNull;

use pktmem_hugemem::{AllocRequest, Chunk, Provider};

use crate::error::{MempoolError, PopulateError};
use crate::layout::calc_mem_size;
use crate::pool::ChunkFree;
use crate::{Iova, Mempool, MempoolBuilder, PoolFlags};

impl Mempool {
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
    /// let pool = Mempool::builder("prov", 1000, 2048).create_empty().unwrap();
    /// let n = pool.populate_from_provider(Provider::global()).unwrap();
    /// assert_eq!(n, 1000);
    /// pool.for_each_obj(|o| {
    ///     assert_eq!(Some(o.iova), Provider::global().virt2iova(o.ptr.as_ptr()));
    /// });
    /// ```
    pub fn populate_from_provider(&self, provider: &Provider) -> Result<usize, PopulateError> {
        let size = self.size();
        if self.populated() == size {
            return Err(PopulateError::Full {
                name: self.name().to_string(),
                size,
            });
        }
        let obj = self.obj_size();
        let mut want = size - self.populated();
        let mut added = 0;
        let mut last_err = None;
        while self.populated() < size {
            want = want.min(size - self.populated());
            // No slack for aligning the first object: the request below is
            // aligned to `obj.align`, and so is every later run (a page).
            let bytes =
                calc_mem_size(want, obj.total_size, 0).ok_or(PopulateError::OutOfMemory {
                    name: self.name().to_string(),
                    needed: size,
                    placed: self.populated(),
                    obj_size: obj.total_size,
                    source: None,
                })?;
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
                None => {
                    return Err(PopulateError::OutOfMemory {
                        name: self.name().to_string(),
                        needed: size,
                        placed: self.populated(),
                        obj_size: obj.total_size,
                        source: last_err
                            .map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
                    })
                }
            }
        }
        Ok(added)
    }

    /// Places objects in a provider chunk's IOVA runs; the chunk is freed
    /// with the pool (or at once if nothing fits).
    fn populate_chunk(&self, chunk: Chunk) -> Result<usize, PopulateError> {
        let page = chunk.page_size();
        let runs: Vec<(usize, Iova, usize)> = if self.flags().contains(PoolFlags::NO_IOVA_CONTIG) {
            vec![(
                chunk.as_ptr().as_ptr() as usize,
                Iova::BAD,
                chunk.mapped_len(),
            )]
        } else {
            chunk
                .segments()
                .map(|r| (r.va, r.iova.unwrap_or(Iova::BAD), r.len))
                .collect()
        };
        let on_free: ChunkFree = Box::new(move || drop(chunk));
        // SAFETY: the chunk's pages are owned by `on_free` until the pool
        // drops it; each run is IOVA-contiguous per the provider (or a single
        // page with a BAD IOVA).
        unsafe { self.populate_runs(&runs, page, Some(on_free)) }
    }

    /// Populates from external memory registered with `provider`
    /// (`Provider::register_external`), looking each page's IOVA up in it.
    ///
    /// # Safety
    /// The conditions of [`populate_iova`](Self::populate_iova) for the range;
    /// it stays registered while the pool uses it.
    pub unsafe fn populate_external(
        &self,
        provider: &Provider,
        addr: NonNull<u8>,
        len: usize,
        page_size: usize,
        on_free: Option<ChunkFree>,
    ) -> Result<usize, PopulateError> {
        // SAFETY: forwarded to the caller.
        unsafe {
            self.populate_virt(
                addr,
                len,
                page_size,
                |p| provider.virt2iova(p).unwrap_or(Iova::BAD),
                on_free,
            )
        }
    }
}

impl MempoolBuilder {
    /// Creates the pool, populates it from the global provider
    /// ([`Provider::global`]) and runs the `obj_init` callback (create empty,
    /// then [`Mempool::populate_from_provider`], then init). On failure
    /// nothing is left behind (the memory already taken goes back).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder("create", 8191, 64).cache_size(256).create().unwrap();
    /// assert!(pool.is_full());
    /// ```
    pub fn create(self) -> Result<Mempool, MempoolError> {
        self.create_with_provider(Provider::global())
    }

    /// [`create`](Self::create) with the given provider. A ring backend
    /// keeps its slots in a chunk of `provider` too (or on the heap if the
    /// provider cannot give one: [`Mempool::ring_placement`] says which).
    pub fn create_with_provider(self, provider: &Provider) -> Result<Mempool, MempoolError> {
        let (pool, init) = self.build(Some(provider))?;
        pool.populate_from_provider(provider)?;
        pool.finish_create(init);
        Ok(pool)
    }
}
