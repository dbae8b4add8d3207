//! Pinned external-buffer pools (`test_pktmbuf_ext_pinned_buffer`): the
//! same behaviour suite as a normal pool, on areas of leaked heap memory and
//! of the provider's memory (with its IOVAs); each mbuf bound to its slice
//! for good; a pinned buffer still referenced by clones keeps its mbuf out
//! of the pool until the last reference goes; bad areas are typed errors.

#[macro_use]
mod common;

use std::collections::HashSet;

use common::{
    anon, assert_fresh, assert_full, chunk_area, leaked, leaked_area, mbuf_with, provider, Kind,
};
use pktmem_mbuf::{BuildError, PinnedArea, PktPool, HEADROOM};

behaviour_tests!(Kind::PINNED);

/// Every mbuf's buffer is its own slice of the areas (in order, across
/// several areas), with the area's IOVA plus the slice's offset; it keeps
/// that slice across frees, detaches and reallocation.
#[test]
fn each_mbuf_is_bound_to_its_slice() {
    const ELT: usize = 2048;
    let a = leaked_area(10, ELT);
    let (b, chunk) = chunk_area(6, ELT);
    let ranges = [
        (a.buffers(), 0usize),
        (b.buffers(), chunk.as_ptr().as_ptr() as usize),
    ];
    assert_eq!((ranges[0].0, ranges[1].0), (10, 6));
    let pool = PktPool::builder(16)
        .pinned([a, b])
        .build_on(provider())
        .unwrap();
    assert!(pool.is_pinned());
    assert_eq!(pool.data_room(), 0);
    let first: Vec<_> = (0..16).map(|_| pool.alloc_default().unwrap()).collect();
    let addrs: HashSet<usize> = first
        .iter()
        .map(|m| m.buf_addr().as_ptr() as usize)
        .collect();
    assert_eq!(addrs.len(), 16, "16 distinct slices");
    let chunk_lo = chunk.as_ptr().as_ptr() as usize;
    let in_chunk: Vec<_> = first
        .iter()
        .filter(|m| (chunk_lo..chunk_lo + 6 * ELT).contains(&(m.buf_addr().as_ptr() as usize)))
        .collect();
    assert_eq!(in_chunk.len(), 6, "six of them in the second area");
    for m in &in_chunk {
        let off = m.buf_addr().as_ptr() as usize - chunk_lo;
        assert_eq!(off % ELT, 0);
        if chunk.is_iova_contiguous() {
            if let Some(base) = chunk.iova() {
                assert_eq!(m.buf_iova().unwrap().0, base.0 + off as u64);
                assert_eq!(m.data_iova().unwrap().0, base.0 + (off + HEADROOM) as u64);
            }
        }
    }
    for m in &first {
        assert_fresh(m);
        assert!(m.is_external() && !m.is_indirect() && !m.is_direct());
        assert_eq!(
            (m.buf_len(), m.headroom(), m.tailroom()),
            (ELT, HEADROOM, ELT - HEADROOM)
        );
        assert_eq!(m.ext_refcnt(), Some(1));
    }
    let bound: HashSet<(usize, usize)> = first
        .iter()
        .map(|m| {
            (
                std::ptr::from_ref(m.header()) as usize,
                m.buf_addr().as_ptr() as usize,
            )
        })
        .collect();
    drop(first);
    // Detaching a pinned mbuf is nothing: its buffer is its own.
    let mut again: Vec<_> = (0..16).map(|_| pool.alloc_default().unwrap()).collect();
    for m in &mut again {
        m.append(10).unwrap().fill(9);
        m.detach();
        assert!(m.is_external());
        assert_eq!(m.data(), &[9; 10][..]);
    }
    let bound2: HashSet<(usize, usize)> = again
        .iter()
        .map(|m| {
            (
                std::ptr::from_ref(m.header()) as usize,
                m.buf_addr().as_ptr() as usize,
            )
        })
        .collect();
    assert_eq!(bound, bound2, "each header keeps its slice");
    drop(again);
    assert_full(&[&pool]);
}

