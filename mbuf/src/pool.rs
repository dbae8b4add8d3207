//! [`PktPool`]: a mempool whose objects are mbufs, and its builder.

use std::mem::MaybeUninit;
use std::ptr::{self, NonNull};

use arrayvec::ArrayVec;
use pktmem_hugemem::Provider;
use pktmem_mempool::{Cache, Mempool, MempoolBuilder, Obj, ObjInfo};

use crate::error::{AllocError, BuildError};
use crate::header::{MbufHeader, F_EXTERNAL, HEADER_SIZE, INTERNAL_FLAGS, NO_IOVA};
use crate::mbuf::{free_chain_with, prefree_seg_next, put_cached, put_default, NO_PORT};
use crate::pinned::{PinnedArea, PinnedSetup, PINNED_SHINFO_SIZE};
use crate::sync::AtomicU16;
use crate::{Mbuf, HEADROOM};

/// Default data room: 2048 bytes of data plus the 128-byte headroom.
pub const DEFAULT_DATA_ROOM: usize = 2048 + HEADROOM;

/// Largest data room (the header's buffer length is 16 bits).
pub const MAX_DATA_ROOM: usize = u16::MAX as usize;

/// A pool of packet buffers: a cheap-to-clone handle.
///
/// Each object is an [`MbufHeader`], then the private area, then the data
/// room (whose first [`HEADROOM`] bytes are the default headroom). Every
/// buffer's IOVA is computed once, at population, from the object's IOVA:
/// allocation does no lookup. Allocation through an explicit [`Cache`]
/// ([`alloc`](Self::alloc)) is the fast path; [`alloc_default`](Self::alloc_default)
/// uses the calling thread's default cache.
///
/// ```
/// use pktmem_mbuf::PktPool;
/// use pktmem_hugemem::Provider;
/// let provider = Provider::builder().quiet(true).build().unwrap();
/// let pool = PktPool::builder(1023).cache(64).build_on(&provider).unwrap();
/// let mut cache = pool.cache();
/// let mut m = pool.alloc(&mut cache).unwrap();
/// m.append(4).unwrap().copy_from_slice(b"ping");
/// assert_eq!(m.headroom(), 128);
/// assert_eq!(m.data_iova().is_some(), pool.mempool().tracks_iova() && m.buf_iova().is_some());
/// pool.free(&mut cache, m);
/// drop(cache);
/// assert!(pool.is_full());
/// ```
#[derive(Clone, Debug)]
pub struct PktPool {
    pub(crate) mp: Mempool,
    data_room: u16,
    priv_size: u16,
    pinned: bool,
}

/// Configures a [`PktPool`]; `build_on(&provider)` or `build_anonymous()`
/// creates it.
#[derive(Debug)]
#[must_use]
pub struct PktPoolBuilder {
    n: usize,
    cache: usize,
    data_room: usize,
    priv_size: usize,
    name: Option<String>,
    pinned: Option<Vec<PinnedArea>>,
}

impl PktPool {
    /// Starts configuring a pool of `n` mbufs: data room
    /// [`DEFAULT_DATA_ROOM`], no private area, no cache (set one with
    /// [`cache`](PktPoolBuilder::cache): it is what makes allocation fast).
    pub fn builder(n: usize) -> PktPoolBuilder {
        PktPoolBuilder {
            n,
            cache: 0,
            data_room: DEFAULT_DATA_ROOM,
            priv_size: 0,
            name: None,
            pinned: None,
        }
    }
}

impl PktPoolBuilder {
    /// The pool's name (for humans: dumps, errors, events).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Size of each per-core cache (0: none).
    pub fn cache(mut self, size: usize) -> Self {
        self.cache = size;
        self
    }

    /// Bytes of each buffer, headroom included (default
    /// [`DEFAULT_DATA_ROOM`]; at most [`MAX_DATA_ROOM`]).
    pub fn data_room(mut self, bytes: usize) -> Self {
        self.data_room = bytes;
        self
    }

    /// Bytes of the private area between header and buffer (a multiple of
    /// 8; default 0).
    pub fn private_size(mut self, bytes: usize) -> Self {
        self.priv_size = bytes;
        self
    }

