//! Criterion benches for the ring: single / bulk / burst on one thread for
//! single-thread ends (SP/SC), shared MP/MC and HTS rings, and two threads
//! streaming bursts; crossbeam's `ArrayQueue` beside the single-element
//! rows. Every two-thread run checks that all elements arrived (sum of
//! values).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use pktmem::ring::{Consumer, Hts, Producer, Ring, Single};

const SLOTS: usize = 4096;
const BULK: usize = 32;

fn hts() -> Ring<usize, Hts, Hts> {
    Ring::builder(SLOTS)
        .producer(Hts)
        .consumer(Hts)
        .build()
        .expect("ring of 4096")
}

fn mpmc() -> Ring<usize> {
    Ring::new(SLOTS).expect("ring of 4096")
}

fn spsc() -> (Producer<usize, Single>, Consumer<usize, Single>) {
    Ring::builder(SLOTS)
        .producer(Single)
        .consumer(Single)
        .build()
        .expect("ring of 4096")
        .split()
}

/// Runs `body(name, ...)` for the shared MP/MC and HTS rings (one type
/// each, so one call per type).
macro_rules! for_shared {
    (|$name:ident, $r:ident| $body:block) => {{
        {
            let $name = "mpmc";
            let $r = mpmc();
            $body
        }
        {
            let $name = "hts";
            let $r = hts();
            $body
        }
    }};
}

fn one_thread(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring/one_thread/single");
    g.throughput(Throughput::Elements(1));
    let (p, q) = spsc();
    g.bench_function("spsc", |b| {
        b.iter(|| {
            p.enqueue(black_box(1)).unwrap();
            black_box(q.dequeue().unwrap())
        });
    });
    for_shared!(|name, r| {
        g.bench_function(name, |b| {
            b.iter(|| {
                r.enqueue(black_box(1)).unwrap();
                black_box(r.dequeue().unwrap())
            });
        });
    });
    let aq = ArrayQueue::<usize>::new(SLOTS);
    g.bench_function("crossbeam_array_queue", |b| {
        b.iter(|| {
            aq.push(black_box(1)).unwrap();
            black_box(aq.pop().unwrap())
        });
    });
    g.finish();

    let src: Vec<usize> = (1..=BULK).collect();
    let mut out = [0usize; BULK];
    for kind in ["bulk32", "burst32"] {
        let mut g = c.benchmark_group(format!("ring/one_thread/{kind}"));
        g.throughput(Throughput::Elements(BULK as u64));
        // Checked once outside the timed loops: elements come out as they went in.
        p.enqueue_bulk(&src).unwrap();
        q.dequeue_bulk(&mut out).unwrap();
        assert_eq!(out, *src, "spsc: wrong elements");
        g.bench_function("spsc", |b| {
            b.iter(|| {
                if kind == "bulk32" {
                    p.enqueue_bulk(black_box(&src)).unwrap();
                    q.dequeue_bulk(black_box(&mut out)).unwrap();
                } else {
                    assert_eq!(p.enqueue_burst(black_box(&src)), BULK);
                    assert_eq!(q.dequeue_burst(black_box(&mut out)), BULK);
                }
            });
        });
        for_shared!(|name, r| {
            r.enqueue_bulk(&src).unwrap();
            r.dequeue_bulk(&mut out).unwrap();
            assert_eq!(out, *src, "{name}: wrong elements");
            g.bench_function(name, |b| {
                b.iter(|| {
                    if kind == "bulk32" {
                        r.enqueue_bulk(black_box(&src)).unwrap();
                        r.dequeue_bulk(black_box(&mut out)).unwrap();
                    } else {
                        assert_eq!(r.enqueue_burst(black_box(&src)), BULK);
                        assert_eq!(r.dequeue_burst(black_box(&mut out)), BULK);
                    }
                });
            });
        });
        g.finish();
    }
}

/// Bursts per measured iteration of the two-thread benches.
const ROUNDS: u64 = 256;

/// Streams `iters * ROUNDS * BULK` elements from this thread to a consumer
/// thread; returns the wall time (from when both are running) after checking
/// every element arrived.
fn stream<P, C>(iters: u64, put: P, get: C) -> Duration
where
    P: Fn(&[usize]) -> usize,
    C: FnMut(&mut [usize]) -> usize + Send + 'static,
{
    let total = iters * ROUNDS * BULK as u64;
    let mut get = get;
    let ready = Arc::new(std::sync::Barrier::new(2));
    let ready2 = Arc::clone(&ready);
    let h = std::thread::spawn(move || {
        ready2.wait();
        let mut out = [0usize; BULK];
        let (mut got, mut sum) = (0u64, 0u64);
        while got < total {
            let n = get(&mut out);
            sum += out[..n].iter().map(|&v| v as u64).sum::<u64>();
            got += n as u64;
        }
        sum
    });
    let src = [1usize; BULK];
    ready.wait();
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < total {
        let want = (total - sent).min(BULK as u64) as usize;
        sent += put(&src[..want]) as u64;
    }
    let sum = h.join().unwrap();
    let t = start.elapsed();
    assert_eq!(sum, total, "elements lost or duplicated");
    t
}

// `p`, `q`, `b`, `s`, `o`: ends, bencher and buffers, kept short in closures.
#[allow(clippy::many_single_char_names)]
fn two_threads(c: &mut Criterion) {
    if std::thread::available_parallelism().map_or(1, std::num::NonZero::get) < 2 {
        eprintln!("one CPU only: skipping the two-thread ring benches");
        return;
    }
    let mut g = c.benchmark_group("ring/two_threads/burst32");
    g.throughput(Throughput::Elements(ROUNDS * BULK as u64));
    g.bench_function("spsc", |b| {
        b.iter_custom(|iters| {
            let (p, q) = spsc();
            stream(iters, |s| p.enqueue_burst(s), move |o| q.dequeue_burst(o))
        });
    });
    g.bench_function("mpmc", |b| {
        b.iter_custom(|iters| {
            let (p, q) = mpmc().split();
            stream(iters, |s| p.enqueue_burst(s), move |o| q.dequeue_burst(o))
        });
    });
    g.bench_function("hts", |b| {
        b.iter_custom(|iters| {
            let (p, q) = hts().split();
            stream(iters, |s| p.enqueue_burst(s), move |o| q.dequeue_burst(o))
        });
    });
    g.bench_function("crossbeam_array_queue_single", |b| {
        b.iter_custom(|iters| {
            let q = Arc::new(ArrayQueue::<usize>::new(SLOTS));
            let q2 = Arc::clone(&q);
            stream(
                iters,
                |s| s.iter().take_while(|&&v| q.push(v).is_ok()).count(),
                move |o| {
                    let mut n = 0;
                    while n < o.len() {
                        match q2.pop() {
                            Some(v) => {
                                o[n] = v;
                                n += 1;
                            }
                            None => break,
                        }
                    }
                    n
                },
            )
        });
    });
    g.finish();
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
    targets = one_thread, two_threads
}
criterion_main!(benches);
