//! Shared helpers for the ring's behaviour tests (`mod common;` in each
//! `ring/tests/*.rs`): element types, every way of building and driving a
//! ring behind one trait, a drop-counted owned value, a tiny PRNG.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;

use pktmem_ring::{
    Consumer, Hts, InPlaceMode, Mode, Multi, Producer, Ring, RingBuilder, RingEmpty, RingFull, Rts,
    SharedMode, Single,
};

/// Elements of the sizes the ring must carry: 4, 8, 16 and 20 bytes.
pub trait Elem: Copy + Send + PartialEq + std::fmt::Debug + 'static {
    fn make(i: u64) -> Self;
}
impl Elem for u32 {
    fn make(i: u64) -> Self {
        i as u32
    }
}
impl Elem for u64 {
    fn make(i: u64) -> Self {
        i.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}
impl Elem for [u64; 2] {
    fn make(i: u64) -> Self {
        [i, !i]
    }
}
impl Elem for [u32; 5] {
    fn make(i: u64) -> Self {
        let i = i as u32;
        [i, i ^ 1, i ^ 2, i ^ 3, !i]
    }
}

/// One way of driving a ring: a shared ring or a pair of ends.
pub trait Q<T> {
    fn enq(&mut self, v: T) -> Result<(), T>;
    fn deq(&mut self) -> Option<T>;
    fn enq_bulk(&mut self, s: &[T]) -> Result<(), RingFull>;
    fn deq_bulk(&mut self, o: &mut [T]) -> Result<(), RingEmpty>;
    fn deq_bulk_uninit(&mut self, o: &mut [T]) -> Result<(), RingEmpty>;
    fn enq_burst(&mut self, s: &[T]) -> usize;
    fn deq_burst(&mut self, o: &mut [T]) -> usize;
    fn deq_burst_uninit(&mut self, o: &mut [T]) -> usize;
    /// Zero-copy enqueue of up to `s.len()` (burst); `None` if this end has none.
    fn enq_zc(&mut self, s: &[T]) -> Option<usize>;
    /// Zero-copy all-or-nothing enqueue of `s`; `None` if this end has none,
    /// else whether it went in.
    fn enq_zc_bulk(&mut self, s: &[T]) -> Option<Result<(), RingFull>>;
    /// Peek up to `o.len()` into `o`, consume `take` of them; `None` if unsupported.
    fn deq_zc(&mut self, o: &mut [T], take: usize) -> Option<usize>;
    /// Zero-copy all-or-nothing dequeue of `o.len()`; `None` if unsupported.
    fn deq_zc_bulk(&mut self, o: &mut [T]) -> Option<Result<(), RingEmpty>>;
    fn len(&self) -> usize;
    fn free(&self) -> usize;
    fn cap(&self) -> usize;
    fn full(&self) -> bool;
    fn empty(&self) -> bool;
}

fn uninit_bulk<T: Copy>(
    o: &mut [T],
    f: impl FnOnce(&mut [std::mem::MaybeUninit<T>]) -> Result<usize, RingEmpty>,
) -> Result<(), RingEmpty> {
    let mut buf = vec![std::mem::MaybeUninit::<T>::uninit(); o.len()];
    let n = f(&mut buf)?;
    assert_eq!(n, o.len());
    for (d, s) in o.iter_mut().zip(&buf) {
        // SAFETY: the ring initialised all of `buf` on success.
        *d = unsafe { s.assume_init() };
    }
    Ok(())
}

fn uninit_burst<T: Copy>(
    o: &mut [T],
    f: impl FnOnce(&mut [std::mem::MaybeUninit<T>]) -> Vec<T>,
) -> usize {
    let mut buf = vec![std::mem::MaybeUninit::<T>::uninit(); o.len()];
    let got = f(&mut buf);
    o[..got.len()].copy_from_slice(&got);
    got.len()
}

/// Zero-copy enqueue on an in-place end, alternating the ways of filling a
/// guard: push, write in place, extend from a slice.
fn zc_enq<T: Elem, M: InPlaceMode>(p: &mut Producer<T, M>, s: &[T]) -> usize {
    let mut g = p.enqueue_start(s.len());
    match s.len() % 3 {
        0 => {
            for v in s.iter().take(g.len()) {
                g.push(*v).unwrap();
            }
            g.commit()
        }
        1 => {
            let n = g.len();
            let (a, b) = g.as_mut_slices();
            assert_eq!(a.len() + b.len(), n);
            for (d, v) in a.iter_mut().chain(b.iter_mut()).zip(s) {
                d.write(*v);
            }
            // SAFETY: all `n` reserved slots were written just above.
            unsafe { g.commit_unchecked(n) };
            n
        }
        _ => {
            let k = g.extend_from_slice(s);
            assert_eq!(g.filled(), k);
            assert_eq!(g.commit(), k);
            k
        }
    }
}

fn zc_enq_bulk<T: Elem, M: InPlaceMode>(p: &mut Producer<T, M>, s: &[T]) -> Result<(), RingFull> {
    let mut g = p.enqueue_start_bulk(s.len())?;
    assert_eq!(g.len(), s.len());
    assert_eq!(g.extend_from_slice(s), s.len());
    assert_eq!(g.commit(), s.len());
    Ok(())
}

/// Peek on an in-place end: the slices, `get` and `copy_to` agree; pop the
/// first of `take` when odd, finish the rest.
fn zc_deq<T: Elem, M: InPlaceMode>(c: &mut Consumer<T, M>, o: &mut [T], take: usize) -> usize {
    let mut g = c.dequeue_start(o.len());
    let (a, b) = g.as_slices();
    let n = a.len() + b.len();
    assert_eq!(n, g.len());
    o[..a.len()].copy_from_slice(a);
    o[a.len()..n].copy_from_slice(b);
    let mut check = o[..n].to_vec();
    assert_eq!(g.copy_to(&mut check), n);
    assert_eq!(&check[..], &o[..n]);
    for (i, v) in o[..n].iter().enumerate() {
        assert_eq!(g.get(i), Some(v));
    }
    assert_eq!(g.get(n), None);
    let mut take = take;
    if take % 2 == 1 && n > 0 {
        assert_eq!(g.pop(), Some(o[0]));
        assert_eq!(g.len(), n - 1);
        take -= 1;
    }
    g.finish(take);
    n
}

fn zc_deq_bulk<T: Elem, M: InPlaceMode>(
    c: &mut Consumer<T, M>,
    o: &mut [T],
) -> Result<(), RingEmpty> {
    let g = c.dequeue_start_bulk(o.len())?;
    assert_eq!(g.copy_to(o), o.len());
    g.finish_all();
    Ok(())
}

/// Which modes have zero-copy, on a shared ring and on ends.
pub trait Zc: Mode {
    fn ring_enq<T: Elem, C: Mode>(_: &Ring<T, Self, C>, _: &[T]) -> Option<usize> {
        None
    }
    fn ring_enq_bulk<T: Elem, C: Mode>(
        _: &Ring<T, Self, C>,
        _: &[T],
    ) -> Option<Result<(), RingFull>> {
        None
    }
    fn ring_deq<T: Elem, P: Mode>(_: &Ring<T, P, Self>, _: &mut [T], _: usize) -> Option<usize> {
        None
    }
    fn ring_deq_bulk<T: Elem, P: Mode>(
        _: &Ring<T, P, Self>,
        _: &mut [T],
    ) -> Option<Result<(), RingEmpty>> {
        None
    }
    fn end_enq<T: Elem>(_: &mut Producer<T, Self>, _: &[T]) -> Option<usize> {
        None
    }
    fn end_enq_bulk<T: Elem>(_: &mut Producer<T, Self>, _: &[T]) -> Option<Result<(), RingFull>> {
        None
    }
    fn end_deq<T: Elem>(_: &mut Consumer<T, Self>, _: &mut [T], _: usize) -> Option<usize> {
        None
    }
    fn end_deq_bulk<T: Elem>(
        _: &mut Consumer<T, Self>,
        _: &mut [T],
    ) -> Option<Result<(), RingEmpty>> {
        None
    }
}
impl Zc for Multi {}
impl Zc for Rts {}
impl Zc for Single {
    fn end_enq<T: Elem>(p: &mut Producer<T, Self>, s: &[T]) -> Option<usize> {
        Some(zc_enq(p, s))
    }
    fn end_enq_bulk<T: Elem>(p: &mut Producer<T, Self>, s: &[T]) -> Option<Result<(), RingFull>> {
        Some(zc_enq_bulk(p, s))
    }
    fn end_deq<T: Elem>(c: &mut Consumer<T, Self>, o: &mut [T], take: usize) -> Option<usize> {
        Some(zc_deq(c, o, take))
    }
    fn end_deq_bulk<T: Elem>(
        c: &mut Consumer<T, Self>,
        o: &mut [T],
    ) -> Option<Result<(), RingEmpty>> {
        Some(zc_deq_bulk(c, o))
    }
}
impl Zc for Hts {
    fn ring_enq<T: Elem, C: Mode>(r: &Ring<T, Self, C>, s: &[T]) -> Option<usize> {
        let mut g = r.enqueue_start(s.len());
        let k = g.extend_from_slice(s);
        assert_eq!(g.commit(), k);
        Some(k)
    }
    fn ring_enq_bulk<T: Elem, C: Mode>(
        r: &Ring<T, Self, C>,
        s: &[T],
    ) -> Option<Result<(), RingFull>> {
        Some(r.enqueue_start_bulk(s.len()).map(|mut g| {
            for v in s {
                g.push(*v).unwrap();
            }
            assert_eq!(g.commit(), s.len());
        }))
    }
    fn ring_deq<T: Elem, P: Mode>(r: &Ring<T, P, Self>, o: &mut [T], take: usize) -> Option<usize> {
        let g = r.dequeue_start(o.len());
        let n = g.copy_to(o);
        assert_eq!(n, g.len());
        for (i, v) in o[..n].iter().enumerate() {
            assert_eq!(g.get(i), Some(v));
        }
        assert_eq!(g.get(n), None);
        g.finish(take);
        Some(n)
    }
    fn ring_deq_bulk<T: Elem, P: Mode>(
        r: &Ring<T, P, Self>,
        o: &mut [T],
    ) -> Option<Result<(), RingEmpty>> {
        Some(r.dequeue_start_bulk(o.len()).map(|g| {
            assert_eq!(g.copy_to(o), o.len());
            g.finish_all();
        }))
    }
    fn end_enq<T: Elem>(p: &mut Producer<T, Self>, s: &[T]) -> Option<usize> {
        Some(zc_enq(p, s))
    }
    fn end_enq_bulk<T: Elem>(p: &mut Producer<T, Self>, s: &[T]) -> Option<Result<(), RingFull>> {
        Some(zc_enq_bulk(p, s))
    }
    fn end_deq<T: Elem>(c: &mut Consumer<T, Self>, o: &mut [T], take: usize) -> Option<usize> {
        Some(zc_deq(c, o, take))
    }
    fn end_deq_bulk<T: Elem>(
        c: &mut Consumer<T, Self>,
        o: &mut [T],
    ) -> Option<Result<(), RingEmpty>> {
        Some(zc_deq_bulk(c, o))
    }
}

/// A ring used through `&Ring` (both sides of a shared mode).
pub struct Shared<T, P, C>(pub Ring<T, P, C>);

impl<T: Elem, P: SharedMode + Zc, C: SharedMode + Zc> Q<T> for Shared<T, P, C> {
    fn enq(&mut self, v: T) -> Result<(), T> {
        self.0.enqueue(v)
    }
    fn deq(&mut self) -> Option<T> {
        self.0.dequeue()
    }
    fn enq_bulk(&mut self, s: &[T]) -> Result<(), RingFull> {
        self.0.enqueue_bulk(s)
    }
    fn deq_bulk(&mut self, o: &mut [T]) -> Result<(), RingEmpty> {
        self.0.dequeue_bulk(o)
    }
    fn deq_bulk_uninit(&mut self, o: &mut [T]) -> Result<(), RingEmpty> {
        let r = &self.0;
        uninit_bulk(o, |b| r.dequeue_bulk_uninit(b).map(|s| s.len()))
    }
    fn enq_burst(&mut self, s: &[T]) -> usize {
        self.0.enqueue_burst(s)
    }
    fn deq_burst(&mut self, o: &mut [T]) -> usize {
        self.0.dequeue_burst(o)
    }
    fn deq_burst_uninit(&mut self, o: &mut [T]) -> usize {
        let r = &self.0;
        uninit_burst(o, |b| r.dequeue_burst_uninit(b).to_vec())
    }
    fn enq_zc(&mut self, s: &[T]) -> Option<usize> {
        P::ring_enq(&self.0, s)
    }
    fn enq_zc_bulk(&mut self, s: &[T]) -> Option<Result<(), RingFull>> {
        P::ring_enq_bulk(&self.0, s)
    }
    fn deq_zc(&mut self, o: &mut [T], take: usize) -> Option<usize> {
        C::ring_deq(&self.0, o, take)
    }
    fn deq_zc_bulk(&mut self, o: &mut [T]) -> Option<Result<(), RingEmpty>> {
        C::ring_deq_bulk(&self.0, o)
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn free(&self) -> usize {
        self.0.free_count()
    }
    fn cap(&self) -> usize {
        self.0.capacity()
    }
    fn full(&self) -> bool {
        self.0.is_full()
    }
    fn empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A multi-thread ring driven by one thread, whose bulk and burst calls
/// take the `unsafe` single-thread twins (no CAS), mixed with the ordinary
/// calls on the same sides.
pub struct SoloRing<T>(pub Ring<T>);

impl<T: Elem> Q<T> for SoloRing<T> {
    fn enq(&mut self, v: T) -> Result<(), T> {
        self.0.enqueue(v)
    }
    fn deq(&mut self) -> Option<T> {
        self.0.dequeue()
    }
    fn enq_bulk(&mut self, s: &[T]) -> Result<(), RingFull> {
        // SAFETY: this thread is the ring's only user.
        unsafe { self.0.enqueue_bulk_single_producer(s) }
    }
    fn deq_bulk(&mut self, o: &mut [T]) -> Result<(), RingEmpty> {
        // SAFETY: this thread is the ring's only user.
        unsafe { self.0.dequeue_bulk_single_consumer(o) }
    }
    fn deq_bulk_uninit(&mut self, o: &mut [T]) -> Result<(), RingEmpty> {
        let r = &self.0;
        uninit_bulk(o, |b| r.dequeue_bulk_uninit(b).map(|s| s.len()))
    }
    fn enq_burst(&mut self, s: &[T]) -> usize {
        // SAFETY: this thread is the ring's only user.
        unsafe { self.0.enqueue_burst_single_producer(s) }
    }
    fn deq_burst(&mut self, o: &mut [T]) -> usize {
        // SAFETY: this thread is the ring's only user.
        unsafe { self.0.dequeue_burst_single_consumer(o) }
    }
    fn deq_burst_uninit(&mut self, o: &mut [T]) -> usize {
        let r = &self.0;
        uninit_burst(o, |b| r.dequeue_burst_uninit(b).to_vec())
    }
    fn enq_zc(&mut self, _: &[T]) -> Option<usize> {
        None
    }
    fn enq_zc_bulk(&mut self, _: &[T]) -> Option<Result<(), RingFull>> {
        None
    }
    fn deq_zc(&mut self, _: &mut [T], _: usize) -> Option<usize> {
        None
    }
    fn deq_zc_bulk(&mut self, _: &mut [T]) -> Option<Result<(), RingEmpty>> {
        None
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn free(&self) -> usize {
        self.0.free_count()
    }
    fn cap(&self) -> usize {
        self.0.capacity()
    }
    fn full(&self) -> bool {
        self.0.is_full()
    }
    fn empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A split ring: a producer end and a consumer end.
pub struct Pair<T, P: Mode, C: Mode> {
    pub p: Producer<T, P>,
    pub c: Consumer<T, C>,
}

impl<T: Elem, P: Zc, C: Zc> Q<T> for Pair<T, P, C> {
    fn enq(&mut self, v: T) -> Result<(), T> {
        self.p.enqueue(v)
    }
    fn deq(&mut self) -> Option<T> {
        self.c.dequeue()
    }
    fn enq_bulk(&mut self, s: &[T]) -> Result<(), RingFull> {
        self.p.enqueue_bulk(s)
    }
    fn deq_bulk(&mut self, o: &mut [T]) -> Result<(), RingEmpty> {
        self.c.dequeue_bulk(o)
    }
    fn deq_bulk_uninit(&mut self, o: &mut [T]) -> Result<(), RingEmpty> {
        let c = &self.c;
        uninit_bulk(o, |b| c.dequeue_bulk_uninit(b).map(|s| s.len()))
    }
    fn enq_burst(&mut self, s: &[T]) -> usize {
        self.p.enqueue_burst(s)
    }
    fn deq_burst(&mut self, o: &mut [T]) -> usize {
        self.c.dequeue_burst(o)
    }
    fn deq_burst_uninit(&mut self, o: &mut [T]) -> usize {
        let c = &self.c;
        uninit_burst(o, |b| c.dequeue_burst_uninit(b).to_vec())
    }
    fn enq_zc(&mut self, s: &[T]) -> Option<usize> {
        P::end_enq(&mut self.p, s)
    }
    fn enq_zc_bulk(&mut self, s: &[T]) -> Option<Result<(), RingFull>> {
        P::end_enq_bulk(&mut self.p, s)
    }
    fn deq_zc(&mut self, o: &mut [T], take: usize) -> Option<usize> {
        C::end_deq(&mut self.c, o, take)
    }
    fn deq_zc_bulk(&mut self, o: &mut [T]) -> Option<Result<(), RingEmpty>> {
        C::end_deq_bulk(&mut self.c, o)
    }
    fn len(&self) -> usize {
        self.p.len()
    }
    fn free(&self) -> usize {
        self.c.free_count()
    }
    fn cap(&self) -> usize {
        self.c.capacity()
    }
    fn full(&self) -> bool {
        self.p.is_full()
    }
    fn empty(&self) -> bool {
        self.c.is_empty()
    }
}

type Kinds<T> = Vec<(String, Box<dyn Q<T>>)>;

fn shared<T: Elem, P: SharedMode + Zc, C: SharedMode + Zc>(
    v: &mut Kinds<T>,
    b: &RingBuilder<T>,
    p: P,
    c: C,
) {
    let r = b.clone().producer(p).consumer(c).build().unwrap();
    v.push((
        format!("shared {}/{}", P::NAME, C::NAME),
        Box::new(Shared(r)),
    ));
}

fn pair<T: Elem, P: Zc, C: Zc>(v: &mut Kinds<T>, b: &RingBuilder<T>, p: P, c: C) {
    let (p, c) = b.clone().producer(p).consumer(c).build().unwrap().split();
    v.push((
        format!("ends {}/{}", P::NAME, C::NAME),
        Box::new(Pair { p, c }),
    ));
}

fn pairs<T: Elem, P: Zc>(v: &mut Kinds<T>, b: &RingBuilder<T>, p: P) {
    pair(v, b, p, Single);
    pair(v, b, p, Multi);
    pair(v, b, p, Hts);
    pair(v, b, p, Rts);
}

/// Every way of building and driving a ring of `capacity` (DPDK sizing or
/// exact), indices starting at `start`: shared rings of the shared modes
/// (one also through the single-thread twins), and split ends of every
/// producer/consumer mode pair.
pub fn all_kinds<T: Elem>(capacity: usize, dpdk: bool, start: u32) -> Kinds<T> {
    let mut b = Ring::<T>::builder(capacity).initial_index(start);
    if dpdk {
        b = b.dpdk_sizing();
    }
    let mut v: Kinds<T> = Vec::new();
    shared(&mut v, &b, Multi, Multi);
    shared(&mut v, &b, Hts, Hts);
    shared(&mut v, &b, Rts, Rts);
    shared(&mut v, &b, Multi, Hts);
    shared(&mut v, &b, Hts, Multi);
    shared(&mut v, &b, Rts, Hts);
    shared(&mut v, &b, Multi, Rts);
    v.push((
        "shared multi/multi, single-thread twins".into(),
        Box::new(SoloRing(b.clone().build().unwrap())),
    ));
    pairs(&mut v, &b, Single);
    pairs(&mut v, &b, Multi);
    pairs(&mut v, &b, Hts);
    pairs(&mut v, &b, Rts);
    v
}

/// xorshift64*: a tiny deterministic PRNG for the differential tests.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Records, for every owned [`Tracked`] value it made, how many times it was
/// dropped: a leak shows as 0 at the end, a double drop as 2 (and fails at
/// once, in the second drop).
#[derive(Clone)]
pub struct Drops(Arc<DropsInner>);

pub struct DropsInner {
    made: AtomicUsize,
    drops: Vec<AtomicU32>,
}

impl Drops {
    /// Room for values with ids `0..max`.
    pub fn new(max: usize) -> Self {
        Drops(Arc::new(DropsInner {
            made: AtomicUsize::new(0),
            drops: (0..max).map(|_| AtomicU32::new(0)).collect(),
        }))
    }

    /// A new owned value with id `id` (each id made once).
    pub fn make(&self, id: u64) -> Tracked {
        self.0.made.fetch_add(1, Ordering::Relaxed);
        Tracked {
            id,
            payload: Box::new(!id),
            drops: self.clone(),
        }
    }

    /// Values made and not yet dropped.
    pub fn live(&self) -> usize {
        let dropped: u32 = self.0.drops.iter().map(|d| d.load(Ordering::Relaxed)).sum();
        self.0.made.load(Ordering::Relaxed) - dropped as usize
    }

    /// Times value `id` was dropped.
    pub fn dropped(&self, id: u64) -> u32 {
        self.0.drops[id as usize].load(Ordering::Relaxed)
    }

    /// Every value made (ids `0..n`) was dropped exactly once.
    pub fn assert_all_dropped_once(&self, n: u64) {
        assert_eq!(
            self.0.made.load(Ordering::Relaxed),
            n as usize,
            "values made"
        );
        for id in 0..n {
            assert_eq!(
                self.dropped(id),
                1,
                "value {id} dropped {} times",
                self.dropped(id)
            );
        }
    }
}

/// An owned, non-`Copy` value whose drop is counted by its [`Drops`]; it
/// owns a heap box, so a bitwise duplicate dropped twice would also be a
/// double free.
#[derive(Debug)]
pub struct Tracked {
    pub id: u64,
    payload: Box<u64>,
    drops: Drops,
}

impl std::fmt::Debug for Drops {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Drops({} live)", self.live())
    }
}

impl Tracked {
    /// Whether the value is intact (its payload matches its id).
    pub fn intact(&self) -> bool {
        *self.payload == !self.id
    }
}

impl PartialEq for Tracked {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let before = self.drops.0.drops[self.id as usize].fetch_add(1, Ordering::Relaxed);
        assert_eq!(before, 0, "value {} dropped twice", self.id);
    }
}
