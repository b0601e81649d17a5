//! `link`: run the deep-space link emulator (`deepmail-link`) until SIGINT
//! or SIGTERM — TCP and UDP relays between loopback addresses with a
//! one-way delay, loss, a rate cap and jitter per direction. Prints where it
//! listens on stdout (one JSON line with `--json`), counters as JSON lines
//! on stderr every `--stats-interval`, and a final summary on stderr when
//! stopped.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use deepmail_link::{
    parse_duration, parse_probability, DirectionConfig, DownMode, Link, LinkConfig, ParseError,
    Rate, RelaySpec, Schedule, DEFAULT_MSS, DEFAULT_QUEUE_LIMIT,
};
use serde_json::json;

#[derive(Args)]
pub(crate) struct LinkArgs {
    /// Relay TCP: clients connect to LISTEN, the far side is TARGET (port 0
    /// in LISTEN picks a free port). Repeatable.
    #[arg(long = "tcp", value_name = "LISTEN=TARGET")]
    tcp: Vec<RelaySpec>,
    /// Relay UDP: datagrams sent to LISTEN go to TARGET, its replies back to
    /// the sender. Repeatable.
    #[arg(long = "udp", value_name = "LISTEN=TARGET")]
    udp: Vec<RelaySpec>,
    /// One-way delay: 1.28s (Moon), 4min..22min (Mars), 250ms. Both
    /// directions, or prefix `up=` (Earth -> far) or `down=`. Repeatable.
    #[arg(long, value_name = "[up=|down=]DURATION", value_parser = directed_duration)]
    delay: Vec<Directed<Duration>>,
    /// Vary each transmission's delay uniformly within +-DURATION (UDP may
    /// be reordered; TCP never is).
    #[arg(long, value_name = "[up=|down=]DURATION", value_parser = directed_duration)]
    jitter: Vec<Directed<Duration>>,
    /// Loss probability (0.01 or 1%): UDP datagrams are dropped; a "lost"
    /// TCP segment arrives one round trip late (its retransmission).
    #[arg(long, value_name = "[up=|down=]P", value_parser = directed_probability)]
    loss: Vec<Directed<f64>>,
    /// Bandwidth cap (1Mbit, 256kbit): bytes are serialised at this rate
    /// and queue while the link is busy. Default: no cap.
    #[arg(long, value_name = "[up=|down=]RATE", value_parser = directed_rate)]
    rate: Vec<Directed<Rate>>,
    /// Divide every delay (and jitter) by F, e.g. `--delay 22min --scale
    /// 1000` runs Mars in 1.32 s. Rates are not scaled.
    #[arg(long, value_name = "F", default_value_t = 1.0, value_parser = positive_number)]
    scale: f64,
    /// Seed of the loss and jitter draws (default: from the clock; the
    /// startup line shows it).
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// TCP segment size: the unit of serialisation and of loss.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MSS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    mss: usize,
    /// With --rate, a UDP datagram finding more than BYTES queued for the
    /// transmitter is dropped.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_QUEUE_LIMIT)]
    queue_limit: usize,
    /// A contact plan in ION's syntax (`a contact +START +END FROM TO
    /// BYTES/S`, `a range ...`): the link is up only in its windows, at
    /// each window's rate; +relative times count from the link's start and
    /// are divided by --scale like delays.
    #[arg(long, value_name = "FILE")]
    schedule: Option<std::path::PathBuf>,
    /// The plan's nodes for the up direction (Earth -> far), FROM,TO; down
    /// is TO,FROM (or the up windows when the plan has none that way).
    /// Default: the plan's only sender and its only receiver.
    #[arg(long, value_name = "FROM,TO", requires = "schedule", value_parser = node_pair)]
    schedule_nodes: Option<(u64, u64)>,
    /// While a window is closed: `hold` what is handed over until the next
    /// window (store and forward), or `drop` UDP datagrams (TCP is held).
    #[arg(long = "down", value_name = "hold|drop", default_value = "hold", requires = "schedule", value_parser = down_mode)]
    down_mode: DownMode,
    /// Print the counters as a JSON line on stderr every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = positive_number)]
    stats_interval: Option<f64>,
    /// Print the startup line (listening addresses, settings) as JSON.
    #[arg(long)]
    json: bool,
}

/// Which directions a value applies to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Which {
    Both,
    Up,
    Down,
}

/// A flag value with an optional `up=` / `down=` prefix.
#[derive(Clone, Debug)]
pub(crate) struct Directed<T> {
    which: Which,
    value: T,
}

