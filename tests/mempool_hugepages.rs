//! Pools on the hugepage provider: fragmentation, per-object IOVA against the
//! provider's translation, no straddling outside IOVA-contiguous runs,
//! memory back to the provider and the system when the pool goes, and
//! population failing midway without leaks.
//!
//! Needs 2 MiB hugepages for the hugepage assertions; without them it says
//! so on stderr and runs the same checks on small pages.

use std::sync::Mutex;

use pktmem_hugemem::{inventory, process_hugetlb_bytes, AllocRequest, PageSize, Provider};
use pktmem_mempool::{Iova, Mempool, MempoolError, PopulateError};

mod hugemem_common;
use hugemem_common::{huge2m_provider, skip, MB2};

/// The tests of this file measure the process's hugepage usage: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const HUGE: usize = 2 << 20;

fn free_2m_pages() -> u64 {
    inventory()
        .iter()
        .find(|h| h.page_size == HUGE)
        .map_or(0, |h| h.free)
}

/// Checks every object: its IOVA is the provider's translation of its
/// address, and an object that crosses a page boundary does so inside an
/// IOVA-contiguous run (its last byte translates to its IOVA + length - 1).
fn check_objects(pool: &Mempool, provider: &Provider) -> (usize, usize) {
    let body = pool.obj_size().elt_size;
    let page = |a: usize| provider.page_of(a).map(|p| p.va);
    let (mut n, mut straddling) = (0, 0);
    pool.for_each_obj(|o| {
        let a = o.ptr.as_ptr() as usize;
        let Some(want) = provider.virt2iova(o.ptr.as_ptr()) else {
            panic!("object {} at {a:#x} has no IOVA in the provider", o.index);
        };
        assert_eq!(o.iova, want, "object {} header IOVA", o.index);
        // SAFETY: a placed object of a live pool.
        assert_eq!(unsafe { Mempool::obj_iova(o.ptr) }, want);
        let last = a + body - 1;
        if page(a) != page(last) {
            straddling += 1;
            assert_eq!(
                provider.virt2iova(last as *const u8),
                Some(Iova(want.0 + body as u64 - 1)),
                "object {} straddles pages that are not IOVA-contiguous",
                o.index
            );
        }
        n += 1;
    });
    (n, straddling)
}

#[test]
fn fragmented_hugepages_still_make_a_large_pool() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let free = free_2m_pages();
    if free >= 48 {
        fragmented(PageSize::Huge2M, 32);
    } else {
        skip(format_args!(
            "mempool_hugepages: only {free} free 2 MiB hugepages: skipping the hugepage \
             fragmentation assertions (the small-page run below still happens)"
        ));
    }
    fragmented(PageSize::Small4K, 256);
}

