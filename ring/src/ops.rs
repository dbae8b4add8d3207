//! The operations, written once for every end: an [`End`] is a ring's
//! [`RawRing`] seen through one side's algorithm and that end's state. The
//! public methods of [`Ring`](crate::Ring), [`Producer`](crate::Producer)
//! and [`Consumer`](crate::Consumer) are one-line calls into these.

use std::mem::MaybeUninit;

use crate::buffer::{Sink, Source};
use crate::error::{RingEmpty, RingFull};
use crate::indices::{len_u32, Behaviour, Claim};
use crate::mode::sealed::Algorithm;
use crate::raw::RawRing;

/// Side `PROD` (`true`: enqueue) of `ring`, used with algorithm `A` and an
/// end's state.
pub(crate) struct End<'a, T, A: Algorithm, const PROD: bool> {
    pub(crate) ring: &'a RawRing<T>,
    pub(crate) state: &'a A::State,
}

impl<'a, T, A: Algorithm, const PROD: bool> End<'a, T, A, PROD> {
    #[inline(always)]
    pub(crate) fn new(ring: &'a RawRing<T>, state: &'a A::State) -> Self {
        End { ring, state }
    }

    #[inline(always)]
    pub(crate) fn claim(&self, n: u32, b: Behaviour) -> Claim {
        A::claim::<PROD>(&self.ring.ix, self.state, n, b)
    }

    #[inline(always)]
    fn publish(&self, c: Claim) {
        A::publish::<PROD>(&self.ring.ix, self.state, c);
    }

    /// Claims up to `n` slots, moves values between them and `buf` (in for
    /// a producer, out for a consumer), publishes; returns the claim.
    ///
    /// # Safety
    ///
    /// `buf` is valid for `n` reads (producer) or writes (consumer); a
    /// producer's caller forgets the first `c.n` values of `buf` (unless
    /// `T: Copy`), a consumer's caller owns the first `c.n` written.
    #[inline(always)]
    unsafe fn transfer(&self, buf: *mut T, n: u32, b: Behaviour) -> Claim {
        let c = self.claim(n, b);
        if c.n != 0 {
            // SAFETY: the claim gave us slots `c.start..+c.n`, free (producer)
            // or published (consumer), by `Algorithm`'s contract; `buf` is
            // valid for `n >= c.n` elements (ours); a producer only reads it.
            unsafe {
                if PROD {
                    self.ring.write_slots(c.start, buf, c.n);
                } else {
                    self.ring.read_slots(c.start, buf, c.n);
                }
            }
            self.publish(c);
        }
        c
    }

    /// The all-or-nothing rule of every `*_bulk`: moves all `len` values
    /// between the ring and `buf`, or none and returns what there was room
    /// for (free slots for a producer, elements for a consumer).
    ///
    /// # Safety
    ///
    /// As for [`transfer`](Self::transfer) with `n = len`.
    #[inline(always)]
    unsafe fn bulk(&self, buf: *mut T, len: usize) -> Result<(), usize> {
        let ring = self.ring;
        if len > ring.capacity() {
            let used = ring.len();
            return Err(if PROD { ring.capacity() - used } else { used });
        }
        // No truncation: `len <= capacity <= MAX_CAPACITY`.
        let n = len as u32;
        // SAFETY: passed on from our caller.
        let c = unsafe { self.transfer(buf, n, Behaviour::Fixed) };
        if c.n == n {
            Ok(())
        } else {
            Err(c.avail as usize)
        }
    }
}

