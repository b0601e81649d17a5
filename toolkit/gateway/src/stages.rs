//! The plugins one gateway runs, loaded once at start from its
//! configuration: the codec, the resolver (when some route asks DNS), the
//! policy (Earth side), and a sender per next-hop authority, each granted
//! network access to exactly that authority.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Mutex;

use deepmail_host::{
    Codec, Fragmenter, Host, HttpGrant, LoadError, NetworkGrant, PluginSource, Resolver, Sender,
    Stage,
};

use crate::config::{GatewayConfig, Route, RouteTransport};

/// Loaded stage plugins. `Sync`: shared by every task of the gateway.
pub struct GatewayStages {
    /// The WebAssembly host.
    pub host: Host,
    /// The codec (Batch SMTP in and out).
    pub codec: Codec,
    /// The resolver, when a route has no fixed `uri`.
    pub resolver: Option<Resolver>,
    /// The fragmenter, when the gateway speaks the Bundle Protocol.
    pub fragmenter: Option<Fragmenter>,
    sender_https: PluginSource,
    sender_h3: PluginSource,
    sender_bp: PluginSource,
    node_id: String,
    timeout_ms: u64,
    senders: Mutex<HashMap<(String, RouteTransport), Sender>>,
}

/// Why no sender could be had for a next hop. Every case is temporary for
/// the delivery that asked (the next attempt asks again).
#[derive(Debug, thiserror::Error)]
pub enum SenderError {
    /// `bp_sender` was asked for a route that is not a `bp` route.
    #[error("route for {domain} is not a bp route")]
    NotBp {
        /// The route's domain.
        domain: String,
    },
    /// The next hop is not an `http://` or `https://` URI.
    #[error("next hop `{uri}` is not an http(s) URI")]
    NotHttp {
        /// The URI resolved.
        uri: String,
    },
    /// The next hop is plain `http://` and the route does not allow it.
    #[error("next hop `{uri}` is plain http; the route for {domain} does not allow-plain-http")]
    PlainHttp {
        /// The URI resolved.
        uri: String,
        /// The route's domain.
        domain: String,
    },
    /// An HTTP/3 next hop's authority did not resolve to an address.
    #[error("cannot resolve {authority}: {detail}")]
    Resolve {
        /// `host:port`.
        authority: String,
        /// Why.
        detail: String,
    },
    /// An HTTP/3 route without `ca` on a system without trust roots.
    #[error("h3 route {domain} needs `ca` (no system roots in {roots}: {detail})")]
    NoRoots {
        /// The route's domain.
        domain: String,
        /// Where the system roots were looked for.
        roots: &'static str,
        /// Why they could not be read.
        detail: String,
    },
    /// The sender plugin did not load or refused its settings.
    #[error(transparent)]
    Load(#[from] LoadError),
}

fn source(config: &GatewayConfig, stage: Stage) -> Result<PluginSource, LoadError> {
    match config.stages.get(stage.name()) {
        Some(s) => Ok(s.parse().unwrap_or_else(|e| match e {})),
        None => PluginSource::default_for(stage).ok_or_else(|| LoadError::UnknownBuiltin {
            name: format!("default {stage} plugin"),
            known: format!("none; configure [stages] {stage} = \"PATH.wasm\""),
        }),
    }
}

/// `host:port` of an http(s) URI, lower case, with the scheme's default
/// port; `None` for anything else.
pub fn authority_of(uri: &str) -> Option<String> {
    let (rest, port) = if let Some(r) = uri.strip_prefix("https://") {
        (r, 443)
    } else if let Some(r) = uri.strip_prefix("http://") {
        (r, 80)
    } else {
        return None;
    };
    let authority = rest.split(['/', '?', '#']).next()?.to_ascii_lowercase();
    if authority.is_empty() {
        return None;
    }
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    Some(if has_port {
        authority
    } else {
        format!("{authority}:{port}")
    })
}

impl GatewayStages {
    /// Loads the codec and, when needed, the resolver; senders load on
    /// first use per next hop. `host` should allow a plugin call the whole
    /// delivery timeout.
    pub fn load(host: Host, config: &GatewayConfig) -> Result<GatewayStages, LoadError> {
        let codec = Codec::load(&host, &source(config, Stage::Codec)?)?;
        let needs_dns = config
            .routes
            .iter()
            .any(|r| r.uri.is_none() && r.bp.is_none());
        let fragmenter = if config.bp.is_some() {
            let f = Fragmenter::load(&host, &source(config, Stage::Fragmenter)?)?;
            // Signing or checking BIBs needs a fragmenter that exports
            // `bpsec`: say so at start, not at the first bundle.
            let signs = config
                .routes
                .iter()
                .any(|r| r.bp.as_ref().is_some_and(|b| b.bib.is_some()));
            let checks = config.bp.as_ref().is_some_and(|b| b.require_bib);
            if (signs || checks) && !f.has_bpsec() {
                return Err(LoadError::WrongWorld {
                    plugin: f.info().source.clone(),
                    stage: "fragmenter",
                    interface: "deepmail:stages/bpsec@0.1.0 (a route has bib-key-file or [bp] require-bib is set)".into(),
                    exports: f.info().world.to_string(),
                });
            }
            Some(f)
        } else {
            None
        };
        let resolver = if needs_dns {
            let mut settings: Vec<(String, String)> = config
                .dns_servers
                .iter()
                .map(|s| ("server".to_string(), s.to_string()))
                .collect();
            if settings.is_empty() {
                settings = system_nameservers()
                    .into_iter()
                    .map(|s| ("server".to_string(), s.to_string()))
                    .collect();
            }
            settings.push(("timeout-ms".into(), config.dns_timeout_ms.to_string()));
            Some(Resolver::load(
                &host,
                &source(config, Stage::Resolver)?,
                settings,
            )?)
        } else {
            None
        };
        let sender_https = source(config, Stage::Sender)?;
        let sender_h3 = PluginSource::Builtin("quic-sender".into());
        let sender_bp = PluginSource::Builtin("tcpcl-sender".into());
        // Compile the senders the routes use now, not on the first message.
        for (transport, source) in [
            (RouteTransport::Https, &sender_https),
            (RouteTransport::H3, &sender_h3),
            (RouteTransport::Bp, &sender_bp),
        ] {
            if config.routes.iter().any(|r| r.transport == transport) {
                host.prepare(source)?;
            }
        }
        Ok(GatewayStages {
            host,
            codec,
            resolver,
            fragmenter,
            sender_https,
            sender_h3,
            sender_bp,
            node_id: config
                .bp
                .as_ref()
                .map(|b| b.node_id.clone())
                .unwrap_or_default(),
            timeout_ms: config.delivery.timeout.as_millis() as u64,
            senders: Mutex::new(HashMap::new()),
        })
    }

