//! Where pages come from, and the only place pages are mapped and unmapped:
//! creating a list's backing (memfd, hugetlbfs file, anonymous hugetlb,
//! heap block), mapping a run of page slots (and learning its IOVAs), and
//! unmapping one (punching the hole that gives the memory back).
//!
//! Every page run that appears goes through [`Inner::map_pages`], every one
//! that goes through [`Inner::unmap_pages`]; external memory appears and
//! goes in `external.rs` (it is never mapped by the provider).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use super::builder::size_index;
use super::page_list::{ListKind, PageList, PageState};
use super::{Inner, PageSource, State};
use crate::error::{human, OsError};
use crate::iova::phys_of_small_pages;
use crate::sys::{self, BackingError};
use crate::table::{Segment, MAX_SEGMENTS};
use crate::{asan, AllocError, Iova, IovaMode, Node, PageSize};

/// What is behind a list's VA range.
pub(super) enum Backing {
    /// A memfd or hugetlbfs file; file offset = VA offset in the list.
    Fd(OwnedFd),
    /// Anonymous `MAP_HUGETLB` mappings.
    AnonHuge,
    /// One heap block, owned by the list (the `Heap` page source).
    Heap {
        ptr: usize,
        layout: std::alloc::Layout,
    },
    /// Memory the provider did not allocate.
    External,
}

/// Why a list could not be had.
pub(super) enum ListFail {
    /// No pages of this size: the reason.
    NoSpace(String),
    Hard(AllocError),
}

impl Inner {
    /// The list of own pages of size `ps` bound to `node`, created on first use.
    pub(super) fn list_for(
        &self,
        st: &mut State,
        ps: PageSize,
        node: Option<Node>,
    ) -> Result<usize, ListFail> {
        // Heap memory has no placement: one list whatever the node.
        let node = if let PageSource::Heap(_) = self.cfg.source {
            None
        } else {
            node
        };
        if let Some(i) = st
            .lists
            .iter()
            .position(|l| !l.removed && l.kind == ListKind::Own(ps, node))
        {
            return Ok(i);
        }
        self.create_own_list(st, ps, node)
    }

    /// Reserves the VA and creates the backing of a new list of `ps` pages.
    fn create_own_list(
        &self,
        st: &mut State,
        ps: PageSize,
        node: Option<Node>,
    ) -> Result<usize, ListFail> {
        let shift = ps.shift();
        let (reserve, backing, base) = match &self.cfg.source {
            PageSource::Heap(bytes) => {
                let len = bytes.div_ceil(4096) * 4096;
                let layout = std::alloc::Layout::from_size_align(len, 4096)
                    .map_err(|_| ListFail::Hard(AllocError::ZeroLength))?;
                // SAFETY: `layout` has non-zero size (checked in `build`).
                let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
                if ptr.is_null() {
                    return Err(ListFail::NoSpace(format!(
                        "heap allocation of {} failed",
                        human(len)
                    )));
                }
                (
                    len,
                    Backing::Heap {
                        ptr: ptr as usize,
                        layout,
                    },
                    ptr as usize,
                )
            }
            src => {
                let reserve = self.cfg.va_reserve[size_index(ps)].div_ceil(ps.bytes()) * ps.bytes();
                let backing = match src {
                    PageSource::AnonHugetlb if ps.is_huge() => Backing::AnonHuge,
                    PageSource::Hugetlbfs(dir) if ps.is_huge() => Backing::Fd(
                        sys::create_backing(Some(dir), true, shift, reserve, &ps.to_string())
                            .map_err(|e| ListFail::NoSpace(format!("{ps} hugetlbfs file: {e}")))?,
                    ),
                    _ => Backing::Fd(
                        sys::create_backing(None, ps.is_huge(), shift, reserve, &format!("{ps}"))
                            .map_err(|e| ListFail::NoSpace(format!("{ps} memfd: {e}")))?,
                    ),
                };
                let base =
                    sys::reserve_va(reserve, ps.bytes()).map_err(|e| ListFail::Hard(e.into()))?;
                (reserve, backing, base)
            }
        };
        // What the page records say: the bound node; for the default
        // policy node 0 on a one-node machine, unknown otherwise.
        let rec_node = match node {
            Some(n) => Some(n),
            None if sys::node_exists(1) => None,
            None => Some(Node::new(0)),
        };
        let seg = Arc::new(Segment::new(
            base,
            reserve,
            shift,
            rec_node,
            false,
            st.lists.len(),
        ));
        let Some(slot) = self.table.publish(&seg) else {
            release_backing(&backing, base, reserve);
            return Err(ListFail::Hard(AllocError::TooManyLists {
                max: MAX_SEGMENTS,
            }));
        };
        st.lists.push(PageList::new(
            ListKind::Own(ps, node),
            seg,
            slot,
            backing,
            PageState::Unmapped,
            0,
        ));
        Ok(st.lists.len() - 1)
    }

