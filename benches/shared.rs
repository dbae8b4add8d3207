//! Criterion benches for memory shared between processes: the shared
//! descriptor ring (`pktmem::ring::shared`) beside a private single-thread
//! ring of the same 16-byte descriptors (`Ring<Desc>` with `Single` ends),
//! on one thread (bulk of 32 in, bulk of 32 out) and across two threads
//! (bursts of 32, every descriptor summed and checked); and the peer-side
//! translation of a relocated attachment (`iova` + `to_local`) beside the
//! provider's own `virt2iova`. The compare bench (`benches/compare/`) has
//! the two-process row.

// `p`, `q`, `b`, `s`, `o`, `a`, `x`: ends, bencher, buffers, attachment and
// the random state, kept short in closures as in the ring benches.
#![allow(clippy::many_single_char_names)]

use std::hint::black_box;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pktmem::hugemem::share::{Attachment, Exporter, Placement};
use pktmem::hugemem::{AllocRequest, Provider};
use pktmem::ring::shared::{init_shm_ring, shm_ring_bytes, Desc, ShmConsumer, ShmProducer};
use pktmem::ring::{Consumer, Producer, Ring, Single};

const SLOTS: u32 = 4096;
const BULK: usize = 32;
/// Bursts per criterion iteration of the two-thread benches.
const ROUNDS: u64 = 64;
const LEN: usize = 64 << 20;

/// Heap memory for a shared ring (the ring does not care where it lives;
/// the compare bench uses a memfd).
struct Mem(Vec<u64>);

impl Mem {
    fn new() -> Mem {
        let m = Mem(vec![0; shm_ring_bytes(SLOTS) / 8]);
        // SAFETY: our own memory, alive, no end yet.
        unsafe { init_shm_ring(m.ptr(), m.len(), SLOTS) }.expect("ring fits");
        m
    }

    fn ptr(&self) -> NonNull<u8> {
        NonNull::new(self.0.as_ptr().cast_mut().cast::<u8>()).unwrap()
    }

    fn len(&self) -> usize {
        self.0.len() * 8
    }

    fn ends(&self) -> (ShmProducer, ShmConsumer) {
        // SAFETY: `self` outlives the ends in every bench (they are dropped
        // first), and the memory is reached only through them.
        unsafe {
            (
                ShmProducer::attach(self.ptr(), self.len()).unwrap(),
                ShmConsumer::attach(self.ptr(), self.len()).unwrap(),
            )
        }
    }
}

fn private() -> (Producer<Desc, Single>, Consumer<Desc, Single>) {
    Ring::builder(SLOTS as usize)
        .producer(Single)
        .consumer(Single)
        .build()
        .expect("ring of 4096")
        .split()
}

fn descs() -> Vec<Desc> {
    (1..=BULK as u64).map(|i| Desc::new(i, 0)).collect()
}

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("shared/one_thread/bulk32");
    g.throughput(Throughput::Elements(BULK as u64));
    let src = descs();
    let mut out = [Desc::default(); BULK];
    let m = Mem::new();
    let (mut p, mut q) = m.ends();
    g.bench_function("shm_ring", |b| {
        b.iter(|| {
            p.enqueue_bulk(black_box(&src)).unwrap();
            q.dequeue_bulk(black_box(&mut out)).unwrap();
        });
    });
    let (p, q) = private();
    g.bench_function("private_ring_desc", |b| {
        b.iter(|| {
            p.enqueue_bulk(black_box(&src)).unwrap();
            q.dequeue_bulk(black_box(&mut out)).unwrap();
        });
    });
    g.finish();
}

/// Pins the calling thread to `cpu` (unpinned, both threads may share a
/// core and every burst waits for a context switch); a failure only costs
/// precision.
fn pin(cpu: usize) {
    // SAFETY: `set` is a plain bitmask we own, initialised by CPU_ZERO, and
    // sched_setaffinity only reads `size_of::<cpu_set_t>()` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) != 0 {
            eprintln!("shared bench: could not pin a thread to cpu {cpu}");
        }
    }
}

