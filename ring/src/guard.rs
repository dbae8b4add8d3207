//! Zero-copy guards: [`WriteGuard`] (free slots reserved for enqueue,
//! filled in place, then committed) and [`ReadGuard`] (elements reserved for
//! dequeue, read in place — a peek — then moved out, dropped or left in the
//! ring). Only ends of an [`InPlaceMode`] (`Single`, `Hts`) make them.

use std::fmt;
use std::marker::PhantomData;
use std::mem::needs_drop;
#[cfg(not(loom))]
use std::mem::MaybeUninit;

use crate::indices::{len_u32, Claim};
use crate::mode::InPlaceMode;
use crate::raw::RawRing;

/// Free slots reserved in place for enqueue. Fill them with
/// [`push`](Self::push) (or [`extend_from_slice`](Self::extend_from_slice))
/// and publish with [`commit`](Self::commit), or write through
/// [`as_mut_slices`](Self::as_mut_slices) and publish with
/// [`commit_unchecked`](Self::commit_unchecked). Dropping the guard
/// publishes nothing and drops what was pushed. On an HTS side other
/// producers wait while it lives; leaking it (`mem::forget`) blocks them
/// for good and leaks what was pushed.
///
/// ```
/// use pktmem_ring::{Ring, Single};
/// let (mut p, c) = Ring::<String>::builder(8)
///     .producer(Single)
///     .consumer(Single)
///     .build()
///     .unwrap()
///     .split();
/// let mut w = p.enqueue_start(4);
/// assert_eq!(w.len(), 4);
/// for s in ["a", "b", "c"] {
///     w.push(s.to_string()).unwrap();
/// }
/// assert_eq!(w.commit(), 3);
/// assert_eq!(c.dequeue().as_deref(), Some("a"));
/// ```
pub struct WriteGuard<'a, T, M: InPlaceMode> {
    ring: &'a RawRing<T>,
    state: &'a M::State,
    /// Slots `claim.start .. claim.start + claim.n` are ours to write until
    /// we release them.
    claim: Claim,
    /// Slots `claim.start .. claim.start + filled` hold values we own.
    filled: u32,
}

impl<'a, T, M: InPlaceMode> WriteGuard<'a, T, M> {
    pub(crate) fn new(ring: &'a RawRing<T>, state: &'a M::State, claim: Claim) -> Self {
        WriteGuard {
            ring,
            state,
            claim,
            filled: 0,
        }
    }

    /// Slots reserved.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// assert_eq!(p.enqueue_start(9).len(), 4); // as many as are free
    /// ```
    pub fn len(&self) -> usize {
        self.claim.n as usize
    }

