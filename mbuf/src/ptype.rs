//! The packet type word: what a driver (or a parser) found at each layer,
//! with the reference's code points, as one typed field per layer.
//!
//! ```
//! use pktmem_mbuf::{L3Type, L4Type, PacketType};
//! let t = PacketType::EMPTY.with_l3(Some(L3Type::Ipv4)).with_l4(Some(L4Type::Udp));
//! assert_eq!((t.l3(), t.l4()), (Some(L3Type::Ipv4), Some(L4Type::Udp)));
//! assert_eq!(t.to_string(), "L3_IPV4 L4_UDP");
//! assert_eq!(t.bits(), 0x0000_0210);
//! ```

use std::fmt;

macro_rules! layer {
    ($(#[$m:meta])* $name:ident, $prefix:literal, $shift:expr, { $($(#[$vm:meta])* $v:ident = $code:expr, $label:literal;)* }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $($(#[$vm])* $v,)*
            /// A code point the reference does not define (kept as is).
            Other(u8),
        }

        impl $name {
            const SHIFT: u32 = $shift;

            fn from_code(c: u8) -> Option<Self> {
                match c {
                    0 => None,
                    $($code => Some(Self::$v),)*
                    other => Some(Self::Other(other)),
                }
            }

            fn code(self) -> u8 {
                match self {
                    $(Self::$v => $code,)*
                    Self::Other(c) => c & 0xf,
                }
            }

            /// The reference's name for this value (e.g. `L3_IPV4`).
            pub fn name(self) -> String {
                match self {
                    $(Self::$v => concat!($prefix, $label).to_string(),)*
                    Self::Other(c) => format!("{}{:#x}", $prefix, c),
                }
            }
        }
    };
}

layer!(
    /// Outer layer 2.
    L2Type, "L2_", 0, {
    /// Ethernet.
    Ether = 1, "ETHER";
    /// Ethernet, IEEE 1588 time sync.
    EtherTimesync = 2, "ETHER_TIMESYNC";
    /// Ethernet, ARP.
    EtherArp = 3, "ETHER_ARP";
    /// Ethernet, LLDP.
    EtherLldp = 4, "ETHER_LLDP";
    /// Ethernet, NSH.
    EtherNsh = 5, "ETHER_NSH";
    /// Ethernet with a VLAN tag.
    EtherVlan = 6, "ETHER_VLAN";
    /// Ethernet with two VLAN tags.
    EtherQinq = 7, "ETHER_QINQ";
    /// Ethernet, `PPPoE`.
    EtherPppoe = 8, "ETHER_PPPOE";
    /// Ethernet, `FCoE`.
    EtherFcoe = 9, "ETHER_FCOE";
    /// Ethernet, MPLS.
    EtherMpls = 10, "ETHER_MPLS";
});

layer!(
    /// Outer layer 3.
    L3Type, "L3_", 4, {
    /// IPv4 without options.
    Ipv4 = 1, "IPV4";
    /// IPv4 with options.
    Ipv4Ext = 3, "IPV4_EXT";
    /// IPv6 without extension headers.
    Ipv6 = 4, "IPV6";
    /// IPv4, options unknown.
    Ipv4ExtUnknown = 9, "IPV4_EXT_UNKNOWN";
    /// IPv6 with extension headers.
    Ipv6Ext = 12, "IPV6_EXT";
    /// IPv6, extension headers unknown.
    Ipv6ExtUnknown = 14, "IPV6_EXT_UNKNOWN";
});

layer!(
    /// Outer layer 4.
    L4Type, "L4_", 8, {
    /// TCP.
    Tcp = 1, "TCP";
    /// UDP.
    Udp = 2, "UDP";
    /// A fragment.
    Frag = 3, "FRAG";
    /// SCTP.
    Sctp = 4, "SCTP";
    /// ICMP.
    Icmp = 5, "ICMP";
    /// Not a fragment, no other layer 4 known.
    Nonfrag = 6, "NONFRAG";
    /// IGMP.
    Igmp = 7, "IGMP";
});

layer!(
    /// Tunnel.
    TunnelType, "TUNNEL_", 12, {
    /// IP in IP.
    Ip = 1, "IP";
    /// GRE.
    Gre = 2, "GRE";
    /// VXLAN.
    Vxlan = 3, "VXLAN";
    /// NVGRE.
    Nvgre = 4, "NVGRE";
    /// GENEVE.
    Geneve = 5, "GENEVE";
    /// Transparent Ethernet bridging over GRE.
    Grenat = 6, "GRENAT";
    /// GTP control.
    Gtpc = 7, "GTPC";
    /// GTP user.
    Gtpu = 8, "GTPU";
    /// ESP.
    Esp = 9, "ESP";
    /// L2TP.
    L2tp = 10, "L2TP";
    /// VXLAN-GPE.
    VxlanGpe = 11, "VXLAN_GPE";
    /// MPLS in GRE.
    MplsInGre = 12, "MPLS_IN_GRE";
    /// MPLS in UDP.
    MplsInUdp = 13, "MPLS_IN_UDP";
});

