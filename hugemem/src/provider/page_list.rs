//! One list of page slots: a VA range (a reservation, or an external
//! range) cut into pages of one size, the state of each page, and the
//! search for a free run.

use std::sync::Arc;

use super::backing::Backing;
use crate::table::Segment;
use crate::{Node, PageSize};

/// What a page slot of a list holds.
///
/// ```text
///  Unmapped ──map──► Mapped ──hand out──► InUse
///     ▲                ▲ ▲                  │
///     │                │ └──── freed, kept ─┤
///     └──── unmapped ── Freeing ◄── freed ──┘
/// ```
///
/// `Freeing` exists so that Free events fire with no lock held: the page is
/// still mapped (the callback may read it) but no allocation may take it.
/// External memory starts `Mapped` and never becomes `Unmapped` (its list
/// is removed whole, through `Freeing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum PageState {
    /// VA reserved, no memory behind it.
    Unmapped,
    /// Mapped and not handed out: the kept minimum, or external memory.
    Mapped,
    /// Handed out in a chunk or zone.
    InUse,
    /// Mapped, being given back: its Free event is firing (not reusable).
    Freeing,
}

impl PageState {
    /// Whether an allocation may take the slot (mapping it first if needed).
    #[inline]
    pub(super) fn is_available(self) -> bool {
        matches!(self, PageState::Unmapped | PageState::Mapped)
    }
}

/// Which pages a list holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum ListKind {
    /// Own pages of this size, bound to this node (`None`: the default policy).
    Own(PageSize, Option<Node>),
    /// Memory registered from outside, in this heap (by id) or none.
    External { heap: Option<u64> },
}

// Four independent flags of one list (lock failures, running short,
// removed, unregistering): no state machine joins them.
#[allow(clippy::struct_excessive_bools)]
pub(super) struct PageList {
    pub(super) kind: ListKind,
    pub(super) seg: Arc<Segment>,
    /// The list's slot in the provider's lookup table.
    pub(super) slot: usize,
    pub(super) backing: Backing,
    /// One entry per page of the segment.
    pub(super) state: Vec<PageState>,
    /// Pages at and past `hwm` were never touched (all `Unmapped`).
    pub(super) hwm: usize,
    /// Pages `InUse`.
    pub(super) used: usize,
    /// Pages mapped (`Mapped`, `InUse` or `Freeing`).
    pub(super) mapped: usize,
    /// Some small pages could not be locked.
    pub(super) lock_failed: bool,
    /// The last attempt to get hugepages for this list failed: check the
    /// kernel's free count before trying again (a failing hugetlb
    /// `fallocate` costs milliseconds).
    pub(super) short: bool,
    /// An external list that was unregistered (its slot in `lists` stays,
    /// so list indices do not move).
    pub(super) removed: bool,
    /// Bumped for external lists so stale ids do not match a reused index.
    pub(super) generation: u64,
    /// External lists: the leases held on the range (number, user label).
    pub(super) leases: Vec<(u64, String)>,
    /// External lists: the registration was dropped while in use; the list
    /// is removed when its last user (lease or chunk) goes.
    pub(super) unregister_pending: bool,
    /// External lists of a heap: the heap's label, for humans.
    pub(super) heap_label: Option<std::sync::Arc<str>>,
    /// External lists registered with an owner: kept until the list is removed.
    pub(super) owner: Option<super::external::Owner>,
}

impl PageList {
    /// A list over `seg` whose pages all start in `state`.
    pub(super) fn new(
        kind: ListKind,
        seg: Arc<Segment>,
        slot: usize,
        backing: Backing,
        state: PageState,
        generation: u64,
    ) -> PageList {
        let pages = seg.pages();
        let mapped = if state == PageState::Unmapped {
            0
        } else {
            pages
        };
        PageList {
            kind,
            state: vec![state; pages],
            seg,
            slot,
            backing,
            hwm: mapped,
            used: 0,
            mapped,
            lock_failed: false,
            short: false,
            removed: false,
            generation,
            leases: Vec::new(),
            unregister_pending: false,
            heap_label: None,
            owner: None,
        }
    }

    /// The first run of `pages` available slots whose first page's VA is a
    /// multiple of `step` pages (first fit).
    pub(super) fn find_free_run(&self, pages: usize, step: usize) -> Option<usize> {
        find_free_run(
            &self.state,
            self.hwm,
            self.seg.base >> self.seg.shift,
            pages,
            step,
        )
    }

    /// The maximal sub-runs `(first, count)` of `[first, first + pages)` that
    /// are `Unmapped` and must be mapped before the run is handed out.
    pub(super) fn unmapped_runs(&self, first: usize, pages: usize) -> Vec<(usize, usize)> {
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for i in first..first + pages {
            if self.state[i] == PageState::Unmapped {
                match runs.last_mut() {
                    Some((s, c)) if *s + *c == i => *c += 1,
                    _ => runs.push((i, 1)),
                }
            }
        }
        runs
    }

    /// Hands pages `[first, first + pages)` out (all mapped already).
    pub(super) fn mark_in_use(&mut self, first: usize, pages: usize) {
        for s in &mut self.state[first..first + pages] {
            debug_assert_eq!(*s, PageState::Mapped);
            *s = PageState::InUse;
        }
        self.used += pages;
        self.hwm = self.hwm.max(first + pages);
    }

