//! External memory: ranges the provider did not allocate, registered with
//! their page IOVAs (the heaps made of it are in `heap.rs`).
//!
//! A registration is owned: [`ExternalMem`] unregisters its range when
//! dropped. Users of the memory hold [`ExternalLease`]s (a mempool
//! populated from it takes one); chunks carved from a heap's memory count
//! as users too. While the range has users, [`ExternalMem::unregister`] is
//! refused with [`UnregisterError::InUse`] naming them, and dropping the
//! [`ExternalMem`] defers the unregistration until the last user is gone.

use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, Weak};

use super::backing::Backing;
use super::events::{EventKind, MemEvent};
use super::heap::HeapRef;
use super::page_list::{ListKind, PageList, PageState};
use super::{lock, Deferred, Inner, Provider, State};
use crate::table::{Segment, MAX_SEGMENTS};
use crate::{Iova, LeaseError, RegisterError, UnregisterError};

/// Identifies a registered external range (stable while it is registered;
/// a later range reusing the slot gets another id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ExternalId(pub(crate) usize, pub(crate) u64);

/// An external range registered with a provider: translated, walked and
/// told to event callbacks like the provider's own pages. Dropping it
/// unregisters the range (firing a Free event), or, while the range has
/// users, once the last of them is gone.
///
/// ```
/// use pktmem_hugemem::{Iova, Provider};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let layout = std::alloc::Layout::from_size_align(8192, 4096).unwrap();
/// // SAFETY: non-zero size.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout) };
/// let ext = p.register_external(mem, 8192, 4096, Some(&[Iova(0x10000), Iova(0x40000)])).unwrap();
/// assert_eq!(p.virt2iova(mem.wrapping_add(4097)), Some(Iova(0x40001)));
/// drop(ext); // unregistered
/// assert_eq!(p.virt2iova(mem), None);
/// // SAFETY: allocated above with this layout; no longer registered.
/// unsafe { std::alloc::dealloc(mem, layout) };
/// ```
#[must_use = "dropping the registration unregisters the memory (`keep()` keeps it)"]
pub struct ExternalMem {
    pub(super) provider: Weak<Inner>,
    pub(super) id: ExternalId,
    pub(super) va: usize,
    pub(super) len: usize,
    pub(super) kept: bool,
}

/// A user's hold on registered external memory: while it lives the range
/// stays registered (explicit unregistering is refused, naming the user;
/// dropping the registration waits for the lease). Taken with
/// [`ExternalMem::lease`] or [`Provider::lease_external`]; released on drop.
///
/// ```
/// use pktmem_hugemem::Provider;
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let layout = std::alloc::Layout::from_size_align(4096, 4096).unwrap();
/// // SAFETY: non-zero size.
/// let mem = unsafe { std::alloc::alloc_zeroed(layout) };
/// let ext = p.register_external(mem, 4096, 4096, None).unwrap();
/// let lease = p.lease_external(mem, 100, "pool 'rx'").unwrap();
/// assert_eq!(ext.users(), vec!["pool 'rx'".to_string()]);
/// drop(ext); // deferred: the pool still uses the memory
/// assert!(p.page_of(mem as usize).is_some());
/// drop(lease); // the last user: unregistered now
/// assert!(p.page_of(mem as usize).is_none());
/// # unsafe { std::alloc::dealloc(mem, layout) };
/// ```
#[must_use = "dropping the lease releases the memory at once"]
pub struct ExternalLease {
    provider: Weak<Inner>,
    id: ExternalId,
    lease: u64,
    user: String,
    va: usize,
    len: usize,
}

impl Provider {
    /// Registers memory the provider did not allocate: `len` bytes at `ptr`
    /// in pages of `page_size` bytes, with one IOVA per page (or none: the
    /// pages then have no IOVA, and IOVA-contiguous requests on them are
    /// refused). Fires an Alloc event. The returned registration
    /// unregisters the range when dropped (see [`ExternalMem`]).
    ///
    /// Registering hands no access to the memory (only translation and
    /// page records): the call is safe; leasing it is how users say they
    /// depend on it.
    ///
    /// Lookups run without locks, so an unregistered range's translation
    /// table (8 bytes per page) is retired rather than freed: it stays
    /// allocated until the provider drops.
    ///
    /// ```
    /// use pktmem_hugemem::{Iova, Provider, RegisterError};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let mut buf = vec![0u8; 3 * 4096];
    /// let base = (buf.as_mut_ptr() as usize + 4095) & !4095; // a page-aligned part
    /// let reg = p.register_external(base as *mut u8, 4096, 4096, Some(&[Iova(0x1000)])).unwrap();
    /// assert_eq!(p.virt2iova((base + 5) as *const u8), Some(Iova(0x1005)));
    /// assert!(matches!(
    ///     p.register_external(base as *mut u8, 4096, 4096, None),
    ///     Err(RegisterError::Overlap { .. })
    /// ));
    /// drop(reg);
    /// ```
    pub fn register_external(
        &self,
        ptr: *mut u8,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
    ) -> Result<ExternalMem, RegisterError> {
        let id = self
            .inner
            .register_external(ptr as usize, len, page_size, iovas, None, None)?;
        Ok(ExternalMem {
            provider: Arc::downgrade(&self.inner),
            id,
            va: ptr as usize,
            len,
            kept: false,
        })
    }

