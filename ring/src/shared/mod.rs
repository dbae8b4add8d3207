//! A single-producer / single-consumer ring of 16-byte descriptors in
//! memory shared between processes, safe against a hostile or crashed
//! other side.
//!
//! # Model
//!
//! The ring lives in memory the caller provides — typically a chunk of
//! memory another process also maps (a memfd, exported hugepages). One
//! process initialises it ([`init_shm_ring`]); then one [`ShmProducer`] and one
//! [`ShmConsumer`] attach, in the same process or in two. A [`Desc`] is
//! two `u64`s (`addr`, `meta`): what they mean is the user's business
//! (pktmem's shared pools put the exporter's VA of a buffer and its data
//! window there). Indices are free-running `u64`s (they never wrap in
//! practice, and the arithmetic wraps anyway); a slot is
//! `index & (capacity - 1)`.
//!
//! ```text
//!  shared memory                             process A               process B
//!  ┌─────────────────────────────┐ 0
//!  │ magic u64 │ cap u32 │ ver u32│           ShmProducer             ShmConsumer
//!  ├─────────────────────────────┤ 128        tail (private)          head (private)
//!  │ tail u64        (producer)  │ ◄── store ─ cached head             cached tail
//!  ├─────────────────────────────┤ 256                 ▲                    │
//!  │ head u64        (consumer)  │ ── load, only when short ──┘     store ─┘
//!  ├─────────────────────────────┤ 384
//!  │ slots: capacity × {addr u64, meta u64}                              │
//!  └─────────────────────────────┘
//! ```
//!
//! Each end keeps its own index privately and a cached copy of the other
//! side's, and reads the other side's word (a cache line the other core
//! owns) only when the cached copy shows too little room or too few
//! descriptors — about once per lap when the ring runs neither full nor
//! empty. Orderings: the producer stores the slots (Relaxed) and then the
//! tail (Release), which pairs with the consumer's Acquire load of the tail;
//! the consumer loads the slots and then stores the head (Release), which
//! pairs with the producer's Acquire load of the head before it overwrites
//! them.
//!
//! # Distrust
//!
//! Memory another process can write is never reached through a Rust
//! reference to plain data: every word is an atomic (a shared reference to
//! an atomic is the sanctioned way to touch memory another thread or
//! process changes), the slot index is masked, and the capacity is read
//! once, at attach. Every index loaded from shared memory is checked
//! against this end's own: a head that goes backwards or runs past the
//! producer's tail, a tail that goes backwards or runs more than the
//! capacity past the consumer's head, is a
//! [`ShmRingError::Corrupt`] with the numbers — never a panic, never
//! undefined behaviour. Descriptors themselves are just numbers: the layer
//! above validates them before touching any byte they name.
//!
//! # Restart
//!
//! An end keeps nothing in shared memory but its index. Dropping an end (or
//! its process dying) leaves the ring as it was: attaching a new end of the
//! same side resumes at the last published index, so nothing published is
//! lost or repeated. What a producer wrote but had not published is not in
//! the ring. Two live ends of the same side (in any processes) are the
//! user's protocol error: they yield `Corrupt` errors or garbage
//! descriptors, not undefined behaviour.
//!
//! The owner of the memory can look at a ring without being an end
//! ([`shm_ring_indices`], [`shm_ring_read_slot`]), to reclaim what a dead
//! peer left in it.
//!
//! # Example
//!
//! Two threads here; two processes work the same way, each attaching to
//! its own mapping of the memory (e.g. a memfd both `mmap`).
//!
//! ```
//! use std::ptr::NonNull;
//! use pktmem_ring::shared::{init_shm_ring, shm_ring_bytes, Desc, ShmConsumer, ShmProducer};
//!
//! let mut mem = vec![0u64; shm_ring_bytes(64) / 8];
//! let (p, len) = (NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap(), mem.len() * 8);
//! // SAFETY: `mem` outlives both ends (joined below) and nothing else
//! // touches it meanwhile.
//! let (mut tx, mut rx) = unsafe {
//!     init_shm_ring(p, len, 64)?;
//!     (ShmProducer::attach(p, len)?, ShmConsumer::attach(p, len)?)
//! };
//! let t = std::thread::spawn(move || {
//!     let mut next = 0u64;
//!     while next < 1000 {
//!         let burst: Vec<Desc> = (next..(next + 32).min(1000)).map(|i| Desc::new(i, !i)).collect();
//!         next += tx.enqueue_burst(&burst).unwrap() as u64;
//!     }
//! });
//! let (mut got, mut out) = (0u64, [Desc::default(); 32]);
//! while got < 1000 {
//!     let n = rx.dequeue_burst(&mut out)?;
//!     for d in &out[..n] {
//!         assert_eq!(*d, Desc::new(got, !got));
//!         got += 1;
//!     }
//! }
//! t.join().unwrap();
//! # Ok::<(), pktmem_ring::shared::ShmRingError>(())
//! ```

