//! CPU cache hints: asks the processor to start loading memory that is about to be read, so
//! that several cache misses overlap instead of stalling one after the other. A hint only: it
//! never changes memory, never faults, and is a no-op off x86_64.

/// Bytes in one cache line.
const LINE: usize = 64;

/// Starts loading every cache line of `value` into the cache.
#[inline]
pub fn prefetch<T>(value: &T) {
    lines((value as *const T).cast::<u8>(), std::mem::size_of::<T>());
}

/// Starts loading every cache line of the slice's items into the cache.
#[inline]
pub fn prefetch_slice<T>(items: &[T]) {
    lines(items.as_ptr().cast::<u8>(), std::mem::size_of_val(items));
}

/// Starts loading every cache line of `bytes` into the cache.
#[inline]
pub fn prefetch_bytes(bytes: &[u8]) {
    lines(bytes.as_ptr(), bytes.len());
}

/// Asks for the lines holding `len` bytes from `start`.
#[inline]
fn lines(start: *const u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = start.cast::<i8>();
        for offset in (0..len).step_by(LINE) {
            // SAFETY: PREFETCHT0 is a hint that reads nothing architecturally and cannot fault,
            // whatever the address; `wrapping_add` keeps the pointer arithmetic defined, and the
            // addresses lie within the value or slice the caller lent anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset)) }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (start, len);
}
