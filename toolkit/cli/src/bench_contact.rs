//! `bench contact`: the Mars-month benchmark. Two gateways (Earth, SMTP in;
//! Mars, BP in and SMTP out to its MTA) across the link emulator playing a
//! contact plan: windows a sol at the link's rate, the light time each
//! way, and a blackout for solar conjunction. Mail with a realistic mix of
//! sizes and priorities arrives on Earth all the time. The same load runs
//! against the Earth gateway with the plan (`plan`) and without it
//! (`baseline`: retry with backoff and a 5-day age limit, as before
//! contact plans), and the report compares them.
//!
//! Time is scaled: `--scale N` plays a real second in 1/N s (gateway
//! timers in the configuration alike). So that the loopback can keep up,
//! the traffic is scaled too: `--volume-scale V` sends 1/V of the real
//! number of messages (each of real size) over a link of 1/V the real
//! rate, so queues, utilisation and delays keep their real proportions.
//! What is not scaled is the software's reaction: the delay from a
//! window's opening to the first byte is reported in wall-clock ms.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use deepmail_gateway::RunningGateway;
use deepmail_link::contact_plan::{self, ContactPlan};
use deepmail_link::{DownMode, Link, LinkConfig, Schedule};
use deepmail_smtp::{Envelope, Param, Recipient};
use serde_json::json;

use crate::demo::{start_sink, warm_plugins, write_config, Sink};
use crate::Stages;

/// A Mars solar day, seconds.
const SOL: f64 = 88_775.244;

/// Which Earth gateway a run measures.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub(crate) enum RunKind {
    /// The route carries the contact plan.
    Plan,
    /// No plan: retries with backoff (capped at an hour) and a 5-day age limit.
    Baseline,
}

impl RunKind {
    fn name(self) -> &'static str {
        match self {
            RunKind::Plan => "plan",
            RunKind::Baseline => "baseline",
        }
    }
}

#[derive(Args)]
pub(crate) struct ContactBenchArgs {
    /// Sols (Mars days of 88,775 s) during which mail arrives.
    #[arg(long, default_value_t = 30.0)]
    sols: f64,
    /// Play the month N times faster than real time (gateway timers alike).
    #[arg(long, value_name = "N", default_value_t = 14_400.0)]
    scale: f64,
    /// Send 1/V of the real number of messages over a link of 1/V the real
    /// rate (each message keeps its real size).
    #[arg(long, value_name = "V", default_value_t = 1_000.0)]
    volume_scale: f64,
    /// The link's rate in a window, bits per second (real).
    #[arg(long, value_name = "BITS", default_value_t = 2_000_000)]
    rate_bps: u64,
    /// Contact windows per sol, evenly spaced.
    #[arg(long, default_value_t = 2)]
    windows_per_sol: u32,
    /// Length of a window, hours.
    #[arg(long, default_value_t = 8.0)]
    window_hours: f64,
    /// One-way light time, seconds (Mars: 180 to 1,340).
    #[arg(long, value_name = "SECS", default_value_t = 750.0)]
    owlt_secs: f64,
    /// Sol at which the conjunction blackout begins.
    #[arg(long, default_value_t = 10.0)]
    blackout_start: f64,
    /// Length of the blackout, sols (0: none).
    #[arg(long, default_value_t = 14.0)]
    blackout_sols: f64,
    /// Offered load: message bytes as a fraction of what the windows during
    /// the arrival sols carry.
    #[arg(long, default_value_t = 0.3)]
    load: f64,
    /// Sols after the last arrival that the queue may take to drain.
    #[arg(long, default_value_t = 8.0)]
    drain_sols: f64,
    /// Runs, in order: plan, baseline, or both (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "plan,baseline")]
    runs: Vec<RunKind>,
    /// Seed of the message load (arrivals, sizes, priorities, contents).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the results as JSON to FILE (`-` for stdout).
    #[arg(long, value_name = "FILE")]
    json: Option<String>,
    /// Write a chart (SVG) to FILE: queue length and delivered messages
    /// over the month, one line per run, windows and blackout shaded.
    #[arg(long, value_name = "FILE")]
    svg: Option<std::path::PathBuf>,
    /// Write every sample as CSV to FILE: run, real seconds, bytes handed
    /// to the link, bytes delivered across it, messages queued, bytes
    /// waiting, messages delivered.
    #[arg(long, value_name = "FILE")]
    samples: Option<std::path::PathBuf>,
    /// The gateways' logs on stderr at this level (error, warn, info,
    /// debug); none by default.
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<String>,
}

/// Size classes of the load: name, share, smallest and largest body, and
/// whether the body is an attachment of random (incompressible) bytes.
const CLASSES: [(&str, f64, usize, usize, bool); 4] = [
    ("text", 0.70, 1_500, 10_000, false),
    ("photo", 0.20, 50_000, 300_000, true),
    ("document", 0.08, 300_000, 1_000_000, false),
    ("data", 0.02, 2_000_000, 4_000_000, true),
];

/// Priorities (MT-PRIORITY, RFC 6710): name, value, share.
const PRIORITIES: [(&str, i8, f64); 3] =
    [("urgent", 4, 0.10), ("normal", 0, 0.75), ("bulk", -4, 0.15)];

/// SplitMix64: the load's randomness, from `--seed`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn pick<T: Copy>(&mut self, items: &[(T, f64)]) -> T {
        let mut u = self.unit();
        for (item, share) in items {
            if u < *share {
                return *item;
            }
            u -= share;
        }
        items[items.len() - 1].0
    }
}

