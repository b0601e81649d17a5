//! The plugin's settings, read from the delivery's `config` key/value pairs
//! and its next-hop URI.
//!
//! The transport knobs follow draft-many-tiptop-quic-profile ("QUIC Profile
//! for Deep Space"), which asks QUIC stacks to expose the initial RTT, the
//! idle timeout, the flow-control windows (sized to bandwidth × delay) and
//! the congestion window a connection starts with, instead of terrestrial
//! defaults tuned for 100 ms round trips.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A setting that is missing or cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The client certificate chain and private key for mutual TLS
/// (`client-cert-pem` and `client-key-pem`), as PEM text.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The certificate chain, end-entity certificate first.
    pub cert_pem: String,
    /// The private key: PKCS#8, SEC1 or PKCS#1, unencrypted.
    pub key_pem: String,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the private key.
        f.debug_struct("ClientIdentity")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// Everything one delivery needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// UDP address of the next hop (`connect-to`): the host resolved the
    /// next hop's name and granted UDP to exactly this address.
    pub connect_to: SocketAddr,
    /// TLS server name (SNI) the certificate must match (`server-name`;
    /// default: the host of the next-hop URI).
    pub server_name: String,
    /// `:authority` of the request: host[:port] from the next-hop URI.
    pub authority: String,
    /// `:path` of the request, from the next-hop URI.
    pub path: String,
    /// PEM text of the trust roots (`ca-pem`).
    pub ca_pem: String,
    /// Client certificate and key for mutual TLS (`client-cert-pem` and
    /// `client-key-pem`, both or neither).
    pub client_identity: Option<ClientIdentity>,
    /// `Authorization: Bearer` token (`bearer-token`).
    pub bearer_token: Option<String>,
    /// `gzip` when the host compressed the body (`Content-Encoding`).
    pub content_encoding: Option<String>,
    /// Deadline for the whole delivery (`timeout-ms`, default 20 000: under
    /// the host's per-call limit, which must be raised for deep-space links).
    pub timeout: Duration,
    /// Deadline for the handshake (`handshake-timeout-ms`, default: `timeout`).
    pub handshake_timeout: Duration,
    /// QUIC max_idle_timeout (`idle-timeout-ms`, default: `timeout`).
    pub idle_timeout: Duration,
    /// RTT assumed before the first sample, which also sets the first PTO
    /// (`initial-rtt-ms`; default RFC 9002's 333 ms).
    pub initial_rtt: Option<Duration>,
    /// Per-stream receive window advertised, and floor of the send buffer
    /// (`stream-window`, bytes).
    pub stream_window: Option<u64>,
    /// Connection receive window advertised and the send window: unacknowledged
    /// bytes kept in flight (`connection-window`, bytes).
    pub connection_window: Option<u64>,
    /// Congestion window to start with (`initial-window`, bytes): on a
    /// scheduled, dedicated link, the bandwidth × delay product.
    pub initial_window: Option<u64>,
    /// PING interval that keeps an idle connection open (`keep-alive-ms`).
    pub keep_alive: Option<Duration>,
    /// Send the request as 0-RTT data when a session ticket from an earlier
    /// delivery to the same server is cached in this instance (`zero-rtt`,
    /// default true: the Idempotency-Key makes a replayed POST harmless).
    pub zero_rtt: bool,
}

fn millis(key: &str, value: &str) -> Result<Duration, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
        .ok_or_else(|| {
            ConfigError(format!(
                "{key} `{value}` is not a positive number of milliseconds"
            ))
        })
}

fn bytes(key: &str, value: &str) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && *n < 1 << 62)
        .ok_or_else(|| ConfigError(format!("{key} `{value}` is not a positive number of bytes")))
}

fn flag(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(ConfigError(format!("{key} `{value}` is not true or false"))),
    }
}

/// Header values must not be able to end the field or the section.
pub fn check_header_value(what: &str, value: &str) -> Result<(), ConfigError> {
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(ConfigError(format!(
            "{what} contains CR, LF or NUL and cannot be sent as an HTTP field"
        )));
    }
    Ok(())
}

/// The parts of an `https://host[:port]/path` next-hop URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NextHop {
    /// host[:port], as written.
    pub authority: String,
    /// The host alone, without brackets or port.
    pub host: String,
    /// Path and query, `/` when the URI has none.
    pub path: String,
}

/// Splits a next-hop URI. Only `https` is accepted: HTTP/3 is always TLS.
pub fn parse_next_hop(uri: &str) -> Result<NextHop, ConfigError> {
    let rest = uri
        .strip_prefix("https://")
        .or_else(|| uri.strip_prefix("HTTPS://"))
        .ok_or_else(|| {
            ConfigError(format!(
                "next hop `{uri}` is not an https:// URI; quic-sender speaks HTTP/3, which is https only"
            ))
        })?;
    let (authority, path) = match rest.find(['/', '?', '#']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = path.split('#').next().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(ConfigError(format!(
            "next hop `{uri}` has no host, or has user info (not allowed)"
        )));
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default().to_string()
    } else {
        authority.split(':').next().unwrap_or_default().to_string()
    };
    if host.is_empty() || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(ConfigError(format!("next hop `{uri}` is not a usable URI")));
    }
    Ok(NextHop {
        authority: authority.to_string(),
        host,
        path,
    })
}

