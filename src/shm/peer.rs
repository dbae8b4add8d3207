//! The peer's side: a shared pool opened from an attachment
//! ([`PeerPool`]), its private free list, and its port ([`PeerPort`]).

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::hugemem::share::Attachment;
use crate::hugemem::Iova;
use crate::ring::shared::{Desc, ShmConsumer, ShmProducer};
use crate::ring::Ring;

use super::buf::{Geometry, Home, Meta, Reject, SharedBuf};
use super::error::{AllocError, OpenError, PeerPortError};
use super::pool::{pool_entry, ENTRY_VERSION, POOL_HEADER_LEN, POOL_MAGIC};
use super::port::{PortEntry, Rejected, DOWN, LEND, PORT_ENTRY_LEN, RET, UP};

/// Descriptors moved per ring call.
const BATCH: usize = 32;

/// The pools open in this process: (exporter pid, pool base at the
/// exporter, role slot), one entry per live [`PeerCore`]. A second open of
/// the same key would attach a second lend consumer and return producer to
/// the same SPSC rings.
static OPEN: Mutex<Vec<(u32, u64, u16)>> = Mutex::new(Vec::new());

/// A key in [`OPEN`], removed on drop.
struct OpenMark((u32, u64, u16));

impl OpenMark {
    fn take(key: (u32, u64, u16)) -> Option<OpenMark> {
        let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
        if open.contains(&key) {
            return None;
        }
        open.push(key);
        Some(OpenMark(key))
    }
}

impl Drop for OpenMark {
    fn drop(&mut self) {
        OPEN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|k| *k != self.0);
    }
}
/// How long [`PeerPool::open`] waits for the entries and the grant.
pub const DEFAULT_OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// A peer's counters ([`PeerPool::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PeerStats {
    /// Buffers taken from the lend ring.
    pub borrowed: u64,
    /// Buffers given back through the return ring.
    pub returned: u64,
    /// Packets sent up.
    pub sent: u64,
    /// Packets received down (accepted).
    pub received: u64,
    /// Refused descriptors (`out_of_pool`, `bad_window`, `corrupt_ring`;
    /// ownership is the exporter's to check).
    pub rejected: Rejected,
}

#[derive(Default)]
struct Counters {
    borrowed: AtomicU64,
    returned: AtomicU64,
    sent: AtomicU64,
    received: AtomicU64,
    out_of_pool: AtomicU64,
    /// A buffer lent again while this process already had it.
    not_lent: AtomicU64,
    bad_window: AtomicU64,
    corrupt_ring: AtomicU64,
}

fn bump(c: &AtomicU64, n: u64) {
    // Relaxed: statistics, read only for reports.
    c.fetch_add(n, Ordering::Relaxed);
}

/// Local addresses of the port's rings.
#[derive(Clone, Copy)]
struct RingMem {
    ptr: NonNull<u8>,
    len: usize,
}

/// The peer's state of one pool: shared by the pool handles, its port and
/// every buffer out of it in this process.
pub(crate) struct PeerCore {
    pub(crate) geo: Geometry,
    /// Local start of buffer 0. Invariant: `local..local + geo.len()` is
    /// mapped while `att` lives (checked with `to_local` at open). The
    /// attachment unmaps a range only on the exporter's `Unmap`, which
    /// follows the exporter freeing it, and the exporter frees a pool's
    /// chunk only once no role that had a port on it has a holder that can
    /// still use it (its `Drop` parks the chunk until each has exited):
    /// this process, holding the role, keeps it mapped.
    local: NonNull<u8>,
    /// Free buffers of this process (each index at most once: it enters
    /// from a dropped handle or a validated lend descriptor).
    free: Ring<u32>,
    /// Buffers in this process's hands or free list (from the exporter and
    /// not yet returned or sent).
    held: AtomicUsize,
    /// Keep at most this many in `free`; the excess goes back.
    high_water: usize,
    lend: Mutex<ShmConsumer>,
    ret: Mutex<ShmProducer>,
    rings: [RingMem; 4],
    port_taken: AtomicBool,
    /// Set by [`PeerPool::abandon`]: dropped buffers are not given back.
    abandoned: AtomicBool,
    counters: Counters,
    /// This process's one open of the pool for the role (see [`OPEN`]).
    _open: OpenMark,
    /// The pool's directory entry, this role's slot and generation, and
    /// the rings' exporter VAs as opened: the port is withdrawn when the
    /// entry no longer has this record.
    entry: String,
    slot: u16,
    generation: u64,
    ring_vas: [u64; 4],
    /// Keeps the memory mapped (buffers and rings). Last: dropped after the
    /// ring ends.
    att: Arc<Attachment>,
}

