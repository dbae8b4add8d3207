//! Dynamic fields: named, typed slots in the header's free bytes.
//!
//! # Model
//!
//! The last 28 bytes of the mbuf header (offsets 100 to 127, see
//! [`DYN_AREA_OFFSET`] and [`DYN_AREA_LEN`]) belong to nobody in particular.
//! A library or application that wants to carry per-packet metadata (a
//! sequence number, a timestamp of its own, a classification result)
//! registers a *dynamic field* there by name and gets back a handle holding
//! the field's offset:
//!
//! ```text
//!  header offset  100       104       108               116 ... 128
//!                 |  a: u32 |  free   |     b: u64      | ...      |
//! ```
//!
//! * The registry is process-wide (a `Mutex` in a `static`), so every pool
//!   and every mbuf agrees on where a field is. Registration is idempotent by
//!   name: registering `"seq"` again with the same size and alignment (and,
//!   for typed fields, the same type) returns the same offset, from any
//!   thread; anything else is a [`DynFieldError::Mismatch`] or
//!   [`DynFieldError::TypeMismatch`].
//! * Offsets are relative to the header's start, so alignment is absolute:
//!   the header is 64-byte aligned ([`MbufHeader`] is `align(64)`), hence a
//!   field at an offset that is a multiple of its alignment is aligned in
//!   memory too. That is why [`DynField::get`] / [`DynField::set`] are plain
//!   aligned loads and stores, one instruction each, with no
//!   `read_unaligned`. Alignments up to 64 are accepted (32 and 64 can
//!   never fit in the area, so they fail with [`DynFieldError::NoRoom`]).
//! * Fields are placed first-fit at the lowest suitably aligned free offset.
//!   Like the reference, there is no unregistration: mbufs anywhere in the
//!   process may hold values at the offset.
//! * Values are read out of bytes nobody initialised for the field's type
//!   (a fresh mbuf's dynamic area holds whatever the last user left, zero
//!   at first), so a typed field's type must be valid for every bit
//!   pattern: [`DynFieldValue`], implemented for the integer and float
//!   types and arrays of them, and unsafely implementable for a user's
//!   padding-free `#[repr(C)]` structs of such fields. A field's value is
//!   not reset on alloc; write it before reading it.
//!
//! ```
//! use pktmem_mbuf::dynfield::DynField;
//! # use pktmem_mbuf::MbufHeader;
//!
//! let seq = DynField::<u32>::register("example_dynfield_doc_model_seq")?;
//! assert_eq!(seq.offset() % 4, 0);
//! # let mut hdr = MbufHeader::zeroed_for_tests();
//! seq.set(&mut hdr, 7);
//! assert_eq!(seq.get(&hdr), 7);
//! # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
//! ```

use std::any::{type_name, TypeId};
use std::fmt;
use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::sync::{Mutex, PoisonError};

use crate::flags::{check_name, NameError, MAX_DYN_NAME_LEN};
use crate::header::{MbufHeader, DYN_AREA_LEN, DYN_AREA_OFFSET, HEADER_SIZE};

/// Largest alignment a field may ask for: the header's own alignment.
pub const MAX_ALIGN: usize = 64;

/// A type a dynamic field can hold.
///
/// # Safety
///
/// Implement it only for a type that
/// - is valid for every bit pattern of `size_of::<Self>()` bytes (no
///   `bool`, `char`, enums, references, `NonZero*`), because a field is read
///   from bytes that another user, or nobody, wrote, and
/// - has no padding bytes, because a write must leave initialised bytes in
///   the area (they can be read back as bytes through [`RawDynField`]).
///
/// ```
/// use pktmem_mbuf::dynfield::{DynField, DynFieldValue};
///
/// #[derive(Clone, Copy)]
/// #[repr(C)]
/// struct Meta { queue: u16, class: u16, flow: u32 }
/// // SAFETY: three integers, no padding (2 + 2 + 4 bytes, align 4).
/// unsafe impl DynFieldValue for Meta {}
///
/// let f = DynField::<Meta>::register("example_dynfield_doc_meta")?;
/// assert_eq!(f.offset() % 4, 0);
/// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
/// ```
pub unsafe trait DynFieldValue: Copy + Send + Sync + 'static {}

