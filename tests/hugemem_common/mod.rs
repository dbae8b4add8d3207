//! Helpers shared by the `hugemem_*` integration tests.

use pktmem::hugemem::inventory;

/// A 2 MiB hugepage.
pub const MB2: usize = 2 << 20;

/// Tests that compare the process's `HugetlbPages`, which every test's
/// allocations move, run one at a time within their file.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Takes the file's serial lock (a poisoned lock is still a lock).
#[allow(dead_code)] // not every test file needs it
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Free 2 MiB pages the kernel reports.
pub fn free_2m() -> u64 {
    inventory()
        .iter()
        .find(|h| h.page_size == MB2)
        .map(|h| h.free)
        .unwrap_or(0)
}
