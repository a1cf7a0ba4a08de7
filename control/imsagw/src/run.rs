//! `imsagw run`: DPDK, one pinned poll-mode worker per worker core, and the control thread
//! (H.248, registration, the MG model) on its own core; `imsagw status` reads the running
//! process's state over a Unix socket.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::config::{RealmSettings, Settings};
use crate::idle::{port_wake, wake_peers, AUTO_IDLE_NAP_US, NAP_TIMER_SLACK_NS, PORT_WAIT_MAX};
use crate::networks::{parse_network, NetworkSettings};
use anyhow::{bail, Context, Result};
use clap::Args;
use control::capture::CaptureRequest;
use control::plane::ControlPlane;
use dataplane::clock::{Clock, MonotonicClock};
use dataplane::contract::rings;
use dataplane::counters::{SharedCounters, WorkerCounters};
use dataplane::worker::Worker;
use dpdk::{Eal, EthDev, EthDevConfig, Mempool, MempoolConfig, PortSockets};
use nix::sys::eventfd::{EfdFlags, EventFd};
use serde::Serialize;
use std::os::fd::AsRawFd;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML file with any of the settings below (flags win over the file).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Core of the control thread.
    #[arg(long)]
    control_core: Option<usize>,
    /// Cores of the poll-mode workers, such as `1-3,5`.
    #[arg(long)]
    worker_cores: Option<String>,
    /// Let the control thread share a core with a worker (small test machines).
    #[arg(long)]
    shared_control_core: bool,
    /// UDP address H.248 is served on.
    #[arg(long)]
    bind: Option<std::net::SocketAddr>,
    /// Also serve H.248 over TCP with TPKT framing on the bind address.
    #[arg(long)]
    tcp: bool,
    /// Our H.248 mId (default `[bind address]:port`).
    #[arg(long)]
    mid: Option<String>,
    /// An MGC to register with, in order of preference (repeat the flag for failover):
    /// `ADDRESS:PORT` or `udp://ADDRESS:PORT` for UDP, `tcp://ADDRESS:PORT` for TCP (TPKT).
    #[arg(long = "mgc")]
    mgcs: Vec<control::registration::Mgc>,
    /// ServiceChangeProfile name.
    #[arg(long)]
    profile: Option<String>,
    /// DPDK port, as EAL names it.
    #[arg(long)]
    device: Option<String>,
    /// Run on this kernel interface through DPDK's AF_XDP driver, one queue per worker (sets
    /// the device and, without EAL arguments, the EAL's vdev).
    #[arg(long)]
    af_xdp: Option<String>,
    /// Default gateway (IPv4 router) of the media addresses.
    #[arg(long)]
    gateway: Option<std::net::Ipv4Addr>,
    /// Default IPv6 router of the media addresses.
    #[arg(long)]
    gateway6: Option<std::net::Ipv6Addr>,
    /// A realm as `NAME=ADDRESS/PREFIX:FIRST-LAST[@NETWORK]` (repeat; replaces the configured
    /// realms); IPv6 addresses as they are (`core=2001:db8:2::20/64:40000-44999`), several as
    /// a comma-separated list or a `FIRST-LAST` range; `@NETWORK` puts it on a `--network`.
    #[arg(long = "realm", value_parser = parse_realm)]
    realms: Vec<RealmSettings>,
    /// A network as `NAME=DEVICE[,vlan=ID][,gateway=ADDR][,gateway6=ADDR]` (repeat; replaces
    /// the configured networks): a DPDK port (`af_xdp:IFACE` for a kernel interface through
    /// AF_XDP; empty for the top-level device), optionally an 802.1Q VLAN on it, and its
    /// default routers.
    #[arg(long = "network", value_parser = parse_network)]
    networks: Vec<NetworkSettings>,
    /// mbufs in the pool.
    #[arg(long)]
    mbufs: Option<u32>,
    /// Receive and send buffer per leg while it moves data, bytes.
    #[arg(long)]
    leg_buffer: Option<usize>,
    /// Receive buffer an idle leg keeps, bytes (its send buffer: about half of it); a leg
    /// borrows `leg_buffer`-sized ones from its worker's pool while data is queued. Equal to
    /// `leg_buffer`: no lending.
    #[arg(long)]
    leg_buffer_idle: Option<usize>,
    /// Full-size socket buffers each worker lends at most at once.
    #[arg(long)]
    buffer_pool: Option<usize>,
    /// Microseconds a worker sleeps between polls once idle for `--idle-spin-us` (0: it polls
    /// without pause). Default: 30 when every port is a kernel interface (AF_XDP, tap), 0
    /// on NIC ports.
    #[arg(long)]
    idle_nap_us: Option<u64>,
    /// Microseconds of idle polling before a worker naps.
    #[arg(long)]
    idle_spin_us: Option<u64>,
    /// What ends a nap: `timer` (its length), `port` (a frame on the worker's queue of an
    /// AF_XDP or tap port, a peer worker handing it frames, or 1 ms) or `auto` (port for one
    /// worker on AF_XDP ports, the default).
    #[arg(long, value_enum)]
    idle_wake: Option<crate::config::IdleWake>,
    #[arg(long)]
    max_legs_per_worker: Option<usize>,
    #[arg(long)]
    max_contexts: Option<usize>,
    #[arg(long)]
    max_terminations: Option<usize>,
    /// Transactions whose replies are remembered for LONG-TIMER.
    #[arg(long)]
    reply_cache_entries: Option<usize>,
    /// T-MAX: how long our requests are repeated before the MGC counts as lost.
    #[arg(long)]
    t_max_ms: Option<u64>,
    /// Wait before registration starts over after every MGC failed.
    #[arg(long)]
    registration_retry_ms: Option<u64>,
    #[arg(long)]
    connect_timeout_ms: Option<u64>,
    /// Release a leg after this long without payload (0: never).
    #[arg(long)]
    idle_timeout_s: Option<u64>,
    /// Release a UDP (T.38) leg after this long without a datagram (0: never).
    #[arg(long)]
    udp_idle_timeout_s: Option<u64>,
    /// Latching UDP legs follow a new source address (NAT rebinding).
    #[arg(long)]
    udp_relatch: bool,
    /// Interval of the termination heartbeat Notify when armed.
    #[arg(long)]
    heartbeat_s: Option<u64>,
    /// The AGW's TLS certificate chain (PEM); with --tls-key. Default: generated at start.
    #[arg(long)]
    tls_cert: Option<String>,
    #[arg(long)]
    tls_key: Option<String>,
    /// Hash of our fingerprint in Local descriptors (sha-1 ... sha-512).
    #[arg(long)]
    fingerprint_hash: Option<String>,
    #[arg(long)]
    tls_handshake_timeout_ms: Option<u64>,
    /// MSRP-aware terminations: limit of start line plus headers, octets.
    #[arg(long)]
    msrp_header_octets: Option<u32>,
    /// MSRP-aware terminations: limit of one SEND chunk's body, octets.
    #[arg(long)]
    msrp_chunk_octets: Option<u32>,
    #[arg(long)]
    msrp_chunks_per_message: Option<u32>,
    /// MSRP-aware terminations: requests and responses per second per leg (0: no limit).
    #[arg(long)]
    msrp_messages_per_second: Option<u32>,
    #[arg(long)]
    bfcp_frame_octets: Option<u32>,
    /// BFCP-aware terminations: frames per second per leg (0: no limit).
    #[arg(long)]
    bfcp_frames_per_second: Option<u32>,
    /// Unix socket for `imsagw status`.
    #[arg(long)]
    status_socket: Option<String>,
    /// Serve Prometheus metrics on this address (http://ADDR/metrics). Off by default.
    #[arg(long)]
    metrics: Option<std::net::SocketAddr>,
    /// An H.248 token as `KEY=pkg/item` (or `KEY=name`), as in `[h248.tokens]` (repeat).
    #[arg(long = "token", value_parser = parse_token)]
    tokens: Vec<(String, String)>,
    /// Log filter when RUST_LOG is not set (re-read from the config file on SIGHUP).
    #[arg(long)]
    log_level: Option<String>,
    /// DPDK EAL arguments. The default runs without a NIC or hugepages on a tap interface
    /// named imsagw0.
    #[arg(last = true)]
    eal: Vec<String>,
}

