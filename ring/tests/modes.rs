//! Every mode and way of driving a ring (shared rings of the shared modes,
//! split ends of every producer/consumer mode pair) × single/bulk/burst/
//! zero-copy × element sizes 4, 8, 16, 20 bytes: full and empty boundaries,
//! failed bulk leaves the ring unchanged, partial bursts, index wraparound,
//! counts across the wrap; capacity and builder errors, guards.
//!
//! What the modes forbid (zero-copy on a multi-thread or RTS side, cloning
//! or sharing a single end, a distance limit on a side that is not RTS) is
//! a compile error, shown by the `compile_fail` examples in the crate docs.

// Test code names ends, guards and buffers `p`, `c`, `g`, `v` as the
// crate docs do, and keeps each randomised sequence in one function.
#![allow(
    clippy::many_single_char_names,
    clippy::similar_names,
    clippy::too_many_lines
)]

mod common;

use common::{all_kinds, Elem, Q};
use pktmem_ring::{BuildError, Hts, Ring, RingEmpty, RingFull, Single, MAX_CAPACITY};

fn check_counts<T>(name: &str, q: &dyn Q<T>, len: usize) {
    assert_eq!(q.len(), len, "{name}: len");
    assert_eq!(q.free(), q.cap() - len, "{name}: free");
    assert_eq!(q.empty(), len == 0, "{name}: is_empty");
    assert_eq!(q.full(), len == q.cap(), "{name}: is_full");
}

/// Single enqueue up to full, single dequeue down to empty, in order.
fn boundaries_single<T: Elem>(capacity: usize, dpdk: bool, want: usize, start: u32) {
    for (name, mut q) in all_kinds::<T>(capacity, dpdk, start) {
        assert_eq!(q.cap(), want, "{name}: capacity");
        check_counts(&name, &*q, 0);
        assert_eq!(q.deq(), None, "{name}: dequeue on empty");
        for i in 0..want as u64 {
            q.enq(T::make(i))
                .unwrap_or_else(|_| panic!("{name}: enqueue {i} of {want}"));
        }
        check_counts(&name, &*q, want);
        let extra = T::make(999_999);
        assert_eq!(
            q.enq(extra),
            Err(extra),
            "{name}: enqueue on full hands back"
        );
        check_counts(&name, &*q, want);
        for i in 0..want as u64 {
            assert_eq!(q.deq(), Some(T::make(i)), "{name}: order");
        }
        assert_eq!(q.deq(), None, "{name}: empty again");
        check_counts(&name, &*q, 0);
    }
}

