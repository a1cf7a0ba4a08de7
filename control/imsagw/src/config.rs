//! The gateway's settings: a TOML file, every key also a command-line flag (the flag wins),
//! checked before anything starts. Defaults run on a machine without a NIC: one worker on a
//! DPDK net_tap vdev named `imsagw0`, no hugepages, the MGC on loopback.

use dataplane::framing::{BfcpLimits, FramingLimits, MsrpLimits};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

pub use crate::networks::{NetworkSettings, PortSpec};
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use smoltcp::wire::IpCidr;

use control::mg::{MgConfig, Realm};
use control::registration::{Mgc, RegistrationConfig};
use control::transaction::TransactionTimers;
use h248::ast::MId;

/// What ends an idle worker's nap.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum IdleWake {
    /// `port` where it can be (one worker, every port AF_XDP), else `timer`.
    #[default]
    Auto,
    /// The nap's own length.
    Timer,
    /// A frame on one of the worker's AF_XDP ports, or a millisecond at most (its timers and
    /// the control thread's commands). One worker only: workers hand each other frames
    /// through rings no port socket signals.
    Port,
}

impl IdleWake {
    /// Whether naps end on the ports for workers on ports with these DPDK drivers; `port`
    /// where it cannot work is refused.
    pub fn on_ports(
        self,
        drivers: &[&str],
        workers: usize,
        nap_us: u64,
    ) -> Result<bool, ConfigError> {
        let fit = !drivers.is_empty()
            && drivers
                .iter()
                .all(|d| matches!(*d, "net_af_xdp" | "net_tap"))
            && workers > 0
            && nap_us > 0;
        // By default only where it was measured: one worker on AF_XDP. Several workers on
        // AF_XDP (a peer handing a sleeping worker frames wakes it) cannot run on this
        // project's test machine (its veths report no combined channels, which DPDK 22.11's
        // af_xdp driver takes its queue count from); on taps they run in the tests.
        let measured = workers == 1 && drivers.iter().all(|d| *d == "net_af_xdp");
        match (self, fit) {
            (IdleWake::Timer, _) | (IdleWake::Auto, false) => Ok(false),
            (IdleWake::Auto, true) => Ok(measured),
            (IdleWake::Port, true) => Ok(true),
            (IdleWake::Port, false) => Err(ConfigError::Invalid(format!(
                "idle_wake = port needs every port on AF_XDP or net_tap and a nap \
                 (idle_nap_us > 0): {workers} worker(s), drivers {drivers:?}, nap {nap_us} us"
            ))),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("core list {0:?}: expected numbers and ranges such as 1-3,5")]
    CoreList(String),
    #[error("core {0} is listed twice in the worker cores")]
    CoreTwice(usize),
    #[error("core {core} is not present on this machine (cores: {present:?})")]
    CoreAbsent { core: usize, present: Vec<usize> },
    #[error("the control core {0} is also a worker core (allow it with shared_control_core)")]
    ControlAmongWorkers(usize),
    #[error("no worker cores")]
    NoWorkers,
    #[error("{0} worker cores: at most 64")]
    TooManyWorkers(usize),
    #[error("realm {name:?}: {reason}")]
    Realm { name: String, reason: String },
    #[error("no realm configured")]
    NoRealm,
    #[error("no MGC configured")]
    NoMgc,
    #[error("{0}")]
    Invalid(String),
}

/// One realm: its IP addresses with their prefix and the local ports handed out from each, and
/// what its terminations get when the ALG asks for no DiffServ marking or policing (Iq `ds`,
/// `tman`), with the policing rates the ALG may ask for.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RealmSettings {
    pub name: String,
    /// `ADDRESS/PREFIX`, for example `198.18.1.10/15` or `2001:db8:1::10/64`; several
    /// addresses as a range `FIRST-LAST/PREFIX` (`198.18.1.10-198.18.1.13/15`) or a list
    /// (`A/P,B/P`, IPv4 and IPv6 mixed for a dual-stack realm): each holds the realm's ports
    /// again. A termination takes an address of the family its Local's `c=` names.
    pub address: String,
    /// `FIRST-LAST`.
    pub ports: String,
    /// The `[[network]]` the realm's addresses are on; without it, the top-level `device`
    /// untagged, with the top-level gateways.
    #[serde(default)]
    pub network: Option<String>,
    /// DiffServ code point (0 to 63) of what the realm's legs send when the ALG sends no
    /// `ds/dscp`.
    #[serde(default)]
    pub dscp: u8,
    /// Policing when the ALG sends no `tman/pol`: sustainable rate (bytes/s) and burst
    /// (bytes), both or neither. Also the rates used when `tman/pol = ON` comes without
    /// them.
    #[serde(default)]
    pub police_sdr: Option<u64>,
    #[serde(default)]
    pub police_mbs: Option<u64>,
    /// `MIN-MAX` bounds of what the ALG may ask for in `tman/sdr` and `tman/mbs`; outside
    /// them the command is refused (449).
    #[serde(default)]
    pub sdr_range: Option<String>,
    #[serde(default)]
    pub mbs_range: Option<String>,
}

