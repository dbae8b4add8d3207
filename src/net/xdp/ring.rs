//! The four mmapped rings shared with the kernel: a single-producer,
//! single-consumer queue each, whose indices are free-running `u32`s.
//!
//! The fill and TX rings are produced by us and consumed by the kernel;
//! the RX and completion rings the other way round. Indices are read and
//! written through atomics (the kernel updates the other side's at any
//! time); entries through raw pointers with volatile accesses, never a
//! reference, and only in the slots the indices give to us.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};

use super::sys::{XdpRingOffset, XDP_RING_NEED_WAKEUP};

/// One mapping of a ring: where its indices, flags and entries are.
#[derive(Debug)]
pub(crate) struct RingMap<T> {
    map: NonNull<u8>,
    map_len: usize,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    flags: NonNull<AtomicU32>,
    entries: NonNull<T>,
    mask: u32,
    size: u32,
    _entries: PhantomData<T>,
}

// SAFETY: the mapping is owned (unmapped once, on drop) and reached only
// through `&mut` of the socket that owns it, or atomics.
unsafe impl<T: Send> Send for RingMap<T> {}

impl<T: Copy> RingMap<T> {
    /// Maps the ring of `size` entries at page offset `pgoff` of `fd`.
    pub(crate) fn map(
        fd: BorrowedFd<'_>,
        off: &XdpRingOffset,
        size: u32,
        pgoff: libc::off_t,
    ) -> io::Result<Self> {
        let map_len = off.desc as usize + size as usize * std::mem::size_of::<T>();
        // SAFETY: a fresh shared mapping of the socket's ring (the kernel
        // checks the offset and length); nothing else is at that address.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                pgoff,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = p.cast::<u8>();
        // The offsets come from the kernel's XDP_MMAP_OFFSETS for this
        // mapping: each lies inside it, the indices 4-aligned, the entries
        // aligned for `T` (8: the ring's descriptor area starts on a cache
        // line).
        let at = |o: u64| base.wrapping_add(o as usize);
        let nn = |p: *mut u8| NonNull::new(p).ok_or_else(|| io::Error::from(io::ErrorKind::Other));
        Ok(RingMap {
            map: nn(base)?,
            map_len,
            producer: nn(at(off.producer))?.cast(),
            consumer: nn(at(off.consumer))?.cast(),
            flags: nn(at(off.flags))?.cast(),
            entries: nn(at(off.desc))?.cast(),
            mask: size - 1,
            size,
            _entries: PhantomData,
        })
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: an aligned `u32` in the live mapping; shared with the
        // kernel, so only ever accessed atomically.
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.consumer.as_ref() }
    }

    fn flags(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { self.flags.as_ref() }
    }

    /// Pointer to the entry of free-running index `i`.
    fn slot(&self, i: u32) -> *mut T {
        // SAFETY: `i & mask < size`: inside the entries of the mapping.
        unsafe { self.entries.as_ptr().add((i & self.mask) as usize) }
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }
}

impl<T> Drop for RingMap<T> {
    fn drop(&mut self) {
        // SAFETY: our mapping, unmapped once; no reference into it outlives
        // the ring (entries are copied out, indices reached through `&self`).
        unsafe { libc::munmap(self.map.as_ptr().cast(), self.map_len) };
    }
}

/// A ring we produce into (fill: frame addresses; TX: descriptors).
#[derive(Debug)]
pub(crate) struct ProdRing<T> {
    ring: RingMap<T>,
    /// Our producer index (the kernel's copy is published by `submit`).
    prod: u32,
    /// The kernel's consumer index as last read.
    cons: u32,
}

impl<T: Copy> ProdRing<T> {
    pub(crate) fn new(ring: RingMap<T>) -> Self {
        // Acquire: pairs with nothing yet (a fresh ring is all zero); taken
        // for symmetry with `free`.
        let prod = ring.producer().load(Ordering::Acquire);
        let cons = ring.consumer().load(Ordering::Acquire);
        ProdRing { ring, prod, cons }
    }

    /// Free slots, at least `want` if the ring has them (re-reads the
    /// kernel's consumer index only when the cached one does not give
    /// enough).
    #[inline]
    pub(crate) fn free(&mut self, want: u32) -> u32 {
        let free = self.free_now();
        if free >= want {
            return free;
        }
        // Acquire: pairs with the kernel's store-release of the consumer
        // index (`__xskq_cons_release`), so its reads of the slots it gave
        // back happen before our writes to them.
        self.cons = self.ring.consumer().load(Ordering::Acquire);
        self.free_now()
    }

    /// Free slots by the cached indices. The consumer index is the
    /// kernel's to write: one past our producer (or more than a ring
    /// behind) would make `size - used` overflow; such a ring counts as
    /// full instead.
    #[inline(always)]
    fn free_now(&self) -> u32 {
        self.ring
            .size
            .saturating_sub(self.prod.wrapping_sub(self.cons))
    }

    /// Writes `v` into the `i`-th free slot (`i < free()`).
    #[inline]
    pub(crate) fn write(&mut self, i: u32, v: T) {
        debug_assert!(i < self.free_now());
        // SAFETY: the slot is ours (between our producer index and the
        // kernel's consumer index plus the size); the kernel does not read
        // it until `submit` publishes it.
        unsafe { self.ring.slot(self.prod.wrapping_add(i)).write_volatile(v) };
    }

