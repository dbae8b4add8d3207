//! Offload flags: bit values against DPDK 22.11's published `rte_mbuf_core.h`
//! values, names round-tripping through `Display` / `FromStr`, the code
//! fields, the internal bits, and the dynamic flag registry.
//!
//! The dynamic-flag registry is process-wide and the tests of this binary
//! run in parallel, so each test uses its own names; the test that fills all
//! 18 free bits runs in a child process of its own.

use std::collections::HashSet;
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::thread;

use pktmem_mbuf::flags::{
    DynFlag, DynFlagError, OffloadFlags as F, ParseFlagsError, RxIpCksum, RxL4Cksum,
    RxOuterL4Cksum, TxL4, TxTunnel, MAX_DYN_NAME_LEN,
};

/// Set in the environment of the child processes that run the `child_*`
/// tests; without it (e.g. `--include-ignored` in the shared process, whose
/// registry is not empty) those tests do nothing.
const CHILD_ENV: &str = "PKTMEM_MBUF_TEST_CHILD";

fn in_child() -> bool {
    if std::env::var_os(CHILD_ENV).is_some() {
        true
    } else {
        eprintln!("skipped: runs only in the child process its parent test starts");
        false
    }
}

/// DPDK 22.11's names and values (`rte_mbuf_core.h`), the spec: our
/// constant, DPDK's name, DPDK's value.
static REFERENCE: &[(F, &str, u64)] = &[
    (F::RX_VLAN, "RTE_MBUF_F_RX_VLAN", 1 << 0),
    (F::RX_RSS_HASH, "RTE_MBUF_F_RX_RSS_HASH", 1 << 1),
    (F::RX_FDIR, "RTE_MBUF_F_RX_FDIR", 1 << 2),
    (
        F::RX_OUTER_IP_CKSUM_BAD,
        "RTE_MBUF_F_RX_OUTER_IP_CKSUM_BAD",
        1 << 5,
    ),
    (F::RX_VLAN_STRIPPED, "RTE_MBUF_F_RX_VLAN_STRIPPED", 1 << 6),
    (F::RX_IP_CKSUM_MASK, "", (1 << 4) | (1 << 7)),
    (F::RX_IP_CKSUM_UNKNOWN, "RTE_MBUF_F_RX_IP_CKSUM_UNKNOWN", 0),
    (F::RX_IP_CKSUM_BAD, "RTE_MBUF_F_RX_IP_CKSUM_BAD", 1 << 4),
    (F::RX_IP_CKSUM_GOOD, "RTE_MBUF_F_RX_IP_CKSUM_GOOD", 1 << 7),
    (
        F::RX_IP_CKSUM_NONE,
        "RTE_MBUF_F_RX_IP_CKSUM_NONE",
        (1 << 4) | (1 << 7),
    ),
    (F::RX_L4_CKSUM_MASK, "", (1 << 3) | (1 << 8)),
    (F::RX_L4_CKSUM_UNKNOWN, "RTE_MBUF_F_RX_L4_CKSUM_UNKNOWN", 0),
    (F::RX_L4_CKSUM_BAD, "RTE_MBUF_F_RX_L4_CKSUM_BAD", 1 << 3),
    (F::RX_L4_CKSUM_GOOD, "RTE_MBUF_F_RX_L4_CKSUM_GOOD", 1 << 8),
    (
        F::RX_L4_CKSUM_NONE,
        "RTE_MBUF_F_RX_L4_CKSUM_NONE",
        (1 << 3) | (1 << 8),
    ),
    (F::RX_IEEE1588_PTP, "RTE_MBUF_F_RX_IEEE1588_PTP", 1 << 9),
    (F::RX_IEEE1588_TMST, "RTE_MBUF_F_RX_IEEE1588_TMST", 1 << 10),
    (F::RX_FDIR_ID, "RTE_MBUF_F_RX_FDIR_ID", 1 << 13),
    (F::RX_FDIR_FLX, "RTE_MBUF_F_RX_FDIR_FLX", 1 << 14),
    (F::RX_QINQ_STRIPPED, "RTE_MBUF_F_RX_QINQ_STRIPPED", 1 << 15),
    (F::RX_LRO, "RTE_MBUF_F_RX_LRO", 1 << 16),
    (F::RX_SEC_OFFLOAD, "RTE_MBUF_F_RX_SEC_OFFLOAD", 1 << 18),
    (
        F::RX_SEC_OFFLOAD_FAILED,
        "RTE_MBUF_F_RX_SEC_OFFLOAD_FAILED",
        1 << 19,
    ),
    (F::RX_QINQ, "RTE_MBUF_F_RX_QINQ", 1 << 20),
    (F::RX_OUTER_L4_CKSUM_MASK, "", (1 << 21) | (1 << 22)),
    (
        F::RX_OUTER_L4_CKSUM_UNKNOWN,
        "RTE_MBUF_F_RX_OUTER_L4_CKSUM_UNKNOWN",
        0,
    ),
    (
        F::RX_OUTER_L4_CKSUM_BAD,
        "RTE_MBUF_F_RX_OUTER_L4_CKSUM_BAD",
        1 << 21,
    ),
    (
        F::RX_OUTER_L4_CKSUM_GOOD,
        "RTE_MBUF_F_RX_OUTER_L4_CKSUM_GOOD",
        1 << 22,
    ),
    (
        F::RX_OUTER_L4_CKSUM_INVALID,
        "RTE_MBUF_F_RX_OUTER_L4_CKSUM_INVALID",
        (1 << 21) | (1 << 22),
    ),
    (
        F::TX_OUTER_UDP_CKSUM,
        "RTE_MBUF_F_TX_OUTER_UDP_CKSUM",
        1 << 41,
    ),
    (F::TX_UDP_SEG, "RTE_MBUF_F_TX_UDP_SEG", 1 << 42),
    (F::TX_SEC_OFFLOAD, "RTE_MBUF_F_TX_SEC_OFFLOAD", 1 << 43),
    (F::TX_MACSEC, "RTE_MBUF_F_TX_MACSEC", 1 << 44),
    (F::TX_TUNNEL_VXLAN, "RTE_MBUF_F_TX_TUNNEL_VXLAN", 0x1 << 45),
    (F::TX_TUNNEL_GRE, "RTE_MBUF_F_TX_TUNNEL_GRE", 0x2 << 45),
    (F::TX_TUNNEL_IPIP, "RTE_MBUF_F_TX_TUNNEL_IPIP", 0x3 << 45),
    (
        F::TX_TUNNEL_GENEVE,
        "RTE_MBUF_F_TX_TUNNEL_GENEVE",
        0x4 << 45,
    ),
    (
        F::TX_TUNNEL_MPLSINUDP,
        "RTE_MBUF_F_TX_TUNNEL_MPLSINUDP",
        0x5 << 45,
    ),
    (
        F::TX_TUNNEL_VXLAN_GPE,
        "RTE_MBUF_F_TX_TUNNEL_VXLAN_GPE",
        0x6 << 45,
    ),
    (F::TX_TUNNEL_GTP, "RTE_MBUF_F_TX_TUNNEL_GTP", 0x7 << 45),
    (F::TX_TUNNEL_ESP, "RTE_MBUF_F_TX_TUNNEL_ESP", 0x8 << 45),
    (F::TX_TUNNEL_IP, "RTE_MBUF_F_TX_TUNNEL_IP", 0xD << 45),
    (F::TX_TUNNEL_UDP, "RTE_MBUF_F_TX_TUNNEL_UDP", 0xE << 45),
    (F::TX_TUNNEL_MASK, "", 0xF << 45),
    (F::TX_QINQ, "RTE_MBUF_F_TX_QINQ", 1 << 49),
    (F::TX_TCP_SEG, "RTE_MBUF_F_TX_TCP_SEG", 1 << 50),
    (F::TX_IEEE1588_TMST, "RTE_MBUF_F_TX_IEEE1588_TMST", 1 << 51),
    (F::TX_L4_NO_CKSUM, "RTE_MBUF_F_TX_L4_NO_CKSUM", 0),
    (F::TX_TCP_CKSUM, "RTE_MBUF_F_TX_TCP_CKSUM", 1 << 52),
    (F::TX_SCTP_CKSUM, "RTE_MBUF_F_TX_SCTP_CKSUM", 2 << 52),
    (F::TX_UDP_CKSUM, "RTE_MBUF_F_TX_UDP_CKSUM", 3 << 52),
    (F::TX_L4_MASK, "", 3 << 52),
    (F::TX_IP_CKSUM, "RTE_MBUF_F_TX_IP_CKSUM", 1 << 54),
    (F::TX_IPV4, "RTE_MBUF_F_TX_IPV4", 1 << 55),
    (F::TX_IPV6, "RTE_MBUF_F_TX_IPV6", 1 << 56),
    (F::TX_VLAN, "RTE_MBUF_F_TX_VLAN", 1 << 57),
    (
        F::TX_OUTER_IP_CKSUM,
        "RTE_MBUF_F_TX_OUTER_IP_CKSUM",
        1 << 58,
    ),
    (F::TX_OUTER_IPV4, "RTE_MBUF_F_TX_OUTER_IPV4", 1 << 59),
    (F::TX_OUTER_IPV6, "RTE_MBUF_F_TX_OUTER_IPV6", 1 << 60),
];

