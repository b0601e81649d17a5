//! Whole sessions in memory: an [`ActiveSession`] and a [`PassiveSession`]
//! wired back to back, chunked streams, hostile peers.

use std::time::{Duration, Instant};

use proptest::prelude::*;

use crate::message::{
    decode_message, ContactHeader, DecodeLimits, Extension, Message, SessInit, SessTerm, XferAck,
    XferSegment, CONTACT_HEADER_LEN, EXTENSION_CRITICAL, SEGMENT_END, SEGMENT_START,
};
use crate::{
    ActiveSession, Event, Initiator, PassiveSession, RefuseReason, SendError, SessTermReason,
    SessionConfig,
};

fn config(node: &str) -> SessionConfig {
    SessionConfig::new(node)
}

/// An active and a passive session connected in memory, with the
/// applications' logic: the active side sends `bundles` once established
/// and ends the session when every transfer is settled; the passive side
/// decides each bundle with `policy`.
struct Loopback {
    active: ActiveSession,
    passive: PassiveSession,
    bundles: Vec<Vec<u8>>,
    policy: fn(&[u8]) -> Option<RefuseReason>,
    sent_ids: Vec<u64>,
    settled: usize,
    active_events: Vec<Event>,
    passive_events: Vec<Event>,
    /// Everything the active side wrote, and the passive side.
    active_wire: Vec<u8>,
    passive_wire: Vec<u8>,
    /// Offsets in `passive_wire` where a chunk handed to the active side
    /// ended: the active side had sent everything those bytes answer.
    passive_boundaries: Vec<usize>,
}

impl Loopback {
    fn new(a: SessionConfig, p: SessionConfig, bundles: Vec<Vec<u8>>, now: Instant) -> Loopback {
        Loopback {
            active: ActiveSession::new(a, now).unwrap(),
            passive: PassiveSession::new(p, now).unwrap(),
            bundles,
            policy: |_| None,
            sent_ids: Vec::new(),
            settled: 0,
            active_events: Vec::new(),
            passive_events: Vec::new(),
            active_wire: Vec::new(),
            passive_wire: Vec::new(),
            passive_boundaries: Vec::new(),
        }
    }

    /// Moves bytes and handles events until nothing happens any more.
    fn run(&mut self, now: Instant) {
        for _ in 0..100_000 {
            let mut moved = false;
            while let Some(bytes) = self.active.poll_transmit(now) {
                self.active_wire.extend_from_slice(&bytes);
                self.passive.handle_input(now, &bytes);
                moved = true;
            }
            while let Some(bytes) = self.passive.poll_transmit(now) {
                self.passive_wire.extend_from_slice(&bytes);
                self.passive_boundaries.push(self.passive_wire.len());
                self.active.handle_input(now, &bytes);
                moved = true;
            }
            while let Some(event) = self.passive.poll_event() {
                moved = true;
                if event == Event::StartTls {
                    // TLS as the identity: what the state machines do
                    // around the driver's handshake.
                    self.passive.tls_established(now);
                }
                if let Event::BundleReceived { transfer_id, bytes } = &event {
                    match (self.policy)(bytes) {
                        None => self.passive.accept(*transfer_id).unwrap(),
                        Some(reason) => self.passive.refuse(*transfer_id, reason).unwrap(),
                    }
                }
                self.passive_events.push(event);
            }
            while let Some(event) = self.active.poll_event() {
                moved = true;
                match &event {
                    Event::StartTls => self.active.tls_established(now),
                    Event::Established(_) => {
                        for b in std::mem::take(&mut self.bundles) {
                            self.sent_ids.push(self.active.send_bundle(b).unwrap());
                        }
                        if self.sent_ids.is_empty() {
                            self.active.terminate(now, SessTermReason::Unknown);
                        }
                    }
                    Event::TransferAcked(_) | Event::TransferRefused(..) => {
                        self.settled += 1;
                        if self.settled == self.sent_ids.len() {
                            self.active.terminate(now, SessTermReason::Unknown);
                        }
                    }
                    _ => {}
                }
                self.active_events.push(event);
            }
            if !moved {
                return;
            }
        }
        panic!("the sessions never went quiet");
    }
}

fn messages(wire: &[u8]) -> Vec<Message> {
    let limits = DecodeLimits {
        max_segment_data: u64::MAX,
        ..DecodeLimits::default()
    };
    let mut pos = CONTACT_HEADER_LEN;
    let mut out = Vec::new();
    while let Some((m, used)) = decode_message(&wire[pos..], &limits).unwrap() {
        out.push(m);
        pos += used;
    }
    assert_eq!(pos, wire.len(), "the wire ends on a message boundary");
    out
}

