//! Offload flags: the `ol_flags` word of an mbuf as a typed set.
//!
//! # Model
//!
//! A receive path (a driver) tells the application what the hardware found
//! out about a packet (a VLAN tag was stripped, the IP checksum is good, an
//! RSS hash is in the header, ...); a transmit path is told by the
//! application what the hardware should do (compute the TCP checksum,
//! segment the packet, insert a VLAN tag, ...). Both are bits of one 64-bit
//! word, numbered exactly as DPDK 22.11 numbers them, so a driver ported from
//! the reference writes the same bits:
//!
//! ```text
//!  bit 0 ..= 22   RX flags (11, 12 and 17 unused)
//!  bit 23 ..= 40  free: dynamic flags (DynFlag::register)
//!  bit 41 ..= 60  TX flags
//!  bit 61, 62     internal (external buffer, indirect mbuf): never in this set
//!  bit 63         unused
//! ```
//!
//! [`OffloadFlags`] is that word. Single-bit flags are associated constants
//! named like DPDK's without the `RTE_MBUF_F_` prefix
//! ([`OffloadFlags::RX_VLAN`], [`OffloadFlags::TX_TCP_SEG`], ...). Some flags
//! are small multi-bit fields whose value is a code, not a set of bits (the
//! RX checksum states, the TX L4 checksum type, the TX tunnel type): those
//! have enum getters and setters ([`OffloadFlags::rx_ip_cksum`],
//! [`OffloadFlags::set_tx_l4`], ...), and their code values also exist as
//! constants for code that compares whole words. Testing a code with
//! [`OffloadFlags::contains`] is a trap (`RX_IP_CKSUM_NONE` contains both
//! `RX_IP_CKSUM_BAD` and `RX_IP_CKSUM_GOOD`): use the getters.
//!
//! # Names
//!
//! Every flag and every non-zero field value has a name: the constant's name,
//! e.g. `"RX_VLAN"`, `"RX_IP_CKSUM_GOOD"`, `"TX_TUNNEL_VXLAN"` (DPDK's
//! `rte_get_rx_ol_flag_name` says `"RTE_MBUF_F_RX_VLAN"`; parsing accepts
//! both spellings, printing uses the short one). A registered dynamic flag
//! is named by its registration name. [`OffloadFlags::iter_names`] yields the
//! named parts of a set; `Display` prints them separated by one space (bits
//! no name covers, such as an unregistered dynamic bit or a reserved tunnel
//! code, are printed last as one hexadecimal number `0x...`), and `FromStr`
//! parses such a list back (separators: whitespace, `|` or `,`). The zero
//! field values that DPDK names in its lists (`RX_IP_CKSUM_UNKNOWN`,
//! `RX_L4_CKSUM_UNKNOWN`, `RX_OUTER_L4_CKSUM_UNKNOWN`, `TX_L4_NO_CKSUM`,
//! `TX_TUNNEL_NONE`) are accepted by the parser and never printed.
//!
//! # Internal bits
//!
//! Bits 61 (`EXTERNAL`) and 62 (`INDIRECT`) describe who owns an mbuf's
//! buffer; the library keeps them right and nothing else may change them.
//! They are not part of this type: [`OffloadFlags::from_bits`] refuses them,
//! [`OffloadFlags::from_bits_truncate`] and `!` drop them, and writing a set
//! into a header keeps the header's own internal bits.
//!
//! # Dynamic flags
//!
//! [`DynFlag::register`] hands out one of the 18 bits DPDK 22.11 leaves free
//! (23 to 40), by name, once per process: registering the same name again
//! returns the same bit. There is no unregistration: mbufs anywhere in the
//! process may carry the bit, so it stays taken until the process ends (as
//! in the reference).
//!
//! ```
//! use pktmem_mbuf::flags::{OffloadFlags, RxIpCksum, TxL4};
//!
//! let mut f = OffloadFlags::RX_VLAN | OffloadFlags::RX_VLAN_STRIPPED;
//! f.set_rx_ip_cksum(RxIpCksum::Good);
//! assert_eq!(f.to_string(), "RX_VLAN RX_IP_CKSUM_GOOD RX_VLAN_STRIPPED");
//! assert_eq!("RX_VLAN RTE_MBUF_F_RX_VLAN_STRIPPED RX_IP_CKSUM_GOOD".parse(), Ok(f));
//!
//! let mut tx = OffloadFlags::TX_IPV4 | OffloadFlags::TX_IP_CKSUM;
//! tx.set_tx_l4(TxL4::Tcp);
//! assert_eq!(tx.tx_l4(), TxL4::Tcp);
//! assert_eq!(tx.bits(), (1 << 55) | (1 << 54) | (1 << 52));
//! ```

use std::fmt;
use std::ops::{BitAnd, BitAndAssign, BitOr, BitOrAssign, Not, Sub, SubAssign};
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};

use crate::header::{MbufHeader, INTERNAL_FLAGS};

/// The offload flags of an mbuf: a set of DPDK 22.11 `RTE_MBUF_F_*` bits
/// (see the [module docs](self) for the model and the names).
///
/// Only valid bits can be in a set: the RX and TX flags, and the dynamic
/// flag area (bits 23 to 40). The internal bits 61/62 and the unused bits
/// 11, 12, 17 and 63 never are.
///
/// ```
/// use pktmem_mbuf::flags::OffloadFlags;
///
/// let f = OffloadFlags::TX_IPV6 | OffloadFlags::TX_TCP_SEG;
/// assert!(f.contains(OffloadFlags::TX_IPV6));
/// assert!(!f.contains(OffloadFlags::TX_IPV4));
/// assert_eq!((f - OffloadFlags::TX_TCP_SEG), OffloadFlags::TX_IPV6);
/// assert!(OffloadFlags::default().is_empty());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct OffloadFlags(u64);

const fn bit(n: u32) -> u64 {
    1 << n
}

/// Bits of the multi-bit RX IP checksum field.
const RX_IP_CKSUM_BITS: u64 = bit(4) | bit(7);
/// Bits of the multi-bit RX L4 checksum field.
const RX_L4_CKSUM_BITS: u64 = bit(3) | bit(8);
/// Bits of the multi-bit RX outer L4 checksum field.
const RX_OUTER_L4_CKSUM_BITS: u64 = bit(21) | bit(22);
/// First bit of the TX tunnel type field (4 bits).
const TX_TUNNEL_SHIFT: u32 = 45;
/// Bits of the TX tunnel type field.
const TX_TUNNEL_BITS: u64 = 0xF << TX_TUNNEL_SHIFT;
/// First bit of the TX L4 checksum type field (2 bits).
const TX_L4_SHIFT: u32 = 52;
/// Bits of the TX L4 checksum type field.
const TX_L4_BITS: u64 = 0x3 << TX_L4_SHIFT;

/// First bit DPDK 22.11 leaves free (`RTE_MBUF_F_FIRST_FREE`).
pub const DYN_FLAG_FIRST_BIT: u32 = 23;
/// Last bit DPDK 22.11 leaves free (`RTE_MBUF_F_LAST_FREE`).
pub const DYN_FLAG_LAST_BIT: u32 = 40;
/// The bits dynamic flags are taken from.
const DYN_BITS: u64 = ((1u64 << (DYN_FLAG_LAST_BIT + 1)) - 1) & !((1u64 << DYN_FLAG_FIRST_BIT) - 1);

/// All RX bits DPDK 22.11 defines.
const RX_BITS: u64 = bit(0)
    | bit(1)
    | bit(2)
    | RX_L4_CKSUM_BITS
    | RX_IP_CKSUM_BITS
    | bit(5)
    | bit(6)
    | bit(9)
    | bit(10)
    | bit(13)
    | bit(14)
    | bit(15)
    | bit(16)
    | bit(18)
    | bit(19)
    | bit(20)
    | RX_OUTER_L4_CKSUM_BITS;

