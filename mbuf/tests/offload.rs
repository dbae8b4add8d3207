//! TX offload lengths: the packing against DPDK 22.11's layout
//! (`RTE_MBUF_*_LEN_OFS` / `_BITS` and `rte_mbuf_tx_offload`), checked
//! setters, and every validation rule failing and passing (the reference's
//! cases from its `mbuf_autotest`, then the strict rules).

use pktmem_mbuf::flags::OffloadFlags as F;
use pktmem_mbuf::offload::{TxLenError, TxLengths, TxOffload, TxOffloadError, TxOffloadField};

/// DPDK's `rte_mbuf_tx_offload` on a little-endian machine: the reference
/// packing, written from the header's published offsets.
fn dpdk_pack(l: TxLengths) -> u64 {
    u64::from(l.l2_len)
        | u64::from(l.l3_len) << 7
        | u64::from(l.l4_len) << 16
        | u64::from(l.tso_segsz) << 24
        | u64::from(l.outer_l3_len) << 40
        | u64::from(l.outer_l2_len) << 49
}

#[test]
fn layout_matches_dpdk() {
    // (field, offset, bits) from rte_mbuf_core.h.
    let expected = [
        (TxOffloadField::L2Len, 0, 7),
        (TxOffloadField::L3Len, 7, 9),
        (TxOffloadField::L4Len, 16, 8),
        (TxOffloadField::TsoSegsz, 24, 16),
        (TxOffloadField::OuterL3Len, 40, 9),
        (TxOffloadField::OuterL2Len, 49, 7),
    ];
    assert_eq!(TxOffloadField::ALL.map(|f| f), expected.map(|(f, _, _)| f));
    for (field, shift, width) in expected {
        assert_eq!((field.shift(), field.width()), (shift, width), "{field}");
        assert_eq!(u32::from(field.max()), (1u32 << width) - 1, "{field}");
        // The field's maximum lands on exactly its bits.
        let mut t = TxOffload::new();
        t.set(field, field.max()).unwrap();
        assert_eq!(t.bits(), ((1u64 << width) - 1) << shift, "{field}");
    }
    // 56 bits used, the top 8 unused (RTE_MBUF_TXOFLD_UNUSED_BITS).
    let all_max = TxOffloadField::ALL
        .iter()
        .fold(TxOffload::new(), |mut t, &f| {
            t.set(f, f.max()).unwrap();
            t
        });
    assert_eq!(all_max.bits(), (1u64 << 56) - 1);
}

/// A deterministic generator (xorshift).
fn randoms(n: usize) -> impl Iterator<Item = u64> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n).map(move |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}

#[test]
fn pack_unpack_round_trip() {
    for r in randoms(10_000) {
        let l = TxLengths {
            l2_len: (r & 0x7F) as u16,
            l3_len: ((r >> 7) & 0x1FF) as u16,
            l4_len: ((r >> 16) & 0xFF) as u16,
            tso_segsz: (r >> 24) as u16,
            outer_l3_len: ((r >> 40) & 0x1FF) as u16,
            outer_l2_len: ((r >> 49) & 0x7F) as u16,
        };
        let t = TxOffload::pack(l).unwrap();
        assert_eq!(t.bits(), dpdk_pack(l));
        assert_eq!(t.unpack(), l);
        assert_eq!(TxOffload::from_bits(t.bits()), t);
        assert_eq!(
            (
                t.l2_len(),
                t.l3_len(),
                t.l4_len(),
                t.tso_segsz(),
                t.outer_l3_len(),
                t.outer_l2_len()
            ),
            (
                l.l2_len,
                l.l3_len,
                l.l4_len,
                l.tso_segsz,
                l.outer_l3_len,
                l.outer_l2_len
            )
        );
        // Any word unpacks to its fields; the unused top byte is kept.
        let raw = TxOffload::from_bits(r);
        assert_eq!(
            TxOffload::pack(raw.unpack()).unwrap().bits(),
            r & ((1 << 56) - 1)
        );
        assert_eq!(raw.bits(), r);
    }
}

#[test]
fn setters_check_the_width_and_touch_only_their_field() {
    for field in TxOffloadField::ALL {
        let mut t = TxOffload::from_bits(u64::MAX);
        // Clearing a field leaves every other bit set.
        t.set(field, 0).unwrap();
        assert_eq!(
            t.bits(),
            !(u64::from(field.max()) << field.shift()),
            "{field}"
        );
        if field == TxOffloadField::TsoSegsz {
            continue; // every u16 fits
        }
        let before = t;
        let too_big = field.max() + 1;
        assert_eq!(
            t.set(field, too_big),
            Err(TxLenError::FieldTooLarge {
                field,
                value: too_big,
                max: field.max()
            })
        );
        assert_eq!(
            t.set(field, u16::MAX),
            Err(TxLenError::FieldTooLarge {
                field,
                value: u16::MAX,
                max: field.max()
            })
        );
        assert_eq!(t, before, "a failed set changed {field}");
    }
    let mut t = TxOffload::new();
    assert_eq!(t.set_l2_len(127), Ok(()));
    assert_eq!(t.set_l3_len(511), Ok(()));
    assert_eq!(t.set_l4_len(255), Ok(()));
    assert_eq!(t.set_outer_l3_len(511), Ok(()));
    assert_eq!(t.set_outer_l2_len(127), Ok(()));
    t.set_tso_segsz(65535);
    assert_eq!(t.bits(), (1 << 56) - 1);
    assert!(t.set_l2_len(128).is_err());
    assert!(t.set_l3_len(512).is_err());
    assert!(t.set_l4_len(256).is_err());
    assert!(t.set_outer_l3_len(512).is_err());
    assert!(t.set_outer_l2_len(128).is_err());
    let e = TxOffload::pack(TxLengths {
        outer_l2_len: 200,
        ..TxLengths::default()
    })
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "outer_l2_len 200 does not fit its 7 bits (max 127)"
    );
}

