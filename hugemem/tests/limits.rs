//! The provider's upper limit and growth validators: growth past the limit
//! is refused with the numbers; a validator is asked only past its
//! threshold, may refuse, cannot use the provider (it runs under its lock),
//! and goes with its guard.

use std::sync::{Arc, Mutex};

use pktmem_hugemem::{AllocError, Provider};

mod common;
use common::heap_provider;

#[test]
fn limit_refuses_exactly_past_threshold() {
    let p = Provider::builder()
        .heap_backed(1 << 20)
        .limit(10 * 4096)
        .build()
        .unwrap();
    let a = p.alloc(10 * 4096).unwrap(); // exactly at the limit
    match p.alloc(1) {
        Err(AllocError::LimitExceeded {
            requested,
            mapped,
            limit,
        }) => assert_eq!((requested, mapped, limit), (4096, 10 * 4096, 10 * 4096)),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.mapped_bytes(), 10 * 4096, "state unchanged");
    drop(a);
    let _b = p.alloc(4096).unwrap();
}

#[test]
fn validator_refuses_growth_past_threshold() {
    let p = heap_provider();
    let asked = Arc::new(Mutex::new(Vec::new()));
    let a2 = asked.clone();
    let cap = p
        .register_validator(8 * 4096, move |q| {
            a2.lock().unwrap().push(q.new_total);
            false
        })
        .labeled("cap");
    assert_eq!(cap.label(), Some("cap"));
    let a = p.alloc(8 * 4096).unwrap(); // reaching the threshold is allowed
    assert!(
        asked.lock().unwrap().is_empty(),
        "not asked at the threshold"
    );
    match p.alloc(4096) {
        Err(AllocError::RefusedByValidator {
            label,
            new_total,
            threshold,
        }) => {
            assert_eq!(label.as_deref(), Some("cap"));
            assert_eq!((new_total, threshold), (9 * 4096, 8 * 4096));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(*asked.lock().unwrap(), vec![9 * 4096]);
    drop(cap);
    let b = p.alloc(4096).unwrap();
    assert_eq!(
        asked.lock().unwrap().len(),
        1,
        "not asked after its guard went"
    );
    drop((a, b));
}

#[test]
fn validator_may_not_use_the_provider() {
    let p = heap_provider();
    let p3 = p.clone();
    let v = p.register_validator(0, move |_| {
        assert!(matches!(p3.alloc(1), Err(AllocError::Reentrant)));
        assert!(p3.lease_external(std::ptr::null(), 1, "x").is_err());
        true
    });
    let c = p.alloc(1).unwrap();
    assert_eq!(c.len(), 1);
    drop(c);
    // The validator holds a clone of `p`: while it is registered the
    // provider keeps itself alive; dropping the guard frees it.
    let weak = p.downgrade();
    drop(v);
    drop(p);
    assert!(weak.upgrade().is_none());
}

/// A validator may drop its own guard (or a chunk) while it runs under the
/// provider lock: the unregistering happens at once, the free after.
#[test]
fn validator_may_drop_its_guard_and_chunks() {
    let p = heap_provider();
    let slot: Arc<Mutex<Option<pktmem_hugemem::ValidatorGuard>>> = Arc::default();
    let held: Arc<Mutex<Option<pktmem_hugemem::Chunk>>> = Arc::default();
    let (s2, h2) = (slot.clone(), held.clone());
    let asked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let a2 = asked.clone();
    let guard = p.register_validator(4096, move |_| {
        a2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        drop(s2.lock().unwrap().take());
        drop(h2.lock().unwrap().take());
        true
    });
    *slot.lock().unwrap() = Some(guard);
    *held.lock().unwrap() = Some(p.alloc(4096).unwrap()); // at the threshold: not asked
    let c = p.alloc(4096).unwrap(); // asked: drops its guard and the first chunk
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(p.mapped_bytes(), 4096, "the first chunk was freed after");
    let d = p.alloc(2 * 4096).unwrap(); // not asked any more
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    drop((c, d));
    assert_eq!(p.mapped_bytes(), 0);
}