macro_rules! plain {
    ($($t:ty),*) => {
        $(
            // SAFETY: a primitive integer or float: every bit pattern is a
            // value, no padding.
            unsafe impl DynFieldValue for $t {}
        )*
    };
}
plain!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64);

// SAFETY: an array of padding-free, all-bit-patterns-valid elements has no
// padding (arrays have no gaps between elements) and accepts every pattern.
unsafe impl<T: DynFieldValue, const N: usize> DynFieldValue for [T; N] {}

/// One registered field. Invariant (of every entry in [`REGISTRY`]):
/// `DYN_AREA_OFFSET <= offset`, `offset + size <= HEADER_SIZE`,
/// `1 <= size`, `align` a power of two `<= MAX_ALIGN`, `offset % align == 0`,
/// and no two entries overlap.
#[derive(Clone)]
struct Entry {
    name: String,
    offset: usize,
    size: usize,
    align: usize,
    /// The type of a typed registration (the first one that set it).
    ty: Option<(TypeId, &'static str)>,
}

static REGISTRY: Mutex<Vec<Entry>> = Mutex::new(Vec::new());

fn registry() -> std::sync::MutexGuard<'static, Vec<Entry>> {
    // Nothing panics while the lock is held, so a poisoned lock still holds
    // a consistent registry.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bit `i` set: byte `DYN_AREA_OFFSET + i` is taken.
fn used_mask(reg: &[Entry]) -> u32 {
    reg.iter()
        .fold(0, |acc, e| acc | span_mask(e.offset, e.size))
}

fn span_mask(offset: usize, size: usize) -> u32 {
    let start = offset - DYN_AREA_OFFSET;
    (((1u64 << size) - 1) << start) as u32
}

fn register_entry(
    name: &str,
    size: usize,
    align: usize,
    ty: Option<(TypeId, &'static str)>,
) -> Result<Entry, DynFieldError> {
    check_name(name).map_err(|e| match e {
        NameError::Empty => DynFieldError::EmptyName,
        NameError::TooLong(len) => DynFieldError::NameTooLong {
            len,
            max: MAX_DYN_NAME_LEN,
        },
    })?;
    if size == 0 {
        return Err(DynFieldError::ZeroSize {
            name: name.to_owned(),
        });
    }
    if size > DYN_AREA_LEN {
        return Err(DynFieldError::TooLarge {
            size,
            max: DYN_AREA_LEN,
        });
    }
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return Err(DynFieldError::BadAlign {
            align,
            max: MAX_ALIGN,
        });
    }
    let mut reg = registry();
    if let Some(e) = reg.iter_mut().find(|e| e.name == name) {
        if e.size != size || e.align != align {
            return Err(DynFieldError::Mismatch {
                name: name.to_owned(),
                size,
                align,
                existing_size: e.size,
                existing_align: e.align,
            });
        }
        match (e.ty, ty) {
            (Some((have, have_name)), Some((want, want_name))) if have != want => {
                return Err(DynFieldError::TypeMismatch {
                    name: name.to_owned(),
                    ty: want_name,
                    existing_ty: have_name,
                });
            }
            (None, Some(_)) => e.ty = ty,
            _ => {}
        }
        return Ok(e.clone());
    }
    let used = used_mask(&reg);
    let fits = (DYN_AREA_OFFSET..=HEADER_SIZE - size)
        .filter(|off| off % align == 0)
        .find(|&off| used & span_mask(off, size) == 0);
    let Some(offset) = fits else {
        return Err(DynFieldError::NoRoom {
            name: name.to_owned(),
            size,
            align,
            free: DYN_AREA_LEN - used.count_ones() as usize,
        });
    };
    let e = Entry {
        name: name.to_owned(),
        offset,
        size,
        align,
        ty,
    };
    reg.push(e.clone());
    Ok(e)
}

/// A typed dynamic field: where a `T` lives in every mbuf header.
///
/// `Copy`, 8 bytes; [`get`](Self::get) and [`set`](Self::set) are one
/// aligned load or store at `header + offset`.
///
/// ```
/// use pktmem_mbuf::dynfield::DynField;
/// # use pktmem_mbuf::MbufHeader;
///
/// let ts = DynField::<u64>::register("example_dynfield_doc_ts")?;
/// // Same name, same type: the same field.
/// assert_eq!(DynField::<u64>::register("example_dynfield_doc_ts")?, ts);
/// # let mut hdr = MbufHeader::zeroed_for_tests();
/// ts.set(&mut hdr, 0x1122_3344_5566_7788);
/// assert_eq!(ts.get(&hdr), 0x1122_3344_5566_7788);
/// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
/// ```
pub struct DynField<T> {
    /// Byte offset from the header's start. Invariant: the registry has an
    /// entry at this offset of size `size_of::<T>()` and alignment
    /// `align_of::<T>()` (so the field lies inside the dynamic area and
    /// `offset % align_of::<T>() == 0`), and `T: DynFieldValue`.
    offset: usize,
    _ty: PhantomData<fn() -> T>,
}

impl<T: DynFieldValue> DynField<T> {
    /// Registers a field named `name` of `T`'s size and alignment, or
    /// returns the field already registered under `name` if its size,
    /// alignment and type are `T`'s (a field registered with
    /// [`RawDynField::register`] of the same layout is adopted).
    ///
    /// ```
    /// use pktmem_mbuf::dynfield::{DynField, DynFieldError};
    ///
    /// let a = DynField::<u16>::register("example_dynfield_doc_reg")?;
    /// let err = DynField::<u32>::register("example_dynfield_doc_reg").unwrap_err();
    /// assert!(matches!(err, DynFieldError::Mismatch { size: 4, existing_size: 2, .. }));
    /// assert!(matches!(
    ///     DynField::<[u8; 29]>::register("example_dynfield_doc_big"),
    ///     Err(DynFieldError::TooLarge { size: 29, max: 28 })
    /// ));
    /// # let _ = a;
    /// # Ok::<(), DynFieldError>(())
    /// ```
    pub fn register(name: &str) -> Result<Self, DynFieldError> {
        let ty = Some((TypeId::of::<T>(), type_name::<T>()));
        let e = register_entry(name, size_of::<T>(), align_of::<T>(), ty)?;
        Ok(Self {
            offset: e.offset,
            _ty: PhantomData,
        })
    }

