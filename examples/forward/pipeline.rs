//! The forwarding pipeline: threads connected by rings of owned [`Mbuf`]s.
//!
//! ```text
//!            ┌──────────► worker 0 ──┬──────────────► tx      (verify, free)
//!   rx ──────┤  Ring<Mbuf>   ...     │  Ring<Mbuf>
//!  (NIC)     └──────────► worker N ──┴─ clones ─────► mirror  (verify, free)
//! ```
//!
//! - **rx** plays the NIC: it takes mbufs from the packet pool and writes
//!   Ethernet/IPv4/UDP frames into them (frames longer than one data room
//!   become chains of segments). Each payload starts with the packet's
//!   sequence number and a checksum of the payload's other bytes. Bursts go
//!   round-robin to the workers' rings.
//! - **workers** parse the headers, swap the MAC addresses, decrement the
//!   TTL and patch the IPv4 header checksum (incrementally, RFC 1624), then
//!   clone a share of the packets (indirect mbufs from a clone pool, the
//!   same bytes) for the mirror port.
//! - **tx** and **mirror** check everything (length, sequence order per
//!   worker, no duplicate, payload checksum, swapped MACs, TTL, a valid IPv4
//!   checksum, an IOVA for every segment when the pool tracks them) and free
//!   the packets by dropping them (a clone's buffer goes back to its pool
//!   when the last of the two references goes).
//!
//! A stage that finds its ring full, or rx finding the pool empty, backs off
//! and retries for up to [`Config::max_wait`], then drops what is left and
//! counts it by cause: a NIC without flow control is `max_wait` zero. Idle
//! stages spin briefly, then yield, then nap for 20 µs at a time, so that
//! more stages than cores (rx, worker, tx and mirror on two) still make
//! progress: a yield alone gives the core only to threads queued on it, a
//! nap frees it for the busy stage the scheduler has put elsewhere.
//!
//! [`run`] builds the provider and the pools, runs the stages on scoped
//! threads and returns a [`Report`]: counts, drops, timing, pool, cache and
//! memory figures, and [`Report::problems`] for every check that failed.
//! Everything here is safe code over the public pktmem API.

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use etherparse::{EtherType, Ethernet2HeaderSlice, IpNumber, Ipv4HeaderSlice, UdpHeaderSlice};
use pktmem::hugemem::{IovaMode, Provider};
use pktmem::mbuf::{Mbuf, PktPool};
use pktmem::mempool::{AuditReport, Cache};
use pktmem::ring::{Consumer, Producer, Ring, Single};

/// Smallest frame the generator writes (Ethernet's minimum without FCS).
pub const MIN_FRAME: usize = 64;
/// Largest frame (a jumbo frame).
pub const MAX_FRAME: usize = 9000;

const ETH_LEN: usize = 14;
const IP_OFF: usize = ETH_LEN;
const IP_LEN: usize = 20;
const UDP_OFF: usize = IP_OFF + IP_LEN;
const UDP_LEN: usize = 8;
/// Where the payload starts: sequence number (8 B), then checksum (4 B).
const PAYLOAD_OFF: usize = UDP_OFF + UDP_LEN;
const SEQ_OFF: usize = PAYLOAD_OFF;
const CSUM_OFF: usize = PAYLOAD_OFF + 8;
/// First byte after the payload header (the fill bytes).
const FILL_OFF: usize = CSUM_OFF + 4;
/// TTL as rx writes it; the worker makes it one less.
const TTL_IN: u8 = 64;
const UDP_DST_PORT: u16 = 5001;
const FLOWS: u64 = 16;
/// Maximum first few failures kept as text in the report.
const MAX_FAILURE_TEXTS: usize = 8;

/// Frame sizes the generator uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sizes {
    /// A mix: half 64 B, 40% 65..=1518 B, 10% jumbo 1519..=9000 B.
    Mix,
    /// Every frame this long.
    Fixed(usize),
    /// Uniformly spread over `lo..=hi`.
    Range(usize, usize),
    /// These lengths in turn.
    List(Vec<usize>),
}

impl Sizes {
    /// Length of frame `seq` (a pure function of `seq`: the checking stages
    /// know what to expect).
    pub fn frame_len(&self, seq: u64) -> usize {
        match self {
            Sizes::Fixed(n) => *n,
            Sizes::Range(lo, hi) => lo + (mix64(seq) % (hi - lo + 1) as u64) as usize,
            Sizes::List(v) => v[(seq % v.len() as u64) as usize],
            Sizes::Mix => {
                let r = mix64(seq);
                let pick = r % 100;
                let spread = r >> 8;
                if pick < 50 {
                    MIN_FRAME
                } else if pick < 90 {
                    65 + (spread % (1518 - 65 + 1)) as usize
                } else {
                    1519 + (spread % (MAX_FRAME as u64 - 1519 + 1)) as usize
                }
            }
        }
    }
}

impl fmt::Display for Sizes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sizes::Mix => write!(f, "mix (50% 64 B, 40% 65..=1518 B, 10% 1519..=9000 B)"),
            Sizes::Fixed(n) => write!(f, "{n} B"),
            Sizes::Range(lo, hi) => write!(f, "{lo}..={hi} B"),
            Sizes::List(v) => {
                let s: Vec<String> = v.iter().map(ToString::to_string).collect();
                write!(f, "{} B in turn", s.join(", "))
            }
        }
    }
}

/// Why a `--sizes` argument was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SizesError {
    /// Not `mix`, a number, `lo-hi` or a comma-separated list.
    Syntax(String),
    /// A length outside `MIN_FRAME..=MAX_FRAME`.
    OutOfRange {
        /// The length given.
        len: usize,
    },
    /// A range whose low end is above its high end.
    EmptyRange {
        /// Low end.
        lo: usize,
        /// High end.
        hi: usize,
    },
}

impl fmt::Display for SizesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SizesError::Syntax(s) => {
                write!(f, "'{s}' is not `mix`, a length, `lo-hi` or a list `a,b,c`")
            }
            SizesError::OutOfRange { len } => write!(
                f,
                "frame length {len} is outside {MIN_FRAME}..={MAX_FRAME} bytes"
            ),
            SizesError::EmptyRange { lo, hi } => write!(f, "range {lo}-{hi} is empty"),
        }
    }
}

impl std::error::Error for SizesError {}

impl FromStr for Sizes {
    type Err = SizesError;