impl RealmSettings {
    fn policy(&self) -> Result<control::iq::RealmPolicy, String> {
        let mut p = control::iq::RealmPolicy::default();
        if self.dscp > 63 {
            return Err(format!("dscp {} is not a code point (0 to 63)", self.dscp));
        }
        p.dscp = self.dscp;
        let range = |r: &Option<String>, dflt: (u64, u64), what: &str| match r {
            None => Ok(dflt),
            Some(r) => r
                .split_once('-')
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?))
                })
                .filter(|(a, b)| 1 <= *a && a <= b && *b <= u32::MAX as u64)
                .ok_or_else(|| format!("{what} {r:?} is not MIN-MAX (1 to 4294967295)")),
        };
        p.sdr_range = range(&self.sdr_range, p.sdr_range, "sdr_range")?;
        p.mbs_range = range(&self.mbs_range, p.mbs_range, "mbs_range")?;
        p.police = match (self.police_sdr, self.police_mbs) {
            (None, None) => None,
            (Some(sdr), Some(mbs)) => {
                let inside = |v: u64, (lo, hi): (u64, u64)| lo <= v && v <= hi;
                if !inside(sdr, p.sdr_range) || !inside(mbs, p.mbs_range) {
                    return Err(
                        "police_sdr and police_mbs must be inside sdr_range and mbs_range".into(),
                    );
                }
                Some((sdr, mbs))
            }
            _ => return Err("police_sdr and police_mbs go together".into()),
        };
        Ok(p)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub control_core: usize,
    /// Such as `1-3,5`.
    pub worker_cores: String,
    /// Let the control thread share a core with a worker (small test machines).
    pub shared_control_core: bool,
    /// Where H.248 is served (UDP).
    pub bind: SocketAddr,
    /// Also serve H.248 over TCP (TPKT) on the bind address.
    pub tcp: bool,
    /// Our mId; `[bind address]:port` when empty.
    pub mid: Option<String>,
    /// MGCs in order of preference: `ADDRESS:PORT` (UDP), `udp://...` or `tcp://...` (H.248
    /// over TCP with TPKT on a connection the MG opens).
    pub mgc: Vec<Mgc>,
    /// ServiceChangeProfile name and version (the Iq profile's registered name is not
    /// confirmed by any public source: docs/iq-packages.md).
    pub profile: String,
    pub profile_version: u8,
    pub max_version: u8,
    /// The DPDK port, as EAL names it.
    pub device: String,
    /// Run on this kernel interface through DPDK's AF_XDP driver (one queue per worker):
    /// sets `device` and, unless `eal` is given, the EAL arguments.
    pub af_xdp: Option<String>,
    /// Default routers of the media addresses, IPv4 and IPv6.
    pub gateway: Option<Ipv4Addr>,
    pub gateway6: Option<Ipv6Addr>,
    /// Networks beyond the top-level device's own (other ports, VLANs).
    pub network: Vec<NetworkSettings>,
    pub realm: Vec<RealmSettings>,
    pub mbufs: u32,
    /// Receive and send buffer per leg while it moves data, bytes.
    pub leg_buffer: usize,
    /// Receive buffer an idle leg keeps (its send buffer: about half of it), bytes.
    pub leg_buffer_idle: usize,
    /// Full-size socket buffers each worker lends at most at once.
    pub buffer_pool: usize,
    /// Microseconds a worker sleeps between polls once idle for `idle_spin_us` (0: it polls
    /// without pause). Unset: 30 (`run::AUTO_IDLE_NAP_US`) when every port is a kernel interface
    /// (AF_XDP, tap), where the machine is shared; 0 on NIC ports.
    pub idle_nap_us: Option<u64>,
    pub idle_spin_us: u64,
    /// What ends a nap: `auto`, `timer` or `port` (see [`IdleWake`]).
    pub idle_wake: IdleWake,
    pub max_legs_per_worker: usize,
    pub max_contexts: usize,
    pub max_terminations: usize,
    /// Transactions whose replies are remembered for LONG-TIMER (answers to retransmissions).
    pub reply_cache_entries: usize,
    /// T-MAX: how long our requests (ServiceChange, Notify) are repeated before the MGC is
    /// considered lost (H.248.1 D.1.3).
    pub t_max_ms: u64,
    /// Wait before registration starts over after every MGC failed.
    pub registration_retry_ms: u64,
    pub connect_timeout_ms: u64,
    /// Release a leg after this long without payload (0: never).
    pub idle_timeout_s: u64,
    /// Release a UDP (T.38) leg after this long without a datagram (0: never); reported
    /// with the media inactivity event.
    pub udp_idle_timeout_s: u64,
    /// A latching UDP leg follows a new source address (NAT rebinding): plain UDPTL on any
    /// datagram, DTLS only on one that authenticates.
    pub udp_relatch: bool,
    pub heartbeat_s: u64,
    /// The AGW's TLS certificate chain and key (PEM; ECDSA P-256 or RSA). Without them a
    /// self-signed ECDSA P-256 certificate is generated at start. Re-read on SIGHUP.
    pub tls_cert: Option<String>,
    pub tls_key: Option<String>,
    /// Hash of our fingerprint in Local descriptors: sha-1, sha-224, sha-256, sha-384, sha-512.
    pub fingerprint_hash: String,
    pub tls_handshake_timeout_ms: u64,
    /// Limits of MSRP-aware terminations (`TCP/MSRP`): start line plus headers, one SEND
    /// chunk's body, chunks of one message, requests and responses per second per leg (0:
    /// no limit). A peer over a limit has its pair reset.
    pub msrp_header_octets: u32,
    pub msrp_chunk_octets: u32,
    pub msrp_chunks_per_message: u32,
    pub msrp_messages_per_second: u32,
    /// Limits of BFCP-aware terminations: a frame's size, frames per second per leg.
    pub bfcp_frame_octets: u32,
    pub bfcp_frames_per_second: u32,
    /// Unix socket `imsagw status` reads from.
    pub status_socket: String,
    /// Serve Prometheus metrics over HTTP on this address (`/metrics`); off when unset.
    pub metrics: Option<SocketAddr>,
    /// `tracing` filter, used when RUST_LOG is not set; re-read on SIGHUP.
    pub log_level: String,
    /// EAL arguments; empty means the no-NIC default (net_tap0 on iface imsagw0).
    pub eal: Vec<String>,
    /// H.248 settings in tables of their own.
    pub h248: H248Settings,
}

