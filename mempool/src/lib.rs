//! pktmem-mempool: pools of fixed-size objects, populated from memory chunks
//! that need not be contiguous, each object knowing its IOVA, served by a
//! backend (a lock-free ring by default) behind per-core caches.
//!
//! # Model
//!
//! ```text
//!   thread A            thread B             thread C (no cache handle)
//!  ┌─────────┐        ┌─────────┐          ┌──────────────────────────┐
//!  │ Cache   │        │ Cache   │          │ default cache slot       │
//!  │ (owned) │        │ (owned) │          │ (claimed per thread)     │
//!  └────┬────┘        └────┬────┘          └────────────┬─────────────┘
//!       │ refill size/2 / flush oldest size/2, in bulk  │
//!       ▼                  ▼                            ▼
//!  ┌─────────────────────────────────────────────────────────────────┐
//!  │ backend: Ring (MP/MC, or SP/SC) │ Stack │ LfStack │ user Backend│
//!  └─────────────────────────────────────────────────────────────────┘
//!       ▲ object pointers, placed at population
//!  ┌────┴──────────────┐ ┌───────────────┐ ┌─────────────────────┐
//!  │ chunk 0 (IOVA run)│ │ chunk 1       │ │ chunk 2 ...         │
//!  │ [hdr|obj][hdr|obj]│ │ [hdr|obj] ... │ │                     │
//!  └───────────────────┘ └───────────────┘ └─────────────────────┘
//! ```
//!
//! A pool is **created empty** ([`MempoolBuilder::create_empty`]) and
//! **populated** from chunks: IOVA-contiguous memory
//! ([`Mempool::populate_iova`]), virtual memory whose pages are looked up one
//! by one and merged where IOVA-consecutive ([`Mempool::populate_virt`]),
//! anonymous memory ([`Mempool::populate_anonymous`]), external memory
//! registered with the provider ([`Mempool::populate_external`]), or the
//! hugepage provider ([`Mempool::populate_from_provider`], the default used by
//! [`MempoolBuilder::create`]: it takes whatever contiguity the provider can
//! give, halving its request on failure down to one object). A pool created
//! from a provider also keeps its ring's slots in the provider's memory, as
//! DPDK puts a pool's ring in a memzone ([`Mempool::ring_placement`]).
//! Each object has a [header](calc_obj_size) before it with its pool and its
//! IOVA; an object never straddles a page boundary unless its chunk is
//! IOVA-contiguous or the pool has [`PoolFlags::NO_IOVA_CONTIG`]. The pool
//! never writes into object bodies.
//!
//! **Serving**: [`Mempool::get_bulk`] is all-or-nothing, [`Mempool::put_bulk`]
//! of the pool's own objects never fails. Both go through a [`Cache`] when
//! given one (an owned, `Send`, `!Sync` handle: its hit path is a bounds check
//! and a copy of pointers), else through the calling thread's default cache
//! (a per-pool slot claimed by the thread; see the `default_cache` notes on
//! [`Mempool::get_bulk`]), falling back to the backend.
//!
//! **Backends** ([`BackendKind`]): the ring (FIFO, the default); a stack
//! behind a lock ([`StackBackend`]) that hands back the most recently freed,
//! cache-warm objects first; the same LIFO order without a lock
//! ([`LfStackBackend`]: two Treiber stacks of nodes with tagged heads, counts
//! reserved before any unlink so bulk calls are all-or-nothing); or a user
//! [`Backend`].
//!
//! **AddressSanitizer**: built with `--cfg pktmem_asan` (and
//! `-Zsanitizer=address`, as `.ci/sanitizers` does), the bodies of free
//! objects (in the backend or any cache, or never handed out) are poisoned,
//! so a use after put is reported; headers stay readable. The pool unpoisons
//! its chunks before giving them back. Without the cfg this costs nothing
//! (see `pktmem_hugemem::asan`).
//!
//! **Safety model**: the raw API works on object pointers (`NonNull<u8>`).
//! Getting is safe; putting is `unsafe` (the caller vouches the pointers are
//! this pool's objects, each given back once). Raw pointers do not keep the
//! pool alive: dereferencing them is the caller's `unsafe`. The typed layer
//! ([`TypedPool`], [`PoolBox`]) is fully safe: each box keeps its pool alive
//! and returns its object on drop.
//!
//! ```
//! use pktmem_mempool::{Mempool, TypedPool};
//! use std::ptr::NonNull;
//!
//! let pool = Mempool::builder("doc", 8191, 64).cache_size(256).create_anonymous().unwrap();
//! let mut cache = pool.cache();
//! let mut objs = [NonNull::dangling(); 32];
//! pool.get_bulk(Some(&mut cache), &mut objs).unwrap();
//! // SAFETY: these are this pool's objects, returned once.
//! unsafe { pool.put_bulk(Some(&mut cache), &objs) };
//! assert_eq!(pool.avail_count(), 8191);
//!
//! let typed = TypedPool::<u64>::new("doc-typed", 16, 0).unwrap();
//! let b = typed.alloc(7).unwrap();
//! assert_eq!(*b, 7);
//! ```

mod backend;
mod cache;
mod default_cache;
mod error;
mod events;
mod layout;
mod lf_stack;
mod os;
mod pool;
mod provider_populate;
mod ring_backend;
#[cfg(feature = "stats")]
mod stats;
mod sync;
mod typed;

pub use backend::{Backend, BackendEmpty, BackendFull, BackendKind, StackBackend};
pub use cache::{Cache, CACHE_MAX_SIZE};
pub use error::{AuditError, EventError, GetError, MempoolError, PopulateError};
pub use events::{
    register_event_callback, unregister_event_callback, EventFn, EventInfo, MempoolEvent,
};
pub use layout::{calc_mem_size, calc_obj_size, ObjSize, CACHE_LINE, OBJ_HEADER_SIZE};
pub use lf_stack::{LfStackBackend, LfStackError};
pub use pool::{AuditReport, ChunkFree, ChunkInfo, Mempool, MempoolBuilder, ObjInfo, PoolFlags};
pub use ring_backend::RingPlacement;
#[cfg(feature = "stats")]
pub use stats::PoolStats;
pub use typed::{PoolBox, TypedPool};

pub use pktmem_hugemem::{Iova, Provider};