    /// Registers the memory `owner` holds (its bytes, as `as_mut` gives
    /// them once, must be page aligned: a memory map, a page-aligned
    /// allocation) and keeps `owner` until the range is unregistered: the
    /// safe way to hand the provider memory, with no lifetime to promise.
    /// The owner is dropped after the range's Free event.
    ///
    /// ```
    /// use pktmem_hugemem::{Iova, Provider};
    /// /// Page-aligned bytes from the global allocator, freed on drop.
    /// struct Pages(*mut u8, std::alloc::Layout);
    /// // SAFETY: `Pages` owns its allocation exclusively.
    /// unsafe impl Send for Pages {}
    /// impl AsMut<[u8]> for Pages {
    ///     fn as_mut(&mut self) -> &mut [u8] {
    ///         // SAFETY: the allocation is `self.1.size()` zeroed bytes, ours.
    ///         unsafe { std::slice::from_raw_parts_mut(self.0, self.1.size()) }
    ///     }
    /// }
    /// impl Drop for Pages {
    ///     fn drop(&mut self) {
    ///         // SAFETY: allocated with this layout below.
    ///         unsafe { std::alloc::dealloc(self.0, self.1) }
    ///     }
    /// }
    /// let layout = std::alloc::Layout::from_size_align(8192, 4096).unwrap();
    /// // SAFETY: non-zero size.
    /// let pages = Pages(unsafe { std::alloc::alloc_zeroed(layout) }, layout);
    /// let at = pages.0;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let reg = p.register_external_owned(pages, 4096, Some(&[Iova(0x1000), Iova(0x2000)])).unwrap();
    /// assert_eq!(p.virt2iova(at.wrapping_add(4096)), Some(Iova(0x2000)));
    /// drop(reg); // unregistered, then `Pages` dropped
    /// ```
    pub fn register_external_owned<O>(
        &self,
        owner: O,
        page_size: usize,
        iovas: Option<&[Iova]>,
    ) -> Result<ExternalMem, RegisterError>
    where
        O: AsMut<[u8]> + Send + 'static,
    {
        let (owner, va, len) = Owner::new(owner);
        let id = self
            .inner
            .register_external(va, len, page_size, iovas, None, Some(owner))?;
        Ok(ExternalMem {
            provider: Arc::downgrade(&self.inner),
            id,
            va,
            len,
            kept: false,
        })
    }

    /// A lease on the registered external range holding
    /// `[ptr, ptr + len)`, for `user` (a label naming who depends on it,
    /// e.g. "pool 'rx'"): what a user given only an address takes.
    ///
    /// ```
    /// use pktmem_hugemem::{LeaseError, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let mut buf = vec![0u8; 2 * 4096];
    /// let base = (buf.as_mut_ptr() as usize + 4095) & !4095;
    /// let reg = p.register_external(base as *mut u8, 4096, 4096, None).unwrap();
    /// let lease = p.lease_external((base + 100) as *const u8, 64, "pool 'rx'").unwrap();
    /// assert_eq!(lease.user(), "pool 'rx'");
    /// assert!(matches!(
    ///     p.lease_external(base as *const u8, 4097, "too long"),
    ///     Err(LeaseError::NotRegistered { .. })
    /// ));
    /// assert!(reg.unregister().is_err()); // leased
    /// drop(lease);
    /// reg.unregister().unwrap();
    /// ```
    pub fn lease_external(
        &self,
        ptr: *const u8,
        len: usize,
        user: &str,
    ) -> Result<ExternalLease, LeaseError> {
        let addr = ptr as usize;
        self.inner
            .check_usable()
            .map_err(|r| r.lease_error(addr, len))?;
        let id = {
            let st = lock(&self.inner.state);
            let end = addr.checked_add(len.max(1));
            st.lists
                .iter()
                .enumerate()
                .find(|(_, l)| {
                    !l.removed
                        && l.seg.external
                        && l.seg.contains(addr)
                        && end.is_some_and(|e| e <= l.seg.base + l.seg.len)
                })
                .map(|(i, l)| ExternalId(i, l.generation))
                .ok_or(LeaseError::NotRegistered { addr, len })?
        };
        self.inner
            .lease(&Arc::downgrade(&self.inner), id, user, (addr, len))
    }
}