    /// The sender cached under `key`, or the one `load` makes (then cached).
    fn cached(
        &self,
        key: (String, RouteTransport),
        load: impl FnOnce() -> Result<Sender, SenderError>,
    ) -> Result<Sender, SenderError> {
        let cached = self
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .cloned();
        if let Some(s) = cached {
            return Ok(s);
        }
        let sender = load()?;
        self.senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, sender.clone());
        Ok(sender)
    }

    /// Lets every loaded sender service the connections it keeps open
    /// between deliveries, or close them all when `closing`; returns how
    /// many stay open. Runs plugins: call it off the async executor.
    pub fn maintain_senders(&self, closing: bool) -> u64 {
        let senders: Vec<Sender> = self
            .senders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        senders.iter().map(|s| u64::from(s.maintain(closing))).sum()
    }

    /// Our node EID (`[bp] node-id`), empty without `[bp]`.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// The tcpcl-sender for a `bp` route's next node, loaded once per
    /// address, granted TCP to exactly that address.
    pub fn bp_sender(&self, route: &Route) -> Result<Sender, SenderError> {
        let bp = route.bp.as_ref().ok_or_else(|| SenderError::NotBp {
            domain: route.domain.clone(),
        })?;
        let key = (
            format!(
                "{} keepalive {} idle {} tls {} {:?} ca {}",
                bp.tcpcl,
                bp.keepalive_secs,
                bp.session_idle.as_secs(),
                bp.tls.as_str(),
                bp.tls_name,
                String::from_utf8_lossy(&route.ca_pem)
            ),
            RouteTransport::Bp,
        );
        self.cached(key, || {
            let mut settings = vec![
                ("node-id".to_string(), self.node_id.clone()),
                ("timeout-ms".to_string(), self.timeout_ms.to_string()),
                ("connect-to".to_string(), bp.tcpcl.to_string()),
                ("keepalive-secs".to_string(), bp.keepalive_secs.to_string()),
                (
                    "session-idle-secs".to_string(),
                    bp.session_idle.as_secs().to_string(),
                ),
                ("tls".to_string(), bp.tls.as_str().to_string()),
            ];
            if bp.tls != crate::config::TcpclTls::Off {
                settings.push((
                    "ca-pem".to_string(),
                    String::from_utf8_lossy(&route.ca_pem).into_owned(),
                ));
                // The certificate names the node's address unless the
                // route says which name it carries.
                let name = bp
                    .tls_name
                    .clone()
                    .unwrap_or_else(|| bp.tcpcl.ip().to_string());
                settings.push(("tls-name".to_string(), name));
            }
            let grant = NetworkGrant {
                tcp: true,
                remote: vec![bp.tcpcl],
                ..NetworkGrant::default()
            };
            Ok(Sender::load(
                &self.host,
                &self.sender_bp,
                settings,
                Some(grant),
            )?)
        })
    }

