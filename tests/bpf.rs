//! The XDP redirect program against the real kernel: the XSKMAP and its
//! errors, the program's decision on an empty map, attaching to a veth pair
//! in a namespace of its own (seen by `ip link`, gone on drop), and no
//! descriptor leaked whatever the drop order. Each test SKIPs, saying why,
//! without root or the kernel feature.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

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

/// A map of `entries` slots and the redirect program over it, or `None`
/// (said as SKIP) as [`or_skip`].
fn program_or_skip(entries: u32) -> Option<(XskMap, RedirectProgram)> {
    let map = or_skip("XskMap::new", XskMap::new(entries))?;
    let prog = or_skip("RedirectProgram::load", RedirectProgram::load(&map))?;
    Some((map, prog))
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
    // More slots than the kernel will allocate: an error, not a panic.
    match XskMap::new(u32::MAX) {
        Err(e @ BpfError::Sys { .. }) => eprintln!("XskMap::new(u32::MAX): {e}"),
        other => panic!("a map of 2^32 - 1 slots: {other:?}"),
    }

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
    // An AF_XDP socket is taken (bound or not: the kernel checks the
    // family only; an unbound one drops what is redirected to it).
    if let Some(xsk) = xdp_socket() {
        map.insert(2, xsk.as_fd()).unwrap();
        map.insert(2, xsk.as_fd()).unwrap(); // again: replaces itself
    }
    // Emptying slots that hold nothing.
    for q in 0..4 {
        map.remove(q).unwrap();
    }
}

#[test]
fn the_program_passes_frames_while_the_map_is_empty() {
    let _s = serial();
    let Some((_, prog)) = program_or_skip(2) else {
        return;
    };
    assert_eq!(prog.map().entries(), 2);
    assert_ne!(prog.id().unwrap(), 0);
    let Some(action) = or_skip("test_run", prog.test_run(&frame())) else {
        return;
    };
    assert_eq!(action, XdpAction::Pass);
    for len in [14, 60, 1514, 3520] {
        let action = prog.test_run(&vec![0u8; len]).unwrap();
        assert_eq!(action, XdpAction::Pass, "{len} B");
    }
    for len in [0, 13, 3521, 9000] {
        match prog.test_run(&vec![0u8; len]) {
            Err(
                e @ BpfError::FrameLength {
                    min: 14, max: 3520, ..
                },
            ) => {
                assert!(e.to_string().contains(&format!("{len} bytes")), "{e}");
            }
            other => panic!("a {len}-byte frame: {other:?}"),
        }
    }
}

