//! The whole way with real mail software around deepmail, all on loopback:
//!
//! ```text
//! swaks -> Exim "earth" -> deepmail gateway (Earth) == HTTPS ==> deepmail gateway (Moon)
//!       -> Exim "moon" -> Maildir -> Dovecot IMAP -> imaplib (scripts/peers/mailstack)
//! ```
//!
//! A 10 MB message with dot lines, 8-bit UTF-8 text and a base64 attachment
//! arrives byte for byte with its envelope; a message to an unknown Moon
//! user comes back as a DSN that travels the same way (Moon gateway ==
//! HTTPS ==> Earth gateway -> Exim "earth") into the sender's mailbox, read
//! over IMAP. The stack is installed by `scripts/peers/install-mailstack.sh`
//! and started by `scripts/peers/mailstack/mailstack.py`; when it is
//! missing the test fails under CI and says how to install it elsewhere.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use deepmail_gateway::TestPki;

/// Stops the stack and the gateways however the test ends.
struct Stack {
    dir: PathBuf,
    gateways: Vec<Child>,
    started: bool,
}

impl Stack {
    fn mailstack(&self, args: &[&str]) -> std::process::Output {
        Command::new("python3")
            .arg(common::root().join("scripts/peers/mailstack/mailstack.py"))
            .args(args)
            .arg("--dir")
            .arg(self.dir.join("stack"))
            .output()
            .expect("python3 runs mailstack.py")
    }

    fn logs(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.mailstack(&["logs"]).stdout).into_owned();
        for name in ["earth", "moon"] {
            let log =
                std::fs::read_to_string(self.dir.join(format!("{name}.log"))).unwrap_or_default();
            text.push_str(&format!(
                "\n--- deepmail gateway {name} ---\n{}",
                &log[log.len().saturating_sub(4000)..]
            ));
        }
        text
    }

    /// Messages in `user`'s INBOX over IMAP, waiting for at least `count`.
    fn fetch(&self, user: &str, count: usize, wait_secs: u64) -> Vec<Vec<u8>> {
        let out = self.dir.join(format!("fetched-{user}"));
        let _ = std::fs::remove_dir_all(&out);
        let o = self.mailstack(&[
            "fetch",
            "--user",
            user,
            "--count",
            &count.to_string(),
            "--wait",
            &wait_secs.to_string(),
            "--out",
            out.to_str().unwrap(),
        ]);
        if !o.status.success() {
            panic!(
                "fetching {user}'s mail failed: {}\n{}",
                String::from_utf8_lossy(&o.stderr),
                self.logs()
            );
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for g in &mut self.gateways {
            let _ = g.kill();
            let _ = g.wait();
        }
        if self.started {
            let _ = self.mailstack(&["stop"]);
        }
    }
}

/// A 10 MB MIME message: 8-bit UTF-8 text with dot lines, base64 attachment.
fn big_message() -> Vec<u8> {
    let mut m = String::from(
        "From: Alice <alice@earth.example>\r\nTo: Bob <bob@moon.example>\r\n\
         Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_zum_Mond?=\r\nMessage-ID: <e2e-big@earth.example>\r\n\
         Date: Mon, 23 Nov 2026 06:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n\
         --b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
         Grüße, Bob — the telemetry is attached.\r\n.\r\n..two dots\r\n.one dot\r\n\r\n\
         --b1\r\nContent-Type: application/octet-stream; name=\"telemetry.bin\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n",
    );
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut line = String::with_capacity(78);
    while m.len() < 10 * 1024 * 1024 {
        line.clear();
        for _ in 0..76 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            line.push(alphabet[(state % 64) as usize] as char);
        }
        m.push_str(&line);
        m.push_str("\r\n");
    }
    m.push_str("--b1--\r\n");
    m.into_bytes()
}

/// The value of header `name` in `message`'s header section.
fn header(message: &[u8], name: &str) -> Option<String> {
    deepmail_gateway::header_value(message, name)
}

/// Maildir files may have LF line ends; compare in CRLF.
fn crlf(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 50);
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line.strip_suffix(b"\r").unwrap_or(line));
    }
    out
}

/// Writes `message` for `swaks --data @FILE`: swaks ends the data with
/// "\r\n.\r\n" itself, so the file leaves out the message's final CRLF.
fn swaks_data(path: &Path, message: &[u8]) {
    std::fs::write(path, message.strip_suffix(b"\r\n").unwrap_or(message)).unwrap();
}

fn swaks(to: &str, data: &Path, earth_smtp: u16) -> std::process::Output {
    Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &earth_smtp.to_string()])
        .args(["--from", "alice@earth.example", "--to", to])
        .args(["--helo", "client.earth.example", "--data"])
        .arg(format!("@{}", data.display()))
        .args(["--timeout", "120"])
        .output()
        .expect("swaks runs")
}

