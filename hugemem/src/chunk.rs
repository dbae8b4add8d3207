//! Chunks: owned runs of pages, and the request that asks for one.

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::provider::HeapRef;
use crate::table::Segment;
use crate::{ExternalHeap, Iova, Node, PageSize, Provider};

/// What to allocate: length plus options, built fluently.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, Node, PageSize};
/// let r = AllocRequest::new(3 << 20)
///     .align(1 << 21)
///     .page_size(PageSize::Huge2M)
///     .require_page_size(false)
///     .iova_contiguous(false)
///     .node(Node::new(0));
/// assert_eq!(r.len(), 3 << 20);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct AllocRequest {
    pub(crate) len: usize,
    pub(crate) align: usize,
    pub(crate) page_size: Option<PageSize>,
    pub(crate) require_page_size: bool,
    pub(crate) iova_contiguous: bool,
    pub(crate) node: Option<Node>,
    pub(crate) heap: Option<HeapRef>,
    pub(crate) fault_threads: usize,
}

impl AllocRequest {
    /// A request for `len` bytes, page aligned, any page size, any node.
    pub fn new(len: usize) -> AllocRequest {
        AllocRequest {
            len,
            align: 1,
            page_size: None,
            require_page_size: false,
            iova_contiguous: false,
            node: None,
            heap: None,
            fault_threads: 1,
        }
    }

    /// The length asked for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the length is zero (which allocation refuses).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Alignment of the first byte (a power of two; chunks always start on
    /// a page boundary, so only alignments above the page size matter).
    pub fn align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Preferred page size (tried first).
    pub fn page_size(mut self, ps: PageSize) -> Self {
        self.page_size = Some(ps);
        self
    }

    /// With `true`, only the page size given to [`page_size`](Self::page_size) is acceptable.
    pub fn require_page_size(mut self, yes: bool) -> Self {
        self.require_page_size = yes;
        self
    }

    /// With `true`, the chunk must be one IOVA run or the allocation fails
    /// with [`AllocError::NotIovaContiguous`](crate::AllocError::NotIovaContiguous)
    /// (pages in several runs) or [`AllocError::NoIova`](crate::AllocError::NoIova)
    /// (memory without IOVAs), whatever its length.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc_with(&AllocRequest::new(3 * 4096).iova_contiguous(true)).unwrap();
    /// assert!(c.is_iova_contiguous()); // heap memory: IOVA = VA
    /// assert_eq!(c.segments().count(), 1);
    /// ```
    pub fn iova_contiguous(mut self, yes: bool) -> Self {
        self.iova_contiguous = yes;
        self
    }

    /// Pages from this NUMA node (default: any, the kernel's policy). A node
    /// that does not exist is [`AllocError::UnknownNode`](crate::AllocError::UnknownNode).
    ///
    /// ```
    /// use pktmem_hugemem::{AllocError, AllocRequest, Node, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let e = p.alloc_with(&AllocRequest::new(1).node(Node::new(4000))).unwrap_err();
    /// assert!(matches!(e, AllocError::UnknownNode { node } if node.id() == 4000));
    /// ```
    pub fn node(mut self, node: Node) -> Self {
        self.node = Some(node);
        self
    }

    /// Faults the hugepages this request maps in from up to `threads`
    /// threads, each page by one thread, instead of the calling thread
    /// alone (0 and 1: the calling thread; the default).
    ///
    /// The kernel zeroes every fresh hugepage when it first maps it; for a
    /// chunk of hundreds of megabytes that zeroing is most of the
    /// allocation's time, and it scales with the threads doing it. The
    /// threads live only for the call (scoped), bound to the request's
    /// node when it names one. Small pages, heap memory, external memory
    /// and pages that are mapped already are not affected, nor are kernels
    /// without `MADV_POPULATE_WRITE` (before Linux 5.14): those are mapped by
    /// the calling thread as usual. Running out of hugepages is still an
    /// error from this call, never a fault later.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider};
    /// let p = Provider::builder().quiet(true).build()?;
    /// let c = p.alloc_with(&AllocRequest::new(16 << 20).fault_threads(2))?;
    /// assert!(c.as_slice().iter().all(|&b| b == 0)); // fresh pages, zeroed once
    /// for page in c.pages() {
    ///     assert_eq!(p.virt2iova(page.va as *const u8), page.iova);
    /// }
    /// # Ok::<(), pktmem_hugemem::HugememError>(())
    /// ```
    pub fn fault_threads(mut self, threads: usize) -> Self {
        self.fault_threads = threads.max(1);
        self
    }