// SAFETY: the raw pointers name shared memory reached only by volatile
// copies and the rings' atomics; everything else is Sync (atomics, Mutexes,
// the MPMC free list, the Attachment, which is Send + Sync).
unsafe impl Send for PeerCore {}
// SAFETY: as above.
unsafe impl Sync for PeerCore {}

impl PeerCore {
    fn ptr(&self, idx: u32) -> NonNull<u8> {
        debug_assert!(idx < self.geo.count);
        // SAFETY: `idx < count`: inside the mapped `geo.len()` bytes.
        unsafe { self.local.add(idx as usize * self.geo.stride as usize) }
    }

    pub(crate) fn iova(&self, exp_va: u64) -> Option<Iova> {
        self.att.iova(exp_va)
    }

    fn handle(self: &Arc<Self>, idx: u32, meta: Meta) -> SharedBuf {
        // SAFETY: `ptr(idx)` is buffer `idx`, mapped while the core lives
        // (the handle keeps it); the index came out of this side's free list
        // or a validated down descriptor, so no other handle here has it;
        // `meta` was checked against the geometry.
        unsafe { SharedBuf::from_parts(self.ptr(idx), Home::Peer(Arc::clone(self)), idx, meta) }
    }

    fn fresh_meta(&self) -> Meta {
        Meta {
            off: self.geo.headroom,
            len: 0,
            flags: 0,
        }
    }

    fn put_free(&self, idx: u32) {
        let _ = self.put_new(idx);
    }

    /// Puts a buffer just received in the free list; `false` when the list
    /// was full: the exporter lent one buffer twice (`count` slots, each
    /// index at most once otherwise: the field invariant), and the extra is
    /// dropped.
    fn put_new(&self, idx: u32) -> bool {
        self.free.enqueue(idx).is_ok()
    }

    /// Whether the exporter withdrew the pool or this port (its entry
    /// gone, or no longer naming these rings for this generation). A
    /// directory lookup: for slow paths only.
    fn withdrawn(&self) -> bool {
        let Some(raw) = self.att.lookup(&self.entry) else {
            return true;
        };
        !parse_pool(&self.entry, &raw).is_ok_and(|(g, ports)| {
            g == self.geo
                && port_of(&ports, self.slot)
                    .is_some_and(|p| p.rings == self.ring_vas && p.granted == self.generation)
        })
    }

    fn is_abandoned(&self) -> bool {
        // Relaxed: a flag that only stops give-backs; nothing is published
        // with it.
        self.abandoned.load(Ordering::Relaxed)
    }

    /// A handle was dropped in this process.
    pub(crate) fn put(&self, idx: u32) {
        if self.is_abandoned() {
            return;
        }
        self.put_free(idx);
        if self.free.len() > self.high_water {
            // Never block a drop: whoever holds the lock flushes later.
            if let Ok(mut ret) = self.ret.try_lock() {
                self.flush(&mut ret, self.free.len() - self.high_water / 2);
            }
        }
    }

