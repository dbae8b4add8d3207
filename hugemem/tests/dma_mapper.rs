//! DMA mappers: a recording mapper (a real mapper that keeps the device's
//! view in a map, as an IOMMU would) checked against the provider's own page
//! walk, on real 2 MiB hugepages and on small pages, across replay, growth,
//! shrink, the kept minimum, external memory with and without IOVAs, guard
//! drop, two mappers at once, mappers that refuse or panic, and threads
//! allocating while mappers come and go.
//!
//! The atomics here are test switches and counters, all `Relaxed`: a
//! switch is set on the test's thread before the provider call whose
//! mapper reads it on that same thread (mappers, validators and event
//! callbacks run on the thread that called the provider), so program order
//! is all they need; the call counter is also bumped by worker threads in
//! the threads test, where nothing is decided from it. None publishes
//! other memory (the recorded ranges sit behind mutexes).

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pktmem_hugemem::{
    inventory, AllocError, DmaMapper, DmaRange, DmaRegisterError, EventKind, HugememError, Iova,
    IovaMode, PageInfo, PageSize, Provider, RegisterError,
};

const MB2: usize = 2 << 20;
const KB4: usize = 4096;

/// Calls by several mappers, in order: (mapper, what, VA).
type SharedLog = Arc<Mutex<Vec<(&'static str, Op, usize)>>>;

/// What a mapper was asked to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Map,
    Unmap,
}

/// The range as plain numbers (the VA, the IOVA or none, the length).
type Key = (usize, Option<u64>, usize);

fn key(r: &DmaRange) -> Key {
    (r.va, r.iova.map(|i| i.0), r.len)
}

/// A mapper that keeps what the device would see: the ranges it holds, and
/// every call in order. It refuses ranges while `refuse` says so, and
/// records (instead of asserting under the provider's lock) any call that
/// breaks the contract: a range mapped twice, or an unmap of a range it
/// does not hold exactly as it was given.
struct Recorder {
    label: &'static str,
    held: Mutex<BTreeMap<usize, DmaRange>>,
    log: Mutex<Vec<(Op, Key)>>,
    violations: Mutex<Vec<String>>,
    /// Refuse every range from the n-th map call on (0: accept all).
    refuse_from: AtomicUsize,
    /// Panic in `map` instead of refusing.
    panic_instead: AtomicBool,
    maps: AtomicUsize,
    /// A shared log of calls by several mappers, for their order.
    shared: Option<SharedLog>,
}

impl Recorder {
    fn new(label: &'static str) -> Arc<Recorder> {
        Arc::new(Recorder::plain(label, None))
    }

    fn plain(label: &'static str, shared: Option<SharedLog>) -> Recorder {
        Recorder {
            label,
            held: Mutex::new(BTreeMap::new()),
            log: Mutex::new(Vec::new()),
            violations: Mutex::new(Vec::new()),
            refuse_from: AtomicUsize::new(0),
            panic_instead: AtomicBool::new(false),
            maps: AtomicUsize::new(0),
            shared,
        }
    }

    fn held(&self) -> Vec<DmaRange> {
        self.held.lock().unwrap().values().copied().collect()
    }

    fn log(&self) -> Vec<(Op, Key)> {
        self.log.lock().unwrap().clone()
    }