impl<T, A: Algorithm> End<'_, T, A, true> {
    #[inline(always)]
    pub(crate) fn enqueue(&self, value: T) -> Result<(), T> {
        let c = self.claim(1, Behaviour::Fixed);
        if c.n == 0 {
            return Err(value);
        }
        // SAFETY: the claim gave us free slot `c.start` (`Algorithm`'s
        // contract); `value` moves into it.
        unsafe { self.ring.write_one(c.start, value) };
        self.publish(c);
        Ok(())
    }

    #[inline(always)]
    pub(crate) fn enqueue_bulk(&self, src: &[T]) -> Result<(), RingFull>
    where
        T: Copy,
    {
        // SAFETY: `src` is valid for its length; an enqueue only reads, and
        // `Copy` values need no forgetting.
        unsafe { self.bulk(src.as_ptr().cast_mut(), src.len()) }.map_err(|free| RingFull {
            requested: src.len(),
            free,
        })
    }

    #[inline(always)]
    pub(crate) fn enqueue_burst(&self, src: &[T]) -> usize
    where
        T: Copy,
    {
        // SAFETY: `src` is valid for `len_u32(src.len()) <= src.len()`
        // elements; an enqueue only reads, and `Copy` values need no
        // forgetting.
        let c = unsafe {
            self.transfer(
                src.as_ptr().cast_mut(),
                len_u32(src.len()),
                Behaviour::Variable,
            )
        };
        c.n as usize
    }

    #[inline]
    pub(crate) fn enqueue_bulk_from<S: Source<T> + ?Sized>(
        &self,
        src: &mut S,
    ) -> Result<(), RingFull> {
        let vals = src.values();
        let len = vals.len();
        // SAFETY: `vals` is valid for `len` reads; on success all `len`
        // moved into the ring and are forgotten by the source just below.
        unsafe { self.bulk(vals.as_ptr().cast_mut(), len) }.map_err(|free| RingFull {
            requested: len,
            free,
        })?;
        // SAFETY: `len` values were moved out.
        unsafe { src.forget_front(len) };
        Ok(())
    }

    #[inline]
    pub(crate) fn enqueue_burst_from<S: Source<T> + ?Sized>(&self, src: &mut S) -> usize {
        let vals = src.values();
        // SAFETY: `vals` is valid for `len_u32(len) <= len` reads; the
        // `c.n` values moved are forgotten by the source just below.
        let c = unsafe {
            self.transfer(
                vals.as_ptr().cast_mut(),
                len_u32(vals.len()),
                Behaviour::Variable,
            )
        };
        // SAFETY: the first `c.n` values were moved out.
        unsafe { src.forget_front(c.n as usize) };
        c.n as usize
    }
}

impl<T, A: Algorithm> End<'_, T, A, false> {
    #[inline(always)]
    pub(crate) fn dequeue(&self) -> Option<T> {
        let c = self.claim(1, Behaviour::Fixed);
        if c.n == 0 {
            return None;
        }
        // SAFETY: the claim gave us published slot `c.start` (`Algorithm`'s
        // contract); its value is ours once read.
        let v = unsafe { self.ring.read_one(c.start) };
        self.publish(c);
        Some(v)
    }

    #[inline(always)]
    pub(crate) fn dequeue_bulk_uninit<'o>(
        &self,
        out: &'o mut [MaybeUninit<T>],
    ) -> Result<&'o mut [T], RingEmpty> {
        // SAFETY: `out` is valid for its length.
        unsafe { self.bulk(out.as_mut_ptr().cast(), out.len()) }.map_err(|available| {
            RingEmpty {
                requested: out.len(),
                available,
            }
        })?;
        // SAFETY: all `out.len()` elements were written.
        Ok(unsafe { &mut *(std::ptr::from_mut::<[MaybeUninit<T>]>(out) as *mut [T]) })
    }

    #[inline(always)]
    pub(crate) fn dequeue_burst_uninit<'o>(&self, out: &'o mut [MaybeUninit<T>]) -> &'o mut [T] {
        // SAFETY: `out` is valid for `len_u32(out.len()) <= out.len()`
        // elements.
        let c = unsafe {
            self.transfer(
                out.as_mut_ptr().cast(),
                len_u32(out.len()),
                Behaviour::Variable,
            )
        };
        // SAFETY: the first `c.n` elements were written.
        unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), c.n as usize) }
    }

    #[inline(always)]
    pub(crate) fn dequeue_bulk(&self, out: &mut [T]) -> Result<(), RingEmpty>
    where
        T: Copy,
    {
        // SAFETY: `out` is valid for its length; overwriting `Copy` values
        // drops nothing.
        unsafe { self.bulk(out.as_mut_ptr(), out.len()) }.map_err(|available| RingEmpty {
            requested: out.len(),
            available,
        })
    }

    #[inline(always)]
    pub(crate) fn dequeue_burst(&self, out: &mut [T]) -> usize
    where
        T: Copy,
    {
        // SAFETY: as in `dequeue_bulk`, for `len_u32(len) <= len` elements.
        let c = unsafe { self.transfer(out.as_mut_ptr(), len_u32(out.len()), Behaviour::Variable) };
        c.n as usize
    }

    #[inline]
    pub(crate) fn dequeue_burst_into<S: Sink<T> + ?Sized>(&self, dst: &mut S, max: usize) -> usize {
        // No more room than the ring can fill: a `Vec` grows by `max`.
        let max = max.min(self.ring.capacity());
        let n = self.dequeue_burst_uninit(dst.spare(max)).len();
        // SAFETY: `n` slots of the room were just written.
        unsafe { dst.assume_pushed(n) };
        n
    }
}