/// An mbuf whose pinned buffer is still referenced by clones returns to its
/// pool only when the last reference goes, whoever drops it.
#[test]
fn a_referenced_pinned_buffer_keeps_its_mbuf_out() {
    let pool = common::ref_pool(Kind::PinnedLeaked, "pinned-held");
    let clones = anon(8);
    let mut m = mbuf_with(&pool, b"pinned");
    let addr = m.buf_addr();
    let c1 = m.clone_in(&clones).unwrap();
    let c2 = c1.clone_in(&clones).unwrap();
    assert!(c1.is_external() && c2.is_external());
    assert_eq!((m.ext_refcnt(), c1.ext_refcnt()), (Some(3), Some(3)));
    assert_eq!(m.refcnt(), 1);
    assert!(m.data_mut().is_none(), "shared: not writable");
    assert_eq!(m.append(1), Err(pktmem_mbuf::DataError::NotWritable));
    drop(m);
    pool.mempool().flush_default_cache();
    assert_eq!(pool.in_use_count(), 1, "held back by the clones");
    assert_eq!(c1.data(), b"pinned");
    assert_eq!(c2.buf_addr(), addr);
    drop(c1);
    pool.mempool().flush_default_cache();
    assert_eq!(pool.in_use_count(), 1);
    assert_eq!(c2.ext_refcnt(), Some(1));
    // The last reference goes on another thread: the mbuf goes back from
    // there.
    std::thread::spawn(move || {
        assert_eq!(c2.data(), b"pinned");
        drop(c2);
        // The pinned mbuf went back through this thread's default cache.
    })
    .join()
    .unwrap();
    assert_full(&[&pool, &clones]);
    // It comes back bound to its buffer, writable again.
    let mut all: Vec<_> = (0..pool.size())
        .map(|_| pool.alloc_default().unwrap())
        .collect();
    let again = all
        .iter_mut()
        .find(|m| m.buf_addr() == addr)
        .expect("its buffer is back");
    assert_fresh(again);
    assert!(again.data_mut().is_some());
    drop(all);
    assert_full(&[&pool]);
}

/// A clone into a pinned pool: the pinned pool's mbuf would have to drop
/// its own buffer to point at another; refused with a typed error, nothing
/// taken, the pinned mbufs unharmed.
#[test]
fn clone_into_a_pinned_pool_is_refused() {
    let pinned = common::pool_of(Kind::PinnedLeaked, "pinned-dst", 4, 0, 2048);
    let normal = anon(4);
    let m = mbuf_with(&normal, b"data");
    assert_eq!(
        m.clone_in(&pinned).unwrap_err(),
        pktmem_mbuf::CloneError::PinnedPool
    );
    let mut cache = pinned.cache();
    let e = m.clone_in_cache(&pinned, &mut cache).unwrap_err();
    assert_eq!(e, pktmem_mbuf::CloneError::PinnedPool);
    assert!(e.to_string().contains("pinned"), "{e}");
    drop(cache);
    assert_eq!(m.refcnt(), 1);
    assert_full(&[&pinned]);
    let all: Vec<_> = (0..4).map(|_| pinned.alloc_default().unwrap()).collect();
    for p in &all {
        assert!(p.is_external(), "a pinned mbuf lost its pinned buffer");
        assert_eq!(p.buf_len(), 2048);
        assert_fresh(p);
    }
    drop(all);
    // A copy into a pinned pool is fine: it writes its own buffers.
    let c = m.copy(&pinned, 0, 4).unwrap();
    assert!(c.is_external());
    assert_eq!(c.data(), b"data");
    drop((c, m));
    assert_full(&[&pinned, &normal]);
}