    /// Makes a pinned external-buffer pool: the mbufs' buffers are slices of
    /// the given external areas (each mbuf bound to its slice for good, the
    /// pool keeping the shared infos), and the pool's own objects hold only
    /// header and private area. The data room is each area's element size.
    /// See [`PinnedArea`].
    pub fn pinned(mut self, areas: impl IntoIterator<Item = PinnedArea>) -> Self {
        self.pinned = Some(areas.into_iter().collect());
        self
    }

    /// Creates the pool on `provider`'s memory (hugepages when it has
    /// them).
    pub fn build_on(self, provider: &Provider) -> Result<PktPool, BuildError> {
        self.build(Some(provider))
    }

    /// Creates the pool on anonymous memory (small pages, no IOVA): for
    /// tests and tools that need no device.
    pub fn build_anonymous(self) -> Result<PktPool, BuildError> {
        self.build(None)
    }

    fn build(self, provider: Option<&Provider>) -> Result<PktPool, BuildError> {
        if self.priv_size % 8 != 0 {
            return Err(BuildError::PrivateSizeUnaligned {
                private_size: self.priv_size,
            });
        }
        let priv_size =
            u16::try_from(self.priv_size).map_err(|_| BuildError::PrivateSizeTooLarge {
                private_size: self.priv_size,
                max: u16::MAX as usize & !7,
            })?;
        let pinned = match self.pinned {
            Some(areas) => Some(PinnedSetup::new(areas, self.n)?),
            None => None,
        };
        let data_room = if pinned.is_some() { 0 } else { self.data_room };
        let data_room16 = u16::try_from(data_room).map_err(|_| BuildError::DataRoomTooLarge {
            data_room,
            max: MAX_DATA_ROOM,
        })?;
        let tail = if pinned.is_some() {
            PINNED_SHINFO_SIZE
        } else {
            data_room
        };
        let elt = HEADER_SIZE + self.priv_size + tail;
        let mut b: MempoolBuilder = Mempool::builder(self.n, elt)
            .cache(self.cache)
            .align(64)
            .private_size(POOL_PRIVATE_SIZE);
        if let Some(name) = self.name {
            b = b.name(name);
        }
        let is_pinned = pinned.is_some();
        b = match pinned {
            None => {
                b.obj_init_shared(move |info, body| init_header(info, body, priv_size, data_room16))
            }
            Some(setup) => setup.install(b, priv_size),
        };
        let mp = match provider {
            Some(p) => b.build_on(p)?,
            None => b.build_anonymous()?,
        };
        // SAFETY: the mempool's private area is `POOL_PRIVATE_SIZE` bytes,
        // 64-aligned, ours, and no mbuf is out yet (nobody reads it).
        unsafe { mp.private_area().cast::<u16>().as_ptr().write(data_room16) };
        Ok(PktPool {
            mp,
            data_room: data_room16,
            priv_size,
            pinned: is_pinned,
        })
    }
}

/// Bytes of the mempool's private area: the data room (`u16`), which
/// [`pool_data_room`] reads back (a detached mbuf gets its whole own buffer
/// back, whatever padding the mempool added to the object).
const POOL_PRIVATE_SIZE: usize = 2;

/// The data room of the packet pool whose mempool is `mp`.
///
/// # Safety
/// - `mp` is the mempool of a [`PktPool`] (built by [`PktPoolBuilder`]).
pub(crate) unsafe fn pool_data_room(mp: &Mempool) -> u16 {
    // SAFETY: a packet pool's mempool has a 64-aligned private area holding
    // its data room, written once at build before any mbuf was out.
    unsafe { mp.private_area().cast::<u16>().as_ptr().read() }
}

