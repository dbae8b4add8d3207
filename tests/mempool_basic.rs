//! Pool behaviour on anonymous memory and caller memory: exhaustion, body
//! integrity, caches and counts, differential test against a free-list model,
//! population rules, no-IO state, bad input, events, audit, typed layer.

use std::collections::HashSet;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pktmem_mempool::{
    calc_mem_size, calc_obj_size, register_event_callback, unregister_event_callback, BackendKind,
    EventInfo, GetError, Iova, Mempool, MempoolError, MempoolEvent, PoolFlags, PopulateError,
    TypedPool, CACHE_MAX_SIZE,
};

fn anon(name: &str, n: usize, elt: usize, cache: usize, kind: BackendKind) -> Mempool {
    Mempool::builder(name, n, elt)
        .cache_size(cache)
        .backend_kind(kind)
        .create_anonymous()
        .unwrap()
}

/// Take every object, one more fails, put all back: full. Bodies written by
/// the caller survive a round trip through the pool untouched.
#[test]
fn exhaust_and_bodies_untouched() {
    for kind in [
        BackendKind::Ring,
        BackendKind::Stack,
        BackendKind::LockFreeStack,
    ] {
        for cache in [0, 32] {
            let n = 1000;
            let pool = anon("exhaust", n, 100, cache, kind);
            assert!(pool.is_full());
            let mut c = pool.cache();
            let mut objs = vec![NonNull::dangling(); n];
            for chunk in objs.chunks_mut(7) {
                pool.get_bulk(Some(&mut c), chunk).unwrap();
            }
            assert_eq!(pool.in_use_count(), n);
            assert!(pool.is_empty());
            let mut one = [NonNull::dangling()];
            assert!(matches!(
                pool.get_bulk(Some(&mut c), &mut one),
                Err(GetError::Empty { requested: 1, .. })
            ));
            assert!(pool.get_bulk(None, &mut one).is_err());
            let distinct: HashSet<usize> = objs.iter().map(|p| p.as_ptr() as usize).collect();
            assert_eq!(distinct.len(), n, "every object handed out once");
            for (i, o) in objs.iter().enumerate() {
                // SAFETY: we own the object, 100 B body (rounded to 104).
                unsafe { std::ptr::write_bytes(o.as_ptr(), (i % 251) as u8, 100) };
            }
            for chunk in objs.chunks(5) {
                // SAFETY: this pool's objects, each returned once.
                unsafe { pool.put_bulk(Some(&mut c), chunk) };
            }
            assert!(pool.is_full(), "counts include the cache");
            // Take them all again: the bodies still carry what we wrote.
            let mut again = vec![NonNull::dangling(); n];
            pool.get_bulk(Some(&mut c), &mut again[..n / 2]).unwrap();
            pool.get_bulk(Some(&mut c), &mut again[n / 2..]).unwrap();
            for (i, o) in objs.iter().enumerate() {
                // SAFETY: we own every object again.
                let body = unsafe { std::slice::from_raw_parts(o.as_ptr(), 100) };
                assert!(
                    body.iter().all(|&b| b == (i % 251) as u8),
                    "pool wrote into body {i}"
                );
            }
            // SAFETY: returned once.
            unsafe { pool.put_bulk(None, &again) };
            drop(c);
            pool.flush_default_cache();
            assert!(pool.is_full());
            assert_eq!(pool.audit().unwrap().taken, 0);
        }
    }
}

/// Differential test: random gets and puts of random sizes through a cache
/// and the default cache, against a model of which objects are out.
#[test]
fn differential_against_model() {
    let n = 300;
    let pool = anon("diff", n, 64, 64, BackendKind::Ring);
    let mut cache = pool.cache();
    let mut out: Vec<NonNull<u8>> = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..20_000 {
        let r = next();
        let k = (r % 80) as usize + 1;
        let use_cache = r & 0x100 != 0;
        if r & 0x200 != 0 {
            let mut buf = vec![NonNull::dangling(); k];
            let res = if use_cache {
                pool.get_bulk(Some(&mut cache), &mut buf)
            } else {
                pool.get_bulk(None, &mut buf)
            };
            match res {
                Ok(()) => out.extend_from_slice(&buf),
                Err(GetError::Empty { .. }) => {
                    // All or nothing: it failed only if too few were free
                    // somewhere it could reach; nothing was taken.
                    assert!(n - out.len() < k + 2 * CACHE_MAX_SIZE);
                }
                Err(e) => panic!("{e}"),
            }
        } else {
            let k = k.min(out.len());
            let at = (next() as usize) % (out.len() - k + 1);
            let give: Vec<_> = out.drain(at..at + k).collect();
            // SAFETY: objects we took from this pool, returned once.
            unsafe {
                if use_cache {
                    pool.put_bulk(Some(&mut cache), &give)
                } else {
                    pool.put_bulk(None, &give)
                }
            }
        }
        assert_eq!(pool.in_use_count(), out.len());
        assert!(cache.len() <= cache.size());
    }
    let distinct: HashSet<usize> = out.iter().map(|p| p.as_ptr() as usize).collect();
    assert_eq!(distinct.len(), out.len());
    // SAFETY: returned once.
    unsafe { pool.put_bulk(None, &out) };
    assert!(pool.is_full());
}

