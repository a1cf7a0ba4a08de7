//! Where the realms live: the `[[network]]` tables (a DPDK port or an AF_XDP interface,
//! optionally an 802.1Q VLAN on it, its default routers), the ports the workers poll, and the
//! `--network` flag.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

use crate::config::{ConfigError, Settings};

/// A network realms' addresses live on: a DPDK port (or a kernel interface through AF_XDP),
/// optionally an 802.1Q VLAN on it, and its own default routers. An access and a core
/// network on two ports, or as two VLANs of one port.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct NetworkSettings {
    pub name: String,
    /// The DPDK port, as EAL names it; without it (and without `af_xdp`), the top-level
    /// `device`.
    #[serde(default)]
    pub device: Option<String>,
    /// Or a kernel interface through DPDK's AF_XDP driver.
    #[serde(default)]
    pub af_xdp: Option<String>,
    /// 802.1Q VLAN ID (1 to 4094): the network's frames are tagged on the port.
    #[serde(default)]
    pub vlan: Option<u16>,
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    #[serde(default)]
    pub gateway6: Option<Ipv6Addr>,
}

/// One port the workers poll (a queue each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The DPDK device, as EAL names it.
    pub device: String,
    /// The kernel interface of an AF_XDP port.
    pub af_xdp: Option<String>,
}

impl Settings {
    /// The `[[network]]` tables as the worker takes them (no addresses yet: the realms on each
    /// add theirs), each on its port's place in `ports`.
    pub(crate) fn networks(
        &self,
        ports: &[PortSpec],
    ) -> Result<Vec<dataplane::worker::NetworkConfig>, ConfigError> {
        let mut networks: Vec<dataplane::worker::NetworkConfig> = Vec::new();
        for n in &self.network {
            if n.name.is_empty() || self.network.iter().filter(|o| o.name == n.name).count() > 1 {
                return Err(ConfigError::Invalid(format!(
                    "network {:?}: every network needs a name of its own",
                    n.name
                )));
            }
            networks.push(dataplane::worker::NetworkConfig {
                port: ports
                    .iter()
                    .position(|p| Some(&p.device) == self.network_device(n, ports).as_ref())
                    .expect("ports() lists every network's device"),
                vlan: n.vlan,
                addresses: Vec::new(),
                gateway: n.gateway,
                gateway_v6: n.gateway6,
            });
        }
        Ok(networks)
    }

    /// The DPDK device a `[[network]]` is on (its AF_XDP port's name, numbered after the
    /// top-level one's).
    fn network_device(&self, n: &NetworkSettings, ports: &[PortSpec]) -> Option<String> {
        match (&n.device, &n.af_xdp) {
            (Some(_), Some(_)) => None,
            (Some(d), None) => Some(d.clone()),
            (None, Some(iface)) => Some(self.af_xdp_device(iface)),
            (None, None) => ports.first().map(|p| p.device.clone()),
        }
    }

    /// AF_XDP ports are named by the order of their interfaces: the top-level one first.
    fn af_xdp_device(&self, iface: &str) -> String {
        let mut ifaces: Vec<&str> = self.af_xdp.iter().map(String::as_str).collect();
        for n in &self.network {
            if let Some(i) = &n.af_xdp {
                if !ifaces.contains(&i.as_str()) {
                    ifaces.push(i);
                }
            }
        }
        let k = ifaces
            .iter()
            .position(|i| *i == iface)
            .unwrap_or(ifaces.len());
        format!("net_af_xdp{k}")
    }

    /// The ports the workers poll, in the order the networks name them: the top-level device
    /// first, then every other device a `[[network]]` is on.
    pub fn ports(&self) -> Result<Vec<PortSpec>, ConfigError> {
        let mut ports = vec![match &self.af_xdp {
            Some(iface) => PortSpec {
                device: self.af_xdp_device(iface),
                af_xdp: Some(iface.clone()),
            },
            None => PortSpec {
                device: self.device.clone(),
                af_xdp: None,
            },
        }];
        for n in &self.network {
            let device = match (&n.device, &n.af_xdp) {
                (Some(_), Some(_)) => {
                    return Err(ConfigError::Invalid(format!(
                        "network {:?}: device or af_xdp, not both",
                        n.name
                    )))
                }
                (Some(d), None) => d.clone(),
                (None, Some(iface)) => self.af_xdp_device(iface),
                (None, None) => continue,
            };
            if !ports.iter().any(|p| p.device == device) {
                ports.push(PortSpec {
                    device,
                    af_xdp: n.af_xdp.clone(),
                });
            }
        }
        if ports.len() > dataplane::worker::MAX_PORTS {
            return Err(ConfigError::Invalid(format!(
                "{} ports: a worker polls at most {}",
                ports.len(),
                dataplane::worker::MAX_PORTS
            )));
        }
        Ok(ports)
    }
}

