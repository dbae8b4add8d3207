//! External buffers: the owner dropped / the free callback run exactly once
//! when the last reference goes (on whichever thread), clones share the
//! shared info, the shared info at the buffer's tail
//! (`test_pktmbuf_ext_shinfo_init_helper`), writability follows the shared
//! count, and the typed errors for buffers that are empty, too long or too
//! small for their tail shared info.

mod common;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{anon, assert_consistent, assert_full, leaked, mbuf_with, snapshot};
use pktmem_hugemem::Iova;
use pktmem_mbuf::{DataError, ExtBuf, ExtBufError, MbufError, EXT_BUF_MAX};

/// An owner whose drops are counted (and whose bytes are checked on drop).
struct Owned {
    bytes: Vec<u8>,
    drops: Arc<AtomicUsize>,
    dropped_on: Arc<std::sync::Mutex<Option<std::thread::ThreadId>>>,
}

impl AsMut<[u8]> for Owned {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        *self.dropped_on.lock().unwrap() = Some(std::thread::current().id());
        // Relaxed: read after the threads are joined (or on this thread).
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

fn owned(
    len: usize,
) -> (
    Owned,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Option<std::thread::ThreadId>>>,
) {
    let drops = Arc::new(AtomicUsize::new(0));
    let on = Arc::new(std::sync::Mutex::new(None));
    let o = Owned {
        bytes: (0..len).map(|i| i as u8).collect(),
        drops: Arc::clone(&drops),
        dropped_on: Arc::clone(&on),
    };
    (o, drops, on)
}

/// The owner goes exactly once, with the last of: the handle, the mbuf it
/// is attached to, that mbuf's clones.
#[test]
fn owner_dropped_once_with_the_last_reference() {
    let pool = anon(16);
    let (o, drops, _) = owned(300);
    let ext = ExtBuf::from_owner(o, Some(Iova(0x10_0000))).unwrap();
    assert_eq!(
        (ext.len(), ext.refcnt(), ext.iova()),
        (300, 1, Some(Iova(0x10_0000)))
    );
    let mut m = pool.alloc_default().unwrap();
    m.attach_extbuf(ext.clone()).unwrap();
    assert!(m.is_external() && !m.is_direct());
    assert_eq!(
        (m.buf_len(), m.headroom(), m.data_len(), m.pkt_len()),
        (300, 0, 0, 0)
    );
    assert_eq!(m.buf_addr(), ext.addr());
    assert_eq!(m.buf_iova(), Some(Iova(0x10_0000)));
    m.grow_tail(300).unwrap();
    assert_eq!(m.data()[..4], [0, 1, 2, 3]);
    m.adj(10).unwrap();
    assert_eq!(m.data_iova(), Some(Iova(0x10_0000 + 10)));
    assert_eq!(m.ext_refcnt(), Some(2));
    // Shared with the handle: not writable.
    assert!(m.data_mut().is_none());
    let c1 = m.clone_in(&pool).unwrap();
    let c2 = c1.clone_in(&pool).unwrap();
    assert!(
        c1.is_external() && c2.is_external(),
        "clones share the info"
    );
    assert_eq!(ext.refcnt(), 4);
    assert_eq!(c2.data(), m.data());
    assert_eq!(
        m.refcnt(),
        1,
        "the mbuf's own refcount is not the shared one"
    );
    drop(ext);
    drop(m);
    drop(c1);
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    assert_eq!(c2.ext_refcnt(), Some(1));
    assert_eq!(c2.data()[0], 10);
    drop(c2);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert_full(&[&pool]);
}

/// `pool.attach_owned`: the owner's bytes are the data; writable while the
/// mbuf is the only reference; clones share the owner.
#[test]
fn attach_owned_shares_and_writes() {
    let pool = anon(8);
    let (o, drops, _) = owned(64);
    let mut m = pool.attach_owned(o, None).unwrap();
    assert_eq!((m.pkt_len(), m.data_len(), m.buf_len()), (64, 64, 64));
    assert_eq!(m.buf_iova(), None);
    assert_eq!(m.data_iova(), None);
    m.data_mut().unwrap()[0] = 0xee;
    m.trim(4).unwrap();
    assert_eq!(
        m.append(5),
        Err(DataError::NoTailroom {
            len: 5,
            tailroom: 4
        })
    );
    m.append(4).unwrap().fill(0xaa);
    let c = m.clone_in(&pool).unwrap();
    assert_eq!(m.append(0), Err(DataError::NotWritable));
    assert!(m.data_mut().is_none());
    assert_eq!(c.data()[0], 0xee);
    assert_eq!(c.data()[60..], [0xaa; 4]);
    drop(c);
    assert!(m.data_mut().is_some());
    // `extbuf()` gives another reference.
    let e = m.extbuf().unwrap();
    assert_eq!(e.refcnt(), 2);
    assert!(m.data_mut().is_none());
    drop(m);
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    drop(e);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert!(
        mbuf_with(&pool, b"x").extbuf().is_none(),
        "a direct mbuf has none"
    );
    assert_full(&[&pool]);
}

/// Detach gives back the reference and restores the mbuf's own buffer;
/// the last detach runs the release.
#[test]
fn detach_releases_the_reference() {
    let pool = anon(8);
    let (o, drops, _) = owned(100);
    let ext = ExtBuf::from_owner(o, None).unwrap();
    let mut a = pool.alloc_default().unwrap();
    let own = a.buf_addr();
    a.attach_extbuf(ext.clone()).unwrap();
    let mut b = pool.alloc_default().unwrap();
    b.attach(&a).unwrap();
    assert!(
        b.is_external(),
        "attaching to an external mbuf shares its buffer"
    );
    assert_eq!(ext.refcnt(), 3);
    drop(ext);
    a.detach();
    assert!(a.is_direct());
    assert_eq!(a.buf_addr(), own);
    assert_eq!(
        (a.buf_len(), a.headroom(), a.data_len()),
        (pool.data_room(), 128, 0)
    );
    assert_consistent(&a);
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    b.detach();
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    drop((a, b));
    assert_full(&[&pool]);
}

/// The reference's shared-info-at-the-tail helper: the info sits at the
/// end of the buffer, the usable length shrinks to before it, writing all
/// of the usable bytes does not disturb it, and the callback runs exactly
/// once, after the last of the mbufs sharing it detaches.
#[test]
fn tail_shared_info() {
    const LEN: usize = 1024;
    let pool = anon(8);
    let freed = Arc::new(AtomicUsize::new(0));
    let total = LEN + ExtBuf::tail_shinfo_size::<Box<dyn FnOnce(NonNull<u8>) + Send>>() + 64;
    let addr = leaked(total);
    let f = Arc::clone(&freed);
    let addr_bits = addr.as_ptr() as usize;
    // SAFETY: leaked memory only this buffer uses; the callback only
    // counts (the memory stays leaked).
    let ext = unsafe {
        ExtBuf::from_raw_tail_shinfo(addr, total, None, move |p| {
            assert_eq!(p.as_ptr() as usize, addr_bits);
            f.fetch_add(1, Ordering::Relaxed);
        })
    }
    .unwrap();
    let usable = ext.len();
    assert!(
        usable >= LEN && usable < total,
        "usable {usable} of {total}"
    );
    assert_eq!(ext.addr(), addr);
    assert_eq!(ext.refcnt(), 1);
    let mut m = pool.alloc_default().unwrap();
    m.attach_extbuf(ext).unwrap();
    assert_eq!(m.buf_len(), usable);
    m.append(usable).unwrap().fill(0xff);
    assert_eq!(m.tailroom(), 0);
    let mut clone = pool.alloc_default().unwrap();
    clone.attach(&m).unwrap();
    assert_eq!(m.ext_refcnt(), Some(2));
    let e3 = m.extbuf().unwrap();
    assert_eq!(e3.refcnt(), 3);
    drop(e3);
    assert_eq!(freed.load(Ordering::Relaxed), 0);
    m.detach();
    assert_eq!(clone.ext_refcnt(), Some(1));
    assert_eq!(freed.load(Ordering::Relaxed), 0);
    assert!(clone.data().iter().all(|&b| b == 0xff));
    clone.detach();
    assert_eq!(freed.load(Ordering::Relaxed), 1);
    drop((m, clone));
    assert_eq!(freed.load(Ordering::Relaxed), 1);
    assert_full(&[&pool]);
}

/// A raw buffer with its shared info on the heap: the callback runs once,
/// with the buffer's address.
#[test]
fn raw_buffer_callback_once() {
    let pool = anon(4);
    let calls = Arc::new(AtomicUsize::new(0));
    let buf: &'static mut [u8] = Box::leak(vec![7u8; 512].into_boxed_slice());
    let addr = NonNull::new(buf.as_mut_ptr()).unwrap();
    let c = Arc::clone(&calls);
    // SAFETY: the leaked slice is used only through this buffer; the
    // callback frees it (rebuilding the box of 512 bytes) once.
    let ext = unsafe {
        ExtBuf::from_raw(addr, 512, None, move |p| {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                p.as_ptr(),
                512,
            )));
            c.fetch_add(1, Ordering::Relaxed);
        })
    }
    .unwrap();
    let mut m = pool.alloc_default().unwrap();
    m.attach_extbuf(ext).unwrap();
    m.grow_tail(512).unwrap();
    assert!(m.data().iter().all(|&b| b == 7));
    let cl = m.clone_in(&pool).unwrap();
    drop(m);
    assert_eq!(calls.load(Ordering::Relaxed), 0);
    drop(cl);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
    assert_full(&[&pool]);
}

