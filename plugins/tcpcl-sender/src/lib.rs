//! `tcpcl-sender`: a `sender-plugin` component that hands Bundle Protocol
//! v7 bundles to the next hop over the TCP Convergence Layer version 4
//! ([RFC 9174]), spoken inside the component.
//!
//! The protocol is `deepmail-tcpcl`'s sans-IO [`ActiveSession`]; this crate
//! adds one `std::net::TcpStream` (`wasi:sockets` TCP) to the `connect-to`
//! address the host granted, polled with deadlines in [`tcp`]. A session
//! is contact header and SESS_INIT, then each bundle of a delivery's
//! `bundles` payload as one transfer (pipelined, segments no larger than
//! the peer's Segment MRU).
//!
//! Sessions stay open between deliveries (`session-idle-secs`, default
//! 300; 0 ends each session with SESS_TERM once its transfers are
//! settled). The host keeps a plugin instance for later deliveries, so the
//! next delivery to the same peer sends its first segment at once: over a
//! deep-space link that is one one-way light time instead of three (the
//! session setup is a round trip). Between deliveries the host calls the
//! optional WIT `sender-sessions.maintain` about once a second: the plugin
//! reads what the peer sent (keepalives, SESS_TERM) and sends keepalives
//! due, and closes the session once idle too long or when the host shuts
//! down. A kept session the peer ended meanwhile is noticed before use; if
//! a kept session fails before any transfer was acknowledged, the delivery
//! is tried once more on a new session within the same deadline.
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
//! TLS: RFC 9174 negotiates it with the contact headers' CAN_TLS flag
//! (§4.2, §4.3) and a session runs without it when a side does not offer
//! it and the other's policy allows that. This plugin never offers it
//! (contact header flag CAN_TLS is 0), so the session is plain TCP whatever
//! the peer supports; protect the link below it (IPsec, WireGuard) where
//! that matters.
//!
//! [RFC 9174]: https://www.rfc-editor.org/rfc/rfc9174

#![warn(missing_docs)]

pub mod config;
pub mod tcp;
pub mod tls;

use std::time::Instant;

use deepmail_tcpcl::{ActiveSession, Event, RefuseReason, SendError, SessTermReason, Termination};

use crate::config::Settings;
use crate::tcp::{Conn, ConnectError, Driver, RunEnd};

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

/// An outcome and which bundles the far side acknowledged (the WIT
/// `sender-progress.report`): 0-based positions in the delivery, ascending.
/// After a cut the host sends only the others again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// How the delivery went.
    pub outcome: Outcome,
    /// Positions of the bundles the far side acknowledged.
    pub acknowledged: Vec<u32>,
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

/// The plugin's side of a delivery: sends the bundles once the session is
/// established, records their fates, and when all are settled either ends
/// the session or (kept open) is done.
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
    /// Leave the session open once every transfer is settled.
    keep_open: bool,
}

impl Delivery {
    fn settled(&self) -> bool {
        !self.fates.is_empty() && self.fates.iter().all(|f| *f != Fate::Pending)
    }

    fn index_of(&self, id: u64) -> Option<usize> {
        self.ids.iter().position(|i| *i == id)
    }

    /// Queues every bundle on an established session.
    fn send_all(&mut self, session: &mut ActiveSession, now: Instant) {
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
}

impl Driver for Delivery {
    fn on_event(&mut self, session: &mut ActiveSession, event: Event, now: Instant) {
        match event {
            Event::Established(peer) => {
                self.peer_node_id = Some(peer.node_id);
                self.send_all(session, now);
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
            Event::BundleReceived { .. } | Event::MessageRejected(_) | Event::StartTls => {}
        }
        if self.done_at.is_none() && self.settled() {
            self.done_at = Some(now);
            if !self.keep_open {
                session.terminate(now, SessTermReason::Unknown);
            }
        }
    }

    fn done(&self) -> bool {
        self.keep_open && self.done_at.is_some()
    }
}

/// A driver for an idle session: takes what comes, wants nothing.
struct Idle;

impl Driver for Idle {
    fn on_event(&mut self, _: &mut ActiveSession, _: Event, _: Instant) {}