/// Bulk and burst at the boundaries: failed bulk changes nothing, bursts are
/// partial; the uninit forms behave the same.
fn boundaries_bulk_burst<T: Elem>(capacity: usize, dpdk: bool, start: u32) {
    for (name, mut q) in all_kinds::<T>(capacity, dpdk, start) {
        let cap = q.cap();
        let chunk = 32usize.min(cap);
        let src: Vec<T> = (0..cap as u64 + 40).map(T::make).collect();
        let mut pushed = 0;
        while pushed + chunk <= cap {
            q.enq_bulk(&src[pushed..pushed + chunk]).unwrap();
            pushed += chunk;
            check_counts(&name, &*q, pushed);
        }
        let free = cap - pushed;
        // A bulk one larger than the free room fails and moves nothing.
        let err = q.enq_bulk(&src[pushed..=pushed + free]).unwrap_err();
        assert_eq!(
            err,
            RingFull {
                requested: free + 1,
                free
            },
            "{name}"
        );
        check_counts(&name, &*q, pushed);
        // A bulk larger than the whole ring fails too.
        let big: Vec<T> = (0..=cap as u64).map(T::make).collect();
        assert_eq!(q.enq_bulk(&big).unwrap_err().requested, cap + 1, "{name}");
        check_counts(&name, &*q, pushed);
        // A burst takes what fits.
        assert_eq!(q.enq_burst(&src[pushed..pushed + free + 7]), free, "{name}");
        check_counts(&name, &*q, cap);
        assert_eq!(q.enq_burst(&src[..3]), 0, "{name}: burst on full");
        assert_eq!(q.enq_bulk(&[]), Ok(()), "{name}: empty bulk");

        // Dequeue side.
        let mut out = vec![T::make(0); cap + 8];
        let err = q.deq_bulk(&mut out[..=cap]).unwrap_err();
        assert_eq!(err.requested, cap + 1, "{name}");
        check_counts(&name, &*q, cap);
        let mut taken = 0;
        let mut flip = false;
        while taken + chunk <= cap {
            if flip {
                q.deq_bulk_uninit(&mut out[..chunk]).unwrap();
            } else {
                q.deq_bulk(&mut out[..chunk]).unwrap();
            }
            flip = !flip;
            assert_eq!(
                &out[..chunk],
                &src[taken..taken + chunk],
                "{name}: bulk order"
            );
            taken += chunk;
            check_counts(&name, &*q, cap - taken);
        }
        let left = cap - taken;
        // One more than is left: both forms fail alike and take nothing.
        let too_few = RingEmpty {
            requested: left + 1,
            available: left,
        };
        let err = q.deq_bulk(&mut out[..=left]).unwrap_err();
        assert_eq!(err, too_few, "{name}");
        let err = q.deq_bulk_uninit(&mut out[..=left]).unwrap_err();
        assert_eq!(err, too_few, "{name}: uninit");
        check_counts(&name, &*q, left);
        let n = if left % 2 == 0 {
            q.deq_burst(&mut out[..left + 5])
        } else {
            q.deq_burst_uninit(&mut out[..left + 5])
        };
        assert_eq!(n, left, "{name}: partial burst");
        assert_eq!(&out[..left], &src[taken..cap], "{name}: burst order");
        assert_eq!(q.deq_burst(&mut out[..4]), 0, "{name}: burst on empty");
        assert_eq!(
            q.deq_burst_uninit(&mut out[..4]),
            0,
            "{name}: uninit burst on empty"
        );
        assert_eq!(q.deq_bulk(&mut []), Ok(()), "{name}: empty bulk");
        check_counts(&name, &*q, 0);
    }
}

/// Zero-copy enqueue/dequeue and peek, where the end supports them.
fn zero_copy<T: Elem>(capacity: usize, dpdk: bool, start: u32) {
    for (name, mut q) in all_kinds::<T>(capacity, dpdk, start) {
        let cap = q.cap();
        let src: Vec<T> = (0..cap as u64 + 10).map(T::make).collect();
        let Some(n) = q.enq_zc(&src[..5.min(cap)]) else {
            // Multi-thread or RTS producer side: no zero-copy; check the
            // other side.
            q.enq_bulk(&src[..5.min(cap)]).unwrap();
            peek_checks(&name, &mut *q, &src, 5.min(cap));
            continue;
        };
        assert_eq!(n, 5.min(cap), "{name}");
        // Fill the rest in place; a reservation never exceeds the free room.
        assert_eq!(
            q.enq_zc(&src[n..cap + 3]),
            Some(cap - n),
            "{name}: partial reservation"
        );
        check_counts(&name, &*q, cap);
        assert_eq!(q.enq_zc(&src[..2]), Some(0), "{name}: reservation on full");
        assert_eq!(
            q.enq_zc_bulk(&src[..1]),
            Some(Err(RingFull {
                requested: 1,
                free: 0
            })),
            "{name}: all-or-nothing reservation on full"
        );
        let mut out = vec![T::make(0); cap];
        assert_eq!(q.deq_burst(&mut out), cap);
        assert_eq!(&out[..], &src[..cap], "{name}: zero-copy order");
        // Reservations across the wrap point.
        let mut moved = 0;
        let mut round = 0u64;
        while moved < 3 * cap + 10 {
            round += 1;
            let k = (round as usize % cap.min(67)) + 1;
            moved += k;
            let vals: Vec<T> = (0..k as u64).map(|i| T::make(round * 1000 + i)).collect();
            assert_eq!(q.enq_zc(&vals), Some(k), "{name}");
            let mut got = vec![T::make(0); k];
            assert_eq!(q.deq_burst(&mut got), k);
            assert_eq!(got, vals, "{name}: zero-copy across the wrap");
        }
        check_counts(&name, &*q, 0);
        // All or nothing: exactly the free room fits, one more does not.
        assert_eq!(q.enq_zc_bulk(&src[..cap]), Some(Ok(())), "{name}");
        check_counts(&name, &*q, cap);
        let mut out = vec![T::make(0); cap];
        assert_eq!(q.deq_burst(&mut out[..1]), 1);
        assert_eq!(
            q.enq_zc_bulk(&src[..2]),
            Some(Err(RingFull {
                requested: 2,
                free: 1
            })),
            "{name}"
        );
        assert_eq!(
            q.enq_zc_bulk(&[]),
            Some(Ok(())),
            "{name}: empty reservation"
        );
        check_counts(&name, &*q, cap - 1);
        assert_eq!(q.deq_burst(&mut out), cap - 1);
        assert_eq!(
            &out[..cap - 1],
            &src[1..cap],
            "{name}: all-or-nothing order"
        );
        q.enq_bulk(&src[..5.min(cap)]).unwrap();
        peek_checks(&name, &mut *q, &src, 5.min(cap));
    }
}

