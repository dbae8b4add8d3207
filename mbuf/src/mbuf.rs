//! [`Mbuf`], the owned packet handle, and [`Segment`], the read-only view
//! of one segment; the free path (what dropping an mbuf does).

use std::fmt;
use std::ops::Deref;
use std::ptr::{self, NonNull};

use pktmem_hugemem::Iova;
use pktmem_mempool::{Cache, Mempool, Obj};

use crate::ext::SharedHdr;
use crate::header::{MbufHeader, F_EXTERNAL, F_INDIRECT, HEADER_SIZE, INTERNAL_FLAGS, NO_IOVA};
use crate::sync::Ordering;
use crate::HEADROOM;

/// Value of the port field when no port is set.
pub(crate) const NO_PORT: u16 = u16::MAX;

/// One segment of a packet, viewed read-only: its buffer, data and
/// refcount. [`Mbuf`] derefs to its first segment; [`Mbuf::segments`]
/// walks them all.
///
/// ```
/// use pktmem_mbuf::PktPool;
/// let pool = PktPool::builder(8).build_anonymous().unwrap();
/// let mut m = pool.alloc_default().unwrap();
/// m.append(10).unwrap().fill(1);
/// let seg = m.segments().next().unwrap();
/// assert_eq!((seg.data_len(), seg.headroom()), (10, 128));
/// ```
#[repr(transparent)]
pub struct Segment(pub(crate) MbufHeader);

impl Segment {
    /// The view of a header.
    ///
    /// # Safety
    /// - `h` is a live header for `'a`, not written through another path
    ///   except its atomic refcount.
    #[inline(always)]
    pub(crate) unsafe fn from_hdr<'a>(h: *const MbufHeader) -> &'a Segment {
        // SAFETY: `Segment` is `repr(transparent)` over the header; the
        // caller's condition gives the lifetime.
        unsafe { &*h.cast::<Segment>() }
    }

    /// Bytes of data in this segment.
    #[inline(always)]
    pub fn data_len(&self) -> usize {
        usize::from(self.0.data_len)
    }

    /// Offset of the data from the start of the buffer (the headroom).
    #[inline(always)]
    pub fn headroom(&self) -> usize {
        usize::from(self.0.data_off)
    }

    /// Bytes after the data up to the end of the buffer.
    #[inline(always)]
    pub fn tailroom(&self) -> usize {
        usize::from(self.0.buf_len) - usize::from(self.0.data_off) - usize::from(self.0.data_len)
    }

    /// Length of the buffer (headroom + data + tailroom).
    #[inline(always)]
    pub fn buf_len(&self) -> usize {
        usize::from(self.0.buf_len)
    }