/// DPDK's `RTE_MBUF_F_TX_OFFLOAD_MASK`, spelled out.
const DPDK_TX_OFFLOAD_MASK: u64 = (1 << 60)
    | (1 << 59)
    | (1 << 58)
    | (1 << 57)
    | (1 << 56)
    | (1 << 55)
    | (1 << 54)
    | (3 << 52)
    | (1 << 51)
    | (1 << 50)
    | (1 << 49)
    | (0xF << 45)
    | (1 << 44)
    | (1 << 43)
    | (1 << 42)
    | (1 << 41);

#[test]
fn bits_match_dpdk_22_11() {
    for &(ours, dpdk_name, value) in REFERENCE {
        assert_eq!(ours.bits(), value, "{dpdk_name} / {ours:?}");
        if !dpdk_name.is_empty() {
            // DPDK's spelling parses to the same value.
            assert_eq!(F::from_name(dpdk_name), Some(ours), "{dpdk_name}");
            assert_eq!(dpdk_name.parse::<F>(), Ok(ours), "{dpdk_name}");
        }
    }
    assert_eq!(F::TX_OFFLOAD_MASK.bits(), DPDK_TX_OFFLOAD_MASK);
    // RTE_MBUF_F_FIRST_FREE = 1 << 23, RTE_MBUF_F_LAST_FREE = 1 << 40.
    assert_eq!(F::DYN_MASK.bits(), ((1u64 << 41) - 1) & !((1u64 << 23) - 1));
    // Every named RX/TX value is in the reference table, and the reference
    // table's named non-zero values are all listed: same sets.
    let listed: HashSet<u64> = F::rx_names()
        .chain(F::tx_names())
        .map(|(_, f)| f.bits())
        .collect();
    let expected: HashSet<u64> = REFERENCE
        .iter()
        .filter(|(_, n, v)| !n.is_empty() && *v != 0)
        .map(|&(_, _, v)| v)
        .collect();
    assert_eq!(listed, expected);
    assert_eq!(F::rx_names().count(), 23);
    assert_eq!(F::tx_names().count(), 27);
}

