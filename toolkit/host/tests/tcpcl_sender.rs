//! The tcpcl-sender plugin through the host: TCPCLv4 (RFC 9174) spoken
//! inside the component over `wasi:sockets` TCP, against a native passive
//! TCPCL server (`deepmail-tcpcl`'s tokio `serve`) started by each test,
//! carrying real BPv7 bundles built and fragmented by `deepmail-bundle`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use deepmail_bundle::{fragment_adu, inspect, BundleSpec, CrcType, Reassembler, ReassemblyLimits};
use deepmail_host::types::{Outcome, Payload};
use deepmail_host::{Host, HostConfig, NetworkGrant, PluginSource, Sender, Stage};
use deepmail_tcpcl::{serve, BundleHandler, RefuseReason, ServeStats, ServerConfig};

const HOP: &str = "tcpcl://gw.moon.example:4556";

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        Host::new(HostConfig {
            call_timeout: Duration::from_secs(60),
            ..HostConfig::default()
        })
        .expect("host")
    })
}

/// The embedded plugin, with TCP granted to exactly `grant`.
fn sender(grant: SocketAddr, config: Vec<(String, String)>) -> Sender {
    Sender::load(
        host(),
        &PluginSource::Builtin("tcpcl-sender".into()),
        config,
        Some(NetworkGrant {
            udp: false,
            tcp: true,
            remote: vec![grant],
            http: None,
        }),
    )
    .expect("load tcpcl-sender")
}

fn config(connect_to: SocketAddr, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut c = vec![
        ("connect-to".to_string(), connect_to.to_string()),
        ("node-id".to_string(), "ipn:1.0".to_string()),
        ("timeout-ms".to_string(), "10000".to_string()),
    ];
    c.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    c
}

/// Mail for the Moon gateway: `adu` as bundles to `ipn:2.25`, at most
/// `mtu` bytes each.
fn bundles(adu: &[u8], destination: &str, mtu: usize) -> Vec<Vec<u8>> {
    let spec = BundleSpec {
        source: "ipn:1.0".parse().unwrap(),
        destination: destination.parse().unwrap(),
        report_to: "dtn:none".parse().unwrap(),
        creation_time: 815_000_000_000,
        sequence_number: 7,
        lifetime_ms: 86_400_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::Crc16,
        must_not_fragment: false,
    };
    fragment_adu(adu, &spec, mtu).unwrap()
}

fn sample_adu(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"MAIL FROM:<a@earth>\r\n"[i % 21])
        .collect()
}

/// The Moon gateway's side: bundles for `ipn:2.*` are stored, others
/// refused as not acceptable (the check the gateway makes before it
/// spools).
struct MoonGateway {
    received: Mutex<Vec<(String, Vec<u8>)>>,
    /// Takes this many bundles, then never answers again (a link that went
    /// away under a delivery).
    stall_after: Option<usize>,
}

