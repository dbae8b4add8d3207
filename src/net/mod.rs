//! Kernel packet rings feeding mbufs (feature `net`, on by default).
//!
//! - [`af_packet`]: a `TPACKET_V3` receive ring whose frames become
//!   external-buffer mbufs, one shared info per block (the block goes back
//!   to the kernel when the last mbuf of its frames is dropped).
//! - [`netns`]: veth pairs in a network namespace of their own, removed on
//!   drop — the device tests and examples run against.

pub mod af_packet;
pub mod netns;