/// Counts include cached objects; flush returns them; cache policy bounds.
#[test]
fn cache_counts_and_policy() {
    let pool = anon("cache-policy", 2048, 64, 0, BackendKind::Ring);
    let mut c = pool.cache_with_size(256).unwrap();
    let mut one = [NonNull::dangling()];
    pool.get_bulk(Some(&mut c), &mut one).unwrap();
    // A miss refills what is missing plus size/2.
    assert_eq!(c.len(), 128);
    assert_eq!(pool.avail_count(), 2047);
    // SAFETY: returned once.
    unsafe { c.put_bulk(&one) };
    assert_eq!(c.len(), 129);
    // Fill past the size: the oldest size/2 go to the backend.
    let mut objs = vec![NonNull::dangling(); 200];
    pool.get_bulk(None, &mut objs).unwrap();
    // SAFETY: returned once.
    unsafe { c.put_bulk(&objs[..127]) };
    assert_eq!(c.len(), 256);
    // SAFETY: returned once.
    unsafe { c.put_bulk(&objs[127..128]) };
    assert_eq!(
        c.len(),
        129,
        "flushed the oldest 128, kept 128 + the new one"
    );
    // A get larger than the cache empties it and takes the rest from the
    // backend; a put larger than the cache goes to the backend.
    let mut big = vec![NonNull::dangling(); 300];
    c.get_bulk(&mut big).unwrap();
    assert_eq!(c.len(), 0);
    assert_eq!(pool.in_use_count(), 300 + 72);
    // SAFETY: returned once.
    unsafe { c.put_bulk(&big) };
    assert_eq!(c.len(), 0);
    // SAFETY: returned once.
    unsafe { pool.put_bulk(Some(&mut c), &objs[128..]) };
    assert_eq!(pool.avail_count(), 2048);
    c.flush();
    assert_eq!(c.len(), 0);
    assert_eq!(pool.avail_count(), 2048);
    // A cache of another pool is ignored (backend used).
    let other = anon("cache-other", 16, 64, 0, BackendKind::Ring);
    let mut oc = other.cache_with_size(8).unwrap();
    pool.get_bulk(Some(&mut oc), &mut one).unwrap();
    assert_eq!(oc.len(), 0);
    // SAFETY: returned once.
    unsafe { pool.put_bulk(Some(&mut oc), &one) };
    assert_eq!(oc.len(), 0);
    assert!(pool.is_full());
}