    /// Maps pages `[first, first + count)` of list `list` (all `Unmapped`), records their
    /// IOVAs and marks them `Mapped`. Hugepages are faulted in (allocated and
    /// zeroed by the kernel) from up to `threads` threads, each page by one.
    pub(super) fn map_pages(
        &self,
        st: &mut State,
        list: usize,
        first: usize,
        count: usize,
        threads: usize,
    ) -> Result<(), BackingError> {
        let l = &mut st.lists[list];
        let shift = l.seg.shift;
        let addr = l.seg.base + (first << shift);
        let len = count << shift;
        let off = first << shift;
        if !l.seg.external {
            // Pages freed earlier stay poisoned (`unmap_pages`); the heap
            // backing is zeroed below.
            // SAFETY: the range is inside this list's reservation.
            unsafe { asan::unpoison(addr as *const u8, len) };
        }
        // Pages of a node's list are allocated under a policy bound to it.
        let bind_node = match l.kind {
            ListKind::Own(_, Some(node)) if !matches!(l.backing, Backing::Heap { .. }) => {
                Some(node)
            }
            _ => None,
        };
        let _bind = bind_node.map(bind).transpose()?;
        // Hugepages are faulted in page by page on request, by `threads`
        // threads, when the kernel can populate on request (else by
        // fallocate and MAP_POPULATE, below).
        let on_request = shift > 12
            && matches!(l.backing, Backing::Fd(_) | Backing::AnonHuge)
            && sys::populate_write_supported();
        match &l.backing {
            Backing::Fd(fd) if on_request => {
                // No fallocate: the shared mapping reserves the pages (no
                // hugepage left is NoSpace here), the threads fault them in.
                // SAFETY: [addr, addr+len) is inside this list's reservation and
                // Unmapped (nothing references it).
                unsafe { sys::map_file_fixed_unpopulated(addr, len, fd, off) }.inspect_err(
                    |_| {
                        let _ = sys::punch_hole(fd, off, len);
                    },
                )?;
                if let Err(e) = fault_in(addr, len, shift, threads, bind_node) {
                    // SAFETY: just mapped by us; nothing references it yet.
                    let _ = unsafe { sys::unmap_to_reserved(addr, len) };
                    let _ = sys::punch_hole(fd, off, len);
                    return Err(e);
                }
            }
            Backing::AnonHuge if on_request => {
                // SAFETY: as above.
                unsafe { sys::map_anon_huge_fixed(addr, len, shift, false) }?;
                if let Err(e) = fault_in(addr, len, shift, threads, bind_node) {
                    // SAFETY: just mapped by us; nothing references it yet.
                    let _ = unsafe { sys::unmap_to_reserved(addr, len) };
                    return Err(e);
                }
            }
            Backing::Fd(fd) => {
                sys::fallocate(fd, off, len).inspect_err(|_| {
                    let _ = sys::punch_hole(fd, off, len);
                })?;
                // SAFETY: [addr, addr+len) is inside this list's reservation and
                // Unmapped (nothing references it).
                if let Err(e) = unsafe { sys::map_file_fixed(addr, len, fd, off) } {
                    let _ = sys::punch_hole(fd, off, len);
                    return Err(BackingError::Other(e));
                }
                if shift == 12 && !sys::mlock(addr, len) {
                    l.lock_failed = true;
                }
            }
            Backing::AnonHuge => {
                // SAFETY: as above.
                unsafe { sys::map_anon_huge_fixed(addr, len, shift, true) }?;
            }
            Backing::Heap { .. } => {
                // SAFETY: the range is inside the heap block this list owns and
                // Unmapped, so no chunk references it.
                unsafe { std::ptr::write_bytes(addr as *mut u8, 0, len) };
            }
            Backing::External => {}
        }
        self.record_iovas(l, first, count);
        for slot in &mut l.state[first..first + count] {
            *slot = PageState::Mapped;
        }
        l.mapped += count;
        l.hwm = l.hwm.max(first + count);
        if !l.seg.external {
            st.mapped += len;
        }
        // Devices get the pages before anything can use them.
        if let Err(e) = self.dma_map_pages(st, list, first, count) {
            self.unmap_pages(st, list, first, count);
            return Err(BackingError::Dma(e));
        }
        Ok(())
    }

