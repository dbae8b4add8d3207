//! Two threads moving millions of elements through pktmem rings, with the
//! rate: first a single-producer / single-consumer pair of handles, then a
//! shared multi-producer / multi-consumer ring. The consumer checks that
//! every element arrived, in order, exactly once.
//!
//! ```sh
//! cargo run --release --example ring_pingpong
//! PKTMEM_EXAMPLE_SHORT=1 cargo run --release --example ring_pingpong   # a quick run
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use pktmem::ring::Ring;

const BURST: usize = 32;

/// Streams `0..total` from a producer thread to this thread; returns
/// elements per second, or a description of the first element that was
/// missing, duplicated or out of order.
fn stream<P, C>(total: u64, put: P, get: C) -> Result<f64, String>
where
    P: Fn(&[u64]) -> usize + Send + 'static,
    C: Fn(&mut [u64]) -> usize,
{
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut buf = [0u64; BURST];
        let mut next = 0u64;
        while next < total {
            let k = (total - next).min(BURST as u64) as usize;
            for (i, v) in buf[..k].iter_mut().enumerate() {
                *v = next + i as u64;
            }
            let n = put(&buf[..k]);
            if n == 0 {
                std::hint::spin_loop();
            }
            next += n as u64;
        }
    });
    let mut out = [0u64; BURST];
    let mut expect = 0u64;
    let mut bad = None;
    while expect < total {
        let n = get(&mut out);
        if n == 0 {
            std::hint::spin_loop();
        }
        for &v in &out[..n] {
            if v != expect && bad.is_none() {
                bad = Some(format!("expected element {expect}, got {v}"));
            }
            expect += 1;
        }
    }
    producer
        .join()
        .map_err(|_| "producer thread panicked".to_string())?;
    let secs = start.elapsed().as_secs_f64();
    match bad {
        Some(b) => Err(b),
        None => Ok(total as f64 / secs),
    }
}

fn report(name: &str, total: u64, r: Result<f64, String>) -> bool {
    match r {
        Ok(rate) => {
            println!(
                "{name:<28} {total:>10} elements  {:>8.1} M elements/s  {:>6.2} ns/element  (all arrived, in order, once)",
                rate / 1e6,
                1e9 / rate
            );
            true
        }
        Err(e) => {
            eprintln!("{name}: FAILED: {e}");
            false
        }
    }
}

fn main() -> ExitCode {
    let short = std::env::var("PKTMEM_EXAMPLE_SHORT").is_ok_and(|v| v == "1");
    let total: u64 = if short { 200_000 } else { 20_000_000 };
    println!(
        "pktmem ring: {total} u64 elements between two threads, bursts of {BURST}, ring of 4096 slots"
    );

    let (p, c) = match Ring::<u64>::new(4096) {
        Ok(r) => r.into_spsc(),
        Err(e) => {
            eprintln!("could not build the ring: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ok_spsc = report(
        "SP/SC (Producer/Consumer)",
        total,
        stream(total, move |s| p.enqueue_burst(s), |o| c.dequeue_burst(o)),
    );

    let ring = match Ring::<u64>::new(4096) {
        Ok(r) => Arc::new(r),
        Err(e) => {
            eprintln!("could not build the ring: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r2 = Arc::clone(&ring);
    let ok_mpmc = report(
        "MP/MC (shared Ring)",
        total,
        stream(
            total,
            move |s| r2.enqueue_burst(s),
            |o| ring.dequeue_burst(o),
        ),
    );

    if ok_spsc && ok_mpmc {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
