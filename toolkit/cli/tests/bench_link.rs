//! `deepmail bench link` on a short emulated link: every route crosses, and
//! the order the protocols dictate holds (SMTP's round trips cost more
//! than a gateway's handshake; nothing beats the one-way limit; a second
//! HTTP/3 message resumes with 0-RTT, a second HTTPS message and a second
//! BP message go on the connection or TCPCL session kept open, each taking
//! about one OWLT; the sender knows each outcome one OWLT after that).

mod common;

/// The two benchmarks time links of 120-150 ms one way on a 2-core
/// machine: run side by side, one's plugin compilation (a cold component
/// cache on a fresh machine) lands in the other's timed section and adds a
/// whole OWLT. Each takes this lock for its run.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn latency_table_has_every_route_in_protocol_order() {
    let _serial = one_at_a_time();
    let out = common::deepmail()
        .args([
            "bench",
            "link",
            "--owlt-ms",
            "150",
            "--messages",
            "2",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let owlt = |prefix: &str| {
        doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"].as_str().unwrap().starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix} row: {doc}"))["owlt"]
            .as_f64()
            .unwrap()
    };
    let (smtp, https, h3, bp) = (owlt("SMTP"), owlt("HTTPS"), owlt("HTTP/3"), owlt("BP"));
    for v in [smtp, https, h3, bp] {
        assert!(v >= 1.0, "nothing crosses faster than one OWLT: {doc}");
    }
    // Greeting, EHLO, MAIL/RCPT/DATA and the content: at least 7 one-way trips.
    assert!(smtp >= 6.9, "{doc}");
    // A TLS or QUIC handshake round trip plus the request: at least 3.
    assert!(https >= 2.9 && h3 >= 2.9, "{doc}");
    assert!(smtp > https && smtp > h3, "{doc}");
    // The second HTTP/3 message resumes the session: the request goes as
    // 0-RTT data with the first flight and is served on arrival, one OWLT
    // (a regression to a full handshake, or to a receiver that waits for
    // the client's Finished, makes it three).
    let second = |prefix: &str| {
        doc["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["route"].as_str().unwrap().starts_with(prefix) && r["message"] == 2)
            .unwrap_or_else(|| panic!("no second {prefix} row: {doc}"))["owlt"]
            .as_f64()
            .unwrap()
    };
    assert!(
        (1.0..2.0).contains(&second("HTTP/3")),
        "the second HTTP/3 message should take one OWLT (0-RTT): {doc}"
    );
    // The first BP message pays the TCPCL session setup (a round trip);
    // the second goes on the session kept open: its first segment leaves
    // at once (a sender that opens a session per delivery makes it three).
    assert!(bp >= 2.9, "{doc}");
    assert!(
        (1.0..2.0).contains(&second("BP")),
        "the second BP message should take one OWLT (session kept open): {doc}"
    );
    // TCPCL over TLS: the TLS handshake after the contact headers costs
    // one more round trip at first contact, five OWLT, when the listener
    // sends its SESS_INIT as 0.5-RTT data (seven when it waits for the
    // client's Finished); the session kept open, TLS included, one OWLT.
    let first_tls = owlt("BP over TCPCLv4 + TLS");
    assert!((4.9..6.0).contains(&first_tls), "{doc}");
    assert!(
        (1.0..2.0).contains(&second("BP over TCPCLv4 + TLS")),
        "the second BP-over-TLS message should take one OWLT (session kept open): {doc}"
    );
    // The second HTTPS batch goes on the HTTP/2 connection kept open.
    assert!(
        (1.0..2.0).contains(&second("HTTPS")),
        "the second HTTPS message should take one OWLT (connection kept): {doc}"
    );
    // The sender knows the outcome one OWLT after the far side has it
    // (the answer's way back), never before.
    for r in doc["rows"].as_array().unwrap() {
        let (there, knows) = (r["owlt"].as_f64().unwrap(), r["answer_owlt"].as_f64());
        let knows = knows.unwrap_or_else(|| panic!("no answer time: {r}"));
        assert!(
            knows >= there + 0.9 && knows < there + 2.0,
            "the answer comes back one OWLT later: {r}"
        );
    }
}

#[test]
fn mars_scaled_down_keeps_the_multiples_and_smtp_times_out() {
    let _serial = one_at_a_time();
    // Mars at its closest, 4 minutes each way, emulated 2000x faster
    // (120 ms) with every timer scaled alike.
    let out = common::deepmail()
        .args([
            "bench",
            "link",
            "--owlt-ms",
            "240000",
            "--scale",
            "2000",
            "--messages",
            "2",
            "--json",
            "-",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["scale"], 2000);
    assert_eq!(doc["emulated_owlt_ms"], 120.0);
    let rows = doc["rows"].as_array().unwrap();
    // SMTP with RFC 5321's 5-minute reply timeout cannot cross a link
    // whose round trip is 8 minutes.
    for r in rows.iter().filter(|r| r["route"] == "SMTP across the link") {
        assert_eq!(r["failed"], true, "{doc}");
        let note = r["note"].as_str().unwrap();
        assert!(
            note.contains("5.0 min") && note.contains("8.0 min"),
            "{note}"
        );
    }
    let row = |prefix: &str, n: u64| {
        rows.iter()
            .find(|r| r["route"].as_str().unwrap().starts_with(prefix) && r["message"] == n)
            .unwrap_or_else(|| panic!("no {prefix} #{n}: {doc}"))
    };
    for (prefix, n, low, high) in [
        ("HTTPS", 1, 2.9, 4.0),
        ("HTTP/3", 2, 1.0, 2.0),
        ("BP", 2, 1.0, 2.0),
    ] {
        let r = row(prefix, n);
        let owlt = r["owlt"].as_f64().unwrap();
        assert!((low..high).contains(&owlt), "{prefix} #{n}: {doc}");
        // Reported at the real distance: the multiple times 4 minutes.
        let real = r["real_ms"].as_f64().unwrap();
        assert!((real / 240_000.0 - owlt).abs() < 0.01, "{doc}");
    }
}
