//! A `TPACKET_V3` receive ring (`AF_PACKET` with `PACKET_RX_RING`) on one
//! interface, whose frames become external-buffer mbufs with no copy.
//!
//! # Model
//!
//! The kernel writes received frames into a ring of *blocks* mapped into
//! this process. A block belongs to the kernel while its status word is
//! `TP_STATUS_KERNEL`; the kernel fills it with frames, then *retires* it
//! (full, or when the retire timeout passes) by storing `TP_STATUS_USER`.
//! From then on it is ours until we store `TP_STATUS_KERNEL` again; the
//! kernel fills the blocks in order and stops (counting a *freeze*, then
//! dropping frames) when the next block is still ours.
//!
//! [`PacketRing::rx_burst`] reads the next block's status with an Acquire
//! load. When the block is ours it makes **one external buffer for the
//! whole block** (one shared info: an [`ExtRegion`], an [`ExtBuf`](crate::mbuf::ExtBuf) of any
//! length, since blocks are usually longer than an mbuf's 16-bit buffer),
//! whose release stores `TP_STATUS_KERNEL` with Release ordering: the block
//! goes back to the kernel when the last reference goes, on whichever
//! thread drops it. Each frame of the block becomes an [`Mbuf`] of the
//! caller's pool attached to a [slice](ExtRegion::slice) of it (an
//! `ExtBuf` of the frame's bytes, from the Ethernet header, exactly
//! `tp_snaplen` of them, exposed with [`grow_tail`](Mbuf::grow_tail)); the
//! ring drops its own handle once every frame of the block is handed
//! out. So the shared refcount does the
//! bookkeeping: a block is back with the kernel exactly when no mbuf (or
//! clone) of any of its frames is left, and blocks can come back in any
//! order.
//!
//! No `&[u8]` is ever formed to a block the kernel owns: status words are
//! read and written as atomics through raw pointers, frame headers are read
//! with raw-pointer reads only after the Acquire load saw the block ours.
//!
//! The mapping and the socket are owned by a shared owner (an `Arc`) that
//! the ring and every block's release hold: dropping the [`PacketRing`]
//! while mbufs of its frames are still alive keeps the mapping (and the
//! socket) until the last of them is gone; then the ring memory is
//! unregistered from the provider, unmapped, and the socket closed. The
//! provider holds the mapping too: while a user holds a lease on the range
//! ([`Provider::lease_external`]), the unregistration, and with it the
//! unmap, waits for the last lease; a provider dropped first leaves the
//! mapping to the ring.
//!
//! The mapped ring is registered with the [`Provider`] as external memory,
//! with one IOVA per page (the physical address in IOVA mode PA, read from
//! the page map; the virtual address in VA mode), so each frame's mbuf has
//! its IOVA when its block is IOVA-contiguous.
//!
//! # Limits
//!
//! Blocks are at most [`MAX_BLOCK_SIZE`] (4 MiB), so that the frames of one
//! block (69 bytes or more each, headers included) never need more
//! references than the 16-bit shared count holds.
//!
//! Nothing the kernel wrote is trusted: a block's first-frame offset and
//! frame count, and each frame's header (where its bytes start, how many
//! there are, where the next frame is) are checked against the block
//! before use. A frame or link outside the block, a frame starting inside
//! its own header, or a link to a next frame that would overlap this one
//! ends the block there, counted as [`RingStats::malformed`]; the frames
//! before it are delivered, and the block goes back as usual.
//!
//! A frame is at most 65,535 bytes (an mbuf's buffer) and never longer
//! than its block (the kernel truncates longer ones: counted as
//! [`RingStats::truncated`]; a frame the kernel passes longer than an mbuf
//! can hold is counted as [`RingStats::malformed`] and skipped).
//!
//! ```no_run
//! // Needs root (CAP_NET_RAW, and CAP_NET_ADMIN for the veth pair).
//! use pktmem::hugemem::Provider;
//! use pktmem::mbuf::PktPool;
//! use pktmem::net::{af_packet::PacketRing, netns::VethPair};
//! use std::time::Duration;
//!
//! let veth = VethPair::create().expect("root");
//! let provider = Provider::builder().build().unwrap();
//! let pool = PktPool::builder(4095).data_room(0).build_on(&provider).unwrap();
//! let mut cache = pool.cache();
//! let mut ring = PacketRing::builder()
//!     .block_size(1 << 20)
//!     .block_count(8)
//!     .retire_timeout(Duration::from_millis(5))
//!     .build(veth.host_ifindex(), &provider)
//!     .unwrap();
//! // Something to receive: a datagram from the namespace end (and its ARP).
//! let to = (veth.host_addr(), 9);
//! veth.in_namespace(move || std::net::UdpSocket::bind("0.0.0.0:0")?.send_to(b"hello", to))
//!     .unwrap()
//!     .unwrap();
//! let mut burst = Vec::new();
//! while burst.is_empty() {
//!     ring.wait(Duration::from_millis(100)).unwrap();
//!     ring.rx_burst(&pool, &mut cache, &mut burst, 32);
//! }
//! println!("{} frames, first {} B", burst.len(), burst[0].data_len());
//! drop(burst); // their blocks go back to the kernel...
//! assert!(ring.blocks_with_app() <= 1); // ...but the one the ring is still reading
//! println!("{:?}", ring.stats().unwrap());
//! ```

use std::fmt;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::hugemem::{ExternalMem, Iova, IovaMode, Provider};
use crate::mbuf::{ExtRegion, Mbuf, PktPool};
use crate::mempool::Cache;

mod error;

pub use error::{BuildError, StatsError, WaitError};

/// The page size the ring is mapped in (blocks are multiples of it).
const PAGE: usize = 4096;

/// Largest block (4 MiB): a block's frames take 69 bytes or more each
/// (checked), so the block's references (one per frame and the ring's)
/// stay below the 16-bit shared count's maximum.
pub const MAX_BLOCK_SIZE: usize = 4 << 20;

/// The least offset of a frame's bytes from its header: the header and
/// the link-layer address after it (`TPACKET3_HDRLEN`, 68 bytes; the
/// kernel's offsets are never smaller). Frames further in are refused as
/// malformed, and frames do not overlap, so each takes more than this in
/// its block: a block's references (one per frame and the ring's) stay
/// below the 16-bit shared count's maximum whatever the block descriptor
/// and frame headers say.
const MIN_MAC_OFFSET: usize = libc::TPACKET3_HDRLEN;
const _: () = assert!(MAX_BLOCK_SIZE / (MIN_MAC_OFFSET + 1) + 1 < u16::MAX as usize);

