//! The page size a pool asks the provider for: 2 MiB or 1 GiB pages on
//! request (`MempoolBuilder::page_size`), 1 GiB pages chosen by size when
//! the pool fills most of one and the system has it free, and the pages
//! back to the system when the pool goes.
//!
//! The 1 GiB tests reserve one 1 GiB page through sysfs when none is free
//! (as root) and put the old count back; without one they say SKIP.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{huge2m_provider, serial, skip};
use pktmem_hugemem::{inventory, process_hugetlb_bytes, virt2phys, IovaMode};
use pktmem_mempool::{Iova, Mempool, PageSize, Provider};

const GB: usize = 1 << 30;
const SYSFS_1G: &str = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";

/// Free (and not promised) 1 GiB pages.
fn free_1g() -> u64 {
    inventory()
        .iter()
        .find(|h| h.page_size == GB)
        .map_or(0, |h| h.free.saturating_sub(h.reserved))
}

/// Puts the 1 GiB page count back when dropped, if it was raised.
struct Restore(Option<u64>);

impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = std::fs::write(SYSFS_1G, old.to_string());
        }
    }
}

/// A free 1 GiB page, reserving one (never past 2 GiB of them) when there
/// is none; `None` after a SKIP line when the kernel cannot give one.
fn one_gib_page(what: &str) -> Option<Restore> {
    let mut restore = Restore(None);
    if free_1g() == 0 {
        if let Ok(old) = std::fs::read_to_string(SYSFS_1G) {
            let old: u64 = old.trim().parse().unwrap_or(0);
            if old < 2 && std::fs::write(SYSFS_1G, (old + 1).to_string()).is_ok() {
                restore.0 = Some(old);
            }
        }
    }
    if free_1g() == 0 {
        skip(format_args!("{what}: no free 1 GiB hugepage could be had"));
        return None;
    }
    Some(restore)
}

/// Every object's page is `page` bytes and its IOVA the provider's
/// translation (the physical address in PA mode); returns the objects.
fn check_pages(pool: &Mempool, provider: &Provider, page: usize) -> usize {
    let mut n = 0;
    pool.for_each_obj(|o| {
        let info = provider.page_of(o.obj.as_ptr() as usize).unwrap();
        assert_eq!(info.size, page, "object {} page size", o.index);
        let want = provider.virt2iova(o.obj.as_ptr());
        assert!(want.is_some());
        assert_eq!(o.iova, want, "object {} IOVA", o.index);
        assert_eq!(pool.iova(o.obj), want);
        if provider.iova_mode() == IovaMode::Pa && o.index % 997 == 0 {
            let pa = virt2phys(o.obj.as_ptr() as usize).unwrap();
            assert_eq!(
                o.iova,
                Some(Iova(pa)),
                "object {} physical address",
                o.index
            );
        }
        n += 1;
    });
    n
}

/// A pool whose shared initialiser counts its calls and writes one byte.
fn counted(n: usize, calls: &Arc<AtomicUsize>) -> pktmem_mempool::MempoolBuilder {
    let c = calls.clone();
    Mempool::builder(n, 128 + 2176)
        .cache(256)
        .obj_init_shared(move |info, body| {
            body[0].write(info.index as u8);
            c.fetch_add(1, Ordering::Relaxed);
        })
}

#[test]
fn two_mib_pages_on_request() {
    let _g = serial();
    let Some(provider) = huge2m_provider("2 MiB pool pages", 40) else {
        return;
    };
    let calls = Arc::new(AtomicUsize::new(0));
    let before = process_hugetlb_bytes();
    let pool = counted(10_000, &calls)
        .page_size(PageSize::Huge2M)
        .build_on(&provider)
        .unwrap();
    assert_eq!(check_pages(&pool, &provider, 2 << 20), 10_000);
    assert_eq!(calls.load(Ordering::Relaxed), 10_000);
    drop(pool);
    assert_eq!(provider.mapped_bytes(), 0);
    assert_eq!(process_hugetlb_bytes(), before, "the 2 MiB pages went back");
}

#[test]
fn one_gib_page_on_request_and_back_to_the_system() {
    let _g = serial();
    let Some(_restore) = one_gib_page("1 GiB pool page on request") else {
        return;
    };
    let provider = Provider::builder().quiet(true).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let free_before = free_1g();
    // 100,000 objects: 237 MB, one 1 GiB page.
    let pool = counted(100_000, &calls)
        .page_size(PageSize::Huge1G)
        .build_on(&provider)
        .unwrap();
    assert_eq!(check_pages(&pool, &provider, GB), 100_000);
    assert_eq!(calls.load(Ordering::Relaxed), 100_000);
    assert_eq!(free_1g(), free_before - 1, "the pool took one 1 GiB page");
    drop(pool);
    assert_eq!(free_1g(), free_before, "the 1 GiB page went back");
}

#[test]
fn size_chooses_the_page() {
    let _g = serial();
    let Some(_restore) = one_gib_page("1 GiB pages chosen by size") else {
        return;
    };
    let provider = Provider::builder().quiet(true).build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    // 2368 B per object: 100,000 take 237 MB, a quarter of a 1 GiB page:
    // 2 MiB pages (when there are enough of them).
    if common::free_2m() >= 130 {
        let small = counted(100_000, &calls).build_on(&provider).unwrap();
        check_pages(&small, &provider, 2 << 20);
        drop(small);
    } else {
        skip(format_args!("2 MiB pages chosen by size: too few free"));
    }
    // 400,000 take 947 MB, more than 7/8 of one: a 1 GiB page.
    let free_before = free_1g();
    let big = counted(400_000, &calls).build_on(&provider).unwrap();
    assert_eq!(check_pages(&big, &provider, GB), 400_000);
    assert_eq!(free_1g(), free_before - 1);
    drop(big);
    assert_eq!(free_1g(), free_before, "the 1 GiB page went back");
    assert_eq!(provider.mapped_bytes(), 0);
}