    /// Gives up to `n` free buffers back through the return ring.
    fn flush(&self, ret: &mut ShmProducer, n: usize) {
        let mut descs = [Desc::default(); BATCH];
        let mut left = n;
        while left > 0 {
            let mut k = 0;
            while k < left.min(BATCH) {
                let Some(idx) = self.free.dequeue() else {
                    break;
                };
                descs[k] = Desc {
                    addr: self.geo.addr(idx),
                    meta: 0,
                };
                k += 1;
            }
            if k == 0 {
                return;
            }
            let sent = ret.enqueue_burst(&descs[..k]).unwrap_or_else(|_| {
                bump(&self.counters.corrupt_ring, 1);
                0
            });
            for d in &descs[sent..k] {
                // Valid by construction: we made them from indices.
                self.put_free(((d.addr - self.geo.base) / u64::from(self.geo.stride)) as u32);
            }
            // Relaxed: a count for reports and the allocation error.
            self.held.fetch_sub(sent, Ordering::Relaxed);
            bump(&self.counters.returned, sent as u64);
            if sent < k {
                return;
            }
            left -= k;
        }
    }

    /// Takes a batch from the lend ring into the free list; returns how
    /// many descriptors it read (the valid ones went to the free list).
    fn borrow(&self) -> Result<usize, AllocError> {
        let mut lend = self.lend.lock().unwrap_or_else(PoisonError::into_inner);
        let mut descs = [Desc::default(); BATCH];
        let got = lend.dequeue_burst(&mut descs).map_err(|e| {
            bump(&self.counters.corrupt_ring, 1);
            AllocError::Ring(e)
        })?;
        drop(lend);
        let mut n = 0;
        for d in &descs[..got] {
            match self.geo.index(d.addr) {
                Ok(idx) if self.put_new(idx) => n += 1,
                // Lent twice: not counted as held (review N4).
                Ok(_) => bump(&self.counters.not_lent, 1),
                Err(_) => bump(&self.counters.out_of_pool, 1),
            }
        }
        // Relaxed: as in `flush`.
        self.held.fetch_add(n, Ordering::Relaxed);
        bump(&self.counters.borrowed, n as u64);
        Ok(n)
    }
}

impl Drop for PeerCore {
    fn drop(&mut self) {
        // A clean exit gives everything back (a killed process does not:
        // the exporter reclaims it).
        let core: &PeerCore = self;
        if core.is_abandoned() {
            return;
        }
        let mut ret = core.ret.lock().unwrap_or_else(PoisonError::into_inner);
        core.flush(&mut ret, core.free.len());
    }
}

/// A shared pool opened in a peer process.
///
/// Buffers come from a private free list, refilled in batches from the
/// lend ring the exporter keeps stocked; dropped buffers go back to that
/// list, and the excess goes back to the exporter through the return ring.
/// Every descriptor from the exporter is checked against the pool's
/// geometry before a byte behind it is touched. Cheap to clone.
///
/// A peer process attaches by socket path (`Attachment::builder("worker")
/// .connect(path)`); here a thread of the same process stands in for it,
/// over a socket pair:
///
/// ```
/// use std::sync::Arc;
/// use pktmem::hugemem::share::{Attachment, Exporter};
/// use pktmem::hugemem::Provider;
/// use pktmem::shm::{PeerPool, PortConfig, SharedPool};
/// let provider = Provider::builder().exportable().quiet(true).build()?;
/// let exporter = Exporter::builder(&provider).unbound()?;
/// let pool = SharedPool::builder(256, 2048).build(&exporter)?;
/// let mut port = pool.port(&exporter.role("worker")?, PortConfig::default().lend(32))?;
/// let fd = exporter.connect_pair()?;
/// let peer = std::thread::spawn(move || -> Result<(), pktmem::shm::ShmError> {
///     let att = Arc::new(Attachment::builder("worker").from_fd(fd).expect("attach"));
///     let pool = PeerPool::open(&att, "pkts")?; // waits for the exporter's grant
///     let mut port = pool.port()?;
///     let mut b = pool.alloc()?; // from the lend ring, through a local cache
///     b.extend_from(b"hi")?;
///     assert_eq!(port.send_burst(&mut vec![b]), 1);
///     Ok(())
/// });
/// let mut inbox = Vec::new();
/// while inbox.is_empty() {
///     port.service(); // grants the peer's generation, keeps lending
///     port.recv_burst(&mut inbox, 8);
/// }
/// peer.join().unwrap()?;
/// assert_eq!(inbox[0].copy_to_vec(), b"hi");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct PeerPool {
    core: Arc<PeerCore>,
}

