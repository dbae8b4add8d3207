//! Regression tests for the review of `pktmem::shm` (each names its
//! finding): a peer in this process attached over a socket pair, the
//! exporter's objects dropped or closed under it, reclaim rules, bounded
//! service rounds.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::Duration;

use pktmem::hugemem::share::{Attachment, Exporter, Placement, Role, RoleState};
use pktmem::hugemem::Provider;
use pktmem::shm::{PeerPool, Port, PortConfig, SharedPool};

struct Rig {
    port: Option<Port>,
    pool: Option<SharedPool>,
    role: Role,
    exporter: Exporter,
    _provider: Provider,
}

fn rig() -> Rig {
    let provider = Provider::builder()
        .exportable()
        .quiet(true)
        .build()
        .expect("provider");
    let exporter = Exporter::builder(&provider).unbound().expect("exporter");
    let pool = SharedPool::builder(512, 2048)
        .build(&exporter)
        .expect("pool");
    let role = exporter.role("worker").expect("role");
    let port = pool
        .port(&role, PortConfig::default().lend(64).rings(256))
        .expect("port");
    Rig {
        port: Some(port),
        pool: Some(pool),
        role,
        exporter,
        _provider: provider,
    }
}

impl Rig {
    fn port(&mut self) -> &mut Port {
        self.port.as_mut().expect("port")
    }
    fn pool(&self) -> &SharedPool {
        self.pool.as_ref().expect("pool")
    }
}

/// Attaches as "worker"; also returns a duplicate of the socket (to cut
/// the connection with `shutdown` while the attachment stays mapped).
fn attach(exporter: &Exporter) -> (Arc<Attachment>, OwnedFd) {
    let fd = exporter.connect_pair().expect("socket pair");
    // SAFETY: `dup` of a valid fd; the new fd is owned here only.
    let dup = unsafe { OwnedFd::from_raw_fd(libc::dup(fd.as_raw_fd())) };
    let att = Attachment::builder("worker")
        .placement(Placement::Relocate)
        .from_fd(fd)
        .expect("attach");
    (Arc::new(att), dup)
}

/// Waits for the exporter's I/O thread to apply (and the peer to ack)
/// whatever a drop sent: an `Unmap` would be applied by then.
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}

/// S1: the exporter drops a port while the peer's `PeerPort` lives: the
/// rings stay mapped (the peer's calls do not fault; without the fix the
/// test process died with SIGSEGV here).
#[test]
fn s1_port_dropped_under_live_peer_keeps_rings_mapped() {
    let mut r = rig();
    let (att, _dup) = attach(&r.exporter);
    r.port().service();
    let peer = PeerPool::open(&att, "pkts").expect("open");
    let mut pport = peer.port().expect("peer port");
    let mut held = peer.alloc().expect("a lent buffer");
    drop(r.port.take());
    settle();
    let mut v = Vec::new();
    assert_eq!(pport.recv_burst(&mut v, 8), 0);
    // The lend ring is still there (no refill any more, but readable).
    let more: Vec<_> = (0..8).filter_map(|_| peer.alloc().ok()).collect();
    assert_eq!(more.len(), 8, "the lend ring stock is still readable");
    held.set_len(12).expect("len");
    held.write(0, b"still mapped").expect("write");
    let mut b = [0u8; 12];
    held.read(0, &mut b).expect("read");
    assert_eq!(&b, b"still mapped");
    // The buffers stay lent to the role (its holder lives).
    let c = r.pool().counts();
    assert_eq!(c.lent_total(), 64, "{c:?}");
    drop((more, held, pport, peer));
}

/// S1: the exporter drops the pool (and its port) while the peer holds
/// buffers: they stay mapped and readable.
#[test]
fn s1_pool_dropped_under_live_peer_keeps_buffers_mapped() {
    let mut r = rig();
    let (att, _dup) = attach(&r.exporter);
    r.port().service();
    let peer = PeerPool::open(&att, "pkts").expect("open");
    let mut held: Vec<_> = (0..4).map(|_| peer.alloc().expect("buffer")).collect();
    for (i, b) in held.iter_mut().enumerate() {
        b.set_len(64).expect("len");
        b.write(0, &[i as u8; 64]).expect("write");
    }
    drop(r.port.take());
    drop(r.pool.take());
    settle();
    for (i, b) in held.iter().enumerate() {
        let mut got = [0u8; 64];
        b.read(0, &mut got).expect("read");
        assert_eq!(got, [i as u8; 64]);
    }
    // The pool's entry is withdrawn: a new open fails with a typed error.
    assert!(PeerPool::open_timeout(&att, "pkts", Duration::from_millis(50)).is_err());
    drop((held, peer));
    assert!(matches!(r.role.state(), RoleState::Attached { .. }));
}

/// S1/B3: `close()` while the holder is attached takes nothing back and
/// frees nothing; a new port for the role continues from the generation
/// granted (not 0) and keeps the old loans counted.
#[test]
fn b3_close_with_live_peer_keeps_loans_and_generation() {
    let mut r = rig();
    let (att, _dup) = attach(&r.exporter);
    r.port().service();
    let granted = r.port().stats().granted;
    assert_eq!(granted, att.generation());
    let peer = PeerPool::open(&att, "pkts").expect("open");
    let mut held: Vec<_> = (0..5).map(|_| peer.alloc().expect("buffer")).collect();
    let port = r.port.take().expect("port");
    assert_eq!(port.close(), 0, "nothing taken back from a live holder");
    settle();
    let c = r.pool().counts();
    assert_eq!(c.lent_total(), 64, "{c:?}");
    held[0].set_len(2).expect("len");
    held[0].write(0, b"ok").expect("still mapped");
    let mut p2 = r
        .pool()
        .port(&r.role, PortConfig::default().lend(8).rings(64))
        .expect("port again");
    assert_eq!(p2.stats().granted, granted, "continues the old grant");
    p2.service();
    assert_eq!(p2.stats().reclaims, 0, "its holder lives: no reclaim");
    let c = r.pool().counts();
    assert_eq!(c.lent_total(), 64 + 8, "{c:?}");
    drop((held, peer));
    r.port = Some(p2);
}
