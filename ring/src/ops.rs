//! The public operations, written once for every end.
//!
//! An end differs from another only in how it claims slots and publishes
//! them: a CAS or a cached index, which tail it stores. [`RingEnd`] is
//! those two steps; the functions here are the copy in
//! between, the bulk/burst rules and the error values, and the
//! [`enqueue_methods!`] / [`dequeue_methods!`] macros stamp the public
//! methods (with their docs and examples) onto [`Ring`] and each handle.

use std::mem::MaybeUninit;

use crate::error::{RingEmpty, RingFull};
use crate::ring::{Behaviour, Claim, Ring};

/// Clamps a slice length to the ring's `u32` index space.
#[inline(always)]
pub(crate) fn len_u32(len: usize) -> u32 {
    len.min(u32::MAX as usize) as u32
}

/// One side of one end of a ring: how it claims slots and publishes them.
/// `PROD` is the side: `true` enqueues, `false` dequeues.
///
/// # Safety
///
/// Implementors promise that a claim `c` from [`claim`](Self::claim) with
/// `c.n != 0`:
/// - has `c.n` as `grant` gives it under `b` for `c.avail`
///   free (producer) or filled (consumer) slots;
/// - gives this caller alone slots `c.start..c.start + c.n` of
///   [`ring`](Self::ring): to write (producer), or holding published
///   elements to read (consumer), until it passes `c` to
///   [`publish`](Self::publish), which hands them to the other side with
///   a Release store of this side's tail.
pub(crate) unsafe trait RingEnd<T: Copy + Send, const PROD: bool> {
    /// The ring behind this end.
    fn ring(&self) -> &Ring<T>;
    /// Claims up to `n` slots under `b` (`c.n == 0`: nothing claimed, and
    /// nothing to publish).
    fn claim(&self, n: u32, b: Behaviour) -> Claim;
    /// Publishes a non-empty claim whose slots have all been copied.
    fn publish(&self, c: Claim);
}

/// Claims up to `n` slots, copies between them and `buf` (in for a
/// producer, out for a consumer), publishes; returns the claim.
///
/// # Safety
///
/// `buf` is valid for `n` reads (producer) or writes (consumer).
#[inline(always)]
unsafe fn transfer<T: Copy + Send, const PROD: bool, E: RingEnd<T, PROD>>(
    e: &E,
    buf: *mut T,
    n: u32,
    b: Behaviour,
) -> Claim {
    let c = e.claim(n, b);
    if c.n != 0 {
        // SAFETY: the claim gave us slots `c.start..+c.n`, free (producer)
        // or published (consumer), by `RingEnd`'s contract; `buf` is valid
        // for `n >= c.n` elements (ours); a producer only reads it.
        unsafe {
            if PROD {
                e.ring().write_slots(c.start, buf, c.n)
            } else {
                e.ring().read_slots(c.start, buf, c.n)
            }
        }
        e.publish(c);
    }
    c
}

/// Views initialised elements as uninitialised memory, for the `_uninit`
/// bodies to serve the plain forms too.
#[inline(always)]
fn as_uninit<T>(out: &mut [T]) -> &mut [MaybeUninit<T>] {
    // SAFETY: `MaybeUninit<T>` has `T`'s layout; the callers here only write
    // whole `T` values through the view, so `out` stays initialised.
    unsafe { &mut *(out as *mut [T] as *mut [MaybeUninit<T>]) }
}

/// Body of every `enqueue`: one slot, written directly (no run split).
#[inline(always)]
pub(crate) fn enqueue<T: Copy + Send, E: RingEnd<T, true>>(e: &E, value: T) -> Result<(), T> {
    let c = e.claim(1, Behaviour::Fixed);
    if c.n == 0 {
        return Err(value);
    }
    // SAFETY: the claim gave us free slot `c.start` (`RingEnd`'s contract).
    unsafe { e.ring().write_one(c.start, value) };
    e.publish(c);
    Ok(())
}

/// The all-or-nothing rule of every `*_bulk`: moves all `len` elements
/// between the ring and `buf`, or none and returns what there was room for
/// (free slots for a producer, elements for a consumer).
///
/// # Safety
///
/// `buf` is valid for `len` reads (producer) or writes (consumer).
#[inline(always)]
unsafe fn bulk<T: Copy + Send, const PROD: bool, E: RingEnd<T, PROD>>(
    e: &E,
    buf: *mut T,
    len: usize,
) -> Result<(), usize> {
    let ring = e.ring();
    if len > ring.capacity() {
        return Err(if PROD { ring.free_count() } else { ring.len() });
    }
    // No truncation: `len <= capacity <= MAX_CAPACITY`.
    let n = len as u32;
    // SAFETY: `buf` is valid for `len = n` elements (ours).
    let c = unsafe { transfer(e, buf, n, Behaviour::Fixed) };
    if c.n == n {
        Ok(())
    } else {
        Err(c.avail as usize)
    }
}

