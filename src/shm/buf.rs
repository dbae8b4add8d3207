//! Shared buffers: the owned handle ([`SharedBuf`]), the pool geometry and
//! the descriptor that carries a buffer between the processes.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ptr::{self, NonNull};
use std::sync::Arc;

use crate::hugemem::Iova;
use crate::mbuf::{Mbuf, PktPool};
use crate::mempool::Cache;
use crate::ring::shared::Desc;

use super::error::{CopyError, DataError};
use super::peer::PeerCore;
use super::pool::PoolCore;
use super::volatile;

/// The largest data room: window offsets travel as 16 bits.
pub const MAX_DATA_ROOM: usize = u16::MAX as usize;

/// Where a pool's buffers are and how they are cut, as both sides know it.
///
/// Invariants (checked where a geometry is made, [`Geometry::check`]):
/// `count >= 1`, `stride` a power of two `>= 64`, `1 <= data_room <= stride`,
/// `data_room <= MAX_DATA_ROOM`, `headroom <= data_room`, and
/// `base + count * stride` does not overflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Exporter VA of buffer 0.
    pub base: u64,
    /// Buffers.
    pub count: u32,
    /// Bytes from one buffer's start to the next.
    pub stride: u32,
    /// Usable bytes per buffer.
    pub data_room: u32,
    /// Where a fresh buffer's data starts.
    pub headroom: u32,
}

/// Why a descriptor from the other side was refused (each class counted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reject {
    /// The address is not a buffer start of this pool.
    OutOfPool,
    /// The window is not inside the buffer's data room.
    BadWindow,
}

/// A buffer's data window and flags, as `Desc::meta` carries them:
/// `data_off` bits 0..16, `data_len` bits 16..48, `flags` bits 48..64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) struct Meta {
    pub off: u32,
    pub len: u32,
    pub flags: u16,
}

impl Meta {
    pub(crate) fn encode(self) -> u64 {
        debug_assert!(u16::try_from(self.off).is_ok());
        u64::from(self.off) | u64::from(self.len) << 16 | u64::from(self.flags) << 48
    }

    pub(crate) fn decode(meta: u64) -> Meta {
        Meta {
            off: (meta & 0xffff) as u32,
            len: (meta >> 16) as u32,
            flags: (meta >> 48) as u16,
        }
    }
}

impl Geometry {
    /// Whether the invariants above hold (a geometry read from a peer's
    /// directory entry is checked with this before use). `Err` names the
    /// first field that breaks them.
    pub(crate) fn check(&self) -> Result<(), (&'static str, u64)> {
        if self.count == 0 {
            return Err(("count", 0));
        }
        if !self.stride.is_power_of_two() || self.stride < 64 {
            return Err(("stride", self.stride.into()));
        }
        if self.data_room == 0
            || self.data_room > self.stride
            || self.data_room as usize > MAX_DATA_ROOM
        {
            return Err(("data_room", self.data_room.into()));
        }
        if self.headroom > self.data_room {
            return Err(("headroom", self.headroom.into()));
        }
        if self.base % u64::from(self.stride) != 0 || self.base.checked_add(self.len()).is_none() {
            return Err(("base", self.base));
        }
        Ok(())
    }

    /// Bytes of all buffers.
    pub(crate) fn len(&self) -> u64 {
        u64::from(self.count) * u64::from(self.stride)
    }

    /// Exporter VA of buffer `idx`.
    pub(crate) fn addr(&self, idx: u32) -> u64 {
        self.base + u64::from(idx) * u64::from(self.stride)
    }

    /// The buffer whose start `addr` is, or [`Reject::OutOfPool`].
    #[inline]
    pub(crate) fn index(&self, addr: u64) -> Result<u32, Reject> {
        let off = addr.wrapping_sub(self.base);
        // One compare covers below-base too (it wraps above `len`).
        if off >= self.len() || off & (u64::from(self.stride) - 1) != 0 {
            return Err(Reject::OutOfPool);
        }
        Ok((off >> self.stride.trailing_zeros()) as u32)
    }

