//! The exporter's port for one peer role: four rings in exported memory,
//! lending, packets both ways, reclaim after the role's process exited, and
//! the grant of each new generation.

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;

use crate::hugemem::share::{Role, RoleState};
use crate::hugemem::{AllocRequest, SharedChunk};
use crate::ring::shared::{
    init_shm_ring, shm_ring_bytes, shm_ring_indices, shm_ring_read_slot, Desc, ShmConsumer,
    ShmProducer, ShmRingError,
};

use super::buf::{Reject, SharedBuf};
use super::error::PortError;
use super::ledger::{IndexSet, TakeBack};
use super::park::park;
use super::pool::{PoolCore, ENTRY_VERSION};

/// `"SHPT"`: a port entry.
pub(crate) const PORT_MAGIC: u32 = 0x5450_4853;
/// Bytes of a port entry.
pub(crate) const PORT_ENTRY_LEN: usize = 72;
/// Ring order in the port's memory and entry.
pub(crate) const LEND: usize = 0;
pub(crate) const RET: usize = 1;
pub(crate) const DOWN: usize = 2;
pub(crate) const UP: usize = 3;
/// Largest ring capacity.
const MAX_RING: u32 = 1 << 24;
/// Descriptors moved per ring call.
const BATCH: usize = 64;

/// A port's record in the pool's directory entry (little-endian, [`PORT_ENTRY_LEN`] bytes):
/// magic u32, version u32, granted generation u64, role slot u32, ring
/// capacity u32, bytes per ring u64, the four rings' exporter VAs u64
/// (lend, return, down, up), lend target u32, reserved u32.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PortEntry {
    pub granted: u64,
    pub slot: u32,
    pub capacity: u32,
    pub ring_bytes: u64,
    pub rings: [u64; 4],
    pub lend: u32,
}

impl PortEntry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(PORT_ENTRY_LEN);
        v.extend_from_slice(&PORT_MAGIC.to_le_bytes());
        v.extend_from_slice(&ENTRY_VERSION.to_le_bytes());
        v.extend_from_slice(&self.granted.to_le_bytes());
        v.extend_from_slice(&self.slot.to_le_bytes());
        v.extend_from_slice(&self.capacity.to_le_bytes());
        v.extend_from_slice(&self.ring_bytes.to_le_bytes());
        for r in self.rings {
            v.extend_from_slice(&r.to_le_bytes());
        }
        v.extend_from_slice(&self.lend.to_le_bytes());
        v.extend_from_slice(&0u32.to_le_bytes());
        debug_assert_eq!(v.len(), PORT_ENTRY_LEN);
        v
    }

    /// Parses an entry; `Err` names the field that is wrong (the version
    /// field is reported with its value).
    pub(crate) fn decode(b: &[u8]) -> Result<PortEntry, (&'static str, u64)> {
        if b.len() != PORT_ENTRY_LEN {
            return Err(("length", b.len() as u64));
        }
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().expect("4 bytes"));
        let u64_at = |o: usize| u64::from_le_bytes(b[o..o + 8].try_into().expect("8 bytes"));
        if u32_at(0) != PORT_MAGIC {
            return Err(("magic", u32_at(0).into()));
        }
        if u32_at(4) != ENTRY_VERSION {
            return Err(("version", u32_at(4).into()));
        }
        Ok(PortEntry {
            granted: u64_at(8),
            slot: u32_at(16),
            capacity: u32_at(20),
            ring_bytes: u64_at(24),
            rings: [u64_at(32), u64_at(40), u64_at(48), u64_at(56)],
            lend: u32_at(64),
        })
    }
}

/// A port's geometry: ring capacity and how many buffers it keeps lent.
///
/// ```
/// use pktmem::shm::PortConfig;
/// let c = PortConfig::default().lend(128).rings(512);
/// assert_eq!((c.lend_target(), c.ring_capacity()), (128, 512));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct PortConfig {
    lend: u32,
    rings: u32,
}

impl Default for PortConfig {
    /// Lend 256, rings of 1024.
    fn default() -> Self {
        PortConfig {
            lend: 256,
            rings: 1024,
        }
    }
}