/// Bad external buffers: empty, longer than 16 bits, too small for the
/// tail shared info: typed errors with the numbers; the owner dropped (not
/// leaked), the callback never run.
#[test]
fn bad_external_buffers_are_typed_errors() {
    let (o, drops, _) = owned(0);
    assert_eq!(ExtBuf::from_owner(o, None).unwrap_err(), ExtBufError::Empty);
    assert_eq!(
        drops.load(Ordering::Relaxed),
        1,
        "the refused owner is dropped"
    );
    let (o, drops, _) = owned(EXT_BUF_MAX + 1);
    let e = ExtBuf::from_owner(o, None).unwrap_err();
    assert_eq!(
        e,
        ExtBufError::TooLong {
            len: 65_536,
            max: 65_535
        }
    );
    assert!(
        e.to_string().contains("65536") && e.to_string().contains("65535"),
        "{e}"
    );
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    let (o, _, _) = owned(EXT_BUF_MAX);
    assert_eq!(ExtBuf::from_owner(o, None).unwrap().len(), EXT_BUF_MAX);
    let umbrella: MbufError = ExtBufError::Empty.into();
    assert!(matches!(umbrella, MbufError::ExtBuf(ExtBufError::Empty)));
    let pool = anon(2);
    let (o, _, _) = owned(0);
    assert!(matches!(
        pool.attach_owned(o, None),
        Err(MbufError::ExtBuf(ExtBufError::Empty))
    ));
    assert_full(&[&pool]);

    let calls = Arc::new(AtomicUsize::new(0));
    let mem = leaked(1 << 17);
    let cb = || {
        let c = Arc::clone(&calls);
        move |_: NonNull<u8>| {
            c.fetch_add(1, Ordering::Relaxed);
        }
    };
    // SAFETY: leaked memory nobody else uses; refused buffers (all three
    // calls) are not touched.
    unsafe {
        assert_eq!(
            ExtBuf::from_raw(mem, 0, None, cb()).unwrap_err(),
            ExtBufError::Empty
        );
        assert_eq!(
            ExtBuf::from_raw(mem, 70_000, None, cb()).unwrap_err(),
            ExtBufError::TooLong {
                len: 70_000,
                max: 65_535
            }
        );
        assert_eq!(
            ExtBuf::from_raw_tail_shinfo(mem, 0, None, cb()).unwrap_err(),
            ExtBufError::Empty
        );
    }
    // Too small for the tail info: every length up to what it needs (plus
    // alignment) is refused, with the numbers.
    let need = {
        // SAFETY: as above.
        let e = unsafe { ExtBuf::from_raw_tail_shinfo(mem, 8, None, cb()) }.unwrap_err();
        match e {
            ExtBufError::TooSmall { len: 8, needed } => needed,
            other => panic!("{other:?}"),
        }
    };
    assert!(need > 8);
    for len in 1..=need {
        // SAFETY: as above.
        let r = unsafe { ExtBuf::from_raw_tail_shinfo(mem, len, None, cb()) };
        assert_eq!(
            r.unwrap_err(),
            ExtBufError::TooSmall { len, needed: need },
            "len {len}"
        );
    }
    // SAFETY: as above; this one succeeds and is dropped (the callback only
    // counts).
    let ok = unsafe { ExtBuf::from_raw_tail_shinfo(mem, need + 1, None, cb()) }.unwrap();
    assert!(!ok.is_empty());
    drop(ok);
    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "only the accepted buffer's callback ran"
    );
    // Usable lengths past 16 bits are refused too.
    // SAFETY: as above.
    let r = unsafe { ExtBuf::from_raw_tail_shinfo(mem, 1 << 17, None, cb()) };
    assert!(
        matches!(r, Err(ExtBufError::TooLong { max: 65_535, .. })),
        "{r:?}"
    );
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