    /// Allocate from `heap`'s external memory instead of the provider's own
    /// pages (same as [`ExternalHeap::alloc`]).
    pub fn heap(mut self, heap: &ExternalHeap) -> Self {
        self.heap = Some(heap.heap_ref());
        self
    }

    /// Whether the request names a heap of external memory.
    pub(crate) fn has_heap(&self) -> bool {
        self.heap.is_some()
    }
}

/// One page of a chunk or list.
///
/// ```
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let c = p.alloc(5000).unwrap();
/// let pages: Vec<_> = c.pages().collect();
/// assert_eq!(pages.len(), 2);
/// assert_eq!(pages[1].va, pages[0].va + 4096);
/// assert_eq!(pages[0].iova, c.iova());
/// assert!(pages.iter().all(|pg| pg.in_use && !pg.external && pg.size == 4096));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// Virtual address of the page.
    pub va: usize,
    /// Its IOVA (`None` for external memory registered without IOVAs).
    pub iova: Option<Iova>,
    /// Page size in bytes.
    pub size: usize,
    /// NUMA node (`None` when unknown).
    pub node: Option<Node>,
    /// Memory registered from outside.
    pub external: bool,
    /// The list it belongs to (see [`ListInfo::id`](crate::ListInfo::id)).
    pub list: usize,
    /// Whether it is handed out (in a chunk or zone).
    pub in_use: bool,
}

/// One maximal IOVA-contiguous run of a chunk ([`Chunk::segments`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IovaRun {
    /// Virtual address of the run's first byte.
    pub va: usize,
    /// IOVA of that byte (`None`: the run's page has no IOVA; such a run
    /// is one page long).
    pub iova: Option<Iova>,
    /// Length in bytes (whole pages).
    pub len: usize,
}

/// The provider-independent part of a chunk: which pages of which list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawChunk {
    pub list: usize,
    pub first: usize,
    pub pages: usize,
    pub va: usize,
    pub len: usize,
    pub contiguous: bool,
}

/// An owned run of pages, VA-contiguous, returned to the provider on drop.
///
/// The memory is readable and writable for [`len`](Chunk::len) bytes (and
/// up to the end of its last page). Pages freshly mapped are zeroed; pages
/// kept by the provider's minimum may hold old bytes.
///
/// ```
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let mut c = p.alloc(10_000).unwrap();
/// c.as_mut_slice()[9_999] = 7;
/// assert_eq!(c.len(), 10_000);
/// assert_eq!(c.pages().count(), 3); // 4 KiB pages
/// assert_eq!(p.virt2iova(c.as_ptr().as_ptr()), c.iova());
/// assert!(c.iova().is_some()); // heap memory: IOVA = VA
/// ```
pub struct Chunk {
    pub(crate) provider: Provider,
    pub(crate) raw: RawChunk,
    pub(crate) seg: Arc<Segment>,
}

impl Chunk {
    /// First byte.
    pub fn as_ptr(&self) -> NonNull<u8> {
        NonNull::new(self.raw.va as *mut u8).unwrap_or(NonNull::dangling())
    }

    /// Bytes asked for.
    pub fn len(&self) -> usize {
        self.raw.len
    }

