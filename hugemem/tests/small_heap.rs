//! The small-allocation heap: the provider's shared heap
//! (`Provider::small_heap`), classes up to half a page, and when pages go
//! back to the provider.
//!
//! The hugepage tests need free 2 MiB hugepages; without them they print a
//! SKIP line on stderr (`common::skip`); the small-page tests
//! always run.
// Short names for the provider, chunks, blocks and the random state,
// as the comments that explain each test use them.
#![allow(clippy::many_single_char_names)]

use std::collections::BTreeSet;

use common::{huge2m_provider, serial, small_page_provider, MB2};
use pktmem_hugemem::{process_hugetlb_bytes, Provider, SmallBlock, SmallHeap};

mod common;

/// The page (its VA) under byte `addr`; panics if the provider has none.
fn page_va(p: &Provider, addr: usize) -> usize {
    p.page_of(addr)
        .unwrap_or_else(|| panic!("{addr:#x} is not in the provider's pages"))
        .va
}

/// Checks `b` lies within one of `p`'s pages of `page` bytes, aligned to
/// `align`, translated by the provider, and returns that page's VA.
fn check_in_one_page(p: &Provider, b: &SmallBlock, page: usize, align: usize) -> usize {
    let lo = b.as_ptr().as_ptr() as usize;
    let hi = lo + b.len() - 1;
    assert_eq!(lo % align, 0, "block {lo:#x} aligned to {align}");
    let pg = p.page_of(lo).unwrap();
    assert_eq!(pg.size, page);
    assert!(pg.in_use);
    assert_eq!(page_va(p, hi), pg.va, "block {lo:#x}..={hi:#x} in one page");
    assert_eq!(p.virt2iova(lo as *const u8), b.iova());
    assert!(b.is_iova_contiguous());
    pg.va
}

#[test]
fn users_of_one_provider_share_its_heap() {
    let _g = serial();
    let p = small_page_provider();
    let (h1, h2) = (p.small_heap(), p.clone().small_heap());
    assert!(h1.same_heap(&h2), "every call gives the same heap");
    assert!(!h1.same_heap(&SmallHeap::new(&p)), "new() is private");
    let mut a = h1.alloc(1000, 64).unwrap();
    let mut b = h2.alloc(1000, 64).unwrap();
    a.as_mut_slice().fill(0xaa);
    b.as_mut_slice().fill(0xbb);
    // Both 1 KiB blocks come from one slab page.
    assert_eq!(
        check_in_one_page(&p, &a, 4096, 64),
        check_in_one_page(&p, &b, 4096, 64)
    );
    assert_eq!(p.mapped_bytes(), 4096);
    assert_eq!((h1.slabs(), h1.live()), (1, 2));
    assert!(a.as_slice().iter().all(|&x| x == 0xaa));
    assert!(b.as_slice().iter().all(|&x| x == 0xbb));
    drop(a);
    assert_eq!(p.mapped_bytes(), 4096, "b still uses the page");
    drop(b);
    // The handles are still held, but nothing is live: the page went back.
    assert_eq!((h1.slabs(), h1.live()), (0, 0));
    assert_eq!(p.mapped_bytes(), 0);
    drop((h1, h2));
    // A block keeps the shared heap alive without any handle.
    let c = p.small_heap().alloc(16, 16).unwrap();
    let d = p.small_heap().alloc(16, 16).unwrap();
    assert_eq!(
        page_va(&p, c.as_ptr().as_ptr() as usize),
        page_va(&p, d.as_ptr().as_ptr() as usize)
    );
    assert_eq!(p.small_heap().live(), 2);
    drop((c, d));
    assert_eq!(p.small_heap().live(), 0);
    assert_eq!(p.mapped_bytes(), 0);
}

/// Open file descriptors of the process (a hugepage list holds a memfd
/// until its provider is gone).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// The shared heap does not keep its provider alive once nothing uses it
/// (the provider holds it weakly, the heap holds the provider): dropping
/// the provider, then the heap's last block and handle, gives the hugepage
/// back and closes the provider's memfd.
#[test]
fn shared_heap_and_provider_go_away_together() {
    let _g = serial();
    let (hugetlb_before, fds_before) = (process_hugetlb_bytes(), open_fds());
    let Some(p) = huge2m_provider(
        "hugemem_small: shared_heap_and_provider_go_away_together",
        4,
    ) else {
        return;
    };
    let heap = p.small_heap();
    let mut block = heap.alloc(4096, 4096).unwrap();
    check_in_one_page(&p, &block, MB2, 4096);
    assert_eq!(process_hugetlb_bytes(), hugetlb_before.map(|b| b + MB2));
    assert!(open_fds() > fds_before, "the 2 MiB list holds a memfd");
    drop(p); // the heap and the block still hold the provider
    block.as_mut_slice().fill(7);
    assert!(block.as_slice().iter().all(|&x| x == 7));
    drop(block);
    assert_eq!(heap.slabs(), 0);
    assert_eq!(process_hugetlb_bytes(), hugetlb_before);
    drop(heap);
    assert_eq!(open_fds(), fds_before, "the provider is gone");
}