/// Attaching to an mbuf that is already attached or not writable gives the
/// reference back (the owner lives on) and changes nothing.
#[test]
fn refused_attach_gives_the_reference_back() {
    let pool = anon(4);
    let (o, drops, _) = owned(16);
    let ext = ExtBuf::from_owner(o, None).unwrap();
    let mut m = mbuf_with(&pool, b"own");
    let c = m.clone_in(&pool).unwrap();
    let before = snapshot(&m);
    let e = m.attach_extbuf(ext).unwrap_err();
    assert_eq!(e.kind, pktmem_mbuf::AttachErrorKind::NotWritable);
    assert_eq!(snapshot(&m), before);
    let ext = e.ext;
    assert_eq!(ext.refcnt(), 1);
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    drop(c);
    m.attach_extbuf(ext).unwrap();
    drop(m);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert_full(&[&pool]);
}

/// External buffers freed from other threads: many buffers, each attached
/// to an mbuf and cloned; the mbufs and clones are dropped on two worker
/// threads in any order: every owner and callback runs exactly once, on a
/// worker; both pools full after.
#[test]
fn freed_from_another_thread_exactly_once() {
    const N: usize = 200;
    const K: usize = 3;
    let pool = anon(N);
    let clones = anon(N * K);
    let released = Arc::new(AtomicUsize::new(0));
    let drops: Vec<Arc<AtomicUsize>> = (0..N).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let callbacks: Vec<Arc<AtomicUsize>> = (0..N).map(|_| Arc::new(AtomicUsize::new(0))).collect();
    let (tx0, rx0) = pktmem_ring::Ring::<pktmem_mbuf::Mbuf>::new(N * (K + 1))
        .unwrap()
        .split();
    let (tx1, rx1) = pktmem_ring::Ring::<pktmem_mbuf::Mbuf>::new(N * (K + 1))
        .unwrap()
        .split();
    let main = std::thread::current().id();
    let mut ons = Vec::new();
    for i in 0..N {
        let ext = if i % 2 == 0 {
            let (mut o, d, on) = owned(64);
            o.drops = Arc::clone(&drops[i]);
            drop(d);
            ons.push(on);
            ExtBuf::from_owner(o, None).unwrap()
        } else {
            let buf: &'static mut [u8] = Box::leak(vec![i as u8; 64].into_boxed_slice());
            let addr = NonNull::new(buf.as_mut_ptr()).unwrap();
            let c = Arc::clone(&callbacks[i]);
            let r = Arc::clone(&released);
            // SAFETY: the leaked slice is only used through this buffer;
            // the callback frees it once.
            unsafe {
                ExtBuf::from_raw(addr, 64, None, move |p| {
                    assert_ne!(std::thread::current().id(), main, "released on a worker");
                    drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                        p.as_ptr(),
                        64,
                    )));
                    c.fetch_add(1, Ordering::Relaxed);
                    r.fetch_add(1, Ordering::Relaxed);
                })
            }
            .unwrap()
        };
        let mut m = pool.alloc_default().unwrap();
        m.attach_extbuf(ext).unwrap();
        m.grow_tail(64).unwrap();
        let mut refs = vec![m];
        for _ in 0..K {
            let c = refs[0].clone_in(&clones).unwrap();
            refs.push(c);
        }
        // Spread the references of one buffer over both workers.
        for (j, r) in refs.into_iter().enumerate() {
            let tx = if (i + j) % 2 == 0 { &tx0 } else { &tx1 };
            tx.enqueue(r).unwrap();
        }
    }
    pool.mempool().flush_default_cache();
    clones.mempool().flush_default_cache();
    let worker = |rx: pktmem_ring::Consumer<pktmem_mbuf::Mbuf>,
                  pool: pktmem_mbuf::PktPool,
                  clones: pktmem_mbuf::PktPool| {
        std::thread::spawn(move || {
            let mut n = 0;
            while let Some(m) = rx.dequeue() {
                assert_eq!(m.data_len(), 64);
                assert!(m.is_external());
                drop(m);
                n += 1;
            }
            pool.mempool().flush_default_cache();
            clones.mempool().flush_default_cache();
            n
        })
    };
    let w0 = worker(rx0, pool.clone(), clones.clone());
    let w1 = worker(rx1, pool.clone(), clones.clone());
    drop((tx0, tx1));
    let n = w0.join().unwrap() + w1.join().unwrap();
    assert_eq!(n, N * (K + 1), "every reference dropped once");
    for i in 0..N {
        if i % 2 == 0 {
            assert_eq!(drops[i].load(Ordering::Relaxed), 1, "owner {i}");
        } else {
            assert_eq!(callbacks[i].load(Ordering::Relaxed), 1, "callback {i}");
        }
    }
    assert_eq!(released.load(Ordering::Relaxed), N / 2);
    for on in ons {
        assert_ne!(
            on.lock().unwrap().unwrap(),
            main,
            "owner dropped on a worker"
        );
    }
    assert_full(&[&pool, &clones]);
}

