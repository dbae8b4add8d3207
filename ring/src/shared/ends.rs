//! [`ShmProducer`] and [`ShmConsumer`]: the two ends of a shared ring, each
//! with a private copy of its own index and a cached copy of the other's.

use std::ptr::NonNull;

use super::error::{ShmIndex, ShmRingError};
use super::layout::Raw;
use super::Desc;
use crate::sync::Ordering;

/// The producer end of a shared ring: enqueues descriptors.
///
/// Keeps its tail privately (the shared `tail` word is only ever stored,
/// never read back, while the end lives) and a cached copy of the
/// consumer's head, reloaded from shared memory only when the cached view
/// shows too little room: a producer that is not running the ring full
/// touches the consumer's cache line about once per lap, not per burst.
///
/// `Send` (hand it to the thread that produces), not `Sync`, not `Clone`:
/// one producer per ring in this process. One producer per ring across
/// processes is the user's protocol (see the [module docs](super)).
///
/// ```
/// use std::ptr::NonNull;
/// use pktmem_ring::shared::{init_shm_ring, shm_ring_bytes, Desc, ShmConsumer, ShmProducer};
///
/// let mut mem = vec![0u64; shm_ring_bytes(4) / 8];
/// let (p, len) = (NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap(), mem.len() * 8);
/// // SAFETY: `mem` outlives both ends and is reached only through them.
/// let (mut tx, mut rx) = unsafe {
///     init_shm_ring(p, len, 4)?;
///     (ShmProducer::attach(p, len)?, ShmConsumer::attach(p, len)?)
/// };
/// let d = |i| Desc::new(0x1000 * i, i);
/// assert_eq!(tx.enqueue_burst(&[d(1), d(2), d(3), d(4), d(5)])?, 4);
/// assert_eq!(tx.free_space()?, 0);
/// let mut out = [Desc::default(); 2];
/// assert_eq!(rx.dequeue_burst(&mut out)?, 2);
/// assert_eq!(out, [d(1), d(2)]);
/// assert_eq!((tx.position(), tx.peer_position()), (4, 0)); // head not reloaded yet
/// tx.enqueue_bulk(&[d(5), d(6)])?; // short by the cache: reloads the head
/// assert_eq!(tx.peer_position(), 2);
/// # Ok::<(), pktmem_ring::shared::ShmRingError>(())
/// ```
#[derive(Debug)]
pub struct ShmProducer {
    raw: Raw,
    /// Next index to write; everything before it is published.
    tail: u64,
    /// The consumer's head as last read: at or behind the real one (it
    /// only moves forward), so room computed from it is never too much.
    /// `tail - cached_head <= capacity`.
    cached_head: u64,
}

/// The consumer end of a shared ring: dequeues descriptors.
///
/// Keeps its head privately and a cached copy of the producer's tail,
/// reloaded only when the cached view shows too few descriptors. `Send`,
/// not `Sync`, not `Clone`, as [`ShmProducer`].
///
/// ```
/// use std::ptr::NonNull;
/// use pktmem_ring::shared::{init_shm_ring, shm_ring_bytes, Desc, ShmConsumer, ShmProducer, ShmRingError};
///
/// let mut mem = vec![0u64; shm_ring_bytes(8) / 8];
/// let (p, len) = (NonNull::new(mem.as_mut_ptr().cast::<u8>()).unwrap(), mem.len() * 8);
/// // SAFETY: `mem` outlives both ends and is reached only through them.
/// let (mut tx, mut rx) = unsafe {
///     init_shm_ring(p, len, 8)?;
///     (ShmProducer::attach(p, len)?, ShmConsumer::attach(p, len)?)
/// };
/// tx.enqueue_bulk(&[Desc::new(1, 10), Desc::new(2, 20)])?;
/// assert_eq!(rx.peek_published()?, 2);
/// let mut out = [Desc::default(); 3];
/// assert_eq!(rx.dequeue_bulk(&mut out), Err(ShmRingError::Empty { need: 3, available: 2 }));
/// assert_eq!(rx.dequeue_burst(&mut out)?, 2);
/// assert_eq!(&out[..2], &[Desc::new(1, 10), Desc::new(2, 20)]);
/// assert_eq!(rx.position(), 2);
/// # Ok::<(), ShmRingError>(())
/// ```
#[derive(Debug)]
pub struct ShmConsumer {
    raw: Raw,
    /// Next index to read; everything before it is released.
    head: u64,
    /// The producer's tail as last read: at or behind the real one, so
    /// `cached_tail - head` descriptors are surely published.
    /// `cached_tail - head <= capacity`.
    cached_tail: u64,
}

