//! Serving objects: get and put through a [`Cache`] (the fast path), or
//! through the calling thread's default cache (the `*_default` family, for
//! code that has no cache handle at hand).

use std::mem::MaybeUninit;
use std::sync::Arc;

use crate::cache::assume_init;
use crate::default_cache;
use crate::error::GetError;
use crate::pool::PoolInner;
use crate::{Cache, Mempool, Obj};

impl Mempool {
    /// Takes one object through `cache`.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(8, 64).cache(4).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let o = pool.get(&mut cache).unwrap();
    /// assert_eq!(pool.in_use_count(), 1);
    /// // SAFETY: an object of this pool, given back once.
    /// unsafe { pool.put(&mut cache, o) };
    /// ```
    #[inline(always)]
    pub fn get(&self, cache: &mut Cache) -> Result<Obj, GetError> {
        let mut o = [MaybeUninit::uninit()];
        let got = self.get_bulk(cache, &mut o)?;
        Ok(got[0])
    }

    /// Fills all of `out` through `cache`, or takes nothing; returns `out`,
    /// now initialised.
    ///
    /// The cache serves what it holds (a bounds check and a copy of
    /// handles); a miss refills it from the backend in bulk (see [`Cache`]).
    /// A cache of another pool is not used: the call goes to this pool's
    /// backend. The objects are the caller's until it puts them back; using
    /// their bodies is `unsafe` raw-pointer work ([`TypedPool`](crate::TypedPool)
    /// does it safely). While out they keep the pool's memory alive, handles
    /// or not: [`Obj::owner_ref`] finds the pool to put them back to.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// use std::mem::MaybeUninit;
    /// let pool = Mempool::builder(64, 64).cache(8).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let mut buf = [MaybeUninit::uninit(); 64];
    /// let objs = pool.get_bulk(&mut cache, &mut buf).unwrap();
    /// assert_eq!(objs.len(), 64);
    /// assert!(pool.get(&mut cache).is_err()); // all or nothing
    /// // SAFETY: objects of this pool, returned once.
    /// unsafe { pool.put_bulk(&mut cache, objs) };
    /// assert!(pool.is_full());
    /// ```
    #[inline(always)]
    pub fn get_bulk<'o>(
        &self,
        cache: &mut Cache,
        out: &'o mut [MaybeUninit<Obj>],
    ) -> Result<&'o mut [Obj], GetError> {
        if Arc::ptr_eq(&cache.pool.inner, &self.inner) {
            cache.core.get(&self.inner, out)?;
        } else {
            self.inner.backend_get(out)?;
        }
        // SAFETY: a successful get initialised every element.
        let out = unsafe { assume_init(out) };
        self.inner.handed_out(out);
        Ok(out)
    }

    /// Takes `N` objects through `cache`, all or nothing, as an array.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(64, 64).cache(32).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let objs: [_; 4] = pool.get_array(&mut cache).unwrap();
    /// // SAFETY: objects of this pool, returned once.
    /// unsafe { pool.put_bulk(&mut cache, &objs) };
    /// ```
    #[inline(always)]
    pub fn get_array<const N: usize>(&self, cache: &mut Cache) -> Result<[Obj; N], GetError> {
        let mut a = [MaybeUninit::<Obj>::uninit(); N];
        self.get_bulk(cache, &mut a)?;
        // SAFETY: the get initialised all `N` elements; `[MaybeUninit<Obj>;
        // N]` has the layout of `[Obj; N]`.
        Ok(unsafe { std::ptr::from_ref(&a).cast::<[Obj; N]>().read() })
    }

    /// Gives one object back through `cache` (see [`put_bulk`](Self::put_bulk)).
    ///
    /// # Safety
    /// The conditions of [`put_bulk`](Self::put_bulk).
    #[inline(always)]
    pub unsafe fn put(&self, cache: &mut Cache, obj: Obj) {
        // SAFETY: forwarded to the caller.
        unsafe { self.put_bulk(cache, &[obj]) }
    }

    /// Gives objects back through `cache` (a cache of another pool is not
    /// used: they go to this pool's backend). Never fails.
    ///
    /// When `self` is a [`PoolRef`](crate::PoolRef) and these are the pool's
    /// last objects out with no handle left, this call frees the pool: the
    /// last thing it does is release the objects' count.
    ///
    /// # Safety
    /// - every object in `objs` came from a get on this pool and is given
    ///   back once (not twice, not while still in use);
    /// - if the pool is single-producer, no other put runs concurrently.
    ///
    /// Debug builds panic on a double put or a foreign object (header cookies).
    #[inline(always)]
    pub unsafe fn put_bulk(&self, cache: &mut Cache, objs: &[Obj]) {
        let this = self.inner_ptr();
        let inner: &PoolInner = &self.inner;
        inner.taken_back(objs);
        let back = if Arc::ptr_eq(&cache.pool.inner, &self.inner) {
            cache.core.put(inner, objs)
        } else {
            inner.backend_put(objs);
            objs.len()
        };
        // SAFETY: `back` objects went to the backend, counted since their
        // get (caller's condition); nothing of the pool (`inner`, the cache's
        // slots) is used after this.
        unsafe { PoolInner::release(this, back) };
    }

    /// Takes one object without a cache handle (see
    /// [`get_bulk_default`](Self::get_bulk_default)).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(8, 64).cache(4).build_anonymous().unwrap();
    /// let o = pool.get_default().unwrap();
    /// // SAFETY: an object of this pool, given back once.
    /// unsafe { pool.put_default(o) };
    /// pool.flush_default_cache();
    /// assert!(pool.is_full());
    /// ```
    #[inline(always)]
    pub fn get_default(&self) -> Result<Obj, GetError> {
        let mut o = [MaybeUninit::uninit()];
        let got = self.get_bulk_default(&mut o)?;
        Ok(got[0])
    }

    /// Fills all of `out` without a cache handle, or takes nothing: through
    /// the calling thread's **default cache** of this pool when it has one,
    /// else straight from the backend. The typed layer uses this path.
    ///
    /// The default cache: a pool with a cache size keeps a few cache slots
    /// (a power of two, at least 8), each on its own cache line. A thread
    /// uses slot `thread tag & (slots - 1)`: it claims a free slot once with a
    /// compare-exchange and then uses it with one relaxed load of the owner
    /// word plus the plain cache path (no read-modify-write, no lock). A slot
    /// owned by another live thread sends the call to the backend. When a
    /// thread exits, its slots are flushed to the backend and freed
    /// ([`flush_default_cache`](Self::flush_default_cache) flushes one pool's
    /// earlier, [`flush_thread_caches`](crate::flush_thread_caches) every
    /// pool's, giving the slots back). Objects in a default cache keep the
    /// pool alive; dropping the pool's last handle flushes the dropping
    /// thread's, and no slot is claimed once no handle is left (see the
    /// crate's model). A pool with no cache size goes to the backend. An
    /// explicit [`Cache`] is a little faster still (no thread-local lookup).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// use std::mem::MaybeUninit;
    /// let pool = Mempool::builder(64, 64).build_anonymous().unwrap();
    /// let mut buf = [MaybeUninit::uninit(); 64];
    /// let objs = pool.get_bulk_default(&mut buf).unwrap();
    /// assert!(pool.get_default().is_err());
    /// // SAFETY: objects of this pool, returned once.
    /// unsafe { pool.put_bulk_default(objs) };
    /// assert!(pool.is_full());
    /// ```
    #[inline(always)]
    pub fn get_bulk_default<'o>(
        &self,
        out: &'o mut [MaybeUninit<Obj>],
    ) -> Result<&'o mut [Obj], GetError> {
        default_cache::get(&self.inner, out)?;
        // SAFETY: a successful get initialised every element.
        let out = unsafe { assume_init(out) };
        self.inner.handed_out(out);
        Ok(out)
    }

    /// Gives one object back without a cache handle (see
    /// [`put_bulk_default`](Self::put_bulk_default)).
    ///
    /// # Safety
    /// The conditions of [`put_bulk`](Self::put_bulk).
    #[inline(always)]
    pub unsafe fn put_default(&self, obj: Obj) {
        // SAFETY: forwarded to the caller.
        unsafe { self.put_bulk_default(&[obj]) }
    }

    /// Gives objects back without a cache handle: through the calling
    /// thread's default cache (see [`get_bulk_default`](Self::get_bulk_default)),
    /// else to the backend. Never fails.
    ///
    /// # Safety
    /// The conditions of [`put_bulk`](Self::put_bulk).
    #[inline(always)]
    pub unsafe fn put_bulk_default(&self, objs: &[Obj]) {
        let this = self.inner_ptr();
        self.inner.taken_back(objs);
        let back = default_cache::put(&self.inner, objs);
        // SAFETY: `back` objects went to the backend, counted since their
        // get (caller's condition); nothing of the pool (its default cache
        // slot included) is used after this: it may free the pool when
        // `self` is a `PoolRef`.
        unsafe { PoolInner::release(this, back) };
    }

    /// Returns the calling thread's default cache of this pool to the
    /// backend (keeping the slot; [`flush_thread_caches`](crate::flush_thread_caches)
    /// flushes every pool's and gives the slots back).
    pub fn flush_default_cache(&self) {
        let this = self.inner_ptr();
        let back = default_cache::flush(&self.inner);
        // SAFETY: as in `put_bulk_default`.
        unsafe { PoolInner::release(this, back) };
    }
}
