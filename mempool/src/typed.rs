//! The typed safe layer: a pool of `T`s whose objects are owned handles that
//! go back to their pool when dropped.

use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::error::CreateError;
use crate::layout::CACHE_LINE;
use crate::{BackendKind, Cache, Iova, Mempool, MempoolBuilder, Obj, Provider};

/// A pool of values of type `T`.
///
/// ```
/// use pktmem_mempool::{Provider, TypedPool};
/// let provider = Provider::builder().quiet(true).build().unwrap();
/// let pool = TypedPool::<[u64; 4]>::builder(8).cache(4).build_on(&provider).unwrap();
/// let mut a = pool.alloc([1, 2, 3, 4]).unwrap();
/// a[0] = 10;
/// assert_eq!(a.iter().sum::<u64>(), 19);
/// assert_eq!(pool.pool().in_use_count(), 1);
/// drop(a);
/// assert_eq!(pool.pool().in_use_count(), 0);
/// ```
pub struct TypedPool<T> {
    pool: Mempool,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for TypedPool<T> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for TypedPool<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedPool")
            .field("pool", &self.pool)
            .finish()
    }
}

/// Configures a [`TypedPool`]: the element size and alignment come from
/// `T` (alignment at least a cache line; a type aligned above
/// [`MAX_ALIGN`](crate::MAX_ALIGN) is refused with
/// [`BuildError::BadAlign`](crate::BuildError::BadAlign) naming its
/// alignment).
///
/// ```
/// use pktmem_mempool::{BuildError, CreateError, TypedPool};
/// #[derive(Debug)]
/// #[repr(align(1024))]
/// struct Block([u8; 1000]);
/// let pool = TypedPool::<Block>::builder(2).build_anonymous().unwrap();
/// let b = pool.alloc(Block([7; 1000])).unwrap();
/// assert_eq!((&*b as *const Block).align_offset(1024), 0);
///
/// #[repr(align(8192))]
/// struct Big(u8);
/// let e = TypedPool::<Big>::builder(2).build_anonymous().unwrap_err();
/// assert!(matches!(e, CreateError::Build(BuildError::BadAlign { align: 8192, .. })));
/// assert!(e.to_string().contains("alignment 8192 B"));
/// ```
#[must_use = "a builder does nothing until one of its `build_*` methods is called"]
pub struct TypedPoolBuilder<T> {
    inner: MempoolBuilder,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for TypedPoolBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedPoolBuilder")
            .field("inner", &self.inner)
            .finish()
    }
}

impl<T> TypedPoolBuilder<T> {
    fn map(self, f: impl FnOnce(MempoolBuilder) -> MempoolBuilder) -> Self {
        Self {
            inner: f(self.inner),
            _t: PhantomData,
        }
    }

    /// A name for humans (see [`MempoolBuilder::name`]).
    pub fn name(self, name: impl Into<String>) -> Self {
        self.map(|b| b.name(name))
    }

    /// Size of the per-core caches (see [`MempoolBuilder::cache`]).
    pub fn cache(self, size: usize) -> Self {
        self.map(|b| b.cache(size))
    }

    /// Picks a built-in backend (see [`MempoolBuilder::backend_kind`]).
    pub fn backend_kind(self, kind: BackendKind) -> Self {
        self.map(|b| b.backend_kind(kind))
    }

    /// Builds the pool on `provider` (see [`MempoolBuilder::build_on`]).
    pub fn build_on(self, provider: &Provider) -> Result<TypedPool<T>, CreateError> {
        Ok(TypedPool::wrap(self.inner.build_on(provider)?))
    }

    /// Builds the pool on anonymous memory (see
    /// [`MempoolBuilder::build_anonymous`]).
    pub fn build_anonymous(self) -> Result<TypedPool<T>, CreateError> {
        Ok(TypedPool::wrap(self.inner.build_anonymous()?))
    }
}

impl<T> TypedPool<T> {
    /// Starts configuring a pool of `n` values of `T`.
    pub fn builder(n: usize) -> TypedPoolBuilder<T> {
        let align = std::mem::align_of::<T>().max(CACHE_LINE);
        TypedPoolBuilder {
            inner: Mempool::builder(n, std::mem::size_of::<T>().max(1)).align(align),
            _t: PhantomData,
        }
    }

    /// Wraps a pool built by [`TypedPoolBuilder`], whose layout fits a `T`.
    fn wrap(pool: Mempool) -> Self {
        let o = pool.obj_size();
        debug_assert!(
            o.elt_size >= std::mem::size_of::<T>() && o.align >= std::mem::align_of::<T>()
        );
        Self {
            pool,
            _t: PhantomData,
        }
    }

