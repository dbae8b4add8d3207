//! `pktmem::shm` in one process: a peer attached over a socket pair at a
//! different address than the exporter's (`Placement::Relocate`, so every
//! address goes through translation), lending and returns, packets both
//! ways, the refusal of every forged descriptor class, a peer that dies
//! holding buffers and its restart, and the audit after each.
//!
//! Hostile peers here use only the public layers underneath
//! (`hugemem::share` to attach, `ring::shared` for raw ring ends, the
//! directory entry layout documented in `pktmem::shm`), as a separate
//! process would. Real processes killed with SIGKILL are `tests/shm_two_process.rs`.

use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

use pktmem::hugemem::share::{Attachment, Exporter, Placement, Role};
use pktmem::hugemem::Provider;
use pktmem::mbuf::PktPool;
use pktmem::ring::shared::{shm_ring_bytes, Desc, ShmConsumer, ShmProducer};
use pktmem::shm::{
    DataError, OpenError, PeerPool, Port, PortConfig, PortError, SharedBuf, SharedPool,
};

const N: usize = 512;
const ROOM: usize = 2048;
const LEND: u32 = 64;

struct Rig {
    // Field order is drop order: ports and pools before the exporter.
    port: Port,
    pool: SharedPool,
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
    let pool = SharedPool::builder(N, ROOM)
        .name("pkts")
        .build(&exporter)
        .expect("pool");
    let role = exporter.role("worker").expect("role");
    let port = pool
        .port(&role, PortConfig::default().lend(LEND).rings(256))
        .expect("port");
    Rig {
        port,
        pool,
        role,
        exporter,
        _provider: provider,
    }
}

fn attach(exporter: &Exporter, role: &str) -> Arc<Attachment> {
    let fd = exporter.connect_pair().expect("socket pair");
    let att = Attachment::builder(role)
        .placement(Placement::Relocate)
        .from_fd(fd)
        .expect("attach");
    assert!(!att.same_va(), "Relocate maps elsewhere");
    Arc::new(att)
}

/// Attaches as "worker", lets the exporter grant the generation, opens.
fn peer(r: &mut Rig) -> PeerPool {
    let att = attach(&r.exporter, "worker");
    r.port.service(); // grants this generation
    PeerPool::open_timeout(&att, "pkts", Duration::from_secs(5)).expect("open")
}

impl Rig {
    /// Closes the port (its peers, threads of this process, are gone for
    /// good, but their role never reaches `Exited`: hence `close_as_exited`)
    /// and checks every buffer came back; returns how many the close took
    /// back.
    fn finish(self) -> usize {
        let Rig { port, pool, .. } = self;
        let n = port.close_as_exited();
        let c = pool.counts();
        assert!(pool.is_full(), "not every buffer came back: {c:?}");
        pool.audit().expect("audit");
        n
    }
}

/// Every buffer is free, with the exporter, or lent (single-threaded: exact).
fn check_books(r: &Rig) {
    let c = r.pool.counts();
    assert_eq!(
        c.free + c.exporter_out + c.lent_total(),
        N,
        "books do not add up: {c:?}"
    );
    assert_eq!(c.lost, 0, "{c:?}");
    r.pool.audit().expect("audit");
}

/// A hostile (or just raw) peer: ends of the role's lend, return and up
/// rings made directly from the directory entry, no `PeerPool`.
struct RawPeer {
    _att: Arc<Attachment>,
    base: u64,
    stride: u64,
    lend: ShmConsumer,
    ret: ShmProducer,
    up: ShmProducer,
    /// The up ring's local memory, for a second (rogue) producer.
    up_mem: (NonNull<u8>, usize),
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

impl RawPeer {
    fn new(r: &mut Rig, role: &str) -> RawPeer {
        let att = attach(&r.exporter, role);
        r.port.service();
        let slot = u32::from(att.role_slot());
        let e = att
            .wait_for("shm/pool/pkts", Duration::from_secs(5), |b| {
                let n = u32_at(b, 32) as usize;
                (0..n).any(|i| {
                    let p = 40 + i * 72;
                    u32_at(b, p + 16) == slot && u64_at(b, p + 8) == att.generation()
                })
            })
            .expect("granted entry");
        // Layout: see `pktmem::shm` (pool header 40 B, port records 72 B).
        let (base, stride) = (u64_at(&e, 8), u64::from(u32_at(&e, 20)));
        let n = u32_at(&e, 32) as usize;
        let p = (0..n)
            .map(|i| 40 + i * 72)
            .find(|&p| u32_at(&e, p + 16) == slot)
            .unwrap();
        let len = u64_at(&e, p + 24) as usize;
        let ring = |i: usize| att.to_local(u64_at(&e, p + 32 + 8 * i), len).unwrap();
        // SAFETY: the rings are mapped while `att` lives (kept in the
        // struct, dropped last); one end of each kind here.
        unsafe {
            RawPeer {
                base,
                stride,
                lend: ShmConsumer::attach(ring(0), len).unwrap(),
                ret: ShmProducer::attach(ring(1), len).unwrap(),
                up: ShmProducer::attach(ring(3), len).unwrap(),
                up_mem: (ring(3), len),
                _att: att,
            }
        }
    }