/// The ring holds `src[..n]`; peek without consuming, then consume in parts.
fn peek_checks<T: Elem>(name: &str, q: &mut dyn Q<T>, src: &[T], n: usize) {
    let mut out = vec![T::make(0); n + 2];
    let Some(k) = q.deq_zc(&mut out, 0) else {
        return;
    };
    assert_eq!(k, n, "{name}: peek sees all");
    // All-or-nothing peek: one more than is there fails, consuming nothing.
    assert_eq!(
        q.deq_zc_bulk(&mut out[..=n]),
        Some(Err(RingEmpty {
            requested: n + 1,
            available: n
        })),
        "{name}"
    );
    assert_eq!(&out[..n], &src[..n], "{name}: peek values");
    assert_eq!(q.len(), n, "{name}: peek consumed nothing");
    if n < 3 {
        assert_eq!(q.deq_zc(&mut out, n), Some(n), "{name}");
        assert!(q.empty(), "{name}");
        return;
    }
    // Consume one via the guard; the next peek starts one later.
    assert_eq!(q.deq_zc(&mut out[..1], 1), Some(1));
    assert_eq!(out[0], src[0], "{name}");
    assert_eq!(q.len(), n - 1, "{name}");
    // `finish` past the reservation is capped.
    assert_eq!(q.deq_zc(&mut out[..1], 100), Some(1));
    assert_eq!(out[0], src[1], "{name}");
    assert_eq!(q.len(), n - 2, "{name}");
    assert_eq!(q.deq(), Some(src[2]), "{name}: ordinary dequeue after peek");
    let mut rest = vec![T::make(0); n];
    let r = q.deq_zc(&mut rest, usize::MAX).unwrap();
    assert_eq!(&rest[..r], &src[3..n], "{name}");
    assert!(q.empty(), "{name}");
    assert_eq!(q.deq_zc(&mut rest, 1), Some(0), "{name}: peek on empty");
    // All or nothing, exactly what is there.
    q.enq_bulk(&src[..n]).unwrap();
    assert_eq!(q.deq_zc_bulk(&mut rest[..n]), Some(Ok(())), "{name}");
    assert_eq!(&rest[..n], &src[..n], "{name}");
    assert!(q.empty(), "{name}");
}

/// Many rounds of mixed-size traffic from an index just below the `u32`
/// wrap: counts stay right and order is kept across it.
fn wraparound<T: Elem>(capacity: usize, dpdk: bool) {
    for (name, mut q) in all_kinds::<T>(capacity, dpdk, u32::MAX - 100) {
        let cap = q.cap();
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        for round in 0..(400 + 4 * cap) {
            let k = (round * 3 + 1) % (cap + 1);
            let vals: Vec<T> = (next_in..next_in + k as u64).map(T::make).collect();
            let n = q.enq_burst(&vals);
            next_in += n as u64;
            check_counts(&name, &*q, (next_in - next_out) as usize);
            let mut out = vec![T::make(0); (round * 5 + 2) % (cap + 1)];
            let m = q.deq_burst(&mut out);
            for v in &out[..m] {
                assert_eq!(*v, T::make(next_out), "{name}: order across the wrap");
                next_out += 1;
            }
            check_counts(&name, &*q, (next_in - next_out) as usize);
        }
        assert!(
            next_in > 300,
            "{name}: traffic flowed: {next_in} in, {next_out} out"
        );
    }
}

