//! Criterion benches for packet buffers: the operations of the compare
//! rows (alloc/free single and bulk, clone/free, external buffer
//! attach/detach) and the data operations on chains (chain, read across a
//! segment boundary, linearize), on a pool of 8191 mbufs with a cache of
//! 256 and the default data room (2048 + 128 B headroom), through an
//! explicit cache handle. After each bench the pool is checked full:
//! nothing lost.

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use pktmem::hugemem::{Iova, Provider};
use pktmem::mbuf::{ExtBuf, Mbuf, PktPool};
use pktmem::mempool::Cache;

const POOL_SIZE: usize = 8191;

fn pool() -> PktPool {
    PktPool::builder(POOL_SIZE)
        .name("bench_mbuf")
        .cache(256)
        .data_room(2048 + 128)
        .build_on(Provider::global())
        .expect("bench pool")
}

fn check_full(what: &str, pool: &PktPool) {
    assert!(
        pool.is_full(),
        "{what}: mbufs lost ({} of {} available)",
        pool.avail_count(),
        pool.size()
    );
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_secs(1));
    g
}

/// A chain of `segs` segments of `len` bytes each (byte `i` of the packet
/// is `i as u8`).
fn chain_of(pool: &PktPool, cache: &mut Cache, segs: usize, len: usize) -> Mbuf {
    let mut head = pool.alloc(cache).expect("alloc");
    let mut next = 0u8;
    let mut fill = |b: &mut [u8]| {
        for x in b {
            *x = next;
            next = next.wrapping_add(1);
        }
    };
    fill(head.append(len).expect("append"));
    for _ in 1..segs {
        let mut s = pool.alloc(cache).expect("alloc");
        fill(s.append(len).expect("append"));
        head.chain(s).expect("chain");
    }
    head
}

fn alloc_free(c: &mut Criterion) {
    let pool = pool();
    let mut cache = pool.cache();
    let mut g = group(c, "mbuf/alloc_free");

    g.throughput(Throughput::Elements(1));
    g.bench_function("single", |b| {
        b.iter(|| {
            let m = pool.alloc(&mut cache).expect("alloc");
            pool.free(&mut cache, black_box(m));
        });
    });
    check_full("alloc_free/single", &pool);

    g.throughput(Throughput::Elements(32));
    g.bench_function("array32", |b| {
        b.iter(|| {
            let ms = pool.alloc_array::<32>(&mut cache).expect("alloc");
            pool.free_bulk(&mut cache, black_box(ms));
        });
    });
    check_full("alloc_free/array32", &pool);

    g.bench_function("bulk32_slice", |b| {
        let mut buf: [MaybeUninit<Mbuf>; 32] = [const { MaybeUninit::uninit() }; 32];
        b.iter(|| {
            let ms = pool.alloc_bulk(&mut cache, &mut buf).expect("alloc");
            // SAFETY: the mbufs live in `buf`, a `MaybeUninit` array that
            // does not drop them, and are not used after this.
            unsafe { pool.free_bulk_in_place(&mut cache, black_box(ms)) };
        });
    });
    check_full("alloc_free/bulk32_slice", &pool);

    g.throughput(Throughput::Elements(1));
    g.bench_function("default_cache_single", |b| {
        b.iter(|| drop(black_box(pool.alloc_default().expect("alloc"))));
    });
    pool.mempool().flush_default_cache();
    check_full("alloc_free/default_cache_single", &pool);
    g.finish();
}

fn clone_attach(c: &mut Criterion) {
    let pool = pool();
    let mut cache = pool.cache();
    let mut g = group(c, "mbuf/indirect");
    g.throughput(Throughput::Elements(1));

    let mut d = pool.alloc(&mut cache).expect("alloc");
    d.append(1000).expect("append").fill(7);
    g.bench_function("clone_free", |b| {
        b.iter(|| {
            let c = d.clone_in_cache(&pool, &mut cache).expect("clone");
            pool.free(&mut cache, black_box(c));
        });
    });
    assert_eq!(d.refcnt(), 1);

    let chain = chain_of(&pool, &mut cache, 4, 256);
    g.bench_function("clone_free_chain4", |b| {
        b.iter(|| {
            let c = chain.clone_in_cache(&pool, &mut cache).expect("clone");
            pool.free(&mut cache, black_box(c));
        });
    });
    assert!(chain.segments().all(|s| s.refcnt() == 1));
    pool.free(&mut cache, chain);

    let mut m = pool.alloc(&mut cache).expect("alloc");
    g.bench_function("attach_detach", |b| {
        b.iter(|| {
            m.attach(&d).expect("attach");
            m.detach();
        });
    });
    assert_eq!(d.refcnt(), 1);
    pool.free(&mut cache, m);
    pool.free(&mut cache, d);
    check_full("indirect", &pool);
    g.finish();
}