    /// The sender for `uri` by `route`, loaded once per authority.
    pub fn sender(&self, route: &Route, uri: &str) -> Result<Sender, SenderError> {
        let authority = authority_of(uri).ok_or_else(|| SenderError::NotHttp {
            uri: uri.to_string(),
        })?;
        if uri.starts_with("http://") && !route.allow_plain_http {
            return Err(SenderError::PlainHttp {
                uri: uri.to_string(),
                domain: route.domain.clone(),
            });
        }
        let key = (authority.clone(), route.transport);
        self.cached(key, || self.load_sender(route, &authority))
    }

    fn load_sender(&self, route: &Route, authority: &str) -> Result<Sender, SenderError> {
        let (cert, key) = route.client_identity.clone().unwrap_or_default();
        let (source, h3) = match route.transport {
            RouteTransport::Https => (&self.sender_https, false),
            RouteTransport::H3 => (&self.sender_h3, true),
            RouteTransport::Bp => return self.bp_sender(route),
        };
        let hop = NextHop {
            authority,
            h3,
            timeout_ms: self.timeout_ms,
            token: route.token.as_deref(),
            gzip: route.compress,
            roots_pem: &route.ca_pem,
            client: (!cert.is_empty()).then_some((cert.as_slice(), key.as_slice())),
            allow_plain_http: route.allow_plain_http,
            quic: &route.quic,
        };
        load_hop_sender(&self.host, source, &hop).map_err(|e| match e {
            HopError::Resolve { authority, error } => SenderError::Resolve {
                authority,
                detail: error.to_string(),
            },
            HopError::NoAddress { authority } => SenderError::Resolve {
                authority,
                detail: "no address".into(),
            },
            HopError::NoRoots { error } => SenderError::NoRoots {
                domain: route.domain.clone(),
                roots: deepmail_host::SYSTEM_ROOTS,
                detail: error.to_string(),
            },
            HopError::Load(e) => SenderError::Load(e),
        })
    }
}

/// What a sender plugin for one HTTPS or HTTP/3 next hop is given: the
/// gateway's routes and `deepmail send` both describe a hop this way.
#[derive(Debug, Clone, Copy)]
pub struct NextHop<'a> {
    /// `host:port` of the next hop.
    pub authority: &'a str,
    /// HTTP/3 with the QUIC plugin (over `wasi:sockets`) instead of HTTPS
    /// through the host's `wasi:http`.
    pub h3: bool,
    /// Per-attempt timeout, milliseconds.
    pub timeout_ms: u64,
    /// Bearer token to present.
    pub token: Option<&'a str>,
    /// Send the batch gzip-compressed.
    pub gzip: bool,
    /// Trust roots, PEM (empty: the system's).
    pub roots_pem: &'a [u8],
    /// Client certificate and key for mutual TLS, PEM.
    pub client: Option<(&'a [u8], &'a [u8])>,
    /// Allow plain `http://`.
    pub allow_plain_http: bool,
    /// QUIC profile settings, for HTTP/3.
    pub quic: &'a [(String, String)],
}

