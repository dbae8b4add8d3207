//! Where a ring's slots live: caller memory (`build_in`: size and alignment
//! checks, the values really in that memory), `build_on` with owned memory
//! (checks that hand the memory back, the owner dropped exactly once and
//! only when the last end goes, every kind of end on such rings), memory
//! maps; and owned values left in a ring in such memory dropped with it.

// Test code names ends, guards and buffers `p`, `c`, `g`, `v` as the
// crate docs do, and keeps each randomised sequence in one function.
#![allow(
    clippy::many_single_char_names,
    clippy::similar_names,
    clippy::too_many_lines
)]

mod common;

use std::collections::VecDeque;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{Drops, Elem};
use pktmem_ring::{
    BuildError, HeapMemory, Hts, Ring, RingBuilder, RingMemory, Rts, Single, MAX_CAPACITY,
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
fn build_on_keeps_the_memory_until_the_last_end() {
    let b = Ring::<u64>::builder(64)
        .dpdk_sizing()
        .initial_index(u32::MAX - 20);
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
    let (p, c) = ring.split();
    p.enqueue(7).unwrap();
    drop(p);
    assert_eq!(drops.load(Ordering::SeqCst), 0, "freed while an end lives");
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
    let b = Ring::<u64>::builder(16);
    let (mem, drops) = Counted::new(&b, 0, 0);
    let (p, mut c) = b
        .clone()
        .producer(Single)
        .consumer(Hts)
        .build_on(mem)
        .unwrap()
        .split();
    p.enqueue_bulk(&[1, 2, 3]).unwrap();
    let c2 = c.clone();
    let g = c.dequeue_start(2);
    assert_eq!((g.get(0), g.get(1)), (Some(&1), Some(&2)));
    g.finish(2);
    assert_eq!(c2.dequeue(), Some(3));
    drop((p, c, c2));
    let (mem, drops2) = Counted::new(&b, 0, 0);
    let (p, c) = b
        .clone()
        .producer(Rts)
        .consumer(Single)
        .build_on(mem)
        .unwrap()
        .split();
    p.clone().enqueue(9).unwrap();
    assert_eq!(c.dequeue(), Some(9));
    drop((p, c));
    assert_eq!(drops.load(Ordering::SeqCst), 1);
    assert_eq!(drops2.load(Ordering::SeqCst), 1);
}

#[test]
fn refused_memory_comes_back_with_the_numbers() {
    let b = Ring::<u64>::builder(128).dpdk_sizing();
    let needed = b.memory_size().unwrap();
    assert_eq!(needed, 1024);

    // One element short.
    let (mem, drops) = Counted::new(&b, 0, 64);
    let e = b.clone().build_on(mem).unwrap_err();
    assert_eq!(
        e.error,
        BuildError::MemoryTooSmall {
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
    assert_eq!(e.error, BuildError::MemoryMisaligned { align: 64, addr });
    // The same memory, used from its aligned start, is accepted.
    let mut mem = e.memory;
    mem.offset = 0;
    let ring = b.clone().build_on(mem).unwrap();
    ring.enqueue(5).unwrap();
    assert_eq!(ring.dequeue(), Some(5));
    drop(ring);
    assert_eq!(drops.load(Ordering::SeqCst), 1);

    // Bad settings refuse the memory too, before looking at it. (A
    // distance limit on a side that is not RTS no longer builds at all.)
    for (builder, want) in [
        (Ring::<u64>::builder(0), BuildError::ZeroCapacity),
        (
            Ring::<u64>::builder(100).dpdk_sizing(),
            BuildError::NotPowerOfTwo { requested: 100 },
        ),
        (
            Ring::<u64>::builder(MAX_CAPACITY + 1),
            BuildError::TooLarge {
                requested: MAX_CAPACITY + 1,
                max: MAX_CAPACITY,
            },
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
    let b = Ring::<u64>::builder(128).dpdk_sizing();
    let mem = HeapMemory::new(b.memory_layout().unwrap()).unwrap();
    // SAFETY: `mem` outlives the built ring and nothing else uses it.
    let r = unsafe { b.build_in(mem.as_ptr(), mem.size()) }.unwrap();
    assert_eq!(r.capacity(), 127);
    drop(r);
    let b = Ring::<u64>::builder(100).dpdk_sizing();
    assert_eq!(
        b.clone().build().unwrap_err(),
        BuildError::NotPowerOfTwo { requested: 100 }
    );
    // SAFETY: as above.
    let r = unsafe { b.build_in(mem.as_ptr(), mem.size()) };
    assert_eq!(r.unwrap_err(), BuildError::NotPowerOfTwo { requested: 100 });
    // Zero-sized elements: no memory, still a working ring.
    let r = Ring::<()>::builder(8).dpdk_sizing().build().unwrap();
    r.enqueue_bulk(&[(); 7]).unwrap();
    assert!(r.is_full());
    let r = Ring::<()>::new(5).unwrap();
    assert_eq!(r.enqueue_burst(&[(); 9]), 5);
}

/// A ring on an anonymous map, and one on a file map whose slots are the
/// file's bytes: what the ring wrote is in the file after the ring is gone.
#[test]
fn rings_on_memory_maps() {
    let b = Ring::<u64>::builder(64);
    let size = b.memory_size().unwrap();
    let (p, c) = b
        .clone()
        .producer(Single)
        .consumer(Single)
        .build_on(memmap2::MmapMut::map_anon(size).unwrap())
        .unwrap()
        .split();
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
        BuildError::MemoryTooSmall {
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

#[test]
fn placement_in_caller_memory() {
    let b = Ring::<[u32; 5]>::builder(100);
    let layout = b.memory_layout().unwrap();
    assert_eq!(layout.size(), 128 * 20);
    assert_eq!(layout.size(), b.memory_size().unwrap());
    assert!(layout.align() >= 64);
    // Memory with room for an offset, to test the checks.
    let mut buf = vec![0u8; layout.size() + 128];
    let base = buf.as_mut_ptr() as usize;
    let aligned = (base + 63) & !63;
    let p = NonNull::new(aligned as *mut u8).unwrap();
    // SAFETY: `p` points into `buf`, which outlives every ring below, with
    // `layout.size()` bytes after it; nothing else uses `buf` meanwhile.
    let r = unsafe { b.clone().build_in(p, layout.size() - 1) };
    assert_eq!(
        r.unwrap_err(),
        BuildError::MemoryTooSmall {
            needed: layout.size(),
            provided: layout.size() - 1
        }
    );
    let mis = NonNull::new((aligned + 4) as *mut u8).unwrap();
    // SAFETY: as above.
    let r = unsafe { b.clone().build_in(mis, layout.size()) };
    assert!(matches!(
        r,
        Err(BuildError::MemoryMisaligned { align: 64, .. })
    ));
    {
        // SAFETY: as above.
        let mut r = unsafe { b.clone().build_in(p, layout.size()) }.unwrap();
        assert_eq!(r.capacity(), 100);
        let vals: Vec<[u32; 5]> = (0..100).map(<[u32; 5]>::make).collect();
        r.enqueue_bulk(&vals).unwrap();
        assert!(r.is_full());
        // The elements really live in `buf`: the first slot holds vals[0].
        // SAFETY: slot 0 was written by the enqueue; reading bytes is fine.
        let first = unsafe { std::ptr::read(aligned as *const [u32; 5]) };
        assert_eq!(first, vals[0]);
        let mut out = vec![[0u32; 5]; 100];
        r.dequeue_bulk(&mut out).unwrap();
        assert_eq!(out, vals);
        r.enqueue_bulk(&vals[..10]).unwrap();
        r.reset();
        assert!(r.is_empty());
        assert_eq!(r.dequeue(), None);
        // Placement works for split ends too.
        let (p, c) = r.split();
        p.enqueue_bulk(&vals[..50]).unwrap();
        assert_eq!(c.len(), 50);
    }
    drop(buf);
}

/// Owned values left in a ring whose slots are in caller memory are dropped
/// when the ring goes (once), and the memory is the caller's again.
#[test]
fn owned_values_in_caller_memory_drop_with_the_ring() {
    let drops = Drops::new(16);
    let b = Ring::<common::Tracked>::builder(8).initial_index(u32::MAX - 2);
    let layout = b.memory_layout().unwrap();
    let mem = HeapMemory::new(layout).unwrap();
    {
        // SAFETY: `mem` outlives the ring and nothing else touches it.
        let ring = unsafe { b.build_in(mem.as_ptr(), mem.size()) }.unwrap();
        for id in 0..6 {
            ring.enqueue(drops.make(id)).unwrap();
        }
        let first = ring.dequeue().unwrap();
        assert_eq!(first.id, 0);
        drop(first);
        assert_eq!(drops.live(), 5);
    }
    assert_eq!(drops.live(), 0, "the ring dropped what it held");
    drops.assert_all_dropped_once(6);
    assert_eq!(<u64 as Elem>::make(1), 0x9E37_79B9_7F4A_7C15);
}
