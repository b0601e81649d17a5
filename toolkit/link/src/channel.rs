//! The model of one direction of the link, with no I/O: given the time a
//! datagram or TCP segment is handed to the transmitter and its size, it
//! says when (and whether) it arrives. Time and randomness are inputs — the
//! caller passes `now`, the draws come from a seeded [`SplitMix64`] — so
//! the model is deterministic and tested without sockets.
//!
//! It implements the model described in the crate documentation
//! (serialisation, UDP queue limit, loss, propagation with jitter).

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{DirectionConfig, DownMode};

/// When a transmission arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arrival {
    /// When it is delivered.
    pub(crate) at: Instant,
    /// When its last bit left the transmitter.
    pub(crate) sent: Instant,
    /// Whether it was lost once and resent (TCP).
    pub(crate) retransmitted: bool,
}

/// What happens to one UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fate {
    /// It arrives.
    Arrives(Arrival),
    /// Lost in transit (after using the transmitter).
    Lost,
    /// Dropped because the transmit queue was full.
    QueueFull,
}

/// One direction of the link: transmitter state and random draws.
#[derive(Debug)]
pub(crate) struct Channel {
    config: DirectionConfig,
    retransmit_penalty: Duration,
    queue_limit: usize,
    busy_until: Option<Instant>,
    rng: SplitMix64,
    windows: Option<Windows>,
}

/// A direction's contact windows as instants: (opens, closes, bits per
/// second), in order and disjoint.
#[derive(Debug, Clone)]
pub(crate) struct Windows {
    list: Vec<(Instant, Instant, u64)>,
    mode: DownMode,
}

/// How far away "never" is: a transmission no window can carry.
const NEVER: Duration = Duration::from_secs(10 * 365 * 86_400);

impl Windows {
    /// The windows of `link` (ms from the link's start, plan rates in
    /// bytes per second), their times divided by `scale`, from `start`.
    pub(crate) fn new(
        link: &deepmail_contact_plan::Link,
        start: Instant,
        scale: f64,
        mode: DownMode,
    ) -> Windows {
        let at = |ms: u64| start + Duration::from_secs_f64(ms as f64 / 1000.0 / scale);
        Windows {
            list: link
                .windows()
                .iter()
                .map(|w| (at(w.start_ms), at(w.end_ms), w.rate.saturating_mul(8)))
                .collect(),
            mode,
        }
    }

    fn open_at(&self, t: Instant) -> bool {
        let i = self.list.partition_point(|w| w.0 <= t);
        i > 0 && t < self.list[i - 1].1
    }
}

impl Channel {
    /// `config` already scaled; `retransmit_penalty` is the round trip a
    /// lost TCP segment costs; `queue_limit` in bytes (UDP).
    pub(crate) fn new(
        config: DirectionConfig,
        retransmit_penalty: Duration,
        queue_limit: usize,
        seed: u64,
    ) -> Channel {
        Channel {
            config,
            retransmit_penalty,
            queue_limit,
            busy_until: None,
            rng: SplitMix64::new(seed),
            windows: None,
        }
    }

    /// The same channel, up only in `windows`.
    pub(crate) fn with_windows(mut self, windows: Windows) -> Channel {
        self.windows = Some(windows);
        self
    }

    /// The one-way delay (scaled).
    pub(crate) fn delay(&self) -> Duration {
        self.config.delay
    }

    /// A UDP datagram of `len` bytes handed over at `now`.
    pub(crate) fn datagram(&mut self, now: Instant, len: usize) -> Fate {
        if let Some(w) = &self.windows {
            if w.mode == DownMode::Drop && !w.open_at(now) {
                return Fate::Lost;
            }
        }
        if let Some(rate) = self.config.rate {
            let backlog = self
                .busy_until
                .map_or(Duration::ZERO, |b| b.saturating_duration_since(now));
            let queued = backlog.as_secs_f64() * rate.as_bits_per_second() as f64 / 8.0;
            if !backlog.is_zero() && queued + len as f64 > self.queue_limit as f64 {
                return Fate::QueueFull;
            }
        }
        let sent = self.serialise(now, len);
        if self.lost() {
            return Fate::Lost;
        }
        Fate::Arrives(Arrival {
            at: sent + self.propagation(),
            sent,
            retransmitted: false,
        })
    }

    /// A TCP segment of `len` bytes (0 for a SYN or FIN) handed over at
    /// `now`; always arrives, possibly one round trip late. The caller
    /// keeps the connection's order with [`InOrder`].
    pub(crate) fn segment(&mut self, now: Instant, len: usize) -> Arrival {
        let sent = self.serialise(now, len);
        let retransmitted = self.lost();
        let mut at = sent + self.propagation();
        if retransmitted {
            at += self.retransmit_penalty;
        }
        Arrival {
            at,
            sent,
            retransmitted,
        }
    }