#[test]
fn swaks_exim_deepmail_exim_dovecot_byte_for_byte_and_a_dsn_back() {
    if test_peers::mail_stack().is_none() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    // Daemons run as an unprivileged user when we are root: let it in.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    TestPki::generate(&["localhost".into()], "gateways")
        .unwrap()
        .write_to(&dir.join("certs"))
        .unwrap();
    let [earth_exim, earth_gw_smtp, moon_exim, moon_gw_smtp, imap, earth_https, moon_https] =
        [0; 7].map(|_| common::free_port());

    let mut stack = Stack {
        dir: dir.to_path_buf(),
        gateways: Vec::new(),
        started: false,
    };
    stack.gateways.push(common::spawn_gateway(
        dir,
        "earth",
        format!(
            r#"name = "gw.earth.example"
spool = "spool-earth"
[smtp]
listen = "127.0.0.1:{earth_gw_smtp}"
relay-domains = ["moon.example"]
[receive]
https-listen = "127.0.0.1:{earth_https}"
cert = "certs/server.pem"
key = "certs/server.key"
[relay]
smtp = "127.0.0.1:{earth_exim}"
domains = ["earth.example"]
[delivery]
retry-initial-secs = 1
[[route]]
domain = "moon.example"
uri = "https://localhost:{moon_https}/inboundmail"
ca = "certs/ca.pem"
"#
        ),
    ));
    stack.gateways.push(common::spawn_gateway(
        dir,
        "moon",
        format!(
            r#"name = "gw.moon.example"
spool = "spool-moon"
[smtp]
listen = "127.0.0.1:{moon_gw_smtp}"
relay-domains = ["earth.example"]
[receive]
https-listen = "127.0.0.1:{moon_https}"
cert = "certs/server.pem"
key = "certs/server.key"
[relay]
smtp = "127.0.0.1:{moon_exim}"
domains = ["moon.example"]
[delivery]
retry-initial-secs = 1
[[route]]
domain = "earth.example"
uri = "https://localhost:{earth_https}/inboundmail"
ca = "certs/ca.pem"
"#
        ),
    ));
    let ports = |p: u16| p.to_string();
    let o = stack.mailstack(&[
        "start",
        "--earth-smtp",
        &ports(earth_exim),
        "--earth-next-hop",
        &ports(earth_gw_smtp),
        "--moon-smtp",
        &ports(moon_exim),
        "--moon-next-hop",
        &ports(moon_gw_smtp),
        "--imap",
        &ports(imap),
    ]);
    stack.started = true;
    assert!(
        o.status.success(),
        "the mail stack did not start: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        stack.logs()
    );
    for (port, what) in [
        (earth_gw_smtp, "the Earth gateway"),
        (moon_https, "the Moon gateway"),
    ] {
        common::wait_listening(SocketAddr::from(([127, 0, 0, 1], port)), what);
    }

    // 1. A 10 MB message, Earth to Moon.
    let sent = big_message();
    let data = dir.join("big.eml");
    swaks_data(&data, &sent);
    let started = Instant::now();
    let o = swaks("bob@moon.example", &data, earth_exim);
    assert!(
        o.status.success(),
        "swaks -> Exim earth failed: {}\n{}",
        String::from_utf8_lossy(&o.stdout),
        stack.logs()
    );
    let got = stack.fetch("bob", 1, 120);
    let elapsed = started.elapsed();
    assert_eq!(got.len(), 1, "bob has one message");
    let got = crlf(&got[0]);
    if !got.ends_with(&sent) {
        // Keep both for a look: target/tmp/mailstack-failure/.
        let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mailstack-failure");
        let _ = std::fs::create_dir_all(&keep);
        let _ = std::fs::write(keep.join("sent.eml"), &sent);
        let _ = std::fs::write(keep.join("fetched.eml"), &got);
    }
    assert!(
        got.ends_with(&sent),
        "the message changed on its way ({} bytes sent, {} fetched)",
        sent.len(),
        got.len()
    );
    // The envelope made it: Exim "moon" records it in the trace fields.
    assert_eq!(
        header(&got, "return-path").as_deref(),
        Some("<alice@earth.example>")
    );
    assert_eq!(
        header(&got, "envelope-to").as_deref(),
        Some("bob@moon.example")
    );
    let trace = String::from_utf8_lossy(&got[..got.len() - sent.len()]).into_owned();
    assert!(trace.contains("by gw.earth.example (deepmail)"), "{trace}");
    eprintln!(
        "10 MB message: swaks -> IMAP in {:.1} s",
        elapsed.as_secs_f64()
    );

    // 2. An unknown Moon user: the DSN comes back the same way.
    let small = b"From: alice@earth.example\r\nTo: nobody@moon.example\r\nSubject: anyone there?\r\nMessage-ID: <e2e-nobody@earth.example>\r\n\r\nHello?\r\n";
    let data = dir.join("small.eml");
    swaks_data(&data, small);
    let o = swaks("nobody@moon.example", &data, earth_exim);
    assert!(
        o.status.success(),
        "swaks: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    let mail = stack.fetch("alice", 1, 120);
    let dsn = mail
        .iter()
        .map(|m| crlf(m))
        .find(|m| deepmail_smtp::dsn::parse_dsn(m).is_ok())
        .unwrap_or_else(|| panic!("no DSN in alice's mailbox\n{}", stack.logs()));
    let parsed = deepmail_smtp::dsn::parse_dsn(&dsn).unwrap();
    assert_eq!(parsed.recipients.len(), 1, "{parsed:?}");
    let r = &parsed.recipients[0];
    assert!(r.final_recipient.ends_with("nobody@moon.example"), "{r:?}");
    assert_eq!(r.status, "5.1.1", "{r:?}");
    assert!(
        parsed
            .reporting_mta
            .as_deref()
            .unwrap_or("")
            .contains("gw.moon.example"),
        "{parsed:?}"
    );
    // It crossed back by Batch SMTP: the Earth gateway received it.
    let received = |sub: &str| {
        std::fs::read_dir(dir.join("spool-earth").join(sub))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    assert!(
        received("incoming") + received("relayed") >= 1,
        "the DSN did not come through the Earth gateway's receiver"
    );
    let text = String::from_utf8_lossy(&dsn);
    assert!(
        text.contains("e2e-nobody@earth.example"),
        "the DSN returns the original's headers"
    );
}