impl PortConfig {
    /// How many free buffers [`Port::service`] keeps in the lend ring for
    /// the peer to allocate from (at most the ring capacity and the pool).
    pub fn lend(mut self, n: u32) -> Self {
        self.lend = n;
        self
    }

    /// Capacity of each of the four rings (a power of two, 2..=2^24).
    pub fn rings(mut self, capacity: u32) -> Self {
        self.rings = capacity;
        self
    }

    /// The lend target.
    pub fn lend_target(&self) -> u32 {
        self.lend
    }

    /// The ring capacity.
    pub fn ring_capacity(&self) -> u32 {
        self.rings
    }
}

/// Descriptors refused, by why. Each refused descriptor is counted once
/// and no byte behind it is touched.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejected {
    /// A buffer of this pool the ledger says the sender does not hold
    /// (returned or sent twice, or never lent).
    pub not_lent: u64,
    /// A buffer lent to another role.
    pub other_role: u64,
    /// An address that is not a buffer start of this pool (outside it, or
    /// inside a buffer).
    pub out_of_pool: u64,
    /// A data window past the buffer's data room (the buffer itself, when
    /// it was the sender's, is taken back to the free list).
    pub bad_window: u64,
    /// Ring indices the other side corrupted (the ring is not used again
    /// until its peer exits; reclaim then lays it out afresh).
    pub corrupt_ring: u64,
}

impl Rejected {
    /// All refusals.
    pub fn total(&self) -> u64 {
        self.not_lent + self.other_role + self.out_of_pool + self.bad_window + self.corrupt_ring
    }
}

/// A port's counters ([`Port::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PortStats {
    /// Buffers put in the lend ring.
    pub lent: u64,
    /// Buffers taken back from the return ring.
    pub returned: u64,
    /// Packets sent down.
    pub sent: u64,
    /// Packets received up (accepted).
    pub received: u64,
    /// Refused descriptors.
    pub rejected: Rejected,
    /// Buffers reclaimed from exited holders of the role.
    pub reclaimed: u64,
    /// Buffers left queued in the rings for the restarted peer at reclaim
    /// (lend and down entries not yet consumed, up entries not yet received).
    pub resumed_in_rings: u64,
    /// Reclaims run (one per exited holder).
    pub reclaims: u64,
    /// The generation of the role granted last (0: none yet).
    pub granted: u64,
}

/// What the exporter enqueued at one position of an E→P ring (its
/// private copy).
#[derive(Clone, Copy, Default)]
struct Shadow {
    idx: u32,
    meta: u64,
}

/// One ring of the port: its memory in the ring chunk.
#[derive(Clone, Copy)]
struct RingMem {
    ptr: NonNull<u8>,
    len: usize,
}

/// The exporter's end of one role's rings, and the lending to it.
///
/// Made by [`SharedPool::port`](super::SharedPool::port). One thread drives
/// it (`&mut self` methods): call [`service`](Self::service) regularly — it
/// takes back returned buffers, keeps the lend ring at its target, and
/// notices the role's process exiting (then reclaims exactly what it held
/// and grants the next generation, so a restarted peer resumes at the
/// rings' published indices).
///
/// Dropping the port withdraws its entry; buffers still lent to the role
/// are reclaimed then if its process has exited, and stay counted as lent
/// otherwise (a later port for the role continues from the generation
/// this one granted and reclaims them once that holder exited). The ring
/// memory goes back to the provider only when no holder of the role can
/// use it any more: while the role's holder has not been seen to exit
/// (`Attached` or `Gone`), the memory of the port stays mapped, unused,
/// until it has exited (or the exporter and every handle of the role are
/// gone). A peer that keeps using the rings then sees the old memory,
/// never someone else's.
pub struct Port {
    pool: Arc<PoolCore>,
    role: Role,
    slot: u32,
    config: PortConfig,
    rings: [RingMem; 4],
    entry: PortEntry,
    lend: ShmProducer,
    /// `lend_shadow[pos & mask]`: the buffer enqueued at lend position
    /// `pos` (exporter-private: what the successor of a dead holder is
    /// given back is read from here, never from the shared slots).
    lend_shadow: Box<[Shadow]>,
    ret: ShmConsumer,
    down: ShmProducer,
    /// As `lend_shadow`, for the down ring (with each packet's window).
    down_shadow: Box<[Shadow]>,
    up: ShmConsumer,
    /// The generation whose holder's buffers were reclaimed last.
    reclaimed: u64,
    /// The process granted `entry.granted` (`None`: none granted yet).
    holder: Option<u32>,
    /// A ring was found corrupt: the rings are left alone until reclaim.
    broken: bool,
    /// The port's record is in the pool's entry (removed on drop).
    registered: bool,
    stats: PortStats,
    scratch: Vec<Desc>,
    /// The rings' memory (exported, peer-writable: reached only by the
    /// ring ends' atomics). Always `Some` until drop, which frees it only
    /// once no holder of the role can use it (else parks it).
    mem: Option<SharedChunk>,
}

