//! Differential tests: random operation sequences on every kind of ring
//! (every mode, shared rings and split ends), checked step by step against
//! a `VecDeque` bounded to the same capacity: `Copy` elements through
//! single, bulk, burst, uninit and zero-copy (up to n and all or nothing)
//! operations, and owned, drop-counted values through every owned-value
//! operation, with the count of live values checked at every step.

// Test code names ends, guards and buffers `p`, `c`, `g`, `v` as the
// crate docs do, and keeps each randomised sequence in one function.
#![allow(
    clippy::many_single_char_names,
    clippy::similar_names,
    clippy::too_many_lines
)]

mod common;

use std::collections::VecDeque;
use std::mem::MaybeUninit;

use arrayvec::ArrayVec;
use common::{all_kinds, Drops, Elem, Rng, Tracked};
use pktmem_ring::{
    Consumer, Hts, InPlaceMode, Mode, Multi, Producer, Ring, RingEmpty, RingFull, Rts, Single,
};

fn run<T: Elem>(seed: u64, capacity: usize, dpdk: bool, start: u32, steps: usize) {
    for (name, mut q) in all_kinds::<T>(capacity, dpdk, start) {
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
            let op = rng.below(12);
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
                10 => {
                    let v = fresh(k);
                    if let Some(r) = q.enq_zc_bulk(&v) {
                        if k <= free {
                            assert_eq!(r, Ok(()), "{ctx}");
                            model.extend(&v);
                        } else {
                            assert_eq!(r, Err(RingFull { requested: k, free }), "{ctx}");
                        }
                    }
                }
                11 => {
                    let mut out = vec![T::make(u64::MAX); k];
                    if let Some(r) = q.deq_zc_bulk(&mut out) {
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
        run::<u32>(seed, 8, true, u32::MAX - 50, 600);
        run::<u64>(seed, 5, false, 0, 600);
        run::<[u64; 2]>(seed, 16, true, u32::MAX - 1000, 600);
        run::<[u32; 5]>(seed, 7, false, u32::MAX - 3, 600);
        run::<u64>(seed, 1, false, u32::MAX, 200);
    }
}

#[test]
fn long_sequence_on_a_larger_ring() {
    run::<u64>(0xDEAD_BEEF, 64, true, u32::MAX - 5_000, 20_000);
}

// ---- owned values ---------------------------------------------------------

/// One way of driving a ring of owned, drop-counted values.
trait OwnedQ {
    fn enq(&mut self, v: Tracked) -> Result<(), Tracked>;
    fn deq(&mut self) -> Option<Tracked>;
    fn enq_bulk_vec(&mut self, src: &mut Vec<Tracked>) -> Result<(), RingFull>;
    fn enq_burst_vec(&mut self, src: &mut Vec<Tracked>) -> usize;
    fn enq_bulk_av(&mut self, src: &mut ArrayVec<Tracked, 8>) -> Result<(), RingFull>;
    fn enq_burst_av(&mut self, src: &mut ArrayVec<Tracked, 8>) -> usize;
    fn deq_bulk_uninit(&mut self, k: usize) -> Result<Vec<Tracked>, RingEmpty>;
    fn deq_burst_uninit(&mut self, k: usize) -> Vec<Tracked>;
    fn deq_into_vec(&mut self, max: usize) -> Vec<Tracked>;
    fn deq_into_av(&mut self, max: usize) -> ArrayVec<Tracked, 8>;
    /// Zero-copy: push from the front of `src` into up to `src.len()`
    /// reserved slots; commit them, or drop the guard (dropping them).
    /// Returns how many were pushed; `None` if the end has no zero-copy.
    fn enq_zc(&mut self, src: &mut Vec<Tracked>, commit: bool) -> Option<usize>;
    /// Zero-copy: reserve up to `max`, check the peeked ids against
    /// `expect`, pop `pops`, finish `take` more (or just drop the guard);
    /// returns the popped values and how many were consumed in all.
    fn deq_zc(
        &mut self,
        max: usize,
        expect: &[u64],
        pops: usize,
        take: Option<usize>,
    ) -> Option<(Vec<Tracked>, usize)>;
    fn len(&self) -> usize;
}

fn read_out(vals: &mut [Tracked]) -> Vec<Tracked> {
    // SAFETY: `vals` are initialised values the ring handed out into
    // `MaybeUninit` memory, which never drops them; each is read once.
    vals.iter().map(|v| unsafe { std::ptr::read(v) }).collect()
}

fn zc_push<M: InPlaceMode>(
    p: &mut Producer<Tracked, M>,
    src: &mut Vec<Tracked>,
    commit: bool,
) -> usize {
    let mut g = p.enqueue_start(src.len());
    let n = g.len();
    for v in src.drain(..n) {
        g.push(v).unwrap();
    }
    assert_eq!(g.filled(), n);
    if commit {
        assert_eq!(g.commit(), n);
    }
    n
}

fn zc_take<M: InPlaceMode>(
    c: &mut Consumer<Tracked, M>,
    max: usize,
    expect: &[u64],
    pops: usize,
    take: Option<usize>,
) -> (Vec<Tracked>, usize) {
    let mut g = c.dequeue_start(max);
    let n = g.len();
    assert_eq!(n, max.min(expect.len()));
    let (a, b) = g.as_slices();
    let seen: Vec<u64> = a.iter().chain(b).map(|t| t.id).collect();
    assert_eq!(&seen[..], &expect[..n], "peek");
    assert!(a.iter().chain(b).all(Tracked::intact));
    let mut popped = Vec::new();
    while popped.len() < pops {
        match g.pop() {
            Some(v) => popped.push(v),
            None => break,
        }
    }
    let p = popped.len();
    let consumed = match take {
        Some(k) => {
            let left = g.len();
            g.finish(k);
            p + k.min(left)
        }
        None => p,
    };
    (popped, consumed)
}

/// Which modes have zero-copy, for owned values.
trait OwnedZc: Mode {
    fn end_enq(_: &mut Producer<Tracked, Self>, _: &mut Vec<Tracked>, _: bool) -> Option<usize> {
        None
    }
    fn end_deq(
        _: &mut Consumer<Tracked, Self>,
        _: usize,
        _: &[u64],
        _: usize,
        _: Option<usize>,
    ) -> Option<(Vec<Tracked>, usize)> {
        None
    }
}
impl OwnedZc for Multi {}
impl OwnedZc for Rts {}
impl OwnedZc for Single {
    fn end_enq(
        p: &mut Producer<Tracked, Self>,
        s: &mut Vec<Tracked>,
        commit: bool,
    ) -> Option<usize> {
        Some(zc_push(p, s, commit))
    }
    fn end_deq(
        c: &mut Consumer<Tracked, Self>,
        max: usize,
        expect: &[u64],
        pops: usize,
        take: Option<usize>,
    ) -> Option<(Vec<Tracked>, usize)> {
        Some(zc_take(c, max, expect, pops, take))
    }
}
impl OwnedZc for Hts {
    fn end_enq(
        p: &mut Producer<Tracked, Self>,
        s: &mut Vec<Tracked>,
        commit: bool,
    ) -> Option<usize> {
        Some(zc_push(p, s, commit))
    }
    fn end_deq(
        c: &mut Consumer<Tracked, Self>,
        max: usize,
        expect: &[u64],
        pops: usize,
        take: Option<usize>,
    ) -> Option<(Vec<Tracked>, usize)> {
        Some(zc_take(c, max, expect, pops, take))
    }
}

struct Ends<P: Mode, C: Mode> {
    p: Producer<Tracked, P>,
    c: Consumer<Tracked, C>,
}

impl<P: OwnedZc, C: OwnedZc> OwnedQ for Ends<P, C> {
    fn enq(&mut self, v: Tracked) -> Result<(), Tracked> {
        self.p.enqueue(v)
    }
    fn deq(&mut self) -> Option<Tracked> {
        self.c.dequeue()
    }
    fn enq_bulk_vec(&mut self, src: &mut Vec<Tracked>) -> Result<(), RingFull> {
        self.p.enqueue_bulk_from(src)
    }
    fn enq_burst_vec(&mut self, src: &mut Vec<Tracked>) -> usize {
        self.p.enqueue_burst_from(src)
    }
    fn enq_bulk_av(&mut self, src: &mut ArrayVec<Tracked, 8>) -> Result<(), RingFull> {
        self.p.enqueue_bulk_from(src)
    }
    fn enq_burst_av(&mut self, src: &mut ArrayVec<Tracked, 8>) -> usize {
        self.p.enqueue_burst_from(src)
    }
    fn deq_bulk_uninit(&mut self, k: usize) -> Result<Vec<Tracked>, RingEmpty> {
        let mut buf: Vec<MaybeUninit<Tracked>> = (0..k).map(|_| MaybeUninit::uninit()).collect();
        self.c.dequeue_bulk_uninit(&mut buf).map(read_out)
    }
    fn deq_burst_uninit(&mut self, k: usize) -> Vec<Tracked> {
        let mut buf: Vec<MaybeUninit<Tracked>> = (0..k).map(|_| MaybeUninit::uninit()).collect();
        read_out(self.c.dequeue_burst_uninit(&mut buf))
    }
    fn deq_into_vec(&mut self, max: usize) -> Vec<Tracked> {
        let mut v = Vec::new();
        let n = self.c.dequeue_burst_into(&mut v, max);
        assert_eq!(n, v.len());
        v
    }
    fn deq_into_av(&mut self, max: usize) -> ArrayVec<Tracked, 8> {
        let mut v = ArrayVec::new();
        let n = self.c.dequeue_burst_into(&mut v, max);
        assert_eq!(n, v.len());
        v
    }
    fn enq_zc(&mut self, src: &mut Vec<Tracked>, commit: bool) -> Option<usize> {
        P::end_enq(&mut self.p, src, commit)
    }
    fn deq_zc(
        &mut self,
        max: usize,
        expect: &[u64],
        pops: usize,
        take: Option<usize>,
    ) -> Option<(Vec<Tracked>, usize)> {
        C::end_deq(&mut self.c, max, expect, pops, take)
    }
    fn len(&self) -> usize {
        self.c.len()
    }
}

/// A shared ring of owned values (multi-thread sides), driven by reference.
struct SharedOwned<P: Mode, C: Mode>(Ring<Tracked, P, C>);

impl OwnedQ for SharedOwned<Multi, Hts> {
    fn enq(&mut self, v: Tracked) -> Result<(), Tracked> {
        self.0.enqueue(v)
    }
    fn deq(&mut self) -> Option<Tracked> {
        self.0.dequeue()
    }
    fn enq_bulk_vec(&mut self, src: &mut Vec<Tracked>) -> Result<(), RingFull> {
        self.0.enqueue_bulk_from(src)
    }
    fn enq_burst_vec(&mut self, src: &mut Vec<Tracked>) -> usize {
        self.0.enqueue_burst_from(src)
    }
    fn enq_bulk_av(&mut self, src: &mut ArrayVec<Tracked, 8>) -> Result<(), RingFull> {
        self.0.enqueue_bulk_from(src)
    }
    fn enq_burst_av(&mut self, src: &mut ArrayVec<Tracked, 8>) -> usize {
        self.0.enqueue_burst_from(src)
    }
    fn deq_bulk_uninit(&mut self, k: usize) -> Result<Vec<Tracked>, RingEmpty> {
        let mut buf: Vec<MaybeUninit<Tracked>> = (0..k).map(|_| MaybeUninit::uninit()).collect();
        self.0.dequeue_bulk_uninit(&mut buf).map(read_out)
    }
    fn deq_burst_uninit(&mut self, k: usize) -> Vec<Tracked> {
        let mut buf: Vec<MaybeUninit<Tracked>> = (0..k).map(|_| MaybeUninit::uninit()).collect();
        read_out(self.0.dequeue_burst_uninit(&mut buf))
    }
    fn deq_into_vec(&mut self, max: usize) -> Vec<Tracked> {
        let mut v = Vec::new();
        self.0.dequeue_burst_into(&mut v, max);
        v
    }
    fn deq_into_av(&mut self, max: usize) -> ArrayVec<Tracked, 8> {
        let mut v = ArrayVec::new();
        self.0.dequeue_burst_into(&mut v, max);
        v
    }
    fn enq_zc(&mut self, _: &mut Vec<Tracked>, _: bool) -> Option<usize> {
        None
    }
    fn deq_zc(
        &mut self,
        max: usize,
        expect: &[u64],
        pops: usize,
        take: Option<usize>,
    ) -> Option<(Vec<Tracked>, usize)> {
        let mut g = self.0.dequeue_start(max);
        assert_eq!(g.len(), max.min(expect.len()));
        for (i, id) in expect.iter().take(g.len()).enumerate() {
            assert_eq!(g.get(i).map(|t| t.id), Some(*id), "peek");
        }
        let mut popped = Vec::new();
        while popped.len() < pops {
            match g.pop() {
                Some(v) => popped.push(v),
                None => break,
            }
        }
        let p = popped.len();
        let consumed = match take {
            Some(k) => {
                let left = g.len();
                g.finish(k);
                p + k.min(left)
            }
            None => p,
        };
        Some((popped, consumed))
    }
    fn len(&self) -> usize {
        self.0.len()
    }
}

fn owned_kinds(capacity: usize, start: u32) -> Vec<(String, Box<dyn OwnedQ>)> {
    fn ends<P: OwnedZc, C: OwnedZc>(
        v: &mut Vec<(String, Box<dyn OwnedQ>)>,
        capacity: usize,
        start: u32,
        p: P,
        c: C,
    ) {
        let (p, c) = Ring::<Tracked>::builder(capacity)
            .initial_index(start)
            .producer(p)
            .consumer(c)
            .build()
            .unwrap()
            .split();
        v.push((
            format!("ends {}/{}", P::NAME, C::NAME),
            Box::new(Ends { p, c }),
        ));
    }
    fn for_producer<P: OwnedZc>(
        v: &mut Vec<(String, Box<dyn OwnedQ>)>,
        capacity: usize,
        start: u32,
        p: P,
    ) {
        ends(v, capacity, start, p, Single);
        ends(v, capacity, start, p, Multi);
        ends(v, capacity, start, p, Hts);
        ends(v, capacity, start, p, Rts);
    }
    let mut v: Vec<(String, Box<dyn OwnedQ>)> = Vec::new();
    for_producer(&mut v, capacity, start, Single);
    for_producer(&mut v, capacity, start, Multi);
    for_producer(&mut v, capacity, start, Hts);
    for_producer(&mut v, capacity, start, Rts);
    let r = Ring::<Tracked>::builder(capacity)
        .initial_index(start)
        .consumer(Hts)
        .build()
        .unwrap();
    v.push(("shared multi/hts".into(), Box::new(SharedOwned(r))));
    v
}

/// Random owned-value operations against a `VecDeque` of ids; every value
/// made is dropped exactly once, and at every step the values alive are
/// exactly those the model says are in the ring.
fn run_owned(seed: u64, capacity: usize, start: u32, steps: usize) {
    for (name, mut q) in owned_kinds(capacity, start) {
        let drops = Drops::new(steps * (capacity + 3) + 16);
        let mut model: VecDeque<u64> = VecDeque::new();
        let mut rng = Rng(seed | 1);
        let mut next = 0u64;
        let mut fresh = |k: usize| -> Vec<Tracked> {
            let v = (next..next + k as u64).map(|i| drops.make(i)).collect();
            next += k as u64;
            v
        };
        let check_out = |got: &[Tracked], model: &mut VecDeque<u64>, ctx: &str| {
            for t in got {
                assert!(t.intact(), "{ctx}: corrupt value");
                assert_eq!(Some(t.id), model.pop_front(), "{ctx}: order");
            }
        };
        for step in 0..steps {
            let k = rng.below(capacity as u64 + 3) as usize;
            let op = rng.below(12);
            let free = capacity - model.len();
            let ctx = format!("{name} seed {seed} step {step} op {op} k {k}");
            match op {
                0 => {
                    let v = fresh(1).pop().unwrap();
                    let id = v.id;
                    match q.enq(v) {
                        Ok(()) => {
                            assert!(free > 0, "{ctx}");
                            model.push_back(id);
                        }
                        Err(back) => {
                            assert_eq!(free, 0, "{ctx}");
                            assert_eq!(back.id, id, "{ctx}: handed back");
                        }
                    }
                }
                1 => {
                    let got: Vec<Tracked> = q.deq().into_iter().collect();
                    assert_eq!(got.len(), usize::from(!model.is_empty()), "{ctx}");
                    check_out(&got, &mut model, &ctx);
                }
                2 | 3 => {
                    let mut v = fresh(k);
                    let ids: Vec<u64> = v.iter().map(|t| t.id).collect();
                    if op == 2 {
                        let r = q.enq_bulk_vec(&mut v);
                        if k <= free {
                            assert_eq!(r, Ok(()), "{ctx}");
                            assert!(v.is_empty(), "{ctx}: all moved");
                            model.extend(&ids);
                        } else {
                            assert_eq!(r, Err(RingFull { requested: k, free }), "{ctx}");
                            assert_eq!(v.len(), k, "{ctx}: nothing moved");
                        }
                    } else {
                        let n = q.enq_burst_vec(&mut v);
                        assert_eq!(n, k.min(free), "{ctx}");
                        model.extend(&ids[..n]);
                        let left: Vec<u64> = v.iter().map(|t| t.id).collect();
                        assert_eq!(left, ids[n..], "{ctx}: the rest stays, in order");
                    }
                }
                4 => {
                    let mut v: ArrayVec<Tracked, 8> = fresh(k.min(8)).into_iter().collect();
                    let ids: Vec<u64> = v.iter().map(|t| t.id).collect();
                    let k = ids.len();
                    if rng.below(2) == 0 {
                        match q.enq_bulk_av(&mut v) {
                            Ok(()) => {
                                assert!(k <= free && v.is_empty(), "{ctx}");
                                model.extend(&ids);
                            }
                            Err(e) => {
                                assert_eq!(e, RingFull { requested: k, free }, "{ctx}");
                                assert_eq!(v.len(), k, "{ctx}");
                            }
                        }
                    } else {
                        let n = q.enq_burst_av(&mut v);
                        assert_eq!(n, k.min(free), "{ctx}");
                        model.extend(&ids[..n]);
                        assert_eq!(v.len(), k - n, "{ctx}");
                    }
                }
                5 => match q.deq_bulk_uninit(k) {
                    Ok(got) => {
                        assert!(k <= model.len(), "{ctx}");
                        check_out(&got, &mut model, &ctx);
                    }
                    Err(e) => assert_eq!(
                        e,
                        RingEmpty {
                            requested: k,
                            available: model.len()
                        },
                        "{ctx}"
                    ),
                },
                6 => {
                    let got = q.deq_burst_uninit(k);
                    assert_eq!(got.len(), k.min(model.len()), "{ctx}");
                    check_out(&got, &mut model, &ctx);
                }
                7 => {
                    let got = q.deq_into_vec(k);
                    assert_eq!(got.len(), k.min(model.len()), "{ctx}");
                    check_out(&got, &mut model, &ctx);
                }
                8 => {
                    let got = q.deq_into_av(k);
                    assert_eq!(got.len(), k.min(model.len()).min(8), "{ctx}");
                    check_out(&got, &mut model, &ctx);
                }
                9 => {
                    let mut v = fresh(k);
                    let ids: Vec<u64> = v.iter().map(|t| t.id).collect();
                    let commit = rng.below(4) != 0;
                    if let Some(n) = q.enq_zc(&mut v, commit) {
                        assert_eq!(n, k.min(free), "{ctx}");
                        if commit {
                            model.extend(&ids[..n]);
                        } else {
                            for id in &ids[..n] {
                                assert_eq!(drops.dropped(*id), 1, "{ctx}: dropped with the guard");
                            }
                        }
                    }
                }
                _ => {
                    let expect: Vec<u64> = model.iter().copied().collect();
                    let pops = rng.below(3) as usize;
                    let take = match rng.below(3) {
                        0 => None,
                        _ => Some(rng.below(k as u64 + 2) as usize),
                    };
                    if let Some((popped, consumed)) = q.deq_zc(k, &expect, pops, take) {
                        let n = k.min(model.len());
                        assert!(consumed <= n, "{ctx}");
                        assert_eq!(popped.len(), pops.min(n), "{ctx}");
                        check_out(&popped, &mut model, &ctx);
                        for _ in popped.len()..consumed {
                            let id = model.pop_front().unwrap();
                            assert_eq!(drops.dropped(id), 1, "{ctx}: finish drops in place");
                        }
                    }
                }
            }
            // Everything outside the ring was dropped by now (sources and
            // outputs are dropped at the end of each step).
            assert_eq!(q.len(), model.len(), "{ctx}: len");
            assert_eq!(drops.live(), model.len(), "{ctx}: live values");
        }
        drop(q);
        assert_eq!(drops.live(), 0, "{name}: the ring dropped what it held");
        drops.assert_all_dropped_once(next);
    }
}

#[test]
fn owned_values_match_vecdeque_and_drop_once() {
    for seed in 1..=6u64 {
        let seed = seed.wrapping_mul(0x2545_F491_4F6C_DD1D);
        run_owned(seed, 5, u32::MAX - 20, 300);
        run_owned(seed, 8, 0, 300);
        run_owned(seed, 1, u32::MAX, 100);
    }
}