impl ExternalMem {
    /// The registration's id.
    pub fn id(&self) -> ExternalId {
        self.id
    }

    /// First byte of the range.
    pub fn as_ptr(&self) -> NonNull<u8> {
        NonNull::new(self.va as *mut u8).unwrap_or(NonNull::dangling())
    }

    /// Length of the range in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false (zero-length ranges are refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// A lease on the range for `user` (see [`ExternalLease`]).
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let mut buf = vec![0u8; 2 * 4096];
    /// let base = (buf.as_mut_ptr() as usize + 4095) & !4095;
    /// let reg = p.register_external(base as *mut u8, 4096, 4096, None).unwrap();
    /// let (a, b) = (reg.lease("pool 'a'").unwrap(), reg.lease("pool 'b'").unwrap());
    /// assert_eq!(reg.users(), ["pool 'a'", "pool 'b'"]);
    /// drop((a, b));
    /// assert!(reg.users().is_empty());
    /// ```
    pub fn lease(&self, user: &str) -> Result<ExternalLease, LeaseError> {
        let inner = self.provider.upgrade().ok_or(LeaseError::NotRegistered {
            addr: self.va,
            len: self.len,
        })?;
        inner.lease(&self.provider, self.id, user, (self.va, self.len))
    }

    /// Who uses the range now: lease labels, then "N page(s) in chunks".
    pub fn users(&self) -> Vec<String> {
        let Some(inner) = self.provider.upgrade() else {
            return Vec::new();
        };
        let st = lock(&inner.state);
        match st.lists.get(self.id.0) {
            Some(l) if !l.removed && l.generation == self.id.1 => l.users(),
            _ => Vec::new(),
        }
    }

    /// Unregisters the range now (firing its Free event); refused with
    /// [`UnregisterError::InUse`], naming the users, while it has any (the
    /// range then stays registered). After success, dropping the guard
    /// does nothing.
    pub fn unregister(&self) -> Result<(), UnregisterError> {
        let inner = self
            .provider
            .upgrade()
            .ok_or(UnregisterError::NotRegistered { addr: self.va })?;
        inner.unregister_external(self.id, self.va)
    }

    /// Keeps the range registered for the provider's life.
    ///
    /// ```
    /// use pktmem_hugemem::Provider;
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let mut buf = vec![0u8; 2 * 4096];
    /// let base = (buf.as_mut_ptr() as usize + 4095) & !4095;
    /// p.register_external(base as *mut u8, 4096, 4096, None).unwrap().keep();
    /// assert!(p.page_of(base).is_some()); // still registered
    /// drop(p); // ... until the provider goes
    /// ```
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for ExternalMem {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        if let Some(inner) = self.provider.upgrade() {
            inner.drop_registration(self.id);
        }
    }
}

impl fmt::Debug for ExternalMem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalMem")
            .field("va", &format_args!("{:#x}", self.va))
            .field("len", &self.len)
            .field("id", &self.id)
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

impl ExternalLease {
    /// The user's label.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// First byte of the registration the lease holds.
    pub fn va(&self) -> usize {
        self.va
    }

    /// Length of the leased range in bytes: the whole registration the
    /// lease holds (also for [`Provider::lease_external`] of a part of it).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the leased range is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The registration the lease holds.
    pub fn id(&self) -> ExternalId {
        self.id
    }
}

impl Drop for ExternalLease {
    fn drop(&mut self) {
        if let Some(inner) = self.provider.upgrade() {
            inner.release_lease(self.id, self.lease);
        }
    }
}

impl fmt::Debug for ExternalLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalLease")
            .field("user", &self.user)
            .field("va", &format_args!("{:#x}", self.va))
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl PageList {
    /// Who uses an external list: lease labels, then its pages in chunks.
    pub(super) fn users(&self) -> Vec<String> {
        let mut users: Vec<String> = self.leases.iter().map(|(_, u)| u.clone()).collect();
        if self.used > 0 {
            users.push(format!("{} page(s) in chunks", self.used));
        }
        users
    }

    /// Whether the list is a live registration with this generation.
    fn is_registration(&self, generation: u64) -> bool {
        !self.removed && self.seg.external && self.generation == generation
    }
}

