//! Zero-copy guards: [`WriteGuard`] (slots reserved for enqueue, filled in
//! place, then committed) and [`ReadGuard`] (elements reserved for dequeue,
//! read in place — a peek — then finished with how many were consumed).

use std::cell::Cell;
use std::fmt;
#[cfg(not(loom))]
use std::mem::MaybeUninit;

use crate::handles::single_publish;
use crate::ops::len_u32;
use crate::ring::{Claim, Ring};

/// Who owns the reservation behind a guard.
pub(crate) enum GuardEnd<'a> {
    /// An HTS side of a shared ring: the side is held until publish.
    Hts,
    /// A single-thread handle; the cell is its local head.
    Single(&'a Cell<u32>),
}

/// The reservation behind a guard, on the producer (`PROD`) or consumer
/// side: published once, by [`publish`](Self::publish) or, with nothing
/// consumed or committed, when dropped.
struct Held<'a, T: Copy + Send, const PROD: bool> {
    ring: &'a Ring<T>,
    /// Slots `claim.start .. claim.start + claim.n` are ours until we
    /// publish.
    claim: Claim,
    end: GuardEnd<'a>,
    done: bool,
}

impl<'a, T: Copy + Send, const PROD: bool> Held<'a, T, PROD> {
    fn new(ring: &'a Ring<T>, claim: Claim, end: GuardEnd<'a>) -> Self {
        Held {
            ring,
            claim,
            end,
            done: false,
        }
    }

    /// Publishes the first `n` of the claimed slots and gives the rest back.
    fn publish(&mut self, n: u32) {
        match self.end {
            GuardEnd::Hts => {
                // A zero-length claim never took the side.
                if self.claim.n != 0 {
                    self.ring.hts_publish::<PROD>(self.claim.start, n);
                }
            }
            GuardEnd::Single(head) => {
                if n != 0 {
                    single_publish::<PROD, T>(self.ring, head, self.claim.start.wrapping_add(n));
                }
            }
        }
        self.done = true;
    }
}

impl<T: Copy + Send, const PROD: bool> Drop for Held<'_, T, PROD> {
    fn drop(&mut self) {
        if !self.done {
            self.publish(0);
        }
    }
}

/// Free slots reserved in place for enqueue. Fill them with
/// [`push`](Self::push) and publish with [`commit`](Self::commit), or write
/// through [`as_mut_slices`](Self::as_mut_slices) and publish with
/// [`commit_unchecked`](Self::commit_unchecked). Dropping the guard
/// publishes nothing. On an HTS side other producers wait while it lives;
/// leaking it (`mem::forget`) blocks them for good.
///
/// ```
/// use pktmem_ring::Ring;
/// let (mut p, c) = Ring::<u64>::builder(8).build_spsc().unwrap();
/// let mut w = p.enqueue_start(4);
/// assert_eq!(w.len(), 4);
/// for i in 0..3 {
///     w.push(i).unwrap();
/// }
/// assert_eq!(w.commit(), 3);
/// assert_eq!(c.len(), 3);
/// ```
pub struct WriteGuard<'a, T: Copy + Send> {
    /// Slots `claim.start .. claim.start + claim.n` are ours to write.
    held: Held<'a, T, true>,
    /// Slots `claim.start .. claim.start + filled` are initialised.
    filled: u32,
}

impl<'a, T: Copy + Send> WriteGuard<'a, T> {
    pub(crate) fn new(ring: &'a Ring<T>, claim: Claim, end: GuardEnd<'a>) -> Self {
        WriteGuard {
            held: Held::new(ring, claim, end),
            filled: 0,
        }
    }

    /// Slots reserved.
    pub fn len(&self) -> usize {
        self.held.claim.n as usize
    }

    /// Whether no slot was reserved (the ring was full).
    pub fn is_empty(&self) -> bool {
        self.held.claim.n == 0
    }

    /// Slots filled by [`push`](Self::push) so far.
    pub fn filled(&self) -> usize {
        self.filled as usize
    }

    /// Writes `value` into the next reserved slot, or hands it back when all
    /// are filled.
    pub fn push(&mut self, value: T) -> Result<(), T> {
        if self.filled == self.held.claim.n {
            return Err(value);
        }
        // SAFETY: slot `start + filled` is within our claim (`filled < n`).
        unsafe {
            self.held
                .ring
                .write_one(self.held.claim.start.wrapping_add(self.filled), value)
        };
        self.filled += 1;
        Ok(())
    }

    /// Copies as much of `src` as fits into the next slots; returns how many.
    pub fn extend_from_slice(&mut self, src: &[T]) -> usize {
        let k = (self.held.claim.n - self.filled).min(len_u32(src.len()));
        // SAFETY: slots `start + filled ..+ k` are within our claim; `src`
        // has at least `k` elements.
        unsafe {
            self.held.ring.write_slots(
                self.held.claim.start.wrapping_add(self.filled),
                src.as_ptr(),
                k,
            )
        };
        self.filled += k;
        k as usize
    }

