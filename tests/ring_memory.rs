//! Where a ring's slots live: `build_on` with owned memory (size and
//! alignment checks that hand the memory back, the owner dropped exactly
//! once and only when the last handle goes, single-end splits on such
//! rings), and the RTS head-tail distance limit (settings, errors, and
//! conservation under threads with tight limits).

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use pktmem::ring::{
    End, HeapMemory, Ring, RingBuilder, RingError, RingMemory, SyncMode, MAX_CAPACITY,
};

/// A [`HeapMemory`] seen from `offset` bytes in, counting its drops.
struct Counted {
    mem: HeapMemory,
    offset: usize,
    drops: Arc<AtomicUsize>,
}

impl Counted {
    /// Address of the first byte offered to the ring.
    fn addr(&self) -> usize {
        self.mem.as_ptr().as_ptr() as usize + self.offset
    }

    fn new(b: &RingBuilder<u64>, extra: usize, offset: usize) -> (Self, Arc<AtomicUsize>) {
        let l = b.memory_layout().unwrap();
        let l = std::alloc::Layout::from_size_align(l.size() + extra, l.align()).unwrap();
        let drops = Arc::new(AtomicUsize::new(0));
        let mem = HeapMemory::new(l).unwrap();
        (
            Counted {
                mem,
                offset,
                drops: drops.clone(),
            },
            drops,
        )
    }
}

// SAFETY: a sub-range of a `HeapMemory` (which satisfies the contract),
// `offset <= size` by construction in these tests; nothing else touches it.
unsafe impl RingMemory for Counted {
    fn base_ptr(&mut self) -> NonNull<u8> {
        // SAFETY: `offset` is within the buffer (or one past its end).
        unsafe { NonNull::new_unchecked(self.mem.as_ptr().as_ptr().add(self.offset)) }
    }
    fn size(&self) -> usize {
        self.mem.size() - self.offset
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn build_on_keeps_the_memory_until_the_last_handle() {
    let b = Ring::<u64>::builder(64).initial_index(u32::MAX - 20);
    let (mem, drops) = Counted::new(&b, 0, 0);
    let base = mem.addr();
    let ring = b.build_on(mem).unwrap();
    assert_eq!(ring.memory_range(), base..base + 64 * 8);
    assert_eq!(ring.capacity(), 63);
    // Differential against a VecDeque across the index wrap.
    let mut model = VecDeque::new();
    let mut next = 0u64;
    for round in 0..200u64 {
        let k = (round * 7 % 50) as usize;
        let vals: Vec<u64> = (next..next + k as u64).collect();
        let put = ring.enqueue_burst(&vals);
        assert_eq!(put, k.min(63 - model.len()));
        model.extend(&vals[..put]);
        next += put as u64;
        let mut out = vec![0; (round * 5 % 40) as usize];
        let got = ring.dequeue_burst(&mut out);
        assert_eq!(got, out.len().min(model.len()));
        for v in &out[..got] {
            assert_eq!(Some(*v), model.pop_front());
        }
        assert_eq!(ring.len(), model.len());
    }
    let (p, c) = ring.into_spsc();
    p.enqueue(7).unwrap();
    drop(p);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "freed while a handle lives"
    );
    while let Some(v) = c.dequeue() {
        if v == 7 {
            break;
        }
        assert_eq!(Some(v), model.pop_front());
    }
    assert!(model.is_empty() && c.is_empty());
    drop(c);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "freed exactly once");
}

#[test]
fn build_on_splits_into_every_kind_of_end() {
    let b = || Ring::<u64>::builder(16).consumer(SyncMode::Hts);
    let (mem, drops) = Counted::new(&b(), 0, 0);
    let (p, c) = b().build_on(mem).unwrap().into_sp_mc();
    p.enqueue_bulk(&[1, 2, 3]).unwrap();
    let g = c.dequeue_start(2).unwrap();
    assert_eq!((g.get(0), g.get(1)), (Some(1), Some(2)));
    g.finish(2);
    assert_eq!(c.dequeue(), Some(3));
    drop((p, c));
    let (mem, drops2) = Counted::new(&b(), 0, 0);
    let (p, c) = b().build_on(mem).unwrap().into_mp_sc();
    p.enqueue(9).unwrap();
    assert_eq!(c.dequeue(), Some(9));
    drop((p, c));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(drops2.load(Ordering::SeqCst), 1);
}

