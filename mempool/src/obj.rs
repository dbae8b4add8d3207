//! [`Obj`]: the one handle for a pool object, used by get and put, caches,
//! backends and ring slots alike.

use std::fmt;
use std::ptr::NonNull;

use crate::layout::{ObjHeader, NO_IOVA};
use crate::{Iova, Mempool, PoolRef};

/// A pool object: the address of its body.
///
/// A plain `Copy` handle, like [`NonNull`]: it is `Send` and `Sync` (it is
/// only an address; the pool hands objects from one owner to the next, and a
/// ring carries them between threads).
///
/// **An object out of its pool keeps the pool's memory alive.** The pool
/// counts its objects as they leave and re-enter its backend (in bulk, per
/// cache refill or flush: a cache hit counts nothing), so from a get until
/// the put that returns it, an object's pool exists even when every
/// [`Mempool`] handle is gone. It is the object that counts, not the `Obj`
/// handle: copies of the handle change nothing, and an object forgotten
/// without a put keeps its pool forever (as a leaked `Arc` would).
/// [`owner_ref`](Self::owner_ref) reaches the pool from the object without
/// any count, for the put back.
///
/// What it can tell about itself comes two ways:
///
/// - checked, through the pool: [`Mempool::owns`] and [`Mempool::iova`] look
///   the address up in the pool's chunks and never read object memory;
/// - fast and `unsafe`, from the header written before every object:
///   [`iova_unchecked`](Self::iova_unchecked),
///   [`owner_ref`](Self::owner_ref), [`owner_unchecked`](Self::owner_unchecked);
///   the caller vouches the object belongs to a live pool (holding it out of
///   the pool is enough).
///
/// The body is `obj_size().elt_size` bytes (aligned to the pool's
/// alignment); writing it is the caller's `unsafe` raw-pointer work
/// ([`as_ptr`](Self::as_ptr), [`cast`](Self::cast)). The typed layer
/// ([`TypedPool`](crate::TypedPool)) does that for you.
///
/// ```
/// use pktmem_mempool::{Mempool, Obj};
/// use pktmem_ring::Ring;
///
/// let pool = Mempool::builder(8, 64).cache(4).build_anonymous().unwrap();
/// let mut cache = pool.cache();
/// let obj: Obj = pool.get(&mut cache).unwrap();
/// assert!(pool.owns(obj));
/// assert_eq!(pool.iova(obj), None); // anonymous memory has no IOVA
///
/// // Objects travel through the project's own ring.
/// let ring = Ring::<Obj>::new(8).unwrap(); // holds 8
/// ring.enqueue(obj).unwrap();
/// let back = std::thread::scope(|s| s.spawn(|| ring.dequeue().unwrap()).join().unwrap());
/// assert_eq!(back, obj);
/// // SAFETY: an object of this pool, given back once.
/// unsafe { pool.put(&mut cache, back) };
/// ```
#[repr(transparent)]
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Obj(NonNull<u8>);

// SAFETY: an `Obj` is an address; nothing is reached through it without an
// `unsafe` call whose caller vouches for the object (see the type's docs).
unsafe impl Send for Obj {}
// SAFETY: as for `Send`: sharing an address gives access to nothing.
unsafe impl Sync for Obj {}

impl fmt::Debug for Obj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Obj({:p})", self.0)
    }
}

impl Obj {
    /// The handle of the object whose body starts at `body`.
    ///
    /// Safe: a handle only names an address. Putting it into a pool, or
    /// reading its header, is where the caller vouches it is a real object.
    ///
    /// ```
    /// use pktmem_mempool::Obj;
    /// use std::ptr::NonNull;
    /// let mut x = 0u64;
    /// let o = Obj::from_non_null(NonNull::from(&mut x).cast());
    /// assert_eq!(o.as_ptr(), std::ptr::addr_of_mut!(x).cast());
    /// ```
    #[inline(always)]
    pub const fn from_non_null(body: NonNull<u8>) -> Self {
        Self(body)
    }

    /// The body's address.
    #[inline(always)]
    pub const fn as_non_null(self) -> NonNull<u8> {
        self.0
    }

    /// The body's address as a raw pointer.
    #[inline(always)]
    pub const fn as_ptr(self) -> *mut u8 {
        self.0.as_ptr()
    }

    /// The body's address as a pointer to `T`.
    #[inline(always)]
    pub const fn cast<T>(self) -> NonNull<T> {
        self.0.cast()
    }

