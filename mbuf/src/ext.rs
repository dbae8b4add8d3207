//! External buffers: memory the pool does not own, attached to mbufs, with a
//! shared, refcounted info that releases the buffer exactly once, when its
//! last reference goes, on whichever thread drops it.
//!
//! An [`ExtBuf`] is one reference to such a buffer. Cloning it takes another
//! reference; attaching it to an mbuf ([`Mbuf::attach_extbuf`](crate::Mbuf::attach_extbuf))
//! hands the reference to the mbuf; clones of that mbuf take more; the last
//! drop runs the release: the owner value is dropped
//! ([`ExtBuf::from_owner`]), or the free callback runs
//! ([`ExtBuf::from_raw`], [`ExtBuf::from_raw_tail_shinfo`]).
//!
//! [`ExtBuf::slice`] makes a reference to a part of the buffer: same shared
//! info (one more reference on it), narrower address, length and IOVA. One
//! buffer holding many frames (a kernel ring's block) is handed out that
//! way, one slice per frame, and released once, when the last frame goes.
//! An [`ExtRegion`] is the same for memory longer than an mbuf's buffer can
//! be: never attached itself, only sliced.

use std::fmt;
use std::mem::{align_of, size_of};
use std::ops::{Bound, RangeBounds};
use std::ptr::NonNull;

use pktmem_hugemem::Iova;

use crate::error::ExtBufError;
use crate::header::{MbufHeader, NO_IOVA};
use crate::sync::{fence, AtomicU16, Ordering};

/// Largest external buffer (the header's buffer length is 16 bits).
pub const EXT_BUF_MAX: usize = u16::MAX as usize;

/// The shared info of an external buffer: its refcount and how to release
/// it. Concrete infos (`Shared<X>`) start with this header (`repr(C)`).
#[repr(C)]
pub struct SharedHdr {
    /// References to the buffer (`ExtBuf` handles + mbufs attached to it).
    pub(crate) refcnt: AtomicU16,
    /// Runs once when `refcnt` reaches 0; frees the info (and the buffer,
    /// or calls the user's callback).
    release: unsafe fn(NonNull<SharedHdr>),
    /// For a pinned pool's buffer: the mbuf the buffer is bound to (it goes
    /// back to its pool at release); null otherwise.
    pub(crate) pinned_owner: *mut MbufHeader,
}

impl fmt::Debug for SharedHdr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedHdr")
            .field("refcnt", &self.refcnt.load(Ordering::Relaxed))
            .field("pinned", &!self.pinned_owner.is_null())
            .finish_non_exhaustive()
    }
}

impl SharedHdr {
    /// A header with refcount 1.
    pub(crate) fn new(
        release: unsafe fn(NonNull<SharedHdr>),
        pinned_owner: *mut MbufHeader,
    ) -> Self {
        Self {
            refcnt: AtomicU16::new(1),
            release,
            pinned_owner,
        }
    }

    /// Takes one more reference; `false` (nothing taken) at the maximum.
    #[inline]
    pub(crate) fn try_acquire(&self) -> bool {
        crate::sync::try_acquire(&self.refcnt)
    }

    /// Drops one reference; the last one runs the release.
    ///
    /// # Safety
    /// - `this` is a live shared info and the caller owns one reference,
    ///   which it gives up (it must not touch the info afterwards).
    #[inline]
    pub(crate) unsafe fn release_ref(this: NonNull<SharedHdr>) {
        // SAFETY: live while the caller's reference is held (condition).
        let hdr = unsafe { this.as_ref() };
        // Release: our accesses to the buffer happen before the release
        // that the last holder runs (paired with the Acquire fence below).
        if hdr.refcnt.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Acquire: pairs with every other holder's Release decrement above,
        // so their buffer accesses happen before the release runs.
        fence(Ordering::Acquire);
        // SAFETY: the count reached 0: this is the one release (nobody else
        // holds a reference); `release` was set for this info's type.
        unsafe { (hdr.release)(this) };
    }
}

/// A concrete shared info: the header followed by what the release needs.
#[repr(C)]
struct Shared<X> {
    hdr: SharedHdr,
    extra: X,
}

