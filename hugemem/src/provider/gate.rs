//! Release gates: asked about every run of the provider's own pages about
//! to go back to the system, they may hold the run (mapped, out of use)
//! until something outside the process says the pages are no longer
//! reached — another process that maps them acknowledging, a device that
//! finished with them.
//!
//! A held run stays in the `Freeing` state: no allocation reuses it, it
//! counts as mapped, its IOVAs stay in the table. The last [`ReleaseHold`]
//! of the run to drop queues its unmap (and hole punch), done at once by
//! that drop (or, inside a validator, once the provider lock is released).

use std::fmt;
use std::sync::{Arc, OnceLock, Weak};

use super::{lock, Deferred, Inner, MemEvent, Provider};
use crate::sync::{AtomicBool, Ordering};

type GateFn = dyn Fn(&MemEvent, ReleaseHold) + Send + Sync;

pub(super) struct GateEntry {
    label: OnceLock<String>,
    /// Cleared when the guard goes, so a snapshot taken before skips the entry.
    active: AtomicBool,
    f: Box<GateFn>,
}

/// One run of pages waiting for its holds.
struct HeldRun {
    provider: Weak<Inner>,
    list: usize,
    first: usize,
    count: usize,
    va: usize,
    len: usize,
}

impl Drop for HeldRun {
    fn drop(&mut self) {
        let Some(inner) = self.provider.upgrade() else {
            return; // the provider is gone, and its reservation with it
        };
        let run = (self.list, self.first, self.count);
        if inner.in_validator() {
            // The provider lock is held further up this thread's stack.
            inner.defer(Deferred::ReleaseHeld(run));
            return;
        }
        let mut st = lock(&inner.state);
        st.pending_release.push(run);
        inner.settle_or_unwind(st);
    }
}

/// A hold on a run of pages about to be released, given to each release
/// gate ([`Provider::register_release_gate`]). While any clone of it
/// lives, the pages stay mapped and are not handed out again; when the
/// last clone drops (on any thread), they are unmapped and go back to
/// the system.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, PageSize, Provider, ReleaseHold};
/// use std::sync::{Arc, Mutex};
/// let p = Provider::builder().quiet(true).build().unwrap();
/// let held: Arc<Mutex<Vec<ReleaseHold>>> = Arc::default();
/// let h = held.clone();
/// let _gate = p.register_release_gate(move |_ev, hold| h.lock().unwrap().push(hold));
/// let c = p.alloc(1 << 20).unwrap();
/// let mapped = p.mapped_bytes();
/// drop(c);
/// assert_eq!(p.mapped_bytes(), mapped); // still mapped: held
/// held.lock().unwrap().clear(); // the last hold goes
/// assert!(p.mapped_bytes() < mapped);
/// ```
#[derive(Clone)]
pub struct ReleaseHold {
    run: Arc<HeldRun>,
}

impl ReleaseHold {
    /// First byte of the held run.
    pub fn va(&self) -> usize {
        self.run.va
    }

    /// Length of the held run in bytes.
    pub fn len(&self) -> usize {
        self.run.len
    }

    /// Whether the run is empty (never: runs have at least one page).
    pub fn is_empty(&self) -> bool {
        self.run.len == 0
    }
}

impl fmt::Debug for ReleaseHold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleaseHold")
            .field("va", &format_args!("{:#x}", self.run.va))
            .field("len", &self.run.len)
            .finish_non_exhaustive()
    }
}

/// The registration of a release gate: dropping it unregisters the gate
/// (holds it already took stay in force until they drop);
/// [`keep`](Self::keep) keeps it for the provider's life.
#[must_use = "dropping the guard unregisters the gate at once (`keep()` keeps it)"]
pub struct ReleaseGateGuard {
    provider: Weak<Inner>,
    entry: Arc<GateEntry>,
    kept: bool,
}

impl ReleaseGateGuard {
    /// Gives the gate a label for humans; the first label sticks.
    pub fn labeled(self, label: &str) -> Self {
        let _ = self.entry.label.set(label.to_string());
        self
    }

    /// The gate's label, if it was given one.
    pub fn label(&self) -> Option<&str> {
        self.entry.label.get().map(String::as_str)
    }

    /// Keeps the gate registered for the provider's life.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for ReleaseGateGuard {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Release: pairs with the Acquire load in `Inner::gate`, so a
        // snapshot taken before the removal below skips the entry from now on.
        self.entry.active.store(false, Ordering::Release);
        if let Some(inner) = self.provider.upgrade() {
            lock(&inner.gates).retain(|e| !Arc::ptr_eq(e, &self.entry));
        }
    }
}

