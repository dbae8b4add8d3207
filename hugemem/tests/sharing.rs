//! Sharing groundwork: the parent exports its region table and passes the
//! memfds to a child process (this test binary again), which maps every
//! region at the same VA and checks what the parent wrote; the child's
//! write comes back through the shared pages.

use std::fmt::Write as _;
use std::os::fd::RawFd;
use std::process::Command;

use pktmem_hugemem::{AllocRequest, Provider};

mod common;
use common::skip;

const ENV: &str = "PKTMEM_HUGEMEM_CHILD_REGIONS";
const SKIP_CODE: i32 = 77;

fn pattern(va: usize) -> u8 {
    ((va >> 12) % 251) as u8 ^ 0xa5
}

#[test]
fn child_maps_regions_at_same_va() {
    let p = Provider::builder().quiet(true).build().unwrap();
    let mut chunks = vec![
        p.alloc(3 << 20).unwrap(),
        p.alloc_with(&AllocRequest::new(5000)).unwrap(),
    ];
    let hole = p.alloc(1).unwrap();
    chunks.push(p.alloc(1 << 20).unwrap());
    drop(hole); // leaves a gap: more than one region
    for c in &mut chunks {
        let base = c.as_ptr().as_ptr() as usize;
        for (i, b) in c.as_mut_slice().iter_mut().enumerate() {
            *b = pattern(base + i);
        }
    }
    let regions = p.regions();
    assert!(regions.len() >= 2, "{regions:?}");
    let covered: usize = regions.iter().map(|r| r.len).sum();
    assert_eq!(covered, p.mapped_bytes());
    let mut table = String::new();
    for r in &regions {
        // Let the fd survive exec in the child.
        // SAFETY: F_SETFD on an fd the provider keeps open.
        let rc = unsafe { libc::fcntl(r.fd as RawFd, libc::F_SETFD, 0) };
        assert_eq!(rc, 0);
        write!(table, "{}:{}:{}:{};", r.fd, r.offset, r.va, r.len).unwrap();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--ignored", "--nocapture"])
        .env(ENV, &table)
        .output()
        .unwrap();
    for r in &regions {
        // Close-on-exec again, so later spawns do not inherit the fds.
        // SAFETY: F_SETFD on an fd the provider keeps open.
        unsafe { libc::fcntl(r.fd as RawFd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(SKIP_CODE) {
        skip(format_args!("child mapping check: {stderr}"));
        return;
    }
    assert!(out.status.success(), "child failed: {stderr}");
    // The child wrote the region index at each region's first byte.
    for (i, r) in regions.iter().enumerate() {
        // SAFETY: the region is mapped by the provider and owned by `chunks`.
        let b = unsafe { *(r.va as *const u8) };
        assert_eq!(b, i as u8, "child's write visible at {:#x}", r.va);
    }
    drop(chunks);
}

/// Run by `child_maps_regions_at_same_va` in a child process.
#[test]
#[ignore = "run by child_maps_regions_at_same_va in a child process"]
fn child_entry() {
    let table = std::env::var(ENV).expect("run by the parent test");
    for (i, ent) in table.split(';').filter(|s| !s.is_empty()).enumerate() {
        let f: Vec<usize> = ent.split(':').map(|x| x.parse().unwrap()).collect();
        let (fd, off, va, len) = (f[0] as RawFd, f[1], f[2], f[3]);
        // SAFETY: maps the parent's pages at an address nothing else uses
        // here (MAP_FIXED_NOREPLACE refuses otherwise).
        let got = unsafe {
            libc::mmap(
                va as *mut _,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED_NOREPLACE,
                fd,
                off as libc::off_t,
            )
        };
        if got == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EEXIST) {
                eprintln!("address {va:#x} is taken in the child");
                std::process::exit(SKIP_CODE);
            }
            panic!("mmap {va:#x}+{len}: {e}");
        }
        assert_eq!(got as usize, va, "mapped at the same VA");
        // SAFETY: just mapped, `len` bytes readable and writable.
        let s = unsafe { std::slice::from_raw_parts_mut(va as *mut u8, len) };
        // Chunk bytes carry the pattern; the tail of a partly used last page is zero.
        let mut checked = 0;
        for (k, b) in s.iter().enumerate() {
            if *b != 0 || pattern(va + k) == 0 {
                assert_eq!(*b, pattern(va + k), "byte at {:#x}", va + k);
                checked += 1;
            }
        }
        assert!(
            checked >= 4096.min(len),
            "region {i} held the parent's bytes"
        );
        s[0] = i as u8;
    }
}