    /// The segment's data.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        // SAFETY: `buf_addr + data_off .. + data_len` lies in the buffer
        // (invariant kept by every data operation), which lives while this
        // segment references it; nobody writes it while it is shared (writes
        // need the buffer's refcount at 1 and `&mut` on its only mbuf).
        unsafe {
            std::slice::from_raw_parts(
                self.0.buf_addr.add(usize::from(self.0.data_off)),
                usize::from(self.0.data_len),
            )
        }
    }

    /// Address of the buffer's first byte.
    pub fn buf_addr(&self) -> NonNull<u8> {
        // SAFETY: every header in use has a buffer (set at population and on
        // attach/detach).
        unsafe { NonNull::new_unchecked(self.0.buf_addr) }
    }

    /// IOVA of the buffer's first byte, when its memory has one.
    #[inline(always)]
    pub fn buf_iova(&self) -> Option<Iova> {
        (self.0.buf_iova != NO_IOVA).then_some(Iova(self.0.buf_iova))
    }

    /// IOVA of the first data byte: what a device descriptor takes.
    #[inline(always)]
    pub fn data_iova(&self) -> Option<Iova> {
        // `then`, not `then_some`: the sum must not be computed for
        // `NO_IOVA` (it overflows).
        (self.0.buf_iova != NO_IOVA).then(|| Iova(self.0.buf_iova + u64::from(self.0.data_off)))
    }

    /// References to this segment's buffer (its owner plus indirect mbufs
    /// attached to it).
    pub fn refcnt(&self) -> u16 {
        self.0.refcnt.load(Ordering::Relaxed)
    }

    /// Whether the segment uses its own buffer from the pool.
    #[inline(always)]
    pub fn is_direct(&self) -> bool {
        self.0.ol_flags & INTERNAL_FLAGS == 0
    }

    /// Whether the segment points at another mbuf's buffer (a clone).
    #[inline(always)]
    pub fn is_indirect(&self) -> bool {
        self.0.ol_flags & F_INDIRECT != 0
    }

    /// Whether the segment uses an external buffer (attached, or a pinned
    /// pool's).
    #[inline(always)]
    pub fn is_external(&self) -> bool {
        self.0.ol_flags & F_EXTERNAL != 0
    }

    /// References to the external buffer's shared info, for an external
    /// segment.
    pub fn ext_refcnt(&self) -> Option<u16> {
        // SAFETY: an external segment's shinfo is live while it references it.
        self.is_external()
            .then(|| unsafe { &*self.0.shinfo }.refcnt.load(Ordering::Relaxed))
    }

    /// Whether the data may be written: the buffer is referenced by this
    /// segment only (direct with refcount 1, or external with the shared
    /// info's refcount 1 too). Indirect segments are never writable.
    #[inline]
    pub fn is_writable(&self) -> bool {
        // Acquire: pairs with the Release decrement of whoever gave up the
        // other reference, so their reads of the bytes happen before our
        // writes.
        if self.0.refcnt.load(Ordering::Acquire) != 1 {
            return false;
        }
        let f = self.0.ol_flags;
        if f & F_INDIRECT != 0 {
            return false;
        }
        if f & F_EXTERNAL != 0 {
            // SAFETY: an external segment's shinfo is live while it
            // references it. Acquire: as above, for the shared info.
            return unsafe { &*self.0.shinfo }.refcnt.load(Ordering::Acquire) == 1;
        }
        true
    }

    /// Size of the private area between header and buffer.
    pub fn private_size(&self) -> usize {
        usize::from(self.0.priv_size)
    }

    pub(crate) fn hdr_ptr(&self) -> *mut MbufHeader {
        ptr::from_ref(&self.0).cast_mut()
    }
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("buf_addr", &self.0.buf_addr)
            .field("buf_iova", &self.buf_iova())
            .field("buf_len", &self.0.buf_len)
            .field("data_off", &self.0.data_off)
            .field("data_len", &self.0.data_len)
            .field("refcnt", &self.refcnt())
            .field(
                "kind",
                &if self.is_indirect() {
                    "indirect"
                } else if self.is_external() {
                    "external"
                } else {
                    "direct"
                },
            )
            .finish()
    }
}

/// A packet: an owned reference to a chain of segments in packet pools.
///
/// `Send + Sync`: it moves between cores through a `Ring<Mbuf>` in safe
/// code. Dropping it frees the whole chain: indirect segments detach from
/// the mbufs they point at, external buffers drop their shared reference,
/// and direct segments go back to their pools (through the calling thread's
/// default cache; [`PktPool::free`](crate::PktPool::free) takes an explicit
/// one).
///
/// Data is read through [`data`](Segment::data) (the first segment, by
/// deref) and [`read`](Self::read) (any range, across segments); written
/// through [`data_mut`](Self::data_mut), [`append`](Self::append) and
/// [`prepend`](Self::prepend), which exist only while the buffer is not
/// shared. A borrow of the bytes cannot outlive a clone:
///
/// ```compile_fail
/// use pktmem_mbuf::PktPool;
/// let pool = PktPool::builder(8).build_anonymous().unwrap();
/// let mut m = pool.alloc_default().unwrap();
/// m.append(4).unwrap();
/// let bytes = m.data_mut().unwrap();
/// let c = m.clone_in(&pool).unwrap(); // error: `m` is borrowed mutably
/// bytes[0] = 1;
/// ```
#[repr(transparent)]
pub struct Mbuf {
    pub(crate) hdr: NonNull<MbufHeader>,
}

// SAFETY: an `Mbuf` owns its chain's headers (one reference); the only
// header state other threads touch is the atomic refcount (clones detaching)
// and shared infos' atomic counts. The pools it returns to are thread-safe.
unsafe impl Send for Mbuf {}
// SAFETY: `&Mbuf` reads header fields nobody else writes while the mbuf
// lives, reads data nobody writes while it is shared, and its `&self`
// operations that write (clone: refcounts) are atomic.
unsafe impl Sync for Mbuf {}

