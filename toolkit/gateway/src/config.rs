//! One TOML file per gateway: what it listens on, which domains it carries,
//! which plugin serves each stage, where it spools, who its peers are and
//! its limits. [`GatewayConfig::from_toml`] validates everything at start
//! and names the key (and the file's line) of anything wrong.
//!
//! ```toml
//! name = "gw.earth.example"        # SMTP greeting, Received:, DSN Reporting-MTA
//! spool = "spool/earth"            # relative to this file
//!
//! [smtp]                           # SMTP ingress (the Earth MTA relays to it)
//! listen = "127.0.0.1:2525"
//! relay-domains = ["moon.example"] # anything else: 550 5.7.1 (no open relay)
//!
//! [receive]                        # HTTPS / HTTP/3 endpoint for Batch SMTP
//! https-listen = "127.0.0.1:8443"
//! cert = "tls/server.pem"
//! key = "tls/server.key"
//!
//! [relay]                          # received mail goes to the local MTA by SMTP
//! smtp = "127.0.0.1:25"
//! domains = ["earth.example"]      # only these are relayed; others get a DSN
//!
//! [[route]]                        # how mail for a domain leaves
//! domain = "moon.example"
//! uri = "https://gw.moon.example/inboundmail"   # else: DNS URI records
//! ca = "tls/ca.pem"
//! ```

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// A configuration that failed to load; the message names the key.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn bad(key: &str, detail: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("key `{key}`: {detail}"))
}

/// The file as written (kebab-case keys, unknown keys refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct File {
    name: String,
    spool: PathBuf,
    smtp: Option<SmtpFile>,
    receive: Option<ReceiveFile>,
    relay: Option<RelayFile>,
    #[serde(default)]
    delivery: DeliveryFile,
    #[serde(default, rename = "route")]
    routes: Vec<RouteFile>,
    #[serde(default)]
    dns: DnsFile,
    #[serde(default)]
    stages: BTreeMap<String, String>,
    #[serde(default)]
    policy: BTreeMap<String, toml::Value>,
    metrics: Option<MetricsFile>,
    bp: Option<BpFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct BpFile {
    node_id: String,
    listen: Option<String>,
    #[serde(default)]
    endpoints: Vec<String>,
    max_adu_mib: Option<u64>,
    max_pending_mib: Option<u64>,
    max_buffer_mib: Option<u64>,
    #[serde(default)]
    accept_primary_without_crc: bool,
    handshake_timeout_secs: Option<f64>,
    max_partial_age_hours: Option<f64>,
    max_pending_per_peer_mib: Option<u64>,
    #[serde(default)]
    require_bib: bool,
    #[serde(default)]
    bib_keys: BTreeMap<String, PathBuf>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct SmtpFile {
    listen: String,
    #[serde(default)]
    relay_domains: Vec<String>,
    max_message_mib: Option<u64>,
    max_recipients: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    max_connections_per_client: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct ReceiveFile {
    https_listen: Option<String>,
    h3_listen: Option<String>,
    path: Option<String>,
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
    #[serde(default)]
    tokens: Vec<String>,
    max_body_mib: Option<u64>,
    dedupe_days: Option<f64>,
    handshake_timeout_secs: Option<f64>,
    body_timeout_secs: Option<f64>,
    max_requests_per_peer: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RelayFile {
    smtp: String,
    #[serde(default)]
    domains: Vec<String>,
    helo: Option<String>,
    timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DeliveryFile {
    retry_initial_secs: Option<f64>,
    retry_max_secs: Option<f64>,
    max_age_hours: Option<f64>,
    batch_max_messages: Option<usize>,
    batch_max_mib: Option<u64>,
    timeout_secs: Option<u64>,
    concurrency: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RouteFile {
    domain: String,
    transport: Option<String>,
    uri: Option<String>,
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    token: Option<String>,
    #[serde(default)]
    allow_plain_http: bool,
    #[serde(default)]
    quic: BTreeMap<String, toml::Value>,
    tcpcl: Option<String>,
    destination: Option<String>,
    mtu: Option<u64>,
    lifetime_secs: Option<u64>,
    crc: Option<String>,
    keepalive_secs: Option<u16>,
    session_idle_secs: Option<u64>,
    bib_key_file: Option<PathBuf>,
    bib_variant: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct DnsFile {
    #[serde(default)]
    servers: Vec<String>,
    timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct MetricsFile {
    listen: String,
}

/// The SMTP ingress.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Domains mail is accepted for (lower case); a leading `.` also takes
    /// subdomains.
    pub relay_domains: Vec<String>,
    /// Largest message (SIZE).
    pub max_message_bytes: u64,
    /// Most recipients per transaction.
    pub max_recipients: usize,
    /// STARTTLS certificate chain and key (PEM paths), when offered.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Most simultaneous sessions.
    pub max_connections: usize,
    /// Most simultaneous sessions from one client address.
    pub max_connections_per_client: usize,
}

/// The HTTPS / HTTP/3 receiving endpoint.
#[derive(Debug, Clone)]
pub struct ReceiveConfig {
    /// TCP address for HTTPS.
    pub https_listen: Option<SocketAddr>,
    /// UDP address for HTTP/3.
    pub h3_listen: Option<SocketAddr>,
    /// Route, e.g. `/inboundmail`.
    pub path: String,
    /// Server certificate chain (PEM path).
    pub cert: PathBuf,
    /// Server key (PEM path).
    pub key: PathBuf,
    /// Client CA for mutual TLS (PEM path).
    pub client_ca: Option<PathBuf>,
    /// Accepted bearer tokens.
    pub tokens: Vec<String>,
    /// Largest batch.
    pub max_body_bytes: u64,
    /// How long relayed batch ids are kept for deduplication.
    pub dedupe_retention: Duration,
    /// Time allowed for a TLS or QUIC handshake and for request headers;
    /// also the QUIC idle timeout. Over a long link at least two OWLT
    /// (the handshake's round trip) plus margin.
    pub handshake_timeout: Duration,
    /// Time for a whole request body (`408` after).
    pub body_timeout: Duration,
    /// Requests in progress per client address (`503` beyond).
    pub max_requests_per_peer: usize,
}

/// Where received mail is handed on: the local MTA.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The MTA's SMTP address.
    pub smtp: SocketAddr,
    /// Mail domains the local MTA delivers itself (DSNs to senders there
    /// go straight to it, not across the link).
    pub domains: Vec<String>,
    /// EHLO name (default: the gateway's name).
    pub helo: String,
    /// Per-command timeout.
    pub timeout: Duration,
}

/// The outbound queue's schedule and batching.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// First retry delay; doubles per attempt, with ±20 % jitter.
    pub retry_initial: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Age after which a message is returned to its sender (DSN).
    pub max_age: Duration,
    /// Most messages in one Batch SMTP object.
    pub batch_max_messages: usize,
    /// Largest Batch SMTP object (a single bigger message still goes alone).
    pub batch_max_bytes: u64,
    /// Time one send may take.
    pub timeout: Duration,
    /// Batches in flight at once.
    pub concurrency: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_initial: Duration::from_secs(30),
            retry_max: Duration::from_secs(3600),
            max_age: Duration::from_secs(5 * 24 * 3600),
            batch_max_messages: 50,
            batch_max_bytes: 32 << 20,
            timeout: Duration::from_secs(120),
            concurrency: 4,
        }
    }
}

/// The transport a route uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteTransport {
    /// HTTPS POST through the https-sender (HTTP/2 or 1.1).
    Https,
    /// HTTP/3 POST through the quic-sender.
    H3,
    /// BPv7 bundles (fragmented to the MTU) over TCPCLv4 through the
    /// tcpcl-sender, one message per bundle ADU.
    Bp,
}

/// The Bundle Protocol settings of a `transport = "bp"` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BpRoute {
    /// The next BP node's TCPCL address.
    pub tcpcl: SocketAddr,
    /// The destination EID, e.g. `ipn:2.25` (service 25: mail).
    pub destination: String,
    /// Largest bundle on the link, bytes.
    pub mtu: u64,
    /// Bundle lifetime.
    pub lifetime: Duration,
    /// CRC of the primary and payload blocks: `crc16` or `crc32c`.
    pub crc: String,
    /// TCPCL keepalive interval offered, seconds (0: none).
    pub keepalive_secs: u16,
    /// How long the TCPCL session is kept open without deliveries
    /// (0: a session per delivery).
    pub session_idle: Duration,
    /// Sign every bundle (each fragment on its own) with a BIB-HMAC-SHA2
    /// block integrity block (RFC 9173 §3), as this node (`[bp] node-id`).
    pub bib: Option<BibSigning>,
}

