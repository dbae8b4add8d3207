//! The UMEM's geometry: [`UmemConfig`] checked against every kernel rule
//! up front ([`UmemGeometry`]), the memory it goes into checked too
//! ([`UmemGeometry::check_chunk`]), and the address arithmetic of the
//! rings (fill addresses, RX descriptors checked before use, TX addresses,
//! completion addresses masked).

use std::fmt;

use crate::hugemem::{Chunk, Iova};

use super::sys::{UNALIGNED_ADDR_MASK, UNALIGNED_OFFSET_SHIFT};

/// Bytes the kernel keeps before every received packet, after the user
/// headroom (`XDP_PACKET_HEADROOM`).
pub const XDP_PACKET_HEADROOM: usize = 256;
/// Smallest frame (chunk) size the kernel takes (`XDP_UMEM_MIN_CHUNK_SIZE`).
pub const MIN_FRAME_SIZE: usize = 2048;
/// Largest frame size the kernel takes: the page size (4 KiB on `x86_64`;
/// this kernel refuses larger chunks even on hugepage memory).
pub const MAX_FRAME_SIZE: usize = 4096;
/// Bytes of every frame the kernel reserves besides the user headroom
/// (Linux 6.18 and the stable kernels with the stricter check):
/// `XDP_PACKET_HEADROOM` (256) + the aligned `skb_shared_info` (320) + the
/// minimum frame (128). The user headroom may be at most
/// `frame_size - KERNEL_RESERVED` (1344 for 2048-byte frames).
pub const KERNEL_RESERVED: usize = 704;
/// The page size the kernel's UMEM rules are about (start alignment,
/// per-page arrays, contiguity), whatever pages back the memory.
pub const UMEM_PAGE: usize = 4096;

/// How the kernel lays frames out in the UMEM.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChunkMode {
    /// Frames at multiples of a power-of-two frame size; descriptors are
    /// plain UMEM offsets.
    Aligned,
    /// `XDP_UMEM_UNALIGNED_CHUNK_FLAG`: any frame size in range; descriptors
    /// carry the frame's base in bits 0..48 and the offset in 48..64.
    Unaligned,
}

/// What a UMEM should look like: frames, frame size, user headroom, chunk
/// mode. [`validate`](Self::validate) checks it against the kernel's rules.
///
/// ```
/// use pktmem::net::xdp::{ChunkMode, UmemConfig, UmemConfigError};
/// let g = UmemConfig::new(4096).frame_size(2048).validate().unwrap();
/// assert_eq!((g.len(), g.mode()), (8 << 20, ChunkMode::Aligned));
/// // Not a power of two: unaligned mode, chosen from the size.
/// assert_eq!(UmemConfig::new(16).frame_size(3000).validate().unwrap().mode(), ChunkMode::Unaligned);
/// // The headroom limit of this kernel: frame size - 704.
/// assert!(matches!(
///     UmemConfig::new(16).headroom(1345).validate(),
///     Err(UmemConfigError::HeadroomTooLarge { headroom: 1345, frame_size: 2048, max: 1344 })
/// ));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct UmemConfig {
    frames: usize,
    frame_size: usize,
    headroom: usize,
    mode: Option<ChunkMode>,
}

impl UmemConfig {
    /// `frames` frames of 2048 bytes, no user headroom, the chunk mode
    /// chosen from the frame size.
    pub fn new(frames: usize) -> Self {
        UmemConfig {
            frames,
            frame_size: MIN_FRAME_SIZE,
            headroom: 0,
            mode: None,
        }
    }

    /// Bytes of each frame (the kernel's chunk size): 2048..=4096.
    pub fn frame_size(mut self, bytes: usize) -> Self {
        self.frame_size = bytes;
        self
    }

    /// Bytes the kernel leaves free at the start of each frame before its
    /// own 256 (`XDP_UMEM_REG`'s headroom).
    pub fn headroom(mut self, bytes: usize) -> Self {
        self.headroom = bytes;
        self
    }

