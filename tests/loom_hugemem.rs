//! Loom models of the provider: two threads allocating and freeing on a
//! heap-backed provider (the lock around the lists, the lock-free IOVA
//! table), a lookup racing an external registration, and two threads
//! sharing the provider's small heap (slab pages allocated with the heap
//! unlocked), a lease and its registration dropped on two threads, and a
//! DMA mapper's registration racing an allocation and its guard dropped
//! racing a free.
#![cfg(loom)]

use loom::thread;
use pktmem::hugemem::{Iova, Provider};

#[test]
fn two_threads_alloc_free_conserve_pages() {
    loom::model(|| {
        let p = Provider::builder().heap_backed(4 * 4096).build().unwrap();
        let p2 = p.clone();
        let t = thread::spawn(move || {
            let c = p2.alloc(4096).unwrap();
            let va = c.as_ptr().as_ptr() as usize;
            // Translation of a page this thread owns is always right.
            assert_eq!(p2.virt2iova(va as *const u8), Some(Iova(va as u64)));
            c
        });
        let c = p.alloc(2 * 4096).unwrap();
        let va = c.as_ptr().as_ptr() as usize;
        assert_eq!(
            p.virt2iova((va + 4096) as *const u8),
            Some(Iova((va + 4096) as u64))
        );
        let other = t.join().unwrap();
        let o = other.as_ptr().as_ptr() as usize;
        // Disjoint page ranges.
        assert!(o + 4096 <= va || va + 2 * 4096 <= o);
        assert_eq!(p.mapped_bytes(), 3 * 4096);
        drop(other);
        drop(c);
        // Conservation: every page back, none in use.
        assert_eq!(p.mapped_bytes(), 0);
        assert!(p.lists().iter().all(|l| l.used_pages == 0));
    });
}

#[test]
fn lookup_races_external_registration() {
    loom::model(|| {
        let p = Provider::builder().heap_backed(4096).build().unwrap();
        let mem = Box::leak(vec![0u8; 3 * 4096].into_boxed_slice());
        let base = (mem.as_ptr() as usize + 4095) & !4095;
        let p2 = p.clone();
        let t = thread::spawn(move || {
            p2.register_external(base as *mut u8, 4096, 4096, Some(&[Iova(0x7000)]))
                .unwrap()
        });
        // A lock round trip first: it gives loom a point at which to run the
        // registering thread before the lookup (without it loom ran only
        // one order here).
        let _ = p.lists();
        // Before publication: none; after: exactly the registered IOVA.
        let seen = p.virt2iova((base + 5) as *const u8);
        assert!(seen.is_none() || seen == Some(Iova(0x7005)), "{seen:?}");
        let reg = t.join().unwrap();
        assert_eq!(p.virt2iova((base + 5) as *const u8), Some(Iova(0x7005)));
        reg.unregister().unwrap();
        assert_eq!(p.virt2iova(base as *const u8), None);
    });
}

#[test]
fn two_threads_share_the_small_heap() {
    loom::model(|| {
        let p = Provider::builder().heap_backed(2 * 4096).build().unwrap();
        let p2 = p.clone();
        let t = thread::spawn(move || {
            let heap = p2.small_heap();
            let mut b = heap.alloc(1024, 64).unwrap();
            b.as_mut_slice().fill(2);
            (heap, b)
        });
        let heap = p.small_heap();
        let mut mine = heap.alloc(1024, 64).unwrap();
        mine.as_mut_slice().fill(1);
        let (theirs_heap, theirs) = t.join().unwrap();
        // One heap however the calls raced; each block kept its bytes.
        assert!(heap.same_heap(&theirs_heap));
        assert!(mine.as_slice().iter().all(|&x| x == 1));
        assert!(theirs.as_slice().iter().all(|&x| x == 2));
        assert_eq!(heap.live(), 2);
        // Racing slab creation may map a second slab page, never more.
        let slabs = heap.slabs();
        assert!(slabs == 1 || slabs == 2, "{slabs} slabs");
        assert_eq!(p.mapped_bytes(), slabs * 4096);
        drop(theirs);
        drop(mine);
        // Conservation: nothing live, every page back.
        assert_eq!((heap.live(), heap.slabs(), p.mapped_bytes()), (0, 0, 0));
    });
}

