//! The errors of sharing: one enum per operation, and [`ShareError`], the
//! umbrella they all convert into (and which converts into
//! [`HugememError::Share`](crate::HugememError::Share)).
//!
//! | operation | error |
//! |---|---|
//! | [`ExportBuilder::bind`](super::ExportBuilder::bind) and friends | [`ExportError`] |
//! | [`AttachBuilder::connect`](super::AttachBuilder::connect) and friends | [`AttachError`] (a malformed message: [`ProtocolError`]) |
//! | [`Exporter::publish`](super::Exporter::publish), [`Publication::update`](super::Publication::update) | [`PublishError`] |
//! | [`Exporter::role`](super::Exporter::role) | [`RoleError`] |
//! | [`wire::Message::decode`](super::wire::Message::decode) | [`ProtocolError`] |

use std::fmt;
use std::io;
use std::ops::RangeInclusive;
use std::time::Duration;

use super::wire::{Kind, RefuseReason};

/// Why an exporter could not be made.
///
/// ```
/// use pktmem_hugemem::share::{ExportError, Exporter};
/// use pktmem_hugemem::Provider;
/// let heap = Provider::builder().heap_backed(1 << 20).build()?;
/// let e = Exporter::builder(&heap).unbound().unwrap_err();
/// assert!(matches!(e, ExportError::NotShareable { .. }));
/// println!("{e}");
/// // Memory others may write must never be reachable through slices:
/// let private = Provider::builder().quiet(true).build()?;
/// let e = Exporter::builder(&private).unbound().unwrap_err();
/// assert!(matches!(e, ExportError::NotExportable));
/// assert!(e.to_string().contains("ProviderBuilder::exportable()"));
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum ExportError {
    /// The provider's pages have no fd another process could map: a
    /// heap-backed or anonymous-hugetlb provider, or one that failed to build.
    NotShareable {
        /// Its page source, as `Debug` prints it.
        source: String,
    },
    /// The provider was not built
    /// [`exportable`](crate::ProviderBuilder::exportable): it hands out
    /// [`Chunk`](crate::Chunk)s with safe slices, which memory another
    /// process writes must never have.
    NotExportable,
    /// [`ack_timeout`](super::ExportBuilder::ack_timeout) is too short to
    /// be met (every peer would be cut off at once).
    AckTimeout {
        /// The timeout asked for.
        given: Duration,
        /// The shortest accepted.
        min: Duration,
    },
    /// The socket address is unusable (empty, too long, holds a NUL byte),
    /// or a live exporter listens there already.
    BadAddress {
        /// The address asked for.
        addr: String,
        /// Why.
        why: String,
    },
    /// A system call on the way failed (socket, bind, listen, eventfd,
    /// starting the I/O thread).
    Io {
        /// What was being done.
        op: &'static str,
        /// The address, when it was about one.
        addr: Option<String>,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::NotShareable { source } => write!(
                f,
                "the provider cannot be shared: its pages ({source}) have no fd another process could map (use the memfd or hugetlbfs page source)"
            ),
            ExportError::NotExportable => f.write_str(
                "the provider is not exportable: build it with ProviderBuilder::exportable() (its memory then comes from Provider::alloc_shared, as raw-pointer SharedChunks that other processes may write)"
            ),
            ExportError::AckTimeout { given, min } => write!(
                f,
                "ack timeout {given:?} is shorter than the {min:?} a peer needs at least"
            ),
            ExportError::BadAddress { addr, why } => {
                write!(f, "cannot export at {addr:?}: {why}")
            }
            ExportError::Io { op, addr, source } => match addr {
                Some(a) => write!(f, "{op} ({a:?}) failed: {source}"),
                None => write!(f, "{op} failed: {source}"),
            },
        }
    }
}

