//! Populating on several threads: with `obj_init_shared` and
//! `populate_threads`, every object is placed and initialised exactly once
//! (by one of the threads, all of which take part), at the address and with
//! the IOVA the one-thread population gives it; an `obj_init` (`FnMut`)
//! initialiser stays on one thread, in order; a panicking initialiser on a
//! helper thread leaves nothing behind; failures still give everything back.
//!
//! The hugepage assertions need free 2 MiB hugepages; without them the test
//! says SKIP and checks what it can.

mod common;

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use common::{huge2m_provider, serial};
use pktmem_hugemem::{process_hugetlb_bytes, virt2phys, IovaMode, Provider};
use pktmem_mempool::{CreateError, Iova, Mempool, MempoolBuilder, ObjInfo, PopulateError};

/// A magic word written after the index, so a body written twice or by the
/// wrong object shows.
const MAGIC: u64 = 0x5eed_0b1e_c7ed_0001;

/// What a shared initialiser saw: calls, and the threads that made them.
#[derive(Default)]
struct Seen {
    calls: AtomicUsize,
    threads: Mutex<HashSet<ThreadId>>,
}

/// A builder whose shared initialiser writes (index, MAGIC ^ index,
/// IOVA raw) into the first 24 bytes of each body and counts its calls.
fn shared_init(n: usize, elt: usize, threads: usize, seen: &Arc<Seen>) -> MempoolBuilder {
    let s = seen.clone();
    Mempool::builder(n, elt)
        .populate_threads(threads)
        .obj_init_shared(move |info: &ObjInfo, body| {
            assert!(body.len() >= 24);
            let words = [
                info.index as u64,
                MAGIC ^ info.index as u64,
                Iova::to_raw(info.iova),
            ];
            for (i, w) in words.iter().enumerate() {
                for (b, v) in body[i * 8..i * 8 + 8].iter_mut().zip(w.to_ne_bytes()) {
                    b.write(v);
                }
            }
            s.calls.fetch_add(1, Ordering::Relaxed);
            s.threads
                .lock()
                .unwrap()
                .insert(std::thread::current().id());
        })
}

/// Reads the three words the initialiser wrote into `obj`'s body.
fn words(obj: NonNull<u8>) -> [u64; 3] {
    // SAFETY: a placed object of a live, quiet pool; the initialiser wrote
    // its first 24 bytes; bodies are 8-aligned. Under `pktmem_asan` a free
    // object's body is poisoned: the read is this test's inspection of a
    // quiet pool, so those bytes are made addressable first (the pool is
    // dropped right after the inspection).
    unsafe {
        #[cfg(pktmem_asan)]
        pktmem_hugemem::asan::unpoison(obj.as_ptr(), 24);
        let p = obj.cast::<u64>().as_ptr();
        [p.read(), p.add(1).read(), p.add(2).read()]
    }
}

/// Every object was initialised once with its own index and IOVA, indices
/// are `0..n` in address order, and every object comes out of the pool
/// exactly once.
fn check_each_once(pool: &Mempool, seen: &Seen) {
    let n = pool.size();
    assert!(pool.is_full());
    assert_eq!(
        seen.calls.load(Ordering::Relaxed),
        n,
        "one init call per object"
    );
    let mut next = 0;
    let mut last_addr = 0;
    pool.for_each_obj(|o| {
        assert_eq!(o.index, next, "population order");
        let [index, magic, iova] = words(o.obj.as_non_null());
        assert_eq!(
            index, o.index as u64,
            "object {} got another's init",
            o.index
        );
        assert_eq!(magic, MAGIC ^ index, "object {} body", o.index);
        assert_eq!(
            Iova::from_raw(iova),
            o.iova,
            "object {} init saw its IOVA",
            o.index
        );
        assert_eq!(pool.iova(o.obj), o.iova, "object {} header IOVA", o.index);
        assert!(pool.owns(o.obj));
        let a = o.obj.as_ptr() as usize;
        assert!(a > last_addr, "objects in address order");
        last_addr = a;
        next += 1;
    });
    assert_eq!(next, n);
    let mut buf = vec![MaybeUninit::uninit(); n];
    let objs = pool.get_bulk_default(&mut buf).unwrap();
    let mut idx: Vec<u64> = objs.iter().map(|o| words(o.as_non_null())[0]).collect();
    idx.sort_unstable();
    assert_eq!(idx, (0..n as u64).collect::<Vec<_>>(), "each object once");
    // SAFETY: given back once.
    unsafe { pool.put_bulk_default(objs) };
    let report = pool.audit().unwrap();
    assert_eq!(report.objects, n);
}

