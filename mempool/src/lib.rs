//! pktmem-mempool: pools of fixed-size objects, populated from memory chunks
//! that need not be contiguous, each object knowing its IOVA, served by a
//! backend (a lock-free ring by default) behind per-core caches.
//!
//! # What to reach for first
//!
//! | type | what it is |
//! |---|---|
//! | [`Mempool::builder`] → [`MempoolBuilder`] | configure a pool, then `build_on(&provider)`, `build_anonymous()` or `build_empty()` |
//! | [`Mempool`] | the pool: a cheap-to-clone shared handle |
//! | [`Cache`] | a per-core cache handle: the fast path of [`Mempool::get`] / [`Mempool::put`] |
//! | [`Obj`] | a pool object: one `Copy + Send + Sync` handle used by get/put, caches, backends and rings; out of its pool, it keeps the pool alive |
//! | [`PoolRef`] | an object's pool without a count ([`Obj::owner_ref`]): the way back for a put, even the one that frees the pool |
//! | [`flush_thread_caches`] | give back the calling thread's default caches of every pool (they keep pools alive) |
//! | [`TypedPool`], [`PoolBox`] | the safe typed layer: owned values that go back to their pool on drop |
//! | [`MempoolError`] | every error of the crate, for `?` ([`BuildError`], [`CreateError`], [`PopulateError`], [`GetError`], ...) |
//! | [`on_event`] → [`EventGuard`] | pool ready/destroyed callbacks, unregistered when the guard drops |
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
//!  │ backend: Ring<Obj> (MP/MC, or SP/SC) │ Stack │ LfStack │ Backend│
//!  └─────────────────────────────────────────────────────────────────┘
//!       ▲ Objs, placed at population
//!  ┌────┴──────────────┐ ┌───────────────┐ ┌─────────────────────┐
//!  │ chunk 0 (IOVA run)│ │ chunk 1       │ │ chunk 2 ...         │
//!  │ [hdr|obj][hdr|obj]│ │ [hdr|obj] ... │ │                     │
//!  └───────────────────┘ └───────────────┘ └─────────────────────┘
//! ```
//!
//! **Creation makes the memory visible.** [`Mempool::builder`]`(n,
//! elt_size)` configures the pool (name, cache size, alignment, backend,
//! [`obj_init`](MempoolBuilder::obj_init), a typed
//! [`attachment`](MempoolBuilder::attachment) for the pool's users, read back
//! with [`Mempool::attachment`]); the last call says where the
//! objects live: [`build_on`](MempoolBuilder::build_on) a hugepage
//! [`Provider`] (it takes whatever contiguity the provider can give,
//! halving its request on failure down to one object, and keeps the pool's
//! ring in the provider's memory too, as DPDK puts a pool's ring in a
//! memzone: [`Mempool::ring_placement`]), [`build_anonymous`](MempoolBuilder::build_anonymous)
//! (small pages, no IOVA), or [`build_empty`](MempoolBuilder::build_empty)
//! and then **populate** from chunks: IOVA-contiguous memory
//! ([`Mempool::populate_iova`]), virtual memory whose pages are looked up
//! one by one and merged where IOVA-consecutive ([`Mempool::populate_virt`]),
//! anonymous memory ([`Mempool::populate_anonymous`]), external memory
//! registered with the provider ([`Mempool::populate_external`]: the pool
//! holds a lease on the registration, so the memory cannot be unregistered
//! while the pool lives), or a provider ([`Mempool::populate_from_provider`]).
//! The `obj_init` callback runs on every object as it is placed, whichever
//! way.
//!
//! **Big pools are populated on several cores.** The kernel zeroes each
//! fresh hugepage as it is first mapped, which is most of the cost of
//! creating a pool of hundreds of megabytes; population splits the memory
//! into page-aligned parts, one per thread
//! ([`populate_threads`](MempoolBuilder::populate_threads); by default the
//! cores, up to 8, for 16 MiB or more): the provider's threads fault the
//! pages in ([`AllocRequest::fault_threads`](pktmem_hugemem::AllocRequest::fault_threads)),
//! then the pool's threads write the headers and run an initialiser given
//! as [`obj_init_shared`](MempoolBuilder::obj_init_shared) (an `FnMut`
//! [`obj_init`](MempoolBuilder::obj_init) runs on one thread, in order).
//! The objects enter the backend in address order. A pool that fills most of
//! one or more 1 GiB pages asks for those when the system has them free
//! ([`MempoolBuilder::page_size`] chooses explicitly). Dropping the pool
//! gives each chunk back in one piece (one unmap and hole punch per chunk).
//!
//! Each object has a [header](calc_obj_size) before it with its pool and its
//! IOVA; an object never straddles a page boundary unless its chunk is
//! IOVA-contiguous or the pool was built with
//! [`no_iova_contig`](MempoolBuilder::no_iova_contig). The pool never writes
//! into object bodies (`obj_init` does, if you give one).
//!
//! **Serving**: through an explicit [`Cache`] — [`Mempool::get`],
//! [`Mempool::get_bulk`] (into `&mut [MaybeUninit<Obj>]`),
//! [`Mempool::get_array`], and the `unsafe` [`Mempool::put`] /
//! [`Mempool::put_bulk`]. A cache is an owned, `Send`, `!Sync` handle: its hit
//! path is a bounds check and a copy of handles. Code without a cache handle
//! uses the `*_default` family ([`Mempool::get_default`],
//! [`Mempool::get_bulk_default`], [`Mempool::put_default`],
//! [`Mempool::put_bulk_default`]): through the calling thread's default cache
//! of the pool (a per-pool slot claimed by the thread), else the backend.
//! Bulk gets are all-or-nothing; puts of the pool's own objects never fail.
//!
//! **Backends** ([`BackendKind`]): the ring (FIFO, the default); a stack
//! behind a lock ([`StackBackend`]) that hands back the most recently freed,
//! cache-warm objects first; the same LIFO order without a lock
//! ([`LfStackBackend`]: two Treiber stacks of nodes with tagged heads, counts
//! reserved before any unlink so bulk calls are all-or-nothing); or a user
//! [`Backend`].
//!
//! **`AddressSanitizer`**: built with `--cfg pktmem_asan` (and
//! `-Zsanitizer=address`, as `.ci/sanitizers` does), the bodies of free
//! objects (in the backend or any cache, or never handed out) are poisoned,
//! so a use after put is reported; headers stay readable. The pool unpoisons
//! its chunks before giving them back. Without the cfg this costs nothing
//! (see `pktmem_hugemem::asan`).
//!
//! **Lifetime: objects out keep the pool.** The pool's memory (chunks,
//! backend, default-cache slots, [attachment](MempoolBuilder::attachment))
//! lives while any handle ([`Mempool`], [`Cache`], [`TypedPool`]) exists
//! *or* any object is out of the backend: held by a caller, or sitting in
//! a cache. One reference count in the pool holds handles plus objects out;
//! objects are counted where they cross the backend boundary, per batch (a
//! cache refill taking `k`: `+k` in one atomic add; a flush of `k`: `-k`
//! once the put is done; a get or put without a cache: `±n`), never on a
//! cache hit, so the hit paths have no atomic read-modify-write. An object
//! finds its pool again without a handle or a count: [`Obj::owner_ref`]
//! (or [`PoolRef::from_ptr`] of a stored [`Mempool::as_ptr`]) gives a
//! [`PoolRef`], and a put through it is sound even when it is the put that
//! frees the pool: every put path's last access to the pool is the count's
//! release (a Release decrement; whoever reaches 0 fences with Acquire and
//! frees, as `Arc` does). So objects may be kept, sent to other threads and
//! put back after every handle is gone; the last one back frees the pool,
//! on whichever thread. Default caches sit inside the pool, so objects in
//! them would keep it forever: dropping the last handle flushes the
//! dropping thread's default cache and gives its slot back, and no slot is
//! claimed once no handle is left (objects returned later go to the
//! backend). Objects left in *other* live threads' default caches keep the
//! memory until those threads exit (their exit flushes them) or call
//! [`flush_thread_caches`]. An object never put back keeps its pool
//! forever, like a leaked `Arc`. Memory lent to a pool (`populate_iova`,
//! `populate_virt`, ...) must outlive the pool's memory in this sense:
//! until the last object is back, not only the last handle.
//!
//! **Safety model**: the raw API works on [`Obj`] handles. Getting is safe;
//! putting is `unsafe` (the caller vouches the objects are this pool's, each
//! given back once). The checked questions go through the pool
//! ([`Mempool::owns`], [`Mempool::iova`]); the fast ones read the object's
//! header and are `unsafe` ([`Obj::iova_unchecked`], [`Obj::owner_ref`],
//! [`Obj::owner_unchecked`]), valid while the object is out of its pool.
//! The typed layer ([`TypedPool`], [`PoolBox`]) is fully safe: each box's
//! object keeps its pool alive (the box holds no counted handle) and goes
//! back on drop, and a `PoolBox<T: Send>` can cross threads: a
//! `pktmem_ring::Ring<PoolBox<T>>` carries it to another core in safe code,
//! and whatever is left in the ring goes back when the ring drops. Raw
//! objects travel the same way, as a `Ring<Obj>`.
//!
//! ```
//! use pktmem_mempool::{Mempool, MempoolError, Provider, TypedPool};
//! use std::mem::MaybeUninit;
//!
//! fn main() -> Result<(), MempoolError> {
//!     let provider = Provider::builder().quiet(true).build().unwrap();
//!     let pool = Mempool::builder(8191, 64).name("doc").cache(256).build_on(&provider)?;
//!     let mut cache = pool.cache();
//!     let mut buf = [MaybeUninit::uninit(); 32];
//!     let objs = pool.get_bulk(&mut cache, &mut buf)?;
//!     assert!(objs.iter().all(|&o| pool.owns(o)));
//!     // SAFETY: these are this pool's objects, returned once.
//!     unsafe { pool.put_bulk(&mut cache, objs) };
//!     assert_eq!(pool.avail_count(), 8191);
//!
//!     let typed = TypedPool::<u64>::builder(16).build_on(&provider)?;
//!     let b = typed.alloc(7).unwrap();
//!     assert_eq!(*b, 7);
//!     Ok(())
//! }
//! ```