/// The tail shared info takes exactly its size (plus alignment) from the
/// end of the buffer, at any buffer address and length.
#[test]
fn tail_shared_info_takes_only_its_size() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    fn count(_: NonNull<u8>) {
        CALLS.fetch_add(1, Ordering::Relaxed);
    }
    type F = fn(NonNull<u8>);
    let size = ExtBuf::tail_shinfo_size::<F>();
    let align = std::mem::align_of::<usize>();
    let mem = leaked(8192);
    let mut made = 0;
    for start in 0..16 {
        for len in [size + align + 1, 100, 1000, 4000, 4001, 4007] {
            // SAFETY: leaked memory; each buffer is dropped before the next
            // one is made over the same bytes, and the callback only counts.
            let addr = unsafe { NonNull::new_unchecked(mem.as_ptr().add(start)) };
            // SAFETY: as above.
            let ext = unsafe { ExtBuf::from_raw_tail_shinfo(addr, len, None, count as F) }.unwrap();
            let usable = ext.len();
            let info_at = addr.as_ptr() as usize + usable;
            assert!(
                usable + size <= len,
                "info past the end: {usable} + {size} > {len}"
            );
            assert!(
                len - usable < size + align,
                "too much taken: {len} - {usable}"
            );
            assert_eq!(info_at % align, 0, "info aligned");
            drop(ext);
            made += 1;
        }
    }
    assert_eq!(CALLS.load(Ordering::Relaxed), made);
}