    /// Whether no slot was reserved (the ring was full).
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// p.enqueue_bulk(&[1, 2, 3, 4]).unwrap();
    /// assert!(p.enqueue_start(1).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.claim.n == 0
    }

    /// Slots filled by [`push`](Self::push) (or
    /// [`extend_from_slice`](Self::extend_from_slice)) so far.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// let mut w = p.enqueue_start(4);
    /// w.push(1).unwrap();
    /// assert_eq!((w.filled(), w.len()), (1, 4));
    /// ```
    pub fn filled(&self) -> usize {
        self.filled as usize
    }

    /// Moves `value` into the next reserved slot, or hands it back when all
    /// are filled.
    ///
    /// ```
    /// use pktmem_ring::{Hts, Ring};
    /// let r = Ring::<u32>::builder(8).producer(Hts).build().unwrap();
    /// let mut w = r.enqueue_start(1);
    /// assert_eq!(w.push(1), Ok(()));
    /// assert_eq!(w.push(2), Err(2)); // only one slot reserved
    /// w.commit();
    /// ```
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.filled == self.claim.n {
            return Err(value);
        }
        // SAFETY: slot `start + filled` is within our claim (`filled < n`)
        // and not yet filled.
        unsafe {
            self.ring
                .write_one(self.claim.start.wrapping_add(self.filled), value);
        }
        self.filled += 1;
        Ok(())
    }

    /// Copies as much of `src` as fits into the next slots; returns how many.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// let mut w = p.enqueue_start(3);
    /// assert_eq!(w.extend_from_slice(&[1, 2, 3, 4, 5]), 3);
    /// w.commit();
    /// assert_eq!(c.dequeue(), Some(1));
    /// ```
    pub fn extend_from_slice(&mut self, src: &[T]) -> usize
    where
        T: Copy,
    {
        let k = (self.claim.n - self.filled).min(len_u32(src.len()));
        // SAFETY: slots `start + filled ..+ k` are within our claim and not
        // yet filled; `src` has at least `k` elements, which are `Copy`.
        unsafe {
            self.ring
                .write_slots(self.claim.start.wrapping_add(self.filled), src.as_ptr(), k);
        }
        self.filled += k;
        k as usize
    }

    /// The reserved slots not yet [`push`](Self::push)ed, as up to two runs
    /// in ring order, to write in place; publish what was written with
    /// [`commit_unchecked`](Self::commit_unchecked).
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// p.enqueue_bulk(&[0, 0, 0]).unwrap();
    /// let mut drained = [0; 3];
    /// c.dequeue_bulk(&mut drained).unwrap(); // the next reservation wraps
    /// let mut w = p.enqueue_start(3);
    /// let (a, b) = w.as_mut_slices();
    /// assert_eq!((a.len(), b.len()), (1, 2)); // two runs, in ring order
    /// ```
    #[cfg(not(loom))]
    pub fn as_mut_slices(&mut self) -> (&mut [MaybeUninit<T>], &mut [MaybeUninit<T>]) {
        let (a, an, b, bn) = self.ring.runs(
            self.claim.start.wrapping_add(self.filled),
            self.claim.n - self.filled,
        );
        // SAFETY: the runs are claimed, unfilled slots, disjoint, inside the
        // slot array, and no other thread touches them until we publish;
        // `&mut self` keeps this the only view.
        unsafe {
            (
                std::slice::from_raw_parts_mut(a.cast(), an),
                std::slice::from_raw_parts_mut(b.cast(), bn),
            )
        }
    }

    /// Publishes the pushed elements; returns how many.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// let mut w = p.enqueue_start(4);
    /// w.push(7).unwrap();
    /// assert_eq!(w.commit(), 1);
    /// assert_eq!(c.len(), 1);
    /// ```
    pub fn commit(self) -> usize {
        let n = self.filled;
        self.publish(n);
        n as usize
    }

    /// Publishes the pushed elements and the next `n` slots, written
    /// through [`as_mut_slices`](Self::as_mut_slices).
    ///
    /// # Safety
    ///
    /// - `n <= self.len() - self.filled()`;
    /// - the first `n` slots of [`as_mut_slices`](Self::as_mut_slices) (the
    ///   first run, then the second) have been initialised.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, c) = Ring::<u64>::builder(4).producer(Single).build().unwrap().split();
    /// let mut w = p.enqueue_start(2);
    /// let (a, b) = w.as_mut_slices();
    /// for (i, s) in a.iter_mut().chain(b).enumerate() {
    ///     s.write(i as u64);
    /// }
    /// // SAFETY: both reserved slots were written just above.
    /// unsafe { w.commit_unchecked(2) };
    /// assert_eq!(c.len(), 2);
    /// ```
    pub unsafe fn commit_unchecked(self, n: usize) {
        debug_assert!(n <= self.len() - self.filled());
        let n = self.filled + n as u32;
        self.publish(n);
    }

    /// Publishes the first `n` reserved slots and ends the reservation.
    fn publish(self, n: u32) {
        let this = std::mem::ManuallyDrop::new(self);
        M::release::<true>(&this.ring.ix, this.state, &this.claim, n);
    }
}

impl<T, M: InPlaceMode> Drop for WriteGuard<'_, T, M> {
    fn drop(&mut self) {
        if needs_drop::<T>() {
            // SAFETY: the first `filled` slots hold values we pushed and
            // own; they are not published and still claimed, so no one else
            // touches them. (If a `Drop` panics, the reservation is never
            // given back: the side is blocked, as by a leaked guard.)
            unsafe { self.ring.drop_values(self.claim.start, self.filled) };
        }
        M::release::<true>(&self.ring.ix, self.state, &self.claim, 0);
    }
}

