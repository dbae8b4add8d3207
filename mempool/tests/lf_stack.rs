//! The lock-free stack backend: behaviour against a `Vec` model on one
//! thread, then threads hammering it alone and behind a real pool, with a
//! per-object "taken" flag that catches an object handed out twice.

mod common;

use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{get_vec, put_all};
use pktmem_mempool::{
    Backend, BackendEmpty, BackendFull, BackendKind, BuildError, LfStackBackend, LfStackError,
    Mempool, Obj,
};

/// `n` distinct fake objects, 64 bytes apart in an arena they keep alive
/// (the backend never dereferences them; the arena gives them real
/// addresses, and is freed with them).
struct Fakes {
    objs: Vec<Obj>,
    _arena: Box<[u64]>,
}

impl std::ops::Deref for Fakes {
    type Target = Vec<Obj>;
    fn deref(&self) -> &Vec<Obj> {
        &self.objs
    }
}

fn fake(n: usize) -> Fakes {
    let mut arena = vec![0u64; 8 * n].into_boxed_slice();
    let base = NonNull::from(&mut *arena).cast::<u8>();
    // SAFETY: `i * 64 < 64 * n`: inside the arena, which moves with the
    // objects (a boxed slice's heap block does not move).
    let objs = (0..n)
        .map(|i| Obj::from_non_null(unsafe { base.add(i * 64) }))
        .collect();
    Fakes {
        objs,
        _arena: arena,
    }
}

/// Takes `k` objects from `s`.
fn get(s: &LfStackBackend, k: usize) -> Result<Vec<Obj>, BackendEmpty> {
    let mut buf = vec![MaybeUninit::uninit(); k];
    s.get_bulk(&mut buf)?;
    // SAFETY: a successful get initialised every element.
    Ok(buf
        .into_iter()
        .map(|o| unsafe { o.assume_init() })
        .collect())
}

/// A placeholder object, never dereferenced.
fn dangling() -> Obj {
    Obj::from_non_null(NonNull::dangling())
}

#[test]
fn bulk_is_all_or_nothing_and_lifo() {
    let s = LfStackBackend::new(4).unwrap();
    let o = fake(5);
    assert_eq!((s.len(), s.capacity()), (0, 4));
    assert!(s.is_empty());
    assert_eq!(
        get(&s, 1),
        Err(BackendEmpty {
            requested: 1,
            available: 0
        })
    );
    assert_eq!(
        s.put_bulk(&o),
        Err(BackendFull {
            requested: 5,
            free: 4
        })
    );
    assert_eq!(s.len(), 0, "a refused put stores nothing");
    s.put_bulk(&o[..3]).unwrap();
    assert_eq!(
        s.put_bulk(&o[3..5]),
        Err(BackendFull {
            requested: 2,
            free: 1
        })
    );
    assert_eq!(s.len(), 3);
    s.put_bulk(&o[3..4]).unwrap();
    assert_eq!(s.len(), 4);
    assert_eq!(
        get(&s, 5),
        Err(BackendEmpty {
            requested: 5,
            available: 4
        })
    );
    assert_eq!(s.len(), 4, "a refused get takes nothing");
    // Empty bulk calls succeed on a full stack too and change nothing.
    s.put_bulk(&[]).unwrap();
    s.get_bulk(&mut []).unwrap();
    assert_eq!(get(&s, 1).unwrap(), [o[3]], "last in, first out");
    assert_eq!(get(&s, 3).unwrap(), [o[2], o[1], o[0]]);
    assert!(s.is_empty());
}

/// Bulks longer than the 64 nodes a chain remembers from its unlink walk.
#[test]
fn long_bulks_keep_lifo_order() {
    let s = LfStackBackend::new(300).unwrap();
    let o = fake(250);
    s.put_bulk(&o[..100]).unwrap();
    s.put_bulk(&o[100..]).unwrap();
    let out = get(&s, 200).unwrap();
    let expect: Vec<_> = o[50..].iter().rev().copied().collect();
    assert_eq!(out, expect);
    s.put_bulk(&out[..70]).unwrap();
    let rest = get(&s, 120).unwrap();
    let mut expect: Vec<_> = out[..70].iter().rev().copied().collect();
    expect.extend(o[..50].iter().rev());
    assert_eq!(rest, expect);
    assert!(s.is_empty());
}

