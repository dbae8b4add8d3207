//! The `ring_*` rows of `../shared/bench/ROWS.md`: a ring of 4096 slots of
//! pointer-sized elements, single-producer/single-consumer through the
//! [`Producer`]/[`Consumer`] handles and multi-producer/multi-consumer through
//! a shared [`Ring`], on one thread and across two pinned threads. The
//! two-core loops pause (`spin_loop`) before retrying an empty or full
//! burst, as the Rust peers do.
//!
//! Two-core SP/SC is printed twice, because the reference and the Rust peer
//! run different consumer loops:
//! - `ring_spsc_2core_burst32` runs the peer's loop (rtrb's `read_chunk`):
//!   the consumer dequeues each burst in place with
//!   [`Consumer::dequeue_start`], hands the burst's slices to `black_box`
//!   and releases it, without reading the elements.
//! - `ring_spsc_2core_burst32_copyout` runs the reference's loop: the
//!   consumer copies every burst out (`dequeue_burst`) and sums it, so the
//!   elements' cache lines cross between the cores; the sum is checked.
//!
//! The MP/MC row copies out and sums, as the reference does.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use pktmem::ring::{Consumer, Producer, Ring};

use crate::{ns_per, pin, row};

const SLOTS: usize = 4096;
const BULK: usize = 32;

/// The two ends a two-core row drives.
trait Ends: Send + 'static {
    fn put(&self, src: &[usize]) -> usize;
    fn get(&self, out: &mut [usize]) -> usize;
}

impl Ends for Arc<Ring<usize>> {
    #[inline]
    fn put(&self, src: &[usize]) -> usize {
        self.enqueue_burst(src)
    }
    #[inline]
    fn get(&self, out: &mut [usize]) -> usize {
        self.dequeue_burst(out)
    }
}

/// Producer on cpu 0, consumer on cpu 1, `4 × iters` elements in bursts of
/// up to 32. `cons` dequeues one burst and returns its length; with `check`
/// it has copied the burst into `out`, and the sum of all it received must
/// equal the sum sent.
fn two_cores<P, C>(name: &str, iters: u64, check: bool, prod: P, cons: C)
where
    P: Fn(&[usize]) -> usize,
    C: FnMut(&mut [usize]) -> usize + Send + 'static,
{
    let total = iters * 4;
    let go = Arc::new(AtomicBool::new(false));
    let go2 = Arc::clone(&go);
    let mut cons = cons;
    let h = std::thread::spawn(move || {
        pin(1);
        let mut out = [0usize; BULK];
        let mut got = 0u64;
        let mut sum = 0u64;
        // Acquire: pairs with the Release store of `go` below.
        while !go2.load(Ordering::Acquire) {
            std::hint::spin_loop();
        }
        while got < total {
            let n = cons(&mut out);
            if n == 0 {
                std::hint::spin_loop();
            }
            if check {
                sum += out[..n].iter().map(|&v| v as u64).sum::<u64>();
            }
            got += n as u64;
        }
        sum
    });
    pin(0);
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
    if check {
        assert_eq!(sum, sent_sum, "{name}: elements lost or duplicated");
    }
    row(name, v, "ns/elem");
}

/// Prints the ring rows.
pub fn run(iters: u64) {
    // ---- one thread, single element ----
    let (p, c): (Producer<usize>, Consumer<usize>) =
        Ring::new(SLOTS).expect("ring of 4096").into_spsc();
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

    // ---- one thread, bulk of 32 ----
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
    let (p, mut c) = Ring::<usize>::new(SLOTS).expect("ring of 4096").into_spsc();
    two_cores(
        "ring_spsc_2core_burst32",
        iters,
        false,
        |src| p.enqueue_burst(src),
        move |_out| {
            let burst = c.dequeue_start(BULK);
            let n = burst.len();
            black_box(burst.as_slices());
            burst.finish_all();
            n
        },
    );
    drop(p);

    let (p, c) = Ring::<usize>::new(SLOTS).expect("ring of 4096").into_spsc();
    two_cores(
        "ring_spsc_2core_burst32_copyout",
        iters,
        true,
        |src| p.enqueue_burst(src),
        move |out| c.dequeue_burst(out),
    );
    drop(p);

    let r = Arc::new(Ring::<usize>::new(SLOTS).expect("ring of 4096"));
    let r2 = Arc::clone(&r);
    two_cores(
        "ring_mpmc_2core_burst32",
        iters,
        true,
        |src| r.put(src),
        move |out| r2.get(out),
    );
}
