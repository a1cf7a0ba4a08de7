use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{DpdkError, Eal, Mbuf, Mempool};
use port::{Burst, PacketBuf, Port, PortCapabilities, PortDrops, BURST};

/// How to set up an ethdev port.
#[derive(Debug, Clone)]
pub struct EthDevConfig {
    /// Queue pairs (one per worker).
    pub queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
}

impl Default for EthDevConfig {
    fn default() -> Self {
        EthDevConfig {
            queues: 1,
            rx_descriptors: 512,
            tx_descriptors: 512,
        }
    }
}

/// The least receive ring an AF_XDP queue gets (see `EthDev::start`).
const AF_XDP_RX_RING: u16 = 2048;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EthStats {
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_no_mbuf: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
    pub full_duplex: bool,
}

#[derive(Debug)]
struct Inner {
    port_id: u16,
    name: String,
    driver: String,
    mac: [u8; 6],
    max_frame: usize,
    pool: Arc<Mempool>,
    taken: Vec<AtomicBool>,
    /// mbufs the driver took for itself at start and keeps (an AF_XDP port's fill ring).
    held_by_driver: u32,
    /// An AF_XDP port's kernel sockets (a tap port's devices) by queue, the driver's, found as
    /// they appeared while the queue was set up; empty for other drivers.
    queue_sockets: Vec<Vec<std::os::fd::RawFd>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // SAFETY: the last handle to the port is gone, so no thread is in rx/tx burst on it.
        unsafe {
            let r = dpdk_sys::rte_eth_dev_stop(self.port_id);
            if r < 0 {
                tracing::warn!(port = self.port_id, err = %DpdkError::from_errno("rte_eth_dev_stop", -r), "stopping port");
            }
            dpdk_sys::rte_eth_dev_close(self.port_id);
        }
        tracing::debug!(port = self.port_id, name = %self.name, "ethdev closed");
    }
}

/// A started ethdev port with `queues` rx/tx queue pairs. Each queue pair is taken once as a
/// [`DpdkPort`]; the device is stopped and closed when the last handle goes.
#[derive(Debug)]
pub struct EthDev {
    inner: Arc<Inner>,
}

