//! Interop with a real Exim (Debian's `exim4-daemon-light`, 4.96), never a
//! mock, in both directions:
//!
//! * Exim writes Batch SMTP (`appendfile`/`pipe` with `use_bsmtp`, with and
//!   without `use_crlf`) and `deepmail decode` reads it;
//! * `deepmail encode` writes Batch SMTP and `exim -bS` reads it and delivers
//!   to a Maildir.
//!
//! Each test instantiates `scripts/peers/exim/exim.conf.in` into its own
//! temporary directory (spool, logs, outputs) and runs Exim in the foreground
//! (`-odi`): no daemon, no system configuration, nothing leaves the machine.
//! Works as root (CI) and as an ordinary user; see the template's comments.
//!
//! Exim is found by `test_peers::exim` (`$DEEPMAIL_EXIM`, `/usr/sbin/exim4`
//! or `exim4`/`exim` on PATH). Without it these tests are skipped visibly
//! outside CI and fail under CI; `bash scripts/peers/install-exim.sh`
//! installs it.

use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;

/// `primary_hostname` in the template.
const HOST: &str = "earth-gw.example";
/// Envelope sender used throughout.
const OPS: &str = "ops@earth.example";

// ---------------------------------------------------------------------------
// deepmail

mod common;
use common::{fails as dm_fails, ok as dm_ok};

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

// ---------------------------------------------------------------------------
// Exim, in a sandbox of its own

/// One Exim configuration in a temporary directory.
struct Exim {
    bin: PathBuf,
    /// `4.96`, from `exim -bV`.
    version: String,
    dir: tempfile::TempDir,
}

/// One `<=` line of Exim's main log: a message Exim accepted.
#[derive(Debug)]
struct Arrival {
    /// Exim's message id, e.g. `1xVKfr-0003Zr-1H`.
    id: String,
    /// Envelope sender as logged (`<>` for the null sender).
    sender: String,
    /// `U=`: the caller's login, which Exim also writes in `Received:`.
    login: String,
    /// `P=`: `local` for `-bm`, `local-bsmtp` for `-bS`.
    protocol: String,
}

impl Exim {
    /// A sandboxed Exim, or `None` when Exim is not installed (the test
    /// is then skipped outside CI; see `test_peers`).
    fn new() -> Option<Exim> {
        let bin = test_peers::exim()?;
        let bv = Command::new(&bin)
            .arg("-bV")
            .output()
            .expect("exim -bV runs");
        let bv = String::from_utf8_lossy(&bv.stdout).into_owned();
        let version = bv
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("Exim version "))
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or_else(|| panic!("`{} -bV` names no version:\n{bv}", bin.display()))
            .to_owned();

        let dir = tempfile::tempdir().unwrap();
        // Called by root, Exim keeps root for -C but may not deliver as
        // root (Debian: FIXED_NEVER_USERS=0): everything runs as nobody.
        // Called by anyone else, it runs as the caller.
        let me = std::fs::metadata("/proc/self").expect("/proc/self (Linux)");
        let root = me.uid() == 0;
        let (uid, gid) = if root {
            (65534, 65534)
        } else {
            (me.uid(), me.gid())
        };
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["spool", "log", "out", "maildir"] {
            let p = dir.path().join(sub);
            std::fs::create_dir(&p).unwrap();
            if root {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
            }
        }
        let template = workspace_root().join("scripts/peers/exim/exim.conf.in");
        let conf = std::fs::read_to_string(&template)
            .unwrap()
            .replace("@DIR@", s(dir.path()))
            .replace("@UID@", &uid.to_string())
            .replace("@GID@", &gid.to_string());
        std::fs::write(dir.path().join("exim.conf"), conf).unwrap();
        Some(Exim { bin, version, dir })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs `exim -C <conf> ARGS` with STDIN.
    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        let mut child = Command::new(&self.bin)
            .arg("-C")
            .arg(self.path("exim.conf"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("exim starts");
        let mut pipe = child.stdin.take().unwrap();
        let input = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            // Exim stops reading at the first error in a -bS batch.
            let _ = pipe.write_all(&input);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    fn ok(&self, args: &[&str], stdin: &[u8]) {
        let out = self.run(args, stdin);
        assert!(
            out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
            "exim {args:?}: {}\nstdout: {}\nstderr: {}\nmainlog:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.mainlog()
        );
    }

    /// `exim -odi -oi -f SENDER -- RCPT...`: a message on standard input
    /// (`-oi`: a line with a lone dot is content, not the end).
    fn submit(&self, sender: &str, rcpts: &[&str], message: &str) {
        let mut args = vec!["-odi", "-oi", "-f", sender, "--"];
        args.extend_from_slice(rcpts);
        self.ok(&args, message.as_bytes());
    }

    fn mainlog(&self) -> String {
        std::fs::read_to_string(self.path("log/mainlog")).unwrap_or_default()
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.mainlog()
            .lines()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                (w.get(3) == Some(&"<=")).then(|| {
                    let field = |k: &str| {
                        w.iter()
                            .find_map(|f| f.strip_prefix(k))
                            .unwrap_or_else(|| panic!("no {k} in {l}"))
                            .to_owned()
                    };
                    Arrival {
                        id: w[2].to_owned(),
                        sender: w[4].to_owned(),
                        login: field("U="),
                        protocol: field("P="),
                    }
                })
            })
            .collect()
    }

