//! Kernel packet rings feeding mbufs (feature `net`, on by default).
//!
//! - [`bpf`]: the XDP program that redirects a queue's frames to an
//!   `AF_XDP` socket (an XSKMAP, the program, its attachment), loaded
//!   through the `bpf` system call.
//! - [`netns`]: veth pairs in a network namespace of their own, removed on
//!   drop — the device tests and examples run against.
//! - [`xdp`]: an `AF_XDP` socket whose UMEM is one validated provider
//!   chunk, its frames the mbufs of a pinned pool (RX, TX by descriptor,
//!   every frame accounted for).

pub mod bpf;
pub mod netns;
pub mod xdp;
