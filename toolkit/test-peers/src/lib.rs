//! The one place where deepmail's tests find the real interop peers they
//! run against, and decide what happens when one is missing.
//!
//! A test that needs a peer asks for it first and returns when it is not
//! there:
//!
//! ```text
//! let Some(exim) = test_peers::exim() else { return };
//! ```
//!
//! - **Peer present**: its paths, and the test runs against it.
//! - **Peer missing, `CI` unset** (a developer's or a new user's machine):
//!   `None`. The test ends there, a `skipped:` line goes straight to the
//!   terminal (past libtest's output capture), and the skip is recorded so
//!   that this crate's `summary` test target, which cargo runs after every
//!   other package's tests, prints one line per missing peer at the end of
//!   `cargo test`: how many tests it cost and the one command that installs
//!   it.
//! - **Peer missing, `CI` set** (`.ci/run`): a panic that names the peer
//!   and its install command. CI installs every peer, so a missing one is a
//!   broken CI script, never a silent pass.
//!
//! Detection only: nothing here installs or builds a peer (that is what
//! `scripts/peers/install-all.sh` is for).

#![warn(missing_docs)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A real implementation some tests run against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Exim 4.96: Batch SMTP in (`-bS`) and out (`use_bsmtp`).
    Exim,
    /// Exim, Dovecot and swaks: the real mail stack around two gateways.
    MailStack,
    /// NSD 4: an authoritative DNS server serving URI records.
    Nsd,
    /// dtn7-rs `dtnd` 0.21: a real Bundle Protocol node.
    Dtnd,
    /// `hardy-node`: a BPv7 node over Hardy's hardy-bpa 0.2 and
    /// hardy-tcpclv4 0.4 (TCPCL with TLS).
    Hardy,
    /// aioquic: an independent HTTP/3 server.
    Aioquic,
    /// pyD3TN 0.15: an independent BPv7 serializer and parser.
    PyD3tn,
    /// dnspython 2.9: an independent DNS message parser (URI records).
    Dnspython,
    /// Conformance adapters over bp7 0.12 and hardy-bpv7 0.6, two
    /// independent Rust BPv7 implementations.
    RustBp,
    /// componentize-py 0.25.1: builds the Python stage plugins of
    /// `plugins-py/` into components.
    ComponentizePy,
    /// jco 1.34 (npm): builds the JavaScript stage plugins of
    /// `plugins-js/` into components.
    Jco,
    /// Postfix 3.7's postconf, postmap and smtp-source, unpacked (no daemon).
    Postfix,
}

impl Peer {
    /// Every peer, in the order the summary lists them.
    pub const ALL: [Peer; 12] = [
        Peer::Exim,
        Peer::MailStack,
        Peer::Nsd,
        Peer::Dtnd,
        Peer::Hardy,
        Peer::Aioquic,
        Peer::PyD3tn,
        Peer::Dnspython,
        Peer::RustBp,
        Peer::ComponentizePy,
        Peer::Jco,
        Peer::Postfix,
    ];

    /// A short stable name (also the skip record's file name).
    pub fn id(self) -> &'static str {
        match self {
            Peer::Exim => "exim",
            Peer::MailStack => "mailstack",
            Peer::Nsd => "nsd",
            Peer::Dtnd => "dtnd",
            Peer::Hardy => "hardy",
            Peer::Aioquic => "aioquic",
            Peer::PyD3tn => "pyd3tn",
            Peer::Dnspython => "dnspython",
            Peer::RustBp => "rust-bp",
            Peer::ComponentizePy => "componentize-py",
            Peer::Jco => "jco",
            Peer::Postfix => "postfix",
        }
    }

    /// What it is, for people.
    pub fn describe(self) -> &'static str {
        match self {
            Peer::Exim => "Exim 4.96 (Debian exim4-daemon-light)",
            Peer::MailStack => "the mail stack: Exim, Dovecot IMAP and swaks",
            Peer::Nsd => "NSD 4 (Debian nsd)",
            Peer::Dtnd => "dtn7-rs dtnd 0.21 (built once into ~/.cache/deepmail/peers, ~12 min)",
            Peer::Hardy => "hardy-node over hardy-bpa 0.2 + hardy-tcpclv4 0.4 (built once into ~/.cache/deepmail/peers, ~2 min)",
            Peer::Aioquic => "aioquic, an HTTP/3 server (PyPI, into target/aioquic-venv)",
            Peer::PyD3tn => "pyD3TN 0.15.2 (PyPI, into target/pyd3tn-venv)",
            Peer::Dnspython => "dnspython 2.9.2 (PyPI, into target/dnspython-venv)",
            Peer::RustBp => "the bp7 0.12 and hardy-bpv7 0.6 adapters (crates.io, built once into ~/.cache/deepmail/peers, ~1 min)",
            Peer::ComponentizePy => "componentize-py 0.25.1 (PyPI, into target/componentize-py-venv)",
            Peer::Jco => "jco 1.34.0 and componentize-js (npm, into plugins-js/fragmenter/node_modules)",
            Peer::Postfix => "Postfix's postconf and postmap (Debian postfix, unpacked)",
        }
    }

    /// The one command that installs it.
    pub fn install_command(self) -> &'static str {
        match self {
            Peer::Exim => "bash scripts/peers/install-exim.sh",
            Peer::MailStack => "bash scripts/peers/install-mailstack.sh",
            Peer::Nsd => "bash scripts/peers/install-nsd.sh",
            Peer::Dtnd => "bash scripts/peers/install-dtnd.sh",
            Peer::Hardy => "bash scripts/peers/install-hardy.sh",
            Peer::Aioquic => "bash scripts/peers/install-aioquic.sh",
            Peer::PyD3tn => "bash conformance/adapters/setup-pyd3tn.sh",
            Peer::Dnspython => "bash conformance/adapters/setup-dnspython.sh",
            Peer::RustBp => "bash conformance/adapters/setup-rust-bp.sh",
            Peer::ComponentizePy => "bash plugins-py/build.sh",
            Peer::Jco => "bash plugins-js/build.sh",
            Peer::Postfix => "bash scripts/peers/install-postfix.sh",
        }
    }
}

