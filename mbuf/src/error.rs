//! Errors, one enum per operation, all convertible into [`MbufError`].

use std::fmt;

use crate::{ExtBuf, Mbuf};

/// Why a packet pool could not be built ([`PktPoolBuilder`](crate::PktPoolBuilder)).
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// The data room does not fit the 16-bit buffer length.
    DataRoomTooLarge {
        /// Requested data room, headroom included.
        data_room: usize,
        /// Largest data room (65,535).
        max: usize,
    },
    /// The private area size is not a multiple of 8 (the buffer after it
    /// must stay 8-aligned).
    PrivateSizeUnaligned {
        /// Requested private size.
        private_size: usize,
    },
    /// The private area does not fit the 16-bit field.
    PrivateSizeTooLarge {
        /// Requested private size.
        private_size: usize,
        /// Largest private size.
        max: usize,
    },
    /// A pinned pool's external areas cannot hold the mbufs asked for.
    PinnedAreasTooSmall {
        /// Mbufs asked for.
        needed: usize,
        /// Buffers the areas hold.
        available: usize,
    },
    /// A pinned pool's area is unusable (element size zero or above 65,535,
    /// address null or length not a multiple of the element size).
    BadPinnedArea {
        /// Index of the area in the list.
        index: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The underlying mempool could not be created or populated.
    Mempool(pktmem_mempool::CreateError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DataRoomTooLarge { data_room, max } => {
                write!(
                    f,
                    "data room of {data_room} B does not fit 16 bits (max {max})"
                )
            }
            Self::PrivateSizeUnaligned { private_size } => {
                write!(f, "private size {private_size} is not a multiple of 8")
            }
            Self::PrivateSizeTooLarge { private_size, max } => {
                write!(f, "private size {private_size} above the maximum {max}")
            }
            Self::PinnedAreasTooSmall { needed, available } => write!(
                f,
                "pinned areas hold {available} buffers, the pool needs {needed}"
            ),
            Self::BadPinnedArea { index, reason } => {
                write!(f, "pinned area {index}: {reason}")
            }
            Self::Mempool(e) => write!(f, "packet pool's mempool: {e}"),
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Mempool(e) => Some(e),
            _ => None,
        }
    }
}

impl From<pktmem_mempool::CreateError> for BuildError {
    fn from(e: pktmem_mempool::CreateError) -> Self {
        Self::Mempool(e)
    }
}

/// The pool could not give the mbufs asked for (nothing was taken).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AllocError {
    /// Fewer mbufs were available than requested.
    Exhausted {
        /// Mbufs requested.
        requested: usize,
        /// Mbufs available in the pool's backend at the time.
        available: usize,
    },
}

impl fmt::Display for AllocError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted {
                requested,
                available,
            } => write!(
                f,
                "packet pool cannot give {requested} mbufs, {available} available"
            ),
        }
    }
}

impl std::error::Error for AllocError {}

impl From<pktmem_mempool::GetError> for AllocError {
    fn from(e: pktmem_mempool::GetError) -> Self {
        match e {
            pktmem_mempool::GetError::Empty {
                requested,
                available,
            } => Self::Exhausted {
                requested,
                available,
            },
            // `GetError` is non-exhaustive; every get failure is "not enough".
            #[allow(unreachable_patterns)]
            _ => Self::Exhausted {
                requested: 0,
                available: 0,
            },
        }
    }
}

/// A data operation does not fit; the mbuf is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataError {
    /// Prepend of more than the headroom.
    NoHeadroom {
        /// Bytes asked for.
        len: usize,
        /// Headroom of the first segment.
        headroom: usize,
    },
    /// Append of more than the tailroom.
    NoTailroom {
        /// Bytes asked for.
        len: usize,
        /// Tailroom of the last segment.
        tailroom: usize,
    },
    /// Removal of more bytes than the segment (adj) or packet (trim) holds.
    TooShort {
        /// Bytes asked for.
        len: usize,
        /// Bytes there.
        have: usize,
    },
    /// The bytes would be written in a buffer another mbuf or owner also
    /// references (refcount above 1).
    NotWritable,
    /// The packet length would pass `u32::MAX`.
    PacketTooLong {
        /// Bytes asked for.
        len: usize,
    },
    /// A data window ([`Mbuf::set_data_window`](crate::Mbuf::set_data_window))
    /// that does not lie inside the buffer.
    OutsideBuffer {
        /// Offset of the window from the buffer's start.
        offset: usize,
        /// Its length.
        len: usize,
        /// Length of the buffer.
        buf_len: usize,
    },
}

