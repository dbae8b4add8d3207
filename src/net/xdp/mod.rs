//! `AF_XDP` with the UMEM in provider memory, its frames owned mbufs.
//!
//! # Model
//!
//! ```text
//!  provider chunk (hugepages when present) = the UMEM, checked up front
//!  ┌─────────┬─────────┬─────────┬─────────┬─────┐
//!  │ frame 0 │ frame 1 │ frame 2 │ frame 3 │ ... │   frame i at i * frame_size
//!  └─────────┴─────────┴─────────┴─────────┴─────┘
//!       ▲ each frame is the buffer of one mbuf of a pinned pool over the chunk
//!
//!   pool ──refill──► frame table + fill ring ──kernel──► RX ring ──check──► Mbuf (app)
//!    ▲                                                                       │
//!    └──────────── drop (any thread) ◄───── completion ◄── TX ring ◄── tx_burst
//! ```
//!
//! - **The UMEM** is one [`Chunk`](crate::hugemem::Chunk) from the
//!   provider, fully mapped, sized to the frames. [`UmemConfig::validate`]
//!   checks every rule of the kernel's `XDP_UMEM_REG` first (frame size
//!   2048..=4096, a power of two unless unaligned mode — chosen from the
//!   size —, headroom at most `frame_size - 704` on this kernel, 32-bit
//!   counts), and [`UmemGeometry::check_chunk`] the memory's (a page-aligned
//!   start, the whole UMEM inside, no frame crossing into a page whose IOVA
//!   does not follow on), each with a typed error carrying the numbers.
//!   The chunk becomes a [`PinnedArea`](crate::mbuf::PinnedArea) of a
//!   pinned packet pool, which owns it: every frame is an mbuf's buffer,
//!   with its IOVA from the provider's page table.
//! - **A frame is an owned [`Mbuf`](crate::mbuf::Mbuf).** Frames posted to
//!   the fill ring are held in a per-frame table; an RX descriptor hands
//!   out the mbuf of the frame it names only after checking it (a frame
//!   start, computed in O(1); offset ≥ headroom; offset + length ≤ frame;
//!   the frame really with the kernel). No safe function turns an address
//!   into a frame: the only way to one is the pool. Dropping an RX mbuf, on
//!   any thread, puts the frame back in the pool; the socket refills the
//!   fill ring from the pool before every RX read.
//! - **TX without copies**: an mbuf over one of the UMEM's frames goes out
//!   by descriptor and is held, in order, until the kernel completes it
//!   (completion addresses come back with their offset bits and are masked
//!   and checked against the frames in flight); anything else is copied
//!   into a fresh frame, and counted.
//! - **One wake-up policy**: fill before bind, refill before reading, and
//!   one [`XskSocket::kick`] that makes a syscall only when the kernel sets
//!   `XDP_RING_NEED_WAKEUP` (in copy mode the TX ring always does).
//! - **Every frame accounted for**: after each burst the socket checks its
//!   [`Ledger`] (`in_kernel + in_app + free == total`, and the rings hold no
//!   more than it gave them); every refused descriptor and every loss is a
//!   counter ([`XskCounters`], next to the kernel's [`KernelStats`]).
//!   Dropping the socket closes it, then gives every frame it held back.
//!
//! Frames reach the socket through an XDP program that redirects the
//! queue's packets to it ([`crate::net::bpf::RedirectProgram`], with the
//! socket in its [`XskMap`](crate::net::bpf::XskMap)). On veth the kernel
//! runs in copy mode (SKB mode XDP); a zero-copy bind there is
//! [`XskError::ZeroCopyUnsupported`].
//!
//! ```no_run
//! // Needs root; a veth pair stands in for a NIC.
//! use pktmem::hugemem::Provider;
//! use pktmem::net::bpf::{RedirectProgram, XdpMode, XskMap};
//! use pktmem::net::netns::VethPair;
//! use pktmem::net::xdp::{UmemConfig, XskSocket};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let veth = VethPair::create()?;
//! let provider = Provider::builder().build()?;
//! let mut xsk = XskSocket::builder(veth.host_ifindex(), 0)
//!     .umem(UmemConfig::new(2048))
//!     .build_on(&provider)?;
//! let map = XskMap::new(1)?;
//! xsk.insert_into(&map)?; // at the socket's queue, 0
//! let prog = RedirectProgram::load(&map)?;
//! let _link = prog.attach(veth.host_ifindex(), XdpMode::Skb)?; // detached on drop
//! let mut rx = Vec::new();
//! xsk.rx_burst(&mut rx, 32);
//! xsk.tx_burst(&mut rx); // the same frames go back out, by descriptor
//! assert!(xsk.ledger().check().is_ok());
//! # Ok(()) }
//! ```

mod error;
mod ledger;
mod ring;
mod socket;
mod sys;
mod umem;

pub use error::{StatsError, XskError};
pub use ledger::{BadDescCounts, KernelStats, Ledger, LedgerError, XskCounters};
pub use socket::{probe_umem_reg, BindMode, XskBuilder, XskSocket};
pub use umem::{
    ChunkMode, DescError, RxFrame, UmemConfig, UmemConfigError, UmemGeometry, UmemMemoryError,
    KERNEL_RESERVED, MAX_FRAME_SIZE, MIN_FRAME_SIZE, UMEM_PAGE, XDP_PACKET_HEADROOM,
};