    /// Forces a chunk mode (default: aligned for power-of-two frame sizes,
    /// unaligned otherwise). Aligned mode with another size is refused.
    pub fn mode(mut self, mode: ChunkMode) -> Self {
        self.mode = Some(mode);
        self
    }

    /// Checks every rule the kernel's `XDP_UMEM_REG` applies to the
    /// geometry (the memory's own rules are [`UmemGeometry::check_chunk`]'s).
    pub fn validate(&self) -> Result<UmemGeometry, UmemConfigError> {
        let fs = self.frame_size;
        if !(MIN_FRAME_SIZE..=MAX_FRAME_SIZE).contains(&fs) {
            return Err(UmemConfigError::FrameSizeOutOfRange {
                frame_size: fs,
                min: MIN_FRAME_SIZE,
                max: MAX_FRAME_SIZE,
            });
        }
        let mode = match self.mode {
            Some(m) => m,
            None if fs.is_power_of_two() => ChunkMode::Aligned,
            None => ChunkMode::Unaligned,
        };
        if mode == ChunkMode::Aligned && !fs.is_power_of_two() {
            return Err(UmemConfigError::NotPowerOfTwo { frame_size: fs });
        }
        let max = fs - KERNEL_RESERVED;
        if self.headroom > max {
            return Err(UmemConfigError::HeadroomTooLarge {
                headroom: self.headroom,
                frame_size: fs,
                max,
            });
        }
        if self.frames == 0 {
            return Err(UmemConfigError::NoFrames);
        }
        // The kernel counts chunks and pages in 32 bits; frame indices here
        // are `u32` too.
        let len = self.frames.checked_mul(fs);
        match len {
            Some(len)
                if u32::try_from(self.frames).is_ok() && u32::try_from(len / UMEM_PAGE).is_ok() => {
            }
            _ => {
                return Err(UmemConfigError::TooLarge {
                    frames: self.frames,
                    frame_size: fs,
                })
            }
        }
        Ok(UmemGeometry {
            frames: self.frames,
            frame_size: fs,
            headroom: self.headroom,
            mode,
        })
    }
}

/// Why a [`UmemConfig`] breaks a kernel rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UmemConfigError {
    /// The frame size is outside the kernel's range.
    FrameSizeOutOfRange {
        /// The frame size asked for.
        frame_size: usize,
        /// Smallest allowed (2048).
        min: usize,
        /// Largest allowed (the page size, 4096).
        max: usize,
    },
    /// Aligned mode needs a power-of-two frame size.
    NotPowerOfTwo {
        /// The frame size asked for.
        frame_size: usize,
    },
    /// The user headroom leaves the kernel too little of the frame.
    HeadroomTooLarge {
        /// The headroom asked for.
        headroom: usize,
        /// The frame size.
        frame_size: usize,
        /// Largest headroom for that frame size (`frame_size - 704`).
        max: usize,
    },
    /// A UMEM of no frames.
    NoFrames,
    /// More frames or bytes than the kernel's 32-bit counts allow.
    TooLarge {
        /// Frames asked for.
        frames: usize,
        /// The frame size.
        frame_size: usize,
    },
}

impl fmt::Display for UmemConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::FrameSizeOutOfRange {
                frame_size,
                min,
                max,
            } => write!(
                f,
                "UMEM frame size {frame_size} B is outside the kernel's {min}..={max} B"
            ),
            Self::NotPowerOfTwo { frame_size } => write!(
                f,
                "UMEM frame size {frame_size} B is not a power of two, which aligned mode needs \
                 (leave the mode to be chosen, or use unaligned mode)"
            ),
            Self::HeadroomTooLarge {
                headroom,
                frame_size,
                max,
            } => write!(
                f,
                "UMEM headroom {headroom} B is above {max} B, the most this kernel takes for \
                 {frame_size}-byte frames (frame size - {KERNEL_RESERVED})"
            ),
            Self::NoFrames => write!(f, "a UMEM needs at least one frame"),
            Self::TooLarge { frames, frame_size } => write!(
                f,
                "a UMEM of {frames} frames of {frame_size} B is past the kernel's 32-bit counts"
            ),
        }
    }
}

