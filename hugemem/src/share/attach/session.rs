//! The attachment's side of the conversation: receiving and validating
//! each message, applying it to the view, acking it; the thread that does
//! so after the handshake.

use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{lock, Inner, Placement};
use crate::share::error::{AttachError, ProtocolError};
use crate::share::sys;
use crate::share::view::{place, ListSlot, PeerTable, PendingList};
use crate::share::wire::{self, Kind, Message};
use crate::sync::Ordering;
use crate::Iova;

/// Receives and decodes one message, waiting until `deadline`.
pub(super) fn recv_until(
    sock: &OwnedFd,
    buf: &mut [u8],
    deadline: Instant,
    timeout: Duration,
    during: &'static str,
) -> Result<(Message, Vec<OwnedFd>), AttachError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(AttachError::Timeout {
                waited: timeout,
                during,
            });
        }
        let mut p = [sys::pollfd(sock, libc::POLLIN)];
        sys::poll(&mut p, Some(left)).map_err(|source| AttachError::Io { op: "poll", source })?;
        if p[0].revents == 0 {
            continue;
        }
        if let Some(r) = recv_one(sock, buf)? {
            return Ok(r);
        }
    }
}

/// Receives one message without waiting (`None`: nothing there); closes
/// every fd on any error.
fn recv_one(
    sock: &OwnedFd,
    buf: &mut [u8],
) -> Result<Option<(Message, Vec<OwnedFd>)>, AttachError> {
    let r = match sys::recv(sock, buf, true) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ECONNRESET) => {
            return Err(AttachError::ExporterGone { during: "receive" })
        }
        Err(source) => {
            return Err(AttachError::Io {
                op: "recvmsg",
                source,
            })
        }
    };
    if r.len == 0 && r.fds.is_empty() {
        return Err(AttachError::ExporterGone { during: "receive" });
    }
    if r.truncated {
        return Err(ProtocolError::TooLong {
            max: wire::MAX_MESSAGE,
        }
        .into());
    }
    // On a decoding error the fds drop (close) with `r`.
    let m = Message::decode(&buf[..r.len])?;
    if r.fds_truncated || r.fds.len() != m.kind().fds() || r.fds.len() > wire::MAX_FDS {
        return Err(ProtocolError::Fds {
            kind: Some(m.kind()),
            got: r.fds.len(),
            expected: m.kind().fds(),
        }
        .into());
    }
    Ok(Some((m, r.fds)))
}

/// The conversation's state kept across messages.
pub(super) struct Session {
    pub(super) last_seq: u64,
}

impl Session {
    /// Checks and applies one message; acks it if it has a seq.
    // One arm per message kind, each a few checks long.
    #[allow(clippy::too_many_lines)]
    pub(super) fn apply(
        &mut self,
        inner: &Inner,
        m: &Message,
        mut fds: Vec<OwnedFd>,
        in_snapshot: bool,
    ) -> Result<(), AttachError> {
        let kind = m.kind();
        let unexpected =
            |why: String| AttachError::Protocol(ProtocolError::Unexpected { kind, why });
        let field = |field: &'static str, value: u64, expected: String| {
            AttachError::Protocol(ProtocolError::Field {
                kind,
                field,
                value,
                expected,
            })
        };
        if let Some(seq) = m.seq() {
            if seq <= self.last_seq {
                return Err(field(
                    "seq",
                    seq,
                    format!("more than the last seq {}", self.last_seq),
                ));
            }
        }
        match m {
            Message::List { .. } => {
                let l = check_list(&inner.table, &[], m, fds.pop())?;
                let known = inner.table.exporter_ranges();
                for slot in place(vec![l], inner.placement == Placement::SameVaIfFree, &known)? {
                    inner.table.push(slot);
                }
            }
            Message::Map {
                list,
                first_page,
                iovas,
                ..
            } => {
                let slot = inner
                    .table
                    .get(*list)
                    .ok_or_else(|| unexpected(format!("Map of list {list}, never announced")))?;
                let first = check_range(slot, *first_page, iovas.len() as u64)
                    .map_err(|e| field("first_page", *first_page, e))?;
                let ps = slot.page_size() as u64;
                if let Some(bad) = iovas
                    .iter()
                    .find(|&&i| i != Iova::BAD.0 && (i % ps != 0 || i & 0xfff != 0))
                {
                    return Err(field(
                        "iova",
                        *bad,
                        format!("a multiple of the page size {ps}"),
                    ));
                }
                slot.map(first, iovas)?;
            }
            Message::Unmap {
                list,
                first_page,
                count,
                ..
            } => {
                let slot = inner
                    .table
                    .get(*list)
                    .ok_or_else(|| unexpected(format!("Unmap of list {list}, never announced")))?;
                let first = check_range(slot, *first_page, u64::from(*count))
                    .map_err(|e| field("first_page", *first_page, e))?;
                slot.unmap(first, *count as usize);
            }
            Message::Publish { name, payload, .. } => {
                let mut dir = lock(&inner.dir);
                if dir.len() >= wire::MAX_ENTRIES && !dir.contains_key(name) {
                    return Err(unexpected(format!(
                        "a directory of more than {} entries",
                        wire::MAX_ENTRIES
                    )));
                }
                dir.insert(name.clone(), payload.clone());
                drop(dir);
                inner.dir_changed.notify_all();
            }
            Message::Withdraw { name, .. } => {
                lock(&inner.dir).remove(name);
                inner.dir_changed.notify_all();
            }
            Message::Ready { .. } if in_snapshot => {}
            Message::Ready { .. } => return Err(unexpected("a second Ready".into())),
            Message::Bye => {}
            Message::Hello { .. }
            | Message::Refuse { .. }
            | Message::Welcome { .. }
            | Message::Ack { .. } => {
                return Err(unexpected("not after the handshake started".into()))
            }
        }
        if let Some(seq) = m.seq() {
            self.last_seq = seq;
            sys::send(&inner.sock, &Message::Ack { seq }.encode(), &[]).map_err(|e| {
                match e.raw_os_error() {
                    Some(libc::EPIPE | libc::ECONNRESET) => {
                        AttachError::ExporterGone { during: "ack" }
                    }
                    _ => AttachError::Io {
                        op: "send (Ack)",
                        source: e,
                    },
                }
            })?;
        }
        Ok(())
    }
}

