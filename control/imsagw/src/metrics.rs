//! Prometheus metrics over HTTP, served by the control thread: a scrape renders the same
//! snapshot `imsagw status` shows (the workers' counters are read from their published
//! atomics, never locked) in the OpenMetrics text format, encoded by `prometheus-client`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use dataplane::counters::{WorkerCounters, FAMILY_HELP};

use crate::run::ProcessStatus;

type Labels = Vec<(String, String)>;

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Builds a registry on each scrape from one snapshot (counters set to their totals).
struct Builder {
    registry: Registry,
}

impl Builder {
    fn counter(&mut self, name: &str, help: &str, values: &[(Labels, u64)]) {
        let f = Family::<Labels, Counter>::default();
        for (l, v) in values {
            f.get_or_create(l).inc_by(*v);
        }
        self.registry.register(name, help, f);
    }

    fn gauge(&mut self, name: &str, help: &str, values: &[(Labels, i64)]) {
        let f = Family::<Labels, Gauge>::default();
        for (l, v) in values {
            f.get_or_create(l).set(*v);
        }
        self.registry.register(name, help, f);
    }
}

/// The exposition of one status snapshot.
pub fn render(s: &ProcessStatus) -> String {
    let mut b = Builder {
        registry: Registry::with_prefix("imsagw"),
    };
    let c = &s.control;
    let none = Vec::new;
    b.gauge(
        "registered",
        "1 when registered with an MGC",
        &[(none(), c.registration.starts_with("registered") as i64)],
    );
    b.gauge(
        "contexts",
        "Contexts in use",
        &[(none(), c.contexts as i64)],
    );
    b.gauge(
        "terminations",
        "Terminations in use",
        &[(none(), c.terminations as i64)],
    );
    let h = &c.h248;
    b.counter(
        "h248_datagrams",
        "H.248 datagrams received",
        &[(none(), h.datagrams)],
    );
    b.counter(
        "h248_requests",
        "H.248 transaction requests received",
        &[(none(), h.requests)],
    );
    b.counter(
        "h248_dropped",
        "H.248 messages dropped or refused, by reason",
        &[
            (labels(&[("reason", "unknown_peer")]), h.unknown_peer),
            (labels(&[("reason", "garbage")]), h.garbage),
            (labels(&[("reason", "oversized")]), h.oversized),
            (labels(&[("reason", "decode_error")]), h.decode_errors),
            (labels(&[("reason", "cache_full")]), h.refused),
            (
                labels(&[("reason", "not_registered")]),
                h.before_registration,
            ),
        ],
    );
    let commands: Vec<_> = c
        .commands
        .iter()
        .map(|&(cmd, code, n)| {
            let result = if code == 0 {
                "ok".to_string()
            } else {
                code.to_string()
            };
            (labels(&[("command", cmd), ("result", &result)]), n)
        })
        .collect();
    b.counter(
        "h248_commands",
        "H.248 commands executed, by command and result (ok or the error code)",
        &commands,
    );
    let n = &c.notify;
    b.counter(
        "notify",
        "Notify requests to the MGC, by outcome",
        &[
            (labels(&[("outcome", "sent")]), n.sent),
            (labels(&[("outcome", "answered")]), n.answered),
            (labels(&[("outcome", "refused")]), n.refused),
            (labels(&[("outcome", "given_up")]), n.given_up),
            (labels(&[("outcome", "unregistered")]), n.unregistered),
        ],
    );
    b.counter(
        "h248_retransmissions",
        "Our H.248 requests sent again for want of an answer",
        &[(none(), n.retransmissions)],
    );
    let t = &c.tls;
    b.counter(
        "tls_handshakes",
        "TLS handshakes on access legs, by outcome",
        &[
            (labels(&[("outcome", "established")]), t.established),
            (labels(&[("outcome", "fingerprint")]), t.failed_fingerprint),
            (
                labels(&[("outcome", "no_certificate")]),
                t.failed_no_certificate,
            ),
            (labels(&[("outcome", "protocol")]), t.failed_protocol),
            (labels(&[("outcome", "timeout")]), t.failed_timeout),
            (labels(&[("outcome", "closed")]), t.failed_closed),
        ],
    );
    let pool = |f: &dyn Fn(&control::mg::PoolStatus) -> usize| {
        c.port_pools
            .iter()
            .map(|p| (labels(&[("realm", &p.realm)]), f(p) as i64))
            .collect::<Vec<_>>()
    };
    b.gauge(
        "port_pool_in_use",
        "Local ports of the realm's pool held by terminations",
        &pool(&|p| p.in_use),
    );
    b.gauge(
        "port_pool_capacity",
        "Local ports in the realm's pool",
        &pool(&|p| p.capacity),
    );
    let a = &c.applications;
    b.counter(
        "msrp_chunks",
        "MSRP SEND chunks relayed by aware terminations",
        &[(none(), a.msrp_chunks)],
    );
    b.counter(
        "msrp_messages",
        "MSRP messages completed",
        &[(none(), a.msrp_messages)],
    );
    b.counter(
        "msrp_body_octets",
        "Octets of MSRP request bodies",
        &[(none(), a.msrp_body_octets)],
    );
    b.counter(
        "bfcp_frames",
        "BFCP frames relayed",
        &[(none(), a.bfcp_frames)],
    );

    // The workers' families, from the one definition of their counters.
    let specs = WorkerCounters::SPECS;
    for (family, help) in FAMILY_HELP {
        let mut values: Vec<(Labels, i64)> = Vec::new();
        let mut gauge = false;
        for (i, spec) in specs.iter().enumerate() {
            let Some(e) = spec.export.filter(|e| e.family == *family) else {
                continue;
            };
            gauge = e.gauge;
            for x in &s.workers {
                let core = x.core.to_string();
                let mut l = vec![("core", core.as_str())];
                if let Some(extra) = e.label {
                    l.push(extra);
                }
                values.push((labels(&l), x.counters.values()[i] as i64));
            }
        }
        if gauge {
            b.gauge(family, help, &values);
        } else {
            let values: Vec<(Labels, u64)> =
                values.into_iter().map(|(l, v)| (l, v as u64)).collect();
            b.counter(family, help, &values);
        }
    }
    let wl = |extra: (&str, &str), f: &dyn Fn(&crate::run::WorkerStatus) -> u64| {
        s.workers
            .iter()
            .map(|x| (labels(&[("core", &x.core.to_string()), extra]), f(x)))
            .collect::<Vec<_>>()
    };
    let as_i64 = |v: Vec<(Labels, u64)>| {
        v.into_iter()
            .map(|(l, x)| (l, x as i64))
            .collect::<Vec<_>>()
    };
    let mut rings = wl(("ring", "command"), &|x| x.command_ring as u64);
    rings.extend(wl(("ring", "event"), &|x| x.event_ring as u64));
    b.gauge(
        "worker_ring_occupancy",
        "Entries waiting in the worker's rings",
        &as_i64(rings),
    );
    if !s.ports.is_empty() {
        let per = |f: &dyn Fn(&crate::run::PortStatus) -> (&'static str, &'static str, u64)| {
            s.ports
                .iter()
                .map(|p| {
                    let (k, v, x) = f(p);
                    (labels(&[("port", p.device.as_str()), (k, v)]), x)
                })
                .collect::<Vec<_>>()
        };
        let mut packets = per(&|p| ("direction", "rx", p.rx_packets));
        packets.extend(per(&|p| ("direction", "tx", p.tx_packets)));
        b.counter("port_packets", "Packets of each DPDK port", &packets);
        let mut errors = per(&|p| ("kind", "rx_error", p.rx_errors));
        errors.extend(per(&|p| ("kind", "tx_error", p.tx_errors)));
        errors.extend(per(&|p| ("kind", "rx_missed", p.rx_missed)));
        errors.extend(per(&|p| ("kind", "rx_no_mbuf", p.rx_no_mbuf)));
        errors.extend(s.ports.iter().filter_map(|p| {
            let n = p.kernel_rx_dropped?;
            Some((
                labels(&[("port", p.device.as_str()), ("kind", "kernel_rx_dropped")]),
                n,
            ))
        }));
        b.counter("port_errors", "Errors and drops of each DPDK port", &errors);
        let up: Vec<_> = s
            .ports
            .iter()
            .map(|p| (labels(&[("port", p.device.as_str())]), p.link_up as i64))
            .collect();
        b.gauge("port_link_up", "1 when the port's link is up", &up);
    }
    b.gauge(
        "mbufs_in_use",
        "mbufs taken from the pool",
        &[(none(), s.mbufs_in_use as i64)],
    );
    b.gauge("mbufs", "mbufs in the pool", &[(none(), s.mbufs as i64)]);
    let mut out = String::new();
    if let Err(e) = encode(&mut out, &b.registry) {
        tracing::warn!(error = %e, "metrics not encoded");
    }
    out
}

