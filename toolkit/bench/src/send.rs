//! The sender plugin `deepmail send` loads for one next hop: HTTPS through
//! the host's `wasi:http` (granted exactly that authority and these trust
//! roots), or HTTP/3 with the QUIC plugin over `wasi:sockets` (granted UDP
//! to exactly the address the host resolved), with the client certificate
//! and the QUIC profile settings of the command line; and [`deliver`],
//! the whole `send`: the next hops, then rounds of attempts over them with
//! doubling delays, each attempt reported as a [`SendEvent`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use deepmail_gateway::HopError;
use deepmail_host::types::{Outcome, Payload};
use deepmail_host::{PluginSource, Sender, Stage, StageError};
use sha2::{Digest, Sha256};

use crate::{read_input, BenchError, Stages};

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

/// Loads the sender `source` for the next hop `hop` with the network
/// grant it needs and nothing more ([`deepmail_gateway::load_hop_sender`],
/// as the gateway does for its routes).
pub fn load_sender(
    host: &deepmail_host::Host,
    source: &PluginSource,
    hop: &str,
    options: &SendOptions,
) -> Result<Sender, BenchError> {
    let authority = hop_authority(hop)?;
    let quic = options
        .quic
        .iter()
        .map(|kv| {
            kv.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| BenchError::BadArgument(format!("--quic {kv}: expected KEY=VALUE")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let next = deepmail_gateway::NextHop {
        authority: &authority,
        h3: options.h3,
        timeout_ms: options.timeout_secs.saturating_mul(1000),
        token: options.token.as_deref(),
        gzip: false,
        roots_pem: &options.roots_pem,
        client: options
            .client
            .as_ref()
            .map(|(cert, key)| (cert.as_slice(), key.as_slice())),
        allow_plain_http: options.allow_plain_http,
        quic: &quic,
    };
    deepmail_gateway::load_hop_sender(host, source, &next).map_err(|e| match e {
        HopError::Resolve { authority, error } => BenchError::Lookup {
            authority,
            source: error,
        },
        HopError::NoAddress { authority } => {
            BenchError::BadArgument(format!("{authority} has no address"))
        }
        HopError::NoRoots { error } => BenchError::NoRoots { source: error },
        HopError::Load(e) => e.into(),
    })
}

/// One `deepmail send`: the batch, where it goes, how, and how often to
/// try again.
#[derive(Debug, Clone, Default)]
pub struct SendRequest {
    /// The Batch SMTP object (`-`: standard input).
    pub input: PathBuf,
    /// Deliver to this URI, skipping resolution.
    pub to_uri: Option<String>,
    /// Else the mail domain whose next hops are resolved.
    pub domain: Option<String>,
    /// `--dns-server` for the resolver.
    pub dns_servers: Vec<String>,
    /// `--route` for the resolver.
    pub routes: Vec<String>,
    /// PEM file with the trust roots (`None`: the system's).
    pub ca: Option<PathBuf>,
    /// PEM client certificate and its key for mutual TLS.
    pub client: Option<(PathBuf, PathBuf)>,
    /// Bearer token to present.
    pub token: Option<String>,
    /// Seconds to wait for each attempt.
    pub timeout_secs: u64,
    /// Rounds over all next hops after the first, after temporary failures.
    pub retries: u32,
    /// Delay before the first retry round; it doubles each round.
    pub retry_delay: Duration,
    /// Allow plain `http://` next hops.
    pub allow_plain_http: bool,
    /// HTTP/3 with the QUIC plugin instead of HTTPS.
    pub h3: bool,
    /// QUIC profile settings, `KEY=VALUE`.
    pub quic: Vec<String>,
}

/// Something [`deliver`] did that does not end it.
#[derive(Debug)]
pub enum SendEvent {
    /// A retry round starts after `delay`.
    Retrying {
        /// How long it waits first.
        delay: Duration,
        /// This round's number, from 1.
        round: u32,
        /// How many retry rounds there are.
        rounds: u32,
    },
    /// A next hop answered with a temporary failure.
    TemporaryFailure {
        /// The next hop.
        hop: String,
        /// What it said.
        said: String,
    },
    /// An attempt failed in the sender (no connection, a timeout, ...).
    Failed {
        /// The next hop.
        hop: String,
        /// The sender's error.
        error: StageError,
    },
}

/// How a [`deliver`] that ran ended.
#[derive(Debug)]
pub enum SendOutcome {
    /// A next hop took the batch.
    Delivered {
        /// The next hop.
        hop: String,
        /// The batch's idempotency key (SHA-256 of its bytes, hex).
        key: String,
        /// What it said.
        said: String,
    },
    /// A next hop refused the batch for good.
    Refused {
        /// The next hop.
        hop: String,
        /// What it said.
        said: String,
    },
    /// The sender's settings are wrong: retrying cannot help.
    Misconfigured {
        /// The next hop.
        hop: String,
        /// The sender's error.
        error: StageError,
    },
    /// Every round ended in temporary failures.
    NotDelivered {
        /// Rounds tried.
        rounds: u32,
        /// Next hops in each round.
        hops: usize,
        /// The last failure.
        last: String,
    },
}

fn read_pem(path: Option<&Path>) -> Result<Vec<u8>, BenchError> {
    match path {
        Some(p) => std::fs::read(p).map_err(BenchError::io("cannot read", p)),
        None => Ok(Vec::new()),
    }
}

/// The next hops of `request`: its URI, or its domain's resolved hops.
fn next_hops(stages: &Stages, request: &SendRequest, seed: u64) -> Result<Vec<String>, BenchError> {
    match (&request.to_uri, &request.domain) {
        (Some(uri), _) => Ok(vec![uri.clone()]),
        (None, Some(domain)) => {
            let resolver = stages.resolver(&request.dns_servers, &request.routes, 2000)?;
            let mut schemes = vec!["https".to_string()];
            if request.allow_plain_http {
                schemes.push("http".into());
            }
            let resolved = resolver
                .resolve(domain, &schemes, seed)
                .map_err(BenchError::plugin(format!(
                    "cannot find the gateway for {domain}"
                )))?;
            Ok(resolved.hops.into_iter().map(|h| h.uri).collect())
        }
        (None, None) => Err(BenchError::BadArgument("give --domain or --to-uri".into())),
    }
}

/// Sends `request`'s batch to the first next hop that takes it, in
/// rounds over all next hops with doubling delays while they fail
/// temporarily; reports each attempt that does not end it to `on_event`.
/// A sender plugin that misbehaves is an error.
pub fn deliver(
    stages: &Stages,
    request: &SendRequest,
    mut on_event: impl FnMut(SendEvent),
) -> Result<SendOutcome, BenchError> {
    let body = read_input(&request.input)?;
    if body.is_empty() {
        return Err(BenchError::BadArgument(format!(
            "{} is empty: nothing to send",
            request.input.display()
        )));
    }
    let key = hex::encode(Sha256::digest(&body));
    let seed = u64::from(std::process::id()) ^ key.len() as u64;
    let hops = next_hops(stages, request, seed)?;

    let roots_pem = read_pem(request.ca.as_deref())?;
    let client = match &request.client {
        Some((cert, key)) => Some((read_pem(Some(cert))?, read_pem(Some(key))?)),
        None => None,
    };
    let source = match (stages.chosen(Stage::Sender), request.h3) {
        (Some(chosen), _) => chosen.clone(),
        (None, true) => PluginSource::Builtin("quic-sender".into()),
        (None, false) => stages.source(Stage::Sender)?,
    };
    // A plugin call carries a whole transfer: allow it the transfer's time.
    let needed = Duration::from_secs(request.timeout_secs.saturating_add(10));
    let host = if stages.host.config().call_timeout < needed {
        let config = deepmail_host::HostConfig {
            call_timeout: needed,
            ..stages.host.config().clone()
        };
        deepmail_host::Host::new(config).map_err(BenchError::Host)?
    } else {
        stages.host.clone()
    };
    let options = SendOptions {
        timeout_secs: request.timeout_secs,
        token: request.token.clone(),
        roots_pem,
        client,
        allow_plain_http: request.allow_plain_http,
        h3: request.h3,
        quic: request.quic.clone(),
    };

    let mut delay = request.retry_delay;
    let mut last = String::new();
    for round in 0..=request.retries {
        if round > 0 {
            on_event(SendEvent::Retrying {
                delay,
                round,
                rounds: request.retries,
            });
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
        }
        for hop in &hops {
            let sender = load_sender(&host, &source, hop, &options)?;
            let hop = hop.clone();
            match sender.send(&hop, &key, Payload::Bsmtp(body.clone())) {
                Ok(Outcome::Delivered(said)) => {
                    return Ok(SendOutcome::Delivered { hop, key, said })
                }
                Ok(Outcome::PermanentFailure(said)) => {
                    return Ok(SendOutcome::Refused { hop, said })
                }
                Ok(Outcome::TemporaryFailure(said)) => {
                    last = said.clone();
                    on_event(SendEvent::TemporaryFailure { hop, said });
                }
                Err(e) if e.is_plugin_fault() => {
                    return Err(BenchError::plugin("sender plugin failed")(e))
                }
                // The plugin's settings are wrong: retrying cannot help.
                Err(error)
                    if matches!(
                        error.code.as_str(),
                        "invalid-config" | "invalid-next-hop" | "unsupported-payload"
                    ) =>
                {
                    return Ok(SendOutcome::Misconfigured { hop, error })
                }
                Err(error) => {
                    last = error.to_string();
                    on_event(SendEvent::Failed { hop, error });
                }
            }
        }
    }
    Ok(SendOutcome::NotDelivered {
        rounds: request.retries + 1,
        hops: hops.len(),
        last,
    })
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
