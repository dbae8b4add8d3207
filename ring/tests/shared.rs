//! `pktmem_ring::shared`: the cross-process descriptor ring, here on plain
//! memory (two processes are covered by the shared pools' tests).
//!
//! - Differential: random bursts and bulks, re-attaches of either end,
//!   against a `VecDeque` model, with the shared indices checked after
//!   every operation; capacities 1..64, indices starting near `u64::MAX`
//!   (they wrap).
//! - All-or-nothing bulks; many laps round a small ring.
//! - Corruption: bogus heads, tails and headers written into the shared
//!   words give `Corrupt` / header errors with the numbers; a thread
//!   scribbling at random over the shared words never makes an end panic.
//! - Resume: ends dropped and re-attached mid-stream (also from two
//!   threads) lose and repeat nothing.
//! - Two threads stream 10⁶ descriptors in order.

// Dropping an end before re-attaching is what the resume tests are about;
// ends have no `Drop` (leaving the ring as it is, is what restart means).
#![allow(
    clippy::too_many_lines,
    clippy::many_single_char_names,
    clippy::drop_non_drop
)]

mod common;

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Rng;
use pktmem_ring::shared::{
    init_shm_ring, layout, shm_ring_bytes, shm_ring_indices, shm_ring_read_slot, Desc, ShmConsumer,
    ShmIndex, ShmProducer, ShmRingError,
};

/// Memory for a ring, reached only through its raw pointer while rings
/// use it.
struct Mem {
    words: Vec<u64>,
}

impl Mem {
    /// Memory for a ring of `capacity`, initialised.
    fn ring(capacity: u32) -> Mem {
        let m = Mem::raw(shm_ring_bytes(capacity));
        // SAFETY: `m` is alive, and no end exists yet.
        unsafe { init_shm_ring(m.ptr(), m.len(), capacity) }.unwrap();
        m
    }

    /// `bytes` (rounded up to 8) of zeroes.
    fn raw(bytes: usize) -> Mem {
        Mem {
            words: vec![0; bytes.div_ceil(8)],
        }
    }

    fn ptr(&self) -> NonNull<u8> {
        NonNull::new(self.words.as_ptr().cast_mut().cast::<u8>()).unwrap()
    }

    fn len(&self) -> usize {
        self.words.len() * 8
    }

    fn producer(&self) -> Result<ShmProducer, ShmRingError> {
        // SAFETY: the memory outlives every end in these tests (ends are
        // dropped before their `Mem`; threads are scoped) and is reached
        // only through ends, these helpers and atomics.
        unsafe { ShmProducer::attach(self.ptr(), self.len()) }
    }

    fn consumer(&self) -> Result<ShmConsumer, ShmRingError> {
        // SAFETY: as in `producer`.
        unsafe { ShmConsumer::attach(self.ptr(), self.len()) }
    }

    fn indices(&self) -> Result<(u64, u64), ShmRingError> {
        // SAFETY: as in `producer`.
        unsafe { shm_ring_indices(self.ptr(), self.len()) }
    }

    /// The `u64` word at byte `off`, as an atomic (the way a hostile peer
    /// would write it).
    #[allow(clippy::cast_ptr_alignment)] // checked on the line below
    fn word(&self, off: usize) -> &AtomicU64 {
        assert!(off % 8 == 0 && off + 8 <= self.len());
        // SAFETY: in bounds and aligned (checked); every access to the
        // memory while ends live is atomic.
        unsafe { &*self.ptr().as_ptr().add(off).cast::<AtomicU64>() }
    }

    #[allow(clippy::cast_ptr_alignment)] // checked on the line below
    fn word32(&self, off: usize) -> &AtomicU32 {
        assert!(off % 4 == 0 && off + 4 <= self.len());
        // SAFETY: as in `word`.
        unsafe { &*self.ptr().as_ptr().add(off).cast::<AtomicU32>() }
    }

    fn set_tail(&self, v: u64) {
        self.word(layout::TAIL_OFFSET).store(v, Ordering::SeqCst);
    }

    fn set_head(&self, v: u64) {
        self.word(layout::HEAD_OFFSET).store(v, Ordering::SeqCst);
    }
}

fn d(i: u64) -> Desc {
    Desc::new(i.wrapping_mul(0x9E37_79B9_7F4A_7C15), !i)
}

