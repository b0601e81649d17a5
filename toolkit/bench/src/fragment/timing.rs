//! Checking and timing one cell: the sample ADU, the bundle specs, the
//! property check before timing, the measurement loop and its progress line.

use super::*;

/// A mail-like ADU: 76-column CRLF lines, some starting with a dot.
pub(super) fn sample_adu(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 80);
    let mut n = 0u32;
    while out.len() < size {
        if n.is_multiple_of(17) {
            out.push(b'.');
        }
        out.extend((0..74u32).map(|i| b'A' + ((n + i) % 26) as u8));
        out.extend_from_slice(b"\r\n");
        n += 1;
    }
    out.truncate(size);
    out
}

pub(super) fn native_spec(crc: BenchCrc) -> deepmail_bundle::BundleSpec {
    deepmail_bundle::BundleSpec {
        source: Eid::Ipn {
            node: 1,
            service: 0,
        },
        destination: Eid::Ipn {
            node: 2,
            service: 25,
        },
        report_to: Eid::Null,
        creation_time: CREATION_TIME,
        sequence_number: 1,
        lifetime_ms: LIFETIME_MS,
        crc: crc.native(),
        block_crc: crc.native(),
        must_not_fragment: false,
    }
}

pub(super) fn plugin_spec(crc: BenchCrc) -> BundleSpec {
    BundleSpec {
        source: "ipn:1.0".into(),
        destination: "ipn:2.25".into(),
        report_to: "dtn:none".into(),
        creation_time: CREATION_TIME,
        sequence_number: 1,
        lifetime_ms: LIFETIME_MS,
        crc: crc.wit(),
        block_crc: crc.wit(),
        must_not_fragment: false,
    }
}

/// One implementation, ready to be called.
pub(super) enum Subject<'a> {
    Native,
    /// A fragmenter plugin and the Bundle Protocol version it speaks (as
    /// its own `inspect` reports it): 7, or 6 for a BPv6 plugin such as
    /// `plugins-standalone/bp6-fragmenter`.
    Plugin(&'a Fragmenter, u64),
}

impl Subject<'_> {
    pub(super) fn fragment(
        &self,
        adu: &[u8],
        crc: BenchCrc,
        mtu: u64,
    ) -> Result<Vec<Vec<u8>>, CellFailure> {
        match self {
            Subject::Native => {
                let mtu = usize::try_from(mtu).unwrap_or(usize::MAX);
                Ok(deepmail_bundle::fragment_adu(adu, &native_spec(crc), mtu)?)
            }
            Subject::Plugin(f, _) => Ok(f.fragment_adu(adu, &plugin_spec(crc), mtu)?),
        }
    }

    /// Reassembles `bundles` (in order) with this implementation's reassembler.
    pub(super) fn reassemble(
        &self,
        bundles: &[Vec<u8>],
        limits: ReassemblyLimits,
    ) -> Result<Vec<u8>, CellFailure> {
        let now = CREATION_TIME + 1;
        let mut delivered = None;
        match self {
            Subject::Native => {
                let mut r = Reassembler::new(limits);
                for b in bundles {
                    if let Some(d) = r.push(b, now)? {
                        delivered = Some(d.adu);
                    }
                }
            }
            Subject::Plugin(f, _) => {
                let mut session = f.reassembler(types::ReassemblyLimits {
                    max_adu_bytes: limits.max_adu_bytes,
                    max_pending_bytes: limits.max_pending_bytes,
                    max_pending_bundles: limits.max_pending_bundles,
                })?;
                for b in bundles {
                    if let Some(d) = session.push(b, now)? {
                        delivered = Some(d.adu);
                    }
                }
            }
        }
        delivered.ok_or_else(|| {
            CellFailure::Check(format!(
                "{} bundle(s) pushed, no ADU delivered",
                bundles.len()
            ))
        })
    }
}

