//! Helpers shared by the mempool behaviour tests.

// Each test file uses some of these helpers, none uses all.
#![allow(dead_code)]

use std::mem::MaybeUninit;

use pktmem_hugemem::{inventory, PageSize, Provider};
use pktmem_mempool::{BackendKind, Cache, GetError, Mempool, Obj};

/// A 2 MiB hugepage.
pub const MB2: usize = 2 << 20;

/// Tests that compare the process's `HugetlbPages`, which every test's
/// allocations move, run one at a time within their file.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the file's serial lock (a poisoned lock is still a lock).
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Free 2 MiB pages the kernel reports.
pub fn free_2m() -> u64 {
    inventory()
        .iter()
        .find(|h| h.page_size == MB2)
        .map_or(0, |h| h.free)
}

/// Says on the test's stderr that an assertion was skipped, and why.
///
/// Written to the process's stderr directly, not with `eprintln!`, which the
/// test harness captures (and drops) for a passing test: a skipped hugepage
/// check must show in `cargo test`'s output.
pub fn skip(what: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    // A failed write to stderr only loses the notice.
    let _ = writeln!(err, "SKIP {what}");
}

/// A quiet provider of 2 MiB hugepages only (no small-page fallback), or
/// `None` after a SKIP line naming `what` when fewer than `need` are free.
pub fn huge2m_provider(what: &str, need: u64) -> Option<Provider> {
    let free = free_2m();
    if free < need {
        skip(format_args!(
            "{what}: only {free} free 2 MiB hugepages (need {need})"
        ));
        return None;
    }
    let provider = Provider::builder()
        .page_sizes(&[PageSize::Huge2M])
        .allow_small_page_fallback(false)
        .quiet(true)
        .build()
        .unwrap();
    Some(provider)
}

/// A quiet provider of 4 KiB pages from the heap (64 MiB of them).
pub fn small_page_provider() -> Provider {
    Provider::builder()
        .heap_backed(64 << 20)
        .quiet(true)
        .build()
        .unwrap()
}

/// A full pool of `n` objects of `elt` bytes on anonymous memory.
pub fn anon(name: &str, n: usize, elt: usize, cache: usize, kind: BackendKind) -> Mempool {
    Mempool::builder(n, elt)
        .name(name)
        .cache(cache)
        .backend_kind(kind)
        .build_anonymous()
        .unwrap()
}

/// `k` objects, through `cache` when given, else without a cache handle.
pub fn get_vec(pool: &Mempool, cache: Option<&mut Cache>, k: usize) -> Result<Vec<Obj>, GetError> {
    let mut buf = vec![MaybeUninit::uninit(); k];
    let got = match cache {
        Some(c) => pool.get_bulk(c, &mut buf)?,
        None => pool.get_bulk_default(&mut buf)?,
    };
    Ok(got.to_vec())
}

/// Gives `objs` back, through `cache` when given, else without a cache handle.
///
/// # Safety
/// The conditions of `Mempool::put_bulk`.
pub unsafe fn put_all(pool: &Mempool, cache: Option<&mut Cache>, objs: &[Obj]) {
    // SAFETY: forwarded to the caller.
    unsafe {
        match cache {
            Some(c) => pool.put_bulk(c, objs),
            None => pool.put_bulk_default(objs),
        }
    }
}