    fn from_str(s: &str) -> Result<Sizes, SizesError> {
        let s = s.trim();
        let num = |t: &str| -> Result<usize, SizesError> {
            let n: usize = t
                .trim()
                .parse()
                .map_err(|_| SizesError::Syntax(s.to_string()))?;
            if (MIN_FRAME..=MAX_FRAME).contains(&n) {
                Ok(n)
            } else {
                Err(SizesError::OutOfRange { len: n })
            }
        };
        if s == "mix" {
            Ok(Sizes::Mix)
        } else if let Some((lo, hi)) = s.split_once('-') {
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo > hi {
                return Err(SizesError::EmptyRange { lo, hi });
            }
            Ok(Sizes::Range(lo, hi))
        } else if s.contains(',') {
            Ok(Sizes::List(
                s.split(',').map(num).collect::<Result<_, _>>()?,
            ))
        } else {
            Ok(Sizes::Fixed(num(s)?))
        }
    }
}

/// The share of packets cloned to the mirror port: `num` out of every
/// `den` (by sequence number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Share {
    num: u64,
    den: u64,
}

impl Share {
    /// No packet is cloned.
    pub const NONE: Share = Share { num: 0, den: 1 };

    /// `num` out of every `den`, or `None` unless `0 <= num <= den`, `den > 0`.
    pub fn new(num: u64, den: u64) -> Option<Share> {
        (den > 0 && num <= den).then_some(Share { num, den })
    }

    /// Whether packet `seq` is cloned.
    pub fn picks(self, seq: u64) -> bool {
        seq % self.den < self.num
    }

    /// Whether no packet is cloned.
    pub fn is_none(self) -> bool {
        self.num == 0
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

impl FromStr for Share {
    type Err = String;

    fn from_str(s: &str) -> Result<Share, String> {
        let bad = || format!("'{s}' is not a share `n/d` with 0 <= n <= d, d > 0 (or 0)");
        let (n, d) = match s.trim().split_once('/') {
            Some((n, d)) => (n.trim(), d.trim()),
            None => (s.trim(), "1"),
        };
        let n: u64 = n.parse().map_err(|_| bad())?;
        let d: u64 = d.parse().map_err(|_| bad())?;
        Share::new(n, d).ok_or_else(bad)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Config {
    /// Packets rx generates.
    pub packets: u64,
    /// Mbufs in the packet pool.
    pub pool_size: usize,
    /// Mbufs in the clone pool (indirect mbufs for the mirror port).
    pub clone_pool_size: usize,
    /// Per-thread cache size of both pools.
    pub cache: usize,
    /// Packets per burst (every stage).
    pub burst: usize,
    /// Slots of each ring.
    pub ring_size: usize,
    /// Worker threads.
    pub workers: usize,
    /// Share of packets cloned to the mirror port.
    pub clone_share: Share,
    /// Frame sizes.
    pub sizes: Sizes,
    /// How long a stage retries a full ring (rx: an empty pool) before it
    /// drops and counts; zero drops at once, as a NIC without flow control.
    pub max_wait: Duration,
    /// Use 4 KiB pages even when hugepages are reserved.
    pub small_pages: bool,
    /// Do not print the provider's fallback note on stderr.
    pub quiet: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            packets: 2_000_000,
            pool_size: 16_383,
            clone_pool_size: 16_383,
            cache: 256,
            burst: 32,
            ring_size: 1024,
            workers: 1,
            clone_share: Share { num: 1, den: 8 },
            sizes: Sizes::Mix,
            max_wait: Duration::from_millis(100),
            small_pages: false,
            quiet: false,
        }
    }
}

/// Why [`run`] could not run the pipeline (checks that fail are in the
/// [`Report`], not here).
#[derive(Debug)]
#[non_exhaustive]
pub enum RunError {
    /// A parameter that cannot work, with what it was.
    Config(String),
    /// Building the provider, a pool or a ring failed.
    Setup(pktmem::Error),
    /// A stage's thread panicked.
    Panicked(&'static str),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Config(s) => write!(f, "bad configuration: {s}"),
            RunError::Setup(e) => write!(f, "setup failed: {e}"),
            RunError::Panicked(stage) => write!(f, "the {stage} stage panicked"),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Setup(e) => Some(e),
            _ => None,
        }
    }
}

/// `From` for the setup errors `?` meets in [`run`].
macro_rules! setup_errors {
    ($($e:ty),*) => {
        $(impl From<$e> for RunError {
            fn from(e: $e) -> Self {
                RunError::Setup(e.into())
            }
        })*
    };
}
setup_errors!(
    pktmem::hugemem::BuildError,
    pktmem::mbuf::BuildError,
    pktmem::ring::BuildError
);

/// Packets dropped, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// rx: no mbuf in the packet pool (the NIC's `rx_nombuf`).
    pub no_mbuf: u64,
    /// rx → worker ring full.
    pub rx_ring_full: u64,
    /// worker: not an IPv4/UDP packet it can forward, or TTL expired.
    pub unparsable: u64,
    /// worker → tx ring full.
    pub tx_ring_full: u64,
}

impl Drops {
    /// All drops of the forwarding path.
    pub fn total(&self) -> u64 {
        self.no_mbuf + self.rx_ring_full + self.unparsable + self.tx_ring_full
    }
}

/// Mirror copies lost, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MirrorDrops {
    /// worker: the clone pool ran dry.
    pub no_clone_mbuf: u64,
    /// worker → mirror ring full.
    pub ring_full: u64,
}

/// How often a stage had nothing to do (or waited for room).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Idle {
    /// Short spins.
    pub spins: u64,
    /// `yield_now` calls.
    pub yields: u64,
    /// Naps (short sleeps, after the yields did not bring work).
    pub sleeps: u64,
}

/// One stage's share of the work.
#[derive(Clone, Debug, Default)]
pub struct StageStats {
    /// `rx`, `worker0`, ..., `tx`, `mirror`.
    pub name: String,
    /// Packets it handled (generated, forwarded, verified).
    pub packets: u64,
    /// Time spent on bursts, not counting waits for work or for room (it
    /// does count time the thread was preempted in the middle of a burst).
    pub busy: Duration,
    /// How often it had nothing to do or waited.
    pub idle: Idle,
}

impl StageStats {
    /// Busy nanoseconds per packet handled.
    pub fn ns_per_packet(&self) -> f64 {
        self.busy.as_nanos() as f64 / self.packets.max(1) as f64
    }
}

/// One pool at the end of the run.
#[derive(Clone, Debug)]
pub struct PoolReport {
    /// The pool's name.
    pub name: String,
    /// Mbufs in it.
    pub size: usize,
    /// Mbufs available at the end (backend plus caches).
    pub avail: usize,
    /// Per-thread cache size.
    pub cache_size: usize,
    /// Bytes of one element (header, private area, data room, padding).
    pub elt_size: usize,
    /// Memory chunks the pool was populated from, and their bytes.
    pub chunks: usize,
    /// Bytes of those chunks.
    pub chunk_bytes: usize,
    /// Whether its objects have IOVAs.
    pub tracks_iova: bool,
    /// The audit (object headers and counts), or what it found.
    pub audit: Result<AuditReport, String>,
    /// Get/put and cache-hit counters (with the `stats` feature).
    #[cfg(feature = "stats")]
    pub stats: pktmem::mempool::PoolStats,
}