impl<T, M: InPlaceMode> fmt::Debug for WriteGuard<'_, T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard")
            .field("len", &self.claim.n)
            .field("filled", &self.filled)
            .finish()
    }
}

/// Elements reserved in place for dequeue: look at them (peek) with
/// [`get`](Self::get) or [`as_slices`](Self::as_slices), move them out one
/// by one with [`pop`](Self::pop), then [`finish`](Self::finish) with how
/// many more to consume (dropped in place). Dropping the guard consumes only
/// what was popped; the rest stays in the ring, first in line. On an HTS
/// side other consumers wait while it lives.
///
/// ```
/// use pktmem_ring::{Ring, Single};
/// let (p, mut c) = Ring::<u32>::builder(8).consumer(Single).build().unwrap().split();
/// p.enqueue_bulk(&[5, 6, 7, 8]).unwrap();
/// let mut g = c.dequeue_start(8);
/// assert_eq!(g.len(), 4);
/// let (a, b) = g.as_slices();
/// assert_eq!([a, b].concat(), [5, 6, 7, 8]);
/// assert_eq!(g.pop(), Some(5)); // moved out
/// g.finish(2); // 6 and 7 consumed
/// assert_eq!(c.dequeue(), Some(8));
/// ```
pub struct ReadGuard<'a, T, M: InPlaceMode> {
    ring: &'a RawRing<T>,
    state: &'a M::State,
    /// Slots `claim.start .. claim.start + claim.n` are published and ours
    /// until we release them.
    claim: Claim,
    /// The first `taken` of them have been moved out and published back to
    /// the producers (as `pop` goes, so a leaked guard never lets the ring
    /// drop them again); the rest hold values the ring owns.
    taken: u32,
    /// The guard lends out `&T` (`get`, `as_slices`): sharing the guard
    /// between threads shares those, so it is `Sync` only if `T` is (the
    /// ring itself is `Sync` for any `T: Send`, as it only moves values).
    _lends: PhantomData<T>,
}

impl<'a, T, M: InPlaceMode> ReadGuard<'a, T, M> {
    pub(crate) fn new(ring: &'a RawRing<T>, state: &'a M::State, claim: Claim) -> Self {
        ReadGuard {
            ring,
            state,
            claim,
            taken: 0,
            _lends: PhantomData,
        }
    }

