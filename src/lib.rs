//! pktmem: dataplane memory for Rust.
//!
//! A facade over the member crates, leaves first:
//!
//! ```text
//! hugemem  ──►  mempool  ──►  mbuf
//! ring     ──►  mempool
//! (rings carry owned values: a Ring<PoolBox<T>> moves pool objects between cores)
//! ```
//!
//! | module | crate | what it owns |
//! |---|---|---|
//! | [`hugemem`] | `pktmem-hugemem` | hugepages (2 MiB, 1 GiB) or small pages mapped on demand, per-page IOVA, external memory, device-mapping hooks |
//! | [`ring`] | `pktmem-ring` | fixed-capacity lock-free rings of owned values, ends typed by their sync mode |
//! | [`mempool`] | `pktmem-mempool` | pools of fixed-size objects behind per-core caches, one object handle ([`mempool::Obj`]) |
//! | [`mbuf`] | `pktmem-mbuf` | packet buffers: pools, chains, clones, external and pinned buffers |
//! | [`shm`] | this package | packet buffers shared with other processes: pools in exported memory, a port of four rings per peer role, an ownership ledger, reclaim of a dead peer's buffers, resume on restart |
//! | [`net`] | this package (feature `net`, default) | kernel packet rings feeding mbufs: `TPACKET_V3` (`af_packet`), `AF_XDP` over a UMEM in provider memory (`xdp`), the XDP redirect program (`bpf`), veth pairs in namespaces (`netns`) |
//!
//! # What to reach for first
//!
//! | you want | use |
//! |---|---|
//! | memory on hugepages (small pages when none are reserved), with IOVAs | [`hugemem::Provider::builder`] |
//! | a pool of objects in that memory | [`mempool::Mempool::builder`]`(n, size).build_on(&provider)`, or [`mempool::TypedPool`] for typed values |
//! | the fast path to a pool | a [`mempool::Cache`] per thread: `pool.get(&mut cache)` |
//! | packet buffers | [`mbuf::PktPool::builder`]`(n).build_on(&provider)`, `pool.alloc(&mut cache)` → [`mbuf::Mbuf`] |
//! | to move values between threads | [`ring::Ring::new`]`(n)` (holds exactly `n`), `.split()` for ends |
//! | frames from a kernel packet ring | `net::af_packet::PacketRing` (`TPACKET_V3`), `net::xdp::XskSocket` (`AF_XDP`) |
//! | one error type for `?` | [`Error`] |
//!
//! # The ten-line program
//!
//! A provider, a pool on it, objects taken from the pool on one thread,
//! passed through a ring to another thread, and given back to the pool
//! there — with no `unsafe`, no casts and no registries:
//!
//! ```
//! use pktmem::{hugemem::Provider, mempool::{PoolBox, TypedPool}, ring::Ring};
//!
//! fn main() -> Result<(), pktmem::Error> {
//!     // hugepages when reserved, small pages otherwise (said once on stderr)
//!     let provider = Provider::builder().build()?;
//!     let pool = TypedPool::<[u8; 64]>::builder(1023).build_on(&provider)?;
//!     // a ring of owned boxes between two threads: holds exactly 256
//!     let (tx, rx) = Ring::<PoolBox<[u8; 64]>>::new(256)?.split();
//!
//!     let worker = std::thread::spawn(move || {
//!         let mut seen = 0;
//!         while seen < 100 {
//!             if let Some(obj) = rx.dequeue() {
//!                 assert_eq!(obj[..4], *b"ping");
//!                 seen += 1; // dropping `obj` returns it to its pool
//!             }
//!         }
//!     });
//!     for _ in 0..100 {
//!         // at most 256 in the ring and 1 at the worker: the pool never runs dry
//!         let mut obj = pool.alloc([0; 64]).expect("a free object");
//!         obj[..4].copy_from_slice(b"ping");
//!         let mut obj = Some(obj);
//!         while let Some(o) = obj.take() {
//!             obj = tx.enqueue(o).err(); // a full ring hands the box back
//!         }
//!     }
//!     worker.join().expect("the worker checks every object");
//!     assert!(pool.pool().is_full()); // nothing leaked
//!     Ok(())
//! }
//! ```
//!
//! # Packets between cores
//!
//! The same with packet buffers: a packet pool on the provider, mbufs
//! filled on one core through an explicit cache (the fast path), carried as
//! owned values through a `Ring<Mbuf>`, read and freed on the other:
//!
//! ```
//! use pktmem::{hugemem::Provider, mbuf::{Mbuf, PktPool}, ring::Ring};
//!
//! fn main() -> Result<(), pktmem::Error> {
//!     let provider = Provider::builder().build()?;
//!     // 8191 mbufs, 2048 B of data after the 128 B headroom, caches of 256
//!     let pool = PktPool::builder(8191).data_room(2048 + 128).cache(256).build_on(&provider)?;
//!     let (tx, rx) = Ring::<Mbuf>::new(1024)?.split(); // holds 1024
//!
//!     let worker = std::thread::spawn(move || {
//!         let mut seen = 0;
//!         while seen < 32 {
//!             if let Some(m) = rx.dequeue() {
//!                 assert_eq!(&m.data()[..4], b"ping");
//!                 seen += 1; // dropping `m` returns it to its pool
//!             }
//!         }
//!     });
//!     let mut cache = pool.cache();
//!     for _ in 0..32 {
//!         let mut m = pool.alloc(&mut cache)?;
//!         m.append(4)?.copy_from_slice(b"ping");
//!         let _iova = m.data_iova(); // what a device descriptor needs
//!         tx.enqueue(m).expect("room for 32 in a ring of 1024");
//!     }
//!     worker.join().expect("the worker checks every packet");
//!     drop(cache);
//!     assert!(pool.is_full()); // nothing leaked
//!     Ok(())
//! }
//! ```