/// Attaching a pinned pool's mbuf to another buffer is refused (its buffer
/// is its own for good); attaching a normal mbuf to a pinned one shares the
/// pinned buffer.
#[test]
fn attach_and_pinned_buffers() {
    let pinned = common::pool_of(Kind::PinnedLeaked, "pinned-attach", 4, 0, 2048);
    let normal = anon(4);
    let d = mbuf_with(&normal, b"direct");
    let mut p = mbuf_with(&pinned, b"pin");
    let before = common::snapshot(&p);
    assert_eq!(
        p.attach(&d),
        Err(pktmem_mbuf::AttachErrorKind::AlreadyAttached)
    );
    assert_eq!(common::snapshot(&p), before);
    let e = p
        .attach_extbuf(pktmem_mbuf::ExtBuf::from_owner(vec![0u8; 64], None).unwrap())
        .unwrap_err();
    assert_eq!(e.kind, pktmem_mbuf::AttachErrorKind::AlreadyAttached);
    assert_eq!(e.ext.refcnt(), 1, "the reference comes back");
    drop(e);
    let mut i = normal.alloc_default().unwrap();
    i.attach(&p).unwrap();
    assert!(i.is_external());
    assert_eq!(i.data(), b"pin");
    assert_eq!(p.ext_refcnt(), Some(2));
    i.detach();
    assert!(i.is_direct());
    assert_eq!(p.ext_refcnt(), Some(1));
    drop((i, p, d));
    assert_full(&[&pinned, &normal]);
}

/// Bad areas: element sizes of 0 or past 16 bits, lengths not a multiple of
/// the element size, too few buffers: typed errors naming the area and the
/// numbers.
#[test]
fn bad_pinned_areas_are_typed_errors() {
    let mem = leaked(64 * 1024);
    let area = |len, elt| {
        // SAFETY: leaked memory used by no one else; pools that fail to
        // build use none of it, the one that builds is its only user.
        unsafe { PinnedArea::new(mem, None, len, elt) }
    };
    let good = || area(4 * 2048, 2048);
    for (areas, index) in [
        (vec![area(4096, 0)], 0),
        (vec![good(), area(70_000, 70_000)], 1),
        (vec![good(), good(), area(4097, 2048)], 2),
    ] {
        let e = PktPool::builder(4)
            .pinned(areas)
            .build_anonymous()
            .unwrap_err();
        assert!(
            matches!(e, BuildError::BadPinnedArea { index: i, .. } if i == index),
            "{e:?}"
        );
        assert!(e.to_string().contains(&format!("area {index}")), "{e}");
    }
    let e = PktPool::builder(9)
        .pinned([good(), good()])
        .build_anonymous()
        .unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::PinnedAreasTooSmall {
                needed: 9,
                available: 8
            }
        ),
        "{e:?}"
    );
    assert!(
        e.to_string().contains('9') && e.to_string().contains('8'),
        "{e}"
    );
    let e = PktPool::builder(1)
        .pinned([])
        .build_anonymous()
        .unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::PinnedAreasTooSmall {
                needed: 1,
                available: 0
            }
        ),
        "{e:?}"
    );
    // Private sizes follow the same rule as a normal pool's.
    let e = PktPool::builder(4)
        .private_size(12)
        .pinned([good()])
        .build_anonymous()
        .unwrap_err();
    assert!(
        matches!(e, BuildError::PrivateSizeUnaligned { private_size: 12 }),
        "{e:?}"
    );
    // A good one with a private area.
    let pool = PktPool::builder(4)
        .private_size(16)
        .pinned([good()])
        .build_anonymous()
        .unwrap();
    let m = pool.alloc_default().unwrap();
    assert_eq!(m.private_area().len(), 16);
    assert_fresh(&m);
}

