//! Pinned external-buffer pools: every mbuf's buffer is a fixed slice of
//! caller-registered external memory, and its shared info lives in the pool
//! object after the header and private area (so it lives as long as the
//! pool). An mbuf whose buffer is still referenced by clones when it is
//! freed stays out of the pool; the last reference returns it.

use std::mem::{size_of, MaybeUninit};
use std::ptr::NonNull;

use pktmem_hugemem::Iova;
use pktmem_mempool::MempoolBuilder;

use crate::error::BuildError;
use crate::ext::SharedHdr;
use crate::header::{MbufHeader, F_EXTERNAL, HEADER_SIZE, NO_IOVA};
use crate::mbuf::put_default;
use crate::pool::fresh_header;
use crate::sync::Ordering;

/// Bytes a pinned pool's object keeps after the private area for the
/// buffer's shared info.
pub(crate) const PINNED_SHINFO_SIZE: usize = size_of::<SharedHdr>().next_multiple_of(8);

/// One area of external memory for a pinned pool: `len` bytes at `addr`
/// (IOVA `iova`), cut into buffers of `elt_size` bytes.
#[derive(Debug, Clone, Copy)]
pub struct PinnedArea {
    addr: NonNull<u8>,
    iova: Option<Iova>,
    len: usize,
    elt_size: usize,
}

// SAFETY: an area is a description (address, lengths); the pool that uses
// it is thread-safe and the caller vouched for the memory (`new`).
unsafe impl Send for PinnedArea {}
// SAFETY: as for `Send`.
unsafe impl Sync for PinnedArea {}

impl PinnedArea {
    /// Describes an area.
    ///
    /// # Safety
    /// - `addr..addr + len` is valid for reads and writes, accessed only
    ///   through the pool's mbufs, and stays so until the pool and every
    ///   mbuf of it are gone; `iova` (if given) is the IOVA of `addr`, and
    ///   the area is IOVA-contiguous.
    ///
    /// ```
    /// use pktmem_mbuf::{PinnedArea, PktPool};
    /// use std::ptr::NonNull;
    /// let mem: &'static mut [u8] = Box::leak(vec![0u8; 16 * 2048].into_boxed_slice());
    /// let addr = NonNull::new(mem.as_mut_ptr()).unwrap();
    /// // SAFETY: leaked memory, used only by the pool.
    /// let area = unsafe { PinnedArea::new(addr, None, 16 * 2048, 2048) };
    /// let pool = PktPool::builder(16).pinned([area]).build_anonymous().unwrap();
    /// let m = pool.alloc_default().unwrap();
    /// assert!(m.is_external() && m.buf_len() == 2048);
    /// ```
    pub unsafe fn new(addr: NonNull<u8>, iova: Option<Iova>, len: usize, elt_size: usize) -> PinnedArea {
        PinnedArea {
            addr,
            iova,
            len,
            elt_size,
        }
    }

    /// Buffers the area holds.
    pub fn buffers(&self) -> usize {
        self.len.checked_div(self.elt_size).unwrap_or(0)
    }
}

/// A checked list of areas, ready to initialise a pool's objects.
pub(crate) struct PinnedSetup {
    areas: Vec<PinnedArea>,
}

impl PinnedSetup {
    pub(crate) fn new(areas: Vec<PinnedArea>, n: usize) -> Result<Self, BuildError> {
        let mut available = 0usize;
        for (index, a) in areas.iter().enumerate() {
            if a.elt_size == 0 || a.elt_size > usize::from(u16::MAX) {
                return Err(BuildError::BadPinnedArea {
                    index,
                    reason: "element size must be 1..=65535 bytes",
                });
            }
            if a.len % a.elt_size != 0 {
                return Err(BuildError::BadPinnedArea {
                    index,
                    reason: "length is not a multiple of the element size",
                });
            }
            if (a.addr.as_ptr() as usize).checked_add(a.len).is_none() {
                return Err(BuildError::BadPinnedArea {
                    index,
                    reason: "area wraps the address space",
                });
            }
            available = available.saturating_add(a.buffers());
        }
        if available < n {
            return Err(BuildError::PinnedAreasTooSmall { needed: n, available });
        }
        Ok(Self { areas })
    }

