//! The exporter side: [`Exporter`], its roles and its directory. The I/O
//! thread itself is in `io.rs`.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use super::error::{ExportError, PublishError, RoleError};
use super::io::{Cmd, Done, Io};
use super::sys;
use super::wire;
use crate::sync::{AtomicBool, AtomicU64, Ordering};
use crate::{EventGuard, EventKind, PageSource, Provider};

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Most roles one exporter has (peers declare roles by attaching: a bound
/// on what they can make it keep).
pub const MAX_ROLES: usize = 1024;

/// Which users may attach.
#[derive(Clone, Debug, Default)]
pub(super) struct Users {
    any: bool,
    uids: Vec<u32>,
}

impl Users {
    /// Whether a peer of effective uid `uid` may attach: ours, root, or
    /// allowed by the builder.
    pub(super) fn allows(&self, uid: u32) -> bool {
        self.any || uid == 0 || uid == sys::euid() || self.uids.contains(&uid)
    }
}

/// The shortest [`ExportBuilder::ack_timeout`] accepted.
const MIN_ACK_TIMEOUT: Duration = Duration::from_millis(1);

/// What the exporter and its callbacks share with the I/O thread.
pub(super) struct Shared {
    pub(super) provider: Provider,
    pub(super) cmds: Mutex<VecDeque<Cmd>>,
    pub(super) wake: OwnedFd,
    /// Set once the I/O thread stopped taking commands.
    pub(super) closed: Mutex<bool>,
    /// Set (before `closed`) when the I/O thread died of a panic: nobody
    /// watches the peers any more, so pages freed from then on are never
    /// returned (a peer may still map them).
    pub(super) dead: AtomicBool,
    pub(super) roles: Mutex<Vec<Arc<RoleInner>>>,
    /// Published payloads by name: (publication id, payload).
    pub(super) dir: Mutex<BTreeMap<String, (u64, Vec<u8>)>>,
    pub(super) next_pub: AtomicU64,
    pub(super) ack_timeout: Duration,
    pub(super) max_peers: usize,
    /// Who may attach, besides this process's uid and root.
    pub(super) users: Users,
    pub(super) io_thread: OnceLock<ThreadId>,
}

impl Shared {
    /// Queues `cmd` for the I/O thread; gives it back if the thread is gone.
    pub(super) fn push(&self, cmd: Cmd) -> Result<(), Cmd> {
        let closed = lock(&self.closed);
        if *closed {
            return Err(cmd);
        }
        lock(&self.cmds).push_back(cmd);
        drop(closed);
        sys::eventfd_signal(&self.wake);
        Ok(())
    }

    /// Whether the I/O thread still takes commands.
    pub(super) fn running(&self) -> bool {
        !*lock(&self.closed)
    }

    fn on_io_thread(&self) -> bool {
        self.io_thread.get() == Some(&std::thread::current().id())
    }

    pub(super) fn role_get_or_create(&self, name: &str) -> Result<Arc<RoleInner>, RoleError> {
        if !wire::valid_role(name) {
            return Err(RoleError::BadName {
                name: name.to_string(),
            });
        }
        let mut roles = lock(&self.roles);
        if let Some(r) = roles.iter().find(|r| r.name == name) {
            return Ok(r.clone());
        }
        if roles.len() >= MAX_ROLES {
            return Err(RoleError::TooMany { max: MAX_ROLES });
        }
        let slot = (roles.len() + 1) as u16; // <= MAX_ROLES, which fits
        let r = Arc::new(RoleInner {
            name: name.to_string(),
            slot,
            generation: AtomicU64::new(0),
            state: Mutex::new(RoleState::Vacant),
            changed: Condvar::new(),
            watchers: Mutex::new(Vec::new()),
            next_watch: AtomicU64::new(1),
        });
        roles.push(r.clone());
        Ok(r)
    }
}

/// Where a role's holder is: `Vacant` → `Attached` → `Gone` (connection
/// closed) → `Exited` (process gone) → `Attached` again (generation + 1);
/// `Attached` → `Vacant` when the peer leaves with `Bye`.
///
/// ```
/// use pktmem_hugemem::share::RoleState;
/// let s = RoleState::Gone { pid: 42 };
/// assert!(matches!(s, RoleState::Gone { pid: 42 }));
/// assert_ne!(s, RoleState::Exited { pid: 42 });
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleState {
    /// Never held, or left with `Bye`: the peer unmapped everything (as it
    /// says: a peer is trusted that far), so what it had may be reclaimed.
    Vacant,
    /// Held by the process `pid`, connected.
    Attached {
        /// Its pid (in the exporter's PID namespace).
        pid: u32,
    },
    /// The connection closed (or was cut) while the process `pid` lives:
    /// it may still map the memory, so nothing it had is released yet.
    Gone {
        /// Its pid.
        pid: u32,
    },
    /// The process `pid` has exited: what it held is released, the role
    /// can be granted again (generation + 1).
    Exited {
        /// Its pid.
        pid: u32,
    },
}

/// A snapshot of a role, as [`Exporter::roles`] and
/// [`Role::on_change`] give it.
///
/// ```
/// use pktmem_hugemem::share::{Exporter, RoleState};
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let exp = Exporter::builder(&p).unbound()?;
/// exp.role("a")?;
/// exp.role("b")?;
/// let r = exp.roles();
/// assert_eq!((r[1].name.as_str(), r[1].slot, r[1].generation, r[1].state), ("b", 2, 0, RoleState::Vacant));
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoleInfo {
    /// The role's name.
    pub name: String,
    /// Its slot (1-based).
    pub slot: u16,
    /// The generation of its latest grant (0: never granted).
    pub generation: u64,
    /// Where its holder is.
    pub state: RoleState,
}

type Watcher = Arc<dyn Fn(&RoleInfo) + Send + Sync>;

pub(super) struct RoleInner {
    pub(super) name: String,
    pub(super) slot: u16,
    pub(super) generation: AtomicU64,
    pub(super) state: Mutex<RoleState>,
    changed: Condvar,
    watchers: Mutex<Vec<(u64, Watcher)>>,
    next_watch: AtomicU64,
}

impl RoleInner {
    pub(super) fn info(&self) -> RoleInfo {
        RoleInfo {
            name: self.name.clone(),
            slot: self.slot,
            // Acquire: pairs with the Release increment in `grant`.
            generation: self.generation.load(Ordering::Acquire),
            state: *lock(&self.state),
        }
    }

    /// Sets the state, wakes waiters and runs the watchers (on the calling
    /// thread, with no lock held).
    pub(super) fn set_state(&self, s: RoleState) {
        *lock(&self.state) = s;
        self.changed.notify_all();
        let info = self.info();
        let watchers: Vec<Watcher> = lock(&self.watchers)
            .iter()
            .map(|(_, w)| w.clone())
            .collect();
        for w in watchers {
            // A panicking watcher must not take the I/O thread down.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w(&info)));
        }
    }

    /// A new grant: generation + 1, then `Attached { pid }`.
    pub(super) fn grant(&self, pid: u32) -> u64 {
        // Release: pairs with the Acquire loads in `generation`/`info`;
        // the state change below is published by the state lock.
        let g = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        self.set_state(RoleState::Attached { pid });
        g
    }
}

/// A role: the name of a peer ("worker"), held by at most one live process
/// at a time. Cheap to clone.
///
/// ```
/// use pktmem_hugemem::share::{Attachment, Exporter, RoleState};
/// use pktmem_hugemem::Provider;
/// use std::time::Duration;
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let exp = Exporter::builder(&p).unbound()?;
/// let role = exp.role("worker")?;
/// assert_eq!((role.state(), role.generation()), (RoleState::Vacant, 0));
/// let fd = exp.connect_pair().unwrap();
/// let a = std::thread::spawn(move || Attachment::builder("worker").from_fd(fd)).join().unwrap()?;
/// assert_eq!(role.wait_attached(Duration::from_secs(5)), Some(1));
/// assert_eq!(role.state(), RoleState::Attached { pid: std::process::id() });
/// drop(a); // Bye
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Clone)]
pub struct Role {
    pub(super) inner: Arc<RoleInner>,
    pub(super) shared: Weak<Shared>,
}

