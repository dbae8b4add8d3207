//! Kernel packet rings feeding mbufs (feature `net`, on by default).
//!
//! - [`af_packet`]: a `TPACKET_V3` receive ring whose frames become
//!   external-buffer mbufs, one shared info per block (the block goes back
//!   to the kernel when the last mbuf of its frames is dropped).
//! - [`bpf`]: the XDP program that redirects a queue's frames to an
//!   `AF_XDP` socket (an XSKMAP, the program, its attachment), loaded
//!   through the `bpf` system call.
//! - [`netns`]: veth pairs in a network namespace of their own, removed on
//!   drop — the device tests and examples run against.
//! - [`xdp`]: an `AF_XDP` socket whose UMEM is one validated provider
//!   chunk, its frames the mbufs of a pinned pool (RX, TX by descriptor,
//!   every frame accounted for).

pub mod af_packet;
pub mod bpf;
pub mod netns;
pub mod xdp;

use std::fmt;

/// Any error of this module, for `?` in programs that use several of its
/// parts; each operation returns its own error type, and each converts into
/// this one (and into [`crate::Error`]).
///
/// ```
/// fn umem() -> Result<(), pktmem::net::NetError> {
///     pktmem::net::xdp::UmemConfig::new(0).validate()?; // no frames: an error
///     Ok(())
/// }
/// assert!(matches!(umem(), Err(pktmem::net::NetError::UmemConfig(_))));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum NetError {
    /// Making or using a veth pair in a namespace.
    Netns(netns::NetnsError),
    /// Loading or attaching the XDP program, or its XSKMAP.
    Bpf(bpf::BpfError),
    /// Opening a `TPACKET_V3` ring.
    PacketBuild(af_packet::BuildError),
    /// Waiting on a `TPACKET_V3` ring.
    PacketWait(af_packet::WaitError),
    /// Reading a `TPACKET_V3` ring's kernel statistics.
    PacketStats(af_packet::StatsError),
    /// A UMEM geometry the kernel would refuse.
    UmemConfig(xdp::UmemConfigError),
    /// UMEM memory that does not fit its geometry.
    UmemMemory(xdp::UmemMemoryError),
    /// An `AF_XDP` descriptor that does not name a frame.
    Desc(xdp::DescError),
    /// Making or using an `AF_XDP` socket.
    Xsk(xdp::XskError),
    /// Reading an `AF_XDP` socket's kernel statistics.
    XskStats(xdp::StatsError),
    /// A frame ledger that does not add up.
    Ledger(xdp::LedgerError),
}

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetError::Netns(e) => write!(f, "netns: {e}"),
            NetError::Bpf(e) => write!(f, "bpf: {e}"),
            NetError::PacketBuild(e) => write!(f, "af_packet: {e}"),
            NetError::PacketWait(e) => write!(f, "af_packet: {e}"),
            NetError::PacketStats(e) => write!(f, "af_packet: {e}"),
            NetError::UmemConfig(e) => write!(f, "xdp: {e}"),
            NetError::UmemMemory(e) => write!(f, "xdp: {e}"),
            NetError::Desc(e) => write!(f, "xdp: {e}"),
            NetError::Xsk(e) => write!(f, "xdp: {e}"),
            NetError::XskStats(e) => write!(f, "xdp: {e}"),
            NetError::Ledger(e) => write!(f, "xdp: {e}"),
        }
    }
}

impl std::error::Error for NetError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            NetError::Netns(e) => Some(e),
            NetError::Bpf(e) => Some(e),
            NetError::PacketBuild(e) => Some(e),
            NetError::PacketWait(e) => Some(e),
            NetError::PacketStats(e) => Some(e),
            NetError::UmemConfig(e) => Some(e),
            NetError::UmemMemory(e) => Some(e),
            NetError::Desc(e) => Some(e),
            NetError::Xsk(e) => Some(e),
            NetError::XskStats(e) => Some(e),
            NetError::Ledger(e) => Some(e),
        }
    }
}

macro_rules! into_net_error {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for NetError {
            fn from(e: $t) -> Self {
                NetError::$v(e)
            }
        }
        impl From<$t> for crate::Error {
            fn from(e: $t) -> Self {
                crate::Error::Net(NetError::$v(e))
            }
        }
    )*};
}

into_net_error!(
    netns::NetnsError => Netns,
    bpf::BpfError => Bpf,
    af_packet::BuildError => PacketBuild,
    af_packet::WaitError => PacketWait,
    af_packet::StatsError => PacketStats,
    xdp::UmemConfigError => UmemConfig,
    xdp::UmemMemoryError => UmemMemory,
    xdp::DescError => Desc,
    xdp::XskError => Xsk,
    xdp::StatsError => XskStats,
    xdp::LedgerError => Ledger,
);

impl From<NetError> for crate::Error {
    fn from(e: NetError) -> Self {
        crate::Error::Net(e)
    }
}
