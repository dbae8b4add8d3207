//! Regression tests for the review of `pktmem::shm` (each names its
//! finding): a peer in this process attached over a socket pair, the
//! exporter's objects dropped or closed under it, reclaim rules, bounded
//! service rounds.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pktmem::hugemem::share::{Attachment, Exporter, Placement, Role, RoleState};
use pktmem::hugemem::Provider;
use pktmem::ring::shared::{shm_ring_indices, shm_ring_read_slot, Desc, ShmConsumer, ShmProducer};
use pktmem::shm::{AllocError, OpenError, PeerPool, PeerPortError, Port, PortConfig, SharedPool};

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
    let mut inbox = Vec::new();
    assert_eq!(pport.recv_burst(&mut inbox, 8), 0);
    // The lend ring is still there (no refill any more, but readable).
    let more: Vec<_> = (0..8).filter_map(|_| peer.alloc().ok()).collect();
    assert_eq!(more.len(), 8, "the lend ring stock is still readable");
    held.set_len(12).expect("len");
    held.write(0, b"still mapped").expect("write");
    let mut bytes = [0u8; 12];
    held.read(0, &mut bytes).expect("read");
    assert_eq!(&bytes, b"still mapped");
    // The buffers stay lent to the role (its holder lives).
    let counts = r.pool().counts();
    assert_eq!(counts.lent_total(), 64, "{counts:?}");
    // The peer is told, with typed errors, where it asks.
    assert!(peer.is_withdrawn());
    drop(pport);
    assert!(
        matches!(peer.port(), Err(PeerPortError::Withdrawn { .. })),
        "port of a withdrawn pool"
    );
    let mut rest = Vec::new();
    let err = loop {
        match peer.alloc() {
            Ok(b) => rest.push(b),
            Err(err) => break err,
        }
    };
    assert!(matches!(err, AllocError::Withdrawn { .. }), "{err}");
    assert_eq!(
        rest.len() + more.len() + 1,
        64,
        "the whole stock, then the error"
    );
    drop((rest, more, held, peer));
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
    assert!(
        peer.is_withdrawn(),
        "the old rings are no longer the role's port"
    );
    assert_eq!(p2.stats().granted, granted, "continues the old grant");
    p2.service();
    assert_eq!(p2.stats().reclaims, 0, "its holder lives: no reclaim");
    let c = r.pool().counts();
    assert_eq!(c.lent_total(), 64 + 8, "{c:?}");
    drop((held, peer));
    r.port = Some(p2);
}

fn wait_state(role: &Role, pred: impl Fn(RoleState) -> bool) {
    let t = Instant::now();
    while !pred(role.state()) && t.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(pred(role.state()), "role state {:?}", role.state());
}

