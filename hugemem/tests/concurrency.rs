//! Both cores allocating and freeing chunks and zones for a bounded time:
//! no page handed out twice, every chunk keeps its own bytes, records and
//! counts consistent afterwards, every page back at the end.
// Short names for the provider, chunks, blocks and the random state,
// as the comments that explain each test use them.
#![allow(clippy::many_single_char_names)]

use std::collections::HashSet;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use pktmem_hugemem::{process_hugetlb_bytes, AllocRequest, Chunk, Provider};

fn stamp(c: &mut Chunk, v: u64) {
    for w in c.as_mut_slice().chunks_exact_mut(8).step_by(97) {
        w.copy_from_slice(&v.to_ne_bytes());
    }
}

fn check(c: &Chunk, v: u64) {
    for w in c.as_slice().chunks_exact(8).step_by(97) {
        assert_eq!(
            u64::from_ne_bytes(w.try_into().unwrap()),
            v,
            "chunk bytes overwritten"
        );
    }
}

#[test]
fn two_threads_alloc_free_chunks_and_zones() {
    let before = process_hugetlb_bytes().unwrap_or(0);
    let p = Provider::builder().quiet(true).build().unwrap();
    let owned: Arc<Mutex<HashSet<usize>>> = Arc::default();
    let barrier = Arc::new(Barrier::new(2));
    let deadline = Duration::from_millis(1500);
    let threads: Vec<_> = (0..2u64)
        .map(|t| {
            let (p, owned, barrier) = (p.clone(), owned.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut live: Vec<(Chunk, u64)> = Vec::new();
                let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ t;
                let mut ops = 0u64;
                barrier.wait();
                let start = Instant::now();
                while start.elapsed() < deadline {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    ops += 1;
                    if live.len() < 6 && x % 3 != 0 {
                        let len = 1 + (x as usize >> 8) % (5 << 20);
                        let mut c = match p.alloc_with(&AllocRequest::new(len)) {
                            Ok(c) => c,
                            Err(e) => panic!("thread {t}: {e}"),
                        };
                        let mut o = owned.lock().unwrap();
                        for pg in c.pages() {
                            assert!(o.insert(pg.va), "page {:#x} handed out twice", pg.va);
                            assert_eq!(p.virt2iova(pg.va as *const u8), pg.iova);
                        }
                        drop(o);
                        let v = (t << 56) | ops;
                        stamp(&mut c, v);
                        live.push((c, v));
                    } else if !live.is_empty() {
                        let (c, v) = live.swap_remove(x as usize % live.len());
                        check(&c, v);
                        let mut o = owned.lock().unwrap();
                        for pg in c.pages() {
                            assert!(o.remove(&pg.va));
                        }
                        drop(o);
                        drop(c);
                    }
                    if ops % 16 == 0 {
                        let name = format!("z{t}");
                        let z = p.zone_reserve(&name, &AllocRequest::new(4096)).unwrap();
                        assert_eq!(
                            p.zone_lookup(&name).unwrap().va,
                            z.as_ptr().as_ptr() as usize
                        );
                        drop(z);
                        assert!(p.zone_lookup(&name).is_none());
                    }
                }
                for (c, v) in &live {
                    check(c, *v);
                }
                let mut o = owned.lock().unwrap();
                for (c, _) in &live {
                    for pg in c.pages() {
                        assert!(o.remove(&pg.va));
                    }
                }
                drop(o);
                drop(live);
                ops
            })
        })
        .collect();
    let ops: u64 = threads.into_iter().map(|h| h.join().unwrap()).sum();
    eprintln!("concurrency: {ops} operations on two threads");
    assert!(ops > 100);
    assert!(owned.lock().unwrap().is_empty());
    assert_eq!(p.mapped_bytes(), 0, "every page back");
    for l in p.lists() {
        assert_eq!((l.mapped_pages, l.used_pages), (0, 0), "{l}");
    }
    assert!(p.regions().is_empty());
    assert!(p.zone_names().is_empty());
    drop(p);
    if let Some(after) = process_hugetlb_bytes() {
        assert_eq!(after, before, "HugetlbPages back to where it was");
    }
}