use std::fmt;

pub use pktmem_hugemem as hugemem;
pub use pktmem_mbuf as mbuf;
pub use pktmem_mempool as mempool;
pub use pktmem_ring as ring;

#[cfg(feature = "net")]
pub mod net;
pub mod shm;

/// Every pktmem error, for `?` in programs that use several crates.
///
/// Each operation of each crate returns its own error type with only the
/// variants it can produce; they all convert into their crate's umbrella
/// error ([`hugemem::HugememError`], [`ring::RingError`],
/// [`mempool::MempoolError`]) and into this one.
///
/// ```
/// fn ring_of_nothing() -> Result<(), pktmem::Error> {
///     let _ring = pktmem::ring::Ring::<u64>::new(0)?; // capacity 0: an error
///     Ok(())
/// }
/// let err = ring_of_nothing().unwrap_err();
/// assert!(matches!(err, pktmem::Error::Ring(_)));
/// println!("{err}");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// From the hugepage provider.
    Hugemem(hugemem::HugememError),
    /// From a ring.
    Ring(ring::RingError),
    /// From a pool.
    Mempool(mempool::MempoolError),
    /// From packet buffers.
    Mbuf(mbuf::MbufError),
    /// From the kernel packet rings, namespaces and XDP programs of
    /// [`net`].
    #[cfg(feature = "net")]
    Net(net::NetError),
    /// From shared packet-buffer pools and their ports ([`shm`]).
    Shm(shm::ShmError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Hugemem(e) => write!(f, "hugemem: {e}"),
            Error::Ring(e) => write!(f, "ring: {e}"),
            Error::Mempool(e) => write!(f, "mempool: {e}"),
            Error::Mbuf(e) => write!(f, "mbuf: {e}"),
            #[cfg(feature = "net")]
            Error::Net(e) => write!(f, "net: {e}"),
            Error::Shm(e) => write!(f, "shm: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Hugemem(e) => Some(e),
            Error::Ring(e) => Some(e),
            Error::Mempool(e) => Some(e),
            Error::Mbuf(e) => Some(e),
            #[cfg(feature = "net")]
            Error::Net(e) => Some(e),
            Error::Shm(e) => Some(e),
        }
    }
}

/// `From` for a crate's umbrella error and for each per-operation error that
/// converts into it.
macro_rules! from_errors {
    ($variant:ident, $umbrella:ty: $($op:ty),* $(,)?) => {
        impl From<$umbrella> for Error {
            fn from(e: $umbrella) -> Self {
                Error::$variant(e)
            }
        }
        $(
            impl From<$op> for Error {
                fn from(e: $op) -> Self {
                    Error::$variant(<$umbrella>::from(e))
                }
            }
        )*
    };
}

from_errors!(Hugemem, hugemem::HugememError:
    hugemem::BuildError,
    hugemem::AllocError,
    hugemem::ZoneError,
    hugemem::RegisterError,
    hugemem::UnregisterError,
    hugemem::LeaseError,
    hugemem::TranslateError,
    hugemem::share::ShareError,
    hugemem::share::ExportError,
    hugemem::share::AttachError,
    hugemem::share::PublishError,
    hugemem::share::RoleError,
    hugemem::share::ProtocolError,
);
from_errors!(Shm, shm::ShmError:
    shm::BuildError,
    shm::PortError,
    shm::AllocError,
    shm::DataError,
    shm::CopyError,
    shm::OpenError,
    shm::PeerPortError,
    shm::AuditError,
);
from_errors!(Ring, ring::RingError: ring::BuildError, ring::RingFull, ring::RingEmpty);
from_errors!(Mempool, mempool::MempoolError:
    mempool::BuildError,
    mempool::CreateError,
    mempool::PopulateError,
    mempool::GetError,
    mempool::CacheError,
    mempool::AuditError,
);
from_errors!(Mbuf, mbuf::MbufError:
    mbuf::BuildError,
    mbuf::AllocError,
    mbuf::DataError,
    mbuf::ChainError,
    mbuf::ChainErrorKind,
    mbuf::CloneError,
    mbuf::CopyError,
    mbuf::AttachErrorKind,
    mbuf::AttachExtError,
    mbuf::ExtBufError,
    mbuf::ExtSliceError,
    mbuf::SanityError,
    mbuf::PinnedAreaError,
    mbuf::ParseFlagsError,
    mbuf::DynFlagError,
    mbuf::DynFieldError,
    mbuf::TxLenError,
    mbuf::TxOffloadError,
);