/// Threads with their own caches (and the default cache) pass objects to
/// each other through a ring for a bounded time: nothing is lost.
#[test]
fn threads_exchange_through_ring_lose_nothing() {
    let n = 4096;
    let pool = anon("threads", n, 64, 128, BackendKind::Ring);
    let ring = Arc::new(pktmem_ring::Ring::<usize>::new(1024).unwrap());
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(300);
    let moved = AtomicUsize::new(0);
    // Joined explicitly: `join` waits for the threads to end, thread-local
    // destructors (which flush their default caches) included.
    std::thread::scope(|s| {
        let mut hs = Vec::new();
        for t in 0..4 {
            let (pool, ring, moved) = (pool.clone(), ring.clone(), &moved);
            hs.push(s.spawn(move || {
                let mut cache = if t % 2 == 0 { Some(pool.cache()) } else { None };
                let mut objs = [NonNull::dangling(); 16];
                let mut addrs = [0usize; 16];
                while std::time::Instant::now() < deadline {
                    if pool.get_bulk(cache.as_mut(), &mut objs).is_ok() {
                        for (a, o) in addrs.iter_mut().zip(&objs) {
                            *a = o.as_ptr() as usize;
                        }
                        let sent = ring.enqueue_burst(&addrs);
                        // SAFETY: objects not sent are still ours.
                        unsafe { pool.put_bulk(cache.as_mut(), &objs[sent..]) };
                    }
                    let got = ring.dequeue_burst(&mut addrs);
                    for (o, &a) in objs.iter_mut().zip(&addrs[..got]) {
                        *o = NonNull::new(a as *mut u8).unwrap();
                    }
                    moved.fetch_add(got, Ordering::Relaxed);
                    // SAFETY: received through the ring: ours now, returned once.
                    unsafe { pool.put_bulk(cache.as_mut(), &objs[..got]) };
                }
            }));
        }
        for h in hs {
            h.join().unwrap();
        }
    });
    let mut addrs = [0usize; 64];
    loop {
        let got = ring.dequeue_burst(&mut addrs);
        if got == 0 {
            break;
        }
        let objs: Vec<_> = addrs[..got]
            .iter()
            .map(|&a| NonNull::new(a as *mut u8).unwrap())
            .collect();
        // SAFETY: left in the ring: ours, returned once.
        unsafe { pool.put_bulk(None, &objs) };
    }
    pool.flush_default_cache();
    assert!(moved.load(Ordering::Relaxed) > 0);
    assert_eq!(
        pool.avail_count(),
        n,
        "the threads' default caches were flushed when they exited"
    );
    pool.audit().unwrap();
}

#[test]
fn bad_input_is_typed() {
    let e = |b: pktmem_mempool::MempoolBuilder| b.create_empty().unwrap_err();
    assert!(matches!(
        e(Mempool::builder("z", 0, 64)),
        MempoolError::ZeroObjects { .. }
    ));
    assert!(matches!(
        e(Mempool::builder("z", 10, 0)),
        MempoolError::ZeroElementSize { .. }
    ));
    assert!(matches!(
        e(Mempool::builder("z", 10000, 64).cache_size(513)),
        MempoolError::CacheTooLarge {
            cache_size: 513,
            max: 512
        }
    ));
    assert!(matches!(
        e(Mempool::builder("z", 10, 64).cache_size(11)),
        MempoolError::CacheTooLarge {
            cache_size: 11,
            max: 10
        }
    ));
    assert!(matches!(
        e(Mempool::builder("z", 10, usize::MAX - 10)),
        MempoolError::ElementTooLarge { .. }
    ));
    assert!(matches!(
        e(Mempool::builder("z", usize::MAX / 64, 64).backend_kind(BackendKind::Stack)),
        MempoolError::PoolTooLarge { .. }
    ));
    assert!(matches!(
        e(Mempool::builder("z", 1 << 40, 8)),
        MempoolError::Ring(_)
    ));
    assert!(matches!(
        e(Mempool::builder("z", 10, 64).private_size(usize::MAX)),
        MempoolError::PrivateAreaTooLarge { .. }
    ));
    assert!(matches!(
        PoolFlags::from_bits(0x4),
        Err(MempoolError::UnknownFlags { bits: 0x4 })
    ));
    assert!(matches!(
        PoolFlags::from_bits(0x1000),
        Err(MempoolError::UnknownFlags { .. })
    ));
    // Populating a full pool is a typed error; the pool stays usable.
    let pool = anon("full", 10, 64, 0, BackendKind::Ring);
    assert!(matches!(
        pool.populate_anonymous(),
        Err(PopulateError::Full { size: 10, .. })
    ));
    assert!(pool.is_full());
    // Display carries the numbers.
    let msg = e(Mempool::builder("z", 10000, 64).cache_size(600)).to_string();
    assert!(msg.contains("600") && msg.contains("512"), "{msg}");
}

#[repr(align(4096))]
struct Pages([u8; 4096 * 8]);