    fn read(&self, rel: &str) -> Vec<u8> {
        std::fs::read(self.path(rel)).unwrap_or_else(|e| {
            panic!("{rel}: {e}\nmainlog:\n{}", self.mainlog());
        })
    }

    /// The messages delivered to `maildir/LOCAL/new`, in file name order.
    fn maildir(&self, local: &str) -> Vec<String> {
        let dir = self.path(&format!("maildir/{local}/new"));
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
            .iter()
            .map(|f| String::from_utf8(std::fs::read(f).unwrap()).expect("utf-8 mail"))
            .collect()
    }

    /// The `Received:` field Exim writes (its default `received_header_text`)
    /// up to and including the tab before the date.
    fn received(&self, via: Via) -> String {
        let mut r = format!("Received: from {} ", via.arrival.login);
        if let Some(helo) = via.helo {
            r += &format!("(helo={helo})\r\n\t");
        }
        r += &format!(
            "by {HOST} with {} (Exim {})\r\n\t",
            via.arrival.protocol, self.version
        );
        if via.arrival.sender != "<>" {
            r += &format!("(envelope-from <{}>)\r\n\t", via.arrival.sender);
        }
        r += &format!("id {}", via.arrival.id);
        if let Some(rcpt) = via.only_rcpt {
            r += &format!("\r\n\tfor {rcpt}");
        }
        r + ";\r\n\t"
    }
}

/// What Exim's `Received:` field depends on.
struct Via<'a> {
    arrival: &'a Arrival,
    /// HELO/EHLO domain in -bS input.
    helo: Option<&'a str>,
    /// The recipient, when the message has exactly one.
    only_rcpt: Option<&'a str>,
}

// ---------------------------------------------------------------------------
// Matching what Exim delivered against what it was given

enum Piece {
    Lit(String),
    /// An RFC 5322 date written by Exim, e.g. `Mon, 23 Nov 2026 03:25:52 +0000`,
    /// up to the next CRLF.
    Date,
}
use Piece::{Date, Lit};

fn looks_like_date(d: &str) -> bool {
    let w: Vec<&str> = d.split(' ').collect();
    w.len() == 6
        && w[0].len() == 4
        && w[0].ends_with(',')
        && w[1].parse::<u8>().is_ok()
        && w[2].len() == 3
        && w[3].len() == 4
        && w[3].parse::<u16>().is_ok()
        && w[4].len() == 8
        && w[4].matches(':').count() == 2
        && (w[5].starts_with('+') || w[5].starts_with('-'))
        && w[5].len() == 5
}

/// Asserts that GOT is exactly the concatenation of PIECES.
fn assert_pieces(what: &str, got: &str, pieces: &[Piece]) {
    let mut rest = got;
    for (i, piece) in pieces.iter().enumerate() {
        match piece {
            Lit(lit) => {
                if let Some(after) = rest.strip_prefix(lit.as_str()) {
                    rest = after;
                } else {
                    let at = got.len() - rest.len();
                    let common = lit
                        .bytes()
                        .zip(rest.bytes())
                        .take_while(|(a, b)| a == b)
                        .count();
                    panic!(
                        "{what}: piece {i} differs at byte {} of the message:\n\
                         expected {:?}\n     got {:?}\n--- whole message ---\n{got}",
                        at + common,
                        &lit[common..lit.len().min(common + 120)],
                        &rest[common..rest.len().min(common + 120)]
                    );
                }
            }
            Date => {
                let end = rest.find("\r\n").unwrap_or(rest.len());
                assert!(
                    looks_like_date(&rest[..end]),
                    "{what}: piece {i}: expected a date, got {:?}\n--- whole message ---\n{got}",
                    &rest[..end]
                );
                rest = &rest[end..];
            }
        }
    }
    assert!(
        rest.is_empty(),
        "{what}: {} unexpected bytes at the end: {:?}",
        rest.len(),
        &rest[..rest.len().min(200)]
    );
}

/// GOT is ADDED (what Exim prepends) followed by ORIGINAL, byte for byte.
fn assert_prefixed(what: &str, got: &str, added: Vec<Piece>, original: &str) {
    let mut pieces = added;
    pieces.push(Lit(original.to_owned()));
    assert_pieces(what, got, &pieces);
}

// ---------------------------------------------------------------------------
// Test messages (RFC 5322, CRLF)

