//! What the provider says about itself: info, the list table, page
//! records, VA runs, the dump, the kernel's inventory.

use pktmem_hugemem::{inventory, AllocRequest};

mod common;
use common::heap_provider;

#[test]
fn info_and_dump_describe_state() {
    let p = heap_provider();
    let c = p.alloc(5000).unwrap();
    let _z = p.zone_reserve("z", &AllocRequest::new(4096)).unwrap();
    let _cb = p.register_event_callback(|_| ()).labeled("watch");
    let info = p.info();
    assert_eq!(info.mapped, 3 * 4096);
    let pg = p.page_of(c.as_ptr().as_ptr() as usize + 4100).unwrap();
    assert!(pg.in_use && !pg.external);
    assert_eq!(pg.va, c.as_ptr().as_ptr() as usize + 4096);
    assert_eq!(pg.list, p.lists()[0].id);
    assert_eq!(info.zones, 1);
    let lists = p.lists();
    assert_eq!(lists.len(), 1);
    assert_eq!((lists[0].mapped_pages, lists[0].used_pages), (3, 3));
    assert_eq!(p.va_runs().len(), 1);
    let d = p.dump();
    assert!(d.contains("3 mapped, 3 in use"), "{d}");
    assert_eq!(d.matches("page 0x").count(), 3, "{d}");
    assert!(d.contains("zone 'z'"), "{d}");
    assert!(d.contains("callback 'watch'"), "{d}");
    for h in inventory() {
        assert!(h.free <= h.total + h.surplus, "{h}");
    }
}
