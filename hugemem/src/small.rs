//! A heap for small allocations carved out of provider pages.
//!
//! ```text
//!  class 64 B:   slab = one page ┌──┬──┬──┬──┬──┬──…──┐   objects never cross
//!                                └──┴──┴──┴──┴──┴──…──┘   the page boundary
//!  class 256 B:  slab = one page ┌────┬────┬────┬───…──┐
//!  class ½ page: slab = one page ┌──────────┬──────────┐
//!  larger than half a page: a chunk of its own
//! ```
//!
//! Sizes are rounded up to a power of two (at least 16 B and at least the
//! alignment): the class. Each slab is a one-page [`Chunk`] cut into
//! objects of one class, so an object lies within one page and has a single
//! IOVA run whatever holes lie between the provider's pages. Classes go up
//! to half the slab's page (1 MiB on 2 MiB pages); a larger request gets a
//! chunk of its own.
//!
//! A slab whose objects are all free goes back to the provider, unless it is
//! the last one of its class and some block of the heap is still live: when
//! the last block goes, every slab goes back.
//!
//! [`Provider::small_heap`] hands every caller the provider's one shared
//! heap, so users of one provider (pool rings, for one) share pages;
//! [`SmallHeap::new`] makes a private one.

use std::collections::HashMap;
use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

use crate::asan;
use crate::sync::{Mutex, MutexGuard};

use crate::{AllocError, AllocRequest, Chunk, Iova, Provider};

const MIN_CLASS_SHIFT: u32 = 4;
/// Half a 1 GiB page: the largest class any page can hold two of. A class
/// serves from slabs only on pages at least twice its size.
const MAX_CLASS_SHIFT: u32 = 29;
const CLASSES: usize = (MAX_CLASS_SHIFT - MIN_CLASS_SHIFT + 1) as usize;

struct Slab {
    /// One page (its `mapped_len` is its page size).
    chunk: Chunk,
    /// Offsets of objects handed out and given back since.
    free: Vec<u32>,
    /// Objects `0..fresh` have been handed out at least once; the rest never
    /// (handed out in order, so `free` stays as short as the slab's churn).
    fresh: usize,
    /// Objects the page holds (page size / class size, at least 2).
    capacity: usize,
    /// Objects handed out and not given back.
    used: usize,
}

impl Slab {
    /// The offset of a free object of `obj` bytes, if any.
    fn take(&mut self, obj: usize) -> Option<u32> {
        let off = match self.free.pop() {
            Some(off) => off,
            None if self.fresh < self.capacity => {
                self.fresh += 1;
                // In the page: (fresh - 1) * obj < capacity * obj <= page <= 1 GiB.
                u32::try_from((self.fresh - 1) * obj).ok()?
            }
            None => return None,
        };
        self.used += 1;
        Some(off)
    }

    fn is_full(&self) -> bool {
        self.free.is_empty() && self.fresh == self.capacity
    }
}

impl Drop for Slab {
    fn drop(&mut self) {
        // Its free objects are poisoned; the page goes back clean.
        // SAFETY: the slab's page is mapped (its chunk is alive) and no
        // block of it is live.
        unsafe { asan::unpoison(self.chunk.as_ptr().as_ptr(), self.chunk.page_size()) };
    }
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
    /// Page size of the last chunk the provider gave a slab (0: none yet):
    /// classes more than half of it go straight to a chunk of their own.
    page_hint: usize,
}

pub(crate) struct Shared {
    provider: Provider,
    state: Mutex<State>,
}

