//! pktmem: dataplane memory for Rust.
//!
//! A facade over the four member crates, leaves first:
//!
//! ```text
//! hugemem  ──►  mempool  ──►  mbuf
//! ring     ──►  mempool
//! ```
//!
//! | module | crate | what it owns |
//! |---|---|---|
//! | [`hugemem`] | `pktmem-hugemem` | hugepages (2 MiB, 1 GiB) or small pages mapped on demand, per-page IOVA |
//! | [`ring`] | `pktmem-ring` | fixed-capacity lock-free rings of `Copy` elements |
//! | [`mempool`] | `pktmem-mempool` | pools of fixed-size objects behind per-core caches |
//! | [`mbuf`] | `pktmem-mbuf` | packet buffers |

pub use pktmem_hugemem as hugemem;
pub use pktmem_mbuf as mbuf;
pub use pktmem_mempool as mempool;
pub use pktmem_ring as ring;
