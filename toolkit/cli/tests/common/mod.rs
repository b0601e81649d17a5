//! Helpers shared by the CLI integration tests: the repository root, the
//! `deepmail` binary, and a private NSD started by the project's own
//! scripts. Each test binary uses only some of them.
#![allow(dead_code)]

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs a plugin build script of the checkout (`scripts/bp6/build.sh`,
/// `plugins-py/build.sh NAME...`); the `.wasm` paths it prints.
pub(crate) fn built_by(script: &str, args: &[&str]) -> Vec<String> {
    let built = Command::new("bash")
        .arg(root().join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&built.stderr)
    );
    String::from_utf8(built.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.ends_with(".wasm"))
        .map(str::to_string)
        .collect()
}

/// The `deepmail` binary, with compiled plugins cached once for all tests.
pub(crate) fn deepmail() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_deepmail"));
    cmd.env(
        "DEEPMAIL_CACHE_DIR",
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache"),
    );
    // Help text wraps the same on every terminal (insta snapshots).
    cmd.env("COLUMNS", "100");
    cmd
}

/// Runs `deepmail args...`.
pub(crate) fn run(args: &[&str]) -> Output {
    deepmail().args(args).output().expect("deepmail runs")
}

/// Runs it, asserts success, returns stdout.
pub(crate) fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "deepmail {args:?} failed\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs it, asserts failure, returns stderr.
pub(crate) fn fails(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        !out.status.success(),
        "deepmail {args:?} should fail\nstdout: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stderr).expect("utf-8 stderr")
}

/// An NSD of a test's own on 127.0.0.1, stopped when the test ends (pass
/// or fail).
pub(crate) struct Nsd {
    pub dir: tempfile::TempDir,
    pub port: u16,
}

impl Nsd {
    /// Starts NSD serving `zones` (file name, master-file text); with none,
    /// the repository's zones in scripts/peers/nsd/zones.
    /// `None` when NSD is not installed: the test is then skipped outside
    /// CI and fails under CI (see `test_peers`).
    pub(crate) fn start(zones: &[(&str, String)]) -> Option<Nsd> {
        test_peers::nsd()?;
        let mut last = String::new();
        for _ in 0..5 {
            // A port that was free a moment ago; NSD refuses to start if it is taken.
            let port = UdpSocket::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            for (name, text) in zones {
                std::fs::write(dir.path().join(name), text).unwrap();
            }
            let out = Command::new("bash")
                .arg(root().join("scripts/peers/nsd/start-nsd.sh"))
                .arg(dir.path())
                .arg(port.to_string())
                .output()
                .unwrap();
            if out.status.success() {
                return Some(Nsd { dir, port });
            }
            last = String::from_utf8_lossy(&out.stderr).to_string();
        }
        panic!("NSD did not start (scripts/peers/nsd/start-nsd.sh):\n{last}");
    }
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("scripts/peers/nsd/stop-nsd.sh"))
            .arg(self.dir.path())
            .output();
    }
}

/// An SMTP server that takes every message and remembers it: the MTA at
/// the far end of gateway tests.
#[derive(Default)]
pub(crate) struct Sink {
    /// Envelope and content of every message, in arrival order.
    pub got: Mutex<Vec<(deepmail_smtp::Envelope, Vec<u8>)>>,
}

impl deepmail_smtp::serve::Handler for Sink {
    async fn mail_from(
        &self,
        _: &deepmail_smtp::serve::SessionInfo,
        _: &str,
        _: &[deepmail_smtp::Param],
    ) -> deepmail_smtp::Reply {
        deepmail_smtp::Reply::new(250, None, "ok")
    }
    async fn rcpt_to(
        &self,
        _: &deepmail_smtp::serve::SessionInfo,
        _: &deepmail_smtp::Envelope,
        _: &deepmail_smtp::Recipient,
    ) -> deepmail_smtp::Reply {
        deepmail_smtp::Reply::new(250, None, "ok")
    }
    async fn message(
        &self,
        _: &deepmail_smtp::serve::SessionInfo,
        envelope: deepmail_smtp::Envelope,
        content: Vec<u8>,
    ) -> deepmail_smtp::Reply {
        self.got.lock().unwrap().push((envelope, content));
        deepmail_smtp::Reply::new(250, None, "ok")
    }
}

/// Starts a [`Sink`] on a loopback port inside `runtime`; it runs until
/// the runtime is dropped.
pub(crate) fn start_sink(runtime: &tokio::runtime::Runtime) -> (Arc<Sink>, SocketAddr) {
    let sink = Arc::new(Sink::default());
    let s = sink.clone();
    let addr = runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let config = Arc::new(deepmail_smtp::serve::ServerConfig::new("mta.test"));
            deepmail_smtp::serve::serve(listener, config, s, std::future::pending()).await;
        });
        addr
    });
    (sink, addr)
}

/// The envelope of a message from `from` to the one recipient `to`, with
/// no parameters.
pub(crate) fn envelope(from: &str, to: &str) -> deepmail_smtp::Envelope {
    deepmail_smtp::Envelope {
        reverse_path: from.into(),
        mail_params: vec![],
        recipients: vec![deepmail_smtp::Recipient {
            mailbox: to.into(),
            params: vec![],
        }],
    }
}

/// Waits (up to `secs`) until `done` says so, looking every 50 ms.
pub(crate) fn wait_for(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !done() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (up to 60 s) until something accepts TCP connections on `addr`.
pub(crate) fn wait_listening(addr: SocketAddr, what: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what} is not listening on {addr}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Starts `deepmail gateway` with `toml` written to `dir/NAME.toml`, its
/// log in `dir/NAME.log`.
pub(crate) fn spawn_gateway(dir: &Path, name: &str, toml: String) -> std::process::Child {
    let config = dir.join(format!("{name}.toml"));
    std::fs::write(&config, toml).unwrap();
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    deepmail()
        .args(["gateway", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("deepmail gateway starts")
}

/// How many fragments the gateway whose log is `log` reassembled its first
/// ADU from (its "ADU reassembled ... fragments=N" line).
#[allow(dead_code)]
pub(crate) fn fragments_reassembled(log: &Path) -> usize {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .find(|l| l.contains("ADU reassembled"))
        .and_then(|l| l.split("fragments=").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no reassembly in {}:\n{text}", log.display()))
}