impl std::error::Error for ExportError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ExportError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A message that breaks the wire protocol ([`wire`](super::wire)): what
/// arrived, which field, and the numbers.
///
/// ```
/// use pktmem_hugemem::share::{wire, ProtocolError};
/// let e = wire::Message::decode(&[0u8; 5]).unwrap_err();
/// assert_eq!(e, ProtocolError::Short { kind: None, have: 5, need: wire::HEADER_LEN });
/// assert_eq!(e.to_string(), "message of 5 bytes is shorter than the 12 its header needs");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Fewer bytes than the header or the body's fixed fields need.
    Short {
        /// The message kind, once known.
        kind: Option<Kind>,
        /// Bytes there.
        have: usize,
        /// Bytes needed.
        need: usize,
    },
    /// The first four bytes are not [`MAGIC`](super::wire::MAGIC).
    BadMagic {
        /// What they were.
        found: u32,
    },
    /// The header's version is not the one spoken on this connection.
    BadVersion {
        /// The kind it came with.
        kind: Kind,
        /// The version in the header.
        found: u16,
        /// The version expected.
        expected: u16,
    },
    /// A kind number this version does not know.
    UnknownKind {
        /// The number.
        kind: u16,
    },
    /// The header's body length disagrees with the bytes received or with
    /// what the body's own counts say.
    BodyLength {
        /// The message kind.
        kind: Kind,
        /// The length the header (or the counts) claim.
        claimed: usize,
        /// The bytes actually there.
        actual: usize,
    },
    /// More than [`MAX_MESSAGE`](super::wire::MAX_MESSAGE) bytes (the
    /// kernel truncated it).
    TooLong {
        /// The most a message may have.
        max: usize,
    },
    /// A field holds a value outside what the protocol allows.
    Field {
        /// The message kind.
        kind: Kind,
        /// The field's name, as in the protocol table.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What was allowed.
        expected: String,
    },
    /// A text field (role, name, refusal text) is not valid UTF-8 or holds
    /// characters outside its set.
    Text {
        /// The message kind.
        kind: Kind,
        /// The field's name.
        field: &'static str,
        /// Why.
        why: String,
    },
    /// The message came with a number of fds its kind does not carry (the
    /// fds were closed).
    Fds {
        /// The message kind (`None` if the message itself was malformed).
        kind: Option<Kind>,
        /// Fds received.
        got: usize,
        /// Fds its kind carries.
        expected: usize,
    },
    /// A well-formed message that makes no sense at this point: a second
    /// Welcome, a Map of a list never announced, a sequence number that
    /// does not increase.
    Unexpected {
        /// The message kind.
        kind: Kind,
        /// What was wrong.
        why: String,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::Short {
                kind: None,
                have,
                need,
            } => write!(
                f,
                "message of {have} bytes is shorter than the {need} its header needs"
            ),
            ProtocolError::Short {
                kind: Some(k),
                have,
                need,
            } => write!(f, "{k:?} body of {have} bytes, its fields need {need}"),
            ProtocolError::BadMagic { found } => {
                write!(
                    f,
                    "bad magic {found:#010x} (expected {:#010x})",
                    super::wire::MAGIC
                )
            }
            ProtocolError::BadVersion {
                kind,
                found,
                expected,
            } => write!(f, "{kind:?} with version {found}, expected {expected}"),
            ProtocolError::UnknownKind { kind } => write!(f, "unknown message kind {kind}"),
            ProtocolError::BodyLength {
                kind,
                claimed,
                actual,
            } => write!(
                f,
                "{kind:?} claims a {claimed}-byte body, {actual} bytes there"
            ),
            ProtocolError::TooLong { max } => {
                write!(f, "message longer than the {max} bytes allowed")
            }
            ProtocolError::Field {
                kind,
                field,
                value,
                expected,
            } => write!(f, "{kind:?}.{field} = {value:#x}: expected {expected}"),
            ProtocolError::Text { kind, field, why } => write!(f, "{kind:?}.{field}: {why}"),
            ProtocolError::Fds {
                kind,
                got,
                expected,
            } => match kind {
                Some(k) => write!(f, "{k:?} came with {got} fd(s), carries {expected}"),
                None => write!(f, "a malformed message came with {got} fd(s)"),
            },
            ProtocolError::Unexpected { kind, why } => write!(f, "unexpected {kind:?}: {why}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Why attaching failed. Nothing stays mapped and no fd stays open after
/// any of these.
///
/// ```
/// use pktmem_hugemem::share::{AttachError, Attachment};
/// let e = Attachment::builder("worker").connect("/nonexistent/pktmem.sock").unwrap_err();
/// assert!(matches!(e, AttachError::Connect { attempts: 1, .. }));
/// let e = Attachment::builder("no spaces").connect("/nonexistent/pktmem.sock").unwrap_err();
/// assert!(matches!(e, AttachError::BadRole { .. }));
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum AttachError {
    /// The socket could not be reached (after `attempts` tries).
    Connect {
        /// The address.
        addr: String,
        /// Tries made.
        attempts: u32,
        /// The last OS error.
        source: io::Error,
    },
    /// The role name is not 1..=64 characters of `[A-Za-z0-9._-]`.
    BadRole {
        /// The name.
        role: String,
    },
    /// The exporter and this side share no protocol version.
    VersionMismatch {
        /// Versions this side speaks.
        ours: RangeInclusive<u16>,
        /// Versions the exporter speaks (or the one it chose).
        theirs: RangeInclusive<u16>,
    },
    /// The exporter refused the attach.
    Refused {
        /// Why, as the exporter coded it.
        reason: RefuseReason,
        /// Its text.
        text: String,
    },
    /// The exporter broke the protocol.
    Protocol(ProtocolError),
    /// A list's fd is smaller than the list it backs.
    FdTooSmall {
        /// The list.
        list: u16,
        /// Bytes the list needs (its reservation).
        need: u64,
        /// Bytes the fd has.
        have: u64,
    },
    /// A list's fd is not backed by pages of the list's size.
    FdPageSize {
        /// The list.
        list: u16,
        /// The list's page size.
        page_size: u64,
        /// The fd's block size.
        blksize: u64,
    },
    /// Reserving or mapping a list's memory failed.
    Map {
        /// The list.
        list: u16,
        /// The (local) address.
        va: u64,
        /// Bytes.
        len: u64,
        /// The OS error.
        source: io::Error,
    },
    /// The exporter closed the connection.
    ExporterGone {
        /// What the attach was waiting for.
        during: &'static str,
    },
    /// The exporter did not answer in time.
    Timeout {
        /// How long this side waited.
        waited: Duration,
        /// What for.
        during: &'static str,
    },
    /// Any other system call failed.
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for AttachError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AttachError::Connect {
                addr,
                attempts,
                source,
            } => write!(
                f,
                "connecting to {addr:?} failed ({attempts} attempt(s)): {source}"
            ),
            AttachError::BadRole { role } => write!(
                f,
                "role {role:?}: must be 1..={} characters of [A-Za-z0-9._-]",
                super::wire::MAX_ROLE_LEN
            ),
            AttachError::VersionMismatch { ours, theirs } => write!(
                f,
                "no common protocol version: we speak {}..={}, the exporter {}..={}",
                ours.start(),
                ours.end(),
                theirs.start(),
                theirs.end()
            ),
            AttachError::Refused { reason, text } => {
                write!(f, "the exporter refused ({reason}): {text}")
            }
            AttachError::Protocol(e) => write!(f, "protocol error: {e}"),
            AttachError::FdTooSmall { list, need, have } => write!(
                f,
                "list {list}: its fd has {have} bytes, the list needs {need}"
            ),
            AttachError::FdPageSize {
                list,
                page_size,
                blksize,
            } => write!(
                f,
                "list {list}: its fd has {blksize}-byte blocks, the list {page_size}-byte pages"
            ),
            AttachError::Map {
                list,
                va,
                len,
                source,
            } => write!(
                f,
                "list {list}: mapping {len:#x} bytes at {va:#x} failed: {source}"
            ),
            AttachError::ExporterGone { during } => {
                write!(f, "the exporter closed the connection during {during}")
            }
            AttachError::Timeout { waited, during } => {
                write!(
                    f,
                    "no answer from the exporter for {waited:?} during {during}"
                )
            }
            AttachError::Io { op, source } => write!(f, "{op} failed: {source}"),
        }
    }
}

