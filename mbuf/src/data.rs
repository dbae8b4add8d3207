//! Data operations: prepend, append, adj, trim, read across segments,
//! chain, linearize, copy, and the packet dump and sanity check.

use std::fmt::Write as _;
use std::ptr;

use pktmem_mempool::Cache;

use crate::error::{ChainError, ChainErrorKind, CopyError, DataError, SanityError};
use crate::header::{MbufHeader, NO_IOVA};
use crate::mbuf::{prefree_seg, put_default};
use crate::{Mbuf, PktPool};

/// Most segments a chain may have (the segment count is 16 bits).
pub const MAX_SEGS: usize = u16::MAX as usize;

impl Mbuf {
    /// Makes room for `len` bytes before the data (taken from the
    /// headroom) and returns them to write. The mbuf is unchanged on error.
    ///
    /// ```
    /// use pktmem_mbuf::{DataError, PktPool};
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.prepend(14).unwrap().fill(0xff);
    /// assert_eq!((m.data_len(), m.headroom()), (14, 114));
    /// assert_eq!(m.prepend(200), Err(DataError::NoHeadroom { len: 200, headroom: 114 }));
    /// ```
    pub fn prepend(&mut self, len: usize) -> Result<&mut [u8], DataError> {
        let headroom = self.headroom();
        if len > headroom {
            return Err(DataError::NoHeadroom { len, headroom });
        }
        if !self.is_writable() {
            return Err(DataError::NotWritable);
        }
        let pkt = u64::from(self.h().pkt_len) + len as u64;
        if pkt > u64::from(u32::MAX) {
            return Err(DataError::PacketTooLong { len });
        }
        let h = self.w();
        // SAFETY: owner writes of non-atomic fields (see `Mbuf::w`); the new
        // range is inside the buffer (it was headroom), the buffer is ours
        // alone (writable) and `&mut self` is borrowed for the slice.
        unsafe {
            (*h).data_off -= len as u16;
            (*h).data_len += len as u16;
            (*h).pkt_len = pkt as u32;
            Ok(std::slice::from_raw_parts_mut(
                (*h).buf_addr.add(usize::from((*h).data_off)),
                len,
            ))
        }
    }

    /// Adds `len` bytes after the data of the last segment (taken from its
    /// tailroom) and returns them to write. The mbuf is unchanged on error.
    ///
    /// ```
    /// use pktmem_mbuf::{DataError, PktPool};
    /// let pool = PktPool::builder(4).data_room(128 + 100).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(60).unwrap().fill(1);
    /// assert_eq!(m.append(41), Err(DataError::NoTailroom { len: 41, tailroom: 40 }));
    /// assert_eq!(m.pkt_len(), 60);
    /// ```
    pub fn append(&mut self, len: usize) -> Result<&mut [u8], DataError> {
        let last = self.last_seg();
        let at = self.grow_tail_at(last, len, true)?;
        // SAFETY: `at..at+len` was tailroom of the last segment, whose
        // buffer is ours alone (checked), borrowed through `&mut self`.
        Ok(unsafe { std::slice::from_raw_parts_mut(at, len) })
    }

    /// Adds `len` bytes after the data of the last segment without writing
    /// them: the buffer's bytes there become data as they are (a device or
    /// the kernel wrote them). Works on shared buffers too (nothing is
    /// written). The mbuf is unchanged on error.
    pub fn grow_tail(&mut self, len: usize) -> Result<(), DataError> {
        let last = self.last_seg();
        self.grow_tail_at(last, len, false).map(|_| ())
    }