mod ends;
mod error;
pub mod layout;

use std::ptr::NonNull;

pub use ends::{ShmConsumer, ShmProducer};
pub use error::{ShmIndex, ShmRingError};
pub use layout::shm_ring_bytes;

use crate::sync::Ordering;
use layout::Raw;

/// One descriptor: two `u64`s whose meaning is the user's (pktmem's shared
/// pools: `addr` = the exporter's VA of a buffer, `meta` = its data
/// window). 16 bytes, `repr(C)`, as in the slots.
///
/// ```
/// use pktmem_ring::shared::Desc;
/// assert_eq!(Desc::new(0x1000, 7), Desc { addr: 0x1000, meta: 7 });
/// assert_eq!(size_of::<Desc>(), 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
#[repr(C)]
pub struct Desc {
    /// First word (an address, by convention).
    pub addr: u64,
    /// Second word (what goes with the address).
    pub meta: u64,
}

impl Desc {
    /// A descriptor of these two words.
    pub const fn new(addr: u64, meta: u64) -> Self {
        Desc { addr, meta }
    }
}

/// Makes a new, empty ring of `capacity` descriptors (a power of two in
/// `1..=`[`layout::MAX_CAPACITY`]) in `mem`: header, both indices at 0,
/// slots zeroed, the magic written last. Needs
/// [`shm_ring_bytes`]`(capacity)` bytes aligned to [`layout::ALIGN`] (128
/// is better).
///
/// ```
/// use std::ptr::NonNull;
/// use pktmem_ring::shared::{init_shm_ring, shm_ring_bytes, shm_ring_indices};
///
/// let mut mem = vec![0u64; shm_ring_bytes(256) / 8];
/// let (p, len) = (NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap(), mem.len() * 8);
/// // SAFETY: `mem` is alive for both calls and reached only through them.
/// unsafe {
///     init_shm_ring(p, len, 256)?;
///     assert_eq!(shm_ring_indices(p, len)?, (0, 0));
/// }
/// # Ok::<(), pktmem_ring::shared::ShmRingError>(())
/// ```
///
/// # Safety
///
/// `mem` is valid for reads and writes of `len` bytes during the call, and
/// no end of a ring in that memory is live (in this process or another:
/// re-initialising under a live end is a protocol error that gives it
/// `Corrupt` errors). This process reaches the bytes only through atomics.
pub unsafe fn init_shm_ring(
    mem: NonNull<u8>,
    len: usize,
    capacity: u32,
) -> Result<(), ShmRingError> {
    // SAFETY: forwarded from the caller.
    unsafe { Raw::init(mem, len, capacity) }
}

