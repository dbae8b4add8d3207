//! Named zones: memory reserved under a name, looked up by it, freed by it.

use super::{lock, Provider};
use crate::chunk::RawChunk;
use crate::table::Segment;
use crate::{AllocRequest, HugememError, Iova};

impl Provider {
    /// Reserves a named zone as `req` says; the memory stays until [`zone_free`](Self::zone_free).
    ///
    /// ```
    /// use pktmem_hugemem::{AllocRequest, Provider};
    /// let p = Provider::builder().heap_backed(1 << 20).build().unwrap();
    /// let z = p.zone_reserve("rx", &AllocRequest::new(5000)).unwrap();
    /// assert_eq!(p.zone_lookup("rx").unwrap().va, z.va);
    /// assert!(p.zone_reserve("rx", &AllocRequest::new(1)).is_err());
    /// p.zone_free("rx").unwrap();
    /// assert!(p.zone_lookup("rx").is_none());
    /// ```
    pub fn zone_reserve(&self, name: &str, req: &AllocRequest) -> Result<Zone, HugememError> {
        if lock(&self.inner.state).zones.contains_key(name) {
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        let raw = self.inner.alloc_raw(req)?;
        let mut st = lock(&self.inner.state);
        if st.zones.contains_key(name) {
            drop(st);
            self.inner.free_raw(raw);
            return Err(HugememError::DuplicateName(name.to_string()));
        }
        let z = zone_info(name, &raw, &st.lists[raw.list].seg);
        st.zones.insert(name.to_string(), raw);
        Ok(z)
    }

    /// The zone `name`, if reserved.
    pub fn zone_lookup(&self, name: &str) -> Option<Zone> {
        let st = lock(&self.inner.state);
        let raw = st.zones.get(name)?;
        Some(zone_info(name, raw, &st.lists[raw.list].seg))
    }

    /// Frees the zone `name`.
    pub fn zone_free(&self, name: &str) -> Result<(), HugememError> {
        let raw = lock(&self.inner.state)
            .zones
            .remove(name)
            .ok_or_else(|| HugememError::UnknownName(name.to_string()))?;
        self.inner.free_raw(raw);
        Ok(())
    }

    /// Names of the reserved zones.
    pub fn zone_names(&self) -> Vec<String> {
        lock(&self.inner.state).zones.keys().cloned().collect()
    }
}

fn zone_info(name: &str, raw: &RawChunk, seg: &Segment) -> Zone {
    Zone {
        name: name.to_string(),
        va: raw.va,
        len: raw.len,
        iova: seg.lookup(raw.va),
        page_size: seg.page_size(),
        iova_contiguous: raw.contiguous,
    }
}

/// A named zone's description (the memory stays until `zone_free`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Its name.
    pub name: String,
    /// First byte.
    pub va: usize,
    /// Bytes reserved.
    pub len: usize,
    /// IOVA of the first byte.
    pub iova: Iova,
    /// Page size in bytes.
    pub page_size: usize,
    /// Whether it is one IOVA run.
    pub iova_contiguous: bool,
}