    /// Makes the `len` bytes at `offset` from the start of the first
    /// segment's buffer its data, as they are: a device or the kernel wrote
    /// them there and said where (an `AF_XDP` receive descriptor carries
    /// both). The packet length follows (other segments keep theirs).
    /// Nothing is written, so it works on shared buffers too; the window is
    /// bounds-checked (`offset + len` within the buffer, no overflow) and
    /// the mbuf is unchanged on error.
    ///
    /// ```
    /// use pktmem_mbuf::{DataError, PktPool};
    /// let pool = PktPool::builder(4).data_room(2048).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.set_data_window(256, 60).unwrap(); // "the device wrote 60 B at 256"
    /// assert_eq!((m.headroom(), m.data_len(), m.pkt_len(), m.tailroom()), (256, 60, 60, 1732));
    /// assert_eq!(
    ///     m.set_data_window(2000, 60),
    ///     Err(DataError::OutsideBuffer { offset: 2000, len: 60, buf_len: 2048 })
    /// );
    /// assert_eq!(m.headroom(), 256); // unchanged
    /// ```
    pub fn set_data_window(&mut self, offset: usize, len: usize) -> Result<(), DataError> {
        let buf_len = self.buf_len();
        if !matches!(offset.checked_add(len), Some(end) if end <= buf_len) {
            return Err(DataError::OutsideBuffer {
                offset,
                len,
                buf_len,
            });
        }
        // Bytes of the other segments stay in the packet.
        let rest = (self.pkt_len() - self.data_len()) as u64;
        let pkt = rest + len as u64;
        if pkt > u64::from(u32::MAX) {
            return Err(DataError::PacketTooLong { len });
        }
        let h = self.w();
        // SAFETY: owner writes of non-atomic fields (see `Mbuf::w`); the
        // window lies in the buffer (checked: `offset + len <= buf_len`,
        // which is 16 bits, so both fit a `u16`).
        unsafe {
            (*h).data_off = offset as u16;
            (*h).data_len = len as u16;
            (*h).pkt_len = pkt as u32;
        }
        Ok(())
    }

    fn grow_tail_at(
        &mut self,
        last: *mut MbufHeader,
        len: usize,
        write: bool,
    ) -> Result<*mut u8, DataError> {
        // SAFETY: `last` is a segment of our chain.
        let seg = unsafe { crate::Segment::from_hdr(last) };
        let tailroom = seg.tailroom();
        if len > tailroom {
            return Err(DataError::NoTailroom { len, tailroom });
        }
        if write && !seg.is_writable() {
            return Err(DataError::NotWritable);
        }
        let pkt = u64::from(self.h().pkt_len) + len as u64;
        if pkt > u64::from(u32::MAX) {
            return Err(DataError::PacketTooLong { len });
        }
        // SAFETY: our segment; `&mut self` gives write access to its
        // non-atomic fields.
        let at = unsafe {
            let at = (*last)
                .buf_addr
                .add(usize::from((*last).data_off) + usize::from((*last).data_len));
            (*last).data_len += len as u16;
            at
        };
        // SAFETY: owner write of a non-atomic field (see `Mbuf::w`).
        unsafe { (*self.w()).pkt_len = pkt as u32 };
        Ok(at)
    }

    /// Removes `len` bytes from the start of the first segment's data.
    ///
    /// ```
    /// use pktmem_mbuf::{DataError, PktPool};
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(10).unwrap().copy_from_slice(b"0123456789");
    /// m.adj(4).unwrap();
    /// assert_eq!(m.data(), b"456789");
    /// assert_eq!(m.adj(7), Err(DataError::TooShort { len: 7, have: 6 }));
    /// ```
    pub fn adj(&mut self, len: usize) -> Result<(), DataError> {
        let have = self.data_len();
        if len > have {
            return Err(DataError::TooShort { len, have });
        }
        let h = self.w();
        // SAFETY: owner writes of non-atomic fields (see `Mbuf::w`).
        unsafe {
            (*h).data_off += len as u16;
            (*h).data_len -= len as u16;
            (*h).pkt_len -= len as u32;
        }
        Ok(())
    }

    /// Removes `len` bytes from the end of the last segment's data.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(10).unwrap().copy_from_slice(b"0123456789");
    /// m.trim(4).unwrap();
    /// assert_eq!(m.data(), b"012345");
    /// assert!(m.trim(7).is_err());
    /// ```
    pub fn trim(&mut self, len: usize) -> Result<(), DataError> {
        let last = self.last_seg();
        // SAFETY: a segment of our chain, written through `&mut self`.
        let have = usize::from(unsafe { (*last).data_len });
        if len > have {
            return Err(DataError::TooShort { len, have });
        }
        // SAFETY: as above.
        unsafe { (*last).data_len -= len as u16 };
        // SAFETY: owner write of a non-atomic field (see `Mbuf::w`).
        unsafe { (*self.w()).pkt_len -= len as u32 };
        Ok(())
    }