    fn done(&self) -> bool {
        true
    }
}

fn acked(fates: &[Fate]) -> usize {
    fates.iter().filter(|f| **f == Fate::Acked).count()
}

/// Positions of the bundles the far side took: acknowledged, or refused as
/// already `Completed` (it has them).
fn taken(fates: &[Fate]) -> Vec<u32> {
    fates
        .iter()
        .enumerate()
        .filter(|(_, f)| matches!(f, Fate::Acked | Fate::Refused(RefuseReason::Completed)))
        .map(|(i, _)| i as u32)
        .collect()
}

/// One line per bundle that was not acknowledged, for the outcome text.
fn fates_text(fates: &[Fate]) -> String {
    let acked = acked(fates);
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

/// A TCPCL session kept open between deliveries.
struct Open {
    settings: Settings,
    conn: Conn,
    session: ActiveSession,
    peer_node_id: String,
    idle_since: Instant,
    /// Deliveries made on this session so far.
    deliveries: u64,
}

impl Open {
    /// Whether a delivery with `settings` may use this session: same
    /// address and same session parameters.
    fn fits(&self, settings: &Settings) -> bool {
        let (a, b) = (&self.settings, settings);
        a.connect_to == b.connect_to
            && a.node_id == b.node_id
            && a.keepalive_secs == b.keepalive_secs
            && a.segment_mru == b.segment_mru
            && a.tls == b.tls
            && a.ca_pem == b.ca_pem
            && a.tls_name == b.tls_name
    }

    fn idle_too_long(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.idle_since) >= self.settings.session_idle
    }

    /// Reads what the peer sent while nobody was looking and sends what is
    /// due (keepalives), without waiting; whether the session can still
    /// take transfers.
    fn service(&mut self) -> bool {
        let end = self.conn.run(&mut self.session, &mut Idle, Instant::now());
        matches!(end, RunEnd::Done | RunEnd::Deadline)
            && self.session.is_established()
            && !self.conn.peer_closed()
    }

    /// Ends the session: SESS_TERM with `reason`, written without waiting
    /// for the peer's reply, then the connection is closed.
    fn close(mut self, reason: SessTermReason) {
        if !self.session.is_closed() && !self.conn.peer_closed() {
            self.session.terminate(Instant::now(), reason);
            let _ = self.conn.run(&mut self.session, &mut Idle, Instant::now());
        }
        self.conn.close();
    }
}

/// How one attempt on one session went.
struct Attempt {
    outcome: Outcome,
    /// Positions of the bundles the far side took.
    acknowledged: Vec<u32>,
    /// The session, when it may take the next delivery.
    open: Option<Open>,
    /// Nothing was acknowledged and the session failed under us: a new
    /// session may succeed at once.
    retry_fresh: bool,
}

/// The sender: deliveries, and the session kept between them.
pub struct Client {
    open: Option<Open>,
}

impl Default for Client {
    fn default() -> Client {
        Client::new()
    }
}

impl Client {
    /// A client with no session open.
    pub const fn new() -> Client {
        Client { open: None }
    }

    /// Delivers `bundles` to `next_hop` (`tcpcl://HOST:PORT`) with the
    /// plugin `config`, on the session kept from an earlier delivery when
    /// it fits and is alive, else on a new one.
    pub fn deliver(
        &mut self,
        next_hop: &str,
        bundles: Vec<Vec<u8>>,
        config: &[(String, String)],
    ) -> Result<Report, Error> {
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
        let tls = tls::client(&settings).map_err(|e| error("invalid-config", e.0))?;
        let start = Instant::now();
        let deadline = start + settings.timeout;
        let kept = match self.open.take() {
            Some(mut open) => {
                if open.fits(&settings) && !open.idle_too_long(start) && open.service() {
                    Some(open)
                } else {
                    open.close(SessTermReason::Unknown);
                    None
                }
            }
            None => None,
        };
        if let Some(open) = kept {
            let attempt = attempt(&settings, open, bundles.clone(), start, deadline);
            if !attempt.retry_fresh || Instant::now() >= deadline {
                self.open = attempt.open;
                return Ok(Report {
                    outcome: attempt.outcome,
                    acknowledged: attempt.acknowledged,
                });
            }
            if let Some(stale) = attempt.open {
                stale.close(SessTermReason::Unknown);
            }
        }
        let stream = match tcp::connect(settings.connect_to, settings.timeout) {
            Ok(s) => s,
            Err(ConnectError::Denied(e)) => {
                let message = format!(
                    "TCP to {} is not granted to this plugin ({e}); the host grants the \
                     resolved next-hop address, which `connect-to` must be",
                    settings.connect_to
                );
                return Err(error("network-denied", message));
            }
            Err(ConnectError::Failed(e)) => {
                return Ok(Report {
                    outcome: Outcome::TemporaryFailure(format!(
                        "cannot connect to TCPCL peer {} ({}): {e}",
                        settings.authority, settings.connect_to
                    )),
                    acknowledged: Vec::new(),
                })
            }
        };
        let session = ActiveSession::new(settings.session_config(), Instant::now())
            .map_err(|e| error("invalid-config", e.to_string()))?;
        let open = Open {
            settings: settings.clone(),
            conn: Conn::new(stream, tls),
            session,
            peer_node_id: String::new(),
            idle_since: start,
            deliveries: 0,
        };
        let attempt = attempt(&settings, open, bundles, start, deadline);
        self.open = attempt.open;
        Ok(Report {
            outcome: attempt.outcome,
            acknowledged: attempt.acknowledged,
        })
    }

