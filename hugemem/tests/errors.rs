//! Bad input gets the operation's own typed error, with the numbers that
//! matter, and leaves nothing behind; every error converts into
//! `HugememError` for `?` and keeps its source.

use std::error::Error as _;

use pktmem_hugemem::{
    AllocError, AllocRequest, BuildError, HugememError, Iova, Node, PageSize, Provider,
    RegisterError, ZoneError,
};

#[test]
fn bad_input_is_typed() {
    let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    assert!(matches!(p.alloc(0), Err(AllocError::ZeroLength)));
    assert!(matches!(
        p.alloc_with(&AllocRequest::new(10).align(3)),
        Err(AllocError::BadAlignment { align: 3 })
    ));
    assert!(matches!(
        p.alloc_with(&AllocRequest::new(10).node(Node::new(4096))),
        Err(AllocError::UnknownNode { node }) if node == Node::new(4096)
    ));
    assert!(matches!(
        p.alloc(2 << 20),
        Err(AllocError::VaExhausted { .. })
    ));
    assert_eq!(p.mapped_bytes(), 0);
    assert!(p
        .virt2iova(std::ptr::from_ref::<Provider>(&p).cast::<u8>())
        .is_none());
    assert!(matches!(
        Provider::builder().va_reserve(PageSize::Huge2M, 0).build(),
        Err(BuildError::ZeroVaReserve { page_size }) if page_size == 2 << 20
    ));
    assert!(matches!(
        Provider::builder().heap_backed(0).build(),
        Err(BuildError::ZeroHeap)
    ));
    assert!(p.iova2virt(Iova::BAD).is_none());
}

#[test]
fn display_carries_the_numbers() {
    let p = Provider::builder()
        .heap_backed(1 << 20)
        .limit(8 * 4096)
        .build()
        .unwrap();
    let e = p.alloc(9 * 4096).unwrap_err();
    assert_eq!(
        e.to_string(),
        "allocating 36 KiB with 0 B mapped would pass the limit of 32 KiB"
    );
    let e = p.alloc(2 << 20).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no free run of 512 page(s) in the 4 KiB list of 256 pages"
    );
    let mut buf = vec![0u8; 2 * 4096];
    let e = p
        .register_external(buf.as_mut_ptr(), 4096, 3000, None)
        .unwrap_err();
    assert!(matches!(e, RegisterError::BadPageSize { page_size: 3000 }));
    assert!(e.to_string().contains("3000"), "{e}");
    // A kept minimum that cannot be mapped: the build error says so and
    // keeps the allocation error as its source.
    let e = Provider::builder()
        .heap_backed(1 << 20)
        .min_keep(2 << 20)
        .build()
        .unwrap_err();
    assert!(matches!(e, BuildError::MinKeep { min_keep, .. } if min_keep == 2 << 20));
    assert!(e.to_string().contains("2 MiB"), "{e}");
    assert!(e
        .source()
        .is_some_and(|s| s.to_string().contains("no free run of 512 page(s)")));
}

/// Each operation's error goes into the umbrella with `?`, which keeps it
/// as its source.
#[test]
fn errors_convert_for_question_mark() {
    fn zone_twice(p: &Provider) -> Result<(), HugememError> {
        let _a = p.zone_reserve("twice", &AllocRequest::new(1))?;
        let _b = p.zone_reserve("twice", &AllocRequest::new(1))?;
        Ok(())
    }
    fn alloc_zero(p: &Provider) -> Result<(), HugememError> {
        p.alloc(0)?;
        Ok(())
    }
    let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    let e = zone_twice(&p).unwrap_err();
    assert!(matches!(
        &e,
        HugememError::Zone(ZoneError::DuplicateName { name }) if name == "twice"
    ));
    assert_eq!(e.to_string(), "a zone named 'twice' exists already");
    assert!(e.source().is_some());
    let e = alloc_zero(&p).unwrap_err();
    assert!(matches!(e, HugememError::Alloc(AllocError::ZeroLength)));
    assert_eq!(p.mapped_bytes(), 0, "nothing left behind");
    assert!(p.zone_names().is_empty());
    // A zone whose memory cannot be had: the zone error wraps the cause.
    let e = p
        .zone_reserve("big", &AllocRequest::new(2 << 20))
        .unwrap_err();
    assert!(matches!(
        &e,
        ZoneError::Alloc { name, source: AllocError::VaExhausted { .. } } if name == "big"
    ));
    assert!(e.source().is_some());
}
