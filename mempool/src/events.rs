//! Pool events: ready (fully populated) and destroyed.
//!
//! A callback is a closure registered for every pool's events with
//! [`on_event`]; the returned [`EventGuard`] unregisters it when dropped
//! (or [`EventGuard::keep`] keeps it for the process's life). An event calls
//! the callbacks registered when it starts, in registration order, without
//! holding the registry lock: a callback may drop its own guard (or another,
//! whose callback is then not called if it has not run yet), and one
//! registered during an event is not called for it.

use std::sync::{Arc, Mutex, MutexGuard};

/// What happened to a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum MempoolEvent {
    /// The pool holds all its objects (after its last populate).
    Ready,
    /// The pool is being freed (its last handle went).
    Destroyed,
}

/// The pool an event is about.
#[derive(Debug, Clone, Copy)]
pub struct EventInfo<'a> {
    /// Its name.
    pub name: &'a str,
    /// Its object count.
    pub size: usize,
    /// Objects placed.
    pub populated: usize,
}

type Callback = Arc<dyn Fn(MempoolEvent, &EventInfo<'_>) + Send + Sync>;

/// Registered callbacks, each with its registration number (unique, growing).
struct Registry {
    next: u64,
    callbacks: Vec<(u64, Callback)>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    next: 0,
    callbacks: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    // A callback never runs under this lock, so a poisoned lock only means
    // a panic between two plain field updates: the data is consistent.
    REGISTRY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Registers `f` for the events of every pool; it runs until the returned
/// guard is dropped.
///
/// ```
/// use pktmem_mempool::{on_event, Mempool, MempoolEvent};
/// use std::sync::{Arc, atomic::{AtomicUsize, Ordering}};
///
/// let ready = Arc::new(AtomicUsize::new(0));
/// let seen = ready.clone();
/// let guard = on_event(move |e, pool| {
///     if e == MempoolEvent::Ready && pool.name == "ev-doc" {
///         seen.fetch_add(1, Ordering::Relaxed);
///     }
/// });
/// let _pool = Mempool::builder(10, 64).name("ev-doc").build_anonymous().unwrap();
/// assert_eq!(ready.load(Ordering::Relaxed), 1);
/// drop(guard); // unregistered
/// let _again = Mempool::builder(10, 64).name("ev-doc").build_anonymous().unwrap();
/// assert_eq!(ready.load(Ordering::Relaxed), 1);
/// ```
pub fn on_event(f: impl Fn(MempoolEvent, &EventInfo<'_>) + Send + Sync + 'static) -> EventGuard {
    let mut r = registry();
    let id = r.next;
    r.next += 1;
    r.callbacks.push((id, Arc::new(f)));
    EventGuard { id: Some(id) }
}

/// A registered event callback; dropping it unregisters the callback.
///
/// After the drop returns, no event that starts later calls it; a call
/// already running on another thread (events call a snapshot of the
/// callbacks) may still finish.
#[must_use = "dropping the guard unregisters the callback at once"]
#[derive(Debug)]
pub struct EventGuard {
    /// The registration number, `None` once kept.
    id: Option<u64>,
}

impl EventGuard {
    /// Keeps the callback registered for the rest of the process.
    pub fn keep(mut self) {
        self.id = None;
    }
}

impl Drop for EventGuard {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            registry().callbacks.retain(|(i, _)| *i != id);
        }
    }
}

pub(crate) fn fire(event: MempoolEvent, info: &EventInfo<'_>) {
    let snapshot: Vec<(u64, Callback)> = registry().callbacks.clone();
    for (id, f) in snapshot {
        // Skip callbacks unregistered by an earlier callback of this event.
        let still = registry().callbacks.iter().any(|(i, _)| *i == id);
        if still {
            f(event, info);
        }
    }
}
