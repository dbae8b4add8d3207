//! Exhaustion and body integrity: every object handed out once, one more
//! get fails, bodies written by the caller survive a round trip untouched,
//! with every backend, with and without a cache.

mod common;

use std::collections::HashSet;

use common::{anon, get_vec, put_all};
use pktmem_mempool::{BackendKind, GetError};

/// Take every object, one more fails, put all back: full. Bodies written by
/// the caller survive a round trip through the pool untouched.
#[test]
fn exhaust_and_bodies_untouched() {
    for kind in [
        BackendKind::Ring,
        BackendKind::Stack,
        BackendKind::LockFreeStack,
    ] {
        for cache in [0, 32] {
            let n = 1000;
            let pool = anon("exhaust", n, 100, cache, kind);
            assert!(pool.is_full());
            let mut c = pool.cache();
            let mut objs = Vec::new();
            while objs.len() < n {
                let k = 7.min(n - objs.len());
                objs.extend(get_vec(&pool, Some(&mut c), k).unwrap());
            }
            assert_eq!(pool.in_use_count(), n);
            assert!(pool.is_empty());
            assert!(matches!(
                pool.get(&mut c),
                Err(GetError::Empty { requested: 1, .. })
            ));
            assert!(pool.get_default().is_err());
            let distinct: HashSet<_> = objs.iter().copied().collect();
            assert_eq!(distinct.len(), n, "every object handed out once");
            for (i, o) in objs.iter().enumerate() {
                // SAFETY: we own the object, 100 B body (rounded to 104).
                unsafe { std::ptr::write_bytes(o.as_ptr(), (i % 251) as u8, 100) };
            }
            for chunk in objs.chunks(5) {
                // SAFETY: this pool's objects, each returned once.
                unsafe { pool.put_bulk(&mut c, chunk) };
            }
            assert!(pool.is_full(), "counts include the cache");
            // Take them all again: the bodies still carry what we wrote.
            let mut again = get_vec(&pool, Some(&mut c), n / 2).unwrap();
            again.extend(get_vec(&pool, Some(&mut c), n - n / 2).unwrap());
            for (i, o) in objs.iter().enumerate() {
                // SAFETY: we own every object again.
                let body = unsafe { std::slice::from_raw_parts(o.as_ptr(), 100) };
                assert!(
                    body.iter().all(|&b| b == (i % 251) as u8),
                    "pool wrote into body {i}"
                );
            }
            // SAFETY: returned once.
            unsafe { put_all(&pool, None, &again) };
            drop(c);
            pool.flush_default_cache();
            assert!(pool.is_full());
            assert_eq!(pool.audit().unwrap().taken, 0);
        }
    }
}
