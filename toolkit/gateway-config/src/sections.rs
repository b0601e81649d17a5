//! One validating function per section of the file. Each names the key of
//! anything wrong; what lies outside the text (files, addresses) is read
//! through the [`Ctx`]'s [`Environment`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::env::Environment;
use crate::file::{BpFile, DeliveryFile, DnsFile, ReceiveFile, RelayFile, RouteFile, SmtpFile};
use crate::model::*;
use crate::{bad, valid_eid, ConfigError, DEFAULT_PATH};

/// Where relative paths start, and how the outside world is read.
pub(crate) struct Ctx<'a> {
    pub(crate) base: &'a Path,
    pub(crate) env: &'a dyn Environment,
}

impl Ctx<'_> {
    /// `p` relative to the configuration file's directory.
    pub(crate) fn rel(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    pub(crate) fn read(&self, key: &str, p: &Path) -> Result<Vec<u8>, ConfigError> {
        let full = self.rel(p);
        self.env
            .read(&full)
            .map_err(|e| bad(key, format!("cannot read {}: {e}", full.display())))
    }

    /// A BIB key file holds the key's raw bytes (e.g. `head -c 32
    /// /dev/urandom > earth-moon.key`).
    fn bib_key(&self, key: &str, p: &Path) -> Result<SecretKey, ConfigError> {
        let bytes = self.read(key, p)?;
        if bytes.len() < MIN_BIB_KEY_BYTES {
            return Err(bad(
                key,
                format!(
                    "{} holds {} bytes; a BIB key needs at least {MIN_BIB_KEY_BYTES} random bytes (head -c 32 /dev/urandom > FILE)",
                    self.rel(p).display(),
                    bytes.len()
                ),
            ));
        }
        Ok(SecretKey(bytes))
    }

    pub(crate) fn addr(&self, key: &str, text: &str) -> Result<SocketAddr, ConfigError> {
        self.env
            .resolve(text)
            .map_err(|e| bad(key, format!("`{text}` is not an ADDRESS:PORT ({e})")))?
            .into_iter()
            .next()
            .ok_or_else(|| bad(key, format!("`{text}` has no address")))
    }
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

/// At least one, else the key is named.
fn at_least_one(key: &str, value: Option<usize>, default: usize) -> Result<usize, ConfigError> {
    match value {
        Some(0) => Err(bad(key, "must be at least 1")),
        Some(n) => Ok(n),
        None => Ok(default),
    }
}

/// Why a receiving gateway must name the domains its local MTA takes.
const NO_OPEN_RELAY: &str =
    "a gateway that receives mail must list the mail domains its local MTA \
     takes, e.g. [relay] domains = [\"moon.example\"]: a received recipient in any other domain is \
     refused with a DSN back (no open relay)";

pub(crate) fn domain_name(key: &str, d: &str) -> Result<String, ConfigError> {
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

/// `[smtp]`: mail in from the local MTA.
pub(crate) fn smtp(cx: &Ctx, s: &SmtpFile) -> Result<SmtpConfig, ConfigError> {
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
        (Some(c), Some(k)) => Some((cx.rel(c), cx.rel(k))),
        (None, None) => None,
        (Some(_), None) => return Err(bad("smtp.tls-key", "missing (tls-cert is set)")),
        (None, Some(_)) => return Err(bad("smtp.tls-cert", "missing (tls-key is set)")),
    };
    let max_connections = s.max_connections.unwrap_or(100).max(1);
    Ok(SmtpConfig {
        listen: cx.addr("smtp.listen", &s.listen)?,
        relay_domains,
        max_message_bytes: mib("smtp.max-message-mib", s.max_message_mib, 50)?,
        max_recipients: at_least_one("smtp.max-recipients", s.max_recipients, 100)?,
        tls,
        max_connections,
        // Postfix's default: half of the sessions.
        max_connections_per_client: at_least_one(
            "smtp.max-connections-per-client",
            s.max_connections_per_client,
            max_connections.div_ceil(2),
        )?,
    })
}

/// `[receive]`: the HTTPS / HTTP/3 endpoint.
pub(crate) fn receive(cx: &Ctx, r: &ReceiveFile) -> Result<ReceiveConfig, ConfigError> {
    let https_listen = r
        .https_listen
        .as_deref()
        .map(|a| cx.addr("receive.https-listen", a))
        .transpose()?;
    let h3_listen = r
        .h3_listen
        .as_deref()
        .map(|a| cx.addr("receive.h3-listen", a))
        .transpose()?;
    if https_listen.is_none() && h3_listen.is_none() {
        return Err(bad("receive", "give https-listen and/or h3-listen"));
    }
    let path = r.path.clone().unwrap_or_else(|| DEFAULT_PATH.into());
    if !path.starts_with('/') {
        return Err(bad("receive.path", format!("`{path}` must start with `/`")));
    }
    for (key, p) in [("receive.cert", &r.cert), ("receive.key", &r.key)] {
        if !cx.env.is_file(&cx.rel(p)) {
            return Err(bad(key, format!("{} is not a file", cx.rel(p).display())));
        }
    }
    Ok(ReceiveConfig {
        https_listen,
        h3_listen,
        path,
        cert: cx.rel(&r.cert),
        key: cx.rel(&r.key),
        client_ca: r.client_ca.as_deref().map(|p| cx.rel(p)),
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
        max_requests_per_peer: at_least_one(
            "receive.max-requests-per-peer",
            r.max_requests_per_peer,
            16,
        )?,
    })
}

/// `[relay]`: where received mail goes.
pub(crate) fn relay(cx: &Ctx, r: &RelayFile, name: &str) -> Result<RelayConfig, ConfigError> {
    Ok(RelayConfig {
        smtp: cx.addr("relay.smtp", &r.smtp)?,
        domains: r
            .domains
            .iter()
            .map(|d| domain_name("relay.domains", d))
            .collect::<Result<_, _>>()?,
        helo: match &r.helo {
            Some(h) => domain_name("relay.helo", h)?,
            None => name.to_string(),
        },
        timeout: Duration::from_secs(r.timeout_secs.unwrap_or(300).max(1)),
    })
}

/// A gateway that receives (HTTP or bundles) must relay, and only for the
/// domains it names.
pub(crate) fn receiver_relays(what: &str, relay: Option<&RelayConfig>) -> Result<(), ConfigError> {
    match relay {
        None => Err(bad(
            "relay",
            format!(
                "a gateway that receives ({what}) must say where received mail goes: [relay] smtp = \"ADDR:PORT\""
            ),
        )),
        Some(r) if r.domains.is_empty() => Err(bad("relay.domains", NO_OPEN_RELAY)),
        Some(_) => Ok(()),
    }
}

/// `[delivery]`: the outbound queue's schedule and batching.
pub(crate) fn delivery(d: &DeliveryFile) -> Result<DeliveryConfig, ConfigError> {
    let defaults = DeliveryConfig::default();
    let delivery = DeliveryConfig {
        retry_initial: secs(
            "delivery.retry-initial-secs",
            d.retry_initial_secs,
            defaults.retry_initial,
        )?,
        retry_max: secs(
            "delivery.retry-max-secs",
            d.retry_max_secs,
            defaults.retry_max,
        )?,
        max_age: secs(
            "delivery.max-age-hours",
            d.max_age_hours.map(|h| h * 3600.0),
            defaults.max_age,
        )?,
        batch_max_messages: at_least_one(
            "delivery.batch-max-messages",
            d.batch_max_messages,
            defaults.batch_max_messages,
        )?,
        batch_max_bytes: mib("delivery.batch-max-mib", d.batch_max_mib, 32)?,
        timeout: Duration::from_secs(d.timeout_secs.unwrap_or(120).max(1)),
        concurrency: d.concurrency.unwrap_or(defaults.concurrency).clamp(1, 64),
        delay_warning: match d.delay_warning_hours {
            Some(0.0) => None,
            Some(h) => Some(secs(
                "delivery.delay-warning-hours",
                Some(h * 3600.0),
                Duration::ZERO,
            )?),
            None => defaults.delay_warning,
        },
    };
    if delivery.retry_max < delivery.retry_initial {
        return Err(bad(
            "delivery.retry-max-secs",
            "must not be less than retry-initial-secs",
        ));
    }
    Ok(delivery)
}

/// The `[[route]]` at index `i`.
pub(crate) fn route(
    cx: &Ctx,
    i: usize,
    r: &RouteFile,
    node_id: Option<&str>,
    default_max_age: Duration,
) -> Result<Route, ConfigError> {
    let have_bp = node_id.is_some();
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
        if !have_bp {
            return Err(bad(
                &key("transport"),
                "a bp route needs a [bp] section with this gateway's node-id",
            ));
        }
        if r.uri.is_some() {
            return Err(bad(
                &key("uri"),
                "a bp route has a tcpcl address and a destination EID, not a uri",
            ));
        }
        Some(bp_route(cx, &key, r)?)
    } else {
        for (k, set) in [
            ("tcpcl", r.tcpcl.is_some()),
            ("destination", r.destination.is_some()),
            ("mtu", r.mtu.is_some()),
            ("lifetime-secs", r.lifetime_secs.is_some()),
            ("crc", r.crc.is_some()),
            ("keepalive-secs", r.keepalive_secs.is_some()),
            ("session-idle-secs", r.session_idle_secs.is_some()),
            ("bib-key-file", r.bib_key_file.is_some()),
            ("bib-variant", r.bib_variant.is_some()),
            ("tls", r.tls.is_some()),
            ("tls-name", r.tls_name.is_some()),
        ] {
            if set {
                return Err(bad(&key(k), "only for transport = \"bp\""));
            }
        }
        None
    };
    if let Some(uri) = &r.uri {
        let plain = uri.starts_with("http://");
        if !(uri.starts_with("https://") || plain) {
            return Err(bad(&key("uri"), format!("`{uri}` is not an https:// URI")));
        }
        if plain && !r.allow_plain_http {
            return Err(bad(
                &key("uri"),
                "http:// needs allow-plain-http = true (loopback tests only)",
            ));
        }
    }
    let ca_pem = match &r.ca {
        Some(p) => cx.read(&key("ca"), p)?,
        None => Vec::new(),
    };
    let client_identity = match (&r.cert, &r.key) {
        (Some(c), Some(k)) => Some((cx.read(&key("cert"), c)?, cx.read(&key("key"), k)?)),
        (None, None) => None,
        (Some(_), None) => return Err(bad(&key("key"), "missing (cert is set)")),
        (None, Some(_)) => return Err(bad(&key("cert"), "missing (key is set)")),
    };
    let mut quic = Vec::new();
    for (k, v) in &r.quic {
        quic.push((k.clone(), scalar(&key(&format!("quic.{k}")), v)?));
    }
    let plan = route_plan(
        cx,
        &key,
        r,
        bp.as_ref().map(|b| b.destination.as_str()),
        node_id,
    )?;
    let max_age = secs(
        &key("max-age-hours"),
        r.max_age_hours.map(|h| h * 3600.0),
        default_max_age,
    )?;
    let max_age_cap = secs(
        &key("max-age-cap-days"),
        r.max_age_cap_days.map(|d| d * 86_400.0),
        // Without a plan the age limit is absolute already; with one,
        // ten times the up-time limit in calendar time.
        if plan.is_some() {
            max_age.saturating_mul(10)
        } else {
            max_age
        },
    )?;
    if plan.is_none() && r.max_age_cap_days.is_some() {
        return Err(bad(
            &key("max-age-cap-days"),
            "only with a contact plan (without one, max-age-hours is the absolute limit)",
        ));
    }
    let compress = match r.compress.as_deref() {
        None | Some("none") => false,
        Some("gzip") => true,
        Some(other) => return Err(bad(&key("compress"), format!("`{other}`: gzip or none"))),
    };
    Ok(Route {
        compress,
        plan,
        max_age,
        max_age_cap,
        domain,
        transport,
        uri: r.uri.clone(),
        ca_pem,
        client_identity,
        token: r.token.clone(),
        allow_plain_http: r.allow_plain_http,
        quic,
        bp,
    })
}