    fn serialise(&mut self, now: Instant, len: usize) -> Instant {
        if self.windows.is_some() {
            return self.serialise_in_windows(now, len);
        }
        let Some(rate) = self.config.rate else {
            return now;
        };
        let start = self.busy_until.map_or(now, |b| b.max(now));
        let done = start + rate.serialisation_time(len);
        self.busy_until = Some(done);
        done
    }

    /// Serialisation on a scheduled link: a transmission starts in a
    /// window, at that window's rate, and only if it ends before the window
    /// closes; otherwise it waits for the next window it fits in (store and
    /// forward). One no window can carry leaves "never".
    fn serialise_in_windows(&mut self, now: Instant, len: usize) -> Instant {
        let Some(windows) = &self.windows else {
            return now;
        };
        let mut t = self.busy_until.map_or(now, |b| b.max(now));
        let first = windows.list.partition_point(|w| w.1 <= t);
        for &(opens, closes, bits) in &windows.list[first..] {
            t = t.max(opens);
            let time = if bits == 0 {
                NEVER
            } else {
                crate::config::Rate::bits_per_second(bits).serialisation_time(len)
            };
            if t + time <= closes {
                let done = t + time;
                self.busy_until = Some(done);
                return done;
            }
        }
        now + NEVER
    }

    fn lost(&mut self) -> bool {
        // One draw per transmission whatever the probability, so a seed
        // gives the same sequence of fates for the same traffic.
        let draw = self.rng.next_f64();
        draw < self.config.loss
    }

    fn propagation(&mut self) -> Duration {
        let jitter = self.config.jitter;
        if jitter.is_zero() {
            return self.config.delay;
        }
        let offset = (self.rng.next_f64() * 2.0 - 1.0) * jitter.as_secs_f64();
        let delay = self.config.delay.as_secs_f64() + offset;
        Duration::try_from_secs_f64(delay.max(0.0)).unwrap_or(Duration::ZERO)
    }
}

/// Keeps one TCP direction in order: nothing is delivered before what was
/// sent ahead of it.
#[derive(Debug, Default)]
pub(crate) struct InOrder {
    last: Option<Instant>,
}

impl InOrder {
    /// The delivery time of a segment due at `at`.
    pub(crate) fn place(&mut self, at: Instant) -> Instant {
        let at = self.last.map_or(at, |last| last.max(at));
        self.last = Some(at);
        at
    }
}