// SAFETY: the only non-`Send` fields are the `RingMem` pointers, which
// point into `mem`, a chunk the port owns and moves with it; the ring ends
// are `Send`, the rest is owned data and Arcs of `Sync` cores.
unsafe impl Send for Port {}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("pool", &self.pool.name)
            .field("role", &self.role.name())
            .field("slot", &self.slot)
            .field("config", &self.config)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Lays out ring `m` afresh.
fn init_ring(m: RingMem, capacity: u32) -> Result<(), ShmRingError> {
    // SAFETY: `m` is one of the port's rings, inside its chunk, which the
    // port owns; no end of it is live on this side while it is laid out,
    // and the peer's ends are either not yet granted or exited.
    unsafe { init_shm_ring(m.ptr, m.len, capacity) }
}

fn producer(m: RingMem) -> Result<ShmProducer, ShmRingError> {
    // SAFETY: the memory is the port's ring, mapped while the port (which
    // will own the end) lives; this is the ring's only producer end on the
    // exporter side.
    unsafe { ShmProducer::attach(m.ptr, m.len) }
}

fn consumer(m: RingMem) -> Result<ShmConsumer, ShmRingError> {
    // SAFETY: as in `producer`, for the ring's only consumer end here.
    unsafe { ShmConsumer::attach(m.ptr, m.len) }
}

impl Port {
    pub(crate) fn new(
        pool: &Arc<PoolCore>,
        role: &Role,
        config: PortConfig,
    ) -> Result<Port, PortError> {
        let cap = config.rings;
        if !cap.is_power_of_two() || !(2..=MAX_RING).contains(&cap) {
            return Err(PortError::RingCapacity { capacity: cap });
        }
        if config.lend == 0 || config.lend > cap || config.lend > pool.geo.count {
            return Err(PortError::LendTarget {
                lend: config.lend,
                capacity: cap,
                buffers: pool.geo.count,
            });
        }
        if pool.has_port(u32::from(role.slot())) {
            return Err(PortError::RoleTaken {
                role: role.name().to_owned(),
            });
        }
        let slot = u32::from(role.slot());
        let one = shm_ring_bytes(cap).next_multiple_of(128);
        let mem = pool
            .provider()
            .alloc_shared(&AllocRequest::new(4 * one))
            .map_err(PortError::Alloc)?;
        let rings: [RingMem; 4] = std::array::from_fn(|i| RingMem {
            // SAFETY: `i * one < 4 * one`, the chunk's length.
            ptr: unsafe { mem.as_ptr().add(i * one) },
            len: one,
        });
        for r in rings {
            init_ring(r, cap).map_err(PortError::Ring)?;
        }
        // A predecessor's grant continues: its holder's buffers (still lent
        // to the slot) are reclaimed once that holder exited.
        let (granted, reclaimed, holder) = pool.past_grant(slot);
        let entry = PortEntry {
            granted,
            slot,
            capacity: cap,
            ring_bytes: one as u64,
            rings: rings.map(|r| r.ptr.as_ptr() as u64),
            lend: config.lend,
        };
        let mut port = Port {
            pool: Arc::clone(pool),
            role: role.clone(),
            slot,
            config,
            lend: producer(rings[LEND]).map_err(PortError::Ring)?,
            ret: consumer(rings[RET]).map_err(PortError::Ring)?,
            down: producer(rings[DOWN]).map_err(PortError::Ring)?,
            up: consumer(rings[UP]).map_err(PortError::Ring)?,
            mem: Some(mem),
            rings,
            entry,
            lend_shadow: vec![Shadow::default(); cap as usize].into_boxed_slice(),
            down_shadow: vec![Shadow::default(); cap as usize].into_boxed_slice(),
            reclaimed,
            holder,
            broken: false,
            registered: false,
            stats: PortStats {
                granted,
                ..PortStats::default()
            },
            scratch: Vec::with_capacity(BATCH),
        };
        match pool.add_port(role, entry) {
            Ok(true) => port.registered = true,
            Ok(false) => {
                return Err(PortError::RoleTaken {
                    role: role.name().to_owned(),
                })
            }
            Err(e) => return Err(PortError::Publish(e)),
        }
        port.refill();
        Ok(port)
    }