#[test]
fn every_name_round_trips_through_display_and_from_str() {
    for (name, value) in F::rx_names().chain(F::tx_names()) {
        assert_eq!(value.to_string(), name);
        assert_eq!(name.parse::<F>(), Ok(value), "{name}");
        assert_eq!(
            format!("RTE_MBUF_F_{name}").parse::<F>(),
            Ok(value),
            "{name}"
        );
        let names: Vec<_> = value.iter_names().collect();
        assert_eq!(names, [(name, value)]);
    }
    // The reference table's names, short form, print as such (except the
    // zero values, which print as nothing).
    for &(ours, dpdk_name, value) in REFERENCE {
        if dpdk_name.is_empty() {
            continue;
        }
        let short = dpdk_name.strip_prefix("RTE_MBUF_F_").unwrap();
        if value == 0 {
            assert_eq!(ours.to_string(), "");
            assert_eq!(short.parse::<F>(), Ok(F::empty()));
        } else {
            assert_eq!(ours.to_string(), short);
        }
    }
}

/// A deterministic generator of flag words (xorshift).
fn words(n: usize) -> impl Iterator<Item = u64> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}

#[test]
fn any_set_round_trips_through_its_text() {
    let mut saw_hex = false;
    for w in words(5000) {
        let f = F::from_bits_truncate(w);
        let text = f.to_string();
        saw_hex |= text.contains("0x");
        assert_eq!(text.parse::<F>(), Ok(f), "{w:#x} printed as {text:?}");
        // `iter_names` plus the hex rest cover exactly the set.
        let named = f.iter_names().fold(F::empty(), |acc, (_, v)| acc | v);
        assert!(f.contains(named));
    }
    // Unregistered dynamic bits and reserved tunnel codes print in hex.
    assert!(saw_hex);
    let odd = F::TX_TUNNEL_ESP | F::TX_TUNNEL_VXLAN | F::RX_LRO;
    assert_eq!(odd.tx_tunnel(), TxTunnel::Reserved(9));
    assert_eq!(odd.to_string(), "RX_LRO 0x1200000000000");
    assert_eq!(odd.to_string().parse::<F>(), Ok(odd));
}