fn directed<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, ParseError>,
) -> Result<Directed<T>, ParseError> {
    let (which, value) = if let Some(v) = text.strip_prefix("up=") {
        (Which::Up, v)
    } else if let Some(v) = text.strip_prefix("down=") {
        (Which::Down, v)
    } else {
        (Which::Both, text)
    };
    Ok(Directed {
        which,
        value: parse(value)?,
    })
}

fn directed_duration(text: &str) -> Result<Directed<Duration>, ParseError> {
    directed(text, parse_duration)
}

fn directed_probability(text: &str) -> Result<Directed<f64>, ParseError> {
    directed(text, parse_probability)
}

fn directed_rate(text: &str) -> Result<Directed<Rate>, ParseError> {
    directed(text, str::parse)
}

fn positive_number(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("`{text}` is not a positive number")),
    }
}

/// Applies each value, in order, to the directions it names.
fn apply<T: Copy>(
    values: &[Directed<T>],
    config: &mut LinkConfig,
    set: impl Fn(&mut DirectionConfig, T),
) {
    for v in values {
        if v.which != Which::Down {
            set(&mut config.up, v.value);
        }
        if v.which != Which::Up {
            set(&mut config.down, v.value);
        }
    }
}

fn node_pair(text: &str) -> Result<(u64, u64), String> {
    let (a, b) = text
        .split_once(',')
        .ok_or_else(|| format!("`{text}` is not FROM,TO node numbers, e.g. 1,2"))?;
    let n = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("`{s}` is not a node number"))
    };
    Ok((n(a)?, n(b)?))
}

fn down_mode(text: &str) -> Result<DownMode, String> {
    match text {
        "hold" => Ok(DownMode::Hold),
        "drop" => Ok(DownMode::Drop),
        _ => Err(format!("`{text}` is neither hold nor drop")),
    }
}

/// The link's schedule from `--schedule FILE`.
fn schedule(args: &LinkArgs) -> anyhow::Result<Option<Schedule>> {
    let Some(path) = &args.schedule else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the schedule {}", path.display()))?;
    // Relative times count from the link's start (0 here).
    let plan = deepmail_link::contact_plan::ContactPlan::parse(&text, 0)
        .with_context(|| format!("{}", path.display()))?;
    let (from, to) = match args.schedule_nodes {
        Some(pair) => pair,
        None => {
            let mut pairs: Vec<(u64, u64)> = plan.contacts.iter().map(|c| (c.from, c.to)).collect();
            pairs.sort_unstable();
            pairs.dedup();
            let froms: std::collections::BTreeSet<u64> = pairs.iter().map(|p| p.0).collect();
            match pairs.as_slice() {
                [one] => *one,
                [a, b] if a.0 == b.1 && a.1 == b.0 => (a.0.min(a.1), a.0.max(a.1)),
                _ => anyhow::bail!(
                    "{}: the plan has contacts between several nodes ({} senders); say which with --schedule-nodes FROM,TO",
                    path.display(),
                    froms.len()
                ),
            }
        }
    };
    let schedule = Schedule::from_plan(&plan, from, to, args.down_mode);
    if schedule.up.is_empty() {
        anyhow::bail!(
            "{}: no contact from node {from} to node {to} with a rate above 0",
            path.display()
        );
    }
    Ok(Some(schedule))
}

fn link_config(args: &LinkArgs) -> LinkConfig {
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
    });
    let mut config = LinkConfig {
        tcp: args.tcp.clone(),
        udp: args.udp.clone(),
        scale: args.scale,
        seed,
        mss: args.mss,
        queue_limit: args.queue_limit,
        ..LinkConfig::default()
    };
    apply(&args.delay, &mut config, |d, v| d.delay = v);
    apply(&args.jitter, &mut config, |d, v| d.jitter = v);
    apply(&args.loss, &mut config, |d, v| d.loss = v);
    apply(&args.rate, &mut config, |d, v| d.rate = Some(v));
    config
}

fn describe(d: &DirectionConfig) -> String {
    let mut text = format!("delay {:?}", d.delay);
    if !d.jitter.is_zero() {
        text.push_str(&format!(" ±{:?}", d.jitter));
    }
    text.push_str(&format!(", loss {}%", d.loss * 100.0));
    match d.rate {
        Some(rate) => text.push_str(&format!(", rate {rate}")),
        None => text.push_str(", no rate cap"),
    }
    text
}

/// One JSON line on stderr; a closed stderr is not worth a panic.
fn print_stderr(line: &serde_json::Value) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Completes on the first SIGINT or SIGTERM.
async fn stop_signal(
    mut term: tokio::signal::unix::Signal,
    mut int: tokio::signal::unix::Signal,
) -> &'static str {
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