fn parse_realm(s: &str) -> Result<RealmSettings, String> {
    const FORM: &str = "expected NAME=ADDRESS/PREFIX:FIRST-LAST[@NETWORK]";
    let (name, rest) = s.split_once('=').ok_or(FORM)?;
    let (rest, network) = match rest.rsplit_once('@') {
        Some((r, n)) => (r, Some(n.to_string())),
        None => (rest, None),
    };
    let (address, ports) = rest.rsplit_once(':').ok_or(FORM)?;
    Ok(RealmSettings {
        name: name.into(),
        address: address.into(),
        ports: ports.into(),
        network,
        ..Default::default()
    })
}

fn parse_token(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or("expected KEY=VALUE")?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}

impl RunArgs {
    pub fn settings(&self) -> Result<Settings> {
        let mut s = match &self.config {
            Some(p) => Settings::from_file(p)?,
            None => Settings::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $( if let Some(v) = &self.$f { s.$f = v.clone(); } )* };
        }
        over!(
            control_core,
            worker_cores,
            bind,
            profile,
            device,
            mbufs,
            leg_buffer,
            leg_buffer_idle,
            buffer_pool,
            idle_spin_us,
            idle_wake,
            max_legs_per_worker,
            max_contexts,
            max_terminations,
            reply_cache_entries,
            t_max_ms,
            registration_retry_ms,
            connect_timeout_ms,
            idle_timeout_s,
            udp_idle_timeout_s,
            heartbeat_s,
            status_socket,
            log_level,
            fingerprint_hash,
            tls_handshake_timeout_ms,
            msrp_header_octets,
            msrp_chunk_octets,
            msrp_chunks_per_message,
            msrp_messages_per_second,
            bfcp_frame_octets,
            bfcp_frames_per_second
        );
        if self.tls_cert.is_some() {
            s.tls_cert = self.tls_cert.clone();
        }
        if self.tls_key.is_some() {
            s.tls_key = self.tls_key.clone();
        }
        if self.mid.is_some() {
            s.mid = self.mid.clone();
        }
        if self.gateway.is_some() {
            s.gateway = self.gateway;
        }
        if self.gateway6.is_some() {
            s.gateway6 = self.gateway6;
        }
        if self.af_xdp.is_some() {
            s.af_xdp = self.af_xdp.clone();
        }
        if self.idle_nap_us.is_some() {
            s.idle_nap_us = self.idle_nap_us;
        }
        if self.metrics.is_some() {
            s.metrics = self.metrics;
        }
        if self.shared_control_core {
            s.shared_control_core = true;
        }
        if self.udp_relatch {
            s.udp_relatch = true;
        }
        if self.tcp {
            s.tcp = true;
        }
        if !self.mgcs.is_empty() {
            s.mgc = self.mgcs.clone();
        }
        if !self.realms.is_empty() {
            s.realm = self.realms.clone();
        }
        if !self.networks.is_empty() {
            s.network = self.networks.clone();
        }
        for (k, v) in &self.tokens {
            s.h248
                .tokens
                .insert(k.clone(), toml::Value::String(v.clone()));
        }
        if !self.eal.is_empty() {
            s.eal = self.eal.clone();
        }
        Ok(s)
    }
}