    /// The descriptor's window, if inside the data room.
    #[inline]
    pub(crate) fn window(&self, meta: u64) -> Result<Meta, Reject> {
        let m = Meta::decode(meta);
        if u64::from(m.off) + u64::from(m.len) > u64::from(self.data_room) {
            return Err(Reject::BadWindow);
        }
        Ok(m)
    }

    /// Validates a descriptor: buffer start of this pool, window inside it.
    #[inline]
    pub(crate) fn decode(&self, d: Desc) -> Result<(u32, Meta), Reject> {
        let idx = self.index(d.addr)?;
        Ok((idx, self.window(d.meta)?))
    }
}

/// Which side a buffer goes back to when dropped.
#[derive(Clone)]
pub(crate) enum Home {
    /// The exporter's free list.
    Exporter(Arc<PoolCore>),
    /// A peer's local free list.
    Peer(Arc<PeerCore>),
}

impl Home {
    fn geometry(&self) -> &Geometry {
        match self {
            Home::Exporter(p) => &p.geo,
            Home::Peer(p) => &p.geo,
        }
    }

    /// Whether this is the exporter side of `pool`.
    pub(crate) fn is_exporter_of(&self, pool: &Arc<PoolCore>) -> bool {
        matches!(self, Home::Exporter(p) if Arc::ptr_eq(p, pool))
    }

    /// Whether this is the peer side `core`.
    pub(crate) fn is_peer(&self, core: &Arc<PeerCore>) -> bool {
        matches!(self, Home::Peer(p) if Arc::ptr_eq(p, core))
    }
}

/// One buffer of a shared pool, owned by this process until it is sent,
/// on either side (exporter or peer).
///
/// The bytes live in memory the other process maps and can write, so they
/// are never handed out as `&[u8]`: [`read`](Self::read),
/// [`write`](Self::write), [`fill`](Self::fill), [`copy_to_vec`](Self::copy_to_vec)
/// and the mbuf copies move them with volatile accesses;
/// [`as_ptr`](Self::as_ptr) gives the raw start for DMA descriptors or
/// your own volatile code. The data window (offset and length) is private
/// to the handle and travels in the descriptor when the buffer is sent.
///
/// Dropping it gives the buffer back to its side's free list (the
/// exporter's pool, or the peer's local list, whose excess goes back to
/// the exporter in batches).
///
/// ```
/// use pktmem::hugemem::{share::Exporter, Provider};
/// use pktmem::shm::{DataError, SharedPool};
/// let provider = Provider::builder().exportable().quiet(true).build()?;
/// let exporter = Exporter::builder(&provider).unbound()?;
/// let pool = SharedPool::builder(64, 2048).build(&exporter)?;
/// let mut b = pool.alloc()?;
/// b.extend_from(b"hello")?; // append + volatile copy in
/// b.prepend(2)?; // from the headroom
/// b.write(0, &[0xab, 0xcd])?;
/// let mut out = [0u8; 7];
/// b.read(0, &mut out)?; // volatile copy out
/// assert_eq!(&out, b"\xab\xcdhello");
/// assert_eq!(b.write(6, b"xy"), Err(DataError::OutsideData { offset: 6, len: 2, data_len: 7 }));
/// let _raw: *mut u8 = b.as_ptr(); // for DMA descriptors: never make a slice of it
/// drop(b); // back to the free list
/// assert!(pool.is_full());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct SharedBuf {
    /// Invariant: `ptr..ptr + geometry.data_room` is mapped in this process
    /// for as long as `home` lives, and this handle is its only owner here.
    ptr: NonNull<u8>,
    home: Home,
    idx: u32,
    /// Invariant: `meta.off + meta.len <= data_room`.
    meta: Meta,
}