pub(crate) fn run(args: LinkArgs) -> anyhow::Result<ExitCode> {
    use tokio::signal::unix::{signal, SignalKind};

    let mut config = link_config(&args);
    config.schedule = schedule(&args)?;
    config.validate()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        // Listen for the signals before anyone learns the addresses.
        let term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
        let int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
        let link = Link::start(config).await?;
        let started = Instant::now();
        let config = link.config();
        let pairs = |addrs: &[std::net::SocketAddr], specs: &[RelaySpec]| {
            addrs
                .iter()
                .zip(specs)
                .map(|(listen, spec)| json!({"listen": listen, "target": spec.target}))
                .collect::<Vec<_>>()
        };
        if args.json {
            let line = json!({
                "event": "listening",
                "tcp": pairs(link.tcp_listen_addrs(), &config.tcp),
                "udp": pairs(link.udp_listen_addrs(), &config.udp),
                "up": config.up,
                "down": config.down,
                "scale": config.scale,
                "effective": {
                    "up": config.up.scaled(config.scale),
                    "down": config.down.scaled(config.scale),
                },
                "seed": config.seed,
                "mss": config.mss,
                "queue_limit": config.queue_limit,
                "schedule": config.schedule,
            });
            println!("{line}");
        } else {
            for (proto, addrs, specs) in [
                ("tcp", link.tcp_listen_addrs(), &config.tcp),
                ("udp", link.udp_listen_addrs(), &config.udp),
            ] {
                for (listen, spec) in addrs.iter().zip(specs) {
                    println!("link: {proto} {listen} -> {}", spec.target);
                }
            }
            let up = config.up.scaled(config.scale);
            let down = config.down.scaled(config.scale);
            println!("link: up (Earth -> far): {}", describe(&up));
            println!("link: down (far -> Earth): {}", describe(&down));
            if let Some(s) = &config.schedule {
                println!(
                    "link: scheduled: {} up and {} down window(s) from the plan, {:?} while closed (times / {})",
                    s.up.windows().len(),
                    s.down.windows().len(),
                    s.mode,
                    config.scale
                );
            }
            println!(
                "link: scale {}, seed {}; SIGINT or SIGTERM stops it and prints the totals (JSON, stderr)",
                config.scale, config.seed
            );
        }

        let stats_line = |event: &str| {
            json!({
                "event": event,
                "elapsed_s": started.elapsed().as_secs_f64(),
                "relays": link.counters().relays,
            })
        };
        let stop = stop_signal(term, int);
        tokio::pin!(stop);
        let signal = match args.stats_interval {
            Some(secs) => {
                let period = Duration::from_secs_f64(secs);
                let mut ticks =
                    tokio::time::interval_at(tokio::time::Instant::now() + period, period);
                loop {
                    tokio::select! {
                        signal = &mut stop => break signal,
                        _ = ticks.tick() => print_stderr(&stats_line("stats")),
                    }
                }
            }
            None => (&mut stop).await,
        };
        let mut last = stats_line("final");
        last["signal"] = json!(signal);
        print_stderr(&last);
        link.stop();
        Ok(ExitCode::SUCCESS)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        link: LinkArgs,
    }

    fn parse(args: &[&str]) -> Result<LinkConfig, String> {
        let mut argv = vec!["link"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map(|cli| link_config(&cli.link))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn both_or_each_direction() {
        let config = parse(&[
            "--tcp",
            "127.0.0.1:0=127.0.0.1:25",
            "--delay",
            "1.28s",
            "--delay",
            "down=2s",
            "--loss",
            "up=1%",
            "--rate",
            "256kbit",
            "--seed",
            "3",
        ])
        .unwrap();
        assert_eq!(config.up.delay, Duration::from_millis(1280));
        assert_eq!(config.down.delay, Duration::from_secs(2));
        assert_eq!((config.up.loss, config.down.loss), (0.01, 0.0));
        assert_eq!(config.down.rate, Some(Rate::bits_per_second(256_000)));
        assert_eq!(config.seed, 3);
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn errors_name_the_flag_and_the_value() {
        for (flag, value) in [
            ("--delay", "5parsecs"),
            ("--delay", "up=-1s"),
            ("--jitter", "down=lots"),
            ("--loss", "1.5"),
            ("--rate", "up=fast"),
            ("--scale", "0"),
            ("--tcp", "127.0.0.1:25"),
            ("--mss", "0"),
        ] {
            let err = parse(&[flag, value]).unwrap_err();
            assert!(err.contains(flag) && err.contains(value), "{err}");
        }
    }
}
