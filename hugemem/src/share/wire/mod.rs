//! The wire protocol between an [`Exporter`](super::Exporter) and its
//! peers: public and documented, so that a peer written in another
//! language can speak it.
//!
//! # Transport
//!
//! `AF_UNIX`, `SOCK_SEQPACKET` (one `send` = one message, boundaries kept),
//! close-on-exec. A message is at most [`MAX_MESSAGE`] bytes and carries at
//! most [`MAX_FDS`] fds (`SCM_RIGHTS`; receivers use `MSG_CMSG_CLOEXEC`).
//! Only `List` carries an fd (exactly one); an fd on any other message is
//! closed and the message refused.
//!
//! # Framing
//!
//! Every message starts with a 12-byte header, then its body; every field
//! is little-endian, with no padding:
//!
//! | offset | field | type | value |
//! |---|---|---|---|
//! | 0 | magic | u32 | [`MAGIC`] (`"PKSH"` read as LE) |
//! | 4 | version | u16 | the version in use ([`VERSION`]); any value in `Hello`/`Refuse` |
//! | 6 | kind | u16 | [`Kind`] |
//! | 8 | `body_len` | u32 | bytes after the header (= message length − 12) |
//!
//! # Messages (C = peer, S = exporter)
//!
//! | kind | dir | body |
//! |---|---|---|
//! | 1 `Hello` | C→S | `min_version` u16, `max_version` u16, pid u32, `role_len` u16, role (UTF-8, 1..=64 of `[A-Za-z0-9._-]`) |
//! | 2 `Refuse` | S→C | reason u16 ([`RefuseReason`]), `ours_min` u16, `ours_max` u16, `text_len` u16, text (UTF-8) |
//! | 3 `Welcome` | S→C | version u16, `role_slot` u16 (1-based), generation u64, `exporter_pid` u32, `iova_mode` u8 (0 = PA, 1 = VA), lists u16 |
//! | 4 `List` | S→C | list u16, `page_size` u64, `base_va` u64, `reserve_len` u64; **1 fd**: the list's memfd, file offset = VA − `base_va` |
//! | 5 `Map` | S→C | seq u64, list u16, `first_page` u64, count u32, iova u64 × count (raw; `u64::MAX` = none) |
//! | 6 `Unmap` | S→C | seq u64, list u16, `first_page` u64, count u32 |
//! | 7 `Publish` | S→C | seq u64, `name_len` u16, name, `payload_len` u32, payload (replaces an entry of that name) |
//! | 8 `Withdraw` | S→C | seq u64, `name_len` u16, name |
//! | 9 `Ready` | S→C | seq u64 (the end of the initial snapshot) |
//! | 10 `Ack` | C→S | seq u64 (once the message of that seq is applied) |
//! | 11 `Bye` | both | (empty) |
//!
//! # Conversation
//!
//! The peer sends `Hello`. The exporter answers `Refuse` (and closes), or
//! the initial snapshot: `Welcome`, `List` × lists, `Map` × k, `Publish` ×
//! m, `Ready`. The peer applies and acks each message with a `seq` (`Map`,
//! `Unmap`, `Publish`, `Withdraw`, `Ready`), in order; `seq` increases on
//! each connection. Afterwards the exporter sends `List` (a new page-size
//! list), `Map` (growth: the exporter waits for the ack, and disconnects a
//! peer that does not ack in time), `Unmap` (shrink: the pages stay in the
//! exporter until every peer acked or exited), `Publish`, `Withdraw`. Either
//! side ends with `Bye`; a peer's `Bye` says it unmapped everything. The
//! exporter's `Bye` (and a `Refuse`) is sent without waiting and may
//! overtake messages still queued for a slow peer (or be lost if its socket
//! is full): the connection ends either way. The directory part of the
//! initial snapshot is produced as the peer reads, so a growth `Map` or a
//! new `Publish` may arrive between the snapshot's `Publish`es (before
//! `Ready`).
//!
//! Validation on receipt (by [`Message::decode`] for one message, by the
//! attachment for the conversation): the header; known kind; body length
//! exactly as the header and the counts say; text UTF-8 and in its set;
//! page size 4 KiB, 2 MiB or 1 GiB; bases and lengths page aligned;
//! reservations at most 2⁴⁷ bytes ending below 2⁴⁷, at most [`MAX_LISTS`]
//! lists, not overlapping, ids not repeated; fd counts; the fd's size at
//! least the reservation and its block size the page size; Map/Unmap inside
//! the list; IOVAs page aligned; seqs increasing; at most [`MAX_ENTRIES`]
//! directory entries.
//!
//! ```
//! use pktmem_hugemem::share::wire::{Kind, Message, VERSION};
//! let m = Message::Hello { min_version: VERSION, max_version: VERSION, pid: 42, role: "worker".into() };
//! let bytes = m.encode();
//! assert_eq!(&bytes[..4], b"PKSH");
//! assert_eq!(bytes.len(), 12 + 2 + 2 + 4 + 2 + 6);
//! assert_eq!(Message::decode(&bytes)?, m);
//! assert_eq!(m.kind(), Kind::Hello);
//! # Ok::<(), pktmem_hugemem::share::ProtocolError>(())
//! ```