    /// Takes pages `[first, first + pages)` back (they stay mapped).
    pub(super) fn mark_returned(&mut self, first: usize, pages: usize) {
        for s in &mut self.state[first..first + pages] {
            debug_assert_eq!(*s, PageState::InUse);
            *s = PageState::Mapped;
        }
        self.used -= pages;
    }
}

/// First fit over `state` (slots past `hwm` are all `Unmapped`): the first
/// index `i` such that `state[i..i + pages]` are all available and
/// `(base_page + i) % step == 0`, where `base_page` is the page number of
/// slot 0 (so the run's VA is aligned to `step` pages).
pub(super) fn find_free_run(
    state: &[PageState],
    hwm: usize,
    base_page: usize,
    pages: usize,
    step: usize,
) -> Option<usize> {
    let total = state.len();
    // The first aligned index, and rounding any index up to an aligned one.
    let first_aligned = (step - base_page % step) % step;
    let align_up = |x: usize| -> Option<usize> {
        let steps = x.checked_sub(first_aligned).map_or(0, |d| d.div_ceil(step));
        steps.checked_mul(step)?.checked_add(first_aligned)
    };
    let mut start = align_up(0)?;
    while start.checked_add(pages)? <= total {
        if start >= hwm {
            return Some(start);
        }
        // The last slot in the window that is taken: the next candidate
        // starts after it.
        match state[start..start + pages]
            .iter()
            .rposition(|s| !s.is_available())
        {
            None => return Some(start),
            Some(taken) => start = align_up(start + taken + 1)?,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::PageState::{Freeing, InUse, Mapped, Unmapped};
    use super::*;

    #[test]
    fn first_fit_skips_taken_slots() {
        let st = [InUse, Mapped, Unmapped, InUse, Unmapped, Unmapped, Unmapped];
        assert_eq!(find_free_run(&st, 7, 0, 1, 1), Some(1));
        assert_eq!(find_free_run(&st, 7, 0, 2, 1), Some(1));
        assert_eq!(find_free_run(&st, 7, 0, 3, 1), Some(4));
        assert_eq!(find_free_run(&st, 7, 0, 4, 1), None);
    }

    #[test]
    fn freeing_pages_are_not_available() {
        let st = [Freeing, Freeing, Mapped];
        assert_eq!(find_free_run(&st, 3, 0, 1, 1), Some(2));
        assert_eq!(find_free_run(&st, 3, 0, 2, 1), None);
        assert!(Unmapped.is_available() && Mapped.is_available());
        assert!(!InUse.is_available() && !Freeing.is_available());
    }

    #[test]
    fn alignment_counts_from_the_base_page() {
        // Slot 0 is page 3: aligned (step 4) slots are 1, 5, 9, ...
        let st = [Unmapped; 12];
        assert_eq!(find_free_run(&st, 0, 3, 2, 4), Some(1));
        let mut st2 = st;
        st2[2] = InUse;
        assert_eq!(find_free_run(&st2, 12, 3, 2, 4), Some(5));
        // Not enough room after the last aligned slot.
        assert_eq!(find_free_run(&st2, 12, 3, 8, 4), None);
        // Past the high-water mark everything is free.
        assert_eq!(find_free_run(&st, 0, 0, 12, 1), Some(0));
        assert_eq!(find_free_run(&st, 0, 0, 13, 1), None);
    }

    fn list(state: PageState, pages: usize) -> PageList {
        let seg = Arc::new(Segment::new(0x40_0000, pages * 4096, 12, None, true, 0));
        PageList::new(
            ListKind::External { heap: None },
            seg,
            0,
            Backing::External,
            state,
            1,
        )
    }

    #[test]
    fn runs_to_map_and_state_transitions() {
        let mut l = list(Unmapped, 8);
        assert_eq!((l.mapped, l.hwm, l.used), (0, 0, 0));
        l.state[2] = Mapped;
        l.state[5] = Mapped;
        assert_eq!(l.unmapped_runs(0, 8), vec![(0, 2), (3, 2), (6, 2)]);
        assert_eq!(l.unmapped_runs(2, 1), vec![]);
        assert_eq!(l.unmapped_runs(1, 3), vec![(1, 1), (3, 1)]);
        // Hand out and take back what is mapped.
        l.state[3] = Mapped;
        l.state[4] = Mapped;
        l.mark_in_use(2, 4);
        assert_eq!(&l.state[2..6], &[InUse; 4]);
        assert_eq!((l.used, l.hwm), (4, 6));
        assert_eq!(l.find_free_run(4, 1), None, "slots 0-1 and 6-7 only");
        assert_eq!(l.find_free_run(2, 1), Some(0));
        l.mark_returned(2, 4);
        assert_eq!(&l.state[2..6], &[Mapped; 4]);
        assert_eq!(l.used, 0);
        assert_eq!(l.find_free_run(8, 1), Some(0));
    }

    #[test]
    fn external_lists_start_mapped() {
        let l = list(Mapped, 3);
        assert_eq!((l.mapped, l.hwm), (3, 3));
        assert!(l.unmapped_runs(0, 3).is_empty());
        assert!(l.users().is_empty());
    }

    #[test]
    fn huge_requests_do_not_overflow() {
        let st = [Unmapped; 4];
        assert_eq!(find_free_run(&st, 0, 0, usize::MAX, 1), None);
        assert_eq!(find_free_run(&st, 0, 1, 1, usize::MAX), None);
    }
}
