//! How the threads on one side of a ring take turns: the marker types
//! [`Single`], [`Multi`], [`Hts`] and [`Rts`], which an end's type carries
//! (`Producer<T, Single>`, `Consumer<T, Hts>`), and the sealed trait that
//! gives each its claim/publish algorithm (one file per algorithm under
//! `mode/`, as DPDK keeps one header per sync mode).
//!
//! What a mode allows is checked by the compiler: ends of the shared modes
//! ([`SharedMode`]: `Multi`, `Hts`, `Rts`) are `Clone + Send + Sync`; a
//! `Single` end is `Send` only; peek and zero-copy exist on ends of the
//! [`InPlaceMode`]s (`Single`, `Hts`) and nowhere else.

mod hts;
mod multi;
mod rts;
mod single;

pub(crate) use multi::Solo;

use crate::indices::{Behaviour, Claim, Indices};

/// The algorithm behind a mode. Sealed: only this crate's modes implement
/// it.
pub(crate) mod sealed {
    use super::{Behaviour, Claim, Indices};

    /// How one side claims slots and publishes them. `PROD` is the side:
    /// `true` enqueues, `false` dequeues.
    ///
    /// # Safety
    ///
    /// Implementors promise that a claim `c` from [`claim`](Self::claim)
    /// with `c.n != 0`:
    /// - has `c.n` as `grant` gives it under `b` for `c.avail` free
    ///   (producer) or filled (consumer) slots;
    /// - gives this caller alone slots `c.start..c.start + c.n`: to write
    ///   (producer), or holding published elements to move out (consumer),
    ///   until it passes `c` to [`publish`](Self::publish), which hands them
    ///   to the other side with a Release store of this side's tail —
    ///   provided every end of this side that is used concurrently uses the
    ///   same algorithm, and an end's `State` is used by one thread at a
    ///   time.
    pub unsafe trait Algorithm: 'static {
        /// What an end of this mode keeps for itself (a single-thread end's
        /// own head and cached tail; nothing for shared modes). `Send`, so
        /// every end can move to another thread.
        type State: Send;
        /// The state of a new end of side `PROD` of a ring with indices `ix`
        /// that no thread is using yet.
        fn state<const PROD: bool>(ix: &Indices) -> Self::State;
        /// Claims up to `n` slots under `b` (`c.n == 0`: nothing claimed,
        /// nothing to publish).
        fn claim<const PROD: bool>(
            ix: &Indices,
            state: &Self::State,
            n: u32,
            b: Behaviour,
        ) -> Claim;
        /// Publishes a non-empty claim whose slots have all been copied.
        fn publish<const PROD: bool>(ix: &Indices, state: &Self::State, c: Claim);
    }

    /// Publishing part of a claim: what zero-copy guards need.
    ///
    /// # Safety
    ///
    /// As for [`Algorithm`]; in addition, while a claim `c` is held,
    /// [`advance`](Self::advance) publishes slots `c.start..pos` to the
    /// other side and keeps the rest claimed, and [`release`](Self::release)
    /// publishes `c.start..c.start + n` (`n <= c.n`, at least what was
    /// advanced) and gives the rest back unclaimed.
    pub unsafe trait InPlace: Algorithm {
        /// Publishes slots `c.start..pos` of held claim `c`, keeping it.
        fn advance<const PROD: bool>(ix: &Indices, state: &Self::State, c: &Claim, pos: u32);
        /// Publishes the first `n` slots of claim `c` and ends it.
        fn release<const PROD: bool>(ix: &Indices, state: &Self::State, c: &Claim, n: u32);
    }
}

/// A side's sync mode: one of [`Single`], [`Multi`], [`Hts`], [`Rts`].
/// Sealed; used as a type parameter of [`Ring`](crate::Ring),
/// [`Producer`](crate::Producer), [`Consumer`](crate::Consumer) and the
/// builder.
///
/// ```
/// use pktmem_ring::{Hts, Mode, Multi, Rts, Single};
/// assert_eq!([Single::NAME, Multi::NAME, Hts::NAME, Rts::NAME], ["single", "multi", "hts", "rts"]);
/// ```
pub trait Mode: sealed::Algorithm + Send + Sync + Copy + Default + std::fmt::Debug {
    /// The mode's name, for messages: "single", "multi", "hts" or "rts".
    const NAME: &'static str;
}

