//! The RTS head-tail distance limit: settings (the default, explicit
//! limits, 0 serialising a side) and conservation under threads with tight
//! limits.

// Test code names ends, guards and buffers `p`, `c`, `g`, `v` as the
// crate docs do, and keeps each randomised sequence in one function.
#![allow(
    clippy::many_single_char_names,
    clippy::similar_names,
    clippy::too_many_lines
)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pktmem_ring::{Multi, Ring, Rts};

#[test]
fn max_distance_settings() {
    let r = Ring::<u64>::builder(4096)
        .dpdk_sizing()
        .producer(Rts)
        .consumer(Rts)
        .build()
        .unwrap();
    assert_eq!(
        (r.producer_max_distance(), r.consumer_max_distance()),
        (4095 / 8, 4095 / 8),
        "DPDK's default: capacity / 8"
    );
    let r = Ring::<u64>::builder(1000)
        .producer(Rts)
        .consumer(Multi)
        .producer_max_distance(u32::MAX)
        .build()
        .unwrap();
    assert_eq!(r.producer_max_distance(), u32::MAX);
    // (A consumer limit on this multi-thread consumer side does not compile.)
    // A limit of 0 serialises the side but a lone thread still gets through,
    // bulk and burst, across the index wrap.
    let r = Ring::<u64>::builder(8)
        .dpdk_sizing()
        .producer(Rts)
        .consumer(Rts)
        .producer_max_distance(0)
        .consumer_max_distance(0)
        .initial_index(u32::MAX - 3)
        .build()
        .unwrap();
    for i in 0..20u64 {
        r.enqueue_bulk(&[i, i + 1]).unwrap();
        assert_eq!(r.enqueue_burst(&[i + 2; 9]), 5);
        let mut out = [0; 7];
        assert_eq!(r.dequeue_burst(&mut out), 7);
        assert_eq!(out[..3], [i, i + 1, i + 2]);
    }
}

/// Producers and consumers on RTS sides with tight distance limits: every
/// value sent arrives exactly once (sums and counts match), and the run
/// makes progress: each producer sends its share, which a thread waiting
/// forever on a distance that never shrinks would prevent. The deadline only
/// bounds a hang; a loaded machine makes the run slower, not failed.
fn rts_limited(prod_max: u32, cons_max: u32) {
    const THREADS: usize = 2;
    const EACH: u64 = 2_000;
    const HANG: Duration = Duration::from_secs(60);
    let ring = Arc::new(
        Ring::<u64>::builder(64)
            .producer(Rts)
            .consumer(Rts)
            .producer_max_distance(prod_max)
            .consumer_max_distance(cons_max)
            .build()
            .unwrap(),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let sent_n = Arc::new(AtomicU64::new(0));
    let got = Arc::new(AtomicU64::new(0));
    let got_n = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(2 * THREADS));
    let deadline = Instant::now() + HANG;
    let mut hs = Vec::new();
    for t in 0..THREADS as u64 {
        let (r, sum, count, go) = (ring.clone(), sent.clone(), sent_n.clone(), start.clone());
        hs.push(std::thread::spawn(move || {
            go.wait();
            let mut i = 0u64;
            while i < EACH && Instant::now() < deadline {
                let k = (1 + (i % 5)).min(EACH - i);
                let vals: Vec<u64> = (0..k).map(|j| (t << 40) + i + j + 1).collect();
                let n = r.enqueue_burst(&vals);
                sum.fetch_add(vals[..n].iter().sum(), Ordering::Relaxed);
                count.fetch_add(n as u64, Ordering::Relaxed);
                i += n as u64;
            }
        }));
        let (r, sum, count, go) = (ring.clone(), got.clone(), got_n.clone(), start.clone());
        hs.push(std::thread::spawn(move || {
            go.wait();
            let mut out = [0u64; 4];
            // Relaxed: only a stop condition; the totals are read after join.
            while count.load(Ordering::Relaxed) < THREADS as u64 * EACH && Instant::now() < deadline
            {
                let n = r.dequeue_burst(&mut out[..=(t as usize % 4)]);
                sum.fetch_add(out[..n].iter().sum(), Ordering::Relaxed);
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
    let mut out = [0u64; 64];
    let n = ring.dequeue_burst(&mut out);
    assert!(ring.is_empty());
    got.fetch_add(out[..n].iter().sum(), Ordering::Relaxed);
    got_n.fetch_add(n as u64, Ordering::Relaxed);
    let moved = sent_n.load(Ordering::Relaxed);
    assert_eq!(
        moved,
        THREADS as u64 * EACH,
        "limits {prod_max}/{cons_max}: producers stalled for {HANG:?}"
    );
    assert_eq!(got_n.load(Ordering::Relaxed), moved, "count conserved");
    assert_eq!(
        got.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
        "values conserved"
    );
}

#[test]
fn rts_limit_zero_conserves() {
    rts_limited(0, 0);
}

#[test]
fn rts_limit_one_conserves() {
    rts_limited(1, 1);
}

#[test]
fn rts_limit_mixed_conserves() {
    rts_limited(2, u32::MAX);
    rts_limited(u32::MAX, 3);
}