/// A secret key, kept out of `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(pub Vec<u8>);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{}-byte key>", self.0.len())
    }
}

/// How a bp route signs its bundles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BibSigning {
    /// The key shared with the receiving gateway.
    pub key: SecretKey,
    /// The SHA-2 variant.
    pub variant: deepmail_bundle::ShaVariant,
}

/// Shortest BIB key taken: 128 bits.
pub const MIN_BIB_KEY_BYTES: usize = 16;

/// This gateway as a Bundle Protocol node.
#[derive(Debug, Clone)]
pub struct BpConfig {
    /// Our node EID, the source of the bundles we send (e.g. `ipn:1.0`).
    pub node_id: String,
    /// Where the TCPCLv4 listener runs, if any.
    pub listen: Option<SocketAddr>,
    /// Destination EIDs we accept mail bundles for; others are refused.
    pub endpoints: Vec<String>,
    /// Largest ADU reassembled.
    pub max_adu_bytes: u64,
    /// Bytes of incomplete ADUs held at once.
    pub max_pending_bytes: u64,
    /// Bytes all TCPCL sessions together may buffer in memory (transfers
    /// being received and bundles being stored).
    pub max_buffer_bytes: u64,
    /// Take whole bundles whose primary block has no CRC (RFC 9171 §4.3.1
    /// forbids it; dtn7-rs's REST `/send` writes them): they are rebuilt
    /// with CRC-32C before anything else looks at them.
    pub accept_primary_without_crc: bool,
    /// Time a TCPCL session may take from its contact header to SESS_INIT
    /// (a round trip of the link, plus margin).
    pub handshake_timeout: Duration,
    /// How long a partial ADU's fragments are held at most, whatever
    /// lifetime the bundles claim.
    pub max_partial_age: Duration,
    /// Bytes of held fragments one peer address may have in the store.
    pub max_pending_per_peer_bytes: u64,
    /// Refuse, before storing anything, every bundle that does not carry a
    /// valid BIB from a source in `bib_keys` covering its payload and its
    /// primary block.
    pub require_bib: bool,
    /// Keys of the security sources whose BIBs are checked, by source EID.
    pub bib_keys: Vec<(String, SecretKey)>,
}