    /// Refuse from the next map call on.
    fn refuse_next(&self) {
        self.refuse_from
            .store(self.maps.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    fn accept(&self) {
        self.refuse_from.store(0, Ordering::Relaxed);
    }

    fn assert_clean(&self) {
        let v = self.violations.lock().unwrap();
        assert!(v.is_empty(), "mapper {}: {v:?}", self.label);
    }

    /// Every range it was given was unmapped exactly once, with nothing held.
    fn assert_all_given_back(&self) {
        self.assert_clean();
        assert!(
            self.held().is_empty(),
            "{} still holds {:?}",
            self.label,
            self.held()
        );
        let mut count: BTreeMap<Key, (usize, usize)> = BTreeMap::new();
        for (op, k) in self.log() {
            let e = count.entry(k).or_default();
            match op {
                Op::Map => e.0 += 1,
                Op::Unmap => e.1 += 1,
            }
        }
        for (k, (m, u)) in count {
            assert_eq!(
                m, u,
                "{}: range {k:x?} mapped {m} times, unmapped {u}",
                self.label
            );
        }
    }
}

impl DmaMapper for Recorder {
    fn map(&self, r: &DmaRange) -> io::Result<()> {
        let n = self.maps.fetch_add(1, Ordering::Relaxed) + 1;
        let from = self.refuse_from.load(Ordering::Relaxed);
        if from != 0 && n >= from {
            assert!(
                !self.panic_instead.load(Ordering::Relaxed),
                "mapper {} panics on {r}",
                self.label
            );
            return Err(io::Error::other("the device cannot reach it"));
        }
        if let Some(prev) = self.held.lock().unwrap().insert(r.va, *r) {
            self.violations
                .lock()
                .unwrap()
                .push(format!("{r} mapped while {prev} is held"));
        }
        self.log.lock().unwrap().push((Op::Map, key(r)));
        if let Some(s) = &self.shared {
            s.lock().unwrap().push((self.label, Op::Map, r.va));
        }
        Ok(())
    }

    fn unmap(&self, r: &DmaRange) {
        match self.held.lock().unwrap().remove(&r.va) {
            Some(h) if h == *r => {}
            other => self
                .violations
                .lock()
                .unwrap()
                .push(format!("unmap of {r}, held {other:?}")),
        }
        self.log.lock().unwrap().push((Op::Unmap, key(r)));
        if let Some(s) = &self.shared {
            s.lock().unwrap().push((self.label, Op::Unmap, r.va));
        }
    }

    fn label(&self) -> &str {
        self.label
    }
}

fn page_iova(pg: &PageInfo) -> Option<Iova> {
    pg.iova
}

fn pages_of(p: &Provider) -> Vec<PageInfo> {
    let mut v = Vec::new();
    p.walk_pages(|pg| v.push(*pg));
    v
}

/// The ranges cover exactly the pages the provider's walk reports: every
/// page inside one range, at the IOVA the range gives it, ranges disjoint,
/// VA- and IOVA-contiguous, made of whole pages; and they are the
/// provider's own account (`dma_ranges`).
fn assert_covers(p: &Provider, held: &[DmaRange]) {
    let mut sorted = held.to_vec();
    sorted.sort_by_key(|r| r.va);
    for w in sorted.windows(2) {
        assert!(w[0].va_end() <= w[1].va, "overlap: {} and {}", w[0], w[1]);
    }
    for r in &sorted {
        assert!(r.len > 0 && r.len % r.page_size == 0, "{r} not whole pages");
    }
    let pages = pages_of(p);
    for pg in &pages {
        let i = sorted.partition_point(|r| r.va <= pg.va);
        assert!(i > 0, "page {:#x} in no range ({sorted:?})", pg.va);
        let r = &sorted[i - 1];
        assert!(
            pg.va + pg.size <= r.va_end(),
            "page {:#x} not inside a range ({sorted:?})",
            pg.va
        );
        assert_eq!((r.page_size, r.external), (pg.size, pg.external), "{r}");
        let off = (pg.va - r.va) as u64;
        assert_eq!(
            r.iova.map(|i| i.offset(off)),
            page_iova(pg),
            "page {:#x} in {r}",
            pg.va
        );
    }
    let mapped: usize = pages.iter().map(|pg| pg.size).sum();
    let covered: usize = sorted.iter().map(|r| r.len).sum();
    assert_eq!(covered, mapped, "ranges cover more than the mapped pages");
    assert_eq!(sorted, p.dma_ranges());
}

/// The model of the granularity without a kept minimum: one range per
/// IOVA-contiguous run of `pages` (pages without IOVA run together).
fn runs_of(pages: &[PageInfo]) -> Vec<Key> {
    let mut out: Vec<Key> = Vec::new();
    for pg in pages {
        let iova = page_iova(pg).map(|i| i.0);
        if let Some(last) = out.last_mut() {
            let follows = match (last.1, iova) {
                (Some(a), Some(b)) => a + last.2 as u64 == b,
                (None, None) => true,
                _ => false,
            };
            if follows && last.0 + last.2 == pg.va {
                last.2 += pg.size;
                continue;
            }
        }
        out.push((pg.va, iova, pg.size));
    }
    out
}

/// The two page sources, real 2 MiB hugepages (when the kernel has some
/// free) and 4 KiB pages (hugepages forbidden: no hugepage size preferred),
/// each in the IOVA mode detected (PA as root: IOVAs from the page map,
/// rarely contiguous across pages) and in VA mode (IOVA = VA: every run of
/// pages IOVA-contiguous, so coalescing shows).
fn providers(min_keep_pages: usize) -> Vec<(Provider, usize)> {
    let mut v = Vec::new();
    let free = inventory()
        .iter()
        .find(|h| h.page_size == MB2)
        .map_or(0, |h| h.free);
    for mode in [None, Some(IovaMode::Va)] {
        if free >= 16 {
            let mut b = Provider::builder()
                .page_sizes(&[PageSize::Huge2M])
                .allow_small_page_fallback(false)
                .va_reserve(PageSize::Huge2M, 1 << 30)
                .min_keep(min_keep_pages * MB2)
                .quiet(true);
            if let Some(m) = mode {
                b = b.iova_mode(m);
            }
            v.push((b.build().unwrap(), MB2));
        } else {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP the 2 MiB half of a DMA mapper test: {free} free 2 MiB hugepages"
            );
        }
        let mut b = Provider::builder()
            .page_sizes(&[])
            .va_reserve(PageSize::Small4K, 1 << 30)
            .min_keep(min_keep_pages * KB4)
            .quiet(true);
        if let Some(m) = mode {
            b = b.iova_mode(m);
        }
        v.push((b.build().unwrap(), KB4));
    }
    v
}

#[test]
fn replay_gives_every_mapped_range_then_the_guard_takes_them_back() {
    for (p, ps) in providers(0) {
        let chunks: Vec<_> = [1, 3, 2]
            .iter()
            .map(|&n| p.alloc(n * ps).unwrap())
            .collect();
        let rec = Recorder::new("rec");
        let guard = p.register_dma_mapper(rec.clone()).unwrap();
        assert_eq!(guard.label(), "rec");
        assert_eq!(p.dma_mappers(), ["rec"]);
        let held = rec.held();
        assert_covers(&p, &held);
        // Granularity: each chunk's pages were mapped by one run, so its
        // ranges are its IOVA runs, no more, no fewer.
        for c in &chunks {
            let pages: Vec<PageInfo> = c.pages().collect();
            let (lo, hi) = (pages[0].va, pages[0].va + c.mapped_len());
            let mine: Vec<Key> = held
                .iter()
                .filter(|r| r.va >= lo && r.va < hi)
                .map(key)
                .collect();
            assert_eq!(mine, runs_of(&pages), "{ps}-byte pages");
        }
        // The replay went by VA and mapped each range once.
        let log = rec.log();
        assert!(log.iter().all(|(op, _)| *op == Op::Map));
        assert_eq!(log.len(), held.len());
        assert!(log.windows(2).all(|w| w[0].1 .0 < w[1].1 .0));
        drop(guard);
        rec.assert_all_given_back();
        assert!(p.dma_mappers().is_empty());
        // The provider still maps its pages and still knows their ranges.
        assert_covers(&p, &p.dma_ranges());
        assert_eq!(p.dma_ranges().len(), held.len());
        drop(chunks);
        assert!(p.dma_ranges().is_empty());
        assert_eq!(
            rec.log().len(),
            2 * held.len(),
            "nothing after the guard went"
        );
    }
}

#[test]
fn growth_and_shrink_follow_the_pages() {
    for (p, ps) in providers(0) {
        let rec = Recorder::new("rec");
        let _guard = p.register_dma_mapper(rec.clone()).unwrap();
        assert!(rec.log().is_empty(), "an empty provider replays nothing");
        let a = p.alloc(2 * ps).unwrap();
        assert_covers(&p, &rec.held());
        let b = p.alloc(3 * ps).unwrap();
        assert_covers(&p, &rec.held());
        let c = p.alloc(ps).unwrap();
        assert_covers(&p, &rec.held());
        // Each growth mapped its own pages' runs, in the order they came.
        let mut expect: Vec<Key> = Vec::new();
        for ch in [&a, &b, &c] {
            expect.extend(runs_of(&ch.pages().collect::<Vec<_>>()));
        }
        let maps: Vec<Key> = rec.log().iter().map(|(_, k)| *k).collect();
        assert_eq!(maps, expect);
        // Shrink: dropping b unmaps exactly b's ranges, each as it was mapped.
        let b_runs = runs_of(&b.pages().collect::<Vec<_>>());
        let before = rec.log().len();
        drop(b);
        let after = rec.log();
        let unmapped: Vec<Key> = after[before..]
            .iter()
            .map(|(op, k)| {
                assert_eq!(*op, Op::Unmap);
                *k
            })
            .collect();
        let mut sorted_unmapped = unmapped.clone();
        sorted_unmapped.sort_unstable();
        let mut sorted_b = b_runs.clone();
        sorted_b.sort_unstable();
        assert_eq!(sorted_unmapped, sorted_b);
        assert_covers(&p, &rec.held());
        // Growth again, into the hole b left.
        let d = p.alloc(3 * ps).unwrap();
        assert_covers(&p, &rec.held());
        drop((a, c, d));
        assert!(rec.held().is_empty());
        assert_eq!(p.mapped_bytes(), 0);
        rec.assert_all_given_back();
    }
}

#[test]
fn the_kept_minimum_is_mapped_page_by_page_and_stays() {
    for (p, ps) in providers(2) {
        // The kept minimum was mapped at build: the replay gives it.
        let rec = Recorder::new("rec");
        let guard = p.register_dma_mapper(rec.clone()).unwrap();
        let held = rec.held();
        assert_covers(&p, &held);
        assert_eq!(held.len(), 2, "one range per kept page: {held:?}");
        let c = p.alloc(5 * ps).unwrap();
        let held = rec.held();
        assert_covers(&p, &held);
        assert!(
            held.iter().all(|r| r.len == ps),
            "per page with a kept minimum"
        );
        assert_eq!(held.len(), 5);
        drop(c);
        // Shrunk back to the kept minimum: three pages unmapped, one by one.
        let held = rec.held();
        assert_covers(&p, &held);
        assert_eq!(held.len(), 2);
        assert_eq!(p.mapped_bytes(), 2 * ps);
        let unmaps = rec.log().iter().filter(|(op, _)| *op == Op::Unmap).count();
        assert_eq!(unmaps, 3);
        // Kept pages and new ones in one chunk, freed across the boundary.
        let c1 = p.alloc(ps).unwrap();
        let c2 = p.alloc(3 * ps).unwrap();
        assert_covers(&p, &rec.held());
        drop(c1);
        assert_covers(&p, &rec.held());
        drop(c2);
        assert_covers(&p, &rec.held());
        assert_eq!(p.mapped_bytes(), 2 * ps);
        rec.assert_clean();
        drop(guard);
        rec.assert_all_given_back();
    }
}

/// Page-aligned memory the test owns, for external registration.
struct Owned {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl Owned {
    fn new(len: usize) -> Owned {
        let layout = std::alloc::Layout::from_size_align(len, KB4).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null());
        Owned { ptr, layout }
    }
}

impl Drop for Owned {
    fn drop(&mut self) {
        // SAFETY: allocated with this layout in `new`.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

#[test]
fn external_memory_with_and_without_iovas() {
    for (p, ps) in providers(0) {
        let _own = p.alloc(ps).unwrap();
        let rec = Recorder::new("rec");
        let _guard = p.register_dma_mapper(rec.clone()).unwrap();
        // Three pages, IOVA-contiguous for the first two, then a jump.
        let with = Owned::new(3 * KB4);
        let iovas = [
            Iova(0x1_0000_0000),
            Iova(0x1_0000_1000),
            Iova(0x2_0000_0000),
        ];
        let reg_with = p
            .register_external(with.ptr, 3 * KB4, KB4, Some(&iovas))
            .unwrap();
        let va = with.ptr as usize;
        let ext: Vec<Key> = rec.held().iter().filter(|r| r.external).map(key).collect();
        assert_eq!(
            ext,
            [
                (va, Some(0x1_0000_0000), 2 * KB4),
                (va + 2 * KB4, Some(0x2_0000_0000), KB4)
            ]
        );
        // Without IOVAs: one range, no IOVA.
        let without = Owned::new(4 * KB4);
        let reg_without = p
            .register_external(without.ptr, 4 * KB4, KB4, None)
            .unwrap();
        let r = rec
            .held()
            .into_iter()
            .find(|r| r.va == without.ptr as usize)
            .unwrap();
        assert_eq!((r.iova, r.len, r.external), (None, 4 * KB4, true));
        assert_covers(&p, &rec.held());
        // A mapper registered now gets the external ranges by replay.
        let late = Recorder::new("late");
        let late_guard = p.register_dma_mapper(late.clone()).unwrap();
        assert_eq!(late.held(), rec.held());
        // Unregistering takes exactly its ranges back, from both.
        reg_with.unregister().unwrap();
        assert!(rec
            .held()
            .iter()
            .all(|r| r.va != va && r.va != va + 2 * KB4));
        assert_covers(&p, &rec.held());
        assert_eq!(late.held(), rec.held());
        drop(reg_without); // dropping the registration unregisters too
        assert!(rec.held().iter().all(|r| !r.external));
        assert_covers(&p, &rec.held());
        drop(late_guard);
        late.assert_all_given_back();
        rec.assert_clean();
    }
}

#[test]
fn two_mappers_map_in_registration_order_and_unmap_in_reverse() {
    for (p, ps) in providers(0) {
        let shared = Arc::new(Mutex::new(Vec::new()));
        let a = Arc::new(Recorder::plain("a", Some(shared.clone())));
        let b = Arc::new(Recorder::plain("b", Some(shared.clone())));
        let ga = p.register_dma_mapper(a.clone()).unwrap();
        let gb = p.register_dma_mapper(b.clone()).unwrap();
        assert_eq!(p.dma_mappers(), ["a", "b"]);
        let c = p.alloc(2 * ps).unwrap();
        assert_eq!(a.held(), b.held());
        assert_covers(&p, &a.held());
        let log = shared.lock().unwrap().clone();
        // For each range: a maps it before b.
        for (i, (who, op, va)) in log.iter().enumerate() {
            if *who == "b" && *op == Op::Map {
                assert!(log[..i].contains(&("a", Op::Map, *va)), "{log:?}");
            }
        }
        shared.lock().unwrap().clear();
        drop(c);
        let log = shared.lock().unwrap().clone();
        // For each range: b unmaps it before a.
        for (i, (who, op, va)) in log.iter().enumerate() {
            if *who == "a" && *op == Op::Unmap {
                assert!(log[..i].contains(&("b", Op::Unmap, *va)), "{log:?}");
            }
        }
        assert!(a.held().is_empty() && b.held().is_empty());
        // Dropping one leaves the other registered and holding.
        let c = p.alloc(ps).unwrap();
        drop(ga);
        a.assert_all_given_back();
        assert_eq!(b.held().len(), p.dma_ranges().len());
        assert_covers(&p, &b.held());
        assert_eq!(p.dma_mappers(), ["b"]);
        drop(c);
        drop(gb);
        b.assert_all_given_back();
    }
}

#[test]
fn a_mapper_that_refuses_during_replay_is_not_registered() {
    for (p, ps) in providers(0) {
        let _chunks: Vec<_> = (0..3).map(|_| p.alloc(ps).unwrap()).collect();
        let ranges = p.dma_ranges();
        assert!(ranges.len() >= 3);
        let rec = Recorder::new("picky");
        rec.refuse_from.store(3, Ordering::Relaxed); // the third range
        let e = p.register_dma_mapper(rec.clone()).unwrap_err();
        let DmaRegisterError::Map(m) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(m.mapper, "picky");
        assert_eq!(m.range, ranges[2]);
        assert!(e.to_string().contains("picky"), "{e}");
        assert!(std::error::Error::source(&e).is_some());
        // The two it had been given were taken back; it is not registered.
        rec.assert_all_given_back();
        assert_eq!(rec.log().len(), 4);
        assert!(p.dma_mappers().is_empty());
        let n = rec.log().len();
        let more = p.alloc(ps).unwrap();
        assert_eq!(rec.log().len(), n, "an unregistered mapper is not called");
        drop(more);
        // Through `?` into the crate's error.
        let via: Result<(), HugememError> = (|| {
            let _g = p.register_dma_mapper(rec.clone())?;
            Ok(())
        })();
        assert!(matches!(via, Err(HugememError::DmaRegister(_))));
    }
}

#[test]
fn growth_a_mapper_refuses_is_rolled_back() {
    for (p, ps) in providers(0) {
        let keep = p.alloc(ps).unwrap();
        let ok = Recorder::new("ok");
        let picky = Recorder::new("picky");
        let _g1 = p.register_dma_mapper(ok.clone()).unwrap();
        let _g2 = p.register_dma_mapper(picky.clone()).unwrap();
        let allocs = Arc::new(AtomicUsize::new(0));
        let n = allocs.clone();
        let _ev = p.register_event_callback(move |e| {
            if e.kind == EventKind::Alloc {
                n.fetch_add(1, Ordering::Relaxed);
            }
        });
        let (mapped, ranges, pages) = (p.mapped_bytes(), p.dma_ranges(), pages_of(&p));
        let ok_log = ok.log().len();
        picky.refuse_next();
        let e = p.alloc(3 * ps).unwrap_err();
        let AllocError::DmaMap(m) = &e else {
            panic!("{e:?}");
        };
        assert_eq!(m.mapper, "picky");
        assert_eq!(m.range.page_size, ps);
        assert!(
            e.to_string().contains("picky") && e.to_string().contains("refused"),
            "{e}"
        );
        // Rolled back: the pages went, nobody holds the range, no Alloc event.
        assert_eq!(p.mapped_bytes(), mapped);
        assert_eq!(p.dma_ranges(), ranges);
        assert_eq!(pages_of(&p).len(), pages.len());
        assert_eq!(allocs.load(Ordering::Relaxed), 0);
        let ok_new = &ok.log()[ok_log..];
        assert_eq!(
            ok_new,
            [(Op::Map, key(&m.range)), (Op::Unmap, key(&m.range))]
        );
        assert_covers(&p, &ok.held());
        assert_covers(&p, &picky.held());
        // The provider is consistent: the next allocation succeeds.
        picky.accept();
        let c = p.alloc(3 * ps).unwrap();
        assert_eq!(allocs.load(Ordering::Relaxed), 1);
        assert_covers(&p, &ok.held());
        assert_eq!(ok.held(), picky.held());
        drop((c, keep));
        ok.assert_clean();
        picky.assert_clean();
    }
}

#[test]
fn external_registration_a_mapper_refuses_is_rolled_back() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("rec");
    let _g = p.register_dma_mapper(rec.clone()).unwrap();
    let mem = Owned::new(2 * KB4);
    rec.refuse_next();
    let e = p
        .register_external(mem.ptr, 2 * KB4, KB4, None)
        .unwrap_err();
    assert!(
        matches!(&e, RegisterError::DmaMap(m) if m.range.va == mem.ptr as usize && m.range.iova.is_none())
    );
    // Not registered: no translation, no list, nothing held.
    assert!(p.lists().iter().all(|l| !l.external));
    assert!(p.dma_ranges().is_empty());
    rec.accept();
    let reg = p.register_external(mem.ptr, 2 * KB4, KB4, None).unwrap();
    assert_eq!(rec.held().len(), 1);
    reg.unregister().unwrap();
    rec.assert_all_given_back();
}

#[test]
fn map_comes_before_the_alloc_event_and_unmap_after_the_free_event() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("rec");
    let _g = p.register_dma_mapper(rec.clone()).unwrap();
    let r2 = rec.clone();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let _ev = p.register_event_callback(move |e| {
        // The device holds the range both when it appears and when it is
        // about to go.
        let held = r2.held().iter().any(|r| r.va <= e.va && e.va < r.va_end());
        s2.lock().unwrap().push((e.kind, held));
    });
    let c = p.alloc(3 * KB4).unwrap();
    drop(c);
    assert_eq!(
        *seen.lock().unwrap(),
        [(EventKind::Alloc, true), (EventKind::Free, true)]
    );
    assert!(rec.held().is_empty());
}

#[test]
fn a_kept_mapper_is_given_everything_back_when_the_provider_drops() {
    let p = Provider::builder()
        .page_sizes(&[])
        .min_keep(2 * KB4)
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("kept");
    p.register_dma_mapper(rec.clone()).unwrap().keep();
    let mem = Owned::new(KB4);
    let _reg = p.register_external(mem.ptr, KB4, KB4, None).unwrap();
    drop(p.alloc(KB4).unwrap());
    assert_eq!(rec.held().len(), 3); // two kept pages, the external range
    drop(p);
    rec.assert_all_given_back();
}

#[test]
fn a_guard_outliving_its_provider_unmaps_nothing_twice() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("rec");
    let guard = p.register_dma_mapper(rec.clone()).unwrap();
    let c = p.alloc(KB4).unwrap();
    drop(c);
    let mem = Owned::new(KB4);
    let _reg = p.register_external(mem.ptr, KB4, KB4, None).unwrap();
    drop(p);
    rec.assert_all_given_back();
    let n = rec.log().len();
    drop(guard);
    assert_eq!(rec.log().len(), n);
}

