//! Slices of an external buffer (`ExtBuf::slice`): one shared info for the
//! whole buffer, one reference per slice, the release run once after the
//! last slice or handle goes (in any order, on any thread); the slice's
//! address, length and IOVA are the part's; mbufs attached to slices see
//! exactly their bytes; bad ranges and a full shared count are typed errors
//! with the numbers, and take no reference.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;

use common::{anon, assert_full};
use pktmem_hugemem::Iova;
use pktmem_mbuf::{
    DataError, ExtBuf, ExtBufError, ExtRegion, ExtSliceError, MbufError, EXT_BUF_MAX,
};

/// A block of `len` bytes whose drop is counted and whose dropping thread
/// is recorded.
struct Block {
    bytes: Vec<u8>,
    drops: Arc<AtomicUsize>,
    on: Arc<Mutex<Option<ThreadId>>>,
}

impl AsMut<[u8]> for Block {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.bytes
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        *self.on.lock().unwrap() = Some(std::thread::current().id());
        // Relaxed: read on this thread or after a join.
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

type Dropped = (Arc<AtomicUsize>, Arc<Mutex<Option<ThreadId>>>);

fn counted(len: usize) -> (Block, Dropped) {
    let drops = Arc::new(AtomicUsize::new(0));
    let on = Arc::new(Mutex::new(None));
    let b = Block {
        bytes: (0..len).map(|i| (i * 7 % 251) as u8).collect(),
        drops: Arc::clone(&drops),
        on: Arc::clone(&on),
    };
    (b, (drops, on))
}

fn block(len: usize, iova: Option<Iova>) -> (ExtBuf, Dropped) {
    let (b, d) = counted(len);
    (ExtBuf::from_owner(b, iova).unwrap(), d)
}

fn byte(i: usize) -> u8 {
    (i * 7 % 251) as u8
}

#[test]
fn slices_share_the_info_and_narrow_addr_len_iova() {
    let (ext, (drops, _)) = block(8192, Some(Iova(0x20_0000)));
    let s0 = ext.slice(0..100).unwrap();
    let s1 = ext.slice(100..=199).unwrap();
    let s2 = ext.slice(8000..).unwrap();
    let whole = ext.slice(..).unwrap();
    assert_eq!(ext.refcnt(), 5, "one reference per slice, on the one info");
    assert_eq!(s0.refcnt(), 5);
    assert_eq!(
        (s0.len(), s0.addr(), s0.iova()),
        (100, ext.addr(), Some(Iova(0x20_0000)))
    );
    assert_eq!(s1.len(), 100);
    assert_eq!(
        s1.addr().as_ptr() as usize - ext.addr().as_ptr() as usize,
        100
    );
    assert_eq!(s1.iova(), Some(Iova(0x20_0000 + 100)));
    assert_eq!((s2.len(), s2.iova()), (192, Some(Iova(0x20_0000 + 8000))));
    assert_eq!(
        (whole.len(), whole.addr(), whole.iova()),
        (8192, ext.addr(), ext.iova())
    );
    // A slice of a slice: offsets are the slice's own.
    let inner = s1.slice(10..20).unwrap();
    assert_eq!(
        inner.addr().as_ptr() as usize - ext.addr().as_ptr() as usize,
        110
    );
    assert_eq!(
        (inner.len(), inner.iova(), ext.refcnt()),
        (10, Some(Iova(0x20_0000 + 110)), 6)
    );
    // Released once, after the last of them, whatever the order.
    drop(ext);
    drop(whole);
    drop(s1);
    drop(s0);
    drop(s2);
    assert_eq!(
        drops.load(Ordering::Relaxed),
        0,
        "`e` still holds the buffer"
    );
    assert_eq!(inner.refcnt(), 1);
    drop(inner);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
}

#[test]
fn a_buffer_without_iova_gives_slices_without_iova() {
    let (ext, (drops, _)) = block(300, None);
    let s = ext.slice(10..20).unwrap();
    assert_eq!(s.iova(), None);
    drop((ext, s));
    assert_eq!(drops.load(Ordering::Relaxed), 1);
}

#[test]
fn mbufs_on_slices_see_exactly_their_bytes() {
    let pool = anon(16);
    let (ext, (drops, _)) = block(4096, Some(Iova(0x40_0000)));
    let frames = [(0usize, 60usize), (64, 1500), (1600, 2496)];
    let mut ms = Vec::new();
    for &(off, len) in &frames {
        let mut m = pool.alloc_default().unwrap();
        m.attach_extbuf(ext.slice(off..off + len).unwrap()).unwrap();
        assert_eq!((m.buf_len(), m.data_len(), m.tailroom()), (len, 0, len));
        // One byte more than the frame is refused; exactly the frame is not.
        assert_eq!(
            m.grow_tail(len + 1),
            Err(DataError::NoTailroom {
                len: len + 1,
                tailroom: len
            })
        );
        m.grow_tail(len).unwrap();
        assert_eq!(m.data_iova(), Some(Iova(0x40_0000 + off as u64)));
        let want: Vec<u8> = (off..off + len).map(byte).collect();
        assert_eq!(m.data(), &want[..]);
        // Shared with the other frames and the handle: not writable.
        assert!(m.data_mut().is_none());
        ms.push(m);
    }
    assert_eq!(ext.refcnt(), 4);
    drop(ext);
    ms.remove(1);
    ms.remove(0);
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    assert_eq!(ms[0].ext_refcnt(), Some(1));
    drop(ms);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert_full(&[&pool]);
}

#[test]
fn bad_ranges_are_typed_errors_and_take_no_reference() {
    let (ext, (drops, _)) = block(1000, None);
    assert_eq!(
        ext.slice(900..1001).unwrap_err(),
        ExtSliceError::OutOfRange {
            start: 900,
            end: 1001,
            len: 1000
        }
    );
    assert_eq!(
        ext.slice(1000..=1000).unwrap_err(),
        ExtSliceError::OutOfRange {
            start: 1000,
            end: 1001,
            len: 1000
        }
    );
    #[allow(clippy::reversed_empty_ranges)]
    let reversed = ext.slice(20..10).unwrap_err();
    assert_eq!(
        reversed,
        ExtSliceError::OutOfRange {
            start: 20,
            end: 10,
            len: 1000
        }
    );
    assert_eq!(ext.slice(5..5).unwrap_err(), ExtSliceError::Empty { at: 5 });
    assert_eq!(
        ext.slice(1000..).unwrap_err(),
        ExtSliceError::Empty { at: 1000 }
    );
    assert_eq!(
        ext.slice(..=usize::MAX).unwrap_err(),
        ExtSliceError::OutOfRange {
            start: 0,
            end: usize::MAX,
            len: 1000
        }
    );
    let e = ext.slice(1001..).unwrap_err();
    assert_eq!(
        e,
        ExtSliceError::OutOfRange {
            start: 1001,
            end: 1000,
            len: 1000
        }
    );
    let msg = e.to_string();
    assert!(
        msg.contains("1001..1000") && msg.contains("1000 B"),
        "{msg}"
    );
    // Into the crate's umbrella error, keeping the numbers.
    let m: MbufError = e.into();
    assert!(m.to_string().contains("1001..1000"), "{m}");
    assert!(std::error::Error::source(&m).is_some());
    assert_eq!(ext.refcnt(), 1, "no refused slice took a reference");
    drop(ext);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
}

#[test]
fn a_full_shared_count_refuses_the_slice() {
    let (ext, (drops, _)) = block(64, None);
    // 65,535 references: the handle and 65,534 slices.
    let held: Vec<ExtBuf> = (0..usize::from(u16::MAX) - 1)
        .map(|i| ext.slice(i % 64..=i % 64).unwrap())
        .collect();
    assert_eq!(ext.refcnt(), u16::MAX);
    assert_eq!(
        ext.slice(0..1).unwrap_err(),
        ExtSliceError::RefcntMax { max: u16::MAX }
    );
    assert_eq!(
        ext.refcnt(),
        u16::MAX,
        "the refused slice gave its increment back"
    );
    assert!(ext.slice(0..1).unwrap_err().to_string().contains("65535"));
    drop(held);
    assert_eq!(ext.refcnt(), 1);
    drop(ext);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
}

/// Frames of one buffer dropped on several threads: the release runs once,
/// on the thread that dropped the last one.
#[test]
fn slices_dropped_on_other_threads_release_once() {
    for round in 0..50 {
        let pool = anon(64);
        let (ext, (drops, on)) = block(6400, None);
        let mut per_thread: Vec<Vec<_>> = (0..4).map(|_| Vec::new()).collect();
        for i in 0..48 {
            let mut m = pool.alloc_default().unwrap();
            m.attach_extbuf(ext.slice(i * 128..i * 128 + 100).unwrap())
                .unwrap();
            m.grow_tail(100).unwrap();
            per_thread[(i + round) % 4].push((i, m));
        }
        drop(ext);
        let ids: Vec<ThreadId> = std::thread::scope(|s| {
            let hs: Vec<_> = per_thread
                .into_iter()
                .map(|ms| {
                    s.spawn(move || {
                        for (i, m) in ms {
                            let want: Vec<u8> = (i * 128..i * 128 + 100).map(byte).collect();
                            assert_eq!(m.data(), &want[..], "frame {i}");
                            drop(m);
                        }
                        std::thread::current().id()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(drops.load(Ordering::Relaxed), 1, "round {round}");
        let last = on.lock().unwrap().expect("dropped");
        assert!(
            ids.contains(&last),
            "released on one of the dropping threads"
        );
        assert_full(&[&pool]);
    }
}

#[test]
fn an_iova_that_would_wrap_gives_no_iova() {
    let (ext, _) = block(4096, Some(Iova(u64::MAX - 100)));
    assert_eq!(ext.slice(10..20).unwrap().iova(), Some(Iova(u64::MAX - 90)));
    assert_eq!(
        ext.slice(100..200).unwrap().iova(),
        None,
        "u64::MAX is no IOVA"
    );
    assert_eq!(ext.slice(200..300).unwrap().iova(), None, "past u64::MAX");
}

/// A region longer than an `ExtBuf` can be: sliced into frames anywhere in
/// it, up to `EXT_BUF_MAX` bytes each, released once after the last.
#[test]
fn a_region_of_a_mebibyte_is_sliced_into_frames() {
    let pool = anon(16);
    let (b, (drops, on)) = counted(1 << 20);
    let region = ExtRegion::from_owner(b, Some(Iova(0x1_0000_0000))).unwrap();
    assert_eq!((region.len(), region.refcnt()), (1 << 20, 1));
    assert_eq!(region.iova(), Some(Iova(0x1_0000_0000)));
    let at = [0usize, 65_536, 500_000, (1 << 20) - 1500];
    let mut ms = Vec::new();
    for &off in &at {
        let mut m = pool.alloc_default().unwrap();
        m.attach_extbuf(region.slice(off..off + 1500).unwrap())
            .unwrap();
        m.grow_tail(1500).unwrap();
        assert_eq!(m.data_iova(), Some(Iova(0x1_0000_0000 + off as u64)));
        let want: Vec<u8> = (off..off + 1500).map(byte).collect();
        assert_eq!(m.data(), &want[..]);
        ms.push(m);
    }
    // The largest slice is exactly an mbuf's largest buffer.
    let big = region.slice(100..100 + EXT_BUF_MAX).unwrap();
    assert_eq!(big.len(), EXT_BUF_MAX);
    assert_eq!(
        region.slice(100..101 + EXT_BUF_MAX).unwrap_err(),
        ExtSliceError::TooLong {
            len: EXT_BUF_MAX + 1,
            max: EXT_BUF_MAX
        }
    );
    assert_eq!(
        region.slice(((1 << 20) - 10)..=(1 << 20)).unwrap_err(),
        ExtSliceError::OutOfRange {
            start: (1 << 20) - 10,
            end: (1 << 20) + 1,
            len: 1 << 20
        }
    );
    assert_eq!(region.refcnt(), 6, "the handle, four frames, one big slice");
    drop(region);
    drop(big);
    // The frames go on other threads; the last one releases the region.
    std::thread::scope(|s| {
        for m in ms.drain(..) {
            s.spawn(move || drop(m));
        }
    });
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert_ne!(*on.lock().unwrap(), Some(std::thread::current().id()));
    assert_full(&[&pool]);
}

#[test]
fn a_raw_region_runs_its_callback_once_and_refuses_zero_length() {
    let freed = Arc::new(AtomicUsize::new(0));
    let len = 200_000;
    let buf: &'static mut [u8] = Box::leak(vec![3u8; len].into_boxed_slice());
    let addr = std::ptr::NonNull::new(buf.as_mut_ptr()).unwrap();
    let f = Arc::clone(&freed);
    // SAFETY: the leaked slice is used only through the region until the
    // callback rebuilds and frees it.
    let region = unsafe {
        ExtRegion::from_raw(addr, len, None, move |p| {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                p.as_ptr(),
                len,
            )));
            f.fetch_add(1, Ordering::Relaxed);
        })
    }
    .unwrap();
    let s = region.slice(150_000..).unwrap();
    assert_eq!((s.len(), s.iova()), (50_000, None));
    drop(region);
    assert_eq!(freed.load(Ordering::Relaxed), 0);
    drop(s);
    assert_eq!(freed.load(Ordering::Relaxed), 1);
    // SAFETY: nothing is accessed (the call fails before keeping `addr`).
    let e = unsafe { ExtRegion::from_raw(addr, 0, None, |_| ()) }.unwrap_err();
    assert!(matches!(e, ExtBufError::Empty));
    assert!(matches!(
        ExtRegion::from_owner(Vec::new(), None),
        Err(ExtBufError::Empty)
    ));
}

/// A slice counts as a share of the whole buffer: an mbuf on one is never
/// writable while another slice, a clone or a handle of the buffer (or of
/// the region) lives, whatever part each covers; once it is the last
/// reference it is, over its own bytes only (no headroom, no tailroom
/// past them).
#[test]
fn a_slice_is_writable_only_as_the_last_reference_and_only_over_its_bytes() {
    let pool = anon(8);
    let (owner, (drops, _)) = counted(1 << 17);
    let region = ExtRegion::from_owner(owner, None).unwrap();
    let mut frame = pool.alloc_default().unwrap();
    frame
        .attach_extbuf(region.slice(1000..1100).unwrap())
        .unwrap();
    frame.grow_tail(100).unwrap();
    // Another, disjoint, slice.
    let far = region.slice(100_000..100_010).unwrap();
    drop(region);
    assert!(frame.data_mut().is_none(), "another slice lives");
    assert!(frame.append(1).is_err() && frame.prepend(1).is_err());
    // A clone of the mbuf shares the slice's reference count too.
    drop(far);
    let clone = frame.clone_in(&pool).unwrap();
    assert!(frame.data_mut().is_none(), "a clone lives");
    // A handle taken from the mbuf is a share as well.
    drop(clone);
    let handle = frame.extbuf().unwrap();
    assert!(frame.data_mut().is_none(), "a handle lives");
    drop(handle);
    // The last reference: writable, exactly its 100 bytes.
    let bytes = frame.data_mut().expect("the last reference");
    assert_eq!(bytes.len(), 100);
    bytes.fill(0xee);
    assert_eq!(
        frame.prepend(1),
        Err(DataError::NoHeadroom {
            len: 1,
            headroom: 0
        })
    );
    assert!(frame.append(1).is_err(), "no tailroom past the slice");
    // A handle from the mbuf covers the slice, not the buffer.
    let handle = frame.extbuf().unwrap();
    assert_eq!((handle.len(), handle.addr()), (100, frame.buf_addr()));
    drop(handle);
    assert_eq!(frame.data(), &[0xee; 100][..]);
    drop(frame);
    assert_eq!(drops.load(Ordering::Relaxed), 1);
    assert_full(&[&pool]);
}
