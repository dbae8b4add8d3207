//! Pool events: closures registered with `on_event`, called in
//! registration order, unregistered when their guard drops (also from
//! inside a callback), and a callback registered during an event is not
//! called for it.

use std::sync::{Arc, Mutex};

use pktmem_mempool::{on_event, EventGuard, Mempool, MempoolEvent};

type Log = Arc<Mutex<Vec<(String, MempoolEvent, usize)>>>;

#[test]
fn events_order_and_self_unregister() {
    let log: Log = Arc::default();
    // Guards registered from inside callbacks, dropped at the end.
    let late: Arc<Mutex<Vec<EventGuard>>> = Arc::default();
    // The guard of the self-unregistering callback, which it drops itself.
    let own: Arc<Mutex<Option<EventGuard>>> = Arc::default();

    let (l, lt) = (log.clone(), late.clone());
    let a = on_event(move |e, p| {
        if p.name.starts_with("evtest") {
            l.lock().unwrap().push((p.name.to_string(), e, 1));
            // Registered during an event: not called for this one.
            let l2 = l.clone();
            lt.lock().unwrap().push(on_event(move |e, p| {
                if p.name.starts_with("evtest") {
                    l2.lock().unwrap().push((p.name.to_string(), e, 99));
                }
            }));
        }
    });
    let (l, o) = (log.clone(), own.clone());
    *own.lock().unwrap() = Some(on_event(move |e, p| {
        if p.name.starts_with("evtest") {
            l.lock().unwrap().push((p.name.to_string(), e, 2));
            // Unregisters itself (the guard drops outside the lock).
            let g = o.lock().unwrap().take();
            drop(g);
        }
    }));

    let pool = Mempool::builder(8, 64)
        .name("evtest-1")
        .build_empty()
        .unwrap();
    assert!(
        log.lock().unwrap().is_empty(),
        "not ready before population"
    );
    pool.populate_anonymous().unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec![
            ("evtest-1".to_string(), MempoolEvent::Ready, 1),
            ("evtest-1".to_string(), MempoolEvent::Ready, 2),
        ]
    );
    assert!(
        own.lock().unwrap().is_none(),
        "the callback dropped its guard"
    );
    // The Destroyed event makes the first callback register one more late
    // callback, which must not be called for that event.
    drop(pool);
    {
        let ev = log.lock().unwrap();
        // The self-unregistered callback is gone; the late one, registered
        // during the first event, is called for the next one.
        assert_eq!(
            ev[2..],
            [
                ("evtest-1".to_string(), MempoolEvent::Destroyed, 1),
                ("evtest-1".to_string(), MempoolEvent::Destroyed, 99),
            ]
        );
    }
    // Dropping the guards unregisters: no more calls.
    drop(a);
    late.lock().unwrap().clear();
    let n = log.lock().unwrap().len();
    drop(
        Mempool::builder(8, 64)
            .name("evtest-2")
            .build_anonymous()
            .unwrap(),
    );
    assert_eq!(log.lock().unwrap().len(), n, "no callback left");
}
