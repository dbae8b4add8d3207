//! Building a provider: where its pages come from and its knobs.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Inner, Provider};
use crate::sync::Ordering;
use crate::{BuildError, IovaMode, PageSize};

/// Where the provider's own pages come from.
///
/// ```
/// use pktmem_hugemem::{PageSource, Provider};
/// let p = Provider::builder().source(PageSource::Heap(1 << 20)).build().unwrap();
/// assert_eq!(p.info().source, PageSource::Heap(1 << 20));
/// assert_eq!(p.alloc(1).unwrap().page_size(), 4096);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageSource {
    /// `memfd_create(MFD_HUGETLB)`, one fd per page-size list (the default;
    /// no mount needed; the fds can be shared with other processes).
    Memfd,
    /// Anonymous private `MAP_HUGETLB` mappings (no fd; not shareable).
    AnonHugetlb,
    /// An unlinked file per list in this hugetlbfs directory.
    Hugetlbfs(PathBuf),
    /// Ordinary heap memory of this many bytes, "4 KiB pages", IOVA = VA:
    /// for portable unit tests and models. Never returns memory to the system.
    Heap(usize),
}

/// Builds a [`Provider`].
///
/// ```
/// use pktmem_hugemem::{PageSize, Provider};
/// let p = Provider::builder()
///     .page_sizes(&[PageSize::Huge2M])
///     .allow_small_page_fallback(true)
///     .va_reserve(PageSize::Huge2M, 4 << 30)
///     .limit(1 << 30)
///     .build()
///     .unwrap();
/// let c = p.alloc(1 << 20).unwrap();
/// assert!(c.page_size() == 2 << 20 || c.page_size() == 4096);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ProviderBuilder {
    pub(super) preferred: Vec<PageSize>,
    pub(super) fallback: bool,
    pub(super) va_reserve: [usize; 3],
    pub(super) min_keep: usize,
    pub(super) limit: usize,
    pub(super) iova_mode: Option<IovaMode>,
    pub(super) source: PageSource,
    pub(super) quiet: bool,
    pub(super) exportable: bool,
}

/// The index of `ps` in per-size arrays such as `va_reserve`.
pub(super) fn size_index(ps: PageSize) -> usize {
    match ps {
        PageSize::Small4K => 0,
        PageSize::Huge2M => 1,
        PageSize::Huge1G => 2,
    }
}

impl Default for ProviderBuilder {
    fn default() -> Self {
        ProviderBuilder {
            preferred: vec![PageSize::Huge2M],
            fallback: true,
            va_reserve: [16 << 30, 64 << 30, 64 << 30],
            min_keep: 0,
            limit: usize::MAX,
            iova_mode: None,
            source: PageSource::Memfd,
            quiet: false,
            exportable: false,
        }
    }
}

impl ProviderBuilder {
    /// Hugepage sizes tried by default, in order (default: 2 MiB only; a
    /// request may still name any size with [`AllocRequest::page_size`](crate::AllocRequest::page_size)).
    /// A [`PageSize::Small4K`] entry allows the small-page fallback (as
    /// [`allow_small_page_fallback(true)`](Self::allow_small_page_fallback)),
    /// which is always tried last; `&[PageSize::Small4K]` alone means small
    /// pages only (as [`small_pages_only`](Self::small_pages_only)).
    ///
    /// ```
    /// use pktmem_hugemem::{PageSize, Provider};
    /// let p = Provider::builder().page_sizes(&[PageSize::Small4K]).quiet(true).build().unwrap();
    /// let c = p.alloc(4096).unwrap();
    /// assert_eq!(c.page_size(), 4096);
    /// ```
    pub fn page_sizes(mut self, sizes: &[PageSize]) -> Self {
        self.preferred = sizes.iter().copied().filter(|s| s.is_huge()).collect();
        if sizes.contains(&PageSize::Small4K) {
            self.fallback = true;
        }
        self
    }

    /// Small (4 KiB, locked) pages only, even where hugepages are reserved:
    /// for tests of the fallback path and for programs that must not take
    /// hugepages from others.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().small_pages_only().quiet(true).build().unwrap();
    /// assert_eq!(p.alloc(1 << 20).unwrap().page_size(), 4096);
    /// ```
    pub fn small_pages_only(mut self) -> Self {
        self.preferred.clear();
        self.fallback = true;
        self
    }

    /// Whether to fall back to 4 KiB pages when no hugepage can be had (default true).
    pub fn allow_small_page_fallback(mut self, yes: bool) -> Self {
        self.fallback = yes;
        self
    }

