//! `link`: run the deep-space link emulator (`deepmail-link`, where its
//! options and startup lines are defined) until SIGINT or SIGTERM — TCP
//! and UDP relays between loopback addresses with a one-way delay, loss, a
//! rate cap and jitter per direction. Prints where it listens on stdout
//! (one JSON line with `--json`), counters as JSON lines on stderr every
//! `--stats-interval`, and a final summary on stderr when stopped.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use deepmail_link::{listening_json, listening_text, positive_number, Link};
use serde_json::json;

#[derive(Args)]
pub(crate) struct LinkArgs {
    #[command(flatten)]
    link: deepmail_link::LinkOptions,
    /// Print the counters as a JSON line on stderr every SECS seconds.
    #[arg(long, value_name = "SECS", value_parser = positive_number)]
    stats_interval: Option<f64>,
    /// Print the startup line (listening addresses, settings) as JSON.
    #[arg(long)]
    json: bool,
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

    let config = args.link.link_config()?;
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
        let (tcp, udp) = (link.tcp_listen_addrs(), link.udp_listen_addrs());
        if args.json {
            println!("{}", listening_json(link.config(), tcp, udp));
        } else {
            print!("{}", listening_text(link.config(), tcp, udp));
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
    use deepmail_link::{LinkConfig, Rate};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        link: LinkArgs,
    }

    fn parse(args: &[&str]) -> Result<LinkConfig, String> {
        let mut argv = vec!["link"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv)
            .map(|cli| cli.link.link.shaping())
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