/// Releases a heap info holding the buffer's owner: drops the owner.
unsafe fn release_owner<O>(this: NonNull<SharedHdr>) {
    // SAFETY: `this` came from `Box::into_raw` of a `Shared<O>` (set with
    // this function in `from_owner`); the last reference is gone.
    drop(unsafe { Box::from_raw(this.cast::<Shared<O>>().as_ptr()) });
}

/// Releases a heap info holding a free callback: calls it, frees the info.
unsafe fn release_callback<F: FnOnce(NonNull<u8>)>(this: NonNull<SharedHdr>) {
    // SAFETY: `this` came from `Box::into_raw` of a `Shared<(NonNull<u8>, F)>`
    // (set with this function in `from_raw`); the last reference is gone.
    let b = unsafe { Box::from_raw(this.cast::<Shared<(NonNull<u8>, F)>>().as_ptr()) };
    let (addr, free) = b.extra;
    free(addr);
}

/// Releases an info placed at the buffer's tail: moves the callback out,
/// then calls it (the info's bytes belong to the buffer the callback frees).
unsafe fn release_tail<F: FnOnce(NonNull<u8>)>(this: NonNull<SharedHdr>) {
    let p = this.cast::<Shared<(NonNull<u8>, F)>>().as_ptr();
    // SAFETY: `p` is the tail info written by `from_raw_tail_shinfo`, read
    // once (this is the one release); nothing reads it afterwards.
    let (addr, free) = unsafe { std::ptr::read(std::ptr::addr_of!((*p).extra)) };
    free(addr);
}

/// One reference to an external buffer and its shared info.
///
/// `Send + Sync`: the release (owner drop or callback, both `Send`) may run
/// on any thread, and the handle gives no access to the bytes (an mbuf it
/// is attached to does, while the buffer is not shared).
///
/// ```
/// use pktmem_mbuf::{ExtBuf, PktPool};
/// let pool = PktPool::builder(8).build_anonymous().unwrap();
/// let frame = vec![7u8; 1500];
/// let ext = ExtBuf::from_owner(frame, None).unwrap();
/// assert_eq!(ext.len(), 1500);
/// let mut m = pool.alloc_default().unwrap();
/// m.attach_extbuf(ext).unwrap();      // the mbuf holds the only reference
/// m.grow_tail(1500).unwrap();           // the frame's bytes are the data
/// assert_eq!(m.data()[0], 7);
/// drop(m);                              // the Vec is dropped here
/// ```
pub struct ExtBuf {
    pub(crate) shinfo: NonNull<SharedHdr>,
    pub(crate) addr: NonNull<u8>,
    pub(crate) iova: u64,
    pub(crate) len: u16,
}

// SAFETY: the handle owns a reference (an atomic count); the release it may
// run is `Send` (owner and callback bounds), and it gives no access to the
// buffer's bytes.
unsafe impl Send for ExtBuf {}
// SAFETY: `&ExtBuf` only reads immutable fields and may take a reference
// (an atomic increment).
unsafe impl Sync for ExtBuf {}

impl fmt::Debug for ExtBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtBuf")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .field("iova", &self.iova())
            .field("refcnt", &self.refcnt())
            .finish_non_exhaustive()
    }
}

fn check_len(len: usize) -> Result<u16, ExtBufError> {
    if len == 0 {
        return Err(ExtBufError::Empty);
    }
    u16::try_from(len).map_err(|_| ExtBufError::TooLong {
        len,
        max: EXT_BUF_MAX,
    })
}

fn raw_iova(iova: Option<Iova>) -> u64 {
    iova.map_or(NO_IOVA, |i| i.0)
}

/// A heap shared info that owns `owner` (dropped at the release), with the
/// address and length of the owner's bytes; `Empty` (the owner dropped
/// here) when it has none, or what `check` says about the length.
fn owner_info<O, L>(
    owner: O,
    check: impl FnOnce(usize) -> Result<L, ExtBufError>,
) -> Result<(NonNull<SharedHdr>, NonNull<u8>, L), ExtBufError>
where
    O: AsMut<[u8]> + Send + 'static,
{
    let mut b = Box::new(Shared {
        hdr: SharedHdr::new(release_owner::<O>, std::ptr::null_mut()),
        extra: owner,
    });
    // The bytes' address, taken once the owner sits where it stays.
    let bytes = b.extra.as_mut();
    let len = check(bytes.len())?;
    let addr = NonNull::new(bytes.as_mut_ptr()).ok_or(ExtBufError::Empty)?;
    Ok((NonNull::from(Box::leak(b)).cast(), addr, len))
}