/// `[h248]`: the names of the Iq elements no public source confirms, as the IMS-ALG spells
/// them (`[h248.tokens]`, keys as in `control::iq::Tokens::KEYS`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct H248Settings {
    pub tokens: std::collections::BTreeMap<String, toml::Value>,
}

impl H248Settings {
    /// The token table with these names in place of the defaults.
    pub fn tokens(&self) -> Result<control::iq::Tokens, ConfigError> {
        let mut table = std::collections::HashMap::new();
        for (k, v) in &self.tokens {
            let v = match v {
                toml::Value::String(s) => s.clone(),
                toml::Value::Integer(i) => i.to_string(),
                other => {
                    return Err(ConfigError::Invalid(format!(
                        "[h248.tokens]: {k} = {other} is neither a string nor a number"
                    )))
                }
            };
            table.insert(k.clone(), v);
        }
        control::iq::Tokens::with(&table).map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

impl Default for Settings {
    fn default() -> Self {
        let (msrp, bfcp) = (MsrpLimits::default(), BfcpLimits::default());
        Settings {
            control_core: 0,
            worker_cores: "1".into(),
            shared_control_core: false,
            bind: "127.0.0.1:2944".parse().expect("literal"),
            tcp: false,
            mid: None,
            mgc: vec![Mgc::udp("127.0.0.1:2945".parse().expect("literal"))],
            profile: "ims-agw-iq".into(),
            profile_version: 1,
            max_version: 3,
            device: "net_tap0".into(),
            af_xdp: None,
            gateway: None,
            gateway6: None,
            network: Vec::new(),
            realm: vec![
                RealmSettings {
                    name: "access".into(),
                    address: "198.18.1.10/15".into(),
                    ports: "40000-44999".into(),
                    ..Default::default()
                },
                RealmSettings {
                    name: "core".into(),
                    address: "198.18.2.20/15".into(),
                    ports: "45000-49999".into(),
                    ..Default::default()
                },
            ],
            mbufs: 16383,
            leg_buffer: 128 * 1024,
            leg_buffer_idle: dataplane::worker::GUARANTEED_RX,
            buffer_pool: 2048,
            idle_nap_us: None,
            idle_spin_us: 50,
            idle_wake: IdleWake::Auto,
            max_legs_per_worker: 200_000,
            max_contexts: 20_000,
            max_terminations: 40_000,
            reply_cache_entries: control::plane::DEFAULT_REPLY_CACHE,
            t_max_ms: 30_000,
            registration_retry_ms: 5_000,
            connect_timeout_ms: 10_000,
            idle_timeout_s: 0,
            udp_idle_timeout_s: 60,
            udp_relatch: false,
            heartbeat_s: 60,
            tls_cert: None,
            tls_key: None,
            fingerprint_hash: "sha-256".into(),
            tls_handshake_timeout_ms: 10_000,
            msrp_header_octets: msrp.header_octets,
            msrp_chunk_octets: msrp.chunk_octets,
            msrp_chunks_per_message: msrp.chunks_per_message,
            msrp_messages_per_second: msrp.messages_per_second,
            bfcp_frame_octets: bfcp.frame_octets,
            bfcp_frames_per_second: bfcp.frames_per_second,
            status_socket: "/run/imsagw.sock".into(),
            metrics: None,
            log_level: "info".into(),
            eal: Vec::new(),
            h248: H248Settings::default(),
        }
    }
}

impl Settings {
    /// The AGW's TLS identity: the configured files, or a generated certificate.
    pub fn tls_identity(&self) -> Result<dataplane::tls::Identity, ConfigError> {
        let bad = |e: dataplane::tls::TlsError| ConfigError::Invalid(e.to_string());
        match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => {
                dataplane::tls::Identity::from_pem_files(Path::new(c), Path::new(k)).map_err(bad)
            }
            _ => dataplane::tls::Identity::generate("imsagw").map_err(bad),
        }
    }

    pub fn from_file(path: &Path) -> Result<Settings, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    pub fn from_toml(text: &str, path: &str) -> Result<Settings, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_string(),
            reason: e.to_string(),
        })
    }

    /// Everything checked and turned into the parts' own configurations.
    pub fn resolve(&self, present_cores: &[usize]) -> Result<Resolved, ConfigError> {
        let workers = parse_cores(&self.worker_cores)?;
        if workers.is_empty() {
            return Err(ConfigError::NoWorkers);
        }
        for &c in workers.iter().chain([&self.control_core]) {
            if !present_cores.contains(&c) {
                return Err(ConfigError::CoreAbsent {
                    core: c,
                    present: present_cores.to_vec(),
                });
            }
        }
        if workers.contains(&self.control_core) && !self.shared_control_core {
            return Err(ConfigError::ControlAmongWorkers(self.control_core));
        }
        if workers.len() > 64 {
            return Err(ConfigError::TooManyWorkers(workers.len()));
        }
        if self.realm.is_empty() {
            return Err(ConfigError::NoRealm);
        }
        if self.mgc.is_empty() {
            return Err(ConfigError::NoMgc);
        }
        let ports = self.ports()?;
        let mut networks = self.networks(&ports)?;
        let mut realm_ports = Vec::new();
        let mut realms = Vec::new();
        let mut addresses = Vec::new();
        for r in &self.realm {
            let bad = |reason: String| ConfigError::Realm {
                name: r.name.clone(),
                reason,
            };
            let cidrs = parse_cidrs(&r.address).map_err(bad)?;
            let (first, last) = parse_range(&r.ports).map_err(bad)?;
            if realms
                .iter()
                .any(|o: &Realm| o.name.eq_ignore_ascii_case(&r.name))
            {
                return Err(bad("named twice".into()));
            }
            for o in &realms {
                let shared = cidrs
                    .iter()
                    .any(|c| o.addresses.contains(&IpAddr::from(c.address())));
                if shared && first <= o.last_port && o.first_port <= last {
                    return Err(bad(format!("ports overlap realm {:?}", o.name)));
                }
            }
            realms.push(Realm {
                name: r.name.as_str().into(),
                addresses: cidrs.iter().map(|c| c.address().into()).collect(),
                first_port: first,
                last_port: last,
                policy: r.policy().map_err(bad)?,
            });
            let on = match &r.network {
                None => {
                    realm_ports.push(0);
                    &mut addresses
                }
                Some(name) => {
                    let Some(i) = self.network.iter().position(|n| &n.name == name) else {
                        return Err(bad(format!("no [[network]] named {name:?}")));
                    };
                    realm_ports.push(networks[i].port);
                    &mut networks[i].addresses
                }
            };
            for cidr in cidrs {
                if !on.contains(&cidr) {
                    on.push(cidr);
                }
            }
        }
        if self.leg_buffer < 1024 || self.mbufs < 1024 {
            return Err(ConfigError::Invalid(
                "leg_buffer and mbufs must each be at least 1024".into(),
            ));
        }
        // A longer nap lets a port's receive ring fill at line rate before the worker wakes.
        if self.idle_nap_us.is_some_and(|n| n > MAX_IDLE_NAP_US) || self.idle_spin_us > 1_000_000 {
            return Err(ConfigError::Invalid(format!(
                "idle_nap_us must be at most {MAX_IDLE_NAP_US} and idle_spin_us at most 1000000"
            )));
        }
        if self.leg_buffer_idle < 1024 || self.leg_buffer_idle > self.leg_buffer {
            return Err(ConfigError::Invalid(
                "leg_buffer_idle must be at least 1024 and at most leg_buffer".into(),
            ));
        }
        let mid = match &self.mid {
            Some(m) => parse_mid(m)?,
            None => match self.bind.ip() {
                std::net::IpAddr::V4(a) => MId::Ip4 {
                    addr: a.octets(),
                    port: Some(self.bind.port()),
                },
                std::net::IpAddr::V6(a) => MId::Ip6 {
                    addr: a,
                    port: Some(self.bind.port()),
                },
            },
        };
        let timers = dataplane::contract::LegTimers {
            connect: smoltcp::time::Duration::from_millis(self.connect_timeout_ms.max(1)),
            idle: (self.idle_timeout_s > 0)
                .then(|| smoltcp::time::Duration::from_secs(self.idle_timeout_s)),
            handshake: smoltcp::time::Duration::from_millis(self.tls_handshake_timeout_ms.max(1)),
        };
        let mut mg = MgConfig::new(realms);
        mg.workers = workers.len();
        mg.fingerprint_hash =
            dataplane::tls::HashAlg::parse(&self.fingerprint_hash).ok_or_else(|| {
                ConfigError::Invalid(format!("fingerprint_hash {:?}", self.fingerprint_hash))
            })?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "tls_cert and tls_key go together".into(),
            ));
        }
        mg.max_contexts = self.max_contexts;
        mg.max_terminations = self.max_terminations;
        mg.max_legs_per_worker = self.max_legs_per_worker;
        mg.timers = timers;
        mg.datagram_idle = (self.udp_idle_timeout_s > 0)
            .then(|| smoltcp::time::Duration::from_secs(self.udp_idle_timeout_s));
        mg.relatch = self.udp_relatch;
        mg.heartbeat = Duration::from_secs(self.heartbeat_s.max(1));
        mg.tokens = self.h248.tokens()?;
        let worker = dataplane::worker::WorkerConfig {
            addresses,
            gateway: self.gateway,
            gateway_v6: self.gateway6,
            networks,
            ..Default::default()
        };
        worker
            .check_networks(ports.len())
            .map_err(|e| ConfigError::Invalid(format!("networks: {e}")))?;
        Ok(Resolved {
            ports,
            realm_ports,
            worker_cores: workers,
            registration: RegistrationConfig {
                mgcs: self.mgc.clone(),
                mid,
                profile: (self.profile.as_str().into(), self.profile_version),
                max_version: self.max_version.clamp(1, 3),
                timers: TransactionTimers {
                    t_max: Duration::from_millis(self.t_max_ms.max(100)),
                    ..TransactionTimers::default()
                },
            },
            mg,
            worker: dataplane::worker::WorkerConfig {
                rx_buffer: self.leg_buffer,
                tx_buffer: self.leg_buffer,
                guaranteed_rx: self.leg_buffer_idle,
                guaranteed_tx: self.leg_buffer_idle * dataplane::worker::GUARANTEED_TX
                    / dataplane::worker::GUARANTEED_RX,
                lendable_buffers: self.buffer_pool,
                // The automatic nap needs the ports' drivers: `run` sets it once they start.
                idle_nap: smoltcp::time::Duration::from_micros(self.idle_nap_us.unwrap_or(0)),
                idle_spin: smoltcp::time::Duration::from_micros(self.idle_spin_us),
                // Room beyond the MG's count for released legs still draining.
                max_legs: self.max_legs_per_worker + self.max_legs_per_worker / 8 + 16,
                framing: FramingLimits {
                    msrp: MsrpLimits {
                        header_octets: self.msrp_header_octets,
                        chunk_octets: self.msrp_chunk_octets,
                        chunks_per_message: self.msrp_chunks_per_message,
                        messages_per_second: self.msrp_messages_per_second,
                    },
                    bfcp: BfcpLimits {
                        frame_octets: self.bfcp_frame_octets,
                        frames_per_second: self.bfcp_frames_per_second,
                    },
                },
                ..worker
            },
        })
    }
}