/// Random operations on both ends against a `VecDeque`.
fn differential(capacity: u32, start: u64, seed: u64, ops: usize) {
    let m = Mem::ring(capacity);
    m.set_head(start);
    m.set_tail(start);
    let cap = capacity as usize;
    let mut rng = Rng(seed);
    let mut model: VecDeque<Desc> = VecDeque::new();
    let (mut p, mut c) = (m.producer().unwrap(), m.consumer().unwrap());
    let (mut head, mut tail) = (start, start);
    let mut next = 0u64;
    let mut out = vec![Desc::default(); cap + 4];
    for op in 0..ops {
        let k = rng.below(cap as u64 + 4) as usize;
        match rng.below(10) {
            0..=2 => {
                let burst: Vec<Desc> = (next..next + k as u64).map(d).collect();
                let n = p.enqueue_burst(&burst).unwrap();
                assert_eq!(n, k.min(cap - model.len()), "op {op}: burst of {k}");
                model.extend(&burst[..n]);
                next += n as u64;
            }
            3 | 4 => {
                let bulk: Vec<Desc> = (next..next + k as u64).map(d).collect();
                let free = cap - model.len();
                match p.enqueue_bulk(&bulk) {
                    Ok(()) => {
                        assert!(k <= free, "op {op}: bulk of {k} into {free} free");
                        model.extend(&bulk);
                        next += k as u64;
                    }
                    Err(e) => {
                        assert!(k > free, "op {op}: bulk of {k} refused with {free} free");
                        assert_eq!(e, ShmRingError::Full { need: k, free });
                    }
                }
            }
            5 | 6 => {
                let n = c.dequeue_burst(&mut out[..k]).unwrap();
                assert_eq!(n, k.min(model.len()), "op {op}");
                for got in &out[..n] {
                    assert_eq!(Some(*got), model.pop_front(), "op {op}");
                }
            }
            7 => match c.dequeue_bulk(&mut out[..k]) {
                Ok(()) => {
                    for got in &out[..k] {
                        assert_eq!(Some(*got), model.pop_front(), "op {op}");
                    }
                }
                Err(e) => assert_eq!(
                    e,
                    ShmRingError::Empty {
                        need: k,
                        available: model.len()
                    },
                    "op {op}"
                ),
            },
            8 => {
                assert_eq!(p.free_space().unwrap() as usize, cap - model.len());
                assert_eq!(c.peek_published().unwrap(), tail);
            }
            _ => {
                if rng.below(2) == 0 {
                    drop(p);
                    p = m.producer().unwrap();
                } else {
                    drop(c);
                    c = m.consumer().unwrap();
                }
            }
        }
        tail = start.wrapping_add(next);
        head = tail.wrapping_sub(model.len() as u64);
        assert_eq!((p.position(), c.position()), (tail, head), "op {op}");
        assert_eq!(m.indices().unwrap(), (head, tail), "op {op}");
    }
    // What is left reads back through the reclaim view, then drains.
    for (i, want) in model.iter().enumerate() {
        let pos = head.wrapping_add(i as u64);
        // SAFETY: as in `Mem::producer`.
        let got = unsafe { shm_ring_read_slot(m.ptr(), m.len(), pos) }.unwrap();
        assert_eq!(got, *want);
    }
    let n = c.dequeue_burst(&mut out).unwrap();
    assert_eq!(n, model.len());
    assert!(out[..n].iter().eq(model.iter()));
    assert_eq!(c.position(), tail);
}

#[test]
fn differential_against_vecdeque() {
    for (i, cap) in [1u32, 2, 4, 8, 64].into_iter().enumerate() {
        for start in [0, u64::MAX - 37] {
            differential(cap, start, 0x5EED + i as u64 * 977 + start % 7, 20_000);
        }
    }
}

