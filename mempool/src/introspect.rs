//! What a pool can tell about its objects and chunks: checked lookups
//! ([`Mempool::owns`], [`Mempool::iova`]), iteration and audit.

use std::ptr::NonNull;
use std::sync::Arc;

use crate::error::AuditError;
use crate::layout::Placement;
use crate::layout::{iova_add, ObjHeader, COOKIE_FREE, COOKIE_TAKEN};
use crate::pool::ChunkRec;

/// A chunk record without its free callback, for iterating unlocked.
struct ChunkView {
    base: NonNull<u8>,
    iova: Option<Iova>,
    len: usize,
    first_index: usize,
    count: usize,
    placement: Placement,
}
use crate::sync::lock;
use crate::{Iova, Mempool, Obj};

/// What a callback learns about one object.
#[derive(Debug, Clone, Copy)]
pub struct ObjInfo {
    /// The object.
    pub obj: Obj,
    /// IOVA of its body, `None` when its memory has none (or the pool does
    /// not track IOVAs).
    pub iova: Option<Iova>,
    /// Index of the object in population order.
    pub index: usize,
}

/// What a callback learns about one chunk.
#[derive(Debug, Clone, Copy)]
pub struct ChunkInfo {
    /// Start of the chunk.
    pub addr: NonNull<u8>,
    /// IOVA of its start when the chunk is IOVA-contiguous.
    pub iova: Option<Iova>,
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

/// Where a pool's objects are ([`Mempool::counts`]): a snapshot, exact
/// when no get or put runs meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolCounts {
    /// Objects the pool holds when fully populated.
    pub size: usize,
    /// Objects placed so far.
    pub populated: usize,
    /// Free objects in the backend (the ring, stack, ...).
    pub in_backend: usize,
    /// Free objects in per-core caches (user-owned and default ones).
    pub in_caches: usize,
    /// Objects held by callers.
    pub in_use: usize,
}

impl Mempool {
    /// Runs `f` on the chunk holding object `obj` and its index in it.
    fn find<R>(&self, obj: Obj, then: impl FnOnce(&ChunkRec, usize) -> R) -> Option<R> {
        let pop = lock(&self.inner.population);
        let addr = obj.as_ptr() as usize;
        let chunk = pop.chunks.iter().find(|c| {
            let base = c.base.as_ptr() as usize;
            base <= addr && addr - base < c.len
        })?;
        let index = chunk.index_of(obj, self.inner.obj.header_size)?;
        Some(then(chunk, index))
    }

    /// Whether `obj` is one of this pool's objects, by its address (looked
    /// up in the pool's chunks; no object memory is read). Any `Obj` may be
    /// asked about.
    ///
    /// ```
    /// use pktmem_mempool::{Mempool, Obj};
    /// use std::ptr::NonNull;
    /// let a = Mempool::builder(8, 64).build_anonymous().unwrap();
    /// let b = Mempool::builder(8, 64).build_anonymous().unwrap();
    /// let o = a.get_default().unwrap();
    /// assert!(a.owns(o) && !b.owns(o));
    /// // One byte in: not an object.
    /// // SAFETY: inside the same object's body.
    /// let inside = Obj::from_non_null(unsafe { o.as_non_null().add(1) });
    /// assert!(!a.owns(inside));
    /// // SAFETY: given back once.
    /// unsafe { a.put_default(o) };
    /// ```
    pub fn owns(&self, obj: Obj) -> bool {
        self.find(obj, |_, _| ()).is_some()
    }

    /// Whether `obj` belongs to this pool, by its header: one load and a
    /// compare, no lookup. [`owns`](Self::owns) is the checked form.
    ///
    /// # Safety
    /// - `obj` is an object of some pool alive during the call.
    #[inline]
    pub unsafe fn owns_unchecked(&self, obj: Obj) -> bool {
        // SAFETY: the caller's condition: the header is before the body.
        let p = unsafe { (*ObjHeader::of(obj.as_ptr())).pool };
        std::ptr::eq(p, Arc::as_ptr(&self.inner).cast())
    }

    /// The IOVA of `obj`'s body, when `obj` is one of this pool's objects
    /// and its memory has an IOVA (looked up in the pool's chunks; no object
    /// memory is read). [`Obj::iova_unchecked`] is the fast form.
    ///
    /// ```
    /// use pktmem_mempool::{Iova, Mempool};
    /// use std::ptr::NonNull;
    /// let pool = Mempool::builder(4, 64).build_empty().unwrap();
    /// #[repr(align(64))]
    /// struct Mem([u8; 512]);
    /// let mem: &'static mut Mem = Box::leak(Box::new(Mem([0; 512])));
    /// // SAFETY: leaked memory, used only by the pool.
    /// unsafe { pool.populate_iova(NonNull::from(mem).cast(), Some(Iova(0x1000)), 512, None) }.unwrap();
    /// let o = pool.get_default().unwrap();
    /// let iova = pool.iova(o).unwrap();
    /// assert_eq!((iova.0 - 0x1000) % 128, 64); // body after a 64 B header
    /// // SAFETY: `o` is an object of `pool`, alive.
    /// assert_eq!(unsafe { o.iova_unchecked() }, Some(iova));
    /// // SAFETY: given back once.
    /// unsafe { pool.put_default(o) };
    /// ```
    pub fn iova(&self, obj: Obj) -> Option<Iova> {
        let base = |c: &ChunkRec| c.base.as_ptr() as usize;
        self.find(obj, |c, _| {
            iova_add(c.iova, obj.as_ptr() as usize - base(c))
        })
        .flatten()
    }

