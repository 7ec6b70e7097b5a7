//! TLS for the TCP transport, as libvirt does it: X.509 certificates in libvirt's file
//! layout, the client's certificate checked against the CA and its distinguished name
//! against `tls_allowed_dn_list` once the handshake is done, then one byte (`\x01`) sent
//! inside TLS to say the client passed — a refused client sees its connection close before
//! that byte, which libvirt's client reports as "server verification (of our certificate
//! or IP address) failed". The RPC stream follows as on a UNIX socket.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The byte the server sends once the client's certificate passed its checks.
pub const CONFIRM: u8 = 1;

/// The default port of `listen_tls` (`tls_port`).
pub const DEFAULT_TLS_PORT: u16 = 16514;
/// The default port of `listen_tcp` (`tcp_port`).
pub const DEFAULT_TCP_PORT: u16 = 16509;

/// What can go wrong setting up or running TLS.
#[derive(Debug, Error)]
pub enum TlsError {
    #[error("Cannot read {what} '{path}': {err}")]
    Read {
        what: &'static str,
        path: PathBuf,
        err: String,
    },
    #[error("{0}")]
    Certificate(String),
    #[error("TLS handshake failed: {0}")]
    Handshake(String),
    #[error("server verification (of our certificate or IP address) failed")]
    NotConfirmed,
    #[error("{0}")]
    Refused(String),
    #[error("TLS handshake timed out")]
    Timeout,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Fills `buf` with random bytes from the TLS provider's generator.
pub fn random(buf: &mut [u8]) -> Result<(), TlsError> {
    provider()
        .secure_random
        .fill(buf)
        .map_err(|_| TlsError::Certificate("no random numbers available".into()))
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |e: String| TlsError::Read {
        what,
        path: path.to_path_buf(),
        err: e,
    };
    std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(certs)
}

fn read_key(what: &'static str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let err = |e: String| TlsError::Read {
        what,
        path: path.to_path_buf(),
        err: e,
    };
    std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| err(e.to_string()))
}

fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for c in read_certs("CA certificate", ca)? {
        store.add(c).map_err(|e| {
            TlsError::Certificate(format!(
                "The CA certificate {} is unusable: {e}",
                ca.display()
            ))
        })?;
    }
    Ok(store)
}

/// A certificate's subject as libvirt shows it (GnuTLS's form: the attributes in the
/// certificate's order, `C=GB,O=Example,CN=client1`).
pub fn distinguished_name(cert: &[u8]) -> Option<String> {
    let (_, c) = x509_parser::parse_x509_certificate(cert).ok()?;
    let mut parts = Vec::new();
    for rdn in c.subject().iter() {
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let key = match oid.as_str() {
                "2.5.4.6" => "C".to_string(),
                "2.5.4.8" => "ST".to_string(),
                "2.5.4.7" => "L".to_string(),
                "2.5.4.10" => "O".to_string(),
                "2.5.4.11" => "OU".to_string(),
                "2.5.4.3" => "CN".to_string(),
                "2.5.4.5" => "serialNumber".to_string(),
                "2.5.4.9" => "street".to_string(),
                "0.9.2342.19200300.100.1.25" => "DC".to_string(),
                "0.9.2342.19200300.100.1.1" => "UID".to_string(),
                "1.2.840.113549.1.9.1" => "EMAIL".to_string(),
                _ => oid,
            };
            let value = atv
                .as_str()
                .map(escape_dn_value)
                .unwrap_or_else(|_| format!("#{}", hex(atv.attr_value().data)));
            parts.push(format!("{key}={value}"));
        }
    }
    Some(parts.join(","))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// RFC 4514's escaping of an attribute value.
fn escape_dn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == ' ' || c == '#'))
            || (i + 1 == n && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Shell-style wildcard matching as `fnmatch(3)` with no flags does it (`*`, `?`, `[...]`
/// with ranges and `!`/`^`, `\` escapes): how libvirt matches `tls_allowed_dn_list` and
/// `sasl_allowed_username_list`.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matching with one backtrack point for the last `*`.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        let step = match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
                continue;
            }
            Some('?') => Some(pi + 1),
            Some('[') => match class(&p, pi, t[ti]) {
                Some((true, next)) => Some(next),
                Some((false, _)) => None,
                // An unterminated bracket is a plain '['.
                None => (t[ti] == '[').then_some(pi + 1),
            },
            Some('\\') if pi + 1 < p.len() => (p[pi + 1] == t[ti]).then_some(pi + 2),
            Some(&c) => (c == t[ti]).then_some(pi + 1),
            None => None,
        };
        match step {
            Some(next) => {
                pi = next;
                ti += 1;
            }
            None => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Matches `c` against the bracket expression at `p[start]`: (matched, index after it), or
/// None when the bracket is not closed.
fn class(p: &[char], start: usize, c: char) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(p.get(i), Some('!') | Some('^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let ch = *p.get(i)?;
        if ch == ']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        let lo = if ch == '\\' {
            i += 1;
            *p.get(i)?
        } else {
            ch
        };
        if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|&h| h != ']') {
            let hi = *p.get(i + 2)?;
            if lo <= c && c <= hi {
                matched = true;
            }
            i += 3;
        } else {
            if lo == c {
                matched = true;
            }
            i += 1;
        }
    }
}

