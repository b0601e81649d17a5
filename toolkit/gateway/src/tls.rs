//! TLS for the receiving endpoint: PEM certificate and key loading, rustls
//! server (and test client) configurations over the `ring` provider with
//! optional client-certificate verification, the subject of a client
//! certificate as an RFC 4514 string, and a test PKI (CA, server and client
//! certificates) generated with rcgen.
//!
//! Every configuration is built with [`crypto_provider`] explicitly, so the
//! process-wide default provider is never consulted.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// What can go wrong loading PEM files or building TLS configurations.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {path}: {detail}")]
    Pem {
        /// Which file.
        path: PathBuf,
        /// `certificates` or `private key`.
        what: &'static str,
        /// Why.
        detail: String,
    },
    /// rustls refused the certificates or key.
    #[error("{context}: {error}")]
    Rustls {
        /// What was being built.
        context: &'static str,
        /// rustls' reason.
        error: rustls::Error,
    },
    /// The client-certificate verifier could not be built (e.g. a CA file
    /// with no usable trust anchor).
    #[error("client CA: {0}")]
    ClientVerifier(String),
    /// rcgen could not generate a certificate or key.
    #[error("generating test certificates: {0}")]
    Generate(rcgen::Error),
}

// (Not `#[from]`: the message shows the cause, so it is not also the
// `source`, or an error chain printer says it twice.)
impl From<rcgen::Error> for TlsError {
    fn from(e: rcgen::Error) -> Self {
        TlsError::Generate(e)
    }
}

/// The one crypto provider this crate uses: `ring`.
pub(crate) fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate in a PEM file (a chain: leaf first). Fails when
/// the file has none.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |detail: String| TlsError::Pem {
        path: path.to_path_buf(),
        what: "certificates",
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| pem_error(e.to_string()))?;
    let certs = parse_certs(&bytes).map_err(|e| pem_error(e.to_string()))?;
    Ok(certs)
}

/// Why PEM text gave no certificates.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CertsError {
    /// The text is not well-formed PEM.
    #[error("bad PEM: {0}")]
    Pem(rustls_pki_types::pem::Error),
    /// Well-formed, but without a certificate.
    #[error("no `-----BEGIN CERTIFICATE-----` section found")]
    NoCertificate,
}

/// Parses every `CERTIFICATE` section of PEM text; fails when there is none.
pub(crate) fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, CertsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(CertsError::Pem)?;
    if certs.is_empty() {
        return Err(CertsError::NoCertificate);
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: "private key",
        detail: e.to_string(),
    })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_path_buf(),
        what: "private key",
        detail: format!("{e} (expected a `-----BEGIN PRIVATE KEY-----` section)"),
    })
}

/// A rustls server configuration for `chain`/`key`, offering `alpn`.
///
/// With `client_ca`, clients *may* present a certificate, which must chain
/// to one of those CAs or the handshake fails; clients without one are
/// let through to HTTP, where the receiver answers 401 unless a bearer token
/// authenticates them. The verified chain is then available from the
/// connection (`peer_certificates`).
pub(crate) fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&[CertificateDer<'static>]>,
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(chain, key, client_ca, alpn, rustls::DEFAULT_VERSIONS)
}

/// The TCPCL listener's TLS configuration: TLS 1.3 only (RFC 9174 §4.4
/// requires 1.3 or later), no client certificate, and 0.5-RTT data on:
/// the listener's SESS_INIT leaves with its Finished, a round trip before
/// the client's Finished arrives (it carries nothing the client has not
/// already been promised: our node ID and limits).
pub(crate) fn tcpcl_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let config = server_config_with(chain, key, None, &[], &[&rustls::version::TLS13])?;
    let mut config = Arc::unwrap_or_clone(config);
    config.send_half_rtt_data = true;
    Ok(Arc::new(config))
}

