//! Statistics: the descriptor a Subtract or AuditValue reply carries for a termination
//! (`nt/os`, `nt/or`, `nt/dur`, and the MSRP or BFCP counts of an aware one), and the totals
//! `imsagw status` shows.

use dataplane::contract::{AppStats, LegStats};
use dataplane::tls::TlsFailure;
use h248::ast::*;

use crate::iq::Tokens;
use crate::transaction::Millis;

/// TLS handshakes on access legs by outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TlsCounts {
    pub established: u64,
    pub failed_fingerprint: u64,
    pub failed_no_certificate: u64,
    pub failed_protocol: u64,
    pub failed_timeout: u64,
    pub failed_closed: u64,
}

impl TlsCounts {
    pub fn count_failure(&mut self, f: TlsFailure) {
        match f {
            TlsFailure::Fingerprint => self.failed_fingerprint += 1,
            TlsFailure::NoCertificate => self.failed_no_certificate += 1,
            TlsFailure::Protocol => self.failed_protocol += 1,
            TlsFailure::Timeout => self.failed_timeout += 1,
            TlsFailure::Closed => self.failed_closed += 1,
        }
    }
}

/// What the MG's application-aware terminations carried, for status: each direction is
/// counted once, as received by the termination whose peer sent it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct AppTotals {
    pub msrp_terminations: u64,
    pub msrp_chunks: u64,
    pub msrp_messages: u64,
    pub msrp_aborted: u64,
    pub msrp_reports: u64,
    pub msrp_body_octets: u64,
    pub msrp_responses_2xx: u64,
    pub msrp_responses_4xx: u64,
    pub msrp_responses_5xx: u64,
    pub msrp_violations: u64,
    pub bfcp_terminations: u64,
    pub bfcp_frames: u64,
    pub bfcp_octets: u64,
    pub bfcp_violations: u64,
}

impl AppTotals {
    pub fn add(&mut self, app: &AppStats) {
        match app {
            AppStats::None => {}
            AppStats::Msrp { received: r, .. } => {
                self.msrp_terminations += 1;
                self.msrp_chunks += r.chunks;
                self.msrp_messages += r.messages;
                self.msrp_aborted += r.aborted;
                self.msrp_reports += r.reports;
                self.msrp_body_octets += r.body_octets;
                self.msrp_responses_2xx += r.responses_2xx;
                self.msrp_responses_4xx += r.responses_4xx;
                self.msrp_responses_5xx += r.responses_5xx;
            }
            AppStats::Bfcp { received: r, .. } => {
                self.bfcp_terminations += 1;
                self.bfcp_frames += r.frames;
                self.bfcp_octets += r.octets;
            }
        }
    }
}

/// Which drop counts a termination reports: the policer's (`tmanr/dp`, H.248.53) when it is
/// policed, the source filter's when it has one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drops {
    pub policed: bool,
    pub filtered: bool,
}

impl Drops {
    pub fn of(policy: Option<&dataplane::contract::LegPolicy>) -> Drops {
        Drops {
            policed: policy.is_some_and(|p| p.police.is_some()),
            filtered: policy.is_some_and(|p| !p.filter.is_any()),
        }
    }
}

/// `nt/os`, `nt/or` (octets sent and received) and `nt/dur` (ms since established), the drop
/// counts `drops` names, then an aware termination's counts under the statistics packages of
/// the token table.
pub fn statistics(
    tokens: &Tokens,
    s: &LegStats,
    drops: Drops,
    established_at: Option<Millis>,
    until: Option<Millis>,
) -> Vec<StatisticsParameter> {
    let dur = match (established_at, until) {
        (Some(a), Some(b)) => b.saturating_sub(a),
        _ => 0,
    };
    let mut v = vec![
        stat("nt", "os", s.octets_out),
        stat("nt", "or", s.octets_in),
        stat("nt", "dur", dur),
    ];
    if drops.policed {
        v.push(stat("tmanr", "dp", s.policed));
    }
    if drops.filtered {
        let t = &tokens.filtered_statistic;
        v.push(stat(&t.package, &t.item, s.filtered));
    }
    match &s.app {
        AppStats::None => {}
        AppStats::Msrp { received, sent } => {
            let p = tokens.msrp_statistics.as_str();
            for (dir, c) in [("r", received), ("s", sent)] {
                for (item, n) in [
                    ("chk", c.chunks),
                    ("msg", c.messages),
                    ("abt", c.aborted),
                    ("rpt", c.reports),
                    ("oth", c.other_requests),
                    ("body", c.body_octets),
                    ("r2xx", c.responses_2xx),
                    ("r4xx", c.responses_4xx),
                    ("r5xx", c.responses_5xx),
                    ("rxxx", c.responses_other),
                ] {
                    v.push(stat(p, &format!("{item}{dir}"), n));
                }
            }
        }
        AppStats::Bfcp { received, sent } => {
            let p = tokens.bfcp_statistics.as_str();
            for (dir, c) in [("r", received), ("s", sent)] {
                v.push(stat(p, &format!("frm{dir}"), c.frames));
                v.push(stat(p, &format!("oct{dir}"), c.octets));
                // Per primitive only where there was one, to keep replies short.
                for (i, &n) in c.primitives.iter().enumerate().filter(|(_, &n)| n > 0) {
                    v.push(stat(p, &format!("p{}{dir}", i + 1), n));
                }
            }
        }
    }
    v
}

fn stat(pkg: &str, item: &str, v: u64) -> StatisticsParameter {
    StatisticsParameter {
        name: PkgdName {
            package: pkg.into(),
            item: item.into(),
        },
        value: Some(StatisticsValue::Single(Value::bare(&v.to_string()))),
    }
}