use std::fmt;

use super::error::ProtocolError;

/// The first four bytes of every message: `"PKSH"` read as a little-endian u32.
pub const MAGIC: u32 = 0x4853_4b50;
/// The protocol version this implementation speaks.
pub const VERSION: u16 = 1;
/// Bytes of the header.
pub const HEADER_LEN: usize = 12;
/// Most bytes in one message, header included.
pub const MAX_MESSAGE: usize = 65536;
/// Most fds on one message.
pub const MAX_FDS: usize = 4;
/// Most lists (regions) one exporter announces.
pub const MAX_LISTS: usize = 8;
/// Longest role name, in bytes.
pub const MAX_ROLE_LEN: usize = 64;
/// Longest directory name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Largest published payload, in bytes (a `Publish` with the longest name fits one message).
pub const MAX_PAYLOAD: usize = MAX_MESSAGE - HEADER_LEN - 8 - 2 - MAX_NAME_LEN - 4;
/// Most directory entries an exporter publishes (and a peer keeps).
pub const MAX_ENTRIES: usize = 4096;
/// Most pages in one `Map`.
pub const MAX_MAP_PAGES: usize = (MAX_MESSAGE - HEADER_LEN - 22) / 8;
/// Highest byte (exclusive) of a reservation: the 47-bit user address space.
pub const MAX_VA: u64 = 1 << 47;
/// Page sizes a list may have.
pub const PAGE_SIZES: [u64; 3] = [4096, 2 << 20, 1 << 30];

/// A message kind (the header's `kind` field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Kind {
    /// Peer → exporter: versions spoken, pid, role.
    Hello = 1,
    /// Exporter → peer: attach refused.
    Refuse = 2,
    /// Exporter → peer: attach granted.
    Welcome = 3,
    /// Exporter → peer: a list (region) and its fd.
    List = 4,
    /// Exporter → peer: pages mapped.
    Map = 5,
    /// Exporter → peer: pages about to go.
    Unmap = 6,
    /// Exporter → peer: a directory entry set.
    Publish = 7,
    /// Exporter → peer: a directory entry removed.
    Withdraw = 8,
    /// Exporter → peer: the end of the initial snapshot.
    Ready = 9,
    /// Peer → exporter: a message applied.
    Ack = 10,
    /// Either way: the end of the conversation.
    Bye = 11,
}

impl Kind {
    /// The kind numbered `n`.
    pub fn from_u16(n: u16) -> Option<Kind> {
        Some(match n {
            1 => Kind::Hello,
            2 => Kind::Refuse,
            3 => Kind::Welcome,
            4 => Kind::List,
            5 => Kind::Map,
            6 => Kind::Unmap,
            7 => Kind::Publish,
            8 => Kind::Withdraw,
            9 => Kind::Ready,
            10 => Kind::Ack,
            11 => Kind::Bye,
            _ => return None,
        })
    }

    /// Fds a message of this kind carries.
    pub fn fds(self) -> usize {
        usize::from(self == Kind::List)
    }
}

/// Why an exporter refused a peer (`Refuse.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RefuseReason {
    /// 1: no common protocol version.
    Version,
    /// 2: the role's holder is alive.
    RoleTaken,
    /// 3: the role name is invalid.
    BadRole,
    /// 4: the exporter has as many peers as it takes.
    TooManyPeers,
    /// 5: the peer's user may not attach (its uid is not allowed).
    NotAllowed,
    /// A code this version does not know.
    Other(u16),
}

impl RefuseReason {
    /// Its code on the wire.
    pub fn code(self) -> u16 {
        match self {
            RefuseReason::Version => 1,
            RefuseReason::RoleTaken => 2,
            RefuseReason::BadRole => 3,
            RefuseReason::TooManyPeers => 4,
            RefuseReason::NotAllowed => 5,
            RefuseReason::Other(n) => n,
        }
    }

