//! pktmem-mbuf: packet buffers.

mod ext;
pub mod flags;
pub mod header;

pub use flags::{DynFlag, DynFlagError, OffloadFlags, ParseFlagsError};
pub use header::{MbufHeader, DYN_AREA_LEN, DYN_AREA_OFFSET, HEADER_SIZE};
