//! The address sanitizer sees the provider's allocators: a `SmallHeap`
//! block used after free or past its length, and a provider chunk used
//! after free, each end the process with a "use-after-poison" report. Each
//! misuse runs in a child process (this test binary again, one `#[ignore]`d
//! entry selected by an environment variable); the parent checks the child
//! died of it. The last test checks memory handed out again is clean.
//!
//! Only under `--cfg pktmem_asan` with `-Zsanitizer=address` (`.ci/sanitizers`);
//! without the cfg this file compiles to nothing.
#![cfg(pktmem_asan)]

use std::process::Command;

use pktmem_hugemem::{Provider, SmallHeap};

const ENV: &str = "PKTMEM_HUGEMEM_ASAN_CHILD";

/// Runs `child_entry` with `misuse` and asserts the sanitizer stopped it.
fn expect_poison_report(misuse: &str) {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["child_entry", "--exact", "--ignored", "--nocapture"])
        .env(ENV, misuse)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "{misuse}: the child survived the misuse; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains("ERROR: AddressSanitizer: use-after-poison"),
        "{misuse}: no use-after-poison report; stderr:\n{stderr}"
    );
}

/// One byte read the sanitizer checks (a volatile read is not optimised away).
fn touch(p: *const u8) -> u8 {
    // SAFETY: the callers point into live mappings (their own provider's
    // pages or heap); only the sanitizer's shadow says the byte is not theirs.
    unsafe { std::ptr::read_volatile(p) }
}

/// Run by the tests below in a child process: performs the misuse `ENV`
/// names, which the sanitizer must stop.
#[test]
#[ignore = "run by the other tests of this file in a child process"]
fn child_entry() {
    let Ok(misuse) = std::env::var(ENV) else {
        return; // run by hand with --ignored: nothing to do
    };
    match misuse.as_str() {
        "small-after-free" | "small-past-len" => {
            let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
            let heap = SmallHeap::new(&p);
            let _keep = heap.alloc(100, 8).unwrap(); // the slab stays
            let b = heap.alloc(100, 8).unwrap();
            let ptr = b.as_ptr().as_ptr();
            if misuse == "small-after-free" {
                drop(b);
                touch(ptr);
            } else {
                // Byte 104 of a 128-byte class slot; 100 bytes were asked for.
                touch(ptr.wrapping_add(104));
            }
        }
        "chunk-after-free" => {
            // Heap-backed: a freed page stays in the provider's heap block.
            let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
            let c = p.alloc(10_000).unwrap();
            let ptr = c.as_ptr().as_ptr();
            drop(c);
            touch(ptr.wrapping_add(5000));
        }
        other => panic!("unknown misuse {other}"),
    }
    // Reached only when the sanitizer missed the misuse: the parent sees success.
}

#[test]
fn small_block_used_after_free() {
    expect_poison_report("small-after-free");
}

#[test]
fn small_block_used_past_its_length() {
    expect_poison_report("small-past-len");
}

#[test]
fn chunk_used_after_free() {
    expect_poison_report("chunk-after-free");
}

/// A block reallocated from the same slot and a chunk over freed pages are
/// usable in full.
#[test]
fn memory_handed_out_again_is_clean() {
    let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    let heap = SmallHeap::new(&p);
    let _keep = heap.alloc(64, 8).unwrap();
    let a = heap.alloc(64, 8).unwrap();
    let at = a.as_ptr();
    drop(a);
    let mut b = heap.alloc(64, 8).unwrap();
    assert_eq!(b.as_ptr(), at, "the freed slot is reused");
    b.as_mut_slice().fill(1);
    let c = p.alloc(3 * 4096).unwrap();
    let at = c.as_ptr();
    drop(c);
    let mut c = p.alloc(3 * 4096).unwrap();
    assert_eq!(c.as_ptr(), at, "the freed pages are reused");
    c.as_mut_slice().fill(2);
}
