//! Caller buffers of owned values: a [`Source`] the ring moves values out of
//! (front first) and a [`Sink`] it moves values into, implemented for
//! `Vec<T>` and `arrayvec::ArrayVec<T, N>`. What was moved is gone from the
//! source (never dropped twice); what did not fit stays there, in order.

use std::mem::MaybeUninit;

use arrayvec::ArrayVec;

/// A buffer of owned values an enqueue can move out of, front first.
///
/// # Safety
///
/// Implementors promise that [`values`](Self::values) returns the
/// buffer's values in order, and that after [`forget_front`](Self::forget_front)`(k)`
/// the buffer no longer owns (will not drop or return) the first `k` and
/// holds the rest, in order, from its front.
///
/// ```
/// use pktmem_ring::Ring;
/// let ring = Ring::<String>::new(2).unwrap();
/// let mut src = vec!["a".to_string(), "b".into(), "c".into()];
/// assert_eq!(ring.enqueue_burst_from(&mut src), 2);
/// assert_eq!(src, ["c"]); // what did not fit stays
/// ```
pub unsafe trait Source<T> {
    /// The values, in the order they will be enqueued.
    fn values(&self) -> &[T];
    /// Removes the first `k` values without dropping them.
    ///
    /// # Safety
    ///
    /// - `k <= self.values().len()`;
    /// - the first `k` values have been moved out (bitwise) by the caller.
    unsafe fn forget_front(&mut self, k: usize);
}

/// A buffer a dequeue can move values into, at its end.
///
/// # Safety
///
/// Implementors promise that [`spare`](Self::spare) returns uninitialised
/// room right after the buffer's values, and that after
/// [`assume_pushed`](Self::assume_pushed)`(k)` the buffer owns the first
/// `k` slots of that room as its last values.
///
/// ```
/// use arrayvec::ArrayVec;
/// use pktmem_ring::Ring;
/// let ring = Ring::<Box<u32>>::new(8).unwrap();
/// for i in 0..5 {
///     ring.enqueue(Box::new(i)).unwrap();
/// }
/// let mut out = ArrayVec::<Box<u32>, 4>::new();
/// assert_eq!(ring.dequeue_burst_into(&mut out, 8), 4); // as many as fit
/// assert_eq!(*out[3], 3);
/// ```
pub unsafe trait Sink<T> {
    /// Room for up to `want` more values (fewer if the buffer cannot grow).
    fn spare(&mut self, want: usize) -> &mut [MaybeUninit<T>];
    /// Takes the first `k` slots of the room as values.
    ///
    /// # Safety
    ///
    /// - `k` is at most the length of the last [`spare`](Self::spare) slice,
    ///   with no change to the buffer since;
    /// - its first `k` slots have been initialised.
    unsafe fn assume_pushed(&mut self, k: usize);
}

// SAFETY: a `Vec`'s values are its slice; `forget_front` shifts the rest
// down and shortens the length, so the moved values are not dropped.
unsafe impl<T> Source<T> for Vec<T> {
    fn values(&self) -> &[T] {
        self
    }

    unsafe fn forget_front(&mut self, k: usize) {
        let len = self.len();
        debug_assert!(k <= len);
        // SAFETY: `k <= len` (caller); the first `k` were moved out, so
        // shortening first and shifting the `len - k` others down (an
        // overlapping copy) leaves exactly them owned.
        unsafe {
            self.set_len(0);
            let p = self.as_mut_ptr();
            std::ptr::copy(p.add(k), p, len - k);
            self.set_len(len - k);
        }
    }
}

// SAFETY: `spare` is the vector's spare capacity (grown to `want`), right
// after its values; `assume_pushed` extends the length over initialised
// slots only (caller).
unsafe impl<T> Sink<T> for Vec<T> {
    fn spare(&mut self, want: usize) -> &mut [MaybeUninit<T>] {
        self.reserve(want);
        &mut self.spare_capacity_mut()[..want]
    }

    unsafe fn assume_pushed(&mut self, k: usize) {
        debug_assert!(self.len() + k <= self.capacity());
        // SAFETY: the `k` slots after the values were initialised (caller).
        unsafe { self.set_len(self.len() + k) };
    }
}

// SAFETY: as for `Vec`: the values are the slice, and `forget_front`
// shortens before shifting the rest down.
unsafe impl<T, const N: usize> Source<T> for ArrayVec<T, N> {
    fn values(&self) -> &[T] {
        self
    }

    unsafe fn forget_front(&mut self, k: usize) {
        let len = self.len();
        debug_assert!(k <= len);
        // SAFETY: as for `Vec`.
        unsafe {
            self.set_len(0);
            let p = self.as_mut_ptr();
            std::ptr::copy(p.add(k), p, len - k);
            self.set_len(len - k);
        }
    }
}

// SAFETY: `spare` is the array's unused tail (at most `want` long), right
// after its values; `assume_pushed` extends the length over initialised
// slots only (caller).
unsafe impl<T, const N: usize> Sink<T> for ArrayVec<T, N> {
    fn spare(&mut self, want: usize) -> &mut [MaybeUninit<T>] {
        let len = self.len();
        let k = want.min(N - len);
        // SAFETY: slots `len..len + k` are inside the array (`len + k <= N`)
        // and not values of it; `&mut self` makes this the only view.
        unsafe { std::slice::from_raw_parts_mut(self.as_mut_ptr().add(len).cast(), k) }
    }

    unsafe fn assume_pushed(&mut self, k: usize) {
        debug_assert!(self.len() + k <= N);
        // SAFETY: the `k` slots after the values were initialised (caller).
        unsafe { self.set_len(self.len() + k) };
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn vec_source_forgets_the_front_only() {
        let mut v: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        // SAFETY: "a" is moved out here and forgotten by `v` just below.
        let a = unsafe { std::ptr::read(&v.values()[0]) };
        // SAFETY: the first value was moved out just above.
        unsafe { v.forget_front(1) };
        assert_eq!(
            (a.as_str(), v.as_slice()),
            ("a", &["b".to_string(), "c".into()][..])
        );
    }

    #[test]
    fn arrayvec_sink_stops_at_capacity() {
        let mut v = ArrayVec::<u8, 3>::new();
        v.push(1);
        let room = v.spare(10);
        assert_eq!(room.len(), 2);
        room[0].write(2);
        // SAFETY: one slot written just above.
        unsafe { v.assume_pushed(1) };
        assert_eq!(v.as_slice(), [1, 2]);
        let mut w: Vec<u8> = Vec::new();
        assert_eq!(w.spare(5).len(), 5);
    }
}
