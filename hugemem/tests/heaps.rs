//! Heaps of external memory: they serve chunks and zones (with the IOVAs
//! the memory was registered with), refuse removal while carved, let their
//! memory go when dropped (once its chunks are gone), and refuse
//! IOVA-contiguous requests on memory without IOVAs whatever their length.

use pktmem_hugemem::{AllocError, AllocRequest, Iova, UnregisterError};

mod common;
use common::{heap_provider, Ext};

#[test]
fn external_heaps_serve_chunks_and_zones() {
    let p = heap_provider();
    let ext = Ext::new(8 * 4096, 4096);
    let iovas: Vec<Iova> = (0..8).map(|i| Iova(0x4000_0000 + i * 4096)).collect();
    let dev = p.create_heap("dev");
    assert_eq!(dev.label(), "dev");
    assert!(dev.is_empty());
    // Labels are not keys: a second heap of the same label is another heap.
    let twin = p.create_heap("dev");
    assert!(matches!(
        twin.alloc(&AllocRequest::new(1)),
        Err(AllocError::NoHeapMemory { heap, len: 1 }) if heap == "dev"
    ));
    // SAFETY: `ext` is zeroed heap memory used by nothing else, alive until
    // after it leaves the heap at the end of the test.
    let id = unsafe { dev.add_memory(ext.ptr, 8 * 4096, 4096, Some(&iovas)) }.unwrap();
    assert_eq!(dev.len(), 8 * 4096);
    let c = p
        .alloc_with(&AllocRequest::new(3 * 4096).heap(&dev).iova_contiguous(true))
        .unwrap();
    assert!(c.is_external());
    assert_eq!(c.as_ptr().as_ptr(), ext.ptr);
    assert_eq!(c.iova(), Some(Iova(0x4000_0000)));
    assert!(c.is_iova_contiguous());
    let z = p
        .zone_reserve("dz", &AllocRequest::new(2 * 4096).heap(&dev))
        .unwrap();
    assert_eq!(z.as_ptr().as_ptr() as usize, ext.ptr as usize + 3 * 4096);
    assert_eq!(z.iova(), Some(Iova(0x4000_0000 + 3 * 4096)));
    assert_eq!(p.zone_lookup("dz").unwrap().iova, z.iova());
    assert_eq!(
        p.mapped_bytes(),
        0,
        "external memory is not provider memory"
    );
    assert!(
        twin.alloc(&AllocRequest::new(1)).is_err(),
        "the twin heap holds nothing"
    );
    // Busy: removal is refused, state unchanged.
    match dev.remove_memory(id) {
        Err(UnregisterError::InUse { users, .. }) => {
            assert_eq!(users, vec!["5 page(s) in chunks"]);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        dev.alloc(&AllocRequest::new(4 * 4096)),
        Err(AllocError::VaExhausted { .. })
    ));
    let d = dev.alloc(&AllocRequest::new(3 * 4096)).unwrap();
    assert_eq!(d.iova(), Some(Iova(0x4000_0000 + 5 * 4096)));
    drop((c, d, z));
    dev.remove_memory(id).unwrap();
    assert!(dev.is_empty());
    assert!(matches!(
        dev.remove_memory(id),
        Err(UnregisterError::NotInHeap { heap }) if heap == "dev"
    ));
    assert!(matches!(
        dev.alloc(&AllocRequest::new(1)),
        Err(AllocError::NoHeapMemory { .. })
    ));
    assert!(p.lists().iter().all(|l| !l.external));
}

/// Dropping a heap whose memory is still carved unregisters each range
/// once its last chunk is gone; the memory serves nothing new meanwhile.
#[test]
fn dropped_heap_lets_memory_go_after_its_chunks() {
    let p = heap_provider();
    let ext = Ext::new(4 * 4096, 4096);
    let dev = p.create_heap("dev");
    // SAFETY: as in the test above.
    unsafe { dev.add_memory(ext.ptr, 4 * 4096, 4096, None) }.unwrap();
    let c = dev.alloc(&AllocRequest::new(4096)).unwrap();
    let req = AllocRequest::new(4096).heap(&dev);
    drop(dev);
    assert!(p.page_of(ext.ptr as usize).is_some(), "still registered");
    let listed = p.lists().into_iter().find(|l| l.external).unwrap();
    assert_eq!(listed.heap.as_deref(), Some("dev"));
    assert_eq!(listed.users, vec!["1 page(s) in chunks"]);
    assert!(p.alloc_with(&req).is_err(), "a dropped heap serves nothing");
    drop(c);
    assert!(p.page_of(ext.ptr as usize).is_none(), "gone with its chunk");
    assert!(p.lists().iter().all(|l| !l.external));
}

/// An IOVA-contiguous request on memory registered without IOVAs is refused
/// with a typed error however small: one page, less than one, or several
/// (it used to succeed for one page or less, handing out memory with no
/// IOVA); the memory stays free.
#[test]
fn iova_contiguous_request_on_memory_without_iova_is_refused() {
    let p = heap_provider();
    let ext = Ext::new(4 * 4096, 4096);
    let dev = p.create_heap("no-iova");
    // SAFETY: as in the tests above.
    unsafe { dev.add_memory(ext.ptr, 4 * 4096, 4096, None) }.unwrap();
    for len in [1, 100, 4096] {
        match dev.alloc(&AllocRequest::new(len).iova_contiguous(true)) {
            Err(AllocError::NoIova { len: l, va }) => {
                assert_eq!((l, va), (len, ext.ptr as usize));
            }
            other => panic!("{len} B: {other:?}"),
        }
        let zone = p.zone_reserve(
            "z",
            &AllocRequest::new(len).heap(&dev).iova_contiguous(true),
        );
        assert!(zone.is_err(), "{len} B zone");
    }
    assert!(matches!(
        dev.alloc(&AllocRequest::new(2 * 4096).iova_contiguous(true)),
        Err(AllocError::NotIovaContiguous { segments: 2, .. })
    ));
    // Nothing was handed out; without the contiguity demand it serves, with
    // no IOVA to show.
    let c = dev.alloc(&AllocRequest::new(4096)).unwrap();
    assert_eq!(c.as_ptr().as_ptr(), ext.ptr);
    assert_eq!(c.iova(), None);
    assert!(!c.is_iova_contiguous());
    assert!(c.segments().all(|r| r.iova.is_none()));
    let e = dev
        .alloc(&AllocRequest::new(4096).iova_contiguous(true))
        .unwrap_err();
    assert!(e.to_string().contains("has no IOVA"), "{e}");
    drop(c);
}
