//! `tcpcl-sender`: a `sender-plugin` component that hands Bundle Protocol
//! v7 bundles to the next hop over the TCP Convergence Layer version 4
//! ([RFC 9174]), spoken inside the component.
//!
//! The protocol is `deepmail-tcpcl`'s sans-IO [`ActiveSession`]; this crate
//! adds one `std::net::TcpStream` (`wasi:sockets` TCP) to the `connect-to`
//! address the host granted, polled with deadlines in [`tcp`]. One delivery
//! is one session: contact header, SESS_INIT, each bundle of the
//! `bundles` payload as one transfer (pipelined, segments no larger than
//! the peer's Segment MRU), SESS_TERM when every transfer is settled.
//!
//! Outcomes (WIT `outcome`):
//!
//! | what happened | outcome |
//! |---|---|
//! | every transfer's final XFER_ACK covers all its bytes (or was refused `Completed`: the peer has it) | `delivered` |
//! | an XFER_REFUSE `Not Acceptable` (0x04) or `Extension Failure` (0x05) | `permanent-failure`: the peer will not take this bundle as it is |
//! | a bundle larger than the peer's Transfer MRU | `permanent-failure`: fragment below it (the fragmenter's MTU) |
//! | an XFER_REFUSE `No Resources`, `Retransmit`, `Session Terminating`, `Unknown` or an unassigned code | `temporary-failure` |
//! | SESS_TERM from the peer before every transfer is settled (busy, idle timeout, version mismatch, contact failure, ...) | `temporary-failure` |
//! | connection refused, reset or closed, a peer that is not TCPCLv4, the deadline (`timeout-ms`) | `temporary-failure` |
//!
//! A permanent refusal of one bundle makes the whole delivery permanent
//! (the batch cannot be completed by retrying); the message says what
//! became of each bundle. The receiver deduplicates bundles by their id,
//! so resending acknowledged ones on a retry is harmless.
//!
//! Stage errors: `invalid-config` (settings), `invalid-request` (no
//! bundles, or an empty one), `unsupported-payload` (a `bsmtp` payload:
//! TCPCL carries bundles; use https-sender or quic-sender), and
//! `network-denied` when the host refuses the connection because
//! `connect-to` is outside the plugin's grant.
//!
//! TLS: RFC 9174 makes it optional (§4.4). This plugin never offers it
//! (contact header flag CAN_TLS is 0), so the session is plain TCP whatever
//! the peer supports; protect the link below it (IPsec, WireGuard) where
//! that matters.
//!
//! [RFC 9174]: https://www.rfc-editor.org/rfc/rfc9174

#![warn(missing_docs)]

pub mod config;
pub mod tcp;

use std::time::Instant;

use deepmail_tcpcl::{ActiveSession, Event, RefuseReason, SendError, SessTermReason, Termination};

use crate::config::Settings;
use crate::tcp::{ConnectError, Driver, RunEnd};

/// What became of a delivery (the WIT `outcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every bundle acknowledged; what happened.
    Delivered(String),
    /// Try again later.
    TemporaryFailure(String),
    /// Do not retry; the reason goes into the DSN.
    PermanentFailure(String),
}

/// A stage error (the WIT `stage-error`, without offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// Stable class: `invalid-config`, `invalid-request`, `network-denied`.
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

/// What became of one bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Not settled (yet).
    Pending,
    /// The final XFER_ACK came.
    Acked,
    /// XFER_REFUSE came.
    Refused(RefuseReason),
}

/// Whether a refusal means the bundle should not be sent again as is.
fn is_permanent(reason: RefuseReason) -> bool {
    matches!(
        reason,
        RefuseReason::NotAcceptable | RefuseReason::ExtensionFailure
    )
}

/// The plugin's side of the session: sends the bundles once established,
/// records their fates, ends the session when all are settled.
struct Delivery {
    bundles: Vec<Vec<u8>>,
    /// Transfer ID of each bundle, in order.
    ids: Vec<u64>,
    fates: Vec<Fate>,
    peer_node_id: Option<String>,
    /// A bundle the session would not take (too large for the peer).
    send_error: Option<(usize, SendError)>,
    termination: Option<Termination>,
    done_at: Option<Instant>,
}