impl std::error::Error for UmemConfigError {}

/// A UMEM geometry that passed every kernel rule ([`UmemConfig::validate`]).
///
/// Frame `i` is the `frame_size` bytes at UMEM offset `i * frame_size`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UmemGeometry {
    frames: usize,
    frame_size: usize,
    headroom: usize,
    mode: ChunkMode,
}

/// Where an RX descriptor's packet lies: frame, offset in it, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxFrame {
    /// Index of the frame.
    pub frame: usize,
    /// Offset of the first packet byte from the frame's start.
    pub offset: usize,
    /// Bytes of the packet.
    pub len: usize,
}

/// Why an RX descriptor was refused (each a counter of the socket).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DescError {
    /// The base address is not the start of a frame.
    NotFrameStart {
        /// The descriptor's address.
        addr: u64,
    },
    /// The base address is past the UMEM's last frame.
    OutsideUmem {
        /// The descriptor's address.
        addr: u64,
    },
    /// The packet starts inside the user headroom.
    OffsetBelowHeadroom {
        /// The frame (a real one: its mbuf goes back to the pool).
        frame: usize,
        /// The packet's offset.
        offset: usize,
        /// The configured headroom.
        headroom: usize,
    },
    /// The packet runs past the end of its frame.
    PastFrameEnd {
        /// The frame (a real one: its mbuf goes back to the pool).
        frame: usize,
        /// The packet's offset.
        offset: usize,
        /// Its length.
        len: usize,
        /// The frame size.
        frame_size: usize,
    },
}

impl DescError {
    /// The frame the descriptor names, when it names a real one.
    pub fn frame(&self) -> Option<usize> {
        match *self {
            Self::OffsetBelowHeadroom { frame, .. } | Self::PastFrameEnd { frame, .. } => {
                Some(frame)
            }
            Self::NotFrameStart { .. } | Self::OutsideUmem { .. } => None,
        }
    }
}

impl fmt::Display for DescError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NotFrameStart { addr } => {
                write!(f, "descriptor {addr:#x}: base is not a frame start")
            }
            Self::OutsideUmem { addr } => write!(f, "descriptor {addr:#x}: past the UMEM"),
            Self::OffsetBelowHeadroom {
                frame,
                offset,
                headroom,
            } => write!(
                f,
                "descriptor of frame {frame}: offset {offset} is inside the {headroom}-byte headroom"
            ),
            Self::PastFrameEnd {
                frame,
                offset,
                len,
                frame_size,
            } => write!(
                f,
                "descriptor of frame {frame}: {len} B at offset {offset} run past the {frame_size}-byte frame"
            ),
        }
    }
}

impl std::error::Error for DescError {}

/// Why memory cannot hold a UMEM of a given geometry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UmemMemoryError {
    /// The first byte is not on a 4 KiB page boundary.
    StartNotPageAligned {
        /// Its address.
        addr: usize,
    },
    /// The UMEM is longer than the memory.
    OutsideMemory {
        /// Bytes the UMEM needs.
        umem_len: usize,
        /// Bytes of the memory.
        mem_len: usize,
    },
    /// A frame crosses into a 4 KiB page whose IOVA does not follow the
    /// previous page's (a device would read or write the wrong memory; the
    /// kernel silently drops such frames in zero-copy mode).
    FrameNotIovaContiguous {
        /// The frame.
        frame: usize,
        /// UMEM offset of the page boundary it crosses.
        boundary: usize,
        /// IOVA the byte before the boundary has.
        before: Option<Iova>,
        /// IOVA the byte at the boundary has.
        after: Option<Iova>,
    },
}

