//! TX offload lengths and their validation.
//!
//! # Model
//!
//! A packet handed to hardware for checksum or segmentation offload carries,
//! besides the request flags (the TX part of
//! [`OffloadFlags`]), the lengths of its headers so the hardware knows where
//! each layer starts. The header keeps them in one 64-bit word, packed
//! exactly as DPDK 22.11 packs `tx_offload` on a little-endian machine
//! (`RTE_MBUF_*_LEN_OFS` / `_BITS`), so a driver reads the same bits:
//!
//! ```text
//!  bit  0..7   l2_len        7 bits  (max 127)   inner L2 header
//!  bit  7..16  l3_len        9 bits  (max 511)   inner L3 header
//!  bit 16..24  l4_len        8 bits  (max 255)   inner L4 header
//!  bit 24..40  tso_segsz    16 bits  (max 65535) TSO/UFO segment size
//!  bit 40..49  outer_l3_len  9 bits  (max 511)   outer L3 header (tunnels)
//!  bit 49..56  outer_l2_len  7 bits  (max 127)   outer L2 header (tunnels)
//!  bit 56..64  unused
//! ```
//!
//! [`TxOffload`] is that word, with checked setters: a length that does not
//! fit its bits is a [`TxLenError`], never a silently truncated value.
//! [`TxLengths`] is the unpacked form.
//!
//! [`TxOffload::validate`] checks flags and lengths together with the
//! reference's rules (`rte_validate_tx_offload`): nothing to check if no TX
//! offload is requested; no IP checksum on IPv6; an L4 checksum or TSO needs
//! an IP type; TSO needs a segment size and, on IPv4, the IP checksum; the
//! outer IP checksum needs outer IPv4. [`TxOffload::validate_strict`] adds
//! the requirements the flags' documentation states but the reference does
//! not check (see [`TxOffloadError`] for every rule). Neither checks `l2_len`
//! or `outer_l2_len`: 0 is a valid L2 length on an IP-only port.
//!
//! ```
//! use pktmem_mbuf::flags::OffloadFlags;
//! use pktmem_mbuf::offload::{TxLengths, TxOffload, TxOffloadError};
//!
//! let lens = TxOffload::pack(TxLengths { l2_len: 14, l3_len: 20, l4_len: 20, tso_segsz: 1448, ..TxLengths::default() })?;
//! assert_eq!(lens.bits(), 14 | (20 << 7) | (20 << 16) | (1448 << 24));
//!
//! let tso = OffloadFlags::TX_IPV4 | OffloadFlags::TX_TCP_SEG;
//! assert_eq!(lens.validate(tso), Err(TxOffloadError::TsoIpv4WithoutIpCksum));
//! assert_eq!(lens.validate(tso | OffloadFlags::TX_IP_CKSUM), Ok(()));
//! # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
//! ```

use std::fmt;

use crate::flags::OffloadFlags;
use crate::header::MbufHeader;

/// One length field of the TX offload word.
///
/// ```
/// use pktmem_mbuf::offload::TxOffloadField;
///
/// assert_eq!(TxOffloadField::L3Len.shift(), 7);
/// assert_eq!(TxOffloadField::L3Len.width(), 9);
/// assert_eq!(TxOffloadField::L3Len.max(), 511);
/// assert_eq!(TxOffloadField::OuterL2Len.to_string(), "outer_l2_len");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxOffloadField {
    /// Inner L2 header length (`l2_len`, 7 bits at bit 0).
    L2Len,
    /// Inner L3 header length (`l3_len`, 9 bits at bit 7).
    L3Len,
    /// Inner L4 header length (`l4_len`, 8 bits at bit 16).
    L4Len,
    /// TSO / UFO segment size (`tso_segsz`, 16 bits at bit 24).
    TsoSegsz,
    /// Outer L3 header length (`outer_l3_len`, 9 bits at bit 40).
    OuterL3Len,
    /// Outer L2 header length (`outer_l2_len`, 7 bits at bit 49).
    OuterL2Len,
}

