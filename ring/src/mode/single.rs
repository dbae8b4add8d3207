//! [`Single`]: one thread on the side. The end keeps its own head in a
//! plain cell and a cached copy of the other side's tail, re-reading the
//! shared atomic only when the cache says full (producer) or empty
//! (consumer): no atomic read-modify-write and, most of the time, no cache
//! line shared with the other core.

use std::cell::Cell;

use super::sealed::{Algorithm, InPlace};
use super::Single;
use crate::indices::{grant, Behaviour, Claim, Indices};
use crate::sync::Ordering;

/// What a [`Single`] end keeps for itself. `Cell`s: the end is `Send` but
/// not `Sync`, so one thread at a time uses them.
#[derive(Debug)]
pub struct SingleState {
    /// Our head = our side's tail as we last published it; only we move it.
    head: Cell<u32>,
    /// The other side's tail as we last read it; the real one is at or past
    /// it (it only moves forward), so room computed from it is never more
    /// than there is.
    cached: Cell<u32>,
}

/// Publishes a single-thread end's slots up to `end`: moves its head and
/// its side's tail there.
#[inline(always)]
fn publish_to<const PROD: bool>(ix: &Indices, state: &SingleState, end: u32) {
    state.head.set(end);
    // Release: pairs with the other side's Acquire load of this tail (in its
    // claim): our slot writes (producer) are visible, or our slot reads
    // (consumer) are done, before it uses the slots.
    ix.side::<PROD>().0.tail.store(end, Ordering::Release);
}

// SAFETY: a `Single` end is its ring's only end of that side (the ring
// hands out one, neither `Sync` nor `Clone`), so slots from `head` on are
// ours alone; `claim` grants only slots the other side's tail has passed
// (free for a producer, published for a consumer) — the cached copy is at
// or behind the real tail — and publishing stores the tail with Release.
unsafe impl Algorithm for Single {
    type State = SingleState;

    fn state<const PROD: bool>(ix: &Indices) -> SingleState {
        let (ours, other) = ix.side::<PROD>();
        // Relaxed: no thread uses the side yet (the ring is being split by
        // its owner).
        SingleState {
            head: Cell::new(ours.tail.load(Ordering::Relaxed)),
            cached: Cell::new(other.load(Ordering::Relaxed)),
        }
    }

    /// Claims up to `n` slots from the cached tail of the other side,
    /// refreshing it only when it says there are not enough.
    #[inline(always)]
    fn claim<const PROD: bool>(ix: &Indices, state: &SingleState, n: u32, b: Behaviour) -> Claim {
        let head = state.head.get();
        let mut avail = ix.avail::<PROD>(head, state.cached.get());
        if avail < n {
            // Acquire: pairs with the other side's Release store of its
            // tail: the slots a consumer released are no longer being read,
            // the elements a producer published are written.
            let t = ix.side::<PROD>().1.load(Ordering::Acquire);
            state.cached.set(t);
            avail = ix.avail::<PROD>(head, t);
        }
        Claim {
            start: head,
            n: grant(n, avail, b),
            avail,
        }
    }

    #[inline(always)]
    fn publish<const PROD: bool>(ix: &Indices, state: &SingleState, c: Claim) {
        publish_to::<PROD>(ix, state, c.start.wrapping_add(c.n));
    }
}

// SAFETY: the end is alone on its side, so publishing part of a claim
// (moving head and tail to `pos`) hands exactly those slots over; the rest
// are claimed again by the next claim, which starts at the head.
unsafe impl InPlace for Single {
    #[inline(always)]
    fn advance<const PROD: bool>(ix: &Indices, state: &SingleState, _: &Claim, pos: u32) {
        publish_to::<PROD>(ix, state, pos);
    }

    #[inline(always)]
    fn release<const PROD: bool>(ix: &Indices, state: &SingleState, c: &Claim, n: u32) {
        if n != 0 {
            publish_to::<PROD>(ix, state, c.start.wrapping_add(n));
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_cached_tail_is_refreshed_only_when_short() {
        let ix = Indices::new(4, 0, (0, 0));
        let p = Single::state::<true>(&ix);
        let c = Single::state::<false>(&ix);
        let claim = Single::claim::<true>(&ix, &p, 4, Behaviour::Fixed);
        assert_eq!(claim.n, 4, "room for 4 from the cache alone");
        Single::publish::<true>(&ix, &p, claim);
        // The consumer's cache says empty: asking refreshes it.
        let claim = Single::claim::<false>(&ix, &c, 1, Behaviour::Fixed);
        assert_eq!((claim.n, c.cached.get()), (1, 4));
        Single::publish::<false>(&ix, &c, claim);
        // The producer's cache still says full; a claim of 1 refreshes it.
        assert_eq!(p.cached.get(), 0);
        let claim = Single::claim::<true>(&ix, &p, 1, Behaviour::Fixed);
        assert_eq!((claim.start, claim.n, p.cached.get()), (4, 1, 1));
    }

    #[test]
    fn release_of_nothing_publishes_nothing() {
        let ix = Indices::new(4, 7, (0, 0));
        let p = Single::state::<true>(&ix);
        let claim = Single::claim::<true>(&ix, &p, 2, Behaviour::Fixed);
        Single::release::<true>(&ix, &p, &claim, 0);
        assert_eq!((p.head.get(), ix.prod.tail.load(Ordering::Relaxed)), (7, 7));
        Single::advance::<true>(&ix, &p, &claim, 8);
        Single::release::<true>(&ix, &p, &claim, 1);
        assert_eq!((p.head.get(), ix.prod.tail.load(Ordering::Relaxed)), (8, 8));
    }
}
