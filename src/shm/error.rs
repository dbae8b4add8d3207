//! What the shared pools, ports and buffers can fail with: one type per
//! operation, each converting into [`ShmError`].

use std::fmt;
use std::time::Duration;

use crate::hugemem::share::PublishError;
use crate::ring::shared::ShmRingError;

/// Why [`SharedPoolBuilder::build`](super::SharedPoolBuilder::build) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// No buffers asked for, or more than a `u32` index can name.
    Count {
        /// Buffers asked for.
        count: usize,
        /// The most a pool can have.
        max: usize,
    },
    /// A data room of 0, or above the 16-bit window offset's reach.
    DataRoom {
        /// Bytes asked for.
        data_room: usize,
        /// The largest data room.
        max: usize,
    },
    /// A default headroom larger than the data room.
    Headroom {
        /// Headroom asked for.
        headroom: usize,
        /// The data room.
        data_room: usize,
    },
    /// The buffer stride is larger than the page the pool landed on (a
    /// buffer would straddle two pages, which may not be contiguous in
    /// IOVA space).
    Stride {
        /// Bytes per buffer (the data room rounded up to a power of two).
        stride: usize,
        /// The chunk's page size.
        page_size: usize,
    },
    /// A pool name that is empty, longer than 48 bytes, or not of
    /// `[A-Za-z0-9._-]`.
    Name {
        /// The name.
        name: String,
    },
    /// The exporter's provider could not give the buffers' memory.
    Alloc(crate::hugemem::AllocError),
    /// The private free list could not be built.
    FreeList(crate::ring::BuildError),
    /// The pool's directory entry could not be published.
    Publish(PublishError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Count { count, max } => {
                write!(f, "shared pool of {count} buffers: must be 1..={max}")
            }
            Self::DataRoom { data_room, max } => {
                write!(
                    f,
                    "shared pool data room of {data_room} B: must be 1..={max}"
                )
            }
            Self::Headroom {
                headroom,
                data_room,
            } => write!(
                f,
                "shared pool headroom of {headroom} B is larger than the data room of {data_room} B"
            ),
            Self::Stride { stride, page_size } => write!(
                f,
                "shared pool buffers of {stride} B would straddle pages of {page_size} B"
            ),
            Self::Name { name } => write!(
                f,
                "shared pool name {name:?}: must be 1..=48 bytes of [A-Za-z0-9._-]"
            ),
            Self::Alloc(e) => write!(f, "shared pool memory: {e}"),
            Self::FreeList(e) => write!(f, "shared pool free list: {e}"),
            Self::Publish(e) => write!(f, "shared pool directory entry: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Alloc(e) => Some(e),
            Self::FreeList(e) => Some(e),
            Self::Publish(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`SharedPool::port`](super::SharedPool::port) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PortError {
    /// A ring capacity that is not a power of two in `2..=2^24`.
    RingCapacity {
        /// Capacity asked for.
        capacity: u32,
    },
    /// A lend target of 0, or larger than the lend ring or the pool.
    LendTarget {
        /// Target asked for.
        lend: u32,
        /// The rings' capacity.
        capacity: u32,
        /// Buffers of the pool.
        buffers: u32,
    },
    /// This pool already has a live port for the role.
    RoleTaken {
        /// The role.
        role: String,
    },
    /// The exporter's provider could not give the rings' memory.
    Alloc(crate::hugemem::AllocError),
    /// A ring could not be laid out in that memory.
    Ring(ShmRingError),
    /// The port's directory entry could not be published.
    Publish(PublishError),
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::RingCapacity { capacity } => write!(
                f,
                "port ring capacity {capacity}: must be a power of two in 2..=16777216"
            ),
            Self::LendTarget {
                lend,
                capacity,
                buffers,
            } => write!(
                f,
                "port lend target {lend}: must be 1..={} (ring capacity {capacity}, pool of {buffers})",
                (*capacity).min(*buffers)
            ),
            Self::RoleTaken { role } => write!(f, "the pool already has a port for role {role:?}"),
            Self::Alloc(e) => write!(f, "port ring memory: {e}"),
            Self::Ring(e) => write!(f, "port ring: {e}"),
            Self::Publish(e) => write!(f, "port directory entry: {e}"),
        }
    }
}

impl std::error::Error for PortError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Alloc(e) => Some(e),
            Self::Ring(e) => Some(e),
            Self::Publish(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`SharedPool::alloc`](super::SharedPool::alloc) or
