//! The aioquic HTTP/3 peer (`scripts/peers/aioquic/h3_server.py`) as a test
//! fixture: started on a free port with its own test PKI, stopped on drop.
//! Shared by the plugin's native tests and the host's component tests.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub(crate) fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .find(|p| p.join("scripts/peers/aioquic/h3_server.py").is_file())
        .expect("run from inside the deepmail workspace")
        .to_path_buf()
}

/// A running aioquic HTTP/3 server.
pub(crate) struct Peer {
    child: Child,
    pub dir: tempfile::TempDir,
    pub port: u16,
    /// PEM of the CA that signed the server certificate.
    pub ca_pem: String,
    /// PEM of an unrelated CA.
    pub other_ca_pem: String,
}

/// One request as the server received it.
#[derive(Debug)]
pub(crate) struct Recorded {
    /// Every field in order, pseudo-headers included.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

impl Recorded {
    /// The first value of field `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Peer {
    /// Starts the server; `token` makes it require `Authorization: Bearer <token>`.
    /// `None` when aioquic is not installed: the test is then skipped
    /// outside CI and fails under CI (`test_peers`).
    pub(crate) fn start(token: Option<&str>) -> Option<Peer> {
        let py = test_peers::aioquic_python()?;
        let dir = tempfile::tempdir().expect("tempdir");
        let ready = dir.path().join("ready");
        let mut cmd = Command::new(py);
        cmd.arg(workspace_root().join("scripts/peers/aioquic/h3_server.py"))
            .arg("--certs")
            .arg(dir.path().join("certs"))
            .arg("--record")
            .arg(dir.path().join("record"))
            .arg("--ready")
            .arg(&ready)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(t) = token {
            cmd.arg("--token").arg(t);
        }
        let mut child = cmd.spawn().expect("start h3_server.py");
        let start = Instant::now();
        let port: u16 = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break text.trim().parse().expect("ready file holds the port");
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("h3_server.py exited early: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "h3_server.py did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(25));
        };
        let read = |name: &str| {
            std::fs::read_to_string(dir.path().join("certs").join(name)).expect("read PEM")
        };
        let ca_pem = read("ca.pem");
        let other_ca_pem = read("other-ca.pem");
        Some(Peer {
            child,
            dir,
            port,
            ca_pem,
            other_ca_pem,
        })
    }

    /// The UDP address to connect to.
    pub(crate) fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The requests recorded so far, in arrival order.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        let record = self.dir.path().join("record");
        let mut out = Vec::new();
        for n in 1.. {
            let Ok(head) = std::fs::read(record.join(format!("{n}.head"))) else {
                break;
            };
            // Latin-1, as the server wrote it.
            let head: String = head.iter().map(|&b| b as char).collect();
            let headers = head
                .lines()
                .filter_map(|l| l.split_once('\t'))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let body = std::fs::read(record.join(format!("{n}.body"))).expect("body file");
            out.push(Recorded { headers, body });
        }
        out
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A BSMTP object with binary-ish content, dot lines and CRLF.
pub(crate) fn sample_bsmtp(extra: usize) -> Vec<u8> {
    let mut b = b"MAIL FROM:<alice@earth.example> BODY=8BITMIME\r\n\
RCPT TO:<bob@moon.example>\r\n\
DATA\r\n\
Subject: hello moon\r\n\
\r\n\
..a dot-stuffed line\r\n\
8bit: \xc3\xa9t\xc3\xa9\r\n"
        .to_vec();
    for i in 0..extra {
        b.push(b'a' + (i % 26) as u8);
        if i % 70 == 69 {
            b.extend_from_slice(b"\r\n");
        }
    }
    b.extend_from_slice(b"\r\n.\r\n");
    b
}
