//! The mbuf header: 128 bytes in two cache lines, `#[repr(C)]`, at the start
//! of every pool object, followed by the private area and the data room.
//!
//! The first cache line holds what a receive path writes for every packet
//! (buffer address and IOVA, data offset, refcount, segment count, port,
//! offload flags, packet type, lengths, VLAN, hash, buffer length, pool); the
//! second what is needed less often (next segment, TX offload lengths, the
//! external buffer's shared info, private size, timestamp, the dynamic-field
//! area). Size, alignment and every offset are checked at compile time.

use static_assertions::const_assert_eq;

use crate::ext::SharedHdr;
use crate::sync::AtomicU16;

/// Internal value of [`MbufHeader::buf_iova`] when the buffer has no IOVA.
pub(crate) const NO_IOVA: u64 = u64::MAX;

/// Offload flag bit: the buffer is an external buffer (its shared info is
/// [`MbufHeader::shinfo`]). Internal: user setters cannot change it.
pub(crate) const F_EXTERNAL: u64 = 1 << 61;
/// Offload flag bit: the mbuf is indirect (its buffer belongs to another
/// mbuf, whose refcount it holds). Internal.
pub(crate) const F_INDIRECT: u64 = 1 << 62;
/// The offload flag bits the library owns.
pub(crate) const INTERNAL_FLAGS: u64 = F_EXTERNAL | F_INDIRECT;

/// Byte offset of the dynamic-field area in the header.
#[cfg(not(loom))]
pub const DYN_AREA_OFFSET: usize = 100;
/// Byte offset of the dynamic-field area in the header (under loom the
/// refcount is loom's larger tracking handle, see `crate::sync`).
#[cfg(loom)]
pub const DYN_AREA_OFFSET: usize = std::mem::offset_of!(MbufHeader, dynfield);
/// Length of the dynamic-field area in bytes.
pub const DYN_AREA_LEN: usize = 28;

/// Size of the mbuf header (two cache lines).
#[cfg(not(loom))]
pub const HEADER_SIZE: usize = 128;
/// Size of the mbuf header (under loom the refcount is loom's larger
/// tracking handle, see `crate::sync`, and the pool objects' layout follows
/// the real size).
#[cfg(loom)]
pub const HEADER_SIZE: usize = std::mem::size_of::<MbufHeader>();

/// One mbuf header, the first 128 bytes of a pool object.
///
/// Its fields are private: read them through [`Segment`](crate::Segment)
/// and [`Mbuf`](crate::Mbuf). The layout is fixed (`#[repr(C)]`, 64-byte
/// aligned, offsets asserted at compile time) so that a driver can rely on
/// where the receive path's fields are.
#[repr(C, align(64))]
#[derive(Debug)]
pub struct MbufHeader {
    // ---- cache line 0: the receive fast path ----
    /// Start of the buffer (headroom, data, tailroom).
    pub(crate) buf_addr: *mut u8,
    /// IOVA of `buf_addr`, or [`NO_IOVA`].
    pub(crate) buf_iova: u64,
    /// Offset of the data from `buf_addr`.
    pub(crate) data_off: u16,
    /// References to this header's buffer: owners of the mbuf plus indirect
    /// mbufs attached to it. Invariant: at least 1 while the mbuf is out of
    /// its pool; 1 while in the pool.
    pub(crate) refcnt: AtomicU16,
    /// Segments in the chain (meaningful in the head).
    pub(crate) nb_segs: u16,
    /// Input port.
    pub(crate) port: u16,
    /// Offload flags (DPDK's bit numbers; `INTERNAL_FLAGS` are ours).
    pub(crate) ol_flags: u64,
    /// Packet type (L2/L3/L4/tunnel/inner classification).
    pub(crate) packet_type: u32,
    /// Bytes of the whole chain (meaningful in the head).
    pub(crate) pkt_len: u32,
    /// Bytes of data in this segment.
    pub(crate) data_len: u16,
    /// VLAN TCI (receive: stripped tag; transmit: tag to insert).
    pub(crate) vlan_tci: u16,
    /// RSS hash and a second word (flow director id or the hash's high half).
    pub(crate) hash: [u32; 2],
    /// Outer VLAN TCI (`QinQ`).
    pub(crate) vlan_tci_outer: u16,
    /// Length of the buffer at `buf_addr`.
    pub(crate) buf_len: u16,
    /// The owning mempool (`Mempool::as_ptr`), for checks; the object's own
    /// mempool header says the same.
    pub(crate) pool: *const (),

