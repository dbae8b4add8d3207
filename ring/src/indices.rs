//! The indices of a ring's two sides and the arithmetic every sync
//! algorithm shares: what a claim is, how many slots it may take, how far
//! apart head and tail are.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// One side's indices (producer or consumer). Indices run freely over `u32`
/// and wrap; a slot is `index & mask`.
///
/// Invariants (all arithmetic wrapping):
/// - `tail <= head <= tail + capacity`: slots `tail..head` are claimed by
///   this side and being copied; everything before `tail` is published to
///   the other side.
/// - producer `tail - consumer tail <= capacity`: the producer never claims
///   a slot the consumer has not released.
/// - `hts` packs `{ head: low 32 bits, tail: high 32 bits }` for an HTS side;
///   its `tail` half equals `tail` whenever `head == tail`.
/// - For an RTS side, `hts` is the head `{ position: low, claims: high }` and
///   `rts_tail` the tail `{ position: low, finishes: high }`; when finishes
///   catch up with claims the tail position jumps to the head position.
///   `tail` mirrors the tail position and only moves forward.
/// - `other_tail` (multi-thread side) is a copy of the other side's `tail`
///   as some thread of this side last read it: at or behind the real one,
///   never ahead, so free room (producer) or filled slots (consumer)
///   computed from it are never more than there really are.
///
/// Layout: the claim words (`head`, `other_tail`, `hts`, `rts_tail`),
/// touched only by this side's threads, share one cache line; `tail`, which
/// the other side reads, has its own, so the other side's reads never stall
/// a claim's CAS.
#[repr(C)]
#[derive(Debug)]
pub struct Side {
    /// Next index to claim (multi-thread side only).
    pub(crate) head: AtomicU32,
    /// Cached copy of the other side's tail (multi-thread side only).
    pub(crate) other_tail: AtomicU32,
    /// Head and tail moved as one (HTS side); the counted head (RTS side).
    pub(crate) hts: AtomicU64,
    /// The counted tail (RTS side only).
    pub(crate) rts_tail: AtomicU64,
    /// Everything before it is published to the other side.
    pub(crate) tail: CachePadded<AtomicU32>,
}

impl Side {
    fn new(start: u32, other: u32) -> Self {
        Side {
            head: AtomicU32::new(start),
            other_tail: AtomicU32::new(other),
            tail: CachePadded::new(AtomicU32::new(start)),
            hts: AtomicU64::new(pack(start, start)),
            rts_tail: AtomicU64::new(pack(start, start)),
        }
    }
}

/// Both sides of a ring and what their claims need to know: the capacity
/// and each RTS side's head-tail distance limit. Knows nothing of the
/// element type.
#[derive(Debug)]
pub struct Indices {
    /// Usable elements (at most the number of slots, at most 2³⁰).
    pub(crate) capacity: u32,
    /// RTS producer side: a claim waits while the head is more than this
    /// ahead of the tail (DPDK's `htd_max`). Unused on other modes.
    pub(crate) prod_max_distance: u32,
    /// The same for an RTS consumer side.
    pub(crate) cons_max_distance: u32,
    pub(crate) prod: CachePadded<Side>,
    pub(crate) cons: CachePadded<Side>,
}

impl Indices {
    pub(crate) fn new(capacity: u32, start: u32, max_distance: (u32, u32)) -> Self {
        Indices {
            capacity,
            prod_max_distance: max_distance.0,
            cons_max_distance: max_distance.1,
            prod: CachePadded::new(Side::new(start, start)),
            cons: CachePadded::new(Side::new(start, start)),
        }
    }

    /// Returns both sides to `start`, empty; `&mut self` means no other
    /// thread looks at them.
    pub(crate) fn reset(&mut self, start: u32) {
        *self.prod = Side::new(start, start);
        *self.cons = Side::new(start, start);
    }

    /// This side (`PROD`: the producer's) and the other side's tail.
    #[inline(always)]
    pub(crate) fn side<const PROD: bool>(&self) -> (&Side, &AtomicU32) {
        if PROD {
            (&self.prod, &self.cons.tail)
        } else {
            (&self.cons, &self.prod.tail)
        }
    }

    /// This side's RTS head-tail distance limit.
    #[inline(always)]
    pub(crate) fn max_distance<const PROD: bool>(&self) -> u32 {
        if PROD {
            self.prod_max_distance
        } else {
            self.cons_max_distance
        }
    }

    /// Free (producer) or filled (consumer) slots for a claim starting at
    /// `head`, given the other side's tail.
    #[inline(always)]
    pub(crate) fn avail<const PROD: bool>(&self, head: u32, other_tail: u32) -> u32 {
        if PROD {
            self.capacity.wrapping_add(other_tail).wrapping_sub(head)
        } else {
            other_tail.wrapping_sub(head)
        }
    }