/// Streams `iters × ROUNDS × BULK` descriptors from this thread (`put`) to
/// a scoped consumer thread (`get`), checking the sum; returns the time.
/// Producer on cpu 0, consumer on cpu 1, as in the compare bench.
fn stream<P, C>(iters: u64, mut put: P, mut get: C) -> Duration
where
    P: FnMut(&[Desc]) -> usize,
    C: FnMut(&mut [Desc]) -> usize + Send,
{
    let total = iters * ROUNDS * BULK as u64;
    let ready = std::sync::Barrier::new(2);
    std::thread::scope(|s| {
        let h = s.spawn(|| {
            pin(1);
            ready.wait();
            let mut out = [Desc::default(); BULK];
            let (mut got, mut sum) = (0u64, 0u64);
            while got < total {
                let n = get(&mut out);
                sum += out[..n].iter().map(|d| d.addr).sum::<u64>();
                got += n as u64;
            }
            sum
        });
        let src = [Desc::new(1, 0); BULK];
        pin(0);
        ready.wait();
        let start = Instant::now();
        let mut sent = 0u64;
        while sent < total {
            let want = (total - sent).min(BULK as u64) as usize;
            sent += put(&src[..want]) as u64;
        }
        let sum = h.join().unwrap();
        let t = start.elapsed();
        assert_eq!(sum, total, "descriptors lost or duplicated");
        t
    })
}

fn two_threads(c: &mut Criterion) {
    if std::thread::available_parallelism().map_or(1, std::num::NonZero::get) < 2 {
        eprintln!("one CPU only: skipping the two-thread shared ring benches");
        return;
    }
    let mut g = c.benchmark_group("shared/two_threads/burst32");
    g.throughput(Throughput::Elements(ROUNDS * BULK as u64));
    g.bench_function("shm_ring", |b| {
        b.iter_custom(|iters| {
            let m = Mem::new();
            let (mut p, mut q) = m.ends();
            stream(
                iters,
                |s| p.enqueue_burst(s).unwrap(),
                move |o| q.dequeue_burst(o).unwrap(),
            )
        });
    });
    g.bench_function("private_ring_desc", |b| {
        b.iter_custom(|iters| {
            let (p, q) = private();
            stream(iters, |s| p.enqueue_burst(s), move |o| q.dequeue_burst(o))
        });
    });
    g.finish();
}

fn translate(c: &mut Criterion) {
    let p = match Provider::builder().exportable().quiet(true).build() {
        Ok(p) => p,
        Err(e) => return eprintln!("shared/translate: provider: {e}"),
    };
    let Ok(chunk) = p.alloc_shared(&AllocRequest::new(LEN)) else {
        return eprintln!("shared/translate: cannot allocate 64 MiB");
    };
    let exp = match Exporter::builder(&p).unbound() {
        Ok(e) => e,
        Err(e) => return eprintln!("shared/translate: export: {e}"),
    };
    let a = match exp
        .connect_pair()
        .map_err(|e| e.to_string())
        .and_then(|fd| {
            Attachment::builder("bench")
                .placement(Placement::Relocate)
                .from_fd(fd)
                .map_err(|e| e.to_string())
        }) {
        Ok(a) => a,
        Err(e) => return eprintln!("shared/translate: attach: {e}"),
    };
    let base = chunk.as_ptr().as_ptr() as u64;
    let mut g = c.benchmark_group("shared/translate");
    g.throughput(Throughput::Elements(1));
    let mut x: u64 = 88_172_645_463_325_252;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        base + x % LEN as u64
    };
    g.bench_function("peer_iova_and_to_local", |b| {
        b.iter(|| {
            let va = next();
            (a.iova(va), a.to_local(va, 1))
        });
    });
    g.bench_function("provider_virt2iova", |b| {
        b.iter(|| p.virt2iova(next() as *const u8));
    });
    g.finish();
    drop(a);
    drop(exp);
    drop(chunk);
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = one_thread, two_threads, translate
}
criterion_main!(benches);