/// Checks one fragmenter output against the ADU with the native
/// (reference) reassembler: every bundle fits the MTU, and the bundles
/// deliver exactly one ADU, equal to the input, on the last push.
pub(super) fn check_bundles(
    adu: &[u8],
    bundles: &[Vec<u8>],
    mtu: u64,
    limits: ReassemblyLimits,
) -> Result<(), CellFailure> {
    let check = |sentence: String| Err(CellFailure::Check(sentence));
    if bundles.is_empty() {
        return check("no bundles".into());
    }
    if let Some((i, b)) = bundles
        .iter()
        .enumerate()
        .find(|(_, b)| b.len() as u64 > mtu)
    {
        return check(format!(
            "bundle {} of {} is {} bytes, more than the MTU of {mtu}",
            i + 1,
            bundles.len(),
            b.len()
        ));
    }
    let mut r = Reassembler::new(limits);
    let mut delivered = Vec::new();
    for (i, b) in bundles.iter().enumerate() {
        match r.push(b, CREATION_TIME + 1) {
            Ok(Some(d)) => delivered.push((i, d.adu)),
            Ok(None) => {}
            Err(e) => {
                return check(format!(
                    "bundle {} of {} is refused by the reference reassembler: {e}",
                    i + 1,
                    bundles.len()
                ))
            }
        }
    }
    match delivered.as_slice() {
        [] => check(format!(
            "the {} bundles do not reassemble: {} byte(s) still missing",
            bundles.len(),
            adu.len() as u64 - r.pending().bytes.min(adu.len() as u64)
        )),
        [(i, got)] if *i + 1 == bundles.len() && got == adu => Ok(()),
        [(_, got)] if got != adu => check(format!(
            "the bundles reassemble to {} bytes that differ from the {}-byte ADU{}",
            got.len(),
            adu.len(),
            got.iter()
                .zip(adu)
                .position(|(a, b)| a != b)
                .map(|p| format!(" (first difference at byte {p})"))
                .unwrap_or_default()
        )),
        [(i, _)] => check(format!(
            "the ADU is complete after bundle {} of {}; the rest are extra",
            i + 1,
            bundles.len()
        )),
        more => check(format!(
            "the bundles deliver {} ADUs instead of one",
            more.len()
        )),
    }
}

/// The result of one cell.
pub(super) struct Cell {
    pub(super) implementation: Impl,
    pub(super) adu_bytes: u64,
    pub(super) mtu: u64,
    pub(super) crc: BenchCrc,
    pub(super) outcome: Result<Measured, CellFailure>,
}

pub(super) struct Measured {
    pub(super) bundles: usize,
    pub(super) wire_bytes: u64,
    pub(super) largest_bundle: usize,
    /// Timed samples, each of `calls_per_sample` calls.
    pub(super) samples: usize,
    pub(super) calls_per_sample: usize,
    pub(super) fragment: Stats,
    pub(super) reassemble: Option<Stats>,
}

/// Time per call of one timed operation over the samples, ns.
pub(super) struct Stats {
    pub(super) median_ns: f64,
    pub(super) min_ns: f64,
    pub(super) max_ns: f64,
}

impl Stats {
    /// From per-call times in ns, one per sample.
    pub(super) fn of(mut samples: Vec<f64>) -> Stats {
        samples.sort_unstable_by(f64::total_cmp);
        let n = samples.len();
        let median_ns = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => samples[n / 2],
            _ => (samples[n / 2 - 1] + samples[n / 2]) / 2.0,
        };
        Stats {
            median_ns,
            min_ns: samples.first().copied().unwrap_or(f64::NAN),
            max_ns: samples.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// MB (10^6 bytes) of ADU per second at the median.
    pub(super) fn mb_per_s(&self, adu_bytes: u64) -> f64 {
        adu_bytes as f64 / self.median_ns * 1e3
    }
}

impl Measured {
    /// Timed calls in all.
    pub(super) fn iterations(&self) -> usize {
        self.samples * self.calls_per_sample
    }

    pub(super) fn overhead(&self, adu_bytes: u64) -> f64 {
        (self.wire_bytes as f64 - adu_bytes as f64) / adu_bytes as f64
    }

