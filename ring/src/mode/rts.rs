//! [`Rts`]: relaxed tail sync (DPDK's `rte_ring_rts`). The head and the tail
//! each carry a counter: a claim CASes the head forward and counts itself,
//! a finisher counts itself on the tail, and the finisher that brings the
//! count level with the head's moves the tail over everything claimed. No
//! finisher waits for an earlier claimer; a claim waits only while the head
//! is more than the side's distance limit ahead of the tail.

use super::sealed::Algorithm;
use super::Rts;
use crate::indices::{grant, pack, unpack, Behaviour, Claim, Indices};
use crate::sync::{spin_loop, AtomicU32, Ordering};

// SAFETY: the CAS on the counted head gives each claimer its own slots
// `pos..pos + k`, granted from a fresh read of the other side's tail; the
// tail moves (with Release, in `advance_tail`) only to a head position
// whose claims have all finished (finishes == claims), and each finisher's
// AcqRel CAS on `rts_tail` carries its slot accesses on to that mover.
unsafe impl Algorithm for Rts {
    type State = ();

    fn state<const PROD: bool>(_: &Indices) {}

    #[inline(always)]
    fn claim<const PROD: bool>(ix: &Indices, (): &(), want: u32, behaviour: Behaviour) -> Claim {
        let (side, other) = ix.side::<PROD>();
        let max = ix.max_distance::<PROD>();
        // Acquire: pairs with the AcqRel CAS below in the previous claimer,
        // as in `Multi`'s claim.
        let mut h = side.hts.load(Ordering::Acquire);
        loop {
            let (pos, claims) = unpack(h);
            // Head-tail distance limit: wait while this side's head is more
            // than `max` ahead of its tail. Progress only, not safety (the
            // slots a claim may take are decided by `avail` below), so the
            // orderings matter only for freshness. Acquire: pairs with the
            // AcqRel tail CAS in `publish`. A tail read newer than `h`
            // may be ahead of it: the wrapped distance is then huge and we
            // re-read the head, which is at least that tail.
            let (tpos, _) = unpack(side.rts_tail.load(Ordering::Acquire));
            if pos.wrapping_sub(tpos) > max {
                spin_loop();
                // Acquire: as for the first load of `hts`.
                h = side.hts.load(Ordering::Acquire);
                continue;
            }
            // Acquire: pairs with the other side's Release publication of
            // its tail.
            let seen = other.load(Ordering::Acquire);
            let avail = ix.avail::<PROD>(pos, seen);
            let k = grant(want, avail, behaviour);
            if k == 0 {
                return Claim {
                    start: pos,
                    n: 0,
                    avail,
                };
            }
            // AcqRel: as in `Multi`'s claim.
            match side.hts.compare_exchange_weak(
                h,
                pack(pos.wrapping_add(k), claims.wrapping_add(1)),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Claim {
                        start: pos,
                        n: k,
                        avail,
                    }
                }
                Err(cur) => h = cur,
            }
        }
    }

    /// Counts our finish; if it is the last outstanding one, moves the tail
    /// to the head.
    #[inline(always)]
    fn publish<const PROD: bool>(ix: &Indices, (): &(), _: Claim) {
        let (side, _) = ix.side::<PROD>();
        // Acquire: pairs with the AcqRel CAS below by earlier finishers, so
        // their slot accesses happen before any publication we make.
        let mut t = side.rts_tail.load(Ordering::Acquire);
        loop {
            let (tpos, finishes) = unpack(t);
            // Acquire: pairs with the AcqRel head CAS of the claims it counts.
            let (hpos, claims) = unpack(side.hts.load(Ordering::Acquire));
            let finishes = finishes.wrapping_add(1);
            let pos = if claims == finishes { hpos } else { tpos };
            // AcqRel: Release hands our slot accesses on to later finishers
            // (and through them to the publication); Acquire as above.
            match side.rts_tail.compare_exchange_weak(
                t,
                pack(pos, finishes),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if pos != tpos {
                        advance_tail(&side.tail, pos);
                    }
                    return;
                }
                Err(cur) => t = cur,
            }
        }
    }
}

/// Moves a mirrored tail forward to `pos` unless another thread already
/// moved it further.
#[inline(always)]
fn advance_tail(tail: &AtomicU32, pos: u32) {
    // Relaxed: only a starting guess; the CAS below decides.
    let mut m = tail.load(Ordering::Relaxed);
    while (pos.wrapping_sub(m) as i32) > 0 {
        // Release: pairs with the other side's Acquire load of this tail;
        // everything before `pos` is complete (see `publish`).
        match tail.compare_exchange_weak(m, pos, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(cur) => m = cur,
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_last_finisher_moves_the_tail_over_every_claim() {
        let start = u32::MAX - 2;
        let ix = Indices::new(8, start, (8, 8));
        // Both counters start level (at `start`); only their equality
        // matters.
        let count =
            |w: &crate::sync::AtomicU64| unpack(w.load(Ordering::Relaxed)).1.wrapping_sub(start);
        let a = Rts::claim::<true>(&ix, &(), 2, Behaviour::Fixed);
        let b = Rts::claim::<true>(&ix, &(), 3, Behaviour::Fixed);
        assert_eq!((a.start, b.start), (start, u32::MAX));
        assert_eq!(unpack(ix.prod.hts.load(Ordering::Relaxed)).0, 2, "head");
        assert_eq!(count(&ix.prod.hts), 2, "claims");
        // The later claim finishes first: counted, the tail does not move.
        Rts::publish::<true>(&ix, &(), b);
        assert_eq!(ix.prod.tail.load(Ordering::Relaxed), start);
        assert_eq!(count(&ix.prod.rts_tail), 1, "finishes");
        // The last one moves it to the head, over both.
        Rts::publish::<true>(&ix, &(), a);
        assert_eq!(ix.prod.tail.load(Ordering::Relaxed), 2);
        assert_eq!(unpack(ix.prod.rts_tail.load(Ordering::Relaxed)).0, 2);
        assert_eq!(count(&ix.prod.rts_tail), 2);
    }

    #[test]
    fn a_claim_within_the_distance_limit_goes_through() {
        // Limit 2: with nothing outstanding a claim of 5 is fine (the limit
        // bounds the head's lead over the tail before claiming).
        let ix = Indices::new(8, 0, (2, 2));
        let c = Rts::claim::<true>(&ix, &(), 5, Behaviour::Variable);
        assert_eq!(c.n, 5);
        Rts::publish::<true>(&ix, &(), c);
        let c = Rts::claim::<true>(&ix, &(), 5, Behaviour::Variable);
        assert_eq!((c.start, c.n), (5, 3), "as many as are free");
    }

    #[test]
    fn advance_tail_never_moves_back() {
        let t = AtomicU32::new(10);
        advance_tail(&t, 8);
        assert_eq!(t.load(Ordering::Relaxed), 10);
        advance_tail(&t, 12);
        assert_eq!(t.load(Ordering::Relaxed), 12);
        let t = AtomicU32::new(u32::MAX);
        advance_tail(&t, 1); // across the wrap
        assert_eq!(t.load(Ordering::Relaxed), 1);
    }
}