// SAFETY: the end's only pointer is to memory the attach contract keeps
// valid for the end's life and reached only through atomics; nothing in it
// is tied to the thread that attached.
unsafe impl Send for ShmProducer {}
// SAFETY: as for `ShmProducer`.
unsafe impl Send for ShmConsumer {}

/// `Corrupt` unless `seen` is in `min..=max` (wrapping order, measured
/// from `min`).
#[inline(always)]
fn check(which: ShmIndex, seen: u64, ours: u64, min: u64, max: u64) -> Result<u64, ShmRingError> {
    if seen.wrapping_sub(min) <= max.wrapping_sub(min) {
        Ok(seen)
    } else {
        Err(ShmRingError::Corrupt {
            which,
            seen,
            ours,
            min,
            max,
        })
    }
}

impl ShmProducer {
    /// Becomes the producer of the ring in `mem` (made by
    /// [`init_shm_ring`](super::init_shm_ring), here or in another
    /// process), resuming at the published tail: a producer that dropped
    /// or died is continued from the last descriptor it published
    /// (anything it wrote and did not publish is not in the ring).
    ///
    /// Errors: the header checks (`Misaligned`, `TooSmall`, `BadMagic`,
    /// `BadVersion`, `BadCapacity`) and `Corrupt` when the published head
    /// is ahead of the tail or more than the capacity behind it.
    ///
    /// # Safety
    ///
    /// `mem` is valid for reads and writes of `len` bytes until the end is
    /// dropped (not unmapped or freed meanwhile), and this process reaches
    /// those bytes only through shared-ring ends and functions (atomics),
    /// never through references or plain loads and stores. Other
    /// processes may do anything to the bytes: the worst they can cause is
    /// `Corrupt` errors or wrong descriptors, never undefined behaviour
    /// here. No other producer of this ring may be live (in any process)
    /// for descriptors to be meaningful; breaking that is not unsafe
    /// either, only wrong.
    pub unsafe fn attach(mem: NonNull<u8>, len: usize) -> Result<Self, ShmRingError> {
        // SAFETY: forwarded from the caller.
        let raw = unsafe { Raw::open(mem, len)? };
        // Acquire: pairs with the Release store of the tail by the producer
        // before us (one that dropped or died; its published slots stay
        // published).
        let tail = raw.tail().load(Ordering::Acquire);
        // Acquire: pairs with the consumer's Release store of the head
        // after its slot loads (`ShmConsumer::take`): the slots before
        // it are no longer read.
        let head = raw.head().load(Ordering::Acquire);
        let cap = u64::from(raw.capacity());
        let head = check(ShmIndex::Head, head, tail, tail.wrapping_sub(cap), tail)?;
        Ok(ShmProducer {
            raw,
            tail,
            cached_head: head,
        })
    }

    /// Descriptors the ring holds (read at attach).
    pub fn capacity(&self) -> u32 {
        self.raw.capacity()
    }

    /// Free slots now: reloads the consumer's head.
    pub fn free_space(&mut self) -> Result<u32, ShmRingError> {
        self.reload_head()?;
        Ok(self.cached_free())
    }