/// The workspace root (this crate sits at `toolkit/test-peers`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("toolkit/test-peers sits two levels below the workspace root")
        .to_path_buf()
}

/// Whether this run is CI's (`CI` set to anything but `false` or empty).
pub fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Where this `cargo test` run's skip records go: one directory per cargo
/// process (the parent of every test binary it runs), so runs never mix.
pub fn skip_dir() -> PathBuf {
    std::env::temp_dir().join(format!(
        "deepmail-peer-skips-{}",
        std::os::unix::process::parent_id()
    ))
}

/// Why a peer was not found: what was looked for, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound(pub String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

/// `found`, or the missing-peer decision: `None` and a visible, recorded
/// skip outside CI; a panic under CI.
pub fn require<T>(peer: Peer, found: Result<T, NotFound>) -> Option<T> {
    let missing = match found {
        Ok(value) => return Some(value),
        Err(missing) => missing,
    };
    let install = peer.install_command();
    if under_ci() {
        panic!(
            "{} is missing under CI ({missing}): `{install}` installs it, and .ci/run must",
            peer.describe()
        );
    }
    let test = std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("a test")
        .to_string();
    // Straight to the terminal: libtest captures print!/eprint!, not this.
    let _ = writeln!(
        std::io::stderr(),
        "skipped: {test}: needs {} ({missing}); install: {install}",
        peer.describe()
    );
    let dir = skip_dir();
    if std::fs::create_dir_all(&dir).is_ok() {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(peer.id()))
        {
            let _ = writeln!(f, "{test}");
        }
    }
    None
}

/// The skipped tests recorded in `dir`, per peer.
pub fn recorded_skips(dir: &Path) -> Vec<(Peer, Vec<String>)> {
    let mut out = Vec::new();
    for peer in Peer::ALL {
        if let Ok(text) = std::fs::read_to_string(dir.join(peer.id())) {
            let tests: Vec<String> = text.lines().map(str::to_string).collect();
            if !tests.is_empty() {
                out.push((peer, tests));
            }
        }
    }
    out
}

/// The summary's lines: one per peer with skipped tests.
pub fn summary_lines(skips: &[(Peer, Vec<String>)]) -> Vec<String> {
    skips
        .iter()
        .map(|(peer, tests)| {
            let n = tests.len();
            format!(
                "skipped {n} {} {}: install with `{}`",
                if n == 1 {
                    "test that needs"
                } else {
                    "tests that need"
                },
                peer.describe(),
                peer.install_command()
            )
        })
        .collect()
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn first_file(candidates: &[&str]) -> Option<PathBuf> {
    candidates.iter().map(PathBuf::from).find(|p| p.is_file())
}

fn find_exim() -> Result<PathBuf, NotFound> {
    if let Some(p) = std::env::var_os("DEEPMAIL_EXIM") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(NotFound(format!(
                "DEEPMAIL_EXIM={} is not a file",
                p.display()
            )))
        };
    }
    first_file(&["/usr/sbin/exim4", "/usr/sbin/exim"])
        .or_else(|| on_path("exim4"))
        .or_else(|| on_path("exim"))
        .ok_or_else(|| {
            NotFound("no exim4 in /usr/sbin or on PATH, and DEEPMAIL_EXIM is unset".into())
        })
}

