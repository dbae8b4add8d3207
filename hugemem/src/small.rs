//! A heap for small allocations carved out of provider pages.
//!
//! ```text
//!  class 64 B:   slab = one page ┌──┬──┬──┬──┬──┬──…──┐   objects never cross
//!                                └──┴──┴──┴──┴──┴──…──┘   the page boundary
//!  class 256 B:  slab = one page ┌────┬────┬────┬───…──┐
//!  large (> half a page): a chunk of its own
//! ```
//!
//! Each slab is a one-page [`Chunk`], so an object lies within one page and
//! has a single IOVA run whatever holes lie between the provider's pages.
//! A slab whose objects are all free goes back to the provider, unless it is
//! the last one of its class.

use std::collections::HashMap;
use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::sync::{Mutex, MutexGuard};

use crate::{AllocRequest, Chunk, HugememError, Iova, Provider};

const MIN_CLASS_SHIFT: u32 = 4;
const MAX_CLASS_SHIFT: u32 = 16;
const CLASSES: usize = (MAX_CLASS_SHIFT - MIN_CLASS_SHIFT + 1) as usize;

struct Slab {
    chunk: Chunk,
    /// Offsets of free objects in the slab.
    free: Vec<u32>,
    capacity: usize,
}

#[derive(Default)]
struct State {
    slabs: HashMap<u64, Slab>,
    /// Per class, ids of slabs that have free objects.
    partial: [Vec<u64>; CLASSES],
    /// Per class, number of slabs.
    count: [usize; CLASSES],
    next_id: u64,
    /// Objects handed out (slab objects and large blocks).
    live: usize,
}

struct Shared {
    provider: Provider,
    state: Mutex<State>,
}

/// Small allocations carved out of the provider's pages.
///
/// ```
/// use pktmem_hugemem::{Provider, SmallHeap};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let heap = SmallHeap::new(&p);
/// let a = heap.alloc(100, 64).unwrap();
/// let b = heap.alloc(100, 64).unwrap();
/// assert_eq!(a.as_ptr().as_ptr() as usize % 64, 0);
/// assert_ne!(a.as_ptr(), b.as_ptr());
/// assert_eq!(p.mapped_bytes(), 4096); // one page serves both
/// assert_eq!(p.virt2iova(b.as_ptr().as_ptr()), b.iova());
/// ```
#[derive(Clone)]
pub struct SmallHeap {
    shared: Arc<Shared>,
}

impl fmt::Debug for SmallHeap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("SmallHeap")
            .field("slabs", &st.slabs.len())
            .field("live", &st.live)
            .finish()
    }
}

/// One small allocation; returned to its heap on drop.
pub struct SmallBlock {
    shared: Arc<Shared>,
    ptr: NonNull<u8>,
    len: usize,
    iova: Iova,
    kind: BlockKind,
}

enum BlockKind {
    Slab { id: u64, class: usize, off: u32 },
    Large(Chunk),
}

// SAFETY: a SmallBlock owns its bytes exclusively (like a Box<[u8]>); the
// pointer is only a cached address inside a chunk kept alive by the heap.
unsafe impl Send for SmallBlock {}
// SAFETY: shared access only reads the address and IOVA.
unsafe impl Sync for SmallBlock {}

impl fmt::Debug for SmallBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmallBlock")
            .field("ptr", &self.ptr)
            .field("len", &self.len)
            .field("iova", &self.iova)
            .finish()
    }
}

impl SmallBlock {
    /// First byte.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Bytes asked for.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (zero-length requests are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// IOVA of the first byte.
    pub fn iova(&self) -> Iova {
        self.iova
    }

