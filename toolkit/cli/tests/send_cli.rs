//! `deepmail send` through the CLI against real receivers: an independent
//! HTTP/3 server (aioquic, scripts/peers/install-aioquic.sh) for the
//! quic-sender plugin. The tests fail, naming the install script, when the
//! peer is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

fn deepmail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepmail"))
        .env(
            "DEEPMAIL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache"),
        )
        .args(args)
        .output()
        .unwrap()
}

/// aioquic's HTTP/3 server answering like a deepmail receiver, recording
/// each request as N.head / N.body.
struct H3Peer {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl H3Peer {
    /// `None` when aioquic is not installed (skipped outside CI).
    fn start(token: &str) -> Option<H3Peer> {
        let python = test_peers::aioquic_python()?;
        let dir = tempfile::tempdir().unwrap();
        let d = |s: &str| dir.path().join(s).to_str().unwrap().to_string();
        let child = Command::new(python)
            .arg(root().join("scripts/peers/aioquic/h3_server.py"))
            .args([
                "--certs",
                &d("certs"),
                "--record",
                &d("rec"),
                "--ready",
                &d("port"),
                "--token",
                token,
            ])
            .spawn()
            .unwrap();
        let start = Instant::now();
        let port = loop {
            if let Some(p) = std::fs::read_to_string(dir.path().join("port"))
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "aioquic server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Some(H3Peer { child, dir, port })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for H3Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sample_batch(dir: &Path) -> PathBuf {
    let out = dir.join("m.bsmtp");
    let eml = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/samples/moon-hello.eml");
    let o = deepmail(&["encode", eml.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn h3_send_delivers_byte_for_byte_and_401_is_permanent() {
    let Some(peer) = H3Peer::start("tok") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let batch = sample_batch(work.path());
    let uri = format!("https://localhost:{}/inboundmail", peer.port);
    let ca = peer.path("certs/ca.pem");
    let out = deepmail(&[
        "send",
        batch.to_str().unwrap(),
        "--h3",
        "--to-uri",
        &uri,
        "--ca",
        ca.to_str().unwrap(),
        "--token",
        "tok",
        "--quic",
        "initial-rtt-ms=100",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("over HTTP/3"), "{stdout}");
    let sent = std::fs::read(&batch).unwrap();
    assert_eq!(
        std::fs::read(peer.path("rec/1.body")).unwrap(),
        sent,
        "body byte for byte"
    );
    let head = std::fs::read_to_string(peer.path("rec/1.head")).unwrap();
    let key = stdout
        .split("(batch ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap();
    assert_eq!(key.len(), 64, "SHA-256 hex");
    assert!(head.contains(&format!("idempotency-key\t{key}")), "{head}");
    assert!(
        head.contains("content-type\tapplication/batch-SMTP"),
        "{head}"
    );

    let out = deepmail(&[
        "send",
        batch.to_str().unwrap(),
        "--h3",
        "--to-uri",
        &uri,
        "--ca",
        ca.to_str().unwrap(),
        "--token",
        "nope",
    ]);
    assert_eq!(
        out.status.code(),
        Some(65),
        "EX_DATAERR: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the batch for good: HTTP 401"));
}

#[test]
fn h3_send_to_a_stopped_receiver_is_a_temporary_failure() {
    let work = tempfile::tempdir().unwrap();
    let batch = sample_batch(work.path());
    // A real CA and a port where the receiver was: then the receiver stops.
    let Some(peer) = H3Peer::start("tok") else {
        return;
    };
    let ca = work.path().join("ca.pem");
    std::fs::copy(peer.path("certs/ca.pem"), &ca).unwrap();
    let uri = format!("https://localhost:{}/inboundmail", peer.port);
    drop(peer);
    let start = Instant::now();
    let out = deepmail(&[
        "send",
        batch.to_str().unwrap(),
        "--h3",
        "--to-uri",
        &uri,
        "--ca",
        ca.to_str().unwrap(),
        "--timeout",
        "1",
        "--retries",
        "1",
        "--retry-delay-ms",
        "50",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "EX_TEMPFAIL: {err}");
    assert!(
        err.contains("temporary failure") && err.contains("not delivered after 2 round(s)"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(15));
}
