//! The peer's side: attach to the exporter's socket, report the placement,
//! check translation on every page, open the shared pool and this role's
//! port, then answer `A` packets, originate `B` packets and free their
//! echoes until the exporter's `Fin` has been answered and every `B` came
//! back. Everything it has to say goes to stdout as `peer-...` lines of
//! `key=value` words (the exporter parses them).

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pktmem::hugemem::share::{Attachment, Backoff, Placement};
use pktmem::hugemem::{virt2phys, IovaMode};
use pktmem::shm::{PeerPool, SharedBuf};

use crate::child;
use crate::packet::{self, Flow};

/// Name of the directory entry with the exporter's page table: pairs of
/// little-endian `u64` (exporter VA of a page, raw IOVA).
pub const PAGES_ENTRY: &str = "two_process/pages";

/// What the peer is told (command-line flags or environment).
#[derive(Clone, Debug)]
pub struct PeerConfig {
    /// The exporter's socket.
    pub socket: PathBuf,
    /// Role name.
    pub role: String,
    /// Shared pool name.
    pub pool: String,
    /// Never map at the exporter's VA.
    pub relocate: bool,
    /// `B` packets originated per `A` answered.
    pub b_per_a: u32,
    /// Answered `A` packets kept back before they go up (so the peer always
    /// holds some buffers in the application).
    pub hold: usize,
    /// Buffers per receive / send burst.
    pub burst: usize,
    /// Pin to this CPU.
    pub cpu: Option<usize>,
    /// Give up after this long.
    pub deadline: Duration,
}

impl PeerConfig {
    /// Defaults for `socket` and `role`.
    pub fn new(socket: PathBuf, role: &str) -> PeerConfig {
        PeerConfig {
            socket,
            role: role.to_string(),
            pool: "pkts".to_string(),
            relocate: false,
            b_per_a: 1,
            hold: 8,
            burst: 32,
            cpu: None,
            deadline: Duration::from_secs(120),
        }
    }

    /// As environment variables for a child (see [`PeerConfig::from_env`]).
    pub fn to_env(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("PKTMEM_2P_SOCKET".into(), self.socket.display().to_string()),
            ("PKTMEM_2P_ROLE".into(), self.role.clone()),
            ("PKTMEM_2P_POOL".into(), self.pool.clone()),
            (
                "PKTMEM_2P_RELOCATE".into(),
                u8::from(self.relocate).to_string(),
            ),
            ("PKTMEM_2P_B_PER_A".into(), self.b_per_a.to_string()),
            ("PKTMEM_2P_HOLD".into(), self.hold.to_string()),
            ("PKTMEM_2P_BURST".into(), self.burst.to_string()),
            (
                "PKTMEM_2P_DEADLINE_MS".into(),
                self.deadline.as_millis().to_string(),
            ),
        ];
        if let Some(c) = self.cpu {
            v.push(("PKTMEM_2P_CPU".into(), c.to_string()));
        }
        v
    }

    /// Reads what [`PeerConfig::to_env`] wrote; `None` without a socket.
    pub fn from_env() -> Option<PeerConfig> {
        let get = |k: &str| std::env::var(k).ok();
        let num = |k: &str| get(k).and_then(|v| v.parse::<u64>().ok());
        let mut c = PeerConfig::new(
            PathBuf::from(get("PKTMEM_2P_SOCKET")?),
            &get("PKTMEM_2P_ROLE").unwrap_or_else(|| "peer".into()),
        );
        if let Some(p) = get("PKTMEM_2P_POOL") {
            c.pool = p;
        }
        c.relocate = num("PKTMEM_2P_RELOCATE") == Some(1);
        if let Some(n) = num("PKTMEM_2P_B_PER_A") {
            c.b_per_a = n as u32;
        }
        if let Some(n) = num("PKTMEM_2P_HOLD") {
            c.hold = n as usize;
        }
        if let Some(n) = num("PKTMEM_2P_BURST") {
            c.burst = (n as usize).max(1);
        }
        if let Some(n) = num("PKTMEM_2P_DEADLINE_MS") {
            c.deadline = Duration::from_millis(n);
        }
        c.cpu = num("PKTMEM_2P_CPU").map(|n| n as usize);
        Some(c)
    }
}