/// Populate from caller memory: too-small chunk, free callbacks, merging of
/// IOVA-consecutive pages, no straddling across runs, no-IO transitions.
#[test]
fn populate_rules_and_no_io() {
    let frees = Arc::new(AtomicUsize::new(0));
    let fcb = |f: &Arc<AtomicUsize>| -> pktmem_mempool::ChunkFree {
        let f = f.clone();
        Box::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
        })
    };
    // Freed at the end, once the pool that uses it is gone.
    let mem: *mut Pages = Box::into_raw(Box::new(Pages([0; 4096 * 8])));
    // SAFETY: `mem` was just allocated and nothing else borrows it.
    let base = NonNull::from(unsafe { &mut (*mem).0 }).cast::<u8>();
    let va = base.as_ptr() as usize;
    let pool = Mempool::builder("virt", 1000, 1000).create_empty().unwrap();
    let sz = pool.obj_size();
    assert_eq!(sz, calc_obj_size(1000, PoolFlags::empty()).unwrap());
    assert!(pool.is_non_io(), "empty pool is no-IO");
    // Too small for one object: zero, callback run at once, pool unchanged.
    // SAFETY: `mem` outlives the pool and is used by it only.
    let n =
        unsafe { pool.populate_iova(base, Iova(0x10_0000), sz.total_size - 1, Some(fcb(&frees))) };
    assert_eq!(n.unwrap(), 0);
    assert_eq!(frees.load(Ordering::SeqCst), 1);
    assert!(pool.is_non_io());
    // 8 pages: IOVAs 0,1,2 consecutive; 3 alone; 4 BAD; 5,6,7 consecutive.
    let iova_of = |p: *const u8| {
        let i = (p as usize - va) / 4096;
        match i {
            0..=2 => Iova(0x100_0000 + i as u64 * 4096),
            3 => Iova(0x900_0000),
            4 => Iova::BAD,
            _ => Iova(0x500_0000 + (i as u64 - 5) * 4096),
        }
    };
    // SAFETY: `mem` outlives the pool; the lookup is our model.
    let n =
        unsafe { pool.populate_virt(base, 4096 * 8, 4096, iova_of, Some(fcb(&frees))) }.unwrap();
    assert!(
        !pool.is_non_io(),
        "a chunk with IOVAs makes the pool usable for IO"
    );
    let mut chunks = Vec::new();
    pool.for_each_chunk(|c| chunks.push((c.addr.as_ptr() as usize - va, c.iova, c.len, c.objects)));
    // Runs: pages 0-2 (12 KiB: 11 objects of 1088 B), 3 (3), 4 (3), 5-7 (11).
    assert_eq!(chunks.len(), 4, "{chunks:?}");
    assert_eq!(chunks[0], (0, Iova(0x100_0000), 3 * 4096, 11));
    assert_eq!(chunks[1].1, Iova(0x900_0000));
    assert_eq!(chunks[2].1, Iova::BAD);
    assert_eq!(n, 11 + 3 + 3 + 11);
    assert_eq!(pool.populated(), n);
    let mut seen = 0;
    pool.for_each_obj(|o| {
        let a = o.ptr.as_ptr() as usize;
        let first = (a - sz.header_size) / 4096;
        let last = (a + sz.elt_size + sz.trailer_size - 1) / 4096;
        // Objects straddle pages only inside IOVA-consecutive runs.
        let run = |p: usize| match p - va / 4096 {
            0..=2 => 0,
            3 => 1,
            4 => 2,
            _ => 3,
        };
        assert_eq!(run(first), run(last), "object {} crosses runs", o.index);
        let expect = iova_of(a as *const u8);
        let expect = if expect == Iova::BAD {
            Iova::BAD
        } else {
            Iova(expect.0 + (a % 4096) as u64)
        };
        assert_eq!(o.iova, expect, "object {}", o.index);
        // SAFETY: a placed object of a live pool.
        assert_eq!(unsafe { Mempool::obj_iova(o.ptr) }, expect);
        assert_eq!(o.index, seen);
        seen += 1;
    });
    assert_eq!(seen, n);
    assert_eq!(pool.avail_count(), n);
    assert_eq!(
        frees.load(Ordering::SeqCst),
        1,
        "kept until the pool is freed"
    );
    drop(pool);
    assert_eq!(frees.load(Ordering::SeqCst), 2, "freed with the pool");
    // SAFETY: from `Box::into_raw` above; the pool that used it is dropped.
    drop(unsafe { Box::from_raw(mem) });

    // A pool without IOVA contiguity stays no-IO and may straddle pages.
    let pool = Mempool::builder("nc", 10, 3000)
        .flags(PoolFlags::NO_IOVA_CONTIG)
        .create_anonymous()
        .unwrap();
    assert!(pool.is_non_io());
    assert!(pool.is_full());
    // Sizes helpers agree with what population used.
    assert_eq!(calc_mem_size(3, 1088, 4096), Some(3 * 1088));
    assert_eq!(calc_mem_size(1, 8192, 4096), None);
}

