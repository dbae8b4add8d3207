//! `AF_XDP` with the UMEM in provider memory: frames as mbufs, echoed back
//! over the same frames.
//!
//! A veth pair with its far end in a namespace of its own; the redirect
//! program (raw BPF instructions, no C toolchain) attached to the host end
//! in SKB mode, sending queue 0's frames to an `AF_XDP` socket whose UMEM
//! is one chunk of the provider (hugepages when reserved). A sender in the
//! namespace transmits a known UDP sequence; the main thread receives the
//! frames as mbufs and passes them through a `Ring<Mbuf>` to a worker on
//! the other core, which checks every payload and sequence number, drops
//! most (their frames go back to the pool, then to the fill ring) and
//! rewrites a share into echoes (MACs, addresses and ports swapped) that go
//! back through a second ring to the main thread and out through the TX
//! ring in the very frames they arrived in (no copy in user space); a
//! receiver in the namespace counts the echoes.
//!
//! It reports the counts, the frames in flight per ring, the losses (the
//! kernel's counters and ours), the time spent in pktmem per packet next
//! to the kernel's, and checks that every UMEM frame is back at the end.
//! It needs root (`CAP_NET_ADMIN`, `CAP_NET_RAW`, `CAP_BPF`), `ip`
//! (iproute2), and a kernel with `AF_XDP` sockets and ring flags (Linux
//! 5.4) and BPF links for XDP (Linux 5.9); where one is missing it says
//! which and exits 0.
//!
//! ```sh
//! sudo cargo run --release --example af_xdp            # 200 000 packets
//! sudo cargo run --release --example af_xdp -- --packets 1000000 --echo-every 4
//! PKTMEM_EXAMPLE_SHORT=1 cargo run --release --example af_xdp   # quick check
//! ```

use std::net::{SocketAddrV4, UdpSocket};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use pktmem::hugemem::Provider;
use pktmem::mbuf::{free_bulk, Mbuf};
use pktmem::net::bpf::{BpfError, RedirectProgram, XdpLink, XdpMode, XskMap};
use pktmem::net::netns::{NetnsError, VethPair};
use pktmem::net::xdp::{Ledger, UmemConfig, XskError, XskSocket};
use pktmem::ring::{Consumer, Producer, Ring};

/// `AF_XDP` receive and echo over provider memory, on a veth pair.
#[derive(Parser, Debug)]
struct Args {
    /// Packets the sender transmits.
    #[arg(long, default_value_t = 200_000)]
    packets: u32,
    /// Echo every n-th packet back (0: none).
    #[arg(long, default_value_t = 8)]
    echo_every: u32,
    /// UMEM frames.
    #[arg(long, default_value_t = 4096)]
    frames: usize,
    /// RX burst size.
    #[arg(long, default_value_t = 64)]
    burst: usize,
    /// Per-thread cache of the frame pool (frames freed on the worker wait
    /// there, at most this many, before the RX side can refill with them;
    /// the per-burst ledger check then also sums the caches' counts).
    #[arg(long, default_value_t = 0)]
    pool_cache: usize,
    /// Sender pacing: packets per second (0: as fast as it can; past what
    /// the worker checks per second the kernel drops, and counts, the
    /// rest).
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
}

/// The UDP port the sequence goes to.
const PORT: u16 = 47_001;
/// Ethernet + IPv4 + UDP header bytes.
const HDRS: usize = 14 + 20 + 8;

/// Payload of packet `seq`: sequence number, checksum of the rest, and
/// 8..=1008 bytes of a pattern (sizes vary with the sequence).
fn payload(seq: u32) -> Vec<u8> {
    let n = 8 + (seq.wrapping_mul(7919) % 1001) as usize;
    let body: Vec<u8> = (0..n).map(|i| (seq as usize * 31 + i * 7) as u8).collect();
    let sum: u32 = body.iter().map(|&b| u32::from(b)).sum();
    let mut p = Vec::with_capacity(8 + n);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(&body);
    p
}

