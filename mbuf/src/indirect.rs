//! Indirect mbufs (clones, attach/detach) and attaching external buffers.

use std::ptr::{self, NonNull};

use pktmem_mempool::Cache;

use crate::error::{AttachErrorKind, AttachExtError, CloneError};
use crate::ext::ExtBuf;
use crate::header::{MbufHeader, F_EXTERNAL, F_INDIRECT, INTERNAL_FLAGS};
use crate::mbuf::detach_raw;
use crate::sync::Ordering;
use crate::{Mbuf, PktPool};

/// Makes `mi` (a fresh, direct, single-segment mbuf we own) point at the
/// buffer of segment `m`: the direct mbuf's refcount (or the external
/// buffer's shared refcount) goes up by one. `false`, nothing changed, when
/// that count is at its maximum.
///
/// # Safety
/// - `mi` is ours to write, direct, one segment; `m` is a live segment
///   whose buffer stays referenced for the call.
unsafe fn attach_seg(mi: *mut MbufHeader, m: *const MbufHeader) -> bool {
    // SAFETY: conditions.
    unsafe {
        if (*m).ol_flags & F_EXTERNAL != 0 {
            if !(*(*m).shinfo).try_acquire() {
                return false;
            }
            (*mi).ol_flags = (*m).ol_flags;
            (*mi).shinfo = (*m).shinfo;
        } else {
            // The direct mbuf whose buffer this is: `m` itself, or the one
            // an indirect `m` points at.
            let md: *mut MbufHeader = if (*m).ol_flags & F_INDIRECT != 0 {
                (*m).direct()
            } else {
                m.cast_mut()
            };
            // The clone's source holds a reference to `md`'s buffer.
            if !crate::sync::try_acquire(&(*md).refcnt) {
                return false;
            }
            (*mi).ol_flags = ((*m).ol_flags & !INTERNAL_FLAGS) | F_INDIRECT;
            (*mi).shinfo = md.cast();
        }
        (*mi).buf_iova = (*m).buf_iova;
        (*mi).buf_addr = (*m).buf_addr;
        (*mi).buf_len = (*m).buf_len;
        (*mi).port = (*m).port;
        (*mi).vlan_tci = (*m).vlan_tci;
        (*mi).vlan_tci_outer = (*m).vlan_tci_outer;
        (*mi).tx_offload = (*m).tx_offload;
        (*mi).hash = (*m).hash;
        (*mi).next = ptr::null_mut();
        (*mi).pkt_len = u32::from((*m).data_len);
        (*mi).data_len = (*m).data_len;
        (*mi).data_off = (*m).data_off;
        (*mi).nb_segs = 1;
        (*mi).packet_type = (*m).packet_type;
        (*mi).timestamp = (*m).timestamp;
        (*mi).dynfield = (*m).dynfield;
    }
    true
}

impl Mbuf {
    /// An indirect copy of the packet: a chain of mbufs from `pool` (one per
    /// segment), each pointing at the original segment's data; each direct
    /// segment's refcount (or external buffer's shared refcount) goes up by
    /// one. Uses the calling thread's default cache of `pool`. If `pool`
    /// runs out part way, what was built is freed and nothing changes.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(8).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(5).unwrap().copy_from_slice(b"hello");
    /// let c = m.clone_in(&pool).unwrap();
    /// assert!(c.is_indirect());
    /// assert_eq!(c.data(), b"hello");
    /// assert_eq!(m.refcnt(), 2);
    /// drop(c);
    /// assert_eq!(m.refcnt(), 1);
    /// ```
    pub fn clone_in(&self, pool: &PktPool) -> Result<Mbuf, CloneError> {
        self.clone_with(pool, None)
    }

    /// [`clone_in`](Self::clone_in) through an explicit cache of `pool`.
    pub fn clone_in_cache(&self, pool: &PktPool, cache: &mut Cache) -> Result<Mbuf, CloneError> {
        self.clone_with(pool, Some(cache))
    }