/// All TX bits DPDK 22.11 defines (`RTE_MBUF_F_TX_OFFLOAD_MASK`).
const TX_BITS: u64 = bit(41)
    | bit(42)
    | bit(43)
    | bit(44)
    | TX_TUNNEL_BITS
    | bit(49)
    | bit(50)
    | bit(51)
    | TX_L4_BITS
    | bit(54)
    | bit(55)
    | bit(56)
    | bit(57)
    | bit(58)
    | bit(59)
    | bit(60);

/// Every bit an [`OffloadFlags`] may hold.
const VALID_BITS: u64 = RX_BITS | TX_BITS | DYN_BITS;

// The internal bits are not valid public bits; RX, TX and dynamic bits do
// not overlap.
static_assertions::const_assert_eq!(VALID_BITS & INTERNAL_FLAGS, 0);
static_assertions::const_assert_eq!(RX_BITS & TX_BITS, 0);
static_assertions::const_assert_eq!((RX_BITS | TX_BITS) & DYN_BITS, 0);

impl OffloadFlags {
    // ---------------------------------------------------------------- RX
    /// RX: the packet is an 802.1Q VLAN packet and its TCI is in the
    /// header's `vlan_tci`; the tag is still in the data unless
    /// [`RX_VLAN_STRIPPED`](Self::RX_VLAN_STRIPPED) is set too. Bit 0.
    pub const RX_VLAN: Self = Self(bit(0));
    /// RX: the header's hash holds the RSS hash of the packet. Bit 1.
    pub const RX_RSS_HASH: Self = Self(bit(1));
    /// RX: the packet matched a flow director rule. Bit 2.
    pub const RX_FDIR: Self = Self(bit(2));
    /// RX L4 checksum field value: the L4 checksum is wrong (bit 3).
    /// Read the field with [`rx_l4_cksum`](Self::rx_l4_cksum).
    pub const RX_L4_CKSUM_BAD: Self = Self(bit(3));
    /// RX IP checksum field value: the IP checksum is wrong (bit 4).
    /// Read the field with [`rx_ip_cksum`](Self::rx_ip_cksum).
    pub const RX_IP_CKSUM_BAD: Self = Self(bit(4));
    /// RX: the hardware found the outermost IP header's checksum wrong.
    /// Bit 5.
    pub const RX_OUTER_IP_CKSUM_BAD: Self = Self(bit(5));
    /// RX: the hardware stripped the VLAN tag (its TCI is in `vlan_tci`);
    /// implies [`RX_VLAN`](Self::RX_VLAN). Bit 6.
    pub const RX_VLAN_STRIPPED: Self = Self(bit(6));
    /// RX IP checksum field value: the IP checksum is valid (bit 7).
    pub const RX_IP_CKSUM_GOOD: Self = Self(bit(7));
    /// RX L4 checksum field value: the L4 checksum is valid (bit 8).
    pub const RX_L4_CKSUM_GOOD: Self = Self(bit(8));
    /// RX IP checksum field value: the checksum in the packet is not
    /// correct but the packet's data is intact (e.g. checksum offloaded by
    /// a virtual sender); bits 4 and 7.
    pub const RX_IP_CKSUM_NONE: Self = Self(bit(4) | bit(7));
    /// RX L4 checksum field value: the checksum in the packet is not
    /// correct but the data is intact; bits 3 and 8.
    pub const RX_L4_CKSUM_NONE: Self = Self(bit(3) | bit(8));
    /// RX IP checksum field value: nothing is known (no bits set).
    pub const RX_IP_CKSUM_UNKNOWN: Self = Self(0);
    /// RX L4 checksum field value: nothing is known (no bits set).
    pub const RX_L4_CKSUM_UNKNOWN: Self = Self(0);
    /// The bits of the RX IP checksum field (bits 4 and 7).
    pub const RX_IP_CKSUM_MASK: Self = Self(RX_IP_CKSUM_BITS);
    /// The bits of the RX L4 checksum field (bits 3 and 8).
    pub const RX_L4_CKSUM_MASK: Self = Self(RX_L4_CKSUM_BITS);
    /// RX: an IEEE 1588 (PTP) Ethernet frame. Bit 9.
    pub const RX_IEEE1588_PTP: Self = Self(bit(9));
    /// RX: the packet was timestamped by the hardware (IEEE 1588, L2 or
    /// L4). Bit 10.
    pub const RX_IEEE1588_TMST: Self = Self(bit(10));
    /// RX: the flow director id of the matched rule is in the hash's second
    /// word. Bit 13.
    pub const RX_FDIR_ID: Self = Self(bit(13));
    /// RX: flexible bytes of a flow director match are reported. Bit 14.
    pub const RX_FDIR_FLX: Self = Self(bit(14));
    /// RX: the hardware stripped the outer VLAN tag (its TCI is in
    /// `vlan_tci_outer`); implies [`RX_VLAN`](Self::RX_VLAN) and
    /// [`RX_QINQ`](Self::RX_QINQ). Bit 15.
    pub const RX_QINQ_STRIPPED: Self = Self(bit(15));
    /// RX: the packet was coalesced from several (LRO); the TSO segment
    /// size in the TX offload word holds the original segment size. Bit 16.
    pub const RX_LRO: Self = Self(bit(16));
    /// RX: security processing (e.g. inline `IPsec`) was applied. Bit 18.
    pub const RX_SEC_OFFLOAD: Self = Self(bit(18));
    /// RX: security processing was attempted and failed. Bit 19.
    pub const RX_SEC_OFFLOAD_FAILED: Self = Self(bit(19));
    /// RX: a double-VLAN (`QinQ`) packet; the outer TCI is in
    /// `vlan_tci_outer`, the inner in `vlan_tci`. Bit 20.
    pub const RX_QINQ: Self = Self(bit(20));
    /// RX outer L4 checksum field value: the outer L4 checksum is wrong
    /// (bit 21). Read the field with
    /// [`rx_outer_l4_cksum`](Self::rx_outer_l4_cksum).
    pub const RX_OUTER_L4_CKSUM_BAD: Self = Self(bit(21));
    /// RX outer L4 checksum field value: the outer L4 checksum is valid
    /// (bit 22).
    pub const RX_OUTER_L4_CKSUM_GOOD: Self = Self(bit(22));
    /// RX outer L4 checksum field value: the checksum state is invalid
    /// (bits 21 and 22).
    pub const RX_OUTER_L4_CKSUM_INVALID: Self = Self(bit(21) | bit(22));
    /// RX outer L4 checksum field value: nothing is known (no bits set).
    pub const RX_OUTER_L4_CKSUM_UNKNOWN: Self = Self(0);
    /// The bits of the RX outer L4 checksum field (bits 21 and 22).
    pub const RX_OUTER_L4_CKSUM_MASK: Self = Self(RX_OUTER_L4_CKSUM_BITS);