/// What a frame is: our packet (its sequence number, payload verified),
/// ours but corrupt, or something else (ARP, IPv6, another port).
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    Ours(u32),
    Corrupt,
    Other,
}

fn classify(f: &[u8]) -> Frame {
    if f.len() < HDRS || f[12..14] != [0x08, 0x00] || f[14] != 0x45 || f[23] != 17 {
        return Frame::Other;
    }
    if u16::from_be_bytes([f[36], f[37]]) != PORT {
        return Frame::Other;
    }
    match check_payload(&f[HDRS..]) {
        Some(seq) => Frame::Ours(seq),
        None => Frame::Corrupt,
    }
}

/// The sequence number of a payload built by [`payload`], if it is intact.
fn check_payload(p: &[u8]) -> Option<u32> {
    let seq = u32::from_be_bytes(p.get(..4)?.try_into().ok()?);
    let sum = u32::from_be_bytes(p.get(4..8)?.try_into().ok()?);
    let body = &p[8..];
    let ok = body.len() == 8 + (seq.wrapping_mul(7919) % 1001) as usize
        && body.iter().map(|&b| u32::from(b)).sum::<u32>() == sum
        && body
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (seq as usize * 31 + i * 7) as u8);
    ok.then_some(seq)
}

/// Rewrites a frame in place into its echo: MACs, IPv4 addresses and UDP
/// ports swapped (the IPv4 checksum stays valid), the UDP checksum
/// recomputed (the sender's was left to an offload veth does not run).
fn echo(f: &mut [u8]) {
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    for i in 0..4 {
        f.swap(26 + i, 30 + i);
    }
    for i in 0..2 {
        f.swap(34 + i, 36 + i);
    }
    let udp_len = usize::from(u16::from_be_bytes([f[38], f[39]]));
    f[40] = 0;
    f[41] = 0;
    let mut sum: u32 = 17 + udp_len as u32;
    for w in f[26..34].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    for w in f[34..34 + udp_len].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = match !(sum as u16) {
        0 => 0xffff,
        c => c,
    };
    f[40..42].copy_from_slice(&c.to_be_bytes());
}

/// Moves what fits of `burst` into the worker's ring, in order (the rest
/// stays at the front of `burst`); counts the times the ring was full.
fn enqueue_all(to: &Producer<Mbuf>, burst: &mut Vec<Mbuf>, full: &mut u64) {
    to.enqueue_burst_from(burst);
    if !burst.is_empty() {
        *full += 1;
    }
}

/// Pins the calling thread to one CPU (best effort).
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; CPU_SET stays inside it
    // (cpu < CPU_SETSIZE checked); the call reads the set only.
    unsafe {
        if cpu >= libc::CPU_SETSIZE as usize {
            return;
        }
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Idle back-off: spin a little, then yield, then sleep.
struct Backoff(u32);
impl Backoff {
    fn idle(&mut self) {
        self.0 += 1;
        if self.0 < 64 {
            std::hint::spin_loop();
        } else if self.0 < 256 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(50));
        }
    }
    fn reset(&mut self) {
        self.0 = 0;
    }
}

/// What the worker found.
#[derive(Debug, Default)]
struct WorkerReport {
    verified: u64,
    corrupt: u64,
    other: u64,
    duplicates: u64,
    out_of_order: u64,
    echoes: u64,
    echo_ring_full: u64,
    free_ns: u64,
    freed: u64,
}

/// What the namespace side saw.
#[derive(Debug, Default)]
struct PeerReport {
    sent: u64,
    send_errors: u64,
    send_ns: u64,
    echoes: u64,
    echo_bad: u64,
    /// Datagrams the namespace's UDP stack dropped meanwhile (receive
    /// buffer full, bad checksum): `InErrors` of its `/proc/net/snmp`.
    udp_in_errors: u64,
}

/// `InErrors` of the UDP counters of the calling thread's network
/// namespace.
fn udp_in_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "InErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