#[test]
fn zero_and_too_large_capacity() {
    let s = LfStackBackend::new(0).unwrap();
    assert!(s.put_bulk(&fake(1)).is_err());
    s.put_bulk(&[]).unwrap();
    assert_eq!(s.capacity(), 0);
    let max = LfStackBackend::MAX_CAPACITY;
    assert_eq!(max, u32::MAX as usize);
    if usize::BITS > 32 {
        assert_eq!(
            LfStackBackend::new(max + 1).unwrap_err(),
            LfStackError::CapacityTooLarge {
                capacity: max + 1,
                max
            }
        );
        let e = Mempool::builder(1 << 40, 8)
            .name("lf-big")
            .backend_kind(BackendKind::LockFreeStack)
            .build_empty()
            .unwrap_err();
        assert!(
            matches!(
                e,
                BuildError::LfStack(LfStackError::CapacityTooLarge {
                    capacity: 0x100_0000_0000,
                    ..
                })
            ),
            "{e}"
        );
    }
}

/// Random bulk puts and gets against a `Vec` used as the stack model: same
/// results, same objects, same order, same counts.
#[test]
fn differential_against_vec() {
    let cap = 37;
    let s = LfStackBackend::new(cap).unwrap();
    let objs = fake(cap);
    let mut outside: Vec<Obj> = objs.clone();
    let mut model: Vec<Obj> = Vec::new();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..50_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let k = (x % 12) as usize;
        if x & 0x1000 != 0 {
            // Put k of the objects held outside (or more than exist: refused).
            let want = k.min(outside.len() + 1);
            if want > outside.len() || model.len() + want > cap {
                let fake_put = vec![dangling(); want];
                let r = s.put_bulk(&fake_put);
                if model.len() + want > cap {
                    assert_eq!(
                        r,
                        Err(BackendFull {
                            requested: want,
                            free: cap - model.len()
                        })
                    );
                } else {
                    // Fits: take it back out so the model stays exact.
                    r.unwrap();
                    assert_eq!(get(&s, want).unwrap(), fake_put);
                }
            } else {
                let put: Vec<_> = outside.drain(outside.len() - want..).collect();
                s.put_bulk(&put).unwrap();
                model.extend(&put);
            }
        } else {
            match get(&s, k) {
                Ok(buf) => {
                    assert!(model.len() >= k);
                    let at = model.len() - k;
                    let expect: Vec<_> = model.drain(at..).rev().collect();
                    assert_eq!(buf, expect, "LIFO order");
                    outside.extend(buf);
                }
                Err(e) => {
                    assert!(model.len() < k);
                    assert_eq!(
                        e,
                        BackendEmpty {
                            requested: k,
                            available: model.len()
                        }
                    );
                }
            }
        }
        assert_eq!(s.len(), model.len());
    }
    let mut all = get(&s, s.len()).unwrap();
    all.extend(outside);
    let distinct: HashSet<_> = all.iter().copied().collect();
    assert_eq!(distinct, objs.iter().copied().collect::<HashSet<_>>());
}

/// Marks fake object `o` (index `i` in `index`) taken; fails if it already was.
fn take(flags: &[AtomicBool], index: &HashMap<Obj, usize>, o: Obj) {
    let i = index[&o];
    assert!(
        !flags[i].swap(true, Ordering::Relaxed),
        "object {i} handed out twice"
    );
}

/// Marks fake object `o` given back; fails if it was not taken.
fn give(flags: &[AtomicBool], index: &HashMap<Obj, usize>, o: Obj) {
    let i = index[&o];
    assert!(flags[i].swap(false, Ordering::Relaxed));
}

