//! Veth pairs in a namespace of their own: made, used from both sides, and
//! removed on drop (skipped, saying so, without the privilege).

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