impl Deref for Mbuf {
    type Target = Segment;
    #[inline(always)]
    fn deref(&self) -> &Segment {
        // SAFETY: the head header lives while the mbuf does; only its owner
        // (us) writes its non-atomic fields.
        unsafe { Segment::from_hdr(self.hdr.as_ptr()) }
    }
}

impl Drop for Mbuf {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: we own the chain; it is given up here.
        unsafe { free_chain(self.hdr.as_ptr()) };
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .field("segments", &self.segments().collect::<Vec<_>>())
            .finish()
    }
}

/// The segments of a chain, head first.
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    next: *const MbufHeader,
    _chain: std::marker::PhantomData<&'a Mbuf>,
}

impl<'a> Iterator for Segments<'a> {
    type Item = &'a Segment;
    #[inline]
    fn next(&mut self) -> Option<&'a Segment> {
        if self.next.is_null() {
            return None;
        }
        // SAFETY: a segment of the chain borrowed for 'a.
        let s = unsafe { Segment::from_hdr(self.next) };
        self.next = s.0.next;
        Some(s)
    }
}

impl Mbuf {
    /// Takes ownership of a chain head.
    ///
    /// # Safety
    /// - `hdr` heads a chain of live segments nobody else owns.
    #[inline(always)]
    pub(crate) unsafe fn from_hdr(hdr: NonNull<MbufHeader>) -> Mbuf {
        Mbuf { hdr }
    }

    /// Gives up ownership without freeing.
    #[inline(always)]
    pub(crate) fn into_hdr(self) -> NonNull<MbufHeader> {
        let h = self.hdr;
        std::mem::forget(self);
        h
    }

    #[inline(always)]
    pub(crate) fn h(&self) -> &MbufHeader {
        // SAFETY: the head lives while we own it.
        unsafe { self.hdr.as_ref() }
    }

    /// The head header for writing its non-atomic fields, as a raw
    /// pointer: never a `&mut MbufHeader`, because other threads may update
    /// the refcount (a clone detaching) while we own the mbuf. Writes go
    /// through `(*h).field = ...`, which touches that field only; they are
    /// sound while `&mut self` is held (only the owner writes those fields).
    #[inline(always)]
    pub(crate) fn w(&mut self) -> *mut MbufHeader {
        self.hdr.as_ptr()
    }

    /// Bytes of the whole packet (all segments).
    #[inline(always)]
    pub fn pkt_len(&self) -> usize {
        self.h().pkt_len as usize
    }

    /// Segments in the chain.
    #[inline(always)]
    pub fn nb_segs(&self) -> usize {
        usize::from(self.h().nb_segs)
    }