impl fmt::Debug for PeerPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerPool")
            .field("geometry", &self.core.geo)
            .field("free", &self.core.free.len())
            .finish_non_exhaustive()
    }
}

/// A pool entry: the geometry and the port records.
fn parse_pool(entry: &str, b: &[u8]) -> Result<(Geometry, Vec<PortEntry>), OpenError> {
    let bad = |field, value| OpenError::BadEntry {
        entry: entry.to_owned(),
        field,
        value,
    };
    if b.len() < POOL_HEADER_LEN {
        return Err(bad("length", b.len() as u64));
    }
    let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
    if u32_at(0) != POOL_MAGIC {
        return Err(bad("magic", u32_at(0).into()));
    }
    if u32_at(4) != ENTRY_VERSION {
        return Err(OpenError::Version {
            entry: entry.to_owned(),
            theirs: u32_at(4),
            ours: ENTRY_VERSION,
        });
    }
    let g = Geometry {
        base: u64::from_le_bytes(b[8..16].try_into().expect("8 bytes")),
        count: u32_at(16),
        stride: u32_at(20),
        data_room: u32_at(24),
        headroom: u32_at(28),
    };
    g.check().map_err(|(field, value)| bad(field, value))?;
    let n = u32_at(32) as usize;
    if b.len() != POOL_HEADER_LEN + n * PORT_ENTRY_LEN {
        return Err(bad("length", b.len() as u64));
    }
    let ports = b[POOL_HEADER_LEN..]
        .chunks_exact(PORT_ENTRY_LEN)
        .map(PortEntry::decode)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|(field, value)| bad(field, value))?;
    Ok((g, ports))
}

/// The record of role slot `slot` in a pool entry, if any.
fn port_of(ports: &[PortEntry], slot: u16) -> Option<PortEntry> {
    ports.iter().find(|p| p.slot == u32::from(slot)).copied()
}

impl PeerPool {
    /// Opens pool `name` over `attachment`, waiting up to
    /// [`DEFAULT_OPEN_TIMEOUT`] for its entries and for the exporter to
    /// grant this attachment's generation of the role (it does so after it
    /// reclaimed what a dead predecessor held).
    pub fn open(attachment: &Arc<Attachment>, name: &str) -> Result<PeerPool, OpenError> {
        Self::open_timeout(attachment, name, DEFAULT_OPEN_TIMEOUT)
    }