/// One message of the load.
#[derive(Clone, Debug, PartialEq)]
struct Planned {
    id: usize,
    /// Arrival, real seconds from the start.
    at: f64,
    class: usize,
    priority: usize,
    /// Body size before encoding.
    body: usize,
}

/// The scenario in real time, and its scaled form.
struct Scenario {
    scale: f64,
    volume: f64,
    /// Bytes per second, real.
    rate: u64,
    owlt: f64,
    /// Arrivals end here, real seconds.
    arrivals_end: f64,
    /// Real seconds the run may last.
    end: f64,
    blackout: (f64, f64),
    /// Windows, real seconds from the start: [open, close).
    windows: Vec<(f64, f64)>,
}

impl Scenario {
    fn new(a: &ContactBenchArgs) -> anyhow::Result<Scenario> {
        for (v, what) in [
            (a.sols, "--sols"),
            (a.scale, "--scale"),
            (a.volume_scale, "--volume-scale"),
            (a.window_hours, "--window-hours"),
            (a.load, "--load"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                bail!("{what} must be a positive number, not {v}");
            }
        }
        if a.windows_per_sol == 0 || a.rate_bps < 8 {
            bail!("--windows-per-sol must be at least 1 and --rate-bps at least 8");
        }
        let spacing = SOL / f64::from(a.windows_per_sol);
        if a.window_hours * 3600.0 > spacing {
            bail!(
                "{} windows of {} h do not fit in a sol of {:.1} h",
                a.windows_per_sol,
                a.window_hours,
                SOL / 3600.0
            );
        }
        if a.load > 1.0 {
            bail!(
                "--load {} offers more than the windows carry; at most 1",
                a.load
            );
        }
        let blackout = (
            a.blackout_start * SOL,
            (a.blackout_start + a.blackout_sols.max(0.0)) * SOL,
        );
        let end = (a.sols + a.drain_sols.max(0.0)) * SOL;
        let mut windows = Vec::new();
        let mut k = 0.0;
        while k * SOL < end {
            for i in 0..a.windows_per_sol {
                let open = k * SOL + f64::from(i) * spacing;
                let close = open + a.window_hours * 3600.0;
                if close > blackout.0 && open < blackout.1 {
                    continue;
                }
                windows.push((open, close));
            }
            k += 1.0;
        }
        let s = Scenario {
            scale: a.scale,
            volume: a.volume_scale,
            rate: a.rate_bps / 8,
            owlt: a.owlt_secs.max(0.0),
            arrivals_end: a.sols * SOL,
            end,
            blackout,
            windows,
        };
        if s.emulated_rate() > 50_000_000 {
            bail!(
                "--scale {} / --volume-scale {} makes the emulated link {} MB/s; keep it under 50 (raise --volume-scale)",
                a.scale,
                a.volume_scale,
                s.emulated_rate() / 1_000_000
            );
        }
        if s.wall(s.owlt) < Duration::from_millis(5) {
            bail!(
                "--scale {} leaves a light time under 5 ms; lower it",
                a.scale
            );
        }
        Ok(s)
    }

    /// Real seconds as wall-clock time.
    fn wall(&self, real: f64) -> Duration {
        Duration::from_secs_f64((real / self.scale).max(0.0))
    }

    /// The emulated link's rate, bytes per wall-clock second.
    fn emulated_rate(&self) -> u64 {
        (self.rate as f64 * self.scale / self.volume) as u64
    }

    /// Message bytes the windows carry while mail arrives (scaled by the
    /// volume).
    fn capacity_during_arrivals(&self) -> f64 {
        self.windows
            .iter()
            .map(|(o, c)| (c.min(self.arrivals_end) - o).max(0.0))
            .sum::<f64>()
            * self.rate as f64
            / self.volume
    }

    /// The plan at wall-clock speed (times divided by the scale, the
    /// emulated rate), both directions, relative to the `@` line.
    fn plan_text(&self, at_unix_ms: u64) -> String {
        let mut text = format!(
            "# deepmail bench contact: scaled {}x in time, 1/{} in volume\n@ {}\n",
            self.scale,
            self.volume,
            contact_plan::format_time(at_unix_ms)
        );
        let rate = self.emulated_rate();
        for (o, c) in &self.windows {
            for (from, to) in [(1, 2), (2, 1)] {
                text.push_str(&format!(
                    "a contact +{:.3} +{:.3} {from} {to} {rate}\n",
                    o / self.scale,
                    c / self.scale
                ));
            }
        }
        text.push_str(&format!(
            "a range +0 +{:.3} 1 2 {:.4}\n",
            self.end / self.scale + 3600.0,
            self.owlt / self.scale
        ));
        text
    }

    /// Whether a window is open at real time `t`.
    fn open_at(&self, t: f64) -> bool {
        let i = self.windows.partition_point(|w| w.0 <= t);
        i > 0 && t < self.windows[i - 1].1
    }
}

/// The load: Poisson arrivals over the arrival sols, offering `load` of
/// what the windows carry then.
fn plan_load(s: &Scenario, load: f64, seed: u64) -> Vec<Planned> {
    let mut rng = Rng(seed);
    let classes: Vec<(usize, f64)> = CLASSES.iter().enumerate().map(|(i, c)| (i, c.1)).collect();
    let priorities: Vec<(usize, f64)> = PRIORITIES
        .iter()
        .enumerate()
        .map(|(i, p)| (i, p.2))
        .collect();
    let mean: f64 = CLASSES
        .iter()
        .map(|(_, share, lo, hi, att)| {
            share * (*lo + *hi) as f64 / 2.0 * if *att { 4.0 / 3.0 } else { 1.0 }
        })
        .sum();
    let count = (load * s.capacity_during_arrivals() / mean)
        .round()
        .max(1.0);
    let mean_gap = s.arrivals_end / count;
    let mut out = Vec::new();
    let mut t = 0.0;
    loop {
        t += -mean_gap * (1.0 - rng.unit()).ln();
        if t >= s.arrivals_end {
            break;
        }
        let class = rng.pick(&classes);
        let (_, _, lo, hi, _) = CLASSES[class];
        out.push(Planned {
            id: out.len() + 1,
            at: t,
            class,
            priority: rng.pick(&priorities),
            body: lo + (rng.unit() * (hi - lo) as f64) as usize,
        });
    }
    out
}