/// How mail for one domain leaves.
#[derive(Debug, Clone)]
pub struct Route {
    /// The mail domain (lower case); `*` matches any domain without a
    /// route of its own.
    pub domain: String,
    /// The transport.
    pub transport: RouteTransport,
    /// A fixed next hop; `None` asks the resolver plugin (DNS URI records).
    pub uri: Option<String>,
    /// Trust roots for the next hop (PEM bytes; empty: the system's).
    pub ca_pem: Vec<u8>,
    /// Client certificate and key for mutual TLS (PEM bytes).
    pub client_identity: Option<(Vec<u8>, Vec<u8>)>,
    /// Bearer token to present.
    pub token: Option<String>,
    /// Allow `http://` next hops (loopback tests).
    pub allow_plain_http: bool,
    /// quic-sender profile settings.
    pub quic: Vec<(String, String)>,
    /// The Bundle Protocol settings, for `transport = "bp"`.
    pub bp: Option<BpRoute>,
}

/// A validated gateway configuration.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// The file it came from (for messages).
    pub source: PathBuf,
    /// Host name of this gateway.
    pub name: String,
    /// Spool directory.
    pub spool: PathBuf,
    /// SMTP ingress, if any.
    pub smtp: Option<SmtpConfig>,
    /// Receiving endpoint, if any.
    pub receive: Option<ReceiveConfig>,
    /// Local MTA for received mail and for DSNs to local senders.
    pub relay: Option<RelayConfig>,
    /// The outbound queue.
    pub delivery: DeliveryConfig,
    /// Routes, in file order.
    pub routes: Vec<Route>,
    /// DNS servers for the resolver (empty: /etc/resolv.conf).
    pub dns_servers: Vec<SocketAddr>,
    /// DNS timeout.
    pub dns_timeout_ms: u64,
    /// Plugin per stage name (`codec`, `resolver`, `sender`, `policy`, ...):
    /// `builtin:<name>` or a path.
    pub stages: BTreeMap<String, String>,
    /// Settings handed to the policy plugin.
    pub policy: Vec<(String, String)>,
    /// Where `/metrics` is served (plain HTTP).
    pub metrics_listen: Option<SocketAddr>,
    /// This gateway as a BP node, if configured.
    pub bp: Option<BpConfig>,
}

fn addr(key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
    text.to_socket_addrs()
        .map_err(|e| bad(key, format!("`{text}` is not an ADDRESS:PORT ({e})")))?
        .next()
        .ok_or_else(|| bad(key, format!("`{text}` has no address")))
}

fn mib(key: &str, value: Option<u64>, default_mib: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default_mib << 20),
        Some(0) => Err(bad(key, "must be at least 1")),
        Some(v) => v.checked_mul(1 << 20).ok_or_else(|| bad(key, "too large")),
    }
}

fn secs(key: &str, value: Option<f64>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        Some(v) => Err(bad(key, format!("{v} is not a positive number of seconds"))),
    }
}

/// Why a receiving gateway must name the domains its local MTA takes.
const NO_OPEN_RELAY: &str =
    "a gateway that receives mail must list the mail domains its local MTA \
     takes, e.g. [relay] domains = [\"moon.example\"]: a received recipient in any other domain is \
     refused with a DSN back (no open relay)";

fn domain_name(key: &str, d: &str) -> Result<String, ConfigError> {
    let d = d.trim().trim_end_matches('.').to_ascii_lowercase();
    let body = d.strip_prefix('.').unwrap_or(&d);
    let ok = d == "*"
        || (!body.is_empty()
            && body.len() <= 253
            && body.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80)
            }));
    if ok {
        Ok(d)
    } else {
        Err(bad(key, format!("`{d}` is not a domain name")))
    }
}

fn scalar(key: &str, v: &toml::Value) -> Result<String, ConfigError> {
    match v {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Array(items) => items
            .iter()
            .map(|i| scalar(key, i))
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        _ => Err(bad(key, "must be a string, number, boolean or list")),
    }
}

