//! Introspection: walks over the mapped pages, the list table, the region
//! table another process maps, and what the provider chose (info, dump).

use std::fmt;

use super::backing::Backing;
use super::page_list::PageState;
use super::{lock, PageSource, Provider};
use crate::error::human;
use crate::{Iova, IovaMode, IovaReason, IovaRun, PageInfo, PageSize};

impl Provider {
    /// Calls `f` for every mapped page of every list (external included),
    /// with no lock held.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let _c = p.alloc(3 * 4096).unwrap();
    /// let mut n = 0;
    /// p.walk_pages(|pg| {
    ///     assert!(pg.in_use && !pg.external);
    ///     n += 1;
    /// });
    /// assert_eq!(n, 3);
    /// assert_eq!(p.va_runs().len(), 1);
    /// assert_eq!(p.lists()[0].used_pages, 3);
    /// assert!(p.dump().contains("3 in use"));
    /// ```
    pub fn walk_pages(&self, mut f: impl FnMut(&PageInfo)) {
        // Collected first: `f` runs with no lock held and may use the provider.
        let pages: Vec<PageInfo> = {
            let st = lock(&self.inner.state);
            let mut v = Vec::new();
            for l in st.lists.iter().filter(|l| !l.removed) {
                for i in 0..l.hwm {
                    if l.state[i] != PageState::Unmapped {
                        v.push(PageInfo {
                            va: l.seg.base + (i << l.seg.shift),
                            iova: l.seg.page_iova(i),
                            size: l.seg.page_size(),
                            node: l.seg.node,
                            external: l.seg.external,
                            list: l.seg.list,
                            in_use: l.state[i] == PageState::InUse,
                        });
                    }
                }
            }
            v
        };
        for p in &pages {
            f(p);
        }
    }

    /// Every VA-contiguous run of mapped pages of one page size and kind.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let (a, b) = (p.alloc(4096).unwrap(), p.alloc(8192).unwrap());
    /// let runs = p.va_runs();
    /// assert_eq!(runs.len(), 1); // adjacent pages: one run
    /// assert_eq!((runs[0].va, runs[0].len), (a.as_ptr().as_ptr() as usize, 3 * 4096));
    /// # drop(b);
    /// ```
    pub fn va_runs(&self) -> Vec<VaRun> {
        let mut out: Vec<VaRun> = Vec::new();
        self.walk_pages(|p| {
            if let Some(last) = out.last_mut() {
                if last.va + last.len == p.va
                    && last.page_size == p.size
                    && last.external == p.external
                {
                    last.len += p.size;
                    return;
                }
            }
            out.push(VaRun {
                va: p.va,
                len: p.size,
                page_size: p.size,
                external: p.external,
            });
        });
        out
    }

    /// Every maximal run of mapped pages that is contiguous in both VA and
    /// IOVA (one list, one page size): what a device sees. A page with no
    /// IOVA is a run of its own with `iova: None`.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc(3 * 4096).unwrap();
    /// let runs = p.iova_runs();
    /// assert_eq!(runs.len(), 1); // heap memory: IOVA = VA, one run
    /// assert_eq!((runs[0].va, runs[0].iova, runs[0].len), (c.as_ptr().as_ptr() as usize, c.iova(), 3 * 4096));
    /// let p = Provider::builder().quiet(true).build().unwrap();
    /// let c = p.alloc(5 << 20).unwrap();
    /// let bytes: usize = p.iova_runs().iter().map(|r| r.len).sum();
    /// assert_eq!(bytes, p.mapped_bytes()); // every mapped byte in one run
    /// assert_eq!(p.iova_runs().len() == 1, c.is_iova_contiguous());
    /// ```
    pub fn iova_runs(&self) -> Vec<IovaRun> {
        let mut out: Vec<(IovaRun, usize)> = Vec::new();
        self.walk_pages(|p| {
            if let Some((last, list)) = out.last_mut() {
                let follows = match (last.iova, p.iova) {
                    (Some(a), Some(b)) => a.0.checked_add(last.len as u64) == Some(b.0),
                    _ => false,
                };
                if *list == p.list && last.va + last.len == p.va && follows {
                    last.len += p.size;
                    return;
                }
            }
            out.push((
                IovaRun {
                    va: p.va,
                    iova: p.iova,
                    len: p.size,
                },
                p.list,
            ));
        });
        out.into_iter().map(|(r, _)| r).collect()
    }