/// Asks for a receive buffer of `bytes` (past `rmem_max` as root).
fn grow_rcvbuf(sock: &UdpSocket, bytes: libc::c_int) {
    use std::os::fd::AsRawFd;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: `bytes` is a live c_int of the length given.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                std::ptr::from_ref(&bytes).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// The largest value of each ring's occupancy seen.
#[derive(Debug, Default)]
struct Peaks {
    fill: usize,
    kernel_rx: usize,
    rx: usize,
    app: usize,
    tx: usize,
    completion: usize,
}

impl Peaks {
    fn see(&mut self, l: &Ledger) {
        self.fill = self.fill.max(l.in_fill_ring);
        self.kernel_rx = self.kernel_rx.max(l.in_kernel_rx());
        self.rx = self.rx.max(l.in_rx_ring);
        self.app = self.app.max(l.in_app);
        self.tx = self.tx.max(l.in_tx_ring);
        self.completion = self.completion.max(l.in_completion_ring);
    }
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    let short = std::env::var_os("PKTMEM_EXAMPLE_SHORT").is_some();
    if short {
        args.packets = args.packets.min(5_000);
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // Relaxed here and in every load of `stop`: a request to finish,
        // publishing no data (each loop returns normally, so every guard
        // runs: program detached, socket closed, namespace removed).
        let _ = ctrlc::set_handler(move || stop.store(true, Ordering::Relaxed));
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(&args, &stop)));
    match outcome {
        Ok(Ok(true)) => ExitCode::SUCCESS,
        Ok(Ok(false)) => ExitCode::FAILURE,
        Err(payload) if payload.is::<Failed>() => ExitCode::FAILURE,
        Err(payload) => std::panic::resume_unwind(payload),
        Ok(Err(Skip(why))) => {
            println!("af_xdp: skipped: {why}");
            println!(
                "af_xdp: needs root (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF), iproute2, and a kernel \
                 with AF_XDP sockets (5.4) and BPF links for XDP (5.9)"
            );
            ExitCode::SUCCESS
        }
    }
}

/// Why the example could not run here (printed, exit 0).
struct Skip(String);

/// The unwind payload of [`fail`].
struct Failed;

/// Prints why the example failed and unwinds to `main` (which exits 1), so
/// every guard on the way runs: program detached, socket closed, namespace
/// and links removed (`process::exit` here would leave them behind).
fn fail(what: &str, e: &dyn std::fmt::Display) -> ! {
    eprintln!("af_xdp: {what}: {e}");
    // Not `panic!`: no panic message on top of ours.
    std::panic::resume_unwind(Box::new(Failed));
}

fn bpf_or_skip<T>(r: Result<T, BpfError>, what: &str) -> Result<T, Skip> {
    match r {
        Ok(v) => Ok(v),
        Err(e @ (BpfError::Unsupported { .. } | BpfError::NotPermitted { .. })) => Err(Skip(
            format!("{what}: {e} (needs root and a kernel with BPF links for XDP, Linux 5.9)"),
        )),
        Err(e) => fail(what, &e),
    }
}

/// Everything set up on the host side; dropped in field order: the program
/// detached, then the socket closed (its frames back in the pool), then the
/// pair removed.
struct Rig {
    link: XdpLink,
    _prog: RedirectProgram,
    _map: XskMap,
    xsk: XskSocket,
    provider: Provider,
    veth: VethPair,
}