/// The Bundle Protocol keys of a `transport = "bp"` route.
fn bp_route(cx: &Ctx, key: &dyn Fn(&str) -> String, r: &RouteFile) -> Result<BpRoute, ConfigError> {
    let tcpcl = r.tcpcl.as_deref().ok_or_else(|| {
        bad(
            &key("tcpcl"),
            "a bp route needs the next node's TCPCL ADDRESS:PORT",
        )
    })?;
    let destination = r.destination.clone().ok_or_else(|| {
        bad(
            &key("destination"),
            "a bp route needs the destination EID, e.g. ipn:2.25",
        )
    })?;
    if !valid_eid(&destination) {
        return Err(bad(
            &key("destination"),
            format!("`{destination}` is not an ipn: or dtn: EID"),
        ));
    }
    let crc = r.crc.clone().unwrap_or_else(|| "crc32c".into());
    if !matches!(crc.as_str(), "crc16" | "crc32c") {
        return Err(bad(
            &key("crc"),
            format!("`{crc}`: crc16 or crc32c (RFC 9171 §4.3.1 wants a CRC on the primary block)"),
        ));
    }
    let mtu = r.mtu.unwrap_or(65_536);
    if mtu < 256 {
        return Err(bad(
            &key("mtu"),
            format!("{mtu} bytes cannot hold a bundle's blocks; give at least 256"),
        ));
    }
    let bib = match (&r.bib_key_file, &r.bib_variant) {
        (None, Some(_)) => return Err(bad(&key("bib-variant"), "needs bib-key-file")),
        (None, None) => None,
        (Some(p), v) => Some(BibSigning {
            key: cx.bib_key(&key("bib-key-file"), p)?,
            variant: match v {
                None => deepmail_bundle::ShaVariant::HmacSha384,
                Some(v) => v.parse().map_err(|e: deepmail_bundle::UnknownShaVariant| {
                    bad(&key("bib-variant"), e.to_string())
                })?,
            },
        }),
    };
    let tls = match r.tls.as_deref() {
        None | Some("off") => TcpclTls::Off,
        Some("offer") => TcpclTls::Offer,
        Some("require") => TcpclTls::Require,
        Some(other) => {
            return Err(bad(
                &key("tls"),
                format!("`{other}`: off, offer or require (TCPCL over TLS, RFC 9174 §4.4)"),
            ))
        }
    };
    if tls != TcpclTls::Off && r.ca.is_none() {
        return Err(bad(
            &key("ca"),
            "tls = offer/require needs the CA that signs the next node's TLS certificate (ca = \"tls/ca.pem\")",
        ));
    }
    if tls == TcpclTls::Off && r.tls_name.is_some() {
        return Err(bad(&key("tls-name"), "only with tls = offer or require"));
    }
    if let Some(name) = &r.tls_name {
        if name.is_empty() || name.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad(
                &key("tls-name"),
                format!("`{}` is not a DNS name or IP address", name.escape_debug()),
            ));
        }
    }
    Ok(BpRoute {
        tls,
        tls_name: r.tls_name.clone(),
        bib,
        tcpcl: cx.addr(&key("tcpcl"), tcpcl)?,
        destination,
        mtu,
        lifetime: Duration::from_secs(r.lifetime_secs.unwrap_or(86_400).max(1)),
        crc,
        keepalive_secs: r.keepalive_secs.unwrap_or(30),
        session_idle: Duration::from_secs(r.session_idle_secs.unwrap_or(300)),
    })
}

