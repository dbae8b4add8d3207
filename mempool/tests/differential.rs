//! Differential test: random gets and puts of random sizes through a cache
//! and without one, against a model of which objects are out.

mod common;

use std::collections::HashSet;

use common::{anon, get_vec, put_all};
use pktmem_mempool::{BackendKind, GetError, Obj, CACHE_MAX_SIZE};

#[test]
fn differential_against_model() {
    let n = 300;
    let pool = anon("diff", n, 64, 64, BackendKind::Ring);
    let mut cache = pool.cache();
    let mut out: Vec<Obj> = Vec::new();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let roll = next();
        let k = (roll % 80) as usize + 1;
        let use_cache = roll & 0x100 != 0;
        if roll & 0x200 != 0 {
            let res = get_vec(&pool, use_cache.then_some(&mut cache), k);
            match res {
                Ok(got) => {
                    assert_eq!(got.len(), k);
                    out.extend_from_slice(&got);
                }
                Err(GetError::Empty { .. }) => {
                    // All or nothing: it failed only if too few were free
                    // somewhere it could reach; nothing was taken.
                    assert!(n - out.len() < k + 2 * CACHE_MAX_SIZE);
                }
                Err(e) => panic!("{e}"),
            }
        } else {
            let k = k.min(out.len());
            let at = (next() as usize) % (out.len() - k + 1);
            let give: Vec<_> = out.drain(at..at + k).collect();
            // SAFETY: objects we took from this pool, returned once.
            unsafe { put_all(&pool, use_cache.then_some(&mut cache), &give) };
        }
        assert_eq!(pool.in_use_count(), out.len());
        assert!(cache.len() <= cache.size());
    }
    let distinct: HashSet<Obj> = out.iter().copied().collect();
    assert_eq!(distinct.len(), out.len());
    // SAFETY: returned once.
    unsafe { put_all(&pool, None, &out) };
    assert!(pool.is_full());
}