fn set_up(args: &Args) -> Result<Rig, Skip> {
    let veth = match VethPair::create() {
        Ok(v) => v,
        Err(e @ (NetnsError::NotPermitted { .. } | NetnsError::NoIpTool)) => {
            return Err(Skip(e.to_string()))
        }
        Err(e) => fail("veth pair", &e),
    };
    let provider = Provider::builder()
        .build()
        .unwrap_or_else(|e| fail("provider", &e));
    let xsk = match XskSocket::builder(veth.host_ifindex(), 0)
        .umem(UmemConfig::new(args.frames))
        .pool_cache(args.pool_cache)
        .build_on(&provider)
    {
        Ok(x) => x,
        Err(e) if e.is_unavailable() => return Err(Skip(e.to_string())),
        Err(e @ XskError::Alloc(_)) => return Err(Skip(e.to_string())),
        Err(e) => fail("AF_XDP socket", &e),
    };
    let map = bpf_or_skip(XskMap::new(1), "XSKMAP")?;
    xsk.insert_into(&map)
        .unwrap_or_else(|e| fail("XSKMAP insert", &e));
    let prog = bpf_or_skip(RedirectProgram::load(&map), "redirect program")?;
    let link = bpf_or_skip(prog.attach(veth.host_ifindex(), XdpMode::Skb), "XDP attach")?;
    // The program takes the ARP requests too: the namespace end learns the
    // host end's MAC statically.
    let mac: Vec<String> = veth.host_mac().iter().map(|b| format!("{b:02x}")).collect();
    let neigh = Command::new("ip")
        .args(["-n", veth.namespace(), "neigh", "replace"])
        .arg(veth.host_addr().to_string())
        .args(["lladdr", &mac.join(":"), "dev", veth.peer_ifname()])
        .args(["nud", "permanent"])
        .status();
    if !neigh.is_ok_and(|st| st.success()) {
        fail(
            "ip neigh",
            &"could not set the host end's MAC in the namespace",
        );
    }
    Ok(Rig {
        link,
        _prog: prog,
        _map: map,
        xsk,
        provider,
        veth,
    })
}

fn describe(rig: &Rig) {
    let (xsk, geo) = (&rig.xsk, rig.xsk.geometry());
    println!(
        "af_xdp: {} <-> {} ({} in {}), program in {} mode, socket on queue 0 ({} mode)",
        rig.veth.host_ifname(),
        rig.veth.peer_ifname(),
        rig.veth.peer_addr(),
        rig.veth.namespace(),
        rig.link.mode(),
        if xsk.is_zero_copy() {
            "zero-copy"
        } else {
            "copy"
        }
    );
    println!(
        "umem:   {} frames x {} B ({:?}, headroom {}, packets at offset {}) at {:#x}, pool {}",
        geo.frames(),
        geo.frame_size(),
        geo.mode(),
        geo.headroom(),
        geo.rx_offset(),
        xsk.umem_addr(),
        xsk.pool().mempool().name()
    );
    let (mut pages, mut page_size) = (0, 0);
    let lo = xsk.umem_addr();
    rig.provider.walk_pages(|pg| {
        if pg.in_use && pg.va + pg.size > lo && pg.va < lo + geo.len() {
            pages += 1;
            page_size = pg.size;
        }
    });
    println!(
        "        on {pages} page(s) of {} KiB, IOVA mode {:?}, frame 0 at IOVA {:?}",
        page_size >> 10,
        rig.provider.iova_mode(),
        rig.provider.virt2iova(lo as *const u8)
    );
}

/// The namespace side: a sender of the sequence and a receiver of the
/// echoes (one socket, two threads).
struct Peer {
    sender: JoinHandle<Result<PeerReport, NetnsError>>,
    receiver: JoinHandle<Result<PeerReport, NetnsError>>,
    sent_done: Arc<AtomicBool>,
}

