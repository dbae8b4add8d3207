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

/// Page-aligned bytes that log their drop.
struct Pages {
    ptr: *mut u8,
    layout: std::alloc::Layout,
    log: std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
}

// SAFETY: `Pages` owns its allocation exclusively.
unsafe impl Send for Pages {}

impl Pages {
    fn new(
        len: usize,
        align: usize,
        log: &std::sync::Arc<std::sync::Mutex<Vec<&'static str>>>,
    ) -> Pages {
        let layout = std::alloc::Layout::from_size_align(len, align).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Pages {
            ptr,
            layout,
            log: log.clone(),
        }
    }
}

impl AsMut<[u8]> for Pages {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is `layout.size()` zeroed bytes, ours.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        self.log.lock().unwrap().push("owner dropped");
        // SAFETY: allocated with this layout in `new`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) }
    }
}

/// Owned memory in a heap: no `unsafe` for the user; the owner is kept
/// while any chunk uses the memory, dropped exactly once, after the
/// range's Free event; a misaligned owner is refused and dropped.
#[test]
fn owned_memory_lives_until_unregistered() {
    use std::sync::{Arc, Mutex};
    let p = heap_provider();
    let log: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let l2 = log.clone();
    let _events = p.register_event_callback(move |e| {
        if e.external {
            l2.lock().unwrap().push(match e.kind {
                pktmem_hugemem::EventKind::Alloc => "registered",
                pktmem_hugemem::EventKind::Free => "unregistering",
            });
        }
    });
    let heap = p.create_heap("owned");
    let pages = Pages::new(4 * 4096, 4096, &log);
    let at = pages.ptr;
    let iovas: Vec<Iova> = (0..4).map(|i| Iova(0x7000_0000 + i * 4096)).collect();
    heap.add_owned(pages, 4096, Some(&iovas)).unwrap();
    let mut c = heap
        .alloc(&AllocRequest::new(2 * 4096).iova_contiguous(true))
        .unwrap();
    assert_eq!(c.as_ptr().as_ptr(), at);
    assert_eq!(c.iova(), Some(Iova(0x7000_0000)));
    c.as_mut_slice().fill(9);
    drop(heap); // the chunk still uses the memory: the owner stays
    assert_eq!(*log.lock().unwrap(), ["registered"]);
    assert!(c.as_slice().iter().all(|&b| b == 9));
    drop(c);
    assert_eq!(
        *log.lock().unwrap(),
        ["registered", "unregistering", "owner dropped"]
    );
    // A misaligned owner: refused, dropped once, nothing registered.
    log.lock().unwrap().clear();
    let bad = Pages::new(4096 + 100, 4096, &log);
    let reg = p.register_external_owned(TailOf(bad, 100), 4096, None);
    assert!(matches!(
        reg,
        Err(pktmem_hugemem::RegisterError::Misaligned { .. })
    ));
    assert_eq!(*log.lock().unwrap(), ["owner dropped"]);
    assert!(p.lists().iter().all(|l| !l.external));
}

/// The bytes of `.0` from offset `.1` on (not page aligned).
struct TailOf(Pages, usize);

impl AsMut<[u8]> for TailOf {
    fn as_mut(&mut self) -> &mut [u8] {
        let skip = self.1;
        &mut self.0.as_mut()[skip..]
    }
}