/// 8-bit UTF-8 text with the lines BSMTP must take care of (a lone dot, two
/// dots, one dot, empty lines) and a ~16 KB base64 attachment.
fn rich_message(message_id: &str, to: &str) -> String {
    let mut m = String::new();
    m += "From: Mission Control <ops@earth.example>\r\n";
    m += &format!("To: Commander Ada <{to}>\r\n");
    m += "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= through Exim\r\n";
    m += "Date: Mon, 23 Nov 2026 03:00:00 +0000\r\n";
    m += &format!("Message-ID: <{message_id}>\r\n");
    m += "MIME-Version: 1.0\r\n";
    m += "Content-Type: multipart/mixed; boundary=\"moonbound\"\r\n";
    m += "\r\n";
    m += "--moonbound\r\n";
    m += "Content-Type: text/plain; charset=utf-8\r\n";
    m += "Content-Transfer-Encoding: 8bit\r\n";
    m += "\r\n";
    m += "Grüße from Earth — 8-bit UTF-8: 月面基地, Ça va?\r\n";
    m += ".\r\n";
    m += "..a line that starts with two dots, and a lone dot above\r\n";
    m += ".a line that starts with one dot\r\n";
    m += "\r\n";
    m += "\r\n";
    m += "(two empty lines above)\r\n";
    m += "--moonbound\r\n";
    m += "Content-Type: application/octet-stream; name=\"telemetry.bin\"\r\n";
    m += "Content-Disposition: attachment; filename=\"telemetry.bin\"\r\n";
    m += "Content-Transfer-Encoding: base64\r\n";
    m += "\r\n";
    let mut x: u32 = 0x2545_f491;
    let bytes: Vec<u8> = (0..12_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
    for line in b64.as_bytes().chunks(76) {
        m += std::str::from_utf8(line).unwrap();
        m += "\r\n";
    }
    m += "--moonbound--\r\n";
    m
}

/// Dot-stuffs CONTENT (CRLF lines) for hand-written -bS input.
fn stuffed(content: &str) -> String {
    content
        .split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with('.') {
                format!(".{l}")
            } else {
                l.to_owned()
            }
        })
        .collect()
}

/// A hand-written Batch SMTP transaction (CRLF), as `exim -bS` input.
fn transaction(from: &str, rcpts: &[&str], content: &str) -> String {
    let mut t = format!("MAIL FROM:<{from}>\r\n");
    for r in rcpts {
        t += &format!("RCPT TO:<{r}>\r\n");
    }
    t + "DATA\r\n" + &stuffed(content) + ".\r\n"
}

fn decoded(json: &str) -> Vec<serde_json::Value> {
    serde_json::from_str::<serde_json::Value>(json)
        .unwrap()
        .as_array()
        .expect("a JSON array of messages")
        .clone()
}

