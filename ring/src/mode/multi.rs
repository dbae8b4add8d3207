//! [`Multi`]: DPDK's MP/MC algorithm. A claim moves the head with a CAS;
//! threads then copy concurrently and publish in claim order (a finisher
//! waits until the tail reaches its claim's start, then moves it past its
//! claim).
//!
//! Unlike DPDK, a claim computes the room from a copy of the other side's
//! tail kept beside this side's head (shared by this side's threads) and
//! reads the real tail — a cache line the other core keeps writing — only
//! when the copy shows too little room (or is older than the head), as the
//! single-thread ends do with their own copy.
//!
//! Also [`Solo`]: the same side used by a thread that is, for now, its only
//! user (the `unsafe` `*_single_producer` / `*_single_consumer` twins),
//! which moves the head with a plain store.

use super::sealed::Algorithm;
use super::Multi;
use crate::indices::{grant, Behaviour, Claim, Indices};
use crate::sync::{spin_loop, Ordering};

/// Free (producer) or filled (consumer) slots for a claim of `want` from
/// `head` on a multi-thread side, from the side's cached copy of the other
/// side's tail, refreshed from the real tail when it shows too little.
///
/// `head` must have been read so that the other side's real tail read
/// after it is no older than the one the head's last mover used (an
/// Acquire load of the head after that mover's Release, or exclusivity
/// handed over by synchronisation).
#[inline(always)]
fn room<const PROD: bool>(ix: &Indices, head: u32, want: u32) -> u32 {
    let (side, other) = ix.side::<PROD>();
    // The other side's tail as some thread of this side last read
    // it (`Side::other_tail`): reading it instead of the real tail
    // keeps us off the other side's tail line while it shows room.
    // Acquire: pairs with the Release store of the cache below, by
    // whichever thread of this side refreshed it: what the other
    // side published before that tail (element writes, or the end
    // of its reads) happens before our slot accesses.
    let mut seen = side.other_tail.load(Ordering::Acquire);
    let mut avail = ix.avail::<PROD>(head, seen);
    // A cached tail older than the one the head's last mover used
    // shows more room than the capacity (the wrapped difference);
    // one that shows too little may just be stale. Either way, read
    // the real tail.
    if avail < want || avail > ix.capacity {
        let cached = seen;
        // Acquire: pairs with the Release tail store in the other
        // side's publish; the slots it releases are done with.
        seen = other.load(Ordering::Acquire);
        // Stored only when it moved: threads polling an empty (or
        // full) ring then only read this line.
        if seen != cached {
            // Release: pairs with the Acquire load of the cache above
            // in this side's other threads, handing on what our
            // Acquire load of the real tail took. A refresher that
            // stalls here may store an older tail than another's:
            // still a tail the other side has passed, so never more
            // room than there is, and the check above catches one
            // older than the head.
            side.other_tail.store(seen, Ordering::Release);
        }
        avail = ix.avail::<PROD>(head, seen);
    }
    avail
}

// SAFETY: the CAS on `head` gives each claimer its own slots
// `head..head + k`; `k` is granted from a tail the other side has passed
// (read from it, or from the cache of such reads, which is never ahead of
// it and is refreshed when it is older than the head), and `publish` stores
// the tail with Release only once every earlier claim is published (the
// tail reached our start).
unsafe impl Algorithm for Multi {
    type State = ();

    fn state<const PROD: bool>(_: &Indices) {}

    #[inline(always)]
    fn claim<const PROD: bool>(ix: &Indices, (): &(), want: u32, behaviour: Behaviour) -> Claim {
        let (side, _) = ix.side::<PROD>();
        // Acquire: pairs with the AcqRel CAS below in the thread that moved
        // the head last, so the real tail of the other side we may read next
        // is no older than the one that thread's claim was based on (else
        // `avail` could underflow).
        let mut head = side.head.load(Ordering::Acquire);
        loop {
            let avail = room::<PROD>(ix, head, want);
            let k = grant(want, avail, behaviour);
            if k == 0 {
                return Claim {
                    start: head,
                    n: 0,
                    avail,
                };
            }
            // AcqRel: Release hands our reads of the tail (cached or real)
            // on to the next claimer (its Acquire head load); Acquire as for
            // the first load.
            match side.head.compare_exchange_weak(
                head,
                head.wrapping_add(k),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Claim {
                        start: head,
                        n: k,
                        avail,
                    }
                }
                Err(cur) => head = cur,
            }
        }
    }

    #[inline(always)]
    fn publish<const PROD: bool>(ix: &Indices, (): &(), c: Claim) {
        let (side, _) = ix.side::<PROD>();
        // Acquire: pairs with the Release store below in the thread whose
        // claim ends at `c.start`; a plain store does not continue its
        // release sequence, so we take its slot accesses on before publishing.
        while side.tail.load(Ordering::Acquire) != c.start {
            spin_loop();
        }
        // Release: pairs with the other side's Acquire load of this tail
        // (in its claim), publishing our slot writes (producer) or the end of
        // our slot reads (consumer).
        side.tail
            .store(c.start.wrapping_add(c.n), Ordering::Release);
    }
}

