//! Differential test: random operation sequences on every kind of ring end,
//! checked step by step against a `VecDeque` bounded to the same capacity.

mod ring_common;

use std::collections::VecDeque;

use pktmem::ring::{RingEmpty, RingFull};
use ring_common::{all_kinds, Elem, Rng};

fn run<T: Elem>(seed: u64, capacity: usize, exact: bool, start: u32, steps: usize) {
    for (name, mut q) in all_kinds::<T>(capacity, exact, start) {
        let cap = q.cap();
        let mut model: VecDeque<T> = VecDeque::new();
        let mut rng = Rng(seed | 1);
        let mut next = 0u64;
        let mut fresh = |k: usize| -> Vec<T> {
            let v = (next..next + k as u64).map(T::make).collect();
            next += k as u64;
            v
        };
        for step in 0..steps {
            let k = rng.below(cap as u64 + 3) as usize;
            let op = rng.below(10);
            let free = cap - model.len();
            let ctx = format!("{name} seed {seed} step {step} op {op} k {k}");
            match op {
                0 => {
                    let v = fresh(1)[0];
                    let r = q.enq(v);
                    if free > 0 {
                        assert_eq!(r, Ok(()), "{ctx}");
                        model.push_back(v);
                    } else {
                        assert_eq!(r, Err(v), "{ctx}");
                    }
                }
                1 => assert_eq!(q.deq(), model.pop_front(), "{ctx}"),
                2 => {
                    let v = fresh(k);
                    let r = q.enq_bulk(&v);
                    if k <= free {
                        assert_eq!(r, Ok(()), "{ctx}");
                        model.extend(&v);
                    } else {
                        assert_eq!(r, Err(RingFull { requested: k, free }), "{ctx}");
                    }
                }
                3 | 4 => {
                    let mut out = vec![T::make(u64::MAX); k];
                    let r = if op == 3 {
                        q.deq_bulk(&mut out)
                    } else {
                        q.deq_bulk_uninit(&mut out)
                    };
                    if k <= model.len() {
                        assert_eq!(r, Ok(()), "{ctx}");
                        let want: Vec<T> = model.drain(..k).collect();
                        assert_eq!(out, want, "{ctx}");
                    } else {
                        let e = RingEmpty {
                            requested: k,
                            available: model.len(),
                        };
                        assert_eq!(r, Err(e), "{ctx}");
                    }
                }
                5 => {
                    let v = fresh(k);
                    let n = q.enq_burst(&v);
                    assert_eq!(n, k.min(free), "{ctx}");
                    model.extend(&v[..n]);
                }
                6 | 7 => {
                    let mut out = vec![T::make(u64::MAX); k];
                    let n = if op == 6 {
                        q.deq_burst(&mut out)
                    } else {
                        q.deq_burst_uninit(&mut out)
                    };
                    assert_eq!(n, k.min(model.len()), "{ctx}");
                    let want: Vec<T> = model.drain(..n).collect();
                    assert_eq!(&out[..n], &want[..], "{ctx}");
                }
                8 => {
                    let v = fresh(k);
                    if let Some(n) = q.enq_zc(&v) {
                        assert_eq!(n, k.min(free), "{ctx}");
                        model.extend(&v[..n]);
                    }
                }
                _ => {
                    let take = rng.below(k as u64 + 2) as usize;
                    let mut out = vec![T::make(u64::MAX); k];
                    if let Some(n) = q.deq_zc(&mut out, take) {
                        assert_eq!(n, k.min(model.len()), "{ctx}");
                        let seen: Vec<T> = model.iter().take(n).copied().collect();
                        assert_eq!(&out[..n], &seen[..], "{ctx}: peek");
                        model.drain(..take.min(n));
                    }
                }
            }
            assert_eq!(q.len(), model.len(), "{ctx}: len");
            assert_eq!(q.free(), cap - model.len(), "{ctx}: free");
            assert_eq!(q.empty(), model.is_empty(), "{ctx}");
            assert_eq!(q.full(), model.len() == cap, "{ctx}");
        }
        // Drain and compare the rest.
        let mut out = vec![T::make(0); cap];
        let n = q.deq_burst(&mut out);
        assert_eq!(
            &out[..n],
            &model.drain(..).collect::<Vec<_>>()[..],
            "{name}: tail"
        );
    }
}

#[test]
fn random_sequences_match_vecdeque() {
    for seed in 1..=12u64 {
        let seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        run::<u32>(seed, 8, false, u32::MAX - 50, 600);
        run::<u64>(seed, 5, true, 0, 600);
        run::<[u64; 2]>(seed, 16, false, u32::MAX - 1000, 600);
        run::<[u32; 5]>(seed, 7, true, u32::MAX - 3, 600);
        run::<u64>(seed, 1, true, u32::MAX, 200);
    }
}

#[test]
fn long_sequence_on_a_larger_ring() {
    run::<u64>(0xDEAD_BEEF, 64, false, u32::MAX - 5_000, 20_000);
}