impl TxOffloadField {
    /// Every field, in bit order.
    pub const ALL: [TxOffloadField; 6] = [
        Self::L2Len,
        Self::L3Len,
        Self::L4Len,
        Self::TsoSegsz,
        Self::OuterL3Len,
        Self::OuterL2Len,
    ];

    /// The field's first bit in the word.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffloadField;
    /// assert_eq!(TxOffloadField::TsoSegsz.shift(), 24);
    /// ```
    pub const fn shift(self) -> u32 {
        match self {
            Self::L2Len => 0,
            Self::L3Len => 7,
            Self::L4Len => 16,
            Self::TsoSegsz => 24,
            Self::OuterL3Len => 40,
            Self::OuterL2Len => 49,
        }
    }

    /// The field's width in bits.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffloadField;
    /// assert_eq!(TxOffloadField::TsoSegsz.width(), 16);
    /// ```
    pub const fn width(self) -> u32 {
        match self {
            Self::L2Len | Self::OuterL2Len => 7,
            Self::L3Len | Self::OuterL3Len => 9,
            Self::L4Len => 8,
            Self::TsoSegsz => 16,
        }
    }

    /// The largest value the field holds.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffloadField;
    /// assert_eq!(TxOffloadField::L4Len.max(), 255);
    /// ```
    pub const fn max(self) -> u16 {
        ((1u32 << self.width()) - 1) as u16
    }

    /// The field's name as in DPDK's `struct rte_mbuf` (`"l2_len"`, ...).
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffloadField;
    /// assert_eq!(TxOffloadField::L2Len.name(), "l2_len");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Self::L2Len => "l2_len",
            Self::L3Len => "l3_len",
            Self::L4Len => "l4_len",
            Self::TsoSegsz => "tso_segsz",
            Self::OuterL3Len => "outer_l3_len",
            Self::OuterL2Len => "outer_l2_len",
        }
    }

    const fn mask(self) -> u64 {
        (self.max() as u64) << self.shift()
    }
}

impl fmt::Display for TxOffloadField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The header lengths of a packet for TX offload, unpacked.
///
/// ```
/// use pktmem_mbuf::offload::{TxLengths, TxOffload};
///
/// let l = TxLengths { l2_len: 14, l3_len: 40, ..TxLengths::default() };
/// assert_eq!(TxOffload::pack(l)?.unpack(), l);
/// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxLengths {
    /// Inner L2 header length (at most 127).
    pub l2_len: u16,
    /// Inner L3 header length (at most 511).
    pub l3_len: u16,
    /// Inner L4 header length (at most 255).
    pub l4_len: u16,
    /// TSO / UFO segment size.
    pub tso_segsz: u16,
    /// Outer L3 header length (at most 511).
    pub outer_l3_len: u16,
    /// Outer L2 header length (at most 127).
    pub outer_l2_len: u16,
}

/// The packed TX offload word (see the [module docs](self) for the layout).
///
/// ```
/// use pktmem_mbuf::offload::{TxLenError, TxOffload, TxOffloadField};
///
/// let mut t = TxOffload::new();
/// t.set_l2_len(14)?;
/// t.set_l3_len(20)?;
/// assert_eq!((t.l2_len(), t.l3_len(), t.l4_len()), (14, 20, 0));
/// assert_eq!(
///     t.set_l2_len(128),
///     Err(TxLenError::FieldTooLarge { field: TxOffloadField::L2Len, value: 128, max: 127 })
/// );
/// assert_eq!(t.l2_len(), 14); // unchanged by the failed set
/// # Ok::<(), TxLenError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TxOffload(u64);

impl TxOffload {
    /// All lengths zero.
    #[must_use]
    pub const fn new() -> Self {
        Self(0)
    }