#[test]
fn bulk_is_all_or_nothing() {
    let m = Mem::ring(8);
    let (mut p, mut c) = (m.producer().unwrap(), m.consumer().unwrap());
    p.enqueue_bulk(&[d(0), d(1), d(2), d(3), d(4)]).unwrap();
    let before: Vec<Desc> = (0..8)
        // SAFETY: as in `Mem::producer`.
        .map(|i| unsafe { shm_ring_read_slot(m.ptr(), m.len(), i) }.unwrap())
        .collect();
    let err = p
        .enqueue_bulk(&[d(5), d(6), d(7), d(8)])
        .expect_err("4 into 3 free");
    assert_eq!(err, ShmRingError::Full { need: 4, free: 3 });
    assert_eq!(m.indices().unwrap(), (0, 5), "nothing published");
    let after: Vec<Desc> = (0..8)
        // SAFETY: as in `Mem::producer`.
        .map(|i| unsafe { shm_ring_read_slot(m.ptr(), m.len(), i) }.unwrap())
        .collect();
    assert_eq!(before, after, "no slot written");
    let mut out = [Desc::default(); 6];
    assert_eq!(
        c.dequeue_bulk(&mut out),
        Err(ShmRingError::Empty {
            need: 6,
            available: 5
        })
    );
    assert_eq!(m.indices().unwrap(), (0, 5), "nothing consumed");
    c.dequeue_bulk(&mut out[..5]).unwrap();
    assert_eq!(out[..5], [d(0), d(1), d(2), d(3), d(4)]);
    // An empty bulk is fine both ways and moves nothing.
    p.enqueue_bulk(&[]).unwrap();
    c.dequeue_bulk(&mut []).unwrap();
    assert_eq!(m.indices().unwrap(), (5, 5));
}

#[test]
fn wraps_round_many_laps() {
    let m = Mem::ring(4);
    let (mut p, mut c) = (m.producer().unwrap(), m.consumer().unwrap());
    let mut out = [Desc::default(); 3];
    for lap in 0..10_000u64 {
        let base = lap * 3;
        p.enqueue_bulk(&[d(base), d(base + 1), d(base + 2)])
            .unwrap();
        c.dequeue_bulk(&mut out).unwrap();
        assert_eq!(out, [d(base), d(base + 1), d(base + 2)], "lap {lap}");
    }
    assert_eq!(m.indices().unwrap(), (30_000, 30_000));
}

#[test]
fn the_other_index_is_reloaded_only_when_the_cache_runs_short() {
    let m = Mem::ring(8);
    let (mut p, mut c) = (m.producer().unwrap(), m.consumer().unwrap());
    let mut out = [Desc::default(); 8];
    p.enqueue_bulk(&[d(0), d(1)]).unwrap();
    assert_eq!(c.dequeue_burst(&mut out[..2]).unwrap(), 2);
    assert_eq!(c.peer_position(), 2, "short by the cache: reloaded");
    // 6 free by the cached head (0): no reload, though the real head is 2.
    p.enqueue_bulk(&[d(2), d(3)]).unwrap();
    assert_eq!(p.peer_position(), 0);
    // 4 free by the cache, 5 asked: reloaded, 6 free.
    assert_eq!(p.enqueue_burst(&[d(4); 5]).unwrap(), 5);
    assert_eq!(p.peer_position(), 2);
    // The consumer's cache shows nothing after the 2 it took.
    assert_eq!(c.dequeue_burst(&mut out[..1]).unwrap(), 1);
    assert_eq!(c.peer_position(), 9, "1 asked, 0 by the cache: reloaded");
    p.enqueue_bulk(&[d(9)]).unwrap();
    assert_eq!(c.dequeue_burst(&mut out[..1]).unwrap(), 1);
    assert_eq!(
        c.peer_position(),
        9,
        "1 asked, 6 by the cache: not reloaded"
    );
    assert_eq!(c.peek_published().unwrap(), 10);
}

