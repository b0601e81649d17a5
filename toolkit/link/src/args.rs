//! The emulator's options as people give them (`deepmail link`): relays,
//! per-direction values with an optional `up=` / `down=` prefix, a
//! contact-plan file for the schedule; and what the [`LinkConfig`] they
//! make looks like on a terminal and as JSON. With the `cli` feature the
//! options derive `clap::Args`, so the command's `--help` is defined here.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};
use thiserror::Error;

use crate::config::{
    parse_duration, parse_probability, ConfigError, DirectionConfig, DownMode, LinkConfig,
    ParseError, Rate, RelaySpec, Schedule,
};
use crate::contact_plan::{ContactPlan, PlanError};

/// The link's settings from the command line.
#[derive(Debug, Clone)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
pub struct LinkOptions {
    /// Relay TCP: clients connect to LISTEN, the far side is TARGET (port 0
    /// in LISTEN picks a free port). Repeatable.
    #[cfg_attr(feature = "cli", arg(long = "tcp", value_name = "LISTEN=TARGET"))]
    pub tcp: Vec<RelaySpec>,
    /// Relay UDP: datagrams sent to LISTEN go to TARGET, its replies back to
    /// the sender. Repeatable.
    #[cfg_attr(feature = "cli", arg(long = "udp", value_name = "LISTEN=TARGET"))]
    pub udp: Vec<RelaySpec>,
    /// One-way delay: 1.28s (Moon), 4min..22min (Mars), 250ms. Both
    /// directions, or prefix `up=` (Earth -> far) or `down=`. Repeatable.
    #[cfg_attr(feature = "cli", arg(long, value_name = "[up=|down=]DURATION", value_parser = directed_duration))]
    pub delay: Vec<Directed<Duration>>,
    /// Vary each transmission's delay uniformly within +-DURATION (UDP may
    /// be reordered; TCP never is).
    #[cfg_attr(feature = "cli", arg(long, value_name = "[up=|down=]DURATION", value_parser = directed_duration))]
    pub jitter: Vec<Directed<Duration>>,
    /// Loss probability (0.01 or 1%): UDP datagrams are dropped; a "lost"
    /// TCP segment arrives one round trip late (its retransmission).
    #[cfg_attr(feature = "cli", arg(long, value_name = "[up=|down=]P", value_parser = directed_probability))]
    pub loss: Vec<Directed<f64>>,
    /// Bandwidth cap (1Mbit, 256kbit): bytes are serialised at this rate
    /// and queue while the link is busy. Default: no cap.
    #[cfg_attr(feature = "cli", arg(long, value_name = "[up=|down=]RATE", value_parser = directed_rate))]
    pub rate: Vec<Directed<Rate>>,
    /// Divide every delay (and jitter) by F, e.g. `--delay 22min --scale
    /// 1000` runs Mars in 1.32 s. Rates are not scaled.
    #[cfg_attr(feature = "cli", arg(long, value_name = "F", default_value_t = 1.0, value_parser = positive_number))]
    pub scale: f64,
    /// Seed of the loss and jitter draws (default: from the clock; the
    /// startup line shows it).
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub seed: Option<u64>,
    /// TCP segment size: the unit of serialisation and of loss.
    #[cfg_attr(feature = "cli", arg(long, value_name = "BYTES", default_value_t = crate::DEFAULT_MSS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..)))]
    pub mss: usize,
    /// With --rate, a UDP datagram finding more than BYTES queued for the
    /// transmitter is dropped.
    #[cfg_attr(feature = "cli", arg(long, value_name = "BYTES", default_value_t = crate::DEFAULT_QUEUE_LIMIT))]
    pub queue_limit: usize,
    /// A contact plan in ION's syntax (`a contact +START +END FROM TO
    /// BYTES/S`, `a range ...`): the link is up only in its windows, at
    /// each window's rate; +relative times count from the link's start and
    /// are divided by --scale like delays.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub schedule: Option<PathBuf>,
    /// The plan's nodes for the up direction (Earth -> far), FROM,TO; down
    /// is TO,FROM (or the up windows when the plan has none that way).
    /// Default: the plan's only sender and its only receiver.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FROM,TO", requires = "schedule", value_parser = node_pair))]
    pub schedule_nodes: Option<(u64, u64)>,
    /// While a window is closed: `hold` what is handed over until the next
    /// window (store and forward), or `drop` UDP datagrams (TCP is held).
    #[cfg_attr(feature = "cli", arg(long = "down", value_name = "hold|drop", default_value = "hold", requires = "schedule", value_parser = down_mode))]
    pub down_mode: DownMode,
}

