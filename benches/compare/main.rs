//! The `compare` bench: prints the rows defined in `docs/benchmarks.md`,
//! one line each, exactly `row <name> <value> <unit>`, for a side-by-side
//! harness to set beside the same loops run on the reference runtime (DPDK).
//!
//! Each area has its own module (`ring.rs`, `hugemem.rs`, ...) with a
//! `run(iters)` function; time is measured around a whole loop and divided by
//! the number of operations. Arguments cargo passes (`--bench`) are ignored.
//! `COMPARE_ITERS` sets the iteration count (default 2,000,000).
//!
//! The main thread runs on cpu 0, as the reference's main lcore does (its
//! EAL pins it to the first core of `-l 0-1`): the two vCPUs of a virtual
//! machine need not be equally fast, and the one-thread rows must not
//! depend on where the scheduler happened to start the process.

use std::time::Instant;

mod forward;
mod hugemem;
mod mbuf;
mod mempool;
mod ring;
mod shared;

/// Prints one row in the format `compare` parses.
pub fn row(name: &str, value: f64, unit: &str) {
    println!("row {name} {value:.3} {unit}");
}

/// Pins the calling thread to `cpu`; a failure only costs precision.
pub fn pin(cpu: usize) {
    // SAFETY: `set` is a plain bitmask we own, initialised by CPU_ZERO, and
    // sched_setaffinity only reads `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("compare: could not pin a thread to cpu {cpu}; rows are unpinned");
        }
    }
}

/// Nanoseconds since `start`, divided by `ops`.
pub fn ns_per(start: Instant, ops: u64) -> f64 {
    start.elapsed().as_nanos() as f64 / ops as f64
}

fn main() {
    // The re-executed peer of `shared_ring_2proc_burst32` prints no rows.
    if shared::peer_main() {
        return;
    }
    let iters: u64 = std::env::var("COMPARE_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    pin(0);
    ring::run(iters);
    hugemem::run(iters);
    mempool::run(iters);
    mbuf::run(iters);
    forward::run(iters);
    shared::run(iters);
}