    /// The segments, head first.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(8).build_anonymous().unwrap();
    /// let mut a = pool.alloc_default().unwrap();
    /// a.append(3).unwrap();
    /// let mut b = pool.alloc_default().unwrap();
    /// b.append(5).unwrap();
    /// a.chain(b).unwrap();
    /// let lens: Vec<usize> = a.segments().map(|s| s.data_len()).collect();
    /// assert_eq!(lens, [3, 5]);
    /// ```
    pub fn segments(&self) -> Segments<'_> {
        Segments {
            next: self.hdr.as_ptr(),
            _chain: std::marker::PhantomData,
        }
    }

    /// The last segment's header.
    pub(crate) fn last_seg(&self) -> *mut MbufHeader {
        let mut s = self.hdr.as_ptr();
        // SAFETY: segments of our chain.
        unsafe {
            while !(*s).next.is_null() {
                s = (*s).next;
            }
        }
        s
    }

    /// The head's data, writable: `None` while the buffer is shared (see
    /// [`Segment::is_writable`]).
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(8).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(4).unwrap();
    /// m.data_mut().unwrap().copy_from_slice(b"ping");
    /// let c = m.clone_in(&pool).unwrap();
    /// assert!(m.data_mut().is_none()); // shared with the clone
    /// drop(c);
    /// assert!(m.data_mut().is_some());
    /// ```
    #[inline]
    pub fn data_mut(&mut self) -> Option<&mut [u8]> {
        if !self.is_writable() {
            return None;
        }
        let h = self.h();
        // SAFETY: the data range lies in the buffer; the buffer is
        // referenced by this mbuf only (checked above) and `&mut self`
        // excludes other borrows of it until the slice goes.
        Some(unsafe {
            std::slice::from_raw_parts_mut(
                h.buf_addr.add(usize::from(h.data_off)),
                usize::from(h.data_len),
            )
        })
    }

    /// The input port, if set.
    pub fn port(&self) -> Option<u16> {
        let p = self.h().port;
        (p != NO_PORT).then_some(p)
    }

    /// Sets (or clears) the input port.
    pub fn set_port(&mut self, port: Option<u16>) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).port = port.unwrap_or(NO_PORT) };
    }

    /// The packet type word (L2/L3/L4/tunnel classification).
    pub fn packet_type(&self) -> u32 {
        self.h().packet_type
    }

    /// Sets the packet type word.
    pub fn set_packet_type(&mut self, ptype: u32) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).packet_type = ptype };
    }

    /// The RSS hash.
    pub fn rss_hash(&self) -> u32 {
        self.h().hash[0]
    }

    /// Sets the RSS hash.
    pub fn set_rss_hash(&mut self, hash: u32) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).hash[0] = hash };
    }

    /// The second hash word (flow director id, or the hash's high half).
    pub fn hash_hi(&self) -> u32 {
        self.h().hash[1]
    }

    /// Sets the second hash word.
    pub fn set_hash_hi(&mut self, v: u32) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).hash[1] = v };
    }

    /// The VLAN TCI.
    pub fn vlan_tci(&self) -> u16 {
        self.h().vlan_tci
    }

    /// Sets the VLAN TCI.
    pub fn set_vlan_tci(&mut self, tci: u16) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).vlan_tci = tci };
    }

    /// The outer VLAN TCI.
    pub fn vlan_tci_outer(&self) -> u16 {
        self.h().vlan_tci_outer
    }

    /// Sets the outer VLAN TCI.
    pub fn set_vlan_tci_outer(&mut self, tci: u16) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).vlan_tci_outer = tci };
    }

    /// The timestamp.
    pub fn timestamp(&self) -> u64 {
        self.h().timestamp
    }

    /// Sets the timestamp.
    pub fn set_timestamp(&mut self, ts: u64) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).timestamp = ts };
    }

    /// The raw offload flag word, without the library's internal bits.
    pub fn ol_flags_bits(&self) -> u64 {
        self.h().ol_flags & !INTERNAL_FLAGS
    }

    /// Sets the offload flags (the library's internal bits are kept as they
    /// are, whatever `bits` says).
    pub fn set_ol_flags_bits(&mut self, bits: u64) {
        let h = self.w();
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*h).ol_flags = ((*h).ol_flags & INTERNAL_FLAGS) | (bits & !INTERNAL_FLAGS) };
    }

    /// The offload flags (without the library's internal bits).
    ///
    /// ```
    /// use pktmem_mbuf::{OffloadFlags, PktPool};
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.set_ol_flags(OffloadFlags::TX_IPV4 | OffloadFlags::TX_IP_CKSUM);
    /// assert!(m.ol_flags().contains(OffloadFlags::TX_IP_CKSUM));
    /// assert_eq!(m.ol_flags().to_string(), "TX_IP_CKSUM TX_IPV4");
    /// ```
    pub fn ol_flags(&self) -> crate::OffloadFlags {
        crate::flags::ol_flags(self.h())
    }

    /// Sets the offload flags (the library's internal bits stay as they are).
    pub fn set_ol_flags(&mut self, flags: crate::OffloadFlags) {
        let h = self.w();
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*h).ol_flags = ((*h).ol_flags & INTERNAL_FLAGS) | flags.bits() };
    }

    /// The TX offload lengths (l2, l3, l4, TSO segment size, outer l3/l2).
    ///
    /// ```
    /// use pktmem_mbuf::{OffloadFlags, PktPool, TxOffload};
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// let mut t = TxOffload::new();
    /// t.set_l2_len(14).unwrap();
    /// t.set_l3_len(20).unwrap();
    /// m.set_tx_offload(t);
    /// m.set_ol_flags(OffloadFlags::TX_IPV4 | OffloadFlags::TX_IP_CKSUM);
    /// assert_eq!(m.tx_offload().l3_len(), 20);
    /// assert!(m.validate_tx_offload().is_ok());
    /// m.set_ol_flags(OffloadFlags::TX_IP_CKSUM | OffloadFlags::TX_IPV6);
    /// assert!(m.validate_tx_offload().is_err()); // IPv4 checksum on IPv6
    /// ```
    pub fn tx_offload(&self) -> crate::TxOffload {
        crate::offload::tx_offload(self.h())
    }

    /// Sets the TX offload lengths.
    pub fn set_tx_offload(&mut self, t: crate::TxOffload) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).tx_offload = t.bits() };
    }

    /// Checks the TX offload flags against the lengths and each other, with
    /// the reference's rules (`rte_validate_tx_offload`).
    pub fn validate_tx_offload(&self) -> Result<(), crate::TxOffloadError> {
        crate::offload::validate_tx_offload(self.h())
    }

    /// [`validate_tx_offload`](Self::validate_tx_offload) plus the rules the
    /// flags' documentation states but the reference does not check.
    pub fn validate_tx_offload_strict(&self) -> Result<(), crate::TxOffloadError> {
        crate::offload::validate_tx_offload_strict(self.h())
    }

    /// Reads a dynamic field (see [`DynField`](crate::DynField)).
    ///
    /// ```
    /// use pktmem_mbuf::{DynField, PktPool};
    /// let seq = DynField::<u32>::register("example_seq_no").unwrap();
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.set_dynfield(seq, 7);
    /// assert_eq!(m.dynfield(seq), 7);
    /// ```
    pub fn dynfield<T: crate::DynFieldValue>(&self, f: crate::DynField<T>) -> T {
        f.get(self.h())
    }

    /// Writes a dynamic field.
    pub fn set_dynfield<T: crate::DynFieldValue>(&mut self, f: crate::DynField<T>, value: T) {
        let start = f.offset() - crate::header::DYN_AREA_OFFSET;
        let h = self.w();
        // SAFETY: owner write (see `w`) of the dynamic area only (a place
        // projection, no reference to the header); `f` was registered inside
        // the area with `T`'s size and alignment (offsets are from the
        // 64-aligned header start, so the address is aligned), and `T` has
        // no padding (`DynFieldValue`), so the bytes stay initialised.
        unsafe {
            std::ptr::addr_of_mut!((*h).dynfield)
                .cast::<u8>()
                .add(start)
                .cast::<T>()
                .write(value);
        }
    }

    /// The raw TX offload word.
    pub fn tx_offload_bits(&self) -> u64 {
        self.h().tx_offload
    }

    /// Sets the raw TX offload word.
    pub fn set_tx_offload_bits(&mut self, bits: u64) {
        // SAFETY: owner write of a non-atomic field (see `w`).
        unsafe { (*self.w()).tx_offload = bits };
    }

    /// The header of the head segment, read-only.
    pub fn header(&self) -> &MbufHeader {
        self.h()
    }

    /// The private area between the head's header and buffer (its size is
    /// the pool's private size).
    pub fn private_area(&self) -> &[u8] {
        let h = self.h();
        // SAFETY: the private area follows the header in the same object and
        // is written only through `private_area_mut` (`&mut self`).
        unsafe {
            std::slice::from_raw_parts(
                self.hdr.as_ptr().cast::<u8>().add(HEADER_SIZE),
                usize::from(h.priv_size),
            )
        }
    }

    /// The private area, writable.
    pub fn private_area_mut(&mut self) -> &mut [u8] {
        let n = usize::from(self.h().priv_size);
        // SAFETY: as `private_area`; `&mut self` makes the borrow exclusive
        // (clones never touch another mbuf's private area).
        unsafe {
            std::slice::from_raw_parts_mut(self.hdr.as_ptr().cast::<u8>().add(HEADER_SIZE), n)
        }
    }
}

