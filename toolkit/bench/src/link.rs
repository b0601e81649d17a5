//! `bench link`: the latency table. The same message crosses an emulated
//! deep-space link (`deepmail-link`, one-way delay in each direction) by
//! each route, and the time from "accepted on Earth" to "spooled on the
//! Moon" is reported as a multiple of the one-way light time (OWLT):
//!
//! * plain SMTP from the Earth MTA to the Moon MTA across the link (the
//!   baseline the seeds reject: from the start of the session to the Moon
//!   MTA holding the message);
//! * the gateways over HTTPS (TCP + TLS), HTTP/3 (first contact, then a
//!   second message that may resume the QUIC session with 0-RTT), and the
//!   Bundle Protocol over TCPCLv4: from the Earth gateway's SMTP `250` to
//!   the Moon gateway's spool.
//!
//! Mars (4 to 22 minutes each way) is run scaled down: `--scale N` divides
//! the link's delay by N, and the timers follow the scaled OWLT as
//! docs/GATEWAY.md ("Long links") says to set them (the receiving
//! gateway's handshake timeouts at 4 OWLT, the QUIC initial RTT at 2, the
//! sender's deadline well above a first contact) and the SMTP baseline
//! keeps RFC 5321's timeouts, divided by N. So the multiples of the OWLT
//! are those of the real distance, and the times are reported at the real
//! distance too.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use clap::Args;
use deepmail_gateway::{RunningGateway, TestPki};
use deepmail_link::{Link, LinkConfig};
use deepmail_smtp::{Envelope, Recipient};
use serde_json::json;

use crate::harness::{start_sink, warm_plugins, write_config};
use crate::svg::Svg;
use crate::{BenchError, Outcome, Stages};

/// `bench link`: the light time, its scale, the messages, the outputs.
#[derive(Args)]
pub(crate) struct LinkBenchArgs {
    /// One-way light time of the emulated link, milliseconds (Moon: 1280).
    #[arg(long, value_name = "MS", default_value_t = 1280)]
    owlt_ms: u64,
    /// Run the link N times faster than --owlt-ms, timers scaled alike (Mars:
    /// --owlt-ms 240000 --scale 200 emulates 4 minutes each way in 1.2 s).
    #[arg(long, value_name = "N", default_value_t = 1)]
    scale: u32,
    /// Messages per route (the first is first contact; later ones may reuse sessions).
    #[arg(long, default_value_t = 2)]
    messages: usize,
    /// Write the results as JSON to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Write a bar chart (SVG) to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
}

/// One measured crossing.
struct Row {
    route: &'static str,
    message: usize,
    /// Emulated time; `None`: the route failed (the note says why).
    elapsed: Option<Duration>,
    /// When the sender knew the outcome (SMTP: DATA's 250; gateways: the
    /// Earth gateway recorded the 2xx or the XFER_ACKs), emulated time.
    answer: Option<Duration>,
    note: String,
}

fn envelope() -> Envelope {
    Envelope {
        reverse_path: "ops@earth.example".into(),
        mail_params: vec![],
        recipients: vec![Recipient {
            mailbox: "ada@moon.example".into(),
            params: vec![],
        }],
    }
}

fn message(route: &str, n: usize) -> Vec<u8> {
    format!(
        "From: ops@earth.example\r\nTo: ada@moon.example\r\nSubject: latency {route} #{n}\r\nMessage-ID: <lat-{route}-{n}@earth.example>\r\n\r\nHow long does this take to reach the Moon?\r\n"
    )
    .into_bytes()
}

pub(crate) fn run(stages: &Stages, args: LinkBenchArgs) -> Result<Outcome, BenchError> {
    if args.owlt_ms == 0 || args.messages == 0 || args.scale == 0 {
        return Err(BenchError::BadArgument(
            "--owlt-ms, --messages and --scale must be at least 1".into(),
        ));
    }
    if args.owlt_ms / u64::from(args.scale) < 20 {
        return Err(BenchError::BadArgument(format!(
            "--owlt-ms {} / --scale {} leaves {} ms each way; keep the emulated delay at 20 ms or more, or the bench measures the machine instead of the link",
            args.owlt_ms,
            args.scale,
            args.owlt_ms / u64::from(args.scale)
        )));
    }
    let (dir, runtime) = crate::harness::workspace("bench-link", true)?;
    let result = runtime.block_on(measure(stages.host.clone(), &dir, &args));
    let _ = std::fs::remove_dir_all(&dir);
    let rows = result?;
    report(&args, &rows)?;
    Ok(Outcome::Passed)
}

