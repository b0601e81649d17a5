//! BPv6 by configuration alone: two gateways whose `[stages] fragmenter`
//! is the BPv6 (RFC 5050) component of `plugins-standalone/bp6-fragmenter`
//! carry a message over TCPCLv4, fragmented and reassembled as RFC 5050
//! bundles; nothing else in the gateways changes. A Moon gateway that
//! keeps the BPv7 fragmenter refuses those bundles: the one line is what
//! switches the version.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use deepmail_smtp::client::{relay, RelayConfig};

fn wait_for(what: &str, secs: u64, dir: &Path, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        if Instant::now() > deadline {
            let logs: String = ["earth", "moon"]
                .iter()
                .map(|n| {
                    format!(
                        "\n--- {n} ---\n{}",
                        std::fs::read_to_string(dir.join(format!("{n}.log"))).unwrap_or_default()
                    )
                })
                .collect();
            panic!("timed out waiting for {what}{logs}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Kill(Vec<std::process::Child>);

impl Drop for Kill {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn two_gateways_carry_mail_as_bpv6_by_config_alone() {
    let wasm = common::built_by("scripts/bp6/build.sh", &[]).remove(0);
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (sink, sink_addr) = common::start_sink(&runtime);
    let stages = format!("[stages]\nfragmenter = \"{wasm}\"\n");
    let moon_tcpcl = common::free_port();
    // Each Moon has a spool of its own: the BPv7 Moon that replaces the
    // BPv6 one (killed) must not relay again what the first had received
    // but not yet recorded as relayed when it was killed (at-least-once
    // across a crash is the gateway's contract; this test counts arrivals).
    let moon_toml = |fragmenter: &str| {
        let spool = if fragmenter.is_empty() {
            "spool-moon7"
        } else {
            "spool-moon6"
        };
        format!(
            "name = \"gw.moon.example\"\nspool = \"{spool}\"\n{fragmenter}[bp]\nnode-id = \"ipn:2.0\"\nlisten = \"127.0.0.1:{moon_tcpcl}\"\nendpoints = [\"ipn:2.25\"]\n[relay]\nsmtp = \"{sink_addr}\"\ndomains = [\"moon.example\"]\n"
        )
    };
    let mut procs = Kill(vec![common::spawn_gateway(dir, "moon", moon_toml(&stages))]);
    let moon = SocketAddr::from(([127, 0, 0, 1], moon_tcpcl));
    common::wait_listening(moon, "the Moon gateway's TCPCL listener");
    let earth_smtp = common::free_port();
    procs.0.push(common::spawn_gateway(
        dir,
        "earth",
        format!(
            "name = \"gw.earth.example\"\nspool = \"spool-earth\"\n{stages}[smtp]\nlisten = \"127.0.0.1:{earth_smtp}\"\nrelay-domains = [\"moon.example\"]\n[bp]\nnode-id = \"ipn:1.0\"\n[delivery]\nretry-initial-secs = 1\n[[route]]\ndomain = \"moon.example\"\ntransport = \"bp\"\ntcpcl = \"{moon}\"\ndestination = \"ipn:2.25\"\nmtu = 9000\nlifetime-secs = 3600\n"
        ),
    ));
    let earth = SocketAddr::from(([127, 0, 0, 1], earth_smtp));
    common::wait_listening(earth, "the Earth gateway");

    let mut message =
        b"From: ops@earth.example\r\nTo: ada@moon.example\r\nSubject: RFC 5050\r\n\r\n".to_vec();
    let mut state = 3u64;
    while message.len() < 120_000 {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        message.extend_from_slice(format!("{:016x}{:016x}\r\n", state, state >> 3).as_bytes());
    }
    let send = |content: &[u8]| {
        let d = runtime
            .block_on(relay(
                earth,
                &RelayConfig::new("mta.earth.example"),
                &common::envelope("ops@earth.example", "ada@moon.example"),
                content,
            ))
            .unwrap();
        assert!(d.all_accepted(), "{d:?}");
    };
    send(&message);
    wait_for("the message on the Moon", 60, dir, || {
        !sink.got.lock().unwrap().is_empty()
    });
    let (_, content) = sink.got.lock().unwrap()[0].clone();
    assert!(content.ends_with(&message), "byte for byte");
    let fragments = common::fragments_reassembled(&dir.join("moon.log"));
    assert!(
        fragments >= 13,
        "120 kB at 9000 bytes: {fragments} fragments"
    );

    // The same Earth, a Moon with the default (BPv7) fragmenter: it
    // cannot read RFC 5050 bundles, refuses them, and nothing arrives.
    let mut moon7 = procs.0.remove(0);
    let _ = moon7.kill();
    let _ = moon7.wait();
    std::fs::rename(dir.join("moon.log"), dir.join("moon6.log")).unwrap();
    procs
        .0
        .push(common::spawn_gateway(dir, "moon", moon_toml("")));
    common::wait_listening(moon, "the BPv7 Moon gateway");
    send(b"Subject: v6 to a v7 node\r\n\r\nnot readable there\r\n");
    wait_for("the BPv7 Moon refusing the BPv6 bundle", 30, dir, || {
        std::fs::read_to_string(dir.join("moon.log"))
            .unwrap_or_default()
            .contains("bundle refused: does not parse")
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.got.lock().unwrap().len(), 1, "nothing crossed");
}