impl fmt::Debug for ReleaseGateGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReleaseGateGuard")
            .field("label", &self.label())
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Registers a release gate: `f` is called for every run of the
    /// provider's own pages about to be unmapped and given back (after the
    /// run's Free event, with no provider lock held), with a
    /// [`ReleaseHold`] on the run. Dropping the hold at once lets the run
    /// go as usual; keeping it (sending it to another thread, storing it
    /// until a peer process acknowledges) keeps the pages mapped and out
    /// of use until the last hold of the run drops. Pages the configured
    /// minimum keeps are never released, so never gated; external memory
    /// is not gated.
    ///
    /// A gate may use the provider like an event callback may (hold it as
    /// a [`WeakProvider`](crate::WeakProvider)). A gate that panics lets
    /// the run go (its hold is dropped) and the panic goes on in the
    /// thread that freed the pages, once the bookkeeping is done. Do not
    /// drop the last hold of a run inside a [`DmaMapper`](crate::DmaMapper)
    /// (which runs under the provider lock).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// use std::sync::mpsc;
    /// let p = Provider::builder().quiet(true).build().unwrap();
    /// let (tx, rx) = mpsc::channel();
    /// let tx = std::sync::Mutex::new(tx);
    /// let _gate = p.register_release_gate(move |_ev, hold| tx.lock().unwrap().send(hold).unwrap());
    /// drop(p.alloc(4096).unwrap());
    /// let hold = rx.try_recv().expect("the run was offered to the gate");
    /// assert!(hold.len() >= 4096);
    /// drop(hold); // now the pages go back
    /// ```
    pub fn register_release_gate(
        &self,
        f: impl Fn(&MemEvent, ReleaseHold) + Send + Sync + 'static,
    ) -> ReleaseGateGuard {
        let entry = Arc::new(GateEntry {
            label: OnceLock::new(),
            active: AtomicBool::new(true),
            f: Box::new(f),
        });
        lock(&self.inner.gates).push(entry.clone());
        ReleaseGateGuard {
            provider: Arc::downgrade(&self.inner),
            entry,
            kept: false,
        }
    }

    /// The labels of the registered release gates (`None`: unlabelled).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().quiet(true).build().unwrap();
    /// let _g = p.register_release_gate(|_, _| ()).labeled("peers");
    /// assert_eq!(p.release_gates(), [Some("peers".to_string())]);
    /// ```
    pub fn release_gates(&self) -> Vec<Option<String>> {
        lock(&self.inner.gates)
            .iter()
            .map(|e| e.label.get().cloned())
            .collect()
    }
}

impl Inner {
    /// Offers each run `(list, first, count, va, len)` to the gates, with
    /// no lock held; returns the runs no gate held (to unmap now). A held
    /// run is unmapped by its last hold's drop. Gate panics are kept for
    /// `settle` to resume.
    pub(super) fn gate(
        &self,
        runs: Vec<(usize, usize, usize, usize, usize)>,
    ) -> Vec<(usize, usize, usize)> {
        if runs.is_empty() {
            return Vec::new();
        }
        let snapshot: Vec<Arc<GateEntry>> = lock(&self.gates).clone();
        // Acquire: pairs with the Release store in `ReleaseGateGuard::drop`.
        let snapshot: Vec<_> = snapshot
            .into_iter()
            .filter(|g| g.active.load(Ordering::Acquire))
            .collect();
        if snapshot.is_empty() {
            return runs.into_iter().map(|(l, f, c, _, _)| (l, f, c)).collect();
        }
        let mut now = Vec::new();
        for (list, first, count, va, len) in runs {
            let run = Arc::new(HeldRun {
                provider: self.me.clone(),
                list,
                first,
                count,
                va,
                len,
            });
            let ev = MemEvent {
                kind: super::EventKind::Free,
                va,
                len,
                external: false,
            };
            for g in &snapshot {
                let hold = ReleaseHold { run: run.clone() };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (g.f)(&ev, hold)));
                if let Err(payload) = r {
                    super::events::hold_panic(payload);
                }
            }
            // Ours was the last hold: nobody kept one, the run goes now
            // (without re-entering `settle` through `HeldRun::drop`).
            match Arc::try_unwrap(run) {
                Ok(mut run) => {
                    now.push((run.list, run.first, run.count));
                    run.provider = Weak::new(); // its drop does nothing now
                }
                Err(held) => {
                    // Held: nobody may touch the pages meanwhile (unmapping
                    // poisons them again, harmlessly).
                    // SAFETY: the run is in an own list's reservation and
                    // its chunk is gone.
                    unsafe { crate::asan::poison(va as *const u8, len) };
                    drop(held);
                }
            }
        }
        now
    }
}