impl PoolReport {
    fn of(pool: &PktPool) -> PoolReport {
        let mp = pool.mempool();
        let (mut chunks, mut chunk_bytes) = (0, 0);
        mp.for_each_chunk(|c| {
            chunks += 1;
            chunk_bytes += c.len;
        });
        PoolReport {
            name: mp.name().to_string(),
            size: pool.size(),
            avail: pool.avail_count(),
            cache_size: mp.cache_size(),
            elt_size: mp.obj_size().total_size,
            chunks,
            chunk_bytes,
            tracks_iova: mp.tracks_iova(),
            audit: mp.audit().map_err(|e| e.to_string()),
            #[cfg(feature = "stats")]
            stats: mp.stats(),
        }
    }

    /// Whether every mbuf is back.
    pub fn is_full(&self) -> bool {
        self.avail == self.size
    }
}

/// One explicit cache at the end of its stage.
#[derive(Clone, Debug)]
pub struct CacheReport {
    /// The stage that used it.
    pub stage: String,
    /// The pool it caches.
    pub pool: String,
    /// Objects in it when the stage ended (flushed back when it dropped).
    pub len: usize,
    /// Its size.
    pub size: usize,
}

/// Provider memory of one page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageUse {
    /// Page size in bytes.
    pub page_size: usize,
    /// Pages mapped.
    pub mapped_pages: usize,
    /// Pages handed out.
    pub used_pages: usize,
}

/// Counts the calling thread sees while the pipeline runs.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Packets rx generated so far.
    pub sent: u64,
    /// Packets tx verified so far.
    pub delivered: u64,
    /// Packets to generate.
    pub total: u64,
    /// Time since the stages started.
    pub elapsed: Duration,
}

/// What a run did and found.
#[derive(Clone, Debug)]
pub struct Report {
    /// The configuration it ran.
    pub config: Config,
    /// Packets rx generated (each with a sequence number).
    pub sent: u64,
    /// Frame bytes rx generated.
    pub sent_bytes: u64,
    /// Segments (mbufs) rx filled.
    pub segments: u64,
    /// Multi-segment packets rx built.
    pub chains: u64,
    /// Packets tx received and verified.
    pub delivered: u64,
    /// Frame bytes of those.
    pub delivered_bytes: u64,
    /// Drops on the forwarding path.
    pub drops: Drops,
    /// Clones the workers made (and sent on or dropped).
    pub cloned: u64,
    /// Clones the workers tried to make (the share of forwarded packets).
    pub clone_wanted: u64,
    /// Clones the mirror received and verified.
    pub mirrored: u64,
    /// Lost mirror copies.
    pub mirror_drops: MirrorDrops,
    /// Packets that failed a check (tx or mirror).
    pub failures: u64,
    /// Of those, the mirror's.
    pub mirror_failures: u64,
    /// The first few failures, described.
    pub failure_texts: Vec<String>,
    /// From the start of the stages to the end of the last one.
    pub elapsed: Duration,
    /// Per stage: packets handled, time busy, idle loops.
    pub stages: Vec<StageStats>,
    /// The pools at the end.
    pub pools: Vec<PoolReport>,
    /// The explicit caches at the end of their stages.
    pub caches: Vec<CacheReport>,
    /// Provider memory per page size (while the pools lived).
    pub memory: Vec<PageUse>,
    /// Bytes the provider had mapped.
    pub mapped: usize,
    /// The provider's IOVA mode.
    pub iova_mode: IovaMode,
    /// Why the provider fell back to small pages, if it did.
    pub fallback: Option<String>,
}

impl Report {
    /// Forwarded packets per second (delivered over elapsed), in millions.
    pub fn mpps(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64() / 1e6
    }

    /// Wall-clock nanoseconds per delivered packet.
    pub fn ns_per_packet(&self) -> f64 {
        self.elapsed.as_nanos() as f64 / self.delivered.max(1) as f64
    }

    /// Every check that failed, described (empty: all passed).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.failures > 0 {
            p.push(format!(
                "{} packet(s) failed verification; first: {}",
                self.failures,
                self.failure_texts.join("; ")
            ));
        }
        if self.sent != self.config.packets {
            p.push(format!(
                "rx generated {} packets, not {}",
                self.sent, self.config.packets
            ));
        }
        let accounted = self.delivered + self.drops.total() + self.failures_on_tx();
        if self.sent != accounted {
            p.push(format!(
                "sent {} != delivered {} + dropped {} (+ failed {})",
                self.sent,
                self.delivered,
                self.drops.total(),
                self.failures_on_tx()
            ));
        }
        let mirror_accounted =
            self.mirrored + self.mirror_drops.ring_full + self.failures_on_mirror();
        if self.cloned != mirror_accounted {
            p.push(format!(
                "cloned {} != mirrored {} + mirror ring full {} (+ failed {})",
                self.cloned,
                self.mirrored,
                self.mirror_drops.ring_full,
                self.failures_on_mirror()
            ));
        }
        if self.clone_wanted != self.cloned + self.mirror_drops.no_clone_mbuf {
            p.push(format!(
                "clones wanted {} != made {} + clone pool dry {}",
                self.clone_wanted, self.cloned, self.mirror_drops.no_clone_mbuf
            ));
        }
        for pool in &self.pools {
            if !pool.is_full() {
                p.push(format!(
                    "pool '{}' ended with {} of {} mbufs ({} missing)",
                    pool.name,
                    pool.avail,
                    pool.size,
                    pool.size - pool.avail
                ));
            }
            if let Err(e) = &pool.audit {
                p.push(format!("pool '{}' audit: {e}", pool.name));
            }
        }
        p
    }

    fn failures_on_tx(&self) -> u64 {
        self.failures - self.failures_on_mirror()
    }

    fn failures_on_mirror(&self) -> u64 {
        self.mirror_failures
    }
}

/// Runs the pipeline; see the module docs.
pub fn run(cfg: &Config) -> Result<Report, RunError> {
    run_with_progress(cfg, Duration::MAX, |_| {})
}

