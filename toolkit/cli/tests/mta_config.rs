//! `deepmail mta-config`: the generated Earth-MTA configuration is checked
//! by the real MTAs' own tools: Exim parses it (`exim -C … -bV`) and routes
//! the far domains to the gateway (`exim -bt`); Postfix's `postconf`
//! accepts it without a warning and `postmap` resolves the transport map.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

/// An Earth gateway configuration whose ingress listens on 127.0.0.1:2599
/// for moon.example and the subdomains of mars.example.
fn earth_toml(dir: &Path) -> PathBuf {
    let path = dir.join("earth.toml");
    std::fs::write(
        &path,
        format!(
            r#"name = "earth-gw.example"
spool = "{spool}"

[smtp]
listen = "127.0.0.1:2599"
relay-domains = ["moon.example", ".mars.example"]

[[route]]
domain = "moon.example"
uri = "https://gw.moon.example/inboundmail"

[[route]]
domain = ".mars.example"
uri = "https://gw.mars.example/inboundmail"
"#,
            spool = dir.join("spool").display()
        ),
    )
    .unwrap();
    path
}

fn mta_config(toml: &Path, args: &[&str]) -> String {
    let out = common::deepmail()
        .arg("mta-config")
        .arg("-c")
        .arg(toml)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "mta-config {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A whole Exim configuration: a main section that keeps everything in
/// `dir`, then the generated routers and transports.
fn exim_conf(dir: &Path, generated: &str) -> PathBuf {
    let path = dir.join("exim.conf");
    std::fs::create_dir_all(dir.join("spool")).unwrap();
    std::fs::create_dir_all(dir.join("log")).unwrap();
    std::fs::write(
        &path,
        format!(
            "primary_hostname = mta.earth.example\n\
             spool_directory = {d}/spool\n\
             log_file_path = {d}/log/%slog\n\
             keep_environment =\n\
             \n{generated}",
            d = dir.display(),
            // Pasted where the markers say: after each section's `begin`.
            generated = generated
                .replace(
                    "# --- routers section",
                    "begin routers\n# --- routers section"
                )
                .replace(
                    "# --- transports section",
                    "begin transports\n# --- transports section"
                ),
        ),
    )
    .unwrap();
    path
}

fn exim(bin: &Path, conf: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin)
        .arg("-C")
        .arg(conf)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn exim_accepts_both_variants_and_routes_the_far_domains_to_the_gateway() {
    let Some(bin) = test_peers::exim() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let toml = earth_toml(dir.path());

    let smtp = mta_config(&toml, &["--mta", "exim"]);
    assert!(
        smtp.contains("domains = moon.example : *.mars.example"),
        "{smtp}"
    );
    let conf = exim_conf(dir.path(), &smtp);
    let (ok, text) = exim(&bin, &conf, &["-bV"]);
    assert!(ok, "exim -bV refused the smtp variant:\n{text}\n{smtp}");
    for address in ["ada@moon.example", "bob@olympus.mars.example"] {
        let (ok, text) = exim(&bin, &conf, &["-bt", address]);
        assert!(ok, "exim -bt {address}:\n{text}");
        assert!(
            text.contains("router = deepmail_gateway, transport = deepmail_smtp")
                && text.contains("host 127.0.0.1 [127.0.0.1]"),
            "exim -bt {address}:\n{text}"
        );
    }
    // ... on the ingress's port.
    let (ok, text) = exim(&bin, &conf, &["-bP", "transport", "deepmail_smtp"]);
    assert!(
        ok && text.contains("port = 2599"),
        "exim -bP transport:\n{text}"
    );
    // A domain the gateway does not serve is not routed to it.
    let (_, text) = exim(&bin, &conf, &["-bt", "eve@venus.example"]);
    assert!(!text.contains("deepmail_gateway"), "{text}");

    let pipe = mta_config(&toml, &["--mta", "exim", "--via", "pipe", "--user", "mail"]);
    assert!(
        pipe.contains("use_bsmtp") && pipe.contains("submit --bsmtp --config /"),
        "{pipe}"
    );
    let conf = exim_conf(dir.path(), &pipe);
    let (ok, text) = exim(&bin, &conf, &["-bV"]);
    assert!(ok, "exim -bV refused the pipe variant:\n{text}\n{pipe}");
    let (ok, text) = exim(&bin, &conf, &["-bt", "ada@moon.example"]);
    assert!(
        ok && text.contains("router = deepmail_gateway, transport = deepmail_bsmtp"),
        "exim -bt:\n{text}"
    );
}

/// The parts of a generated Postfix text: main.cf lines and master.cf lines.
fn postfix_parts(text: &str) -> (String, String) {
    let (main, master) = match text.split_once("# --- master.cf (append) ---") {
        Some((main, master)) => (main.to_string(), master.to_string()),
        None => (text.to_string(), String::new()),
    };
    (main, master)
}

#[test]
fn postfix_accepts_both_variants_and_maps_the_far_domains_to_the_gateway() {
    let Some(postfix) = test_peers::postfix() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let toml = earth_toml(dir.path());
    for (via, next) in [("smtp", "smtp:[127.0.0.1]:2599"), ("pipe", "deepmail:")] {
        let text = mta_config(&toml, &["--mta", "postfix", "--via", via, "--user", "mail"]);
        let (main, master) = postfix_parts(&text);
        let cf = dir.path().join(format!("postfix-{via}"));
        std::fs::create_dir_all(&cf).unwrap();
        // This machine has no postfix user or postdrop group (the package is
        // unpacked, not installed); name existing ones so postmap starts.
        std::fs::write(
            cf.join("main.cf"),
            format!("mail_owner = daemon\nsetgid_group = mail\n{main}"),
        )
        .unwrap();
        std::fs::write(
            cf.join("master.cf"),
            format!("smtp      inet  n       -       y       -       -       smtpd\n{master}"),
        )
        .unwrap();
        let out = postfix
            .command("postconf")
            .arg("-c")
            .arg(&cf)
            .arg("-n")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "postconf -n ({via}): {stderr}\n{text}"
        );
        assert!(
            stdout.contains("relay_domains = moon.example, .mars.example"),
            "{stdout}"
        );
        let map = main
            .lines()
            .find_map(|l| l.strip_prefix("transport_maps = "))
            .unwrap_or_else(|| panic!("no transport_maps in:\n{text}"));
        let out = postfix
            .command("postmap")
            .arg("-c")
            .arg(&cf)
            .args(["-q", "moon.example", map])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            next,
            "postmap -q moon.example ({via}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if via == "pipe" {
            let out = postfix
                .command("postconf")
                .arg("-c")
                .arg(&cf)
                .args(["-M", "deepmail/unix"])
                .output()
                .unwrap();
            let service = String::from_utf8_lossy(&out.stdout);
            assert!(
                service.contains("pipe flags=q user=mail argv=/")
                    && service.contains(" submit --config /")
                    && service.ends_with("-f ${sender} -- ${recipient}\n"),
                "postconf -M: {service}"
            );
        }
    }
}

#[test]
fn a_gateway_without_an_smtp_ingress_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("moon.toml");
    std::fs::write(
        &toml,
        format!(
            "name = \"moon\"\nspool = \"{}\"\n\n[relay]\nsmtp = \"127.0.0.1:2525\"\ndomains = [\"moon.example\"]\n\n\
             [bp]\nnode-id = \"ipn:2.0\"\nlisten = \"127.0.0.1:4556\"\nendpoints = [\"ipn:2.25\"]\n",
            dir.path().join("spool").display()
        ),
    )
    .unwrap();
    let out = common::deepmail()
        .args(["mta-config", "--mta", "exim", "-c"])
        .arg(&toml)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("has no [smtp] section"), "{stderr}");
}