/// `[dns]`: the resolver's servers.
pub(crate) fn dns_servers(cx: &Ctx, d: &DnsFile) -> Result<Vec<SocketAddr>, ConfigError> {
    d.servers
        .iter()
        .map(|s| cx.addr("dns.servers", s))
        .collect()
}

/// `[stages]`: a plugin per stage, `builtin:<name>` or a `.wasm` path.
pub(crate) fn stages(
    cx: &Ctx,
    stages: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let known = ["codec", "fragmenter", "resolver", "sender", "policy"];
    let mut out = BTreeMap::new();
    for (stage, source) in stages {
        let key = format!("stages.{stage}");
        if !known.contains(&stage.as_str()) {
            return Err(bad(
                &key,
                format!("unknown stage (stages: {})", known.join(", ")),
            ));
        }
        let source = if source.starts_with("builtin:") {
            source.clone()
        } else {
            let path = cx.rel(Path::new(source));
            if !cx.env.is_file(&path) {
                return Err(bad(
                    &key,
                    format!("`{source}` is neither builtin:<name> nor a .wasm file"),
                ));
            }
            path.display().to_string()
        };
        out.insert(stage.clone(), source);
    }
    Ok(out)
}

/// `[policy]`: settings handed to the policy plugin as strings.
pub(crate) fn policy(
    policy: &BTreeMap<String, toml::Value>,
) -> Result<Vec<(String, String)>, ConfigError> {
    policy
        .iter()
        .map(|(k, v)| Ok((k.clone(), scalar(&format!("policy.{k}"), v)?)))
        .collect()
}