/// A heap shared info whose release calls `free(addr)`.
fn callback_info<F>(addr: NonNull<u8>, free: F) -> NonNull<SharedHdr>
where
    F: FnOnce(NonNull<u8>) + Send + 'static,
{
    let b = Box::new(Shared {
        hdr: SharedHdr::new(release_callback::<F>, std::ptr::null_mut()),
        extra: (addr, free),
    });
    NonNull::from(Box::leak(b)).cast()
}

impl ExtBuf {
    /// An external buffer owned by `owner` (a `Vec<u8>`, a boxed array, a
    /// memory map, a device buffer handle: anything that derefs to bytes and
    /// keeps them at one address while it lives). `owner` is dropped when the
    /// last reference goes, on the thread that drops it. `iova` is the IOVA
    /// of the first byte, if a device may use it.
    ///
    /// ```
    /// use pktmem_mbuf::ExtBuf;
    /// let ext = ExtBuf::from_owner(vec![0u8; 4096], None).unwrap();
    /// let other = ext.clone();
    /// assert_eq!(other.refcnt(), 2);
    /// assert!(ExtBuf::from_owner(vec![0u8; 70_000], None).is_err()); // above 16 bits
    /// ```
    pub fn from_owner<O>(owner: O, iova: Option<Iova>) -> Result<ExtBuf, ExtBufError>
    where
        O: AsMut<[u8]> + Send + 'static,
    {
        let (shinfo, addr, len) = owner_info(owner, check_len)?;
        Ok(ExtBuf {
            shinfo,
            addr,
            iova: raw_iova(iova),
            len,
        })
    }

    /// An external buffer at `addr` of `len` bytes; `free(addr)` runs once
    /// when the last reference goes (on that thread). The shared info is on
    /// the heap.
    ///
    /// # Safety
    /// - `addr..addr + len` is valid for reads and writes, and nothing else
    ///   accesses it, until `free` runs.
    ///
    /// ```
    /// use pktmem_mbuf::ExtBuf;
    /// use std::ptr::NonNull;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use std::sync::Arc;
    /// let freed = Arc::new(AtomicUsize::new(0));
    /// let buf: &'static mut [u8] = Box::leak(vec![0u8; 256].into_boxed_slice());
    /// let (addr, len) = (NonNull::new(buf.as_mut_ptr()).unwrap(), buf.len());
    /// let f = freed.clone();
    /// // SAFETY: the leaked slice is ours until the callback rebuilds the box.
    /// let ext = unsafe {
    ///     ExtBuf::from_raw(addr, len, None, move |p| {
    ///         drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p.as_ptr(), len)));
    ///         f.fetch_add(1, Ordering::Relaxed);
    ///     })
    /// }
    /// .unwrap();
    /// drop(ext.clone());
    /// assert_eq!(freed.load(Ordering::Relaxed), 0);
    /// drop(ext);
    /// assert_eq!(freed.load(Ordering::Relaxed), 1);
    /// ```
    pub unsafe fn from_raw<F>(
        addr: NonNull<u8>,
        len: usize,
        iova: Option<Iova>,
        free: F,
    ) -> Result<ExtBuf, ExtBufError>
    where
        F: FnOnce(NonNull<u8>) + Send + 'static,
    {
        let len = check_len(len)?;
        Ok(ExtBuf {
            shinfo: callback_info(addr, free),
            addr,
            iova: raw_iova(iova),
            len,
        })
    }

    /// Bytes [`from_raw_tail_shinfo`](Self::from_raw_tail_shinfo) takes from
    /// the tail of a buffer for a callback of type `F` (before alignment).
    pub const fn tail_shinfo_size<F>() -> usize {
        size_of::<Shared<(NonNull<u8>, F)>>()
    }