/// A mode whose ends may be cloned and shared between threads ([`Multi`],
/// [`Hts`], [`Rts`]).
///
/// ```
/// use pktmem_ring::{Producer, Ring, SharedMode};
/// fn fan_out<M: SharedMode>(p: &Producer<u32, M>, n: usize) -> Vec<Producer<u32, M>> {
///     (0..n).map(|_| p.clone()).collect() // shared ends clone
/// }
/// let (p, _c) = Ring::<u32>::new(8).unwrap().split();
/// assert_eq!(fan_out(&p, 3).len(), 3);
/// ```
pub trait SharedMode: Mode + sealed::Algorithm<State = ()> {}

/// A mode whose ends can reserve slots in place: zero-copy enqueue, peek
/// and zero-copy dequeue ([`Single`], [`Hts`]).
///
/// ```
/// use pktmem_ring::{Consumer, InPlaceMode, Ring, Single};
/// fn peek_first<M: InPlaceMode>(c: &mut Consumer<u32, M>) -> Option<u32> {
///     c.dequeue_start(1).get(0).copied()
/// }
/// let (p, mut c) = Ring::<u32>::builder(8).consumer(Single).build().unwrap().split();
/// p.enqueue(5).unwrap();
/// assert_eq!(peek_first(&mut c), Some(5));
/// assert_eq!(c.len(), 1); // peeked, not consumed
/// ```
pub trait InPlaceMode: Mode + sealed::InPlace {}

/// One thread on this side, checked by the compiler: its end is `Send` but
/// neither `Sync` nor `Clone`. No atomic read-modify-write; the other
/// side's tail is cached and re-read only when the cache says full (or
/// empty). Allows zero-copy and peek.
///
/// ```
/// use pktmem_ring::{Ring, Single};
/// let (p, c) = Ring::<u8>::builder(2).producer(Single).consumer(Single).build().unwrap().split();
/// std::thread::spawn(move || p.enqueue(1).unwrap()).join().unwrap(); // `Send`
/// assert_eq!(c.dequeue(), Some(1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Single;

/// Many threads (DPDK's MP/MC): a claim is a CAS on the head; threads copy
/// concurrently and publish in claim order. The room a claim sees comes
/// from a copy of the other side's tail shared by this side's threads,
/// refreshed only when it shows too little, so a side's threads stay off
/// the other side's tail line while the ring has room.
///
/// ```
/// use pktmem_ring::Ring;
/// let ring = Ring::<u32>::new(8).unwrap(); // both sides `Multi`
/// std::thread::scope(|s| {
///     s.spawn(|| ring.enqueue(1).unwrap());
///     s.spawn(|| ring.enqueue(2).unwrap());
/// });
/// assert_eq!(ring.len(), 2);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Multi;

/// Head-tail sync (DPDK's HTS): many threads, one at a time owns the side
/// from claim to publish (head and tail in one 64-bit word), which makes
/// peek and zero-copy possible on a shared side.
///
/// ```
/// use pktmem_ring::{Hts, Ring};
/// let ring = Ring::<u32>::builder(8).producer(Hts).consumer(Hts).build().unwrap();
/// ring.enqueue_bulk(&[1, 2]).unwrap();
/// assert_eq!(ring.dequeue_start(2).get(1), Some(&2)); // peek on a shared side
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hts;

/// Relaxed tail sync (DPDK's RTS): threads claim with a CAS as in
/// [`Multi`], but a finishing thread does not wait for earlier claimers;
/// the last one to finish moves the tail over everything. Suits more
/// threads than cores (a preempted claimer does not stall the others'
/// publication, only delays it). Each side bounds how far its head may run
/// ahead of its tail ([`RingBuilder::producer_max_distance`](crate::RingBuilder::producer_max_distance)).
///
/// ```
/// use pktmem_ring::{Ring, Rts};
/// let ring = Ring::<u32>::builder(64).producer(Rts).consumer(Rts).build().unwrap();
/// std::thread::scope(|s| {
///     for t in 0..4 {
///         let ring = &ring;
///         s.spawn(move || ring.enqueue(t).unwrap());
///     }
/// });
/// assert_eq!(ring.len(), 4);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rts;

impl Mode for Single {
    const NAME: &'static str = "single";
}
impl Mode for Multi {
    const NAME: &'static str = "multi";
}
impl Mode for Hts {
    const NAME: &'static str = "hts";
}
impl Mode for Rts {
    const NAME: &'static str = "rts";
}
impl SharedMode for Multi {}
impl SharedMode for Hts {}
impl SharedMode for Rts {}
impl InPlaceMode for Single {}
impl InPlaceMode for Hts {}
