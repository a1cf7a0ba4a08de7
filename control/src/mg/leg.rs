//! What a termination's descriptors mean for its leg, and the worker commands that get the
//! leg there. [`plan`] is a pure function of the termination's media and of what the worker
//! was told before: it refuses (with the H.248 error) before anything is sent, so a command
//! that fails here changes nothing.
//!
//! A TCP leg is started once its role is known (RFC 4145: from `a=setup` in Local or Remote)
//! and, when it connects out, the Remote address; its role cannot change afterwards. A UDP
//! (T.38) leg is started as soon as it has a peer or latches, and started again when its
//! Remote, gate or DTLS association changes.

use std::net::{IpAddr, SocketAddr};

use dataplane::contract::{
    Accept, Command as Dp, Gate, LegPolicy, LegRole, LegTimers, TerminationKey,
};
use dataplane::dtls::DtlsConfig;
use dataplane::tls::TlsConfig;
use h248::ast::StreamMode;
use h248::sdp::{SdpGroups, SdpValue};

use super::answer::{answer_sdp, remote_addr};
use super::{fail, Fail, MgConfig};
use crate::iq::{self, we_are_dtls_client, we_connect, Family, IqPolicy, RealmPolicy, TcpMedia};

/// What the ALG's descriptors set on a termination's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub mode: StreamMode,
    pub latch: bool,
    /// Local as the ALG reserved it (the transport, `a=setup`, `a=tls-id`).
    pub local: Option<TcpMedia>,
    pub remote: Option<TcpMedia>,
    /// The `gm`, `tman` and `ds` properties the ALG set.
    pub policy: IqPolicy,
}

/// What the worker has been told about a leg.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LegSent {
    pub gate: Option<Gate>,
    /// The filter, policer and DSCP last sent (`None`: none yet, the leg has the default).
    pub policy: Option<LegPolicy>,
    /// A TCP leg was started: its role is fixed from then on.
    pub started: bool,
    /// The last start given to a UDP leg: one that differs starts it again.
    pub datagram_start: Option<Box<Dp>>,
}

/// The commands that take a leg from what was sent to what the media says.
#[derive(Debug)]
pub struct LegPlan {
    pub commands: Vec<Dp>,
    pub sent: LegSent,
    /// A new answer SDP when the leg was started (its role is now known).
    pub local_sdp: Option<SdpGroups>,
}

/// The gate H.248 Mode gives a leg (seen from outside the context).
fn gate(mode: StreamMode) -> Gate {
    match mode {
        StreamMode::SendReceive => Gate::OPEN,
        StreamMode::SendOnly => Gate {
            receive: false,
            send: true,
        },
        StreamMode::ReceiveOnly => Gate {
            receive: true,
            send: false,
        },
        StreamMode::Inactive | StreamMode::Loopback => Gate::CLOSED,
    }
}

/// Plans the commands for leg `key` at `local` in a realm with policy `realm` to follow
/// `media`, given what was `sent`. The gate and the filter come before the start, so the
/// first frame the leg takes has passed them.
pub fn plan(
    cfg: &MgConfig,
    realm: &RealmPolicy,
    fingerprint: Option<&str>,
    key: TerminationKey,
    local: SocketAddr,
    media: &Media,
    sent: &LegSent,
) -> Result<LegPlan, Fail> {
    // The leg's address family is fixed by the address it was given: a Local or a Remote of
    // the other family cannot be served (IP version interworking is between the legs).
    let family = Family::of(local.ip());
    for (what, m) in [
        ("Local", media.local.as_ref()),
        ("Remote", media.remote.as_ref()),
    ] {
        if let Some(other) = m.and_then(|m| m.family).filter(|f| *f != family) {
            return Err(fail(
                449,
                format!(
                    "{what} is {} but the termination's address is {}",
                    other.token(),
                    family.token()
                ),
            ));
        }
    }
    // A source filter of the other family would admit nothing the leg can receive.
    if let Some((a, _)) = media.policy.sam.filter(|(a, _)| Family::of(*a) != family) {
        return Err(fail(
            449,
            format!(
                "gm/sam {a} is {} but the termination's address is {}",
                Family::of(a).token(),
                family.token()
            ),
        ));
    }
    let mut p = LegPlan {
        commands: Vec::new(),
        sent: sent.clone(),
        local_sdp: None,
    };
    let g = gate(media.mode);
    if sent.gate != Some(g) {
        p.commands.push(Dp::SetGate { key, gate: g });
        p.sent.gate = Some(g);
    }
    let datagram = media
        .local
        .as_ref()
        .is_some_and(|m| m.transport.is_datagram());
    let peer_connects = !datagram
        && we_connect(
            media.local.as_ref().and_then(|m| m.setup),
            media.remote.as_ref().and_then(|r| r.setup),
        ) != Some(true);
    let policy = media.policy.resolve(
        realm,
        media.remote.as_ref().and_then(remote_addr),
        peer_connects,
        &cfg.tokens,
    )?;
    if sent.policy.unwrap_or_default() != policy {
        p.commands.push(Dp::SetPolicy { key, policy });
    }
    p.sent.policy = Some(policy);
    if datagram {
        plan_datagram(cfg, fingerprint, key, local, media, &mut p)?;
    } else {
        plan_stream(cfg, fingerprint, key, local, media, &mut p)?;
    }
    Ok(p)
}