/// [`PeerPool::alloc`](super::PeerPool::alloc) found no buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocError {
    /// No buffer is free on this side (on the peer: none cached and none
    /// in the lend ring).
    Exhausted {
        /// Buffers of the pool.
        total: u32,
        /// Buffers lent to peers (exporter) / held by this process (peer).
        out: usize,
    },
    /// The lend ring's indices are corrupt (the other side wrote them).
    Ring(ShmRingError),
    /// Nothing left here, and the exporter withdrew the pool or this
    /// role's port (peer side): no more loans will come.
    Withdrawn {
        /// The pool's directory entry.
        entry: String,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted { total, out } => write!(
                f,
                "no free buffer in a shared pool of {total} ({out} out on the other side or in hand)"
            ),
            Self::Ring(e) => write!(f, "lend ring: {e}"),
            Self::Withdrawn { entry } => write!(
                f,
                "no buffer left here and the exporter withdrew {entry:?} or this role's port in it"
            ),
        }
    }
}

impl std::error::Error for AllocError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ring(e) => Some(e),
            Self::Exhausted { .. } | Self::Withdrawn { .. } => None,
        }
    }
}

/// Why a [`SharedBuf`](super::SharedBuf) window or byte operation was
/// refused (the buffer is unchanged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataError {
    /// More bytes asked before the data than the headroom has.
    NoHeadroom {
        /// Bytes asked.
        len: usize,
        /// The headroom.
        headroom: usize,
    },
    /// More bytes asked after the data than the tailroom has.
    NoTailroom {
        /// Bytes asked.
        len: usize,
        /// The tailroom.
        tailroom: usize,
    },
    /// More bytes to remove than the data has.
    TooShort {
        /// Bytes asked.
        len: usize,
        /// The data length.
        data_len: usize,
    },
    /// A byte range outside the data window.
    OutsideData {
        /// Offset into the data.
        offset: usize,
        /// Bytes.
        len: usize,
        /// The data length.
        data_len: usize,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHeadroom { len, headroom } => {
                write!(f, "{len} B asked before the data, headroom is {headroom} B")
            }
            Self::NoTailroom { len, tailroom } => {
                write!(f, "{len} B asked after the data, tailroom is {tailroom} B")
            }
            Self::TooShort { len, data_len } => {
                write!(f, "{len} B to remove from {data_len} B of data")
            }
            Self::OutsideData {
                offset,
                len,
                data_len,
            } => write!(
                f,
                "{len} B at offset {offset} is outside the {data_len} B of data"
            ),
        }
    }
}

impl std::error::Error for DataError {}

/// Why a copy between a [`SharedBuf`](super::SharedBuf) and an
/// [`Mbuf`](crate::mbuf::Mbuf) failed (nothing changed).
#[derive(Debug)]
#[non_exhaustive]
pub enum CopyError {
    /// The packet pool had no mbuf.
    Alloc(crate::mbuf::AllocError),
    /// The data does not fit the destination.
    TooLong {
        /// Bytes to copy.
        len: usize,
        /// Room at the destination.
        room: usize,
    },
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Alloc(e) => write!(f, "copy: {e}"),
            Self::TooLong { len, room } => {
                write!(f, "copy of {len} B into {room} B of room")
            }
        }
    }
}

impl std::error::Error for CopyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Alloc(e) => Some(e),
            Self::TooLong { .. } => None,
        }
    }
}

/// Why [`PeerPool::open`](super::PeerPool::open) failed (nothing kept).
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// The exporter publishes no pool of that name.
    NotPublished {
        /// The directory entry looked for.
        entry: String,
    },
    /// A directory entry that does not parse or does not fit the mapping.
    BadEntry {
        /// The entry.
        entry: String,
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// The entry's layout version is not this one.
    Version {
        /// The entry.
        entry: String,
        /// The version it has.
        theirs: u32,
        /// The version this side speaks.
        ours: u32,
    },
    /// Memory the entry names is not mapped in this process.
    NotMapped {
        /// What it is.
        what: &'static str,
        /// Exporter VA.
        va: u64,
        /// Bytes.
        len: u64,
    },
    /// The exporter did not grant this attachment's generation in time
    /// (it reclaims a dead predecessor's buffers first).
    Timeout {
        /// The port's entry.
        entry: String,
        /// How long it waited.
        waited: Duration,
        /// This attachment's generation.
        want: u64,
        /// The generation the entry granted last.
        granted: u64,
    },
    /// A ring in the entry failed its header check.
    Ring(ShmRingError),
    /// The exporter is gone.
    ExporterGone,
    /// This process already has the pool open for the role (one
    /// [`PeerPool`](super::PeerPool) per pool, role and process while it
    /// lives: its lend and return rings have one end each here).
    AlreadyOpen {
        /// The pool's entry.
        entry: String,
        /// The role slot.
        slot: u16,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotPublished { entry } => write!(f, "no directory entry {entry:?}"),
            Self::BadEntry {
                entry,
                field,
                value,
            } => write!(f, "directory entry {entry:?}: bad {field} {value:#x}"),
            Self::Version {
                entry,
                theirs,
                ours,
            } => write!(
                f,
                "directory entry {entry:?} has layout version {theirs}, this side speaks {ours}"
            ),
            Self::NotMapped { what, va, len } => write!(
                f,
                "{what} at exporter VA {va:#x} ({len} B) is not mapped here"
            ),
            Self::Timeout {
                entry,
                waited,
                want,
                granted,
            } => write!(
                f,
                "{entry:?} granted generation {granted}, not {want}, within {waited:?}"
            ),
            Self::Ring(e) => write!(f, "port ring: {e}"),
            Self::ExporterGone => write!(f, "the exporter is gone"),
            Self::AlreadyOpen { entry, slot } => write!(
                f,
                "{entry:?} is already open in this process for role slot {slot} (drop that PeerPool first)"
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ring(e) => Some(e),
            _ => None,
        }
    }
}

