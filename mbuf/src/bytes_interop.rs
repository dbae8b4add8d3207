//! `bytes` interop: a single-segment mbuf becomes a [`Bytes`] without a
//! copy, and [`MbufReader`] is a [`Buf`] over a whole chain.

use bytes::{Buf, Bytes};

use crate::mbuf::{Segment, Segments};
use crate::Mbuf;

impl AsRef<[u8]> for Mbuf {
    /// The first segment's data (see [`Segment::data`]).
    fn as_ref(&self) -> &[u8] {
        self.data()
    }
}

impl Mbuf {
    /// This packet as a [`Bytes`] over its data, without copying: the mbuf
    /// becomes the `Bytes`' owner and is freed (on whichever thread) when
    /// the last clone of the `Bytes` goes. A chain of several segments is
    /// handed back (linearize it first, or read it with [`reader`](Self::reader)).
    ///
    /// ```
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut m = pool.alloc_default().unwrap();
    /// m.append(5).unwrap().copy_from_slice(b"hello");
    /// let addr = m.data().as_ptr();
    /// let b = m.into_bytes().unwrap();
    /// assert_eq!((&b[..], b.as_ptr()), (&b"hello"[..], addr)); // same bytes, no copy
    /// let tail = b.slice(1..);
    /// drop(b);
    /// assert_eq!(&tail[..], b"ello"); // the mbuf lives while a slice does
    /// drop(tail);                      // freed here
    /// ```
    pub fn into_bytes(self) -> Result<Bytes, Mbuf> {
        if self.nb_segs() != 1 {
            return Err(self);
        }
        Ok(Bytes::from_owner(self))
    }

    /// A [`Buf`] reading the whole packet, segment by segment, without
    /// copying.
    ///
    /// ```
    /// use bytes::Buf;
    /// use pktmem_mbuf::PktPool;
    /// let pool = PktPool::builder(4).build_anonymous().unwrap();
    /// let mut a = pool.alloc_default().unwrap();
    /// a.append(2).unwrap().copy_from_slice(&[0x12, 0x34]);
    /// let mut b = pool.alloc_default().unwrap();
    /// b.append(2).unwrap().copy_from_slice(&[0x56, 0x78]);
    /// a.chain(b).unwrap();
    /// let mut r = a.reader();
    /// assert_eq!(r.get_u32(), 0x1234_5678); // across the segment boundary
    /// assert_eq!(r.remaining(), 0);
    /// ```
    pub fn reader(&self) -> MbufReader<'_> {
        let mut segs = self.segments();
        let seg = segs.next();
        let mut r = MbufReader {
            seg,
            off: 0,
            remaining: self.pkt_len(),
            segs,
        };
        r.skip_empty();
        r
    }
}

/// A [`Buf`] over a packet's bytes ([`Mbuf::reader`]).
#[derive(Debug, Clone)]
pub struct MbufReader<'a> {
    seg: Option<&'a Segment>,
    off: usize,
    remaining: usize,
    segs: Segments<'a>,
}

impl MbufReader<'_> {
    /// Moves past exhausted (or empty) segments.
    fn skip_empty(&mut self) {
        while let Some(s) = self.seg {
            if self.off < s.data_len() {
                return;
            }
            self.off = 0;
            self.seg = self.segs.next();
        }
    }
}

impl Buf for MbufReader<'_> {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.seg.map_or(&[], |s| &s.data()[self.off..])
    }

    fn advance(&mut self, mut cnt: usize) {
        // `Buf` allows a panic past the end; we stop at the end instead.
        cnt = cnt.min(self.remaining);
        self.remaining -= cnt;
        while cnt > 0 {
            let Some(s) = self.seg else { return };
            let n = (s.data_len() - self.off).min(cnt);
            self.off += n;
            cnt -= n;
            self.skip_empty();
        }
    }
}
