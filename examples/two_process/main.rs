//! Two processes, one packet pool: the exporter shares its provider's
//! memory over a Unix socket, a peer process (this binary again, a separate
//! exec) attaches and both pass packets through shared rings — then the
//! exporter SIGKILLs the peer while it holds buffers, takes back exactly
//! what it held, restarts it, and the run finishes with every buffer home.
//!
//! ```text
//!  exporter                                         peer (generation 1, then 2)
//!  Provider ─ Exporter ── socket: memfds, pages ──► Attachment (same VA or relocated)
//!  SharedPool "pkts" + Port for role "peer"         PeerPool "pkts" + its port
//!    A: alloc, build ─────────── down ────────────► check, answer (rewrite)
//!       check answer ◄─────────── up ─────────────┘
//!    B:  check, echo  ◄─────────── up ───────────── alloc, build
//!                     └────────── down ───────────► check echo, free
//!  midway: SIGKILL the peer → role Exited → reclaim → respawn → generation 2
//! ```
//!
//! Every packet is a real Ethernet/IPv4/UDP frame; each side checks the
//! IPv4 and UDP checksums, the sequence numbers and every payload byte.
//! The summary gives the packets each way, rejected descriptors by class,
//! what was reclaimed after the kill and resumed from the rings, the
//! translation mode, and the final audit (pool full, ledger all zero).
//! Exits 1 if any check fails.
//!
//! ```sh
//! cargo run --release --example two_process
//! cargo run --release --example two_process -- --relocate   # the peer never maps at the exporter's VA
//! PKTMEM_EXAMPLE_SHORT=1 cargo run --release --example two_process   # a quick run (CI)
//! ```

#[allow(dead_code)] // parts of it serve the tests only
mod child;
mod hub;
mod packet;
mod peer;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use pktmem::hugemem::share::{Exporter, Role, RoleState};
use pktmem::hugemem::Provider;
use pktmem::shm::{PortConfig, SharedPool};

use child::{Kv, PeerChild, SocketDir};
use hub::{Hub, HubConfig};
use peer::{PeerConfig, PAGES_ENTRY};

/// Set by Ctrl-C: the loop ends, every guard drops (the peer is killed and
/// reaped, the socket directory removed). Relaxed: it publishes no data.
static STOP: AtomicBool = AtomicBool::new(false);

/// A shared packet pool between two processes, with a peer killed and
/// restarted midway.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Run as the peer, attaching to this socket (the exporter starts the
    /// peer this way; the other settings come in `PKTMEM_2P_*` variables).
    #[arg(long, value_name = "SOCKET")]
    peer: Option<PathBuf>,
    /// `A` packets the exporter sends [default: 200000; 20000 with
    /// `PKTMEM_EXAMPLE_SHORT=1`]; the peer originates one `B` per `A`.
    #[arg(long)]
    packets: Option<u64>,
    /// Force the peer to map the memory elsewhere than at the exporter's VA.
    #[arg(long)]
    relocate: bool,
    /// Buffers in the shared pool.
    #[arg(long, default_value_t = 4096)]
    pool_size: usize,
    /// Data room of each buffer.
    #[arg(long, default_value_t = 2048)]
    data_room: usize,
    /// Free buffers the exporter keeps lent to the peer.
    #[arg(long, default_value_t = 256)]
    lend: u32,
    /// Slots of each of the port's four rings.
    #[arg(long, default_value_t = 1024)]
    rings: u32,
    /// `A` packets in flight at most.
    #[arg(long, default_value_t = 512)]
    window: usize,
    /// Buffers per burst.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Answered packets the peer keeps back (it always holds some when
    /// killed).
    #[arg(long, default_value_t = 8)]
    hold: usize,
    /// Kill the peer after this share of the `A` packets went out (0: no
    /// kill).
    #[arg(long, default_value_t = 0.5)]
    kill_at: f64,
    /// Use 4 KiB pages even when hugepages are reserved.
    #[arg(long)]
    small_pages: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(socket) = &args.peer {
        return peer_main(socket.clone());
    }
    if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed)) {
        eprintln!("warning: no Ctrl-C handler ({e}); Ctrl-C will not clean up");
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("two_process: {e}");
            ExitCode::FAILURE
        }
    }
}

