//! External memory (ranges the provider did not allocate, registered with
//! their page IOVAs) and the heaps made of it, which serve chunks and zones.

use std::sync::Arc;

use super::backing::{Backing, ListFail};
use super::events::{EventKind, MemEvent};
use super::page_list::{ListKind, PageList, PageState};
use super::{lock, Inner, Provider, State};
use crate::chunk::RawChunk;
use crate::table::{Segment, MAX_SEGMENTS};
use crate::{AllocRequest, HugememError, Iova};

/// Identifies a registered external range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExternalId(pub(crate) usize, pub(crate) u64);

impl Provider {
    /// Registers memory the provider did not allocate: `len` bytes at `ptr`
    /// in pages of `page_size` bytes, with one IOVA per page (or none: the
    /// pages then translate to [`Iova::BAD`]). Fires an Alloc event.
    ///
    /// ```
    /// use pktmem_hugemem::{Iova, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let layout = std::alloc::Layout::from_size_align(8192, 4096).unwrap();
    /// let mem = unsafe { std::alloc::alloc_zeroed(layout) };
    /// let id = p.register_external(mem, 8192, 4096, Some(&[Iova(0x10000), Iova(0x40000)])).unwrap();
    /// assert_eq!(p.virt2iova(unsafe { mem.add(4097) }), Iova(0x40001));
    /// p.unregister_external(id).unwrap();
    /// assert!(p.virt2iova(mem).is_bad());
    /// unsafe { std::alloc::dealloc(mem, layout) };
    /// ```
    pub fn register_external(
        &self,
        ptr: *mut u8,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
    ) -> Result<ExternalId, HugememError> {
        self.inner
            .register_external(ptr as usize, len, page_size, iovas, None)
    }

    /// Unregisters external memory; refused while chunks use it. Fires a Free event.
    ///
    /// Lookups run without locks, so the range's translation table (8 bytes
    /// per page) is retired rather than freed: it stays allocated until the
    /// provider drops.
    pub fn unregister_external(&self, id: ExternalId) -> Result<(), HugememError> {
        self.inner.unregister_external(id, None)
    }

    /// Unregisters the external range that starts at `ptr` (not in a heap).
    pub fn unregister_external_at(&self, ptr: *const u8) -> Result<(), HugememError> {
        let id = {
            let st = lock(&self.inner.state);
            let li = st
                .lists
                .iter()
                .position(|l| {
                    !l.removed
                        && l.seg.base == ptr as usize
                        && l.kind == ListKind::External { heap: None }
                })
                .ok_or(HugememError::NotRegistered { addr: ptr as usize })?;
            ExternalId(li, st.lists[li].generation)
        };
        self.inner.unregister_external(id, None)
    }