fn forward_paths(m: &serde_json::Value) -> Vec<String> {
    m["forward_paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["mailbox"].as_str().unwrap().to_owned())
        .collect()
}

fn eml(dir: &Path, n: usize) -> String {
    String::from_utf8(std::fs::read(dir.join(format!("{n:04}.eml"))).unwrap()).unwrap()
}

fn lines_of(batch: &[u8]) -> Vec<&[u8]> {
    batch.split(|&b| b == b'\n').collect()
}

// ---------------------------------------------------------------------------
// Exim writes, deepmail reads

/// Exim's default BSMTP (bare LF, no HELO/QUIT, dot-stuffed, several
/// recipients in one transaction with batch_max, several transactions in one
/// file, the null sender), from both `appendfile` and `pipe`: strict decoding
/// refuses it for its bare LFs, `--lenient` recovers every envelope, and each
/// message is exactly Exim's `Received:` field (and, where the sender left
/// them out, Exim's `Message-Id:`/`Date:`) around the bytes submitted.
#[test]
fn exim_bare_lf_bsmtp_decodes_leniently_byte_for_byte() {
    let Some(exim) = Exim::new() else { return };
    let a = rich_message("a@earth.example", "ada@lf.moon.example");
    exim.submit(
        OPS,
        &[
            "ada@lf.moon.example",
            "bob@lf.moon.example",
            "dan@pipe.moon.example",
        ],
        &a,
    );
    // A -bS batch: a header-poor bounce (null sender), then another rich one.
    let b = "Subject: ping\r\n\r\nz\r\n";
    let c = rich_message("c@earth.example", "carol@lf.moon.example");
    let batch = transaction("", &["carol@lf.moon.example"], b)
        + &transaction(OPS, &["ada@lf.moon.example"], &c);
    exim.ok(&["-odi", "-bS"], batch.as_bytes());

    let arrivals = exim.arrivals();
    assert_eq!(arrivals.len(), 3, "{}", exim.mainlog());
    assert_eq!(
        (arrivals[0].sender.as_str(), arrivals[0].protocol.as_str()),
        (OPS, "local")
    );
    assert_eq!(
        (arrivals[1].sender.as_str(), arrivals[1].protocol.as_str()),
        ("<>", "local-bsmtp")
    );
    let log = exim.mainlog();
    for line in [
        format!(
            "{} => ada <ada@lf.moon.example> R=to_bsmtp_lf T=bsmtp_lf",
            arrivals[0].id
        ),
        format!(
            "{} -> bob <bob@lf.moon.example> R=to_bsmtp_lf T=bsmtp_lf",
            arrivals[0].id
        ),
        format!(
            "{} => dan <dan@pipe.moon.example> R=to_bsmtp_pipe T=bsmtp_pipe",
            arrivals[0].id
        ),
        format!(
            "{} => carol <carol@lf.moon.example> R=to_bsmtp_lf T=bsmtp_lf",
            arrivals[1].id
        ),
    ] {
        assert!(log.contains(&line), "log has {line:?}:\n{log}");
    }

    // What Exim wrote, raw.
    let raw = exim.read("out/lf.bsmtp");
    assert!(
        !raw.contains(&b'\r'),
        "bare LF only: not one CR, though the input was CRLF"
    );
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        text.starts_with(
            "MAIL FROM:<ops@earth.example>\nRCPT TO:<ada@lf.moon.example>\n\
             RCPT TO:<bob@lf.moon.example>\nDATA\nReceived: from "
        ),
        "{}",
        &text[..300]
    );
    assert!(text.contains("\n.\nMAIL FROM:<>\nRCPT TO:<carol@lf.moon.example>\nDATA\nReceived: "));
    assert!(
        text.contains("\n..\n...a line that starts with two dots, and a lone dot above\n..a line that starts with one dot\n\n\n(two empty lines"),
        "dot-stuffed"
    );
    assert!(text.ends_with("--moonbound--\n.\n"));
    let lines = lines_of(&raw);
    assert_eq!(
        lines.iter().filter(|l| **l == b".").count(),
        3,
        "3 transactions"
    );
    for l in &lines {
        let up = String::from_utf8_lossy(l).to_ascii_uppercase();
        assert!(
            !["HELO", "EHLO", "QUIT", "RSET"]
                .iter()
                .any(|v| up.starts_with(v)),
            "Exim writes no {up}"
        );
        if up.starts_with("MAIL FROM:") {
            assert!(
                up.ends_with('>'),
                "no MAIL parameters, not even BODY=8BITMIME for 8-bit mail: {up}"
            );
        }
    }

    // Strict decoding refuses it, for its line ends alone.
    let file = exim.path("out/lf.bsmtp");
    let err = dm_fails(&["decode", s(&file)]);
    assert!(
        err.contains("[bare-lf]") && err.contains("line 1 "),
        "{err}"
    );

    // Lenient decoding: every envelope, every byte.
    let emls = exim.dir.path().join("lf-eml");
    let msgs = decoded(&dm_ok(&[
        "decode",
        "--lenient",
        s(&file),
        "--eml-dir",
        s(&emls),
    ]));
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0]["reverse_path"], OPS);
    assert_eq!(
        forward_paths(&msgs[0]),
        ["ada@lf.moon.example", "bob@lf.moon.example"]
    );
    assert_eq!(msgs[1]["reverse_path"], "");
    assert_eq!(forward_paths(&msgs[1]), ["carol@lf.moon.example"]);
    assert_eq!(msgs[2]["reverse_path"], OPS);
    assert_eq!(forward_paths(&msgs[2]), ["ada@lf.moon.example"]);
    for m in &msgs {
        assert_eq!(m["mail_parameters"], serde_json::json!([]));
    }
    assert_eq!(msgs[0]["message_id"], "a@earth.example");

    let ra = exim.received(Via {
        arrival: &arrivals[0],
        helo: None,
        only_rcpt: None,
    });
    assert_prefixed(
        "message A",
        &eml(&emls, 1),
        vec![Lit(ra.clone()), Date, Lit("\r\n".into())],
        &a,
    );
    // B had no Message-ID and no Date: Exim adds both after the last header
    // field (it is local input), and nothing else.
    let rb = exim.received(Via {
        arrival: &arrivals[1],
        helo: None,
        only_rcpt: Some("carol@lf.moon.example"),
    });
    let id_b = &arrivals[1].id;
    assert_pieces(
        "message B",
        &eml(&emls, 2),
        &[
            Lit(rb),
            Date,
            Lit(format!(
                "\r\nSubject: ping\r\nMessage-Id: <E{id_b}@{HOST}>\r\nDate: "
            )),
            Date,
            Lit("\r\n\r\nz\r\n".into()),
        ],
    );
    assert_eq!(msgs[1]["message_id"], format!("E{id_b}@{HOST}"));
    let rc = exim.received(Via {
        arrival: &arrivals[2],
        helo: None,
        only_rcpt: Some("ada@lf.moon.example"),
    });
    assert_prefixed(
        "message C",
        &eml(&emls, 3),
        vec![Lit(rc), Date, Lit("\r\n".into())],
        &c,
    );

    // The pipe transport writes the same format: A again, for dan.
    let piped = exim.read("out/pipe.bsmtp");
    assert!(piped
        .starts_with(b"MAIL FROM:<ops@earth.example>\nRCPT TO:<dan@pipe.moon.example>\nDATA\n"));
    assert!(!piped.contains(&b'\r') && piped.ends_with(b"\n.\n"));
    let file = exim.path("out/pipe.bsmtp");
    let msgs = decoded(&dm_ok(&["decode", "--lenient", s(&file)]));
    assert_eq!(msgs.len(), 1);
    assert_eq!(forward_paths(&msgs[0]), ["dan@pipe.moon.example"]);
    assert_eq!(
        msgs[0]["content"].as_str().unwrap(),
        eml(&emls, 1),
        "same content as through appendfile"
    );
}