#[test]
fn refused_memory_comes_back_with_the_numbers() {
    let b = Ring::<u64>::builder(128);
    let needed = b.memory_size().unwrap();
    assert_eq!(needed, 1024);

    // One element short.
    let (mem, drops) = Counted::new(&b, 0, 64);
    let e = b.clone().build_on(mem).unwrap_err();
    assert_eq!(
        e.error,
        RingError::MemoryTooSmall {
            needed,
            provided: needed - 64
        }
    );
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "the memory came back alive"
    );
    assert!(e.to_string().contains("1024"), "{e}");
    drop(e);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    // Big enough but 8 bytes off the required 64.
    let (mem, drops) = Counted::new(&b, 64, 8);
    let addr = mem.addr();
    let e = b.clone().build_on(mem).unwrap_err();
    assert_eq!(e.error, RingError::MemoryMisaligned { align: 64, addr });
    // The same memory, used from its aligned start, is accepted.
    let mut mem = e.memory;
    mem.offset = 0;
    let ring = b.clone().build_on(mem).unwrap();
    ring.enqueue(5).unwrap();
    assert_eq!(ring.dequeue(), Some(5));
    drop(ring);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    // Bad settings refuse the memory too, before looking at it.
    for (builder, want) in [
        (Ring::<u64>::builder(0), RingError::ZeroCapacity),
        (
            Ring::<u64>::builder(100),
            RingError::NotPowerOfTwo { requested: 100 },
        ),
        (
            Ring::<u64>::builder(MAX_CAPACITY + 1),
            RingError::TooLarge {
                requested: MAX_CAPACITY + 1,
                max: MAX_CAPACITY,
            },
        ),
        (
            Ring::<u64>::builder(128).consumer_max_distance(3),
            RingError::MaxDistanceNotRts { end: End::Consumer },
        ),
    ] {
        let (mem, drops) = Counted::new(&b, 0, 0);
        let e = builder.build_on(mem).unwrap_err();
        assert_eq!(e.error, want);
        drop(e);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn build_in_and_build_check_the_same_things() {
    let b = Ring::<u64>::builder(128).producer_max_distance(1);
    assert_eq!(
        b.clone().build().unwrap_err(),
        RingError::MaxDistanceNotRts { end: End::Producer }
    );
    let mem = HeapMemory::new(b.memory_layout().unwrap()).unwrap();
    // SAFETY: `mem` outlives the (not) built ring and nothing else uses it.
    let r = unsafe { b.build_in(mem.as_ptr(), mem.size()) };
    assert_eq!(
        r.unwrap_err(),
        RingError::MaxDistanceNotRts { end: End::Producer }
    );
    // Zero-sized elements: no memory, still a working ring.
    let r = Ring::<()>::builder(8).build().unwrap();
    r.enqueue_bulk(&[(); 7]).unwrap();
    assert!(r.is_full());
}

#[test]
fn max_distance_settings() {
    let r = Ring::<u64>::builder(4096)
        .producer(SyncMode::Rts)
        .consumer(SyncMode::Rts)
        .build()
        .unwrap();
    assert_eq!(
        (r.producer_max_distance(), r.consumer_max_distance()),
        (Some(4095 / 8), Some(4095 / 8)),
        "DPDK's default: capacity / 8"
    );
    let r = Ring::<u64>::builder(1000)
        .exact_size(true)
        .producer(SyncMode::Rts)
        .consumer(SyncMode::Multi)
        .producer_max_distance(u32::MAX)
        .build()
        .unwrap();
    assert_eq!(
        (r.producer_max_distance(), r.consumer_max_distance()),
        (Some(u32::MAX), None)
    );
    // A limit of 0 serialises the side but a lone thread still gets through,
    // bulk and burst, across the index wrap.
    let r = Ring::<u64>::builder(8)
        .producer(SyncMode::Rts)
        .consumer(SyncMode::Rts)
        .producer_max_distance(0)
        .consumer_max_distance(0)
        .initial_index(u32::MAX - 3)
        .build()
        .unwrap();
    for i in 0..20u64 {
        r.enqueue_bulk(&[i, i + 1]).unwrap();
        assert_eq!(r.enqueue_burst(&[i + 2; 9]), 5);
        let mut out = [0; 7];
        assert_eq!(r.dequeue_burst(&mut out), 7);
        assert_eq!(out[..3], [i, i + 1, i + 2]);
    }
}

/// Producers and consumers on RTS sides with tight distance limits: every
/// value sent arrives exactly once (sums and counts match), and the run
/// makes progress: each producer sends its share, which a thread waiting
/// forever on a distance that never shrinks would prevent. The deadline only
/// bounds a hang; a loaded machine makes the run slower, not failed.
fn rts_limited(prod_max: u32, cons_max: u32) {
    const THREADS: usize = 2;
    const EACH: u64 = 2_000;
    const HANG: Duration = Duration::from_secs(60);
    let ring = Arc::new(
        Ring::<u64>::builder(64)
            .producer(SyncMode::Rts)
            .consumer(SyncMode::Rts)
            .producer_max_distance(prod_max)
            .consumer_max_distance(cons_max)
            .build()
            .unwrap(),
    );
    let sent = Arc::new(AtomicU64::new(0));
    let sent_n = Arc::new(AtomicU64::new(0));
    let got = Arc::new(AtomicU64::new(0));
    let got_n = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(2 * THREADS));
    let deadline = Instant::now() + HANG;
    let mut hs = Vec::new();
    for t in 0..THREADS as u64 {
        let (r, sum, count, go) = (ring.clone(), sent.clone(), sent_n.clone(), start.clone());
        hs.push(std::thread::spawn(move || {
            go.wait();
            let mut i = 0u64;
            while i < EACH && Instant::now() < deadline {
                let k = (1 + (i % 5)).min(EACH - i);
                let vals: Vec<u64> = (0..k).map(|j| (t << 40) + i + j + 1).collect();
                let n = r.enqueue_burst(&vals);
                sum.fetch_add(vals[..n].iter().sum(), Ordering::Relaxed);
                count.fetch_add(n as u64, Ordering::Relaxed);
                i += n as u64;
            }
        }));
        let (r, sum, count, go) = (ring.clone(), got.clone(), got_n.clone(), start.clone());
        hs.push(std::thread::spawn(move || {
            go.wait();
            let mut out = [0u64; 4];
            // Relaxed: only a stop condition; the totals are read after join.
            while count.load(Ordering::Relaxed) < THREADS as u64 * EACH && Instant::now() < deadline
            {
                let n = r.dequeue_burst(&mut out[..1 + (t as usize % 4)]);
                sum.fetch_add(out[..n].iter().sum(), Ordering::Relaxed);
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }));
    }
    for h in hs {
        h.join().unwrap();
    }
    let mut out = [0u64; 64];
    let n = ring.dequeue_burst(&mut out);
    assert!(ring.is_empty());
    got.fetch_add(out[..n].iter().sum(), Ordering::Relaxed);
    got_n.fetch_add(n as u64, Ordering::Relaxed);
    let moved = sent_n.load(Ordering::Relaxed);
    assert_eq!(
        moved,
        THREADS as u64 * EACH,
        "limits {prod_max}/{cons_max}: producers stalled for {HANG:?}"
    );
    assert_eq!(got_n.load(Ordering::Relaxed), moved, "count conserved");
    assert_eq!(
        got.load(Ordering::Relaxed),
        sent.load(Ordering::Relaxed),
        "values conserved"
    );
}

#[test]
fn rts_limit_zero_conserves() {
    rts_limited(0, 0);
}

#[test]
fn rts_limit_one_conserves() {
    rts_limited(1, 1);
}

#[test]
fn rts_limit_mixed_conserves() {
    rts_limited(2, u32::MAX);
    rts_limited(u32::MAX, 3);
}

/// A ring on an anonymous map, and one on a file map whose slots are the
/// file's bytes: what the ring wrote is in the file after the ring is gone.
#[test]
fn rings_on_memory_maps() {
    let b = Ring::<u64>::builder(64);
    let size = b.memory_size().unwrap();
    let (p, c) = b
        .clone()
        .build_on(memmap2::MmapMut::map_anon(size).unwrap())
        .unwrap()
        .into_spsc();
    p.enqueue_bulk(&[1, 2, 3]).unwrap();
    assert_eq!(c.dequeue(), Some(1));
    drop((p, c));

    let path = std::env::temp_dir().join(format!("pktmem-ring-map-{}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len(size as u64 - 8).unwrap();
    // SAFETY: a file of our own, which nothing else opens while mapped.
    let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
    let e = b.clone().build_on(map).unwrap_err();
    assert_eq!(
        e.error,
        RingError::MemoryTooSmall {
            needed: size,
            provided: size - 8
        }
    );
    drop(e);
    file.set_len(size as u64).unwrap();
    // SAFETY: as above.
    let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
    let ring = b.build_on(map).unwrap();
    ring.enqueue_bulk(&[0xA1, 0xB2, 0xC3]).unwrap();
    assert_eq!(ring.dequeue(), Some(0xA1));
    drop(ring); // unmaps
    let bytes = std::fs::read(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    let slot = |i: usize| u64::from_ne_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
    assert_eq!((slot(0), slot(1), slot(2)), (0xA1, 0xB2, 0xC3));
}
