//! pktmem-mbuf: packet buffers.

pub mod dynfield;
mod ext;
pub mod flags;
pub mod header;
pub mod offload;

pub use dynfield::{DynField, DynFieldError, DynFieldValue, RawDynField};
pub use flags::{DynFlag, DynFlagError, OffloadFlags, ParseFlagsError};
pub use header::{MbufHeader, DYN_AREA_LEN, DYN_AREA_OFFSET, HEADER_SIZE};
pub use offload::{TxLenError, TxLengths, TxOffload, TxOffloadError};