impl Delivery {
    fn settled(&self) -> bool {
        !self.fates.is_empty() && self.fates.iter().all(|f| *f != Fate::Pending)
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.ids.iter().position(|i| *i == id)
    }
}

impl Driver for Delivery {
    fn on_event(&mut self, session: &mut ActiveSession, event: Event, now: Instant) {
        match event {
            Event::Established(peer) => {
                self.peer_node_id = Some(peer.node_id);
                for (i, bundle) in std::mem::take(&mut self.bundles).into_iter().enumerate() {
                    match session.send_bundle(bundle) {
                        Ok(id) => self.ids.push(id),
                        Err(e) => {
                            self.send_error = Some((i, e));
                            session.terminate(now, SessTermReason::Unknown);
                            return;
                        }
                    }
                }
            }
            Event::TransferAcked(id) => {
                if let Some(i) = self.index_of(id) {
                    self.fates[i] = Fate::Acked;
                }
            }
            Event::TransferRefused(id, reason) => {
                if let Some(i) = self.index_of(id) {
                    self.fates[i] = Fate::Refused(reason);
                }
            }
            Event::SessionTerminated(t) => self.termination = Some(t),
            Event::BundleReceived { .. } | Event::MessageRejected(_) => {}
        }
        if self.done_at.is_none() && self.settled() {
            self.done_at = Some(now);
            session.terminate(now, SessTermReason::Unknown);
        }
    }
}

/// One line per bundle that was not acknowledged, for the outcome text.
fn fates_text(fates: &[Fate]) -> String {
    let acked = fates.iter().filter(|f| **f == Fate::Acked).count();
    let mut parts = vec![format!("{acked} of {} bundle(s) acknowledged", fates.len())];
    for (i, f) in fates.iter().enumerate() {
        match f {
            Fate::Refused(r) => parts.push(format!("bundle {} refused: {r}", i + 1)),
            Fate::Pending => parts.push(format!("bundle {} not acknowledged", i + 1)),
            Fate::Acked => {}
        }
    }
    parts.join("; ")
}

