//! The file as written: kebab-case keys, unknown keys refused.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// The file as written (kebab-case keys, unknown keys refused).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct File {
    pub(crate) name: String,
    pub(crate) spool: PathBuf,
    pub(crate) smtp: Option<SmtpFile>,
    pub(crate) receive: Option<ReceiveFile>,
    pub(crate) relay: Option<RelayFile>,
    #[serde(default)]
    pub(crate) delivery: DeliveryFile,
    #[serde(default, rename = "route")]
    pub(crate) routes: Vec<RouteFile>,
    #[serde(default)]
    pub(crate) dns: DnsFile,
    #[serde(default)]
    pub(crate) stages: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) policy: BTreeMap<String, toml::Value>,
    pub(crate) metrics: Option<MetricsFile>,
    pub(crate) bp: Option<BpFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct BpFile {
    pub(crate) node_id: String,
    pub(crate) listen: Option<String>,
    #[serde(default)]
    pub(crate) endpoints: Vec<String>,
    pub(crate) max_adu_mib: Option<u64>,
    pub(crate) max_pending_mib: Option<u64>,
    pub(crate) max_buffer_mib: Option<u64>,
    #[serde(default)]
    pub(crate) accept_primary_without_crc: bool,
    pub(crate) handshake_timeout_secs: Option<f64>,
    pub(crate) max_partial_age_hours: Option<f64>,
    pub(crate) max_pending_per_peer_mib: Option<u64>,
    #[serde(default)]
    pub(crate) require_bib: bool,
    pub(crate) accept_compressed: Option<bool>,
    #[serde(default)]
    pub(crate) bib_keys: BTreeMap<String, PathBuf>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    #[serde(default)]
    pub(crate) require_tls: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct SmtpFile {
    pub(crate) listen: String,
    #[serde(default)]
    pub(crate) relay_domains: Vec<String>,
    pub(crate) max_message_mib: Option<u64>,
    pub(crate) max_recipients: Option<usize>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) max_connections: Option<usize>,
    pub(crate) max_connections_per_client: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ReceiveFile {
    pub(crate) https_listen: Option<String>,
    pub(crate) h3_listen: Option<String>,
    pub(crate) path: Option<String>,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) client_ca: Option<PathBuf>,
    #[serde(default)]
    pub(crate) tokens: Vec<String>,
    pub(crate) max_body_mib: Option<u64>,
    pub(crate) dedupe_days: Option<f64>,
    pub(crate) handshake_timeout_secs: Option<f64>,
    pub(crate) body_timeout_secs: Option<f64>,
    pub(crate) max_requests_per_peer: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RelayFile {
    pub(crate) smtp: String,
    #[serde(default)]
    pub(crate) domains: Vec<String>,
    pub(crate) helo: Option<String>,
    pub(crate) timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DeliveryFile {
    pub(crate) delay_warning_hours: Option<f64>,
    pub(crate) retry_initial_secs: Option<f64>,
    pub(crate) retry_max_secs: Option<f64>,
    pub(crate) max_age_hours: Option<f64>,
    pub(crate) batch_max_messages: Option<usize>,
    pub(crate) batch_max_mib: Option<u64>,
    pub(crate) timeout_secs: Option<u64>,
    pub(crate) concurrency: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RouteFile {
    pub(crate) domain: String,
    pub(crate) transport: Option<String>,
    pub(crate) uri: Option<String>,
    pub(crate) ca: Option<PathBuf>,
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
    pub(crate) token: Option<String>,
    #[serde(default)]
    pub(crate) allow_plain_http: bool,
    #[serde(default)]
    pub(crate) quic: BTreeMap<String, toml::Value>,
    pub(crate) tcpcl: Option<String>,
    pub(crate) destination: Option<String>,
    pub(crate) mtu: Option<u64>,
    pub(crate) lifetime_secs: Option<u64>,
    pub(crate) crc: Option<String>,
    pub(crate) keepalive_secs: Option<u16>,
    pub(crate) session_idle_secs: Option<u64>,
    pub(crate) bib_key_file: Option<PathBuf>,
    pub(crate) bib_variant: Option<String>,
    pub(crate) tls: Option<String>,
    pub(crate) tls_name: Option<String>,
    pub(crate) contact_plan: Option<PathBuf>,
    pub(crate) contacts: Option<String>,
    pub(crate) plan_from_node: Option<u64>,
    pub(crate) plan_to_node: Option<u64>,
    pub(crate) max_age_hours: Option<f64>,
    pub(crate) max_age_cap_days: Option<f64>,
    pub(crate) compress: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct DnsFile {
    #[serde(default)]
    pub(crate) servers: Vec<String>,
    pub(crate) timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct MetricsFile {
    pub(crate) listen: String,
}
