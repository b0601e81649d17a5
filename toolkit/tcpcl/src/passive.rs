//! The passive (listening) side of a TCPCLv4 session, as a bundle
//! receiver: answers the peer's contact header with its own contact header
//! and, in the same flight, its SESS_INIT (RFC 9174 §4.2, §4.6; it does not
//! wait for the peer's SESS_INIT), takes the peer's SESS_INIT and any
//! XFER_SEGMENTs right behind it, reassembles each transfer from its XFER_SEGMENTs (§5.2.2) up to
//! the configured Transfer MRU, acknowledges every segment as it arrives
//! (§5.2.3) except the last, and leaves the last acknowledgement or an
//! XFER_REFUSE (§5.2.4) to the application, which decides once it has the
//! whole bundle (e.g. after checking its destination and spooling it).

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::message::{
    Message, MsgRejectReason, RefuseReason, SessTermReason, XferAck, XferRefuse, XferSegment,
};
use crate::session::{ConfigError, Core, Event, PeerInfo, Role, SessionConfig};

/// How many refused transfer IDs are remembered, so that the segments
/// already on their way are dropped quietly.
const REMEMBERED_REFUSALS: usize = 32;

/// Largest buffer reserved up front from a Transfer Length extension; a
/// longer transfer grows its buffer as its data arrives.
const MAX_RESERVE: u64 = 1 << 20;

/// Bytes of received transfers (unfinished, or complete and awaiting the
/// application's decision) that all sessions sharing it may hold together.
/// A segment that would go over it refuses its transfer with
/// [`RefuseReason::NoResources`] (the sender retries later), so no number
/// of peers can make the receiver buffer more than the limit in total.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: u64,
    used: std::sync::atomic::AtomicU64,
}