fn spawn_peer(args: &Args, veth: &VethPair, stop: &Arc<AtomicBool>) -> Peer {
    let (count, echo_every, rate) = (args.packets, args.echo_every, args.rate);
    let dst = SocketAddrV4::new(veth.host_addr(), PORT);
    let from = SocketAddrV4::new(veth.peer_addr(), 0);
    let tx_sock = veth
        .in_namespace(move || UdpSocket::bind(from))
        .unwrap_or_else(|e| fail("namespace", &e))
        .unwrap_or_else(|e| fail("peer socket", &e));
    let rx_sock = tx_sock
        .try_clone()
        .unwrap_or_else(|e| fail("peer socket", &e));
    let sent_done = Arc::new(AtomicBool::new(false));
    let sender = {
        let (stop, done) = (stop.clone(), sent_done.clone());
        veth.spawn_in_namespace(move || {
            let mut r = PeerReport::default();
            let t0 = Instant::now();
            for seq in 0..count {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if rate > 0 && seq % 32 == 0 {
                    let due = Duration::from_nanos(u64::from(seq) * 1_000_000_000 / rate);
                    while t0.elapsed() < due {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
                let bytes = payload(seq);
                let t = Instant::now();
                let sent = tx_sock.send_to(&bytes, dst).is_ok();
                r.send_ns += t.elapsed().as_nanos() as u64;
                if sent {
                    r.sent += 1;
                } else {
                    r.send_errors += 1;
                }
            }
            // Release: pairs with the host loop's Acquire load; the count
            // is in the report the join returns.
            done.store(true, Ordering::Release);
            r
        })
    };
    let receiver = {
        let stop = stop.clone();
        veth.spawn_in_namespace(move || {
            let mut r = PeerReport::default();
            let errors_before = udp_in_errors();
            grow_rcvbuf(&rx_sock, 8 << 20);
            let _ = rx_sock.set_read_timeout(Some(Duration::from_millis(20)));
            let mut buf = vec![0u8; 2048];
            let mut quiet_since: Option<Instant> = None;
            loop {
                if let Ok(len) = rx_sock.recv(&mut buf) {
                    quiet_since = None;
                    match check_payload(&buf[..len]) {
                        Some(seq) if echo_every > 0 && seq % echo_every == 0 => r.echoes += 1,
                        _ => r.echo_bad += 1,
                    }
                    continue;
                }
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // Done after a short silence once the host side has sent
                // its last echo. Acquire: pairs with its Release store.
                let q = *quiet_since.get_or_insert_with(Instant::now);
                if ECHOES_DONE.load(Ordering::Acquire) && q.elapsed() > Duration::from_millis(200) {
                    break;
                }
            }
            r.udp_in_errors = udp_in_errors().saturating_sub(errors_before);
            r
        })
    };
    Peer {
        sender,
        receiver,
        sent_done,
    }
}

/// The worker on the other core: checks every packet, echoes a share
/// (rewritten in place, sent back through `to_tx`), drops the rest.
fn spawn_worker(
    args: &Args,
    from_rx: Consumer<Mbuf>,
    to_tx: Producer<Mbuf>,
    rx_done: Arc<AtomicBool>,
) -> JoinHandle<WorkerReport> {
    let (count, echo_every) = (args.packets, args.echo_every);
    std::thread::spawn(move || {
        pin(1);
        let mut w = WorkerReport::default();
        let mut seen = vec![false; count as usize];
        let mut next = 0u32;
        let mut idle = Backoff(0);
        let mut burst: Vec<Mbuf> = Vec::with_capacity(32);
        let mut done: Vec<Mbuf> = Vec::with_capacity(32);
        loop {
            if from_rx.dequeue_burst_into(&mut burst, 32) == 0 {
                // Acquire: pairs with the RX loop's Release store after its
                // last enqueue.
                if rx_done.load(Ordering::Acquire) && from_rx.is_empty() {
                    break;
                }
                idle.idle();
                continue;
            }
            idle.reset();
            for mut m in burst.drain(..) {
                match classify(m.data()) {
                    Frame::Ours(seq) => {
                        w.verified += 1;
                        match seen.get_mut(seq as usize) {
                            Some(s) if *s => w.duplicates += 1,
                            Some(s) => *s = true,
                            None => w.corrupt += 1,
                        }
                        if seq < next {
                            w.out_of_order += 1;
                        }
                        next = next.max(seq + 1);
                        if echo_every > 0 && seq % echo_every == 0 {
                            if let Some(bytes) = m.data_mut() {
                                echo(bytes);
                                match to_tx.enqueue(m) {
                                    Ok(()) => w.echoes += 1,
                                    Err(m) => {
                                        w.echo_ring_full += 1;
                                        done.push(m);
                                    }
                                }
                                continue;
                            }
                        }
                    }
                    Frame::Corrupt => w.corrupt += 1,
                    Frame::Other => w.other += 1,
                }
                done.push(m);
            }
            // The checked packets' frames go back to the pool, in one batch.
            let t = Instant::now();
            w.freed += done.len() as u64;
            free_bulk(done.drain(..));
            w.free_ns += t.elapsed().as_nanos() as u64;
        }
        w
    })
}

/// What the host loop measured.
#[derive(Debug, Default)]
struct HostReport {
    rx_ns: u64,
    rx_pkts: u64,
    ring_full: u64,
    polls: u64,
    tx_ns: u64,
    tx_calls: u64,
    unsent_echoes: usize,
    elapsed: Duration,
    peaks: Peaks,
}

/// The host loop: RX bursts into the worker's ring (waiting while it is
/// full), echoes from the worker out through TX; until the sender is done
/// and the link has been quiet for 200 ms (or Ctrl-C).
fn host_loop(
    args: &Args,
    xsk: &mut XskSocket,
    to_worker: &Producer<Mbuf>,
    from_worker: &Consumer<Mbuf>,
    sent_done: &AtomicBool,
    stop: &AtomicBool,
) -> HostReport {
    pin(0);
    let mut h = HostReport::default();
    let t_start = Instant::now();
    let mut burst: Vec<Mbuf> = Vec::with_capacity(args.burst);
    let mut echoes: Vec<Mbuf> = Vec::with_capacity(256);
    let mut last_sample = Instant::now();
    let mut quiet_since: Option<Instant> = None;
    let mut idle = Backoff(0);
    loop {
        // Back-pressure: while the worker's ring is full the burst waits
        // here and nothing more is read (the kernel then holds the frames,
        // and counts what it cannot place in rx_ring_full).
        let t = Instant::now();
        let got = if burst.is_empty() {
            h.polls += 1;
            let got = xsk.rx_burst(&mut burst, args.burst);
            h.rx_pkts += got as u64;
            got
        } else {
            0
        };
        let before = burst.len();
        enqueue_all(to_worker, &mut burst, &mut h.ring_full);
        // Work, not waiting: only passes that received or moved packets.
        if got > 0 || burst.len() < before {
            h.rx_ns += t.elapsed().as_nanos() as u64;
        }
        // Echoes from the worker go out over their own frames.
        while echoes.len() < echoes.capacity() {
            match from_worker.dequeue() {
                Some(m) => echoes.push(m),
                None => break,
            }
        }
        if !echoes.is_empty() || xsk.tx_in_flight() > 0 {
            let t = Instant::now();
            xsk.tx_burst(&mut echoes);
            h.tx_ns += t.elapsed().as_nanos() as u64;
            h.tx_calls += 1;
        }
        if last_sample.elapsed() > Duration::from_millis(2) {
            h.peaks.see(&xsk.ledger());
            last_sample = Instant::now();
        }
        if got > 0 || before > burst.len() {
            quiet_since = None;
            idle.reset();
            continue;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Acquire: pairs with the sender's Release store after its last send.
        let q = *quiet_since.get_or_insert_with(Instant::now);
        if sent_done.load(Ordering::Acquire) && q.elapsed() > Duration::from_millis(200) {
            break;
        }
        idle.idle();
    }
    h.elapsed = t_start.elapsed();
    // Drop what is still waiting (after Ctrl-C): frames back to the pool.
    drop(burst);
    h.unsent_echoes = flush_echoes(xsk, from_worker, echoes);
    h
}

/// Sends the worker's last echoes and waits for every completion; returns
/// the echoes that could not be sent.
fn flush_echoes(xsk: &mut XskSocket, from_worker: &Consumer<Mbuf>, mut echoes: Vec<Mbuf>) -> usize {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        while let Some(m) = from_worker.dequeue() {
            echoes.push(m);
        }
        if (echoes.is_empty() && xsk.tx_in_flight() == 0) || Instant::now() > end {
            break;
        }
        xsk.tx_burst(&mut echoes);
        xsk.kick();
        std::thread::sleep(Duration::from_micros(100));
    }
    echoes.len()
}

fn run(args: &Args, stop: &Arc<AtomicBool>) -> Result<bool, Skip> {
    let mut rig = set_up(args)?;
    describe(&rig);
    let peer = spawn_peer(args, &rig.veth, stop);
    let (to_worker, from_rx) = Ring::<Mbuf>::new(1024)
        .unwrap_or_else(|e| fail("ring", &e))
        .split();
    let (to_tx, from_worker) = Ring::<Mbuf>::new(1024)
        .unwrap_or_else(|e| fail("ring", &e))
        .split();
    let rx_done = Arc::new(AtomicBool::new(false));
    let worker = spawn_worker(args, from_rx, to_tx, rx_done.clone());
    let mut host = host_loop(
        args,
        &mut rig.xsk,
        &to_worker,
        &from_worker,
        &peer.sent_done,
        stop,
    );
    // Release: pairs with the worker's Acquire load; every enqueue is before.
    rx_done.store(true, Ordering::Release);
    let wr = worker
        .join()
        .unwrap_or_else(|_| fail("worker", &"panicked"));
    let echoes = std::mem::take(&mut host.unsent_echoes);
    host.unsent_echoes = echoes + flush_echoes(&mut rig.xsk, &from_worker, Vec::new());
    // Release: pairs with the peer receiver's Acquire load.
    ECHOES_DONE.store(true, Ordering::Release);
    let pr = peer
        .sender
        .join()
        .unwrap_or_else(|_| fail("sender", &"panicked"))
        .unwrap_or_else(|e| fail("sender", &e));
    let er = peer
        .receiver
        .join()
        .unwrap_or_else(|_| fail("receiver", &"panicked"))
        .unwrap_or_else(|e| fail("receiver", &e));
    let full_run = !stop.load(Ordering::Relaxed);
    Ok(report(rig, &host, &wr, &pr, &er, args, full_run))
}

#[allow(clippy::too_many_lines)] // the summary, then the checks
fn report(
    mut rig: Rig,
    host: &HostReport,
    wr: &WorkerReport,
    pr: &PeerReport,
    er: &PeerReport,
    args: &Args,
    full_run: bool,
) -> bool {
    let xsk = &mut rig.xsk;
    let c = xsk.counters();
    let k = xsk
        .kernel_stats()
        .unwrap_or_else(|e| fail("XDP_STATISTICS", &e));
    let ledger = xsk.ledger();
    let ours = wr.verified;
    let lost = pr.sent.saturating_sub(ours);
    println!(
        "sent:    {} packets from the namespace ({} send errors), {:.0} kpps over {:.2?}",
        pr.sent,
        pr.send_errors,
        pr.sent as f64 / host.elapsed.as_secs_f64() / 1e3,
        host.elapsed
    );
    println!(
        "rx:      {} frames as mbufs: {ours} of ours verified (sequence, payload checksum), {} corrupt, {} other frames, {} duplicates, {} out of order",
        c.rx_packets, wr.corrupt, wr.other, wr.duplicates, wr.out_of_order
    );
    println!(
        "loss:    {lost} of ours not received; kernel: rx_dropped {}, rx_ring_full {}, fill ring found empty {}x; ours: bad descriptors {}, fill shortfall {} frames; worker ring full {}x (back-pressure, nothing dropped)",
        k.rx_dropped,
        k.rx_ring_full,
        k.rx_fill_ring_empty_descs,
        c.rx_bad.total(),
        c.fill_shortfall,
        host.ring_full
    );
    println!(
        "echo:    {} rewritten by the worker (1 in {}), {} sent by descriptor over their own frames, {} copied, {} completed, {} received by the peer ({} bad, {} dropped by its UDP stack), echo ring full {}x, {} unsent",
        wr.echoes, args.echo_every, c.tx_zero_copy, c.tx_copied, c.tx_completed, er.echoes, er.echo_bad, er.udp_in_errors, wr.echo_ring_full, host.unsent_echoes
    );
    println!(
        "kicks:   {} sendto ({} busy, {} errors), {} recvfrom; {} RX polls; kernel tx_invalid_descs {}",
        c.tx_kicks, c.tx_kick_busy, c.tx_kick_errors, c.rx_kicks, host.polls, k.tx_invalid_descs
    );
    let pk = &host.peaks;
    println!(
        "rings:   peak frames in flight: fill ring {}, kernel (rx) {}, rx ring {}, app (rings + worker) {}, tx ring {}, completion ring {}",
        pk.fill, pk.kernel_rx, pk.rx, pk.app, pk.tx, pk.completion
    );
    println!(
        "ledger:  {} checks, {} failed; now {ledger}",
        c.ledger_checks, c.ledger_violations
    );
    if let Some(v) = xsk.first_ledger_violation() {
        println!("         first failure: {v}");
    }
    let per = |ns: u64, pkts: u64| {
        if pkts == 0 {
            0.0
        } else {
            ns as f64 / pkts as f64
        }
    };
    let (rx_per, free_per) = (per(host.rx_ns, host.rx_pkts), per(wr.free_ns, wr.freed));
    println!(
        "time:    pktmem {:.0} ns/packet = {rx_per:.0} RX (descriptors -> mbufs, refill from the pool, ring enqueue) + {free_per:.0} free (frame back to the pool, on the worker)",
        rx_per + free_per
    );
    println!(
        "         TX {:.0} ns per echo, in {} bursts (descriptors, completions, and the sendto that runs the kernel's copy-mode transmit to the peer)",
        per(host.tx_ns, c.tx_zero_copy + c.tx_copied),
        host.tx_calls
    );
    println!(
        "         kernel {:.0} ns/packet: the sender's sendto (UDP, veth, generic XDP, copy into the UMEM)",
        per(pr.send_ns, pr.sent + pr.send_errors)
    );

    let mut ok = true;
    let mut check = |cond: bool, what: &str| {
        if !cond {
            println!("FAILED:  {what}");
            ok = false;
        }
    };
    check(ours > 0, "packets were received");
    check(
        wr.corrupt == 0 && wr.duplicates == 0,
        "every packet intact and received once",
    );
    check(c.rx_bad.total() == 0, "no bad RX descriptor");
    check(
        c.ledger_violations == 0,
        "the frame ledger held after every burst",
    );
    check(ledger.check().is_ok(), "the final ledger adds up");
    check(
        !full_run || lost <= k.rx_dropped + k.rx_ring_full,
        "every lost packet counted by the kernel",
    );
    check(
        host.unsent_echoes == 0 && xsk.tx_in_flight() == 0,
        "every echo sent and completed",
    );
    check(
        c.tx_copied == 0 && c.tx_zero_copy == wr.echoes,
        "echoes went out over their own frames (no copy)",
    );
    check(
        !full_run || er.echoes + er.udp_in_errors == c.tx_completed,
        "every echo sent reached the peer (or was counted by its UDP stack)",
    );
    check(er.echo_bad == 0, "every echo intact");
    // Tear down in order: detach the program, close the socket (its frames
    // go back), then the pool must be full.
    let pool = rig.xsk.pool().clone();
    drop(rig);
    check(pool.is_full(), "every UMEM frame back in the pool");
    println!(
        "frames:  {} of {} back in the pool after teardown",
        pool.avail_count(),
        pool.size()
    );
    if !full_run {
        println!("af_xdp: interrupted: the loss checks were skipped");
    }
    if ok {
        println!("af_xdp: all checks passed");
    }
    ok
}

/// Set once the host side has sent its last echo (the receiver stops
/// after a short silence then).
static ECHOES_DONE: AtomicBool = AtomicBool::new(false);