    /// The reason coded `n`.
    pub fn from_code(n: u16) -> RefuseReason {
        match n {
            1 => RefuseReason::Version,
            2 => RefuseReason::RoleTaken,
            3 => RefuseReason::BadRole,
            4 => RefuseReason::TooManyPeers,
            5 => RefuseReason::NotAllowed,
            n => RefuseReason::Other(n),
        }
    }
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::Version => write!(f, "no common version"),
            RefuseReason::RoleTaken => write!(f, "role taken"),
            RefuseReason::BadRole => write!(f, "bad role name"),
            RefuseReason::TooManyPeers => write!(f, "too many peers"),
            RefuseReason::NotAllowed => write!(f, "user not allowed"),
            RefuseReason::Other(n) => write!(f, "reason {n}"),
        }
    }
}

/// One decoded message (see the [module docs](self) for the fields).
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the fields are the protocol table's, documented there
pub enum Message {
    Hello {
        min_version: u16,
        max_version: u16,
        pid: u32,
        role: String,
    },
    Refuse {
        reason: RefuseReason,
        ours_min: u16,
        ours_max: u16,
        text: String,
    },
    Welcome {
        version: u16,
        role_slot: u16,
        generation: u64,
        exporter_pid: u32,
        /// 0 = PA, 1 = VA.
        iova_mode: u8,
        lists: u16,
    },
    List {
        list: u16,
        page_size: u64,
        base_va: u64,
        reserve_len: u64,
    },
    Map {
        seq: u64,
        list: u16,
        first_page: u64,
        /// Raw IOVAs, one per page (`u64::MAX`: none).
        iovas: Vec<u64>,
    },
    Unmap {
        seq: u64,
        list: u16,
        first_page: u64,
        count: u32,
    },
    Publish {
        seq: u64,
        name: String,
        payload: Vec<u8>,
    },
    Withdraw {
        seq: u64,
        name: String,
    },
    Ready {
        seq: u64,
    },
    Ack {
        seq: u64,
    },
    Bye,
}

/// Whether `s` is a valid role name.
pub fn valid_role(s: &str) -> bool {
    (1..=MAX_ROLE_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `s` is a valid directory name.
pub fn valid_name(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
}

/// Reads fields off a body, every read bounds-checked.
struct Reader<'a> {
    kind: Kind,
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtocolError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.buf.len());
        let Some(end) = end else {
            return Err(ProtocolError::Short {
                kind: Some(self.kind),
                have: self.buf.len(),
                need: self.at.saturating_add(n),
            });
        };
        let s = &self.buf[self.at..end];
        self.at = end;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, ProtocolError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, ProtocolError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, ProtocolError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }
    fn u64(&mut self) -> Result<u64, ProtocolError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn text(
        &mut self,
        field: &'static str,
        n: usize,
        valid: fn(&str) -> bool,
        set: &str,
    ) -> Result<String, ProtocolError> {
        let b = self.take(n)?;
        let s = std::str::from_utf8(b).map_err(|e| ProtocolError::Text {
            kind: self.kind,
            field,
            why: format!("not UTF-8 ({e})"),
        })?;
        if !valid(s) {
            return Err(ProtocolError::Text {
                kind: self.kind,
                field,
                why: format!("{s:?} is not {set}"),
            });
        }
        Ok(s.to_string())
    }
    fn end(&self) -> Result<(), ProtocolError> {
        if self.at == self.buf.len() {
            Ok(())
        } else {
            Err(ProtocolError::BodyLength {
                kind: self.kind,
                claimed: self.at,
                actual: self.buf.len(),
            })
        }
    }
}