    /// Creates an empty named external heap.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Iova, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let layout = std::alloc::Layout::from_size_align(4 * 4096, 4096).unwrap();
    /// let mem = unsafe { std::alloc::alloc_zeroed(layout) };
    /// let iovas: Vec<Iova> = (0..4).map(|i| Iova(0x8000_0000 + i * 4096)).collect();
    /// p.create_heap("dev").unwrap();
    /// // SAFETY: `mem` is ours, zeroed, and outlives its time in the heap.
    /// let id = unsafe { p.heap_add_memory("dev", mem, 4 * 4096, 4096, Some(&iovas)) }.unwrap();
    /// let c = p.alloc_with(&AllocRequest::new(8192).heap("dev")).unwrap();
    /// assert_eq!(c.iova(), Iova(0x8000_0000));
    /// assert!(p.heap_remove_memory("dev", id).is_err()); // busy
    /// drop(c);
    /// p.heap_remove_memory("dev", id).unwrap();
    /// p.destroy_heap("dev").unwrap();
    /// unsafe { std::alloc::dealloc(mem, layout) };
    /// ```
    pub fn create_heap(&self, name: &str) -> Result<(), HugememError> {
        let mut st = lock(&self.inner.state);
        if st.heaps.contains_key(name) {
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        st.heaps.insert(name.to_string(), ());
        Ok(())
    }

    /// Adds external memory to heap `name` (registering it as
    /// [`register_external`](Self::register_external) does). Chunks and zones
    /// are then allocated from it with [`AllocRequest::heap`].
    ///
    /// # Safety
    /// Chunks carved from the memory give safe read/write access to it, so:
    /// - `[ptr, ptr + len)` is valid for reads and writes of initialised bytes;
    /// - it stays valid, and nothing else accesses it, until it is removed
    ///   with [`heap_remove_memory`](Self::heap_remove_memory) or the
    ///   provider is dropped.
    pub unsafe fn heap_add_memory(
        &self,
        name: &str,
        ptr: *mut u8,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
    ) -> Result<ExternalId, HugememError> {
        if !lock(&self.inner.state).heaps.contains_key(name) {
            return Err(HugememError::UnknownName(name.to_string()));
        }
        self.inner
            .register_external(ptr as usize, len, page_size, iovas, Some(name))
    }

    /// Removes memory from heap `name`; refused while chunks use it.
    pub fn heap_remove_memory(&self, name: &str, id: ExternalId) -> Result<(), HugememError> {
        self.inner.unregister_external(id, Some(name))
    }

    /// Destroys heap `name`; refused while it still holds memory.
    pub fn destroy_heap(&self, name: &str) -> Result<(), HugememError> {
        let mut st = lock(&self.inner.state);
        if !st.heaps.contains_key(name) {
            return Err(HugememError::UnknownName(name.to_string()));
        }
        let pages: usize = st
            .lists
            .iter()
            .filter(|l| {
                !l.removed
                    && l.kind
                        == ListKind::External {
                            heap: Some(name.to_string()),
                        }
            })
            .map(|l| l.seg.pages())
            .sum();
        if pages > 0 {
            return Err(HugememError::InUse {
                what: format!("heap '{name}' (still holds memory)"),
                pages,
            });
        }
        st.heaps.remove(name);
        Ok(())
    }
}

impl Inner {
    pub(super) fn register_external(
        &self,
        addr: usize,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
        heap: Option<&str>,
    ) -> Result<ExternalId, HugememError> {
        self.guard()?;
        if len == 0 {
            return Err(HugememError::ZeroLength);
        }
        if !page_size.is_power_of_two() || page_size < 4096 {
            return Err(HugememError::BadPageSize { page_size });
        }
        if addr == 0 || addr % page_size != 0 {
            return Err(HugememError::Misaligned {
                value: addr,
                page_size,
            });
        }
        if len % page_size != 0 {
            return Err(HugememError::Misaligned {
                value: len,
                page_size,
            });
        }
        let pages = len / page_size;
        if let Some(t) = iovas {
            if t.len() != pages {
                return Err(HugememError::IovaTableLength {
                    expected: pages,
                    got: t.len(),
                });
            }
        }
        let end = addr
            .checked_add(len)
            .ok_or(HugememError::Overlap { addr, len })?;
        let mut st = lock(&self.state);
        let overlap = st
            .lists
            .iter()
            .filter(|l| !l.removed)
            .any(|l| addr < l.seg.base + l.seg.len && l.seg.base < end);
        if overlap {
            return Err(HugememError::Overlap { addr, len });
        }
        let seg = Arc::new(Segment::new(
            addr,
            len,
            page_size.trailing_zeros(),
            -1,
            true,
            st.lists.len(),
        ));
        for i in 0..pages {
            seg.set_page_iova(i, iovas.map(|t| t[i]).unwrap_or(Iova::BAD));
        }
        // Devices get the range before anything can use it.
        self.dma_map_external(&mut st, &seg)
            .map_err(HugememError::DmaMap)?;
        let Some(slot) = self.table.publish(&seg) else {
            self.dma_unmap(&mut st, addr, len);
            return Err(HugememError::TooManyLists(MAX_SEGMENTS));
        };
        st.next_generation += 1;
        let generation = st.next_generation;
        st.lists.push(PageList::new(
            ListKind::External {
                heap: heap.map(str::to_string),
            },
            seg,
            slot,
            Backing::External,
            PageState::Mapped,
            generation,
        ));
        let id = ExternalId(st.lists.len() - 1, generation);
        st.pending_events.push(MemEvent {
            kind: EventKind::Alloc,
            va: addr,
            len,
            external: true,
        });
        self.settle_or_unwind(st);
        Ok(id)
    }