    /// Always false: zero-length chunks are refused.
    pub fn is_empty(&self) -> bool {
        self.raw.len == 0
    }

    /// Bytes of the pages under the chunk (`len` rounded up to pages).
    pub fn mapped_len(&self) -> usize {
        self.raw.pages << self.seg.shift
    }

    /// Page size of the chunk's pages, in bytes.
    pub fn page_size(&self) -> usize {
        self.seg.page_size()
    }

    /// IOVA of the first byte (`None`: external memory registered without IOVAs).
    pub fn iova(&self) -> Option<Iova> {
        self.seg.lookup(self.raw.va)
    }

    /// IOVA of byte `offset` (`None` past the mapped pages, or without IOVAs).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc(5000).unwrap();
    /// assert_eq!(c.iova_at(4096 + 7), p.virt2iova(c.as_ptr().as_ptr().wrapping_add(4096 + 7)));
    /// assert_eq!(c.iova_at(c.mapped_len()), None); // past the pages
    /// ```
    pub fn iova_at(&self, offset: usize) -> Option<Iova> {
        if offset >= self.mapped_len() {
            return None;
        }
        self.seg.lookup(self.raw.va + offset)
    }

    /// Whether the whole chunk is one IOVA run.
    pub fn is_iova_contiguous(&self) -> bool {
        self.raw.contiguous
    }

    /// Whether the pages are external memory.
    pub fn is_external(&self) -> bool {
        self.seg.external
    }

    /// Each page of the chunk.
    pub fn pages(&self) -> impl Iterator<Item = PageInfo> + '_ {
        let seg = &self.seg;
        (self.raw.first..self.raw.first + self.raw.pages).map(move |i| PageInfo {
            va: seg.base + (i << seg.shift),
            iova: seg.page_iova(i),
            size: seg.page_size(),
            node: seg.node,
            external: seg.external,
            list: seg.list,
            in_use: true,
        })
    }

    /// Maximal IOVA-contiguous runs, in VA order.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let c = p.alloc(3 * 4096).unwrap();
    /// let runs: Vec<_> = c.segments().collect();
    /// assert_eq!(runs.len(), 1); // heap memory: IOVA = VA, one run
    /// assert_eq!((runs[0].va, runs[0].iova, runs[0].len),
    ///            (c.as_ptr().as_ptr() as usize, c.iova(), 3 * 4096));
    /// ```
    pub fn segments(&self) -> impl Iterator<Item = IovaRun> {
        segments_of(self.pages()).into_iter()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the chunk owns `len` mapped, readable bytes at `va` until drop
        // (the pages are `InUse` in the list and nobody else is handed them).
        unsafe { std::slice::from_raw_parts(self.raw.va as *const u8, self.raw.len) }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`, and `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.raw.va as *mut u8, self.raw.len) }
    }

    /// The provider the chunk came from.
    pub fn provider(&self) -> &Provider {
        &self.provider
    }
}

/// Memory that other processes may write at any time: a chunk of an
/// exportable provider ([`Provider::alloc_shared`]). It has everything a
/// [`Chunk`] has except slices: its bytes are reached through raw
/// pointers only (volatile or atomic accesses, or copies), since a
/// reference to memory another process changes is undefined behaviour.
/// Freed on drop, like a chunk.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, Provider};
/// let p = Provider::builder().exportable().quiet(true).build().unwrap();
/// let c = p.alloc_shared(&AllocRequest::new(3 << 20))?;
/// assert!(c.pages().all(|pg| p.virt2iova(pg.va as *const u8) == pg.iova));
/// let last = c.as_ptr().as_ptr().wrapping_add(c.len() - 1);
/// // SAFETY: inside the chunk; written and read through raw pointers.
/// unsafe { last.write_volatile(7) };
/// assert_eq!(unsafe { last.read_volatile() }, 7);
/// # Ok::<(), pktmem_hugemem::AllocError>(())
/// ```
#[derive(Debug)]
pub struct SharedChunk(pub(crate) Chunk);

