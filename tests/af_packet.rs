//! `pktmem::net::af_packet` against a real veth pair: a known UDP sequence
//! sent from the namespace end is received on the host end as mbufs over
//! the `TPACKET_V3` ring, verified on another thread, and dropped there in
//! reverse order (so blocks come back out of order, from that thread); the
//! block accounting is exact after every round; the mapping outlives the
//! ring while mbufs of it live; bad settings are typed errors.
//!
//! Needs root (a network namespace, a packet socket): SKIPs without.

#![cfg(feature = "net")]

use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pktmem::hugemem::Provider;
use pktmem::mbuf::{Mbuf, PktPool};
use pktmem::net::af_packet::{
    BuildError, PacketRing, MAX_BLOCK_COUNT, MAX_BLOCK_SIZE, MAX_RING_SIZE, MIN_FRAME_SIZE,
};
use pktmem::net::netns::{NetnsError, VethPair};
use pktmem::ring::{Ring, Single};

const PORT: u16 = 47_001;
const MAGIC: &[u8; 4] = b"PKTM";
const ROUNDS: u32 = 5;
const PER_ROUND: u32 = 300;

/// The payload of packet `seq`: magic, sequence number, then a pattern of
/// a length that varies with `seq`.
fn payload(seq: u32) -> Vec<u8> {
    let n = 16 + (seq as usize * 37) % 1200;
    let mut p = Vec::with_capacity(8 + n);
    p.extend_from_slice(MAGIC);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend((0..n).map(|i| (seq as usize * 13 + i) as u8));
    p
}

/// The UDP payload of a frame to our port, if it is one.
fn udp_payload(frame: &[u8]) -> Option<&[u8]> {
    let eth = etherparse::Ethernet2Slice::from_slice_without_fcs(frame).ok()?;
    if eth.ether_type() != etherparse::EtherType::IPV4 {
        return None;
    }
    let ip = etherparse::Ipv4Slice::from_slice(eth.payload_slice()).ok()?;
    if ip.header().protocol() != etherparse::IpNumber::UDP {
        return None;
    }
    let udp = etherparse::UdpSlice::from_slice(ip.payload().payload).ok()?;
    (udp.destination_port() == PORT).then(|| udp.payload())
}

fn veth_or_skip(what: &str) -> Option<VethPair> {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: {what}: needs root (a network namespace and a packet socket)");
        return None;
    }
    match VethPair::create() {
        Ok(v) => Some(v),
        Err(e @ (NetnsError::NotPermitted { .. } | NetnsError::NoIpTool)) => {
            eprintln!("SKIP: {what}: {e}");
            None
        }
        Err(e) => panic!("veth pair: {e}"),
    }
}

#[test]
fn bad_settings_are_typed_errors_with_the_numbers() {
    let b = || PacketRing::builder();
    match b().block_size(5000).check() {
        Err(BuildError::BlockSize {
            block_size: 5000,
            page_size: 4096,
            max,
        }) => assert_eq!(max, MAX_BLOCK_SIZE),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b().block_size(0).check(),
        Err(BuildError::BlockSize { block_size: 0, .. })
    ));
    let e = b().block_size(MAX_BLOCK_SIZE + 4096).check().unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::BlockSize {
                block_size: 4_198_400,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("4198400") && e.to_string().contains("4194304"),
        "{e}"
    );
    b().block_size(MAX_BLOCK_SIZE).check().unwrap();
    assert!(matches!(
        b().block_count(0).check(),
        Err(BuildError::BlockCount { block_count: 0, .. })
    ));
    assert!(matches!(
        b().block_size(4096)
            .block_count(MAX_BLOCK_COUNT + 1)
            .check(),
        Err(BuildError::BlockCount {
            max: MAX_BLOCK_COUNT,
            ..
        })
    ));
    // At most 1 GiB in all: 256 blocks of 4 MiB.
    let e = b()
        .block_size(4 << 20)
        .block_count(257)
        .check()
        .unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::BlockCount {
                block_count: 257,
                max: 256
            }
        ),
        "{e:?}"
    );
    assert_eq!(MAX_RING_SIZE, 1 << 30);
    b().block_size(4 << 20).block_count(256).check().unwrap();
    match b().frame_size(100).check() {
        Err(BuildError::FrameSize {
            frame_size: 100,
            min,
            align: 16,
            ..
        }) => assert_eq!(min, MIN_FRAME_SIZE),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b().frame_size(16).check(),
        Err(BuildError::FrameSize { frame_size: 16, .. })
    ));
    let e = b().block_size(4096).frame_size(4096).check().unwrap_err();
    match &e {
        BuildError::FrameSize { max, .. } => assert!(*max < 4096),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        b().retire_timeout(Duration::ZERO).check(),
        Err(BuildError::RetireTimeout { .. })
    ));
    assert!(matches!(
        b().retire_timeout(Duration::from_secs(5_000_000)).check(),
        Err(BuildError::RetireTimeout {
            max_ms: u32::MAX,
            ..
        })
    ));
    // 0.2 ms rounds up to 1 ms: accepted.
    b().retire_timeout(Duration::from_micros(200))
        .check()
        .unwrap();
    b().check().unwrap();
    // Interface 0 is refused before anything is opened (no root needed).
    let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    assert!(matches!(
        b().build(0, &p),
        Err(BuildError::NoSuchInterface { ifindex: 0 })
    ));
}

