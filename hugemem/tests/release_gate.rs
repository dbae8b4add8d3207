//! Release gates: a held run stays mapped and out of use until its last
//! hold drops, then goes back to the system; gates that panic, guards that
//! go, holds dropped on other threads, inside validators, or after the
//! provider.

use std::sync::{mpsc, Arc, Mutex};

use pktmem_hugemem::{
    process_hugetlb_bytes, AllocRequest, EventKind, MemEvent, PageSize, Provider, ReleaseHold,
};

mod common;
use common::{huge2m_provider, serial, small_page_provider, MB2};

/// What a keeping gate was given: each run's Free event and its hold.
type Held = Arc<Mutex<Vec<(MemEvent, ReleaseHold)>>>;

/// A gate that keeps every hold it is given, and what it was told.
fn keeping_gate(p: &Provider) -> (pktmem_hugemem::ReleaseGateGuard, Held) {
    let held: Held = Arc::default();
    let h = held.clone();
    let g = p.register_release_gate(move |ev, hold| h.lock().unwrap().push((*ev, hold)));
    (g, held)
}

#[test]
fn held_run_stays_mapped_and_unused_until_the_last_hold_drops() {
    let p = small_page_provider();
    let (_gate, held) = keeping_gate(&p);
    let c = p.alloc(64 << 10).unwrap();
    let va = c.as_ptr().as_ptr() as usize;
    let iova = p.virt2iova(c.as_ptr().as_ptr());
    let mapped = p.mapped_bytes();
    drop(c);
    {
        let h = held.lock().unwrap();
        assert_eq!(h.len(), 1, "one run offered");
        let (ev, offered) = &h[0];
        assert_eq!(ev.kind, EventKind::Free);
        assert_eq!((ev.va, ev.len), (va, 64 << 10));
        assert_eq!((offered.va(), offered.len()), (va, 64 << 10));
    }
    // Still mapped, still translated, not handed out again.
    assert_eq!(p.mapped_bytes(), mapped);
    assert_eq!(p.virt2iova(va as *const u8), iova);
    let again = p.alloc(64 << 10).unwrap();
    let again_va = again.as_ptr().as_ptr() as usize;
    assert!(
        again_va + (64 << 10) <= va || again_va >= va + (64 << 10),
        "a held run was reused: {again_va:#x} in {va:#x}+64K"
    );
    drop(again);
    // Two clones of the hold: the run goes with the last.
    let (_, first) = held.lock().unwrap().remove(0);
    let twin = first.clone();
    drop(first);
    assert_eq!(p.virt2iova(va as *const u8), iova, "one clone still holds");
    let before = p.mapped_bytes();
    std::thread::spawn(move || drop(twin)).join().unwrap();
    assert_eq!(p.mapped_bytes(), before - (64 << 10));
    assert_eq!(p.virt2iova(va as *const u8), None, "unmapped once released");
    held.lock().unwrap().clear();
}

#[test]
fn held_hugepages_go_back_to_the_system_only_when_released() {
    let _s = serial();
    let Some(p) = huge2m_provider("release gate holds 2 MiB pages", 3) else {
        return;
    };
    let Some(start) = process_hugetlb_bytes() else {
        common::skip(format_args!("no HugetlbPages in /proc/self/status"));
        return;
    };
    let (gate, held) = keeping_gate(&p);
    let c = p
        .alloc_with(
            &AllocRequest::new(2 * MB2)
                .page_size(PageSize::Huge2M)
                .require_page_size(true),
        )
        .unwrap();
    assert_eq!(process_hugetlb_bytes(), Some(start + 2 * MB2));
    drop(c);
    assert_eq!(
        process_hugetlb_bytes(),
        Some(start + 2 * MB2),
        "held pages stay with the process"
    );
    drop(gate); // holds already given stay in force
    assert_eq!(process_hugetlb_bytes(), Some(start + 2 * MB2));
    held.lock().unwrap().clear();
    assert_eq!(
        process_hugetlb_bytes(),
        Some(start),
        "released pages went back"
    );
    // With the gate gone, frees are immediate again.
    let c = p
        .alloc_with(
            &AllocRequest::new(MB2)
                .page_size(PageSize::Huge2M)
                .require_page_size(true),
        )
        .unwrap();
    drop(c);
    assert_eq!(process_hugetlb_bytes(), Some(start));
}

#[test]
fn a_gate_that_drops_its_hold_lets_the_run_go_at_once() {
    let p = small_page_provider();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let _g = p
        .register_release_gate(move |ev, hold| {
            tx.lock().unwrap().send(ev.len).unwrap();
            drop(hold);
        })
        .labeled("pass");
    assert_eq!(p.release_gates(), [Some("pass".to_string())]);
    let before = p.mapped_bytes();
    drop(p.alloc(16 << 10).unwrap());
    assert_eq!(rx.try_recv(), Ok(16 << 10));
    assert_eq!(p.mapped_bytes(), before);
}

#[test]
fn every_gate_must_let_go() {
    let p = small_page_provider();
    let (_a, held_a) = keeping_gate(&p);
    let (_b, held_b) = keeping_gate(&p);
    let c = p.alloc(8 << 10).unwrap();
    let va = c.as_ptr().as_ptr();
    drop(c);
    held_a.lock().unwrap().clear();
    assert!(p.virt2iova(va).is_some() || p.iova_mode() == pktmem_hugemem::IovaMode::Pa);
    assert!(
        p.page_of(va as usize).is_some(),
        "gate b still holds the run"
    );
    held_b.lock().unwrap().clear();
    assert!(p.page_of(va as usize).is_none(), "both let go: unmapped");
}

#[test]
fn a_panicking_gate_releases_the_run_and_the_panic_reaches_the_freer() {
    let p = small_page_provider();
    let g = p.register_release_gate(|_, _| panic!("gate refuses to cooperate"));
    let c = p.alloc(8 << 10).unwrap();
    let va = c.as_ptr().as_ptr() as usize;
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(c)));
    assert!(r.is_err(), "the gate's panic goes on in the freeing thread");
    assert!(p.page_of(va).is_none(), "the run was released anyway");
    // The provider still works (with the gate gone: it would panic again).
    drop(g);
    let again = p.alloc(8 << 10).unwrap();
    assert_eq!(
        again.as_ptr().as_ptr() as usize,
        va,
        "the released run is reused"
    );
    drop(again);
}

#[test]
fn a_hold_dropped_inside_a_validator_is_released_after_the_lock() {
    let p = small_page_provider();
    let (_gate, held) = keeping_gate(&p);
    let c = p.alloc(8 << 10).unwrap();
    let va = c.as_ptr().as_ptr() as usize;
    drop(c);
    let h = held.clone();
    let _v = p.register_validator(0, move |_| {
        h.lock().unwrap().clear(); // the last hold drops under the provider lock
        true
    });
    let other = p.alloc(8 << 10).unwrap();
    assert!(held.lock().unwrap().is_empty());
    assert!(p.page_of(va).is_none(), "released once the lock was let go");
    drop(other);
}

#[test]
fn a_hold_outliving_its_provider_is_harmless() {
    let p = small_page_provider();
    let (gate, held) = keeping_gate(&p);
    drop(p.alloc(8 << 10).unwrap());
    drop(gate);
    drop(p);
    let holds = std::mem::take(&mut *held.lock().unwrap());
    assert_eq!(holds.len(), 1);
    drop(holds); // the provider is gone: nothing to unmap, no crash
}