#[test]
fn a_mapper_cannot_reenter_its_provider() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let weak = p.downgrade();
    let inner_result = Arc::new(Mutex::new(None));
    let slot = inner_result.clone();
    let _g = p
        .register_dma_mapper_fn(
            "reenter",
            move |_| {
                if let Some(p) = weak.upgrade() {
                    let e = p.alloc(KB4).err().map(|e| e.to_string());
                    *slot.lock().unwrap() = Some(e);
                }
                Ok(())
            },
            |_| (),
        )
        .unwrap();
    let chunk = p.alloc(KB4).unwrap();
    let got = inner_result
        .lock()
        .unwrap()
        .clone()
        .expect("the mapper ran");
    assert!(
        got.is_some_and(|e| e.contains("inside a validator")),
        "an alloc inside a mapper must be refused"
    );
    drop(chunk);
    // Registering from inside a validator is refused too.
    let p2 = p.clone();
    let refused = Arc::new(AtomicBool::new(false));
    let flag = refused.clone();
    let validator = p.register_validator(0, move |_| {
        let e = p2.register_dma_mapper_fn("x", |_| Ok(()), |_| ());
        flag.store(
            matches!(e, Err(DmaRegisterError::Reentrant)),
            Ordering::Relaxed,
        );
        true
    });
    drop(p.alloc(KB4).unwrap());
    assert!(refused.load(Ordering::Relaxed));
    drop(validator);
}

