//! The OS calls of the crate: anonymous mappings and the page size.

use std::ptr::NonNull;

/// The small-page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(v).ok().filter(|&v| v > 0).unwrap_or(4096)
}

/// A private anonymous mapping, unmapped on drop.
#[derive(Debug)]
pub(crate) struct AnonMap {
    /// Start of the mapping. Invariant: `len` bytes mapped read-write, owned
    /// by this value.
    addr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value.
unsafe impl Send for AnonMap {}

impl AnonMap {
    pub(crate) fn new(len: usize) -> std::io::Result<Self> {
        // SAFETY: a fresh anonymous mapping; no existing memory is affected.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Self {
            addr: NonNull::new(p.cast::<u8>())
                .ok_or_else(|| std::io::Error::other("mmap returned null"))?,
            len,
        })
    }

    pub(crate) fn addr(&self) -> NonNull<u8> {
        self.addr
    }
}

impl Drop for AnonMap {
    fn drop(&mut self) {
        // SAFETY: we own the mapping (invariant on `addr`).
        unsafe { libc::munmap(self.addr.as_ptr().cast(), self.len) };
    }
}