/// A scrape in progress: bytes of the request so far.
struct Scrape {
    conn: TcpStream,
    request: Vec<u8>,
    since: Instant,
}

/// The HTTP endpoint, polled by the control thread without blocking.
pub struct MetricsServer {
    listener: TcpListener,
    scrapes: Vec<Scrape>,
}

/// Scrapes served at once; more wait in the listen backlog.
const SCRAPES: usize = 8;
const REQUEST_MAX: usize = 8 * 1024;

impl MetricsServer {
    pub fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        Ok(MetricsServer {
            listener,
            scrapes: Vec::new(),
        })
    }

    /// Accepts, reads and answers what is ready; `render` is called once per answered scrape.
    pub fn serve(&mut self, render: impl Fn() -> String) {
        while self.scrapes.len() < SCRAPES {
            match self.listener.accept() {
                Ok((conn, _)) => {
                    if conn.set_nonblocking(true).is_ok() {
                        self.scrapes.push(Scrape {
                            conn,
                            request: Vec::new(),
                            since: Instant::now(),
                        });
                    }
                }
                Err(_) => break,
            }
        }
        let mut i = 0;
        while i < self.scrapes.len() {
            let sc = &mut self.scrapes[i];
            let mut buf = [0u8; 1024];
            let done = match sc.conn.read(&mut buf) {
                Ok(0) => true,
                Ok(n) => {
                    sc.request.extend_from_slice(&buf[..n]);
                    if sc.request.windows(4).any(|w| w == b"\r\n\r\n") {
                        answer(&mut sc.conn, &sc.request, &render);
                        true
                    } else {
                        sc.request.len() > REQUEST_MAX
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    sc.since.elapsed() > Duration::from_secs(2)
                }
                Err(_) => true,
            };
            if done {
                self.scrapes.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }
}

fn answer(conn: &mut TcpStream, request: &[u8], render: &impl Fn() -> String) {
    let line = request.split(|&b| b == b'\r').next().unwrap_or(&[]);
    let (status, ctype, body) = if line.starts_with(b"GET /metrics ") || line.starts_with(b"GET / ")
    {
        (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            render(),
        )
    } else {
        ("404 Not Found", "text/plain", "try /metrics\n".to_string())
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    // The reply is small; a blocking write with a short timeout keeps it simple.
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body.as_bytes());
}
