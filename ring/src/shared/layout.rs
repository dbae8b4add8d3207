//! Where each word of a shared ring lives (for a peer written in another
//! language, and for tests that play a hostile peer). All words are
//! little-endian host integers, reached only atomically:
//!
//! | bytes | word | written by |
//! |---|---|---|
//! | 0..8 | magic `u64` ([`MAGIC`]) | `init_shm_ring`, last |
//! | 8..12 | capacity `u32` (a power of two, ≤ [`MAX_CAPACITY`]) | `init_shm_ring` |
//! | 12..16 | version `u32` ([`VERSION`]) | `init_shm_ring` |
//! | 128..136 | producer `tail: u64` (its own 128-byte block) | the producer |
//! | 256..264 | consumer `head: u64` (its own 128-byte block) | the consumer |
//! | 384.. | slots: `capacity` × { `addr: u64`, `meta: u64` }; index `i` in slot `i & (capacity - 1)` | the producer |
//!
//! Within this crate, `Raw` is the validated view of that memory.

use std::ptr::NonNull;

use super::error::ShmRingError;
use crate::sync::{AtomicU32, AtomicU64, Ordering};

/// The ring's magic number, the first word of its memory: `"PKSHRING"` read
/// as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"PKSHRING");
/// The layout version [`init_shm_ring`](super::init_shm_ring) writes and
/// attach accepts.
pub const VERSION: u32 = 1;
/// The largest capacity (descriptors) a shared ring may have: 2²⁴.
pub const MAX_CAPACITY: u32 = 1 << 24;
/// Alignment the ring's memory must have (that of `AtomicU64`). 128 is
/// better: the producer and consumer words then sit on cache-line pairs of
/// their own.
pub const ALIGN: usize = 8;

/// Byte offset of the magic `u64`.
pub const MAGIC_OFFSET: usize = 0;
/// Byte offset of the capacity `u32` (8).
pub const CAPACITY_OFFSET: usize = MAGIC_OFFSET + size_of::<AtomicU64>();
/// Byte offset of the version `u32` (12).
pub const VERSION_OFFSET: usize = CAPACITY_OFFSET + size_of::<AtomicU32>();
/// Byte offset of the producer's `tail: u64` (its own 128-byte block).
pub const TAIL_OFFSET: usize = 128;
/// Byte offset of the consumer's `head: u64` (its own 128-byte block).
pub const HEAD_OFFSET: usize = 256;
/// Byte offset of slot 0.
pub const SLOTS_OFFSET: usize = 384;
/// Bytes per slot: `addr: u64` then `meta: u64` (16).
pub const SLOT_SIZE: usize = 2 * size_of::<AtomicU64>();

// The documented layout is the one this build uses (loom's atomics are the
// same size, so the models run on it too).
#[cfg(not(loom))]
const _: () = {
    assert!(CAPACITY_OFFSET == 8 && VERSION_OFFSET == 12 && SLOT_SIZE == 16);
    assert!(size_of::<AtomicU64>() == 8 && align_of::<AtomicU64>() == ALIGN);
};
const _: () = assert!(VERSION_OFFSET + size_of::<AtomicU32>() <= TAIL_OFFSET);

/// Bytes of memory a shared ring of `capacity` descriptors takes: the
/// header and index blocks (384 bytes) plus 16 bytes per slot. Computed
/// for any `capacity`; [`init_shm_ring`](super::init_shm_ring) says whether
/// it is a valid one.
///
/// ```
/// use pktmem_ring::shared::shm_ring_bytes;
/// assert_eq!(shm_ring_bytes(1024), 384 + 1024 * 16);
/// ```
pub fn shm_ring_bytes(capacity: u32) -> usize {
    SLOTS_OFFSET + capacity as usize * SLOT_SIZE
}

/// Checks a capacity: a power of two in `1..=MAX_CAPACITY`.
pub(crate) fn check_capacity(capacity: u32) -> Result<(), ShmRingError> {
    if capacity.is_power_of_two() && capacity <= MAX_CAPACITY {
        Ok(())
    } else {
        Err(ShmRingError::BadCapacity {
            capacity,
            max: MAX_CAPACITY,
        })
    }
}

/// Checks the alignment and that `len` covers `need` bytes.
pub(crate) fn check_memory(mem: NonNull<u8>, len: usize, need: usize) -> Result<(), ShmRingError> {
    let addr = mem.as_ptr() as usize;
    if addr % ALIGN != 0 {
        return Err(ShmRingError::Misaligned { addr, align: ALIGN });
    }
    if len < need {
        return Err(ShmRingError::TooSmall { need, have: len });
    }
    Ok(())
}