/// `--network NAME=DEVICE[,vlan=ID][,gateway=ADDR][,gateway6=ADDR]`.
pub(crate) fn parse_network(s: &str) -> Result<NetworkSettings, String> {
    const FORM: &str = "expected NAME=DEVICE[,vlan=ID][,gateway=ADDR][,gateway6=ADDR]";
    let (name, rest) = s.split_once('=').ok_or(FORM)?;
    let mut parts = rest.split(',');
    let device = parts.next().unwrap_or("").trim();
    let mut n = NetworkSettings {
        name: name.trim().into(),
        ..Default::default()
    };
    match device.strip_prefix("af_xdp:") {
        Some(iface) => n.af_xdp = Some(iface.into()),
        None if device.is_empty() => {}
        None => n.device = Some(device.into()),
    }
    for kv in parts {
        let (k, v) = kv.split_once('=').ok_or(FORM)?;
        let bad = |e: &dyn std::fmt::Display| format!("{k}={v}: {e}");
        match k.trim() {
            "vlan" => n.vlan = Some(v.trim().parse().map_err(|e| bad(&e))?),
            "gateway" => n.gateway = Some(v.trim().parse().map_err(|e| bad(&e))?),
            "gateway6" => n.gateway6 = Some(v.trim().parse().map_err(|e| bad(&e))?),
            _ => return Err(format!("{k}: {FORM}")),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_cidr;

    const TWO_NETWORKS: &str = r#"
mgc = ["192.0.2.1:2944"]
device = "net_tap0"
[[network]]
name = "access"
vlan = 10
gateway6 = "2001:db8:1::1"
[[network]]
name = "core"
device = "net_tap1"
gateway = "10.2.0.1"
[[realm]]
name = "access"
network = "access"
address = "2001:db8:1::10/64,10.1.0.10/24"
ports = "40000-44999"
[[realm]]
name = "core"
network = "core"
address = "10.2.0.20/24"
ports = "40000-44999"
[[realm]]
name = "mgmt"
address = "10.9.0.20/24"
ports = "40000-40099"
"#;

    #[test]
    fn realms_on_networks_resolve_to_ports_vlans_and_gateways() {
        let s = Settings::from_toml(TWO_NETWORKS, "t.toml").unwrap();
        let r = s.resolve(&[0, 1]).unwrap();
        let devices: Vec<&str> = r.ports.iter().map(|p| p.device.as_str()).collect();
        assert_eq!(devices, ["net_tap0", "net_tap1"]);
        assert_eq!(r.realm_ports, [0, 1, 0]);
        let w = &r.worker;
        assert_eq!(w.addresses, vec![parse_cidr("10.9.0.20/24").unwrap()]);
        assert_eq!(w.networks.len(), 2);
        let (access, core) = (&w.networks[0], &w.networks[1]);
        assert_eq!((access.port, access.vlan), (0, Some(10)));
        assert_eq!(access.addresses.len(), 2);
        assert_eq!(access.gateway_v6, Some("2001:db8:1::1".parse().unwrap()));
        assert_eq!(
            (core.port, core.vlan, core.gateway),
            (1, None, Some("10.2.0.1".parse().unwrap()))
        );
        // The same with AF_XDP interfaces: the ports are named in order.
        let x = TWO_NETWORKS.replace("device = \"net_tap1\"", "af_xdp = \"vcore\"");
        let mut s = Settings::from_toml(&x, "t.toml").unwrap();
        s.af_xdp = Some("vaccess".into());
        let r = s.resolve(&[0, 1]).unwrap();
        let ports: Vec<(&str, Option<&str>)> = r
            .ports
            .iter()
            .map(|p| (p.device.as_str(), p.af_xdp.as_deref()))
            .collect();
        assert_eq!(
            ports,
            [
                ("net_af_xdp0", Some("vaccess")),
                ("net_af_xdp1", Some("vcore"))
            ]
        );
    }

    #[test]
    fn networks_that_cannot_be_are_refused() {
        for (from, to, why) in [
            (
                "network = \"core\"",
                "network = \"nowhere\"",
                "no [[network]]",
            ),
            ("vlan = 10", "vlan = 4095", "VLAN ID"),
            (
                "name = \"core\"\ndevice",
                "name = \"access\"\ndevice",
                "name of its own",
            ),
            (
                "device = \"net_tap1\"",
                "device = \"net_tap1\"\naf_xdp = \"v\"",
                "not both",
            ),
            (
                "address = \"10.2.0.20/24\"\nports = \"40000-44999\"",
                "address = \"10.1.0.10/24\"\nports = \"50000-50999\"",
                "another network",
            ),
            ("device = \"net_tap1\"", "", "configured twice"),
        ] {
            assert!(TWO_NETWORKS.contains(from), "{from}");
            let text = TWO_NETWORKS.replacen(from, to, 1);
            let e = Settings::from_toml(&text, "t.toml")
                .unwrap()
                .resolve(&[0, 1])
                .unwrap_err()
                .to_string();
            assert!(e.contains(why), "{to}: {e}");
        }
    }
}