/// Delivers `bundles` to `next_hop` (`tcpcl://HOST:PORT`) with the plugin
/// `config`: the whole plugin, callable natively too.
pub fn deliver(
    next_hop: &str,
    bundles: Vec<Vec<u8>>,
    config: &[(String, String)],
) -> Result<Outcome, Error> {
    let settings =
        Settings::from_config(next_hop, config).map_err(|e| error("invalid-config", e.0))?;
    if bundles.is_empty() {
        return Err(error("invalid-request", "no bundles to send"));
    }
    if let Some(i) = bundles.iter().position(Vec::is_empty) {
        return Err(error(
            "invalid-request",
            format!("bundle {} of {} is empty", i + 1, bundles.len()),
        ));
    }
    let where_ = format!("{} ({})", settings.authority, settings.connect_to);
    let start = Instant::now();
    let deadline = start + settings.timeout;
    let mut stream = match tcp::connect(settings.connect_to, settings.timeout) {
        Ok(s) => s,
        Err(ConnectError::Denied(e)) => {
            return Err(error(
                "network-denied",
                format!(
                    "TCP to {} is not granted to this plugin ({e}); the host grants the resolved \
                     next-hop address, which `connect-to` must be",
                    settings.connect_to
                ),
            ))
        }
        Err(ConnectError::Failed(e)) => {
            return Ok(Outcome::TemporaryFailure(format!(
                "cannot connect to TCPCL peer {where_}: {e}"
            )))
        }
    };
    let mut session = ActiveSession::new(settings.session_config(), start)
        .map_err(|e| error("invalid-config", e.to_string()))?;
    let total_bytes: usize = bundles.iter().map(Vec::len).sum();
    let count = bundles.len();
    let mut delivery = Delivery {
        bundles,
        ids: Vec::new(),
        fates: vec![Fate::Pending; count],
        peer_node_id: None,
        send_error: None,
        termination: None,
        done_at: None,
    };
    let end = tcp::run(&mut stream, &mut session, &mut delivery, deadline);
    let peer = delivery
        .peer_node_id
        .clone()
        .unwrap_or_else(|| "the peer".into());

    if let Some((i, e)) = &delivery.send_error {
        let text = format!(
            "bundle {} of {count} not sent to {peer} at {where_}: {e}",
            i + 1
        );
        return Ok(match e {
            SendError::TooLarge { .. } | SendError::EmptyBundle => Outcome::PermanentFailure(text),
            _ => Outcome::TemporaryFailure(text),
        });
    }
    let permanent = delivery
        .fates
        .iter()
        .any(|f| matches!(f, Fate::Refused(r) if is_permanent(*r)));
    if delivery.settled() {
        let delivered = delivery
            .fates
            .iter()
            .all(|f| matches!(f, Fate::Acked | Fate::Refused(RefuseReason::Completed)));
        let took = delivery.done_at.unwrap_or_else(Instant::now) - start;
        if delivered {
            return Ok(Outcome::Delivered(format!(
                "{count} bundle(s), {total_bytes} bytes, acknowledged by {peer} at {where_} over TCPCLv4 in {} ms",
                took.as_millis()
            )));
        }
        let text = format!(
            "TCPCL peer {peer} at {where_}: {}",
            fates_text(&delivery.fates)
        );
        return Ok(if permanent {
            Outcome::PermanentFailure(text)
        } else {
            Outcome::TemporaryFailure(text)
        });
    }
    let why = match (&end, &delivery.termination) {
        (RunEnd::Deadline, _) => format!(
            "no answer within {} ms (timeout-ms)",
            settings.timeout.as_millis()
        ),
        (RunEnd::Io(e), _) => e.clone(),
        (RunEnd::Closed, Some(t)) => t.to_string(),
        (RunEnd::Closed, None) => "the session ended".into(),
    };
    let text = format!(
        "TCPCL session with {peer} at {where_} ended early: {why}; {}",
        fates_text(&delivery.fates)
    );
    Ok(if permanent {
        Outcome::PermanentFailure(text)
    } else {
        Outcome::TemporaryFailure(text)
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
                name: "tcpcl-sender".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description:
                    "sends BPv7 bundles over TCPCLv4 (RFC 9174, no TLS) from the component".into(),
            }
        }
    }

    impl exports::deepmail::stages::sender::Guest for Plugin {
        fn send(delivery: Delivery) -> Result<Outcome, StageError> {
            let bundles = match delivery.payload {
                Payload::Bundles(bundles) => bundles,
                Payload::Bsmtp(_) => {
                    return Err(StageError {
                        code: "unsupported-payload".into(),
                        message: "tcpcl-sender carries Bundle Protocol bundles; a Batch SMTP \
                                  object goes to an HTTP sender (https-sender, quic-sender), or \
                                  through the fragmenter into bundles first"
                            .into(),
                        offset: None,
                    })
                }
            };
            match super::deliver(&delivery.next_hop, bundles, &delivery.config) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_reasons_split_into_permanent_and_temporary() {
        assert!(is_permanent(RefuseReason::NotAcceptable));
        assert!(is_permanent(RefuseReason::ExtensionFailure));
        for r in [
            RefuseReason::Unknown,
            RefuseReason::NoResources,
            RefuseReason::Retransmit,
            RefuseReason::SessionTerminating,
            RefuseReason::Other(0x42),
        ] {
            assert!(!is_permanent(r), "{r}");
        }
    }

    #[test]
    fn fates_are_described() {
        let t = fates_text(&[
            Fate::Acked,
            Fate::Refused(RefuseReason::NotAcceptable),
            Fate::Pending,
        ]);
        assert_eq!(
            t,
            "1 of 3 bundle(s) acknowledged; bundle 2 refused: not acceptable (0x04); bundle 3 not acknowledged"
        );
    }

    #[test]
    fn requests_are_checked_before_connecting() {
        let config = vec![
            ("connect-to".to_string(), "127.0.0.1:9".to_string()),
            ("node-id".to_string(), "ipn:1.0".to_string()),
        ];
        let e = deliver("tcpcl://gw:9", vec![], &config).unwrap_err();
        assert_eq!(e.code, "invalid-request");
        let e = deliver("tcpcl://gw:9", vec![vec![1], vec![]], &config).unwrap_err();
        assert!(e.message.contains("bundle 2 of 2"), "{e:?}");
        let e = deliver("https://gw/x", vec![vec![1]], &config).unwrap_err();
        assert_eq!(e.code, "invalid-config");
    }
}