    /// The field registered under `name`, if there is one with `T`'s size
    /// and alignment (and type, if it was registered typed).
    ///
    /// ```
    /// use pktmem_mbuf::dynfield::DynField;
    ///
    /// let f = DynField::<u32>::register("example_dynfield_doc_lookup")?;
    /// assert_eq!(DynField::<u32>::lookup("example_dynfield_doc_lookup"), Some(f));
    /// assert_eq!(DynField::<i32>::lookup("example_dynfield_doc_lookup"), None);
    /// assert_eq!(DynField::<u32>::lookup("example_dynfield_doc_nothing"), None);
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    pub fn lookup(name: &str) -> Option<Self> {
        let reg = registry();
        let e = reg.iter().find(|e| e.name == name)?;
        let layout_ok = e.size == size_of::<T>() && e.align == align_of::<T>();
        let type_ok = e.ty.map_or(true, |(id, _)| id == TypeId::of::<T>());
        (layout_ok && type_ok).then_some(Self {
            offset: e.offset,
            _ty: PhantomData,
        })
    }

    /// The field's byte offset from the start of the header (100 to 127).
    ///
    /// ```
    /// # use pktmem_mbuf::dynfield::DynField;
    /// let f = DynField::<u8>::register("example_dynfield_doc_offset")?;
    /// assert!((100..128).contains(&f.offset()));
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    ///
    /// ```
    /// # use pktmem_mbuf::dynfield::RawDynField;
    /// let f = RawDynField::register("example_dynfield_doc_raw_offset", 8, 8)?;
    /// assert_eq!(f.offset() % 8, 0);
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    pub const fn offset(self) -> usize {
        self.offset
    }

