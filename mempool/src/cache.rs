//! Per-core caches: a small stack of objects in front of the backend.
//!
//! Policy (the reference's newer one): a cache of `size` holds at most `size`
//! objects. A put that does not fit flushes the oldest `max(size/2, overflow)`
//! objects to the backend in one bulk put, then stores the new ones; a get the
//! cache cannot serve refills it from the backend with what is missing plus
//! `size/2` (capped at `size`), in one bulk get. Puts of more than `size`
//! objects go straight to the backend; gets of more than `size` take what the
//! cache lacks from the backend (all or nothing) and empty the cache. The hit
//! path is a bounds check and a copy of handles: no atomic read-modify-write,
//! no lock. Objects are counted in the pool's references where they cross
//! the backend boundary, once per refill or flush (`backend_get` adds `k`,
//! the caller of a flush releases `k`), never on a hit.

use std::mem::MaybeUninit;
use std::sync::Arc;

use crossbeam_utils::CachePadded;

use crate::error::GetError;
use crate::pool::PoolInner;
use crate::sync::{AtomicUsize, Ordering};
use crate::{Mempool, Obj};

/// Largest cache size a pool accepts.
pub const CACHE_MAX_SIZE: usize = 512;

/// A published object count, read by the pool's counts.
pub(crate) type Counter = Arc<CachePadded<AtomicUsize>>;

/// Views initialised handles as `MaybeUninit` ones (always sound: same
/// layout, and nothing uninitialised is written through it by this crate).
#[inline(always)]
pub(crate) fn as_uninit(objs: &[Obj]) -> &[MaybeUninit<Obj>] {
    // SAFETY: `MaybeUninit<Obj>` has `Obj`'s layout; a shared slice cannot
    // be used to de-initialise anything.
    unsafe { &*(std::ptr::from_ref(objs) as *const [MaybeUninit<Obj>]) }
}

/// `out`, every element of which the caller has initialised.
///
/// # Safety
/// - every element of `out` is initialised.
#[inline(always)]
pub(crate) unsafe fn assume_init(out: &mut [MaybeUninit<Obj>]) -> &mut [Obj] {
    // SAFETY: the caller's condition; same layout.
    unsafe { &mut *(std::ptr::from_mut(out) as *mut [Obj]) }
}

/// The state shared by user-owned caches and the pool's default caches.
pub(crate) struct CacheCore {
    /// Cached objects, `objs[..len]`, oldest first, newest last.
    /// Invariant: `len <= size == objs.len()`; `objs[..len]` are initialised,
    /// each an object of the owning pool, free (not held by any caller),
    /// held nowhere else.
    objs: Box<[MaybeUninit<Obj>]>,
    len: usize,
    /// `len` as last published, for counts taken by other threads.
    count: Counter,
}

impl std::fmt::Debug for CacheCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheCore")
            .field("size", &self.objs.len())
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Handles one inlined block copy moves: a constant copy of up to 128 B
/// becomes vector moves, a longer one a call to `memcpy`.
const COPY_BLOCK: usize = 16;

/// The cache's hit-path copy. Small copies are element by element; copies
/// of up to two blocks (the usual bulk of 32) are two block copies, which
/// the compiler inlines when the length is a constant at the call site.
#[inline(always)]
fn copy_objs(dst: &mut [MaybeUninit<Obj>], src: &[MaybeUninit<Obj>]) {
    let n = dst.len();
    if n <= 4 && n == src.len() {
        for (d, s) in dst.iter_mut().zip(src) {
            *d = *s;
        }
    } else if n > COPY_BLOCK && n <= 2 * COPY_BLOCK && n == src.len() {
        let (d0, d1) = dst.split_at_mut(COPY_BLOCK);
        let (s0, s1) = src.split_at(COPY_BLOCK);
        d0.copy_from_slice(s0);
        d1.copy_from_slice(s1);
    } else {
        dst.copy_from_slice(src);
    }
}