    /// [`open`](Self::open) with a timeout of your own.
    pub fn open_timeout(
        attachment: &Arc<Attachment>,
        name: &str,
        timeout: Duration,
    ) -> Result<PeerPool, OpenError> {
        let att = attachment;
        let start = Instant::now();
        let pe = pool_entry(name);
        let slot = att.role_slot();
        let want = att.generation();
        // The entry, once it grants this generation (or a later one: then
        // this attachment is stale).
        let granted = |b: &[u8]| {
            parse_pool(&pe, b)
                .ok()
                .and_then(|(_, ports)| port_of(&ports, slot))
                .is_some_and(|p| p.granted >= want)
        };
        let Some(raw) = att.wait_for(&pe, timeout, granted) else {
            if !att.is_connected() {
                return Err(OpenError::ExporterGone);
            }
            let Some(raw) = att.lookup(&pe) else {
                return Err(OpenError::NotPublished { entry: pe });
            };
            let (_, ports) = parse_pool(&pe, &raw)?;
            return Err(OpenError::Timeout {
                entry: pe,
                waited: start.elapsed(),
                want,
                granted: port_of(&ports, slot).map_or(0, |p| p.granted),
            });
        };
        let (geo, ports) = parse_pool(&pe, &raw)?;
        let entry =
            port_of(&ports, slot).ok_or_else(|| OpenError::NotPublished { entry: pe.clone() })?;
        if entry.granted != want {
            // A later generation holds the role: this attachment is stale.
            return Err(OpenError::Timeout {
                entry: pe,
                waited: start.elapsed(),
                want,
                granted: entry.granted,
            });
        }
        if !entry.capacity.is_power_of_two() {
            return Err(OpenError::BadEntry {
                entry: pe,
                field: "capacity",
                value: entry.capacity.into(),
            });
        }
        let local = att
            .to_local(geo.base, geo.len() as usize)
            .ok_or(OpenError::NotMapped {
                what: "pool buffers",
                va: geo.base,
                len: geo.len(),
            })?;
        let mut rings = [RingMem {
            ptr: NonNull::dangling(),
            len: 0,
        }; 4];
        for (i, va) in entry.rings.iter().enumerate() {
            let len = usize::try_from(entry.ring_bytes).unwrap_or(usize::MAX);
            let ptr = att.to_local(*va, len).ok_or(OpenError::NotMapped {
                what: "port ring",
                va: *va,
                len: entry.ring_bytes,
            })?;
            rings[i] = RingMem { ptr, len };
        }
        let mark = OpenMark::take((att.exporter_pid(), geo.base, slot)).ok_or_else(|| {
            OpenError::AlreadyOpen {
                entry: pe.clone(),
                slot,
            }
        })?;
        // SAFETY: the rings are mapped while `att` lives, which the core
        // keeps (the exporter frees a port's rings only once the role's
        // holder, this process, exited: the port's `Drop` parks them until
        // then); the exporter granted this generation, so no earlier holder
        // of the role uses these ends any more (it exited), and this
        // process has one lend consumer and one return producer per pool
        // and role: `mark`, held by the core, is the one entry of `OPEN`
        // for them.
        let lend = unsafe { ShmConsumer::attach(rings[LEND].ptr, rings[LEND].len) }
            .map_err(OpenError::Ring)?;
        // SAFETY: as for the lend consumer, for the return producer.
        let ret = unsafe { ShmProducer::attach(rings[RET].ptr, rings[RET].len) }
            .map_err(OpenError::Ring)?;
        let free = Ring::new(geo.count as usize).map_err(|_| OpenError::BadEntry {
            entry: pe.clone(),
            field: "count",
            value: geo.count.into(),
        })?;
        Ok(PeerPool {
            core: Arc::new(PeerCore {
                geo,
                att: Arc::clone(att),
                local,
                free,
                held: AtomicUsize::new(0),
                high_water: (entry.lend as usize).max(2 * BATCH),
                lend: Mutex::new(lend),
                ret: Mutex::new(ret),
                rings,
                port_taken: AtomicBool::new(false),
                abandoned: AtomicBool::new(false),
                counters: Counters::default(),
                _open: mark,
                entry: pe,
                slot,
                generation: want,
                ring_vas: entry.rings,
            }),
        })
    }

    /// Whether the exporter withdrew the pool or this role's port since
    /// it was opened (the pool's entry gone, or its record no longer naming
    /// these rings for this generation). The memory stays mapped and is
    /// never reused while this process holds the role (the exporter parks
    /// it), so buffers in hand stay readable; no more loans or packets
    /// come. A directory lookup (a lock and a copy of the entry): poll it
    /// on slow paths. [`alloc`](Self::alloc) with nothing left and
    /// [`port`](Self::port) check it themselves.
    pub fn is_withdrawn(&self) -> bool {
        self.core.withdrawn()
    }

    /// Buffers of the pool.
    pub fn count(&self) -> u32 {
        self.core.geo.count
    }

    /// Usable bytes per buffer.
    pub fn data_room(&self) -> usize {
        self.core.geo.data_room as usize
    }

    /// The attachment the pool lives in.
    pub fn attachment(&self) -> &Arc<Attachment> {
        &self.core.att
    }

