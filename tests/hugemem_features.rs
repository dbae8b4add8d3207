//! Events, limits and validators, external memory and heaps, zones, the
//! small-object heap, fragmentation and IOVA-contiguous requests.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pktmem::hugemem::{
    inventory, virt2phys, AllocRequest, EventKind, HugememError, Iova, IovaMode, MemEvent,
    PageSize, Provider, SmallHeap,
};

mod hugemem_common;
use hugemem_common::*;

fn heap_provider() -> Provider {
    Provider::builder().heap_backed(4 << 20).build().unwrap()
}

/// Page-aligned heap memory to register as external.
struct Ext {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}
impl Ext {
    fn new(len: usize, align: usize) -> Ext {
        let layout = std::alloc::Layout::from_size_align(len, align).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Ext { ptr, layout }
    }
}
impl Drop for Ext {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

#[test]
fn events_in_order_with_ranges() {
    let p = heap_provider();
    let log: Arc<Mutex<Vec<MemEvent>>> = Arc::default();
    let l = log.clone();
    p.register_event_callback("log", move |e| l.lock().unwrap().push(*e))
        .unwrap();
    assert!(matches!(
        p.register_event_callback("log", |_| ()),
        Err(HugememError::DuplicateName(_))
    ));
    let a = p.alloc(3 * 4096).unwrap();
    let b = p.alloc(4096).unwrap();
    let (a_va, b_va) = (a.as_ptr().as_ptr() as usize, b.as_ptr().as_ptr() as usize);
    drop(a);
    drop(b);
    let got = log.lock().unwrap().clone();
    let want = vec![
        (EventKind::Alloc, a_va, 3 * 4096),
        (EventKind::Alloc, b_va, 4096),
        (EventKind::Free, a_va, 3 * 4096),
        (EventKind::Free, b_va, 4096),
    ];
    assert_eq!(
        got.iter()
            .map(|e| (e.kind, e.va, e.len))
            .collect::<Vec<_>>(),
        want
    );
    // External memory fires events too.
    let ext = Ext::new(8192, 4096);
    let id = p.register_external(ext.ptr, 8192, 4096, None).unwrap();
    p.unregister_external(id).unwrap();
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 6);
    assert_eq!(
        (got[4].kind, got[4].va, got[4].len, got[4].external),
        (EventKind::Alloc, ext.ptr as usize, 8192, true)
    );
    assert_eq!(got[5].kind, EventKind::Free);
    p.unregister_event_callback("log").unwrap();
    // Alloc comes after mapping and Free before unmapping: the range is
    // translatable (and readable) inside both.
    let p2 = p.clone();
    let checked = Arc::new(AtomicUsize::new(0));
    let c2 = checked.clone();
    p.register_event_callback("mapped", move |e| {
        assert!(!p2.virt2iova(e.va as *const u8).is_bad(), "{e:?}");
        assert!(!p2.virt2iova((e.va + e.len - 1) as *const u8).is_bad());
        // SAFETY: the range is mapped for the duration of the event.
        let b = unsafe { std::ptr::read_volatile((e.va + e.len - 1) as *const u8) };
        assert!(e.kind == EventKind::Alloc || b == 0x77);
        c2.fetch_add(1, Ordering::SeqCst);
    })
    .unwrap();
    let mut c = p.alloc(2 * 4096).unwrap();
    c.as_mut_slice().fill(0x77);
    let mut c2 = p.alloc(2 * 4096).unwrap();
    c2.as_mut_slice().fill(0x77);
    drop((c, c2));
    assert_eq!(checked.load(Ordering::SeqCst), 4);
    p.unregister_event_callback("mapped").unwrap();
    assert!(matches!(
        p.unregister_event_callback("log"),
        Err(HugememError::UnknownName(_))
    ));
}