#[test]
fn a_mapper_that_panics_refuses_and_the_panic_goes_on() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let ok = Recorder::new("ok");
    let bad = Recorder::new("bad");
    let _g1 = p.register_dma_mapper(ok.clone()).unwrap();
    let _g2 = p.register_dma_mapper(bad.clone()).unwrap();
    bad.panic_instead.store(true, Ordering::Relaxed);
    bad.refuse_next();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.alloc(2 * KB4)));
    assert!(r.is_err(), "the mapper's panic reaches the caller");
    // The provider finished its bookkeeping: nothing mapped, nothing held.
    assert_eq!(p.mapped_bytes(), 0);
    assert!(p.dma_ranges().is_empty());
    ok.assert_all_given_back();
    bad.panic_instead.store(false, Ordering::Relaxed);
    bad.accept();
    let c = p.alloc(2 * KB4).unwrap();
    assert_covers(&p, &bad.held());
    drop(c);
    bad.assert_all_given_back();
}

#[test]
fn ranges_follow_the_small_page_fallback() {
    // One 2 MiB page of VA: the second allocation falls back to 4 KiB pages.
    let p = Provider::builder()
        .page_sizes(&[PageSize::Huge2M])
        .va_reserve(PageSize::Huge2M, MB2)
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("rec");
    let _g = p.register_dma_mapper(rec.clone()).unwrap();
    let a = p.alloc(MB2).unwrap();
    let b = p.alloc(MB2).unwrap();
    assert_eq!(b.page_size(), KB4, "fell back");
    let held = rec.held();
    assert_covers(&p, &held);
    // No range spans two lists: each is of one page size, inside one chunk.
    for r in &held {
        let inside = |c: &pktmem_hugemem::Chunk| {
            let lo = c.as_ptr().as_ptr() as usize;
            r.va >= lo && r.va_end() <= lo + c.mapped_len()
        };
        assert!(inside(&a) || inside(&b), "{r}");
    }
    assert!(held.iter().any(|r| r.page_size == KB4));
    drop((a, b));
    rec.assert_all_given_back();
}

