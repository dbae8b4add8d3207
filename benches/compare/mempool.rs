//! The `mempool_*` rows of `docs/benchmarks.md`: a pool of 8191 objects
//! of 64 B (from the hugepage provider; it says on stderr when it falls back
//! to small pages), get bulk then put bulk, `iters / 4` rounds.
//!
//! The cache rows use an explicit [`Cache`] handle: the equivalent of the
//! reference's per-lcore cache that `rte_mempool_get_bulk` uses implicitly.
//! The no-cache row uses the `*_default` family on a pool with no cache
//! size: straight to the MP/MC ring backend.

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::time::Instant;

use pktmem::hugemem::Provider;
use pktmem::mempool::{Cache, Mempool, Obj};

use crate::{ns_per, row};

const POOL_SIZE: usize = 8191;

fn pool(name: &str, cache: usize) -> Mempool {
    Mempool::builder(POOL_SIZE, 64)
        .name(name)
        .cache(cache)
        .build_on(Provider::global())
        .unwrap_or_else(|e| {
            eprintln!("compare: mempool {name}: {e}");
            std::process::exit(1)
        })
}

/// One row: `iters / 4` rounds of get `N`, put `N` (the reference's loop,
/// whose `n` is a constant at each call site too).
#[inline(never)]
fn run_row<const N: usize>(name: &str, pool: &Mempool, mut cache: Option<&mut Cache>, iters: u64) {
    let mut buf = [MaybeUninit::<Obj>::uninit(); N];
    let rounds = iters / 4;
    let start = Instant::now();
    for _ in 0..rounds {
        // `black_box` hides the array's contents, not its length: `N` stays
        // a constant, as `n` is in the reference's loop.
        let o: &mut [MaybeUninit<Obj>; N] = black_box(&mut buf);
        let got = match cache.as_deref_mut() {
            Some(c) => pool.get_bulk(c, o),
            None => pool.get_bulk_default(o),
        };
        let Ok(objs) = got else {
            eprintln!("compare: {name}: get failed");
            std::process::exit(1);
        };
        // Back to an array reference (the length is `N` already: no check
        // survives), hidden like the reference's pointer table.
        let objs: &[Obj; N] = black_box((&*objs).try_into().expect("N objects"));
        // SAFETY: the objects just taken from this pool, returned once.
        unsafe {
            match cache.as_deref_mut() {
                Some(c) => pool.put_bulk(c, objs),
                None => pool.put_bulk_default(objs),
            }
        }
    }
    row(name, ns_per(start, rounds * N as u64), "ns/obj");
    // The measured structure is checked: nothing lost, headers intact.
    if let Some(c) = cache {
        c.flush();
    }
    assert_eq!(pool.avail_count(), POOL_SIZE, "{name}: objects lost");
    pool.audit().expect("audit after the loop");
}

/// Prints the three mempool rows (on cpu 0, where `main` pinned the
/// process, as the reference's main lcore is).
pub fn run(iters: u64) {
    let p = pool("cmp_cache", 256);
    let mut c = p.cache();
    run_row::<32>("mempool_cache_bulk32", &p, Some(&mut c), iters);
    run_row::<1>("mempool_cache_single", &p, Some(&mut c), iters);
    drop(c);
    let p = pool("cmp_nocache", 0);
    run_row::<32>("mempool_nocache_bulk32", &p, None, iters);
}