/// B1: the connection is cut (role `Gone`, same pid) while the old
/// `PeerPool` lives with buffers in hand, and the process re-attaches
/// (generation 2): no reclaim, no buffer of the old holder's goes back to
/// the exporter, the new generation is not granted (typed timeout); once
/// the old objects are dropped and the exporter is told so, it is.
#[test]
fn b1_no_reclaim_while_the_old_holder_lives() {
    let mut r = rig();
    let (att1, dup) = attach(&r.exporter);
    r.port().service();
    let peer1 = PeerPool::open(&att1, "pkts").expect("open");
    let hands: Vec<_> = (0..5).map(|_| peer1.alloc().expect("buffer")).collect();
    // SAFETY: `dup` is a valid socket fd owned here.
    let rc = unsafe { libc::shutdown(dup.as_raw_fd(), libc::SHUT_RDWR) };
    assert_eq!(rc, 0, "shutdown");
    wait_state(&r.role, |s| matches!(s, RoleState::Gone { .. }));
    let (att2, _dup2) = attach(&r.exporter);
    assert_eq!(att2.generation(), 2);
    for _ in 0..3 {
        r.port().service();
    }
    let s = r.port().stats();
    assert_eq!((s.reclaims, s.reclaimed, s.granted), (0, 0, 1), "{s:?}");
    let lent = r.pool().counts().lent_total();
    assert!(lent >= 64 + 5, "{lent}");
    let mut ex = Vec::new();
    r.pool().alloc_burst(&mut ex, 512);
    let twice = ex
        .iter()
        .filter(|b| hands.iter().any(|h| h.index() == b.index()))
        .count();
    assert_eq!(twice, 0, "buffers owned by the old holder and the exporter");
    assert_eq!(ex.len(), 512 - lent, "what was lent stays lent");
    drop(ex);
    let e = PeerPool::open_timeout(&att2, "pkts", Duration::from_millis(100)).unwrap_err();
    assert!(
        matches!(
            e,
            OpenError::Timeout {
                want: 2,
                granted: 1,
                ..
            }
        ),
        "{e}"
    );
    // The old objects go; the exporter is told (in one process the role
    // never reaches `Exited`), then grants generation 2.
    drop((hands, peer1));
    r.port().reclaim_as_exited();
    r.port().service();
    assert_eq!(r.port().stats().granted, 2);
    let peer2 = PeerPool::open(&att2, "pkts").expect("open gen 2");
    let b = peer2.alloc().expect("a loan for gen 2");
    drop((b, peer2));
    r.port().service();
    assert_eq!(r.pool().counts().lost, 0);
}

/// B4: one `PeerPool` per pool, role and process: a second open is a
/// typed error while the first lives, and fine after it dropped.
#[test]
fn b4_second_open_refused_while_the_first_lives() {
    let mut r = rig();
    let (att, _dup) = attach(&r.exporter);
    r.port().service();
    let first = PeerPool::open(&att, "pkts").expect("open");
    let e = PeerPool::open(&att, "pkts").unwrap_err();
    assert!(
        matches!(&e, OpenError::AlreadyOpen { entry, slot: 1 } if entry == "shm/pool/pkts"),
        "{e}"
    );
    let b = first.alloc().expect("buffer");
    drop((b, first));
    let again = PeerPool::open(&att, "pkts").expect("open again");
    drop(again);
    r.port().service();
    r.pool().audit().expect("audit");
}

/// B2: a peer that keeps its return ring full (here a thread with a raw
/// return producer enqueueing junk as fast as it can) cannot keep
/// `service` in its drain: each call handles at most one ring's worth.
#[test]
fn b2_one_service_drains_at_most_one_ring() {
    let mut r = rig();
    let (att, _dup) = attach(&r.exporter);
    r.port().service();
    // The return ring from the directory entry (layout in `pktmem::shm`):
    // the first port record starts at byte 40; bytes per ring at +24, the
    // return ring's VA at +40.
    let e = att.lookup("shm/pool/pkts").expect("entry");
    let at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().expect("8 bytes"));
    let len = usize::try_from(at(40 + 24)).expect("len");
    let mem = att.to_local(at(40 + 40), len).expect("mapped");
    let addr = mem.as_ptr() as usize;
    let stop = Arc::new(AtomicBool::new(false));
    let st = Arc::clone(&stop);
    let count = Arc::new(AtomicU64::new(0));
    let ct = Arc::clone(&count);
    let flood = std::thread::spawn(move || {
        let ptr = NonNull::new(addr as *mut u8).expect("non-null");
        // SAFETY: the return ring, mapped while `att` (kept by the test
        // until the thread is joined) lives; this is its only producer.
        let mut ret = unsafe { ShmProducer::attach(ptr, len) }.expect("producer");
        let junk = [Desc { addr: 1, meta: 0 }; 64];
        let mut sent = 0u64;
        while !st.load(Ordering::Relaxed) {
            match ret.enqueue_burst(&junk) {
                Ok(n) => {
                    sent += n as u64;
                    ct.store(sent, Ordering::Relaxed);
                }
                Err(_) => break,
            }
        }
        sent
    });
    let mut most = 0;
    let t = Instant::now();
    // Until the flooder has refilled the ring many times (two busy cores
    // are shared: give it time).
    while count.load(Ordering::Relaxed) < 16 * 256 && t.elapsed() < Duration::from_secs(10) {
        let before = r.port().stats().rejected.out_of_pool;
        r.port().service();
        most = most.max(r.port().stats().rejected.out_of_pool - before);
    }
    stop.store(true, Ordering::Relaxed);
    let sent = flood.join().expect("flooder");
    assert!(sent >= 16 * 256, "the flooder ran ({sent})");
    assert!(most > 0, "the junk was seen");
    assert!(most <= 256, "one service drained {most} (ring of 256)");
    drop(att);
}