    /// A buffer: from the local free list, else from the lend ring.
    pub fn alloc(&self) -> Result<SharedBuf, AllocError> {
        loop {
            if let Some(idx) = self.core.free.dequeue() {
                return Ok(self.core.handle(idx, self.core.fresh_meta()));
            }
            if self.core.borrow()? == 0 {
                if self.core.withdrawn() {
                    return Err(AllocError::Withdrawn {
                        entry: self.core.entry.clone(),
                    });
                }
                return Err(AllocError::Exhausted {
                    total: self.core.geo.count,
                    // Relaxed: a snapshot for the message.
                    out: self.core.held.load(Ordering::Relaxed),
                });
            }
        }
    }

    /// Up to `n` buffers appended to `out`; returns how many.
    pub fn alloc_burst(&self, out: &mut Vec<SharedBuf>, n: usize) -> usize {
        let mut got = 0;
        while got < n {
            match self.alloc() {
                Ok(b) => out.push(b),
                Err(_) => break,
            }
            got += 1;
        }
        got
    }

    /// Gives the free buffers above the high-water mark back to the
    /// exporter now (drops do this by themselves when they can take the
    /// return ring's lock without waiting); `all` gives back every free
    /// buffer.
    pub fn flush(&self, all: bool) {
        let mut ret = self.core.ret.lock().unwrap_or_else(PoisonError::into_inner);
        let free = self.core.free.len();
        let n = if all {
            free
        } else {
            free.saturating_sub(self.core.high_water / 2)
        };
        self.core.flush(&mut ret, n);
    }

    /// Stops giving anything back, as a crash would: buffers dropped from
    /// now on and the local free list stay with this process as far as the
    /// exporter's ledger is concerned, until the exporter reclaims them
    /// (when this role's process exited, a new generation attached, or
    /// [`Port::reclaim_as_exited`](super::Port::reclaim_as_exited)). For
    /// tests and drills of the crash path without killing a process.
    pub fn abandon(&self) {
        // Relaxed: see `is_abandoned`.
        self.core.abandoned.store(true, Ordering::Relaxed);
    }

    /// Buffers in this process's free list.
    pub fn free_count(&self) -> usize {
        self.core.free.len()
    }

    /// Buffers this process holds (free list, hands) and has not returned
    /// or sent.
    pub fn held(&self) -> usize {
        // Relaxed: a snapshot.
        self.core.held.load(Ordering::Relaxed)
    }

    /// The counters.
    pub fn stats(&self) -> PeerStats {
        let c = &self.core.counters;
        // Relaxed: statistics.
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PeerStats {
            borrowed: l(&c.borrowed),
            returned: l(&c.returned),
            sent: l(&c.sent),
            received: l(&c.received),
            rejected: Rejected {
                out_of_pool: l(&c.out_of_pool),
                not_lent: l(&c.not_lent),
                bad_window: l(&c.bad_window),
                corrupt_ring: l(&c.corrupt_ring),
                ..Rejected::default()
            },
        }
    }

    /// This role's packet port: the down ring's consumer and the up ring's
    /// producer, resumed at their published indices. One at a time per
    /// pool in a process.
    pub fn port(&self) -> Result<PeerPort, PeerPortError> {
        if self.core.withdrawn() {
            return Err(PeerPortError::Withdrawn {
                entry: self.core.entry.clone(),
            });
        }
        // AcqRel: Acquire pairs with the Release store in `PeerPort::drop`
        // (the previous port's ends are gone); Release orders nothing else.
        if self.core.port_taken.swap(true, Ordering::AcqRel) {
            return Err(PeerPortError::Taken);
        }
        let r = self.core.rings;
        // SAFETY: the rings are mapped while the core lives (the port keeps
        // it; the exporter parks a dropped port's rings until this role's
        // holder exited, see `PeerCore::local`); the flag makes these the process's only down consumer and up
        // producer; the exporter granted this generation at open.
        let down = unsafe { ShmConsumer::attach(r[DOWN].ptr, r[DOWN].len) };
        // SAFETY: as above.
        let up = unsafe { ShmProducer::attach(r[UP].ptr, r[UP].len) };
        match (down, up) {
            (Ok(down), Ok(up)) => Ok(PeerPort {
                core: Arc::clone(&self.core),
                down,
                up,
                scratch: Vec::with_capacity(BATCH),
            }),
            (Err(e), _) | (_, Err(e)) => {
                bump(&self.core.counters.corrupt_ring, 1);
                // Release: pairs with the Acquire swap above.
                self.core.port_taken.store(false, Ordering::Release);
                Err(PeerPortError::Ring(e))
            }
        }
    }
}

