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