    /// The role this port serves.
    pub fn role(&self) -> &Role {
        &self.role
    }

    /// The port's configuration.
    pub fn config(&self) -> PortConfig {
        self.config
    }

    /// The counters.
    pub fn stats(&self) -> PortStats {
        self.stats
    }

    fn mask(&self) -> u64 {
        u64::from(self.config.rings) - 1
    }

    fn ring_fault(&mut self) {
        self.stats.rejected.corrupt_ring += 1;
        self.broken = true;
    }

    /// One round of upkeep; returns whether anything moved. In order: if
    /// the process granted the role last has exited and its buffers were
    /// not reclaimed yet, reclaim them; grant the role's current generation
    /// once reclaimed; take back what the return ring holds; top the lend
    /// ring up to its target.
    ///
    /// A new generation alone is not an exit: the exporter grants the role
    /// again to the *same* process while its old connection is merely
    /// `Gone` (it reconnected), and that process may still hold the old
    /// generation's pool with buffers in its cache and hands. Its new
    /// generation is therefore granted only once it has exited (which a
    /// restarted process has), or once you call
    /// [`reclaim_as_exited`](Self::reclaim_as_exited) knowing its old
    /// objects are gone; until then its new
    /// [`PeerPool::open`](super::PeerPool::open) waits and times out with a
    /// typed error.
    pub fn service(&mut self) -> bool {
        let mut moved = false;
        let state = self.role.state();
        let generation = self.role.generation();
        let granted = self.entry.granted;
        if granted != 0 && self.reclaimed < granted && self.holder_exited(state) {
            moved |= self.reclaim() > 0;
        }
        let state = self.role.state();
        if generation > granted && (granted == 0 || self.reclaimed == granted) {
            // Grant only with the new holder known (the state follows the
            // generation's increment by a moment).
            if let RoleState::Attached { pid } | RoleState::Gone { pid } = state {
                if self.role.generation() == generation {
                    self.grant(generation, pid);
                    moved = true;
                }
            }
        }
        if !self.broken {
            moved |= self.drain_returns().is_some_and(|n| n > 0);
            moved |= self.refill() > 0;
        }
        moved
    }

    /// Whether the process granted the role last can no longer use what it
    /// was given, by the role's state now: it exited (or left with `Bye`
    /// and went: `Vacant`), or another process holds the role (which the
    /// exporter grants only after the old holder exited).
    fn holder_exited(&self, state: RoleState) -> bool {
        match state {
            RoleState::Exited { .. } | RoleState::Vacant => true,
            RoleState::Attached { pid } | RoleState::Gone { pid } => {
                self.holder.is_some_and(|h| h != pid)
            }
        }
    }

    /// Publishes that generation `g` of the role, held by process `pid`,
    /// may use the rings.
    fn grant(&mut self, g: u64, pid: u32) {
        let prev = self.entry.granted;
        self.entry.granted = g;
        if self.pool.update_port(self.entry).is_ok() {
            self.stats.granted = g;
            self.holder = Some(pid);
        } else {
            // The peer keeps waiting (and times out with a typed error
            // naming both generations); the next service tries again.
            self.entry.granted = prev;
        }
    }

