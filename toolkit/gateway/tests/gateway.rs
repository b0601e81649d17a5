//! Two gateways on loopback, Earth and Moon, each with an in-test SMTP sink
//! standing in for its MTA: mail crosses by SMTP -> queue -> Batch SMTP
//! over HTTPS -> spool -> SMTP, a refused recipient comes back as a DSN
//! the same way, retransmissions are not relayed twice, mail that cannot
//! leave expires into a DSN, the gateway is no open relay, and a restart
//! delivers what was queued. (The same flow with real Exim and Dovecot is
//! in toolkit/cli/tests/mailstack_e2e.rs.)

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use deepmail_gateway::{GatewayConfig, RunningGateway, TestPki};
use deepmail_host::{Host, HostConfig};
use deepmail_smtp::client::{relay, RelayConfig};
use deepmail_smtp::serve::{Handler, ServerConfig, SessionInfo};
use deepmail_smtp::{Envelope, Param, Recipient, Reply};
use tokio::sync::watch;

fn host() -> Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| {
        Host::new(HostConfig {
            cache_dir: Some(
                std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache"),
            ),
            call_timeout: Duration::from_secs(60),
            ..HostConfig::default()
        })
        .unwrap()
    })
    .clone()
}

/// An MTA stand-in: accepts everyone except `refuse`, remembers messages.
#[derive(Default)]
struct Sink {
    refuse: Vec<String>,
    got: Mutex<Vec<(Envelope, Vec<u8>)>>,
}

impl Handler for Sink {
    async fn mail_from(&self, _: &SessionInfo, _: &str, _: &[Param]) -> Reply {
        Reply::new(250, Some("2.1.0"), "ok")
    }
    async fn rcpt_to(&self, _: &SessionInfo, _: &Envelope, r: &Recipient) -> Reply {
        if self.refuse.contains(&r.mailbox) {
            Reply::new(
                550,
                Some("5.1.1"),
                format!("<{}>: no such user here", r.mailbox),
            )
        } else {
            Reply::new(250, Some("2.1.5"), "ok")
        }
    }
    async fn message(&self, _: &SessionInfo, e: Envelope, c: Vec<u8>) -> Reply {
        self.got.lock().unwrap().push((e, c));
        Reply::new(250, Some("2.0.0"), "stored")
    }
}

struct SinkServer {
    addr: SocketAddr,
    sink: Arc<Sink>,
    _stop: watch::Sender<bool>,
}