    /// The builder set up for pinned objects: room for the shared info, and
    /// an init that binds object `i` to buffer `i`.
    pub(crate) fn install(self, b: MempoolBuilder, priv_size: u16) -> MempoolBuilder {
        let areas = self.areas;
        b.obj_init(move |info, body| {
            // Find the buffer of this object (population order).
            let mut i = info.index;
            let mut found = None;
            for a in &areas {
                if i < a.buffers() {
                    found = Some((a, i));
                    break;
                }
                i -= a.buffers();
            }
            let Some((a, slot)) = found else {
                // More objects than buffers cannot happen (checked at
                // build); leave the object unusable rather than alias.
                return;
            };
            let off = slot * a.elt_size;
            // SAFETY: `off + elt_size <= len` (slot < buffers), inside the
            // caller's area.
            let buf = unsafe { a.addr.as_ptr().add(off) };
            let iova = a.iova.map_or(NO_IOVA, |v| v.0 + off as u64);
            init_pinned(body, buf, iova, a.elt_size as u16, priv_size);
        })
    }
}

// Aligned: pool bodies are 64-aligned and the private size a multiple of 8.
#[allow(clippy::cast_ptr_alignment)]
fn init_pinned(body: &mut [MaybeUninit<u8>], buf: *mut u8, iova: u64, len: u16, priv_size: u16) {
    let base = body.as_mut_ptr().cast::<u8>();
    let h = base.cast::<MbufHeader>();
    let mut hdr = fresh_header(buf, iova, len, priv_size);
    // SAFETY: the body is header + private area + PINNED_SHINFO_SIZE bytes,
    // 64-aligned; the shared info sits 8-aligned after the private area.
    unsafe {
        let sh = base.add(HEADER_SIZE + usize::from(priv_size)).cast::<SharedHdr>();
        sh.write(SharedHdr::new(release_pinned, h));
        std::ptr::write_bytes(base.add(HEADER_SIZE), 0, usize::from(priv_size));
        hdr.ol_flags = F_EXTERNAL;
        hdr.shinfo = sh;
        h.write(hdr);
    }
}

/// The release of a pinned buffer's shared info: its last reference went
/// (a clone detached after the owner was freed), so the owning mbuf goes
/// back to its pool.
unsafe fn release_pinned(sh: NonNull<SharedHdr>) {
    // SAFETY: a pinned info lives in its pool object, whose mbuf is out of
    // the pool (freed by its owner, held back until now), so both live.
    unsafe {
        let m = sh.as_ref().pinned_owner;
        sh.as_ref().refcnt.store(1, Ordering::Relaxed);
        (*m).next = std::ptr::null_mut();
        (*m).nb_segs = 1;
        (*m).ol_flags = F_EXTERNAL;
        put_default(NonNull::new_unchecked(m));
    }
}

/// The owner of a pinned buffer is being freed: drops its reference to the
/// buffer; `true` when the mbuf goes back to the pool now, `false` when
/// clones still reference the buffer (the last of them returns it).
///
/// # Safety
/// - `m` is a pinned pool's mbuf whose own refcount its caller just gave up
///   (it is the only holder of the header).
pub(crate) unsafe fn pinned_decref(m: *mut MbufHeader) -> bool {
    // SAFETY: condition; the shared info lives in the pool object.
    let sh = unsafe {
        (*m).ol_flags = F_EXTERNAL;
        &*(*m).shinfo
    };
    // Acquire: pairs with the Release decrement of a clone that gave up
    // its reference, so its reads happen before reuse.
    if sh.refcnt.load(Ordering::Acquire) == 1 {
        return true;
    }
    // AcqRel: Release for our accesses before the last holder's reuse;
    // Acquire when we are that holder.
    if sh.refcnt.fetch_sub(1, Ordering::AcqRel) != 1 {
        return false;
    }
    sh.refcnt.store(1, Ordering::Relaxed);
    true
}
