//! The names imsagw gives the Iq elements whose text tokens no public source confirms, as a
//! table the operator can set (`[h248.tokens]`) to match the IMS-ALG without a rebuild.
//!
//! TS 29.334 names the procedures ("Notify TCP connection establishment failure", "Establish
//! (D)TLS session"...) and the packages that carry them (H.248.89 for TCP bearers, H.248.90 for
//! TLS), but the packages' text tokens were found in no public copy. The defaults are the
//! names imsagw has always used; `docs/iq-packages.md` lists which are confirmed. Every
//! decoder, Notify, AuditCapabilities reply, statistics descriptor and violation cause of the
//! MG takes its names from here, and from nowhere else.

use std::collections::HashMap;

use h248::ast::{PkgdName, Text};

/// The events the MG reports, by meaning; their names come from the [`Tokens`] table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IqEvent {
    /// TCP connection established (H.248.89).
    TcpEstablished,
    /// TCP connection establishment failure (H.248.89), with a cause.
    TcpFailure,
    /// The TCP bearer was released by the peer or a timer (H.248.89), with a cause.
    TcpReleased,
    /// No media on a UDP (T.38) termination for the inactivity time (H.248.40 `adid`).
    MediaInactivity,
    /// (D)TLS session established (H.248.90).
    TlsEstablished,
    /// (D)TLS session establishment failure (H.248.90), with a cause.
    TlsFailure,
    /// Termination heartbeat (H.248.36 `hangterm/thb`).
    Heartbeat,
    /// On ROOT: no message from the MGC for the maximum inactivity time (H.248.14 `it/ito`).
    Inactivity,
    /// On ROOT: a realm became unavailable or available again (H.248.41 `ipra`).
    RealmAvailability,
}

impl IqEvent {
    /// Every event a termination (not ROOT) can arm.
    pub const ON_TERMINATIONS: [IqEvent; 7] = [
        IqEvent::MediaInactivity,
        IqEvent::TcpEstablished,
        IqEvent::TcpFailure,
        IqEvent::TcpReleased,
        IqEvent::TlsEstablished,
        IqEvent::TlsFailure,
        IqEvent::Heartbeat,
    ];
}

/// A package/item pair as written in H.248 text (`pkg/item`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Token {
    pub package: Text,
    pub item: Text,
}

impl Token {
    fn new(package: &str, item: &str) -> Token {
        Token {
            package: package.into(),
            item: item.into(),
        }
    }

    /// Parses `pkg/item`: both parts H.248 names (a letter, then letters, digits or `_`, at
    /// most 64 characters).
    pub fn parse(s: &str) -> Option<Token> {
        let (p, i) = s.split_once('/')?;
        (is_name(p) && is_name(i)).then(|| Token::new(p, i))
    }

    /// Whether `name` is this token (H.248 names are case-insensitive).
    pub fn is(&self, name: &PkgdName) -> bool {
        name.package.eq_ignore_ascii_case(&self.package)
            && name.item.eq_ignore_ascii_case(&self.item)
    }

    pub fn pkgd_name(&self) -> PkgdName {
        PkgdName {
            package: self.package.clone(),
            item: self.item.clone(),
        }
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.package, self.item)
    }
}

fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b[0].is_ascii_alphabetic()
        && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
}

