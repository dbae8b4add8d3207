//! Per-core caches: a small stack of object pointers in front of the backend.
//!
//! Policy (the reference's newer one): a cache of `size` holds at most `size`
//! objects. A put that does not fit flushes the oldest `max(size/2, overflow)`
//! objects to the backend in one bulk put, then stores the new ones; a get the
//! cache cannot serve refills it from the backend with what is missing plus
//! `size/2` (capped at `size`), in one bulk get. Puts of more than `size`
//! objects go straight to the backend; gets of more than `size` take what the
//! cache lacks from the backend (all or nothing) and empty the cache. The hit path is a bounds check and a
//! copy of pointers: no atomic read-modify-write, no lock.

use std::ptr::NonNull;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::error::GetError;
use crate::pool::PoolInner;
use crate::sync::{AtomicUsize, Ordering};
use crate::Mempool;

/// Largest cache size a pool accepts.
pub const CACHE_MAX_SIZE: usize = 512;

/// A published object count, read by the pool's counts.
pub(crate) type Counter = Arc<CachePadded<AtomicUsize>>;

/// The state shared by user-owned caches and the pool's default caches.
pub(crate) struct CacheCore {
    /// Cached objects, `objs[..len]`, oldest first, newest last.
    /// Invariant: `len <= size == objs.len()`; each entry is an object of the
    /// owning pool, free (not held by any caller), held nowhere else.
    objs: Box<[NonNull<u8>]>,
    len: usize,
    /// `len` as last published, for counts taken by other threads.
    count: Counter,
}

impl std::fmt::Debug for CacheCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCore")
            .field("size", &self.objs.len())
            .field("len", &self.len)
            .finish()
    }
}

#[inline(always)]
fn copy_objs(dst: &mut [NonNull<u8>], src: &[NonNull<u8>]) {
    if dst.len() <= 4 && dst.len() == src.len() {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    } else {
        dst.copy_from_slice(src);
    }
}

impl CacheCore {
    pub(crate) fn new(size: usize, count: Counter) -> Self {
        Self {
            objs: vec![NonNull::dangling(); size].into_boxed_slice(),
            len: 0,
            count,
        }
    }

    #[inline(always)]
    fn publish(&self) {
        // Relaxed: a statistic; counts are exact only when the pool is quiet.
        self.count.store(self.len, Ordering::Relaxed);
    }

    #[inline(always)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    pub(crate) fn size(&self) -> usize {
        self.objs.len()
    }

    /// Takes `out.len()` objects: from the cache when it holds them.
    #[inline(always)]
    pub(crate) fn get(
        &mut self,
        pool: &PoolInner,
        out: &mut [NonNull<u8>],
    ) -> Result<(), GetError> {
        let n = out.len();
        if n <= self.len {
            let start = self.len - n;
            copy_objs(out, &self.objs[start..self.len]);
            self.len = start;
            self.publish();
            pool.stat_hit(n);
            return Ok(());
        }
        self.get_slow(pool, out)
    }

    #[inline(never)]
    fn get_slow(&mut self, pool: &PoolInner, out: &mut [NonNull<u8>]) -> Result<(), GetError> {
        let n = out.len();
        let size = self.size();
        if n > size {
            // Too large for the cache: the backend gives what the cache
            // cannot, then the cache empties itself into the rest.
            let from_cache = self.len;
            pool.backend_get(&mut out[..n - from_cache])?;
            out[n - from_cache..].copy_from_slice(&self.objs[..from_cache]);
            self.len = 0;
            self.publish();
            return Ok(());
        }
        // Refill what is missing plus size/2, within the cache's room.
        let missing = n - self.len;
        let room = size - self.len;
        let want = (missing + size / 2).min(room);
        let got = if pool
            .backend_get(&mut self.objs[self.len..self.len + want])
            .is_ok()
        {
            want
        } else {
            pool.backend_get(&mut self.objs[self.len..self.len + missing])?;
            missing
        };
        self.len += got;
        let start = self.len - n;
        out.copy_from_slice(&self.objs[start..self.len]);
        self.len = start;
        self.publish();
        Ok(())
    }

    /// Stores `objs` (objects of `pool`, each once).
    #[inline(always)]
    pub(crate) fn put(&mut self, pool: &PoolInner, objs: &[NonNull<u8>]) {
        let n = objs.len();
        if n <= self.size() - self.len {
            copy_objs(&mut self.objs[self.len..self.len + n], objs);
            self.len += n;
            self.publish();
            pool.stat_put_hit(n);
            return;
        }
        self.put_slow(pool, objs)
    }

    #[inline(never)]
    fn put_slow(&mut self, pool: &PoolInner, objs: &[NonNull<u8>]) {
        let n = objs.len();
        let size = self.size();
        if n > size {
            pool.backend_put(objs);
            return;
        }
        // Flush the oldest max(size/2, overflow) objects.
        let k = (size / 2).max(self.len + n - size).min(self.len);
        pool.backend_put(&self.objs[..k]);
        self.objs.copy_within(k..self.len, 0);
        self.len -= k;
        self.objs[self.len..self.len + n].copy_from_slice(objs);
        self.len += n;
        self.publish();
    }

    /// Returns every cached object to the backend.
    pub(crate) fn flush(&mut self, pool: &PoolInner) {
        if self.len > 0 {
            pool.backend_put(&self.objs[..self.len]);
            self.len = 0;
            self.publish();
        }
    }
}