    /// Why this provider's IOVAs are physical or virtual addresses: forced
    /// by its builder, heap memory, or what the page map gives this
    /// process ([`probe_iova`](crate::probe_iova), probed again now: the
    /// answer at build time unless the process's privileges changed since).
    ///
    /// ```
    /// use pktmem_hugemem::{IovaMode, IovaReason, Provider};
    /// let p = Provider::builder().quiet(true).build().unwrap();
    /// assert_eq!(p.iova_reason().mode(), p.iova_mode());
    /// println!("IOVA mode {:?}: {}", p.iova_mode(), p.iova_reason());
    /// let heap = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// assert_eq!(heap.iova_reason(), IovaReason::HeapSource);
    /// let forced = Provider::builder().iova_mode(IovaMode::Va).build().unwrap();
    /// assert_eq!(forced.iova_reason(), IovaReason::Forced(IovaMode::Va));
    /// ```
    pub fn iova_reason(&self) -> IovaReason {
        if self.inner.init_error.is_some() {
            return IovaReason::NotBuilt;
        }
        match (self.inner.cfg.iova_mode, &self.inner.cfg.source) {
            (Some(m), _) => IovaReason::Forced(m),
            (None, PageSource::Heap(_)) => IovaReason::HeapSource,
            (None, _) => crate::probe_iova(),
        }
    }

    /// Every list: one entry per page-size list and external range.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let _c = p.alloc(3 * 4096).unwrap();
    /// let l = &p.lists()[0];
    /// assert_eq!((l.page_size, l.mapped_pages, l.used_pages, l.external), (4096, 3, 3, false));
    /// println!("{l}");
    /// ```
    pub fn lists(&self) -> Vec<ListInfo> {
        let st = lock(&self.inner.state);
        st.lists
            .iter()
            .enumerate()
            .filter(|(_, l)| !l.removed)
            .map(|(id, l)| ListInfo {
                id,
                page_size: l.seg.page_size(),
                va: l.seg.base,
                va_len: l.seg.len,
                mapped_pages: l.mapped,
                used_pages: l.used,
                external: l.seg.external,
                heap: l.heap_label.as_deref().map(str::to_string),
                users: if l.seg.external {
                    l.users()
                } else {
                    Vec::new()
                },
                locked: !l.lock_failed,
                shareable: matches!(l.backing, Backing::Fd(_)),
            })
            .collect()
    }

    /// The region table of fd-backed lists: for each VA-contiguous run of
    /// mapped pages, the fd, file offset, VA, length, page size and IOVA of
    /// its first page. Another process can map `fd` at `offset` to `va`.
    /// The fds are the provider's (close-on-exec; clear the flag to pass
    /// them to a child) and stay open while the provider lives.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().quiet(true).build().unwrap();
    /// let c = p.alloc(5000).unwrap();
    /// let r = p.regions();
    /// assert_eq!(r.len(), 1);
    /// assert_eq!(r[0].va, c.as_ptr().as_ptr() as usize);
    /// let list = c.pages().next().unwrap().list;
    /// let base = p.lists().iter().find(|l| l.id == list).unwrap().va;
    /// assert_eq!(r[0].offset, r[0].va - base);
    /// ```
    pub fn regions(&self) -> Vec<Region> {
        use std::os::fd::AsRawFd;
        let st = lock(&self.inner.state);
        let mut out = Vec::new();
        for l in st.lists.iter().filter(|l| !l.removed) {
            let Backing::Fd(fd) = &l.backing else {
                continue;
            };
            let mut i = 0;
            while i < l.hwm {
                if l.state[i] == PageState::Unmapped {
                    i += 1;
                    continue;
                }
                let start = i;
                while i < l.hwm && l.state[i] != PageState::Unmapped {
                    i += 1;
                }
                out.push(Region {
                    fd: fd.as_raw_fd(),
                    offset: start << l.seg.shift,
                    va: l.seg.base + (start << l.seg.shift),
                    len: (i - start) << l.seg.shift,
                    page_size: l.seg.page_size(),
                    iova: l.seg.page_iova(start),
                });
            }
        }
        out
    }