/// Body of every `enqueue_bulk`.
#[inline(always)]
pub(crate) fn enqueue_bulk<T: Copy + Send, E: RingEnd<T, true>>(
    e: &E,
    src: &[T],
) -> Result<(), RingFull> {
    // SAFETY: `src` is valid for its length, and an enqueue only reads.
    unsafe { bulk(e, src.as_ptr().cast_mut(), src.len()) }.map_err(|free| RingFull {
        requested: src.len(),
        free,
    })
}

/// Body of every `enqueue_burst`.
#[inline(always)]
pub(crate) fn enqueue_burst<T: Copy + Send, E: RingEnd<T, true>>(e: &E, src: &[T]) -> usize {
    // SAFETY: `src` is valid for `len_u32(src.len()) <= src.len()` elements,
    // and an enqueue only reads.
    unsafe {
        transfer(
            e,
            src.as_ptr().cast_mut(),
            len_u32(src.len()),
            Behaviour::Variable,
        )
    }
    .n as usize
}

/// Body of every `dequeue`: one slot, read directly (no run split).
#[inline(always)]
pub(crate) fn dequeue<T: Copy + Send, E: RingEnd<T, false>>(e: &E) -> Option<T> {
    let c = e.claim(1, Behaviour::Fixed);
    if c.n == 0 {
        return None;
    }
    // SAFETY: the claim gave us published slot `c.start` (`RingEnd`'s
    // contract).
    let v = unsafe { e.ring().read_one(c.start) };
    e.publish(c);
    Some(v)
}

/// Body of every `dequeue_bulk_uninit` (and, through [`as_uninit`],
/// `dequeue_bulk`).
#[inline(always)]
pub(crate) fn dequeue_bulk_uninit<'o, T: Copy + Send, E: RingEnd<T, false>>(
    e: &E,
    out: &'o mut [MaybeUninit<T>],
) -> Result<&'o mut [T], RingEmpty> {
    // SAFETY: `out` is valid for its length.
    unsafe { bulk(e, out.as_mut_ptr().cast(), out.len()) }.map_err(|available| RingEmpty {
        requested: out.len(),
        available,
    })?;
    // SAFETY: all `out.len()` elements were written.
    Ok(unsafe { &mut *(out as *mut [MaybeUninit<T>] as *mut [T]) })
}

/// Body of every `dequeue_bulk`.
#[inline(always)]
pub(crate) fn dequeue_bulk<T: Copy + Send, E: RingEnd<T, false>>(
    e: &E,
    out: &mut [T],
) -> Result<(), RingEmpty> {
    dequeue_bulk_uninit(e, as_uninit(out)).map(|_| ())
}

/// Body of every `dequeue_burst_uninit` (and, through [`as_uninit`],
/// `dequeue_burst`).
#[inline(always)]
pub(crate) fn dequeue_burst_uninit<'o, T: Copy + Send, E: RingEnd<T, false>>(
    e: &E,
    out: &'o mut [MaybeUninit<T>],
) -> &'o mut [T] {
    // SAFETY: `out` is valid for `len_u32(out.len()) <= out.len()` elements.
    let c = unsafe {
        transfer(
            e,
            out.as_mut_ptr().cast(),
            len_u32(out.len()),
            Behaviour::Variable,
        )
    };
    // SAFETY: the first `c.n` elements were written.
    unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast(), c.n as usize) }
}

/// Body of every `dequeue_burst`.
#[inline(always)]
pub(crate) fn dequeue_burst<T: Copy + Send, E: RingEnd<T, false>>(e: &E, out: &mut [T]) -> usize {
    dequeue_burst_uninit(e, as_uninit(out)).len()
}

