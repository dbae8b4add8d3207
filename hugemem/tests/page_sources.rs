//! The optional page sources (anonymous `MAP_HUGETLB`, a hugetlbfs
//! directory), running out after k pages, and the IOVA-mode override.
// Short names for the provider, chunks, blocks and the random state,
// as the comments that explain each test use them.
#![allow(clippy::many_single_char_names)]

use std::process::Command;

use pktmem_hugemem::{
    process_hugetlb_bytes, AllocRequest, Chunk, Iova, IovaMode, Node, PageSize, PageSource,
    Provider,
};

mod common;
use common::{free_2m, serial, skip, MB2};

fn touch(c: &mut Chunk) {
    let base = c.as_ptr().as_ptr() as usize;
    for (i, b) in c.as_mut_slice().iter_mut().enumerate().step_by(4096) {
        *b = (base + i) as u8 | 1;
    }
}

#[test]
fn anon_hugetlb_source() {
    let _s = serial();
    let p = Provider::builder()
        .source(PageSource::AnonHugetlb)
        .allow_small_page_fallback(false)
        .build()
        .unwrap();
    if free_2m() < 8 {
        skip(format_args!(
            "anon_hugetlb_source: fewer than 8 free 2 MiB pages"
        ));
        assert!(p.alloc(8 * MB2).is_err());
        return;
    }
    let before = process_hugetlb_bytes().unwrap();
    let mut c = p.alloc(4 * MB2).unwrap();
    touch(&mut c);
    assert_eq!(c.page_size(), MB2);
    assert_eq!(process_hugetlb_bytes().unwrap(), before + 4 * MB2);
    for pg in c.pages() {
        assert_eq!(p.virt2iova(pg.va as *const u8), pg.iova);
        assert!(pg.iova.is_some());
    }
    assert!(p.regions().is_empty(), "anonymous pages are not shareable");
    drop(c);
    assert_eq!(process_hugetlb_bytes().unwrap(), before);
}

/// A private hugetlbfs mount limited to 8 MiB, unmounted on drop.
struct Mount(std::path::PathBuf);
impl Mount {
    fn new() -> Option<Mount> {
        let dir = std::env::temp_dir().join(format!("pktmem-hugetlbfs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "hugetlbfs", "-o", "size=8M,pagesize=2M", "none"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Mount(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }
}
impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn hugetlbfs_source_runs_out_after_k_pages_then_falls_back() {
    let _s = serial();
    if free_2m() < 8 {
        skip(format_args!(
            "hugetlbfs source: fewer than 8 free 2 MiB pages"
        ));
        return;
    }
    let Some(m) = Mount::new() else {
        skip(format_args!(
            "hugetlbfs source: cannot mount hugetlbfs (not root?)"
        ));
        return;
    };
    {
        let p = Provider::builder()
            .source(PageSource::Hugetlbfs(m.0.clone()))
            .quiet(true)
            .build()
            .unwrap();
        let mut a = p.alloc(3 * MB2).unwrap();
        touch(&mut a);
        assert_eq!(a.page_size(), MB2);
        assert!(p.info().fallback.is_none());
        // One page left in the 8 MiB mount: two do not fit, small pages do.
        let mut b = p.alloc(2 * MB2).unwrap();
        touch(&mut b);
        assert_eq!(b.page_size(), 4096);
        let why = p.info().fallback.unwrap();
        assert!(
            why.contains("ran out of 2 MiB hugepages after 3 page(s)"),
            "{why}"
        );
        assert_eq!(p.info().fallback_count, 1);
        // The failed attempt left no page behind: the last one is still there.
        let c = p
            .alloc_with(
                &AllocRequest::new(MB2)
                    .page_size(PageSize::Huge2M)
                    .require_page_size(true),
            )
            .unwrap();
        assert_eq!(c.page_size(), MB2);
        assert_eq!(p.regions().len(), 2, "one hugetlbfs run, one small run");
        drop((a, b, c));
        assert_eq!(p.mapped_bytes(), 0);
    }
}

#[test]
fn iova_mode_override_va() {
    let _s = serial();
    let p = Provider::builder()
        .iova_mode(IovaMode::Va)
        .quiet(true)
        .build()
        .unwrap();
    assert_eq!(p.iova_mode(), IovaMode::Va);
    let c = p
        .alloc_with(&AllocRequest::new(3 * MB2).iova_contiguous(true))
        .unwrap();
    assert!(c.is_iova_contiguous());
    for pg in c.pages() {
        assert_eq!(pg.iova, Some(Iova(pg.va as u64)));
        assert_eq!(
            pg.node,
            if std::path::Path::new("/sys/devices/system/node/node1").exists() {
                None
            } else {
                Some(Node::new(0))
            }
        );
    }
    assert_eq!(
        p.iova2virt(c.iova_at(12345).unwrap()).unwrap().as_ptr() as usize,
        c.as_ptr().as_ptr() as usize + 12345
    );
}