    pub(super) fn unregister_external(
        &self,
        id: ExternalId,
        heap: Option<&str>,
    ) -> Result<(), HugememError> {
        self.guard()?;
        let mut st = lock(&self.state);
        if let Some(h) = heap {
            if !st.heaps.contains_key(h) {
                return Err(HugememError::UnknownName(h.to_string()));
            }
        }
        let l = match st.lists.get(id.0) {
            Some(l)
                if !l.removed
                    && l.generation == id.1
                    && !l.state.contains(&PageState::Freeing)
                    && l.kind
                        == ListKind::External {
                            heap: heap.map(str::to_string),
                        } =>
            {
                l
            }
            Some(l) => return Err(HugememError::NotRegistered { addr: l.seg.base }),
            None => return Err(HugememError::NotRegistered { addr: 0 }),
        };
        if l.used > 0 {
            return Err(HugememError::InUse {
                what: format!("external memory at {:#x}", l.seg.base),
                pages: l.used,
            });
        }
        let (base, len) = (l.seg.base, l.seg.len);
        // Freeing: no chunk can be carved from it while its Free event fires.
        st.lists[id.0]
            .state
            .iter_mut()
            .for_each(|s| *s = PageState::Freeing);
        st.pending_events.push(MemEvent {
            kind: EventKind::Free,
            va: base,
            len,
            external: true,
        });
        st.pending_removal.push(id.0);
        self.settle_or_unwind(st);
        Ok(())
    }

    /// Drops an external list whose Free event has fired.
    pub(super) fn finish_removal(&self, st: &mut State, li: usize) {
        // Devices let go first (the range has no user left).
        let (base, len) = (st.lists[li].seg.base, st.lists[li].seg.len);
        self.dma_unmap(st, base, len);
        let l = &mut st.lists[li];
        for i in 0..l.seg.pages() {
            l.seg.set_page_iova(i, Iova::BAD);
        }
        l.removed = true;
        l.state = Vec::new();
        self.table.retire(l.slot);
        let seg = l.seg.clone();
        st.graveyard.push(seg);
    }

    pub(super) fn alloc_from_heap(
        &self,
        st: &mut State,
        name: &str,
        req: &AllocRequest,
    ) -> Result<RawChunk, HugememError> {
        if !st.heaps.contains_key(name) {
            return Err(HugememError::UnknownName(name.to_string()));
        }
        let want = ListKind::External {
            heap: Some(name.to_string()),
        };
        let idx: Vec<usize> = (0..st.lists.len())
            .filter(|&i| !st.lists[i].removed && st.lists[i].kind == want)
            .collect();
        let mut last = None;
        for li in idx {
            if let (Some(ps), true) = (req.page_size, req.require_page_size) {
                if st.lists[li].seg.page_size() != ps.bytes() {
                    continue;
                }
            }
            match self.alloc_in_list(st, li, req) {
                Ok(r) => return Ok(r),
                Err(ListFail::Hard(e)) => last = Some(e),
                Err(ListFail::NoSpace(r)) => {
                    last = Some(HugememError::NoPages {
                        page_size: st.lists[li].seg.page_size(),
                        pages: 0,
                        reason: r,
                    })
                }
            }
        }
        Err(last.unwrap_or(HugememError::NoPages {
            page_size: 0,
            pages: 0,
            reason: format!("heap '{name}' has no memory that fits {} bytes", req.len),
        }))
    }
}
