//! A lock-free LIFO of object pointers: the semantics of DPDK's `lf_stack`
//! mempool driver (an `rte_stack` made with `RTE_STACK_F_LF`), built without
//! a 128-bit compare-and-swap.
//!
//! ```text
//!   nodes: [ value | next ] × capacity        (indices 0..capacity)
//!
//!   used: head {index, tag} ──► n7 ──► n2 ──► n5 ──► NIL   len: counted nodes
//!   free: head {index, tag} ──► n0 ──► n1 ──► NIL          len: counted nodes
//! ```
//!
//! Every node is on exactly one of two Treiber stacks (the used list, whose
//! nodes carry object pointers, and the free list) or owned by the one thread
//! that unlinked it. A bulk put of `k` objects reserves `k` free nodes on the
//! free list's counter, unlinks them as one chain with one CAS, writes the
//! objects into them and links the chain onto the used list with one CAS; a
//! bulk get is the mirror image. Reserving on the counter first (as DPDK's lf
//! stack does) means a thread that starts unlinking is sure to find its `k`
//! nodes, so bulk calls are all-or-nothing with no rollback.
//!
//! **ABA.** A head packs a node index (low 32 bits) with a tag (high 32 bits)
//! bumped by every successful CAS, so a thread that read the head, then the
//! `next` of the top node, cannot unlink a list that changed meanwhile even
//! if the same node is back on top. The `next` it read may belong to a node
//! another thread has since taken and relinked: that read is an atomic load
//! (no data race), and its value is discarded when the CAS fails on the tag.
//! The tag wraps after 2^32 successful operations on one list; a thread
//! stalled between its load and its CAS for exactly a multiple of that many
//! operations, finding the same index on top, is the one case the tag does
//! not catch (DPDK uses a 64-bit counter and a 128-bit CAS).

use std::fmt;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crossbeam_utils::CachePadded;

use crate::backend::{Backend, BackendEmpty, BackendFull};
use crate::sync::{spin_loop, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use crate::Obj;

/// The end of a list (never a node index: capacity is at most `NIL`).
const NIL: u32 = u32::MAX;

/// A head word: `{ index: low 32 bits, tag: high 32 bits }`.
#[inline(always)]
fn pack(index: u32, tag: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(index)
}

#[inline(always)]
fn index_of(head: u64) -> u32 {
    head as u32
}

#[inline(always)]
fn tag_of(head: u64) -> u32 {
    (head >> 32) as u32
}

/// Why a [`LfStackBackend`] could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LfStackError {
    /// Node indices are 32 bits: the capacity is above
    /// [`LfStackBackend::MAX_CAPACITY`].
    CapacityTooLarge {
        /// Capacity asked for.
        capacity: usize,
        /// Largest capacity allowed.
        max: usize,
    },
    /// The node array could not be allocated.
    OutOfMemory {
        /// Capacity asked for.
        capacity: usize,
        /// Bytes of node array it needs.
        bytes: usize,
    },
}

impl fmt::Display for LfStackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CapacityTooLarge { capacity, max } => write!(
                f,
                "lock-free stack of {capacity} objects: the maximum is {max}"
            ),
            Self::OutOfMemory { capacity, bytes } => write!(
                f,
                "lock-free stack of {capacity} objects: cannot allocate {bytes} B of nodes"
            ),
        }
    }
}

impl std::error::Error for LfStackError {}

/// One slot of the stack.
struct Node {
    /// The object pointer the node carries. Written only by the thread that
    /// owns the node (it unlinked it from the free list) before it links the
    /// node onto the used list, read only by the thread that unlinked it from
    /// the used list: never accessed concurrently. Invariant: non-null while
    /// the node is on the used list.
    value: AtomicPtr<u8>,
    /// Index of the node below on its list, or `NIL`. Invariant: always `NIL`
    /// or `< capacity`. Written only by the node's owner, before the Release
    /// CAS that links it; read by any thread walking a list, possibly after
    /// the node was taken (then that thread's CAS fails on the tag).
    next: AtomicU32,
}

/// Node indices a chain remembers from the walk that unlinked it, sparing
/// its owner a second walk (pointer chasing) for bulks up to this size.
const RECORDED: usize = 64;

/// `k` nodes a thread unlinked: `first -> ... -> last` through `next`.
struct Chain {
    first: u32,
    last: u32,
    /// The first `min(k, RECORDED)` indices of the chain, in order.
    recorded: [u32; RECORDED],
}

impl Chain {
    /// Calls `f(n, node)` for the chain's `k` nodes in order.
    #[inline(always)]
    fn for_each(&self, nodes: &[Node], k: usize, mut f: impl FnMut(usize, &Node)) {
        let mut i = self.first;
        for n in 0..k {
            if n > 0 {
                i = if n < RECORDED {
                    self.recorded[n]
                } else {
                    // Relaxed: the chain is ours; its links were made
                    // visible by the Acquire in `pop_chain`.
                    nodes[i as usize].next.load(Ordering::Relaxed)
                };
            }
            f(n, &nodes[i as usize]);
        }
        debug_assert_eq!(i, self.last);
    }
}

