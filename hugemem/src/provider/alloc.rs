//! Allocation and free: choosing a list (preferred page sizes, then the
//! small-page fallback), finding a free run in it, growing it within the
//! limits, and giving pages back (down to the kept minimum).

use super::backing::{hugepages_left, no_space_reason, ListFail};
use super::events::{EventKind, GrowthQuery, MemEvent};
use super::page_list::PageState;
use super::{lock, Inner, PageSource, State};
use crate::chunk::{segments_of, IovaRun, RawChunk};
use crate::sys::{self, BackingError};
use crate::{asan, AllocError, AllocRequest, PageInfo, PageSize};

impl Inner {
    pub(crate) fn alloc_raw(&self, req: &AllocRequest) -> Result<RawChunk, AllocError> {
        self.check_usable()?;
        if req.len == 0 {
            return Err(AllocError::ZeroLength);
        }
        if !req.align.is_power_of_two() {
            return Err(AllocError::BadAlignment { align: req.align });
        }
        if let Some(node) = req.node {
            if !sys::node_exists(node.id()) {
                return Err(AllocError::UnknownNode { node });
            }
        }
        let mut st = lock(&self.state);
        let r = self.alloc_locked(&mut st, req);
        if let Ok(raw) = &r {
            if let Some((va, len)) = page_span(&st, raw) {
                // SAFETY: the chunk's pages are mapped in this list's
                // reservation and now the caller's alone.
                unsafe { asan::unpoison(va as *const u8, len) };
            }
        }
        if let Some(payload) = self.settle(st) {
            if let Ok(raw) = r {
                self.free_raw(raw);
            }
            std::panic::resume_unwind(payload);
        }
        r
    }

    /// The page sizes to try for `req`, in order.
    fn candidates(&self, req: &AllocRequest) -> Vec<PageSize> {
        let mut c = Vec::new();
        if let PageSource::Heap(_) = self.cfg.source {
            c.push(PageSize::Small4K);
            return c;
        }
        if let Some(p) = req.page_size {
            c.push(p);
            if req.require_page_size {
                return c;
            }
        }
        for p in &self.cfg.preferred {
            if !c.contains(p) {
                c.push(*p);
            }
        }
        if self.cfg.fallback && !c.contains(&PageSize::Small4K) {
            c.push(PageSize::Small4K);
        }
        c
    }

    fn alloc_locked(&self, st: &mut State, req: &AllocRequest) -> Result<RawChunk, AllocError> {
        if let Some(h) = &req.heap {
            return self.alloc_from_heap(st, h, req);
        }
        let cands = self.candidates(req);
        if let (PageSource::Heap(_), Some(p)) = (&self.cfg.source, req.page_size) {
            if req.require_page_size && p != PageSize::Small4K {
                return Err(AllocError::NoPages {
                    page_size: p.bytes(),
                    pages: req.len.div_ceil(p.bytes()),
                    reason: "a heap-backed provider has only 4 KiB pages".into(),
                });
            }
        }
        let mut why: Vec<String> = Vec::new();
        let mut soft: Option<AllocError> = None;
        let mut last_ps = PageSize::Small4K;
        for ps in cands {
            last_ps = ps;
            let li = match self.list_for(st, ps, req.node) {
                Ok(li) => li,
                Err(ListFail::NoSpace(r)) => {
                    why.push(r);
                    continue;
                }
                Err(ListFail::Hard(e)) => return Err(e),
            };
            match self.alloc_in_list(st, li, req) {
                Ok(raw) => {
                    if ps == PageSize::Small4K && !why.is_empty() {
                        self.note_fallback(st, &why);
                    }
                    return Ok(raw);
                }
                Err(ListFail::NoSpace(r)) => why.push(r),
                // Limits and VA are per page size: a smaller size may still fit.
                Err(ListFail::Hard(
                    e @ (AllocError::LimitExceeded { .. }
                    | AllocError::RefusedByValidator { .. }
                    | AllocError::VaExhausted { .. }),
                )) => {
                    why.push(e.to_string());
                    soft.get_or_insert(e);
                }
                Err(ListFail::Hard(e)) => return Err(e),
            }
        }
        if let Some(e) = soft {
            return Err(e);
        }
        Err(AllocError::NoPages {
            page_size: last_ps.bytes(),
            pages: req.len.div_ceil(last_ps.bytes()),
            reason: if why.is_empty() {
                "no page size allowed".into()
            } else {
                why.join("; ")
            },
        })
    }

