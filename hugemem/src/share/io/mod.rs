//! The exporter's I/O thread: one `poll` over the listener, every peer's
//! socket and pidfd, and an eventfd for commands (growth, shrink,
//! publications, new socket pairs, stop). It never allocates from the
//! exported provider, so growth that waits for it cannot deadlock.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use super::export::{lock, RoleInner, RoleState, Shared};
use super::sys;
use super::wire::{self, Kind, Message, RefuseReason, VERSION};
use crate::sync::Ordering;
use crate::Provider;

mod handshake;

/// Pages per `Map` message the exporter sends.
const MAP_CHUNK: usize = 4096;
/// Most bytes queued for one peer that does not read; past this it is cut off.
const MAX_QUEUED: usize = 8 << 20;
/// Most connections that have not said Hello yet.
const MAX_WAITING_HELLO: usize = 64;
/// How often peers without a pidfd are checked for exit.
const EXIT_POLL: Duration = Duration::from_millis(100);

/// A one-shot completion a caller waits on.
pub(super) struct Done {
    flag: Mutex<bool>,
    cv: Condvar,
}

impl Done {
    pub(super) fn new() -> Arc<Done> {
        Arc::new(Done {
            flag: Mutex::new(false),
            cv: Condvar::new(),
        })
    }

    pub(super) fn set(&self) {
        *lock(&self.flag) = true;
        self.cv.notify_all();
    }

    /// Waits until set or `timeout` passed; whether it was set.
    pub(super) fn wait(&self, timeout: Duration) -> bool {
        let g = lock(&self.flag);
        let (g, _) = self
            .cv
            .wait_timeout_while(g, timeout, |set| !*set)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *g
    }
}

/// What other threads ask of the I/O thread.
pub(super) enum Cmd {
    /// Pages `[va, va + len)` were mapped: tell every peer, then set `done`.
    Map {
        va: usize,
        len: usize,
        done: Option<Arc<Done>>,
    },
    /// Pages `[va, va + len)` are to go: tell every peer; drop `hold` once
    /// each acked or exited.
    Release {
        va: usize,
        len: usize,
        hold: Box<dyn Send>,
    },
    /// The directory entry `name` changed (or went).
    Publish { name: String },
    /// A new connection (from `connect_pair`).
    Conn(OwnedFd),
    /// Say Bye to everyone, release everything, end.
    Stop,
    /// Panics the I/O thread (tests of what its death leaves).
    #[cfg(test)]
    Panic,
}

/// What keeps the exporter's release gate registered.
pub(super) type GateGuard = crate::ReleaseGateGuard;

/// Registers the release gate: each run of own pages about to be unmapped
/// is held (the provider keeps it mapped and out of use) until every peer
/// that had it acked its `Unmap` or exited. Never blocks the freeing
/// thread.
pub(super) fn register_gate(provider: &Provider, weak: Weak<Shared>) -> GateGuard {
    provider
        .register_release_gate(move |e, hold| {
            if e.external {
                return;
            }
            let Some(sh) = weak.upgrade() else {
                return;
            };
            let cmd = Cmd::Release {
                va: hold.va(),
                len: hold.len(),
                hold: Box::new(hold),
            };
            if let Err(cmd) = sh.push(cmd) {
                // Acquire: pairs with the Release store in `Io::died`.
                if sh.dead.load(Ordering::Acquire) {
                    // Nobody watches the peers: keep the pages for ever.
                    if let Cmd::Release { hold, .. } = cmd {
                        keep_for_ever(hold);
                    }
                }
                // Stopped normally: the command (and the hold) drops, the run goes.
            }
        })
        .labeled("pktmem share: held until peers unmap")
}

/// A list announced to peers.
struct ExpList {
    id: u16,
    page_size: usize,
    shift: u32,
    base: usize,
    reserve: usize,
    fd: OwnedFd,
}