/// One worker in `imsagw status`: its core, its counters (every one of
/// `WorkerCounters::SPECS`, by name) and its rings' occupancy.
pub(crate) struct WorkerStatus {
    pub(crate) core: usize,
    pub(crate) counters: WorkerCounters,
    /// Commands waiting in the worker's ring, events waiting for the control thread.
    pub(crate) command_ring: usize,
    pub(crate) event_ring: usize,
}

impl Serialize for WorkerStatus {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let specs = WorkerCounters::SPECS;
        let mut m = s.serialize_map(Some(specs.len() + 3))?;
        m.serialize_entry("core", &self.core)?;
        for (spec, v) in specs.iter().zip(self.counters.values()) {
            m.serialize_entry(spec.name, &v)?;
        }
        m.serialize_entry("command_ring", &self.command_ring)?;
        m.serialize_entry("event_ring", &self.event_ring)?;
        m.end()
    }
}

#[derive(Serialize)]
pub(crate) struct PortStatus {
    pub(crate) device: String,
    pub(crate) rx_packets: u64,
    pub(crate) tx_packets: u64,
    pub(crate) rx_errors: u64,
    pub(crate) tx_errors: u64,
    pub(crate) rx_missed: u64,
    pub(crate) rx_no_mbuf: u64,
    /// An AF_XDP port's frames the kernel dropped before the worker's receive ring (since
    /// imsagw started); absent for other ports.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kernel_rx_dropped: Option<u64>,
    pub(crate) link_up: bool,
}

#[derive(Serialize)]
pub(crate) struct ProcessStatus {
    #[serde(flatten)]
    pub(crate) control: control::plane::Status,
    pub(crate) workers: Vec<WorkerStatus>,
    pub(crate) ports: Vec<PortStatus>,
    pub(crate) mbufs_in_use: u32,
    pub(crate) mbufs: u32,
}

fn stop_flags() -> Result<(Arc<AtomicBool>, Arc<AtomicBool>)> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("installing signal handler")?;
    }
    let hup = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .context("installing SIGHUP handler")?;
    Ok((stop, hup))
}

