//! `Obj`: the handle's checked questions (`owns`, `iova`) agree with its
//! header's fast answers, refuse what is not an object, and objects cross
//! threads through a `Ring<Obj>` with no casts.

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use pktmem_mempool::{Iova, Mempool, Obj};
use pktmem_ring::Ring;

#[test]
fn checked_and_unchecked_agree() {
    #[repr(align(64))]
    struct Mem(#[allow(dead_code)] [u8; 64 * 1024]); // the field is the memory the pool uses, never read by name
                                                     // Declared before the pool, so it is freed after it (also on unwind).
    #[allow(clippy::large_stack_arrays)] // 64 KiB, moved into the box at once
    let mut mem = Box::new(Mem([0; 64 * 1024]));
    let pool = Mempool::builder(64, 100).build_empty().unwrap();
    let other = Mempool::builder(8, 100).build_anonymous().unwrap();
    let base = NonNull::from(&mut *mem).cast::<u8>();
    // SAFETY: `mem` outlives the pool and is used only by it.
    let n = unsafe { pool.populate_iova(base, Some(Iova(0x7000_0000)), 64 * 1024, None) }.unwrap();
    assert_eq!(n, 64);
    let mut buf = [MaybeUninit::uninit(); 64];
    let objs = pool.get_bulk_default(&mut buf).unwrap();
    for &o in objs.iter() {
        assert!(pool.owns(o) && !other.owns(o));
        // SAFETY: `o` is an object of `pool`, alive.
        assert!(unsafe { pool.owns_unchecked(o) && !other.owns_unchecked(o) });
        let iova = pool.iova(o).unwrap();
        assert_eq!(
            iova.0 - 0x7000_0000,
            o.as_ptr() as u64 - base.as_ptr() as u64
        );
        // SAFETY: as above.
        assert_eq!(unsafe { o.iova_unchecked() }, Some(iova));
        // SAFETY: as above.
        assert!(unsafe { o.owner_unchecked() }.same_pool(&pool));
        // Addresses inside an object, or in its header, are not objects.
        for off in [1, 8, 63] {
            // SAFETY: inside the object's body (100 B).
            let inside = Obj::from_non_null(unsafe { o.as_non_null().add(off) });
            assert!(!pool.owns(inside) && pool.iova(inside).is_none());
            // SAFETY: inside the object's header (64 B before the body).
            let header = Obj::from_non_null(unsafe { o.as_non_null().sub(off) });
            assert!(!pool.owns(header));
        }
    }
    // Memory outside every chunk.
    let mut x = 0u64;
    let stray = Obj::from_non_null(NonNull::from(&mut x).cast());
    assert!(!pool.owns(stray) && pool.iova(stray).is_none());
    // Anonymous memory: owned, but no IOVA.
    let o = other.get_default().unwrap();
    assert!(other.owns(o) && other.iova(o).is_none());
    // SAFETY: each object returned once.
    unsafe {
        other.put_default(o);
        pool.put_bulk_default(objs);
    }
    assert!(pool.is_full() && other.is_full());
}

/// Objects go to another thread through a ring of `Obj` and come back;
/// every object once, nothing lost.
#[test]
fn objects_cross_threads_through_a_ring() {
    let pool = Mempool::builder(256, 64)
        .cache(32)
        .build_anonymous()
        .unwrap();
    let to_worker = Ring::<Obj>::new(256).unwrap();
    let back = Ring::<Obj>::new(256).unwrap();
    let mut cache = pool.cache();
    let mut buf = [MaybeUninit::uninit(); 256];
    let objs = pool.get_bulk(&mut cache, &mut buf).unwrap();
    for (i, o) in objs.iter().enumerate() {
        // SAFETY: we own the object (64 B body).
        unsafe { o.cast::<u64>().as_ptr().write(i as u64) };
    }
    to_worker.enqueue_bulk(objs).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut sum = 0;
            while let Some(o) = to_worker.dequeue() {
                // SAFETY: the object came through the ring: ours now.
                sum += unsafe { o.cast::<u64>().as_ptr().read() };
                back.enqueue(o).unwrap();
            }
            assert_eq!(sum, (0..256).sum::<u64>());
        });
    });
    let mut out = [MaybeUninit::uninit(); 256];
    let got = back.dequeue_bulk_uninit(&mut out).unwrap();
    let distinct: HashSet<Obj> = got.iter().copied().collect();
    assert_eq!(distinct.len(), 256);
    // SAFETY: every object back, each returned once.
    unsafe { pool.put_bulk(&mut cache, got) };
    drop(cache);
    assert!(pool.is_full());
}
