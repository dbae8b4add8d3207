//! Shared pools across real processes: the peer is this test binary
//! executed again (`current_exe() child_peer --exact --ignored
//! --nocapture`, its settings in `PKTMEM_2P_*` variables) — a separate
//! exec, never a fork — running the two-process example's peer
//! (`examples/two_process/peer.rs`) against the example's exporter side
//! (`hub.rs`). Every child is watched by a guard that SIGKILLs and reaps it,
//! also when an assertion fails.
//!
//! - the example's flows both ways, at the same VA and relocated, with the
//!   peer killed with SIGKILL midway and restarted (generation 2);
//! - SIGKILL at random points (handshake, mid-burst), ten rounds, the pool
//!   audited after each;
//! - two peers (two roles) pinned to one CPU hammering one pool;
//! - a peer in other mount and PID namespaces (root; `unshare`).

#[path = "../examples/two_process/child.rs"]
#[allow(dead_code)] // the example uses other parts
mod child;
#[path = "../examples/two_process/hub.rs"]
#[allow(dead_code)]
mod hub;
#[path = "../examples/two_process/packet.rs"]
#[allow(dead_code)]
mod packet;
#[path = "../examples/two_process/peer.rs"]
#[allow(dead_code)]
mod peer;

use std::process::Command;
use std::time::{Duration, Instant};

use pktmem::hugemem::share::{Exporter, Publication, Role, RoleState};
use pktmem::hugemem::Provider;
use pktmem::shm::{PortConfig, SharedPool};

use child::{Kv, PeerChild, SocketDir};
use hub::{Hub, HubConfig};
use peer::PeerConfig;

/// Set (to the parent's mount namespace) in a peer that may detach its
/// hugetlbfs mounts: only ever done when its own mount namespace differs.
const HIDE_HUGETLBFS: &str = "PKTMEM_2P_HIDE_HUGETLBFS_UNLESS_NS";

/// Says on the test's stderr that a test was skipped, and why (straight
/// to the process's stderr: the harness captures `eprintln!`).
fn skip(why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIP: {why}");
}

/// Everything on the exporter's side, dropped in this order: ports, pool,
/// roles, exporter, socket directory, provider.
struct Rig {
    hubs: Vec<Hub>,
    _pages: Publication,
    pool: SharedPool,
    roles: Vec<Role>,
    exporter: Exporter,
    dir: SocketDir,
    _provider: Provider,
}

fn rig(roles: &[&str], pool_size: usize, hub: HubConfig) -> Rig {
    let provider = Provider::builder()
        .exportable()
        .quiet(true)
        .build()
        .unwrap();
    let dir = SocketDir::new("shm-2p-test").unwrap();
    let exporter = Exporter::builder(&provider).bind(dir.socket()).unwrap();
    let pool = SharedPool::builder(pool_size, 2048)
        .name("pkts")
        .build(&exporter)
        .unwrap();
    let roles: Vec<Role> = roles.iter().map(|r| exporter.role(r).unwrap()).collect();
    let hubs = roles
        .iter()
        .map(|r| {
            let port = pool
                .port(r, PortConfig::default().lend(128).rings(512))
                .unwrap();
            Hub::new(port, hub)
        })
        .collect();
    // The page table the peers check their translation against (after the
    // pool and its ports: every page they use is in it).
    let pages = exporter
        .publish(peer::PAGES_ENTRY, &hub::page_table(&provider))
        .unwrap();
    Rig {
        hubs,
        _pages: pages,
        pool,
        roles,
        exporter,
        dir,
        _provider: provider,
    }
}

impl Rig {
    fn peer_config(&self, role: usize) -> PeerConfig {
        let mut c = PeerConfig::new(self.dir.socket(), self.roles[role].name());
        c.deadline = Duration::from_secs(60);
        c
    }

