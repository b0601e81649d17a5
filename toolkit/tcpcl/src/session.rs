//! What both session roles share: settings, events, and the session core
//! that does the contact header exchange (RFC 9174 §4.2-§4.3), SESS_INIT
//! negotiation (§4.6-§4.7), keepalives and idle timeouts (§5.1.1, §6.2),
//! MSG_REJECT (§5.1.2) and termination (§6.1). The roles add the
//! transfers on top ([`crate::ActiveSession`] sends, [`crate::PassiveSession`]
//! receives).
//!
//! Time is always an argument; nothing here reads a clock.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::message::{
    decode_message, ContactHeader, DecodeError, DecodeLimits, Message, MsgReject, MsgRejectReason,
    SessInit, SessTerm, SessTermReason, CONTACT_CAN_TLS, CONTACT_HEADER_LEN, SESS_TERM_REPLY,
    VERSION,
};

/// One entity's settings for a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// Our node ID, sent in SESS_INIT: a URI such as `ipn:1.0` or
    /// `dtn://earth-gw/` (§4.6).
    pub node_id: String,
    /// Keepalive interval we ask for, in seconds; the session uses the
    /// smaller of both sides' values, and 0 disables keepalives (§4.7).
    pub keepalive_secs: u16,
    /// Largest XFER_SEGMENT data we accept (our Segment MRU). Also the
    /// decoder's limit: a longer segment ends the session before its data
    /// is read.
    pub segment_mru: u64,
    /// Largest transfer (bundle) we accept (our Transfer MRU): a passive
    /// session refuses longer ones with `NoResources`.
    pub transfer_mru: u64,
    /// Largest segment we send; the session uses the smaller of this and
    /// the peer's Segment MRU.
    pub max_segment_len: u64,
    /// Put a Transfer Length extension (§5.2.5.1) on each START segment, so
    /// the receiver can refuse an over-long bundle before its data.
    pub transfer_length_extension: bool,
    /// How long the contact header exchange and SESS_INIT negotiation may
    /// take before the session is given up.
    pub handshake_timeout: Duration,
    /// With keepalives disabled (negotiated interval 0): how long the peer
    /// may be silent before the session ends with `IdleTimeout`; `None`:
    /// never. With keepalives, the limit is twice the negotiated interval
    /// (§5.1.1).
    pub idle_timeout: Option<Duration>,
    /// After we send SESS_TERM, how long to wait for the peer's reply and
    /// for transfers in progress before closing anyway.
    pub close_timeout: Duration,
    /// Offer TLS: set CAN_TLS in our contact header (§4.2). When the peer
    /// sets it too, the session pauses after the contact header exchange
    /// with [`Event::StartTls`]: the driver runs the TLS handshake on the
    /// connection (the active entity as the TLS client, §4.4) and calls
    /// `tls_established`; SESS_INIT and everything after it then go
    /// through TLS.
    pub offer_tls: bool,
    /// Refuse a session without TLS: when the peer does not set CAN_TLS
    /// the session ends with SESS_TERM `ContactFailure` (§4.3) before any
    /// SESS_INIT. Needs `offer_tls`.
    pub require_tls: bool,
}

impl SessionConfig {
    /// Settings for node `node_id` with defaults: keepalive 30 s, segment
    /// MRU 1 MiB, transfer MRU 16 MiB, 64 KiB segments sent, Transfer
    /// Length extension on, 30 s handshake, no idle limit without
    /// keepalives, 10 s to close.
    pub fn new(node_id: impl Into<String>) -> SessionConfig {
        SessionConfig {
            node_id: node_id.into(),
            keepalive_secs: 30,
            segment_mru: 1 << 20,
            transfer_mru: 16 << 20,
            max_segment_len: 64 << 10,
            transfer_length_extension: true,
            handshake_timeout: Duration::from_secs(30),
            idle_timeout: None,
            close_timeout: Duration::from_secs(10),
            offer_tls: false,
            require_tls: false,
        }
    }

    /// Checks the settings; the sessions call it on creation.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_node_id(&self.node_id).map_err(|why| ConfigError::NodeId {
            node_id: self.node_id.clone(),
            why,
        })?;
        for (name, value) in [
            ("segment_mru", self.segment_mru),
            ("transfer_mru", self.transfer_mru),
            ("max_segment_len", self.max_segment_len),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero { setting: name });
            }
        }
        if self.require_tls && !self.offer_tls {
            return Err(ConfigError::RequireTlsWithoutOffer);
        }
        Ok(())
    }
}