    /// Services the kept session between deliveries (reads what the peer
    /// sent, sends keepalives due) and closes it when idle longer than
    /// `session-idle-secs` or when `closing`. Returns the sessions open
    /// (0 or 1). Never waits for the network.
    pub fn maintain(&mut self, closing: bool) -> u32 {
        let Some(mut open) = self.open.take() else {
            return 0;
        };
        if closing {
            open.close(SessTermReason::Unknown);
            return 0;
        }
        if open.idle_too_long(Instant::now()) {
            open.close(SessTermReason::IdleTimeout);
            return 0;
        }
        if open.service() {
            self.open = Some(open);
            1
        } else {
            open.close(SessTermReason::Unknown);
            0
        }
    }
}

/// Delivers `bundles` on `open` (new or kept) and judges the outcome.
fn attempt(
    settings: &Settings,
    mut open: Open,
    bundles: Vec<Vec<u8>>,
    start: Instant,
    deadline: Instant,
) -> Attempt {
    let reused = open.deliveries > 0;
    let where_ = format!("{} ({})", settings.authority, settings.connect_to);
    let total_bytes: usize = bundles.iter().map(Vec::len).sum();
    let count = bundles.len();
    let keep_open = !settings.session_idle.is_zero();
    let mut delivery = Delivery {
        bundles,
        ids: Vec::new(),
        fates: vec![Fate::Pending; count],
        peer_node_id: reused.then(|| open.peer_node_id.clone()),
        send_error: None,
        termination: None,
        done_at: None,
        keep_open,
    };
    if reused {
        delivery.send_all(&mut open.session, Instant::now());
    }
    let end = open.conn.run(&mut open.session, &mut delivery, deadline);
    let peer = delivery
        .peer_node_id
        .clone()
        .unwrap_or_else(|| "the peer".into());
    let on = if reused {
        format!("the session kept open ({} earlier)", open.deliveries)
    } else {
        "a new session".to_string()
    };
    let permanent = delivery
        .fates
        .iter()
        .any(|f| matches!(f, Fate::Refused(r) if is_permanent(*r)));
    let retry_fresh = reused
        && acked(&delivery.fates) == 0
        && !permanent
        && delivery.send_error.is_none()
        && end != RunEnd::Deadline
        && (delivery.termination.is_some() || !matches!(end, RunEnd::Done));
    let keep = |mut open: Open, delivery: &Delivery| {
        (end == RunEnd::Done && open.session.is_established()).then(|| {
            open.deliveries += 1;
            open.idle_since = Instant::now();
            if let Some(p) = &delivery.peer_node_id {
                open.peer_node_id = p.clone();
            }
            open
        })
    };

    if let Some((i, e)) = &delivery.send_error {
        let text = format!(
            "bundle {} of {count} not sent to {peer} at {where_}: {e}",
            i + 1
        );
        open.close(SessTermReason::Unknown);
        return Attempt {
            outcome: match e {
                SendError::TooLarge { .. } | SendError::EmptyBundle => {
                    Outcome::PermanentFailure(text)
                }
                _ => Outcome::TemporaryFailure(text),
            },
            acknowledged: taken(&delivery.fates),
            open: None,
            retry_fresh: false,
        };
    }
    if delivery.settled() {
        let delivered = delivery
            .fates
            .iter()
            .all(|f| matches!(f, Fate::Acked | Fate::Refused(RefuseReason::Completed)));
        let took = delivery.done_at.unwrap_or_else(Instant::now) - start;
        let outcome = if delivered {
            Outcome::Delivered(format!(
                "{count} bundle(s), {total_bytes} bytes, acknowledged by {peer} at {where_} over TCPCLv4{} on {on} in {} ms",
                if open.conn.is_tls() { " with TLS" } else { "" },
                took.as_millis()
            ))
        } else {
            let text = format!(
                "TCPCL peer {peer} at {where_}: {}",
                fates_text(&delivery.fates)
            );
            if permanent {
                Outcome::PermanentFailure(text)
            } else {
                Outcome::TemporaryFailure(text)
            }
        };
        return Attempt {
            outcome,
            acknowledged: taken(&delivery.fates),
            open: keep(open, &delivery),
            retry_fresh: retry_fresh && !delivered,
        };
    }
    let why = match (&end, &delivery.termination) {
        (RunEnd::Deadline, _) => format!(
            "no answer within {} ms (timeout-ms)",
            settings.timeout.as_millis()
        ),
        (RunEnd::Io(e), _) => e.clone(),
        (_, Some(t)) => t.to_string(),
        (_, None) => "the session ended".into(),
    };
    let text = format!(
        "TCPCL session with {peer} at {where_} ({on}) ended early: {why}; {}",
        fates_text(&delivery.fates)
    );
    open.conn.close();
    Attempt {
        acknowledged: taken(&delivery.fates),
        outcome: if permanent {
            Outcome::PermanentFailure(text)
        } else {
            Outcome::TemporaryFailure(text)
        },
        open: None,
        retry_fresh,
    }
}

/// Delivers `bundles` to `next_hop` (`tcpcl://HOST:PORT`) with the plugin
/// `config` on a session of its own, ended when the delivery is: the whole
/// plugin for one delivery, callable natively too.
pub fn deliver(
    next_hop: &str,
    bundles: Vec<Vec<u8>>,
    config: &[(String, String)],
) -> Result<Report, Error> {
    let mut client = Client::new();
    let outcome = client.deliver(next_hop, bundles, config);
    client.maintain(true);
    outcome
}

#[cfg(target_arch = "wasm32")]
mod component {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "bundle-sender-plugin",
    });

