use std::ffi::{c_char, c_int, CString};
use std::sync::Mutex;

use super::DpdkError;

/// Proof that DPDK's Environment Abstraction Layer is initialised in this process.
///
/// `rte_eal_init` may succeed only once per process, so the handle is a `'static` singleton.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: Mutex<Option<&'static Eal>> = Mutex::new(None);

impl Eal {
    /// Initialises the EAL from an argument list (without the program name), e.g.
    /// `["-l", "0", "--no-huge", "--no-pci", "--no-shconf", "-m", "256", "--vdev=net_null0"]`.
    ///
    /// A second call after success returns the same handle when the arguments are equal and
    /// an error otherwise. A failed call returns DPDK's own reason; whether a later call may
    /// succeed is up to DPDK (it refuses some retries with `EALREADY`).
    pub fn init<I, S>(args: I) -> Result<&'static Eal, DpdkError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let args: Vec<String> = args.into_iter().map(|s| s.as_ref().to_owned()).collect();
        let mut slot = EAL.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(eal) = *slot {
            if eal.args == args {
                return Ok(eal);
            }
            return Err(DpdkError::from_errno("rte_eal_init", libc_ealready()));
        }

        let mut owned = Vec::with_capacity(args.len() + 1);
        owned.push(CString::new("imsagw").expect("no NUL in a literal"));
        for a in &args {
            owned.push(CString::new(a.as_str()).map_err(|_| DpdkError::NulInArgument(a.clone()))?);
        }
        // EAL may keep pointers into argv (and permutes it), so argv lives for the process.
        let owned: &'static mut [CString] = Box::leak(owned.into_boxed_slice());
        let argv: &'static mut [*mut c_char] = Box::leak(
            owned
                .iter()
                .map(|s| s.as_ptr() as *mut c_char)
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = argv.len() as c_int;
        // SAFETY: argc/argv describe a valid, NUL-terminated argument vector that outlives the
        // process; the global lock above serialises calls into rte_eal_init.
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::last("rte_eal_init"));
        }
        let eal: &'static Eal = Box::leak(Box::new(Eal { args }));
        *slot = Some(eal);
        tracing::info!(args = ?eal.args, "DPDK EAL initialised");
        Ok(eal)
    }

    /// EAL arguments for a machine without a DPDK NIC or hugepages (CI, laptops, the demo):
    /// one lcore, 256 MB of ordinary memory, no PCI scan, no shared config, and `vdevs`
    /// (`net_tap0,iface=NAME`, `net_null0`, ...).
    pub fn no_nic_args(vdevs: &[&str]) -> Vec<String> {
        let mut a: Vec<String> = [
            "-l",
            "0",
            "--no-huge",
            "--no-pci",
            "--no-shconf",
            "--no-telemetry",
            "-m",
            "256",
            "--log-level=lib.eal:error",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(vdevs.iter().map(|v| format!("--vdev={v}")));
        a
    }

    /// The handle, if the EAL has been initialised in this process.
    pub fn get() -> Option<&'static Eal> {
        *EAL.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The arguments the EAL was initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Number of lcores the EAL was given.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised (this handle exists).
        unsafe { dpdk_sys::rte_lcore_count() }
    }

    /// The lcore id of the calling thread (`u32::MAX` for a thread unknown to DPDK).
    pub fn lcore_id(&self) -> u32 {
        // SAFETY: reads a per-thread variable.
        unsafe { dpdk_sys::shim_rte_lcore_id() }
    }

    /// Registers the calling (non-EAL) thread so that it gets an lcore id and mempool caches.
    pub fn register_thread(&self) -> Result<u32, DpdkError> {
        // SAFETY: the EAL is initialised; registration only touches per-thread state.
        let ret = unsafe { dpdk_sys::rte_thread_register() };
        if ret < 0 {
            return Err(DpdkError::last("rte_thread_register"));
        }
        Ok(self.lcore_id())
    }
}

const fn libc_ealready() -> i32 {
    114 // EALREADY on Linux
}