    /// The reserved slots as up to two runs, in ring order, to write in place.
    /// Pushes and writes here are independent: use one or the other.
    #[cfg(not(loom))]
    pub fn as_mut_slices(&mut self) -> (&mut [MaybeUninit<T>], &mut [MaybeUninit<T>]) {
        let (a, an, b, bn) = self
            .held
            .ring
            .runs(self.held.claim.start, self.held.claim.n);
        // SAFETY: the runs are the claimed slots, disjoint, inside the slot
        // array, and no other thread touches them until we publish;
        // `&mut self` keeps this the only view.
        unsafe {
            (
                std::slice::from_raw_parts_mut(a.cast(), an),
                std::slice::from_raw_parts_mut(b.cast(), bn),
            )
        }
    }

    /// Publishes the pushed elements; returns how many.
    pub fn commit(mut self) -> usize {
        let n = self.filled;
        self.held.publish(n);
        n as usize
    }

    /// Publishes the first `n` reserved slots, written through
    /// [`as_mut_slices`](Self::as_mut_slices).
    ///
    /// # Safety
    ///
    /// - `n <= self.len()`;
    /// - the first `n` slots (in ring order: the first run, then the second)
    ///   have been initialised.
    pub unsafe fn commit_unchecked(mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.held.publish(n as u32);
    }
}

impl<T: Copy + Send> fmt::Debug for WriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGuard")
            .field("len", &self.held.claim.n)
            .field("filled", &self.filled)
            .finish()
    }
}

/// Elements reserved in place for dequeue: read them (peek) with
/// [`get`](Self::get), [`copy_to`](Self::copy_to) or
/// [`as_slices`](Self::as_slices), then consume the first `k` with
/// [`finish`](Self::finish). Dropping the guard consumes nothing.
/// On an HTS side other consumers wait while it lives.
///
/// ```
/// use pktmem_ring::Ring;
/// let (p, mut c) = Ring::<u32>::builder(8).build_spsc().unwrap();
/// p.enqueue_bulk(&[5, 6, 7]).unwrap();
/// let g = c.dequeue_start(8);
/// assert_eq!(g.len(), 3);
/// let (a, b) = g.as_slices();
/// assert_eq!([a, b].concat(), [5, 6, 7]);
/// g.finish(2);
/// assert_eq!(c.dequeue(), Some(7));
/// ```
pub struct ReadGuard<'a, T: Copy + Send> {
    /// Slots `claim.start .. claim.start + claim.n` are published and ours
    /// to read until we publish.
    held: Held<'a, T, false>,
}

impl<'a, T: Copy + Send> ReadGuard<'a, T> {
    pub(crate) fn new(ring: &'a Ring<T>, claim: Claim, end: GuardEnd<'a>) -> Self {
        ReadGuard {
            held: Held::new(ring, claim, end),
        }
    }

    /// Elements reserved.
    pub fn len(&self) -> usize {
        self.held.claim.n as usize
    }

    /// Whether nothing was reserved (the ring was empty).
    pub fn is_empty(&self) -> bool {
        self.held.claim.n == 0
    }

    /// The `i`th reserved element, or `None` past the end.
    pub fn get(&self, i: usize) -> Option<T> {
        if i >= self.len() {
            return None;
        }
        // SAFETY: `i < n`: the slot is in our claim and initialised.
        Some(unsafe {
            self.held
                .ring
                .read_one(self.held.claim.start.wrapping_add(i as u32))
        })
    }

    /// Copies the first `min(len, out.len())` reserved elements to `out`;
    /// returns how many.
    pub fn copy_to(&self, out: &mut [T]) -> usize {
        let k = self.held.claim.n.min(len_u32(out.len()));
        // SAFETY: slots `start..+k` are claimed and initialised; `out` has
        // room for `k`.
        unsafe {
            self.held
                .ring
                .read_slots(self.held.claim.start, out.as_mut_ptr(), k)
        };
        k as usize
    }

    /// The reserved elements as up to two runs, in ring order.
    #[cfg(not(loom))]
    pub fn as_slices(&self) -> (&[T], &[T]) {
        let (a, an, b, bn) = self
            .held
            .ring
            .runs(self.held.claim.start, self.held.claim.n);
        // SAFETY: the runs are claimed, initialised slots that no producer
        // writes until we publish (the consumer tail has not moved).
        unsafe {
            (
                std::slice::from_raw_parts(a.cast_const(), an),
                std::slice::from_raw_parts(b.cast_const(), bn),
            )
        }
    }

    /// Consumes the first `k` reserved elements (`k` is capped at
    /// [`len`](Self::len)); the rest stay in the ring, first in line.
    pub fn finish(mut self, k: usize) {
        let k = k.min(self.len()) as u32;
        self.held.publish(k);
    }

    /// Consumes every reserved element.
    pub fn finish_all(self) {
        let n = self.len();
        self.finish(n);
    }
}

impl<T: Copy + Send> fmt::Debug for ReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("len", &self.held.claim.n)
            .finish()
    }
}