/// A setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The node ID is not a URI we can send.
    #[error("node ID `{node_id}` {why}; use a node EID such as ipn:1.0 or dtn://earth-gw/")]
    NodeId {
        /// The node ID given.
        node_id: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A size that must be positive is 0.
    #[error("{setting} must be at least 1 byte")]
    Zero {
        /// The setting.
        setting: &'static str,
    },
    /// A server offers TLS with no certificate to offer (feature `tls`:
    /// set `ServerConfig::tls`).
    #[error("offer_tls is set but there is no TLS certificate and key to offer")]
    NoTlsIdentity,
    /// `require_tls` without `offer_tls`: no session could ever start.
    #[error("require_tls needs offer_tls: a session that must use TLS has to offer it (CAN_TLS)")]
    RequireTlsWithoutOffer,
}

/// Whether `id` looks like a URI (§4.6: the node ID is one): a scheme of
/// letters, digits, `+`, `-`, `.` starting with a letter, a colon, and a
/// non-empty rest without spaces or control characters; at most 1024 bytes.
pub(crate) fn check_node_id(id: &str) -> Result<(), &'static str> {
    if id.is_empty() {
        return Err("is empty");
    }
    if id.len() > 1024 {
        return Err("is longer than 1024 bytes");
    }
    let Some((scheme, rest)) = id.split_once(':') else {
        return Err("has no URI scheme (no `:`)");
    };
    let mut chars = scheme.chars();
    let scheme_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err("has an invalid URI scheme");
    }
    if rest.is_empty() {
        return Err("has nothing after the scheme");
    }
    if id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("contains spaces or control characters");
    }
    Ok(())
}

/// What the peer said in its SESS_INIT, and what was negotiated (§4.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The peer's node ID.
    pub node_id: String,
    /// The negotiated keepalive interval in seconds (the smaller of both
    /// sides'); 0: no keepalives.
    pub keepalive_secs: u16,
    /// The largest segment the peer accepts.
    pub segment_mru: u64,
    /// The largest transfer the peer accepts.
    pub transfer_mru: u64,
    /// Whether the peer offered TLS (CAN_TLS in its contact header).
    pub can_tls: bool,
    /// Whether this session runs over TLS (both sides offered it, §4.4).
    pub tls: bool,
}

/// Who ended a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Initiator {
    /// This side: the application asked, a timeout expired, or the peer
    /// broke the protocol.
    Local,
    /// The peer sent SESS_TERM.
    Peer,
    /// The connection ended without a SESS_TERM.
    Transport,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Termination {
    /// Who ended it.
    pub initiator: Initiator,
    /// The SESS_TERM reason sent or received; `None` when none was.
    pub reason: Option<SessTermReason>,
    /// What happened, in words.
    pub detail: String,
}

impl fmt::Display for Termination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)?;
        if let Some(reason) = self.reason {
            write!(f, " (SESS_TERM reason {reason})")?;
        }
        Ok(())
    }
}

/// Something that happened in a session, for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Both sides offered TLS (§4.4): write the output queued so far (our
    /// contact header) in the clear, then run the TLS handshake on the
    /// connection, the active entity as client and the passive one as
    /// server, and call `tls_established`. Nothing more is read or
    /// written in the clear; input fed before the handshake is an error.
    StartTls,
    /// Contact headers and SESS_INITs exchanged: transfers may start.
    Established(PeerInfo),
    /// (Active) the peer acknowledged every byte of a transfer.
    TransferAcked(u64),
    /// (Active) the peer refused a transfer (XFER_REFUSE), or the session
    /// ended before the transfer could start (`SessionTerminating`).
    TransferRefused(u64, crate::RefuseReason),
    /// (Passive) a complete bundle; answer with `accept` or `refuse`.
    BundleReceived {
        /// Its transfer ID.
        transfer_id: u64,
        /// The bundle.
        bytes: Vec<u8>,
    },
    /// The peer could not handle one of our messages (MSG_REJECT).
    MessageRejected(MsgReject),
    /// The session is over; close the connection once the output is
    /// written. Always the last event.
    SessionTerminated(Termination),
}