impl BundleHandler for MoonGateway {
    async fn on_bundle(
        &self,
        _peer: std::net::SocketAddr,
        peer_node_id: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RefuseReason> {
        if self
            .stall_after
            .is_some_and(|n| self.received.lock().unwrap().len() >= n)
        {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        let info = inspect(&bytes).map_err(|_| RefuseReason::NotAcceptable)?;
        if !info.destination.to_string().starts_with("ipn:2.") {
            return Err(RefuseReason::NotAcceptable);
        }
        self.received
            .lock()
            .unwrap()
            .push((peer_node_id.to_string(), bytes));
        Ok(())
    }
}

/// A native TCPCL server on a thread of its own.
struct Server {
    addr: SocketAddr,
    gateway: Arc<MoonGateway>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<ServeStats>>,
}

impl Server {
    fn start(config: ServerConfig) -> Server {
        Server::start_stalling(config, None)
    }

    fn start_stalling(config: ServerConfig, stall_after: Option<usize>) -> Server {
        let gateway = Arc::new(MoonGateway {
            received: Mutex::new(Vec::new()),
            stall_after,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handler = gateway.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                ready_tx.send(listener.local_addr().unwrap()).unwrap();
                serve(listener, config, handler, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap()
            })
        });
        let addr = ready_rx.recv().unwrap();
        Server {
            addr,
            gateway,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    fn received(&self) -> Vec<(String, Vec<u8>)> {
        self.gateway.received.lock().unwrap().clone()
    }

    fn stop(mut self) -> ServeStats {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn moon() -> ServerConfig {
    let mut c = ServerConfig::new("ipn:2.0");
    c.session.segment_mru = 4096;
    c
}

#[test]
fn registered_as_an_optional_sender() {
    let b = deepmail_host::builtin::find("tcpcl-sender").expect("builtin:tcpcl-sender");
    assert_eq!(b.stage, Stage::Sender);
    assert!(!b.default && !b.test_only);
    assert!(!b.wasm.is_empty());
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let s = sender(addr, config(addr, &[]));
    assert_eq!(s.info().name, "tcpcl-sender");
    assert_eq!(s.info().world, "bundle-sender-plugin");
    assert!(s.keeps_sessions());
    assert!(s.tracks_progress());
}

fn delivered(outcome: Outcome) -> String {
    match outcome {
        Outcome::Delivered(m) => m,
        other => panic!("not delivered: {other:?}"),
    }
}

/// Sends `adu` to `ipn:2.25` as one bundle; what the plugin said on delivery.
fn deliver_adu(s: &Sender, key: &str, adu: &[u8]) -> String {
    delivered(
        s.send(HOP, key, Payload::Bundles(bundles(adu, "ipn:2.25", 5_000)))
            .unwrap(),
    )
}

#[test]
fn the_session_stays_open_for_the_next_delivery() {
    let server = Server::start(moon());
    let s = sender(server.addr, config(server.addr, &[]));
    let first = deliver_adu(&s, "k1", b"one");
    assert!(first.contains("a new session"), "{first}");
    assert_eq!(s.maintain(false), 1, "one session kept open");
    let second = deliver_adu(&s, "k2", b"two");
    assert!(second.contains("kept open (1 earlier)"), "{second}");
    assert_eq!(server.received().len(), 2);
    // Shutting down: the plugin ends the session with SESS_TERM.
    assert_eq!(s.maintain(true), 0);
    assert_eq!(s.maintain(false), 0, "nothing left open");
    let stats = server.stop();
    assert_eq!((stats.sessions, stats.bundles_accepted), (1, 2));
    assert_eq!((stats.failed, stats.aborted), (0, 0));
}

#[test]
fn a_round_trip_longer_than_two_keepalives_still_delivers() {
    // 1.5 s each way and keepalive 1 s: the acknowledgement comes 3 s
    // after the bundle leaves, beyond the 2 s idle limit. Silence while a
    // transfer awaits its acknowledgement is the link, not idleness.
    let server = Server::start(moon());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let link = runtime
        .block_on(deepmail_link::Link::start(
            deepmail_link::LinkConfig::with_delay(Duration::from_millis(1_500))
                .tcp("127.0.0.1:0".parse().unwrap(), server.addr),
        ))
        .unwrap();
    let via = link.tcp_listen_addrs()[0];
    let s = sender(via, config(via, &[("keepalive-secs", "1")]));
    let t = Instant::now();
    let m = deliver_adu(&s, "k1", b"far");
    // Connect (1 OWLT), handshake answer (1), SESS_INIT + bundle (1),
    // acknowledgement (1).
    assert!(t.elapsed() >= Duration::from_millis(5_900), "{m}");
    assert_eq!(server.received().len(), 1);
    s.maintain(true);
    link.stop();
}

/// A TCPCL peer driven by hand (`PassiveSession` over a blocking socket)
/// that serves two connections one after the other, and drops the first
/// without a word as soon as bytes of a second bundle arrive on it: a node
/// that crashes while a kept session is in use. Returns what it accepted.
fn crashing_peer() -> (SocketAddr, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let mut received = Vec::new();
        for connection in 0..2 {
            let (mut stream, _) = listener.accept().unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(20)))
                .unwrap();
            let mut session = deepmail_tcpcl::PassiveSession::new(
                deepmail_tcpcl::SessionConfig::new("ipn:2.0"),
                Instant::now(),
            )
            .unwrap();
            let mut buf = vec![0u8; 64 * 1024];
            let mut here = 0;
            loop {
                while let Some(out) = session.poll_transmit(Instant::now()) {
                    stream.write_all(&out).unwrap();
                }
                if session.is_closed() {
                    break;
                }
                let n = match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if connection == 0 && here == 1 {
                    break; // the crash: the socket is dropped
                }
                session.handle_input(Instant::now(), &buf[..n]);
                while let Some(event) = session.poll_event() {
                    if let deepmail_tcpcl::Event::BundleReceived { transfer_id, bytes } = event {
                        session.accept(transfer_id).unwrap();
                        received.push(bytes);
                        here += 1;
                    }
                }
            }
        }
        received
    });
    (addr, thread)
}

#[test]
fn a_kept_session_that_dies_under_a_delivery_is_replaced_within_it() {
    // The kept session looks alive, but the peer is gone when the second
    // delivery's bundle reaches it: nothing was acknowledged there, so the
    // same delivery goes again on a new session, within its deadline.
    let (addr, peer) = crashing_peer();
    let s = sender(addr, config(addr, &[]));
    let first = bundles(b"one", "ipn:2.25", 5_000);
    let second = bundles(b"two", "ipn:2.25", 5_000);
    delivered(s.send(HOP, "k1", Payload::Bundles(first.clone())).unwrap());
    let m = delivered(s.send(HOP, "k2", Payload::Bundles(second.clone())).unwrap());
    assert!(m.contains("a new session"), "{m}");
    assert_eq!(s.maintain(true), 0);
    let received = peer.join().unwrap();
    assert_eq!(received, [first, second].concat());
}

#[test]
fn session_idle_secs_0_is_one_session_per_delivery() {
    let server = Server::start(moon());
    let s = sender(
        server.addr,
        config(server.addr, &[("session-idle-secs", "0")]),
    );
    for k in ["k1", "k2"] {
        let m = deliver_adu(&s, k, b"x");
        assert!(m.contains("a new session"), "{m}");
        assert_eq!(s.maintain(false), 0, "nothing kept");
    }
    let stats = server.stop();
    assert_eq!((stats.sessions, stats.bundles_accepted), (1 + 1, 2));
}

#[test]
fn maintain_keeps_an_idle_session_through_the_peers_idle_limit() {
    // Keepalive 1 s: the server ends a session it hears nothing from for
    // 2 s. Serviced every 300 ms, the idle session survives 3 s.
    let server = Server::start(moon());
    let s = sender(server.addr, config(server.addr, &[("keepalive-secs", "1")]));
    deliver_adu(&s, "k1", b"one");
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(s.maintain(false), 1, "the session stays open");
        std::thread::sleep(Duration::from_millis(300));
    }
    let m = deliver_adu(&s, "k2", b"two");
    assert!(m.contains("kept open"), "{m}");
    s.maintain(true);
    assert_eq!(server.stop().sessions, 1);
}

