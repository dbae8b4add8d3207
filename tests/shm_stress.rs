//! `pktmem::shm` under load and against a model: a randomized sequence of
//! every operation on both sides checked after each step against the
//! ledger's books (where every buffer is, exactly), and threads on both
//! sides moving packets while buffers are dropped on other threads.
//! The peer is attached over a socket pair at a relocated address.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pktmem::hugemem::share::{Attachment, Exporter, Placement};
use pktmem::hugemem::Provider;
use pktmem::shm::{PeerPool, PeerStats, PortConfig, SharedBuf, SharedPool};

/// xorshift64*: a fixed seed per test, printed on failure.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn attach(exporter: &Exporter) -> Arc<Attachment> {
    let fd = exporter.connect_pair().expect("socket pair");
    Arc::new(
        Attachment::builder("worker")
            .placement(Placement::Relocate)
            .from_fd(fd)
            .expect("attach"),
    )
}

fn stamp(b: &mut SharedBuf, seq: u64) {
    let len = 8 + (seq as usize * 31) % 600;
    b.set_len(0).unwrap();
    b.extend_from(&seq.to_le_bytes()).unwrap();
    let fill: Vec<u8> = (8..len).map(|i| (seq as usize + i) as u8).collect();
    b.extend_from(&fill).unwrap();
}

fn check_stamp(b: &SharedBuf) -> u64 {
    let v = b.copy_to_vec();
    let seq = u64::from_le_bytes(v[..8].try_into().unwrap());
    assert_eq!(v.len(), 8 + (seq as usize * 31) % 600, "length of {seq}");
    for (i, &x) in v.iter().enumerate().skip(8) {
        assert_eq!(x, (seq as usize + i) as u8, "byte {i} of {seq}");
    }
    seq
}

/// Memory to share (raw-pointer chunks only).
fn exportable_provider() -> Provider {
    Provider::builder()
        .exportable()
        .quiet(true)
        .build()
        .unwrap()
}

#[test]
fn random_operations_keep_exact_books() {
    const N: usize = 300;
    let provider = exportable_provider();
    let exporter = Exporter::builder(&provider).unbound().unwrap();
    let pool = SharedPool::builder(N, 1024).build(&exporter).unwrap();
    let role = exporter.role("worker").unwrap();
    let mut port = pool
        .port(&role, PortConfig::default().lend(40).rings(64))
        .unwrap();
    let att = attach(&exporter);
    port.service();
    let peer = PeerPool::open(&att, "pkts").unwrap();
    let mut peer_port = peer.port().unwrap();

    let seed = 0x9e37_79b9_7f4a_7c15;
    let mut rng = Rng(seed);
    let (mut e_hands, mut p_hands): (Vec<SharedBuf>, Vec<SharedBuf>) = (Vec::new(), Vec::new());
    let (mut up_queued, mut seq) = (0usize, 0u64);
    let mut tmp = Vec::new();
    for step in 0..4000 {
        match rng.below(10) {
            0 => {
                if let Ok(mut b) = pool.alloc() {
                    stamp(&mut b, seq);
                    seq += 1;
                    e_hands.push(b);
                }
            }
            1 if !e_hands.is_empty() => {
                let i = rng.below(e_hands.len());
                drop(e_hands.swap_remove(i));
            }
            2 => {
                let k = rng.below(e_hands.len() + 1);
                let mut out: Vec<SharedBuf> = e_hands.drain(..k).collect();
                port.send_burst(&mut out);
                e_hands.extend(out); // what did not fit stays ours
            }
            3 => {
                peer_port.recv_burst(&mut tmp, rng.below(20));
                for b in tmp.drain(..) {
                    check_stamp(&b);
                    p_hands.push(b);
                }
            }
            4 => {
                if let Ok(mut b) = peer.alloc() {
                    stamp(&mut b, seq);
                    seq += 1;
                    p_hands.push(b);
                }
            }
            5 if !p_hands.is_empty() => {
                let i = rng.below(p_hands.len());
                drop(p_hands.swap_remove(i));
            }
            6 => {
                let k = rng.below(p_hands.len() + 1);
                let mut out: Vec<SharedBuf> = p_hands.drain(..k).collect();
                up_queued += peer_port.send_burst(&mut out);
                p_hands.extend(out);
            }
            7 => {
                let got = port.recv_burst(&mut tmp, rng.below(20));
                up_queued -= got;
                for b in tmp.drain(..) {
                    check_stamp(&b);
                    e_hands.push(b);
                }
            }
            8 => {
                port.service();
            }
            _ => peer.flush(rng.below(4) == 0),
        }
        // The books, exactly: every buffer is free, in the exporter's
        // hands, or lent; and what is lent is in the rings, with the peer,
        // or on its way back.
        let c = pool.counts();
        let ctx = || format!("seed {seed:#x} step {step}: {c:?}");
        assert_eq!(c.free + c.exporter_out + c.lent_total(), N, "{}", ctx());
        assert_eq!(c.exporter_out, e_hands.len(), "{}", ctx());
        assert_eq!(peer.held(), peer.free_count() + p_hands.len(), "{}", ctx());
        let returning = (peer.stats().returned - port.stats().returned) as usize;
        assert_eq!(
            c.lent_total(),
            port.in_rings() + peer.held() + up_queued + returning,
            "{}",
            ctx()
        );
        assert_eq!(port.stats().rejected.total(), 0, "{}", ctx());
        assert_eq!(peer.stats().rejected.total(), 0, "{}", ctx());
    }
    pool.audit().unwrap();
    // Wind down: everything back.
    drop(e_hands);
    drop(p_hands);
    port.recv_burst(&mut tmp, N);
    drop(tmp);
    drop(peer_port);
    drop(peer);
    port.service();
    assert_eq!(pool.counts().lent_total(), port.in_rings());
    port.close_as_exited();
    assert!(pool.is_full(), "{:?}", pool.counts());
    pool.audit().unwrap();
}

