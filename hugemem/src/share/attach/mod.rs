//! The peer side: [`Attachment`] and [`AttachBuilder`].

use std::collections::BTreeMap;
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::{AttachError, ProtocolError};
use super::sys;
use super::view::{place, ListPlacement, ListSlot, PeerPage, PeerTable};
use super::wire::{self, Kind, Message, RefuseReason, VERSION};
use crate::sync::{AtomicBool, Ordering};
use crate::{Iova, IovaMode};

mod session;

use session::{check_list, recv_until, run, Session};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Where an attachment maps the exporter's lists.
///
/// ```
/// use pktmem_hugemem::share::{Attachment, Exporter, Placement};
/// use pktmem_hugemem::{AllocRequest, Provider};
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let c = p.alloc_shared(&AllocRequest::new(4096))?;
/// let exp = Exporter::builder(&p).unbound()?;
/// let fd = exp.connect_pair().unwrap();
/// // In this very process the exporter's range is taken: SameVaIfFree
/// // falls back to relocation by itself.
/// let a = std::thread::spawn(move || Attachment::builder("w").from_fd(fd)).join().unwrap()?;
/// assert_eq!(a.placement_mode(), Placement::SameVaIfFree);
/// assert!(!a.same_va());
/// let l = a.placement()[0];
/// assert!(!l.same_va && l.local_base != l.exporter_base as usize);
/// # drop(c);
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Placement {
    /// At the exporter's addresses when that range is free here
    /// (`MAP_FIXED_NOREPLACE`), so exporter pointers work unchanged;
    /// anywhere otherwise (then translate with
    /// [`Attachment::to_local`]). Each list is placed on its own.
    #[default]
    SameVaIfFree,
    /// Never at the exporter's addresses (for tests of the translated mode).
    Relocate,
}

/// How [`AttachBuilder::connect`] retries: wait `first`, then twice as
/// long each time up to `max`, until `deadline` (from the first attempt)
/// has passed, or for ever when it is `None`. Retried: no socket at the
/// path yet, connection refused, a full backlog, and a role whose previous
/// holder the exporter still counts as alive.
///
/// ```
/// use pktmem_hugemem::share::{AttachError, Attachment, Backoff};
/// use std::time::Duration;
/// let b = Backoff { deadline: Some(Duration::from_millis(50)), ..Backoff::default() };
/// assert_eq!((b.first, b.max), (Duration::from_millis(10), Duration::from_secs(1)));
/// let e = Attachment::builder("w").retry(b).connect_abstract("pktmem-doc-nobody").unwrap_err();
/// assert!(matches!(e, AttachError::Connect { attempts, .. } if attempts > 1));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The first wait.
    pub first: Duration,
    /// The longest wait.
    pub max: Duration,
    /// Give up after this long (`None`: never).
    pub deadline: Option<Duration>,
}

impl Default for Backoff {
    /// 10 ms, doubling to 1 s, for ever.
    fn default() -> Self {
        Backoff {
            first: Duration::from_millis(10),
            max: Duration::from_secs(1),
            deadline: None,
        }
    }
}

/// Builds an [`Attachment`]: [`Attachment::builder`]`(role)`, options, then
/// [`connect`](Self::connect), [`connect_abstract`](Self::connect_abstract)
/// or [`from_fd`](Self::from_fd).
///
/// ```
/// use pktmem_hugemem::share::{Attachment, Backoff, Exporter, Placement};
/// use pktmem_hugemem::{AllocRequest, Provider};
/// use std::time::Duration;
/// let path = std::env::temp_dir().join(format!("pktmem-doc-ab-{}.sock", std::process::id()));
/// let p2 = path.clone();
/// // The peer may start first: it retries until the exporter listens.
/// let peer = std::thread::spawn(move || {
///     Attachment::builder("worker")
///         .placement(Placement::Relocate)
///         .retry(Backoff { deadline: Some(Duration::from_secs(10)), ..Backoff::default() })
///         .handshake_timeout(Duration::from_secs(5))
///         .connect(&p2)
/// });
/// std::thread::sleep(Duration::from_millis(30));
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let exp = Exporter::builder(&p).bind(&path)?;
/// let a = peer.join().unwrap()?;
/// assert_eq!((a.role(), a.generation()), ("worker", 1));
/// # drop(exp);
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct AttachBuilder {
    role: String,
    placement: Placement,
    retry: Option<Backoff>,
    handshake_timeout: Duration,
}