/// A Treiber stack of nodes with a count of the nodes one may claim.
struct List {
    /// `{ index, tag }` of the top node (index `NIL`: empty). The tag grows by
    /// one on every successful CAS.
    head: CachePadded<AtomicU64>,
    /// Nodes on the list not yet claimed by a [`reserve`](Self::reserve).
    /// Invariant: at least `len` plus the claimed, not yet unlinked nodes
    /// are linked below `head` (a push adds to `len` only after linking).
    len: CachePadded<AtomicUsize>,
}

impl List {
    fn new(top: u32, len: usize) -> Self {
        Self {
            head: CachePadded::new(AtomicU64::new(pack(top, 0))),
            len: CachePadded::new(AtomicUsize::new(len)),
        }
    }

    /// Claims `k` nodes, or returns how many could be claimed.
    #[inline]
    fn reserve(&self, k: usize) -> Result<(), usize> {
        // Relaxed: only a first guess for the CAS, which orders.
        let mut cur = self.len.load(Ordering::Relaxed);
        loop {
            if cur < k {
                return Err(cur);
            }
            // Acquire (success): pairs with the Release `fetch_add` in
            // `push_chain`: the nodes counted are linked before we walk them.
            // Relaxed (failure): we retry with the value, nothing is read.
            match self
                .len
                .compare_exchange_weak(cur, cur - k, Ordering::Acquire, Ordering::Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Unlinks the top `k >= 1` nodes, which the caller has reserved, as a
    /// chain.
    #[inline]
    fn pop_chain(&self, nodes: &[Node], k: usize) -> Chain {
        debug_assert!(k >= 1);
        let mut chain = Chain {
            first: NIL,
            last: NIL,
            recorded: [NIL; RECORDED],
        };
        // Acquire: pairs with the Release CAS in `push_chain` that wrote this
        // head (and, through the release sequence of the head's CASes, every
        // earlier one): the links and values of the nodes below are visible.
        let mut old = self.head.load(Ordering::Acquire);
        loop {
            let first = index_of(old);
            let mut last = first;
            let mut seen = 0;
            while last != NIL {
                if seen < RECORDED {
                    chain.recorded[seen] = last;
                }
                seen += 1;
                if seen == k {
                    break;
                }
                // Relaxed: ordered by the Acquire load of `old` above; a
                // stale link (the node since taken) only fails the CAS.
                last = nodes[last as usize].next.load(Ordering::Relaxed);
            }
            if last == NIL {
                // The snapshot changed under the walk (the reserved nodes are
                // linked, so a fresh head finds them): look again.
                spin_loop();
                // Acquire: as above.
                old = self.head.load(Ordering::Acquire);
                continue;
            }
            // Relaxed: as the walk's loads.
            let below = nodes[last as usize].next.load(Ordering::Relaxed);
            let new = pack(below, tag_of(old).wrapping_add(1));
            // Acquire (both): as the first load; the CAS on success reads the
            // same write as `old` (the tag says no CAS came between), on
            // failure returns the head we walk next.
            match self
                .head
                .compare_exchange_weak(old, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => {
                    (chain.first, chain.last) = (first, last);
                    return chain;
                }
                Err(now) => {
                    old = now;
                    spin_loop();
                }
            }
        }
    }

    /// Links the caller's chain `first ..= last` of `k` nodes on top and
    /// counts them.
    #[inline]
    fn push_chain(&self, nodes: &[Node], first: u32, last: u32, k: usize) {
        // Relaxed: the index is only copied into `last.next`; nothing is read
        // through it.
        let mut old = self.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release CAS below.
            nodes[last as usize]
                .next
                .store(index_of(old), Ordering::Relaxed);
            let new = pack(first, tag_of(old).wrapping_add(1));
            // Release (success): pairs with the Acquire head load and CAS in
            // `pop_chain`: whoever unlinks these nodes sees their links and
            // values. Relaxed (failure): as the first load.
            match self
                .head
                .compare_exchange_weak(old, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => old = now,
            }
        }
        // Release: pairs with the Acquire CAS in `reserve`: a thread that
        // claims these nodes finds them linked.
        self.len.fetch_add(k, Ordering::Release);
    }
}

/// A lock-free LIFO stack of object pointers for a fixed capacity
/// (DPDK's `lf_stack` mempool driver).
///
/// Bulk put and get are all-or-nothing. The most recently put objects come
/// back first (cache-warm), in the same order as
/// [`StackBackend`](crate::StackBackend): the last object of a put is on top.
/// A pool uses it with [`BackendKind::LockFreeStack`](crate::BackendKind::LockFreeStack).
///
/// ```
/// use pktmem_mempool::{Backend, LfStackBackend, Obj};
/// use std::{mem::MaybeUninit, ptr::NonNull};
///
/// let s = LfStackBackend::new(4).unwrap();
/// // Two made-up objects: the backend never dereferences them.
/// let mut mem = [0u64; 2];
/// let a = Obj::from_non_null(NonNull::from(&mut mem[0]).cast());
/// let b = Obj::from_non_null(NonNull::from(&mut mem[1]).cast());
/// s.put_bulk(&[a, b]).unwrap();
/// assert!(s.put_bulk(&[a, a, a]).is_err()); // 2 + 3 > 4: nothing stored
/// let mut out = [MaybeUninit::uninit(); 2];
/// s.get_bulk(&mut out).unwrap();
/// // SAFETY: a successful get initialised every element.
/// assert_eq!(unsafe { [out[0].assume_init(), out[1].assume_init()] }, [b, a]); // last in, first out
/// assert!(s.is_empty());
/// ```
pub struct LfStackBackend {
    /// `capacity` nodes, each on one list or owned by one thread.
    nodes: Box<[Node]>,
    /// Nodes carrying objects.
    used: List,
    /// Nodes carrying nothing.
    free: List,
}

impl fmt::Debug for LfStackBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LfStackBackend")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

impl LfStackBackend {
    /// Largest capacity: node indices are 32 bits, one value meaning "none".
    pub const MAX_CAPACITY: usize = NIL as usize;

    /// An empty stack for `capacity` objects (16 bytes of nodes each).
    ///
    /// ```
    /// use pktmem_mempool::{Backend, LfStackBackend, LfStackError};
    /// let s = LfStackBackend::new(8).unwrap();
    /// assert_eq!((s.len(), s.capacity()), (0, 8));
    /// # #[cfg(target_pointer_width = "64")]
    /// assert!(matches!(
    ///     LfStackBackend::new(1 << 40),
    ///     Err(LfStackError::CapacityTooLarge { capacity: 0x100_0000_0000, .. })
    /// ));
    /// ```
    pub fn new(capacity: usize) -> Result<Self, LfStackError> {
        if capacity > Self::MAX_CAPACITY {
            return Err(LfStackError::CapacityTooLarge {
                capacity,
                max: Self::MAX_CAPACITY,
            });
        }
        let mut nodes = Vec::new();
        nodes
            .try_reserve_exact(capacity)
            .map_err(|_| LfStackError::OutOfMemory {
                capacity,
                bytes: capacity.saturating_mul(std::mem::size_of::<Node>()),
            })?;
        // The free list starts as 0 -> 1 -> ... -> capacity - 1 -> NIL; the
        // casts are exact (capacity <= NIL).
        nodes.extend((0..capacity).map(|i| Node {
            value: AtomicPtr::new(std::ptr::null_mut()),
            next: AtomicU32::new(if i + 1 == capacity { NIL } else { i as u32 + 1 }),
        }));
        let top = if capacity == 0 { NIL } else { 0 };
        Ok(Self {
            nodes: nodes.into_boxed_slice(),
            used: List::new(NIL, 0),
            free: List::new(top, capacity),
        })
    }
}

// SAFETY: each object pointer is written into a node this thread unlinked
// from the free list, and read back from a node one thread unlinked from the
// used list, so it is returned once. The counters make a bulk call claim all
// its nodes before it touches a list, so a refused call changes nothing.
// Nothing calls back into a pool.
unsafe impl Backend for LfStackBackend {
    fn put_bulk(&self, objs: &[Obj]) -> Result<(), BackendFull> {
        let k = objs.len();
        if k == 0 {
            return Ok(());
        }
        self.free
            .reserve(k)
            .map_err(|free| BackendFull { requested: k, free })?;
        let chain = self.free.pop_chain(&self.nodes, k);
        // The chain is ours: the last object goes on top, as a Vec's push.
        chain.for_each(&self.nodes, k, |n, node| {
            // Relaxed: published by the Release CAS in `push_chain`.
            node.value
                .store(objs[k - 1 - n].as_ptr(), Ordering::Relaxed);
        });
        self.used
            .push_chain(&self.nodes, chain.first, chain.last, k);
        Ok(())
    }

    fn get_bulk(&self, objs: &mut [MaybeUninit<Obj>]) -> Result<(), BackendEmpty> {
        let k = objs.len();
        if k == 0 {
            return Ok(());
        }
        self.used.reserve(k).map_err(|available| BackendEmpty {
            requested: k,
            available,
        })?;
        let chain = self.used.pop_chain(&self.nodes, k);
        chain.for_each(&self.nodes, k, |n, node| {
            // Relaxed: written before the Release CAS that linked the node,
            // made visible by the Acquire in `pop_chain`.
            let p = node.value.load(Ordering::Relaxed);
            debug_assert!(!p.is_null());
            // SAFETY: a node on the used list carries a non-null pointer
            // (`Node::value`), and this one was on it until `pop_chain`.
            objs[n].write(Obj::from_non_null(unsafe { NonNull::new_unchecked(p) }));
        });
        self.free
            .push_chain(&self.nodes, chain.first, chain.last, k);
        Ok(())
    }

    fn len(&self) -> usize {
        // Relaxed: a snapshot count (objects being put or got are not in it).
        self.used.len.load(Ordering::Relaxed)
    }

    fn capacity(&self) -> usize {
        self.nodes.len()
    }
}
