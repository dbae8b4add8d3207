//! Exported memory a peer may still use, kept mapped until it cannot.
//!
//! The exporter never frees a port's rings or a pool's buffers while a
//! peer that may still use them lives: a dropped [`Port`](super::Port) or
//! [`SharedPool`](super::SharedPool) whose roles' holders have not been
//! seen to go *parks* its chunk here. The chunk stays allocated (mapped,
//! unused, never handed out again) until every one of those roles is
//! `Exited` or `Vacant`, or another process holds it (which the exporter
//! grants only after the old holder exited), or the roles themselves are
//! gone (the exporter and every `Role` handle dropped).

use std::sync::{Arc, Mutex, PoisonError};

use crate::hugemem::share::{Role, RoleInfo, RoleState, RoleWatch};
use crate::hugemem::SharedChunk;

/// Whether the holder seen at park time (`pid`, `None`: none) can no
/// longer use the memory, given the role's state now.
fn done(then: Option<u32>, now: RoleState) -> bool {
    match now {
        RoleState::Exited { .. } | RoleState::Vacant => true,
        // The exporter grants a role to another process only after its
        // holder exited.
        RoleState::Attached { pid } | RoleState::Gone { pid } => then.is_some_and(|p| p != pid),
    }
}

/// The pid holding (or having held, not yet exited) a role in `s`.
fn holder(s: RoleState) -> Option<u32> {
    match s {
        RoleState::Attached { pid } | RoleState::Gone { pid } => Some(pid),
        RoleState::Exited { .. } | RoleState::Vacant => None,
    }
}

struct Inner {
    /// The memory; `None` once released.
    mem: Option<SharedChunk>,
    /// Role slots still waited for, with the holder seen at park time.
    waiting: Vec<(u16, Option<u32>)>,
    /// The watches (dropped with the memory).
    watches: Vec<RoleWatch>,
    /// Still being set up: nothing is freed yet.
    setup: bool,
}

struct Parked(Mutex<Inner>);

impl Parked {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Role `slot` is in state `now`: stop waiting for it if its holder is
    /// done; free the memory when nobody is left.
    fn seen(&self, slot: u16, now: RoleState) {
        let (mem, watches) = {
            let mut g = self.lock();
            g.waiting.retain(|&(s, then)| s != slot || !done(then, now));
            if g.setup || !g.waiting.is_empty() || g.mem.is_none() {
                return;
            }
            (g.mem.take(), std::mem::take(&mut g.watches))
        };
        // Outside the lock. Freeing only queues the Unmap for the I/O
        // thread (the release gate never blocks), so this may run there;
        // dropping a watch from inside its own callback is allowed (the
        // callbacks run from a copy of the list).
        drop(mem);
        drop(watches);
    }
}

/// Frees `mem` once no holder of `roles` seen now can use it: at once if
/// none can. The watches hold no `Role` (no cycle: the memory goes with
/// the roles at the latest).
pub(crate) fn park(mem: SharedChunk, roles: &[Role]) {
    // Who may use it, as seen before the watches exist...
    let waiting = roles
        .iter()
        .map(|r| (r.slot(), holder(r.state())))
        .collect();
    let parked = Arc::new(Parked(Mutex::new(Inner {
        mem: Some(mem),
        waiting,
        watches: Vec::new(),
        setup: true,
    })));
    // ... then the watches, then a second look: a change before a watch
    // was registered is seen by the second look, any later one by it.
    for r in roles {
        let p = Arc::clone(&parked);
        let slot = r.slot();
        let w = r.on_change(move |info: &RoleInfo| p.seen(slot, info.state));
        parked.lock().watches.push(w);
    }
    parked.lock().setup = false;
    if roles.is_empty() {
        parked.seen(0, RoleState::Vacant);
    }
    for r in roles {
        parked.seen(r.slot(), r.state());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn done_rules() {
        assert!(done(Some(5), RoleState::Exited { pid: 5 }));
        assert!(done(None, RoleState::Vacant));
        assert!(!done(Some(5), RoleState::Gone { pid: 5 }));
        assert!(!done(Some(5), RoleState::Attached { pid: 5 }));
        assert!(done(Some(5), RoleState::Attached { pid: 6 }));
        assert!(!done(None, RoleState::Attached { pid: 6 }));
    }
}
