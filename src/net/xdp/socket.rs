//! [`XskSocket`]: one `AF_XDP` socket on one (interface, queue), its UMEM
//! one provider chunk, its frames the mbufs of a pinned pool over it.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::hugemem::{AllocRequest, Chunk, Provider};
use crate::mbuf::{Mbuf, PinnedArea, PktPool};
use crate::mempool::Cache;
use crate::net::bpf::{BpfError, XskMap};

use super::error::{StatsError, XskError};
use super::ledger::{KernelStats, Ledger, LedgerError, XskCounters};
use super::ring::{ConsRing, ProdRing, RingMap};
use super::sys::{
    self, SockaddrXdp, XdpDesc, XdpMmapOffsets, XdpStatistics, XdpUmemReg, AF_XDP, XDP_COPY,
    XDP_MMAP_OFFSETS, XDP_OPTIONS, XDP_OPTIONS_ZEROCOPY, XDP_PGOFF_RX_RING, XDP_PGOFF_TX_RING,
    XDP_RX_RING, XDP_STATISTICS, XDP_TX_RING, XDP_UMEM_COMPLETION_RING, XDP_UMEM_FILL_RING,
    XDP_UMEM_PGOFF_COMPLETION_RING, XDP_UMEM_PGOFF_FILL_RING, XDP_UMEM_REG,
    XDP_UMEM_UNALIGNED_CHUNK_FLAG, XDP_USE_NEED_WAKEUP, XDP_ZEROCOPY,
};
use super::umem::{ChunkMode, DescError, UmemConfig, UmemGeometry, UmemMemoryError};

/// How the socket binds to its queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BindMode {
    /// `XDP_COPY`: the kernel copies packets into and out of the UMEM
    /// (works on every interface, veth included).
    Copy,
    /// `XDP_ZEROCOPY`: the driver reads and writes the UMEM itself; an
    /// interface without support is [`XskError::ZeroCopyUnsupported`].
    ZeroCopy,
    /// Neither flag: zero-copy when the driver can, else copy.
    Any,
}

/// Configures an [`XskSocket`]; [`build_on`](Self::build_on) makes it.
#[derive(Clone, Debug)]
#[must_use]
pub struct XskBuilder {
    ifindex: u32,
    queue: u32,
    umem: UmemConfig,
    rx_size: u32,
    tx_size: u32,
    fill_size: u32,
    completion_size: u32,
    fill_target: Option<usize>,
    bind: BindMode,
    need_wakeup: bool,
    pool_cache: usize,
}

impl XskBuilder {
    /// The UMEM (default: 4096 frames of 2048 bytes, no user headroom).
    pub fn umem(mut self, umem: UmemConfig) -> Self {
        self.umem = umem;
        self
    }

    /// Entries of the RX ring (a power of two; default 2048).
    pub fn rx_size(mut self, n: u32) -> Self {
        self.rx_size = n;
        self
    }

    /// Entries of the TX ring (a power of two; default 2048).
    pub fn tx_size(mut self, n: u32) -> Self {
        self.tx_size = n;
        self
    }

    /// Entries of the fill ring (a power of two; default 2048).
    pub fn fill_size(mut self, n: u32) -> Self {
        self.fill_size = n;
        self
    }

    /// Entries of the completion ring (a power of two; default 2048).
    pub fn completion_size(mut self, n: u32) -> Self {
        self.completion_size = n;
        self
    }

    /// Frames the socket keeps with the kernel for receiving (posted to the
    /// fill ring and not yet received; every RX call tops them up, by
    /// bursts of 32 while the kernel has at least half); at most the fill
    /// ring's size and the UMEM's frames. Default: the fill ring's size or half the frames,
    /// whichever is smaller (the rest are for the application and TX).
    pub fn fill_target(mut self, frames: usize) -> Self {
        self.fill_target = Some(frames);
        self
    }

    /// How to bind (default [`BindMode::Copy`]).
    pub fn bind_mode(mut self, mode: BindMode) -> Self {
        self.bind = mode;
        self
    }

    /// Whether to bind with `XDP_USE_NEED_WAKEUP` (default true): the
    /// kernel then says when it needs a syscall, and [`XskSocket::kick`]
    /// makes one only then.
    pub fn need_wakeup(mut self, yes: bool) -> Self {
        self.need_wakeup = yes;
        self
    }

    /// Per-thread cache size of the frame pool (default 0). Frames freed on
    /// another thread wait in that thread's cache, out of the socket's
    /// reach, so a cache trades refill reach for speed.
    pub fn pool_cache(mut self, size: usize) -> Self {
        self.pool_cache = size;
        self
    }

