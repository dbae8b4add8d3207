//! The main job: a forwarding pipeline of threads connected by rings of
//! owned packet buffers. rx writes synthetic Ethernet/IPv4/UDP frames
//! (64 to 9000 bytes; the long ones as chains of segments) into mbufs as a
//! NIC would, workers rewrite the headers (swap MACs, TTL − 1, IPv4
//! checksum) and clone a share of the packets for a mirror port, tx and the
//! mirror verify every byte and free the packets. Then a summary: rate,
//! drops and their causes, pools, caches, memory, and that every mbuf came
//! back (the exit status is 1 when any check fails).
//!
//! ```sh
//! cargo run --release --example forward
//! cargo run --release --example forward -- --sizes 64 --clone-share 0   # the bench's setting
//! cargo run --release --example forward -- --help
//! PKTMEM_EXAMPLE_SHORT=1 cargo run --release --example forward         # a quick run (CI)
//! ```
//!
//! The pipeline itself is `pipeline.rs` (`run(&Config) -> Result<Report, _>`);
//! the `compare` and `forward` benches run the same code.

// `run` and `Share::NONE` are for the benches, which share this file.
#[allow(dead_code)]
mod pipeline;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use pktmem::hugemem::IovaMode;

use pipeline::{Config, Report, Share, Sizes};

/// A forwarding pipeline on pktmem: rx → workers → tx (+ mirror), rings of
/// owned mbufs between threads.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Packets to generate [default: 2000000; 50000 with `PKTMEM_EXAMPLE_SHORT=1`].
    #[arg(long)]
    packets: Option<u64>,
    /// Mbufs in the packet pool.
    #[arg(long, default_value_t = 16_383)]
    pool_size: usize,
    /// Mbufs in the clone pool (the mirror's indirect mbufs).
    #[arg(long, default_value_t = 16_383)]
    clone_pool_size: usize,
    /// Per-thread cache size of the pools.
    #[arg(long, default_value_t = 256)]
    cache: usize,
    /// Packets per burst.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Slots of each ring.
    #[arg(long, default_value_t = 1024)]
    ring_size: usize,
    /// Worker threads (1 fits a 2-core machine: rx, worker and tx busy).
    #[arg(long, default_value_t = 1)]
    workers: usize,
    /// Share of packets cloned to the mirror port: `n/d`, or 0 for none.
    #[arg(long, default_value = "1/8")]
    clone_share: Share,
    /// Frame sizes: `mix`, a length (`64`), a range (`64-1518`) or a list
    /// (`64,1518,9000`), each 64..=9000 bytes.
    #[arg(long, default_value = "mix")]
    sizes: Sizes,
    /// Milliseconds a stage retries a full ring (rx: an empty pool) before
    /// it drops and counts; 0 drops at once, as a NIC without flow control.
    #[arg(long, default_value_t = 100)]
    max_wait_ms: u64,
    /// Use 4 KiB pages even when hugepages are reserved.
    #[arg(long)]
    small_pages: bool,
    /// No progress line.
    #[arg(long)]
    no_progress: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let short = std::env::var("PKTMEM_EXAMPLE_SHORT").is_ok_and(|v| v == "1");
    let cfg = Config {
        packets: args
            .packets
            .unwrap_or(if short { 50_000 } else { 2_000_000 }),
        pool_size: args.pool_size,
        clone_pool_size: args.clone_pool_size,
        cache: args.cache,
        burst: args.burst,
        ring_size: args.ring_size,
        workers: args.workers,
        clone_share: args.clone_share,
        sizes: args.sizes,
        max_wait: Duration::from_millis(args.max_wait_ms),
        small_pages: args.small_pages,
        quiet: false,
    };
    println!(
        "pktmem forward: {} packets, frames {}, {} worker(s), clone share {}, bursts of {}, rings of {}",
        cfg.packets, cfg.sizes, cfg.workers, cfg.clone_share, cfg.burst, cfg.ring_size
    );

    let bar = ProgressBar::new(cfg.packets);
    if args.no_progress || !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed:>4} {bar:24} {pos}/{len} delivered, {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let result = pipeline::run_with_progress(&cfg, Duration::from_millis(100), |p| {
        bar.set_length(p.total);
        bar.set_position(p.delivered);
        let secs = p.elapsed.as_secs_f64().max(1e-9);
        bar.set_message(format!("{:.2} Mpps", p.delivered as f64 / secs / 1e6));
    });
    bar.finish_and_clear();
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("forward: {e}");
            return ExitCode::FAILURE;
        }
    };
    print_report(&report);
    let problems = report.problems();
    if problems.is_empty() {
        println!("all checks passed: every packet accounted for, every payload verified, every pool full");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("CHECK FAILED: {p}");
        }
        ExitCode::FAILURE
    }
}

