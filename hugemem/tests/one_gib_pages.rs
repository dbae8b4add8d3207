//! 1 GiB pages, when the kernel can reserve one: the test reserves one
//! through sysfs (as root) and puts the old count back.

use pktmem_hugemem::{inventory, virt2phys, AllocRequest, Iova, IovaMode, PageSize, Provider};

mod common;
use common::skip;

const SYSFS: &str = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";
const GB: usize = 1 << 30;

struct Restore(Option<u64>);
impl Drop for Restore {
    fn drop(&mut self) {
        if let Some(old) = self.0 {
            let _ = std::fs::write(SYSFS, old.to_string());
        }
    }
}

fn free_1g() -> u64 {
    inventory()
        .iter()
        .find(|h| h.page_size == GB)
        .map_or(0, |h| h.free)
}

#[test]
fn one_gib_page_when_available() {
    let mut restore = Restore(None);
    if free_1g() == 0 {
        if let Ok(old) = std::fs::read_to_string(SYSFS) {
            let old: u64 = old.trim().parse().unwrap_or(0);
            if std::fs::write(SYSFS, (old + 1).to_string()).is_ok() {
                restore.0 = Some(old);
            }
        }
    }
    let p = Provider::builder()
        .allow_small_page_fallback(false)
        .va_reserve(PageSize::Huge1G, 4 * GB)
        .quiet(true)
        .build()
        .unwrap();
    let req = AllocRequest::new(GB)
        .page_size(PageSize::Huge1G)
        .require_page_size(true);
    if free_1g() == 0 {
        skip(format_args!(
            "1 GiB page assertions: the kernel could not reserve one; checking the error"
        ));
        let e = p.alloc_with(&req).unwrap_err();
        assert!(e.to_string().contains("1 GiB"), "{e}");
        return;
    }
    let mut c = p.alloc_with(&req).unwrap();
    assert_eq!(c.page_size(), GB);
    assert_eq!(c.as_ptr().as_ptr() as usize % GB, 0);
    c.as_mut_slice()[GB - 1] = 9;
    let page = c.pages().next().unwrap();
    let expect = match p.iova_mode() {
        IovaMode::Pa => Iova(virt2phys(page.va).unwrap()),
        IovaMode::Va => Iova(page.va as u64),
    };
    assert_eq!(page.iova, Some(expect));
    let inside = page.va + 123_456_789;
    assert_eq!(
        p.virt2iova(inside as *const u8),
        Some(expect.offset(123_456_789))
    );
    let free_during = free_1g();
    drop(c);
    assert_eq!(free_1g(), free_during + 1, "the 1 GiB page went back");
}
