//! What a link looks like: the relays it carries ([`RelaySpec`]), the
//! shaping of each direction ([`DirectionConfig`]), and the parsers for
//! the values people type (`1.28s`, `4min`, `256kbit`, `1%`,
//! `127.0.0.1:0=127.0.0.1:25`).

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use thiserror::Error;

/// A value that could not be parsed: what it should have been, the text,
/// and what would have been accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{value}` is not {what}: {expected}")]
pub struct ParseError {
    /// The kind of value ("a duration", "a rate", ...).
    pub what: &'static str,
    /// The text as given.
    pub value: String,
    /// What is accepted, with examples.
    pub expected: &'static str,
}

impl ParseError {
    fn new(what: &'static str, value: &str, expected: &'static str) -> ParseError {
        ParseError {
            what,
            value: value.to_string(),
            expected,
        }
    }
}

/// A configuration the link cannot run with.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// Neither a TCP nor a UDP relay was given.
    #[error("the link relays nothing: give at least one TCP or UDP LISTEN=TARGET pair")]
    NoRelays,
    /// `scale` is not a positive finite number.
    #[error("scale {0} is not a positive number")]
    Scale(f64),
    /// A loss probability outside 0..=1.
    #[error("{direction} loss {value} is not a probability between 0 and 1")]
    Loss {
        /// `up` or `down`.
        direction: &'static str,
        /// The value given.
        value: f64,
    },
    /// `mss` is zero.
    #[error("the TCP segment size (mss) must be at least 1 byte")]
    ZeroMss,
}

/// One relay: clients connect to (or send to) `listen`; the link carries
/// their traffic to `target`. Port 0 in `listen` picks a free port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RelaySpec {
    /// Where the Earth side connects or sends.
    pub listen: SocketAddr,
    /// Where the far side is.
    pub target: SocketAddr,
}

impl FromStr for RelaySpec {
    type Err = ParseError;

    /// Parses `LISTEN=TARGET`, e.g. `127.0.0.1:0=127.0.0.1:2525`
    /// (`[::1]:0=[::1]:2525` for IPv6).
    fn from_str(s: &str) -> Result<RelaySpec, ParseError> {
        const EXPECTED: &str = "expected LISTEN=TARGET socket addresses, e.g. \
                                127.0.0.1:0=127.0.0.1:2525 (port 0 picks a free port)";
        let err = || ParseError::new("a LISTEN=TARGET pair", s, EXPECTED);
        let (listen, target) = s.split_once('=').ok_or_else(err)?;
        Ok(RelaySpec {
            listen: listen.trim().parse().map_err(|_| err())?,
            target: target.trim().parse().map_err(|_| err())?,
        })
    }
}

/// A bandwidth cap in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate {
    bits_per_second: u64,
}

impl Rate {
    /// A cap of `bits_per_second` (at least 1).
    pub const fn bits_per_second(bits_per_second: u64) -> Rate {
        Rate {
            bits_per_second: if bits_per_second == 0 {
                1
            } else {
                bits_per_second
            },
        }
    }

    /// The cap in bits per second.
    pub const fn as_bits_per_second(self) -> u64 {
        self.bits_per_second
    }

    /// How long `bytes` take to serialise at this rate.
    pub fn serialisation_time(self, bytes: usize) -> Duration {
        let nanos = (bytes as u128) * 8 * 1_000_000_000 / u128::from(self.bits_per_second);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.bits_per_second;
        for (unit, scale) in [
            ("Gbit", 1_000_000_000),
            ("Mbit", 1_000_000),
            ("kbit", 1_000),
        ] {
            if b >= scale && b.is_multiple_of(scale) {
                return write!(f, "{}{unit}", b / scale);
            }
        }
        write!(f, "{b}bit")
    }
}

impl Serialize for Rate {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.bits_per_second)
    }
}

impl FromStr for Rate {
    type Err = ParseError;