fn server_config_with(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<&[CertificateDer<'static>]>,
    alpn: &[&[u8]],
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|error| TlsError::Rustls {
            context: "TLS protocol versions",
            error,
        })?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots.add(ca.clone()).map_err(|e| {
                    TlsError::ClientVerifier(format!("unusable CA certificate: {e}"))
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::ClientVerifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|error| TlsError::Rustls {
            context: "server certificate and key",
            error,
        })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A rustls client configuration trusting only `roots`, optionally
/// presenting a client certificate, offering `alpn`. For tests and for
/// senders that talk to a gateway with a private CA.
pub fn client_config(
    roots: &[CertificateDer<'static>],
    client_identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let mut store = RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).map_err(|error| TlsError::Rustls {
            context: "trust anchor",
            error,
        })?;
    }
    let builder = ClientConfig::builder_with_provider(crypto_provider())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::Rustls {
            context: "TLS protocol versions",
            error,
        })?
        .with_root_certificates(store);
    let mut config = match client_identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| TlsError::Rustls {
                    context: "client certificate and key",
                    error,
                })?
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The subject of a DER certificate as an RFC 4514 string, e.g.
/// `CN=earth-gw,O=deepmail test`; `None` when the DER does not parse.
pub(crate) fn certificate_subject(cert: &[u8]) -> Option<String> {
    let (tag, certificate, _) = der::read(cert)?;
    if tag != der::SEQUENCE {
        return None;
    }
    let (tag, tbs, _) = der::read(certificate)?;
    if tag != der::SEQUENCE {
        return None;
    }
    let mut rest = tbs;
    let (tag, _, after) = der::read(rest)?;
    if tag == 0xA0 {
        rest = after; // explicit [0] version
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = der::read(rest)?.2;
    }
    let (tag, subject, _) = der::read(rest)?;
    if tag != der::SEQUENCE {
        return None;
    }
    der::format_name(subject)
}

/// Just enough DER to read a certificate's subject name.
mod der {
    pub(super) const SEQUENCE: u8 = 0x30;
    const SET: u8 = 0x31;
    const OID: u8 = 0x06;

    /// One TLV: (tag, content, rest).
    pub(super) fn read(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
        let (&tag, rest) = input.split_first()?;
        let (&first, rest) = rest.split_first()?;
        let (len, rest) = if first < 0x80 {
            (usize::from(first), rest)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 4 || rest.len() < n {
                return None;
            }
            let len = rest[..n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (len, &rest[n..])
        };
        if rest.len() < len {
            return None;
        }
        Some((tag, &rest[..len], &rest[len..]))
    }

    fn oid_name(oid: &[u8]) -> String {
        match oid {
            [0x55, 0x04, 0x03] => "CN".into(),
            [0x55, 0x04, 0x06] => "C".into(),
            [0x55, 0x04, 0x07] => "L".into(),
            [0x55, 0x04, 0x08] => "ST".into(),
            [0x55, 0x04, 0x09] => "STREET".into(),
            [0x55, 0x04, 0x0A] => "O".into(),
            [0x55, 0x04, 0x0B] => "OU".into(),
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x19] => "DC".into(),
            [0x09, 0x92, 0x26, 0x89, 0x93, 0xF2, 0x2C, 0x64, 0x01, 0x01] => "UID".into(),
            _ => dotted(oid),
        }
    }

    fn dotted(oid: &[u8]) -> String {
        let mut arcs = Vec::new();
        let mut value: u64 = 0;
        for &b in oid {
            value = (value << 7) | u64::from(b & 0x7f);
            if b & 0x80 == 0 {
                if arcs.is_empty() {
                    let first = (value / 40).min(2);
                    arcs.push(first);
                    arcs.push(value - first * 40);
                } else {
                    arcs.push(value);
                }
                value = 0;
            }
        }
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    }

    fn value_text(tag: u8, value: &[u8]) -> Option<String> {
        match tag {
            // UTF8String, PrintableString, IA5String, VisibleString
            0x0C | 0x13 | 0x16 | 0x1A => String::from_utf8(value.to_vec()).ok(),
            // TeletexString, read as Latin-1
            0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
            // BMPString
            0x1E if value.len().is_multiple_of(2) => String::from_utf16(
                &value
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect::<Vec<_>>(),
            )
            .ok(),
            _ => None,
        }
    }

    /// RFC 4514 §2.4 escaping.
    fn escape(text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let last = text.chars().count().saturating_sub(1);
        for (i, c) in text.chars().enumerate() {
            let special = matches!(c, '"' | '+' | ',' | ';' | '<' | '>' | '\\')
                || (i == 0 && (c == '#' || c == ' '))
                || (i == last && c == ' ');
            if special {
                out.push('\\');
            }
            if c == '\0' {
                out.push_str("\\00");
            } else {
                out.push(c);
            }
        }
        out
    }

    /// A `Name` as RFC 4514 text (most specific RDN first).
    pub(super) fn format_name(mut name: &[u8]) -> Option<String> {
        let mut rdns = Vec::new();
        while !name.is_empty() {
            let (tag, set, rest) = read(name)?;
            if tag != SET {
                return None;
            }
            name = rest;
            let mut parts = Vec::new();
            let mut set = set;
            while !set.is_empty() {
                let (tag, atv, rest) = read(set)?;
                if tag != SEQUENCE {
                    return None;
                }
                set = rest;
                let (tag, oid, rest) = read(atv)?;
                if tag != OID {
                    return None;
                }
                let (value_tag, value, _) = read(rest)?;
                let text = match value_text(value_tag, value) {
                    Some(t) => escape(&t),
                    None => format!("#{}", hex::encode(rest)),
                };
                parts.push(format!("{}={}", oid_name(oid), text));
            }
            rdns.push(parts.join("+"));
        }
        rdns.reverse();
        Some(rdns.join(","))
    }
}

