use std::ffi::CStr;

/// An error from DPDK, carrying the text of `rte_strerror` for the errno DPDK reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DpdkError {
    #[error("{op} failed: {message} (errno {errno})")]
    Call {
        op: &'static str,
        errno: i32,
        message: String,
    },
    #[error("EAL argument {0:?} contains a NUL byte")]
    NulInArgument(String),
    #[error("DPDK's EAL is not initialised in this process")]
    EalNotInitialised,
    #[error("no DPDK ethdev named {0:?}")]
    NoSuchDevice(String),
    #[error("ethdev port {0} does not exist")]
    NoSuchPort(u16),
    #[error("queue {queue} of port {port} is already handed out or out of range")]
    QueueUnavailable { port: u16, queue: u16 },
    #[error("ethdev port {0} still has queue handles in use")]
    PortBusy(u16),
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

impl DpdkError {
    /// Builds the error for a failed call from `rte_errno` (or from a negative return code
    /// where the API reports the errno that way).
    pub(crate) fn from_errno(op: &'static str, errno: i32) -> Self {
        DpdkError::Call {
            op,
            errno,
            message: strerror(errno),
        }
    }

    /// Builds the error for a failed call from the current `rte_errno`.
    pub(crate) fn last(op: &'static str) -> Self {
        // SAFETY: rte_errno is a per-thread integer; reading it has no preconditions.
        let errno = unsafe { dpdk_sys::shim_rte_errno() };
        Self::from_errno(op, errno)
    }

    /// For APIs that return `-errno` on failure.
    pub(crate) fn check(op: &'static str, ret: i32) -> Result<i32, Self> {
        if ret < 0 {
            Err(Self::from_errno(op, -ret))
        } else {
            Ok(ret)
        }
    }
}

fn strerror(errno: i32) -> String {
    // SAFETY: rte_strerror returns a pointer to a NUL-terminated string in a static or
    // per-thread buffer; we copy it out before any other DPDK call can overwrite it.
    unsafe {
        let p = dpdk_sys::rte_strerror(errno);
        if p.is_null() {
            return format!("unknown error {errno}");
        }
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