/// [`run`], calling `progress` on the calling thread every `every` while
/// the stages run (and once at the end).
pub fn run_with_progress(
    cfg: &Config,
    every: Duration,
    progress: impl FnMut(&Progress),
) -> Result<Report, RunError> {
    check_config(cfg)?;
    let mut pb = Provider::builder().quiet(cfg.quiet);
    if cfg.small_pages {
        pb = pb.small_pages_only();
    }
    let provider = pb.build()?;
    let pool = PktPool::builder(cfg.pool_size)
        .name("forward_pkts")
        .cache(cfg.cache)
        .build_on(&provider)?;
    // Indirect mbufs need no data room of their own: they point at the
    // packet pool's buffers.
    let clone_pool = PktPool::builder(cfg.clone_pool_size)
        .name("forward_clones")
        .cache(cfg.cache)
        .data_room(0)
        .build_on(&provider)?;
    let rings = Rings::new(cfg)?;
    let start = Instant::now();
    let results = run_stages(cfg, &pool, &clone_pool, rings, start, every, progress)?;
    let mut report = results.into_report(cfg, start);
    // Taken after the stages' threads are joined: their caches are
    // flushed (explicit ones dropped, default ones at thread exit).
    report.pools = vec![PoolReport::of(&pool), PoolReport::of(&clone_pool)];
    for l in provider.lists().iter().filter(|l| !l.external) {
        match report
            .memory
            .iter_mut()
            .find(|m| m.page_size == l.page_size)
        {
            Some(m) => {
                m.mapped_pages += l.mapped_pages;
                m.used_pages += l.used_pages;
            }
            None => report.memory.push(PageUse {
                page_size: l.page_size,
                mapped_pages: l.mapped_pages,
                used_pages: l.used_pages,
            }),
        }
    }
    let info = provider.info();
    report.mapped = info.mapped;
    report.iova_mode = info.iova_mode;
    report.fallback = info.fallback;
    Ok(report)
}

/// The rings between the stages, one of each kind per worker (each
/// single-producer, single-consumer).
struct Rings {
    to_workers: Vec<Out>,
    from_rx: Vec<In>,
    to_tx: Vec<Out>,
    from_workers: Vec<In>,
    to_mirror: Vec<Out>,
    clones_in: Vec<In>,
}

impl Rings {
    fn new(cfg: &Config) -> Result<Rings, RunError> {
        let n = cfg.workers;
        let mut r = Rings {
            to_workers: Vec::with_capacity(n),
            from_rx: Vec::with_capacity(n),
            to_tx: Vec::with_capacity(n),
            from_workers: Vec::with_capacity(n),
            to_mirror: Vec::with_capacity(n),
            clones_in: Vec::with_capacity(n),
        };
        for _ in 0..n {
            let (p, c) = spsc(cfg.ring_size)?;
            r.to_workers.push(p);
            r.from_rx.push(c);
            let (p, c) = spsc(cfg.ring_size)?;
            r.to_tx.push(p);
            r.from_workers.push(c);
            let (p, c) = spsc(cfg.ring_size)?;
            r.to_mirror.push(p);
            r.clones_in.push(c);
        }
        Ok(r)
    }
}

/// What the stages returned.
struct StageResults {
    rx: RxResult,
    workers: Vec<WorkerResult>,
    tx: SinkResult,
    mirror: Option<SinkResult>,
}

/// Starts the stages on scoped threads, reports progress until the sinks
/// end, and joins them all.
fn run_stages(
    cfg: &Config,
    pool: &PktPool,
    clone_pool: &PktPool,
    rings: Rings,
    start: Instant,
    every: Duration,
    mut progress: impl FnMut(&Progress),
) -> Result<StageResults, RunError> {
    let mirror_on = !cfg.clone_share.is_none();
    let sinks = 1 + usize::from(mirror_on);
    let shared = Shared {
        sent: AtomicU64::new(0),
        delivered: AtomicU64::new(0),
        abort: AtomicBool::new(false),
        sinks_done: AtomicUsize::new(0),
        main: std::thread::current(),
    };
    let Rings {
        to_workers,
        from_rx,
        to_tx,
        from_workers,
        to_mirror,
        clones_in,
    } = rings;
    std::thread::scope(|s| {
        let shared = &shared;
        let spawn_failed = |e: std::io::Error| {
            // Whatever was started drains and ends: rx stops generating.
            // Relaxed: a flag polled in a loop; nothing is published with it.
            shared.abort.store(true, Ordering::Relaxed);
            RunError::Config(format!("could not start a thread: {e}"))
        };
        let spawn = |name: String| std::thread::Builder::new().name(name);
        let rx = spawn("rx".into())
            .spawn_scoped(s, move || rx_stage(cfg, pool, &to_workers, shared))
            .map_err(spawn_failed)?;
        let mut workers = Vec::with_capacity(cfg.workers);
        for (i, ((input, tx), mirror)) in from_rx.into_iter().zip(to_tx).zip(to_mirror).enumerate()
        {
            let w = spawn(format!("worker{i}"))
                .spawn_scoped(s, move || {
                    worker_stage(cfg, clone_pool, &input, &tx, &mirror, shared)
                })
                .map_err(spawn_failed)?;
            workers.push(w);
        }
        let tx = spawn("tx".into())
            .spawn_scoped(s, move || {
                sink_stage(cfg, Sink::Tx, pool, &from_workers, shared)
            })
            .map_err(spawn_failed)?;
        let mirror = if mirror_on {
            let m = spawn("mirror".into())
                .spawn_scoped(s, move || {
                    sink_stage(cfg, Sink::Mirror, clone_pool, &clones_in, shared)
                })
                .map_err(spawn_failed)?;
            Some(m)
        } else {
            None
        };
        let tick = every.min(Duration::from_millis(100));
        let mut last = start;
        // Acquire: pairs with the sinks' Release increment (as they end);
        // it only ends this loop, the joins below order everything else.
        while shared.sinks_done.load(Ordering::Acquire) < sinks {
            std::thread::park_timeout(tick);
            if last.elapsed() >= every {
                last = Instant::now();
                progress(&shared.progress(cfg, start));
            }
        }
        progress(&shared.progress(cfg, start));
        let rx = rx.join().map_err(|_| RunError::Panicked("rx"));
        let workers: Result<Vec<_>, _> = workers
            .into_iter()
            .map(|w| w.join().map_err(|_| RunError::Panicked("worker")))
            .collect();
        let tx = tx.join().map_err(|_| RunError::Panicked("tx"));
        let mirror = mirror
            .map(|m| m.join().map_err(|_| RunError::Panicked("mirror")))
            .transpose();
        Ok(StageResults {
            rx: rx?,
            workers: workers?,
            tx: tx?,
            mirror: mirror?,
        })
    })
}

