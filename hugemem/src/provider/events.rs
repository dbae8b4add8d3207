//! Event callbacks (told about every range mapped or about to be unmapped)
//! and growth validators (asked before the provider grows past a
//! threshold), and how events fire: queued under the provider lock, fired
//! by [`Inner::settle`] once it is released.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use super::{lock, Deferred, Inner, Provider, State, IN_CALLBACK};
use crate::sync::{AtomicBool, MutexGuard, Ordering};
use crate::AllocError;

/// What happened to memory, for [`Provider::register_event_callback`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Pages were mapped (or external memory registered); called after mapping.
    Alloc,
    /// Pages are about to be unmapped (or external memory unregistered).
    Free,
}

/// One memory event: a VA range that appeared or is about to disappear.
///
/// ```
/// use pktmem_hugemem::{EventKind, MemEvent, Provider};
/// use std::sync::{Arc, Mutex};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let seen: Arc<Mutex<Vec<MemEvent>>> = Arc::default();
/// let s = seen.clone();
/// let _g = p.register_event_callback(move |e| s.lock().unwrap().push(*e));
/// let c = p.alloc(8192).unwrap();
/// let va = c.as_ptr().as_ptr() as usize;
/// assert_eq!(seen.lock().unwrap()[0], MemEvent { kind: EventKind::Alloc, va, len: 8192, external: false });
/// ```
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
///
/// ```
/// use pktmem_hugemem::{GrowthQuery, Provider};
/// use std::sync::{Arc, Mutex};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let asked: Arc<Mutex<Vec<GrowthQuery>>> = Arc::default();
/// let a = asked.clone();
/// let _v = p.register_validator(0, move |q| { a.lock().unwrap().push(*q); true });
/// let _c = p.alloc(4096).unwrap();
/// let q = asked.lock().unwrap()[0];
/// assert_eq!((q.mapped, q.new_total, q.threshold, q.page_size), (0, 4096, 0, 4096));
/// ```
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
    /// For humans (dumps); set once.
    label: OnceLock<String>,
    /// Cleared when the guard goes, so a snapshot taken before skips the entry.
    active: AtomicBool,
    f: Box<EventFn>,
}

pub(super) struct Validator {
    /// For humans and [`AllocError::RefusedByValidator`]; set once.
    label: OnceLock<String>,
    pub(super) threshold: usize,
    /// Cleared when the guard goes (also from inside a validator, where the
    /// list cannot be edited: inactive entries are skipped, then purged).
    active: AtomicBool,
    f: Box<ValidatorFn>,
}

/// The registration of an event callback: dropping it unregisters the
/// callback (from any thread, also from inside the callback itself);
/// [`keep`](Self::keep) keeps it for the provider's life. Once the drop
/// returns no new call starts; a call already running on another thread
/// finishes (callbacks run with no lock held).
///
/// ```
/// use pktmem_hugemem::Provider;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let n = Arc::new(AtomicUsize::new(0));
/// let n2 = n.clone();
/// let guard = p
///     .register_event_callback(move |_| { n2.fetch_add(1, Ordering::Relaxed); })
///     .labeled("count");
/// assert_eq!(guard.label(), Some("count"));
/// drop(p.alloc(4096).unwrap()); // Alloc, Free
/// drop(guard);
/// drop(p.alloc(4096).unwrap()); // not seen
/// assert_eq!(n.load(Ordering::Relaxed), 2);
/// ```
#[must_use = "dropping the guard unregisters the callback at once (`keep()` keeps it)"]
pub struct EventGuard {
    provider: Weak<Inner>,
    entry: Arc<EventEntry>,
    kept: bool,
}

impl EventGuard {
    /// Gives the callback a label for humans (dumps); the first label sticks.
    pub fn labeled(self, label: &str) -> Self {
        let _ = self.entry.label.set(label.to_string());
        self
    }

    /// The callback's label, if it was given one.
    pub fn label(&self) -> Option<&str> {
        self.entry.label.get().map(String::as_str)
    }

    /// Keeps the callback registered for the provider's life (the guard
    /// goes, the registration stays). A callback that holds a [`Provider`]
    /// clone then keeps the provider alive for ever: hold a
    /// [`WeakProvider`](crate::WeakProvider) instead.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for EventGuard {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Release: pairs with the Acquire load in `fire`, so a snapshot
        // taken before the removal below skips the entry from now on.
        self.entry.active.store(false, Ordering::Release);
        if let Some(inner) = self.provider.upgrade() {
            lock(&inner.events).retain(|e| !Arc::ptr_eq(e, &self.entry));
        }
    }
}

impl fmt::Debug for EventGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventGuard")
            .field("label", &self.label())
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

