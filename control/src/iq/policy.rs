//! The Iq profile's gate management (`gm`, H.248.43 appendix I / ETSI TS 102 333), traffic
//! management (`tman`, H.248.53) and DiffServ (`ds`, H.248.52) properties of a termination:
//! decoded from a LocalControl, validated (449 naming the property), merged over what earlier
//! commands set, resolved against the realm's defaults and bounds into the leg's
//! [`LegPolicy`], and written back for replies and AuditValue.
//!
//! The package and property names are those of Wireshark's megaco dissector (a public
//! registry of them). The value formats below were not found in a public copy of the
//! Recommendations and are marked UNCONFIRMED in `docs/iq-packages.md`:
//! - `gm/sam`: an IPv4 address, or an address with a prefix length (`198.18.100.0/24`);
//! - `gm/spr`: a port or a range `FIRST-LAST`;
//! - `ds/dscp`: the code point as written in the token table's radix (hexadecimal by default,
//!   `2E` for EF, as in the Iq examples seen; `dscp_radix = "decimal"` for `46`);
//! - `tman/dvt`: in the token table's unit (microseconds by default);
//! - `tman/sdr`, `tman/pdr` in bytes per second and `tman/mbs` in bytes, counting IP packet
//!   bytes (confirmed for the rates by vendor documentation of H.248.53).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use dataplane::contract::{Bucket, LegPolicy, Police, SourceFilter};
use h248::ast::{LocalParm, ParmValue, PkgdName, PropertyParm, Value};

use super::Tokens;
use crate::mg::{fail, Fail};

/// Depth of a peak-rate bucket without `tman/dvt`, and the least it may be: one full-size
/// IP packet, so that a packet the sustained bucket admits can pass.
pub const MIN_PEAK_DEPTH: u64 = 1500;

/// What the ALG set on a termination's stream in these packages; `None`: never set. A later
/// command replaces the properties it carries and keeps the others.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IqPolicy {
    pub saf: Option<bool>,
    pub sam: Option<(IpAddr, u8)>,
    pub spf: Option<bool>,
    pub spr: Option<(u16, u16)>,
    pub pol: Option<bool>,
    pub sdr: Option<u64>,
    pub mbs: Option<u64>,
    pub pdr: Option<u64>,
    pub dvt: Option<u64>,
    pub dscp: Option<u8>,
}

/// What the operator configured for a realm's terminations: the DSCP and policing that apply
/// when the ALG sends none, and the rates the ALG may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RealmPolicy {
    pub dscp: u8,
    /// Policing (sdr, mbs) applied when the ALG does not send `tman/pol`.
    pub police: Option<(u64, u64)>,
    pub sdr_range: (u64, u64),
    pub mbs_range: (u64, u64),
}

impl Default for RealmPolicy {
    fn default() -> Self {
        RealmPolicy {
            dscp: 0,
            police: None,
            sdr_range: (1, u32::MAX as u64),
            mbs_range: (1, u32::MAX as u64),
        }
    }
}

/// The packages this module decodes.
pub const PACKAGES: [&str; 3] = ["gm", "tman", "ds"];

/// Properties of `gm` that mean nothing for TCP and UDPTL media here: refused with 501 unless
/// they ask for nothing (`OFF`).
const GM_REFUSED: [&str; 5] = ["esas", "lsa", "esps", "lsp", "rsb"];

fn is(name: &PkgdName, package: &str, item: &str) -> bool {
    name.package.eq_ignore_ascii_case(package) && name.item.eq_ignore_ascii_case(item)
}

fn value(pp: &PropertyParm) -> Result<&str, Fail> {
    match &pp.value {
        ParmValue::Equal(v) => Ok(v.text.trim()),
        _ => Err(bad(pp, "takes one value (`=`)")),
    }
}

fn bad(pp: &PropertyParm, why: &str) -> Fail {
    fail(449, format!("{}/{} {why}", pp.name.package, pp.name.item))
}

fn on_off(pp: &PropertyParm) -> Result<bool, Fail> {
    match value(pp)?.to_ascii_uppercase().as_str() {
        "ON" => Ok(true),
        "OFF" => Ok(false),
        _ => Err(bad(pp, "is ON or OFF")),
    }
}

