//! End to end: `deepmail certs` makes a PKI, `deepmail receive` runs as a
//! child process, a Rust client POSTs over HTTP/2 (bearer token) and HTTP/3
//! (client certificate), the spool on disk is checked, and SIGTERM stops the
//! server cleanly.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use deepmail_gateway::{batch_request, Connection, HttpVersion};
use deepmail_gateway::{client_config, load_certs, load_private_key};

const BATCH: &[u8] = b"MAIL FROM:<ops@earth.example> BODY=8BITMIME\r\n\
RCPT TO:<ada@moon.example>\r\n\
DATA\r\n\
Subject: over the link\r\n\
\r\n\
..starts with a dot\r\n\
.\r\n";

fn deepmail() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deepmail"));
    cmd.env(
        "DEEPMAIL_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache"),
    );
    cmd
}

/// Kills the server if the test fails half-way.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn listening_addr(line: &str) -> SocketAddr {
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("https://"))
        .unwrap_or_else(|| panic!("a URL in {line:?}"));
    let authority = url["https://".len()..].split('/').next().unwrap();
    authority.parse().unwrap()
}

#[test]
fn certs_then_receive_then_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    let spool = dir.path().join("spool");
    let out = deepmail()
        .args(["certs", "--dir"])
        .arg(&certs)
        .args([
            "--server-name",
            "gw.moon.example",
            "--client-name",
            "earth-gw",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).unwrap();
    for name in [
        "ca.pem",
        "ca.key",
        "server.pem",
        "server.key",
        "client.pem",
        "client.key",
    ] {
        assert!(certs.join(name).is_file(), "{name} written");
        assert!(printed.contains(name), "{name} reported: {printed}");
    }
    assert!(printed.contains("deepmail receive --cert"), "{printed}");

    let child = deepmail()
        .arg("receive")
        .args(["--listen", "127.0.0.1:0", "--h3-listen", "127.0.0.1:0"])
        .arg("--spool")
        .arg(&spool)
        .arg("--cert")
        .arg(certs.join("server.pem"))
        .arg("--key")
        .arg(certs.join("server.key"))
        .arg("--client-ca")
        .arg(certs.join("ca.pem"))
        .args(["--token", "t0ken", "--max-body-mib", "1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut server = Server(child);
    let stdout = server.0.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let (mut https, mut h3) = (None, None);
    while https.is_none() || h3.is_none() {
        let line = lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|_| panic!("receive did not get ready; printed {seen:?}"));
        if line.starts_with("listening https://") {
            assert!(line.ends_with("/inboundmail (h1, h2)"), "{line}");
            https = Some(listening_addr(&line));
        } else if line.starts_with("listening h3 ") {
            h3 = Some(listening_addr(&line));
        }
        seen.push(line);
    }
    let (https, h3) = (https.unwrap(), h3.unwrap());

    let ca = load_certs(&certs.join("ca.pem")).unwrap();
    let client_chain = load_certs(&certs.join("client.pem")).unwrap();
    let client_key = load_private_key(&certs.join("client.key")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let statuses = runtime.block_on(async {
        let url = format!("https://gw.moon.example:{}/inboundmail", https.port());
        let mut statuses = Vec::new();
        // HTTP/2 with the bearer token.
        let tls = client_config(&ca, None, &[]).unwrap();
        let mut conn = Connection::connect(https, "gw.moon.example", &tls, HttpVersion::Http2)
            .await
            .unwrap();
        let r = conn
            .send(batch_request(&url, BATCH, Some("cli-h2"), Some("t0ken")).unwrap())
            .await
            .unwrap();
        statuses.push((
            r.status().as_u16(),
            String::from_utf8_lossy(r.body()).to_string(),
        ));
        let r = conn
            .send(batch_request(&url, BATCH, Some("cli-no-auth"), None).unwrap())
            .await
            .unwrap();
        statuses.push((
            r.status().as_u16(),
            String::from_utf8_lossy(r.body()).to_string(),
        ));
        // Over the 1 MiB limit.
        let big = vec![b'x'; (1 << 20) + 1];
        let r = conn
            .send(batch_request(&url, big, None, Some("t0ken")).unwrap())
            .await
            .unwrap();
        statuses.push((
            r.status().as_u16(),
            String::from_utf8_lossy(r.body()).to_string(),
        ));
        // HTTP/3 with the client certificate.
        let tls = client_config(&ca, Some((client_chain, client_key)), &[]).unwrap();
        let url = format!("https://gw.moon.example:{}/inboundmail", h3.port());
        let mut conn = Connection::connect(h3, "gw.moon.example", &tls, HttpVersion::Http3)
            .await
            .unwrap();
        let r = conn
            .send(batch_request(&url, BATCH, Some("cli-h3"), None).unwrap())
            .await
            .unwrap();
        statuses.push((
            r.status().as_u16(),
            String::from_utf8_lossy(r.body()).to_string(),
        ));
        conn.close().await;
        statuses
    });
    assert_eq!(statuses[0].0, 200, "{statuses:?}");
    assert!(
        statuses[0].1.contains("\"duplicate\":false"),
        "{statuses:?}"
    );
    assert_eq!(statuses[1].0, 401, "{statuses:?}");
    assert_eq!(statuses[2].0, 413, "{statuses:?}");
    assert_eq!(statuses[3].0, 200, "{statuses:?}");

    // The spool, as files.
    for (id, identity, transport) in [
        ("cli-h2", "token", "https"),
        ("cli-h3", "O=deepmail test,CN=earth-gw", "h3"),
    ] {
        let batch = spool.join("incoming").join(id);
        assert_eq!(std::fs::read(batch.join("batch.bsmtp")).unwrap(), BATCH);
        assert_eq!(
            std::fs::read(batch.join("0001.eml")).unwrap(),
            b"Subject: over the link\r\n\r\n.starts with a dot\r\n"
        );
        let envelope: serde_json::Value =
            serde_json::from_slice(&std::fs::read(batch.join("0001.envelope.json")).unwrap())
                .unwrap();
        assert_eq!(envelope["reverse_path"], "ops@earth.example");
        assert_eq!(envelope["forward_paths"][0]["mailbox"], "ada@moon.example");
        assert_eq!(envelope["mail_parameters"][0]["keyword"], "BODY");
        let meta: serde_json::Value =
            serde_json::from_slice(&std::fs::read(batch.join("meta.json")).unwrap()).unwrap();
        assert_eq!(meta["identity"], identity);
        assert_eq!(meta["transport"], transport);
        assert_eq!(meta["messages"], 1);
    }
    assert_eq!(
        std::fs::read_dir(spool.join("incoming")).unwrap().count(),
        2
    );

    // SIGTERM: a clean stop.
    let status = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.0.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "receive did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    reader.join().unwrap();
    seen.extend(lines.try_iter());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        exit.success(),
        "exit {exit:?}; stderr {stderr}; stdout {seen:?}"
    );
    let text = seen.join("\n");
    assert!(
        text.contains("POST /inboundmail 200 batch=cli-h2"),
        "{text}"
    );
    assert!(
        text.contains("HTTP/3 POST /inboundmail 200 batch=cli-h3"),
        "{text}"
    );
    assert!(text.contains("POST /inboundmail 401"), "{text}");
    assert!(text.contains("POST /inboundmail 413"), "{text}");
    assert!(text.ends_with("stopped"), "{text}");
}