#[test]
fn separators_and_empty_input() {
    let want = F::RX_VLAN | F::RX_RSS_HASH | F::TX_IPV4;
    assert_eq!("RX_VLAN|RX_RSS_HASH, TX_IPV4".parse::<F>(), Ok(want));
    assert_eq!("  RX_VLAN\tRX_RSS_HASH\nTX_IPV4 ".parse::<F>(), Ok(want));
    assert_eq!("".parse::<F>(), Ok(F::empty()));
    assert_eq!(F::empty().to_string(), "");
    // The same value twice is fine; the same flag twice too.
    assert_eq!(
        "TX_UDP_CKSUM TX_UDP_CKSUM RX_VLAN RX_VLAN".parse::<F>(),
        Ok(F::TX_UDP_CKSUM | F::RX_VLAN)
    );
    // A zero value and the same field's non-zero value conflict.
    assert!(matches!(
        "TX_L4_NO_CKSUM TX_TCP_CKSUM".parse::<F>(),
        Err(ParseFlagsError::ConflictingValues {
            field: "TX L4 checksum",
            ..
        })
    ));
}

#[test]
fn parse_errors_are_typed() {
    assert_eq!(
        "RX_VLAN RX_BOGUS".parse::<F>(),
        Err(ParseFlagsError::UnknownName {
            name: "RX_BOGUS".into()
        })
    );
    assert_eq!(
        "RX_IP_CKSUM_GOOD RTE_MBUF_F_RX_IP_CKSUM_BAD".parse::<F>(),
        Err(ParseFlagsError::ConflictingValues {
            field: "RX IP checksum",
            first: "RX_IP_CKSUM_GOOD".into(),
            second: "RTE_MBUF_F_RX_IP_CKSUM_BAD".into(),
        })
    );
    assert!(matches!(
        "TX_TUNNEL_GRE TX_TUNNEL_IPIP".parse::<F>(),
        Err(ParseFlagsError::ConflictingValues {
            field: "TX tunnel type",
            ..
        })
    ));
    // The internal INDIRECT bit cannot be smuggled in as hex.
    assert_eq!(
        "0x4000000000000001".parse::<F>(),
        Err(ParseFlagsError::InvalidBits {
            bits: 0x4000_0000_0000_0001,
            invalid: 1 << 62
        })
    );
    assert_eq!(
        "0xzz".parse::<F>(),
        Err(ParseFlagsError::UnknownName {
            name: "0xzz".into()
        })
    );
    let e = "RX_BOGUS".parse::<F>().unwrap_err();
    assert_eq!(e.to_string(), "unknown offload flag name 'RX_BOGUS'");
}

