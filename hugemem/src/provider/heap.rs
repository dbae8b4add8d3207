//! Heaps of external memory: registrations owned by an [`ExternalHeap`],
//! whose memory serves chunks and zones.

use std::fmt;
use std::sync::Arc;

use super::backing::ListFail;
use super::external::ExternalMem;
use super::page_list::ListKind;
use super::{lock, Inner, Provider, State};
use crate::chunk::RawChunk;
use crate::sync::Mutex;
use crate::{AllocError, AllocRequest, Chunk, ExternalId, Iova, RegisterError, UnregisterError};

/// A heap of external memory: memory added to it serves chunks and zones
/// ([`alloc`](Self::alloc), [`AllocRequest::heap`]). The heap owns its
/// memory's registrations: dropping it unregisters them (each once the
/// chunks carved from it are gone).
///
/// ```
/// use pktmem_hugemem::{AllocRequest, Iova, Provider};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let layout = std::alloc::Layout::from_size_align(4 * 4096, 4096).unwrap();
/// // SAFETY: non-zero size.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout) };
/// let iovas: Vec<Iova> = (0..4).map(|i| Iova(0x8000_0000 + i * 4096)).collect();
/// let dev = p.create_heap("dev");
/// // SAFETY: `mem` is ours, zeroed, and outlives its time in the heap.
/// let id = unsafe { dev.add_memory(mem, 4 * 4096, 4096, Some(&iovas)) }.unwrap();
/// let c = dev.alloc(&AllocRequest::new(8192)).unwrap();
/// assert_eq!(c.iova(), Some(Iova(0x8000_0000)));
/// assert!(dev.remove_memory(id).is_err()); // busy
/// drop(c);
/// dev.remove_memory(id).unwrap();
/// drop(dev);
/// unsafe { std::alloc::dealloc(mem, layout) };
/// ```
pub struct ExternalHeap {
    provider: Provider,
    heap: HeapRef,
    /// The registrations of the memory added (dropped with the heap).
    mems: Mutex<Vec<ExternalMem>>,
}

/// What an [`AllocRequest`] keeps of the heap it names.
#[derive(Clone, Debug)]
pub(crate) struct HeapRef {
    pub(super) id: u64,
    pub(super) label: Arc<str>,
}

impl Provider {
    /// An empty heap of external memory, labelled for humans.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocError, AllocRequest, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let heap = p.create_heap("nic");
    /// assert_eq!(heap.label(), "nic");
    /// assert!(heap.is_empty());
    /// assert!(matches!(heap.alloc(&AllocRequest::new(1)), Err(AllocError::NoHeapMemory { .. })));
    /// ```
    pub fn create_heap(&self, label: &str) -> ExternalHeap {
        let id = {
            let mut st = lock(&self.inner.state);
            st.next_heap_id += 1;
            st.next_heap_id
        };
        ExternalHeap {
            provider: self.clone(),
            heap: HeapRef {
                id,
                label: label.into(),
            },
            mems: Mutex::new(Vec::new()),
        }
    }
}

impl ExternalHeap {
    /// The heap's label.
    pub fn label(&self) -> &str {
        &self.heap.label
    }

    /// The provider the heap belongs to.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }

    pub(crate) fn heap_ref(&self) -> HeapRef {
        self.heap.clone()
    }

    /// Adds external memory to the heap (registering it as
    /// [`Provider::register_external`] does); chunks and zones are then
    /// carved from it.
    ///
    /// # Safety
    /// Chunks carved from the memory give safe read/write access to it, so:
    /// - `[ptr, ptr + len)` is valid for reads and writes of initialised bytes;
    /// - it stays valid, and nothing else accesses it, until it is
    ///   unregistered: removed with [`remove_memory`](Self::remove_memory),
    ///   or, once the heap is dropped, when the last chunk carved from it is
    ///   gone (or the provider is dropped).
    pub unsafe fn add_memory(
        &self,
        ptr: *mut u8,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
    ) -> Result<ExternalId, RegisterError> {
        let id = self.provider.inner.register_external(
            ptr as usize,
            len,
            page_size,
            iovas,
            Some(&self.heap),
            None,
        )?;
        lock(&self.mems).push(ExternalMem {
            provider: Arc::downgrade(&self.provider.inner),
            id,
            va: ptr as usize,
            len,
            kept: false,
        });
        Ok(id)
    }