/// A user-owned per-core cache of a pool's objects.
///
/// It can move to another thread (`Send`) but not be shared (`!Sync`); every
/// call takes it by `&mut`. Objects it holds count as available in the pool.
/// Dropping it flushes them back to the backend. It keeps its pool alive.
///
/// ```
/// use pktmem_mempool::Mempool;
/// let pool = Mempool::builder("c", 1024, 64).cache_size(64).create_anonymous().unwrap();
/// let mut cache = pool.cache();
/// let mut objs = [std::ptr::NonNull::dangling(); 32];
/// cache.get_bulk(&mut objs).unwrap();
/// assert_eq!(pool.in_use_count(), 32);
/// // SAFETY: the objects came from this pool and go back once.
/// unsafe { cache.put_bulk(&objs) };
/// assert_eq!(pool.avail_count(), 1024); // includes the cached ones
/// drop(cache);
/// assert!(pool.is_full());
/// ```
///
/// A cache cannot be shared between threads:
///
/// ```compile_fail
/// use pktmem_mempool::Mempool;
/// let pool = Mempool::builder("c", 64, 64).cache_size(8).create_anonymous().unwrap();
/// let cache = pool.cache();
/// std::thread::scope(|s| {
///     s.spawn(|| drop(&cache)); // error: `Cache` is not `Sync`
/// });
/// ```
pub struct Cache {
    pub(crate) pool: Mempool,
    pub(crate) core: CacheCore,
}

// SAFETY: a cache owns the pointers it holds (each free object is held by one
// owner); moving the whole cache to another thread moves that ownership.
// `NonNull` keeps it `!Sync`.
unsafe impl Send for Cache {}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("pool", &self.pool.name())
            .field("size", &self.core.size())
            .field("len", &self.core.len())
            .finish()
    }
}

impl Cache {
    /// Objects the cache holds now.
    pub fn len(&self) -> usize {
        self.core.len()
    }

    /// Whether the cache holds no object.
    pub fn is_empty(&self) -> bool {
        self.core.len() == 0
    }

    /// Most objects the cache holds.
    pub fn size(&self) -> usize {
        self.core.size()
    }

    /// The pool this cache serves.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// Takes `out.len()` objects, all or nothing (see the module's policy).
    #[inline(always)]
    pub fn get_bulk(&mut self, out: &mut [NonNull<u8>]) -> Result<(), GetError> {
        self.core.get(&self.pool.inner, out)?;
        self.pool.inner.handed_out(out);
        Ok(())
    }

    /// Gives `objs` back through the cache.
    ///
    /// # Safety
    /// - every pointer in `objs` came from a get on this cache's pool, and is
    ///   given back once (not twice, and not still in use);
    /// - if the pool is single-producer, no other put on it runs concurrently.
    #[inline(always)]
    pub unsafe fn put_bulk(&mut self, objs: &[NonNull<u8>]) {
        self.pool.inner.taken_back(objs);
        self.core.put(&self.pool.inner, objs);
    }

    /// Returns every cached object to the backend.
    pub fn flush(&mut self) {
        self.core.flush(&self.pool.inner);
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        self.core.flush(&self.pool.inner);
        self.pool.inner.unregister_counter(&self.core.count);
    }
}
