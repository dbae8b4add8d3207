//! A kernel packet ring as external buffers: a `TPACKET_V3` receive ring on
//! one end of a veth pair, each received frame an mbuf attached to a slice
//! of its block (one shared info per block), checked on the other core and
//! dropped there — so each block goes back to the kernel from that thread,
//! when the last mbuf of its frames is gone.
//!
//! ```text
//!  namespace                 │ this process
//!  sender thread ── UDP ──► veth ──► TPACKET_V3 ring (blocks, mapped)
//!  (seq, payload)            │        │ rx_burst: frame → mbuf on a slice of its block
//!                            │ main ──┴─► Ring<Mbuf> ──► worker (other core):
//!                            │                           check seq + payload, drop
//!                            │                           (last drop of a block → back to the kernel)
//! ```
//!
//! Reports what was sent, received, verified and lost (with the kernel's
//! drop counters), that every block was handed back and the pool is full,
//! and the time per packet spent in pktmem (attach, ring, free) next to the
//! kernel's (the sender's send path, which on a veth delivers into our
//! ring). Exits 1 if any check fails; without root it says what it needs
//! and exits 0. Ctrl-C stops it cleanly (the namespace is removed).
//!
//! ```sh
//! sudo cargo run --release --example af_packet
//! PKTMEM_EXAMPLE_SHORT=1 cargo run --release --example af_packet   # a quick run
//! ```

use std::net::{SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use pktmem::hugemem::Provider;
use pktmem::mbuf::{free_bulk, Mbuf, PktPool};
use pktmem::net::af_packet::PacketRing;
use pktmem::net::netns::{NetnsError, VethPair};
use pktmem::ring::{Ring, Single};

const PORT: u16 = 47_000;
const MAGIC: [u8; 4] = *b"PKTM";
/// Frame bytes before the UDP payload: Ethernet, IPv4 (no options), UDP.
const HDRS: usize = 14 + 20 + 8;

/// Set by Ctrl-C: every loop returns normally, so every guard drops.
/// Stored and loaded Relaxed everywhere: it publishes no data (pairs with
/// nothing), each loop only has to see it eventually.
static STOP: AtomicBool = AtomicBool::new(false);

#[derive(Parser, Debug)]
#[command(about = "AF_PACKET TPACKET_V3 frames as external-buffer mbufs, checked on another core")]
struct Args {
    /// UDP packets to send (`PKTMEM_EXAMPLE_SHORT=1`: 20,000).
    #[arg(long, default_value_t = 200_000)]
    packets: u64,
    /// Sending rate in packets per second (0: as fast as the sender can).
    #[arg(long, default_value_t = 200_000)]
    pps: u64,
    /// Bytes per ring block (a multiple of 4096, at most 4 MiB).
    #[arg(long, default_value_t = 256 * 1024)]
    block_size: usize,
    /// Blocks in the ring (more than the pool's mbufs can hold, so the
    /// kernel always has blocks to fill).
    #[arg(long, default_value_t = 32)]
    blocks: usize,
    /// Mbufs in the pool.
    #[arg(long, default_value_t = 8191)]
    pool_size: usize,
    /// Frames per receive burst.
    #[arg(long, default_value_t = 64)]
    burst: usize,
}

/// UDP payload of packet `seq`: magic, sequence number, length, then
/// `len` pattern bytes (16 to 1,000 of them, varying with `seq`).
fn payload_len(seq: u64) -> usize {
    16 + (seq as usize * 37) % 985
}

fn pattern(seq: u64, i: usize) -> u8 {
    (seq as usize).wrapping_mul(13).wrapping_add(i) as u8
}

fn fill_payload(seq: u64, buf: &mut Vec<u8>) {
    let n = payload_len(seq);
    buf.clear();
    buf.extend_from_slice(&MAGIC);
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&(n as u16).to_be_bytes());
    buf.extend((0..n).map(|i| pattern(seq, i)));
}

/// Whether a frame is IPv4/UDP to our port (the ring's filter: other frames
/// take no mbuf).
fn is_ours(f: &[u8]) -> bool {
    f.len() >= HDRS
        && f[12..14] == [0x08, 0x00]
        && f[14] == 0x45
        && f[23] == 17
        && f[36..38] == PORT.to_be_bytes()
}

