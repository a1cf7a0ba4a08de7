//! The Local SDP the MG answers with: its own address and port in place of the ALG's `$`, the
//! RFC 4145 role once decided, and for (D)TLS its certificate's fingerprint and the
//! association's `a=tls-id`.

use std::net::SocketAddrV4;

use h248::sdp::{SdpGroups, SdpLine, SdpSession, SdpValue};

use crate::iq::TcpMedia;

pub fn answer_sdp(
    m: &TcpMedia,
    local: SocketAddrV4,
    setup: Option<&str>,
    fingerprint: Option<&str>,
) -> SdpGroups {
    let proto = m.transport.token();
    let mut lines = vec![
        SdpLine::Version("0".into()),
        SdpLine::Connection {
            net_type: "IN".into(),
            addr_type: "IP4".into(),
            address: SdpValue::Value(local.ip().to_string().as_str().into()),
        },
        SdpLine::Media {
            media: m.media.clone(),
            port: SdpValue::Value(local.port().to_string().as_str().into()),
            proto: proto.into(),
            formats: m.formats.clone(),
        },
    ];
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

/// The address and port an SDP names, when both are concrete.
pub fn remote_addr(m: &TcpMedia) -> Option<SocketAddrV4> {
    let ip = match &m.address {
        Some(SdpValue::Value(a)) => a.parse().ok()?,
        _ => return None,
    };
    let port = match &m.port {
        SdpValue::Value(p) => p.parse().ok()?,
        _ => return None,
    };
    Some(SocketAddrV4::new(ip, port))
}