    // ---------------------------------------------------------------- TX
    /// TX: compute the outer UDP checksum (needs the outer L2/L3 lengths
    /// and [`TX_OUTER_IPV4`](Self::TX_OUTER_IPV4) or
    /// [`TX_OUTER_IPV6`](Self::TX_OUTER_IPV6)). Bit 41.
    pub const TX_OUTER_UDP_CKSUM: Self = Self(bit(41));
    /// TX: UDP fragmentation offload; the TSO segment size holds the
    /// fragment size. Bit 42.
    pub const TX_UDP_SEG: Self = Self(bit(42));
    /// TX: request security offload processing (needs the L2 and L3
    /// lengths). Bit 43.
    pub const TX_SEC_OFFLOAD: Self = Self(bit(43));
    /// TX: `MACsec` offload. Bit 44.
    pub const TX_MACSEC: Self = Self(bit(44));
    /// TX tunnel field value: VXLAN (code 1 at bits 45-48). Set the field
    /// with [`set_tx_tunnel`](Self::set_tx_tunnel).
    pub const TX_TUNNEL_VXLAN: Self = Self(0x1 << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: GRE (code 2).
    pub const TX_TUNNEL_GRE: Self = Self(0x2 << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: IP in IP (code 3).
    pub const TX_TUNNEL_IPIP: Self = Self(0x3 << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: GENEVE (code 4).
    pub const TX_TUNNEL_GENEVE: Self = Self(0x4 << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: MPLS in UDP, RFC 7510 (code 5).
    pub const TX_TUNNEL_MPLSINUDP: Self = Self(0x5 << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: VXLAN-GPE (code 6).
    pub const TX_TUNNEL_VXLAN_GPE: Self = Self(0x6 << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: GTP (code 7).
    pub const TX_TUNNEL_GTP: Self = Self(0x7 << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: ESP (code 8).
    pub const TX_TUNNEL_ESP: Self = Self(0x8 << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: a generic IP-encapsulated tunnel (code 0xD).
    pub const TX_TUNNEL_IP: Self = Self(0xD << TX_TUNNEL_SHIFT);
    /// TX tunnel field value: a generic UDP-encapsulated tunnel, implying an
    /// outer IP layer (code 0xE).
    pub const TX_TUNNEL_UDP: Self = Self(0xE << TX_TUNNEL_SHIFT);
    /// The bits of the TX tunnel field (45 to 48).
    pub const TX_TUNNEL_MASK: Self = Self(TX_TUNNEL_BITS);
    /// TX: insert two VLAN tags (`QinQ`) from `vlan_tci` and
    /// `vlan_tci_outer`. Bit 49.
    pub const TX_QINQ: Self = Self(bit(49));
    /// TX: TCP segmentation offload (implies the TCP checksum; needs an IP
    /// type flag, the IP checksum for IPv4, the L2/L3/L4 lengths and the
    /// segment size). Bit 50.
    pub const TX_TCP_SEG: Self = Self(bit(50));
    /// TX: timestamp this packet (IEEE 1588). Bit 51.
    pub const TX_IEEE1588_TMST: Self = Self(bit(51));
    /// TX L4 field value: no L4 checksum offload (no bits set).
    pub const TX_L4_NO_CKSUM: Self = Self(0);
    /// TX L4 field value: compute the TCP checksum (code 1 at bits 52-53).
    /// Set the field with [`set_tx_l4`](Self::set_tx_l4).
    pub const TX_TCP_CKSUM: Self = Self(0x1 << TX_L4_SHIFT);
    /// TX L4 field value: compute the SCTP checksum (code 2).
    pub const TX_SCTP_CKSUM: Self = Self(0x2 << TX_L4_SHIFT);
    /// TX L4 field value: compute the UDP checksum (code 3).
    pub const TX_UDP_CKSUM: Self = Self(0x3 << TX_L4_SHIFT);
    /// The bits of the TX L4 checksum field (52 and 53).
    pub const TX_L4_MASK: Self = Self(TX_L4_BITS);
    /// TX: compute the IP checksum (IPv4 only; needs the L2/L3 lengths).
    /// Bit 54.
    pub const TX_IP_CKSUM: Self = Self(bit(54));
    /// TX: the (inner) packet is IPv4; required with any L3/L4 offload.
    /// Bit 55.
    pub const TX_IPV4: Self = Self(bit(55));
    /// TX: the (inner) packet is IPv6; required with TSO or an L4 checksum.
    /// Bit 56.
    pub const TX_IPV6: Self = Self(bit(56));
    /// TX: insert a VLAN tag from `vlan_tci`. Bit 57.
    pub const TX_VLAN: Self = Self(bit(57));
    /// TX: compute the outer IP checksum (outer IPv4 only; needs the outer
    /// L2/L3 lengths). Bit 58.
    pub const TX_OUTER_IP_CKSUM: Self = Self(bit(58));
    /// TX: the outer header of a tunnelled packet is IPv4. Bit 59.
    pub const TX_OUTER_IPV4: Self = Self(bit(59));
    /// TX: the outer header of a tunnelled packet is IPv6. Bit 60.
    pub const TX_OUTER_IPV6: Self = Self(bit(60));
    /// Every TX flag (DPDK's `RTE_MBUF_F_TX_OFFLOAD_MASK`): a packet with
    /// none of these asks for no TX offload.
    pub const TX_OFFLOAD_MASK: Self = Self(TX_BITS);
    /// Every RX flag DPDK 22.11 defines.
    pub const RX_MASK: Self = Self(RX_BITS);
    /// The dynamic-flag area (bits 23 to 40).
    pub const DYN_MASK: Self = Self(DYN_BITS);

    /// The empty set.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// assert_eq!(OffloadFlags::empty().bits(), 0);
    /// ```
    #[must_use]
    pub const fn empty() -> Self {
        Self(0)
    }

    /// Every valid bit: all RX and TX flags and the dynamic-flag area.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// assert!(OffloadFlags::all().contains(OffloadFlags::TX_OUTER_IPV6));
    /// assert_eq!(OffloadFlags::all().bits() & (1 << 61), 0);
    /// ```
    #[must_use]
    pub const fn all() -> Self {
        Self(VALID_BITS)
    }

    /// The raw word (DPDK's bit numbers).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// assert_eq!(OffloadFlags::RX_QINQ.bits(), 1 << 20);
    /// ```
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The set of `bits`, or `None` if it has a bit no set may hold (the
    /// internal bits 61 and 62, or the unused bits 11, 12, 17, 63).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// assert_eq!(OffloadFlags::from_bits(1), Some(OffloadFlags::RX_VLAN));
    /// assert_eq!(OffloadFlags::from_bits(1 << 62), None); // INDIRECT is internal
    /// assert_eq!(OffloadFlags::from_bits(1 << 17), None); // unused
    /// ```
    pub const fn from_bits(bits: u64) -> Option<Self> {
        if bits & !VALID_BITS == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The set of `bits` with every bit no set may hold dropped (so a
    /// header's internal bits never leak into a set).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let f = OffloadFlags::from_bits_truncate((1 << 61) | (1 << 57));
    /// assert_eq!(f, OffloadFlags::TX_VLAN);
    /// ```
    #[must_use]
    pub const fn from_bits_truncate(bits: u64) -> Self {
        Self(bits & VALID_BITS)
    }

    /// Whether no bit is set.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// assert!(OffloadFlags::empty().is_empty());
    /// assert!(!OffloadFlags::RX_LRO.is_empty());
    /// ```
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every bit of `other` is set in `self` (true for an empty
    /// `other`). For the code fields use the getters instead (see the
    /// [module docs](self)).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let f = OffloadFlags::RX_VLAN | OffloadFlags::RX_QINQ;
    /// assert!(f.contains(OffloadFlags::RX_QINQ));
    /// assert!(!f.contains(OffloadFlags::RX_QINQ | OffloadFlags::RX_LRO));
    /// ```
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether `self` and `other` share a bit.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let f = OffloadFlags::TX_IPV4 | OffloadFlags::TX_VLAN;
    /// assert!(f.intersects(OffloadFlags::TX_IPV4 | OffloadFlags::TX_IPV6));
    /// ```
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Adds the bits of `other`.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let mut f = OffloadFlags::empty();
    /// f.insert(OffloadFlags::TX_VLAN);
    /// assert_eq!(f, OffloadFlags::TX_VLAN);
    /// ```
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }

    /// Removes the bits of `other`.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let mut f = OffloadFlags::TX_VLAN | OffloadFlags::TX_QINQ;
    /// f.remove(OffloadFlags::TX_QINQ);
    /// assert_eq!(f, OffloadFlags::TX_VLAN);
    /// ```
    pub fn remove(&mut self, other: Self) {
        self.0 &= !other.0;
    }

    /// Sets or clears the bits of `other`.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let mut f = OffloadFlags::empty();
    /// f.set(OffloadFlags::RX_LRO, true);
    /// assert!(f.contains(OffloadFlags::RX_LRO));
    /// f.set(OffloadFlags::RX_LRO, false);
    /// assert!(f.is_empty());
    /// ```
    pub fn set(&mut self, other: Self, value: bool) {
        if value {
            self.insert(other);
        } else {
            self.remove(other);
        }
    }

    /// The RX flags of the set.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let f = OffloadFlags::RX_VLAN | OffloadFlags::TX_VLAN;
    /// assert_eq!(f.rx(), OffloadFlags::RX_VLAN);
    /// ```
    #[must_use]
    pub const fn rx(self) -> Self {
        Self(self.0 & RX_BITS)
    }

    /// The TX flags of the set.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let f = OffloadFlags::RX_VLAN | OffloadFlags::TX_VLAN;
    /// assert_eq!(f.tx(), OffloadFlags::TX_VLAN);
    /// ```
    #[must_use]
    pub const fn tx(self) -> Self {
        Self(self.0 & TX_BITS)
    }

    const fn with_field(self, mask: u64, value: u64) -> Self {
        Self((self.0 & !mask) | (value & mask))
    }

    /// The RX IP checksum state.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxIpCksum};
    /// assert_eq!(OffloadFlags::RX_IP_CKSUM_NONE.rx_ip_cksum(), RxIpCksum::None);
    /// assert_eq!(OffloadFlags::empty().rx_ip_cksum(), RxIpCksum::Unknown);
    /// ```
    pub const fn rx_ip_cksum(self) -> RxIpCksum {
        match self.0 & RX_IP_CKSUM_BITS {
            0 => RxIpCksum::Unknown,
            b if b == bit(4) => RxIpCksum::Bad,
            b if b == bit(7) => RxIpCksum::Good,
            _ => RxIpCksum::None,
        }
    }

    /// Sets the RX IP checksum state (leaves every other bit alone).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxIpCksum};
    /// let mut f = OffloadFlags::RX_IP_CKSUM_BAD;
    /// f.set_rx_ip_cksum(RxIpCksum::Good);
    /// assert_eq!(f, OffloadFlags::RX_IP_CKSUM_GOOD);
    /// ```
    pub fn set_rx_ip_cksum(&mut self, v: RxIpCksum) {
        *self = self.with_field(RX_IP_CKSUM_BITS, v.flags().0);
    }

    /// The RX L4 checksum state.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxL4Cksum};
    /// assert_eq!(OffloadFlags::RX_L4_CKSUM_BAD.rx_l4_cksum(), RxL4Cksum::Bad);
    /// ```
    pub const fn rx_l4_cksum(self) -> RxL4Cksum {
        match self.0 & RX_L4_CKSUM_BITS {
            0 => RxL4Cksum::Unknown,
            b if b == bit(3) => RxL4Cksum::Bad,
            b if b == bit(8) => RxL4Cksum::Good,
            _ => RxL4Cksum::None,
        }
    }

    /// Sets the RX L4 checksum state.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxL4Cksum};
    /// let mut f = OffloadFlags::empty();
    /// f.set_rx_l4_cksum(RxL4Cksum::None);
    /// assert_eq!(f.bits(), (1 << 3) | (1 << 8));
    /// ```
    pub fn set_rx_l4_cksum(&mut self, v: RxL4Cksum) {
        *self = self.with_field(RX_L4_CKSUM_BITS, v.flags().0);
    }

    /// The RX outer L4 checksum state.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxOuterL4Cksum};
    /// let f = OffloadFlags::RX_OUTER_L4_CKSUM_INVALID;
    /// assert_eq!(f.rx_outer_l4_cksum(), RxOuterL4Cksum::Invalid);
    /// ```
    pub const fn rx_outer_l4_cksum(self) -> RxOuterL4Cksum {
        match self.0 & RX_OUTER_L4_CKSUM_BITS {
            0 => RxOuterL4Cksum::Unknown,
            b if b == bit(21) => RxOuterL4Cksum::Bad,
            b if b == bit(22) => RxOuterL4Cksum::Good,
            _ => RxOuterL4Cksum::Invalid,
        }
    }

    /// Sets the RX outer L4 checksum state.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxOuterL4Cksum};
    /// let mut f = OffloadFlags::RX_OUTER_L4_CKSUM_BAD;
    /// f.set_rx_outer_l4_cksum(RxOuterL4Cksum::Unknown);
    /// assert!(f.is_empty());
    /// ```
    pub fn set_rx_outer_l4_cksum(&mut self, v: RxOuterL4Cksum) {
        *self = self.with_field(RX_OUTER_L4_CKSUM_BITS, v.flags().0);
    }

    /// The requested TX L4 checksum offload.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, TxL4};
    /// assert_eq!(OffloadFlags::TX_SCTP_CKSUM.tx_l4(), TxL4::Sctp);
    /// assert_eq!(OffloadFlags::TX_VLAN.tx_l4(), TxL4::NoCksum);
    /// ```
    pub const fn tx_l4(self) -> TxL4 {
        match (self.0 & TX_L4_BITS) >> TX_L4_SHIFT {
            0 => TxL4::NoCksum,
            1 => TxL4::Tcp,
            2 => TxL4::Sctp,
            _ => TxL4::Udp,
        }
    }

    /// Sets the requested TX L4 checksum offload.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, TxL4};
    /// let mut f = OffloadFlags::TX_TCP_CKSUM;
    /// f.set_tx_l4(TxL4::Udp);
    /// assert_eq!(f, OffloadFlags::TX_UDP_CKSUM);
    /// ```
    pub fn set_tx_l4(&mut self, v: TxL4) {
        *self = self.with_field(TX_L4_BITS, v.flags().0);
    }

    /// The TX tunnel type (the 4-bit code at bits 45 to 48).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, TxTunnel};
    /// assert_eq!(OffloadFlags::TX_TUNNEL_GENEVE.tx_tunnel(), TxTunnel::Geneve);
    /// assert_eq!(OffloadFlags::empty().tx_tunnel(), TxTunnel::None);
    /// // Codes DPDK does not assign can still be built with `|`:
    /// let odd = OffloadFlags::TX_TUNNEL_VXLAN | OffloadFlags::TX_TUNNEL_ESP;
    /// assert_eq!(odd.tx_tunnel(), TxTunnel::Reserved(9));
    /// ```
    pub const fn tx_tunnel(self) -> TxTunnel {
        TxTunnel::from_code(((self.0 & TX_TUNNEL_BITS) >> TX_TUNNEL_SHIFT) as u8)
    }

    /// Sets the TX tunnel type. A [`TxTunnel::Reserved`] code is written
    /// as given (its low 4 bits).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, TxTunnel};
    /// let mut f = OffloadFlags::TX_OUTER_IPV4;
    /// f.set_tx_tunnel(TxTunnel::Vxlan);
    /// assert_eq!(f, OffloadFlags::TX_OUTER_IPV4 | OffloadFlags::TX_TUNNEL_VXLAN);
    /// ```
    pub fn set_tx_tunnel(&mut self, v: TxTunnel) {
        *self = self.with_field(TX_TUNNEL_BITS, u64::from(v.code()) << TX_TUNNEL_SHIFT);
    }

    /// The names of the set's named parts, in table order (RX, then TX, in
    /// the order of the reference's flag lists, then dynamic flags in
    /// registration order): one
    /// `(name, flags)` pair per single-bit flag that is set, per code field
    /// whose value is not zero, and per registered dynamic flag that is set.
    /// Bits no name covers are not yielded (`Display` prints them in hex).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// let f = OffloadFlags::TX_IPV6 | OffloadFlags::TX_UDP_CKSUM;
    /// let names: Vec<&str> = f.iter_names().map(|(name, _)| name).collect();
    /// assert_eq!(names, ["TX_UDP_CKSUM", "TX_IPV6"]);
    /// ```
    pub fn iter_names(self) -> impl Iterator<Item = (&'static str, OffloadFlags)> {
        let statics = NAMES
            .iter()
            .filter(move |n| n.value != 0 && self.0 & n.mask == n.value)
            .map(|n| (n.name, Self(n.value)));
        let dynamic: Vec<(&'static str, OffloadFlags)> = if self.0 & DYN_BITS == 0 {
            Vec::new()
        } else {
            dynflags_snapshot()
                .into_iter()
                .filter(|f| self.contains(f.mask()))
                .map(|f| (f.name, f.mask()))
                .collect()
        };
        statics.chain(dynamic)
    }

    /// Every RX name with its value (non-zero values only), in table order.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// assert!(OffloadFlags::rx_names().any(|(n, f)| n == "RX_LRO" && f == OffloadFlags::RX_LRO));
    /// assert!(OffloadFlags::rx_names().all(|(n, _)| n.starts_with("RX_")));
    /// ```
    pub fn rx_names() -> impl Iterator<Item = (&'static str, OffloadFlags)> {
        NAMES
            .iter()
            .filter(|n| n.value != 0 && n.mask & RX_BITS != 0)
            .map(|n| (n.name, Self(n.value)))
    }

    /// Every TX name with its value (non-zero values only), in table order.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// assert!(OffloadFlags::tx_names().any(|(n, _)| n == "TX_TUNNEL_GTP"));
    /// assert!(OffloadFlags::tx_names().all(|(n, _)| n.starts_with("TX_")));
    /// ```
    pub fn tx_names() -> impl Iterator<Item = (&'static str, OffloadFlags)> {
        NAMES
            .iter()
            .filter(|n| n.value != 0 && n.mask & TX_BITS != 0)
            .map(|n| (n.name, Self(n.value)))
    }

    /// The single value a name stands for: a static name (with or without
    /// the `RTE_MBUF_F_` prefix, including the zero field values) or a
    /// registered dynamic flag's name.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::OffloadFlags;
    /// assert_eq!(OffloadFlags::from_name("RTE_MBUF_F_TX_QINQ"), Some(OffloadFlags::TX_QINQ));
    /// assert_eq!(OffloadFlags::from_name("TX_L4_NO_CKSUM"), Some(OffloadFlags::empty()));
    /// assert_eq!(OffloadFlags::from_name("TX_WARP_DRIVE"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Self> {
        if let Some(n) = static_name(name) {
            return Some(Self(n.value));
        }
        DynFlag::lookup(name).map(DynFlag::mask)
    }
}

/// One entry of the name table: the bits of `mask` equal `value`.
struct FlagName {
    name: &'static str,
    mask: u64,
    value: u64,
}

const fn single(name: &'static str, f: OffloadFlags) -> FlagName {
    FlagName {
        name,
        mask: f.0,
        value: f.0,
    }
}

const fn field(name: &'static str, mask: u64, f: OffloadFlags) -> FlagName {
    FlagName {
        name,
        mask,
        value: f.0,
    }
}

type F = OffloadFlags;

/// Every static name, RX then TX, in the order of the reference's flag
/// lists (`rte_get_rx_ol_flag_list`, `rte_get_tx_ol_flag_list`; ESP, which
/// 22.11 does not list, after the other tunnels); zero field values last
/// within their direction (they are never printed, only parsed).
static NAMES: &[FlagName] = &[
    single("RX_VLAN", F::RX_VLAN),
    single("RX_RSS_HASH", F::RX_RSS_HASH),
    single("RX_FDIR", F::RX_FDIR),
    field("RX_L4_CKSUM_BAD", RX_L4_CKSUM_BITS, F::RX_L4_CKSUM_BAD),
    field("RX_L4_CKSUM_GOOD", RX_L4_CKSUM_BITS, F::RX_L4_CKSUM_GOOD),
    field("RX_L4_CKSUM_NONE", RX_L4_CKSUM_BITS, F::RX_L4_CKSUM_NONE),
    field("RX_IP_CKSUM_BAD", RX_IP_CKSUM_BITS, F::RX_IP_CKSUM_BAD),
    field("RX_IP_CKSUM_GOOD", RX_IP_CKSUM_BITS, F::RX_IP_CKSUM_GOOD),
    field("RX_IP_CKSUM_NONE", RX_IP_CKSUM_BITS, F::RX_IP_CKSUM_NONE),
    single("RX_OUTER_IP_CKSUM_BAD", F::RX_OUTER_IP_CKSUM_BAD),
    single("RX_VLAN_STRIPPED", F::RX_VLAN_STRIPPED),
    single("RX_IEEE1588_PTP", F::RX_IEEE1588_PTP),
    single("RX_IEEE1588_TMST", F::RX_IEEE1588_TMST),
    single("RX_FDIR_ID", F::RX_FDIR_ID),
    single("RX_FDIR_FLX", F::RX_FDIR_FLX),
    single("RX_QINQ_STRIPPED", F::RX_QINQ_STRIPPED),
    single("RX_LRO", F::RX_LRO),
    single("RX_SEC_OFFLOAD", F::RX_SEC_OFFLOAD),
    single("RX_SEC_OFFLOAD_FAILED", F::RX_SEC_OFFLOAD_FAILED),
    single("RX_QINQ", F::RX_QINQ),
    field(
        "RX_OUTER_L4_CKSUM_BAD",
        RX_OUTER_L4_CKSUM_BITS,
        F::RX_OUTER_L4_CKSUM_BAD,
    ),
    field(
        "RX_OUTER_L4_CKSUM_GOOD",
        RX_OUTER_L4_CKSUM_BITS,
        F::RX_OUTER_L4_CKSUM_GOOD,
    ),
    field(
        "RX_OUTER_L4_CKSUM_INVALID",
        RX_OUTER_L4_CKSUM_BITS,
        F::RX_OUTER_L4_CKSUM_INVALID,
    ),
    field(
        "RX_L4_CKSUM_UNKNOWN",
        RX_L4_CKSUM_BITS,
        F::RX_L4_CKSUM_UNKNOWN,
    ),
    field(
        "RX_IP_CKSUM_UNKNOWN",
        RX_IP_CKSUM_BITS,
        F::RX_IP_CKSUM_UNKNOWN,
    ),
    field(
        "RX_OUTER_L4_CKSUM_UNKNOWN",
        RX_OUTER_L4_CKSUM_BITS,
        F::RX_OUTER_L4_CKSUM_UNKNOWN,
    ),
    single("TX_VLAN", F::TX_VLAN),
    single("TX_IP_CKSUM", F::TX_IP_CKSUM),
    field("TX_TCP_CKSUM", TX_L4_BITS, F::TX_TCP_CKSUM),
    field("TX_SCTP_CKSUM", TX_L4_BITS, F::TX_SCTP_CKSUM),
    field("TX_UDP_CKSUM", TX_L4_BITS, F::TX_UDP_CKSUM),
    single("TX_IEEE1588_TMST", F::TX_IEEE1588_TMST),
    single("TX_TCP_SEG", F::TX_TCP_SEG),
    single("TX_IPV4", F::TX_IPV4),
    single("TX_IPV6", F::TX_IPV6),
    single("TX_OUTER_IP_CKSUM", F::TX_OUTER_IP_CKSUM),
    single("TX_OUTER_IPV4", F::TX_OUTER_IPV4),
    single("TX_OUTER_IPV6", F::TX_OUTER_IPV6),
    field("TX_TUNNEL_VXLAN", TX_TUNNEL_BITS, F::TX_TUNNEL_VXLAN),
    field("TX_TUNNEL_GTP", TX_TUNNEL_BITS, F::TX_TUNNEL_GTP),
    field("TX_TUNNEL_GRE", TX_TUNNEL_BITS, F::TX_TUNNEL_GRE),
    field("TX_TUNNEL_IPIP", TX_TUNNEL_BITS, F::TX_TUNNEL_IPIP),
    field("TX_TUNNEL_GENEVE", TX_TUNNEL_BITS, F::TX_TUNNEL_GENEVE),
    field(
        "TX_TUNNEL_MPLSINUDP",
        TX_TUNNEL_BITS,
        F::TX_TUNNEL_MPLSINUDP,
    ),
    field(
        "TX_TUNNEL_VXLAN_GPE",
        TX_TUNNEL_BITS,
        F::TX_TUNNEL_VXLAN_GPE,
    ),
    field("TX_TUNNEL_IP", TX_TUNNEL_BITS, F::TX_TUNNEL_IP),
    field("TX_TUNNEL_UDP", TX_TUNNEL_BITS, F::TX_TUNNEL_UDP),
    field("TX_TUNNEL_ESP", TX_TUNNEL_BITS, F::TX_TUNNEL_ESP),
    single("TX_QINQ", F::TX_QINQ),
    single("TX_MACSEC", F::TX_MACSEC),
    single("TX_SEC_OFFLOAD", F::TX_SEC_OFFLOAD),
    single("TX_UDP_SEG", F::TX_UDP_SEG),
    single("TX_OUTER_UDP_CKSUM", F::TX_OUTER_UDP_CKSUM),
    field("TX_TUNNEL_NONE", TX_TUNNEL_BITS, F::empty()),
    field("TX_L4_NO_CKSUM", TX_L4_BITS, F::TX_L4_NO_CKSUM),
];

/// The prefix DPDK's names carry; accepted (and dropped) when parsing.
const DPDK_PREFIX: &str = "RTE_MBUF_F_";

fn static_name(name: &str) -> Option<&'static FlagName> {
    let short = name.strip_prefix(DPDK_PREFIX).unwrap_or(name);
    NAMES.iter().find(|n| n.name == short)
}

/// The field a table entry belongs to, for conflict detection (`None` for
/// single-bit flags).
fn field_name(mask: u64) -> Option<&'static str> {
    match mask {
        RX_IP_CKSUM_BITS => Some("RX IP checksum"),
        RX_L4_CKSUM_BITS => Some("RX L4 checksum"),
        RX_OUTER_L4_CKSUM_BITS => Some("RX outer L4 checksum"),
        TX_TUNNEL_BITS => Some("TX tunnel type"),
        TX_L4_BITS => Some("TX L4 checksum"),
        _ => None,
    }
}

macro_rules! binop {
    ($tr:ident, $m:ident, $atr:ident, $am:ident, $op:tt) => {
        impl $tr for OffloadFlags {
            type Output = Self;
            fn $m(self, rhs: Self) -> Self {
                Self(self.0 $op rhs.0)
            }
        }
        impl $atr for OffloadFlags {
            fn $am(&mut self, rhs: Self) {
                self.0 = self.0 $op rhs.0;
            }
        }
    };
}
binop!(BitOr, bitor, BitOrAssign, bitor_assign, |);
binop!(BitAnd, bitand, BitAndAssign, bitand_assign, &);

/// `a - b`: the bits of `a` not in `b`.
impl Sub for OffloadFlags {
    type Output = Self;
    fn sub(self, rhs: Self) -> Self {
        Self(self.0 & !rhs.0)
    }
}

impl SubAssign for OffloadFlags {
    fn sub_assign(&mut self, rhs: Self) {
        self.0 &= !rhs.0;
    }
}

/// The complement within the valid bits (never the internal or unused
/// bits).
impl Not for OffloadFlags {
    type Output = Self;
    fn not(self) -> Self {
        Self(!self.0 & VALID_BITS)
    }
}

/// The union of the items.
///
/// ```
/// # use pktmem_mbuf::flags::OffloadFlags;
/// let f: OffloadFlags = [OffloadFlags::TX_IPV4, OffloadFlags::TX_IP_CKSUM].into_iter().collect();
/// assert_eq!(f, OffloadFlags::TX_IPV4 | OffloadFlags::TX_IP_CKSUM);
/// ```
impl FromIterator<OffloadFlags> for OffloadFlags {
    fn from_iter<I: IntoIterator<Item = OffloadFlags>>(iter: I) -> Self {
        iter.into_iter().fold(Self::empty(), |acc, f| acc | f)
    }
}

/// Adds the items to the set.
///
/// ```
/// # use pktmem_mbuf::flags::OffloadFlags;
/// let mut f = OffloadFlags::RX_VLAN;
/// f.extend([OffloadFlags::RX_QINQ]);
/// assert!(f.contains(OffloadFlags::RX_QINQ | OffloadFlags::RX_VLAN));
/// ```
impl Extend<OffloadFlags> for OffloadFlags {
    fn extend<I: IntoIterator<Item = OffloadFlags>>(&mut self, iter: I) {
        for f in iter {
            self.insert(f);
        }
    }
}

impl fmt::Display for OffloadFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut covered = 0u64;
        let mut first = true;
        for (name, bits) in self.iter_names() {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(name)?;
            first = false;
            covered |= bits.0;
        }
        let rest = self.0 & !covered;
        if rest != 0 {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for OffloadFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OffloadFlags({:#x}: {self})", self.0)
    }
}

impl FromStr for OffloadFlags {
    type Err = ParseFlagsError;

    /// Parses a list of names (see the [module docs](self)); the empty
    /// string is the empty set. A hexadecimal token `0x...` stands for its
    /// bits (what `Display` prints for unnamed bits).
    fn from_str(s: &str) -> Result<Self, ParseFlagsError> {
        let mut set = 0u64;
        // The value given for each code field so far: (field mask, token).
        let mut fields: Vec<(u64, &str)> = Vec::new();
        let tokens = s
            .split(|c: char| c.is_whitespace() || c == '|' || c == ',')
            .filter(|t| !t.is_empty());
        for token in tokens {
            if let Some(n) = static_name(token) {
                if let Some(field) = field_name(n.mask) {
                    match fields.iter().find(|(m, _)| *m == n.mask) {
                        Some((_, prev)) if static_name(prev).map(|p| p.value) != Some(n.value) => {
                            return Err(ParseFlagsError::ConflictingValues {
                                field,
                                first: (*prev).to_owned(),
                                second: token.to_owned(),
                            });
                        }
                        Some(_) => {}
                        None => fields.push((n.mask, token)),
                    }
                }
                set |= n.value;
            } else if let Some(d) = DynFlag::lookup(token) {
                set |= d.mask().0;
            } else if let Some(hex) = token
                .strip_prefix("0x")
                .or_else(|| token.strip_prefix("0X"))
            {
                let bits =
                    u64::from_str_radix(hex, 16).map_err(|_| ParseFlagsError::UnknownName {
                        name: token.to_owned(),
                    })?;
                if bits & !VALID_BITS != 0 {
                    return Err(ParseFlagsError::InvalidBits {
                        bits,
                        invalid: bits & !VALID_BITS,
                    });
                }
                set |= bits;
            } else {
                return Err(ParseFlagsError::UnknownName {
                    name: token.to_owned(),
                });
            }
        }
        Ok(Self(set))
    }
}

/// Why a list of flag names did not parse.
///
/// ```
/// use pktmem_mbuf::flags::{OffloadFlags, ParseFlagsError};
///
/// let err = "RX_VLAN RX_TELEPATHY".parse::<OffloadFlags>().unwrap_err();
/// assert_eq!(err, ParseFlagsError::UnknownName { name: "RX_TELEPATHY".into() });
/// assert!(matches!(
///     "TX_TCP_CKSUM TX_UDP_CKSUM".parse::<OffloadFlags>(),
///     Err(ParseFlagsError::ConflictingValues { .. })
/// ));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseFlagsError {
    /// A token is neither a flag name, nor a registered dynamic flag, nor a
    /// hexadecimal number.
    UnknownName {
        /// The token.
        name: String,
    },
    /// Two different values were given for one code field (e.g.
    /// `TX_TCP_CKSUM` and `TX_UDP_CKSUM`, whose union would silently mean
    /// something else).
    ConflictingValues {
        /// The field.
        field: &'static str,
        /// The first value's token.
        first: String,
        /// The second value's token.
        second: String,
    },
    /// A hexadecimal token has bits no set may hold.
    InvalidBits {
        /// The token's value.
        bits: u64,
        /// The bits of it that are internal or unused.
        invalid: u64,
    },
}

impl fmt::Display for ParseFlagsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownName { name } => write!(f, "unknown offload flag name '{name}'"),
            Self::ConflictingValues {
                field,
                first,
                second,
            } => {
                write!(
                    f,
                    "conflicting values for the {field} field: '{first}' and '{second}'"
                )
            }
            Self::InvalidBits { bits, invalid } => write!(
                f,
                "offload flag bits {bits:#x} include {invalid:#x}, which are internal or unused"
            ),
        }
    }
}

impl std::error::Error for ParseFlagsError {}

macro_rules! code_enum {
    (
        $(#[$m:meta])*
        $name:ident { $($(#[$vm:meta])* $v:ident = $c:expr),* $(,)? }
    ) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $v),*
        }
        impl $name {
            /// The flag bits of this value (empty for the zero value).
            pub const fn flags(self) -> OffloadFlags {
                match self {
                    $(Self::$v => $c),*
                }
            }
        }
    };
}

code_enum! {
    /// RX IP checksum state (bits 4 and 7 of `ol_flags`).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxIpCksum};
    /// assert_eq!(RxIpCksum::Bad.flags(), OffloadFlags::RX_IP_CKSUM_BAD);
    /// ```
    RxIpCksum {
        /// No information about the IP checksum.
        Unknown = OffloadFlags::RX_IP_CKSUM_UNKNOWN,
        /// The IP checksum is wrong.
        Bad = OffloadFlags::RX_IP_CKSUM_BAD,
        /// The IP checksum is valid.
        Good = OffloadFlags::RX_IP_CKSUM_GOOD,
        /// The checksum in the packet is not correct, but the data is intact.
        None = OffloadFlags::RX_IP_CKSUM_NONE,
    }
}

code_enum! {
    /// RX L4 checksum state (bits 3 and 8 of `ol_flags`).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxL4Cksum};
    /// assert_eq!(RxL4Cksum::Good.flags(), OffloadFlags::RX_L4_CKSUM_GOOD);
    /// ```
    RxL4Cksum {
        /// No information about the L4 checksum.
        Unknown = OffloadFlags::RX_L4_CKSUM_UNKNOWN,
        /// The L4 checksum is wrong.
        Bad = OffloadFlags::RX_L4_CKSUM_BAD,
        /// The L4 checksum is valid.
        Good = OffloadFlags::RX_L4_CKSUM_GOOD,
        /// The checksum in the packet is not correct, but the data is intact.
        None = OffloadFlags::RX_L4_CKSUM_NONE,
    }
}

code_enum! {
    /// RX outer L4 checksum state (bits 21 and 22 of `ol_flags`).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, RxOuterL4Cksum};
    /// assert_eq!(RxOuterL4Cksum::Unknown.flags(), OffloadFlags::empty());
    /// ```
    RxOuterL4Cksum {
        /// No information about the outer L4 checksum.
        Unknown = OffloadFlags::RX_OUTER_L4_CKSUM_UNKNOWN,
        /// The outer L4 checksum is wrong.
        Bad = OffloadFlags::RX_OUTER_L4_CKSUM_BAD,
        /// The outer L4 checksum is valid.
        Good = OffloadFlags::RX_OUTER_L4_CKSUM_GOOD,
        /// The outer L4 checksum state is invalid.
        Invalid = OffloadFlags::RX_OUTER_L4_CKSUM_INVALID,
    }
}

code_enum! {
    /// TX L4 checksum offload request (bits 52 and 53 of `ol_flags`).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, TxL4};
    /// assert_eq!(TxL4::Udp.flags(), OffloadFlags::TX_UDP_CKSUM);
    /// ```
    TxL4 {
        /// No L4 checksum offload.
        NoCksum = OffloadFlags::TX_L4_NO_CKSUM,
        /// Compute the TCP checksum.
        Tcp = OffloadFlags::TX_TCP_CKSUM,
        /// Compute the SCTP checksum.
        Sctp = OffloadFlags::TX_SCTP_CKSUM,
        /// Compute the UDP checksum.
        Udp = OffloadFlags::TX_UDP_CKSUM,
    }
}

/// TX tunnel type (the 4-bit code at bits 45 to 48 of `ol_flags`), needed
/// for TSO or checksums on the inner headers of a tunnelled packet.
///
/// ```
/// # use pktmem_mbuf::flags::{OffloadFlags, TxTunnel};
/// assert_eq!(TxTunnel::Gre.flags(), OffloadFlags::TX_TUNNEL_GRE);
/// assert_eq!(TxTunnel::Udp.code(), 0xE);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxTunnel {
    /// Not a tunnel (code 0).
    None,
    /// VXLAN (1).
    Vxlan,
    /// GRE (2).
    Gre,
    /// IP in IP (3).
    Ipip,
    /// GENEVE (4).
    Geneve,
    /// MPLS in UDP, RFC 7510 (5).
    MplsInUdp,
    /// VXLAN-GPE (6).
    VxlanGpe,
    /// GTP (7).
    Gtp,
    /// ESP (8).
    Esp,
    /// A generic IP-encapsulated tunnel (0xD).
    Ip,
    /// A generic UDP-encapsulated tunnel (0xE).
    Udp,
    /// A code DPDK 22.11 does not assign (9 to 0xC, 0xF).
    Reserved(u8),
}

impl TxTunnel {
    /// The 4-bit code (a [`Reserved`](Self::Reserved) code masked to 4
    /// bits).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::TxTunnel;
    /// assert_eq!(TxTunnel::Esp.code(), 8);
    /// assert_eq!(TxTunnel::Reserved(0x1A).code(), 0xA);
    /// ```
    pub const fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Vxlan => 1,
            Self::Gre => 2,
            Self::Ipip => 3,
            Self::Geneve => 4,
            Self::MplsInUdp => 5,
            Self::VxlanGpe => 6,
            Self::Gtp => 7,
            Self::Esp => 8,
            Self::Ip => 0xD,
            Self::Udp => 0xE,
            Self::Reserved(c) => c & 0xF,
        }
    }

    /// The value of a 4-bit code (only the low 4 bits are looked at).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::TxTunnel;
    /// assert_eq!(TxTunnel::from_code(7), TxTunnel::Gtp);
    /// assert_eq!(TxTunnel::from_code(0xF), TxTunnel::Reserved(0xF));
    /// ```
    pub const fn from_code(code: u8) -> Self {
        match code & 0xF {
            0 => Self::None,
            1 => Self::Vxlan,
            2 => Self::Gre,
            3 => Self::Ipip,
            4 => Self::Geneve,
            5 => Self::MplsInUdp,
            6 => Self::VxlanGpe,
            7 => Self::Gtp,
            8 => Self::Esp,
            0xD => Self::Ip,
            0xE => Self::Udp,
            c => Self::Reserved(c),
        }
    }

    /// The flag bits of this value.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::{OffloadFlags, TxTunnel};
    /// assert_eq!(TxTunnel::Vxlan.flags(), OffloadFlags::TX_TUNNEL_VXLAN);
    /// assert!(TxTunnel::None.flags().is_empty());
    /// ```
    pub const fn flags(self) -> OffloadFlags {
        OffloadFlags((self.code() as u64) << TX_TUNNEL_SHIFT)
    }
}

// ---------------------------------------------------------------- header

/// The header's offload flags without the internal bits.
pub(crate) fn ol_flags(hdr: &MbufHeader) -> OffloadFlags {
    OffloadFlags::from_bits_truncate(hdr.ol_flags)
}

/// Replaces the header's offload flags with `flags`, keeping the header's
/// internal bits (an `OffloadFlags` never holds them).
#[cfg(test)]
pub(crate) fn set_ol_flags(hdr: &mut MbufHeader, flags: OffloadFlags) {
    hdr.ol_flags = (hdr.ol_flags & INTERNAL_FLAGS) | flags.0;
}

// ---------------------------------------------------------------- dynamic flags

/// Longest dynamic flag (and dynamic field) name, in bytes (DPDK's
/// `RTE_MBUF_DYN_NAMESIZE` less its NUL).
pub const MAX_DYN_NAME_LEN: usize = 63;

/// A registered dynamic offload flag: one bit of the free area (23 to 40),
/// owned by a name for the life of the process.
///
/// ```
/// use pktmem_mbuf::flags::{DynFlag, OffloadFlags};
///
/// let f = DynFlag::register("example_dynflag_doc_rx_metadata")?;
/// assert_eq!(DynFlag::register("example_dynflag_doc_rx_metadata")?, f); // idempotent
/// assert_eq!(DynFlag::lookup("example_dynflag_doc_rx_metadata"), Some(f));
/// assert!(OffloadFlags::DYN_MASK.contains(f.mask()));
///
/// let flags = OffloadFlags::RX_VLAN | f.mask();
/// assert_eq!(flags.to_string(), "RX_VLAN example_dynflag_doc_rx_metadata");
/// assert_eq!(flags.to_string().parse(), Ok(flags));
/// # Ok::<(), pktmem_mbuf::flags::DynFlagError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DynFlag {
    name: &'static str,
    bit: u32,
}

/// The registered dynamic flags, in registration order. Invariant: names
/// are unique, bits are unique and within `DYN_FLAG_FIRST_BIT..=LAST_BIT`.
/// Names are leaked `&'static str`: at most 18 entries can ever exist and
/// they live as long as the process, so the leak is bounded.
static DYNFLAGS: Mutex<Vec<DynFlag>> = Mutex::new(Vec::new());

fn dynflags_snapshot() -> Vec<DynFlag> {
    // Nothing panics while the lock is held, so a poisoned lock still holds
    // a consistent registry.
    DYNFLAGS
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone()
}

impl DynFlag {
    /// Takes the lowest free bit for `name`, or returns the bit `name`
    /// already has.
    ///
    /// The name must be 1 to [`MAX_DYN_NAME_LEN`] bytes, contain no
    /// whitespace, `|` or `,` (so flag lists print and parse back), and not
    /// be a static flag name.
    ///
    /// ```
    /// use pktmem_mbuf::flags::{DynFlag, DynFlagError};
    ///
    /// let f = DynFlag::register("example_dynflag_doc_register")?;
    /// assert!((23..=40).contains(&f.bit()));
    /// assert_eq!(DynFlag::register(""), Err(DynFlagError::EmptyName));
    /// assert!(matches!(DynFlag::register("TX_VLAN"), Err(DynFlagError::ReservedName { .. })));
    /// # Ok::<(), DynFlagError>(())
    /// ```
    pub fn register(name: &str) -> Result<DynFlag, DynFlagError> {
        check_name(name).map_err(|e| match e {
            NameError::Empty => DynFlagError::EmptyName,
            NameError::TooLong(len) => DynFlagError::NameTooLong {
                len,
                max: MAX_DYN_NAME_LEN,
            },
        })?;
        if let Some(ch) = name
            .chars()
            .find(|&c| c.is_whitespace() || c == '|' || c == ',')
        {
            return Err(DynFlagError::BadChar {
                name: name.to_owned(),
                ch,
            });
        }
        if static_name(name).is_some() || name.starts_with("0x") || name.starts_with("0X") {
            return Err(DynFlagError::ReservedName {
                name: name.to_owned(),
            });
        }
        let mut reg = DYNFLAGS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = reg.iter().find(|f| f.name == name) {
            return Ok(*f);
        }
        let taken = reg.iter().fold(0u64, |acc, f| acc | (1 << f.bit));
        let free = DYN_BITS & !taken;
        if free == 0 {
            return Err(DynFlagError::NoFreeBit {
                name: name.to_owned(),
                registered: reg.len(),
            });
        }
        let flag = DynFlag {
            name: Box::leak(name.to_owned().into_boxed_str()),
            bit: free.trailing_zeros(),
        };
        reg.push(flag);
        Ok(flag)
    }

    /// The flag registered under `name`, if any.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::DynFlag;
    /// assert_eq!(DynFlag::lookup("example_dynflag_doc_never_registered"), None);
    /// ```
    pub fn lookup(name: &str) -> Option<DynFlag> {
        DYNFLAGS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .find(|f| f.name == name)
            .copied()
    }

    /// Every registered dynamic flag, in registration order.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::DynFlag;
    /// let f = DynFlag::register("example_dynflag_doc_registered")?;
    /// assert!(DynFlag::registered().contains(&f));
    /// # Ok::<(), pktmem_mbuf::flags::DynFlagError>(())
    /// ```
    pub fn registered() -> Vec<DynFlag> {
        dynflags_snapshot()
    }

    /// The flag as a one-bit set.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::DynFlag;
    /// let f = DynFlag::register("example_dynflag_doc_mask")?;
    /// assert_eq!(f.mask().bits(), 1 << f.bit());
    /// # Ok::<(), pktmem_mbuf::flags::DynFlagError>(())
    /// ```
    pub const fn mask(self) -> OffloadFlags {
        OffloadFlags(1 << self.bit)
    }

    /// The bit number (23 to 40).
    ///
    /// ```
    /// # use pktmem_mbuf::flags::DynFlag;
    /// let f = DynFlag::register("example_dynflag_doc_bit")?;
    /// assert!((23..=40).contains(&f.bit()));
    /// # Ok::<(), pktmem_mbuf::flags::DynFlagError>(())
    /// ```
    pub const fn bit(self) -> u32 {
        self.bit
    }

    /// The registration name.
    ///
    /// ```
    /// # use pktmem_mbuf::flags::DynFlag;
    /// let f = DynFlag::register("example_dynflag_doc_name")?;
    /// assert_eq!(f.name(), "example_dynflag_doc_name");
    /// # Ok::<(), pktmem_mbuf::flags::DynFlagError>(())
    /// ```
    pub const fn name(self) -> &'static str {
        self.name
    }
}

pub(crate) enum NameError {
    Empty,
    TooLong(usize),
}

/// The length rules shared by dynamic flag and field names.
pub(crate) fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        Err(NameError::Empty)
    } else if name.len() > MAX_DYN_NAME_LEN {
        Err(NameError::TooLong(name.len()))
    } else {
        Ok(())
    }
}

