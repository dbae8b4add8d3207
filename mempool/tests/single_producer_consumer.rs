//! Single-producer / single-consumer ring backend (the caller promises no
//! concurrent puts, resp. gets): same behaviour on one thread.

use std::collections::HashSet;
use std::mem::MaybeUninit;

use pktmem_mempool::Mempool;

#[test]
fn single_producer_single_consumer_backend() {
    // SAFETY: this pool is used by this thread only.
    let b = unsafe {
        Mempool::builder(256, 64)
            .name("spsc")
            .cache(16)
            .single_producer()
            .single_consumer()
    };
    let pool = b.build_anonymous().unwrap();
    let mut objs = Vec::new();
    let mut buf = [MaybeUninit::uninit(); 10];
    while objs.len() < 256 {
        let k = 10.min(256 - objs.len());
        objs.extend_from_slice(pool.get_bulk_default(&mut buf[..k]).unwrap());
    }
    assert!(pool.get_default().is_err());
    let distinct: HashSet<_> = objs.iter().copied().collect();
    assert_eq!(distinct.len(), 256);
    for chunk in objs.chunks(3) {
        // SAFETY: returned once, from this thread only.
        unsafe { pool.put_bulk_default(chunk) };
    }
    pool.flush_default_cache();
    assert!(pool.is_full());
    pool.audit().unwrap();
    // And through an explicit cache (refills hit the single-consumer ring).
    let mut cache = pool.cache();
    let mut big = [MaybeUninit::uninit(); 40];
    let got = pool.get_bulk(&mut cache, &mut big).unwrap().to_vec();
    // SAFETY: returned once, from this thread only.
    unsafe { pool.put_bulk(&mut cache, &got) };
    drop(cache);
    assert!(pool.is_full());
}