/// Small allocations carved out of the provider's pages.
///
/// A request is rounded up to its class, a power of two (at least 16 B and
/// the alignment); a class of at most half a page is served from one-page
/// slabs of that class, so the block lies within one page (one IOVA run);
/// a larger request gets a chunk of its own. An empty slab goes back to the
/// provider unless it is its class's last and some block is still live;
/// when no block is live the heap holds no pages. A handle is cheap to
/// clone; [`Provider::small_heap`] gives the provider's shared heap.
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
///
/// ```
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let mut b = p.small_heap().alloc(100, 64).unwrap();
/// b.as_mut_slice().fill(7);
/// assert_eq!((b.len(), b.as_ptr().as_ptr() as usize % 64), (100, 0));
/// assert_eq!(p.virt2iova(b.as_ptr().as_ptr()), b.iova());
/// assert!(b.is_iova_contiguous());
/// ```
pub struct SmallBlock {
    shared: Arc<Shared>,
    ptr: NonNull<u8>,
    len: usize,
    iova: Option<Iova>,
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
            .finish_non_exhaustive()
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

    /// IOVA of the first byte (`None` on memory without IOVAs).
    pub fn iova(&self) -> Option<Iova> {
        self.iova
    }

    /// Whether the block is one IOVA run (always, for blocks inside one page).
    pub fn is_iova_contiguous(&self) -> bool {
        match &self.kind {
            BlockKind::Slab { .. } => self.iova.is_some(),
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
    /// An empty heap of its own drawing pages from `provider` (to share the
    /// provider's heap with its other users, see [`Provider::small_heap`]).
    ///
    /// ```
    /// use pktmem_hugemem::{Provider, SmallHeap};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let (a, b) = (SmallHeap::new(&p), SmallHeap::new(&p));
    /// let (_x, _y) = (a.alloc(64, 8).unwrap(), b.alloc(64, 8).unwrap());
    /// assert_eq!(p.mapped_bytes(), 2 * 4096); // a page each
    /// assert!(!a.same_heap(&b));
    /// ```
    pub fn new(provider: &Provider) -> SmallHeap {
        SmallHeap {
            shared: Arc::new(Shared {
                provider: provider.clone(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The heap `slot` points to, or a new one it then points to (the body
    /// of [`Provider::small_heap`]; `slot` is the provider's, held locked).
    pub(crate) fn shared_in(slot: &mut Weak<Shared>, provider: &Provider) -> SmallHeap {
        if let Some(shared) = slot.upgrade() {
            return SmallHeap { shared };
        }
        let heap = SmallHeap::new(provider);
        *slot = Arc::downgrade(&heap.shared);
        heap
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `self` and `other` are handles to the same heap.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// assert!(p.small_heap().same_heap(&p.small_heap()));
    /// ```
    pub fn same_heap(&self, other: &SmallHeap) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// Slabs (pages) the heap holds.
    pub fn slabs(&self) -> usize {
        self.lock().slabs.len()
    }

    /// Blocks handed out and not yet dropped.
    pub fn live(&self) -> usize {
        self.lock().live
    }

    /// `len` bytes aligned to `align` (a power of two), inside one page
    /// when its class is at most half a page (see [`SmallHeap`]).
    ///
    /// ```
    /// use pktmem_hugemem::{AllocError, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let heap = p.small_heap();
    /// let b = heap.alloc(200, 128).unwrap();
    /// assert_eq!(b.as_ptr().as_ptr() as usize % 128, 0);
    /// assert_eq!((heap.live(), heap.slabs()), (1, 1));
    /// assert!(matches!(heap.alloc(8, 3), Err(AllocError::BadAlignment { align: 3 })));
    /// ```
    pub fn alloc(&self, len: usize, align: usize) -> Result<SmallBlock, AllocError> {
        if len == 0 {
            return Err(AllocError::ZeroLength);
        }
        if !align.is_power_of_two() {
            return Err(AllocError::BadAlignment { align });
        }
        let size = len.max(align).max(1 << MIN_CLASS_SHIFT);
        let class_shift = match size.checked_next_power_of_two() {
            Some(s) => s.trailing_zeros(),
            None => MAX_CLASS_SHIFT + 1,
        };
        if class_shift > MAX_CLASS_SHIFT {
            return self.large(len, align);
        }
        let class = (class_shift - MIN_CLASS_SHIFT) as usize;
        let obj = 1usize << class_shift;
        let mut st = self.lock();
        if st.partial[class].is_empty() {
            if st.page_hint != 0 && st.page_hint < 2 * obj {
                // The pages the provider gives hold one object of this class.
                drop(st);
                return self.large(len, align);
            }
            // Allocated with the heap unlocked: the provider fires an Alloc
            // event, whose callback may use this heap. Another thread may
            // add a slab of the class meanwhile; both serve, and the one
            // that empties first goes back.
            drop(st);
            let chunk = self.shared.provider.alloc(obj)?;
            let page = chunk.page_size();
            st = self.lock();
            st.page_hint = page;
            if page < 2 * obj {
                // A slab would hold one object: give it a chunk of its own.
                drop(st);
                drop(chunk);
                return self.large(len, align);
            }
            // Objects not handed out are poisoned, as are freed ones.
            // SAFETY: the page is mapped and the slab's alone.
            unsafe { asan::poison(chunk.as_ptr().as_ptr(), page) };
            st.next_id += 1;
            let id = st.next_id;
            let slab = Slab {
                chunk,
                free: Vec::new(),
                fresh: 0,
                capacity: page / obj,
                used: 0,
            };
            st.slabs.insert(id, slab);
            st.partial[class].push(id);
            st.count[class] += 1;
        }
        // Not expected: a partial slab has a free object (the error only
        // avoids a panic).
        let missing = || AllocError::NoPages {
            page_size: obj,
            pages: 1,
            reason: "small heap: a partial slab had no free object".into(),
        };
        let id = *st.partial[class].last().ok_or_else(missing)?;
        let slab = st.slabs.get_mut(&id).ok_or_else(missing)?;
        let off = slab.take(obj).ok_or_else(missing)?;
        let va = slab.chunk.as_ptr().as_ptr() as usize + off as usize;
        let iova = slab.chunk.iova_at(off as usize);
        if slab.is_full() {
            st.partial[class].pop();
        }
        st.live += 1;
        // The requested bytes only: the rest of the class stays poisoned.
        // SAFETY: the object lies in the slab's mapped page and is now ours.
        unsafe { asan::unpoison(va as *const u8, len) };
        Ok(SmallBlock {
            shared: self.shared.clone(),
            ptr: NonNull::new(va as *mut u8).ok_or_else(missing)?,
            len,
            iova,
            kind: BlockKind::Slab { id, class, off },
        })
    }

    fn large(&self, len: usize, align: usize) -> Result<SmallBlock, AllocError> {
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
        let mut st = self
            .shared
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        st.live -= 1;
        if st.live == 0 {
            // Nothing live: every slab is empty; all go back (the pages
            // after the lock, since freeing fires events).
            let slabs = std::mem::take(&mut st.slabs);
            st.partial.iter_mut().for_each(Vec::clear);
            st.count = [0; CLASSES];
            drop(st);
            drop(slabs);
            return; // a Large chunk frees itself
        }
        let BlockKind::Slab { id, class, off } = self.kind else {
            return; // a Large chunk frees itself
        };
        let Some(slab) = st.slabs.get_mut(&id) else {
            return;
        };
        // Before it can be handed out again (under the heap's lock).
        // SAFETY: the object lies in the slab's mapped page and is no
        // longer used (the block is being dropped).
        unsafe { asan::poison(self.ptr.as_ptr(), 1 << (class as u32 + MIN_CLASS_SHIFT)) };
        let was_full = slab.is_full();
        slab.free.push(off);
        slab.used -= 1;
        let empty = slab.used == 0;
        if was_full {
            st.partial[class].push(id);
        }
        if empty && st.count[class] > 1 {
            st.partial[class].retain(|&x| x != id);
            st.count[class] -= 1;
            let slab = st.slabs.remove(&id);
            drop(st);
            drop(slab); // the page goes back to the provider
        }
    }
}