    /// Takes back the buffers in the return ring, at most one ring's worth
    /// of descriptors per call (a peer that keeps the ring full cannot keep
    /// the caller here: the rest waits for the next call); returns how many
    /// descriptors it handled (taken back or refused: `service` reports
    /// them as movement, so a caller looping while it moves comes back), or
    /// `None` when its indices are corrupt (the port is then broken). One ring's worth is all a ring holds at once, so a
    /// dead producer's ring is drained completely.
    fn drain_returns(&mut self) -> Option<usize> {
        let mut read = 0usize;
        let cap = self.config.rings as usize;
        loop {
            let want = BATCH.min(cap - read);
            self.scratch.clear();
            self.scratch.resize(want, Desc::default());
            let Ok(got) = self.ret.dequeue_burst(&mut self.scratch) else {
                self.ring_fault();
                return None;
            };
            for i in 0..got {
                let d = self.scratch[i];
                match self.pool.geo.index(d.addr) {
                    Err(_) => self.stats.rejected.out_of_pool += 1,
                    Ok(idx) => match self.pool.ledger.take_back(idx, self.slot) {
                        Ok(()) => {
                            self.pool.put_free(idx);
                            self.stats.returned += 1;
                        }
                        Err(e) => self.count_take_back(e),
                    },
                }
            }
            read += got;
            if got < want || read >= cap {
                return Some(read);
            }
        }
    }

    fn count_take_back(&mut self, e: TakeBack) {
        match e {
            TakeBack::NotLent => self.stats.rejected.not_lent += 1,
            TakeBack::OtherRole(_) => self.stats.rejected.other_role += 1,
        }
    }

    /// Tops the lend ring up to the target; returns how many were lent.
    fn refill(&mut self) -> usize {
        let Ok(free) = self.lend.free_space() else {
            self.ring_fault();
            return 0;
        };
        let queued = self.config.rings - free;
        let want = self.config.lend.saturating_sub(queued) as usize;
        let mut n = 0;
        while n < want {
            self.scratch.clear();
            let pos = self.lend.position();
            while self.scratch.len() < BATCH.min(want - n) {
                let Some(idx) = self.pool.take_free() else {
                    break;
                };
                let lent = self.pool.ledger.lend(idx, self.slot);
                debug_assert!(lent.is_ok(), "a free buffer {idx} was lent");
                let at = (pos + self.scratch.len() as u64) & self.mask();
                self.lend_shadow[at as usize] = Shadow { idx, meta: 0 };
                self.scratch.push(Desc {
                    addr: self.pool.geo.addr(idx),
                    meta: 0,
                });
            }
            if self.scratch.is_empty() {
                break;
            }
            let k = self.scratch.len();
            if self.lend.enqueue_bulk(&self.scratch).is_err() {
                // Room was checked and this is the only producer: the
                // indices were corrupted. Undo the loans.
                self.undo_lends();
                self.ring_fault();
                break;
            }
            n += k;
            self.stats.lent += k as u64;
        }
        n
    }

    /// Takes back the loans recorded in `scratch` (an enqueue that failed);
    /// `scratch` keeps its allocation (review N5).
    fn undo_lends(&mut self) {
        for i in 0..self.scratch.len() {
            let d = self.scratch[i];
            if let Ok(idx) = self.pool.geo.index(d.addr) {
                if self.pool.ledger.take_back(idx, self.slot).is_ok() {
                    self.pool.put_free(idx);
                }
            }
        }
        self.scratch.clear();
    }

    /// Sends packets to the peer: takes buffers from the front of `bufs`
    /// (as many as the down ring has room for, up to the first that is not
    /// of this pool or not on the exporter's side) and returns how many
    /// left. Those left in `bufs` are still yours.
    pub fn send_burst(&mut self, bufs: &mut Vec<SharedBuf>) -> usize {
        if self.broken {
            return 0;
        }
        let Ok(room) = self.down.free_space() else {
            self.ring_fault();
            return 0;
        };
        let room = room as usize;
        let n = bufs
            .iter()
            .take(room)
            .take_while(|b| b.home().is_exporter_of(&self.pool))
            .count();
        let pos = self.down.position();
        self.scratch.clear();
        for (i, b) in bufs.drain(..n).enumerate() {
            let (d, idx) = b.into_desc();
            self.pool.handle_gone();
            let lent = self.pool.ledger.lend(idx, self.slot);
            debug_assert!(lent.is_ok(), "an exporter-held buffer {idx} was lent");
            self.down_shadow[((pos + i as u64) & self.mask()) as usize] =
                Shadow { idx, meta: d.meta };
            self.scratch.push(d);
        }
        if n > 0 && self.down.enqueue_bulk(&self.scratch).is_err() {
            self.undo_lends();
            self.ring_fault();
            return 0;
        }
        self.stats.sent += n as u64;
        n
    }