// SAFETY: the handle owns its buffer exclusively on this side (no other
// handle to the same index exists in this process); its home is `Send +
// Sync` (Arcs of thread-safe cores), and the bytes are reached only by
// volatile copies, so it may move between threads.
unsafe impl Send for SharedBuf {}
// SAFETY: `&self` methods only read the bytes (volatile) and the private
// window; there is no interior mutability.
unsafe impl Sync for SharedBuf {}

impl SharedBuf {
    /// A handle to buffer `idx` of `home`'s pool with window `meta`.
    ///
    /// # Safety
    ///
    /// - `ptr` is the local start of buffer `idx`, mapped while `home` lives.
    /// - No other handle to `idx` exists in this process (the buffer came
    ///   out of this side's free list, or was taken over from the other side
    ///   through a validated descriptor and, on the exporter, the ledger).
    /// - `meta` passed [`Geometry::window`].
    pub(crate) unsafe fn from_parts(ptr: NonNull<u8>, home: Home, idx: u32, meta: Meta) -> Self {
        debug_assert!(meta.off + meta.len <= home.geometry().data_room);
        SharedBuf {
            ptr,
            home,
            idx,
            meta,
        }
    }

    /// Gives up the handle without returning the buffer (it is being sent):
    /// the descriptor and the index.
    pub(crate) fn into_desc(self) -> (Desc, u32) {
        let me = ManuallyDrop::new(self);
        // SAFETY: `me` is never dropped, so `home` is read out exactly once
        // and dropped here (the Arc count stays right).
        let home = unsafe { ptr::read(&me.home) };
        let d = Desc {
            addr: home.geometry().addr(me.idx),
            meta: me.meta.encode(),
        };
        drop(home);
        (d, me.idx)
    }

    pub(crate) fn home(&self) -> &Home {
        &self.home
    }

    fn room(&self) -> u32 {
        self.home.geometry().data_room
    }

    /// The buffer's index in its pool (`0..count`), the same on both sides.
    pub fn index(&self) -> u32 {
        self.idx
    }

    /// Bytes of data.
    pub fn len(&self) -> usize {
        self.meta.len as usize
    }

    /// Whether the data is empty.
    pub fn is_empty(&self) -> bool {
        self.meta.len == 0
    }

    /// Bytes before the data.
    pub fn headroom(&self) -> usize {
        self.meta.off as usize
    }

    /// Bytes after the data.
    pub fn tailroom(&self) -> usize {
        (self.room() - self.meta.off - self.meta.len) as usize
    }

    /// Usable bytes of the buffer (headroom + data + tailroom).
    pub fn data_room(&self) -> usize {
        self.room() as usize
    }

    /// The 16 flag bits that travel with the buffer (the application's).
    pub fn flags(&self) -> u16 {
        self.meta.flags
    }

    /// Sets the flag bits.
    pub fn set_flags(&mut self, flags: u16) {
        self.meta.flags = flags;
    }

    /// The exporter's VA of the buffer's start: what descriptors carry.
    pub fn exporter_addr(&self) -> u64 {
        self.home.geometry().addr(self.idx)
    }

    /// The raw start of the buffer in this process (headroom included).
    ///
    /// Another process may write the bytes at any time: reach them only
    /// with raw-pointer volatile or atomic accesses, never through `&[u8]`
    /// or `&mut [u8]`. Valid while this handle lives.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// The IOVA of the first data byte (`None` when the memory has none).
    pub fn iova(&self) -> Option<Iova> {
        let at = self.exporter_addr() + u64::from(self.meta.off);
        match &self.home {
            Home::Exporter(p) => p.iova(at),
            Home::Peer(p) => p.iova(at),
        }
    }

    /// Sets the data length (the start stays).
    pub fn set_len(&mut self, len: usize) -> Result<(), DataError> {
        let max = (self.room() - self.meta.off) as usize;
        if len > max {
            return Err(DataError::NoTailroom {
                len: len.saturating_sub(self.len()),
                tailroom: self.tailroom(),
            });
        }
        self.meta.len = len as u32;
        Ok(())
    }

