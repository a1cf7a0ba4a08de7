//! Sleeping on AF_XDP (and tap) ports until a frame comes. DPDK's af_xdp driver (22.11) has no
//! receive interrupts, but each of its queues is a kernel AF_XDP socket of this process, which
//! polls readable while its receive ring holds a frame (a net_tap queue is a tap device that
//! does the same); an idle worker can sleep on those instead of waking on a timer. The
//! descriptors are the driver's: found among the process's (by address family, or as the tun
//! device), never closed here, and to be waited on only while the ports are open.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

/// The AF_XDP sockets a worker sleeps on, kept as the `ppoll` array itself: a wait allocates
/// nothing (a napping worker waits up to thousands of times a second).
#[derive(Clone, Default)]
pub struct PortSockets {
    polled: Vec<libc::pollfd>,
}

impl std::fmt::Debug for PortSockets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let fds: Vec<RawFd> = self.polled.iter().map(|p| p.fd).collect();
        f.debug_struct("PortSockets").field("fds", &fds).finish()
    }
}

impl PortSockets {
    /// Every AF_XDP socket this process holds (one per af_xdp queue).
    pub fn of_this_process() -> io::Result<PortSockets> {
        Ok(PortSockets::from_fds(af_xdp_sockets()?))
    }

    /// Sockets given by the caller, which must keep them open while it waits on them.
    pub fn from_fds(fds: Vec<RawFd>) -> PortSockets {
        let polled = fds
            .into_iter()
            .map(|fd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        PortSockets { polled }
    }

    /// The same sockets and one more descriptor to wake on (an eventfd a peer writes), which
    /// the caller keeps open while it waits.
    pub fn and(mut self, fd: RawFd) -> PortSockets {
        self.polled.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        self
    }

    pub fn len(&self) -> usize {
        self.polled.len()
    }

    pub fn is_empty(&self) -> bool {
        self.polled.is_empty()
    }

    /// Sleeps until one of the sockets has something to receive, or `timeout` has passed;
    /// says whether one had. A signal ends the wait early (as nothing received).
    pub fn wait(&mut self, timeout: Duration) -> io::Result<bool> {
        let polled = &mut self.polled;
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: timeout.subsec_nanos() as libc::c_long,
        };
        // SAFETY: `polled` is a live array of `polled.len()` pollfd structures the kernel may
        // write `revents` into; `ts` is a valid timespec read for the call only; a null
        // signal mask keeps the thread's own. Descriptors the kernel does not know come back
        // as POLLNVAL, not as undefined behaviour.
        let n = unsafe {
            libc::ppoll(
                polled.as_mut_ptr(),
                polled.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        };
        match n {
            n if n > 0 => Ok(polled.iter().any(|p| p.revents & libc::POLLIN != 0)),
            0 => Ok(false),
            _ => {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }
}

/// What lists the descriptors a port with this DPDK driver receives its queues' frames on,
/// among this process's (AF_XDP sockets, tap devices), in order; None for drivers with none.
pub(crate) fn queue_descriptors(driver: &str) -> Option<fn() -> io::Result<Vec<RawFd>>> {
    match driver {
        "net_af_xdp" => Some(af_xdp_sockets),
        "net_tap" => Some(tap_devices),
        _ => None,
    }
}

/// The tun/tap devices this process has open (net_tap opens one per queue).
fn tap_devices() -> io::Result<Vec<RawFd>> {
    descriptors(|_, link| link == "/dev/net/tun")
}

/// The AF_XDP sockets among this process's descriptors, in order.
fn af_xdp_sockets() -> io::Result<Vec<RawFd>> {
    descriptors(|fd, link| link.starts_with("socket:") && domain(fd) == Some(libc::AF_XDP))
}

/// This process's descriptors that `keep` takes, given each one and what it links to, in order.
fn descriptors(keep: impl Fn(RawFd, &str) -> bool) -> io::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd")? {
        let entry = entry?;
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        // Closed since the directory was read.
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        if keep(fd, &link.to_string_lossy()) {
            fds.push(fd);
        }
    }
    fds.sort_unstable();
    Ok(fds)
}

/// A socket's address family, or None if `fd` is not a socket.
fn domain(fd: RawFd) -> Option<libc::c_int> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` and `len` are live locals of the size `len` says; the kernel writes at
    // most `len` bytes and checks `fd` itself (EBADF, ENOTSOCK for anything else).
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(domain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsRawFd;

    #[test]
    fn a_process_without_af_xdp_ports_has_no_port_sockets() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert!(PortSockets::of_this_process().unwrap().is_empty());
        assert_eq!(domain(udp.as_raw_fd()), Some(libc::AF_INET));
        assert_eq!(domain(file.as_raw_fd()), None);
    }

    #[test]
    fn a_wait_ends_when_something_can_be_received_or_at_the_timeout() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut sockets = PortSockets::from_fds(vec![rx.as_raw_fd()]);
        assert!(!sockets.wait(Duration::from_millis(5)).unwrap());
        tx.send_to(b"frame", rx.local_addr().unwrap()).unwrap();
        assert!(sockets.wait(Duration::from_secs(5)).unwrap());
        // Still readable until received: a frame that came before the wait is not missed.
        assert!(sockets.wait(Duration::ZERO).unwrap());
        let mut buf = [0u8; 16];
        rx.recv(&mut buf).unwrap();
        assert!(!sockets.wait(Duration::ZERO).unwrap());
    }
}
