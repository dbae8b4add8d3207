//! The `compare` bench: prints the rows defined in `../shared/bench/ROWS.md`,
//! one line each, exactly `row <name> <value> <unit>`, for
//! `../shared/bench/compare` to set beside the reference runtime.
//!
//! Each area has its own module (`ring.rs`, `hugemem.rs`, ...) with a
//! `run(iters)` function; time is measured around a whole loop and divided by
//! the number of operations. Arguments cargo passes (`--bench`) are ignored.
//! `COMPARE_ITERS` sets the iteration count (default 2,000,000).

use std::time::Instant;

mod hugemem;
mod mempool;
mod ring;

/// Prints one row in the format `compare` parses.
pub fn row(name: &str, value: f64, unit: &str) {
    println!("row {name} {value:.3} {unit}");
}

/// Nanoseconds since `start`, divided by `ops`.
pub fn ns_per(start: Instant, ops: u64) -> f64 {
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn main() {
    let iters: u64 = std::env::var("COMPARE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    ring::run(iters);
    hugemem::run(iters);
    mempool::run(iters);
    let _ = iters;
}