    /// An external buffer at `addr` of `len` bytes whose shared info is
    /// placed at its tail (aligned down), as the reference's helper does: no
    /// allocation when `free` captures nothing. The usable length
    /// ([`len`](Self::len)) is what is left before the info. `free(addr)`
    /// runs once when the last reference goes.
    ///
    /// # Safety
    /// - `addr..addr + len` is valid for reads and writes, and nothing else
    ///   accesses it, until `free` runs.
    ///
    /// ```
    /// use pktmem_mbuf::ExtBuf;
    /// use std::ptr::NonNull;
    /// let buf: &'static mut [u8] = Box::leak(vec![0u8; 4096].into_boxed_slice());
    /// let addr = NonNull::new(buf.as_mut_ptr()).unwrap();
    /// // SAFETY: the leaked slice is only used through the ExtBuf; the
    /// // callback frees it.
    /// let ext = unsafe {
    ///     ExtBuf::from_raw_tail_shinfo(addr, 4096, None, |p| {
    ///         drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p.as_ptr(), 4096)));
    ///     })
    /// }
    /// .unwrap();
    /// assert!(ext.len() < 4096 && ext.len() >= 4096 - 64);
    /// // SAFETY: the buffer is writable and nothing else uses it.
    /// assert!(unsafe { ExtBuf::from_raw_tail_shinfo(addr, 8, None, |_| ()) }.is_err());
    /// ```
    pub unsafe fn from_raw_tail_shinfo<F>(
        addr: NonNull<u8>,
        len: usize,
        iova: Option<Iova>,
        free: F,
    ) -> Result<ExtBuf, ExtBufError>
    where
        F: FnOnce(NonNull<u8>) + Send + 'static,
    {
        type S<F> = Shared<(NonNull<u8>, F)>;
        if len == 0 {
            return Err(ExtBufError::Empty);
        }
        let need = size_of::<S<F>>() + align_of::<S<F>>();
        let end = (addr.as_ptr() as usize)
            .checked_add(len)
            .ok_or(ExtBufError::Empty)?;
        let at = (end - size_of::<S<F>>()) & !(align_of::<S<F>>() - 1);
        if len <= need || at <= addr.as_ptr() as usize {
            return Err(ExtBufError::TooSmall { len, needed: need });
        }
        let usable = at - addr.as_ptr() as usize;
        let usable = check_len(usable)?;
        // `at` lies inside the buffer, aligned for S<F>, with room for it.
        let p = addr
            .as_ptr()
            .wrapping_add(at - addr.as_ptr() as usize)
            .cast::<S<F>>();
        // SAFETY: `p..p+size_of S` is inside the caller's buffer (checked
        // above), writable (condition) and aligned.
        unsafe {
            p.write(Shared {
                hdr: SharedHdr::new(release_tail::<F>, std::ptr::null_mut()),
                extra: (addr, free),
            });
        }
        Ok(ExtBuf {
            // SAFETY: `p` is inside a non-null buffer.
            shinfo: unsafe { NonNull::new_unchecked(p) }.cast(),
            addr,
            iova: raw_iova(iova),
            len: usable,
        })
    }

    /// Address of the buffer's first byte.
    pub fn addr(&self) -> NonNull<u8> {
        self.addr
    }

    /// Usable length of the buffer.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Never true: an external buffer has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// IOVA of the buffer's first byte, if it has one.
    pub fn iova(&self) -> Option<Iova> {
        (self.iova != NO_IOVA).then_some(Iova(self.iova))
    }