/// An object larger than a page needs IOVA contiguity: anonymous memory
/// (no IOVA) cannot hold it, unless the pool needs no contiguity.
#[test]
fn object_larger_than_page() {
    let r = Mempool::builder("big", 4, 10000).create_anonymous();
    assert!(matches!(
        r,
        Err(MempoolError::Populate(
            PopulateError::ObjectLargerThanPage { .. }
        ))
    ));
    let p = Mempool::builder("big2", 4, 10000)
        .flags(PoolFlags::NO_IOVA_CONTIG)
        .create_anonymous()
        .unwrap();
    assert!(p.is_full());
}

static EVENTS: std::sync::Mutex<Vec<(String, MempoolEvent, usize)>> =
    std::sync::Mutex::new(Vec::new());

fn ev_a(e: MempoolEvent, p: &EventInfo<'_>, arg: usize) {
    if p.name.starts_with("evtest") {
        EVENTS.lock().unwrap().push((p.name.to_string(), e, arg));
        // Registered during an event: not called for this one.
        let _ = register_event_callback(ev_late, 0);
    }
}

fn ev_self(e: MempoolEvent, p: &EventInfo<'_>, arg: usize) {
    if p.name.starts_with("evtest") {
        EVENTS.lock().unwrap().push((p.name.to_string(), e, arg));
        unregister_event_callback(ev_self, arg).unwrap();
    }
}

fn ev_late(e: MempoolEvent, p: &EventInfo<'_>, _arg: usize) {
    if p.name.starts_with("evtest") {
        EVENTS.lock().unwrap().push((p.name.to_string(), e, 99));
    }
}

#[test]
fn events_order_and_self_unregister() {
    register_event_callback(ev_a, 1).unwrap();
    assert!(matches!(
        register_event_callback(ev_a, 1),
        Err(pktmem_mempool::EventError::AlreadyRegistered)
    ));
    register_event_callback(ev_self, 2).unwrap();
    let pool = Mempool::builder("evtest-1", 8, 64).create_empty().unwrap();
    assert!(
        EVENTS.lock().unwrap().is_empty(),
        "not ready before population"
    );
    pool.populate_anonymous().unwrap();
    {
        let ev = EVENTS.lock().unwrap();
        assert_eq!(
            *ev,
            vec![
                ("evtest-1".to_string(), MempoolEvent::Ready, 1),
                ("evtest-1".to_string(), MempoolEvent::Ready, 2),
            ]
        );
    }
    drop(pool);
    {
        let ev = EVENTS.lock().unwrap();
        // ev_self unregistered itself; ev_late was registered during the
        // first event and is called for the next one.
        assert_eq!(
            ev[2..],
            [
                ("evtest-1".to_string(), MempoolEvent::Destroyed, 1),
                ("evtest-1".to_string(), MempoolEvent::Destroyed, 99),
            ]
        );
    }
    assert!(unregister_event_callback(ev_self, 2).is_err());
    unregister_event_callback(ev_a, 1).unwrap();
    unregister_event_callback(ev_late, 0).unwrap();
}

#[test]
fn audit_catches_overwritten_header() {
    let pool = anon("audit", 64, 64, 0, BackendKind::Ring);
    let o = pool.get(None).unwrap();
    // SAFETY: we own the object; we scribble over the 8 bytes before it
    // (the header's cookie) and put them back before returning it.
    let cookie = unsafe { o.as_ptr().sub(8).cast::<u64>() };
    // SAFETY: as above.
    let saved = unsafe { cookie.read() };
    // SAFETY: as above.
    unsafe { cookie.write(0x4141_4141_4141_4141) };
    let e = pool.audit().unwrap_err();
    assert!(
        matches!(
            e,
            pktmem_mempool::AuditError::BadCookie {
                cookie: 0x4141_4141_4141_4141,
                ..
            }
        ),
        "{e}"
    );
    // SAFETY: restore.
    unsafe { cookie.write(saved) };
    pool.audit().unwrap();
    // SAFETY: returned once.
    unsafe { pool.put(None, o) };
}

#[cfg(debug_assertions)]
#[test]
#[should_panic(expected = "put back twice")]
fn double_put_is_caught_in_debug() {
    let pool = anon("dbl", 8, 64, 0, BackendKind::Ring);
    let o = pool.get(None).unwrap();
    // SAFETY: the first put is legitimate; the second is the bug under test,
    // caught by the cookie before the object is stored again.
    unsafe {
        pool.put(None, o);
        pool.put(None, o);
    }
}