    /// The word `bits` as it is (the unused top 8 bits are kept).
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let t = TxOffload::from_bits(14 | (20 << 7));
    /// assert_eq!((t.l2_len(), t.l3_len()), (14, 20));
    /// ```
    #[must_use]
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw word.
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// Packs `lengths`, or says which length does not fit its bits.
    ///
    /// ```
    /// use pktmem_mbuf::offload::{TxLenError, TxLengths, TxOffload, TxOffloadField};
    ///
    /// let too_long = TxLengths { l4_len: 256, ..TxLengths::default() };
    /// assert_eq!(
    ///     TxOffload::pack(too_long),
    ///     Err(TxLenError::FieldTooLarge { field: TxOffloadField::L4Len, value: 256, max: 255 })
    /// );
    /// ```
    pub fn pack(lengths: TxLengths) -> Result<Self, TxLenError> {
        let mut t = Self::new();
        t.set(TxOffloadField::L2Len, lengths.l2_len)?;
        t.set(TxOffloadField::L3Len, lengths.l3_len)?;
        t.set(TxOffloadField::L4Len, lengths.l4_len)?;
        t.set(TxOffloadField::TsoSegsz, lengths.tso_segsz)?;
        t.set(TxOffloadField::OuterL3Len, lengths.outer_l3_len)?;
        t.set(TxOffloadField::OuterL2Len, lengths.outer_l2_len)?;
        Ok(t)
    }

    /// Every length.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let l = TxOffload::from_bits(14 | (20 << 7)).unpack();
    /// assert_eq!((l.l2_len, l.l3_len, l.tso_segsz), (14, 20, 0));
    /// ```
    pub const fn unpack(self) -> TxLengths {
        TxLengths {
            l2_len: self.get(TxOffloadField::L2Len),
            l3_len: self.get(TxOffloadField::L3Len),
            l4_len: self.get(TxOffloadField::L4Len),
            tso_segsz: self.get(TxOffloadField::TsoSegsz),
            outer_l3_len: self.get(TxOffloadField::OuterL3Len),
            outer_l2_len: self.get(TxOffloadField::OuterL2Len),
        }
    }

    /// One length.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::{TxOffload, TxOffloadField};
    /// let t = TxOffload::from_bits(0xAB << 49);
    /// assert_eq!(t.get(TxOffloadField::OuterL2Len), 0x2B); // 7 bits of 0xAB; bit 56 is unused
    /// ```
    pub const fn get(self, field: TxOffloadField) -> u16 {
        ((self.0 >> field.shift()) & field.max() as u64) as u16
    }

    /// Sets one length; on error nothing changes.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::{TxOffload, TxOffloadField};
    /// let mut t = TxOffload::new();
    /// t.set(TxOffloadField::OuterL3Len, 511)?;
    /// assert!(t.set(TxOffloadField::OuterL3Len, 512).is_err());
    /// assert_eq!(t.outer_l3_len(), 511);
    /// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
    /// ```
    pub fn set(&mut self, field: TxOffloadField, value: u16) -> Result<(), TxLenError> {
        if value > field.max() {
            return Err(TxLenError::FieldTooLarge {
                field,
                value,
                max: field.max(),
            });
        }
        self.0 = (self.0 & !field.mask()) | (u64::from(value) << field.shift());
        Ok(())
    }

    /// Inner L2 header length.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// t.set_l2_len(14)?;
    /// assert_eq!(t.l2_len(), 14);
    /// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
    /// ```
    pub const fn l2_len(self) -> u16 {
        self.get(TxOffloadField::L2Len)
    }

    /// Inner L3 header length.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// t.set_l3_len(40)?;
    /// assert_eq!(t.l3_len(), 40);
    /// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
    /// ```
    pub const fn l3_len(self) -> u16 {
        self.get(TxOffloadField::L3Len)
    }

