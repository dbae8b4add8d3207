//! Rows of memory shared between processes (`pktmem::ring::shared`,
//! `pktmem::hugemem::share`). Not in the reference's table: each is
//! printed beside the in-process row it is to be read against.
//!
//! | row | loop | unit | read beside |
//! |---|---|---|---|
//! | `shm_ring_2core_burst32` | a shared descriptor ring of 4096 16-byte descriptors in a memfd mapping; a producer thread on cpu 0 enqueues bursts of 32, a consumer thread on cpu 1 dequeues bursts of 32 into a local array and sums the `addr` words (checked against what was sent); 4 × iterations descriptors | ns per descriptor (wall time / descriptors) | `ring_spsc_2core_burst32` (same loop on a private ring of pointer-sized elements) |
//! | `shared_ring_2proc_burst32` | the same, the consumer being another process: this bench binary re-executed (not forked) with `PKTMEM_COMPARE_SHM_PEER` set, mapping the same memfd (inherited fd); the clock runs from "go" until the peer has stored its sum | ns per descriptor | `shm_ring_2core_burst32` |
//! | `shared_translate_lookup` | 64 MiB of an exported provider's memory, attached with `Placement::Relocate` (never the same VA, so every address is translated): translate a pseudo-random exporter address inside it (xorshift64, as `virt2iova_lookup`) to its IOVA (`Attachment::iova`) and to the peer's local address (`Attachment::to_local`); iterations / 4. The attachment is a thread of this process over `Exporter::connect_pair` — the lookup is the same table walk in a peer process | ns per lookup (both translations) | `virt2iova_lookup` (the issue asks for ≤ 2×) |
//!
//! Control words (ready, go, sum, done) live in the first 4 KiB of the
//! same memfd, on lines of their own; the ring starts at 4 KiB.

use std::hint::black_box;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pktmem::hugemem::share::{Attachment, Exporter, Placement};
use pktmem::hugemem::{AllocRequest, Provider};
use pktmem::ring::shared::{init_shm_ring, shm_ring_bytes, Desc, ShmConsumer, ShmProducer};

use crate::{ns_per, pin, row};

const SLOTS: u32 = 4096;
const BULK: usize = 32;
/// Bytes of control words before the ring.
const CTRL: usize = 4096;
const LEN: usize = 64 << 20;
/// Names the peer role of this binary: `<fd>:<len>:<total>`.
const PEER_ENV: &str = "PKTMEM_COMPARE_SHM_PEER";

/// Control words, each on its own line: offsets into the control block.
const READY: usize = 0;
const GO: usize = 128;
const SUM: usize = 256;
const DONE: usize = 384;

/// A `MAP_SHARED` mapping of a memfd, unmapped on drop.
struct Shm {
    fd: OwnedFd,
    base: NonNull<u8>,
    len: usize,
}

impl Shm {
    /// A new memfd of `len` bytes, mapped. Not close-on-exec: a child this
    /// process spawns inherits it (the bench spawns nothing else).
    fn create(len: usize) -> std::io::Result<Shm> {
        // SAFETY: a NUL-terminated name; flags 0 (no close-on-exec, see above).
        let fd = unsafe { libc::memfd_create(c"pktmem-compare-shm".as_ptr(), 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned to us and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid fd; `len` fits `off_t`.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Shm::map(fd, len)
    }

    /// Maps `len` bytes of `fd`, shared.
    fn map(fd: OwnedFd, len: usize) -> std::io::Result<Shm> {
        // SAFETY: a fresh mapping chosen by the kernel; the fd is valid.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Shm {
            fd,
            base: NonNull::new(p.cast()).expect("mmap returned a non-null address"),
            len,
        })
    }

    /// The control word at `off` (another process may write it: reached
    /// only as an atomic).
    #[allow(clippy::cast_ptr_alignment)] // page-aligned base, `off % 8 == 0` checked
    fn ctrl(&self, off: usize) -> &AtomicU64 {
        assert!(off + 8 <= CTRL && off % 8 == 0);
        // SAFETY: inside the mapping, 8-aligned (page-aligned base), and
        // every access to the control block, here and in the peer, is
        // atomic.
        unsafe { &*self.base.as_ptr().add(off).cast::<AtomicU64>() }
    }

    fn ring(&self) -> (NonNull<u8>, usize) {
        // SAFETY: `CTRL` is inside the mapping (created with room for it).
        let p = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(CTRL)) };
        (p, self.len - CTRL)
    }
}

// SAFETY: the mapping is reached only through atomics (control words, ring
// ends), so sharing a `&Shm` between the two threads of
// `shm_ring_2core_burst32` races on nothing.
unsafe impl Sync for Shm {}