    pub(super) fn bundles_per_s(&self) -> f64 {
        self.bundles as f64 / self.fragment.median_ns * 1e9
    }
}

/// Checks, then times, one cell.
pub(super) fn measure(
    subject: &Subject<'_>,
    adu: &[u8],
    mtu: u64,
    crc: BenchCrc,
    plan: &Plan,
    limits: ReassemblyLimits,
) -> Result<Measured, CellFailure> {
    // The first run warms up (instances, caches) and is checked, not timed.
    let bundles = subject.fragment(adu, crc, mtu)?;
    match subject {
        // RFC 5050 bundles: the conformance runner's own BPv6 reader
        // checks them against the plugin's whole bundle of the same ADU,
        // as it checks the vectors/bundle6 fragment cases.
        Subject::Plugin(f, 6) => {
            let whole = f.build(adu, &plugin_spec(crc)).map_err(|e| {
                CellFailure::Check(format!("the plugin cannot build the whole bundle: {e}"))
            })?;
            deepmail_conformance::check_bp6_fragmentation(adu, &whole, mtu, &bundles)?;
        }
        _ => check_bundles(adu, &bundles, mtu, limits)?,
    }
    if plan.reassemble {
        let back = subject.reassemble(&bundles, limits)?;
        if back != adu {
            return Err(CellFailure::Check(format!(
                "its reassembler returned {} bytes that differ from the {}-byte ADU",
                back.len(),
                adu.len()
            )));
        }
    }
    let wire_bytes = bundles.iter().map(|b| b.len() as u64).sum();
    let largest_bundle = bundles.iter().map(Vec::len).max().unwrap_or(0);
    let count = bundles.len();
    let deterministic = |got: &[Vec<u8>]| {
        if got.len() == count {
            Ok(())
        } else {
            Err(CellFailure::Check(format!(
                "not deterministic: {count} bundles on the first run, {} on a later one",
                got.len()
            )))
        }
    };

    // A sample is one call, or for calls too short for the clock a batch's
    // time divided by its calls.
    let t = Instant::now();
    deterministic(&black_box(subject.fragment(adu, crc, mtu)?))?;
    let one = t.elapsed().max(Duration::from_nanos(1));
    let batch = if one < BATCH_BELOW {
        (SAMPLE_TARGET.as_nanos() / one.as_nanos()).clamp(1, 100_000) as usize
    } else {
        1
    };

    let mut fragment_ns = Vec::new();
    let mut reassemble_ns = Vec::new();
    let mut outputs: Vec<Vec<Vec<u8>>> = Vec::with_capacity(batch);
    let started = Instant::now();
    while fragment_ns.len() < plan.min_samples || started.elapsed() < plan.min_time {
        // Outputs are dropped outside the timed span.
        outputs.clear();
        let t = Instant::now();
        for _ in 0..batch {
            outputs.push(black_box(subject.fragment(black_box(adu), crc, mtu)?));
        }
        fragment_ns.push(t.elapsed().as_secs_f64() * 1e9 / batch as f64);
        let last = outputs.last().map_or(&bundles, |o| o);
        deterministic(last)?;
        if plan.reassemble {
            let mut back = Vec::with_capacity(batch);
            let t = Instant::now();
            for _ in 0..batch {
                back.push(black_box(subject.reassemble(last, limits)?));
            }
            reassemble_ns.push(t.elapsed().as_secs_f64() * 1e9 / batch as f64);
            if let Some(b) = back.iter().find(|b| b.len() != adu.len()) {
                return Err(CellFailure::Check(format!(
                    "its reassembler returned {} bytes for the {}-byte ADU",
                    b.len(),
                    adu.len()
                )));
            }
        }
    }
    Ok(Measured {
        bundles: count,
        wire_bytes,
        largest_bundle,
        samples: fragment_ns.len(),
        calls_per_sample: batch,
        fragment: Stats::of(fragment_ns),
        reassemble: plan.reassemble.then(|| Stats::of(reassemble_ns)),
    })
}

/// Progress on stderr: a redrawn bar on a terminal, one line per cell
/// otherwise, nothing with `--quiet`.
pub(super) struct Progress {
    pub(super) mode: ProgressMode,
    pub(super) total: usize,
    pub(super) done: usize,
    pub(super) started: Instant,
}

#[derive(PartialEq, Eq)]
pub(super) enum ProgressMode {
    Off,
    Bar,
    Lines,
}

impl Progress {
    pub(super) fn new(quiet: bool, total: usize) -> Progress {
        let mode = if quiet {
            ProgressMode::Off
        } else if std::io::stderr().is_terminal() {
            ProgressMode::Bar
        } else {
            ProgressMode::Lines
        };
        Progress {
            mode,
            total,
            done: 0,
            started: Instant::now(),
        }
    }

    pub(super) fn draw_bar(&self, label: &str) {
        let width = 24;
        let filled = (self.done * width).checked_div(self.total).unwrap_or(width);
        let mut bar = "=".repeat(filled);
        if filled < width {
            bar.push('>');
            bar.push_str(&" ".repeat(width - filled - 1));
        }
        let columns: usize = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(100);
        let mut line = format!(
            "[{bar}] {}/{} {:>4.0}s  {label}",
            self.done,
            self.total,
            self.started.elapsed().as_secs_f64()
        );
        if line.chars().count() >= columns {
            line = line.chars().take(columns.saturating_sub(1)).collect();
        }
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{line}");
        let _ = err.flush();
    }

    pub(super) fn start(&self, label: &str) {
        if self.mode == ProgressMode::Bar {
            self.draw_bar(label);
        }
    }

    pub(super) fn finish(&mut self, label: &str, summary: &str) {
        self.done += 1;
        match self.mode {
            ProgressMode::Off => {}
            ProgressMode::Bar => self.draw_bar(label),
            ProgressMode::Lines => {
                eprintln!(
                    "deepmail: bench fragment [{}/{}] {label}: {summary}",
                    self.done, self.total
                );
            }
        }
    }

    pub(super) fn end(&self) {
        if self.mode == ProgressMode::Bar {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}