/// The public enqueue methods of an end type whose `ops_end()` is a
/// producer [`RingEnd`]. `setup` is the doc examples' first lines, making a ring that holds 3
/// whose producer end is named `p` and consumer end `c` (both string
/// literals, e.g. `"r"` for a shared [`Ring`]).
macro_rules! enqueue_methods {
    (setup: $setup:literal, p: $p:literal, c: $c:literal) => {
        /// Enqueues one element, or hands it back when the ring is full.
        ///
        #[doc = concat!("```\n", $setup, "
assert_eq!(", $p, ".enqueue(1), Ok(()));
", $p, ".enqueue_bulk(&[2, 3]).unwrap();
assert_eq!(", $p, ".enqueue(4), Err(4)); // full: handed back
assert_eq!(", $c, ".dequeue(), Some(1));
```")]
        #[inline]
        pub fn enqueue(&self, value: T) -> Result<(), T> {
            $crate::ops::enqueue(self.ops_end(), value)
        }

        /// Enqueues all of `src` or, if it does not fit, nothing.
        ///
        #[doc = concat!("```\n", $setup, "
use pktmem_ring::RingFull;
", $p, ".enqueue_bulk(&[1, 2]).unwrap();
assert_eq!(", $p, ".enqueue_bulk(&[3, 4]), Err(RingFull { requested: 2, free: 1 }));
assert_eq!(", $c, ".len(), 2);
```")]
        #[inline]
        pub fn enqueue_bulk(&self, src: &[T]) -> Result<(), $crate::RingFull> {
            $crate::ops::enqueue_bulk(self.ops_end(), src)
        }

        /// Enqueues as much of `src` as fits, in order; returns how many.
        ///
        #[doc = concat!("```\n", $setup, "
assert_eq!(", $p, ".enqueue_burst(&[1, 2, 3, 4, 5]), 3);
assert_eq!(", $c, ".dequeue(), Some(1));
```")]
        #[inline]
        pub fn enqueue_burst(&self, src: &[T]) -> usize {
            $crate::ops::enqueue_burst(self.ops_end(), src)
        }
    };
}
pub(crate) use enqueue_methods;

/// The public dequeue methods of an end type whose `ops_end()` is a
/// consumer [`RingEnd`];
/// `setup`, `p` and `c` as for [`enqueue_methods!`].
macro_rules! dequeue_methods {
    (setup: $setup:literal, p: $p:literal, c: $c:literal) => {
        /// Dequeues one element, or `None` when the ring is empty.
        ///
        #[doc = concat!("```\n", $setup, "
assert_eq!(", $c, ".dequeue(), None);
", $p, ".enqueue(9).unwrap();
assert_eq!(", $c, ".dequeue(), Some(9));
```")]
        #[inline]
        pub fn dequeue(&self) -> Option<T> {
            $crate::ops::dequeue(self.ops_end())
        }

        /// Fills all of `out` or, if the ring holds fewer, dequeues nothing.
        ///
        #[doc = concat!("```\n", $setup, "
use pktmem_ring::RingEmpty;
", $p, ".enqueue_bulk(&[1, 2, 3]).unwrap();
let mut out = [0; 2];
", $c, ".dequeue_bulk(&mut out).unwrap();
assert_eq!(out, [1, 2]);
assert_eq!(", $c, ".dequeue_bulk(&mut out), Err(RingEmpty { requested: 2, available: 1 }));
```")]
        #[inline]
        pub fn dequeue_bulk(&self, out: &mut [T]) -> Result<(), $crate::RingEmpty> {
            $crate::ops::dequeue_bulk(self.ops_end(), out)
        }

        /// [`dequeue_bulk`](Self::dequeue_bulk) into uninitialised memory;
        /// returns `out`, now initialised.
        ///
        #[doc = concat!("```\n", $setup, "
use std::mem::MaybeUninit;
", $p, ".enqueue_bulk(&[1, 2]).unwrap();
let mut buf = [MaybeUninit::uninit(); 2];
assert_eq!(", $c, ".dequeue_bulk_uninit(&mut buf).unwrap(), &[1, 2]);
```")]
        #[inline]
        pub fn dequeue_bulk_uninit<'o>(
            &self,
            out: &'o mut [std::mem::MaybeUninit<T>],
        ) -> Result<&'o mut [T], $crate::RingEmpty> {
            $crate::ops::dequeue_bulk_uninit(self.ops_end(), out)
        }

        /// Dequeues as many elements as are there, up to `out.len()`;
        /// returns how many were written to the front of `out`.
        ///
        #[doc = concat!("```\n", $setup, "
", $p, ".enqueue_bulk(&[1, 2]).unwrap();
let mut out = [0; 4];
assert_eq!(", $c, ".dequeue_burst(&mut out), 2);
assert_eq!(out[..2], [1, 2]);
```")]
        #[inline]
        pub fn dequeue_burst(&self, out: &mut [T]) -> usize {
            $crate::ops::dequeue_burst(self.ops_end(), out)
        }

        /// [`dequeue_burst`](Self::dequeue_burst) into uninitialised memory;
        /// returns the initialised front of `out`.
        ///
        #[doc = concat!("```\n", $setup, "
use std::mem::MaybeUninit;
", $p, ".enqueue(3).unwrap();
let mut buf = [MaybeUninit::uninit(); 4];
assert_eq!(", $c, ".dequeue_burst_uninit(&mut buf), &[3]);
```")]
        #[inline]
        pub fn dequeue_burst_uninit<'o>(
            &self,
            out: &'o mut [std::mem::MaybeUninit<T>],
        ) -> &'o mut [T] {
            $crate::ops::dequeue_burst_uninit(self.ops_end(), out)
        }
    };
}
pub(crate) use dequeue_methods;
