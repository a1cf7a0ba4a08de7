//! TLS at the access edge (TS 33.328 e2ae for MSRP and BFCP): rustls sessions (aws-lc-rs
//! provider, chosen by measurement: see README) driven from the
//! poll loop over a leg's smoltcp socket, the AGW's identity, and certificate pinning by the
//! SDP `a=fingerprint` (RFC 8122) instead of PKI path validation.
//!
//! A session never holds more than rustls's bounded buffers: TLS is read from the socket only
//! while rustls wants more (no plaintext waiting to be forwarded), and plaintext is accepted
//! only up to the buffer limit, so back-pressure passes through TLS unchanged.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::CertifiedKey;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, Connection, DigitallySignedStruct,
    DistinguishedName, ServerConfig, ServerConnection, SignatureScheme,
};
use sha1::Digest as _;
use smoltcp::socket::tcp;

/// Most plaintext rustls holds for sending per session (on top of the socket's buffer).
pub const PLAINTEXT_LIMIT: usize = 32 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TlsError {
    #[error("fingerprint {0:?}: expected `<hash> XX:XX:...` with sha-1, sha-224, sha-256, sha-384 or sha-512")]
    Fingerprint(String),
    #[error("certificate or key: {0}")]
    Identity(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha-1",
            HashAlg::Sha224 => "sha-224",
            HashAlg::Sha256 => "sha-256",
            HashAlg::Sha384 => "sha-384",
            HashAlg::Sha512 => "sha-512",
        }
    }

    pub fn parse(s: &str) -> Option<HashAlg> {
        Some(match s.to_ascii_lowercase().as_str() {
            "sha-1" => HashAlg::Sha1,
            "sha-224" => HashAlg::Sha224,
            "sha-256" => HashAlg::Sha256,
            "sha-384" => HashAlg::Sha384,
            "sha-512" => HashAlg::Sha512,
            _ => return None,
        })
    }

    fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha224 => sha2::Sha224::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// A certificate fingerprint as SDP carries it (RFC 8122 `a=fingerprint`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    pub alg: HashAlg,
    pub value: Vec<u8>,
}

impl Fingerprint {
    /// The fingerprint of a DER certificate.
    pub fn of(alg: HashAlg, der: &[u8]) -> Fingerprint {
        Fingerprint {
            alg,
            value: alg.digest(der),
        }
    }

    /// `sha-256 AB:CD:...` (the attribute's value).
    pub fn parse(s: &str) -> Result<Fingerprint, TlsError> {
        let bad = || TlsError::Fingerprint(s.to_string());
        let (alg, hex) = s.trim().split_once(char::is_whitespace).ok_or_else(bad)?;
        let alg = HashAlg::parse(alg).ok_or_else(bad)?;
        let value = hex
            .trim()
            .split(':')
            .map(|b| {
                if b.len() == 2 {
                    u8::from_str_radix(b, 16).map_err(|_| bad())
                } else {
                    Err(bad())
                }
            })
            .collect::<Result<Vec<u8>, _>>()?;
        if value.len() != alg.digest(b"").len() {
            return Err(bad());
        }
        Ok(Fingerprint { alg, value })
    }

    pub fn matches(&self, der: &[u8]) -> bool {
        self.alg.digest(der) == self.value
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.alg.name())?;
        for (i, b) in self.value.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The process's one crypto provider (every termination's configuration shares it).
fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider())))
}

/// The AGW's certificate and key.
#[derive(Clone)]
pub struct Identity {
    key: Arc<CertifiedKey>,
    /// The same certificate and key for DTLS, when the key is one DTLS can use (ECDSA P-256
    /// or P-384; dimpl has no RSA).
    dtls: Option<Arc<dimpl::DtlsCertificate>>,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({})", self.fingerprint(HashAlg::Sha256))
    }
}

