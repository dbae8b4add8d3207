//! The exporter's side of one port: originate `A` packets (a window of
//! them in flight), check the peer's answers, echo the peer's `B` packets
//! back down, and end with a `Fin` whose answer says every `A` the live
//! peer got has been answered — the ones still missing then are exactly
//! those a killed generation took with it.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use pktmem::hugemem::{Iova, Provider};
use pktmem::shm::{Port, PortStats, SharedBuf, SharedPool};

use crate::packet::{self, Flow};
use crate::peer::{get_frame, put_frame};

/// How much a hub sends.
#[derive(Clone, Copy, Debug)]
pub struct HubConfig {
    /// `A` packets in all.
    pub a_total: u64,
    /// `A` packets in flight at most.
    pub window: usize,
    /// Buffers per burst.
    pub burst: usize,
}

/// One port's traffic and what was counted.
#[derive(Debug)]
pub struct Hub {
    /// The port (this role's rings); `None` once closed.
    port: Option<Port>,
    /// Its counters when it was closed.
    closed_stats: Option<PortStats>,
    cfg: HubConfig,
    /// `A` packets originated.
    pub a_sent: u64,
    /// `A` sequence numbers sent and not answered yet.
    pub a_outstanding: BTreeSet<u64>,
    /// Answers to `A` packets, checked.
    pub a_answered: u64,
    last_answer: Option<u64>,
    /// `A` packets below this were sent before the last peer death: each is
    /// either queued for the next generation or went with the dead one, so
    /// they no longer count against the window.
    window_floor: u64,
    /// `B` packets from the peer, per generation: (checked, next sequence
    /// number expected).
    pub b_seen: HashMap<u32, (u64, u64)>,
    /// Echoes sent down.
    pub echoes: u64,
    /// The `Fin` went down.
    pub fin_sent: bool,
    /// Its answer came back.
    pub fin_back: bool,
    /// Packets that failed a check.
    pub bad: u64,
    /// The first failure.
    pub first_error: Option<String>,
    /// Times the pool had no buffer for an `A` packet.
    pub no_buf: u64,
    /// Nanoseconds in the port's calls (service, receive, send bursts).
    pub port_ns: u64,
    /// Nanoseconds in the rest of `step` (allocating, building, checking,
    /// freeing).
    pub work_ns: u64,
    pending: Vec<SharedBuf>,
    rx: Vec<SharedBuf>,
    frame: Vec<u8>,
}

impl Hub {
    /// A hub on `port`.
    pub fn new(port: Port, cfg: HubConfig) -> Hub {
        Hub {
            port: Some(port),
            closed_stats: None,
            cfg,
            a_sent: 0,
            a_outstanding: BTreeSet::new(),
            a_answered: 0,
            last_answer: None,
            window_floor: 0,
            b_seen: HashMap::new(),
            echoes: 0,
            fin_sent: false,
            fin_back: false,
            bad: 0,
            first_error: None,
            no_buf: 0,
            port_ns: 0,
            work_ns: 0,
            pending: Vec::with_capacity(cfg.burst * 4),
            rx: Vec::with_capacity(cfg.burst),
            frame: Vec::with_capacity(packet::MAX_FRAME),
        }
    }

    fn fail(&mut self, e: String) {
        self.bad += 1;
        if self.first_error.is_none() {
            self.first_error = Some(e);
        }
    }

    /// One round: service the port, take what came up, originate up to a
    /// burst of `A` packets (when `originate`; the `Fin` after the last
    /// one when `finish`), send what waits. Returns the buffers moved.
    pub fn step(&mut self, pool: &SharedPool, originate: bool, finish: bool) -> usize {
        let Some(port) = self.port.as_mut() else {
            return 0;
        };
        let t0 = Instant::now();
        port.service();
        let mut rx = std::mem::take(&mut self.rx);
        let got = port.recv_burst(&mut rx, self.cfg.burst);
        let t1 = Instant::now();
        for buf in rx.drain(..) {
            self.take_up(buf);
        }
        self.rx = rx;
        let mut made = 0;
        if originate {
            let mut in_flight = self.a_outstanding.range(self.window_floor..).count();
            while self.a_sent < self.cfg.a_total
                && in_flight < self.cfg.window
                && made < self.cfg.burst
            {
                let Ok(mut b) = pool.alloc() else {
                    self.no_buf += 1;
                    break;
                };
                packet::build(Flow::A, 0, self.a_sent, &mut self.frame);
                if let Err(e) = put_frame(&mut b, &self.frame) {
                    self.fail(e);
                    break;
                }
                self.a_outstanding.insert(self.a_sent);
                self.a_sent += 1;
                self.pending.push(b);
                made += 1;
                in_flight += 1;
            }
        }
        if finish && !self.fin_sent && self.a_sent == self.cfg.a_total {
            if let Ok(mut b) = pool.alloc() {
                packet::build(Flow::Fin, 0, 0, &mut self.frame);
                match put_frame(&mut b, &self.frame) {
                    Ok(()) => {
                        self.pending.push(b);
                        self.fin_sent = true;
                    }
                    Err(e) => self.fail(e),
                }
            } else {
                self.no_buf += 1;
            }
        }
        let t2 = Instant::now();
        let sent = match self.port.as_mut() {
            Some(port) if !self.pending.is_empty() => port.send_burst(&mut self.pending),
            _ => 0,
        };
        let t3 = Instant::now();
        self.port_ns += (t1 - t0 + (t3 - t2)).as_nanos() as u64;
        self.work_ns += (t2 - t1).as_nanos() as u64;
        got + sent + made
    }