    /// Inner L4 header length.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// t.set_l4_len(20)?;
    /// assert_eq!(t.l4_len(), 20);
    /// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
    /// ```
    pub const fn l4_len(self) -> u16 {
        self.get(TxOffloadField::L4Len)
    }

    /// TSO / UFO segment size.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// t.set_tso_segsz(1448);
    /// assert_eq!(t.tso_segsz(), 1448);
    /// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
    /// ```
    pub const fn tso_segsz(self) -> u16 {
        self.get(TxOffloadField::TsoSegsz)
    }

    /// Outer L3 header length.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// t.set_outer_l3_len(20)?;
    /// assert_eq!(t.outer_l3_len(), 20);
    /// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
    /// ```
    pub const fn outer_l3_len(self) -> u16 {
        self.get(TxOffloadField::OuterL3Len)
    }

    /// Outer L2 header length.
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// t.set_outer_l2_len(14)?;
    /// assert_eq!(t.outer_l2_len(), 14);
    /// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
    /// ```
    pub const fn outer_l2_len(self) -> u16 {
        self.get(TxOffloadField::OuterL2Len)
    }

    /// Sets the inner L2 header length (at most 127).
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// assert!(t.set_l2_len(127).is_ok());
    /// assert!(t.set_l2_len(128).is_err());
    /// assert_eq!(t.l2_len(), 127);
    /// ```
    pub fn set_l2_len(&mut self, v: u16) -> Result<(), TxLenError> {
        self.set(TxOffloadField::L2Len, v)
    }

    /// Sets the inner L3 header length (at most 511).
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// assert!(t.set_l3_len(511).is_ok());
    /// assert!(t.set_l3_len(512).is_err());
    /// assert_eq!(t.l3_len(), 511);
    /// ```
    pub fn set_l3_len(&mut self, v: u16) -> Result<(), TxLenError> {
        self.set(TxOffloadField::L3Len, v)
    }

    /// Sets the inner L4 header length (at most 255).
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// assert!(t.set_l4_len(255).is_ok());
    /// assert!(t.set_l4_len(256).is_err());
    /// assert_eq!(t.l4_len(), 255);
    /// ```
    pub fn set_l4_len(&mut self, v: u16) -> Result<(), TxLenError> {
        self.set(TxOffloadField::L4Len, v)
    }

    /// Sets the TSO / UFO segment size (every `u16` fits).
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// t.set_tso_segsz(u16::MAX);
    /// assert_eq!(t.tso_segsz(), u16::MAX);
    /// assert_eq!(t.l4_len(), 0);
    /// ```
    pub fn set_tso_segsz(&mut self, v: u16) {
        self.0 = (self.0 & !TxOffloadField::TsoSegsz.mask())
            | (u64::from(v) << TxOffloadField::TsoSegsz.shift());
    }

    /// Sets the outer L3 header length (at most 511).
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// assert!(t.set_outer_l3_len(511).is_ok());
    /// assert!(t.set_outer_l3_len(512).is_err());
    /// assert_eq!(t.outer_l3_len(), 511);
    /// ```
    pub fn set_outer_l3_len(&mut self, v: u16) -> Result<(), TxLenError> {
        self.set(TxOffloadField::OuterL3Len, v)
    }

    /// Sets the outer L2 header length (at most 127).
    ///
    /// ```
    /// # use pktmem_mbuf::offload::TxOffload;
    /// let mut t = TxOffload::new();
    /// assert!(t.set_outer_l2_len(127).is_ok());
    /// assert!(t.set_outer_l2_len(128).is_err());
    /// assert_eq!(t.outer_l2_len(), 127);
    /// ```
    pub fn set_outer_l2_len(&mut self, v: u16) -> Result<(), TxLenError> {
        self.set(TxOffloadField::OuterL2Len, v)
    }