/// Hugepage memory, 2 threads: each object once, all threads took part,
/// and every IOVA is the provider's translation (the physical address in
/// PA mode, read back from the page map).
#[test]
fn two_threads_initialise_every_object_once_on_hugepages() {
    let _g = serial();
    // 30,000 objects of 2304 B: about 70 MiB, 35 pages.
    let Some(provider) = huge2m_provider("parallel populate on 2 MiB pages", 48) else {
        return;
    };
    let seen = Arc::new(Seen::default());
    let before = process_hugetlb_bytes();
    let pool = shared_init(30_000, 128 + 2176, 2, &seen)
        .cache(256)
        .build_on(&provider)
        .unwrap();
    check_each_once(&pool, &seen);
    assert_eq!(
        seen.threads.lock().unwrap().len(),
        2,
        "the initialiser ran on two threads"
    );
    pool.for_each_obj(|o| {
        let want = provider.virt2iova(o.obj.as_ptr());
        assert!(want.is_some(), "object {} in provider memory", o.index);
        assert_eq!(o.iova, want, "object {} IOVA", o.index);
        if provider.iova_mode() == IovaMode::Pa {
            let pa = virt2phys(o.obj.as_ptr() as usize).unwrap();
            assert_eq!(
                o.iova,
                Some(Iova(pa)),
                "object {} physical address",
                o.index
            );
        }
        let page = provider.page_of(o.obj.as_ptr() as usize).unwrap();
        assert_eq!(page.size, 2 << 20);
    });
    let during = process_hugetlb_bytes();
    if let (Some(b), Some(d)) = (before, during) {
        assert!(
            d >= b + 30_000 * 2304,
            "the pool's pages are faulted in: {b} -> {d}"
        );
    }
    drop(pool);
    assert_eq!(provider.mapped_bytes(), 0, "the provider kept nothing");
    assert_eq!(process_hugetlb_bytes(), before, "the hugepages went back");
}

/// Anonymous memory in single-page runs (objects kept inside 4 KiB pages,
/// hundreds of runs dealt to 3 threads) and in one run where objects
/// straddle pages (`no_iova_contig`, cut inside the run).
#[test]
fn three_threads_on_anonymous_memory_both_placements() {
    for contig in [true, false] {
        let seen = Arc::new(Seen::default());
        let mut b = shared_init(5000, 1000, 3, &seen);
        if !contig {
            b = b.no_iova_contig();
        }
        let pool = b.build_anonymous().unwrap();
        check_each_once(&pool, &seen);
        assert_eq!(
            seen.threads.lock().unwrap().len(),
            3,
            "three threads (contig {contig})"
        );
        let page = 4096;
        let mut straddling = 0;
        pool.for_each_obj(|o| {
            assert_eq!(o.iova, None);
            let a = o.obj.as_ptr() as usize - 64;
            if a / page != (a + pool.obj_size().total_size - 1) / page {
                straddling += 1;
            }
        });
        if contig {
            assert_eq!(straddling, 0, "objects keep inside their pages");
        } else {
            assert!(straddling > 0, "objects pack across pages");
        }
    }
}

