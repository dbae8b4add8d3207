//! Address-sanitizer hooks for memory the pktmem allocators hand out and take
//! back: the sanitizer only sees `malloc`/`free`, so free provider pages, free
//! [`SmallHeap`](crate::SmallHeap) blocks and free mempool objects are
//! *poisoned* by their owner (any access is reported as "use-after-poison")
//! and unpoisoned when handed out again.
//!
//! Active only when built with `--cfg pktmem_asan` (together with
//! `-Zsanitizer=address`, as `.ci/sanitizers` does); otherwise both functions
//! are empty and inline away. The allocators unpoison everything they
//! poisoned before the memory leaves them (chunk reservations released, pool
//! chunks freed), because the sanitizer's shadow outlives a `munmap`.
//!
//! ```
//! let mut buf = vec![0u8; 64];
//! let p = buf.as_mut_ptr();
//! // SAFETY: `buf` is this process's memory, unused while poisoned.
//! unsafe {
//!     pktmem_hugemem::asan::poison(p, 64);
//!     pktmem_hugemem::asan::unpoison(p, 64);
//! }
//! buf[0] = 1; // readable again
//! # assert_eq!(buf[0], 1);
//! ```

#[cfg(pktmem_asan)]
extern "C" {
    // From the ASan runtime (compiler-rt's `asan_interface.h`).
    fn __asan_poison_memory_region(addr: *const u8, size: usize);
    fn __asan_unpoison_memory_region(addr: *const u8, size: usize);
}

/// Marks `[addr, addr + len)` unaddressable for the sanitizer (a no-op without
/// `cfg(pktmem_asan)`). Granules of 8 bytes: a range that does not end on
/// one leaves its last partial granule addressable.
///
/// # Safety
/// - `[addr, addr + len)` is memory of this process (the sanitizer writes the range's
///   shadow; the shadow of an address outside application memory is not
///   mapped);
/// - nobody reads or writes the range until it is unpoisoned (or they get
///   a sanitizer report).
#[inline(always)]
pub unsafe fn poison(addr: *const u8, len: usize) {
    #[cfg(pktmem_asan)]
    // SAFETY: the caller's conditions are the runtime's.
    unsafe {
        __asan_poison_memory_region(addr, len)
    };
    let _ = (addr, len);
}

/// Makes `[addr, addr + len)` addressable again for the sanitizer (a no-op without
/// `cfg(pktmem_asan)`).
///
/// # Safety
/// - `[addr, addr + len)` is memory of this process (see [`poison`]).
#[inline(always)]
pub unsafe fn unpoison(addr: *const u8, len: usize) {
    #[cfg(pktmem_asan)]
    // SAFETY: the caller's condition is the runtime's.
    unsafe {
        __asan_unpoison_memory_region(addr, len)
    };
    let _ = (addr, len);
}
