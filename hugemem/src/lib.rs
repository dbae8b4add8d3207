//! pktmem-hugemem: the hugepage memory provider.
//!
//! Pages, not segments: memory comes as pages (2 MiB or 1 GiB hugepages, or
//! 4 KiB small pages as the fallback) mapped on demand into VA space that
//! was reserved up front, one record per page, translation by table.
//!
//! ```text
//!  Provider (Arc handle, Clone + Send + Sync)
//!  │
//!  ├─ list 2 MiB ── memfd(MFD_HUGETLB|2M), one VA reservation (PROT_NONE, 64 GiB default)
//!  │    VA:   base ┌────┬────┬────┬────┬────┬────┬───────────────…┐
//!  │               │used│used│ -- │kept│used│ -- │  reserved      │
//!  │               └────┴────┴────┴────┴────┴────┴───────────────…┘
//!  │    fd offset = VA offset (so another process can map the same layout)
//!  │    IOVA[]:    [pa0][pa1][ - ][pa3][pa4][ - ] ...   one AtomicU64 per page
//!  │
//!  ├─ list 1 GiB ── created on first 1 GiB request
//!  ├─ list 4 KiB ── the fallback (pages locked), created when hugepages run out
//!  └─ external ranges ── memory registered by the user (ExternalMem), with or without IOVAs
//!
//!  virt2iova(addr) -> Option<Iova>: for each list (1–3 usually):
//!      off = addr - base; if off < len { IOVA[off >> shift] + (off & mask) }
//! ```
//!
//! # What to reach for first
//!
//! | you want | use |
//! |---|---|
//! | a provider | [`Provider::builder`]`()...`[`build`](ProviderBuilder::build)`()` (or [`Provider::global`], the process-wide one) |
//! | memory another process may map and write (see `share`) | [`ProviderBuilder::exportable`], then [`Provider::alloc_shared`] → [`SharedChunk`] (raw pointers, no slices) |
//! | memory | [`Provider::alloc`] / [`alloc_with`](Provider::alloc_with)([`AllocRequest`]) → [`Chunk`], freed on drop |
//! | its IOVAs | [`Chunk::iova`], [`Chunk::segments`] ([`IovaRun`]s), [`Provider::virt2iova`] (`Option<Iova>`) |
//! | small blocks (rings, headers) | [`Provider::small_heap`] → [`SmallHeap::alloc`] → [`SmallBlock`] |
//! | memory found by name | [`Provider::zone_reserve`] → [`Zone`] (a named chunk), [`Provider::zone_lookup`] |
//! | to be told of mappings | [`Provider::register_event_callback`] → [`EventGuard`] |
//! | to keep freed pages mapped until someone outside lets go (a peer process, a device) | [`Provider::register_release_gate`] → [`ReleaseGateGuard`]; the gate keeps [`ReleaseHold`]s |
//! | to cap growth | [`ProviderBuilder::limit`], [`Provider::register_validator`] → [`ValidatorGuard`] |
//! | device memory translated | [`Provider::register_external`] (or [`register_external_owned`](Provider::register_external_owned)) → [`ExternalMem`]; users hold [`ExternalLease`]s |
//! | chunks carved from device memory | [`Provider::create_heap`] → [`ExternalHeap`], fed by [`add_owned`](ExternalHeap::add_owned) (or the unsafe [`add_memory`](ExternalHeap::add_memory)) |
//! | a device (IOMMU, VFIO container) to reach the memory | [`Provider::register_dma_mapper`]([`DmaMapper`]) → [`DmaMapperGuard`] |
//! | memory shared with another process (a separate binary), translated both ways | [`share::Exporter`] (exporter side), [`share::Attachment`] (peer side); [`share`] explains the model |
//! | an error type for `?` | [`HugememError`] (each call returns its own: [`AllocError`], ...) |
//!
//! # The model
//!
//! * **Allocation** ([`Provider::alloc`], [`Provider::alloc_with`]) finds the
//!   first run of free page slots in the list (first fit, honouring
//!   alignment), maps the backing with `MAP_FIXED` (the kernel reserves the
//!   hugepages there: none left is an error, never a SIGBUS later), faults
//!   each page in with `MADV_POPULATE_WRITE` through its last 4 KiB (so the
//!   kernel zeroes it front to back, the fast way), from several threads
//!   when asked ([`AllocRequest::fault_threads`]); kernels before 5.14
//!   `fallocate` the backing and map it with `MAP_POPULATE` instead. It
//!   reads each page's IOVA once from `/proc/self/pagemap`, and returns a
//!   [`Chunk`]: an owned, VA-contiguous run of pages that need not be
//!   IOVA-contiguous ([`Chunk::segments`] lists the IOVA runs). Ask for
//!   [`AllocRequest::iova_contiguous`] and get it or a typed error
//!   ([`AllocError::NotIovaContiguous`], or [`AllocError::NoIova`] for memory
//!   that has no IOVA at all).
//! * **Free** (dropping the chunk) fires Free events, puts the VA back to
//!   `PROT_NONE` and punches a hole in the backing, so the pages go back to
//!   the system, except what the configured minimum keeps.
//! * **Fallback**: when a hugepage size has no pages the provider tries the
//!   next preferred size, then 4 KiB pages (unless forbidden), saying why
//!   once on stderr and in [`Provider::info`].
//! * **Ownership instead of registries**: whatever is registered comes back
//!   as a guard that undoes it on drop: [`EventGuard`], [`ValidatorGuard`],
//!   [`ExternalMem`], [`Zone`], [`ExternalHeap`], [`DmaMapperGuard`]. Names are labels for humans
//!   (a zone's name also finds it); `keep()` keeps a registration for the
//!   provider's life.
//! * **External memory** ([`Provider::register_external`]) gets the same
//!   records, translation and events. Its users hold [`ExternalLease`]s (a
//!   mempool populated from it takes one): while any lease or chunk uses the
//!   range, [`ExternalMem::unregister`] is refused with
//!   [`UnregisterError::InUse`] naming the users, and dropping the
//!   [`ExternalMem`] defers the unregistration to the last of them.
//!   [`ExternalHeap`]s of it serve chunks and zones ([`AllocRequest::heap`]).
//! * **Small objects**: [`SmallHeap`] carves small allocations (up to half a
//!   page) out of pages; [`Provider::small_heap`] is the one heap every user
//!   of a provider shares (mempool rings live there), [`SmallHeap::new`] a
//!   private one.
//! * **Events** ([`Provider::register_event_callback`]): Alloc after a range
//!   is mapped, Free before it is unmapped, external memory included. They
//!   fire with no provider lock held (pages being given back sit in a
//!   `Freeing` state meanwhile), so a callback may use the provider.
//! * **Devices** ([`Provider::register_dma_mapper`]): a [`DmaMapper`] (an
//!   IOMMU container, a device's translation table) is given every range
//!   the provider maps already (replay), then every range mapped or
//!   unmapped later, external memory included, as [`DmaRange`]s (VA, IOVA
//!   or none, length); each range is unmapped exactly as it was mapped, and
//!   dropping the [`DmaMapperGuard`] unmaps everything the mapper still
//!   holds. Mappers run under the provider lock: a range is mapped before
//!   its memory is handed out and unmapped after its last user has let go,
//!   before the pages go back; a mapper's refusal fails the allocation
//!   ([`AllocError::DmaMap`]) with the pages rolled back.
//! * **Release gates** ([`Provider::register_release_gate`]): every run of
//!   own pages about to go back to the system is offered to the gates
//!   (after its Free event); a gate that keeps the [`ReleaseHold`] keeps the
//!   pages mapped and out of use until the last hold drops. Sharing uses it
//!   so that no page is punched while another process still maps it.
//! * **Limits**: `min_keep` bytes are mapped at build and never given back;
//!   `limit` caps mapped bytes; validators may refuse growth past a threshold.
//! * **Sharing groundwork**: fd-backed lists map file offset = VA offset, and
//!   [`Provider::regions`] exports (fd, offset, VA, length, page size, IOVA)
//!   for another process to map the same layout.
//! * **NUMA**: requests with no node get pages from the kernel's default
//!   policy; their records carry node 0 on single-node machines and `None`
//!   (unknown) otherwise. A request naming a [`Node`] that does not exist is
//!   refused; a request naming a node gets pages from that node's own list,
//!   allocated under a memory policy bound to it ([`node_of`] tells where a
//!   page landed).
//! * **No sentinels**: a missing IOVA is `None` ([`Iova::BAD`] is only the
//!   raw form for 64-bit descriptor or header fields), no node is `None`.
//!
//! ```
//! use pktmem_hugemem::{AllocRequest, PageSize, Provider};
//! let p = Provider::builder().build()?;
//! let mut c = p.alloc_with(&AllocRequest::new(3 << 20).page_size(PageSize::Huge2M))?;
//! c.as_mut_slice().fill(0xab);
//! for page in c.pages() {
//!     assert_eq!(p.virt2iova(page.va as *const u8), page.iova);
//! }
//! let _log = p.register_event_callback(|e| println!("{e:?}"));
//! let zone = p.zone_reserve("config", &AllocRequest::new(4096))?;
//! assert_eq!(p.zone_lookup("config").unwrap().va, zone.as_ptr().as_ptr() as usize);
//! println!("{}", p.dump());
//! # Ok::<(), pktmem_hugemem::HugememError>(())
//! ```
//!
//! Locking: allocation and free take one mutex around the list bookkeeping;
//! translation ([`Provider::virt2iova`]) takes none: it scans a fixed array
//! of list descriptors (usually 1–3) and loads one per-page IOVA entry.
//! Under `cfg(loom)` the crate's atomics and mutexes are loom's
//! (`tests/loom_hugemem.rs`). Under `cfg(pktmem_asan)` free pages and free
//! [`SmallHeap`] blocks are poisoned for the address sanitizer ([`asan`]).