/// One connection (and, after it closed, its process until it exits).
struct Conn {
    id: u64,
    /// `None` once closed.
    sock: Option<OwnedFd>,
    pid: u32,
    /// The peer's uid may attach (see `ExportBuilder::allow_uid`).
    allowed: bool,
    /// The kernel named the peer's process (`SO_PEERPIDFD` / `SO_PEERCRED`
    /// of a socket it connected). Otherwise (a socket pair we made, a peer
    /// in a PID namespace we cannot see) `pid` is what its Hello said:
    /// never watched for exit, never declared `Exited` (F3).
    verified: bool,
    /// From `SO_PEERPIDFD` when the socket gave one (until the grant).
    peer_pidfd: Option<OwnedFd>,
    pidfd: Option<OwnedFd>,
    role: Option<Arc<RoleInner>>,
    next_seq: u64,
    acked: u64,
    /// Seqs sent and not acked, with when they were sent (`None`: still
    /// queued in `out`, its ack timer not started).
    pending: std::collections::VecDeque<(u64, Option<Instant>)>,
    /// When the socket last stopped taking what we send (`out` went from
    /// empty to not): a peer that reads nothing for an ack timeout since is
    /// cut off even if none of its pending messages was sent yet.
    stalled_since: Instant,
    /// A connection that has not said Hello by then is dropped.
    hello_by: Instant,
    /// The peer said Bye: it maps nothing of ours any more.
    unmapped: bool,
    /// Messages (their fd, their seq) the socket had no room for yet, in order.
    out: std::collections::VecDeque<(Vec<u8>, Option<OwnedFd>, Option<u64>)>,
    /// Bytes in `out`.
    out_bytes: usize,
    /// Bytes the queue may hold beyond [`MAX_QUEUED`]: the initial
    /// snapshot's lists and pages (bounded by the provider's size).
    allowance: usize,
    /// The directory part of the initial snapshot still to send (produced
    /// as the socket drains, never queued at once); then Ready.
    snap: Option<std::collections::VecDeque<String>>,
}

/// What one attempt to send gave.
enum Sent {
    Done,
    Full,
    Failed,
}

/// Release holds kept for the process's life: pages another process may
/// still map (its exit was never seen, or nobody is left to see it) are
/// never unmapped or reused. Kept here rather than forgotten, so that they
/// stay reachable (a leak checker sees a deliberate keep, not a leak).
static KEPT_FOR_EVER: Mutex<Vec<Box<dyn Send>>> = Mutex::new(Vec::new());

/// Keeps `hold` (and the pages it holds) for the process's life.
fn keep_for_ever(hold: Box<dyn Send>) {
    lock(&KEPT_FOR_EVER).push(hold);
}

struct MapWait {
    done: Arc<Done>,
    waiting: Vec<(u64, u64)>,
}

struct Release {
    list: u16,
    first: usize,
    count: usize,
    hold: Box<dyn Send>,
    /// (conn, seq) that must ack.
    acks: Vec<(u64, u64)>,
    /// Conns (closed, without Bye) whose process must exit first.
    exits: Vec<u64>,
}

pub(super) struct Io {
    sh: Arc<Shared>,
    listener: Option<OwnedFd>,
    lists: Vec<ExpList>,
    conns: Vec<Conn>,
    next_conn: u64,
    map_waits: Vec<MapWait>,
    releases: Vec<Release>,
    buf: Vec<u8>,
    own_pid: u32,
}

#[derive(Clone, Copy)]
enum Tag {
    Wake,
    Listener,
    Sock(u64),
    Pid(u64),
}

/// Why a connection ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Close {
    /// The peer said Bye: it unmapped everything.
    Bye,
    /// Closed, cut off or broke the protocol: it may still map the memory.
    Lost,
}

impl Io {
    pub(super) fn new(sh: Arc<Shared>, listener: Option<OwnedFd>) -> Io {
        Io {
            sh,
            listener,
            lists: Vec::new(),
            conns: Vec::new(),
            next_conn: 1,
            map_waits: Vec::new(),
            releases: Vec::new(),
            buf: vec![0; wire::MAX_MESSAGE + 1],
            own_pid: std::process::id(),
        }
    }

