//! pktmem-hugemem: the hugepage memory provider. Not built yet (issue #3); this crate has no API.