#[test]
fn corrupt_indices_are_typed_errors_with_the_numbers() {
    let m = Mem::ring(8);
    let (mut p, mut c) = (m.producer().unwrap(), m.consumer().unwrap());
    let mut out = [Desc::default(); 4];

    // A tail more than the capacity ahead of the consumer's head.
    m.set_tail(9);
    let e = c.dequeue_burst(&mut out).unwrap_err();
    assert_eq!(
        e,
        ShmRingError::Corrupt {
            which: ShmIndex::Tail,
            seen: 9,
            ours: 0,
            min: 0,
            max: 8
        }
    );
    let text = e.to_string();
    assert!(
        text.contains("tail index 9") && text.contains("0..=8"),
        "{text}"
    );
    assert!(c.peek_published().is_err(), "reported again");
    assert!(
        ShmConsumer::attach_check(&m).is_err(),
        "attach refuses it too"
    );
    // A producer attaching finds the head more than the capacity behind.
    assert_eq!(
        m.producer().unwrap_err(),
        ShmRingError::Corrupt {
            which: ShmIndex::Head,
            seen: 0,
            ours: 9,
            min: 1,
            max: 9
        }
    );
    m.set_tail(0); // honest again: the end works
    assert_eq!(c.dequeue_burst(&mut out).unwrap(), 0);

    // A tail that goes backwards.
    p.enqueue_bulk(&[d(0), d(1), d(2)]).unwrap();
    assert_eq!(c.peek_published().unwrap(), 3);
    m.set_tail(1);
    assert_eq!(
        c.peek_published().unwrap_err(),
        ShmRingError::Corrupt {
            which: ShmIndex::Tail,
            seen: 1,
            ours: 0,
            min: 3,
            max: 8
        }
    );
    // A tail far behind (wrapping below zero) is caught too.
    m.set_tail(u64::MAX);
    assert!(matches!(
        c.peek_published(),
        Err(ShmRingError::Corrupt { seen: u64::MAX, .. })
    ));
    m.set_tail(3);

    // A head ahead of the producer's tail.
    m.set_head(5);
    assert_eq!(
        p.free_space().unwrap_err(),
        ShmRingError::Corrupt {
            which: ShmIndex::Head,
            seen: 5,
            ours: 3,
            min: 0,
            max: 3
        }
    );
    // ... and on the fast path once the cache runs short.
    assert_eq!(
        p.enqueue_burst(&[d(9); 5]).unwrap(),
        5,
        "cache shows 5 free"
    );
    m.set_head(9);
    assert_eq!(
        p.enqueue_burst(&[d(9)]).unwrap_err(),
        ShmRingError::Corrupt {
            which: ShmIndex::Head,
            seen: 9,
            ours: 8,
            min: 0,
            max: 8
        }
    );
    // The owner's view sees the tail behind the head.
    assert!(matches!(
        m.indices(),
        Err(ShmRingError::Corrupt {
            which: ShmIndex::Tail,
            seen: 8,
            ours: 9,
            ..
        })
    ));
    m.set_head(0);

    // A head that goes backwards.
    c.dequeue_bulk(&mut out[..2]).unwrap();
    assert_eq!(p.free_space().unwrap(), 2);
    assert_eq!(p.peer_position(), 2);
    m.set_head(1);
    assert_eq!(
        p.free_space().unwrap_err(),
        ShmRingError::Corrupt {
            which: ShmIndex::Head,
            seen: 1,
            ours: 8,
            min: 2,
            max: 8
        }
    );
    m.set_head(2);
    assert_eq!(p.free_space().unwrap(), 2);
}

/// The consumer-side attach, as a helper so the check reads in one line.
trait AttachCheck {
    fn attach_check(m: &Mem) -> Result<(), ShmRingError>;
}

impl AttachCheck for ShmConsumer {
    fn attach_check(m: &Mem) -> Result<(), ShmRingError> {
        m.consumer().map(drop)
    }
}