fn fragmented(page_size: PageSize, pages: usize) {
    let huge = page_size != PageSize::Small4K;
    let pg = page_size.bytes();
    // A provider allowed exactly `pages` pages: take them one by one, give
    // back every other one. What is left is pages/2 single-page holes.
    let provider = Provider::builder()
        .page_sizes(&[page_size])
        .allow_small_page_fallback(!huge)
        .limit(pages * pg)
        .quiet(true)
        .build()
        .unwrap();
    let req = AllocRequest::new(pg).page_size(page_size);
    let mut taken: Vec<_> = (0..pages)
        .map(|_| provider.alloc_with(&req).unwrap())
        .collect();
    assert!(provider.alloc_with(&req).is_err(), "limit reached");
    let mut kept = Vec::new();
    for (i, c) in taken.drain(..).enumerate() {
        if i % 2 == 0 {
            kept.push(c);
        }
    }
    // No allocation of two pages can succeed now... unless the limit lets
    // the provider map fresh pages elsewhere: it can, pages/2 of them. A pool
    // needing more than any single run, but fitting in pages/2 pages.
    let elt = 2048;
    let obj = pktmem_mempool::calc_obj_size(elt, pktmem_mempool::PoolFlags::empty()).unwrap();
    let per_page = pg / obj.total_size;
    let n = per_page * (pages / 2) - per_page; // needs pages/2 - 1 pages
    let before_mapped = provider.mapped_bytes();
    let hugetlb_before = process_hugetlb_bytes();
    let pool = Mempool::builder("frag", n, elt)
        .cache_size(32)
        .create_with_provider(&provider)
        .unwrap();
    assert!(pool.is_full());
    let mut chunks = 0;
    let mut largest = 0;
    pool.for_each_chunk(|c| {
        chunks += 1;
        largest = largest.max(c.len);
    });
    let needed = n * obj.total_size;
    assert!(
        largest < needed,
        "a single run ({largest} B) held the whole pool ({needed} B)"
    );
    assert!(chunks > 1);
    let (count, straddling) = check_objects(&pool, &provider);
    assert_eq!(count, n);
    eprintln!(
        "mempool_hugepages ({pg} B pages): {n} objects in {chunks} IOVA runs (largest {largest} B of {needed} B), \
         {straddling} objects straddle pages inside IOVA-contiguous runs"
    );
    assert!(!pool.is_non_io());
    pool.audit().unwrap();
    // All of it is usable.
    let mut objs = vec![std::ptr::NonNull::dangling(); n];
    pool.get_bulk(None, &mut objs).unwrap();
    // SAFETY: returned once.
    unsafe { pool.put_bulk(None, &objs) };
    pool.flush_default_cache();
    assert!(pool.is_full());
    // Freeing the pool gives its memory back to the provider.
    assert!(provider.mapped_bytes() > before_mapped);
    drop(pool);
    assert_eq!(
        provider.mapped_bytes(),
        before_mapped,
        "pool memory went back to the provider"
    );
    if huge {
        assert_eq!(
            process_hugetlb_bytes(),
            hugetlb_before,
            "the pool's hugepages went back to the system"
        );
    }
    drop(kept);
    assert_eq!(provider.mapped_bytes(), 0);
}

#[test]
fn populate_failing_midway_leaks_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let huge = free_2m_pages() >= 16;
    let page_size = if huge {
        PageSize::Huge2M
    } else {
        PageSize::Small4K
    };
    if !huge {
        skip(format_args!("mempool_hugepages: too few free 2 MiB hugepages: skipping the hugepage assertions, small pages only"));
    }
    let pg = page_size.bytes();
    let provider = Provider::builder()
        .page_sizes(&[page_size])
        .allow_small_page_fallback(!huge)
        .limit(4 * pg)
        .quiet(true)
        .build()
        .unwrap();
    let hugetlb_before = process_hugetlb_bytes();
    // Needs ~8 pages of memory, the provider may give 4: creation fails
    // cleanly and returns everything.
    let n = 8 * (pg / 2176);
    let r = Mempool::builder("fail", n, 2048).create_with_provider(&provider);
    match r {
        Err(MempoolError::Populate(PopulateError::OutOfMemory { needed, placed, .. })) => {
            assert_eq!(needed, n);
            assert!(
                placed > 0 && placed < n,
                "placed {placed} of {n} before running out"
            );
        }
        other => panic!("expected OutOfMemory, got {other:?}"),
    }
    assert_eq!(
        provider.mapped_bytes(),
        0,
        "nothing left mapped after a failed create"
    );
    if huge {
        assert_eq!(
            process_hugetlb_bytes(),
            hugetlb_before,
            "hugepages went back to the system"
        );
    }
    // Populating an empty pool step by step: the failure keeps what was
    // placed, and the pool is usable with it.
    let pool = Mempool::builder("partial", n, 2048).create_empty().unwrap();
    let e = pool.populate_from_provider(&provider).unwrap_err();
    assert!(matches!(e, PopulateError::OutOfMemory { .. }), "{e}");
    let placed = pool.populated();
    assert!(placed > 0 && placed < n);
    assert_eq!(pool.avail_count(), placed);
    assert!(!pool.is_non_io());
    let mut objs = vec![std::ptr::NonNull::dangling(); placed];
    pool.get_bulk(None, &mut objs).unwrap();
    assert!(pool.get_bulk(None, &mut objs[..1]).is_err());
    // SAFETY: returned once.
    unsafe { pool.put_bulk(None, &objs) };
    check_objects(&pool, &provider);
    drop(pool);
    assert_eq!(provider.mapped_bytes(), 0);
}