/// The operator-settable names, with imsagw's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    /// LocalControl property choosing the realm (H.248.41 `ipdc/realm`).
    pub realm: Token,
    /// LocalControl property asking for latching (H.248.37 `ipnapt/latch`).
    pub latch: Token,
    pub tcp_established: Token,
    pub tcp_failure: Token,
    pub tcp_released: Token,
    pub media_inactivity: Token,
    pub tls_established: Token,
    pub tls_failure: Token,
    pub heartbeat: Token,
    /// H.248.14 `it/ito` and its parameter `mit`.
    pub inactivity: Token,
    pub inactivity_max_parameter: Text,
    /// The unit of `mit` in milliseconds (recalled as 10 ms).
    pub inactivity_unit_ms: u64,
    /// Parameter of the failure and release events naming the cause.
    pub cause_parameter: Text,
    /// Value of the release cause when the peer broke MSRP or BFCP framing or a limit, and
    /// the parameter naming what it broke (`msrp-endline`, `bfcp-version`...). Ours: no Iq
    /// package defines them.
    pub cause_violation: Text,
    pub violation_parameter: Text,
    /// Statistics packages of MSRP- and BFCP-aware terminations (ours). Items end in `r`
    /// (received from the termination's peer) or `s` (sent to it).
    pub msrp_statistics: Text,
    pub bfcp_statistics: Text,
    /// ROOT property listing the realms available now (H.248.41 amendment 1 `ipra`), and the
    /// ROOT event reporting a change, with the list under the property's item as parameter.
    pub available_realms: Token,
    pub realms_changed: Token,
    /// Statistic of frames a termination's `gm` filter dropped (ours: `gm` defines none).
    pub filtered_statistic: Token,
    /// How `ds/dscp` values are written: 16 (hexadecimal, `2E`) or 10 (`46`).
    pub dscp_radix: u32,
    /// The unit of `tman/dvt` in microseconds.
    pub dvt_unit_us: u64,
}

impl Default for Tokens {
    fn default() -> Self {
        Tokens {
            realm: Token::new("ipdc", "realm"),
            latch: Token::new("ipnapt", "latch"),
            tcp_established: Token::new("tcpc", "est"),
            tcp_failure: Token::new("tcpc", "estfail"),
            tcp_released: Token::new("tcpc", "rel"),
            media_inactivity: Token::new("adid", "ipstop"),
            tls_established: Token::new("tlsc", "est"),
            tls_failure: Token::new("tlsc", "estfail"),
            heartbeat: Token::new("hangterm", "thb"),
            inactivity: Token::new("it", "ito"),
            inactivity_max_parameter: "mit".into(),
            inactivity_unit_ms: 10,
            cause_parameter: "cause".into(),
            cause_violation: "violation".into(),
            violation_parameter: "viol".into(),
            msrp_statistics: "msrpst".into(),
            bfcp_statistics: "bfcpst".into(),
            available_realms: Token::new("ipra", "ar"),
            realms_changed: Token::new("ipra", "arc"),
            filtered_statistic: Token::new("gmst", "dp"),
            dscp_radix: 16,
            dvt_unit_us: 1,
        }
    }
}

/// Why a token table is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("[h248.tokens]: unknown key {0:?} (known: {known})", known = Tokens::KEYS.join(", "))]
    UnknownKey(String),
    #[error("[h248.tokens]: {key} = {value:?} is not a valid {what}")]
    Invalid {
        key: String,
        value: String,
        what: &'static str,
    },
    #[error("[h248.tokens]: {token} would mean both {first} and {second}")]
    Ambiguous {
        token: String,
        first: &'static str,
        second: &'static str,
    },
}

impl Tokens {
    /// Every key of the table, in the order of the documentation.
    pub const KEYS: [&'static str; 22] = [
        "realm",
        "latch",
        "tcp_established",
        "tcp_failure",
        "tcp_released",
        "media_inactivity",
        "tls_established",
        "tls_failure",
        "heartbeat",
        "inactivity",
        "inactivity_max_parameter",
        "inactivity_unit_ms",
        "cause_parameter",
        "cause_violation",
        "violation_parameter",
        "msrp_statistics",
        "bfcp_statistics",
        "available_realms",
        "realms_changed",
        "filtered_statistic",
        "dscp_radix",
        "dvt_unit_us",
    ];

