//! pktmem-mbuf: packet buffers. Not built yet; this crate has no API.
