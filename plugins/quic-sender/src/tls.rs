//! TLS 1.3 client configuration for QUIC: rustls with the *ring* provider,
//! trust roots from the `ca-pem` setting, ALPN `h3`, and a session cache
//! that lives as long as the component instance.
//!
//! Session tickets (for resumption and 0-RTT) and QUIC address-validation
//! tokens are kept in statics. A component instance that the host reuses for
//! several deliveries therefore resumes; a fresh instance starts cold. rustls
//! 0.23 has no public way to serialise a ticket, so handing tickets to the
//! host between instances is not possible without a rustls change (see the
//! crate docs).

use std::sync::{Arc, Mutex, OnceLock};

use quinn_proto::crypto::rustls::QuicClientConfig;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::config::ConfigError;

/// ALPN token of HTTP/3 (RFC 9114 §3.1).
pub const ALPN_H3: &[u8] = b"h3";

fn session_store() -> Arc<dyn ClientSessionStore> {
    static STORE: OnceLock<Arc<ClientSessionMemoryCache>> = OnceLock::new();
    STORE
        .get_or_init(|| Arc::new(ClientSessionMemoryCache::new(64)))
        .clone()
}

/// Address-validation tokens (NEW_TOKEN) kept for later connections, so a
/// server that validates addresses need not spend a Retry round trip.
pub fn token_store() -> Arc<quinn_proto::TokenMemoryCache> {
    static STORE: OnceLock<Arc<quinn_proto::TokenMemoryCache>> = OnceLock::new();
    STORE.get_or_init(Default::default).clone()
}

/// *ring* with its TLS 1.3 suites only: QUIC never uses TLS 1.2, and
/// leaving those suites out lets the linker drop their code.
fn provider() -> Arc<CryptoProvider> {
    let mut p = rustls::crypto::ring::default_provider();
    p.cipher_suites
        .retain(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_)));
    Arc::new(p)
}

/// Parses the trust roots from PEM text.
pub fn roots_from_pem(pem: &str) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for (n, cert) in CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let cert = cert.map_err(|e| {
            ConfigError(format!(
                "ca-pem: certificate {} is not valid PEM: {e}",
                n + 1
            ))
        })?;
        roots.add(cert).map_err(|e| {
            ConfigError(format!(
                "ca-pem: certificate {} cannot be a trust root: {e}",
                n + 1
            ))
        })?;
    }
    if roots.is_empty() {
        return Err(ConfigError(
            "ca-pem holds no `-----BEGIN CERTIFICATE-----` block".into(),
        ));
    }
    Ok(roots)
}

/// The QUIC client crypto configuration for deliveries with these trust
/// roots, built once per instance.
///
/// Reuse matters beyond saving work: rustls resumes a session only with the
/// same certificate verifier (compared by `Arc` identity) that checked the
/// original handshake, so a config rebuilt per delivery would never resume.
pub fn client_config(ca_pem: &str, zero_rtt: bool) -> Result<Arc<QuicClientConfig>, ConfigError> {
    type Cache = Mutex<Vec<(String, bool, Arc<QuicClientConfig>)>>;
    static CONFIGS: OnceLock<Cache> = OnceLock::new();
    let cache = CONFIGS.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, _, config)) = cache
        .iter()
        .find(|(pem, early, _)| pem == ca_pem && *early == zero_rtt)
    {
        return Ok(config.clone());
    }
    let config = build_client_config(ca_pem, zero_rtt)?;
    // A handful of distinct trust-root sets at most in one gateway; bound it anyway.
    if cache.len() >= 16 {
        cache.remove(0);
    }
    cache.push((ca_pem.to_string(), zero_rtt, config.clone()));
    Ok(config)
}

fn build_client_config(ca_pem: &str, zero_rtt: bool) -> Result<Arc<QuicClientConfig>, ConfigError> {
    let roots = roots_from_pem(ca_pem)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConfigError(format!("TLS 1.3 unavailable: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN_H3.to_vec()];
    tls.resumption = Resumption::store(session_store());
    tls.enable_early_data = zero_rtt;
    let quic = QuicClientConfig::try_from(tls)
        .map_err(|e| ConfigError(format!("no QUIC initial cipher suite: {e}")))?;
    Ok(Arc::new(quic))
}
