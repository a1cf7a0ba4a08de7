//! DTLS 1.2 towards the UE for T.38 fax (RFC 7345 `UDP/TLS/UDPTL`, e2ae): dimpl's sans-IO
//! state machine driven by the worker, one datagram at a time, its retransmission timer on
//! the worker's clock, and the UE's certificate pinned by its SDP `a=fingerprint` (RFC 8122)
//! as for TLS.
//!
//! Why dimpl rather than OpenSSL: it takes time from the caller (OpenSSL's DTLS timer reads
//! the system clock, so a virtual-clock test could not drive retransmissions), it needs no
//! BIO plumbing or threads, it has no `unsafe`, and it shares aws-lc-rs with our rustls.

use std::sync::{Arc, OnceLock};

use smoltcp::time::Instant;

use crate::tls::{Fingerprint, Identity, TlsError, TlsFailure};

/// Largest DTLS record dimpl produces: a 1500-byte Ethernet MTU less IPv4 and UDP headers.
pub const DTLS_MTU: usize = 1472;

/// Whether dimpl can sign with this key (PKCS#8 or SEC1 ECDSA P-256/P-384).
pub fn usable_key(key_der: &[u8]) -> bool {
    shared_config()
        .crypto_provider()
        .key_provider
        .load_private_key(key_der)
        .is_ok()
}

/// One dimpl configuration for every leg: the client must send a certificate (it is how the
/// UE is authenticated), cookies on (a spoofed ClientHello costs us no state), records up to
/// the MTU. The handshake deadline is the leg's own, enforced by the worker; dimpl's is
/// longer so that ours decides.
fn shared_config() -> &'static Arc<dimpl::Config> {
    static CONFIG: OnceLock<Arc<dimpl::Config>> = OnceLock::new();
    CONFIG.get_or_init(|| {
        Arc::new(
            dimpl::Config::builder()
                .mtu(DTLS_MTU)
                .require_client_certificate(true)
                .use_server_cookie(true)
                .flight_start_rto(std::time::Duration::from_millis(500))
                .flight_retries(6)
                .handshake_timeout(std::time::Duration::from_secs(60))
                .build()
                .expect("the DTLS configuration is valid"),
        )
    })
}

/// A DTLS leg's setup, built by the control thread and handed to the worker with the start.
#[derive(Clone)]
pub struct DtlsConfig {
    certificate: Arc<dimpl::DtlsCertificate>,
    /// The AGW is the DTLS client (the UE's `a=setup` is passive).
    pub client: bool,
    /// The certificates the UE may present (its `a=fingerprint` lines).
    pub fingerprints: Arc<[Fingerprint]>,
    /// RFC 8842 `a=tls-id` of the association: a new value means a new association.
    pub association: Option<Arc<str>>,
}

impl std::fmt::Debug for DtlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsConfig")
            .field("client", &self.client)
            .field("fingerprints", &self.fingerprints.len())
            .field("association", &self.association)
            .finish()
    }
}

/// Equal configs are the same association: a start with an equal one keeps the session.
impl PartialEq for DtlsConfig {
    fn eq(&self, o: &Self) -> bool {
        Arc::ptr_eq(&self.certificate, &o.certificate)
            && self.client == o.client
            && self.fingerprints == o.fingerprints
            && self.association == o.association
    }
}

impl Eq for DtlsConfig {}

impl DtlsConfig {
    pub fn new(
        identity: &Identity,
        client: bool,
        fingerprints: Vec<Fingerprint>,
        association: Option<&str>,
    ) -> Result<DtlsConfig, TlsError> {
        if fingerprints.is_empty() {
            return Err(TlsError::Config(
                "no a=fingerprint for the peer's certificate".into(),
            ));
        }
        let certificate = identity.dtls_certificate().cloned().ok_or_else(|| {
            TlsError::Config("the AGW's key cannot sign DTLS (ECDSA is needed)".into())
        })?;
        Ok(DtlsConfig {
            certificate,
            client,
            fingerprints: fingerprints.into(),
            association: association.map(Into::into),
        })
    }
}

/// The worker clock as the `std::time::Instant` dimpl wants (also for test peers): one
/// process-wide origin plus the worker's microseconds (virtual in tests, monotonic in
/// production).
pub fn to_std(now: Instant) -> std::time::Instant {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    origin + std::time::Duration::from_micros(now.total_micros().max(0) as u64)
}

fn from_std(t: std::time::Instant) -> Instant {
    let origin = to_std(Instant::ZERO);
    Instant::from_micros(t.saturating_duration_since(origin).as_micros() as i64)
}

/// What one step of a session produced, in order.
pub enum DtlsOutput<'a> {
    /// A record to send to the UE.
    Record(&'a [u8]),
    /// Plaintext the UE sent (one UDPTL datagram).
    Plaintext(&'a [u8]),
}

/// How a session stands after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtlsStatus {
    Handshaking,
    /// Just completed (reported once), with the UE's certificate verified.
    Connected,
    Open,
    /// The UE sent close_notify.
    PeerClosed,
    Failed(TlsFailure),
}

/// One leg's DTLS association.
pub struct DtlsSession {
    dtls: dimpl::Dtls,
    fingerprints: Arc<[Fingerprint]>,
    verified: bool,
    connected: bool,
    announced: bool,
    peer_closed: bool,
    failed: Option<TlsFailure>,
    next_timeout: Option<Instant>,
}