#[test]
fn internal_and_unused_bits_are_never_in_a_set() {
    for b in [11, 12, 17, 61, 62, 63] {
        assert_eq!(F::from_bits(1 << b), None, "bit {b}");
        assert_eq!(F::from_bits_truncate(1 << b), F::empty(), "bit {b}");
        assert_eq!(F::all().bits() & (1 << b), 0, "bit {b}");
        assert_eq!((!F::empty()).bits() & (1 << b), 0, "bit {b}");
    }
    let valid: Vec<u32> = (0..64).filter(|b| F::from_bits(1 << b).is_some()).collect();
    let expected: Vec<u32> = (0..=10).chain(13..=16).chain(18..=60).collect();
    assert_eq!(valid, expected);
    assert_eq!(!F::all(), F::empty());
    assert_eq!(F::all(), F::RX_MASK | F::TX_OFFLOAD_MASK | F::DYN_MASK);
}

#[test]
fn set_operations() {
    let a = F::RX_VLAN | F::TX_IPV4;
    let b = F::TX_IPV4 | F::TX_VLAN;
    assert_eq!((a & b), F::TX_IPV4);
    assert_eq!((a | b).bits(), (1 << 0) | (1 << 55) | (1 << 57));
    assert_eq!(a - b, F::RX_VLAN);
    assert_eq!(!a & a, F::empty());
    assert_eq!(!a | a, F::all());
    let mut c = a;
    c |= F::RX_LRO;
    c &= !F::RX_VLAN;
    c -= F::TX_IPV4;
    assert_eq!(c, F::RX_LRO);
    c.insert(F::TX_QINQ);
    c.remove(F::RX_LRO);
    assert_eq!(c, F::TX_QINQ);
    c.set(F::TX_QINQ, false);
    assert!(c.is_empty());
    assert_eq!(a.rx(), F::RX_VLAN);
    assert_eq!(a.tx(), F::TX_IPV4);
    assert!(a.intersects(b) && !a.intersects(F::TX_VLAN));
    assert!(a.contains(F::empty()));
    assert_eq!(F::default(), F::empty());
}

