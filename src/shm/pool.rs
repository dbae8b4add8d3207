//! The exporter's side: the shared pool ([`SharedPool`]), its buffers'
//! memory, free list and ledger, and its directory entries.

use std::collections::BTreeMap;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::hugemem::share::{Exporter, Publication, PublishError, Role};
use crate::hugemem::{AllocRequest, Iova, SharedChunk};
use crate::ring::Ring;

use super::buf::{Geometry, Home, Meta, SharedBuf, MAX_DATA_ROOM};
use super::error::{AllocError, AuditError, BuildError, PortError};
use super::ledger::Ledger;
use super::park::park;
use super::port::{Port, PortConfig, PortEntry, PORT_ENTRY_LEN};

/// Layout version of the directory entry (`shm/pool/<name>`).
pub(crate) const ENTRY_VERSION: u32 = 1;
/// `"SHMP"`: a pool entry.
pub(crate) const POOL_MAGIC: u32 = 0x504d_4853;
/// Bytes of the pool entry before its port records.
pub(crate) const POOL_HEADER_LEN: usize = 40;

/// The directory name of pool `name`'s entry.
pub(crate) fn pool_entry(name: &str) -> String {
    format!("shm/pool/{name}")
}

/// Encodes the pool entry (little-endian): magic u32, version u32, base
/// u64, count u32, stride u32, data room u32, headroom u32, port records
/// u32, reserved u32 ([`POOL_HEADER_LEN`] bytes), then one
/// [`PortEntry`] record per port.
pub(crate) fn encode_pool_entry<'a>(
    g: &Geometry,
    ports: impl ExactSizeIterator<Item = &'a PortEntry>,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(POOL_HEADER_LEN + ports.len() * PORT_ENTRY_LEN);
    v.extend_from_slice(&POOL_MAGIC.to_le_bytes());
    v.extend_from_slice(&ENTRY_VERSION.to_le_bytes());
    v.extend_from_slice(&g.base.to_le_bytes());
    v.extend_from_slice(&g.count.to_le_bytes());
    v.extend_from_slice(&g.stride.to_le_bytes());
    v.extend_from_slice(&g.data_room.to_le_bytes());
    v.extend_from_slice(&g.headroom.to_le_bytes());
    v.extend_from_slice(&(ports.len() as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    for p in ports {
        v.extend_from_slice(&p.encode());
    }
    v
}

/// What a role's last port had granted: (generation, generation
/// reclaimed, the process granted).
pub(crate) type Past = (u64, u64, Option<u32>);

/// The pool's directory entry and the ports it describes.
struct Directory {
    /// `None` once withdrawn (the pool going).
    publication: Option<Publication>,
    /// Role slot → (role name, its port's record).
    ports: BTreeMap<u32, (String, PortEntry)>,
    /// Role slot → what its last port had granted, kept when that port
    /// went: a new port for the role continues from there.
    past: BTreeMap<u32, Past>,
    /// Every role that had a port on the pool: the processes that may use
    /// its buffers.
    users: Vec<Role>,
}

fn valid_name(name: &str) -> bool {
    (1..=48).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The exporter's state of one pool, shared by the pool handles, its ports
/// and every buffer out of it on this side.
pub(crate) struct PoolCore {
    pub(crate) geo: Geometry,
    pub(crate) name: String,
    /// The buffers' memory: one chunk of the exported provider. Never
    /// reached as a slice (the peers write it): raw pointers only. Taken
    /// only in `drop` (freed, or parked while a user may still use it).
    chunk: ManuallyDrop<SharedChunk>,
    pub(crate) ledger: Ledger,
    /// Indices of the buffers with the exporter and not in its hands.
    /// Invariant: each index at most once (it enters only from a handle
    /// being dropped, a successful ledger take-back, or build).
    free: Ring<u32>,
    /// Buffers in the exporter's hands (`SharedBuf`s alive on this side).
    exporter_out: AtomicUsize,
    /// The directory entry, with a record per live port.
    dir: Mutex<Directory>,
}

impl Drop for PoolCore {
    /// Withdraws the pool's entry first (a peer that opens after this
    /// cannot find it), then frees the buffers once no role that had a
    /// port on the pool can use them: the memory of a pool stays mapped,
    /// unused, until every peer that could use it has exited.
    fn drop(&mut self) {
        let dir = self.dir.get_mut().unwrap_or_else(PoisonError::into_inner);
        drop(dir.publication.take());
        let users = std::mem::take(&mut dir.users);
        // SAFETY: `chunk` is taken here only, in drop, and not used after.
        let chunk = unsafe { ManuallyDrop::take(&mut self.chunk) };
        park(chunk, &users);
    }
}

impl PoolCore {
    /// Buffer `idx`'s start in this process.
    pub(crate) fn ptr(&self, idx: u32) -> NonNull<u8> {
        debug_assert!(idx < self.geo.count);
        // SAFETY: `idx < count`, so the offset is inside the chunk, which
        // is `count * stride` bytes long.
        unsafe {
            self.chunk
                .as_ptr()
                .add(idx as usize * self.geo.stride as usize)
        }
    }

    pub(crate) fn iova(&self, exp_va: u64) -> Option<Iova> {
        self.chunk
            .iova_at(usize::try_from(exp_va.checked_sub(self.geo.base)?).ok()?)
    }

    /// Takes a free index (the caller makes the handle or lends it).
    pub(crate) fn take_free(&self) -> Option<u32> {
        self.free.dequeue()
    }

    /// Puts an index the exporter holds back in the free list.
    pub(crate) fn put_free(&self, idx: u32) {
        // The ring holds `count` and each index is in it at most once (the
        // field invariant), so there is always room.
        let r = self.free.enqueue(idx);
        debug_assert!(r.is_ok(), "free list overflow at {idx}");
    }

    /// A handle for index `idx`, which the exporter now holds.
    pub(crate) fn handle(self: &Arc<Self>, idx: u32, meta: Meta) -> SharedBuf {
        // Relaxed: a counter read only for counts and audits.
        self.exporter_out.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `ptr(idx)` is buffer `idx`, mapped while the core (the
        // chunk) lives, which the handle keeps; the index came out of the
        // free list or a ledger take-back, so no other handle has it; the
        // caller checked `meta` against the geometry.
        unsafe { SharedBuf::from_parts(self.ptr(idx), Home::Exporter(Arc::clone(self)), idx, meta) }
    }

    /// A handle left this side (sent): it no longer counts as in hand.
    pub(crate) fn handle_gone(&self) {
        // Relaxed: as in `handle`.
        self.exporter_out.fetch_sub(1, Ordering::Relaxed);
    }

    /// A handle was dropped on this side.
    pub(crate) fn put(&self, idx: u32) {
        self.handle_gone();
        self.put_free(idx);
    }

    /// The provider the pool (and its ports' rings) live in.
    pub(crate) fn provider(&self) -> &crate::hugemem::Provider {
        self.chunk.provider()
    }

    fn publish(&self, dir: &Directory) -> Result<(), PublishError> {
        match &dir.publication {
            Some(p) => p.update(&encode_pool_entry(
                &self.geo,
                dir.ports.values().map(|(_, e)| e),
            )),
            None => Ok(()),
        }
    }

    /// What the role slot's last port had granted (`(0, 0, None)`: none).
    pub(crate) fn past_grant(&self, slot: u32) -> Past {
        let dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        dir.past.get(&slot).copied().unwrap_or((0, 0, None))
    }

    /// Adds a port's record; `false` when the role already has one.
    pub(crate) fn add_port(&self, role: &Role, entry: PortEntry) -> Result<bool, PublishError> {
        let mut dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        if dir.ports.contains_key(&entry.slot) {
            return Ok(false);
        }
        dir.ports
            .insert(entry.slot, (role.name().to_owned(), entry));
        let r = self.publish(&dir);
        if r.is_err() {
            dir.ports.remove(&entry.slot);
        } else if !dir.users.iter().any(|u| u.slot() == role.slot()) {
            dir.users.push(role.clone());
        }
        r.map(|()| true)
    }

    /// Replaces a port's record (a new grant).
    pub(crate) fn update_port(&self, entry: PortEntry) -> Result<(), PublishError> {
        let mut dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = dir.ports.get_mut(&entry.slot) {
            e.1 = entry;
        }
        self.publish(&dir)
    }

    /// Withdraws a port's record, remembering what it had granted and
    /// reclaimed for the next port of the role.
    pub(crate) fn remove_port(&self, slot: u32, granted: u64, reclaimed: u64, holder: Option<u32>) {
        let mut dir = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        dir.past.insert(slot, (granted, reclaimed, holder));
        if dir.ports.remove(&slot).is_some() {
            // A failed update leaves the record; nobody is granted anything new.
            let _ = self.publish(&dir);
        }
    }

    /// Whether role slot `slot` has a live port.
    pub(crate) fn has_port(&self, slot: u32) -> bool {
        self.dir
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .ports
            .contains_key(&slot)
    }

    pub(crate) fn fresh_meta(&self) -> Meta {
        Meta {
            off: self.geo.headroom,
            len: 0,
            flags: 0,
        }
    }
}

/// Builds a [`SharedPool`]: [`SharedPool::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct SharedPoolBuilder {
    count: usize,
    data_room: usize,
    headroom: Option<usize>,
    name: String,
}

impl SharedPoolBuilder {
    /// The pool's name (default `"pkts"`): peers open it by this name
    /// ([`PeerPool::open`](super::PeerPool::open)); 1..=48 bytes of
    /// `[A-Za-z0-9._-]`.
    pub fn name(mut self, name: &str) -> Self {
        name.clone_into(&mut self.name);
        self
    }

    /// Where a fresh buffer's data starts (default 128, or a quarter of a
    /// smaller data room).
    pub fn headroom(mut self, bytes: usize) -> Self {
        self.headroom = Some(bytes);
        self
    }

    /// Makes the pool in one chunk of `exporter`'s provider and publishes
    /// its geometry (`shm/pool/<name>`) for peers. The exporter must outlive
    /// the pool's use by peers (dropping it ends their connections).
    pub fn build(self, exporter: &Exporter) -> Result<SharedPool, BuildError> {
        let max = u32::MAX as usize;
        if self.count == 0 || self.count > max {
            return Err(BuildError::Count {
                count: self.count,
                max,
            });
        }
        if self.data_room == 0 || self.data_room > MAX_DATA_ROOM {
            return Err(BuildError::DataRoom {
                data_room: self.data_room,
                max: MAX_DATA_ROOM,
            });
        }
        let headroom = self.headroom.unwrap_or((self.data_room / 4).min(128));
        if headroom > self.data_room {
            return Err(BuildError::Headroom {
                headroom,
                data_room: self.data_room,
            });
        }
        if !valid_name(&self.name) {
            return Err(BuildError::Name { name: self.name });
        }
        let stride = self.data_room.next_power_of_two().max(64);
        let bytes = self.count.checked_mul(stride).ok_or(BuildError::Count {
            count: self.count,
            max: usize::MAX / stride,
        })?;
        let chunk = exporter
            .provider()
            .alloc_shared(&AllocRequest::new(bytes).align(stride))
            .map_err(BuildError::Alloc)?;
        if stride > chunk.page_size() {
            return Err(BuildError::Stride {
                stride,
                page_size: chunk.page_size(),
            });
        }
        let geo = Geometry {
            base: chunk.as_ptr().as_ptr() as u64,
            count: self.count as u32,
            stride: stride as u32,
            data_room: self.data_room as u32,
            headroom: headroom as u32,
        };
        debug_assert_eq!(geo.check(), Ok(()));
        let free = Ring::new(self.count).map_err(BuildError::FreeList)?;
        for i in 0..geo.count {
            // `count` slots for `count` indices.
            let _ = free.enqueue(i);
        }
        let publication = exporter
            .publish(&pool_entry(&self.name), &encode_pool_entry(&geo, [].iter()))
            .map_err(BuildError::Publish)?;
        Ok(SharedPool {
            core: Arc::new(PoolCore {
                geo,
                name: self.name,
                chunk: ManuallyDrop::new(chunk),
                ledger: Ledger::new(geo.count),
                free,
                exporter_out: AtomicUsize::new(0),
                dir: Mutex::new(Directory {
                    publication: Some(publication),
                    ports: BTreeMap::new(),
                    past: BTreeMap::new(),
                    users: Vec::new(),
                }),
            }),
        })
    }
}

/// Where a pool's buffers are, at one moment ([`SharedPool::counts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedCounts {
    /// Buffers of the pool.
    pub total: u32,
    /// In the exporter's free list.
    pub free: usize,
    /// In the exporter's hands ([`SharedBuf`]s alive on the exporter).
    pub exporter_out: usize,
    /// Lent, per role (name, or `slot N` for a role without a live port):
    /// in its lend and down rings, its process's caches and hands, its up
    /// and return rings not yet drained.
    pub lent: Vec<(String, usize)>,
    /// `total - free - exporter_out - lent`: 0 when the pool is quiet (it
    /// can be off by buffers in motion while other threads work).
    pub lost: usize,
}

impl SharedCounts {
    /// All buffers lent.
    pub fn lent_total(&self) -> usize {
        self.lent.iter().map(|(_, n)| n).sum()
    }
}

/// A pool of packet buffers in memory shared with peer processes, on the
/// exporter's side.
///
/// Buffers are plain bytes in one chunk of the exported provider (no
/// headers in shared memory); the free list and the ownership ledger live
/// in this process's private memory. A [`Port`] per peer role lends
/// buffers to it and carries packets both ways. Cheap to clone (one
/// `Arc`).
///
/// ```
/// use pktmem::hugemem::{share::Exporter, Provider};
/// use pktmem::shm::{PortConfig, SharedPool};
/// let provider = Provider::builder().exportable().quiet(true).build()?;
/// let exporter = Exporter::builder(&provider).unbound()?; // or .bind(path)
/// let pool = SharedPool::builder(4096, 2048).name("pkts").build(&exporter)?;
/// assert_eq!((pool.count(), pool.stride()), (4096, 2048));
/// let role = exporter.role("worker")?;
/// let port = pool.port(&role, PortConfig::default().lend(256).rings(1024))?;
/// let c = pool.counts();
/// assert_eq!(c.lent, vec![("worker".to_string(), 256)]); // the lend ring's stock
/// assert_eq!(c.free, 4096 - 256);
/// pool.audit()?;
/// assert_eq!(port.close(), 256); // no peer came: the stock comes back
/// assert!(pool.is_full());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SharedPool {
    pub(crate) core: Arc<PoolCore>,
}