    /// Enqueues as many of `descs` as fit (reloading the head only when
    /// the cached one shows too little room); returns how many.
    #[inline]
    pub fn enqueue_burst(&mut self, descs: &[Desc]) -> Result<usize, ShmRingError> {
        let mut free = self.cached_free() as usize;
        if free < descs.len() {
            self.reload_head()?;
            free = self.cached_free() as usize;
        }
        let n = descs.len().min(free);
        self.publish(&descs[..n]);
        Ok(n)
    }

    /// Enqueues all of `descs` or none (`Full { need, free }`).
    #[inline]
    pub fn enqueue_bulk(&mut self, descs: &[Desc]) -> Result<(), ShmRingError> {
        let mut free = self.cached_free() as usize;
        if free < descs.len() {
            self.reload_head()?;
            free = self.cached_free() as usize;
            if free < descs.len() {
                return Err(ShmRingError::Full {
                    need: descs.len(),
                    free,
                });
            }
        }
        self.publish(descs);
        Ok(())
    }

    /// This end's tail: the index the next descriptor goes to (everything
    /// before it is published).
    pub fn position(&self) -> u64 {
        self.tail
    }

    /// The consumer's head as this end last read it (at or behind the real
    /// one).
    pub fn peer_position(&self) -> u64 {
        self.cached_head
    }

    /// Free slots by the cached head.
    #[inline(always)]
    fn cached_free(&self) -> u32 {
        // At most `capacity` apart (the `cached_head` invariant).
        self.raw.capacity() - self.tail.wrapping_sub(self.cached_head) as u32
    }

    /// Reloads the consumer's head; it must lie between the one we had and
    /// our tail.
    #[cold]
    fn reload_head(&mut self) -> Result<(), ShmRingError> {
        // Acquire: pairs with the consumer's Release store of the head in
        // `ShmConsumer::take`, made after its slot loads: the slots
        // before the head we see are read, we may overwrite them.
        let h = self.raw.head().load(Ordering::Acquire);
        self.cached_head = check(ShmIndex::Head, h, self.tail, self.cached_head, self.tail)?;
        Ok(())
    }

    /// Writes `descs` (which fit) into the slots from the tail on and
    /// publishes them.
    #[inline(always)]
    fn publish(&mut self, descs: &[Desc]) {
        if descs.is_empty() {
            return;
        }
        let (a, b) = self.raw.runs(self.tail, descs.len());
        let (da, db) = descs.split_at(a.len() / 2);
        for (words, descs) in [(a, da), (b, db)] {
            for (w, d) in words.chunks_exact(2).zip(descs) {
                // Relaxed: published by the Release store of the tail below.
                w[0].store(d.addr, Ordering::Relaxed);
                w[1].store(d.meta, Ordering::Relaxed);
            }
        }
        let pos = self.tail.wrapping_add(descs.len() as u64);
        self.tail = pos;
        // Release: pairs with the consumer's Acquire load of the tail
        // (`ShmConsumer::reload_tail`, and attach): the slot stores above
        // are visible to it once it sees this tail.
        self.raw.tail().store(pos, Ordering::Release);
    }
}

impl ShmConsumer {
    /// Becomes the consumer of the ring in `mem`, resuming at the
    /// published head (a consumer that dropped or died is continued after
    /// the last descriptor it released).
    ///
    /// Errors: the header checks, and `Corrupt` when the published tail is
    /// behind the head or more than the capacity ahead of it.
    ///
    /// # Safety
    ///
    /// As for [`ShmProducer::attach`], with "consumer" for "producer".
    pub unsafe fn attach(mem: NonNull<u8>, len: usize) -> Result<Self, ShmRingError> {
        // SAFETY: forwarded from the caller.
        let raw = unsafe { Raw::open(mem, len)? };
        // Acquire: pairs with the Release store of the head by the consumer
        // before us.
        let head = raw.head().load(Ordering::Acquire);
        // Acquire: pairs with the producer's Release store of the tail
        // (`ShmProducer::publish`): the slots before it are written.
        let tail = raw.tail().load(Ordering::Acquire);
        let cap = u64::from(raw.capacity());
        let tail = check(ShmIndex::Tail, tail, head, head, head.wrapping_add(cap))?;
        Ok(ShmConsumer {
            raw,
            head,
            cached_tail: tail,
        })
    }

