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