/// The state the attachment's thread and its users share.
struct Inner {
    table: PeerTable,
    dir: Mutex<BTreeMap<String, Vec<u8>>>,
    dir_changed: Condvar,
    connected: AtomicBool,
    last_error: Mutex<Option<String>>,
    sock: OwnedFd,
    stop: OwnedFd,
    role: String,
    slot: u16,
    generation: u64,
    exporter_pid: u32,
    iova_mode: IovaMode,
    placement: Placement,
}

/// A peer's attachment to an exporter's memory: every list mapped here,
/// translation both ways, the published directory, kept up to date by a
/// background thread (growth, shrink, publications).
///
/// `Send + Sync`; dropping it stops the thread, unmaps everything, closes
/// every fd it received and says `Bye`.
///
/// Memory reached through it is shared with the exporter (and other
/// peers), who may write it at any time: read and write it through raw
/// pointers (volatile or atomic accesses), never through `&`/`&mut`
/// references. An address stays valid until the exporter withdraws its
/// page (the exporter only does so for memory it freed) or the attachment
/// drops.
///
/// ```
/// use pktmem_hugemem::share::{Attachment, Exporter, Placement};
/// use pktmem_hugemem::{AllocRequest, Provider};
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let c = p.alloc_shared(&AllocRequest::new(4 << 20))?;
/// let exp = Exporter::builder(&p).unbound()?;
/// let _cfg = exp.publish("cfg", b"hello")?;
/// let fd = exp.connect_pair().unwrap();
/// // Usually another process; a thread of this one shows the same.
/// let peer = std::thread::spawn(move || {
///     let a = Attachment::builder("worker").placement(Placement::Relocate).from_fd(fd)?;
///     assert!(!a.same_va());
///     assert_eq!(a.lookup("cfg").as_deref(), Some(&b"hello"[..]));
///     let va = c.as_ptr().as_ptr() as u64;
///     let local = a.to_local(va, c.len()).expect("mapped");
///     assert_eq!(a.to_exporter(local.as_ptr()), Some(va));
///     // SAFETY: the page is mapped here; shared memory is read by raw pointer.
///     let b = unsafe { local.as_ptr().read_volatile() };
///     assert_eq!(b, 0);
///     Ok::<_, pktmem_hugemem::HugememError>(a.generation())
/// });
/// assert_eq!(peer.join().unwrap()?, 1);
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
pub struct Attachment {
    inner: Arc<Inner>,
    thread: Option<JoinHandle<()>>,
}

impl fmt::Debug for Attachment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attachment")
            .field("role", &self.inner.role)
            .field("slot", &self.inner.slot)
            .field("generation", &self.inner.generation)
            .field("exporter_pid", &self.inner.exporter_pid)
            .field("connected", &self.is_connected())
            .field("placement", &self.placement())
            .finish_non_exhaustive()
    }
}

impl Attachment {
    /// A builder for an attachment as `role` (1..=64 characters of
    /// `[A-Za-z0-9._-]`).
    pub fn builder(role: &str) -> AttachBuilder {
        AttachBuilder {
            role: role.to_string(),
            placement: Placement::default(),
            retry: None,
            handshake_timeout: Duration::from_secs(10),
        }
    }

    /// The role granted.
    pub fn role(&self) -> &str {
        &self.inner.role
    }

    /// The role's slot in the exporter (1-based, stable for the exporter's life).
    pub fn role_slot(&self) -> u16 {
        self.inner.slot
    }

    /// The role's generation granted to this attachment (1 for the first
    /// holder, + 1 for every later one).
    pub fn generation(&self) -> u64 {
        self.inner.generation
    }

    /// The exporter's pid (in its own PID namespace).
    pub fn exporter_pid(&self) -> u32 {
        self.inner.exporter_pid
    }

