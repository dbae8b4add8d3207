//! Criterion benches for the pool, mirroring the reference's mempool perf
//! grid: cores {1, 2} × cache {0, 512} × get bulk {1, 4, 32} × put bulk
//! {1, 4, 32} × keep {32, 128}, reported in objects per second.
//!
//! Each core loops: take `keep` objects in gets of `get` objects, give them
//! back in puts of `put` objects, through its own cache handle (cache 512)
//! or without one (cache 0: the `*_default` family, which for a pool with no
//! cache size is the ring backend). After each configuration the pool is
//! checked full: nothing lost.
//!
//! A second group compares the built-in backends with no cache (every call
//! reaches the backend): ring, stack behind a lock and lock-free stack, on
//! {1, 2} cores, get and put in bulks of 1 or 32, keep 32.
//!
//! A third times creating and dropping a big pool on the global provider:
//! 262,143 objects of 128 + 2176 B (the packet-buffer pool of the
//! `pktmbuf_pool_create_256k` row), cache 256, a shared initialiser writing
//! the first 128 B of each object, populated on 1 thread or on the default
//! count (the cores); the drop gives the hugepages back to the system.

use std::mem::MaybeUninit;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pktmem::hugemem::Provider;
use pktmem::mempool::{BackendKind, Cache, Mempool, Obj};

const MAX_KEEP: usize = 128;
const CACHE_MAX: usize = 512;

/// The pool size of the reference's grid for `cores` cores.
fn pool_size(cores: usize) -> usize {
    cores * (MAX_KEEP + CACHE_MAX * 3) - 1
}

/// Runs `rounds` on `cores` threads at once: the time from the first start
/// to the last end.
fn timed(
    pool: &Mempool,
    cores: usize,
    cache_size: usize,
    (get, put, keep): (usize, usize, usize),
    iters: u64,
) -> Duration {
    let barrier = Barrier::new(cores);
    let start = std::thread::scope(|s| {
        let hs: Vec<_> = (0..cores)
            .map(|_| {
                let barrier = &barrier;
                s.spawn(move || {
                    let mut cache = (cache_size > 0).then(|| pool.cache());
                    barrier.wait();
                    let t = Instant::now();
                    rounds(pool, cache.as_mut(), get, put, keep, iters);
                    t
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).min().unwrap()
    });
    start.elapsed()
}

/// One core's loop: `iters` rounds of take `keep`, give back `keep`.
fn rounds(
    pool: &Mempool,
    mut cache: Option<&mut Cache>,
    get: usize,
    put: usize,
    keep: usize,
    iters: u64,
) {
    let mut buf = [MaybeUninit::<Obj>::uninit(); MAX_KEEP];
    for _ in 0..iters {
        for chunk in buf[..keep].chunks_mut(get) {
            let got = match cache.as_deref_mut() {
                Some(c) => pool.get_bulk(c, chunk),
                None => pool.get_bulk_default(chunk),
            };
            got.expect("pool sized for every core's keep and cache");
        }
        // SAFETY: every element of `buf[..keep]` was initialised by the gets.
        let objs = unsafe { &*(std::ptr::from_ref(&buf[..keep]) as *const [Obj]) };
        for chunk in objs.chunks(put) {
            let chunk = std::hint::black_box(chunk);
            // SAFETY: the objects just taken from this pool, returned once.
            unsafe {
                match cache.as_deref_mut() {
                    Some(c) => pool.put_bulk(c, chunk),
                    None => pool.put_bulk_default(chunk),
                }
            }
        }
    }
}

fn grid(c: &mut Criterion) {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    for cores in [1usize, 2] {
        if cores > cpus {
            eprintln!("mempool bench: {cores} cores asked, {cpus} available; skipping");
            continue;
        }
        for cache_size in [0usize, CACHE_MAX] {
            let pool = Mempool::builder(pool_size(cores), 64)
                .name("bench")
                .cache(cache_size)
                .build_on(Provider::global())
                .expect("bench pool");
            let mut g = c.benchmark_group(format!("mempool/cores{cores}/cache{cache_size}"));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(100))
                .measurement_time(Duration::from_millis(300));
            for keep in [32usize, 128] {
                for get in [1usize, 4, 32] {
                    for put in [1usize, 4, 32] {
                        g.throughput(Throughput::Elements((keep * cores) as u64));
                        let id =
                            BenchmarkId::from_parameter(format!("get{get}_put{put}_keep{keep}"));
                        g.bench_function(id, |b| {
                            b.iter_custom(|iters| {
                                timed(&pool, cores, cache_size, (get, put, keep), iters)
                            });
                        });
                        assert_eq!(pool.avail_count(), pool.size(), "objects lost");
                    }
                }
            }
            g.finish();
        }
    }
}

/// The built-in backends side by side, no cache.
fn backends(c: &mut Criterion) {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let keep = 32;
    for cores in [1usize, 2] {
        if cores > cpus {
            eprintln!("mempool bench: {cores} cores asked, {cpus} available; skipping");
            continue;
        }
        let mut g = c.benchmark_group(format!("mempool_backend/cores{cores}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
        for (name, kind) in [
            ("ring", BackendKind::Ring),
            ("stack", BackendKind::Stack),
            ("lf_stack", BackendKind::LockFreeStack),
        ] {
            let pool = Mempool::builder(pool_size(cores), 64)
                .name("bench-backend")
                .backend_kind(kind)
                .build_on(Provider::global())
                .expect("bench pool");
            for bulk in [1usize, 32] {
                g.throughput(Throughput::Elements((keep * cores) as u64));
                let id = BenchmarkId::new(name, format!("bulk{bulk}"));
                g.bench_function(id, |b| {
                    b.iter_custom(|iters| timed(&pool, cores, 0, (bulk, bulk, keep), iters));
                });
                assert_eq!(pool.avail_count(), pool.size(), "objects lost");
            }
        }
        g.finish();
    }
}

/// Creating (and dropping) the 256k packet-buffer-sized pool.
fn create(c: &mut Criterion) {
    const N: usize = 262_143;
    const ELT: usize = 128 + 2176;
    let build = |threads: usize| {
        Mempool::builder(N, ELT)
            .name("bench-create")
            .cache(256)
            .populate_threads(threads)
            .obj_init_shared(|_, body| {
                for b in &mut body[..128] {
                    b.write(0);
                }
            })
            .build_on(Provider::global())
            .expect("bench pool")
    };
    let mut g = c.benchmark_group("mempool_create_256k");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(2));
    for (name, threads) in [("one_thread", 1usize), ("default_threads", 0)] {
        g.bench_function(BenchmarkId::new("create", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let t = Instant::now();
                    let pool = build(threads);
                    total += t.elapsed();
                    assert!(pool.is_full());
                    drop(pool);
                }
                total
            });
        });
        g.bench_function(BenchmarkId::new("free", name), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let pool = build(threads);
                    let t = Instant::now();
                    drop(pool);
                    total += t.elapsed();
                }
                total
            });
        });
    }
    g.finish();
}

criterion_group!(benches, grid, backends, create);
criterion_main!(benches);