/// Which directions a value applies to.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Which {
    /// Up and down.
    Both,
    /// Earth -> far only (`up=`).
    Up,
    /// Far -> Earth only (`down=`).
    Down,
}

/// A flag value with an optional `up=` / `down=` prefix.
#[derive(Clone, Debug)]
pub struct Directed<T> {
    /// The directions it applies to.
    pub which: Which,
    /// The value.
    pub value: T,
}

/// A command-line value that is none of the link's own kinds
/// ([`ParseError`]): the text as given is in each message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgError {
    /// Not a positive finite number.
    #[error("`{0}` is not a positive number")]
    NotPositive(String),
    /// Not `FROM,TO`.
    #[error("`{0}` is not FROM,TO node numbers, e.g. 1,2")]
    NodePair(String),
    /// One side of `FROM,TO` is not a number.
    #[error("`{0}` is not a node number")]
    Node(String),
    /// Neither `hold` nor `drop`.
    #[error("`{0}` is neither hold nor drop")]
    DownMode(String),
}

/// Options that do not make a link that can run.
#[derive(Debug, Error)]
pub enum LinkOptionsError {
    /// The schedule file could not be read.
    #[error("cannot read the schedule {}", path.display())]
    ReadSchedule {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        error: std::io::Error,
    },
    /// The schedule is not a contact plan.
    #[error("{}", path.display())]
    Plan {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        error: PlanError,
    },
    /// No `--schedule-nodes`, and the plan has more than one pair.
    #[error("{}: the plan has contacts between several nodes ({senders} senders); say which with --schedule-nodes FROM,TO", path.display())]
    SeveralNodes {
        /// The file.
        path: PathBuf,
        /// How many nodes send in it.
        senders: usize,
    },
    /// No usable window up.
    #[error("{}: no contact from node {from} to node {to} with a rate above 0", path.display())]
    NoContact {
        /// The file.
        path: PathBuf,
        /// The up direction's sending node.
        from: u64,
        /// Its receiving node.
        to: u64,
    },
    /// The settings do not make a link.
    #[error(transparent)]
    Config(#[from] ConfigError),
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

/// `[up=|down=]DURATION`.
pub fn directed_duration(text: &str) -> Result<Directed<Duration>, ParseError> {
    directed(text, parse_duration)
}

/// `[up=|down=]P`.
pub fn directed_probability(text: &str) -> Result<Directed<f64>, ParseError> {
    directed(text, parse_probability)
}

/// `[up=|down=]RATE`.
pub fn directed_rate(text: &str) -> Result<Directed<Rate>, ParseError> {
    directed(text, str::parse)
}

/// A positive finite number (`--scale`, and the CLI's `--stats-interval`).
pub fn positive_number(text: &str) -> Result<f64, ArgError> {
    match text.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(ArgError::NotPositive(text.to_string())),
    }
}

/// `FROM,TO` node numbers.
pub fn node_pair(text: &str) -> Result<(u64, u64), ArgError> {
    let (a, b) = text
        .split_once(',')
        .ok_or_else(|| ArgError::NodePair(text.to_string()))?;
    let n = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| ArgError::Node(s.to_string()))
    };
    Ok((n(a)?, n(b)?))
}