    /// Reads the field of `hdr`.
    ///
    /// ```
    /// # use pktmem_mbuf::{dynfield::DynField, MbufHeader};
    /// let f = DynField::<i16>::register("example_dynfield_doc_get")?;
    /// # let hdr = MbufHeader::zeroed_for_tests();
    /// assert_eq!(f.get(&hdr), 0);
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    #[inline]
    pub fn get(self, hdr: &MbufHeader) -> T {
        let start = self.offset - DYN_AREA_OFFSET;
        debug_assert!(start + size_of::<T>() <= DYN_AREA_LEN);
        // SAFETY: by the invariant on `offset`, `start .. start + size_of T`
        // is inside `hdr.dynfield` (so the pointer keeps the array's
        // provenance), the address is aligned for `T` (the header is
        // 64-aligned, `offset % align_of::<T>() == 0` and the alignment is
        // at most 64), the bytes are initialised (a `[u8]` field) and any
        // pattern is a valid `T` (`T: DynFieldValue`).
        unsafe { hdr.dynfield.as_ptr().add(start).cast::<T>().read() }
    }

    /// Writes the field of `hdr`; no other byte of the header changes.
    ///
    /// ```
    /// # use pktmem_mbuf::{dynfield::DynField, MbufHeader};
    /// let f = DynField::<[u8; 3]>::register("example_dynfield_doc_set")?;
    /// # let mut hdr = MbufHeader::zeroed_for_tests();
    /// f.set(&mut hdr, *b"abc");
    /// assert_eq!(&f.get(&hdr), b"abc");
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    #[inline]
    pub fn set(self, hdr: &mut MbufHeader, value: T) {
        let start = self.offset - DYN_AREA_OFFSET;
        debug_assert!(start + size_of::<T>() <= DYN_AREA_LEN);
        // SAFETY: as in `get`: in bounds of `hdr.dynfield`, aligned for `T`;
        // the `&mut` makes the write exclusive, and `T` has no padding
        // (`DynFieldValue`), so the area's bytes stay initialised.
        unsafe {
            hdr.dynfield
                .as_mut_ptr()
                .add(start)
                .cast::<T>()
                .write(value);
        }
    }

    /// The same field, untyped.
    ///
    /// ```
    /// # use pktmem_mbuf::dynfield::DynField;
    /// let f = DynField::<u32>::register("example_dynfield_doc_raw")?;
    /// assert_eq!(f.raw().size(), 4);
    /// assert_eq!(f.raw().offset(), f.offset());
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    pub const fn raw(self) -> RawDynField {
        RawDynField {
            offset: self.offset,
            size: size_of::<T>(),
            align: align_of::<T>(),
        }
    }
}

impl<T> Clone for DynField<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for DynField<T> {}

impl<T> PartialEq for DynField<T> {
    fn eq(&self, other: &Self) -> bool {
        self.offset == other.offset
    }
}

impl<T> Eq for DynField<T> {}

impl<T> fmt::Debug for DynField<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DynField")
            .field("type", &type_name::<T>())
            .field("offset", &self.offset)
            .finish()
    }
}

/// An untyped dynamic field: a run of bytes in every header, seen as a
/// byte slice.
///
/// ```
/// use pktmem_mbuf::dynfield::RawDynField;
/// # use pktmem_mbuf::MbufHeader;
///
/// let f = RawDynField::register("example_dynfield_doc_rawreg", 6, 2)?;
/// assert_eq!((f.size(), f.align(), f.offset() % 2), (6, 2, 0));
/// # let mut hdr = MbufHeader::zeroed_for_tests();
/// f.bytes_mut(&mut hdr).copy_from_slice(b"\x00\x1b\x21\x00\x00\x01");
/// assert_eq!(f.bytes(&hdr)[1], 0x1b);
/// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawDynField {
    /// Same invariant as [`DynField::offset`], for `size` and `align`.
    offset: usize,
    size: usize,
    align: usize,
}

impl RawDynField {
    /// Registers `size` bytes aligned to `align` under `name`, or returns
    /// the field already registered under `name` with that size and
    /// alignment (of any type).
    ///
    /// ```
    /// use pktmem_mbuf::dynfield::{DynFieldError, RawDynField};
    ///
    /// assert_eq!(
    ///     RawDynField::register("example_dynfield_doc_bad", 4, 3),
    ///     Err(DynFieldError::BadAlign { align: 3, max: 64 })
    /// );
    /// assert!(matches!(
    ///     RawDynField::register("example_dynfield_doc_wide", 4, 32),
    ///     Err(DynFieldError::NoRoom { .. })
    /// ));
    /// ```
    pub fn register(name: &str, size: usize, align: usize) -> Result<Self, DynFieldError> {
        let e = register_entry(name, size, align, None)?;
        Ok(Self {
            offset: e.offset,
            size: e.size,
            align: e.align,
        })
    }