fn with_segsz(segsz: u16) -> TxOffload {
    let mut t = TxOffload::new();
    t.set_tso_segsz(segsz);
    t
}

/// The reference's `test_mbuf_validate_tx_offload_one` cases: flags, TSO
/// segment size, expected result.
#[test]
fn reference_cases() {
    let cases: [(F, u16, Result<(), TxOffloadError>); 11] = [
        (
            F::TX_IP_CKSUM | F::TX_IPV6,
            0,
            Err(TxOffloadError::IpCksumOnIpv6),
        ),
        (
            F::TX_L4_MASK,
            0,
            Err(TxOffloadError::NoIpType {
                requested: F::TX_L4_MASK,
            }),
        ),
        (
            F::TX_L4_MASK | F::TX_TCP_SEG,
            0,
            Err(TxOffloadError::NoIpType {
                requested: F::TX_L4_MASK | F::TX_TCP_SEG,
            }),
        ),
        (F::TX_L4_MASK | F::TX_IPV6, 0, Ok(())),
        (
            F::TX_IPV4 | F::TX_TCP_SEG,
            0,
            Err(TxOffloadError::TsoWithoutSegsz),
        ),
        (
            F::TX_IPV4 | F::TX_TCP_SEG,
            512,
            Err(TxOffloadError::TsoIpv4WithoutIpCksum),
        ),
        (F::TX_IPV4 | F::TX_TCP_SEG | F::TX_IP_CKSUM, 512, Ok(())),
        (F::TX_IPV6 | F::TX_TCP_SEG, 512, Ok(())),
        (
            F::TX_IPV6 | F::TX_OUTER_IP_CKSUM,
            512,
            Err(TxOffloadError::OuterIpCksumWithoutOuterIpv4),
        ),
        (F::TX_OUTER_IP_CKSUM | F::TX_OUTER_IPV4, 512, Ok(())),
        (F::empty(), 512, Ok(())),
    ];
    for (flags, segsz, want) in cases {
        assert_eq!(
            with_segsz(segsz).validate(flags),
            want,
            "{flags} segsz {segsz}"
        );
    }
    // Only TX flags matter: RX flags and dynamic bits alone ask for nothing.
    assert_eq!(TxOffload::new().validate(F::RX_MASK | F::DYN_MASK), Ok(()));
    // The first broken rule in the reference's order is reported.
    assert_eq!(
        TxOffload::new()
            .validate(F::TX_IP_CKSUM | F::TX_IPV6 | F::TX_OUTER_IP_CKSUM | F::TX_TCP_SEG),
        Err(TxOffloadError::IpCksumOnIpv6)
    );
}

fn lens(l2: u16, l3: u16, l4: u16, segsz: u16, ol3: u16, ol2: u16) -> TxOffload {
    TxOffload::pack(TxLengths {
        l2_len: l2,
        l3_len: l3,
        l4_len: l4,
        tso_segsz: segsz,
        outer_l3_len: ol3,
        outer_l2_len: ol2,
    })
    .unwrap()
}

