//! Pinned external-buffer pools: every mbuf's buffer is a fixed slice of
//! caller-registered external memory, and its shared info lives in the pool
//! object after the header and private area (so it lives as long as the
//! pool). An mbuf whose buffer is still referenced by clones when it is
//! freed stays out of the pool; the last reference returns it.

use std::mem::{size_of, MaybeUninit};
use std::ptr::NonNull;

use pktmem_hugemem::{Chunk, ExternalLease, Iova, LeaseError, Provider};
use pktmem_mempool::MempoolBuilder;

use crate::error::BuildError;
use crate::ext::SharedHdr;
use crate::header::{MbufHeader, F_EXTERNAL, HEADER_SIZE, NO_IOVA};
use crate::mbuf::put_default;
use crate::pool::fresh_header;
use crate::sync::Ordering;

/// The smallest page: IOVAs are linear inside any page, so checking a
/// buffer's IOVA at every 4 KiB boundary checks every page boundary.
const STEP: usize = 4096;

/// Bytes a pinned pool's object keeps after the private area for the
/// buffer's shared info.
pub(crate) const PINNED_SHINFO_SIZE: usize = size_of::<SharedHdr>().next_multiple_of(8);

/// One area of external memory for a pinned pool: `len` bytes at `addr`,
/// cut into buffers of `elt_size` bytes, each with its IOVA (or none).
///
/// Made safely from memory registered with a [`Provider`]
/// ([`from_external`](Self::from_external): the pool holds a lease on the
/// registration, so the memory cannot be unregistered while the pool
/// lives, and each buffer's IOVA comes from the provider's page table),
/// safely from a provider [`Chunk`] the pool then owns
/// ([`from_chunk`](Self::from_chunk): the chunk goes back to its provider
/// when the pool and all its mbufs are gone), or from raw memory the caller
/// vouches for ([`new`](Self::new)).
#[derive(Debug)]
pub struct PinnedArea {
    addr: NonNull<u8>,
    len: usize,
    elt_size: usize,
    iova: AreaIova,
    /// Keeps the memory while the pool lives.
    _keep: Keep,
}

/// What keeps a pinned area's memory alive while its pool lives.
#[derive(Debug)]
enum Keep {
    /// The caller vouched for it ([`PinnedArea::new`]).
    Nothing,
    /// A lease on an external registration.
    Lease(#[allow(dead_code)] ExternalLease),
    /// The provider chunk itself, given back when the pool goes.
    Chunk(#[allow(dead_code)] Chunk),
}

/// How a pinned area knows its buffers' IOVAs.
#[derive(Debug)]
enum AreaIova {
    /// One IOVA-contiguous run from this IOVA (or no IOVA at all).
    Contiguous(Option<Iova>),
    /// One IOVA per buffer (`NO_IOVA` for none), looked up at creation.
    PerBuffer(Vec<u64>),
}

// SAFETY: an area is a description (address, lengths, IOVAs) plus what
// keeps its memory (a lease or a provider chunk, both `Send + Sync`, or
// nothing); the memory is only reached through the pool's mbufs, never
// through the area.
unsafe impl Send for PinnedArea {}
// SAFETY: as for `Send`: `&PinnedArea` reads immutable fields only.
unsafe impl Sync for PinnedArea {}
const _: fn() = || {
    fn keeps<T: Send + Sync>() {}
    keeps::<ExternalLease>();
    keeps::<Chunk>();
};

/// Why [`PinnedArea::from_external`] refused an area.
#[derive(Debug)]
#[non_exhaustive]
pub enum PinnedAreaError {
    /// The range is not inside one registered external range of the
    /// provider (or it is being unregistered).
    Lease(LeaseError),
    /// The element size is zero, above 65,535, or does not divide the length.
    BadElementSize {
        /// The element size.
        elt_size: usize,
        /// The area's length.
        len: usize,
    },
    /// A buffer spans pages whose IOVAs do not follow each other, so a
    /// device could not use it as one run.
    NotIovaContiguous {
        /// Index of the buffer in the area.
        buffer: usize,
    },
}

impl std::fmt::Display for PinnedAreaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Lease(e) => write!(f, "pinned area: {e}"),
            Self::BadElementSize { elt_size, len } => write!(
                f,
                "pinned area of {len} B cannot be cut into buffers of {elt_size} B (1..=65535, dividing the length)"
            ),
            Self::NotIovaContiguous { buffer } => {
                write!(f, "pinned area buffer {buffer} spans pages that are not IOVA-contiguous")
            }
        }
    }
}