    /// Checks `flags` with these lengths by the reference's rules (those of
    /// `rte_validate_tx_offload`, in its order); the first broken rule is
    /// the error.
    ///
    /// ```
    /// use pktmem_mbuf::flags::OffloadFlags as F;
    /// use pktmem_mbuf::offload::{TxOffload, TxOffloadError};
    ///
    /// let t = TxOffload::new();
    /// assert_eq!(t.validate(F::RX_VLAN), Ok(())); // no TX offload asked
    /// assert_eq!(t.validate(F::TX_IP_CKSUM | F::TX_IPV6), Err(TxOffloadError::IpCksumOnIpv6));
    /// assert_eq!(t.validate(F::TX_IPV6 | F::TX_TCP_SEG), Err(TxOffloadError::TsoWithoutSegsz));
    /// ```
    pub fn validate(self, flags: OffloadFlags) -> Result<(), TxOffloadError> {
        use OffloadFlags as F;
        if !flags.intersects(F::TX_OFFLOAD_MASK) {
            return Ok(());
        }
        if flags.contains(F::TX_IP_CKSUM) && flags.contains(F::TX_IPV6) {
            return Err(TxOffloadError::IpCksumOnIpv6);
        }
        let needs_ip = flags & (F::TX_L4_MASK | F::TX_TCP_SEG);
        if !needs_ip.is_empty() && !flags.intersects(F::TX_IPV4 | F::TX_IPV6) {
            return Err(TxOffloadError::NoIpType {
                requested: needs_ip,
            });
        }
        if flags.contains(F::TX_TCP_SEG) {
            if self.tso_segsz() == 0 {
                return Err(TxOffloadError::TsoWithoutSegsz);
            }
            if flags.contains(F::TX_IPV4) && !flags.contains(F::TX_IP_CKSUM) {
                return Err(TxOffloadError::TsoIpv4WithoutIpCksum);
            }
        }
        if flags.contains(F::TX_OUTER_IP_CKSUM) && !flags.contains(F::TX_OUTER_IPV4) {
            return Err(TxOffloadError::OuterIpCksumWithoutOuterIpv4);
        }
        Ok(())
    }

    /// [`validate`](Self::validate), then the rules the flags'
    /// documentation states that the reference does not check: the IP
    /// checksum needs `TX_IPV4`; at most one of `TX_IPV4`/`TX_IPV6` and of
    /// `TX_OUTER_IPV4`/`TX_OUTER_IPV6`; UDP segmentation needs a segment
    /// size; the outer UDP checksum needs an outer IP type; the lengths the
    /// requested offloads read must not be 0 (`l3_len` for the IP or L4
    /// checksum, TSO or UFO; `l4_len` for TSO or UFO; `outer_l3_len` for the
    /// outer IP or UDP checksum).
    ///
    /// ```
    /// use pktmem_mbuf::flags::OffloadFlags as F;
    /// use pktmem_mbuf::offload::{TxLengths, TxOffload, TxOffloadError, TxOffloadField};
    ///
    /// let tso = F::TX_IPV6 | F::TX_TCP_SEG;
    /// let t = TxOffload::pack(TxLengths { l2_len: 14, l3_len: 40, tso_segsz: 1440, ..TxLengths::default() })?;
    /// assert_eq!(t.validate(tso), Ok(())); // the reference accepts l4_len 0
    /// assert_eq!(
    ///     t.validate_strict(tso),
    ///     Err(TxOffloadError::MissingLength { field: TxOffloadField::L4Len, needed_by: F::TX_TCP_SEG })
    /// );
    /// # Ok::<(), pktmem_mbuf::offload::TxLenError>(())
    /// ```
    pub fn validate_strict(self, flags: OffloadFlags) -> Result<(), TxOffloadError> {
        use OffloadFlags as F;
        self.validate(flags)?;
        if !flags.intersects(F::TX_OFFLOAD_MASK) {
            return Ok(());
        }
        if flags.contains(F::TX_IP_CKSUM) && !flags.contains(F::TX_IPV4) {
            return Err(TxOffloadError::IpCksumWithoutIpv4);
        }
        if flags.contains(F::TX_IPV4 | F::TX_IPV6) {
            return Err(TxOffloadError::BothIpTypes);
        }
        if flags.contains(F::TX_OUTER_IPV4 | F::TX_OUTER_IPV6) {
            return Err(TxOffloadError::BothOuterIpTypes);
        }
        if flags.contains(F::TX_UDP_SEG) && self.tso_segsz() == 0 {
            return Err(TxOffloadError::UdpSegWithoutSegsz);
        }
        if flags.contains(F::TX_OUTER_UDP_CKSUM)
            && !flags.intersects(F::TX_OUTER_IPV4 | F::TX_OUTER_IPV6)
        {
            return Err(TxOffloadError::NoOuterIpType);
        }
        let needs = [
            (
                TxOffloadField::L3Len,
                F::TX_IP_CKSUM | F::TX_L4_MASK | F::TX_TCP_SEG | F::TX_UDP_SEG,
            ),
            (TxOffloadField::L4Len, F::TX_TCP_SEG | F::TX_UDP_SEG),
            (
                TxOffloadField::OuterL3Len,
                F::TX_OUTER_IP_CKSUM | F::TX_OUTER_UDP_CKSUM,
            ),
        ];
        for (field, by) in needs {
            let needed_by = flags & by;
            if !needed_by.is_empty() && self.get(field) == 0 {
                return Err(TxOffloadError::MissingLength { field, needed_by });
            }
        }
        Ok(())
    }
}