impl Drop for Shm {
    fn drop(&mut self) {
        // SAFETY: our own mapping; every ring end on it is gone (ends are
        // dropped before the `Shm` they were attached to).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// The consumer side of both ring rows: pins to cpu 1, says ready, waits
/// for go, dequeues `total` descriptors in bursts of 32 summing `addr`,
/// stores the sum and says done.
fn consume(shm: &Shm, total: u64) {
    pin(1);
    let (p, len) = shm.ring();
    // SAFETY: the mapping outlives the end (dropped at the end of this
    // function) and is reached only through ends and atomics.
    let mut c = unsafe { ShmConsumer::attach(p, len) }.expect("attach the consumer");
    // Release: pairs with the producer's Acquire load of READY.
    shm.ctrl(READY).store(1, Ordering::Release);
    // Acquire: pairs with the producer's Release store of GO.
    while shm.ctrl(GO).load(Ordering::Acquire) == 0 {
        std::hint::spin_loop();
    }
    let mut out = [Desc::default(); BULK];
    let (mut got, mut sum) = (0u64, 0u64);
    while got < total {
        let n = c.dequeue_burst(&mut out).expect("an honest producer");
        if n == 0 {
            std::hint::spin_loop();
        }
        sum += out[..n].iter().map(|d| d.addr).sum::<u64>();
        got += n as u64;
    }
    // Relaxed: published by the Release store of DONE.
    shm.ctrl(SUM).store(sum, Ordering::Relaxed);
    // Release: pairs with the producer's Acquire load of DONE.
    shm.ctrl(DONE).store(1, Ordering::Release);
}

/// The producer side: waits for ready (`alive` says whether the consumer
/// is still there), starts the clock, says go, enqueues `total`
/// descriptors (bursts of 32, `addr` 1..=n), waits for done; returns
/// ns/descriptor after checking the sum.
fn produce(name: &str, shm: &Shm, total: u64, mut alive: impl FnMut() -> bool) -> Option<f64> {
    let (p, len) = shm.ring();
    // SAFETY: as in `consume`.
    let mut tx = unsafe { ShmProducer::attach(p, len) }.expect("attach the producer");
    let deadline = Instant::now() + Duration::from_secs(20);
    // Acquire: pairs with the consumer's Release store of READY.
    while shm.ctrl(READY).load(Ordering::Acquire) == 0 {
        if !alive() || Instant::now() > deadline {
            eprintln!("compare/shared: {name}: the consumer never got ready");
            return None;
        }
        std::thread::yield_now();
    }
    let objs: Vec<Desc> = (1..=BULK as u64).map(|i| Desc::new(i, 0)).collect();
    let (mut sent, mut sent_sum) = (0u64, 0u64);
    let start = Instant::now();
    // Release: pairs with the consumer's Acquire load of GO.
    shm.ctrl(GO).store(1, Ordering::Release);
    while sent < total {
        let want = (total - sent).min(BULK as u64) as usize;
        let n = tx.enqueue_burst(&objs[..want]).expect("an honest consumer");
        if n == 0 {
            std::hint::spin_loop();
        }
        sent += n as u64;
        sent_sum += (n * (n + 1) / 2) as u64;
    }
    // Acquire: pairs with the consumer's Release store of DONE (its SUM
    // store is visible after).
    while shm.ctrl(DONE).load(Ordering::Acquire) == 0 {
        // Acquire: as above (the consumer may have said done and exited
        // between the two loads).
        if !alive() && shm.ctrl(DONE).load(Ordering::Acquire) == 0 {
            eprintln!("compare/shared: {name}: the consumer died");
            return None;
        }
        std::hint::spin_loop();
    }
    let v = ns_per(start, total);
    let sum = shm.ctrl(SUM).load(Ordering::Relaxed);
    assert_eq!(sum, sent_sum, "{name}: descriptors lost or duplicated");
    Some(v)
}

/// A memfd with an initialised ring of `SLOTS` after the control block.
fn ring_shm() -> Option<Shm> {
    let shm = match Shm::create(CTRL + shm_ring_bytes(SLOTS)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("compare/shared: memfd: {e}");
            return None;
        }
    };
    let (p, len) = shm.ring();
    // SAFETY: the mapping is ours and alive; no end exists yet.
    unsafe { init_shm_ring(p, len, SLOTS) }.expect("a ring fits its memory");
    Some(shm)
}

/// A spawned peer, killed and reaped on drop (also when a check panics).
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// If this process is the re-executed peer of `shared_ring_2proc_burst32`,
/// runs the consumer and returns true (then `main` returns: the peer
/// prints no rows).
pub fn peer_main() -> bool {
    let Ok(spec) = std::env::var(PEER_ENV) else {
        return false;
    };
    let mut it = spec.split(':').map(|s| s.parse::<u64>().expect("a number"));
    let (fd, len, total) = match (it.next(), it.next(), it.next()) {
        (Some(f), Some(l), Some(t)) => (f as i32, l as usize, t),
        _ => panic!("{PEER_ENV}={spec}: want <fd>:<len>:<total>"),
    };
    // SAFETY: the parent handed us this fd (inherited across exec) for
    // exactly this; nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let shm = Shm::map(fd, len).expect("map the parent's memfd");
    consume(&shm, total);
    true
}

/// The translation row: a relocated attachment to an exported provider.
#[allow(clippy::many_single_char_names)]
fn translate(iters: u64) {
    let p = match Provider::builder().exportable().quiet(true).build() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("compare/shared: shared_translate_lookup: provider: {e}");
            return;
        }
    };
    let c = match p.alloc_shared(&AllocRequest::new(LEN)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("compare/shared: shared_translate_lookup: cannot allocate 64 MiB: {e}");
            return;
        }
    };
    if c.page_size() == 4096 {
        eprintln!(
            "compare/shared: shared_translate_lookup: no hugepages available, fell back to 4 KiB pages"
        );
    }
    let exp = match Exporter::builder(&p).unbound() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("compare/shared: shared_translate_lookup: export: {e}");
            return;
        }
    };
    let a = match exp
        .connect_pair()
        .map_err(|e| e.to_string())
        .and_then(|fd| {
            Attachment::builder("compare")
                .placement(Placement::Relocate)
                .from_fd(fd)
                .map_err(|e| e.to_string())
        }) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("compare/shared: shared_translate_lookup: attach: {e}");
            return;
        }
    };
    let base = c.as_ptr().as_ptr() as u64;
    assert!(!a.same_va(), "Relocate placement maps elsewhere");
    // Checked once before timing: both translations agree with the
    // exporter's own view, and the local address is really elsewhere.
    let probe = base + (LEN as u64 / 2) + 12_345;
    assert_eq!(a.iova(probe), p.virt2iova(probe as *const u8));
    let local = a.to_local(probe, 1).expect("mapped in the peer");
    assert_ne!(local.as_ptr() as u64, probe);
    let mut x: u64 = 88_172_645_463_325_252;
    let mut acc: u64 = 0;
    let n = (iters / 4).max(1);
    let start = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let va = base + x % LEN as u64;
        let iova = a.iova(va);
        let local = a.to_local(va, 1);
        acc = acc
            .wrapping_add(iova.map_or(0, |i| i.0))
            .wrapping_add(local.map_or(0, |l| l.as_ptr() as u64));
    }
    row("shared_translate_lookup", ns_per(start, n), "ns/lookup");
    black_box(acc);
    // The two halves, for the breakdown (stderr: not rows).
    let start = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        acc = acc.wrapping_add(a.iova(base + x % LEN as u64).map_or(0, |i| i.0));
    }
    let iova_ns = ns_per(start, n);
    let start = Instant::now();
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let l = a.to_local(base + x % LEN as u64, 1);
        acc = acc.wrapping_add(l.map_or(0, |l| l.as_ptr() as u64));
    }
    let local_ns = ns_per(start, n);
    black_box(acc);
    eprintln!(
        "compare/shared: shared_translate_lookup = iova {iova_ns:.3} ns + to_local {local_ns:.3} ns (each alone)"
    );
    drop(a);
    drop(exp);
    drop(c);
}

