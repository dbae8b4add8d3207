//! Helpers shared by the mbuf behaviour tests: providers, the kinds of pool
//! every behaviour runs on, packet builders and the checks that follow every
//! operation.

// Each test file uses some of these helpers, none uses all.
#![allow(dead_code)]

pub mod behaviour;

use std::ptr::NonNull;
use std::sync::OnceLock;

use pktmem_hugemem::{inventory, Chunk, PageSize, Provider};
use pktmem_mbuf::{Mbuf, PinnedArea, PktPool, Segment, HEADROOM};

/// A 2 MiB hugepage.
pub const MB2: usize = 2 << 20;

/// Mbufs of the reference's test pools (`NB_MBUF`).
pub const NB_MBUF: usize = 128;
/// Cache size of the reference's test pools (`MEMPOOL_CACHE_SIZE`).
pub const CACHE: usize = 32;
/// The reference's `MBUF_DATA_SIZE`: data room of its test pools, headroom
/// included.
pub const DATA_ROOM: usize = 2048;

/// Writes a line to the process's stderr directly, not with `eprintln!`,
/// which the test harness captures (and drops) for a passing test: a skip
/// or a failing seed must show in `cargo test`'s output.
pub fn say(what: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    // A failed write to stderr only loses the notice.
    let _ = writeln!(err, "{what}");
}

/// Says on the test's stderr that something was skipped, and why.
pub fn skip(what: std::fmt::Arguments<'_>) {
    say(format_args!("SKIP {what}"));
}

/// Free 2 MiB pages the kernel reports.
pub fn free_2m() -> u64 {
    inventory()
        .iter()
        .find(|h| h.page_size == MB2)
        .map_or(0, |h| h.free)
}

/// The process's quiet provider (hugepages when reserved, small pages
/// otherwise), shared by the tests of one file.
pub fn provider() -> &'static Provider {
    static P: OnceLock<Provider> = OnceLock::new();
    P.get_or_init(|| Provider::builder().quiet(true).build().unwrap())
}

/// A quiet provider of 2 MiB hugepages only (no small-page fallback), or
/// `None` after a SKIP line naming `what` when fewer than `need` are free.
pub fn huge2m_provider(what: &str, need: u64) -> Option<Provider> {
    let free = free_2m();
    if free < need {
        skip(format_args!(
            "{what}: only {free} free 2 MiB hugepages (need {need})"
        ));
        return None;
    }
    Some(
        Provider::builder()
            .page_sizes(&[PageSize::Huge2M])
            .allow_small_page_fallback(false)
            .quiet(true)
            .build()
            .unwrap(),
    )
}

/// How a pool's buffers are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Anonymous memory, no IOVAs.
    Anonymous,
    /// The provider's memory (hugepages when reserved), with IOVAs.
    Provider,
    /// Pinned external buffers in leaked heap memory (no IOVAs).
    PinnedLeaked,
    /// Pinned external buffers in a chunk of the provider's memory (with
    /// its IOVAs), kept for the process's life.
    PinnedChunk,
    /// Pinned external buffers in an anonymous memory map registered with
    /// the provider (with made-up IOVAs, one run per page), made safely
    /// with `PinnedArea::from_external`: the pool's lease keeps the map.
    PinnedMmap,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Anonymous,
        Kind::Provider,
        Kind::PinnedLeaked,
        Kind::PinnedChunk,
        Kind::PinnedMmap,
    ];

    /// The kinds whose buffers are the pool's own.
    pub const NORMAL: [Kind; 2] = [Kind::Anonymous, Kind::Provider];

    /// The pinned kinds.
    pub const PINNED: [Kind; 3] = [Kind::PinnedLeaked, Kind::PinnedChunk, Kind::PinnedMmap];

    /// Whether the pool's buffers are pinned external buffers.
    pub fn is_pinned(self) -> bool {
        matches!(
            self,
            Kind::PinnedLeaked | Kind::PinnedChunk | Kind::PinnedMmap
        )
    }
}

/// Addresses of what the tests keep for the process's life, reachable from
/// here so that `LeakSanitizer` does not report them.
static KEPT: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// Keeps `p` (never freed) reachable for the process's life.
pub fn keep<T>(p: *const T) {
    KEPT.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(p as usize);
}

/// Zeroed heap memory of `len` bytes (64-aligned), never freed, for pinned
/// areas and external buffers that must outlive every pool built on them.
pub fn leaked(len: usize) -> NonNull<u8> {
    let layout = std::alloc::Layout::from_size_align(len, 64).unwrap();
    // SAFETY: a non-zero size (callers ask for buffers).
    let p = unsafe { std::alloc::alloc_zeroed(layout) };
    keep(p);
    NonNull::new(p).expect("allocation failed")
}

