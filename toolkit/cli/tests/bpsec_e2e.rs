//! Bundle integrity end to end (RFC 9172 / RFC 9173 §3), through the
//! `deepmail gateway` binary and its built-in fragmenter plugin:
//!
//! - a Moon gateway with `[bp] require-bib` refuses, before storing
//!   anything, an unsigned bundle and a bundle signed with the wrong key,
//!   and delivers one signed by hardy-bpv7 (an independent BPSec
//!   implementation) with the right key;
//! - an Earth gateway whose bp route has `bib-key-file` signs every
//!   fragment of a 200 KB message, and the Moon gateway takes them all.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use deepmail_smtp::client::{relay, RelayConfig};
use deepmail_tcpcl::{ActiveSession, Event, RefuseReason, SessionConfig};
use hardy_bpv7::bpsec::{key, rfc9173::ScopeFlags, signer};

mod common;

const KEY: &[u8] = b"the key Earth and Moon share....";

/// Sends one bundle over a fresh TCPCLv4 session; returns how the
/// listener answered. Anything else (an I/O error, the session ending)
/// fails the test with what the session had seen and the gateway's log
/// (`log`), so a failure under load says where it happened.
fn send_bundle(
    addr: SocketAddr,
    bundle: Vec<u8>,
    log: &std::path::Path,
) -> Result<(), RefuseReason> {
    let mut seen: Vec<String> = Vec::new();
    let fail = |what: String, seen: &[String]| -> ! {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        panic!("{what}\nthe client saw: {seen:?}\nthe gateway's log:\n{log}")
    };
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| fail(format!("connect: {e}"), &seen));
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let now = Instant::now();
    let mut s = ActiveSession::new(SessionConfig::new("ipn:1.0"), now).unwrap();
    let mut bundle = Some(bundle);
    let mut sent = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut buf = vec![0; 64 << 10];
    loop {
        if Instant::now() >= deadline {
            fail("no answer to the transfer".into(), &seen);
        }
        while let Some(out) = s.poll_transmit(Instant::now()) {
            stream
                .write_all(&out)
                .unwrap_or_else(|e| fail(format!("write: {e}"), &seen));
        }
        while let Some(e) = s.poll_event() {
            seen.push(format!("{e:?}").chars().take(120).collect());
            match e {
                Event::Established(_) => {
                    sent = Some(s.send_bundle(bundle.take().unwrap()).unwrap());
                }
                Event::TransferAcked(id) if Some(id) == sent => return Ok(()),
                Event::TransferRefused(id, why) if Some(id) == sent => return Err(why),
                Event::SessionTerminated(t) => fail(format!("session ended: {t:?}"), &seen),
                _ => {}
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => fail("the listener closed the connection".into(), &seen),
            Ok(n) => s.handle_input(Instant::now(), &buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => fail(format!("read: {e}"), &seen),
        }
    }
}

/// A bundle from `source` to ipn:2.25 carrying one message as Batch SMTP,
/// unsigned.
fn mail_bundle(source: &str, seq: u64, subject: &str) -> Vec<u8> {
    let batch = format!(
        "MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\nSubject: {subject}\r\n\r\nhello\r\n.\r\n"
    );
    let spec = deepmail_bundle::BundleSpec {
        source: source.parse().unwrap(),
        destination: "ipn:2.25".parse().unwrap(),
        report_to: "dtn:none".parse().unwrap(),
        creation_time: deepmail_bundle::dtn_time::from_unix_ms(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        ),
        sequence_number: seq,
        lifetime_ms: 3_600_000,
        crc: deepmail_bundle::CrcType::Crc32c,
        block_crc: deepmail_bundle::CrcType::Crc32c,
        must_not_fragment: false,
    };
    deepmail_bundle::build(batch.as_bytes(), &spec).unwrap()
}

/// `bundle` with a BIB added by hardy-bpv7 (HMAC-SHA384, default scope:
/// primary block and both headers), as security source `source`.
fn hardy_signed(bundle: &[u8], source: &str, secret: &[u8]) -> Vec<u8> {
    let k: key::Key = serde_json::from_value(serde_json::json!({
        "kid": source, "kty": "oct", "alg": "HS384", "key_ops": ["sign", "verify"],
        "k": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    }))
    .unwrap();
    let parsed =
        hardy_bpv7::bundle::ParsedBundle::parse_with_keys(bundle, &key::KeySet::new(vec![]))
            .unwrap();
    signer::Signer::new(&parsed.bundle, bundle)
        .sign_block(
            1,
            signer::Context::HMAC_SHA2(ScopeFlags::default()),
            source.parse().unwrap(),
            &k,
        )
        .map_err(|(_, e)| e)
        .unwrap()
        .rebuild()
        .unwrap()
        .into_vec()
}

/// Starts a Moon gateway that requires BIBs and holds the key of
/// ipn:1.0, relaying to `sink`; returns it and its TCPCL address.
fn start_moon(dir: &std::path::Path, sink: SocketAddr) -> (std::process::Child, SocketAddr) {
    std::fs::write(dir.join("earth-moon.key"), KEY).unwrap();
    let port = common::free_port();
    let toml = format!(
        "name = \"gw.moon.example\"\nspool = \"spool-moon\"\n[bp]\nnode-id = \"ipn:2.0\"\n\
         listen = \"127.0.0.1:{port}\"\nendpoints = [\"ipn:2.25\"]\nrequire-bib = true\n\
         [bp.bib-keys]\n\"ipn:1.0\" = \"earth-moon.key\"\n\
         [relay]\nsmtp = \"{sink}\"\ndomains = [\"moon.example\"]\n"
    );
    let moon = common::spawn_gateway(dir, "moon", toml);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    common::wait_listening(addr, "the Moon's TCPCL listener");
    (moon, addr)
}

fn spool_files(dir: &std::path::Path) -> usize {
    fn walk(p: &std::path::Path) -> usize {
        std::fs::read_dir(p)
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(dir)
}

#[test]
fn a_gateway_requiring_bibs_refuses_unsigned_and_wrongly_signed_bundles_and_takes_hardys() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sink, sink_addr) = common::start_sink(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let (mut moon, addr) = start_moon(dir.path(), sink_addr);
    let spool = dir.path().join("spool-moon");
    let log = dir.path().join("moon.log");
    let before = spool_files(&spool);

    // Unsigned: refused, nothing stored.
    let unsigned = mail_bundle("ipn:1.0", 1, "unsigned");
    assert_eq!(
        send_bundle(addr, unsigned.clone(), &log),
        Err(RefuseReason::NotAcceptable)
    );
    // Signed by hardy with a key the Moon does not hold for ipn:1.0.
    let wrong = hardy_signed(
        &mail_bundle("ipn:1.0", 2, "wrong key"),
        "ipn:1.0",
        b"not the key the Moon holds......",
    );
    assert_eq!(
        send_bundle(addr, wrong, &log),
        Err(RefuseReason::NotAcceptable)
    );
    // Signed by hardy as a source the Moon has no key for.
    let stranger = hardy_signed(&mail_bundle("ipn:9.0", 3, "stranger"), "ipn:9.0", KEY);
    assert_eq!(
        send_bundle(addr, stranger, &log),
        Err(RefuseReason::NotAcceptable)
    );
    assert_eq!(
        spool_files(&spool),
        before,
        "a refused bundle left files in the spool"
    );

    // Signed by hardy with the right key: delivered.
    let good = hardy_signed(
        &mail_bundle("ipn:1.0", 4, "signed by hardy"),
        "ipn:1.0",
        KEY,
    );
    assert_eq!(send_bundle(addr, good, &log), Ok(()));
    common::wait_for("the hardy-signed message at the MTA", 30, || {
        !sink.got.lock().unwrap().is_empty()
    });
    let got = sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    assert!(String::from_utf8_lossy(&got[0].1).contains("Subject: signed by hardy"));

    let metrics_log = std::fs::read_to_string(dir.path().join("moon.log")).unwrap();
    assert_eq!(
        metrics_log.matches("block integrity check failed").count(),
        3,
        "{metrics_log}"
    );
    assert!(metrics_log.contains("bib-missing"), "{metrics_log}");
    assert!(metrics_log.contains("bib-mismatch"), "{metrics_log}");
    assert!(metrics_log.contains("bib-unknown-key"), "{metrics_log}");
    let _ = moon.kill();
    let _ = moon.wait();
}

#[test]
fn an_earth_gateway_signs_every_fragment_and_the_moon_takes_them() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (sink, sink_addr) = common::start_sink(&runtime);
    let dir = tempfile::tempdir().unwrap();
    let (mut moon, moon_addr) = start_moon(dir.path(), sink_addr);
    let port = moon_addr.port();
    let earth_smtp = common::free_port();
    let mut earth = common::spawn_gateway(
        dir.path(),
        "earth",
        format!(
            "name = \"gw.earth.example\"\nspool = \"spool-earth\"\n[smtp]\nlisten = \"127.0.0.1:{earth_smtp}\"\n\
             relay-domains = [\"moon.example\"]\n[bp]\nnode-id = \"ipn:1.0\"\n[delivery]\nretry-initial-secs = 1\n\
             [[route]]\ndomain = \"moon.example\"\ntransport = \"bp\"\ntcpcl = \"127.0.0.1:{port}\"\n\
             destination = \"ipn:2.25\"\nmtu = 4000\nbib-key-file = \"earth-moon.key\"\nbib-variant = \"hmac-sha256\"\n"
        ),
    );
    let earth_addr = SocketAddr::from(([127, 0, 0, 1], earth_smtp));
    common::wait_listening(earth_addr, "the Earth gateway");
    let mut body = b"Subject: 200 KB, every fragment signed\r\n\r\n".to_vec();
    while body.len() < 200_000 {
        body.extend_from_slice(format!("line {:08}\r\n", body.len()).as_bytes());
    }
    let envelope = common::envelope("ops@earth.example", "ada@moon.example");
    let d = runtime
        .block_on(relay(
            earth_addr,
            &RelayConfig::new("mta.earth.example"),
            &envelope,
            &body,
        ))
        .unwrap();
    assert!(d.all_accepted(), "{d:?}");
    common::wait_for("the message at the Moon's MTA", 60, || {
        !sink.got.lock().unwrap().is_empty()
    });
    let (_, content) = sink.got.lock().unwrap()[0].clone();
    assert!(content.ends_with(&body), "delivered byte for byte");
    let moon_log = std::fs::read_to_string(dir.path().join("moon.log")).unwrap();
    assert!(
        !moon_log.contains("block integrity check failed"),
        "{moon_log}"
    );
    let fragments: usize = moon_log
        .lines()
        .find(|l| l.contains("ADU reassembled"))
        .and_then(|l| l.split("fragments=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reassembly in the Moon log:\n{moon_log}"));
    assert!(
        fragments >= 50,
        "200 KB at a 4000-byte MTU: {fragments} fragments"
    );
    for g in [&mut earth, &mut moon] {
        let _ = g.kill();
        let _ = g.wait();
    }
}