    /// Publishes the first `n` written slots to the kernel.
    #[inline]
    pub(crate) fn submit(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.prod = self.prod.wrapping_add(n);
        // Release: pairs with the kernel's load-acquire of the producer
        // index (`__xskq_cons_peek`), so our slot writes are visible before
        // it reads them.
        self.ring.producer().store(self.prod, Ordering::Release);
    }

    /// Entries published and not yet consumed by the kernel (re-reads its
    /// consumer index).
    #[inline]
    pub(crate) fn pending(&mut self) -> u32 {
        // Acquire: as in `free`.
        self.cons = self.ring.consumer().load(Ordering::Acquire);
        // At most the ring (a consumer index past ours is the kernel's error).
        self.prod.wrapping_sub(self.cons).min(self.ring.size)
    }

    /// Whether the kernel asks for a wake-up syscall (`XDP_RING_NEED_WAKEUP`).
    #[inline]
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SeqCst fence: orders our producer store (in `submit`) before the
        // flag load, so we cannot miss a flag the kernel set after it last
        // looked at our producer index (it sets the flag, then re-checks
        // the ring, with a full barrier between); the flag itself publishes
        // no data, so the load is Relaxed.
        fence(Ordering::SeqCst);
        self.ring.flags().load(Ordering::Relaxed) & XDP_RING_NEED_WAKEUP != 0
    }

    pub(crate) fn size(&self) -> u32 {
        self.ring.size()
    }
}

/// A ring the kernel produces into (RX: descriptors; completion: frame
/// addresses).
#[derive(Debug)]
pub(crate) struct ConsRing<T> {
    ring: RingMap<T>,
    /// Our consumer index (published by `release`).
    cons: u32,
    /// The kernel's producer index as last read.
    prod: u32,
}

impl<T: Copy> ConsRing<T> {
    pub(crate) fn new(ring: RingMap<T>) -> Self {
        // Acquire: pairs with the kernel's store-release of the producer
        // (nothing is published on a fresh ring).
        let prod = ring.producer().load(Ordering::Acquire);
        let cons = ring.consumer().load(Ordering::Acquire);
        ConsRing { ring, cons, prod }
    }

    /// Entries ready to read (re-reads the kernel's producer index).
    #[inline]
    pub(crate) fn available(&mut self) -> u32 {
        // Acquire: pairs with the kernel's store-release of the producer
        // index (`__xskq_prod_submit`), so the entries it wrote are visible
        // before we read them.
        self.prod = self.ring.producer().load(Ordering::Acquire);
        // At most the ring: a producer index further ahead (the kernel's
        // error) would have us read slots twice.
        self.prod.wrapping_sub(self.cons).min(self.ring.size)
    }

    /// Reads the `i`-th ready entry (`i < available()`).
    #[inline]
    pub(crate) fn read(&self, i: u32) -> T {
        debug_assert!(i < self.prod.wrapping_sub(self.cons).min(self.ring.size));
        // SAFETY: the slot is between our consumer index and the kernel's
        // producer index: written and published by the kernel, which does
        // not write it again until `release` gives it back.
        unsafe { self.ring.slot(self.cons.wrapping_add(i)).read_volatile() }
    }

    /// Gives the first `n` read entries back to the kernel.
    #[inline]
    pub(crate) fn release(&mut self, n: u32) {
        if n == 0 {
            return;
        }
        self.cons = self.cons.wrapping_add(n);
        // Release: pairs with the kernel's read of the consumer index
        // before it reuses slots (`xskq_prod_nb_free`, ordered by its
        // barrier), so our reads of those slots happen before its writes.
        self.ring.consumer().store(self.cons, Ordering::Release);
    }
}

#[cfg(test)]
impl<T: Copy> ProdRing<T> {
    /// Plays a misbehaving kernel: stores `by` past our producer index as
    /// its consumer index.
    pub(crate) fn corrupt_consumer(&mut self, by: u32) {
        // Release: pairs with `free`'s Acquire load (nothing published).
        self.ring
            .consumer()
            .store(self.prod.wrapping_add(by), Ordering::Release);
    }
}

#[cfg(test)]
impl<T: Copy> ConsRing<T> {
    /// Plays a misbehaving kernel: stores `by` past our consumer index as
    /// its producer index.
    pub(crate) fn corrupt_producer(&mut self, by: u32) {
        // Release: pairs with `available`'s Acquire load.
        self.ring
            .producer()
            .store(self.cons.wrapping_add(by), Ordering::Release);
    }

    /// Plays the kernel: writes `entries` after the kernel's producer index
    /// and publishes them. Only for a socket the kernel produces nothing
    /// into (no program redirects to it).
    pub(crate) fn inject(&mut self, entries: &[T]) {
        let prod = self.ring.producer().load(Ordering::Acquire);
        for (i, e) in entries.iter().enumerate() {
            let slot = self.ring.slot(prod.wrapping_add(i as u32));
            // SAFETY: a slot past the producer index is the producer's, and
            // the kernel produces nothing into the test's socket: ours.
            unsafe { slot.write_volatile(*e) };
        }
        // Release: pairs with `available`'s Acquire load.
        self.ring
            .producer()
            .store(prod.wrapping_add(entries.len() as u32), Ordering::Release);
    }
}
