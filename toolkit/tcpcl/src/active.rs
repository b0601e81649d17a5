//! The active (connecting) side of a TCPCLv4 session, as a bundle sender:
//! contact header and SESS_INIT first (RFC 9174 §4.2, §4.6), then each
//! bundle as one transfer of XFER_SEGMENTs no larger than the peer's
//! Segment MRU (§5.2.2), finished when an XFER_ACK covers all its bytes
//! (§5.2.3) or refused by XFER_REFUSE (§5.2.4).
//!
//! Transfers are pipelined: the next one starts as soon as the previous
//! one's last segment is out, without waiting for acknowledgements.
//! Segments are cut only when [`ActiveSession::poll_transmit`] asks, so a
//! refused transfer stops at once and memory holds each bundle once.

use std::collections::VecDeque;
use std::time::Instant;

use crate::message::{
    Extension, Message, MsgRejectReason, RefuseReason, SessTermReason, XferAck, XferRefuse,
    XferSegment, SEGMENT_END, SEGMENT_START,
};
use crate::session::{ConfigError, Core, Event, PeerInfo, Role, SessionConfig};

/// Why [`ActiveSession::send_bundle`] did not take a bundle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Wait for [`Event::Established`] first.
    #[error("the TCPCL session is not established yet (wait for Event::Established)")]
    NotEstablished,
    /// The session is ending or over.
    #[error("the TCPCL session is ending; no new transfers")]
    SessionEnding,
    /// A transfer carries at least one byte.
    #[error("an empty bundle cannot be sent")]
    EmptyBundle,
    /// Larger than the peer's Transfer MRU (§4.6).
    #[error("bundle of {length} bytes exceeds the peer's transfer MRU of {limit} bytes; fragment it (RFC 9171 §5.8) below that size")]
    TooLarge {
        /// The bundle's length.
        length: u64,
        /// The peer's Transfer MRU.
        limit: u64,
    },
    /// The peer's Segment MRU is 0: it takes no data.
    #[error("the peer's segment MRU is 0: it accepts no bundle data")]
    PeerTakesNoSegments,
    /// All 2^64 transfer IDs are used (§5.2.1).
    #[error("transfer IDs exhausted in this session")]
    TransferIdsExhausted,
}

/// One bundle on its way.
struct Outbound {
    id: u64,
    data: Vec<u8>,
    /// Bytes put into segments so far.
    sent: usize,
    /// Bytes the peer acknowledged.
    acked: u64,
}

/// The active side of a TCPCLv4 session: connects, negotiates, sends
/// bundles, reports their fate.
///
/// Drive it like this: write what [`poll_transmit`](Self::poll_transmit)
/// returns, feed what you read to [`handle_input`](Self::handle_input) (and
/// end of file to [`handle_eof`](Self::handle_eof)), call
/// [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout), and act on
/// [`poll_event`](Self::poll_event). Close the connection when
/// [`is_closed`](Self::is_closed) and the output is written.
pub struct ActiveSession {
    core: Core,
    next_id: u64,
    /// In order: transfers fully segmented and awaiting acknowledgement
    /// come first, then the one being segmented, then those not started.
    outbound: VecDeque<Outbound>,
}

impl ActiveSession {
    /// A new session at `now`; its contact header is ready to send.
    pub fn new(config: SessionConfig, now: Instant) -> Result<ActiveSession, ConfigError> {
        Ok(ActiveSession {
            core: Core::new(Role::Active, config, now)?,
            next_id: 0,
            outbound: VecDeque::new(),
        })
    }