impl std::error::Error for PinnedAreaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Lease(e) => Some(e),
            _ => None,
        }
    }
}

impl PinnedArea {
    /// An area over `len` bytes at `addr` of memory registered with
    /// `provider` ([`Provider::register_external`] or
    /// [`register_external_owned`](Provider::register_external_owned)),
    /// cut into buffers of `elt_size` bytes. Takes a lease on the
    /// registration, labelled `user` (the pool holds it: the memory cannot
    /// be unregistered under the pool), and looks up each buffer's IOVA
    /// once, here: allocation does no lookup.
    ///
    /// `unsafe` because registering memory is safe (it only records an
    /// address range), so the registration cannot tell who else writes the
    /// range: the ring memory of a kernel packet socket, a device's BAR, or
    /// another pool's buffers may be registered too, and a pinned pool hands
    /// out writable mbufs over it. [`from_chunk`](Self::from_chunk) is the
    /// safe way for provider memory (the pool owns the chunk).
    ///
    /// # Safety
    /// - `addr..addr + len` is accessed only through the pool's mbufs (no
    ///   other code, device or kernel writes or reads it meanwhile) from
    ///   now until the pool and every mbuf of it are gone.
    ///
    /// ```
    /// use pktmem_hugemem::{Iova, Provider};
    /// use pktmem_mbuf::{PinnedArea, PktPool};
    /// let provider = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let map = memmap2::MmapMut::map_anon(8 * 4096).unwrap();
    /// let at = map.as_ptr() as *mut u8;
    /// let iovas: Vec<Iova> = (0..8).map(|i| Iova(0x10_0000 + i * 4096)).collect();
    /// let reg = provider.register_external_owned(map, 4096, Some(&iovas)).unwrap();
    /// // SAFETY: the map is the registration's now, and nothing but the
    /// // pool's mbufs touches it.
    /// let area = unsafe { PinnedArea::from_external(&provider, at, 8 * 4096, 2048, "rx pool") }
    ///     .unwrap();
    /// let pool = PktPool::builder(16).pinned([area]).build_anonymous().unwrap();
    /// let m = pool.alloc_default().unwrap();
    /// assert_eq!(m.buf_iova(), Some(Iova(0x10_0000)));
    /// assert!(reg.unregister().is_err()); // the pool holds a lease
    /// drop(m);
    /// drop(pool);
    /// ```
    pub unsafe fn from_external(
        provider: &Provider,
        addr: *mut u8,
        len: usize,
        elt_size: usize,
        user: &str,
    ) -> Result<PinnedArea, PinnedAreaError> {
        if elt_size == 0 || elt_size > usize::from(u16::MAX) || len % elt_size != 0 || len == 0 {
            return Err(PinnedAreaError::BadElementSize { elt_size, len });
        }
        let lease = provider
            .lease_external(addr, len, user)
            .map_err(PinnedAreaError::Lease)?;
        let n = len / elt_size;
        let mut iovas = Vec::with_capacity(n);
        for i in 0..n {
            let b = addr.wrapping_add(i * elt_size);
            let first = provider.virt2iova(b);
            // Every page the buffer runs into must follow on from its first
            // byte (the first and last bytes alone would pass a middle page
            // that lies elsewhere).
            let mut off = STEP - (b as usize % STEP);
            while off < elt_size {
                let want = first.map(|f| f.0 + off as u64);
                if provider.virt2iova(b.wrapping_add(off)).map(|v| v.0) != want {
                    return Err(PinnedAreaError::NotIovaContiguous { buffer: i });
                }
                off += STEP;
            }
            iovas.push(first.map_or(NO_IOVA, |f| f.0));
        }
        Ok(PinnedArea {
            // SAFETY: a leased registered range is never at address 0.
            addr: NonNull::new(addr).ok_or(PinnedAreaError::BadElementSize { elt_size, len })?,
            len,
            elt_size,
            iova: AreaIova::PerBuffer(iovas),
            _keep: Keep::Lease(lease),
        })
    }