pub fn run(args: RunArgs, reload: crate::logging::Reload) -> Result<()> {
    let settings = args.settings()?;
    let present: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let mut cfg = settings.resolve(&present)?;
    crate::heap::log();
    let identity = settings.tls_identity()?;
    tracing::info!(fingerprint = %identity.fingerprint(cfg.mg.fingerprint_hash), "TLS identity");
    cfg.mg.tls = Some(identity);
    if std::env::var_os("RUST_LOG").is_none() {
        reload.set(&settings.log_level)?;
    }
    for p in &cfg.ports {
        if let Some(iface) = &p.af_xdp {
            crate::afxdp::preflight(iface, cfg.worker_cores.len())?;
        }
    }
    let eal_args = if settings.eal.is_empty() {
        let mut vdevs = Vec::new();
        for p in &cfg.ports {
            vdevs.push(match (&p.af_xdp, p.device.strip_prefix("net_tap")) {
                (Some(iface), _) => crate::afxdp::vdev(&p.device, iface, cfg.worker_cores.len()),
                (None, Some(k)) => format!("{},iface=imsagw{k}", p.device),
                (None, None) => bail!(
                    "device {:?} needs EAL arguments (after --) to be found",
                    p.device
                ),
            });
        }
        let vdevs: Vec<&str> = vdevs.iter().map(String::as_str).collect();
        let mut a = Eal::no_nic_args(&vdevs);
        // EAL's main lcore is the control thread's core.
        a[1] = settings.control_core.to_string();
        a
    } else {
        settings.eal.clone()
    };
    pin("control", settings.control_core);
    let eal = Eal::init(&eal_args).context("initialising DPDK")?;
    // A pool per port: an AF_XDP port takes its pool as the UMEM of its sockets.
    let mut pools = Vec::new();
    let mut devs = Vec::new();
    let mut kernel_drops_at_start = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let name = if i == 0 {
            "imsagw_pool".to_string()
        } else {
            format!("imsagw_pool{i}")
        };
        let pool = Mempool::create(
            eal,
            &MempoolConfig::for_device(name, settings.mbufs, &p.device),
        )
        .with_context(|| format!("creating the mbuf pool of {}", p.device))?;
        let port_id = EthDev::port_by_name(eal, &p.device)
            .with_context(|| format!("finding DPDK device {:?}", p.device))?;
        let dev = EthDev::start(
            eal,
            port_id,
            &EthDevConfig {
                queues: cfg.worker_cores.len() as u16,
                ..EthDevConfig::default()
            },
            Arc::clone(&pool),
        )
        .with_context(|| format!("starting the port {}", p.device))?;
        pools.push(pool);
        devs.push(dev);
        // The interface's drops count from here: what an earlier user of it lost is not ours.
        kernel_drops_at_start.push(p.af_xdp.as_deref().map(|i| {
            (
                i.to_string(),
                crate::afxdp::kernel_rx_dropped(i).unwrap_or(0),
            )
        }));
    }
    let (stop, hup) = stop_flags()?;
    if settings.idle_nap_us.is_none()
        && devs
            .iter()
            .all(|d| matches!(d.driver(), "net_af_xdp" | "net_tap"))
    {
        cfg.worker.idle_nap = smoltcp::time::Duration::from_micros(AUTO_IDLE_NAP_US);
    }
    let nap = cfg.worker.idle_nap;
    let port_sockets = port_wake(settings.idle_wake, &devs, cfg.worker_cores.len(), nap)?;
    tracing::info!(
        idle_nap_us = nap.total_micros(),
        idle_spin_us = cfg.worker.idle_spin.total_micros(),
        wake = if port_sockets[0].is_empty() {
            "timer"
        } else {
            "port"
        },
        port_sockets = port_sockets[0].len(),
        "workers {}",
        if nap == smoltcp::time::Duration::ZERO {
            "poll without pause"
        } else {
            "nap between idle polls"
        }
    );

    let n = cfg.worker_cores.len();
    // One clock for every worker, and the wall-clock time of its origin (capture files).
    let clock = MonotonicClock::new();
    let epoch_origin_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
        .saturating_sub(clock.now().total_micros() as u64);
    let (control_ends, worker_ends): (Vec<_>, Vec<_>) = (0..n).map(|_| rings(4096)).unzip();
    let mut cp = ControlPlane::with_reply_cache(
        settings.bind,
        cfg.registration.clone(),
        cfg.mg.clone(),
        control_ends,
        settings.reply_cache_entries.max(1024),
    )
    .with_context(|| format!("binding H.248 on {}", settings.bind))?;
    if settings.tcp {
        let bound = cp.local_addr()?;
        let tcp = cp
            .enable_tcp(bound)
            .with_context(|| format!("binding H.248 over TCP on {bound}"))?;
        tracing::info!(%tcp, "H.248 over TCP (TPKT)");
    }
    cp.set_registration_retry(Duration::from_millis(
        settings.registration_retry_ms.max(100),
    ));

    let workers_stop = Arc::new(AtomicBool::new(false));
    let shared: Vec<Arc<SharedCounters>> = (0..n).map(|_| Arc::default()).collect();
    let mut handoffs = dataplane::worker::handoff_mesh(n, 4096).into_iter();
    // What wakes a worker sleeping on its ports when a peer hands it frames (no port
    // signals the hand-off rings).
    let wakers: Arc<Vec<EventFd>> = Arc::new(
        (0..n)
            .map(|_| {
                EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            })
            .collect::<Result<_, _>>()
            .context("creating the workers' wake-up eventfds")?,
    );
    let mut workers = Vec::new();
    for (i, worker_end) in worker_ends.into_iter().enumerate() {
        let core = cfg.worker_cores[i];
        let ports = devs
            .iter()
            .map(|d| d.queue(i as u16))
            .collect::<Result<Vec<_>, _>>()?;
        let handoff = handoffs.next().expect("one hand-off end per worker");
        let mut sockets = port_sockets[i].clone();
        // Peers sleep on their ports (and are to be woken when handed frames), whatever
        // becomes of this worker's own sleep.
        let peers_sleep = n > 1 && !sockets.is_empty();
        if peers_sleep {
            sockets = sockets.and(wakers[i].as_raw_fd());
        }
        let (stop, shared, wcfg, wakers) = (
            Arc::clone(&workers_stop),
            Arc::clone(&shared[i]),
            cfg.worker.clone(),
            Arc::clone(&wakers),
        );
        let handle = thread::Builder::new()
            .name(format!("worker-{core}"))
            .spawn(move || {
                pin("worker", core);
                if nap > smoltcp::time::Duration::ZERO {
                    // The default slack (50 us) would stretch every nap five-fold.
                    if let Err(e) = nix::sys::prctl::set_timerslack(NAP_TIMER_SLACK_NS) {
                        tracing::warn!(error = %e, "timer slack not set; naps run longer");
                    }
                }
                let handoff = (n > 1).then_some(handoff);
                let mut w = Worker::on_ports(ports, wcfg, worker_end, clock.now(), handoff);
                let mut polls = 0u32;
                let publish = |w: &Worker<_>| shared.publish(&w.counters());
                while !stop.load(Ordering::Relaxed) {
                    let now = clock.now();
                    let busy = w.poll(now);
                    if peers_sleep {
                        wake_peers(w.asleep_handed(), &wakers);
                    }
                    if let Some(nap) = w.nap(busy, now) {
                        // 4096 polls take a fraction of a second once they nap: what the
                        // status shows is brought up to date before each nap instead.
                        publish(&w);
                        if sockets.is_empty() {
                            thread::sleep(nap);
                        } else if w.going_to_sleep() {
                            let waited = sockets.wait(PORT_WAIT_MAX);
                            w.woke();
                            if peers_sleep {
                                // Emptied for the next sleep (nothing to read is no error).
                                let _ = wakers[i].read();
                            }
                            if let Err(e) = waited {
                                tracing::warn!(error = %e, "waiting on the ports failed; naps end on a timer from now on");
                                sockets = PortSockets::default();
                            }
                        }
                    }
                    polls = polls.wrapping_add(1);
                    if polls.is_multiple_of(4096) {
                        publish(&w);
                    }
                }
                // Released legs close gracefully (FIN after their data) before the port goes.
                let end = Instant::now() + Duration::from_secs(3);
                while w.legs() > 0 && Instant::now() < end {
                    w.poll(clock.now());
                }
                publish(&w);
                w.legs()
            })?;
        workers.push(handle);
    }

    let socket_path = PathBuf::from(&settings.status_socket);
    let _ = std::fs::remove_file(&socket_path);
    let status = UnixListener::bind(&socket_path)
        .with_context(|| format!("binding the status socket {}", socket_path.display()))?;
    status.set_nonblocking(true)?;

    let start = Instant::now();
    let now = || start.elapsed().as_millis() as u64;
    tracing::info!(
        bind = %cp.local_addr()?,
        devices = ?cfg.ports.iter().map(|p| p.device.as_str()).collect::<Vec<_>>(),
        macs = ?devs.iter().map(|d| d.mac()).collect::<Vec<_>>(),
        control_core = settings.control_core,
        worker_cores = ?cfg.worker_cores,
        realms = ?cfg.mg.realms.iter().map(|r| format!("{}={:?}:{}-{}", r.name, r.addresses, r.first_port, r.last_port)).collect::<Vec<_>>(),
        "imsagw running"
    );
    cp.start(now());
    let status_of = |cp: &ControlPlane| {
        let rings = cp.ring_occupancy();
        ProcessStatus {
            control: cp.status(),
            workers: shared
                .iter()
                .zip(&cfg.worker_cores)
                .enumerate()
                .map(|(i, (g, &core))| WorkerStatus {
                    core,
                    counters: g.load(),
                    command_ring: rings[i].0,
                    event_ring: rings[i].1,
                })
                .collect(),
            ports: devs
                .iter()
                .zip(&cfg.ports)
                .zip(&kernel_drops_at_start)
                .filter_map(|((dev, spec), drops_at_start)| {
                    let p = dev.stats().ok()?;
                    Some(PortStatus {
                        device: spec.device.clone(),
                        rx_packets: p.rx_packets,
                        tx_packets: p.tx_packets,
                        rx_errors: p.rx_errors,
                        tx_errors: p.tx_errors,
                        rx_missed: p.rx_missed,
                        rx_no_mbuf: p.rx_no_mbuf,
                        kernel_rx_dropped: drops_at_start.as_ref().and_then(|(iface, at_start)| {
                            crate::afxdp::kernel_rx_dropped(iface)
                                .map(|n| n.saturating_sub(*at_start))
                        }),
                        link_up: dev.link().is_ok_and(|l| l.up),
                    })
                })
                .collect(),
            mbufs_in_use: pools
                .iter()
                .zip(&devs)
                .map(|(pool, dev)| pool.in_use().saturating_sub(dev.held_by_driver()))
                .sum(),
            mbufs: pools.iter().map(|p| p.size()).sum(),
        }
    };
    let mut metrics = match settings.metrics {
        Some(addr) => {
            let m = crate::metrics::MetricsServer::bind(addr)
                .with_context(|| format!("binding the metrics endpoint {addr}"))?;
            tracing::info!(%addr, "Prometheus metrics on http://{addr}/metrics");
            Some(m)
        }
        None => None,
    };
    let mut status_clients = StatusClients::default();
    // The connection of the `imsagw capture` waiting for its capture to end.
    let mut capture_client: Option<UnixStream> = None;
    // A realm's port's link is its availability (`ipra`).
    let mut links_up = vec![true; devs.len()];
    let mut link_checked = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        cp.poll(now(), Duration::from_millis(5))?;
        if link_checked.elapsed() >= Duration::from_millis(250) {
            link_checked = Instant::now();
            for (p, dev) in devs.iter().enumerate() {
                let up = dev.link().is_ok_and(|l| l.up);
                if up != links_up[p] {
                    links_up[p] = up;
                    let on: Vec<(usize, bool)> = (0..cfg.mg.realms.len())
                        .filter(|&r| cfg.realm_ports[r] == p)
                        .map(|r| (r, up))
                        .collect();
                    cp.set_realms_available(&on);
                }
            }
        }
        for (mut conn, request) in status_clients.poll(&status) {
            match request.as_str() {
                "capture-stop" => {
                    let reply = if cp.stop_capture() {
                        "STOPPING\n"
                    } else {
                        "NONE\n"
                    };
                    let _ = conn.write_all(reply.as_bytes());
                }
                line if line.starts_with("capture") => {
                    let started = CaptureRequest::parse(line)
                        .and_then(|r| cp.start_capture(r, epoch_origin_us, now()));
                    match started {
                        Ok(()) => {
                            let _ = conn.write_all(b"STARTED\n");
                            capture_client = Some(conn);
                        }
                        Err(e) => {
                            let _ = writeln!(conn, "ERROR {e}");
                        }
                    }
                }
                _ => {
                    let body = serde_json::to_string(&status_of(&cp))?;
                    let _ = conn.write_all(body.as_bytes());
                }
            }
        }
        if let Some(summary) = cp.poll_capture(now()) {
            if let Some(mut c) = capture_client.take() {
                let _ = writeln!(
                    c,
                    "DONE packets={} bytes={} missed={}",
                    summary.packets, summary.bytes, summary.missed
                );
            }
        }
        if let Some(m) = metrics.as_mut() {
            m.serve(|| crate::metrics::render(&status_of(&cp)));
        }
        if hup.swap(false, Ordering::Relaxed) {
            reload_settings(&args, &reload, &mut cp);
        }
    }

    tracing::info!("stopping: ServiceChange Forced to the MGC, releasing every termination");
    cp.shutdown(now());
    let released = cp.release_all();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end && cp.awaiting_replies() {
        cp.poll(now(), Duration::from_millis(5))?;
    }
    workers_stop.store(true, Ordering::Relaxed);
    let mut legs_left = 0;
    for w in workers {
        legs_left += w.join().map_err(|_| anyhow::anyhow!("a worker panicked"))?;
    }
    let _ = std::fs::remove_file(&socket_path);
    // An AF_XDP port keeps the mbufs of its fill ring: the pool's baseline.
    let held: Vec<u32> = devs.iter().map(|d| d.held_by_driver()).collect();
    drop(devs);
    let in_use: u32 = pools
        .iter()
        .zip(&held)
        .map(|(p, &h)| p.in_use().saturating_sub(h))
        .sum();
    tracing::info!(
        released,
        legs_left,
        mbufs_in_use = in_use,
        mbufs_held_by_port = held.iter().sum::<u32>(),
        "imsagw stopped"
    );
    if in_use != 0 {
        bail!("{in_use} mbufs not returned to the pools");
    }
    Ok(())
}