/// The server's certificate files, as `key_file`, `cert_file`, `ca_file` and `crl_file`
/// name them.
#[derive(Debug, Clone)]
pub struct ServerFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub crl: Option<PathBuf>,
}

impl ServerFiles {
    /// libvirt's places under `pki` (`/etc/pki` for the system daemons, `ROOT/etc/pki`
    /// under `--root`): `CA/cacert.pem`, `CA/cacrl.pem` (if it exists),
    /// `libvirt/servercert.pem`, `libvirt/private/serverkey.pem`.
    pub fn system(pki: &Path) -> ServerFiles {
        let crl = pki.join("CA/cacrl.pem");
        ServerFiles {
            ca: pki.join("CA/cacert.pem"),
            cert: pki.join("libvirt/servercert.pem"),
            key: pki.join("libvirt/private/serverkey.pem"),
            crl: crl.exists().then_some(crl),
        }
    }

    /// A session daemon's: `DIR/cacert.pem`, `DIR/servercert.pem`, `DIR/serverkey.pem`
    /// (libvirt's `$HOME/.pki/libvirt`).
    pub fn in_dir(dir: &Path) -> ServerFiles {
        let crl = dir.join("cacrl.pem");
        ServerFiles {
            ca: dir.join("cacert.pem"),
            cert: dir.join("servercert.pem"),
            key: dir.join("serverkey.pem"),
            crl: crl.exists().then_some(crl),
        }
    }
}

/// How the server treats client certificates.
#[derive(Debug, Clone, Default)]
pub struct ServerPolicy {
    /// `tls_no_verify_certificate`: accept any client, with or without a certificate.
    pub no_verify: bool,
    /// `tls_allowed_dn_list`: wildcards a client's DN must match (`None`: any DN).
    pub allowed_dn: Option<Vec<String>>,
    /// `tls_no_sanity_certificate`: skip the check of our own certificate at start.
    pub no_sanity: bool,
}

/// Verifies the client's certificate only after the handshake (see [`TlsAcceptor::accept`]):
/// the handshake itself still checks that the client holds the certificate's key.
struct Deferred {
    inner: Arc<dyn ClientCertVerifier>,
}

impl fmt::Debug for Deferred {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deferred")
    }
}