impl EthDev {
    /// Finds a port by its device name (`net_null0`, `net_tap0`, a PCI address).
    pub fn port_by_name(_eal: &Eal, name: &str) -> Result<u16, DpdkError> {
        let c = CString::new(name).map_err(|_| DpdkError::NoSuchDevice(name.to_owned()))?;
        let mut id = 0u16;
        // SAFETY: the EAL is initialised; `c` is NUL-terminated and `id` a valid out pointer.
        let r = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c.as_ptr(), &mut id) };
        if r != 0 {
            return Err(DpdkError::NoSuchDevice(name.to_owned()));
        }
        Ok(id)
    }

    /// Configures `port_id` with `cfg.queues` queue pairs receiving into `pool`, and starts it.
    pub fn start(
        eal: &Eal,
        port_id: u16,
        cfg: &EthDevConfig,
        pool: Arc<Mempool>,
    ) -> Result<EthDev, DpdkError> {
        let _ = eal;
        // SAFETY: pure check of the port table.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(port_id) } == 0 {
            return Err(DpdkError::NoSuchPort(port_id));
        }
        if cfg.queues == 0 {
            return Err(DpdkError::InvalidConfig("at least one queue pair".into()));
        }
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port, valid out pointer.
        DpdkError::check("rte_eth_dev_info_get", unsafe {
            dpdk_sys::rte_eth_dev_info_get(port_id, &mut info)
        })?;
        if cfg.queues > info.max_rx_queues || cfg.queues > info.max_tx_queues {
            return Err(DpdkError::InvalidConfig(format!(
                "{} queue pairs requested, port {port_id} has at most {} rx / {} tx",
                cfg.queues, info.max_rx_queues, info.max_tx_queues
            )));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: driver_name points to a static NUL-terminated string of the PMD.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        if driver == "net_af_xdp" {
            // The PMD registers the pool's memory as its UMEM, from the first mbuf on for
            // (mbufs x mbuf size) bytes: an mbuf beyond that, handed to the kernel's fill ring,
            // is refused there and never comes back, until receiving stops.
            let (span, packed) = pool.packed_span();
            if span > packed {
                return Err(DpdkError::InvalidConfig(format!(
                    "the mbuf pool {} spans {span} bytes but an AF_XDP UMEM over it covers {packed}: create it packed (MempoolConfig::packed)",
                    pool.name()
                )));
            }
        }
        // An AF_XDP socket's receive ring is filled by the kernel on whichever core the
        // sender runs, also while this worker sits in its own transmit system call (where the
        // kernel delivers what it sends, on a veth, and takes the replies). 512 entries
        // overflowed there: 14 % of a bulk relay's frames dropped before the worker saw them,
        // each one retransmitted. 2048 is the kernel's and libxdp's default ring size.
        let rx_descriptors = if driver == "net_af_xdp" {
            cfg.rx_descriptors.max(AF_XDP_RX_RING)
        } else {
            cfg.rx_descriptors
        };
        let in_use_before = pool.in_use();
        let conf = dpdk_sys::rte_eth_conf::default();
        // SAFETY: valid port and configuration structure.
        DpdkError::check("rte_eth_dev_configure", unsafe {
            dpdk_sys::rte_eth_dev_configure(port_id, cfg.queues, cfg.queues, &conf)
        })?;
        // SAFETY: valid port.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port_id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        let list_descriptors = crate::wake::queue_descriptors(&driver);
        let mut queue_sockets = Vec::new();
        for q in 0..cfg.queues {
            // The driver opens a queue's AF_XDP socket (or tap device) when it sets the queue
            // up: the ones that appear meanwhile are that queue's (`PortSockets` for a
            // worker's sleep).
            let before = list_descriptors.and_then(|list| list().ok());
            // SAFETY: configured port, queue index in range, null conf = driver defaults,
            // and `pool` outlives the port (Inner holds it).
            DpdkError::check("rte_eth_rx_queue_setup", unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    port_id,
                    q,
                    rx_descriptors,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            })?;
            if let Some(list) = list_descriptors {
                // One entry per queue, empty where the descriptors could not be read (then
                // every worker sleeps on every AF_XDP socket of the process, or on a timer).
                let new = match (before, list()) {
                    (Some(before), Ok(after)) => after
                        .into_iter()
                        .filter(|fd| !before.contains(fd))
                        .collect(),
                    _ => Vec::new(),
                };
                queue_sockets.push(new);
            }
            // SAFETY: as above.
            DpdkError::check("rte_eth_tx_queue_setup", unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(
                    port_id,
                    q,
                    cfg.tx_descriptors,
                    socket,
                    std::ptr::null(),
                )
            })?;
        }
        // SAFETY: configured port with all queues set up.
        DpdkError::check("rte_eth_dev_start", unsafe {
            dpdk_sys::rte_eth_dev_start(port_id)
        })?;
        // Some vdevs (net_null) do not implement these; the port works without them.
        // SAFETY: started port.
        unsafe {
            dpdk_sys::rte_eth_promiscuous_enable(port_id);
            dpdk_sys::rte_eth_dev_set_link_up(port_id);
        }
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port, valid out pointer.
        DpdkError::check("rte_eth_macaddr_get", unsafe {
            dpdk_sys::rte_eth_macaddr_get(port_id, &mut addr)
        })?;
        let mut name_buf = [0 as std::ffi::c_char; 64];
        // SAFETY: the buffer is RTE_ETH_NAME_MAX_LEN (64) bytes as the API requires.
        let name =
            if unsafe { dpdk_sys::rte_eth_dev_get_name_by_port(port_id, name_buf.as_mut_ptr()) }
                == 0
            {
                // SAFETY: DPDK wrote a NUL-terminated name into the buffer.
                unsafe { CStr::from_ptr(name_buf.as_ptr()) }
                    .to_string_lossy()
                    .into_owned()
            } else {
                format!("port{port_id}")
            };
        // The frame limit we promise smoltcp: a standard 1500-byte MTU unless the data room is
        // smaller (single-segment mbufs only).
        let room = pool_room(&pool);
        let max_frame = 1514usize.min(room);
        // An AF_XDP port fills its kernel fill ring from the pool when its queues are set up
        // and does not give those mbufs back when it closes; other drivers free what their
        // rings hold.
        let held_by_driver = if driver == "net_af_xdp" {
            pool.in_use().saturating_sub(in_use_before)
        } else {
            0
        };
        tracing::info!(port = port_id, %name, %driver, queues = cfg.queues, rx_descriptors, mac = ?addr.addr_bytes, "ethdev started");
        Ok(EthDev {
            inner: Arc::new(Inner {
                port_id,
                name,
                driver,
                mac: addr.addr_bytes,
                max_frame,
                pool,
                taken: (0..cfg.queues).map(|_| AtomicBool::new(false)).collect(),
                held_by_driver,
                queue_sockets,
            }),
        })
    }

    pub fn port_id(&self) -> u16 {
        self.inner.port_id
    }

    /// The kernel sockets of an AF_XDP port's queue (a tap port's device), which poll readable
    /// while a frame waits for the queue (`PortSockets`); none for other drivers, or where
    /// they were not told apart.
    pub fn queue_sockets(&self, queue: u16) -> &[std::os::fd::RawFd] {
        self.inner
            .queue_sockets
            .get(queue as usize)
            .map_or(&[], Vec::as_slice)
    }

    pub fn name(&self) -> &str {
        &self.inner.name
    }

    pub fn driver(&self) -> &str {
        &self.inner.driver
    }

    pub fn mac(&self) -> [u8; 6] {
        self.inner.mac
    }

    pub fn pool(&self) -> &Arc<Mempool> {
        &self.inner.pool
    }

    /// mbufs the driver took at start and keeps for itself: an AF_XDP port's fill ring
    /// (they are not returned when the port closes). The pool is back to its baseline when
    /// this many are in use.
    pub fn held_by_driver(&self) -> u32 {
        self.inner.held_by_driver
    }

    /// Takes queue pair `queue` for one worker. Each queue can be taken once.
    pub fn queue(&self, queue: u16) -> Result<DpdkPort, DpdkError> {
        let slot = self
            .inner
            .taken
            .get(queue as usize)
            .ok_or(DpdkError::QueueUnavailable {
                port: self.inner.port_id,
                queue,
            })?;
        if slot.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::QueueUnavailable {
                port: self.inner.port_id,
                queue,
            });
        }
        Ok(DpdkPort {
            dev: Arc::clone(&self.inner),
            port_id: self.inner.port_id,
            queue,
            drops: PortDrops::default(),
            _not_sync: PhantomData,
        })
    }

    pub fn stats(&self) -> Result<EthStats, DpdkError> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: started port, valid out pointer.
        DpdkError::check("rte_eth_stats_get", unsafe {
            dpdk_sys::rte_eth_stats_get(self.inner.port_id, &mut s)
        })?;
        Ok(EthStats {
            rx_packets: s.ipackets,
            tx_packets: s.opackets,
            rx_bytes: s.ibytes,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_no_mbuf: s.rx_nombuf,
        })
    }

    pub fn link(&self) -> Result<LinkStatus, DpdkError> {
        let mut l = dpdk_sys::rte_eth_link::default();
        // SAFETY: started port, valid out pointer.
        DpdkError::check("rte_eth_link_get_nowait", unsafe {
            dpdk_sys::rte_eth_link_get_nowait(self.inner.port_id, &mut l)
        })?;
        Ok(LinkStatus {
            up: l.link_status() as u32 == dpdk_sys::RTE_ETH_LINK_UP,
            speed_mbps: l.link_speed,
            full_duplex: l.link_duplex() as u32 == dpdk_sys::RTE_ETH_LINK_FULL_DUPLEX,
        })
    }
}

