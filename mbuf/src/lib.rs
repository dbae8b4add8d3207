//! pktmem-mbuf: packet buffers.
//!
//! # What to reach for first
//!
//! | type | what it is |
//! |---|---|
//! | [`PktPool::builder`] → [`PktPoolBuilder`] | a pool of packet buffers on a provider (hugepages when present) or anonymous memory |
//! | [`Mbuf`] | an owned packet: a chain of segments; `Send`, goes through a `Ring<Mbuf>`; dropping it frees the chain |
//! | [`Segment`] | one segment, read-only: its data, buffer, IOVA, refcount |
//! | [`ExtBuf`] | a reference to an external buffer (any owner, or raw memory with a free callback), attached with [`Mbuf::attach_extbuf`] |
//! | [`PinnedArea`] | external memory a pinned pool cuts into buffers ([`PktPoolBuilder::pinned`]) |
//! | [`SharedMbuf`] | a read-only packet with several owners (multicast, mirrors) |
//! | [`OffloadFlags`], [`TxOffload`], [`PacketType`] | typed header words: offload flags with names, TX offload lengths with validation, packet type per layer |
//! | [`DynField`], [`DynFlag`] | named fields in the header's dynamic area and named flag bits, registered once per process |
//! | [`MbufReader`], [`Mbuf::into_bytes`] | `bytes` interop: a `Buf` across a chain, a `Bytes` without a copy |
//! | [`MbufError`] | every error of the crate, for `?` |
//!
//! # Model
//!
//! ```text
//!   pool object (a mempool object; its IOVA known from population)
//!  ┌────────────────────┬──────────────┬──────────────────────────────────┐
//!  │ MbufHeader (128 B) │ private area │ data room                        │
//!  │ 2 cache lines      │ priv_size B  │ headroom │ data │ tailroom       │
//!  └────────────────────┴──────────────┴──────────────────────────────────┘
//!                                       ▲ buf_addr, buf_iova = object IOVA + 128 + priv
//! ```
//!
//! An [`Mbuf`] owns one reference to a chain of segments. A segment's
//! **buffer** is one of three kinds:
//!
//! - **direct**: its own data room; its refcount counts its owner plus the
//!   indirect mbufs pointing at it;
//! - **indirect** ([`Mbuf::clone_in`], [`Mbuf::attach`]): another mbuf's
//!   buffer, whose refcount it holds; detaching (or dropping) gives it back
//!   and restores its own buffer;
//! - **external** ([`Mbuf::attach_extbuf`], pinned pools): memory the pool
//!   does not own, with a shared info holding a refcount and how to release
//!   the memory (drop its owner, or call a free callback), run exactly once
//!   when the last reference goes, on whichever thread drops it.
//!
//! Data can be written only while a buffer is referenced once (direct with
//! refcount 1, external with shared refcount 1): [`Mbuf::data_mut`],
//! [`append`](Mbuf::append) and [`prepend`](Mbuf::prepend) return `None` or
//! [`DataError::NotWritable`] otherwise. Everything that does not fit (a
//! prepend past the headroom, an append past the tailroom, a chain past
//! 65,535 segments) is a typed error and leaves the mbuf unchanged.
//!
//! Dropping an mbuf frees its chain: each segment's refcount drops; at zero
//! it detaches from what it points at and goes back to its pool, through
//! the thread's default cache ([`PktPool::free`] takes an explicit cache,
//! [`free_bulk`] batches segments per pool).
//!
//! ```
//! use pktmem_hugemem::Provider;
//! use pktmem_mbuf::PktPool;
//! let provider = Provider::builder().quiet(true).build().unwrap();
//! let pool = PktPool::builder(1023).cache(64).build_on(&provider).unwrap();
//! let mut cache = pool.cache();
//! let mut m = pool.alloc(&mut cache).unwrap();
//! m.append(4).unwrap().copy_from_slice(b"ping");
//! let worker = std::thread::spawn(move || {
//!     assert_eq!(m.data(), b"ping"); // dropped here, on another thread
//! });
//! worker.join().unwrap();
//! drop(cache);
//! pool.mempool().flush_default_cache();
//! ```

mod bytes_interop;
mod data;
pub mod dynfield;
mod error;
mod ext;
pub mod flags;
pub mod header;
mod indirect;
mod mbuf;
pub mod offload;
mod pinned;
mod pool;
mod ptype;
mod sync;

pub use bytes_interop::MbufReader;
pub use data::MAX_SEGS;
pub use dynfield::{DynField, DynFieldError, DynFieldValue, RawDynField};
pub use error::{
    AllocError, AttachErrorKind, AttachExtError, BuildError, ChainError, ChainErrorKind,
    CloneError, CopyError, DataError, ExtBufError, MbufError, SanityError,
};
pub use ext::{ExtBuf, ExtRegion, ExtSliceError, SharedHdr, EXT_BUF_MAX};
pub use flags::{DynFlag, DynFlagError, OffloadFlags, ParseFlagsError};
pub use header::{MbufHeader, DYN_AREA_LEN, DYN_AREA_OFFSET, HEADER_SIZE};
pub use mbuf::{Mbuf, Segment, Segments, SharedMbuf};
pub use offload::{TxLenError, TxLengths, TxOffload, TxOffloadError};
pub use pinned::{PinnedArea, PinnedAreaError};
pub use pool::{free_bulk, PktPool, PktPoolBuilder, DEFAULT_DATA_ROOM, MAX_DATA_ROOM};
pub use ptype::{
    InnerL2Type, InnerL3Type, InnerL4Type, L2Type, L3Type, L4Type, PacketType, TunnelType,
};

/// Default headroom: bytes kept before the data of a fresh mbuf (128, as
/// the reference's `RTE_PKTMBUF_HEADROOM`).
pub const HEADROOM: usize = 128;
