//! The default backend: a `pktmem-ring` ring of [`Obj`]s, sized to
//! hold exactly the pool's objects, multi-producer/multi-consumer unless the
//! pool was made single-producer or single-consumer.
//!
//! A pool created from a provider keeps the ring's slots in a block of that
//! provider's shared small heap ([`Provider::small_heap`]; as DPDK carves a
//! pool's ring from a memzone of its hugepage heap), so the pointers the
//! cores pass around sit in hugepage memory too, and the rings of many
//! pools share pages instead of taking one each; if the provider cannot
//! give the block, the slots go on the heap and the pool says so
//! ([`RingPlacement::HeapFallback`]).

use std::mem::MaybeUninit;
use std::ptr::NonNull;

use pktmem_hugemem::{Provider, SmallBlock};
use pktmem_ring::{Ring, RingMemory};

use crate::error::BuildError;
use crate::Obj;

/// Where a pool's ring keeps its slots (see [`Mempool::ring_placement`](crate::Mempool::ring_placement)).
///
/// ```
/// use pktmem_mempool::{Mempool, Provider, RingPlacement};
/// let pool = Mempool::builder(100, 64).build_anonymous().unwrap();
/// assert_eq!(pool.ring_placement(), Some(RingPlacement::Heap));
/// let pool = Mempool::builder(100, 64).build_on(Provider::global()).unwrap();
/// // Provider memory, unless the provider had none to give.
/// assert_ne!(pool.ring_placement(), Some(RingPlacement::Heap));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RingPlacement {
    /// On the heap: the pool was not created from a provider.
    Heap,
    /// In a block of the shared small heap ([`Provider::small_heap`]) of the
    /// provider the pool was created with, returned to it when the pool
    /// drops. The block lies within one page (or, for a ring larger than
    /// half a page, is a chunk of its own).
    Provider,
    /// On the heap because the provider the pool was created with could not
    /// give the memory.
    HeapFallback,
}

/// A small-heap block holding a ring's slots.
///
/// Invariant: the block is reachable only through this value, and this
/// value only through the ring that owns it.
struct BlockMemory(SmallBlock);

// SAFETY: a `SmallBlock` owns its `len` bytes exclusively (its heap hands
// the object, or its own chunk, to no one else until the block drops) at an
// address and length that never change (`as_ptr` and `len` read fields set
// at allocation; the pointer is made from the mapping's address, not from a
// borrow), and the block keeps the page under them mapped (it holds its
// heap, which holds the slab's chunk). The bytes are readable and writable.
// The block is private to this value (see its invariant), so nothing else
// reads or writes the region. `SmallBlock` is `Send + Sync`.
unsafe impl RingMemory for BlockMemory {
    fn base_ptr(&mut self) -> NonNull<u8> {
        self.0.as_ptr()
    }

    fn size(&self) -> usize {
        self.0.len()
    }
}

/// Ring backend with its producer/consumer discipline.
#[derive(Debug)]
pub(crate) struct RingBackend {
    ring: Ring<Obj>,
    /// Puts use the single-producer path. Invariant: set only through
    /// `MempoolBuilder::single_producer`, whose caller promised puts never
    /// run concurrently.
    sp: bool,
    /// Gets use the single-consumer path; the same promise for gets.
    sc: bool,
    placement: RingPlacement,
}

impl RingBackend {
    /// A ring for `n` objects, its slots in `provider`'s memory when given
    /// (on the heap when the provider cannot give it).
    pub(crate) fn new(
        n: usize,
        sp: bool,
        sc: bool,
        provider: Option<&Provider>,
    ) -> Result<Self, BuildError> {
        // Exact capacity (the ring's default): it holds exactly `n`.
        let builder = Ring::builder(n);
        let layout = builder.memory_layout().map_err(BuildError::Ring)?;
        // A refused block (not expected: it is sized and aligned for the
        // ring) goes back to the heap it came from, and the heap serves.
        let on_provider = provider
            .and_then(|p| p.small_heap().alloc(layout.size(), layout.align()).ok())
            .and_then(|block| builder.clone().build_on(BlockMemory(block)).ok());
        let (ring, placement) = match on_provider {
            Some(ring) => (ring, RingPlacement::Provider),
            None => (
                builder.build().map_err(BuildError::Ring)?,
                if provider.is_some() {
                    RingPlacement::HeapFallback
                } else {
                    RingPlacement::Heap
                },
            ),
        };
        Ok(Self {
            ring,
            sp,
            sc,
            placement,
        })
    }

    /// Where the ring's slots are.
    pub(crate) fn placement(&self) -> RingPlacement {
        self.placement
    }

    /// Addresses of the ring's slots.
    pub(crate) fn memory_range(&self) -> std::ops::Range<usize> {
        self.ring.memory_range()
    }

    #[inline(always)]
    pub(crate) fn put_bulk(&self, objs: &[Obj]) -> bool {
        if self.sp {
            // SAFETY: single-producer promise (invariant on `sp`); the
            // promise makes earlier puts happen-before this one.
            unsafe { self.ring.enqueue_bulk_single_producer(objs) }.is_ok()
        } else {
            self.ring.enqueue_bulk(objs).is_ok()
        }
    }

    #[inline(always)]
    pub(crate) fn get_bulk(&self, out: &mut [MaybeUninit<Obj>]) -> bool {
        if self.sc {
            // The single-consumer dequeue writes into initialised elements:
            // give it some (this path is the slow one, a cache refill).
            let placeholder = Obj::from_non_null(NonNull::dangling());
            for o in out.iter_mut() {
                o.write(placeholder);
            }
            // SAFETY: every element was just initialised; `MaybeUninit<Obj>`
            // has `Obj`'s layout.
            let out = unsafe { &mut *(std::ptr::from_mut(out) as *mut [Obj]) };
            // SAFETY: single-consumer promise (invariant on `sc`).
            unsafe { self.ring.dequeue_bulk_single_consumer(out) }.is_ok()
        } else {
            self.ring.dequeue_bulk_uninit(out).is_ok()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }
}