    /// Receives up to `max` packets from the peer into `out`; returns how
    /// many. Each descriptor is validated (a buffer start of this pool,
    /// lent to this role, window inside the buffer) before it becomes a
    /// [`SharedBuf`]; refusals are counted in [`PortStats::rejected`].
    pub fn recv_burst(&mut self, out: &mut Vec<SharedBuf>, max: usize) -> usize {
        if self.broken {
            return 0;
        }
        let mut n = 0;
        while n < max {
            let want = (max - n).min(BATCH);
            self.scratch.clear();
            self.scratch.resize(want, Desc::default());
            let Ok(got) = self.up.dequeue_burst(&mut self.scratch) else {
                self.ring_fault();
                break;
            };
            for i in 0..got {
                let d = self.scratch[i];
                if let Some(b) = self.accept(d) {
                    out.push(b);
                    n += 1;
                }
            }
            if got < want {
                break;
            }
        }
        self.stats.received += n as u64;
        n
    }

    /// Validates one packet descriptor from the peer and takes it over.
    fn accept(&mut self, d: Desc) -> Option<SharedBuf> {
        let Ok(idx) = self.pool.geo.index(d.addr) else {
            self.stats.rejected.out_of_pool += 1;
            return None;
        };
        if let Err(e) = self.pool.ledger.take_back(idx, self.slot) {
            self.count_take_back(e);
            return None;
        }
        match self.pool.geo.window(d.meta) {
            Ok(meta) => Some(self.pool.handle(idx, meta)),
            Err(Reject::BadWindow | Reject::OutOfPool) => {
                // The buffer was the peer's and is ours now: back to the
                // free list, the packet dropped.
                self.stats.rejected.bad_window += 1;
                self.pool.put_free(idx);
                None
            }
        }
    }

    /// Reclaims as if the role's process had exited: everything lent to
    /// the role goes back to the free list except what is still queued in
    /// its rings for the next holder. [`service`](Self::service) calls this
    /// by itself when the role's state says the process exited; call it
    /// directly only for a holder you know will never touch the pool again
    /// (a peer thread of this process that was stopped with its objects
    /// leaked, or a child you killed and reaped). Calling it while the
    /// holder still runs cannot corrupt memory (shared bytes are only
    /// reached by volatile copies) but breaks the ledger's exactness.
    /// Returns how many buffers went back.
    pub fn reclaim_as_exited(&mut self) -> usize {
        self.reclaim()
    }

    /// Closes the port. When the role's holder is gone for good (state
    /// `Exited` or `Vacant`), every buffer lent to the role comes back,
    /// those queued in the rings too, since the rings go with the port;
    /// returns how many. While a holder may still use the rings
    /// (`Attached`, `Gone`), this is a drop: nothing is taken back (the
    /// buffers stay counted as lent, a later port for the role reclaims
    /// them once the holder exited), the ring memory stays mapped until
    /// then, and it returns 0.
    pub fn close(mut self) -> usize {
        if !holder_done(self.role.state()) {
            return 0;
        }
        self.drain_returns();
        self.take_back_all()
    }

    /// Closes the port as if its role's holder had exited: every buffer
    /// lent to the role comes back now (as
    /// [`reclaim_as_exited`](Self::reclaim_as_exited), for a holder you
    /// know will never touch the pool again: a peer thread of this process
    /// whose objects are dropped, a child you killed and reaped). The ring
    /// memory is still freed only once the holder is seen to go (parked
    /// until then), so a holder that does run on never touches freed
    /// memory; only the ledger's exactness is lost. Returns how many.
    pub fn close_as_exited(mut self) -> usize {
        self.drain_returns();
        self.take_back_all()
    }

    fn take_back_all(&mut self) -> usize {
        let keep = IndexSet::new(self.pool.geo.count);
        let pool = Arc::clone(&self.pool);
        let n = self
            .pool
            .ledger
            .reclaim(self.slot, &keep, |idx| pool.put_free(idx));
        self.stats.reclaimed += n as u64;
        n
    }