impl StageResults {
    /// The report's counts (pools and memory are filled in by the caller).
    fn into_report(self, cfg: &Config, start: Instant) -> Report {
        let StageResults {
            rx,
            workers,
            tx,
            mirror,
        } = self;
        let end = mirror.as_ref().map_or(tx.end, |m| m.end.max(tx.end));
        let mut drops = Drops {
            no_mbuf: rx.no_mbuf,
            rx_ring_full: rx.ring_full,
            ..Drops::default()
        };
        let mut mirror_drops = MirrorDrops::default();
        let (mut cloned, mut clone_wanted) = (0, 0);
        let mut stages = vec![rx.stage];
        let mut caches = vec![rx.cache];
        for (i, w) in workers.into_iter().enumerate() {
            drops.unparsable += w.unparsable;
            drops.tx_ring_full += w.tx_ring_full;
            mirror_drops.ring_full += w.mirror_ring_full;
            mirror_drops.no_clone_mbuf += w.no_clone_mbuf;
            cloned += w.cloned;
            clone_wanted += w.clone_wanted;
            stages.push(StageStats {
                name: format!("worker{i}"),
                ..w.stage
            });
            caches.push(w.cache);
        }
        stages.push(tx.stage);
        caches.push(tx.cache);
        let mut failure_texts = tx.failure_texts;
        let (mut mirrored, mut mirror_failures) = (0, 0);
        if let Some(m) = mirror {
            stages.push(m.stage);
            caches.push(m.cache);
            mirrored = m.verified;
            mirror_failures = m.failures;
            failure_texts.extend(m.failure_texts);
        }
        failure_texts.truncate(MAX_FAILURE_TEXTS);
        Report {
            config: cfg.clone(),
            sent: rx.sent,
            sent_bytes: rx.bytes,
            segments: rx.segments,
            chains: rx.chains,
            delivered: tx.verified,
            delivered_bytes: tx.bytes,
            drops,
            cloned,
            clone_wanted,
            mirrored,
            mirror_drops,
            failures: tx.failures + mirror_failures,
            mirror_failures,
            failure_texts,
            elapsed: end.saturating_duration_since(start),
            stages,
            pools: Vec::new(),
            caches,
            memory: Vec::new(),
            mapped: 0,
            iova_mode: IovaMode::Va,
            fallback: None,
        }
    }
}

fn check_config(cfg: &Config) -> Result<(), RunError> {
    let bad = |s: String| Err(RunError::Config(s));
    if cfg.workers == 0 {
        return bad("at least one worker is needed".into());
    }
    if cfg.burst == 0 || cfg.burst > cfg.ring_size {
        return bad(format!(
            "burst {} must be between 1 and the ring size {}",
            cfg.burst, cfg.ring_size
        ));
    }
    if let Sizes::List(v) = &cfg.sizes {
        if v.is_empty() {
            return bad("the list of frame sizes is empty".into());
        }
    }
    Ok(())
}

type In = Consumer<Mbuf, Single>;
type Out = Producer<Mbuf, Single>;

/// A single-producer / single-consumer ring of `slots` mbufs.
fn spsc(slots: usize) -> Result<(Out, In), RunError> {
    Ok(Ring::<Mbuf>::builder(slots)
        .producer(Single)
        .consumer(Single)
        .build()?
        .split())
}

/// What the stages share besides their rings.
struct Shared {
    /// Packets generated (progress only).
    sent: AtomicU64,
    /// Packets verified by tx (progress only).
    delivered: AtomicU64,
    /// A stage panicked or a thread did not start: stop generating, stop
    /// waiting.
    abort: AtomicBool,
    /// Sink stages (tx, mirror) that have ended.
    sinks_done: AtomicUsize,
    /// The thread waiting in [`run_with_progress`].
    main: std::thread::Thread,
}

impl Shared {
    fn progress(&self, cfg: &Config, start: Instant) -> Progress {
        // Relaxed: counters read for display only.
        Progress {
            sent: self.sent.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            total: cfg.packets,
            elapsed: start.elapsed(),
        }
    }

    fn aborted(&self) -> bool {
        // Relaxed: a stop flag; nothing is read through it.
        self.abort.load(Ordering::Relaxed)
    }
}

/// Marks a stage's end when dropped, also when the stage panics (then the
/// others are told to stop waiting): so the stages downstream and the
/// calling thread never wait for a stage that is gone.
struct EndGuard<'a> {
    shared: &'a Shared,
    stage: Stage,
}

#[derive(Clone, Copy)]
enum Stage {
    Rx,
    Worker,
    Sink,
}

impl Drop for EndGuard<'_> {
    fn drop(&mut self) {
        let s = self.shared;
        if std::thread::panicking() {
            // Relaxed: as in `Shared::aborted`.
            s.abort.store(true, Ordering::Relaxed);
        }
        // The stages downstream learn of this end from the ring itself: the
        // stage's producer ends are dropped with its thread's closure
        // (`upstream_done`). The calling thread waits on the sinks.
        if matches!(self.stage, Stage::Sink) {
            // Release: pairs with the Acquire load in `run_with_progress`'s
            // wait loop.
            s.sinks_done.fetch_add(1, Ordering::Release);
            s.main.unpark();
        }
    }
}

/// Spins a little, then yields, then naps: what an idle stage does between
/// polls.
#[derive(Default)]
struct Backoff {
    step: u32,
    idle: Idle,
}

impl Backoff {
    const SPINS: u32 = 64;
    const YIELDS: u32 = 16;
    const NAP: Duration = Duration::from_micros(20);

    fn reset(&mut self) {
        self.step = 0;
    }

    fn snooze(&mut self) {
        if self.step < Self::SPINS {
            self.step += 1;
            self.idle.spins += 1;
            std::hint::spin_loop();
        } else if self.step < Self::SPINS + Self::YIELDS {
            self.step += 1;
            self.idle.yields += 1;
            std::thread::yield_now();
        } else {
            self.idle.sleeps += 1;
            std::thread::sleep(Self::NAP);
        }
    }
}

/// Retries `attempt` (which returns whether it is done) with back-off for
/// up to `max_wait`; returns whether it got done.
fn with_retry(
    max_wait: Duration,
    shared: &Shared,
    backoff: &mut Backoff,
    mut attempt: impl FnMut() -> bool,
) -> bool {
    if attempt() {
        return true;
    }
    let since = Instant::now();
    loop {
        if shared.aborted() || since.elapsed() >= max_wait {
            return attempt();
        }
        backoff.snooze();
        if attempt() {
            backoff.reset();
            return true;
        }
    }
}

