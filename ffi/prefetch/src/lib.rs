//! Cache prefetch hints. The worker demuxes a whole receive burst first and asks for the
//! leg records and sockets its frames will touch, so that their cache misses overlap instead
//! of being paid one after another (with traffic spread over 100 000 legs, nearly every
//! frame's leg is out of cache).
//!
//! A prefetch is a hint: it never faults, whatever the address, and changes no value, so
//! these functions are safe for any pointer. On targets without a hint they do nothing.

#![no_std]

const LINE: usize = 64;

/// The most lines one call asks for: a smoltcp TCP socket (992 bytes) at any alignment.
const MAX_LINES: usize = 17;

/// Asks for every cache line that `len` bytes from `addr` touch (at most `MAX_LINES`): an
/// object that does not start on a line spans one more line than its length says.
#[inline(always)]
pub fn bytes(addr: *const u8, len: usize) {
    let (first, lines) = span(addr, len);
    for i in 0..lines {
        line(first.wrapping_add(i * LINE));
    }
}

/// The first line `len` bytes from `addr` touch and how many lines to ask for.
#[inline(always)]
fn span(addr: *const u8, len: usize) -> (*const u8, usize) {
    if len == 0 {
        return (addr, 0);
    }
    let offset = addr as usize % LINE;
    let lines = offset.saturating_add(len).div_ceil(LINE).min(MAX_LINES);
    (addr.wrapping_sub(offset), lines)
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
    fn every_line_an_object_touches_is_asked_for() {
        let at = |a: usize, len| {
            let (first, n) = super::span(a as *const u8, len);
            (first as usize, n)
        };
        assert_eq!(at(640, 992), (640, 16));
        assert_eq!(at(680, 992), (640, 17));
        assert_eq!(at(700, 1), (640, 1));
        assert_eq!(at(700, 0).1, 0);
        assert_eq!(at(640, 64 * 40), (640, super::MAX_LINES));
    }

    #[test]
    fn any_address_is_only_a_hint() {
        let v = [7u8; 300];
        super::value(&v);
        super::bytes(core::ptr::null(), 4096);
        super::bytes(usize::MAX as *const u8, 64);
        super::bytes(usize::MAX as *const u8, usize::MAX);
        super::bytes(v.as_ptr().wrapping_add(1), 0);
        assert_eq!(v[299], 7);
    }
}