impl fmt::Display for DataError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoHeadroom { len, headroom } => {
                write!(f, "cannot prepend {len} B: headroom is {headroom} B")
            }
            Self::NoTailroom { len, tailroom } => {
                write!(f, "cannot append {len} B: tailroom is {tailroom} B")
            }
            Self::TooShort { len, have } => write!(f, "cannot remove {len} B of {have} B"),
            Self::NotWritable => write!(f, "the buffer is shared (refcount above 1)"),
            Self::PacketTooLong { len } => {
                write!(f, "adding {len} B would pass the 32-bit packet length")
            }
            Self::OutsideBuffer {
                offset,
                len,
                buf_len,
            } => write!(
                f,
                "a data window of {len} B at offset {offset} does not fit a buffer of {buf_len} B"
            ),
        }
    }
}

impl std::error::Error for DataError {}

/// Why [`Mbuf::chain`] refused; the tail is handed back in [`ChainError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChainErrorKind {
    /// The chain would have more segments than the 16-bit count allows.
    TooManySegments {
        /// Segments the chain would have.
        total: usize,
        /// Largest segment count (65,535).
        max: usize,
    },
    /// The packet length would pass `u32::MAX`.
    PacketTooLong {
        /// Bytes the chain would hold.
        total: u64,
    },
}

/// [`Mbuf::chain`] refused: the reason and the tail, unchanged.
pub struct ChainError {
    /// Why.
    pub kind: ChainErrorKind,
    /// The chain that was to be appended, given back.
    pub tail: Mbuf,
}

impl fmt::Debug for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChainError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ChainErrorKind::TooManySegments { total, max } => {
                write!(f, "chain of {total} segments passes the maximum {max}")
            }
            ChainErrorKind::PacketTooLong { total } => {
                write!(f, "chain of {total} B passes the 32-bit packet length")
            }
        }
    }
}

impl std::error::Error for ChainError {}

/// A clone ([`Mbuf::clone_in`](crate::Mbuf::clone_in)) could not be made;
/// whatever it had built was freed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloneError {
    /// The pool ran out of mbufs part way.
    Exhausted {
        /// Mbufs the clone needed.
        needed: usize,
        /// Mbufs it had obtained when the pool ran dry.
        obtained: usize,
    },
    /// A segment's refcount (16 bits) is at its maximum.
    RefcntOverflow,
    /// Clones cannot come from a pinned pool: its mbufs are bound to their
    /// own buffers for good and cannot point at another's.
    PinnedPool,
}

impl fmt::Display for CloneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted { needed, obtained } => write!(
                f,
                "pool ran out after {obtained} of the {needed} mbufs needed"
            ),
            Self::RefcntOverflow => write!(f, "a segment's refcount is at its maximum (65,535)"),
            Self::PinnedPool => write!(f, "clones cannot come from a pinned pool"),
        }
    }
}

impl std::error::Error for CloneError {}

/// A copy ([`Mbuf::copy`](crate::Mbuf::copy)) could not be made; whatever
/// it had built was freed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CopyError {
    /// The pool ran out of mbufs part way.
    Exhausted {
        /// Mbufs the copy needed (known so far).
        needed: usize,
        /// Mbufs it had obtained when the pool ran dry.
        obtained: usize,
    },
    /// The byte range is not inside the packet.
    OutOfRange {
        /// Requested offset.
        offset: usize,
        /// Requested length.
        len: usize,
        /// Packet length.
        pkt_len: usize,
    },
    /// The destination pool's mbufs have no room for data after their
    /// headroom, so nothing can be copied into them.
    NoDataRoom,
    /// The copy needs more segments than a chain may have.
    TooManySegments {
        /// Segments needed.
        needed: usize,
    },
}

impl fmt::Display for CopyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted { needed, obtained } => write!(
                f,
                "pool ran out after {obtained} of the {needed} mbufs needed"
            ),
            Self::OutOfRange {
                offset,
                len,
                pkt_len,
            } => write!(
                f,
                "bytes {offset}..{offset}+{len} are not inside the {pkt_len}-byte packet"
            ),
            Self::NoDataRoom => write!(f, "the destination pool's mbufs have no room for data"),
            Self::TooManySegments { needed } => {
                write!(f, "the copy needs {needed} segments, above 65,535")
            }
        }
    }
}

impl std::error::Error for CopyError {}