impl fmt::Debug for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.inner.info(), f)
    }
}

impl Role {
    /// Whether the exporter still serves this role: false once it was
    /// dropped or its I/O thread failed (then no peer is attached, no
    /// growth is announced and no exit is noticed any more).
    pub fn exporter_running(&self) -> bool {
        self.shared.upgrade().is_some_and(|sh| sh.running())
    }

    /// The role's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Its slot: 1-based, stable for the exporter's life.
    pub fn slot(&self) -> u16 {
        self.inner.slot
    }

    /// The generation of its latest grant (0: never granted; + 1 on every grant).
    pub fn generation(&self) -> u64 {
        // Acquire: pairs with the increment in `RoleInner::grant`.
        self.inner.generation.load(Ordering::Acquire)
    }

    /// Where its holder is.
    pub fn state(&self) -> RoleState {
        *lock(&self.inner.state)
    }

    /// Waits up to `timeout` for the role to be attached; its generation then.
    pub fn wait_attached(&self, timeout: Duration) -> Option<u64> {
        self.wait(timeout, |s| matches!(s, RoleState::Attached { .. }))
            .then(|| self.generation())
    }

    /// Waits up to `timeout` for the holder's process to have exited.
    pub fn wait_exited(&self, timeout: Duration) -> bool {
        self.wait(timeout, |s| matches!(s, RoleState::Exited { .. }))
    }