    /// Validates everything, allocates the UMEM from `provider` (hugepages
    /// when it has them), builds the frame pool over it, registers it with
    /// the kernel, maps the four rings, fills the fill ring and binds. On
    /// any error everything made so far is undone (the socket closed, the
    /// frames back in their pool, the chunk back to the provider).
    pub fn build_on(self, provider: &Provider) -> Result<XskSocket, XskError> {
        let geo = self.umem.validate().map_err(XskError::Config)?;
        for (ring, size) in [
            ("rx", self.rx_size),
            ("tx", self.tx_size),
            ("fill", self.fill_size),
            ("completion", self.completion_size),
        ] {
            if !size.is_power_of_two() {
                return Err(XskError::RingSize { ring, size });
            }
        }
        let fill_target = self
            .fill_target
            .unwrap_or_else(|| (self.fill_size as usize).min(geo.frames() / 2).max(1));
        if fill_target == 0 || fill_target > self.fill_size as usize || fill_target > geo.frames() {
            return Err(XskError::FillTarget {
                target: fill_target,
                fill_size: self.fill_size,
                frames: geo.frames(),
            });
        }
        let chunk = provider
            .alloc_with(&AllocRequest::new(geo.len()))
            .map_err(XskError::Alloc)?;
        geo.check_chunk(&chunk).map_err(XskError::Memory)?;
        let base = chunk.as_ptr().as_ptr() as usize;
        let area = PinnedArea::from_chunk(chunk, geo.frame_size()).map_err(XskError::Area)?;
        let pool = PktPool::builder(geo.frames())
            .pinned([area])
            .cache(self.pool_cache)
            .name(format!("xsk-if{}-q{}", self.ifindex, self.queue))
            .build_on(provider)
            .map_err(XskError::Pool)?;

        let fd = open_socket()?;
        let reg = XdpUmemReg {
            addr: base as u64,
            len: geo.len() as u64,
            chunk_size: geo.frame_size() as u32,
            headroom: geo.headroom() as u32,
            flags: match geo.mode() {
                ChunkMode::Aligned => 0,
                ChunkMode::Unaligned => XDP_UMEM_UNALIGNED_CHUNK_FLAG,
            },
            tx_metadata_len: 0,
        };
        sys::set_opt(fd.as_fd(), XDP_UMEM_REG, &reg).map_err(|err| umem_reg_error(err, geo))?;
        for (opt, size, call) in [
            (
                XDP_UMEM_FILL_RING,
                self.fill_size,
                "setsockopt(XDP_UMEM_FILL_RING)",
            ),
            (
                XDP_UMEM_COMPLETION_RING,
                self.completion_size,
                "setsockopt(XDP_UMEM_COMPLETION_RING)",
            ),
            (XDP_RX_RING, self.rx_size, "setsockopt(XDP_RX_RING)"),
            (XDP_TX_RING, self.tx_size, "setsockopt(XDP_TX_RING)"),
        ] {
            sys::set_opt(fd.as_fd(), opt, &size).map_err(|err| XskError::Sys { call, err })?;
        }
        let (fill, comp, rx, tx) = self.map_rings(fd.as_fd())?;
        let cache = pool.cache();
        let mut table = Vec::with_capacity(geo.frames());
        table.resize_with(geo.frames(), || None);
        let mut sock = XskSocket {
            fd,
            fill: ProdRing::new(fill),
            comp: ConsRing::new(comp),
            rx: ConsRing::new(rx),
            tx: ProdRing::new(tx),
            table,
            in_table: 0,
            fifo: VecDeque::with_capacity(self.tx_size as usize),
            tx_refs: vec![0; geo.frames()],
            tx_frames: 0,
            scratch: Vec::with_capacity(64),
            cache,
            pool,
            geo,
            base,
            fill_target,
            need_wakeup: self.need_wakeup,
            zero_copy: false,
            ifindex: self.ifindex,
            queue: self.queue,
            counters: XskCounters::default(),
            first_violation: None,
        };
        // Fill before bind: some drivers take their first buffers at bind.
        sock.refill();
        self.bind(sock.fd.as_fd())?;
        sock.zero_copy = match sys::get_opt::<u32>(sock.fd.as_fd(), XDP_OPTIONS) {
            Ok((opts, _)) => opts & XDP_OPTIONS_ZEROCOPY != 0,
            // The kernel cannot say: assume the driver's DMA unless copy
            // mode was asked for (what `Drop` does with the frames
            // depends on it).
            Err(_) => self.bind != BindMode::Copy,
        };
        sock.check_ledger();
        Ok(sock)
    }
    /// Maps the four rings (their offsets from `XDP_MMAP_OFFSETS`).
    #[allow(clippy::type_complexity)]
    fn map_rings(
        &self,
        fd: BorrowedFd<'_>,
    ) -> Result<
        (
            RingMap<u64>,
            RingMap<u64>,
            RingMap<XdpDesc>,
            RingMap<XdpDesc>,
        ),
        XskError,
    > {
        let (off, off_len) =
            sys::get_opt::<XdpMmapOffsets>(fd, XDP_MMAP_OFFSETS).map_err(|err| XskError::Sys {
                call: "getsockopt(XDP_MMAP_OFFSETS)",
                err,
            })?;
        if off_len != std::mem::size_of::<XdpMmapOffsets>() {
            return Err(XskError::Unsupported {
                feature: "AF_XDP ring flags (need_wakeup; Linux 5.4)",
                errno: libc::EOPNOTSUPP,
            });
        }
        let sys = |call: &'static str| move |err| XskError::Sys { call, err };
        let fill = RingMap::map(fd, &off.fr, self.fill_size, XDP_UMEM_PGOFF_FILL_RING)
            .map_err(sys("mmap(fill ring)"))?;
        let comp = RingMap::map(
            fd,
            &off.cr,
            self.completion_size,
            XDP_UMEM_PGOFF_COMPLETION_RING,
        )
        .map_err(sys("mmap(completion ring)"))?;
        let rx = RingMap::map(fd, &off.rx, self.rx_size, XDP_PGOFF_RX_RING)
            .map_err(sys("mmap(rx ring)"))?;
        let tx = RingMap::map(fd, &off.tx, self.tx_size, XDP_PGOFF_TX_RING)
            .map_err(sys("mmap(tx ring)"))?;
        Ok((fill, comp, rx, tx))
    }

    /// Binds the socket to its queue, in the mode asked for.
    fn bind(&self, fd: BorrowedFd<'_>) -> Result<(), XskError> {
        let mut flags = match self.bind {
            BindMode::Copy => XDP_COPY,
            BindMode::ZeroCopy => XDP_ZEROCOPY,
            BindMode::Any => 0,
        };
        if self.need_wakeup {
            flags |= XDP_USE_NEED_WAKEUP;
        }
        let addr = SockaddrXdp {
            family: AF_XDP as u16,
            flags,
            ifindex: self.ifindex,
            queue_id: self.queue,
            shared_umem_fd: 0,
        };
        // SAFETY: `addr` is a live `sockaddr_xdp` of the length given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                std::ptr::from_ref(&addr).cast(),
                std::mem::size_of::<SockaddrXdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::EOPNOTSUPP) if self.bind == BindMode::ZeroCopy => {
                    XskError::ZeroCopyUnsupported {
                        ifindex: self.ifindex,
                        queue: self.queue,
                    }
                }
                Some(libc::EPERM | libc::EACCES) => XskError::NotPermitted { call: "bind" },
                _ => XskError::Bind {
                    ifindex: self.ifindex,
                    queue: self.queue,
                    err,
                },
            });
        }
        Ok(())
    }
}