impl CacheCore {
    pub(crate) fn new(size: usize, count: Counter) -> Self {
        Self {
            objs: vec![MaybeUninit::uninit(); size].into_boxed_slice(),
            len: 0,
            count,
        }
    }

    #[inline(always)]
    fn publish(&self) {
        // Relaxed: a statistic, paired with nothing; counts are exact only
        // when the pool is quiet.
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

    /// Fills `out` with objects: from the cache when it holds them. On `Ok`
    /// every element of `out` is initialised.
    #[inline(always)]
    pub(crate) fn get(
        &mut self,
        pool: &PoolInner,
        out: &mut [MaybeUninit<Obj>],
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
    fn get_slow(&mut self, pool: &PoolInner, out: &mut [MaybeUninit<Obj>]) -> Result<(), GetError> {
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

    /// Stores `objs` (objects of `pool`, each once). Returns how many
    /// objects went to the backend (0 on a hit), still counted in the
    /// pool's references: the caller releases them (`PoolInner::release`)
    /// once it is done with the pool and with this cache.
    #[inline(always)]
    #[must_use = "objects put to the backend must be released from the pool's count"]
    pub(crate) fn put(&mut self, pool: &PoolInner, objs: &[Obj]) -> usize {
        let n = objs.len();
        if n <= self.size() - self.len {
            copy_objs(&mut self.objs[self.len..self.len + n], as_uninit(objs));
            self.len += n;
            self.publish();
            pool.stat_put_hit(n);
            return 0;
        }
        self.put_slow(pool, objs)
    }

    /// The initialised front `objs[..k]` (`k <= len`).
    fn front(&self, k: usize) -> &[Obj] {
        debug_assert!(k <= self.len);
        // SAFETY: `objs[..len]` are initialised (invariant on `objs`).
        unsafe { &*(std::ptr::from_ref(&self.objs[..k]) as *const [Obj]) }
    }

    #[inline(never)]
    fn put_slow(&mut self, pool: &PoolInner, objs: &[Obj]) -> usize {
        let n = objs.len();
        let size = self.size();
        if n > size {
            pool.backend_put(objs);
            return n;
        }
        // Flush the oldest max(size/2, overflow) objects.
        let k = (size / 2).max(self.len + n - size).min(self.len);
        pool.backend_put(self.front(k));
        self.objs.copy_within(k..self.len, 0);
        self.len -= k;
        self.objs[self.len..self.len + n].copy_from_slice(as_uninit(objs));
        self.len += n;
        self.publish();
        k
    }

    /// Returns every cached object to the backend; returns how many, for
    /// the caller to release from the pool's count (as [`put`](Self::put)).
    #[must_use = "objects put to the backend must be released from the pool's count"]
    pub(crate) fn flush(&mut self, pool: &PoolInner) -> usize {
        let k = self.len;
        if k > 0 {
            pool.backend_put(self.front(k));
            self.len = 0;
            self.publish();
        }
        k
    }
}

/// A user-owned per-core cache of a pool's objects: the fast path of
/// [`Mempool::get`] and [`Mempool::put`] and their bulk forms.
///
/// It can move to another thread (`Send`) but not be shared (`!Sync`); every
/// call takes it by `&mut`. Objects it holds count as available in the pool.
/// Dropping it flushes them back to the backend. It is a handle: it keeps
/// its pool alive (and so do the objects in it, counted when a refill took
/// them from the backend, until a flush gives them back).
///
/// ```
/// use pktmem_mempool::Mempool;
/// use std::mem::MaybeUninit;
/// let pool = Mempool::builder(1024, 64).cache(64).build_anonymous().unwrap();
/// let mut cache = pool.cache();
/// let mut buf = [MaybeUninit::uninit(); 32];
/// let objs = pool.get_bulk(&mut cache, &mut buf).unwrap();
/// assert_eq!(pool.in_use_count(), 32);
/// // SAFETY: the objects came from this pool and go back once.
/// unsafe { pool.put_bulk(&mut cache, objs) };
/// assert_eq!(pool.avail_count(), 1024); // includes the cached ones
/// assert_eq!(cache.len(), 64); // the refill's 32 extra, and the 32 back
/// drop(cache);
/// assert!(pool.is_full());
/// ```
///
/// A cache cannot be shared between threads:
///
/// ```compile_fail
/// use pktmem_mempool::Mempool;
/// let pool = Mempool::builder(64, 64).cache(8).build_anonymous().unwrap();
/// let cache = pool.cache();
/// std::thread::scope(|s| {
///     s.spawn(|| drop(&cache)); // error: `Cache` is not `Sync`
/// });
/// ```
pub struct Cache {
    pub(crate) pool: Mempool,
    pub(crate) core: CacheCore,
    /// Keeps the cache `!Sync`: it is one core's structure, used through
    /// `&mut` only; sharing `&Cache` between threads serves nothing.
    _not_sync: std::marker::PhantomData<std::cell::Cell<()>>,
}

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
    pub(crate) fn new(pool: Mempool, core: CacheCore) -> Self {
        Self {
            pool,
            core,
            _not_sync: std::marker::PhantomData,
        }
    }

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

    /// Returns every cached object to the backend.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(64, 64).cache(16).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let o = pool.get(&mut cache).unwrap(); // a refill: the cache now holds some
    /// // SAFETY: given back once.
    /// unsafe { pool.put(&mut cache, o) };
    /// assert!(!cache.is_empty());
    /// cache.flush();
    /// assert!(cache.is_empty() && pool.is_full());
    /// ```
    pub fn flush(&mut self) {
        let k = self.core.flush(&self.pool.inner);
        // SAFETY: the `k` objects just flushed were counted; the cache's
        // own handle keeps the pool alive past this.
        unsafe { PoolInner::release(self.pool.inner_ptr(), k) };
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        let k = self.core.flush(&self.pool.inner);
        self.pool.inner.unregister_counter(&self.core.count);
        // SAFETY: the `k` objects just flushed were counted, and the pool
        // is not touched after (the handle, dropped next, releases its own).
        unsafe { PoolInner::release(self.pool.inner_ptr(), k) };
    }
}

#[cfg(test)]
mod tests {
    //! The cache policy, against a pool whose backend counts its calls.
    use std::mem::MaybeUninit;

    use crate::{BackendKind, Mempool};

    #[test]
    fn refill_and_flush_amounts() {
        let pool = Mempool::builder(64, 64)
            .cache(16)
            .backend_kind(BackendKind::Stack)
            .build_anonymous()
            .unwrap();
        let mut cache = pool.cache();
        let mut buf = [MaybeUninit::uninit(); 20];
        // A miss of 1 refills 1 + 16/2 = 9, hands 1 out.
        let o = pool.get_bulk(&mut cache, &mut buf[..1]).unwrap()[0];
        assert_eq!(cache.len(), 8);
        // SAFETY: given back once.
        unsafe { pool.put(&mut cache, o) };
        assert_eq!(cache.len(), 9);
        // More than the cache size: from the backend, cache emptied into it.
        let objs = pool.get_bulk(&mut cache, &mut buf).unwrap();
        assert_eq!((objs.len(), cache.len()), (20, 0));
        // A put of 20 > 16 goes straight to the backend.
        // SAFETY: given back once.
        unsafe { pool.put_bulk(&mut cache, objs) };
        assert_eq!(cache.len(), 0);
        // Fill to 16, then one more flushes the oldest 8.
        let objs = pool.get_bulk(&mut cache, &mut buf[..17]).unwrap();
        // SAFETY: given back once each.
        unsafe { pool.put_bulk(&mut cache, &objs[..16]) };
        assert_eq!(cache.len(), 16);
        // SAFETY: as above.
        unsafe { pool.put(&mut cache, objs[16]) };
        assert_eq!(cache.len(), 9);
        assert!(pool.is_full());
    }
}