    /// An area over the whole of `chunk` (its [`len`](Chunk::len) bytes),
    /// cut into buffers of `elt_size` bytes; the area, and then the pool it
    /// is given to, owns the chunk: it goes back to its provider when the
    /// pool and every mbuf of it are gone. Each buffer's IOVA comes from the
    /// provider's page table, looked up once here; a buffer spanning pages
    /// whose IOVAs do not follow each other is refused (so is a mix of pages
    /// with and without IOVA). On error the chunk goes back to its provider.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// use pktmem_mbuf::{PinnedArea, PinnedAreaError, PktPool};
    /// let provider = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let chunk = provider.alloc(8 * 2048).unwrap();
    /// let (at, iova) = (chunk.as_ptr(), chunk.iova());
    /// let area = PinnedArea::from_chunk(chunk, 2048).unwrap();
    /// assert_eq!((area.addr(), area.len(), area.buffers()), (at, 8 * 2048, 8));
    /// let pool = PktPool::builder(8).pinned([area]).build_anonymous().unwrap();
    /// let m = pool.alloc_default().unwrap();
    /// assert_eq!((m.buf_addr(), m.buf_len(), m.buf_iova()), (at, 2048, iova));
    /// drop((m, pool)); // the chunk goes back to the provider here
    ///
    /// let odd = provider.alloc(5000).unwrap();
    /// assert!(matches!(
    ///     PinnedArea::from_chunk(odd, 2048),
    ///     Err(PinnedAreaError::BadElementSize { elt_size: 2048, len: 5000 })
    /// ));
    /// ```
    pub fn from_chunk(chunk: Chunk, elt_size: usize) -> Result<PinnedArea, PinnedAreaError> {
        let len = chunk.len();
        if elt_size == 0 || elt_size > usize::from(u16::MAX) || len % elt_size != 0 || len == 0 {
            return Err(PinnedAreaError::BadElementSize { elt_size, len });
        }
        let addr = chunk.as_ptr();
        let n = len / elt_size;
        let page = chunk.page_size();
        let mut iovas = Vec::with_capacity(n);
        for i in 0..n {
            let off = i * elt_size;
            let first = chunk.iova_at(off);
            // Every page the buffer runs into must follow on from its first
            // byte (IOVAs are linear inside a page): comparing the first and
            // last bytes alone would pass a buffer over three or more pages
            // whose middle one lies elsewhere.
            let mut b = (off / page + 1) * page;
            while b < off + elt_size {
                let want = first.map(|f| f.0 + (b - off) as u64);
                if chunk.iova_at(b).map(|v| v.0) != want {
                    return Err(PinnedAreaError::NotIovaContiguous { buffer: i });
                }
                b += page;
            }
            iovas.push(first.map_or(NO_IOVA, |f| f.0));
        }
        Ok(PinnedArea {
            addr,
            len,
            elt_size,
            iova: AreaIova::PerBuffer(iovas),
            _keep: Keep::Chunk(chunk),
        })
    }

    /// Describes an area of raw memory.
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
    pub unsafe fn new(
        addr: NonNull<u8>,
        iova: Option<Iova>,
        len: usize,
        elt_size: usize,
    ) -> PinnedArea {
        PinnedArea {
            addr,
            len,
            elt_size,
            iova: AreaIova::Contiguous(iova),
            _keep: Keep::Nothing,
        }
    }

    /// Address of the area's first byte (its first buffer).
    pub fn addr(&self) -> NonNull<u8> {
        self.addr
    }