/// A 4096-byte buffer, aligned as a device buffer would be.
#[repr(C, align(64))]
struct ExtMem([u8; 4096]);

fn extbuf(c: &mut Criterion) {
    let pool = pool();
    let mut cache = pool.cache();
    let mut g = group(c, "mbuf/extbuf");
    g.throughput(Throughput::Elements(1));

    let mut mem = Box::new(ExtMem([0; 4096]));
    let addr = NonNull::from(&mut mem.0).cast::<u8>();
    // SAFETY: `mem` is used only through the ExtBuf from here on and
    // outlives it (dropped last); the callback frees nothing.
    let ext = unsafe { ExtBuf::from_raw_tail_shinfo(addr, 4096, Some(Iova(0x1000)), |_| ()) }
        .expect("shared info");
    let mut m = pool.alloc(&mut cache).expect("alloc");
    g.bench_function("attach_detach", |b| {
        b.iter(|| {
            m.attach_extbuf(ext.clone()).expect("attach");
            m.detach();
        });
    });
    assert_eq!(ext.refcnt(), 1);

    m.attach_extbuf(ext.clone()).expect("attach");
    m.grow_tail(1500).expect("grow");
    g.bench_function("clone_free_external", |b| {
        b.iter(|| {
            let c = m.clone_in_cache(&pool, &mut cache).expect("clone");
            pool.free(&mut cache, black_box(c));
        });
    });
    assert_eq!(ext.refcnt(), 2);
    pool.free(&mut cache, m);
    drop(ext);
    drop(mem);
    check_full("extbuf", &pool);
    g.finish();
}

// c, g, b, m, r, t: criterion, group, bencher, mbuf, result, timer.
#[allow(clippy::many_single_char_names)]
fn data_ops(c: &mut Criterion) {
    let pool = pool();
    let mut cache = pool.cache();
    let mut g = group(c, "mbuf/data");

    g.throughput(Throughput::Elements(4));
    g.bench_function("chain4_free", |b| {
        b.iter(|| {
            let mut head = pool.alloc(&mut cache).expect("alloc");
            for _ in 1..4 {
                let s = pool.alloc(&mut cache).expect("alloc");
                head.chain(s).expect("chain");
            }
            pool.free(&mut cache, black_box(head));
        });
    });
    check_full("chain4_free", &pool);

    // Two segments of 1000 B: a read inside the first is in place, one
    // across the boundary is copied into the caller's buffer.
    let m = chain_of(&pool, &mut cache, 2, 1000);
    let mut tmp = [0u8; 64];
    g.throughput(Throughput::Bytes(64));
    g.bench_function("read64_in_place", |b| {
        b.iter(|| {
            let r = black_box(&m)
                .read(black_box(100), 64, &mut tmp)
                .expect("read");
            black_box(r);
        });
    });
    g.bench_function("read64_across", |b| {
        b.iter(|| {
            let r = black_box(&m)
                .read(black_box(968), 64, &mut tmp)
                .expect("read");
            black_box(r);
        });
    });
    let r = m.read(968, 64, &mut tmp).expect("read");
    assert!(r.iter().enumerate().all(|(i, &x)| x == (968 + i) as u8));
    pool.free(&mut cache, m);

    // Four segments of 256 B linearized into the head (the rest freed).
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("linearize4x256", |b| {
        b.iter_custom(|iters| {
            // Chains built in batches (untimed), linearized (timed), freed.
            let mut spent = Duration::ZERO;
            let mut left = iters;
            let mut ms = Vec::with_capacity(256);
            while left > 0 {
                let n = left.min(256);
                ms.extend((0..n).map(|_| chain_of(&pool, &mut cache, 4, 256)));
                let t = Instant::now();
                for m in &mut ms {
                    m.linearize().expect("linearize");
                }
                spent += t.elapsed();
                pool.free_bulk(&mut cache, ms.drain(..));
                left -= n;
            }
            spent
        });
    });
    let mut m = chain_of(&pool, &mut cache, 4, 256);
    m.linearize().expect("linearize");
    assert_eq!((m.nb_segs(), m.data_len()), (1, 1024));
    assert!(m.data().iter().enumerate().all(|(i, &x)| x == i as u8));
    pool.free(&mut cache, m);
    // linearize returns the freed segments through the thread's default
    // cache.
    pool.mempool().flush_default_cache();
    check_full("data", &pool);
    g.finish();
}

criterion_group!(benches, alloc_free, clone_attach, extbuf, data_ops);
criterion_main!(benches);
