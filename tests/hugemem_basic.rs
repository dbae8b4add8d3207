//! Provider basics on real memory: hugepages when reserved, the small-page
//! path on its own, translation against the kernel's page map, memory going
//! back to the system.

use pktmem::hugemem::{
    inventory, process_hugetlb_bytes, virt2phys, AllocRequest, HugememError, Iova, IovaMode,
    PageSize, Provider,
};

mod hugemem_common;
use hugemem_common::*;

/// Every page's recorded IOVA equals the kernel's answer (PA) or the VA (VA mode).
fn check_translation(p: &Provider, c: &pktmem::hugemem::Chunk) {
    let mut n = 0;
    for page in c.pages() {
        let expect = match p.iova_mode() {
            IovaMode::Pa => Iova(virt2phys(page.va).expect("pagemap readable in PA mode")),
            IovaMode::Va => Iova(page.va as u64),
        };
        assert_eq!(page.iova, expect, "page {:#x}", page.va);
        assert_eq!(p.virt2iova(page.va as *const u8), expect);
        let mid = page.va + page.size / 2 + 3;
        assert_eq!(
            p.virt2iova(mid as *const u8),
            expect.offset((page.size / 2 + 3) as u64)
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
    assert_eq!(c.iova_at(c.mapped_len()), Iova::BAD);
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
        assert!(matches!(r, Err(HugememError::NoPages { .. })), "{r:?}");
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
    assert_eq!(segs.iter().map(|s| s.2).sum::<usize>(), 6 * MB2);
    assert_eq!(c.is_iova_contiguous(), segs.len() == 1);
    assert_eq!(p.mapped_bytes(), 6 * MB2);
    drop(c);
    assert_eq!(p.mapped_bytes(), 0);
    assert_eq!(process_hugetlb_bytes().unwrap(), before, "pages went back");
    assert!(p.info().fallback.is_none());
}

#[test]
fn small_page_path_alone() {
    let _serial = serial();
    // 1 GiB pages are not reserved here (or taken): ask for them with
    // fallback and get 4 KiB pages and a reason.
    let p = Provider::builder()
        .page_sizes(&[PageSize::Huge1G])
        .va_reserve(PageSize::Huge1G, 1 << 30)
        .quiet(true)
        .limit(64 << 20)
        .build()
        .unwrap();
    let one_g_free = inventory()
        .iter()
        .find(|h| h.page_size == 1 << 30)
        .map(|h| h.free)
        .unwrap_or(0);
    if one_g_free > 0 {
        skip(format_args!(
            "small_page_path_alone: a 1 GiB page is free, the provider would use it"
        ));
        return;
    }
    let mut c = p.alloc(100_000).unwrap();
    assert_eq!(c.page_size(), 4096);
    assert_eq!(c.mapped_len(), 25 * 4096);
    c.as_mut_slice().fill(1);
    check_translation(&p, &c);
    let why = p.info().fallback.expect("fallback reason recorded");
    assert!(why.contains("1 GiB"), "{why}");
    assert_eq!(p.mapped_bytes(), 25 * 4096);
    drop(c);
    assert_eq!(p.mapped_bytes(), 0);
    // Forbidding the fallback gives the typed error.
    let strict = Provider::builder()
        .page_sizes(&[PageSize::Huge1G])
        .allow_small_page_fallback(false)
        .quiet(true)
        .build()
        .unwrap();
    match strict.alloc(4096) {
        Err(HugememError::NoPages {
            page_size, reason, ..
        }) => {
            assert_eq!(page_size, 1 << 30);
            assert!(reason.contains("1 GiB"), "{reason}");
        }
        other => panic!("expected NoPages, got {other:?}"),
    }
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

#[test]
fn bad_input_is_typed() {
    let _serial = serial();
    let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    assert!(matches!(p.alloc(0), Err(HugememError::ZeroLength)));
    assert!(matches!(
        p.alloc_with(&AllocRequest::new(10).align(3)),
        Err(HugememError::BadAlignment { align: 3 })
    ));
    assert!(matches!(
        p.alloc_with(&AllocRequest::new(10).node(4096)),
        Err(HugememError::UnknownNode(4096))
    ));
    assert!(matches!(
        p.alloc(2 << 20),
        Err(HugememError::VaExhausted { .. })
    ));
    assert_eq!(p.mapped_bytes(), 0);
    assert!(p.virt2iova(&p as *const _ as *const u8).is_bad());
    assert!(matches!(
        Provider::builder().va_reserve(PageSize::Huge2M, 0).build(),
        Err(HugememError::ZeroLength)
    ));
    assert!(matches!(
        Provider::builder().heap_backed(0).build(),
        Err(HugememError::ZeroLength)
    ));
    assert!(p.iova2virt(Iova::BAD).is_none());
}

#[test]
fn global_provider_works() {
    let _serial = serial();
    let p = Provider::global();
    let c = p.alloc(1 << 20).unwrap();
    assert_eq!(p.virt2iova(c.as_ptr().as_ptr()), c.iova());
    assert!(!c.iova().is_bad());
    let c2 = Provider::global().alloc(4096).unwrap();
    assert_ne!(c.as_ptr(), c2.as_ptr());
}
