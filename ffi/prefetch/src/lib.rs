//! Cache prefetch hints. The worker demuxes a whole receive burst first and asks for the
//! leg records and sockets its frames will touch, so that their cache misses overlap instead
//! of being paid one after another (with traffic spread over 100 000 legs, nearly every
//! frame's leg is out of cache).
//!
//! A prefetch is a hint: it never faults, whatever the address, and changes no value, so
//! these functions are safe for any pointer. On targets without a hint they do nothing.

#![no_std]

const LINE: usize = 64;

/// Asks for the cache lines of `len` bytes from `addr` (at most 16 lines).
#[inline(always)]
pub fn bytes(addr: *const u8, len: usize) {
    let lines = len.div_ceil(LINE).min(16);
    for i in 0..lines {
        line(addr.wrapping_add(i * LINE));
    }
}

/// Asks for the lines `value` spans.
#[inline(always)]
pub fn value<T>(value: &T) {
    bytes(value as *const T as *const u8, core::mem::size_of::<T>());
}

#[inline(always)]
fn line(addr: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 is a hint: it does not fault on any address, mapped or not, and
    // writes nothing; SSE is part of the x86_64 baseline, so the instruction exists.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(addr as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = addr;
}

#[cfg(test)]
mod tests {
    #[test]
    fn any_address_is_only_a_hint() {
        let v = [7u8; 300];
        super::value(&v);
        super::bytes(core::ptr::null(), 4096);
        super::bytes(usize::MAX as *const u8, 64);
        assert_eq!(v[299], 7);
    }
}