/// Opens an `AF_XDP` socket, with typed errors for a kernel without them
/// and for a missing privilege.
fn open_socket() -> Result<OwnedFd, XskError> {
    // SAFETY: plain syscall; the fd it returns is ours alone.
    let raw = unsafe { libc::socket(AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(e @ (libc::EAFNOSUPPORT | libc::EPROTONOSUPPORT)) => XskError::Unsupported {
                feature: "AF_XDP sockets (CONFIG_XDP_SOCKETS, Linux 4.18)",
                errno: e,
            },
            Some(libc::EPERM | libc::EACCES) => XskError::NotPermitted {
                call: "socket(AF_XDP)",
            },
            _ => XskError::Sys {
                call: "socket(AF_XDP)",
                err,
            },
        });
    }
    // SAFETY: a fresh fd nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

fn umem_reg_error(err: io::Error, geo: UmemGeometry) -> XskError {
    match err.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => XskError::NotPermitted {
            call: "setsockopt(XDP_UMEM_REG)",
        },
        Some(libc::ENOBUFS) => XskError::MemlockLimit { bytes: geo.len() },
        Some(libc::EINVAL) => XskError::UmemRejected {
            geometry: geo,
            errno: libc::EINVAL,
        },
        _ => XskError::Sys {
            call: "setsockopt(XDP_UMEM_REG)",
            err,
        },
    }
}

/// Asks the running kernel whether it takes a UMEM registration
/// (`XDP_UMEM_REG`) of `len` bytes at `offset` into `chunk`, with this frame
/// size, headroom and chunk mode, on a fresh socket that is closed again at
/// once (never bound: the kernel writes nothing). No rule is checked here:
/// it is for comparing [`UmemConfig::validate`] with the kernel. The outer
/// error: the question could not be asked (no `AF_XDP`, no privilege, the
/// range outside the chunk's pages); the inner one is the kernel's answer.
pub fn probe_umem_reg(
    chunk: &Chunk,
    offset: usize,
    len: usize,
    frame_size: usize,
    headroom: usize,
    mode: ChunkMode,
) -> Result<Result<(), io::Error>, XskError> {
    if !matches!(offset.checked_add(len), Some(end) if end <= chunk.mapped_len()) {
        return Err(XskError::Memory(UmemMemoryError::OutsideMemory {
            umem_len: offset.saturating_add(len),
            mem_len: chunk.mapped_len(),
        }));
    }
    let fd = open_socket()?;
    let reg = XdpUmemReg {
        addr: chunk.as_ptr().as_ptr() as u64 + offset as u64,
        len: len as u64,
        chunk_size: u32::try_from(frame_size).unwrap_or(u32::MAX),
        headroom: u32::try_from(headroom).unwrap_or(u32::MAX),
        flags: match mode {
            ChunkMode::Aligned => 0,
            ChunkMode::Unaligned => XDP_UMEM_UNALIGNED_CHUNK_FLAG,
        },
        tx_metadata_len: 0,
    };
    match sys::set_opt(fd.as_fd(), XDP_UMEM_REG, &reg) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES)) => {
            Err(XskError::NotPermitted {
                call: "setsockopt(XDP_UMEM_REG)",
            })
        }
        r => Ok(r),
    }
}

/// Frames a refill takes from the pool in one call.
const REFILL_BURST: usize = 32;

/// A frame handed to the kernel for sending, held until its completion.
#[derive(Debug)]
struct InFlight {
    frame: usize,
    /// The mbuf over the frame (dropped at completion: the frame goes back
    /// to the pool once nothing else references it).
    _m: Mbuf,
}

/// What a TX burst does with each packet (before the descriptors go out).
#[derive(Debug)]
enum TxAction {
    /// Sent by descriptor over its own frame.
    ZeroCopy(usize),
    /// Copied into this fresh frame's mbuf.
    Copied(usize, Mbuf),
    /// Dropped (counted).
    Dropped,
}

/// An `AF_XDP` socket bound to one queue of one interface, its UMEM one
/// validated provider chunk whose frames are the mbufs of a pinned pool.
///
/// - **RX**: [`rx_burst`](Self::rx_burst) refills the fill ring from the
///   pool, then reads the RX ring; every descriptor is checked (frame start
///   in O(1), offset, length, and that the frame really was with the
///   kernel) before its frame's mbuf, taken from the frame table, is handed
///   out with the packet as its data. Dropping it (on any thread) puts the
///   frame back in the pool, and a later refill back on the fill ring.
/// - **TX**: [`tx_burst`](Self::tx_burst) sends an mbuf over one of the
///   UMEM's frames by descriptor (no copy), holding it until its completion;
///   any other mbuf is copied into a fresh frame (counted). Completions are
///   masked and checked against the frames in flight.
/// - **Wake-ups**: one policy, [`kick`](Self::kick): a syscall only when
///   the kernel asks for one (`XDP_RING_NEED_WAKEUP`) or when bound
///   without need-wakeup.
/// - **Accounting**: [`ledger`](Self::ledger) places every frame; it is
///   checked after every burst that moved a frame
///   ([`XskCounters::ledger_violations`]).
///
/// Dropping the socket closes it first (the kernel lets go of the UMEM),
/// then gives every frame it held back to the pool; the UMEM goes back to
/// the provider with the pool's last handle and mbuf. In copy mode the
/// kernel has stopped writing frames once the close returns (it unbinds
/// and waits for its receive path). In zero-copy mode the driver gives up
/// its queue's frames only in the kernel's deferred teardown
/// (`xp_release_deferred`), after the close has returned, and the NIC may
/// write received packets into them until then: a zero-copy socket's
/// frames with the kernel (and so the pool and its UMEM) are never given
/// back, a bounded leak per socket instead of memory that a device may
/// still write.
///
/// Needs root and a veth pair or a NIC, plus an XDP program redirecting
/// to the socket (see the module docs):
///
/// ```no_run
/// use pktmem::hugemem::Provider;
/// use pktmem::net::xdp::{UmemConfig, XskSocket};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let provider = Provider::builder().build()?;
/// let mut xsk = XskSocket::builder(2, 0)
///     .umem(UmemConfig::new(4096).frame_size(2048))
///     .build_on(&provider)?;
/// let mut pkts = Vec::new();
/// xsk.rx_burst(&mut pkts, 64);
/// for m in &pkts {
///     println!("{} B at IOVA {:?}", m.data_len(), m.data_iova());
/// }
/// drop(pkts); // the frames go back to the pool, then to the fill ring
/// xsk.ledger().check()?;
/// # Ok(()) }
/// ```
pub struct XskSocket {
    // Field order is drop order: the socket closes (the kernel lets go of
    // the UMEM and stops writing frames) and the rings are unmapped before
    // the frames the kernel held go back to the pool.
    fd: OwnedFd,
    fill: ProdRing<u64>,
    comp: ConsRing<u64>,
    rx: ConsRing<XdpDesc>,
    tx: ProdRing<XdpDesc>,
    /// Frame `i`'s mbuf while the kernel has it for receiving.
    table: Vec<Option<Mbuf>>,
    /// `Some` entries of `table`.
    in_table: usize,
    /// Packets with the kernel for sending, oldest first.
    fifo: VecDeque<InFlight>,
    /// Packets in `fifo` per frame (a frame sent with its clones is in it
    /// more than once).
    tx_refs: Vec<u32>,
    /// Frames with a non-zero `tx_refs`.
    tx_frames: usize,
    scratch: Vec<TxAction>,
    cache: Cache,
    pool: PktPool,
    geo: UmemGeometry,
    /// Address of the UMEM's first byte (frame 0).
    base: usize,
    fill_target: usize,
    need_wakeup: bool,
    zero_copy: bool,
    ifindex: u32,
    queue: u32,
    counters: XskCounters,
    first_violation: Option<LedgerError>,
}