    /// The exporter's IOVA mode: what [`iova`](Self::iova) returns.
    pub fn iova_mode(&self) -> IovaMode {
        self.inner.iova_mode
    }

    /// Whether the connection is up: false once the exporter said `Bye`,
    /// closed, or broke the protocol ([`last_error`](Self::last_error)).
    /// The memory stays mapped either way until the attachment drops.
    pub fn is_connected(&self) -> bool {
        // Acquire: pairs with the Release store when the thread ends.
        self.inner.connected.load(Ordering::Acquire)
    }

    /// The placement asked for.
    pub fn placement_mode(&self) -> Placement {
        self.inner.placement
    }

    /// Where each list is, here and in the exporter.
    pub fn placement(&self) -> Vec<ListPlacement> {
        self.inner.table.iter().map(ListSlot::placement).collect()
    }

    /// Whether every list sits at the exporter's addresses (then exporter
    /// addresses are valid pointers here, and [`to_local`](Self::to_local)
    /// is the identity on mapped memory).
    pub fn same_va(&self) -> bool {
        self.inner.table.iter().all(|s| s.same_va)
    }

    /// The local address of the exporter's `exp_va`, if the whole of
    /// `[exp_va, exp_va + len)` is mapped here (`len` 0 counts as 1). No
    /// lock, no system call: a scan of the lists and one table load per
    /// page spanned.
    #[inline]
    pub fn to_local(&self, exp_va: u64, len: usize) -> Option<NonNull<u8>> {
        self.inner.table.to_local(exp_va, len)
    }

    /// The exporter's address of the local `local`, if mapped here.
    #[inline]
    pub fn to_exporter(&self, local: *const u8) -> Option<u64> {
        self.inner.table.to_exporter(local as usize)
    }

    /// The IOVA of the exporter's `exp_va`, if mapped and the exporter gave one.
    #[inline]
    pub fn iova(&self, exp_va: u64) -> Option<Iova> {
        self.inner.table.iova(exp_va)
    }

    /// Calls `f` with a record of every page mapped here.
    pub fn walk_pages(&self, f: impl FnMut(&PeerPage)) {
        self.inner.table.walk(f);
    }

    /// The payload published under `name`, now.
    pub fn lookup(&self, name: &str) -> Option<Vec<u8>> {
        lock(&self.inner.dir).get(name).cloned()
    }

    /// Waits up to `timeout` for a payload under `name` that `pred` accepts.
    pub fn wait_for(
        &self,
        name: &str,
        timeout: Duration,
        pred: impl Fn(&[u8]) -> bool,
    ) -> Option<Vec<u8>> {
        let end = Instant::now() + timeout;
        let mut dir = lock(&self.inner.dir);
        loop {
            if let Some(v) = dir.get(name).filter(|v| pred(v)) {
                return Some(v.clone());
            }
            let left = end.checked_duration_since(Instant::now())?;
            if left.is_zero() {
                return None;
            }
            dir = self
                .inner
                .dir_changed
                .wait_timeout(dir, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Why the connection ended, if it ended on an error.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.inner.last_error).clone()
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        sys::eventfd_signal(&self.inner.stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        // The thread is gone: this is the last handle.
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.table = PeerTable::new(); // unmaps everything, closes the fds
        }
        // Bye says everything is unmapped; a closed connection ignores it.
        // Without waiting: a stalled exporter must not hold up the drop.
        let _ = sys::send_flags(&self.inner.sock, &Message::Bye.encode(), &[], true);
    }
}

impl AttachBuilder {
    /// Where to map the lists (default [`Placement::SameVaIfFree`]).
    pub fn placement(mut self, p: Placement) -> Self {
        self.placement = p;
        self
    }

    /// Retry connecting as `b` says (default: one attempt).
    pub fn retry(mut self, b: Backoff) -> Self {
        self.retry = Some(b);
        self
    }

    /// How long the whole handshake may take once connected (default 10 s).
    pub fn handshake_timeout(mut self, d: Duration) -> Self {
        self.handshake_timeout = d;
        self
    }

