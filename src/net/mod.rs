//! Kernel packet rings feeding mbufs (feature `net`, on by default).
//!
//! - [`netns`]: veth pairs in a network namespace of their own, removed on
//!   drop — the device tests and examples run against.

pub mod netns;