/// What the peer counted.
#[derive(Debug, Default)]
pub struct PeerReport {
    /// The generation it was granted.
    pub generation: u64,
    /// Every list at the exporter's VA.
    pub same_va: bool,
    /// Pages checked in translation (both ways, IOVA).
    pub pages_checked: u64,
    /// Of those, wrong.
    pub pages_bad: u64,
    /// Pages also checked against this process's page map (root, PA mode).
    pub pagemap_checked: u64,
    /// `A` packets checked and answered.
    pub a_ok: u64,
    /// Sequence numbers skipped within this generation's `A` packets (the
    /// first one may start anywhere: a previous generation took some).
    pub a_gaps: u64,
    /// The first `A` sequence number this generation saw.
    pub a_first: Option<u64>,
    /// `B` packets originated.
    pub b_sent: u64,
    /// Echoes of this generation's `B` packets back and checked.
    pub b_echo_ok: u64,
    /// Echoes of an earlier generation's `B` packets (left in the rings).
    pub b_echo_inherited: u64,
    /// `B` packets not originated because no buffer was free.
    pub b_no_buf: u64,
    /// Packets that failed a check.
    pub bad: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// The `Fin` was answered.
    pub fin: bool,
    /// Descriptors from the exporter the peer pool refused (all classes).
    pub rejected: u64,
    /// Nanoseconds in the port's receive and send bursts.
    pub port_ns: u64,
    /// Nanoseconds between them (allocating, checking, answering, freeing).
    pub work_ns: u64,
    /// Buffers received and sent.
    pub moved: u64,
}