/// The per-class rule: an empty slab stays while it is its class's last
/// one and the heap has other live blocks; extra empty slabs go back at
/// once, and everything goes back when no block is live.
#[test]
fn empty_slabs_go_back() {
    let _g = serial();
    let p = small_page_provider();
    let heap = p.small_heap();
    // Two pages of 1 KiB blocks, and one 64 B block to keep the heap live.
    let keep = heap.alloc(64, 8).unwrap();
    let mut kib: Vec<SmallBlock> = (0..8).map(|_| heap.alloc(1024, 8).unwrap()).collect();
    let kib_pages: BTreeSet<usize> = kib
        .iter()
        .map(|b| check_in_one_page(&p, b, 4096, 8))
        .collect();
    assert_eq!(kib_pages.len(), 2, "four 1 KiB blocks a page");
    assert_eq!((heap.slabs(), p.mapped_bytes()), (3, 3 * 4096));
    // Empty the first page: it is not the class's last slab, so it goes.
    let first = *kib_pages.iter().next().unwrap();
    kib.retain(|b| page_va(&p, b.as_ptr().as_ptr() as usize) != first);
    assert_eq!(kib.len(), 4);
    assert_eq!((heap.slabs(), p.mapped_bytes()), (2, 2 * 4096));
    // Empty the second: the class's last slab stays while `keep` lives.
    kib.clear();
    assert_eq!((heap.slabs(), p.mapped_bytes()), (2, 2 * 4096));
    // It serves the class again without a new page.
    let again = heap.alloc(1000, 8).unwrap();
    assert_eq!(p.mapped_bytes(), 2 * 4096);
    drop(again);
    drop(keep);
    // Nothing live: every slab went back, though the handle lives.
    assert_eq!((heap.slabs(), heap.live(), p.mapped_bytes()), (0, 0, 0));
}

/// Classes go up to half a page: two 2 KiB blocks share a 4 KiB page, a
/// 3 KiB one (class 4 KiB) gets a chunk of its own, and so does any block
/// more than half a page.
#[test]
fn classes_up_to_half_a_small_page() {
    let _g = serial();
    let p = small_page_provider();
    let heap = p.small_heap();
    let a = heap.alloc(2048, 8).unwrap();
    let b = heap.alloc(2048, 8).unwrap();
    assert_eq!(
        check_in_one_page(&p, &a, 4096, 8),
        check_in_one_page(&p, &b, 4096, 8)
    );
    assert_eq!(p.mapped_bytes(), 4096);
    let c = heap.alloc(3000, 8).unwrap();
    assert_eq!(p.mapped_bytes(), 2 * 4096, "3000 B: a page of its own");
    assert_eq!(heap.slabs(), 1, "not a slab");
    let d = heap.alloc(10_000, 4096).unwrap();
    assert_eq!(d.as_ptr().as_ptr() as usize % 4096, 0);
    assert_eq!(p.mapped_bytes(), 5 * 4096, "10 000 B: three pages");
    assert_eq!(heap.live(), 4);
    drop((a, b, c, d));
    assert_eq!(p.mapped_bytes(), 0);
}

/// On 2 MiB pages the classes between 64 KiB and 1 MiB share pages too: a
/// 512 KiB block (a 65 536-slot ring of 8-byte slots) takes a quarter page,
/// a 1 MiB block half, and only a block above 1 MiB a page of its own.
#[test]
fn classes_up_to_half_a_hugepage() {
    let _g = serial();
    let hugetlb_before = process_hugetlb_bytes();
    let Some(p) = huge2m_provider("hugemem_small: classes_up_to_half_a_hugepage", 8) else {
        return;
    };
    let heap = p.small_heap();
    let mut blocks = Vec::new();
    for (len, per_page) in [(512 << 10, 4), (1 << 20, 2), (32 << 10, 64)] {
        let mapped = p.mapped_bytes();
        let new: Vec<SmallBlock> = (0..per_page)
            .map(|_| heap.alloc(len, 64).unwrap())
            .collect();
        let pages: BTreeSet<usize> = new
            .iter()
            .map(|b| check_in_one_page(&p, b, MB2, 64))
            .collect();
        assert_eq!(pages.len(), 1, "{per_page} blocks of {len} B share a page");
        assert_eq!(p.mapped_bytes(), mapped + MB2, "{len} B blocks");
        blocks.extend(new);
    }
    let mapped = p.mapped_bytes();
    let big = heap.alloc((1 << 20) + 1, 64).unwrap();
    assert_eq!(p.mapped_bytes(), mapped + MB2, "over half a page: its own");
    assert_eq!(heap.slabs(), 3);
    assert_eq!(heap.live(), 4 + 2 + 64 + 1);
    drop(blocks);
    drop(big);
    assert_eq!(p.mapped_bytes(), 0);
    assert_eq!(process_hugetlb_bytes(), hugetlb_before);
}

/// Threads allocate and free through the shared heap at once: every block
/// keeps its bytes, and every page goes back at the end.
#[test]
fn threads_share_the_heap() {
    let _g = serial();
    let p = small_page_provider();
    std::thread::scope(|s| {
        for t in 0..4u8 {
            let p = &p;
            s.spawn(move || {
                let mut mine = Vec::new();
                for i in 0..500usize {
                    let len = 16 << (i % 8); // 16 B .. 2 KiB
                    let mut b = p.small_heap().alloc(len, 16).unwrap();
                    b.as_mut_slice().fill(t);
                    mine.push(b);
                    if i % 3 == 0 {
                        let old = mine.swap_remove(i % mine.len());
                        assert!(old.as_slice().iter().all(|&x| x == t));
                    }
                }
                for b in &mine {
                    assert!(b.as_slice().iter().all(|&x| x == t));
                }
            });
        }
    });
    assert_eq!(p.small_heap().live(), 0);
    assert_eq!(p.mapped_bytes(), 0);
}

/// Many small blocks of mixed sizes keep their bytes, each within one
/// page, sharing few pages; a large one gets pages of its own; when the
/// last block goes no slab is kept.
#[test]
fn small_heap_packs_and_returns_pages() {
    let _g = serial();
    let p = common::heap_provider();
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
    assert!(matches!(
        heap.alloc(0, 8),
        Err(pktmem_hugemem::AllocError::ZeroLength)
    ));
}