/// Writes a fresh header (and zeroes the private area) in a pool object:
/// the buffer is the object's data room, its IOVA the object's plus the
/// offset.
///
/// The pool's memory is cold (the kernel zeroed it long before), so on
/// `x86_64` the header's two cache lines and the private area are written
/// with non-temporal stores ([`write_header`]): whole lines, without first
/// reading them in.
fn init_header(info: &ObjInfo, body: &mut [MaybeUninit<u8>], priv_size: u16, data_room: u16) {
    let off = HEADER_SIZE + usize::from(priv_size);
    let base = body.as_mut_ptr().cast::<u8>();
    let iova = info.iova.map_or(NO_IOVA, |i| i.0 + off as u64);
    // SAFETY: the body is `HEADER_SIZE + priv + data_room` bytes, so the
    // buffer address stays inside it (or one past its end for an empty data
    // room).
    let hdr = fresh_header(unsafe { base.add(off) }, iova, data_room, priv_size);
    // SAFETY: the body is `HEADER_SIZE + priv + data_room` bytes of this
    // object, written by this thread alone, 64-aligned (the pool's
    // alignment), so the header fits and is aligned and the private area
    // (a multiple of 8 bytes) follows it. Ordering of the non-temporal
    // stores: this runs only as the pool's `obj_init_shared` initialiser,
    // and the mempool's populating thread issues a store fence after its
    // last initialiser call (also when one panics) and before the objects
    // are stored in the backend or its thread is joined; so every later
    // access to the header, on any thread, happens after that fence.
    unsafe { write_header(base, &hdr, usize::from(priv_size)) };
}

/// Writes `hdr` at `dst` and zeroes the `priv_size` bytes after it with
/// non-temporal stores: the header's two cache lines are written whole,
/// without first being read into the cache.
///
/// # Safety
/// - `dst..dst + HEADER_SIZE + priv_size` is writable memory no other thread
///   accesses, `dst` 64-aligned, `priv_size` a multiple of 8;
/// - the calling thread issues a store fence (`_mm_sfence`) before anything
///   accesses that memory again: the stores are weakly ordered.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::cast_ptr_alignment)] // aligned: see the safety conditions
unsafe fn write_header(dst: *mut u8, hdr: &MbufHeader, priv_size: usize) {
    use std::arch::x86_64::{__m128i, _mm_setzero_si128, _mm_stream_si128, _mm_stream_si64};
    let src = ptr::from_ref(hdr).cast::<__m128i>();
    let d = dst.cast::<__m128i>();
    for i in 0..HEADER_SIZE / 16 {
        // SAFETY: `MbufHeader` is 128 bytes without padding (its offsets
        // are asserted), 64-aligned: 8 initialised, aligned 16-byte words;
        // `dst + 16 i` is 16-aligned and inside the header (caller).
        unsafe { _mm_stream_si128(d.add(i), src.add(i).read()) };
    }
    // SAFETY: SSE2 is part of every `x86_64` CPU.
    let zero = unsafe { _mm_setzero_si128() };
    let mut o = 0;
    while o + 16 <= priv_size {
        // SAFETY: `HEADER_SIZE + o` is 16-aligned and `o + 16 <= priv_size`:
        // inside the private area (caller).
        unsafe { _mm_stream_si128(dst.add(HEADER_SIZE + o).cast(), zero) };
        o += 16;
    }
    if o < priv_size {
        // SAFETY: `priv_size` is a multiple of 8: its last 8 bytes, 8-aligned.
        unsafe { _mm_stream_si64(dst.add(HEADER_SIZE + o).cast(), 0) };
    }
}

/// [`write_header`] with plain stores (targets without non-temporal ones).
///
/// # Safety
/// The first condition of the `x86_64` version.
#[cfg(not(target_arch = "x86_64"))]
#[allow(clippy::cast_ptr_alignment)] // aligned: see the safety conditions
unsafe fn write_header(dst: *mut u8, hdr: &MbufHeader, priv_size: usize) {
    // SAFETY: forwarded (aligned, in bounds, ours); `MbufHeader` has no
    // drop glue and no padding, so a bitwise copy is a valid header.
    unsafe {
        ptr::copy_nonoverlapping(ptr::from_ref(hdr), dst.cast::<MbufHeader>(), 1);
        ptr::write_bytes(dst.add(HEADER_SIZE), 0, priv_size);
    }
}

