//! The `ring_*` rows of `docs/benchmarks.md`: a ring of
//! 4096 slots of pointer-sized elements, single-producer/single-consumer
//! through [`Single`] ends and multi-producer/multi-consumer through a
//! shared [`Ring`] (its [`Multi`] sides), on one thread and across two
//! pinned threads. The two-core loops pause (`spin_loop`) before retrying an
//! empty or full burst, as the Rust peers do.
//!
//! Every two-core consumer reads every element it receives and sums them;
//! the sum is checked against what the producer sent:
//! - `ring_spsc_2core_burst32` and `ring_mpmc_2core_burst32` run the
//!   reference's loop: the consumer copies each burst out into a local
//!   array (`dequeue_burst`) and sums it there;
//! - `ring_spsc_2core_burst32_zc` reads each burst in place
//!   ([`Consumer::dequeue_start`], as rtrb's `read_chunk` and the
//!   disruptor's handlers do), sums it there and releases it, copying
//!   nothing out.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pktmem::ring::{Consumer, Multi, Producer, Ring, Single};

use crate::{ns_per, pin, row};

const SLOTS: usize = 4096;
const BULK: usize = 32;

/// A single-producer / single-consumer pair of ends on a ring of `SLOTS`.
fn spsc() -> (Producer<usize, Single>, Consumer<usize, Single>) {
    Ring::<usize>::builder(SLOTS)
        .producer(Single)
        .consumer(Single)
        .build()
        .expect("ring of 4096")
        .split()
}

/// Sum of a burst's elements.
#[inline(always)]
fn sum(vals: &[usize]) -> u64 {
    vals.iter().map(|&v| v as u64).sum()
}

/// Producer on cpu 0, consumer on cpu 1, `4 × iters` elements in bursts of
/// up to 32. `cons` dequeues one burst and returns its length and the sum of
/// its elements (read from a local copy or in place); the sum of all it
/// received must equal the sum sent.
fn two_cores<P, C>(name: &str, iters: u64, prod: P, cons: C)
where
    P: Fn(&[usize]) -> usize,
    C: FnMut(&mut [usize; BULK]) -> (usize, u64) + Send + 'static,
{
    let total = iters * 4;
    let go = Arc::new(AtomicBool::new(false));
    let go2 = Arc::clone(&go);
    let ready = Arc::new(AtomicBool::new(false));
    let ready2 = Arc::clone(&ready);
    let mut cons = cons;
    let h = std::thread::spawn(move || {
        pin(1);
        // Release: pairs with the Acquire load of `ready` below.
        ready2.store(true, Ordering::Release);
        let mut out = [0usize; BULK];
        let mut got = 0u64;
        let mut sum = 0u64;
        // Acquire: pairs with the Release store of `go` below.
        while !go2.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        while got < total {
            let (n, s) = cons(&mut out);
            if n == 0 {
                std::hint::spin_loop();
            }
            sum += s;
            got += n as u64;
        }
        sum
    });
    pin(0);
    // The clock starts once the consumer runs on its own core, as the
    // reference's worker lcore does (started and pinned at EAL init). The
    // new thread inherits this thread's cpu 0: without the wait it would
    // only get there when the scheduler preempts the producer spinning on
    // a full ring, milliseconds later, and that wait was timed. Yielding
    // lets it run here long enough to move.
    // Acquire: pairs with the consumer's Release store of `ready`.
    while !ready.load(Ordering::Acquire) {
        std::thread::yield_now();
    }
    let objs: Vec<usize> = (1..=BULK).collect();
    let mut sent = 0u64;
    let mut sent_sum = 0u64;
    let start = Instant::now();
    // Release: pairs with the consumer's Acquire load of `go`.
    go.store(true, Ordering::Release);
    while sent < total {
        let want = (total - sent).min(BULK as u64) as usize;
        let n = prod(&objs[..want]);
        if n == 0 {
            std::hint::spin_loop();
        }
        sent += n as u64;
        sent_sum += (n * (n + 1) / 2) as u64;
    }
    let sum = h.join().expect("consumer thread panicked");
    let v = ns_per(start, total);
    // Every element the producer sent came out (a burst of `n` sends 1..=n).
    assert_eq!(sum, sent_sum, "{name}: elements lost or duplicated");
    row(name, v, "ns/elem");
}