/// A multi-thread side used by one thread alone (for a while): the head
/// moves with a plain store, no CAS.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Solo;

// SAFETY: used only through the `unsafe` twins, whose callers promise that
// no other thread is on the side while they run and that earlier users of
// the side happen-before them; so the slots from `head` on are ours alone,
// granted from a tail the other side has passed (cached or real, as for
// `Multi`), and the tail store is Release.
unsafe impl Algorithm for Solo {
    type State = ();

    fn state<const PROD: bool>(_: &Indices) {}

    #[inline(always)]
    fn claim<const PROD: bool>(ix: &Indices, (): &(), want: u32, behaviour: Behaviour) -> Claim {
        let (side, _) = ix.side::<PROD>();
        // Relaxed: exclusive by the twins' contract; earlier users
        // happen-before us.
        let head = side.head.load(Ordering::Relaxed);
        // The side's cached tail, as the multi-thread claims use it.
        let avail = room::<PROD>(ix, head, want);
        let k = grant(want, avail, behaviour);
        if k != 0 {
            // Relaxed: only this side's claimers read the head, and none is
            // concurrent; a later claimer is ordered after us by the
            // synchronisation the twins' contract asks for.
            side.head.store(head.wrapping_add(k), Ordering::Relaxed);
        }
        Claim {
            start: head,
            n: k,
            avail,
        }
    }

    #[inline(always)]
    fn publish<const PROD: bool>(ix: &Indices, (): &(), c: Claim) {
        let (side, _) = ix.side::<PROD>();
        // Release: pairs with the other side's Acquire tail load.
        side.tail
            .store(c.start.wrapping_add(c.n), Ordering::Release);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn claims_from_the_cached_tail_and_refreshes_when_it_says_full() {
        let ix = Indices::new(4, 0, (0, 0));
        // The consumers have released 3 slots; the producers' cache still
        // says 0: a claim of 2 fits in the cached room (4), no refresh.
        ix.cons.tail.store(3, Ordering::Relaxed);
        let c = Multi::claim::<true>(&ix, &(), 2, Behaviour::Fixed);
        assert_eq!((c.start, c.n, c.avail), (0, 2, 4));
        assert_eq!(ix.prod.other_tail.load(Ordering::Relaxed), 0);
        // Now the cache shows 2 free; asking for 3 refreshes it (7 - 2 = 5).
        let c = Multi::claim::<true>(&ix, &(), 3, Behaviour::Fixed);
        assert_eq!((c.start, c.n, c.avail), (2, 3, 5));
        assert_eq!(ix.prod.other_tail.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_cache_older_than_the_head_is_not_trusted() {
        let ix = Indices::new(4, 100, (0, 0));
        // The consumer head ran to 103 on a real producer tail of 103, but
        // the cache holds an older 101: the wrapped room would be huge.
        ix.prod.tail.store(103, Ordering::Relaxed);
        ix.cons.head.store(103, Ordering::Relaxed);
        ix.cons.other_tail.store(101, Ordering::Relaxed);
        let c = Multi::claim::<false>(&ix, &(), 1, Behaviour::Variable);
        assert_eq!((c.n, c.avail), (0, 0), "nothing published past 103");
        assert_eq!(ix.cons.other_tail.load(Ordering::Relaxed), 103);
        ix.prod.tail.store(104, Ordering::Relaxed);
        let c = Multi::claim::<false>(&ix, &(), 4, Behaviour::Variable);
        assert_eq!((c.start, c.n), (103, 1));
    }
}