/// A pinned pool over a registered memory map: each buffer's IOVA is the
/// registration's; the map stays while the pool's mbufs are out (even
/// after the last pool handle goes), and its registration cannot be
/// removed meanwhile.
#[test]
fn pinned_over_a_registered_map() {
    const ELT: usize = 2048;
    let map = memmap2::MmapMut::map_anon(16 * ELT).unwrap();
    let at = map.as_ptr().cast_mut();
    let iovas: Vec<pktmem_hugemem::Iova> = (0..8)
        .map(|i| pktmem_hugemem::Iova(common::MMAP_IOVA + i * 4096))
        .collect();
    let reg = provider()
        .register_external_owned(map, 4096, Some(&iovas))
        .unwrap();
    // SAFETY: the registered map is used only through this area's pool.
    let area =
        unsafe { PinnedArea::from_external(provider(), at, 16 * ELT, ELT, "pinned test") }.unwrap();
    assert_eq!(area.buffers(), 16);
    let pool = PktPool::builder(16)
        .pinned([area])
        .build_on(provider())
        .unwrap();
    assert!(reg.unregister().is_err(), "the pool holds a lease");
    let mut ms: Vec<_> = (0..16).map(|_| pool.alloc_default().unwrap()).collect();
    for m in &mut ms {
        let off = m.buf_addr().as_ptr() as usize - at as usize;
        assert_eq!(off % ELT, 0);
        assert_eq!(m.buf_iova().unwrap().0, common::MMAP_IOVA + off as u64);
        m.append(4)
            .unwrap()
            .copy_from_slice(&(off as u32).to_le_bytes());
        assert_eq!(
            m.iova_at(2).unwrap().0,
            common::MMAP_IOVA + (off + HEADROOM + 2) as u64
        );
    }
    drop(reg);
    drop(pool);
    // The mbufs keep their pool, and so the lease and the map.
    for m in &ms {
        let off = m.buf_addr().as_ptr() as usize - at as usize;
        assert_eq!(m.data(), (off as u32).to_le_bytes());
    }
    drop(ms);
    // An element size that does not divide the length, or a range nobody
    // registered: typed errors.
    // SAFETY: refused, so no area exists to reach the memory.
    let e = unsafe { PinnedArea::from_external(provider(), at, 100, 0, "x") }.unwrap_err();
    assert!(
        matches!(
            e,
            pktmem_mbuf::PinnedAreaError::BadElementSize {
                elt_size: 0,
                len: 100
            }
        ),
        "{e:?}"
    );
    let mut other = vec![0u8; 8192];
    // SAFETY: refused, so no area exists to reach the memory.
    let e = unsafe { PinnedArea::from_external(provider(), other.as_mut_ptr(), 4096, 2048, "x") }
        .unwrap_err();
    assert!(matches!(e, pktmem_mbuf::PinnedAreaError::Lease(_)), "{e:?}");
}

