//! The quic-sender plugin through the host: HTTP/3 over QUIC spoken inside
//! the component (quinn-proto + rustls over `wasi:sockets` UDP), against a
//! real, independent HTTP/3 server (aioquic, scripts/peers/aioquic/).
//!
//! Needs aioquic: `bash scripts/peers/install-aioquic.sh`. The plugin is
//! built here for wasm32-wasip2 (it is not embedded in the host).

#[path = "../../../plugins/quic-sender/tests/peer/mod.rs"]
mod peer;

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use deepmail_host::types::{Outcome, Payload};
use deepmail_host::{Host, HostConfig, NetworkGrant, PluginSource, Sender};
use peer::{sample_bsmtp, Peer};

const HOP: &str = "https://gw.moon.example/inboundmail";

/// The embedded quic-sender (pure Rust: every build has it).
fn plugin() -> PluginSource {
    assert!(deepmail_host::builtin::find("quic-sender").is_some());
    PluginSource::Builtin("quic-sender".into())
}

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

fn sender(peer_addr: std::net::SocketAddr, config: Vec<(String, String)>) -> Sender {
    Sender::load(
        host(),
        &plugin(),
        config,
        Some(NetworkGrant {
            udp: true,
            tcp: false,
            remote: vec![peer_addr],
            http: None,
        }),
    )
    .expect("load quic-sender")
}

fn config(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut c = vec![
        ("connect-to".to_string(), addr.to_string()),
        ("ca-pem".to_string(), ca_pem.to_string()),
        ("timeout-ms".to_string(), "10000".to_string()),
    ];
    c.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    c
}

#[test]
fn describes_itself() {
    let peer_addr = "127.0.0.1:9".parse().unwrap();
    let s = sender(peer_addr, config(peer_addr, "x", &[]));
    assert_eq!(s.info().name, "quic-sender");
}

#[test]
fn post_is_delivered_byte_for_byte_inside_the_component() {
    let Some(peer) = Peer::start(Some("s3cret")) else {
        return;
    };
    let s = sender(
        peer.addr(),
        config(
            peer.addr(),
            &peer.ca_pem,
            &[
                ("bearer-token", "s3cret"),
                // The deep-space knobs, at loopback-sized values.
                ("initial-rtt-ms", "50"),
                ("idle-timeout-ms", "30000"),
                ("stream-window", "4000000"),
                ("connection-window", "8000000"),
                ("initial-window", "1000000"),
            ],
        ),
    );
    let body = sample_bsmtp(1_000_000);
    let t = Instant::now();
    let outcome = s
        .send(HOP, "0123abcd", Payload::Bsmtp(body.clone()))
        .expect("no stage error");
    eprintln!(
        "1 MB through the component in {:?}: {outcome:?}",
        t.elapsed()
    );
    let Outcome::Delivered(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("HTTP 200") && msg.contains("\"accepted\": true"),
        "{msg}"
    );

    let reqs = peer.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert!(
        r.body == body,
        "body differs: {} vs {} bytes",
        r.body.len(),
        body.len()
    );
    assert_eq!(r.get(":method"), Some("POST"));
    assert_eq!(r.get(":scheme"), Some("https"));
    assert_eq!(r.get(":path"), Some("/inboundmail"));
    assert_eq!(r.get(":authority"), Some("gw.moon.example"));
    assert_eq!(r.get("content-type"), Some("application/batch-SMTP"));
    assert_eq!(r.get("idempotency-key"), Some("0123abcd"));
    assert_eq!(r.get("authorization"), Some("Bearer s3cret"));
    assert_eq!(
        r.get("content-length"),
        Some(body.len().to_string().as_str())
    );

    // Small deliveries: handshake + POST latency on loopback. Whether the
    // session ticket survives depends on the host handing back the same
    // pooled instance; report what happened.
    for i in 0..3 {
        let t = Instant::now();
        let outcome = s
            .send(HOP, &format!("k{i}"), Payload::Bsmtp(sample_bsmtp(100)))
            .expect("no stage error");
        eprintln!("small delivery {i} in {:?}: {outcome:?}", t.elapsed());
        assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");
    }
    assert_eq!(peer.requests().len(), 4);
}

#[test]
fn status_401_is_a_permanent_failure_with_the_servers_reason() {
    let Some(peer) = Peer::start(Some("s3cret")) else {
        return;
    };
    let s = sender(
        peer.addr(),
        config(peer.addr(), &peer.ca_pem, &[("bearer-token", "wrong")]),
    );
    let outcome = s.send(HOP, "k", Payload::Bsmtp(sample_bsmtp(10))).unwrap();
    let Outcome::PermanentFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("HTTP 401") && msg.contains("bearer token missing or not accepted"),
        "{msg}"
    );
}

#[test]
fn status_500_is_a_temporary_failure() {
    let Some(peer) = Peer::start(None) else {
        return;
    };
    let s = sender(peer.addr(), config(peer.addr(), &peer.ca_pem, &[]));
    let outcome = s
        .send(
            "https://gw.moon.example/inboundmail?status=500",
            "k",
            Payload::Bsmtp(sample_bsmtp(10)),
        )
        .unwrap();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(msg.contains("HTTP 500"), "{msg}");
}