/// SplitMix64 (Steele, Lea and Flood 2014): a tiny seeded generator, good
/// enough for loss and jitter draws and the same on every platform.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;

    const MS: Duration = Duration::from_millis(1);

    fn channel(config: DirectionConfig) -> Channel {
        Channel::new(config, config.delay * 2, 10_000, 7)
    }

    fn arrival(fate: Fate) -> Instant {
        match fate {
            Fate::Arrives(a) => a.at,
            other => panic!("expected an arrival, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_delay_adds_the_delay() {
        let mut c = channel(DirectionConfig::delay(100 * MS));
        let now = Instant::now();
        assert_eq!(arrival(c.datagram(now, 1000)), now + 100 * MS);
        assert_eq!(c.segment(now, 0).at, now + 100 * MS);
    }

    fn scheduled(mode: DownMode) -> (Channel, Instant) {
        let start = Instant::now();
        // Up 100..200 ms and 300..400 ms at 1000 bytes/s (1 byte per ms).
        let w = |s: u64, e: u64| deepmail_contact_plan::Window {
            start_ms: s,
            end_ms: e,
            rate: 1000,
            owlt_ms: 0,
        };
        let link = deepmail_contact_plan::Link::new(vec![w(100, 200), w(300, 400)]);
        let c = channel(DirectionConfig::delay(10 * MS))
            .with_windows(Windows::new(&link, start, 1.0, mode));
        (c, start)
    }

    #[test]
    fn a_closed_window_holds_what_is_sent() {
        let (mut c, t0) = scheduled(DownMode::Hold);
        // Handed over before the window: leaves when it opens, at its rate.
        assert_eq!(c.segment(t0, 10).at, t0 + 120 * MS);
        // 90 bytes fit what is left of the first window (ends at 200 ms).
        assert_eq!(c.segment(t0, 90).at, t0 + 210 * MS);
        // The next byte waits for the second window.
        assert_eq!(arrival(c.datagram(t0 + 150 * MS, 1)), t0 + 311 * MS);
        // Too large for any window: never.
        assert!(c.segment(t0, 150).at > t0 + NEVER / 2);
        // Scaled: the same plan 10 times faster.
        let link = deepmail_contact_plan::Link::new(vec![deepmail_contact_plan::Window {
            start_ms: 1000,
            end_ms: 2000,
            rate: 1000,
            owlt_ms: 0,
        }]);
        let mut fast = channel(DirectionConfig::delay(Duration::ZERO)).with_windows(Windows::new(
            &link,
            t0,
            10.0,
            DownMode::Hold,
        ));
        assert_eq!(fast.segment(t0, 0).at, t0 + 100 * MS);
    }

    #[test]
    fn a_closed_window_drops_datagrams_in_drop_mode_but_holds_tcp() {
        let (mut c, t0) = scheduled(DownMode::Drop);
        assert_eq!(c.datagram(t0 + 50 * MS, 10), Fate::Lost);
        assert_eq!(arrival(c.datagram(t0 + 150 * MS, 10)), t0 + 170 * MS);
        assert_eq!(c.segment(t0 + 250 * MS, 10).at, t0 + 320 * MS);
    }

    #[test]
    fn the_rate_serialises_and_queues() {
        let mut c = channel(DirectionConfig {
            rate: Some(Rate::bits_per_second(8_000)), // 1 byte per ms
            ..DirectionConfig::delay(100 * MS)
        });
        let now = Instant::now();
        assert_eq!(arrival(c.datagram(now, 10)), now + 110 * MS);
        // Queued behind the first.
        assert_eq!(arrival(c.datagram(now, 10)), now + 120 * MS);
        // The transmitter is idle again later.
        let later = now + 500 * MS;
        assert_eq!(arrival(c.datagram(later, 5)), later + 105 * MS);
    }

    #[test]
    fn a_full_queue_drops_datagrams_but_never_an_idle_one() {
        let mut c = Channel::new(
            DirectionConfig {
                rate: Some(Rate::bits_per_second(8_000)),
                ..DirectionConfig::default()
            },
            Duration::ZERO,
            100,
            1,
        );
        let now = Instant::now();
        // Larger than the limit, but the transmitter is idle: sent.
        assert!(matches!(c.datagram(now, 150), Fate::Arrives(_)));
        assert_eq!(c.datagram(now, 1), Fate::QueueFull);
        // 150 ms later the backlog is gone.
        assert!(matches!(c.datagram(now + 150 * MS, 60), Fate::Arrives(_)));
        assert!(matches!(c.datagram(now + 150 * MS, 40), Fate::Arrives(_)));
        assert_eq!(c.datagram(now + 150 * MS, 10), Fate::QueueFull);
    }

    #[test]
    fn seeded_loss_is_reproducible_and_near_the_probability() {
        let config = DirectionConfig {
            loss: 0.1,
            ..DirectionConfig::delay(MS)
        };
        let now = Instant::now();
        let count = |seed| {
            let mut c = Channel::new(config, Duration::ZERO, 0, seed);
            (0..10_000)
                .filter(|_| c.datagram(now, 100) == Fate::Lost)
                .count()
        };
        let lost = count(42);
        assert_eq!(lost, count(42));
        // Binomial(10000, 0.1): sigma = 30; allow 4 sigma.
        assert!((880..=1120).contains(&lost), "{lost}");
        assert_ne!(lost, count(43));
    }

    #[test]
    fn a_lost_segment_costs_one_round_trip() {
        let mut c = Channel::new(
            DirectionConfig {
                loss: 1.0,
                ..DirectionConfig::delay(100 * MS)
            },
            250 * MS,
            0,
            1,
        );
        let now = Instant::now();
        assert_eq!(
            c.segment(now, 10),
            Arrival {
                at: now + 350 * MS,
                sent: now,
                retransmitted: true
            }
        );
    }

    #[test]
    fn jitter_stays_within_bounds_and_in_order_keeps_streams_ordered() {
        let mut c = channel(DirectionConfig {
            jitter: 30 * MS,
            ..DirectionConfig::delay(50 * MS)
        });
        let now = Instant::now();
        let mut order = InOrder::default();
        let mut last = now;
        let mut reordered = 0;
        let mut previous = now;
        for i in 0..1000 {
            let sent = now + MS * i;
            let at = arrival(c.datagram(sent, 1));
            assert!(at >= sent + 20 * MS && at <= sent + 80 * MS);
            if at < previous {
                reordered += 1;
            }
            previous = at;
            let placed = order.place(at);
            assert!(placed >= last && placed >= at);
            last = placed;
        }
        assert!(reordered > 0, "jitter should reorder some datagrams");
    }

    #[test]
    fn splitmix_matches_the_reference() {
        // First outputs for seed 1234567 from the reference C code.
        let mut r = SplitMix64::new(1234567);
        assert_eq!(r.next_u64(), 6457827717110365317);
        assert_eq!(r.next_u64(), 3203168211198807973);
        let f = SplitMix64::new(9).next_f64();
        assert!((0.0..1.0).contains(&f));
    }
}
