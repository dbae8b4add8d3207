//! Shared helpers for the ring tests (`mod ring_common;` in each `tests/ring_*.rs`).
#![allow(dead_code)]

use pktmem::ring::{
    Consumer, Producer, Ring, RingEmpty, RingFull, SharedConsumer, SharedProducer, SyncMode,
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
    /// Peek up to `o.len()` into `o`, consume `take` of them; `None` if unsupported.
    fn deq_zc(&mut self, o: &mut [T], take: usize) -> Option<usize>;
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

macro_rules! counts {
    ($f:tt) => {
        fn len(&self) -> usize {
            self.$f.len()
        }
        fn free(&self) -> usize {
            self.$f.free_count()
        }
        fn cap(&self) -> usize {
            self.$f.capacity()
        }
        fn full(&self) -> bool {
            self.$f.is_full()
        }
        fn empty(&self) -> bool {
            self.$f.is_empty()
        }
    };
}

macro_rules! producer_ops {
    ($p:tt) => {
        fn enq(&mut self, v: T) -> Result<(), T> {
            self.$p.enqueue(v)
        }
        fn enq_bulk(&mut self, s: &[T]) -> Result<(), RingFull> {
            self.$p.enqueue_bulk(s)
        }
        fn enq_burst(&mut self, s: &[T]) -> usize {
            self.$p.enqueue_burst(s)
        }
    };
}

macro_rules! consumer_ops {
    ($c:tt) => {
        fn deq(&mut self) -> Option<T> {
            self.$c.dequeue()
        }
        fn deq_bulk(&mut self, o: &mut [T]) -> Result<(), RingEmpty> {
            self.$c.dequeue_bulk(o)
        }
        fn deq_bulk_uninit(&mut self, o: &mut [T]) -> Result<(), RingEmpty> {
            let c = &self.$c;
            uninit_bulk(o, |b| c.dequeue_bulk_uninit(b).map(|s| s.len()))
        }
        fn deq_burst(&mut self, o: &mut [T]) -> usize {
            self.$c.dequeue_burst(o)
        }
        fn deq_burst_uninit(&mut self, o: &mut [T]) -> usize {
            let c = &self.$c;
            uninit_burst(o, |b| c.dequeue_burst_uninit(b).to_vec())
        }
    };
}

pub struct Shared<T>(pub Ring<T>);
impl<T: Elem> Q<T> for Shared<T> {
    producer_ops!(0);
    consumer_ops!(0);
    fn enq_zc(&mut self, s: &[T]) -> Option<usize> {
        let mut g = self.0.enqueue_start(s.len()).ok()?;
        let k = g.extend_from_slice(s);
        assert_eq!(g.commit(), k);
        Some(k)
    }
    fn deq_zc(&mut self, o: &mut [T], take: usize) -> Option<usize> {
        let g = self.0.dequeue_start(o.len()).ok()?;
        let n = g.copy_to(o);
        assert_eq!(n, g.len());
        for (i, v) in o[..n].iter().enumerate() {
            assert_eq!(g.get(i), Some(*v));
        }
        assert_eq!(g.get(n), None);
        g.finish(take);
        Some(n)
    }
    counts!(0);
}

pub struct Pair<P, C> {
    pub p: P,
    pub c: C,
}

fn single_enq_zc<T: Elem>(p: &mut Producer<T>, s: &[T]) -> usize {
    let mut g = p.enqueue_start(s.len());
    // Alternate the two ways of filling: push, and write in place.
    if s.len() % 2 == 0 {
        for v in s.iter().take(g.len()) {
            g.push(*v).unwrap();
        }
        g.commit()
    } else {
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
}

fn single_deq_zc<T: Elem>(c: &mut Consumer<T>, o: &mut [T], take: usize) -> usize {
    let g = c.dequeue_start(o.len());
    let (a, b) = g.as_slices();
    let n = a.len() + b.len();
    assert_eq!(n, g.len());
    o[..a.len()].copy_from_slice(a);
    o[a.len()..n].copy_from_slice(b);
    let mut check = o[..n].to_vec();
    assert_eq!(g.copy_to(&mut check), n);
    assert_eq!(&check[..], &o[..n]);
    g.finish(take);
    n
}

impl<T: Elem> Q<T> for Pair<Producer<T>, Consumer<T>> {
    producer_ops!(p);
    consumer_ops!(c);
    fn enq_zc(&mut self, s: &[T]) -> Option<usize> {
        Some(single_enq_zc(&mut self.p, s))
    }
    fn deq_zc(&mut self, o: &mut [T], take: usize) -> Option<usize> {
        Some(single_deq_zc(&mut self.c, o, take))
    }
    counts!(p);
}

impl<T: Elem> Q<T> for Pair<Producer<T>, SharedConsumer<T>> {
    producer_ops!(p);
    consumer_ops!(c);
    fn enq_zc(&mut self, s: &[T]) -> Option<usize> {
        Some(single_enq_zc(&mut self.p, s))
    }
    fn deq_zc(&mut self, o: &mut [T], take: usize) -> Option<usize> {
        let g = self.c.dequeue_start(o.len()).ok()?;
        let n = g.copy_to(o);
        g.finish(take);
        Some(n)
    }
    counts!(c);
}

impl<T: Elem> Q<T> for Pair<SharedProducer<T>, Consumer<T>> {
    producer_ops!(p);
    consumer_ops!(c);
    fn enq_zc(&mut self, s: &[T]) -> Option<usize> {
        let mut g = self.p.enqueue_start(s.len()).ok()?;
        for v in s.iter().take(g.len()) {
            g.push(*v).unwrap();
        }
        Some(g.commit())
    }
    fn deq_zc(&mut self, o: &mut [T], take: usize) -> Option<usize> {
        Some(single_deq_zc(&mut self.c, o, take))
    }
    counts!(c);
}

/// Every way of building and driving a ring of `capacity` (exact or not),
/// indices starting at `start`.
pub fn all_kinds<T: Elem>(
    capacity: usize,
    exact: bool,
    start: u32,
) -> Vec<(String, Box<dyn Q<T>>)> {
    use SyncMode::{Hts, Multi, Rts};
    let b = || {
        Ring::<T>::builder(capacity)
            .exact_size(exact)
            .initial_index(start)
    };
    let mut v: Vec<(String, Box<dyn Q<T>>)> = Vec::new();
    for (pm, cm) in [
        (Multi, Multi),
        (Hts, Hts),
        (Rts, Rts),
        (Multi, Hts),
        (Hts, Multi),
        (Rts, Hts),
        (Multi, Rts),
    ] {
        let r = b().producer(pm).consumer(cm).build().unwrap();
        v.push((format!("shared {pm:?}/{cm:?}"), Box::new(Shared(r))));
    }
    let (p, c) = b().build_spsc().unwrap();
    v.push(("spsc".into(), Box::new(Pair { p, c })));
    for cm in [Multi, Hts, Rts] {
        let (p, c) = b().consumer(cm).build_sp_mc().unwrap();
        v.push((format!("sp/{cm:?}"), Box::new(Pair { p, c })));
    }
    for pm in [Multi, Hts, Rts] {
        let (p, c) = b().producer(pm).build_mp_sc().unwrap();
        v.push((format!("{pm:?}/sc"), Box::new(Pair { p, c })));
    }
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