impl std::error::Error for AttachError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            AttachError::Connect { source, .. }
            | AttachError::Map { source, .. }
            | AttachError::Io { source, .. } => Some(source),
            AttachError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for AttachError {
    fn from(e: ProtocolError) -> Self {
        AttachError::Protocol(e)
    }
}

/// Why a payload could not be published.
///
/// ```
/// use pktmem_hugemem::share::{Exporter, PublishError};
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let exp = Exporter::builder(&p).unbound()?;
/// let _a = exp.publish("cfg", b"v1")?;
/// assert!(matches!(exp.publish("cfg", b"v2"), Err(PublishError::Exists { .. })));
/// assert!(matches!(exp.publish("bad name", b""), Err(PublishError::BadName { .. })));
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// The name is not 1..=255 bytes of `[A-Za-z0-9._/-]`.
    BadName {
        /// The name.
        name: String,
    },
    /// The payload is longer than [`MAX_PAYLOAD`](super::wire::MAX_PAYLOAD).
    TooLarge {
        /// The name.
        name: String,
        /// Its length.
        len: usize,
        /// The most allowed.
        max: usize,
    },
    /// A publication of that name lives already (update it instead).
    Exists {
        /// The name.
        name: String,
    },
    /// The directory holds [`MAX_ENTRIES`](super::wire::MAX_ENTRIES) entries already.
    Full {
        /// The most entries.
        max: usize,
    },
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PublishError::BadName { name } => write!(
                f,
                "name {name:?}: must be 1..={} bytes of [A-Za-z0-9._/-]",
                super::wire::MAX_NAME_LEN
            ),
            PublishError::TooLarge { name, len, max } => {
                write!(
                    f,
                    "payload of {name:?} has {len} bytes, at most {max} allowed"
                )
            }
            PublishError::Exists { name } => write!(f, "{name:?} is published already"),
            PublishError::Full { max } => write!(f, "the directory holds {max} entries already"),
        }
    }
}

