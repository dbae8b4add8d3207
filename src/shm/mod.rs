//! Packet buffers shared with other processes: pools in exported memory,
//! one port of four rings per peer role, an ownership ledger that survives
//! a peer's crash, and resume on restart.
//!
//! Built on [`hugemem::share`](crate::hugemem::share) (export, attach,
//! translation, roles, peer death) and
//! [`ring::shared`](crate::ring::shared) (a cross-process SPSC ring of
//! 16-byte descriptors).
//!
//! # The model
//!
//! ```text
//!  exporter process                                   peer process (role "worker")
//!  ┌─────────────────────────────────────┐           ┌──────────────────────────────────┐
//!  │ SharedPool "pkts"                   │           │ PeerPool::open(&attachment,"pkts")│
//!  │  buffers: one chunk of the exported │  shared   │  local free list (private)       │
//!  │  provider, plain bytes, no headers  │  memory   │  alloc: local, else lend ring    │
//!  │  free list + LEDGER: private        │           │  drop: local; excess → ret ring  │
//!  │ Port (pool, role)  ── lend  E→P ────┼──────────►│                                  │
//!  │                    ◄─ ret   P→E ────┼───────────┤                                  │
//!  │                    ── down  E→P ────┼──────────►│ PeerPort::recv_burst             │
//!  │                    ◄─ up    P→E ────┼───────────┤ PeerPort::send_burst             │
//!  └─────────────────────────────────────┘           └──────────────────────────────────┘
//! ```
//!
//! * **Buffers are bytes, ownership is private.** A pool is one chunk of
//!   the exporter's provider cut into `count` buffers of `stride` bytes
//!   (the data room rounded up to a power of two, never more than a page,
//!   so each buffer has one IOVA). Nothing the exporter relies on lives in
//!   shared memory: the free list (a private MPMC ring of indices) and the
//!   **ledger** (one `AtomicU32` per buffer: 0 = with the exporter, `r` =
//!   lent to role slot `r`) are in its private memory. A packet's data
//!   window travels in the descriptor, not in the buffer.
//! * **Descriptors** are `Desc { addr, meta }`: `addr` is the exporter VA
//!   of the buffer's start, `meta` = `data_off` (bits 0..16) | `data_len`
//!   (16..48) | `flags` (48..64). Whoever receives one checks it before any
//!   byte behind it is touched: `addr` a buffer start of this pool
//!   (`(addr - base) % stride == 0`, index `< count`), window inside the
//!   data room. The exporter also checks the ledger: every buffer coming
//!   back must swap its entry `r → 0` for the sender's role `r`, or it is
//!   refused and counted ([`Rejected`]: returned twice, another role's,
//!   forged, bad window, corrupt ring).
//! * **One port per (pool, role)**: four SPSC rings in one chunk of
//!   exported memory. *lend* carries free buffers to the peer (the
//!   exporter keeps it at [`PortConfig::lend`]), *ret* brings them back,
//!   *down* and *up* carry packets. SPSC because a process killed inside
//!   an MPMC ring operation wedges it for everyone; an SPSC ring whose one
//!   producer died is resumed by its restarted producer from the last
//!   published index. Threads of one process that share a port share it
//!   behind a lock, or use separate roles.
//! * **Bytes are never references.** Memory another process can write is
//!   reached only through [`SharedBuf`]'s volatile copies (aligned `u64`
//!   accesses, single bytes at the edges) and raw pointers, on the exporter
//!   as on the peer: there is no `&[u8]` of a shared buffer anywhere.
//!   Conversions to and from a private [`Mbuf`](crate::mbuf::Mbuf) are
//!   copies ([`SharedBuf::copy_to_mbuf`], [`SharedBuf::write_from`]).
//! * **Directory entry.** The pool publishes one entry in the exporter's
//!   directory, `shm/pool/<name>`, little-endian: a 40-byte header (magic
//!   `"SHMP"`, version 1, base u64, count, stride, data room, headroom,
//!   number of port records, reserved: u32 each) and a 72-byte record per
//!   port (magic `"SHPT"`, version, granted generation u64, role slot,
//!   ring capacity, bytes per ring u64, the lend, return, down and up
//!   rings' exporter VAs u64, lend target, reserved). The peer validates
//!   every field and checks every range it names is mapped before using
//!   it.
//!
//! # Death, reclaim, restart
//!
//! When the role's process has **exited** (its pidfd said so, role state
//! `Exited` — a closed socket alone is not enough: a process that still
//! maps the memory could still write), [`Port::service`] reclaims: it
//! drains the return ring (the dead producer's published tail is final),
//! then takes back every buffer the ledger says the role holds *except*
//! those still queued in its rings — lend and down entries between the
//! shared head and the exporter's private tail (read from the exporter's
//! private shadow of what it enqueued) and up entries between the
//! exporter's head and the dead peer's published tail. The peer's cache,
//! its hands and its half-done enqueues all come back, each buffer exactly
//! once (the ledger's compare-exchange decides). Then it grants the
//! role's new generation in the port's entry; the restarted peer's
//! [`PeerPool::open`] waits for that grant, then resumes the rings at their
//! published indices: the queued lend buffers and down packets are its.
//! A peer that leaves cleanly (its last [`PeerPool`] and its `Attachment`
//! dropped, so it says Bye) makes the role `Vacant` at once, and is
//! reclaimed the same way.
//!
//! # Memory outlives the exporter's objects while a peer may use it
//!
//! The exporter never frees a port's rings or a pool's buffers while a
//! peer that may still use them lives: the memory of a pool or port stays
//! mapped, unused, until every peer that could use it has exited. A
//! dropped (or [closed](Port::close)) [`Port`] whose role's holder is
//! `Attached` or `Gone` withdraws its record and keeps its rings allocated
//! until that holder is seen to exit (role `Exited` or `Vacant`, or the
//! role granted to another process); the buffers lent to the role stay
//! counted as lent, and a new port for the role continues from the
//! generation the old one granted and reclaims them once that holder
//! exited. A dropped [`SharedPool`] withdraws `shm/pool/<name>` first, then
//! keeps its buffers until every role that had a port on it is done the
//! same way (or the exporter and every handle of those roles are gone).
//! What remains on the peer: a peer that keeps using a pool or port the
//! exporter dropped sees the old memory, never someone else's (the pages
//! are not reused until it exited); it gets no more loans or packets, and
//! a new [`PeerPool::open`] of a withdrawn pool fails with a typed error.
//! A role's holder in the exporter's own process (a thread attached over a
//! socket pair) never reaches `Exited`: what it was given stays allocated
//! until the exporter goes; [`Port::close_as_exited`] takes its buffers
//! back when you know it stopped.
//!
//! # What a peer sees, what it costs, what it cannot do
//!
//! * **Sees**: the whole exported provider mapped (same VA when free,
//!   elsewhere otherwise), the pool's buffers at `local + index * stride`,
//!   its role's four rings, IOVAs of every buffer
//!   ([`SharedBuf::iova`]). It needs no hugetlbfs mount, no path, not the
//!   same binary.
//! * **Costs**: per buffer received, one subtraction, one mask test and one
//!   compare (geometry), plus on the exporter one compare-exchange on the
//!   ledger; no system call, no lock on the packet path (the peer's lend
//!   and return rings sit behind a mutex taken once per batch of 32). The
//!   peer translates nothing per packet: the pool is one contiguous range
//!   in its mapping, checked once at open. Bytes move by copy when you
//!   copy them; descriptors move the buffers themselves (zero copy).
//! * **Cannot**: reach the exporter's free list, ledger or any other
//!   process's rings; make the exporter follow a pointer (there are none
//!   in shared memory); return a buffer it was not lent, twice, or
//!   another role's (refused, counted); get its buffers back after it
//!   dies (the exporter reclaims them). A peer can scribble on the bytes
//!   of any buffer of the pool (the memory is mapped writable, as in
//!   memif and vhost-user): payloads from a peer are data to validate, not
//!   to trust. The peer trusts the exporter's ownership (a buggy exporter
//!   lending one buffer twice is not detected on the peer), but never its
//!   addresses. A peer must not touch a pool after the exporter dropped it
//!   or its port: the pages are unmapped once the peer's attachment acked
//!   it.
//!
//! # Example
//!
//! An exporter and a peer thread in one process, attached over a socket
//! pair at a different address (so translation runs); packets both ways,
//! then everything back:
//!
//! ```
//! use std::sync::Arc;
//! use pktmem::hugemem::share::{Attachment, Exporter, Placement};
//! use pktmem::hugemem::Provider;
//! use pktmem::shm::{PeerPool, PortConfig, SharedPool};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let provider = Provider::builder().exportable().quiet(true).build()?;
//! let exporter = Exporter::builder(&provider).unbound()?;
//! let pool = SharedPool::builder(1024, 2048).name("pkts").build(&exporter)?;
//! let role = exporter.role("worker")?;
//! let mut port = pool.port(&role, PortConfig::default().lend(64).rings(256))?;
//!
//! let fd = exporter.connect_pair()?;
//! let peer = std::thread::spawn(move || -> Result<u64, pktmem::shm::ShmError> {
//!     let att = Arc::new(
//!         Attachment::builder("worker")
//!             .placement(Placement::Relocate)
//!             .from_fd(fd)
//!             .expect("attach"),
//!     );
//!     let pool = PeerPool::open(&att, "pkts")?;
//!     let mut port = pool.port()?;
//!     let (mut got, mut echoed, mut inbox) = (0u64, 0, Vec::new());
//!     while echoed < 10 {
//!         port.recv_burst(&mut inbox, 32);
//!         for b in inbox.drain(..) {
//!             let mut v = [0u8; 4];
//!             b.read(0, &mut v)?;
//!             got += u64::from(u32::from_le_bytes(v));
//!             // answer in a buffer of our own; `b` goes back on drop
//!             let mut r = pool.alloc()?;
//!             r.extend_from(&v)?;
//!             let mut out = vec![r];
//!             while port.send_burst(&mut out) == 0 {}
//!             echoed += 1;
//!         }
//!     }
//!     drop(port);
//!     pool.flush(true); // give every cached buffer back
//!     Ok(got)
//! });
//!
//! let (mut sent, mut echoes, mut sum, mut inbox) = (0u32, 0, 0u64, Vec::new());
//! while echoes < 10 {
//!     port.service(); // lends, takes back returns, grants the peer
//!     if sent < 10 {
//!         let mut b = pool.alloc()?;
//!         b.extend_from(&sent.to_le_bytes())?;
//!         sent += port.send_burst(&mut vec![b]) as u32;
//!     }
//!     port.recv_burst(&mut inbox, 32);
//!     for b in inbox.drain(..) {
//!         let mut v = [0u8; 4];
//!         b.read(0, &mut v)?; // validated descriptor, volatile copy
//!         sum += u64::from(u32::from_le_bytes(v));
//!         echoes += 1;
//!     }
//! }
//! assert_eq!(peer.join().unwrap()?, 45); // 0 + 1 + ... + 9, seen by the peer
//! assert_eq!(sum, 45); // and echoed back
//! port.service(); // takes back what the peer gave back on its way out
//! assert_eq!(pool.counts().lent_total(), port.in_rings()); // only the lend stock is out
//! // The peer thread is done: the stock comes back. (A thread of this
//! // process never reaches `Exited`, so `close` would keep it lent and
//! // the rings parked; we know it stopped.)
//! assert_eq!(port.close_as_exited(), 64);
//! assert!(pool.is_full());
//! pool.audit()?;
//! # Ok(())
//! # }
//! ```
//!
//! # Floor plan
//!
//! | file | what it is |
//! |---|---|
//! | `pool.rs` | [`SharedPool`]: the buffers' chunk, free list, ledger, counts, audit, the pool entry |
//! | `port.rs` | [`Port`]: the four rings, lending, packets, reclaim, the grant |
//! | `peer.rs` | [`PeerPool`], [`PeerPort`]: open (one per pool, role and process), local free list, lend/return batches, withdrawal checks |
//! | `buf.rs` | [`SharedBuf`], the geometry and descriptor checks |
//! | `ledger.rs` | the ownership ledger and reclaim |
//! | `park.rs` | memory of a dropped pool or port kept until every peer that could use it has exited |
//! | `volatile.rs` | the byte copies to and from shared memory |
//! | `error.rs` | one error type per operation, [`ShmError`] |

mod buf;
mod error;
mod ledger;
mod park;
mod peer;
mod pool;
mod port;
mod volatile;

/// The atomics the ledger uses (`tests/loom_shm_ledger.rs` compiles
/// `ledger.rs` against loom's instead).
mod sync {
    pub(crate) use std::sync::atomic;
}

pub use buf::{SharedBuf, MAX_DATA_ROOM};
pub use error::{
    AllocError, AuditError, BuildError, CopyError, DataError, OpenError, PeerPortError, PortError,
    ShmError,
};
pub use peer::{PeerPool, PeerPort, PeerStats, DEFAULT_OPEN_TIMEOUT};
pub use pool::{SharedCounts, SharedPool, SharedPoolBuilder};
pub use port::{Port, PortConfig, PortStats, Rejected};