// ---- the free path ----

/// Frees a whole chain (`rte_pktmbuf_free`).
///
/// # Safety
/// - `seg` heads a chain the caller owns and gives up.
pub(crate) unsafe fn free_chain(seg: *mut MbufHeader) {
    // SAFETY: forwarded; each segment handed back goes to its pool once.
    unsafe { free_chain_with(seg, |s| put_default(s)) };
}

/// Frees a whole chain, handing each segment that must go back to its pool
/// to `put` (the default-cache path, or an explicit cache).
///
/// # Safety
/// - `seg` heads a chain the caller owns and gives up; `put` returns each
///   segment it is given to that segment's pool, once.
#[inline(always)]
pub(crate) unsafe fn free_chain_with(
    mut seg: *mut MbufHeader,
    mut put: impl FnMut(NonNull<MbufHeader>),
) {
    while !seg.is_null() {
        // SAFETY: a segment of the caller's chain.
        let next = unsafe { (*seg).next };
        // SAFETY: we own this segment's reference; `next` is its next.
        if let Some(s) = unsafe { prefree_seg_next(seg, next) } {
            put(s);
        }
        seg = next;
    }
}

/// Drops a segment's reference; returns it when it must go back to its
/// pool (reset to one segment, refcount 1, no next).
///
/// # Safety
/// - `m` is a live segment and the caller owns one reference, given up.
#[inline(always)]
pub(crate) unsafe fn prefree_seg(m: *mut MbufHeader) -> Option<NonNull<MbufHeader>> {
    // SAFETY: live (condition); its `next` is the caller's to read.
    unsafe { prefree_seg_next(m, (*m).next) }
}