    fn clone_with(&self, pool: &PktPool, cache: Option<&mut Cache>) -> Result<Mbuf, CloneError> {
        // `attach_seg` needs direct mbufs: a pinned pool's would lose their
        // pinned buffer (and shared info) when made indirect.
        if pool.is_pinned() {
            return Err(CloneError::PinnedPool);
        }
        let n = self.nb_segs();
        if n == 1 {
            // One segment: no chain to build.
            let mut mi = match cache {
                Some(c) => pool.alloc(c),
                None => pool.alloc_default(),
            }
            .map_err(|_| CloneError::Exhausted {
                needed: 1,
                obtained: 0,
            })?;
            // SAFETY: `mi` is fresh (direct, one segment, ours); our head
            // lives while `&self` is held.
            if !unsafe { attach_seg(mi.hdr.as_ptr(), self.hdr.as_ptr()) } {
                return Err(CloneError::RefcntOverflow);
            }
            // SAFETY: owner write of a non-atomic field (see `Mbuf::w`).
            unsafe { (*mi.w()).pkt_len = self.h().pkt_len };
            return Ok(mi);
        }
        // Several segments: all-or-nothing allocation, then attach each.
        let mut fresh: Vec<Mbuf> = Vec::with_capacity(n);
        let mut cache = cache;
        for got in 0..n {
            let r = match cache.as_deref_mut() {
                Some(c) => pool.alloc(c),
                None => pool.alloc_default(),
            };
            match r {
                Ok(m) => fresh.push(m),
                Err(_) => {
                    return Err(CloneError::Exhausted {
                        needed: n,
                        obtained: got,
                    })
                }
            }
        }
        for (seg, mi) in self.segments().zip(fresh.iter()) {
            // SAFETY: `mi` is fresh and ours; `seg` is a live segment of our
            // chain, borrowed by `&self`.
            if !unsafe { attach_seg(mi.hdr.as_ptr(), seg.hdr_ptr()) } {
                // `fresh` drops here: the attached ones give their
                // references back, the others go back to the pool.
                return Err(CloneError::RefcntOverflow);
            }
        }
        // Link them: head first.
        let mut it = fresh.into_iter().rev();
        let mut tail = it.next().map(Mbuf::into_hdr);
        for m in it {
            let h = m.into_hdr();
            // SAFETY: `h` and `tail` are segments we own (moved out of their
            // handles), linked into one chain owned by the result.
            unsafe { (*h.as_ptr()).next = tail.map_or(ptr::null_mut(), NonNull::as_ptr) };
            tail = Some(h);
        }
        let head = tail.expect("n > 1 segments");
        // SAFETY: the chain's head, owned; its counts set below.
        let mut out = unsafe { Mbuf::from_hdr(head) };
        let h = out.w();
        // SAFETY: owner writes of non-atomic fields (see `Mbuf::w`).
        unsafe {
            (*h).nb_segs = n as u16;
            (*h).pkt_len = self.h().pkt_len;
        }
        Ok(out)
    }

    /// Makes this mbuf point at `target`'s first segment's data (an indirect
    /// mbuf, or one sharing `target`'s external buffer): `target`'s direct
    /// buffer's refcount goes up (attaching to an indirect mbuf attaches to
    /// the direct one behind it). This mbuf must use its own buffer, have
    /// one segment and refcount 1; it is unchanged on error.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(8).build_anonymous().unwrap();
    /// let mut d = pool.alloc_default().unwrap();
    /// d.append(3).unwrap().copy_from_slice(b"abc");
    /// let mut i = pool.alloc_default().unwrap();
    /// i.attach(&d).unwrap();
    /// assert_eq!(i.data(), b"abc");
    /// let mut j = pool.alloc_default().unwrap();
    /// j.attach(&i).unwrap();              // to the direct mbuf behind `i`
    /// assert_eq!(d.refcnt(), 3);
    /// assert!(i.attach(&d).is_err());      // already attached
    /// i.detach();                           // back to its own buffer
    /// assert_eq!((i.is_direct(), i.data_len(), d.refcnt()), (true, 0, 2));
    /// ```
    pub fn attach(&mut self, target: &Mbuf) -> Result<(), AttachErrorKind> {
        self.check_attachable()?;
        if ptr::eq(self.hdr.as_ptr(), target.hdr.as_ptr()) {
            return Err(AttachErrorKind::SelfAttach);
        }
        // SAFETY: `self` is ours, direct, one segment; `target` lives while
        // borrowed.
        if !unsafe { attach_seg(self.hdr.as_ptr(), target.hdr.as_ptr()) } {
            return Err(AttachErrorKind::RefcntOverflow);
        }
        Ok(())
    }

    fn check_attachable(&self) -> Result<(), AttachErrorKind> {
        if !self.is_direct() {
            return Err(AttachErrorKind::AlreadyAttached);
        }
        if self.nb_segs() != 1 {
            return Err(AttachErrorKind::Chained {
                nb_segs: self.h().nb_segs,
            });
        }
        // Acquire: as in `is_writable`.
        if self.h().refcnt.load(Ordering::Acquire) != 1 {
            return Err(AttachErrorKind::NotWritable);
        }
        Ok(())
    }

