//! A pool created from a provider keeps its ring's slots in that provider's
//! memory (hugepages when there are some), in its shared small heap so the
//! rings of many pools share pages, gives it back when the pool drops, and
//! falls back to the heap, saying so, when the provider refuses.
//!
//! The hugepage tests need free 2 MiB hugepages; without them they print a
//! SKIP line on stderr (`hugemem_common::skip`) and the small-page tests
//! still run.

use std::collections::BTreeSet;

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use hugemem_common::{huge2m_provider, serial, small_page_provider, MB2};
use pktmem::hugemem::{process_hugetlb_bytes, Provider};
use pktmem::mempool::{Mempool, RingPlacement};

mod hugemem_common;

/// Creates a full pool on `provider`, checks its ring's slots lie in one
/// chunk of the provider's pages of `page` bytes (none shared with an
/// object chunk), uses every object, and checks the memory goes back on
/// drop.
fn ring_in_provider(provider: &Provider, page: usize) {
    let before = provider.mapped_bytes();
    let n = 20_000;
    let pool = Mempool::builder("ring-mem", n, 128)
        .cache_size(64)
        .create_with_provider(provider)
        .unwrap();
    assert_eq!(pool.ring_placement(), Some(RingPlacement::Provider));
    assert!(format!("{pool:?}").contains("Provider"), "{pool:?}");
    let range = pool.ring_memory_range().unwrap();
    // An exact-size ring of 20 000 pointers: 32 768 slots of 8 bytes.
    assert_eq!(range.len(), 32_768 * 8);
    for addr in [range.start, range.end - 1] {
        let pg = provider
            .page_of(addr)
            .unwrap_or_else(|| panic!("ring byte {addr:#x} is not in the provider's pages"));
        assert!(pg.in_use);
        assert_eq!(pg.size, page);
        assert!(
            provider.virt2iova(addr as *const u8).is_some() || pg.iova.is_none(),
            "the provider translates the ring's addresses"
        );
    }
    pool.for_each_chunk(|c| {
        let lo = c.addr.as_ptr() as usize;
        let hi = lo + c.len;
        assert!(
            hi <= range.start || lo >= range.end,
            "object chunk {lo:#x}..{hi:#x} overlaps the ring {range:x?}"
        );
    });
    // The ring in provider memory carries every object out and back.
    let mut objs = vec![NonNull::dangling(); n];
    pool.get_bulk(None, &mut objs).unwrap();
    assert!(pool.is_empty());
    let mut addrs: Vec<usize> = objs.iter().map(|p| p.as_ptr() as usize).collect();
    addrs.sort_unstable();
    addrs.dedup();
    assert_eq!(addrs.len(), n, "every object once");
    // SAFETY: the pool's own objects, each returned once.
    unsafe { pool.put_bulk(None, &objs) };
    pool.flush_default_cache();
    assert!(pool.is_full());
    pool.audit().unwrap();
    drop(pool);
    assert_eq!(
        provider.mapped_bytes(),
        before,
        "ring and object memory went back to the provider"
    );
    assert!(
        provider.page_of(range.start).map_or(true, |p| !p.in_use),
        "the ring's page is no longer in use"
    );
}

/// Runs `check` on a provider of 2 MiB hugepages (or says SKIP, naming
/// `test`, when fewer than 16 are free), then checks every hugepage went
/// back to the system.
fn on_hugepages(test: &str, check: impl FnOnce(&Provider)) {
    let what = format!("mempool_ring_mem: {test}");
    let Some(provider) = huge2m_provider(&what, 16) else {
        return;
    };
    let hugetlb_before = process_hugetlb_bytes();
    check(&provider);
    assert_eq!(
        process_hugetlb_bytes(),
        hugetlb_before,
        "the hugepages went back to the system"
    );
    assert_eq!(provider.mapped_bytes(), 0);
}

#[test]
fn ring_slots_in_hugepages() {
    let _g = serial();
    on_hugepages("ring_slots_in_hugepages", |p| ring_in_provider(p, MB2));
}

#[test]
fn ring_slots_in_small_pages() {
    let _g = serial();
    ring_in_provider(&small_page_provider(), 4096);
}