    /// Overwrites the up ring's published tail (the 8-byte word in the
    /// ring's header that holds `tail`, found by value) with `to`: what a
    /// hostile peer can always do.
    // The ring memory is page aligned (a provider chunk): 8-byte words.
    #[allow(clippy::cast_ptr_alignment)]
    fn corrupt_up_tail(&self, tail: u64, head: u64, to: u64) {
        let (mem, len) = self.up_mem;
        let header = len - 256 * 16; // the rings of this rig hold 256
        assert!(header >= shm_ring_bytes(256) - 256 * 16);
        let words: Vec<usize> = (1..header / 8)
            .filter(|i| {
                // SAFETY: inside the ring's mapped header; a volatile read.
                let v = unsafe { mem.as_ptr().cast::<u64>().add(*i).read_volatile() };
                v == tail && v != head
            })
            .collect();
        assert_eq!(words.len(), 1, "the tail word is not unique: {words:?}");
        // SAFETY: as above, writing the peer's own index word.
        unsafe { mem.as_ptr().cast::<u64>().add(words[0]).write_volatile(to) };
    }

    fn borrow(&mut self, n: usize) -> Vec<u64> {
        let mut d = vec![Desc::default(); n];
        let got = self.lend.dequeue_burst(&mut d).unwrap();
        d[..got].iter().map(|d| d.addr).collect()
    }
}

fn meta(off: u64, len: u64) -> u64 {
    off | len << 16
}

#[test]
fn lend_and_return_counts_and_translation() {
    let mut r = rig();
    check_books(&r);
    assert_eq!(r.pool.counts().lent_total(), LEND as usize);
    assert_eq!(r.port.in_rings(), LEND as usize);
    let peer = peer(&mut r);
    assert_eq!(peer.count(), N as u32);
    assert_eq!(peer.data_room(), ROOM);

    let mut held: Vec<SharedBuf> = (0..10).map(|_| peer.alloc().expect("alloc")).collect();
    // One batch of the lend ring went to the peer's free list.
    assert_eq!(peer.held(), 32);
    assert_eq!(peer.stats().borrowed, 32);
    for b in &held {
        // The peer's pointer is its own mapping, not the exporter's VA.
        assert_ne!(b.as_ptr() as u64, b.exporter_addr());
        assert_eq!(
            peer.attachment().to_local(b.exporter_addr(), ROOM),
            NonNull::new(b.as_ptr())
        );
        assert_eq!(peer.attachment().iova(b.exporter_addr() + 128), b.iova());
    }
    let c = r.pool.counts();
    assert_eq!(c.lent, vec![("worker".to_owned(), LEND as usize)]);
    r.port.service(); // tops the lend ring up again
    assert_eq!(r.port.in_rings(), LEND as usize);
    assert_eq!(r.pool.counts().lent_total(), LEND as usize + 32);
    check_books(&r);

    held.clear();
    peer.flush(true);
    assert_eq!(peer.held(), 0);
    r.port.service();
    let s = r.port.stats();
    assert_eq!(s.returned, 32);
    assert_eq!(s.lent, u64::from(LEND) + 32);
    assert_eq!(s.rejected.total(), 0);
    assert_eq!(r.pool.counts().lent_total(), r.port.in_rings());
    check_books(&r);
    drop(peer);
    assert_eq!(r.finish(), LEND as usize);
}

#[test]
fn packets_both_ways_bytes_intact() {
    let mut r = rig();
    let peer = peer(&mut r);
    let mut port = peer.port().expect("peer port");
    assert!(matches!(
        peer.port(),
        Err(pktmem::shm::PeerPortError::Taken)
    ));

    // Exporter → peer: 100 packets of different lengths and patterns.
    let mut sent = 0u32;
    let mut inbox = Vec::new();
    let mut got = 0u32;
    while got < 100 {
        r.port.service();
        if sent < 100 {
            let mut b = r.pool.alloc().expect("exporter alloc");
            let len = 60 + (sent as usize * 13) % 1500;
            let bytes: Vec<u8> = (0..len).map(|i| (i as u32 * 7 + sent) as u8).collect();
            b.extend_from(&bytes).unwrap();
            b.set_flags(sent as u16);
            sent += r.port.send_burst(&mut vec![b]) as u32;
        }
        port.recv_burst(&mut inbox, 32);
        for b in inbox.drain(..) {
            let k = u32::from(b.flags());
            let len = 60 + (k as usize * 13) % 1500;
            assert_eq!(b.len(), len);
            assert_eq!(b.headroom(), 128);
            let want: Vec<u8> = (0..len).map(|i| (i as u32 * 7 + k) as u8).collect();
            assert_eq!(b.copy_to_vec(), want, "packet {k}");
            // Answer in the same buffer: rewrite, reshape, send up.
            let mut b = b;
            b.adj(10).unwrap();
            b.fill(k as u8 ^ 0x5a);
            b.prepend(4).unwrap();
            b.write(0, &k.to_le_bytes()).unwrap();
            let mut out = vec![b];
            assert_eq!(port.send_burst(&mut out), 1);
            got += 1;
        }
    }
    // Peer → exporter, in the buffers the exporter sent.
    let mut back = 0;
    let mut seen = [false; 100];
    while back < 100 {
        r.port.service();
        r.port.recv_burst(&mut inbox, 64);
        for b in inbox.drain(..) {
            let mut k = [0u8; 4];
            b.read(0, &mut k).unwrap();
            let k = u32::from_le_bytes(k);
            let len = 60 + (k as usize * 13) % 1500 - 10;
            assert_eq!(b.len(), len + 4);
            assert_eq!(b.headroom(), 128 + 10 - 4);
            let v = b.copy_to_vec();
            assert!(v[4..].iter().all(|&x| x == k as u8 ^ 0x5a), "payload {k}");
            assert!(!std::mem::replace(&mut seen[k as usize], true), "{k} twice");
            back += 1;
        }
    }
    let s = r.port.stats();
    assert_eq!((s.sent, s.received, s.rejected.total()), (100, 100, 0));
    assert_eq!(peer.stats().received, 100);
    assert_eq!(peer.stats().sent, 100);
    check_books(&r);
    drop(port);
    drop(peer); // a clean exit gives its cache back
    r.port.service();
    assert_eq!(r.pool.counts().lent_total(), r.port.in_rings());
    r.finish();
}

#[test]
fn forged_descriptors_refused_per_class_and_counted() {
    let mut r = rig();
    let mut p = RawPeer::new(&mut r, "worker");
    let lent = p.borrow(8);
    assert_eq!(lent.len(), 8);
    let (base, stride) = (p.base, p.stride);
    let end = base + N as u64 * stride;
    // A buffer the exporter holds (never lent): the pool's own.
    let own = r.pool.alloc().unwrap();
    let never_lent = own.exporter_addr();
    let forged = [
        Desc {
            addr: base - stride,
            meta: 0,
        }, // below the pool
        Desc { addr: end, meta: 0 }, // past it
        Desc {
            addr: lent[0] + 64,
            meta: 0,
        }, // inside a buffer
        Desc { addr: 0, meta: 0 },   // null
        Desc {
            addr: u64::MAX,
            meta: 0,
        }, // wraps
    ];
    p.up.enqueue_bulk(&forged).unwrap();
    p.up.enqueue_bulk(&[
        Desc {
            addr: never_lent,
            meta: meta(128, 10),
        }, // not lent
        Desc {
            addr: lent[1],
            meta: meta(128, ROOM as u64),
        }, // window past the room
        Desc {
            addr: lent[2],
            meta: meta(0, ROOM as u64),
        }, // whole room: fine
        Desc {
            addr: lent[2],
            meta: meta(0, 1),
        }, // sent twice
        Desc {
            addr: lent[3],
            meta: meta(ROOM as u64, 0),
        }, // empty at the end: fine
    ])
    .unwrap();
    let mut inbox = Vec::new();
    assert_eq!(r.port.recv_burst(&mut inbox, 64), 2);
    assert_eq!(inbox[0].exporter_addr(), lent[2]);
    assert_eq!((inbox[0].headroom(), inbox[0].len()), (0, ROOM));
    assert_eq!((inbox[1].headroom(), inbox[1].len()), (ROOM, 0));
    let rj = r.port.stats().rejected;
    assert_eq!(rj.out_of_pool, 5);
    assert_eq!(rj.not_lent, 2);
    assert_eq!(rj.bad_window, 1);
    assert_eq!((rj.other_role, rj.corrupt_ring), (0, 0));

    // Returns: twice, never lent, forged.
    p.ret
        .enqueue_bulk(&[
            Desc {
                addr: lent[4],
                meta: 0,
            },
            Desc {
                addr: lent[4],
                meta: 0,
            },
            Desc {
                addr: never_lent,
                meta: 0,
            },
            Desc {
                addr: base + 1,
                meta: 0,
            },
            Desc {
                addr: lent[2],
                meta: 0,
            }, // the exporter holds it now
        ])
        .unwrap();
    r.port.service();
    let s = r.port.stats();
    assert_eq!(s.returned, 1);
    assert_eq!(s.rejected.not_lent, 2 + 3);
    assert_eq!(s.rejected.out_of_pool, 6);
    drop(own);
    drop(inbox);
    // The buffers the bad window and the return brought back are free, the
    // refused ones did nothing: the books still add up.
    check_books(&r);
    // Still with the raw peer: lent[0], [5], [6], [7] ([1] came back with
    // the bad window, [2] and [3] as packets, [4] as a return).
    let c = r.pool.counts();
    assert_eq!(c.lent_total(), r.port.in_rings() + 4, "{c:?}");
    drop(p);
    r.finish();
}

#[test]
fn a_buffer_of_another_role_is_refused() {
    let mut r = rig();
    let other = r.exporter.role("other").unwrap();
    let mut other_port = r
        .pool
        .port(&other, PortConfig::default().lend(16).rings(64))
        .unwrap();
    assert!(matches!(
        r.pool.port(&r.role, PortConfig::default()),
        Err(PortError::RoleTaken { .. })
    ));
    let mut worker = RawPeer::new(&mut r, "worker");
    let att_o = attach(&r.exporter, "other");
    other_port.service();
    let o = PeerPool::open_timeout(&att_o, "pkts", Duration::from_secs(5)).unwrap();
    let ob = o.alloc().unwrap();
    // "worker" sends "other"'s buffer up, and returns it.
    let d = Desc {
        addr: ob.exporter_addr(),
        meta: meta(128, 4),
    };
    worker.up.enqueue_bulk(&[d]).unwrap();
    worker.ret.enqueue_bulk(&[d]).unwrap();
    let mut inbox = Vec::new();
    assert_eq!(r.port.recv_burst(&mut inbox, 8), 0);
    r.port.service();
    assert_eq!(r.port.stats().rejected.other_role, 2);
    // It is still "other"'s: its own port takes it.
    let mut op = o.port().unwrap();
    assert_eq!(op.send_burst(&mut vec![ob]), 1);
    assert_eq!(other_port.recv_burst(&mut inbox, 8), 1);
    assert_eq!(other_port.stats().rejected.total(), 0);
    let c = r.pool.counts();
    let names: Vec<&str> = c.lent.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["worker", "other"]);
    drop(inbox);
    drop((op, o));
    other_port.service();
    check_books(&r);
    assert_eq!(other_port.close_as_exited(), 16);
    drop(worker);
    r.finish();
}