impl ClientCertVerifier for Deferred {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        false
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        // Checked in full once the handshake is over, before anything is served.
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client that passed the server's checks.
#[derive(Debug, Clone, Default)]
pub struct PeerCert {
    /// The distinguished name of its certificate, if it sent one.
    pub dname: Option<String>,
}

/// The server side: the configuration made once, and the handshake with each client.
pub struct TlsAcceptor {
    acceptor: tokio_rustls::TlsAcceptor,
    verifier: Arc<dyn ClientCertVerifier>,
    policy: ServerPolicy,
    /// A client that has not finished its handshake by then is dropped.
    pub handshake_timeout: Duration,
}

impl TlsAcceptor {
    /// Loads the files and checks our own certificate (dates, and that the CA signed it),
    /// as libvirt does before it listens.
    pub fn new(files: &ServerFiles, policy: ServerPolicy) -> Result<TlsAcceptor, TlsError> {
        let roots = Arc::new(roots(&files.ca)?);
        let certs = read_certs("server certificate", &files.cert)?;
        let key = read_key("server key", &files.key)?;
        let mut crls = Vec::new();
        if let Some(crl) = &files.crl {
            crls = CertificateRevocationListDer::pem_file_iter(crl)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| TlsError::Read {
                    what: "certificate revocation list",
                    path: crl.clone(),
                    err: e.to_string(),
                })?;
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), provider())
            .with_crls(crls)
            .build()
            .map_err(|e| TlsError::Certificate(format!("cannot verify clients: {e}")))?;
        if !policy.no_sanity {
            check_own(&certs, &roots, &files.cert, &files.ca, true)?;
        }
        let deferred: Arc<dyn ClientCertVerifier> = Arc::new(Deferred {
            inner: Arc::clone(&verifier),
        });
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Certificate(e.to_string()))?
            .with_client_cert_verifier(deferred)
            .with_single_cert(certs, key)
            .map_err(|e| {
                TlsError::Certificate(format!(
                    "The server certificate {} and key {} cannot be used: {e}",
                    files.cert.display(),
                    files.key.display()
                ))
            })?;
        // No TLS 1.3 session tickets: libvirt's client reads exactly one record after the
        // handshake, the confirmation byte, and a ticket in its place makes it fail.
        let mut config = config;
        config.send_tls13_tickets = 0;
        Ok(TlsAcceptor {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            verifier,
            policy,
            handshake_timeout: Duration::from_secs(30),
        })
    }

    /// The handshake with one client, then libvirt's checks of its certificate and the
    /// confirmation byte. A client refused by the checks gets its connection closed.
    pub async fn accept(
        &self,
        tcp: TcpStream,
    ) -> Result<(tokio_rustls::server::TlsStream<TcpStream>, PeerCert), TlsError> {
        let work = async {
            let mut tls = self
                .acceptor
                .accept(tcp)
                .await
                .map_err(|e| TlsError::Handshake(e.to_string()))?;
            let peer = match self.check(tls.get_ref().1.peer_certificates()) {
                Ok(p) => p,
                Err(e) => {
                    // Closed without the confirmation byte, as libvirtd does.
                    let _ = tls.shutdown().await;
                    return Err(e);
                }
            };
            tls.write_all(&[CONFIRM]).await?;
            tls.flush().await?;
            Ok((tls, peer))
        };
        tokio::time::timeout(self.handshake_timeout, work)
            .await
            .map_err(|_| TlsError::Timeout)?
    }

    fn check(&self, certs: Option<&[CertificateDer<'static>]>) -> Result<PeerCert, TlsError> {
        let certs = certs.unwrap_or(&[]);
        let dname = certs.first().and_then(|c| distinguished_name(c));
        if self.policy.no_verify {
            return Ok(PeerCert { dname });
        }
        let Some(ee) = certs.first() else {
            return Err(TlsError::Refused(
                "No certificate was presented by the peer".into(),
            ));
        };
        self.verifier
            .verify_client_cert(ee, &certs[1..], UnixTime::now())
            .map_err(|e| TlsError::Refused(format!("The client certificate is not valid: {e}")))?;
        if let Some(allowed) = &self.policy.allowed_dn {
            let dn = dname.clone().unwrap_or_default();
            if !allowed.iter().any(|w| wildcard_match(w, &dn)) {
                return Err(TlsError::Refused(format!(
                    "Client's Distinguished Name '{dn}' is not on the list of allowed clients (tls_allowed_dn_list)"
                )));
            }
        }
        Ok(PeerCert { dname })
    }
}

/// libvirt's sanity check of our own certificate: in its validity period and signed by the
/// CA.
fn check_own(
    certs: &[CertificateDer<'static>],
    roots: &Arc<RootCertStore>,
    cert_path: &Path,
    ca_path: &Path,
    server: bool,
) -> Result<(), TlsError> {
    let who = if server { "server" } else { "client" };
    let Some(ee) = certs.first() else {
        return Ok(());
    };
    if let Ok((_, c)) = x509_parser::parse_x509_certificate(ee) {
        let now = x509_parser::time::ASN1Time::now();
        if c.validity().not_after < now {
            return Err(TlsError::Certificate(format!(
                "The {who} certificate {} has expired",
                cert_path.display()
            )));
        }
        if c.validity().not_before > now {
            return Err(TlsError::Certificate(format!(
                "The {who} certificate {} is not yet active",
                cert_path.display()
            )));
        }
    }
    let v = WebPkiClientVerifier::builder_with_provider(Arc::clone(roots), provider())
        .build()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    // The chain check is the same for either purpose; only the signatures matter here.
    if let Err(e) = v.verify_client_cert(ee, &certs[1..], UnixTime::now()) {
        let purpose_only = matches!(
            e,
            rustls::Error::InvalidCertificate(
                rustls::CertificateError::InvalidPurpose
                    | rustls::CertificateError::InvalidPurposeContext { .. }
            )
        );
        if !purpose_only {
            return Err(TlsError::Certificate(format!(
                "Our own certificate {} failed validation against {}: {e}",
                cert_path.display(),
                ca_path.display()
            )));
        }
    }
    Ok(())
}

/// The client's certificate files.
#[derive(Debug, Clone)]
pub struct ClientFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl ClientFiles {
    /// Where libvirt's client looks: `pkipath=DIR` (`DIR/cacert.pem`, `DIR/clientcert.pem`,
    /// `DIR/clientkey.pem`); else as root `/etc/pki/CA/cacert.pem`,
    /// `/etc/pki/libvirt/clientcert.pem`, `/etc/pki/libvirt/private/clientkey.pem`; else
    /// `$HOME/.pki/libvirt/{cacert,clientcert,clientkey}.pem` where they exist, the system
    /// files for those that do not.
    pub fn locate(pkipath: Option<&Path>, root: bool) -> ClientFiles {
        if let Some(d) = pkipath {
            return ClientFiles {
                ca: d.join("cacert.pem"),
                cert: d.join("clientcert.pem"),
                key: d.join("clientkey.pem"),
            };
        }
        let sys = ClientFiles {
            ca: PathBuf::from("/etc/pki/CA/cacert.pem"),
            cert: PathBuf::from("/etc/pki/libvirt/clientcert.pem"),
            key: PathBuf::from("/etc/pki/libvirt/private/clientkey.pem"),
        };
        if root {
            return sys;
        }
        let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
            return sys;
        };
        let user = home.join(".pki/libvirt");
        let pick = |name: &str, fallback: PathBuf| {
            let p = user.join(name);
            if p.exists() {
                p
            } else {
                fallback
            }
        };
        ClientFiles {
            ca: pick("cacert.pem", sys.ca.clone()),
            cert: pick("clientcert.pem", sys.cert.clone()),
            key: pick("clientkey.pem", sys.key.clone()),
        }
    }
}