fn all_for<T: Elem>() {
    for (capacity, dpdk, want) in [
        (4096, true, 4095),
        (4096, false, 4096),
        (4, true, 3),
        (5, false, 5),
        (1, false, 1),
        (1000, false, 1000),
    ] {
        boundaries_single::<T>(capacity, dpdk, want, 0);
        boundaries_single::<T>(capacity, dpdk, want, u32::MAX - 2);
        boundaries_bulk_burst::<T>(capacity, dpdk, 0);
        boundaries_bulk_burst::<T>(capacity, dpdk, u32::MAX - 40);
        zero_copy::<T>(capacity, dpdk, u32::MAX - 3);
    }
    wraparound::<T>(8, true);
    wraparound::<T>(6, false);
}

#[test]
fn four_byte_elements() {
    all_for::<u32>();
}

#[test]
fn eight_byte_elements() {
    all_for::<u64>();
}

#[test]
fn sixteen_byte_elements() {
    all_for::<[u64; 2]>();
}

#[test]
fn twenty_byte_elements() {
    assert_eq!(std::mem::size_of::<[u32; 5]>(), 20);
    all_for::<[u32; 5]>();
}

#[test]
fn capacity_is_exact_unless_dpdk_sizing_is_asked_for() {
    for n in [1, 2, 3, 1000, 1023, 1024, 1025, 4096] {
        let r = Ring::<u64>::new(n).unwrap();
        assert_eq!(r.capacity(), n, "new({n}) holds {n}");
        let mut vals: Vec<u64> = (0..=n as u64).collect();
        assert_eq!(r.enqueue_burst(&vals), n);
        assert!(r.is_full());
        vals.clear();
    }
    let r = Ring::<u64>::builder(1024).dpdk_sizing().build().unwrap();
    assert_eq!(r.capacity(), 1023);
}

#[test]
fn builder_errors_are_typed() {
    assert_eq!(Ring::<u64>::new(0).unwrap_err(), BuildError::ZeroCapacity);
    assert_eq!(
        Ring::<u64>::builder(0).dpdk_sizing().build().unwrap_err(),
        BuildError::ZeroCapacity
    );
    assert_eq!(
        Ring::<u64>::builder(4095)
            .dpdk_sizing()
            .build()
            .unwrap_err(),
        BuildError::NotPowerOfTwo { requested: 4095 }
    );
    assert_eq!(
        Ring::<u64>::new(MAX_CAPACITY * 2).unwrap_err(),
        BuildError::TooLarge {
            requested: MAX_CAPACITY * 2,
            max: MAX_CAPACITY
        }
    );
    assert!(matches!(
        Ring::<u64>::new(MAX_CAPACITY + 1),
        Err(BuildError::TooLarge { .. })
    ));
    assert!(Ring::<u64>::builder(usize::MAX)
        .producer(Single)
        .consumer(Single)
        .build()
        .is_err());
    // Messages carry the numbers.
    let msg = Ring::<u64>::builder(1000)
        .dpdk_sizing()
        .build()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("1000"), "{msg}");
    let msg = Ring::<u64>::new(MAX_CAPACITY + 1).unwrap_err().to_string();
    assert!(msg.contains(&(MAX_CAPACITY + 1).to_string()), "{msg}");
    let msg = RingFull {
        requested: 32,
        free: 3,
    }
    .to_string();
    assert!(msg.contains("32") && msg.contains('3'), "{msg}");
    let msg = RingEmpty {
        requested: 9,
        available: 4,
    }
    .to_string();
    assert!(msg.contains('9') && msg.contains('4'), "{msg}");
    // Each converts into the umbrella error for `?`.
    let e: pktmem_ring::RingError = BuildError::ZeroCapacity.into();
    assert_eq!(e.to_string(), BuildError::ZeroCapacity.to_string());
    assert!(std::error::Error::source(&e).is_some());
}