fn integer(pp: &PropertyParm, min: u64) -> Result<u64, Fail> {
    value(pp)?
        .parse::<u64>()
        .ok()
        .filter(|v| *v >= min && *v <= u32::MAX as u64)
        .ok_or_else(|| bad(pp, &format!("is an integer from {min} to 4294967295")))
}

/// `ADDRESS` or `ADDRESS/PREFIX`, IPv4 or IPv6.
pub fn parse_mask(s: &str) -> Option<(IpAddr, u8)> {
    let s = s.trim().trim_matches('"');
    let (a, p) = s.split_once('/').map_or((s, None), |(a, p)| (a, Some(p)));
    let a: IpAddr = a.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    match p {
        None => Some((a, max)),
        Some(p) => {
            let p: u8 = p.parse().ok()?;
            (p <= max).then_some((a, p))
        }
    }
}

/// `PORT` or `FIRST-LAST`.
pub fn parse_ports(s: &str) -> Option<(u16, u16)> {
    let s = s.trim().trim_matches('"');
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let (a, b): (u16, u16) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
    (a <= b).then_some((a, b))
}

impl IqPolicy {
    /// Takes one LocalControl property if it belongs to `gm`, `tman` or `ds`; false if it
    /// does not. A bad value is a 449 naming the property; a `gm` property that asks for
    /// something TCP/UDP media here cannot do is a 501.
    pub fn take(&mut self, tokens: &Tokens, pp: &PropertyParm) -> Result<bool, Fail> {
        let n = &pp.name;
        if is(n, "gm", "saf") {
            self.saf = Some(on_off(pp)?);
        } else if is(n, "gm", "sam") {
            self.sam = Some(
                parse_mask(value(pp)?)
                    .ok_or_else(|| bad(pp, "is an IPv4 address or ADDRESS/PREFIX"))?,
            );
        } else if is(n, "gm", "spf") {
            self.spf = Some(on_off(pp)?);
        } else if is(n, "gm", "spr") {
            self.spr =
                Some(parse_ports(value(pp)?).ok_or_else(|| bad(pp, "is a port or FIRST-LAST"))?);
        } else if GM_REFUSED.iter().any(|i| is(n, "gm", i)) {
            let off =
                matches!(&pp.value, ParmValue::Equal(v) if v.text.eq_ignore_ascii_case("off"));
            if !off {
                return Err(fail(
                    501,
                    format!(
                        "gm/{} is not supported on TCP and UDPTL media terminations",
                        n.item
                    ),
                ));
            }
        } else if is(n, "tman", "pol") {
            self.pol = Some(on_off(pp)?);
        } else if is(n, "tman", "sdr") {
            self.sdr = Some(integer(pp, 1)?);
        } else if is(n, "tman", "mbs") {
            self.mbs = Some(integer(pp, 1)?);
        } else if is(n, "tman", "pdr") {
            self.pdr = Some(integer(pp, 1)?);
        } else if is(n, "tman", "dvt") {
            self.dvt = Some(integer(pp, 0)?);
        } else if is(n, "ds", "dscp") {
            let v = value(pp)?;
            let radix = tokens.dscp_radix;
            let digits = if radix == 16 {
                v.strip_prefix("0x")
                    .or_else(|| v.strip_prefix("0X"))
                    .unwrap_or(v)
            } else {
                v
            };
            self.dscp = Some(
                u8::from_str_radix(digits, radix)
                    .ok()
                    .filter(|d| *d <= 63)
                    .ok_or_else(|| {
                        bad(
                            pp,
                            if radix == 16 {
                                "is a code point from 00 to 3F (hexadecimal)"
                            } else {
                                "is a code point from 0 to 63"
                            },
                        )
                    })?,
            );
        } else if PACKAGES.iter().any(|p| n.package.eq_ignore_ascii_case(p)) {
            return Err(fail(
                445,
                format!("unsupported property {}/{}", n.package, n.item),
            ));
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// This policy with the properties `newer` set replacing ours.
    pub fn merged(&self, newer: &IqPolicy) -> IqPolicy {
        IqPolicy {
            saf: newer.saf.or(self.saf),
            sam: newer.sam.or(self.sam),
            spf: newer.spf.or(self.spf),
            spr: newer.spr.or(self.spr),
            pol: newer.pol.or(self.pol),
            sdr: newer.sdr.or(self.sdr),
            mbs: newer.mbs.or(self.mbs),
            pdr: newer.pdr.or(self.pdr),
            dvt: newer.dvt.or(self.dvt),
            dscp: newer.dscp.or(self.dscp),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == IqPolicy::default()
    }

    /// Whether the leg is policed under `realm`'s defaults.
    pub fn polices(&self, realm: &RealmPolicy) -> bool {
        self.pol.unwrap_or(realm.police.is_some())
    }

    /// The leg's policy: the filter from `gm` (with the Remote's address and port where `sam`
    /// or `spr` is missing), the policer from `tman` or the realm's default, the DSCP from
    /// `ds` or the realm's. `remote` is the Remote's address; `peer_connects` says the peer
    /// opens the TCP connection (so its source port is its own choice).
    pub fn resolve(
        &self,
        realm: &RealmPolicy,
        remote: Option<SocketAddr>,
        peer_connects: bool,
        tokens: &Tokens,
    ) -> Result<LegPolicy, Fail> {
        // A filter with nothing to admit yet (no `sam` and no Remote address) admits nothing:
        // the leg is not started before its Remote is known anyway.
        const NOTHING: (IpAddr, u8) = (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 32);
        let address = match self.saf {
            Some(true) => Some(
                self.sam
                    .or_else(|| {
                        remote
                            .map(|r| (r.ip(), if r.is_ipv4() { 32 } else { 128 }))
                            .filter(|r| !r.0.is_unspecified())
                    })
                    .unwrap_or(NOTHING),
            ),
            _ => None,
        };
        let ports = match (self.spf, self.spr) {
            (Some(true), Some(r)) => Some(r),
            (Some(true), None) if peer_connects => {
                return Err(fail(
                    449,
                    "gm/spf without gm/spr: a peer that opens the TCP connection sends from a port of its own choosing",
                ))
            }
            (Some(true), None) => match remote.map(|r| r.port()).filter(|p| *p != 0) {
                Some(p) => Some((p, p)),
                None => Some((0, 0)),
            },
            _ => None,
        };
        let police = if self.polices(realm) {
            let default = realm.police;
            let sdr = self.sdr.or(default.map(|d| d.0)).ok_or_else(|| {
                fail(449, "tman/pol ON needs tman/sdr (the realm has no default)")
            })?;
            let mbs = self.mbs.or(default.map(|d| d.1)).ok_or_else(|| {
                fail(449, "tman/pol ON needs tman/mbs (the realm has no default)")
            })?;
            for (name, v, (lo, hi)) in [
                ("sdr", self.sdr, realm.sdr_range),
                ("mbs", self.mbs, realm.mbs_range),
            ] {
                if let Some(v) = v.filter(|v| *v < lo || *v > hi) {
                    return Err(fail(
                        449,
                        format!("tman/{name} {v} is outside the realm's range {lo}-{hi}"),
                    ));
                }
            }
            let peak = match self.pdr {
                None => None,
                Some(pdr) if pdr < sdr => {
                    return Err(fail(449, format!("tman/pdr {pdr} is below tman/sdr {sdr}")))
                }
                Some(pdr) => {
                    let dvt_us = self.dvt.unwrap_or(0).saturating_mul(tokens.dvt_unit_us);
                    let depth = (pdr as u128 * dvt_us as u128 / 1_000_000) as u64;
                    Some(Bucket {
                        rate: pdr,
                        depth: depth.max(MIN_PEAK_DEPTH),
                    })
                }
            };
            Some(Police {
                sustained: Bucket {
                    rate: sdr,
                    depth: mbs,
                },
                peak,
            })
        } else {
            None
        };
        Ok(LegPolicy {
            filter: SourceFilter { address, ports },
            police,
            dscp: self.dscp.unwrap_or(realm.dscp),
        })
    }

    /// The properties in effect, for a reply or AuditValue: what the ALG set, and the
    /// realm's DSCP and policing where it set none.
    pub fn echo(&self, realm: &RealmPolicy, tokens: &Tokens) -> Vec<LocalParm> {
        let mut out = Vec::new();
        let mut put = |package: &str, item: &str, v: String| {
            out.push(LocalParm::Property(PropertyParm {
                name: PkgdName {
                    package: package.into(),
                    item: item.into(),
                },
                // An IPv6 address has colons, which a bare H.248 value cannot carry.
                value: ParmValue::Equal(if v.contains(':') {
                    Value::quoted(&v)
                } else {
                    Value::bare(&v)
                }),
            }));
        };
        let on = |b: bool| if b { "ON" } else { "OFF" }.to_string();
        if let Some(b) = self.saf {
            put("gm", "saf", on(b));
        }
        if let Some((a, p)) = self.sam {
            put(
                "gm",
                "sam",
                if p == 32 {
                    a.to_string()
                } else {
                    format!("{a}/{p}")
                },
            );
        }
        if let Some(b) = self.spf {
            put("gm", "spf", on(b));
        }
        if let Some((a, b)) = self.spr {
            put(
                "gm",
                "spr",
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                },
            );
        }
        let polices = self.polices(realm);
        if self.pol.is_some() || polices {
            put("tman", "pol", on(polices));
        }
        if polices {
            if let Some(v) = self.sdr.or(realm.police.map(|d| d.0)) {
                put("tman", "sdr", v.to_string());
            }
            if let Some(v) = self.mbs.or(realm.police.map(|d| d.1)) {
                put("tman", "mbs", v.to_string());
            }
        }
        if let Some(v) = self.pdr {
            put("tman", "pdr", v.to_string());
        }
        if let Some(v) = self.dvt {
            put("tman", "dvt", v.to_string());
        }
        let dscp = self.dscp.unwrap_or(realm.dscp);
        if self.dscp.is_some() || dscp != 0 {
            put(
                "ds",
                "dscp",
                if tokens.dscp_radix == 16 {
                    format!("{dscp:02X}")
                } else {
                    dscp.to_string()
                },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pp(name: &str, v: &str) -> PropertyParm {
        let (p, i) = name.split_once('/').unwrap();
        PropertyParm {
            name: PkgdName {
                package: p.into(),
                item: i.into(),
            },
            value: ParmValue::Equal(Value::bare(v)),
        }
    }

    fn take(props: &[(&str, &str)]) -> Result<IqPolicy, Fail> {
        let t = Tokens::default();
        let mut p = IqPolicy::default();
        for (n, v) in props {
            assert!(p.take(&t, &pp(n, v))?, "{n} not taken");
        }
        Ok(p)
    }

    #[test]
    fn decodes_every_property_and_names_the_bad_one() {
        let p = take(&[
            ("gm/saf", "ON"),
            ("gm/sam", "198.18.100.0/24"),
            ("gm/spf", "on"),
            ("gm/spr", "5000-5009"),
            ("tman/pol", "ON"),
            ("tman/sdr", "12500"),
            ("tman/mbs", "3000"),
            ("tman/pdr", "25000"),
            ("tman/dvt", "100000"),
            ("ds/dscp", "2E"),
        ])
        .unwrap();
        assert_eq!(p.sam, Some(("198.18.100.0".parse().unwrap(), 24)));
        assert_eq!(p.spr, Some((5000, 5009)));
        assert_eq!(p.dscp, Some(46));
        for (n, v) in [
            ("gm/saf", "maybe"),
            ("gm/sam", "198.18.100.300"),
            ("gm/sam", "198.18.100.0/33"),
            ("gm/spr", "6000-5000"),
            ("tman/sdr", "0"),
            ("tman/sdr", "-5"),
            ("tman/mbs", "99999999999"),
            ("ds/dscp", "40"),
            ("ds/dscp", "EF"),
        ] {
            let e = take(&[(n, v)]).unwrap_err();
            assert_eq!(e.code, 449, "{n}={v}");
            let text = e.text.as_deref().unwrap_or("");
            assert!(text.contains(n), "{n}={v}: {text}");
        }
        assert_eq!(take(&[("gm/esas", "ON")]).unwrap_err().code, 501);
        assert!(take(&[("gm/esas", "OFF")]).is_ok());
        assert_eq!(take(&[("tman/xyz", "1")]).unwrap_err().code, 445);
        let mut p = IqPolicy::default();
        assert!(!p.take(&Tokens::default(), &pp("ipdc/realm", "x")).unwrap());
        // A decimal table reads 46 as EF.
        let t = Tokens {
            dscp_radix: 10,
            ..Tokens::default()
        };
        assert!(p.take(&t, &pp("ds/dscp", "46")).unwrap());
        assert_eq!(p.dscp, Some(46));
    }

    #[test]
    fn resolves_against_the_remote_and_the_realm() {
        let t = Tokens::default();
        let realm = RealmPolicy {
            dscp: 26,
            police: Some((100_000, 10_000)),
            sdr_range: (1000, 1_000_000),
            mbs_range: (1500, 100_000),
        };
        let remote: SocketAddr = "198.18.100.7:5004".parse().unwrap();
        // Nothing set: the realm's DSCP and policing.
        let lp = IqPolicy::default()
            .resolve(&realm, Some(remote), false, &t)
            .unwrap();
        assert_eq!(lp.dscp, 26);
        assert!(lp.filter.is_any());
        assert_eq!(lp.police.unwrap().sustained.rate, 100_000);
        // saf and spf without sam and spr take the Remote's address and port.
        let p = take(&[("gm/saf", "ON"), ("gm/spf", "ON"), ("tman/pol", "OFF")]).unwrap();
        let lp = p.resolve(&realm, Some(remote), false, &t).unwrap();
        assert_eq!(lp.filter.address, Some((remote.ip(), 32)));
        assert_eq!(lp.filter.ports, Some((5004, 5004)));
        assert_eq!(lp.police, None);
        // ... but a TCP peer that connects picks its own port.
        assert_eq!(
            p.resolve(&realm, Some(remote), true, &t).unwrap_err().code,
            449
        );
        // No Remote yet: the filter admits nothing.
        let lp = p.resolve(&realm, None, false, &t).unwrap();
        assert_eq!(lp.filter.address, Some((Ipv4Addr::UNSPECIFIED.into(), 32)));
        // Bounds, and pdr below sdr.
        let e = take(&[("tman/sdr", "5000000")])
            .unwrap()
            .resolve(&realm, None, false, &t)
            .unwrap_err();
        assert!(e.text.as_deref().unwrap().contains("tman/sdr"), "{e:?}");
        let e = take(&[("tman/pdr", "500")])
            .unwrap()
            .resolve(&realm, None, false, &t)
            .unwrap_err();
        assert!(e.text.as_deref().unwrap().contains("tman/pdr"), "{e:?}");
        // pdr and dvt make the peak bucket: 25 000 B/s for 100 ms is 2500 B.
        let lp = take(&[("tman/pdr", "250000"), ("tman/dvt", "10000")])
            .unwrap()
            .resolve(&realm, None, false, &t)
            .unwrap();
        assert_eq!(
            lp.police.unwrap().peak,
            Some(Bucket {
                rate: 250_000,
                depth: 2500
            })
        );
        // Policing on without rates anywhere is refused.
        let e = take(&[("tman/pol", "ON")])
            .unwrap()
            .resolve(&RealmPolicy::default(), None, false, &t)
            .unwrap_err();
        assert_eq!(e.code, 449);
    }

    #[test]
    fn a_later_command_replaces_only_what_it_sets_and_the_echo_shows_what_is_in_effect() {
        let t = Tokens::default();
        let first = take(&[
            ("ds/dscp", "2E"),
            ("tman/pol", "ON"),
            ("tman/sdr", "12500"),
            ("tman/mbs", "3000"),
        ])
        .unwrap();
        let later = take(&[("ds/dscp", "1A")]).unwrap();
        let p = first.merged(&later);
        assert_eq!(p.dscp, Some(26));
        assert_eq!(p.sdr, Some(12500));
        let echo = p.echo(&RealmPolicy::default(), &t);
        let text: Vec<String> = echo
            .iter()
            .map(|l| match l {
                LocalParm::Property(pp) => format!(
                    "{}/{}={}",
                    pp.name.package,
                    pp.name.item,
                    pp.value.single().unwrap().text
                ),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(
            text,
            [
                "tman/pol=ON",
                "tman/sdr=12500",
                "tman/mbs=3000",
                "ds/dscp=1A"
            ]
        );
        assert!(IqPolicy::default()
            .echo(&RealmPolicy::default(), &t)
            .is_empty());
    }

    #[test]
    fn an_ipv6_source_mask_is_echoed_quoted_and_an_ipv4_one_bare() {
        let t = Tokens::default();
        for (mask, quoted) in [("2001:db8:1::/48", true), ("198.18.100.0/24", false)] {
            let p = take(&[("gm/sam", mask)]).unwrap();
            let echo = p.echo(&RealmPolicy::default(), &t);
            let LocalParm::Property(pp) = &echo[0] else {
                unreachable!()
            };
            let v = pp.value.single().unwrap();
            assert_eq!((v.text.as_str(), v.quoted), (mask, quoted));
        }
    }
}