fn peer_main(socket: PathBuf) -> ExitCode {
    let mut cfg = PeerConfig::from_env().unwrap_or_else(|| PeerConfig::new(socket.clone(), "peer"));
    cfg.socket = socket;
    match peer::run(&cfg) {
        Ok(r) if r.bad == 0 && r.pages_bad == 0 => ExitCode::SUCCESS,
        Ok(r) => {
            eprintln!(
                "peer: {} failed checks (first: {})",
                r.bad + r.pages_bad,
                r.first_error.unwrap_or_default()
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("peer: {e}");
            ExitCode::FAILURE
        }
    }
}

/// What is known of one peer generation.
#[derive(Debug, Default)]
struct GenInfo {
    pid: u32,
    attach: Kv,
    translate: Kv,
    stats: Kv,
    spawned: Option<Instant>,
    ready_after: Option<Duration>,
}

fn spawn_peer(
    socket: &std::path::Path,
    cfg: &PeerConfig,
    label: &str,
) -> Result<PeerChild, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--peer").arg(socket).envs(cfg.to_env());
    PeerChild::spawn(cmd, label, true).map_err(|e| format!("spawn the peer: {e}"))
}

/// The role's holder `pid` was killed and the exporter saw its process
/// exit.
fn is_exited(role: &Role, pid: u32) -> bool {
    matches!(role.state(), RoleState::Exited { pid: p } if p == pid)
}