/// Why [`PeerPool::port`](super::PeerPool::port) failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerPortError {
    /// The port is already in use in this process (one live
    /// [`PeerPort`](super::PeerPort) per pool: its rings have one end here).
    Taken,
    /// The exporter withdrew the pool or this role's port since the pool
    /// was opened.
    Withdrawn {
        /// The pool's directory entry.
        entry: String,
    },
    /// The down or up ring failed its header check (the exporter's memory
    /// is not a ring: a corrupt or foreign entry).
    Ring(ShmRingError),
}

impl fmt::Display for PeerPortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Taken => write!(f, "the pool's port is already in use in this process"),
            Self::Ring(e) => write!(f, "the port's packet ring: {e}"),
            Self::Withdrawn { entry } => write!(
                f,
                "the exporter withdrew {entry:?} or this role's port in it (open the pool again)"
            ),
        }
    }
}

impl std::error::Error for PeerPortError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Ring(e) => Some(e),
            Self::Taken | Self::Withdrawn { .. } => None,
        }
    }
}

/// What [`SharedPool::audit`](super::SharedPool::audit) found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuditError {
    /// A buffer index in the free list twice, or out of range.
    FreeList {
        /// The index.
        index: u32,
        /// Why it is wrong.
        why: &'static str,
    },
    /// A buffer in the free list that the ledger says is lent.
    FreeButLent {
        /// The index.
        index: u32,
        /// The role slot holding it.
        slot: u32,
    },
    /// Buffers the pool cannot account for (neither free, nor in the
    /// exporter's hands, nor lent).
    Lost {
        /// Buffers of the pool.
        total: u32,
        /// Free.
        free: usize,
        /// In the exporter's hands.
        exporter_out: usize,
        /// Lent to roles.
        lent: usize,
    },
}

impl fmt::Display for AuditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::FreeList { index, why } => write!(f, "free list: buffer {index}: {why}"),
            Self::FreeButLent { index, slot } => {
                write!(f, "buffer {index} is free but lent to role slot {slot}")
            }
            Self::Lost {
                total,
                free,
                exporter_out,
                lent,
            } => write!(
                f,
                "{total} buffers, {free} free + {exporter_out} with the exporter + {lent} lent = {}",
                free + exporter_out + lent
            ),
        }
    }
}

impl std::error::Error for AuditError {}

/// Any error of [`pktmem::shm`](super), for `?` (each operation returns
/// its own type; each converts into this one).
///
/// ```
/// use pktmem::shm::{DataError, ShmError};
/// let e: ShmError = DataError::TooShort { len: 3, data_len: 2 }.into();
/// assert!(matches!(e, ShmError::Data(_)));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ShmError {
    /// Building a shared pool.
    Build(BuildError),
    /// Making a port.
    Port(PortError),
    /// Allocating a buffer.
    Alloc(AllocError),
    /// A buffer's data window.
    Data(DataError),
    /// Copying to or from an mbuf.
    Copy(CopyError),
    /// Opening a pool in a peer.
    Open(OpenError),
    /// Taking a peer's port.
    PeerPort(PeerPortError),
    /// An audit that failed.
    Audit(AuditError),
}

impl fmt::Display for ShmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(e) => e.fmt(f),
            Self::Port(e) => e.fmt(f),
            Self::Alloc(e) => e.fmt(f),
            Self::Data(e) => e.fmt(f),
            Self::Copy(e) => e.fmt(f),
            Self::Open(e) => e.fmt(f),
            Self::PeerPort(e) => e.fmt(f),
            Self::Audit(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ShmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build(e) => Some(e),
            Self::Port(e) => Some(e),
            Self::Alloc(e) => Some(e),
            Self::Data(e) => Some(e),
            Self::Copy(e) => Some(e),
            Self::Open(e) => Some(e),
            Self::PeerPort(e) => Some(e),
            Self::Audit(e) => Some(e),
        }
    }
}

macro_rules! into_shm_error {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for ShmError {
            fn from(e: $t) -> Self {
                ShmError::$v(e)
            }
        }
    )*};
}

into_shm_error!(
    BuildError => Build,
    PortError => Port,
    AllocError => Alloc,
    DataError => Data,
    CopyError => Copy,
    OpenError => Open,
    PeerPortError => PeerPort,
    AuditError => Audit,
);
