//! A pool created from a provider keeps its ring's slots in that provider's
//! memory (hugepages when there are some), gives it back when the pool drops,
//! and falls back to the heap, saying so, when the provider refuses.
//!
//! The hugepage test needs free 2 MiB hugepages; without them it prints a
//! SKIP line on stderr (`hugemem_common::skip`) and the small-page test
//! still runs.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use hugemem_common::{free_2m, serial, skip, MB2};
use pktmem::hugemem::{process_hugetlb_bytes, PageSize, Provider};
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
            !provider.virt2iova(addr as *const u8).is_bad() || pg.iova.is_bad(),
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

#[test]
fn ring_slots_in_hugepages() {
    let _g = serial();
    let free = free_2m();
    if free < 16 {
        skip(format_args!(
            "mempool_ring_mem: ring_slots_in_hugepages: only {free} free 2 MiB hugepages (need 16)"
        ));
        return;
    }
    let provider = Provider::builder()
        .page_sizes(&[PageSize::Huge2M])
        .allow_small_page_fallback(false)
        .quiet(true)
        .build()
        .unwrap();
    let hugetlb_before = process_hugetlb_bytes();
    ring_in_provider(&provider, MB2);
    assert_eq!(
        process_hugetlb_bytes(),
        hugetlb_before,
        "the hugepages went back to the system"
    );
    assert_eq!(provider.mapped_bytes(), 0);
}

#[test]
fn ring_slots_in_small_pages() {
    let _g = serial();
    let provider = Provider::builder()
        .heap_backed(64 << 20)
        .quiet(true)
        .build()
        .unwrap();
    ring_in_provider(&provider, 4096);
}

/// The provider refuses the first allocation (the ring's, which comes
/// before any object's): the pool is still built, its ring on the heap, and
/// it says so.
#[test]
fn refused_ring_memory_falls_back_to_the_heap() {
    let _g = serial();
    let provider = Provider::builder()
        .heap_backed(16 << 20)
        .quiet(true)
        .build()
        .unwrap();
    let asked = std::sync::Arc::new(AtomicUsize::new(0));
    let a = asked.clone();
    provider
        .register_validator("refuse-first", 0, move |_| {
            a.fetch_add(1, Ordering::SeqCst) != 0
        })
        .unwrap();
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