    /// Elements reserved and still in the guard (not popped).
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// p.enqueue_bulk(&[1, 2]).unwrap();
    /// let mut g = c.dequeue_start(4);
    /// assert_eq!(g.len(), 2);
    /// g.pop();
    /// assert_eq!(g.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        (self.claim.n - self.taken) as usize
    }

    /// Whether no element is in the guard.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// assert!(c.dequeue_start(4).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Index of the `i`th element still in the guard.
    fn index(&self, i: u32) -> u32 {
        self.claim.start.wrapping_add(self.taken).wrapping_add(i)
    }

    /// The `i`th element still in the guard, or `None` past the end.
    ///
    /// ```
    /// use pktmem_ring::{Hts, Ring};
    /// let r = Ring::<u32>::builder(8).consumer(Hts).build().unwrap();
    /// r.enqueue_bulk(&[1, 2]).unwrap();
    /// let g = r.dequeue_start(4);
    /// assert_eq!((g.get(0), g.get(1), g.get(2)), (Some(&1), Some(&2), None));
    /// ```
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len() {
            return None;
        }
        // SAFETY: `i < len`: the slot is in our claim, published and not
        // moved out; `&self` keeps `pop`/`finish` away while the borrow lives.
        Some(unsafe { self.ring.get_ref(self.index(i as u32)) })
    }

    /// Copies the first `min(len, out.len())` elements to `out`; returns
    /// how many. Nothing is consumed.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// p.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// let mut out = [0; 2];
    /// assert_eq!(c.dequeue_start(4).copy_to(&mut out), 2);
    /// assert_eq!((out, c.len()), ([1, 2], 3));
    /// ```
    pub fn copy_to(&self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        let k = (self.claim.n - self.taken).min(len_u32(out.len()));
        // SAFETY: slots `index(0)..+k` are claimed, initialised and not
        // moved out; `out` has room for `k`; `Copy` values are not moved.
        unsafe { self.ring.read_slots(self.index(0), out.as_mut_ptr(), k) };
        k as usize
    }

    /// The elements still in the guard as up to two runs, in ring order.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// p.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// let g = c.dequeue_start(4);
    /// let (a, b) = g.as_slices();
    /// assert_eq!((a, b), (&[1, 2, 3][..], &[][..]));
    /// ```
    #[cfg(not(loom))]
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let (a, an, b, bn) = self.ring.runs(self.index(0), self.claim.n - self.taken);
        // SAFETY: the runs are claimed, initialised slots that no producer
        // writes until we publish them, and that `&self` keeps `pop` and
        // `finish` from moving out while the borrow lives.
        unsafe {
            (
                std::slice::from_raw_parts(a.cast_const(), an),
                std::slice::from_raw_parts(b.cast_const(), bn),
            )
        }
    }

    /// Moves the first element out of the guard (and the ring), or `None`
    /// when none is left.
    ///
    /// ```
    /// use pktmem_ring::{Hts, Ring};
    /// let r = Ring::<String>::builder(4).consumer(Hts).build().unwrap();
    /// r.enqueue("a".into()).unwrap();
    /// let mut g = r.dequeue_start(4);
    /// assert_eq!(g.pop().as_deref(), Some("a"));
    /// assert_eq!(g.pop(), None);
    /// ```
    pub fn pop(&mut self) -> Option<T> {
        if self.taken == self.claim.n {
            return None;
        }
        let at = self.index(0);
        // SAFETY: the slot is in our claim, published and not yet moved out;
        // it is handed back to the producers just below, so it is moved out
        // exactly once.
        let v = unsafe { self.ring.read_one(at) };
        self.taken += 1;
        M::advance::<false>(&self.ring.ix, self.state, &self.claim, at.wrapping_add(1));
        Some(v)
    }

    /// Consumes the next `k` elements (`k` is capped at [`len`](Self::len)),
    /// dropping them in place; the rest stay in the ring, first in line.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// p.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// c.dequeue_start(4).finish(2);
    /// assert_eq!(c.dequeue(), Some(3));
    /// ```
    pub fn finish(mut self, k: usize) {
        let k = k.min(self.len()) as u32;
        let start = self.index(0);
        if needs_drop::<T>() {
            for i in 0..k {
                // Counted first: if this `Drop` panics, the guard's own drop
                // publishes it as consumed, so it is never dropped again.
                self.taken += 1;
                // SAFETY: a claimed, published value not moved out, dropped
                // once (now counted as taken).
                unsafe { self.ring.drop_values(start.wrapping_add(i), 1) };
            }
        } else {
            self.taken += k;
        }
        // The guard's drop publishes the `taken` elements.
    }

    /// Consumes every element left in the guard.
    ///
    /// ```
    /// use pktmem_ring::{Ring, Single};
    /// let (mut p, mut c) = Ring::<u32>::builder(4)
    ///     .producer(Single)
    ///     .consumer(Single)
    ///     .build()
    ///     .unwrap()
    ///     .split();
    /// p.enqueue_bulk(&[1, 2, 3]).unwrap();
    /// c.dequeue_start(2).finish_all();
    /// assert_eq!(c.dequeue(), Some(3));
    /// ```
    pub fn finish_all(self) {
        let n = self.len();
        self.finish(n);
    }
}

impl<T, M: InPlaceMode> Drop for ReadGuard<'_, T, M> {
    fn drop(&mut self) {
        M::release::<false>(&self.ring.ix, self.state, &self.claim, self.taken);
    }
}

impl<T, M: InPlaceMode> fmt::Debug for ReadGuard<'_, T, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("len", &self.claim.n)
            .field("taken", &self.taken)
            .finish()
    }
}