#[test]
fn no_such_interface_is_a_typed_error() {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: no_such_interface: needs root for a packet socket");
        return;
    }
    let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    let e = PacketRing::builder().build(999_999, &p).unwrap_err();
    assert!(
        matches!(e, BuildError::NoSuchInterface { ifindex: 999_999 }),
        "{e}"
    );
    assert!(e.to_string().contains("999999"));
}

/// What the worker thread is told.
enum ToWorker {
    /// Verify and drop everything received so far; expect `udp` packets
    /// starting at `first`.
    Round {
        first: u32,
        udp: u32,
    },
    Stop,
}

/// Receives until `want` frames to our port arrived (or 10 s passed),
/// handing every mbuf to the worker; returns the UDP frames seen.
fn receive(
    ring: &mut PacketRing,
    pool: &PktPool,
    cache: &mut pktmem::mempool::Cache,
    tx: &pktmem::ring::Producer<Mbuf, Single>,
    want: u32,
    provider: &Provider,
) -> u32 {
    let mut seen = 0;
    let mut burst = Vec::with_capacity(64);
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen < want && Instant::now() < deadline {
        ring.wait(Duration::from_millis(20)).unwrap();
        ring.rx_burst(pool, cache, &mut burst, 64);
        for m in burst.drain(..) {
            if udp_payload(m.data()).is_some() {
                seen += 1;
            }
            // A frame's IOVA (from its block's, when the block's pages are
            // IOVA-contiguous) is the provider's for its first byte.
            assert!(m.is_external());
            if let Some(iova) = m.data_iova() {
                assert_eq!(Some(iova), provider.virt2iova(m.data().as_ptr()));
            }
            let mut m = Some(m);
            while let Some(v) = m.take() {
                m = tx.enqueue(v).err();
                if m.is_some() {
                    std::thread::yield_now();
                }
            }
        }
    }
    seen
}

