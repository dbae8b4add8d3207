//! pktmem-ring: a fixed-capacity lock-free ring of owned values (pool
//! objects, packet buffers, pointers, any `T: Send`), for passing them
//! between cores.
//!
//! # What to reach for first
//!
//! | you want | use |
//! |---|---|
//! | a queue shared by many threads, like crossbeam's `ArrayQueue` | [`Ring::new`]`(n)` (holds exactly `n`), operations on `&Ring` |
//! | one producer thread and one consumer thread, fastest | [`Ring::builder`]`(n).producer(`[`Single`]`).consumer(`[`Single`]`).build()?.`[`split`](Ring::split)`()` |
//! | ends to hand to threads, typed by mode | [`Producer<T, M>`](Producer), [`Consumer<T, M>`](Consumer) from [`Ring::split`] |
//! | to read or write in place (peek, zero-copy) | an end of mode [`Single`] or [`Hts`]: `enqueue_start` / `dequeue_start` give a [`WriteGuard`] / [`ReadGuard`] |
//! | the slots in hugepages, a memory map, your memory | [`RingBuilder::build_on`] with a [`RingMemory`] |
//! | `?` over every ring error | [`RingError`] |
//!
//! # Model
//!
//! An array of slots (a power of two of them) and two sides, each with a
//! *head* (where the next claim starts) and a *tail* (everything before it
//! is published to the other side). Indices are free-running `u32`s; a slot
//! is `index & (slots - 1)`. A ring holds exactly the capacity it was built
//! with (`Ring::new(1000)` holds 1000); [`RingBuilder::dpdk_sizing`] asks
//! for DPDK's power-of-two-minus-one instead.
//!
//! ```text
//!              cons.tail   cons.head          prod.tail   prod.head
//!                  │           │                  │           │
//!   ... free ...   ▼ consumers ▼  ready to read    ▼ producers ▼   ... free ...
//!   ─────────────┬───────────┬──────────────────┬───────────┬──────────────
//!                │ being read│   published       │ being     │
//!                │           │   values          │ written   │
//!   ─────────────┴───────────┴──────────────────┴───────────┴──────────────
//! ```
//!
//! An operation *claims* slots by moving its side's head, moves values in
//! or out, then *publishes* them by moving its side's tail (with `Release`);
//! the other side reads that tail (with `Acquire`) to learn what it may
//! touch. The two sides live on separate cache lines, and within a side the
//! tail (read by the other side) is on a line of its own, away from the head
//! that this side's CAS works on.
//!
//! Values are owned: an enqueue moves the value in (a full ring hands it
//! back), a dequeue moves it out, and the values still in the ring when it
//! drops are dropped with it, once. `Copy` values also have slice forms
//! (`enqueue_bulk(&[T])`, `dequeue_bulk(&mut [T])`) that copy.
//!
//! How threads on one side take turns is the side's *mode*, a type
//! parameter of the ring and of its ends (each side its own):
//!
//! | mode | claim | ends | in place |
//! |---|---|---|---|
//! | [`Multi`] (default) | CAS on the head; room from a copy of the other side's tail shared by this side's threads, re-read only when it shows too little; publish waits for earlier claimers, then stores the tail (DPDK's MP/MC) | `Clone + Send + Sync` | no |
//! | [`Hts`] | one thread at a time owns the side (head and tail in one 64-bit word; DPDK's HTS) | `Clone + Send + Sync` | peek, zero-copy |
//! | [`Rts`] | CAS on a counted head; the last thread to finish moves the tail (DPDK's RTS): for more threads than cores | `Clone + Send + Sync` | no |
//! | [`Single`] | no atomic RMW; the other side's tail is cached and re-read only when the cache says full/empty | `Send`, not `Sync`, not `Clone`: single-ness is checked by the compiler | peek, zero-copy |
//!
//! Operations, on every end (and on a [`Ring`] whose side is of a
//! [`SharedMode`]): `enqueue` / `dequeue` (one value), `*_bulk` (all or
//! nothing, typed [`RingFull`] / [`RingEmpty`] errors), `*_burst` (as many
//! as possible, returns the count), `enqueue_*_from` a [`Source`] (`Vec`,
//! `ArrayVec`) and `dequeue_burst_into` a [`Sink`], `dequeue_*_uninit` into
//! `&mut [MaybeUninit<T>]`, counts; and for [`InPlaceMode`] ends,
//! `enqueue_start` / `dequeue_start` (up to n) and `*_start_bulk` (exactly n
//! or nothing).
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
//! | [`RingBuilder::build_on`] | any [`RingMemory`] owner: hugepage chunks (pktmem-mempool puts its rings in provider memory this way), a `memmap2::MmapMut` (feature `memmap2`), a [`HeapMemory`] | the owner is dropped with the ring, after the values and slots |
//! | `unsafe` [`RingBuilder::build_in`] | a raw pointer and length | by the caller, after the ring is gone (the ring never frees it) |
//!
//! `build_on` is safe: it checks the size and alignment and, when they do
//! not fit, hands the memory back inside the error ([`RejectedMemory`]).
//! [`Ring::memory_range`] says where a ring's slots are.
//!
//! ```
//! use pktmem_ring::{Ring, Single};
//!
//! // A shared MP/MC ring of owned values.
//! let ring = Ring::<String>::new(1000)?;
//! ring.enqueue("hello".to_string()).unwrap();
//! assert_eq!(ring.dequeue().as_deref(), Some("hello"));
//!
//! // A single-producer / single-consumer pair of ends.
//! let (p, c) = Ring::<u64>::builder(100)
//!     .producer(Single)
//!     .consumer(Single)
//!     .build()?
//!     .split();
//! assert_eq!(p.enqueue_burst(&[7; 150]), 100);
//! assert!(c.is_full());
//! # Ok::<(), pktmem_ring::RingError>(())
//! ```
//!
//! # Floor plan (for readers of the source)
//!
//! | file | what it is |
//! |---|---|
//! | `raw.rs` | the ring core: slot array, its memory, both sides' indices, moving values in and out of slots, dropping what is left |
//! | `indices.rs` | one side's head/tail words and their invariants, claims, the room a claim may take |
//! | `mode.rs`, `mode/{single,multi,hts,rts}.rs` | the mode markers and one file per sync algorithm (claim and publish), as DPDK keeps one header per sync mode |
//! | `ops.rs` | every operation's body, written once over (ring, algorithm, end state) |
//! | `ring.rs`, `ends.rs`, `guard.rs` | the public faces: [`Ring`], [`Producer`] / [`Consumer`], the zero-copy guards |
//! | `builder.rs`, `mem.rs`, `buffer.rs`, `error.rs` | construction and sizing, slot memory owners, caller buffers of owned values, errors |

mod buffer;
mod builder;
mod ends;
mod error;
mod guard;
mod indices;
mod mem;
mod mode;
mod ops;
mod raw;
mod ring;
pub mod shared;
mod sync;

pub use buffer::{Sink, Source};
pub use builder::{RingBuilder, MAX_CAPACITY};
pub use ends::{Consumer, Producer};
pub use error::{BuildError, RejectedMemory, RingEmpty, RingError, RingFull, TryDequeueError};
pub use guard::{ReadGuard, WriteGuard};
pub use mem::{HeapMemory, RingMemory};
pub use mode::{Hts, InPlaceMode, Mode, Multi, Rts, SharedMode, Single};
pub use ring::Ring;