/// Most blocks in one ring.
pub const MAX_BLOCK_COUNT: usize = 1 << 14;

/// Most bytes in one ring (1 GiB).
pub const MAX_RING_SIZE: usize = 1 << 30;

/// Smallest frame size: the `TPACKET_V3` frame header and the link-layer
/// address the kernel puts before each frame, aligned to 16.
pub const MIN_FRAME_SIZE: usize =
    (libc::TPACKET3_HDRLEN + libc::TPACKET_ALIGNMENT - 1) & !(libc::TPACKET_ALIGNMENT - 1);

/// Where the first frame of a block starts (the block descriptor, aligned
/// to 8; no private area).
const FIRST_FRAME: usize = (size_of::<libc::tpacket_block_desc>() + 7) & !7;

/// `ETH_P_ALL` in network byte order, as `sockaddr_ll` wants it.
const ETH_P_ALL_BE: u16 = (libc::ETH_P_ALL as u16).to_be();

/// Settings of a [`PacketRing`]; [`build`](Self::build) checks them, then
/// opens the socket, the ring and the mapping.
#[derive(Debug, Clone)]
#[must_use]
pub struct PacketRingBuilder {
    block_size: usize,
    block_count: usize,
    frame_size: usize,
    retire_timeout: Duration,
    ignore_outgoing: bool,
}

impl Default for PacketRingBuilder {
    fn default() -> Self {
        Self {
            block_size: 256 * 1024,
            block_count: 16,
            frame_size: 2048,
            retire_timeout: Duration::from_millis(10),
            ignore_outgoing: true,
        }
    }
}

impl PacketRingBuilder {
    /// Bytes per block: a multiple of 4096, at most [`MAX_BLOCK_SIZE`]
    /// (default 256 KiB).
    pub fn block_size(mut self, bytes: usize) -> Self {
        self.block_size = bytes;
        self
    }

    /// Blocks in the ring: 1 to [`MAX_BLOCK_COUNT`] (default 16), and at
    /// most 1 GiB in all.
    pub fn block_count(mut self, n: usize) -> Self {
        self.block_count = n;
        self
    }

    /// The frame size the kernel checks the ring against (a multiple of 16,
    /// from [`MIN_FRAME_SIZE`] to the block size; default 2048). `TPACKET_V3`
    /// packs frames of any length into a block, so this is a hint, not a
    /// limit on a frame's length.
    pub fn frame_size(mut self, bytes: usize) -> Self {
        self.frame_size = bytes;
        self
    }

    /// How long the kernel keeps a block that has frames before retiring it
    /// to us even though it is not full: 1 ms to `u32::MAX` ms (default
    /// 10 ms; whole milliseconds, rounded up).
    pub fn retire_timeout(mut self, timeout: Duration) -> Self {
        self.retire_timeout = timeout;
        self
    }

    /// Whether frames this host sends on the interface are left out (the
    /// default: `PACKET_IGNORE_OUTGOING`); `false` receives them too.
    pub fn ignore_outgoing(mut self, ignore: bool) -> Self {
        self.ignore_outgoing = ignore;
        self
    }

    /// Checks the settings (without opening anything).
    pub fn check(&self) -> Result<(), BuildError> {
        let b = self.block_size;
        if b == 0 || b % PAGE != 0 || b > MAX_BLOCK_SIZE {
            return Err(BuildError::BlockSize {
                block_size: b,
                page_size: PAGE,
                max: MAX_BLOCK_SIZE,
            });
        }
        let max_count = MAX_BLOCK_COUNT.min(MAX_RING_SIZE / b);
        if self.block_count == 0 || self.block_count > max_count {
            return Err(BuildError::BlockCount {
                block_count: self.block_count,
                max: max_count,
            });
        }
        let f = self.frame_size;
        if f % libc::TPACKET_ALIGNMENT != 0 || f < MIN_FRAME_SIZE || f > b - FIRST_FRAME {
            return Err(BuildError::FrameSize {
                frame_size: f,
                min: MIN_FRAME_SIZE,
                max: b - FIRST_FRAME,
                align: libc::TPACKET_ALIGNMENT,
            });
        }
        let ms = self.retire_ms();
        if ms == 0 || ms > u128::from(u32::MAX) {
            return Err(BuildError::RetireTimeout {
                timeout: self.retire_timeout,
                max_ms: u32::MAX,
            });
        }
        Ok(())
    }

    fn retire_ms(&self) -> u128 {
        let ns = self.retire_timeout.as_nanos();
        ns.div_ceil(1_000_000)
    }

    /// Opens the ring on interface `ifindex`: an `AF_PACKET` socket
    /// (`SOCK_RAW`, every protocol), `TPACKET_V3`, the receive ring, its
    /// mapping (registered with `provider` as external memory), then the
    /// bind to the interface. Nothing is left open on error.
    ///
    /// The socket is created with protocol 0 (it receives nothing) and
    /// bound with `ETH_P_ALL` once the ring is in place, so no frame of
    /// another interface is ever queued to it.
    pub fn build(self, ifindex: u32, provider: &Provider) -> Result<PacketRing, BuildError> {
        self.check()?;
        if i32::try_from(ifindex).map_or(true, |i| i <= 0) {
            return Err(BuildError::NoSuchInterface { ifindex });
        }
        // SAFETY: plain system call; the fd is owned right below.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(sys_error("socket(AF_PACKET, SOCK_RAW)"));
        }
        // SAFETY: `raw` is a fresh fd nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        setsockopt(
            &fd,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V3 as i32),
        )
        .map_err(|err| BuildError::Sys {
            call: "setsockopt(PACKET_VERSION, TPACKET_V3)",
            err,
        })?;
        if self.ignore_outgoing {
            setsockopt(&fd, libc::PACKET_IGNORE_OUTGOING, &1i32).map_err(|err| {
                BuildError::Sys {
                    call: "setsockopt(PACKET_IGNORE_OUTGOING)",
                    err,
                }
            })?;
        }
        let req = libc::tpacket_req3 {
            tp_block_size: self.block_size as u32,
            tp_block_nr: self.block_count as u32,
            tp_frame_size: self.frame_size as u32,
            tp_frame_nr: (self.block_size / self.frame_size * self.block_count) as u32,
            tp_retire_blk_tov: self.retire_ms() as u32,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        setsockopt(&fd, libc::PACKET_RX_RING, &req).map_err(|err| BuildError::RxRing {
            block_size: self.block_size,
            block_count: self.block_count,
            frame_size: self.frame_size,
            err,
        })?;
        let len = self.block_size * self.block_count;
        // SAFETY: a new shared mapping of the socket's ring; nothing else
        // is at the address the kernel picks.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(BuildError::Mmap {
                len,
                err: std::io::Error::last_os_error(),
            });
        }
        let base = NonNull::new(base.cast::<u8>()).ok_or(BuildError::Mmap {
            len,
            err: std::io::Error::from_raw_os_error(libc::EFAULT),
        })?;
        // From here on `memory` unmaps on every path (with the last of its
        // holders: the ring's mapping, the provider's registration), and
        // `fd` closes.
        let memory = Arc::new(RingMemory { base, len });
        let iovas = page_iovas(provider.iova_mode(), base, len);
        let block_iova = (0..self.block_count)
            .map(|b| block_iova(iovas.as_deref(), b, self.block_size))
            .collect();
        // The provider holds the memory too, until the range is
        // unregistered, which waits for every lease on it.
        let registration = provider
            .register_external_owned(SharedRing(Arc::clone(&memory)), PAGE, iovas.as_deref())
            .map_err(BuildError::Register)?;
        let map = Mapping {
            base,
            len,
            block_size: self.block_size,
            with_app: (0..self.block_count)
                .map(|_| AtomicBool::new(false))
                .collect(),
            returned: AtomicU64::new(0),
            block_iova,
            registration: Some(registration),
            memory,
            fd,
        };
        bind(&map.fd, ifindex)?;
        Ok(PacketRing {
            map: Arc::new(map),
            ifindex,
            next_block: 0,
            cur: None,
            handed_out: 0,
            counters: Counters::default(),
            kernel: KernelStats::default(),
        })
    }
}

