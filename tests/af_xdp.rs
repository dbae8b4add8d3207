//! `pktmem::net::xdp` against its rules and the running kernel.
//!
//! Without privileges: the UMEM validator on the probe matrix of this
//! kernel (frame sizes, modes, headroom limits), the memory checks on
//! synthetic IOVA tables, RX descriptor and completion checks, bad socket
//! configurations. As root: the validator and the kernel agree on random
//! geometries, and on a real veth pair (the far end in a namespace of its
//! own, the redirect program attached in SKB mode): RX of a known UDP
//! sequence, a TX echo the peer receives, completions, an exact ledger,
//! the copy path, zero-copy bind refused with a typed error, and every
//! frame back in its pool at the end. Those SKIP, saying why, without root
//! or a kernel feature.

use std::net::{SocketAddrV4, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use pktmem::hugemem::{Iova, Provider};
use pktmem::mbuf::{Mbuf, PktPool};
use pktmem::net::bpf::{BpfError, RedirectProgram, XdpLink, XdpMode, XskMap};
use pktmem::net::netns::{NetnsError, VethPair};
use pktmem::net::xdp::{
    probe_umem_reg, BindMode, ChunkMode, DescError, RxFrame, UmemConfig, UmemConfigError,
    UmemMemoryError, XskBuilder, XskError, XskSocket, KERNEL_RESERVED, XDP_PACKET_HEADROOM,
};

fn provider() -> Provider {
    Provider::builder().quiet(true).build().expect("a provider")
}

// ---------------------------------------------------------------------------
// The validator, without the kernel

/// The probe matrix of this kernel (6.18): aligned 2048/4096 taken, aligned
/// 3000 refused, unaligned 3000 and 2432 (headroom 320) taken, 1024, 8192,
/// 9000 and 65536 refused; the headroom limit is frame size - 704 (1344 for
/// 2048, 3392 for 4096); the mode follows the frame size unless forced.
#[test]
fn umem_config_reproduces_the_probe_matrix() {
    use ChunkMode::{Aligned, Unaligned};
    type Want = Result<ChunkMode, UmemConfigError>;
    let range = |fs| UmemConfigError::FrameSizeOutOfRange {
        frame_size: fs,
        min: 2048,
        max: 4096,
    };
    let head = |h, fs| UmemConfigError::HeadroomTooLarge {
        headroom: h,
        frame_size: fs,
        max: fs - KERNEL_RESERVED,
    };
    let rows: &[(usize, usize, Option<ChunkMode>, Want)] = &[
        (2048, 0, None, Ok(Aligned)),
        (4096, 0, None, Ok(Aligned)),
        (2048, 0, Some(Aligned), Ok(Aligned)),
        (2048, 0, Some(Unaligned), Ok(Unaligned)),
        (
            3000,
            0,
            Some(Aligned),
            Err(UmemConfigError::NotPowerOfTwo { frame_size: 3000 }),
        ),
        (3000, 0, None, Ok(Unaligned)),
        (2432, 320, None, Ok(Unaligned)),
        (1024, 0, None, Err(range(1024))),
        (2047, 0, None, Err(range(2047))),
        (4097, 0, None, Err(range(4097))),
        (8192, 0, None, Err(range(8192))),
        (9000, 0, Some(Unaligned), Err(range(9000))),
        (65536, 0, None, Err(range(65536))),
        (2048, 1344, None, Ok(Aligned)),
        (2048, 1345, None, Err(head(1345, 2048))),
        (4096, 3392, None, Ok(Aligned)),
        (4096, 3393, None, Err(head(3393, 4096))),
        (3000, 2296, None, Ok(Unaligned)),
        (3000, 2297, None, Err(head(2297, 3000))),
    ];
    for &(fs, headroom, mode, want) in rows {
        let mut c = UmemConfig::new(64).frame_size(fs).headroom(headroom);
        if let Some(m) = mode {
            c = c.mode(m);
        }
        let got = c.validate().map(|g| g.mode());
        assert_eq!(got, want, "frame {fs}, headroom {headroom}, mode {mode:?}");
        if let Ok(g) = c.validate() {
            assert_eq!(
                (g.frames(), g.frame_size(), g.headroom()),
                (64, fs, headroom)
            );
            assert_eq!(g.len(), 64 * fs);
            assert_eq!(g.rx_offset(), headroom + XDP_PACKET_HEADROOM);
        }
        if let Err(e) = got {
            assert!(e.to_string().contains(&fs.to_string()), "numbers in: {e}");
        }
    }
    assert_eq!(
        UmemConfig::new(0).validate(),
        Err(UmemConfigError::NoFrames)
    );
    assert!(matches!(
        UmemConfig::new(1 << 33).validate(),
        Err(UmemConfigError::TooLarge { frames, frame_size: 2048 }) if frames == 1 << 33
    ));
}

/// The memory checks on synthetic tables: a start off a page, a UMEM
/// longer than the memory, a frame crossing into a page whose IOVA jumps
/// (named, with the boundary and both IOVAs), pages with and without IOVA
/// mixed; contiguous tables and memory without IOVAs pass. Power-of-two
/// frames never cross a page, whatever the table.
#[test]
fn umem_memory_checks_on_synthetic_iova_tables() {
    let g = UmemConfig::new(8).frame_size(3000).validate().unwrap(); // 24000 B
    let contiguous = |off: usize| Some(Iova(0x100_0000 + off as u64));
    assert_eq!(g.check_memory(0x20_0000, 24_000, contiguous), Ok(()));
    assert_eq!(g.check_memory(0x20_0000, 24_000, |_| None), Ok(()));
    assert_eq!(
        g.check_memory(0x20_0040, 1 << 20, contiguous),
        Err(UmemMemoryError::StartNotPageAligned { addr: 0x20_0040 })
    );
    assert_eq!(
        g.check_memory(0x20_0000, 23_999, contiguous),
        Err(UmemMemoryError::OutsideMemory {
            umem_len: 24_000,
            mem_len: 23_999
        })
    );
    // Page 2 (offsets 8192..12288) sits elsewhere: frame 2 (6000..9000)
    // crosses into it.
    let jump = |off: usize| {
        let page = off / 4096;
        let base = if page >= 2 { 0x900_0000 } else { 0x100_0000 };
        Some(Iova(base + off as u64))
    };
    assert_eq!(
        g.check_memory(0x20_0000, 24_000, jump),
        Err(UmemMemoryError::FrameNotIovaContiguous {
            frame: 2,
            boundary: 8192,
            before: Some(Iova(0x100_0000 + 8191)),
            after: Some(Iova(0x900_0000 + 8192)),
        })
    );
    let mixed = |off: usize| (off < 4096).then(|| Iova(0x100_0000 + off as u64));
    assert!(matches!(
        g.check_memory(0x20_0000, 24_000, mixed),
        Err(UmemMemoryError::FrameNotIovaContiguous {
            frame: 1,
            boundary: 4096,
            after: None,
            ..
        })
    ));
    // Every page elsewhere: power-of-two frames are still fine.
    let scattered = |off: usize| {
        Some(Iova(
            ((off / 4096) as u64 * 7 + 3) * 0x10_0000 + (off % 4096) as u64,
        ))
    };
    for fs in [2048, 4096] {
        let g = UmemConfig::new(16).frame_size(fs).validate().unwrap();
        assert_eq!(
            g.check_memory(0x40_0000, 16 * fs, scattered),
            Ok(()),
            "{fs}"
        );
    }
    let e = g.check_memory(0x20_0000, 24_000, jump).unwrap_err();
    assert!(e.to_string().contains("frame 2"), "{e}");
}

/// RX descriptors are checked before use, in both modes; completion
/// addresses are masked.
#[test]
fn rx_descriptors_and_completions_are_checked() {
    // Aligned, 2048-byte frames, headroom 64: the kernel's RX address is
    // base + 64 + 256.
    let a = UmemConfig::new(16).headroom(64).validate().unwrap();
    assert_eq!(a.mode(), ChunkMode::Aligned);
    let base = 5 * 2048u64;
    assert_eq!(
        a.check_rx_desc(base + 320, 1500),
        Ok(RxFrame {
            frame: 5,
            offset: 320,
            len: 1500
        })
    );
    assert_eq!(
        a.check_rx_desc(base + 320, 1728),
        Ok(RxFrame {
            frame: 5,
            offset: 320,
            len: 1728
        })
    );
    assert_eq!(
        a.check_rx_desc(base + 320, 1729),
        Err(DescError::PastFrameEnd {
            frame: 5,
            offset: 320,
            len: 1729,
            frame_size: 2048
        })
    );
    assert_eq!(
        a.check_rx_desc(base + 10, 100),
        Err(DescError::OffsetBelowHeadroom {
            frame: 5,
            offset: 10,
            headroom: 64
        })
    );
    assert_eq!(
        a.check_rx_desc(16 * 2048 + 320, 100),
        Err(DescError::OutsideUmem {
            addr: 16 * 2048 + 320
        })
    );
    assert_eq!(a.check_rx_desc(u64::MAX, 1).unwrap_err().frame(), None);
    assert_eq!(a.completion_frame(base + 128), Some(5));
    assert_eq!(a.completion_frame(16 * 2048), None);
    // Unaligned, 3000-byte frames: base | offset << 48.
    let u = UmemConfig::new(16).frame_size(3000).validate().unwrap();
    let d = |b: u64, off: u64| b | (off << 48);
    assert_eq!(
        u.check_rx_desc(d(9000, 256), 60),
        Ok(RxFrame {
            frame: 3,
            offset: 256,
            len: 60
        })
    );
    assert_eq!(
        u.check_rx_desc(d(9001, 256), 60),
        Err(DescError::NotFrameStart { addr: d(9001, 256) })
    );
    assert_eq!(
        u.check_rx_desc(d(48_000, 256), 60),
        Err(DescError::OutsideUmem {
            addr: d(48_000, 256)
        })
    );
    assert!(matches!(
        u.check_rx_desc(d(9000, 2999), 2),
        Err(DescError::PastFrameEnd { frame: 3, .. })
    ));
    assert!(matches!(
        u.check_rx_desc(d(9000, 0xffff), u32::MAX),
        Err(DescError::PastFrameEnd { frame: 3, .. })
    ));
    assert_eq!(u.completion_frame(d(9000, 128)), Some(3));
    assert_eq!(u.completion_frame(d(9001, 128)), None);
    assert_eq!(u.completion_frame(d(48_000, 0)), None);
}

/// Bad socket configurations are typed errors before any system call.
#[test]
fn bad_socket_configs_are_rejected() {
    let p = provider();
    let e = XskSocket::builder(1, 0)
        .umem(UmemConfig::new(64).headroom(2000))
        .build_on(&p)
        .unwrap_err();
    assert!(
        matches!(
            e,
            XskError::Config(UmemConfigError::HeadroomTooLarge { headroom: 2000, .. })
        ),
        "{e}"
    );
    let e = XskSocket::builder(1, 0)
        .umem(UmemConfig::new(64))
        .rx_size(1000)
        .build_on(&p)
        .unwrap_err();
    assert!(
        matches!(
            e,
            XskError::RingSize {
                ring: "rx",
                size: 1000
            }
        ),
        "{e}"
    );
    let e = XskSocket::builder(1, 0)
        .umem(UmemConfig::new(64))
        .completion_size(0)
        .build_on(&p)
        .unwrap_err();
    assert!(
        matches!(
            e,
            XskError::RingSize {
                ring: "completion",
                size: 0
            }
        ),
        "{e}"
    );
    let e = XskSocket::builder(1, 0)
        .umem(UmemConfig::new(64))
        .fill_target(65)
        .build_on(&p)
        .unwrap_err();
    assert!(
        matches!(
            e,
            XskError::FillTarget {
                target: 65,
                fill_size: 2048,
                frames: 64
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("65"), "{e}");
}

// ---------------------------------------------------------------------------
// Against the kernel

/// A tiny deterministic generator (xorshift64*).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
}

/// As root: for 400 random geometries (frame sizes around and between the
/// edges, headrooms around the limit, both modes, starts on and off a
/// page, frame counts), `validate` plus the start check accept exactly
/// what the kernel's `XDP_UMEM_REG` accepts.
#[test]
fn validator_and_kernel_agree_on_random_geometries() {
    let p = provider();
    let chunk = p.alloc(4 << 20).expect("4 MiB");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut taken = 0;
    for i in 0..400 {
        let fs = if rng.below(2) == 0 {
            rng.pick(&[
                1024, 2047, 2048, 2049, 2432, 3000, 3072, 4095, 4096, 4097, 8192, 65536,
            ])
        } else {
            1500 + rng.below(3000) as usize
        };
        let headroom = match rng.below(4) {
            0 => 0,
            1 => fs.saturating_sub(KERNEL_RESERVED),
            2 => (fs + 1).saturating_sub(KERNEL_RESERVED),
            _ => rng.below(fs as u64) as usize,
        };
        let mode = if rng.below(3) == 0 {
            ChunkMode::Aligned
        } else {
            ChunkMode::Unaligned
        };
        let offset = rng.pick(&[0usize, 0, 0, 0, 0, 64, 2048, 4096, 100]);
        let frames = 1 + rng.below(((3 << 20) / fs.max(1)) as u64) as usize;
        let len = frames * fs;
        let ours = UmemConfig::new(frames)
            .frame_size(fs)
            .headroom(headroom)
            .mode(mode)
            .validate()
            .map_err(|e| e.to_string())
            .and_then(|g| {
                g.check_memory(chunk.as_ptr().as_ptr() as usize + offset, len, |_| None)
                    .map_err(|e| e.to_string())
            });
        let kernel = match probe_umem_reg(&chunk, offset, len, fs, headroom, mode) {
            Ok(r) => r,
            Err(e) if e.is_unavailable() => {
                eprintln!("SKIP: validator vs kernel: {e}");
                return;
            }
            Err(e) => panic!("probe {i}: {e}"),
        };
        assert_eq!(
            ours.is_ok(),
            kernel.is_ok(),
            "geometry {i}: {frames} x {fs} B, headroom {headroom}, {mode:?}, offset {offset}: \
             ours {ours:?}, kernel {kernel:?}"
        );
        taken += usize::from(kernel.is_ok());
    }
    assert!(
        taken > 50 && taken < 350,
        "a mix of accepted and refused ({taken} accepted)"
    );
    eprintln!("validator and kernel agree on 400 geometries ({taken} accepted)");
}

/// A veth pair with the redirect program on its host end and a socket on
/// queue 0; the namespace end knows the host end's MAC (the program takes
/// the ARP requests too, so the host stack cannot answer them).
struct Rig {
    // Drop order: detach the program, then close the socket, then remove
    // the pair.
    _link: XdpLink,
    _prog: RedirectProgram,
    xsk: XskSocket,
    veth: VethPair,
}

fn rig(what: &str, config: impl FnOnce(XskBuilder) -> XskBuilder) -> Option<Rig> {
    let veth = match VethPair::create() {
        Ok(v) => v,
        Err(e @ (NetnsError::NotPermitted { .. } | NetnsError::NoIpTool)) => {
            eprintln!("SKIP: {what}: {e}");
            return None;
        }
        Err(e) => panic!("veth pair: {e}"),
    };
    let xsk = match config(XskSocket::builder(veth.host_ifindex(), 0)).build_on(&provider()) {
        Ok(x) => x,
        Err(e) if e.is_unavailable() => {
            eprintln!("SKIP: {what}: {e}");
            return None;
        }
        Err(e @ XskError::Memory(UmemMemoryError::FrameNotIovaContiguous { .. })) => {
            eprintln!("SKIP: {what}: no IOVA-contiguous memory for this geometry here: {e}");
            return None;
        }
        Err(e) => panic!("socket: {e}"),
    };
    let skip = |e: BpfError| -> Option<Rig> {
        match e {
            BpfError::Unsupported { .. } | BpfError::NotPermitted { .. } => {
                eprintln!("SKIP: {what}: {e}");
                None
            }
            e => panic!("bpf: {e}"),
        }
    };
    let map = match XskMap::new(1) {
        Ok(m) => m,
        Err(e) => return skip(e),
    };
    xsk.insert_into(&map).expect("map the socket");
    let prog = match RedirectProgram::load(&map) {
        Ok(p) => p,
        Err(e) => return skip(e),
    };
    let link = match prog.attach(veth.host_ifindex(), XdpMode::Skb) {
        Ok(l) => l,
        Err(e) => return skip(e),
    };
    let mac = veth
        .host_mac()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":");
    let out = Command::new("ip")
        .args(["-n", veth.namespace(), "neigh", "replace"])
        .arg(veth.host_addr().to_string())
        .args([
            "lladdr",
            &mac,
            "dev",
            veth.peer_ifname(),
            "nud",
            "permanent",
        ])
        .output()
        .expect("ip neigh");
    assert!(out.status.success(), "ip neigh: {out:?}");
    Some(Rig {
        _link: link,
        _prog: prog,
        xsk,
        veth,
    })
}

const PORT: u16 = 47_000;

/// The UDP payload of packet `seq`: the sequence number and a filler.
fn payload(seq: u32) -> Vec<u8> {
    let mut p = seq.to_be_bytes().to_vec();
    p.extend((0..60u32).map(|i| (seq.wrapping_mul(31) + i) as u8));
    p
}

/// The sequence number of a frame if it is our UDP packet to `PORT`
/// (checked: Ethernet/IPv4/UDP, the payload as sent).
fn our_seq(frame: &[u8]) -> Option<u32> {
    if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
        return None;
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let udp = &frame[14 + ihl..];
    if u16::from_be_bytes([udp[2], udp[3]]) != PORT {
        return None;
    }
    let p = &udp[8..];
    let seq = u32::from_be_bytes(p.get(..4)?.try_into().ok()?);
    (p == payload(seq)).then_some(seq)
}

/// Rewrites a received frame into its echo: MACs, IPv4 addresses and UDP
/// ports swapped; the UDP checksum recomputed (the sender's may have been
/// left to an offload that veth never ran).
fn echo(frame: &mut [u8]) {
    for i in 0..6 {
        frame.swap(i, 6 + i);
    }
    for i in 0..4 {
        frame.swap(26 + i, 30 + i);
    }
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let u = 14 + ihl;
    for i in 0..2 {
        frame.swap(u + i, u + 2 + i);
    }
    let udp_len = usize::from(u16::from_be_bytes([frame[u + 4], frame[u + 5]]));
    frame[u + 6] = 0;
    frame[u + 7] = 0;
    let mut sum: u32 = 17 + udp_len as u32;
    for w in frame[26..34].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
    }
    for w in frame[u..u + udp_len].chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let c = !(sum as u16);
    let c = if c == 0 { 0xffff } else { c };
    frame[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
}

/// Receives until `n` of our packets are in `out` (others dropped and
/// counted) or the deadline passes; returns the others seen.
fn receive(xsk: &mut XskSocket, out: &mut Vec<Mbuf>, n: usize, within: Duration) -> usize {
    let end = Instant::now() + within;
    let mut others = 0;
    let mut burst = Vec::new();
    while out.len() < n && Instant::now() < end {
        if xsk.rx_burst(&mut burst, 64) == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
        for m in burst.drain(..) {
            if our_seq(m.data()).is_some() {
                out.push(m);
            } else {
                others += 1; // dropped: the frame goes back to the pool
            }
        }
    }
    others
}

/// A thread in the namespace whose socket sends packets `0..n` to the host
/// end's `PORT`, then returns the payloads echoed back to it.
fn peer_sender(
    veth: &VethPair,
    n: u32,
) -> std::thread::JoinHandle<Result<Vec<Vec<u8>>, NetnsError>> {
    let peer = veth.peer_addr();
    let dst = SocketAddrV4::new(veth.host_addr(), PORT);
    veth.spawn_in_namespace(move || {
        let s = UdpSocket::bind(SocketAddrV4::new(peer, 0)).unwrap();
        for seq in 0..n {
            s.send_to(&payload(seq), dst).unwrap();
            if seq % 16 == 15 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        grow_rcvbuf(&s);
        s.set_read_timeout(Some(Duration::from_millis(500)))
            .unwrap();
        let mut echoes = Vec::new();
        let mut buf = [0u8; 2048];
        while let Ok((len, from)) = s.recv_from(&mut buf) {
            assert_eq!(from, std::net::SocketAddr::V4(dst), "from the host end");
            echoes.push(buf[..len].to_vec());
        }
        echoes
    })
}

/// The end of a veth test: no invalid descriptor, no
/// failed ledger check, and every frame back in the pool once the socket
/// (and the program, and the pair) are gone.
fn finish(rig: Rig) {
    let stats = rig.xsk.kernel_stats().unwrap();
    assert_eq!((stats.rx_invalid_descs, stats.tx_invalid_descs), (0, 0));
    let c = rig.xsk.counters();
    assert_eq!(
        c.ledger_violations,
        0,
        "{:?}",
        rig.xsk.first_ledger_violation()
    );
    assert!(c.ledger_checks > 2);
    let pool = rig.xsk.pool().clone();
    drop(rig);
    assert!(
        pool.is_full(),
        "every frame back: {} of {} free",
        pool.avail_count(),
        pool.size()
    );
}

/// Sends every packet of `left` and waits until the kernel completed
/// them all.
fn send_all(xsk: &mut XskSocket, left: &mut Vec<Mbuf>) {
    let end = Instant::now() + Duration::from_secs(5);
    while !left.is_empty() && Instant::now() < end {
        xsk.tx_burst(left);
    }
    assert!(left.is_empty(), "all queued");
    while xsk.tx_in_flight() > 0 && Instant::now() < end {
        xsk.complete();
        xsk.kick();
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// RX of a known sequence (every packet once, in order, at the kernel's
/// offset, over its own frame), an exact ledger while the test holds the
/// mbufs, their echo sent back by descriptor and received by the peer,
/// completions for every frame, the copy path for a chain of another
/// pool, and every frame back in the pool after the socket goes; aligned
/// mode (2048-byte frames).
#[test]
fn rx_sequence_tx_echo_and_every_frame_back() {
    roundtrip("veth RX/TX, aligned", UmemConfig::new(1024));
}

/// The same in unaligned mode (3000-byte frames, 64 bytes of user
/// headroom: descriptors carry the offset in their top bits, completions
/// come back with it).
#[test]
fn rx_sequence_tx_echo_unaligned_with_headroom() {
    roundtrip(
        "veth RX/TX, unaligned",
        UmemConfig::new(512).frame_size(3000).headroom(64),
    );
}

#[allow(clippy::too_many_lines)] // one story: RX, hold, echo, copy, teardown
fn roundtrip(what: &str, umem: UmemConfig) {
    const N: u32 = 200;
    let Some(mut rig) = rig(what, |b| b.umem(umem)) else {
        return;
    };
    let frames = rig.xsk.geometry().frames();
    let g = rig.xsk.geometry();
    assert!(!rig.xsk.is_zero_copy(), "veth binds in copy mode");
    assert_eq!(rig.xsk.rx_in_kernel(), rig.xsk.fill_target());
    let start = rig.xsk.ledger();
    start.check().unwrap();
    assert_eq!(
        (start.in_app, start.table, start.fifo),
        (0, frames / 2, 0),
        "{start}"
    );

    // The peer: one socket sends the sequence and then collects the echoes
    // (they come back to its own port).
    let sender = peer_sender(&rig.veth, N);

    let mut got = Vec::new();
    let others = receive(&mut rig.xsk, &mut got, N as usize, Duration::from_secs(10));
    assert_eq!(
        got.len(),
        N as usize,
        "all {N} received ({others} other frames)"
    );
    let umem = rig.xsk.umem_addr();
    let mut frames = std::collections::HashSet::new();
    for (i, m) in got.iter().enumerate() {
        assert_eq!(our_seq(m.data()), Some(i as u32), "in order, each once");
        assert_eq!(m.headroom(), g.rx_offset(), "at the kernel's offset");
        assert_eq!(m.data_len(), 14 + 20 + 8 + payload(0).len());
        let off = m.buf_addr().as_ptr() as usize - umem;
        assert_eq!(off % g.frame_size(), 0, "over a frame of the UMEM");
        assert!(frames.insert(off), "a frame of its own");
        assert!(m.is_writable(), "the only reference to its frame");
    }
    let l = rig.xsk.ledger();
    l.check().unwrap();
    assert_eq!(l.in_app, N as usize, "the test holds exactly {N}: {l}");
    assert_eq!(l.free + l.table + l.fifo + l.in_app, l.total);
    got.truncate(N as usize / 2); // half dropped: their frames go back
    let l = rig.xsk.ledger();
    assert_eq!(l.in_app, N as usize / 2, "{l}");
    let c = rig.xsk.counters();
    assert_eq!(c.rx_bad.total(), 0);
    assert_eq!(c.rx_packets as usize, N as usize + others);

    // Echo the half we kept, by descriptor, over the same frames; and one
    // more packet, sequence N, from another pool: copied into a fresh frame.
    let mut extra = got[0].data().to_vec();
    extra[42..].copy_from_slice(&payload(N));
    echo(&mut extra);
    for m in &mut got {
        echo(m.data_mut().unwrap());
    }
    let other = PktPool::builder(4).build_anonymous().unwrap();
    let mut m = other.alloc_default().unwrap();
    m.append(30).unwrap().copy_from_slice(&extra[..30]);
    let mut tail = other.alloc_default().unwrap();
    tail.append(extra.len() - 30)
        .unwrap()
        .copy_from_slice(&extra[30..]);
    m.chain(tail).unwrap(); // a chain: linearised into one fresh frame
    let mut left = std::mem::take(&mut got);
    left.push(m);
    send_all(&mut rig.xsk, &mut left);
    assert!(
        other.is_full(),
        "the copied packet's own mbuf was freed at once"
    );
    let c = rig.xsk.counters();
    assert_eq!(rig.xsk.tx_in_flight(), 0, "every frame completed: {c:?}");
    assert_eq!(
        (c.tx_zero_copy, c.tx_copied, c.tx_completed),
        (u64::from(N / 2), 1, u64::from(N / 2) + 1)
    );
    assert_eq!((c.completion_unknown, c.completion_out_of_order), (0, 0));
    assert!(c.tx_kicks > 0, "copy mode TX needs sendto");
    let echoes = sender.join().unwrap().unwrap();
    let seqs: Vec<u32> = echoes
        .iter()
        .map(|e| u32::from_be_bytes(e[..4].try_into().unwrap()))
        .collect();
    let want: Vec<u32> = (0..N / 2).chain([N]).collect();
    assert_eq!(seqs, want, "the peer got every echo, in order");
    for e in &echoes {
        let seq = u32::from_be_bytes(e[..4].try_into().unwrap());
        assert_eq!(e, &payload(seq));
    }

    assert_eq!(rig.xsk.kernel_stats().unwrap().rx_dropped, 0, "no loss");
    finish(rig);
}

/// A zero-copy bind on veth is the typed `EOPNOTSUPP` error, and leaves
/// nothing behind (the chunk and its frames go back).
#[test]
fn zero_copy_on_veth_is_a_typed_error() {
    let veth = match VethPair::create() {
        Ok(v) => v,
        Err(e @ (NetnsError::NotPermitted { .. } | NetnsError::NoIpTool)) => {
            eprintln!("SKIP: zero-copy bind: {e}");
            return;
        }
        Err(e) => panic!("veth pair: {e}"),
    };
    let p = provider();
    let used = |p: &Provider| {
        let mut n = 0;
        p.walk_pages(|pg| n += usize::from(pg.in_use));
        n
    };
    let before = used(&p);
    match XskSocket::builder(veth.host_ifindex(), 0)
        .umem(UmemConfig::new(256))
        .bind_mode(BindMode::ZeroCopy)
        .build_on(&p)
    {
        Err(XskError::ZeroCopyUnsupported { ifindex, queue: 0 }) => {
            assert_eq!(ifindex, veth.host_ifindex());
        }
        Err(e) if e.is_unavailable() => eprintln!("SKIP: zero-copy bind: {e}"),
        Ok(_) => panic!("veth bound in zero-copy mode"),
        Err(e) => panic!("expected ZeroCopyUnsupported, got {e}"),
    }
    assert_eq!(used(&p), before, "the UMEM chunk and the pool went back");
}

/// Sends packets `seqs` from the namespace to the host end's `PORT`, paced,
/// and returns once they are all sent.
fn send_from_peer(veth: &VethPair, seqs: std::ops::Range<u32>) {
    let peer = veth.peer_addr();
    let dst = SocketAddrV4::new(veth.host_addr(), PORT);
    veth.in_namespace(move || {
        let s = UdpSocket::bind(SocketAddrV4::new(peer, 0)).unwrap();
        for seq in seqs {
            s.send_to(&payload(seq), dst).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
    })
    .unwrap();
}

/// Frames are never allocatable twice: while the kernel has them they are
/// not in the pool. Frames held by the application starve the fill ring:
/// the refill comes up short (counted), the kernel counts the packets it
/// had no frame for, and once the frames are dropped RX resumes, with no
/// wake-up syscall (copy mode needs none for the fill ring).
#[test]
fn held_frames_starve_the_fill_ring_and_rx_resumes() {
    let Some(mut rig) = rig("fill starvation", |b| {
        b.umem(UmemConfig::new(64)).fill_target(32)
    }) else {
        return;
    };
    let pool = rig.xsk.pool().clone();
    let l = rig.xsk.ledger();
    assert_eq!((l.table, l.free, l.in_app), (32, 32, 0), "{l}");
    // The application takes every free frame.
    let hog: Vec<Mbuf> = (0..32).map(|_| pool.alloc_default().unwrap()).collect();
    assert!(
        pool.alloc_default().is_err(),
        "the 32 frames with the kernel cannot be allocated"
    );
    let l = rig.xsk.ledger();
    assert_eq!((l.table, l.free, l.in_app), (32, 0, 32), "{l}");

    // 48 packets for 32 frames: 16 have nowhere to go.
    send_from_peer(&rig.veth, 0..48);
    let mut held = Vec::new();
    receive(&mut rig.xsk, &mut held, 48, Duration::from_millis(500));
    assert_eq!(held.len(), 32, "as many as the kernel had frames");
    let seqs: Vec<u32> = held.iter().filter_map(|m| our_seq(m.data())).collect();
    assert_eq!(seqs, (0..32).collect::<Vec<_>>());
    let c = rig.xsk.counters();
    assert!(c.fill_shortfall > 0 && c.fill_short_refills > 0, "{c:?}");
    let l = rig.xsk.ledger();
    assert_eq!(
        (l.table, l.free, l.in_app),
        (0, 0, 64),
        "all with the app: {l}"
    );
    let k = rig.xsk.kernel_stats().unwrap();
    assert!(
        k.rx_dropped >= 16,
        "the kernel counted the 16 it had no frame for: {k:?}"
    );

    // Frames back: RX resumes.
    drop(hog);
    drop(held);
    let mut more = Vec::new();
    rig.xsk.rx_burst(&mut more, 64); // refill
    assert_eq!(rig.xsk.rx_in_kernel(), 32);
    send_from_peer(&rig.veth, 48..68);
    receive(&mut rig.xsk, &mut more, 20, Duration::from_secs(5));
    let seqs: Vec<u32> = more.iter().filter_map(|m| our_seq(m.data())).collect();
    assert_eq!(seqs, (48..68).collect::<Vec<_>>(), "RX resumed");
    drop(more);
    let c = rig.xsk.counters();
    assert_eq!(
        (c.rx_kicks, c.tx_kicks),
        (0, 0),
        "no wake-up syscall: {c:?}"
    );
    finish(rig);
}

/// The socket moves between threads (one owner at a time).
#[test]
fn the_socket_is_send() {
    fn send<T: Send>() {}
    send::<XskSocket>();
    send::<pktmem::net::xdp::Ledger>();
}

/// Asks for a 4 MiB receive buffer (past `rmem_max`, as root), so the
/// peer's socket holds every echo until it reads them.
fn grow_rcvbuf(sock: &UdpSocket) {
    use std::os::fd::AsRawFd;
    let bytes: libc::c_int = 4 << 20;
    // SAFETY: `bytes` is a live c_int of the length given.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&bytes).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Random drops, holds, echoes and echoes with a clone (both sent) over
/// 300 received packets: after every burst the ledger is exact (the frames
/// with the application are exactly those the test holds), the fill target
/// is kept, the peer gets every echo and clone, and every frame (and every
/// clone's mbuf) is back at the end.
#[test]
fn random_drops_holds_echoes_and_clones_keep_every_frame() {
    const N: u32 = 300;
    let Some(mut rig) = rig("random operations", |b| {
        b.umem(UmemConfig::new(256)).fill_target(128)
    }) else {
        return;
    };
    let clones = PktPool::builder(256).build_anonymous().unwrap();
    let sender = peer_sender(&rig.veth, N);
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let (mut seen, mut echoes_sent) = (0u32, 0u64);
    let mut held: Vec<Mbuf> = Vec::new();
    let mut batch = Vec::new();
    let mut out = Vec::new();
    let end = Instant::now() + Duration::from_secs(20);
    while seen < N && Instant::now() < end {
        let short = rig.xsk.counters().fill_shortfall;
        let got = rig.xsk.rx_burst(&mut batch, 32);
        if rig.xsk.counters().fill_shortfall == short {
            // Topped up by bursts of 32: never more than 31 short.
            assert!(
                rig.xsk.rx_in_kernel() + got > 128 - 32,
                "the fill target is kept"
            );
        }
        for mut m in batch.drain(..) {
            if our_seq(m.data()).is_none() {
                continue;
            }
            seen += 1;
            match rng.below(20) {
                0..=7 => drop(m),
                8..=11 => held.push(m),
                12..=16 => {
                    echo(m.data_mut().unwrap());
                    out.push(m);
                    echoes_sent += 1;
                }
                _ => {
                    echo(m.data_mut().unwrap());
                    let c = m.clone_in(&clones).unwrap();
                    assert!(!m.is_writable(), "shared with its clone");
                    out.push(m);
                    out.push(c);
                    echoes_sent += 2;
                }
            }
            if held.len() > 40 {
                let i = rng.below(held.len() as u64) as usize;
                drop(held.swap_remove(i));
            }
        }
        rig.xsk.tx_burst(&mut out);
        let l = rig.xsk.ledger();
        l.check().unwrap();
        let clone_frames: std::collections::HashSet<usize> =
            out.iter().map(|m| m.buf_addr().as_ptr() as usize).collect();
        assert_eq!(
            l.in_app,
            held.len() + clone_frames.len(),
            "the app holds what the test holds: {l}"
        );
        if got == 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    assert_eq!(seen, N, "all received");
    send_all(&mut rig.xsk, &mut out);
    let c = rig.xsk.counters();
    assert_eq!(c.tx_zero_copy + c.tx_copied, echoes_sent, "{c:?}");
    assert_eq!(c.tx_completed, echoes_sent);
    let echoes = sender.join().unwrap().unwrap();
    assert_eq!(echoes.len() as u64, echoes_sent, "the peer got every echo");
    for e in &echoes {
        let seq = u32::from_be_bytes(e[..4].try_into().unwrap());
        assert_eq!(e, &payload(seq));
    }
    eprintln!(
        "{N} packets: {} held at the end, {echoes_sent} echoes ({} by descriptor, {} copied)",
        held.len(),
        c.tx_zero_copy,
        c.tx_copied
    );
    drop(held);
    finish(rig);
    assert!(clones.is_full(), "every clone's mbuf back");
}