    use std::sync::Mutex;

    use deepmail::stages::types::StageError;
    use exports::deepmail::stages::plugin_info::Info;
    use exports::deepmail::stages::sender::{Delivery, Outcome, Payload};
    use exports::deepmail::stages::sender_progress::Report;

    /// This instance's client: the session it keeps between deliveries.
    static CLIENT: Mutex<super::Client> = Mutex::new(super::Client::new());

    fn client() -> std::sync::MutexGuard<'static, super::Client> {
        CLIENT.lock().unwrap_or_else(|e| e.into_inner())
    }

    struct Plugin;

    impl exports::deepmail::stages::sender_sessions::Guest for Plugin {
        fn maintain(closing: bool) -> u32 {
            client().maintain(closing)
        }
    }

    impl exports::deepmail::stages::plugin_info::Guest for Plugin {
        fn describe() -> Info {
            Info {
                name: "tcpcl-sender".into(),
                version: env!("CARGO_PKG_VERSION").into(),
                description:
                    "sends BPv7 bundles over TCPCLv4 (RFC 9174; TLS 1.3 when the route asks) from the component".into(),
            }
        }
    }

    impl exports::deepmail::stages::sender::Guest for Plugin {
        fn send(delivery: Delivery) -> Result<Outcome, StageError> {
            <Plugin as exports::deepmail::stages::sender_progress::Guest>::send_tracked(delivery)
                .map(|r| r.outcome)
        }
    }

    impl exports::deepmail::stages::sender_progress::Guest for Plugin {
        fn send_tracked(delivery: Delivery) -> Result<Report, StageError> {
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
            match client().deliver(&delivery.next_hop, bundles, &delivery.config) {
                Ok(r) => Ok(Report {
                    outcome: match r.outcome {
                        super::Outcome::Delivered(m) => Outcome::Delivered(m),
                        super::Outcome::TemporaryFailure(m) => Outcome::TemporaryFailure(m),
                        super::Outcome::PermanentFailure(m) => Outcome::PermanentFailure(m),
                    },
                    acknowledged: r.acknowledged,
                }),
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