#[test]
fn server_down_is_a_temporary_failure_within_the_timeout() {
    let Some(peer) = Peer::start(None) else {
        return;
    };
    // Bound but silent: only the deadline ends it.
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = hole.local_addr().unwrap();
    let s = sender(addr, config(addr, &peer.ca_pem, &[("timeout-ms", "1500")]));
    let t = Instant::now();
    let outcome = s.send(HOP, "k", Payload::Bsmtp(sample_bsmtp(10))).unwrap();
    let took = t.elapsed();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(msg.contains("no QUIC handshake"), "{msg}");
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "{took:?}"
    );

    // Nothing listening: refused at once.
    let addr = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap()
    };
    let s = sender(addr, config(addr, &peer.ca_pem, &[("timeout-ms", "1500")]));
    let t = Instant::now();
    let outcome = s.send(HOP, "k", Payload::Bsmtp(sample_bsmtp(10))).unwrap();
    eprintln!(
        "closed port through the component: {outcome:?} in {:?}",
        t.elapsed()
    );
    assert!(
        matches!(outcome, Outcome::TemporaryFailure(_)),
        "{outcome:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(4));
}

#[test]
fn wrong_ca_is_a_clear_error() {
    let Some(peer) = Peer::start(None) else {
        return;
    };
    let s = sender(peer.addr(), config(peer.addr(), &peer.other_ca_pem, &[]));
    let outcome = s.send(HOP, "k", Payload::Bsmtp(sample_bsmtp(10))).unwrap();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("TLS handshake") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    assert!(peer.requests().is_empty());
}

#[test]
fn udp_outside_the_grant_is_refused_by_the_host() {
    let Some(peer) = Peer::start(None) else {
        return;
    };
    // The grant names another address than connect-to.
    let other = "127.0.0.1:9".parse().unwrap();
    let s = sender(other, config(peer.addr(), &peer.ca_pem, &[]));
    let result = s.send(HOP, "k", Payload::Bsmtp(sample_bsmtp(10)));
    eprintln!("outside the grant: {result:?}");
    match result {
        Err(e) => assert_eq!(e.code, "network-denied", "{e:?}"),
        Ok(Outcome::TemporaryFailure(_)) => {}
        Ok(other) => panic!("{other:?}"),
    }
    assert!(peer.requests().is_empty());
}

#[test]
fn bad_config_is_a_stage_error() {
    let addr = "127.0.0.1:9".parse().unwrap();
    let s = sender(addr, vec![("ca-pem".into(), "x".into())]);
    let e = s
        .send(HOP, "k", Payload::Bsmtp(sample_bsmtp(10)))
        .unwrap_err();
    assert_eq!(e.code, "invalid-config");
    assert!(e.message.contains("connect-to"), "{e:?}");
    let e = s
        .send(HOP, "k", Payload::Bundles(vec![vec![1]]))
        .unwrap_err();
    assert_eq!(e.code, "unsupported-payload");
}

#[test]
fn client_certificate_settings_are_checked_in_the_component() {
    let Some(peer) = Peer::start(None) else {
        return;
    };
    let pem =
        |name: &str| std::fs::read_to_string(peer.dir.path().join("certs").join(name)).unwrap();
    let (cert, key) = (pem("server.pem"), pem("server.key"));
    let try_with = |extra: &[(&str, &str)]| {
        sender(peer.addr(), config(peer.addr(), &peer.ca_pem, extra)).send(
            HOP,
            "k",
            Payload::Bsmtp(sample_bsmtp(10)),
        )
    };

    // A certificate and its key (PKCS#8, EC) load inside the component; the
    // aioquic peer does not ask for a client certificate, so the delivery
    // goes through as it would without one.
    let outcome =
        try_with(&[("client-cert-pem", &cert), ("client-key-pem", &key)]).expect("no stage error");
    assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");

    let e = try_with(&[("client-cert-pem", &cert)]).unwrap_err();
    assert_eq!(e.code, "invalid-config");
    assert!(e.message.contains("client-key-pem is missing"), "{e:?}");
    let e = try_with(&[("client-key-pem", &key)]).unwrap_err();
    assert_eq!(e.code, "invalid-config");
    assert!(e.message.contains("client-cert-pem is missing"), "{e:?}");
    let e = try_with(&[("client-cert-pem", "junk"), ("client-key-pem", &key)]).unwrap_err();
    assert_eq!(e.code, "invalid-config");
    assert!(e.message.contains("client-cert-pem holds no"), "{e:?}");
    let e = try_with(&[("client-cert-pem", &cert), ("client-key-pem", "junk")]).unwrap_err();
    assert_eq!(e.code, "invalid-config");
    assert!(e.message.contains("client-key-pem holds no"), "{e:?}");
    // The CA certificate with the server's key: not its key.
    let e = try_with(&[("client-cert-pem", &peer.ca_pem), ("client-key-pem", &key)]).unwrap_err();
    assert_eq!(e.code, "invalid-config");
    assert!(e.message.contains("not the private key"), "{e:?}");
    assert_eq!(peer.requests().len(), 1);
}
