//! Byte copies to and from memory another process can write.
//!
//! A `&[u8]` of shared memory would promise the compiler that nobody changes
//! the bytes while the reference lives; a peer can, so every byte of a
//! shared buffer is reached through these copies instead: aligned volatile
//! `u64` loads and stores for the body, volatile single bytes at the edges.
//! Private memory (the caller's slices) is read and written normally.

use std::ptr;

/// Bytes moved per wide access.
const WORD: usize = std::mem::size_of::<u64>();

/// How many bytes from `addr` to the next 8-byte boundary (0 when aligned),
/// at most `len`.
fn lead_in(addr: usize, len: usize) -> usize {
    let mis = addr % WORD;
    if mis == 0 {
        0
    } else {
        (WORD - mis).min(len)
    }
}

/// Copies `dst.len()` bytes from shared memory at `src` into `dst`.
///
/// # Safety
///
/// - `src..src + dst.len()` is mapped and readable for the whole call (other
///   processes may write it meanwhile: the copy then holds some mix of old
///   and new bytes, never undefined behaviour).
/// - `dst` does not overlap `src..src + dst.len()`.
pub(crate) unsafe fn read_bytes(src: *const u8, dst: &mut [u8]) {
    let len = dst.len();
    let head = lead_in(src as usize, len);
    let body = (len - head) / WORD;
    let d = dst.as_mut_ptr();
    // SAFETY: every offset read is `< len`, inside the readable range the
    // caller promised; every offset written is `< len`, inside `dst`.
    unsafe {
        for i in 0..head {
            *d.add(i) = ptr::read_volatile(src.add(i));
        }
        // Aligned: `head` bytes were moved to get to an 8-byte boundary.
        #[allow(clippy::cast_ptr_alignment)]
        let words = src.add(head).cast::<u64>();
        for w in 0..body {
            // `words` is 8-byte aligned (`head` bytes were taken to get there).
            let v = ptr::read_volatile(words.add(w));
            ptr::write_unaligned(d.add(head + w * WORD).cast::<u64>(), v);
        }
        for i in head + body * WORD..len {
            *d.add(i) = ptr::read_volatile(src.add(i));
        }
    }
}

/// Copies `src` into shared memory at `dst`.
///
/// # Safety
///
/// - `dst..dst + src.len()` is mapped and writable for the whole call.
/// - `src` does not overlap `dst..dst + src.len()`.
pub(crate) unsafe fn write_bytes(dst: *mut u8, src: &[u8]) {
    let len = src.len();
    let head = lead_in(dst as usize, len);
    let body = (len - head) / WORD;
    let s = src.as_ptr();
    // SAFETY: every offset written is `< len`, inside the writable range the
    // caller promised; every offset read is `< len`, inside `src`.
    unsafe {
        for i in 0..head {
            ptr::write_volatile(dst.add(i), *s.add(i));
        }
        // Aligned: `head` bytes were moved to get to an 8-byte boundary.
        #[allow(clippy::cast_ptr_alignment)]
        let words = dst.add(head).cast::<u64>();
        for w in 0..body {
            let v = ptr::read_unaligned(s.add(head + w * WORD).cast::<u64>());
            // `words` is 8-byte aligned (`head` bytes were written to get there).
            ptr::write_volatile(words.add(w), v);
        }
        for i in head + body * WORD..len {
            ptr::write_volatile(dst.add(i), *s.add(i));
        }
    }
}

/// Sets `len` bytes of shared memory at `dst` to `byte`.
///
/// # Safety
///
/// `dst..dst + len` is mapped and writable for the whole call.
pub(crate) unsafe fn fill_bytes(dst: *mut u8, len: usize, byte: u8) {
    let head = lead_in(dst as usize, len);
    let body = (len - head) / WORD;
    let word = u64::from_ne_bytes([byte; WORD]);
    // SAFETY: every offset written is `< len`, inside the writable range the
    // caller promised; the word stores are 8-byte aligned (after `head`).
    unsafe {
        for i in 0..head {
            ptr::write_volatile(dst.add(i), byte);
        }
        // Aligned: `head` bytes were moved to get to an 8-byte boundary.
        #[allow(clippy::cast_ptr_alignment)]
        let words = dst.add(head).cast::<u64>();
        for w in 0..body {
            ptr::write_volatile(words.add(w), word);
        }
        for i in head + body * WORD..len {
            ptr::write_volatile(dst.add(i), byte);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every start offset and length up to 40 against `copy_from_slice`,
    /// with the bytes around the window checked untouched.
    #[test]
    fn copies_match_slices_at_every_alignment() {
        let pattern: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        for off in 0..16 {
            for len in 0..40 {
                let mut shared = vec![0xeeu8; 64];
                // SAFETY: `off + len <= 56 < 64`: inside `shared`; `pattern`
                // is a different allocation.
                unsafe { write_bytes(shared.as_mut_ptr().add(off), &pattern[..len]) };
                let mut want = vec![0xeeu8; 64];
                want[off..off + len].copy_from_slice(&pattern[..len]);
                assert_eq!(shared, want, "write off {off} len {len}");

                let mut out = vec![0x55u8; len];
                // SAFETY: as above, reading.
                unsafe { read_bytes(shared.as_ptr().add(off), &mut out) };
                assert_eq!(out, pattern[..len], "read off {off} len {len}");

                // SAFETY: as above.
                unsafe { fill_bytes(shared.as_mut_ptr().add(off), len, 0x7a) };
                want[off..off + len].fill(0x7a);
                assert_eq!(shared, want, "fill off {off} len {len}");
            }
        }
    }
}