    /// References to the buffer now (handles and attached mbufs).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: live while this handle's reference is held.
        unsafe { self.shinfo.as_ref() }
            .refcnt
            .load(Ordering::Relaxed)
    }

    /// Another reference, like [`clone`](Clone::clone), through `&mut self`:
    /// when this handle holds the only reference (count 1) the second one is
    /// taken with a plain store instead of an atomic read-modify-write, as the
    /// reference's `rte_mbuf_ext_refcnt_update` does at count 1.
    ///
    /// ```
    /// use pktmem_mbuf::{ExtBuf, PktPool};
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut ext = ExtBuf::from_owner(vec![0u8; 4096], None).unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.attach_extbuf(ext.clone_mut()).unwrap();
    /// assert_eq!(ext.refcnt(), 2);
    /// m.detach();
    /// assert_eq!(ext.refcnt(), 1);
    /// ```
    #[must_use]
    pub fn clone_mut(&mut self) -> ExtBuf {
        // SAFETY: live while this handle's reference is held.
        let sh = unsafe { self.shinfo.as_ref() };
        // Acquire: pairs with the Release decrement of whoever gave up the
        // other references, as for any change after a last-holder check.
        if sh.refcnt.load(Ordering::Acquire) == 1 {
            // Count 1: the only reference is this handle's, and `&mut self`
            // keeps every other thread away from it, so nobody else can take
            // or drop a reference meanwhile (both need one): a plain store.
            sh.refcnt.store(2, Ordering::Relaxed);
            return ExtBuf {
                shinfo: self.shinfo,
                addr: self.addr,
                iova: self.iova,
                len: self.len,
            };
        }
        self.clone()
    }

    /// Another reference, or `None` when the 16-bit count is at its maximum.
    pub fn try_clone(&self) -> Option<ExtBuf> {
        // SAFETY: live while this handle's reference is held.
        unsafe { self.shinfo.as_ref() }
            .try_acquire()
            .then(|| ExtBuf {
                shinfo: self.shinfo,
                addr: self.addr,
                iova: self.iova,
                len: self.len,
            })
    }

    /// A reference to the bytes `range` of this buffer (offsets from its
    /// first byte): the same shared info, one more reference on it, the
    /// address, length and IOVA (when the buffer has one) of the part. The
    /// buffer's release still runs once, after the last reference to it or
    /// to any of its slices is gone. Refused with the numbers for an empty
    /// range, a range that does not lie inside the buffer, or a shared
    /// count at its 16-bit maximum.
    ///
    /// ```
    /// use pktmem_hugemem::Iova;
    /// use pktmem_mbuf::{ExtBuf, ExtSliceError, PktPool};
    /// let pool = PktPool::builder(8).build_anonymous().unwrap();
    /// let block: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    /// let ext = ExtBuf::from_owner(block, Some(Iova(0x10_0000))).unwrap();
    /// let frame = ext.slice(100..164).unwrap();
    /// assert_eq!((frame.len(), frame.iova(), ext.refcnt()), (64, Some(Iova(0x10_0064)), 2));
    /// assert_eq!(
    ///     ext.slice(4000..4100).unwrap_err(),
    ///     ExtSliceError::OutOfRange { start: 4000, end: 4100, len: 4096 }
    /// );
    /// let mut m = pool.alloc_default().unwrap();
    /// m.attach_extbuf(frame).unwrap();
    /// m.grow_tail(64).unwrap(); // exactly the frame's bytes
    /// assert_eq!(m.data()[0], 100);
    /// drop(ext); // the mbuf's slice keeps the Vec alive
    /// assert_eq!(m.data()[63], 163);
    /// drop(m); // the Vec is dropped here, once
    /// ```
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<ExtBuf, ExtSliceError> {
        slice_of(self.shinfo, self.addr, self.iova, self.len(), range)
    }
}

/// A reference to `range` of the buffer `addr..addr + len` whose shared
/// info is `shinfo` (one more reference on it), the caller holding one.
fn slice_of(
    shinfo: NonNull<SharedHdr>,
    addr: NonNull<u8>,
    iova: u64,
    len: usize,
    range: impl RangeBounds<usize>,
) -> Result<ExtBuf, ExtSliceError> {
    let start = match range.start_bound() {
        Bound::Included(&s) => Some(s),
        Bound::Excluded(&s) => s.checked_add(1),
        Bound::Unbounded => Some(0),
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.checked_add(1),
        Bound::Excluded(&e) => Some(e),
        Bound::Unbounded => Some(len),
    };
    let (Some(start), Some(end)) = (start, end) else {
        // A bound one past `usize::MAX`: outside any buffer.
        return Err(ExtSliceError::OutOfRange {
            start: start.unwrap_or(usize::MAX),
            end: end.unwrap_or(usize::MAX),
            len,
        });
    };
    if start > end || end > len {
        return Err(ExtSliceError::OutOfRange { start, end, len });
    }
    if start == end {
        return Err(ExtSliceError::Empty { at: start });
    }
    let Ok(part) = u16::try_from(end - start) else {
        return Err(ExtSliceError::TooLong {
            len: end - start,
            max: EXT_BUF_MAX,
        });
    };
    // SAFETY: live while the caller's reference is held (condition of
    // every caller: it is a method of a handle owning one).
    if !unsafe { shinfo.as_ref() }.try_acquire() {
        return Err(ExtSliceError::RefcntMax { max: u16::MAX });
    }
    Ok(ExtBuf {
        shinfo,
        // SAFETY: `start < end <= len`: inside the buffer, so non-null.
        addr: unsafe { NonNull::new_unchecked(addr.as_ptr().add(start)) },
        // No IOVA stays none; one that would wrap has none either.
        iova: if iova == NO_IOVA {
            NO_IOVA
        } else {
            iova.checked_add(start as u64).unwrap_or(NO_IOVA)
        },
        len: part,
    })
}