/// [`prefree_seg`] for a segment whose `next` the caller has just read
/// (the chain walks read it before freeing the segment): the value is not
/// read again after the refcount's Acquire load, which the compiler could
/// not otherwise reuse it across.
///
/// # Safety
/// - as [`prefree_seg`]; `next` is `(*m).next` (nobody else writes a
///   segment's `next`: it is its owner's, and the caller owns it).
#[inline(always)]
pub(crate) unsafe fn prefree_seg_next(
    m: *mut MbufHeader,
    next: *mut MbufHeader,
) -> Option<NonNull<MbufHeader>> {
    // SAFETY: live (condition).
    let rc = unsafe { &(*m).refcnt };
    // Acquire: pairs with the Release decrement of whoever gave up another
    // reference (a clone detaching), so its reads of the buffer happen
    // before the segment is reused.
    if rc.load(Ordering::Acquire) != 1 {
        // Release: our accesses happen before the last holder's reuse
        // (paired with its Acquire above or below).
        if rc.fetch_sub(1, Ordering::AcqRel) != 1 {
            return None;
        }
        // We were the last: the count went to 0; back to 1 for the pool.
        rc.store(1, Ordering::Relaxed);
    }
    // SAFETY: we are the only holder now.
    unsafe {
        if (*m).ol_flags & INTERNAL_FLAGS != 0 && !detach_for_free(m) {
            return None;
        }
        if !next.is_null() {
            (*m).next = ptr::null_mut();
        }
        if (*m).nb_segs != 1 {
            (*m).nb_segs = 1;
        }
        Some(NonNull::new_unchecked(m))
    }
}

/// For a segment being freed that is indirect or external: gives up the
/// buffer it points at and restores its own. Returns `false` when the
/// segment must not go back to its pool yet (a pinned buffer still
/// referenced elsewhere: its last reference returns it).
///
/// # Safety
/// - `m` is live and the caller is its only holder.
#[cold]
unsafe fn detach_for_free(m: *mut MbufHeader) -> bool {
    // SAFETY: condition.
    unsafe {
        if (*m).ol_flags & F_EXTERNAL != 0 {
            let sh = (*m).shinfo;
            if (*sh).pinned_owner == m {
                return crate::pinned::pinned_decref(m);
            }
        }
        detach_raw(m);
    }
    true
}

