//! Provider pages on real memory: 2 MiB hugepages when reserved,
//! translation against the kernel's page map, memory going back to the
//! system, the kept minimum.
//!
//! Without enough free hugepages a test prints a SKIP line on stderr
//! (`common::skip`) and checks the typed error instead where it can.

use pktmem_hugemem::{
    process_hugetlb_bytes, virt2phys, AllocError, AllocRequest, Chunk, Iova, IovaMode, PageSize,
    Provider,
};

mod common;
use common::{free_2m, serial, skip, MB2};

/// Every page's recorded IOVA equals the kernel's answer (PA) or the VA (VA mode).
fn check_translation(p: &Provider, c: &Chunk) {
    let mut n = 0;
    for page in c.pages() {
        let expect = match p.iova_mode() {
            IovaMode::Pa => Iova(virt2phys(page.va).expect("pagemap readable in PA mode")),
            IovaMode::Va => Iova(page.va as u64),
        };
        assert_eq!(page.iova, Some(expect), "page {:#x}", page.va);
        assert_eq!(p.virt2iova(page.va as *const u8), Some(expect));
        let mid = page.va + page.size / 2 + 3;
        assert_eq!(
            p.virt2iova(mid as *const u8),
            Some(expect.offset((page.size / 2 + 3) as u64))
        );
        assert_eq!(
            p.iova2virt(expect).map(|v| v.as_ptr() as usize),
            Some(page.va)
        );
        n += 1;
    }
    assert_eq!(n, c.mapped_len() / c.page_size());
    // Offsets agree with the per-page table.
    assert_eq!(c.iova_at(0), c.iova());
    assert_eq!(c.iova_at(c.mapped_len()), None);
}

#[test]
fn hugepages_real_2m() {
    let _serial = serial();
    let p = Provider::builder()
        .allow_small_page_fallback(false)
        .quiet(true)
        .build()
        .unwrap();
    if free_2m() < 8 {
        skip(format_args!(
            "hugepages_real_2m: fewer than 8 free 2 MiB hugepages; testing the error instead"
        ));
        let r = p.alloc(8 * MB2);
        assert!(matches!(r, Err(AllocError::NoPages { .. })), "{r:?}");
        return;
    }
    let before = process_hugetlb_bytes().unwrap();
    let mut c = p
        .alloc_with(&AllocRequest::new(5 * MB2 + 1).page_size(PageSize::Huge2M))
        .unwrap();
    assert_eq!(c.page_size(), MB2);
    assert_eq!(c.mapped_len(), 6 * MB2);
    assert_eq!(c.as_ptr().as_ptr() as usize % MB2, 0);
    assert_eq!(process_hugetlb_bytes().unwrap(), before + 6 * MB2);
    c.as_mut_slice().fill(0x5a);
    assert!(c.as_slice().iter().all(|&b| b == 0x5a));
    check_translation(&p, &c);
    let segs: Vec<_> = c.segments().collect();
    assert_eq!(segs.iter().map(|s| s.len).sum::<usize>(), 6 * MB2);
    assert_eq!(c.is_iova_contiguous(), segs.len() == 1);
    assert_eq!(p.mapped_bytes(), 6 * MB2);
    drop(c);
    assert_eq!(p.mapped_bytes(), 0);
    assert_eq!(process_hugetlb_bytes().unwrap(), before, "pages went back");
    assert!(p.info().fallback.is_none());
}

#[test]
fn memory_returns_and_min_keep() {
    let _serial = serial();
    if free_2m() < 16 {
        skip(format_args!(
            "memory_returns_and_min_keep hugepage part: fewer than 16 free 2 MiB pages"
        ));
        return;
    }
    let base = process_hugetlb_bytes().unwrap();
    let p = Provider::builder()
        .min_keep(4 * MB2)
        .allow_small_page_fallback(false)
        .build()
        .unwrap();
    assert_eq!(p.mapped_bytes(), 4 * MB2, "minimum mapped at build");
    assert_eq!(process_hugetlb_bytes().unwrap(), base + 4 * MB2);
    let c = p.alloc(10 * MB2).unwrap();
    assert_eq!(
        process_hugetlb_bytes().unwrap(),
        base + 10 * MB2,
        "kept pages reused"
    );
    drop(c);
    assert_eq!(p.mapped_bytes(), 4 * MB2, "freed down to the minimum");
    assert_eq!(process_hugetlb_bytes().unwrap(), base + 4 * MB2);
    let free_during = free_2m();
    drop(p);
    assert_eq!(
        process_hugetlb_bytes().unwrap(),
        base,
        "provider drop returns all"
    );
    // Secondary, system-wide: HugePages_Free came back up by our 4 kept
    // pages, give or take what other processes took meanwhile.
    let free_after = free_2m();
    eprintln!("HugePages_Free: {free_during} with the minimum kept, {free_after} after");
    assert!(
        free_after + 32 >= free_during + 4,
        "{free_during} -> {free_after}"
    );
}

/// A 2 MiB-page chunk aligned to 4 MiB lands on a 4 MiB boundary even
/// after a one-page chunk took the list's first slot.
#[test]
fn alignment_above_the_hugepage_size() {
    let _serial = serial();
    if free_2m() < 16 {
        skip(format_args!(
            "4 MiB-aligned hugepage chunk: fewer than 16 free 2 MiB pages"
        ));
        return;
    }
    let q = Provider::builder().quiet(true).build().unwrap();
    let _one = q.alloc(1).unwrap();
    let c = q
        .alloc_with(&AllocRequest::new(MB2).align(4 * MB2))
        .unwrap();
    assert_eq!(c.page_size(), MB2);
    assert_eq!(c.as_ptr().as_ptr() as usize % (4 * MB2), 0);
}