layer!(
    /// Inner layer 2 (inside a tunnel).
    InnerL2Type, "INNER_L2_", 16, {
    /// Ethernet.
    Ether = 1, "ETHER";
    /// Ethernet with a VLAN tag.
    EtherVlan = 2, "ETHER_VLAN";
    /// Ethernet with two VLAN tags.
    EtherQinq = 3, "ETHER_QINQ";
});

layer!(
    /// Inner layer 3.
    InnerL3Type, "INNER_L3_", 20, {
    /// IPv4 without options.
    Ipv4 = 1, "IPV4";
    /// IPv4 with options.
    Ipv4Ext = 2, "IPV4_EXT";
    /// IPv6.
    Ipv6 = 3, "IPV6";
    /// IPv4, options unknown.
    Ipv4ExtUnknown = 4, "IPV4_EXT_UNKNOWN";
    /// IPv6 with extension headers.
    Ipv6Ext = 5, "IPV6_EXT";
    /// IPv6, extension headers unknown.
    Ipv6ExtUnknown = 6, "IPV6_EXT_UNKNOWN";
});

layer!(
    /// Inner layer 4.
    InnerL4Type, "INNER_L4_", 24, {
    /// TCP.
    Tcp = 1, "TCP";
    /// UDP.
    Udp = 2, "UDP";
    /// A fragment.
    Frag = 3, "FRAG";
    /// SCTP.
    Sctp = 4, "SCTP";
    /// ICMP.
    Icmp = 5, "ICMP";
    /// Not a fragment.
    Nonfrag = 6, "NONFRAG";
});

/// The packet type word: one 4-bit code per layer (0: unknown).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct PacketType(u32);

macro_rules! accessors {
    ($($get:ident, $with:ident, $t:ident;)*) => {$(
        #[doc = concat!("The `", stringify!($t), "` field (`None`: unknown).")]
        pub fn $get(self) -> Option<$t> {
            $t::from_code(((self.0 >> $t::SHIFT) & 0xf) as u8)
        }

        #[doc = concat!("This type with the `", stringify!($t), "` field set (`None`: unknown).")]
        #[must_use]
        pub fn $with(self, v: Option<$t>) -> Self {
            let code = u32::from(v.map_or(0, $t::code));
            Self((self.0 & !(0xf << $t::SHIFT)) | (code << $t::SHIFT))
        }
    )*};
}

impl PacketType {
    /// Nothing known.
    pub const EMPTY: PacketType = PacketType(0);

    /// From the raw word (every value is accepted; unknown codes read back
    /// as `Other`).
    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }

    /// The raw word.
    pub const fn bits(self) -> u32 {
        self.0
    }

    accessors!(
        l2, with_l2, L2Type;
        l3, with_l3, L3Type;
        l4, with_l4, L4Type;
        tunnel, with_tunnel, TunnelType;
        inner_l2, with_inner_l2, InnerL2Type;
        inner_l3, with_inner_l3, InnerL3Type;
        inner_l4, with_inner_l4, InnerL4Type;
    );

    /// The names of the known layers, outer first (what `Display` prints,
    /// space-separated; "UNKNOWN" when none is known).
    pub fn names(self) -> Vec<String> {
        let mut v = Vec::new();
        v.extend(self.l2().map(L2Type::name));
        v.extend(self.l3().map(L3Type::name));
        v.extend(self.l4().map(L4Type::name));
        v.extend(self.tunnel().map(TunnelType::name));
        v.extend(self.inner_l2().map(InnerL2Type::name));
        v.extend(self.inner_l3().map(InnerL3Type::name));
        v.extend(self.inner_l4().map(InnerL4Type::name));
        v
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            return f.write_str("UNKNOWN");
        }
        f.write_str(&names.join(" "))
    }
}

impl crate::Mbuf {
    /// The packet type, typed (see [`PacketType`]).
    ///
    /// ```
    /// use pktmem_mbuf::{L2Type, PacketType, PktPool};
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.set_ptype(PacketType::EMPTY.with_l2(Some(L2Type::Ether)));
    /// assert_eq!(m.ptype().l2(), Some(L2Type::Ether));
    /// assert_eq!(m.packet_type(), 1);
    /// ```
    pub fn ptype(&self) -> PacketType {
        PacketType(self.packet_type())
    }

    /// Sets the packet type.
    pub fn set_ptype(&mut self, t: PacketType) {
        self.set_packet_type(t.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_layer_round_trips_and_keeps_the_others() {
        let t = PacketType::from_bits(0x0f0f_0f0f);
        let u = t.with_l3(Some(L3Type::Ipv6));
        assert_eq!(u.l3(), Some(L3Type::Ipv6));
        assert_eq!(u.bits() & !0xf0, t.bits() & !0xf0);
        assert_eq!(u.with_l3(None).l3(), None);
        assert_eq!(
            PacketType::from_bits(0xb000).tunnel(),
            Some(TunnelType::VxlanGpe)
        );
        assert_eq!(PacketType::from_bits(0x0f).l2(), Some(L2Type::Other(0xf)));
        assert_eq!(PacketType::EMPTY.to_string(), "UNKNOWN");
        let all = PacketType::from_bits(0x0211_3211);
        assert_eq!(
            all.to_string(),
            "L2_ETHER L3_IPV4 L4_UDP TUNNEL_VXLAN INNER_L2_ETHER INNER_L3_IPV4 INNER_L4_UDP"
        );
    }
}