/// Exim's binary.
pub fn exim() -> Option<PathBuf> {
    require(Peer::Exim, find_exim())
}

/// The real mail stack's programs.
#[derive(Debug, Clone)]
pub struct MailStack {
    /// Exim.
    pub exim: PathBuf,
    /// Dovecot.
    pub dovecot: PathBuf,
    /// swaks.
    pub swaks: PathBuf,
}

fn find_mail_stack() -> Result<MailStack, NotFound> {
    let exim = find_exim();
    let dovecot = std::env::var_os("DEEPMAIL_DOVECOT")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| first_file(&["/usr/sbin/dovecot"]))
        .or_else(|| on_path("dovecot"));
    let swaks = on_path("swaks");
    match (exim, dovecot, swaks) {
        (Ok(exim), Some(dovecot), Some(swaks)) => Ok(MailStack {
            exim,
            dovecot,
            swaks,
        }),
        (exim, dovecot, swaks) => {
            let mut missing = Vec::new();
            if exim.is_err() {
                missing.push("exim");
            }
            if dovecot.is_none() {
                missing.push("dovecot");
            }
            if swaks.is_none() {
                missing.push("swaks");
            }
            Err(NotFound(format!("missing: {}", missing.join(", "))))
        }
    }
}

/// Exim, Dovecot and swaks.
pub fn mail_stack() -> Option<MailStack> {
    require(Peer::MailStack, find_mail_stack())
}

/// NSD's daemon (`scripts/peers/nsd/start-nsd.sh` starts it).
pub fn nsd() -> Option<PathBuf> {
    let found = std::env::var_os("DEEPMAIL_NSD")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .or_else(|| first_file(&["/usr/sbin/nsd", "/usr/local/sbin/nsd"]))
        .or_else(|| on_path("nsd"))
        .ok_or_else(|| "no nsd in /usr/sbin, /usr/local/sbin or on PATH".to_string());
    require(Peer::Nsd, found.map_err(NotFound))
}

/// The directory holding `dtnd` and its tools, found the way
/// `scripts/peers/install-dtnd.sh` looks (without building anything).
pub fn dtnd() -> Option<PathBuf> {
    let found = match std::env::var_os("DEEPMAIL_DTND") {
        Some(p) => {
            let p = PathBuf::from(p);
            if p.is_file() {
                Ok(p)
            } else {
                Err(format!("DEEPMAIL_DTND={} is not a file", p.display()))
            }
        }
        None => {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
                .unwrap_or_else(|| PathBuf::from("/nonexistent"));
            let bin = cache.join("deepmail/peers/dtn7-0.21.0/bin/dtnd");
            if bin.is_file() {
                Ok(bin)
            } else {
                Err(format!("{} is not there", bin.display()))
            }
        }
    };
    require(Peer::Dtnd, found.map_err(NotFound))
}

/// `hardy-node`, as `scripts/peers/install-hardy.sh` finds it for the
/// sources in this checkout (without building anything).
pub fn hardy() -> Option<PathBuf> {
    let found = Command::new("bash")
        .arg(workspace_root().join("scripts/peers/install-hardy.sh"))
        .env("DEEPMAIL_HARDY_NO_BUILD", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))
        .and_then(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .find_map(|l| l.strip_prefix("hardy-node="))
                .map(PathBuf::from)
                .filter(|p| p.is_file())
                .ok_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string())
        });
    require(Peer::Hardy, found.map_err(NotFound))
}

/// `py`, when it runs `check` (a Python statement) successfully.
fn python_that(py: PathBuf, check: &str) -> Result<PathBuf, NotFound> {
    let ok = Command::new(&py)
        .args(["-c", check])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(py)
    } else {
        Err(NotFound(format!("{} cannot run `{check}`", py.display())))
    }
}

/// A python with aioquic and cryptography.
pub fn aioquic_python() -> Option<PathBuf> {
    let py = std::env::var_os("DEEPMAIL_AIOQUIC_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/aioquic-venv/bin/python"));
    require(
        Peer::Aioquic,
        python_that(py, "import aioquic, cryptography"),
    )
}