impl GatewayConfig {
    /// Reads and validates `path`. Relative paths inside are relative to
    /// the file's directory.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        GatewayConfig::from_toml(&text, path)
    }

    /// Parses and validates `text`, as if read from `path`.
    pub fn from_toml(text: &str, path: &Path) -> Result<GatewayConfig, ConfigError> {
        let file: File = toml::from_str(text)
            .map_err(|e| ConfigError(format!("{}: {}", path.display(), e.to_string().trim())))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rel = |p: &Path| -> PathBuf {
            if p.is_absolute() {
                p.to_path_buf()
            } else {
                base.join(p)
            }
        };
        let read = |key: &str, p: &Path| -> Result<Vec<u8>, ConfigError> {
            let full = rel(p);
            std::fs::read(&full)
                .map_err(|e| bad(key, format!("cannot read {}: {e}", full.display())))
        };
        let in_file = |e: ConfigError| ConfigError(format!("{}: {}", path.display(), e.0));
        // A BIB key file holds the key's raw bytes (e.g. `head -c 32
        // /dev/urandom > earth-moon.key`).
        let bib_key = |key: &str, p: &Path| -> Result<SecretKey, ConfigError> {
            let bytes = read(key, p)?;
            if bytes.len() < MIN_BIB_KEY_BYTES {
                return Err(bad(key, format!(
                    "{} holds {} bytes; a BIB key needs at least {MIN_BIB_KEY_BYTES} random bytes (head -c 32 /dev/urandom > FILE)",
                    rel(p).display(),
                    bytes.len()
                )));
            }
            Ok(SecretKey(bytes))
        };

        (|| {
            if file.name.trim().is_empty() {
                return Err(bad("name", "must not be empty"));
            }
            let name = domain_name("name", &file.name)?;

            let smtp = match &file.smtp {
                None => None,
                Some(s) => {
                    let mut relay_domains = Vec::new();
                    for d in &s.relay_domains {
                        relay_domains.push(domain_name("smtp.relay-domains", d)?);
                    }
                    if relay_domains.is_empty() {
                        return Err(bad(
                            "smtp.relay-domains",
                            "list the domains this gateway carries mail for (it is never an open relay)",
                        ));
                    }
                    let tls = match (&s.tls_cert, &s.tls_key) {
                        (Some(c), Some(k)) => Some((rel(c), rel(k))),
                        (None, None) => None,
                        (Some(_), None) => return Err(bad("smtp.tls-key", "missing (tls-cert is set)")),
                        (None, Some(_)) => return Err(bad("smtp.tls-cert", "missing (tls-key is set)")),
                    };
                    Some(SmtpConfig {
                        listen: addr("smtp.listen", &s.listen)?,
                        relay_domains,
                        max_message_bytes: mib("smtp.max-message-mib", s.max_message_mib, 50)?,
                        max_recipients: match s.max_recipients {
                            Some(0) => return Err(bad("smtp.max-recipients", "must be at least 1")),
                            Some(n) => n,
                            None => 100,
                        },
                        tls,
                        max_connections: s.max_connections.unwrap_or(100).max(1),
                        max_connections_per_client: match s.max_connections_per_client {
                            Some(0) => {
                                return Err(bad(
                                    "smtp.max-connections-per-client",
                                    "must be at least 1",
                                ))
                            }
                            Some(n) => n,
                            // Postfix's default: half of the sessions.
                            None => (s.max_connections.unwrap_or(100).max(1)).div_ceil(2),
                        },
                    })
                }
            };

            let receive = match &file.receive {
                None => None,
                Some(r) => {
                    let https_listen = r
                        .https_listen
                        .as_deref()
                        .map(|a| addr("receive.https-listen", a))
                        .transpose()?;
                    let h3_listen = r
                        .h3_listen
                        .as_deref()
                        .map(|a| addr("receive.h3-listen", a))
                        .transpose()?;
                    if https_listen.is_none() && h3_listen.is_none() {
                        return Err(bad("receive", "give https-listen and/or h3-listen"));
                    }
                    let path = r.path.clone().unwrap_or_else(|| crate::DEFAULT_PATH.into());
                    if !path.starts_with('/') {
                        return Err(bad("receive.path", format!("`{path}` must start with `/`")));
                    }
                    for (key, p) in [("receive.cert", &r.cert), ("receive.key", &r.key)] {
                        if !rel(p).is_file() {
                            return Err(bad(key, format!("{} is not a file", rel(p).display())));
                        }
                    }
                    Some(ReceiveConfig {
                        https_listen,
                        h3_listen,
                        path,
                        cert: rel(&r.cert),
                        key: rel(&r.key),
                        client_ca: r.client_ca.as_deref().map(rel),
                        tokens: r.tokens.clone(),
                        max_body_bytes: mib("receive.max-body-mib", r.max_body_mib, 64)?,
                        dedupe_retention: secs(
                            "receive.dedupe-days",
                            r.dedupe_days.map(|d| d * 86_400.0),
                            Duration::from_secs(30 * 86_400),
                        )?,
                        handshake_timeout: secs(
                            "receive.handshake-timeout-secs",
                            r.handshake_timeout_secs,
                            Duration::from_secs(60),
                        )?,
                        body_timeout: secs(
                            "receive.body-timeout-secs",
                            r.body_timeout_secs,
                            Duration::from_secs(600),
                        )?,
                        max_requests_per_peer: match r.max_requests_per_peer {
                            Some(0) => {
                                return Err(bad(
                                    "receive.max-requests-per-peer",
                                    "must be at least 1",
                                ))
                            }
                            Some(n) => n,
                            None => 16,
                        },
                    })
                }
            };

            let relay = match &file.relay {
                None => None,
                Some(r) => Some(RelayConfig {
                    smtp: addr("relay.smtp", &r.smtp)?,
                    domains: r
                        .domains
                        .iter()
                        .map(|d| domain_name("relay.domains", d))
                        .collect::<Result<_, _>>()?,
                    helo: match &r.helo {
                        Some(h) => domain_name("relay.helo", h)?,
                        None => name.clone(),
                    },
                    timeout: Duration::from_secs(r.timeout_secs.unwrap_or(300).max(1)),
                }),
            };
            if receive.is_some() && relay.is_none() {
                return Err(bad(
                    "relay",
                    "a gateway that receives ([receive]) must say where received mail goes: [relay] smtp = \"ADDR:PORT\"",
                ));
            }
            if receive.is_some() && relay.as_ref().is_some_and(|r| r.domains.is_empty()) {
                return Err(bad("relay.domains", NO_OPEN_RELAY));
            }

            let d = &file.delivery;
            let defaults = DeliveryConfig::default();
            let delivery = DeliveryConfig {
                retry_initial: secs("delivery.retry-initial-secs", d.retry_initial_secs, defaults.retry_initial)?,
                retry_max: secs("delivery.retry-max-secs", d.retry_max_secs, defaults.retry_max)?,
                max_age: secs(
                    "delivery.max-age-hours",
                    d.max_age_hours.map(|h| h * 3600.0),
                    defaults.max_age,
                )?,
                batch_max_messages: match d.batch_max_messages {
                    Some(0) => return Err(bad("delivery.batch-max-messages", "must be at least 1")),
                    Some(n) => n,
                    None => defaults.batch_max_messages,
                },
                batch_max_bytes: mib("delivery.batch-max-mib", d.batch_max_mib, 32)?,
                timeout: Duration::from_secs(d.timeout_secs.unwrap_or(120).max(1)),
                concurrency: d.concurrency.unwrap_or(defaults.concurrency).clamp(1, 64),
            };
            if delivery.retry_max < delivery.retry_initial {
                return Err(bad(
                    "delivery.retry-max-secs",
                    "must not be less than retry-initial-secs",
                ));
            }

            let mut routes = Vec::new();
            for (i, r) in file.routes.iter().enumerate() {
                let key = |k: &str| format!("route[{i}].{k}");
                let domain = domain_name(&key("domain"), &r.domain)?;
                let transport = match r.transport.as_deref().unwrap_or("https") {
                    "https" => RouteTransport::Https,
                    "h3" | "http3" | "quic" => RouteTransport::H3,
                    "bp" => RouteTransport::Bp,
                    other => {
                        return Err(bad(
                            &key("transport"),
                            format!("`{other}` is not a transport (https, h3, bp)"),
                        ))
                    }
                };
                let bp = if transport == RouteTransport::Bp {
                    if file.bp.is_none() {
                        return Err(bad(
                            &key("transport"),
                            "a bp route needs a [bp] section with this gateway's node-id",
                        ));
                    }
                    let tcpcl = r.tcpcl.as_deref().ok_or_else(|| {
                        bad(&key("tcpcl"), "a bp route needs the next node's TCPCL ADDRESS:PORT")
                    })?;
                    let destination = r.destination.clone().ok_or_else(|| {
                        bad(&key("destination"), "a bp route needs the destination EID, e.g. ipn:2.25")
                    })?;
                    if !valid_eid(&destination) {
                        return Err(bad(&key("destination"), format!("`{destination}` is not an ipn: or dtn: EID")));
                    }
                    let crc = r.crc.clone().unwrap_or_else(|| "crc32c".into());
                    if !matches!(crc.as_str(), "crc16" | "crc32c") {
                        return Err(bad(&key("crc"), format!("`{crc}`: crc16 or crc32c (RFC 9171 §4.3.1 wants a CRC on the primary block)")));
                    }
                    let mtu = r.mtu.unwrap_or(65_536);
                    if mtu < 256 {
                        return Err(bad(&key("mtu"), format!("{mtu} bytes cannot hold a bundle's blocks; give at least 256")));
                    }
                    let bib = match (&r.bib_key_file, &r.bib_variant) {
                        (None, Some(_)) => return Err(bad(&key("bib-variant"), "needs bib-key-file")),
                        (None, None) => None,
                        (Some(p), v) => Some(BibSigning {
                            key: bib_key(&key("bib-key-file"), p)?,
                            variant: match v {
                                None => deepmail_bundle::ShaVariant::HmacSha384,
                                Some(v) => v.parse().map_err(|e: String| bad(&key("bib-variant"), e))?,
                            },
                        }),
                    };
                    Some(BpRoute {
                        bib,
                        tcpcl: addr(&key("tcpcl"), tcpcl)?,
                        destination,
                        mtu,
                        lifetime: Duration::from_secs(r.lifetime_secs.unwrap_or(86_400).max(1)),
                        crc,
                        keepalive_secs: r.keepalive_secs.unwrap_or(30),
                        session_idle: Duration::from_secs(r.session_idle_secs.unwrap_or(300)),
                    })
                } else {
                    for (k, set) in [("tcpcl", r.tcpcl.is_some()), ("destination", r.destination.is_some()), ("mtu", r.mtu.is_some()), ("lifetime-secs", r.lifetime_secs.is_some()), ("crc", r.crc.is_some()), ("keepalive-secs", r.keepalive_secs.is_some()), ("session-idle-secs", r.session_idle_secs.is_some()), ("bib-key-file", r.bib_key_file.is_some()), ("bib-variant", r.bib_variant.is_some())] {
                        if set {
                            return Err(bad(&key(k), "only for transport = \"bp\""));
                        }
                    }
                    None
                };
                if transport == RouteTransport::Bp && r.uri.is_some() {
                    return Err(bad(&key("uri"), "a bp route has a tcpcl address and a destination EID, not a uri"));
                }
                if let Some(uri) = &r.uri {
                    let plain = uri.starts_with("http://");
                    if !(uri.starts_with("https://") || plain) {
                        return Err(bad(&key("uri"), format!("`{uri}` is not an https:// URI")));
                    }
                    if plain && !r.allow_plain_http {
                        return Err(bad(&key("uri"), "http:// needs allow-plain-http = true (loopback tests only)"));
                    }
                }
                let ca_pem = match &r.ca {
                    Some(p) => read(&key("ca"), p)?,
                    None => Vec::new(),
                };
                let client_identity = match (&r.cert, &r.key) {
                    (Some(c), Some(k)) => Some((read(&key("cert"), c)?, read(&key("key"), k)?)),
                    (None, None) => None,
                    (Some(_), None) => return Err(bad(&key("key"), "missing (cert is set)")),
                    (None, Some(_)) => return Err(bad(&key("cert"), "missing (key is set)")),
                };
                let mut quic = Vec::new();
                for (k, v) in &r.quic {
                    quic.push((k.clone(), scalar(&key(&format!("quic.{k}")), v)?));
                }
                if routes.iter().any(|x: &Route| x.domain == domain) {
                    return Err(bad(&key("domain"), format!("`{domain}` has two routes")));
                }
                routes.push(Route {
                    domain,
                    transport,
                    uri: r.uri.clone(),
                    ca_pem,
                    client_identity,
                    token: r.token.clone(),
                    allow_plain_http: r.allow_plain_http,
                    quic,
                    bp,
                });
            }

            let mut dns_servers = Vec::new();
            for s in &file.dns.servers {
                dns_servers.push(addr("dns.servers", s)?);
            }

            let known = ["codec", "fragmenter", "resolver", "sender", "policy"];
            for (stage, source) in &file.stages {
                if !known.contains(&stage.as_str()) {
                    return Err(bad(
                        &format!("stages.{stage}"),
                        format!("unknown stage (stages: {})", known.join(", ")),
                    ));
                }
                if !source.starts_with("builtin:") && !rel(Path::new(source)).is_file() {
                    return Err(bad(
                        &format!("stages.{stage}"),
                        format!("`{source}` is neither builtin:<name> nor a .wasm file"),
                    ));
                }
            }
            let stages = file
                .stages
                .iter()
                .map(|(k, v)| {
                    let v = if v.starts_with("builtin:") {
                        v.clone()
                    } else {
                        rel(Path::new(v)).display().to_string()
                    };
                    (k.clone(), v)
                })
                .collect();

            let mut policy = Vec::new();
            for (k, v) in &file.policy {
                policy.push((k.clone(), scalar(&format!("policy.{k}"), v)?));
            }

            let bp = match &file.bp {
                None => None,
                Some(b) => {
                    if !valid_eid(&b.node_id) {
                        return Err(bad("bp.node-id", format!("`{}` is not an ipn: or dtn: EID", b.node_id)));
                    }
                    for e in &b.endpoints {
                        if !valid_eid(e) {
                            return Err(bad("bp.endpoints", format!("`{e}` is not an ipn: or dtn: EID")));
                        }
                    }
                    let listen = b.listen.as_deref().map(|a| addr("bp.listen", a)).transpose()?;
                    if listen.is_some() && b.endpoints.is_empty() {
                        return Err(bad("bp.endpoints", "a TCPCL listener needs the EIDs it takes mail for, e.g. [\"ipn:2.25\"]"));
                    }
                    if listen.is_some() && relay.is_none() {
                        return Err(bad("relay", "a gateway that receives bundles ([bp] listen) must say where received mail goes: [relay] smtp = \"ADDR:PORT\""));
                    }
                    if listen.is_some() && relay.as_ref().is_some_and(|r| r.domains.is_empty()) {
                        return Err(bad("relay.domains", NO_OPEN_RELAY));
                    }
                    let mut bib_keys = Vec::new();
                    for (source, p) in &b.bib_keys {
                        let k = format!("bp.bib-keys.\"{source}\"");
                        if source.parse::<deepmail_bundle::Eid>().is_err() || !valid_eid(source) {
                            return Err(bad(&k, format!("`{source}` is not an ipn: or dtn: EID (the BIB's security source, e.g. \"ipn:1.0\")")));
                        }
                        bib_keys.push((source.clone(), bib_key(&k, p)?));
                    }
                    if b.require_bib && listen.is_none() {
                        return Err(bad("bp.require-bib", "only a gateway that receives bundles ([bp] listen) checks them"));
                    }
                    if b.require_bib && bib_keys.is_empty() {
                        return Err(bad("bp.bib-keys", "require-bib = true needs the key of each sending gateway: [bp.bib-keys] \"ipn:1.0\" = \"earth-moon.key\""));
                    }
                    Some(BpConfig {
                        node_id: b.node_id.clone(),
                        listen,
                        endpoints: b.endpoints.clone(),
                        max_adu_bytes: mib("bp.max-adu-mib", b.max_adu_mib, 64)?,
                        max_pending_bytes: mib("bp.max-pending-mib", b.max_pending_mib, 256)?,
                        max_buffer_bytes: mib("bp.max-buffer-mib", b.max_buffer_mib, 256)?,
                        accept_primary_without_crc: b.accept_primary_without_crc,
                        handshake_timeout: secs(
                            "bp.handshake-timeout-secs",
                            b.handshake_timeout_secs,
                            Duration::from_secs(30),
                        )?,
                        max_partial_age: secs(
                            "bp.max-partial-age-hours",
                            b.max_partial_age_hours.map(|h| h * 3600.0),
                            Duration::from_secs(30 * 86_400),
                        )?,
                        max_pending_per_peer_bytes: {
                            let pending = mib("bp.max-pending-mib", b.max_pending_mib, 256)?;
                            let adu = mib("bp.max-adu-mib", b.max_adu_mib, 64)?;
                            // A quarter of the store by default, and never
                            // less than one whole ADU.
                            mib(
                                "bp.max-pending-per-peer-mib",
                                b.max_pending_per_peer_mib,
                                (pending / 4).max(adu) >> 20,
                            )?
                        },
                        require_bib: b.require_bib,
                        bib_keys,
                    })
                }
            };
            let receives_bp = bp.as_ref().is_some_and(|b| b.listen.is_some());
            if smtp.is_none() && receive.is_none() && !receives_bp {
                return Err(bad(
                    "smtp",
                    "nothing to do: configure [smtp] (mail in from an MTA), [receive] (Batch SMTP in) and/or [bp] listen (bundles in)",
                ));
            }
            if smtp.is_some() && routes.is_empty() {
                return Err(bad(
                    "route",
                    "[smtp] accepts mail for relay-domains but no [[route]] says how it leaves",
                ));
            }

            Ok(GatewayConfig {
                source: path.to_path_buf(),
                name,
                spool: rel(&file.spool),
                smtp,
                receive,
                relay,
                delivery,
                routes,
                dns_servers,
                dns_timeout_ms: file.dns.timeout_ms.unwrap_or(2000).max(1),
                stages,
                policy,
                metrics_listen: file
                    .metrics
                    .as_ref()
                    .map(|m| addr("metrics.listen", &m.listen))
                    .transpose()?,
                bp,
            })
        })()
        .map_err(in_file)
    }

    /// The route for mail to `domain`: its own, else a parent domain's
    /// `.parent` route, else `*`.
    pub fn route_for(&self, domain: &str) -> Option<&Route> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.routes
            .iter()
            .find(|r| r.domain == domain)
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|r| r.domain.starts_with('.') && domain.ends_with(r.domain.as_str()))
            })
            .or_else(|| self.routes.iter().find(|r| r.domain == "*"))
    }
}