/// `[bp]`: this gateway as a Bundle Protocol node.
pub(crate) fn bp(
    cx: &Ctx,
    b: &BpFile,
    relay: Option<&RelayConfig>,
) -> Result<BpConfig, ConfigError> {
    if !valid_eid(&b.node_id) {
        return Err(bad(
            "bp.node-id",
            format!("`{}` is not an ipn: or dtn: EID", b.node_id),
        ));
    }
    for e in &b.endpoints {
        if !valid_eid(e) {
            return Err(bad(
                "bp.endpoints",
                format!("`{e}` is not an ipn: or dtn: EID"),
            ));
        }
    }
    let listen = b
        .listen
        .as_deref()
        .map(|a| cx.addr("bp.listen", a))
        .transpose()?;
    if listen.is_some() {
        if b.endpoints.is_empty() {
            return Err(bad(
                "bp.endpoints",
                "a TCPCL listener needs the EIDs it takes mail for, e.g. [\"ipn:2.25\"]",
            ));
        }
        receiver_relays("bundles, [bp] listen", relay)?;
    }
    let mut bib_keys = Vec::new();
    for (source, p) in &b.bib_keys {
        let k = format!("bp.bib-keys.\"{source}\"");
        if source.parse::<deepmail_bundle::Eid>().is_err() || !valid_eid(source) {
            return Err(bad(
                &k,
                format!("`{source}` is not an ipn: or dtn: EID (the BIB's security source, e.g. \"ipn:1.0\")"),
            ));
        }
        bib_keys.push((source.clone(), cx.bib_key(&k, p)?));
    }
    if b.require_bib && listen.is_none() {
        return Err(bad(
            "bp.require-bib",
            "only a gateway that receives bundles ([bp] listen) checks them",
        ));
    }
    if b.require_bib && bib_keys.is_empty() {
        return Err(bad(
            "bp.bib-keys",
            "require-bib = true needs the key of each sending gateway: [bp.bib-keys] \"ipn:1.0\" = \"earth-moon.key\"",
        ));
    }
    let tls = match (&b.tls_cert, &b.tls_key) {
        (Some(c), Some(k)) => Some((cx.rel(c), cx.rel(k))),
        (None, None) => None,
        (Some(_), None) => return Err(bad("bp.tls-key", "missing (tls-cert is set)")),
        (None, Some(_)) => return Err(bad("bp.tls-cert", "missing (tls-key is set)")),
    };
    if tls.is_some() && listen.is_none() {
        return Err(bad(
            "bp.tls-cert",
            "only a gateway with a TCPCL listener ([bp] listen) serves TLS",
        ));
    }
    if b.require_tls && tls.is_none() {
        return Err(bad(
            "bp.require-tls",
            "require-tls = true needs the listener's certificate: tls-cert and tls-key",
        ));
    }
    let max_adu_bytes = mib("bp.max-adu-mib", b.max_adu_mib, 64)?;
    let max_pending_bytes = mib("bp.max-pending-mib", b.max_pending_mib, 256)?;
    Ok(BpConfig {
        node_id: b.node_id.clone(),
        listen,
        endpoints: b.endpoints.clone(),
        max_adu_bytes,
        max_pending_bytes,
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
        // A quarter of the store by default, and never less than one whole
        // ADU.
        max_pending_per_peer_bytes: mib(
            "bp.max-pending-per-peer-mib",
            b.max_pending_per_peer_mib,
            (max_pending_bytes / 4).max(max_adu_bytes) >> 20,
        )?,
        require_bib: b.require_bib,
        bib_keys,
        accept_compressed: b.accept_compressed.unwrap_or(true),
        tls,
        require_tls: b.require_tls,
    })
}