/// Prints the shared rows.
pub fn run(iters: u64) {
    let total = iters * 4;
    // SAFETY: sysconf only reads a configuration value.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    if cpus < 2 {
        eprintln!("compare: one CPU only, skipping the two-core shared ring rows");
    } else {
        if let Some(shm) = ring_shm() {
            let v = std::thread::scope(|s| {
                let h = s.spawn(|| consume(&shm, total));
                pin(0);
                let v = produce("shm_ring_2core_burst32", &shm, total, || !h.is_finished());
                h.join().expect("consumer thread panicked");
                v
            });
            if let Some(v) = v {
                row("shm_ring_2core_burst32", v, "ns/elem");
            }
        }
        if let Some(shm) = ring_shm() {
            two_proc(&shm, total);
        }
    }
    translate(iters);
}

/// `shared_ring_2proc_burst32`: this binary re-executed as the consumer.
fn two_proc(shm: &Shm, total: u64) {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("compare/shared: shared_ring_2proc_burst32: current_exe: {e}");
            return;
        }
    };
    let spec = format!("{}:{}:{total}", shm.fd.as_raw_fd(), shm.len);
    let child = match Command::new(exe).env(PEER_ENV, spec).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("compare/shared: shared_ring_2proc_burst32: spawn: {e}");
            return;
        }
    };
    let mut peer = Peer(child);
    pin(0);
    let v = produce("shared_ring_2proc_burst32", shm, total, || {
        matches!(peer.0.try_wait(), Ok(None))
    });
    match peer.0.wait() {
        Ok(st) if st.success() => {}
        Ok(st) => {
            eprintln!("compare/shared: shared_ring_2proc_burst32: the peer exited with {st}");
            return;
        }
        Err(e) => {
            eprintln!("compare/shared: shared_ring_2proc_burst32: wait: {e}");
            return;
        }
    }
    if let Some(v) = v {
        row("shared_ring_2proc_burst32", v, "ns/elem");
    }
}