    /// Connects to an exporter bound at `path`.
    pub fn connect(self, path: impl AsRef<Path>) -> Result<Attachment, AttachError> {
        use std::os::unix::ffi::OsStrExt;
        let path = path.as_ref();
        let addr = path.display().to_string();
        self.connect_to(&addr, path.as_os_str().as_bytes(), false)
    }

    /// Connects to an exporter bound at the abstract name `name`.
    pub fn connect_abstract(self, name: &str) -> Result<Attachment, AttachError> {
        self.connect_to(&format!("@{name}"), name.as_bytes(), true)
    }

    /// Attaches over a connected socket (from
    /// [`Exporter::connect_pair`](super::Exporter::connect_pair), perhaps
    /// inherited by a child process). The fd is consumed: closed on failure.
    pub fn from_fd(self, fd: OwnedFd) -> Result<Attachment, AttachError> {
        self.check_role()?;
        self.attach(fd)
    }

    fn check_role(&self) -> Result<(), AttachError> {
        if wire::valid_role(&self.role) {
            Ok(())
        } else {
            Err(AttachError::BadRole {
                role: self.role.clone(),
            })
        }
    }

    fn connect_to(
        self,
        shown: &str,
        raw: &[u8],
        abstract_name: bool,
    ) -> Result<Attachment, AttachError> {
        self.check_role()?;
        let addr = sys::sockaddr(raw, abstract_name).map_err(|source| AttachError::Connect {
            addr: shown.to_string(),
            attempts: 0,
            source,
        })?;
        let start = Instant::now();
        let mut wait = self.retry.map_or(Duration::ZERO, |b| b.first);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let err = match sys::connect(&addr) {
                Ok(sock) => match self.attach(sock) {
                    Err(
                        e @ AttachError::Refused {
                            reason: RefuseReason::RoleTaken,
                            ..
                        },
                    ) => e,
                    r => return r,
                },
                Err(source) => {
                    let again = matches!(
                        source.raw_os_error(),
                        Some(libc::ENOENT | libc::ECONNREFUSED | libc::EAGAIN)
                    );
                    let e = AttachError::Connect {
                        addr: shown.to_string(),
                        attempts,
                        source,
                    };
                    if !again {
                        return Err(e);
                    }
                    e
                }
            };
            let Some(b) = self.retry else {
                return Err(err);
            };
            if b.deadline.is_some_and(|d| start.elapsed() + wait > d) {
                return Err(err);
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(b.max).max(Duration::from_millis(1));
        }
    }

    /// The handshake over `sock`, then the thread. On failure, once
    /// everything received is unmapped and closed, says `Bye` (without
    /// waiting): the exporter may have granted the role already, and
    /// without it the role would stay held by this process (F11).
    fn attach(&self, sock: OwnedFd) -> Result<Attachment, AttachError> {
        // A second descriptor of the socket outlives `handshake`'s cleanup.
        let bye = sock.try_clone().ok();
        let r = self.handshake(sock);
        if let (Err(_), Some(b)) = (&r, &bye) {
            let _ = sys::send_flags(b, &Message::Bye.encode(), &[], true);
        }
        r
    }

