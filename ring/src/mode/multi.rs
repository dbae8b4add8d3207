//! [`Multi`]: DPDK's MP/MC algorithm. A claim moves the head with a CAS;
//! threads then copy concurrently and publish in claim order (a finisher
//! waits until the tail reaches its claim's start, then moves it past its
//! claim).
//!
//! Also [`Solo`]: the same side used by a thread that is, for now, its only
//! user (the `unsafe` `*_single_producer` / `*_single_consumer` twins),
//! which moves the head with a plain store.

use super::sealed::Algorithm;
use super::Multi;
use crate::indices::{grant, Behaviour, Claim, Indices};
use crate::sync::{spin_loop, Ordering};

// SAFETY: the CAS on `head` gives each claimer its own slots
// `head..head + k`; `k` is granted from a fresh read of the other side's
// tail (`avail`), and `publish` stores the tail with Release only once
// every earlier claim is published (the tail reached our start).
unsafe impl Algorithm for Multi {
    type State = ();

    fn state<const PROD: bool>(_: &Indices) {}

    #[inline(always)]
    fn claim<const PROD: bool>(ix: &Indices, (): &(), want: u32, behaviour: Behaviour) -> Claim {
        let (side, other) = ix.side::<PROD>();
        // Acquire: pairs with the AcqRel CAS below in the thread that moved
        // the head last, so the other side's tail we read next is no older
        // than the one it read (else `avail` could underflow).
        let mut head = side.head.load(Ordering::Acquire);
        loop {
            // Acquire: pairs with the Release tail store in the other side's
            // publish; the slots it releases are done with.
            let seen = other.load(Ordering::Acquire);
            let avail = ix.avail::<PROD>(head, seen);
            let k = grant(want, avail, behaviour);
            if k == 0 {
                return Claim {
                    start: head,
                    n: 0,
                    avail,
                };
            }
            // AcqRel: Release publishes our read of the other tail to the next
            // claimer (its Acquire head load); Acquire as for the first load.
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
// granted from a fresh read of the other side's tail, and the tail store
// is Release.
unsafe impl Algorithm for Solo {
    type State = ();

    fn state<const PROD: bool>(_: &Indices) {}

    #[inline(always)]
    fn claim<const PROD: bool>(ix: &Indices, (): &(), want: u32, behaviour: Behaviour) -> Claim {
        let (side, other) = ix.side::<PROD>();
        // Relaxed: exclusive by the twins' contract; earlier users
        // happen-before us.
        let head = side.head.load(Ordering::Relaxed);
        // Acquire: pairs with the Release tail store of the other side.
        let seen = other.load(Ordering::Acquire);
        let avail = ix.avail::<PROD>(head, seen);
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
