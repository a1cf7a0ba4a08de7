//! The worker's counters, defined once: the struct the worker counts into, the atomics it
//! publishes them through to other threads, and the table that names each one in the status
//! JSON and in the Prometheus exposition all come from the one list below.

use std::sync::atomic::{AtomicU64, Ordering};

/// How a counter is exported: its Prometheus family (without the `imsagw_` prefix), the
/// label that tells it apart inside the family, and the family's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Export {
    pub family: &'static str,
    pub label: Option<(&'static str, &'static str)>,
    pub gauge: bool,
}

/// One counter: its field (also its key in the status JSON), what it counts, and how it is
/// exported (`None`: status only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CounterSpec {
    pub name: &'static str,
    pub help: &'static str,
    pub export: Option<Export>,
}

macro_rules! worker_counters {
    ($(
        $(#[doc = $doc:literal])+
        $field:ident $(=> $family:literal $({ $lk:literal = $lv:literal })? $([$gauge:ident])?)?;
    )+) => {
        /// Counters of the worker's own decisions (and its leg count, a gauge).
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
        pub struct WorkerCounters {
            $( $(#[doc = $doc])+ pub $field: u64, )+
        }

        impl WorkerCounters {
            /// Every counter, in the order of `values`.
            pub const SPECS: &'static [CounterSpec] = &[$(
                CounterSpec {
                    name: stringify!($field),
                    help: concat!($($doc),+),
                    export: worker_counters!(@export $($family $({ $lk = $lv })? $([$gauge])?)?),
                },
            )+];

            pub fn values(&self) -> [u64; Self::SPECS.len()] {
                [$(self.$field),+]
            }

            pub fn from_values(v: [u64; Self::SPECS.len()]) -> Self {
                let [$($field),+] = v;
                WorkerCounters { $($field),+ }
            }
        }
    };
    (@export) => { None };
    (@export $family:literal $({ $lk:literal = $lv:literal })? $([$gauge:ident])?) => {
        Some(Export {
            family: $family,
            label: worker_counters!(@label $($lk $lv)?),
            gauge: worker_counters!(@gauge $($gauge)?),
        })
    };
    (@label) => { None };
    (@label $lk:literal $lv:literal) => { Some(($lk, $lv)) };
    (@gauge) => { false };
    (@gauge gauge) => { true };
}

worker_counters! {
    /// Legs on the worker (a gauge, taken when published).
    legs => "worker_legs" [gauge];
    /// Poll-loop iterations that did work.
    busy_polls => "worker_polls" { "kind" = "busy" };
    /// Poll-loop iterations that found nothing to do.
    idle_polls => "worker_polls" { "kind" = "idle" };
    /// Naps the worker's thread took between idle polls (`idle_nap`).
    naps => "worker_naps";
    /// Sleeping workers this one woke by handing them frames (`idle_wake = port`).
    peer_wakes => "worker_peer_wakes";
    /// Frames the worker received.
    rx_frames => "worker_rx_frames";
    /// TCP segments to no leg (answered with RST by the interface).
    tcp_no_leg => "worker_drops" { "reason" = "no_leg" };
    /// Connection requests refused by a gate (answered with RST).
    gate_rejected => "worker_drops" { "reason" = "gate" };
    /// IP fragments (dropped: later fragments carry no ports to find a leg by).
    fragments_dropped => "worker_drops" { "reason" = "fragment" };
    /// Frames too short or inconsistent to classify.
    malformed_dropped => "worker_drops" { "reason" = "malformed" };
    /// TCP and UDP behind IPv6 extension headers (dropped: media peers do not send them).
    extension_dropped => "worker_drops" { "reason" = "ipv6_extension" };
    /// Frames with a VLAN tag (or none) that names no network on the port they came in on,
    /// and stacked or service tags.
    vlan_dropped => "worker_drops" { "reason" = "vlan" };
    /// Frames for a leg's address that came in on another network than the leg's.
    wrong_network_dropped => "worker_drops" { "reason" = "wrong_network" };
    /// TCP legs whose segments were made smaller by an ICMP Packet Too Big (or Fragmentation
    /// Needed) quoting their connection.
    path_mtu_lowered => "worker_path_mtu_lowered";
    /// Another host claims one of our IPv6 addresses (duplicate address detection, or its
    /// neighbour advertisement for it): the address is misconfigured on the network.
    duplicate_addresses => "worker_duplicate_addresses";
    /// Commands taken from the control thread's ring.
    commands;
    /// TCP segments and UDP datagrams to no started leg, dropped unanswered because commands
    /// queued before them were still waiting in the ring (events backed up towards the
    /// control thread): the leg they are for may be among those commands, and a RST would
    /// refuse its connection. The peer sends again.
    held_for_commands => "worker_drops" { "reason" = "commands_waiting" };
    /// Events that could not be queued (never expected: the queue is sized by the legs).
    events_dropped;
    /// Frames given to another worker (TCP and UDP for its ports, copies of ARP).
    handed_off => "worker_handoff_frames" { "direction" = "out" };
    /// Frames taken from other workers.
    handed_in => "worker_handoff_frames" { "direction" = "in" };
    /// Frames for another worker dropped because its inbox was full (or no buffer for a
    /// copy).
    handoff_dropped => "worker_drops" { "reason" = "handoff_full" };
    /// Pairs closed because an MSRP-aware leg's peer broke framing or a limit.
    msrp_violations => "worker_violations" { "protocol" = "msrp" };
    /// Pairs closed because a BFCP-aware leg's peer broke framing or a limit.
    bfcp_violations => "worker_violations" { "protocol" = "bfcp" };
    /// Payload octets cut through, both directions (TLS and DTLS legs: plaintext).
    octets_relayed => "worker_relayed_octets";
    /// Services of a TCP leg that skipped the relay: it had received nothing and its pair's
    /// last relay left nothing waiting (delayed ACKs, timers, ACKs).
    quiet_visits;
    /// UDP datagrams to no leg (dropped; the interface answers ICMP port unreachable).
    udp_no_leg => "worker_drops" { "reason" = "udp_no_leg" };
    /// Datagrams from a source the gate or the latch does not take.
    udp_gate_dropped => "worker_drops" { "reason" = "udp_gate" };
    /// Datagrams that could not be relayed: the other leg not up, its queue full, or too
    /// large for a DTLS record.
    udp_dropped => "worker_drops" { "reason" = "udp_undeliverable" };
    /// UDP (T.38) datagrams relayed between the legs of a context.
    datagrams_relayed => "worker_relayed_datagrams";
    /// Frames from a source a leg's filter (Iq `gm`) does not admit (dropped unanswered).
    filter_dropped => "worker_drops" { "reason" = "filter" };
    /// Frames over a leg's policed rate (Iq `tman`), dropped.
    police_dropped => "worker_drops" { "reason" = "police" };
    /// Full-size socket buffers legs hold now, lent from the worker's pool (a gauge).
    buffers_lent => "worker_socket_buffers" { "state" = "lent" } [gauge];
    /// Full-size socket buffers the pool lends at most at once (a gauge).
    buffers_lendable => "worker_socket_buffers" { "state" = "limit" } [gauge];
    /// Loans of a full-size socket buffer to a leg with data queued.
    buffer_lends => "worker_socket_buffer_lends" { "outcome" = "lent" };
    /// Loans refused because the pool was at its limit (the leg kept its guaranteed window).
    buffer_lends_refused => "worker_socket_buffer_lends" { "outcome" = "pool_short" };
    /// Full-size socket buffers given back by legs drained and idle, or freed.
    buffers_returned => "worker_socket_buffers_returned";
}

/// Help text of each exported family.
pub const FAMILY_HELP: &[(&str, &str)] = &[
    ("worker_legs", "Legs on the worker"),
    (
        "worker_polls",
        "Poll-loop iterations, busy (did work) or idle",
    ),
    (
        "worker_naps",
        "Naps the worker's thread took between idle polls",
    ),
    (
        "worker_peer_wakes",
        "Sleeping workers woken by this one handing them frames",
    ),
    ("worker_rx_frames", "Frames the worker received"),
    (
        "worker_drops",
        "Frames dropped or refused by the worker, by reason",
    ),
    ("worker_handoff_frames", "Frames handed between workers"),
    (
        "worker_violations",
        "Pairs reset for an MSRP or BFCP violation",
    ),
    (
        "worker_relayed_octets",
        "Payload octets cut through (TLS legs: plaintext)",
    ),
    (
        "worker_socket_buffers",
        "Full-size socket buffers lent to legs now, and the pool's limit",
    ),
    (
        "worker_socket_buffer_lends",
        "Loans of full-size socket buffers, made or refused for want of one",
    ),
    (
        "worker_socket_buffers_returned",
        "Full-size socket buffers given back to the pool",
    ),
    (
        "worker_relayed_datagrams",
        "UDP (T.38) datagrams relayed between the legs of a context",
    ),
    (
        "worker_duplicate_addresses",
        "Claims by another host of one of the worker's IPv6 addresses",
    ),
    (
        "worker_path_mtu_lowered",
        "TCP legs whose segments an ICMP Packet Too Big made smaller",
    ),
];

/// A worker's counters as other threads read them: the worker stores a snapshot every few
/// thousand polls (relaxed stores, no lock on its path), readers load one.
#[derive(Debug)]
pub struct SharedCounters {
    values: [AtomicU64; WorkerCounters::SPECS.len()],
}

impl Default for SharedCounters {
    fn default() -> Self {
        SharedCounters {
            values: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl SharedCounters {
    pub fn publish(&self, c: &WorkerCounters) {
        for (slot, v) in self.values.iter().zip(c.values()) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    pub fn load(&self) -> WorkerCounters {
        WorkerCounters::from_values(std::array::from_fn(|i| {
            self.values[i].load(Ordering::Relaxed)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_definition_gives_the_table_the_values_and_the_shared_copy() {
        let c = WorkerCounters {
            tcp_no_leg: 7,
            datagrams_relayed: 3,
            ..WorkerCounters::default()
        };
        let specs = WorkerCounters::SPECS;
        let i = specs.iter().position(|s| s.name == "tcp_no_leg").unwrap();
        assert_eq!(c.values()[i], 7);
        assert_eq!(
            specs[i].export,
            Some(Export {
                family: "worker_drops",
                label: Some(("reason", "no_leg")),
                gauge: false
            })
        );
        assert!(specs[i].help.contains("RST"));
        let shared = SharedCounters::default();
        shared.publish(&c);
        assert_eq!(shared.load(), c);
        // Every exported family has its help text.
        for s in specs {
            if let Some(e) = s.export {
                assert!(
                    FAMILY_HELP.iter().any(|(f, _)| *f == e.family),
                    "{}",
                    e.family
                );
            }
        }
    }
}
