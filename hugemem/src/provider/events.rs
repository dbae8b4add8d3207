//! Event callbacks (told about every range mapped or about to be unmapped)
//! and growth validators (asked before the provider grows past a
//! threshold), and how events fire: queued under the provider lock, fired
//! by [`Inner::settle`] once it is released.

use std::cell::{Cell, RefCell};
use std::sync::Arc;

use super::{lock, Inner, Provider, State, IN_CALLBACK};
use crate::chunk::RawChunk;
use crate::sync::{AtomicBool, MutexGuard, Ordering};
use crate::HugememError;

/// What happened to memory, for [`Provider::register_event_callback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Pages were mapped (or external memory registered); called after mapping.
    Alloc,
    /// Pages are about to be unmapped (or external memory unregistered).
    Free,
}

/// One memory event: a VA range that appeared or is about to disappear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemEvent {
    /// Alloc or Free.
    pub kind: EventKind,
    /// First byte of the range.
    pub va: usize,
    /// Length of the range in bytes.
    pub len: usize,
    /// Whether the range is external memory.
    pub external: bool,
}

/// What a validator is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrowthQuery {
    /// Bytes mapped by the provider now.
    pub mapped: usize,
    /// Bytes that would be mapped after the allocation.
    pub new_total: usize,
    /// The validator's threshold.
    pub threshold: usize,
    /// Page size of the growth.
    pub page_size: usize,
}

type EventFn = dyn Fn(&MemEvent) + Send + Sync;
type ValidatorFn = dyn Fn(&GrowthQuery) -> bool + Send + Sync;

pub(super) struct EventEntry {
    name: String,
    /// Cleared on unregister so a snapshot taken before it skips the entry.
    active: AtomicBool,
    f: Box<EventFn>,
}

pub(super) struct Validator {
    pub(super) name: String,
    pub(super) threshold: usize,
    pub(super) f: Arc<ValidatorFn>,
}

pub(super) type PanicPayload = Box<dyn std::any::Any + Send + 'static>;

thread_local! {
    /// A callback's panic, held until the provider's bookkeeping is done.
    static PANIC: RefCell<Option<PanicPayload>> = const { RefCell::new(None) };
    /// Chunks dropped inside a validator (provider id, chunk): freed by
    /// `settle` once the provider lock is released.
    static DEFERRED: RefCell<Vec<(u64, RawChunk)>> = const { RefCell::new(Vec::new()) };
}

/// Marks this thread as running a validator of provider `id` until dropped
/// (also on unwind).
pub(super) struct InCallback(u64);

impl InCallback {
    pub(super) fn enter(id: u64) -> InCallback {
        InCallback(IN_CALLBACK.with(|c| c.replace(id)))
    }
}

impl Drop for InCallback {
    fn drop(&mut self) {
        IN_CALLBACK.with(|c| c.set(self.0));
    }
}