    /// Counts a fallback to small pages; the first one is said once on
    /// stderr (unless quiet) and kept for [`Provider::info`](crate::Provider::info).
    fn note_fallback(&self, st: &mut State, why: &[String]) {
        st.fallback_count += 1;
        if st.fallback.is_none() {
            let note = why.join("; ");
            if !self.cfg.quiet {
                eprintln!("pktmem-hugemem: {note}; falling back to 4 KiB pages (locked)");
            }
            st.fallback = Some(note);
        }
    }

    /// Carves `req` out of list `li`: find a free run, check the growth it
    /// needs against the limits, map what is unmapped, check IOVA
    /// contiguity if asked, hand the pages out and queue their Alloc events.
    pub(super) fn alloc_in_list(
        &self,
        st: &mut State,
        li: usize,
        req: &AllocRequest,
    ) -> Result<RawChunk, ListFail> {
        let list = &st.lists[li];
        let shift = list.seg.shift;
        let page_size = 1usize << shift;
        let pages = req.len.div_ceil(page_size);
        let step = (req.align >> shift).max(1);
        let first =
            list.find_free_run(pages, step)
                .ok_or(ListFail::Hard(AllocError::VaExhausted {
                    page_size,
                    pages,
                    reserved_pages: list.state.len(),
                }))?;
        let to_map = list.unmapped_runs(first, pages);
        let new_pages: usize = to_map.iter().map(|&(_, count)| count).sum();
        if !list.seg.external && new_pages > 0 {
            self.check_growth(st, new_pages << shift, page_size)
                .map_err(ListFail::Hard)?;
        }
        if st.lists[li].short && new_pages > 0 && page_size > 4096 {
            // The last attempt ran out: ask the kernel before paying for a
            // failing `fallocate` again.
            if !hugepages_left(page_size, new_pages) {
                let mapped = st.lists[li].mapped;
                return Err(ListFail::NoSpace(no_space_reason(page_size, pages, mapped)));
            }
        }
        self.map_runs(st, li, &to_map, pages, req.fault_threads)?;
        let contiguous = match check_iova_runs(st, li, first, pages, req) {
            Ok(contiguous) => contiguous,
            Err(e) => {
                for &(start, count) in &to_map {
                    self.unmap_pages(st, li, start, count);
                }
                return Err(ListFail::Hard(e));
            }
        };
        let list = &mut st.lists[li];
        list.mark_in_use(first, pages);
        let (base, external) = (list.seg.base, list.seg.external);
        st.pending_events
            .extend(to_map.iter().map(|&(start, count)| MemEvent {
                kind: EventKind::Alloc,
                va: base + (start << shift),
                len: count << shift,
                external,
            }));
        Ok(RawChunk {
            list: li,
            first,
            pages,
            va: base + (first << shift),
            len: req.len,
            contiguous,
        })
    }