impl Settings {
    /// Reads the settings for a delivery to `next_hop`.
    pub fn from_config(
        next_hop: &str,
        config: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let hop = parse_next_hop(next_hop)?;
        let mut connect_to = None;
        let mut server_name = None;
        let mut ca_pem: Option<String> = None;
        let mut bearer_token = None;
        let mut client_cert_pem: Option<String> = None;
        let mut client_key_pem: Option<String> = None;
        let mut timeout = Duration::from_secs(20);
        let mut handshake_timeout = None;
        let mut idle_timeout = None;
        let mut s = Settings {
            connect_to: SocketAddr::from(([0, 0, 0, 0], 0)),
            server_name: String::new(),
            authority: hop.authority,
            path: hop.path,
            ca_pem: String::new(),
            client_identity: None,
            bearer_token: None,
            content_encoding: None,
            timeout,
            handshake_timeout: timeout,
            idle_timeout: timeout,
            initial_rtt: None,
            stream_window: None,
            connection_window: None,
            initial_window: None,
            keep_alive: None,
            zero_rtt: true,
        };
        for (key, value) in config {
            match key.as_str() {
                "connect-to" => {
                    connect_to = Some(value.trim().parse::<SocketAddr>().map_err(|_| {
                        ConfigError(format!(
                            "connect-to `{value}` is not an ip:port, e.g. 192.0.2.7:443 or [2001:db8::7]:443"
                        ))
                    })?)
                }
                "server-name" => server_name = Some(value.trim().to_string()),
                // Several `ca-pem` entries add up.
                "ca-pem" => ca_pem.get_or_insert_with(String::new).push_str(value),
                // Like `ca-pem`, several entries add up (to the chain).
                "client-cert-pem" => client_cert_pem
                    .get_or_insert_with(String::new)
                    .push_str(value),
                "client-key-pem" => {
                    if client_key_pem.is_some() {
                        return Err(ConfigError(
                            "client-key-pem is given more than once; give the one private key \
                             of client-cert-pem"
                                .into(),
                        ));
                    }
                    client_key_pem = Some(value.clone());
                }
                "bearer-token" => {
                    check_header_value("bearer-token", value)?;
                    bearer_token = Some(value.trim().to_string());
                }
                "content-encoding" => {
                    if value != "gzip" {
                        return Err(ConfigError(format!(
                            "content-encoding `{value}`: only gzip"
                        )));
                    }
                    s.content_encoding = Some(value.clone());
                }
                "timeout-ms" => timeout = millis(key, value)?,
                "handshake-timeout-ms" => handshake_timeout = Some(millis(key, value)?),
                "idle-timeout-ms" => idle_timeout = Some(millis(key, value)?),
                "initial-rtt-ms" => s.initial_rtt = Some(millis(key, value)?),
                "stream-window" => s.stream_window = Some(bytes(key, value)?),
                "connection-window" => s.connection_window = Some(bytes(key, value)?),
                "initial-window" => s.initial_window = Some(bytes(key, value)?),
                "keep-alive-ms" => s.keep_alive = Some(millis(key, value)?),
                "zero-rtt" => s.zero_rtt = flag(key, value)?,
                other => {
                    return Err(ConfigError(format!(
                        "quic-sender has no setting `{other}` (it reads connect-to, server-name, \
                         ca-pem, client-cert-pem, client-key-pem, bearer-token, content-encoding, timeout-ms, handshake-timeout-ms, idle-timeout-ms, \
                         initial-rtt-ms, stream-window, connection-window, initial-window, \
                         keep-alive-ms, zero-rtt)"
                    )))
                }
            }
        }
        s.connect_to = connect_to.ok_or_else(|| {
            ConfigError(
                "quic-sender needs `connect-to` (ip:port): the host resolves the next hop and \
                 grants UDP to that address only; plugins cannot look names up"
                    .into(),
            )
        })?;
        s.server_name = server_name.unwrap_or(hop.host);
        s.ca_pem = ca_pem.filter(|p| !p.trim().is_empty()).ok_or_else(|| {
            ConfigError(
                "quic-sender needs `ca-pem`: the PEM text of the CA certificate(s) that sign the \
                 next hop's certificate (plugins have no file system and no built-in roots)"
                    .into(),
            )
        })?;
        s.client_identity = match (client_cert_pem, client_key_pem) {
            (Some(cert_pem), Some(key_pem)) => Some(ClientIdentity { cert_pem, key_pem }),
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError(
                    "client-cert-pem is set but client-key-pem is missing: mutual TLS needs \
                     both the certificate chain and its private key (PEM text)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(ConfigError(
                    "client-key-pem is set but client-cert-pem is missing: mutual TLS needs \
                     both the certificate chain and its private key (PEM text)"
                        .into(),
                ))
            }
        };
        s.bearer_token = bearer_token;
        s.timeout = timeout;
        s.handshake_timeout = handshake_timeout.unwrap_or(timeout).min(timeout);
        s.idle_timeout = idle_timeout.unwrap_or(timeout);
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn next_hop_parts() {
        let h = parse_next_hop("https://gw.moon.example/inboundmail").unwrap();
        assert_eq!(
            (h.authority.as_str(), h.host.as_str(), h.path.as_str()),
            ("gw.moon.example", "gw.moon.example", "/inboundmail")
        );
        let h = parse_next_hop("https://[2001:db8::1]:8443?x=1").unwrap();
        assert_eq!(
            (h.authority.as_str(), h.host.as_str(), h.path.as_str()),
            ("[2001:db8::1]:8443", "2001:db8::1", "/?x=1")
        );
        assert!(parse_next_hop("http://gw/x").is_err());
        assert!(parse_next_hop("https://u@gw/x").is_err());
        assert!(parse_next_hop("https:///x").is_err());
    }

    #[test]
    fn defaults_and_knobs() {
        let s = Settings::from_config(
            "https://gw.moon.example:4433/inboundmail",
            &kv(&[
                ("connect-to", "127.0.0.1:4433"),
                ("ca-pem", "PEM"),
                ("timeout-ms", "5000"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server_name, "gw.moon.example");
        assert_eq!(s.authority, "gw.moon.example:4433");
        assert_eq!(s.handshake_timeout, Duration::from_secs(5));
        assert!(s.zero_rtt);
        let s = Settings::from_config(
            "https://gw/x",
            &kv(&[
                ("connect-to", "[::1]:443"),
                ("ca-pem", "PEM"),
                ("server-name", "other.example"),
                ("initial-rtt-ms", "2600000"),
                ("idle-timeout-ms", "7200000"),
                ("stream-window", "1000000"),
                ("zero-rtt", "false"),
            ]),
        )
        .unwrap();
        assert_eq!(s.server_name, "other.example");
        assert_eq!(s.initial_rtt, Some(Duration::from_secs(2600)));
        assert!(!s.zero_rtt);
    }

    #[test]
    fn bad_settings_say_what_to_do() {
        let e = Settings::from_config("https://gw/x", &kv(&[("ca-pem", "P")])).unwrap_err();
        assert!(e.0.contains("connect-to"), "{e}");
        let e =
            Settings::from_config("https://gw/x", &kv(&[("connect-to", "1.2.3.4:5")])).unwrap_err();
        assert!(e.0.contains("ca-pem"), "{e}");
        let e =
            Settings::from_config("https://gw/x", &kv(&[("connect-to", "gw:443")])).unwrap_err();
        assert!(e.0.contains("ip:port"), "{e}");
        let e = Settings::from_config("https://gw/x", &kv(&[("bearer-token", "a\r\nX: y")]))
            .unwrap_err();
        assert!(e.0.contains("CR"), "{e}");
        let e = Settings::from_config("https://gw/x", &kv(&[("colour", "red")])).unwrap_err();
        assert!(e.0.contains("colour"), "{e}");
        let base = [("connect-to", "[::1]:443"), ("ca-pem", "PEM")];
        let s = Settings::from_config(
            "https://gw/x",
            &kv(&[base[0], base[1], ("content-encoding", "gzip")]),
        )
        .unwrap();
        assert_eq!(s.content_encoding.as_deref(), Some("gzip"));
        let e = Settings::from_config(
            "https://gw/x",
            &kv(&[base[0], base[1], ("content-encoding", "br")]),
        )
        .unwrap_err();
        assert!(e.0.contains("only gzip"), "{e}");
    }

    #[test]
    fn client_certificate_and_key_come_together() {
        let base = [("connect-to", "127.0.0.1:4433"), ("ca-pem", "PEM")];
        let with = |extra: &[(&'static str, &'static str)]| {
            let mut c = base.to_vec();
            c.extend_from_slice(extra);
            Settings::from_config("https://gw/x", &kv(&c))
        };
        assert_eq!(with(&[]).unwrap().client_identity, None);
        let s = with(&[
            ("client-cert-pem", "CERT1"),
            ("client-key-pem", "KEY"),
            ("client-cert-pem", "CERT2"),
        ])
        .unwrap();
        let id = s.client_identity.unwrap();
        assert_eq!(
            (id.cert_pem.as_str(), id.key_pem.as_str()),
            ("CERT1CERT2", "KEY")
        );
        assert!(!format!("{id:?}").contains("KEY"), "the key is not printed");
        let e = with(&[("client-cert-pem", "CERT")]).unwrap_err();
        assert!(e.0.contains("client-key-pem is missing"), "{e}");
        let e = with(&[("client-key-pem", "KEY")]).unwrap_err();
        assert!(e.0.contains("client-cert-pem is missing"), "{e}");
        let e = with(&[
            ("client-cert-pem", "CERT"),
            ("client-key-pem", "KEY"),
            ("client-key-pem", "KEY"),
        ])
        .unwrap_err();
        assert!(e.0.contains("more than once"), "{e}");
    }
}