    /// The IOVA of the body, from the object's header (`None` when its
    /// memory has none, or the pool does not track IOVAs): one load, no
    /// lookup. [`Mempool::iova`] is the checked form.
    ///
    /// # Safety
    /// - `self` is an object of a pool that is alive during the call (its
    ///   header, written at population, is before the body).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(4, 64).build_anonymous().unwrap();
    /// let o = pool.get_default().unwrap();
    /// // SAFETY: `o` is an object of `pool`, alive here.
    /// assert_eq!(unsafe { o.iova_unchecked() }, pool.iova(o));
    /// // SAFETY: given back once.
    /// unsafe { pool.put_default(o) };
    /// ```
    #[inline(always)]
    pub unsafe fn iova_unchecked(self) -> Option<Iova> {
        // SAFETY: the caller's condition; headers are written before objects
        // are handed out and `iova` never changes after (invariant on
        // `ObjHeader`).
        let raw = unsafe { (*ObjHeader::of(self.0.as_ptr())).iova };
        (raw != NO_IOVA).then_some(Iova(raw))
    }

    /// The pool this object belongs to, from the object's header, without
    /// any count: how a packet buffer finds the pool to go back to, at the
    /// cost of one load. The result derefs to a [`Mempool`]; a put of this
    /// object through it (`put_default`, `put_bulk_default`, `put_bulk`) is
    /// sound even when that put frees the pool (the last object back, no
    /// handle left), as long as the `PoolRef` is not used after.
    ///
    /// # Safety
    /// - `self` is out of its pool (taken by a get, not yet put back) while
    ///   the result is used, except for a final put of it through the
    ///   result, after which the result is not used.
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(8, 64).cache(4).build_anonymous().unwrap();
    /// let o = pool.get_default().unwrap();
    /// drop(pool); // `o` keeps the pool's memory
    /// // SAFETY: `o` is out of its pool.
    /// let owner = unsafe { o.owner_ref() };
    /// assert_eq!(owner.in_use_count(), 1);
    /// // SAFETY: an object of `owner`, given back once; `owner` is not used
    /// // after (this put frees the pool).
    /// unsafe { owner.put_default(o) };
    /// ```
    #[inline(always)]
    pub unsafe fn owner_ref<'a>(self) -> PoolRef<'a> {
        // SAFETY: the caller's condition (the object is out, so its pool is
        // alive and the header readable); the header holds `Mempool::as_ptr`
        // of the owning pool (written at placement, never changed).
        let pool = unsafe { (*ObjHeader::of(self.0.as_ptr())).pool };
        // SAFETY: `pool` is the pool's address; the caller keeps it alive as
        // the `PoolRef` requires (same condition).
        unsafe { PoolRef::from_ptr(pool) }
    }

    /// A counted handle of the pool this object belongs to, from the
    /// object's header (one more handle, as [`Mempool::clone`]).
    /// [`owner_ref`](Self::owner_ref) is the free form; [`Mempool::owns`] is
    /// the checked question.
    ///
    /// # Safety
    /// - `self` is an object of a pool that is alive during the call (for
    ///   instance: `self` is out of its pool, or a handle exists).
    ///
    /// ```
    /// use pktmem_mempool::Mempool;
    /// let pool = Mempool::builder(8, 64).build_anonymous().unwrap();
    /// let o = pool.get_default().unwrap();
    /// // SAFETY: `pool` is alive.
    /// let owner = unsafe { o.owner_unchecked() };
    /// assert!(owner.same_pool(&pool));
    /// // SAFETY: an object of `owner`, given back once.
    /// unsafe { owner.put_default(o) };
    /// assert!(pool.is_full());
    /// ```
    #[inline]
    pub unsafe fn owner_unchecked(self) -> Mempool {
        // SAFETY: the caller's condition: the header is readable and holds
        // the pool's address; the pool is alive for the clone, which takes
        // the new handle's own counts.
        let pool = unsafe { (*ObjHeader::of(self.0.as_ptr())).pool };
        // SAFETY: as above (the `PoolRef` is used for the clone only).
        Mempool::clone(&*unsafe { PoolRef::from_ptr(pool) })
    }

    /// Views a slice of handles as their addresses (for code that speaks
    /// `NonNull<u8>`).
    #[inline(always)]
    pub fn as_non_null_slice(objs: &[Obj]) -> &[NonNull<u8>] {
        // SAFETY: `Obj` is `repr(transparent)` over `NonNull<u8>`.
        unsafe { &*(std::ptr::from_ref(objs) as *const [NonNull<u8>]) }
    }
}