/// A peer's packet port: receives what the exporter sends down, sends up.
pub struct PeerPort {
    down: ShmConsumer,
    up: ShmProducer,
    scratch: Vec<Desc>,
    /// Last: keeps the rings mapped until the ends are gone.
    core: Arc<PeerCore>,
}

impl fmt::Debug for PeerPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerPort")
            .field("geometry", &self.core.geo)
            .finish_non_exhaustive()
    }
}

impl PeerPort {
    /// Sends packets to the exporter: takes buffers from the front of
    /// `bufs` (as many as the up ring has room for, up to the first that is
    /// not of this pool's peer side) and returns how many left.
    pub fn send_burst(&mut self, bufs: &mut Vec<SharedBuf>) -> usize {
        let Ok(room) = self.up.free_space() else {
            bump(&self.core.counters.corrupt_ring, 1);
            return 0;
        };
        let room = room as usize;
        let n = bufs
            .iter()
            .take(room)
            .take_while(|b| b.home().is_peer(&self.core))
            .count();
        self.scratch.clear();
        let mut idxs = Vec::with_capacity(n);
        for b in bufs.drain(..n) {
            let (d, idx) = b.into_desc();
            self.scratch.push(d);
            idxs.push(idx);
        }
        if n > 0 && self.up.enqueue_bulk(&self.scratch).is_err() {
            bump(&self.core.counters.corrupt_ring, 1);
            // Not sent: back to the free list (the packets are dropped).
            for idx in idxs {
                self.core.put_free(idx);
            }
            return 0;
        }
        // Relaxed: as in `flush`.
        self.core.held.fetch_sub(n, Ordering::Relaxed);
        bump(&self.core.counters.sent, n as u64);
        n
    }

    /// Receives up to `max` packets into `out`; returns how many. Each
    /// descriptor is checked (a buffer start of this pool, window inside
    /// it) before it becomes a [`SharedBuf`].
    pub fn recv_burst(&mut self, out: &mut Vec<SharedBuf>, max: usize) -> usize {
        let mut n = 0;
        while n < max {
            let want = (max - n).min(BATCH);
            self.scratch.clear();
            self.scratch.resize(want, Desc::default());
            let Ok(got) = self.down.dequeue_burst(&mut self.scratch) else {
                bump(&self.core.counters.corrupt_ring, 1);
                break;
            };
            for i in 0..got {
                let d = self.scratch[i];
                match self.core.geo.decode(d) {
                    Ok((idx, meta)) => {
                        out.push(self.core.handle(idx, meta));
                        n += 1;
                    }
                    Err(Reject::OutOfPool) => bump(&self.core.counters.out_of_pool, 1),
                    Err(Reject::BadWindow) => {
                        bump(&self.core.counters.bad_window, 1);
                        // Ours (lent with the packet): keep the buffer.
                        if let Ok(idx) = self.core.geo.index(d.addr) {
                            self.core.put_free(idx);
                            // Relaxed: as in `flush`.
                            self.core.held.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            if got < want {
                break;
            }
        }
        // Relaxed: as in `flush`.
        self.core.held.fetch_add(n, Ordering::Relaxed);
        bump(&self.core.counters.received, n as u64);
        n
    }
}

impl Drop for PeerPort {
    fn drop(&mut self) {
        // Release: pairs with the Acquire swap in `PeerPool::port`.
        self.core.port_taken.store(false, Ordering::Release);
    }
}