/// With `use_crlf` Exim's BSMTP is strict-valid RFC 2442 and decodes without
/// `--lenient`, byte for byte, except for one thing Exim does: it never
/// declares BODY=8BITMIME, so a line over 998 octets (which Exim passes
/// through) makes strict decoding fail with `line-too-long`; `--lenient`
/// takes it.
#[test]
fn exim_crlf_bsmtp_is_strict_valid() {
    let Some(exim) = Exim::new() else { return };
    let a = rich_message("a@earth.example", "ada@crlf.moon.example");
    exim.submit(OPS, &["ada@crlf.moon.example", "bob@crlf.moon.example"], &a);
    let b = rich_message("b@earth.example", "carol@crlf.moon.example");
    exim.ok(
        &["-odi", "-bS"],
        transaction("", &["carol@crlf.moon.example"], &b).as_bytes(),
    );
    let arrivals = exim.arrivals();
    assert_eq!(arrivals.len(), 2, "{}", exim.mainlog());

    let raw = exim.read("out/crlf.bsmtp");
    let text = String::from_utf8(raw.clone()).unwrap();
    assert!(
        text.starts_with(
            "MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@crlf.moon.example>\r\n\
             RCPT TO:<bob@crlf.moon.example>\r\nDATA\r\nReceived: from "
        ),
        "{}",
        &text[..300]
    );
    assert_eq!(
        text.matches('\n').count(),
        text.matches("\r\n").count(),
        "every line ends in CRLF"
    );
    assert!(text.contains("\r\n..\r\n...a line that starts with two dots"));
    assert!(text.ends_with("--moonbound--\r\n.\r\n"));

    let file = exim.path("out/crlf.bsmtp");
    let emls = exim.dir.path().join("crlf-eml");
    let msgs = decoded(&dm_ok(&["decode", s(&file), "--eml-dir", s(&emls)]));
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["reverse_path"], OPS);
    assert_eq!(
        forward_paths(&msgs[0]),
        ["ada@crlf.moon.example", "bob@crlf.moon.example"]
    );
    assert_eq!(msgs[1]["reverse_path"], "");
    assert_eq!(forward_paths(&msgs[1]), ["carol@crlf.moon.example"]);
    let ra = exim.received(Via {
        arrival: &arrivals[0],
        helo: None,
        only_rcpt: None,
    });
    assert_prefixed(
        "message A",
        &eml(&emls, 1),
        vec![Lit(ra), Date, Lit("\r\n".into())],
        &a,
    );
    let rb = exim.received(Via {
        arrival: &arrivals[1],
        helo: None,
        only_rcpt: Some("carol@crlf.moon.example"),
    });
    assert_prefixed(
        "message B",
        &eml(&emls, 2),
        vec![Lit(rb), Date, Lit("\r\n".into())],
        &b,
    );
    // Lenient decoding of a strict-valid batch gives the same bytes.
    let lenient = decoded(&dm_ok(&["decode", "--lenient", s(&file)]));
    assert_eq!(lenient, msgs);

    // A 1200-octet line: Exim writes it as is, still without BODY=8BITMIME.
    std::fs::rename(&file, exim.path("out/crlf-first.bsmtp")).unwrap();
    let long = format!(
        "From: ops@earth.example\r\nSubject: long line\r\nMessage-ID: <long@earth.example>\r\n\
         Date: Mon, 23 Nov 2026 03:00:00 +0000\r\n\r\n{}\r\nend\r\n",
        "x".repeat(1200)
    );
    exim.submit(OPS, &["carol@crlf.moon.example"], &long);
    let raw = exim.read("out/crlf.bsmtp");
    assert!(raw.starts_with(b"MAIL FROM:<ops@earth.example>\r\n"));
    let err = dm_fails(&["decode", s(&file)]);
    assert!(err.contains("[line-too-long]"), "{err}");
    let emls = exim.dir.path().join("long-eml");
    let msgs = decoded(&dm_ok(&[
        "decode",
        "--lenient",
        s(&file),
        "--eml-dir",
        s(&emls),
    ]));
    let arrivals = exim.arrivals();
    let rl = exim.received(Via {
        arrival: &arrivals[2],
        helo: None,
        only_rcpt: Some("carol@crlf.moon.example"),
    });
    assert_eq!(msgs.len(), 1);
    assert_prefixed(
        "long line",
        &eml(&emls, 1),
        vec![Lit(rl), Date, Lit("\r\n".into())],
        &long,
    );
}

// ---------------------------------------------------------------------------
// deepmail writes, Exim reads