    /// Bytes of the area.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the area has no bytes (which a pool refuses).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of each buffer.
    pub fn elt_size(&self) -> usize {
        self.elt_size
    }

    /// Buffers the area holds.
    pub fn buffers(&self) -> usize {
        self.len.checked_div(self.elt_size).unwrap_or(0)
    }

    /// IOVA of buffer `i` (raw, `NO_IOVA` for none).
    fn buffer_iova(&self, i: usize) -> u64 {
        match &self.iova {
            AreaIova::Contiguous(v) => v.map_or(NO_IOVA, |v| v.0 + (i * self.elt_size) as u64),
            AreaIova::PerBuffer(v) => v.get(i).copied().unwrap_or(NO_IOVA),
        }
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
            if a.len % a.elt_size != 0 || a.len == 0 {
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
            return Err(BuildError::PinnedAreasTooSmall {
                needed: n,
                available,
            });
        }
        Ok(Self { areas })
    }

    /// The builder set up for pinned objects: room for the shared info, and
    /// an init that binds object `i` to buffer `i`.
    pub(crate) fn install(self, b: MempoolBuilder, priv_size: u16) -> MempoolBuilder {
        let areas = self.areas;
        b.obj_init_shared(move |info, body| {
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
            let iova = a.buffer_iova(slot);
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
        let sh = base
            .add(HEADER_SIZE + usize::from(priv_size))
            .cast::<SharedHdr>();
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
///
/// # Safety
/// - `sh` is the shared info of a pinned pool's object (set up by
///   [`init_pinned`]) whose reference count just dropped to zero, and whose
///   owning mbuf was freed by its owner and held back
///   ([`pinned_decref`] returned `false`): nobody else holds either.
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

#[cfg(test)]
mod tests {
    use super::*;
    use pktmem_hugemem::AllocRequest;

    /// A buffer over three pages whose first and last bytes line up but
    /// whose middle page lies elsewhere is refused (an end-to-end compare
    /// took it), from a chunk and from registered external memory.
    #[test]
    fn every_page_of_a_buffer_is_checked() {
        let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
        let heap = p.create_heap("middle page elsewhere");
        let map = memmap2::MmapMut::map_anon(3 * 4096).unwrap();
        // Pages 0 and 2 where one run would put them; page 1 elsewhere.
        let iovas = [0x10000, 0x90000, 0x12000].map(Iova);
        heap.add_owned(map, 4096, Some(&iovas)).unwrap();
        let c = heap.alloc(&AllocRequest::new(3 * 4096)).unwrap();
        let e = PinnedArea::from_chunk(c, 3 * 4096).unwrap_err();
        assert!(
            matches!(e, PinnedAreaError::NotIovaContiguous { buffer: 0 }),
            "{e}"
        );
        // The same for registered external memory.
        let map = memmap2::MmapMut::map_anon(3 * 4096).unwrap();
        let at = map.as_ptr().cast_mut();
        let _reg = p.register_external_owned(map, 4096, Some(&iovas)).unwrap();
        // SAFETY: the map is the registration's; only this test's areas use it.
        let e =
            unsafe { PinnedArea::from_external(&p, at, 3 * 4096, 3 * 4096, "test") }.unwrap_err();
        assert!(
            matches!(e, PinnedAreaError::NotIovaContiguous { buffer: 0 }),
            "{e}"
        );
        // SAFETY: as above.
        let area = unsafe { PinnedArea::from_external(&p, at, 3 * 4096, 4096, "test") }.unwrap();
        assert_eq!(
            (0..3).map(|i| area.buffer_iova(i)).collect::<Vec<_>>(),
            [0x10000, 0x90000, 0x12000]
        );
        drop(area);
        // Buffers inside one page each are fine, with their page's IOVA.
        let c = heap.alloc(&AllocRequest::new(3 * 4096)).unwrap();
        let area = PinnedArea::from_chunk(c, 4096).unwrap();
        assert_eq!(
            (0..3).map(|i| area.buffer_iova(i)).collect::<Vec<_>>(),
            [0x10000, 0x90000, 0x12000]
        );
    }
}