    /// Waits up to `timeout` for a state `pred` accepts.
    pub fn wait_state(&self, timeout: Duration, pred: impl Fn(RoleState) -> bool) -> bool {
        self.wait(timeout, pred)
    }

    fn wait(&self, timeout: Duration, pred: impl Fn(RoleState) -> bool) -> bool {
        let end = Instant::now() + timeout;
        let mut s = lock(&self.inner.state);
        loop {
            if pred(*s) {
                return true;
            }
            let Some(left) = end.checked_duration_since(Instant::now()) else {
                return false;
            };
            if left.is_zero() {
                return false;
            }
            s = self
                .inner
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Calls `f` on every change of the role's state, on the exporter's I/O
    /// thread with no exporter lock held, until the guard drops. `f` may
    /// reclaim what a dead peer held; it must not allocate from the
    /// exported provider (growth waits for the I/O thread) nor block.
    pub fn on_change(&self, f: impl Fn(&RoleInfo) + Send + Sync + 'static) -> RoleWatch {
        // Relaxed: only uniqueness matters.
        let id = self.inner.next_watch.fetch_add(1, Ordering::Relaxed);
        lock(&self.inner.watchers).push((id, Arc::new(f)));
        RoleWatch {
            role: Arc::downgrade(&self.inner),
            id,
        }
    }
}

/// The registration of a [`Role::on_change`] callback: dropping it
/// unregisters the callback.
///
/// ```
/// use pktmem_hugemem::share::{Attachment, Exporter, RoleState};
/// use pktmem_hugemem::Provider;
/// use std::sync::{Arc, Mutex};
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let exp = Exporter::builder(&p).unbound()?;
/// let seen: Arc<Mutex<Vec<RoleState>>> = Arc::default();
/// let s = seen.clone();
/// let watch = exp.role("w")?.on_change(move |info| s.lock().unwrap().push(info.state));
/// let fd = exp.connect_pair().unwrap();
/// let a = std::thread::spawn(move || Attachment::builder("w").from_fd(fd)).join().unwrap()?;
/// assert_eq!(seen.lock().unwrap()[0], RoleState::Attached { pid: std::process::id() });
/// drop(watch); // no more calls
/// # drop(a);
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[must_use = "dropping the guard unregisters the callback at once"]
pub struct RoleWatch {
    role: Weak<RoleInner>,
    id: u64,
}

impl fmt::Debug for RoleWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RoleWatch")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for RoleWatch {
    fn drop(&mut self) {
        if let Some(r) = self.role.upgrade() {
            lock(&r.watchers).retain(|(id, _)| *id != self.id);
        }
    }
}

/// A published payload: peers see it in their directory
/// ([`Attachment::lookup`](super::Attachment::lookup)); dropping it
/// withdraws it.
///
/// ```
/// use pktmem_hugemem::share::{Attachment, Exporter};
/// use pktmem_hugemem::Provider;
/// use std::time::Duration;
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let exp = Exporter::builder(&p).unbound()?;
/// let cfg = exp.publish("cfg", b"v1")?;
/// let fd = exp.connect_pair().unwrap();
/// let a = std::thread::spawn(move || Attachment::builder("w").from_fd(fd)).join().unwrap()?;
/// assert_eq!(a.lookup("cfg").as_deref(), Some(&b"v1"[..]));
/// cfg.update(b"v2")?;
/// assert!(a.wait_for("cfg", Duration::from_secs(5), |v| v == b"v2").is_some());
/// drop(cfg); // withdrawn
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[must_use = "dropping the publication withdraws it at once"]
pub struct Publication {
    shared: Weak<Shared>,
    name: String,
    id: u64,
}

impl fmt::Debug for Publication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publication")
            .field("name", &self.name)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Publication {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Replaces the payload (peers get the new one).
    pub fn update(&self, payload: &[u8]) -> Result<(), PublishError> {
        check_payload(&self.name, payload)?;
        let Some(sh) = self.shared.upgrade() else {
            return Ok(()); // the exporter is gone: nobody to tell
        };
        if let Some(e) = lock(&sh.dir).get_mut(&self.name) {
            if e.0 == self.id {
                e.1 = payload.to_vec();
            }
        }
        let _ = sh.push(Cmd::Publish {
            name: self.name.clone(),
        });
        Ok(())
    }
}

impl Drop for Publication {
    fn drop(&mut self) {
        if let Some(sh) = self.shared.upgrade() {
            let mut dir = lock(&sh.dir);
            if dir.get(&self.name).is_some_and(|e| e.0 == self.id) {
                dir.remove(&self.name);
            }
            drop(dir);
            let _ = sh.push(Cmd::Publish {
                name: self.name.clone(),
            });
        }
    }
}

fn check_payload(name: &str, payload: &[u8]) -> Result<(), PublishError> {
    if payload.len() > wire::MAX_PAYLOAD {
        return Err(PublishError::TooLarge {
            name: name.to_string(),
            len: payload.len(),
            max: wire::MAX_PAYLOAD,
        });
    }
    Ok(())
}

/// Builds an [`Exporter`].
///
/// ```
/// use pktmem_hugemem::share::Exporter;
/// use pktmem_hugemem::Provider;
/// use std::time::Duration;
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let exp = Exporter::builder(&p)
///     .ack_timeout(Duration::from_millis(500)) // a peer that does not ack is cut off
///     .max_peers(4)
///     .bind_abstract(&format!("pktmem-doc-eb-{}", std::process::id()))?;
/// assert!(exp.socket_path().is_none());
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ExportBuilder {
    provider: Provider,
    ack_timeout: Duration,
    max_peers: usize,
    users: Users,
}

/// A provider's memory, exported to other processes over a Unix socket.
///
/// The exporter announces every fd-backed list of the provider (its memfd
/// and the mapped pages with their IOVAs) to each peer that attaches, then
/// every growth (synchronously: an allocation that maps new pages returns
/// once every peer mapped them, or was cut off after the ack timeout) and
/// every shrink (the pages stay in the exporter, out of use, until every
/// peer that had them acked the `Unmap` or exited). It also serves a
/// directory of named payloads ([`publish`](Self::publish)) and tracks
/// [`Role`]s.
///
/// Dropping it says `Bye` to every peer and stops the I/O thread; pages it
/// was holding back for a peer that had not acked their `Unmap` stay held
/// (mapped, never reused) for the provider's life. A peer must stop using
/// the memory once its [`is_connected`](super::Attachment::is_connected)
/// is false.
///
/// ```
/// use pktmem_hugemem::share::Exporter;
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().exportable().quiet(true).build()?;
/// let path = std::env::temp_dir().join(format!("pktmem-doc-{}.sock", std::process::id()));
/// let exp = Exporter::builder(&p).bind(&path)?;
/// assert_eq!(exp.socket_path(), Some(path.as_path()));
/// drop(exp);
/// assert!(!path.exists(), "the socket file goes with the exporter");
/// # Ok::<(), pktmem_hugemem::HugememError>(())
/// ```
pub struct Exporter {
    pub(super) shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    path: Option<PathBuf>,
    guards: Vec<EventGuard>,
    gate: Option<super::io::GateGuard>,
}

impl fmt::Debug for Exporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Exporter")
            .field("path", &self.path)
            .field("roles", &self.roles())
            .finish_non_exhaustive()
    }
}

