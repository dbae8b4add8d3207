//! pktmem-mempool: object pools. Not built yet (issue #4); this crate has no API.