    /// Steps every hub until `done` says so or `timeout` passes; false on
    /// the timeout.
    fn drive(
        &mut self,
        originate: bool,
        finish: bool,
        timeout: Duration,
        mut done: impl FnMut(&Rig) -> bool,
    ) -> bool {
        let end = Instant::now() + timeout;
        let mut idle = 0u32;
        loop {
            if done(self) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            let mut moved = 0;
            for h in &mut self.hubs {
                moved += h.step(&self.pool, originate, finish);
            }
            if moved == 0 {
                idle += 1;
                if idle > 1000 {
                    std::thread::sleep(Duration::from_micros(100));
                } else {
                    std::thread::yield_now();
                }
            } else {
                idle = 0;
            }
        }
    }

    /// Serves until the role's process `pid` is seen exited (after a
    /// kill: no `Bye`); false after `timeout`.
    fn wait_exited(&mut self, role: usize, pid: u32, timeout: Duration) -> bool {
        let r = self.roles[role].clone();
        self.drive(
            true,
            false,
            timeout,
            |_| matches!(r.state(), RoleState::Exited { pid: p } if p == pid),
        )
    }

    /// Serves until the role's holder `pid` is gone: exited, or said `Bye`
    /// and exited (vacant).
    fn wait_released(&mut self, role: usize, pid: u32, timeout: Duration) -> bool {
        let r = self.roles[role].clone();
        self.drive(false, false, timeout, |_| match r.state() {
            RoleState::Exited { pid: p } => p == pid,
            RoleState::Vacant => true,
            _ => false,
        })
    }

    /// The ledger's balance: every buffer free, with the exporter or lent,
    /// none lost; the audit passes.
    fn assert_balanced(&self, when: &str) {
        let c = self.pool.counts();
        let lent = c.lent_total();
        assert_eq!(
            c.free + c.exporter_out + lent,
            c.total as usize,
            "{when}: free {} + exporter {} + lent {lent} != {} ({c:?})",
            c.free,
            c.exporter_out,
            c.total
        );
        assert_eq!(c.lost, 0, "{when}: {c:?}");
        if let Err(e) = self.pool.audit() {
            panic!("{when}: audit: {e}");
        }
    }

    /// After a holder's death and its reclaim: once what it had published
    /// up has been received, the ledger lends the role exactly what sits in
    /// its rings for the next holder — no buffer the dead process held is
    /// still counted as lent, none is counted twice.
    fn assert_exact_after_death(&mut self, role: usize, when: &str) {
        let mut quiet = 0;
        self.drive(false, false, Duration::from_secs(5), |_| {
            quiet += 1;
            quiet > 50
        });
        let c = self.pool.counts();
        let name = self.roles[role].name().to_string();
        let lent = c.lent.iter().find(|l| l.0 == name).map_or(0, |l| l.1);
        assert_eq!(
            lent,
            self.hubs[role].in_rings(),
            "{when}: lent to {name} per the ledger vs queued in its rings ({c:?})"
        );
        self.assert_balanced(when);
    }

    /// The session over: every port closed (the rings go, and with them
    /// what was still queued to their roles), then everything must be home:
    /// the pool full, the ledger all zero.
    fn close_and_assert_full(&mut self, when: &str) {
        for h in &mut self.hubs {
            h.close();
        }
        self.assert_balanced(when);
        let c = self.pool.counts();
        assert_eq!(c.free, c.total as usize, "{when}: {c:?}");
        assert_eq!(c.lent_total(), 0, "{when}: {c:?}");
        assert!(self.pool.is_full(), "{when}: {c:?}");
    }

    fn assert_no_rejects(&self) {
        for h in &self.hubs {
            assert_eq!(h.stats().rejected.total(), 0, "{:?}", h.stats());
        }
    }
}

