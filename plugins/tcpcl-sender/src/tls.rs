//! TLS for TCPCL sessions (RFC 9174 §4.4): rustls as the TLS client (the
//! active entity is the client, §4.4), TLS 1.3 only (§4.4 requires 1.3 or
//! later), on the pure-Rust provider of `deepmail-rustcrypto` so the
//! component builds without a C compiler.
//!
//! The peer's certificate must chain to `ca-pem` and carry `tls-name`
//! (default: the next hop's host) as a DNS name or IP address SAN: the
//! DNS-ID / IPADDR-ID authentication of §4.4.3. A NODE-ID SAN
//! (`id-on-bundleEID`) is not checked: the sender trusts the network
//! name it was routed to, and the BIB (RFC 9172) authenticates bundles
//! end to end. No client certificate is sent.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::pki_types::ServerName;

use crate::config::{ConfigError, Settings, TlsMode};

/// What a session needs to start TLS.
#[derive(Clone)]
pub struct TlsClient {
    /// The rustls configuration (shared by sessions with the same roots).
    pub config: Arc<rustls::ClientConfig>,
    /// The name the certificate must carry.
    pub name: ServerName<'static>,
}

/// The TLS client for `settings`, `None` when `tls` is `off`.
pub fn client(settings: &Settings) -> Result<Option<TlsClient>, ConfigError> {
    if settings.tls == TlsMode::Off {
        return Ok(None);
    }
    let name = ServerName::try_from(settings.tls_name.clone()).map_err(|e| {
        ConfigError(format!(
            "tls-name `{}` is not a DNS name or IP address: {e}",
            settings.tls_name
        ))
    })?;
    Ok(Some(TlsClient {
        config: config(&settings.ca_pem)?,
        name,
    }))
}

/// One rustls configuration per set of roots, kept for the instance's
/// life (a handful at most; bounded anyway).
fn config(ca_pem: &str) -> Result<Arc<rustls::ClientConfig>, ConfigError> {
    type Cache = Mutex<Vec<(String, Arc<rustls::ClientConfig>)>>;
    static CONFIGS: OnceLock<Cache> = OnceLock::new();
    let mut cache = CONFIGS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, c)) = cache.iter().find(|(pem, _)| pem == ca_pem) {
        return Ok(c.clone());
    }
    let roots = deepmail_rustcrypto::roots_from_pem("ca-pem", ca_pem)
        .map_err(|e| ConfigError(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(deepmail_rustcrypto::arc_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConfigError(format!("TLS 1.3 unavailable: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let config = Arc::new(config);
    if cache.len() >= 16 {
        cache.remove(0);
    }
    cache.push((ca_pem.to_string(), config.clone()));
    Ok(config)
}