    /// Descriptors the ring holds (read at attach).
    pub fn capacity(&self) -> u32 {
        self.raw.capacity()
    }

    /// Dequeues up to `out.len()` descriptors into `out` (reloading the
    /// tail only when the cached one shows too few); returns how many.
    #[inline]
    pub fn dequeue_burst(&mut self, out: &mut [Desc]) -> Result<usize, ShmRingError> {
        let mut avail = self.cached_avail() as usize;
        if avail < out.len() {
            self.reload_tail()?;
            avail = self.cached_avail() as usize;
        }
        let n = out.len().min(avail);
        self.take(&mut out[..n]);
        Ok(n)
    }

    /// Dequeues exactly `out.len()` descriptors or none (`Empty { need,
    /// available }`).
    #[inline]
    pub fn dequeue_bulk(&mut self, out: &mut [Desc]) -> Result<(), ShmRingError> {
        let mut avail = self.cached_avail() as usize;
        if avail < out.len() {
            self.reload_tail()?;
            avail = self.cached_avail() as usize;
            if avail < out.len() {
                return Err(ShmRingError::Empty {
                    need: out.len(),
                    available: avail,
                });
            }
        }
        self.take(out);
        Ok(())
    }

    /// Reloads and returns the producer's published tail (validated:
    /// `position()..=position() + capacity`, not behind the last one seen).
    pub fn peek_published(&mut self) -> Result<u64, ShmRingError> {
        self.reload_tail()?;
        Ok(self.cached_tail)
    }

    /// This end's head: the index of the next descriptor to read
    /// (everything before it is released to the producer).
    pub fn position(&self) -> u64 {
        self.head
    }

    /// The producer's tail as this end last read it.
    pub fn peer_position(&self) -> u64 {
        self.cached_tail
    }

    /// Published descriptors by the cached tail.
    #[inline(always)]
    fn cached_avail(&self) -> u32 {
        // At most `capacity` (the `cached_tail` invariant).
        self.cached_tail.wrapping_sub(self.head) as u32
    }

    /// Reloads the producer's tail; it must lie between the one we had and
    /// our head + capacity.
    #[cold]
    fn reload_tail(&mut self) -> Result<(), ShmRingError> {
        // Acquire: pairs with the producer's Release store of the tail in
        // `ShmProducer::publish`: the slots before it are written.
        let t = self.raw.tail().load(Ordering::Acquire);
        let max = self.head.wrapping_add(u64::from(self.raw.capacity()));
        self.cached_tail = check(ShmIndex::Tail, t, self.head, self.cached_tail, max)?;
        Ok(())
    }

    /// Reads `out.len()` published descriptors from the head on and
    /// releases their slots.
    #[inline(always)]
    fn take(&mut self, out: &mut [Desc]) {
        if out.is_empty() {
            return;
        }
        let (a, b) = self.raw.runs(self.head, out.len());
        let (oa, ob) = out.split_at_mut(a.len() / 2);
        for (words, out) in [(a, oa), (b, ob)] {
            for (w, d) in words.chunks_exact(2).zip(out.iter_mut()) {
                // Relaxed: ordered after the Acquire load of the tail that
                // showed these slots published, and before the Release
                // store of the head below.
                *d = Desc {
                    addr: w[0].load(Ordering::Relaxed),
                    meta: w[1].load(Ordering::Relaxed),
                };
            }
        }
        let pos = self.head.wrapping_add(out.len() as u64);
        self.head = pos;
        // Release: pairs with the producer's Acquire load of the head
        // (`ShmProducer::reload_head`, and attach): our slot loads above
        // are done before it overwrites those slots.
        self.raw.head().store(pos, Ordering::Release);
    }
}
