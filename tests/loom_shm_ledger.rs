//! Loom models of the shared pool's ownership ledger (run with
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom_shm_ledger`).
//! The ledger's own source (`src/shm/ledger.rs`) is compiled here against
//! loom's atomics. Each model: two or three threads racing a return, a
//! reclaim and a loan; every buffer is taken back exactly once and the
//! ledger ends where the model says.

#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;

/// What `ledger.rs` reaches as `super::sync`.
mod sync {
    pub use loom::sync::atomic;
}

#[allow(dead_code)]
#[path = "../src/shm/ledger.rs"]
mod ledger;

use ledger::{IndexSet, Ledger, TakeBack};

/// A peer's return of buffer 0 races the exporter's reclaim of the peer's
/// role (and a second return of buffer 1 on the main thread): each buffer
/// comes back exactly once, whoever wins.
#[test]
fn return_races_reclaim() {
    loom::model(|| {
        let l = Arc::new(Ledger::new(2));
        l.lend(0, 1).unwrap();
        l.lend(1, 1).unwrap();
        let ret = {
            let l = Arc::clone(&l);
            thread::spawn(move || l.take_back(0, 1).is_ok())
        };
        let rec = {
            let l = Arc::clone(&l);
            thread::spawn(move || {
                let mut got = Vec::new();
                l.reclaim(1, &IndexSet::new(2), |i| got.push(i));
                got
            })
        };
        let main_got_1 = l.take_back(1, 1).is_ok();
        let ret_got_0 = ret.join().unwrap();
        let reclaimed = rec.join().unwrap();
        let zero = usize::from(ret_got_0) + reclaimed.iter().filter(|&&i| i == 0).count();
        let one = usize::from(main_got_1) + reclaimed.iter().filter(|&&i| i == 1).count();
        assert_eq!((zero, one), (1, 1), "{reclaimed:?}");
        assert_eq!((l.holder(0), l.holder(1)), (0, 0));
        // Whoever lost saw the buffer already back.
        assert_eq!(l.take_back(0, 1), Err(TakeBack::NotLent));
    });
}

/// A loan to role 2 races the reclaim of role 1 and a forged return by
/// role 1 of the buffer being lent to role 2: the reclaim never takes role
/// 2's buffer, the forged return never succeeds.
#[test]
fn loan_races_reclaim_of_another_role() {
    loom::model(|| {
        let l = Arc::new(Ledger::new(2));
        l.lend(1, 1).unwrap();
        let lend = {
            let l = Arc::clone(&l);
            thread::spawn(move || l.lend(0, 2))
        };
        let forged = {
            let l = Arc::clone(&l);
            thread::spawn(move || l.take_back(0, 1))
        };
        let mut got = Vec::new();
        l.reclaim(1, &IndexSet::new(2), |i| got.push(i));
        assert_eq!(lend.join().unwrap(), Ok(()));
        assert!(forged.join().unwrap().is_err());
        assert_eq!(got, [1]);
        assert_eq!((l.holder(0), l.holder(1)), (2, 0));
    });
}

/// What can really race (review T3): `Port::reclaim` (on the port's
/// thread) puts each buffer it takes back into the exporter's free list,
/// while on other threads another role's port lends whatever it finds
/// free (`refill`: take a free index, `lend` it, which must succeed: the
/// code debug-asserts it), the application allocates (`SharedPool::alloc`:
/// take a free index, ledger untouched) and drops an exporter-held buffer
/// (`put`: back to the free list). The free list is modelled as a locked
/// queue (the real one is the ring crate's MPMC ring, with its own loom
/// model; both publish an index with Release and take it with Acquire).
/// Every buffer ends in exactly one place; a buffer kept for the next
/// holder (in the keep set) is never freed; nothing lent to role 2 is
/// reclaimed for role 1.
#[test]
fn reclaim_feeds_the_free_list_racing_lend_alloc_and_put() {
    use loom::sync::Mutex;
    use std::collections::VecDeque;
    loom::model(|| {
        // Buffers 0, 1: lent to role 1 (1 is kept: still queued in its
        // rings); 2: in the exporter's hands (a handle).
        let l = Arc::new(Ledger::new(3));
        l.lend(0, 1).unwrap();
        l.lend(1, 1).unwrap();
        let free: Arc<Mutex<VecDeque<u32>>> = Arc::new(Mutex::new(VecDeque::new()));
        let rec = {
            let (l, free) = (Arc::clone(&l), Arc::clone(&free));
            thread::spawn(move || {
                let mut keep = IndexSet::new(3);
                keep.insert(1);
                l.reclaim(1, &keep, |i| free.lock().unwrap().push_back(i))
            })
        };
        let other_port = {
            let (l, free) = (Arc::clone(&l), Arc::clone(&free));
            thread::spawn(move || {
                let got = free.lock().unwrap().pop_front();
                if let Some(i) = got {
                    assert_eq!(l.lend(i, 2), Ok(()), "a free buffer {i} is lendable");
                }
                got
            })
        };
        let app = {
            let free = Arc::clone(&free);
            thread::spawn(move || {
                // Drop the handle of buffer 2, then allocate one.
                free.lock().unwrap().push_back(2);
                free.lock().unwrap().pop_front()
            })
        };
        let n = rec.join().unwrap();
        let lent2 = other_port.join().unwrap();
        let in_hand = app.join().unwrap();
        assert_eq!(n, 1, "only buffer 0 is reclaimed");
        assert_eq!(l.holder(1), 1, "the kept buffer stays lent to role 1");
        let mut seen = [0usize; 3];
        for &i in free.lock().unwrap().iter() {
            assert_eq!(l.holder(i), 0, "a free buffer {i} is with the exporter");
            seen[i as usize] += 1;
        }
        if let Some(i) = lent2 {
            assert_eq!(l.holder(i), 2);
            seen[i as usize] += 1;
        }
        if let Some(i) = in_hand {
            assert_eq!(l.holder(i), 0);
            seen[i as usize] += 1;
        }
        // 0 and 2 are each in exactly one place (free, lent to 2, in hand).
        assert_eq!((seen[0], seen[1], seen[2]), (1, 0, 1), "{seen:?}");
    });
}