fn reload_settings(args: &RunArgs, reload: &crate::logging::Reload, cp: &mut ControlPlane) {
    // Certificates: new handshakes use the new one; sessions up keep theirs.
    if let Ok(s) = args.settings() {
        if s.tls_cert.is_some() {
            match s.tls_identity() {
                Ok(id) => {
                    tracing::info!(fingerprint = %id.fingerprint(dataplane::tls::HashAlg::Sha256), "SIGHUP: TLS certificate reloaded");
                    cp.set_identity(Some(id));
                }
                Err(e) => tracing::warn!(error = %e, "SIGHUP: TLS certificate not reloaded"),
            }
        }
    }
    match args.settings() {
        Ok(s) if std::env::var_os("RUST_LOG").is_none() => match reload.set(&s.log_level) {
            Ok(()) => tracing::info!(log_level = %s.log_level, "SIGHUP: log level reloaded"),
            Err(e) => tracing::warn!(error = %e, "SIGHUP: bad log level"),
        },
        Ok(_) => tracing::info!("SIGHUP: RUST_LOG is set, log level unchanged"),
        Err(e) => tracing::warn!(error = %e, "SIGHUP: configuration not reloaded"),
    }
}

fn pin(what: &str, core: usize) {
    if core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
        tracing::debug!(what, core, "pinned");
    } else {
        tracing::warn!(what, core, "could not pin to core");
    }
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The running imsagw's status socket.
    #[arg(long, default_value = "/run/imsagw.sock")]
    status_socket: PathBuf,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

