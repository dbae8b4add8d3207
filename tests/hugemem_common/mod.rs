//! Helpers shared by the integration tests that use real hugepages.
//!
//! The provider's own tests moved to `hugemem/tests/` (with their copy of
//! these helpers in `hugemem/tests/common/`); this copy stays for the root
//! `tests/mempool_*.rs` until they move too.
//!
//! Not every test file uses every helper, hence the `dead_code` allowances.

use pktmem::hugemem::{inventory, PageSize, Provider};

/// A 2 MiB hugepage.
#[allow(dead_code)]
pub const MB2: usize = 2 << 20;

/// Tests that compare the process's `HugetlbPages`, which every test's
/// allocations move, run one at a time within their file.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the file's serial lock (a poisoned lock is still a lock).
#[allow(dead_code)] // not every test file needs it
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Free 2 MiB pages the kernel reports.
#[allow(dead_code)]
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
#[allow(dead_code)]
pub fn skip(what: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut err = std::io::stderr().lock();
    // A failed write to stderr only loses the notice.
    let _ = writeln!(err, "SKIP {what}");
}

/// A quiet provider of 2 MiB hugepages only (no small-page fallback), or
/// `None` after a SKIP line naming `what` when fewer than `need` are free.
#[allow(dead_code)]
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
#[allow(dead_code)]
pub fn small_page_provider() -> Provider {
    Provider::builder()
        .heap_backed(64 << 20)
        .quiet(true)
        .build()
        .unwrap()
}