fn sys_error(call: &'static str) -> BuildError {
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => BuildError::NotPermitted { call },
        _ => BuildError::Sys { call, err },
    }
}

/// Binds the packet socket to interface `ifindex` for every protocol.
fn bind(fd: &OwnedFd, ifindex: u32) -> Result<(), BuildError> {
    let ifindex_c = i32::try_from(ifindex)
        .ok()
        .filter(|&i| i > 0)
        .ok_or(BuildError::NoSuchInterface { ifindex })?;
    // SAFETY: all-zero is a valid `sockaddr_ll`.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_ALL_BE;
    sll.sll_ifindex = ifindex_c;
    // SAFETY: `sll` is a valid `sockaddr_ll` of the length given.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&sll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        return Err(if err.raw_os_error() == Some(libc::ENODEV) {
            BuildError::NoSuchInterface { ifindex }
        } else {
            BuildError::Sys { call: "bind", err }
        });
    }
    Ok(())
}

fn setsockopt<T>(fd: &OwnedFd, opt: i32, val: &T) -> std::io::Result<()> {
    // SAFETY: `val` points at a `T` of the length given, read by the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            opt,
            std::ptr::from_ref(val).cast(),
            size_of::<T>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// One IOVA per page of the mapping: physical addresses (IOVA mode PA) when
/// the page map gives every one, virtual addresses in VA mode; `None` when
/// a PA page cannot be translated.
fn page_iovas(mode: IovaMode, base: NonNull<u8>, len: usize) -> Option<Vec<Iova>> {
    let start = base.as_ptr() as usize;
    (0..len / PAGE)
        .map(|p| {
            let va = start + p * PAGE;
            match mode {
                IovaMode::Va => Some(Iova(va as u64)),
                IovaMode::Pa => crate::hugemem::virt2phys(va).ok().map(Iova),
            }
        })
        .collect()
}

/// The IOVA of block `b`'s first byte when all its pages are
/// IOVA-contiguous (then every byte's IOVA is that plus its offset).
fn block_iova(iovas: Option<&[Iova]>, b: usize, block_size: usize) -> Option<Iova> {
    let pages = iovas?.get(b * block_size / PAGE..(b + 1) * block_size / PAGE)?;
    let first = *pages.first()?;
    pages
        .iter()
        .enumerate()
        .all(|(i, p)| p.0 == first.0 + (i * PAGE) as u64)
        .then_some(first)
}

/// The ring's memory and socket, shared by the ring and every block's
/// release; unregistered (then unmapped) and closed when the last of them
/// goes.
struct Mapping {
    base: NonNull<u8>,
    len: usize,
    block_size: usize,
    /// Block `i` is with the application (handed out, not yet given back).
    /// Set by the ring when it hands the block out; cleared by the block's
    /// release after it stored `TP_STATUS_KERNEL`.
    with_app: Box<[AtomicBool]>,
    /// Blocks given back (by any thread).
    returned: AtomicU64,
    block_iova: Box<[Option<Iova>]>,
    /// The registration with the provider (`None`: the tests' rings).
    /// Dropping it unregisters the range at once, or after the last lease a
    /// user took on it; the provider's hold on `memory` goes with it.
    #[allow(dead_code)] // held for its drop
    registration: Option<ExternalMem>,
    /// The memory, unmapped when the last of its holders goes: this
    /// mapping (so the ring and every block's release) and the provider's
    /// registration (so every lease). The provider may go first.
    #[allow(dead_code)] // held for its drop
    memory: Arc<RingMemory>,
    /// The socket; closed after the registration is dropped.
    fd: OwnedFd,
}

/// The provider's hold on the ring's memory (an owned registration).
struct SharedRing(Arc<RingMemory>);

impl AsMut<[u8]> for SharedRing {
    /// The ring's bytes, for the provider's registration, which takes them
    /// once, while the socket is not bound (the kernel writes nothing into
    /// the ring then), and keeps only their address and length.
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `base..base+len` is the mapping, readable and writable,
        // live while this `Arc` is; nothing else accesses it while the
        // borrow lives (see above).
        unsafe { std::slice::from_raw_parts_mut(self.0.base.as_ptr(), self.0.len) }
    }
}