/// Whether `eid` looks like an `ipn:N.S` or `dtn://node/...` EID (RFC 9171 §4.2.5).
pub fn valid_eid(eid: &str) -> bool {
    if let Some(rest) = eid.strip_prefix("ipn:") {
        let mut parts = rest.split('.');
        let ok = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
    } else if let Some(rest) = eid.strip_prefix("dtn://") {
        rest.split('/').next().is_some_and(|n| !n.is_empty()) && rest.contains('/')
    } else {
        false
    }
}

/// Whether `domain` is one of `domains` (exact, or a subdomain of a
/// `.parent` entry), case-insensitively.
pub fn domain_listed(domains: &[String], domain: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    domains.iter().any(|d| {
        if let Some(parent) = d.strip_prefix('.') {
            domain.ends_with(d.as_str()) || domain == parent
        } else {
            *d == domain
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_toml(text, Path::new("/etc/deepmail/earth.toml"))
    }

    const EARTH: &str = r#"
name = "gw.earth.example"
spool = "spool"
[smtp]
listen = "127.0.0.1:2525"
relay-domains = ["moon.example", ".mars.example"]
[[route]]
domain = "moon.example"
uri = "https://gw.moon.example/inboundmail"
[[route]]
domain = "*"
"#;

    #[test]
    fn earth_config_loads_with_defaults() {
        let c = load(EARTH).unwrap();
        assert_eq!(c.name, "gw.earth.example");
        assert_eq!(c.spool, Path::new("/etc/deepmail/spool"));
        let smtp = c.smtp.unwrap();
        assert_eq!(smtp.max_message_bytes, 50 << 20);
        assert!(domain_listed(&smtp.relay_domains, "Moon.Example"));
        assert!(domain_listed(&smtp.relay_domains, "base.mars.example"));
        assert!(!domain_listed(&smtp.relay_domains, "evil.example"));
        assert_eq!(c.delivery.batch_max_messages, 50);
    }

    #[test]
    fn bib_keys_are_checked_when_the_config_loads() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.key");
        std::fs::write(&good, [7u8; 32]).unwrap();
        let short = dir.path().join("short.key");
        std::fs::write(&short, b"password\n").unwrap();
        let moon = |bp_extra: &str| {
            format!(
                "name = \"gw.moon.example\"\nspool = \"spool\"\n[bp]\nnode-id = \"ipn:2.0\"\n\
                 listen = \"127.0.0.1:4556\"\nendpoints = [\"ipn:2.25\"]\n{bp_extra}\n\
                 [relay]\nsmtp = \"127.0.0.1:25\"\ndomains = [\"moon.example\"]\n"
            )
        };
        let key_line = |p: &Path| format!("[bp.bib-keys]\n\"ipn:1.0\" = \"{}\"\n", p.display());
        let e = load(&moon("require-bib = true")).unwrap_err().to_string();
        assert!(
            e.contains("bp.bib-keys") && e.contains("require-bib = true needs"),
            "{e}"
        );
        // The table must come after the [bp] keys.
        let c = load(&moon(&format!("require-bib = true\n{}", key_line(&good)))).unwrap();
        let bp = c.bp.unwrap();
        assert!(bp.require_bib);
        assert_eq!(
            bp.bib_keys,
            vec![("ipn:1.0".to_string(), SecretKey(vec![7; 32]))]
        );
        assert_eq!(format!("{:?}", bp.bib_keys[0].1), "<32-byte key>");
        let e = load(&moon(&key_line(&short))).unwrap_err().to_string();
        assert!(
            e.contains("bp.bib-keys.\"ipn:1.0\"") && e.contains("holds 9 bytes"),
            "{e}"
        );
        let e = load(&moon(&format!(
            "[bp.bib-keys]\n\"mars\" = \"{}\"\n",
            good.display()
        )))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`mars` is not an ipn: or dtn: EID"), "{e}");

        let earth = format!("{EARTH}\n[bp]\nnode-id = \"ipn:1.0\"\n").replace(
            "uri = \"https://gw.moon.example/inboundmail\"",
            "transport = \"bp\"\ntcpcl = \"127.0.0.1:4556\"\ndestination = \"ipn:2.25\"\nBIB",
        );
        let c =
            load(&earth.replace("BIB", &format!("bib-key-file = \"{}\"", good.display()))).unwrap();
        let bib = c
            .route_for("moon.example")
            .unwrap()
            .bp
            .clone()
            .unwrap()
            .bib
            .unwrap();
        assert_eq!(bib.variant, deepmail_bundle::ShaVariant::HmacSha384);
        let e = load(&earth.replace("BIB", "bib-variant = \"hmac-sha256\""))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bib-variant") && e.contains("needs bib-key-file"),
            "{e}"
        );
        let e = load(&earth.replace(
            "BIB",
            &format!(
                "bib-key-file = \"{}\"\nbib-variant = \"md5\"",
                good.display()
            ),
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("`md5` is not a BIB-HMAC-SHA2 variant"), "{e}");
    }

    #[test]
    fn a_bp_route_is_one_line_of_config() {
        let text = format!(
            "{EARTH}\n[bp]\nnode-id = \"ipn:1.0\"\n"
        )
        .replace(
            "uri = \"https://gw.moon.example/inboundmail\"",
            "transport = \"bp\"\ntcpcl = \"127.0.0.1:4556\"\ndestination = \"ipn:2.25\"\nmtu = 65536",
        );
        let c = load(&text).unwrap();
        let bp = c.route_for("moon.example").unwrap().bp.clone().unwrap();
        assert_eq!(bp.destination, "ipn:2.25");
        assert_eq!(bp.crc, "crc32c");
        assert_eq!(bp.lifetime, Duration::from_secs(86_400));
        assert_eq!(
            (bp.keepalive_secs, bp.session_idle),
            (30, Duration::from_secs(300))
        );
        assert_eq!(
            c.bp.as_ref().unwrap().handshake_timeout,
            Duration::from_secs(30)
        );
        let tuned = load(
            &text
                .replace(
                    "mtu = 65536",
                    "mtu = 65536\nkeepalive-secs = 1800\nsession-idle-secs = 0",
                )
                .replace(
                    "node-id = \"ipn:1.0\"",
                    "node-id = \"ipn:1.0\"\nhandshake-timeout-secs = 960",
                ),
        )
        .unwrap();
        assert_eq!(
            tuned.bp.as_ref().unwrap().handshake_timeout,
            Duration::from_secs(960)
        );
        let e = load(&text.replace(
            "node-id = \"ipn:1.0\"",
            "node-id = \"ipn:1.0\"\nhandshake-timeout-secs = 0",
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("bp.handshake-timeout-secs"), "{e}");
        let bp = tuned.route_for("moon.example").unwrap().bp.clone().unwrap();
        assert_eq!((bp.keepalive_secs, bp.session_idle), (1800, Duration::ZERO));
        let e = load(&text.replace("mtu = 65536", "mtu = 65536\nkeepalive-secs = 70000"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("keepalive-secs"), "{e}");
        let e = load(&text.replace("ipn:2.25", "moon"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`route[0].destination`"), "{e}");
        let e = load(&text.replace("[bp]\nnode-id = \"ipn:1.0\"", ""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[bp]"), "{e}");
        assert!(valid_eid("dtn://moon-gw/mail") && valid_eid("ipn:2.25"));
        assert!(!valid_eid("ipn:2") && !valid_eid("dtn://") && !valid_eid("mailto:x"));
    }

    #[test]
    fn routes_fall_back_to_star() {
        let c = load(EARTH).unwrap();
        assert_eq!(c.route_for("MOON.example.").unwrap().domain, "moon.example");
        assert_eq!(c.route_for("venus.example").unwrap().domain, "*");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (EARTH.replace("2525\"", "x\""), "smtp.listen"),
            (
                EARTH.replace("\"moon.example\", ", "\"bad domain\", "),
                "smtp.relay-domains",
            ),
            (
                EARTH.replace("uri = \"https", "uri = \"ftp"),
                "route[0].uri",
            ),
            (
                format!("{EARTH}\n[delivery]\nbatch-max-messages = 0\n"),
                "delivery.batch-max-messages",
            ),
            (
                format!("{EARTH}\n[stages]\nfoo = \"builtin:x\"\n"),
                "stages.foo",
            ),
            (
                format!("{EARTH}\n[relay]\nsmtp = \"nowhere\"\n"),
                "relay.smtp",
            ),
        ];
        for (text, key) in cases {
            let e = load(&text).unwrap_err().to_string();
            assert!(e.contains(&format!("`{key}`")), "{key}: {e}");
            assert!(e.starts_with("/etc/deepmail/earth.toml"), "{e}");
        }
    }

    #[test]
    fn unknown_keys_and_syntax_errors_say_where() {
        let e = load(&EARTH.replace("spool =", "spoool ="))
            .unwrap_err()
            .to_string();
        assert!(e.contains("spoool"), "{e}");
        let e = load("name = ").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    #[test]
    fn smtp_without_route_or_receive_without_relay_is_refused() {
        let e = load(&EARTH.replace("[[route]]", "[[nothing]]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("nothing"), "{e}");
        let e = load("name = \"gw\"\nspool = \"s\"\n[smtp]\nlisten = \"127.0.0.1:1\"\nrelay-domains = [\"a.example\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("`route`"), "{e}");
    }
}