    // One sequence: hello, welcome, snapshot, thread; split, it reads worse.
    #[allow(clippy::too_many_lines)]
    fn handshake(&self, sock: OwnedFd) -> Result<Attachment, AttachError> {
        let deadline = Instant::now() + self.handshake_timeout;
        let io = |op| move |source| AttachError::Io { op, source };
        sys::set_send_timeout(&sock, self.handshake_timeout.max(Duration::from_secs(1)))
            .map_err(io("setsockopt (SO_SNDTIMEO)"))?;
        let hello = Message::Hello {
            min_version: VERSION,
            max_version: VERSION,
            pid: std::process::id(),
            role: self.role.clone(),
        };
        sys::send(&sock, &hello.encode(), &[]).map_err(|e| match e.raw_os_error() {
            Some(libc::EPIPE | libc::ECONNRESET) => AttachError::ExporterGone { during: "hello" },
            _ => AttachError::Io {
                op: "send (Hello)",
                source: e,
            },
        })?;
        let mut buf = vec![0u8; wire::MAX_MESSAGE + 1];
        let (first, _) = recv_until(&sock, &mut buf, deadline, self.handshake_timeout, "welcome")?;
        let (slot, generation, exporter_pid, iova_mode, lists) = match first {
            Message::Refuse {
                reason: RefuseReason::Version,
                ours_min,
                ours_max,
                ..
            } => {
                return Err(AttachError::VersionMismatch {
                    ours: VERSION..=VERSION,
                    theirs: ours_min..=ours_max,
                })
            }
            Message::Refuse { reason, text, .. } => {
                return Err(AttachError::Refused { reason, text })
            }
            Message::Welcome { version, .. } if version != VERSION => {
                return Err(AttachError::VersionMismatch {
                    ours: VERSION..=VERSION,
                    theirs: version..=version,
                })
            }
            Message::Welcome {
                role_slot,
                generation,
                exporter_pid,
                iova_mode,
                lists,
                ..
            } => (
                role_slot,
                generation,
                exporter_pid,
                if iova_mode == 0 {
                    IovaMode::Pa
                } else {
                    IovaMode::Va
                },
                lists,
            ),
            m => {
                return Err(ProtocolError::Unexpected {
                    kind: m.kind(),
                    why: "the first answer must be Welcome or Refuse".into(),
                }
                .into())
            }
        };
        let stop = sys::eventfd().map_err(io("eventfd"))?;
        let inner = Inner {
            table: PeerTable::new(),
            dir: Mutex::new(BTreeMap::new()),
            dir_changed: Condvar::new(),
            connected: AtomicBool::new(true),
            last_error: Mutex::new(None),
            sock,
            stop,
            role: self.role.clone(),
            slot,
            generation,
            exporter_pid,
            iova_mode,
            placement: self.placement,
        };
        // On any error below `inner` drops: lists unmapped, fds closed.
        // The lists come first, all placed together (same-VA attempts
        // before relocations, so that no relocated list takes another's range).
        let mut pending = Vec::new();
        for k in 0..lists {
            let (m, mut fds) = recv_until(
                &inner.sock,
                &mut buf,
                deadline,
                self.handshake_timeout,
                "the list table",
            )?;
            if !matches!(m, Message::List { .. }) {
                return Err(ProtocolError::Unexpected {
                    kind: m.kind(),
                    why: format!("Welcome announced {lists} list(s), this came after {k}"),
                }
                .into());
            }
            pending.push(check_list(&inner.table, &pending, &m, fds.pop())?);
        }
        for slot in place(pending, self.placement == Placement::SameVaIfFree, &[])? {
            inner.table.push(slot);
        }
        let mut session = Session { last_seq: 0 };
        loop {
            let (m, fds) = recv_until(
                &inner.sock,
                &mut buf,
                deadline,
                self.handshake_timeout,
                "the initial snapshot",
            )?;
            let ready = matches!(m, Message::Ready { .. });
            if ready && inner.table.len() != usize::from(lists) {
                return Err(ProtocolError::Unexpected {
                    kind: Kind::Ready,
                    why: format!(
                        "Welcome announced {lists} list(s), {} came",
                        inner.table.len()
                    ),
                }
                .into());
            }
            if matches!(m, Message::Bye) {
                return Err(AttachError::ExporterGone {
                    during: "the initial snapshot",
                });
            }
            session.apply(&inner, &m, fds, true)?;
            if ready {
                break;
            }
        }
        // Peers read acks only once connected: a send timeout keeps a
        // stalled exporter from blocking the thread for ever.
        sys::set_send_timeout(&inner.sock, Duration::from_secs(5))
            .map_err(io("setsockopt (SO_SNDTIMEO)"))?;
        let inner = Arc::new(inner);
        let t_inner = inner.clone();
        let thread = std::thread::Builder::new()
            .name(format!("pktmem-attach-{}", self.role))
            .spawn(move || run(&t_inner, session, buf))
            .map_err(io("spawn (attachment thread)"))?;
        Ok(Attachment {
            inner,
            thread: Some(thread),
        })
    }
}

// The attachment is used from any thread.
const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Attachment>();
};
