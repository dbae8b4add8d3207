//! Event callbacks: Alloc after a range is mapped, Free before it is
//! unmapped, in order, external memory included; fired with no provider
//! lock held (a callback may use the provider, drop its own guard, register
//! others, allocate, free); a guard dropped unregisters, a panicking
//! callback leaves the provider consistent.
// Short names for the provider, chunks, blocks and the random state,
// as the comments that explain each test use them.
#![allow(clippy::many_single_char_names)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pktmem_hugemem::{Chunk, EventGuard, EventKind, MemEvent};

mod common;
use common::{heap_provider, Ext};

#[test]
fn events_in_order_with_ranges() {
    let p = heap_provider();
    let log: Arc<Mutex<Vec<MemEvent>>> = Arc::default();
    let l = log.clone();
    let log_guard = p
        .register_event_callback(move |e| l.lock().unwrap().push(*e))
        .labeled("log");
    assert_eq!(log_guard.label(), Some("log"));
    // Labels are for humans, not keys: a second "log" registers too.
    let twin = p.register_event_callback(|_| ()).labeled("log");
    assert_eq!(
        p.event_callbacks(),
        vec![Some("log".to_string()), Some("log".to_string())]
    );
    drop(twin);
    assert_eq!(p.event_callbacks(), vec![Some("log".to_string())]);
    let a = p.alloc(3 * 4096).unwrap();
    let b = p.alloc(4096).unwrap();
    let (a_va, b_va) = (a.as_ptr().as_ptr() as usize, b.as_ptr().as_ptr() as usize);
    drop(a);
    drop(b);
    let got = log.lock().unwrap().clone();
    let want = vec![
        (EventKind::Alloc, a_va, 3 * 4096),
        (EventKind::Alloc, b_va, 4096),
        (EventKind::Free, a_va, 3 * 4096),
        (EventKind::Free, b_va, 4096),
    ];
    assert_eq!(
        got.iter()
            .map(|e| (e.kind, e.va, e.len))
            .collect::<Vec<_>>(),
        want
    );
    // External memory fires events too: on registering, and when the
    // registration is dropped.
    let ext = Ext::new(8192, 4096);
    let reg = p.register_external(ext.ptr, 8192, 4096, None).unwrap();
    drop(reg);
    let got = log.lock().unwrap().clone();
    assert_eq!(got.len(), 6);
    assert_eq!(
        (got[4].kind, got[4].va, got[4].len, got[4].external),
        (EventKind::Alloc, ext.ptr as usize, 8192, true)
    );
    assert_eq!(got[5].kind, EventKind::Free);
    drop(log_guard);
    drop(p.alloc(4096).unwrap());
    assert_eq!(log.lock().unwrap().len(), 6, "unregistered with its guard");
    // Alloc comes after mapping and Free before unmapping: the range is
    // translatable (and readable) inside both.
    let weak = p.downgrade();
    let checked = Arc::new(AtomicUsize::new(0));
    let c2 = checked.clone();
    let mapped = p.register_event_callback(move |e| {
        let p2 = weak
            .upgrade()
            .expect("the provider is alive during its events");
        assert!(p2.virt2iova(e.va as *const u8).is_some(), "{e:?}");
        assert!(p2.virt2iova((e.va + e.len - 1) as *const u8).is_some());
        // SAFETY: the range is mapped for the duration of the event.
        let b = unsafe { std::ptr::read_volatile((e.va + e.len - 1) as *const u8) };
        assert!(e.kind == EventKind::Alloc || b == 0x77);
        c2.fetch_add(1, Ordering::SeqCst);
    });
    let mut c = p.alloc(2 * 4096).unwrap();
    c.as_mut_slice().fill(0x77);
    let mut c2 = p.alloc(2 * 4096).unwrap();
    c2.as_mut_slice().fill(0x77);
    drop((c, c2));
    assert_eq!(checked.load(Ordering::SeqCst), 4);
    drop(mapped);
    assert!(p.event_callbacks().is_empty(), "every guard unregistered");
}