mod backend;
mod builder;
mod cache;
mod default_cache;
mod error;
mod events;
mod introspect;
mod layout;
mod lf_stack;
mod obj;
mod os;
mod pool;
mod populate;
mod ring_backend;
mod serve;
#[cfg(feature = "stats")]
mod stats;
mod sync;
mod typed;

pub use backend::{Backend, BackendEmpty, BackendFull, BackendKind, StackBackend};
pub use builder::MempoolBuilder;
pub use cache::{Cache, CACHE_MAX_SIZE};
pub use default_cache::flush_thread_caches;
pub use error::{
    AuditError, BuildError, CacheError, CreateError, GetError, MempoolError, PopulateError,
};
pub use events::{on_event, EventGuard, EventInfo, MempoolEvent};
pub use introspect::{AuditReport, ChunkInfo, ObjInfo, PoolCounts};
pub use layout::{
    calc_mem_size, calc_obj_size, ObjSize, CACHE_LINE, MAX_ALIGN, MIN_ALIGN, OBJ_HEADER_SIZE,
};
pub use lf_stack::{LfStackBackend, LfStackError};
pub use obj::Obj;
pub use pool::{ChunkFree, Mempool, PoolRef};
pub use ring_backend::RingPlacement;
#[cfg(feature = "stats")]
pub use stats::PoolStats;
pub use typed::{PoolBox, TypedPool, TypedPoolBuilder};

pub use pktmem_hugemem::{Iova, PageSize, Provider};