#[test]
fn a_session_the_peer_ended_meanwhile_is_replaced() {
    // Not serviced, the idle session is ended by the server (idle limit
    // 2 s); the next delivery notices and opens a new one.
    let server = Server::start(moon());
    let s = sender(server.addr, config(server.addr, &[("keepalive-secs", "1")]));
    deliver_adu(&s, "k1", b"one");
    std::thread::sleep(Duration::from_millis(3_000));
    let m = deliver_adu(&s, "k2", b"two");
    assert!(m.contains("a new session"), "{m}");
    assert_eq!(server.received().len(), 2);
    s.maintain(true);
    assert_eq!(server.stop().sessions, 2);
}

#[test]
fn an_idle_session_is_closed_after_session_idle_secs() {
    let server = Server::start(moon());
    let s = sender(
        server.addr,
        config(server.addr, &[("session-idle-secs", "1")]),
    );
    deliver_adu(&s, "k1", b"one");
    assert_eq!(s.maintain(false), 1);
    std::thread::sleep(Duration::from_millis(1_100));
    assert_eq!(s.maintain(false), 0, "closed once idle for 1 s");
    let stats = server.stop();
    assert_eq!((stats.sessions, stats.failed, stats.aborted), (1, 0, 0));
}

#[test]
fn three_bundles_arrive_intact_and_are_acknowledged() {
    let server = Server::start(moon());
    let adu = sample_adu(12_000);
    let sent = bundles(&adu, "ipn:2.25", 5_000);
    assert_eq!(sent.len(), 3, "the ADU is fragmented into three bundles");
    // Segments of 1000 bytes: several per bundle.
    let s = sender(server.addr, config(server.addr, &[("segment-mru", "1000")]));
    let t = Instant::now();
    let outcome = s
        .send(HOP, "k", Payload::Bundles(sent.clone()))
        .expect("no stage error");
    eprintln!(
        "3 bundles through the component in {:?}: {outcome:?}",
        t.elapsed()
    );
    let Outcome::Delivered(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("3 bundle(s)") && msg.contains("ipn:2.0"),
        "{msg}"
    );

    let received = server.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|(node, _)| node == "ipn:1.0"));
    // The handler runs per bundle and concurrently: compare as sets, then
    // reassemble the mail from what arrived.
    let mut got: Vec<Vec<u8>> = received.into_iter().map(|(_, b)| b).collect();
    let mut want = sent.clone();
    got.sort();
    want.sort();
    assert!(got == want, "bundles arrive byte for byte");
    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let mut delivered = None;
    for b in &got {
        if let Some(d) = reassembler.push(b, 815_000_000_001).unwrap() {
            delivered = Some(d);
        }
    }
    assert_eq!(delivered.expect("a complete ADU").adu, adu);

    // The session is kept for the next delivery until the host closes it.
    assert_eq!(s.maintain(true), 0);
    let stats = server.stop();
    assert_eq!((stats.sessions, stats.bundles_accepted), (1, 3));
    assert_eq!(stats.failed, 0);
}