/// A test PKI: a CA, a server certificate for some names, and a client
/// certificate for mutual TLS, all as PEM. For tests and `deepmail certs`;
/// not for production (no revocation, ten-year lifetime from generation).
#[derive(Debug, Clone)]
pub struct TestPki {
    /// The CA certificate (trust anchor for both sides).
    pub ca_cert_pem: String,
    /// The CA's private key (PKCS#8).
    pub ca_key_pem: String,
    /// The server certificate, signed by the CA.
    pub server_cert_pem: String,
    /// The server's private key.
    pub server_key_pem: String,
    /// The client certificate, signed by the CA, for mutual TLS.
    pub client_cert_pem: String,
    /// The client's private key.
    pub client_key_pem: String,
}

/// The files [`TestPki::write_to`] writes, in order.
pub(crate) const TEST_PKI_FILES: [&str; 6] = [
    "ca.pem",
    "ca.key",
    "server.pem",
    "server.key",
    "client.pem",
    "client.key",
];

impl TestPki {
    /// Generates a CA (`CN=deepmail test CA`), a server certificate whose
    /// subject alternative names are `server_names` (DNS names or IP
    /// addresses) and a client certificate with `CN=<client_name>`. Keys are
    /// ECDSA P-256.
    pub fn generate(server_names: &[String], client_name: &str) -> Result<TestPki, TlsError> {
        let organisation = "deepmail test";
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name = distinguished_name("deepmail test CA", organisation);
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut ca_params);
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let ca = Issuer::new(ca_params, &ca_key);

        let server_cn = server_names
            .first()
            .map(String::as_str)
            .unwrap_or("localhost");
        let mut server_params = CertificateParams::new(server_names.to_vec())?;
        server_params.distinguished_name = distinguished_name(server_cn, organisation);
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut server_params);
        let server_key = KeyPair::generate()?;
        let server_cert = server_params.signed_by(&server_key, &ca)?;

        let mut client_params = CertificateParams::new(Vec::<String>::new())?;
        client_params.distinguished_name = distinguished_name(client_name, organisation);
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut client_params);
        let client_key = KeyPair::generate()?;
        let client_cert = client_params.signed_by(&client_key, &ca)?;

        Ok(TestPki {
            ca_cert_pem: ca_cert.pem(),
            ca_key_pem: ca_key.serialize_pem(),
            server_cert_pem: server_cert.pem(),
            server_key_pem: server_key.serialize_pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
        })
    }

    /// The CA certificate, DER.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        first_cert(&self.ca_cert_pem)
    }

    /// The server certificate chain and key, DER.
    pub fn server_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        identity(&self.server_cert_pem, &self.server_key_pem)
    }

    /// The client certificate chain and key, DER.
    pub fn client_identity(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        identity(&self.client_cert_pem, &self.client_key_pem)
    }

    /// Writes [`TEST_PKI_FILES`] into `dir` (created if missing); private
    /// keys are created with mode 0600. Returns the paths written.
    pub fn write_to(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::create_dir_all(dir)?;
        let contents = [
            &self.ca_cert_pem,
            &self.ca_key_pem,
            &self.server_cert_pem,
            &self.server_key_pem,
            &self.client_cert_pem,
            &self.client_key_pem,
        ];
        let mut written = Vec::new();
        for (name, text) in TEST_PKI_FILES.iter().zip(contents) {
            let path = dir.join(name);
            let private = name.ends_with(".key");
            write_file(&path, text.as_bytes(), if private { 0o600 } else { 0o644 })?;
            written.push(path);
        }
        Ok(written)
    }
}

fn distinguished_name(common_name: &str, organisation: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, organisation);
    dn
}

fn set_validity(params: &mut CertificateParams) {
    let now = rcgen::date_time_ymd(2000, 1, 1);
    let since_2000 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs().saturating_sub(946_684_800))
        .unwrap_or(0);
    let start = now + std::time::Duration::from_secs(since_2000.saturating_sub(3600));
    params.not_before = start;
    params.not_after = start + std::time::Duration::from_secs(10 * 365 * 86_400);
}

/// Only ever called on PEM this module generated.
fn first_cert(pem: &str) -> CertificateDer<'static> {
    parse_certs(pem.as_bytes())
        .ok()
        .and_then(|mut c| c.drain(..).next())
        .unwrap_or_else(|| CertificateDer::from(Vec::new()))
}