    /// Whether the block is one IOVA run (always, for blocks inside one page).
    pub fn is_iova_contiguous(&self) -> bool {
        match &self.kind {
            BlockKind::Slab { .. } => !self.iova.is_bad(),
            BlockKind::Large(c) => c.is_iova_contiguous(),
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: the block owns `len` mapped bytes at `ptr` until drop.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl SmallHeap {
    /// An empty heap drawing pages from `provider`.
    pub fn new(provider: &Provider) -> SmallHeap {
        SmallHeap {
            shared: Arc::new(Shared {
                provider: provider.clone(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Slabs (pages) the heap holds.
    pub fn slabs(&self) -> usize {
        self.lock().slabs.len()
    }

    /// Blocks handed out and not yet dropped.
    pub fn live(&self) -> usize {
        self.lock().live
    }

    /// `len` bytes aligned to `align` (a power of two).
    pub fn alloc(&self, len: usize, align: usize) -> Result<SmallBlock, HugememError> {
        if len == 0 {
            return Err(HugememError::ZeroLength);
        }
        if !align.is_power_of_two() {
            return Err(HugememError::BadAlignment { align });
        }
        let size = len.max(align).max(1 << MIN_CLASS_SHIFT);
        let class_shift = size.next_power_of_two().trailing_zeros();
        if class_shift > MAX_CLASS_SHIFT {
            return self.large(len, align);
        }
        let class = (class_shift - MIN_CLASS_SHIFT) as usize;
        let obj = 1usize << class_shift;
        let mut st = self.lock();
        let id = match st.partial[class].last() {
            Some(&id) => id,
            None => {
                let chunk = self.shared.provider.alloc(obj)?;
                let page = chunk.page_size();
                if page < 2 * obj {
                    // A slab would hold one object: give it its own chunk.
                    drop(st);
                    drop(chunk);
                    return self.large(len, align);
                }
                let capacity = page / obj;
                let free: Vec<u32> = (0..capacity).rev().map(|i| (i * obj) as u32).collect();
                st.next_id += 1;
                let id = st.next_id;
                st.slabs.insert(
                    id,
                    Slab {
                        chunk,
                        free,
                        capacity,
                    },
                );
                st.partial[class].push(id);
                st.count[class] += 1;
                id
            }
        };
        let slab = st
            .slabs
            .get_mut(&id)
            .ok_or(HugememError::NotRegistered { addr: 0 })?;
        let off = slab
            .free
            .pop()
            .ok_or(HugememError::NotRegistered { addr: 0 })?;
        let va = slab.chunk.as_ptr().as_ptr() as usize + off as usize;
        let iova = slab.chunk.iova_at(off as usize);
        if slab.free.is_empty() {
            st.partial[class].retain(|&x| x != id);
        }
        st.live += 1;
        Ok(SmallBlock {
            shared: self.shared.clone(),
            ptr: NonNull::new(va as *mut u8).ok_or(HugememError::NotRegistered { addr: 0 })?,
            len,
            iova,
            kind: BlockKind::Slab { id, class, off },
        })
    }

    fn large(&self, len: usize, align: usize) -> Result<SmallBlock, HugememError> {
        let chunk = self
            .shared
            .provider
            .alloc_with(&AllocRequest::new(len).align(align))?;
        self.lock().live += 1;
        Ok(SmallBlock {
            shared: self.shared.clone(),
            ptr: chunk.as_ptr(),
            len,
            iova: chunk.iova(),
            kind: BlockKind::Large(chunk),
        })
    }
}

impl Drop for SmallBlock {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        st.live -= 1;
        let BlockKind::Slab { id, class, off } = self.kind else {
            return; // a Large chunk frees itself
        };
        let Some(slab) = st.slabs.get_mut(&id) else {
            return;
        };
        slab.free.push(off);
        let (n_free, cap) = (slab.free.len(), slab.capacity);
        if n_free == 1 {
            st.partial[class].push(id);
        }
        if n_free == cap && st.count[class] > 1 {
            st.partial[class].retain(|&x| x != id);
            st.count[class] -= 1;
            let slab = st.slabs.remove(&id);
            drop(st);
            drop(slab); // the page goes back to the provider
        }
    }
}