/// The peer of `threads_on_both_sides`: receives `total` packets, hands
/// them to a worker thread that checks and drops them and stamps fresh
/// buffers, which this thread sends up. Returns what the worker saw and the
/// pool's counters.
fn run_peer(att: &Arc<Attachment>, total: u64, deadline: Instant) -> (u64, PeerStats) {
    let pool = PeerPool::open(att, "pkts").expect("open");
    let mut port = pool.port().expect("port");
    let (to_worker, work) = mpsc::channel::<SharedBuf>();
    let (to_port, outbox) = mpsc::channel::<SharedBuf>();
    let wpool = pool.clone();
    let worker = std::thread::spawn(move || {
        let mut seen = 0u64;
        let mut next = 1u64 << 40;
        for b in work {
            check_stamp(&b);
            seen += 1;
            drop(b); // back to the peer's free list, from this thread
            if let Ok(mut r) = wpool.alloc() {
                stamp(&mut r, next);
                next += 1;
                to_port.send(r).unwrap();
            }
        }
        seen
    });
    let (mut got, mut inbox, mut out) = (0u64, Vec::new(), Vec::new());
    while got < total {
        assert!(Instant::now() < deadline, "peer: {got} of {total}");
        got += port.recv_burst(&mut inbox, 64) as u64;
        for b in inbox.drain(..) {
            to_worker.send(b).unwrap();
        }
        out.extend(outbox.try_iter());
        port.send_burst(&mut out);
    }
    drop(to_worker);
    let seen = worker.join().unwrap();
    out.extend(outbox.try_iter());
    while !out.is_empty() {
        assert!(
            Instant::now() < deadline,
            "peer: {} left to send",
            out.len()
        );
        port.send_burst(&mut out);
    }
    (seen, pool.stats())
}