/// The registration of a growth validator: dropping it unregisters the
/// validator; [`keep`](Self::keep) keeps it for the provider's life.
///
/// ```
/// use pktmem_hugemem::{AllocError, Provider};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let cap = p.register_validator(4096, |q| q.new_total <= 4096).labeled("cap");
/// let a = p.alloc(4096).unwrap();
/// let e = p.alloc(4096).unwrap_err();
/// assert!(matches!(e, AllocError::RefusedByValidator { label: Some(l), .. } if l == "cap"));
/// drop(cap);
/// let b = p.alloc(4096).unwrap(); // nobody refuses now
/// # drop((a, b));
/// ```
#[must_use = "dropping the guard unregisters the validator at once (`keep()` keeps it)"]
pub struct ValidatorGuard {
    provider: Weak<Inner>,
    entry: Arc<Validator>,
    kept: bool,
}

impl ValidatorGuard {
    /// Gives the validator a label (named in its refusals); the first label sticks.
    pub fn labeled(self, label: &str) -> Self {
        let _ = self.entry.label.set(label.to_string());
        self
    }

    /// The validator's label, if it was given one.
    pub fn label(&self) -> Option<&str> {
        self.entry.label.get().map(String::as_str)
    }

    /// Keeps the validator registered for the provider's life.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for ValidatorGuard {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Relaxed: validators run under the state lock, and so does the
        // purge below; the flag only has to be seen by later lock holders,
        // which the lock's own ordering gives (a validator dropping its own
        // guard is on the lock-holding thread).
        self.entry.active.store(false, Ordering::Relaxed);
        if let Some(inner) = self.provider.upgrade() {
            if !inner.in_validator() {
                lock(&inner.state)
                    .validators
                    .retain(|v| !Arc::ptr_eq(v, &self.entry));
            }
        }
    }
}

impl fmt::Debug for ValidatorGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValidatorGuard")
            .field("label", &self.label())
            .field("threshold", &self.entry.threshold)
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

pub(super) type PanicPayload = Box<dyn std::any::Any + Send + 'static>;

thread_local! {
    /// A callback's panic, held until the provider's bookkeeping is done.
    static PANIC: RefCell<Option<PanicPayload>> = const { RefCell::new(None) };
    /// Drops that ran inside a validator (provider id, work): done by
    /// `settle` once the provider lock is released.
    static DEFERRED: RefCell<Vec<(u64, Deferred)>> = const { RefCell::new(Vec::new()) };
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
    /// Registers `f`, called for every page Alloc (after mapping) and Free
    /// (before unmapping), external memory included, until the returned
    /// guard is dropped.
    ///
    /// Callbacks run with no provider lock held, so they may use the
    /// provider (translate, look up pages, allocate, free, register or drop
    /// guards): hold it as a [`WeakProvider`](crate::WeakProvider)
    /// ([`downgrade`](Self::downgrade)); a captured `Provider` clone keeps
    /// the provider and its memory alive while the callback is registered.
    /// Events for a range arrive in order: a range's Free comes before the
    /// Alloc of anything mapped again at those addresses. A callback that
    /// panics does not leave the provider half-updated: the bookkeeping is
    /// finished, then the panic goes on in the thread that caused the event.
    ///
    /// ```
    /// use pktmem_hugemem::{EventKind, Provider};
    /// use std::sync::{Arc, Mutex};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let seen = Arc::new(Mutex::new(Vec::new()));
    /// let s = seen.clone();
    /// let log = p.register_event_callback(move |e| s.lock().unwrap().push(e.kind));
    /// drop(p.alloc(4096).unwrap());
    /// assert_eq!(*seen.lock().unwrap(), vec![EventKind::Alloc, EventKind::Free]);
    /// drop(log); // unregistered
    /// ```
    pub fn register_event_callback(
        &self,
        f: impl Fn(&MemEvent) + Send + Sync + 'static,
    ) -> EventGuard {
        let entry = Arc::new(EventEntry {
            label: OnceLock::new(),
            active: AtomicBool::new(true),
            f: Box::new(f),
        });
        lock(&self.inner.events).push(entry.clone());
        EventGuard {
            provider: Arc::downgrade(&self.inner),
            entry,
            kept: false,
        }
    }

    /// Registers a validator, asked whenever growth would take the mapped
    /// bytes past `threshold`, until the returned guard is dropped;
    /// returning false refuses the allocation with
    /// [`AllocError::RefusedByValidator`]. Validators run under the
    /// provider's lock: everything they need is in the [`GrowthQuery`];
    /// allocating from inside one returns [`AllocError::Reentrant`].
    ///
    /// ```
    /// use pktmem_hugemem::{AllocError, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let _cap = p.register_validator(8192, |q| q.new_total <= 12288);
    /// let a = p.alloc(8192).unwrap(); // up to the threshold: not asked
    /// let b = p.alloc(4096).unwrap(); // asked, allowed
    /// assert!(matches!(p.alloc(4096), Err(AllocError::RefusedByValidator { .. })));
    /// drop((a, b));
    /// ```
    pub fn register_validator(
        &self,
        threshold: usize,
        f: impl Fn(&GrowthQuery) -> bool + Send + Sync + 'static,
    ) -> ValidatorGuard {
        let entry = Arc::new(Validator {
            label: OnceLock::new(),
            threshold,
            active: AtomicBool::new(true),
            f: Box::new(f),
        });
        let mut st = lock(&self.inner.state);
        // Relaxed: under the state lock, as every store of the flag that
        // matters (see `ValidatorGuard::drop`).
        st.validators.retain(|v| v.active.load(Ordering::Relaxed));
        st.validators.push(entry.clone());
        drop(st);
        ValidatorGuard {
            provider: Arc::downgrade(&self.inner),
            entry,
            kept: false,
        }
    }

    /// The labels of the registered event callbacks (`None`: unlabelled).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let _a = p.register_event_callback(|_| ()).labeled("trace");
    /// let _b = p.register_event_callback(|_| ());
    /// assert_eq!(p.event_callbacks(), [Some("trace".to_string()), None]);
    /// ```
    pub fn event_callbacks(&self) -> Vec<Option<String>> {
        lock(&self.inner.events)
            .iter()
            .map(|e| e.label.get().cloned())
            .collect()
    }
}