    /// Parses `1Mbit`, `256kbit`, `9600bit`, `2.5Gbit` (SI prefixes,
    /// case-insensitive, an optional `/s`).
    fn from_str(s: &str) -> Result<Rate, ParseError> {
        const EXPECTED: &str = "expected a positive number and a unit of bit, kbit, Mbit \
                                or Gbit (per second), e.g. 1Mbit or 256kbit";
        let err = || ParseError::new("a rate", s, EXPECTED);
        let text = s.trim();
        let text = text.strip_suffix("/s").unwrap_or(text);
        let (number, unit) = split_number(text);
        let multiplier: f64 = match unit.to_ascii_lowercase().as_str() {
            "bit" => 1.0,
            "kbit" => 1e3,
            "mbit" => 1e6,
            "gbit" => 1e9,
            _ => return Err(err()),
        };
        let value: f64 = number.parse().map_err(|_| err())?;
        let bits = value * multiplier;
        if !(bits.is_finite() && bits >= 1.0 && bits <= u64::MAX as f64) {
            return Err(err());
        }
        Ok(Rate::bits_per_second(bits.round() as u64))
    }
}

/// Splits `1.28s` into `("1.28", "s")`.
fn split_number(text: &str) -> (&str, &str) {
    let at = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    (&text[..at], text[at..].trim_start())
}

/// Parses a duration: a non-negative number and a unit of `us`, `ms`, `s`,
/// `min` or `h` (`1.28s`, `250ms`, `4min`); a bare `0` is zero.
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    const EXPECTED: &str = "expected a number and a unit of us, ms, s, min or h, \
                            e.g. 1.28s, 250ms or 4min";
    let err = || ParseError::new("a duration", s, EXPECTED);
    let text = s.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let (number, unit) = split_number(text);
    let seconds_per_unit = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" | "sec" => 1.0,
        "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(err()),
    };
    let value: f64 = number.parse().map_err(|_| err())?;
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| err())
}

/// Parses a probability: `0.01`, `1%`, `0`, `1`.
pub fn parse_probability(s: &str) -> Result<f64, ParseError> {
    const EXPECTED: &str = "expected a probability between 0 and 1, e.g. 0.01 or 1%";
    let err = || ParseError::new("a probability", s, EXPECTED);
    let text = s.trim();
    let (text, divisor) = match text.strip_suffix('%') {
        Some(t) => (t.trim_end(), 100.0),
        None => (text, 1.0),
    };
    let value: f64 = text.parse().map_err(|_| err())?;
    let p = value / divisor;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(err())
    }
}

/// Shaping of one direction of the link (the model is in the crate
/// documentation).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct DirectionConfig {
    /// One-way delay (before `scale`). JSON: `delay_s`, seconds.
    #[serde(rename = "delay_s", serialize_with = "as_seconds")]
    pub delay: Duration,
    /// Each transmission's delay is varied uniformly within ±`jitter`
    /// (before `scale`); UDP datagrams may then be reordered, TCP
    /// segments never are. JSON: `jitter_s`, seconds.
    #[serde(rename = "jitter_s", serialize_with = "as_seconds")]
    pub jitter: Duration,
    /// Probability that a transmission is lost: a UDP datagram is dropped,
    /// a TCP segment is delivered one round trip late (a retransmission).
    pub loss: f64,
    /// Bandwidth cap; `None` serialises instantly. JSON: `rate_bps`,
    /// bits per second or null.
    #[serde(rename = "rate_bps")]
    pub rate: Option<Rate>,
}

impl DirectionConfig {
    /// A direction with only a delay.
    pub const fn delay(delay: Duration) -> DirectionConfig {
        DirectionConfig {
            delay,
            jitter: Duration::ZERO,
            loss: 0.0,
            rate: None,
        }
    }

    /// The delay and jitter divided by `scale` (what the link runs with).
    pub fn scaled(&self, scale: f64) -> DirectionConfig {
        DirectionConfig {
            delay: self.delay.div_f64(scale),
            jitter: self.jitter.div_f64(scale),
            ..*self
        }
    }

    fn validate(&self, direction: &'static str) -> Result<(), ConfigError> {
        if !(0.0..=1.0).contains(&self.loss) {
            return Err(ConfigError::Loss {
                direction,
                value: self.loss,
            });
        }
        Ok(())
    }
}

fn as_seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The TCP segment size: a stream is cut into segments of at most this
/// many bytes, each serialised, delayed and possibly "lost" on its own.
pub const DEFAULT_MSS: usize = 1460;

