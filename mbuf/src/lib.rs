//! pktmem-mbuf: packet buffers.

pub mod header;
mod ext;

pub use header::{MbufHeader, DYN_AREA_LEN, DYN_AREA_OFFSET, HEADER_SIZE};