async fn sink(refuse: &[&str]) -> SinkServer {
    let sink = Arc::new(Sink {
        refuse: refuse.iter().map(|s| s.to_string()).collect(),
        ..Sink::default()
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, mut rx) = watch::channel(false);
    let s = sink.clone();
    tokio::spawn(async move {
        deepmail_smtp::serve::serve(
            listener,
            Arc::new(ServerConfig::new("mta.test")),
            s,
            async move {
                let _ = rx.wait_for(|v| *v).await;
            },
        )
        .await;
    });
    SinkServer {
        addr,
        sink,
        _stop: stop,
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn write_pki(dir: &Path) {
    let pki = TestPki::generate(&["localhost".into()], "gateway").unwrap();
    pki.write_to(&dir.join("certs")).unwrap();
}

async fn start(dir: &Path, name: &str, toml: &str) -> RunningGateway {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, toml).unwrap();
    let config = GatewayConfig::load(&path).unwrap();
    RunningGateway::start(config, host()).await.unwrap()
}

async fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Messages in the queue of the spool at `spool`, as a tool reads it.
fn queued(spool: &Path) -> usize {
    deepmail_gateway::Queue::open(spool, false)
        .unwrap()
        .entries()
        .unwrap()
        .len()
}

fn envelope(from: &str, to: &[&str]) -> Envelope {
    Envelope {
        reverse_path: from.into(),
        mail_params: vec![],
        recipients: to
            .iter()
            .map(|m| Recipient {
                mailbox: m.to_string(),
                params: vec![],
            })
            .collect(),
    }
}

const MESSAGE: &[u8] = b"From: ops@earth.example\r\nTo: ada@moon.example\r\nSubject: hello\r\nMessage-ID: <t1@earth.example>\r\n\r\n.a dot line\r\nGr\xc3\xbc\xc3\x9fe\r\n";

fn earth_toml(moon_port: u16, earth_mta: SocketAddr, extra: &str) -> String {
    format!(
        r#"name = "gw.earth.example"
spool = "earth-spool"
[smtp]
listen = "127.0.0.1:0"
relay-domains = ["moon.example"]
[receive]
https-listen = "127.0.0.1:0"
cert = "certs/server.pem"
key = "certs/server.key"
[relay]
smtp = "{earth_mta}"
domains = ["earth.example"]
[delivery]
retry-initial-secs = 0.2
retry-max-secs = 1
{extra}
[[route]]
domain = "moon.example"
uri = "https://localhost:{moon_port}/inboundmail"
ca = "certs/ca.pem"
"#
    )
}

fn moon_toml(port: u16, moon_mta: SocketAddr, earth_port: u16) -> String {
    format!(
        r#"name = "gw.moon.example"
spool = "moon-spool"
[receive]
https-listen = "127.0.0.1:{port}"
cert = "certs/server.pem"
key = "certs/server.key"
[relay]
smtp = "{moon_mta}"
domains = ["moon.example"]
[delivery]
retry-initial-secs = 0.2
[[route]]
domain = "earth.example"
uri = "https://localhost:{earth_port}/inboundmail"
ca = "certs/ca.pem"
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earth_to_moon_with_a_dsn_back_for_the_unknown_recipient() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&["nobody@moon.example"]).await;
    let moon_port = free_port();
    // Earth first (its HTTPS port is the Moon's route back).
    let earth = start(
        dir.path(),
        "earth",
        &earth_toml(moon_port, earth_mta.addr, ""),
    )
    .await;
    let earth_https = earth.https_addr.unwrap().port();
    let moon = start(
        dir.path(),
        "moon",
        &moon_toml(moon_port, moon_mta.addr, earth_https),
    )
    .await;

    let d = relay(
        earth.smtp_addr.unwrap(),
        &RelayConfig::new("mta.earth.example"),
        &envelope(
            "ops@earth.example",
            &["ada@moon.example", "nobody@moon.example"],
        ),
        MESSAGE,
    )
    .await
    .unwrap();
    assert!(d.all_accepted(), "{d:?}");

    wait_for("the Moon MTA to get the message", 30, || {
        !moon_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    let (env, content) = moon_mta.sink.got.lock().unwrap()[0].clone();
    assert_eq!(env.reverse_path, "ops@earth.example");
    assert_eq!(env.recipients.len(), 1, "only ada is accepted");
    assert_eq!(env.recipients[0].mailbox, "ada@moon.example");
    assert!(
        content.starts_with(b"Received: from mta.earth.example"),
        "trace field added"
    );
    assert!(content.ends_with(MESSAGE), "content intact");

    wait_for("the DSN in the Earth sender's mailbox", 30, || {
        !earth_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    let (env, dsn) = earth_mta.sink.got.lock().unwrap()[0].clone();
    assert_eq!(env.reverse_path, "", "DSNs have the null reverse path");
    assert_eq!(env.recipients[0].mailbox, "ops@earth.example");
    let parsed = deepmail_smtp::dsn::parse_dsn(&dsn).unwrap();
    assert_eq!(parsed.recipients.len(), 1);
    assert!(
        parsed.recipients[0]
            .final_recipient
            .ends_with("nobody@moon.example"),
        "{:?}",
        parsed.recipients[0]
    );
    assert_eq!(parsed.recipients[0].status, "5.1.1");
    assert_eq!(
        parsed
            .reporting_mta
            .as_deref()
            .map(|m| m.contains("gw.moon.example")),
        Some(true)
    );
    assert!(String::from_utf8_lossy(&dsn).contains("no such user here"));

    // Both queues drain; the Moon keeps the batch id for dedupe.
    wait_for("Earth's queue to drain", 30, || {
        queued(&dir.path().join("earth-spool")) == 0
    })
    .await;
    wait_for("the Moon's batch in relayed/", 30, || {
        std::fs::read_dir(dir.path().join("moon-spool/relayed"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 1
    })
    .await;
    assert_eq!(
        moon.metrics
            .relay_recipients_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );

    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
}

/// An HTTP/2 connection to `gateway`'s receiver, trusting the test CA in
/// `dir/certs`.
async fn https_to(dir: &Path, gateway: &RunningGateway) -> deepmail_gateway::Connection {
    let ca = deepmail_gateway::load_certs(&dir.join("certs/ca.pem")).unwrap();
    let tls = deepmail_gateway::client_config(&ca, None, &[]).unwrap();
    deepmail_gateway::Connection::connect(
        gateway.https_addr.unwrap(),
        "localhost",
        &tls,
        deepmail_gateway::HttpVersion::Http2,
    )
    .await
    .unwrap()
}

/// A peer may put any recipient in a batch; the Moon relays only its
/// `[relay] domains` to the local MTA and returns the rest in a DSN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_received_recipient_outside_the_relay_domains_is_returned_not_relayed() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let moon_mta = sink(&[]).await;
    let port = free_port();
    let moon = start(dir.path(), "moon", &moon_toml(port, moon_mta.addr, 9)).await;
    let mut conn = https_to(dir.path(), &moon).await;
    let batch = b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\n\
RCPT TO:<victim@evil.example>\r\nDATA\r\nSubject: relay me\r\n\r\nbody\r\n.\r\n";
    let req = deepmail_gateway::batch_request(
        &format!("https://localhost:{port}/inboundmail"),
        batch.to_vec(),
        Some("open-relay-probe"),
        None,
    )
    .unwrap();
    assert_eq!(conn.send(req).await.unwrap().status(), 200);
    wait_for("the relay", 30, || {
        dir.path()
            .join("moon-spool/relayed/open-relay-probe")
            .is_dir()
    })
    .await;
    let got = moon_mta.sink.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1);
    let rcpts: Vec<&str> = got[0]
        .0
        .recipients
        .iter()
        .map(|r| r.mailbox.as_str())
        .collect();
    assert_eq!(
        rcpts,
        ["ada@moon.example"],
        "only the relay domain reached the MTA"
    );
    // The refused recipient goes back to the sender as a DSN, queued for Earth.
    let queue = deepmail_gateway::Queue::open(&dir.path().join("moon-spool"), false).unwrap();
    let snapshot = queue.snapshot().unwrap();
    let dsn = snapshot
        .entries
        .values()
        .find(|e| e.envelope.reverse_path.is_empty())
        .expect("a DSN in the Moon's queue");
    assert_eq!(dsn.envelope.forward_paths[0].mailbox, "ops@earth.example");
    let text = String::from_utf8(queue.content(&dsn.id).unwrap()).unwrap();
    assert!(
        text.contains("victim@evil.example") && text.contains("5.7.1"),
        "{text}"
    );
    moon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retransmitted_batch_is_relayed_once_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let moon_mta = sink(&[]).await;
    let port = free_port();
    let toml = moon_toml(port, moon_mta.addr, 9);
    let batch = b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\nSubject: once\r\n\r\nbody\r\n.\r\n";
    for round in 0..2 {
        let moon = start(dir.path(), "moon", &toml).await;
        let mut conn = https_to(dir.path(), &moon).await;
        let req = deepmail_gateway::batch_request(
            &format!("https://localhost:{port}/inboundmail"),
            batch.to_vec(),
            Some("retransmitted-batch-1"),
            None,
        )
        .unwrap();
        let resp = conn.send(req).await.unwrap();
        assert_eq!(resp.status(), 200, "round {round}");
        wait_for("the relay", 30, || {
            dir.path()
                .join("moon-spool/relayed/retransmitted-batch-1")
                .is_dir()
        })
        .await;
        moon.shutdown(Duration::from_secs(5)).await;
    }
    assert_eq!(moon_mta.sink.got.lock().unwrap().len(), 1, "relayed once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_open_relay_and_expired_mail_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    // The Moon is unreachable (nothing listens on the port) and messages
    // may wait half a second.
    let dead = free_port();
    let earth = start(
        dir.path(),
        "earth",
        &earth_toml(
            dead,
            earth_mta.addr,
            "max-age-hours = 0.00015\ntimeout-secs = 2",
        ),
    )
    .await;
    let d = relay(
        earth.smtp_addr.unwrap(),
        &RelayConfig::new("mta.earth.example"),
        &envelope(
            "ops@earth.example",
            &["ada@moon.example", "eve@evil.example"],
        ),
        MESSAGE,
    )
    .await
    .unwrap();
    let refused: Vec<_> = d
        .refused()
        .map(|r| {
            (
                r.recipient.mailbox.clone(),
                r.reply.code,
                r.reply.enhanced.clone(),
            )
        })
        .collect();
    assert_eq!(
        refused,
        vec![(
            "eve@evil.example".to_string(),
            550,
            Some("5.7.1".to_string())
        )]
    );

    wait_for("the expiry DSN", 60, || {
        !earth_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    let (env, dsn) = earth_mta.sink.got.lock().unwrap()[0].clone();
    assert_eq!(env.recipients[0].mailbox, "ops@earth.example");
    let parsed = deepmail_smtp::dsn::parse_dsn(&dsn).unwrap();
    assert_eq!(parsed.recipients[0].status, "4.4.7");
    earth.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_mail_survives_a_restart_and_is_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon_port = free_port();
    let earth = start(
        dir.path(),
        "earth",
        &earth_toml(moon_port, earth_mta.addr, ""),
    )
    .await;
    for i in 0..5 {
        let mut msg = format!("Subject: {i}\r\n\r\n").into_bytes();
        msg.extend_from_slice(MESSAGE);
        let d = relay(
            earth.smtp_addr.unwrap(),
            &RelayConfig::new("mta"),
            &envelope("ops@earth.example", &["ada@moon.example"]),
            &msg,
        )
        .await
        .unwrap();
        assert!(d.all_accepted());
    }
    // The Moon is down: the batches wait. Stop Earth, bring the Moon up,
    // start Earth again on the same spool.
    tokio::time::sleep(Duration::from_millis(300)).await;
    earth.shutdown(Duration::from_secs(5)).await;
    let moon = start(dir.path(), "moon", &moon_toml(moon_port, moon_mta.addr, 9)).await;
    let earth = start(
        dir.path(),
        "earth",
        &earth_toml(moon_port, earth_mta.addr, ""),
    )
    .await;
    wait_for("all five on the Moon", 30, || {
        moon_mta.sink.got.lock().unwrap().len() >= 5
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = moon_mta.sink.got.lock().unwrap().clone();
    let mut subjects: Vec<String> = got
        .iter()
        .map(|(_, c)| deepmail_gateway::header_value(c, "subject").unwrap())
        .collect();
    subjects.sort();
    assert_eq!(subjects, ["0", "1", "2", "3", "4"]);
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
}

/// What the codec plugin can never encode gets 554 at end of DATA instead
/// of `250 queued` and a bounce later: the gateway asks the codec.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_the_codec_cannot_carry_is_refused_at_end_of_data() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let earth = start(dir.path(), "earth", &earth_toml(9, earth_mta.addr, "")).await;
    let smtp = earth.smtp_addr.unwrap();
    let to_ada = envelope("ops@earth.example", &["ada@moon.example"]);
    let config = RelayConfig::new("mta.earth.example");
    let long_body_line = [&b"Subject: long\r\n\r\n"[..], &vec![b'y'; 10_000], b"\r\n"].concat();
    let long_header = [
        &b"X-Long: "[..],
        &vec![b'h'; 200_000],
        b"\r\nSubject: h\r\n\r\nbody\r\n",
    ]
    .concat();
    let nul = b"Subject: nul\r\n\r\nhel\x00lo\r\n".to_vec();
    for (what, content) in [
        ("a 10,000-octet body line", long_body_line),
        ("a 200 KB header line", long_header),
        ("a NUL in the content", nul),
    ] {
        let d = relay(smtp, &config, &to_ada, &content).await.unwrap();
        let reply = d.data_reply.clone().unwrap();
        assert_eq!(
            (reply.code, reply.enhanced.as_deref()),
            (554, Some("5.6.0")),
            "{what}: {reply}"
        );
        assert!(
            reply
                .to_string()
                .contains("cannot be carried across the link"),
            "{what}: {reply}"
        );
    }
    // An ordinary message still goes through.
    let d = relay(smtp, &config, &to_ada, b"Subject: fine\r\n\r\nhello\r\n")
        .await
        .unwrap();
    assert!(d.all_accepted(), "{d:?}");
    assert_eq!(
        queued(&dir.path().join("earth-spool")),
        1,
        "only the ordinary message was queued"
    );
    earth.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_refuses_spam_at_smtp_time_before_anything_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let earth = start(
        dir.path(),
        "earth",
        &format!(
            "{}\n[policy]\nauthserv-id = \"mx.earth.example\"\nmax-message-bytes = \"64KiB\"\n",
            earth_toml(9, earth_mta.addr, "")
        ),
    )
    .await;
    let smtp = earth.smtp_addr.unwrap();
    let to_ada = envelope("ops@earth.example", &["ada@moon.example"]);
    let config = RelayConfig::new("mta.earth.example");

    // DMARC failed, says the Earth MTA (the trusted authserv-id): 550 at DATA.
    let spam = b"Authentication-Results: mx.earth.example; dmarc=fail (p=reject) header.from=earth.example\r\nFrom: ceo@earth.example\r\nSubject: urgent wire transfer\r\n\r\npay now\r\n";
    let d = relay(smtp, &config, &to_ada, spam).await.unwrap();
    let reply = d.data_reply.clone().unwrap();
    assert_eq!(
        (reply.code, reply.enhanced.as_deref()),
        (550, Some("5.7.1")),
        "{reply}"
    );
    assert!(reply.to_string().contains("dmarc"), "{reply}");

    // The same header from someone else's authserv-id proves nothing: accepted.
    let forged = b"Authentication-Results: mx.evil.example; dmarc=fail header.from=earth.example\r\nSubject: hi\r\n\r\nhello\r\n";
    let d = relay(smtp, &config, &to_ada, forged).await.unwrap();
    assert!(d.all_accepted(), "{d:?}");

    // Too big: the client declares SIZE=, the policy refuses at MAIL (552 5.3.4).
    let big = [&b"Subject: big\r\n\r\n"[..], &vec![b'x'; 70_000], b"\r\n"].concat();
    let e = relay(smtp, &config, &to_ada, &big).await.unwrap_err();
    let reply = e.reply().unwrap();
    assert_eq!(
        (reply.code, reply.enhanced.as_deref()),
        (552, Some("5.3.4")),
        "{reply}"
    );

    // Only the forged-header message was queued.
    assert_eq!(queued(&dir.path().join("earth-spool")), 1);
    assert_eq!(
        earth
            .metrics
            .smtp_messages_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    earth.shutdown(Duration::from_secs(5)).await;
}

/// A Moon gateway that is a BP node (`ipn:2.0`, mail for `ipn:2.25`)
/// listening for TCPCL on `listen` and relaying to `moon_mta`.
fn bp_moon_toml(listen: &str, moon_mta: SocketAddr) -> String {
    format!(
        "name = \"gw.moon.example\"\nspool = \"moon-spool\"\n[bp]\nnode-id = \"ipn:2.0\"\nlisten = \"{listen}\"\nendpoints = [\"ipn:2.25\"]\n[relay]\nsmtp = \"{moon_mta}\"\ndomains = [\"moon.example\"]\n"
    )
}

fn bp_earth_toml(tcpcl: SocketAddr, earth_mta: SocketAddr, destination: &str) -> String {
    format!(
        r#"name = "gw.earth.example"
spool = "earth-spool"
[smtp]
listen = "127.0.0.1:0"
relay-domains = ["moon.example"]
[relay]
smtp = "{earth_mta}"
domains = ["earth.example"]
[bp]
node-id = "ipn:1.0"
[delivery]
retry-initial-secs = 0.2
[[route]]
domain = "moon.example"
transport = "bp"
tcpcl = "{tcpcl}"
destination = "{destination}"
mtu = 65536
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bp_route_fragments_a_3_mb_message_and_the_moon_reassembles_it() {
    let dir = tempfile::tempdir().unwrap();
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon = start(
        dir.path(),
        "moon",
        &bp_moon_toml("127.0.0.1:0", moon_mta.addr),
    )
    .await;
    let tcpcl = moon.tcpcl_addr.unwrap();
    let earth = start(
        dir.path(),
        "earth",
        &bp_earth_toml(tcpcl, earth_mta.addr, "ipn:2.25"),
    )
    .await;

    let mut big = b"From: ops@earth.example\r\nSubject: telemetry\r\n\r\n".to_vec();
    let mut state = 1u64;
    while big.len() < 3 << 20 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        big.extend_from_slice(
            format!(
                "{:016x}{:016x}{:016x}{:016x}\r\n",
                state,
                state >> 3,
                state >> 7,
                state >> 11
            )
            .as_bytes(),
        );
    }
    let d = relay(
        earth.smtp_addr.unwrap(),
        &RelayConfig::new("mta"),
        &envelope("ops@earth.example", &["ada@moon.example"]),
        &big,
    )
    .await
    .unwrap();
    assert!(d.all_accepted(), "{d:?}");
    wait_for("the 3 MB message on the Moon", 60, || {
        !moon_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    let (env, content) = moon_mta.sink.got.lock().unwrap()[0].clone();
    assert_eq!(env.recipients[0].mailbox, "ada@moon.example");
    assert!(content.ends_with(&big), "reassembled byte for byte");
    // The sink records the message before its 250; the batch moves to
    // relayed/ after it.
    wait_for("the batch in relayed/", 30, || {
        std::fs::read_dir(dir.path().join("moon-spool/relayed"))
            .map(|d| d.count())
            .unwrap_or(0)
            == 1
    })
    .await;
    let relayed: Vec<String> = std::fs::read_dir(dir.path().join("moon-spool/relayed"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(relayed.len(), 1);
    assert!(relayed[0].starts_with("bp-"), "{relayed:?}");
    let meta = std::fs::read_to_string(
        dir.path()
            .join("moon-spool/relayed")
            .join(&relayed[0])
            .join("meta.json"),
    )
    .unwrap();
    assert!(meta.contains("\"transport\": \"bp\""), "{meta}");
    assert!(
        meta.contains("ipn:1.0"),
        "the source EID is recorded: {meta}"
    );
    // The TCPCL session stays open for the next message, serviced by the
    // gateway once a second, and a second message goes on it.
    wait_for("the kept TCPCL session in the gauge", 10, || {
        earth.metrics.sender_sessions_open.load(Ordering::Relaxed) == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(
        earth.metrics.sender_sessions_open.load(Ordering::Relaxed),
        1
    );
    let d = relay(
        earth.smtp_addr.unwrap(),
        &RelayConfig::new("mta"),
        &envelope("ops@earth.example", &["ada@moon.example"]),
        b"From: ops@earth.example\r\nSubject: second\r\n\r\nsame session\r\n",
    )
    .await
    .unwrap();
    assert!(d.all_accepted(), "{d:?}");
    wait_for("the second message on the Moon", 30, || {
        moon_mta.sink.got.lock().unwrap().len() == 2
    })
    .await;
    assert_eq!(
        earth.metrics.sender_sessions_open.load(Ordering::Relaxed),
        1
    );
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundles_for_another_node_are_refused_and_the_sender_gets_a_dsn() {
    let dir = tempfile::tempdir().unwrap();
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon = start(
        dir.path(),
        "moon",
        &bp_moon_toml("127.0.0.1:0", moon_mta.addr),
    )
    .await;
    let earth = start(
        dir.path(),
        "earth",
        &bp_earth_toml(moon.tcpcl_addr.unwrap(), earth_mta.addr, "ipn:3.25"),
    )
    .await;
    let d = relay(
        earth.smtp_addr.unwrap(),
        &RelayConfig::new("mta"),
        &envelope("ops@earth.example", &["ada@moon.example"]),
        MESSAGE,
    )
    .await
    .unwrap();
    assert!(d.all_accepted());
    wait_for("the DSN", 30, || {
        !earth_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    let (_, dsn) = earth_mta.sink.got.lock().unwrap()[0].clone();
    assert!(
        String::from_utf8_lossy(&dsn)
            .to_lowercase()
            .contains("refuse"),
        "{}",
        String::from_utf8_lossy(&dsn)
    );
    assert!(moon_mta.sink.got.lock().unwrap().is_empty());
    // Never stored on the Moon.
    assert_eq!(
        std::fs::read_dir(dir.path().join("moon-spool/incoming"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("moon-spool/fragments"))
            .unwrap()
            .count(),
        0
    );
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
}

/// A bundle spec from `source` to the Moon's mail endpoint, created now.
fn bundle_spec(source: &str, sequence_number: u64) -> deepmail_bundle::BundleSpec {
    deepmail_bundle::BundleSpec {
        source: source.parse().unwrap(),
        destination: "ipn:2.25".parse().unwrap(),
        report_to: "dtn:none".parse().unwrap(),
        creation_time: deepmail_gateway::dtn_ms(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64,
        ),
        sequence_number,
        lifetime_ms: 3_600_000,
        crc: deepmail_bundle::CrcType::Crc32c,
        block_crc: deepmail_bundle::CrcType::Crc32c,
        must_not_fragment: false,
    }
}

/// The tcpcl-sender plugin (node ipn:1.0), allowed to reach `addr` only.
fn tcpcl_sender(addr: SocketAddr) -> deepmail_host::Sender {
    deepmail_host::Sender::load(
        &host(),
        &deepmail_host::PluginSource::Builtin("tcpcl-sender".into()),
        vec![
            ("node-id".into(), "ipn:1.0".into()),
            ("connect-to".into(), addr.to_string()),
        ],
        Some(deepmail_host::NetworkGrant {
            tcp: true,
            remote: vec![addr],
            ..Default::default()
        }),
    )
    .unwrap()
}

/// Sends `bundles` to `addr` with `sender`; the delivery's outcome.
async fn send_bundles(
    sender: &deepmail_host::Sender,
    addr: SocketAddr,
    bundles: Vec<Vec<u8>>,
) -> deepmail_host::types::Outcome {
    let sender = sender.clone();
    tokio::task::spawn_blocking(move || {
        sender.send(
            &format!("tcpcl://{addr}"),
            "k",
            deepmail_host::types::Payload::Bundles(bundles),
        )
    })
    .await
    .unwrap()
    .unwrap()
}

/// Anyone who reaches the listener can fill the reassembly store with
/// fragments that never complete. That must not make real mail bounce: a
/// full store refuses with NoResources, which the sender takes as "try
/// again later", not with NotAcceptable (permanent, a DSN).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_reassembly_store_is_a_temporary_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let moon_mta = sink(&[]).await;
    let tcpcl_port = free_port();
    let moon_toml = bp_moon_toml(&format!("127.0.0.1:{tcpcl_port}"), moon_mta.addr).replacen(
        "[bp]\n",
        "[bp]\nmax-pending-mib = 1\n",
        1,
    );
    let adu = |n: usize| {
        let mut b =
            b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\n\r\n".to_vec();
        b.resize(n, b'x');
        b.extend_from_slice(b"\r\n.\r\n");
        b
    };
    // The junk: 17 of 25 fragments of 60,000 bytes, 1,020,000 bytes held.
    let junk =
        deepmail_bundle::fragment_adu(&adu(1_500_000), &bundle_spec("ipn:9.0", 1), 60_200).unwrap();
    let real =
        deepmail_bundle::fragment_adu(&adu(200_000), &bundle_spec("ipn:1.0", 2), 60_200).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{tcpcl_port}").parse().unwrap();
    let sender = tcpcl_sender(addr);
    let moon = start(dir.path(), "moon", &moon_toml).await;
    // The real ADU's first fragment is held (acknowledged) first...
    let outcome = send_bundles(&sender, addr, vec![real[0].clone()]).await;
    assert!(
        matches!(outcome, deepmail_host::types::Outcome::Delivered(_)),
        "{outcome:?}"
    );
    // ... then junk fills the store: 16 of its 25 fragments fit.
    let outcome = send_bundles(&sender, addr, junk[..16].to_vec()).await;
    assert!(
        matches!(outcome, deepmail_host::types::Outcome::Delivered(_)),
        "{outcome:?}"
    );
    let outcome = send_bundles(&sender, addr, real[1..].to_vec()).await;
    assert!(
        matches!(outcome, deepmail_host::types::Outcome::TemporaryFailure(_)),
        "a full store must be temporary for the sender, got {outcome:?}"
    );
    // The refused fragments are gone, the acknowledged first one is still
    // held (the real ADU's directory: the one without junk's 25th
    // fragment, i.e. fewer files than junk's 16).
    let real_dir = std::fs::read_dir(dir.path().join("moon-spool/fragments"))
        .unwrap()
        .map(|d| d.unwrap().path())
        .find(|d| std::fs::read_dir(d).unwrap().count() < 16);
    let real_dir = real_dir.filter(|d| {
        std::fs::read_dir(d).unwrap().any(|f| {
            f.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("00000000000000000000-")
        })
    });
    let listing: Vec<Vec<String>> = std::fs::read_dir(dir.path().join("moon-spool/fragments"))
        .unwrap()
        .map(|d| {
            std::fs::read_dir(d.unwrap().path())
                .unwrap()
                .map(|f| f.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    assert!(
        real_dir.is_some(),
        "the real ADU's acknowledged first fragment must stay held: {listing:?}"
    );
    moon.shutdown(Duration::from_secs(5)).await;
}

/// One peer address may hold at most its share of the reassembly store:
/// whoever fills its own share with fragments that never complete is
/// refused for now (NoResources), and another address's ADU still fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_peer_address_cannot_fill_the_reassembly_store() {
    use deepmail_tcpcl::BundleHandler;
    let dir = tempfile::tempdir().unwrap();
    let spool = Arc::new(deepmail_gateway::Spool::open(dir.path().join("spool")).unwrap());
    let config = deepmail_gateway::config::BpConfig {
        node_id: "ipn:2.0".into(),
        listen: None,
        endpoints: vec!["ipn:2.25".into()],
        max_adu_bytes: 2 << 20,
        max_pending_bytes: 4 << 20,
        max_buffer_bytes: 4 << 20,
        accept_primary_without_crc: false,
        handshake_timeout: Duration::from_secs(30),
        max_partial_age: Duration::from_secs(86_400),
        max_pending_per_peer_bytes: 512 << 10,
        require_bib: false,
        bib_keys: vec![],
        accept_compressed: true,
        tls: None,
        require_tls: false,
    };
    let h = host();
    let codec = deepmail_host::Codec::load(
        &h,
        &deepmail_host::PluginSource::Builtin("bsmtp-codec".into()),
    )
    .unwrap();
    let fragmenter = deepmail_host::Fragmenter::load(
        &h,
        &deepmail_host::PluginSource::Builtin("bp7-fragmenter".into()),
    )
    .unwrap();
    let inbound = tokio::task::spawn_blocking(move || {
        deepmail_gateway::BpInbound::new(
            config,
            spool,
            codec,
            fragmenter,
            Arc::new(deepmail_gateway::Metrics::default()),
            Arc::new(tokio::sync::Notify::new()),
        )
    })
    .await
    .unwrap()
    .unwrap();
    let handler = deepmail_gateway::BpHandler(Arc::new(inbound));
    let adu = |n: usize| {
        let mut b =
            b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\n\r\n".to_vec();
        while b.len() < n {
            b.extend_from_slice(b"a line of a message that is held in fragments\r\n");
        }
        b.extend_from_slice(b".\r\n");
        b
    };
    let junk =
        deepmail_bundle::fragment_adu(&adu(1_500_000), &bundle_spec("ipn:9.0", 1), 60_200).unwrap();
    let real =
        deepmail_bundle::fragment_adu(&adu(400_000), &bundle_spec("ipn:1.0", 2), 60_200).unwrap();
    let attacker: SocketAddr = "127.0.0.2:4556".parse().unwrap();
    let earth: SocketAddr = "127.0.0.3:4556".parse().unwrap();
    let mut accepted = 0;
    let mut refused = None;
    for f in junk.iter().take(20) {
        match handler.on_bundle(attacker, "ipn:9.0", f.clone()).await {
            Ok(()) => accepted += 1,
            Err(reason) => {
                refused = Some(reason);
                break;
            }
        }
    }
    assert_eq!(refused, Some(deepmail_tcpcl::RefuseReason::NoResources));
    assert!(
        (7..=9).contains(&accepted),
        "{accepted} junk fragments held"
    );
    // Another address: its whole ADU is taken and stored.
    for f in &real {
        handler
            .on_bundle(earth, "ipn:1.0", f.clone())
            .await
            .unwrap();
    }
    let stored = std::fs::read_dir(dir.path().join("spool/incoming"))
        .unwrap()
        .count();
    assert_eq!(stored, 1, "the other peer's ADU was reassembled and stored");
}

/// A sender chooses its bundles' lifetime (years, if it likes); the
/// gateway holds a partial ADU at most `[bp] max-partial-age-hours`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_adus_held_past_the_age_cap_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let moon_mta = sink(&[]).await;
    let tcpcl_port = free_port();
    let moon_toml = bp_moon_toml(&format!("127.0.0.1:{tcpcl_port}"), moon_mta.addr).replacen(
        "[bp]\n",
        "[bp]\nmax-partial-age-hours = 24\n",
        1,
    );
    let mut adu =
        b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\n\r\n".to_vec();
    adu.resize(300_000, b'x');
    adu.extend_from_slice(b"\r\n.\r\n");
    let mut spec = bundle_spec("ipn:1.0", 1);
    spec.lifetime_ms = 10 * 365 * 86_400_000; // ten years, says the sender
    let fragments = deepmail_bundle::fragment_adu(&adu, &spec, 60_200).unwrap();
    let (first, rest) = fragments.split_at(2);
    let addr: SocketAddr = format!("127.0.0.1:{tcpcl_port}").parse().unwrap();
    let sender = tcpcl_sender(addr);

    let moon = start(dir.path(), "moon", &moon_toml).await;
    let outcome = send_bundles(&sender, addr, first.to_vec()).await;
    assert!(
        matches!(outcome, deepmail_host::types::Outcome::Delivered(_)),
        "{outcome:?}"
    );
    moon.shutdown(Duration::from_secs(5)).await;

    // Two days pass (the held files say so).
    let held = dir.path().join("moon-spool/fragments");
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    for adu_dir in std::fs::read_dir(&held).unwrap() {
        for f in std::fs::read_dir(adu_dir.unwrap().path()).unwrap() {
            std::fs::File::options()
                .write(true)
                .open(f.unwrap().path())
                .unwrap()
                .set_modified(two_days_ago)
                .unwrap();
        }
    }
    let moon = start(dir.path(), "moon", &moon_toml).await;
    assert_eq!(
        std::fs::read_dir(&held).unwrap().count(),
        0,
        "held past 24 h: dropped at start"
    );
    // The rest alone cannot complete the ADU any more.
    let outcome = send_bundles(&sender, addr, rest.to_vec()).await;
    assert!(
        matches!(outcome, deepmail_host::types::Outcome::Delivered(_)),
        "{outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(moon_mta.sink.got.lock().unwrap().is_empty());
    moon.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragments_held_before_a_restart_complete_the_adu_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let moon_mta = sink(&[]).await;
    let tcpcl_port = free_port();
    let moon_toml = bp_moon_toml(&format!("127.0.0.1:{tcpcl_port}"), moon_mta.addr);
    // One ADU in 8 fragments, made natively.
    let mut batch = b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\nSubject: in pieces\r\n\r\n".to_vec();
    for i in 0..400 {
        batch.extend_from_slice(
            format!("line {i:04} of a message that crosses a restart\r\n").as_bytes(),
        );
    }
    batch.extend_from_slice(b".\r\n");
    let spec = bundle_spec("ipn:1.0", 1);
    let fragments = deepmail_bundle::fragment_adu(&batch, &spec, batch.len() / 8 + 60).unwrap();
    assert!(fragments.len() >= 8, "{}", fragments.len());
    let (first, rest) = fragments.split_at(fragments.len() / 2);
    let addr: SocketAddr = format!("127.0.0.1:{tcpcl_port}").parse().unwrap();
    let sender = tcpcl_sender(addr);
    let moon = start(dir.path(), "moon", &moon_toml).await;
    let outcome = send_bundles(&sender, addr, first.to_vec()).await;
    assert!(
        matches!(outcome, deepmail_host::types::Outcome::Delivered(_)),
        "{outcome:?}"
    );
    let held = std::fs::read_dir(dir.path().join("moon-spool/fragments"))
        .unwrap()
        .count();
    assert_eq!(held, 1, "half an ADU is held on disk");
    moon.shutdown(Duration::from_secs(5)).await;

    let moon = start(dir.path(), "moon", &moon_toml).await;
    let outcome = send_bundles(&sender, addr, rest.to_vec()).await;
    assert!(
        matches!(outcome, deepmail_host::types::Outcome::Delivered(_)),
        "{outcome:?}"
    );
    wait_for("the reassembled message", 30, || {
        !moon_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    let (_, content) = moon_mta.sink.got.lock().unwrap()[0].clone();
    assert!(String::from_utf8_lossy(&content).contains("line 0399 of a message"));
    assert_eq!(
        std::fs::read_dir(dir.path().join("moon-spool/fragments"))
            .unwrap()
            .count(),
        0,
        "fragments released"
    );
    // A late duplicate of a fragment is taken and changes nothing.
    let outcome = send_bundles(&sender, addr, vec![first[0].clone()]).await;
    assert!(
        matches!(outcome, deepmail_host::types::Outcome::Delivered(_)),
        "{outcome:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(moon_mta.sink.got.lock().unwrap().len(), 1);
    moon.shutdown(Duration::from_secs(5)).await;
}

/// With a contact plan the Earth gateway sends nothing while the link is
/// known down (no attempt, no retry burned), sends within a second or two
/// of the window opening, and refuses at SMTP time a message no window can
/// carry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_plan_holds_mail_until_the_window_opens() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon_port = free_port();
    // The window opens 4 s after Earth's configuration is loaded, and
    // carries 20 kB/s for 30 s (600 kB).
    let planned = earth_toml(moon_port, earth_mta.addr, "").replace(
        "ca = \"certs/ca.pem\"\n",
        "ca = \"certs/ca.pem\"\ncontacts = \"a contact +4 +34 1 2 20000\"\n",
    );
    let loaded = Instant::now();
    let earth = start(dir.path(), "earth", &planned).await;
    let moon = start(
        dir.path(),
        "moon",
        &moon_toml(moon_port, moon_mta.addr, earth.https_addr.unwrap().port()),
    )
    .await;
    let config = RelayConfig::new("mta.earth.example");
    let d = relay(
        earth.smtp_addr.unwrap(),
        &config,
        &envelope("ops@earth.example", &["ada@moon.example"]),
        MESSAGE,
    )
    .await
    .unwrap();
    assert!(d.all_accepted(), "{d:?}");
    // Larger than the window carries: 552 at once, not a bounce later.
    let big = [MESSAGE, &vec![b'x'; 700_000], b"\r\n"].concat();
    let d = relay(
        earth.smtp_addr.unwrap(),
        &config,
        &envelope("ops@earth.example", &["ada@moon.example"]),
        &big,
    )
    .await
    .unwrap();
    let reply = d
        .data_reply
        .as_ref()
        .map(|r| r.to_string())
        .unwrap_or_default();
    assert!(
        reply.starts_with("552") && reply.contains("no window of the contact plan"),
        "{reply}"
    );

    tokio::time::sleep(Duration::from_secs(3).saturating_sub(loaded.elapsed())).await;
    assert!(
        moon_mta.sink.got.lock().unwrap().is_empty(),
        "nothing crosses before the window opens"
    );
    assert_eq!(
        earth.metrics.batch_attempts_failed.load(Ordering::Relaxed),
        0,
        "no attempt while the link is known down"
    );
    wait_for("the Moon MTA to get the message", 30, || {
        !moon_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    let took = loaded.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(8),
        "delivered {took:?} after load; the window opened at 4 s"
    );
    assert_eq!(
        earth.metrics.batch_attempts_failed.load(Ordering::Relaxed),
        0
    );
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
}

/// A Mars month in 15 seconds: Earth reaches the Moon gateway only through
/// the link emulator, which plays the same contact plan as Earth's route
/// (a window at 1-3 s, a blackout, a window at 9-15 s). Mail sent before
/// the first window crosses in it; mail sent during the blackout waits
/// (no attempt, no failure) and crosses in the second window; nothing
/// expires, though the blackout is longer than the route's maximum age
/// (3.6 s of planned up-time).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_waits_out_a_blackout_and_nothing_expires() {
    use deepmail_link::contact_plan::ContactPlan;
    use deepmail_link::{DownMode, Link, LinkConfig, Schedule};

    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon_port = free_port();
    let plan = "a contact +1 +3 1 2 1000000\na contact +9 +15 1 2 1000000\n\
                a contact +1 +3 2 1 1000000\na contact +9 +15 2 1 1000000\n";
    let schedule = Schedule::from_plan(&ContactPlan::parse(plan, 0).unwrap(), 1, 2, DownMode::Hold);
    let link = Link::start(LinkConfig {
        schedule: Some(schedule),
        ..LinkConfig::with_delay(Duration::from_millis(20)).tcp(
            "127.0.0.1:0".parse().unwrap(),
            format!("127.0.0.1:{moon_port}").parse().unwrap(),
        )
    })
    .await
    .unwrap();
    let t0 = Instant::now();
    let across = link.tcp_listen_addrs()[0].port();
    let earth_text = earth_toml(across, earth_mta.addr, "").replace(
        "ca = \"certs/ca.pem\"\n",
        &format!("ca = \"certs/ca.pem\"\nmax-age-hours = 0.001\nplan-from-node = 1\ncontacts = \"\"\"\n{plan}\"\"\"\n"),
    );
    let earth = start(dir.path(), "earth", &earth_text).await;
    let moon = start(
        dir.path(),
        "moon",
        &moon_toml(moon_port, moon_mta.addr, earth.https_addr.unwrap().port()),
    )
    .await;
    let send = |n: u32| {
        let smtp = earth.smtp_addr.unwrap();
        async move {
            let content =
                format!("Subject: {n}\r\nMessage-ID: <{n}@earth.example>\r\n\r\nhello {n}\r\n");
            let d = relay(
                smtp,
                &RelayConfig::new("mta.earth.example"),
                &envelope("ops@earth.example", &["ada@moon.example"]),
                content.as_bytes(),
            )
            .await
            .unwrap();
            assert!(d.all_accepted(), "{d:?}");
        }
    };
    let got = || moon_mta.sink.got.lock().unwrap().len();

    send(1).await;
    wait_for("the first message, in the first window", 10, || got() == 1).await;
    let first = t0.elapsed();
    assert!(
        first >= Duration::from_secs(1) && first < Duration::from_secs(3),
        "{first:?}"
    );

    tokio::time::sleep(Duration::from_secs(4).saturating_sub(t0.elapsed())).await;
    send(2).await;
    send(3).await;
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(t0.elapsed())).await;
    assert_eq!(got(), 1, "nothing crosses in the blackout");
    let failed = earth.metrics.batch_attempts_failed.load(Ordering::Relaxed);
    assert_eq!(failed, 0, "no attempt while the link is known down");

    wait_for("the blackout's mail, in the second window", 20, || {
        got() == 3
    })
    .await;
    let second = t0.elapsed();
    assert!(second >= Duration::from_secs(9), "{second:?}");
    assert_eq!(
        earth.metrics.messages_returned.load(Ordering::Relaxed),
        0,
        "nothing expired"
    );
    assert!(
        earth_mta.sink.got.lock().unwrap().is_empty(),
        "no DSN came back"
    );
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
    link.stop();
}

/// A message too large for what is left of a window crosses a BP route
/// as fragments: those that fit leave in this window, the rest in the
/// next ones, and no fragment the Moon acknowledged is ever sent again.
/// Through the link emulator with the same plan (150 kB/s, 2 s windows):
/// ~700 kB need three windows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bp_message_cut_by_a_window_end_is_completed_in_the_next_window() {
    use deepmail_link::contact_plan::ContactPlan;
    use deepmail_link::{DownMode, Link, LinkConfig, Schedule};

    let dir = tempfile::tempdir().unwrap();
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon = start(
        dir.path(),
        "moon",
        &bp_moon_toml("127.0.0.1:0", moon_mta.addr),
    )
    .await;
    let mut plan = String::new();
    for start in [1, 5, 9, 13, 17] {
        for (from, to) in [(1, 2), (2, 1)] {
            plan.push_str(&format!(
                "a contact +{start} +{} {from} {to} 150000\n",
                start + 2
            ));
        }
    }
    let schedule =
        Schedule::from_plan(&ContactPlan::parse(&plan, 0).unwrap(), 1, 2, DownMode::Hold);
    let link = Link::start(LinkConfig {
        schedule: Some(schedule),
        ..LinkConfig::with_delay(Duration::from_millis(20))
            .tcp("127.0.0.1:0".parse().unwrap(), moon.tcpcl_addr.unwrap())
    })
    .await
    .unwrap();
    let t0 = Instant::now();
    let earth_text = bp_earth_toml(link.tcp_listen_addrs()[0], earth_mta.addr, "ipn:2.25").replace(
        "mtu = 65536\n",
        &format!("mtu = 65536\nplan-from-node = 1\ncontacts = \"\"\"\n{plan}\"\"\"\n"),
    );
    let earth = start(dir.path(), "earth", &earth_text).await;

    let mut big = b"From: ops@earth.example\r\nSubject: survey\r\n\r\n".to_vec();
    let mut state = 7u64;
    while big.len() < 700_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        big.extend_from_slice(format!("{:016x}{:016x}\r\n", state, state >> 5).as_bytes());
    }
    let d = relay(
        earth.smtp_addr.unwrap(),
        &RelayConfig::new("mta"),
        &envelope("ops@earth.example", &["ada@moon.example"]),
        &big,
    )
    .await
    .unwrap();
    assert!(d.all_accepted(), "{d:?}");
    // A small message queued behind it goes in the same delivery (each
    // message its own ADU) and is through in the first window.
    let d = relay(
        earth.smtp_addr.unwrap(),
        &RelayConfig::new("mta"),
        &envelope("ops@earth.example", &["ada@moon.example"]),
        b"Subject: small\r\n\r\nhello\r\n",
    )
    .await
    .unwrap();
    assert!(d.all_accepted(), "{d:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "both queued before the first window"
    );
    wait_for("the small message on the Moon", 10, || {
        !moon_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    let small = t0.elapsed();
    assert!(
        small < Duration::from_secs(4),
        "in the first window: {small:?}"
    );
    wait_for("the large message on the Moon", 40, || {
        moon_mta.sink.got.lock().unwrap().len() == 2
    })
    .await;
    let arrived = t0.elapsed();
    let (_, content) = moon_mta.sink.got.lock().unwrap()[1].clone();
    assert!(content.ends_with(&big), "reassembled byte for byte");
    assert!(
        arrived >= Duration::from_secs(9),
        "three windows were needed, it arrived after {arrived:?}"
    );
    let m = |g: &RunningGateway,
             c: fn(&deepmail_gateway::Metrics) -> &std::sync::atomic::AtomicU64| {
        c(&g.metrics).load(Ordering::Relaxed)
    };
    // The Moon relays once the last fragment is in, before its XFER_ACK
    // reaches Earth.
    wait_for("the last acknowledgement on Earth", 10, || {
        m(&earth, |m| &m.messages_sent) == 2
    })
    .await;
    let cut = m(&earth, |m| &m.bp_batches_cut);
    let sent = m(&earth, |m| &m.bundles_sent);
    let acked = m(&earth, |m| &m.bundles_acknowledged);
    let received = m(&moon, |m| &m.bundles_received);
    assert!(cut >= 2, "cut at two window ends, was {cut}");
    assert!(
        sent >= 12,
        "700 kB in 64 KiB fragments, and the small one: {sent}"
    );
    assert_eq!(sent, acked, "every bundle sent was acknowledged");
    assert_eq!(sent, received, "no bundle crossed twice");
    assert_eq!(m(&earth, |m| &m.messages_returned), 0);
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
    link.stop();
}

/// What leaves first on a scarce link: higher MT-PRIORITY (RFC 6710),
/// then small before large, and one batch in four for the oldest message
/// so a large one is not starved. Six messages wait for a window; one
/// batch of one message at a time crosses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_then_size_then_the_oldest_every_fourth_batch() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon_port = free_port();
    let text = earth_toml(moon_port, earth_mta.addr, "")
        .replace(
            "retry-max-secs = 1\n",
            "retry-max-secs = 1\nbatch-max-messages = 1\nconcurrency = 1\n",
        )
        .replace(
            "ca = \"certs/ca.pem\"\n",
            "ca = \"certs/ca.pem\"\ncontacts = \"a contact +3 +600 1 2 100000000\"\n",
        );
    let earth = start(dir.path(), "earth", &text).await;
    let moon = start(
        dir.path(),
        "moon",
        &moon_toml(moon_port, moon_mta.addr, earth.https_addr.unwrap().port()),
    )
    .await;
    let big = format!("{}\r\n", "x".repeat(76)).repeat(1400);
    for (name, priority, body) in [
        ("big-old", None, big.as_str()),
        ("small-a", None, "a"),
        ("small-b", None, "b"),
        ("urgent", Some("5"), "u"),
        ("low", Some("-3"), "l"),
        ("small-c", None, "c"),
    ] {
        let mut env = envelope("ops@earth.example", &["ada@moon.example"]);
        if let Some(p) = priority {
            env.mail_params.push(Param::new("MT-PRIORITY", Some(p)));
        }
        let content = format!("Subject: {name}\r\n\r\n{body}\r\n");
        let d = relay(
            earth.smtp_addr.unwrap(),
            &RelayConfig::new("mta.earth.example"),
            &env,
            content.as_bytes(),
        )
        .await
        .unwrap();
        assert!(d.all_accepted(), "{d:?}");
        // Distinct arrival times.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for("all six on the Moon", 30, || {
        moon_mta.sink.got.lock().unwrap().len() == 6
    })
    .await;
    let order: Vec<String> = moon_mta
        .sink
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, c)| deepmail_gateway::header_value(c, "subject").unwrap())
        .collect();
    assert_eq!(
        order,
        ["urgent", "small-a", "small-b", "big-old", "small-c", "low"]
    );
    // The priority crossed the link with the message.
    let urgent = moon_mta.sink.got.lock().unwrap()[0].0.clone();
    assert!(
        urgent
            .mail_params
            .iter()
            .any(|p| p.keyword == "MT-PRIORITY" && p.value.as_deref() == Some("5")),
        "{:?}",
        urgent.mail_params
    );
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
}

/// A message still queued after `delay-warning-hours` gets its sender one
/// `Action: delayed` DSN saying when the next window opens, and stays
/// queued; a recipient with `NOTIFY=FAILURE` gets none (RFC 3461).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delay_warning_once_with_the_next_window() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let moon_port = free_port();
    let text = earth_toml(moon_port, earth_mta.addr, "delay-warning-hours = 0.0003\n").replace(
        "ca = \"certs/ca.pem\"\n",
        "ca = \"certs/ca.pem\"\ncontacts = \"a contact +3600 +7200 1 2 100000\"\n",
    );
    let earth = start(dir.path(), "earth", &text).await;
    let mut quiet = envelope("ops@earth.example", &["bob@moon.example"]);
    quiet.recipients[0]
        .params
        .push(Param::new("NOTIFY", Some("FAILURE")));
    for env in [envelope("ops@earth.example", &["ada@moon.example"]), quiet] {
        let d = relay(
            earth.smtp_addr.unwrap(),
            &RelayConfig::new("mta.earth.example"),
            &env,
            MESSAGE,
        )
        .await
        .unwrap();
        assert!(d.all_accepted(), "{d:?}");
    }
    wait_for("the delay warning", 20, || {
        !earth_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    // Once, and only for ada.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let got = earth_mta.sink.got.lock().unwrap().clone();
    assert_eq!(
        got.len(),
        1,
        "one warning: {:?}",
        got.iter()
            .map(|(e, c)| (e.clone(), String::from_utf8_lossy(c).into_owned()))
            .collect::<Vec<_>>()
    );
    let (env, dsn) = &got[0];
    assert_eq!(env.reverse_path, "");
    assert_eq!(env.recipients[0].mailbox, "ops@earth.example");
    let parsed = deepmail_smtp::dsn::parse_dsn(dsn).unwrap();
    assert_eq!(parsed.recipients.len(), 1);
    assert!(parsed.recipients[0]
        .final_recipient
        .ends_with("ada@moon.example"));
    assert_eq!(
        parsed.recipients[0].action,
        deepmail_smtp::dsn::Action::Delayed
    );
    assert_eq!(parsed.recipients[0].status, "4.4.7");
    let text = String::from_utf8_lossy(dsn);
    assert!(text.contains("is down until"), "{text}");
    assert_eq!(earth.metrics.delay_warnings.load(Ordering::Relaxed), 1);
    assert_eq!(
        queued(&dir.path().join("earth-spool")),
        2,
        "both still queued"
    );
    earth.shutdown(Duration::from_secs(5)).await;
}

/// Relays `text` into `earth`, waits until the Moon's MTA has it intact and
/// its batch is in `moon_spool/relayed/`, and returns the bytes the batch
/// took on the link (its `meta.json`).
async fn relay_and_measure(
    earth: &RunningGateway,
    moon_mta: &SinkServer,
    moon_spool: &Path,
    text: &[u8],
) -> u64 {
    let d = relay(
        earth.smtp_addr.unwrap(),
        &RelayConfig::new("mta"),
        &envelope("ops@earth.example", &["ada@moon.example"]),
        text,
    )
    .await
    .unwrap();
    assert!(d.all_accepted(), "{d:?}");
    wait_for("the message on the Moon", 30, || {
        !moon_mta.sink.got.lock().unwrap().is_empty()
    })
    .await;
    assert!(moon_mta.sink.got.lock().unwrap()[0].1.ends_with(text));
    let relayed = moon_spool.join("relayed");
    wait_for("the batch in relayed/", 30, || {
        std::fs::read_dir(&relayed).map_or(0, |d| d.count()) == 1
    })
    .await;
    let dir = std::fs::read_dir(&relayed)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
    meta["bytes"].as_u64().unwrap()
}

/// `compress = "gzip"` on a bp route and on an HTTPS route: the far
/// gateway recognises the gzip payload (by its magic number; by
/// `Content-Encoding`), relays the message byte for byte, and the link
/// carried a fraction of its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_routes_carry_less_and_deliver_intact() {
    let text: Vec<u8> = {
        let mut t = b"From: ops@earth.example\r\nSubject: report\r\n\r\n".to_vec();
        for i in 0..4000 {
            t.extend_from_slice(
                format!("line {i}: all systems nominal, battery at 97 %\r\n").as_bytes(),
            );
        }
        t
    };
    // Bundle Protocol.
    let dir = tempfile::tempdir().unwrap();
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon = start(
        dir.path(),
        "moon",
        &bp_moon_toml("127.0.0.1:0", moon_mta.addr),
    )
    .await;
    let earth_text = bp_earth_toml(moon.tcpcl_addr.unwrap(), earth_mta.addr, "ipn:2.25")
        .replace("mtu = 65536\n", "mtu = 65536\ncompress = \"gzip\"\n");
    let earth = start(dir.path(), "earth", &earth_text).await;
    let bp_wire = relay_and_measure(&earth, &moon_mta, &dir.path().join("moon-spool"), &text).await;
    assert!(
        bp_wire * 5 < text.len() as u64,
        "{bp_wire} bytes for {}",
        text.len()
    );
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;

    // HTTPS.
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let moon_port = free_port();
    let earth_text = earth_toml(moon_port, earth_mta.addr, "").replace(
        "ca = \"certs/ca.pem\"\n",
        "ca = \"certs/ca.pem\"\ncompress = \"gzip\"\n",
    );
    let earth = start(dir.path(), "earth", &earth_text).await;
    let moon_mta = sink(&[]).await;
    let moon = start(
        dir.path(),
        "moon",
        &moon_toml(moon_port, moon_mta.addr, earth.https_addr.unwrap().port()),
    )
    .await;
    let https_wire =
        relay_and_measure(&earth, &moon_mta, &dir.path().join("moon-spool"), &text).await;
    assert!(
        https_wire * 5 < text.len() as u64,
        "{https_wire} bytes for {}",
        text.len()
    );
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
}

/// A gzip bomb in a bundle payload (64 MiB of one byte in 64 KiB) is not
/// expanded: it goes to dead-letter/ with the reason, nothing is spooled
/// or relayed; a gateway with `accept-compressed = false` refuses even a
/// good compressed payload the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compressed_bomb_in_a_bundle_is_refused_and_nothing_spooled() {
    for accept in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let moon_mta = sink(&[]).await;
        let tcpcl_port = free_port();
        let moon_toml = bp_moon_toml(&format!("127.0.0.1:{tcpcl_port}"), moon_mta.addr).replacen(
            "[bp]\n",
            &format!("[bp]\naccept-compressed = {accept}\n"),
            1,
        );
        let moon = start(dir.path(), "moon", &moon_toml).await;
        let addr: SocketAddr = format!("127.0.0.1:{tcpcl_port}").parse().unwrap();
        let payload = if accept {
            let mut bomb =
                b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\n".to_vec();
            bomb.resize(64 << 20, b'x');
            deepmail_gateway::gzip(&bomb)
        } else {
            deepmail_gateway::gzip(
                b"MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\nhi\r\n.\r\n",
            )
        };
        let bundles =
            deepmail_bundle::fragment_adu(&payload, &bundle_spec("ipn:1.0", 7), 60_200).unwrap();
        let outcome = send_bundles(&tcpcl_sender(addr), addr, bundles).await;
        assert!(
            matches!(outcome, deepmail_host::types::Outcome::Delivered(_)),
            "{outcome:?}"
        );
        let dead = dir.path().join("moon-spool/dead-letter");
        wait_for("the payload in dead-letter/", 10, || {
            std::fs::read_dir(&dead).map_or(0, |d| d.count()) == 1
        })
        .await;
        let entry = std::fs::read_dir(&dead)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let reason = std::fs::read_to_string(entry.join("reason.txt")).unwrap();
        let expected = if accept {
            "expands past"
        } else {
            "accept-compressed = false"
        };
        assert!(reason.contains(expected), "{reason}");
        assert!(
            std::fs::read_dir(dir.path().join("moon-spool/incoming")).map_or(0, |d| d.count()) == 0,
            "nothing spooled"
        );
        assert!(moon_mta.sink.got.lock().unwrap().is_empty());
        moon.shutdown(Duration::from_secs(5)).await;
    }
}

/// When a window opens with mail queued, the gateway fills the link: as
/// many batches as `concurrency` allows leave at once (8 one-message
/// batches over a link of 300 ms each way, 4 at a time: two rounds of
/// about 3 OWLT each), not one batch per pass of the runner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_window_is_filled_not_trickled() {
    use deepmail_link::{Link, LinkConfig};
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon_port = free_port();
    let link = Link::start(LinkConfig::with_delay(Duration::from_millis(300)).tcp(
        "127.0.0.1:0".parse().unwrap(),
        format!("127.0.0.1:{moon_port}").parse().unwrap(),
    ))
    .await
    .unwrap();
    let across = link.tcp_listen_addrs()[0].port();
    let text = earth_toml(across, earth_mta.addr, "")
        .replace(
            "retry-max-secs = 1\n",
            "retry-max-secs = 1\nbatch-max-messages = 1\nconcurrency = 4\n",
        )
        .replace(
            "ca = \"certs/ca.pem\"\n",
            "ca = \"certs/ca.pem\"\ncontacts = \"a contact +3 +600 1 2 100000000\"\n",
        );
    let loaded = Instant::now();
    let earth = start(dir.path(), "earth", &text).await;
    let moon = start(
        dir.path(),
        "moon",
        &moon_toml(moon_port, moon_mta.addr, earth.https_addr.unwrap().port()),
    )
    .await;
    for n in 0..8 {
        let d = relay(
            earth.smtp_addr.unwrap(),
            &RelayConfig::new("mta.earth.example"),
            &envelope("ops@earth.example", &["ada@moon.example"]),
            format!("Subject: {n}\r\n\r\nhello\r\n").as_bytes(),
        )
        .await
        .unwrap();
        assert!(d.all_accepted(), "{d:?}");
    }
    assert!(
        loaded.elapsed() < Duration::from_secs(3),
        "queued before the window"
    );
    wait_for("all 8 on the Moon", 30, || {
        moon_mta.sink.got.lock().unwrap().len() == 8
    })
    .await;
    let after_open = loaded.elapsed().saturating_sub(Duration::from_secs(3));
    assert!(
        after_open < Duration::from_millis(4500),
        "8 batches took {after_open:?} after the window opened"
    );
    earth.shutdown(Duration::from_secs(5)).await;
    moon.shutdown(Duration::from_secs(5)).await;
    link.stop();
}

/// The HTTPS route keeps its connection: three batches to the Moon cross
/// one TCP connection (counted by the link emulator in between), so after
/// the first only the request crosses the link, not a TLS handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_batches_reuse_one_connection() {
    use deepmail_link::{Link, LinkConfig};

    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let moon_mta = sink(&[]).await;
    let moon_port = free_port();
    let moon = start(dir.path(), "moon", &moon_toml(moon_port, moon_mta.addr, 9)).await;
    let link = Link::start(
        LinkConfig::with_delay(Duration::from_millis(30))
            .tcp("127.0.0.1:0".parse().unwrap(), moon.https_addr.unwrap()),
    )
    .await
    .unwrap();
    let via = link.tcp_listen_addrs()[0];
    let earth = start(
        dir.path(),
        "earth",
        &earth_toml(via.port(), earth_mta.addr, ""),
    )
    .await;
    for n in 1..=3usize {
        let d = relay(
            earth.smtp_addr.unwrap(),
            &RelayConfig::new("mta.earth.example"),
            &envelope("ops@earth.example", &["ada@moon.example"]),
            MESSAGE,
        )
        .await
        .unwrap();
        assert!(d.all_accepted(), "{d:?}");
        wait_for("the Moon MTA to get the message", 30, || {
            moon_mta.sink.got.lock().unwrap().len() >= n
        })
        .await;
    }
    wait_for("Earth to record the three answers", 30, || {
        earth.metrics.batches_sent.load(Ordering::Relaxed) >= 3
    })
    .await;
    let stats = link.counters();
    let relay_stats = stats.relay(via).expect("the TCP relay");
    assert_eq!(
        relay_stats.connections, 1,
        "three batches over one kept connection: {relay_stats:?}"
    );
    // The event stamps: the third batch left after its 250, crossed the
    // 30 ms link, was spooled on the Moon, and its answer crossed back.
    let accepted = earth
        .metrics
        .last_smtp_accept_unix_us
        .load(Ordering::Relaxed);
    let received = moon
        .metrics
        .last_batch_received_unix_us
        .load(Ordering::Relaxed);
    let answered = earth
        .metrics
        .last_batch_sent_unix_us
        .load(Ordering::Relaxed);
    assert!(accepted > 0, "no SMTP accept stamped");
    assert!(
        received >= accepted + 30_000,
        "spooled {} µs after the 250, across a 30 ms link",
        received as i64 - accepted as i64
    );
    assert!(
        answered >= received + 30_000,
        "answer recorded {} µs after the Moon spooled, across a 30 ms link",
        answered as i64 - received as i64
    );
}

/// One gateway per spool: a second on the same spool is refused with a
/// typed error naming the spool and the holder's pid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_gateway_on_the_same_spool_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let earth_mta = sink(&[]).await;
    let text = earth_toml(9, earth_mta.addr, "");
    let first = start(dir.path(), "earth", &text).await;
    let config = GatewayConfig::load(&dir.path().join("earth.toml")).unwrap();
    match RunningGateway::start(config, host()).await {
        Err(e @ deepmail_gateway::StartError::SpoolInUse { .. }) => {
            let text = e.to_string();
            assert!(text.contains("earth-spool"), "{text}");
            assert!(
                text.contains(&format!("pid {}", std::process::id())),
                "{text}"
            );
        }
        Err(other) => panic!("expected SpoolInUse: {other}"),
        Ok(_) => panic!("two gateways on one spool"),
    }
    first.shutdown(Duration::from_secs(5)).await;
}

/// Local submission through the library (`deepmail_gateway::submit`): in a
/// batch, a recipient outside the relay domains is refused and returned to
/// the sender as a DSN while the other is queued; with a null sender no
/// DSN can be sent (the report says so: the refusal is kept as a dead
/// letter); and a single message with a refused recipient reports the
/// refusal without queueing a DSN.
#[test]
fn submit_checks_everything_then_queues_and_returns_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("earth.toml");
    std::fs::write(
        &path,
        "name = \"gw.earth.example\"\nspool = \"spool\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\
         relay-domains = [\"moon.example\"]\n[[route]]\ndomain = \"moon.example\"\n\
         transport = \"https\"\nuri = \"https://gw.moon.example/inboundmail\"\n\
         [relay]\nsmtp = \"127.0.0.1:1\"\ndomains = [\"earth.example\"]\n",
    )
    .unwrap();
    let config = GatewayConfig::load(&path).unwrap();
    let h = host();
    let codec = deepmail_host::Codec::load(
        &h,
        &deepmail_host::PluginSource::Builtin("bsmtp-codec".into()),
    )
    .unwrap();
    let message = |from: &str| {
        (
            Envelope {
                reverse_path: from.into(),
                mail_params: vec![],
                recipients: ["ada@moon.example", "eve@elsewhere.example"]
                    .iter()
                    .map(|m| Recipient {
                        mailbox: (*m).into(),
                        params: vec![],
                    })
                    .collect(),
            },
            b"Subject: hi\r\n\r\nhello\r\n".to_vec(),
        )
    };
    let submit = |messages, batch| {
        deepmail_gateway::submit(
            &h,
            config.clone(),
            codec.clone(),
            messages,
            batch,
            "submit user=test",
        )
        .unwrap()
    };
    let report = submit(vec![message("ops@earth.example"), message("")], true);
    assert!(!report.nothing_queued);
    assert_eq!(report.queue_failure(), None);
    let [sent, null] = &report.messages[..] else {
        panic!("{report:?}")
    };
    for m in [sent, null] {
        assert_eq!(m.refused.len(), 1, "{m:?}");
        assert_eq!(m.refused[0].0, "eve@elsewhere.example");
        assert!(m.queued.as_ref().is_some_and(Reply::is_positive), "{m:?}");
    }
    assert_eq!(sent.dsn_queued, Some(true));
    assert_eq!(null.dsn_queued, Some(false), "no DSN to a null sender");
    let single = submit(vec![message("ops@earth.example")], false);
    assert_eq!(single.messages[0].dsn_queued, None);
    assert_eq!(single.messages[0].refused.len(), 1);
    let queue = deepmail_gateway::Queue::open(&dir.path().join("spool"), false).unwrap();
    // The two accepted messages of the batch, one DSN, the single message.
    let entries: Vec<_> = queue
        .entries()
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(entries.len(), 4, "{entries:?}");
}