    /// The field registered under `name`, whatever its type.
    ///
    /// ```
    /// use pktmem_mbuf::dynfield::{DynField, RawDynField};
    ///
    /// let f = DynField::<u64>::register("example_dynfield_doc_rawlookup")?;
    /// assert_eq!(RawDynField::lookup("example_dynfield_doc_rawlookup"), Some(f.raw()));
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    pub fn lookup(name: &str) -> Option<Self> {
        registry().iter().find(|e| e.name == name).map(|e| Self {
            offset: e.offset,
            size: e.size,
            align: e.align,
        })
    }

    /// Byte offset from the start of the header.
    pub const fn offset(self) -> usize {
        self.offset
    }

    /// Size in bytes.
    ///
    /// ```
    /// # use pktmem_mbuf::dynfield::RawDynField;
    /// let f = RawDynField::register("example_dynfield_doc_raw_size", 8, 8)?;
    /// assert_eq!(f.size(), 8);
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    pub const fn size(self) -> usize {
        self.size
    }

    /// Alignment in bytes (absolute: the header is 64-byte aligned).
    ///
    /// ```
    /// # use pktmem_mbuf::dynfield::RawDynField;
    /// let f = RawDynField::register("example_dynfield_doc_raw_align", 8, 8)?;
    /// assert_eq!(f.align(), 8);
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    pub const fn align(self) -> usize {
        self.align
    }

    /// The field's bytes in `hdr`.
    ///
    /// ```
    /// # use pktmem_mbuf::{dynfield::RawDynField, MbufHeader};
    /// let f = RawDynField::register("example_dynfield_doc_bytes", 3, 1)?;
    /// # let hdr = MbufHeader::zeroed_for_tests();
    /// assert_eq!(f.bytes(&hdr), [0, 0, 0]);
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    pub fn bytes(self, hdr: &MbufHeader) -> &[u8] {
        let start = self.offset - DYN_AREA_OFFSET;
        &hdr.dynfield[start..start + self.size]
    }

    /// The field's bytes in `hdr`, writable.
    ///
    /// ```
    /// # use pktmem_mbuf::{dynfield::RawDynField, MbufHeader};
    /// let f = RawDynField::register("example_dynfield_doc_bytes_mut", 2, 1)?;
    /// # let mut hdr = MbufHeader::zeroed_for_tests();
    /// f.bytes_mut(&mut hdr).copy_from_slice(&[1, 2]);
    /// assert_eq!(f.bytes(&hdr), [1, 2]);
    /// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
    /// ```
    pub fn bytes_mut(self, hdr: &mut MbufHeader) -> &mut [u8] {
        let start = self.offset - DYN_AREA_OFFSET;
        &mut hdr.dynfield[start..start + self.size]
    }
}

/// One registered field, as listed by [`registered`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DynFieldInfo {
    /// Its name.
    pub name: String,
    /// Byte offset from the header's start.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Alignment in bytes.
    pub align: usize,
    /// The Rust type of a typed registration (`None` if only registered
    /// raw).
    pub type_name: Option<&'static str>,
}

impl fmt::Display for DynFieldInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: offset {}, size {}, align {}",
            self.name, self.offset, self.size, self.align
        )?;
        if let Some(t) = self.type_name {
            write!(f, ", type {t}")?;
        }
        Ok(())
    }
}

/// Every registered field, by offset.
///
/// ```
/// use pktmem_mbuf::dynfield::{registered, DynField};
///
/// let f = DynField::<u16>::register("example_dynfield_doc_list")?;
/// let all = registered();
/// let me = all.iter().find(|i| i.name == "example_dynfield_doc_list").unwrap();
/// assert_eq!((me.offset, me.size, me.type_name), (f.offset(), 2, Some("u16")));
/// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
/// ```
pub fn registered() -> Vec<DynFieldInfo> {
    let mut v: Vec<DynFieldInfo> = registry()
        .iter()
        .map(|e| DynFieldInfo {
            name: e.name.clone(),
            offset: e.offset,
            size: e.size,
            align: e.align,
            type_name: e.ty.map(|(_, n)| n),
        })
        .collect();
    v.sort_by_key(|i| i.offset);
    v
}

