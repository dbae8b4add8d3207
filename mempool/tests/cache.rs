//! `Cache`: counts include cached objects, flush returns them, the refill
//! and flush policy, a cache of another pool is not used, and a cache
//! handle moves between threads.

mod common;

use common::{anon, get_vec};
use pktmem_mempool::{BackendKind, Cache, Mempool, PoolBox, TypedPool};

/// Counts include cached objects; flush returns them; cache policy bounds.
#[test]
fn cache_counts_and_policy() {
    let pool = anon("cache-policy", 2048, 64, 0, BackendKind::Ring);
    let mut c = pool.cache_with_size(256).unwrap();
    let one = pool.get(&mut c).unwrap();
    // A miss refills what is missing plus size/2.
    assert_eq!(c.len(), 128);
    assert_eq!(pool.avail_count(), 2047);
    // SAFETY: returned once.
    unsafe { pool.put(&mut c, one) };
    assert_eq!(c.len(), 129);
    // Fill past the size: the oldest size/2 go to the backend.
    let objs = get_vec(&pool, None, 200).unwrap();
    // SAFETY: returned once.
    unsafe { pool.put_bulk(&mut c, &objs[..127]) };
    assert_eq!(c.len(), 256);
    // SAFETY: returned once.
    unsafe { pool.put_bulk(&mut c, &objs[127..128]) };
    assert_eq!(
        c.len(),
        129,
        "flushed the oldest 128, kept 128 + the new one"
    );
    // A get larger than the cache empties it and takes the rest from the
    // backend; a put larger than the cache goes to the backend.
    let big = get_vec(&pool, Some(&mut c), 300).unwrap();
    assert_eq!(c.len(), 0);
    assert_eq!(pool.in_use_count(), 300 + 72);
    // SAFETY: returned once.
    unsafe { pool.put_bulk(&mut c, &big) };
    assert_eq!(c.len(), 0);
    // SAFETY: returned once.
    unsafe { pool.put_bulk(&mut c, &objs[128..]) };
    assert_eq!(pool.avail_count(), 2048);
    c.flush();
    assert_eq!(c.len(), 0);
    assert_eq!(pool.avail_count(), 2048);
    // A cache of another pool is not used (backend used).
    let other = anon("cache-other", 16, 64, 0, BackendKind::Ring);
    let mut oc = other.cache_with_size(8).unwrap();
    let one = pool.get(&mut oc).unwrap();
    assert!(pool.owns(one) && !other.owns(one));
    assert_eq!(oc.len(), 0);
    // SAFETY: returned once.
    unsafe { pool.put(&mut oc, one) };
    assert_eq!(oc.len(), 0);
    assert!(pool.is_full());
    assert!(other.is_full());
}

/// A cache too large for the pool is a typed error naming the numbers.
#[test]
fn cache_size_is_checked() {
    let pool = anon("cache-size", 100, 64, 0, BackendKind::Ring);
    let e = pool.cache_with_size(101).unwrap_err();
    assert_eq!(
        e,
        pktmem_mempool::CacheError::TooLarge {
            name: "cache-size".into(),
            size: 101,
            max: 100
        }
    );
    assert!(e.to_string().contains("101") && e.to_string().contains("100"));
    assert_eq!(pool.cache_with_size(0).unwrap().size(), 0);
    // A cache of size 0 still serves, from the backend.
    let mut c = pool.cache_with_size(0).unwrap();
    let o = pool.get(&mut c).unwrap();
    // SAFETY: returned once.
    unsafe { pool.put(&mut c, o) };
    assert!(c.is_empty() && pool.is_full());
}

/// A cache handle moves between threads; the pool and typed boxes are
/// shareable. (That a cache cannot be shared is a `compile_fail` doctest.)
#[test]
fn auto_traits() {
    fn send<T: Send>() {}
    fn send_sync<T: Send + Sync>() {}
    send::<Cache>();
    send_sync::<Mempool>();
    send_sync::<TypedPool<u64>>();
    send_sync::<PoolBox<u64>>();
    send_sync::<pktmem_mempool::Obj>();
    let pool = anon("moves", 64, 64, 16, BackendKind::Ring);
    let mut cache = pool.cache();
    let o = pool.get(&mut cache).unwrap();
    let p2 = pool.clone();
    let cache = std::thread::spawn(move || {
        let mut cache = cache;
        // SAFETY: returned once, through the cache that moved here.
        unsafe { p2.put(&mut cache, o) };
        cache
    })
    .join()
    .unwrap();
    assert_eq!(pool.avail_count(), 64);
    drop(cache);
    assert!(pool.is_full());
}
