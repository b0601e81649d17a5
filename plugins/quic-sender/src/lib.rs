//! `quic-sender`: a `sender-plugin` component that delivers a BSMTP object
//! as one HTTP/3 `POST` over QUIC, spoken entirely inside the component.
//!
//! QUIC is `quinn-proto` (sans-IO) with rustls on the pure-Rust provider
//! of `deepmail-rustcrypto` (glue in [`quic_tls`]); HTTP/3 is the small
//! client layer in [`h3`] and [`qpack`] (static table and literals only).
//! The only I/O is one `std::net::UdpSocket`, i.e. `wasi:sockets` UDP,
//! connected to the `connect-to` address the host granted, driven by the
//! poll loop in [`udp`] with `Instant`-based timers.
//!
//! Wire contract (WIT `sender`): `POST <next-hop>` with `Content-Type:
//! application/batch-SMTP`, `Idempotency-Key`, optional `Authorization:
//! Bearer`, and optionally a TLS client certificate (`client-cert-pem`,
//! `client-key-pem`) for receivers that require mutual TLS. 2xx is `delivered`, 4xx `permanent-failure` with the response
//! body as the reason, 5xx, timeouts and network or TLS errors
//! `temporary-failure`. Invalid settings are a stage error
//! (`invalid-config`).
//!
//! Session resumption and 0-RTT: tickets live in the component instance
//! ([`tls`]), so they help only while the host reuses the instance. Sending
//! the POST as 0-RTT (replayable) data is safe here because the receiver
//! deduplicates on the Idempotency-Key.

#![warn(missing_docs)]

pub mod config;
pub mod exchange;
pub mod h3;
pub mod qpack;
pub mod quic_tls;
pub mod tls;
pub mod udp;

use std::time::Instant;

use bytes::Bytes;

use crate::config::{check_header_value, Settings};
use crate::exchange::{Delivered, Exchange, ZeroRtt};

/// What became of a delivery (the WIT `outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx: the far side took responsibility; what it said.
    Delivered(String),
    /// Try again later.
    TemporaryFailure(String),
    /// Do not retry; the reason goes into the DSN.
    PermanentFailure(String),
}

/// A stage error (the WIT `stage-error`, without offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Stable class: `invalid-config`, `network-denied`, `unsupported-payload`.
    pub code: &'static str,
    /// What was wrong and what to do.
    pub message: String,
}

fn error(code: &'static str, message: impl Into<String>) -> Error {
    Error {
        code,
        message: message.into(),
    }
}

/// User-Agent sent with every request.
const USER_AGENT: &str = concat!("deepmail-quic-sender/", env!("CARGO_PKG_VERSION"));

/// Response text fit for one line of a log or DSN.
fn one_line(body: &[u8], dropped: u64) -> String {
    let text = String::from_utf8_lossy(body);
    let mut line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(1000)
        .collect();
    if dropped > 0 || text.trim().chars().count() > 1000 {
        line.push_str(" [...]");
    }
    line
}

fn describe(d: &Delivered) -> String {
    let rtt = match d.zero_rtt {
        ZeroRtt::NotAttempted => "1-RTT",
        ZeroRtt::Accepted => "0-RTT",
        ZeroRtt::Rejected => "0-RTT rejected, resent in 1-RTT",
    };
    format!(
        "{rtt}, handshake {} ms, total {} ms",
        d.handshake.as_millis(),
        d.total.as_millis()
    )
}

/// The outcome a response maps to under the wire contract.
fn outcome_of(authority: &str, d: &Delivered) -> Outcome {
    let r = &d.response;
    let body = one_line(&r.body, r.body_dropped);
    let reason = if body.is_empty() {
        "(no reason given)".to_string()
    } else {
        body
    };
    let status = r.status;
    let how = describe(d);
    match status {
        200..=299 => Outcome::Delivered(format!(
            "HTTP {status} from {authority} over HTTP/3 ({how}): {reason}"
        )),
        400..=499 => Outcome::PermanentFailure(format!("HTTP {status} from {authority}: {reason}")),
        500..=599 => Outcome::TemporaryFailure(format!("HTTP {status} from {authority}: {reason}")),
        // 3xx: redirects are not followed; the next hop is probably
        // misconfigured, which an operator can fix before the mail expires.
        _ => Outcome::TemporaryFailure(format!(
            "HTTP {status} from {authority} (not followed; check the next-hop URI): {reason}"
        )),
    }
}