impl Provider {
    /// Registers `f` under `name`, called for every page Alloc (after
    /// mapping) and Free (before unmapping), external memory included.
    /// Callbacks run with no provider lock held, so they may use the
    /// provider (translate, look up pages, allocate, free, (un)register
    /// callbacks): hold it as a [`WeakProvider`](crate::WeakProvider) ([`downgrade`](Self::downgrade));
    /// a captured `Provider` clone keeps the provider and its memory alive
    /// until the callback is unregistered. Events for a range arrive in
    /// order: a range's Free comes before the Alloc of anything mapped again
    /// at those addresses.
    ///
    /// ```
    /// use pktmem_hugemem::{EventKind, Provider};
    /// use std::sync::{Arc, Mutex};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// p.register_event_callback("log", move |e| s.lock().unwrap().push(e.kind)).unwrap();
    /// drop(p.alloc(4096).unwrap());
    /// assert_eq!(*seen.lock().unwrap(), vec![EventKind::Alloc, EventKind::Free]);
    /// assert!(p.register_event_callback("log", |_| ()).is_err());
    /// p.unregister_event_callback("log").unwrap();
    /// ```
    pub fn register_event_callback(
        &self,
        name: &str,
        f: impl Fn(&MemEvent) + Send + Sync + 'static,
    ) -> Result<(), HugememError> {
        let mut ev = lock(&self.inner.events);
        if ev.iter().any(|e| e.name == name) {
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        ev.push(Arc::new(EventEntry {
            name: name.to_string(),
            active: AtomicBool::new(true),
            f: Box::new(f),
        }));
        Ok(())
    }

    /// Unregisters the callback `name` (may be called from inside it).
    pub fn unregister_event_callback(&self, name: &str) -> Result<(), HugememError> {
        let mut ev = lock(&self.inner.events);
        let i = ev
            .iter()
            .position(|e| e.name == name)
            .ok_or_else(|| HugememError::UnknownName(name.to_string()))?;
        // Release: pairs with the Acquire load in `fire`.
        ev[i].active.store(false, Ordering::Release);
        ev.remove(i);
        Ok(())
    }

    /// Registers a validator called whenever growth would take the mapped
    /// bytes past `threshold`; returning false refuses the allocation with
    /// [`HugememError::RefusedByValidator`]. Validators run under the
    /// provider's lock: everything they need is in the [`GrowthQuery`];
    /// allocating from inside one returns [`HugememError::Reentrant`].
    ///
    /// ```
    /// use pktmem_hugemem::{HugememError, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// p.register_validator("cap", 8192, |q| q.new_total <= 12288).unwrap();
    /// let a = p.alloc(8192).unwrap(); // up to the threshold: not asked
    /// let b = p.alloc(4096).unwrap(); // asked, allowed
    /// assert!(matches!(p.alloc(4096), Err(HugememError::RefusedByValidator { .. })));
    /// drop((a, b));
    /// ```
    pub fn register_validator(
        &self,
        name: &str,
        threshold: usize,
        f: impl Fn(&GrowthQuery) -> bool + Send + Sync + 'static,
    ) -> Result<(), HugememError> {
        let mut st = lock(&self.inner.state);
        if st.validators.iter().any(|v| v.name == name) {
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        st.validators.push(Validator {
            name: name.to_string(),
            threshold,
            f: Arc::new(f),
        });
        Ok(())
    }

    /// Removes the validator `name`.
    pub fn unregister_validator(&self, name: &str) -> Result<(), HugememError> {
        let mut st = lock(&self.inner.state);
        let i = st
            .validators
            .iter()
            .position(|v| v.name == name)
            .ok_or_else(|| HugememError::UnknownName(name.to_string()))?;
        st.validators.remove(i);
        Ok(())
    }
}

impl Inner {
    /// Asks the validators whose threshold `new_total` passes; the first
    /// that refuses, if any. Runs under the provider lock, marked so that a
    /// validator using the provider gets [`HugememError::Reentrant`].
    pub(super) fn ask_validators(&self, st: &State, q: GrowthQuery) -> Option<HugememError> {
        let _in_validator = InCallback::enter(self.id);
        let refused = st.validators.iter().find(|v| {
            q.new_total > v.threshold
                && !(v.f)(&GrowthQuery {
                    threshold: v.threshold,
                    ..q
                })
        })?;
        Some(HugememError::RefusedByValidator {
            name: refused.name.clone(),
            new_total: q.new_total,
            threshold: refused.threshold,
        })
    }

    /// Calls every active callback for each event, with no lock held.
    fn fire(&self, evs: &[super::MemEvent]) {
        if evs.is_empty() {
            return;
        }
        let snapshot: Vec<Arc<EventEntry>> = lock(&self.events).clone();
        if snapshot.is_empty() {
            return;
        }
        for ev in evs {
            for e in &snapshot {
                // Acquire: pairs with the Release store in `unregister_event_callback`.
                if e.active.load(Ordering::Acquire) {
                    // A panicking callback must not leave pages half given
                    // back: finish the bookkeeping, then let the panic go on.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (e.f)(ev)));
                    if let Err(payload) = r {
                        PANIC.with(|p| {
                            p.borrow_mut().get_or_insert(payload);
                        });
                    }
                }
            }
        }
    }

    /// Releases the lock, fires the queued events, then (locked again)
    /// unmaps the pages and removes the lists whose Free events just fired;
    /// frees chunks dropped inside validators. Callbacks thus run with no
    /// provider lock held.
    ///
    /// Returns the payload of a callback's panic, for the caller to resume
    /// once its own state is consistent.
    #[must_use]
    pub(super) fn settle<'a>(&'a self, mut st: MutexGuard<'a, State>) -> Option<PanicPayload> {
        loop {
            let evs = std::mem::take(&mut st.pending_events);
            let unmaps = std::mem::take(&mut st.pending_unmap);
            let removals = std::mem::take(&mut st.pending_removal);
            let deferred: Vec<RawChunk> = DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                let (mine, rest): (Vec<_>, Vec<_>) =
                    d.drain(..).partition(|(id, _)| *id == self.id);
                *d = rest;
                mine.into_iter().map(|(_, r)| r).collect()
            });
            if evs.is_empty() && unmaps.is_empty() && removals.is_empty() && deferred.is_empty() {
                drop(st);
                return PANIC.with(|p| p.borrow_mut().take());
            }
            drop(st);
            self.fire(&evs);
            st = lock(&self.state);
            for (li, s, c) in unmaps {
                self.unmap_pages(&mut st, li, s, c);
                st.releasing -= c << st.lists[li].seg.shift;
            }
            for li in removals {
                self.finish_removal(&mut st, li);
            }
            for raw in deferred {
                self.free_locked(&mut st, raw);
            }
        }
    }

    /// [`settle`](Self::settle), then resumes a callback's panic.
    pub(super) fn settle_or_unwind<'a>(&'a self, st: MutexGuard<'a, State>) {
        if let Some(payload) = self.settle(st) {
            std::panic::resume_unwind(payload);
        }
    }

    /// Whether this thread is inside one of this provider's validators
    /// (whose lock is then held further up the stack).
    pub(super) fn in_validator(&self) -> bool {
        IN_CALLBACK.with(Cell::get) == self.id
    }

    /// Queues `raw` to be freed once the lock held further up this thread's
    /// stack is released (a chunk dropped inside a validator).
    pub(super) fn defer_free(&self, raw: RawChunk) {
        DEFERRED.with(|d| d.borrow_mut().push((self.id, raw)));
    }
}

/// Holds a DMA mapper's panic (caught under the provider lock) until
/// `settle` hands it back, as it does a callback's.
pub(super) fn hold_panic(payload: PanicPayload) {
    PANIC.with(|p| {
        p.borrow_mut().get_or_insert(payload);
    });
}