/// Why [`load_hop_sender`] could not load a sender.
#[derive(Debug, thiserror::Error)]
pub enum HopError {
    /// An HTTP/3 next hop's name did not resolve.
    #[error("cannot resolve {authority}: {error}")]
    Resolve {
        /// `host:port`.
        authority: String,
        /// Why.
        error: std::io::Error,
    },
    /// An HTTP/3 next hop's name resolved to no address.
    #[error("{authority} has no address")]
    NoAddress {
        /// `host:port`.
        authority: String,
    },
    /// HTTP/3 without trust roots given, on a system without any.
    #[error("no system trust roots in {roots}: {error}", roots = deepmail_host::SYSTEM_ROOTS)]
    NoRoots {
        /// Why they could not be read.
        error: std::io::Error,
    },
    /// The plugin did not load or refused its settings.
    #[error(transparent)]
    Load(LoadError),
}

impl From<LoadError> for HopError {
    fn from(e: LoadError) -> HopError {
        HopError::Load(e)
    }
}

/// Loads `source` for the next hop `hop`, granted the network it needs and
/// nothing more: HTTPS gets `wasi:http` to exactly the hop's authority,
/// trusting exactly its roots; HTTP/3 gets UDP to exactly the address the
/// host resolved (plugins have no name lookup), with the roots, the client
/// identity (the plugin has no file system: PEM text) and the QUIC
/// settings as plugin settings.
pub fn load_hop_sender(
    host: &Host,
    source: &PluginSource,
    hop: &NextHop<'_>,
) -> Result<Sender, HopError> {
    let mut settings = vec![("timeout-ms".to_string(), hop.timeout_ms.to_string())];
    if let Some(token) = hop.token {
        settings.push(("bearer-token".into(), token.to_string()));
    }
    if hop.gzip {
        settings.push(("content-encoding".into(), "gzip".into()));
    }
    let (cert, key) = hop.client.unwrap_or_default();
    if !hop.h3 {
        let grant = NetworkGrant {
            http: Some(HttpGrant {
                authorities: vec![hop.authority.to_string()],
                roots_pem: hop.roots_pem.to_vec(),
                client_cert_pem: cert.to_vec(),
                client_key_pem: key.to_vec(),
                allow_plain_http: hop.allow_plain_http,
                connect_timeout_ms: hop.timeout_ms,
                response_timeout_ms: hop.timeout_ms,
            }),
            ..NetworkGrant::default()
        };
        return Ok(Sender::load(host, source, settings, Some(grant))?);
    }
    let addr: SocketAddr = hop
        .authority
        .to_socket_addrs()
        .map_err(|error| HopError::Resolve {
            authority: hop.authority.to_string(),
            error,
        })?
        .next()
        .ok_or_else(|| HopError::NoAddress {
            authority: hop.authority.to_string(),
        })?;
    settings.push(("connect-to".into(), addr.to_string()));
    let roots = if hop.roots_pem.is_empty() {
        deepmail_host::system_roots_pem().map_err(|error| HopError::NoRoots { error })?
    } else {
        hop.roots_pem.to_vec()
    };
    let text = |pem: &[u8]| String::from_utf8_lossy(pem).into_owned();
    settings.push(("ca-pem".into(), text(&roots)));
    if !cert.is_empty() {
        settings.push(("client-cert-pem".into(), text(cert)));
        settings.push(("client-key-pem".into(), text(key)));
    }
    settings.extend(hop.quic.iter().cloned());
    let grant = NetworkGrant {
        udp: true,
        remote: vec![addr],
        ..NetworkGrant::default()
    };
    Ok(Sender::load(host, source, settings, Some(grant))?)
}

/// `nameserver` lines of /etc/resolv.conf, port 53.
pub fn system_nameservers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn authority_gets_the_default_port() {
        use super::authority_of;
        assert_eq!(
            authority_of("https://GW.moon.example/in").unwrap(),
            "gw.moon.example:443"
        );
        assert_eq!(
            authority_of("http://127.0.0.1:8080").unwrap(),
            "127.0.0.1:8080"
        );
        assert_eq!(authority_of("https://[::1]/x").unwrap(), "[::1]:443");
        assert!(authority_of("ftp://x").is_none());
        assert!(authority_of("https:///x").is_none());
    }
}