/// Typed layer: values dropped exactly once, objects back on drop, the pool
/// kept alive by the boxes.
#[test]
fn typed_boxes_drop_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct D(#[allow(dead_code)] u64);
    impl Drop for D {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let pool = TypedPool::<D>::new("typed-drop", 4, 2).unwrap();
    let boxes: Vec<_> = (0..4).map(|i| pool.alloc(D(i)).ok().unwrap()).collect();
    let back = pool.alloc(D(9)).err().unwrap(); // empty: value handed back
    drop(back);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    let raw = pool.pool().clone();
    drop(pool);
    std::thread::scope(|s| {
        s.spawn(move || drop(boxes)).join().unwrap(); // boxes are Send
    });
    assert_eq!(DROPS.load(Ordering::SeqCst), 5);
    raw.flush_default_cache();
    assert!(raw.is_full());
    let t = TypedPool::<String>::new("typed-inner", 2, 0).unwrap();
    let s = t.alloc("hello".to_string()).unwrap();
    assert_eq!(s.into_inner(), "hello");
    assert!(t.pool().is_full());
}

/// obj_init runs once per object; private area is zeroed and sized.
#[test]
fn obj_init_and_private_area() {
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let pool = Mempool::builder("init", 100, 64)
        .private_size(100)
        .obj_init(move |o| {
            // SAFETY: objects are not handed out yet; 64 B bodies.
            unsafe { o.ptr.as_ptr().cast::<u64>().write(o.index as u64) };
            c2.fetch_add(1, Ordering::SeqCst);
        })
        .create_anonymous()
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 100);
    assert_eq!(pool.private_size(), 100);
    // SAFETY: 100 bytes of private area, zeroed.
    let p = unsafe { std::slice::from_raw_parts(pool.private_area().as_ptr(), 100) };
    assert!(p.iter().all(|&b| b == 0));
    let mut objs = vec![NonNull::dangling(); 100];
    pool.get_bulk(None, &mut objs).unwrap();
    let mut idx: Vec<u64> = objs
        .iter()
        // SAFETY: we own the objects.
        .map(|o| unsafe { o.as_ptr().cast::<u64>().read() })
        .collect();
    idx.sort();
    assert_eq!(idx, (0..100).collect::<Vec<_>>());
    // SAFETY: returned once.
    unsafe { pool.put_bulk(None, &objs) };
}

/// Single-producer / single-consumer ring backend (the caller promises no
/// concurrent puts, resp. gets): same behaviour on one thread.
#[test]
fn single_producer_single_consumer_backend() {
    // SAFETY: this pool is used by this thread only.
    let b = unsafe {
        Mempool::builder("spsc", 256, 64)
            .cache_size(16)
            .single_producer()
            .single_consumer()
    };
    let pool = b.create_anonymous().unwrap();
    let mut objs = vec![NonNull::dangling(); 256];
    for chunk in objs.chunks_mut(10) {
        pool.get_bulk(None, chunk).unwrap();
    }
    assert!(pool.get(None).is_err());
    let distinct: HashSet<usize> = objs.iter().map(|p| p.as_ptr() as usize).collect();
    assert_eq!(distinct.len(), 256);
    for chunk in objs.chunks(3) {
        // SAFETY: returned once, from this thread only.
        unsafe { pool.put_bulk(None, chunk) };
    }
    pool.flush_default_cache();
    assert!(pool.is_full());
    pool.audit().unwrap();
}

/// A cache handle moves between threads; the pool and typed boxes are
/// shareable. (That a cache cannot be shared is a `compile_fail` doctest.)
#[test]
fn auto_traits() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<pktmem_mempool::Cache>();
    send_sync::<Mempool>();
    send_sync::<TypedPool<u64>>();
    send_sync::<pktmem_mempool::PoolBox<u64>>();
    let pool = anon("moves", 64, 64, 16, BackendKind::Ring);
    let mut cache = pool.cache();
    let o = pool.get(Some(&mut cache)).unwrap().as_ptr() as usize;
    let cache = std::thread::spawn(move || {
        let mut cache = cache;
        let o = NonNull::new(o as *mut u8).unwrap();
        // SAFETY: returned once, through the cache that moved here.
        unsafe { cache.put_bulk(&[o]) };
        cache
    })
    .join()
    .unwrap();
    assert_eq!(pool.avail_count(), 64);
    drop(cache);
    assert!(pool.is_full());
}