    /// Buffers queued towards the peer and not yet taken by it: lend-ring
    /// stock plus packets in the down ring (0 for a ring whose indices are
    /// corrupt).
    pub fn in_rings(&self) -> usize {
        let queued = |ring: usize, tail: u64| {
            self.indices(ring)
                .map_or(0, |(head, _)| tail.saturating_sub(head) as usize)
        };
        queued(LEND, self.lend.position()) + queued(DOWN, self.down.position())
    }

    fn reclaim(&mut self) -> usize {
        let cap = self.config.rings;
        // 1. The return ring: the holder's published tail is final. It is
        //    drained even on a broken port (a stale return entry left behind
        //    could take back a buffer after it was lent again).
        let mut corrupt = [false; 4];
        corrupt[RET] = self.drain_returns().is_none();
        // 2. Entries of the E→P rings the holder has not consumed (between
        //    the shared head and our private tail, read from our shadow) and
        //    3. entries of the up ring it published and we have not
        //    received (validated, left for `recv_burst`) stay queued for the
        //    next holder: they stay lent.
        let mut keep = IndexSet::new(self.pool.geo.count);
        let lend = self.keep_shadowed(&mut keep, LEND);
        let down = self.keep_shadowed(&mut keep, DOWN);
        corrupt[LEND] = lend.is_none();
        corrupt[DOWN] = down.is_none();
        corrupt[UP] = !self.keep_up(&mut keep);
        // The healthy E→P rings are laid out again with exactly the kept
        // entries, from our shadow (review R1: never the slots or head the
        // dead holder could rewrite).
        let mut failed = false;
        for (ring, kept) in [(LEND, lend), (DOWN, down)] {
            if let Some(kept) = kept {
                failed |= !self.relay_kept(ring, &kept);
            }
        }
        // A corrupt ring is laid out afresh (its holder is gone): none of
        // its entries are kept. A corrupt return ring was counted by
        // `drain_returns` already.
        for (ring, &bad) in corrupt.iter().enumerate() {
            if bad {
                if ring != RET {
                    self.stats.rejected.corrupt_ring += 1;
                }
                failed |= !self.relayout(ring, cap);
            }
        }
        let pool = Arc::clone(&self.pool);
        let n = self
            .pool
            .ledger
            .reclaim(self.slot, &keep, |idx| pool.put_free(idx));
        self.stats.reclaimed += n as u64;
        self.stats.resumed_in_rings += keep.len() as u64;
        self.stats.reclaims += 1;
        self.reclaimed = self.entry.granted;
        // Broken only if a ring could not be laid out again (review N1).
        self.broken = failed;
        n
    }

    /// Adds the buffers queued in E→P ring `ring` to `keep` and returns
    /// them in ring order (from our shadow); `None` (and nothing added)
    /// when its indices do not agree with ours: the shared tail must be our
    /// private tail, and the shared head between the last head we saw (it
    /// never goes back) and that tail.
    fn keep_shadowed(&self, keep: &mut IndexSet, ring: usize) -> Option<Vec<Shadow>> {
        let (p, shadow) = if ring == LEND {
            (&self.lend, &self.lend_shadow)
        } else {
            (&self.down, &self.down_shadow)
        };
        let tail = p.position();
        match self.indices(ring) {
            Ok((head, shared))
                if shared == tail
                    && head >= p.peer_position()
                    && head <= tail
                    && tail - head <= self.mask() + 1 =>
            {
                let kept: Vec<Shadow> = (head..tail)
                    .map(|pos| shadow[(pos & self.mask()) as usize])
                    .collect();
                for e in &kept {
                    keep.insert(e.idx);
                }
                Some(kept)
            }
            _ => None,
        }
    }