#[test]
fn megabytes_stream_through_small_segments() {
    // 4 KiB segments, one XFER_ACK each: the plugin must keep reading
    // acknowledgements while it writes, or both sides stall.
    let server = Server::start(moon());
    let adu = sample_adu(6_000_000);
    let sent = bundles(&adu, "ipn:2.25", 2_100_000);
    assert_eq!(sent.len(), 3);
    let s = sender(server.addr, config(server.addr, &[]));
    let t = Instant::now();
    let outcome = s.send(HOP, "k", Payload::Bundles(sent.clone())).unwrap();
    eprintln!("6 MB in 4 KiB segments in {:?}: {outcome:?}", t.elapsed());
    assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");
    let mut got: Vec<Vec<u8>> = server.received().into_iter().map(|(_, b)| b).collect();
    let mut want = sent;
    got.sort();
    want.sort();
    assert!(got == want, "bundles arrive byte for byte");
}

#[test]
fn a_refused_bundle_is_a_permanent_failure() {
    let server = Server::start(moon());
    let mut sent = bundles(&sample_adu(100), "ipn:2.25", 5_000);
    sent.extend(bundles(&sample_adu(100), "ipn:3.25", 5_000));
    let s = sender(server.addr, config(server.addr, &[]));
    let outcome = s.send(HOP, "k", Payload::Bundles(sent)).unwrap();
    let Outcome::PermanentFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("1 of 2 bundle(s) acknowledged")
            && msg.contains("bundle 2 refused: not acceptable (0x04)"),
        "{msg}"
    );
    assert_eq!(server.received().len(), 1);
}

#[test]
fn the_report_names_the_bundles_the_peer_took() {
    let server = Server::start(moon());
    let mut sent = bundles(&sample_adu(100), "ipn:2.25", 5_000);
    sent.extend(bundles(&sample_adu(100), "ipn:3.25", 5_000));
    sent.extend(bundles(&sample_adu(200), "ipn:2.25", 5_000));
    let s = sender(server.addr, config(server.addr, &[]));
    let (outcome, acknowledged) = s.send_tracked(HOP, "k", Payload::Bundles(sent)).unwrap();
    assert!(
        matches!(outcome, Outcome::PermanentFailure(_)),
        "{outcome:?}"
    );
    assert_eq!(acknowledged, Some(vec![0, 2]));
}

/// The link goes away under a delivery (a window closed early): the peer
/// took two of four fragments, then nothing more came back. The report
/// says which two, so the host never sends them again.
#[test]
fn a_delivery_cut_short_reports_the_fragments_that_crossed() {
    let server = Server::start_stalling(moon(), Some(2));
    let sent = bundles(&sample_adu(16_000), "ipn:2.25", 5_000);
    assert_eq!(sent.len(), 4);
    let s = sender(
        server.addr,
        config(
            server.addr,
            &[("timeout-ms", "1500"), ("session-idle-secs", "0")],
        ),
    );
    let (outcome, acknowledged) = s.send_tracked(HOP, "k", Payload::Bundles(sent)).unwrap();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(msg.contains("2 of 4 bundle(s) acknowledged"), "{msg}");
    assert_eq!(acknowledged, Some(vec![0, 1]));
}