/// Checks a frame: headers (with etherparse), then magic, length and every
/// payload byte. Returns the sequence number.
fn check_frame(frame: &[u8]) -> Result<u64, String> {
    let eth =
        etherparse::Ethernet2Slice::from_slice_without_fcs(frame).map_err(|e| e.to_string())?;
    let ip = etherparse::Ipv4Slice::from_slice(eth.payload_slice()).map_err(|e| e.to_string())?;
    let udp = etherparse::UdpSlice::from_slice(ip.payload().payload).map_err(|e| e.to_string())?;
    let p = udp.payload();
    if p.len() < 14 || p[..4] != MAGIC {
        return Err(format!("payload of {} B without the magic", p.len()));
    }
    let seq = u64::from_be_bytes(p[4..12].try_into().expect("8 bytes"));
    let n = usize::from(u16::from_be_bytes([p[12], p[13]]));
    if n != payload_len(seq) || p.len() != 14 + n {
        return Err(format!(
            "packet {seq}: payload of {} B, expected {}",
            p.len(),
            14 + payload_len(seq)
        ));
    }
    if let Some(i) = p[14..]
        .iter()
        .enumerate()
        .position(|(i, &b)| b != pattern(seq, i))
    {
        return Err(format!("packet {seq}: payload byte {i} differs"));
    }
    Ok(seq)
}

/// Pins the calling thread to `cpu` (best effort: a report, not a check).
fn pin(cpu: usize) -> bool {
    // SAFETY: a zeroed cpu_set_t is the empty set; the calls get valid
    // pointers to it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    }
}

#[derive(Debug, Default)]
struct WorkerReport {
    verified: u64,
    lost: u64,
    errors: u64,
    first_error: Option<String>,
    next_seq: u64,
    dequeue_ns: u64,
    free_ns: u64,
    mbufs: u64,
}

/// The worker: takes mbufs off the ring, checks each, and drops them in
/// bursts (timed: the free, and with it the blocks' return to the kernel).
fn worker(
    rx: &pktmem::ring::Consumer<Mbuf, Single>,
    done: &AtomicBool,
    pinned: usize,
) -> WorkerReport {
    let _ = pin(pinned);
    let mut r = WorkerReport::default();
    let mut batch: Vec<Mbuf> = Vec::with_capacity(256);
    let mut idle = 0u32;
    loop {
        let t = Instant::now();
        let n = rx.dequeue_burst_into(&mut batch, 256);
        if n == 0 {
            // Acquire: pairs with main's Release store after its last
            // enqueue: an empty ring then really is the end.
            if done.load(Ordering::Acquire) && rx.is_empty() {
                break;
            }
            idle += 1;
            if idle > 64 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
            continue;
        }
        r.dequeue_ns += t.elapsed().as_nanos() as u64;
        idle = 0;
        for m in &batch {
            match check_frame(m.data()) {
                Ok(seq) if seq >= r.next_seq => {
                    r.lost += seq - r.next_seq;
                    r.next_seq = seq + 1;
                    r.verified += 1;
                }
                Ok(seq) => {
                    r.errors += 1;
                    r.first_error.get_or_insert(format!(
                        "packet {seq} after {}: duplicated or out of order",
                        r.next_seq - 1
                    ));
                }
                Err(e) => {
                    r.errors += 1;
                    r.first_error.get_or_insert(e);
                }
            }
        }
        r.mbufs += n as u64;
        let t = Instant::now();
        // The free: mbufs to their pool in one bulk put per 64, each
        // block to the kernel with the last mbuf of its frames.
        free_bulk(batch.drain(..));
        r.free_ns += t.elapsed().as_nanos() as u64;
    }
    r
}

#[derive(Debug, Default)]
struct SenderReport {
    sent: u64,
    send_errors: u64,
    send_ns: u64,
}

