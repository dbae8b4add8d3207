//! pktmem-ring: a fixed-capacity lock-free ring of `Copy` elements (usually
//! pointers), for passing buffers between cores.
//!
//! # Model
//!
//! A power-of-two array of slots and two sides, each with a *head* (where
//! the next claim starts) and a *tail* (everything before it is published to
//! the other side). Indices are free-running `u32`s; a slot is
//! `index & (slots - 1)`.
//!
//! ```text
//!              cons.tail   cons.head          prod.tail   prod.head
//!                  │           │                  │           │
//!   ... free ...   ▼ consumers ▼  ready to read    ▼ producers ▼   ... free ...
//!   ─────────────┬───────────┬──────────────────┬───────────┬──────────────
//!                │ being read│   published       │ being     │
//!                │           │   elements        │ written   │
//!   ─────────────┴───────────┴──────────────────┴───────────┴──────────────
//! ```
//!
//! An operation *claims* slots by moving its side's head, copies, then
//! *publishes* them by moving its side's tail (with `Release`); the other
//! side reads that tail (with `Acquire`) to learn what it may touch. The two
//! sides live on separate cache lines, and within a side the tail (read by
//! the other side) is on a line of its own, away from the head that this
//! side's CAS works on.
//!
//! How threads on one side take turns:
//!
//! | end | type | claim | notes |
//! |---|---|---|---|
//! | multi-thread ([`SyncMode::Multi`]) | [`Ring`], [`SharedProducer`], [`SharedConsumer`] | CAS on the head; publish waits for earlier claimers, then stores the tail | DPDK's MP/MC |
//! | head-tail sync ([`SyncMode::Hts`]) | same | one thread at a time owns the side (head and tail in one 64-bit word) | allows peek and zero-copy |
//! | relaxed tail sync ([`SyncMode::Rts`]) | same | CAS on a counted head; the last thread to finish moves the tail | no waiting for earlier claimers: for more threads than cores |
//! | single thread | [`Producer`], [`Consumer`] | no atomic RMW; the other side's tail is cached and re-read only when the cache says full/empty | `Send`, not `Sync`, not `Clone`: single-ness is checked by the compiler |
//!
//! Operations, on every end: `enqueue` / `dequeue` (one element), `*_bulk`
//! (all or nothing, typed [`RingFull`] / [`RingEmpty`] errors), `*_burst` (as
//! many as possible, returns the count), counts, and for single and HTS ends
//! zero-copy `enqueue_start` / `dequeue_start` guards ([`WriteGuard`],
//! [`ReadGuard`]; the latter is also the peek API).
//!
//! Capacity: a ring built with capacity `N` (a power of two) holds `N - 1`
//! elements, as DPDK's rings do; with [`RingBuilder::exact_size`] it holds
//! exactly `N` for any `N`.
//!
//! RTS sides bound how far their head may run ahead of their tail
//! ([`RingBuilder::producer_max_distance`], DPDK's `htd_max`; an eighth of the
//! capacity by default): a claim waits while more than that many slots are
//! claimed and not yet published.
//!
//! # Where the slots live
//!
//! The slot array ([`RingBuilder::memory_layout`]: `slots * size_of::<T>()`
//! bytes, aligned to 64 or more) lives in one of three places:
//!
//! | built with | memory | freed |
//! |---|---|---|
//! | [`RingBuilder::build`] | the heap (a [`HeapMemory`]) | with the ring |
//! | [`RingBuilder::build_on`] | any [`RingMemory`] owner: hugepage chunks (pktmem-mempool puts its rings in provider memory this way), a `memmap2::MmapMut` (feature `memmap2`), a [`HeapMemory`] | the owner is dropped with the ring, after the slots |
//! | `unsafe` [`RingBuilder::build_in`] | a raw pointer and length | by the caller, after the ring is gone (the ring never frees it) |
//!
//! `build_on` is safe: it checks the size and alignment and, when they do
//! not fit, hands the memory back inside the error ([`RejectedMemory`]).
//! [`Ring::memory_range`] says where a ring's slots are.
//!
//! ```
//! use pktmem_ring::{Ring, SyncMode};
//!
//! // A shared MP/MC ring.
//! let ring = Ring::<u64>::new(4096).unwrap();
//! ring.enqueue_bulk(&[1, 2, 3]).unwrap();
//! let mut out = [0; 3];
//! ring.dequeue_bulk(&mut out).unwrap();
//! assert_eq!(out, [1, 2, 3]);
//!
//! // A single-producer / single-consumer pair, exact size.
//! let (p, c) = Ring::<u64>::builder(100).exact_size(true).build_spsc().unwrap();
//! assert_eq!(p.enqueue_burst(&[7; 150]), 100);
//! assert!(c.is_full());
//! ```

mod error;
mod guard;
mod handles;
mod mem;
mod ops;
mod ring;
mod sync;

pub use error::{End, NotHts, RejectedMemory, RingEmpty, RingError, RingFull};
pub use guard::{ReadGuard, WriteGuard};
pub use handles::{Consumer, Producer, SharedConsumer, SharedProducer};
pub use mem::{HeapMemory, RingMemory};
pub use ring::{Ring, RingBuilder, SyncMode, MAX_CAPACITY};
