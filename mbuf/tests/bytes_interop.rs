//! `bytes` interop: a single-segment mbuf as `Bytes` without a copy (freed
//! with the last `Bytes`, on whichever thread), a chain refused and handed
//! back unchanged, and `MbufReader` as a `Buf` across a chain (empty
//! segments included) against the packet's bytes.

mod common;

use bytes::Buf;
use common::{anon, assert_full, chain_of, mbuf_with, pattern, snapshot, Rng};

#[test]
fn one_segment_becomes_bytes_without_a_copy() {
    let pool = anon(4);
    let mut m = mbuf_with(&pool, b"0123456789");
    m.adj(2).unwrap();
    let addr = m.data().as_ptr();
    assert_eq!(AsRef::<[u8]>::as_ref(&m), b"23456789");
    let b = m.into_bytes().unwrap();
    assert_eq!(b.as_ptr(), addr, "no copy");
    assert_eq!(&b[..], b"23456789");
    let parts: Vec<bytes::Bytes> = (0..4).map(|i| b.slice(2 * i..2 * i + 2)).collect();
    drop(b);
    assert_eq!(pool.in_use_count(), 1, "held by the slices");
    let t = std::thread::spawn(move || {
        assert_eq!(&parts[3][..], b"89");
        drop(parts); // the mbuf is freed here, on this thread
    });
    t.join().unwrap();
    assert_full(&[&pool]);
}

#[test]
fn a_chain_is_handed_back_unchanged() {
    let pool = anon(4);
    let m = chain_of(&pool, &[3, 4]);
    let before = snapshot(&m);
    let m = m.into_bytes().unwrap_err();
    assert_eq!(snapshot(&m), before);
    // A clone's bytes are the original's, shared read-only.
    let orig = mbuf_with(&pool, b"shared");
    let c = orig.clone_in(&pool).unwrap();
    let b = c.into_bytes().unwrap();
    assert_eq!(b.as_ptr(), orig.data().as_ptr());
    assert_eq!(orig.refcnt(), 2);
    drop(b);
    assert_eq!(orig.refcnt(), 1);
    drop((m, orig));
    assert_full(&[&pool]);
}

/// Random reads through the `Buf` (chunks, single bytes, words, copies,
/// advances, also past the end) of random chains match the packet's bytes.
#[test]
fn reader_matches_the_bytes() {
    let pool = anon(64);
    common::with_seeds("PKTMEM_MBUF_READER_SEED", &[7, 8, 9], |seed| {
        let mut rng = Rng::new(seed);
        for _ in 0..200 {
            let lens: Vec<usize> = (0..rng.range(1, 8))
                .map(|_| {
                    if rng.chance(1, 4) {
                        0
                    } else {
                        rng.range(1, 40)
                    }
                })
                .collect();
            let m = chain_of(&pool, &lens);
            let all: Vec<u8> = (0..m.pkt_len()).map(pattern).collect();
            let mut r = m.reader();
            let mut pos = 0;
            while r.has_remaining() {
                assert_eq!(r.remaining(), all.len() - pos);
                let chunk = r.chunk();
                assert!(!chunk.is_empty(), "a chunk while bytes remain");
                assert_eq!(chunk, &all[pos..pos + chunk.len()]);
                match rng.below(4) {
                    0 => {
                        assert_eq!(r.get_u8(), all[pos]);
                        pos += 1;
                    }
                    1 if all.len() - pos >= 4 => {
                        let want = u32::from_be_bytes(all[pos..pos + 4].try_into().unwrap());
                        assert_eq!(r.get_u32(), want);
                        pos += 4;
                    }
                    2 => {
                        let n = rng.range(0, all.len() - pos);
                        let mut out = vec![0; n];
                        r.copy_to_slice(&mut out);
                        assert_eq!(out, &all[pos..pos + n]);
                        pos += n;
                    }
                    _ => {
                        let n = rng.range(0, all.len() - pos + 3);
                        r.advance(n);
                        pos = (pos + n).min(all.len());
                    }
                }
            }
            assert_eq!(pos, all.len());
            assert!(r.chunk().is_empty());
            r.advance(10); // past the end: stays at the end
            assert_eq!(r.remaining(), 0);
            let mut whole = m.reader();
            assert_eq!(whole.copy_to_bytes(all.len()), &all[..]);
        }
    });
    assert_full(&[&pool]);
}