/// The first port record's ring `i` (0 lend, 1 return, 2 down, 3 up) in
/// `att`'s mapping: (local start, bytes).
fn ring_of(att: &Attachment, i: usize) -> (NonNull<u8>, usize) {
    let e = att.lookup("shm/pool/pkts").expect("entry");
    let at = |o: usize| u64::from_le_bytes(e[o..o + 8].try_into().expect("8 bytes"));
    let len = usize::try_from(at(40 + 24)).expect("len");
    (att.to_local(at(40 + 32 + 8 * i), len).expect("mapped"), len)
}

/// R1: a holder that rewrote the lend ring's unconsumed slots before dying
/// (to name a buffer the exporter holds): its successor reads exactly the
/// exporter's kept entries, from the exporter's private shadow.
#[test]
fn r1_successor_reads_the_kept_entries_not_the_dead_holders_slots() {
    let mut r = rig();
    let (att1, _dup) = attach(&r.exporter);
    r.port().service();
    let (mem, len) = ring_of(&att1, 0);
    // SAFETY: the lend ring, mapped while `att1` lives; its only consumer.
    let mut lend = unsafe { ShmConsumer::attach(mem, len) }.expect("consumer");
    let mut took = vec![Desc::default(); 10];
    assert_eq!(lend.dequeue_burst(&mut took).expect("dequeue"), 10);
    // SAFETY: as above (reads of the mapped ring).
    let (head, tail) = unsafe { shm_ring_indices(mem, len) }.expect("indices");
    assert_eq!((head, tail), (10, 64));
    // SAFETY: as above.
    let read = |pos: u64| unsafe { shm_ring_read_slot(mem, len, pos) }.expect("slot");
    let kept: Vec<u64> = (head..tail).map(|p| read(p).addr).collect();
    // The exporter's own buffer, which the dead holder names in every slot.
    let mine = r.pool().alloc().expect("exporter buffer");
    let forged = r.pool().base() + u64::from(mine.index()) * r.pool().stride() as u64;
    let slots = len - 256 * 16;
    for pos in head..tail {
        let word = slots + (pos as usize & 255) * 16;
        // SAFETY: an 8-byte aligned word of the mapped ring's slot array
        // (the chunk is page aligned, the slots 16-byte records).
        #[allow(clippy::cast_ptr_alignment)]
        unsafe {
            mem.as_ptr().add(word).cast::<u64>().write_volatile(forged);
        }
        assert_eq!(read(pos).addr, forged, "the slot word at {word}");
    }
    // The holder "dies" (its connection goes).
    drop((lend, att1));
    // A dropped attachment says Bye: its role is Vacant at once.
    wait_state(&r.role, |s| {
        matches!(s, RoleState::Gone { .. } | RoleState::Vacant)
    });
    let (att2, _dup2) = attach(&r.exporter);
    r.port().service();
    r.port().reclaim_as_exited();
    r.port().service();
    assert_eq!(r.port().stats().granted, 2);
    // The 54 left plus the 10 the first service topped up.
    assert_eq!(r.port().stats().resumed_in_rings, 64);
    let (succ_mem, succ_len) = ring_of(&att2, 0);
    // SAFETY: the lend ring in `att2`'s mapping; its only consumer now.
    let mut lend2 = unsafe { ShmConsumer::attach(succ_mem, succ_len) }.expect("consumer");
    let mut got = vec![Desc::default(); 256];
    let n = lend2.dequeue_burst(&mut got).expect("dequeue");
    assert!(n >= 54, "{n}");
    let addrs: Vec<u64> = got[..54].iter().map(|d| d.addr).collect();
    assert_eq!(addrs, kept, "the successor reads the kept entries");
    assert!(got[..n].iter().all(|d| d.addr != forged));
    drop((mine, att2));
}