#[test]
fn bad_headers_and_memory_are_typed_errors() {
    // Not initialised: all zeroes.
    let m = Mem::raw(shm_ring_bytes(8));
    assert_eq!(
        m.producer().unwrap_err(),
        ShmRingError::BadMagic {
            found: 0,
            expected: layout::MAGIC
        }
    );
    // Header shorter than the fixed part.
    let small = Mem::raw(layout::SLOTS_OFFSET - 8);
    assert_eq!(
        small.consumer().unwrap_err(),
        ShmRingError::TooSmall {
            need: layout::SLOTS_OFFSET,
            have: layout::SLOTS_OFFSET - 8
        }
    );
    let m = Mem::ring(8);
    m.word32(layout::VERSION_OFFSET).store(7, Ordering::SeqCst);
    let e = m.producer().unwrap_err();
    assert_eq!(e, ShmRingError::BadVersion { found: 7, ours: 1 });
    assert!(e.to_string().contains("version 7"));
    m.word32(layout::VERSION_OFFSET)
        .store(layout::VERSION, Ordering::SeqCst);
    for bad in [0u32, 3, 12, 1 << 25] {
        m.word32(layout::CAPACITY_OFFSET)
            .store(bad, Ordering::SeqCst);
        assert_eq!(
            m.consumer().unwrap_err(),
            ShmRingError::BadCapacity {
                capacity: bad,
                max: 1 << 24
            }
        );
    }
    // A valid capacity the memory is too short for.
    m.word32(layout::CAPACITY_OFFSET)
        .store(16, Ordering::SeqCst);
    assert_eq!(
        m.producer().unwrap_err(),
        ShmRingError::TooSmall {
            need: shm_ring_bytes(16),
            have: m.len()
        }
    );
    // SAFETY: as in `Mem::producer`.
    let e = unsafe { shm_ring_read_slot(m.ptr(), m.len(), 0) }.unwrap_err();
    assert!(matches!(e, ShmRingError::TooSmall { .. }));
    m.word32(layout::CAPACITY_OFFSET).store(8, Ordering::SeqCst);
    let mut p = m.producer().unwrap();
    // A header rewritten after attach changes nothing for the end: it read
    // the capacity once.
    m.word32(layout::CAPACITY_OFFSET)
        .store(1 << 20, Ordering::SeqCst);
    m.word(layout::MAGIC_OFFSET).store(0, Ordering::SeqCst);
    assert_eq!(p.enqueue_burst(&[d(1); 20]).unwrap(), 8);

    // Misaligned memory, and init's own checks.
    let m = Mem::raw(shm_ring_bytes(8) + 8);
    // SAFETY: one byte in is still inside `m`; the length is shortened.
    let odd = unsafe { NonNull::new_unchecked(m.ptr().as_ptr().add(4)) };
    // SAFETY: `m` is alive and has no ends.
    let e = unsafe { init_shm_ring(odd, m.len() - 4, 8) }.unwrap_err();
    assert_eq!(
        e,
        ShmRingError::Misaligned {
            addr: odd.as_ptr() as usize,
            align: 8
        }
    );
    // SAFETY: as above.
    let e = unsafe { ShmProducer::attach(odd, m.len() - 4) }.unwrap_err();
    assert!(matches!(e, ShmRingError::Misaligned { align: 8, .. }));
    // SAFETY: as above.
    let e = unsafe { init_shm_ring(m.ptr(), m.len(), 1 << 25) }.unwrap_err();
    assert_eq!(
        e,
        ShmRingError::BadCapacity {
            capacity: 1 << 25,
            max: 1 << 24
        }
    );
    assert!(m.producer().unwrap_err().to_string().contains("magic"));
}

#[test]
fn a_scribbling_peer_never_makes_an_end_panic() {
    let m = Mem::ring(16);
    let stop = AtomicBool::new(false);
    let (mut ok, mut corrupt) = (0u64, 0u64);
    // Attached before the scribbling starts: a header it overwrites would
    // refuse later attaches (that is tested above).
    let (mut p, mut c) = (m.producer().unwrap(), m.consumer().unwrap());
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut rng = Rng(0xBAD);
            while !stop.load(Ordering::Relaxed) {
                // Any word of the ring, any value: indices near and far,
                // header words, slots.
                let off = rng.below((m.len() / 8) as u64) as usize * 8;
                let v = match rng.below(3) {
                    0 => rng.next(),
                    1 => rng.below(64),
                    _ => u64::MAX - rng.below(64),
                };
                m.word(off).store(v, Ordering::Relaxed);
            }
        });
        let mut rng = Rng(7);
        let mut out = [Desc::default(); 20];
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            let k = rng.below(20) as usize;
            let r = match rng.below(6) {
                0 => p.enqueue_burst(&[d(1); 20][..k]).map(drop),
                1 => p.enqueue_bulk(&[d(1); 20][..k]).map(drop),
                2 => c.dequeue_burst(&mut out[..k]).map(drop),
                3 => c.dequeue_bulk(&mut out[..k]).map(drop),
                4 => p.free_space().map(drop),
                _ => c.peek_published().map(drop),
            };
            match r {
                Ok(()) | Err(ShmRingError::Full { .. } | ShmRingError::Empty { .. }) => ok += 1,
                Err(ShmRingError::Corrupt { .. }) => corrupt += 1,
                Err(e) => panic!("an attached end reported {e}"),
            }
            // The ends' own invariants hold whatever the peer wrote.
            assert!(p.position().wrapping_sub(p.peer_position()) <= 16);
            assert!(c.peer_position().wrapping_sub(c.position()) <= 16);
        }
        stop.store(true, Ordering::Relaxed);
    });
    eprintln!("scribbled: {ok} operations went through, {corrupt} saw corruption");
    assert!(corrupt > 0, "the scribbler was seen");
}