/// A header for a buffer at `buf` (IOVA `iova`, `buf_len` bytes), as it
/// sits in its pool.
pub(crate) fn fresh_header(buf: *mut u8, iova: u64, buf_len: u16, priv_size: u16) -> MbufHeader {
    MbufHeader {
        buf_addr: buf,
        buf_iova: iova,
        data_off: (HEADROOM as u16).min(buf_len),
        refcnt: AtomicU16::new(1),
        nb_segs: 1,
        port: NO_PORT,
        ol_flags: 0,
        packet_type: 0,
        pkt_len: 0,
        data_len: 0,
        vlan_tci: 0,
        hash: [0; 2],
        vlan_tci_outer: 0,
        buf_len,
        pool: ptr::null(),
        next: ptr::null_mut(),
        tx_offload: 0,
        shinfo: ptr::null_mut(),
        timestamp: 0,
        priv_size,
        timesync: 0,
        dynfield: [0; crate::header::DYN_AREA_LEN],
    }
}

impl PktPool {
    /// The underlying mempool (counts, stats, audit, chunks).
    pub fn mempool(&self) -> &Mempool {
        &self.mp
    }

    /// A new cache handle for this pool: the fast path of
    /// [`alloc`](Self::alloc) and [`free`](Self::free). `Send`, not `Sync`:
    /// one per core.
    pub fn cache(&self) -> Cache {
        self.mp.cache()
    }

    /// Bytes of each buffer, headroom included (0 for a pinned pool, whose
    /// buffers are its areas' elements).
    pub fn data_room(&self) -> usize {
        usize::from(self.data_room)
    }

    /// Bytes of the private area after each header.
    pub fn private_size(&self) -> usize {
        usize::from(self.priv_size)
    }

    /// Whether the pool's buffers are pinned external buffers.
    pub fn is_pinned(&self) -> bool {
        self.pinned
    }

    /// Mbufs the pool holds (`n` at creation).
    pub fn size(&self) -> usize {
        self.mp.size()
    }

    /// Mbufs available (backend plus caches).
    pub fn avail_count(&self) -> usize {
        self.mp.avail_count()
    }

    /// Mbufs held by callers.
    pub fn in_use_count(&self) -> usize {
        self.mp.in_use_count()
    }

    /// Whether every mbuf is back.
    pub fn is_full(&self) -> bool {
        self.mp.is_full()
    }

    /// Turns a freshly taken object into an mbuf: reset as the reference's
    /// `rte_pktmbuf_reset` does (one segment, data at the headroom, lengths
    /// and flags cleared except the external bit a pinned pool keeps).
    ///
    /// # Safety
    /// - `obj` was just taken from this pool.
    #[inline(always)]
    unsafe fn reset_new(&self, obj: Obj) -> Mbuf {
        let h = obj.cast::<MbufHeader>().as_ptr();
        // SAFETY: a pool object of ours (condition), its header written at
        // population and kept valid by every free path; we are its owner.
        unsafe {
            // The fields every packet sets, stored unconditionally and in
            // address order (the compiler merges neighbours into wider
            // stores).
            (*h).nb_segs = 1;
            (*h).port = NO_PORT;
            // `ol_flags &= F_EXTERNAL` as a constant of the pool: in the
            // pool a header's only internal flag is the external bit of a
            // pinned pool's buffer (every free path detaches the rest), so
            // the result is known without reading the word.
            let flags = if self.pinned { F_EXTERNAL } else { 0 };
            debug_assert_eq!(
                (*h).ol_flags & INTERNAL_FLAGS,
                flags,
                "flags of a free mbuf"
            );
            (*h).ol_flags = flags;
            (*h).packet_type = 0;
            (*h).pkt_len = 0;
            (*h).data_len = 0;
            (*h).vlan_tci = 0;
            (*h).next = ptr::null_mut();
            (*h).tx_offload = 0;
            // Fields a packet rarely changes (the data offset: most keep
            // the default headroom; an outer VLAN) and the pool word (a
            // constant of the object: written on its first allocation,
            // fresh headers hold null) are written only when they differ,
            // as the free path does for `next`: a load and a compare
            // instead of a store (the stores are what an allocation costs).
            let data_off = (HEADROOM as u16).min((*h).buf_len);
            if (*h).data_off != data_off {
                (*h).data_off = data_off;
            }
            if (*h).vlan_tci_outer != 0 {
                (*h).vlan_tci_outer = 0;
            }
            let pool = self.mp.as_ptr();
            if (*h).pool != pool {
                (*h).pool = pool;
            }
            let m = Mbuf::from_hdr(NonNull::new_unchecked(h));
            #[cfg(debug_assertions)]
            if let Err(e) = m.check() {
                panic!(
                    "mbuf from pool {} fails its sanity check: {e}",
                    self.mp.name()
                );
            }
            m
        }
    }