/// One reference to an external memory region of any length and its shared
/// info: a block of a kernel packet ring, a device's buffer area. It is not
/// attached to an mbuf itself (an mbuf's buffer is at most
/// [`EXT_BUF_MAX`] bytes); its [slices](Self::slice) are, each an
/// [`ExtBuf`] of up to [`EXT_BUF_MAX`] bytes sharing the region's info. The
/// release runs once, when the last reference to the region or to any of
/// its slices goes, on that thread.
///
/// ```
/// use pktmem_mbuf::{ExtRegion, ExtSliceError, PktPool};
/// let pool = PktPool::builder(8).build_anonymous().unwrap();
/// let region = ExtRegion::from_owner(vec![9u8; 1 << 20], None).unwrap(); // 1 MiB
/// let frame = region.slice(900_000..901_500).unwrap();
/// assert_eq!((frame.len(), region.refcnt()), (1500, 2));
/// assert!(matches!(region.slice(0..70_000), Err(ExtSliceError::TooLong { len: 70_000, .. })));
/// let mut m = pool.alloc_default().unwrap();
/// m.attach_extbuf(frame).unwrap();
/// m.grow_tail(1500).unwrap();
/// drop(region); // the mbuf's slice keeps the Vec
/// assert_eq!(m.data()[1499], 9);
/// ```
pub struct ExtRegion {
    shinfo: NonNull<SharedHdr>,
    addr: NonNull<u8>,
    iova: u64,
    len: usize,
}

// SAFETY: as for `ExtBuf`: the handle owns a reference (an atomic count),
// the release it may run is `Send`, and it gives no access to the bytes.
unsafe impl Send for ExtRegion {}
// SAFETY: `&ExtRegion` only reads immutable fields and may take a
// reference (an atomic increment).
unsafe impl Sync for ExtRegion {}

impl fmt::Debug for ExtRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtRegion")
            .field("addr", &self.addr)
            .field("len", &self.len)
            .field("iova", &self.iova())
            .field("refcnt", &self.refcnt())
            .finish_non_exhaustive()
    }
}

impl ExtRegion {
    /// A region owned by `owner` (anything that derefs to bytes and keeps
    /// them at one address while it lives), dropped when the last reference
    /// goes. `iova` is the IOVA of the first byte, if the region is
    /// IOVA-contiguous.
    pub fn from_owner<O>(owner: O, iova: Option<Iova>) -> Result<ExtRegion, ExtBufError>
    where
        O: AsMut<[u8]> + Send + 'static,
    {
        let nonempty = |len| {
            if len == 0 {
                Err(ExtBufError::Empty)
            } else {
                Ok(len)
            }
        };
        let (shinfo, addr, len) = owner_info(owner, nonempty)?;
        Ok(ExtRegion {
            shinfo,
            addr,
            iova: raw_iova(iova),
            len,
        })
    }