    /// VA reserved up front for the list of `size` pages (rounded up to
    /// pages; zero makes `build` fail with [`BuildError::ZeroVaReserve`]).
    pub fn va_reserve(mut self, size: PageSize, bytes: usize) -> Self {
        self.va_reserve[size_index(size)] = bytes;
        self
    }

    /// Bytes mapped at build time and never given back (default 0).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).min_keep(3 * 4096).build().unwrap();
    /// assert_eq!(p.mapped_bytes(), 3 * 4096); // mapped at build
    /// drop(p.alloc(5 * 4096).unwrap());
    /// assert_eq!(p.mapped_bytes(), 3 * 4096); // kept
    /// ```
    pub fn min_keep(mut self, bytes: usize) -> Self {
        self.min_keep = bytes;
        self
    }

    /// Upper limit on bytes mapped by the provider (external memory not counted).
    pub fn limit(mut self, bytes: usize) -> Self {
        self.limit = bytes;
        self
    }

    /// Forces the IOVA mode instead of detecting it.
    pub fn iova_mode(mut self, mode: IovaMode) -> Self {
        self.iova_mode = Some(mode);
        self
    }

    /// Where pages come from (default [`PageSource::Memfd`]).
    pub fn source(mut self, source: PageSource) -> Self {
        self.source = source;
        self
    }

    /// Shorthand for `source(PageSource::Heap(bytes))`.
    pub fn heap_backed(self, bytes: usize) -> Self {
        self.source(PageSource::Heap(bytes))
    }

    /// Do not print the fallback note on stderr (it is still in [`Provider::info`]).
    pub fn quiet(mut self, yes: bool) -> Self {
        self.quiet = yes;
        self
    }

    /// Makes the provider *exportable*: its memory may be shared with other
    /// processes (`share::Exporter`), which can
    /// write any of it at any time. Such memory must never be reached
    /// through `&[u8]`/`&mut [u8]` (a reference to memory another process
    /// changes is undefined behaviour), so an exportable provider hands out
    /// no [`Chunk`](crate::Chunk): [`Provider::alloc`], [`Provider::alloc_with`],
    /// zones and the small heap (hence mempools and packet pools built on
    /// it) are refused with [`AllocError::Exportable`](crate::AllocError::Exportable);
    /// its memory comes as [`SharedChunk`](crate::SharedChunk)s from
    /// [`Provider::alloc_shared`], which give raw pointers only. Keep the
    /// process's private memory in another provider.
    ///
    /// ```
    /// use pktmem_hugemem::{AllocError, AllocRequest, Provider};
    /// let p = Provider::builder().exportable().quiet(true).build().unwrap();
    /// assert!(p.is_exportable());
    /// assert!(matches!(p.alloc(4096), Err(AllocError::Exportable)));
    /// let c = p.alloc_shared(&AllocRequest::new(4096)).unwrap();
    /// // SAFETY: the chunk's memory, written through a raw pointer.
    /// unsafe { c.as_ptr().as_ptr().write_volatile(1) };
    /// ```
    pub fn exportable(mut self) -> Self {
        self.exportable = true;
        self
    }

    /// Builds the provider: detects the IOVA mode and maps `min_keep` bytes.
    ///
    /// ```
    /// use pktmem_hugemem::{BuildError, Provider};
    /// let p = Provider::builder().quiet(true).build().unwrap(); // hugepages if reserved
    /// assert!(p.alloc(1).is_ok());
    /// assert!(matches!(Provider::builder().heap_backed(0).build(), Err(BuildError::ZeroHeap)));
    /// ```
    pub fn build(self) -> Result<Provider, BuildError> {
        // std even under loom: a static counter whose value only needs to be unique.
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        for ps in [PageSize::Small4K, PageSize::Huge2M, PageSize::Huge1G] {
            if self.va_reserve[size_index(ps)] == 0 {
                return Err(BuildError::ZeroVaReserve {
                    page_size: ps.bytes(),
                });
            }
        }
        if let PageSource::Heap(0) = self.source {
            return Err(BuildError::ZeroHeap);
        }
        let iova_mode = match (self.iova_mode, &self.source) {
            (Some(m), _) => m,
            (None, PageSource::Heap(_)) => IovaMode::Va,
            (None, _) => IovaMode::detect(),
        };
        let min_keep = self.min_keep;
        // Relaxed: only uniqueness matters (no other memory is published with it).
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let p = Provider {
            inner: Arc::new_cyclic(|me| Inner::new(id, self, iova_mode, None, me.clone())),
        };
        if min_keep > 0 {
            // Mapped now, freed at once: the free keeps it (mapped <= min_keep).
            let c = p
                .alloc_chunk(&crate::AllocRequest::new(min_keep))
                .map_err(|source| BuildError::MinKeep { min_keep, source })?;
            drop(c);
        }
        Ok(p)
    }
}