    /// What the provider chose and why: IOVA mode, source, lists, fallback note.
    ///
    /// ```
    /// use pktmem_hugemem::{IovaMode, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).limit(1 << 20).build().unwrap();
    /// let _c = p.alloc(100).unwrap();
    /// let info = p.info();
    /// assert_eq!((info.iova_mode, info.mapped, info.limit), (IovaMode::Va, 4096, Some(1 << 20)));
    /// assert!(info.fallback.is_none());
    /// println!("{info}");
    /// ```
    pub fn info(&self) -> ProviderInfo {
        let st = lock(&self.inner.state);
        ProviderInfo {
            iova_mode: self.inner.iova_mode,
            source: self.inner.cfg.source.clone(),
            preferred: self.inner.cfg.preferred.clone(),
            fallback_allowed: self.inner.cfg.fallback,
            fallback: st.fallback.clone(),
            fallback_count: st.fallback_count,
            mapped: st.mapped,
            min_keep: self.inner.cfg.min_keep,
            limit: (self.inner.cfg.limit != usize::MAX).then_some(self.inner.cfg.limit),
            zones: lock(&self.inner.zones).len(),
            init_error: self.inner.init_error.clone(),
        }
    }

    /// A human-readable dump of the provider, its lists and pages.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let _c = p.alloc(5000).unwrap();
    /// let _z = p.zone_reserve("cfg", &AllocRequest::new(10)).unwrap();
    /// let d = p.dump();
    /// assert!(d.contains("3 mapped, 3 in use") && d.contains("zone 'cfg'"), "{d}");
    /// ```
    pub fn dump(&self) -> String {
        use std::fmt::Write;
        let info = self.info();
        let mut s = format!("{info}\n");
        for l in self.lists() {
            let _ = writeln!(s, "  {l}");
        }
        for r in self.va_runs() {
            let _ = writeln!(
                s,
                "    run {:#x}..{:#x} {} in {} pages{}",
                r.va,
                r.va + r.len,
                human(r.len),
                human(r.page_size),
                if r.external { " (external)" } else { "" }
            );
        }
        self.walk_pages(|p| {
            let _ = writeln!(
                s,
                "      page {:#x} iova {} {}{}",
                p.va,
                p.iova.map_or("none".to_string(), |i| format!("{:#x}", i.0)),
                human(p.size),
                if p.external { " external" } else { "" }
            );
        });
        for z in lock(&self.inner.zones).values() {
            let _ = writeln!(s, "  zone '{}' at {:#x}+{}", z.name, z.va, human(z.len));
        }
        for label in self.event_callbacks() {
            let _ = writeln!(
                s,
                "  callback {}",
                label.map_or("(unlabelled)".to_string(), |l| format!("'{l}'"))
            );
        }
        s
    }
}

/// One row of [`Provider::va_runs`]: VA-contiguous mapped pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VaRun {
    /// First byte.
    pub va: usize,
    /// Length in bytes.
    pub len: usize,
    /// Page size of the run's pages, in bytes.
    pub page_size: usize,
    /// Whether the pages are external memory.
    pub external: bool,
}

/// One row of [`Provider::regions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// The backing fd.
    pub fd: i32,
    /// Offset in the fd.
    pub offset: usize,
    /// Virtual address it is mapped at.
    pub va: usize,
    /// Length in bytes.
    pub len: usize,
    /// Page size in bytes.
    pub page_size: usize,
    /// IOVA of its first page (`None` if the page map gave no frame).
    pub iova: Option<Iova>,
}