/// Streams `n` descriptors from a producer thread to a consumer thread in
/// random bursts; each side drops and re-attaches its end about every
/// `reattach` bursts (never, if 0). Checks order, no loss, no duplicate.
fn stream(capacity: u32, n: u64, reattach: u64) {
    let m = Mem::ring(capacity);
    std::thread::scope(|s| {
        let m = &m;
        s.spawn(move || {
            let mut p = m.producer().unwrap();
            let mut rng = Rng(1);
            let mut next = 0u64;
            let mut burst = Vec::with_capacity(64);
            while next < n {
                let k = (1 + rng.below(48)).min(n - next);
                burst.clear();
                burst.extend((next..next + k).map(d));
                next += p.enqueue_burst(&burst).unwrap() as u64;
                assert_eq!(p.position(), next);
                if reattach != 0 && rng.below(reattach) == 0 {
                    drop(p);
                    p = m.producer().unwrap();
                    assert_eq!(p.position(), next, "resumed at the published tail");
                }
            }
        });
        let mut c = m.consumer().unwrap();
        let mut rng = Rng(2);
        let mut out = [Desc::default(); 64];
        let mut got = 0u64;
        let deadline = Instant::now() + Duration::from_secs(120);
        while got < n {
            let k = 1 + rng.below(64) as usize;
            let r = c.dequeue_burst(&mut out[..k]).unwrap();
            for v in &out[..r] {
                assert_eq!(*v, d(got), "descriptor {got}");
                got += 1;
            }
            if reattach != 0 && rng.below(reattach) == 0 {
                drop(c);
                c = m.consumer().unwrap();
                assert_eq!(c.position(), got, "resumed at the published head");
            }
            if r == 0 {
                assert!(Instant::now() < deadline, "stalled at {got}");
                std::hint::spin_loop();
            }
        }
        assert_eq!(c.dequeue_burst(&mut out).unwrap(), 0, "nothing extra");
    });
    assert_eq!(m.indices().unwrap(), (n, n));
}

#[test]
fn two_threads_stream_a_million_in_order() {
    stream(256, 1_000_000, 0);
}

#[test]
fn two_threads_stream_through_a_tiny_ring() {
    stream(2, 100_000, 0);
}

#[test]
fn resume_after_reattaching_either_end_mid_stream() {
    stream(32, 200_000, 50);
    stream(4, 50_000, 5);
}

#[test]
fn reclaim_view_of_a_dead_producer() {
    let m = Mem::ring(8);
    let mut c = m.consumer().unwrap();
    let mut p = m.producer().unwrap();
    p.enqueue_bulk(&(0..6).map(d).collect::<Vec<_>>()).unwrap();
    let mut out = [Desc::default(); 2];
    c.dequeue_bulk(&mut out).unwrap();
    // The producer writes two more slots but dies before publishing them.
    drop(p);
    let (head, tail) = m.indices().unwrap();
    assert_eq!((head, tail), (2, 6));
    let left: Vec<Desc> = (head..tail)
        // SAFETY: as in `Mem::producer`.
        .map(|i| unsafe { shm_ring_read_slot(m.ptr(), m.len(), i) }.unwrap())
        .collect();
    assert_eq!(left, (2..6).map(d).collect::<Vec<_>>());
    // A restarted producer continues after them.
    let mut p = m.producer().unwrap();
    assert_eq!((p.position(), p.peer_position()), (6, 2));
    assert_eq!(
        p.enqueue_burst(&[d(6), d(7), d(8), d(9), d(10)]).unwrap(),
        4
    );
    let mut out = [Desc::default(); 8];
    assert_eq!(c.dequeue_burst(&mut out).unwrap(), 8);
    assert_eq!(out.to_vec(), (2..10).map(d).collect::<Vec<_>>());
}