impl Exporter {
    /// A builder exporting `provider`'s memory.
    pub fn builder(provider: &Provider) -> ExportBuilder {
        ExportBuilder {
            provider: provider.clone(),
            ack_timeout: Duration::from_secs(2),
            max_peers: 16,
            users: Users::default(),
        }
    }

    /// Whether the I/O thread runs. False only if it failed (a bug: it
    /// does not panic on anything a peer sends); then every peer was
    /// disconnected (roles `Gone`), growth is no longer announced nor
    /// waited for, and pages freed from then on stay held (never returned,
    /// as a peer may still map them) until the provider drops.
    pub fn is_running(&self) -> bool {
        self.shared.running()
    }

    /// The exported provider.
    pub fn provider(&self) -> &Provider {
        &self.shared.provider
    }

    /// The role `name`, declared now if new (a role is also declared by
    /// the first `Hello` naming it). Slots are given in order, from 1.
    pub fn role(&self, name: &str) -> Result<Role, RoleError> {
        Ok(Role {
            inner: self.shared.role_get_or_create(name)?,
            shared: Arc::downgrade(&self.shared),
        })
    }

    /// Every role declared, in slot order.
    pub fn roles(&self) -> Vec<RoleInfo> {
        lock(&self.shared.roles).iter().map(|r| r.info()).collect()
    }

