//! The `mbuf_*` and `pktmbuf_pool_*` rows of `docs/benchmarks.md`, each the
//! reference's loop: a packet pool of 8191 mbufs, cache 256, data room
//! 2048 + 128 (headroom included), on the process-wide provider (hugepages
//! when present; the provider says on stderr when it falls back to small
//! pages).
//!
//! The reference's `rte_pktmbuf_alloc`/`free` use the calling lcore's cache
//! implicitly; here that cache is an explicit [`Cache`] handle, passed to
//! every call. After each row the measured pool is checked: every mbuf back
//! (cached ones count as available), headers intact.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use pktmem::hugemem::{Iova, Provider};
use pktmem::mbuf::{ExtBuf, PktPool};
use pktmem::mempool::Cache;

use crate::{ns_per, row};

const POOL_SIZE: usize = 8191;
const CACHE: usize = 256;
const DATA_ROOM: usize = 2048 + 128;
const BIG_POOL: usize = 262_143;

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("compare/mbuf: {what}: {e}");
    std::process::exit(1)
}

/// The measured pool after a row: every mbuf back, headers intact.
fn check_full(name: &str, pool: &PktPool) {
    assert!(
        pool.is_full(),
        "{name}: mbufs lost ({} of {} available)",
        pool.avail_count(),
        pool.size()
    );
    pool.mempool().audit().expect("audit after the loop");
}

/// `mbuf_alloc_free_single`: alloc 1, free 1, `iters` times.
#[inline(never)]
fn alloc_free_single(pool: &PktPool, cache: &mut Cache, iters: u64) {
    let start = Instant::now();
    for _ in 0..iters {
        let m = pool
            .alloc(cache)
            .unwrap_or_else(|e| fail("mbuf_alloc_free_single: alloc", e));
        pool.free(cache, m);
    }
    row("mbuf_alloc_free_single", ns_per(start, iters), "ns/mbuf");
}

/// `mbuf_alloc_free_bulk32`: alloc 32 (all or nothing), free the 32,
/// `iters / 32` times.
#[inline(never)]
fn alloc_free_bulk32(pool: &PktPool, cache: &mut Cache, iters: u64) {
    let rounds = iters / 32;
    let start = Instant::now();
    for _ in 0..rounds {
        let ms = pool
            .alloc_array::<32>(cache)
            .unwrap_or_else(|e| fail("mbuf_alloc_free_bulk32: alloc", e));
        pool.free_array(cache, ms);
    }
    row(
        "mbuf_alloc_free_bulk32",
        ns_per(start, rounds * 32),
        "ns/mbuf",
    );
}

/// `mbuf_clone_free`: an indirect mbuf from the same pool pointing at a
/// direct one holding 1000 B, freed again, `iters` times.
#[inline(never)]
fn clone_free(pool: &PktPool, cache: &mut Cache, iters: u64) {
    let mut d = pool
        .alloc(cache)
        .unwrap_or_else(|e| fail("mbuf_clone_free: alloc", e));
    d.append(1000)
        .unwrap_or_else(|e| fail("mbuf_clone_free: append", e))
        .fill(0x5a);
    let start = Instant::now();
    for _ in 0..iters {
        let c = d
            .clone_in_cache(pool, cache)
            .unwrap_or_else(|e| fail("mbuf_clone_free: clone", e));
        pool.free(cache, c);
    }
    row("mbuf_clone_free", ns_per(start, iters), "ns/clone");
    assert_eq!(d.refcnt(), 1, "mbuf_clone_free: the direct mbuf's refcount");
    assert!(
        d.data().iter().all(|&b| b == 0x5a),
        "mbuf_clone_free: data changed"
    );
    pool.free(cache, d);
}

/// A 4096-byte buffer, aligned as the reference's.
#[repr(C, align(64))]
struct ExtMem([u8; 4096]);

/// Times the external buffer's callback ran.
static EXT_FREED: AtomicUsize = AtomicUsize::new(0);

