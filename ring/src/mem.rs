//! Memory a ring's slots can live in: the [`RingMemory`] trait for owners of
//! a region, [`HeapMemory`], an aligned heap buffer, and (with the
//! `memmap2` feature) `memmap2::MmapMut`, a memory map.

use std::alloc::Layout;
use std::fmt;
use std::ptr::NonNull;

use crate::error::BuildError;

/// An owner of a region of memory a [`Ring`](crate::Ring) can keep its slots
/// in, through [`RingBuilder::build_on`](crate::RingBuilder::build_on).
///
/// The ring takes the owner by value and keeps it (boxed) until the ring
/// and every end made from it are gone; then it drops the slots and then
/// the owner, which frees the memory however it likes. Hugepage chunks, a
/// memory-mapped file, a region carved from a device BAR: anything that can
/// promise the conditions below.
///
/// # Safety
///
/// Implementors promise, for as long as the value lives:
/// - [`base_ptr`](Self::base_ptr) always returns the same address, a
///   pointer the ring may write through, and the region
///   `base_ptr()..base_ptr() + size()` is valid for reads and writes (a
///   move of the value does not move the region: it lives behind a pointer);
/// - [`size`](Self::size) always returns the same value;
/// - nothing else reads or writes the region while the ring holds the
///   value (the value is the only way in to it; the ring calls
///   `base_ptr` once, when it is built, and no other method but `size`
///   and `Drop`);
/// - the value may be dropped on any thread (hence `Send`) and the ring
///   that holds it may be shared between threads (hence `Sync`).
///
/// ```
/// use pktmem_ring::{Ring, RingMemory};
/// use std::ptr::NonNull;
///
/// /// Slots inside a leaked (`'static`) buffer, for a ring that lives as
/// /// long as the program.
/// struct Static(NonNull<u8>, usize);
/// // SAFETY: `Static` is made only from a leaked, 64-aligned buffer that
/// // nothing else touches; a leaked buffer lives for the whole program.
/// unsafe impl RingMemory for Static {
///     fn base_ptr(&mut self) -> NonNull<u8> { self.0 }
///     fn size(&self) -> usize { self.1 }
/// }
/// // SAFETY: only an address and a length; see above.
/// unsafe impl Send for Static {}
/// // SAFETY: as above.
/// unsafe impl Sync for Static {}
///
/// #[repr(align(64))]
/// struct Lines([u8; 1024]);
/// let buf: &'static mut Lines = Box::leak(Box::new(Lines([0; 1024])));
/// let mem = Static(NonNull::from(&mut buf.0).cast(), 1024);
/// let ring = Ring::<u64>::builder(128).build_on(mem).unwrap();
/// ring.enqueue(3).unwrap();
/// assert_eq!(ring.dequeue(), Some(3));
/// ```
pub unsafe trait RingMemory: Send + Sync {
    /// First byte of the region, as a pointer valid for writes (hence
    /// `&mut self`: a pointer taken from a shared borrow may not be written
    /// through).
    fn base_ptr(&mut self) -> NonNull<u8>;
    /// Bytes in the region.
    fn size(&self) -> usize;
}

/// An aligned buffer on the heap: the memory [`RingBuilder::build`](crate::RingBuilder::build)
/// uses, and a [`RingMemory`] for rings sized or aligned by hand.
///
/// The bytes are uninitialised; a ring initialises its slots itself.
///
/// ```
/// use pktmem_ring::{HeapMemory, Ring, RingMemory};
///
/// let b = Ring::<u32>::builder(16);
/// let mem = HeapMemory::new(b.memory_layout().unwrap()).unwrap();
/// assert_eq!((mem.size(), mem.as_ptr().as_ptr() as usize % 64), (64, 0));
/// let (p, c) = b.build_on(mem).unwrap().split();
/// p.enqueue(1).unwrap();
/// assert_eq!(c.dequeue(), Some(1));
/// ```
pub struct HeapMemory {
    /// From `alloc(layout)` when `layout.size() != 0`; otherwise an address
    /// equal to `layout.align()` (dangling, aligned, never dereferenced for
    /// more than zero bytes).
    ptr: NonNull<u8>,
    layout: Layout,
}

