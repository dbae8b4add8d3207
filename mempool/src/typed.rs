//! The typed safe layer: a pool of `T`s whose objects are owned handles that
//! go back to their pool when dropped.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use crate::error::MempoolError;
use crate::{Mempool, MempoolBuilder};

/// A pool of values of type `T`.
///
/// ```
/// use pktmem_mempool::TypedPool;
/// let pool = TypedPool::<[u64; 4]>::new("typed", 8, 4).unwrap();
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

impl<T> TypedPool<T> {
    /// A pool of `n` values on anonymous memory, with default caches of
    /// `cache_size`.
    pub fn new(name: &str, n: usize, cache_size: usize) -> Result<Self, MempoolError> {
        Self::from_builder(Self::builder(name, n).cache_size(cache_size), |b| {
            b.create_anonymous()
        })
    }

    /// A builder with the element size of `T`, to configure and pass to
    /// [`from_builder`](Self::from_builder).
    pub fn builder(name: &str, n: usize) -> MempoolBuilder {
        Mempool::builder(name, n, std::mem::size_of::<T>().max(1))
    }

    /// Creates the pool with `create` (e.g. `|b| b.create_anonymous()`),
    /// checking its objects can hold a `T`.
    pub fn from_builder(
        builder: MempoolBuilder,
        create: impl FnOnce(MempoolBuilder) -> Result<Mempool, MempoolError>,
    ) -> Result<Self, MempoolError> {
        let pool = create(builder)?;
        let o = pool.obj_size();
        if o.elt_size < std::mem::size_of::<T>() || o.align < std::mem::align_of::<T>() {
            return Err(MempoolError::ElementTooLarge {
                elt_size: std::mem::size_of::<T>(),
            });
        }
        Ok(Self {
            pool,
            _t: PhantomData,
        })
    }

    /// The untyped pool.
    pub fn pool(&self) -> &Mempool {
        &self.pool
    }

    /// Moves `value` into a free object; gives it back when the pool is empty.
    pub fn alloc(&self, value: T) -> Result<PoolBox<T>, T> {
        match self.pool.get(None) {
            Ok(p) => {
                let ptr = p.cast::<T>();
                // SAFETY: a free object of at least `size_of::<T>()` bytes,
                // aligned for `T` (checked in `from_builder`), owned by us.
                unsafe { ptr.as_ptr().write(value) };
                Ok(PoolBox {
                    ptr,
                    pool: self.pool.clone(),
                })
            }
            Err(_) => Err(value),
        }
    }
}

/// A `T` living in a pool object; goes back to the pool on drop. Keeps the
/// pool alive.
pub struct PoolBox<T> {
    /// A `T` written in an object of `pool`, owned by this box.
    ptr: NonNull<T>,
    pool: Mempool,
}

// SAFETY: the box owns its `T` (like `Box<T>`).
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

    /// Moves the value out, returning the object to the pool.
    pub fn into_inner(self) -> T {
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: a valid `T`, read once; the box is not dropped.
        let v = unsafe { this.ptr.as_ptr().read() };
        // SAFETY: `pool` is read out once; `this` is never used again.
        let pool = unsafe { std::ptr::read(&this.pool) };
        // SAFETY: an object of `pool`, given back once.
        unsafe { pool.put(None, this.ptr.cast()) };
        v
    }
}

impl<T> Drop for PoolBox<T> {
    fn drop(&mut self) {
        // SAFETY: a valid `T` owned by this box, dropped once.
        unsafe { self.ptr.as_ptr().drop_in_place() };
        // SAFETY: an object of `pool`, given back once.
        unsafe { self.pool.put(None, self.ptr.cast()) };
    }
}