/// Settings turned into what each part takes.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The ports, the first the top-level device's.
    pub ports: Vec<PortSpec>,
    /// Each realm's port, by its place in `ports` (its link is the realm's availability).
    pub realm_ports: Vec<usize>,
    pub worker_cores: Vec<usize>,
    pub registration: RegistrationConfig,
    pub mg: MgConfig,
    pub worker: dataplane::worker::WorkerConfig,
}

/// `1-3,5` -> [1, 2, 3, 5]; a core twice is an error.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, ConfigError> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || ConfigError::CoreList(s.to_string());
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let (a, b): (usize, usize) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
        if a > b || b - a > 4096 {
            return Err(bad());
        }
        for c in a..=b {
            if out.contains(&c) {
                return Err(ConfigError::CoreTwice(c));
            }
            out.push(c);
        }
    }
    Ok(out)
}

pub(crate) fn parse_cidr(s: &str) -> Result<IpCidr, String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not ADDRESS/PREFIX"))?;
    let ip: IpAddr = ip.parse().map_err(|e| format!("{ip:?}: {e}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| (1..=max).contains(l))
        .ok_or_else(|| format!("{len:?} is not a prefix length"))?;
    Ok(IpCidr::new(ip.into(), len))
}

/// Addresses a realm holds at most (each is a local address of every worker).
/// The longest nap a worker may take between idle polls, microseconds.
const MAX_IDLE_NAP_US: u64 = 1000;

const MAX_REALM_ADDRESSES: usize = 64;

/// An address as a number (IPv4 and IPv6 in their own ranges, for address ranges).
fn ordinal(a: IpAddr) -> (bool, u128) {
    match a {
        IpAddr::V4(a) => (false, u32::from(a) as u128),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

/// `A/P`, `FIRST-LAST/P` or a comma-separated list of either; IPv4 or IPv6 (`2001:db8::10/64`,
/// `2001:db8::10-2001:db8::13/64`), both families in one list.
fn parse_cidrs(s: &str) -> Result<Vec<IpCidr>, String> {
    let mut out: Vec<IpCidr> = Vec::new();
    for item in s.split(',').map(str::trim) {
        let (ips, len) = item
            .split_once('/')
            .ok_or_else(|| format!("{item:?} is not ADDRESS/PREFIX"))?;
        let (first, last) = ips.split_once('-').unwrap_or((ips, ips));
        let first = parse_cidr(&format!("{}/{len}", first.trim()))?;
        let last = parse_cidr(&format!("{}/{len}", last.trim()))?;
        let ((fa, a), (fb, b)) = (
            ordinal(first.address().into()),
            ordinal(last.address().into()),
        );
        if fa != fb || a > b || (b - a) >= MAX_REALM_ADDRESSES as u128 {
            return Err(format!(
                "{item:?}: an empty range, a range across address families, or more than \
                 {MAX_REALM_ADDRESSES} addresses"
            ));
        }
        for n in a..=b {
            let ip = match fa {
                false => IpAddr::V4(Ipv4Addr::from(n as u32)),
                true => IpAddr::V6(Ipv6Addr::from(n)),
            };
            let cidr = IpCidr::new(ip.into(), first.prefix_len());
            if out.contains(&cidr) {
                return Err(format!("{item:?}: address {ip} given twice"));
            }
            out.push(cidr);
        }
    }
    if out.len() > MAX_REALM_ADDRESSES {
        return Err(format!("more than {MAX_REALM_ADDRESSES} addresses"));
    }
    Ok(out)
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("ports {s:?} are not FIRST-LAST"))?;
    let a: u16 = a.trim().parse().map_err(|_| format!("port {a:?}"))?;
    let b: u16 = b.trim().parse().map_err(|_| format!("port {b:?}"))?;
    if a == 0 || a > b {
        return Err(format!("ports {s:?}: empty or starting at 0"));
    }
    Ok((a, b))
}

fn parse_mid(s: &str) -> Result<MId, ConfigError> {
    let text = format!("MEGACO/1 {s} T=1{{}}");
    h248::decode(text.as_bytes())
        .map(|m| m.mid)
        .map_err(|_| ConfigError::Invalid(format!("mid {s:?} is not an H.248 mId")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_packaged_configuration_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packaging/imsagw.toml");
        let s = Settings::from_file(&path).unwrap();
        assert_eq!(s.realm.len(), 2);
        assert_eq!(s.log_level, "info");
        assert!(s.metrics.is_none(), "metrics are off by default");
        s.resolve(&[0, 1]).unwrap();
    }

    #[test]
    fn a_token_table_renames_elements_and_bad_tables_are_refused() {
        let s = Settings::from_toml(
            "[h248.tokens]\ntcp_established = \"tcpbe/conest\"\ninactivity_unit_ms = 1000\n",
            "t.toml",
        )
        .unwrap();
        let r = s.resolve(&[0, 1]).unwrap();
        assert_eq!(r.mg.tokens.tcp_established.to_string(), "tcpbe/conest");
        assert_eq!(r.mg.tokens.inactivity_unit_ms, 1000);
        for bad in [
            "[h248.tokens]\ntcp_establish = \"a/b\"\n",
            "[h248.tokens]\ntls_established = \"tcpc/est\"\n",
            "[h248.tokens]\ntcp_failure = \"nopackage\"\n",
            "[h248.tokens]\ninactivity_unit_ms = true\n",
        ] {
            let s = Settings::from_toml(bad, "t.toml").unwrap();
            let e = s.resolve(&[0, 1]).unwrap_err();
            assert!(e.to_string().contains("[h248.tokens]"), "{bad}: {e}");
        }
        assert!(Settings::from_toml("[h248]\ntoken = 1\n", "t.toml").is_err());
    }

    #[test]
    fn a_realm_sets_its_dscp_policing_and_bounds_and_bad_ones_are_refused() {
        let base = "mgc = [\"192.0.2.1:2944\"]\n[[realm]]\nname = \"a\"\naddress = \"10.0.0.1/24\"\nports = \"1000-1999\"\n";
        let s = Settings::from_toml(
            &format!("{base}dscp = 46\npolice_sdr = 12500\npolice_mbs = 3000\nsdr_range = \"1000-100000\"\nmbs_range = \"1500-10000\"\n"),
            "t.toml",
        )
        .unwrap();
        let p = s.resolve(&[0, 1]).unwrap().mg.realms[0].policy;
        assert_eq!(p.dscp, 46);
        assert_eq!(p.police, Some((12500, 3000)));
        assert_eq!(
            (p.sdr_range, p.mbs_range),
            ((1000, 100_000), (1500, 10_000))
        );
        for bad in [
            "dscp = 64\n",
            "police_sdr = 12500\n",
            "police_sdr = 500\npolice_mbs = 3000\nsdr_range = \"1000-2000\"\n",
            "sdr_range = \"5-1\"\n",
            "mbs_range = \"x\"\n",
        ] {
            let s = Settings::from_toml(&format!("{base}{bad}"), "t.toml").unwrap();
            let e = s.resolve(&[0, 1]).unwrap_err();
            assert!(matches!(e, ConfigError::Realm { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_cores("1-3,5").unwrap(), vec![1, 2, 3, 5]);
        assert_eq!(parse_cores("2").unwrap(), vec![2]);
        assert_eq!(parse_cores("1,1"), Err(ConfigError::CoreTwice(1)));
        assert_eq!(parse_cores("1-2,2"), Err(ConfigError::CoreTwice(2)));
        assert!(matches!(parse_cores("3-1"), Err(ConfigError::CoreList(_))));
        assert!(matches!(parse_cores("a"), Err(ConfigError::CoreList(_))));
    }

    #[test]
    fn bad_core_maps_are_refused() {
        let present = [0, 1];
        let s = Settings {
            worker_cores: "0".into(),
            ..Settings::default()
        };
        assert_eq!(
            s.resolve(&present).unwrap_err(),
            ConfigError::ControlAmongWorkers(0)
        );
        let s = Settings {
            worker_cores: "0".into(),
            shared_control_core: true,
            ..Settings::default()
        };
        assert!(s.resolve(&present).is_ok());
        let s = Settings {
            worker_cores: "7".into(),
            ..Settings::default()
        };
        assert!(matches!(
            s.resolve(&present),
            Err(ConfigError::CoreAbsent { core: 7, .. })
        ));
        let s = Settings {
            worker_cores: "1,1".into(),
            ..Settings::default()
        };
        assert_eq!(s.resolve(&present).unwrap_err(), ConfigError::CoreTwice(1));
    }

    #[test]
    fn defaults_resolve_and_toml_overrides() {
        let r = Settings::default().resolve(&[0, 1]).unwrap();
        assert_eq!(r.worker_cores, vec![1]);
        assert_eq!(r.mg.realms.len(), 2);
        assert_eq!(r.worker.addresses.len(), 2);
        let s = Settings::from_toml(
            "worker_cores = \"1\"\nmgc = [\"192.0.2.1:2944\"]\n[[realm]]\nname = \"a\"\naddress = \"10.0.0.1/24\"\nports = \"1000-1999\"\n",
            "test.toml",
        )
        .unwrap();
        let r = s.resolve(&[0, 1]).unwrap();
        assert_eq!(r.mg.realms[0].first_port, 1000);
        assert_eq!(r.registration.mgcs[0].addr.port(), 2944);
        let e = Settings::from_toml("no_such_key = 1", "x.toml").unwrap_err();
        assert!(matches!(e, ConfigError::Parse { .. }), "{e}");
    }

    #[test]
    fn idle_naps_are_bounded_and_carried_to_the_workers() {
        let r = Settings::default().resolve(&[0, 1]).unwrap();
        // Unset: `run` decides once the ports' drivers are known.
        assert_eq!(r.worker.idle_nap, smoltcp::time::Duration::ZERO);
        assert_eq!(r.worker.idle_spin, smoltcp::time::Duration::from_micros(50));
        let s = Settings::from_toml(
            "idle_nap_us = 20
idle_spin_us = 80
",
            "t.toml",
        )
        .unwrap();
        let r = s.resolve(&[0, 1]).unwrap();
        assert_eq!(r.worker.idle_nap, smoltcp::time::Duration::from_micros(20));
        assert_eq!(r.worker.idle_spin, smoltcp::time::Duration::from_micros(80));
        assert_eq!(s.idle_wake, IdleWake::Auto);
        let port = Settings::from_toml("idle_wake = \"port\"\n", "t.toml").unwrap();
        assert_eq!(port.idle_wake, IdleWake::Port);
        assert!(Settings::from_toml("idle_wake = \"interrupt\"\n", "t.toml").is_err());
        let xdp = ["net_af_xdp", "net_af_xdp"];
        assert_eq!(IdleWake::Auto.on_ports(&xdp, 1, 30), Ok(true));
        assert_eq!(IdleWake::Port.on_ports(&xdp, 1, 30), Ok(true));
        assert_eq!(IdleWake::Timer.on_ports(&xdp, 1, 30), Ok(false));
        // Several workers when asked for (a peer that hands a sleeping one frames wakes it);
        // auto keeps them on the timer.
        assert_eq!(IdleWake::Port.on_ports(&xdp, 4, 30), Ok(true));
        assert_eq!(IdleWake::Auto.on_ports(&xdp, 4, 30), Ok(false));
        // Taps when asked for; auto keeps them on the timer.
        let tap = ["net_tap"];
        assert_eq!(IdleWake::Port.on_ports(&tap, 2, 30), Ok(true));
        assert_eq!(IdleWake::Auto.on_ports(&tap, 1, 30), Ok(false));
        // Where it cannot work, auto falls back to the timer and port is refused.
        for (drivers, workers, nap) in [
            (&["net_af_xdp", "net_null"][..], 1, 30),
            (&xdp[..], 0, 30),
            (&xdp[..], 1, 0),
            (&[][..], 1, 30),
        ] {
            assert_eq!(IdleWake::Auto.on_ports(drivers, workers, nap), Ok(false));
            let e = IdleWake::Port.on_ports(drivers, workers, nap).unwrap_err();
            assert!(
                e.to_string()
                    .contains("idle_wake = port needs every port on AF_XDP or net_tap"),
                "{e}"
            );
        }
        for bad in ["idle_nap_us = 1001\n", "idle_spin_us = 1000001\n"] {
            let e = Settings::from_toml(bad, "t.toml")
                .unwrap()
                .resolve(&[0, 1])
                .unwrap_err();
            assert!(
                e.to_string().contains("idle_nap_us must be at most 1000"),
                "{e}"
            );
        }
    }

    #[test]
    fn a_realm_takes_a_range_or_a_list_of_addresses() {
        let mut s = Settings::default();
        s.realm[0].address = "198.18.1.10-198.18.1.12/15".into();
        s.realm[1].address = "198.18.2.20/15, 198.18.2.30/15".into();
        let r = s.resolve(&[0, 1]).unwrap();
        let ip = |t: &str| t.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            r.mg.realms[0].addresses,
            [ip("198.18.1.10"), ip("198.18.1.11"), ip("198.18.1.12")]
        );
        assert_eq!(
            r.mg.realms[1].addresses,
            [ip("198.18.2.20"), ip("198.18.2.30")]
        );
        assert_eq!(
            r.worker.addresses.len(),
            5,
            "every address is the workers' too"
        );
        // IPv6, alone or with IPv4 in one realm.
        let mut s = Settings::default();
        s.realm[0].address = "198.18.1.10/15,2001:db8:1::10-2001:db8:1::11/64".into();
        s.realm[1].address = "2001:db8:2::20/64".into();
        let r = s.resolve(&[0, 1]).unwrap();
        let any = |t: &str| t.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(
            r.mg.realms[0].addresses,
            [
                any("198.18.1.10"),
                any("2001:db8:1::10"),
                any("2001:db8:1::11")
            ]
        );
        assert_eq!(r.mg.realms[1].addresses, [any("2001:db8:2::20")]);
        assert_eq!(r.worker.addresses.len(), 4);
        assert_eq!(r.worker.addresses[1].prefix_len(), 64);
        // More addresses than a worker's interface holds.
        let mut s = Settings::default();
        s.realm[0].address = "198.18.1.10-198.18.1.14/15".into();
        s.realm[1].address = "198.18.2.20-198.18.2.23/15".into();
        assert!(matches!(s.resolve(&[0, 1]), Err(ConfigError::Invalid(_))));
        // Reversed, too long, repeated, across families, or sharing ports with another
        // realm's address.
        for bad in [
            "198.18.1.10-2001:db8::1/64",
            "2001:db8::1/129",
            "198.18.1.12-198.18.1.10/15",
            "198.18.1.10-198.18.2.10/15",
            "198.18.1.10/15,198.18.1.10/15",
            "198.18.1.10-198.18.1.12/15,198.18.2.20/15",
        ] {
            let mut s = Settings::default();
            s.realm[0].address = bad.into();
            s.realm[0].ports = "45000-45999".into();
            assert!(
                matches!(s.resolve(&[0, 1]), Err(ConfigError::Realm { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn bad_realms_are_refused() {
        let mut s = Settings::default();
        s.realm[1].address = "198.18.1.10/15".into();
        s.realm[1].ports = "44000-46000".into();
        assert!(matches!(s.resolve(&[0, 1]), Err(ConfigError::Realm { .. })));
        let mut s = Settings::default();
        s.realm[0].ports = "5-1".into();
        assert!(matches!(s.resolve(&[0, 1]), Err(ConfigError::Realm { .. })));
        let mut s = Settings::default();
        s.realm[0].address = "198.18.1.10".into();
        assert!(matches!(s.resolve(&[0, 1]), Err(ConfigError::Realm { .. })));
    }
}