fn identity(
    cert_pem: &str,
    key_pem: &str,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let chain = parse_certs(cert_pem.as_bytes()).unwrap_or_default();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .unwrap_or_else(|_| PrivateKeyDer::Pkcs8(Vec::new().into()));
    (chain, key)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    // An existing file keeps its old mode on open: set it explicitly.
    file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::server::danger::ClientCertVerifier;
    use rustls_pki_types::UnixTime;

    fn pki() -> TestPki {
        TestPki::generate(
            &["gw.moon.example".to_string(), "127.0.0.1".to_string()],
            "earth-gw",
        )
        .unwrap()
    }

    fn verifier(ca: &CertificateDer<'static>) -> Arc<dyn ClientCertVerifier> {
        let mut roots = RootCertStore::empty();
        roots.add(ca.clone()).unwrap();
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
            .build()
            .unwrap()
    }

    #[test]
    fn generated_client_certificate_verifies_against_its_ca_only() {
        let a = pki();
        let b = pki();
        let (client_chain, _) = a.client_identity();
        let now = UnixTime::now();
        assert!(verifier(&a.ca_der())
            .verify_client_cert(&client_chain[0], &[], now)
            .is_ok());
        let wrong = verifier(&b.ca_der()).verify_client_cert(&client_chain[0], &[], now);
        assert!(
            wrong.is_err(),
            "a certificate from another CA must be refused"
        );
    }

    #[test]
    fn generated_server_certificate_verifies_for_its_names() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::client::WebPkiServerVerifier;
        use rustls_pki_types::ServerName;
        let a = pki();
        let b = pki();
        let (chain, _) = a.server_identity();
        let check = |ca: CertificateDer<'static>, name: &'static str| {
            let mut roots = RootCertStore::empty();
            roots.add(ca).unwrap();
            let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), crypto_provider())
                .build()
                .unwrap();
            v.verify_server_cert(
                &chain[0],
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
        };
        assert!(check(a.ca_der(), "gw.moon.example"));
        assert!(check(a.ca_der(), "127.0.0.1"));
        assert!(
            !check(a.ca_der(), "gw.mars.example"),
            "name not in the cert"
        );
        assert!(!check(b.ca_der(), "gw.moon.example"), "wrong CA");
    }

    #[test]
    fn server_config_builds_with_and_without_client_ca() {
        let a = pki();
        let (chain, key) = a.server_identity();
        let ca = [a.ca_der()];
        let cfg = server_config(chain.clone(), key.clone_key(), Some(&ca), &[b"h2"]).unwrap();
        assert_eq!(cfg.alpn_protocols, vec![b"h2".to_vec()]);
        server_config(chain, key, None, &[]).unwrap();
        // A leaf is not a usable key for another leaf's certificate.
        let (other_chain, _) = pki().server_identity();
        let (_, key) = a.server_identity();
        assert!(server_config(other_chain, key, None, &[]).is_err());
    }

    #[test]
    fn subject_is_rfc4514() {
        let a = pki();
        let (client, _) = a.client_identity();
        assert_eq!(
            certificate_subject(&client[0]).as_deref(),
            Some("O=deepmail test,CN=earth-gw")
        );
        assert_eq!(
            certificate_subject(&a.ca_der()).as_deref(),
            Some("O=deepmail test,CN=deepmail test CA")
        );
        assert_eq!(certificate_subject(b"\x30\x03\x02\x01"), None);
        assert_eq!(certificate_subject(b""), None);
    }

    #[test]
    fn escapes_and_oids() {
        assert_eq!(der::format_name(b""), Some(String::new()));
        // SET { SEQ { OID 2.5.4.3, UTF8 "a,b " } }
        let name = [
            0x31, 0x0d, 0x30, 0x0b, 0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x04, b'a', b',', b'b',
            b' ',
        ];
        assert_eq!(der::format_name(&name).as_deref(), Some("CN=a\\,b\\ "));
    }

    #[test]
    fn pem_loading_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let written = pki().write_to(dir.path()).unwrap();
        assert_eq!(written.len(), 6);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("server.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_certs(&dir.path().join("server.pem")).unwrap().len(), 1);
        load_private_key(&dir.path().join("client.key")).unwrap();
        let err = load_certs(&dir.path().join("server.key")).unwrap_err();
        assert!(err.to_string().contains("server.key"), "{err}");
        let err = load_private_key(&dir.path().join("ca.pem")).unwrap_err();
        assert!(err.to_string().contains("ca.pem"), "{err}");
        let err = load_certs(&dir.path().join("missing.pem")).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