/// One row of [`Provider::lists`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListInfo {
    /// The list's index (as in [`PageInfo::list`]).
    pub id: usize,
    /// Page size in bytes.
    pub page_size: usize,
    /// Start of the VA range (reservation, or the external range).
    pub va: usize,
    /// Its length.
    pub va_len: usize,
    /// Pages mapped.
    pub mapped_pages: usize,
    /// Pages handed out.
    pub used_pages: usize,
    /// External memory.
    pub external: bool,
    /// The label of the external heap it belongs to.
    pub heap: Option<String>,
    /// External memory: who uses it (lease labels, pages in chunks).
    pub users: Vec<String>,
    /// Small pages that could be locked (always true for hugepages).
    pub locked: bool,
    /// fd-backed (appears in [`Provider::regions`]).
    pub shareable: bool,
}

impl fmt::Display for ListInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "list {} pages at {:#x}+{}: {} mapped, {} in use{}{}{}",
            human(self.page_size),
            self.va,
            human(self.va_len),
            self.mapped_pages,
            self.used_pages,
            if self.external { ", external" } else { "" },
            match &self.heap {
                Some(h) => format!(", heap '{h}'"),
                None => String::new(),
            },
            if self.locked { "" } else { ", NOT locked" },
        )
    }
}

/// What [`Provider::info`] reports.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProviderInfo {
    /// IOVA mode.
    pub iova_mode: IovaMode,
    /// Page source.
    pub source: PageSource,
    /// Hugepage sizes tried by default.
    pub preferred: Vec<PageSize>,
    /// Whether small-page fallback is allowed.
    pub fallback_allowed: bool,
    /// Why the provider first fell back to small pages, if it did.
    pub fallback: Option<String>,
    /// How many allocations fell back.
    pub fallback_count: usize,
    /// Bytes mapped by the provider's own lists.
    pub mapped: usize,
    /// The kept minimum.
    pub min_keep: usize,
    /// The upper limit on mapped bytes (`None`: no limit).
    pub limit: Option<usize>,
    /// Zones reserved.
    pub zones: usize,
    /// For a global provider that could not be built: why.
    pub init_error: Option<String>,
}

impl fmt::Display for ProviderInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "provider: iova {:?}, source {:?}, {} mapped, min_keep {}, limit {}, {} zone(s)",
            self.iova_mode,
            self.source,
            human(self.mapped),
            human(self.min_keep),
            self.limit.map_or("none".to_string(), human),
            self.zones
        )?;
        if let Some(fb) = &self.fallback {
            write!(
                f,
                "; fell back to 4 KiB pages {} time(s): {fb}",
                self.fallback_count
            )?;
        }
        if let Some(e) = &self.init_error {
            write!(f, "; init failed: {e}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{AllocRequest, IovaRun, PageSize, Provider};

    /// The provider's IOVA runs of a provider holding one chunk are that
    /// chunk's segments (computed separately, from its own page records),
    /// on hugepages when reserved (physical addresses as root).
    #[test]
    fn iova_runs_of_one_chunk_are_its_segments() {
        let p = Provider::builder().quiet(true).build().unwrap();
        let c = p
            .alloc_with(&AllocRequest::new(9 << 20).page_size(PageSize::Huge2M))
            .unwrap();
        let segs: Vec<IovaRun> = c.segments().collect();
        assert_eq!(p.iova_runs(), segs, "page size {}", c.page_size());
        for r in &segs {
            assert_eq!(p.virt2iova(r.va as *const u8), r.iova);
            let last = r.va + r.len - 1;
            assert_eq!(
                p.virt2iova(last as *const u8),
                r.iova.map(|i| i.offset(r.len as u64 - 1))
            );
        }
        drop(c);
        assert!(p.iova_runs().is_empty());
    }
}