/// Which side of the TCP connection this is (§3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Active,
    Passive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the peer's contact header.
    ContactHeader,
    /// Both offered TLS: waiting for the driver's handshake (§4.4).
    Tls,
    /// Contact headers exchanged (and TLS, if used); waiting for the
    /// peer's SESS_INIT.
    SessInit,
    /// Negotiated; transfers may flow.
    Established,
    /// Over: no further input is read.
    Closed,
}

/// The Ending state of §6.1: a SESS_TERM was sent or received.
#[derive(Debug, Clone, Copy)]
struct Ending {
    sent: bool,
    received: bool,
    since: Instant,
}

/// The role-independent part of a session.
pub(crate) struct Core {
    role: Role,
    pub(crate) config: SessionConfig,
    limits: DecodeLimits,
    phase: Phase,
    input: Vec<u8>,
    /// Bytes of `input` already decoded.
    input_pos: usize,
    /// Stream offset of `input[0]`, for error messages.
    input_base: u64,
    output: Vec<u8>,
    events: VecDeque<Event>,
    peer: Option<PeerInfo>,
    /// The CAN_TLS flag of the peer's contact header.
    peer_can_tls: bool,
    /// The session runs over TLS (the driver's handshake is done).
    tls: bool,
    start: Instant,
    last_sent: Instant,
    last_received: Instant,
    /// The application holds bundles it has not decided on: the peer is
    /// waiting for us, so its silence is not idleness.
    idle_suspended: bool,
    /// A suspension just ended: the idle clock restarts at the next output.
    idle_restart: bool,
    ending: Option<Ending>,
    /// Our contact header is queued or sent.
    contact_sent: bool,
    /// Asked to terminate before the contact header exchange (passive).
    pending_term: Option<SessTermReason>,
    termination: Option<Termination>,
}

impl Core {
    pub(crate) fn new(
        role: Role,
        config: SessionConfig,
        now: Instant,
    ) -> Result<Core, ConfigError> {
        config.validate()?;
        let limits = DecodeLimits {
            max_segment_data: config.segment_mru,
            ..DecodeLimits::default()
        };
        let mut core = Core {
            role,
            config,
            limits,
            phase: Phase::ContactHeader,
            input: Vec::new(),
            input_pos: 0,
            input_base: 0,
            output: Vec::new(),
            events: VecDeque::new(),
            peer: None,
            peer_can_tls: false,
            tls: false,
            start: now,
            last_sent: now,
            last_received: now,
            idle_suspended: false,
            idle_restart: false,
            ending: None,
            contact_sent: role == Role::Active,
            pending_term: None,
            termination: None,
        };
        if role == Role::Active {
            // §4.2: the active entity speaks first.
            let ours = core.contact_header();
            core.output.extend_from_slice(&ours.encode());
        }
        Ok(core)
    }

    pub(crate) fn peer(&self) -> Option<&PeerInfo> {
        self.peer.as_ref()
    }

    /// Our contact header: CAN_TLS when we offer TLS.
    fn contact_header(&self) -> ContactHeader {
        ContactHeader {
            flags: if self.config.offer_tls {
                CONTACT_CAN_TLS
            } else {
                0
            },
            ..ContactHeader::OURS
        }
    }

    /// The driver finished the TLS handshake that [`Event::StartTls`]
    /// asked for: SESS_INIT goes out (through TLS) and the session goes
    /// on. Ignored in any other phase. The handshake timer starts again:
    /// contact headers, TLS and SESS_INIT each get `handshake_timeout`
    /// (the TLS handshake alone takes a round trip, so one limit for all
    /// three would have to be set for three round trips).
    pub(crate) fn tls_established(&mut self, now: Instant) {
        if self.phase != Phase::Tls {
            return;
        }
        self.start = now;
        self.tls = true;
        self.phase = Phase::SessInit;
        self.send_sess_init();
    }

    /// Waiting for the driver's TLS handshake ([`Event::StartTls`]).
    pub(crate) fn awaiting_tls(&self) -> bool {
        self.phase == Phase::Tls
    }

    /// The driver's TLS handshake failed: the session ends (with no
    /// SESS_TERM: there is no stream to write it to).
    pub(crate) fn tls_failed(&mut self, detail: String) {
        self.fail(SessTermReason::ContactFailure, detail);
    }

