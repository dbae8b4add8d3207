//! `AllocRequest::fault_threads`: the hugepages of a chunk faulted in from
//! several threads are all present at once (the process's `HugetlbPages`
//! grows by the chunk before anything touches it), read as zero, have the
//! IOVAs the page map gives, land on the requested node, and go back to the
//! system on drop; running out is still an allocation error that leaves
//! nothing behind. Also for anonymous hugetlb backing.
//!
//! Needs free 2 MiB hugepages; without them it says SKIP.

mod common;

use common::{free_2m, huge2m_provider, serial, skip, MB2};
use pktmem_hugemem::{
    node_of, process_hugetlb_bytes, virt2phys, AllocError, AllocRequest, Iova, IovaMode, Node,
    PageSize, PageSource, Provider,
};

/// Allocates `pages` 2 MiB pages with `threads` fault threads and checks
/// them: present (counted by the kernel) before any access, zero, IOVAs
/// right; all gone after the drop.
fn check_parallel_chunk(provider: &Provider, pages: usize, threads: usize) {
    let before = process_hugetlb_bytes().expect("HugetlbPages in /proc/self/status");
    let req = AllocRequest::new(pages * MB2)
        .page_size(PageSize::Huge2M)
        .require_page_size(true)
        .fault_threads(threads);
    let mut c = provider.alloc_with(&req).unwrap();
    // Counted before this thread touched a byte: the threads faulted them.
    assert_eq!(
        process_hugetlb_bytes(),
        Some(before + pages * MB2),
        "all pages present after the allocation"
    );
    assert_eq!(c.page_size(), MB2);
    assert!(
        c.as_slice().iter().all(|&b| b == 0),
        "fresh pages read zero"
    );
    let mut n = 0;
    for page in c.pages() {
        let want = match provider.iova_mode() {
            IovaMode::Pa => Iova(virt2phys(page.va).unwrap()),
            IovaMode::Va => Iova(page.va as u64),
        };
        assert_eq!(page.iova, Some(want), "page {n} IOVA");
        assert_eq!(
            provider.virt2iova((page.va + 12345) as *const u8),
            Some(want.offset(12345))
        );
        n += 1;
    }
    assert_eq!(n, pages);
    c.as_mut_slice().fill(0x5a);
    drop(c);
    assert_eq!(provider.mapped_bytes(), 0);
    assert_eq!(process_hugetlb_bytes(), Some(before), "the pages went back");
}

#[test]
fn pages_faulted_by_several_threads_are_present_zero_and_translated() {
    let _g = serial();
    let Some(provider) = huge2m_provider("parallel fault (memfd)", 40) else {
        return;
    };
    for threads in [2, 3, 64] {
        check_parallel_chunk(&provider, 33, threads);
    }
    // More threads than pages, and one page.
    check_parallel_chunk(&provider, 1, 4);
}

#[test]
fn anonymous_hugetlb_backing_faults_in_parallel_too() {
    let _g = serial();
    if free_2m() < 40 {
        skip(format_args!(
            "parallel fault (anonymous hugetlb): too few free 2 MiB pages"
        ));
        return;
    }
    let provider = Provider::builder()
        .source(PageSource::AnonHugetlb)
        .page_sizes(&[PageSize::Huge2M])
        .allow_small_page_fallback(false)
        .quiet(true)
        .build()
        .unwrap();
    check_parallel_chunk(&provider, 17, 2);
}

#[test]
fn running_out_is_an_error_and_leaves_nothing() {
    let _g = serial();
    let Some(provider) = huge2m_provider("parallel fault, running out", 8) else {
        return;
    };
    let before = process_hugetlb_bytes();
    // More 2 MiB pages than the system has (the total, not only the free).
    let total = pktmem_hugemem::inventory()
        .iter()
        .find(|h| h.page_size == MB2)
        .map_or(0, |h| h.total) as usize;
    let req = AllocRequest::new((total + 8) * MB2)
        .page_size(PageSize::Huge2M)
        .require_page_size(true)
        .fault_threads(2);
    let e = provider.alloc_with(&req).unwrap_err();
    assert!(matches!(e, AllocError::NoPages { .. }), "{e}");
    assert_eq!(provider.mapped_bytes(), 0);
    assert_eq!(process_hugetlb_bytes(), before, "nothing left faulted in");
    // And the provider still works.
    check_parallel_chunk(&provider, 4, 2);
}

#[test]
fn node_bound_request_faults_on_that_node_from_every_thread() {
    let _g = serial();
    let Some(provider) = huge2m_provider("parallel fault on node 0", 24) else {
        return;
    };
    let req = AllocRequest::new(16 * MB2)
        .page_size(PageSize::Huge2M)
        .require_page_size(true)
        .node(Node::new(0))
        .fault_threads(2);
    let c = provider.alloc_with(&req).unwrap();
    for page in c.pages() {
        // `None`: a kernel without NUMA support says nothing.
        if let Some(n) = node_of(page.va) {
            assert_eq!(n, Node::new(0), "page at {:#x}", page.va);
        }
    }
}