#[test]
fn a_guard_can_go_to_another_thread() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("rec");
    let guard = p.register_dma_mapper(rec.clone()).unwrap();
    send_sync(&guard);
    let c = p.alloc(KB4).unwrap();
    std::thread::spawn(move || drop(guard)).join().unwrap();
    rec.assert_all_given_back();
    assert_eq!(rec.log().len(), 2);
    drop(c);
    assert_eq!(rec.log().len(), 2, "an unregistered mapper is not called");
}

#[test]
fn external_memory_stays_mapped_until_its_last_user_lets_go() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("rec");
    let _g = p.register_dma_mapper(rec.clone()).unwrap();
    let mem = Owned::new(2 * KB4);
    let reg = p.register_external(mem.ptr, 2 * KB4, KB4, None).unwrap();
    let lease = reg.lease("pool 'rx'").unwrap();
    // The registration goes while the pool still uses the memory: the
    // device keeps it until the pool lets go.
    drop(reg);
    assert_eq!(rec.held().len(), 1);
    assert_covers(&p, &rec.held());
    drop(lease);
    assert!(rec.held().is_empty());
    rec.assert_all_given_back();
}

#[test]
fn a_guard_dropped_inside_a_validator_unmaps_once_the_lock_is_released() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("rec");
    let guard = p.register_dma_mapper(rec.clone()).unwrap();
    let _c = p.alloc(KB4).unwrap();
    let slot = Arc::new(Mutex::new(Some(guard)));
    let s2 = slot.clone();
    // The validator runs under the provider lock: the guard it drops
    // cannot unmap there (it would deadlock); the provider does it after.
    let validator = p.register_validator(0, move |_| {
        drop(s2.lock().unwrap().take());
        true
    });
    let c2 = p.alloc(KB4).unwrap();
    assert!(slot.lock().unwrap().is_none(), "the validator ran");
    assert!(p.dma_mappers().is_empty());
    rec.assert_all_given_back();
    // The range of the allocation the validator allowed was given, then
    // taken back with the rest.
    assert_eq!(rec.log().len(), 4);
    drop((validator, c2));
}

