//! Round trips, truncations and field checks of every message kind.

use super::*;

fn all() -> Vec<Message> {
    vec![
        Message::Hello {
            min_version: 1,
            max_version: 3,
            pid: 7,
            role: "w-1.a_b".into(),
        },
        Message::Refuse {
            reason: RefuseReason::RoleTaken,
            ours_min: 1,
            ours_max: 1,
            text: "held by pid 9 ✓".into(),
        },
        Message::Welcome {
            version: 1,
            role_slot: 2,
            generation: 5,
            exporter_pid: 9,
            iova_mode: 1,
            lists: 3,
        },
        Message::List {
            list: 1,
            page_size: 2 << 20,
            base_va: 0x7f00_0000_0000,
            reserve_len: 64 << 30,
        },
        Message::Map {
            seq: 3,
            list: 1,
            first_page: 7,
            iovas: vec![0x20_0000, u64::MAX],
        },
        Message::Unmap {
            seq: 4,
            list: 1,
            first_page: 7,
            count: 2,
        },
        Message::Publish {
            seq: 5,
            name: "shm/port/a".into(),
            payload: vec![1, 2, 3],
        },
        Message::Withdraw {
            seq: 6,
            name: "x".into(),
        },
        Message::Ready { seq: 7 },
        Message::Ack { seq: 7 },
        Message::Bye,
    ]
}

#[test]
fn every_message_round_trips_and_every_truncation_is_refused() {
    for m in all() {
        let b = m.encode();
        assert_eq!(Message::decode(&b).as_ref(), Ok(&m));
        for cut in 0..b.len() {
            assert!(Message::decode(&b[..cut]).is_err(), "{m:?} cut at {cut}");
        }
        // One byte more than the header says.
        let mut long = b.clone();
        long.push(0);
        assert!(Message::decode(&long).is_err(), "{m:?} + 1");
    }
}

#[test]
fn header_fields_are_checked() {
    let mut b = Message::Ack { seq: 1 }.encode();
    b[0] ^= 1;
    assert!(matches!(
        Message::decode(&b),
        Err(ProtocolError::BadMagic { .. })
    ));
    let mut b = Message::Ack { seq: 1 }.encode();
    b[6] = 99;
    assert_eq!(
        Message::decode(&b),
        Err(ProtocolError::UnknownKind { kind: 99 })
    );
    let b = Message::Ack { seq: 1 }.encode_version(2);
    assert!(matches!(
        Message::decode(&b),
        Err(ProtocolError::BadVersion { found: 2, .. })
    ));
    // Hello is readable whatever its header version.
    let h = Message::Hello {
        min_version: 2,
        max_version: 2,
        pid: 1,
        role: "r".into(),
    };
    assert_eq!(Message::decode(&h.encode_version(2)), Ok(h));
}

#[test]
fn fields_are_validated() {
    let list = |page_size, base_va, reserve_len| {
        Message::decode(
            &Message::List {
                list: 0,
                page_size,
                base_va,
                reserve_len,
            }
            .encode(),
        )
    };
    assert!(list(8192, 0, 8192).is_err());
    assert!(list(4096, 4097, 4096).is_err());
    assert!(list(4096, 4096, 4095).is_err());
    assert!(list(4096, 4096, 0).is_err());
    assert!(list(4096, MAX_VA - 4096, 8192).is_err());
    assert!(list(4096, MAX_VA - 8192, 8192).is_ok());
    let bad_role = Message::Hello {
        min_version: 1,
        max_version: 1,
        pid: 1,
        role: "a b".into(),
    };
    assert!(matches!(
        Message::decode(&bad_role.encode()),
        Err(ProtocolError::Text { field: "role", .. })
    ));
    let mut b = Message::Map {
        seq: 1,
        list: 0,
        first_page: 0,
        iovas: vec![0; 2],
    }
    .encode();
    b[12 + 18] = 3; // count 3, two IOVAs there
    assert!(matches!(
        Message::decode(&b),
        Err(ProtocolError::BodyLength {
            kind: Kind::Map,
            ..
        })
    ));
    const { assert!(MAX_MAP_PAGES * 8 + 22 + HEADER_LEN <= MAX_MESSAGE) };
    const { assert!((MAX_MAP_PAGES + 1) * 8 + 22 + HEADER_LEN > MAX_MESSAGE) };
}
