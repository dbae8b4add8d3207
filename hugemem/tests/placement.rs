//! Where chunks land: first fit honouring alignment above the page size,
//! large chunks from scattered pages (fragmentation), IOVA-contiguous
//! requests, and random alloc/free checked against a page model.

use pktmem_hugemem::{
    virt2phys, AllocError, AllocRequest, Chunk, Iova, IovaMode, PageSize, Provider,
};

mod common;
use common::{free_2m, heap_provider, skip, MB2};

#[test]
fn fragmentation_large_chunk_from_scattered_pages() {
    if free_2m() < 80 {
        skip(format_args!(
            "fragmentation hugepage assertion: fewer than 80 free 2 MiB pages; small pages instead"
        ));
    }
    let p = Provider::builder().quiet(true).build().unwrap();
    let ps = if free_2m() >= 80 { MB2 } else { 4096 };
    let req = |n: usize| {
        AllocRequest::new(n * ps)
            .page_size(PageSize::from_bytes(ps).unwrap())
            .require_page_size(true)
    };
    let singles: Vec<_> = (0..64).map(|_| p.alloc_with(&req(1)).unwrap()).collect();
    let mut kept = Vec::new();
    for (i, c) in singles.into_iter().enumerate() {
        if i % 2 == 0 {
            kept.push(c);
        }
    }
    assert_eq!(p.mapped_bytes(), 32 * ps);
    let big = p.alloc_with(&req(32)).unwrap();
    assert_eq!(big.mapped_len(), 32 * ps);
    assert_eq!(p.mapped_bytes(), 64 * ps);
    let segs: Vec<_> = big.segments().collect();
    assert_eq!(segs.iter().map(|s| s.len).sum::<usize>(), 32 * ps);
    for run in &segs {
        let iova = run.iova.expect("the provider's pages have IOVAs");
        for off in (0..run.len).step_by(ps) {
            let expect = match p.iova_mode() {
                IovaMode::Pa => Iova(virt2phys(run.va + off).unwrap()),
                IovaMode::Va => Iova((run.va + off) as u64),
            };
            assert_eq!(iova.offset(off as u64), expect);
        }
    }
    if p.iova_mode() == IovaMode::Va {
        assert!(big.is_iova_contiguous());
    }
    eprintln!(
        "fragmentation: 32 pages of {ps} formed {} IOVA runs ({:?} mode)",
        segs.len(),
        p.iova_mode()
    );
    drop(big);
    // IOVA-contiguous requests: in VA mode always; in PA mode either
    // contiguous or the typed error, and a single page always.
    let one = p.alloc_with(&req(1).iova_contiguous(true)).unwrap();
    assert!(one.is_iova_contiguous());
    match p.alloc_with(&req(8).iova_contiguous(true)) {
        Ok(c) => {
            assert!(c.is_iova_contiguous());
            assert_eq!(c.segments().count(), 1);
        }
        Err(AllocError::NotIovaContiguous { segments, .. }) => {
            assert_eq!(p.iova_mode(), IovaMode::Pa);
            assert!(segments > 1);
        }
        Err(e) => panic!("{e}"),
    }
    drop((kept, one));
    assert_eq!(p.mapped_bytes(), 0);
}

#[test]
fn differential_against_page_model() {
    // Random alloc/free on a heap provider with a kept minimum, checked
    // after every step against a model: max(used, min_keep) <= mapped <=
    // used + min_keep, chunks never overlap, every chunk keeps its bytes.
    let min_keep = 6 * 4096;
    let p = Provider::builder()
        .heap_backed(256 * 4096)
        .min_keep(min_keep)
        .build()
        .unwrap();
    let mut live: Vec<(Chunk, u8)> = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    let mut high = min_keep;
    for step in 0..2000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if live.len() < 12 && x % 5 < 3 {
            let len = 1 + (x >> 16) as usize % (9 * 4096);
            let mut c = p.alloc(len).unwrap();
            let tag = step as u8 | 1;
            c.as_mut_slice().fill(tag);
            live.push((c, tag));
        } else if !live.is_empty() {
            let (c, tag) = live.swap_remove((x >> 8) as usize % live.len());
            assert!(c.as_slice().iter().all(|&b| b == tag));
        }
        let used: usize = live.iter().map(|(c, _)| c.mapped_len()).sum();
        high = high.max(used);
        let mapped = p.mapped_bytes();
        assert!(
            mapped >= used.max(min_keep),
            "step {step}: {mapped} < {used}"
        );
        // Free pages beyond the minimum go back at once: at most `min_keep`
        // bytes are mapped and not in use.
        assert!(mapped <= used + min_keep, "step {step}: {mapped}");
        let mut ranges: Vec<(usize, usize)> = live
            .iter()
            .map(|(c, _)| (c.as_ptr().as_ptr() as usize, c.mapped_len()))
            .collect();
        ranges.sort_unstable();
        for w in ranges.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0, "step {step}: overlap");
        }
    }
    drop(live);
    assert_eq!(p.mapped_bytes(), min_keep, "exactly the minimum stays");
    assert!(high > min_keep);
}

#[test]
fn alignment_above_page_size() {
    // Heap memory is only 4 KiB aligned: the provider must still place
    // chunks at VAs that are multiples of the alignment.
    let p = heap_provider();
    let _pad = p.alloc(4096).unwrap();
    for align in [8192usize, 65536, 1 << 20] {
        let c = p.alloc_with(&AllocRequest::new(5000).align(align)).unwrap();
        assert_eq!(c.as_ptr().as_ptr() as usize % align, 0, "align {align}");
    }
}