impl PeerReport {
    fn fail(&mut self, e: String) {
        self.bad += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// The `peer-stats` line.
    pub fn line(&self) -> String {
        format!(
            "peer-stats gen={} same_va={} pages={} pages_bad={} pagemap={} a_ok={} a_gaps={} \
             a_first={} b_sent={} b_echo_ok={} b_echo_inherited={} b_no_buf={} bad={} fin={} rejected={} port_ns={} work_ns={} moved={} error={}",
            self.generation,
            u8::from(self.same_va),
            self.pages_checked,
            self.pages_bad,
            self.pagemap_checked,
            self.a_ok,
            self.a_gaps,
            self.a_first.map_or("-".to_string(), |s| s.to_string()),
            self.b_sent,
            self.b_echo_ok,
            self.b_echo_inherited,
            self.b_no_buf,
            self.bad,
            u8::from(self.fin),
            self.rejected,
            self.port_ns,
            self.work_ns,
            self.moved,
            self.first_error
                .as_deref()
                .unwrap_or("-")
                .replace(char::is_whitespace, "_"),
        )
    }
}

/// Writes `frame` as the whole data of `buf`.
pub fn put_frame(buf: &mut SharedBuf, frame: &[u8]) -> Result<(), String> {
    buf.set_len(frame.len())
        .map_err(|e| format!("set_len({}): {e}", frame.len()))?;
    buf.write(0, frame)
        .map_err(|e| format!("write of {} B: {e}", frame.len()))?;
    Ok(())
}

/// Checks the frame in `buf` (copied out first: the bytes are the other
/// process's to change until then).
pub fn get_frame(buf: &SharedBuf) -> Result<packet::Meta, String> {
    packet::check(&buf.copy_to_vec())
}

/// Checks translation on every page the attachment maps: both directions
/// at the start, middle and last byte, the IOVA against the exporter's
/// table, and — as root with physical IOVAs — against this process's page
/// map. Prints one `peer-translate` line.
pub fn check_translation(att: &Attachment, r: &mut PeerReport) {
    let table: Vec<(u64, u64)> = att
        .lookup(PAGES_ENTRY)
        .unwrap_or_default()
        .chunks_exact(16)
        .map(|c| {
            (
                u64::from_le_bytes(c[..8].try_into().expect("8 bytes")),
                u64::from_le_bytes(c[8..].try_into().expect("8 bytes")),
            )
        })
        .collect();
    let pa = att.iova_mode() == IovaMode::Pa;
    let same_va = att.same_va();
    let mut in_table = 0u64;
    let mut first_bad: Option<String> = None;
    att.walk_pages(|p| {
        let exp = p.exp_va;
        let local = p.local_va;
        let len = p.len;
        let mut bad = Vec::new();
        for off in [0, len / 2, len - 1] {
            let want = (local + off) as *mut u8;
            match att.to_local(exp + off as u64, 1) {
                Some(l) if l.as_ptr() == want => {}
                got => bad.push(format!("to_local(+{off}) = {got:?}")),
            }
            if att.to_exporter(want) != Some(exp + off as u64) {
                bad.push(format!("to_exporter(+{off})"));
            }
        }
        if same_va && local as u64 != exp {
            bad.push(format!("same VA, but mapped at {local:#x}"));
        }
        if att.to_local(exp, len).is_none() {
            bad.push("whole page not mapped".into());
        }
        let iova = att.iova(exp);
        if iova != p.iova {
            bad.push(format!("iova {iova:?}, record {:?}", p.iova));
        }
        if let Some(i) = iova {
            if att.iova(exp + len as u64 / 2).map(|m| m.0) != Some(i.0 + len as u64 / 2) {
                bad.push("iova mid-page".into());
            }
        }
        if let Some(&(_, raw)) = table.iter().find(|(va, _)| *va == exp) {
            in_table += 1;
            if raw != iova.map_or(u64::MAX, |i| i.0) {
                bad.push(format!("iova {iova:?}, exporter's {raw:#x}"));
            }
        }
        if pa {
            if let Some(i) = iova {
                // SAFETY: `local` is a mapped page of the attachment (just
                // checked); a volatile read of one byte faults it in (the
                // page map reports only present pages) and creates no
                // reference to memory the exporter may write.
                let _ = unsafe { std::ptr::read_volatile(local as *const u8) };
                match virt2phys(local) {
                    Ok(phys) if phys == i.0 => r.pagemap_checked += 1,
                    Ok(phys) => bad.push(format!("page map {phys:#x}, iova {:#x}", i.0)),
                    Err(_) => {} // not root: no frame numbers
                }
            }
        }
        r.pages_checked += 1;
        if !bad.is_empty() {
            r.pages_bad += 1;
            first_bad.get_or_insert_with(|| format!("page {exp:#x}: {}", bad.join(", ")));
        }
    });
    if table.len() as u64 > in_table {
        r.pages_bad += table.len() as u64 - in_table;
        first_bad.get_or_insert_with(|| {
            format!(
                "{} of the exporter's pages missing here",
                table.len() as u64 - in_table
            )
        });
    }
    println!(
        "peer-translate pages={} bad={} exporter_table={} pagemap={} first_bad={}",
        r.pages_checked,
        r.pages_bad,
        table.len(),
        r.pagemap_checked,
        first_bad.as_deref().unwrap_or("-").replace(' ', "_")
    );
    if let Some(e) = first_bad {
        r.fail(format!("translation: {e}"));
    }
}

/// Runs the peer to the end (the `Fin` answered, every `B` echoed back).
/// Errors are what stopped it early (attach, pool, port, exporter gone,
/// deadline).
#[allow(clippy::too_many_lines)]
pub fn run(cfg: &PeerConfig) -> Result<PeerReport, String> {
    let start = Instant::now();
    if let Some(c) = cfg.cpu {
        let ok = child::pin(c);
        println!("peer-pin cpu={c} ok={}", u8::from(ok));
    }
    let att = Attachment::builder(&cfg.role)
        .placement(if cfg.relocate {
            Placement::Relocate
        } else {
            Placement::SameVaIfFree
        })
        .retry(Backoff {
            deadline: Some(cfg.deadline),
            ..Backoff::default()
        })
        .connect(&cfg.socket)
        .map_err(|e| format!("attach to {}: {e}", cfg.socket.display()))?;
    let att = Arc::new(att);
    let mut r = PeerReport {
        generation: att.generation(),
        same_va: att.same_va(),
        ..PeerReport::default()
    };
    let lists = att.placement();
    let pages: u64 = lists.iter().map(|l| l.mapped_pages as u64).sum();
    println!(
        "peer-attach pid={} role={} slot={} gen={} exporter_pid={} iova={:?} mode={} lists={} pages={} attach_ms={}",
        std::process::id(),
        att.role(),
        att.role_slot(),
        att.generation(),
        att.exporter_pid(),
        att.iova_mode(),
        if att.same_va() { "same-va" } else { "relocated" },
        lists.len(),
        pages,
        start.elapsed().as_millis(),
    );
    for l in &lists {
        println!(
            "peer-list page_size={} exporter_base={:#x} local_base={:#x} reserve={} mapped_pages={} same_va={}",
            l.page_size,
            l.exporter_base,
            l.local_base,
            l.reserve,
            l.mapped_pages,
            u8::from(l.same_va)
        );
    }
    check_translation(&att, &mut r);

    let pool =
        PeerPool::open(&att, &cfg.pool).map_err(|e| format!("open pool {}: {e}", cfg.pool))?;
    let mut port = pool
        .port()
        .map_err(|e| format!("port of {}: {e}", cfg.role))?;
    println!(
        "peer-ready gen={} ms={}",
        r.generation,
        start.elapsed().as_millis()
    );

    let gen = r.generation as u32;
    let mut rx: Vec<SharedBuf> = Vec::with_capacity(cfg.burst);
    let mut tx: Vec<SharedBuf> = Vec::with_capacity(cfg.burst * 4);
    let mut held: VecDeque<SharedBuf> = VecDeque::with_capacity(cfg.hold + 1);
    let mut outstanding: BTreeSet<u64> = BTreeSet::new();
    let mut next_a: Option<u64> = None;
    let mut frame = Vec::with_capacity(packet::MAX_FRAME);
    let mut idle = 0u32;
    loop {
        let t0 = Instant::now();
        let n = port.recv_burst(&mut rx, cfg.burst);
        let t1 = Instant::now();
        for mut buf in rx.drain(..) {
            let m = match get_frame(&buf) {
                Ok(m) if m.flow.is_down() => m,
                Ok(m) => {
                    r.fail(format!("a {:?} packet on the down ring", m.flow));
                    continue;
                }
                Err(e) => {
                    r.fail(e);
                    continue;
                }
            };
            match m.flow {
                Flow::A => {
                    match next_a {
                        Some(want) if m.seq != want => {
                            r.a_gaps += m.seq.wrapping_sub(want);
                            r.fail(format!("A {} after A {}", m.seq, want.wrapping_sub(1)));
                        }
                        None => r.a_first = Some(m.seq),
                        Some(_) => {}
                    }
                    next_a = Some(m.seq + 1);
                    if let Err(e) =
                        packet::answer(&m, &mut frame).and_then(|()| put_frame(&mut buf, &frame))
                    {
                        r.fail(e);
                        continue;
                    }
                    r.a_ok += 1;
                    held.push_back(buf);
                    while held.len() > cfg.hold {
                        tx.extend(held.pop_front());
                    }
                    if !r.fin {
                        for _ in 0..cfg.b_per_a {
                            match pool.alloc() {
                                Ok(mut b) => {
                                    packet::build(Flow::B, gen, r.b_sent, &mut frame);
                                    if let Err(e) = put_frame(&mut b, &frame) {
                                        r.fail(e);
                                        continue;
                                    }
                                    outstanding.insert(r.b_sent);
                                    r.b_sent += 1;
                                    tx.push(b);
                                }
                                Err(_) => r.b_no_buf += 1,
                            }
                        }
                    }
                }
                Flow::BEcho if m.gen == gen => {
                    if outstanding.remove(&m.seq) {
                        r.b_echo_ok += 1;
                    } else {
                        r.fail(format!("echo of B {} not outstanding", m.seq));
                    }
                }
                Flow::BEcho if m.gen < gen => r.b_echo_inherited += 1,
                Flow::BEcho => r.fail(format!("echo of generation {} B {}", m.gen, m.seq)),
                Flow::Fin => {
                    // Everything answered goes up before the Fin's answer.
                    tx.extend(held.drain(..));
                    if let Err(e) =
                        packet::answer(&m, &mut frame).and_then(|()| put_frame(&mut buf, &frame))
                    {
                        r.fail(e);
                        continue;
                    }
                    tx.push(buf);
                    r.fin = true;
                }
                _ => unreachable!("down flows only"),
            }
        }
        let t2 = Instant::now();
        let sent = if tx.is_empty() {
            0
        } else {
            port.send_burst(&mut tx)
        };
        r.port_ns += (t1 - t0 + t2.elapsed()).as_nanos() as u64;
        r.work_ns += (t2 - t1).as_nanos() as u64;
        r.moved += (n + sent) as u64;
        if r.fin && tx.is_empty() && outstanding.is_empty() {
            break;
        }
        if n == 0 && sent == 0 {
            if !att.is_connected() {
                return Err(format!(
                    "the exporter went away ({})",
                    att.last_error().unwrap_or_default()
                ));
            }
            if start.elapsed() > cfg.deadline {
                return Err(format!(
                    "deadline of {:?}: fin={} {} B outstanding, {} to send",
                    cfg.deadline,
                    r.fin,
                    outstanding.len(),
                    tx.len()
                ));
            }
            idle += 1;
            if idle > 2000 {
                std::thread::sleep(Duration::from_micros(50));
            } else if idle > 64 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        } else {
            idle = 0;
        }
    }
    r.rejected = pool.stats().rejected.total();
    println!("{}", r.line());
    drop(port);
    drop(pool);
    drop(att);
    Ok(r)
}
