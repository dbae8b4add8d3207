//! Veth pairs in a namespace of their own: made, used from both sides, and
//! removed on drop (skipped, saying so, without the privilege).

#![cfg(feature = "net")]

use std::net::UdpSocket;
use std::time::Duration;

use pktmem::net::netns::{NetnsError, VethPair};

fn namespaces() -> String {
    String::from_utf8_lossy(
        &std::process::Command::new("ip")
            .args(["netns", "list"])
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default(),
    )
    .into_owned()
}

#[test]
fn a_datagram_crosses_the_pair_and_drop_removes_it() {
    let veth = match VethPair::create() {
        Ok(v) => v,
        Err(e @ (NetnsError::NotPermitted { .. } | NetnsError::NoIpTool)) => {
            eprintln!("SKIP: {e}");
            return;
        }
        Err(e) => panic!("{e}"),
    };
    assert_ne!(veth.host_ifindex(), 0);
    assert_ne!(veth.host_mac(), [0; 6]);
    assert_ne!(veth.host_mac(), veth.peer_mac());
    let ns = veth.namespace().to_owned();
    assert!(namespaces().contains(&ns));

    let rx = UdpSocket::bind((veth.host_addr(), 0)).unwrap();
    rx.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let to = rx.local_addr().unwrap();
    let sent = veth
        .in_namespace(move || {
            let s = UdpSocket::bind("0.0.0.0:0").unwrap();
            s.send_to(b"across the pair", to).unwrap();
            s.local_addr().unwrap()
        })
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, from) = rx.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"across the pair");
    assert_eq!(from.ip(), veth.peer_addr());
    assert_eq!(from.port(), sent.port());

    let host_if = veth.host_ifname().to_owned();
    drop(veth);
    assert!(!namespaces().contains(&ns), "namespace {ns} left behind");
    assert!(!std::path::Path::new(&format!("/sys/class/net/{host_if}")).exists());
}

/// Runs `ip <args>`, `true` when it succeeded.
fn ip(args: &[&str]) -> bool {
    std::process::Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn root_or_skip(what: &str) -> bool {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 || !ip(&["-V"]) {
        eprintln!("SKIP: {what}: needs root and iproute2 (network namespaces)");
        return false;
    }
    true
}

/// Deletes the namespaces and links named when dropped (also on a failed
/// assertion).
struct Cleanup {
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            ip(&["netns", "del", ns]);
        }
        for l in &self.links {
            ip(&["link", "del", l]);
        }
    }
}

/// This process's start time (clock ticks after boot), as the module names
/// its namespaces with.
fn own_start() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    after.split_whitespace().nth(19).unwrap().to_owned()
}

#[test]
fn stale_namespaces_go_even_when_their_pid_lives_again_and_live_ones_stay() {
    if !root_or_skip("stale namespaces") {
        return;
    }
    let me = std::process::id();
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let pid = c.id();
        c.wait().unwrap();
        pid
    };
    let stale = [
        // A process with our pid that started at another time: gone.
        format!("pktmem-{me}-1-0"),
        // pid 1 lives, but did not start then.
        "pktmem-1-2-0".to_owned(),
        // A dead pid, in both forms.
        format!("pktmem-{dead}-3-0"),
        format!("pktmem-{dead}-0"),
    ];
    // Ours (this process, as its start time says): kept.
    let live = format!("pktmem-{me}-{}-999999", own_start());
    // Not of the form: kept.
    let other = format!("pktmem-x{me}-1-0");
    let mut cleanup = Cleanup {
        namespaces: stale.to_vec(),
        links: Vec::new(),
    };
    cleanup.namespaces.extend([live.clone(), other.clone()]);
    for ns in &cleanup.namespaces {
        assert!(ip(&["netns", "add", ns]), "ip netns add {ns}");
    }
    let veth = VethPair::create().unwrap();
    let now = namespaces();
    let left: Vec<&String> = stale
        .iter()
        .filter(|ns| {
            now.lines()
                .any(|l| l.split_whitespace().next() == Some(ns.as_str()))
        })
        .collect();
    assert!(left.is_empty(), "stale namespaces left: {left:?}");
    assert!(
        now.contains(&live),
        "a live process's namespace was removed"
    );
    assert!(now.contains(&other));
    assert!(now.contains(veth.namespace()));
    drop(veth);
}

#[test]
fn interface_names_another_process_has_are_left_alone() {
    if !root_or_skip("taken interface names") {
        return;
    }
    // The names the next pairs of this process would take first: taken
    // (by veth pairs of this test, as another process's would be).
    let me = std::process::id();
    let taken: Vec<String> = (0..16)
        .map(|n| format!("pkh{}", (me.wrapping_mul(31).wrapping_add(n)) % 100_000))
        .collect();
    let mut cleanup = Cleanup {
        namespaces: Vec::new(),
        links: Vec::new(),
    };
    for (i, name) in taken.iter().enumerate() {
        let peer = format!("pkq{me}x{i}");
        if ip(&["link", "add", name, "type", "veth", "peer", "name", &peer]) {
            cleanup.links.push(name.clone());
        }
    }
    let ifindex = |name: &str| {
        std::fs::read_to_string(format!("/sys/class/net/{name}/ifindex"))
            .ok()
            .map(|s| s.trim().to_owned())
    };
    let before: Vec<_> = cleanup.links.iter().map(|l| ifindex(l)).collect();
    assert!(!cleanup.links.is_empty());
    let veth = VethPair::create().unwrap();
    assert!(!taken.contains(&veth.host_ifname().to_owned()));
    let after: Vec<_> = cleanup.links.iter().map(|l| ifindex(l)).collect();
    assert_eq!(
        before, after,
        "another pair's interface was deleted or replaced"
    );
    let host = veth.host_ifname().to_owned();
    drop(veth);
    assert!(!std::path::Path::new(&format!("/sys/class/net/{host}")).exists());
    let after: Vec<_> = cleanup.links.iter().map(|l| ifindex(l)).collect();
    assert_eq!(
        before, after,
        "dropping the pair deleted another's interface"
    );
}

#[test]
fn a_name_taken_after_the_pair_went_is_not_deleted_by_the_guard() {
    if !root_or_skip("a name taken after the pair went") {
        return;
    }
    let veth = VethPair::create().unwrap();
    let (ns, host) = (veth.namespace().to_owned(), veth.host_ifname().to_owned());
    // The pair goes with its namespace (deleted from outside), and another
    // process's pair takes the host end's name.
    assert!(ip(&["netns", "del", &ns]));
    let gone = std::time::Instant::now();
    while std::path::Path::new(&format!("/sys/class/net/{host}")).exists() {
        assert!(gone.elapsed() < Duration::from_secs(5), "the pair went");
        std::thread::sleep(Duration::from_millis(10));
    }
    let peer = format!("pkq{}t", std::process::id());
    // The name can stay reserved a moment after its sysfs entry went (the
    // kernel finishes unregistering the device): retry for a while.
    let taking = std::time::Instant::now();
    while !ip(&["link", "add", &host, "type", "veth", "peer", "name", &peer]) {
        assert!(
            taking.elapsed() < Duration::from_secs(5),
            "could not take the name {host}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _cleanup = Cleanup {
        namespaces: Vec::new(),
        links: vec![host.clone()],
    };
    drop(veth);
    assert!(
        std::path::Path::new(&format!("/sys/class/net/{host}")).exists(),
        "the guard deleted another pair's interface"
    );
}
