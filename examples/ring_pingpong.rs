//! Two threads moving millions of elements through pktmem rings, with the
//! rate: first a single-producer / single-consumer pair of ends, then a
//! shared multi-producer / multi-consumer ring, then owned values (boxes)
//! through single ends. The consumer checks that every element arrived, in
//! order, exactly once.
//!
//! ```sh
//! cargo run --release --example ring_pingpong
//! PKTMEM_EXAMPLE_SHORT=1 cargo run --release --example ring_pingpong   # a quick run
//! ```

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use pktmem::ring::{Ring, Single};

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

    let built = Ring::<u64>::builder(4096)
        .producer(Single)
        .consumer(Single)
        .build();
    let (p, c) = match built {
        Ok(r) => r.split(),
        Err(e) => {
            eprintln!("could not build the ring: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ok_spsc = report(
        "SP/SC (Single ends)",
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

    let ok_owned = report("owned boxes (Single ends)", total / 4, owned(total / 4));

    if ok_spsc && ok_mpmc && ok_owned {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Streams `0..total` as boxes (owned values) from a producer thread to
/// this thread, moved in bursts from a `Vec` and out into one; every box is
/// dropped once, on the consumer side.
fn owned(total: u64) -> Result<f64, String> {
    let (p, c) = Ring::<Box<u64>>::builder(4096)
        .producer(Single)
        .consumer(Single)
        .build()
        .map_err(|e| e.to_string())?
        .split();
    let start = Instant::now();
    let producer = std::thread::spawn(move || {
        let mut batch: Vec<Box<u64>> = Vec::with_capacity(BURST);
        let mut next = 0u64;
        while next < total || !batch.is_empty() {
            while batch.len() < BURST && next < total {
                batch.push(Box::new(next));
                next += 1;
            }
            if p.enqueue_burst_from(&mut batch) == 0 {
                std::hint::spin_loop();
            }
        }
    });
    let mut out: Vec<Box<u64>> = Vec::with_capacity(BURST);
    let mut expect = 0u64;
    let mut bad = None;
    while expect < total {
        if c.dequeue_burst_into(&mut out, BURST) == 0 {
            std::hint::spin_loop();
        }
        for b in out.drain(..) {
            if *b != expect && bad.is_none() {
                bad = Some(format!("expected box {expect}, got {b}"));
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