impl fmt::Display for UmemMemoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::StartNotPageAligned { addr } => write!(
                f,
                "UMEM start {addr:#x} is not on a {UMEM_PAGE}-byte page boundary"
            ),
            Self::OutsideMemory { umem_len, mem_len } => write!(
                f,
                "a UMEM of {umem_len} B does not fit in {mem_len} B of memory"
            ),
            Self::FrameNotIovaContiguous {
                frame,
                boundary,
                before,
                after,
            } => write!(
                f,
                "UMEM frame {frame} crosses the page boundary at offset {boundary:#x} into a page \
                 whose IOVA does not follow on (byte before: {before:x?}, at: {after:x?})"
            ),
        }
    }
}

impl std::error::Error for UmemMemoryError {}

impl UmemGeometry {
    /// Frames in the UMEM.
    pub fn frames(&self) -> usize {
        self.frames
    }

    /// Bytes of each frame.
    pub fn frame_size(&self) -> usize {
        self.frame_size
    }

    /// The user headroom.
    pub fn headroom(&self) -> usize {
        self.headroom
    }

    /// The chunk mode.
    pub fn mode(&self) -> ChunkMode {
        self.mode
    }

    /// Bytes of the UMEM (`frames * frame_size`).
    pub fn len(&self) -> usize {
        self.frames * self.frame_size
    }

    /// Always false: a geometry has at least one frame.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Offset of a received packet's first byte from its frame's start in
    /// copy mode: headroom + 256.
    pub fn rx_offset(&self) -> usize {
        self.headroom + XDP_PACKET_HEADROOM
    }

    /// Checks memory of `mem_len` bytes at `addr` for this geometry: a
    /// page-aligned start, room for the whole UMEM, and no frame crossing
    /// into a page whose IOVA does not follow on (`iova_at(offset)` gives
    /// the IOVA of the byte at a UMEM offset; memory without IOVAs at all
    /// passes, as no device sees its addresses).
    pub fn check_memory(
        &self,
        addr: usize,
        mem_len: usize,
        iova_at: impl Fn(usize) -> Option<Iova>,
    ) -> Result<(), UmemMemoryError> {
        if addr % UMEM_PAGE != 0 {
            return Err(UmemMemoryError::StartNotPageAligned { addr });
        }
        if self.len() > mem_len {
            return Err(UmemMemoryError::OutsideMemory {
                umem_len: self.len(),
                mem_len,
            });
        }
        let fs = self.frame_size;
        for frame in 0..self.frames {
            let start = frame * fs;
            // Page boundaries strictly inside the frame (at most one: a
            // frame is at most a page).
            let mut b = (start / UMEM_PAGE + 1) * UMEM_PAGE;
            while b < start + fs {
                let (before, after) = (iova_at(b - 1), iova_at(b));
                let ok = match (before, after) {
                    (Some(x), Some(y)) => x.0.checked_add(1) == Some(y.0),
                    (None, None) => true,
                    _ => false,
                };
                if !ok {
                    return Err(UmemMemoryError::FrameNotIovaContiguous {
                        frame,
                        boundary: b,
                        before,
                        after,
                    });
                }
                b += UMEM_PAGE;
            }
        }
        Ok(())
    }

    /// [`check_memory`](Self::check_memory) for a provider chunk (IOVAs from
    /// the provider's page table).
    pub fn check_chunk(&self, chunk: &Chunk) -> Result<(), UmemMemoryError> {
        self.check_memory(chunk.as_ptr().as_ptr() as usize, chunk.len(), |off| {
            chunk.iova_at(off)
        })
    }

    /// The fill-ring address of frame `frame` (its base).
    #[inline(always)]
    pub(crate) fn fill_addr(&self, frame: usize) -> u64 {
        (frame * self.frame_size) as u64
    }

    /// The TX descriptor address of `offset` in frame `frame`.
    #[inline(always)]
    pub(crate) fn tx_addr(&self, frame: usize, offset: usize) -> u64 {
        let base = (frame * self.frame_size) as u64;
        match self.mode {
            ChunkMode::Aligned => base + offset as u64,
            ChunkMode::Unaligned => base | ((offset as u64) << UNALIGNED_OFFSET_SHIFT),
        }
    }