/// Prints the ring rows.
// `p`, `c`, `r`: producer, consumer and ring, as in the crate docs.
#[allow(clippy::many_single_char_names)]
pub fn run(iters: u64) {
    // ---- one thread, single element ----
    let (p, c) = spsc();
    // The reference's loop enqueues a constant and dequeues into an `out`
    // it never reads, so its compiler drops the slot load; here too the
    // element is hidden from the optimiser once and what comes out is
    // dropped. The loop is checked around it: the element arrives intact
    // before, and the ring is empty after (every enqueue met its dequeue).
    let obj = black_box(0x1234usize);
    // Untimed warm-up: fault the slot pages in and let the clock settle
    // (half a second: the reference spends longer in its start-up first).
    let warm = Instant::now();
    while warm.elapsed() < std::time::Duration::from_millis(500) {
        for _ in 0..10_000 {
            let _ = p.enqueue(obj);
            assert_eq!(c.dequeue(), Some(obj), "ring_spsc_single: wrong element");
        }
    }
    let start = Instant::now();
    for _ in 0..iters {
        let _ = p.enqueue(obj);
        let _ = c.dequeue();
    }
    row("ring_spsc_single", ns_per(start, iters), "ns/pair");
    assert!(p.is_empty(), "ring_spsc_single: pairs did not match");

    let r = Ring::<usize>::new(SLOTS).expect("ring of 4096");
    r.enqueue(obj).expect("empty ring");
    assert_eq!(r.dequeue(), Some(obj), "ring_mpmc_single: wrong element");
    let start = Instant::now();
    for _ in 0..iters {
        let _ = r.enqueue(obj);
        let _ = r.dequeue();
    }
    row("ring_mpmc_single", ns_per(start, iters), "ns/pair");
    assert!(r.is_empty(), "ring_mpmc_single: pairs did not match");

    drop((p, c, r));

    // ---- one thread, bulk of 32 ----
    // Fresh rings, as the reference creates one per row: both start at
    // index 0, so the bursts sit where the reference's do in the slot
    // array (a ring left at index 2,000,001 by the loop above would put
    // every burst of 32 one slot off a 32-byte boundary, which costs a
    // split store and a failed store-to-load forward per vector).
    let (p, c) = spsc();
    let r = Ring::<usize>::new(SLOTS).expect("ring of 4096");
    let objs: Vec<usize> = (1..=BULK).collect();
    let mut out = [0usize; BULK];
    let rounds = iters / 4;
    let start = Instant::now();
    for _ in 0..rounds {
        let _ = p.enqueue_bulk(black_box(&objs));
        let _ = c.dequeue_bulk(black_box(&mut out));
    }
    row(
        "ring_spsc_bulk32",
        ns_per(start, rounds * BULK as u64),
        "ns/elem",
    );
    assert_eq!(out[BULK - 1], BULK, "ring_spsc_bulk32: wrong element");

    let start = Instant::now();
    for _ in 0..rounds {
        let _ = r.enqueue_bulk(black_box(&objs));
        let _ = r.dequeue_bulk(black_box(&mut out));
    }
    row(
        "ring_mpmc_bulk32",
        ns_per(start, rounds * BULK as u64),
        "ns/elem",
    );
    assert_eq!(out[BULK - 1], BULK, "ring_mpmc_bulk32: wrong element");
    drop((p, c, r));

    // ---- two cores, bursts of 32 ----
    // Online CPUs, not `available_parallelism`: that reads this thread's
    // affinity, which `main` narrowed to cpu 0.
    // SAFETY: sysconf only reads a configuration value.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if cpus < 2 {
        eprintln!("compare: one CPU only, skipping the two-core ring rows");
        return;
    }
    let (p, c) = spsc();
    two_cores(
        "ring_spsc_2core_burst32",
        iters,
        |src| p.enqueue_burst(src),
        move |out| {
            let n = c.dequeue_burst(out);
            (n, sum(&out[..n]))
        },
    );
    drop(p);

    let (p, mut c) = spsc();
    two_cores(
        "ring_spsc_2core_burst32_zc",
        iters,
        |src| p.enqueue_burst(src),
        move |_out| {
            let burst = c.dequeue_start(BULK);
            let (a, b) = burst.as_slices();
            let s = sum(a) + sum(b);
            let n = burst.len();
            burst.finish_all();
            (n, s)
        },
    );
    drop(p);

    let (p, c): (Producer<usize, Multi>, Consumer<usize, Multi>) =
        Ring::<usize>::new(SLOTS).expect("ring of 4096").split();
    two_cores(
        "ring_mpmc_2core_burst32",
        iters,
        |src| p.enqueue_burst(src),
        move |out| {
            let n = c.dequeue_burst(out);
            (n, sum(&out[..n]))
        },
    );
}