/// N1: a corrupt return ring is counted once per detection (service, then
/// reclaim: not twice in the reclaim), and the port works after reclaim
/// laid it out again.
#[test]
// The ring memory is page aligned (a provider chunk): 8-byte words.
#[allow(clippy::cast_ptr_alignment)]
fn n1_corrupt_return_ring_counted_once_per_reclaim() {
    let mut r = rig();
    let (att1, _dup) = attach(&r.exporter);
    r.port().service();
    let (mem, len) = ring_of(&att1, 1);
    // SAFETY: the return ring, mapped while `att1` lives; its only producer.
    let mut ret = unsafe { ShmProducer::attach(mem, len) }.expect("producer");
    ret.enqueue_bulk(&[Desc { addr: 1, meta: 0 }; 3])
        .expect("enqueue");
    let header = len - 256 * 16;
    let words: Vec<usize> = (1..header / 8)
        // SAFETY: 8-byte aligned words of the mapped ring's header.
        .filter(|&i| unsafe { mem.as_ptr().cast::<u64>().add(i).read_volatile() } == 3)
        .collect();
    assert_eq!(words.len(), 1, "the tail word: {words:?}");
    // SAFETY: as above; the tail jumps past head + capacity.
    unsafe { mem.as_ptr().cast::<u64>().add(words[0]).write_volatile(300) };
    r.port().service();
    assert_eq!(r.port().stats().rejected.corrupt_ring, 1);
    drop((ret, att1));
    // A dropped attachment says Bye: its role is Vacant at once.
    wait_state(&r.role, |s| {
        matches!(s, RoleState::Gone { .. } | RoleState::Vacant)
    });
    let (att2, _dup2) = attach(&r.exporter);
    r.port().reclaim_as_exited();
    assert_eq!(
        r.port().stats().rejected.corrupt_ring,
        2,
        "reclaim's drain counts it once"
    );
    r.port().service();
    assert_eq!(r.port().stats().granted, 2);
    let peer = PeerPool::open(&att2, "pkts").expect("open gen 2");
    let b = peer.alloc().expect("loan");
    drop(b);
    peer.flush(true);
    r.port().service();
    assert!(
        r.port().stats().returned > 0,
        "the relaid return ring works"
    );
    drop(peer);
    r.pool().audit().expect("audit");
}

/// N3: a port whose down ring is not a ring (its header rewritten) is
/// refused with the ring error, not `Taken`; the pool can try again.
#[test]
// The ring memory is page aligned (a provider chunk): 8-byte words.
#[allow(clippy::cast_ptr_alignment)]
fn n3_corrupt_port_ring_is_a_ring_error() {
    let mut r = rig();
    let (att, _dup) = attach(&r.exporter);
    r.port().service();
    let peer = PeerPool::open(&att, "pkts").expect("open");
    let (mem, _) = ring_of(&att, 2);
    // SAFETY: the down ring's first (magic) word, mapped while `att` lives.
    let magic = unsafe { mem.as_ptr().cast::<u64>().read_volatile() };
    // SAFETY: as above.
    unsafe { mem.as_ptr().cast::<u64>().write_volatile(!magic) };
    let e = peer.port().unwrap_err();
    assert!(matches!(e, PeerPortError::Ring(_)), "{e}");
    assert_eq!(peer.stats().rejected.corrupt_ring, 1);
    // SAFETY: as above.
    unsafe { mem.as_ptr().cast::<u64>().write_volatile(magic) };
    assert!(peer.port().is_ok(), "not left taken");
    drop(peer);
}