#[test]
fn default_create_uses_the_global_provider() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let pool = Mempool::builder("global", 8191, 64)
        .cache_size(256)
        .create()
        .unwrap();
    assert!(pool.is_full());
    let (n, _) = check_objects(&pool, Provider::global());
    assert_eq!(n, 8191);
}

/// External memory registered with the provider (with made-up IOVAs, two
/// pages contiguous then a jump) backs a pool; each object's IOVA comes from
/// the registration and the registration outlives the pool.
#[test]
fn external_memory_backs_a_pool() {
    let provider = Provider::builder()
        .heap_backed(1 << 20)
        .quiet(true)
        .build()
        .unwrap();
    let layout = std::alloc::Layout::from_size_align(4 * 4096, 4096).unwrap();
    // SAFETY: a non-zero-size layout.
    let mem = unsafe { std::alloc::alloc_zeroed(layout) };
    assert!(!mem.is_null());
    let iovas = [
        Iova(0x10_0000),
        Iova(0x10_1000),
        Iova(0x80_0000),
        Iova(0x40_0000),
    ];
    let ext = provider
        .register_external(mem, 4 * 4096, 4096, Some(&iovas))
        .unwrap();
    let pool = Mempool::builder("ext", 100, 1000).create_empty().unwrap();
    // SAFETY: the allocation outlives the pool (freed after it below) and is
    // used by nothing else; it stays registered while the pool lives.
    let n = unsafe {
        pool.populate_external(
            &provider,
            std::ptr::NonNull::new(mem).unwrap(),
            4 * 4096,
            4096,
            None,
        )
    }
    .unwrap();
    // Runs: pages 0-1 (8 KiB: 7 objects of 1088 B), page 2 (3), page 3 (3).
    assert_eq!(n, 7 + 3 + 3);
    let (count, _) = check_objects(&pool, &provider);
    assert_eq!(count, n);
    assert!(!pool.is_non_io());
    drop(pool);
    ext.unregister().unwrap();
    // SAFETY: allocated above with this layout; the pool is gone.
    unsafe { std::alloc::dealloc(mem, layout) };
}

/// A pool whose objects exactly fill whole hugepages maps those pages and
/// its ring's, and not one page more: every page the provider mapped for
/// the pool holds objects or ring slots.
#[test]
fn pool_maps_no_page_without_objects_or_ring() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let Some(provider) = huge2m_provider("pool_maps_no_page_without_objects_or_ring", 8) else {
        return;
    };
    let before = provider.mapped_bytes();
    // 64-byte elements take 128 bytes with their header: 16 384 a page.
    let n = 4 * 16_384;
    let pool = Mempool::builder("exact-pages", n, 64)
        .create_with_provider(&provider)
        .unwrap();
    assert_eq!(pool.obj_size().total_size * 16_384, MB2);
    let mut pages = std::collections::BTreeSet::new();
    pool.for_each_obj(|o| {
        pages.insert(o.ptr.as_ptr() as usize / MB2);
    });
    assert_eq!(pages.len(), 4, "objects on {} pages", pages.len());
    if let Some(r) = pool.ring_memory_range() {
        pages.extend(r.start / MB2..=(r.end - 1) / MB2);
    }
    assert_eq!(
        provider.mapped_bytes() - before,
        pages.len() * MB2,
        "pages mapped for the pool vs pages holding its objects or ring"
    );
    drop(pool);
    assert_eq!(provider.mapped_bytes(), before);
}
