//! TLS 1.3 client configuration for QUIC: rustls on the pure-Rust provider
//! of `deepmail-rustcrypto` (no C, so no clang for wasm32),
//! trust roots from the `ca-pem` setting, an optional client certificate
//! for mutual TLS (`client-cert-pem`, `client-key-pem`), ALPN `h3`, and a
//! session cache that lives as long as the component instance.
//!
//! Session tickets (for resumption and 0-RTT) and QUIC address-validation
//! tokens are kept in statics. A component instance that the host reuses for
//! several deliveries therefore resumes; a fresh instance starts cold. rustls
//! 0.23 has no public way to serialise a ticket, so handing tickets to the
//! host between instances is not possible without a rustls change (see the
//! crate docs).

use std::sync::{Arc, Mutex, OnceLock};

use crate::quic_tls::QuicClientConfig;
use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientIdentity, ConfigError};

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

/// The pure-Rust provider, offering TLS_CHACHA20_POLY1305_SHA256 only.
///
/// WebAssembly has no AES or carry-less-multiply instructions, so AES-GCM
/// runs as constant-time software: a 1 MiB upload took 42 ms with AES-GCM
/// negotiated against 28 ms with ChaCha20-Poly1305 (`cargo bench -p
/// deepmail-gateway --bench transport`, one run). Offering ChaCha20 first
/// is not enough: the receiver (rustls) picked AES-GCM anyway for some
/// connections, so AES is not offered at all. RFC 8446 §9.1 makes
/// ChaCha20-Poly1305 a SHOULD for every TLS 1.3 implementation; QUIC's
/// Initial packets still use AES-128-GCM (RFC 9001 §5.2), which
/// `QuicClientConfig` takes from the provider crate directly.
fn provider() -> Arc<CryptoProvider> {
    let mut p = deepmail_rustcrypto::provider();
    p.cipher_suites
        .retain(|s| s.suite() == rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256);
    Arc::new(p)
}

/// Parses the trust roots from PEM text.
pub fn roots_from_pem(pem: &str) -> Result<RootCertStore, ConfigError> {
    deepmail_rustcrypto::roots_from_pem("ca-pem", pem).map_err(|e| ConfigError(e.to_string()))
}