    /// Adds the memory `owner` holds to the heap, keeping `owner` until the
    /// memory is unregistered: the safe twin of [`add_memory`](Self::add_memory)
    /// (see [`Provider::register_external_owned`] for what `owner` must be).
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider};
    /// struct Pages(*mut u8, std::alloc::Layout);
    /// // SAFETY: `Pages` owns its allocation exclusively.
    /// unsafe impl Send for Pages {}
    /// impl AsMut<[u8]> for Pages {
    ///     fn as_mut(&mut self) -> &mut [u8] {
    ///         // SAFETY: the allocation is `self.1.size()` zeroed bytes, ours.
    ///         unsafe { std::slice::from_raw_parts_mut(self.0, self.1.size()) }
    ///     }
    /// }
    /// impl Drop for Pages {
    ///     fn drop(&mut self) {
    ///         // SAFETY: allocated with this layout below.
    ///         unsafe { std::alloc::dealloc(self.0, self.1) }
    ///     }
    /// }
    /// let layout = std::alloc::Layout::from_size_align(4 * 4096, 4096).unwrap();
    /// // SAFETY: non-zero size.
    /// let pages = Pages(unsafe { std::alloc::alloc_zeroed(layout) }, layout);
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let heap = p.create_heap("owned");
    /// heap.add_owned(pages, 4096, None).unwrap(); // no unsafe
    /// let mut c = heap.alloc(&AllocRequest::new(3 * 4096)).unwrap();
    /// c.as_mut_slice().fill(5);
    /// drop((c, heap)); // unregistered, then `Pages` dropped
    /// ```
    pub fn add_owned<O>(
        &self,
        owner: O,
        page_size: usize,
        iovas: Option<&[Iova]>,
    ) -> Result<ExternalId, RegisterError>
    where
        O: AsMut<[u8]> + Send + 'static,
    {
        let (owner, va, len) = super::external::Owner::new(owner);
        let id = self.provider.inner.register_external(
            va,
            len,
            page_size,
            iovas,
            Some(&self.heap),
            Some(owner),
        )?;
        lock(&self.mems).push(ExternalMem {
            provider: Arc::downgrade(&self.provider.inner),
            id,
            va,
            len,
            kept: false,
        });
        Ok(id)
    }

    /// Removes memory from the heap (unregistering it); refused while
    /// chunks or leases use it.
    pub fn remove_memory(&self, id: ExternalId) -> Result<(), UnregisterError> {
        let mem = {
            let mut mems = lock(&self.mems);
            let i =
                mems.iter()
                    .position(|m| m.id == id)
                    .ok_or_else(|| UnregisterError::NotInHeap {
                        heap: self.heap.label.to_string(),
                    })?;
            mems.swap_remove(i)
        };
        // Unregistered with the heap's list unlocked: the Free event's
        // callbacks may use the heap.
        match mem.unregister() {
            Ok(()) => Ok(()), // `mem` drops spent
            Err(e) => {
                lock(&self.mems).push(mem);
                Err(e)
            }
        }
    }

    /// Bytes of memory the heap holds.
    pub fn len(&self) -> usize {
        lock(&self.mems).iter().map(|m| m.len).sum()
    }

    /// Whether the heap holds no memory.
    pub fn is_empty(&self) -> bool {
        lock(&self.mems).is_empty()
    }

    /// A chunk of the heap's memory, as `req` says (its heap, if it names
    /// one, is replaced by this one).
    pub fn alloc(&self, req: &AllocRequest) -> Result<Chunk, AllocError> {
        self.provider.alloc_with(&req.clone().heap(self))
    }
}

impl fmt::Debug for ExternalHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalHeap")
            .field("label", &self.heap.label)
            .field("ranges", &lock(&self.mems).len())
            .finish_non_exhaustive()
    }
}

impl Inner {
    pub(super) fn alloc_from_heap(
        &self,
        st: &mut State,
        heap: &HeapRef,
        req: &AllocRequest,
    ) -> Result<RawChunk, AllocError> {
        let want = ListKind::External {
            heap: Some(heap.id),
        };
        let idx: Vec<usize> = (0..st.lists.len())
            .filter(|&i| {
                let l = &st.lists[i];
                !l.removed && !l.unregister_pending && l.kind == want
            })
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
                    // Not expected: external memory is never mapped.
                    let page_size = st.lists[li].seg.page_size();
                    last = Some(AllocError::NoPages {
                        page_size,
                        pages: req.len.div_ceil(page_size),
                        reason: r,
                    });
                }
            }
        }
        Err(last.unwrap_or_else(|| AllocError::NoHeapMemory {
            heap: heap.label.to_string(),
            len: req.len,
        }))
    }
}