/// `deepmail encode` batches, with no greeting, with `--helo` and with
/// `--ehlo`, with and without `--quit`, with a sender and with the null
/// sender, two messages to two recipients each, are read by `exim -bS` and
/// delivered to Maildirs: each copy is Exim's Return-path/Envelope-to/
/// Delivery-date/Received fields and then the submitted message, byte for
/// byte. The 8-bit message is encoded with `--body 7bit` (no MAIL
/// parameters), which Exim's -bS needs (see
/// `deepmail_exim_dialect_batch_for_8bit_mail_is_delivered_by_exim`).
#[test]
fn deepmail_batches_are_delivered_by_exim_byte_for_byte() {
    let work = tempfile::tempdir().unwrap();
    let m1 = rich_message("m1@earth.example", "ada@mars.example");
    let m2 = "From: ops@earth.example\r\nTo: bob@mars.example\r\nSubject: plain\r\n\
              Message-ID: <m2@earth.example>\r\nDate: Mon, 23 Nov 2026 03:00:01 +0000\r\n\r\n\
              .\r\n7-bit, with a lone dot above\r\n"
        .to_owned();
    let f1 = work.path().join("m1.eml");
    let f2 = work.path().join("m2.eml");
    std::fs::write(&f1, &m1).unwrap();
    std::fs::write(&f2, &m2).unwrap();

    struct Case {
        name: &'static str,
        extra: &'static [&'static str],
        from: &'static str,
        helo: Option<&'static str>,
        starts: &'static str,
        ends: &'static str,
    }
    let cases = [
        Case {
            name: "bare",
            extra: &[],
            from: OPS,
            helo: None,
            starts: "MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@mars.example>\r\n",
            ends: "\r\n.\r\n",
        },
        Case {
            name: "helo-quit",
            extra: &["--helo", HOST, "--quit"],
            from: OPS,
            helo: Some(HOST),
            starts: "HELO earth-gw.example\r\nMAIL FROM:<ops@earth.example>\r\n",
            ends: "\r\n.\r\nQUIT\r\n",
        },
        Case {
            name: "ehlo-null-sender",
            extra: &["--ehlo", HOST],
            from: "",
            helo: Some(HOST),
            starts: "EHLO earth-gw.example\r\nMAIL FROM:<>\r\n",
            ends: "\r\n.\r\n",
        },
    ];
    for case in cases {
        let bsmtp = work.path().join(format!("{}.bsmtp", case.name));
        let mut args = vec![
            "encode",
            s(&f1),
            s(&f2),
            "--to",
            "ada@mars.example",
            "--to",
            "bob@mars.example",
            "--body",
            "7bit",
            "-o",
            s(&bsmtp),
        ];
        args.extend([
            "--from",
            if case.from.is_empty() {
                "<>"
            } else {
                case.from
            },
        ]);
        args.extend_from_slice(case.extra);
        dm_ok(&args);
        let batch = std::fs::read(&bsmtp).unwrap();
        let text = String::from_utf8_lossy(&batch);
        assert!(
            text.starts_with(case.starts) && text.ends_with(case.ends),
            "{}: {text:.300}",
            case.name
        );
        assert!(!text.contains("BODY="), "{}", case.name);

        let Some(exim) = Exim::new() else { return };
        exim.ok(&["-odi", "-bS"], &batch);
        let arrivals = exim.arrivals();
        assert_eq!(arrivals.len(), 2, "{}: {}", case.name, exim.mainlog());
        let logged_sender = if case.from.is_empty() {
            "<>"
        } else {
            case.from
        };
        let log = exim.mainlog();
        for a in &arrivals {
            assert_eq!(
                (a.sender.as_str(), a.protocol.as_str()),
                (logged_sender, "local-bsmtp")
            );
            for line in [
                format!("{} => ada <ada@mars.example> R=to_maildir T=maildir", a.id),
                format!("{} => bob <bob@mars.example> R=to_maildir T=maildir", a.id),
                format!("{} Completed", a.id),
            ] {
                assert!(
                    log.contains(&line),
                    "{}: log has {line:?}:\n{log}",
                    case.name
                );
            }
        }
        for rcpt in ["ada", "bob"] {
            let mails = exim.maildir(rcpt);
            assert_eq!(mails.len(), 2, "{}: {rcpt} got both", case.name);
            for (original, tag) in [(&m1, "<m1@earth.example>"), (&m2, "<m2@earth.example>")] {
                let arrival = if tag.contains("m1") {
                    &arrivals[0]
                } else {
                    &arrivals[1]
                };
                let got = mails
                    .iter()
                    .find(|m| m.contains(&format!("Message-ID: {tag}")))
                    .unwrap_or_else(|| panic!("{}: {rcpt} has {tag}", case.name));
                let received = exim.received(Via {
                    arrival,
                    helo: case.helo,
                    only_rcpt: None,
                });
                assert_prefixed(
                    &format!("{} {tag} for {rcpt}", case.name),
                    got,
                    vec![
                        Lit(format!(
                            "Return-path: <{}>\r\nEnvelope-to: {rcpt}@mars.example\r\nDelivery-date: ",
                            case.from
                        )),
                        Date,
                        Lit(format!("\r\n{received}")),
                        Date,
                        Lit("\r\n".into()),
                    ],
                    original,
                );
            }
        }
    }
}