    /// Refuses growth by `new_bytes` past the limit or a validator.
    fn check_growth(
        &self,
        st: &State,
        new_bytes: usize,
        page_size: usize,
    ) -> Result<(), AllocError> {
        let new_total = st.mapped.saturating_add(new_bytes);
        if new_total > self.cfg.limit {
            return Err(AllocError::LimitExceeded {
                requested: new_bytes,
                mapped: st.mapped,
                limit: self.cfg.limit,
            });
        }
        let query = GrowthQuery {
            mapped: st.mapped,
            new_total,
            threshold: 0,
            page_size,
        };
        match self.ask_validators(st, query) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        }
    }

    /// Maps each run of `to_map` in list `li` (faulting hugepages in from
    /// up to `threads` threads); on failure unmaps those already mapped and
    /// says why (`pages`: the request's size, for the reason).
    fn map_runs(
        &self,
        st: &mut State,
        li: usize,
        to_map: &[(usize, usize)],
        pages: usize,
        threads: usize,
    ) -> Result<(), ListFail> {
        for (done, &(start, count)) in to_map.iter().enumerate() {
            if let Err(e) = self.map_pages(st, li, start, count, threads) {
                for &(mapped_start, mapped_count) in &to_map[..done] {
                    self.unmap_pages(st, li, mapped_start, mapped_count);
                }
                return Err(match e {
                    BackingError::NoSpace => {
                        st.lists[li].short = true;
                        let page_size = st.lists[li].seg.page_size();
                        ListFail::NoSpace(no_space_reason(page_size, pages, st.lists[li].mapped))
                    }
                    BackingError::Other(e) => ListFail::Hard(e.into()),
                    BackingError::Dma(e) => ListFail::Hard(AllocError::DmaMap(e)),
                });
            }
        }
        st.lists[li].short = false;
        Ok(())
    }

    pub(crate) fn free_raw(&self, raw: RawChunk) {
        if self.in_validator() {
            // Inside a validator: our lock is held further up this thread's
            // stack. `settle` frees it once the lock is released.
            self.defer(super::Deferred::Free(raw));
            return;
        }
        let mut st = lock(&self.state);
        self.free_locked(&mut st, raw);
        self.settle_or_unwind(st);
    }

    /// Marks the chunk's pages free; queues the Free event and the unmap of
    /// those beyond the kept minimum (done by `settle`).
    pub(super) fn free_locked(&self, st: &mut State, raw: RawChunk) {
        let li = raw.list;
        let external = st.lists[li].seg.external;
        let shift = st.lists[li].seg.shift;
        st.lists[li].mark_returned(raw.first, raw.pages);
        if external {
            // The last chunk of a dropped registration lets it go.
            super::external::finish_if_unused(st, li);
            return;
        }
        // Keep pages while that holds the mapped total (less what is being
        // released already) at or under min_keep.
        let ps = 1usize << shift;
        let staying = st.mapped - st.releasing - (raw.pages << shift);
        let keep_bytes = self.cfg.min_keep.saturating_sub(staying);
        let keep = keep_bytes.div_ceil(ps).min(raw.pages);
        // Kept pages are poisoned until handed out again (`alloc_raw`); the
        // others once their Free event has fired (`unmap_pages`). `Inner`'s
        // drop clears the shadow.
        // SAFETY: the pages are in this list's reservation, their chunk gone.
        unsafe {
            asan::poison(
                (st.lists[li].seg.base + (raw.first << shift)) as *const u8,
                keep << shift,
            );
        };
        let s = raw.first + keep;
        let c = raw.pages - keep;
        if c == 0 {
            return;
        }
        let l = &mut st.lists[li];
        for slot in &mut l.state[s..s + c] {
            *slot = PageState::Freeing;
        }
        let base = l.seg.base;
        st.releasing += c << shift;
        st.pending_events.push(MemEvent {
            kind: EventKind::Free,
            va: base + (s << shift),
            len: c << shift,
            external: false,
        });
        st.pending_unmap.push((li, s, c));
    }
}

/// The pages of `raw` as `(va, len)`, for own (not external) lists: the
/// range the provider poisons while free.
fn page_span(st: &State, raw: &RawChunk) -> Option<(usize, usize)> {
    let seg = &st.lists[raw.list].seg;
    (!seg.external).then(|| (seg.base + (raw.first << seg.shift), raw.pages << seg.shift))
}

/// Whether pages `[first, first + pages)` of list `li` form one IOVA run;
/// the typed error when `req` needs one and they do not.
fn check_iova_runs(
    st: &State,

    li: usize,
    first: usize,
    pages: usize,
    req: &AllocRequest,
) -> Result<bool, AllocError> {
    let seg = &st.lists[li].seg;
    let page_infos = (first..first + pages).map(|i| PageInfo {
        va: seg.base + (i << seg.shift),
        iova: seg.page_iova(i),
        size: seg.page_size(),
        node: seg.node,
        external: seg.external,
        list: li,
        in_use: true,
    });
    let runs = segments_of(page_infos);
    let contiguous = runs.len() == 1 && runs[0].iova.is_some();
    if req.iova_contiguous && !contiguous {
        // Pages without IOVA never join a run, so one run without IOVA
        // is a single page (or less) of such memory: refused as surely
        // as several runs are.
        if let [IovaRun { iova: None, va, .. }] = runs[..] {
            return Err(AllocError::NoIova { len: req.len, va });
        }
        return Err(AllocError::NotIovaContiguous {
            len: req.len,
            segments: runs.len(),
        });
    }
    Ok(contiguous)
}
