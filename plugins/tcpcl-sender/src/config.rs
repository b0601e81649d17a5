//! The plugin's settings, read from the delivery's `config` key/value pairs
//! and its `tcpcl://HOST:PORT` next hop.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use deepmail_tcpcl::SessionConfig;

/// A setting that is missing or cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The default port of TCPCL (RFC 9174 §8.1, IANA "dtn-bundle").
pub const DEFAULT_PORT: u16 = 4556;

/// Everything one delivery needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `host:port` from the next-hop URI, for messages.
    pub authority: String,
    /// TCP address to connect to (`connect-to`): the host resolved the
    /// next hop and granted TCP to exactly this address.
    pub connect_to: SocketAddr,
    /// Our node ID for SESS_INIT (`node-id`), e.g. `ipn:1.0`.
    pub node_id: String,
    /// Deadline for the whole delivery (`timeout-ms`, default 20 000).
    pub timeout: Duration,
    /// Keepalive interval offered (`keepalive-secs`, default 30; 0: none).
    pub keepalive_secs: u16,
    /// Largest segment sent, capped by the peer's Segment MRU; also the
    /// Segment MRU we advertise (`segment-mru`, default 65 536).
    pub segment_mru: u64,
    /// How long a session is kept open after a delivery for the next one
    /// (`session-idle-secs`, default 300; 0: one session per delivery).
    pub session_idle: Duration,
    /// TLS (RFC 9174 §4.4): `tls` = `off` (default), `offer` or `require`.
    pub tls: TlsMode,
    /// PEM text of the trust roots the peer's certificate must chain to
    /// (`ca-pem`; needed unless `tls` is `off`).
    pub ca_pem: String,
    /// The name the peer's certificate must carry (`tls-name`; default the
    /// next hop's host): a DNS name or an IP address (§4.4.3 DNS-ID or
    /// IPADDR-ID).
    pub tls_name: String,
}

/// Whether a session uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No CAN_TLS: plain TCP whatever the peer offers.
    Off,
    /// CAN_TLS: TLS when the peer offers it too, plain TCP otherwise.
    Offer,
    /// CAN_TLS, and a peer that does not offer TLS is refused.
    Require,
}

impl Settings {
    /// The session settings these give.
    pub fn session_config(&self) -> SessionConfig {
        let mut c = SessionConfig::new(self.node_id.clone());
        c.keepalive_secs = self.keepalive_secs;
        c.segment_mru = self.segment_mru;
        c.max_segment_len = self.segment_mru;
        // We receive no bundles; a small limit is enough for refusals.
        c.transfer_mru = self.segment_mru;
        c.handshake_timeout = self.timeout;
        // The outcome is known once every transfer is settled: do not wait
        // long for the peer's SESS_TERM reply.
        c.close_timeout = self.timeout.min(Duration::from_secs(2));
        c.offer_tls = self.tls != TlsMode::Off;
        c.require_tls = self.tls == TlsMode::Require;
        c
    }