impl Identity {
    /// A fresh self-signed ECDSA P-256 certificate.
    pub fn generate(name: &str) -> Result<Identity, TlsError> {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()])
            .map_err(|e| TlsError::Identity(e.to_string()))?;
        let key = PrivateKeyDer::Pkcs8(ck.key_pair.serialize_der().into());
        Self::from_der(vec![ck.cert.der().clone()], key)
    }

    /// A fresh self-signed ECDSA P-256 certificate and its key, in PEM (for peers and tools
    /// that read files).
    pub fn generate_pem(name: &str) -> Result<(String, String), TlsError> {
        let ck = rcgen::generate_simple_self_signed(vec![name.to_string()])
            .map_err(|e| TlsError::Identity(e.to_string()))?;
        Ok((ck.cert.pem(), ck.key_pair.serialize_pem()))
    }

    /// Reads a PEM certificate chain and key from files.
    pub fn from_pem_files(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Identity, TlsError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| TlsError::Identity(format!("{}: {e}", p.display())))
        };
        Self::from_pem(&read(cert)?, &read(key)?)
    }

    /// A PEM certificate chain and its key (PKCS#8, SEC1 or PKCS#1; ECDSA or RSA).
    pub fn from_pem(cert_pem: &[u8], key_pem: &[u8]) -> Result<Identity, TlsError> {
        let chain = rustls_pemfile::certs(&mut &cert_pem[..])
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| TlsError::Identity(format!("certificate PEM: {e}")))?;
        if chain.is_empty() {
            return Err(TlsError::Identity("no certificate in the PEM".into()));
        }
        let key = rustls_pemfile::private_key(&mut &key_pem[..])
            .map_err(|e| TlsError::Identity(format!("key PEM: {e}")))?
            .ok_or_else(|| TlsError::Identity("no private key in the PEM".into()))?;
        Self::from_der(chain, key)
    }

    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Identity, TlsError> {
        let key_der = key.secret_der().to_vec();
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|e| TlsError::Identity(e.to_string()))?;
        let key = Arc::new(CertifiedKey::new(chain, signing));
        key.keys_match()
            .map_err(|e| TlsError::Identity(format!("certificate and key do not match: {e}")))?;
        let dtls = crate::dtls::usable_key(&key_der).then(|| {
            Arc::new(dimpl::DtlsCertificate {
                certificate: key.cert[0].to_vec(),
                private_key: key_der,
            })
        });
        Ok(Identity { key, dtls })
    }

    /// The certificate and key for DTLS legs; `None` if the key is not ECDSA.
    pub fn dtls_certificate(&self) -> Option<&Arc<dimpl::DtlsCertificate>> {
        self.dtls.as_ref()
    }

    /// The fingerprint of our end-entity certificate, for the Local SDP.
    pub fn fingerprint(&self, alg: HashAlg) -> Fingerprint {
        Fingerprint::of(alg, &self.key.cert[0])
    }

    /// The certificate chain in PEM, for peers that want to see it.
    pub fn cert_pem(&self) -> String {
        let mut out = String::new();
        for c in &self.key.cert {
            out.push_str("-----BEGIN CERTIFICATE-----\n");
            let b64 = base64(c.as_ref());
            for chunk in b64.as_bytes().chunks(64) {
                out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
                out.push('\n');
            }
            out.push_str("-----END CERTIFICATE-----\n");
        }
        out
    }
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Accepts exactly the certificates whose fingerprint the peer announced in SDP; the
/// handshake signatures are still verified with the certificate's key.
#[derive(Debug)]
pub struct Pinned {
    fingerprints: Vec<Fingerprint>,
    algs: WebPkiSupportedAlgorithms,
}

impl Pinned {
    pub fn new(fingerprints: Vec<Fingerprint>) -> Self {
        Pinned {
            fingerprints,
            algs: provider().signature_verification_algorithms,
        }
    }

    fn tls12(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn tls13(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn check(&self, end_entity: &CertificateDer<'_>) -> Result<(), rustls::Error> {
        if self.fingerprints.iter().any(|f| f.matches(end_entity)) {
            Ok(())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
    }
}

/// The signature checks both verifier traits ask for, the same for the UE as client or
/// server: the certificate is pinned, its signatures are checked as usual.
macro_rules! signature_checks {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.tls12(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            self.tls13(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.algs.supported_schemes()
        }
    };
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ServerCertVerified::assertion())
    }

    signature_checks!();
}

impl ClientCertVerifier for Pinned {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.check(end_entity)
            .map(|()| ClientCertVerified::assertion())
    }