    /// `len` bytes at `offset` of the packet: in place when they lie in one
    /// segment, else copied into `buf` (which must hold `len` bytes). `None`
    /// when the range is not inside the packet (no overflow: `offset + len`
    /// is checked) or `buf` is too short for a copy.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut a = pool.alloc_default().unwrap();
    /// a.append(4).unwrap().copy_from_slice(b"abcd");
    /// let mut b = pool.alloc_default().unwrap();
    /// b.append(4).unwrap().copy_from_slice(b"efgh");
    /// a.chain(b).unwrap();
    /// let mut tmp = [0u8; 8];
    /// assert_eq!(a.read(1, 2, &mut tmp), Some(&b"bc"[..]));    // in place
    /// assert_eq!(a.read(2, 4, &mut tmp), Some(&b"cdef"[..]));  // copied
    /// assert_eq!(a.read(usize::MAX, 2, &mut tmp), None);
    /// ```
    pub fn read<'a>(&'a self, offset: usize, len: usize, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        let end = offset.checked_add(len)?;
        if end > self.pkt_len() {
            return None;
        }
        if len == 0 {
            return Some(&[]);
        }
        let mut off = offset;
        let mut segs = self.segments();
        let mut seg = segs.next()?;
        while off >= seg.data_len() {
            off -= seg.data_len();
            seg = segs.next()?;
        }
        if off + len <= seg.data_len() {
            return Some(&seg.data()[off..off + len]);
        }
        let out = buf.get_mut(..len)?;
        let mut done = 0;
        let mut s = Some(seg);
        while done < len {
            let sg = s?;
            let d = &sg.data()[off..];
            let n = d.len().min(len - done);
            out[done..done + n].copy_from_slice(&d[..n]);
            done += n;
            off = 0;
            s = segs.next();
        }
        Some(out)
    }

    /// The first segment's data from `offset` on (`None` past its end).
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(4).unwrap().copy_from_slice(b"abcd");
    /// assert_eq!(m.data_at(2), Some(&b"cd"[..]));
    /// assert_eq!(m.data_at(5), None);
    /// ```
    pub fn data_at(&self, offset: usize) -> Option<&[u8]> {
        self.data().get(offset..)
    }

    /// IOVA of the packet byte at `offset` (in whichever segment holds it):
    /// `None` past the packet's end or when that buffer has no IOVA.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let provider = pktmem_hugemem::Provider::builder().quiet(true).build().unwrap();
    /// let pool = PktPool::builder(4).build_on(&provider).unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(100).unwrap();
    /// if let Some(base) = m.data_iova() {
    ///     assert_eq!(m.iova_at(10).map(|i| i.0), Some(base.0 + 10));
    /// }
    /// assert_eq!(m.iova_at(100), None);
    /// ```
    pub fn iova_at(&self, offset: usize) -> Option<pktmem_hugemem::Iova> {
        let mut off = offset;
        for s in self.segments() {
            if off < s.data_len() {
                return s
                    .data_iova()
                    .map(|i| pktmem_hugemem::Iova(i.0 + off as u64));
            }
            off -= s.data_len();
        }
        None
    }

    /// Copies the whole packet into a `Vec` (for tests, tools and dumps).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.pkt_len());
        for s in self.segments() {
            v.extend_from_slice(s.data());
        }
        v
    }

    /// Appends the chain `tail` after this one's last segment; the segment
    /// count and packet length add up. On error (more than [`MAX_SEGS`]
    /// segments, or a packet past 4 GiB) nothing changes and `tail` comes
    /// back in the error.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut a = pool.alloc_default().unwrap();
    /// a.append(100).unwrap();
    /// let mut b = pool.alloc_default().unwrap();
    /// b.append(50).unwrap();
    /// a.chain(b).unwrap();
    /// assert_eq!((a.nb_segs(), a.pkt_len()), (2, 150));
    /// ```
    pub fn chain(&mut self, tail: Mbuf) -> Result<(), ChainError> {
        let total = self.nb_segs() + tail.nb_segs();
        if total > MAX_SEGS {
            return Err(ChainError {
                kind: ChainErrorKind::TooManySegments {
                    total,
                    max: MAX_SEGS,
                },
                tail,
            });
        }
        let bytes = self.pkt_len() as u64 + tail.pkt_len() as u64;
        if bytes > u64::from(u32::MAX) {
            return Err(ChainError {
                kind: ChainErrorKind::PacketTooLong { total: bytes },
                tail,
            });
        }
        let last = self.last_seg();
        let t = tail.into_hdr();
        // SAFETY: `last` is our segment; `t` heads the chain we now own; its
        // head becomes an inner segment (count and length kept in our head).
        unsafe {
            (*t.as_ptr()).nb_segs = 1;
            (*t.as_ptr()).pkt_len = u32::from((*t.as_ptr()).data_len);
            (*last).next = t.as_ptr();
        }
        let h = self.w();
        // SAFETY: owner writes of non-atomic fields (see `Mbuf::w`).
        unsafe {
            (*h).nb_segs = total as u16;
            (*h).pkt_len = bytes as u32;
        }
        Ok(())
    }

    /// Frees the first segment and returns the rest of the chain as a packet
    /// (`None` when this was the only segment).
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut a = pool.alloc_default().unwrap();
    /// a.append(1).unwrap();
    /// let mut b = pool.alloc_default().unwrap();
    /// b.append(2).unwrap();
    /// a.chain(b).unwrap();
    /// let rest = a.free_first_segment().unwrap();
    /// assert_eq!((rest.nb_segs(), rest.pkt_len()), (1, 2));
    /// assert!(rest.free_first_segment().is_none());
    /// ```
    pub fn free_first_segment(self) -> Option<Mbuf> {
        let nb = self.h().nb_segs;
        let pkt = self.h().pkt_len;
        let first = self.into_hdr().as_ptr();
        // SAFETY: we own the chain; unlink the head, then free it alone.
        let next = unsafe {
            let next = (*first).next;
            let dl = (*first).data_len;
            (*first).next = ptr::null_mut();
            if !next.is_null() {
                (*next).nb_segs = nb - 1;
                (*next).pkt_len = pkt - u32::from(dl);
            }
            if let Some(s) = prefree_seg(first) {
                put_default(s);
            }
            next
        };
        // SAFETY: the rest of the chain, owned now by the result.
        ptr::NonNull::new(next).map(|n| unsafe { Mbuf::from_hdr(n) })
    }

    /// Moves the data of all segments into the first one (when its tailroom
    /// holds them and it is writable) and frees the others. Nothing changes
    /// on error.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut a = pool.alloc_default().unwrap();
    /// a.append(3).unwrap().copy_from_slice(b"abc");
    /// let mut b = pool.alloc_default().unwrap();
    /// b.append(3).unwrap().copy_from_slice(b"def");
    /// a.chain(b).unwrap();
    /// a.linearize().unwrap();
    /// assert_eq!((a.nb_segs(), a.data()), (1, &b"abcdef"[..]));
    /// ```
    pub fn linearize(&mut self) -> Result<(), DataError> {
        if self.nb_segs() == 1 {
            return Ok(());
        }
        let rest = self.pkt_len() - self.data_len();
        let tailroom = self.tailroom();
        if rest > tailroom {
            return Err(DataError::NoTailroom {
                len: rest,
                tailroom,
            });
        }
        if !self.is_writable() {
            return Err(DataError::NotWritable);
        }
        let head = self.hdr.as_ptr();
        // SAFETY: our chain; the head's tailroom holds `rest` bytes
        // (checked) and is ours alone (writable); source segments are other
        // buffers (or other ranges of a shared one), read only.
        unsafe {
            let mut dst = (*head)
                .buf_addr
                .add(usize::from((*head).data_off) + usize::from((*head).data_len));
            let mut seg = (*head).next;
            while !seg.is_null() {
                let n = usize::from((*seg).data_len);
                ptr::copy((*seg).buf_addr.add(usize::from((*seg).data_off)), dst, n);
                dst = dst.add(n);
                let next = (*seg).next;
                (*seg).next = ptr::null_mut();
                if let Some(s) = prefree_seg(seg) {
                    put_default(s);
                }
                seg = next;
            }
            (*head).next = ptr::null_mut();
            (*head).data_len += rest as u16;
            (*head).nb_segs = 1;
        }
        Ok(())
    }

    /// A deep copy of `len` bytes at `offset` into a new chain of direct
    /// mbufs from `pool` (each filled up to its tailroom), with this
    /// packet's metadata (port, flags, type, hash, VLAN, offload lengths,
    /// timestamp, dynamic fields). Whatever it built is freed on error.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(8).data_room(128 + 4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(4).unwrap().copy_from_slice(b"abcd");
    /// let c = m.copy(&pool, 1, 3).unwrap();
    /// assert_eq!(c.to_vec(), b"bcd");
    /// assert!(m.copy(&pool, 2, 3).is_err());
    /// ```
    pub fn copy(&self, pool: &PktPool, offset: usize, len: usize) -> Result<Mbuf, CopyError> {
        self.copy_with(pool, None, offset, len)
    }

    /// [`copy`](Self::copy) through an explicit cache of `pool`.
    pub fn copy_in_cache(
        &self,
        pool: &PktPool,
        cache: &mut Cache,
        offset: usize,
        len: usize,
    ) -> Result<Mbuf, CopyError> {
        self.copy_with(pool, Some(cache), offset, len)
    }

    fn copy_with(
        &self,
        pool: &PktPool,
        mut cache: Option<&mut Cache>,
        offset: usize,
        len: usize,
    ) -> Result<Mbuf, CopyError> {
        let pkt_len = self.pkt_len();
        if offset.checked_add(len).map_or(true, |e| e > pkt_len) {
            return Err(CopyError::OutOfRange {
                offset,
                len,
                pkt_len,
            });
        }
        let alloc = |c: &mut Option<&mut Cache>| match c.as_deref_mut() {
            Some(c) => pool.alloc(c),
            None => pool.alloc_default(),
        };
        let mut head = alloc(&mut cache).map_err(|_| CopyError::Exhausted {
            needed: 1,
            obtained: 0,
        })?;
        let room = head.tailroom();
        if room == 0 && len > 0 {
            return Err(CopyError::NoDataRoom);
        }
        let needed = if len == 0 { 1 } else { len.div_ceil(room) };
        if needed > MAX_SEGS {
            return Err(CopyError::TooManySegments { needed });
        }
        // SAFETY: `head` is ours and fresh; `self` is borrowed shared.
        unsafe { copy_meta(self.h(), head.w()) };
        let mut tmp = vec![0u8; room.min(len)];
        let mut done = 0;
        let mut cur_first = true;
        let mut segs: Vec<Mbuf> = Vec::new();
        while done < len {
            let n = room.min(len - done);
            let src = self
                .read(offset + done, n, &mut tmp)
                .expect("range checked above");
            if cur_first {
                head.append(n)
                    .expect("a fresh mbuf's tailroom")
                    .copy_from_slice(src);
                cur_first = false;
            } else {
                let mut s = alloc(&mut cache).map_err(|_| CopyError::Exhausted {
                    needed,
                    obtained: 1 + segs.len(),
                })?;
                s.append(n)
                    .expect("a fresh mbuf's tailroom")
                    .copy_from_slice(src);
                segs.push(s);
            }
            done += n;
        }
        for s in segs {
            if head.chain(s).is_err() {
                return Err(CopyError::TooManySegments { needed });
            }
        }
        Ok(head)
    }

    /// Writes a human-readable dump of the packet (header fields of every
    /// segment and the first `max_bytes` bytes of data, in hex) to `out`.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(2).unwrap().copy_from_slice(&[0xab, 0xcd]);
    /// let mut s = String::new();
    /// m.dump(&mut s, 16).unwrap();
    /// assert!(s.contains("pkt_len=2") && s.contains("ab cd"));
    /// ```
    pub fn dump(&self, out: &mut impl std::fmt::Write, max_bytes: usize) -> std::fmt::Result {
        let h = self.h();
        writeln!(
            out,
            "mbuf at {:p}, iova={:#x}, buf_len={}\n  pkt_len={}, ol_flags={:#x}, nb_segs={}, port={:?}, ptype={:#x}",
            self.hdr,
            if h.buf_iova == NO_IOVA { 0 } else { h.buf_iova },
            h.buf_len,
            h.pkt_len,
            self.ol_flags_bits(),
            h.nb_segs,
            self.port(),
            h.packet_type
        )?;
        let mut left = max_bytes;
        for (i, s) in self.segments().enumerate() {
            writeln!(
                out,
                "  segment {i} at {:p}, data={:p}, data_len={}, refcnt={}{}",
                s.hdr_ptr(),
                s.data().as_ptr(),
                s.data_len(),
                s.refcnt(),
                if s.is_indirect() {
                    ", indirect"
                } else if s.is_external() {
                    ", external"
                } else {
                    ""
                }
            )?;
            let d = &s.data()[..s.data_len().min(left)];
            left -= d.len();
            for line in d.chunks(16) {
                let mut l = String::with_capacity(48);
                for (j, b) in line.iter().enumerate() {
                    if j > 0 {
                        l.push(' ');
                    }
                    let _ = write!(l, "{b:02x}");
                }
                writeln!(out, "    {l}")?;
            }
        }
        Ok(())
    }

    /// Checks the packet's header fields the way the reference's sanity
    /// check does: a pool, plausible refcounts, buffers with addresses (and
    /// IOVAs when the pool has them), data inside each buffer, and a head
    /// whose segment count and packet length match the chain. Runs inside
    /// every allocation when built with debug assertions.
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let m = pool.alloc_default().unwrap();
    /// assert!(m.check().is_ok());
    /// ```
    pub fn check(&self) -> Result<(), SanityError> {
        let h = self.h();
        if h.pool.is_null() {
            return Err(SanityError::NoPool);
        }
        let mut found = 0usize;
        let mut sum = 0u64;
        for (seg, s) in self.segments().enumerate() {
            let sh = &s.0;
            if sh.buf_addr.is_null() {
                return Err(SanityError::NullBuffer { seg });
            }
            if s.is_direct() {
                // A direct segment's buffer is its own object's data room.
                let own = s
                    .hdr_ptr()
                    .cast::<u8>()
                    .wrapping_add(crate::header::HEADER_SIZE + s.private_size());
                if sh.buf_addr != own {
                    return Err(SanityError::BadBufferAddress { seg });
                }
                let obj = pktmem_mempool::Obj::from_non_null(
                    // SAFETY: a header pointer is never null.
                    unsafe { std::ptr::NonNull::new_unchecked(s.hdr_ptr().cast::<u8>()) },
                );
                // SAFETY: the segment is a pool object out of its pool (we
                // own a reference to it), so its pool lives.
                let obj_iova = unsafe { obj.iova_unchecked() };
                let want = obj_iova.map_or(NO_IOVA, |i| {
                    i.0 + (crate::header::HEADER_SIZE + s.private_size()) as u64
                });
                if sh.buf_iova != want {
                    return Err(SanityError::BadIova { seg });
                }
            }
            let rc = s.refcnt();
            if rc == 0 {
                return Err(SanityError::BadRefcnt { seg, refcnt: rc });
            }
            if usize::from(sh.data_off) + usize::from(sh.data_len) > usize::from(sh.buf_len) {
                return Err(SanityError::DataOutsideBuffer {
                    seg,
                    data_off: sh.data_off,
                    data_len: sh.data_len,
                    buf_len: sh.buf_len,
                });
            }
            found += 1;
            sum += u64::from(sh.data_len);
            if found > MAX_SEGS {
                break;
            }
        }
        if found != usize::from(h.nb_segs) {
            return Err(SanityError::SegmentCount {
                nb_segs: h.nb_segs,
                found,
            });
        }
        if sum != u64::from(h.pkt_len) {
            return Err(SanityError::PacketLength {
                pkt_len: h.pkt_len,
                sum,
            });
        }
        Ok(())
    }
}

/// Copies the packet metadata a copy keeps (not buffers, lengths, chain).
///
/// # Safety
/// - `to` is a header the caller owns (see `Mbuf::w`), not `from`.
unsafe fn copy_meta(from: &MbufHeader, to: *mut MbufHeader) {
    // SAFETY: the caller's condition.
    unsafe {
        (*to).port = from.port;
        (*to).vlan_tci = from.vlan_tci;
        (*to).vlan_tci_outer = from.vlan_tci_outer;
        (*to).tx_offload = from.tx_offload;
        (*to).hash = from.hash;
        (*to).packet_type = from.packet_type;
        (*to).timestamp = from.timestamp;
        (*to).dynfield = from.dynfield;
        (*to).ol_flags = ((*to).ol_flags & crate::header::INTERNAL_FLAGS)
            | (from.ol_flags & !crate::header::INTERNAL_FLAGS);
    }
}