/// A shared ring's memory, its header checked once: the capacity (and so
/// the mask) is the one read when the view was made and is never re-read,
/// so a peer rewriting the header later changes nothing here.
///
/// Invariant (the contract of [`Raw::open`] / [`Raw::init`]): `base` is
/// valid for reads and writes of `shm_ring_bytes(capacity)` bytes, aligned
/// to [`ALIGN`], for as long as this value lives, and every access to those
/// bytes, in this process or another, is atomic (or by another process,
/// which cannot race with us in the Rust sense: it is outside our abstract
/// machine, and we only touch the words through atomics).
#[derive(Debug)]
pub(crate) struct Raw {
    base: NonNull<u8>,
    /// Slot 0's `addr` word.
    slots: NonNull<AtomicU64>,
    capacity: u32,
    mask: u64,
}

impl Raw {
    /// Writes a fresh header, both indices at 0 and zeroed slots.
    ///
    /// # Safety
    ///
    /// `mem` is valid for reads and writes of `len` bytes for the duration
    /// of the call and reached by nobody else meanwhile except through
    /// atomics (no end of this ring is live).
    pub(crate) unsafe fn init(
        mem: NonNull<u8>,
        len: usize,
        capacity: u32,
    ) -> Result<(), ShmRingError> {
        check_capacity(capacity)?;
        check_memory(mem, len, shm_ring_bytes(capacity))?;
        let raw = Raw::new_unchecked(mem, capacity);
        // SAFETY: every offset below is inside the `shm_ring_bytes(capacity)`
        // bytes just checked, aligned to 8 (base aligned, offsets multiples
        // of 8), and the caller gives us those bytes for the call.
        unsafe {
            init_u64(raw.word::<AtomicU64>(MAGIC_OFFSET), 0);
            init_u32(raw.word::<AtomicU32>(CAPACITY_OFFSET), capacity);
            init_u32(raw.word::<AtomicU32>(VERSION_OFFSET), VERSION);
            init_u64(raw.word::<AtomicU64>(TAIL_OFFSET), 0);
            init_u64(raw.word::<AtomicU64>(HEAD_OFFSET), 0);
            for i in 0..u64::from(capacity) * 2 {
                init_u64(raw.slots.as_ptr().add(i as usize), 0);
            }
            // Release: pairs with the Acquire load of the magic in `open`: an
            // end that sees the magic sees the header, indices and slots
            // written above. (Under loom the ring is made before the model's
            // threads start, which orders it for them.)
            #[cfg(not(loom))]
            (*raw.word::<AtomicU64>(MAGIC_OFFSET)).store(MAGIC, Ordering::Release);
            #[cfg(loom)]
            init_u64(raw.word::<AtomicU64>(MAGIC_OFFSET), MAGIC);
        }
        Ok(())
    }

    /// Checks the header of a ring made by [`Raw::init`] and returns a view
    /// of it.
    ///
    /// # Safety
    ///
    /// `mem` is valid for reads and writes of `len` bytes for as long as
    /// the returned value lives, and every access to them by this process
    /// is atomic (the type invariant).
    pub(crate) unsafe fn open(mem: NonNull<u8>, len: usize) -> Result<Raw, ShmRingError> {
        check_memory(mem, len, SLOTS_OFFSET)?;
        let head = Raw::new_unchecked(mem, 1);
        // SAFETY: the header words are inside the `SLOTS_OFFSET` bytes just
        // checked and aligned; the caller gives us the memory and promises
        // only atomic access to it.
        let (magic, version, capacity) = unsafe {
            (
                // Acquire: pairs with the Release store of the magic at the
                // end of `init`: the rest of the header is written.
                (*head.word::<AtomicU64>(MAGIC_OFFSET)).load(Ordering::Acquire),
                // Relaxed: ordered after the Acquire load above.
                (*head.word::<AtomicU32>(VERSION_OFFSET)).load(Ordering::Relaxed),
                (*head.word::<AtomicU32>(CAPACITY_OFFSET)).load(Ordering::Relaxed),
            )
        };
        if magic != MAGIC {
            return Err(ShmRingError::BadMagic {
                found: magic,
                expected: MAGIC,
            });
        }
        if version != VERSION {
            return Err(ShmRingError::BadVersion {
                found: version,
                ours: VERSION,
            });
        }
        check_capacity(capacity)?;
        check_memory(mem, len, shm_ring_bytes(capacity))?;
        Ok(Raw::new_unchecked(mem, capacity))
    }