impl Message {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Message::Hello { .. } => Kind::Hello,
            Message::Refuse { .. } => Kind::Refuse,
            Message::Welcome { .. } => Kind::Welcome,
            Message::List { .. } => Kind::List,
            Message::Map { .. } => Kind::Map,
            Message::Unmap { .. } => Kind::Unmap,
            Message::Publish { .. } => Kind::Publish,
            Message::Withdraw { .. } => Kind::Withdraw,
            Message::Ready { .. } => Kind::Ready,
            Message::Ack { .. } => Kind::Ack,
            Message::Bye => Kind::Bye,
        }
    }

    /// Its `seq`, for the kinds that have one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Message::Map { seq, .. }
            | Message::Unmap { seq, .. }
            | Message::Publish { seq, .. }
            | Message::Withdraw { seq, .. }
            | Message::Ready { seq }
            | Message::Ack { seq } => Some(*seq),
            _ => None,
        }
    }

    /// The message as bytes, header included, with the header version
    /// [`VERSION`]. (Lengths are whatever the fields hold: encoding an
    /// oversized message is the sender's mistake, which the receiver
    /// refuses.)
    pub fn encode(&self) -> Vec<u8> {
        self.encode_version(VERSION)
    }

    /// As [`encode`](Self::encode), with `version` in the header.
    pub fn encode_version(&self, version: u16) -> Vec<u8> {
        let mut w = Writer(Vec::with_capacity(64));
        w.u32(MAGIC).u16(version).u16(self.kind() as u16).u32(0);
        match self {
            Message::Hello {
                min_version,
                max_version,
                pid,
                role,
            } => {
                w.u16(*min_version)
                    .u16(*max_version)
                    .u32(*pid)
                    .u16(role.len() as u16)
                    .bytes(role.as_bytes());
            }
            Message::Refuse {
                reason,
                ours_min,
                ours_max,
                text,
            } => {
                w.u16(reason.code())
                    .u16(*ours_min)
                    .u16(*ours_max)
                    .u16(text.len() as u16)
                    .bytes(text.as_bytes());
            }
            Message::Welcome {
                version,
                role_slot,
                generation,
                exporter_pid,
                iova_mode,
                lists,
            } => {
                w.u16(*version)
                    .u16(*role_slot)
                    .u64(*generation)
                    .u32(*exporter_pid)
                    .u8(*iova_mode)
                    .u16(*lists);
            }
            Message::List {
                list,
                page_size,
                base_va,
                reserve_len,
            } => {
                w.u16(*list).u64(*page_size).u64(*base_va).u64(*reserve_len);
            }
            Message::Map {
                seq,
                list,
                first_page,
                iovas,
            } => {
                w.u64(*seq)
                    .u16(*list)
                    .u64(*first_page)
                    .u32(iovas.len() as u32);
                for i in iovas {
                    w.u64(*i);
                }
            }
            Message::Unmap {
                seq,
                list,
                first_page,
                count,
            } => {
                w.u64(*seq).u16(*list).u64(*first_page).u32(*count);
            }
            Message::Publish { seq, name, payload } => {
                w.u64(*seq)
                    .u16(name.len() as u16)
                    .bytes(name.as_bytes())
                    .u32(payload.len() as u32)
                    .bytes(payload);
            }
            Message::Withdraw { seq, name } => {
                w.u64(*seq).u16(name.len() as u16).bytes(name.as_bytes());
            }
            Message::Ready { seq } | Message::Ack { seq } => {
                w.u64(*seq);
            }
            Message::Bye => {}
        }
        let body = (w.0.len() - HEADER_LEN) as u32;
        w.0[8..12].copy_from_slice(&body.to_le_bytes());
        w.0
    }

    /// Decodes and validates one whole message (header and body). The
    /// header version must be [`VERSION`], except on `Hello` and `Refuse`,
    /// which every version must be able to read.
    // One arm per kind, each its fields and their checks, in table order.
    #[allow(clippy::too_many_lines)]
    pub fn decode(buf: &[u8]) -> Result<Message, ProtocolError> {
        if buf.len() < HEADER_LEN {
            return Err(ProtocolError::Short {
                kind: None,
                have: buf.len(),
                need: HEADER_LEN,
            });
        }
        if buf.len() > MAX_MESSAGE {
            return Err(ProtocolError::TooLong { max: MAX_MESSAGE });
        }
        let magic = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if magic != MAGIC {
            return Err(ProtocolError::BadMagic { found: magic });
        }
        let version = u16::from_le_bytes([buf[4], buf[5]]);
        let raw_kind = u16::from_le_bytes([buf[6], buf[7]]);
        let kind = Kind::from_u16(raw_kind).ok_or(ProtocolError::UnknownKind { kind: raw_kind })?;
        if version != VERSION && !matches!(kind, Kind::Hello | Kind::Refuse) {
            return Err(ProtocolError::BadVersion {
                kind,
                found: version,
                expected: VERSION,
            });
        }
        let body_len = u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
        let body = &buf[HEADER_LEN..];
        if body_len != body.len() {
            return Err(ProtocolError::BodyLength {
                kind,
                claimed: body_len,
                actual: body.len(),
            });
        }
        let mut r = Reader {
            kind,
            buf: body,
            at: 0,
        };
        let field = |field: &'static str, value: u64, expected: &str| ProtocolError::Field {
            kind,
            field,
            value,
            expected: expected.to_string(),
        };
        let m = match kind {
            Kind::Hello => {
                let min_version = r.u16()?;
                let max_version = r.u16()?;
                if min_version > max_version {
                    return Err(field(
                        "min_version",
                        u64::from(min_version),
                        &format!("<= max_version {max_version}"),
                    ));
                }
                let pid = r.u32()?;
                let n = usize::from(r.u16()?);
                let role = r.text("role", n, valid_role, "1..=64 of [A-Za-z0-9._-]")?;
                Message::Hello {
                    min_version,
                    max_version,
                    pid,
                    role,
                }
            }
            Kind::Refuse => {
                let reason = RefuseReason::from_code(r.u16()?);
                let ours_min = r.u16()?;
                let ours_max = r.u16()?;
                let n = usize::from(r.u16()?);
                let text = r.text("text", n, |_| true, "")?;
                Message::Refuse {
                    reason,
                    ours_min,
                    ours_max,
                    text,
                }
            }
            Kind::Welcome => {
                let version = r.u16()?;
                let role_slot = r.u16()?;
                if role_slot == 0 {
                    return Err(field("role_slot", 0, "1-based (>= 1)"));
                }
                let generation = r.u64()?;
                let exporter_pid = r.u32()?;
                let iova_mode = r.u8()?;
                if iova_mode > 1 {
                    return Err(field("iova_mode", u64::from(iova_mode), "0 (PA) or 1 (VA)"));
                }
                let lists = r.u16()?;
                if usize::from(lists) > MAX_LISTS {
                    return Err(field("lists", u64::from(lists), &format!("<= {MAX_LISTS}")));
                }
                Message::Welcome {
                    version,
                    role_slot,
                    generation,
                    exporter_pid,
                    iova_mode,
                    lists,
                }
            }
            Kind::List => {
                let list = r.u16()?;
                let page_size = r.u64()?;
                if !PAGE_SIZES.contains(&page_size) {
                    return Err(field("page_size", page_size, "4 KiB, 2 MiB or 1 GiB"));
                }
                let base_va = r.u64()?;
                if base_va % page_size != 0 {
                    return Err(field(
                        "base_va",
                        base_va,
                        &format!("a multiple of {page_size}"),
                    ));
                }
                let reserve_len = r.u64()?;
                if reserve_len == 0 || reserve_len % page_size != 0 {
                    return Err(field(
                        "reserve_len",
                        reserve_len,
                        &format!("a non-zero multiple of {page_size}"),
                    ));
                }
                if reserve_len > MAX_VA || base_va > MAX_VA - reserve_len {
                    return Err(field(
                        "reserve_len",
                        reserve_len,
                        &format!("a reservation ending below 2^47 (base {base_va:#x})"),
                    ));
                }
                Message::List {
                    list,
                    page_size,
                    base_va,
                    reserve_len,
                }
            }
            Kind::Map => {
                let seq = r.u64()?;
                let list = r.u16()?;
                let first_page = r.u64()?;
                let count = r.u32()? as usize;
                if count == 0 || count > MAX_MAP_PAGES {
                    return Err(field(
                        "count",
                        count as u64,
                        &format!("1..={MAX_MAP_PAGES}"),
                    ));
                }
                let need = r.at + count * 8;
                if need != body.len() {
                    return Err(ProtocolError::BodyLength {
                        kind,
                        claimed: need,
                        actual: body.len(),
                    });
                }
                let mut iovas = Vec::with_capacity(count);
                for _ in 0..count {
                    iovas.push(r.u64()?);
                }
                Message::Map {
                    seq,
                    list,
                    first_page,
                    iovas,
                }
            }
            Kind::Unmap => {
                let seq = r.u64()?;
                let list = r.u16()?;
                let first_page = r.u64()?;
                let count = r.u32()?;
                if count == 0 {
                    return Err(field("count", 0, ">= 1"));
                }
                Message::Unmap {
                    seq,
                    list,
                    first_page,
                    count,
                }
            }
            Kind::Publish => {
                let seq = r.u64()?;
                let n = usize::from(r.u16()?);
                let name = r.text("name", n, valid_name, "1..=255 of [A-Za-z0-9._/-]")?;
                let len = r.u32()? as usize;
                if len > MAX_PAYLOAD {
                    return Err(field(
                        "payload_len",
                        len as u64,
                        &format!("<= {MAX_PAYLOAD}"),
                    ));
                }
                let payload = r.take(len)?.to_vec();
                Message::Publish { seq, name, payload }
            }
            Kind::Withdraw => {
                let seq = r.u64()?;
                let n = usize::from(r.u16()?);
                let name = r.text("name", n, valid_name, "1..=255 of [A-Za-z0-9._/-]")?;
                Message::Withdraw { seq, name }
            }
            Kind::Ready => Message::Ready { seq: r.u64()? },
            Kind::Ack => Message::Ack { seq: r.u64()? },
            Kind::Bye => Message::Bye,
        };
        r.end()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests;