    pub(crate) fn is_established(&self) -> bool {
        self.phase == Phase::Established
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// In the Ending state (§6.1): no new transfers either way.
    pub(crate) fn is_ending(&self) -> bool {
        self.ending.is_some()
    }

    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub(crate) fn push_event(&mut self, event: Event) {
        self.events.push_back(event);
    }

    /// Queues `message` for sending.
    pub(crate) fn send(&mut self, message: &Message) {
        if let Err(e) = message.encode(&mut self.output) {
            // Only SESS_INIT could fail (node ID length), and the config
            // was validated; nothing else the session builds can.
            debug_assert!(
                false,
                "session built an unencodable {}: {e}",
                message.name()
            );
        }
    }

    /// Takes the queued output, noting the time for keepalives.
    pub(crate) fn take_output(&mut self, now: Instant, into: &mut Vec<u8>) {
        if self.idle_restart {
            self.idle_restart = false;
            self.last_received = self.last_received.max(now);
        }
        if !self.output.is_empty() {
            into.append(&mut self.output);
            self.last_sent = now;
        }
    }

    pub(crate) fn note_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    /// Takes bytes read from the connection.
    pub(crate) fn receive(&mut self, now: Instant, bytes: &[u8]) {
        if self.phase == Phase::Closed || bytes.is_empty() {
            return;
        }
        self.input.extend_from_slice(bytes);
        self.last_received = now;
        self.idle_restart = false;
    }

    /// Decodes what has arrived, handling session messages itself, and
    /// returns the next transfer message (XFER_SEGMENT, XFER_ACK,
    /// XFER_REFUSE) for the role to handle. `None`: nothing more for now.
    pub(crate) fn next_transfer_message(&mut self) -> Option<Message> {
        loop {
            if self.phase == Phase::Closed {
                self.input.clear();
                self.input_pos = 0;
                return None;
            }
            let buf = &self.input[self.input_pos..];
            let at = self.input_base + self.input_pos as u64;
            if self.phase == Phase::Tls {
                if !buf.is_empty() {
                    // The TLS handshake belongs to the driver; cleartext
                    // after the contact header, before it, is the peer
                    // not following §4.4 (or bytes the driver should
                    // have given to TLS).
                    self.fail(
                        SessTermReason::ContactFailure,
                        format!(
                            "{} bytes in the clear after the contact header, before the TLS handshake (RFC 9174 §4.4)",
                            buf.len()
                        ),
                    );
                    continue;
                }
                break;
            }
            if self.phase == Phase::ContactHeader {
                match ContactHeader::decode(buf) {
                    Ok(None) => break,
                    Ok(Some(header)) => {
                        self.input_pos += CONTACT_HEADER_LEN;
                        self.on_contact_header(header);
                    }
                    Err(e) => {
                        // §4.3: not a TCPCL peer; close without SESS_TERM.
                        self.close_with(Termination {
                            initiator: Initiator::Local,
                            reason: None,
                            detail: e.to_string(),
                        });
                    }
                }
                continue;
            }
            match decode_message(buf, &self.limits) {
                Ok(None) => break,
                Err(e) => self.on_decode_error(&e, at),
                Ok(Some((message, used))) => {
                    self.input_pos += used;
                    match message {
                        Message::SessInit(init) => self.on_sess_init(init),
                        Message::SessTerm(term) => self.on_sess_term(term),
                        Message::Keepalive => {}
                        Message::MsgReject(reject) => {
                            self.events.push_back(Event::MessageRejected(reject))
                        }
                        transfer => {
                            if self.phase == Phase::Established {
                                return Some(transfer);
                            }
                            self.reject(MsgRejectReason::Unexpected, transfer.type_code());
                        }
                    }
                }
            }
        }
        // Keep only the undecoded tail.
        if self.input_pos > 0 {
            self.input.drain(..self.input_pos);
            self.input_base += self.input_pos as u64;
            self.input_pos = 0;
        }
        None
    }

    /// Sends MSG_REJECT for a message of type `rejected_type`.
    pub(crate) fn reject(&mut self, reason: MsgRejectReason, rejected_type: u8) {
        self.send(&Message::MsgReject(MsgReject {
            reason,
            rejected_type,
        }));
    }

    fn on_contact_header(&mut self, header: ContactHeader) {
        if self.role == Role::Passive {
            let ours = self.contact_header();
            self.output.extend_from_slice(&ours.encode());
            self.contact_sent = true;
        }
        if header.version != VERSION {
            self.fail(
                SessTermReason::VersionMismatch,
                format!(
                    "the peer speaks TCPCL version {}, not {VERSION} (RFC 9174)",
                    header.version
                ),
            );
            return;
        }
        if let Some(reason) = self.pending_term.take() {
            // A passive session refused before it began (e.g. busy).
            self.send(&Message::SessTerm(SessTerm { flags: 0, reason }));
            self.close_with(Termination {
                initiator: Initiator::Local,
                reason: Some(reason),
                detail: "session refused by this side".into(),
            });
            return;
        }
        self.peer_can_tls = header.can_tls();
        if self.config.offer_tls && self.peer_can_tls {
            // §4.4: both offered, so TLS is used; it starts right after
            // the contact header exchange, before SESS_INIT.
            self.phase = Phase::Tls;
            self.events.push_back(Event::StartTls);
            return;
        }
        if self.config.require_tls {
            // §4.3: the peer does not offer TLS and we require it.
            self.fail(
                SessTermReason::ContactFailure,
                "TLS is required here and the peer did not offer it (no CAN_TLS in its contact header, RFC 9174 §4.2)".into(),
            );
            return;
        }
        self.phase = Phase::SessInit;
        // §4.6: each entity sends its SESS_INIT once the contact header
        // exchange (and TLS, when used: see `tls_established`, §4.4) is
        // complete from its own point of view, i.e. once it has
        // both sent its contact header and received the peer's. SESS_INIT
        // is not an answer to the peer's SESS_INIT; the two may cross.
        //
        // * Active: the peer's contact header has just arrived, ours went
        //   out first (§4.2), so SESS_INIT follows now. It must not wait
        //   for the peer's SESS_INIT: a passive peer may (RFC-conformantly)
        //   wait for ours before sending its own.
        // * Passive: our contact header was queued just above, so the
        //   exchange is complete and SESS_INIT goes out in the same flight,
        //   without waiting for the active entity's SESS_INIT (dtn7-rs's
        //   dtnd does the same). This saves a round trip: the active side
        //   receives contact header + SESS_INIT together and can answer
        //   with its SESS_INIT and its first XFER_SEGMENTs at once, so the
        //   first bundle data arrives 3 one-way light times after the TCP
        //   connection instead of 5.
        self.send_sess_init();
    }

    fn send_sess_init(&mut self) {
        let init = Message::SessInit(SessInit {
            keepalive_secs: self.config.keepalive_secs,
            segment_mru: self.config.segment_mru,
            transfer_mru: self.config.transfer_mru,
            node_id: self.config.node_id.clone(),
            extensions: Vec::new(),
        });
        self.send(&init);
    }

    fn on_sess_init(&mut self, init: SessInit) {
        if self.phase != Phase::SessInit {
            self.reject(
                MsgRejectReason::Unexpected,
                Message::SessInit(init).type_code(),
            );
            return;
        }
        if let Err(why) = check_node_id(&init.node_id) {
            self.fail(
                SessTermReason::ContactFailure,
                format!("the peer's node ID `{}` {why}", init.node_id.escape_debug()),
            );
            return;
        }
        // §4.8: unknown critical session extensions end the session; we
        // know none.
        if let Some(e) = init.extensions.iter().find(|e| e.is_critical()) {
            self.fail(SessTermReason::ContactFailure,
                format!(
                    "the peer's SESS_INIT has critical session extension type {:#06x}, which this entity does not implement",
                    e.item_type
                ),
            );
            return;
        }
        // Our own SESS_INIT is already out (see `on_contact_header`), so
        // with the peer's processed the session is established from our
        // side (§4.7) and transfers may start at once: an active entity
        // sends its first XFER_SEGMENT right behind its SESS_INIT, and a
        // passive one accepts XFER_SEGMENTs following the SESS_INIT in
        // the same read.
        let can_tls = self.peer_can_tls;
        let info = PeerInfo {
            node_id: init.node_id,
            keepalive_secs: init.keepalive_secs.min(self.config.keepalive_secs),
            segment_mru: init.segment_mru,
            transfer_mru: init.transfer_mru,
            can_tls,
            tls: self.tls,
        };
        self.peer = Some(info.clone());
        self.phase = Phase::Established;
        self.events.push_back(Event::Established(info));
    }

    fn on_sess_term(&mut self, term: SessTerm) {
        if !term.is_reply() && !self.ending.is_some_and(|e| e.sent) {
            // §6.1: acknowledge with the same content and REPLY set.
            self.send(&Message::SessTerm(SessTerm {
                flags: term.flags | SESS_TERM_REPLY,
                reason: term.reason,
            }));
        }
        if self.termination.is_none() {
            self.termination = Some(Termination {
                initiator: Initiator::Peer,
                reason: Some(term.reason),
                detail: "the peer ended the session".into(),
            });
        }
        if self.phase != Phase::Established {
            self.close();
            return;
        }
        let since = self.ending.map_or(self.last_received, |e| e.since);
        self.ending = Some(Ending {
            sent: true,
            received: true,
            since,
        });
    }

    fn on_decode_error(&mut self, e: &DecodeError, at: u64) {
        let reason = match e {
            DecodeError::UnknownType { code, .. } => {
                // §5.1.2; the message's length is unknown, so the stream
                // cannot be followed any further.
                self.reject(MsgRejectReason::TypeUnknown, *code);
                SessTermReason::Unknown
            }
            DecodeError::SegmentTooLong { .. } | DecodeError::ExtensionsTooLong { .. } => {
                SessTermReason::ResourceExhaustion
            }
            _ if self.phase == Phase::SessInit => SessTermReason::ContactFailure,
            _ => SessTermReason::Unknown,
        };
        self.fail(reason, format!("{e} (message at byte {at} of the stream)"));
    }

    /// Ends the session because of a local decision or the peer's
    /// misbehaviour: SESS_TERM when our contact header is out, then close
    /// without waiting for the reply.
    pub(crate) fn fail(&mut self, reason: SessTermReason, detail: String) {
        if self.phase == Phase::Closed {
            return;
        }
        let term_sent = self.ending.is_some_and(|e| e.sent);
        // Between the contact headers and the end of the TLS handshake
        // there is no stream a SESS_TERM could be written to.
        if self.contact_sent && !term_sent && self.phase != Phase::Tls {
            self.send(&Message::SessTerm(SessTerm { flags: 0, reason }));
        }
        self.close_with(Termination {
            initiator: Initiator::Local,
            reason: Some(reason),
            detail,
        });
    }

    /// The application ends the session (§6.1). Established: SESS_TERM
    /// goes out and the session is Ending until the reply comes and the
    /// transfers in progress are done. Before that: the session ends at
    /// once (a passive one answers the contact header first).
    pub(crate) fn terminate(&mut self, now: Instant, reason: SessTermReason) {
        match self.phase {
            Phase::Closed => {}
            Phase::Established => {
                if self.ending.is_some_and(|e| e.sent) {
                    return;
                }
                self.send(&Message::SessTerm(SessTerm { flags: 0, reason }));
                self.termination.get_or_insert(Termination {
                    initiator: Initiator::Local,
                    reason: Some(reason),
                    detail: "session ended by this side".into(),
                });
                self.ending = Some(Ending {
                    sent: true,
                    received: false,
                    since: now,
                });
            }
            Phase::ContactHeader if self.role == Role::Passive => {
                self.pending_term = Some(reason);
            }
            Phase::ContactHeader | Phase::Tls | Phase::SessInit => {
                self.fail(reason, "session ended by this side".into());
            }
        }
    }

    /// Closes an Ending session once both SESS_TERMs are exchanged and the
    /// role has nothing in progress (`busy`).
    pub(crate) fn close_if_done(&mut self, busy: bool) {
        if let Some(e) = self.ending {
            if e.sent && e.received && !busy && self.phase != Phase::Closed {
                self.close();
            }
        }
    }

    /// The connection reached end of file.
    pub(crate) fn handle_eof(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        let partial = self.input.len() > self.input_pos;
        let stage = match self.phase {
            Phase::ContactHeader => " before its contact header",
            Phase::Tls => " before the TLS handshake",
            Phase::SessInit => " before its SESS_INIT",
            _ if partial => " in the middle of a message",
            _ => "",
        };
        if self.termination.is_none() {
            self.termination = Some(Termination {
                initiator: Initiator::Transport,
                reason: None,
                detail: format!("the peer closed the connection{stage}"),
            });
        }
        self.close();
    }

    /// Suspends the idle limit while the application decides on received
    /// bundles (and the driver may have stopped reading); when it resumes,
    /// it counts from the next output (the decision going out).
    pub(crate) fn suspend_idle(&mut self, suspended: bool) {
        if self.idle_suspended && !suspended {
            self.idle_restart = true;
        }
        self.idle_suspended = suspended;
    }

    fn idle_limit(&self) -> Option<Duration> {
        if self.idle_suspended || self.idle_restart {
            return None;
        }
        match self.peer.as_ref().map(|p| p.keepalive_secs) {
            Some(secs) if secs > 0 && self.phase == Phase::Established => {
                Some(Duration::from_secs(2 * u64::from(secs)))
            }
            _ => self.config.idle_timeout,
        }
    }

    /// The next instant at which [`Core::handle_timeout`] has work.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.phase == Phase::Closed {
            return None;
        }
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.phase != Phase::Established {
            consider(self.start.checked_add(self.config.handshake_timeout));
        } else {
            if let Some(limit) = self.idle_limit() {
                consider(self.last_received.checked_add(limit));
            }
            if let Some(secs) = self.peer.as_ref().map(|p| p.keepalive_secs) {
                if secs > 0 {
                    consider(
                        self.last_sent
                            .checked_add(Duration::from_secs(u64::from(secs))),
                    );
                }
            }
        }
        if let Some(e) = self.ending {
            consider(e.since.checked_add(self.config.close_timeout));
        }
        next
    }

    /// Runs the timers that are due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if self.phase != Phase::Established {
            if due(self.start.checked_add(self.config.handshake_timeout)) {
                let what = match self.phase {
                    Phase::ContactHeader => "contact header",
                    Phase::Tls => "TLS handshake",
                    _ => "SESS_INIT",
                };
                self.fail(
                    SessTermReason::ContactFailure,
                    format!(
                        "no {what} from the peer within {} ms",
                        self.config.handshake_timeout.as_millis()
                    ),
                );
            }
            return;
        }
        if let Some(e) = self.ending {
            if due(e.since.checked_add(self.config.close_timeout)) {
                if self.termination.is_none() {
                    self.termination = Some(Termination {
                        initiator: Initiator::Local,
                        reason: None,
                        detail: "session ended".into(),
                    });
                }
                if let Some(t) = self.termination.as_mut() {
                    if !e.received {
                        t.detail.push_str(&format!(
                            "; the peer did not answer SESS_TERM within {} ms",
                            self.config.close_timeout.as_millis()
                        ));
                    }
                }
                self.close();
                return;
            }
        }
        if let Some(limit) = self.idle_limit() {
            if due(self.last_received.checked_add(limit)) {
                self.fail(
                    SessTermReason::IdleTimeout,
                    format!(
                        "nothing received from the peer for {} ms",
                        limit.as_millis()
                    ),
                );
                return;
            }
        }
        if let Some(secs) = self.peer.as_ref().map(|p| p.keepalive_secs) {
            if secs > 0
                && due(self
                    .last_sent
                    .checked_add(Duration::from_secs(u64::from(secs))))
            {
                // §5.1.1: nothing sent for an interval.
                self.send(&Message::Keepalive);
                self.last_sent = now;
            }
        }
    }

    fn close_with(&mut self, termination: Termination) {
        if self.termination.is_none() {
            self.termination = Some(termination);
        }
        self.close();
    }

    fn close(&mut self) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        let termination = self.termination.take().unwrap_or(Termination {
            initiator: Initiator::Local,
            reason: None,
            detail: "session closed".into(),
        });
        self.events.push_back(Event::SessionTerminated(termination));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_must_be_uris() {
        assert!(check_node_id("ipn:1.0").is_ok());
        assert!(check_node_id("dtn://earth-gw/").is_ok());
        for bad in ["", "ipn", ":x", "1pn:1.0", "ipn:", "ipn:1 0", "ipn:\n1"] {
            assert!(check_node_id(bad).is_err(), "{bad:?}");
        }
        let e = SessionConfig::new("earth").validate().unwrap_err();
        assert!(e.to_string().contains("ipn:1.0"), "{e}");
        let mut c = SessionConfig::new("ipn:1.0");
        c.segment_mru = 0;
        assert_eq!(
            c.validate(),
            Err(ConfigError::Zero {
                setting: "segment_mru"
            })
        );
    }
}