/// The node number of an `ipn:N.S` EID.
fn ipn_node(eid: &str) -> Option<u64> {
    eid.strip_prefix("ipn:")?.split('.').next()?.parse().ok()
}

/// A route's contact plan: `contact-plan` (a file in ION's syntax) or
/// `contacts` (the same lines inline), for the nodes `plan-from-node` and
/// `plan-to-node` (for a bp route: this node and the destination's).
fn route_plan(
    cx: &Ctx,
    key: &dyn Fn(&str) -> String,
    r: &RouteFile,
    destination: Option<&str>,
    node_id: Option<&str>,
) -> Result<Option<RoutePlan>, ConfigError> {
    let (text, source, k) = match (&r.contact_plan, &r.contacts) {
        (None, None) => {
            for (k, set) in [
                ("plan-from-node", r.plan_from_node.is_some()),
                ("plan-to-node", r.plan_to_node.is_some()),
            ] {
                if set {
                    return Err(bad(&key(k), "only with contact-plan or contacts"));
                }
            }
            return Ok(None);
        }
        (Some(_), Some(_)) => {
            return Err(bad(
                &key("contacts"),
                "give contact-plan (a file) or contacts (inline), not both",
            ))
        }
        (Some(p), None) => {
            let bytes = cx.read(&key("contact-plan"), p)?;
            let text = String::from_utf8(bytes).map_err(|_| {
                bad(
                    &key("contact-plan"),
                    format!("{} is not UTF-8 text", cx.rel(p).display()),
                )
            })?;
            (text, cx.rel(p).display().to_string(), key("contact-plan"))
        }
        (None, Some(t)) => (t.clone(), "inline".to_string(), key("contacts")),
    };
    let plan = deepmail_contact_plan::ContactPlan::parse(&text, cx.env.now_ms())
        .map_err(|e| bad(&k, format!("{source}: {e}")))?;
    let from = r
        .plan_from_node
        .or_else(|| node_id.and_then(ipn_node))
        .or_else(|| {
            let mut froms: Vec<u64> = plan.contacts.iter().map(|c| c.from).collect();
            froms.sort_unstable();
            froms.dedup();
            (froms.len() == 1).then(|| froms[0])
        })
        .ok_or_else(|| {
            bad(
                &key("plan-from-node"),
                "which node of the plan sends on this route? (the plan's contacts have several senders)",
            )
        })?;
    let to = r
        .plan_to_node
        .or_else(|| destination.and_then(ipn_node))
        .or_else(|| {
            let mut tos: Vec<u64> = plan
                .contacts
                .iter()
                .filter(|c| c.from == from)
                .map(|c| c.to)
                .collect();
            tos.sort_unstable();
            tos.dedup();
            (tos.len() == 1).then(|| tos[0])
        })
        .ok_or_else(|| {
            bad(
                &key("plan-to-node"),
                "which node of the plan receives on this route? (the plan has several)",
            )
        })?;
    let link = plan.link(from, to);
    if link.is_empty() {
        return Err(bad(
            &k,
            format!("{source} has no contact from node {from} to node {to} with a rate above 0"),
        ));
    }
    Ok(Some(RoutePlan {
        source,
        nodes: (from, to),
        link: SharedLink::new(link),
    }))
}