#[test]
fn code_fields_get_and_set_without_touching_other_bits() {
    let others = F::all()
        - (F::RX_IP_CKSUM_MASK
            | F::RX_L4_CKSUM_MASK
            | F::RX_OUTER_L4_CKSUM_MASK
            | F::TX_L4_MASK
            | F::TX_TUNNEL_MASK);
    for base in [F::empty(), others] {
        for v in [
            RxIpCksum::Unknown,
            RxIpCksum::Bad,
            RxIpCksum::Good,
            RxIpCksum::None,
        ] {
            let mut f = base | F::RX_IP_CKSUM_NONE;
            f.set_rx_ip_cksum(v);
            assert_eq!(f.rx_ip_cksum(), v);
            assert_eq!(f - F::RX_IP_CKSUM_MASK, base);
            assert_eq!(f & F::RX_IP_CKSUM_MASK, v.flags());
        }
        for v in [
            RxL4Cksum::Unknown,
            RxL4Cksum::Bad,
            RxL4Cksum::Good,
            RxL4Cksum::None,
        ] {
            let mut f = base | F::RX_L4_CKSUM_NONE;
            f.set_rx_l4_cksum(v);
            assert_eq!(f.rx_l4_cksum(), v);
            assert_eq!(f - F::RX_L4_CKSUM_MASK, base);
        }
        for v in [
            RxOuterL4Cksum::Unknown,
            RxOuterL4Cksum::Bad,
            RxOuterL4Cksum::Good,
            RxOuterL4Cksum::Invalid,
        ] {
            let mut f = base | F::RX_OUTER_L4_CKSUM_INVALID;
            f.set_rx_outer_l4_cksum(v);
            assert_eq!(f.rx_outer_l4_cksum(), v);
            assert_eq!(f - F::RX_OUTER_L4_CKSUM_MASK, base);
        }
        for v in [TxL4::NoCksum, TxL4::Tcp, TxL4::Sctp, TxL4::Udp] {
            let mut f = base | F::TX_L4_MASK;
            f.set_tx_l4(v);
            assert_eq!(f.tx_l4(), v);
            assert_eq!(f - F::TX_L4_MASK, base);
        }
        for code in 0..16u8 {
            let v = TxTunnel::from_code(code);
            assert_eq!(v.code(), code);
            let mut f = base | F::TX_TUNNEL_MASK;
            f.set_tx_tunnel(v);
            assert_eq!(f.tx_tunnel(), v);
            assert_eq!(f - F::TX_TUNNEL_MASK, base);
            assert_eq!((f & F::TX_TUNNEL_MASK).bits() >> 45, u64::from(code));
        }
    }
    let named = [
        (TxTunnel::Vxlan, F::TX_TUNNEL_VXLAN),
        (TxTunnel::Gre, F::TX_TUNNEL_GRE),
        (TxTunnel::Ipip, F::TX_TUNNEL_IPIP),
        (TxTunnel::Geneve, F::TX_TUNNEL_GENEVE),
        (TxTunnel::MplsInUdp, F::TX_TUNNEL_MPLSINUDP),
        (TxTunnel::VxlanGpe, F::TX_TUNNEL_VXLAN_GPE),
        (TxTunnel::Gtp, F::TX_TUNNEL_GTP),
        (TxTunnel::Esp, F::TX_TUNNEL_ESP),
        (TxTunnel::Ip, F::TX_TUNNEL_IP),
        (TxTunnel::Udp, F::TX_TUNNEL_UDP),
    ];
    for (t, f) in named {
        assert_eq!(t.flags(), f);
        assert_eq!(f.tx_tunnel(), t);
    }
    let reserved: Vec<u8> = (0..16)
        .filter(|&c| matches!(TxTunnel::from_code(c), TxTunnel::Reserved(_)))
        .collect();
    assert_eq!(reserved, [9, 10, 11, 12, 15]);
    // `Reserved` codes are masked to the field's 4 bits.
    assert_eq!(TxTunnel::Reserved(0x19).code(), 9);
}

#[test]
fn dynflag_registration_is_idempotent_and_named() {
    let a = DynFlag::register("flags_test_idem_a").unwrap();
    let b = DynFlag::register("flags_test_idem_b").unwrap();
    assert_ne!(a.bit(), b.bit());
    assert_eq!(DynFlag::register("flags_test_idem_a").unwrap(), a);
    assert_eq!(DynFlag::lookup("flags_test_idem_a"), Some(a));
    assert_eq!(DynFlag::lookup("flags_test_idem_nope"), None);
    for f in [a, b] {
        assert!((23..=40).contains(&f.bit()));
        assert_eq!(f.mask().bits(), 1 << f.bit());
        assert!(F::from_bits(f.mask().bits()).is_some());
    }
    let set = F::TX_VLAN | a.mask() | b.mask();
    let text = set.to_string();
    assert!(
        text.contains("flags_test_idem_a") && text.contains("flags_test_idem_b"),
        "{text}"
    );
    assert_eq!(text.parse::<F>(), Ok(set));
    assert_eq!(F::from_name("flags_test_idem_b"), Some(b.mask()));
    let names: Vec<_> = set.iter_names().map(|(n, _)| n).collect();
    assert!(names.contains(&"TX_VLAN") && names.contains(&"flags_test_idem_a"));
    assert!(DynFlag::registered().contains(&a));
}