    /// The view, with no check (the callers check first).
    fn new_unchecked(base: NonNull<u8>, capacity: u32) -> Raw {
        // SAFETY: `SLOTS_OFFSET` is inside the memory every caller has
        // checked (at least the header) and `base` is not null, so neither
        // is the sum (it does not wrap: the memory is a valid allocation).
        let slots = unsafe { NonNull::new_unchecked(base.as_ptr().add(SLOTS_OFFSET).cast()) };
        Raw {
            base,
            slots,
            capacity,
            mask: u64::from(capacity) - 1,
        }
    }

    /// A pointer to the word at byte `off`.
    fn word<W>(&self, off: usize) -> *mut W {
        self.base.as_ptr().wrapping_add(off).cast()
    }

    /// The capacity read from the header when the view was made.
    #[inline(always)]
    pub(crate) fn capacity(&self) -> u32 {
        self.capacity
    }

    /// The producer's tail word.
    #[inline(always)]
    pub(crate) fn tail(&self) -> &AtomicU64 {
        // SAFETY: `TAIL_OFFSET` is inside the checked header, aligned; the
        // type invariant keeps the memory valid and every access atomic, so
        // a shared reference to the atomic is sound even while another
        // process stores to it.
        unsafe { &*self.word::<AtomicU64>(TAIL_OFFSET) }
    }

    /// The consumer's head word.
    #[inline(always)]
    pub(crate) fn head(&self) -> &AtomicU64 {
        // SAFETY: as in `tail`, for `HEAD_OFFSET`.
        unsafe { &*self.word::<AtomicU64>(HEAD_OFFSET) }
    }

    /// The `addr` and `meta` words of the slot for index `pos` (masked:
    /// any `pos` gives a slot inside the ring).
    #[inline(always)]
    pub(crate) fn slot(&self, pos: u64) -> (&AtomicU64, &AtomicU64) {
        let i = ((pos & self.mask) * 2) as usize;
        // SAFETY: `pos & mask < capacity`, so words `2i` and `2i + 1` are
        // inside the `capacity * SLOT_SIZE` bytes after `SLOTS_OFFSET` that
        // `open` / `init` checked; aligned; atomic access only (invariant).
        unsafe {
            let p = self.slots.as_ptr().add(i);
            (&*p, &*p.add(1))
        }
    }
}

impl Raw {
    /// The slot words of `n <= capacity` descriptors from index `pos` on,
    /// as two runs (the second non-empty when the run wraps round the
    /// array): `2 × n` words in all, `addr` then `meta` for each.
    #[inline(always)]
    pub(crate) fn runs(&self, pos: u64, n: usize) -> (&[AtomicU64], &[AtomicU64]) {
        let cap = self.capacity as usize;
        let n = n.min(cap);
        let start = (pos & self.mask) as usize;
        let first = n.min(cap - start);
        // SAFETY: `start + first <= capacity` and `n - first <= capacity`,
        // so both runs are inside the checked slot array; aligned; atomic
        // access only (the type invariant), so shared slices of atomics
        // are sound while another process stores to them.
        unsafe {
            let slots = self.slots.as_ptr();
            (
                std::slice::from_raw_parts(slots.add(start * 2), first * 2),
                std::slice::from_raw_parts(slots, (n - first) * 2),
            )
        }
    }
}

/// Writes the initial value of a `u64` word: under std a Relaxed store
/// into the existing word (memory handed to us is initialised bytes, a
/// valid atomic), under loom a new loom atomic written there, which is how
/// loom learns of the word (its atomics are handles into the model's state,
/// made by `new`).
///
/// # Safety
///
/// `p` is valid for writes and aligned, and no end uses the ring meanwhile.
unsafe fn init_u64(p: *mut AtomicU64, v: u64) {
    #[cfg(not(loom))]
    // SAFETY: `p` is valid and aligned (caller); the bytes are initialised.
    unsafe {
        (*p).store(v, Ordering::Relaxed);
    }
    #[cfg(loom)]
    // SAFETY: `p` is valid for writes and aligned (caller); a loom atomic
    // owns nothing, so overwriting an old one leaks nothing.
    unsafe {
        p.write(AtomicU64::new(v));
    }
}

/// [`init_u64`] for a `u32` word.
///
/// # Safety
///
/// As for [`init_u64`].
unsafe fn init_u32(p: *mut AtomicU32, v: u32) {
    #[cfg(not(loom))]
    // SAFETY: as in `init_u64`.
    unsafe {
        (*p).store(v, Ordering::Relaxed);
    }
    #[cfg(loom)]
    // SAFETY: as in `init_u64`.
    unsafe {
        p.write(AtomicU32::new(v));
    }
}