/// `deepmail encode` by default declares BODY=8BITMIME for 8-bit content
/// (RFC 6152). Exim 4.96's -bS input takes no MAIL parameters at all
/// (smtp_in.c, smtp_setup_batch_msg(): the whole argument of MAIL FROM must
/// parse as one address; HELO/EHLO only reset), so `--dialect exim` writes
/// none, and Exim delivers the 8-bit message intact.
#[test]
fn deepmail_exim_dialect_batch_for_8bit_mail_is_delivered_by_exim() {
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("m.eml");
    let original = rich_message("d@earth.example", "ada@mars.example");
    std::fs::write(&f, &original).unwrap();
    let bsmtp = work.path().join("m.bsmtp");
    dm_ok(&[
        "encode",
        s(&f),
        "--to",
        "ada@mars.example",
        "--ehlo",
        HOST,
        "--dialect",
        "exim",
        "-o",
        s(&bsmtp),
    ]);
    let batch = std::fs::read(&bsmtp).unwrap();
    assert!(
        !String::from_utf8_lossy(&batch).contains("BODY="),
        "no ESMTP parameters for Exim"
    );
    let Some(exim) = Exim::new() else { return };
    let out = exim.run(&["-odi", "-bS"], &batch);
    let head: String = String::from_utf8_lossy(&batch)
        .lines()
        .take(3)
        .collect::<Vec<_>>()
        .join("\\r\\n");
    assert!(
        out.status.success() && exim.maildir("ada").len() == 1,
        "Exim {} refuses what `deepmail encode --dialect exim` writes for 8-bit mail.\n\
         batch begins: {head}\\r\\n\n\
         exim -bS exit: {}\nstdout:\n{}\nstderr:\n{}\n\
         (`deepmail encode --body 7bit` is accepted: see deepmail_batches_are_delivered_by_exim_byte_for_byte)",
        exim.version,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        exim.maildir("ada")[0].ends_with(&original),
        "delivered intact"
    );
}

/// Exim's -bS refuses every ESMTP parameter on MAIL FROM, with or without
/// a preceding EHLO: what any fix for the test above has to live with.
#[test]
fn exim_bsmtp_input_takes_no_mail_parameters() {
    let Some(exim) = Exim::new() else { return };
    for (greeting, param) in [
        ("", "BODY=8BITMIME"),
        ("EHLO earth-gw.example\r\n", "BODY=8BITMIME"),
        ("EHLO earth-gw.example\r\n", "SMTPUTF8"),
        ("", "SIZE=100"),
    ] {
        let batch = format!(
            "{greeting}MAIL FROM:<ops@earth.example> {param}\r\nRCPT TO:<ada@mars.example>\r\n\
             DATA\r\nSubject: p\r\n\r\nx\r\n.\r\n"
        );
        let out = exim.run(&["-odi", "-bS"], batch.as_bytes());
        let line = if greeting.is_empty() { 1 } else { 2 };
        assert_eq!(out.status.code(), Some(2), "{param}: nothing accepted");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!(
                "501 malformed address: {param} may not follow <ops@earth.example> \n\
                 Transaction started in line {}\nError detected in line {line}\n\
                 MAIL FROM:<ops@earth.example> {param}\n",
                line - 1
            )
        );
    }
    assert!(exim.maildir("ada").is_empty());
    // deepmail takes all of them.
    let f = exim.dir.path().join("p.bsmtp");
    std::fs::write(
        &f,
        "MAIL FROM:<ops@earth.example> BODY=8BITMIME SMTPUTF8 SIZE=100\r\n\
         RCPT TO:<ada@mars.example>\r\nDATA\r\nSubject: p\r\n\r\nx\r\n.\r\n",
    )
    .unwrap();
    let msgs = decoded(&dm_ok(&["decode", s(&f)]));
    assert_eq!(msgs[0]["mail_parameters"].as_array().unwrap().len(), 3);
}