#[test]
#[allow(clippy::too_many_lines)]
fn a_udp_sequence_through_the_ring_blocks_back_from_another_thread() {
    let Some(veth) = veth_or_skip("af_packet receive") else {
        return;
    };
    let provider = Provider::builder().build().unwrap();
    let pool = PktPool::builder(4095)
        .data_room(0)
        .cache(64)
        .build_on(&provider)
        .unwrap();
    let mut cache = pool.cache();
    // Small blocks, so a round spans several of them.
    let mut ring = PacketRing::builder()
        .block_size(8192)
        .block_count(64)
        .frame_size(2048)
        .retire_timeout(Duration::from_millis(2))
        .build(veth.host_ifindex(), &provider)
        .unwrap();
    assert_eq!((ring.block_size(), ring.block_count()), (8192, 64));
    let range = ring.mapped_range();
    assert_eq!(range.len(), 8192 * 64);
    // The ring's memory is known to the provider as external memory.
    assert!(provider.page_of(range.start).is_some(), "registered");

    let dst = SocketAddrV4::new(veth.host_addr(), PORT);
    let (go_tx, go_rx) = mpsc::channel::<Option<(u32, u32)>>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let sender = veth.spawn_in_namespace(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        // Resolve the neighbour first (to another port: not counted).
        s.send_to(b"warm-up", SocketAddrV4::new(*dst.ip(), PORT + 1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        done_tx.send(()).unwrap();
        while let Ok(Some((first, n))) = go_rx.recv() {
            for seq in first..first + n {
                s.send_to(&payload(seq), dst).unwrap();
            }
            done_tx.send(()).unwrap();
        }
    });
    done_rx.recv().unwrap(); // warmed up

    let (tx, rx) = Ring::<Mbuf>::builder(4096)
        .producer(Single)
        .consumer(Single)
        .build()
        .unwrap()
        .split();
    let (ctl_tx, ctl_rx) = mpsc::channel::<ToWorker>();
    let (rep_tx, rep_rx) = mpsc::channel::<Result<(u32, u32), String>>();
    let worker = std::thread::spawn(move || {
        let mut held: Vec<Mbuf> = Vec::new();
        while let Ok(ToWorker::Round { first, udp }) = ctl_rx.recv() {
            while let Some(m) = rx.dequeue() {
                held.push(m);
            }
            let mut next = first;
            let mut other = 0u32;
            let mut bad = None;
            for m in &held {
                let Some(p) = udp_payload(m.data()) else {
                    other += 1;
                    continue;
                };
                let seq = u32::from_be_bytes(p[4..8].try_into().unwrap());
                if p != payload(seq).as_slice() {
                    bad.get_or_insert(format!("payload of {seq} differs"));
                }
                if seq != next {
                    bad.get_or_insert(format!("expected {next}, got {seq}"));
                }
                next = seq + 1;
            }
            if next != first + udp && bad.is_none() {
                bad = Some(format!("round ended at {next}, not {}", first + udp));
            }
            // Reverse order: the blocks come back last first.
            while let Some(m) = held.pop() {
                drop(m);
            }
            rep_tx
                .send(bad.map_or(Ok((next - first, other)), Err))
                .unwrap();
        }
    });

    let mut total_udp = 0;
    for round in 0..ROUNDS {
        let before = ring.stats().unwrap();
        assert_eq!(ring.blocks_with_app(), 0);
        go_tx.send(Some((round * PER_ROUND, PER_ROUND))).unwrap();
        done_rx.recv().unwrap();
        let seen = receive(&mut ring, &pool, &mut cache, &tx, PER_ROUND, &provider);
        assert_eq!(seen, PER_ROUND, "round {round}: every packet arrived");
        let mid = ring.stats().unwrap();
        let out = mid.blocks_handed_out - before.blocks_handed_out;
        // ~300 frames of up to ~1.3 KB in 8 KiB blocks: many blocks.
        assert!(out >= 10, "round {round}: {out} blocks");
        // The worker holds every mbuf: no block came back yet.
        assert_eq!(mid.blocks_returned, before.blocks_returned, "round {round}");
        assert_eq!(ring.blocks_with_app(), out as usize);
        assert!(!pool.is_full());
        ctl_tx
            .send(ToWorker::Round {
                first: round * PER_ROUND,
                udp: PER_ROUND,
            })
            .unwrap();
        let (udp, _other) = rep_rx.recv().unwrap().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(udp, PER_ROUND);
        total_udp += udp;
        // Every block came back, from the worker's drops: exact accounting.
        let after = ring.stats().unwrap();
        assert_eq!(ring.blocks_with_app(), 0, "round {round}");
        assert_eq!(after.blocks_returned, after.blocks_handed_out);
        assert_eq!(after.blocks_handed_out, mid.blocks_handed_out);
    }
    let st = ring.stats().unwrap();
    assert_eq!(st.kernel_drops, 0, "{st:?}");
    assert_eq!(st.freezes, 0, "{st:?}");
    assert!(st.kernel_packets >= u64::from(total_udp), "{st:?}");
    assert!(st.frames >= u64::from(total_udp));
    assert_eq!(
        (st.malformed, st.truncated, st.no_mbuf),
        (0, 0, 0),
        "{st:?}"
    );
    drop(cache);
    assert!(pool.is_full(), "every mbuf back");

    // The mapping outlives the ring while a frame's mbuf lives.
    let mut cache = pool.cache();
    go_tx.send(Some((ROUNDS * PER_ROUND, 20))).unwrap();
    done_rx.recv().unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got
        .iter()
        .filter(|m: &&Mbuf| udp_payload(m.data()).is_some())
        .count()
        < 20
    {
        assert!(Instant::now() < deadline, "the last 20 packets arrived");
        ring.wait(Duration::from_millis(20)).unwrap();
        ring.rx_burst(&pool, &mut cache, &mut got, 64);
    }
    let fd = ring.as_fd().as_raw_fd();
    let sock = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    assert!(sock.to_string_lossy().starts_with("socket:"));
    let mapped = |start: usize| {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .any(|l| l.starts_with(&format!("{start:x}-")))
    };
    assert!(mapped(range.start));
    drop(ring);
    assert!(mapped(range.start), "mbufs keep the ring mapped");
    let udp: Vec<u32> = got
        .iter()
        .filter_map(|m| udp_payload(m.data()))
        .map(|p| {
            let seq = u32::from_be_bytes(p[4..8].try_into().unwrap());
            assert_eq!(
                p,
                payload(seq).as_slice(),
                "readable after the ring is gone"
            );
            seq
        })
        .collect();
    assert_eq!(
        udp,
        (ROUNDS * PER_ROUND..ROUNDS * PER_ROUND + 20).collect::<Vec<_>>()
    );
    drop(got);
    assert!(!mapped(range.start), "unmapped with the last mbuf");
    assert!(
        std::fs::read_link(format!("/proc/self/fd/{fd}")).map_or(true, |l| l != sock),
        "socket closed with the last mbuf"
    );
    assert!(provider.page_of(range.start).is_none(), "unregistered");
    drop(cache);
    assert!(pool.is_full());

    go_tx.send(None).unwrap();
    sender.join().unwrap().unwrap();
    ctl_tx.send(ToWorker::Stop).unwrap();
    worker.join().unwrap();
}

/// A ring too small for what is sent while the application holds every
/// block: the kernel freezes and drops, and its counters account for every
/// frame exactly (accepted = delivered as mbufs + filtered out + dropped);
/// once the blocks are back it delivers again.
#[test]
fn a_full_ring_drops_and_the_counters_account_for_every_frame() {
    let Some(veth) = veth_or_skip("af_packet drops") else {
        return;
    };
    let provider = Provider::builder().build().unwrap();
    let pool = PktPool::builder(1023)
        .data_room(0)
        .build_on(&provider)
        .unwrap();
    let mut cache = pool.cache();
    let mut ring = PacketRing::builder()
        .block_size(8192)
        .block_count(2)
        .retire_timeout(Duration::from_millis(2))
        .build(veth.host_ifindex(), &provider)
        .unwrap();
    let dst = SocketAddrV4::new(veth.host_addr(), PORT);
    let send = |first: u32, n: u32| {
        veth.in_namespace(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            for seq in first..first + n {
                s.send_to(&payload(seq), dst).unwrap();
            }
        })
        .unwrap();
    };
    // Resolve the neighbour (those frames are counted like any other).
    veth.in_namespace(move || {
        UdpSocket::bind("0.0.0.0:0")
            .unwrap()
            .send_to(b"warm-up", SocketAddrV4::new(*dst.ip(), PORT + 1))
            .unwrap();
    })
    .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // Keeps everything received (filtering out frames not to our port).
    let drain = |ring: &mut PacketRing, held: &mut Vec<Mbuf>, cache: &mut _| {
        let mut quiet = Instant::now();
        while quiet.elapsed() < Duration::from_millis(100) {
            ring.wait(Duration::from_millis(10)).unwrap();
            let n = ring.rx_burst_filtered(&pool, cache, held, 64, |f| udp_payload(f).is_some());
            if n > 0 {
                quiet = Instant::now();
            }
        }
    };
    let mut held = Vec::new();
    drain(&mut ring, &mut held, &mut cache);
    held.clear();
    let base = ring.stats().unwrap();
    assert_eq!(base.kernel_drops, 0, "{base:?}");

    send(0, 400);
    drain(&mut ring, &mut held, &mut cache);
    let st = ring.stats().unwrap();
    let got = held.len() as u64;
    assert!(
        got > 0 && got < 400,
        "2 blocks of 8 KiB hold some of 400 frames: {got}"
    );
    assert!(st.kernel_drops > 0, "{st:?}");
    assert!(
        st.freezes > 0,
        "the kernel found the next block with us: {st:?}"
    );
    assert_eq!(ring.blocks_with_app(), 2, "both blocks held");
    assert_eq!(
        st.kernel_packets - st.kernel_drops,
        st.frames + st.non_matching,
        "every accepted frame was delivered or filtered: {st:?}"
    );
    assert_eq!(st.frames - base.frames, got);
    // In order, a prefix of what was sent.
    for (i, m) in held.iter().enumerate() {
        let p = udp_payload(m.data()).unwrap();
        assert_eq!(u32::from_be_bytes(p[4..8].try_into().unwrap()), i as u32);
        assert_eq!(p, payload(i as u32).as_slice());
    }
    held.clear();
    assert_eq!(ring.blocks_with_app(), 0);

    // With the blocks back, the kernel delivers again.
    send(1000, 8); // fits the two blocks even while we hold the first
    drain(&mut ring, &mut held, &mut cache);
    let seqs: Vec<u32> = held
        .iter()
        .map(|m| u32::from_be_bytes(udp_payload(m.data()).unwrap()[4..8].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, (1000..1008).collect::<Vec<_>>());
    held.clear();
    let end = ring.stats().unwrap();
    assert_eq!(end.kernel_drops, st.kernel_drops, "{end:?}");
    assert_eq!(
        end.kernel_packets - end.kernel_drops,
        end.frames + end.non_matching,
        "{end:?}"
    );
    assert_eq!(end.blocks_handed_out, end.blocks_returned);
    drop(ring);
    drop(cache);
    assert!(pool.is_full());
}

/// Blocks far longer than an mbuf's buffer (1 MiB): each is one shared
/// region, its frames slices of it, and it goes back with the last.
#[test]
fn large_blocks_hold_many_frames_and_come_back_whole() {
    let Some(veth) = veth_or_skip("af_packet large blocks") else {
        return;
    };
    let provider = Provider::builder().build().unwrap();
    let pool = PktPool::builder(2047)
        .data_room(0)
        .build_on(&provider)
        .unwrap();
    let mut cache = pool.cache();
    let mut ring = PacketRing::builder()
        .block_size(1 << 20)
        .block_count(4)
        // Long enough that slow runs (sanitizers) do not retire blocks part
        // full while the sender is still going: blocks close when full.
        .retire_timeout(Duration::from_secs(2))
        .build(veth.host_ifindex(), &provider)
        .unwrap();
    let dst = SocketAddrV4::new(veth.host_addr(), PORT);
    veth.in_namespace(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        s.send_to(b"warm-up", SocketAddrV4::new(*dst.ip(), PORT + 1))
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        for seq in 0..1000 {
            s.send_to(&payload(seq), dst).unwrap();
        }
    })
    .unwrap();
    let mut held = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while held.len() < 1000 && Instant::now() < deadline {
        ring.wait(Duration::from_millis(50)).unwrap();
        ring.rx_burst_filtered(&pool, &mut cache, &mut held, 256, |f| {
            udp_payload(f).is_some()
        });
    }
    assert_eq!(held.len(), 1000);
    for (i, m) in held.iter().enumerate() {
        assert_eq!(udp_payload(m.data()).unwrap(), payload(i as u32).as_slice());
    }
    let st = ring.stats().unwrap();
    // ~700 KB of frames: one or two blocks of 1 MiB, hundreds of frames
    // (and references) on each.
    assert!(st.blocks_handed_out <= 3, "{st:?}");
    assert_eq!(st.kernel_drops, 0);
    assert!(ring.blocks_with_app() >= 1);
    let most = held.iter().filter_map(|m| m.ext_refcnt()).max().unwrap();
    assert!(
        most > 300,
        "one block is shared by its frames: {most} references"
    );
    held.truncate(1);
    assert!(
        ring.blocks_with_app() >= 1,
        "the first frame keeps its block"
    );
    held.clear();
    let st = ring.stats().unwrap();
    assert_eq!(ring.blocks_with_app(), 0, "{st:?}");
    assert_eq!(st.blocks_returned, st.blocks_handed_out);
    drop(ring);
    drop(cache);
    assert!(pool.is_full());
}