/// Bytes of the dynamic area no field has taken.
///
/// ```
/// use pktmem_mbuf::dynfield::{free_bytes, DynField};
///
/// DynField::<u8>::register("example_dynfield_doc_free")?;
/// assert!(free_bytes() < 28);
/// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
/// ```
pub fn free_bytes() -> usize {
    DYN_AREA_LEN - used_mask(&registry()).count_ones() as usize
}

/// A text dump of the registry (like the reference's `rte_mbuf_dyn_dump`):
/// one line per field by offset, then the free byte count.
///
/// ```
/// use pktmem_mbuf::dynfield::{dump, DynField};
///
/// DynField::<u32>::register("example_dynfield_doc_dump")?;
/// assert!(dump().lines().any(|l| l.starts_with("example_dynfield_doc_dump: offset")));
/// assert!(dump().ends_with("bytes free\n"));
/// # Ok::<(), pktmem_mbuf::dynfield::DynFieldError>(())
/// ```
pub fn dump() -> String {
    use fmt::Write;
    let mut s = String::new();
    for i in registered() {
        // Writing to a String cannot fail.
        let _ = writeln!(s, "{i}");
    }
    let _ = writeln!(s, "{} of {DYN_AREA_LEN} bytes free", free_bytes());
    s
}

/// Why registering a dynamic field failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DynFieldError {
    /// The name is empty.
    EmptyName,
    /// The name is longer than [`MAX_DYN_NAME_LEN`] bytes.
    NameTooLong {
        /// Its length in bytes.
        len: usize,
        /// The longest allowed.
        max: usize,
    },
    /// A field of size 0 was asked for.
    ZeroSize {
        /// The field's name.
        name: String,
    },
    /// The field is larger than the whole dynamic area.
    TooLarge {
        /// Requested size in bytes.
        size: usize,
        /// The area's size.
        max: usize,
    },
    /// The alignment is not a power of two, or above the header's.
    BadAlign {
        /// Requested alignment.
        align: usize,
        /// The largest allowed (the header's alignment).
        max: usize,
    },
    /// No free run of `size` bytes at an `align`-multiple offset is left.
    NoRoom {
        /// The field's name.
        name: String,
        /// Requested size.
        size: usize,
        /// Requested alignment.
        align: usize,
        /// Free bytes left in the area (perhaps not contiguous or aligned).
        free: usize,
    },
    /// The name is registered with another size or alignment.
    Mismatch {
        /// The name.
        name: String,
        /// Requested size.
        size: usize,
        /// Requested alignment.
        align: usize,
        /// Registered size.
        existing_size: usize,
        /// Registered alignment.
        existing_align: usize,
    },
    /// The name is registered for another type of the same layout.
    TypeMismatch {
        /// The name.
        name: String,
        /// Requested type.
        ty: &'static str,
        /// Registered type.
        existing_ty: &'static str,
    },
}

impl fmt::Display for DynFieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EmptyName => f.write_str("dynamic field name is empty"),
            Self::NameTooLong { len, max } => {
                write!(f, "dynamic field name is {len} bytes long, the maximum is {max}")
            }
            Self::ZeroSize { name } => write!(f, "dynamic field '{name}' has size 0"),
            Self::TooLarge { size, max } => {
                write!(f, "dynamic field of {size} bytes does not fit the {max}-byte area")
            }
            Self::BadAlign { align, max } => write!(
                f,
                "dynamic field alignment {align} is not a power of two up to {max}"
            ),
            Self::NoRoom { name, size, align, free } => write!(
                f,
                "no room for dynamic field '{name}' ({size} bytes, align {align}): {free} bytes free, none fitting"
            ),
            Self::Mismatch { name, size, align, existing_size, existing_align } => write!(
                f,
                "dynamic field '{name}' asked with size {size}, align {align}, but registered with size {existing_size}, align {existing_align}"
            ),
            Self::TypeMismatch { name, ty, existing_ty } => write!(
                f,
                "dynamic field '{name}' asked as {ty}, but registered as {existing_ty}"
            ),
        }
    }
}

impl std::error::Error for DynFieldError {}
