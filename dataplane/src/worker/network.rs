//! A worker's networks. A realm's addresses live on a network: a port (one of the ports the
//! worker polls, one queue each) and optionally an 802.1Q VLAN on it, with its own default
//! routers. Each network has its own smoltcp interface (its addresses, neighbour caches and
//! routes), so an access network and a core network never answer for each other's addresses
//! or resolve through each other's routers; a leg belongs to the network of its local
//! address.

use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, Ipv4Address, Ipv6Address};

use super::{WorkerConfig, MAX_LOCAL_ADDRESSES};
use crate::demux::PortTable;
use crate::device::SmolDevice;
use crate::vlan::Tagging;
use port::Port;

/// Ports one worker polls at most.
pub const MAX_PORTS: usize = 8;
/// Networks one worker serves at most (the port table's address index is a byte, and the
/// rings of frames handed between workers carry the network's index).
pub const MAX_NETWORKS: usize = 16;

/// One network beyond the worker's first (`WorkerConfig::addresses` and its gateways are the
/// network of port 0 without a VLAN tag, the one-port set-up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The port, by its place among the ports the worker is given.
    pub port: usize,
    /// The 802.1Q VLAN ID (1 to 4094) of the network's frames on that port; None: untagged.
    pub vlan: Option<u16>,
    pub addresses: Vec<IpCidr>,
    pub gateway: Option<Ipv4Address>,
    pub gateway_v6: Option<Ipv6Address>,
}

impl WorkerConfig {
    /// Every network, in the order the worker numbers them: the first port's untagged one of
    /// `addresses` (when it has addresses, or when nothing else is configured), then
    /// `networks`.
    pub fn all_networks(&self) -> Vec<NetworkConfig> {
        let mut v = Vec::new();
        if !self.addresses.is_empty() || self.networks.is_empty() {
            v.push(NetworkConfig {
                port: 0,
                vlan: None,
                addresses: self.addresses.clone(),
                gateway: self.gateway,
                gateway_v6: self.gateway_v6,
            });
        }
        v.extend(self.networks.iter().cloned());
        v
    }

    /// Whether `ports` ports can carry the networks: each on a port that exists, no two on
    /// the same port and VLAN, a VLAN ID a tag can carry, no address on two networks, and no
    /// more addresses on one network than its interface holds.
    pub fn check_networks(&self, ports: usize) -> Result<(), String> {
        let nets = self.all_networks();
        if nets.len() > MAX_NETWORKS {
            return Err(format!(
                "{} networks: a worker serves at most {MAX_NETWORKS}",
                nets.len()
            ));
        }
        if ports > MAX_PORTS {
            return Err(format!("{ports} ports: a worker polls at most {MAX_PORTS}"));
        }
        for (i, n) in nets.iter().enumerate() {
            let name = match n.vlan {
                Some(v) => format!("port {} VLAN {v}", n.port),
                None => format!("port {}", n.port),
            };
            if n.port >= ports {
                return Err(format!("{name}: there are {ports} port(s)"));
            }
            if let Some(v) = n.vlan {
                if !(1..=4094).contains(&v) {
                    return Err(format!("{name}: a VLAN ID is 1 to 4094"));
                }
            }
            if n.addresses.len() > MAX_LOCAL_ADDRESSES {
                return Err(format!(
                    "{name} has {} addresses; a network holds at most {MAX_LOCAL_ADDRESSES}",
                    n.addresses.len()
                ));
            }
            for o in &nets[..i] {
                if o.port == n.port && o.vlan == n.vlan {
                    return Err(format!("{name} is configured twice"));
                }
                if let Some(a) = n
                    .addresses
                    .iter()
                    .find(|a| o.addresses.iter().any(|b| b.address() == a.address()))
                {
                    return Err(format!("{name}: address {a} is also on another network"));
                }
            }
        }
        Ok(())
    }
}

/// A network as the worker runs it.
pub(super) struct Net {
    pub port: usize,
    pub vlan: Option<u16>,
    pub iface: Interface,
    /// For frames that belong to no leg: ARP, neighbour discovery, ICMP, and RSTs to
    /// unknown ports.
    pub empty: SocketSet<'static>,
    pub addresses: Vec<IpCidr>,
    pub gateway: Option<Ipv4Address>,
    pub gateway_v6: Option<Ipv6Address>,
    /// Our IPv6 addresses (by index, mod 64) another host was seen claiming and that were
    /// logged.
    pub claims_reported: u64,
}

impl Net {
    /// The network on `device`'s port, its addresses entered in `table`.
    pub fn new<P: Port>(
        cfg: &NetworkConfig,
        device: &mut SmolDevice<P>,
        table: &mut PortTable,
        now: Instant,
    ) -> Net {
        let mac = EthernetAddress(device.port().mac());
        let mut icfg = Config::new(HardwareAddress::Ethernet(mac));
        icfg.random_seed = now.total_micros() as u64
            ^ u64::from(cfg.vlan.unwrap_or(0)) << 48
            ^ u64::from_be_bytes([
                0, 0, mac.0[0], mac.0[1], mac.0[2], mac.0[3], mac.0[4], mac.0[5],
            ]);
        let mut iface = Interface::new(icfg, device, now);
        iface.update_ip_addrs(|a| {
            for c in &cfg.addresses {
                if a.push(*c).is_err() {
                    tracing::error!(address = %c, "too many local addresses for one network");
                }
            }
        });
        for c in &cfg.addresses {
            table.add_ip(c.address().into());
        }
        if let Some(gw) = cfg.gateway {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        if let Some(gw) = cfg.gateway_v6 {
            let _ = iface.routes_mut().add_default_ipv6_route(gw);
        }
        Net {
            port: cfg.port,
            vlan: cfg.vlan,
            iface,
            empty: SocketSet::new(Vec::new()),
            addresses: cfg.addresses.clone(),
            gateway: cfg.gateway,
            gateway_v6: cfg.gateway_v6,
            claims_reported: 0,
        }
    }
}

/// Which network a frame received on a port is for, by its tag.
#[derive(Default)]
pub(super) struct PortNets {
    untagged: Option<u8>,
    tagged: Vec<(u16, u8)>,
}

impl PortNets {
    /// The networks of each of `ports` ports.
    pub fn map(nets: &[Net], ports: usize) -> Vec<PortNets> {
        let mut v: Vec<PortNets> = (0..ports).map(|_| PortNets::default()).collect();
        for (i, n) in nets.iter().enumerate() {
            let p = &mut v[n.port];
            match n.vlan {
                None => p.untagged = Some(i as u8),
                Some(vid) => p.tagged.push((vid, i as u8)),
            }
        }
        v
    }

    #[inline]
    pub fn of(&self, tagging: Tagging) -> Option<u8> {
        match tagging {
            Tagging::Untagged => self.untagged,
            Tagging::Vlan(vid) => self.tagged.iter().find(|(v, _)| *v == vid).map(|&(_, n)| n),
            Tagging::Unusable => None,
        }
    }
}

/// A network and its port's device, ready to send that network's frames (its VLAN tag set).
#[inline]
pub(super) fn on_net<'a, P: Port>(
    nets: &'a mut [Net],
    devices: &'a mut [SmolDevice<P>],
    n: u8,
) -> (&'a mut Net, &'a mut SmolDevice<P>) {
    let net = &mut nets[n as usize];
    let dev = &mut devices[net.port];
    dev.set_vlan(net.vlan);
    (net, dev)
}