/// Status-socket clients whose request line (`status`, `capture ...`) is still coming. Read
/// without blocking, so a slow or silent client never stalls the control loop and the H.248
/// it serves; at most `MAX_STATUS_CLIENTS` wait at once, each for `STATUS_REQUEST_WAIT`.
#[derive(Default)]
struct StatusClients {
    waiting: Vec<(UnixStream, Vec<u8>, Instant)>,
}

const MAX_STATUS_CLIENTS: usize = 16;
const STATUS_REQUEST_WAIT: Duration = Duration::from_secs(2);
const MAX_STATUS_REQUEST: usize = 4096;

impl StatusClients {
    /// Accepts new clients and returns those whose request is complete, ready for a
    /// blocking reply (200 ms write timeout). A client that sends nothing until the wait
    /// ends, or closes its side, asked for the status (as clients before requests did).
    fn poll(&mut self, listener: &UnixListener) -> Vec<(UnixStream, String)> {
        while self.waiting.len() < MAX_STATUS_CLIENTS {
            let Ok((conn, _)) = listener.accept() else {
                break;
            };
            if conn.set_nonblocking(true).is_ok() {
                self.waiting.push((conn, Vec::new(), Instant::now()));
            }
        }
        let mut ready = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            let (conn, line, since) = &mut self.waiting[i];
            let mut complete = since.elapsed() >= STATUS_REQUEST_WAIT;
            let mut broken = false;
            let mut buf = [0u8; 512];
            while !complete {
                match conn.read(&mut buf) {
                    Ok(0) => complete = true,
                    Ok(n) => match buf[..n].iter().position(|&b| b == b'\n') {
                        Some(end) => {
                            line.extend_from_slice(&buf[..end]);
                            complete = true;
                        }
                        None => {
                            line.extend_from_slice(&buf[..n]);
                            complete = line.len() >= MAX_STATUS_REQUEST;
                        }
                    },
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => {
                        tracing::debug!(error = %e, "status socket: client gone");
                        broken = true;
                        break;
                    }
                }
            }
            if !(complete || broken) {
                i += 1;
                continue;
            }
            let (conn, line, _) = self.waiting.swap_remove(i);
            if broken {
                continue;
            }
            let request = String::from_utf8_lossy(&line).trim().to_string();
            let blocking = conn.set_nonblocking(false).is_ok()
                && conn
                    .set_write_timeout(Some(Duration::from_millis(200)))
                    .is_ok();
            if blocking {
                ready.push((conn, request));
            }
        }
        ready
    }
}

