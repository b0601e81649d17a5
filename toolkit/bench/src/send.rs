//! The sender plugin `deepmail send` loads for one next hop: HTTPS through
//! the host's `wasi:http` (granted exactly that authority and these trust
//! roots), or HTTP/3 with the QUIC plugin over `wasi:sockets` (granted UDP
//! to exactly the address the host resolved), with the client certificate
//! and the QUIC profile settings of the command line.

use std::net::{SocketAddr, ToSocketAddrs};

use deepmail_host::{HttpGrant, NetworkGrant, PluginSource, Sender};

use crate::BenchError;

/// What every attempt of one `send` shares.
#[derive(Debug, Clone, Default)]
pub struct SendOptions {
    /// Seconds to wait for each attempt.
    pub timeout_secs: u64,
    /// Bearer token to present.
    pub token: Option<String>,
    /// Trust roots, PEM (empty: the system's).
    pub roots_pem: Vec<u8>,
    /// Client certificate and its private key for mutual TLS, PEM.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
    /// Allow plain `http://` next hops.
    pub allow_plain_http: bool,
    /// HTTP/3 with the QUIC plugin instead of HTTPS.
    pub h3: bool,
    /// QUIC profile settings, `KEY=VALUE`.
    pub quic: Vec<String>,
}

/// `host:port` of an http(s) URI, lower case, with the scheme's default port.
pub fn hop_authority(uri: &str) -> Result<String, BenchError> {
    deepmail_gateway::authority_of(uri).ok_or_else(|| {
        BenchError::BadArgument(format!(
            "next hop `{uri}` is not an http(s) URI; the https-sender cannot use it"
        ))
    })
}

/// The next hop's address for a plugin that opens its own sockets: the
/// host resolves the name (plugins have no name lookup).
fn socket_addr_of(authority: &str) -> Result<SocketAddr, BenchError> {
    authority
        .to_socket_addrs()
        .map_err(|source| BenchError::Lookup {
            authority: authority.to_string(),
            source,
        })?
        .next()
        .ok_or_else(|| BenchError::BadArgument(format!("{authority} has no address")))
}

/// Loads the sender `source` for the next hop `hop` with the network
/// grant it needs and nothing more.
pub fn load_sender(
    host: &deepmail_host::Host,
    source: &PluginSource,
    hop: &str,
    options: &SendOptions,
) -> Result<Sender, BenchError> {
    let authority = hop_authority(hop)?;
    let timeout_ms = options.timeout_secs.saturating_mul(1000);
    let mut config = vec![("timeout-ms".to_string(), timeout_ms.to_string())];
    if let Some(token) = &options.token {
        config.push(("bearer-token".into(), token.clone()));
    }
    if !options.h3 {
        // HTTPS goes through wasi:http: the host connects, to this
        // authority only, trusting only these roots.
        let grant = NetworkGrant {
            http: Some(HttpGrant {
                authorities: vec![authority],
                roots_pem: options.roots_pem.clone(),
                client_cert_pem: options
                    .client
                    .as_ref()
                    .map(|c| c.0.clone())
                    .unwrap_or_default(),
                client_key_pem: options
                    .client
                    .as_ref()
                    .map(|c| c.1.clone())
                    .unwrap_or_default(),
                allow_plain_http: options.allow_plain_http,
                connect_timeout_ms: timeout_ms,
                response_timeout_ms: timeout_ms,
            }),
            ..NetworkGrant::default()
        };
        return Ok(Sender::load(host, source, config, Some(grant))?);
    }
    // QUIC runs inside the plugin over wasi:sockets: the host resolves
    // the name and grants UDP to exactly that address.
    let addr = socket_addr_of(&authority)?;
    config.push(("connect-to".into(), addr.to_string()));
    let roots = if options.roots_pem.is_empty() {
        deepmail_host::system_roots_pem().map_err(|source| BenchError::NoRoots { source })?
    } else {
        options.roots_pem.clone()
    };
    config.push((
        "ca-pem".into(),
        String::from_utf8_lossy(&roots).into_owned(),
    ));
    // Mutual TLS: the plugin has no file system, so it gets the PEM text.
    if let Some((cert, key)) = &options.client {
        config.push((
            "client-cert-pem".into(),
            String::from_utf8_lossy(cert).into_owned(),
        ));
        config.push((
            "client-key-pem".into(),
            String::from_utf8_lossy(key).into_owned(),
        ));
    }
    for kv in &options.quic {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| BenchError::BadArgument(format!("--quic {kv}: expected KEY=VALUE")))?;
        config.push((k.to_string(), v.to_string()));
    }
    let grant = NetworkGrant {
        udp: true,
        remote: vec![addr],
        ..NetworkGrant::default()
    };
    Ok(Sender::load(host, source, config, Some(grant))?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hop_authority_gets_the_scheme_default_port() {
        assert_eq!(
            super::hop_authority("https://GW.moon.example/inboundmail").unwrap(),
            "gw.moon.example:443"
        );
        assert_eq!(
            super::hop_authority("https://gw.moon.example:8443/in").unwrap(),
            "gw.moon.example:8443"
        );
        assert_eq!(
            super::hop_authority("http://127.0.0.1?x").unwrap(),
            "127.0.0.1:80"
        );
        assert_eq!(
            super::hop_authority("https://[::1]/in").unwrap(),
            "[::1]:443"
        );
        assert_eq!(
            super::hop_authority("https://[::1]:9/in").unwrap(),
            "[::1]:9"
        );
        assert!(super::hop_authority("ftp://x/").is_err());
    }
}