async fn measure(
    host: deepmail_host::Host,
    dir: &Path,
    args: &LinkBenchArgs,
) -> Result<Vec<Row>, BenchError> {
    // The emulated one-way delay; every timer below derives from it.
    let owlt = Duration::from_millis(args.owlt_ms) / args.scale;
    let scale = args.scale;
    // Compile the senders first: the table measures the link, not Cranelift.
    warm_plugins(&host, &["https-sender", "quic-sender", "tcpcl-sender"]).await?;
    let pki = TestPki::generate(&["localhost".into()], "bench")?;
    let certs = dir.join("certs");
    pki.write_to(&certs)
        .map_err(BenchError::io("writing", &certs))?;

    // The Moon: an MTA (sink) and a gateway that receives by HTTPS, HTTP/3
    // and TCPCL, its handshake timers at four OWLT (docs/GATEWAY.md, "Long
    // links"): a handshake waits one round trip for the client.
    let handshake = 4.0 * owlt.as_secs_f64();
    let (sink, sink_addr, stop_sink) = start_sink("mta.moon.example").await?;
    let moon = RunningGateway::start(
        write_config(
            &dir.join("moon.toml"),
            &format!(
                "name = \"gw.moon.example\"\nspool = \"moon\"\n[receive]\nhttps-listen = \"127.0.0.1:0\"\nh3-listen = \"127.0.0.1:0\"\ncert = \"certs/server.pem\"\nkey = \"certs/server.key\"\nhandshake-timeout-secs = {handshake}\n[bp]\nnode-id = \"ipn:2.0\"\nlisten = \"127.0.0.1:0\"\nendpoints = [\"ipn:2.25\"]\nhandshake-timeout-secs = {handshake}\ntls-cert = \"certs/server.pem\"\ntls-key = \"certs/server.key\"\n[relay]\nsmtp = \"{sink_addr}\"\ndomains = [\"moon.example\"]\n"
            ),
        )?,
        host.clone(),
    )
    .await?;
    let (https, h3, tcpcl) = (
        moon.https_addr
            .ok_or(BenchError::NoAddress("no HTTPS address"))?,
        moon.h3_addr
            .ok_or(BenchError::NoAddress("no HTTP/3 address"))?,
        moon.tcpcl_addr
            .ok_or(BenchError::NoAddress("no TCPCL address"))?,
    );
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let link = Link::start(
        LinkConfig::with_delay(owlt)
            .tcp(any, sink_addr)
            .tcp(any, https)
            .tcp(any, tcpcl)
            .udp(any, h3),
    )
    .await
    .map_err(BenchError::Link)?;
    let (l_smtp, l_https, l_tcpcl) = (
        link.tcp_listen_addrs()[0],
        link.tcp_listen_addrs()[1],
        link.tcp_listen_addrs()[2],
    );
    let l_h3 = link.udp_listen_addrs()[0];
    let mut rows = Vec::new();

    // Baseline: SMTP straight across the link to the Moon MTA, with the
    // timeouts of RFC 5321 §4.5.3.2 (scaled like the link).
    for n in 1..=args.messages {
        let before = sink
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len();
        let t0 = Instant::now();
        let mut config = deepmail_smtp::client::RelayConfig::new("mta.earth.example");
        config.connect_timeout /= scale;
        config.command_timeout /= scale;
        config.data_timeout /= scale;
        // As `relay` does, but timing DATA's 250 (the QUIT after it is
        // not part of the answer).
        let mut answer = None;
        let relayed = match deepmail_smtp::client::SmtpClient::connect(l_smtp, &config).await {
            Ok(mut client) => {
                let sent = client.send(&envelope(), &message("smtp", n)).await;
                answer = Some(t0.elapsed());
                let _ = client.quit().await;
                sent
            }
            Err(e) => Err(e),
        };
        let d = match relayed {
            Ok(d) => d,
            Err(e) => {
                rows.push(Row {
                    route: "SMTP across the link",
                    message: n,
                    elapsed: None,
                    answer: None,
                    note: match e {
                        deepmail_smtp::client::RelayError::Timeout { stage, after } => format!(
                            "fails: no reply during {stage} within {} (RFC 5321's timeout; a round trip takes {})",
                            human(after * scale),
                            human(owlt * 2 * scale)
                        ),
                        other => format!("fails: {other}"),
                    },
                });
                continue;
            }
        };
        if !d.all_accepted() {
            return Err(BenchError::Refused(format!(
                "the Moon MTA refused the SMTP baseline: {:?}",
                d.data_reply
            )));
        }
        let at = sink
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(before)
            .map(|(_, _, at)| *at)
            .ok_or_else(|| {
                BenchError::CheckFailed("the sink lost the SMTP baseline message".into())
            })?;
        rows.push(Row {
            route: "SMTP across the link",
            message: n,
            elapsed: Some(at - t0),
            answer,
            note: "greeting, EHLO, MAIL+RCPT+DATA (pipelined), content".into(),
        });
    }

    // The gateways, one Earth gateway per route.
    let routes: [(&'static str, &'static str, String, &'static str); 4] = [
        (
            "HTTPS (TCP + TLS 1.3)",
            "https",
            format!("uri = \"https://localhost:{}/inboundmail\"\nca = \"certs/ca.pem\"\n", l_https.port()),
            "TLS handshake (1 RTT), then the request",
        ),
        (
            "HTTP/3 (QUIC)",
            "h3",
            format!("transport = \"h3\"\nuri = \"https://localhost:{}/inboundmail\"\nca = \"certs/ca.pem\"\nquic = {{ initial-rtt-ms = {} }}\n", l_h3.port(), 2 * owlt.as_millis()),
            "QUIC handshake (1 RTT), then the request",
        ),
        (
            "BP over TCPCLv4",
            "bp",
            format!("transport = \"bp\"\ntcpcl = \"{l_tcpcl}\"\ndestination = \"ipn:2.25\"\nmtu = 64000\n"),
            "contact header; contact header + SESS_INIT; SESS_INIT + the transfer",
        ),
        (
            "BP over TCPCLv4 + TLS 1.3",
            "bp-tls",
            format!("transport = \"bp\"\ntcpcl = \"{l_tcpcl}\"\ndestination = \"ipn:2.25\"\nmtu = 64000\ntls = \"require\"\nca = \"certs/ca.pem\"\ntls-name = \"localhost\"\n"),
            "contact headers; TLS handshake, SESS_INIT as 0.5-RTT data; SESS_INIT + the transfer",
        ),
    ];
    for (label, name, route, note) in routes {
        let earth = RunningGateway::start(
            write_config(
                &dir.join(format!("earth-{name}.toml")),
                &format!(
                    "name = \"gw.earth.example\"\nspool = \"earth-{name}\"\n[smtp]\nlisten = \"127.0.0.1:0\"\nrelay-domains = [\"moon.example\"]\n[bp]\nnode-id = \"ipn:1.0\"\n[delivery]\nretry-initial-secs = 60\ntimeout-secs = {}\n[[route]]\ndomain = \"moon.example\"\n{route}",
                    30 + 10 * owlt.as_secs()
                ),
            )?,
            host.clone(),
        )
        .await?;
        let smtp = earth
            .smtp_addr
            .ok_or(BenchError::NoAddress("no Earth SMTP address"))?;
        for n in 1..=args.messages {
            let before = moon.metrics.messages_received.load(Ordering::Relaxed);
            let config = deepmail_smtp::client::RelayConfig::new("mta.earth.example");
            let d = deepmail_smtp::client::relay(smtp, &config, &envelope(), &message(name, n))
                .await
                .map_err(|source| BenchError::Smtp {
                    what: format!("handing the {name} message to the Earth gateway"),
                    source,
                })?;
            let t0 = Instant::now();
            if !d.all_accepted() {
                return Err(BenchError::Refused(format!(
                    "the Earth gateway refused the {name} message: {:?}",
                    d.data_reply
                )));
            }
            // The instants come from the gateways' own `last_*_unix_us`
            // gauges, stamped when each event happened; the loops below
            // only wait for the events, so a late wake-up under load
            // does not move the times.
            let accepted = earth
                .metrics
                .last_smtp_accept_unix_us
                .load(Ordering::Relaxed);
            let deadline = t0 + Duration::from_secs(60) + owlt * 20;
            while moon.metrics.messages_received.load(Ordering::Relaxed) <= before {
                if Instant::now() > deadline {
                    return Err(BenchError::CheckFailed(format!(
                        "the {name} message did not reach the Moon spool within {:?}",
                        deadline - t0
                    )));
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let spooled = moon
                .metrics
                .last_batch_received_unix_us
                .load(Ordering::Relaxed);
            let elapsed = since(accepted, spooled)?;
            // The sender knows when the Earth gateway records the answer.
            let back = Instant::now() + Duration::from_secs(60) + owlt * 20;
            let mut answer = None;
            loop {
                if earth.metrics.batches_sent.load(Ordering::Relaxed) >= n as u64 {
                    let known = earth
                        .metrics
                        .last_batch_sent_unix_us
                        .load(Ordering::Relaxed);
                    answer = Some(since(accepted, known)?);
                    break;
                }
                if Instant::now() > back {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            rows.push(Row {
                route: label,
                message: n,
                elapsed: Some(elapsed),
                answer,
                note: match (name, n) {
                    ("https", 2..) => "the HTTP/2 connection kept open: the request at once",
                    ("h3", 2..) => "resumed session: the request in the first flight (0-RTT)",
                    ("bp", 2..) => "the TCPCL session kept open: the bundle's segments at once",
                    ("bp-tls", 2..) => {
                        "the TCPCL session kept open inside TLS: the bundle's segments at once"
                    }
                    _ => note,
                }
                .into(),
            });
        }
        earth.shutdown(Duration::from_secs(5)).await;
    }
    moon.shutdown(Duration::from_secs(5)).await;
    link.stop();
    let _ = stop_sink.send(true);
    Ok(rows)
}

/// The time from one gateway gauge stamp (`Metrics::stamp`,
/// microseconds since the Unix epoch) to a later one.
fn since(from_us: u64, to_us: u64) -> Result<Duration, BenchError> {
    if from_us == 0 || to_us < from_us {
        return Err(BenchError::CheckFailed(format!("the gateways' event stamps are out of order ({from_us} µs, then {to_us} µs): was the clock set back during the run?")));
    }
    Ok(Duration::from_micros(to_us - from_us))
}

/// A duration at human scale: ms, s or min.
fn human(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 120.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs >= 10.0 {
        format!("{secs:.0} s")
    } else {
        format!("{:.0} ms", secs * 1000.0)
    }
}

fn report(args: &LinkBenchArgs, rows: &[Row]) -> Result<(), BenchError> {
    let scale = f64::from(args.scale);
    // The emulated OWLT: what the measured times are multiples of.
    let owlt = args.owlt_ms as f64 / scale;
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    let doc = json!({
        "owlt_ms": args.owlt_ms,
        "scale": args.scale,
        "emulated_owlt_ms": owlt,
        "measure": "from accepted on Earth (SMTP baseline: session start; gateways: the Earth gateway's 250) to spooled on the Moon; answer: to the sender knowing the outcome (SMTP: DATA's 250; gateways: the Earth gateway recorded the 2xx or XFER_ACKs)",
        "rows": rows.iter().map(|r| json!({
            "route": r.route,
            "message": r.message,
            "ms": ms(r.elapsed),
            "owlt": ms(r.elapsed).map(|m| m / owlt),
            "real_ms": ms(r.elapsed).map(|m| m * scale),
            "failed": r.elapsed.is_none(),
            "answer_ms": ms(r.answer),
            "answer_owlt": ms(r.answer).map(|m| m / owlt),
            "note": r.note,
        })).collect::<Vec<_>>(),
    });
    crate::output::write_json(args.json.as_deref(), &doc)?;
    if args.json.as_deref() != Some("-") {
        if args.scale == 1 {
            println!(
                "one-way light time {} ms; time from accepted on Earth to spooled on the far side; knows: when the sender knows the outcome, in OWLT",
                args.owlt_ms
            );
        } else {
            println!(
                "one-way light time {} emulated {}x faster ({owlt:.0} ms, timers scaled alike); time from accepted on Earth to spooled on the far side, at the real distance; knows: when the sender knows the outcome, in OWLT",
                human(Duration::from_millis(args.owlt_ms)),
                args.scale
            );
        }
        println!(
            "  {:<26} {:>3} {:>10} {:>7} {:>7}  what crosses the link",
            "route",
            "msg",
            if args.scale == 1 { "ms" } else { "real" },
            "x OWLT",
            "knows"
        );
        for r in rows {
            let (time, multiple) = match r.elapsed {
                Some(d) if args.scale == 1 => (
                    format!("{:.0}", d.as_secs_f64() * 1000.0),
                    format!("{:.2}", d.as_secs_f64() * 1000.0 / owlt),
                ),
                Some(d) => (
                    human(d * args.scale),
                    format!("{:.2}", d.as_secs_f64() * 1000.0 / owlt),
                ),
                None => ("-".into(), "-".into()),
            };
            let knows = r.answer.map_or_else(
                || "-".to_string(),
                |d| format!("{:.2}", d.as_secs_f64() * 1000.0 / owlt),
            );
            println!(
                "  {:<26} {:>3} {:>10} {:>7} {:>7}  {}",
                r.route, r.message, time, multiple, knows, r.note
            );
        }
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(args.owlt_ms, args.scale, rows))
            .map_err(BenchError::io("writing", path))?;
    }
    Ok(())
}

/// A horizontal bar per row, in OWLT, with a line at 1 OWLT (the limit);
/// a failed route is a label instead of a bar.
fn svg(owlt_ms: u64, scale: u32, rows: &[Row]) -> String {
    let (left, bar_h, gap, width) = (250.0, 22.0, 8.0, 520.0);
    let emulated = owlt_ms as f64 / f64::from(scale);
    let multiple = |r: &Row| r.elapsed.map(|d| d.as_secs_f64() * 1000.0 / emulated);
    let max = rows
        .iter()
        .filter_map(multiple)
        .fold(1.0f64, f64::max)
        .ceil();
    let px = width / max;
    let owlt = if scale == 1 {
        format!("{owlt_ms} ms")
    } else {
        format!(
            "{}, emulated {scale}x faster",
            human(Duration::from_millis(owlt_ms))
        )
    };
    let mut out = Svg::new(
        left + width + 90.0,
        90.0 + rows.len() as f64 * (bar_h + gap),
    );
    out.text(
        10.0,
        22.0,
        r#" font-size="15" font-weight="bold""#,
        &format!(
            "Accepted on Earth to spooled on the far side, in one-way light times (OWLT = {owlt})"
        ),
    );
    for (i, r) in rows.iter().enumerate() {
        let y = 45.0 + i as f64 * (bar_h + gap);
        let color = match r.route {
            x if x.starts_with("SMTP") => "#c0392b",
            x if x.starts_with("HTTPS") => "#2980b9",
            x if x.starts_with("HTTP/3") => "#8e44ad",
            _ => "#27ae60",
        };
        out.text(
            left - 8.0,
            y + 15.0,
            r#" text-anchor="end""#,
            &format!("{} #{}", r.route, r.message),
        );
        match multiple(r) {
            Some(v) => {
                out.rect(left, y, v * px, bar_h, &format!(r#" fill="{color}""#));
                out.text(left + v * px + 6.0, y + 15.0, "", &format!("{v:.2}"));
            }
            None => out.text(
                left + 6.0,
                y + 15.0,
                &format!(r#" fill="{color}""#),
                "fails (times out)",
            ),
        }
    }
    let axis_y = 45.0 + rows.len() as f64 * (bar_h + gap) + 4.0;
    out.line((left, 40.0), (left, axis_y), r#" stroke="black""#);
    out.line(
        (left + px, 40.0),
        (left + px, axis_y),
        r#" stroke="black" stroke-dasharray="4 3""#,
    );
    out.text(
        left + px,
        axis_y + 16.0,
        r#" text-anchor="middle""#,
        "1 OWLT (the limit)",
    );
    out.text(
        left + width,
        axis_y + 16.0,
        r#" text-anchor="middle""#,
        &format!("{max:.0} OWLT"),
    );
    out.finish()
}