/// The mapped ring; unmapped when dropped.
#[derive(Debug)]
struct RingMemory {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping of this process, valid on any thread; the value only
// unmaps it (its bytes are reached through `Mapping` and `SharedRing`).
unsafe impl Send for RingMemory {}
// SAFETY: `&RingMemory` gives only the address and length.
unsafe impl Sync for RingMemory {}

impl Drop for RingMemory {
    fn drop(&mut self) {
        // SAFETY: `base..base+len` is our mapping, and this is the last
        // `Arc` of it: the `Mapping` is gone (so the ring and every block's
        // release), and the provider's registration too (after the last
        // lease on the range, or with the provider).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

// SAFETY: the mapping is shared memory whose blocks are reached only by the
// thread that owns them (the ring while reading a block, the last holder of
// a block's references when giving it back); the status words and flags are
// atomics; everything else is immutable after construction.
unsafe impl Send for Mapping {}
// SAFETY: as above: `&Mapping` gives access only to atomics and immutable
// fields.
unsafe impl Sync for Mapping {}

impl Mapping {
    fn block(&self, b: usize) -> *mut u8 {
        // `b < block_count`: inside the mapping.
        self.base.as_ptr().wrapping_add(b * self.block_size)
    }

    /// Block `b`'s status word.
    fn status(&self, b: usize) -> &AtomicU32 {
        let at = self
            .block(b)
            .wrapping_add(offset_of!(libc::tpacket_block_desc, hdr))
            .wrapping_add(offset_of!(libc::tpacket_hdr_v1, block_status));
        // Blocks start on pages and the word is at offset 8: 4-aligned.
        #[allow(clippy::cast_ptr_alignment)]
        let at = at.cast::<u32>();
        // SAFETY: the status word is a 4-aligned `u32` inside the mapping,
        // which lives as long as `self`; the kernel and we access it only
        // atomically (it is never reached through a plain reference).
        unsafe { AtomicU32::from_ptr(at) }
    }

    /// Gives block `b` back to the kernel (its last reference went).
    fn give_back(&self, b: usize) {
        // Release: every access to the block's bytes by any holder happens
        // before this store (the last holder's Acquire fence in the shared
        // info's release ordered them before us); pairs with the kernel's
        // read of the status before it writes the block again.
        self.status(b)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        // Release: pairs with the Acquire load in `PacketRing::open_block`,
        // which so sees the KERNEL store above (or the kernel's later USER
        // store) once it sees the flag clear, never our stale USER.
        self.with_app[b].store(false, Ordering::Release);
        // Release: pairs with the Acquire loads in `blocks_with_app` and
        // `stats`, which so count a block back only after its status is.
        self.returned.fetch_add(1, Ordering::Release);
    }
}

impl fmt::Debug for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mapping")
            .field("base", &self.base)
            .field("len", &self.len)
            .field("block_size", &self.block_size)
            .finish_non_exhaustive()
    }
}

/// The block being read: its region (the ring's reference) and where the
/// next frame is.
#[derive(Debug)]
struct Current {
    ext: ExtRegion,
    block: usize,
    /// Offset of the next frame's header in the block.
    next: usize,
    /// Frames left in the block.
    left: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counters {
    frames: u64,
    non_matching: u64,
    truncated: u64,
    malformed: u64,
    no_mbuf: u64,
    losing_blocks: u64,
    blocks_without_iova: u64,
}

#[derive(Debug, Default, Clone, Copy)]
struct KernelStats {
    packets: u64,
    drops: u64,
    freezes: u64,
}

/// What a [`PacketRing`] has seen: the kernel's `PACKET_STATISTICS`
/// (summed over every read: the kernel resets them when read) and the
/// ring's own counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RingStats {
    /// Frames the kernel accepted for this socket, dropped ones included
    /// (`tp_packets`).
    pub kernel_packets: u64,
    /// Frames the kernel dropped: no block free (`tp_drops`).
    pub kernel_drops: u64,
    /// Times the kernel found the next block still with us and stopped
    /// (`tp_freeze_q_cnt`).
    pub freezes: u64,
    /// Blocks handed out to the application.
    pub blocks_handed_out: u64,
    /// Blocks given back to the kernel.
    pub blocks_returned: u64,
    /// Frames turned into mbufs.
    pub frames: u64,
    /// Frames a filter refused ([`PacketRing::rx_burst_filtered`]).
    pub non_matching: u64,
    /// Frames the kernel cut short (longer than the room in a block).
    pub truncated: u64,
    /// Frame headers or frames that did not lie inside their block, or
    /// links to a next frame that would overlap them (the rest of that
    /// block was skipped), and frames longer than an mbuf's buffer (that
    /// frame skipped).
    pub malformed: u64,
    /// Times a burst stopped because the pool had no mbuf.
    pub no_mbuf: u64,
    /// Blocks the kernel marked `TP_STATUS_LOSING` (it dropped frames
    /// before them).
    pub losing_blocks: u64,
    /// Blocks whose pages are not IOVA-contiguous (their frames have no
    /// IOVA).
    pub blocks_without_iova: u64,
}

/// A `TPACKET_V3` receive ring on one interface; see the [module
/// docs](self).
#[derive(Debug)]
pub struct PacketRing {
    map: Arc<Mapping>,
    ifindex: u32,
    next_block: usize,
    cur: Option<Current>,
    handed_out: u64,
    counters: Counters,
    kernel: KernelStats,
}

impl PacketRing {
    /// Settings, with the defaults (32 KiB blocks, 64 of them, 10 ms retire
    /// timeout, outgoing frames left out).
    ///
    /// ```
    /// use pktmem::net::af_packet::{BuildError, PacketRing};
    /// let e = PacketRing::builder().block_size(5000).check().unwrap_err();
    /// assert!(matches!(e, BuildError::BlockSize { block_size: 5000, .. }));
    /// ```
    pub fn builder() -> PacketRingBuilder {
        PacketRingBuilder::default()
    }

    /// The interface the ring is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.map.block_size
    }

    /// Blocks in the ring.
    pub fn block_count(&self) -> usize {
        self.map.with_app.len()
    }

    /// The virtual address range of the mapped ring.
    pub fn mapped_range(&self) -> std::ops::Range<usize> {
        let start = self.map.base.as_ptr() as usize;
        start..start + self.map.len
    }

    /// Blocks now with the application: handed out and not yet given back
    /// (the one being read included). Exact once the threads dropping
    /// mbufs are joined.
    pub fn blocks_with_app(&self) -> usize {
        // Acquire: pairs with the Release increments in `give_back`.
        let back = self.map.returned.load(Ordering::Acquire);
        (self.handed_out - back) as usize
    }

    /// Whether the ring is part way through a block: it holds that block's
    /// reference (counted in [`blocks_with_app`](Self::blocks_with_app))
    /// until it has handed out the block's last frame, or is dropped.
    ///
    /// ```no_run
    /// // Needs root (CAP_NET_RAW) and an interface; see the module docs.
    /// # let provider = pktmem::hugemem::Provider::builder().build().unwrap();
    /// # let pool = pktmem::mbuf::PktPool::builder(63).data_room(0).build_on(&provider).unwrap();
    /// # let mut cache = pool.cache();
    /// use pktmem::net::af_packet::PacketRing;
    /// let mut ring = PacketRing::builder().build(1, &provider).unwrap();
    /// let mut burst = Vec::new();
    /// ring.rx_burst(&pool, &mut cache, &mut burst, 1);
    /// drop(burst);
    /// // Every block handed out is back, but the one the ring is reading.
    /// assert_eq!(ring.blocks_with_app(), usize::from(ring.holds_block()));
    /// ```
    pub fn holds_block(&self) -> bool {
        self.cur.is_some()
    }