/// Exporter thread: sends stamped packets, receives and checks the peer's.
/// Peer: one thread owns the port, a second checks and drops what it is
/// handed and stamps fresh buffers from the pool (drops and allocations on
/// a thread that is not the port's).
#[test]
fn threads_on_both_sides() {
    const N: usize = 2048;
    let total: u64 = if std::env::var_os("PKTMEM_EXAMPLE_SHORT").is_some() {
        5_000
    } else {
        50_000
    };
    let provider = exportable_provider();
    let exporter = Exporter::builder(&provider).unbound().unwrap();
    let pool = SharedPool::builder(N, 2048).build(&exporter).unwrap();
    let role = exporter.role("worker").unwrap();
    let mut port = pool
        .port(&role, PortConfig::default().lend(256).rings(512))
        .unwrap();
    let att = attach(&exporter);
    let deadline = Instant::now() + Duration::from_secs(60);

    let peer = std::thread::spawn(move || run_peer(&att, total, deadline));

    let (mut sent, mut back, mut inbox, mut out) = (0u64, 0u64, Vec::new(), Vec::new());
    let t0 = Instant::now();
    loop {
        assert!(
            Instant::now() < deadline,
            "exporter: sent {sent}, back {back}"
        );
        port.service();
        while sent < total && out.len() < 64 {
            match pool.alloc() {
                Ok(mut b) => {
                    stamp(&mut b, sent);
                    out.push(b);
                    sent += 1;
                }
                Err(_) => break,
            }
        }
        port.send_burst(&mut out);
        back += port.recv_burst(&mut inbox, 64) as u64;
        for b in inbox.drain(..) {
            assert!(check_stamp(&b) >= 1 << 40);
        }
        if peer.is_finished() {
            break;
        }
    }
    let (seen, pstats) = peer.join().unwrap();
    let took = t0.elapsed();
    back += port.recv_burst(&mut inbox, N) as u64;
    drop(inbox);
    assert_eq!(seen, total);
    assert_eq!(back, pstats.sent);
    assert!(out.is_empty());
    port.service();
    let s = port.stats();
    assert_eq!(s.rejected.total(), 0);
    assert_eq!((s.sent, s.received), (total, back));
    assert_eq!(pool.counts().lent_total(), port.in_rings());
    port.close_as_exited();
    assert!(pool.is_full(), "{:?}", pool.counts());
    pool.audit().unwrap();
    eprintln!(
        "{total} down, {back} up in {took:?} ({:.0} ns per packet, payloads checked on both sides); {s:?}",
        took.as_nanos() as f64 / (total + back) as f64
    );
}

/// The layer's own cost, one thread, no payload touched: bursts of 32
/// exporter → peer → exporter (validation, ledger, handles, both rings).
/// Prints ns per packet per crossing; the numbers are only meaningful in a
/// release build on a quiet machine.
#[test]
fn burst_round_trip_cost() {
    let rounds: u32 = if std::env::var_os("PKTMEM_EXAMPLE_SHORT").is_some() {
        200
    } else {
        2000
    };
    let provider = exportable_provider();
    let exporter = Exporter::builder(&provider).unbound().unwrap();
    let pool = SharedPool::builder(1024, 2048).build(&exporter).unwrap();
    let role = exporter.role("worker").unwrap();
    let mut port = pool
        .port(&role, PortConfig::default().lend(64).rings(256))
        .unwrap();
    let att = attach(&exporter);
    port.service();
    let peer = PeerPool::open(&att, "pkts").unwrap();
    let mut peer_port = peer.port().unwrap();
    let mut bufs = Vec::with_capacity(32);
    pool.alloc_burst(&mut bufs, 32);
    let t0 = Instant::now();
    for _ in 0..rounds {
        assert_eq!(port.send_burst(&mut bufs), 32);
        assert_eq!(peer_port.recv_burst(&mut bufs, 32), 32);
        assert_eq!(peer_port.send_burst(&mut bufs), 32);
        assert_eq!(port.recv_burst(&mut bufs, 32), 32);
    }
    let took = t0.elapsed();
    let crossings = f64::from(rounds) * 32.0 * 2.0;
    eprintln!(
        "{rounds} round trips of 32: {:.1} ns per packet per crossing",
        took.as_nanos() as f64 / crossings
    );
    // An idle service (nothing to take back, the lend ring full): what a
    // loop that calls it every round pays.
    let t1 = Instant::now();
    for _ in 0..rounds * 10 {
        assert!(!port.service());
    }
    eprintln!(
        "idle service: {:.1} ns",
        t1.elapsed().as_nanos() as f64 / f64::from(rounds * 10)
    );
    let s = port.stats();
    assert_eq!(
        (s.sent, s.received),
        (u64::from(rounds) * 32, u64::from(rounds) * 32)
    );
    assert_eq!(s.rejected.total(), 0);
    drop(bufs);
    drop(peer_port);
    drop(peer);
    port.service();
    port.close_as_exited();
    assert!(pool.is_full());
}