impl Drop for XskSocket {
    fn drop(&mut self) {
        // Runs before the fields are dropped (the socket closed, then the
        // frames freed): in zero-copy mode the frames the kernel held must
        // not be freed at all (see the type's docs). The leaked mbufs keep
        // their pool, and its UMEM chunk, alive.
        if self.zero_copy {
            let held: Vec<Mbuf> = self.table.iter_mut().filter_map(Option::take).collect();
            let fifo = std::mem::take(&mut self.fifo);
            let mut q = QUARANTINE
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            q.push(Box::new(held));
            q.push(Box::new(fifo));
            // The frames keep their pool alive through counts in the pool's
            // own memory; a handle here keeps it reachable too.
            q.push(Box::new(self.pool.clone()));
        }
    }
}

/// Frames a zero-copy socket's kernel held when it closed, kept for the
/// rest of the process (never freed: a device may still write them). Held
/// here rather than forgotten, so they stay reachable (leak checkers see a
/// deliberate hold, not a lost allocation).
static QUARANTINE: std::sync::Mutex<Vec<Box<dyn Send>>> = std::sync::Mutex::new(Vec::new());

impl fmt::Debug for XskSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XskSocket")
            .field("fd", &self.fd)
            .field("ifindex", &self.ifindex)
            .field("queue", &self.queue)
            .field("geometry", &self.geo)
            .field("zero_copy", &self.zero_copy)
            .field("in_table", &self.in_table)
            .field("in_flight_tx", &self.fifo.len())
            .finish_non_exhaustive()
    }
}