pub mod asan;
mod chunk;
mod error;
mod info;
mod iova;
mod node;
mod provider;
pub mod share;
mod small;
mod sync;
mod sys;
mod table;

pub use chunk::{AllocRequest, Chunk, IovaRun, PageInfo, SharedChunk};
pub use error::{
    AllocError, BuildError, HugememError, LeaseError, RegisterError, TranslateError,
    UnregisterError, ZoneError,
};
pub use info::{
    check_pool_access, inventory, node_inventory, probe_iova, process_hugetlb_bytes,
    HugepageInventory, IovaReason, NodeHugepages, PoolAccessError,
};
pub use iova::{virt2phys, Iova, IovaMode, PageSize};
pub use node::Node;
pub use provider::{
    DmaMapError, DmaMapper, DmaMapperGuard, DmaRange, DmaRegisterError, EventGuard, EventKind,
    ExternalHeap, ExternalId, ExternalLease, ExternalMem, GrowthQuery, ListInfo, MemEvent,
    PageSource, Provider, ProviderBuilder, ProviderInfo, Region, ReleaseGateGuard, ReleaseHold,
    VaRun, ValidatorGuard, WeakProvider, Zone, ZoneInfo,
};
pub use small::{SmallBlock, SmallHeap};
pub use sys::node_of;
