use std::ptr::NonNull;

use port::PacketBuf;

/// An owned, single-segment DPDK packet buffer. Dropping it returns it to its pool;
/// transmitting it hands ownership to the driver.
#[repr(transparent)]
#[derive(Debug)]
pub struct Mbuf(NonNull<dpdk_sys::rte_mbuf>);

// SAFETY: an Mbuf is uniquely owned; DPDK allows an mbuf to be freed or sent from any thread
// (mempool puts are thread-safe), so moving ownership across threads is sound.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    /// `p` must be null or an mbuf that nobody else owns or will free.
    pub(crate) unsafe fn from_raw(p: *mut dpdk_sys::rte_mbuf) -> Option<Mbuf> {
        NonNull::new(p).map(Mbuf)
    }

    /// Gives up ownership (the caller must see that it is freed or transmitted).
    pub(crate) fn into_raw(self) -> *mut dpdk_sys::rte_mbuf {
        let p = self.0.as_ptr();
        std::mem::forget(self);
        p
    }

    /// Number of segments (receive paths only accept 1).
    pub fn segments(&self) -> u16 {
        // SAFETY: self owns a live mbuf.
        unsafe { dpdk_sys::shim_rte_pktmbuf_nb_segs(self.0.as_ptr()) }
    }

    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: self owns a live mbuf; mtod is buf_addr + data_off.
        unsafe { dpdk_sys::shim_rte_pktmbuf_mtod(self.0.as_ptr()) }
    }
}

impl PacketBuf for Mbuf {
    fn len(&self) -> usize {
        // SAFETY: self owns a live mbuf.
        unsafe { dpdk_sys::shim_rte_pktmbuf_data_len(self.0.as_ptr()) as usize }
    }

    fn data(&self) -> &[u8] {
        let len = self.len();
        // SAFETY: the first segment's data area [mtod, mtod + data_len) is initialised
        // packet bytes owned by this mbuf for as long as `self` is borrowed.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), len) }
    }

    fn data_mut(&mut self) -> &mut [u8] {
        let len = self.len();
        // SAFETY: as in `data`, and `&mut self` guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), len) }
    }

    fn headroom(&self) -> usize {
        // SAFETY: self owns a live mbuf.
        unsafe { dpdk_sys::shim_rte_pktmbuf_headroom(self.0.as_ptr()) as usize }
    }

    fn tailroom(&self) -> usize {
        // SAFETY: self owns a live mbuf.
        unsafe { dpdk_sys::shim_rte_pktmbuf_tailroom(self.0.as_ptr()) as usize }
    }

    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: append returns null when the tailroom is too small, else a pointer to `n`
        // bytes inside the buffer that now belong to the packet.
        unsafe {
            let p = dpdk_sys::shim_rte_pktmbuf_append(self.0.as_ptr(), n16);
            (!p.is_null()).then(|| std::slice::from_raw_parts_mut(p, n))
        }
    }

    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: prepend returns null when the headroom is too small, else the new start of
        // the data with `n` more bytes in front.
        unsafe {
            let p = dpdk_sys::shim_rte_pktmbuf_prepend(self.0.as_ptr(), n16);
            (!p.is_null()).then(|| std::slice::from_raw_parts_mut(p, n))
        }
    }

    fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: adj checks the length and returns null when it is too short.
        unsafe { !dpdk_sys::shim_rte_pktmbuf_adj(self.0.as_ptr(), n16).is_null() }
    }

    fn trim(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: trim checks the length and returns -1 when it is too short.
        unsafe { dpdk_sys::shim_rte_pktmbuf_trim(self.0.as_ptr(), n16) == 0 }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own this mbuf; free returns it (and any chained segments) to its pool.
        unsafe { dpdk_sys::shim_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}
