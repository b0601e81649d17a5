//! The validated configuration, as the gateway uses it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// After this long still queued, the sender gets one `Action: delayed`
    /// DSN (RFC 3464) saying when the next window opens; `None`: never.
    pub delay_warning: Option<Duration>,
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
            delay_warning: Some(Duration::from_secs(24 * 3600)),
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
    /// TCPCL over TLS (RFC 9174 §4.4): `tls = "off" | "offer" | "require"`;
    /// the peer's certificate must chain to the route's `ca`.
    pub tls: TcpclTls,
    /// The name the peer's certificate must carry (`tls-name`); `None`:
    /// the `tcpcl` address's IP.
    pub tls_name: Option<String>,
}

/// Whether a TCPCL session offers or requires TLS (RFC 9174 §4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TcpclTls {
    /// No CAN_TLS: plain TCP.
    #[default]
    Off,
    /// CAN_TLS; TLS when the peer offers it too.
    Offer,
    /// CAN_TLS; a peer that does not offer TLS is refused.
    Require,
}

impl TcpclTls {
    /// The configuration word.
    pub fn as_str(self) -> &'static str {
        match self {
            TcpclTls::Off => "off",
            TcpclTls::Offer => "offer",
            TcpclTls::Require => "require",
        }
    }
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
    /// Take gzip-compressed bundle payloads (recognised by their magic
    /// number; decompressed within `max_adu_bytes` and 100:1).
    pub accept_compressed: bool,
    /// The TCPCL listener's TLS certificate chain and key (PEM files,
    /// `tls-cert` and `tls-key`): with them it offers TLS (RFC 9174 §4.4).
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Refuse TCPCL sessions without TLS (`require-tls`).
    pub require_tls: bool,
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
    /// When the link is up: without a plan, always (and failures back off).
    pub plan: Option<RoutePlan>,
    /// Age after which a message is returned to its sender. With a plan it
    /// counts only time the link was planned up.
    pub max_age: Duration,
    /// Absolute age limit, whatever the plan (with a plan only).
    pub max_age_cap: Duration,
    /// gzip what crosses the link (HTTP: `Content-Encoding: gzip`; BP: the
    /// bundle payload).
    pub compress: bool,
}

/// A route's contact plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    /// Where it came from (a file, or `inline`), for messages.
    pub source: String,
    /// The sending node and the receiving node the windows are for.
    pub nodes: (u64, u64),
    /// The windows of this route's direction; shared by every clone of the
    /// configuration, so a reload (SIGHUP) reaches every part of a running
    /// gateway at once.
    pub link: SharedLink,
}

/// A [`Link`](deepmail_contact_plan::Link) that can be replaced while in use.
#[derive(Debug, Clone, Default)]
pub struct SharedLink(std::sync::Arc<std::sync::RwLock<deepmail_contact_plan::Link>>);

impl PartialEq for SharedLink {
    fn eq(&self, other: &Self) -> bool {
        *self.read() == *other.read()
    }
}
impl Eq for SharedLink {}

impl SharedLink {
    /// A shared copy of `link`.
    pub fn new(link: deepmail_contact_plan::Link) -> SharedLink {
        SharedLink(std::sync::Arc::new(std::sync::RwLock::new(link)))
    }

    /// The link as it is now.
    pub fn read(&self) -> std::sync::RwLockReadGuard<'_, deepmail_contact_plan::Link> {
        self.0.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `link` in its place, for every holder.
    pub fn replace(&self, link: deepmail_contact_plan::Link) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = link;
    }

    /// The window open at `t`.
    pub fn at(&self, t: u64) -> Option<deepmail_contact_plan::Window> {
        self.read().at(t).copied()
    }

    /// The window open at `t`, else the next one.
    pub fn next(&self, t: u64) -> Option<deepmail_contact_plan::Window> {
        self.read().next(t).copied()
    }

    /// Planned up-time within `[a, b)`, ms.
    pub fn up_ms(&self, a: u64, b: u64) -> u64 {
        self.read().up_ms(a, b)
    }
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