/// The UDP transmit queue: with a rate cap, a datagram that would make
/// more than this many bytes wait for the transmitter is dropped (tail drop).
pub const DEFAULT_QUEUE_LIMIT: usize = 1 << 20;

/// Everything [`Link::start`](crate::Link::start) needs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LinkConfig {
    /// TCP relays.
    pub tcp: Vec<RelaySpec>,
    /// UDP relays.
    pub udp: Vec<RelaySpec>,
    /// Earth → far: from the clients at `listen` towards `target`.
    pub up: DirectionConfig,
    /// Far → Earth: replies from `target` back to the clients.
    pub down: DirectionConfig,
    /// All delays (and jitter) are divided by this: `22min` at scale 1000
    /// runs as 1.32 s. Rates are not scaled.
    pub scale: f64,
    /// Seed of the loss and jitter draws (one stream per direction).
    pub seed: u64,
    /// TCP segment size, see [`DEFAULT_MSS`].
    pub mss: usize,
    /// UDP queue limit in bytes, see [`DEFAULT_QUEUE_LIMIT`].
    pub queue_limit: usize,
    /// When the link is up (a contact plan); `None`: always. JSON: the
    /// windows per direction, in ms from the link's start (before `scale`).
    pub schedule: Option<Schedule>,
}

/// What a closed window does to traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum DownMode {
    /// Store and forward: what is handed over while the link is down (or
    /// does not fit the rest of a window) waits for the next window, as
    /// tiptop's IP forwarders hold packets.
    #[default]
    Hold,
    /// UDP datagrams handed over while the link is down are dropped. TCP is
    /// still held: this model never loses stream bytes (a split-connection
    /// proxy holds them).
    Drop,
}

/// The windows of each direction, times in ms from the link's start
/// (unscaled: `scale` divides them like delays). A window's rate (bytes
/// per second in the plan) replaces the direction's `rate` while it is
/// open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schedule {
    /// Earth → far.
    #[serde(serialize_with = "windows_json")]
    pub up: deepmail_contact_plan::Link,
    /// Far → Earth.
    #[serde(serialize_with = "windows_json")]
    pub down: deepmail_contact_plan::Link,
    /// Hold or drop while down.
    pub mode: DownMode,
}

fn windows_json<S: serde::Serializer>(
    link: &deepmail_contact_plan::Link,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeSeq;
    let mut seq = s.serialize_seq(Some(link.windows().len()))?;
    for w in link.windows() {
        seq.serialize_element(&(w.start_ms, w.end_ms, w.rate))?;
    }
    seq.end()
}

impl Schedule {
    /// The schedule a contact plan gives the link from node `from` to node
    /// `to` (up) and back (down; the up windows when the plan has none
    /// that way), relative times counting from the link's start.
    pub fn from_plan(
        plan: &deepmail_contact_plan::ContactPlan,
        from: u64,
        to: u64,
        mode: DownMode,
    ) -> Schedule {
        let up = plan.link(from, to);
        let down = plan.link(to, from);
        let down = if down.is_empty() { up.clone() } else { down };
        Schedule { up, down, mode }
    }
}

impl Default for LinkConfig {
    fn default() -> LinkConfig {
        LinkConfig {
            tcp: Vec::new(),
            udp: Vec::new(),
            up: DirectionConfig::default(),
            down: DirectionConfig::default(),
            scale: 1.0,
            seed: 0,
            mss: DEFAULT_MSS,
            queue_limit: DEFAULT_QUEUE_LIMIT,
            schedule: None,
        }
    }
}

impl LinkConfig {
    /// A link with the same one-way `delay` both ways and no relays yet.
    pub fn with_delay(delay: Duration) -> LinkConfig {
        LinkConfig {
            up: DirectionConfig::delay(delay),
            down: DirectionConfig::delay(delay),
            ..LinkConfig::default()
        }
    }

    /// Adds a TCP relay.
    pub fn tcp(mut self, listen: SocketAddr, target: SocketAddr) -> LinkConfig {
        self.tcp.push(RelaySpec { listen, target });
        self
    }