/// Spawns this test binary as a peer with `cfg`; `wrap` may put a command
/// in front (`unshare ...`).
fn spawn_peer(
    cfg: &PeerConfig,
    label: &str,
    wrap: &[&str],
    extra_env: &[(&str, String)],
) -> PeerChild {
    let exe = std::env::current_exe().unwrap();
    let mut cmd = if let Some((first, rest)) = wrap.split_first() {
        let mut c = Command::new(first);
        c.args(rest).arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args([
        "child_peer",
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .envs(cfg.to_env());
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let echo = std::env::var_os("PKTMEM_2P_ECHO").is_some();
    PeerChild::spawn(cmd, label, echo).unwrap()
}

/// The peer process: runs the example's peer with the settings in the
/// environment and asserts it saw nothing wrong.
#[test]
#[ignore = "the peer process of the other tests (they run it with PKTMEM_2P_SOCKET set)"]
fn child_peer() {
    let cfg = PeerConfig::from_env().expect("run by the other tests, with PKTMEM_2P_SOCKET");
    let ns = |n: &str| {
        std::fs::read_link(format!("/proc/self/ns/{n}"))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    let mnt = ns("mnt");
    let mut hidden = 0;
    if let Ok(parent_mnt) = std::env::var(HIDE_HUGETLBFS) {
        // Only in a mount namespace of our own: the mounts we detach are
        // this namespace's copies, the host keeps its own.
        assert_ne!(
            parent_mnt, mnt,
            "asked to hide hugetlbfs in the parent's mount namespace"
        );
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        for m in mounts
            .lines()
            .filter(|l| l.split(' ').nth(2) == Some("hugetlbfs"))
        {
            let target = m.split(' ').nth(1).unwrap_or_default().to_string();
            let c = std::ffi::CString::new(target).unwrap();
            // SAFETY: a valid NUL-terminated path; detaching a mount in a
            // private mount namespace touches no memory of ours.
            if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
                hidden += 1;
            }
        }
    }
    // The harness printed `test child_peer ... ` without a newline.
    println!();
    println!(
        "peer-ns getpid={} mnt={mnt} pid={} hugetlbfs_detached={hidden}",
        std::process::id(),
        ns("pid")
    );
    let r = peer::run(&cfg).unwrap();
    assert_eq!(r.pages_bad, 0, "{r:?}");
    assert_eq!(r.bad, 0, "{r:?}");
    assert!(r.fin, "{r:?}");
    assert_eq!(r.b_echo_ok, r.b_sent, "{r:?}");
}

/// The `key=value` words of the child's line that starts with `prefix`.
fn kv_line(lines: &[String], prefix: &str) -> Kv {
    match child::find_line(lines, prefix) {
        Some(l) => Kv::parse(l),
        None => panic!("no {prefix:?} line from the child: {lines:?}"),
    }
}

fn attach_line(c: &PeerChild) -> Kv {
    Kv::parse(&c.line("peer-attach ").unwrap_or_default())
}

/// Waits (serving) until the child printed `prefix`.
fn wait_line(rig: &mut Rig, c: &PeerChild, prefix: &str, timeout: Duration) -> Option<String> {
    rig.drive(true, false, timeout, |_| c.line(prefix).is_some());
    c.line(prefix)
}

/// The example's flows, as assertions: A and B packets both ways, the peer
/// killed with SIGKILL mid-transfer (holding buffers), reclaim, restart as
/// generation 2, the run finished, everything home.
#[allow(clippy::too_many_lines)] // one scenario, step by step
fn flows(relocate: bool) {
    let a_total = 4000;
    let hold = 8;
    let mut rig = rig(
        &["peer"],
        2048,
        HubConfig {
            a_total,
            window: 256,
            burst: 32,
        },
    );
    let mut cfg = rig.peer_config(0);
    cfg.relocate = relocate;
    cfg.hold = hold;

    let mut c1 = spawn_peer(&cfg, "gen 1", &[], &[]);
    let ready = wait_line(&mut rig, &c1, "peer-ready ", Duration::from_secs(20));
    assert!(
        ready.is_some(),
        "generation 1 never got ready: {:?}",
        c1.final_lines(Duration::ZERO)
    );
    let a1 = attach_line(&c1);
    assert_eq!(a1.num("gen"), 1, "{a1:?}");
    assert_eq!(rig.roles[0].generation(), 1);
    if relocate {
        assert_eq!(a1.str("mode"), Some("relocated"), "{a1:?}");
    } else if a1.str("mode") != Some("same-va") {
        skip(&format!("same-VA flows: the peer found the exporter's VA taken and relocated ({a1:?}); the relocated path ran instead"));
    }
    let t = Kv::parse(&c1.line("peer-translate ").unwrap());
    assert!(t.num("pages") > 0 && t.num("bad") == 0, "{t:?}");
    assert_eq!(t.num("exporter_table"), t.num("pages"), "{t:?}");

    // Mid-transfer.
    let half = a_total / 2;
    assert!(
        rig.drive(true, false, Duration::from_secs(30), |r| r.hubs[0].a_sent
            >= half
            && r.hubs[0].a_answered > hold as u64 * 2),
        "no traffic: {:?}",
        c1.lines()
    );
    let lent_before: usize = rig.pool.counts().lent.iter().map(|l| l.1).sum();
    assert!(lent_before > hold, "the peer holds buffers: {lent_before}");
    let st0 = rig.hubs[0].stats();
    let a_at_kill = rig.hubs[0].a_sent;
    let pid1 = c1.pid();
    c1.sigkill().unwrap();
    rig.hubs[0].peer_died();
    assert!(
        rig.wait_exited(0, pid1, Duration::from_secs(10)),
        "role state after the kill: {:?}",
        rig.roles[0].state()
    );
    rig.hubs[0].service();
    let st1 = rig.hubs[0].stats();
    let reclaimed = st1.reclaimed - st0.reclaimed;
    assert!(reclaimed > 0, "{st1:?}");
    rig.assert_exact_after_death(0, "after the kill");

    let mut c2 = spawn_peer(&cfg, "gen 2", &[], &[]);
    assert!(
        rig.drive(true, true, Duration::from_secs(60), |r| r.hubs[0].fin_back),
        "no Fin answer from generation 2: {:?} / {:?}",
        c2.lines(),
        rig.hubs[0].first_error
    );
    let a2 = attach_line(&c2);
    assert_eq!(a2.num("gen"), 2, "{a2:?}");
    if relocate {
        assert_eq!(a2.str("mode"), Some("relocated"), "{a2:?}");
    }
    let pid2 = c2.pid();
    assert!(rig.drive(false, false, Duration::from_secs(20), |_| c2
        .try_status()
        .is_some()));
    let exit = c2.try_status().unwrap();
    assert!(
        exit.success(),
        "generation 2: {exit}: {:?}",
        c2.final_lines(Duration::from_secs(1))
    );
    assert!(rig.wait_released(0, pid2, Duration::from_secs(10)));
    rig.hubs[0].service();
    let stats = kv_line(&c2.final_lines(Duration::from_secs(2)), "peer-stats ");

    let h = &rig.hubs[0];
    assert_eq!(h.bad, 0, "{:?}", h.first_error);
    assert_eq!(h.a_sent, a_total);
    let lost = h.a_outstanding.len() as u64;
    assert_eq!(h.a_answered + lost, a_total);
    assert!(
        lost >= hold as u64,
        "the killed peer held {hold} answers, {lost} A lost"
    );
    assert!(lost <= reclaimed, "{lost} A lost, {reclaimed} reclaimed");
    assert!(h.a_outstanding.iter().all(|&s| s < a_at_kill));
    assert_eq!(stats.num("bad"), 0, "{stats:?}");
    assert_eq!(stats.num("gen"), 2);
    // Generation 2 started where generation 1's last taken A left off (the
    // rest of the down ring was resumed).
    assert!(
        stats.num("a_first") > 0 && stats.num("a_first") <= a_at_kill,
        "{stats:?}"
    );
    assert_eq!(h.b_seen.get(&2).map(|b| b.0), Some(stats.num("b_sent")));
    assert!(h.b_seen.get(&1).is_some_and(|b| b.0 > 0));
    rig.assert_no_rejects();
    rig.close_and_assert_full("at the end");
}

#[test]
fn flows_both_ways_same_va_with_kill_and_restart() {
    flows(false);
}

#[test]
fn flows_both_ways_relocated_with_kill_and_restart() {
    flows(true);
}

/// xorshift64*, seeded from the clock or `PKTMEM_2P_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("PKTMEM_2P_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
                    | 1
            });
        eprintln!("seed {seed} (PKTMEM_2P_SEED={seed} repeats this run)");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Ten peers in a row, each killed with SIGKILL at a random point — during the
/// handshake, right after it, or after a random number of answers (mid
/// burst) — with the pool audited after each; an eleventh finishes the run
/// and everything comes home.
#[test]
#[allow(clippy::too_many_lines)] // one scenario, step by step
fn sigkill_at_random_points() {
    // PKTMEM_2P_ROUNDS=100 for a longer run.
    let rounds = std::env::var("PKTMEM_2P_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(10u64);
    let mut rng = Rng::new();
    let mut rig = rig(
        &["victim"],
        2048,
        HubConfig {
            a_total: 400 * rounds + 1000,
            window: 256,
            burst: 32,
        },
    );
    let mut cfg = rig.peer_config(0);
    cfg.hold = 4;
    let t0 = Instant::now();
    let mut reclaimed = 0;
    let mut kills_in_traffic = 0;
    for round in 0..rounds {
        cfg.relocate = rng.below(2) == 1;
        let mut c = spawn_peer(&cfg, "victim", &[], &[]);
        let pid = c.pid();
        let point = rng.below(4);
        let gen_before = rig.roles[0].generation();
        match point {
            0 => std::thread::sleep(Duration::from_millis(rng.below(15))),
            1 => {
                wait_line(&mut rig, &c, "peer-attach ", Duration::from_secs(20));
            }
            _ => {
                wait_line(&mut rig, &c, "peer-ready ", Duration::from_secs(20));
                let want = rig.hubs[0].a_answered + 1 + rng.below(300);
                // (or until nothing is left to answer: the budget is spent)
                rig.drive(true, false, Duration::from_secs(20), |r| {
                    let h = &r.hubs[0];
                    h.a_answered >= want || (h.a_sent == h.a_total() && h.a_outstanding.is_empty())
                });
                kills_in_traffic += 1;
            }
        }
        let st0 = rig.hubs[0].stats();
        c.sigkill().unwrap();
        rig.hubs[0].peer_died();
        let attached = rig.roles[0].generation() > gen_before || c.line("peer-attach ").is_some();
        if attached {
            assert!(
                rig.wait_exited(0, pid, Duration::from_secs(10)),
                "round {round}: role {:?} after the kill",
                rig.roles[0].state()
            );
        } else {
            // Killed before its Hello was granted (or even sent): give the
            // exporter's thread time to see a Hello in flight die.
            rig.drive(true, false, Duration::from_millis(50), |_| false);
            if rig.roles[0].generation() > gen_before {
                assert!(
                    rig.wait_exited(0, pid, Duration::from_secs(10)),
                    "round {round}"
                );
            }
        }
        rig.hubs[0].service();
        let st1 = rig.hubs[0].stats();
        reclaimed += st1.reclaimed - st0.reclaimed;
        rig.assert_exact_after_death(0, &format!("round {round} (kill point {point})"));
        assert_eq!(
            rig.hubs[0].bad, 0,
            "round {round}: {:?}",
            rig.hubs[0].first_error
        );
        drop(c);
    }
    assert!(
        kills_in_traffic > 0 || rounds < 4,
        "no kill landed mid-traffic"
    );
    // The last peer finishes.
    cfg.relocate = false;
    let mut c = spawn_peer(&cfg, "finisher", &[], &[]);
    assert!(
        rig.drive(true, true, Duration::from_secs(60), |r| r.hubs[0].fin_back),
        "no Fin answer: {:?}",
        c.lines()
    );
    let pid = c.pid();
    assert!(rig.drive(false, false, Duration::from_secs(20), |_| c
        .try_status()
        .is_some()));
    assert!(
        c.try_status().unwrap().success(),
        "{:?}",
        c.final_lines(Duration::from_secs(1))
    );
    assert!(rig.wait_released(0, pid, Duration::from_secs(10)));
    rig.hubs[0].service();
    let h = &rig.hubs[0];
    let lost = h.a_outstanding.len() as u64;
    assert_eq!(h.a_answered + lost, h.a_sent);
    assert!(
        lost <= reclaimed,
        "{lost} A lost, {reclaimed} reclaimed in all"
    );
    rig.assert_no_rejects();
    rig.close_and_assert_full("after the rounds");
    eprintln!(
        "{rounds} kills ({kills_in_traffic} mid-traffic): {reclaimed} buffers reclaimed, {lost} A packets lost with the killed peers, {:.2} s",
        t0.elapsed().as_secs_f64()
    );
}

/// Two peer processes, each with its own role and port, pinned to the same
/// CPU and hammering one pool (allocating from their lend rings, freeing
/// echoes into their own caches): nothing crosses over (no rejects), the
/// ledger balances at every check and everything comes home.
#[test]
fn two_peers_pinned_to_one_cpu() {
    let a_total = 3000;
    let mut rig = rig(
        &["w1", "w2"],
        2048,
        HubConfig {
            a_total,
            window: 128,
            burst: 32,
        },
    );
    let cpu = child::affinity().first().copied().unwrap_or(0);
    let mut children: Vec<PeerChild> = (0..2)
        .map(|i| {
            let mut cfg = rig.peer_config(i);
            cfg.cpu = Some(cpu);
            cfg.b_per_a = 2;
            spawn_peer(&cfg, &format!("w{}", i + 1), &[], &[])
        })
        .collect();
    let mut checks = 0;
    let done = rig.drive(true, true, Duration::from_secs(90), |r| {
        checks += 1;
        if checks % 200 == 0 {
            r.assert_balanced("while both run");
        }
        r.hubs.iter().all(|h| h.fin_back)
    });
    assert!(
        done,
        "{:?} / {:?}",
        children[0].lines(),
        children[1].lines()
    );
    for (i, c) in children.iter_mut().enumerate() {
        let pid = c.pid();
        assert!(rig.drive(false, false, Duration::from_secs(20), |_| c
            .try_status()
            .is_some()));
        let st = c.try_status().unwrap();
        let lines = c.final_lines(Duration::from_secs(2));
        assert!(st.success(), "w{}: {st}: {lines:?}", i + 1);
        let pin = kv_line(&lines, "peer-pin ");
        assert_eq!(
            (pin.num("cpu"), pin.num("ok")),
            (cpu as u64, 1),
            "{lines:?}"
        );
        let stats = kv_line(&lines, "peer-stats ");
        assert_eq!(stats.num("a_ok"), a_total, "{stats:?}");
        assert_eq!(stats.num("bad"), 0, "{stats:?}");
        assert_eq!(rig.hubs[i].b_total(), stats.num("b_sent"));
        assert!(rig.wait_released(i, pid, Duration::from_secs(10)));
    }
    for h in &mut rig.hubs {
        h.service();
        assert_eq!(h.bad, 0, "{:?}", h.first_error);
        assert_eq!(h.a_answered, a_total);
        assert!(h.a_outstanding.is_empty());
    }
    assert!(checks >= 200, "the ledger was checked while both ran");
    rig.assert_no_rejects();
    rig.close_and_assert_full("after both peers");
}

/// A peer in mount and PID namespaces of its own (`unshare --mount --pid
/// --fork`), its hugetlbfs mounts detached: it needs no path and no mount,
/// only the socket and the fds it passes; many buffers go both ways.
#[test]
#[allow(clippy::too_many_lines)] // one scenario, step by step
fn peer_in_other_mount_and_pid_namespaces() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip("peer in other namespaces: needs root (unshare of the mount and PID namespaces)");
        return;
    }
    let have_unshare = Command::new("unshare")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_unshare {
        skip("peer in other namespaces: no `unshare` tool (util-linux)");
        return;
    }
    let a_total = 20_000;
    let mut rig = rig(
        &["nsd"],
        2048,
        HubConfig {
            a_total,
            window: 256,
            burst: 32,
        },
    );
    let cfg = rig.peer_config(0);
    let my_mnt = std::fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .display()
        .to_string();
    let my_pid = std::fs::read_link("/proc/self/ns/pid")
        .unwrap()
        .display()
        .to_string();
    let t0 = Instant::now();
    let mut c = spawn_peer(
        &cfg,
        "nsd",
        &[
            "unshare",
            "--mount",
            "--pid",
            "--fork",
            "--kill-child",
            "--",
        ],
        &[(HIDE_HUGETLBFS, my_mnt.clone())],
    );
    // The holder's pid as the exporter sees it (SO_PEERCRED: in our PID
    // namespace), and that process's PID namespace, read while it runs.
    let mut holder: Option<(u32, String)> = None;
    let done = rig.drive(true, true, Duration::from_secs(120), |r| {
        if holder.is_none() {
            if let RoleState::Attached { pid } = r.roles[0].state() {
                let ns = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                holder = Some((pid, ns));
            }
        }
        r.hubs[0].fin_back
    });
    assert!(done, "{:?} / {:?}", c.lines(), rig.hubs[0].first_error);
    let (holder_pid, holder_ns) = holder.expect("the role was seen attached");
    assert_ne!(
        holder_pid, 1,
        "the exporter sees the peer's pid in its own namespace"
    );
    assert_ne!(
        holder_pid,
        c.pid(),
        "the holder is unshare's child, not unshare"
    );
    assert!(
        !holder_ns.is_empty() && holder_ns != my_pid,
        "{holder_ns} vs {my_pid}"
    );
    assert!(rig.drive(false, false, Duration::from_secs(20), |_| c
        .try_status()
        .is_some()));
    let st = c.try_status().unwrap();
    let lines = c.final_lines(Duration::from_secs(2));
    assert!(st.success(), "{st}: {lines:?}");
    let ns = kv_line(&lines, "peer-ns ");
    assert_ne!(ns.str("mnt"), Some(my_mnt.as_str()), "{ns:?}");
    assert_ne!(ns.str("pid"), Some(my_pid.as_str()), "{ns:?}");
    assert_eq!(
        ns.num("getpid"),
        1,
        "the peer is the first process of its PID namespace: {ns:?}"
    );
    let stats = kv_line(&lines, "peer-stats ");
    assert_eq!(stats.num("bad"), 0, "{stats:?}");
    assert_eq!(stats.num("a_ok"), a_total);
    assert_eq!(ns.str("pid"), Some(holder_ns.as_str()));
    assert!(
        rig.wait_released(0, holder_pid, Duration::from_secs(10)),
        "{:?}",
        rig.roles[0].state()
    );
    assert!(rig.exporter.roles().iter().any(|i| i.name == "nsd"));
    rig.hubs[0].service();
    let h = &rig.hubs[0];
    assert_eq!(h.bad, 0, "{:?}", h.first_error);
    assert_eq!(h.a_answered, a_total);
    let moved = h.stats().sent + h.stats().received;
    rig.assert_no_rejects();
    rig.close_and_assert_full("after the namespaced peer");
    eprintln!(
        "namespaced peer: {moved} buffers crossed ({} hugetlbfs mounts detached in its namespace) in {:.2} s",
        ns.num("hugetlbfs_detached"),
        t0.elapsed().as_secs_f64()
    );
}