#[test]
fn heap_memory_is_mapped_when_added_and_unmapped_when_it_goes() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let rec = Recorder::new("rec");
    let _g = p.register_dma_mapper(rec.clone()).unwrap();
    let mem = Owned::new(4 * KB4);
    let iovas: Vec<Iova> = (0..4).map(|i| Iova(0x8000_0000 + i * 4096)).collect();
    let dev = p.create_heap("dev");
    // SAFETY: `mem` is the test's, zeroed, and outlives the heap.
    let id = unsafe { dev.add_memory(mem.ptr, 4 * KB4, KB4, Some(&iovas)) }.unwrap();
    let held = rec.held();
    assert_eq!(
        held.iter().map(key).collect::<Vec<_>>(),
        [(mem.ptr as usize, Some(0x8000_0000), 4 * KB4)]
    );
    // Chunks carved from the heap map nothing new: the device has it all.
    let c = dev
        .alloc(&pktmem_hugemem::AllocRequest::new(2 * KB4))
        .unwrap();
    assert_eq!(rec.log().len(), 1);
    assert_covers(&p, &rec.held());
    drop(c);
    dev.remove_memory(id).unwrap();
    assert!(rec.held().is_empty());
    drop(dev);
    rec.assert_all_given_back();
}

#[test]
fn threads_allocating_while_mappers_come_and_go() {
    for (p, ps) in providers(1) {
        let steady = Recorder::new("steady");
        let steady_guard = p.register_dma_mapper(steady.clone()).unwrap();
        let workers: Vec<_> = (0..3)
            .map(|t| {
                let p = p.clone();
                std::thread::spawn(move || {
                    let mut held = Vec::new();
                    for i in 0..60usize {
                        held.push(p.alloc((1 + (i * 7 + t) % 3) * ps).unwrap());
                        if held.len() > 2 {
                            held.remove((i + t) % held.len());
                        }
                    }
                })
            })
            .collect();
        // Meanwhile a second mapper registers (replay) and goes, again and again.
        let mut comers = Vec::new();
        while !workers.iter().all(std::thread::JoinHandle::is_finished) && comers.len() < 200 {
            let r = Recorder::new("comer");
            drop(p.register_dma_mapper(r.clone()).unwrap());
            comers.push(r);
        }
        for w in workers {
            w.join().unwrap();
        }
        for r in &comers {
            r.assert_all_given_back();
        }
        // The steady one saw everything: it holds exactly the kept page now.
        steady.assert_clean();
        assert_covers(&p, &steady.held());
        assert_eq!(steady.held().len(), 1);
        drop(steady_guard);
        steady.assert_all_given_back();
    }
}

