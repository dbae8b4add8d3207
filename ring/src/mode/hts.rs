//! [`Hts`]: head-tail sync (DPDK's `rte_ring_hts`). The side's head and tail
//! live in one 64-bit word; a claim waits until they are equal (nobody owns
//! the side), then moves the head alone; publishing moves the tail to the
//! head, which frees the side for the next thread. Because one thread at a
//! time owns the claimed slots, a claim can be held open for zero-copy
//! access and published in part.

use super::sealed::{Algorithm, InPlace};
use super::Hts;
use crate::indices::{grant, pack, unpack, Behaviour, Claim, Indices};
use crate::sync::{spin_loop, Ordering};

// SAFETY: a claim takes the side only when `hts` shows head == tail (no
// owner) and moves the head with a CAS, so one thread at a time owns the
// side and its slots `start..start + k`; `k` is granted from a fresh read of
// the other side's tail, and `publish`/`release` store the tail with Release
// before handing the side on.
unsafe impl Algorithm for Hts {
    type State = ();

    fn state<const PROD: bool>(_: &Indices) {}

    #[inline(always)]
    fn claim<const PROD: bool>(ix: &Indices, (): &(), want: u32, behaviour: Behaviour) -> Claim {
        let (side, other) = ix.side::<PROD>();
        // Acquire: pairs with the Release store of `hts` in `publish_part`:
        // the previous owner's slot accesses and tail read happen before ours.
        let mut p = side.hts.load(Ordering::Acquire);
        loop {
            let (head, tail) = unpack(p);
            if head != tail {
                spin_loop();
                // Acquire: as above.
                p = side.hts.load(Ordering::Acquire);
                continue;
            }
            // Acquire: pairs with the Release tail store of the other side.
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
            // Acquire on both outcomes: as for the load above.
            match side.hts.compare_exchange_weak(
                p,
                pack(head.wrapping_add(k), tail),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    return Claim {
                        start: head,
                        n: k,
                        avail,
                    }
                }
                Err(cur) => p = cur,
            }
        }
    }

    #[inline(always)]
    fn publish<const PROD: bool>(ix: &Indices, (): &(), c: Claim) {
        publish_part::<PROD>(ix, c.start, c.n);
    }
}

/// Publishes `n` of the slots claimed from `start` (`n` may be below the
/// claim: peek and partial zero-copy commits) and frees the side.
#[inline(always)]
fn publish_part<const PROD: bool>(ix: &Indices, start: u32, n: u32) {
    let (side, _) = ix.side::<PROD>();
    let end = start.wrapping_add(n);
    // Release: pairs with the other side's Acquire load of this tail.
    // Stored before `hts` so the next owner's tail store comes after ours.
    side.tail.store(end, Ordering::Release);
    // Release: pairs with the Acquire loads of `hts` in `claim`.
    side.hts.store(pack(end, end), Ordering::Release);
}

// SAFETY: while the side is owned (head != tail in `hts`) no other thread
// of the side claims, so moving the published `tail` forward inside our
// claim only hands those slots to the other side; `release` publishes the
// first `n` and frees the side, giving the rest back (the head returns to
// `start + n`).
unsafe impl InPlace for Hts {
    #[inline(always)]
    fn advance<const PROD: bool>(ix: &Indices, (): &(), _: &Claim, pos: u32) {
        let (side, _) = ix.side::<PROD>();
        // Release: pairs with the other side's Acquire load of this tail:
        // the values before `pos` have been moved out (consumer) or
        // written (producer).
        side.tail.store(pos, Ordering::Release);
    }

    #[inline(always)]
    fn release<const PROD: bool>(ix: &Indices, (): &(), c: &Claim, n: u32) {
        // A zero-length claim never took the side.
        if c.n != 0 {
            publish_part::<PROD>(ix, c.start, n);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_claim_owns_the_side_until_released_in_part() {
        let ix = Indices::new(8, u32::MAX - 1, (0, 0));
        ix.prod.tail.store(3, Ordering::Relaxed); // 5 filled, across the wrap
        let c = Hts::claim::<false>(&ix, &(), 4, Behaviour::Fixed);
        assert_eq!((c.start, c.n, c.avail), (u32::MAX - 1, 4, 5));
        let (head, tail) = unpack(ix.cons.hts.load(Ordering::Relaxed));
        assert_eq!((head, tail), (2, u32::MAX - 1), "owned: head != tail");
        // Moving the published tail inside the claim keeps the side owned.
        Hts::advance::<false>(&ix, &(), &c, u32::MAX);
        assert_eq!(ix.cons.tail.load(Ordering::Relaxed), u32::MAX);
        assert_ne!(unpack(ix.cons.hts.load(Ordering::Relaxed)).0, u32::MAX);
        // Releasing 2 of the 4 gives the other 2 back: head = tail = start + 2.
        Hts::release::<false>(&ix, &(), &c, 2);
        assert_eq!(unpack(ix.cons.hts.load(Ordering::Relaxed)), (0, 0));
        assert_eq!(ix.cons.tail.load(Ordering::Relaxed), 0);
        // The next claim starts where the release ended.
        let c = Hts::claim::<false>(&ix, &(), 8, Behaviour::Variable);
        assert_eq!((c.start, c.n), (0, 3));
        Hts::publish::<false>(&ix, &(), c);
        assert_eq!(unpack(ix.cons.hts.load(Ordering::Relaxed)), (3, 3));
    }

    #[test]
    fn an_empty_claim_does_not_take_the_side() {
        let ix = Indices::new(4, 0, (0, 0));
        let c = Hts::claim::<false>(&ix, &(), 1, Behaviour::Fixed);
        assert_eq!(c.n, 0);
        Hts::release::<false>(&ix, &(), &c, 0);
        assert_eq!(unpack(ix.cons.hts.load(Ordering::Relaxed)), (0, 0));
    }
}