/// A user's lease on the ring's registered memory keeps it registered and
/// mapped after the ring (and every mbuf) is gone; the last lease's drop
/// unregisters and unmaps it. (Unmapped under a lease, the provider would
/// translate, and a device could be mapped to, memory that is not there.)
#[test]
fn a_lease_on_the_ring_memory_keeps_it_mapped_until_it_goes() {
    let Some(veth) = veth_or_skip("af_packet lease") else {
        return;
    };
    let provider = Provider::builder().build().unwrap();
    let ring = PacketRing::builder()
        .block_size(8192)
        .block_count(4)
        .build(veth.host_ifindex(), &provider)
        .unwrap();
    let range = ring.mapped_range();
    let lease = provider
        .lease_external(range.start as *const u8, range.len(), "a device")
        .unwrap();
    let mapped = |start: usize| {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .any(|l| l.starts_with(&format!("{start:x}-")))
    };
    let fd = ring.as_fd().as_raw_fd();
    let sock = std::fs::read_link(format!("/proc/self/fd/{fd}")).unwrap();
    drop(ring);
    assert!(
        std::fs::read_link(format!("/proc/self/fd/{fd}")).map_or(true, |l| l != sock),
        "the socket closes with the ring"
    );
    assert!(provider.page_of(range.start).is_some(), "still registered");
    assert!(
        mapped(range.start),
        "a registered, leased range stays mapped"
    );
    drop(lease);
    assert!(provider.page_of(range.start).is_none(), "unregistered");
    assert!(!mapped(range.start), "unmapped with the last lease");
}