#[test]
fn lease_and_registration_dropped_on_two_threads() {
    // The registration is dropped on one thread while the last lease goes
    // on another: whichever comes last unregisters, exactly once (one Free
    // event), and the range is gone once both are.
    loom::model(|| {
        use loom::sync::atomic::{AtomicUsize, Ordering};
        use loom::sync::Arc;
        let p = Provider::builder().heap_backed(4096).build().unwrap();
        let mem = Box::leak(vec![0u8; 2 * 4096].into_boxed_slice());
        let base = (mem.as_ptr() as usize + 4095) & !4095;
        let frees = Arc::new(AtomicUsize::new(0));
        let f2 = frees.clone();
        let _events = p.register_event_callback(move |e| {
            if e.external && e.kind == pktmem::hugemem::EventKind::Free {
                // Relaxed: only the count matters, read after the joins.
                f2.fetch_add(1, Ordering::Relaxed);
            }
        });
        let reg = p
            .register_external(base as *mut u8, 4096, 4096, Some(&[Iova(0x9000)]))
            .unwrap();
        let lease = reg.lease("pool 'rx'").unwrap();
        let t = thread::spawn(move || drop(lease));
        drop(reg);
        t.join().unwrap();
        // Relaxed: the join orders the other thread's increment before this.
        assert_eq!(frees.load(Ordering::Relaxed), 1);
        assert_eq!(p.virt2iova(base as *const u8), None);
        assert!(p.lists().iter().all(|l| !l.external));
    });
}

/// A DMA mapper that counts, per range, how often it was mapped and
/// unmapped (std's mutex: it is only touched under the provider's lock or
/// after the threads joined).
#[derive(Default)]
struct CountingMapper(std::sync::Mutex<std::collections::BTreeMap<(usize, usize), (u32, u32)>>);

impl pktmem::hugemem::DmaMapper for CountingMapper {
    fn map(&self, r: &pktmem::hugemem::DmaRange) -> std::io::Result<()> {
        self.0.lock().unwrap().entry((r.va, r.len)).or_default().0 += 1;
        Ok(())
    }
    fn unmap(&self, r: &pktmem::hugemem::DmaRange) {
        self.0.lock().unwrap().entry((r.va, r.len)).or_default().1 += 1;
    }
}

#[test]
fn dma_mapper_registration_races_an_alloc() {
    loom::model(|| {
        let p = Provider::builder().heap_backed(2 * 4096).build().unwrap();
        let m = std::sync::Arc::new(CountingMapper::default());
        let p2 = p.clone();
        let t = thread::spawn(move || p2.alloc(4096).unwrap());
        let guard = p.register_dma_mapper(m.clone()).unwrap();
        let c = t.join().unwrap();
        // Replayed or mapped as it grew, whichever came first: once.
        let key = (c.as_ptr().as_ptr() as usize, 4096);
        assert_eq!(m.0.lock().unwrap().get(&key), Some(&(1, 0)));
        drop(c);
        drop(guard);
        // Every range mapped exactly once and unmapped exactly once.
        let seen = m.0.lock().unwrap();
        assert_eq!(seen.len(), 1);
        assert!(
            seen.values()
                .all(|&(maps, unmaps)| maps == 1 && unmaps == 1),
            "{seen:?}"
        );
    });
}

#[test]
fn dma_mapper_guard_dropped_racing_a_free() {
    loom::model(|| {
        let p = Provider::builder().heap_backed(4096).build().unwrap();
        let m = std::sync::Arc::new(CountingMapper::default());
        let guard = p.register_dma_mapper(m.clone()).unwrap();
        let c = p.alloc(4096).unwrap();
        let key = (c.as_ptr().as_ptr() as usize, 4096);
        // The free unmaps the range from the mapper, or the guard does,
        // whichever comes first; the other finds nothing to unmap.
        let t = thread::spawn(move || drop(c));
        drop(guard);
        t.join().unwrap();
        let seen = m.0.lock().unwrap();
        assert_eq!(seen.get(&key), Some(&(1, 1)), "{seen:?}");
        assert_eq!(seen.len(), 1);
        assert!(p.dma_ranges().is_empty());
    });
}
