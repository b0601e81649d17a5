//! Mail as BPv7 bundles through a second, independent Bundle Protocol
//! node: `hardy-node`, built from Hardy's crates (hardy-bpa 0.2,
//! hardy-tcpclv4 0.4) by `scripts/peers/install-hardy.sh`.
//!
//! ```text
//! SMTP -> deepmail gateway (Earth, ipn:1.0) --TCPCLv4--> hardy-node ipn:101.0
//!      --TCPCLv4--> deepmail gateway (Moon, ipn:2.0, endpoint ipn:2.25) -> SMTP sink
//! ```
//!
//! A 3 MB message is fragmented to a 64 KB MTU, forwarded fragment by
//! fragment by Hardy (which neither fragments nor reassembles what is not
//! its own) and reassembled by the Moon gateway, first over plain TCPCL,
//! then with TCPCL over TLS (RFC 9174 §4.4) on both hops: the Earth route
//! with `tls = "require"` (our sender as TLS client, Hardy as server) and
//! Hardy as TLS client of the Moon gateway's `require-tls` listener. A
//! route that requires TLS refuses a Hardy node that does not offer it.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deepmail_smtp::client::{relay, RelayConfig};

/// Stops what it started, and shows the logs when a wait fails.
struct Peers {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Peers {
    fn logs(&self) -> String {
        let mut text = String::new();
        for (name, _) in &self.children {
            let log =
                std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            text.push_str(&format!(
                "\n--- {name} ---\n{}",
                &log[log.len().saturating_sub(4000)..]
            ));
        }
        text
    }

