//! `obj_init` runs once on every populated object, whichever way the pool
//! is populated (one-call builds, or `build_empty` then any `populate_*`);
//! the private area is zeroed and sized.

use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use pktmem_mempool::{Iova, Mempool, MempoolBuilder, Provider};

/// A builder whose `obj_init` writes each object's index into its body and
/// counts its calls.
fn counting(n: usize, count: &Arc<AtomicUsize>) -> MempoolBuilder {
    let c2 = count.clone();
    Mempool::builder(n, 64).obj_init(move |o, body| {
        assert_eq!(body.len(), 64);
        for (b, v) in body.iter_mut().zip((o.index as u64).to_ne_bytes()) {
            b.write(v);
        }
        c2.fetch_add(1, Ordering::SeqCst);
    })
}

/// Takes every object and checks each carries a distinct index `0..n`.
fn indices_written(pool: &Mempool) {
    let n = pool.size();
    let mut buf = vec![MaybeUninit::uninit(); n];
    let objs = pool.get_bulk_default(&mut buf).unwrap();
    let mut idx: Vec<u64> = objs
        .iter()
        // SAFETY: we own the objects; `obj_init` wrote their first 8 bytes.
        .map(|o| unsafe { o.cast::<u64>().as_ptr().read() })
        .collect();
    idx.sort_unstable();
    assert_eq!(idx, (0..n as u64).collect::<Vec<_>>());
    // SAFETY: returned once.
    unsafe { pool.put_bulk_default(objs) };
}

/// `obj_init` runs once per object; private area is zeroed and sized.
#[test]
fn obj_init_and_private_area() {
    let count = Arc::new(AtomicUsize::new(0));
    let pool = counting(100, &count)
        .private_size(100)
        .build_anonymous()
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 100);
    assert_eq!(pool.private_size(), 100);
    // SAFETY: 100 bytes of private area, zeroed.
    let p = unsafe { std::slice::from_raw_parts(pool.private_area().as_ptr(), 100) };
    assert!(p.iter().all(|&b| b == 0));
    indices_written(&pool);
}

/// `build_empty` then several `populate_*` calls: every placed object is
/// initialised once, indices continuing across chunks.
#[test]
fn obj_init_runs_for_build_empty_then_populate() {
    #[repr(align(64))]
    struct Mem(#[allow(dead_code)] [u8; 128 * 30]); // the field is the memory the pool uses, never read by name
                                                    // Declared before the pool, so it is freed after it (also on unwind).
    let mut mem = Box::new(Mem([0; 128 * 30]));
    let count = Arc::new(AtomicUsize::new(0));
    let pool = counting(100, &count).build_empty().unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 0);
    // SAFETY: `mem` outlives the pool and is used only by it.
    let n = unsafe {
        pool.populate_iova(
            NonNull::from(&mut *mem).cast(),
            Some(Iova(0x1000)),
            128 * 30,
            None,
        )
    }
    .unwrap();
    assert_eq!(n, 30);
    assert_eq!(count.load(Ordering::SeqCst), 30);
    assert_eq!(pool.populate_anonymous().unwrap(), 70);
    assert_eq!(count.load(Ordering::SeqCst), 100);
    indices_written(&pool);
}

/// The same on a provider, empty pool populated from it.
#[test]
fn obj_init_runs_for_populate_from_provider() {
    let provider = Provider::builder().quiet(true).build().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let pool = counting(500, &count).build_empty().unwrap();
    assert_eq!(pool.populate_from_provider(&provider).unwrap(), 500);
    assert_eq!(count.load(Ordering::SeqCst), 500);
    indices_written(&pool);
    let count = Arc::new(AtomicUsize::new(0));
    let pool = counting(500, &count).build_on(&provider).unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 500);
    indices_written(&pool);
}