    /// Adds a UDP relay.
    pub fn udp(mut self, listen: SocketAddr, target: SocketAddr) -> LinkConfig {
        self.udp.push(RelaySpec { listen, target });
        self
    }

    /// Checks the values [`Link::start`](crate::Link::start) relies on.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.tcp.is_empty() && self.udp.is_empty() {
            return Err(ConfigError::NoRelays);
        }
        if !(self.scale.is_finite() && self.scale > 0.0) {
            return Err(ConfigError::Scale(self.scale));
        }
        if self.mss == 0 {
            return Err(ConfigError::ZeroMss);
        }
        self.up.validate("up")?;
        self.down.validate("down")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1.28s"), Ok(Duration::from_millis(1280)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("4min"), Ok(Duration::from_secs(240)));
        assert_eq!(parse_duration("22min"), Ok(Duration::from_secs(1320)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration(" 2 s "), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        for bad in [
            "", "5", "1.28", "5parsecs", "-1s", "s", "1.2.3s", "4m", "1e400s",
        ] {
            let e = parse_duration(bad).unwrap_err();
            assert_eq!(e.value, bad);
            assert!(e.to_string().contains("1.28s, 250ms or 4min"), "{e}");
        }
    }

    #[test]
    fn rates() {
        let r = |s: &str| s.parse::<Rate>().map(Rate::as_bits_per_second);
        assert_eq!(r("1Mbit"), Ok(1_000_000));
        assert_eq!(r("256kbit"), Ok(256_000));
        assert_eq!(r("8mbit/s"), Ok(8_000_000));
        assert_eq!(r("9600bit"), Ok(9600));
        assert_eq!(r("2.5Gbit"), Ok(2_500_000_000));
        for bad in ["", "1M", "1MB", "0kbit", "fastbit", "-1Mbit", "0.1bit"] {
            assert_eq!(r(bad).unwrap_err().value, bad);
        }
        assert_eq!(Rate::bits_per_second(256_000).to_string(), "256kbit");
        assert_eq!(Rate::bits_per_second(1_500).to_string(), "1500bit");
        assert_eq!(
            Rate::bits_per_second(8_000_000).serialisation_time(1_000_000),
            Duration::from_secs(1)
        );
    }

    #[test]
    fn probabilities() {
        assert_eq!(parse_probability("0.01"), Ok(0.01));
        assert_eq!(parse_probability("1%"), Ok(0.01));
        assert_eq!(parse_probability("1"), Ok(1.0));
        for bad in ["1.5", "-0.1", "101%", "often", "NaN"] {
            assert_eq!(parse_probability(bad).unwrap_err().value, bad);
        }
    }

    #[test]
    fn relay_specs() {
        let spec: RelaySpec = "127.0.0.1:0=127.0.0.1:25".parse().unwrap();
        assert_eq!(spec.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(spec.target.port(), 25);
        let v6: RelaySpec = "[::1]:0=[::1]:2525".parse().unwrap();
        assert!(v6.listen.is_ipv6());
        for bad in ["127.0.0.1:0", "127.0.0.1:0=moon:25", "=", "a=b=c"] {
            assert!(bad
                .parse::<RelaySpec>()
                .unwrap_err()
                .to_string()
                .contains("LISTEN=TARGET"));
        }
    }

    #[test]
    fn validation() {
        let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert_eq!(LinkConfig::default().validate(), Err(ConfigError::NoRelays));
        let ok = LinkConfig::with_delay(Duration::from_secs(1)).tcp(addr, addr);
        assert_eq!(ok.validate(), Ok(()));
        let mut bad = ok.clone();
        bad.scale = 0.0;
        assert_eq!(bad.validate(), Err(ConfigError::Scale(0.0)));
        let mut bad = ok.clone();
        bad.down.loss = 2.0;
        assert!(matches!(
            bad.validate(),
            Err(ConfigError::Loss {
                direction: "down",
                ..
            })
        ));
        let mut bad = ok;
        bad.mss = 0;
        assert_eq!(bad.validate(), Err(ConfigError::ZeroMss));
        let scaled = DirectionConfig::delay(Duration::from_secs(1320)).scaled(1000.0);
        assert_eq!(scaled.delay, Duration::from_millis(1320));
    }
}
