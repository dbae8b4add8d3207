//! The ownership ledger: who holds each buffer, in exporter-private memory.
//!
//! One `AtomicU32` per buffer: `0` = with the exporter (its free list or its
//! application), `r` = lent to role slot `r` (1-based, [`Role::slot`]).
//! Every crossing exporter → peer sets the entry (`0 → r`), every crossing
//! peer → exporter must swap it back (`r → 0`) or the descriptor is refused;
//! reclaim after a peer's death swaps back every entry still `r` except those
//! queued in its rings. A buffer reaches the free list only through a
//! successful `r → 0` swap or from the exporter's own hands, so it is there
//! at most once whatever a peer writes.
//!
//! [`Role::slot`]: crate::hugemem::share::Role::slot

// Through `super::sync` so that `tests/loom_shm_ledger.rs` can compile this
// file against loom's atomics.
use super::sync::atomic::{AtomicU32, Ordering};

/// Why a buffer could not be taken back from a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TakeBack {
    /// The buffer is with the exporter (returned twice, or never lent).
    NotLent,
    /// The buffer is lent to another role (slot given).
    OtherRole(u32),
}

/// A set of buffer indices (the ones reclaim must leave alone).
#[derive(Debug)]
pub(crate) struct IndexSet {
    words: Vec<u64>,
}

impl IndexSet {
    /// An empty set for indices `0..n`.
    pub(crate) fn new(n: u32) -> Self {
        IndexSet {
            words: vec![0; (n as usize).div_ceil(64)],
        }
    }

    /// Adds `idx` (which must be `< n`); returns whether it was new.
    pub(crate) fn insert(&mut self, idx: u32) -> bool {
        let (w, b) = ((idx / 64) as usize, idx % 64);
        let was = self.words[w] >> b & 1 == 1;
        self.words[w] |= 1 << b;
        !was
    }

    /// Whether `idx` is in the set.
    pub(crate) fn contains(&self, idx: u32) -> bool {
        let (w, b) = ((idx / 64) as usize, idx % 64);
        self.words.get(w).is_some_and(|x| x >> b & 1 == 1)
    }

    /// How many indices are in the set.
    pub(crate) fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }
}

/// The ledger: entry `i` is buffer `i`'s holder.
///
/// Invariant: an entry changes `0 → r` only in [`lend`](Self::lend) and
/// `r → 0` only in [`take_back`](Self::take_back) (also used by reclaim);
/// nothing else writes it.
#[derive(Debug)]
pub(crate) struct Ledger {
    slots: Box<[AtomicU32]>,
}

impl Ledger {
    /// `n` buffers, all with the exporter.
    pub(crate) fn new(n: u32) -> Self {
        Ledger {
            slots: (0..n).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// How many buffers the ledger covers.
    pub(crate) fn len(&self) -> u32 {
        self.slots.len() as u32
    }

    /// Records buffer `idx` as lent to role slot `slot` (`0 → slot`); on
    /// failure returns the holder found (a bug of the caller: the exporter
    /// only lends what it holds).
    pub(crate) fn lend(&self, idx: u32, slot: u32) -> Result<(), u32> {
        debug_assert!(slot != 0);
        // AcqRel: Release pairs with the Acquire of the `take_back` CAS that
        // later ends this loan (possibly on another exporter thread), so the
        // exporter's last writes before lending are ordered before the
        // buffer is back in a free list; Acquire pairs with the Release of
        // the previous `take_back`.
        self.slots[idx as usize]
            .compare_exchange(0, slot, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| ())
    }

    /// Takes buffer `idx` back from role slot `slot` (`slot → 0`).
    pub(crate) fn take_back(&self, idx: u32, slot: u32) -> Result<(), TakeBack> {
        debug_assert!(slot != 0);
        // AcqRel: Acquire pairs with the Release of the `lend` CAS that made
        // the loan; Release pairs with the Acquire of the next `lend`.
        match self.slots[idx as usize].compare_exchange(
            slot,
            0,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => Ok(()),
            Err(0) => Err(TakeBack::NotLent),
            Err(other) => Err(TakeBack::OtherRole(other)),
        }
    }

    /// Who holds buffer `idx` (0 = the exporter).
    pub(crate) fn holder(&self, idx: u32) -> u32 {
        // Acquire: pairs with the Release of `lend` / `take_back`; a
        // snapshot for counts and audits only.
        self.slots[idx as usize].load(Ordering::Acquire)
    }

    /// Takes back every buffer lent to `slot` that is not in `keep`,
    /// calling `f` with each index taken back (each exactly once: the CAS
    /// decides). Returns how many.
    pub(crate) fn reclaim(&self, slot: u32, keep: &IndexSet, mut f: impl FnMut(u32)) -> usize {
        let mut n = 0;
        for idx in 0..self.len() {
            if !keep.contains(idx) && self.holder(idx) == slot && self.take_back(idx, slot).is_ok()
            {
                f(idx);
                n += 1;
            }
        }
        n
    }

    /// Buffers per holder: `(slot, count)` for every slot holding any,
    /// slot 0 (the exporter) included, ascending.
    pub(crate) fn census(&self) -> Vec<(u32, usize)> {
        let mut out: Vec<(u32, usize)> = Vec::new();
        for idx in 0..self.len() {
            let h = self.holder(idx);
            match out.binary_search_by_key(&h, |&(s, _)| s) {
                Ok(i) => out[i].1 += 1,
                Err(i) => out.insert(i, (h, 1)),
            }
        }
        out
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn lend_take_back_and_rejects() {
        let l = Ledger::new(4);
        l.lend(1, 3).unwrap();
        assert_eq!(l.lend(1, 2), Err(3), "lent twice");
        assert_eq!(l.take_back(1, 2), Err(TakeBack::OtherRole(3)));
        assert_eq!(l.take_back(0, 3), Err(TakeBack::NotLent));
        l.take_back(1, 3).unwrap();
        assert_eq!(l.take_back(1, 3), Err(TakeBack::NotLent), "returned twice");
        assert_eq!(l.census(), vec![(0, 4)]);
    }

    #[test]
    fn reclaim_skips_kept_and_other_roles_exactly_once() {
        let l = Ledger::new(200);
        for i in 0..200 {
            l.lend(i, 1 + i % 2).unwrap();
        }
        let mut keep = IndexSet::new(200);
        assert!(keep.insert(0) && keep.insert(130) && !keep.insert(0));
        assert_eq!(keep.len(), 2);
        let mut got = Vec::new();
        assert_eq!(l.reclaim(1, &keep, |i| got.push(i)), 98);
        assert!(got.iter().all(|i| i % 2 == 0 && *i != 0 && *i != 130));
        assert_eq!(l.reclaim(1, &keep, |_| panic!("twice")), 0);
        assert_eq!(l.census(), vec![(0, 98), (1, 2), (2, 100)]);
    }

    #[test]
    fn concurrent_take_back_wins_once() {
        let l = std::sync::Arc::new(Ledger::new(1000));
        for i in 0..1000 {
            l.lend(i, 1).unwrap();
        }
        let wins: usize = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let l = &l;
                    s.spawn(move || (0..1000).filter(|&i| l.take_back(i, 1).is_ok()).count())
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(wins, 1000);
    }
}