    /// Receives up to `max` frames as mbufs of `pool` (taken through
    /// `cache`), appended to `out`; returns how many. Never blocks (see
    /// [`wait`](Self::wait)). Stops early when no block is ready or the
    /// pool runs dry (the frame stays for the next call). `pool` must not
    /// be a pinned pool (its mbufs have a buffer of their own and take no
    /// external one: every frame would be skipped, counted as
    /// [`RingStats::malformed`]).
    pub fn rx_burst(
        &mut self,
        pool: &PktPool,
        cache: &mut Cache,
        out: &mut Vec<Mbuf>,
        max: usize,
    ) -> usize {
        self.rx(pool, cache, out, max, |_| true)
    }

    /// [`rx_burst`](Self::rx_burst) keeping only the frames `keep` accepts
    /// (it sees each frame's bytes, from the Ethernet header); the others
    /// take no mbuf and are counted as [`RingStats::non_matching`]. `max`
    /// counts kept frames. One call reads at most as many blocks as the
    /// ring has, so it returns even while the kernel keeps filling blocks
    /// with frames `keep` refuses.
    pub fn rx_burst_filtered(
        &mut self,
        pool: &PktPool,
        cache: &mut Cache,
        out: &mut Vec<Mbuf>,
        max: usize,
        keep: impl FnMut(&[u8]) -> bool,
    ) -> usize {
        self.rx(pool, cache, out, max, keep)
    }