    // ---- cache line 1 ----
    /// Next segment of the chain, or null.
    pub(crate) next: *mut MbufHeader,
    /// TX offload lengths, packed as DPDK packs them: l2 (7 bits), l3 (9),
    /// l4 (8), TSO segment size (16), outer l3 (9), outer l2 (7).
    pub(crate) tx_offload: u64,
    /// Shared info of the external buffer when `F_EXTERNAL` is set; the
    /// direct mbuf whose buffer this is when `F_INDIRECT` is set (see
    /// [`MbufHeader::direct`]).
    pub(crate) shinfo: *mut SharedHdr,
    /// Timestamp (units are the driver's).
    pub(crate) timestamp: u64,
    /// Size of the private area after the header.
    pub(crate) priv_size: u16,
    /// Timesync index (IEEE 1588).
    pub(crate) timesync: u16,
    /// Dynamic-field area (see [`crate::dynfield`]).
    pub(crate) dynfield: [u8; DYN_AREA_LEN],
}

const_assert_eq!(std::mem::size_of::<MbufHeader>(), HEADER_SIZE);
const_assert_eq!(std::mem::align_of::<MbufHeader>(), 64);
const_assert_eq!(std::mem::offset_of!(MbufHeader, dynfield), DYN_AREA_OFFSET);

// The fixed layout, in the std build. Under loom the refcount is loom's
// tracking handle (8 bytes, 8-aligned; see `crate::sync`), which moves every
// field after it: the models check the protocols, not the layout.
#[cfg(not(loom))]
mod fixed_layout {
    use static_assertions::{const_assert, const_assert_eq};

    use super::{MbufHeader, DYN_AREA_LEN, DYN_AREA_OFFSET, HEADER_SIZE};

    const_assert_eq!(std::mem::offset_of!(MbufHeader, buf_addr), 0);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, buf_iova), 8);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, data_off), 16);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, refcnt), 18);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, nb_segs), 20);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, port), 22);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, ol_flags), 24);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, packet_type), 32);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, pkt_len), 36);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, data_len), 40);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, vlan_tci), 42);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, hash), 44);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, vlan_tci_outer), 52);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, buf_len), 54);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, pool), 56);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, next), 64);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, tx_offload), 72);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, shinfo), 80);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, timestamp), 88);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, priv_size), 96);
    const_assert_eq!(std::mem::offset_of!(MbufHeader, timesync), 98);
    const_assert_eq!(DYN_AREA_OFFSET + DYN_AREA_LEN, HEADER_SIZE);
    // The receive fast path is the first cache line.
    const_assert!(std::mem::offset_of!(MbufHeader, pool) + 8 <= 64);
}

impl MbufHeader {
    /// For an indirect mbuf: the direct mbuf whose buffer it points at
    /// (kept in the `shinfo` word, which indirect mbufs do not otherwise use).
    #[inline(always)]
    // Aligned: the word holds a header pointer (64-aligned) when indirect.
    #[allow(clippy::cast_ptr_alignment)]
    pub(crate) fn direct(&self) -> *mut MbufHeader {
        self.shinfo.cast::<MbufHeader>()
    }

    /// A header with every field zero (null pointers, refcount 0): for
    /// tests of code that works on header fields only (flags, dynamic
    /// fields, TX offload). Not a usable mbuf.
    #[doc(hidden)]
    pub fn zeroed_for_tests() -> Self {
        Self {
            buf_addr: std::ptr::null_mut(),
            buf_iova: 0,
            data_off: 0,
            refcnt: AtomicU16::new(0),
            nb_segs: 0,
            port: 0,
            ol_flags: 0,
            packet_type: 0,
            pkt_len: 0,
            data_len: 0,
            vlan_tci: 0,
            hash: [0; 2],
            vlan_tci_outer: 0,
            buf_len: 0,
            pool: std::ptr::null(),
            next: std::ptr::null_mut(),
            tx_offload: 0,
            shinfo: std::ptr::null_mut(),
            timestamp: 0,
            priv_size: 0,
            timesync: 0,
            dynfield: [0; DYN_AREA_LEN],
        }
    }
}