#[test]
fn window_operations_are_bounded() {
    let r = rig();
    let mut b = r.pool.alloc().unwrap();
    assert_eq!(
        (b.headroom(), b.len(), b.tailroom(), b.data_room()),
        (128, 0, ROOM - 128, ROOM)
    );
    assert_eq!(
        b.prepend(129),
        Err(DataError::NoHeadroom {
            len: 129,
            headroom: 128
        })
    );
    assert_eq!(
        b.append(ROOM - 127),
        Err(DataError::NoTailroom {
            len: ROOM - 127,
            tailroom: ROOM - 128
        })
    );
    assert_eq!(
        b.adj(1),
        Err(DataError::TooShort {
            len: 1,
            data_len: 0
        })
    );
    b.extend_from(b"abcdef").unwrap();
    assert_eq!(
        b.write(4, b"xyz"),
        Err(DataError::OutsideData {
            offset: 4,
            len: 3,
            data_len: 6
        })
    );
    let mut out = [0u8; 2];
    assert_eq!(
        b.read(usize::MAX, &mut out),
        Err(DataError::OutsideData {
            offset: usize::MAX,
            len: 2,
            data_len: 6
        })
    );
    b.read(4, &mut out).unwrap();
    assert_eq!(&out, b"ef");
    b.trim(2).unwrap();
    b.adj(1).unwrap();
    assert_eq!(b.copy_to_vec(), b"bcd");
    assert_eq!(
        b.prepend(130),
        Err(DataError::NoHeadroom {
            len: 130,
            headroom: 129
        })
    );
    b.prepend(1).unwrap();
    assert_eq!(b.copy_to_vec(), b"abcd");
    b.set_len(ROOM - 128).unwrap();
    assert!(b.set_len(ROOM - 127).is_err());
    assert_eq!(b.tailroom(), 0);
    b.reset();
    assert_eq!((b.headroom(), b.len()), (128, 0));
    drop(b);
    r.finish();
}