    pub(super) fn run(mut self) {
        let _ = self.sh.io_thread.set(std::thread::current().id());
        // Nothing here panics on a peer's input; should a bug panic anyway,
        // the exporter must not look alive (growth waiting on us for ever).
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.serve())) {
            Ok(()) => self.stop(),
            Err(_) => self.died(),
        }
    }

    /// The poll loop, until Stop.
    fn serve(&mut self) {
        loop {
            let (mut pfds, tags) = self.poll_set();
            let timeout = self.next_timeout();
            if sys::poll(&mut pfds, timeout).is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
            for (p, tag) in pfds.iter().zip(tags) {
                if p.revents == 0 {
                    continue;
                }
                match tag {
                    Tag::Wake => {
                        sys::eventfd_drain(&self.sh.wake);
                        if !self.commands() {
                            return;
                        }
                    }
                    Tag::Listener => self.accept(),
                    Tag::Sock(id) => {
                        if p.revents & libc::POLLOUT != 0 {
                            self.flush(id);
                        }
                        if p.revents & !libc::POLLOUT != 0 {
                            self.readable(id);
                        }
                    }
                    Tag::Pid(id) => self.exited(id),
                }
            }
            self.check_timeouts();
        }
    }

    fn poll_set(&self) -> (Vec<libc::pollfd>, Vec<Tag>) {
        let mut p = vec![sys::pollfd(&self.sh.wake, libc::POLLIN)];
        let mut t = vec![Tag::Wake];
        if let Some(l) = &self.listener {
            p.push(sys::pollfd(l, libc::POLLIN));
            t.push(Tag::Listener);
        }
        for c in &self.conns {
            if let Some(s) = &c.sock {
                let out = if c.out.is_empty() { 0 } else { libc::POLLOUT };
                p.push(sys::pollfd(s, libc::POLLIN | out));
                t.push(Tag::Sock(c.id));
            }
            if let Some(pf) = &c.pidfd {
                p.push(sys::pollfd(pf, libc::POLLIN));
                t.push(Tag::Pid(c.id));
            }
        }
        (p, t)
    }

    fn next_timeout(&self) -> Option<Duration> {
        let now = Instant::now();
        let mut t: Option<Instant> = None;
        let mut upd = |i: Instant| t = Some(t.map_or(i, |x| x.min(i)));
        for c in &self.conns {
            if c.sock.is_some() {
                if c.role.is_none() {
                    upd(c.hello_by);
                }
                match c.pending.front() {
                    Some(&(_, Some(sent))) => upd(sent + self.sh.ack_timeout),
                    Some(&(_, None)) => upd(c.stalled_since + self.sh.ack_timeout),
                    None => {}
                }
            } else if c.verified && c.pidfd.is_none() {
                upd(now + EXIT_POLL);
            }
        }
        t.map(|i| i.saturating_duration_since(now))
    }

    /// Runs the queued commands; false on Stop.
    fn commands(&mut self) -> bool {
        loop {
            let Some(cmd) = lock(&self.sh.cmds).pop_front() else {
                return true;
            };
            match cmd {
                Cmd::Map { va, len, done } => self.announce_map(va, len, done),
                Cmd::Release { va, len, hold } => self.announce_release(va, len, hold),
                Cmd::Publish { name } => {
                    let ids: Vec<u64> = self.live_granted().collect();
                    for id in ids {
                        self.send_entry(id, &name);
                    }
                }
                Cmd::Conn(fd) => self.add_conn(fd),
                Cmd::Stop => return false,
                #[cfg(test)]
                Cmd::Panic => panic!("pktmem share test: the I/O thread panics"),
            }
        }
    }

    /// After a panic: refuse commands, wake every waiter, disconnect every
    /// peer, and keep every page held back (and every one freed later: see
    /// the gate), since nobody will see the peers unmap or exit.
    fn died(mut self) {
        // Release: pairs with the Acquire load in the gate, which runs
        // after `push` failed, i.e. after `closed` below was set.
        self.sh.dead.store(true, Ordering::Release);
        *lock(&self.sh.closed) = true;
        let rest: Vec<Cmd> = lock(&self.sh.cmds).drain(..).collect();
        for c in rest {
            match c {
                Cmd::Map { done: Some(d), .. } => d.set(),
                Cmd::Release { hold, .. } => keep_for_ever(hold),
                _ => {}
            }
        }
        for w in self.map_waits.drain(..) {
            w.done.set();
        }
        for r in self.releases.drain(..) {
            keep_for_ever(r.hold);
        }
        for c in self.conns.drain(..) {
            if let (Some(role), Some(_)) = (&c.role, &c.sock) {
                if role_held_by(role, c.pid) {
                    role.set_state(RoleState::Gone { pid: c.pid });
                }
            }
            // The socket closes here: the peer sees the exporter gone.
        }
    }

    fn stop(mut self) {
        *lock(&self.sh.closed) = true;
        // Commands queued meanwhile: holds drop (pages go), waiters wake.
        let rest: Vec<Cmd> = lock(&self.sh.cmds).drain(..).collect();
        for c in rest {
            if let Cmd::Map { done: Some(d), .. } = c {
                d.set();
            }
        }
        for c in &self.conns {
            if let Some(s) = &c.sock {
                let _ = sys::send_flags(s, &Message::Bye.encode(), &[], true);
            }
        }
        for w in self.map_waits.drain(..) {
            w.done.set();
        }
        // Pages a peer has not acked the Unmap of, nor exited, may still be
        // mapped there (F5): they stay held (mapped here, never reused)
        // for the provider's life rather than be punched under the peer.
        for r in self.releases.drain(..) {
            keep_for_ever(r.hold);
        }
        self.conns.clear();
    }

    fn live_granted(&self) -> impl Iterator<Item = u64> + '_ {
        self.conns
            .iter()
            .filter(|c| c.sock.is_some() && c.role.is_some())
            .map(|c| c.id)
    }

    fn conn(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == id)
    }

    fn add_conn(&mut self, sock: OwnedFd) {
        let pid = sys::peer_pid(&sock).unwrap_or(0);
        // Unknown credentials count as a stranger's.
        let allowed = sys::peer_uid(&sock).is_ok_and(|u| self.sh.users.allows(u));
        let verified = pid != 0 && pid != self.own_pid;
        let peer_pidfd = if verified {
            sys::peer_pidfd(&sock)
        } else {
            None
        };
        let id = self.next_conn;
        self.next_conn += 1;
        self.conns.push(Conn {
            id,
            sock: Some(sock),
            pid,
            allowed,
            verified,
            peer_pidfd,
            pidfd: None,
            role: None,
            next_seq: 1,
            acked: 0,
            pending: std::collections::VecDeque::new(),
            stalled_since: Instant::now(),
            hello_by: Instant::now() + self.sh.ack_timeout,
            unmapped: false,
            out: std::collections::VecDeque::new(),
            out_bytes: 0,
            allowance: 0,
            snap: None,
        });
    }

    fn accept(&mut self) {
        loop {
            let Some(l) = &self.listener else { return };
            match sys::accept(l) {
                Ok(Some(s)) => {
                    // Connections yet to say Hello are bounded: a flood of
                    // them is closed at once (each gets an EOF).
                    let waiting = self.conns.iter().filter(|c| c.role.is_none()).count();
                    if waiting < MAX_WAITING_HELLO {
                        self.add_conn(s);
                    }
                }
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Sends `m` (with `fd`) on connection `id`, or queues it behind what
    /// the socket had no room for (sent as it drains; the I/O thread never
    /// waits on a peer). A seq-bearing message is awaited from now on. False
    /// (and the connection closed) on failure or when too much is queued.
    fn send(&mut self, id: u64, m: &Message, fd: Option<OwnedFd>) -> bool {
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
            return false;
        };
        let Some(sock) = &c.sock else { return false };
        let bytes = m.encode();
        let seq = m.seq();
        let sent = if c.out.is_empty() {
            try_send(sock, &bytes, fd.as_ref())
        } else {
            Sent::Full
        };
        match sent {
            Sent::Done => {
                // The ack timer runs from when the peer could read it.
                if let Some(seq) = seq {
                    c.pending.push_back((seq, None));
                }
                true
            }
            Sent::Full if c.out_bytes + bytes.len() <= MAX_QUEUED.saturating_add(c.allowance) => {
                if c.out.is_empty() {
                    c.stalled_since = Instant::now();
                }
                if let Some(seq) = seq {
                    c.pending.push_back((seq, None));
                }
                c.out_bytes += bytes.len();
                c.out.push_back((bytes, fd, seq));
                true
            }
            Sent::Full | Sent::Failed => {
                self.close(id, Close::Lost);
                false
            }
        }
    }

    /// Sends what was queued for `id`, as far as the socket takes it, then
    /// more of its initial snapshot.
    fn flush(&mut self, id: u64) {
        let Some(c) = self.conns.iter_mut().find(|c| c.id == id) else {
            return;
        };
        let Some(sock) = &c.sock else { return };
        while let Some((bytes, fd, seq)) = c.out.front() {
            match try_send(sock, bytes, fd.as_ref()) {
                Sent::Done => {
                    let now = Instant::now();
                    c.stalled_since = now;
                    if let Some(seq) = *seq {
                        if let Some(p) = c.pending.iter_mut().find(|p| p.0 == seq) {
                            p.1 = Some(now);
                        }
                    }
                    c.out_bytes -= bytes.len();
                    c.out.pop_front();
                }
                Sent::Full => return,
                Sent::Failed => return self.close(id, Close::Lost),
            }
        }
        self.pump(id);
    }

    /// Sends directory entries of `id`'s initial snapshot while its socket
    /// takes them without queueing, then Ready.
    pub(super) fn pump(&mut self, id: u64) {
        loop {
            let Some(c) = self.conn(id) else { return };
            if c.sock.is_none() || !c.out.is_empty() {
                return;
            }
            let Some(names) = &mut c.snap else { return };
            let Some(n) = names.pop_front() else {
                c.snap = None;
                let Some(seq) = self.take_seq(id) else { return };
                self.send(id, &Message::Ready { seq }, None);
                return;
            };
            if !self.send_entry(id, &n) {
                return;
            }
        }
    }

    /// The next seq of connection `id` (`None`: it is gone).
    fn take_seq(&mut self, id: u64) -> Option<u64> {
        let c = self.conn(id)?;
        let s = c.next_seq;
        c.next_seq += 1;
        Some(s)
    }

    /// The exported list holding `va`, announced to every peer first if new.
    fn list_of(&mut self, va: usize) -> Option<usize> {
        if let Some(i) = self
            .lists
            .iter()
            .position(|l| va.wrapping_sub(l.base) < l.reserve)
        {
            return Some(i);
        }
        let info = self
            .sh
            .provider
            .lists()
            .into_iter()
            .find(|l| !l.external && l.shareable && va.wrapping_sub(l.va) < l.va_len)?;
        if self.lists.len() >= wire::MAX_LISTS {
            return None;
        }
        let region = self
            .sh
            .provider
            .regions()
            .into_iter()
            .find(|r| r.va.wrapping_sub(info.va) < info.va_len)?;
        let fd = sys::dup(region.fd).ok()?;
        let id = u16::try_from(info.id).ok()?;
        self.lists.push(ExpList {
            id,
            page_size: info.page_size,
            shift: info.page_size.trailing_zeros(),
            base: info.va,
            reserve: info.va_len,
            fd,
        });
        let li = self.lists.len() - 1;
        let ids: Vec<u64> = self.live_granted().collect();
        for c in ids {
            self.send_list(c, li);
        }
        Some(li)
    }

    fn send_list(&mut self, conn: u64, li: usize) -> bool {
        let l = &self.lists[li];
        let m = Message::List {
            list: l.id,
            page_size: l.page_size as u64,
            base_va: l.base as u64,
            reserve_len: l.reserve as u64,
        };
        // A duplicate travels (or waits in the queue) with the message.
        let Ok(fd) = self.lists[li].fd.try_clone() else {
            return false;
        };
        self.send(conn, &m, Some(fd))
    }

    /// Sends Map messages for pages `[first, first + count)` of list `li`
    /// to `conn`; the last seq sent.
    fn send_map(&mut self, conn: u64, li: usize, first: usize, count: usize) -> Option<u64> {
        let (id, base, shift) = {
            let l = &self.lists[li];
            (l.id, l.base, l.shift)
        };
        let mut last = None;
        let mut p = first;
        while p < first + count {
            let n = (first + count - p).min(MAP_CHUNK);
            let iovas = (p..p + n)
                .map(|i| {
                    crate::Iova::to_raw(
                        self.sh
                            .provider
                            .virt2iova((base + (i << shift)) as *const u8),
                    )
                })
                .collect();
            let seq = self.take_seq(conn)?;
            let m = Message::Map {
                seq,
                list: id,
                first_page: p as u64,
                iovas,
            };
            if !self.send(conn, &m, None) {
                return None;
            }
            last = Some(seq);
            p += n;
        }
        last
    }

    fn announce_map(&mut self, va: usize, len: usize, done: Option<Arc<Done>>) {
        let mut waiting = Vec::new();
        if let Some(li) = self.list_of(va) {
            let (base, shift) = (self.lists[li].base, self.lists[li].shift);
            let first = (va - base) >> shift;
            let count = len >> shift;
            let ids: Vec<u64> = self.live_granted().collect();
            for c in ids {
                if let Some(seq) = self.send_map(c, li, first, count) {
                    waiting.push((c, seq));
                }
            }
        }
        if let Some(done) = done {
            if waiting.is_empty() {
                done.set();
            } else {
                self.map_waits.push(MapWait { done, waiting });
            }
        }
    }

    fn announce_release(&mut self, va: usize, len: usize, hold: Box<dyn Send>) {
        let Some(li) = self
            .lists
            .iter()
            .position(|l| va.wrapping_sub(l.base) < l.reserve)
        else {
            return; // never announced: no peer maps it
        };
        let (id, base, shift) = (self.lists[li].id, self.lists[li].base, self.lists[li].shift);
        let first = (va - base) >> shift;
        let count = len >> shift;
        let mut acks = Vec::new();
        let ids: Vec<u64> = self.live_granted().collect();
        for c in ids {
            let Some(seq) = self.take_seq(c) else {
                continue;
            };
            let m = Message::Unmap {
                seq,
                list: id,
                first_page: first as u64,
                count: count as u32,
            };
            if self.send(c, &m, None) {
                acks.push((c, seq));
            }
        }
        // Peers that went without Bye may still map the pages.
        let exits: Vec<u64> = self
            .conns
            .iter()
            .filter(|c| c.sock.is_none() && c.role.is_some() && !c.unmapped)
            .map(|c| c.id)
            .collect();
        // A peer cut off while sending above is now among `exits`.
        acks.retain(|(c, _)| !exits.contains(c));
        if !acks.is_empty() || !exits.is_empty() {
            self.releases.push(Release {
                list: id,
                first,
                count,
                hold,
                acks,
                exits,
            });
        }
    }

    /// Sends the directory entry `name` (Publish, or Withdraw if gone);
    /// false (the connection gone) if it could not.
    fn send_entry(&mut self, conn: u64, name: &str) -> bool {
        let payload = lock(&self.sh.dir).get(name).map(|e| e.1.clone());
        let Some(seq) = self.take_seq(conn) else {
            return false;
        };
        let m = match payload {
            Some(payload) => Message::Publish {
                seq,
                name: name.to_string(),
                payload,
            },
            None => Message::Withdraw {
                seq,
                name: name.to_string(),
            },
        };
        self.send(conn, &m, None)
    }

    /// Drops the holds nobody waits on any more.
    fn finish_releases(&mut self) {
        self.releases
            .retain(|r| !r.acks.is_empty() || !r.exits.is_empty());
    }

    fn close(&mut self, id: u64, how: Close) {
        let Some(c) = self.conn(id) else { return };
        let Some(sock) = c.sock.take() else { return };
        // A peer that said Bye and closed at once makes our sends fail
        // before its Bye is read: look for it among what is still queued.
        let how = if how == Close::Lost && c.role.is_some() && said_bye(&sock, &mut self.buf) {
            Close::Bye
        } else {
            how
        };
        drop(sock);
        let Some(c) = self.conn(id) else { return };
        c.pending.clear();
        // Queued messages (and the memfd duplicates some carry) go now.
        c.out.clear();
        c.out_bytes = 0;
        c.snap = None;
        c.unmapped = how == Close::Bye;
        let role = c.role.clone();
        let pid = c.pid;
        // The role first: whoever a cut-off releases (a growth waiting for
        // this peer) finds the role Gone already.
        if let Some(role) = &role {
            if role_held_by(role, pid) {
                // Bye: the peer unmapped everything (its word; a peer that
                // lies could as well keep its fd): the role is free at once.
                role.set_state(if how == Close::Bye {
                    RoleState::Vacant
                } else {
                    RoleState::Gone { pid }
                });
            }
        }
        for w in &mut self.map_waits {
            w.waiting.retain(|&(cid, _)| cid != id);
        }
        self.map_waits.retain(|w| {
            let open = !w.waiting.is_empty();
            if !open {
                w.done.set();
            }
            open
        });
        for r in &mut self.releases {
            let had = r.acks.iter().any(|&(cid, _)| cid == id);
            r.acks.retain(|&(cid, _)| cid != id);
            if had && how == Close::Lost {
                // Released when its process exits (or, unverified, never
                // before the exporter drops).
                r.exits.push(id);
            }
        }
        self.finish_releases();
        // Otherwise kept: a process the kernel named until it exits, an
        // unverified one (and its holds) until the exporter drops.
        if role.is_none() || how == Close::Bye {
            // Never granted; or this very process (a thread attached over a
            // socket pair), which never "exits" while we run.
            self.conns.retain(|c| c.id != id);
        }
    }

    fn exited(&mut self, id: u64) {
        self.close(id, Close::Lost);
        let Some(pos) = self.conns.iter().position(|c| c.id == id) else {
            return;
        };
        let c = self.conns.remove(pos);
        for r in &mut self.releases {
            r.exits.retain(|&cid| cid != id);
        }
        self.finish_releases();
        if let Some(role) = c.role {
            let newer = self.conns.iter().any(|o| {
                o.role.as_ref().is_some_and(|r| Arc::ptr_eq(r, &role)) && o.sock.is_some()
            });
            if !newer && role_held_by(&role, c.pid) {
                role.set_state(RoleState::Exited { pid: c.pid });
            }
        }
    }

    fn check_timeouts(&mut self) {
        let now = Instant::now();
        let t = self.sh.ack_timeout;
        let late: Vec<u64> = self
            .conns
            .iter()
            .filter(|c| {
                c.sock.is_some()
                    && ((c.role.is_none() && now >= c.hello_by)
                        || match c.pending.front() {
                            Some(&(_, Some(sent))) => now >= sent + t,
                            Some(&(_, None)) => now >= c.stalled_since + t,
                            None => false,
                        })
            })
            .map(|c| c.id)
            .collect();
        for id in late {
            self.close(id, Close::Lost);
        }
        let gone: Vec<u64> = self
            .conns
            .iter()
            .filter(|c| {
                c.sock.is_none() && c.verified && c.pidfd.is_none() && !sys::process_alive(c.pid)
            })
            .map(|c| c.id)
            .collect();
        for id in gone {
            self.exited(id);
        }
    }
}

/// Whether a `Bye` waits among the next messages queued on `sock` (read
/// without waiting, at most a bounded number; anything else is dropped).
fn said_bye(sock: &OwnedFd, buf: &mut [u8]) -> bool {
    for _ in 0..64 {
        match sys::recv(sock, buf, true) {
            Ok(r) if r.len > 0 && !r.truncated => {
                if matches!(Message::decode(&buf[..r.len]), Ok(Message::Bye)) {
                    return true;
                }
            }
            _ => return false,
        }
    }
    false
}

/// Whether the role's current holder is `pid` (Attached or Gone).
fn role_held_by(role: &RoleInner, pid: u32) -> bool {
    matches!(*lock(&role.state), RoleState::Attached { pid: p } | RoleState::Gone { pid: p } if p == pid)
}

/// One non-blocking send of `bytes` (with `fd`).
fn try_send(sock: &OwnedFd, bytes: &[u8], fd: Option<&OwnedFd>) -> Sent {
    let fds: Vec<std::os::fd::BorrowedFd<'_>> = fd.iter().map(|f| f.as_fd()).collect();
    match sys::send_flags(sock, bytes, &fds, true) {
        Ok(()) => Sent::Done,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Sent::Full,
        Err(_) => Sent::Failed,
    }
}

#[cfg(test)]
mod tests;
