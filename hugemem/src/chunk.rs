//! Chunks: owned runs of pages, and the request that asks for one.

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::table::Segment;
use crate::{Iova, PageSize, Provider};

/// What to allocate: length plus options, built fluently.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, PageSize};
/// let r = AllocRequest::new(3 << 20)
///     .align(1 << 21)
///     .page_size(PageSize::Huge2M)
///     .require_page_size(false)
///     .iova_contiguous(false)
///     .node(-1);
/// assert_eq!(r.len(), 3 << 20);
/// ```
#[derive(Clone, Debug)]
pub struct AllocRequest {
    pub(crate) len: usize,
    pub(crate) align: usize,
    pub(crate) page_size: Option<PageSize>,
    pub(crate) require_page_size: bool,
    pub(crate) iova_contiguous: bool,
    pub(crate) node: i32,
    pub(crate) heap: Option<String>,
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
            node: -1,
            heap: None,
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

    /// With `true`, the chunk must be IOVA-contiguous or the allocation fails
    /// with [`HugememError::NotIovaContiguous`](crate::HugememError::NotIovaContiguous).
    pub fn iova_contiguous(mut self, yes: bool) -> Self {
        self.iova_contiguous = yes;
        self
    }

    /// NUMA node (-1: any). A node that does not exist is an error.
    pub fn node(mut self, node: i32) -> Self {
        self.node = node;
        self
    }

    /// Allocate from the named external heap instead of the provider's own pages.
    pub fn heap(mut self, name: &str) -> Self {
        self.heap = Some(name.to_string());
        self
    }
}

/// One page of a chunk or list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageInfo {
    /// Virtual address of the page.
    pub va: usize,
    /// Its IOVA ([`Iova::BAD`] for external memory registered without a table).
    pub iova: Iova,
    /// Page size in bytes.
    pub size: usize,
    /// NUMA node (-1 when unknown).
    pub node: i32,
    /// Memory registered from outside.
    pub external: bool,
    /// The list it belongs to (see [`ListInfo::id`](crate::ListInfo::id)).
    pub list: usize,
    /// Whether it is handed out (in a chunk or zone).
    pub in_use: bool,
}

/// The provider-independent part of a chunk: which pages of which list.
#[derive(Clone, Debug)]
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

    /// IOVA of the first byte.
    pub fn iova(&self) -> Iova {
        self.seg.lookup(self.raw.va)
    }

    /// IOVA of byte `offset` ([`Iova::BAD`] past the mapped pages).
    pub fn iova_at(&self, offset: usize) -> Iova {
        if offset >= self.mapped_len() {
            return Iova::BAD;
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

    /// Maximal IOVA-contiguous runs: `(va, iova, len)`.
    pub fn segments(&self) -> impl Iterator<Item = (usize, Iova, usize)> {
        segments_of(self.pages()).into_iter()
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the chunk owns `len` mapped, readable bytes at `va` until drop
        // (the pages are `USED` in the list and nobody else is handed them).
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

pub(crate) fn segments_of(pages: impl Iterator<Item = PageInfo>) -> Vec<(usize, Iova, usize)> {
    let mut out: Vec<(usize, Iova, usize)> = Vec::new();
    for p in pages {
        if let Some(last) = out.last_mut() {
            let va_next = last.0 + last.2 == p.va;
            let iova_next = !last.1.is_bad()
                && !p.iova.is_bad()
                && last.1 .0.wrapping_add(last.2 as u64) == p.iova.0;
            if va_next && iova_next {
                last.2 += p.size;
                continue;
            }
        }
        out.push((p.va, p.iova, p.size));
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
            .finish()
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        self.provider.inner.free_raw(self.raw.clone());
    }
}