#[test]
fn reset_returns_to_empty_from_any_state() {
    let mut r = Ring::<u64>::builder(16)
        .dpdk_sizing()
        .consumer(Hts)
        .initial_index(u32::MAX - 3)
        .build()
        .unwrap();
    r.enqueue_bulk(&[1, 2, 3, 4, 5, 6]).unwrap();
    assert_eq!(r.dequeue(), Some(1));
    r.reset();
    assert!(r.is_empty());
    assert_eq!(r.free_count(), 15);
    r.enqueue_bulk(&[7; 15]).unwrap();
    assert!(r.is_full());
}

#[test]
fn dropped_guards_release_the_side() {
    let r = Ring::<u32>::builder(7)
        .producer(Hts)
        .consumer(Hts)
        .build()
        .unwrap();
    {
        let mut w = r.enqueue_start(4);
        w.push(1).unwrap();
        // dropped without commit: publishes nothing
    }
    assert!(r.is_empty());
    r.enqueue(2).unwrap(); // the producer side is free again
    {
        let g = r.dequeue_start(4);
        assert_eq!(g.get(0), Some(&2));
    }
    assert_eq!(r.len(), 1);
    assert_eq!(r.dequeue(), Some(2)); // the consumer side is free again

    // A guard's push stops at its reservation.
    let mut w = r.enqueue_start(2);
    assert_eq!(w.len(), 2);
    w.push(1).unwrap();
    w.push(2).unwrap();
    assert_eq!(w.push(3), Err(3));
    assert_eq!(w.commit(), 2);
    assert_eq!(r.len(), 2);

    // A failed all-or-nothing reservation does not hold the side.
    assert!(r.enqueue_start_bulk(6).is_err());
    assert!(r.dequeue_start_bulk(3).is_err());
    r.enqueue(3).unwrap();
    assert_eq!(r.dequeue(), Some(1));
}

#[test]
fn single_end_guards_release_too() {
    let (mut p, mut c) = Ring::<u32>::builder(4)
        .producer(Single)
        .consumer(Single)
        .build()
        .unwrap()
        .split();
    {
        let mut w = p.enqueue_start(4);
        w.push(1).unwrap();
    }
    assert!(c.is_empty(), "a dropped write guard publishes nothing");
    p.enqueue_bulk(&[5, 6, 7]).unwrap();
    {
        let mut g = c.dequeue_start(4);
        assert_eq!(g.pop(), Some(5));
        // dropped: only the popped one is consumed
    }
    assert_eq!(c.len(), 2);
    assert_eq!(c.dequeue(), Some(6));
    assert!(p.enqueue_start_bulk(4).is_err());
    assert_eq!(p.enqueue_start_bulk(3).unwrap().len(), 3);
}

#[test]
fn what_each_mode_lets_an_end_do_is_in_its_type() {
    use pktmem_ring::{Consumer, Multi, Producer, Rts};
    fn shared<E: Clone + Send + Sync>() {}
    fn single<E: Send>() {}
    fn by_reference<E: Send + Sync>() {}
    by_reference::<Ring<String, Rts, Hts>>();
    shared::<Producer<String, Multi>>();
    shared::<Consumer<String, Multi>>();
    shared::<Producer<String, Hts>>();
    shared::<Consumer<String, Hts>>();
    shared::<Producer<String, Rts>>();
    shared::<Consumer<String, Rts>>();
    single::<Producer<String, Single>>();
    single::<Consumer<String, Single>>();
    // (`Producer<_, Single>: !Sync + !Clone` and zero-copy only on Single
    // and Hts are the compile_fail examples in the crate docs.)
    let (mut p, mut c) = Ring::<u8>::builder(2)
        .producer(Single)
        .consumer(Hts)
        .build()
        .unwrap()
        .split();
    assert_eq!(p.enqueue_start(2).len(), 2);
    assert!(c.dequeue_start(2).is_empty());
}