    /// What the peer announced and what was negotiated, once established.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.core.peer()
    }

    /// Whether transfers may start.
    pub fn is_established(&self) -> bool {
        self.core.is_established() && !self.core.is_ending()
    }

    /// Whether the session is over (close the connection once the output
    /// is written).
    pub fn is_closed(&self) -> bool {
        self.core.is_closed()
    }

    /// The TLS handshake that [`Event::StartTls`](crate::Event::StartTls)
    /// asked for is done: from now on the output and the input are the
    /// TLS stream's plaintext. SESS_INIT is queued at once, and the
    /// handshake timer starts again at `now` for the SESS_INIT exchange.
    pub fn tls_established(&mut self, now: Instant) {
        self.core.tls_established(now);
    }

    /// Whether the session waits for the TLS handshake: bytes read after
    /// the peer's contact header belong to TLS, not to the session.
    pub fn awaiting_tls(&self) -> bool {
        self.core.awaiting_tls()
    }

    /// The TLS handshake failed (`detail` says how): the session ends
    /// with `ContactFailure`, without a SESS_TERM.
    pub fn tls_failed(&mut self, detail: String) {
        self.core.tls_failed(detail);
    }

    /// The segment size used: our `max_segment_len`, capped by the peer's
    /// Segment MRU.
    fn segment_len(&self) -> u64 {
        let peer = self.core.peer().map_or(0, |p| p.segment_mru);
        self.core.config.max_segment_len.min(peer)
    }

    /// Queues `bundle` as a new transfer and returns its transfer ID
    /// (0, 1, 2, ... as §5.2.1 suggests).
    pub fn send_bundle(&mut self, bundle: Vec<u8>) -> Result<u64, SendError> {
        if self.core.is_closed() || self.core.is_ending() {
            return Err(SendError::SessionEnding);
        }
        let Some(peer) = self.core.peer().filter(|_| self.core.is_established()) else {
            return Err(SendError::NotEstablished);
        };
        if bundle.is_empty() {
            return Err(SendError::EmptyBundle);
        }
        let length = bundle.len() as u64;
        if length > peer.transfer_mru {
            return Err(SendError::TooLarge {
                length,
                limit: peer.transfer_mru,
            });
        }
        if self.segment_len() == 0 {
            return Err(SendError::PeerTakesNoSegments);
        }
        let id = self.next_id;
        self.next_id = id.checked_add(1).ok_or(SendError::TransferIdsExhausted)?;
        self.outbound.push_back(Outbound {
            id,
            data: bundle,
            sent: 0,
            acked: 0,
        });
        self.core.suspend_idle(true);
        Ok(id)
    }

    /// Ends the session (§6.1): SESS_TERM now, closed once the peer replied
    /// and the transfers already started are acknowledged or refused.
    /// Transfers not started yet are reported refused with
    /// `SessionTerminating`.
    pub fn terminate(&mut self, now: Instant, reason: SessTermReason) {
        self.core.terminate(now, reason);
        self.after_input();
    }

    /// Transfers sent or queued and not yet acknowledged or refused.
    pub fn transfers_in_flight(&self) -> usize {
        self.outbound.len()
    }

    /// The next bytes to write: queued control messages and at most one
    /// XFER_SEGMENT. `None`: nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.core.take_output(now, &mut out);
        if self.core.is_established() && !self.core.is_closed() {
            let segment_len = usize::try_from(self.segment_len()).unwrap_or(usize::MAX);
            let with_length = self.core.config.transfer_length_extension;
            if let Some(t) = self.outbound.iter_mut().find(|t| t.sent < t.data.len()) {
                let n = (t.data.len() - t.sent).min(segment_len);
                let mut flags = 0;
                let mut extensions = Vec::new();
                if t.sent == 0 {
                    flags |= SEGMENT_START;
                    if with_length {
                        extensions.push(Extension::transfer_length(t.data.len() as u64));
                    }
                }
                if t.sent + n == t.data.len() {
                    flags |= SEGMENT_END;
                }
                let segment = Message::XferSegment(XferSegment {
                    flags,
                    transfer_id: t.id,
                    extensions,
                    data: t.data[t.sent..t.sent + n].to_vec(),
                });
                t.sent += n;
                self.core.send(&segment);
                self.core.take_output(now, &mut out);
                self.core.note_sent(now);
            }
        }
        (!out.is_empty()).then_some(out)
    }

    /// Takes bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.core.receive(now, bytes);
        while let Some(message) = self.core.next_transfer_message() {
            match message {
                Message::XferAck(ack) => self.on_ack(ack),
                Message::XferRefuse(refuse) => self.on_refuse(refuse),
                Message::XferSegment(segment) => {
                    // This side only sends. Refuse incoming transfers at
                    // their start; their other segments are dropped.
                    if segment.is_start() {
                        self.core.send(&Message::XferRefuse(XferRefuse {
                            reason: RefuseReason::Unknown,
                            transfer_id: segment.transfer_id,
                        }));
                    }
                }
                other => self
                    .core
                    .reject(MsgRejectReason::Unexpected, other.type_code()),
            }
        }
        self.after_input();
    }

    fn on_ack(&mut self, ack: XferAck) {
        let Some(i) = self.outbound.iter().position(|t| t.id == ack.transfer_id) else {
            // A late acknowledgement of a refused transfer: nothing to do.
            return;
        };
        let t = &mut self.outbound[i];
        if ack.acknowledged_length > t.sent as u64 {
            // More than was sent: not believed.
            self.core.reject(
                MsgRejectReason::Unsupported,
                Message::XferAck(ack).type_code(),
            );
            return;
        }
        t.acked = t.acked.max(ack.acknowledged_length);
        if t.acked == t.data.len() as u64 {
            self.outbound.remove(i);
            self.core.push_event(Event::TransferAcked(ack.transfer_id));
        }
    }

    fn on_refuse(&mut self, refuse: XferRefuse) {
        if let Some(i) = self
            .outbound
            .iter()
            .position(|t| t.id == refuse.transfer_id)
        {
            self.outbound.remove(i);
            self.core
                .push_event(Event::TransferRefused(refuse.transfer_id, refuse.reason));
        }
    }

    /// Drops transfers that may no longer start, closes an Ending session
    /// that has nothing left in progress, and suspends the idle limit
    /// while transfers await their acknowledgement: the peer's silence
    /// then is the link's round trip (minutes at Mars), not idleness, and
    /// the sender's own deadline bounds the wait.
    fn after_input(&mut self) {
        // Once closed, SessionTerminated (the last event) covers them all.
        if self.core.is_ending() && !self.core.is_closed() {
            let mut kept = VecDeque::with_capacity(self.outbound.len());
            for t in self.outbound.drain(..) {
                if t.sent == 0 {
                    self.core.push_event(Event::TransferRefused(
                        t.id,
                        RefuseReason::SessionTerminating,
                    ));
                } else {
                    kept.push_back(t);
                }
            }
            self.outbound = kept;
        }
        self.core.suspend_idle(!self.outbound.is_empty());
        self.core.close_if_done(!self.outbound.is_empty());
    }

    /// The connection was closed by the peer (read returned 0).
    pub fn handle_eof(&mut self, _now: Instant) {
        self.core.handle_eof();
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// Runs due timers: handshake and idle limits, keepalives, the wait for
    /// the peer's SESS_TERM reply.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.core.handle_timeout(now);
        self.after_input();
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }
}
