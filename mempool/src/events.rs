//! Pool events: ready (fully populated) and destroyed.
//!
//! Callbacks are global (every pool), identified by the pair (function,
//! argument). Registering a pair twice is an error. An event calls the
//! callbacks registered when it starts, in registration order, without
//! holding the registry lock: a callback may unregister itself (or another,
//! which is then not called if it has not run yet), and one registered during
//! an event is not called for it.

use std::sync::Mutex;

use crate::error::EventError;

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

/// An event callback: the event, the pool, and the argument given at
/// registration.
pub type EventFn = fn(MempoolEvent, &EventInfo<'_>, usize);

/// Registered callbacks with a generation number each.
static REGISTRY: Mutex<Vec<(EventFn, usize, u64)>> = Mutex::new(Vec::new());
static GENERATION: Mutex<u64> = Mutex::new(0);

fn registry() -> std::sync::MutexGuard<'static, Vec<(EventFn, usize, u64)>> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

fn same(a: EventFn, b: EventFn) -> bool {
    a as usize == b as usize
}

/// Registers `f` with `arg` for every pool's events.
///
/// ```
/// use pktmem_mempool::{register_event_callback, unregister_event_callback, EventInfo, Mempool, MempoolEvent};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// static READY: AtomicUsize = AtomicUsize::new(0);
/// fn on_event(e: MempoolEvent, p: &EventInfo<'_>, _arg: usize) {
///     if e == MempoolEvent::Ready && p.name == "ev-doc" {
///         READY.fetch_add(1, Ordering::Relaxed);
///     }
/// }
/// register_event_callback(on_event, 0).unwrap();
/// assert!(register_event_callback(on_event, 0).is_err());
/// let _pool = Mempool::builder("ev-doc", 10, 64).create_anonymous().unwrap();
/// assert_eq!(READY.load(Ordering::Relaxed), 1);
/// unregister_event_callback(on_event, 0).unwrap();
/// ```
pub fn register_event_callback(f: EventFn, arg: usize) -> Result<(), EventError> {
    let mut r = registry();
    if r.iter().any(|&(g, a, _)| same(f, g) && a == arg) {
        return Err(EventError::AlreadyRegistered);
    }
    let mut gen = GENERATION.lock().unwrap_or_else(|e| e.into_inner());
    *gen += 1;
    r.push((f, arg, *gen));
    Ok(())
}

/// Unregisters `f` with `arg`.
pub fn unregister_event_callback(f: EventFn, arg: usize) -> Result<(), EventError> {
    let mut r = registry();
    let before = r.len();
    r.retain(|&(g, a, _)| !(same(f, g) && a == arg));
    if r.len() == before {
        Err(EventError::NotRegistered)
    } else {
        Ok(())
    }
}

pub(crate) fn fire(event: MempoolEvent, info: &EventInfo<'_>) {
    let snapshot: Vec<(EventFn, usize, u64)> = registry().clone();
    for (f, arg, gen) in snapshot {
        // Skip callbacks unregistered by an earlier callback of this event.
        let still = registry().iter().any(|&(_, _, g)| g == gen);
        if still {
            f(event, info, arg);
        }
    }
}