    /// Reads the settings for a delivery to `next_hop`.
    pub fn from_config(
        next_hop: &str,
        config: &[(String, String)],
    ) -> Result<Settings, ConfigError> {
        let authority = parse_next_hop(next_hop)?;
        let mut connect_to = None;
        let mut node_id = None;
        let mut timeout = Duration::from_secs(20);
        let mut keepalive_secs = 30u16;
        let mut segment_mru = 64 * 1024u64;
        let mut session_idle = Duration::from_secs(300);
        let mut tls = TlsMode::Off;
        let mut ca_pem = String::new();
        let mut tls_name = None;
        for (key, value) in config {
            let value = value.trim();
            match key.as_str() {
                "connect-to" => {
                    connect_to = Some(value.parse::<SocketAddr>().map_err(|_| {
                        ConfigError(format!(
                            "connect-to `{value}` is not an ip:port, e.g. 192.0.2.7:4556 or [2001:db8::7]:4556"
                        ))
                    })?)
                }
                "node-id" => {
                    let mut probe = SessionConfig::new(value);
                    probe.segment_mru = 1;
                    probe.validate().map_err(|e| ConfigError(format!("node-id: {e}")))?;
                    node_id = Some(value.to_string());
                }
                "timeout-ms" => {
                    timeout = value
                        .parse::<u64>()
                        .ok()
                        .filter(|ms| *ms > 0)
                        .map(Duration::from_millis)
                        .ok_or_else(|| {
                            ConfigError(format!(
                                "timeout-ms `{value}` is not a positive number of milliseconds"
                            ))
                        })?
                }
                "keepalive-secs" => {
                    keepalive_secs = value.parse::<u16>().map_err(|_| {
                        ConfigError(format!(
                            "keepalive-secs `{value}` is not a number of seconds from 0 (off) to 65535"
                        ))
                    })?
                }
                "segment-mru" => {
                    segment_mru = value
                        .parse::<u64>()
                        .ok()
                        .filter(|n| *n > 0 && *n <= 1 << 30)
                        .ok_or_else(|| {
                            ConfigError(format!(
                                "segment-mru `{value}` is not a number of bytes from 1 to 1073741824"
                            ))
                        })?
                }
                "session-idle-secs" => {
                    session_idle = value.parse::<u64>().map(Duration::from_secs).map_err(|_| {
                        ConfigError(format!(
                            "session-idle-secs `{value}` is not a number of seconds (0: close the session after each delivery)"
                        ))
                    })?
                }
                "tls" => {
                    tls = match value {
                        "off" => TlsMode::Off,
                        "offer" => TlsMode::Offer,
                        "require" => TlsMode::Require,
                        _ => {
                            return Err(ConfigError(format!(
                                "tls `{value}` is not off, offer or require"
                            )))
                        }
                    }
                }
                // Several entries add up (several roots).
                "ca-pem" => ca_pem.push_str(value),
                "tls-name" => {
                    if value.is_empty() || value.bytes().any(|b| b <= b' ' || b == 0x7f) {
                        return Err(ConfigError(format!(
                            "tls-name `{}` is not a DNS name or IP address",
                            value.escape_debug()
                        )));
                    }
                    tls_name = Some(value.to_string());
                }
                other => {
                    return Err(ConfigError(format!(
                        "tcpcl-sender has no setting `{other}` (it reads connect-to, node-id, \
                         timeout-ms, keepalive-secs, segment-mru, session-idle-secs, tls, \
                         ca-pem, tls-name)"
                    )))
                }
            }
        }
        let connect_to = connect_to.ok_or_else(|| {
            ConfigError(
                "tcpcl-sender needs `connect-to` (ip:port): the host resolves the next hop and \
                 grants TCP to that address only; plugins cannot look names up"
                    .into(),
            )
        })?;
        let node_id = node_id.ok_or_else(|| {
            ConfigError(
                "tcpcl-sender needs `node-id`: this gateway's node EID for SESS_INIT, e.g. ipn:1.0"
                    .into(),
            )
        })?;
        if tls != TlsMode::Off && ca_pem.trim().is_empty() {
            return Err(ConfigError(
                "tls = offer/require needs `ca-pem`: the PEM text of the CA certificate(s) \
                 that sign the peer's TLS certificate"
                    .into(),
            ));
        }
        let tls_name = tls_name.unwrap_or_else(|| host_of(&authority).to_string());
        Ok(Settings {
            authority,
            connect_to,
            node_id,
            timeout,
            keepalive_secs,
            segment_mru,
            session_idle,
            tls,
            ca_pem,
            tls_name,
        })
    }
}

/// The host of a `host:port` authority (an IPv6 address without its
/// brackets).
fn host_of(authority: &str) -> &str {
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map_or(v6, |(h, _)| h);
    }
    authority.rsplit_once(':').map_or(authority, |(h, _)| h)
}

