//! The sanity check (`Mbuf::check`, the reference's `rte_mbuf_check`).
//!
//! The reference corrupts copies of a header (no pool, no buffer address,
//! refcount 0, bad IOVA) and expects the check to panic. Here the header's
//! fields are private and every public operation keeps them consistent, so
//! those states cannot be built through the API; what is tested is what the
//! API guarantees: every state it builds passes (here, and after every step
//! of `differential.rs` and every behaviour of `common/behaviour.rs`; direct
//! segments' buffer address and IOVA are compared with their object's, so
//! a detach restoring the wrong buffer fails it), and each reason the check
//! can give names its numbers.

mod common;

use common::{anon, assert_full, chain_of, mbuf_with, Kind};
use pktmem_mbuf::{ExtBuf, MbufError, PktPool, SanityError};

/// Every kind of mbuf the API makes passes, through a life of operations.
#[test]
fn every_state_the_api_builds_passes() {
    for kind in Kind::ALL {
        let pool = common::pool_of(kind, "sanity", 64, 8, 2048);
        let clones = anon(64);
        let mut m = pool.alloc_default().unwrap();
        m.check().unwrap();
        m.append(100).unwrap().fill(1);
        m.prepend(20).unwrap().fill(2);
        m.adj(5).unwrap();
        m.trim(5).unwrap();
        m.check().unwrap();
        m.chain(chain_of(&pool, &[0, 10, 1000])).unwrap();
        m.check().unwrap();
        let c = m.clone_in(&clones).unwrap();
        c.check().unwrap();
        let c2 = c.clone_in(&clones).unwrap();
        c2.check().unwrap();
        let cp = c2.copy(&pool, 7, 900).unwrap();
        cp.check().unwrap();
        let rest = c.free_first_segment().unwrap();
        rest.check().unwrap();
        drop((c2, rest));
        m.linearize().unwrap();
        m.check().unwrap();
        let mut i = clones.alloc_default().unwrap();
        i.attach(&m).unwrap();
        i.check().unwrap();
        i.detach();
        i.check().unwrap();
        i.attach_extbuf(ExtBuf::from_owner(vec![3u8; 99], None).unwrap())
            .unwrap();
        i.grow_tail(99).unwrap();
        i.check().unwrap();
        let e = i.clone_in(&clones).unwrap();
        e.check().unwrap();
        drop((m, cp, i, e));
        assert_full(&[&pool, &clones]);
    }
}

/// Empty and full buffers, at both ends of the data room.
#[test]
fn edge_geometries_pass() {
    for room in [0usize, 1, 128, 129, 65_535] {
        let r = PktPool::builder(2)
            .data_room(room)
            .build_on(common::provider());
        let Some(pool) = common::big_pool_or_skip("edge_geometries_pass", r) else {
            continue;
        };
        let mut m = pool.alloc_default().unwrap();
        m.check().unwrap();
        let t = m.tailroom();
        m.append(t).unwrap();
        let h = m.headroom();
        m.prepend(h).unwrap();
        assert_eq!(m.data_len(), room);
        m.check().unwrap();
        let mut tail = mbuf_with(&pool, &[]);
        tail.check().unwrap();
        tail.adj(0).unwrap();
        m.chain(tail).unwrap();
        m.check().unwrap();
    }
}

/// Each reason names what is wrong, with the numbers; all convert into the
/// crate's error.
#[test]
fn reasons_carry_their_numbers() {
    let cases: Vec<(SanityError, &[&str])> = vec![
        (SanityError::NoPool, &["pool"]),
        (SanityError::NullBuffer { seg: 3 }, &["segment 3", "null"]),
        (SanityError::BadIova { seg: 2 }, &["segment 2", "IOVA"]),
        (
            SanityError::BadBufferAddress { seg: 5 },
            &["segment 5", "address"],
        ),
        (
            SanityError::BadRefcnt { seg: 1, refcnt: 0 },
            &["segment 1", "refcount 0"],
        ),
        (
            SanityError::DataOutsideBuffer {
                seg: 4,
                data_off: 100,
                data_len: 2000,
                buf_len: 2048,
            },
            &["segment 4", "100", "2000", "2048"],
        ),
        (
            SanityError::SegmentCount {
                nb_segs: 3,
                found: 2,
            },
            &["3", "2"],
        ),
        (
            SanityError::PacketLength {
                pkt_len: 1500,
                sum: 1499,
            },
            &["1500", "1499"],
        ),
    ];
    for (e, words) in cases {
        let s = e.to_string();
        for w in words {
            assert!(s.contains(w), "{e:?} says {s:?}, missing {w:?}");
        }
        let umbrella: MbufError = e.clone().into();
        assert!(matches!(&umbrella, MbufError::Sanity(x) if *x == e));
        assert_eq!(umbrella.to_string(), s);
        assert!(std::error::Error::source(&umbrella).is_some());
    }
}