#[test]
fn dynflag_name_errors() {
    assert_eq!(DynFlag::register(""), Err(DynFlagError::EmptyName));
    let long = "x".repeat(MAX_DYN_NAME_LEN + 1);
    assert_eq!(
        DynFlag::register(&long),
        Err(DynFlagError::NameTooLong { len: 64, max: 63 })
    );
    let ok = format!("flags_test_len_{}", "y".repeat(MAX_DYN_NAME_LEN - 15));
    assert_eq!(ok.len(), MAX_DYN_NAME_LEN);
    assert!(DynFlag::register(&ok).is_ok());
    assert_eq!(
        DynFlag::register("flags test space"),
        Err(DynFlagError::BadChar {
            name: "flags test space".into(),
            ch: ' '
        })
    );
    assert!(matches!(
        DynFlag::register("a|b"),
        Err(DynFlagError::BadChar { ch: '|', .. })
    ));
    assert!(matches!(
        DynFlag::register("a,b"),
        Err(DynFlagError::BadChar { ch: ',', .. })
    ));
    for reserved in ["RX_VLAN", "RTE_MBUF_F_TX_IPV4", "TX_L4_NO_CKSUM", "0x10"] {
        assert_eq!(
            DynFlag::register(reserved),
            Err(DynFlagError::ReservedName {
                name: reserved.into()
            })
        );
    }
    assert_eq!(DynFlag::lookup("RX_VLAN"), None);
}

#[test]
fn concurrent_dynflag_registration_gives_one_bit() {
    // Only 18 bits exist per process and the other tests take 3: 4 rounds.
    for round in 0..4 {
        let name = format!("flags_test_race_{round}");
        let barrier = Arc::new(Barrier::new(2));
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (name, barrier) = (name.clone(), Arc::clone(&barrier));
                thread::spawn(move || {
                    barrier.wait();
                    DynFlag::register(&name)
                })
            })
            .collect();
        let got: Vec<DynFlag> = handles
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect();
        assert_eq!(got[0], got[1], "round {round}");
        assert_eq!(
            DynFlag::registered()
                .iter()
                .filter(|f| f.name() == name)
                .count(),
            1
        );
    }
}

/// Child-process part of `dynflag_bits_run_out_after_18`: runs alone in a
/// fresh process, so the registry starts empty.
#[test]
#[ignore = "run by dynflag_bits_run_out_after_18 in a child process"]
fn child_fill_all_dynflag_bits() {
    if !in_child() {
        return;
    }
    assert!(
        DynFlag::registered().is_empty(),
        "the child must start with an empty registry"
    );
    let flags: Vec<DynFlag> = (0..18)
        .map(|i| DynFlag::register(&format!("flags_child_{i}")).unwrap())
        .collect();
    // Lowest free bit first: 23, 24, ..., 40.
    let bits: Vec<u32> = flags.iter().map(|f| f.bit()).collect();
    assert_eq!(bits, (23..=40).collect::<Vec<_>>());
    assert_eq!(
        DynFlag::register("flags_child_18"),
        Err(DynFlagError::NoFreeBit {
            name: "flags_child_18".into(),
            registered: 18
        })
    );
    // Registered names still resolve to their bit.
    assert_eq!(DynFlag::register("flags_child_5").unwrap().bit(), 28);
    let all = flags.iter().fold(F::empty(), |acc, f| acc | f.mask());
    assert_eq!(all, F::DYN_MASK);
    assert_eq!(all.to_string().parse::<F>(), Ok(all));
    assert!(!all.to_string().contains("0x"));
}

#[test]
fn dynflag_bits_run_out_after_18() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_fill_all_dynflag_bits",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