    /// A region at `addr` of `len` bytes; `free(addr)` runs once when the
    /// last reference goes (on that thread). The shared info is on the
    /// heap.
    ///
    /// # Safety
    /// - `addr..addr + len` is valid for reads and writes, and nothing else
    ///   accesses it, until `free` runs.
    ///
    /// ```
    /// use pktmem_mbuf::ExtRegion;
    /// use std::ptr::NonNull;
    /// let buf: &'static mut [u8] = Box::leak(vec![0u8; 256 * 1024].into_boxed_slice());
    /// let (addr, len) = (NonNull::new(buf.as_mut_ptr()).unwrap(), buf.len());
    /// // SAFETY: the leaked slice is ours until the callback rebuilds the box.
    /// let region = unsafe {
    ///     ExtRegion::from_raw(addr, len, None, move |p| {
    ///         drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p.as_ptr(), len)));
    ///     })
    /// }
    /// .unwrap();
    /// assert_eq!(region.len(), 256 * 1024);
    /// ```
    pub unsafe fn from_raw<F>(
        addr: NonNull<u8>,
        len: usize,
        iova: Option<Iova>,
        free: F,
    ) -> Result<ExtRegion, ExtBufError>
    where
        F: FnOnce(NonNull<u8>) + Send + 'static,
    {
        if len == 0 {
            return Err(ExtBufError::Empty);
        }
        Ok(ExtRegion {
            shinfo: callback_info(addr, free),
            addr,
            iova: raw_iova(iova),
            len,
        })
    }

    /// A reference to the bytes `range` of the region, as an [`ExtBuf`]
    /// (at most [`EXT_BUF_MAX`] bytes) on the region's shared info: see
    /// [`ExtBuf::slice`].
    pub fn slice(&self, range: impl RangeBounds<usize>) -> Result<ExtBuf, ExtSliceError> {
        slice_of(self.shinfo, self.addr, self.iova, self.len, range)
    }

    /// Address of the region's first byte.
    pub fn addr(&self) -> NonNull<u8> {
        self.addr
    }

    /// Length of the region.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: a region has at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// IOVA of the region's first byte, if it has one.
    pub fn iova(&self) -> Option<Iova> {
        (self.iova != NO_IOVA).then_some(Iova(self.iova))
    }

    /// References to the region now (handles and slices, with the mbufs
    /// they are attached to).
    pub fn refcnt(&self) -> u16 {
        // SAFETY: live while this handle's reference is held.
        unsafe { self.shinfo.as_ref() }
            .refcnt
            .load(Ordering::Relaxed)
    }
}

impl Drop for ExtRegion {
    fn drop(&mut self) {
        // SAFETY: this handle owns one reference and gives it up here.
        unsafe { SharedHdr::release_ref(self.shinfo) };
    }
}

/// Why [`ExtBuf::slice`] or [`ExtRegion::slice`] refused a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtSliceError {
    /// The range does not lie inside the buffer (or ends before it starts).
    OutOfRange {
        /// First offset asked for.
        start: usize,
        /// One past the last offset asked for.
        end: usize,
        /// The buffer's length.
        len: usize,
    },
    /// The range is longer than an mbuf's buffer can be (only from an
    /// [`ExtRegion`]: an `ExtBuf` is never longer).
    TooLong {
        /// Bytes in the range.
        len: usize,
        /// Largest slice ([`EXT_BUF_MAX`]).
        max: usize,
    },
    /// The range holds no byte (an external buffer has at least one).
    Empty {
        /// Where the empty range starts.
        at: usize,
    },
    /// The buffer's shared count is at its maximum: no reference was taken.
    RefcntMax {
        /// The maximum (65,535 references).
        max: u16,
    },
}

impl fmt::Display for ExtSliceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { start, end, len } => write!(
                f,
                "slice {start}..{end} does not lie inside the external buffer of {len} B"
            ),
            Self::TooLong { len, max } => write!(
                f,
                "slice of {len} B is longer than an mbuf's buffer can be ({max} B)"
            ),
            Self::Empty { at } => write!(f, "empty slice at offset {at} of an external buffer"),
            Self::RefcntMax { max } => write!(
                f,
                "external buffer's shared count is at its maximum ({max}): no slice taken"
            ),
        }
    }
}

impl std::error::Error for ExtSliceError {}

impl Clone for ExtBuf {
    /// Another reference. Aborts the process if the 16-bit count would wrap
    /// (as `Arc` does on overflow); [`try_clone`](Self::try_clone) returns
    /// `None` instead.
    fn clone(&self) -> Self {
        self.try_clone().unwrap_or_else(|| std::process::abort())
    }
}

impl Drop for ExtBuf {
    fn drop(&mut self) {
        // SAFETY: this handle owns one reference and gives it up here.
        unsafe { SharedHdr::release_ref(self.shinfo) };
    }
}