fn bundle(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn three_bundles_are_delivered_acknowledged_and_the_session_ends_cleanly() {
    let now = Instant::now();
    let mut a = config("ipn:1.0");
    a.max_segment_len = 1000;
    a.keepalive_secs = 60;
    let mut p = config("ipn:2.0");
    p.keepalive_secs = 15;
    let bundles = vec![bundle(2500, 1), bundle(10, 2), bundle(1000, 3)];
    let mut l = Loopback::new(a, p, bundles.clone(), now);
    l.run(now);

    let Event::Established(peer) = &l.active_events[0] else {
        panic!("{:?}", l.active_events)
    };
    assert_eq!(peer.node_id, "ipn:2.0");
    assert_eq!(peer.keepalive_secs, 15, "the smaller interval wins");
    assert!(!peer.can_tls);
    let Event::Established(peer) = &l.passive_events[0] else {
        panic!()
    };
    assert_eq!(peer.node_id, "ipn:1.0");
    assert_eq!(peer.keepalive_secs, 15);

    assert_eq!(l.sent_ids, [0, 1, 2], "transfer IDs start at 0 (§5.2.1)");
    let received: Vec<(u64, Vec<u8>)> = l
        .passive_events
        .iter()
        .filter_map(|e| match e {
            Event::BundleReceived { transfer_id, bytes } => Some((*transfer_id, bytes.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        received,
        vec![
            (0, bundles[0].clone()),
            (1, bundles[1].clone()),
            (2, bundles[2].clone())
        ]
    );
    let acked: Vec<&Event> = l
        .active_events
        .iter()
        .filter(|e| matches!(e, Event::TransferAcked(_)))
        .collect();
    assert_eq!(
        acked,
        [
            &Event::TransferAcked(0),
            &Event::TransferAcked(1),
            &Event::TransferAcked(2)
        ]
    );

    // On the wire: contact headers, then SESS_INIT from each side.
    assert_eq!(
        l.active_wire[..CONTACT_HEADER_LEN],
        ContactHeader::OURS.encode()
    );
    assert_eq!(
        l.passive_wire[..CONTACT_HEADER_LEN],
        ContactHeader::OURS.encode()
    );
    let sent = messages(&l.active_wire);
    let Message::SessInit(init) = &sent[0] else {
        panic!("{sent:?}")
    };
    assert_eq!(
        (init.node_id.as_str(), init.keepalive_secs),
        ("ipn:1.0", 60)
    );
    // Segments of at most 1000 bytes: 3 + 1 + 1, START/END where they belong,
    // the Transfer Length extension on each START.
    let segments: Vec<&XferSegment> = sent
        .iter()
        .filter_map(|m| match m {
            Message::XferSegment(s) => Some(s),
            _ => None,
        })
        .collect();
    let shape: Vec<(u64, u8, usize)> = segments
        .iter()
        .map(|s| (s.transfer_id, s.flags, s.data.len()))
        .collect();
    assert_eq!(
        shape,
        [
            (0, SEGMENT_START, 1000),
            (0, 0, 1000),
            (0, SEGMENT_END, 500),
            (1, SEGMENT_START | SEGMENT_END, 10),
            (2, SEGMENT_START | SEGMENT_END, 1000),
        ]
    );
    assert_eq!(segments[0].transfer_length().unwrap(), Some(2500));
    assert_eq!(segments[1].transfer_length().unwrap(), None);
    // A SESS_TERM ends it; the passive side answers with REPLY.
    assert!(matches!(
        sent.last(),
        Some(Message::SessTerm(SessTerm {
            flags: 0,
            reason: SessTermReason::Unknown
        }))
    ));

    // The passive side acknowledged every segment, the last only when
    // accepted, flags echoed, lengths cumulative.
    let answers = messages(&l.passive_wire);
    let Message::SessInit(init) = &answers[0] else {
        panic!()
    };
    assert_eq!(init.node_id, "ipn:2.0");
    let acks: Vec<(u64, u8, u64)> = answers
        .iter()
        .filter_map(|m| match m {
            Message::XferAck(a) => Some((a.transfer_id, a.flags, a.acknowledged_length)),
            _ => None,
        })
        .collect();
    assert_eq!(
        acks,
        [
            (0, SEGMENT_START, 1000),
            (0, 0, 2000),
            (0, SEGMENT_END, 2500),
            (1, SEGMENT_START | SEGMENT_END, 10),
            (2, SEGMENT_START | SEGMENT_END, 1000),
        ]
    );
    assert!(matches!(
        answers.last(),
        Some(Message::SessTerm(t)) if t.is_reply()
    ));

    assert!(l.active.is_closed() && l.passive.is_closed());
    let Some(Event::SessionTerminated(t)) = l.active_events.last() else {
        panic!()
    };
    assert_eq!(t.initiator, Initiator::Local);
    let Some(Event::SessionTerminated(t)) = l.passive_events.last() else {
        panic!()
    };
    assert_eq!(t.initiator, Initiator::Peer);
    assert_eq!(t.reason, Some(SessTermReason::Unknown));
}

/// Runs the sessions in "flights": each side writes everything it has,
/// and the other reads it in one piece before answering, as over a link
/// where every one-way trip takes a light time. Returns the flights, the
/// active side's first (its contact header) at index 0.
fn flights(bundle: Vec<u8>, count: usize, now: Instant) -> (Vec<Vec<u8>>, Vec<Event>) {
    let mut active = ActiveSession::new(config("ipn:1.0"), now).unwrap();
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    let mut bundle = Some(bundle);
    let mut passive_events = Vec::new();
    let mut flights = Vec::new();
    for i in 0..count {
        let mut flight = Vec::new();
        if i % 2 == 0 {
            while let Some(event) = active.poll_event() {
                if let Event::Established(_) = event {
                    active.send_bundle(bundle.take().unwrap()).unwrap();
                }
            }
            while let Some(bytes) = active.poll_transmit(now) {
                flight.extend_from_slice(&bytes);
            }
            passive.handle_input(now, &flight);
        } else {
            while let Some(event) = passive.poll_event() {
                if let Event::BundleReceived { transfer_id, .. } = &event {
                    passive.accept(*transfer_id).unwrap();
                }
                passive_events.push(event);
            }
            while let Some(bytes) = passive.poll_transmit(now) {
                flight.extend_from_slice(&bytes);
            }
            active.handle_input(now, &flight);
        }
        flights.push(flight);
    }
    passive_events.extend(std::iter::from_fn(|| passive.poll_event()));
    (flights, passive_events)
}

/// The messages of a flight after its first `skip` bytes.
fn flight_messages(flight: &[u8], skip: usize) -> Vec<Message> {
    messages(&[&[0u8; CONTACT_HEADER_LEN][..], &flight[skip..]].concat())
}

#[test]
fn the_first_segment_leaves_in_the_third_flight() {
    // RFC 9174 §4.2/§4.6/§4.7 allow: active contact header; passive contact
    // header + SESS_INIT; active SESS_INIT + XFER_SEGMENT. The bundle thus
    // reaches the passive side after three one-way trips, not five (as
    // when the passive side waited for the active SESS_INIT before sending
    // its own, and the active side only sent SESS_INIT after the contact
    // headers).
    let now = Instant::now();
    let (flights, passive_events) = flights(b"a bundle".to_vec(), 4, now);

    // Flight 0: the active contact header, nothing else.
    assert_eq!(flights[0], ContactHeader::OURS.encode());

    // Flight 1: the passive contact header and its SESS_INIT together.
    assert_eq!(
        flights[1][..CONTACT_HEADER_LEN],
        ContactHeader::OURS.encode()
    );
    let ms = flight_messages(&flights[1], CONTACT_HEADER_LEN);
    assert!(
        matches!(&ms[..], [Message::SessInit(i)] if i.node_id == "ipn:2.0"),
        "{ms:?}"
    );

    // Flight 2: the active SESS_INIT and, in the same flight, the whole
    // bundle.
    let ms = flight_messages(&flights[2], 0);
    assert!(
        matches!(
            &ms[..],
            [Message::SessInit(i), Message::XferSegment(s)]
                if i.node_id == "ipn:1.0" && s.is_start() && s.is_end() && s.data == b"a bundle"
        ),
        "{ms:?}"
    );

    // The passive side took SESS_INIT and the segment from one read: it is
    // established and has the bundle before its third flight, which is the
    // final XFER_ACK only (no second SESS_INIT).
    assert!(
        matches!(
            &passive_events[..],
            [Event::Established(p), Event::BundleReceived { transfer_id: 0, bytes }]
                if p.node_id == "ipn:1.0" && bytes == b"a bundle"
        ),
        "{passive_events:?}"
    );
    let ms = flight_messages(&flights[3], 0);
    assert!(
        matches!(&ms[..], [Message::XferAck(a)] if a.transfer_id == 0 && a.acknowledged_length == 8),
        "{ms:?}"
    );
}

#[test]
fn a_passive_peer_that_waits_for_our_sess_init_still_gets_it() {
    // An RFC-conformant passive peer may send only its contact header and
    // wait for our SESS_INIT before sending its own: the active side must
    // not wait for the peer's SESS_INIT first.
    let now = Instant::now();
    let mut active = ActiveSession::new(config("ipn:1.0"), now).unwrap();
    let _ = active.poll_transmit(now);
    active.handle_input(now, &ContactHeader::OURS.encode());
    let out = active.poll_transmit(now).unwrap();
    let ms = flight_messages(&out, 0);
    assert!(matches!(&ms[..], [Message::SessInit(_)]), "{ms:?}");
    assert!(!active.is_established());
    active.handle_input(
        now,
        &handshake_from_passive("ipn:2.0", 0)[CONTACT_HEADER_LEN..],
    );
    assert!(active.is_established());
    assert_eq!(active.poll_transmit(now), None, "no second SESS_INIT");
}

#[test]
fn segments_never_exceed_the_peers_segment_mru() {
    let now = Instant::now();
    let a = config("ipn:1.0"); // 64 KiB segments by default
    let mut p = config("ipn:2.0");
    p.segment_mru = 777;
    let mut l = Loopback::new(a, p, vec![bundle(5000, 9)], now);
    l.run(now);
    assert!(l.active_events.contains(&Event::TransferAcked(0)));
    let lens: Vec<usize> = messages(&l.active_wire)
        .iter()
        .filter_map(|m| match m {
            Message::XferSegment(s) => Some(s.data.len()),
            _ => None,
        })
        .collect();
    assert_eq!(lens, [777, 777, 777, 777, 777, 777, 338]);
}

#[test]
fn a_refused_bundle_is_reported_with_its_reason() {
    let now = Instant::now();
    let mut l = Loopback::new(
        config("ipn:1.0"),
        config("ipn:2.0"),
        vec![
            b"for us".to_vec(),
            b"not for us".to_vec(),
            b"also for us".to_vec(),
        ],
        now,
    );
    l.policy = |b| (b == b"not for us").then_some(RefuseReason::NotAcceptable);
    l.run(now);
    let outcomes: Vec<&Event> = l
        .active_events
        .iter()
        .filter(|e| matches!(e, Event::TransferAcked(_) | Event::TransferRefused(..)))
        .collect();
    assert_eq!(
        outcomes,
        [
            &Event::TransferAcked(0),
            &Event::TransferRefused(1, RefuseReason::NotAcceptable),
            &Event::TransferAcked(2),
        ]
    );
    assert!(l.active.is_closed() && l.passive.is_closed());
}

#[test]
fn too_large_transfers_are_refused_with_no_resources() {
    let now = Instant::now();
    // With the Transfer Length extension: refused at the first segment.
    let mut a = config("ipn:1.0");
    a.max_segment_len = 100;
    let mut p = config("ipn:2.0");
    p.transfer_mru = 1000;
    let mut l = Loopback::new(a.clone(), p.clone(), vec![], now);
    l.run(now);
    let mut l = Loopback::new(a.clone(), p.clone(), vec![bundle(900, 1)], now);
    l.run(now);
    assert!(l.active_events.contains(&Event::TransferAcked(0)));
    // The active side checks the peer's transfer MRU itself.
    let mut l = Loopback::new(a.clone(), p.clone(), vec![], now);
    l.bundles = vec![];
    let mut active = ActiveSession::new(a.clone(), now).unwrap();
    let mut passive = PassiveSession::new(p.clone(), now).unwrap();
    for _ in 0..4 {
        while let Some(b) = active.poll_transmit(now) {
            passive.handle_input(now, &b);
        }
        while let Some(b) = passive.poll_transmit(now) {
            active.handle_input(now, &b);
        }
    }
    assert_eq!(
        active.send_bundle(bundle(1001, 0)),
        Err(SendError::TooLarge {
            length: 1001,
            limit: 1000
        })
    );
    assert_eq!(active.send_bundle(vec![]), Err(SendError::EmptyBundle));
    drop(l);

    // A sender that ignores the MRU and sends no length: refused when the
    // data passes the limit, the rest of its segments dropped quietly.
    let mut passive = PassiveSession::new(p, now).unwrap();
    let mut input = handshake_from_active("ipn:9.0");
    for (i, flags) in [SEGMENT_START, 0, 0, SEGMENT_END].into_iter().enumerate() {
        let _ = i;
        Message::XferSegment(XferSegment {
            flags,
            transfer_id: 5,
            extensions: vec![],
            data: vec![7; 400],
        })
        .encode(&mut input)
        .unwrap();
    }
    passive.handle_input(now, &input);
    let answers = drain_messages(&mut passive, now);
    let refusals: Vec<&Message> = answers
        .iter()
        .filter(|m| matches!(m, Message::XferRefuse(_)))
        .collect();
    assert_eq!(refusals.len(), 1, "{answers:?}");
    assert!(matches!(
        refusals[0],
        Message::XferRefuse(r) if r.reason == RefuseReason::NoResources && r.transfer_id == 5
    ));
    assert!(
        !answers.iter().any(|m| matches!(m, Message::MsgReject(_))),
        "segments after the refusal are dropped without complaint: {answers:?}"
    );
    assert!(!std::iter::from_fn(|| passive.poll_event())
        .any(|e| matches!(e, Event::BundleReceived { .. })));
}

/// What an active peer sends to open a session.
fn handshake_from_active(node_id: &str) -> Vec<u8> {
    let mut input = ContactHeader::OURS.encode().to_vec();
    Message::SessInit(SessInit {
        keepalive_secs: 0,
        segment_mru: 1 << 20,
        transfer_mru: 1 << 20,
        node_id: node_id.into(),
        extensions: vec![],
    })
    .encode(&mut input)
    .unwrap();
    input
}

/// What a passive peer answers.
fn handshake_from_passive(node_id: &str, keepalive_secs: u16) -> Vec<u8> {
    let mut input = ContactHeader::OURS.encode().to_vec();
    Message::SessInit(SessInit {
        keepalive_secs,
        segment_mru: 1 << 20,
        transfer_mru: 1 << 20,
        node_id: node_id.into(),
        extensions: vec![],
    })
    .encode(&mut input)
    .unwrap();
    input
}

/// Everything `passive` wants to send, decoded (after its contact header).
fn drain_messages(passive: &mut PassiveSession, now: Instant) -> Vec<Message> {
    let mut wire = Vec::new();
    while let Some(b) = passive.poll_transmit(now) {
        wire.extend_from_slice(&b);
    }
    messages(&wire)
}

#[test]
fn transfer_length_over_the_mru_is_refused_before_any_data() {
    let now = Instant::now();
    let mut p = config("ipn:2.0");
    p.transfer_mru = 1000;
    let mut passive = PassiveSession::new(p, now).unwrap();
    let mut input = handshake_from_active("ipn:1.0");
    Message::XferSegment(XferSegment {
        flags: SEGMENT_START,
        transfer_id: 0,
        extensions: vec![Extension::transfer_length(1 << 40)],
        data: vec![1; 10],
    })
    .encode(&mut input)
    .unwrap();
    passive.handle_input(now, &input);
    let answers = drain_messages(&mut passive, now);
    assert!(
        matches!(
            answers.last(),
            Some(Message::XferRefuse(r)) if r.reason == RefuseReason::NoResources
        ),
        "{answers:?}"
    );
}

/// Sixteen peers each sending unfinished transfers used to make the
/// listener buffer 16 x 64 MiB. With a shared budget, the sessions together
/// hold at most its limit: the segment that would go over it refuses its
/// transfer with NoResources (temporary: the sender retries), what that
/// transfer held is given back, and a session's share returns when it ends.
#[test]
fn sessions_sharing_a_memory_budget_never_buffer_past_it() {
    let now = Instant::now();
    let budget = crate::MemoryBudget::new(10_000);
    let segment = |id: u64, flags: u8, len: usize| {
        let mut out = Vec::new();
        Message::XferSegment(XferSegment {
            flags,
            transfer_id: id,
            extensions: vec![],
            data: vec![7; len],
        })
        .encode(&mut out)
        .unwrap();
        out
    };
    let mut sessions = Vec::new();
    for n in 0..4 {
        let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
        passive.set_budget(budget.clone());
        let mut input = handshake_from_active(&format!("ipn:1{n}.0"));
        // Each starts a transfer of 3,000 bytes and never ends it.
        input.extend(segment(0, SEGMENT_START, 3_000));
        passive.handle_input(now, &input);
        let answers = drain_messages(&mut passive, now);
        let refused = answers
            .iter()
            .any(|m| matches!(m, Message::XferRefuse(r) if r.reason == RefuseReason::NoResources));
        // Three fit in 10,000 bytes; the fourth is refused.
        assert_eq!(refused, n == 3, "session {n}: {answers:?}");
        assert!(budget.used() <= budget.limit());
        sessions.push(passive);
    }
    assert_eq!(budget.used(), 9_000);
    // A further segment of a held transfer that would go over: refused,
    // and its earlier 3,000 bytes come back. (The contact header went out
    // with the first drain: decode from the start.)
    sessions[0].handle_input(now, &segment(0, 0, 2_000));
    let mut wire = Vec::new();
    while let Some(b) = sessions[0].poll_transmit(now) {
        wire.extend_from_slice(&b);
    }
    let limits = DecodeLimits::default();
    let (last, _) = decode_message(&wire, &limits).unwrap().unwrap();
    assert!(
        matches!(&last, Message::XferRefuse(r) if r.reason == RefuseReason::NoResources),
        "{last:?}"
    );
    assert_eq!(budget.used(), 6_000);
    // A complete bundle stays charged until it is decided.
    sessions[3].handle_input(now, &segment(1, SEGMENT_START | SEGMENT_END, 4_000));
    assert_eq!(budget.used(), 10_000);
    sessions[3].accept(1).unwrap();
    assert_eq!(budget.used(), 6_000);
    // Sessions that end give their share back.
    sessions.clear();
    assert_eq!(budget.used(), 0);
}

#[test]
fn unknown_critical_transfer_extension_is_an_extension_failure() {
    let now = Instant::now();
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    let mut input = handshake_from_active("ipn:1.0");
    Message::XferSegment(XferSegment {
        flags: SEGMENT_START | SEGMENT_END,
        transfer_id: 0,
        extensions: vec![Extension {
            flags: EXTENSION_CRITICAL,
            item_type: 0x7777,
            value: vec![],
        }],
        data: vec![1; 10],
    })
    .encode(&mut input)
    .unwrap();
    passive.handle_input(now, &input);
    assert!(matches!(
        drain_messages(&mut passive, now).last(),
        Some(Message::XferRefuse(r)) if r.reason == RefuseReason::ExtensionFailure
    ));
}

/// An active session at `t0` that sent its contact header and SESS_INIT
/// and got the passive's answer offering `keepalive_secs`.
fn active_established(t0: Instant, keepalive_secs: u16) -> ActiveSession {
    let mut active = ActiveSession::new(config("ipn:1.0"), t0).unwrap();
    while active.poll_transmit(t0).is_some() {}
    active.handle_input(t0, &handshake_from_passive("ipn:2.0", keepalive_secs));
    active
}

#[test]
fn keepalives_are_sent_when_due_and_silence_ends_the_session() {
    let t0 = Instant::now();
    let mut active = active_established(t0, 10);
    while active.poll_transmit(t0).is_some() {}
    assert!(matches!(active.poll_event(), Some(Event::Established(p)) if p.keepalive_secs == 10));
    // Nothing sent for 10 s: a KEEPALIVE.
    let due = active.poll_timeout().unwrap();
    assert_eq!(due, t0 + Duration::from_secs(10));
    active.handle_timeout(due);
    assert_eq!(active.poll_transmit(due), Some(vec![0x04]));
    assert_eq!(active.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    // The peer answered nothing at all: after twice the interval, idle.
    active.handle_timeout(t0 + Duration::from_secs(20));
    let out = active.poll_transmit(t0 + Duration::from_secs(20)).unwrap();
    assert_eq!(out, [0x05, 0x00, 0x01], "SESS_TERM idle timeout");
    assert!(active.is_closed());
    assert!(matches!(
        active.poll_event(),
        Some(Event::SessionTerminated(t)) if t.reason == Some(SessTermReason::IdleTimeout)
    ));
    assert_eq!(active.poll_timeout(), None);

    // Keepalive 0 on either side disables them.
    let mut active = active_established(t0, 0);
    while active.poll_transmit(t0).is_some() {}
    assert_eq!(active.poll_timeout(), None);
}

#[test]
fn a_round_trip_longer_than_the_idle_limit_does_not_end_a_transfer() {
    // Keepalive 1 s (idle limit 2 s) on a link whose round trip is 8 s:
    // the bundle's acknowledgement is silence for 8 s, not idleness.
    let t0 = Instant::now();
    let mut active = active_established(t0, 1);
    assert!(matches!(active.poll_event(), Some(Event::Established(_))));
    let id = active.send_bundle(bundle(100, 1)).unwrap();
    while active.poll_transmit(t0).is_some() {}
    let mut now = t0;
    for _ in 0..8 {
        now += Duration::from_secs(1);
        active.handle_timeout(now);
        while let Some(out) = active.poll_transmit(now) {
            assert_eq!(out, [0x04], "only keepalives while waiting");
        }
        assert!(active.is_established(), "still open at {:?}", now - t0);
    }
    let mut ack = Vec::new();
    Message::XferAck(XferAck {
        flags: SEGMENT_START | SEGMENT_END,
        transfer_id: id,
        acknowledged_length: 100,
    })
    .encode(&mut ack)
    .unwrap();
    active.handle_input(now, &ack);
    assert!(matches!(active.poll_event(), Some(Event::TransferAcked(i)) if i == id));
    // Nothing in flight any more: silence is idleness again, counted
    // from our next output.
    let later = now + Duration::from_secs(1);
    active.handle_timeout(later);
    while active.poll_transmit(later).is_some() {}
    active.handle_timeout(later + Duration::from_secs(3));
    assert!(
        active.is_closed() || !active.is_established(),
        "idle after the transfer"
    );
}

#[test]
fn the_handshake_has_a_deadline() {
    let t0 = Instant::now();
    let mut c = config("ipn:2.0");
    c.handshake_timeout = Duration::from_secs(5);
    let mut passive = PassiveSession::new(c, t0).unwrap();
    passive.handle_input(t0, b"dtn");
    assert_eq!(passive.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    passive.handle_timeout(t0 + Duration::from_secs(5));
    assert!(passive.is_closed());
    assert_eq!(
        passive.poll_transmit(t0),
        None,
        "nothing to say before our contact header"
    );
    assert!(matches!(
        passive.poll_event(),
        Some(Event::SessionTerminated(t)) if t.detail.contains("no contact header")
    ));
}

#[test]
fn a_peer_that_is_not_tcpcl_is_dropped_without_a_word() {
    let now = Instant::now();
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    passive.handle_input(now, b"GET / HTTP/1.1\r\n");
    assert!(passive.is_closed());
    assert_eq!(passive.poll_transmit(now), None);
    let Some(Event::SessionTerminated(t)) = passive.poll_event() else {
        panic!()
    };
    assert_eq!((t.initiator, t.reason), (Initiator::Local, None));
    assert!(t.detail.contains("magic"), "{t}");
}

#[test]
fn another_version_gets_version_mismatch() {
    let now = Instant::now();
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    passive.handle_input(now, b"dtn!\x03\x00");
    let out = passive.poll_transmit(now).unwrap();
    assert_eq!(out, b"dtn!\x04\x00\x05\x00\x02");
    assert!(passive.is_closed());

    let mut active = ActiveSession::new(config("ipn:1.0"), now).unwrap();
    let _ = active.poll_transmit(now);
    active.handle_input(now, b"dtn!\x05\x01");
    assert_eq!(active.poll_transmit(now).unwrap(), [0x05, 0x00, 0x02]);
    let Some(Event::SessionTerminated(t)) = active.poll_event() else {
        panic!()
    };
    assert!(t.detail.contains("version 5"), "{t}");
}

#[test]
fn a_busy_server_answers_the_contact_header_then_terminates() {
    let now = Instant::now();
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    passive.terminate(now, SessTermReason::Busy);
    assert!(!passive.is_closed());
    passive.handle_input(now, &ContactHeader::OURS.encode());
    assert_eq!(
        passive.poll_transmit(now).unwrap(),
        b"dtn!\x04\x00\x05\x00\x03"
    );
    assert!(passive.is_closed());

    // Seen from an active session: the session ends with the peer's reason.
    let mut active = ActiveSession::new(config("ipn:1.0"), now).unwrap();
    let _ = active.poll_transmit(now);
    active.handle_input(now, b"dtn!\x04\x00\x05\x00\x03");
    let out = active.poll_transmit(now).unwrap();
    let ms = messages(&[&[0u8; 6][..], &out].concat());
    assert!(
        matches!(ms.last(), Some(Message::SessTerm(t)) if t.is_reply()),
        "{ms:?}"
    );
    assert!(active.is_closed());
    let events: Vec<Event> = std::iter::from_fn(|| active.poll_event()).collect();
    assert!(
        matches!(
            events.last(),
            Some(Event::SessionTerminated(t)) if t.initiator == Initiator::Peer
                && t.reason == Some(SessTermReason::Busy)
        ),
        "{events:?}"
    );
}

#[test]
fn protocol_violations_end_the_session_with_a_reason() {
    let now = Instant::now();
    // Unknown message type: MSG_REJECT, then SESS_TERM (framing is lost).
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    let mut input = handshake_from_active("ipn:1.0");
    input.push(0x0f);
    passive.handle_input(now, &input);
    let answers = drain_messages(&mut passive, now);
    assert!(
        matches!(
            &answers[answers.len() - 2..],
            [Message::MsgReject(r), Message::SessTerm(_)] if r.rejected_type == 0x0f
        ),
        "{answers:?}"
    );
    assert!(passive.is_closed());

    // A segment over our segment MRU: resource exhaustion, before its data.
    let mut c = config("ipn:2.0");
    c.segment_mru = 100;
    let mut passive = PassiveSession::new(c, now).unwrap();
    let mut input = handshake_from_active("ipn:1.0");
    input.extend_from_slice(&[0x01, SEGMENT_START | SEGMENT_END]);
    input.extend_from_slice(&0u64.to_be_bytes());
    input.extend_from_slice(&0u32.to_be_bytes());
    input.extend_from_slice(&101u64.to_be_bytes());
    passive.handle_input(now, &input);
    assert!(matches!(
        drain_messages(&mut passive, now).last(),
        Some(Message::SessTerm(t)) if t.reason == SessTermReason::ResourceExhaustion
    ));
    assert!(passive.is_closed());

    // Interleaved transfers.
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    let mut input = handshake_from_active("ipn:1.0");
    for id in [1, 2] {
        Message::XferSegment(XferSegment {
            flags: SEGMENT_START,
            transfer_id: id,
            extensions: vec![],
            data: vec![0; 3],
        })
        .encode(&mut input)
        .unwrap();
    }
    passive.handle_input(now, &input);
    assert!(passive.is_closed());
    let events: Vec<Event> = std::iter::from_fn(|| passive.poll_event()).collect();
    assert!(
        matches!(
            events.last(),
            Some(Event::SessionTerminated(t)) if t.detail.contains("interleaving")
        ),
        "{events:?}"
    );

    // An invalid node ID, and an unknown critical session extension.
    for init in [
        SessInit {
            keepalive_secs: 0,
            segment_mru: 1,
            transfer_mru: 1,
            node_id: "not a uri".into(),
            extensions: vec![],
        },
        SessInit {
            keepalive_secs: 0,
            segment_mru: 1,
            transfer_mru: 1,
            node_id: "ipn:1.0".into(),
            extensions: vec![Extension {
                flags: EXTENSION_CRITICAL,
                item_type: 9,
                value: vec![],
            }],
        },
    ] {
        let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
        let mut input = ContactHeader::OURS.encode().to_vec();
        Message::SessInit(init).encode(&mut input).unwrap();
        passive.handle_input(now, &input);
        assert!(passive.is_closed());
        assert!(matches!(
            drain_messages(&mut passive, now).last(),
            Some(Message::SessTerm(t)) if t.reason == SessTermReason::ContactFailure
        ));
    }
}

#[test]
fn unexpected_messages_get_msg_reject_and_the_session_goes_on() {
    let now = Instant::now();
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    let mut input = handshake_from_active("ipn:1.0");
    // An XFER_ACK to a receiver, a second SESS_INIT, a stray segment.
    input.extend_from_slice(&[0x02, 0x00]);
    input.extend_from_slice(&[0; 16]);
    input.extend_from_slice(&handshake_from_active("ipn:1.0")[CONTACT_HEADER_LEN..]);
    Message::XferSegment(XferSegment {
        flags: 0,
        transfer_id: 99,
        extensions: vec![],
        data: vec![1],
    })
    .encode(&mut input)
    .unwrap();
    passive.handle_input(now, &input);
    let rejects: Vec<u8> = drain_messages(&mut passive, now)
        .iter()
        .filter_map(|m| match m {
            Message::MsgReject(r) => Some(r.rejected_type),
            _ => None,
        })
        .collect();
    assert_eq!(rejects, [0x02, 0x07, 0x01]);
    assert!(passive.is_established());
}

#[test]
fn decisions_are_checked() {
    let now = Instant::now();
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    assert_eq!(
        passive.accept(3),
        Err(crate::DecideError::UnknownTransfer(3))
    );
    passive.handle_eof(now);
    assert_eq!(
        passive.refuse(3, RefuseReason::Unknown),
        Err(crate::DecideError::SessionClosed)
    );
}

#[test]
fn the_peer_may_end_a_session_while_a_bundle_awaits_its_decision() {
    let now = Instant::now();
    let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
    let mut input = handshake_from_active("ipn:1.0");
    Message::XferSegment(XferSegment {
        flags: SEGMENT_START | SEGMENT_END,
        transfer_id: 0,
        extensions: vec![],
        data: vec![1, 2, 3],
    })
    .encode(&mut input)
    .unwrap();
    Message::SessTerm(SessTerm {
        flags: 0,
        reason: SessTermReason::Unknown,
    })
    .encode(&mut input)
    .unwrap();
    // A new transfer in the Ending state is refused (§6.1).
    Message::XferSegment(XferSegment {
        flags: SEGMENT_START | SEGMENT_END,
        transfer_id: 1,
        extensions: vec![],
        data: vec![4],
    })
    .encode(&mut input)
    .unwrap();
    passive.handle_input(now, &input);
    assert!(!passive.is_closed(), "a decision is pending");
    passive.accept(0).unwrap();
    assert!(passive.is_closed());
    let answers = drain_messages(&mut passive, now);
    let tail: Vec<&Message> = answers.iter().skip(1).collect();
    assert!(
        matches!(
            tail.as_slice(),
            [Message::SessTerm(t), Message::XferRefuse(r), Message::XferAck(a)]
                if t.is_reply() && r.reason == RefuseReason::SessionTerminating && a.acknowledged_length == 3
        ),
        "{answers:?}"
    );
}

#[test]
fn the_idle_limit_waits_while_the_application_decides() {
    let t0 = Instant::now();
    let mut c = config("ipn:2.0");
    c.idle_timeout = Some(Duration::from_secs(5));
    let mut passive = PassiveSession::new(c, t0).unwrap();
    let mut input = handshake_from_active("ipn:1.0"); // keepalive 0
    Message::XferSegment(XferSegment {
        flags: SEGMENT_START | SEGMENT_END,
        transfer_id: 0,
        extensions: vec![],
        data: vec![1],
    })
    .encode(&mut input)
    .unwrap();
    passive.handle_input(t0, &input);
    while passive.poll_transmit(t0).is_some() {}
    // The spool takes a minute: no idle timer meanwhile.
    assert_eq!(passive.poll_timeout(), None);
    passive.handle_timeout(t0 + Duration::from_secs(60));
    assert!(!passive.is_closed());
    passive.accept(0).unwrap();
    // The clock restarts when the acknowledgement goes out.
    let t1 = t0 + Duration::from_secs(61);
    assert!(passive.poll_transmit(t1).is_some());
    assert_eq!(passive.poll_timeout(), Some(t1 + Duration::from_secs(5)));
    passive.handle_timeout(t1 + Duration::from_secs(5));
    assert!(passive.is_closed(), "then a silent peer is idle again");
}

#[test]
fn a_silent_peer_after_sess_term_is_given_up_on() {
    let t0 = Instant::now();
    let mut c = config("ipn:1.0");
    c.close_timeout = Duration::from_secs(3);
    let mut active = ActiveSession::new(c, t0).unwrap();
    active.handle_input(t0, &handshake_from_passive("ipn:2.0", 0));
    while active.poll_transmit(t0).is_some() {}
    active.terminate(t0, SessTermReason::Unknown);
    assert!(!active.is_closed());
    assert_eq!(active.poll_timeout(), Some(t0 + Duration::from_secs(3)));
    active.handle_timeout(t0 + Duration::from_secs(3));
    assert!(active.is_closed());
    let events: Vec<Event> = std::iter::from_fn(|| active.poll_event()).collect();
    assert!(
        matches!(
            events.last(),
            Some(Event::SessionTerminated(t)) if t.detail.contains("did not answer SESS_TERM")
        ),
        "{events:?}"
    );
}

/// Feeds `wire` to `feed` in the chunks `cuts` describes.
fn chunks(wire: &[u8], cuts: &[usize]) -> Vec<std::ops::Range<usize>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    points.push(0);
    points.push(wire.len());
    points.sort_unstable();
    points.dedup();
    points.windows(2).map(|w| w[0]..w[1]).collect()
}

/// Replays a recorded stream into a fresh passive session, in chunks,
/// with the same application logic; returns its events and output.
fn replay_passive(wire: &[u8], cuts: &[usize], now: Instant) -> (Vec<Event>, Vec<u8>) {
    let mut c = config("ipn:2.0");
    c.keepalive_secs = 15;
    let mut passive = PassiveSession::new(c, now).unwrap();
    let mut events = Vec::new();
    let mut out = Vec::new();
    for range in chunks(wire, cuts) {
        passive.handle_input(now, &wire[range]);
        while let Some(e) = passive.poll_event() {
            if let Event::BundleReceived { transfer_id, .. } = &e {
                passive.accept(*transfer_id).unwrap();
            }
            events.push(e);
        }
        while let Some(b) = passive.poll_transmit(now) {
            out.extend_from_slice(&b);
        }
    }
    (events, out)
}

fn replay_active(
    wire: &[u8],
    cuts: &[usize],
    bundles: &[Vec<u8>],
    segment: u64,
    now: Instant,
) -> Vec<Event> {
    let mut c = config("ipn:1.0");
    c.max_segment_len = segment;
    let mut active = ActiveSession::new(c, now).unwrap();
    let mut events = Vec::new();
    let mut settled = 0;
    for range in chunks(wire, cuts) {
        while active.poll_transmit(now).is_some() {}
        active.handle_input(now, &wire[range]);
        while let Some(e) = active.poll_event() {
            match &e {
                Event::Established(_) => {
                    for b in bundles {
                        active.send_bundle(b.clone()).unwrap();
                    }
                }
                Event::TransferAcked(_) | Event::TransferRefused(..) => {
                    settled += 1;
                    if settled == bundles.len() {
                        active.terminate(now, SessTermReason::Unknown);
                    }
                }
                _ => {}
            }
            events.push(e);
        }
    }
    events
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// However TCP cuts the byte streams, both sides see the same events
    /// (and the passive side says the same things).
    #[test]
    fn any_chunking_gives_the_same_events(
        sizes in proptest::collection::vec(1usize..3000, 1..5),
        segment in 1u64..1500,
        cuts in proptest::collection::vec(any::<usize>(), 0..40),
    ) {
        let now = Instant::now();
        let bundles: Vec<Vec<u8>> = sizes.iter().enumerate().map(|(i, n)| bundle(*n, i as u8)).collect();
        let mut a = config("ipn:1.0");
        a.max_segment_len = segment;
        let mut p = config("ipn:2.0");
        p.keepalive_secs = 15;
        let mut l = Loopback::new(a, p, bundles.clone(), now);
        l.run(now);
        let acked = l.active_events.iter().filter(|e| matches!(e, Event::TransferAcked(_))).count();
        prop_assert_eq!(acked, bundles.len());

        let (events, out) = replay_passive(&l.active_wire, &cuts, now);
        prop_assert!(events == l.passive_events, "passive events differ: {events:?}");
        // The same messages; only where the final XFER_ACKs fall relative
        // to the SESS_TERM reply depends on when the application decided.
        let sorted = |wire: &[u8]| {
            let mut ms: Vec<Vec<u8>> = messages(wire).iter().map(|m| m.to_bytes().unwrap()).collect();
            ms.sort();
            ms
        };
        prop_assert!(sorted(&out) == sorted(&l.passive_wire), "passive output differs");

        // The active side can only hear answers to what it has sent: cut
        // at least where the recorded chunks ended, and anywhere else.
        let mut active_cuts = cuts.clone();
        active_cuts.extend_from_slice(&l.passive_boundaries);
        let events = replay_active(&l.passive_wire, &active_cuts, &bundles, segment, now);
        prop_assert!(events == l.active_events, "active events differ: {events:?}");
    }

    /// Random bytes, alone or after a valid handshake, never panic either
    /// side, and the input buffer stays bounded by what was given.
    #[test]
    fn random_bytes_never_panic(
        garbage in proptest::collection::vec(any::<u8>(), 0..600),
        after_handshake in any::<bool>(),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let now = Instant::now();
        let mut c = config("ipn:2.0");
        c.segment_mru = 256;
        c.transfer_mru = 512;
        let mut passive = PassiveSession::new(c.clone(), now).unwrap();
        let mut active = ActiveSession::new(c, now).unwrap();
        let (pre_p, pre_a) = if after_handshake {
            (handshake_from_active("ipn:1.0"), handshake_from_passive("ipn:2.0", 5))
        } else {
            (Vec::new(), Vec::new())
        };
        let wire_p = [pre_p, garbage.clone()].concat();
        let wire_a = [pre_a, garbage].concat();
        for range in chunks(&wire_p, &cuts) {
            passive.handle_input(now, &wire_p[range]);
            while let Some(e) = passive.poll_event() {
                if let Event::BundleReceived { transfer_id, .. } = e {
                    let _ = passive.accept(transfer_id);
                }
            }
            while passive.poll_transmit(now).is_some() {}
        }
        for range in chunks(&wire_a, &cuts) {
            active.handle_input(now, &wire_a[range]);
            while let Some(e) = active.poll_event() {
                if let Event::Established(_) = e {
                    let _ = active.send_bundle(vec![1; 300]);
                }
            }
            while active.poll_transmit(now).is_some() {}
        }
        passive.handle_timeout(now + Duration::from_secs(3600));
        active.handle_timeout(now + Duration::from_secs(3600));
        passive.handle_eof(now);
        active.handle_eof(now);
        prop_assert!(passive.is_closed() && active.is_closed());
    }

    /// Well-framed but arbitrary messages (any order, any fields) after a
    /// handshake never panic either side.
    #[test]
    fn arbitrary_messages_never_panic(ms in proptest::collection::vec(crate::message::tests::message(), 0..12)) {
        let now = Instant::now();
        let mut wire = Vec::new();
        for m in &ms {
            m.encode(&mut wire).unwrap();
        }
        let mut passive = PassiveSession::new(config("ipn:2.0"), now).unwrap();
        passive.handle_input(now, &[handshake_from_active("ipn:1.0"), wire.clone()].concat());
        while let Some(e) = passive.poll_event() {
            if let Event::BundleReceived { transfer_id, .. } = e {
                let _ = passive.accept(transfer_id);
            }
        }
        while passive.poll_transmit(now).is_some() {}
        let mut active = ActiveSession::new(config("ipn:1.0"), now).unwrap();
        active.handle_input(now, &handshake_from_passive("ipn:2.0", 1));
        let _ = active.send_bundle(vec![0; 10]);
        while active.poll_transmit(now).is_some() {}
        active.handle_input(now, &wire);
        while active.poll_event().is_some() {}
        while active.poll_transmit(now).is_some() {}
    }
}

fn tls(node: &str, offer: bool, require: bool) -> SessionConfig {
    let mut c = config(node);
    c.offer_tls = offer;
    c.require_tls = require;
    c
}

/// A contact header that offers TLS.
fn can_tls_header() -> [u8; CONTACT_HEADER_LEN] {
    ContactHeader {
        flags: crate::message::CONTACT_CAN_TLS,
        ..ContactHeader::OURS
    }
    .encode()
}

/// An active session with `config` whose peer has answered with a contact
/// header offering TLS: it waits for the driver's handshake.
fn awaiting_tls(config: SessionConfig, now: Instant) -> ActiveSession {
    let mut active = ActiveSession::new(config, now).unwrap();
    let _ = active.poll_transmit(now);
    active.handle_input(now, &can_tls_header());
    assert_eq!(active.poll_event(), Some(Event::StartTls));
    active
}

fn terminated(events: &[Event]) -> &crate::Termination {
    match events.last() {
        Some(Event::SessionTerminated(t)) => t,
        other => panic!("the last event is not SessionTerminated: {other:?}"),
    }
}

#[test]
fn both_offering_tls_pause_for_the_handshake_before_sess_init() {
    let now = Instant::now();
    let bundles = vec![bundle(3000, 7)];
    let mut l = Loopback::new(
        tls("ipn:1.0", true, true),
        tls("ipn:2.0", true, false),
        bundles.clone(),
        now,
    );
    l.run(now);
    assert_eq!(l.active_events[0], Event::StartTls);
    assert_eq!(l.passive_events[0], Event::StartTls);
    for events in [&l.active_events, &l.passive_events] {
        let Event::Established(peer) = &events[1] else {
            panic!("{events:?}")
        };
        assert!(peer.can_tls && peer.tls, "{peer:?}");
    }
    // Both contact headers carry CAN_TLS (§4.2).
    assert_eq!(l.active_wire[5], crate::message::CONTACT_CAN_TLS);
    assert_eq!(l.passive_wire[5], crate::message::CONTACT_CAN_TLS);
    let received: Vec<&Vec<u8>> = l
        .passive_events
        .iter()
        .filter_map(|e| match e {
            Event::BundleReceived { bytes, .. } => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(received, [&bundles[0]]);
    assert!(matches!(l.active_events[2], Event::TransferAcked(0)));
}

#[test]
fn tls_is_used_only_when_both_offer_it() {
    let now = Instant::now();
    for (a, p) in [(true, false), (false, true)] {
        let mut l = Loopback::new(
            tls("ipn:1.0", a, false),
            tls("ipn:2.0", p, false),
            vec![bundle(10, 1)],
            now,
        );
        l.run(now);
        assert!(!l.active_events.contains(&Event::StartTls));
        let Event::Established(peer) = &l.active_events[0] else {
            panic!("{:?}", l.active_events)
        };
        assert_eq!(peer.can_tls, p);
        assert!(!peer.tls);
        assert!(l
            .passive_events
            .iter()
            .any(|e| matches!(e, Event::BundleReceived { .. })));
    }
}

#[test]
fn a_side_that_requires_tls_ends_the_session_with_contact_failure() {
    let now = Instant::now();
    // The passive side requires it; the active side does not offer.
    let mut l = Loopback::new(
        tls("ipn:1.0", false, false),
        tls("ipn:2.0", true, true),
        vec![bundle(10, 1)],
        now,
    );
    l.run(now);
    let t = terminated(&l.passive_events);
    assert_eq!(t.reason, Some(SessTermReason::ContactFailure));
    assert!(t.detail.contains("did not offer"), "{t}");
    let t = terminated(&l.active_events);
    assert_eq!(t.initiator, Initiator::Peer);
    assert_eq!(t.reason, Some(SessTermReason::ContactFailure));
    // Nothing but the contact header and SESS_TERM from the passive side:
    // no SESS_INIT, so nothing of the session is said in the clear.
    assert!(matches!(
        messages(&l.passive_wire)[..],
        [Message::SessTerm(SessTerm {
            reason: SessTermReason::ContactFailure,
            ..
        })]
    ));
    assert!(!l
        .passive_events
        .iter()
        .any(|e| matches!(e, Event::BundleReceived { .. })));

    // The active side requires it; the passive side does not offer.
    let mut l = Loopback::new(
        tls("ipn:1.0", true, true),
        tls("ipn:2.0", false, false),
        vec![bundle(10, 1)],
        now,
    );
    l.run(now);
    let t = terminated(&l.active_events);
    assert_eq!(t.initiator, Initiator::Local);
    assert_eq!(t.reason, Some(SessTermReason::ContactFailure));
    assert!(
        !messages(&l.active_wire)
            .iter()
            .any(|m| matches!(m, Message::SessInit(_))),
        "no SESS_INIT in the clear"
    );
}

#[test]
fn cleartext_where_the_tls_handshake_belongs_ends_the_session_without_sess_term() {
    let now = Instant::now();
    let mut passive = PassiveSession::new(tls("ipn:2.0", true, false), now).unwrap();
    let mut input = can_tls_header().to_vec();
    // A SESS_INIT in the clear right behind the contact header.
    Message::SessInit(SessInit {
        keepalive_secs: 0,
        segment_mru: 1000,
        transfer_mru: 1000,
        node_id: "ipn:1.0".into(),
        extensions: Vec::new(),
    })
    .encode(&mut input)
    .unwrap();
    passive.handle_input(now, &input);
    assert_eq!(passive.poll_event(), Some(Event::StartTls));
    let Some(Event::SessionTerminated(t)) = passive.poll_event() else {
        panic!()
    };
    assert!(t.detail.contains("before the TLS handshake"), "{t}");
    assert!(passive.is_closed());
    // Only our contact header went out.
    let mut wire = Vec::new();
    while let Some(b) = passive.poll_transmit(now) {
        wire.extend_from_slice(&b);
    }
    assert_eq!(wire.len(), CONTACT_HEADER_LEN);
}

#[test]
fn a_handshake_that_fails_or_never_ends_ends_the_session() {
    let now = Instant::now();
    let mut a = tls("ipn:1.0", true, false);
    a.handshake_timeout = Duration::from_secs(5);
    let mut active = awaiting_tls(a.clone(), now);
    let due = active.poll_timeout().unwrap();
    active.handle_timeout(due);
    let Some(Event::SessionTerminated(t)) = active.poll_event() else {
        panic!()
    };
    assert!(t.detail.contains("no TLS handshake"), "{t}");
    assert_eq!(active.poll_transmit(due), None, "no SESS_TERM in the clear");

    let mut active = awaiting_tls(a, now);
    active.tls_failed("the certificate is not trusted".into());
    let Some(Event::SessionTerminated(t)) = active.poll_event() else {
        panic!()
    };
    assert_eq!(t.reason, Some(SessTermReason::ContactFailure));
    assert!(active.is_closed());
}

#[test]
fn requiring_tls_without_offering_it_is_a_config_error() {
    let e = ActiveSession::new(tls("ipn:1.0", false, true), Instant::now())
        .err()
        .unwrap();
    assert_eq!(e, crate::ConfigError::RequireTlsWithoutOffer);
}

#[test]
fn sess_init_gets_its_own_handshake_time_after_tls() {
    // On a long link the TLS handshake alone takes a round trip: the
    // SESS_INIT exchange after it is timed from its end, not from the
    // contact headers.
    let now = Instant::now();
    let mut a = tls("ipn:1.0", true, false);
    a.handshake_timeout = Duration::from_secs(5);
    let mut active = awaiting_tls(a, now);
    let after_tls = now + Duration::from_secs(4);
    active.tls_established(after_tls);
    assert_eq!(
        active.poll_timeout(),
        Some(after_tls + Duration::from_secs(5))
    );
    active.handle_timeout(now + Duration::from_secs(6));
    assert!(!active.is_closed(), "still within SESS_INIT's own limit");
}
