//! The quic-sender client code, compiled for the host target, against a real
//! HTTP/3 server (aioquic). The same code runs inside the component in
//! toolkit/host/tests/quic_sender.rs.

mod peer;

use std::time::{Duration, Instant};

use deepmail_plugin_quic_sender::{deliver, Outcome};
use peer::{sample_bsmtp, Peer};

const HOP: &str = "https://gw.moon.example/inboundmail";

fn config(peer: &Peer, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut c = vec![
        ("connect-to".to_string(), peer.addr().to_string()),
        ("ca-pem".to_string(), peer.ca_pem.clone()),
        ("timeout-ms".to_string(), "10000".to_string()),
    ];
    c.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    c
}

#[test]
fn post_is_delivered_byte_for_byte_then_resumes_with_0rtt() {
    let Some(peer) = Peer::start(Some("s3cret")) else {
        return;
    };
    let body = sample_bsmtp(3_000_000);
    let cfg = config(&peer, &[("bearer-token", "s3cret")]);
    let t = Instant::now();
    let outcome = deliver(HOP, "key-1", body.clone(), &cfg).expect("no stage error");
    eprintln!(
        "first delivery ({} bytes) in {:?}: {outcome:?}",
        body.len(),
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
    assert_eq!(r.get("idempotency-key"), Some("key-1"));
    assert_eq!(r.get("authorization"), Some("Bearer s3cret"));
    assert_eq!(
        r.get("content-length"),
        Some(body.len().to_string().as_str())
    );

    // Same process (= same component instance): the ticket is cached.
    let small = sample_bsmtp(10);
    let t = Instant::now();
    let outcome = deliver(HOP, "key-2", small.clone(), &cfg).expect("no stage error");
    eprintln!("second delivery in {:?}: {outcome:?}", t.elapsed());
    let Outcome::Delivered(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(msg.contains("0-RTT"), "{msg}");
    let reqs = peer.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].get("idempotency-key"), Some("key-2"));
}

#[test]
fn status_401_is_permanent_with_the_servers_reason() {
    let Some(peer) = Peer::start(Some("s3cret")) else {
        return;
    };
    let cfg = config(&peer, &[("bearer-token", "wrong")]);
    let outcome = deliver(HOP, "k", sample_bsmtp(10), &cfg).unwrap();
    let Outcome::PermanentFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("HTTP 401") && msg.contains("bearer token missing or not accepted"),
        "{msg}"
    );
}

#[test]
fn status_500_is_temporary() {
    let Some(peer) = Peer::start(None) else {
        return;
    };
    let cfg = config(&peer, &[]);
    let outcome = deliver(
        "https://gw.moon.example/inboundmail?status=500",
        "k",
        sample_bsmtp(10),
        &cfg,
    )
    .unwrap();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(msg.contains("HTTP 500") && msg.contains("forced"), "{msg}");
}

#[test]
fn server_down_is_temporary_within_the_timeout() {
    // A bound socket that never answers: a black hole, so the deadline ends it.
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let cfg = vec![
        (
            "connect-to".to_string(),
            hole.local_addr().unwrap().to_string(),
        ),
        (
            "ca-pem".to_string(),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_string(),
        ),
        ("timeout-ms".to_string(), "1500".to_string()),
    ];
    // The PEM above is not a certificate: that is a config error first.
    let err = deliver(HOP, "k", sample_bsmtp(10), &cfg).unwrap_err();
    assert_eq!(err.code, "invalid-config", "{err:?}");

    let Some(peer) = Peer::start(None) else {
        return;
    };
    let mut cfg = config(&peer, &[]);
    cfg[0].1 = hole.local_addr().unwrap().to_string();
    cfg[2].1 = "1500".into();
    let t = Instant::now();
    let outcome = deliver(HOP, "k", sample_bsmtp(10), &cfg).unwrap();
    let took = t.elapsed();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("no QUIC handshake") && msg.contains("1500 ms"),
        "{msg}"
    );
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_millis(3000),
        "{took:?}"
    );

    // Nothing bound at all: ICMP port unreachable ends it early.
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    cfg[0].1 = format!("127.0.0.1:{port}");
    let t = Instant::now();
    let outcome = deliver(HOP, "k", sample_bsmtp(10), &cfg).unwrap();
    eprintln!("closed port: {outcome:?} in {:?}", t.elapsed());
    assert!(
        matches!(outcome, Outcome::TemporaryFailure(_)),
        "{outcome:?}"
    );
    assert!(t.elapsed() < Duration::from_millis(3000));
}