fn pool_room(pool: &Mempool) -> usize {
    // The data room is fixed at pool creation; measure it from a buffer rather than keep a
    // second copy of the configuration.
    match pool.alloc() {
        Some(m) => m.headroom() + m.tailroom() - headroom_size(),
        None => 1514,
    }
}

fn headroom_size() -> usize {
    // SAFETY: returns a compile-time constant.
    unsafe { dpdk_sys::shim_rte_pktmbuf_headroom_size() as usize }
}

/// One rx/tx queue pair of an [`EthDev`]. It may move to another thread but is used by one
/// thread at a time (`!Sync`), as DPDK's lock-free queues require.
#[derive(Debug)]
pub struct DpdkPort {
    dev: Arc<Inner>,
    port_id: u16,
    queue: u16,
    drops: PortDrops,
    _not_sync: PhantomData<std::cell::Cell<()>>,
}

impl DpdkPort {
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    pub fn pool(&self) -> &Arc<Mempool> {
        &self.dev.pool
    }
}

impl Drop for DpdkPort {
    /// Reclaims the mbufs of frames still in flight: a driver frees a sent frame's mbuf only
    /// when it next transmits (an AF_XDP port reaps its completion ring then), so an empty
    /// transmit call, repeated while the kernel finishes, gives them back before the port
    /// closes.
    fn drop(&mut self) {
        let before = self.dev.pool.in_use();
        for _ in 0..20 {
            // SAFETY: this handle is the only user of (port, queue); a zero-length burst
            // hands the driver nothing.
            unsafe {
                dpdk_sys::shim_rte_eth_tx_burst(self.port_id, self.queue, std::ptr::null_mut(), 0)
            };
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        tracing::debug!(
            port = self.port_id,
            queue = self.queue,
            reclaimed = before.saturating_sub(self.dev.pool.in_use()),
            "queue released"
        );
    }
}

impl Port for DpdkPort {
    type Buf = Mbuf;