/// References to one external buffer taken and dropped on four threads at
/// once, through handles and through mbufs: the callback runs once, after
/// the last.
#[test]
fn racing_references_release_once() {
    let pool = anon(64);
    for round in 0..100u8 {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Arc::clone(&calls);
        let buf: &'static mut [u8] = Box::leak(vec![round; 128].into_boxed_slice());
        let addr = NonNull::new(buf.as_mut_ptr()).unwrap();
        // SAFETY: the leaked slice is used only through this buffer; the
        // callback frees it once.
        let ext = unsafe {
            ExtBuf::from_raw(addr, 128, None, move |p| {
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    p.as_ptr(),
                    128,
                )));
                c.fetch_add(1, Ordering::Relaxed);
            })
        }
        .unwrap();
        let barrier = Arc::new(std::sync::Barrier::new(4));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let ext = ext.clone();
                let pool = pool.clone();
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for _ in 0..10 {
                        let e = ext.clone();
                        if t % 2 == 0 {
                            let mut m = pool.alloc_default().unwrap();
                            m.attach_extbuf(e).unwrap();
                            let c = m.clone_in(&pool).unwrap();
                            drop(m);
                            drop(c);
                        } else {
                            drop(e);
                        }
                    }
                    pool.mempool().flush_default_cache();
                })
            })
            .collect();
        assert_eq!(calls.load(Ordering::Relaxed), 0);
        drop(ext);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(calls.load(Ordering::Relaxed), 1, "round {round}");
    }
    assert_full(&[&pool]);
}

/// `attach_owned` on an exhausted pool: the allocation's typed error, and
/// the owner dropped once (not leaked, not attached anywhere).
#[test]
fn attach_owned_on_an_exhausted_pool() {
    let pool = anon(1);
    let hold = pool.alloc_default().unwrap();
    let (o, drops, _) = owned(32);
    match pool.attach_owned(o, None) {
        Err(MbufError::Alloc(pktmem_mbuf::AllocError::Exhausted { requested: 1, .. })) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    drop(hold);
    assert_full(&[&pool]);
}
