//! Population from caller memory: too-small chunks, free callbacks, merging
//! of IOVA-consecutive pages, no straddling across runs, no-IO transitions,
//! objects larger than a page.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pktmem_mempool::{
    calc_mem_size, calc_obj_size, ChunkFree, CreateError, Iova, Mempool, PopulateError, CACHE_LINE,
};

#[repr(align(4096))]
struct Pages([u8; 4096 * 8]);

/// Populate from caller memory: too-small chunk, free callbacks, merging of
/// IOVA-consecutive pages, no straddling across runs, no-IO transitions.
#[test]
fn populate_rules_and_no_io() {
    let frees = Arc::new(AtomicUsize::new(0));
    let fcb = |f: &Arc<AtomicUsize>| -> ChunkFree {
        let f = f.clone();
        Box::new(move || {
            f.fetch_add(1, Ordering::SeqCst);
        })
    };
    // Freed at the end, once the pool that uses it is gone.
    #[allow(clippy::large_stack_arrays)] // 32 KiB, moved into the box at once
    let mem: *mut Pages = Box::into_raw(Box::new(Pages([0; 4096 * 8])));
    // SAFETY: `mem` was just allocated and nothing else borrows it.
    let base = NonNull::from(unsafe { &mut (*mem).0 }).cast::<u8>();
    let va = base.as_ptr() as usize;
    let pool = Mempool::builder(1000, 1000)
        .name("virt")
        .build_empty()
        .unwrap();
    let sz = pool.obj_size();
    assert_eq!(sz, calc_obj_size(1000, CACHE_LINE).unwrap());
    assert!(pool.is_non_io(), "empty pool is no-IO");
    // Too small for one object: zero, callback run at once, pool unchanged.
    // SAFETY: `mem` outlives the pool and is used by it only.
    let n = unsafe {
        pool.populate_iova(
            base,
            Some(Iova(0x10_0000)),
            sz.total_size - 1,
            Some(fcb(&frees)),
        )
    };
    assert_eq!(n.unwrap(), 0);
    assert_eq!(frees.load(Ordering::SeqCst), 1);
    assert!(pool.is_non_io());
    // 8 pages: IOVAs 0,1,2 consecutive; 3 alone; 4 none; 5,6,7 consecutive.
    let iova_of = |a: usize| {
        let i = (a - va) / 4096;
        match i {
            0..=2 => Some(Iova(0x100_0000 + i as u64 * 4096)),
            3 => Some(Iova(0x900_0000)),
            4 => None,
            _ => Some(Iova(0x500_0000 + (i as u64 - 5) * 4096)),
        }
    };
    // SAFETY: `mem` outlives the pool; the lookup is our model.
    let n = unsafe {
        pool.populate_virt(
            base,
            4096 * 8,
            4096,
            |p| iova_of(p.as_ptr() as usize),
            Some(fcb(&frees)),
        )
    }
    .unwrap();
    assert!(
        !pool.is_non_io(),
        "a chunk with IOVAs makes the pool usable for IO"
    );
    let mut chunks = Vec::new();
    pool.for_each_chunk(|c| chunks.push((c.addr.as_ptr() as usize - va, c.iova, c.len, c.objects)));
    // Runs: pages 0-2 (12 KiB: 11 objects of 1088 B), 3 (3), 4 (3), 5-7 (11).
    assert_eq!(chunks.len(), 4, "{chunks:?}");
    assert_eq!(chunks[0], (0, Some(Iova(0x100_0000)), 3 * 4096, 11));
    assert_eq!(chunks[1].1, Some(Iova(0x900_0000)));
    assert_eq!(chunks[2].1, None);
    assert_eq!(n, 11 + 3 + 3 + 11);
    assert_eq!(pool.populated(), n);
    let mut seen = 0;
    pool.for_each_obj(|o| {
        let a = o.obj.as_ptr() as usize;
        let first = (a - sz.header_size) / 4096;
        let last = (a + sz.elt_size + sz.trailer_size - 1) / 4096;
        // Objects straddle pages only inside IOVA-consecutive runs.
        let run = |p: usize| match p - va / 4096 {
            0..=2 => 0,
            3 => 1,
            4 => 2,
            _ => 3,
        };
        assert_eq!(run(first), run(last), "object {} crosses runs", o.index);
        let expect = iova_of(a).map(|i| Iova(i.0 + (a % 4096) as u64));
        assert_eq!(o.iova, expect, "object {}", o.index);
        // SAFETY: a placed object of a live pool.
        assert_eq!(unsafe { o.obj.iova_unchecked() }, expect);
        // The checked lookup agrees, without reading the header.
        assert_eq!(pool.iova(o.obj), expect);
        assert!(pool.owns(o.obj));
        assert_eq!(o.index, seen);
        seen += 1;
    });
    assert_eq!(seen, n);
    assert_eq!(pool.avail_count(), n);
    assert_eq!(
        frees.load(Ordering::SeqCst),
        1,
        "kept until the pool is freed"
    );
    drop(pool);
    assert_eq!(frees.load(Ordering::SeqCst), 2, "freed with the pool");
    // SAFETY: from `Box::into_raw` above; the pool that used it is dropped.
    drop(unsafe { Box::from_raw(mem) });

    // A pool without IOVA contiguity stays no-IO and may straddle pages.
    let pool = Mempool::builder(10, 3000)
        .name("nc")
        .no_iova_contig()
        .build_anonymous()
        .unwrap();
    assert!(pool.is_non_io());
    assert!(!pool.tracks_iova());
    assert!(pool.is_full());
    // Sizes helpers agree with what population used.
    assert_eq!(calc_mem_size(3, 1088, 4096), Some(3 * 1088));
    assert_eq!(calc_mem_size(1, 8192, 4096), None);
}

/// An object larger than a page needs IOVA contiguity: anonymous memory
/// (no IOVA) cannot hold it, unless the pool needs no contiguity.
#[test]
fn object_larger_than_page() {
    let r = Mempool::builder(4, 10000).name("big").build_anonymous();
    let Err(CreateError::Populate(e @ PopulateError::ObjectLargerThanPage { .. })) = r else {
        panic!("{r:?}");
    };
    let msg = e.to_string();
    let total = calc_obj_size(10000, CACHE_LINE)
        .unwrap()
        .total_size
        .to_string();
    assert!(
        msg.contains("'big'") && msg.contains(&total) && msg.contains("4096"),
        "{msg}"
    );
    let p = Mempool::builder(4, 10000)
        .name("big2")
        .no_iova_contig()
        .build_anonymous()
        .unwrap();
    assert!(p.is_full());
}

/// A page size that is not a power of two is refused, and the chunk's
/// free callback still runs (nothing leaks).
#[test]
fn bad_page_size_frees_the_chunk() {
    // Declared before the pool, so it is freed after it (also on unwind).
    let mut mem = vec![0u8; 8192];
    let pool = Mempool::builder(4, 64).build_empty().unwrap();
    let freed = Arc::new(AtomicUsize::new(0));
    let f = freed.clone();
    // SAFETY: `mem` outlives the pool and is used only by it.
    let r = unsafe {
        pool.populate_virt(
            NonNull::from(&mut mem[..]).cast(),
            8192,
            3000,
            |_| None,
            Some(Box::new(move || {
                f.fetch_add(1, Ordering::SeqCst);
            })),
        )
    };
    assert!(matches!(
        r,
        Err(PopulateError::BadPageSize {
            page_size: 3000,
            ..
        })
    ));
    assert_eq!(freed.load(Ordering::SeqCst), 1);
    assert_eq!(pool.populated(), 0);
}