impl std::error::Error for PublishError {}

/// Why a role could not be declared.
///
/// ```
/// use pktmem_hugemem::share::{Exporter, RoleError};
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let exp = Exporter::builder(&p).unbound()?;
/// assert!(matches!(exp.role(""), Err(RoleError::BadName { .. })));
/// assert_eq!(exp.role("worker")?.slot(), 1);
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoleError {
    /// The name is not 1..=64 characters of `[A-Za-z0-9._-]`.
    BadName {
        /// The name.
        name: String,
    },
    /// Every role slot is taken ([`MAX_ROLES`](super::MAX_ROLES) roles).
    TooMany {
        /// The most roles an exporter has.
        max: usize,
    },
}

impl fmt::Display for RoleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RoleError::BadName { name } => write!(
                f,
                "role {name:?}: must be 1..={} characters of [A-Za-z0-9._-]",
                super::wire::MAX_ROLE_LEN
            ),
            RoleError::TooMany { max } => write!(f, "all {max} role slots are taken"),
        }
    }
}

impl std::error::Error for RoleError {}

/// Any error of [`share`](super): what `?` turns the per-operation errors
/// into (and it turns into [`HugememError::Share`](crate::HugememError::Share)).
#[derive(Debug)]
#[non_exhaustive]
pub enum ShareError {
    /// From exporting.
    Export(ExportError),
    /// From attaching.
    Attach(AttachError),
    /// From publishing.
    Publish(PublishError),
    /// From declaring a role.
    Role(RoleError),
    /// From decoding a message.
    Protocol(ProtocolError),
}

impl fmt::Display for ShareError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShareError::Export(e) => e.fmt(f),
            ShareError::Attach(e) => e.fmt(f),
            ShareError::Publish(e) => e.fmt(f),
            ShareError::Role(e) => e.fmt(f),
            ShareError::Protocol(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ShareError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ShareError::Export(e) => Some(e),
            ShareError::Attach(e) => Some(e),
            ShareError::Publish(e) => Some(e),
            ShareError::Role(e) => Some(e),
            ShareError::Protocol(e) => Some(e),
        }
    }
}

macro_rules! into_umbrellas {
    ($($variant:ident($ty:ty)),* $(,)?) => {
        $(
            impl From<$ty> for ShareError {
                fn from(e: $ty) -> Self {
                    ShareError::$variant(e)
                }
            }
            impl From<$ty> for crate::HugememError {
                fn from(e: $ty) -> Self {
                    crate::HugememError::Share(ShareError::$variant(e))
                }
            }
        )*
    };
}

into_umbrellas!(
    Export(ExportError),
    Attach(AttachError),
    Publish(PublishError),
    Role(RoleError),
    Protocol(ProtocolError),
);