/// The role's holder `pid` is gone: exited after a kill, or said `Bye`
/// and exited (the role is vacant again).
fn is_released(role: &Role, pid: u32) -> bool {
    match role.state() {
        RoleState::Exited { pid: p } => p == pid,
        RoleState::Vacant => true,
        _ => false,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    First,
    Dead,
    Second,
    Done,
}

/// The kill and what followed it.
#[derive(Debug, Default)]
struct KillInfo {
    a_sent_at_kill: u64,
    held_by_ledger: u64,
    to_exited: Duration,
    reclaimed: u64,
    resumed: u64,
    /// (lent per the ledger, queued in the rings) once the dead peer's
    /// published packets were received.
    exact: (usize, usize),
}

#[allow(clippy::too_many_lines)]
fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let short = std::env::var("PKTMEM_EXAMPLE_SHORT").is_ok_and(|v| v == "1");
    let a_total = args.packets.unwrap_or(if short { 20_000 } else { 200_000 });
    if args.window == 0 || args.burst == 0 || !(0.0..=1.0).contains(&args.kill_at) {
        return Err(format!(
            "--window {} and --burst {} must be at least 1, --kill-at {} within 0..=1",
            args.window, args.burst, args.kill_at
        )
        .into());
    }
    let t_start = Instant::now();
    // Memory other processes may write: raw-pointer chunks only.
    let mut pb = Provider::builder().exportable();
    if args.small_pages {
        pb = pb.small_pages_only();
    }
    let provider = pb.build()?;
    let dir = SocketDir::new("two-process")?;
    let socket = dir.socket();
    let exporter = Exporter::builder(&provider).bind(&socket)?;
    let role = exporter.role("peer")?;
    let pool = SharedPool::builder(args.pool_size, args.data_room)
        .name("pkts")
        .build(&exporter)?;
    let port = pool.port(
        &role,
        PortConfig::default().lend(args.lend).rings(args.rings),
    )?;
    let table = hub::page_table(&provider);
    let _pages = exporter.publish(PAGES_ENTRY, &table)?;
    let info = provider.info();
    println!(
        "two_process: exporter pid {}, IOVA mode {:?}, {} regions ({} KiB mapped, {} pages in the table), socket {}",
        std::process::id(),
        info.iova_mode,
        provider.regions().len(),
        provider.mapped_bytes() / 1024,
        table.len() / 16,
        socket.display()
    );
    println!(
        "two_process: shared pool \"pkts\": {} buffers of {} B; port for role \"{}\" (slot {}): lend {}, rings of {}; \
         {a_total} A packets, window {}, kill at {:.0}%{}",
        args.pool_size,
        args.data_room,
        role.name(),
        role.slot(),
        args.lend,
        args.rings,
        args.window,
        args.kill_at * 100.0,
        if args.relocate { ", peer relocated" } else { "" }
    );

    let mut pcfg = PeerConfig::new(socket.clone(), role.name());
    pcfg.relocate = args.relocate;
    pcfg.hold = args.hold;
    pcfg.burst = args.burst;
    pcfg.deadline = Duration::from_secs(if short { 60 } else { 600 });
    let mut hub = Hub::new(
        port,
        HubConfig {
            a_total,
            window: args.window,
            burst: args.burst,
        },
    );

    let kill_after = if args.kill_at > 0.0 {
        // A share in (0, 1] of a count: not negative, not above the count.
        #[allow(clippy::cast_sign_loss)]
        let k = (a_total as f64 * args.kill_at.min(1.0)) as u64;
        Some(k.clamp(1, a_total))
    } else {
        None
    };
    let mut gens: Vec<GenInfo> = Vec::new();
    let mut child = spawn_peer(&socket, &pcfg, "peer gen 1")?;
    gens.push(GenInfo {
        pid: child.pid(),
        spawned: Some(Instant::now()),
        ..GenInfo::default()
    });
    let mut phase = Phase::First;
    let mut kill = KillInfo::default();
    let mut t_kill = Instant::now();
    let deadline = Duration::from_secs(if short { 60 } else { 600 });
    let mut idle = 0u32;
    let mut failed: Vec<String> = Vec::new();
    let t_traffic = Instant::now();
    while phase != Phase::Done {
        if STOP.load(Ordering::Relaxed) {
            failed.push("stopped by Ctrl-C".into());
            break;
        }
        if t_start.elapsed() > deadline {
            failed.push(format!(
                "no end after {deadline:?} (phase {phase:?}, {} of {a_total} A sent, {} outstanding, fin {}/{})",
                hub.a_sent,
                hub.a_outstanding.len(),
                hub.fin_sent,
                hub.fin_back
            ));
            break;
        }
        let g = gens.last_mut().expect("a generation");
        if g.ready_after.is_none() && child.line("peer-ready").is_some() {
            g.ready_after = g.spawned.map(|t| t.elapsed());
        }
        let moved = hub.step(
            &pool,
            phase != Phase::First || kill_after.map_or(true, |k| hub.a_sent < k),
            phase == Phase::Second || kill_after.is_none(),
        );
        match phase {
            Phase::First => {
                if let Some(s) = child.try_status() {
                    failed.push(format!("peer generation 1 exited early: {s}"));
                    break;
                }
                if kill_after.is_none() {
                    if hub.fin_back {
                        phase = Phase::Done;
                    }
                } else if kill_after.is_some_and(|k| hub.a_sent >= k)
                    && hub.a_answered > args.hold as u64
                {
                    // The peer is mid-transfer: buffers in its cache, in its
                    // hands (answers kept back) and in the rings.
                    let counts = pool.counts();
                    kill.held_by_ledger = counts.lent_total() as u64;
                    kill.a_sent_at_kill = hub.a_sent;
                    let before = hub.stats();
                    kill.reclaimed = before.reclaimed;
                    kill.resumed = before.resumed_in_rings;
                    g.translate = Kv::parse(&child.line("peer-translate").unwrap_or_default());
                    g.attach = Kv::parse(&child.line("peer-attach").unwrap_or_default());
                    child.sigkill()?;
                    t_kill = Instant::now();
                    hub.peer_died();
                    println!(
                        "two_process: SIGKILLed peer generation 1 (pid {}) after {} A packets, {} answered; \
                         the ledger has {} buffers lent to it",
                        g.pid, hub.a_sent, hub.a_answered, kill.held_by_ledger
                    );
                    phase = Phase::Dead;
                }
            }
            Phase::Dead => {
                if is_exited(&role, gens[0].pid) {
                    kill.to_exited = t_kill.elapsed();
                    // Reclaim runs in service: the role's process exited.
                    hub.service();
                    let after = hub.stats();
                    kill.reclaimed = after.reclaimed - kill.reclaimed;
                    kill.resumed = after.resumed_in_rings - kill.resumed;
                    println!(
                        "two_process: role \"{}\" exited {:.1} ms after the kill; reclaimed {} buffers, \
                         {} ring entries kept for the next generation; respawning",
                        role.name(),
                        kill.to_exited.as_secs_f64() * 1e3,
                        kill.reclaimed,
                        kill.resumed
                    );
                    // What the dead peer published up is still ours to
                    // receive; once it is, the ledger must lend the role
                    // exactly what waits in its rings for generation 2.
                    let mut quiet = 0;
                    while quiet < 3 {
                        quiet = if hub.step(&pool, false, false) == 0 {
                            quiet + 1
                        } else {
                            0
                        };
                    }
                    let lent = pool.counts().lent_total();
                    kill.exact = (lent, hub.in_rings());
                    println!(
                        "two_process: once what it had sent up was received, the ledger lends the role {lent} buffers: \
                         the {} queued in its rings",
                        kill.exact.1
                    );
                    drop(std::mem::replace(
                        &mut child,
                        spawn_peer(&socket, &pcfg, "peer gen 2")?,
                    ));
                    gens.push(GenInfo {
                        pid: child.pid(),
                        spawned: Some(Instant::now()),
                        ..GenInfo::default()
                    });
                    phase = Phase::Second;
                } else if t_kill.elapsed() > Duration::from_secs(10) {
                    failed.push(format!("role still {:?} 10 s after the kill", role.state()));
                    break;
                }
            }
            Phase::Second => {
                if hub.fin_back {
                    phase = Phase::Done;
                } else if let Some(s) = child.try_status() {
                    failed.push(format!("peer generation 2 exited before the end: {s}"));
                    break;
                }
            }
            Phase::Done => {}
        }
        if moved == 0 {
            idle += 1;
            if idle > 2000 {
                std::thread::sleep(Duration::from_micros(50));
            } else if idle > 64 {
                std::thread::yield_now();
            }
        } else {
            idle = 0;
        }
    }
    let traffic = t_traffic.elapsed();

    // The last peer finishes its echoes and exits; keep serving until the
    // role says its process is gone, then once more (the final reclaim).
    let t_end = Instant::now();
    let reclaimed_before_exit = hub.stats().reclaimed;
    let last_pid = gens.last().map_or(0, |g| g.pid);
    let mut exit_status = None;
    while t_end.elapsed() < Duration::from_secs(10) && failed.is_empty() {
        hub.step(&pool, false, false);
        exit_status = exit_status.or_else(|| child.try_status());
        if exit_status.is_some() && is_released(&role, last_pid) {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    hub.service();
    let reclaimed_at_exit = hub.stats().reclaimed - reclaimed_before_exit;
    // The session ends: the port goes, and with it what its rings held.
    let (left_pending, closed_back) = hub.close();
    let lines = child.final_lines(Duration::from_secs(2));
    drop(child);
    if let Some(g) = gens.last_mut() {
        let find = |p: &str| child::find_line(&lines, p).unwrap_or_default().to_string();
        g.attach = Kv::parse(&find("peer-attach"));
        g.translate = Kv::parse(&find("peer-translate"));
        g.stats = Kv::parse(&find("peer-stats"));
    }
    let stats = hub.stats();
    let counts = pool.counts();
    let audit = pool.audit();
    let last = gens.last().expect("a generation");

    // The summary.
    let a_lost = hub.a_outstanding.len() as u64;
    println!("summary");
    println!(
        "  down        {} A packets, {} B echoes, 1 Fin ({} buffers sent on the port)",
        hub.a_sent, hub.echoes, stats.sent
    );
    println!(
        "  up          {} A answers, {} B packets ({}), 1 Fin answer ({} buffers received)",
        hub.a_answered,
        hub.b_total(),
        {
            let mut v: Vec<_> = hub
                .b_seen
                .iter()
                .map(|(g, (n, _))| format!("gen {g}: {n}"))
                .collect();
            v.sort();
            v.join(", ")
        },
        stats.received
    );
    println!(
        "  peer        gen {}: {} A answered (first {}), {} B sent, {} echoes back, {} inherited echoes, {} without a buffer",
        last.stats.num("gen"),
        last.stats.num("a_ok"),
        last.stats.str("a_first").unwrap_or("-"),
        last.stats.num("b_sent"),
        last.stats.num("b_echo_ok"),
        last.stats.num("b_echo_inherited"),
        last.stats.num("b_no_buf"),
    );
    println!(
        "  rejected    by the exporter: not_lent {}, other_role {}, out_of_pool {}, bad_window {}, corrupt_ring {}; \
         by the last peer: {}; failed checks: exporter {}, peer {}",
        stats.rejected.not_lent,
        stats.rejected.other_role,
        stats.rejected.out_of_pool,
        stats.rejected.bad_window,
        stats.rejected.corrupt_ring,
        last.stats.num("rejected"),
        hub.bad,
        last.stats.num("bad"),
    );
    if kill_after.is_some() {
        println!(
            "  kill        at {} A sent; {} buffers lent per the ledger; role Exited after {:.1} ms; \
             reclaimed {}; {} A packets went with the killed peer; {} ring entries resumed by gen 2",
            kill.a_sent_at_kill,
            kill.held_by_ledger,
            kill.to_exited.as_secs_f64() * 1e3,
            kill.reclaimed,
            a_lost,
            kill.resumed
        );
    }
    println!(
        "  at exit     {reclaimed_at_exit} reclaimed after the last peer's exit; closing the port took back \
         {closed_back} still queued in its rings ({left_pending} were waiting for room)"
    );
    for (i, g) in gens.iter().enumerate() {
        println!(
            "  translation gen {} (pid {}): {}, {} lists, {} pages checked ({} bad, {} against the page map), ready after {}",
            i + 1,
            g.pid,
            g.attach.str("mode").unwrap_or("?"),
            g.attach.num("lists"),
            g.translate.num("pages"),
            g.translate.num("bad"),
            g.translate.num("pagemap"),
            g.ready_after.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3)),
        );
    }
    println!(
        "  pool        {}/{} free, {} with the exporter, {} lent (ledger{}), lost {}; audit: {}",
        counts.free,
        counts.total,
        counts.exporter_out,
        counts.lent_total(),
        if counts.lent_total() == 0 {
            " all zero".to_string()
        } else {
            format!(": {:?}", counts.lent)
        },
        counts.lost,
        match &audit {
            Ok(()) => "ok".to_string(),
            Err(e) => e.to_string(),
        }
    );
    println!(
        "  time        traffic {:.3} s ({:.0} packets/s each way), whole run {:.3} s",
        traffic.as_secs_f64(),
        (hub.a_answered + hub.b_total()) as f64 / 2.0 / traffic.as_secs_f64().max(1e-9),
        t_start.elapsed().as_secs_f64()
    );
    let per = |ns: u64, n: u64| if n == 0 { 0.0 } else { ns as f64 / n as f64 };
    let moved = stats.sent + stats.received;
    println!(
        "  cost        exporter: {:.0} ns per buffer in the port's calls (service, recv, send; {moved} buffers), \
         {:.0} ns in the rest (alloc, build, check every byte, free); last peer: {:.0} ns in its port's calls, {:.0} ns in the rest",
        per(hub.port_ns, moved),
        per(hub.work_ns, moved),
        per(last.stats.num("port_ns"), last.stats.num("moved")),
        per(last.stats.num("work_ns"), last.stats.num("moved")),
    );

    let mut check = |ok: bool, what: String| {
        if !ok {
            failed.push(what);
        }
    };
    check(
        hub.bad == 0,
        format!(
            "{} packets failed the exporter's checks (first: {})",
            hub.bad,
            hub.first_error.clone().unwrap_or_default()
        ),
    );
    check(
        last.stats.num("bad") == 0 && last.stats.str("gen").is_some(),
        format!(
            "the last peer: {} failed checks ({})",
            last.stats.num("bad"),
            last.stats.str("error").unwrap_or("no stats line")
        ),
    );
    check(
        exit_status.is_some_and(|s| s.success()),
        format!("the last peer's exit: {exit_status:?}"),
    );
    check(hub.fin_back, "the Fin was not answered".into());
    check(
        hub.a_answered + a_lost == hub.a_sent && hub.a_sent == hub.a_total(),
        format!(
            "A: {} sent, {} answered, {a_lost} missing",
            hub.a_sent, hub.a_answered
        ),
    );
    let rej = &stats.rejected;
    check(rej.total() == 0, "rejected descriptors".into());
    for (i, g) in gens.iter().enumerate() {
        check(
            g.translate.str("pages").is_some()
                && g.translate.num("bad") == 0
                && g.translate.num("pages") > 0,
            format!("generation {}: translation check {:?}", i + 1, g.translate),
        );
        check(
            g.attach.num("gen") == i as u64 + 1,
            format!(
                "generation {} attached as generation {}",
                i + 1,
                g.attach.num("gen")
            ),
        );
        if args.relocate {
            check(
                g.attach.str("mode") == Some("relocated"),
                format!(
                    "generation {}: --relocate, but mode {:?}",
                    i + 1,
                    g.attach.str("mode")
                ),
            );
        }
    }
    if kill_after.is_some() {
        check(gens.len() == 2, format!("{} generations ran", gens.len()));
        check(a_lost >= args.hold as u64 && a_lost <= kill.reclaimed, format!("{a_lost} A packets lost in the kill: expected at least the {} held, at most the {} reclaimed", args.hold, kill.reclaimed));
        check(
            hub.a_outstanding.iter().all(|&s| s < kill.a_sent_at_kill),
            "an A packet sent after the kill is missing".into(),
        );
        check(
            kill.reclaimed > 0,
            "nothing reclaimed after the kill".into(),
        );
        check(
            kill.exact.0 == kill.exact.1,
            format!(
                "after the kill the ledger lends {} buffers, but {} are queued in the rings",
                kill.exact.0, kill.exact.1
            ),
        );
        check(
            last.stats.num("b_echo_ok") == last.stats.num("b_sent"),
            "the last peer's B echoes".into(),
        );
    } else {
        check(
            a_lost == 0,
            format!("{a_lost} A packets missing without a kill"),
        );
    }
    check(
        counts.free == counts.total as usize
            && counts.exporter_out == 0
            && counts.lost == 0
            && counts.lent_total() == 0,
        "the pool is not full or the ledger not all zero".into(),
    );
    check(audit.is_ok(), "the audit failed".into());
    drop(hub);
    drop(pool);
    drop(exporter);
    drop(dir);
    if failed.is_empty() {
        println!("ok: packets checked both ways, the killed peer's buffers reclaimed, the pool full, the ledger all zero");
        Ok(true)
    } else {
        for f in &failed {
            println!("FAILED: {f}");
        }
        Ok(false)
    }
}