/// A chunk of the provider's memory of `len` bytes, never freed (a pinned
/// area must outlive its pool and every mbuf of it).
pub fn leaked_chunk(len: usize) -> &'static Chunk {
    let c: &'static Chunk = Box::leak(Box::new(provider().alloc(len).unwrap()));
    keep(c);
    c
}

/// A pinned area of `n` buffers of `elt` bytes in leaked heap memory.
pub fn leaked_area(n: usize, elt: usize) -> PinnedArea {
    let addr = leaked(n * elt);
    // SAFETY: leaked memory, only ever used by the pool it is given to.
    unsafe { PinnedArea::new(addr, None, n * elt, elt) }
}

/// A pinned area of `n` buffers of `elt` bytes in a leaked provider chunk,
/// with the chunk's IOVA when it is IOVA-contiguous.
pub fn chunk_area(n: usize, elt: usize) -> (PinnedArea, &'static Chunk) {
    let chunk = leaked_chunk(n * elt);
    let iova = if chunk.is_iova_contiguous() {
        chunk.iova()
    } else {
        None
    };
    // SAFETY: the chunk is leaked (lives for the process) and only the
    // pool it is given to uses its bytes; the IOVA is the chunk's own, and
    // given only when the chunk is IOVA-contiguous.
    let area = unsafe { PinnedArea::new(chunk.as_ptr(), iova, n * elt, elt) };
    (area, chunk)
}

/// Made-up IOVA of the first byte of [`mmap_area`]'s maps (one run).
pub const MMAP_IOVA: u64 = 0x40_0000_0000;

/// A pinned area of `n` buffers of `elt` bytes over a fresh anonymous map
/// registered with the provider (IOVAs `MMAP_IOVA + offset`); the
/// registration goes when the pool's lease does.
pub fn mmap_area(n: usize, elt: usize) -> PinnedArea {
    let len = n * elt;
    let map_len = len.next_multiple_of(4096);
    let map = memmap2::MmapMut::map_anon(map_len).unwrap();
    let at = map.as_ptr().cast_mut();
    let iovas: Vec<pktmem_hugemem::Iova> = (0..map_len / 4096)
        .map(|i| pktmem_hugemem::Iova(MMAP_IOVA + (i * 4096) as u64))
        .collect();
    let reg = provider()
        .register_external_owned(map, 4096, Some(&iovas))
        .unwrap();
    // SAFETY: the registered map is used only through this pool's mbufs.
    let area =
        unsafe { PinnedArea::from_external(provider(), at, len, elt, "mbuf test pool") }.unwrap();
    // Unregistered (and the map dropped) once the pool's lease goes.
    drop(reg);
    area
}

/// A pool of `n` mbufs of `kind` with the reference test's geometry
/// (`data_room` bytes of buffer, headroom included, `cache` per core).
pub fn pool_of(kind: Kind, name: &str, n: usize, cache: usize, data_room: usize) -> PktPool {
    let b = PktPool::builder(n).name(name).cache(cache);
    match kind {
        Kind::Anonymous => b.data_room(data_room).build_anonymous().unwrap(),
        Kind::Provider => b.data_room(data_room).build_on(provider()).unwrap(),
        Kind::PinnedLeaked => b
            .pinned([leaked_area(n, data_room)])
            .build_anonymous()
            .unwrap(),
        Kind::PinnedChunk => {
            let (area, _) = chunk_area(n, data_room);
            b.pinned([area]).build_on(provider()).unwrap()
        }
        Kind::PinnedMmap => b
            .pinned([mmap_area(n, data_room)])
            .build_on(provider())
            .unwrap(),
    }
}

/// The reference's test pool: `NB_MBUF` mbufs of `DATA_ROOM` bytes, cache
/// `CACHE`.
pub fn ref_pool(kind: Kind, name: &str) -> PktPool {
    pool_of(kind, name, NB_MBUF, CACHE, DATA_ROOM)
}

/// A pool of `n` mbufs of the default geometry on anonymous memory, no
/// cache (so counts are exact without flushing).
pub fn anon(n: usize) -> PktPool {
    PktPool::builder(n).build_anonymous().unwrap()
}

/// Flushes the calling thread's default caches of `pools` and asserts each
/// is full (every mbuf back).
pub fn assert_full(pools: &[&PktPool]) {
    for p in pools {
        p.mempool().flush_default_cache();
    }
    for p in pools {
        assert!(
            p.is_full(),
            "pool {} is not full: {} of {} in use",
            p.mempool().name(),
            p.in_use_count(),
            p.size()
        );
    }
}

/// Byte `i` of the test pattern (the reference's `i % 0xff`).
pub fn pattern(i: usize) -> u8 {
    (i % 0xff) as u8
}

