//! A heap for small allocations carved out of pages.

/// Carves small allocations out of pages (placeholder, see below).
#[derive(Debug)]
pub struct SmallHeap;

/// A small allocation.
#[derive(Debug)]
pub struct SmallBlock;
