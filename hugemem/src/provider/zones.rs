//! Named zones: owned chunks that also answer to a name.
//!
//! A [`Zone`] is a chunk plus its name: it derefs to the [`Chunk`] and is
//! freed when dropped, like one. The name only lets other code find it
//! ([`Provider::zone_lookup`]), the way the reference's memzones are shared
//! by name; the owner decides when it goes.

use super::{lock, Provider};
use crate::{AllocRequest, Chunk, Iova, ZoneError};
use std::fmt;
use std::ops::{Deref, DerefMut};

/// A named, owned chunk: reserved with [`Provider::zone_reserve`], freed
/// (and its name released) on drop.
///
/// ```
/// use pktmem_hugemem::{AllocRequest, Provider};
/// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
/// let z = p.zone_reserve("rx", &AllocRequest::new(5000)).unwrap();
/// assert_eq!(z.name(), "rx");
/// assert_eq!(p.zone_lookup("rx").unwrap().va, z.as_ptr().as_ptr() as usize);
/// assert!(p.zone_reserve("rx", &AllocRequest::new(1)).is_err());
/// drop(z);
/// assert!(p.zone_lookup("rx").is_none());
/// assert_eq!(p.mapped_bytes(), 0);
/// ```
pub struct Zone {
    chunk: Chunk,
    name: String,
}

/// What [`Provider::zone_lookup`] tells about a zone (the zone itself is
/// its owner's).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneInfo {
    /// Its name.
    pub name: String,
    /// First byte.
    pub va: usize,
    /// Bytes reserved.
    pub len: usize,
    /// IOVA of the first byte (`None`: memory without IOVAs).
    pub iova: Option<Iova>,
    /// Page size in bytes.
    pub page_size: usize,
    /// Whether it is one IOVA run.
    pub iova_contiguous: bool,
}

impl Provider {
    /// Reserves memory as `req` says, under `name` (unique among this
    /// provider's live zones).
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider, ZoneError};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let mut z = p.zone_reserve("stats", &AllocRequest::new(64).iova_contiguous(true)).unwrap();
    /// z.as_mut_slice().fill(0);
    /// assert_eq!(p.zone_names(), ["stats"]);
    /// let e = p.zone_reserve("stats", &AllocRequest::new(64)).unwrap_err();
    /// assert!(matches!(e, ZoneError::DuplicateName { .. }));
    /// ```
    pub fn zone_reserve(&self, name: &str, req: &AllocRequest) -> Result<Zone, ZoneError> {
        let duplicate = || ZoneError::DuplicateName {
            name: name.to_string(),
        };
        if lock(&self.inner.zones).contains_key(name) {
            return Err(duplicate());
        }
        let chunk = self.alloc_with(req).map_err(|source| ZoneError::Alloc {
            name: name.to_string(),
            source,
        })?;
        let info = ZoneInfo {
            name: name.to_string(),
            va: chunk.as_ptr().as_ptr() as usize,
            len: chunk.len(),
            iova: chunk.iova(),
            page_size: chunk.page_size(),
            iova_contiguous: chunk.is_iova_contiguous(),
        };
        let mut zones = lock(&self.inner.zones);
        if zones.contains_key(name) {
            // Another thread took the name meanwhile: the chunk goes back.
            drop(zones);
            drop(chunk);
            return Err(duplicate());
        }
        zones.insert(name.to_string(), info);
        Ok(Zone {
            chunk,
            name: name.to_string(),
        })
    }

    /// The zone `name`, if one is reserved.
    pub fn zone_lookup(&self, name: &str) -> Option<ZoneInfo> {
        lock(&self.inner.zones).get(name).cloned()
    }

    /// Names of the reserved zones, in order.
    pub fn zone_names(&self) -> Vec<String> {
        lock(&self.inner.zones).keys().cloned().collect()
    }
}

impl Zone {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The chunk under it.
    pub fn chunk(&self) -> &Chunk {
        &self.chunk
    }
}

impl Deref for Zone {
    type Target = Chunk;

    fn deref(&self) -> &Chunk {
        &self.chunk
    }
}

impl DerefMut for Zone {
    fn deref_mut(&mut self) -> &mut Chunk {
        &mut self.chunk
    }
}

impl Drop for Zone {
    fn drop(&mut self) {
        // The chunk (which holds the provider) frees itself after this.
        lock(&self.chunk.provider.inner.zones).remove(&self.name);
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Zone")
            .field("name", &self.name)
            .field("chunk", &self.chunk)
            .finish_non_exhaustive()
    }
}