#[test]
fn attach_in_skb_mode_shows_on_the_link_and_drop_detaches() {
    let _s = serial();
    let Some((_, prog)) = program_or_skip(1) else {
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
    let Some((_, prog)) = program_or_skip(1) else {
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
        let Some((map, a)) = program_or_skip(1) else {
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

/// Receive queues of an interface (`/sys/class/net/<if>/queues/rx-*`).
fn rx_queues(ifname: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{ifname}/queues")).map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count() as u32
    })
}

#[test]
fn each_queue_uses_its_own_slot_and_a_closed_socket_leaves_it() {
    let _s = serial();
    let Some((map, prog)) = program_or_skip(2) else {
        return;
    };
    let Some(xsk) = xdp_socket() else {
        eprintln!("SKIP: no AF_XDP socket (CONFIG_XDP_SOCKETS, CAP_NET_RAW)");
        return;
    };
    let Some(veth) = veth_or_skip() else {
        return;
    };
    let (ifindex, ifname) = (veth.host_ifindex(), veth.host_ifname());
    let mut queues = rx_queues(ifname);
    if queues < 2 {
        // veth starts with one; it can have up to one per CPU.
        let _ = Command::new("ethtool")
            .args(["-L", ifname, "rx", "2", "tx", "2"])
            .output();
        queues = rx_queues(ifname);
    }
    if queues < 2 {
        eprintln!("SKIP: {ifname} has {queues} receive queue(s); this needs 2");
        return;
    }
    let f = frame();
    let on = |q| prog.test_run_on(&f, ifindex, q).unwrap();

    assert_eq!((on(0), on(1)), (XdpAction::Pass, XdpAction::Pass));
    map.insert(1, xsk.as_fd()).unwrap();
    // Only queue 1's frames are redirected; queue 0 (and loopback's 0) pass.
    assert_eq!((on(0), on(1)), (XdpAction::Pass, XdpAction::Redirect));
    assert_eq!(prog.test_run(&f).unwrap(), XdpAction::Pass);
    map.insert(0, xsk.as_fd()).unwrap();
    assert_eq!(prog.test_run(&f).unwrap(), XdpAction::Redirect);
    assert_eq!(on(0), XdpAction::Redirect);
    map.remove(0).unwrap();
    assert_eq!((on(0), on(1)), (XdpAction::Pass, XdpAction::Redirect));
    // Closing the socket takes it out of the map.
    drop(xsk);
    assert_eq!((on(0), on(1)), (XdpAction::Pass, XdpAction::Pass));

    match prog.test_run_on(&f, ifindex, queues) {
        Err(e @ BpfError::NoSuchQueue { .. }) => {
            assert!(e.to_string().contains(&format!("queue {queues}")), "{e}");
        }
        other => panic!("queue {queues} of {queues}: {other:?}"),
    }
    assert!(matches!(
        prog.test_run_on(&f, 0x7fff_fff0, 0),
        Err(BpfError::NoSuchDevice {
            ifindex: 0x7fff_fff0
        })
    ));
}

/// Sends datagrams from the namespace to `rx` until one arrives or
/// `within` passes; returns whether one arrived.
fn datagram_arrives(veth: &VethPair, rx: &std::net::UdpSocket, within: Duration) -> bool {
    let to = rx.local_addr().unwrap();
    let deadline = Instant::now() + within;
    let tx = veth
        .in_namespace(|| std::net::UdpSocket::bind("0.0.0.0:0"))
        .unwrap()
        .unwrap();
    rx.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        let _ = tx.send_to(b"pktmem-bpf", to);
        if let Ok((n, _)) = rx.recv_from(&mut buf) {
            if &buf[..n] == b"pktmem-bpf" {
                return true;
            }
        }
    }
    false
}

#[test]
fn on_a_live_link_empty_slots_pass_and_filled_slots_redirect() {
    let _s = serial();
    let Some(veth) = veth_or_skip() else {
        return;
    };
    let queues = rx_queues(veth.host_ifname()).max(1);
    let Some((map, prog)) = program_or_skip(queues) else {
        return;
    };
    let Some(xsk) = xdp_socket() else {
        eprintln!("SKIP: no AF_XDP socket (CONFIG_XDP_SOCKETS, CAP_NET_RAW)");
        return;
    };
    let rx = std::net::UdpSocket::bind((veth.host_addr(), 0)).unwrap();
    let link = prog.attach(veth.host_ifindex(), XdpMode::Skb).unwrap();

    // Empty map: the program passes everything (ARP too), traffic flows.
    assert!(datagram_arrives(&veth, &rx, Duration::from_secs(5)));
    // An (unbound) socket in every slot: every frame is redirected to it
    // and dropped there, so nothing reaches the UDP socket.
    for q in 0..queues {
        map.insert(q, xsk.as_fd()).unwrap();
    }
    while rx.recv_from(&mut [0u8; 64]).is_ok() {} // what was in flight
    assert!(!datagram_arrives(&veth, &rx, Duration::from_millis(500)));
    // Slots emptied: traffic flows again.
    for q in 0..queues {
        map.remove(q).unwrap();
    }
    assert!(datagram_arrives(&veth, &rx, Duration::from_secs(5)));
    // Filled again, then the program detached: the map no longer matters.
    for q in 0..queues {
        map.insert(q, xsk.as_fd()).unwrap();
    }
    drop(link);
    assert!(datagram_arrives(&veth, &rx, Duration::from_secs(5)));
}

#[test]
fn handles_are_send_and_sync_and_close_on_exec() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<XskMap>();
    send_sync::<RedirectProgram>();
    send_sync::<pktmem::net::bpf::XdpLink>();
    send_sync::<BpfError>();

    let _s = serial();
    let Some((map, prog)) = program_or_skip(1) else {
        return;
    };
    let cloexec = |fd: std::os::fd::BorrowedFd<'_>| {
        // SAFETY: F_GETFD on a live descriptor has no memory effects.
        let flags = unsafe { libc::fcntl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::F_GETFD) };
        assert!(flags >= 0);
        flags & libc::FD_CLOEXEC != 0
    };
    assert!(cloexec(map.as_fd()), "map fd inherited by exec'd children");
    assert!(
        cloexec(prog.as_fd()),
        "program fd inherited by exec'd children"
    );
    let Some(veth) = veth_or_skip() else {
        return;
    };
    let link = prog.attach(veth.host_ifindex(), XdpMode::Skb).unwrap();
    assert!(
        cloexec(link.as_fd()),
        "link fd inherited by exec'd children"
    );

    // A duplicate of the link's descriptor does not keep the program
    // attached once the link is dropped (it detaches explicitly).
    let dup = link.as_fd().try_clone_to_owned().unwrap();
    assert!(link_show(veth.host_ifname()).contains("xdpgeneric"));
    drop(link);
    let shown = link_show(veth.host_ifname());
    assert!(!shown.contains("xdp"), "a dup kept it attached: {shown}");
    drop(dup);
    // And the interface is free for the next program.
    let again = prog.attach(veth.host_ifindex(), XdpMode::Skb).unwrap();
    drop(again);
}

#[test]
fn a_link_whose_interface_went_first_drops_cleanly() {
    let _s = serial();
    let Some((_, prog)) = program_or_skip(1) else {
        return;
    };
    let before = open_fds();
    let Some(veth) = veth_or_skip() else {
        return;
    };
    let link = prog.attach(veth.host_ifindex(), XdpMode::Skb).unwrap();
    let ifindex = veth.host_ifindex();
    // The namespace and the pair go while the link is alive (the kernel
    // detaches it then); dropping the link afterwards is still fine.
    drop(veth);
    assert_eq!(link.ifindex(), ifindex);
    drop(link);
    assert_eq!(open_fds(), before);
    // The program is reusable on another interface.
    let Some(veth) = veth_or_skip() else {
        return;
    };
    let link = prog.attach(veth.host_ifindex(), XdpMode::Skb).unwrap();
    assert!(link_show(veth.host_ifname()).contains("xdpgeneric"));
    drop(link);
}

#[test]
fn many_loads_and_drops_leave_the_descriptor_count_unchanged() {
    let _s = serial();
    let _ = open_fds();
    let before = open_fds();
    let frame = frame();
    for i in 0..200u32 {
        let Some((map, prog)) = program_or_skip(1 + i % 8) else {
            return;
        };
        assert_eq!(prog.test_run(&frame).unwrap(), XdpAction::Pass);
        if i % 2 == 0 {
            drop(map);
            drop(prog);
        } else {
            drop(prog);
            drop(map);
        }
    }
    assert_eq!(open_fds(), before);
}
