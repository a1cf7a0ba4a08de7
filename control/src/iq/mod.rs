//! The Iq profile's TCP media (TS 29.334 for TCP, TCP/MSRP, TCP/TLS/MSRP, TCP/BFCP,
//! TCP/TLS/BFCP) and T.38 fax media (`udptl`, RFC 7345 `UDP/TLS/UDPTL`): what a Local or
//! Remote SDP says about transport, address, port, the RFC 4145 connection attributes and
//! the RFC 8842 `a=tls-id`, and which side connects (or, for DTLS, which side is client).

use dataplane::tls::Fingerprint;

use h248::ast::Text;
use h248::sdp::{SdpGroups, SdpValue};

pub mod policy;
pub mod tokens;

pub use policy::{IqPolicy, RealmPolicy};
pub use tokens::{IqEvent, Token, Tokens};

/// How the MG relays a termination's payload (TS 23.334 5.19): MSRP-aware for `TCP/MSRP`
/// and `TCP/TLS/MSRP` unless either side applies CEMA, BFCP-aware for the BFCP transports,
/// agnostic for plain `TCP`.
pub fn framing(reserved: &TcpMedia, remote: Option<&TcpMedia>) -> dataplane::contract::Framing {
    use dataplane::contract::Framing;
    let cema = reserved.cema || remote.is_some_and(|r| r.cema);
    match reserved.transport {
        Transport::TcpMsrp | Transport::TcpTlsMsrp if !cema => Framing::Msrp,
        Transport::TcpBfcp | Transport::TcpTlsBfcp => Framing::Bfcp,
        _ => Framing::Agnostic,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    TcpMsrp,
    TcpTlsMsrp,
    TcpBfcp,
    TcpTlsBfcp,
    /// T.38 over plain UDPTL (`m=image <port> udptl t38`).
    Udptl,
    /// T.38 over UDPTL over DTLS (RFC 7345).
    UdpTlsUdptl,
}

impl Transport {
    pub fn parse(proto: &str) -> Option<Transport> {
        let p = proto.to_ascii_uppercase();
        Some(match p.as_str() {
            "TCP" => Transport::Tcp,
            "TCP/MSRP" => Transport::TcpMsrp,
            "TCP/TLS/MSRP" => Transport::TcpTlsMsrp,
            "TCP/BFCP" => Transport::TcpBfcp,
            "TCP/TLS/BFCP" => Transport::TcpTlsBfcp,
            "UDPTL" => Transport::Udptl,
            "UDP/TLS/UDPTL" => Transport::UdpTlsUdptl,
            _ => return None,
        })
    }

    /// The SDP proto token.
    pub fn token(self) -> &'static str {
        match self {
            Transport::Tcp => "TCP",
            Transport::TcpMsrp => "TCP/MSRP",
            Transport::TcpTlsMsrp => "TCP/TLS/MSRP",
            Transport::TcpBfcp => "TCP/BFCP",
            Transport::TcpTlsBfcp => "TCP/TLS/BFCP",
            Transport::Udptl => "udptl",
            Transport::UdpTlsUdptl => "UDP/TLS/UDPTL",
        }
    }

    /// TLS or DTLS terminated by the AGW: needs its certificate.
    pub fn is_tls(self) -> bool {
        matches!(
            self,
            Transport::TcpTlsMsrp | Transport::TcpTlsBfcp | Transport::UdpTlsUdptl
        )
    }

    /// Carried over UDP (a datagram leg).
    pub fn is_datagram(self) -> bool {
        matches!(self, Transport::Udptl | Transport::UdpTlsUdptl)
    }
}

/// The address family of a media line's `c=` (`IP4`, `IP6`): the Local the ALG sends decides
/// which of the realm's addresses the MG takes, and the Remote must be of the same family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn of(a: std::net::IpAddr) -> Family {
        match a {
            std::net::IpAddr::V4(_) => Family::V4,
            std::net::IpAddr::V6(_) => Family::V6,
        }
    }

    /// The SDP `addrtype` token.
    pub fn token(self) -> &'static str {
        match self {
            Family::V4 => "IP4",
            Family::V6 => "IP6",
        }
    }

    fn parse(t: &str) -> Option<Family> {
        match t.trim().to_ascii_uppercase().as_str() {
            "IP4" => Some(Family::V4),
            "IP6" => Some(Family::V6),
            _ => None,
        }
    }
}

/// RFC 4145 `a=setup`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    Active,
    Passive,
    ActPass,
    HoldConn,
}

impl Setup {
    fn parse(v: &str) -> Option<Setup> {
        Some(match v.trim().to_ascii_lowercase().as_str() {
            "active" => Setup::Active,
            "passive" => Setup::Passive,
            "actpass" => Setup::ActPass,
            "holdconn" => Setup::HoldConn,
            _ => return None,
        })
    }
}