#[test]
fn copies_to_and_from_mbufs() {
    let r = rig();
    let mp = PktPool::builder(15)
        .data_room(2048 + 128)
        .build_anonymous()
        .unwrap();
    let mut cache = mp.cache();
    let mut m = mp.alloc(&mut cache).unwrap();
    m.append(700)
        .unwrap()
        .iter_mut()
        .enumerate()
        .for_each(|(i, x)| *x = i as u8);
    let mut tail = mp.alloc(&mut cache).unwrap();
    tail.append(300).unwrap().fill(0xee);
    m.chain(tail).unwrap();
    let mut b = r.pool.alloc().unwrap();
    b.write_from(&m).unwrap();
    assert_eq!(b.len(), 1000);
    let v = b.copy_to_vec();
    assert!(v[..700].iter().enumerate().all(|(i, &x)| x == i as u8));
    assert!(v[700..].iter().all(|&x| x == 0xee));
    let back = b.copy_to_mbuf(&mp, &mut cache).unwrap();
    assert_eq!(back.data(), &v[..]);
    let mut big = mp.alloc(&mut cache).unwrap();
    big.append(2048).unwrap();
    assert!(matches!(
        b.write_from(&big),
        Err(pktmem::shm::CopyError::TooLong {
            len: 2048,
            room: 1920
        })
    ));
    assert_eq!(b.len(), 1000, "unchanged on error");
    drop((m, back, big, b, cache));
    r.finish();
}