/// Detaches `m` from the buffer it points at (indirect: the direct mbuf's
/// reference; external: the shared info's) and restores its own buffer.
/// Nothing for a direct segment or a pinned pool's own buffer.
///
/// Inlined, with the external case inline too: `Mbuf::detach` of an
/// external buffer is then a few stores and the shared info's decrement,
/// with no call (whose register saves are stores of their own); the
/// indirect case, which also frees a reference of the direct mbuf, stays
/// out of line.
///
/// # Safety
/// - `m` is live and the caller may write it (owner, or only holder).
#[inline(always)]
pub(crate) unsafe fn detach_raw(m: *mut MbufHeader) {
    // SAFETY: condition.
    unsafe {
        let f = (*m).ol_flags;
        if f & F_INDIRECT != 0 {
            detach_indirect(m);
        } else if f & F_EXTERNAL != 0 {
            let sh = (*m).shinfo;
            if (*sh).pinned_owner == m {
                return; // a pinned pool's mbuf keeps its buffer
            }
            // Restored before the reference goes: if the release (a user
            // callback) panics, the mbuf already points at its own buffer.
            restore_own_buffer(m);
            (*m).ol_flags &= !F_EXTERNAL;
            (*m).shinfo = ptr::null_mut();
            SharedHdr::release_ref(NonNull::new_unchecked(sh));
        }
    }
}

/// [`detach_raw`] of an indirect segment.
///
/// # Safety
/// - as [`detach_raw`]; `m` is indirect.
#[inline(never)]
unsafe fn detach_indirect(m: *mut MbufHeader) {
    // SAFETY: condition.
    unsafe {
        let md = (*m).direct();
        restore_own_buffer(m);
        (*m).ol_flags &= !F_INDIRECT;
        (*m).shinfo = ptr::null_mut();
        // The direct mbuf's reference we held.
        if let Some(d) = prefree_seg(md) {
            put_default(d);
        }
    }
}

/// Points `m` back at its own buffer (after its header and private area),
/// data empty at the default headroom.
///
/// # Safety
/// - `m` is a live pool object the caller may write.
#[inline(always)]
pub(crate) unsafe fn restore_own_buffer(m: *mut MbufHeader) {
    // SAFETY: condition; a pool object's header is followed by its private
    // area and data room inside the same object, and the object header
    // before it (mempool layout) says its IOVA and pool.
    unsafe {
        let off = HEADER_SIZE + usize::from((*m).priv_size);
        let obj = Obj::from_non_null(NonNull::new_unchecked(m.cast::<u8>()));
        // No count taken: the object is out of its pool while we hold it
        // (condition), which keeps the pool alive for this read.
        let pool = obj.owner_ref();
        // The pool's data room, not the object's size minus the header: the
        // mempool rounds objects up (to 8 bytes), which would grow the
        // buffer or, for a room near 65,535, wrap its 16-bit length.
        (*m).buf_addr = m.cast::<u8>().add(off);
        (*m).buf_iova = obj.iova_unchecked().map_or(NO_IOVA, |i| i.0 + off as u64);
        (*m).buf_len = crate::pool::pool_data_room(&pool);
        (*m).data_off = (HEADROOM as u16).min((*m).buf_len);
        // Written only when there was data (a detach right after an attach
        // has none): the stores are what a detach costs. Saturating: only a
        // head's packet length counts (and holds its data); an inner
        // segment's is stale once the chain grew it (append, grow_tail on
        // the last segment).
        if (*m).data_len != 0 {
            (*m).pkt_len = (*m).pkt_len.saturating_sub(u32::from((*m).data_len));
            (*m).data_len = 0;
        }
    }
}

/// Returns a freed segment to its pool through the calling thread's
/// default cache.
///
/// # Safety
/// - `m` is a pool object out of its pool, reset by `prefree_seg`.
#[inline(always)]
pub(crate) unsafe fn put_default(m: NonNull<MbufHeader>) {
    let obj = Obj::from_non_null(m.cast());
    debug_check_free(m);
    // SAFETY: the object is out of its pool (condition) until the put below,
    // the last use of the `PoolRef` (that put may free the pool: the last
    // object back with no handle left).
    let pool = unsafe { obj.owner_ref() };
    // SAFETY: an object of `pool`, returned once.
    unsafe { pool.put_default(obj) };
}

/// Returns a freed segment through `cache` when it is of the cache's pool,
/// else through the default path.
///
/// # Safety
/// - as [`put_default`].
#[inline(always)]
pub(crate) unsafe fn put_cached(cache: &mut Cache, m: NonNull<MbufHeader>) {
    // SAFETY: the header of a live object (condition).
    if unsafe { m.as_ref() }.pool == cache.pool().as_ptr() {
        debug_check_free(m);
        let pool: *const Mempool = cache.pool();
        // SAFETY: an object of the cache's pool, returned once; `pool` is
        // the cache's own handle, alive for the call.
        unsafe { (*pool).put(cache, Obj::from_non_null(m.cast())) };
    } else {
        // SAFETY: forwarded.
        unsafe { put_default(m) };
    }
}