/// Delivers `bsmtp` to `next_hop` with the plugin `config`: the whole
/// plugin, callable natively too (tests run it on the host target).
pub fn deliver(
    next_hop: &str,
    idempotency_key: &str,
    bsmtp: Vec<u8>,
    config: &[(String, String)],
) -> Result<Outcome, Error> {
    let settings =
        Settings::from_config(next_hop, config).map_err(|e| error("invalid-config", e.0))?;
    check_header_value("idempotency-key", idempotency_key)
        .map_err(|e| error("invalid-request", e.0))?;
    let crypto = tls::client_config(
        &settings.ca_pem,
        settings.client_identity.as_ref(),
        settings.zero_rtt,
    )
    .map_err(|e| error("invalid-config", e.0))?;

    let socket = match udp::connect(settings.connect_to) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(error(
                "network-denied",
                format!(
                    "UDP to {} is not granted to this plugin ({e}); the host grants the \
                     resolved next-hop address, which `connect-to` must be",
                    settings.connect_to
                ),
            ))
        }
        Err(e) => {
            return Ok(Outcome::TemporaryFailure(format!(
                "cannot open a UDP socket to {}: {e}",
                settings.connect_to
            )))
        }
    };

    let length = bsmtp.len().to_string();
    let authorization = settings
        .bearer_token
        .as_ref()
        .map(|t| format!("Bearer {t}"));
    let mut fields: Vec<(&str, &str)> = vec![
        ("content-type", "application/batch-SMTP"),
        ("content-length", &length),
        ("idempotency-key", idempotency_key),
        ("user-agent", USER_AGENT),
    ];
    if let Some(a) = authorization.as_deref() {
        fields.push(("authorization", a));
    }
    if let Some(e) = settings.content_encoding.as_deref() {
        fields.push(("content-encoding", e));
    }

    let exchange = match Exchange::start(
        Instant::now(),
        &settings,
        crypto,
        &fields,
        Bytes::from(bsmtp),
    ) {
        Ok(x) => x,
        Err(f) => return Ok(Outcome::TemporaryFailure(f.message().to_string())),
    };
    Ok(match udp::run(&socket, exchange) {
        Ok(delivered) => outcome_of(&settings.authority, &delivered),
        Err(failure) => Outcome::TemporaryFailure(failure.message().to_string()),
    })
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "sender-plugin",
    });

    use deepmail::stages::types::StageError;
    use exports::deepmail::stages::plugin_info::Info;
    use exports::deepmail::stages::sender::{Delivery, Outcome, Payload};

    struct Plugin;

    impl exports::deepmail::stages::plugin_info::Guest for Plugin {
        fn describe() -> Info {
            Info {
                name: "quic-sender".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description:
                    "POSTs BSMTP over HTTP/3, QUIC in the component (quinn-proto, rustls on RustCrypto)"
                        .into(),
            }
        }
    }

    impl exports::deepmail::stages::sender::Guest for Plugin {
        fn send(delivery: Delivery) -> Result<Outcome, StageError> {
            let bsmtp = match delivery.payload {
                Payload::Bsmtp(bytes) => bytes,
                Payload::Bundles(_) => {
                    return Err(StageError {
                        code: "unsupported-payload".into(),
                        message: "quic-sender POSTs application/batch-SMTP objects; bundles \
                                  go to a Bundle Protocol sender (tcpcl-sender)"
                            .into(),
                        offset: None,
                    })
                }
            };
            match super::deliver(
                &delivery.next_hop,
                &delivery.idempotency_key,
                bsmtp,
                &delivery.config,
            ) {
                Ok(super::Outcome::Delivered(m)) => Ok(Outcome::Delivered(m)),
                Ok(super::Outcome::TemporaryFailure(m)) => Ok(Outcome::TemporaryFailure(m)),
                Ok(super::Outcome::PermanentFailure(m)) => Ok(Outcome::PermanentFailure(m)),
                Err(e) => Err(StageError {
                    code: e.code.into(),
                    message: e.message,
                    offset: None,
                }),
            }
        }
    }

    export!(Plugin);
}