#[test]
fn wrong_ca_is_a_clear_tls_error() {
    let Some(peer) = Peer::start(None) else {
        return;
    };
    let mut cfg = config(&peer, &[]);
    cfg[1].1 = peer.other_ca_pem.clone();
    let outcome = deliver(HOP, "k", sample_bsmtp(10), &cfg).unwrap();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("TLS handshake") && msg.contains("UnknownIssuer"),
        "{msg}"
    );
    assert!(peer.requests().is_empty());

    // A server name the certificate does not carry.
    let mut cfg = config(&peer, &[("server-name", "mars.example")]);
    cfg[1].1 = peer.ca_pem.clone();
    let outcome = deliver(HOP, "k", sample_bsmtp(10), &cfg).unwrap();
    let Outcome::TemporaryFailure(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(
        msg.contains("TLS handshake") && msg.contains("not valid for name"),
        "{msg}"
    );
}

/// A UDP relay that delays every datagram by `one_way` in each direction:
/// a stand-in for a long-delay link. Returns the address to connect to.
fn delay_relay(server: std::net::SocketAddr, one_way: Duration) -> std::net::SocketAddr {
    use std::net::UdpSocket;
    use std::sync::mpsc;
    let front = UdpSocket::bind("127.0.0.1:0").unwrap();
    let back = UdpSocket::bind("127.0.0.1:0").unwrap();
    back.connect(server).unwrap();
    let addr = front.local_addr().unwrap();
    let client = std::sync::Arc::new(std::sync::Mutex::new(None));
    // (due, bytes, towards the server?)
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>, bool)>();
    {
        let (front, tx, client) = (front.try_clone().unwrap(), tx.clone(), client.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while let Ok((n, from)) = front.recv_from(&mut buf) {
                *client.lock().unwrap() = Some(from);
                let _ = tx.send((Instant::now() + one_way, buf[..n].to_vec(), true));
            }
        });
    }
    {
        let back = back.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65535];
            while let Ok(n) = back.recv(&mut buf) {
                if tx
                    .send((Instant::now() + one_way, buf[..n].to_vec(), false))
                    .is_err()
                {
                    break;
                }
            }
        });
    }
    std::thread::spawn(move || {
        // Constant delay keeps the queue in order.
        while let Ok((due, bytes, to_server)) = rx.recv() {
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
            if to_server {
                let _ = back.send(&bytes);
            } else if let Some(c) = *client.lock().unwrap() {
                let _ = front.send_to(&bytes, c);
            }
        }
    });
    addr
}

#[test]
fn long_delay_link_one_rtt_then_zero_rtt() {
    let Some(peer) = Peer::start(None) else {
        return;
    };
    let one_way = Duration::from_millis(400);
    let relay = delay_relay(peer.addr(), one_way);
    let rtt = one_way * 2;
    let mut cfg = config(
        &peer,
        &[
            ("initial-rtt-ms", "800"),
            ("idle-timeout-ms", "60000"),
            ("stream-window", "2000000"),
            ("connection-window", "4000000"),
            ("initial-window", "1000000"),
        ],
    );
    cfg[0].1 = relay.to_string();
    // A server name of its own so the earlier tests' tickets do not apply.
    let hop = "https://localhost/inboundmail";
    let t = Instant::now();
    let outcome = deliver(hop, "slow-1", sample_bsmtp(200_000), &cfg).unwrap();
    let first = t.elapsed();
    eprintln!("RTT {rtt:?}, 200 kB, cold: {first:?}: {outcome:?}");
    assert!(matches!(outcome, Outcome::Delivered(_)), "{outcome:?}");
    // Handshake (1 RTT) + request/response (1 RTT), with a 1 MB initial
    // window the 200 kB need no extra round trips.
    assert!(
        first >= rtt * 2 && first < rtt * 2 + Duration::from_millis(700),
        "{first:?}"
    );

    let t = Instant::now();
    let outcome = deliver(hop, "slow-2", sample_bsmtp(200_000), &cfg).unwrap();
    let second = t.elapsed();
    eprintln!("RTT {rtt:?}, 200 kB, resumed: {second:?}: {outcome:?}");
    let Outcome::Delivered(msg) = &outcome else {
        panic!("{outcome:?}")
    };
    assert!(msg.contains("0-RTT"), "{msg}");
    // 0-RTT: the request rides with the first flight; one round trip.
    assert!(
        second >= rtt && second < rtt + Duration::from_millis(700),
        "{second:?}"
    );
    assert_eq!(peer.requests().len(), 2);
}