#[inline(always)]
#[cfg_attr(not(debug_assertions), allow(unused_variables))]
fn debug_check_free(m: NonNull<MbufHeader>) {
    #[cfg(debug_assertions)]
    {
        // SAFETY: a live segment being freed.
        let h = unsafe { m.as_ref() };
        debug_assert_eq!(h.refcnt.load(Ordering::Relaxed), 1, "freed mbuf refcount");
        debug_assert!(
            h.next.is_null() && h.nb_segs == 1,
            "freed mbuf still chained"
        );
        debug_assert_eq!(h.ol_flags & F_INDIRECT, 0, "freed mbuf still indirect");
    }
}

/// A packet shared read-only by several owners (each a reference in every
/// segment's refcount, as the reference's `rte_pktmbuf_refcnt_update` adds):
/// the way to hand one packet to several consumers (multicast, a mirror
/// port) without cloning its headers. Cloning takes one more reference per
/// segment; dropping gives it back, and the last owner frees the chain.
/// [`into_unique`](Self::into_unique) gets the writable [`Mbuf`] back once
/// the other owners are gone.
///
/// ```
/// use pktmem_mbuf::PktPool;
/// let pool = PktPool::builder(4).build_anonymous().unwrap();
/// let mut m = pool.alloc_default().unwrap();
/// m.append(3).unwrap().copy_from_slice(b"abc");
/// let a = m.into_shared();
/// let b = a.clone();
/// assert_eq!((a.refcnt(), b.data()), (2, &b"abc"[..]));
/// let a = a.into_unique().unwrap_err(); // `b` still holds it
/// drop(b);
/// let mut m = a.into_unique().unwrap();
/// assert!(m.data_mut().is_some());
/// ```
#[derive(Debug)]
pub struct SharedMbuf(Mbuf);

impl Mbuf {
    /// Turns this packet into a shared, read-only one (see [`SharedMbuf`]).
    pub fn into_shared(self) -> SharedMbuf {
        SharedMbuf(self)
    }
}

impl SharedMbuf {
    /// The packet, for reading (its `&self` methods: `data`, `read`, `clone_in`, ...).
    pub fn get(&self) -> &Mbuf {
        &self.0
    }

    /// Another reference, or `None` (nothing taken) when a segment's 16-bit
    /// refcount is at its maximum.
    pub fn try_clone(&self) -> Option<SharedMbuf> {
        for (i, s) in self.0.segments().enumerate() {
            if !crate::sync::try_acquire(&s.0.refcnt) {
                // Give back the references taken on the segments before it
                // (ours keep each count above what we subtract).
                for d in self.0.segments().take(i) {
                    d.0.refcnt.fetch_sub(1, Ordering::Relaxed);
                }
                return None;
            }
        }
        // SAFETY: every segment's count went up by one: the new handle owns
        // those references.
        Some(SharedMbuf(unsafe { Mbuf::from_hdr(self.0.hdr) }))
    }

    /// The writable packet back, when no other owner holds it (every
    /// segment's refcount is 1); else `self` unchanged.
    pub fn into_unique(self) -> Result<Mbuf, SharedMbuf> {
        // Acquire: pairs with the Release decrements of the owners that went,
        // so their reads happen before our writes.
        if self
            .0
            .segments()
            .all(|s| s.0.refcnt.load(Ordering::Acquire) == 1)
        {
            Ok(self.0)
        } else {
            Err(self)
        }
    }
}

impl Clone for SharedMbuf {
    /// Another reference; aborts the process if a 16-bit refcount would
    /// wrap (as `Arc` does), [`try_clone`](Self::try_clone) returns `None`.
    fn clone(&self) -> Self {
        self.try_clone().unwrap_or_else(|| std::process::abort())
    }
}

impl Deref for SharedMbuf {
    type Target = Mbuf;
    fn deref(&self) -> &Mbuf {
        &self.0
    }
}
