//! Optional statistics (the `stats` feature).

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a pool's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Objects handed out.
    pub gets: u64,
    /// Objects given back.
    pub puts: u64,
    /// Objects served from a cache without touching the backend.
    pub cache_get_hits: u64,
    /// Objects stored in a cache without touching the backend.
    pub cache_put_hits: u64,
    /// Bulk calls into the backend.
    pub backend_calls: u64,
}

#[derive(Debug, Default)]
pub(crate) struct StatsCells {
    gets: AtomicU64,
    puts: AtomicU64,
    get_hits: AtomicU64,
    put_hits: AtomicU64,
    backend: AtomicU64,
}

// Relaxed everywhere: independent counters, read as a snapshot.
impl StatsCells {
    pub(crate) fn get(&self, n: usize) {
        self.gets.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn put(&self, n: usize) {
        self.puts.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn hit(&self, n: usize) {
        self.get_hits.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn put_hit(&self, n: usize) {
        self.put_hits.fetch_add(n as u64, Ordering::Relaxed);
    }
    pub(crate) fn backend(&self) {
        self.backend.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn snapshot(&self) -> PoolStats {
        PoolStats {
            gets: self.gets.load(Ordering::Relaxed),
            puts: self.puts.load(Ordering::Relaxed),
            cache_get_hits: self.get_hits.load(Ordering::Relaxed),
            cache_put_hits: self.put_hits.load(Ordering::Relaxed),
            backend_calls: self.backend.load(Ordering::Relaxed),
        }
    }
}