    /// Allocates one mbuf through `cache` (the fast path).
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(2).cache(0).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let a = pool.alloc(&mut cache).unwrap();
    /// let b = pool.alloc(&mut cache).unwrap();
    /// assert!(pool.alloc(&mut cache).is_err()); // exhausted
    /// drop((a, b));
    /// assert!(pool.is_full());
    /// ```
    #[inline(always)]
    pub fn alloc(&self, cache: &mut Cache) -> Result<Mbuf, AllocError> {
        let obj = self.mp.get(cache)?;
        // SAFETY: just taken from our pool.
        Ok(unsafe { self.reset_new(obj) })
    }

    /// Allocates one mbuf through the calling thread's default cache.
    #[inline(always)]
    pub fn alloc_default(&self) -> Result<Mbuf, AllocError> {
        let obj = self.mp.get_default()?;
        // SAFETY: just taken from our pool.
        Ok(unsafe { self.reset_new(obj) })
    }

    /// Fills all of `out` with fresh mbufs, or takes nothing; returns `out`,
    /// now initialised (the caller owns those mbufs: drop them, or move them
    /// out with `std::mem::take`-like moves; forgetting them leaks).
    ///
    /// ```
    /// use pktmem_mbuf::{Mbuf, PktPool};
    /// use std::mem::MaybeUninit;
    /// let pool = PktPool::builder(64).cache(16).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let mut buf: [MaybeUninit<Mbuf>; 32] = [const { MaybeUninit::uninit() }; 32];
    /// let ms = pool.alloc_bulk(&mut cache, &mut buf).unwrap();
    /// assert_eq!(ms.len(), 32);
    /// // SAFETY: `ms` lives in `buf`, `MaybeUninit` storage that never drops
    /// // (or reads) the mbufs again.
    /// unsafe { pool.free_bulk_in_place(&mut cache, ms) };
    /// ```
    #[inline(always)]
    pub fn alloc_bulk<'o>(
        &self,
        cache: &mut Cache,
        out: &'o mut [MaybeUninit<Mbuf>],
    ) -> Result<&'o mut [Mbuf], AllocError> {
        // SAFETY: `Mbuf` and `Obj` are both `repr(transparent)` over a
        // `NonNull` pointer; uninitialised slots stay uninitialised.
        let objs = unsafe { &mut *(ptr::from_mut(out) as *mut [MaybeUninit<Obj>]) };
        let requested = objs.len();
        // The mempool's error counts what it asked of its backend (after
        // the cache's share); ours counts the mbufs the caller asked for.
        let objs = self
            .mp
            .get_bulk(cache, objs)
            .map_err(|e| match AllocError::from(e) {
                AllocError::Exhausted { available, .. } => AllocError::Exhausted {
                    requested,
                    available,
                },
            })?;
        for o in objs.iter() {
            // SAFETY: each was just taken from our pool; the Mbuf written
            // over the Obj takes it over (same bits).
            unsafe { std::mem::forget(self.reset_new(*o)) };
        }
        // SAFETY: every element is initialised, and an `Obj` of a freshly
        // reset header is a valid `Mbuf` (same representation).
        Ok(unsafe { &mut *(ptr::from_mut(objs) as *mut [Mbuf]) })
    }

    /// Allocates `N` mbufs into an `ArrayVec`, or none.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(64).cache(16).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let burst = pool.alloc_array::<32>(&mut cache).unwrap();
    /// assert_eq!(burst.len(), 32);
    /// pool.free_bulk(&mut cache, burst);
    /// assert!(pool.alloc_array::<65>(&mut cache).is_err());
    /// ```
    #[inline(always)]
    pub fn alloc_array<const N: usize>(
        &self,
        cache: &mut Cache,
    ) -> Result<ArrayVec<Mbuf, N>, AllocError> {
        let mut v = ArrayVec::<Mbuf, N>::new();
        // SAFETY: `ArrayVec`'s spare capacity is `N` uninitialised slots;
        // after the fill succeeds all `N` are initialised.
        unsafe {
            let spare =
                std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<MaybeUninit<Mbuf>>(), N);
            self.alloc_bulk(cache, spare)?;
            v.set_len(N);
        }
        Ok(v)
    }

    /// Frees a chain, its segments of this pool going through `cache`.
    #[inline(always)]
    pub fn free(&self, cache: &mut Cache, m: Mbuf) {
        // SAFETY: the chain is ours (moved in); each freed segment goes to
        // its pool once, through `cache` when it is of the cache's pool.
        unsafe { free_chain_with(m.into_hdr().as_ptr(), |s| put_cached(cache, s)) };
    }

    /// Frees many chains; segments of this pool go through `cache` in
    /// batches, others to their own pools in batches per pool.
    #[inline]
    pub fn free_bulk(&self, cache: &mut Cache, mbufs: impl IntoIterator<Item = Mbuf>) {
        let mut objs = [MaybeUninit::uninit(); BATCH];
        let mut b = Batch::new(&mut objs);
        for m in mbufs {
            // SAFETY: the chain is ours (moved in), given up here.
            unsafe { b.free_chain(Some(cache), m.into_hdr().as_ptr()) };
        }
        b.finish(Some(cache));
    }

    /// Frees the mbufs of an `ArrayVec` (as [`alloc_array`](Self::alloc_array)
    /// hands them out) in one batch, without moving them through an
    /// iterator.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(64).cache(16).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let burst = pool.alloc_array::<32>(&mut cache).unwrap();
    /// pool.free_array(&mut cache, burst);
    /// drop(cache);
    /// assert!(pool.is_full());
    /// ```
    #[inline(always)]
    pub fn free_array<const N: usize>(&self, cache: &mut Cache, mut mbufs: ArrayVec<Mbuf, N>) {
        let n = mbufs.len();
        // SAFETY: the length goes to 0 first, so the `ArrayVec` drops
        // nothing; its first `n` slots still hold the mbufs, which the slice
        // hands to `free_bulk_in_place` once and nobody touches afterwards.
        unsafe {
            mbufs.set_len(0);
            let ms = std::slice::from_raw_parts_mut(mbufs.as_mut_ptr(), n);
            self.free_bulk_in_place(cache, ms);
        }
    }

    /// Frees the mbufs of a slice handed out by [`alloc_bulk`](Self::alloc_bulk)
    /// (they are moved out; the slice's memory is uninitialised again).
    ///
    /// # Safety
    /// - The mbufs of `mbufs` are neither used nor dropped afterwards: the
    ///   slice lives in storage that does not drop them (the
    ///   `MaybeUninit` slice given to `alloc_bulk`), not in a `Vec<Mbuf>`
    ///   or an array of `Mbuf`, whose drop would free them a second time.
    ///
    /// Safe code cannot free a `Vec<Mbuf>`'s mbufs in place (and then free
    /// them again when the `Vec` drops):
    ///
    /// ```compile_fail
    /// use pktmem_mbuf::{Mbuf, PktPool};
    /// let pool = PktPool::builder(8).build_anonymous().unwrap();
    /// let mut cache = pool.cache();
    /// let mut v: Vec<Mbuf> = (0..4).map(|_| pool.alloc_default().unwrap()).collect();
    /// pool.free_bulk_in_place(&mut cache, &mut v); // error: call to unsafe function
    /// ```
    #[inline]
    pub unsafe fn free_bulk_in_place(&self, cache: &mut Cache, mbufs: &mut [Mbuf]) {
        let mut objs = [MaybeUninit::uninit(); BATCH];
        let mut b = Batch::new(&mut objs);
        for m in mbufs.iter() {
            // SAFETY: the caller gives the chains up (see the docs).
            unsafe { b.free_chain(Some(cache), m.hdr.as_ptr()) };
        }
        b.finish(Some(cache));
    }
}