/// Why an attach was refused; the mbuf is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachErrorKind {
    /// The mbuf already uses another buffer (indirect or external): detach
    /// it first.
    AlreadyAttached,
    /// The mbuf's own buffer is referenced elsewhere (refcount above 1).
    NotWritable,
    /// The mbuf is the head of a chain; attach works on one segment.
    Chained {
        /// Segments in the chain.
        nb_segs: u16,
    },
    /// The mbuf to attach to is the same mbuf.
    SelfAttach,
    /// The target's refcount (or its shared info's) is at its maximum.
    RefcntOverflow,
}

impl fmt::Display for AttachErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AlreadyAttached => write!(f, "mbuf is already attached to another buffer"),
            Self::NotWritable => write!(f, "mbuf's buffer is shared (refcount above 1)"),
            Self::Chained { nb_segs } => {
                write!(f, "mbuf heads a chain of {nb_segs} segments")
            }
            Self::SelfAttach => write!(f, "an mbuf cannot attach to itself"),
            Self::RefcntOverflow => write!(f, "refcount at its maximum (65,535)"),
        }
    }
}

impl std::error::Error for AttachErrorKind {}

/// [`Mbuf::attach_extbuf`] refused: the reason and the external buffer
/// reference, given back.
pub struct AttachExtError {
    /// Why.
    pub kind: AttachErrorKind,
    /// The reference that was to be attached.
    pub ext: ExtBuf,
}

impl fmt::Debug for AttachExtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AttachExtError")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AttachExtError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot attach external buffer: {}", self.kind)
    }
}

impl std::error::Error for AttachExtError {}

/// An external buffer description was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtBufError {
    /// The buffer is longer than the 16-bit buffer length.
    TooLong {
        /// Its length.
        len: usize,
        /// Largest length (65,535).
        max: usize,
    },
    /// The buffer is too small to hold its shared info at its tail (and at
    /// least one byte of data).
    TooSmall {
        /// Its length.
        len: usize,
        /// Bytes the shared info needs (plus alignment).
        needed: usize,
    },
    /// The buffer's address is null or its length zero.
    Empty,
}

impl fmt::Display for ExtBufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong { len, max } => {
                write!(f, "external buffer of {len} B is above the maximum {max}")
            }
            Self::TooSmall { len, needed } => write!(
                f,
                "external buffer of {len} B cannot hold its {needed}-byte shared info and data"
            ),
            Self::Empty => write!(f, "external buffer is empty"),
        }
    }
}

impl std::error::Error for ExtBufError {}

/// What [`Mbuf::check`] found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SanityError {
    /// The mbuf names no pool.
    NoPool,
    /// A segment's buffer address is null.
    NullBuffer {
        /// Segment index.
        seg: usize,
    },
    /// A direct segment's buffer address is not its own data room.
    BadBufferAddress {
        /// Segment index.
        seg: usize,
    },
    /// A direct segment's buffer IOVA is not its object's.
    BadIova {
        /// Segment index.
        seg: usize,
    },
    /// A refcount is zero or above the plausible maximum.
    BadRefcnt {
        /// Segment index.
        seg: usize,
        /// The count read.
        refcnt: u16,
    },
    /// A segment's data does not lie inside its buffer.
    DataOutsideBuffer {
        /// Segment index.
        seg: usize,
        /// Data offset.
        data_off: u16,
        /// Data length.
        data_len: u16,
        /// Buffer length.
        buf_len: u16,
    },
    /// The head's segment count does not match the chain.
    SegmentCount {
        /// The head's count.
        nb_segs: u16,
        /// Segments found.
        found: usize,
    },
    /// The head's packet length does not match the sum of data lengths.
    PacketLength {
        /// The head's length.
        pkt_len: u32,
        /// Sum over the segments.
        sum: u64,
    },
}

impl fmt::Display for SanityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoPool => write!(f, "mbuf has no pool"),
            Self::NullBuffer { seg } => write!(f, "segment {seg}: null buffer address"),
            Self::BadBufferAddress { seg } => {
                write!(
                    f,
                    "segment {seg}: direct buffer address is not its own data room"
                )
            }
            Self::BadIova { seg } => write!(f, "segment {seg}: buffer IOVA is not its object's"),
            Self::BadRefcnt { seg, refcnt } => write!(f, "segment {seg}: bad refcount {refcnt}"),
            Self::DataOutsideBuffer {
                seg,
                data_off,
                data_len,
                buf_len,
            } => write!(
                f,
                "segment {seg}: data {data_off}+{data_len} outside its {buf_len}-byte buffer"
            ),
            Self::SegmentCount { nb_segs, found } => {
                write!(f, "head says {nb_segs} segments, the chain has {found}")
            }
            Self::PacketLength { pkt_len, sum } => {
                write!(f, "head says {pkt_len} B, the segments hold {sum} B")
            }
        }
    }
}