impl SharedChunk {
    /// First byte.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.0.as_ptr()
    }

    /// Bytes asked for.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: zero-length chunks are refused.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Bytes of the pages under the chunk (`len` rounded up to pages).
    pub fn mapped_len(&self) -> usize {
        self.0.mapped_len()
    }

    /// Page size of the chunk's pages, in bytes.
    pub fn page_size(&self) -> usize {
        self.0.page_size()
    }

    /// IOVA of the first byte.
    pub fn iova(&self) -> Option<Iova> {
        self.0.iova()
    }

    /// IOVA of byte `offset` (`None` past the mapped pages).
    pub fn iova_at(&self, offset: usize) -> Option<Iova> {
        self.0.iova_at(offset)
    }

    /// Whether the whole chunk is one IOVA run.
    pub fn is_iova_contiguous(&self) -> bool {
        self.0.is_iova_contiguous()
    }

    /// Each page of the chunk.
    pub fn pages(&self) -> impl Iterator<Item = PageInfo> + '_ {
        self.0.pages()
    }

    /// Maximal IOVA-contiguous runs, in VA order.
    pub fn segments(&self) -> impl Iterator<Item = IovaRun> {
        self.0.segments()
    }

    /// The provider the chunk came from.
    pub fn provider(&self) -> &Provider {
        self.0.provider()
    }
}

/// The maximal IOVA-contiguous runs of `pages` (in VA order): a page joins
/// the run before it when both VA and IOVA follow on; a page without IOVA
/// is a run of its own.
pub(crate) fn segments_of(pages: impl Iterator<Item = PageInfo>) -> Vec<IovaRun> {
    let mut out: Vec<IovaRun> = Vec::new();
    for p in pages {
        if let Some(last) = out.last_mut() {
            let va_next = last.va + last.len == p.va;
            let iova_next = match (last.iova, p.iova) {
                (Some(a), Some(b)) => a.0.wrapping_add(last.len as u64) == b.0,
                _ => false,
            };
            if va_next && iova_next {
                last.len += p.size;
                continue;
            }
        }
        out.push(IovaRun {
            va: p.va,
            iova: p.iova,
            len: p.size,
        });
    }
    out
}

impl fmt::Debug for Chunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Chunk")
            .field("va", &format_args!("{:#x}", self.raw.va))
            .field("len", &self.raw.len)
            .field("page_size", &self.page_size())
            .field("pages", &self.raw.pages)
            .field("iova", &self.iova())
            .field("iova_contiguous", &self.raw.contiguous)
            .finish_non_exhaustive()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.provider.inner.free_raw(self.raw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(va: usize, iova: Option<u64>) -> PageInfo {
        PageInfo {
            va,
            iova: iova.map(Iova),
            size: 4096,
            node: None,
            external: false,
            list: 0,
            in_use: true,
        }
    }

    #[test]
    fn runs_join_only_when_va_and_iova_follow_on() {
        let pages = [
            page(0x10000, Some(0x9000)),
            page(0x11000, Some(0xa000)), // follows on
            page(0x12000, Some(0x5000)), // IOVA jumps
            page(0x14000, Some(0x6000)), // VA jumps
            page(0x15000, None),         // no IOVA: its own run
            page(0x16000, None),         // never joins another
        ];
        let runs = segments_of(pages.into_iter());
        let got: Vec<_> = runs
            .iter()
            .map(|r| (r.va, r.iova.map(|i| i.0), r.len))
            .collect();
        assert_eq!(
            got,
            vec![
                (0x10000, Some(0x9000), 0x2000),
                (0x12000, Some(0x5000), 0x1000),
                (0x14000, Some(0x6000), 0x1000),
                (0x15000, None, 0x1000),
                (0x16000, None, 0x1000),
            ]
        );
        assert!(segments_of(std::iter::empty()).is_empty());
    }
}
