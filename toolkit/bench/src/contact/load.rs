//! The load: size classes, priorities, the seeded generator, the
//! scenario (windows, light time, blackout) and the planned messages.

use super::*;

/// Size classes of the load: name, share, smallest and largest body, and
/// whether the body is an attachment of random (incompressible) bytes.
pub(super) const CLASSES: [(&str, f64, usize, usize, bool); 4] = [
    ("text", 0.70, 1_500, 10_000, false),
    ("photo", 0.20, 50_000, 300_000, true),
    ("document", 0.08, 300_000, 1_000_000, false),
    ("data", 0.02, 2_000_000, 4_000_000, true),
];

/// Priorities (MT-PRIORITY, RFC 6710): name, value, share.
pub(super) const PRIORITIES: [(&str, i8, f64); 3] =
    [("urgent", 4, 0.10), ("normal", 0, 0.75), ("bulk", -4, 0.15)];

/// SplitMix64: the load's randomness, from `--seed`.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub(super) fn unit(&mut self) -> f64 {
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
pub(super) struct Planned {
    pub(super) id: usize,
    /// Arrival, real seconds from the start.
    pub(super) at: f64,
    pub(super) class: usize,
    pub(super) priority: usize,
    /// Body size before encoding.
    pub(super) body: usize,
}

/// The scenario in real time, and its scaled form.
pub(super) struct Scenario {
    pub(super) scale: f64,
    pub(super) volume: f64,
    /// Bytes per second, real.
    pub(super) rate: u64,
    pub(super) owlt: f64,
    /// Arrivals end here, real seconds.
    pub(super) arrivals_end: f64,
    /// Real seconds the run may last.
    pub(super) end: f64,
    pub(super) blackout: (f64, f64),
    /// Windows, real seconds from the start: [open, close).
    pub(super) windows: Vec<(f64, f64)>,
}

impl Scenario {
    pub(super) fn new(a: &ContactBenchArgs) -> Result<Scenario, BenchError> {
        for (v, what) in [
            (a.sols, "--sols"),
            (a.scale, "--scale"),
            (a.volume_scale, "--volume-scale"),
            (a.window_hours, "--window-hours"),
            (a.load, "--load"),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(BenchError::BadArgument(format!(
                    "{what} must be a positive number, not {v}"
                )));
            }
        }
        if a.windows_per_sol == 0 || a.rate_bps < 8 {
            return Err(BenchError::BadArgument(
                "--windows-per-sol must be at least 1 and --rate-bps at least 8".into(),
            ));
        }
        let spacing = SOL / f64::from(a.windows_per_sol);
        if a.window_hours * 3600.0 > spacing {
            return Err(BenchError::BadArgument(format!(
                "{} windows of {} h do not fit in a sol of {:.1} h",
                a.windows_per_sol,
                a.window_hours,
                SOL / 3600.0
            )));
        }
        if a.load > 1.0 {
            return Err(BenchError::BadArgument(format!(
                "--load {} offers more than the windows carry; at most 1",
                a.load
            )));
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
            return Err(BenchError::BadArgument(format!(
                "--scale {} / --volume-scale {} makes the emulated link {} MB/s; keep it under 50 (raise --volume-scale)",
                a.scale,
                a.volume_scale,
                s.emulated_rate() / 1_000_000
            )));
        }
        if s.wall(s.owlt) < Duration::from_millis(5) {
            return Err(BenchError::BadArgument(format!(
                "--scale {} leaves a light time under 5 ms; lower it",
                a.scale
            )));
        }
        Ok(s)
    }

    /// Real seconds as wall-clock time.
    pub(super) fn wall(&self, real: f64) -> Duration {
        Duration::from_secs_f64((real / self.scale).max(0.0))
    }

    /// The emulated link's rate, bytes per wall-clock second.
    pub(super) fn emulated_rate(&self) -> u64 {
        (self.rate as f64 * self.scale / self.volume) as u64
    }

    /// Message bytes the windows carry while mail arrives (scaled by the
    /// volume).
    pub(super) fn capacity_during_arrivals(&self) -> f64 {
        self.windows
            .iter()
            .map(|(o, c)| (c.min(self.arrivals_end) - o).max(0.0))
            .sum::<f64>()
            * self.rate as f64
            / self.volume
    }

    /// The plan at wall-clock speed (times divided by the scale, the
    /// emulated rate), both directions, relative to the `@` line.
    pub(super) fn plan_text(&self, at_unix_ms: u64) -> String {
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
    pub(super) fn open_at(&self, t: f64) -> bool {
        let i = self.windows.partition_point(|w| w.0 <= t);
        i > 0 && t < self.windows[i - 1].1
    }
}

/// The load: Poisson arrivals over the arrival sols, offering `load` of
/// what the windows carry then.
pub(super) fn plan_load(s: &Scenario, load: f64, seed: u64) -> Vec<Planned> {
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
pub(super) const WORDS: [&str; 24] = [
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
pub(super) fn content(p: &Planned, seed: u64) -> Vec<u8> {
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
pub(super) fn bench_id(content: &[u8]) -> Option<usize> {
    let at = content.windows(16).position(|w| w == b"Message-ID: <ben")?;
    let rest = &content[at + 19..];
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}