/// Reads both shared indices of the ring in `mem` without being an end:
/// `(head, tail)` — the consumer's head, then the producer's tail —
/// checked (`head <= tail <= head + capacity`, else `Corrupt`). For the
/// owner's reclaim after a peer died: descriptors `head..tail` are
/// published and not consumed.
///
/// The head is read first, then the tail; the pair is consistent when at
/// most one end moves meanwhile (the usual case: one end is dead, the other
/// is the caller's). Both loads are Acquire (pairing with the ends' Release
/// stores), so slots before the tail read are written as far as
/// [`shm_ring_read_slot`] is concerned.
///
/// # Safety
///
/// As for [`init_shm_ring`] except that ends may be live: `mem` valid for
/// `len` bytes during the call, reached by this process only through
/// atomics.
pub unsafe fn shm_ring_indices(mem: NonNull<u8>, len: usize) -> Result<(u64, u64), ShmRingError> {
    // SAFETY: forwarded from the caller.
    let raw = unsafe { Raw::open(mem, len)? };
    // Acquire: pairs with the consumer's Release store of the head.
    let head = raw.head().load(Ordering::Acquire);
    // Acquire: pairs with the producer's Release store of the tail: the
    // slots before it are written.
    let tail = raw.tail().load(Ordering::Acquire);
    let max = head.wrapping_add(u64::from(raw.capacity()));
    let tail = ends_check(tail, head, max)?;
    Ok((head, tail))
}

/// `Corrupt` (about the tail) unless `head <= tail <= max`.
fn ends_check(tail: u64, head: u64, max: u64) -> Result<u64, ShmRingError> {
    if tail.wrapping_sub(head) <= max.wrapping_sub(head) {
        Ok(tail)
    } else {
        Err(ShmRingError::Corrupt {
            which: ShmIndex::Tail,
            seen: tail,
            ours: head,
            min: head,
            max,
        })
    }
}

/// Reads the descriptor in slot `pos` (masked: any `pos` names a slot of
/// the ring) without consuming it, for the owner's reclaim of what a dead
/// producer published: read the indices with [`shm_ring_indices`] first
/// (its Acquire load of the tail is what makes these slot loads see the
/// producer's stores), then the slots `head..tail`. What is in a slot is
/// whatever the other side wrote: validate it before use.
///
/// ```
/// use std::ptr::NonNull;
/// use pktmem_ring::shared::*;
///
/// let mut mem = vec![0u64; shm_ring_bytes(4) / 8];
/// let (p, len) = (NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap(), mem.len() * 8);
/// // SAFETY: `mem` outlives the end and is reached only through these calls.
/// unsafe {
///     init_shm_ring(p, len, 4)?;
///     let mut tx = ShmProducer::attach(p, len)?;
///     tx.enqueue_bulk(&[Desc::new(1, 1), Desc::new(2, 2), Desc::new(3, 3)])?;
///     drop(tx); // the peer "died" with 3 descriptors published, none consumed
///     let (head, tail) = shm_ring_indices(p, len)?;
///     let left: Vec<Desc> = (head..tail).map(|i| shm_ring_read_slot(p, len, i)).collect::<Result<_, _>>()?;
///     assert_eq!(left, [Desc::new(1, 1), Desc::new(2, 2), Desc::new(3, 3)]);
///     assert_eq!(shm_ring_read_slot(p, len, 4 + 1)?, Desc::new(2, 2)); // masked
/// }
/// # Ok::<(), ShmRingError>(())
/// ```
///
/// # Safety
///
/// As for [`shm_ring_indices`].
pub unsafe fn shm_ring_read_slot(
    mem: NonNull<u8>,
    len: usize,
    pos: u64,
) -> Result<Desc, ShmRingError> {
    // SAFETY: forwarded from the caller.
    let raw = unsafe { Raw::open(mem, len)? };
    let (addr, meta) = raw.slot(pos);
    // Relaxed: the caller's earlier Acquire load of the tail orders these
    // after the producer's slot stores (see above).
    Ok(Desc::new(
        addr.load(Ordering::Relaxed),
        meta.load(Ordering::Relaxed),
    ))
}
