//! The Local SDP the MG answers with: its own address and port in place of the ALG's `$`, the
//! RFC 4145 role once decided, and for (D)TLS its certificate's fingerprint and the
//! association's `a=tls-id`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use h248::sdp::{SdpGroups, SdpLine, SdpSession, SdpValue};

use crate::iq::{Family, TcpMedia};

pub fn answer_sdp(
    m: &TcpMedia,
    local: SocketAddr,
    setup: Option<&str>,
    fingerprint: Option<&str>,
) -> SdpGroups {
    let proto = m.transport.token();
    let tls = m.transport.is_tls() && fingerprint.is_some();
    // Sized exactly: a held call keeps its answer for as long as it lasts.
    let mut lines = Vec::with_capacity(3 + usize::from(setup.is_some()) + 2 * usize::from(tls));
    lines.extend([
        SdpLine::Version("0".into()),
        SdpLine::Connection {
            net_type: "IN".into(),
            addr_type: Family::of(local.ip()).token().into(),
            address: SdpValue::Value(local.ip().to_string().as_str().into()),
        },
        SdpLine::Media {
            media: m.media.clone(),
            port: SdpValue::Value(local.port().to_string().as_str().into()),
            proto: proto.into(),
            formats: m.formats.clone(),
        },
    ]);
    if let Some(s) = setup {
        lines.push(SdpLine::Attribute {
            name: "setup".into(),
            value: Some(s.into()),
        });
    }
    if let (true, Some(f)) = (m.transport.is_tls(), fingerprint) {
        lines.push(SdpLine::Attribute {
            name: "fingerprint".into(),
            value: Some(f.into()),
        });
        if let Some(id) = &m.tls_id {
            // The ALG names the association towards the UE (TS 23.334 e2ae step 2).
            lines.push(SdpLine::Attribute {
                name: "tls-id".into(),
                value: Some(id.clone()),
            });
        }
    }
    SdpGroups(vec![SdpSession { lines }])
}

/// The address and port an SDP names, when both are concrete (the address of the family
/// its `c=` names).
pub fn remote_addr(m: &TcpMedia) -> Option<SocketAddr> {
    let ip: IpAddr = match &m.address {
        Some(SdpValue::Value(a)) => a.parse().ok()?,
        _ => return None,
    };
    if m.family.is_some_and(|f| f != Family::of(ip)) {
        return None;
    }
    let port = match &m.port {
        SdpValue::Value(p) => p.parse().ok()?,
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// The unspecified address of a family, port 0 (an SDP that names no concrete address).
pub fn unspecified(f: Family) -> SocketAddr {
    match f {
        Family::V4 => SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
        Family::V6 => SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), 0),
    }
}