impl HeapMemory {
    /// Allocates `layout.size()` bytes aligned to `layout.align()`; a
    /// zero-size layout allocates nothing.
    ///
    /// ```
    /// use pktmem_ring::{BuildError, HeapMemory};
    /// use std::alloc::Layout;
    /// let m = HeapMemory::new(Layout::from_size_align(4096, 4096).unwrap()).unwrap();
    /// assert_eq!(m.layout().size(), 4096);
    /// let huge = Layout::from_size_align(isize::MAX as usize - 4095, 4096).unwrap();
    /// assert!(matches!(HeapMemory::new(huge), Err(BuildError::AllocFailed { .. })));
    /// ```
    pub fn new(layout: Layout) -> Result<HeapMemory, BuildError> {
        if layout.size() == 0 {
            // A non-zero multiple of the alignment: aligned and non-null.
            let ptr = NonNull::new(layout.align() as *mut u8)
                .ok_or(BuildError::AllocFailed { bytes: 0 })?;
            return Ok(HeapMemory { ptr, layout });
        }
        // SAFETY: `layout` has a non-zero size (checked just above).
        let raw = unsafe { std::alloc::alloc(layout) };
        let ptr = NonNull::new(raw).ok_or(BuildError::AllocFailed {
            bytes: layout.size(),
        })?;
        Ok(HeapMemory { ptr, layout })
    }

    /// First byte of the buffer (to look at its address; the ring writes
    /// through [`RingMemory::base_ptr`]).
    ///
    /// ```
    /// use pktmem_ring::HeapMemory;
    /// use std::alloc::Layout;
    /// let m = HeapMemory::new(Layout::from_size_align(128, 64).unwrap()).unwrap();
    /// assert_eq!(m.as_ptr().as_ptr() as usize % 64, 0);
    /// ```
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }

    /// Size and alignment of the buffer.
    ///
    /// ```
    /// use pktmem_ring::HeapMemory;
    /// use std::alloc::Layout;
    /// let l = Layout::from_size_align(128, 64).unwrap();
    /// assert_eq!(HeapMemory::new(l).unwrap().layout(), l);
    /// ```
    pub fn layout(&self) -> Layout {
        self.layout
    }
}

impl fmt::Debug for HeapMemory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeapMemory")
            .field("ptr", &self.ptr)
            .field("size", &self.layout.size())
            .field("align", &self.layout.align())
            .finish()
    }
}

impl Drop for HeapMemory {
    fn drop(&mut self) {
        if self.layout.size() != 0 {
            // SAFETY: `ptr` came from `alloc(layout)` (see the field's
            // invariant) and is freed only here.
            unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) };
        }
    }
}

// SAFETY: `HeapMemory` owns its buffer outright; the allocator may be called
// from any thread.
unsafe impl Send for HeapMemory {}
// SAFETY: `&HeapMemory` only gives out the address and the layout.
unsafe impl Sync for HeapMemory {}

// SAFETY: the buffer is owned by the value, behind a pointer that a move
// does not change, valid for `layout.size()` bytes until drop; `HeapMemory`
// has no method that touches the bytes.
unsafe impl RingMemory for HeapMemory {
    fn base_ptr(&mut self) -> NonNull<u8> {
        self.ptr
    }

    fn size(&self) -> usize {
        self.layout.size()
    }
}

// SAFETY: the mapping lives at a fixed address from creation to drop, for
// `len()` bytes, readable and writable; `base_ptr` goes through
// `DerefMut`, so the pointer may be written through. Nothing else writes it:
// an anonymous map is private to its `MmapMut`, and a file map was made
// through memmap2's `unsafe` constructors, whose caller promised that the
// file is not modified behind the map's back (the same promise every
// `&mut [u8]` view of it relies on).
#[cfg(feature = "memmap2")]
unsafe impl RingMemory for memmap2::MmapMut {
    fn base_ptr(&mut self) -> NonNull<u8> {
        let bytes: &mut [u8] = self;
        // A map is never at address 0; `dangling` (misaligned for a ring)
        // would make `build_on` refuse it.
        NonNull::new(bytes.as_mut_ptr()).unwrap_or(NonNull::dangling())
    }

    fn size(&self) -> usize {
        self.len()
    }
}