/// Every strict rule failing (and the reference accepting the same
/// request, so the strict rules are really extra), then the fixed request
/// passing both.
#[test]
#[allow(clippy::too_many_lines)] // one table of cases
fn strict_rules() {
    let full = lens(14, 20, 20, 1400, 20, 14);
    let cases: [(F, TxOffload, TxOffloadError, F, TxOffload); 11] = [
        (
            F::TX_IP_CKSUM,
            full,
            TxOffloadError::IpCksumWithoutIpv4,
            F::TX_IP_CKSUM | F::TX_IPV4,
            full,
        ),
        (
            F::TX_IPV4 | F::TX_IPV6 | F::TX_UDP_CKSUM,
            full,
            TxOffloadError::BothIpTypes,
            F::TX_IPV6 | F::TX_UDP_CKSUM,
            full,
        ),
        (
            F::TX_OUTER_IPV4 | F::TX_OUTER_IPV6 | F::TX_OUTER_UDP_CKSUM,
            full,
            TxOffloadError::BothOuterIpTypes,
            F::TX_OUTER_IPV6 | F::TX_OUTER_UDP_CKSUM,
            full,
        ),
        (
            F::TX_UDP_SEG | F::TX_IPV4,
            lens(14, 20, 8, 0, 0, 0),
            TxOffloadError::UdpSegWithoutSegsz,
            F::TX_UDP_SEG | F::TX_IPV4,
            lens(14, 20, 8, 1400, 0, 0),
        ),
        (
            F::TX_OUTER_UDP_CKSUM,
            full,
            TxOffloadError::NoOuterIpType,
            F::TX_OUTER_UDP_CKSUM | F::TX_OUTER_IPV4,
            full,
        ),
        (
            F::TX_IPV4 | F::TX_IP_CKSUM,
            lens(14, 0, 0, 0, 0, 0),
            TxOffloadError::MissingLength {
                field: TxOffloadField::L3Len,
                needed_by: F::TX_IP_CKSUM,
            },
            F::TX_IPV4 | F::TX_IP_CKSUM,
            lens(14, 20, 0, 0, 0, 0),
        ),
        (
            F::TX_IPV6 | F::TX_TCP_CKSUM,
            lens(14, 0, 0, 0, 0, 0),
            TxOffloadError::MissingLength {
                field: TxOffloadField::L3Len,
                needed_by: F::TX_TCP_CKSUM,
            },
            F::TX_IPV6 | F::TX_TCP_CKSUM,
            lens(14, 40, 0, 0, 0, 0),
        ),
        (
            F::TX_IPV6 | F::TX_TCP_SEG,
            lens(14, 40, 0, 1400, 0, 0),
            TxOffloadError::MissingLength {
                field: TxOffloadField::L4Len,
                needed_by: F::TX_TCP_SEG,
            },
            F::TX_IPV6 | F::TX_TCP_SEG,
            lens(14, 40, 20, 1400, 0, 0),
        ),
        (
            F::TX_IPV4 | F::TX_UDP_SEG,
            lens(14, 20, 0, 1400, 0, 0),
            TxOffloadError::MissingLength {
                field: TxOffloadField::L4Len,
                needed_by: F::TX_UDP_SEG,
            },
            F::TX_IPV4 | F::TX_UDP_SEG,
            lens(14, 20, 8, 1400, 0, 0),
        ),
        (
            F::TX_OUTER_IPV4 | F::TX_OUTER_IP_CKSUM,
            lens(14, 20, 0, 0, 0, 14),
            TxOffloadError::MissingLength {
                field: TxOffloadField::OuterL3Len,
                needed_by: F::TX_OUTER_IP_CKSUM,
            },
            F::TX_OUTER_IPV4 | F::TX_OUTER_IP_CKSUM,
            lens(14, 20, 0, 0, 20, 14),
        ),
        (
            F::TX_OUTER_IPV6 | F::TX_OUTER_UDP_CKSUM,
            lens(14, 20, 0, 0, 0, 14),
            TxOffloadError::MissingLength {
                field: TxOffloadField::OuterL3Len,
                needed_by: F::TX_OUTER_UDP_CKSUM,
            },
            F::TX_OUTER_IPV6 | F::TX_OUTER_UDP_CKSUM,
            lens(14, 20, 0, 0, 40, 14),
        ),
    ];
    for (flags, t, err, fixed_flags, fixed) in cases {
        assert_eq!(t.validate(flags), Ok(()), "the reference accepts {flags}");
        assert_eq!(t.validate_strict(flags), Err(err), "{flags}");
        assert_eq!(fixed.validate(fixed_flags), Ok(()), "{fixed_flags}");
        assert_eq!(fixed.validate_strict(fixed_flags), Ok(()), "{fixed_flags}");
    }
    // Strict runs the reference's rules first.
    assert_eq!(
        full.validate_strict(F::TX_IP_CKSUM | F::TX_IPV6),
        Err(TxOffloadError::IpCksumOnIpv6)
    );
    assert_eq!(
        full.validate_strict(F::TX_TCP_CKSUM),
        Err(TxOffloadError::NoIpType {
            requested: F::TX_TCP_CKSUM
        })
    );
    // l2_len 0 is fine (IP-only ports), also for TSO.
    let tso = F::TX_IPV4 | F::TX_IP_CKSUM | F::TX_TCP_SEG;
    assert_eq!(lens(0, 20, 20, 1400, 0, 0).validate_strict(tso), Ok(()));
    // Nothing requested, nothing to check.
    assert_eq!(TxOffload::new().validate_strict(F::RX_VLAN), Ok(()));
}

#[test]
fn errors_display_their_numbers() {
    let e = TxOffloadError::MissingLength {
        field: TxOffloadField::L4Len,
        needed_by: F::TX_TCP_SEG,
    };
    assert_eq!(e.to_string(), "TX_TCP_SEG needs l4_len, which is 0");
    let e = TxOffloadError::NoIpType {
        requested: F::TX_UDP_CKSUM | F::TX_TCP_SEG,
    };
    assert_eq!(
        e.to_string(),
        "TX_UDP_CKSUM TX_TCP_SEG requested without TX_IPV4 or TX_IPV6"
    );
}