/// Frees many chains without a cache handle: their segments go to their
/// pools (several pools may be mixed) in batches, one bulk put per run of
/// segments of one pool.
///
/// ```
/// use pktmem_mbuf::{free_bulk, PktPool};
/// let a = PktPool::builder(8).build_anonymous().unwrap();
/// let b = PktPool::builder(8).build_anonymous().unwrap();
/// let mut x = a.alloc_default().unwrap();
/// x.chain(b.alloc_default().unwrap()).unwrap(); // a chain spanning two pools
/// free_bulk([x, b.alloc_default().unwrap(), a.alloc_default().unwrap()]);
/// a.mempool().flush_default_cache();
/// b.mempool().flush_default_cache();
/// assert!(a.is_full() && b.is_full());
/// ```
pub fn free_bulk(mbufs: impl IntoIterator<Item = Mbuf>) {
    let mut objs = [MaybeUninit::uninit(); BATCH];
    let mut b = Batch::new(&mut objs);
    for m in mbufs {
        // SAFETY: the chain is ours (moved in), given up here.
        unsafe { b.free_chain(None, m.into_hdr().as_ptr()) };
    }
    b.finish(None);
}

/// Most segments a [`Batch`] holds before it puts them back.
const BATCH: usize = 64;

/// Freed segments waiting to go back, all of one pool: `objs[..len]`.
///
/// The free-bulk loops keep it as a local whose address is never passed to
/// a call that is not inlined (the put goes through [`put_batch`], which
/// takes the pool and the objects by value), so the compiler keeps `len`
/// and `pool` in registers instead of storing and reloading them for every
/// segment; the array itself lives beside it, borrowed.
struct Batch<'a> {
    objs: &'a mut [MaybeUninit<Obj>; BATCH],
    /// Invariant: `len <= BATCH`; `objs[..len]` are initialised, each a
    /// segment freed by `prefree_seg` (out of its pool, reset) of `pool`.
    len: usize,
    pool: *const (),
}