fn plan_stream(
    cfg: &MgConfig,
    fingerprint: Option<&str>,
    key: TerminationKey,
    local: SocketAddr,
    media: &Media,
    p: &mut LegPlan,
) -> Result<(), Fail> {
    if p.sent.started {
        return Ok(());
    }
    let Some(remote) = &media.remote else {
        return Ok(());
    };
    let Some(connect) = we_connect(media.local.as_ref().and_then(|m| m.setup), remote.setup) else {
        return Ok(());
    };
    let remote_ip = match &remote.address {
        Some(SdpValue::Value(a)) => a.parse::<IpAddr>().ok(),
        _ => None,
    };
    let role = if connect {
        match remote_addr(remote) {
            Some(r) if r.port() != 0 => LegRole::Active { remote: r },
            _ => return Err(fail(449, "Remote needs an address and port to connect to")),
        }
    } else {
        LegRole::Passive
    };
    let accept = match (media.latch, remote_ip) {
        (false, Some(ip)) => Accept::Gate(ip),
        _ => Accept::Latch,
    };
    let reserved = media.local.as_ref().unwrap_or(remote);
    let tls = match &cfg.tls {
        Some(id) if reserved.transport.is_tls() => {
            // TLS role follows the TCP role: the side that connects is the client.
            let server = match role {
                LegRole::Active { remote } => Some(remote.ip()),
                LegRole::Passive => None,
            };
            Some(
                TlsConfig::new(id, server, remote.fingerprints.clone())
                    .map_err(|e| fail(449, format!("Remote: {e}")))?,
            )
        }
        _ => None,
    };
    p.commands.push(Dp::Start {
        key,
        role,
        accept,
        timers: cfg.timers,
        tls,
        framing: iq::framing(reserved, Some(remote)),
    });
    p.sent.started = true;
    p.local_sdp = Some(answer_sdp(
        reserved,
        local,
        Some(if connect { "active" } else { "passive" }),
        fingerprint,
    ));
    Ok(())
}

/// A UDP leg sends to the Remote address (or latches), and a `UDP/TLS/UDPTL` leg runs DTLS
/// with the role from `a=setup`, the UE pinned by its fingerprints and the association named
/// by `a=tls-id`.
fn plan_datagram(
    cfg: &MgConfig,
    fingerprint: Option<&str>,
    key: TerminationKey,
    local: SocketAddr,
    media: &Media,
    p: &mut LegPlan,
) -> Result<(), Fail> {
    let Some(reserved) = media.local.as_ref() else {
        return Ok(());
    };
    let remote = media.remote.as_ref();
    let peer = remote.and_then(remote_addr).filter(|r| r.port() != 0);
    let accept = match (media.latch, peer) {
        (false, Some(r)) => Accept::Gate(r.ip()),
        (true, _) => Accept::Latch,
        // Not latching and no peer yet: nothing to send to, nothing to take.
        (false, None) => return Ok(()),
    };
    let mut setup = None;
    let dtls = if reserved.transport.is_tls() {
        let Some(remote) = remote else {
            return Ok(());
        };
        let Some(client) = we_are_dtls_client(reserved.setup, remote.setup) else {
            return Ok(());
        };
        setup = Some(if client { "active" } else { "passive" });
        let id = cfg
            .tls
            .as_ref()
            .ok_or_else(|| fail(501, "DTLS at the access edge is not configured"))?;
        // The association is named by either side's tls-id (RFC 8842 4): a change on either
        // is a new one.
        let association = match (&reserved.tls_id, &remote.tls_id) {
            (None, None) => None,
            (l, r) => Some(format!(
                "{}/{}",
                l.as_deref().unwrap_or(""),
                r.as_deref().unwrap_or("")
            )),
        };
        Some(
            DtlsConfig::new(
                id,
                client,
                remote.fingerprints.clone(),
                association.as_deref(),
            )
            .map_err(|e| fail(449, format!("Remote: {e}")))?,
        )
    } else {
        None
    };
    let start = Dp::StartDatagram {
        key,
        remote: peer,
        accept,
        relatch: cfg.relatch,
        timers: LegTimers {
            idle: cfg.datagram_idle,
            ..cfg.timers
        },
        dtls,
    };
    if p.sent.datagram_start.as_deref() == Some(&start) {
        return Ok(());
    }
    p.commands.push(start.clone());
    p.sent.datagram_start = Some(Box::new(start));
    p.sent.started = true;
    p.local_sdp = Some(answer_sdp(reserved, local, setup, fingerprint));
    Ok(())
}

/// TLS or DTLS asked for in Local: refused (501) unless this MG has a certificate that can
/// do it.
pub fn check_tls(cfg: &MgConfig, m: &TcpMedia) -> Result<(), Fail> {
    if !m.transport.is_tls() {
        return Ok(());
    }
    match &cfg.tls {
        None => Err(fail(
            501,
            "TLS at the access edge is not configured on this MG",
        )),
        Some(id) if m.transport.is_datagram() && id.dtls_certificate().is_none() => Err(fail(
            501,
            "the MG's certificate has no ECDSA key, which DTLS needs",
        )),
        Some(_) => Ok(()),
    }
}
