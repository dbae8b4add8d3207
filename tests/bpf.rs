//! The XDP redirect program against the real kernel: the XSKMAP and its
//! errors, the program's decision on an empty map, attaching to a veth pair
//! in a namespace of its own (seen by `ip link`, gone on drop), and no
//! descriptor leaked whatever the drop order. Each test SKIPs, saying why,
//! without root or the kernel feature.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};

use pktmem::net::bpf::{BpfError, RedirectProgram, XdpAction, XdpMode, XskMap};
use pktmem::net::netns::{NetnsError, VethPair};

/// The tests count this process's descriptors, so they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `Some(v)` on success; `None` (after saying SKIP and why) when the kernel
/// refuses for lack of privilege or feature; panics on any other error.
fn or_skip<T>(what: &str, r: Result<T, BpfError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e @ (BpfError::NotPermitted { .. } | BpfError::Unsupported { .. })) => {
            eprintln!("SKIP: {what}: {e}");
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

fn veth_or_skip() -> Option<VethPair> {
    match VethPair::create() {
        Ok(v) => Some(v),
        Err(e @ (NetnsError::NotPermitted { .. } | NetnsError::NoIpTool)) => {
            eprintln!("SKIP: a veth pair: {e}");
            None
        }
        Err(e) => panic!("a veth pair: {e}"),
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

/// `ip -d link show dev <ifname>`.
fn link_show(ifname: &str) -> String {
    let out = Command::new("ip")
        .args(["-d", "link", "show", "dev", ifname])
        .output()
        .expect("ip link show");
    assert!(out.status.success(), "ip link show dev {ifname} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A fresh, unbound `AF_XDP` socket (needs `CAP_NET_RAW`).
fn xdp_socket() -> Option<OwnedFd> {
    // SAFETY: socket(2) has no memory preconditions.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        eprintln!(
            "note: no AF_XDP socket: {}",
            std::io::Error::last_os_error()
        );
        return None;
    }
    // SAFETY: socket() just returned this descriptor; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// A 64-byte Ethernet frame (broadcast, IPv4 ethertype, zero payload).
fn frame() -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[..6].copy_from_slice(&[0xff; 6]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f
}

#[test]
fn map_rejects_bad_slots_and_sockets_that_are_not_xsks() {
    let _s = serial();
    assert!(matches!(XskMap::new(0), Err(BpfError::ZeroEntries)));
    let Some(map) = or_skip("XskMap::new", XskMap::new(4)) else {
        return;
    };
    assert_eq!(map.entries(), 4);

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    match map.insert(4, udp.as_fd()) {
        Err(BpfError::QueueOutOfRange {
            queue: 4,
            entries: 4,
        }) => {}
        other => panic!("slot 4 of 4: {other:?}"),
    }
    assert!(matches!(
        map.remove(7),
        Err(BpfError::QueueOutOfRange {
            queue: 7,
            entries: 4
        })
    ));
    // A socket of another family.
    match map.insert(1, udp.as_fd()) {
        Err(e @ BpfError::NotAnXsk { queue: 1, errno }) => {
            assert_eq!(errno, libc::EOPNOTSUPP, "{e}");
            assert!(e.to_string().contains("slot 1"), "{e}");
        }
        other => panic!("a UDP socket in an XSKMAP: {other:?}"),
    }
    // Not a socket at all.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    match map.insert(0, file.as_fd()) {
        Err(BpfError::NotAnXsk { queue: 0, errno }) => assert_eq!(errno, libc::ENOTSOCK),
        other => panic!("a file in an XSKMAP: {other:?}"),
    }
    // An AF_XDP socket that is not bound yet.
    if let Some(xsk) = xdp_socket() {
        let r = map.insert(2, xsk.as_fd());
        eprintln!("unbound AF_XDP socket: {r:?}");
    }
    // Emptying slots that hold nothing.
    for q in 0..4 {
        map.remove(q).unwrap();
    }
}

#[test]
fn the_program_passes_frames_while_the_map_is_empty() {
    let _s = serial();
    let Some(map) = or_skip("XskMap::new", XskMap::new(2)) else {
        return;
    };
    let Some(prog) = or_skip("RedirectProgram::load", RedirectProgram::load(&map)) else {
        return;
    };
    assert_eq!(prog.map().entries(), 2);
    assert_ne!(prog.id().unwrap(), 0);
    let Some(action) = or_skip("test_run", prog.test_run(&frame())) else {
        return;
    };
    assert_eq!(action, XdpAction::Pass);
    for len in [14, 100, 1514, 3000, 3520, 3521, 4000, 9000] {
        eprintln!("len {len}: {:?}", prog.test_run(&vec![0u8; len]));
    }
    match prog.test_run(&[0u8; 13]) {
        Err(BpfError::FrameLength {
            len: 13, min: 14, ..
        }) => {}
        other => panic!("a 13-byte frame: {other:?}"),
    }
}

#[test]
fn attach_in_skb_mode_shows_on_the_link_and_drop_detaches() {
    let _s = serial();
    let Some(map) = or_skip("XskMap::new", XskMap::new(1)) else {
        return;
    };
    let Some(prog) = or_skip("RedirectProgram::load", RedirectProgram::load(&map)) else {
        return;
    };
    let Some(veth) = veth_or_skip() else {
        return;
    };
    let id = prog.id().unwrap();
    let ifname = veth.host_ifname().to_owned();
    let before = link_show(&ifname);
    assert!(!before.contains("xdp"), "{before}");

    let Some(link) = or_skip(
        "attach (SKB)",
        prog.attach(veth.host_ifindex(), XdpMode::Skb),
    ) else {
        return;
    };
    assert_eq!(link.ifindex(), veth.host_ifindex());
    assert_eq!(link.mode(), XdpMode::Skb);
    assert_ne!(link.id().unwrap(), 0);
    let shown = link_show(&ifname);
    eprintln!("{shown}");
    assert!(shown.contains("xdpgeneric"), "{shown}");
    assert!(shown.contains(&format!("id {id}")), "program {id}: {shown}");

    match prog.attach(veth.host_ifindex(), XdpMode::Skb) {
        Err(e @ BpfError::Busy { .. }) => eprintln!("second attach: {e}"),
        other => panic!("a second SKB attach: {other:?}"),
    }
    match prog.attach(veth.host_ifindex(), XdpMode::Driver) {
        Err(BpfError::Busy {
            mode: XdpMode::Driver,
            ..
        }) => {}
        other => panic!("a driver attach next to an SKB one: {other:?}"),
    }

    drop(link);
    let after = link_show(&ifname);
    assert!(!after.contains("xdp"), "{after}");

    // Native mode on veth, then gone again.
    if let Some(link) = or_skip(
        "attach (driver)",
        prog.attach(veth.host_ifindex(), XdpMode::Driver),
    ) {
        let shown = link_show(&ifname);
        eprintln!("{shown}");
        assert!(shown.contains(&format!("id {id}")), "{shown}");
        assert!(!shown.contains("xdpgeneric"), "{shown}");
        drop(link);
        let after = link_show(&ifname);
        assert!(!after.contains("xdp"), "{after}");
    }
}

#[test]
fn attach_to_a_missing_interface_is_a_typed_error() {
    let _s = serial();
    let Some(map) = or_skip("XskMap::new", XskMap::new(1)) else {
        return;
    };
    let Some(prog) = or_skip("RedirectProgram::load", RedirectProgram::load(&map)) else {
        return;
    };
    for ifindex in [0, 0x7fff_fff0] {
        match prog.attach(ifindex, XdpMode::Skb) {
            Err(e @ BpfError::NoSuchDevice { .. }) => {
                assert!(e.to_string().contains(&ifindex.to_string()), "{e}");
            }
            Err(BpfError::NotPermitted { .. }) => {
                eprintln!("SKIP: attaching needs CAP_NET_ADMIN");
                return;
            }
            other => panic!("ifindex {ifindex}: {other:?}"),
        }
    }
}

#[test]
fn loading_twice_and_dropping_in_any_order_leaks_no_descriptor() {
    let _s = serial();
    // Warm up (first-use allocations in std, e.g. the /proc read itself).
    let _ = open_fds();
    let before = open_fds();
    {
        let Some(map) = or_skip("XskMap::new", XskMap::new(1)) else {
            return;
        };
        let Some(a) = or_skip("RedirectProgram::load", RedirectProgram::load(&map)) else {
            return;
        };
        let b = RedirectProgram::load(&map).unwrap();
        assert_ne!(a.id().unwrap(), b.id().unwrap());
        // The map first, then the programs, in load order.
        drop(map);
        assert_eq!(a.test_run(&frame()).unwrap(), XdpAction::Pass);
        drop(a);
        drop(b);
    }
    assert_eq!(open_fds(), before, "map dropped first");
    {
        let map = XskMap::new(3).unwrap();
        let a = RedirectProgram::load(&map).unwrap();
        let b = RedirectProgram::load(&map).unwrap();
        // The programs in reverse order, then the map.
        drop(b);
        drop(a);
        drop(map);
    }
    assert_eq!(open_fds(), before, "programs dropped first");
    {
        // Failed calls leave nothing either.
        let map = XskMap::new(1).unwrap();
        let a = RedirectProgram::load(&map).unwrap();
        assert!(a.attach(0x7fff_fff0, XdpMode::Skb).is_err());
        assert!(a.test_run(&[0; 3]).is_err());
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        assert!(map.insert(0, udp.as_fd()).is_err());
    }
    assert_eq!(open_fds(), before, "after failed calls");

    // Attach and detach: the link's descriptor goes too.
    let Some(veth) = veth_or_skip() else {
        return;
    };
    let with_veth = open_fds();
    {
        let map = XskMap::new(1).unwrap();
        let prog = RedirectProgram::load(&map).unwrap();
        let link = prog.attach(veth.host_ifindex(), XdpMode::Skb).unwrap();
        // The program first: the link keeps it attached.
        drop(prog);
        drop(map);
        let shown = link_show(veth.host_ifname());
        assert!(shown.contains("xdpgeneric"), "{shown}");
        drop(link);
    }
    assert_eq!(open_fds(), with_veth, "after attach and detach");
    let shown = link_show(veth.host_ifname());
    assert!(!shown.contains("xdp"), "{shown}");
}