/// The `host:port` of a `tcpcl://host[:port][/]` next hop (port 4556 when
/// absent).
pub fn parse_next_hop(uri: &str) -> Result<String, ConfigError> {
    let rest = uri
        .strip_prefix("tcpcl://")
        .or_else(|| uri.strip_prefix("TCPCL://"))
        .ok_or_else(|| {
            ConfigError(format!(
                "next hop `{uri}` is not a tcpcl://HOST:PORT URI; tcpcl-sender speaks TCPCLv4"
            ))
        })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    let bad = || ConfigError(format!("next hop `{uri}` is not tcpcl://HOST[:PORT]"));
    if authority.is_empty()
        || authority.contains(['/', '?', '#', '@'])
        || authority.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(bad());
    }
    let has_port = if let Some(v6) = authority.strip_prefix('[') {
        let (_, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err(bad()),
        }
    } else {
        authority.split_once(':').map(|(_, port)| port)
    };
    match has_port {
        Some(port) => {
            port.parse::<u16>().map_err(|_| bad())?;
            Ok(authority.to_string())
        }
        None => Ok(format!("{authority}:{DEFAULT_PORT}")),
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
    fn next_hops() {
        assert_eq!(
            parse_next_hop("tcpcl://gw.moon.example:4556").unwrap(),
            "gw.moon.example:4556"
        );
        assert_eq!(
            parse_next_hop("tcpcl://gw.moon.example/").unwrap(),
            "gw.moon.example:4556"
        );
        assert_eq!(parse_next_hop("tcpcl://[::1]:9").unwrap(), "[::1]:9");
        assert_eq!(parse_next_hop("tcpcl://[::1]").unwrap(), "[::1]:4556");
        for bad in [
            "https://gw/x",
            "tcpcl://",
            "tcpcl://gw:port",
            "tcpcl://gw/path",
            "tcpcl://u@gw",
            "tcpcl://[::1",
        ] {
            assert!(parse_next_hop(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn settings_and_defaults() {
        let s = Settings::from_config(
            "tcpcl://gw:4556",
            &kv(&[("connect-to", "127.0.0.1:4556"), ("node-id", "ipn:1.0")]),
        )
        .unwrap();
        assert_eq!(s.timeout, Duration::from_secs(20));
        assert_eq!((s.keepalive_secs, s.segment_mru), (30, 65_536));
        assert_eq!(s.session_idle, Duration::from_secs(300));
        let c = s.session_config();
        assert_eq!(c.max_segment_len, 65_536);
        assert_eq!(c.close_timeout, Duration::from_secs(2));
        let s = Settings::from_config(
            "tcpcl://gw:4556",
            &kv(&[
                ("connect-to", "[::1]:4556"),
                ("node-id", "dtn://earth-gw/"),
                ("timeout-ms", "500"),
                ("keepalive-secs", "0"),
                ("segment-mru", "1000"),
                ("session-idle-secs", "0"),
            ]),
        )
        .unwrap();
        assert_eq!(s.timeout, Duration::from_millis(500));
        assert_eq!(s.session_config().close_timeout, Duration::from_millis(500));
        assert_eq!((s.keepalive_secs, s.segment_mru), (0, 1000));
        assert_eq!(s.session_idle, Duration::ZERO);
    }

    #[test]
    fn tls_settings() {
        let base = [("connect-to", "127.0.0.1:4556"), ("node-id", "ipn:1.0")];
        let s = Settings::from_config("tcpcl://[::1]:4556", &kv(&base)).unwrap();
        assert_eq!(s.tls, TlsMode::Off);
        assert!(!s.session_config().offer_tls);
        let mut pairs = base.to_vec();
        pairs.extend([("tls", "require"), ("ca-pem", "PEM")]);
        let s = Settings::from_config("tcpcl://moon-gw.example:4556", &kv(&pairs)).unwrap();
        assert_eq!(s.tls, TlsMode::Require);
        assert_eq!(s.tls_name, "moon-gw.example");
        let c = s.session_config();
        assert!(c.offer_tls && c.require_tls);
        let s = Settings::from_config("tcpcl://[::1]:4556", &kv(&pairs)).unwrap();
        assert_eq!(s.tls_name, "::1");
        pairs.push(("tls-name", "gw.example"));
        let s = Settings::from_config("tcpcl://[::1]:4556", &kv(&pairs)).unwrap();
        assert_eq!(s.tls_name, "gw.example");

        let mut no_ca = base.to_vec();
        no_ca.push(("tls", "offer"));
        let e = Settings::from_config("tcpcl://a:1", &kv(&no_ca)).unwrap_err();
        assert!(e.0.contains("needs `ca-pem`"), "{e}");
        let mut bad = base.to_vec();
        bad.push(("tls", "yes"));
        let e = Settings::from_config("tcpcl://a:1", &kv(&bad)).unwrap_err();
        assert!(e.0.contains("off, offer or require"), "{e}");
    }

    #[test]
    fn bad_settings_say_what_to_do() {
        let e = Settings::from_config("tcpcl://gw", &kv(&[("node-id", "ipn:1.0")])).unwrap_err();
        assert!(e.0.contains("connect-to"), "{e}");
        let e =
            Settings::from_config("tcpcl://gw", &kv(&[("connect-to", "127.0.0.1:1")])).unwrap_err();
        assert!(e.0.contains("node-id"), "{e}");
        let e = Settings::from_config("tcpcl://gw", &kv(&[("node-id", "earth")])).unwrap_err();
        assert!(e.0.contains("ipn:1.0"), "{e}");
        let e = Settings::from_config("tcpcl://gw", &kv(&[("connect-to", "gw:4556")])).unwrap_err();
        assert!(e.0.contains("ip:port"), "{e}");
        let e = Settings::from_config("tcpcl://gw", &kv(&[("segment-mru", "0")])).unwrap_err();
        assert!(e.0.contains("segment-mru"), "{e}");
        let e =
            Settings::from_config("tcpcl://gw", &kv(&[("keepalive-secs", "70000")])).unwrap_err();
        assert!(e.0.contains("keepalive-secs"), "{e}");
        let e =
            Settings::from_config("tcpcl://gw", &kv(&[("session-idle-secs", "-1")])).unwrap_err();
        assert!(e.0.contains("session-idle-secs"), "{e}");
        let e = Settings::from_config("tcpcl://gw", &kv(&[("colour", "red")])).unwrap_err();
        assert!(e.0.contains("colour"), "{e}");
    }
}