/// A fresh mbuf of `pool` holding `bytes`.
pub fn mbuf_with(pool: &PktPool, bytes: &[u8]) -> Mbuf {
    let mut m = pool.alloc_default().unwrap();
    m.append(bytes.len()).unwrap().copy_from_slice(bytes);
    m
}

/// A chain of `pool`'s mbufs with segments of the given lengths, holding
/// the test pattern from 0 across them (segment `i` starts at the sum of
/// the lengths before it).
pub fn chain_of(pool: &PktPool, lens: &[usize]) -> Mbuf {
    packet(pool, 0, lens)
}

/// As [`chain_of`], with `hdr` bytes prepended to the first segment (the
/// pattern starts in them), as the reference's `create_packet` builds.
pub fn packet(pool: &PktPool, hdr: usize, lens: &[usize]) -> Mbuf {
    let mut off = 0;
    let mut head: Option<Mbuf> = None;
    for (i, &len) in lens.iter().enumerate() {
        let mut seg = pool.alloc_default().unwrap();
        if i == 0 && hdr > 0 {
            for (j, b) in seg.prepend(hdr).unwrap().iter_mut().enumerate() {
                *b = pattern(j);
            }
            off += hdr;
        }
        for (j, b) in seg.append(len).unwrap().iter_mut().enumerate() {
            *b = pattern(off + j);
        }
        off += len;
        match head.as_mut() {
            None => head = Some(seg),
            Some(h) => h.chain(seg).unwrap(),
        }
    }
    head.expect("at least one segment")
}

/// One segment's state: headroom, data length, tailroom, buffer length,
/// refcount, (direct, indirect, external), buffer address.
pub type SegSnapshot = (usize, usize, usize, usize, u16, (bool, bool, bool), usize);

/// What an operation must leave as it was when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The packet's bytes.
    pub bytes: Vec<u8>,
    /// Packet length.
    pub pkt_len: usize,
    /// Segment count.
    pub nb_segs: usize,
    /// Per segment.
    pub segs: Vec<SegSnapshot>,
    /// Head metadata: port, packet type, RSS hash, VLAN, flags.
    pub meta: (Option<u16>, u32, u32, u16, u64),
}

/// The state of `m` that a failed operation must not change.
pub fn snapshot(m: &Mbuf) -> Snapshot {
    Snapshot {
        bytes: m.to_vec(),
        pkt_len: m.pkt_len(),
        nb_segs: m.nb_segs(),
        segs: m
            .segments()
            .map(|s| {
                (
                    s.headroom(),
                    s.data_len(),
                    s.tailroom(),
                    s.buf_len(),
                    s.refcnt(),
                    (s.is_direct(), s.is_indirect(), s.is_external()),
                    s.buf_addr().as_ptr() as usize,
                )
            })
            .collect(),
        meta: (
            m.port(),
            m.packet_type(),
            m.rss_hash(),
            m.vlan_tci(),
            m.ol_flags_bits(),
        ),
    }
}

/// Asserts what every mbuf must satisfy after any operation: the sanity
/// check passes, the segment count and packet length add up, each
/// segment's headroom + data + tailroom is its buffer.
pub fn assert_consistent(m: &Mbuf) {
    if let Err(e) = m.check() {
        panic!("sanity check failed: {e} ({m:?})");
    }
    assert_eq!(m.segments().count(), m.nb_segs(), "segment count");
    assert_eq!(
        m.segments().map(Segment::data_len).sum::<usize>(),
        m.pkt_len(),
        "packet length"
    );
    assert_eq!(m.to_vec().len(), m.pkt_len());
    for s in m.segments() {
        assert_eq!(
            s.headroom() + s.data_len() + s.tailroom(),
            s.buf_len(),
            "segment room"
        );
        assert!(s.refcnt() >= 1);
    }
}

/// Asserts that a fresh mbuf is reset as the reference's
/// `rte_pktmbuf_reset` leaves it.
pub fn assert_fresh(m: &Mbuf) {
    assert_consistent(m);
    assert_eq!((m.pkt_len(), m.data_len(), m.nb_segs()), (0, 0, 1));
    assert_eq!(m.headroom(), HEADROOM.min(m.buf_len()));
    assert_eq!(m.refcnt(), 1);
    assert!(!m.is_indirect());
    assert_eq!(m.port(), None);
    assert_eq!(m.ol_flags_bits(), 0);
    assert_eq!(m.packet_type(), 0);
    assert_eq!((m.vlan_tci(), m.vlan_tci_outer()), (0, 0));
    assert_eq!(m.tx_offload_bits(), 0);
    assert!(m.is_writable());
}

/// A small xorshift64* generator: the tests' randomness, reproducible from
/// its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is replaced: xorshift needs a non-zero
    /// state).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// The seeds a randomised test runs: the one in environment variable `var`
