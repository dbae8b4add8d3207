//! The `forward_64b_mpps` row of `docs/benchmarks.md`: the pipeline of
//! `examples/forward` (the same code, `pipeline.rs`) with 64-byte frames and
//! no clones: rx writing frames into mbufs, one worker rewriting headers,
//! tx verifying and freeing, rings of 1024 mbufs between them, bursts of
//! 32, a packet pool of 16383 mbufs with caches of 256 on a provider of its
//! own (hugepages when present). `COMPARE_ITERS` packets per run, three
//! runs; the row is the median run's delivered packets per second.
//!
//! The stages are threads that need both cores, so the main thread's pin
//! to cpu 0 is lifted while they run (threads inherit their creator's
//! affinity) and put back afterwards. Every run must pass the example's
//! checks (every packet verified or counted as dropped, pools full), or the
//! bench exits 1.

// The example's progress and report fields the row does not print.
#[allow(dead_code)]
#[path = "../../examples/forward/pipeline.rs"]
mod pipeline;

use pipeline::{Config, Share, Sizes};

use crate::row;

/// Lets the calling thread (and the threads it starts) run on every online
/// cpu; a failure only costs speed.
fn allow_all_cpus() {
    // SAFETY: sysconf only reads a configuration value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let n = usize::try_from(n).unwrap_or(1).max(1);
    // SAFETY: `set` is a plain bitmask we own, initialised by CPU_ZERO, and
    // sched_setaffinity only reads `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        for cpu in 0..n {
            libc::CPU_SET(cpu, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("compare/forward: could not unpin; the pipeline shares one cpu");
        }
    }
}

/// Runs the row.
pub fn run(iters: u64) {
    let cfg = Config {
        packets: iters.max(1),
        sizes: Sizes::Fixed(64),
        clone_share: Share::NONE,
        quiet: true,
        ..Config::default()
    };
    allow_all_cpus();
    let mut mpps = Vec::with_capacity(3);
    for _ in 0..3 {
        let report = pipeline::run(&cfg).unwrap_or_else(|e| {
            eprintln!("compare/forward: {e}");
            std::process::exit(1)
        });
        let problems = report.problems();
        if !problems.is_empty() {
            eprintln!("compare/forward: checks failed: {}", problems.join("; "));
            std::process::exit(1);
        }
        mpps.push(report.mpps());
    }
    crate::pin(0);
    mpps.sort_by(f64::total_cmp);
    row("forward_64b_mpps", mpps[1], "Mpps");
}