/// Words for text bodies: compress like prose does.
const WORDS: [&str; 24] = [
    "habitat",
    "sol",
    "rover",
    "sample",
    "crew",
    "oxygen",
    "greenhouse",
    "the",
    "and",
    "of",
    "to",
    "dust",
    "storm",
    "battery",
    "telemetry",
    "report",
    "water",
    "ice",
    "drill",
    "core",
    "schedule",
    "maintenance",
    "is",
    "nominal",
];

/// The message's content: headers, then a text body or a base64
/// attachment of random bytes, `body` bytes before encoding.
fn content(p: &Planned, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed ^ (p.id as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let (class, _, _, _, attachment) = CLASSES[p.class];
    let mut out = format!(
        "From: crew-ops@earth.example\r\nTo: ada@mars.example\r\nSubject: {class} #{}\r\nMessage-ID: <bench-{}@earth.example>\r\nMIME-Version: 1.0\r\n",
        p.id, p.id
    )
    .into_bytes();
    if attachment {
        out.extend_from_slice(
            b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        );
        let raw: Vec<u8> = (0..p.body.div_ceil(8))
            .flat_map(|_| rng.next().to_le_bytes())
            .take(p.body)
            .collect();
        const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut line = 0;
        for chunk in raw.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |a, b| a << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..4 {
                out.push(if i <= chunk.len() {
                    B64[(n >> (18 - 6 * i) & 63) as usize]
                } else {
                    b'='
                });
            }
            line += 4;
            if line == 76 {
                out.extend_from_slice(b"\r\n");
                line = 0;
            }
        }
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(b"Content-Type: text/plain; charset=utf-8\r\n\r\n");
        let start = out.len();
        let mut line = 0;
        while out.len() - start < p.body {
            let w = WORDS[(rng.next() % WORDS.len() as u64) as usize];
            out.extend_from_slice(w.as_bytes());
            line += w.len() + 1;
            if line > 70 {
                out.extend_from_slice(b"\r\n");
                line = 0;
            } else {
                out.push(b' ');
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The bench id in a message's `Message-ID: <bench-N@...>`.
fn bench_id(content: &[u8]) -> Option<usize> {
    let at = content.windows(16).position(|w| w == b"Message-ID: <ben")?;
    let rest = &content[at + 19..];
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// One sample of the run, every few ms of wall-clock time.
#[derive(Clone, Copy)]
struct Sample {
    /// Real seconds from the start.
    t: f64,
    /// Bytes Earth handed to the link so far (before its rate and delay).
    bytes_in: u64,
    /// Bytes the link delivered to Mars so far.
    bytes_out: u64,
    /// Messages in the Earth gateway's queue.
    queued: u64,
    /// Bytes of them not on their way (waiting for a window or a slot).
    waiting: u64,
    /// Messages delivered to the Mars MTA so far.
    delivered: u64,
}

/// What one run measured.
struct RunResult {
    kind: RunKind,
    sent: usize,
    delivered: usize,
    duplicates: usize,
    expired: usize,
    bounced: usize,
    still_queued: u64,
    lost: usize,
    delay_warnings: usize,
    /// Real seconds from accepted on Earth to delivered on Mars, per id.
    delays: HashMap<usize, f64>,
    /// Message bytes delivered.
    message_bytes: u64,
    link_bytes: u64,
    utilisation: Option<f64>,
    /// Wall-clock ms from each window's opening to Earth's first bytes,
    /// for windows that opened with mail queued.
    first_byte_ms: Vec<f64>,
    peak_queue: u64,
    /// Earth's delivery attempts that failed (to be retried), and BP
    /// batches cut by a window's end or a broken session.
    attempts_failed: u64,
    cut: u64,
    peak_rss_kib: Option<u64>,
    samples: Vec<Sample>,
    wall: Duration,
}

pub(crate) fn run(stages: &Stages, args: ContactBenchArgs) -> anyhow::Result<ExitCode> {
    let scenario = Scenario::new(&args)?;
    if let Some(level) = &args.log_level {
        crate::gateway_cmd::init_logging(crate::gateway_cmd::LogFormat::Text, level)?;
    }
    if args.runs.is_empty() {
        bail!("--runs names no run; give plan, baseline or both");
    }
    let load = plan_load(&scenario, args.load, args.seed);
    let dir = std::env::temp_dir().join(format!("deepmail-bench-contact-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for kind in &args.runs {
        eprintln!(
            "bench contact: {} run, {} messages over {} sols ({:.0} s of wall-clock time)...",
            kind.name(),
            load.len(),
            args.sols,
            scenario.arrivals_end / scenario.scale
        );
        let r = runtime.block_on(measure(
            stages.host.clone(),
            &dir.join(kind.name()),
            &scenario,
            &load,
            *kind,
            args.seed,
        ));
        results.push(r?);
    }
    // The spools stay behind for inspection; the disk note in the README
    // says why they are not deleted between runs.
    eprintln!("bench contact: spools in {}", dir.display());
    report(&args, &scenario, &load, &results)?;
    Ok(ExitCode::SUCCESS)
}

/// The Earth gateway's configuration: with or without the plan, every
/// timer scaled.
fn earth_toml(
    s: &Scenario,
    kind: RunKind,
    earth_mta: std::net::SocketAddr,
    tcpcl: std::net::SocketAddr,
    plan: &str,
) -> String {
    let hours = |h: f64| h / s.scale;
    let mut route = format!(
        "[[route]]\ndomain = \"mars.example\"\ntransport = \"bp\"\ntcpcl = \"{tcpcl}\"\ndestination = \"ipn:2.25\"\nmtu = 65536\ncompress = \"gzip\"\nmax-age-hours = {}\n",
        hours(120.0)
    );
    if kind == RunKind::Plan {
        route.push_str(&format!(
            "max-age-cap-days = {}\nplan-from-node = 1\nplan-to-node = 2\ncontacts = \"\"\"\n{plan}\"\"\"\n",
            60.0 / s.scale
        ));
    }
    format!(
        "name = \"gw.earth.example\"\nspool = \"earth\"\n[smtp]\nlisten = \"127.0.0.1:0\"\nrelay-domains = [\"mars.example\"]\n[relay]\nsmtp = \"{earth_mta}\"\ndomains = [\"earth.example\"]\n[bp]\nnode-id = \"ipn:1.0\"\n[delivery]\nretry-initial-secs = {}\nretry-max-secs = {}\ntimeout-secs = 10\ndelay-warning-hours = {}\nbatch-max-mib = 1\n{route}",
        (60.0 / s.scale).max(0.01),
        3600.0 / s.scale,
        hours(24.0)
    )
}

async fn measure(
    host: deepmail_host::Host,
    dir: &Path,
    s: &Scenario,
    load: &[Planned],
    kind: RunKind,
    seed: u64,
) -> anyhow::Result<RunResult> {
    if dir.exists() {
        // Keep an earlier run's spool (deleting a big one slows the disk).
        let aside = dir.with_extension(format!("old-{}", crate::bench_cmd::unix_ms()));
        std::fs::rename(dir, &aside)?;
    }
    std::fs::create_dir_all(dir)?;
    warm_plugins(&host, &["tcpcl-sender"]).await?;
    // Peak RSS per run (Linux: writing 5 resets VmHWM).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let (mars_mta, mars_mta_addr, stop_mars) = start_sink("mta.mars.example").await?;
    let (earth_mta, earth_mta_addr, stop_earth) = start_sink("mta.earth.example").await?;
    let mars = RunningGateway::start(
        write_config(
            &dir.join("mars.toml"),
            &format!(
                "name = \"gw.mars.example\"\nspool = \"mars\"\n[bp]\nnode-id = \"ipn:2.0\"\nlisten = \"127.0.0.1:0\"\nendpoints = [\"ipn:2.25\"]\n[relay]\nsmtp = \"{mars_mta_addr}\"\ndomains = [\"mars.example\"]\n"
            ),
        )?,
        host.clone(),
    )
    .await?;
    let tcpcl = mars.tcpcl_addr.context("no TCPCL address on Mars")?;

    // The plan starts on a whole second a little ahead: the gateway reads
    // it with that `@` reference, the emulator gets the same windows
    // relative to its own start.
    let start_unix = (crate::bench_cmd::unix_ms() / 1000 + 3) * 1000;
    let plan_text = s.plan_text(start_unix);
    let plan = ContactPlan::parse(&plan_text, 0).context("the generated plan")?;
    let mut schedule = Schedule::from_plan(&plan, 1, 2, DownMode::Hold);
    let link_unix = crate::bench_cmd::unix_ms();
    let shift = |l: &contact_plan::Link| {
        contact_plan::Link::new(
            l.windows()
                .iter()
                .map(|w| {
                    let mut w = *w;
                    w.start_ms -= link_unix;
                    w.end_ms -= link_unix;
                    w
                })
                .collect(),
        )
    };
    schedule.up = shift(&schedule.up);
    schedule.down = shift(&schedule.down);
    let link = Arc::new(
        Link::start(LinkConfig {
            schedule: Some(schedule),
            ..LinkConfig::with_delay(s.wall(s.owlt)).tcp("127.0.0.1:0".parse()?, tcpcl)
        })
        .await
        .context("starting the link emulator")?,
    );
    let link_start = Instant::now();
    let across = link.tcp_listen_addrs()[0];
    let earth = RunningGateway::start(
        write_config(
            &dir.join("earth.toml"),
            &earth_toml(s, kind, earth_mta_addr, across, &plan_text),
        )?,
        host.clone(),
    )
    .await?;
    let smtp = earth.smtp_addr.context("no SMTP address on Earth")?;
    // Real time 0: the plan's reference.
    let t0 = link_start + Duration::from_millis(start_unix.saturating_sub(link_unix));
    tokio::time::sleep_until(t0.into()).await;
    let wall_start = Instant::now();

    // The sampler.
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let sampler = {
        let samples = samples.clone();
        let metrics = earth.metrics.clone();
        let mars_mta = mars_mta.clone();
        let link = link.clone();
        let scale = s.scale;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(5));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop_rx.changed() => break,
                }
                let up = link
                    .counters()
                    .relays
                    .first()
                    .map(|r| r.up)
                    .unwrap_or_default();
                let m = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
                let queued = m(&metrics.queue_messages);
                let waiting = m(&metrics.queue_bytes_waiting);
                let delivered = mars_mta
                    .received
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .len() as u64;
                samples
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(Sample {
                        t: t0.elapsed().as_secs_f64() * scale,
                        bytes_in: up.bytes_in,
                        bytes_out: up.bytes_out,
                        queued,
                        waiting,
                        delivered,
                    });
            }
        })
    };

    // The load, each message at its time.
    let mut accepted: HashMap<usize, Instant> = HashMap::new();
    let mut refused = 0usize;
    let mut sizes: HashMap<usize, u64> = HashMap::new();
    for p in load {
        tokio::time::sleep_until((t0 + s.wall(p.at)).into()).await;
        let body = content(p, seed);
        let envelope = Envelope {
            reverse_path: "crew-ops@earth.example".into(),
            mail_params: vec![Param {
                keyword: "MT-PRIORITY".into(),
                value: Some(PRIORITIES[p.priority].1.to_string()),
            }],
            recipients: vec![Recipient {
                mailbox: "ada@mars.example".into(),
                params: vec![],
            }],
        };
        let config = deepmail_smtp::client::RelayConfig::new("mta.earth.example");
        let d = deepmail_smtp::client::relay(smtp, &config, &envelope, &body).await;
        match d {
            Ok(d) if d.all_accepted() => {
                accepted.insert(p.id, Instant::now());
                sizes.insert(p.id, body.len() as u64);
            }
            Ok(d) => {
                refused += 1;
                eprintln!(
                    "bench contact: message {} refused: {:?}",
                    p.id, d.data_reply
                );
            }
            Err(e) => {
                refused += 1;
                eprintln!("bench contact: message {} not sent: {e}", p.id);
            }
        }
    }

    // Until every message is delivered or returned, or the drain is over.
    let deadline = t0 + s.wall(s.end);
    let settled = |mars_mta: &Sink, earth_mta: &Sink| {
        let delivered: HashSet<usize> = mars_mta
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(_, c, _)| bench_id(c))
            .collect();
        let (expired, bounced) = returns(earth_mta);
        let returned = expired
            .union(&bounced)
            .filter(|id| !delivered.contains(id))
            .count();
        delivered.len() + returned >= accepted.len()
    };
    while Instant::now() < deadline && !settled(&mars_mta, &earth_mta) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A last look a light time later (acknowledgements on their way).
    tokio::time::sleep(s.wall(s.owlt) * 2 + Duration::from_millis(200)).await;
    let wall = wall_start.elapsed();
    let _ = stop_tx.send(true);
    let _ = sampler.await;
    let peak_rss_kib = crate::bench_cmd::status_kib("VmHWM:");
    let m = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    let still_queued = m(&earth.metrics.queue_messages);
    let delay_warnings = m(&earth.metrics.delay_warnings) as usize;
    let attempts_failed = m(&earth.metrics.batch_attempts_failed);
    let cut = m(&earth.metrics.bp_batches_cut);
    earth.shutdown(Duration::from_secs(5)).await;
    mars.shutdown(Duration::from_secs(5)).await;
    let link_bytes = link.counters().relays.first().map_or(0, |r| r.up.bytes_out);
    link.stop();
    let _ = stop_mars.send(true);
    let _ = stop_earth.send(true);

    let mut delays = HashMap::new();
    let mut duplicates = 0;
    let mut message_bytes = 0;
    for (_, c, at) in mars_mta
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        let Some(id) = bench_id(c) else { continue };
        let Some(sent) = accepted.get(&id) else {
            continue;
        };
        if delays.contains_key(&id) {
            duplicates += 1;
            continue;
        }
        message_bytes += sizes.get(&id).copied().unwrap_or(0);
        delays.insert(
            id,
            at.saturating_duration_since(*sent).as_secs_f64() * s.scale,
        );
    }
    let (expired, bounced) = returns(&earth_mta);
    let expired: HashSet<usize> = expired
        .difference(&delays.keys().copied().collect())
        .copied()
        .collect();
    let bounced: HashSet<usize> = bounced
        .difference(&delays.keys().copied().collect())
        .copied()
        .collect();
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    let accounted = delays.len() + expired.len() + bounced.len();
    let lost = accepted
        .len()
        .saturating_sub(accounted + still_queued as usize);
    Ok(RunResult {
        kind,
        sent: accepted.len(),
        delivered: delays.len(),
        duplicates,
        expired: expired.len(),
        bounced: bounced.len() + refused,
        still_queued,
        lost,
        delay_warnings,
        delays,
        message_bytes,
        link_bytes,
        utilisation: utilisation(s, &samples),
        first_byte_ms: first_bytes(s, &samples),
        peak_queue: samples.iter().map(|x| x.queued).max().unwrap_or(0),
        attempts_failed,
        cut,
        peak_rss_kib,
        samples,
        wall,
    })
}