/// Parses the client certificate chain and its private key from PEM text.
pub fn client_identity_from_pem(
    identity: &ClientIdentity,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ConfigError> {
    let chain = CertificateDer::pem_slice_iter(identity.cert_pem.as_bytes())
        .enumerate()
        .map(|(n, cert)| {
            cert.map_err(|e| {
                ConfigError(format!(
                    "client-cert-pem: certificate {} is not valid PEM: {e}",
                    n + 1
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    if chain.is_empty() {
        return Err(ConfigError(
            "client-cert-pem holds no `-----BEGIN CERTIFICATE-----` block".into(),
        ));
    }
    // Never quote the key text in an error.
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).map_err(|e| {
        ConfigError(match e {
            rustls_pki_types::pem::Error::NoItemsFound => {
                "client-key-pem holds no unencrypted private key (a `-----BEGIN PRIVATE KEY-----` \
                 (PKCS#8), `EC PRIVATE KEY` (SEC1) or `RSA PRIVATE KEY` (PKCS#1) block)"
                    .to_string()
            }
            e => format!("client-key-pem is not a valid PEM private key: {e}"),
        })
    })?;
    Ok((chain, key))
}

/// The QUIC client crypto configuration for deliveries with these trust
/// roots and this client identity, built once per instance.
///
/// Reuse matters beyond saving work: rustls resumes a session only with the
/// same certificate verifier and client-certificate resolver (compared by
/// `Arc` identity) as the original handshake, so a config rebuilt per
/// delivery would never resume, and a ticket won with one client identity
/// is never offered with another.
pub fn client_config(
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
    zero_rtt: bool,
) -> Result<Arc<QuicClientConfig>, ConfigError> {
    type Key = (String, Option<ClientIdentity>, bool);
    type Cache = Mutex<Vec<(Key, Arc<QuicClientConfig>)>>;
    static CONFIGS: OnceLock<Cache> = OnceLock::new();
    let cache = CONFIGS.get_or_init(Default::default);
    let mut cache = cache
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, config)) = cache.iter().find(|((pem, id, early), _)| {
        pem == ca_pem && id.as_ref() == identity && *early == zero_rtt
    }) {
        return Ok(config.clone());
    }
    let config = build_client_config(ca_pem, identity, zero_rtt)?;
    // A handful of distinct trust-root sets and identities at most in one
    // gateway; bound it anyway.
    if cache.len() >= 16 {
        cache.remove(0);
    }
    cache.push((
        (ca_pem.to_string(), identity.cloned(), zero_rtt),
        config.clone(),
    ));
    Ok(config)
}

fn build_client_config(
    ca_pem: &str,
    identity: Option<&ClientIdentity>,
    zero_rtt: bool,
) -> Result<Arc<QuicClientConfig>, ConfigError> {
    let roots = roots_from_pem(ca_pem)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConfigError(format!("TLS 1.3 unavailable: {e}")))?
        .with_root_certificates(roots);
    let mut tls = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let (chain, key) = client_identity_from_pem(identity)?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| match e {
                    rustls::Error::InconsistentKeys(_) => ConfigError(
                        "client-key-pem is not the private key of the first certificate in \
                         client-cert-pem"
                            .into(),
                    ),
                    e => ConfigError(format!(
                        "client-cert-pem/client-key-pem cannot be used for mutual TLS: {e}"
                    )),
                })?
        }
    };
    tls.alpn_protocols = vec![ALPN_H3.to_vec()];
    tls.resumption = Resumption::store(session_store());
    tls.enable_early_data = zero_rtt;
    let quic = QuicClientConfig::new(tls).map_err(|e| ConfigError(e.to_string()))?;
    Ok(Arc::new(quic))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        rcgen::generate_simple_self_signed(vec!["gw.example".to_string()])
            .unwrap()
            .cert
            .pem()
    }

    fn identity() -> ClientIdentity {
        let c = rcgen::generate_simple_self_signed(vec!["earth-gw".to_string()]).unwrap();
        ClientIdentity {
            cert_pem: c.cert.pem(),
            key_pem: c.signing_key.serialize_pem(),
        }
    }

    #[test]
    fn configs_are_cached_per_roots_and_client_identity() {
        let ca = ca_pem();
        let (a, b) = (identity(), identity());
        let none = client_config(&ca, None, true).unwrap();
        let with_a = client_config(&ca, Some(&a), true).unwrap();
        assert!(Arc::ptr_eq(
            &with_a,
            &client_config(&ca, Some(&a), true).unwrap()
        ));
        assert!(Arc::ptr_eq(&none, &client_config(&ca, None, true).unwrap()));
        assert!(!Arc::ptr_eq(&none, &with_a));
        assert!(!Arc::ptr_eq(
            &with_a,
            &client_config(&ca, Some(&b), true).unwrap()
        ));
    }

    #[test]
    fn bad_client_identities_are_config_errors() {
        let ca = ca_pem();
        let good = identity();
        let err = |id: ClientIdentity| match client_config(&ca, Some(&id), true) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.0,
        };

        let e = err(ClientIdentity {
            key_pem: identity().key_pem,
            ..good.clone()
        });
        assert!(e.contains("not the private key"), "{e}");

        let e = err(ClientIdentity {
            cert_pem: "not a certificate".into(),
            ..good.clone()
        });
        assert!(e.contains("client-cert-pem holds no"), "{e}");

        let e = err(ClientIdentity {
            cert_pem: "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".into(),
            ..good.clone()
        });
        assert!(
            e.contains("client-cert-pem: certificate 1 is not valid PEM"),
            "{e}"
        );

        // A certificate where the key should be: no key, and no key text quoted.
        let e = err(ClientIdentity {
            key_pem: good.cert_pem.clone(),
            ..good.clone()
        });
        assert!(
            e.contains("client-key-pem holds no unencrypted private key"),
            "{e}"
        );

        let e = err(ClientIdentity {
            key_pem: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ..good.clone()
        });
        assert!(e.contains("client-key-pem"), "{e}");
        assert!(!e.contains("AAAA"), "{e}");
    }
}