#[test]
fn a_bundle_over_the_peers_transfer_mru_is_a_permanent_failure() {
    let mut config_moon = moon();
    config_moon.session.transfer_mru = 1_000;
    let server = Server::start(config_moon);
    let sent = bundles(&sample_adu(3_000), "ipn:2.25", 10_000);
    let s = sender(server.addr, config(server.addr, &[]));
    let outcome = s.send(HOP, "k", Payload::Bundles(sent)).unwrap();
    let Outcome::PermanentFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(msg.contains("transfer MRU of 1000 bytes"), "{msg}");
    assert!(server.received().is_empty());
}

#[test]
fn nothing_listening_is_a_temporary_failure() {
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let s = sender(addr, config(addr, &[("timeout-ms", "3000")]));
    let t = Instant::now();
    let outcome = s
        .send(HOP, "k", Payload::Bundles(bundles(b"x", "ipn:2.25", 5_000)))
        .unwrap();
    eprintln!("closed port: {outcome:?} in {:?}", t.elapsed());
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(msg.contains("cannot connect"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(3));
}

#[test]
fn a_silent_peer_is_a_temporary_failure_at_the_deadline() {
    // Accepts the connection, never answers the contact header.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let holder = std::thread::spawn(move || listener.accept().map(|(s, _)| s));
    let s = sender(addr, config(addr, &[("timeout-ms", "1500")]));
    let t = Instant::now();
    let outcome = s
        .send(HOP, "k", Payload::Bundles(bundles(b"x", "ipn:2.25", 5_000)))
        .unwrap();
    let took = t.elapsed();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("no contact header") || msg.contains("no answer"),
        "{msg}"
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(5),
        "{took:?}"
    );
    drop(holder.join());
}

#[test]
fn tcp_outside_the_grant_is_refused_by_the_host() {
    let server = Server::start(moon());
    // The grant names another address than connect-to.
    let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let s = sender(other, config(server.addr, &[]));
    let result = s.send(HOP, "k", Payload::Bundles(bundles(b"x", "ipn:2.25", 5_000)));
    let e = result.expect_err("the host refuses the connection");
    assert_eq!(e.code, "network-denied", "{e:?}");
    assert!(server.received().is_empty());
    assert_eq!(
        server.stop().sessions,
        0,
        "no connection reached the server"
    );
}

#[test]
fn bsmtp_payloads_and_bad_settings_are_stage_errors() {
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let s = sender(addr, config(addr, &[]));
    let e = s
        .send(HOP, "k", Payload::Bsmtp(b"MAIL FROM:<>\r\n".to_vec()))
        .unwrap_err();
    assert_eq!(e.code, "unsupported-payload", "{e:?}");
    let e = s.send(HOP, "k", Payload::Bundles(vec![])).unwrap_err();
    assert_eq!(e.code, "invalid-request", "{e:?}");
    let s = sender(addr, vec![("connect-to".into(), addr.to_string())]);
    let e = s
        .send(HOP, "k", Payload::Bundles(vec![vec![1]]))
        .unwrap_err();
    assert_eq!(e.code, "invalid-config", "{e:?}");
    assert!(e.message.contains("node-id"), "{e:?}");
}

/// A test PKI: a CA, and a server certificate it signs for `names`.
struct Pki {
    ca_pem: String,
    server: tokio_rustls::TlsAcceptor,
}

fn pki(names: &[&str]) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let key = KeyPair::generate().unwrap();
    let params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS13])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
    )
    .unwrap();
    Pki {
        ca_pem: ca.pem(),
        server: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
    }
}

fn tls_moon(pki: &Pki, require: bool) -> ServerConfig {
    let mut c = moon();
    c.session.offer_tls = true;
    c.session.require_tls = require;
    c.tls = Some(pki.server.clone());
    c
}

fn failure(outcome: Outcome) -> String {
    match outcome {
        Outcome::TemporaryFailure(m) => m,
        other => panic!("not a temporary failure: {other:?}"),
    }
}