    /// Lays E→P ring `ring` out afresh and enqueues `kept` (its entries
    /// the dead holder had not consumed, from our shadow): the successor
    /// reads exactly what the ledger kept, with our windows, whatever the
    /// dead holder wrote into the slots or the head. `false` when the ring
    /// could not be laid out or filled (the port is then broken).
    fn relay_kept(&mut self, ring: usize, kept: &[Shadow]) -> bool {
        if !self.relayout(ring, self.config.rings) {
            return false;
        }
        let mask = self.mask();
        let geo = self.pool.geo;
        let descs: Vec<Desc> = kept
            .iter()
            .map(|e| Desc {
                addr: geo.addr(e.idx),
                meta: e.meta,
            })
            .collect();
        let (p, shadow) = if ring == LEND {
            (&mut self.lend, &mut self.lend_shadow)
        } else {
            (&mut self.down, &mut self.down_shadow)
        };
        for (i, e) in kept.iter().enumerate() {
            shadow[(i as u64 & mask) as usize] = *e;
        }
        // At most `capacity` entries into an empty ring of ours.
        p.enqueue_bulk(&descs).is_ok()
    }

    /// Adds the buffers the up ring holds for us to `keep` (descriptors that
    /// name no buffer of the pool are left for `recv_burst` to refuse);
    /// `false` (and nothing added) when its indices do not agree with ours.
    fn keep_up(&self, keep: &mut IndexSet) -> bool {
        let head = self.up.position();
        let Ok((shared, tail)) = self.indices(UP) else {
            return false;
        };
        if shared != head || tail < head || tail - head > self.mask() + 1 {
            return false;
        }
        let mut found = Vec::new();
        for pos in head..tail {
            let Ok(d) = self.read_slot(UP, pos) else {
                return false;
            };
            if let Ok(idx) = self.pool.geo.index(d.addr) {
                found.push(idx);
            }
        }
        for idx in found {
            keep.insert(idx);
        }
        true
    }

    fn indices(&self, ring: usize) -> Result<(u64, u64), ShmRingError> {
        let m = self.rings[ring];
        // SAFETY: the port's ring memory, mapped while the port lives.
        unsafe { shm_ring_indices(m.ptr, m.len) }
    }

    fn read_slot(&self, ring: usize, pos: u64) -> Result<Desc, ShmRingError> {
        let m = self.rings[ring];
        // SAFETY: as in `indices`.
        unsafe { shm_ring_read_slot(m.ptr, m.len, pos) }
    }

    /// Lays ring `ring` out afresh and re-attaches this side's end (its
    /// holder has exited); `false` on failure (the caller leaves the port
    /// broken).
    fn relayout(&mut self, ring: usize, cap: u32) -> bool {
        let m = self.rings[ring];
        init_ring(m, cap).is_ok()
            && match ring {
                LEND => producer(m).map(|p| self.lend = p).is_ok(),
                RET => consumer(m).map(|c| self.ret = c).is_ok(),
                DOWN => producer(m).map(|p| self.down = p).is_ok(),
                _ => consumer(m).map(|c| self.up = c).is_ok(),
            }
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // A port that never registered (it lost a race for its role) owns
        // nothing but fresh rings no peer was told of: the ledger's entries
        // for the slot are the winner's.
        if !self.registered {
            return;
        }
        // Withdraw first: a holder that is not seen attached after this
        // cannot have found the rings.
        self.pool
            .remove_port(self.slot, self.entry.granted, self.reclaimed, self.holder);
        // With no holder left, nothing can consume the rings: everything
        // lent to the role comes back. Otherwise it stays counted as lent.
        if holder_done(self.role.state()) {
            self.take_back_all();
        }
        if let Some(mem) = self.mem.take() {
            park(mem, std::slice::from_ref(&self.role));
        }
    }
}

/// The role's holder can no longer use what it was given.
fn holder_done(s: RoleState) -> bool {
    matches!(s, RoleState::Exited { .. } | RoleState::Vacant)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_round_trip_and_rejects() {
        let e = PortEntry {
            granted: 7,
            slot: 2,
            capacity: 1024,
            ring_bytes: 33_024,
            rings: [1 << 30, 2 << 30, 3 << 30, 4 << 30],
            lend: 256,
        };
        let b = e.encode();
        assert_eq!(PortEntry::decode(&b), Ok(e));
        assert_eq!(PortEntry::decode(&b[..71]), Err(("length", 71)));
        let mut v = b.clone();
        v[4] = 9;
        assert_eq!(PortEntry::decode(&v), Err(("version", 9)));
        let mut m = b;
        m[0] ^= 1;
        assert!(matches!(PortEntry::decode(&m), Err(("magic", _))));
    }
}