/// Broken batches: both refuse them, each in its own way. Exim processes a
/// batch in order, keeps the messages before the error and abandons the
/// rest (exit 1 if some were accepted, 2 if none; a stylised report on
/// stdout, a verbose one on stderr). deepmail refuses the whole batch,
/// names the line and the error class, and writes nothing.
#[test]
fn broken_batches_are_refused_by_both() {
    let work = tempfile::tempdir().unwrap();
    let m = "From: ops@earth.example\r\nSubject: cut\r\nMessage-ID: <cut@earth.example>\r\n\
             Date: Mon, 23 Nov 2026 03:00:00 +0000\r\n\r\nthe link dropped here\r\n";
    let f = work.path().join("m.eml");
    std::fs::write(&f, m).unwrap();
    let good = work.path().join("good.bsmtp");
    dm_ok(&[
        "encode",
        s(&f),
        "--from",
        OPS,
        "--to",
        "ada@mars.example",
        "-o",
        s(&good),
    ]);
    let good = String::from_utf8(std::fs::read(&good).unwrap()).unwrap();

    struct Case {
        name: &'static str,
        batch: String,
        exim_code: i32,
        exim_stdout: &'static str,
        exim_delivered: usize,
        deepmail: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "truncated: a deepmail batch cut before its final dot",
            batch: good.strip_suffix(".\r\n").unwrap().to_owned(),
            exim_code: 2,
            exim_stdout: "421 Lost incoming connection\nTransaction started in line 0\nError detected in line 10\n",
            exim_delivered: 0,
            deepmail: &["[missing-final-dot]", "line 10 "],
        },
        Case {
            name: "second transaction without MAIL FROM",
            batch: good.clone() + "RCPT TO:<bob@mars.example>\r\nDATA\r\nx\r\n.\r\n",
            exim_code: 1,
            exim_stdout: "503 No sender yet given\nTransaction started in line 10\n\
                          Error detected in line 11\nRCPT TO:<bob@mars.example>\n",
            exim_delivered: 1,
            deepmail: &["[out-of-sequence]", "line 11 "],
        },
        Case {
            name: "unterminated path",
            batch: good.replace("RCPT TO:<ada@mars.example>", "RCPT TO:<ada@mars.example"),
            exim_code: 2,
            exim_stdout: "501 '>' missing at end of address\nTransaction started in line 0\n\
                          Error detected in line 2\nRCPT TO:<ada@mars.example\n",
            exim_delivered: 0,
            deepmail: &["[malformed-path]", "line 2 "],
        },
    ];
    for case in cases {
        let Some(exim) = Exim::new() else { return };
        let out = exim.run(&["-odi", "-bS"], case.batch.as_bytes());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(case.exim_code),
            "{}: {stderr}",
            case.name
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            case.exim_stdout,
            "{}",
            case.name
        );
        assert!(
            stderr.starts_with("An error was detected while processing a file of BSMTP input.")
                && stderr.contains("The rest of the batch was abandoned."),
            "{}: {stderr}",
            case.name
        );
        assert_eq!(
            exim.maildir("ada").len(),
            case.exim_delivered,
            "{}",
            case.name
        );

        let file = work.path().join("broken.bsmtp");
        std::fs::write(&file, &case.batch).unwrap();
        let emls = work.path().join("broken-eml");
        for lenient in [false, true] {
            let mut args = vec!["decode", s(&file), "--eml-dir", s(&emls)];
            if lenient {
                args.push("--lenient");
            }
            let err = dm_fails(&args);
            for want in case.deepmail {
                assert!(
                    err.contains(want),
                    "{} (lenient: {lenient}): {want} in {err}",
                    case.name
                );
            }
            assert!(!emls.exists(), "{}: deepmail wrote nothing", case.name);
        }
    }
}

/// Exim writes UTF-8 local parts raw in a `use_bsmtp` batch, without any
/// SMTPUTF8 parameter (it never writes MAIL parameters), and `exim -bS`
/// reads such a batch back. `decode --lenient` takes what Exim writes;
/// strict mode keeps refusing non-ASCII paths without SMTPUTF8.
#[test]
fn exim_utf8_envelopes_decode_leniently_and_exim_reads_them_back() {
    let Some(exim) = Exim::new() else { return };
    // Exim takes a UTF-8 local part in a -bS batch that declares nothing...
    let message = "Subject: Grüße\r\n\r\nHallo Zoë\r\n";
    let batch = transaction("jörg@earth.example", &["zoë@lf.moon.example"], message);
    exim.ok(&["-odi", "-bS"], batch.as_bytes());
    // ... and writes it on, raw, into its own use_bsmtp batch.
    let raw = exim.read("out/lf.bsmtp");
    let text = String::from_utf8(raw).expect("Exim wrote UTF-8");
    assert!(
        text.starts_with("MAIL FROM:<jörg@earth.example>\nRCPT TO:<zoë@lf.moon.example>\nDATA\n"),
        "{text}"
    );
    assert!(!text.to_ascii_uppercase().contains("SMTPUTF8"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("utf8.bsmtp");
    std::fs::write(&file, &text).unwrap();
    let msgs = decoded(&dm_ok(&["decode", "--lenient", s(&file)]));
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["reverse_path"], "jörg@earth.example");
    assert_eq!(forward_paths(&msgs[0]), ["zoë@lf.moon.example"]);
    // Strict mode refuses it (bare LF aside: the same batch with CRLF).
    let crlf = dir.path().join("utf8-crlf.bsmtp");
    std::fs::write(&crlf, text.replace('\n', "\r\n")).unwrap();
    let err = dm_fails(&["decode", s(&crlf)]);
    assert!(err.contains("non-ASCII reverse-path"), "{err}");

    // Exim reads its own batch back, UTF-8 envelope and all.
    let again = Exim::new().unwrap();
    again.ok(&["-odi", "-bS"], text.as_bytes());
    let arrivals = again.arrivals();
    assert_eq!(arrivals.len(), 1, "{}", again.mainlog());
    assert_eq!(arrivals[0].sender, "jörg@earth.example");
}