    /// Gives up the buffer this mbuf's first segment points at (the direct
    /// mbuf's or the external buffer's reference) and restores its own,
    /// empty, at the default headroom. Nothing for a direct mbuf, or a
    /// pinned pool's mbuf (its buffer is its own).
    pub fn detach(&mut self) {
        if self.is_direct() {
            return;
        }
        // SAFETY: our head segment; we are its owner.
        unsafe { detach_raw(self.hdr.as_ptr()) };
    }

    /// Attaches an external buffer: this mbuf's data becomes `ext`'s bytes
    /// (empty at offset 0: [`grow_tail`](Self::grow_tail) or
    /// [`append`](Self::append) to use them), and the mbuf holds `ext`'s
    /// reference. This mbuf must use its own buffer, have one segment and
    /// refcount 1; on error it is unchanged and `ext` comes back.
    ///
    /// ```
    /// use pktmem_mbuf::{ExtBuf, PktPool};
    /// let pool = PktPool::builder(8).build_anonymous().unwrap();
    /// let ext = ExtBuf::from_owner(vec![1u8; 64], None).unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.attach_extbuf(ext.clone()).unwrap();
    /// assert_eq!((m.is_external(), m.buf_len(), ext.refcnt()), (true, 64, 2));
    /// let e = m.attach_extbuf(ext.clone()).unwrap_err(); // already attached
    /// drop(e);
    /// m.detach();
    /// assert_eq!((m.is_direct(), ext.refcnt()), (true, 1));
    /// ```
    pub fn attach_extbuf(&mut self, ext: ExtBuf) -> Result<(), AttachExtError> {
        if let Err(kind) = self.check_attachable() {
            return Err(AttachExtError { kind, ext });
        }
        let h = self.w();
        // SAFETY: owner writes of non-atomic fields (see `Mbuf::w`).
        unsafe {
            (*h).buf_addr = ext.addr.as_ptr();
            (*h).buf_iova = ext.iova;
            (*h).buf_len = ext.len;
            (*h).data_off = 0;
            // Only when there was data (a fresh mbuf has none): one store
            // pair less per attach.
            if (*h).data_len != 0 {
                (*h).pkt_len -= u32::from((*h).data_len);
                (*h).data_len = 0;
            }
            (*h).ol_flags |= F_EXTERNAL;
            (*h).shinfo = ext.shinfo.as_ptr();
        }
        std::mem::forget(ext); // its reference is the mbuf's now
        Ok(())
    }

    /// The external buffer this mbuf's first segment uses, as a new
    /// reference (`None` for a direct or indirect mbuf, or at the 16-bit
    /// maximum).
    pub fn extbuf(&self) -> Option<ExtBuf> {
        if !self.is_external() {
            return None;
        }
        let h = self.h();
        // SAFETY: an external segment's shinfo lives while referenced.
        let sh = unsafe { &*h.shinfo };
        sh.try_acquire().then(|| ExtBuf {
            // SAFETY: non-null (external segment).
            shinfo: unsafe { NonNull::new_unchecked(h.shinfo) },
            // SAFETY: every buffer address in use is non-null.
            addr: unsafe { NonNull::new_unchecked(h.buf_addr) },
            iova: h.buf_iova,
            len: h.buf_len,
        })
    }
}

impl PktPool {
    /// An mbuf of this pool whose data is all of `owner`'s bytes, attached as
    /// an external buffer: `owner` is dropped when the last reference goes
    /// (the mbuf and its clones), on whichever thread that is.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(8).build_anonymous().unwrap();
    /// let m = pool.attach_owned(b"frame".to_vec(), None).unwrap();
    /// let c = m.clone_in(&pool).unwrap();
    /// assert_eq!(c.data(), b"frame");
    /// drop(m);
    /// drop(c); // the Vec goes here
    /// ```
    pub fn attach_owned<O>(
        &self,
        owner: O,
        iova: Option<pktmem_hugemem::Iova>,
    ) -> Result<Mbuf, crate::MbufError>
    where
        O: AsMut<[u8]> + Send + 'static,
    {
        let ext = ExtBuf::from_owner(owner, iova)?;
        let len = ext.len();
        let mut m = self.alloc_default()?;
        m.attach_extbuf(ext)
            .map_err(|e| crate::MbufError::Attach(e.kind))?;
        m.grow_tail(len)?;
        Ok(m)
    }
}