/// The provider may go before the ring: the ring's memory stays mapped
/// while the ring (or an mbuf of it) needs it.
#[test]
fn the_ring_outlives_its_provider() {
    let Some(veth) = veth_or_skip("af_packet without provider") else {
        return;
    };
    let provider = Provider::builder().build().unwrap();
    let pool = PktPool::builder(63).data_room(0).build_anonymous().unwrap();
    let mut cache = pool.cache();
    let mut ring = PacketRing::builder()
        .block_size(8192)
        .block_count(4)
        .retire_timeout(Duration::from_millis(1))
        .build(veth.host_ifindex(), &provider)
        .unwrap();
    let range = ring.mapped_range();
    drop(provider);
    let mapped = |start: usize| {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .any(|l| l.starts_with(&format!("{start:x}-")))
    };
    assert!(mapped(range.start), "the ring's memory stays mapped");
    let dst = SocketAddrV4::new(veth.host_addr(), PORT);
    veth.in_namespace(move || {
        let s = UdpSocket::bind("0.0.0.0:0").unwrap();
        for seq in 0..10 {
            s.send_to(&payload(seq), dst).unwrap();
        }
    })
    .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 10 && Instant::now() < deadline {
        ring.wait(Duration::from_millis(20)).unwrap();
        ring.rx_burst_filtered(&pool, &mut cache, &mut got, 64, |f| {
            udp_payload(f).is_some()
        });
    }
    assert_eq!(got.len(), 10);
    drop(ring);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(udp_payload(m.data()).unwrap(), payload(i as u32).as_slice());
    }
    drop(got);
    assert!(!mapped(range.start), "unmapped with the last mbuf");
}