impl MemoryBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: u64) -> std::sync::Arc<MemoryBudget> {
        std::sync::Arc::new(MemoryBudget {
            limit,
            used: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    fn try_charge(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    fn release(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// Why [`PassiveSession::accept`] or [`PassiveSession::refuse`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecideError {
    /// No complete transfer with that ID awaits a decision.
    #[error("no complete transfer {0} awaits a decision")]
    UnknownTransfer(u64),
    /// The session is over; the peer will not hear the answer.
    #[error("the TCPCL session is closed")]
    SessionClosed,
}

/// A transfer being received.
struct Inbound {
    id: u64,
    data: Vec<u8>,
    /// From the Transfer Length extension.
    expected: Option<u64>,
}

/// A complete transfer waiting for the application's decision.
struct Undecided {
    length: u64,
    /// Flags of its last segment, echoed in the final XFER_ACK.
    flags: u8,
}

/// The passive side of a TCPCLv4 session: receives bundles and lets the
/// application accept or refuse each.
///
/// While bundles await a decision the idle limit is suspended: the peer is
/// waiting for us, and a driver that stops reading meanwhile (to bound
/// memory) must not mistake that for the peer's silence. It restarts when
/// the decision goes out.
///
/// Driven like [`crate::ActiveSession`]. On [`Event::BundleReceived`] call
/// [`accept`](Self::accept) (the final XFER_ACK: the sender forgets the
/// bundle) or [`refuse`](Self::refuse) (XFER_REFUSE with a reason, e.g.
/// [`RefuseReason::NotAcceptable`] for a bundle not for this node,
/// [`RefuseReason::NoResources`] when it cannot be stored now).
pub struct PassiveSession {
    core: Core,
    current: Option<Inbound>,
    refused: VecDeque<u64>,
    undecided: BTreeMap<u64, Undecided>,
    /// The shared budget this session's buffers are charged to, if any.
    budget: Option<std::sync::Arc<MemoryBudget>>,
    /// What this session holds of it (the current transfer's data and the
    /// undecided bundles).
    charged: u64,
}

impl Drop for PassiveSession {
    fn drop(&mut self) {
        if let Some(budget) = &self.budget {
            budget.release(self.charged);
        }
    }
}

impl PassiveSession {
    /// A new session at `now`, for a connection just accepted.
    pub fn new(config: SessionConfig, now: Instant) -> Result<PassiveSession, ConfigError> {
        Ok(PassiveSession {
            core: Core::new(Role::Passive, config, now)?,
            current: None,
            refused: VecDeque::new(),
            undecided: BTreeMap::new(),
            budget: None,
            charged: 0,
        })
    }

    /// Charges this session's buffered transfer bytes to `budget`, shared
    /// with other sessions (see [`MemoryBudget`]).
    pub fn set_budget(&mut self, budget: std::sync::Arc<MemoryBudget>) {
        self.budget = Some(budget);
    }

    fn uncharge(&mut self, n: u64) {
        let n = n.min(self.charged);
        self.charged -= n;
        if let Some(budget) = &self.budget {
            budget.release(n);
        }
    }

    /// What the peer announced and what was negotiated, once established.
    pub fn peer(&self) -> Option<&PeerInfo> {
        self.core.peer()
    }

    /// Whether the session is established and not ending.
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

    /// Complete bundles handed out and not yet accepted or refused.
    pub fn undecided(&self) -> usize {
        self.undecided.len()
    }

    /// Accepts a received bundle: the final XFER_ACK, covering all its
    /// bytes, goes out.
    pub fn accept(&mut self, transfer_id: u64) -> Result<(), DecideError> {
        let u = self.take_undecided(transfer_id)?;
        self.uncharge(u.length);
        self.core.send(&Message::XferAck(XferAck {
            flags: u.flags,
            transfer_id,
            acknowledged_length: u.length,
        }));
        self.after_input();
        Ok(())
    }

    /// Refuses a received bundle with `reason` (XFER_REFUSE).
    pub fn refuse(&mut self, transfer_id: u64, reason: RefuseReason) -> Result<(), DecideError> {
        let u = self.take_undecided(transfer_id)?;
        self.uncharge(u.length);
        self.core.send(&Message::XferRefuse(XferRefuse {
            reason,
            transfer_id,
        }));
        self.after_input();
        Ok(())
    }

    fn take_undecided(&mut self, transfer_id: u64) -> Result<Undecided, DecideError> {
        if self.core.is_closed() {
            return Err(DecideError::SessionClosed);
        }
        self.undecided
            .remove(&transfer_id)
            .ok_or(DecideError::UnknownTransfer(transfer_id))
    }

    /// Ends the session (§6.1). Before the peer's contact header arrives
    /// (e.g. to turn a connection away as `Busy`), the contact header is
    /// answered and SESS_TERM follows at once.
    pub fn terminate(&mut self, now: Instant, reason: SessTermReason) {
        self.core.terminate(now, reason);
        self.after_input();
    }

    /// The next bytes to write. `None`: nothing to send now.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        self.core.take_output(now, &mut out);
        (!out.is_empty()).then_some(out)
    }

    /// Takes bytes read from the connection.
    pub fn handle_input(&mut self, now: Instant, bytes: &[u8]) {
        self.core.receive(now, bytes);
        while let Some(message) = self.core.next_transfer_message() {
            match message {
                Message::XferSegment(segment) => self.on_segment(segment),
                // This side sends no transfers.
                other => self
                    .core
                    .reject(MsgRejectReason::Unexpected, other.type_code()),
            }
        }
        self.after_input();
    }

    fn refuse_transfer(&mut self, transfer_id: u64, reason: RefuseReason) {
        self.core.send(&Message::XferRefuse(XferRefuse {
            reason,
            transfer_id,
        }));
        if self.refused.len() == REMEMBERED_REFUSALS {
            self.refused.pop_front();
        }
        self.refused.push_back(transfer_id);
    }

    fn on_segment(&mut self, segment: XferSegment) {
        let id = segment.transfer_id;
        if segment.is_start() {
            if let Some(current) = &self.current {
                self.core.fail(
                    SessTermReason::Unknown,
                    format!(
                        "the peer started transfer {id} before finishing transfer {} (RFC 9174 §5.2.2 forbids interleaving)",
                        current.id
                    ),
                );
                return;
            }
            if self.core.is_ending() {
                // §6.1: no new transfers in the Ending state.
                self.refuse_transfer(id, RefuseReason::SessionTerminating);
                return;
            }
            if self.undecided.contains_key(&id) {
                // §5.2.1: IDs are unique within a session.
                self.refuse_transfer(id, RefuseReason::NotAcceptable);
                return;
            }
            // §5.2.5: unknown critical transfer extensions refuse the transfer.
            if segment
                .extensions
                .iter()
                .any(|e| e.is_critical() && e.item_type != crate::TRANSFER_LENGTH_EXTENSION)
            {
                self.refuse_transfer(id, RefuseReason::ExtensionFailure);
                return;
            }
            let expected = match segment.transfer_length() {
                Ok(expected) => expected,
                Err(_) => {
                    self.refuse_transfer(id, RefuseReason::ExtensionFailure);
                    return;
                }
            };
            if expected.is_some_and(|n| n > self.core.config.transfer_mru) {
                self.refuse_transfer(id, RefuseReason::NoResources);
                return;
            }
            let reserve = expected.unwrap_or(0).min(MAX_RESERVE) as usize;
            self.current = Some(Inbound {
                id,
                data: Vec::with_capacity(reserve),
                expected,
            });
        } else if self.current.as_ref().is_none_or(|c| c.id != id) {
            if !self.refused.contains(&id) {
                self.core.reject(
                    MsgRejectReason::Unexpected,
                    Message::XferSegment(segment).type_code(),
                );
            }
            return;
        }
        let limit = self.core.config.transfer_mru;
        let Some(current) = self.current.as_mut() else {
            return;
        };
        let held = current.data.len() as u64;
        let total = held + segment.data.len() as u64;
        if total > limit {
            self.current = None;
            self.uncharge(held);
            self.refuse_transfer(id, RefuseReason::NoResources);
            return;
        }
        if current.expected.is_some_and(|n| total > n) {
            self.current = None;
            self.uncharge(held);
            self.refuse_transfer(id, RefuseReason::NotAcceptable);
            return;
        }
        let more = segment.data.len() as u64;
        if let Some(budget) = &self.budget {
            if !budget.try_charge(more) {
                // Every session's buffers together are at the limit: this
                // transfer is refused for now (the sender retries), and
                // what it held is given back.
                self.current = None;
                self.uncharge(held);
                self.refuse_transfer(id, RefuseReason::NoResources);
                return;
            }
        }
        self.charged += more;
        let Some(current) = self.current.as_mut() else {
            return;
        };
        current.data.extend_from_slice(&segment.data);
        if !segment.is_end() {
            // §5.2.3: acknowledge each segment, flags echoed.
            self.core.send(&Message::XferAck(XferAck {
                flags: segment.flags,
                transfer_id: id,
                acknowledged_length: total,
            }));
            return;
        }
        let Some(done) = self.current.take() else {
            return;
        };
        if done.expected.is_some_and(|n| n != total) {
            // Shorter than its Transfer Length extension said.
            self.uncharge(total);
            self.refuse_transfer(id, RefuseReason::NotAcceptable);
            return;
        }
        self.undecided.insert(
            id,
            Undecided {
                length: total,
                flags: segment.flags,
            },
        );
        self.core.push_event(Event::BundleReceived {
            transfer_id: id,
            bytes: done.data,
        });
    }

    fn after_input(&mut self) {
        // The peer waits for our decisions; meanwhile its silence (or our
        // not reading) is not idleness.
        self.core.suspend_idle(!self.undecided.is_empty());
        let busy = self.current.is_some() || !self.undecided.is_empty();
        self.core.close_if_done(busy);
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