#[test]
fn callback_may_unregister_itself_and_late_ones_wait() {
    let p = heap_provider();
    let calls = Arc::new(AtomicUsize::new(0));
    let late_calls = Arc::new(AtomicUsize::new(0));
    let own: Arc<Mutex<Option<EventGuard>>> = Arc::default();
    let late: Arc<Mutex<Option<EventGuard>>> = Arc::default();
    let (w, c2, l2, own2, late2) = (
        p.downgrade(),
        calls.clone(),
        late_calls.clone(),
        own.clone(),
        late.clone(),
    );
    let guard = p.register_event_callback(move |e| {
        c2.fetch_add(1, Ordering::SeqCst);
        let p2 = w.upgrade().unwrap();
        // The provider is usable from a callback: no lock is held.
        let page = p2.page_of(e.va).expect("mapped before the Alloc event");
        assert!(page.in_use);
        assert!(p2.mapped_bytes() >= e.len);
        drop(own2.lock().unwrap().take()); // unregisters this callback
        let l3 = l2.clone();
        *late2.lock().unwrap() = Some(p2.register_event_callback(move |_| {
            l3.fetch_add(1, Ordering::SeqCst);
        }));
    });
    *own.lock().unwrap() = Some(guard);
    let c = p.alloc(4096).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        late_calls.load(Ordering::SeqCst),
        0,
        "registered during the event"
    );
    assert!(own.lock().unwrap().is_none());
    drop(c);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "unregistered itself");
    assert_eq!(late_calls.load(Ordering::SeqCst), 1);
    assert_eq!(p.event_callbacks().len(), 1, "only the late one");
    drop(late.lock().unwrap().take());
    assert!(p.event_callbacks().is_empty());
}

#[test]
fn callback_may_allocate() {
    let p = heap_provider();
    let held: Arc<Mutex<Vec<Chunk>>> = Arc::default();
    let (w, h2) = (p.downgrade(), held.clone());
    let log: Arc<Mutex<Vec<(EventKind, usize)>>> = Arc::default();
    let l2 = log.clone();
    let once = AtomicBool::new(false);
    let nested = p.register_event_callback(move |e| {
        l2.lock().unwrap().push((e.kind, e.va));
        if e.kind == EventKind::Alloc && !once.swap(true, Ordering::SeqCst) {
            let c = w.upgrade().unwrap().alloc(4096).unwrap(); // nested Alloc event
            h2.lock().unwrap().push(c);
        }
    });
    let c = p.alloc(4096).unwrap();
    assert_eq!(held.lock().unwrap().len(), 1);
    assert_eq!(p.mapped_bytes(), 2 * 4096);
    assert_eq!(log.lock().unwrap().len(), 2);
    drop(c);
    held.lock().unwrap().clear();
    assert_eq!(p.mapped_bytes(), 0);
    let frees = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.0 == EventKind::Free)
        .count();
    assert_eq!(frees, 2);
    drop(nested);
}

#[test]
fn chunk_dropped_inside_callback_is_freed() {
    let p = heap_provider();
    let held: Arc<Mutex<Option<Chunk>>> = Arc::default();
    let h2 = held.clone();
    let _dropper = p.register_event_callback(move |e| {
        if e.kind == EventKind::Alloc {
            drop(h2.lock().unwrap().take());
        }
    });
    *held.lock().unwrap() = Some(p.alloc(4096).unwrap()); // fires: nothing held yet
    assert_eq!(p.mapped_bytes(), 4096);
    let c = p.alloc(4096).unwrap(); // fires: drops the first chunk inside the callback
    assert_eq!(
        p.mapped_bytes(),
        4096,
        "the first chunk was freed after the event"
    );
    drop(c);
    assert_eq!(p.mapped_bytes(), 0);
}

#[test]
fn panicking_callback_leaves_state_consistent() {
    let p = heap_provider();
    let _boom = p.register_event_callback(|e| {
        assert!(e.len != 2 * 4096, "callback panics on purpose");
    });
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.alloc(2 * 4096)));
    assert!(r.is_err(), "the panic reaches the caller");
    assert_eq!(p.mapped_bytes(), 0, "the chunk was given back");
    let c = p.alloc(4096).unwrap();
    assert_eq!(p.mapped_bytes(), 4096);
    drop(c);
    assert_eq!(p.mapped_bytes(), 0);
    assert!(p
        .lists()
        .iter()
        .all(|l| l.used_pages == 0 && l.mapped_pages == 0));
}

/// A kept guard keeps its callback for the provider's life; a callback
/// holding only a weak handle does not keep the provider alive.
#[test]
fn kept_callback_lives_with_the_provider() {
    let p = heap_provider();
    let n = Arc::new(AtomicUsize::new(0));
    let (n2, w) = (n.clone(), p.downgrade());
    p.register_event_callback(move |_| {
        n2.fetch_add(1, Ordering::SeqCst);
        assert!(w.upgrade().is_some());
    })
    .keep();
    drop(p.alloc(4096).unwrap());
    assert_eq!(n.load(Ordering::SeqCst), 2);
    assert_eq!(p.event_callbacks(), vec![None]);
    let weak = p.downgrade();
    drop(p);
    assert!(
        weak.upgrade().is_none(),
        "the provider went with its callbacks"
    );
}