/// The ids of the messages returned to Earth: (expired, `4.4.7`; bounced,
/// any other failure), from the DSNs the Earth MTA received.
fn returns(earth_mta: &Sink) -> (HashSet<usize>, HashSet<usize>) {
    let mut expired = HashSet::new();
    let mut bounced = HashSet::new();
    for (_, c, _) in earth_mta
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
    {
        let text = String::from_utf8_lossy(c);
        if !text.contains("Action: failed") {
            continue;
        }
        let Some(id) = bench_id(c) else { continue };
        if text.contains("Status: 4.4.7") {
            expired.insert(id);
        } else {
            bounced.insert(id);
        }
    }
    (expired, bounced)
}

/// Bytes delivered to Mars at real time `t` (interpolated).
fn out_at(samples: &[Sample], t: f64) -> f64 {
    let i = samples.partition_point(|x| x.t <= t);
    match (i.checked_sub(1).map(|j| samples[j]), samples.get(i)) {
        (Some(a), Some(b)) if b.t > a.t => {
            a.bytes_out as f64 + (b.bytes_out - a.bytes_out) as f64 * (t - a.t) / (b.t - a.t)
        }
        (Some(a), _) => a.bytes_out as f64,
        (None, _) => 0.0,
    }
}

/// Link bytes carried while there was mail to carry and a window open,
/// over what the windows could carry then. There is mail to carry while
/// the Earth gateway holds bytes not yet on their way, or the link holds
/// bytes handed to it and not yet transmitted. A byte transmitted at `t`
/// reaches Mars a light time later, so deliveries are read one light time
/// on.
fn utilisation(s: &Scenario, samples: &[Sample]) -> Option<f64> {
    let rate = s.rate as f64 / s.volume;
    let (mut carried, mut capacity) = (0.0, 0.0);
    for w in samples.windows(2) {
        let (a, b) = (w[0], w[1]);
        let backlog = a.bytes_in as f64 - out_at(samples, a.t + s.owlt);
        if (a.waiting == 0 && backlog < 1500.0) || !s.open_at(a.t) || !s.open_at(b.t) {
            continue;
        }
        capacity += rate * (b.t - a.t);
        carried += out_at(samples, b.t + s.owlt) - out_at(samples, a.t + s.owlt);
    }
    (capacity > 0.0).then(|| carried / capacity)
}