impl<'a> Batch<'a> {
    #[inline(always)]
    fn new(objs: &'a mut [MaybeUninit<Obj>; BATCH]) -> Self {
        Batch {
            objs,
            len: 0,
            pool: ptr::null(),
        }
    }

    /// The waiting segments.
    #[inline(always)]
    fn objs(&self) -> &[Obj] {
        // SAFETY: `objs[..len]` are initialised (invariant on `len`);
        // `MaybeUninit<Obj>` has `Obj`'s layout.
        unsafe { &*(ptr::from_ref(&self.objs[..self.len]) as *const [Obj]) }
    }

    /// Frees a chain into the batch.
    ///
    /// # Safety
    /// - `seg` heads a chain the caller owns and gives up.
    #[inline(always)]
    unsafe fn free_chain(&mut self, mut cache: Option<&mut Cache>, mut seg: *mut MbufHeader) {
        while !seg.is_null() {
            // SAFETY: a segment of the chain the caller gave up.
            let next = unsafe { (*seg).next };
            // SAFETY: we own its reference; `next` is its next.
            if let Some(s) = unsafe { prefree_seg_next(seg, next) } {
                // SAFETY: a live header (out of its pool, ours).
                let pool = unsafe { s.as_ref() }.pool;
                if pool != self.pool || self.len == BATCH {
                    // SAFETY: the waiting segments, all of `self.pool`,
                    // returned once (forgotten here).
                    unsafe { put_batch(cache.as_deref_mut(), self.pool, self.objs()) };
                    self.len = 0;
                    self.pool = pool;
                }
                debug_assert!(self.len < BATCH);
                // SAFETY: `len < BATCH`: it was not `BATCH` or was reset.
                unsafe { self.objs.get_unchecked_mut(self.len) }
                    .write(Obj::from_non_null(s.cast()));
                self.len += 1;
            }
            seg = next;
        }
    }