/// Enqueues all of `burst` into `out`, retrying a full ring for up to
/// `max_wait`; returns how many did not fit (they are dropped: freed).
fn send(
    out: &Out,
    burst: &mut Vec<Mbuf>,
    max_wait: Duration,
    shared: &Shared,
    backoff: &mut Backoff,
) -> u64 {
    with_retry(max_wait, shared, backoff, || {
        out.enqueue_burst_from(burst);
        burst.is_empty()
    });
    let left = burst.len() as u64;
    burst.clear();
    left
}

// ---------------------------------------------------------------- rx

struct RxResult {
    sent: u64,
    bytes: u64,
    segments: u64,
    chains: u64,
    no_mbuf: u64,
    ring_full: u64,
    stage: StageStats,
    cache: CacheReport,
}

fn rx_stage(cfg: &Config, pool: &PktPool, outs: &[Out], shared: &Shared) -> RxResult {
    let _end = EndGuard {
        shared,
        stage: Stage::Rx,
    };
    let mut cache = pool.cache();
    let mut backoff = Backoff::default();
    let mut r = RxResult {
        sent: 0,
        bytes: 0,
        segments: 0,
        chains: 0,
        no_mbuf: 0,
        ring_full: 0,
        stage: StageStats::default(),
        cache: CacheReport {
            stage: "rx".into(),
            pool: pool.mempool().name().to_string(),
            len: 0,
            size: cache.size(),
        },
    };
    let mut burst: Vec<Mbuf> = Vec::with_capacity(cfg.burst);
    let mut next_out = 0;
    let mut seq = 0u64;
    while seq < cfg.packets && !shared.aborted() {
        let n = (cfg.packets - seq).min(cfg.burst as u64);
        let t0 = Instant::now();
        for _ in 0..n {
            let len = cfg.sizes.frame_len(seq);
            let mut built = build_packet(pool, &mut cache, seq, len);
            if built.is_none() && !cfg.max_wait.is_zero() {
                // The pool is dry: first hand on what this burst holds (so
                // its mbufs can come back), then wait for the frees.
                let out = &outs[next_out];
                r.ring_full += send(out, &mut burst, cfg.max_wait, shared, &mut backoff);
                with_retry(cfg.max_wait, shared, &mut backoff, || {
                    built = build_packet(pool, &mut cache, seq, len);
                    built.is_some()
                });
            }
            match built {
                Some(m) => {
                    r.segments += m.nb_segs() as u64;
                    r.chains += u64::from(m.nb_segs() > 1);
                    burst.push(m);
                }
                None => r.no_mbuf += 1,
            }
            r.bytes += len as u64;
            seq += 1;
        }
        r.sent = seq;
        r.stage.busy += t0.elapsed();
        // Relaxed: progress display only.
        shared.sent.store(seq, Ordering::Relaxed);
        if !burst.is_empty() {
            r.ring_full += send(
                &outs[next_out],
                &mut burst,
                cfg.max_wait,
                shared,
                &mut backoff,
            );
            next_out = (next_out + 1) % outs.len();
        }
    }
    r.cache.len = cache.len();
    r.stage.name = "rx".into();
    r.stage.packets = r.sent;
    r.stage.idle = backoff.idle;
    r
}

/// The source MAC of packet `seq`'s flow as rx writes it (the worker moves
/// it to the destination).
fn src_mac(seq: u64) -> [u8; 6] {
    [0x02, 0, 0, 0, 0x01, (seq % FLOWS) as u8]
}

/// The destination MAC as rx writes it (this port's).
const DST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x02, 0x01];