impl DtlsSession {
    pub fn new(cfg: &DtlsConfig, now: Instant) -> DtlsSession {
        let mut dtls = dimpl::Dtls::new_12(
            Arc::clone(shared_config()),
            (*cfg.certificate).clone(),
            to_std(now),
        );
        if cfg.client {
            dtls.set_active(true);
        }
        DtlsSession {
            dtls,
            fingerprints: Arc::clone(&cfg.fingerprints),
            verified: false,
            connected: false,
            announced: false,
            peer_closed: false,
            failed: None,
            next_timeout: None,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.connected && self.failed.is_none()
    }

    /// When the session next needs `step` without a datagram (a retransmission).
    pub fn next_timeout(&self) -> Option<Instant> {
        if self.failed.is_some() {
            None
        } else {
            self.next_timeout
        }
    }

    /// Feeds one datagram from the UE (or none, for timers) and drains what the session has
    /// to say into `out`. `buf` holds one record or one plaintext datagram at a time.
    /// Garbage and replays are dropped inside dimpl and leave the session as it was.
    pub fn step(
        &mut self,
        datagram: Option<&[u8]>,
        now: Instant,
        buf: &mut [u8],
        mut out: impl FnMut(DtlsOutput<'_>),
    ) -> DtlsStatus {
        if let Some(f) = self.failed {
            return DtlsStatus::Failed(f);
        }
        let mut result = self.dtls.handle_timeout(to_std(now));
        if result.is_ok() {
            if let Some(d) = datagram {
                result = self.dtls.handle_packet(d);
            }
        }
        if let Err(e) = result {
            return self.fail(&e);
        }
        self.drain(buf, &mut out)
    }

    /// Encrypts one plaintext datagram towards the UE; false if the session cannot take it
    /// now (not connected, or failed).
    pub fn send(
        &mut self,
        plaintext: &[u8],
        buf: &mut [u8],
        mut out: impl FnMut(DtlsOutput<'_>),
    ) -> bool {
        if !self.is_connected() || self.peer_closed {
            return false;
        }
        match self.dtls.send_application_data(plaintext) {
            Ok(n) if n == plaintext.len() => {
                self.drain(buf, &mut out);
                true
            }
            Ok(_) => false,
            Err(e) => {
                self.fail(&e);
                false
            }
        }
    }

    /// Sends close_notify (the leg is released).
    pub fn close(&mut self, buf: &mut [u8], mut out: impl FnMut(DtlsOutput<'_>)) {
        if self.failed.is_none() && self.dtls.close().is_ok() {
            self.drain(buf, &mut out);
        }
    }

    fn drain(&mut self, buf: &mut [u8], out: &mut impl FnMut(DtlsOutput<'_>)) -> DtlsStatus {
        // Bounded: dimpl ends every cycle with a Timeout; the cap guards against a cycle that
        // would not.
        for _ in 0..256 {
            match self.dtls.poll_output(buf) {
                dimpl::Output::Packet(p) => out(DtlsOutput::Record(p)),
                dimpl::Output::Timeout(t) => {
                    self.next_timeout = Some(from_std(t));
                    break;
                }
                dimpl::Output::PeerCert(der) => {
                    if !self.fingerprints.iter().any(|f| f.matches(der)) {
                        self.failed = Some(TlsFailure::Fingerprint);
                        return DtlsStatus::Failed(TlsFailure::Fingerprint);
                    }
                    self.verified = true;
                }
                dimpl::Output::Connected => {
                    if !self.verified {
                        // dimpl asks for the client certificate; a server certificate is
                        // always sent: a session without one is not ours to accept.
                        self.failed = Some(TlsFailure::NoCertificate);
                        return DtlsStatus::Failed(TlsFailure::NoCertificate);
                    }
                    self.connected = true;
                }
                dimpl::Output::ApplicationData(d) if self.connected => {
                    out(DtlsOutput::Plaintext(d));
                }
                dimpl::Output::CloseNotify => self.peer_closed = true,
                dimpl::Output::BufferTooSmall { .. } => {
                    // Our buffer is a full MTU; a larger record is not one we can send.
                    self.failed = Some(TlsFailure::Protocol);
                    return DtlsStatus::Failed(TlsFailure::Protocol);
                }
                _ => {}
            }
        }
        if self.peer_closed {
            DtlsStatus::PeerClosed
        } else if self.connected && !self.announced {
            self.announced = true;
            DtlsStatus::Connected
        } else if self.connected {
            DtlsStatus::Open
        } else {
            DtlsStatus::Handshaking
        }
    }

    fn fail(&mut self, e: &dimpl::Error) -> DtlsStatus {
        let failure = match e {
            dimpl::Error::Timeout(_) => TlsFailure::Timeout,
            dimpl::Error::CertificateError(_) => TlsFailure::NoCertificate,
            dimpl::Error::ConnectionClosed => TlsFailure::Closed,
            _ => TlsFailure::Protocol,
        };
        tracing::debug!(error = ?e, ?failure, "DTLS failed");
        self.failed = Some(failure);
        DtlsStatus::Failed(failure)
    }
}