impl SharedPool {
    /// A builder for `count` buffers of `data_room` usable bytes each
    /// (each takes `data_room` rounded up to a power of two, at least 64).
    pub fn builder(count: usize, data_room: usize) -> SharedPoolBuilder {
        SharedPoolBuilder {
            count,
            data_room,
            headroom: None,
            name: "pkts".to_owned(),
        }
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Buffers of the pool.
    pub fn count(&self) -> u32 {
        self.core.geo.count
    }

    /// Usable bytes per buffer.
    pub fn data_room(&self) -> usize {
        self.core.geo.data_room as usize
    }

    /// Bytes from one buffer's start to the next.
    pub fn stride(&self) -> usize {
        self.core.geo.stride as usize
    }

    /// The exporter VA of buffer 0 (buffer `i` is at `base + i * stride`).
    pub fn base(&self) -> u64 {
        self.core.geo.base
    }

    /// A free buffer, in the exporter's hands (data empty, at the
    /// headroom).
    pub fn alloc(&self) -> Result<SharedBuf, AllocError> {
        match self.core.take_free() {
            Some(idx) => Ok(self.core.handle(idx, self.core.fresh_meta())),
            None => Err(AllocError::Exhausted {
                total: self.core.geo.count,
                // Relaxed: a snapshot for the error message.
                out: self.core.geo.count as usize - self.core.free.len(),
            }),
        }
    }

    /// Up to `n` free buffers appended to `out`; returns how many.
    pub fn alloc_burst(&self, out: &mut Vec<SharedBuf>, n: usize) -> usize {
        let mut got = 0;
        while got < n {
            let Some(idx) = self.core.take_free() else {
                break;
            };
            out.push(self.core.handle(idx, self.core.fresh_meta()));
            got += 1;
        }
        got
    }

    /// The port for `role`: four rings in exported memory (lend and down
    /// towards the peer, return and up back), published for the peer as a
    /// record of the pool's entry. One port per role and pool.
    ///
    /// `role` must be a role of the exporter the pool was built on: the
    /// port knows it only by its slot, and a role of another exporter is
    /// not detected (the share layer gives a `Role` no identity of its
    /// exporter yet); its slot would mix with this exporter's role of that
    /// number in the ledger and the entry.
    pub fn port(&self, role: &Role, config: PortConfig) -> Result<Port, PortError> {
        Port::new(&self.core, role, config)
    }

    /// Where the buffers are now (see [`SharedCounts`]).
    pub fn counts(&self) -> SharedCounts {
        let c = &self.core;
        let dir = c.dir.lock().unwrap_or_else(PoisonError::into_inner);
        let mut lent = Vec::new();
        let mut lent_n = 0;
        for (slot, n) in c.ledger.census() {
            if slot == 0 {
                continue;
            }
            lent_n += n;
            let name = dir
                .ports
                .get(&slot)
                .map_or_else(|| format!("slot {slot}"), |(n, _)| n.clone());
            lent.push((name, n));
        }
        drop(dir);
        let free = c.free.len();
        // Relaxed: a snapshot (see `SharedCounts::lost`).
        let exporter_out = c.exporter_out.load(Ordering::Relaxed);
        SharedCounts {
            total: c.geo.count,
            free,
            exporter_out,
            lent,
            lost: (c.geo.count as usize).saturating_sub(free + exporter_out + lent_n),
        }
    }

    /// Checks the free list against the ledger and that every buffer is
    /// accounted for (free, in the exporter's hands, or lent). Call it when
    /// the pool is quiet (no thread of this process allocating, freeing or
    /// servicing a port meanwhile): it takes the free list out and puts it
    /// back.
    pub fn audit(&self) -> Result<(), AuditError> {
        let c = &self.core;
        let mut seen = vec![false; c.geo.count as usize];
        let mut taken = Vec::with_capacity(c.free.len());
        while let Some(i) = c.free.dequeue() {
            taken.push(i);
        }
        let mut verdict = Ok(());
        for &i in &taken {
            let why = match seen.get_mut(i as usize) {
                None => Some("out of range"),
                Some(true) => Some("twice"),
                Some(s) => {
                    *s = true;
                    None
                }
            };
            if let Some(why) = why {
                verdict = verdict.and(Err(AuditError::FreeList { index: i, why }));
                continue;
            }
            let h = c.ledger.holder(i);
            if h != 0 {
                verdict = verdict.and(Err(AuditError::FreeButLent { index: i, slot: h }));
            }
        }
        let free = taken.len();
        for i in taken {
            c.put_free(i);
        }
        verdict?;
        let counts = self.counts();
        let lent = counts.lent_total();
        if free + counts.exporter_out + lent != c.geo.count as usize {
            return Err(AuditError::Lost {
                total: c.geo.count,
                free,
                exporter_out: counts.exporter_out,
                lent,
            });
        }
        Ok(())
    }

    /// Whether every buffer is in the free list.
    pub fn is_full(&self) -> bool {
        self.core.free.len() == self.core.geo.count as usize
    }
}

impl fmt::Debug for SharedPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedPool")
            .field("name", &self.core.name)
            .field("geometry", &self.core.geo)
            .field("free", &self.core.free.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hugemem::Provider;

    fn pool() -> (SharedPool, Exporter) {
        let p = Provider::builder()
            .exportable()
            .quiet(true)
            .build()
            .unwrap();
        let e = Exporter::builder(&p).unbound().unwrap();
        (SharedPool::builder(16, 100).build(&e).unwrap(), e)
    }

    /// The audit can fail: each break of the books is named.
    #[test]
    fn audit_names_what_is_wrong() {
        let (pool, _e) = pool();
        assert_eq!(pool.stride(), 128);
        pool.audit().unwrap();
        // A buffer in the free list twice (0 taken out to make room).
        assert_eq!(pool.core.take_free(), Some(0));
        pool.core.put_free(3);
        assert_eq!(
            pool.audit(),
            Err(AuditError::FreeList {
                index: 3,
                why: "twice"
            })
        );
        while pool.core.take_free().is_some() {}
        for i in 0..16 {
            pool.core.put_free(i);
        }
        pool.audit().unwrap();
        // Free but lent.
        pool.core.ledger.lend(5, 2).unwrap();
        assert_eq!(
            pool.audit(),
            Err(AuditError::FreeButLent { index: 5, slot: 2 })
        );
        pool.core.ledger.take_back(5, 2).unwrap();
        // Lost: taken from the free list and never accounted for.
        let idx = pool.core.take_free().unwrap();
        match pool.audit() {
            Err(AuditError::Lost {
                total: 16,
                free: 15,
                exporter_out: 0,
                lent: 0,
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(pool.counts().lost, 1);
        pool.core.put_free(idx);
        pool.audit().unwrap();
    }

    #[test]
    fn build_refuses_bad_geometry() {
        let p = Provider::builder()
            .exportable()
            .quiet(true)
            .build()
            .unwrap();
        let e = Exporter::builder(&p).unbound().unwrap();
        let err = |b: SharedPoolBuilder| b.build(&e).unwrap_err().to_string();
        assert_eq!(
            err(SharedPool::builder(0, 2048)),
            format!("shared pool of 0 buffers: must be 1..={}", u32::MAX)
        );
        assert_eq!(
            err(SharedPool::builder(4, 70_000)),
            "shared pool data room of 70000 B: must be 1..=65535"
        );
        assert_eq!(
            err(SharedPool::builder(4, 64).headroom(65)),
            "shared pool headroom of 65 B is larger than the data room of 64 B"
        );
        assert!(err(SharedPool::builder(4, 64).name("a/b")).contains("\"a/b\""));
        let ok = SharedPool::builder(4, 1).build(&e).unwrap();
        assert_eq!((ok.stride(), ok.data_room()), (64, 1));
    }
}
