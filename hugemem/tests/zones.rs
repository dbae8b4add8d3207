//! Zones: owned chunks under a unique name, found by it, freed (and the
//! name released) when dropped.

use pktmem_hugemem::{AllocRequest, ZoneError};

mod common;
use common::heap_provider;

#[test]
fn zones_by_name() {
    let p = heap_provider();
    let z = p.zone_reserve("a", &AllocRequest::new(10_000)).unwrap();
    assert_eq!((z.name(), z.len()), ("a", 10_000));
    assert!(matches!(
        p.zone_reserve("a", &AllocRequest::new(1)),
        Err(ZoneError::DuplicateName { name }) if name == "a"
    ));
    assert_eq!(
        p.mapped_bytes(),
        3 * 4096,
        "the duplicate left nothing behind"
    );
    let mut z2 = p.zone_reserve("b", &AllocRequest::new(1)).unwrap();
    z2.as_mut_slice()[0] = 9;
    assert_eq!(p.zone_names(), vec!["a".to_string(), "b".to_string()]);
    let b = p.zone_lookup("b").unwrap();
    assert_eq!(
        (
            b.name.as_str(),
            b.va,
            b.len,
            b.iova,
            b.page_size,
            b.iova_contiguous
        ),
        (
            "b",
            z2.as_ptr().as_ptr() as usize,
            1,
            z2.iova(),
            4096,
            z2.is_iova_contiguous()
        )
    );
    assert_eq!(p.virt2iova(z.as_ptr().as_ptr()), z.iova());
    assert_eq!(p.info().zones, 2);
    drop(z);
    assert!(p.zone_lookup("a").is_none());
    assert_eq!(p.zone_names(), vec!["b".to_string()]);
    // The name is free again.
    let again = p.zone_reserve("a", &AllocRequest::new(1)).unwrap();
    drop((again, z2));
    assert!(p.zone_names().is_empty());
    assert_eq!(p.mapped_bytes(), 0);
}

/// A zone lives as long as its owner wants, on any thread; the name goes
/// with it.
#[test]
fn zone_moves_to_another_thread() {
    let p = heap_provider();
    let z = p.zone_reserve("shared", &AllocRequest::new(4096)).unwrap();
    let q = p.clone();
    std::thread::spawn(move || {
        assert_eq!(q.zone_lookup("shared").unwrap().len, z.len());
        drop(z);
        assert!(q.zone_lookup("shared").is_none());
    })
    .join()
    .unwrap();
    assert_eq!(p.mapped_bytes(), 0);
}
