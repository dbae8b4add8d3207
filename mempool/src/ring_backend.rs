//! The default backend: a `pktmem-ring` ring of object pointers, sized to
//! hold exactly the pool's objects, multi-producer/multi-consumer unless the
//! pool was made single-producer or single-consumer.

use std::ptr::NonNull;

use pktmem_ring::Ring;

use crate::backend::{as_objptrs, as_objptrs_mut, ObjPtr};
use crate::error::MempoolError;

/// Ring backend with its producer/consumer discipline.
#[derive(Debug)]
pub(crate) struct RingBackend {
    ring: Ring<ObjPtr>,
    /// Puts use the single-producer path. Invariant: set only through
    /// `MempoolBuilder::single_producer`, whose caller promised puts never
    /// run concurrently.
    sp: bool,
    /// Gets use the single-consumer path; the same promise for gets.
    sc: bool,
}

impl RingBackend {
    pub(crate) fn new(n: usize, sp: bool, sc: bool) -> Result<Self, MempoolError> {
        let ring = Ring::builder(n)
            .exact_size(true)
            .build()
            .map_err(MempoolError::Ring)?;
        Ok(Self { ring, sp, sc })
    }

    #[inline(always)]
    pub(crate) fn put_bulk(&self, objs: &[NonNull<u8>]) -> bool {
        let objs = as_objptrs(objs);
        if self.sp {
            // SAFETY: single-producer promise (invariant on `sp`); the
            // promise makes earlier puts happen-before this one.
            unsafe { self.ring.enqueue_bulk_single_producer(objs) }.is_ok()
        } else {
            self.ring.enqueue_bulk(objs).is_ok()
        }
    }

    #[inline(always)]
    pub(crate) fn get_bulk(&self, objs: &mut [NonNull<u8>]) -> bool {
        let objs = as_objptrs_mut(objs);
        if self.sc {
            // SAFETY: single-consumer promise (invariant on `sc`).
            unsafe { self.ring.dequeue_bulk_single_consumer(objs) }.is_ok()
        } else {
            self.ring.dequeue_bulk(objs).is_ok()
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len()
    }
}