/// A length did not fit its bits of the TX offload word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxLenError {
    /// `value` is above the field's maximum.
    FieldTooLarge {
        /// The field.
        field: TxOffloadField,
        /// The value asked for.
        value: u16,
        /// The largest value the field holds.
        max: u16,
    },
}

impl fmt::Display for TxLenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FieldTooLarge { field, value, max } => write!(
                f,
                "{field} {value} does not fit its {} bits (max {max})",
                field.width()
            ),
        }
    }
}

impl std::error::Error for TxLenError {}

/// A TX offload request that cannot be carried out as asked: one variant
/// per rule (the first five are the reference's, the others
/// [`TxOffload::validate_strict`]'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TxOffloadError {
    /// `TX_IP_CKSUM` with `TX_IPV6`: IPv6 has no header checksum.
    IpCksumOnIpv6,
    /// An L4 checksum or TSO is requested without `TX_IPV4` or `TX_IPV6`.
    NoIpType {
        /// The requests that need an IP type.
        requested: OffloadFlags,
    },
    /// `TX_TCP_SEG` with a segment size of 0.
    TsoWithoutSegsz,
    /// `TX_TCP_SEG` on IPv4 without `TX_IP_CKSUM` (segmenting rewrites the
    /// IP header, so its checksum must be offloaded too).
    TsoIpv4WithoutIpCksum,
    /// `TX_OUTER_IP_CKSUM` without `TX_OUTER_IPV4`.
    OuterIpCksumWithoutOuterIpv4,
    /// Strict: `TX_IP_CKSUM` without `TX_IPV4`.
    IpCksumWithoutIpv4,
    /// Strict: both `TX_IPV4` and `TX_IPV6`.
    BothIpTypes,
    /// Strict: both `TX_OUTER_IPV4` and `TX_OUTER_IPV6`.
    BothOuterIpTypes,
    /// Strict: `TX_UDP_SEG` with a segment size of 0.
    UdpSegWithoutSegsz,
    /// Strict: `TX_OUTER_UDP_CKSUM` without `TX_OUTER_IPV4` or
    /// `TX_OUTER_IPV6`.
    NoOuterIpType,
    /// Strict: a length the requested offloads read is 0.
    MissingLength {
        /// The length.
        field: TxOffloadField,
        /// The requests that read it.
        needed_by: OffloadFlags,
    },
}

