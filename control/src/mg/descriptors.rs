//! Reading a command's descriptors (stream 1's LocalControl, Local and Remote) and building
//! the Local of its reply.

use h248::ast::*;
use h248::sdp::SdpGroups;

use super::leg::Media;
use super::{fail, Fail};
use crate::iq::{tcp_media, IqPolicy, TcpMedia, Tokens};

/// What a LocalControl descriptor sets (each only when present).
#[derive(Default)]
pub(super) struct LocalControl {
    pub mode: Option<StreamMode>,
    pub latch: Option<bool>,
    pub realm: Option<Text>,
    /// `gm`, `tman` and `ds` properties.
    pub policy: IqPolicy,
}

/// Stream 1's LocalControl, Local and Remote (a bare stream or `Stream = 1`).
pub(super) fn stream1(descriptors: &[Descriptor]) -> Result<Vec<&StreamParm>, Fail> {
    let mut parms = Vec::new();
    for d in descriptors {
        match d {
            Descriptor::Media(ms) => {
                for m in ms {
                    match m {
                        MediaParm::Stream(p) => parms.push(p),
                        MediaParm::Streams(s) if s.id == 1 => parms.extend(s.parms.iter()),
                        MediaParm::Streams(_) => {
                            return Err(fail(501, "only stream 1 is supported"))
                        }
                        MediaParm::TerminationState(_) => {}
                    }
                }
            }
            Descriptor::Events(_) | Descriptor::Signals(_) | Descriptor::Audit(_) => {}
            Descriptor::Statistics(_) => {}
            _ => return Err(fail(444, "descriptor not supported on Iq TCP terminations")),
        }
    }
    Ok(parms)
}

/// Reads a LocalControl: Mode, latching, the realm, and the `gm`, `tman` and `ds`
/// properties. Other package properties are not supported (445).
pub(super) fn local_control(tokens: &Tokens, lc: &[LocalParm]) -> Result<LocalControl, Fail> {
    let mut out = LocalControl::default();
    for l in lc {
        match l {
            LocalParm::Mode(m) => out.mode = Some(*m),
            LocalParm::Property(pp) if tokens.realm.is(&pp.name) => {
                out.realm = Some(
                    pp.value
                        .single()
                        .map(|v| v.text.clone())
                        .unwrap_or_default(),
                );
            }
            LocalParm::Property(pp) if tokens.latch.is(&pp.name) => {
                out.latch = Some(
                    pp.value
                        .single()
                        .is_some_and(|v| v.text.eq_ignore_ascii_case("on")),
                );
            }
            LocalParm::Property(pp) => {
                if !out.policy.take(tokens, pp)? {
                    return Err(fail(
                        445,
                        format!("unsupported property {}/{}", pp.name.package, pp.name.item),
                    ));
                }
            }
            LocalParm::ReservedValue(_) | LocalParm::ReservedGroup(_) => {}
        }
    }
    Ok(out)
}

pub(super) fn media_of(g: &SdpGroups) -> Result<Option<TcpMedia>, Fail> {
    tcp_media(g).map_err(|r| fail(r.code, r.reason))
}

pub(super) fn is_datagram(m: &Media) -> Option<bool> {
    m.local.as_ref().map(|l| l.transport.is_datagram())
}

/// The Local of a reply: stream 1 with the answer SDP, after the `gm`, `tman` and `ds`
/// properties in effect when the ALG set any (`echo`).
pub(super) fn local_reply(sdp: &SdpGroups, echo: Vec<LocalParm>) -> Option<Vec<Descriptor>> {
    let mut parms = Vec::with_capacity(2);
    if !echo.is_empty() {
        parms.push(StreamParm::LocalControl(echo));
    }
    parms.push(StreamParm::Local(sdp.clone()));
    Some(vec![Descriptor::Media(vec![MediaParm::Streams(
        StreamDescriptor { id: 1, parms },
    )])])
}

/// The policy properties a reply echoes: those in effect, once the ALG has set any.
pub(super) fn policy_echo(cfg: &super::MgConfig, realm: usize, media: &Media) -> Vec<LocalParm> {
    if media.policy.is_empty() {
        return Vec::new();
    }
    media.policy.echo(&cfg.realms[realm].policy, &cfg.tokens)
}