impl std::error::Error for SanityError {}

/// Every error of the crate, for `?`.
#[derive(Debug)]
#[non_exhaustive]
pub enum MbufError {
    /// Building a pool.
    Build(BuildError),
    /// Allocating.
    Alloc(AllocError),
    /// A data operation.
    Data(DataError),
    /// Chaining (the tail was dropped with the error's conversion).
    Chain(ChainErrorKind),
    /// Cloning or copying.
    Clone(CloneError),
    /// Copying packet bytes into new mbufs.
    Copy(CopyError),
    /// Attaching.
    Attach(AttachErrorKind),
    /// An external buffer description.
    ExtBuf(ExtBufError),
    /// A slice of an external buffer.
    ExtSlice(crate::ExtSliceError),
    /// A sanity check.
    Sanity(SanityError),
    /// A pinned pool's area.
    PinnedArea(crate::PinnedAreaError),
    /// Parsing offload flag names.
    ParseFlags(crate::ParseFlagsError),
    /// Registering a dynamic flag.
    DynFlag(crate::DynFlagError),
    /// Registering a dynamic field.
    DynField(crate::DynFieldError),
    /// A TX offload length that does not fit its bits.
    TxLen(crate::TxLenError),
    /// TX offload flags that contradict each other or the lengths.
    TxOffload(crate::TxOffloadError),
}

impl fmt::Display for MbufError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Build(e) => e.fmt(f),
            Self::Alloc(e) => e.fmt(f),
            Self::Data(e) => e.fmt(f),
            Self::Chain(e) => write!(f, "chain: {e:?}"),
            Self::Clone(e) => e.fmt(f),
            Self::Copy(e) => e.fmt(f),
            Self::Attach(e) => e.fmt(f),
            Self::ExtBuf(e) => e.fmt(f),
            Self::ExtSlice(e) => e.fmt(f),
            Self::Sanity(e) => e.fmt(f),
            Self::PinnedArea(e) => e.fmt(f),
            Self::ParseFlags(e) => e.fmt(f),
            Self::DynFlag(e) => e.fmt(f),
            Self::DynField(e) => e.fmt(f),
            Self::TxLen(e) => e.fmt(f),
            Self::TxOffload(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for MbufError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Build(e) => Some(e),
            Self::Alloc(e) => Some(e),
            Self::Data(e) => Some(e),
            Self::Chain(_) => None,
            Self::Clone(e) => Some(e),
            Self::Copy(e) => Some(e),
            Self::Attach(e) => Some(e),
            Self::ExtBuf(e) => Some(e),
            Self::ExtSlice(e) => Some(e),
            Self::Sanity(e) => Some(e),
            Self::PinnedArea(e) => Some(e),
            Self::ParseFlags(e) => Some(e),
            Self::DynFlag(e) => Some(e),
            Self::DynField(e) => Some(e),
            Self::TxLen(e) => Some(e),
            Self::TxOffload(e) => Some(e),
        }
    }
}

macro_rules! into_umbrella {
    ($($t:ty => $v:ident),* $(,)?) => {$(
        impl From<$t> for MbufError {
            fn from(e: $t) -> Self { Self::$v(e) }
        }
    )*};
}
into_umbrella!(
    BuildError => Build,
    AllocError => Alloc,
    DataError => Data,
    ChainErrorKind => Chain,
    CloneError => Clone,
    CopyError => Copy,
    AttachErrorKind => Attach,
    ExtBufError => ExtBuf,
    crate::ExtSliceError => ExtSlice,
    SanityError => Sanity,
    crate::PinnedAreaError => PinnedArea,
    crate::ParseFlagsError => ParseFlags,
    crate::DynFlagError => DynFlag,
    crate::DynFieldError => DynField,
    crate::TxLenError => TxLen,
    crate::TxOffloadError => TxOffload,
);

impl From<ChainError> for MbufError {
    fn from(e: ChainError) -> Self {
        Self::Chain(e.kind)
    }
}

impl From<AttachExtError> for MbufError {
    fn from(e: AttachExtError) -> Self {
        Self::Attach(e.kind)
    }
}