    fn rx_burst(&mut self, out: &mut Burst<Mbuf>) -> usize {
        let want = out.remaining_capacity();
        if want == 0 {
            return 0;
        }
        let mut raw = [std::ptr::null_mut::<dpdk_sys::rte_mbuf>(); BURST];
        // SAFETY: this handle is the only user of (port, queue); `raw` has room for `want`.
        let n = unsafe {
            dpdk_sys::shim_rte_eth_rx_burst(self.port_id, self.queue, raw.as_mut_ptr(), want as u16)
        } as usize;
        let before = out.len();
        for p in &raw[..n] {
            // SAFETY: rx_burst handed us ownership of `n` mbufs.
            let Some(m) = (unsafe { Mbuf::from_raw(*p) }) else {
                continue;
            };
            if m.segments() != 1 {
                // Jumbo/scattered frames are outside what we promise smoltcp; drop (free) it.
                self.drops.rx_multi_segment += 1;
                continue;
            }
            out.push(m);
        }
        out.len() - before
    }

    fn tx_burst(&mut self, frames: &mut Burst<Mbuf>) -> usize {
        if frames.is_empty() {
            return 0;
        }
        // Mbuf is #[repr(transparent)] over a non-null rte_mbuf pointer, so the burst's storage
        // is an array of `*mut rte_mbuf` as tx_burst expects.
        let ptr = frames.as_mut_ptr() as *mut *mut dpdk_sys::rte_mbuf;
        // SAFETY: `ptr` points to `frames.len()` owned mbufs; the driver takes ownership of the
        // first `sent` of them, which we then forget below without freeing.
        let sent = unsafe {
            dpdk_sys::shim_rte_eth_tx_burst(self.port_id, self.queue, ptr, frames.len() as u16)
        } as usize;
        for m in frames.drain(..sent) {
            let _ = m.into_raw();
        }
        sent
    }

    fn alloc(&mut self) -> Option<Mbuf> {
        self.dev.pool.alloc()
    }

    fn mac(&self) -> [u8; 6] {
        self.dev.mac
    }

    fn capabilities(&self) -> PortCapabilities {
        PortCapabilities {
            max_frame: self.dev.max_frame,
            ..PortCapabilities::default()
        }
    }

    fn drops(&self) -> PortDrops {
        self.drops
    }
}