    fn wait_for(&self, what: &str, secs: u64, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !f() {
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A hardy-node `ipn:101.0` listening on a free port, routing `ipn:2.*`
    /// to `moon`, with `extra` arguments (TLS).
    fn hardy(&mut self, node: &Path, name: &str, moon: SocketAddr, extra: &[String]) -> SocketAddr {
        let port = common::free_port();
        let listen = SocketAddr::from(([127, 0, 0, 1], port));
        let log = std::fs::File::create(self.dir.join(format!("{name}.log"))).unwrap();
        let child = Command::new(node)
            .args(["--node-id", "ipn:101.0", "--listen"])
            .arg(listen.to_string())
            .arg("--route")
            .arg(format!("ipn:2.*={moon}"))
            .args(extra)
            .env("HARDY_NODE_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("hardy-node starts");
        self.children.push((name.to_string(), child));
        common::wait_listening(listen, "hardy-node's TCPCL listener");
        listen
    }

    fn gateway(&mut self, name: &str, toml: String) {
        self.children.push((
            name.to_string(),
            common::spawn_gateway(&self.dir, name, toml),
        ));
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A message of about `len` bytes with a dot line (dot-stuffing crosses).
fn message(subject: &str, len: usize) -> Vec<u8> {
    let mut m = format!(
        "From: ops@earth.example\r\nTo: ada@moon.example\r\nSubject: {subject}\r\n\r\n.dot line\r\n"
    )
    .into_bytes();
    let mut state = 11u64;
    while m.len() < len {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        m.extend_from_slice(format!("{:016x}{:016x}\r\n", state, state >> 7).as_bytes());
    }
    m
}

fn moon_toml(tcpcl: u16, sink: SocketAddr, tls: &str) -> String {
    format!(
        "name = \"gw.moon.example\"\nspool = \"spool-moon\"\n[bp]\nnode-id = \"ipn:2.0\"\nlisten = \"127.0.0.1:{tcpcl}\"\nendpoints = [\"ipn:2.25\"]\n{tls}[relay]\nsmtp = \"{sink}\"\ndomains = [\"moon.example\"]\n"
    )
}

fn earth_toml(smtp: u16, next: SocketAddr, route_extra: &str) -> String {
    format!(
        "name = \"gw.earth.example\"\nspool = \"spool-earth\"\n[smtp]\nlisten = \"127.0.0.1:{smtp}\"\nrelay-domains = [\"moon.example\"]\n[bp]\nnode-id = \"ipn:1.0\"\n[delivery]\nretry-initial-secs = 1\n[[route]]\ndomain = \"moon.example\"\ntransport = \"bp\"\ntcpcl = \"{next}\"\ndestination = \"ipn:2.25\"\nmtu = 64000\nlifetime-secs = 3600\n{route_extra}"
    )
}

fn send(runtime: &tokio::runtime::Runtime, smtp: u16, content: &[u8]) {
    let d = runtime
        .block_on(relay(
            SocketAddr::from(([127, 0, 0, 1], smtp)),
            &RelayConfig::new("mta.earth.example"),
            &common::envelope("ops@earth.example", "ada@moon.example"),
            content,
        ))
        .unwrap();
    assert!(d.all_accepted(), "{d:?}");
}

#[test]
fn mail_through_a_hardy_node_fragmented_and_reassembled() {
    let Some(node) = test_peers::hardy() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sink, sink_addr) = common::start_sink(&runtime);
    let mut peers = Peers {
        dir: dir.to_path_buf(),
        children: Vec::new(),
    };
    let moon_tcpcl = common::free_port();
    peers.gateway("moon", moon_toml(moon_tcpcl, sink_addr, ""));
    let moon = SocketAddr::from(([127, 0, 0, 1], moon_tcpcl));
    common::wait_listening(moon, "the Moon gateway's TCPCL listener");
    let hardy = peers.hardy(&node, "hardy", moon, &[]);
    let earth_smtp = common::free_port();
    peers.gateway("earth", earth_toml(earth_smtp, hardy, ""));
    common::wait_listening(
        SocketAddr::from(([127, 0, 0, 1], earth_smtp)),
        "the Earth gateway",
    );

    let big = message("3 MB through Hardy", 3 << 20);
    send(&runtime, earth_smtp, &big);
    peers.wait_for("the 3 MB message on the Moon", 120, || {
        !sink.got.lock().unwrap().is_empty()
    });
    let (env, content) = sink.got.lock().unwrap()[0].clone();
    assert_eq!(env.reverse_path, "ops@earth.example");
    assert!(content.ends_with(&big), "reassembled byte for byte");
    let n = common::fragments_reassembled(&dir.join("moon.log"));
    assert!(
        n >= 49,
        "a 3 MB ADU at 64000 bytes is at least 49 fragments, got {n}"
    );
    // Delivered once: Hardy's forwarding does not duplicate.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.got.lock().unwrap().len(), 1, "{}", peers.logs());
}

#[test]
fn tcpcl_over_tls_through_a_hardy_node_and_require_tls_refuses_a_plain_one() {
    let Some(node) = test_peers::hardy() else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // One CA; one server certificate for the loopback names, used by the
    // Moon gateway and by Hardy (Hardy checks `localhost` for loopback
    // peers; our sender checks the route's address, 127.0.0.1).
    let pki = dir.join("pki");
    let o = common::deepmail()
        .args(["certs", "--dir"])
        .arg(&pki)
        .args(["--server-name", "localhost", "--server-name", "127.0.0.1"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sink, sink_addr) = common::start_sink(&runtime);
    let mut peers = Peers {
        dir: dir.to_path_buf(),
        children: Vec::new(),
    };
    let moon_tcpcl = common::free_port();
    peers.gateway(
        "moon",
        moon_toml(
            moon_tcpcl,
            sink_addr,
            "tls-cert = \"pki/server.pem\"\ntls-key = \"pki/server.key\"\nrequire-tls = true\n",
        ),
    );
    let moon = SocketAddr::from(([127, 0, 0, 1], moon_tcpcl));
    common::wait_listening(moon, "the Moon gateway's TCPCL listener");
    let p = |f: &str| pki.join(f).display().to_string();
    let tls_args = [
        "--tls-cert".to_string(),
        p("server.pem"),
        "--tls-key".to_string(),
        p("server.key"),
        "--tls-ca".to_string(),
        p("ca.pem"),
        "--require-tls".to_string(),
    ];
    let hardy = peers.hardy(&node, "hardy", moon, &tls_args);
    let earth_smtp = common::free_port();
    peers.gateway(
        "earth",
        earth_toml(
            earth_smtp,
            hardy,
            "tls = \"require\"\nca = \"pki/ca.pem\"\n",
        ),
    );
    common::wait_listening(
        SocketAddr::from(([127, 0, 0, 1], earth_smtp)),
        "the Earth gateway",
    );
    let big = message("3 MB through Hardy, TLS on both hops", 3 << 20);
    send(&runtime, earth_smtp, &big);
    peers.wait_for("the 3 MB message on the Moon", 120, || {
        !sink.got.lock().unwrap().is_empty()
    });
    let (_, content) = sink.got.lock().unwrap()[0].clone();
    assert!(content.ends_with(&big), "reassembled byte for byte");
    assert!(common::fragments_reassembled(&dir.join("moon.log")) >= 49);
    // Hardy runs with --require-tls and the Moon with require-tls: a
    // session that did not negotiate TLS would have been refused on
    // either hop, so the delivery crossed both inside TLS.

    // A second Earth gateway whose route requires TLS, to a Hardy node
    // that does not offer it: nothing crosses, the message stays queued
    // and the log says why.
    let plain = peers.hardy(&node, "hardy-plain", moon, &[]);
    let strict_smtp = common::free_port();
    peers.gateway(
        "strict",
        earth_toml(
            strict_smtp,
            plain,
            "tls = \"require\"\nca = \"pki/ca.pem\"\n",
        )
        .replace("spool-earth", "spool-strict")
        .replace("gw.earth.example", "gw.strict.example"),
    );
    common::wait_listening(
        SocketAddr::from(([127, 0, 0, 1], strict_smtp)),
        "the strict Earth gateway",
    );
    send(
        &runtime,
        strict_smtp,
        b"Subject: must not cross in the clear\r\n\r\nsecret\r\n",
    );
    let strict_log = dir.join("strict.log");
    peers.wait_for("the refusal in the strict gateway's log", 30, || {
        std::fs::read_to_string(&strict_log)
            .unwrap_or_default()
            .contains("TLS is required here and the peer did not offer it")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        sink.got.lock().unwrap().len(),
        1,
        "nothing more reached the Moon"
    );
}
