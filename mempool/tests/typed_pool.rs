//! Typed layer: values dropped exactly once, objects back on drop, the pool
//! kept alive by the boxes; one-call construction on a provider; types
//! aligned above a cache line.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use pktmem_mempool::{BuildError, CreateError, PopulateError, Provider, TypedPool, MAX_ALIGN};

#[test]
fn typed_boxes_drop_once() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct D(#[allow(dead_code)] u64); // the field only gives the value a size
    impl Drop for D {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::SeqCst);
        }
    }
    let pool = TypedPool::<D>::builder(4)
        .name("typed-drop")
        .cache(2)
        .build_anonymous()
        .unwrap();
    let boxes: Vec<_> = (0..4).map(|i| pool.alloc(D(i)).ok().unwrap()).collect();
    let back = pool.alloc(D(9)).err().unwrap(); // empty: value handed back
    drop(back);
    assert_eq!(DROPS.load(Ordering::SeqCst), 1);
    let raw = pool.pool().clone();
    drop(pool);
    std::thread::scope(|s| {
        s.spawn(move || drop(boxes)).join().unwrap(); // boxes are Send
    });
    assert_eq!(DROPS.load(Ordering::SeqCst), 5);
    raw.flush_default_cache();
    assert!(raw.is_full());
    let t = TypedPool::<String>::builder(2).build_anonymous().unwrap();
    let s = t.alloc("hello".to_string()).unwrap();
    assert_eq!(s.into_inner(), "hello");
    assert!(t.pool().is_full());
}

/// One call on a provider; the boxes know their IOVA when the provider's
/// memory has one.
#[test]
fn typed_pool_on_a_provider() {
    let provider = Provider::builder().quiet(true).build().unwrap();
    let pool = TypedPool::<[u64; 8]>::builder(100)
        .cache(8)
        .build_on(&provider)
        .unwrap();
    let mut cache = pool.pool().cache();
    let b = pool.alloc_in(&mut cache, [3; 8]).unwrap();
    assert_eq!(b.iter().sum::<u64>(), 24);
    assert_eq!(b.iova(), provider.virt2iova(b.obj().as_ptr()));
    assert!(pool.pool().owns(b.obj()));
    drop(b);
    drop(cache);
    pool.pool().flush_default_cache();
    assert!(pool.pool().is_full());
}

/// Alignment above a cache line is honoured up to a page; above that the
/// error names the alignment, not the size.
#[test]
fn typed_alignment() {
    #[repr(align(128))]
    struct A128(#[allow(dead_code)] [u8; 128]); // the field gives the value its size
    #[repr(align(4096))]
    struct A4096(#[allow(dead_code)] u8);
    #[repr(align(8192))]
    struct A8192(#[allow(dead_code)] u8);

    let pool = TypedPool::<A128>::builder(16).build_anonymous().unwrap();
    let boxes: Vec<_> = (0..16)
        .map(|_| pool.alloc(A128([1; 128])).ok().unwrap())
        .collect();
    for b in &boxes {
        assert_eq!(b.obj().as_ptr().align_offset(128), 0);
    }
    drop(boxes);

    // Page alignment: a page of header before each body, so the objects
    // need IOVA-contiguous memory (or a pool that needs none): on a
    // provider of hugepages each object sits inside one 2 MiB page.
    let provider = Provider::builder().quiet(true).build().unwrap();
    match TypedPool::<A4096>::builder(8).build_on(&provider) {
        Ok(pool) => {
            let b = pool.alloc(A4096(1)).ok().unwrap();
            assert_eq!(b.obj().as_ptr().align_offset(4096), 0);
        }
        // Small pages (no hugepages reserved) cannot hold an object of two
        // pages unless they are IOVA-contiguous, which pages from the page
        // map seldom are: a typed error says which.
        Err(e) => {
            common::skip(format_args!(
                "typed_alignment: no hugepages, so no 4096-aligned typed pool on a provider; checking its error instead"
            ));
            assert!(
                matches!(
                    &e,
                    CreateError::Populate(
                        PopulateError::ObjectLargerThanPage { .. }
                            | PopulateError::OutOfMemory { .. }
                    )
                ),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(
                msg.contains("does not fit in a page") || msg.contains("IOVA-contiguous"),
                "{msg}"
            );
        }
    }

    let e = TypedPool::<A8192>::builder(4)
        .build_anonymous()
        .unwrap_err();
    assert!(
        matches!(
            e,
            CreateError::Build(BuildError::BadAlign { align: 8192, .. })
        ),
        "{e:?}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("alignment 8192 B") && msg.contains(&MAX_ALIGN.to_string()),
        "{msg}"
    );
}