#[test]
fn callback_may_unregister_itself_and_late_ones_wait() {
    let p = heap_provider();
    let calls = Arc::new(AtomicUsize::new(0));
    let late_calls = Arc::new(AtomicUsize::new(0));
    let (p2, c2, l2) = (p.clone(), calls.clone(), late_calls.clone());
    p.register_event_callback("once", move |e| {
        c2.fetch_add(1, Ordering::SeqCst);
        // The provider is usable from a callback: no lock is held.
        let page = p2.page_of(e.va).expect("mapped before the Alloc event");
        assert!(page.in_use);
        assert!(p2.mapped_bytes() >= e.len);
        p2.unregister_event_callback("once").unwrap();
        let l3 = l2.clone();
        p2.register_event_callback("late", move |_| {
            l3.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
    })
    .unwrap();
    let c = p.alloc(4096).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        late_calls.load(Ordering::SeqCst),
        0,
        "registered during the event"
    );
    drop(c);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "unregistered itself");
    assert_eq!(late_calls.load(Ordering::SeqCst), 1);
}

#[test]
fn callback_may_allocate_and_validator_may_not() {
    let p = heap_provider();
    let held: Arc<Mutex<Vec<pktmem::hugemem::Chunk>>> = Arc::default();
    let (p2, h2) = (p.clone(), held.clone());
    let log: Arc<Mutex<Vec<(EventKind, usize)>>> = Arc::default();
    let l2 = log.clone();
    let once = AtomicBool::new(false);
    p.register_event_callback("nested", move |e| {
        l2.lock().unwrap().push((e.kind, e.va));
        if e.kind == EventKind::Alloc && !once.swap(true, Ordering::SeqCst) {
            let c = p2.alloc(4096).unwrap(); // nested Alloc event
            h2.lock().unwrap().push(c);
        }
    })
    .unwrap();
    let c = p.alloc(4096).unwrap();
    assert_eq!(held.lock().unwrap().len(), 1);
    assert_eq!(p.mapped_bytes(), 2 * 4096);
    assert_eq!(log.lock().unwrap().len(), 2);
    drop(c);
    held.lock().unwrap().clear();
    assert_eq!(p.mapped_bytes(), 0);
    let frees = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.0 == EventKind::Free)
        .count();
    assert_eq!(frees, 2);
    let p3 = p.clone();
    p.register_validator("v", 0, move |_| {
        assert!(matches!(p3.alloc(1), Err(HugememError::Reentrant)));
        true
    })
    .unwrap();
    let c = p.alloc(1).unwrap();
    assert_eq!(c.len(), 1);
    drop(c);
    // The callback and the validator hold clones of `p`, so while they are
    // registered the provider keeps itself alive: unregister them to free it.
    p.unregister_validator("v").unwrap();
    p.unregister_event_callback("nested").unwrap();
}

#[test]
fn chunk_dropped_inside_callback_is_freed() {
    let p = heap_provider();
    let held: Arc<Mutex<Option<pktmem::hugemem::Chunk>>> = Arc::default();
    let h2 = held.clone();
    p.register_event_callback("dropper", move |e| {
        if e.kind == EventKind::Alloc {
            drop(h2.lock().unwrap().take());
        }
    })
    .unwrap();
    *held.lock().unwrap() = Some(p.alloc(4096).unwrap()); // fires: nothing held yet
    assert_eq!(p.mapped_bytes(), 4096);
    let c = p.alloc(4096).unwrap(); // fires: drops the first chunk inside the callback
    assert_eq!(
        p.mapped_bytes(),
        4096,
        "the first chunk was freed after the event"
    );
    drop(c);
    assert_eq!(p.mapped_bytes(), 0);
}

#[test]
fn limit_refuses_exactly_past_threshold() {
    let p = Provider::builder()
        .heap_backed(1 << 20)
        .limit(10 * 4096)
        .build()
        .unwrap();
    let a = p.alloc(10 * 4096).unwrap(); // exactly at the limit
    match p.alloc(1) {
        Err(HugememError::LimitExceeded {
            requested,
            mapped,
            limit,
        }) => assert_eq!((requested, mapped, limit), (4096, 10 * 4096, 10 * 4096)),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.mapped_bytes(), 10 * 4096, "state unchanged");
    drop(a);
    let _b = p.alloc(4096).unwrap();
}

