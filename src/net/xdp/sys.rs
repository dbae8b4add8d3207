//! The kernel's `AF_XDP` ABI (`linux/if_xdp.h`), as this module uses it:
//! option numbers, flags and the structures passed to `setsockopt`,
//! `getsockopt` and `bind`, each checked for size at compile time (the
//! kernel reads an option by its length, so padding would change what it
//! sees).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `AF_XDP` (address family 44).
pub(crate) const AF_XDP: libc::c_int = 44;
/// `SOL_XDP` (socket option level 283).
pub(crate) const SOL_XDP: libc::c_int = 283;

/// `bind` flag: copy mode.
pub(crate) const XDP_COPY: u16 = 1 << 1;
/// `bind` flag: zero-copy mode.
pub(crate) const XDP_ZEROCOPY: u16 = 1 << 2;
/// `bind` flag: the kernel sets `XDP_RING_NEED_WAKEUP` when it needs a
/// syscall to make progress.
pub(crate) const XDP_USE_NEED_WAKEUP: u16 = 1 << 3;

/// UMEM flag: chunks may start anywhere (not only at multiples of the
/// chunk size); descriptors carry an offset in bits 48..64.
pub(crate) const XDP_UMEM_UNALIGNED_CHUNK_FLAG: u32 = 1 << 0;

/// Ring flag word bit: the kernel wants a wake-up syscall.
pub(crate) const XDP_RING_NEED_WAKEUP: u32 = 1 << 0;

pub(crate) const XDP_MMAP_OFFSETS: libc::c_int = 1;
pub(crate) const XDP_RX_RING: libc::c_int = 2;
pub(crate) const XDP_TX_RING: libc::c_int = 3;
pub(crate) const XDP_UMEM_REG: libc::c_int = 4;
pub(crate) const XDP_UMEM_FILL_RING: libc::c_int = 5;
pub(crate) const XDP_UMEM_COMPLETION_RING: libc::c_int = 6;
pub(crate) const XDP_STATISTICS: libc::c_int = 7;
pub(crate) const XDP_OPTIONS: libc::c_int = 8;
/// `XDP_OPTIONS` bit: the socket is bound in zero-copy mode.
pub(crate) const XDP_OPTIONS_ZEROCOPY: u32 = 1 << 0;

/// `mmap` offsets of the four rings.
pub(crate) const XDP_PGOFF_RX_RING: libc::off_t = 0;
pub(crate) const XDP_PGOFF_TX_RING: libc::off_t = 0x8000_0000;
pub(crate) const XDP_UMEM_PGOFF_FILL_RING: libc::off_t = 0x1_0000_0000;
pub(crate) const XDP_UMEM_PGOFF_COMPLETION_RING: libc::off_t = 0x1_8000_0000;

/// Bits of an unaligned-mode address that hold the frame's base.
pub(crate) const UNALIGNED_ADDR_MASK: u64 = (1 << 48) - 1;
/// Shift of the offset in an unaligned-mode address.
pub(crate) const UNALIGNED_OFFSET_SHIFT: u32 = 48;

/// `struct xdp_umem_reg`, the current (v3) layout: no padding, 32 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct XdpUmemReg {
    pub addr: u64,
    pub len: u64,
    pub chunk_size: u32,
    pub headroom: u32,
    pub flags: u32,
    pub tx_metadata_len: u32,
}
const _: () = assert!(std::mem::size_of::<XdpUmemReg>() == 32);

/// `struct sockaddr_xdp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SockaddrXdp {
    pub family: u16,
    pub flags: u16,
    pub ifindex: u32,
    pub queue_id: u32,
    pub shared_umem_fd: u32,
}
const _: () = assert!(std::mem::size_of::<SockaddrXdp>() == 16);

/// `struct xdp_ring_offset` (with the flags word, since Linux 5.4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct XdpRingOffset {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

/// `struct xdp_mmap_offsets`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct XdpMmapOffsets {
    pub rx: XdpRingOffset,
    pub tx: XdpRingOffset,
    pub fr: XdpRingOffset,
    pub cr: XdpRingOffset,
}
const _: () = assert!(std::mem::size_of::<XdpMmapOffsets>() == 128);

/// `struct xdp_desc`: an RX or TX ring entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct XdpDesc {
    pub addr: u64,
    pub len: u32,
    pub options: u32,
}
const _: () = assert!(std::mem::size_of::<XdpDesc>() == 16);

/// `struct xdp_statistics` (v2: with the ring-full and empty counters).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct XdpStatistics {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}
const _: () = assert!(std::mem::size_of::<XdpStatistics>() == 48);

/// `setsockopt(fd, SOL_XDP, opt, value)`.
pub(crate) fn set_opt<T>(fd: BorrowedFd<'_>, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` of `size_of::<T>()` bytes the kernel
    // only reads during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            std::ptr::from_ref(value).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `getsockopt(fd, SOL_XDP, opt)` into a `T`; also returns the length the
/// kernel wrote.
pub(crate) fn get_opt<T: Default>(fd: BorrowedFd<'_>, opt: libc::c_int) -> io::Result<(T, usize)> {
    let mut v = T::default();
    let mut len = std::mem::size_of::<T>() as libc::socklen_t;
    // SAFETY: `v` is a live, writable `T` of `len` bytes; the kernel writes
    // at most `len` bytes and the new length into `len`. Every `T` used
    // here is plain integers, valid for any bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            SOL_XDP,
            opt,
            std::ptr::from_mut(&mut v).cast(),
            &mut len,
        )
    };
    if rc == 0 {
        Ok((v, len as usize))
    } else {
        Err(io::Error::last_os_error())
    }
}