impl Inner {
    pub(super) fn register_external(
        &self,
        addr: usize,
        len: usize,
        page_size: usize,
        iovas: Option<&[Iova]>,
        heap: Option<&HeapRef>,
        owner: Option<Owner>,
    ) -> Result<ExternalId, RegisterError> {
        self.check_usable()?;
        if len == 0 {
            return Err(RegisterError::ZeroLength);
        }
        if !page_size.is_power_of_two() || page_size < 4096 {
            return Err(RegisterError::BadPageSize { page_size });
        }
        if addr == 0 || addr % page_size != 0 {
            return Err(RegisterError::Misaligned {
                value: addr,
                page_size,
            });
        }
        if len % page_size != 0 {
            return Err(RegisterError::Misaligned {
                value: len,
                page_size,
            });
        }
        let pages = len / page_size;
        if let Some(t) = iovas {
            if t.len() != pages {
                return Err(RegisterError::IovaTableLength {
                    expected: pages,
                    got: t.len(),
                });
            }
            if let Some(page) = t.iter().position(|i| i.is_bad()) {
                return Err(RegisterError::BadIova { page });
            }
        }
        let end = addr
            .checked_add(len)
            .ok_or(RegisterError::Overlap { addr, len })?;
        let mut st = lock(&self.state);
        let overlap = st
            .lists
            .iter()
            .filter(|l| !l.removed)
            .any(|l| addr < l.seg.base + l.seg.len && l.seg.base < end);
        if overlap {
            return Err(RegisterError::Overlap { addr, len });
        }
        let seg = Arc::new(Segment::new(
            addr,
            len,
            page_size.trailing_zeros(),
            None,
            true,
            st.lists.len(),
        ));
        for i in 0..pages {
            seg.set_page_iova(i, iovas.map(|t| t[i]));
        }
        let slot = self
            .table
            .publish(&seg)
            .ok_or(RegisterError::TooManyLists { max: MAX_SEGMENTS })?;
        st.next_generation += 1;
        let generation = st.next_generation;
        let mut list = PageList::new(
            ListKind::External {
                heap: heap.map(|h| h.id),
            },
            seg,
            slot,
            Backing::External,
            PageState::Mapped,
            generation,
        );
        list.heap_label = heap.map(|h| h.label.clone());
        list.owner = owner;
        st.lists.push(list);
        let id = ExternalId(st.lists.len() - 1, generation);
        st.pending_events.push(MemEvent {
            kind: EventKind::Alloc,
            va: addr,
            len,
            external: true,
        });
        self.settle_or_unwind(st);
        Ok(id)
    }

    /// Unregisters `id` now, or says who uses it.
    /// (`va`: where the registration's range starts, for the errors.)
    fn unregister_external(&self, id: ExternalId, va: usize) -> Result<(), UnregisterError> {
        self.check_usable().map_err(|r| r.unregister_error(va))?;
        let mut st = lock(&self.state);
        let l = match st.lists.get(id.0) {
            Some(l) if l.is_registration(id.1) && !l.state.contains(&PageState::Freeing) => l,
            _ => return Err(UnregisterError::NotRegistered { addr: va }),
        };
        let users = l.users();
        if !users.is_empty() {
            return Err(UnregisterError::InUse {
                addr: l.seg.base,
                len: l.seg.len,
                users,
            });
        }
        start_removal(&mut st, id.0);
        self.settle_or_unwind(st);
        Ok(())
    }

    /// The registration `id` was dropped: unregister it now, or once its
    /// last user is gone.
    pub(super) fn drop_registration(&self, id: ExternalId) {
        if self.in_validator() {
            self.defer(Deferred::DropRegistration(id));
            return;
        }
        let mut st = lock(&self.state);
        drop_registration_locked(&mut st, id);
        self.settle_or_unwind(st);
    }