#[test]
fn validator_refuses_growth_past_threshold() {
    let p = heap_provider();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let a2 = asked.clone();
    p.register_validator("cap", 8 * 4096, move |q| {
        a2.lock().unwrap().push(q.new_total);
        false
    })
    .unwrap();
    assert!(matches!(
        p.register_validator("cap", 1, |_| true),
        Err(HugememError::DuplicateName(_))
    ));
    let a = p.alloc(8 * 4096).unwrap(); // reaching the threshold is allowed
    assert!(
        asked.lock().unwrap().is_empty(),
        "not asked at the threshold"
    );
    match p.alloc(4096) {
        Err(HugememError::RefusedByValidator {
            name,
            new_total,
            threshold,
        }) => {
            assert_eq!(name, "cap");
            assert_eq!((new_total, threshold), (9 * 4096, 8 * 4096));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(*asked.lock().unwrap(), vec![9 * 4096]);
    p.unregister_validator("cap").unwrap();
    assert!(p.unregister_validator("cap").is_err());
    let b = p.alloc(4096).unwrap();
    drop((a, b));
}

#[test]
fn external_memory_translation_and_refusals() {
    let p = heap_provider();
    let ext = Ext::new(4 * 4096, 4096);
    let iovas = [
        Iova(0x100000),
        Iova(0x300000),
        Iova(0x301000),
        Iova(0x900000),
    ];
    // Bad input first: nothing may stick.
    assert!(matches!(
        p.register_external(ext.ptr, 0, 4096, None),
        Err(HugememError::ZeroLength)
    ));
    assert!(matches!(
        p.register_external(ext.ptr.wrapping_add(8), 4096, 4096, None),
        Err(HugememError::Misaligned { .. })
    ));
    assert!(matches!(
        p.register_external(ext.ptr, 4096 + 1, 4096, None),
        Err(HugememError::Misaligned { .. })
    ));
    assert!(matches!(
        p.register_external(ext.ptr, 4 * 4096, 3000, None),
        Err(HugememError::BadPageSize { page_size: 3000 })
    ));
    assert!(matches!(
        p.register_external(ext.ptr, 4 * 4096, 4096, Some(&iovas[..3])),
        Err(HugememError::IovaTableLength {
            expected: 4,
            got: 3
        })
    ));
    assert_eq!(p.lists().iter().filter(|l| l.external).count(), 0);
    let id = p
        .register_external(ext.ptr, 4 * 4096, 4096, Some(&iovas))
        .unwrap();
    assert!(matches!(
        p.register_external(ext.ptr.wrapping_add(4096), 4096, 4096, None),
        Err(HugememError::Overlap { .. })
    ));
    for (i, iova) in iovas.iter().enumerate() {
        let a = ext.ptr.wrapping_add(i * 4096 + 17);
        assert_eq!(p.virt2iova(a), iova.offset(17));
        assert_eq!(p.iova2virt(iova.offset(17)).unwrap().as_ptr(), a);
        let page = p.page_of(a as usize).unwrap();
        assert!(page.external);
        assert_eq!(page.va, ext.ptr as usize + i * 4096);
    }
    p.unregister_external(id).unwrap();
    assert!(p.unregister_external(id).is_err(), "double unregister");
    assert!(p.virt2iova(ext.ptr).is_bad());
    // Without a table: bad IOVA, but the memory is known.
    let id = p.register_external(ext.ptr, 4 * 4096, 4096, None).unwrap();
    assert!(p.virt2iova(ext.ptr).is_bad());
    let page = p.page_of(ext.ptr as usize).unwrap();
    assert!(page.external && !page.in_use);
    // Memory that is not the provider's: typed errors, nothing changes.
    let other = Ext::new(4096, 4096);
    assert!(matches!(
        p.unregister_external_at(other.ptr),
        Err(HugememError::NotRegistered { .. })
    ));
    assert!(matches!(
        p.unregister_external_at(ext.ptr.wrapping_add(4096)),
        Err(HugememError::NotRegistered { .. })
    ));
    p.create_heap("h").unwrap();
    assert!(matches!(
        p.heap_remove_memory("h", id),
        Err(HugememError::NotRegistered { .. })
    ));
    assert!(p.page_of(other.ptr as usize).is_none());
    p.unregister_external_at(ext.ptr).unwrap();
    assert!(p.page_of(ext.ptr as usize).is_none());
    assert!(p.unregister_external(id).is_err());
    assert!(p.lists().iter().all(|l| !l.external));
}

#[test]
fn external_heaps_serve_chunks_and_zones() {
    let p = heap_provider();
    let ext = Ext::new(8 * 4096, 4096);
    let iovas: Vec<Iova> = (0..8).map(|i| Iova(0x4000_0000 + i * 4096)).collect();
    // SAFETY: `ext` is zeroed heap memory used by nothing else, alive until
    // after it leaves the heap at the end of the test.
    let r = unsafe { p.heap_add_memory("dev", ext.ptr, 8 * 4096, 4096, Some(&iovas)) };
    assert!(matches!(r, Err(HugememError::UnknownName(_))));
    p.create_heap("dev").unwrap();
    assert!(matches!(
        p.create_heap("dev"),
        Err(HugememError::DuplicateName(_))
    ));
    // SAFETY: as above.
    let id = unsafe { p.heap_add_memory("dev", ext.ptr, 8 * 4096, 4096, Some(&iovas)) }.unwrap();
    let c = p
        .alloc_with(
            &AllocRequest::new(3 * 4096)
                .heap("dev")
                .iova_contiguous(true),
        )
        .unwrap();
    assert!(c.is_external());
    assert_eq!(c.as_ptr().as_ptr(), ext.ptr);
    assert_eq!(c.iova(), Iova(0x4000_0000));
    assert!(c.is_iova_contiguous());
    let z = p
        .zone_reserve("dz", &AllocRequest::new(2 * 4096).heap("dev"))
        .unwrap();
    assert_eq!(z.va, ext.ptr as usize + 3 * 4096);
    assert_eq!(z.iova, Iova(0x4000_0000 + 3 * 4096));
    assert_eq!(
        p.mapped_bytes(),
        0,
        "external memory is not provider memory"
    );
    // Busy: removal and destroy are refused, state unchanged.
    assert!(matches!(
        p.heap_remove_memory("dev", id),
        Err(HugememError::InUse { pages: 5, .. })
    ));
    assert!(matches!(
        p.destroy_heap("dev"),
        Err(HugememError::InUse { .. })
    ));
    assert!(matches!(
        p.alloc_with(&AllocRequest::new(4 * 4096).heap("dev")),
        Err(HugememError::VaExhausted { .. })
    ));
    drop(c);
    p.zone_free("dz").unwrap();
    p.heap_remove_memory("dev", id).unwrap();
    p.destroy_heap("dev").unwrap();
    assert!(matches!(
        p.alloc_with(&AllocRequest::new(1).heap("dev")),
        Err(HugememError::UnknownName(_))
    ));
}

#[test]
fn zones_by_name() {
    let p = heap_provider();
    let z = p.zone_reserve("a", &AllocRequest::new(10_000)).unwrap();
    assert_eq!(z.len, 10_000);
    assert!(matches!(
        p.zone_reserve("a", &AllocRequest::new(1)),
        Err(HugememError::DuplicateName(_))
    ));
    assert_eq!(
        p.mapped_bytes(),
        3 * 4096,
        "the duplicate left nothing behind"
    );
    let z2 = p.zone_reserve("b", &AllocRequest::new(1)).unwrap();
    assert_eq!(p.zone_names(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(p.zone_lookup("b"), Some(z2));
    assert_eq!(p.virt2iova(z.va as *const u8), z.iova);
    p.zone_free("a").unwrap();
    assert!(matches!(
        p.zone_free("a"),
        Err(HugememError::UnknownName(_))
    ));
    p.zone_free("b").unwrap();
    assert_eq!(p.mapped_bytes(), 0);
}

#[test]
fn small_heap_packs_and_returns_pages() {
    let p = heap_provider();
    let heap = SmallHeap::new(&p);
    let mut blocks = Vec::new();
    for i in 0..200usize {
        let mut b = heap.alloc(1 + i % 100, 8).unwrap();
        b.as_mut_slice().fill(i as u8);
        blocks.push(b);
    }
    // Every block keeps its bytes (no overlap) and lies within one page.
    for (i, b) in blocks.iter().enumerate() {
        assert!(b.as_slice().iter().all(|&x| x == i as u8));
        let va = b.as_ptr().as_ptr() as usize;
        assert_eq!(va / 4096, (va + b.len() - 1) / 4096);
        assert_eq!(p.virt2iova(b.as_ptr().as_ptr()), b.iova());
        assert!(b.is_iova_contiguous());
    }
    assert!(p.mapped_bytes() <= 16 * 4096, "small blocks share pages");
    let big = heap.alloc(100_000, 4096).unwrap();
    assert_eq!(big.as_ptr().as_ptr() as usize % 4096, 0);
    assert_eq!(heap.live(), 201);
    drop(blocks);
    drop(big);
    assert_eq!(heap.live(), 0);
    // Nothing live: no slab is kept, not even a class's last one.
    assert_eq!((heap.slabs(), p.mapped_bytes()), (0, 0));
    assert!(matches!(heap.alloc(0, 8), Err(HugememError::ZeroLength)));
}

#[test]
fn fragmentation_large_chunk_from_scattered_pages() {
    if free_2m() < 80 {
        skip(format_args!(
            "fragmentation hugepage assertion: fewer than 80 free 2 MiB pages; small pages instead"
        ));
    }
    let p = Provider::builder().quiet(true).build().unwrap();
    let ps = if free_2m() >= 80 { MB2 } else { 4096 };
    let req = |n: usize| {
        AllocRequest::new(n * ps)
            .page_size(PageSize::from_bytes(ps).unwrap())
            .require_page_size(true)
    };
    let singles: Vec<_> = (0..64).map(|_| p.alloc_with(&req(1)).unwrap()).collect();
    let mut kept = Vec::new();
    for (i, c) in singles.into_iter().enumerate() {
        if i % 2 == 0 {
            kept.push(c);
        }
    }
    assert_eq!(p.mapped_bytes(), 32 * ps);
    let big = p.alloc_with(&req(32)).unwrap();
    assert_eq!(big.mapped_len(), 32 * ps);
    assert_eq!(p.mapped_bytes(), 64 * ps);
    let segs: Vec<_> = big.segments().collect();
    assert_eq!(segs.iter().map(|s| s.2).sum::<usize>(), 32 * ps);
    for (va, iova, len) in &segs {
        for off in (0..*len).step_by(ps) {
            let expect = match p.iova_mode() {
                IovaMode::Pa => Iova(virt2phys(va + off).unwrap()),
                IovaMode::Va => Iova((va + off) as u64),
            };
            assert_eq!(iova.offset(off as u64), expect);
        }
    }
    if p.iova_mode() == IovaMode::Va {
        assert!(big.is_iova_contiguous());
    }
    eprintln!(
        "fragmentation: 32 pages of {ps} formed {} IOVA runs ({:?} mode)",
        segs.len(),
        p.iova_mode()
    );
    drop(big);
    // IOVA-contiguous requests: in VA mode always; in PA mode either
    // contiguous or the typed error, and a single page always.
    let one = p.alloc_with(&req(1).iova_contiguous(true)).unwrap();
    assert!(one.is_iova_contiguous());
    match p.alloc_with(&req(8).iova_contiguous(true)) {
        Ok(c) => {
            assert!(c.is_iova_contiguous());
            assert_eq!(c.segments().count(), 1);
        }
        Err(HugememError::NotIovaContiguous { segments, .. }) => {
            assert_eq!(p.iova_mode(), IovaMode::Pa);
            assert!(segments > 1);
        }
        Err(e) => panic!("{e}"),
    }
    drop((kept, one));
    assert_eq!(p.mapped_bytes(), 0);
}

#[test]
fn info_and_dump_describe_state() {
    let p = heap_provider();
    let _c = p.alloc(5000).unwrap();
    let _z = p.zone_reserve("z", &AllocRequest::new(4096)).unwrap();
    let info = p.info();
    assert_eq!(info.mapped, 3 * 4096);
    let pg = p.page_of(_c.as_ptr().as_ptr() as usize + 4100).unwrap();
    assert!(pg.in_use && !pg.external);
    assert_eq!(pg.va, _c.as_ptr().as_ptr() as usize + 4096);
    assert_eq!(pg.list, p.lists()[0].id);
    assert_eq!(info.zones, 1);
    let lists = p.lists();
    assert_eq!(lists.len(), 1);
    assert_eq!((lists[0].mapped_pages, lists[0].used_pages), (3, 3));
    assert_eq!(p.va_runs().len(), 1);
    let d = p.dump();
    assert!(d.contains("3 mapped, 3 in use"), "{d}");
    assert_eq!(d.matches("page 0x").count(), 3, "{d}");
    for h in inventory() {
        assert!(h.free <= h.total + h.surplus, "{h}");
    }
}

#[test]
fn panicking_callback_leaves_state_consistent() {
    let p = heap_provider();
    p.register_event_callback("boom", |e| {
        if e.len == 2 * 4096 {
            panic!("callback panics on purpose");
        }
    })
    .unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.alloc(2 * 4096)));
    assert!(r.is_err(), "the panic reaches the caller");
    assert_eq!(p.mapped_bytes(), 0, "the chunk was given back");
    let c = p.alloc(4096).unwrap();
    assert_eq!(p.mapped_bytes(), 4096);
    drop(c);
    assert_eq!(p.mapped_bytes(), 0);
    assert!(p
        .lists()
        .iter()
        .all(|l| l.used_pages == 0 && l.mapped_pages == 0));
}

#[test]
fn differential_against_page_model() {
    // Random alloc/free on a heap provider with a kept minimum, checked
    // after every step against a model: max(used, min_keep) <= mapped <=
    // used + min_keep, chunks never overlap, every chunk keeps its bytes.
    let min_keep = 6 * 4096;
    let p = Provider::builder()
        .heap_backed(256 * 4096)
        .min_keep(min_keep)
        .build()
        .unwrap();
    let mut live: Vec<(pktmem::hugemem::Chunk, u8)> = Vec::new();
    let mut x = 0x2545f4914f6cdd1du64;
    let mut high = min_keep;
    for step in 0..2000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if live.len() < 12 && x % 5 < 3 {
            let len = 1 + (x >> 16) as usize % (9 * 4096);
            let mut c = p.alloc(len).unwrap();
            let tag = step as u8 | 1;
            c.as_mut_slice().fill(tag);
            live.push((c, tag));
        } else if !live.is_empty() {
            let (c, tag) = live.swap_remove((x >> 8) as usize % live.len());
            assert!(c.as_slice().iter().all(|&b| b == tag));
        }
        let used: usize = live.iter().map(|(c, _)| c.mapped_len()).sum();
        high = high.max(used);
        let mapped = p.mapped_bytes();
        assert!(
            mapped >= used.max(min_keep),
            "step {step}: {mapped} < {used}"
        );
        // Free pages beyond the minimum go back at once: at most `min_keep`
        // bytes are mapped and not in use.
        assert!(mapped <= used + min_keep, "step {step}: {mapped}");
        let mut ranges: Vec<(usize, usize)> = live
            .iter()
            .map(|(c, _)| (c.as_ptr().as_ptr() as usize, c.mapped_len()))
            .collect();
        ranges.sort();
        for w in ranges.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "step {step}: overlap");
        }
    }
    drop(live);
    assert_eq!(p.mapped_bytes(), min_keep, "exactly the minimum stays");
    assert!(high > min_keep);
}

#[test]
fn alignment_above_page_size() {
    // Heap memory is only 4 KiB aligned: the provider must still place
    // chunks at VAs that are multiples of the alignment.
    let p = heap_provider();
    let _pad = p.alloc(4096).unwrap();
    for align in [8192usize, 65536, 1 << 20] {
        let c = p.alloc_with(&AllocRequest::new(5000).align(align)).unwrap();
        assert_eq!(c.as_ptr().as_ptr() as usize % align, 0, "align {align}");
    }
    if free_2m() >= 16 {
        let q = Provider::builder().quiet(true).build().unwrap();
        let _one = q.alloc(1).unwrap();
        let c = q
            .alloc_with(&AllocRequest::new(MB2).align(4 * MB2))
            .unwrap();
        assert_eq!(c.page_size(), MB2);
        assert_eq!(c.as_ptr().as_ptr() as usize % (4 * MB2), 0);
    } else {
        skip(format_args!(
            "4 MiB-aligned hugepage chunk: fewer than 16 free 2 MiB pages"
        ));
    }
}