#[test]
fn open_waits_for_the_grant_and_times_out_typed() {
    let r = rig();
    let att = attach(&r.exporter, "worker");
    // Nobody services the port: generation 1 is never granted.
    match PeerPool::open_timeout(&att, "pkts", Duration::from_millis(100)) {
        Err(OpenError::Timeout {
            want: 1,
            granted: 0,
            ..
        }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    match PeerPool::open_timeout(&att, "nope", Duration::from_millis(50)) {
        Err(OpenError::NotPublished { entry }) => assert_eq!(entry, "shm/pool/nope"),
        other => panic!("expected not published, got {other:?}"),
    }
    drop(att);
    r.finish();
}

/// A peer that "dies" holding buffers everywhere — cache, hands, a
/// half-read down ring, packets sent up and not yet received — and a
/// restarted peer that resumes the rings. In one process the role cannot
/// reach `Exited`, and a same-process re-attach is no proof the old
/// objects are gone (review B1): the exporter waits, and the test, which
/// dropped them, says so with `reclaim_as_exited` (a real exit needs
/// nothing: `tests/shm_two_process.rs`).
#[test]
fn dead_peer_reclaimed_exactly_and_restart_resumes() {
    let mut r = rig();
    let peer1 = peer(&mut r);
    let mut port1 = peer1.port().unwrap();
    // Down: 6 packets, the peer reads 2.
    let mut down = Vec::new();
    r.pool.alloc_burst(&mut down, 6);
    for (i, b) in down.iter_mut().enumerate() {
        b.extend_from(&[i as u8; 8]).unwrap();
    }
    assert_eq!(r.port.send_burst(&mut down), 6);
    let mut got = Vec::new();
    assert_eq!(port1.recv_burst(&mut got, 2), 2);
    // Hands: 5 allocated; up: 3 sent, not yet received by the exporter.
    let hands: Vec<SharedBuf> = (0..5).map(|_| peer1.alloc().unwrap()).collect();
    let mut up: Vec<SharedBuf> = (0..3)
        .map(|i| {
            let mut b = peer1.alloc().unwrap();
            b.extend_from(&[0xa0 + i; 4]).unwrap();
            b
        })
        .collect();
    assert_eq!(port1.send_burst(&mut up), 3);
    r.port.service();
    let before = r.pool.counts();
    let stock = r.port.in_rings(); // lend stock + 4 unread down packets
    let lent_before = before.lent_total();
    // Lent = ring stock + what the peer has (cache + hands + 2 read) + 3 in up.
    assert_eq!(lent_before, stock + peer1.held() + 3);
    // Crash: nothing given back, everything dropped.
    peer1.abandon();
    drop((hands, got, port1, peer1));
    check_books(&r);
    assert_eq!(
        r.pool.counts().lent_total(),
        lent_before,
        "a dead peer gives nothing back"
    );

    // The restart: generation 2; service reclaims, then grants.
    let att2 = attach(&r.exporter, "worker");
    assert_eq!(att2.generation(), 2);
    r.port.service();
    let s = r.port.stats();
    assert_eq!((s.reclaims, s.granted), (0, 1), "same process: no reclaim");
    r.port.reclaim_as_exited();
    r.port.service();
    let s = r.port.stats();
    assert_eq!(s.reclaims, 1);
    assert_eq!(s.granted, 2);
    assert_eq!(s.reclaimed as usize, lent_before - stock - 3);
    assert_eq!(s.resumed_in_rings as usize, stock + 3);
    check_books(&r);
    // A second service reclaims nothing more (exactly once).
    r.port.service();
    assert_eq!(r.port.stats().reclaimed, s.reclaimed);

    let peer2 = PeerPool::open_timeout(&att2, "pkts", Duration::from_secs(5)).unwrap();
    let mut port2 = peer2.port().unwrap();
    // The 4 unread down packets are the new peer's, in order.
    let mut got = Vec::new();
    assert_eq!(port2.recv_burst(&mut got, 16), 4);
    let firsts: Vec<u8> = got.iter().map(|b| b.copy_to_vec()[0]).collect();
    assert_eq!(firsts, [2, 3, 4, 5]);
    // The 3 packets the dead peer sent up are received.
    let mut inbox = Vec::new();
    assert_eq!(r.port.recv_burst(&mut inbox, 16), 3);
    let ups: Vec<u8> = inbox.iter().map(|b| b.copy_to_vec()[0]).collect();
    assert_eq!(ups, [0xa0, 0xa1, 0xa2]);
    assert_eq!(r.port.stats().rejected.total(), 0);
    drop((got, inbox, port2, peer2));
    r.port.service();
    check_books(&r);
    assert_eq!(r.pool.counts().lent_total(), r.port.in_rings());
    drop(att2);
    r.finish();
}

// The handles' thread bounds, checked at compile time.
const _: () = {
    const fn send<T: Send>() {}
    const fn sync<T: Sync>() {}
    send::<SharedPool>();
    sync::<SharedPool>();
    send::<Port>();
    send::<SharedBuf>();
    sync::<SharedBuf>();
    send::<PeerPool>();
    sync::<PeerPool>();
    send::<pktmem::shm::PeerPort>();
};

/// Buffers cross threads for real: a peer buffer written here is read and
/// rewritten on another thread, sent up from there, and received here
/// with the other thread's bytes; an exporter buffer dropped on another
/// thread goes back to the free list.
#[test]
fn handles_cross_threads() {
    let mut r = rig();
    let p = peer(&mut r);
    let mut b = p.alloc().unwrap();
    b.extend_from(b"from main").unwrap();
    let pool = p.clone();
    let (b, sent) = std::thread::spawn(move || {
        assert_eq!(b.copy_to_vec(), b"from main");
        let mut b = b;
        b.write(0, b"FROM").unwrap();
        let mut port = pool.port().unwrap();
        let mut up = vec![pool.alloc().unwrap()];
        up[0].extend_from(b"thread").unwrap();
        let sent = port.send_burst(&mut up);
        (b, sent)
    })
    .join()
    .unwrap();
    assert_eq!(sent, 1);
    assert_eq!(b.copy_to_vec(), b"FROM main");
    let mut inbox = Vec::new();
    assert_eq!(r.port.recv_burst(&mut inbox, 4), 1);
    assert_eq!(inbox[0].copy_to_vec(), b"thread");
    let free = r.pool.counts().free;
    let e = inbox.pop().unwrap();
    std::thread::spawn(move || drop(e)).join().unwrap();
    assert_eq!(r.pool.counts().free, free + 1, "dropped on another thread");
    drop((b, p));
    r.port.service();
    check_books(&r);
    r.finish();
}

/// A peer that scribbles on its up ring's tail: the exporter counts a
/// corrupt ring, stops using the port's rings, and after the role's next
/// generation attaches, reclaims everything (the corrupt ring laid out
/// afresh) and carries on.
#[test]
fn corrupt_ring_counted_then_relaid_at_reclaim() {
    let mut r = rig();
    let mut p = RawPeer::new(&mut r, "worker");
    let lent = p.borrow(5);
    let descs: Vec<Desc> = lent
        .iter()
        .map(|&addr| Desc {
            addr,
            meta: meta(0, 8),
        })
        .collect();
    p.up.enqueue_bulk(&descs).unwrap();
    let mut inbox = Vec::new();
    assert_eq!(r.port.recv_burst(&mut inbox, 2), 2);
    // Tail 5, head 2: the tail jumps past head + capacity.
    p.corrupt_up_tail(5, 2, 2 + 256 + 1);
    assert_eq!(r.port.recv_burst(&mut inbox, 8), 0);
    assert_eq!(r.port.stats().rejected.corrupt_ring, 1);
    let mut more = vec![r.pool.alloc().unwrap()];
    assert_eq!(
        r.port.send_burst(&mut more),
        0,
        "a broken port sends nothing"
    );
    drop((more, inbox));
    check_books(&r);

    // The next generation: reclaim (the up ring laid out afresh), grant.
    drop(p);
    let att = attach(&r.exporter, "worker");
    r.port.service();
    assert_eq!(r.port.stats().reclaims, 0, "same process: no reclaim");
    r.port.reclaim_as_exited();
    r.port.service();
    let s = r.port.stats();
    assert_eq!((s.reclaims, s.granted), (1, 2));
    assert_eq!(s.rejected.corrupt_ring, 2, "counted again at reclaim");
    check_books(&r);
    let peer = PeerPool::open_timeout(&att, "pkts", Duration::from_secs(5)).unwrap();
    let mut port = peer.port().unwrap();
    let mut b = peer.alloc().unwrap();
    b.extend_from(b"after").unwrap();
    assert_eq!(port.send_burst(&mut vec![b]), 1);
    let mut inbox = Vec::new();
    assert_eq!(r.port.recv_burst(&mut inbox, 8), 1);
    assert_eq!(inbox[0].copy_to_vec(), b"after");
    assert_eq!(r.port.send_burst(&mut inbox), 1);
    let mut got = Vec::new();
    assert_eq!(port.recv_burst(&mut got, 8), 1);
    drop((got, port, peer, att));
    r.port.service();
    check_books(&r);
    r.finish();
}

/// A pool entry as the documented layout has it (40-byte header, then
/// 72-byte port records).
fn fake_entry(
    version: u32,
    base: u64,
    stride: u32,
    record: Option<(u32, u64, [u64; 4])>,
) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0x504d_4853u32.to_le_bytes());
    v.extend_from_slice(&version.to_le_bytes());
    v.extend_from_slice(&base.to_le_bytes());
    for x in [64u32, stride, 2048, 128, u32::from(record.is_some()), 0] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    if let Some((slot, granted, rings)) = record {
        v.extend_from_slice(&0x5450_4853u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        v.extend_from_slice(&granted.to_le_bytes());
        v.extend_from_slice(&slot.to_le_bytes());
        v.extend_from_slice(&256u32.to_le_bytes());
        v.extend_from_slice(&(shm_ring_bytes(256) as u64).to_le_bytes());
        for r in rings {
            v.extend_from_slice(&r.to_le_bytes());
        }
        v.extend_from_slice(&[0; 8]);
    }
    v
}

/// A peer distrusts the exporter's entry too: each bad field is a typed
/// error, and memory the entry names must be mapped here.
#[test]
fn peer_refuses_bad_entries() {
    let r = rig();
    let att = attach(&r.exporter, "worker");
    let (slot, generation) = (u32::from(att.role_slot()), att.generation());
    let t = Duration::from_millis(30);
    let base = r.pool.base();
    let open = |name: &str, payload: &[u8]| {
        let _p = r
            .exporter
            .publish(&format!("shm/pool/{name}"), payload)
            .unwrap();
        PeerPool::open_timeout(&att, name, t).unwrap_err()
    };
    let e = open("short", &[1, 2, 3]);
    assert!(
        matches!(
            e,
            OpenError::BadEntry {
                field: "length",
                value: 3,
                ..
            }
        ),
        "{e}"
    );
    let mut magic = fake_entry(1, base, 2048, None);
    magic[0] ^= 0xff;
    let e = open("magic", &magic);
    assert!(
        matches!(e, OpenError::BadEntry { field: "magic", .. }),
        "{e}"
    );
    let e = open("version", &fake_entry(2, base, 2048, None));
    assert!(
        matches!(
            e,
            OpenError::Version {
                theirs: 2,
                ours: 1,
                ..
            }
        ),
        "{e}"
    );
    let e = open("stride", &fake_entry(1, base, 96, None));
    assert!(
        matches!(
            e,
            OpenError::BadEntry {
                field: "stride",
                value: 96,
                ..
            }
        ),
        "{e}"
    );
    // Well formed, granted, but the buffers are nowhere near the exported
    // memory: refused before anything is touched.
    let far = 0x7e00_0000_0000u64;
    let e = open(
        "far",
        &fake_entry(1, far, 2048, Some((slot, generation, [far; 4]))),
    );
    assert!(
        matches!(e, OpenError::NotMapped { what: "pool buffers", va, .. } if va == far),
        "{e}"
    );
    // Buffers real, rings not.
    let e = open(
        "rings",
        &fake_entry(1, base, 2048, Some((slot, generation, [far; 4]))),
    );
    assert!(
        matches!(e, OpenError::NotMapped { what: "port ring", va, .. } if va == far),
        "{e}"
    );
    drop(att);
    r.finish();
}

/// A burst stops at the first buffer that is not this side's of this pool:
/// it stays in the caller's Vec, untouched.
#[test]
fn foreign_buffers_stay_with_the_caller() {
    let mut r = rig();
    let peer = peer(&mut r);
    let mut pport = peer.port().unwrap();
    let other = SharedPool::builder(8, 256)
        .name("other")
        .build(&r.exporter)
        .unwrap();
    let mut mixed = vec![
        r.pool.alloc().unwrap(),
        other.alloc().unwrap(),
        r.pool.alloc().unwrap(),
    ];
    assert_eq!(r.port.send_burst(&mut mixed), 1);
    assert_eq!(mixed.len(), 2);
    assert_eq!(
        mixed[0].data_room(),
        256,
        "the other pool's buffer stopped the burst"
    );
    // An exporter-side buffer cannot be sent by the peer, nor the reverse.
    let mut theirs = vec![mixed.pop().unwrap()];
    assert_eq!(pport.send_burst(&mut theirs), 0);
    let mut mine = vec![peer.alloc().unwrap()];
    assert_eq!(r.port.send_burst(&mut mine), 0);
    assert_eq!((theirs.len(), mine.len()), (1, 1));
    assert_eq!(r.port.stats().rejected.total(), 0);
    let mut got = Vec::new();
    assert_eq!(pport.recv_burst(&mut got, 8), 1);
    drop((got, theirs, mine, mixed, pport, peer));
    assert!(other.is_full());
    r.port.service();
    check_books(&r);
    r.finish();
}

#[test]
fn port_config_refused_with_the_numbers() {
    let r = rig();
    let role = r.exporter.role("cfg").unwrap();
    let e = r
        .pool
        .port(&role, PortConfig::default().rings(1000))
        .unwrap_err();
    assert!(
        matches!(e, PortError::RingCapacity { capacity: 1000 }),
        "{e}"
    );
    let e = r
        .pool
        .port(&role, PortConfig::default().lend(300).rings(256))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "port lend target 300: must be 1..=256 (ring capacity 256, pool of 512)"
    );
    let e = r
        .pool
        .port(&role, PortConfig::default().lend(0))
        .unwrap_err();
    assert!(matches!(e, PortError::LendTarget { lend: 0, .. }), "{e}");
    // Nothing half-built: the role can still get its port, nothing was lent.
    assert_eq!(r.pool.counts().lent.len(), 1);
    let p = r
        .pool
        .port(&role, PortConfig::default().lend(8).rings(16))
        .unwrap();
    assert_eq!(p.close(), 8);
    r.finish();
}