/// Creates eight pools of `n` objects on `provider` (pages of `page`
/// bytes) and checks their rings share `ring_pages` pages: the provider maps
/// exactly the pages under the objects' own chunks plus those, the ring
/// pages hold no object, and every ring works and lies in the provider's
/// memory. Everything goes back when the pools drop.
fn rings_share_pages(provider: &Provider, page: usize, n: usize, ring_pages: usize) {
    let before = provider.mapped_bytes();
    let pools: Vec<Mempool> = (0..8)
        .map(|i| {
            Mempool::builder(format!("small-{i}"), n, 64)
                .create_with_provider(provider)
                .unwrap()
        })
        .collect();
    let mut object_pages = BTreeSet::new();
    let mut ring_at = BTreeSet::new();
    let mut ring_ranges = Vec::new();
    for pool in &pools {
        assert_eq!(pool.ring_placement(), Some(RingPlacement::Provider));
        let range = pool.ring_memory_range().unwrap();
        assert_eq!(range.len(), n.next_power_of_two() * 8);
        let first = provider.page_of(range.start).expect("ring in provider");
        let last = provider.page_of(range.end - 1).expect("ring in provider");
        assert_eq!((first.va, first.size), (last.va, page), "ring in one page");
        assert!(first.in_use);
        ring_at.insert(first.va);
        ring_ranges.push(range);
        pool.for_each_chunk(|c| {
            let lo = c.addr.as_ptr() as usize;
            let mut at = lo - lo % page;
            while at < lo + c.len {
                object_pages.insert(provider.page_of(at).unwrap().va);
                at += page;
            }
        });
    }
    assert_eq!(ring_at.len(), ring_pages, "8 rings on {ring_pages} pages");
    assert!(
        ring_at.is_disjoint(&object_pages),
        "ring pages hold no objects"
    );
    let ring_bytes = provider.mapped_bytes() - before - object_pages.len() * page;
    assert_eq!(ring_bytes, ring_pages * page);
    assert!(ring_bytes < 8 * page, "fewer bytes than a page per ring");
    // No two rings overlap.
    ring_ranges.sort_by_key(|r| r.start);
    for w in ring_ranges.windows(2) {
        assert!(w[0].end <= w[1].start, "{:x?} overlaps {:x?}", w[0], w[1]);
    }
    // Each ring carries its pool's objects out and back.
    for pool in &pools {
        let mut objs = vec![NonNull::dangling(); n];
        pool.get_bulk(None, &mut objs).unwrap();
        // SAFETY: the pool's own objects, each returned once.
        unsafe { pool.put_bulk(None, &objs) };
        pool.flush_default_cache();
        assert!(pool.is_full());
        pool.audit().unwrap();
    }
    // Rings go back as their pools do; the shared pages once all have.
    let mut pools = pools;
    pools.truncate(1);
    assert!(provider.page_of(*ring_at.iter().next().unwrap()).is_some());
    drop(pools);
    assert_eq!(provider.mapped_bytes(), before, "all memory went back");
    for va in ring_at {
        assert!(provider.page_of(va).map_or(true, |p| !p.in_use));
    }
}

/// Eight pools of 1000 objects: eight 8 KiB rings on one 2 MiB page.
#[test]
fn small_rings_share_a_hugepage() {
    let _g = serial();
    on_hugepages("small_rings_share_a_hugepage", |p| {
        rings_share_pages(p, MB2, 1000, 1)
    });
}

/// Eight pools of 100 objects: eight 1 KiB rings on two 4 KiB pages.
#[test]
fn small_rings_share_a_small_page() {
    let _g = serial();
    rings_share_pages(&small_page_provider(), 4096, 100, 2);
}

/// The provider refuses the first allocation (the ring's, which comes
/// before any object's): the pool is still built, its ring on the heap, and
/// it says so.
#[test]
fn refused_ring_memory_falls_back_to_the_heap() {
    let _g = serial();
    let provider = small_page_provider();
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let a = asked.clone();
    let _refuse_first = provider
        .register_validator(0, move |_| a.fetch_add(1, Ordering::SeqCst) != 0)
        .labeled("refuse-first");
    let pool = Mempool::builder("fallback", 1000, 64)
        .create_with_provider(&provider)
        .unwrap();
    assert!(asked.load(Ordering::SeqCst) >= 2, "the ring asked first");
    assert_eq!(pool.ring_placement(), Some(RingPlacement::HeapFallback));
    assert!(format!("{pool:?}").contains("HeapFallback"), "{pool:?}");
    let range = pool.ring_memory_range().unwrap();
    assert!(
        provider.page_of(range.start).is_none(),
        "ring is on the heap"
    );
    assert!(pool.is_full());
    let mut objs = vec![NonNull::dangling(); 1000];
    pool.get_bulk(None, &mut objs).unwrap();
    // SAFETY: the pool's own objects, each returned once.
    unsafe { pool.put_bulk(None, &objs) };
    drop(pool);
    assert_eq!(provider.mapped_bytes(), 0);
}

/// Pools not made from a provider keep their rings on the heap.
#[test]
fn other_pools_keep_the_ring_on_the_heap() {
    let pool = Mempool::builder("anon", 100, 64)
        .create_anonymous()
        .unwrap();
    assert_eq!(pool.ring_placement(), Some(RingPlacement::Heap));
    let pool = Mempool::builder("empty", 100, 64).create_empty().unwrap();
    assert_eq!(pool.ring_placement(), Some(RingPlacement::Heap));
}
