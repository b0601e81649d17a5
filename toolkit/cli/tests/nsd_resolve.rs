//! `deepmail resolve` against a real authoritative DNS server: NSD, installed
//! by scripts/peers/install-nsd.sh and started by scripts/peers/nsd/ on
//! 127.0.0.1 with the zones in scripts/peers/nsd/zones (URI records of
//! several priorities and weights, a CNAME, a 40-record answer that NSD
//! truncates over UDP, NODATA, NXDOMAIN, SERVFAIL). The DNS queries are sent
//! from inside the dns-resolver WebAssembly component.
//!
//! Without NSD these tests are skipped visibly outside CI and fail under CI
//! (`test_peers`); they never pass without the peer.

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;
use common::Nsd;

fn nsd() -> Option<Nsd> {
    Nsd::start(&[])
}

fn deepmail(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_deepmail"))
        .env(
            "DEEPMAIL_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache"),
        )
        .args(args)
        .output()
        .unwrap()
}

fn resolve_json(nsd: &Nsd, domain: &str, seed: u64) -> serde_json::Value {
    let server = format!("127.0.0.1:{}", nsd.port);
    let out = deepmail(&[
        "resolve",
        domain,
        "--dns-server",
        &server,
        "--seed",
        &seed.to_string(),
        "--json",
    ]);
    assert!(
        out.status.success(),
        "resolve {domain}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn resolve_error(nsd: &Nsd, domain: &str) -> String {
    let server = format!("127.0.0.1:{}", nsd.port);
    let out = deepmail(&["resolve", domain, "--dns-server", &server]);
    assert!(!out.status.success(), "resolve {domain} should fail");
    String::from_utf8(out.stderr).unwrap()
}

fn uris(v: &serde_json::Value) -> Vec<String> {
    v["next_hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["uri"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn priorities_first_then_weights() {
    let Some(nsd) = nsd() else { return };
    let v = resolve_json(&nsd, "moon.example", 1);
    let hops = v["next_hops"].as_array().unwrap();
    assert_eq!(hops.len(), 3);
    assert_eq!(
        hops[2]["uri"], "https://backup.moon.example/inboundmail",
        "priority 20 last"
    );
    assert!(hops
        .iter()
        .all(|h| h["ttl"] == 300 && h["origin"].as_str().unwrap().starts_with("dns 127.0.0.1:")));
    // Same seed, same order; across seeds the weight-3 gateway leads about 3 times in 4.
    assert_eq!(uris(&resolve_json(&nsd, "moon.example", 1)), uris(&v));
    let firsts = (0..40u64)
        .filter(|seed| {
            uris(&resolve_json(&nsd, "moon.example", *seed))[0]
                == "https://gw2.moon.example/inboundmail"
        })
        .count();
    assert!(
        (20..=38).contains(&firsts),
        "weight 3 of 4 led {firsts}/40 times"
    );
}

#[test]
fn cname_is_followed_across_zones() {
    let Some(nsd) = nsd() else { return };
    let v = resolve_json(&nsd, "mars.example", 3);
    assert_eq!(
        uris(&v),
        [
            "https://relay.moon.example/inboundmail",
            "https://relay-backup.moon.example/inboundmail"
        ]
    );
}

#[test]
fn truncated_udp_answer_is_retried_over_tcp() {
    let Some(nsd) = nsd() else { return };
    let v = resolve_json(&nsd, "big.moon.example", 5);
    let hops = v["next_hops"].as_array().unwrap();
    assert_eq!(hops.len(), 40, "all 40 records, which only TCP can carry");
    let prios: Vec<u64> = hops
        .iter()
        .map(|h| h["priority"].as_u64().unwrap())
        .collect();
    assert!(prios.windows(2).all(|w| w[0] <= w[1]), "{prios:?}");
}

#[test]
fn negative_answers_are_distinct_errors() {
    let Some(nsd) = nsd() else { return };
    let e = resolve_error(&nsd, "nowhere.moon.example");
    assert!(
        e.contains("[nxdomain]") && e.contains("cache for 60 s"),
        "{e}"
    );
    let e = resolve_error(&nsd, "nodata.moon.example");
    assert!(e.contains("[no-data]"), "{e}");
    let e = resolve_error(&nsd, "servfail.example");
    assert!(e.contains("[servfail]"), "{e}");
    let e = resolve_error(&nsd, "ftp.moon.example");
    assert!(
        e.contains("[no-usable-target]") && e.contains("ftp://ftp.moon.example/inboundmail"),
        "{e}"
    );
    let e = resolve_error(&nsd, "venus.example");
    assert!(e.contains("[refused]"), "not our zone: {e}");
}

#[test]
fn a_silent_server_is_a_timeout_and_the_next_server_answers() {
    let Some(nsd) = nsd() else { return };
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let start = Instant::now();
    let out = deepmail(&[
        "resolve",
        "moon.example",
        "--dns-server",
        &silent_addr,
        "--timeout-ms",
        "300",
    ]);
    let took = start.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("[timeout]") && err.contains("300 ms"),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(5),
        "two attempts of 300 ms, took {took:?}"
    );
    let good = format!("127.0.0.1:{}", nsd.port);
    let out = deepmail(&[
        "resolve",
        "moon.example",
        "--dns-server",
        &silent_addr,
        "--dns-server",
        &good,
        "--timeout-ms",
        "300",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    drop(silent);
}

#[test]
fn static_routes_need_no_dns() {
    let out = deepmail(&[
        "resolve",
        "moon.example",
        "--json",
        "--seed",
        "2",
        "--route",
        "moon.example https://gw.moon.example/inboundmail 10 1",
        "--route",
        "moon.example https://gw2.moon.example/inboundmail 20",
        "--route",
        "* https://default.example/inboundmail 50",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        uris(&v),
        [
            "https://gw.moon.example/inboundmail",
            "https://gw2.moon.example/inboundmail"
        ]
    );
    assert_eq!(v["next_hops"][0]["origin"], "static");
    let out = deepmail(&[
        "resolve",
        "mars.example",
        "--route",
        "moon.example https://gw.moon.example/x",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("[no-route]") && err.contains("moon.example"),
        "{err}"
    );
    let out = deepmail(&[
        "resolve",
        "moon.example",
        "--route",
        "moon.example not-a-uri",
    ]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("[invalid-config]"));
}

/// The host caches an answer for its TTL: with NSD stopped, the second
/// lookup still succeeds, from the cache, and a domain never asked fails.
#[test]
fn host_caches_answers_for_their_ttl() {
    use deepmail_host::{Host, HostConfig, PluginSource, Resolver};
    let Some(nsd) = nsd() else { return };
    let host = Host::new(HostConfig {
        cache_dir: Some(Path::new(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache")),
        ..HostConfig::default()
    })
    .unwrap();
    let config = vec![
        ("server".to_string(), format!("127.0.0.1:{}", nsd.port)),
        ("timeout-ms".to_string(), "300".to_string()),
    ];
    let resolver =
        Resolver::load(&host, &PluginSource::Builtin("dns-resolver".into()), config).unwrap();
    let https = vec!["https".to_string()];
    let first = resolver.resolve("moon.example", &https, 9).unwrap();
    assert!(!first.cached);
    assert_eq!(first.hops.len(), 3);
    drop(nsd);
    let again = resolver.resolve("MOON.example.", &https, 9).unwrap();
    assert!(
        again.cached,
        "served from the host's cache within the 300 s TTL"
    );
    assert_eq!(again.hops, first.hops);
    let err = resolver.resolve("mars.example", &https, 9).unwrap_err();
    assert!(
        matches!(err.code.as_str(), "timeout" | "network"),
        "NSD is gone: {err}"
    );
}
