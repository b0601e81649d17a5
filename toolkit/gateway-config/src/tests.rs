//! Loading and refusing configurations.

use std::path::Path;
use std::time::Duration;

use crate::*;

fn load(text: &str) -> Result<GatewayConfig, ConfigError> {
    GatewayConfig::from_toml(text, Path::new("/etc/deepmail/earth.toml"))
}

const EARTH: &str = r#"
name = "gw.earth.example"
spool = "spool"
[smtp]
listen = "127.0.0.1:2525"
relay-domains = ["moon.example", ".mars.example"]
[[route]]
domain = "moon.example"
uri = "https://gw.moon.example/inboundmail"
[[route]]
domain = "*"
"#;

#[test]
fn earth_config_loads_with_defaults() {
    let c = load(EARTH).unwrap();
    assert_eq!(c.name, "gw.earth.example");
    assert_eq!(c.spool, Path::new("/etc/deepmail/spool"));
    let smtp = c.smtp.unwrap();
    assert_eq!(smtp.max_message_bytes, 50 << 20);
    assert!(domain_listed(&smtp.relay_domains, "Moon.Example"));
    assert!(domain_listed(&smtp.relay_domains, "base.mars.example"));
    assert!(!domain_listed(&smtp.relay_domains, "evil.example"));
    assert_eq!(c.delivery.batch_max_messages, 50);
    assert_eq!(
        c.delivery.delay_warning,
        Some(Duration::from_secs(24 * 3600))
    );
    let off = load(&format!("{EARTH}\n[delivery]\ndelay-warning-hours = 0\n")).unwrap();
    assert_eq!(off.delivery.delay_warning, None);
    assert!(load(&format!("{EARTH}\n[delivery]\ndelay-warning-hours = -1\n")).is_err());
}

#[test]
fn bib_keys_are_checked_when_the_config_loads() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.key");
    std::fs::write(&good, [7u8; 32]).unwrap();
    let short = dir.path().join("short.key");
    std::fs::write(&short, b"password\n").unwrap();
    let moon = |bp_extra: &str| {
        format!(
            "name = \"gw.moon.example\"\nspool = \"spool\"\n[bp]\nnode-id = \"ipn:2.0\"\n\
             listen = \"127.0.0.1:4556\"\nendpoints = [\"ipn:2.25\"]\n{bp_extra}\n\
             [relay]\nsmtp = \"127.0.0.1:25\"\ndomains = [\"moon.example\"]\n"
        )
    };
    let key_line = |p: &Path| format!("[bp.bib-keys]\n\"ipn:1.0\" = \"{}\"\n", p.display());
    let e = load(&moon("require-bib = true")).unwrap_err().to_string();
    assert!(
        e.contains("bp.bib-keys") && e.contains("require-bib = true needs"),
        "{e}"
    );
    // The table must come after the [bp] keys.
    let c = load(&moon(&format!("require-bib = true\n{}", key_line(&good)))).unwrap();
    let bp = c.bp.unwrap();
    assert!(bp.require_bib);
    assert_eq!(
        bp.bib_keys,
        vec![("ipn:1.0".to_string(), SecretKey(vec![7; 32]))]
    );
    assert_eq!(format!("{:?}", bp.bib_keys[0].1), "<32-byte key>");
    let e = load(&moon(&key_line(&short))).unwrap_err().to_string();
    assert!(
        e.contains("bp.bib-keys.\"ipn:1.0\"") && e.contains("holds 9 bytes"),
        "{e}"
    );
    let e = load(&moon(&format!(
        "[bp.bib-keys]\n\"mars\" = \"{}\"\n",
        good.display()
    )))
    .unwrap_err()
    .to_string();
    assert!(e.contains("`mars` is not an ipn: or dtn: EID"), "{e}");

    let earth = format!("{EARTH}\n[bp]\nnode-id = \"ipn:1.0\"\n").replace(
        "uri = \"https://gw.moon.example/inboundmail\"",
        "transport = \"bp\"\ntcpcl = \"127.0.0.1:4556\"\ndestination = \"ipn:2.25\"\nBIB",
    );
    let c = load(&earth.replace("BIB", &format!("bib-key-file = \"{}\"", good.display()))).unwrap();
    let bib = c
        .route_for("moon.example")
        .unwrap()
        .bp
        .clone()
        .unwrap()
        .bib
        .unwrap();
    assert_eq!(bib.variant, deepmail_bundle::ShaVariant::HmacSha384);
    let e = load(&earth.replace("BIB", "bib-variant = \"hmac-sha256\""))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bib-variant") && e.contains("needs bib-key-file"),
        "{e}"
    );
    let e = load(&earth.replace(
        "BIB",
        &format!(
            "bib-key-file = \"{}\"\nbib-variant = \"md5\"",
            good.display()
        ),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("`md5` is not a BIB-HMAC-SHA2 variant"), "{e}");
}