/// Checks a list announcement (ids and ranges against the lists known and
/// those pending, the fd against the list): the list to place.
pub(super) fn check_list(
    table: &PeerTable,
    pending: &[PendingList],
    m: &Message,
    fd: Option<OwnedFd>,
) -> Result<PendingList, AttachError> {
    let &Message::List {
        list,
        page_size,
        base_va,
        reserve_len,
    } = m
    else {
        unreachable!("called for List messages");
    };
    let unexpected = |why: String| {
        AttachError::Protocol(ProtocolError::Unexpected {
            kind: Kind::List,
            why,
        })
    };
    let known = table
        .iter()
        .map(|s| (s.id, s.exp_base, s.reserve as u64))
        .chain(pending.iter().map(|p| (p.id, p.exp_base, p.reserve)));
    for (id, base, len) in known {
        if id == list {
            return Err(unexpected(format!("list {list} announced twice")));
        }
        if base_va < base + len && base < base_va + reserve_len {
            return Err(unexpected(format!(
                "list {list} at {base_va:#x}+{reserve_len:#x} overlaps list {id} at {base:#x}+{len:#x}"
            )));
        }
    }
    if table.len() + pending.len() >= wire::MAX_LISTS {
        return Err(unexpected(format!("more than {} lists", wire::MAX_LISTS)));
    }
    let fd = fd.ok_or(ProtocolError::Fds {
        kind: Some(Kind::List),
        got: 0,
        expected: 1,
    })?;
    let (size, blksize) = sys::fd_size(&fd).map_err(|source| AttachError::Io {
        op: "fstat (list fd)",
        source,
    })?;
    if size < reserve_len {
        return Err(AttachError::FdTooSmall {
            list,
            need: reserve_len,
            have: size,
        });
    }
    if blksize != page_size {
        return Err(AttachError::FdPageSize {
            list,
            page_size,
            blksize,
        });
    }
    Ok(PendingList {
        id: list,
        page_size,
        exp_base: base_va,
        reserve: reserve_len,
        fd,
    })
}

/// `first_page` as an index, if `[first_page, first_page + count)` lies in the list.
fn check_range(slot: &ListSlot, first_page: u64, count: u64) -> Result<usize, String> {
    let pages = slot.pages() as u64;
    match first_page.checked_add(count) {
        Some(end) if end <= pages => Ok(first_page as usize),
        _ => Err(format!(
            "a range of {count} page(s) inside the list's {pages}"
        )),
    }
}

/// The attachment's thread: applies what the exporter sends until stopped,
/// told `Bye`, disconnected or given something invalid.
pub(super) fn run(inner: &Inner, mut session: Session, mut buf: Vec<u8>) {
    let end = |why: Option<String>| {
        if let Some(w) = why {
            *lock(&inner.last_error) = Some(w);
            // The exporter must notice: no more acks from here.
            // SAFETY: shutdown on our own socket.
            unsafe { libc::shutdown(inner.sock.as_raw_fd(), libc::SHUT_RDWR) };
        }
        // Release: pairs with the Acquire load in `is_connected`.
        inner.connected.store(false, Ordering::Release);
        inner.dir_changed.notify_all();
    };
    loop {
        let mut p = [
            sys::pollfd(&inner.sock, libc::POLLIN),
            sys::pollfd(&inner.stop, libc::POLLIN),
        ];
        if let Err(e) = sys::poll(&mut p, None) {
            return end(Some(format!("poll failed: {e}")));
        }
        if p[1].revents != 0 {
            return; // dropped: `Drop` says Bye
        }
        if p[0].revents == 0 {
            continue;
        }
        match recv_one(&inner.sock, &mut buf) {
            Ok(None) => {}
            Ok(Some((Message::Bye, _))) | Err(AttachError::ExporterGone { .. }) => {
                return end(None)
            }
            Ok(Some((m, fds))) => {
                if let Err(e) = session.apply(inner, &m, fds, false) {
                    return end(Some(e.to_string()));
                }
            }
            Err(e) => return end(Some(e.to_string())),
        }
    }
}