/// Why [`DynFlag::register`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DynFlagError {
    /// The name is empty.
    EmptyName,
    /// The name is longer than [`MAX_DYN_NAME_LEN`] bytes.
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// The name has a character that would break flag lists.
    BadChar {
        /// The name.
        name: String,
        /// The character (whitespace, `|` or `,`).
        ch: char,
    },
    /// The name is a static flag's name (or looks like a hex number).
    ReservedName {
        /// The name.
        name: String,
    },
    /// All 18 free bits are taken by other names.
    NoFreeBit {
        /// The name that did not get a bit.
        name: String,
        /// How many dynamic flags are registered.
        registered: usize,
    },
}

impl fmt::Display for DynFlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyName => f.write_str("dynamic flag name is empty"),
            Self::NameTooLong { len, max } => {
                write!(f, "dynamic flag name is {len} bytes long, the maximum is {max}")
            }
            Self::BadChar { name, ch } => {
                write!(f, "dynamic flag name '{name}' contains {ch:?} (no whitespace, '|' or ',')")
            }
            Self::ReservedName { name } => {
                write!(f, "'{name}' is the name of a static offload flag")
            }
            Self::NoFreeBit { name, registered } => write!(
                f,
                "no free offload flag bit for '{name}': all {registered} bits {DYN_FLAG_FIRST_BIT}..={DYN_FLAG_LAST_BIT} are registered"
            ),
        }
    }
}

impl std::error::Error for DynFlagError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{F_EXTERNAL, F_INDIRECT};

    #[test]
    fn header_forms_never_touch_the_internal_bits() {
        let mut hdr = MbufHeader::zeroed_for_tests();
        hdr.ol_flags = F_EXTERNAL | OffloadFlags::RX_VLAN.bits();
        assert_eq!(ol_flags(&hdr), OffloadFlags::RX_VLAN);
        set_ol_flags(&mut hdr, OffloadFlags::all());
        assert_eq!(hdr.ol_flags, F_EXTERNAL | VALID_BITS);
        assert_eq!(hdr.ol_flags & F_INDIRECT, 0);
        set_ol_flags(&mut hdr, OffloadFlags::empty());
        assert_eq!(hdr.ol_flags, F_EXTERNAL);
        hdr.ol_flags = F_INDIRECT;
        set_ol_flags(&mut hdr, OffloadFlags::TX_VLAN);
        assert_eq!(hdr.ol_flags, F_INDIRECT | OffloadFlags::TX_VLAN.bits());
        assert_eq!(ol_flags(&hdr), OffloadFlags::TX_VLAN);
    }
}