impl fmt::Display for TxOffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::IpCksumOnIpv6 => f.write_str("TX_IP_CKSUM requested on an IPv6 packet"),
            Self::NoIpType { requested } => {
                write!(f, "{requested} requested without TX_IPV4 or TX_IPV6")
            }
            Self::TsoWithoutSegsz => f.write_str("TX_TCP_SEG requested with tso_segsz 0"),
            Self::TsoIpv4WithoutIpCksum => {
                f.write_str("TX_TCP_SEG on IPv4 requested without TX_IP_CKSUM")
            }
            Self::OuterIpCksumWithoutOuterIpv4 => {
                f.write_str("TX_OUTER_IP_CKSUM requested without TX_OUTER_IPV4")
            }
            Self::IpCksumWithoutIpv4 => f.write_str("TX_IP_CKSUM requested without TX_IPV4"),
            Self::BothIpTypes => f.write_str("both TX_IPV4 and TX_IPV6 are set"),
            Self::BothOuterIpTypes => f.write_str("both TX_OUTER_IPV4 and TX_OUTER_IPV6 are set"),
            Self::UdpSegWithoutSegsz => f.write_str("TX_UDP_SEG requested with tso_segsz 0"),
            Self::NoOuterIpType => {
                f.write_str("TX_OUTER_UDP_CKSUM requested without TX_OUTER_IPV4 or TX_OUTER_IPV6")
            }
            Self::MissingLength { field, needed_by } => {
                write!(f, "{needed_by} needs {field}, which is 0")
            }
        }
    }
}

impl std::error::Error for TxOffloadError {}

// ---------------------------------------------------------------- header

/// The header's TX offload lengths.
pub(crate) fn tx_offload(hdr: &MbufHeader) -> TxOffload {
    TxOffload(hdr.tx_offload)
}

/// Replaces the header's TX offload lengths.
#[cfg(test)]
pub(crate) fn set_tx_offload(hdr: &mut MbufHeader, t: TxOffload) {
    hdr.tx_offload = t.0;
}

/// [`TxOffload::validate`] on a header's flags and lengths (the internal
/// flag bits are not looked at).
pub(crate) fn validate_tx_offload(hdr: &MbufHeader) -> Result<(), TxOffloadError> {
    tx_offload(hdr).validate(crate::flags::ol_flags(hdr))
}

/// [`TxOffload::validate_strict`] on a header's flags and lengths.
pub(crate) fn validate_tx_offload_strict(hdr: &MbufHeader) -> Result<(), TxOffloadError> {
    tx_offload(hdr).validate_strict(crate::flags::ol_flags(hdr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::INTERNAL_FLAGS;

    #[test]
    fn header_forms_read_and_write_the_header_words() {
        let mut hdr = MbufHeader::zeroed_for_tests();
        let t = TxOffload::pack(TxLengths {
            l2_len: 14,
            l3_len: 20,
            l4_len: 20,
            tso_segsz: 1000,
            outer_l3_len: 20,
            outer_l2_len: 14,
        })
        .unwrap();
        set_tx_offload(&mut hdr, t);
        assert_eq!(hdr.tx_offload, t.bits());
        assert_eq!(tx_offload(&hdr), t);
        hdr.ol_flags = INTERNAL_FLAGS | (OffloadFlags::TX_IPV4 | OffloadFlags::TX_TCP_SEG).bits();
        assert_eq!(
            validate_tx_offload(&hdr),
            Err(TxOffloadError::TsoIpv4WithoutIpCksum)
        );
        hdr.ol_flags |= OffloadFlags::TX_IP_CKSUM.bits();
        // The internal bits (61, 62) do not disturb validation.
        assert_eq!(validate_tx_offload(&hdr), Ok(()));
        assert_eq!(validate_tx_offload_strict(&hdr), Ok(()));
    }
}