    /// Empties the data and puts its start back at the pool's headroom.
    pub fn reset(&mut self) {
        self.meta.off = self.home.geometry().headroom;
        self.meta.len = 0;
    }

    /// Grows the data by `len` bytes at the front (from the headroom).
    pub fn prepend(&mut self, len: usize) -> Result<(), DataError> {
        if len > self.headroom() {
            return Err(DataError::NoHeadroom {
                len,
                headroom: self.headroom(),
            });
        }
        self.meta.off -= len as u32;
        self.meta.len += len as u32;
        Ok(())
    }

    /// Grows the data by `len` bytes at the end (from the tailroom).
    pub fn append(&mut self, len: usize) -> Result<(), DataError> {
        if len > self.tailroom() {
            return Err(DataError::NoTailroom {
                len,
                tailroom: self.tailroom(),
            });
        }
        self.meta.len += len as u32;
        Ok(())
    }

    /// Removes `len` bytes from the front of the data.
    pub fn adj(&mut self, len: usize) -> Result<(), DataError> {
        if len > self.len() {
            return Err(DataError::TooShort {
                len,
                data_len: self.len(),
            });
        }
        self.meta.off += len as u32;
        self.meta.len -= len as u32;
        Ok(())
    }

    /// Removes `len` bytes from the end of the data.
    pub fn trim(&mut self, len: usize) -> Result<(), DataError> {
        if len > self.len() {
            return Err(DataError::TooShort {
                len,
                data_len: self.len(),
            });
        }
        self.meta.len -= len as u32;
        Ok(())
    }

    /// Start (raw) of `offset..offset + len` of the data, checked.
    fn data_range(&self, offset: usize, len: usize) -> Result<*mut u8, DataError> {
        if !matches!(offset.checked_add(len), Some(end) if end <= self.len()) {
            return Err(DataError::OutsideData {
                offset,
                len,
                data_len: self.len(),
            });
        }
        // SAFETY: `off + offset + len <= off + data_len <= data_room`: inside
        // the buffer (the field invariants).
        Ok(unsafe { self.ptr.as_ptr().add(self.meta.off as usize + offset) })
    }

    /// Copies `out.len()` bytes of the data from `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), DataError> {
        let src = self.data_range(offset, out.len())?;
        // SAFETY: the range is inside this buffer, mapped while we live;
        // `out` is private memory.
        unsafe { volatile::read_bytes(src, out) };
        Ok(())
    }

    /// Copies `src` into the data at `offset` (the window does not grow:
    /// [`append`](Self::append) or [`extend_from`](Self::extend_from) first).
    pub fn write(&mut self, offset: usize, src: &[u8]) -> Result<(), DataError> {
        let dst = self.data_range(offset, src.len())?;
        // SAFETY: the range is inside this buffer, mapped while we live;
        // `src` is private memory.
        unsafe { volatile::write_bytes(dst, src) };
        Ok(())
    }

    /// Appends `src` to the data.
    pub fn extend_from(&mut self, src: &[u8]) -> Result<(), DataError> {
        let at = self.len();
        self.append(src.len())?;
        self.write(at, src)
    }

    /// Sets every data byte to `byte`.
    pub fn fill(&mut self, byte: u8) {
        let len = self.len();
        if let Ok(dst) = self.data_range(0, len) {
            // SAFETY: the data window is inside this buffer, mapped while we live.
            unsafe { volatile::fill_bytes(dst, len, byte) };
        }
    }

    /// A private copy of the data.
    pub fn copy_to_vec(&self) -> Vec<u8> {
        let mut v = vec![0; self.len()];
        // The whole window: cannot be outside it.
        let _ = self.read(0, &mut v);
        v
    }

    /// A private [`Mbuf`] from `pool` with a copy of the data (headroom of
    /// the mbuf pool's default).
    pub fn copy_to_mbuf(&self, pool: &PktPool, cache: &mut Cache) -> Result<Mbuf, CopyError> {
        let mut m = pool.alloc(cache).map_err(CopyError::Alloc)?;
        let room = m.tailroom();
        let dst = m.append(self.len()).map_err(|_| CopyError::TooLong {
            len: self.len(),
            room,
        })?;
        // The whole window: cannot be outside it.
        let _ = self.read(0, dst);
        Ok(m)
    }

    /// Makes the data a copy of `m`'s packet (every segment), starting at
    /// the current data start.
    pub fn write_from(&mut self, m: &Mbuf) -> Result<(), CopyError> {
        let len = m.pkt_len();
        let room = (self.room() - self.meta.off) as usize;
        if len > room {
            return Err(CopyError::TooLong { len, room });
        }
        self.meta.len = len as u32;
        let mut at = 0;
        for seg in m.segments() {
            let d = seg.data();
            // Inside the window just set: `at + d.len() <= pkt_len`.
            let _ = self.write(at, d);
            at += d.len();
        }
        Ok(())
    }
}