/// The same memory populated on 1 and on 4 threads: the same objects at
/// the same offsets with the same IOVAs, indices and initialised bodies.
#[test]
fn thread_count_does_not_change_the_layout() {
    #[repr(align(4096))]
    struct Page(#[allow(dead_code)] [u8; 4096]); // the memory the pool uses, never read by name
    const PAGES: usize = 600;
    type Placed = Vec<(usize, Option<Iova>, usize, [u64; 3])>;
    let layout = |threads: usize, offset: usize| -> Placed {
        // Declared before the pool, so it is freed after it.
        let mut mem: Vec<Page> = (0..PAGES).map(|_| Page([0; 4096])).collect();
        let seen = Arc::new(Seen::default());
        let pool = shared_init(10_000, 300, threads, &seen)
            .build_empty()
            .unwrap();
        let base = NonNull::from(&mut mem[0]).cast::<u8>();
        // SAFETY: `mem` outlives the pool and is used by it only; the
        // made-up IOVA is consistent over the range; `offset` < the length.
        let n = unsafe {
            pool.populate_iova(
                base.add(offset),
                Some(Iova(0x1_0000_0000)),
                PAGES * 4096 - offset,
                None,
            )
        }
        .unwrap();
        // 300 B bodies take 384 B with their header line.
        assert_eq!(n, (PAGES * 4096 - offset.next_multiple_of(64)) / 384);
        let mut out = Vec::new();
        pool.for_each_obj(|o| {
            out.push((
                o.obj.as_ptr() as usize - base.as_ptr() as usize,
                o.iova,
                o.index,
                words(o.obj.as_non_null()),
            ));
        });
        assert_eq!(seen.calls.load(Ordering::Relaxed), n);
        if threads > 1 {
            assert_eq!(seen.threads.lock().unwrap().len(), threads);
        }
        drop(pool);
        out
    };
    for offset in [0, 8, 4000] {
        let one = layout(1, offset);
        let four = layout(4, offset);
        assert!(!one.is_empty());
        assert_eq!(one, four, "offset {offset}");
    }
}

/// An `obj_init` (`FnMut`) initialiser runs on the populating thread only,
/// in population order, whatever `populate_threads` says.
#[test]
fn fnmut_initialiser_stays_sequential() {
    let order = Arc::new(Mutex::new(Vec::new()));
    let o2 = order.clone();
    let me = std::thread::current().id();
    let mut calls = 0usize;
    let pool = Mempool::builder(20_000, 1000)
        .populate_threads(4)
        .obj_init(move |info, body| {
            calls += 1;
            body[0].write(1);
            o2.lock()
                .unwrap()
                .push((info.index, std::thread::current().id(), calls));
        })
        .build_anonymous()
        .unwrap();
    let order = order.lock().unwrap();
    assert_eq!(order.len(), 20_000);
    for (i, &(index, thread, calls)) in order.iter().enumerate() {
        assert_eq!((index, calls), (i, i + 1), "in order");
        assert_eq!(thread, me, "on the populating thread");
    }
    assert!(pool.is_full());
}

/// A shared initialiser that panics on a helper thread: the panic reaches
/// the caller with its message, nothing of that populate call is stored or
/// recorded, and the pool can be populated again afterwards.
#[test]
fn panic_on_a_helper_thread_stores_nothing() {
    let armed = Arc::new(AtomicBool::new(true));
    let a2 = armed.clone();
    let n = 8000;
    let pool = Mempool::builder(n, 1000)
        .populate_threads(2)
        .obj_init_shared(move |info, body| {
            body[0].write(7);
            // The last object is in the second thread's share.
            let fire = info.index == n - 1 && a2.swap(false, Ordering::Relaxed);
            assert!(!fire, "boom at {}", info.index);
        })
        .build_empty()
        .unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.populate_anonymous()));
    let payload = r.expect_err("the initialiser's panic comes through");
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert_eq!(msg, format!("boom at {}", n - 1));
    assert_eq!(pool.populated(), 0);
    assert_eq!(pool.avail_count(), 0);
    assert_eq!(pool.audit().unwrap().chunks, 0, "no chunk recorded");
    assert!(pool.get_default().is_err());
    assert_eq!(pool.populate_anonymous().unwrap(), n);
    assert!(pool.is_full());
    assert_eq!(pool.audit().unwrap().objects, n);
}

/// A parallel build that runs out of memory fails as the one-thread one
/// does and leaves nothing mapped; the hugepages go back to the system.
#[test]
fn failed_parallel_build_gives_everything_back() {
    let _g = serial();
    let Some(_probe) = huge2m_provider("failed parallel build", 24) else {
        return;
    };
    let provider = Provider::builder()
        .page_sizes(&[pktmem_hugemem::PageSize::Huge2M])
        .allow_small_page_fallback(false)
        .limit(16 << 20)
        .quiet(true)
        .build()
        .unwrap();
    let before = process_hugetlb_bytes();
    let seen = Arc::new(Seen::default());
    // ~46 MiB needed, 16 MiB allowed.
    let r = shared_init(20_000, 2304, 2, &seen)
        .name("too-big")
        .build_on(&provider);
    match r {
        Err(CreateError::Populate(PopulateError::OutOfMemory { needed, placed, .. })) => {
            assert_eq!(needed, 20_000);
            assert!(placed > 0 && placed < 20_000, "placed {placed}");
            assert_eq!(seen.calls.load(Ordering::Relaxed), placed);
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert_eq!(provider.mapped_bytes(), 0);
    assert_eq!(process_hugetlb_bytes(), before);
}