/// For each window that opened with mail waiting, wall-clock ms from the
/// opening to the first kilobyte Earth handed to the link.
fn first_bytes(s: &Scenario, samples: &[Sample]) -> Vec<f64> {
    let mut out = Vec::new();
    for (open, close) in &s.windows {
        let i = samples.partition_point(|x| x.t < *open);
        let Some(first) = samples.get(i) else { break };
        if first.waiting == 0 {
            continue;
        }
        let base = i
            .checked_sub(1)
            .map_or(first.bytes_in, |j| samples[j].bytes_in);
        if let Some(x) = samples[i..]
            .iter()
            .take_while(|x| x.t < *close)
            .find(|x| x.bytes_in >= base + 1024)
        {
            out.push((x.t - open).max(0.0) / s.scale * 1000.0);
        }
    }
    out
}

/// The nearest-rank percentile `p` (0..=100) of `sorted`.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    Some(sorted[rank.min(sorted.len()) - 1])
}

/// A row of the table: how to print one run's value.
type Cell = Box<dyn Fn(&RunResult) -> String>;

/// Hours, one decimal.
fn hours(secs: Option<f64>) -> String {
    secs.map_or("-".into(), |s| format!("{:.1} h", s / 3600.0))
}

fn report(
    args: &ContactBenchArgs,
    s: &Scenario,
    load: &[Planned],
    results: &[RunResult],
) -> anyhow::Result<()> {
    let by_id: HashMap<usize, &Planned> = load.iter().map(|p| (p.id, p)).collect();
    let groups = |r: &RunResult| {
        let mut g: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for (id, d) in &r.delays {
            let p = by_id[id];
            g.entry(format!("priority {}", PRIORITIES[p.priority].0))
                .or_default()
                .push(*d);
            g.entry(format!("size {}", CLASSES[p.class].0))
                .or_default()
                .push(*d);
            g.entry("all".into()).or_default().push(*d);
            if p.at < s.blackout.0 || p.at >= s.blackout.1 {
                g.entry("arrived outside the blackout".into())
                    .or_default()
                    .push(*d);
            }
        }
        for v in g.values_mut() {
            v.sort_by(f64::total_cmp);
        }
        g
    };
    let run_json = |r: &RunResult| {
        let mut fb = r.first_byte_ms.clone();
        fb.sort_by(f64::total_cmp);
        json!({
            "run": r.kind.name(),
            "sent": r.sent,
            "delivered": r.delivered,
            "lost": r.lost,
            "expired": r.expired,
            "bounced": r.bounced,
            "still_queued": r.still_queued,
            "duplicates": r.duplicates,
            "delay_warnings": r.delay_warnings,
            "window_utilisation_while_queued": r.utilisation,
            "open_to_first_byte_ms": { "median": percentile(&fb, 50.0), "max": fb.last(), "windows": fb.len() },
            "delivery_hours": groups(r).iter().map(|(k, v)| (k.clone(), json!({
                "count": v.len(),
                "p50": percentile(v, 50.0).map(|x| x / 3600.0),
                "p90": percentile(v, 90.0).map(|x| x / 3600.0),
                "p99": percentile(v, 99.0).map(|x| x / 3600.0),
                "max": v.last().map(|x| x / 3600.0),
            }))).collect::<serde_json::Map<_, _>>(),
            "peak_queue": r.peak_queue,
            "attempts_failed": r.attempts_failed,
            "bp_batches_cut": r.cut,
            "link_bytes_per_message_byte": (r.message_bytes > 0).then(|| r.link_bytes as f64 / r.message_bytes as f64),
            "link_bytes": r.link_bytes,
            "message_bytes_delivered": r.message_bytes,
            "peak_rss_kib": r.peak_rss_kib,
            "wall_secs": r.wall.as_secs_f64(),
        })
    };
    let doc = json!({
        "scenario": {
            "sols": args.sols,
            "windows_per_sol": args.windows_per_sol,
            "window_hours": args.window_hours,
            "rate_bps": args.rate_bps,
            "owlt_secs": s.owlt,
            "blackout_sols": [args.blackout_start, args.blackout_start + args.blackout_sols],
            "load": args.load,
            "scale": s.scale,
            "volume_scale": s.volume,
            "emulated_rate_bytes_per_sec": s.emulated_rate(),
            "messages": load.len(),
            "seed": args.seed,
        },
        "runs": results.iter().map(run_json).collect::<Vec<_>>(),
    });
    match args.json.as_deref() {
        Some("-") => println!("{}", serde_json::to_string_pretty(&doc)?),
        Some(path) => std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")
            .with_context(|| format!("writing {path}"))?,
        None => {}
    }
    if args.json.as_deref() != Some("-") {
        println!(
            "{} sols of mail to Mars: {} windows of {} h a sol at {} kbit/s, light time {:.1} min, blackout sols {}-{}; {} messages ({} of the real traffic), time {}x faster",
            args.sols,
            args.windows_per_sol,
            args.window_hours,
            args.rate_bps / 1000,
            s.owlt / 60.0,
            args.blackout_start,
            args.blackout_start + args.blackout_sols,
            load.len(),
            format_args!("1/{}", s.volume),
            s.scale
        );
        let cell = |r: &RunResult, f: &dyn Fn(&RunResult) -> String| f(r);
        let rows: Vec<(&str, Cell)> = vec![
            (
                "delivered",
                Box::new(|r| format!("{} of {}", r.delivered, r.sent)),
            ),
            ("lost", Box::new(|r| r.lost.to_string())),
            (
                "expired (returned, 4.4.7)",
                Box::new(|r| r.expired.to_string()),
            ),
            ("bounced", Box::new(|r| r.bounced.to_string())),
            (
                "still queued at the end",
                Box::new(|r| r.still_queued.to_string()),
            ),
            ("delivered twice", Box::new(|r| r.duplicates.to_string())),
            ("delay warnings", Box::new(|r| r.delay_warnings.to_string())),
            (
                "window utilisation while mail is queued",
                Box::new(|r| {
                    r.utilisation
                        .map_or("-".into(), |u| format!("{:.1} %", u * 100.0))
                }),
            ),
            (
                "window open to first byte (median / max, wall ms)",
                Box::new(|r| {
                    let mut v = r.first_byte_ms.clone();
                    v.sort_by(f64::total_cmp);
                    match (percentile(&v, 50.0), v.last()) {
                        (Some(m), Some(x)) => format!("{m:.0} / {x:.0} ms ({} windows)", v.len()),
                        _ => "-".into(),
                    }
                }),
            ),
            (
                "peak queue (messages)",
                Box::new(|r| r.peak_queue.to_string()),
            ),
            (
                "attempts failed / BP batches cut",
                Box::new(|r| format!("{} / {}", r.attempts_failed, r.cut)),
            ),
            (
                "link bytes per message byte",
                Box::new(|r| {
                    if r.message_bytes == 0 {
                        "-".into()
                    } else {
                        format!("{:.3}", r.link_bytes as f64 / r.message_bytes as f64)
                    }
                }),
            ),
            (
                "peak RSS (bench process: both gateways, link)",
                Box::new(|r| {
                    r.peak_rss_kib
                        .map_or("-".into(), |k| format!("{} MiB", k / 1024))
                }),
            ),
        ];
        print!("  {:<52}", "");
        for r in results {
            print!(" {:>26}", r.kind.name());
        }
        println!();
        for (label, f) in &rows {
            print!("  {label:<52}");
            for r in results {
                print!(" {:>26}", cell(r, f.as_ref()));
            }
            println!();
        }
        println!("  delivery time, real (p50 / p90 / max):");
        let all: Vec<BTreeMap<String, Vec<f64>>> = results.iter().map(groups).collect();
        let mut keys: Vec<String> = all.iter().flat_map(|g| g.keys().cloned()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            print!("    {k:<50}");
            for g in &all {
                let v = g.get(&k).map(Vec::as_slice).unwrap_or(&[]);
                print!(
                    " {:>26}",
                    format!(
                        "{} / {} / {}",
                        hours(percentile(v, 50.0)),
                        hours(percentile(v, 90.0)),
                        hours(v.last().copied())
                    )
                );
            }
            println!();
        }
    }
    if let Some(path) = &args.svg {
        std::fs::write(path, svg(s, results))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.samples {
        let mut csv =
            String::from("run,real_secs,bytes_in,bytes_out,queued,waiting_bytes,delivered\n");
        for r in results {
            for x in &r.samples {
                csv.push_str(&format!(
                    "{},{:.1},{},{},{},{},{}\n",
                    r.kind.name(),
                    x.t,
                    x.bytes_in,
                    x.bytes_out,
                    x.queued,
                    x.waiting,
                    x.delivered
                ));
            }
        }
        std::fs::write(path, csv).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Queue length and delivered messages over the month, a line per run;
/// windows shaded, the blackout marked.
fn svg(s: &Scenario, results: &[RunResult]) -> String {
    let (left, top, width, height) = (70.0, 50.0, 760.0, 170.0);
    let gap = 60.0;
    let days = s.end / 86_400.0;
    let x = |t: f64| left + t / 86_400.0 / days * width;
    let colors = ["#27ae60", "#c0392b", "#2980b9", "#8e44ad"];
    let max_q = results
        .iter()
        .flat_map(|r| r.samples.iter().map(|x| x.queued))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let max_d = results
        .iter()
        .flat_map(|r| r.samples.iter().map(|x| x.delivered))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let total_h = top + 2.0 * height + gap + 60.0;
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{total_h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"10\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Mail to Mars over {:.0} days: Earth queue and messages delivered (shaded: contact windows; grey: conjunction)</text>\n",
        left + width + 160.0,
        days
    );
    for (y0, label, max) in [
        (top, "queued on Earth", max_q),
        (top + height + gap, "delivered on Mars", max_d),
    ] {
        out.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{y0}\" width=\"{:.1}\" height=\"{height}\" fill=\"#eeeeee\"/>\n",
            x(s.blackout.0.min(s.end)),
            (x(s.blackout.1.min(s.end)) - x(s.blackout.0.min(s.end))).max(0.0)
        ));
        for (o, c) in &s.windows {
            out.push_str(&format!(
                "<rect x=\"{:.2}\" y=\"{y0}\" width=\"{:.2}\" height=\"{height}\" fill=\"#fdebd0\"/>\n",
                x(*o),
                (x(*c) - x(*o)).max(0.3)
            ));
        }
        out.push_str(&format!(
            "<line x1=\"{left}\" y1=\"{y0}\" x2=\"{left}\" y2=\"{yb}\" stroke=\"black\"/>\n<line x1=\"{left}\" y1=\"{yb}\" x2=\"{xr}\" y2=\"{yb}\" stroke=\"black\"/>\n<text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{max:.0}</text>\n<text x=\"{tx}\" y=\"{yb}\" text-anchor=\"end\">0</text>\n<text x=\"{left}\" y=\"{lt}\">{label} (messages)</text>\n",
            yb = y0 + height,
            xr = left + width,
            tx = left - 6.0,
            ty = y0 + 10.0,
            lt = y0 - 6.0
        ));
        for d in (0..=days as u64).step_by(5) {
            out.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">day {d}</text>\n",
                x(d as f64 * 86_400.0),
                y0 + height + 15.0
            ));
        }
        for (i, r) in results.iter().enumerate() {
            let step = (r.samples.len() / 1500).max(1);
            let points: Vec<String> = r
                .samples
                .iter()
                .step_by(step)
                .map(|p| {
                    let v = if label.starts_with("queued") {
                        p.queued
                    } else {
                        p.delivered
                    } as f64;
                    format!("{:.1},{:.1}", x(p.t), y0 + height - v / max * height)
                })
                .collect();
            out.push_str(&format!(
                "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\" points=\"{}\"/>\n",
                colors[i % colors.len()],
                points.join(" ")
            ));
        }
    }
    for (i, r) in results.iter().enumerate() {
        out.push_str(&format!(
            "<rect x=\"{:.0}\" y=\"{:.0}\" width=\"14\" height=\"4\" fill=\"{}\"/><text x=\"{:.0}\" y=\"{:.0}\">{}</text>\n",
            left + width + 15.0,
            top + 20.0 + i as f64 * 18.0,
            colors[i % colors.len()],
            left + width + 35.0,
            top + 25.0 + i as f64 * 18.0,
            if r.kind == RunKind::Plan { "with the contact plan" } else { "baseline (no plan)" }
        ));
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ContactBenchArgs {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            a: ContactBenchArgs,
        }
        let mut argv = vec!["bench"];
        argv.extend_from_slice(extra);
        Cli::parse_from(argv).a
    }

    #[test]
    fn the_default_month_has_two_windows_a_sol_and_a_blackout() {
        let s = Scenario::new(&args(&[])).unwrap();
        // 38 sols in all (30 + 8 to drain), 14 of them dark.
        assert_eq!(s.windows.len(), 2 * (38 - 14));
        assert!(s
            .windows
            .iter()
            .all(|(o, c)| (c - o - 8.0 * 3600.0).abs() < 1e-6));
        assert!(!s
            .windows
            .iter()
            .any(|(o, c)| *c > s.blackout.0 && *o < s.blackout.1));
        assert!(s.open_at(1.0) && !s.open_at(9.0 * 3600.0) && !s.open_at(12.0 * SOL));
        assert_eq!(s.emulated_rate(), 250_000 * 14_400 / 1_000);
    }

    #[test]
    fn the_plan_text_reads_back_with_the_scaled_windows() {
        let s = Scenario::new(&args(&[])).unwrap();
        let at = 1_800_000_000_000;
        let plan = ContactPlan::parse(&s.plan_text(at), 0).unwrap();
        let up = plan.link(1, 2);
        assert_eq!(up.windows().len(), s.windows.len());
        let w = up.windows()[1];
        assert_eq!(
            w.start_ms,
            at + (s.windows[1].0 / s.scale * 1000.0).round() as u64
        );
        assert_eq!(w.rate, s.emulated_rate());
        assert_eq!(plan.owlt_ms(1, 2, at + 1), Some(52));
        assert_eq!(plan.link(2, 1).windows().len(), s.windows.len());
    }

    #[test]
    fn the_load_offers_what_was_asked() {
        let s = Scenario::new(&args(&[])).unwrap();
        let load = plan_load(&s, 0.3, 1);
        let offered: f64 = load
            .iter()
            .map(|p| p.body as f64 * if CLASSES[p.class].4 { 4.0 / 3.0 } else { 1.0 })
            .sum();
        let ratio = offered / s.capacity_during_arrivals();
        assert!((0.2..0.4).contains(&ratio), "{ratio}");
        assert!(load.windows(2).all(|w| w[0].at < w[1].at));
        assert_eq!(load, plan_load(&s, 0.3, 1), "the seed decides");
        let p = &load[0];
        let c = content(p, 1);
        assert_eq!(bench_id(&c), Some(p.id));
        assert!(c.len() >= p.body);
    }

    #[test]
    fn nonsense_is_refused_with_the_flag_named() {
        for (flags, what) in [
            (vec!["--scale", "0"], "--scale"),
            (vec!["--window-hours", "20"], "do not fit"),
            (vec!["--load", "2"], "at most 1"),
            (vec!["--volume-scale", "1"], "raise --volume-scale"),
        ] {
            let e = Scenario::new(&args(&flags)).err().unwrap().to_string();
            assert!(e.contains(what), "{flags:?}: {e}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        assert_eq!(percentile(&[], 50.0), None);
    }
}