    /// Publishes `payload` under `name` (1..=255 bytes of
    /// `[A-Za-z0-9._/-]`) for every peer, now and later, until the
    /// [`Publication`] drops.
    pub fn publish(&self, name: &str, payload: &[u8]) -> Result<Publication, PublishError> {
        if !wire::valid_name(name) {
            return Err(PublishError::BadName {
                name: name.to_string(),
            });
        }
        check_payload(name, payload)?;
        // Relaxed: only uniqueness matters.
        let id = self.shared.next_pub.fetch_add(1, Ordering::Relaxed);
        {
            let mut dir = lock(&self.shared.dir);
            if dir.contains_key(name) {
                return Err(PublishError::Exists {
                    name: name.to_string(),
                });
            }
            if dir.len() >= wire::MAX_ENTRIES {
                return Err(PublishError::Full {
                    max: wire::MAX_ENTRIES,
                });
            }
            dir.insert(name.to_string(), (id, payload.to_vec()));
        }
        let _ = self.shared.push(Cmd::Publish {
            name: name.to_string(),
        });
        Ok(Publication {
            shared: Arc::downgrade(&self.shared),
            name: name.to_string(),
            id,
        })
    }

    /// The path the exporter listens on (`None`: abstract or unbound).
    pub fn socket_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// A socket connected to this exporter, for a peer that cannot reach
    /// the listener: a thread of this process, or a child that inherits it
    /// (clear its close-on-exec flag, `FD_CLOEXEC`, for that; the fd is
    /// close-on-exec as returned). The socket's credentials name this
    /// process, so the peer's pid is the one its `Hello` gives, unverified:
    /// it is never declared exited, and if it goes without `Bye` its role
    /// stays `Gone` and its pages held until the exporter drops.
    pub fn connect_pair(&self) -> std::io::Result<OwnedFd> {
        let (ours, theirs) = sys::seqpacket_pair()?;
        self.shared
            .push(Cmd::Conn(ours))
            .map_err(|_| std::io::Error::other("the exporter's I/O thread has stopped"))?;
        Ok(theirs)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        // No new commands from the provider's callbacks...
        self.guards.clear();
        self.gate = None;
        // ... then the thread says Bye, releases every hold and ends.
        let _ = self.shared.push(Cmd::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(p) = &self.path {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl ExportBuilder {
    /// How long a peer may take to ack a message before it is cut off
    /// (default 2 s). Growth waits at most about this long per peer. The
    /// I/O thread never waits on a peer's socket: what a peer does not read
    /// is queued for it, and a peer with more than 8 MiB waiting (beyond
    /// its initial snapshot) is cut off at once. A message's timer starts
    /// when it was handed to the socket, or, while it waits in the queue,
    /// when the peer last read. Shorter than 1 ms: building fails with
    /// [`ExportError::AckTimeout`].
    ///
    /// ```
    /// use pktmem_hugemem::share::{ExportError, Exporter};
    /// use pktmem_hugemem::Provider;
    /// use std::time::Duration;
    /// let p = Provider::builder().exportable().quiet(true).build()?;
    /// let e = Exporter::builder(&p).ack_timeout(Duration::ZERO).unbound().unwrap_err();
    /// assert!(matches!(e, ExportError::AckTimeout { .. }), "{e}");
    /// # Ok::<(), pktmem_hugemem::HugememError>(())
    /// ```
    pub fn ack_timeout(mut self, d: Duration) -> Self {
        self.ack_timeout = d;
        self
    }

    /// Lets processes of user `uid` attach too. By default only this
    /// process's (effective) uid and root may: anyone else is refused
    /// ([`RefuseReason::NotAllowed`](super::RefuseReason::NotAllowed))
    /// before anything is sent. This matters most for
    /// [`bind_abstract`](Self::bind_abstract): an abstract name has no
    /// permissions, every process in the network namespace can connect.
    ///
    /// ```
    /// use pktmem_hugemem::share::Exporter;
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().exportable().quiet(true).build()?;
    /// let exp = Exporter::builder(&p).allow_uid(1000).allow_uid(1001).unbound()?;
    /// # Ok::<(), pktmem_hugemem::HugememError>(())
    /// ```
    pub fn allow_uid(mut self, uid: u32) -> Self {
        self.users.uids.push(uid);
        self
    }

    /// Lets processes of every user attach (the socket's own permissions,
    /// if any, are then the only guard).
    pub fn allow_any_user(mut self) -> Self {
        self.users.any = true;
        self
    }

    /// Most peers attached at once (default 16); more are refused.
    pub fn max_peers(mut self, n: usize) -> Self {
        self.max_peers = n;
        self
    }

    /// Listens at the filesystem path `path` (a stale socket file there,
    /// one nobody listens on, is replaced; the file is removed when the
    /// exporter drops).
    pub fn bind(self, path: impl AsRef<Path>) -> Result<Exporter, ExportError> {
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::FileTypeExt;
        let path = path.as_ref();
        let shown = path.display().to_string();
        let bad = |why: String| ExportError::BadAddress {
            addr: shown.clone(),
            why,
        };
        let addr =
            sys::sockaddr(path.as_os_str().as_bytes(), false).map_err(|e| bad(e.to_string()))?;
        if let Ok(md) = std::fs::symlink_metadata(path) {
            if !md.file_type().is_socket() {
                return Err(bad("exists and is not a socket".into()));
            }
            if sys::connect(&addr).is_ok() {
                return Err(bad("a live exporter listens there".into()));
            }
            let _ = std::fs::remove_file(path);
        }
        self.check()?;
        let listener = sys::listen(&addr).map_err(|source| ExportError::Io {
            op: "bind/listen",
            addr: Some(shown.clone()),
            source,
        })?;
        self.start(Some(listener), Some(path.to_path_buf()))
    }

    /// Listens at the abstract socket name `name` (Linux; no file, gone
    /// with the exporter; visible only inside this network namespace).
    pub fn bind_abstract(self, name: &str) -> Result<Exporter, ExportError> {
        let addr = sys::sockaddr(name.as_bytes(), true).map_err(|e| ExportError::BadAddress {
            addr: format!("@{name}"),
            why: e.to_string(),
        })?;
        self.check()?;
        let listener = sys::listen(&addr).map_err(|source| ExportError::Io {
            op: "bind/listen",
            addr: Some(format!("@{name}")),
            source,
        })?;
        self.start(Some(listener), None)
    }

    /// Listens nowhere: peers come only through
    /// [`Exporter::connect_pair`].
    pub fn unbound(self) -> Result<Exporter, ExportError> {
        self.check()?;
        self.start(None, None)
    }

    fn check(&self) -> Result<(), ExportError> {
        if self.ack_timeout < MIN_ACK_TIMEOUT {
            return Err(ExportError::AckTimeout {
                given: self.ack_timeout,
                min: MIN_ACK_TIMEOUT,
            });
        }
        let info = self.provider.info();
        let shareable = info.init_error.is_none()
            && matches!(info.source, PageSource::Memfd | PageSource::Hugetlbfs(_));
        if shareable && !self.provider.is_exportable() {
            Err(ExportError::NotExportable)
        } else if shareable {
            Ok(())
        } else {
            Err(ExportError::NotShareable {
                source: match info.init_error {
                    Some(e) => format!("provider not built: {e}"),
                    None => format!("{:?}", info.source),
                },
            })
        }
    }

    fn start(
        self,
        listener: Option<OwnedFd>,
        path: Option<PathBuf>,
    ) -> Result<Exporter, ExportError> {
        let io_err = |op| {
            move |source| ExportError::Io {
                op,
                addr: None,
                source,
            }
        };
        if let Some(l) = &listener {
            sys::set_nonblocking(l, true).map_err(io_err("fcntl (O_NONBLOCK)"))?;
        }
        let shared = Arc::new(Shared {
            provider: self.provider.clone(),
            cmds: Mutex::new(VecDeque::new()),
            wake: sys::eventfd().map_err(io_err("eventfd"))?,
            closed: Mutex::new(false),
            dead: AtomicBool::new(false),
            roles: Mutex::new(Vec::new()),
            dir: Mutex::new(BTreeMap::new()),
            next_pub: AtomicU64::new(1),
            ack_timeout: self.ack_timeout,
            max_peers: self.max_peers,
            users: self.users.clone(),
            io_thread: OnceLock::new(),
        });
        // Callbacks first, then the I/O thread's first look at the pages:
        // a page mapped or freed in between is told twice, never missed.
        let weak = Arc::downgrade(&shared);
        let alloc = self
            .provider
            .register_event_callback(move |e| {
                if e.kind != EventKind::Alloc || e.external {
                    return;
                }
                let Some(sh) = weak.upgrade() else {
                    return;
                };
                let done = Done::new();
                let cmd = Cmd::Map {
                    va: e.va,
                    len: e.len,
                    done: Some(done.clone()),
                };
                if sh.push(cmd).is_ok() && !sh.on_io_thread() {
                    // The I/O thread cuts off a peer after the ack timeout;
                    // the margin covers the sends before it.
                    done.wait(sh.ack_timeout * 2 + Duration::from_secs(1));
                }
            })
            .labeled("pktmem share: announce growth");
        let gate = super::io::register_gate(&self.provider, Arc::downgrade(&shared));
        let io = Io::new(shared.clone(), listener);
        let thread = std::thread::Builder::new()
            .name("pktmem-export".into())
            .spawn(move || io.run())
            .map_err(io_err("spawn (I/O thread)"))?;
        Ok(Exporter {
            shared,
            thread: Some(thread),
            path,
            guards: vec![alloc],
            gate: Some(gate),
        })
    }
}

// The exporter is used from any thread.
const _: () = {
    const fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Exporter>();
    is_send_sync::<Role>();
    is_send_sync::<Publication>();
};