#[test]
fn a_bp_route_is_one_line_of_config() {
    let text = format!("{EARTH}\n[bp]\nnode-id = \"ipn:1.0\"\n").replace(
        "uri = \"https://gw.moon.example/inboundmail\"",
        "transport = \"bp\"\ntcpcl = \"127.0.0.1:4556\"\ndestination = \"ipn:2.25\"\nmtu = 65536",
    );
    let c = load(&text).unwrap();
    let bp = c.route_for("moon.example").unwrap().bp.clone().unwrap();
    assert_eq!(bp.destination, "ipn:2.25");
    assert_eq!(bp.crc, "crc32c");
    assert_eq!(bp.lifetime, Duration::from_secs(86_400));
    assert_eq!(
        (bp.keepalive_secs, bp.session_idle),
        (30, Duration::from_secs(300))
    );
    assert_eq!(
        c.bp.as_ref().unwrap().handshake_timeout,
        Duration::from_secs(30)
    );
    let tuned = load(
        &text
            .replace(
                "mtu = 65536",
                "mtu = 65536\nkeepalive-secs = 1800\nsession-idle-secs = 0",
            )
            .replace(
                "node-id = \"ipn:1.0\"",
                "node-id = \"ipn:1.0\"\nhandshake-timeout-secs = 960",
            ),
    )
    .unwrap();
    assert_eq!(
        tuned.bp.as_ref().unwrap().handshake_timeout,
        Duration::from_secs(960)
    );
    let e = load(&text.replace(
        "node-id = \"ipn:1.0\"",
        "node-id = \"ipn:1.0\"\nhandshake-timeout-secs = 0",
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("bp.handshake-timeout-secs"), "{e}");
    let bp = tuned.route_for("moon.example").unwrap().bp.clone().unwrap();
    assert_eq!((bp.keepalive_secs, bp.session_idle), (1800, Duration::ZERO));
    let e = load(&text.replace("mtu = 65536", "mtu = 65536\nkeepalive-secs = 70000"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("keepalive-secs"), "{e}");
    let e = load(&text.replace("ipn:2.25", "moon"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("`route[0].destination`"), "{e}");
    let e = load(&text.replace("[bp]\nnode-id = \"ipn:1.0\"", ""))
        .unwrap_err()
        .to_string();
    assert!(e.contains("[bp]"), "{e}");
    assert!(valid_eid("dtn://moon-gw/mail") && valid_eid("ipn:2.25"));
    assert!(!valid_eid("ipn:2") && !valid_eid("dtn://") && !valid_eid("mailto:x"));
}

#[test]
fn routes_fall_back_to_star() {
    let c = load(EARTH).unwrap();
    assert_eq!(c.route_for("MOON.example.").unwrap().domain, "moon.example");
    assert_eq!(c.route_for("venus.example").unwrap().domain, "*");
}

#[test]
fn errors_name_the_key() {
    let cases = [
        (EARTH.replace("2525\"", "x\""), "smtp.listen"),
        (
            EARTH.replace("\"moon.example\", ", "\"bad domain\", "),
            "smtp.relay-domains",
        ),
        (
            EARTH.replace("uri = \"https", "uri = \"ftp"),
            "route[0].uri",
        ),
        (
            format!("{EARTH}\n[delivery]\nbatch-max-messages = 0\n"),
            "delivery.batch-max-messages",
        ),
        (
            format!("{EARTH}\n[stages]\nfoo = \"builtin:x\"\n"),
            "stages.foo",
        ),
        (
            format!("{EARTH}\n[relay]\nsmtp = \"nowhere\"\n"),
            "relay.smtp",
        ),
    ];
    for (text, key) in cases {
        let e = load(&text).unwrap_err().to_string();
        assert!(e.contains(&format!("`{key}`")), "{key}: {e}");
        assert!(e.starts_with("/etc/deepmail/earth.toml"), "{e}");
    }
}

#[test]
fn unknown_keys_and_syntax_errors_say_where() {
    let e = load(&EARTH.replace("spool =", "spoool ="))
        .unwrap_err()
        .to_string();
    assert!(e.contains("spoool"), "{e}");
    let e = load("name = ").unwrap_err().to_string();
    assert!(e.contains("line 1"), "{e}");
}

#[test]
fn smtp_without_route_or_receive_without_relay_is_refused() {
    let e = load(&EARTH.replace("[[route]]", "[[nothing]]"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("nothing"), "{e}");
    let e = load("name = \"gw\"\nspool = \"s\"\n[smtp]\nlisten = \"127.0.0.1:1\"\nrelay-domains = [\"a.example\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`route`"), "{e}");
}

#[test]
fn a_key_file_that_never_ends_is_refused() {
    // Before the loader read files through a bounded reader, this read
    // /dev/zero until memory ran out.
    let text = format!(
        "{EARTH}\n[bp]\nnode-id = \"ipn:1.0\"\n"
    )
    .replace(
        "uri = \"https://gw.moon.example/inboundmail\"",
        "transport = \"bp\"\ntcpcl = \"127.0.0.1:4556\"\ndestination = \"ipn:2.25\"\nbib-key-file = \"/dev/zero\"",
    );
    let e = load(&text).unwrap_err().to_string();
    assert!(
        e.contains("route[0].bib-key-file") && e.contains("larger than 1048576 bytes"),
        "{e}"
    );
}

/// An environment with one file and literal addresses only.
struct OneFile;

impl Environment for OneFile {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if path == Path::new("/etc/deepmail/ca.pem") {
            Ok(b"-----BEGIN CERTIFICATE-----".to_vec())
        } else {
            Err(std::io::ErrorKind::NotFound.into())
        }
    }
    fn is_file(&self, path: &Path) -> bool {
        path == Path::new("/etc/deepmail/ca.pem")
    }
    fn resolve(&self, text: &str) -> std::io::Result<Vec<std::net::SocketAddr>> {
        text.parse()
            .map(|a| vec![a])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }
}

#[test]
fn files_and_addresses_come_from_the_environment() {
    let path = Path::new("/etc/deepmail/earth.toml");
    let with_ca = EARTH.replace(
        "uri = \"https://gw.moon.example/inboundmail\"",
        "uri = \"https://gw.moon.example/inboundmail\"\nca = \"ca.pem\"",
    );
    let c = GatewayConfig::from_toml_in(&with_ca, path, &OneFile).unwrap();
    assert_eq!(
        c.route_for("moon.example").unwrap().ca_pem,
        b"-----BEGIN CERTIFICATE-----"
    );
    let e = GatewayConfig::from_toml_in(&with_ca.replace("ca.pem", "other.pem"), path, &OneFile)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("route[0].ca") && e.contains("/etc/deepmail/other.pem"),
        "{e}"
    );
    let e = GatewayConfig::from_toml_in(
        &with_ca.replace("127.0.0.1:2525", "localhost:2525"),
        path,
        &OneFile,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("smtp.listen"), "{e}");
}

#[test]
fn an_oversized_file_is_refused_before_parsing() {
    let text = format!("{EARTH}\n#{}\n", "x".repeat(1 << 20));
    let e = load(&text).unwrap_err().to_string();
    assert!(e.contains("at most 1048576"), "{e}");
}

#[test]
fn contact_plans_load_and_reload_into_every_clone() {
    let with = |contacts: &str| {
        EARTH.replace(
            "uri = \"https://gw.moon.example/inboundmail\"",
            &format!("uri = \"https://gw.moon.example/inboundmail\"\ncontacts = \"\"\"\n{contacts}\n\"\"\""),
        )
    };
    let running = load(&with(
        "@ 2027/01/01-00:00:00\na contact +0 +3600 1 2 1000\na range +0 +3600 1 2 2",
    ))
    .unwrap();
    let plan = running
        .route_for("moon.example")
        .unwrap()
        .plan
        .clone()
        .unwrap();
    assert_eq!(plan.nodes, (1, 2));
    assert_eq!(plan.source, "inline");
    let w = plan.link.next(0).unwrap();
    assert_eq!(
        (w.start_ms, w.rate, w.owlt_ms),
        (1_798_761_600_000, 1000, 2000)
    );
    // A clone held elsewhere in the gateway sees what a reload brings.
    let held = running.clone();
    let fresh = load(&with(
        "@ 2027/01/01-00:00:00\na contact +7200 +9000 1 2 5000",
    ))
    .unwrap();
    let (reloaded, restart) = running.reload_plans(&fresh);
    assert_eq!(reloaded.len(), 1, "{reloaded:?}");
    assert!(restart.is_empty());
    let link = &held
        .route_for("moon.example")
        .unwrap()
        .plan
        .as_ref()
        .unwrap()
        .link;
    assert_eq!(
        link.next(0).unwrap().start_ms,
        1_798_761_600_000 + 7_200_000
    );
    // A plan for a route that had none needs a restart.
    let (_, restart) = load(EARTH).unwrap().reload_plans(&fresh);
    assert_eq!(restart.len(), 1);

    let errors = [
        (with("a contact +0 +10 1 2"), "route[0].contacts", "line 1"),
        (
            with("a contact +0 +10 1 2 9\na contact +0 +10 1 3 9"),
            "route[0].plan-to-node",
            "several",
        ),
        (
            with("a contact +0 +10 3 2 9\na contact +0 +10 1 2 9"),
            "route[0].plan-from-node",
            "several",
        ),
        (
            with("a contact +0 +10 1 2 9").replace("contacts =", "plan-to-node = 7\ncontacts ="),
            "route[0].contacts",
            "no contact from node 1 to node 7",
        ),
        (
            with("a contact +0 +10 1 2 9")
                .replace("contacts =", "contact-plan = \"x.ionrc\"\ncontacts ="),
            "route[0].contacts",
            "not both",
        ),
        (
            EARTH.replace(
                "uri = \"https://gw.moon.example/inboundmail\"",
                "uri = \"https://gw.moon.example/inboundmail\"\nmax-age-cap-days = 3",
            ),
            "route[0].max-age-cap-days",
            "only with a contact plan",
        ),
    ];
    for (text, key, what) in errors {
        let e = load(&text).unwrap_err().to_string();
        assert!(
            e.contains(&format!("`{key}`")) && e.contains(what),
            "{key}: {e}"
        );
    }
}

/// Callers can tell what kind of problem a configuration has, and the
/// message still names the file and the key.
#[test]
fn errors_are_typed_and_name_file_and_key() {
    let bad_name = EARTH.replace("name = \"gw.earth.example\"", "name = \" \"");
    match load(&bad_name) {
        Err(e @ ConfigError::Key { .. }) => {
            let ConfigError::Key { path, key, .. } = &e else {
                unreachable!()
            };
            assert_eq!(key, "name");
            assert_eq!(path.as_deref(), Some(Path::new("/etc/deepmail/earth.toml")));
            assert_eq!(
                e.to_string(),
                "/etc/deepmail/earth.toml: key `name`: must not be empty"
            );
        }
        other => panic!("expected a key error: {other:?}"),
    }
    assert!(matches!(load("name = "), Err(ConfigError::Syntax { .. })));
    assert!(matches!(
        GatewayConfig::load(Path::new("/nonexistent/earth.toml")),
        Err(ConfigError::Read { .. })
    ));
    let huge = "#".repeat(2 << 20);
    assert!(matches!(load(&huge), Err(ConfigError::TooLarge { .. })));
}
