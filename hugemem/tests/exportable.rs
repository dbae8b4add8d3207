//! An exportable provider: its memory may be written by other processes,
//! so it hands out raw-pointer chunks only, and its backing files cannot
//! change size under anyone's mappings.

use pktmem_hugemem::{AllocError, AllocRequest, Provider, ZoneError};

mod common;
use common::Ext;

fn exportable() -> Provider {
    Provider::builder()
        .exportable()
        .quiet(true)
        .build()
        .unwrap()
}

#[test]
fn an_exportable_provider_hands_out_no_slices() {
    let p = exportable();
    assert!(p.is_exportable());
    assert!(!Provider::builder()
        .quiet(true)
        .build()
        .unwrap()
        .is_exportable());
    assert!(matches!(p.alloc(4096), Err(AllocError::Exportable)));
    assert!(matches!(
        p.alloc_with(&AllocRequest::new(1 << 20)),
        Err(AllocError::Exportable)
    ));
    assert!(matches!(
        p.zone_reserve("cfg", &AllocRequest::new(4096)),
        Err(ZoneError::Alloc {
            source: AllocError::Exportable,
            ..
        })
    ));
    assert!(matches!(
        p.small_heap().alloc(64, 8),
        Err(AllocError::Exportable)
    ));
    assert!(p.zone_names().is_empty(), "nothing half-built");
    assert_eq!(p.mapped_bytes(), 0, "nothing mapped by the refusals");
    let e = p.alloc(1).unwrap_err().to_string();
    assert!(e.contains("alloc_shared"), "{e}");
}

#[test]
fn shared_chunks_are_memory_with_iovas_freed_on_drop() {
    let p = exportable();
    let c = p.alloc_shared(&AllocRequest::new(3 << 20)).unwrap();
    assert_eq!(c.len(), 3 << 20);
    assert!(c.mapped_len() >= c.len());
    assert_eq!(p.virt2iova(c.as_ptr().as_ptr()), c.iova());
    assert_eq!(
        c.iova_at(4097),
        p.virt2iova(c.as_ptr().as_ptr().wrapping_add(4097))
    );
    assert_eq!(c.pages().count(), c.mapped_len() / c.page_size());
    let covered: usize = c.segments().map(|r| r.len).sum();
    assert_eq!(covered, c.mapped_len());
    let last = c.as_ptr().as_ptr().wrapping_add(c.len() - 1);
    // SAFETY: inside the chunk; raw-pointer accesses only.
    unsafe { last.write_volatile(0x5a) };
    // SAFETY: as above.
    assert_eq!(unsafe { last.read_volatile() }, 0x5a);
    assert!(p.mapped_bytes() >= c.mapped_len());
    drop(c);
    assert_eq!(p.mapped_bytes(), 0, "freed on drop");
    // Any provider may hand out shared chunks.
    let q = Provider::builder().quiet(true).build().unwrap();
    assert!(q.alloc_shared(&AllocRequest::new(4096)).is_ok());
}

#[test]
fn external_memory_of_an_exportable_provider_keeps_its_slices() {
    // External memory is never exported, so its chunks may have slices.
    let p = exportable();
    let ext = Ext::new(1 << 20, 4096);
    let heap = p.create_heap("dev");
    // SAFETY: `ext` is mapped and outlives the heap's use of it.
    unsafe { heap.add_memory(ext.at(0), 1 << 20, 4096, None) }.unwrap();
    let mut c = heap.alloc(&AllocRequest::new(8192)).unwrap();
    c.as_mut_slice().fill(3);
    assert_eq!(c.as_slice()[8191], 3);
}

#[test]
fn backing_files_are_sealed_against_resizing() {
    let p = exportable();
    let _c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    let r = p.regions();
    assert!(!r.is_empty());
    for region in r {
        // SAFETY: plain syscalls on the provider's open fd.
        let seals = unsafe { libc::fcntl(region.fd, libc::F_GET_SEALS) };
        assert!(
            seals >= 0,
            "F_GET_SEALS: {}",
            std::io::Error::last_os_error()
        );
        for (seal, name) in [
            (libc::F_SEAL_SHRINK, "shrink"),
            (libc::F_SEAL_GROW, "grow"),
            (libc::F_SEAL_SEAL, "seal"),
        ] {
            assert_ne!(seals & seal, 0, "no {name} seal: {seals:#x}");
        }
        // SAFETY: as above; refused by the seal.
        let rc = unsafe { libc::ftruncate(region.fd, 0) };
        assert_eq!(rc, -1, "a sealed file shrank");
        assert_eq!(
            std::io::Error::last_os_error().raw_os_error(),
            Some(libc::EPERM)
        );
    }
}