#[test]
fn tls_sessions_deliver_inside_tls_and_stay_open() {
    // RFC 9174 §4.4: both sides offer TLS, the plugin is the TLS client
    // and checks the certificate against ca-pem and the next hop's name.
    let pki = pki(&["gw.moon.example"]);
    let server = Server::start(tls_moon(&pki, true));
    let s = sender(
        server.addr,
        config(server.addr, &[("tls", "require"), ("ca-pem", &pki.ca_pem)]),
    );
    let adu = sample_adu(40_000);
    let first = deliver_adu(&s, "k1", &adu);
    assert!(first.contains("with TLS on a new session"), "{first}");
    let second = deliver_adu(&s, "k2", b"two");
    assert!(
        second.contains("with TLS on the session kept open"),
        "{second}"
    );
    let n = bundles(&adu, "ipn:2.25", 5_000).len();
    let got = server.received();
    assert_eq!(got.len(), n + 1);
    let mut r = Reassembler::new(ReassemblyLimits::default());
    let mut whole = None;
    for (_, b) in &got[..n] {
        whole = r.push(b, 815_000_000_001).unwrap().or(whole);
    }
    assert_eq!(whole.expect("one whole ADU").adu, adu, "byte for byte");
    assert_eq!(s.maintain(true), 0);
    let stats = server.stop();
    assert_eq!((stats.sessions, stats.bundles_accepted), (1, n as u64 + 1));
}

#[test]
fn a_certificate_the_sender_cannot_trust_fails_before_any_bundle() {
    let pki_moon = pki(&["gw.moon.example"]);
    let other = pki(&["gw.moon.example"]);
    let server = Server::start(tls_moon(&pki_moon, true));
    // Signed by another CA.
    let s = sender(
        server.addr,
        config(server.addr, &[("tls", "offer"), ("ca-pem", &other.ca_pem)]),
    );
    let why = failure(
        s.send(HOP, "k", Payload::Bundles(bundles(b"x", "ipn:2.25", 5_000)))
            .unwrap(),
    );
    assert!(why.contains("TLS handshake with the peer failed"), "{why}");
    // (The other CA has the same empty name, so rustls finds it and the
    // signature does not verify: BadSignature rather than UnknownIssuer.)
    assert!(why.contains("invalid peer certificate"), "{why}");
    // The right CA, the wrong name.
    let s = sender(
        server.addr,
        config(
            server.addr,
            &[
                ("tls", "offer"),
                ("ca-pem", &pki_moon.ca_pem),
                ("tls-name", "gw.mars.example"),
            ],
        ),
    );
    let why = failure(
        s.send(HOP, "k", Payload::Bundles(bundles(b"x", "ipn:2.25", 5_000)))
            .unwrap(),
    );
    assert!(why.contains("not valid for name"), "{why}");
    assert!(server.received().is_empty());
}

#[test]
fn require_tls_refuses_a_peer_that_does_not_offer_it_and_the_other_way_round() {
    let pki = pki(&["gw.moon.example"]);
    // The sender requires TLS; the Moon speaks plain TCPCL.
    let plain = Server::start(moon());
    let s = sender(
        plain.addr,
        config(plain.addr, &[("tls", "require"), ("ca-pem", &pki.ca_pem)]),
    );
    let why = failure(
        s.send(HOP, "k", Payload::Bundles(bundles(b"x", "ipn:2.25", 5_000)))
            .unwrap(),
    );
    assert!(
        why.contains("TLS is required here and the peer did not offer it"),
        "{why}"
    );
    assert!(plain.received().is_empty());
    // With `offer`, the same plain peer gets the bundle without TLS.
    let s = sender(
        plain.addr,
        config(plain.addr, &[("tls", "offer"), ("ca-pem", &pki.ca_pem)]),
    );
    let said = deliver_adu(&s, "k2", b"plain");
    assert!(!said.contains("TLS"), "{said}");
    assert_eq!(plain.received().len(), 1);

    // The Moon requires TLS; the sender does not offer it.
    let strict = Server::start(tls_moon(&pki, true));
    let s = sender(strict.addr, config(strict.addr, &[]));
    let why = failure(
        s.send(HOP, "k", Payload::Bundles(bundles(b"x", "ipn:2.25", 5_000)))
            .unwrap(),
    );
    assert!(
        why.contains("contact failure")
            || why.contains("ContactFailure")
            || why.contains("Contact"),
        "{why}"
    );
    assert!(strict.received().is_empty());
}
