//! Hugepage inventory from sysfs.

use std::fmt;

/// One hugepage size as the kernel counts it (`/sys/kernel/mm/hugepages`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HugepageInventory {
    /// Page size in bytes.
    pub page_size: usize,
    /// Pages reserved in the pool (`nr_hugepages`).
    pub total: u64,
    /// Pages free (`free_hugepages`).
    pub free: u64,
    /// Pages promised to mappings but not yet faulted (`resv_hugepages`).
    pub reserved: u64,
    /// Surplus pages (`surplus_hugepages`).
    pub surplus: u64,
}

impl fmt::Display for HugepageInventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: total {}, free {}, reserved {}, surplus {}",
            crate::error::human(self.page_size),
            self.total,
            self.free,
            self.reserved,
            self.surplus
        )
    }
}

/// The hugepage sizes the kernel offers, with their counts; empty when
/// sysfs has no hugepage directory.
///
/// ```
/// for h in pktmem_hugemem::inventory() {
///     assert!(h.page_size >= 2 << 20 || h.page_size == 64 << 10);
///     assert!(h.free <= h.total + h.surplus);
///     println!("{h}");
/// }
/// ```
pub fn inventory() -> Vec<HugepageInventory> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(kb) = name
            .strip_prefix("hugepages-")
            .and_then(|s| s.strip_suffix("kB"))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        let base = e.path();
        let rd = |f: &str| crate::sys::read_num(&base.join(f).to_string_lossy()).unwrap_or(0);
        out.push(HugepageInventory {
            page_size: kb * 1024,
            total: rd("nr_hugepages"),
            free: rd("free_hugepages"),
            reserved: rd("resv_hugepages"),
            surplus: rd("surplus_hugepages"),
        });
    }
    out.sort_by_key(|h| h.page_size);
    out
}

/// This process's `HugetlbPages:` from `/proc/self/status`, in bytes.
///
/// ```
/// let b = pktmem_hugemem::process_hugetlb_bytes();
/// assert!(b.is_none() || b.unwrap() % 4096 == 0);
/// ```
pub fn process_hugetlb_bytes() -> Option<usize> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("HugetlbPages:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