    /// Learns the IOVAs of the freshly mapped pages `[first, first + count)` of `l`:
    /// the VA in VA mode (and for heap memory), the page map's frame in PA mode.
    fn record_iovas(&self, l: &PageList, first: usize, count: usize) {
        let seg = &l.seg;
        let shift = seg.shift;
        let pa = self.iova_mode == IovaMode::Pa && !matches!(l.backing, Backing::Heap { .. });
        if !pa {
            for i in first..first + count {
                seg.set_page_iova(i, Some(Iova((seg.base + (i << shift)) as u64)));
            }
        } else if shift == 12 {
            let mut buf = vec![None; count];
            if phys_of_small_pages(seg.base + (first << shift), &mut buf).is_err() {
                buf.fill(None);
            }
            for (k, iova) in buf.into_iter().enumerate() {
                seg.set_page_iova(first + k, iova);
            }
        } else {
            for i in first..first + count {
                let va = seg.base + (i << shift);
                let iova = crate::virt2phys(va).ok().map(Iova);
                seg.set_page_iova(i, iova);
            }
        }
    }

    /// Unmaps pages `[first, first + count)` of list `list` (no events; callers fire them).
    pub(super) fn unmap_pages(&self, st: &mut State, list: usize, first: usize, count: usize) {
        let shift = st.lists[list].seg.shift;
        let addr = st.lists[list].seg.base + (first << shift);
        let len = count << shift;
        // Devices let go first (the pages have no user left).
        self.dma_unmap(st, addr, len);
        let l = &mut st.lists[list];
        for i in first..first + count {
            l.seg.set_page_iova(i, None);
            l.state[i] = PageState::Unmapped;
        }
        if !l.seg.external {
            // The VA stays reserved (a heap backing stays accessible):
            // poisoned until `map_pages` maps it again.
            // SAFETY: the range is in this list's reservation, no chunk's.
            unsafe { asan::poison(addr as *const u8, len) };
        }
        match &l.backing {
            Backing::Fd(fd) => {
                // SAFETY: the pages are no longer handed out (their chunk is gone).
                let _ = unsafe { sys::unmap_to_reserved(addr, len) };
                let _ = sys::punch_hole(fd, first << shift, len);
            }
            Backing::AnonHuge => {
                // SAFETY: as above.
                let _ = unsafe { sys::unmap_to_reserved(addr, len) };
            }
            Backing::Heap { .. } | Backing::External => {}
        }
        l.mapped -= count;
        if !l.seg.external {
            st.mapped -= len;
        }
    }
}

/// Binds the calling thread's memory policy to `node` (until the guard
/// drops).
fn bind(node: Node) -> Result<sys::BindNode, BackingError> {
    sys::BindNode::new(node).map_err(|e| match e {
        // Past the policy mask (nodes >= 1024): no way to bind.
        sys::BindError::TooHigh => BackingError::Other(OsError {
            op: "set_mempolicy",
            source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
        }),
        sys::BindError::Os(e) => BackingError::Other(e),
    })
}