// No `AsFd`: a `BorrowedFd` can be duplicated in safe code
// (`try_clone_to_owned`), and a duplicate keeps the socket bound, its UMEM
// registered and the kernel writing received packets into frames after
// this socket has given them, and the chunk, back. The socket's lifetime
// must be this value's: the raw fd (for `poll`/`epoll`) needs `unsafe` to
// be turned into anything that could outlive it.
impl AsRawFd for XskSocket {
    /// The socket's fd, for `poll`/`epoll` (readable: RX descriptors;
    /// writable: TX room). Do not duplicate it: a duplicate outliving the
    /// socket keeps the kernel writing into memory the provider has reused.
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl XskSocket {
    /// Starts configuring a socket on queue `queue` of interface `ifindex`.
    pub fn builder(ifindex: u32, queue: u32) -> XskBuilder {
        XskBuilder {
            ifindex,
            queue,
            umem: UmemConfig::new(4096),
            rx_size: 2048,
            tx_size: 2048,
            fill_size: 2048,
            completion_size: 2048,
            fill_target: None,
            bind: BindMode::Copy,
            need_wakeup: true,
            pool_cache: 0,
        }
    }

    /// Puts the socket into `map` at its own queue's slot (the redirect
    /// program looks sockets up by the queue a frame arrived on). The map
    /// refers to the socket, not to a descriptor: dropping the socket
    /// empties the slot.
    ///
    /// This is how a socket gets into an XSKMAP: the socket offers no
    /// [`BorrowedFd`](std::os::fd::BorrowedFd) (one could be duplicated
    /// in safe code, and a duplicate would keep the kernel writing into the
    /// UMEM after the socket has given it back):
    ///
    /// ```compile_fail
    /// fn dup(xsk: &pktmem::net::xdp::XskSocket) {
    ///     let _ = std::os::fd::AsFd::as_fd(xsk).try_clone_to_owned();
    /// }
    /// ```
    ///
    /// Needs root and an interface (see the module docs):
    ///
    /// ```no_run
    /// use pktmem::hugemem::Provider;
    /// use pktmem::net::bpf::{RedirectProgram, XdpMode, XskMap};
    /// use pktmem::net::xdp::{UmemConfig, XskSocket};
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let provider = Provider::builder().build()?;
    /// let xsk = XskSocket::builder(2, 0)
    ///     .umem(UmemConfig::new(4096))
    ///     .build_on(&provider)?;
    /// let map = XskMap::new(1)?;
    /// xsk.insert_into(&map)?; // slot 0: the socket's queue
    /// let _link = RedirectProgram::load(&map)?.attach(2, XdpMode::Skb)?;
    /// # Ok(()) }
    /// ```
    pub fn insert_into(&self, map: &XskMap) -> Result<(), BpfError> {
        map.insert(self.queue, self.fd.as_fd())
    }

    /// The UMEM's geometry.
    pub fn geometry(&self) -> UmemGeometry {
        self.geo
    }

    /// The pool of the UMEM's frames (to allocate frames for packets to
    /// send without a copy; every frame taken is one fewer to receive into).
    pub fn pool(&self) -> &PktPool {
        &self.pool
    }

    /// Address of the UMEM's first byte.
    pub fn umem_addr(&self) -> usize {
        self.base
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The queue.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Whether the kernel bound the socket in zero-copy mode
    /// (`XDP_OPTIONS`; when it cannot say, whether anything but copy mode
    /// was asked for).
    pub fn is_zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// Frames the socket keeps with the kernel for receiving.
    pub fn fill_target(&self) -> usize {
        self.fill_target
    }

    /// The socket's own counters.
    pub fn counters(&self) -> XskCounters {
        self.counters
    }

    /// The first failed ledger check, if any.
    pub fn first_ledger_violation(&self) -> Option<LedgerError> {
        self.first_violation
    }

    /// Packets given to the kernel for sending and not yet completed.
    pub fn tx_in_flight(&self) -> usize {
        self.fifo.len()
    }

    /// Frames given to the kernel for receiving and not yet received.
    pub fn rx_in_kernel(&self) -> usize {
        self.in_table
    }

    /// The kernel's counters (`XDP_STATISTICS`).
    pub fn kernel_stats(&self) -> Result<KernelStats, StatsError> {
        let (s, _) = sys::get_opt::<XdpStatistics>(self.fd.as_fd(), XDP_STATISTICS)
            .map_err(|err| StatsError { err })?;
        Ok(KernelStats {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        })
    }

    /// Where every frame is now.
    pub fn ledger(&mut self) -> Ledger {
        // Read each ring pair downstream first: a frame moves fill ring →
        // kernel → RX ring (and TX ring → kernel → completion ring), so
        // reading the RX producer before the fill consumer cannot count one
        // frame in both.
        let rx_ring = self.rx.available() as usize;
        let fill_ring = self.fill.pending() as usize;
        let completion_ring = self.comp.available() as usize;
        let tx_ring = self.tx.pending() as usize;
        let total = self.geo.frames();
        let free = self.pool.avail_count();
        let (table, fifo) = (self.in_table, self.tx_frames);
        Ledger {
            total,
            free,
            in_app: total.saturating_sub(free + table + fifo),
            table,
            in_fill_ring: fill_ring,
            in_rx_ring: rx_ring,
            fifo,
            in_tx_ring: tx_ring,
            in_completion_ring: completion_ring,
        }
    }

    /// The per-burst check: the frame identity only (the pool's count and
    /// our own), without the per-ring split, which `check` does not use and
    /// which would read four cache lines the kernel writes.
    fn check_ledger(&mut self) {
        self.counters.ledger_checks += 1;
        let total = self.geo.frames();
        let free = self.pool.avail_count();
        let (table, fifo) = (self.in_table, self.tx_frames);
        if free + table + fifo > total {
            self.counters.ledger_violations += 1;
            if self.first_violation.is_none() {
                let ledger = self.ledger();
                self.first_violation = Some(LedgerError {
                    ledger: Ledger {
                        free,
                        in_app: 0,
                        ..ledger
                    },
                    what: "in_kernel + in_app + free != total (a frame counted twice)",
                });
            }
        }
    }

    /// The frame an mbuf of our pool is over.
    #[inline(always)]
    fn frame_of(&self, m: &Mbuf) -> usize {
        (m.buf_addr().as_ptr() as usize - self.base) / self.geo.frame_size()
    }

    /// Tops the frames with the kernel up to the fill target from the pool
    /// (as far as the fill ring has room; once at least a burst is missing
    /// or the kernel holds less than half the target), then kicks if the
    /// kernel asks; returns the frames posted.
    fn refill(&mut self) -> u32 {
        let want = self.fill_target.saturating_sub(self.in_table) as u32;
        // Top up by whole bursts while the kernel still has at least half
        // the target: one pool call, one producer store and one ledger check
        // per 32 frames instead of per packet at low rates.
        // "At least half" rounds up: with a target of 1 the kernel holding
        // none is below half (a rounded-down half, 0, never refilled it).
        if want == 0 || (want < REFILL_BURST as u32 && self.in_table * 2 >= self.fill_target) {
            return 0;
        }
        let n = self.fill.free(want).min(want);
        let mut posted = 0;
        // Whole bursts of 32 from the pool in one call while they are
        // wanted and there; then one at a time.
        while n - posted >= REFILL_BURST as u32 {
            let Ok(burst) = self.pool.alloc_array::<REFILL_BURST>(&mut self.cache) else {
                break;
            };
            for m in burst {
                self.post_fill(posted, m);
                posted += 1;
            }
        }
        while posted < n {
            let Ok(m) = self.pool.alloc(&mut self.cache) else {
                self.counters.fill_shortfall += u64::from(n - posted);
                self.counters.fill_short_refills += 1;
                break;
            };
            self.post_fill(posted, m);
            posted += 1;
        }
        self.fill.submit(posted);
        self.in_table += posted as usize;
        self.counters.fill_posted += u64::from(posted);
        if posted > 0 && self.need_wakeup && self.fill.needs_wakeup() {
            self.kick_rx();
        }
        posted
    }

    /// Writes frame `m`'s base into free fill slot `i` and keeps `m` in the
    /// frame table until the kernel hands the frame back.
    #[inline(always)]
    fn post_fill(&mut self, i: u32, m: Mbuf) {
        let frame = self.frame_of(&m);
        self.fill.write(i, self.geo.fill_addr(frame));
        // A frame comes out of the pool once until it is freed again, and a
        // frame in the table is not free: the slot is empty.
        debug_assert!(self.table[frame].is_none(), "frame {frame} twice");
        self.table[frame] = Some(m);
    }

    /// Receives up to `max` packets into `out` (appended), after refilling
    /// the fill ring from the pool (towards the
    /// [`fill_target`](XskBuilder::fill_target), by bursts of 32, and at
    /// once below half of it); returns how many. Refused descriptors are
    /// counted ([`XskCounters::rx_bad`]) and never handed out; a refused
    /// descriptor's frame, when it names one the kernel had, goes back to
    /// the pool.
    pub fn rx_burst(&mut self, out: &mut Vec<Mbuf>, max: usize) -> usize {
        let refilled = self.refill();
        let n = self
            .rx
            .available()
            .min(u32::try_from(max).unwrap_or(u32::MAX));
        let mut got = 0;
        for i in 0..n {
            let d = self.rx.read(i);
            match self.geo.check_rx_desc(d.addr, d.len) {
                Ok(f) => {
                    let Some(mut m) = self.table[f.frame].take() else {
                        self.counters.rx_bad.not_in_kernel += 1;
                        continue;
                    };
                    self.in_table -= 1;
                    if m.set_data_window(f.offset, f.len).is_err() {
                        // Cannot happen: the window was checked against
                        // the frame, which is the mbuf's whole buffer.
                        self.counters.rx_bad.past_frame_end += 1;
                        self.pool.free(&mut self.cache, m);
                        continue;
                    }
                    self.counters.rx_bytes += f.len as u64;
                    out.push(m);
                    got += 1;
                }
                Err(e) => {
                    let c = &mut self.counters.rx_bad;
                    match e {
                        DescError::NotFrameStart { .. } => c.not_frame_start += 1,
                        DescError::OutsideUmem { .. } => c.outside_umem += 1,
                        DescError::OffsetBelowHeadroom { .. } => c.offset_below_headroom += 1,
                        _ => c.past_frame_end += 1,
                    }
                    // The kernel gave the frame back, even if badly: back
                    // to the pool, never lost.
                    if let Some(m) = e.frame().and_then(|fr| self.table[fr].take()) {
                        self.in_table -= 1;
                        self.pool.free(&mut self.cache, m);
                    }
                }
            }
        }
        self.rx.release(n);
        self.counters.rx_packets += got as u64;
        if n > 0 || refilled > 0 {
            self.check_ledger();
        }
        got
    }

    /// Whether `m` can go out by descriptor over its own frame: one segment
    /// over a buffer that starts at a frame of this UMEM (only this
    /// socket's pool makes such mbufs: safe code cannot forge one from an
    /// address), its data inside the frame. Returns the frame.
    #[inline]
    fn zero_copy_frame(&self, m: &Mbuf) -> Option<usize> {
        if m.nb_segs() != 1 || !m.is_external() {
            return None;
        }
        let off = (m.buf_addr().as_ptr() as usize).checked_sub(self.base)?;
        let fs = self.geo.frame_size();
        if off >= self.geo.len() || off % fs != 0 || m.headroom() + m.data_len() > fs {
            return None;
        }
        Some(off / fs)
    }

    /// Sends packets from the front of `pkts` (removed from it), as many as
    /// the TX ring has room for; returns how many were taken. Mbufs over
    /// this UMEM's frames go out by descriptor, held until completion;
    /// others (other pools, chains) are copied into a fresh frame; empty
    /// packets and ones longer than a frame's room are dropped (counted).
    /// Packets left in `pkts` did not fit (or no frame was free for a copy).
    /// Reaps completions first and kicks after.
    pub fn tx_burst(&mut self, pkts: &mut Vec<Mbuf>) -> usize {
        self.complete();
        let want = u32::try_from(pkts.len()).unwrap_or(u32::MAX);
        let room = self.tx.free(want).min(want) as usize;
        let fs = self.geo.frame_size();
        let mut slots = 0u32;
        self.scratch.clear();
        for m in pkts.iter().take(room) {
            let len = m.pkt_len();
            let action = if let Some(frame) = self.zero_copy_frame(m) {
                if m.data_len() == 0 {
                    TxAction::Dropped
                } else {
                    let d = XdpDesc {
                        addr: self.geo.tx_addr(frame, m.headroom()),
                        len: m.data_len() as u32,
                        options: 0,
                    };
                    self.tx.write(slots, d);
                    slots += 1;
                    TxAction::ZeroCopy(frame)
                }
            } else if len == 0 || len > fs - crate::mbuf::HEADROOM {
                TxAction::Dropped
            } else {
                let Ok(mut c) = self.pool.alloc(&mut self.cache) else {
                    self.counters.tx_no_frame += 1;
                    break;
                };
                let frame = self.frame_of(&c);
                let Ok(dst) = c.append(len) else {
                    // Cannot happen: `len` fits the fresh frame's room.
                    self.pool.free(&mut self.cache, c);
                    break;
                };
                let mut at = 0;
                for s in m.segments() {
                    dst[at..at + s.data_len()].copy_from_slice(s.data());
                    at += s.data_len();
                }
                let d = XdpDesc {
                    addr: self.geo.tx_addr(frame, c.headroom()),
                    len: len as u32,
                    options: 0,
                };
                self.tx.write(slots, d);
                slots += 1;
                TxAction::Copied(frame, c)
            };
            self.scratch.push(action);
        }
        self.tx.submit(slots);
        let taken = self.scratch.len();
        let mut actions = std::mem::take(&mut self.scratch);
        for (m, a) in pkts.drain(..taken).zip(actions.drain(..)) {
            match a {
                TxAction::ZeroCopy(frame) => {
                    self.counters.tx_zero_copy += 1;
                    self.push_in_flight(frame, m);
                }
                TxAction::Copied(frame, c) => {
                    self.counters.tx_copied += 1;
                    self.push_in_flight(frame, c);
                    self.pool.free(&mut self.cache, m);
                }
                TxAction::Dropped => {
                    self.counters.tx_dropped += 1;
                    self.pool.free(&mut self.cache, m);
                }
            }
        }
        self.scratch = actions;
        if slots > 0 {
            self.kick_tx();
        }
        if taken > 0 {
            self.check_ledger();
        }
        taken
    }

    /// Holds `m` (over `frame`) until its completion.
    fn push_in_flight(&mut self, frame: usize, m: Mbuf) {
        if self.tx_refs[frame] == 0 {
            self.tx_frames += 1;
        }
        self.tx_refs[frame] += 1;
        self.fifo.push_back(InFlight { frame, _m: m });
    }

    /// Reads the completion ring: each address, its offset bits masked off,
    /// must name a frame in flight (normally the oldest), whose mbuf is then
    /// dropped; returns the completions matched.
    pub fn complete(&mut self) -> usize {
        let n = self.comp.available();
        let mut matched = 0;
        for i in 0..n {
            let addr = self.comp.read(i);
            let Some(frame) = self.geo.completion_frame(addr) else {
                self.counters.completion_unknown += 1;
                continue;
            };
            let done = if self.fifo.front().is_some_and(|f| f.frame == frame) {
                self.fifo.pop_front()
            } else if let Some(k) = self.fifo.iter().position(|f| f.frame == frame) {
                self.counters.completion_out_of_order += 1;
                self.fifo.remove(k)
            } else {
                self.counters.completion_unknown += 1;
                None
            };
            if let Some(InFlight { frame, _m: m }) = done {
                self.tx_refs[frame] -= 1;
                if self.tx_refs[frame] == 0 {
                    self.tx_frames -= 1;
                }
                self.pool.free(&mut self.cache, m);
                matched += 1;
            }
        }
        self.comp.release(n);
        self.counters.tx_completed += matched as u64;
        matched
    }

    /// The one wake-up policy: a `sendto` when the TX ring has entries the
    /// kernel has not taken and it asks for a wake-up (or the socket was
    /// bound without need-wakeup), repeated while it reports "again" and
    /// entries remain (in copy mode each call sends a batch); a `recvfrom`
    /// when the fill ring asks for one. Returns the syscalls made.
    pub fn kick(&mut self) -> usize {
        let mut calls = self.kick_tx();
        if self.need_wakeup && self.fill.needs_wakeup() {
            calls += self.kick_rx();
        }
        calls
    }

    fn kick_tx(&mut self) -> usize {
        let mut calls = 0;
        // Copy mode sends up to 32 descriptors per call (the kernel's TX
        // budget): enough calls for a full ring, and no more.
        let max = self.tx.size() as usize / 32 + 2;
        while calls < max && self.tx.pending() > 0 {
            if self.need_wakeup && !self.tx.needs_wakeup() {
                break;
            }
            // SAFETY: a send of nothing on our socket (the kernel reads the
            // TX ring, not the null buffer).
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            calls += 1;
            self.counters.tx_kicks += 1;
            if rc < 0 {
                if let Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) =
                    io::Error::last_os_error().raw_os_error()
                {
                    self.counters.tx_kick_busy += 1;
                    // "Again" may mean a full completion ring: make room.
                    self.complete();
                } else {
                    self.counters.tx_kick_errors += 1;
                    break;
                }
            }
        }
        calls
    }

    fn kick_rx(&mut self) -> usize {
        // SAFETY: a receive of nothing on our socket (wakes the driver's RX
        // path; the kernel writes no user buffer).
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
        self.counters.rx_kicks += 1;
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::netns::{NetnsError, VethPair};

    fn socket(what: &str, umem: UmemConfig) -> Option<(VethPair, XskSocket)> {
        socket_with(what, umem, 32)
    }

    fn socket_with(
        what: &str,
        umem: UmemConfig,
        fill_target: usize,
    ) -> Option<(VethPair, XskSocket)> {
        let veth = match VethPair::create() {
            Ok(v) => v,
            Err(e @ (NetnsError::NotPermitted { .. } | NetnsError::NoIpTool)) => {
                eprintln!("SKIP: {what}: {e}");
                return None;
            }
            Err(e) => panic!("veth pair: {e}"),
        };
        let provider = Provider::builder().quiet(true).build().unwrap();
        match XskSocket::builder(veth.host_ifindex(), 0)
            .umem(umem)
            .fill_target(fill_target)
            .build_on(&provider)
        {
            Ok(x) => Some((veth, x)),
            Err(e) if e.is_unavailable() => {
                eprintln!("SKIP: {what}: {e}");
                None
            }
            Err(e @ XskError::Memory(UmemMemoryError::FrameNotIovaContiguous { .. })) => {
                eprintln!("SKIP: {what}: no IOVA-contiguous memory for it here: {e}");
                None
            }
            Err(e) => panic!("socket: {e}"),
        }
    }

    /// Frames in the table (with the kernel), and frames not.
    fn split(xsk: &XskSocket) -> (Vec<usize>, Vec<usize>) {
        let (mut inside, mut outside) = (Vec::new(), Vec::new());
        for (i, e) in xsk.table.iter().enumerate() {
            if e.is_some() {
                inside.push(i);
            } else {
                outside.push(i);
            }
        }
        (inside, outside)
    }

    /// One RX descriptor of 60 bytes for each frame the kernel holds, as
    /// the kernel writes them after receiving into all of them.
    fn every_fill_frame_received(xsk: &XskSocket) -> Vec<XdpDesc> {
        let (inside, _) = split(xsk);
        inside
            .iter()
            .map(|&f| XdpDesc {
                addr: xsk.geo.fill_addr(f) + 256,
                len: 60,
                options: 0,
            })
            .collect()
    }

    /// A hostile "kernel" (descriptors written into the real RX ring of a
    /// socket no program feeds): each bad class is counted and never handed
    /// out; a frame named twice or never given to the kernel is refused; a
    /// bad descriptor of a real frame gives the frame back to the pool; the
    /// good one is delivered; the ledger stays exact.
    #[test]
    fn injected_rx_descriptors_are_checked_before_use() {
        let Some((_veth, mut xsk)) =
            socket("injected RX descriptors", UmemConfig::new(64).headroom(64))
        else {
            return;
        };
        let geo = xsk.geo;
        let (inside, outside) = split(&xsk);
        assert_eq!((inside.len(), outside.len()), (32, 32));
        let (fa, fc, fd, fb) = (inside[0], inside[1], inside[2], outside[0]);
        let at = |frame: usize, off: usize| geo.fill_addr(frame) + off as u64;
        let desc = |addr, len| XdpDesc {
            addr,
            len,
            options: 0,
        };
        xsk.rx.inject(&[
            desc(at(fa, 320), 60),   // good
            desc(at(64, 320), 60),   // past the UMEM
            desc(at(fb, 320), 60),   // a frame the kernel never had
            desc(at(fa, 320), 60),   // frame a again
            desc(at(fc, 320), 1729), // past frame c's end
            desc(at(fd, 10), 60),    // inside frame d's headroom
        ]);
        let mut out = Vec::new();
        assert_eq!(xsk.rx_burst(&mut out, 64), 1, "only the good one");
        assert_eq!(xsk.frame_of(&out[0]), fa);
        assert_eq!((out[0].headroom(), out[0].data_len()), (320, 60));
        let bad = xsk.counters().rx_bad;
        assert_eq!(
            (
                bad.outside_umem,
                bad.not_in_kernel,
                bad.past_frame_end,
                bad.offset_below_headroom,
                bad.not_frame_start
            ),
            (1, 2, 1, 1, 0),
            "{bad:?}"
        );
        // Frames c and d came back to the pool (the burst after refills).
        assert!(xsk.table[fc].is_none() && xsk.table[fd].is_none());
        let l = xsk.ledger();
        assert_eq!((l.table, l.in_app, l.free), (29, 1, 34), "{l}");
        l.check().unwrap();
        drop(out);
        // Three frames short of the target is less than a refill burst, and
        // the kernel still has more than half: no refill yet.
        xsk.rx_burst(&mut Vec::new(), 64);
        let l = xsk.ledger();
        assert_eq!((l.table, l.in_app, l.free), (29, 0, 35), "{l}");
        assert_eq!(xsk.counters().ledger_violations, 0);
    }

    /// Small fill targets are kept too: with a target of 1 (the default for
    /// a UMEM of 2 or 3 frames) the frame received is replaced at the next
    /// RX call, and so are both of a target of 3 once the kernel has none.
    #[test]
    fn small_fill_targets_are_refilled() {
        for target in [1usize, 3] {
            let Some((_veth, mut xsk)) =
                socket_with("small fill targets", UmemConfig::new(8), target)
            else {
                return;
            };
            assert_eq!(xsk.rx_in_kernel(), target);
            let descs = every_fill_frame_received(&xsk);
            xsk.rx.inject(&descs);
            let mut out = Vec::new();
            assert_eq!(xsk.rx_burst(&mut out, 64), target);
            assert_eq!(xsk.rx_in_kernel(), 0);
            drop(out);
            xsk.rx_burst(&mut Vec::new(), 64);
            assert_eq!(
                xsk.rx_in_kernel(),
                target,
                "target {target}: the kernel has frames to receive into again"
            );
            xsk.ledger().check().unwrap();
        }
    }

    /// Ring indices the kernel writes are not trusted for arithmetic: a
    /// fill-ring consumer index past our producer (which made `size - used`
    /// overflow: a panic in debug builds, a ring "with room" beyond its
    /// size in release builds) counts as a full ring, and an RX producer
    /// index more than a ring ahead as one ring's worth of entries.
    #[test]
    fn kernel_ring_indices_out_of_range_do_not_overflow() {
        let Some((_veth, mut xsk)) = socket_with("bad ring indices", UmemConfig::new(64), 32)
        else {
            return;
        };
        // The kernel takes every fill frame (none left to it): the next
        // RX call would refill...
        let descs = every_fill_frame_received(&xsk);
        xsk.rx.inject(&descs);
        let mut out = Vec::new();
        assert_eq!(xsk.rx_burst(&mut out, 64), 32);
        drop(out);
        // ... but the fill ring's consumer index is now 5 past our producer
        // (read by the ledger, then by the refill).
        xsk.fill.corrupt_consumer(5);
        assert!(xsk.ledger().in_fill_ring <= 2048);
        let posted = xsk.counters().fill_posted;
        for _ in 0..4 {
            xsk.rx_burst(&mut Vec::new(), 64);
        }
        assert_eq!(
            xsk.counters().fill_posted,
            posted,
            "a ring with no room: nothing posted"
        );
        // RX ring: a producer index 3 rings ahead.
        let size = 2048;
        xsk.rx.corrupt_producer(3 * size);
        assert_eq!(xsk.ledger().in_rx_ring, size as usize);
        let mut out = Vec::new();
        xsk.rx_burst(&mut out, usize::MAX);
        assert!(out.len() <= 32, "each frame at most once");
        xsk.ledger().check().unwrap();
    }

    /// A zero-copy socket's frames with the kernel are never given back
    /// (its driver may still write them after the close); the others are.
    /// Veth cannot bind zero-copy, so a copy-mode socket plays one.
    #[test]
    fn zero_copy_frames_with_the_kernel_stay_out_of_the_pool() {
        let Some((_veth, mut xsk)) = socket("zero-copy teardown", UmemConfig::new(64)) else {
            return;
        };
        xsk.zero_copy = true;
        let pool = xsk.pool.clone();
        let app = pool.alloc_default().unwrap();
        assert_eq!((xsk.rx_in_kernel(), pool.avail_count()), (32, 31));
        drop(xsk);
        assert_eq!(pool.avail_count(), 31, "the kernel's 32 frames leaked");
        drop(app);
        assert_eq!(pool.avail_count(), 32, "the application's frame came back");
    }

    /// The same in unaligned mode, where a base can also be off a frame
    /// start.
    #[test]
    fn injected_unaligned_descriptors_off_a_frame_start_are_refused() {
        let Some((_veth, mut xsk)) = socket(
            "injected unaligned descriptors",
            UmemConfig::new(64).frame_size(3000),
        ) else {
            return;
        };
        let (inside, _) = split(&xsk);
        let base = xsk.geo.fill_addr(inside[0]);
        let desc = |addr| XdpDesc {
            addr,
            len: 60,
            options: 0,
        };
        xsk.rx
            .inject(&[desc((base + 8) | (256 << 48)), desc(base | (256 << 48))]);
        let mut out = Vec::new();
        assert_eq!(xsk.rx_burst(&mut out, 64), 1);
        assert_eq!(out[0].headroom(), 256);
        assert_eq!(xsk.counters().rx_bad.not_frame_start, 1);
        drop(out);
        let pool = xsk.pool.clone();
        drop(xsk);
        assert!(pool.is_full(), "every frame back after the socket");
    }
}