    /// The defaults with the given keys replaced (`pkg/item` for events and properties, a
    /// name for parameters and packages, milliseconds for `inactivity_unit_ms`). An unknown
    /// key, a malformed value or a package/item given two meanings is refused.
    pub fn with(settings: &HashMap<String, String>) -> Result<Tokens, TokenError> {
        let mut t = Tokens::default();
        let mut keys: Vec<&String> = settings.keys().collect();
        keys.sort();
        for key in keys {
            let value = &settings[key];
            let invalid = |what| TokenError::Invalid {
                key: key.clone(),
                value: value.clone(),
                what,
            };
            let token = || Token::parse(value.trim()).ok_or_else(|| invalid("package/item"));
            let name = || {
                let v = value.trim();
                if is_name(v) {
                    Ok(Text::from(v))
                } else {
                    Err(invalid("H.248 name"))
                }
            };
            match key.as_str() {
                "realm" => t.realm = token()?,
                "latch" => t.latch = token()?,
                "tcp_established" => t.tcp_established = token()?,
                "tcp_failure" => t.tcp_failure = token()?,
                "tcp_released" => t.tcp_released = token()?,
                "media_inactivity" => t.media_inactivity = token()?,
                "tls_established" => t.tls_established = token()?,
                "tls_failure" => t.tls_failure = token()?,
                "heartbeat" => t.heartbeat = token()?,
                "inactivity" => t.inactivity = token()?,
                "inactivity_max_parameter" => t.inactivity_max_parameter = name()?,
                "inactivity_unit_ms" => {
                    t.inactivity_unit_ms = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| (1..=60_000).contains(n))
                        .ok_or_else(|| invalid("unit in milliseconds (1 to 60000)"))?
                }
                "cause_parameter" => t.cause_parameter = name()?,
                "cause_violation" => t.cause_violation = name()?,
                "violation_parameter" => t.violation_parameter = name()?,
                "msrp_statistics" => t.msrp_statistics = name()?,
                "bfcp_statistics" => t.bfcp_statistics = name()?,
                "available_realms" => t.available_realms = token()?,
                "realms_changed" => t.realms_changed = token()?,
                "filtered_statistic" => t.filtered_statistic = token()?,
                "dscp_radix" => {
                    t.dscp_radix = match value.trim() {
                        "16" | "hex" | "hexadecimal" => 16,
                        "10" | "decimal" => 10,
                        _ => return Err(invalid("radix (hexadecimal or decimal)")),
                    }
                }
                "dvt_unit_us" => {
                    t.dvt_unit_us = value
                        .trim()
                        .parse()
                        .ok()
                        .filter(|n| (1..=1_000_000).contains(n))
                        .ok_or_else(|| invalid("unit in microseconds (1 to 1000000)"))?
                }
                _ => return Err(TokenError::UnknownKey(key.clone())),
            }
        }
        t.check()?;
        Ok(t)
    }

    /// Every package/item the MG decodes or reports, with its key.
    fn named(&self) -> [(&'static str, &Token); 13] {
        [
            ("realm", &self.realm),
            ("latch", &self.latch),
            ("tcp_established", &self.tcp_established),
            ("tcp_failure", &self.tcp_failure),
            ("tcp_released", &self.tcp_released),
            ("media_inactivity", &self.media_inactivity),
            ("tls_established", &self.tls_established),
            ("tls_failure", &self.tls_failure),
            ("heartbeat", &self.heartbeat),
            ("inactivity", &self.inactivity),
            ("available_realms", &self.available_realms),
            ("realms_changed", &self.realms_changed),
            ("filtered_statistic", &self.filtered_statistic),
        ]
    }

    /// No package/item with two meanings, and no statistics package shared by the two
    /// application statistics or with the standard `nt`.
    fn check(&self) -> Result<(), TokenError> {
        let named = self.named();
        for (i, (first, a)) in named.iter().enumerate() {
            for (second, b) in &named[i + 1..] {
                if a.package.eq_ignore_ascii_case(&b.package)
                    && a.item.eq_ignore_ascii_case(&b.item)
                {
                    return Err(TokenError::Ambiguous {
                        token: a.to_string(),
                        first,
                        second,
                    });
                }
            }
        }
        let stats = [
            ("msrp_statistics", &self.msrp_statistics),
            ("bfcp_statistics", &self.bfcp_statistics),
            ("nt (network package statistics)", &Text::from("nt")),
        ];
        for (i, (first, a)) in stats.iter().enumerate() {
            for (second, b) in &stats[i + 1..] {
                if a.eq_ignore_ascii_case(b) {
                    return Err(TokenError::Ambiguous {
                        token: a.to_string(),
                        first,
                        second,
                    });
                }
            }
        }
        Ok(())
    }

    /// The name an event is armed and reported with.
    pub fn event(&self, e: IqEvent) -> &Token {
        match e {
            IqEvent::TcpEstablished => &self.tcp_established,
            IqEvent::TcpFailure => &self.tcp_failure,
            IqEvent::TcpReleased => &self.tcp_released,
            IqEvent::MediaInactivity => &self.media_inactivity,
            IqEvent::TlsEstablished => &self.tls_established,
            IqEvent::TlsFailure => &self.tls_failure,
            IqEvent::Heartbeat => &self.heartbeat,
            IqEvent::Inactivity => &self.inactivity,
            IqEvent::RealmAvailability => &self.realms_changed,
        }
    }

    /// The termination event a name arms, if any.
    pub fn termination_event(&self, name: &PkgdName) -> Option<IqEvent> {
        IqEvent::ON_TERMINATIONS
            .into_iter()
            .find(|e| self.event(*e).is(name))
    }

    /// Whether `package` is one whose events the MG reports (for 445 against 451).
    pub fn knows_event_package(&self, package: &str) -> bool {
        IqEvent::ON_TERMINATIONS
            .iter()
            .any(|e| self.event(*e).package.eq_ignore_ascii_case(package))
    }

    /// The packages of AuditCapabilities: the standard ones (with the Iq `gm`, `tman` and its
    /// statistics `tmanr`, and `ds`), then those of the table.
    pub fn packages(&self) -> Vec<Text> {
        let mut out: Vec<Text> = ["g", "nt", "gm", "tman", "tmanr", "ds"]
            .into_iter()
            .map(Text::from)
            .collect();
        let table = [
            &self.available_realms.package,
            &self.realms_changed.package,
            &self.inactivity.package,
            &self.realm.package,
            &self.latch.package,
            &self.tcp_established.package,
            &self.tcp_failure.package,
            &self.tcp_released.package,
            &self.tls_established.package,
            &self.tls_failure.package,
            &self.heartbeat.package,
            &self.media_inactivity.package,
        ];
        for p in table {
            if !out.iter().any(|o| o.eq_ignore_ascii_case(p)) {
                out.push(p.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_todays_names_and_a_table_replaces_them() {
        let t = Tokens::with(&HashMap::new()).unwrap();
        assert_eq!(t, Tokens::default());
        assert_eq!(t.tcp_established.to_string(), "tcpc/est");
        let t = Tokens::with(&table(&[
            ("tcp_established", "tcpbe/conest"),
            ("inactivity_unit_ms", "1000"),
            ("cause_parameter", "Cause"),
        ]))
        .unwrap();
        assert_eq!(t.tcp_established.to_string(), "tcpbe/conest");
        assert_eq!(t.inactivity_unit_ms, 1000);
        assert_eq!(t.cause_parameter, "Cause");
        let name = PkgdName {
            package: "TCPBE".into(),
            item: "ConEst".into(),
        };
        assert_eq!(t.termination_event(&name), Some(IqEvent::TcpEstablished));
        assert!(t.packages().iter().any(|p| p == "tcpbe"));
    }

    #[test]
    fn unknown_keys_bad_values_and_double_meanings_are_refused() {
        let e = Tokens::with(&table(&[("tcp_establish", "a/b")])).unwrap_err();
        assert!(
            matches!(e, TokenError::UnknownKey(ref k) if k == "tcp_establish"),
            "{e}"
        );
        assert!(e.to_string().contains("tcp_established"), "{e}");
        for (k, v) in [
            ("tcp_failure", "tcpc"),
            ("tcp_failure", "tcpc/"),
            ("tcp_failure", "1cp/x"),
            ("cause_parameter", "a b"),
            ("inactivity_unit_ms", "0"),
            ("inactivity_unit_ms", "ten"),
        ] {
            let e = Tokens::with(&table(&[(k, v)])).unwrap_err();
            assert!(matches!(e, TokenError::Invalid { .. }), "{k}={v}: {e}");
        }
        let e = Tokens::with(&table(&[("tls_established", "tcpc/est")])).unwrap_err();
        assert_eq!(
            e,
            TokenError::Ambiguous {
                token: "tcpc/est".into(),
                first: "tcp_established",
                second: "tls_established"
            }
        );
        let e = Tokens::with(&table(&[("bfcp_statistics", "msrpst")])).unwrap_err();
        assert!(matches!(e, TokenError::Ambiguous { .. }), "{e}");
        let e = Tokens::with(&table(&[("msrp_statistics", "NT")])).unwrap_err();
        assert!(matches!(e, TokenError::Ambiguous { .. }), "{e}");
    }
}