    /// Elements in the ring now (a snapshot when other threads are active).
    #[inline]
    pub(crate) fn used(&self) -> u32 {
        // The consumer tail is read first: it never passes the producer tail,
        // so the difference cannot go negative. Acquire: pairs with the
        // Release tail stores in every algorithm's publish.
        let c = self.cons.tail.load(Ordering::Acquire);
        let p = self.prod.tail.load(Ordering::Acquire);
        p.wrapping_sub(c).min(self.capacity)
    }
}

/// Packs an HTS `{ head, tail }` (or an RTS `{ position, count }`) word.
#[inline(always)]
pub(crate) fn pack(head: u32, tail: u32) -> u64 {
    (u64::from(tail) << 32) | u64::from(head)
}

/// Unpacks a word made by [`pack`]: `(head, tail)`.
#[inline(always)]
pub(crate) fn unpack(p: u64) -> (u32, u32) {
    (p as u32, (p >> 32) as u32)
}

/// What to do when fewer slots than asked for are free (or filled).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// All or nothing (`*_bulk`).
    Fixed,
    /// As many as possible (`*_burst`).
    Variable,
}

/// Slots a side has claimed: `start..start + n`; `avail` is what the claim
/// saw free (producer) or filled (consumer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// First claimed index.
    pub(crate) start: u32,
    /// Number of claimed slots (0: nothing claimed, nothing to publish).
    pub(crate) n: u32,
    /// Free (producer) or filled (consumer) slots the claim saw.
    pub(crate) avail: u32,
}

/// How many of `n` asked-for slots a claim takes when `avail` are there.
#[inline(always)]
pub(crate) fn grant(n: u32, avail: u32, b: Behaviour) -> u32 {
    match b {
        Behaviour::Fixed => {
            if n <= avail {
                n
            } else {
                0
            }
        }
        Behaviour::Variable => n.min(avail),
    }
}

/// Clamps a buffer length to the ring's `u32` index space.
#[inline(always)]
pub(crate) fn len_u32(len: usize) -> u32 {
    len.min(u32::MAX as usize) as u32
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn pack_and_unpack_are_inverse() {
        for (h, t) in [
            (0, 0),
            (1, 2),
            (u32::MAX, 0),
            (0, u32::MAX),
            (7, u32::MAX - 1),
        ] {
            assert_eq!(unpack(pack(h, t)), (h, t));
        }
        assert_eq!(pack(1, 2), (2 << 32) | 1);
    }

    #[test]
    fn grant_is_all_or_nothing_or_as_many_as_fit() {
        assert_eq!(grant(4, 4, Behaviour::Fixed), 4);
        assert_eq!(grant(5, 4, Behaviour::Fixed), 0);
        assert_eq!(grant(5, 4, Behaviour::Variable), 4);
        assert_eq!(grant(3, 4, Behaviour::Variable), 3);
        assert_eq!(grant(0, 0, Behaviour::Fixed), 0);
    }

    #[test]
    fn avail_across_the_wrap() {
        let ix = Indices::new(8, u32::MAX - 2, (1, 1));
        // Producer at MAX-2 + 5 (wrapped to 2), consumer tail at MAX-2:
        // 5 used, 3 free.
        let head = (u32::MAX - 2).wrapping_add(5);
        assert_eq!(ix.avail::<true>(head, u32::MAX - 2), 3);
        // Consumer at MAX-2 sees 5 filled up to the producer tail.
        assert_eq!(ix.avail::<false>(u32::MAX - 2, head), 5);
        // A stale (older) tail only shows less room, never more.
        assert_eq!(ix.avail::<true>(head, u32::MAX - 3), 2);
        assert_eq!(ix.avail::<false>(u32::MAX - 2, head.wrapping_sub(1)), 4);
    }

    #[test]
    fn used_counts_and_reset() {
        let mut ix = Indices::new(4, 10, (0, 0));
        assert_eq!(ix.used(), 0);
        ix.prod.tail.store(13, Ordering::Relaxed);
        assert_eq!(ix.used(), 3);
        ix.cons.tail.store(11, Ordering::Relaxed);
        assert_eq!(ix.used(), 2);
        ix.reset(u32::MAX);
        assert_eq!(ix.used(), 0);
        assert_eq!(ix.prod.head.load(Ordering::Relaxed), u32::MAX);
        assert_eq!(
            unpack(ix.cons.hts.load(Ordering::Relaxed)),
            (u32::MAX, u32::MAX)
        );
    }

    #[test]
    fn len_u32_clamps() {
        assert_eq!(len_u32(5), 5);
        assert_eq!(len_u32(usize::MAX), u32::MAX);
    }
}