/// A buffer spanning pages whose IOVAs do not follow each other is refused
/// with its index; buffers inside one page, or over contiguous pages, are
/// fine.
#[test]
fn buffers_across_discontiguous_pages_are_refused() {
    let map = memmap2::MmapMut::map_anon(4 * 4096).unwrap();
    let at = map.as_ptr().cast_mut();
    // Pages 0 and 1 contiguous, page 2 elsewhere, page 3 after page 2.
    let base = common::MMAP_IOVA + (1 << 30);
    let iovas =
        [base, base + 4096, base + (1 << 20), base + (1 << 20) + 4096].map(pktmem_hugemem::Iova);
    let _reg = provider()
        .register_external_owned(map, 4096, Some(&iovas))
        .unwrap();
    // 2 buffers of 8 KiB: the first spans pages 0-1 (fine), the second 2-3.
    // SAFETY: the registered map is used only through this area's pool.
    let a = unsafe { PinnedArea::from_external(provider(), at, 4 * 4096, 8192, "t") }.unwrap();
    assert_eq!(a.buffers(), 2);
    drop(a);
    // Buffers of 6 KiB: the second spans pages 1-2, which do not follow.
    // SAFETY: refused, so no area exists to reach the memory.
    let e = unsafe { PinnedArea::from_external(provider(), at, 2 * 6144, 6144, "t") }.unwrap_err();
    assert!(
        matches!(
            e,
            pktmem_mbuf::PinnedAreaError::NotIovaContiguous { buffer: 1 }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("buffer 1"), "{e}");
}

/// Pages of a heap-backed provider in use (its own lists, not external).
fn used_pages(p: &pktmem_hugemem::Provider) -> usize {
    let mut n = 0;
    p.walk_pages(|pg| n += usize::from(pg.in_use && !pg.external));
    n
}

/// `from_chunk`: the pool owns the chunk (its pages stay in use while the
/// pool or any of its mbufs lives, and go back after), each buffer's IOVA
/// is the provider's for its address, and bad element sizes are typed
/// errors that give the chunk back.
#[test]
fn from_chunk_owns_the_chunk_and_takes_iovas_from_the_provider() {
    const ELT: usize = 2048;
    let p = pktmem_hugemem::Provider::builder()
        .heap_backed(1 << 20)
        .build()
        .unwrap();
    assert_eq!(used_pages(&p), 0);
    let chunk = p.alloc(12 * ELT).unwrap();
    let base = chunk.as_ptr().as_ptr() as usize;
    let area = PinnedArea::from_chunk(chunk, ELT).unwrap();
    assert_eq!(
        (area.len(), area.elt_size(), area.buffers()),
        (12 * ELT, ELT, 12)
    );
    assert_eq!(area.addr().as_ptr() as usize, base);
    let pool = PktPool::builder(12)
        .pinned([area])
        .build_anonymous()
        .unwrap();
    assert_eq!(used_pages(&p), 6, "the pool holds the chunk's six pages");
    let ms: Vec<_> = (0..12).map(|_| pool.alloc_default().unwrap()).collect();
    let mut offs: Vec<usize> = ms
        .iter()
        .map(|m| m.buf_addr().as_ptr() as usize - base)
        .collect();
    offs.sort_unstable();
    assert_eq!(offs, (0..12).map(|i| i * ELT).collect::<Vec<_>>());
    for m in &ms {
        assert!(m.is_external() && m.buf_len() == ELT);
        assert_eq!(m.buf_iova(), p.virt2iova(m.buf_addr().as_ptr()));
        assert!(m.buf_iova().is_some(), "heap memory has IOVA = VA");
    }
    let kept = ms.into_iter().next().unwrap();
    drop(pool);
    assert_eq!(
        used_pages(&p),
        6,
        "an mbuf out keeps the pool, and the chunk"
    );
    drop(kept);
    assert_eq!(used_pages(&p), 0, "pool gone: the chunk went back");

    for (elt, len) in [(0, 4096), (3000, 8192), (65_536, 65_536 * 2)] {
        let c = p.alloc(len).unwrap();
        let e = PinnedArea::from_chunk(c, elt).unwrap_err();
        assert!(
            matches!(e, pktmem_mbuf::PinnedAreaError::BadElementSize { elt_size, len: l } if elt_size == elt && l == len),
            "{e}"
        );
        assert_eq!(used_pages(&p), 0, "the refused chunk went back");
    }
}

/// A buffer of a chunk that spans pages whose IOVAs do not follow each
/// other is refused, naming the buffer; buffers inside pages get each
/// page's own IOVA.
#[test]
fn from_chunk_refuses_a_buffer_across_an_iova_jump() {
    use pktmem_hugemem::{AllocRequest, Iova};
    let p = pktmem_hugemem::Provider::builder()
        .heap_backed(1 << 20)
        .build()
        .unwrap();
    let heap = p.create_heap("jumps");
    let map = memmap2::MmapMut::map_anon(4 * 4096).unwrap();
    let at = map.as_ptr() as usize;
    // Pages 0-1 follow on, page 2 jumps, page 3 follows page 2.
    let iovas = [0x10000, 0x11000, 0x50000, 0x51000].map(Iova);
    heap.add_owned(map, 4096, Some(&iovas)).unwrap();
    {
        let c = heap.alloc(&AllocRequest::new(12_000)).unwrap();
        assert_eq!(c.as_ptr().as_ptr() as usize, at);
        let e = PinnedArea::from_chunk(c, 3000).unwrap_err();
        assert!(
            matches!(
                e,
                pktmem_mbuf::PinnedAreaError::NotIovaContiguous { buffer: 2 }
            ),
            "buffer 2 (bytes 6000..9000) crosses from page 1 into page 2: {e}"
        );
    }
    let c = heap.alloc(&AllocRequest::new(4 * 4096)).unwrap();
    let area = PinnedArea::from_chunk(c, 2048).unwrap();
    let pool = PktPool::builder(8)
        .pinned([area])
        .build_anonymous()
        .unwrap();
    let ms: Vec<_> = (0..8).map(|_| pool.alloc_default().unwrap()).collect();
    for m in &ms {
        let off = (m.buf_addr().as_ptr() as usize - at) as u64;
        let page = iovas[(off / 4096) as usize].0;
        assert_eq!(
            m.buf_iova(),
            Some(Iova(page + off % 4096)),
            "buffer at {off}"
        );
    }
    drop(ms);
    assert_full(&[&pool]);
}