/// `mbuf_extbuf_attach_detach`: a 4096 B buffer whose shared info sits at
/// its tail, kept referenced across the loop by the `ExtBuf` held here; per
/// iteration a new reference is attached to an mbuf and detached again.
#[inline(never)]
fn extbuf_attach_detach(pool: &PktPool, cache: &mut Cache, iters: u64) {
    let mut mem = Box::new(ExtMem([0; 4096]));
    let addr = NonNull::from(&mut mem.0).cast::<u8>();
    // SAFETY: `mem` is only used through the ExtBuf from here on, and
    // outlives it (dropped after the ExtBuf and the mbuf below); the
    // callback frees nothing.
    let mut ext = unsafe {
        ExtBuf::from_raw_tail_shinfo(addr, 4096, Some(Iova(0x1000)), |_| {
            EXT_FREED.fetch_add(1, Ordering::Relaxed);
        })
    }
    .unwrap_or_else(|e| fail("mbuf_extbuf_attach_detach: shared info", e));
    let mut m = pool
        .alloc(cache)
        .unwrap_or_else(|e| fail("mbuf_extbuf_attach_detach: alloc", e));
    let start = Instant::now();
    for _ in 0..iters {
        if let Err(e) = m.attach_extbuf(ext.clone_mut()) {
            fail("mbuf_extbuf_attach_detach: attach", e);
        }
        m.detach();
    }
    row("mbuf_extbuf_attach_detach", ns_per(start, iters), "ns/pair");
    assert!(m.is_direct(), "mbuf_extbuf_attach_detach: still attached");
    assert_eq!(
        ext.refcnt(),
        1,
        "mbuf_extbuf_attach_detach: shared refcount"
    );
    pool.free(cache, m);
    drop(ext);
    assert_eq!(
        EXT_FREED.load(Ordering::Relaxed),
        1,
        "mbuf_extbuf_attach_detach: the callback runs once, at the last reference"
    );
    drop(mem);
}

/// `pktmbuf_pool_create_256k` and `pktmbuf_pool_free_256k`: a pool of
/// 262,143 mbufs (every object initialised), then dropping it (its memory
/// back to the system).
fn pool_create_free(provider: &Provider) {
    let mapped_before = provider.info().mapped;
    let start = Instant::now();
    let big = PktPool::builder(BIG_POOL)
        .name("cmp_mbuf_big")
        .cache(CACHE)
        .data_room(DATA_ROOM)
        .build_on(provider)
        .unwrap_or_else(|e| fail("pktmbuf_pool_create_256k", e));
    row(
        "pktmbuf_pool_create_256k",
        start.elapsed().as_nanos() as f64 / 1e6,
        "ms/op",
    );
    assert_eq!(big.size(), BIG_POOL);
    check_full("pktmbuf_pool_create_256k", &big);
    let start = Instant::now();
    drop(big);
    row(
        "pktmbuf_pool_free_256k",
        start.elapsed().as_nanos() as f64 / 1e6,
        "ms/op",
    );
    let mapped_after = provider.info().mapped;
    if mapped_after > mapped_before {
        eprintln!(
            "compare/mbuf: pktmbuf_pool_free_256k: the provider still maps {} B more than before the pool",
            mapped_after - mapped_before
        );
    }
}

/// Prints the six rows (on cpu 0, where `main` pinned the process, as the
/// reference's main lcore is).
pub fn run(iters: u64) {
    let provider = Provider::global();
    let pool = PktPool::builder(POOL_SIZE)
        .name("cmp_mbuf")
        .cache(CACHE)
        .data_room(DATA_ROOM)
        .build_on(provider)
        .unwrap_or_else(|e| fail("pool", e));
    let mut cache = pool.cache();

    alloc_free_single(&pool, &mut cache, iters);
    check_full("mbuf_alloc_free_single", &pool);
    alloc_free_bulk32(&pool, &mut cache, iters);
    check_full("mbuf_alloc_free_bulk32", &pool);
    clone_free(&pool, &mut cache, iters);
    check_full("mbuf_clone_free", &pool);
    extbuf_attach_detach(&pool, &mut cache, iters);
    check_full("mbuf_extbuf_attach_detach", &pool);
    drop(cache);
    check_full("mbuf rows", &pool);
    drop(pool);

    pool_create_free(provider);
}
