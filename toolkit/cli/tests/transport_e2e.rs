//! The whole transport path through the real binary and real peers: NSD
//! answers `_bsmtp._https` URI records → `deepmail send` (resolver plugin,
//! then the HTTPS or HTTP/3 sender plugin) → `deepmail receive` → the
//! spool holds exactly what was sent. Plus the failures a user meets: wrong
//! token, oversized batch, bad Batch SMTP, a duplicate, the receiver down.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

mod common;
use common::{deepmail, Nsd};

fn run(args: &[&str]) -> Output {
    deepmail().args(args).output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `deepmail receive` as a child process, stopped with SIGTERM.
struct Receiver {
    child: Child,
    lines: mpsc::Receiver<String>,
    https: SocketAddr,
    h3: SocketAddr,
}

impl Receiver {
    fn start(certs: &Path, spool: &Path) -> Receiver {
        let mut child = deepmail()
            .args([
                "receive",
                "--listen",
                "127.0.0.1:0",
                "--h3-listen",
                "127.0.0.1:0",
                "--spool",
                s(spool),
            ])
            .args([
                "--cert",
                s(&certs.join("server.pem")),
                "--key",
                s(&certs.join("server.key")),
            ])
            .args([
                "--client-ca",
                s(&certs.join("ca.pem")),
                "--token",
                "t0ken",
                "--max-body-mib",
                "1",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let addr = |line: &str| -> SocketAddr {
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("https://"))
                .unwrap();
            url["https://".len()..]
                .split('/')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (mut https, mut h3) = (None, None);
        while https.is_none() || h3.is_none() {
            let line = lines
                .recv_timeout(Duration::from_secs(120))
                .expect("deepmail receive got ready");
            if line.starts_with("listening https://") {
                https = Some(addr(&line));
            } else if line.starts_with("listening h3 ") {
                h3 = Some(addr(&line));
            }
        }
        Receiver {
            child,
            lines,
            https: https.unwrap(),
            h3: h3.unwrap(),
        }
    }

    /// The receiver's request log lines printed so far.
    fn log(&self) -> Vec<String> {
        self.lines.try_iter().collect()
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// NSD serving `e2e.example` with URI records that point at the receiver.
fn e2e_nsd(https: SocketAddr, h3: SocketAddr) -> Option<Nsd> {
    let zone = format!(
        "$ORIGIN e2e.example.\n$TTL 300\n\
         @ IN SOA ns.e2e.example. hostmaster.e2e.example. ( 1 3600 600 86400 60 )\n\
         @ IN NS ns.e2e.example.\nns IN A 127.0.0.1\n\
         _bsmtp._https.e2e.example. 300 IN URI 10 1 \"https://localhost:{}/inboundmail\"\n\
         _bsmtp._https.e2e.example. 300 IN URI 20 1 \"https://localhost:9/unreachable-backup\"\n\
         _bsmtp._https.h3.e2e.example. 300 IN URI 10 1 \"https://localhost:{}/inboundmail\"\n",
        https.port(),
        h3.port()
    );
    Nsd::start(&[("e2e.example.zone", zone)])
}

/// The spooled batches: (batch id, raw body).
fn spooled(spool: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(spool.join("incoming")) else {
        return vec![];
    };
    let mut out: Vec<_> = entries
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().to_string(),
                std::fs::read(e.path().join("batch.bsmtp")).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

fn batch_of(dir: &Path, name: &str, subject: &str, body_bytes: usize) -> PathBuf {
    let eml = dir.join(format!("{name}.eml"));
    let mut content =
        format!("From: ops@earth.example\r\nTo: ada@moon.example\r\nSubject: {subject}\r\n\r\n");
    while content.len() < body_bytes {
        content.push_str(".line with a leading dot, and some more text to fill it up to size\r\n");
    }
    std::fs::write(&eml, content).unwrap();
    let out = dir.join(format!("{name}.bsmtp"));
    let o = run(&["encode", s(&eml), "-o", s(&out)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

#[test]
fn nsd_then_send_over_https_and_h3_then_receive_into_the_spool() {
    let work = tempfile::tempdir().unwrap();
    let certs = work.path().join("certs");
    let spool = work.path().join("spool");
    let o = run(&[
        "certs",
        "--dir",
        s(&certs),
        "--server-name",
        "localhost",
        "--client-name",
        "earth-gw",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut receiver = Receiver::start(&certs, &spool);
    let Some(nsd) = e2e_nsd(receiver.https, receiver.h3) else {
        return;
    };
    let dns = format!("127.0.0.1:{}", nsd.port);
    let ca = certs.join("ca.pem");
    let send = |batch: &Path, domain: &str, extra: &[&str]| -> Output {
        let mut args = vec![
            "send",
            s(batch),
            "--domain",
            domain,
            "--dns-server",
            &dns,
            "--ca",
            s(&ca),
        ];
        args.extend(["--timeout", "10", "--retries", "0"]);
        args.extend(extra);
        run(&args)
    };

    // HTTPS (HTTP/2 negotiated), resolved through NSD, with a bearer token.
    let first = batch_of(work.path(), "first", "over https", 20_000);
    let o = send(&first, "e2e.example", &["--token", "t0ken"]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"duplicate\":false"));
    let stored = spooled(&spool);
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].1,
        std::fs::read(&first).unwrap(),
        "spooled byte for byte"
    );
    let log = receiver.log();
    assert!(
        log.iter()
            .any(|l| l.contains("HTTP/2") && l.contains(" 200 ")),
        "HTTP/2 was negotiated: {log:?}"
    );

    // The same batch again (a retry): stored once.
    let o = send(&first, "e2e.example", &["--token", "t0ken"]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"duplicate\":true"));
    assert_eq!(spooled(&spool).len(), 1);

    // Mutual TLS instead of a token.
    let mtls = batch_of(work.path(), "mtls", "client certificate", 1000);
    let o = send(
        &mtls,
        "e2e.example",
        &[
            "--cert",
            s(&certs.join("client.pem")),
            "--key",
            s(&certs.join("client.key")),
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // HTTP/3 with the quic-sender plugin, QUIC inside the component.
    let over_h3 = batch_of(work.path(), "h3", "over http/3", 50_000);
    let o = send(&over_h3, "h3.e2e.example", &["--h3", "--token", "t0ken"]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        spooled(&spool)
            .iter()
            .any(|(_, body)| *body == std::fs::read(&over_h3).unwrap()),
        "h3 batch spooled"
    );
    assert_eq!(spooled(&spool).len(), 3);

    // HTTP/3 with mutual TLS instead of a token: the client certificate is
    // presented from inside the component.
    let h3_mtls = batch_of(work.path(), "h3-mtls", "http/3, client certificate", 2000);
    let o = send(
        &h3_mtls,
        "h3.e2e.example",
        &[
            "--h3",
            "--cert",
            s(&certs.join("client.pem")),
            "--key",
            s(&certs.join("client.key")),
        ],
    );
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        spooled(&spool)
            .iter()
            .any(|(_, body)| *body == std::fs::read(&h3_mtls).unwrap()),
        "h3 mutual-TLS batch spooled"
    );
    assert_eq!(spooled(&spool).len(), 4);

    // A client certificate from another CA: the receiver aborts the
    // handshake with a TLS alert, which the sender reports as a temporary
    // failure (75: the operator can fix the certificate while the mail waits).
    let other = work.path().join("other-certs");
    let o = run(&[
        "certs",
        "--dir",
        s(&other),
        "--server-name",
        "localhost",
        "--client-name",
        "stranger",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stranger = batch_of(
        work.path(),
        "stranger",
        "client certificate from another CA",
        500,
    );
    let o = send(
        &stranger,
        "h3.e2e.example",
        &[
            "--h3",
            "--cert",
            s(&other.join("client.pem")),
            "--key",
            s(&other.join("client.key")),
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("refused the TLS handshake") && stderr.contains("client-cert-pem"),
        "{stderr}"
    );
    // A key that is not the certificate's: a configuration error, not a
    // reason to retry (EX_CONFIG, at once).
    let o = send(
        &stranger,
        "h3.e2e.example",
        &[
            "--h3",
            "--cert",
            s(&certs.join("client.pem")),
            "--key",
            s(&other.join("client.key")),
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("invalid-config") && !stderr.contains("retrying"),
        "{stderr}"
    );
    assert_eq!(spooled(&spool).len(), 4, "nothing stored for the stranger");

    // Failures: each is permanent (65) and stores nothing.
    let o = send(&mtls, "e2e.example", &["--token", "wrong"]);
    assert_eq!(
        o.status.code(),
        Some(65),
        "401: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("401"));
    let big = batch_of(work.path(), "big", "too big", 2 << 20);
    let o = send(&big, "e2e.example", &["--token", "t0ken"]);
    assert_eq!(
        o.status.code(),
        Some(65),
        "413: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("413"));
    let bad = work.path().join("bad.bsmtp");
    std::fs::write(&bad, "RCPT TO:<ada@moon.example>\r\nDATA\r\nhi\r\n.\r\n").unwrap();
    let o = send(&bad, "e2e.example", &["--token", "t0ken"]);
    assert_eq!(
        o.status.code(),
        Some(65),
        "422: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("out-of-sequence"),
        "the codec's class comes back"
    );
    assert_eq!(spooled(&spool).len(), 4, "nothing half-stored");

    // The sender trusts the wrong roots: the host refuses the receiver's
    // certificate, nothing is sent, and the mail stays queued (75).
    let o = run(&[
        "send",
        s(&mtls),
        "--domain",
        "e2e.example",
        "--dns-server",
        &dns,
        "--ca",
        s(&other.join("ca.pem")),
        "--token",
        "t0ken",
        "--timeout",
        "5",
        "--retries",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "{stderr}");
    assert!(
        stderr.contains("TlsCertificateError") && stderr.contains("trust roots"),
        "{stderr}"
    );
    assert_eq!(spooled(&spool).len(), 4, "nothing stored");

    // The receiver goes down: a temporary failure (75), the mail stays with the sender.
    receiver.stop();
    let o = send(&mtls, "e2e.example", &["--token", "t0ken"]);
    assert_eq!(
        o.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    drop(nsd);
}