pub fn status(args: StatusArgs) -> Result<()> {
    let mut conn = UnixStream::connect(&args.status_socket).with_context(|| {
        format!(
            "connecting to {} (is imsagw running?)",
            args.status_socket.display()
        )
    })?;
    conn.write_all(b"status\n")?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut body = String::new();
    conn.read_to_string(&mut body)?;
    let v: serde_json::Value = serde_json::from_str(&body).context("status reply")?;
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{body}")?;
    } else {
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
    }
    Ok(())
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["termination", "port", "host", "all", "stop"])))]
pub struct CaptureArgs {
    /// The running imsagw's status socket.
    #[arg(long, default_value = "/run/imsagw.sock")]
    status_socket: PathBuf,
    /// Capture one termination (its local port, both directions).
    #[arg(long)]
    termination: Option<String>,
    /// Capture a local TCP/UDP port.
    #[arg(long)]
    port: Option<u16>,
    /// Capture the frames from and to one IPv4 address (a UE, a peer), on every worker.
    #[arg(long)]
    host: Option<std::net::Ipv4Addr>,
    /// Capture every frame of every worker.
    #[arg(long)]
    all: bool,
    /// End the running capture now (its `imsagw capture` prints the summary).
    #[arg(long)]
    stop: bool,
    /// The pcapng file imsagw writes (a path on imsagw's machine).
    #[arg(long, default_value = "capture.pcapng")]
    out: PathBuf,
    /// Stop after this many packets.
    #[arg(long, default_value_t = 10_000)]
    packets: u64,
    /// Stop before the file would exceed this many bytes.
    #[arg(long, default_value_t = 100 << 20)]
    bytes: u64,
    /// Octets kept of each frame (64 to 2048).
    #[arg(long, default_value_t = 2048)]
    snaplen: u16,
    /// Stop after this long.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

/// Asks the running imsagw for a capture and waits for it to end.
pub fn capture(args: CaptureArgs) -> Result<()> {
    if args.stop {
        let mut conn = UnixStream::connect(&args.status_socket)?;
        conn.write_all(b"capture-stop\n")?;
        let mut reply = String::new();
        conn.read_to_string(&mut reply)?;
        if !reply.starts_with("STOPPING") {
            bail!("no capture running");
        }
        return Ok(());
    }
    let what = match (&args.termination, args.port, args.host) {
        (Some(t), _, _) => format!("termination {t}"),
        (None, Some(p), _) => format!("port {p}"),
        (None, None, Some(h)) => format!("host {h}"),
        _ => "all".to_string(),
    };
    let out = std::path::absolute(&args.out)?;
    let mut conn = UnixStream::connect(&args.status_socket).with_context(|| {
        format!(
            "connecting to {} (is imsagw running?)",
            args.status_socket.display()
        )
    })?;
    writeln!(
        conn,
        "capture {what} out={} packets={} bytes={} snaplen={} seconds={}",
        out.display(),
        args.packets,
        args.bytes,
        args.snaplen,
        args.seconds
    )?;
    conn.set_read_timeout(Some(Duration::from_secs(args.seconds + 10)))?;
    let mut reply = String::new();
    let mut r = std::io::BufReader::new(conn);
    use std::io::BufRead;
    r.read_line(&mut reply)?;
    if !reply.starts_with("STARTED") {
        bail!("capture refused: {}", reply.trim());
    }
    println!("capturing {what} into {}", out.display());
    reply.clear();
    r.read_line(&mut reply)?;
    if !reply.starts_with("DONE") {
        bail!("capture did not complete: {:?}", reply.trim());
    }
    println!("{}", reply.trim());
    Ok(())
}