    /// Calls `f` for every placed object, in population order. `f` runs
    /// without the pool's lock held (on a snapshot of the chunk list: chunks
    /// are never removed while the pool lives), so it may call any method of
    /// the pool, including [`owns`](Self::owns) and [`iova`](Self::iova);
    /// objects placed meanwhile may or may not be visited. The bodies of free
    /// objects belong to the pool (under `cfg(pktmem_asan)` they are
    /// poisoned: see the crate docs).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(10, 64).build_anonymous().unwrap();
    /// let mut n = 0;
    /// pool.for_each_obj(|o| {
    ///     assert_eq!(o.index, n);
    ///     assert!(pool.owns(o.obj));
    ///     n += 1;
    /// });
    /// assert_eq!(n, 10);
    /// ```
    pub fn for_each_obj(&self, mut f: impl FnMut(&ObjInfo)) {
        let h = self.inner.obj.header_size;
        for c in self.chunk_snapshot() {
            let mut k = 0;
            c.placement
                .for_each(c.base.as_ptr() as usize, c.len, c.count, |off| {
                    // SAFETY: `off + total_size <= len` (placement): inside
                    // the chunk.
                    let body = unsafe { c.base.add(off + h) };
                    f(&ObjInfo {
                        obj: Obj::from_non_null(body),
                        iova: iova_add(c.iova, off + h),
                        index: c.first_index + k,
                    });
                    k += 1;
                });
        }
    }

    /// The chunk records as they are now (without their free callbacks).
    fn chunk_snapshot(&self) -> Vec<ChunkView> {
        lock(&self.inner.population)
            .chunks
            .iter()
            .map(|c| ChunkView {
                base: c.base,
                iova: c.iova,
                len: c.len,
                first_index: c.first_index,
                count: c.count,
                placement: c.placement,
            })
            .collect()
    }

    /// Calls `f` for every chunk, in population order; like
    /// [`for_each_obj`](Self::for_each_obj), without the pool's lock held.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(10, 64).build_anonymous().unwrap();
    /// let mut objects = 0;
    /// pool.for_each_chunk(|c| objects += c.objects);
    /// assert_eq!(objects, 10);
    /// ```
    pub fn for_each_chunk(&self, mut f: impl FnMut(&ChunkInfo)) {
        for c in self.chunk_snapshot() {
            f(&ChunkInfo {
                addr: c.base,
                iova: c.iova,
                len: c.len,
                objects: c.count,
            });
        }
    }

    /// Where the objects are: in the backend, in caches, or with callers
    /// ([`avail_count`](Self::avail_count) split by where the free ones sit).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(64, 64).cache(16).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let o = pool.get(&mut cache).unwrap(); // the cache refills from the backend
    /// let c = pool.counts();
    /// assert_eq!((c.size, c.populated, c.in_use), (64, 64, 1));
    /// assert_eq!(c.in_caches, cache.len());
    /// assert_eq!(c.in_backend + c.in_caches + c.in_use, c.populated);
    /// // SAFETY: given back once.
    /// unsafe { pool.put(&mut cache, o) };
    /// cache.flush();
    /// let c = pool.counts();
    /// assert_eq!((c.in_backend, c.in_caches, c.in_use), (64, 0, 0));
    /// ```
    pub fn counts(&self) -> PoolCounts {
        let populated = self.populated();
        let in_backend = self.inner.backend_len().min(populated);
        let in_caches = self.inner.cached().min(populated - in_backend);
        PoolCounts {
            size: self.inner.size,
            populated,
            in_backend,
            in_caches,
            in_use: populated - in_backend - in_caches,
        }
    }

    /// Checks every object's header (pool pointer, cookie) and the counts.
    /// Meant for a quiet pool: a get, put or cache flush running meanwhile
    /// can make the count check report a transient excess.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(100, 64).build_anonymous().unwrap();
    /// let r = pool.audit().unwrap();
    /// assert_eq!((r.objects, r.taken), (100, 0));
    /// ```
    pub fn audit(&self) -> Result<AuditReport, AuditError> {
        let me: *const () = Arc::as_ptr(&self.inner).cast();
        let mut err = None;
        let mut taken = 0;
        let mut objects = 0;
        self.for_each_obj(|o| {
            objects += 1;
            if err.is_some() {
                return;
            }
            // SAFETY: `o` is an object of this live pool.
            let h = unsafe { &*ObjHeader::of(o.obj.as_ptr()) };
            let addr = o.obj.as_ptr() as usize;
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
        let available = self.inner.backend_len() + self.inner.cached();
        if available > populated {
            return Err(AuditError::Count {
                populated,
                available,
            });
        }
        Ok(AuditReport {
            objects,
            taken,
            chunks: lock(&self.inner.population).chunks.len(),
        })
    }

    /// Statistics (with the `stats` feature).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(64, 64).cache(8).build_anonymous().unwrap();
    /// let o = pool.get_default().unwrap();
    /// // SAFETY: returned once.
    /// unsafe { pool.put_default(o) };
    /// let s = pool.stats();
    /// assert_eq!((s.gets, s.puts), (1, 1));
    /// ```
    #[cfg(feature = "stats")]
    pub fn stats(&self) -> crate::stats::PoolStats {
        self.inner.stats.snapshot()
    }
}