/// Page-aligned memory handed to the provider by ownership; says when it
/// is freed.
struct Handed {
    mem: Owned,
    freed: Arc<AtomicBool>,
}

// SAFETY: `Handed` owns its allocation exclusively (nothing else points into it).
unsafe impl Send for Handed {}

impl AsMut<[u8]> for Handed {
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: the allocation is `layout.size()` zeroed bytes, owned by `self`.
        unsafe { std::slice::from_raw_parts_mut(self.mem.ptr, self.mem.layout.size()) }
    }
}

impl Drop for Handed {
    fn drop(&mut self) {
        self.freed.store(true, Ordering::Relaxed);
    }
}

#[test]
fn owned_external_memory_is_unmapped_before_it_is_freed() {
    let p = Provider::builder()
        .page_sizes(&[])
        .quiet(true)
        .build()
        .unwrap();
    let freed = Arc::new(AtomicBool::new(false));
    let f2 = freed.clone();
    let unmapped_while_alive = Arc::new(AtomicUsize::new(0));
    let u2 = unmapped_while_alive.clone();
    let _g = p
        .register_dma_mapper_fn(
            "check",
            |_| Ok(()),
            move |r| {
                // The memory must still be there when the device lets go.
                if r.external && !f2.load(Ordering::Relaxed) {
                    u2.fetch_add(1, Ordering::Relaxed);
                }
            },
        )
        .unwrap();
    let handed = Handed {
        mem: Owned::new(2 * KB4),
        freed: freed.clone(),
    };
    let reg = p.register_external_owned(handed, KB4, None).unwrap();
    assert_eq!(p.dma_ranges().len(), 1);
    drop(reg);
    assert!(
        freed.load(Ordering::Relaxed),
        "the provider freed the memory"
    );
    assert_eq!(unmapped_while_alive.load(Ordering::Relaxed), 1);
    assert!(p.dma_ranges().is_empty());
}