/// Four threads (on two cores) do bulk gets and puts of varied sizes on a
/// small stack for a bounded time: every object taken is held by one thread
/// only, and all come back.
#[test]
fn threads_hammer_the_stack() {
    let cap = 64;
    let s = LfStackBackend::new(cap).unwrap();
    let objs = fake(cap);
    let index: HashMap<Obj, usize> = objs.iter().enumerate().map(|(i, &o)| (o, i)).collect();
    s.put_bulk(&objs).unwrap();
    let flags: Vec<AtomicBool> = (0..cap).map(|_| AtomicBool::new(false)).collect();
    let ops = AtomicUsize::new(0);
    let deadline = Instant::now() + Duration::from_millis(400);
    std::thread::scope(|sc| {
        for t in 0..4usize {
            let (s, flags, ops, index) = (&s, &flags, &ops, &index);
            sc.spawn(move || {
                let mut held: Vec<Obj> = Vec::with_capacity(16);
                let mut i = t;
                while Instant::now() < deadline {
                    i += 1;
                    let k = [1, 3, 16][i % 3];
                    if held.len() + k <= 16 {
                        if let Ok(got) = get(s, k) {
                            for &o in &got {
                                take(flags, index, o);
                            }
                            held.extend(got);
                        }
                    }
                    let p = (i % 5).min(held.len());
                    let back = held.split_off(held.len() - p);
                    for &o in &back {
                        give(flags, index, o);
                    }
                    s.put_bulk(&back).unwrap();
                    ops.fetch_add(1, Ordering::Relaxed);
                }
                for &o in &held {
                    give(flags, index, o);
                }
                s.put_bulk(&held).unwrap();
            });
        }
    });
    assert!(ops.load(Ordering::Relaxed) > 1000);
    assert_eq!(s.len(), cap);
    let all = get(&s, cap).unwrap();
    let distinct: HashSet<_> = all.into_iter().collect();
    assert_eq!(distinct, objs.iter().copied().collect::<HashSet<_>>());
}

/// The same through a real pool on the lock-free stack, with and without
/// caches: no object is lost or handed to two threads at once.
#[test]
fn threads_through_a_pool_lose_nothing() {
    for cache_size in [0, 8] {
        let n = 256;
        let pool = Mempool::builder(n, 64)
            .name("lf-threads")
            .cache(cache_size)
            .backend_kind(BackendKind::LockFreeStack)
            .build_anonymous()
            .unwrap();
        // Objects are spread over chunks: index them by a map.
        let all = get_vec(&pool, None, n).unwrap();
        let index: HashMap<Obj, usize> = all.iter().enumerate().map(|(i, &o)| (o, i)).collect();
        assert_eq!(index.len(), n);
        // SAFETY: this pool's objects, returned once.
        unsafe { put_all(&pool, None, &all) };
        pool.flush_default_cache();
        let flags: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
        let deadline = Instant::now() + Duration::from_millis(300);
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4usize)
                .map(|t| {
                    let (pool, flags, index) = (&pool, &flags, &index);
                    sc.spawn(move || {
                        let mut cache = (t % 2 == 0).then(|| pool.cache());
                        let mut i = t;
                        while Instant::now() < deadline {
                            i += 1;
                            let k = [1, 7, 32][i % 3];
                            let Ok(objs) = get_vec(pool, cache.as_mut(), k) else {
                                continue;
                            };
                            for o in &objs {
                                let at = index[o];
                                assert!(!flags[at].swap(true, Ordering::Relaxed), "twice");
                            }
                            for o in &objs {
                                let at = index[o];
                                assert!(flags[at].swap(false, Ordering::Relaxed));
                            }
                            // SAFETY: just taken from this pool, returned once.
                            unsafe { put_all(pool, cache.as_mut(), &objs) };
                        }
                    })
                })
                .collect();
            for h in hs {
                h.join().unwrap();
            }
        });
        pool.flush_default_cache();
        assert_eq!(pool.avail_count(), n, "cache {cache_size}");
        let back = get_vec(&pool, None, n).unwrap();
        let distinct: HashSet<Obj> = back.iter().copied().collect();
        assert_eq!(distinct.len(), n);
        assert!(distinct.iter().all(|a| index.contains_key(a)));
        // SAFETY: returned once.
        unsafe { put_all(&pool, None, &back) };
        pool.audit().unwrap();
    }
}
