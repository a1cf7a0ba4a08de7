//! A TCP echo service on one smoltcp interface over any [`Port`]. It answers ARP and ping
//! like any host. It is the bring-up check for a port (DPDK or in-memory) and the job the
//! `imsagw echo` command runs; the per-leg worker replaces it for real traffic.

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv4Cidr};

use crate::device::{DeviceStats, SmolDevice};
use port::Port;

#[derive(Debug, Clone)]
pub struct EchoConfig {
    pub address: Ipv4Cidr,
    pub gateway: Option<Ipv4Address>,
    pub tcp_port: u16,
    /// Connections served at once (smoltcp has no backlog: one listening socket each).
    pub listeners: usize,
    /// Receive and send buffer per connection.
    pub buffer_bytes: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EchoStats {
    pub connections: u64,
    pub bytes_echoed: u64,
}

pub struct EchoService<P: Port> {
    device: SmolDevice<P>,
    iface: Interface,
    sockets: SocketSet<'static>,
    listeners: Vec<(SocketHandle, bool)>,
    tcp_port: u16,
    scratch: Vec<u8>,
    stats: EchoStats,
}

impl<P: Port> EchoService<P> {
    pub fn new(port: P, cfg: &EchoConfig, now: Instant) -> Self {
        let mut device = SmolDevice::new(port);
        let mac = EthernetAddress(device.port().mac());
        let mut iface = Interface::new(
            Config::new(HardwareAddress::Ethernet(mac)),
            &mut device,
            now,
        );
        iface.update_ip_addrs(|a| {
            let _ = a.push(IpCidr::Ipv4(cfg.address));
        });
        if let Some(gw) = cfg.gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        let mut sockets = SocketSet::new(Vec::new());
        let listeners = (0..cfg.listeners.max(1))
            .map(|_| {
                let rx = tcp::SocketBuffer::new(vec![0; cfg.buffer_bytes]);
                let tx = tcp::SocketBuffer::new(vec![0; cfg.buffer_bytes]);
                (sockets.add(tcp::Socket::new(rx, tx)), false)
            })
            .collect();
        EchoService {
            device,
            iface,
            sockets,
            listeners,
            tcp_port: cfg.tcp_port,
            scratch: vec![0; cfg.buffer_bytes],
            stats: EchoStats::default(),
        }
    }

    /// One poll-loop iteration; true if any frame or byte moved.
    pub fn poll(&mut self, now: Instant) -> bool {
        let before = (self.device.stats(), self.stats);
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.echo();
        self.iface.poll(now, &mut self.device, &mut self.sockets);
        self.device.flush();
        let after = (self.device.stats(), self.stats);
        before != after
    }

    /// When smoltcp next needs a poll even without traffic.
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface.poll_at(now, &self.sockets)
    }

    fn echo(&mut self) {
        for (handle, open) in &mut self.listeners {
            let s = self.sockets.get_mut::<tcp::Socket>(*handle);
            if !s.is_open() {
                *open = false;
                if s.listen(self.tcp_port).is_err() {
                    continue;
                }
            }
            if s.is_active() && !*open {
                *open = true;
                self.stats.connections += 1;
            }
            while s.can_recv() {
                let room = s.send_capacity() - s.send_queue();
                let n = room.min(self.scratch.len());
                if n == 0 {
                    break;
                }
                let Ok(got) = s.recv_slice(&mut self.scratch[..n]) else {
                    break;
                };
                if got == 0 {
                    break;
                }
                let sent = s.send_slice(&self.scratch[..got]).unwrap_or(0);
                debug_assert_eq!(sent, got, "send room was checked");
                self.stats.bytes_echoed += sent as u64;
            }
            // The client half-closed and everything is echoed: close our half too.
            if !s.may_recv() && s.may_send() && s.recv_queue() == 0 && s.send_queue() == 0 {
                s.close();
            }
        }
    }

    pub fn stats(&self) -> EchoStats {
        self.stats
    }

    pub fn device_stats(&self) -> DeviceStats {
        self.device.stats()
    }

    pub fn port(&self) -> &P {
        self.device.port()
    }

    pub fn port_mut(&mut self) -> &mut P {
        self.device.port_mut()
    }
}