/// Writes the Ethernet, IPv4 and UDP headers of a `len`-byte frame.
fn write_headers(h: &mut [u8], seq: u64, len: usize) {
    let flow = (seq % FLOWS) as u8;
    h[0..6].copy_from_slice(&DST_MAC);
    h[6..12].copy_from_slice(&src_mac(seq));
    h[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut h[IP_OFF..IP_OFF + IP_LEN];
    ip[0] = 0x45;
    ip[1] = 0;
    ip[2..4].copy_from_slice(&((len - ETH_LEN) as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&(seq as u16).to_be_bytes());
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // don't fragment
    ip[8] = TTL_IN;
    ip[9] = 17; // UDP
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&[10, 0, 0, 1 + flow]);
    ip[16..20].copy_from_slice(&[10, 1, 0, 1]);
    let c = ipv4_checksum(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let udp = &mut h[UDP_OFF..UDP_OFF + UDP_LEN];
    udp[0..2].copy_from_slice(&(1024 + u16::from(flow)).to_be_bytes());
    udp[2..4].copy_from_slice(&UDP_DST_PORT.to_be_bytes());
    udp[4..6].copy_from_slice(&((len - UDP_OFF) as u16).to_be_bytes());
    udp[6..8].fill(0); // no UDP checksum (allowed over IPv4)
}

/// Fills `buf`, the fill bytes at offset `at` of packet `seq`'s payload
/// fill, and feeds them to `csum`.
fn fill(buf: &mut [u8], seq: u64, at: usize, csum: &mut Csum) {
    let base = (seq as u8).wrapping_mul(31).wrapping_add(at as u8);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = base.wrapping_add(i as u8);
    }
    csum.update(buf);
}

/// Packet `seq` of `len` bytes, written as a NIC would: one mbuf per data
/// room's worth, chained. `None` when the pool is dry (nothing is kept).
fn build_packet(pool: &PktPool, cache: &mut Cache, seq: u64, len: usize) -> Option<Mbuf> {
    let mut head = pool.alloc(cache).ok()?;
    let first = len.min(head.tailroom());
    let mut csum = Csum::default();
    {
        let d = head.append(first).ok()?;
        write_headers(d, seq, len);
        d[SEQ_OFF..CSUM_OFF].copy_from_slice(&seq.to_le_bytes());
        csum.update(&d[SEQ_OFF..CSUM_OFF]);
        fill(&mut d[FILL_OFF..], seq, 0, &mut csum);
    }
    let mut done = first;
    while done < len {
        let mut seg = pool.alloc(cache).ok()?;
        let k = (len - done).min(seg.tailroom());
        fill(seg.append(k).ok()?, seq, done - FILL_OFF, &mut csum);
        head.chain(seg).ok()?;
        done += k;
    }
    let c = csum.finish();
    head.data_mut()?[CSUM_OFF..FILL_OFF].copy_from_slice(&c.to_le_bytes());
    Some(head)
}

// ------------------------------------------------------------ worker

struct WorkerResult {
    unparsable: u64,
    tx_ring_full: u64,
    clone_wanted: u64,
    cloned: u64,
    no_clone_mbuf: u64,
    mirror_ring_full: u64,
    stage: StageStats,
    cache: CacheReport,
}

/// Whether the stage upstream has ended (its producer end was dropped
/// with its thread's closure) and its ring is drained: call after finding
/// the ring empty. Disconnection is read first: once it is seen, every
/// value the stage enqueued is visible, so an empty ring is empty for good.
fn upstream_done(input: &In) -> bool {
    input.is_disconnected() && input.is_empty()
}

fn worker_stage(
    cfg: &Config,
    clone_pool: &PktPool,
    input: &In,
    tx: &Out,
    mirror: &Out,
    shared: &Shared,
) -> WorkerResult {
    let _end = EndGuard {
        shared,
        stage: Stage::Worker,
    };
    let mut clone_cache = clone_pool.cache();
    let mut backoff = Backoff::default();
    let mut r = WorkerResult {
        unparsable: 0,
        tx_ring_full: 0,
        clone_wanted: 0,
        cloned: 0,
        no_clone_mbuf: 0,
        mirror_ring_full: 0,
        stage: StageStats::default(),
        cache: CacheReport {
            stage: "worker".into(),
            pool: clone_pool.mempool().name().to_string(),
            len: 0,
            size: clone_cache.size(),
        },
    };
    let mut burst: Vec<Mbuf> = Vec::with_capacity(cfg.burst);
    let mut out: Vec<Mbuf> = Vec::with_capacity(cfg.burst);
    let mut clones: Vec<Mbuf> = Vec::with_capacity(cfg.burst);
    let wait = |aborted: bool| {
        if aborted {
            Duration::ZERO
        } else {
            cfg.max_wait
        }
    };
    loop {
        if input.dequeue_burst_into(&mut burst, cfg.burst) == 0 {
            if upstream_done(input) {
                break;
            }
            backoff.snooze();
            continue;
        }
        backoff.reset();
        let t0 = Instant::now();
        r.stage.packets += burst.len() as u64;
        for mut m in burst.drain(..) {
            let Some(seq) = rewrite(&mut m) else {
                r.unparsable += 1;
                continue;
            };
            if cfg.clone_share.picks(seq) {
                r.clone_wanted += 1;
                match m.clone_in_cache(clone_pool, &mut clone_cache) {
                    Ok(c) => {
                        r.cloned += 1;
                        clones.push(c);
                    }
                    // The clone pool ran dry (a refcount overflow cannot
                    // happen with two references; it would count here too).
                    Err(_) => r.no_clone_mbuf += 1,
                }
            }
            out.push(m);
        }
        r.stage.busy += t0.elapsed();
        let w = wait(shared.aborted());
        r.tx_ring_full += send(tx, &mut out, w, shared, &mut backoff);
        if !clones.is_empty() {
            r.mirror_ring_full += send(mirror, &mut clones, w, shared, &mut backoff);
        }
    }
    r.cache.len = clone_cache.len();
    r.stage.idle = backoff.idle;
    r
}

/// Forwards a packet in place: swaps the MAC addresses, decrements the TTL
/// and patches the IPv4 checksum. Returns its sequence number, or `None`
/// when it is not an IPv4/UDP packet of ours with a TTL left.
fn rewrite(m: &mut Mbuf) -> Option<u64> {
    let d = m.data_mut()?;
    let (ttl, proto, old_csum) = {
        let eth = Ethernet2HeaderSlice::from_slice(d).ok()?;
        if eth.ether_type() != EtherType::IPV4 {
            return None;
        }
        let ip = Ipv4HeaderSlice::from_slice(&d[IP_OFF..]).ok()?;
        if ip.protocol() != IpNumber::UDP || ip.ttl() <= 1 || ip.ihl() != 5 {
            return None;
        }
        (ip.ttl(), ip.protocol().0, ip.header_checksum())
    };
    let seq = u64::from_le_bytes(d.get(SEQ_OFF..CSUM_OFF)?.try_into().ok()?);
    let (dst, src) = d[..12].split_at_mut(6);
    dst.swap_with_slice(src);
    let ip = &mut d[IP_OFF..IP_OFF + IP_LEN];
    ip[8] = ttl - 1;
    let new = checksum_adjust(
        old_csum,
        u16::from_be_bytes([ttl, proto]),
        u16::from_be_bytes([ttl - 1, proto]),
    );
    ip[10..12].copy_from_slice(&new.to_be_bytes());
    Some(seq)
}

// -------------------------------------------------------- tx, mirror

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sink {
    Tx,
    Mirror,
}

impl Sink {
    fn name(self) -> &'static str {
        match self {
            Sink::Tx => "tx",
            Sink::Mirror => "mirror",
        }
    }
}

struct SinkResult {
    verified: u64,
    bytes: u64,
    failures: u64,
    failure_texts: Vec<String>,
    end: Instant,
    stage: StageStats,
    cache: CacheReport,
}

fn sink_stage(
    cfg: &Config,
    kind: Sink,
    pool: &PktPool,
    inputs: &[In],
    shared: &Shared,
) -> SinkResult {
    let _end = EndGuard {
        shared,
        stage: Stage::Sink,
    };
    let mut cache = pool.cache();
    let mut backoff = Backoff::default();
    let mut r = SinkResult {
        verified: 0,
        bytes: 0,
        failures: 0,
        failure_texts: Vec::new(),
        end: Instant::now(),
        stage: StageStats::default(),
        cache: CacheReport {
            stage: kind.name().into(),
            pool: pool.mempool().name().to_string(),
            len: 0,
            size: cache.size(),
        },
    };
    // Per input ring: the last sequence number seen (order is kept per
    // worker); over all: each sequence number at most once.
    let mut last: Vec<Option<u64>> = vec![None; inputs.len()];
    let mut seen = vec![0u64; usize::try_from(cfg.packets.div_ceil(64)).unwrap_or(0)];
    let tracks_iova = pool.mempool().tracks_iova();
    let mut burst: Vec<Mbuf> = Vec::with_capacity(cfg.burst);
    loop {
        let mut got = 0;
        for (i, input) in inputs.iter().enumerate() {
            if input.dequeue_burst_into(&mut burst, cfg.burst) == 0 {
                continue;
            }
            got += burst.len();
            let t0 = Instant::now();
            for m in &burst {
                let checked = verify(cfg, kind, m, tracks_iova).and_then(|(seq, len)| {
                    if last[i].is_some_and(|l| seq <= l) {
                        return Err(format!(
                            "seq {seq} after {} from worker {i}: out of order",
                            last[i].unwrap_or(0)
                        ));
                    }
                    last[i] = Some(seq);
                    let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
                    if seen[w] & bit != 0 {
                        return Err(format!("seq {seq} arrived twice"));
                    }
                    seen[w] |= bit;
                    Ok(len)
                });
                match checked {
                    Ok(len) => {
                        r.verified += 1;
                        r.bytes += len as u64;
                    }
                    Err(e) => {
                        r.failures += 1;
                        if r.failure_texts.len() < MAX_FAILURE_TEXTS {
                            r.failure_texts.push(format!("{}: {e}", kind.name()));
                        }
                    }
                }
            }
            // Freed here: tx gives the buffers back (a cloned packet's
            // only when the mirror's clone goes too), the mirror detaches
            // its indirect mbufs.
            pool.free_bulk(&mut cache, burst.drain(..));
            r.stage.busy += t0.elapsed();
        }
        if got > 0 {
            backoff.reset();
            if kind == Sink::Tx {
                // Relaxed: progress display only.
                shared.delivered.store(r.verified, Ordering::Relaxed);
            }
            continue;
        }
        if inputs.iter().all(upstream_done) {
            break;
        }
        backoff.snooze();
    }
    r.end = Instant::now();
    r.cache.len = cache.len();
    r.stage.name = kind.name().into();
    r.stage.packets = r.verified + r.failures;
    r.stage.idle = backoff.idle;
    r
}