/// A python with pyD3TN 0.15.2.
pub fn pyd3tn_python() -> Option<PathBuf> {
    let py = std::env::var_os("DEEPMAIL_VENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .unwrap_or_else(|| workspace_root().join("target/pyd3tn-venv/bin/python"));
    let check = "from importlib.metadata import version; assert version('pyD3TN') == '0.15.2'";
    require(Peer::PyD3tn, python_that(py, check))
}

/// The Python of the venv `conformance/adapters/setup-dnspython.sh` makes
/// (`$DEEPMAIL_DNSPYTHON_VENV`, default `target/dnspython-venv`), when it
/// has dnspython 2.9.2.
pub fn dnspython_python() -> Option<PathBuf> {
    let py = std::env::var_os("DEEPMAIL_DNSPYTHON_VENV")
        .map(|v| PathBuf::from(v).join("bin/python"))
        .unwrap_or_else(|| workspace_root().join("target/dnspython-venv/bin/python"));
    let check = "from importlib.metadata import version; assert version('dnspython') == '2.9.2'";
    require(Peer::Dnspython, python_that(py, check))
}

/// The `bp7-adapter` and `hardy-bpv7-adapter` programs, as
/// `conformance/adapters/setup-rust-bp.sh` finds them for the sources in
/// this checkout (without building anything).
pub fn rust_bp_adapters() -> Option<(PathBuf, PathBuf)> {
    let found = Command::new("bash")
        .arg(workspace_root().join("conformance/adapters/setup-rust-bp.sh"))
        .env("DEEPMAIL_RUST_BP_NO_BUILD", "1")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run bash: {e}"))
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout);
            let find = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(PathBuf::from)
                    .filter(|p| p.is_file())
            };
            match (find("bp7-adapter="), find("hardy-bpv7-adapter=")) {
                (Some(a), Some(b)) => Ok((a, b)),
                _ => Err(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            }
        });
    require(Peer::RustBp, found.map_err(NotFound))
}

/// The `componentize-py` of the venv `plugins-py/build.sh` makes, when
/// it is version 0.25.1.
pub fn componentize_py() -> Option<PathBuf> {
    let bin = workspace_root().join("target/componentize-py-venv/bin/componentize-py");
    let found = Command::new(&bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{} does not run: {e}", bin.display()))
        .and_then(|out| {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if text.ends_with(" 0.25.1") {
                Ok(bin.clone())
            } else {
                Err(format!("{} is `{text}`, not 0.25.1", bin.display()))
            }
        });
    require(Peer::ComponentizePy, found.map_err(NotFound))
}

/// The `jco` that `plugins-js/build.sh` installs (npm ci) for the
/// fragmenter, when it is there.
pub fn jco() -> Option<PathBuf> {
    let bin = workspace_root().join("plugins-js/fragmenter/node_modules/.bin/jco");
    let found = if bin.exists() {
        Ok(bin)
    } else {
        Err(format!("{} is not there", bin.display()))
    };
    require(Peer::Jco, found.map_err(NotFound))
}

/// Postfix's programs, unpacked by `scripts/peers/install-postfix.sh`.
#[derive(Debug, Clone)]
pub struct Postfix {
    /// The unpacked package's root.
    pub root: PathBuf,
}

impl Postfix {
    /// A command for one of its programs (`postconf`, `postmap`,
    /// `smtp-source`), with its private libraries on the library path.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.root.join("usr/sbin").join(program));
        cmd.env("LD_LIBRARY_PATH", self.root.join("usr/lib/postfix"));
        cmd
    }
}

/// Postfix's programs (no daemon: the package is unpacked, not installed).
pub fn postfix() -> Option<Postfix> {
    let root = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/nonexistent"))
        .join("deepmail/peers/postfix");
    let found = Postfix { root };
    let runs = found
        .command("postconf")
        .args(["-d", "mail_version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let found = if runs {
        Ok(found)
    } else {
        Err(format!(
            "no working postconf under {}",
            found.root.display()
        ))
    };
    require(Peer::Postfix, found.map_err(NotFound))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_each_peer_once_with_its_count_and_command() {
        let lines = summary_lines(&[
            (Peer::Exim, vec!["a".into(), "b".into()]),
            (Peer::Nsd, vec!["c".into()]),
        ]);
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("skipped 2 tests that need Exim"));
        assert!(lines[0].ends_with("`bash scripts/peers/install-exim.sh`"));
        assert!(lines[1].starts_with("skipped 1 test that needs NSD"));
    }

    #[test]
    fn records_are_read_back_per_peer() {
        let dir = tempdir();
        std::fs::write(dir.join("dtnd"), "t1\nt2\n").unwrap();
        std::fs::write(dir.join("unknown-peer"), "x\n").unwrap();
        let skips = recorded_skips(&dir);
        assert_eq!(skips.len(), 1);
        assert_eq!(skips[0].0, Peer::Dtnd);
        assert_eq!(skips[0].1, vec!["t1", "t2"]);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_present_peer_is_returned_whatever_ci_says() {
        assert_eq!(require(Peer::Exim, Ok::<_, NotFound>(7)), Some(7));
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "test-peers-unit-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
