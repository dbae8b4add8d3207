//! The small-page fallback: when the preferred hugepage size has no pages,
//! 4 KiB pages with the reason recorded, or the typed error when the
//! fallback is forbidden.

use pktmem_hugemem::{inventory, AllocError, Iova, IovaMode, PageSize, Provider};

mod common;
use common::{serial, skip};

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
        .map_or(0, |h| h.free);
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
    for page in c.pages() {
        let expect = match p.iova_mode() {
            IovaMode::Pa => Iova(pktmem_hugemem::virt2phys(page.va).unwrap()),
            IovaMode::Va => Iova(page.va as u64),
        };
        assert_eq!(page.iova, Some(expect), "page {:#x}", page.va);
        assert_eq!(p.virt2iova(page.va as *const u8), Some(expect));
        assert_eq!(
            p.virt2iova((page.va + 2051) as *const u8),
            Some(expect.offset(2051))
        );
        assert_eq!(
            p.iova2virt(expect).map(|v| v.as_ptr() as usize),
            Some(page.va)
        );
    }
    assert_eq!(c.iova_at(0), c.iova());
    assert_eq!(c.iova_at(c.mapped_len()), None);
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
        Err(AllocError::NoPages {
            page_size, reason, ..
        }) => {
            assert_eq!(page_size, 1 << 30);
            assert!(reason.contains("1 GiB"), "{reason}");
        }
        other => panic!("expected NoPages, got {other:?}"),
    }
}
