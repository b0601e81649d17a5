//! The gateway's operator commands through the binary: `gateway --check`
//! and its configuration errors, `submit` (sendmail-style exit codes, LF
//! input, `--bsmtp` as Exim's pipe transport writes it, policy refusals),
//! `queue list / retry / delete`, and a clean stop on SIGTERM that keeps
//! queued mail.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::deepmail;

/// The content of queued message `id` in the spool at `spool`.
fn queued_content(spool: &Path, id: &str) -> Vec<u8> {
    deepmail_gateway::Queue::open(spool, false)
        .unwrap()
        .content(id)
        .unwrap()
}

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("earth.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "gw.earth.example"
spool = "spool"
[smtp]
listen = "127.0.0.1:0"
relay-domains = ["moon.example"]
[[route]]
domain = "moon.example"
uri = "https://localhost:9/inboundmail"
{extra}"#
        ),
    )
    .unwrap();
    path
}

fn submit(config: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = deepmail()
        .arg("submit")
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn queue_json(config: &Path) -> serde_json::Value {
    let o = deepmail()
        .args(["queue", "--config"])
        .arg(config)
        .args(["list", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_slice(&o.stdout).unwrap()
}

const MESSAGE: &[u8] = b"From: ops@earth.example\nTo: ada@moon.example\nSubject: pipe\n\nLF line ends from a pipe\n.leading dot\n";

#[test]
fn submit_queues_with_sendmail_exit_codes_and_queue_manages_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[policy]\nmax-message-bytes = 2000\n[relay]\nsmtp = \"127.0.0.1:9\"\ndomains = [\"earth.example\"]\n",
    );

    let o = submit(
        &cfg,
        &["-f", "ops@earth.example", "--", "ada@moon.example"],
        MESSAGE,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("250 2.0.0 queued as"));

    // Not a relay domain: EX_NOPERM (77), nothing queued for it.
    let o = submit(
        &cfg,
        &["-f", "ops@earth.example", "--", "eve@evil.example"],
        MESSAGE,
    );
    assert_eq!(
        o.status.code(),
        Some(77),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("relaying to evil.example denied"));

    // Too big for the policy: EX_DATAERR (65).
    let big = [MESSAGE, &vec![b'x'; 4000][..], b"\n"].concat();
    let o = submit(
        &cfg,
        &["-f", "ops@earth.example", "--", "ada@moon.example"],
        &big,
    );
    assert_eq!(
        o.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("5.3.4"));

    // What Exim's use_bsmtp pipe transport writes (LF line ends, no HELO).
    let batch = b"MAIL FROM:<ops@earth.example>\nRCPT TO:<ada@moon.example>\nRCPT TO:<log@moon.example>\nDATA\nSubject: from exim\n\n..dot-stuffed line\n.\nMAIL FROM:<>\nRCPT TO:<ada@moon.example>\nDATA\nSubject: bounce\n\nbody\n.\n";
    let o = submit(&cfg, &["--bsmtp"], batch);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let q = queue_json(&cfg);
    let msgs = q["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3, "{q:#}");
    let listed = deepmail()
        .args(["queue", "--config"])
        .arg(&cfg)
        .arg("list")
        .output()
        .unwrap();
    assert!(listed.status.success());
    // The table is read by operators: a snapshot, with what changes from
    // run to run (ids, sizes, which include the Received: field's process
    // id, and ages) masked field for field.
    let mut table = String::from_utf8(listed.stdout).unwrap();
    for (n, m) in msgs.iter().enumerate() {
        let id = m["id"].as_str().unwrap();
        table = table.replacen(
            id,
            &format!("{:<w$}", format!("<id {}>", n + 1), w = id.len()),
            1,
        );
        let sizes = format!(
            "{:>9} {:>6}",
            m["bytes"].as_u64().unwrap(),
            m["age_secs"].as_u64().unwrap()
        );
        table = table.replacen(&sizes, &format!("{:>9} {:>6}", "#", "#"), 1);
    }
    insta::assert_snapshot!("queue_list", table);
    assert!(msgs.iter().all(|m| m["destination"] == "moon.example"));
    let exim = msgs
        .iter()
        .find(|m| m["to"].as_array().unwrap().len() == 2)
        .unwrap();
    assert_eq!(exim["from"], "ops@earth.example");
    let id = msgs[0]["id"].as_str().unwrap().to_string();
    let content = queued_content(&dir.path().join("spool"), &id);
    let text = String::from_utf8_lossy(&content);
    assert!(
        text.contains("\r\nSubject: pipe\r\n"),
        "LF became CRLF: {text:?}"
    );
    assert!(text.starts_with("Received: from local"), "{text}");

    // retry and delete.
    let o = deepmail()
        .args(["queue", "--config"])
        .arg(&cfg)
        .args(["retry", "--all"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = deepmail()
        .args(["queue", "--config"])
        .arg(&cfg)
        .args(["delete", &id])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(queue_json(&cfg)["messages"].as_array().unwrap().len(), 2);
    let o = deepmail()
        .args(["queue", "--config"])
        .arg(&cfg)
        .args(["delete", &id])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "deleting twice says it is gone");

    // A broken batch: EX_DATAERR, and the error says where.
    let o = submit(&cfg, &["--bsmtp"], b"MAIL FROM:<a@b>\nDATA\n");
    assert_eq!(
        o.status.code(),
        Some(65),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn configuration_errors_name_the_key_and_check_loads_the_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let o = deepmail()
        .args(["gateway", "--check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains(": ok"));

    let bad = config(dir.path(), "[delivery]\nretry-initial-secs = -1\n");
    let o = deepmail()
        .args(["gateway", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`delivery.retry-initial-secs`"), "{err}");

    let bad = config(dir.path(), "[policy]\nmax-message-bytes = \"lots\"\n");
    let o = deepmail()
        .args(["gateway", "--check", "--config"])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("max-message-bytes"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // submit with a broken config: EX_CONFIG (78).
    let o = submit(&bad, &["-f", "a@b", "--", "ada@moon.example"], MESSAGE);
    assert_eq!(
        o.status.code(),
        Some(78),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn sigterm_stops_cleanly_and_queued_mail_stays() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let o = submit(
        &cfg,
        &["-f", "ops@earth.example", "--", "ada@moon.example"],
        MESSAGE,
    );
    assert!(o.status.success());
    let mut child = deepmail()
        .args(["gateway", "--config"])
        .arg(&cfg)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it start and try (the next hop is down), then stop it.
    let deadline = Instant::now() + Duration::from_secs(30);
    while queue_json(&cfg)["messages"][0]["attempts"] == 0 {
        assert!(
            Instant::now() < deadline,
            "the gateway never tried to deliver"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("stopped"), "{log}");
    assert!(log.contains("temporary failure"), "{log}");
    let q = queue_json(&cfg);
    assert_eq!(
        q["messages"].as_array().unwrap().len(),
        1,
        "still queued: {q:#}"
    );
    assert!(
        q["messages"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("localhost:9"),
        "{q:#}"
    );
}

#[test]
fn the_documented_example_configs_load() {
    for name in ["earth.toml", "moon.toml"] {
        let dir = tempfile::tempdir().unwrap();
        deepmail_gateway::TestPki::generate(&["localhost".into()], "gw")
            .unwrap()
            .write_to(&dir.path().join("tls"))
            .unwrap();
        let cfg = dir.path().join(name);
        std::fs::copy(common::root().join("docs/gateway").join(name), &cfg).unwrap();
        let o = deepmail()
            .args(["gateway", "--check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

#[test]
fn a_refused_recipient_in_a_bsmtp_batch_becomes_a_dsn_and_the_rest_is_queued() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        dir.path(),
        "[relay]\nsmtp = \"127.0.0.1:9\"\ndomains = [\"earth.example\"]\n",
    );
    let batch = b"MAIL FROM:<ops@earth.example>\nRCPT TO:<ada@moon.example>\nRCPT TO:<eve@evil.example>\nDATA\nSubject: half\n\nx\n.\n";
    let o = submit(&cfg, &["--bsmtp"], batch);
    // Exit 0: the MTA must not bounce or resend what was queued.
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("DSN queued to <ops@earth.example>"));
    let q = queue_json(&cfg);
    let msgs = q["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{q:#}");
    let to_moon = msgs
        .iter()
        .find(|m| m["destination"] == "moon.example")
        .unwrap();
    assert_eq!(to_moon["to"], serde_json::json!(["ada@moon.example"]));
    let dsn = msgs
        .iter()
        .find(|m| m["destination"] == "local MTA")
        .unwrap();
    assert_eq!(dsn["from"], "");
    assert_eq!(dsn["to"], serde_json::json!(["ops@earth.example"]));
    let bytes = queued_content(&dir.path().join("spool"), dsn["id"].as_str().unwrap());
    let parsed = deepmail_smtp::dsn::parse_dsn(&bytes).unwrap();
    assert!(parsed.recipients[0]
        .final_recipient
        .ends_with("eve@evil.example"));
    assert_eq!(parsed.recipients[0].status, "5.7.1");
}

/// `--check` loads what start-up loads: a key file that holds a
/// certificate, or a key that is not its certificate's, fails the check
/// (naming the key), as it would fail the start.
#[test]
fn check_loads_the_tls_files_start_up_loads() {
    let dir = tempfile::tempdir().unwrap();
    let o = deepmail()
        .args(["certs", "--dir"])
        .arg(dir.path().join("certs"))
        .args(["--server-name", "localhost", "--client-name", "earth-gw"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let with_tls = |cert: &str, key: &str| {
        let path = dir.path().join("tls.toml");
        std::fs::write(
            &path,
            format!(
                "name = \"gw.earth.example\"\nspool = \"spool\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\
                 relay-domains = [\"moon.example\"]\ntls-cert = \"certs/{cert}\"\ntls-key = \"certs/{key}\"\n\
                 [[route]]\ndomain = \"moon.example\"\nuri = \"https://localhost:9/inboundmail\"\n"
            ),
        )
        .unwrap();
        deepmail()
            .args(["gateway", "--check", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let o = with_tls("server.pem", "server.key");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for (cert, key, named) in [
        ("server.pem", "server.pem", "smtp.tls-key"),
        ("server.pem", "client.key", "smtp.tls-cert/smtp.tls-key"),
    ] {
        let o = with_tls(cert, key);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{cert} + {key} passed --check");
        assert!(err.contains(named), "{cert} + {key}: {err}");
    }
}

/// What a policy instance may keep (wit/deepmail.wit, `policy` and
/// `policy-state`), end to end through `submit --bsmtp` with two messages
/// in one process: the Python test policy `plugins-py/counting-policy`
/// refuses every message after the first it has seen. Built for the plain
/// `policy-plugin` world, each message is judged in a fresh instance, so
/// both are queued; built for `stateful-policy-plugin` (it exports
/// `policy-state`, declaring that it keeps state), its instance is reused
/// and the second message is refused, as the plugin means.
#[test]
fn a_policy_instance_keeps_state_across_messages_only_when_it_says_so() {
    if test_peers::componentize_py().is_none() {
        return;
    }
    let wasms = common::built_by(
        "plugins-py/build.sh",
        &["counting-policy", "counting-policy-stateful"],
    );
    let batch = b"MAIL FROM:<ops@earth.example>\nRCPT TO:<ada@moon.example>\nDATA\nSubject: one\n\nx\n.\nMAIL FROM:<ops@earth.example>\nRCPT TO:<ada@moon.example>\nDATA\nSubject: two\n\nx\n.\n";
    for (wasm, second_refused) in [(&wasms[0], false), (&wasms[1], true)] {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(
            dir.path(),
            &format!(
                "[stages]\npolicy = \"{wasm}\"\n[relay]\nsmtp = \"127.0.0.1:9\"\ndomains = [\"earth.example\"]\n"
            ),
        );
        let o = submit(&cfg, &["--bsmtp"], batch);
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{wasm}: {said}");
        assert_eq!(
            said.contains(
                "message 2: <ada@moon.example> refused: 550 5.7.1 saw 1 message(s) before this one"
            ),
            second_refused,
            "{wasm}: {said}"
        );
        assert!(!said.contains("message 1: <ada"), "{wasm}: {said}");
        let queued = queue_json(&cfg)["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["destination"] == "moon.example")
            .count();
        assert_eq!(queued, if second_refused { 1 } else { 2 }, "{wasm}");
    }
}