/// Faults the mapped, not yet populated pages `[addr, addr + len)` (pages
/// of `1 << shift` bytes) in from up to `threads` threads: the pages are cut
/// into one run of whole pages per thread, so each page is faulted, and
/// zeroed by the kernel, by one thread only. The calling thread takes the
/// first run (its memory policy is already bound to `node` when there is
/// one); the others bind theirs to `node` too. A thread the system cannot
/// start leaves its run to the calling thread. The first failure wins:
/// no page to be had is `NoSpace`.
fn fault_in(
    addr: usize,
    len: usize,
    shift: u32,
    threads: usize,
    node: Option<Node>,
) -> Result<(), BackingError> {
    let pages = len >> shift;
    let per = pages.div_ceil(threads.clamp(1, pages.max(1)));
    let runs: Vec<(usize, usize)> = (0..pages)
        .step_by(per)
        .map(|p| (addr + (p << shift), (per.min(pages - p)) << shift))
        .collect();
    let run = |(a, l): (usize, usize)| -> Result<(), BackingError> {
        sys::populate_write_pages(a, l, 1 << shift).map_err(|e| match e.raw_os_error() {
            Some(libc::ENOMEM | libc::EFAULT | libc::ENOSPC) => BackingError::NoSpace,
            _ => BackingError::Other(OsError {
                op: "madvise (MADV_POPULATE_WRITE)",
                source: e,
            }),
        })
    };
    if runs.len() <= 1 {
        return runs.into_iter().try_for_each(run);
    }
    // Threads that have started (std, even under loom: plain thread
    // bookkeeping outside any model).
    let started = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        let mut results = Vec::with_capacity(runs.len());
        let mut handles = Vec::with_capacity(runs.len());
        for &r in runs.iter().skip(1) {
            let started = &started;
            let spawned = std::thread::Builder::new()
                .name("pktmem-fault".into())
                .spawn_scoped(s, move || {
                    // Release: pairs with the Acquire load below; nothing
                    // is published, it only says this thread is running.
                    started.fetch_add(1, std::sync::atomic::Ordering::Release);
                    let _bind = node.map(bind).transpose()?;
                    run(r)
                });
            match spawned {
                Ok(h) => handles.push(h),
                // No thread: this one does the run.
                Err(_) => results.push(run(r)),
            }
        }
        // Faulting holds the address-space lock shared for the whole run,
        // and a thread starting up maps its signal stack (the lock taken
        // exclusively, which also holds back every later shared taker):
        // start faulting once every helper is running, or the helpers
        // would wait for this thread's whole run before starting theirs.
        // Acquire: pairs with the helpers' Release increments.
        while started.load(std::sync::atomic::Ordering::Acquire) < handles.len() {
            std::thread::yield_now();
        }
        if let Some(&r) = runs.first() {
            results.push(run(r));
        }
        for h in handles {
            // A faulting thread does not panic; if it did, say so as an
            // error rather than unwinding through the provider lock.
            results.push(h.join().unwrap_or_else(|_| {
                Err(BackingError::Other(OsError {
                    op: "fault pages in (thread panicked)",
                    source: std::io::Error::other("faulting thread panicked"),
                }))
            }));
        }
        results.into_iter().collect::<Result<(), BackingError>>()
    })
}

/// Gives a list's backing and VA reservation back (the list is gone).
pub(super) fn release_backing(b: &Backing, base: usize, len: usize) {
    match b {
        Backing::Heap { ptr, layout } => {
            // SAFETY: `ptr` was allocated with `layout` in `create_own_list`
            // and the list (and every chunk of it) is gone.
            unsafe { std::alloc::dealloc(*ptr as *mut u8, *layout) };
        }
        Backing::External => {}
        Backing::Fd(_) | Backing::AnonHuge => {
            // SAFETY: the reservation is this list's and no chunk of it survives.
            unsafe { sys::release_va(base, len) };
        }
    }
}

/// Why `n` pages of `ps` bytes could not be had, with `mapped` pages of
/// the list mapped already.
pub(super) fn no_space_reason(ps: usize, n: usize, mapped: usize) -> String {
    if ps == 4096 {
        return format!("no memory for {n} 4 KiB pages");
    }
    let sys_total = crate::info::inventory()
        .iter()
        .find(|h| h.page_size == ps)
        .map_or(0, |h| h.total);
    if sys_total == 0 {
        format!("no {} hugepages reserved", human(ps))
    } else {
        format!(
            "ran out of {} hugepages after {mapped} page(s) ({sys_total} reserved system-wide)",
            human(ps)
        )
    }
}

/// Whether the kernel reports at least `pages` free hugepages of `ps` bytes
/// (checked before retrying a list that ran short).
pub(super) fn hugepages_left(ps: usize, pages: usize) -> bool {
    let avail = crate::info::inventory()
        .iter()
        .find(|h| h.page_size == ps)
        .map_or(0, |h| h.free.saturating_sub(h.reserved));
    avail as usize >= pages
}