    /// The untyped pool.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// Moves `value` into a free object, taken without a cache handle
    /// ([`Mempool::get_default`]); gives the value back when the pool is
    /// empty.
    pub fn alloc(&self, value: T) -> Result<PoolBox<T>, T> {
        match self.pool.get_default() {
            Ok(o) => Ok(self.fill(o, value)),
            Err(_) => Err(value),
        }
    }

    /// Moves `value` into a free object taken through `cache` (the fast
    /// path); gives the value back when the pool is empty.
    ///
    /// ```
    /// use pktmem_mempool::TypedPool;
    /// let pool = TypedPool::<u32>::builder(4).cache(2).build_anonymous().unwrap();
    /// let mut cache = pool.pool().cache();
    /// let b = pool.alloc_in(&mut cache, 5).unwrap();
    /// assert_eq!(*b, 5);
    /// ```
    pub fn alloc_in(&self, cache: &mut Cache, value: T) -> Result<PoolBox<T>, T> {
        match self.pool.get(cache) {
            Ok(o) => Ok(self.fill(o, value)),
            Err(_) => Err(value),
        }
    }

    fn fill(&self, obj: Obj, value: T) -> PoolBox<T> {
        let ptr = obj.cast::<T>();
        // SAFETY: a free object of at least `size_of::<T>()` bytes, aligned
        // for `T` (the builder's layout), now owned by us.
        unsafe { ptr.as_ptr().write(value) };
        PoolBox {
            ptr,
            // SAFETY: the pool's own address; the box's object keeps the
            // pool alive until the box puts it back, and the alias is never
            // dropped as a handle.
            pool: unsafe { Mempool::alias(self.pool.inner_ptr()) },
        }
    }
}

/// A `T` living in a pool object; goes back to the pool on drop (through
/// the dropping thread's default cache). Keeps the pool alive (its object is
/// out of the pool, which is what counts: the box holds no handle, so
/// making and dropping one costs no reference-count operation); `Send` when
/// `T` is, so it can travel through a ring to another thread.
///
/// ```
/// use pktmem_mempool::TypedPool;
/// let pool = TypedPool::<String>::builder(2).build_anonymous().unwrap();
/// let b = pool.alloc("hello".to_string()).unwrap();
/// let b = std::thread::spawn(move || { assert_eq!(*b, "hello"); b }).join().unwrap();
/// assert_eq!(b.into_inner(), "hello");
/// assert!(pool.pool().is_full());
/// ```
pub struct PoolBox<T> {
    /// A `T` written in an object of `pool`, owned by this box.
    ptr: NonNull<T>,
    /// The pool, uncounted (`Mempool::alias`): the object out keeps it
    /// alive until the box's put, after which the box is not used.
    pool: ManuallyDrop<Mempool>,
}

// SAFETY: the box owns its `T` (like `Box<T>`); the pool handle is `Send`.
unsafe impl<T: Send> Send for PoolBox<T> {}
// SAFETY: shared access only gives `&T`.
unsafe impl<T: Sync> Sync for PoolBox<T> {}

impl<T> Deref for PoolBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: a valid, owned `T` (invariant on `ptr`).
        unsafe { self.ptr.as_ref() }
    }
}

impl<T> DerefMut for PoolBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: a valid `T` owned exclusively by this box.
        unsafe { self.ptr.as_mut() }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for PoolBox<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<T> PoolBox<T> {
    /// The pool the value lives in.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// The object the value lives in.
    pub fn obj(&self) -> Obj {
        Obj::from_non_null(self.ptr.cast())
    }

    /// The IOVA of the value (what a device descriptor needs), `None` when
    /// the pool's memory has none.
    ///
    /// ```
    /// use pktmem_mempool::TypedPool;
    /// let pool = TypedPool::<u64>::builder(2).build_anonymous().unwrap();
    /// assert_eq!(pool.alloc(1).unwrap().iova(), None); // anonymous memory
    /// ```
    pub fn iova(&self) -> Option<Iova> {
        // SAFETY: the object is of `self.pool`, which this box keeps alive.
        unsafe { self.obj().iova_unchecked() }
    }

    /// Moves the value out, returning the object to the pool.
    pub fn into_inner(self) -> T {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: a valid `T`, read once; the box is not dropped.
        let v = unsafe { this.ptr.as_ptr().read() };
        // SAFETY: an object of `pool`, given back once; `this` is not used
        // after (the put may free the pool).
        unsafe { this.pool.put_default(this.obj()) };
        v
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: a valid `T` owned by this box, dropped once.
        unsafe { self.ptr.as_ptr().drop_in_place() };
        // SAFETY: an object of `pool`, given back once; `self` is not used
        // after (the put may free the pool).
        unsafe { self.pool.put_default(self.obj()) };
    }
}