    signature_checks!();
}

#[derive(Debug)]
struct FixedKey(Arc<CertifiedKey>);

impl rustls::server::ResolvesServerCert for FixedKey {
    fn resolve(&self, _: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

impl rustls::client::ResolvesClientCert for FixedKey {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A leg's TLS setup, built by the control thread and handed to the worker with `Start`.
#[derive(Clone)]
pub enum TlsConfig {
    /// The AGW is the TLS client (its TCP side is active); it connects to `server`.
    Client(Arc<ClientConfig>, IpAddr),
    /// The AGW is the TLS server and requires the UE's certificate.
    Server(Arc<ServerConfig>),
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfig::Client(_, ip) => write!(f, "TlsConfig::Client({ip})"),
            TlsConfig::Server(_) => write!(f, "TlsConfig::Server"),
        }
    }
}

impl PartialEq for TlsConfig {
    fn eq(&self, o: &Self) -> bool {
        match (self, o) {
            (TlsConfig::Client(a, x), TlsConfig::Client(b, y)) => Arc::ptr_eq(a, b) && x == y,
            (TlsConfig::Server(a), TlsConfig::Server(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for TlsConfig {}

impl TlsConfig {
    /// TLS for one leg: our identity, the peer pinned by `fingerprints`; TLS 1.2 and 1.3.
    pub fn new(
        identity: &Identity,
        client: Option<IpAddr>,
        fingerprints: Vec<Fingerprint>,
    ) -> Result<TlsConfig, TlsError> {
        Self::with_versions(
            identity,
            client,
            fingerprints,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        )
    }

    /// As `new`, with the protocol versions given.
    pub fn with_versions(
        identity: &Identity,
        client: Option<IpAddr>,
        fingerprints: Vec<Fingerprint>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Result<TlsConfig, TlsError> {
        if fingerprints.is_empty() {
            return Err(TlsError::Config(
                "no a=fingerprint for the peer's certificate".into(),
            ));
        }
        let pinned = Arc::new(Pinned::new(fingerprints));
        let resolver = Arc::new(FixedKey(Arc::clone(&identity.key)));
        let bad = |e: rustls::Error| TlsError::Config(e.to_string());
        Ok(match client {
            Some(server) => {
                let mut cfg = ClientConfig::builder_with_provider(provider())
                    .with_protocol_versions(versions)
                    .map_err(bad)?
                    .dangerous()
                    .with_custom_certificate_verifier(pinned)
                    .with_client_cert_resolver(resolver);
                // Every session is pinned to the fingerprints of its own SDP: none resumes
                // another's, so no ticket is kept (a config serves one termination).
                cfg.resumption = rustls::client::Resumption::disabled();
                TlsConfig::Client(Arc::new(cfg), server)
            }
            None => {
                let mut cfg = ServerConfig::builder_with_provider(provider())
                    .with_protocol_versions(versions)
                    .map_err(bad)?
                    .with_client_cert_verifier(pinned)
                    .with_cert_resolver(resolver);
                // No resumption: a resumed session would skip the certificate this
                // termination's SDP pins, and a config serves one connection anyway. So no
                // session tickets (rustls sends two after each TLS 1.3 handshake by default)
                // and no session cache.
                cfg.send_tls13_tickets = 0;
                cfg.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
                TlsConfig::Server(Arc::new(cfg))
            }
        })
    }
}

/// Reads TLS bytes out of a socket's receive buffer.
struct SocketReader<'a, 'b>(&'a mut tcp::Socket<'b>);

impl io::Read for SocketReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.0.recv_slice(buf) {
            Ok(0) if !self.0.may_recv() => Ok(0),
            Ok(0) => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => Ok(n),
            // Closed by the peer and drained.
            Err(_) => Ok(0),
        }
    }
}

/// Writes TLS bytes into a socket's send buffer.
struct SocketWriter<'a, 'b>(&'a mut tcp::Socket<'b>);

impl io::Write for SocketWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.send_slice(buf) {
            Ok(0) if !buf.is_empty() => Err(io::ErrorKind::WouldBlock.into()),
            Ok(n) => Ok(n),
            Err(_) => Err(io::ErrorKind::BrokenPipe.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Why a session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The peer's certificate does not match any announced fingerprint.
    Fingerprint,
    /// The peer sent no certificate.
    NoCertificate,
    /// Anything else in the handshake or the records (bad message, alert, decrypt error).
    Protocol,
    /// The handshake did not finish in time.
    Timeout,
    /// TCP ended during the handshake.
    Closed,
}

impl From<&rustls::Error> for TlsFailure {
    fn from(e: &rustls::Error) -> Self {
        match e {
            rustls::Error::InvalidCertificate(_) => TlsFailure::Fingerprint,
            rustls::Error::NoCertificatesPresented => TlsFailure::NoCertificate,
            _ => TlsFailure::Protocol,
        }
    }
}

/// One leg's TLS session over its socket.
pub struct TlsSession {
    conn: Connection,
    /// The peer sent close_notify, or TCP ended.
    peer_closed: bool,
    /// Decrypted bytes waiting to be read.
    pending: usize,
    close_sent: bool,
}

impl TlsSession {
    pub fn new(cfg: &TlsConfig) -> Result<TlsSession, rustls::Error> {
        let mut conn: Connection = match cfg {
            TlsConfig::Client(c, ip) => {
                ClientConnection::new(Arc::clone(c), ServerName::IpAddress((*ip).into()))?.into()
            }
            TlsConfig::Server(c) => ServerConnection::new(Arc::clone(c))?.into(),
        };
        conn.set_buffer_limit(Some(PLAINTEXT_LIMIT));
        Ok(TlsSession {
            conn,
            peer_closed: false,
            pending: 0,
            close_sent: false,
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.conn.protocol_version()
    }

    /// Takes TLS records from the socket while rustls wants them (it stops wanting them while
    /// decrypted plaintext waits to be forwarded). On error the alert is queued for
    /// `transmit`.
    pub fn receive(&mut self, sock: &mut tcp::Socket<'_>) -> Result<usize, rustls::Error> {
        let mut total = 0;
        while self.conn.wants_read() {
            let n = match self.conn.read_tls(&mut SocketReader(sock)) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => {
                    return Err(rustls::Error::General("TLS record buffer full".into()));
                }
            };
            let state = self.conn.process_new_packets()?;
            self.pending = state.plaintext_bytes_to_read();
            if state.peer_has_closed() {
                self.peer_closed = true;
            }
            if n == 0 {
                // TCP ended: without close_notify during the handshake that is a failure,
                // after it the plaintext stream simply ends.
                self.peer_closed = true;
                break;
            }
            total += n;
        }
        Ok(total)
    }

    /// Writes pending TLS records into the socket as far as it has room.
    pub fn transmit(&mut self, sock: &mut tcp::Socket<'_>) -> usize {
        let mut total = 0;
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut SocketWriter(sock)) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
        total
    }

    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Decrypted bytes into `buf`; 0 when none are waiting.
    pub fn read_plaintext(&mut self, buf: &mut [u8]) -> usize {
        use io::Read;
        if self.pending == 0 || buf.is_empty() {
            return 0;
        }
        match self.conn.reader().read(buf) {
            Ok(n) => {
                self.pending = self.pending.saturating_sub(n);
                if n == 0 {
                    self.pending = 0;
                }
                n
            }
            Err(_) => {
                self.pending = 0;
                0
            }
        }
    }

    /// The peer's stream has ended (close_notify or TCP FIN) and nothing is left to read.
    pub fn peer_done(&self) -> bool {
        self.peer_closed && self.pending == 0
    }

    /// Plaintext to send; returns what was taken (bounded by the buffer limit).
    pub fn write_plaintext(&mut self, data: &[u8]) -> usize {
        use io::Write;
        if self.close_sent {
            return 0;
        }
        self.conn.writer().write(data).unwrap_or(0)
    }

    /// Sends close_notify (once).
    pub fn close(&mut self) {
        if !self.close_sent {
            self.close_sent = true;
            self.conn.send_close_notify();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_print_and_match() {
        let der = b"not really a certificate";
        for alg in [
            HashAlg::Sha1,
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let f = Fingerprint::of(alg, der);
            let text = f.to_string();
            assert!(text.starts_with(alg.name()), "{text}");
            let back = Fingerprint::parse(&text).unwrap();
            assert_eq!(back, f);
            assert!(back.matches(der));
            assert!(!back.matches(b"another"));
        }
        assert!(Fingerprint::parse("sha-256 AB:CD").is_err(), "too short");
        assert!(Fingerprint::parse("md5 AB").is_err());
        assert!(Fingerprint::parse(
            "sha-1 zz:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00:00"
        )
        .is_err());
        assert!(Fingerprint::parse("").is_err());
    }

    #[test]
    fn every_termination_shares_the_process_crypto_provider() {
        let a = Identity::generate("agw").unwrap();
        let fp = vec![a.fingerprint(HashAlg::Sha256)];
        let providers: Vec<_> = [
            None,
            None,
            Some(IpAddr::from(std::net::Ipv4Addr::LOCALHOST)),
        ]
        .into_iter()
        .map(
            |client| match TlsConfig::new(&a, client, fp.clone()).unwrap() {
                TlsConfig::Server(c) => Arc::clone(c.crypto_provider()),
                TlsConfig::Client(c, _) => Arc::clone(c.crypto_provider()),
            },
        )
        .collect();
        assert!(Arc::ptr_eq(&providers[0], &providers[1]));
        assert!(Arc::ptr_eq(&providers[0], &providers[2]));
    }

    #[test]
    fn a_second_connection_with_the_same_configs_is_a_full_handshake_again() {
        // No ticket is issued or kept: every session proves the certificate its SDP pins.
        let (agw, ue) = (
            Identity::generate("agw").unwrap(),
            Identity::generate("ue").unwrap(),
        );
        let ip = IpAddr::from([198, 18, 1, 10]);
        let (TlsConfig::Server(server), TlsConfig::Client(client, _)) = (
            TlsConfig::new(&agw, None, vec![ue.fingerprint(HashAlg::Sha256)]).unwrap(),
            TlsConfig::new(&ue, Some(ip), vec![agw.fingerprint(HashAlg::Sha256)]).unwrap(),
        ) else {
            panic!("a server and a client config");
        };
        assert_eq!(server.send_tls13_tickets, 0);
        for _ in 0..2 {
            let name = ServerName::IpAddress(ip.into());
            let mut c: Connection = ClientConnection::new(Arc::clone(&client), name)
                .unwrap()
                .into();
            let mut s: Connection = ServerConnection::new(Arc::clone(&server)).unwrap().into();
            fn flight(from: &mut Connection, to: &mut Connection) {
                let mut buf = Vec::new();
                while from.wants_write() {
                    from.write_tls(&mut buf).unwrap();
                }
                let mut r = &buf[..];
                while !r.is_empty() {
                    to.read_tls(&mut r).unwrap();
                    to.process_new_packets().unwrap();
                }
            }
            for _ in 0..10 {
                flight(&mut c, &mut s);
                flight(&mut s, &mut c);
            }
            assert!(!c.is_handshaking() && !s.is_handshaking());
            assert_eq!(c.handshake_kind(), Some(rustls::HandshakeKind::Full));
            assert_eq!(s.handshake_kind(), Some(rustls::HandshakeKind::Full));
        }
    }

    #[test]
    fn generated_identities_have_their_own_fingerprints() {
        let a = Identity::generate("agw").unwrap();
        let b = Identity::generate("agw").unwrap();
        assert_ne!(
            a.fingerprint(HashAlg::Sha256),
            b.fingerprint(HashAlg::Sha256)
        );
        let pem = a.cert_pem();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let certs: Vec<_> = rustls_pemfile::certs(&mut pem.as_bytes()).collect();
        assert_eq!(certs.len(), 1);
        assert_eq!(
            Fingerprint::of(HashAlg::Sha256, certs[0].as_ref().unwrap()),
            a.fingerprint(HashAlg::Sha256)
        );
        assert!(
            TlsConfig::new(&a, None, vec![]).is_err(),
            "no fingerprint, no TLS"
        );
        assert!(TlsConfig::new(&a, None, vec![b.fingerprint(HashAlg::Sha256)]).is_ok());
    }

    #[test]
    fn base64_matches_known_vectors() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }
}