    /// Splits a ring address into base and offset.
    #[inline(always)]
    fn split(&self, addr: u64) -> (u64, u64) {
        match self.mode {
            ChunkMode::Aligned => {
                let mask = self.frame_size as u64 - 1;
                (addr & !mask, addr & mask)
            }
            ChunkMode::Unaligned => (addr & UNALIGNED_ADDR_MASK, addr >> UNALIGNED_OFFSET_SHIFT),
        }
    }

    /// The frame whose base `base` is, in O(1): a multiple of the frame
    /// size, below the UMEM's end.
    #[inline(always)]
    fn frame_of_base(&self, addr: u64, base: u64) -> Result<usize, DescError> {
        let fs = self.frame_size as u64;
        if base % fs != 0 {
            return Err(DescError::NotFrameStart { addr });
        }
        let frame = base / fs;
        if frame >= self.frames as u64 {
            return Err(DescError::OutsideUmem { addr });
        }
        Ok(frame as usize)
    }

    /// Checks an RX descriptor before anything uses it: its base is a frame
    /// start inside the UMEM (O(1)), the packet starts at or after the
    /// headroom and ends inside the frame. Whether the frame really is with
    /// the kernel is the socket's check.
    ///
    /// ```
    /// use pktmem::net::xdp::{DescError, RxFrame, UmemConfig};
    /// let g = UmemConfig::new(64).frame_size(3000).headroom(64).validate().unwrap(); // unaligned
    /// let ok = 6000 | (320u64 << 48);
    /// assert_eq!(g.check_rx_desc(ok, 100), Ok(RxFrame { frame: 2, offset: 320, len: 100 }));
    /// assert_eq!(g.check_rx_desc(6001 | (320 << 48), 100), Err(DescError::NotFrameStart { addr: 6001 | (320 << 48) }));
    /// assert!(matches!(g.check_rx_desc(ok, 2681), Err(DescError::PastFrameEnd { frame: 2, .. })));
    /// assert!(matches!(g.check_rx_desc(6000 | (32 << 48), 10), Err(DescError::OffsetBelowHeadroom { .. })));
    /// assert!(matches!(g.check_rx_desc(64 * 3000, 10), Err(DescError::OutsideUmem { .. })));
    /// ```
    #[inline]
    pub fn check_rx_desc(&self, addr: u64, len: u32) -> Result<RxFrame, DescError> {
        let (base, off) = self.split(addr);
        let frame = self.frame_of_base(addr, base)?;
        let (offset, len) = (off as usize, len as usize);
        if offset < self.headroom {
            return Err(DescError::OffsetBelowHeadroom {
                frame,
                offset,
                headroom: self.headroom,
            });
        }
        if offset.saturating_add(len) > self.frame_size {
            return Err(DescError::PastFrameEnd {
                frame,
                offset,
                len,
                frame_size: self.frame_size,
            });
        }
        Ok(RxFrame { frame, offset, len })
    }

    /// The frame a completion-ring address names, its offset bits masked
    /// off (the kernel returns the submitted address, offset included);
    /// `None` when it names no frame.
    ///
    /// ```
    /// use pktmem::net::xdp::UmemConfig;
    /// let g = UmemConfig::new(8).frame_size(3000).validate().unwrap();
    /// assert_eq!(g.completion_frame(3000 | (128 << 48)), Some(1));
    /// assert_eq!(g.completion_frame(3001), None);
    /// let a = UmemConfig::new(8).validate().unwrap(); // 2048, aligned
    /// assert_eq!(a.completion_frame(2 * 2048 + 128), Some(2));
    /// assert_eq!(a.completion_frame(8 * 2048), None);
    /// ```
    #[inline]
    pub fn completion_frame(&self, addr: u64) -> Option<usize> {
        let (base, _) = self.split(addr);
        self.frame_of_base(addr, base).ok()
    }
}