/// (decimal or 0x-hex) alone, or `defaults`.
pub fn seeds(var: &str, defaults: &[u64]) -> Vec<u64> {
    match std::env::var(var) {
        Ok(s) => {
            let s = s.trim();
            let v = match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => s.parse(),
            };
            vec![v.unwrap_or_else(|_| panic!("{var}={s} is not a number"))]
        }
        Err(_) => defaults.to_vec(),
    }
}

/// Runs `f(seed)` for each seed; a failure says which seed and how to
/// rerun it.
pub fn with_seeds(var: &str, defaults: &[u64], f: impl Fn(u64)) {
    for seed in seeds(var, defaults) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(seed)));
        if let Err(e) = r {
            say(format_args!(
                "FAILED with seed {seed:#x}: rerun with {var}={seed:#x}"
            ));
            std::panic::resume_unwind(e);
        }
    }
}

/// Runs a behaviour on a fresh reference-sized pool of each of `kinds`
/// (clones from a separate anonymous pool); a failure names the kind.
pub fn run_on(kinds: &[Kind], name: &str, f: impl Fn(&PktPool, &PktPool)) {
    for &kind in kinds {
        let pool = ref_pool(kind, name);
        let clones = pool_of(Kind::Anonymous, "clones", 3 * NB_MBUF, CACHE, DATA_ROOM);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&pool, &clones)));
        if let Err(e) = r {
            say(format_args!("FAILED: behaviour {name} on a {kind:?} pool"));
            std::panic::resume_unwind(e);
        }
    }
}

/// One `#[test]` per behaviour of [`behaviour`], each run on `$kinds`.
#[allow(unused_macros)]
macro_rules! behaviour_tests {
    ($kinds:expr) => {
        behaviour_tests!(@one $kinds, pool_exhaustion, |p, _| common::behaviour::pool_exhaustion(p));
        behaviour_tests!(@one $kinds, pool_ptr, |p, _| common::behaviour::pool_ptr(p));
        behaviour_tests!(@one $kinds, one_pktmbuf, |p, _| common::behaviour::one_pktmbuf(p));
        behaviour_tests!(@one $kinds, non_ascii_data, |p, _| common::behaviour::non_ascii_data(p));
        behaviour_tests!(@one $kinds, free_segment, |p, _| common::behaviour::free_segment(p));
        behaviour_tests!(@one $kinds, clone_update_detach, common::behaviour::clone_update_detach);
        behaviour_tests!(@one $kinds, copy, common::behaviour::copy);
        behaviour_tests!(@one $kinds, linearize, |p, _| common::behaviour::linearize(p));
        behaviour_tests!(@one $kinds, alloc_bulk, |p, _| common::behaviour::alloc_bulk(p));
        behaviour_tests!(@one $kinds, read, |p, _| common::behaviour::read(p));
        behaviour_tests!(@one $kinds, read_from_offset, |p, _| common::behaviour::read_from_offset(p));
        behaviour_tests!(@one $kinds, read_from_chain, |p, _| common::behaviour::read_from_chain(p));
        behaviour_tests!(@one $kinds, nb_segs_and_next_reset, |p, _| common::behaviour::nb_segs_and_next_reset(p));
        behaviour_tests!(@one $kinds, sanity, common::behaviour::sanity);
    };
    (@one $kinds:expr, $name:ident, $f:expr) => {
        #[test]
        fn $name() {
            common::run_on(&$kinds, stringify!($name), $f);
        }
    };
}

/// A pool of large objects, or `None` after a SKIP line when the memory's
/// pages are smaller than one object and not IOVA-contiguous (small pages
/// without hugepages: the mempool does not split objects across pages).
pub fn big_pool_or_skip(
    what: &str,
    r: Result<PktPool, pktmem_mbuf::BuildError>,
) -> Option<PktPool> {
    use pktmem_mempool::{CreateError, PopulateError};
    match r {
        Ok(p) => Some(p),
        Err(pktmem_mbuf::BuildError::Mempool(CreateError::Populate(
            e @ PopulateError::ObjectLargerThanPage { .. },
        ))) => {
            skip(format_args!("{what}: {e}"));
            None
        }
        // Small pages only (no hugepage free): an object larger than a page
        // needs IOVA-contiguous memory, which scattered small pages rarely
        // give.
        Err(pktmem_mbuf::BuildError::Mempool(CreateError::Populate(
            e @ PopulateError::OutOfMemory { .. },
        ))) if hugepages_free() == 0 => {
            skip(format_args!("{what} (no hugepages free): {e}"));
            None
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

/// 2 MiB hugepages free on the system (`HugePages_Free`), 0 when unknown.
pub fn hugepages_free() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("HugePages_Free:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