fn sender(
    dst: SocketAddrV4,
    packets: u64,
    pps: u64,
    start: &AtomicBool,
) -> std::io::Result<SenderReport> {
    let s = UdpSocket::bind("0.0.0.0:0")?;
    // Resolve the neighbour first, to another port (not counted).
    s.send_to(b"warm-up", SocketAddrV4::new(*dst.ip(), PORT + 1))?;
    std::thread::sleep(Duration::from_millis(50));
    // Acquire: pairs with main's Release store once it is receiving.
    while !start.load(Ordering::Acquire) && !STOP.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut r = SenderReport::default();
    let mut buf = Vec::with_capacity(1100);
    let t0 = Instant::now();
    for seq in 0..packets {
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        if pps > 0 && seq % 32 == 0 {
            let due = Duration::from_nanos(seq * 1_000_000_000 / pps);
            if let Some(wait) = due.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        fill_payload(seq, &mut buf);
        let t = Instant::now();
        let res = s.send_to(&buf, dst);
        r.send_ns += t.elapsed().as_nanos() as u64;
        match res {
            Ok(_) => r.sent += 1,
            Err(_) => r.send_errors += 1,
        }
    }
    Ok(r)
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if std::env::var_os("PKTMEM_EXAMPLE_SHORT").is_some() {
        args.packets = args.packets.min(20_000);
    }
    if let Err(e) = ctrlc::set_handler(|| STOP.store(true, Ordering::Relaxed)) {
        eprintln!("warning: no Ctrl-C handler ({e}); Ctrl-C will not clean up");
    }
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Tells the sender (through [`STOP`]) and the worker (through `done`) to
/// stop when dropped; on the normal path both are joined before.
struct StopThreads(Arc<AtomicBool>);

impl Drop for StopThreads {
    fn drop(&mut self) {
        STOP.store(true, Ordering::Relaxed);
        // Release: as main's store of `done` after its last enqueue.
        self.0.store(true, Ordering::Release);
    }
}

/// Stopwatch sums for the main thread's share.
#[derive(Debug, Default)]
struct MainTimes {
    /// In `wait` (poll): the kernel's time, or nothing to do.
    wait_ns: u64,
    /// In bursts that returned frames.
    rx_ns: u64,
    bursts: u64,
    /// In bursts that found no block ready (a status load): polling cost.
    empty_rx_ns: u64,
    empty_bursts: u64,
    /// Enqueueing the frames of non-empty bursts.
    enqueue_ns: u64,
    ring_full: u64,
}

#[allow(clippy::too_many_lines)]
fn run(args: &Args) -> Result<bool, Box<dyn std::error::Error>> {
    let veth = match VethPair::create() {
        Ok(v) => v,
        Err(e @ (NetnsError::NotPermitted { .. } | NetnsError::NoIpTool)) => {
            println!("af_packet: skipped: {e}");
            println!("af_packet: run as root to make the veth pair and open the packet socket");
            return Ok(true);
        }
        Err(e) => return Err(e.into()),
    };
    let provider = Provider::builder().build()?;
    let pool = PktPool::builder(args.pool_size)
        .data_room(0)
        .cache(256)
        .name("af_packet rx")
        .build_on(&provider)?;
    let mut ring = PacketRing::builder()
        .block_size(args.block_size)
        .block_count(args.blocks)
        .retire_timeout(Duration::from_millis(5))
        .build(veth.host_ifindex(), &provider)?;
    let mapped = ring.mapped_range();
    println!(
        "af_packet: {} ({}) <- {} in namespace {}; TPACKET_V3 ring of {} x {} B blocks \
         ({} KiB, registered with the provider, IOVA mode {:?})",
        veth.host_ifname(),
        veth.host_addr(),
        veth.peer_ifname(),
        veth.namespace(),
        ring.block_count(),
        ring.block_size(),
        mapped.len() / 1024,
        provider.iova_mode(),
    );

    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let (tx, rx) = Ring::<Mbuf>::builder(4096)
        .producer(Single)
        .consumer(Single)
        .build()?
        .split();
    let done = Arc::new(AtomicBool::new(false));
    let start = Arc::new(AtomicBool::new(false));
    let w = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || worker(&rx, &done, 1 % cpus))
    };
    let dst = SocketAddrV4::new(veth.host_addr(), PORT);
    let snd = {
        let start = Arc::clone(&start);
        let (packets, pps) = (args.packets, args.pps);
        veth.spawn_in_namespace(move || sender(dst, packets, pps, &start))
    };
    // On an early return (an error) the sender and the worker are told to
    // stop, so nothing runs on while the guards drop.
    let _stop_threads = StopThreads(Arc::clone(&done));
    let pinned = pin(0);

    let mut cache = pool.cache();
    let mut times = MainTimes::default();
    let mut burst: Vec<Mbuf> = Vec::with_capacity(args.burst);
    let mut received = 0u64;
    let mut sender_done = false;
    let t0 = Instant::now();
    // Release: pairs with the sender's Acquire load: we are receiving.
    start.store(true, Ordering::Release);
    let mut idle_since: Option<Instant> = None;
    loop {
        if STOP.load(Ordering::Relaxed) {
            break;
        }
        let t = Instant::now();
        ring.wait(Duration::from_millis(10))?;
        times.wait_ns += t.elapsed().as_nanos() as u64;
        let t = Instant::now();
        let n = ring.rx_burst_filtered(&pool, &mut cache, &mut burst, args.burst, is_ours);
        let dt = t.elapsed().as_nanos() as u64;
        if n > 0 {
            times.rx_ns += dt;
            times.bursts += 1;
            received += n as u64;
            let t = Instant::now();
            while !burst.is_empty() {
                if tx.enqueue_burst_from(&mut burst) == 0 {
                    times.ring_full += 1;
                    std::thread::yield_now();
                }
            }
            times.enqueue_ns += t.elapsed().as_nanos() as u64;
            idle_since = None;
            continue;
        }
        times.empty_rx_ns += dt;
        times.empty_bursts += 1;
        sender_done = sender_done || snd.is_finished();
        if sender_done {
            // The sender is done: stop once nothing came for 100 ms (the
            // last block retires after 5 ms).
            let since = *idle_since.get_or_insert_with(Instant::now);
            if received >= args.packets || since.elapsed() > Duration::from_millis(100) {
                break;
            }
        }
    }
    let wall = t0.elapsed();
    // Release: pairs with the worker's Acquire load: everything is enqueued.
    done.store(true, Ordering::Release);
    let rep = w.join().map_err(|_| "the worker panicked")?;
    let sent = snd.join().map_err(|_| "the sender panicked")??;
    let sent = sent.map_err(|e| format!("sender: {e}"))?;
    let st = ring.stats()?;
    let with_app = ring.blocks_with_app();
    // The block the ring was part way through when stopped (Ctrl-C) is the
    // ring's, not the application's: it goes back with the ring's drop.
    let reading = usize::from(ring.holds_block());
    drop(ring); // every block is back: unmapped, unregistered, closed now
    let unregistered = provider.page_of(mapped.start).is_none();
    drop(cache);
    let pool_full = pool.is_full();
    let stopped = STOP.load(Ordering::Relaxed);

    let lost = sent.sent.saturating_sub(rep.verified + rep.errors);
    println!(
        "sent       {} UDP packets to port {PORT} from the namespace ({} send errors){}",
        sent.sent,
        sent.send_errors,
        if args.pps > 0 {
            format!(", paced at {} pps", args.pps)
        } else {
            String::new()
        }
    );
    println!(
        "received   {received} frames as mbufs ({} other frames filtered out without an mbuf, \
         {} kernel-truncated, {} bursts cut short by an empty pool)",
        st.non_matching, st.truncated, st.no_mbuf
    );
    println!(
        "verified   {} payloads and sequence numbers on the worker{}, {} errors{}",
        rep.verified,
        if pinned { " (cpu 1; rx on cpu 0)" } else { "" },
        rep.errors,
        rep.first_error
            .as_ref()
            .map_or(String::new(), |e| format!(" (first: {e})"))
    );
    println!(
        "lost       {lost} (gaps seen by the worker: {}); kernel: {} packets, {} drops, {} freezes",
        rep.lost, st.kernel_packets, st.kernel_drops, st.freezes
    );
    println!(
        "blocks     {} handed out, {} handed back, {} with the app at the end{}; {} losing, {} without IOVA",
        st.blocks_handed_out,
        st.blocks_returned,
        with_app - reading,
        if reading > 0 {
            " (and the one the ring was reading: back with its drop)"
        } else {
            ""
        },
        st.losing_blocks,
        st.blocks_without_iova
    );
    println!(
        "pool       {}/{} mbufs free{}; ring memory {}",
        pool.avail_count(),
        pool.size(),
        if pool_full { " (full)" } else { " (NOT FULL)" },
        if unregistered {
            "unmapped and unregistered"
        } else {
            "STILL REGISTERED"
        }
    );
    let per = |ns: u64| {
        if received == 0 {
            0.0
        } else {
            ns as f64 / received as f64
        }
    };
    let ours = per(times.rx_ns) + per(times.enqueue_ns) + per(rep.dequeue_ns) + per(rep.free_ns);
    let kernel = if sent.sent == 0 {
        0.0
    } else {
        sent.send_ns as f64 / sent.sent as f64
    };
    println!(
        "time/pkt   pktmem {ours:.0} ns (rx burst: block status, frame headers, filter, mbuf alloc, \
         slice + attach {:.0}; ring enqueue {:.0} + dequeue {:.0}; free + block return {:.0}); \
         {} bursts of {:.1} frames, ring full {} times",
        per(times.rx_ns),
        per(times.enqueue_ns),
        per(rep.dequeue_ns),
        per(rep.free_ns),
        times.bursts,
        if times.bursts == 0 { 0.0 } else { received as f64 / times.bursts as f64 },
        times.ring_full,
    );
    println!(
        "           kernel {kernel:.0} ns (the sender's send(): UDP/IP, veth, delivery into the ring); \
         pktmem's share {:.1}%",
        if ours + kernel > 0.0 { 100.0 * ours / (ours + kernel) } else { 0.0 }
    );
    println!(
        "           main thread idle: in poll {:.0} ns/pkt, {} empty bursts ({:.0} ns each); \
         wall {:.3} s, {:.0} ns/pkt, {:.0} kpps",
        per(times.wait_ns),
        times.empty_bursts,
        if times.empty_bursts == 0 {
            0.0
        } else {
            times.empty_rx_ns as f64 / times.empty_bursts as f64
        },
        wall.as_secs_f64(),
        per(wall.as_nanos() as u64),
        received as f64 / wall.as_secs_f64() / 1e3,
    );

    let mut ok = true;
    let mut fail = |what: String| {
        println!("FAILED: {what}");
        ok = false;
    };
    if rep.errors > 0 {
        fail(format!("{} frames failed their check", rep.errors));
    }
    if rep.mbufs != received {
        fail(format!(
            "worker saw {} mbufs, rx made {received}",
            rep.mbufs
        ));
    }
    if rep.verified + rep.errors > sent.sent {
        fail(format!(
            "more packets received ({}) than sent ({})",
            rep.verified + rep.errors,
            sent.sent
        ));
    }
    if !stopped && lost > st.kernel_drops {
        println!(
            "note: {} packets lost before the ring (the kernel's ring drops count {})",
            lost - st.kernel_drops,
            st.kernel_drops
        );
    }
    if with_app != reading || st.blocks_handed_out != st.blocks_returned + reading as u64 {
        fail(format!(
            "blocks not all back: {} handed out, {} returned ({reading} with the ring)",
            st.blocks_handed_out, st.blocks_returned
        ));
    }
    if st.malformed != 0 {
        fail(format!("{} malformed frame headers", st.malformed));
    }
    if !pool_full {
        fail(format!(
            "pool has {} of {} mbufs",
            pool.avail_count(),
            pool.size()
        ));
    }
    if !unregistered {
        fail("the ring's memory is still registered after every block came back".into());
    }
    if !stopped && received == 0 {
        fail("nothing received".into());
    }
    if stopped {
        println!("stopped by Ctrl-C: cleaned up");
    }
    if ok {
        println!("ok: every frame checked, every block handed back, the pool full");
    }
    Ok(ok)
}