impl Drop for SharedBuf {
    fn drop(&mut self) {
        match &self.home {
            Home::Exporter(p) => p.put(self.idx),
            Home::Peer(p) => p.put(self.idx),
        }
    }
}

impl fmt::Debug for SharedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedBuf")
            .field("index", &self.idx)
            .field("headroom", &self.meta.off)
            .field("len", &self.meta.len)
            .field("flags", &self.meta.flags)
            .field(
                "side",
                &match self.home {
                    Home::Exporter(_) => "exporter",
                    Home::Peer(_) => "peer",
                },
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> Geometry {
        Geometry {
            base: 0x10_0000,
            count: 8,
            stride: 2048,
            data_room: 2000,
            headroom: 128,
        }
    }

    #[test]
    fn index_accepts_starts_only() {
        let g = geo();
        g.check().unwrap();
        assert_eq!(g.index(0x10_0000), Ok(0));
        assert_eq!(g.index(0x10_0000 + 7 * 2048), Ok(7));
        for bad in [
            0,
            0x10_0000 - 2048,
            0x10_0000 + 8 * 2048,
            0x10_0001,
            0x10_0000 + 64,
            u64::MAX,
        ] {
            assert_eq!(g.index(bad), Err(Reject::OutOfPool), "{bad:#x}");
        }
    }

    #[test]
    fn window_bounds_and_meta_round_trip() {
        let g = geo();
        let m = Meta {
            off: 128,
            len: 1872,
            flags: 0xbeef,
        };
        assert_eq!(Meta::decode(m.encode()), m);
        assert_eq!(g.window(m.encode()), Ok(m));
        let over = Meta { len: 1873, ..m };
        assert_eq!(g.window(over.encode()), Err(Reject::BadWindow));
        assert_eq!(g.window(u64::MAX), Err(Reject::BadWindow));
    }

    #[test]
    fn check_names_the_bad_field() {
        let ok = geo();
        assert_eq!(Geometry { count: 0, ..ok }.check(), Err(("count", 0)));
        assert_eq!(Geometry { stride: 96, ..ok }.check(), Err(("stride", 96)));
        assert_eq!(
            Geometry {
                data_room: 4096,
                ..ok
            }
            .check(),
            Err(("data_room", 4096))
        );
        assert_eq!(
            Geometry {
                headroom: 2001,
                ..ok
            }
            .check(),
            Err(("headroom", 2001))
        );
        assert_eq!(
            Geometry {
                base: 0x10_0040,
                ..ok
            }
            .check(),
            Err(("base", 0x10_0040))
        );
        let top = u64::MAX - 2047;
        assert_eq!(Geometry { base: top, ..ok }.check(), Err(("base", top)));
    }
}