/// The TCP or UDPTL media of one SDP session, as far as the MG needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TcpMedia {
    pub media: Text,
    pub port: SdpValue,
    pub transport: Transport,
    pub formats: Vec<Text>,
    pub address: Option<SdpValue>,
    /// From `c=`'s address type; `None` without a `c=` (an Add then takes IPv4, a Modify
    /// keeps the termination's family).
    pub family: Option<Family>,
    pub setup: Option<Setup>,
    /// `a=connection:existing` (RFC 4145): keep the connection that is there.
    pub existing: bool,
    /// `a=fingerprint` lines (RFC 8122): the certificates the peer may present.
    pub fingerprints: Vec<Fingerprint>,
    /// `a=msrp-cema` (RFC 6714): the MSRP session crosses the AGW untouched.
    pub cema: bool,
    /// `a=tls-id` (RFC 8842): the (D)TLS association; a new value is a new association.
    pub tls_id: Option<Text>,
}

/// Why an SDP cannot be served, with the H.248 error code to answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub code: u16,
    pub reason: &'static str,
}

/// Reads the TCP media of the first session of a Local or Remote descriptor; `Ok(None)` when
/// the descriptor is empty.
pub fn tcp_media(g: &SdpGroups) -> Result<Option<TcpMedia>, Refusal> {
    let Some(s) = g.first() else {
        return Ok(None);
    };
    let Some((media, port, proto, formats)) = s.media() else {
        return Err(Refusal {
            code: 474,
            reason: "no m= line",
        });
    };
    let Some(transport) = Transport::parse(proto) else {
        return Err(Refusal {
            code: 515,
            reason: "unsupported transport",
        });
    };
    let setup = match s.attribute("setup") {
        None => None,
        Some(v) => Some(Setup::parse(v.unwrap_or("")).ok_or(Refusal {
            code: 449,
            reason: "unknown a=setup value",
        })?),
    };
    let family = match s.connection() {
        None => None,
        Some((t, a)) => {
            let f = Family::parse(t).ok_or(Refusal {
                code: 449,
                reason: "c= address type is neither IP4 nor IP6",
            })?;
            if let SdpValue::Value(v) = a {
                // A concrete address must be of the family c= names.
                match v.parse::<std::net::IpAddr>() {
                    Ok(ip) if Family::of(ip) != f => {
                        return Err(Refusal {
                            code: 449,
                            reason: "c= address is not of its address type",
                        })
                    }
                    _ => {}
                }
            }
            Some(f)
        }
    };
    let existing = matches!(s.attribute("connection"), Some(Some(v)) if v.trim().eq_ignore_ascii_case("existing"));
    let fingerprints = s
        .attributes("fingerprint")
        .map(|v| {
            Fingerprint::parse(v.unwrap_or("")).map_err(|_| Refusal {
                code: 449,
                reason: "a=fingerprint is not `<hash> XX:XX:...` with a SHA hash",
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(TcpMedia {
        media: media.into(),
        port: port.clone(),
        transport,
        formats: formats.to_vec(),
        address: s.connection().map(|(_, a)| a.clone()),
        family,
        setup,
        existing,
        fingerprints,
        cema: s.attribute("msrp-cema").is_some(),
        tls_id: match s.attribute("tls-id") {
            None => None,
            Some(v) => {
                let v = v.unwrap_or("").trim();
                // RFC 8842 5: 20 to 255 characters of base64 (we take 1..=255 printable).
                if v.is_empty() || v.len() > 255 || !v.bytes().all(|b| b.is_ascii_graphic()) {
                    return Err(Refusal {
                        code: 449,
                        reason: "a=tls-id is not a token of 1 to 255 characters",
                    });
                }
                Some(v.into())
            }
        },
    }))
}

/// Whether the MG's leg connects out (true) or listens (false), from the Local (ours) and the
/// Remote (the peer's) `a=setup`; `None` while undecided (RFC 4145 4.1: the answer decides).
pub fn we_connect(local: Option<Setup>, remote: Option<Setup>) -> Option<bool> {
    match (local, remote) {
        (Some(Setup::Active), _) => Some(true),
        (Some(Setup::Passive), _) => Some(false),
        (_, Some(Setup::Active)) => Some(false),
        (_, Some(Setup::Passive)) => Some(true),
        _ => None,
    }
}

/// The DTLS role of a UDP/TLS/UDPTL leg: whether the AGW is the DTLS client. As for TCP
/// the side that is active is the client (RFC 7345 5, RFC 5763 5); a Remote without
/// `a=setup` is active (the RFC 4145 default), and a Remote that offers `actpass` leaves the
/// choice to us as answerer: active (RFC 5763 5).
pub fn we_are_dtls_client(local: Option<Setup>, remote: Option<Setup>) -> Option<bool> {
    match (we_connect(local, remote), remote) {
        (Some(c), _) => Some(c),
        (None, None) => Some(false),
        (None, Some(Setup::ActPass)) if local != Some(Setup::ActPass) => Some(true),
        (None, _) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_udptl_transports_and_tls_id() {
        let g = SdpGroups::parse("v=0\nc=IN IP4 203.0.113.7\nm=image 40000 UDP/TLS/UDPTL t38\na=setup:active\na=tls-id:abc123\na=fingerprint:sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F\n").unwrap();
        let m = tcp_media(&g).unwrap().unwrap();
        assert_eq!(m.transport, Transport::UdpTlsUdptl);
        assert!(m.transport.is_tls() && m.transport.is_datagram());
        assert_eq!(m.tls_id.as_deref(), Some("abc123"));
        assert_eq!(m.fingerprints.len(), 1);
        let plain = SdpGroups::parse("v=0\nm=image 9 udptl t38\n").unwrap();
        let m = tcp_media(&plain).unwrap().unwrap();
        assert_eq!(m.transport, Transport::Udptl);
        assert!(!m.transport.is_tls() && m.transport.is_datagram());
        assert_eq!(m.transport.token(), "udptl");
        let bad = SdpGroups::parse("v=0\nm=image 9 udptl t38\na=tls-id:\n").unwrap();
        assert_eq!(tcp_media(&bad).unwrap_err().code, 449);
    }

    #[test]
    fn dtls_roles() {
        // UE active -> AGW server; UE passive -> AGW client.
        assert_eq!(we_are_dtls_client(None, Some(Setup::Active)), Some(false));
        assert_eq!(we_are_dtls_client(None, Some(Setup::Passive)), Some(true));
        assert_eq!(we_are_dtls_client(None, None), Some(false));
        assert_eq!(we_are_dtls_client(None, Some(Setup::ActPass)), Some(true));
        assert_eq!(
            we_are_dtls_client(Some(Setup::ActPass), Some(Setup::ActPass)),
            None
        );
        assert_eq!(
            we_are_dtls_client(Some(Setup::Passive), Some(Setup::ActPass)),
            Some(false)
        );
    }

    #[test]
    fn reads_transport_setup_and_connection() {
        let g = SdpGroups::parse("v=0\nc=IN IP4 203.0.113.7\nm=message 9 TCP/MSRP *\na=setup:active\na=connection:existing\n").unwrap();
        let m = tcp_media(&g).unwrap().unwrap();
        assert_eq!(m.transport, Transport::TcpMsrp);
        assert_eq!(m.setup, Some(Setup::Active));
        assert!(m.existing);
        assert_eq!(m.address, Some(SdpValue::Value("203.0.113.7".into())));
        let rtp = SdpGroups::parse("v=0\nm=audio 4000 RTP/AVP 0\n").unwrap();
        assert_eq!(tcp_media(&rtp).unwrap_err().code, 515);
        assert_eq!(tcp_media(&SdpGroups::default()).unwrap(), None);
        let tls = SdpGroups::parse("v=0\nc=IN IP4 203.0.113.7\nm=message 9 TCP/TLS/MSRP *\na=fingerprint:SHA-1 4A:AD:B9:B1:3F:82:18:3B:54:02:12:DF:3E:5D:49:6B:19:E5:7C:AB\na=fingerprint:sha-256 00:01:02:03:04:05:06:07:08:09:0A:0B:0C:0D:0E:0F:10:11:12:13:14:15:16:17:18:19:1A:1B:1C:1D:1E:1F\n").unwrap();
        let m = tcp_media(&tls).unwrap().unwrap();
        assert!(m.transport.is_tls());
        assert_eq!(m.fingerprints.len(), 2);
        let bad = SdpGroups::parse("v=0\nm=message 9 TCP/TLS/MSRP *\na=fingerprint:sha-256 AB\n")
            .unwrap();
        assert_eq!(tcp_media(&bad).unwrap_err().code, 449);
    }

    #[test]
    fn framing_follows_the_reserved_transport_and_cema() {
        use dataplane::contract::Framing;
        let media = |sdp: &str| tcp_media(&SdpGroups::parse(sdp).unwrap()).unwrap().unwrap();
        let msrp = media("v=0\nm=message 9 TCP/MSRP *\n");
        let cema = media("v=0\nm=message 9 TCP/MSRP *\na=msrp-cema\n");
        let tls_msrp = media("v=0\nm=message 9 TCP/TLS/MSRP *\n");
        let bfcp = media("v=0\nm=application 9 TCP/BFCP *\n");
        let tcp = media("v=0\nm=message 9 TCP *\n");
        assert_eq!(framing(&msrp, None), Framing::Msrp);
        assert_eq!(framing(&tls_msrp, Some(&msrp)), Framing::Msrp);
        assert_eq!(framing(&cema, None), Framing::Agnostic);
        assert_eq!(framing(&msrp, Some(&cema)), Framing::Agnostic);
        assert_eq!(framing(&bfcp, None), Framing::Bfcp);
        assert_eq!(framing(&tcp, Some(&msrp)), Framing::Agnostic);
    }

    #[test]
    fn roles_follow_rfc_4145() {
        assert_eq!(we_connect(Some(Setup::Active), None), Some(true));
        assert_eq!(we_connect(None, Some(Setup::Active)), Some(false));
        assert_eq!(we_connect(None, Some(Setup::Passive)), Some(true));
        assert_eq!(we_connect(None, Some(Setup::ActPass)), None);
        assert_eq!(we_connect(None, None), None);
    }
}
