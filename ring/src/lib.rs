//! pktmem-ring: a lock-free ring. Not built yet (issue #2); this crate has no API.