/// `hold` or `drop`.
pub fn down_mode(text: &str) -> Result<DownMode, ArgError> {
    match text {
        "hold" => Ok(DownMode::Hold),
        "drop" => Ok(DownMode::Drop),
        _ => Err(ArgError::DownMode(text.to_string())),
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

impl LinkOptions {
    /// The link these options describe, schedule read and all checked
    /// ([`LinkConfig::validate`]). Without `--seed`, the seed comes from
    /// the clock.
    pub fn link_config(&self) -> Result<LinkConfig, LinkOptionsError> {
        let mut config = self.shaping();
        config.schedule = self.load_schedule()?;
        config.validate()?;
        Ok(config)
    }

    /// Relays and shaping, without the schedule and unchecked.
    pub fn shaping(&self) -> LinkConfig {
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
        let mut config = LinkConfig {
            tcp: self.tcp.clone(),
            udp: self.udp.clone(),
            scale: self.scale,
            seed,
            mss: self.mss,
            queue_limit: self.queue_limit,
            ..LinkConfig::default()
        };
        apply(&self.delay, &mut config, |d, v| d.delay = v);
        apply(&self.jitter, &mut config, |d, v| d.jitter = v);
        apply(&self.loss, &mut config, |d, v| d.loss = v);
        apply(&self.rate, &mut config, |d, v| d.rate = Some(v));
        config
    }

    /// The link's schedule from `--schedule FILE`.
    fn load_schedule(&self) -> Result<Option<Schedule>, LinkOptionsError> {
        let Some(path) = &self.schedule else {
            return Ok(None);
        };
        let text =
            std::fs::read_to_string(path).map_err(|error| LinkOptionsError::ReadSchedule {
                path: path.clone(),
                error,
            })?;
        // Relative times count from the link's start (0 here).
        let plan = ContactPlan::parse(&text, 0).map_err(|error| LinkOptionsError::Plan {
            path: path.clone(),
            error,
        })?;
        let (from, to) = match self.schedule_nodes {
            Some(pair) => pair,
            None => {
                let mut pairs: Vec<(u64, u64)> =
                    plan.contacts.iter().map(|c| (c.from, c.to)).collect();
                pairs.sort_unstable();
                pairs.dedup();
                let froms: std::collections::BTreeSet<u64> = pairs.iter().map(|p| p.0).collect();
                match pairs.as_slice() {
                    [one] => *one,
                    [a, b] if a.0 == b.1 && a.1 == b.0 => (a.0.min(a.1), a.0.max(a.1)),
                    _ => {
                        return Err(LinkOptionsError::SeveralNodes {
                            path: path.clone(),
                            senders: froms.len(),
                        })
                    }
                }
            }
        };
        let schedule = Schedule::from_plan(&plan, from, to, self.down_mode);
        if schedule.up.is_empty() {
            return Err(LinkOptionsError::NoContact {
                path: path.clone(),
                from,
                to,
            });
        }
        Ok(Some(schedule))
    }
}

/// One direction's shaping in words: `delay 1.28s, loss 1%, no rate cap`.
pub fn describe(d: &DirectionConfig) -> String {
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

/// The startup line as JSON (`deepmail link --json`): where the link
/// listens (`tcp`, `udp`: the addresses in the order of `config`'s relays)
/// and every setting.
pub fn listening_json(config: &LinkConfig, tcp: &[SocketAddr], udp: &[SocketAddr]) -> Value {
    let pairs = |addrs: &[SocketAddr], specs: &[RelaySpec]| {
        addrs
            .iter()
            .zip(specs)
            .map(|(listen, spec)| json!({"listen": listen, "target": spec.target}))
            .collect::<Vec<_>>()
    };
    json!({
        "event": "listening",
        "tcp": pairs(tcp, &config.tcp),
        "udp": pairs(udp, &config.udp),
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
    })
}

/// The startup lines for a terminal: one per relay, one per direction,
/// the schedule, scale and seed.
pub fn listening_text(config: &LinkConfig, tcp: &[SocketAddr], udp: &[SocketAddr]) -> String {
    let mut out = String::new();
    for (proto, addrs, specs) in [("tcp", tcp, &config.tcp), ("udp", udp, &config.udp)] {
        for (listen, spec) in addrs.iter().zip(specs) {
            out.push_str(&format!("link: {proto} {listen} -> {}\n", spec.target));
        }
    }
    let up = config.up.scaled(config.scale);
    let down = config.down.scaled(config.scale);
    out.push_str(&format!("link: up (Earth -> far): {}\n", describe(&up)));
    out.push_str(&format!("link: down (far -> Earth): {}\n", describe(&down)));
    if let Some(s) = &config.schedule {
        out.push_str(&format!(
            "link: scheduled: {} up and {} down window(s) from the plan, {:?} while closed (times / {})\n",
            s.up.windows().len(),
            s.down.windows().len(),
            s.mode,
            config.scale
        ));
    }
    out.push_str(&format!(
        "link: scale {}, seed {}; SIGINT or SIGTERM stops it and prints the totals (JSON, stderr)\n",
        config.scale, config.seed
    ));
    out
}
