use std::ffi::CString;
use std::ptr::NonNull;
use std::sync::Arc;

use super::{DpdkError, Eal, Mbuf};
use port::Burst;

/// Sizing of a packet-buffer pool.
#[derive(Debug, Clone)]
pub struct MempoolConfig {
    pub name: String,
    /// Number of mbufs; DPDK prefers 2^n - 1.
    pub size: u32,
    /// Per-lcore cache (0 for none); at most `size / 1.5` and 512.
    pub cache_size: u32,
    /// Data room per mbuf, headroom included.
    pub data_room: u16,
    /// All mbufs in one virtually contiguous area, allowed to cross page boundaries: what an
    /// AF_XDP port needs (it registers the pool as its UMEM from the first chunk on). Not for
    /// NICs that DMA by physical address without an IOMMU.
    pub packed: bool,
}

impl MempoolConfig {
    /// The pool for a port on `device`: packed in one area when it is an AF_XDP port.
    pub fn for_device(name: impl Into<String>, size: u32, device: &str) -> Self {
        MempoolConfig {
            packed: device.starts_with("net_af_xdp"),
            ..MempoolConfig::new(name, size)
        }
    }

    pub fn new(name: impl Into<String>, size: u32) -> Self {
        MempoolConfig {
            name: name.into(),
            size,
            cache_size: 256.min(size / 2),
            // SAFETY: returns a compile-time constant.
            data_room: unsafe { dpdk_sys::shim_rte_mbuf_default_buf_size() },
            packed: false,
        }
    }
}

/// A DPDK packet mbuf pool (`rte_pktmbuf_pool_create`), shared by the ports that receive into
/// it and the threads that allocate from it.
#[derive(Debug)]
pub struct Mempool {
    ptr: NonNull<dpdk_sys::rte_mempool>,
    name: String,
    size: u32,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe (the default ring ops);
// per-lcore caches are per-thread state inside DPDK.
unsafe impl Send for Mempool {}
// SAFETY: as above; every method takes &self and maps to a thread-safe DPDK call.
unsafe impl Sync for Mempool {}

impl Mempool {
    pub fn create(_eal: &Eal, cfg: &MempoolConfig) -> Result<Arc<Mempool>, DpdkError> {
        let name = CString::new(cfg.name.as_str())
            .map_err(|_| DpdkError::InvalidConfig(format!("pool name {:?}", cfg.name)))?;
        let p = if cfg.packed {
            // SAFETY: as below.
            unsafe {
                dpdk_sys::shim_rte_pktmbuf_pool_create_packed(
                    name.as_ptr(),
                    cfg.size,
                    cfg.cache_size,
                    cfg.data_room,
                    dpdk_sys::SOCKET_ID_ANY,
                )
            }
        } else {
            // SAFETY: the EAL is initialised (witnessed by `_eal`) and `name` is
            // NUL-terminated; DPDK copies the name.
            unsafe {
                dpdk_sys::rte_pktmbuf_pool_create(
                    name.as_ptr(),
                    cfg.size,
                    cfg.cache_size,
                    0,
                    cfg.data_room,
                    dpdk_sys::SOCKET_ID_ANY,
                )
            }
        };
        let ptr = NonNull::new(p).ok_or_else(|| DpdkError::last("rte_pktmbuf_pool_create"))?;
        // SAFETY: `ptr` is the live pool just created.
        let chunks = unsafe { dpdk_sys::shim_rte_mempool_mem_chunks(ptr.as_ptr()) };
        tracing::debug!(pool = %cfg.name, size = cfg.size, packed = cfg.packed, chunks, "mbuf pool created");
        if cfg.packed && chunks != 1 {
            // SAFETY: no mbuf of it was handed out.
            unsafe { dpdk_sys::rte_mempool_free(ptr.as_ptr()) };
            return Err(DpdkError::InvalidConfig(format!(
                "mbuf pool {} came in {chunks} memory chunks, one is needed (give EAL more memory, -m)",
                cfg.name
            )));
        }
        Ok(Arc::new(Mempool {
            ptr,
            name: cfg.name.clone(),
            size: cfg.size,
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the mbufs lie back to back from the first (what an AF_XDP UMEM over the pool
    /// assumes): (the span of their memory, the span they would take packed).
    pub fn packed_span(&self) -> (u64, u64) {
        let mut obj = 0u64;
        // SAFETY: `ptr` is a live mempool; `obj` is a valid out pointer; iterating the
        // objects reads the pool's headers only.
        let span = unsafe { dpdk_sys::shim_rte_mempool_obj_span(self.ptr.as_ptr(), &mut obj) };
        (span, obj * self.size as u64)
    }

    /// Memory chunks the pool's mbufs live in.
    pub fn mem_chunks(&self) -> u32 {
        // SAFETY: `ptr` is a live mempool owned by this value.
        unsafe { dpdk_sys::shim_rte_mempool_mem_chunks(self.ptr.as_ptr()) }
    }

    pub fn size(&self) -> u32 {
        self.size
    }

    /// Mbufs currently allocated (held by ports, queues, or the application).
    pub fn in_use(&self) -> u32 {
        // SAFETY: `ptr` is a live mempool owned by this value.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Mbufs free in the pool (ring plus per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: `ptr` is a live mempool owned by this value.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: `ptr` is a live pktmbuf pool; a non-null result is a fresh mbuf we own.
        unsafe { Mbuf::from_raw(dpdk_sys::shim_rte_pktmbuf_alloc(self.ptr.as_ptr())) }
    }

    /// Fills `out` up to `n` more mbufs in one call; all or nothing, like DPDK.
    pub fn alloc_bulk(&self, out: &mut Burst<Mbuf>, n: usize) -> bool {
        let n = n.min(out.remaining_capacity());
        if n == 0 {
            return true;
        }
        let mut raw = [std::ptr::null_mut::<dpdk_sys::rte_mbuf>(); port::BURST];
        // SAFETY: `raw` has room for `n` <= BURST pointers; on success DPDK wrote `n` fresh
        // mbufs that we now own.
        let ret = unsafe {
            dpdk_sys::shim_rte_pktmbuf_alloc_bulk(self.ptr.as_ptr(), raw.as_mut_ptr(), n as u32)
        };
        if ret != 0 {
            return false;
        }
        for p in &raw[..n] {
            // SAFETY: each pointer is a fresh non-null mbuf from the bulk allocation.
            if let Some(m) = unsafe { Mbuf::from_raw(*p) } {
                out.push(m);
            }
        }
        true
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.ptr.as_ptr()
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        let in_use = self.in_use();
        if in_use != 0 {
            // Freeing now would turn every outstanding mbuf into a use-after-free.
            tracing::error!(pool = %self.name, in_use, "mempool dropped with mbufs outstanding; leaking it");
            return;
        }
        // SAFETY: no mbuf of this pool is outstanding and no port references it any more
        // (ports hold an Arc to the pool).
        unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) }
    }
}