    /// Puts the waiting segments back.
    #[inline(always)]
    fn finish(&mut self, cache: Option<&mut Cache>) {
        // SAFETY: the waiting segments, all of `self.pool`, returned once
        // (forgotten here).
        unsafe { put_batch(cache, self.pool, self.objs()) };
        self.len = 0;
    }
}

impl Drop for Batch<'_> {
    /// Returns what is still waiting (when a release callback run by a
    /// detach panicked part way through a free).
    #[inline(always)]
    fn drop(&mut self) {
        for &o in self.objs() {
            // SAFETY: freed segments not yet returned.
            unsafe { put_default(o.cast()) };
        }
    }
}

/// Puts freed segments of one pool back: through `cache` when it is that
/// pool's, else through the pool's default path.
///
/// # Safety
/// - `objs` are segments freed by `prefree_seg`, out of their pool `pool`
///   (each header says so), returned once.
#[inline(never)]
unsafe fn put_batch(cache: Option<&mut Cache>, pool: *const (), objs: &[Obj]) {
    let Some(&first) = objs.first() else {
        return;
    };
    match cache {
        Some(c) if c.pool().as_ptr() == pool => {
            let pool: *const Mempool = c.pool();
            // A batch of 32 (the usual burst) is put with its length a
            // constant, so the cache's copy of the handles is inlined block
            // moves instead of a call to `memcpy` for the second half.
            if let Ok(burst) = <&[Obj; 32]>::try_from(objs) {
                // SAFETY: as below.
                unsafe { (*pool).put_bulk(c, burst) };
                return;
            }
            // SAFETY: objects of the cache's pool, freed and reset by
            // `prefree_seg`, returned once; the pool is the cache's.
            unsafe { (*pool).put_bulk(c, objs) };
        }
        _ => {
            // SAFETY: objects out of their pool until the put below, the
            // last use of the `PoolRef` (it may free the pool).
            let pool = unsafe { first.owner_ref() };
            // SAFETY: objects of `pool` (one batch holds one pool's),
            // returned once.
            unsafe { pool.put_bulk_default(objs) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64-aligned scratch memory for one header and a private area.
    #[repr(C, align(64))]
    struct Scratch([u8; 512]);

    #[test]
    fn write_header_writes_the_fresh_header_and_zeroes_only_the_private_area() {
        for priv_size in [0u16, 8, 16, 24, 56, 64, 72, 136] {
            let mut mem = Box::new(Scratch([0xa5; 512]));
            let dst = mem.0.as_mut_ptr();
            let hdr = fresh_header(dst.wrapping_add(200), 0x1234_5000, 2176, priv_size);
            // SAFETY: `mem` is 512 bytes, 64-aligned, ours; 128 + 136 < 512;
            // the fence follows before the bytes are read.
            unsafe { write_header(dst, &hdr, usize::from(priv_size)) };
            #[cfg(target_arch = "x86_64")]
            // SAFETY: SSE is part of every `x86_64` CPU.
            unsafe {
                std::arch::x86_64::_mm_sfence();
            }
            let want = {
                let mut b = [0u8; HEADER_SIZE];
                // SAFETY: `MbufHeader` is `HEADER_SIZE` bytes without padding.
                unsafe {
                    ptr::copy_nonoverlapping(
                        ptr::from_ref(&hdr).cast::<u8>(),
                        b.as_mut_ptr(),
                        HEADER_SIZE,
                    );
                };
                b
            };
            let p = usize::from(priv_size);
            assert_eq!(mem.0[..HEADER_SIZE], want, "header bytes (private {p})");
            assert!(
                mem.0[HEADER_SIZE..HEADER_SIZE + p].iter().all(|&b| b == 0),
                "private area zeroed ({p})"
            );
            assert!(
                mem.0[HEADER_SIZE + p..].iter().all(|&b| b == 0xa5),
                "bytes after the private area untouched ({p})"
            );
        }
    }
}