fn human(bytes: usize) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_report(r: &Report) {
    let secs = r.elapsed.as_secs_f64();
    println!();
    println!(
        "packets   {} sent ({} in {} segments, {} chained), {} delivered, in {:.2?}",
        r.sent,
        human(r.sent_bytes as usize),
        r.segments,
        r.chains,
        r.delivered,
        r.elapsed
    );
    println!(
        "rate      {:.3} Mpps, {:.1} ns/packet, {:.2} Gbit/s of frames",
        r.mpps(),
        r.ns_per_packet(),
        r.delivered_bytes as f64 * 8.0 / secs / 1e9
    );
    let d = &r.drops;
    println!(
        "drops     {} (no mbuf {}, rx ring full {}, tx ring full {}, unparsable {}); sent {} = delivered {} + dropped {}{}",
        d.total(),
        d.no_mbuf,
        d.rx_ring_full,
        d.tx_ring_full,
        d.unparsable,
        r.sent,
        r.delivered,
        d.total(),
        if r.failures > 0 {
            format!(" + failed {}", r.failures - r.mirror_failures)
        } else {
            String::new()
        }
    );
    if !r.config.clone_share.is_none() {
        println!(
            "mirror    {} clones wanted, {} made, {} verified; lost: clone pool dry {}, mirror ring full {}",
            r.clone_wanted,
            r.cloned,
            r.mirrored,
            r.mirror_drops.no_clone_mbuf,
            r.mirror_drops.ring_full
        );
    }
    println!(
        "checks    {} packet(s) failed{}",
        r.failures,
        if r.failure_texts.is_empty() {
            String::new()
        } else {
            format!(": {}", r.failure_texts.join("; "))
        }
    );
    print_resources(r);
}

/// Pools, caches, memory and IOVA mode.
fn print_resources(r: &Report) {
    let stages: Vec<String> = r
        .stages
        .iter()
        .map(|s| format!("{} {:.1}", s.name, s.ns_per_packet()))
        .collect();
    println!(
        "stages    busy ns/packet: {} (preemption included)",
        stages.join(", ")
    );
    let idle: Vec<String> = r
        .stages
        .iter()
        .map(|s| {
            format!(
                "{} {}/{}/{}",
                s.name, s.idle.spins, s.idle.yields, s.idle.sleeps
            )
        })
        .collect();
    println!("idle      spins/yields/naps: {}", idle.join(", "));
    for p in &r.pools {
        println!(
            "pool      '{}': {} mbufs of {} B in {} chunk(s) ({}), cache {}, IOVAs {}, {} available at the end: {}{}",
            p.name,
            p.size,
            p.elt_size,
            p.chunks,
            human(p.chunk_bytes),
            p.cache_size,
            if p.tracks_iova { "tracked" } else { "not tracked" },
            p.avail,
            if p.is_full() { "full" } else { "NOT FULL" },
            match &p.audit {
                Ok(a) => format!(", audit ok ({} objects)", a.objects),
                Err(e) => format!(", AUDIT FAILED: {e}"),
            }
        );
    }
    #[cfg(feature = "stats")]
    for p in &r.pools {
        let s = &p.stats;
        println!(
            "counters  '{}': {} gets ({} from a cache), {} puts ({} into a cache), {} backend calls",
            p.name, s.gets, s.cache_get_hits, s.puts, s.cache_put_hits, s.backend_calls
        );
    }
    #[cfg(not(feature = "stats"))]
    println!("counters  get/put and cache-hit counters: build with `--features stats`");
    let caches: Vec<String> = r
        .caches
        .iter()
        .map(|c| format!("{} {}/{} of '{}'", c.stage, c.len, c.size, c.pool))
        .collect();
    println!(
        "caches    held at the end of each stage (then flushed): {}",
        caches.join(", ")
    );
    let mem: Vec<String> = r
        .memory
        .iter()
        .map(|m| {
            format!(
                "{} pages: {} mapped, {} in use ({})",
                human(m.page_size),
                m.mapped_pages,
                m.used_pages,
                human(m.used_pages * m.page_size)
            )
        })
        .collect();
    println!("memory    {} mapped; {}", human(r.mapped), mem.join("; "));
    println!(
        "iova      {:?} ({}){}",
        r.iova_mode,
        match r.iova_mode {
            IovaMode::Pa => "physical addresses, read from /proc/self/pagemap",
            IovaMode::Va => "virtual addresses: the page map gives no frame numbers here",
        },
        match &r.fallback {
            Some(why) => format!("; fell back to 4 KiB pages: {why}"),
            None => String::new(),
        }
    );
}
