//! `AddressSanitizer` sees the pool's objects: a mempool object used after
//! it went back to its pool (through the backend, an explicit cache or the
//! default cache) and an object never handed out each end the process with
//! an `ASan` "use-after-poison" report (the provider's own cases, a
//! `SmallHeap` block or a chunk used after free, are in
//! `hugemem/tests/asan_poison.rs`). Each misuse runs in a
//! child process (this test binary again, one `#[ignore]`d entry selected by
//! an environment variable); the parent checks the child died of it. The
//! other tests check the memory is clean again where it must be (handed out
//! again, a pool's chunks after the pool is gone).
//!
//! Only under `--cfg pktmem_asan` with `-Zsanitizer=address` (`.ci/sanitizers`);
//! without the cfg this file compiles to nothing.
#![cfg(pktmem_asan)]

use std::mem::MaybeUninit;
use std::process::Command;
use std::ptr::NonNull;

use pktmem_mempool::{Iova, Mempool};

const ENV: &str = "PKTMEM_ASAN_CHILD";

/// Runs `child_entry` with `misuse` and asserts ASan stopped it.
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

/// One byte read ASan checks (a volatile read is not optimised away).
fn touch(p: *const u8) -> u8 {
    // SAFETY: the callers point into live mappings (their own pool or heap);
    // only ASan's shadow says the byte is not theirs to read.
    unsafe { std::ptr::read_volatile(p) }
}

/// Run by the tests below in a child process: performs the misuse `ENV`
/// names, which ASan must stop.
#[test]
#[ignore = "run by the other tests of this file in a child process"]
fn child_entry() {
    let Ok(misuse) = std::env::var(ENV) else {
        return; // run by hand with --ignored: nothing to do
    };
    let pool = |cache| {
        Mempool::builder(64, 64)
            .name("asan")
            .cache(cache)
            .build_anonymous()
            .unwrap()
    };
    match misuse.as_str() {
        "pool-backend" | "pool-default-cache" => {
            let pool = pool(if misuse == "pool-backend" { 0 } else { 16 });
            let o = pool.get_default().unwrap();
            // SAFETY: an object of this pool, put back once.
            unsafe { pool.put_default(o) };
            touch(o.as_ptr());
        }
        "pool-cache" => {
            let pool = pool(16);
            let mut cache = pool.cache();
            let o = pool.get(&mut cache).unwrap();
            // SAFETY: an object of this pool, put back once.
            unsafe { pool.put(&mut cache, o) };
            touch(o.as_ptr());
        }
        "pool-never-handed-out" => {
            let pool = pool(0);
            let mut first = None;
            pool.for_each_obj(|o| {
                first.get_or_insert(o.obj);
            });
            touch(first.unwrap().as_ptr().wrapping_add(8));
        }
        other => panic!("unknown misuse {other}"),
    }
    // Reached only when ASan missed the misuse: the parent sees success.
}

#[test]
fn pool_object_used_after_put_to_backend() {
    expect_poison_report("pool-backend");
}

#[test]
fn pool_object_used_after_put_to_default_cache() {
    expect_poison_report("pool-default-cache");
}

#[test]
fn pool_object_used_after_put_to_cache() {
    expect_poison_report("pool-cache");
}

#[test]
fn pool_object_never_handed_out_is_poisoned() {
    expect_poison_report("pool-never-handed-out");
}

/// An object handed out again is usable in full, on every path.
#[test]
fn memory_handed_out_again_is_clean() {
    for cache in [0, 16] {
        let pool = Mempool::builder(32, 200)
            .name("asan-again")
            .cache(cache)
            .obj_init(|_, body| {
                for b in body {
                    b.write(0x5a);
                }
            })
            .build_anonymous()
            .unwrap();
        let mut buf = [MaybeUninit::uninit(); 32];
        for _ in 0..3 {
            let objs = pool.get_bulk_default(&mut buf).unwrap();
            for &mut o in &mut *objs {
                // SAFETY: our object, 200 bytes.
                let body = unsafe { std::slice::from_raw_parts_mut(o.as_ptr(), 200) };
                assert!(body.iter().all(|&b| b == 0x5a), "body kept by the pool");
                body.fill(0x5a);
            }
            // SAFETY: objects of this pool, put back once.
            unsafe { pool.put_bulk_default(objs) };
        }
    }
}

/// A pool on caller memory gives it back unpoisoned: its free objects were
/// poisoned, the caller uses all of it after the pool is gone.
#[test]
fn caller_memory_is_clean_after_pool_drop() {
    let mut buf = vec![0u8; 64 * 1024];
    let addr = NonNull::new(buf.as_mut_ptr()).unwrap();
    {
        let pool = Mempool::builder(100, 64)
            .name("asan-caller")
            .build_empty()
            .unwrap();
        // SAFETY: `buf` outlives the pool and is not used meanwhile.
        let n = unsafe { pool.populate_iova(addr, Some(Iova(0x1000)), buf.len(), None) }.unwrap();
        assert!(n > 0);
    }
    // ASan stops here if any byte is still poisoned.
    buf.fill(7);
    assert!(buf.iter().all(|&b| b == 7));
}