/// Checks one forwarded packet (or its mirror copy); returns its sequence
/// number and length, or what is wrong with it.
fn verify(cfg: &Config, kind: Sink, m: &Mbuf, tracks_iova: bool) -> Result<(u64, usize), String> {
    m.check().map_err(|e| format!("mbuf sanity: {e}"))?;
    let d = m.data();
    let eth = Ethernet2HeaderSlice::from_slice(d).map_err(|e| format!("ethernet: {e}"))?;
    let ip = Ipv4HeaderSlice::from_slice(&d[IP_OFF..]).map_err(|e| format!("ipv4: {e}"))?;
    let udp = UdpHeaderSlice::from_slice(&d[UDP_OFF..]).map_err(|e| format!("udp: {e}"))?;
    let payload = d.get(SEQ_OFF..FILL_OFF).ok_or("payload header missing")?;
    let seq = u64::from_le_bytes(payload[..8].try_into().map_err(|_| "seq")?);
    let want_csum = u32::from_le_bytes(payload[8..].try_into().map_err(|_| "csum")?);
    if seq >= cfg.packets {
        return Err(format!("seq {seq} was never sent (only {})", cfg.packets));
    }
    let len = cfg.sizes.frame_len(seq);
    let what = |s: String| format!("seq {seq}: {s}");
    if m.pkt_len() != len {
        return Err(what(format!("{} bytes, sent {len}", m.pkt_len())));
    }
    if eth.destination() != src_mac(seq) || eth.source() != DST_MAC {
        return Err(what(format!(
            "MACs not swapped: dst {:02x?} src {:02x?}",
            eth.destination(),
            eth.source()
        )));
    }
    if ip.ttl() != TTL_IN - 1 {
        return Err(what(format!("TTL {}, want {}", ip.ttl(), TTL_IN - 1)));
    }
    let hdr = &d[IP_OFF..IP_OFF + IP_LEN];
    if ipv4_checksum(hdr) != 0 {
        return Err(what(format!(
            "IPv4 header checksum {:#06x} invalid",
            ip.header_checksum()
        )));
    }
    if usize::from(ip.total_len()) != len - ETH_LEN || usize::from(udp.length()) != len - UDP_OFF {
        return Err(what(format!(
            "lengths: IPv4 {} UDP {} for a {len}-byte frame",
            ip.total_len(),
            udp.length()
        )));
    }
    if udp.destination_port() != UDP_DST_PORT {
        return Err(what(format!("UDP port {}", udp.destination_port())));
    }
    let mut csum = Csum::default();
    csum.update(&payload[..8]);
    let mut first = true;
    for s in m.segments() {
        let bytes = if first {
            &s.data()[FILL_OFF..]
        } else {
            s.data()
        };
        first = false;
        csum.update(bytes);
        if tracks_iova && s.data_iova().is_none() {
            return Err(what("a segment without an IOVA".into()));
        }
        if kind == Sink::Mirror && !s.is_indirect() {
            return Err(what("a mirror copy with a direct segment".into()));
        }
    }
    let got = csum.finish();
    if got != want_csum {
        return Err(what(format!(
            "payload checksum {got:#010x}, written {want_csum:#010x}"
        )));
    }
    if kind == Sink::Mirror && !cfg.clone_share.picks(seq) {
        return Err(what(format!(
            "mirrored, but not in the share {}",
            cfg.clone_share
        )));
    }
    Ok((seq, len))
}

// ----------------------------------------------------------- helpers

/// The ones' complement sum of `hdr` (with its checksum field as it is),
/// complemented: the checksum to write when the field is zero, and 0 when
/// the header is valid.
fn ipv4_checksum(hdr: &[u8]) -> u16 {
    let mut sum: u32 = hdr
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// RFC 1624, eqn. 3: the checksum after one 16-bit word changed from `old`
/// to `new`: `HC' = ~(~HC + ~m + m')`.
fn checksum_adjust(hc: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!hc) + u32::from(!old) + u32::from(new);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A Fletcher-style checksum over little-endian 64-bit words (the last
/// one zero-padded), fed in pieces of any length: it does not depend on
/// where the segments split the payload, and it sees reordered words.
#[derive(Default)]
struct Csum {
    a: u64,
    b: u64,
    part: u64,
    part_len: u32,
}

impl Csum {
    fn word(&mut self, w: u64) {
        self.a = self.a.wrapping_add(w);
        self.b = self.b.wrapping_add(self.a);
    }

    fn update(&mut self, mut d: &[u8]) {
        while self.part_len != 0 {
            let Some((&x, rest)) = d.split_first() else {
                return;
            };
            self.part |= u64::from(x) << (8 * self.part_len);
            self.part_len = (self.part_len + 1) % 8;
            d = rest;
            if self.part_len == 0 {
                let w = std::mem::take(&mut self.part);
                self.word(w);
            }
        }
        let mut words = d.chunks_exact(8);
        for w in &mut words {
            self.word(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
        }
        for &x in words.remainder() {
            self.part |= u64::from(x) << (8 * self.part_len);
            self.part_len += 1;
        }
    }

    fn finish(mut self) -> u32 {
        if self.part_len != 0 {
            let w = self.part;
            self.word(w);
        }
        let x = self.a ^ self.b.rotate_left(29);
        (x ^ (x >> 32)) as u32
    }
}

/// A 64-bit mixer (splitmix64's finaliser): sizes from sequence numbers.
fn mix64(seq: u64) -> u64 {
    let mut z = seq.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
