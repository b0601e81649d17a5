//! Crash safety of the Earth gateway: `deepmail gateway` processes on
//! loopback, the Earth one killed with SIGKILL at random moments while
//! 1,000 messages flow in by SMTP, and restarted on the same spool. After
//! the last restart every message the gateway acknowledged with 250 must
//! reach the Moon MTA (an in-test SMTP sink) exactly once, byte for byte.
//!
//! The one duplicate SMTP itself allows is counted, not hidden: when the
//! gateway dies after spooling a message but before its 250 reached the
//! client, the client sends the message again, and both copies were
//! accepted. Such messages are the only ones allowed a second delivery,
//! and the test prints how many there were.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deepmail_gateway::TestPki;
use deepmail_smtp::client::{RelayConfig, SmtpClient};

const MESSAGES: usize = 1000;

/// Kills the gateways even when an assertion fails.
struct KillOnDrop(Vec<Arc<Mutex<Child>>>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for child in &self.0 {
            let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_gateway(config: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    common::deepmail()
        .args(["gateway", "--config"])
        .arg(config)
        .args(["--log-level", "warn"])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("deepmail gateway starts")
}

/// xorshift: repeatable randomness without a crate.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn message(i: usize, seed: &mut u64) -> Vec<u8> {
    let mut body = String::new();
    for _ in 0..(next(seed) % 40 + 1) {
        body.push_str(&format!("{:016x} line of message {i}\r\n", next(seed)));
    }
    format!("Message-ID: <crash-{i}@earth.example>\r\nX-Seq: {i}\r\nSubject: crash test {i}\r\n\r\n.dot line\r\n{body}")
        .into_bytes()
}

#[test]
fn earth_gateway_killed_at_random_moments_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(&["localhost".into()], "crash").unwrap();
    pki.write_to(&dir.path().join("certs")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // The Moon MTA.
    let (sink, sink_addr) = common::start_sink(&runtime);

    let moon_port = common::free_port();
    let earth_port = common::free_port();
    let moon_toml = dir.path().join("moon.toml");
    std::fs::write(
        &moon_toml,
        format!("name = \"gw.moon.example\"\nspool = \"moon\"\n[receive]\nhttps-listen = \"127.0.0.1:{moon_port}\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\n[relay]\nsmtp = \"{sink_addr}\"\ndomains = [\"moon.example\"]\n"),
    )
    .unwrap();
    let earth_toml = dir.path().join("earth.toml");
    std::fs::write(
        &earth_toml,
        format!("name = \"gw.earth.example\"\nspool = \"earth\"\n[smtp]\nlisten = \"127.0.0.1:{earth_port}\"\nrelay-domains = [\"moon.example\"]\n[delivery]\nretry-initial-secs = 0.2\nretry-max-secs = 1\nbatch-max-messages = 20\n[[route]]\ndomain = \"moon.example\"\nuri = \"https://localhost:{moon_port}/inboundmail\"\nca = \"certs/ca.pem\"\n"),
    )
    .unwrap();
    let moon_log = dir.path().join("moon.log");
    let earth_log = dir.path().join("earth.log");
    let moon = Arc::new(Mutex::new(start_gateway(&moon_toml, &moon_log)));
    common::wait_listening(
        SocketAddr::from(([127, 0, 0, 1], moon_port)),
        "the Moon gateway",
    );
    let earth_addr = SocketAddr::from(([127, 0, 0, 1], earth_port));
    let earth = Arc::new(Mutex::new(start_gateway(&earth_toml, &earth_log)));
    let _guard = KillOnDrop(vec![earth.clone(), moon.clone()]);
    common::wait_listening(earth_addr, "the Earth gateway");

    // The killer: SIGKILL at random moments while messages flow.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let kills = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let killer = {
        let (earth, done, kills) = (earth.clone(), done.clone(), kills.clone());
        let (earth_toml, earth_log) = (earth_toml.clone(), earth_log.clone());
        std::thread::spawn(move || {
            let mut seed = 0x9e37_79b9_7f4a_7c15u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(150 + next(&mut seed) % 600));
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let mut child = earth.lock().unwrap();
                child.kill().unwrap(); // SIGKILL
                let _ = child.wait();
                kills.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(next(&mut seed) % 200));
                *child = start_gateway(&earth_toml, &earth_log);
                drop(child);
                common::wait_listening(earth_addr, "the restarted Earth gateway");
            }
        })
    };

    // The sender: every message until a 250; a lost session after the
    // data went out makes that message "ambiguous" (maybe spooled twice).
    let mut seed = 42u64;
    let sent: Vec<Vec<u8>> = (0..MESSAGES).map(|i| message(i, &mut seed)).collect();
    let ambiguous = runtime.block_on(async {
        let mut ambiguous: HashMap<usize, usize> = HashMap::new();
        let config = RelayConfig {
            connect_timeout: Duration::from_secs(2),
            command_timeout: Duration::from_secs(5),
            data_timeout: Duration::from_secs(5),
            ..RelayConfig::new("mta.earth.example")
        };
        let mut client: Option<SmtpClient> = None;
        for (i, content) in sent.iter().enumerate() {
            let envelope = common::envelope("ops@earth.example", "ada@moon.example");
            let deadline = Instant::now() + Duration::from_secs(120);
            loop {
                assert!(Instant::now() < deadline, "message {i} never accepted");
                if client.as_ref().is_none_or(|c| !c.is_usable()) {
                    match SmtpClient::connect(earth_addr, &config).await {
                        Ok(c) => client = Some(c),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(30)).await;
                            continue;
                        }
                    }
                }
                let c = client.as_mut().unwrap();
                match c.send(&envelope, content).await {
                    Ok(d) if d.all_accepted() => break,
                    Ok(d) => {
                        // 4xx/5xx while the gateway stops: retry.
                        assert!(
                            d.data_reply.as_ref().is_none_or(|r| !r.is_permanent()),
                            "message {i} refused for good: {d:?}"
                        );
                        client = None;
                    }
                    Err(_) => {
                        *ambiguous.entry(i).or_default() += 1;
                        client = None;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        ambiguous
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    killer.join().unwrap();
    let kills = kills.load(std::sync::atomic::Ordering::SeqCst);

    // Everything acknowledged must arrive.
    let deadline = Instant::now() + Duration::from_secs(180);
    let by_seq = loop {
        let got = sink.got.lock().unwrap().clone();
        let mut by_seq: HashMap<usize, Vec<Vec<u8>>> = HashMap::new();
        for (_, c) in got {
            let seq: usize = deepmail_gateway::header_value(&c, "x-seq")
                .and_then(|v| v.parse().ok())
                .expect("every delivered message has its X-Seq");
            by_seq.entry(seq).or_default().push(c);
        }
        if by_seq.len() == MESSAGES {
            std::thread::sleep(Duration::from_secs(1));
            break by_seq;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(&earth_log).unwrap_or_default();
            panic!(
                "only {} of {MESSAGES} messages reached the Moon MTA after {kills} kills; Earth log tail:\n{}",
                by_seq.len(),
                &log[log.len().saturating_sub(3000)..]
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let got = sink.got.lock().unwrap().clone();
    let mut duplicates = 0;
    for (seq, copies) in &by_seq {
        for c in copies {
            assert!(c.ends_with(&sent[*seq]), "message {seq} changed in transit");
        }
        if copies.len() > 1 {
            duplicates += copies.len() - 1;
            assert!(
                copies.len() <= 1 + ambiguous.get(seq).copied().unwrap_or(0),
                "message {seq} delivered {} times, but its 250 was never in doubt",
                copies.len()
            );
        }
    }
    eprintln!(
        "crash test: {MESSAGES} messages, {kills} SIGKILLs of the Earth gateway, {} delivered, {} sends in doubt (session lost after DATA), {duplicates} duplicates from those",
        got.len(),
        ambiguous.values().sum::<usize>()
    );
    assert!(
        kills >= 3,
        "the test must kill the gateway several times (did {kills})"
    );
}