    /// Adds a lease for `user` on `id` (`asked`: the range the caller
    /// named, for the errors).
    fn lease(
        &self,
        provider: &Weak<Inner>,
        id: ExternalId,
        user: &str,
        asked: (usize, usize),
    ) -> Result<ExternalLease, LeaseError> {
        let (addr, len) = asked;
        self.check_usable().map_err(|r| r.lease_error(addr, len))?;
        let mut st = lock(&self.state);
        st.next_generation += 1;
        let lease = st.next_generation;
        let l = match st.lists.get_mut(id.0) {
            Some(l) if l.is_registration(id.1) => l,
            _ => return Err(LeaseError::NotRegistered { addr, len }),
        };
        if l.unregister_pending || l.state.contains(&PageState::Freeing) {
            return Err(LeaseError::Unregistering { addr: l.seg.base });
        }
        l.leases.push((lease, user.to_string()));
        Ok(ExternalLease {
            provider: provider.clone(),
            id,
            lease,
            user: user.to_string(),
            va: l.seg.base,
            len: l.seg.len,
        })
    }

    /// A lease on `id` is gone; finishes a pending unregistration if it was
    /// the last user.
    fn release_lease(&self, id: ExternalId, lease: u64) {
        if self.in_validator() {
            self.defer(Deferred::ReleaseLease(id, lease));
            return;
        }
        let mut st = lock(&self.state);
        release_lease_locked(&mut st, id, lease);
        self.settle_or_unwind(st);
    }

    /// Drops an external list whose Free event has fired.
    pub(super) fn finish_removal(&self, st: &mut State, li: usize) {
        let l = &mut st.lists[li];
        for i in 0..l.seg.pages() {
            l.seg.set_page_iova(i, None);
        }
        l.removed = true;
        l.state = Vec::new();
        // Dropped by `settle` once the lock is released (its drop may be
        // anything, also a call into this provider).
        if let Some(owner) = l.owner.take() {
            st.released_owners.push(owner);
        }
        self.table.retire(l.slot);
        let seg = l.seg.clone();
        st.graveyard.push(seg);
    }
}

/// Starts unregistering list `li` if it was dropped and has no user left.
pub(super) fn finish_if_unused(st: &mut State, li: usize) {
    let l = &st.lists[li];
    if l.unregister_pending && l.used == 0 && l.leases.is_empty() {
        start_removal(st, li);
    }
}

/// Marks every page of external list `li` `Freeing` (no chunk can be carved
/// from it while its Free event fires) and queues the event and the removal.
fn start_removal(st: &mut State, li: usize) {
    let l = &mut st.lists[li];
    l.state.iter_mut().for_each(|s| *s = PageState::Freeing);
    let (va, len) = (l.seg.base, l.seg.len);
    st.pending_events.push(MemEvent {
        kind: EventKind::Free,
        va,
        len,
        external: true,
    });
    st.pending_removal.push(li);
}

/// Marks registration `id` dropped: unregistered now if unused, else by its last user.
pub(super) fn drop_registration_locked(st: &mut State, id: ExternalId) {
    let Some(l) = st.lists.get_mut(id.0) else {
        return;
    };
    if !l.is_registration(id.1) || l.state.contains(&PageState::Freeing) {
        return;
    }
    l.unregister_pending = true;
    finish_if_unused(st, id.0);
}

/// Removes lease `lease` of `id`; a dropped registration goes with its last user.
pub(super) fn release_lease_locked(st: &mut State, id: ExternalId, lease: u64) {
    let Some(l) = st.lists.get_mut(id.0) else {
        return;
    };
    if !l.is_registration(id.1) {
        return;
    }
    l.leases.retain(|&(n, _)| n != lease);
    finish_if_unused(st, id.0);
}

/// The owner of registered memory, kept unmoved (boxed, held by raw
/// pointer so the box's uniqueness is never asserted while the provider
/// uses the bytes) until its range is unregistered.
pub(super) struct Owner {
    /// From `Box::into_raw`; dropped once, in `Drop`.
    ptr: *mut dyn Send,
}

// SAFETY: the pointee is `Send` (the `O: Send` bound in `Owner::new`) and
// owned by the `Owner` alone.
unsafe impl Send for Owner {}

impl Owner {
    /// Boxes `owner` and takes its bytes once: `(owner, va, len)`.
    pub(super) fn new<O: AsMut<[u8]> + Send + 'static>(owner: O) -> (Owner, usize, usize) {
        let raw: *mut O = Box::into_raw(Box::new(owner));
        // SAFETY: `raw` is a fresh, unique, live box; the borrow ends here
        // and the owner is not touched again until it is dropped.
        let bytes = unsafe { (*raw).as_mut() };
        let (va, len) = (bytes.as_mut_ptr() as usize, bytes.len());
        (Owner { ptr: raw }, va, len)
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `Box::into_raw` in `new` and is dropped
        // only here, once.
        drop(unsafe { Box::from_raw(self.ptr) });
    }
}