impl Inner {
    /// Asks the validators whose threshold `new_total` passes; the first
    /// that refuses, if any. Runs under the provider lock, marked so that a
    /// validator using the provider gets [`AllocError::Reentrant`].
    pub(super) fn ask_validators(&self, st: &State, q: GrowthQuery) -> Option<AllocError> {
        let _in_validator = InCallback::enter(self.id);
        let refused = st.validators.iter().find(|v| {
            // Relaxed: see `ValidatorGuard::drop` (stores under this lock).
            v.active.load(Ordering::Relaxed)
                && q.new_total > v.threshold
                && !(v.f)(&GrowthQuery {
                    threshold: v.threshold,
                    ..q
                })
        })?;
        Some(AllocError::RefusedByValidator {
            label: refused.label.get().cloned(),
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
                // Acquire: pairs with the Release store in `EventGuard::drop`.
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
            let unmaps: Vec<(usize, usize, usize, usize, usize)> =
                std::mem::take(&mut st.pending_unmap)
                    .into_iter()
                    .map(|(li, s, c)| {
                        let seg = &st.lists[li].seg;
                        (li, s, c, seg.base + (s << seg.shift), c << seg.shift)
                    })
                    .collect();
            let released = std::mem::take(&mut st.pending_release);
            let removals = std::mem::take(&mut st.pending_removal);
            let deferred: Vec<Deferred> = DEFERRED.with(|d| {
                let mut d = d.borrow_mut();
                let (mine, rest): (Vec<_>, Vec<_>) =
                    d.drain(..).partition(|(id, _)| *id == self.id);
                *d = rest;
                mine.into_iter().map(|(_, r)| r).collect()
            });
            if evs.is_empty()
                && unmaps.is_empty()
                && released.is_empty()
                && removals.is_empty()
                && deferred.is_empty()
            {
                let owners = std::mem::take(&mut st.released_owners);
                drop(st);
                drop(owners); // their drops may use this provider
                return PANIC.with(|p| p.borrow_mut().take());
            }
            drop(st);
            self.fire(&evs);
            // Held runs stay `Freeing` (counted in `releasing`) until their
            // last hold drops and queues them in `pending_release`.
            let unmaps = self.gate(unmaps);
            st = lock(&self.state);
            for (li, s, c) in unmaps.into_iter().chain(released) {
                self.unmap_pages(&mut st, li, s, c);
                st.releasing -= c << st.lists[li].seg.shift;
            }
            for li in removals {
                self.finish_removal(&mut st, li);
            }
            for work in deferred {
                match work {
                    Deferred::Free(raw) => self.free_locked(&mut st, raw),
                    Deferred::ReleaseLease(id, lease) => {
                        super::external::release_lease_locked(&mut st, id, lease);
                    }
                    Deferred::DropRegistration(id) => {
                        super::external::drop_registration_locked(&mut st, id);
                    }
                    Deferred::DropMapper(entry) => self.drop_mapper_locked(&mut st, &entry),
                    Deferred::ReleaseHeld(run) => st.pending_release.push(run),
                }
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

    /// Queues `work` for when the lock held further up this thread's stack
    /// is released (a drop inside a validator).
    pub(super) fn defer(&self, work: Deferred) {
        DEFERRED.with(|d| d.borrow_mut().push((self.id, work)));
    }
}

/// Holds a DMA mapper's panic (caught under the provider lock) until
/// `settle` hands it back, as it does a callback's.
pub(super) fn hold_panic(payload: PanicPayload) {
    PANIC.with(|p| {
        p.borrow_mut().get_or_insert(payload);
    });
}