    fn rx(
        &mut self,
        pool: &PktPool,
        cache: &mut Cache,
        out: &mut Vec<Mbuf>,
        max: usize,
        mut keep: impl FnMut(&[u8]) -> bool,
    ) -> usize {
        let mut got = 0;
        // Blocks opened by this call: at most one round of the ring.
        let mut opened = 0;
        while got < max {
            let Some(cur) = self.cur.as_mut() else {
                if opened < self.map.with_app.len() && self.open_block() {
                    opened += 1;
                    continue;
                }
                break;
            };
            if cur.left == 0 {
                // Every frame handed out: the ring's reference goes; the
                // block goes back when the frames' mbufs are gone.
                self.cur = None;
                continue;
            }
            let bs = self.map.block_size;
            let block = self.map.block(cur.block);
            let hdr_len = size_of::<libc::tpacket3_hdr>();
            // Once past this check `cur.next < bs` (and `advance` keeps
            // it at most `bs`): no sum below wraps.
            if cur.next < FIRST_FRAME || cur.next.checked_add(hdr_len).map_or(true, |e| e > bs) {
                self.counters.malformed += 1;
                cur.left = 0;
                continue;
            }
            // SAFETY: the header lies inside the block (checked), which is
            // ours (status USER seen with Acquire, not given back: the
            // ring's region holds it); unaligned read of a plain struct.
            let h: libc::tpacket3_hdr =
                unsafe { std::ptr::read_unaligned(block.add(cur.next).cast()) };
            let start = cur.next + usize::from(h.tp_mac);
            let snap = h.tp_snaplen as usize;
            // The kernel puts the link-layer address (`sockaddr_ll`) between
            // the header and the frame: a frame starts `TPACKET3_HDRLEN` or
            // more after its header, and takes that much room or more.
            let end = start.saturating_add(snap);
            if snap == 0 || end > bs || usize::from(h.tp_mac) < MIN_MAC_OFFSET {
                self.counters.malformed += 1;
                cur.left = 0;
                continue;
            }
            // SAFETY: `start..end` is inside the block, ours (as
            // above); nothing writes it while this borrow lives (the kernel
            // does not touch a block we own, and mbufs of it are read-only
            // while it is shared).
            let bytes = unsafe { std::slice::from_raw_parts(block.add(start), snap) };
            if !keep(bytes) {
                self.counters.non_matching += 1;
                if advance(cur, &h, end, bs, &mut self.counters) {
                    self.cur = None;
                }
                continue;
            }
            let Ok(mut m) = pool.alloc(cache) else {
                self.counters.no_mbuf += 1;
                break;
            };
            let Ok(sub) = cur.ext.slice(start..end) else {
                // A frame longer than an mbuf's buffer (the count cannot
                // be at its maximum: see `MAX_BLOCK_SIZE`): skipped.
                self.counters.malformed += 1;
                if advance(cur, &h, end, bs, &mut self.counters) {
                    self.cur = None;
                }
                continue;
            };
            if m.attach_extbuf(sub).is_err() || m.grow_tail(snap).is_err() {
                // A fresh mbuf of a pool that is not pinned takes any
                // external buffer; a pinned pool's is external already.
                self.counters.malformed += 1;
                if advance(cur, &h, end, bs, &mut self.counters) {
                    self.cur = None;
                }
                continue;
            }
            m.set_timestamp(u64::from(h.tp_sec) * 1_000_000_000 + u64::from(h.tp_nsec));
            if h.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                m.set_vlan_tci(h.hv1.tp_vlan_tci as u16);
            }
            if (h.tp_len as usize) > snap {
                self.counters.truncated += 1;
            }
            self.counters.frames += 1;
            out.push(m);
            got += 1;
            if advance(cur, &h, end, bs, &mut self.counters) {
                // The block's last frame: the ring's reference goes now, so
                // the block goes back with the last mbuf of its frames, on
                // whichever thread drops it.
                self.cur = None;
            }
        }
        got
    }

    /// Takes the next block when the kernel has retired it to us; `false`
    /// when it has not (or it is still with the application from the last
    /// round).
    fn open_block(&mut self) -> bool {
        let b = self.next_block;
        // Acquire: pairs with the Release clear in `give_back`: a block we
        // handed out and that is not back yet still shows our old USER
        // status, and must not be handed out twice.
        if self.map.with_app[b].load(Ordering::Acquire) {
            return false;
        }
        // Acquire: pairs with the kernel's store of TP_STATUS_USER (after
        // its write barrier): the block's descriptor and frames it wrote
        // are visible to the reads below.
        let status = self.map.status(b).load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return false;
        }
        if status & libc::TP_STATUS_LOSING != 0 {
            self.counters.losing_blocks += 1;
        }
        let block = self.map.block(b);
        let desc = offset_of!(libc::tpacket_block_desc, hdr);
        let num_at = desc + offset_of!(libc::tpacket_hdr_v1, num_pkts);
        let first_at = desc + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt);
        // SAFETY: the descriptor is at the start of the block, which is
        // ours now (USER seen with Acquire); raw reads of plain `u32`s.
        let (num_pkts, first) = unsafe {
            (
                std::ptr::read_unaligned(block.add(num_at).cast::<u32>()),
                std::ptr::read_unaligned(block.add(first_at).cast::<u32>()),
            )
        };
        // Relaxed: only this thread sets the flag; the release that
        // clears it happens after the region below is made.
        self.map.with_app[b].store(true, Ordering::Relaxed);
        self.handed_out += 1;
        let iova = self.map.block_iova[b];
        if iova.is_none() {
            self.counters.blocks_without_iova += 1;
        }
        let map = Arc::clone(&self.map);
        let addr = NonNull::new(block).unwrap_or(self.map.base);
        // SAFETY: the block `addr..addr+block_size` is mapped (the closure
        // holds the mapping) and ours until the release gives it back:
        // the kernel does not touch a block whose status is USER, and the
        // ring reaches it only through this region and its slices.
        let ext = unsafe {
            ExtRegion::from_raw(addr, self.map.block_size, iova, move |_| map.give_back(b))
        };
        self.next_block = (b + 1) % self.map.with_app.len();
        let Ok(ext) = ext else {
            // Only for a zero length, which block sizes are not:
            // unreachable; the block goes straight back.
            self.counters.malformed += 1;
            self.map.give_back(b);
            return false;
        };
        self.cur = Some(Current {
            ext,
            block: b,
            next: first as usize,
            left: num_pkts,
        });
        true
    }

    /// Waits up to `timeout` for a block to read; `true` when one is
    /// ready (`false`: the timeout passed). Returns at once when the next
    /// block is ours.
    ///
    /// The kernel reports the socket readable while the block before the
    /// one it is filling is not back with it: while the application holds
    /// that block, `poll` cannot wait for the next one, and this sleeps in
    /// steps of 200 µs instead of spinning. A timeout too long for the
    /// clock (`Duration::MAX`) waits for as long as it takes.
    pub fn wait(&self, timeout: Duration) -> Result<bool, WaitError> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if self.cur.as_ref().is_some_and(|c| c.left > 0) || self.next_ready() {
                return Ok(true);
            }
            let left = deadline.map_or(Duration::MAX, |d| {
                d.saturating_duration_since(Instant::now())
            });
            if left.is_zero() {
                return Ok(false);
            }
            let mut pfd = libc::pollfd {
                fd: self.map.fd.as_raw_fd(),
                events: libc::POLLIN | libc::POLLERR,
                revents: 0,
            };
            // Whole milliseconds, rounded up (0 would not wait).
            let ms = i32::try_from(left.as_micros().div_ceil(1000)).unwrap_or(i32::MAX);
            // SAFETY: one valid `pollfd`.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(WaitError::Poll(err));
                }
            } else if rc > 0 && !self.next_ready() {
                std::thread::sleep(left.min(Duration::from_micros(200)));
            }
        }
    }

    fn next_ready(&self) -> bool {
        let b = self.next_block;
        // Acquire: as in `open_block`.
        !self.map.with_app[b].load(Ordering::Acquire)
            && self.map.status(b).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// The kernel's statistics (read now and added to what earlier reads
    /// returned) and the ring's counters.
    pub fn stats(&mut self) -> Result<RingStats, StatsError> {
        let mut st = libc::tpacket_stats_v3 {
            tp_packets: 0,
            tp_drops: 0,
            tp_freeze_q_cnt: 0,
        };
        let mut len = size_of::<libc::tpacket_stats_v3>() as u32;
        // SAFETY: `st` is writable for `len` bytes; `len` is updated.
        let rc = unsafe {
            libc::getsockopt(
                self.map.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                std::ptr::from_mut(&mut st).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(StatsError::Getsockopt(std::io::Error::last_os_error()));
        }
        self.kernel.packets += u64::from(st.tp_packets);
        self.kernel.drops += u64::from(st.tp_drops);
        self.kernel.freezes += u64::from(st.tp_freeze_q_cnt);
        let c = self.counters;
        Ok(RingStats {
            kernel_packets: self.kernel.packets,
            kernel_drops: self.kernel.drops,
            freezes: self.kernel.freezes,
            blocks_handed_out: self.handed_out,
            // Acquire: pairs with the Release increments in `give_back`.
            blocks_returned: self.map.returned.load(Ordering::Acquire),
            frames: c.frames,
            non_matching: c.non_matching,
            truncated: c.truncated,
            malformed: c.malformed,
            no_mbuf: c.no_mbuf,
            losing_blocks: c.losing_blocks,
            blocks_without_iova: c.blocks_without_iova,
        })
    }
}

/// Moves past the frame whose header is `h` and whose bytes end at
/// `frame_end` (inside the block): to the next one, or to the end of the
/// block after the last; `true` when the block is done.
///
/// The next header must start at or after `frame_end`, inside the block:
/// frames never overlap (the kernel links each to the next after its
/// bytes), so a block's frames are disjoint and take more than
/// [`MIN_MAC_OFFSET`] bytes each, which bounds the references one block
/// needs. A link back into this frame (or none, or one past the block)
/// ends the block as malformed. So `cur.next` never exceeds the block size.
fn advance(
    cur: &mut Current,
    h: &libc::tpacket3_hdr,
    frame_end: usize,
    block_size: usize,
    counters: &mut Counters,
) -> bool {
    cur.left -= 1;
    if cur.left == 0 {
        return true;
    }
    match cur.next.checked_add(h.tp_next_offset as usize) {
        Some(next) if (frame_end..=block_size).contains(&next) => {
            cur.next = next;
            false
        }
        _ => {
            // More frames announced, but no link to them past this one.
            counters.malformed += 1;
            cur.left = 0;
            true
        }
    }
}

impl AsFd for PacketRing {
    /// The packet socket (for an event loop; the ring keeps owning it).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.map.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    //! The frame walk against a hostile "kernel": a ring over anonymous
    //! memory (no socket: the fd is `/dev/null`) whose blocks the test
    //! writes, then hands over by storing `TP_STATUS_USER` with Release as
    //! the kernel does. Needs no privilege.

    use super::*;
    use std::os::fd::OwnedFd;

    const BS: usize = 8192;
    const HDR: usize = size_of::<libc::tpacket3_hdr>();

    /// A ring of `blocks` blocks of `BS` bytes over anonymous memory.
    fn fake_ring(blocks: usize) -> PacketRing {
        let len = BS * blocks;
        // SAFETY: a new private anonymous mapping; nothing else is there.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let fd: OwnedFd = std::fs::File::open("/dev/null").unwrap().into();
        let map = Mapping {
            base: NonNull::new(base.cast()).unwrap(),
            len,
            block_size: BS,
            with_app: (0..blocks).map(|_| AtomicBool::new(false)).collect(),
            returned: AtomicU64::new(0),
            block_iova: vec![None; blocks].into_boxed_slice(),
            registration: None,
            memory: Arc::new(RingMemory {
                base: NonNull::new(base.cast()).unwrap(),
                len,
            }),
            fd,
        };
        PacketRing {
            map: Arc::new(map),
            ifindex: 1,
            next_block: 0,
            cur: None,
            handed_out: 0,
            counters: Counters::default(),
            kernel: KernelStats::default(),
        }
    }

    /// One frame header as the test's kernel writes it.
    struct Frame {
        at: usize,
        mac: u16,
        snap: u32,
        next: u32,
        fill: u8,
    }

    /// A well-formed frame at `at` of `snap` bytes of `fill`, linked to the
    /// next one after it (aligned to 8, as the kernel does).
    fn frame(at: usize, snap: u32, fill: u8) -> Frame {
        let mac = 82u16; // the kernel's offset for Ethernet
        let next = (u32::from(mac) + snap + 7) & !7;
        Frame {
            at,
            mac,
            snap,
            next,
            fill,
        }
    }

    /// Writes block `b` (which must be the kernel's: status KERNEL, not
    /// handed out) with `frames`, `num_pkts` and the first offset, then
    /// hands it to the ring.
    fn publish(ring: &PacketRing, b: usize, num_pkts: u32, first: u32, frames: &[Frame]) {
        // SAFETY: the tests publish only blocks that are the kernel's.
        unsafe { publish_map(&ring.map, b, num_pkts, first, frames) };
    }

    /// [`publish`] on the mapping.
    ///
    /// # Safety
    /// - block `b` is the test kernel's: not with the ring (asserted) and
    ///   nobody else writes it meanwhile.
    unsafe fn publish_map(map: &Mapping, b: usize, num_pkts: u32, first: u32, frames: &[Frame]) {
        assert!(!map.with_app[b].load(Ordering::Acquire));
        let block = map.block(b);
        let desc = offset_of!(libc::tpacket_block_desc, hdr);
        // SAFETY: block `b` is the test kernel's (not handed out); every
        // write below lies inside it (the frames are placed in it by the
        // tests; asserted).
        unsafe {
            std::ptr::write_bytes(block, 0, BS);
            block
                .add(desc + offset_of!(libc::tpacket_hdr_v1, num_pkts))
                .cast::<u32>()
                .write_unaligned(num_pkts);
            block
                .add(desc + offset_of!(libc::tpacket_hdr_v1, offset_to_first_pkt))
                .cast::<u32>()
                .write_unaligned(first);
            for f in frames {
                assert!(f.at + HDR <= BS);
                let mut h: libc::tpacket3_hdr = std::mem::zeroed();
                h.tp_next_offset = f.next;
                h.tp_snaplen = f.snap;
                h.tp_len = f.snap;
                h.tp_mac = f.mac;
                block
                    .add(f.at)
                    .cast::<libc::tpacket3_hdr>()
                    .write_unaligned(h);
                let start = f.at + usize::from(f.mac);
                let n = (f.snap as usize).min(BS.saturating_sub(start));
                if start < BS {
                    std::ptr::write_bytes(block.add(start), f.fill, n);
                }
            }
        }
        // Release: as the kernel's store after its write barrier; pairs
        // with the ring's Acquire load of the status.
        map.status(b).store(libc::TP_STATUS_USER, Ordering::Release);
    }

    fn pool() -> (PktPool, Cache) {
        let pool = PktPool::builder(255)
            .data_room(0)
            .build_anonymous()
            .unwrap();
        let cache = pool.cache();
        (pool, cache)
    }

    /// Receives everything ready.
    fn take(ring: &mut PacketRing, pool: &PktPool, cache: &mut Cache) -> Vec<Mbuf> {
        let mut out = Vec::new();
        while ring.rx_burst(pool, cache, &mut out, 64) > 0 {}
        out
    }

    fn back_with_kernel(ring: &PacketRing, b: usize) -> bool {
        !ring.map.with_app[b].load(Ordering::Acquire)
            && ring.map.status(b).load(Ordering::Acquire) == libc::TP_STATUS_KERNEL
    }

    #[test]
    fn well_formed_frames_become_mbufs_and_the_block_goes_back_with_the_last() {
        let mut ring = fake_ring(2);
        let (pool, mut cache) = pool();
        let f0 = frame(FIRST_FRAME, 60, 0xa0);
        let f1 = frame(FIRST_FRAME + f0.next as usize, 1500, 0xa1);
        let f2 = frame(f1.at + f1.next as usize, 100, 0xa2);
        publish(&ring, 0, 3, FIRST_FRAME as u32, &[f0, f1, f2]);
        let got = take(&mut ring, &pool, &mut cache);
        let seen: Vec<(usize, u8)> = got.iter().map(|m| (m.data_len(), m.data()[0])).collect();
        assert_eq!(seen, [(60, 0xa0), (1500, 0xa1), (100, 0xa2)]);
        assert!(got
            .iter()
            .all(|m| m.data().iter().all(|&b| b == m.data()[0])));
        assert_eq!(ring.counters.malformed, 0);
        assert_eq!(ring.blocks_with_app(), 1);
        drop(got);
        assert!(back_with_kernel(&ring, 0));
        assert_eq!(ring.blocks_with_app(), 0);
        drop(cache);
        assert!(pool.is_full());
    }

    #[test]
    fn the_block_being_read_stays_until_its_last_frame_is_handed_out() {
        let mut ring = fake_ring(2);
        let (pool, mut cache) = pool();
        let f0 = frame(FIRST_FRAME, 60, 1);
        let f1 = frame(FIRST_FRAME + f0.next as usize, 60, 2);
        publish(&ring, 0, 2, FIRST_FRAME as u32, &[f0, f1]);
        let mut out = Vec::new();
        assert!(!ring.holds_block());
        assert_eq!(ring.rx_burst(&pool, &mut cache, &mut out, 1), 1);
        out.clear();
        assert!(ring.holds_block());
        assert_eq!(ring.blocks_with_app(), 1, "the ring's reference keeps it");
        assert!(!back_with_kernel(&ring, 0));
        assert_eq!(ring.rx_burst(&pool, &mut cache, &mut out, 1), 1);
        assert!(!ring.holds_block(), "its last frame is out");
        out.clear();
        assert!(back_with_kernel(&ring, 0));
        assert_eq!(ring.blocks_with_app(), 0);
    }

    #[test]
    fn waiting_without_end_returns_when_a_block_is_ready() {
        let mut ring = fake_ring(2);
        let (pool, mut cache) = pool();
        assert!(!ring.wait(Duration::from_millis(1)).unwrap());
        publish(
            &ring,
            0,
            1,
            FIRST_FRAME as u32,
            &[frame(FIRST_FRAME, 64, 7)],
        );
        // Too long for the clock: no overflow, and back at once.
        assert!(ring.wait(Duration::MAX).unwrap());
        let got = take(&mut ring, &pool, &mut cache);
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn a_filtered_burst_returns_while_the_kernel_keeps_refilling() {
        let mut ring = fake_ring(2);
        let (pool, mut cache) = pool();
        let frames = [frame(FIRST_FRAME, 64, 1)];
        publish(&ring, 0, 1, FIRST_FRAME as u32, &frames);
        publish(&ring, 1, 1, FIRST_FRAME as u32, &frames);
        // The test's kernel refills every block the ring gives back, from
        // inside the filter (which refuses everything), up to 1000 times.
        let map = Arc::clone(&ring.map);
        let mut refills = 0;
        let mut out = Vec::new();
        let n = ring.rx_burst_filtered(&pool, &mut cache, &mut out, 64, |_| {
            for b in 0..2 {
                if refills < 1000 && !map.with_app[b].load(Ordering::Acquire) {
                    refills += 1;
                    // SAFETY: the block is back with the (test) kernel.
                    unsafe { publish_map(&map, b, 1, FIRST_FRAME as u32, &frames) };
                }
            }
            false
        });
        assert_eq!(n, 0);
        assert!(
            ring.handed_out <= 2,
            "one call read {} blocks of a 2-block ring",
            ring.handed_out
        );
        drop(map);
    }

    #[test]
    fn an_empty_block_goes_straight_back() {
        let mut ring = fake_ring(2);
        let (pool, mut cache) = pool();
        publish(&ring, 0, 0, FIRST_FRAME as u32, &[]);
        assert!(take(&mut ring, &pool, &mut cache).is_empty());
        assert!(back_with_kernel(&ring, 0));
        assert_eq!((ring.handed_out, ring.blocks_with_app()), (1, 0));
    }

    /// Each hostile block: the frames before the bad one are delivered, the
    /// bad one is counted, nothing past it is read, and the block goes back
    /// once the delivered mbufs are gone.
    fn hostile(num_pkts: u32, first: u32, frames: &[Frame], delivered: &[(usize, u8)]) {
        let mut ring = fake_ring(2);
        let (pool, mut cache) = pool();
        publish(&ring, 0, num_pkts, first, frames);
        let got = take(&mut ring, &pool, &mut cache);
        let seen: Vec<(usize, u8)> = got.iter().map(|m| (m.data_len(), m.data()[0])).collect();
        assert_eq!(seen, delivered);
        assert_eq!(ring.counters.malformed, 1, "one malformed count");
        assert!(ring.cur.is_none(), "the rest of the block was skipped");
        drop(got);
        assert!(back_with_kernel(&ring, 0), "the block went back");
        // The ring moves on to the next block.
        publish(
            &ring,
            1,
            1,
            FIRST_FRAME as u32,
            &[frame(FIRST_FRAME, 64, 0xee)],
        );
        let next = take(&mut ring, &pool, &mut cache);
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].data()[0], 0xee);
        drop(next);
        drop(cache);
        assert!(pool.is_full());
    }

    #[test]
    fn a_link_into_the_frame_itself_ends_the_block() {
        // Frame 0's link points inside its own bytes: frame 1 would overlap
        // it (its header over frame 0's data).
        let mut f0 = frame(FIRST_FRAME, 400, 0xb0);
        f0.next = 200;
        let f1 = frame(FIRST_FRAME + 200, 64, 0xb1);
        // Written after frame 0: its header is intact, over frame 0's bytes.
        hostile(2, FIRST_FRAME as u32, &[f0, f1], &[(400, 0xb0)]);
    }

    #[test]
    fn a_zero_link_ends_the_block() {
        let mut f0 = frame(FIRST_FRAME, 64, 0xc0);
        f0.next = 0;
        hostile(5, FIRST_FRAME as u32, &[f0], &[(64, 0xc0)]);
    }

    #[test]
    fn a_frame_starting_inside_its_header_is_refused() {
        // Bytes right after the 48-byte header, with no link-layer address:
        // no kernel does that (and frames that small would need more
        // references than a block has).
        let mut f0 = frame(FIRST_FRAME, 64, 0xd0);
        f0.mac = HDR as u16;
        hostile(1, FIRST_FRAME as u32, &[f0], &[]);
    }

    #[test]
    fn a_frame_running_past_the_block_is_refused() {
        let f0 = frame(FIRST_FRAME, 64, 0xd1);
        let f1 = frame(BS - 200, 1000, 0xd2);
        let mut f0 = f0;
        f0.next = (f1.at - FIRST_FRAME) as u32;
        hostile(2, FIRST_FRAME as u32, &[f0, f1], &[(64, 0xd1)]);
    }

    #[test]
    fn a_link_past_the_block_or_a_huge_count_ends_the_walk() {
        // More frames announced than fit, the last link far past the end
        // (it would wrap a 32-bit sum).
        let f0 = frame(FIRST_FRAME, 64, 0xe0);
        let mut f1 = frame(FIRST_FRAME + f0.next as usize, 64, 0xe1);
        f1.next = u32::MAX;
        hostile(
            u32::MAX,
            FIRST_FRAME as u32,
            &[f0, f1],
            &[(64, 0xe0), (64, 0xe1)],
        );
    }

    #[test]
    fn a_first_offset_inside_the_descriptor_or_past_the_block_is_refused() {
        hostile(1, 8, &[], &[]);
        hostile(1, u32::MAX, &[], &[]);
        hostile(1, (BS - HDR + 1) as u32, &[], &[]);
    }

    #[test]
    fn an_empty_frame_is_refused() {
        let f0 = frame(FIRST_FRAME, 64, 0xf1);
        let f1 = frame(FIRST_FRAME + f0.next as usize, 0, 0xf2);
        hostile(2, FIRST_FRAME as u32, &[f0, f1], &[(64, 0xf1)]);
    }
}