    fn take_up(&mut self, mut buf: SharedBuf) {
        let m = match get_frame(&buf) {
            Ok(m) if !m.flow.is_down() => m,
            Ok(m) => return self.fail(format!("a {:?} packet on the up ring", m.flow)),
            Err(e) => return self.fail(e),
        };
        match m.flow {
            Flow::ARep => {
                if !self.a_outstanding.remove(&m.seq) {
                    return self.fail(format!("answer to A {} not outstanding", m.seq));
                }
                if self.last_answer.is_some_and(|l| m.seq <= l) {
                    self.fail(format!(
                        "answer to A {} after A {:?}",
                        m.seq, self.last_answer
                    ));
                }
                self.last_answer = Some(m.seq);
                self.a_answered += 1;
            }
            Flow::B => {
                let e = self.b_seen.entry(m.gen).or_insert((0, 0));
                if m.seq != e.1 {
                    let want = e.1;
                    e.1 = m.seq + 1;
                    return self.fail(format!("B {}/{} after {}/{want}", m.gen, m.seq, m.gen));
                }
                e.0 += 1;
                e.1 += 1;
                let r = packet::answer(&m, &mut self.frame);
                if let Err(e) = r.and_then(|()| put_frame(&mut buf, &self.frame)) {
                    return self.fail(e);
                }
                self.echoes += 1;
                self.pending.push(buf);
            }
            Flow::FinRep => self.fin_back = true,
            _ => unreachable!("up flows only"),
        }
    }

    /// The peer died: what it took is lost, what waits in the rings goes to
    /// its successor; either way the `A` packets sent so far stop counting
    /// against the window (else the lost ones would close it for good).
    pub fn peer_died(&mut self) {
        self.window_floor = self.a_sent;
    }

    /// `A` packets to send in all.
    pub fn a_total(&self) -> u64 {
        self.cfg.a_total
    }

    /// `B` packets checked, all generations.
    pub fn b_total(&self) -> u64 {
        self.b_seen.values().map(|v| v.0).sum()
    }

    /// One round of the port's upkeep alone (reclaim, grant, returns,
    /// lending).
    pub fn service(&mut self) {
        if let Some(p) = self.port.as_mut() {
            p.service();
        }
    }

    /// The port's counters (the last ones once closed).
    pub fn stats(&self) -> PortStats {
        self.port
            .as_ref()
            .map_or_else(|| self.closed_stats.unwrap_or_default(), Port::stats)
    }

    /// Buffers queued towards the peer and not taken yet (lend stock and
    /// down ring).
    pub fn in_rings(&self) -> usize {
        self.port.as_ref().map_or(0, Port::in_rings)
    }

    /// Closes the port for a role whose holder is gone for good: what waits
    /// to go down goes back to the free list, and every buffer still lent
    /// to the role (queued in its rings) comes back with the rings.
    /// Returns (buffers that were waiting, buffers the close took back).
    pub fn close(&mut self) -> (usize, usize) {
        let n = self.pending.len();
        self.pending.clear();
        let back = match self.port.take() {
            Some(p) => {
                self.closed_stats = Some(p.stats());
                p.close()
            }
            None => 0,
        };
        (n, back)
    }
}

/// The exporter's page table for the peer's translation check: (VA, raw
/// IOVA) of every page of every exported region.
pub fn page_table(provider: &Provider) -> Vec<u8> {
    let mut out = Vec::new();
    for r in provider.regions() {
        let mut va = r.va;
        while va < r.va + r.len && out.len() + 16 <= 60_000 {
            let iova = provider.virt2iova(va as *const u8);
            out.extend_from_slice(&(va as u64).to_le_bytes());
            out.extend_from_slice(&Iova::to_raw(iova).to_le_bytes());
            va += r.page_size;
        }
    }
    out
}