/// Accepts any server certificate (`no_verify=1`); the handshake's signatures are still
/// checked.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Connects to `host:port` over TLS with the client's certificate (when its files exist),
/// checks the server's certificate against the CA and the host name (unless `no_verify`),
/// and reads the server's confirmation byte. Before connecting, our own certificate is
/// checked as libvirt's client checks it (unless `no_sanity`): in its validity period and
/// signed by the CA.
pub async fn connect(
    host: &str,
    port: u16,
    files: &ClientFiles,
    no_verify: bool,
    no_sanity: bool,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, TlsError> {
    let p = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&p))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Certificate(e.to_string()))?;
    let builder = if no_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(Arc::clone(&p))))
    } else {
        builder.with_root_certificates(roots(&files.ca)?)
    };
    let config = if files.cert.exists() || files.key.exists() {
        let certs = read_certs("client certificate", &files.cert)?;
        let key = read_key("client key", &files.key)?;
        if !no_sanity {
            check_own(
                &certs,
                &Arc::new(roots(&files.ca)?),
                &files.cert,
                &files.ca,
                false,
            )?;
        }
        builder.with_client_auth_cert(certs, key).map_err(|e| {
            TlsError::Certificate(format!(
                "The client certificate {} and key {} cannot be used: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?
    } else {
        builder.with_no_client_auth()
    };
    let name = ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
        .map_err(|e| TlsError::Certificate(format!("invalid host name '{host}': {e}")))?
        .to_owned();
    let tcp =
        TcpStream::connect((host.trim_start_matches('[').trim_end_matches(']'), port)).await?;
    let _ = tcp.set_nodelay(true);
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
    let mut b = [0u8; 1];
    match tls.read(&mut b).await {
        Ok(1) if b[0] == CONFIRM => Ok(tls),
        _ => Err(TlsError::NotConfirmed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_as_fnmatch() {
        let dn = "C=GB,ST=London,L=London,O=Libvirt Project,CN=client1";
        assert!(wildcard_match(dn, dn));
        assert!(wildcard_match("C=GB,*,CN=client1", dn));
        assert!(wildcard_match("*CN=client?", dn));
        assert!(wildcard_match("*CN=client[0-9]", dn));
        assert!(!wildcard_match("*CN=client[!0-9]", dn));
        assert!(!wildcard_match("C=GB,*,CN=client2", dn));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("a", ""));
        assert!(wildcard_match("a\\*b", "a*b"));
        assert!(!wildcard_match("a\\*b", "axb"));
        assert!(wildcard_match("[", "["));
        assert!(wildcard_match("*a*b*c", "xxaybzzc"));
        assert!(!wildcard_match("*a*b*c", "xxaybzz"));
    }

    #[test]
    fn dn_in_certificate_order() {
        let mut p = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "GB");
        dn.push(rcgen::DnType::OrganizationName, "Example, Ltd");
        dn.push(rcgen::DnType::CommonName, "client1");
        p.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        let c = p.self_signed(&key).unwrap();
        assert_eq!(
            distinguished_name(c.der()).unwrap(),
            "C=GB,O=Example\\, Ltd,CN=client1"
        );
    }
}
