//! `bench fragment`: how a user compares fragmenter implementations. The
//! same grid of ADU sizes × MTUs × CRC types runs through `deepmail-bundle`
//! called directly (`native`) and through the fragmenter plugin in use
//! (`plugin`: `builtin:bp7-fragmenter`, or any component given with
//! `--plugin fragmenter=PATH`), fragmenting each ADU into BPv7 bundles of at
//! most the MTU (RFC 9171 §5.8) and, with `--reassemble`, putting it back
//! together (§5.9).
//!
//! Every cell is checked before it is timed: each bundle must fit the MTU and
//! the bundles must reassemble, with the native reassembler, to exactly the
//! ADU. A fragmenter that gets this wrong is reported as failed, never timed.
//! Results go to a table on stdout, and optionally to JSON (`--json`) and an
//! SVG chart of throughput against ADU size (`--svg`), both written here by
//! hand.

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use deepmail_bundle::{Eid, Reassembler, ReassemblyLimits};
use deepmail_host::types::{self, BundleSpec};
use deepmail_host::{Fragmenter, Stage};
use serde_json::{json, Value};

use crate::output::write_output;
use crate::Stages;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;
/// Largest ADU the benchmark accepts: a plugin holds the ADU and its bundles
/// at once, within the host's memory cap (`--plugin-memory`, 1 GiB).
const MAX_ADU: u64 = 256 * MIB;
/// Creation time of every benchmark bundle (DTN ms), and the time they arrive.
const CREATION_TIME: u64 = 800_000_000_000;
const LIFETIME_MS: u64 = 86_400_000;
/// Calls shorter than `BATCH_BELOW` are timed in batches that take about
/// `SAMPLE_TARGET`, their outputs kept until the batch ends. Longer calls
/// are timed one by one: keeping several large outputs alive would time the
/// allocator's fresh pages rather than the fragmenter.
const BATCH_BELOW: Duration = Duration::from_micros(10);
const SAMPLE_TARGET: Duration = Duration::from_micros(100);

const DEFAULT_SIZES: &[u64] = &[KIB, 64 * KIB, MIB, 16 * MIB];
const DEFAULT_MTUS: &[u64] = &[512, 1024, 9000, 65_536];
const QUICK_SIZES: &[u64] = &[KIB, 64 * KIB];
const QUICK_MTUS: &[u64] = &[512, 9000];
const DEFAULT_MIN_TIME_MS: u64 = 300;
const QUICK_MIN_TIME_MS: u64 = 20;

#[derive(Args)]
pub(crate) struct FragmentBenchArgs {
    /// ADU sizes, comma-separated: bytes, or with a unit KiB/MiB (K/M), e.g.
    /// `1KiB,64KiB,1MiB,16MiB` (the default; `--quick`: 1KiB,64KiB).
    #[arg(long, value_name = "SIZES", value_delimiter = ',', value_parser = parse_adu_size)]
    sizes: Vec<u64>,
    /// Link MTUs (largest bundle) in bytes, comma-separated, e.g.
    /// `512,1024,9000,65536` (the default; `--quick`: 512,9000).
    #[arg(long, value_name = "BYTES", value_delimiter = ',', value_parser = parse_mtu)]
    mtus: Vec<u64>,
    /// CRC types for the primary and payload blocks, comma-separated:
    /// crc16, crc32c (default both; `--quick`: crc32c). `none` is refused:
    /// RFC 9171 §4.3.1 requires a CRC on the primary block.
    #[arg(long, value_name = "CRCS", value_delimiter = ',', value_parser = parse_crc)]
    crcs: Vec<BenchCrc>,
    /// Implementations to measure, comma-separated: native (deepmail-bundle
    /// called directly), plugin (the fragmenter plugin in use). Default both.
    #[arg(long = "impl", value_name = "IMPLS", value_delimiter = ',', value_enum)]
    impls: Vec<Impl>,
    /// Time reassembly too: each iteration fragments, then reassembles
    /// with the same implementation's reassembler.
    #[arg(long)]
    reassemble: bool,
    /// Least time spent on each cell, ms (default 300; `--quick`: 20).
    #[arg(long, value_name = "MS")]
    min_time_ms: Option<u64>,
    /// Least number of timed samples per cell (a sample is one call, or,
    /// for calls under 10 µs, a batch of calls taking about 100 µs).
    #[arg(long, value_name = "N", default_value_t = 3)]
    min_samples: usize,
    /// A tiny grid and short times (for tests and a first look).
    #[arg(long)]
    quick: bool,
    /// Write all cells and the machine as JSON to FILE (`-`: stdout, the
    /// table then goes to stderr).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a chart of fragment throughput against ADU size as SVG to FILE.
    #[arg(long, value_name = "FILE")]
    svg: Option<PathBuf>,
    /// No progress on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// CRC types the benchmark can use (the primary block needs one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum BenchCrc {
    Crc16,
    Crc32c,
}

impl BenchCrc {
    fn name(self) -> &'static str {
        match self {
            BenchCrc::Crc16 => "crc16",
            BenchCrc::Crc32c => "crc32c",
        }
    }

    fn native(self) -> deepmail_bundle::CrcType {
        match self {
            BenchCrc::Crc16 => deepmail_bundle::CrcType::Crc16,
            BenchCrc::Crc32c => deepmail_bundle::CrcType::Crc32c,
        }
    }

    fn wit(self) -> types::CrcType {
        match self {
            BenchCrc::Crc16 => types::CrcType::Crc16,
            BenchCrc::Crc32c => types::CrcType::Crc32c,
        }
    }
}

/// Which fragmenter a cell measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Impl {
    /// `deepmail-bundle`, called in this process.
    Native,
    /// The fragmenter plugin in use, through the WebAssembly host.
    Plugin,
}

impl Impl {
    fn name(self) -> &'static str {
        match self {
            Impl::Native => "native",
            Impl::Plugin => "plugin",
        }
    }
}

fn parse_crc(s: &str) -> Result<BenchCrc, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "crc16" => Ok(BenchCrc::Crc16),
        "crc32c" => Ok(BenchCrc::Crc32c),
        "none" => {
            Err("the primary block needs a CRC (RFC 9171 §4.3.1); use crc16 or crc32c".into())
        }
        _ => Err("expected crc16 or crc32c".into()),
    }
}

/// `1024`, `1KiB`, `64K`, `16MiB`, `2M`: a byte count.
fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "`{s}` is not a size: expected a number of bytes, optionally with KiB or MiB, e.g. 64KiB"
        ));
    }
    let n: u64 = digits.parse().map_err(|_| format!("`{s}` is too large"))?;
    let scale = match unit.trim() {
        "" | "B" | "b" => 1,
        "K" | "k" | "KiB" | "kiB" | "KIB" | "kib" => KIB,
        "M" | "m" | "MiB" | "MIB" | "mib" => MIB,
        "KB" | "kB" | "kb" | "MB" | "mb" => {
            return Err(format!(
            "`{s}`: decimal units are ambiguous here; use KiB (1024 bytes) or MiB (1048576 bytes)"
        ))
        }
        other => {
            return Err(format!(
                "`{s}`: unknown unit `{other}`; use a number of bytes, KiB or MiB, e.g. 64KiB"
            ))
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{s}` is too large"))
}

fn parse_adu_size(s: &str) -> Result<u64, String> {
    match parse_bytes(s)? {
        0 => Err("an ADU of 0 bytes has nothing to fragment; use at least 1".into()),
        n if n > MAX_ADU => Err(format!(
            "`{s}` is more than the benchmark's largest ADU, {}",
            human_bytes(MAX_ADU)
        )),
        n => Ok(n),
    }
}

fn parse_mtu(s: &str) -> Result<u64, String> {
    match parse_bytes(s)? {
        0 => Err("an MTU of 0 bytes fits no bundle".into()),
        n => Ok(n),
    }
}

/// `1 KiB`, `16 MiB`, `1000 B`.
fn human_bytes(n: u64) -> String {
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

/// A duration for people: ns, µs, ms or s with three significant digits.
fn human_time(ns: f64) -> String {
    let (v, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let digits = if v < 10.0 {
        2
    } else if v < 100.0 {
        1
    } else {
        0
    };
    format!("{v:.digits$} {unit}")
}

/// The grid, after defaults and `--quick`.
struct Plan {
    sizes: Vec<u64>,
    mtus: Vec<u64>,
    crcs: Vec<BenchCrc>,
    impls: Vec<Impl>,
    min_time: Duration,
    min_samples: usize,
    reassemble: bool,
}

impl Plan {
    fn new(args: &FragmentBenchArgs) -> anyhow::Result<Plan> {
        let pick = |given: &[u64], quick: &[u64], default: &[u64]| -> Vec<u64> {
            let mut v = if !given.is_empty() {
                given.to_vec()
            } else if args.quick {
                quick.to_vec()
            } else {
                default.to_vec()
            };
            v.sort_unstable();
            v.dedup();
            v
        };
        let mut crcs = if !args.crcs.is_empty() {
            args.crcs.clone()
        } else if args.quick {
            vec![BenchCrc::Crc32c]
        } else {
            vec![BenchCrc::Crc16, BenchCrc::Crc32c]
        };
        crcs.sort_unstable();
        crcs.dedup();
        let mut impls = if args.impls.is_empty() {
            vec![Impl::Native, Impl::Plugin]
        } else {
            args.impls.clone()
        };
        impls.sort_unstable();
        impls.dedup();
        if args.min_samples == 0 {
            bail!("--min-samples must be at least 1");
        }
        let min_time_ms = args.min_time_ms.unwrap_or(if args.quick {
            QUICK_MIN_TIME_MS
        } else {
            DEFAULT_MIN_TIME_MS
        });
        Ok(Plan {
            sizes: pick(&args.sizes, QUICK_SIZES, DEFAULT_SIZES),
            mtus: pick(&args.mtus, QUICK_MTUS, DEFAULT_MTUS),
            crcs,
            impls,
            min_time: Duration::from_millis(min_time_ms),
            min_samples: args.min_samples,
            reassemble: args.reassemble,
        })
    }

    fn cells(&self) -> usize {
        self.sizes.len() * self.mtus.len() * self.crcs.len() * self.impls.len()
    }

    fn largest_adu(&self) -> u64 {
        self.sizes.iter().copied().max().unwrap_or(0)
    }
}

/// A mail-like ADU: 76-column CRLF lines, some starting with a dot.
fn sample_adu(size: usize) -> Vec<u8> {
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

fn native_spec(crc: BenchCrc) -> deepmail_bundle::BundleSpec {
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

fn plugin_spec(crc: BenchCrc) -> BundleSpec {
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
enum Subject<'a> {
    Native,
    Plugin(&'a Fragmenter),
}

impl Subject<'_> {
    fn fragment(&self, adu: &[u8], crc: BenchCrc, mtu: u64) -> Result<Vec<Vec<u8>>, String> {
        match self {
            Subject::Native => {
                let mtu = usize::try_from(mtu).unwrap_or(usize::MAX);
                deepmail_bundle::fragment_adu(adu, &native_spec(crc), mtu)
                    .map_err(|e| e.to_string())
            }
            Subject::Plugin(f) => f
                .fragment_adu(adu, &plugin_spec(crc), mtu)
                .map_err(|e| e.to_string()),
        }
    }

    /// Reassembles `bundles` (in order) with this implementation's reassembler.
    fn reassemble(&self, bundles: &[Vec<u8>], limits: ReassemblyLimits) -> Result<Vec<u8>, String> {
        let now = CREATION_TIME + 1;
        let mut delivered = None;
        match self {
            Subject::Native => {
                let mut r = Reassembler::new(limits);
                for b in bundles {
                    if let Some(d) = r.push(b, now).map_err(|e| e.to_string())? {
                        delivered = Some(d.adu);
                    }
                }
            }
            Subject::Plugin(f) => {
                let mut session = f
                    .reassembler(types::ReassemblyLimits {
                        max_adu_bytes: limits.max_adu_bytes,
                        max_pending_bytes: limits.max_pending_bytes,
                        max_pending_bundles: limits.max_pending_bundles,
                    })
                    .map_err(|e| e.to_string())?;
                for b in bundles {
                    if let Some(d) = session.push(b, now).map_err(|e| e.to_string())? {
                        delivered = Some(d.adu);
                    }
                }
            }
        }
        delivered.ok_or_else(|| format!("{} bundle(s) pushed, no ADU delivered", bundles.len()))
    }
}

/// Checks one fragmenter output against the ADU with the native
/// (reference) reassembler: every bundle fits the MTU, and the bundles
/// deliver exactly one ADU, equal to the input, on the last push.
fn check_bundles(
    adu: &[u8],
    bundles: &[Vec<u8>],
    mtu: u64,
    limits: ReassemblyLimits,
) -> Result<(), String> {
    if bundles.is_empty() {
        return Err("no bundles".into());
    }
    if let Some((i, b)) = bundles
        .iter()
        .enumerate()
        .find(|(_, b)| b.len() as u64 > mtu)
    {
        return Err(format!(
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
                return Err(format!(
                    "bundle {} of {} is refused by the reference reassembler: {e}",
                    i + 1,
                    bundles.len()
                ))
            }
        }
    }
    match delivered.as_slice() {
        [] => Err(format!(
            "the {} bundles do not reassemble: {} byte(s) still missing",
            bundles.len(),
            adu.len() as u64 - r.pending().bytes.min(adu.len() as u64)
        )),
        [(i, got)] if *i + 1 == bundles.len() && got == adu => Ok(()),
        [(_, got)] if got != adu => Err(format!(
            "the bundles reassemble to {} bytes that differ from the {}-byte ADU{}",
            got.len(),
            adu.len(),
            got.iter()
                .zip(adu)
                .position(|(a, b)| a != b)
                .map(|p| format!(" (first difference at byte {p})"))
                .unwrap_or_default()
        )),
        [(i, _)] => Err(format!(
            "the ADU is complete after bundle {} of {}; the rest are extra",
            i + 1,
            bundles.len()
        )),
        more => Err(format!(
            "the bundles deliver {} ADUs instead of one",
            more.len()
        )),
    }
}

/// The result of one cell.
struct Cell {
    implementation: Impl,
    adu_bytes: u64,
    mtu: u64,
    crc: BenchCrc,
    outcome: Result<Measured, String>,
}

struct Measured {
    bundles: usize,
    wire_bytes: u64,
    largest_bundle: usize,
    /// Timed samples, each of `calls_per_sample` calls.
    samples: usize,
    calls_per_sample: usize,
    fragment: Stats,
    reassemble: Option<Stats>,
}

/// Time per call of one timed operation over the samples, ns.
struct Stats {
    median_ns: f64,
    min_ns: f64,
    max_ns: f64,
}

impl Stats {
    /// From per-call times in ns, one per sample.
    fn of(mut samples: Vec<f64>) -> Stats {
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
    fn mb_per_s(&self, adu_bytes: u64) -> f64 {
        adu_bytes as f64 / self.median_ns * 1e3
    }
}

impl Measured {
    /// Timed calls in all.
    fn iterations(&self) -> usize {
        self.samples * self.calls_per_sample
    }

    fn overhead(&self, adu_bytes: u64) -> f64 {
        (self.wire_bytes as f64 - adu_bytes as f64) / adu_bytes as f64
    }

    fn bundles_per_s(&self) -> f64 {
        self.bundles as f64 / self.fragment.median_ns * 1e9
    }
}

/// Checks, then times, one cell.
fn measure(
    subject: &Subject<'_>,
    adu: &[u8],
    mtu: u64,
    crc: BenchCrc,
    plan: &Plan,
    limits: ReassemblyLimits,
) -> Result<Measured, String> {
    // The first run warms up (instances, caches) and is checked, not timed.
    let bundles = subject.fragment(adu, crc, mtu)?;
    check_bundles(adu, &bundles, mtu, limits)?;
    if plan.reassemble {
        let back = subject.reassemble(&bundles, limits)?;
        if back != adu {
            return Err(format!(
                "its reassembler returned {} bytes that differ from the {}-byte ADU",
                back.len(),
                adu.len()
            ));
        }
    }
    let wire_bytes = bundles.iter().map(|b| b.len() as u64).sum();
    let largest_bundle = bundles.iter().map(Vec::len).max().unwrap_or(0);
    let count = bundles.len();
    let deterministic = |got: &[Vec<u8>]| {
        if got.len() == count {
            Ok(())
        } else {
            Err(format!(
                "not deterministic: {count} bundles on the first run, {} on a later one",
                got.len()
            ))
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
                return Err(format!(
                    "its reassembler returned {} bytes for the {}-byte ADU",
                    b.len(),
                    adu.len()
                ));
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
struct Progress {
    mode: ProgressMode,
    total: usize,
    done: usize,
    started: Instant,
}

#[derive(PartialEq, Eq)]
enum ProgressMode {
    Off,
    Bar,
    Lines,
}

impl Progress {
    fn new(quiet: bool, total: usize) -> Progress {
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

    fn draw_bar(&self, label: &str) {
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

    fn start(&self, label: &str) {
        if self.mode == ProgressMode::Bar {
            self.draw_bar(label);
        }
    }

    fn finish(&mut self, label: &str, summary: &str) {
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

    fn end(&self) {
        if self.mode == ProgressMode::Bar {
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r\x1b[K");
            let _ = err.flush();
        }
    }
}

pub(crate) fn run(stages: &Stages, args: FragmentBenchArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(&args)?;
    let source = stages.source(Stage::Fragmenter)?;
    let fragmenter = if plan.impls.contains(&Impl::Plugin) {
        let loaded = Fragmenter::load(&stages.host, &source).map_err(|e| {
            let chosen = match stages.chosen(Stage::Fragmenter) {
                Some(_) => format!("--plugin fragmenter={source}"),
                None => format!("the default fragmenter {source}"),
            };
            anyhow::anyhow!(
                "{chosen}: {e}; give a component exporting the fragmenter interface, or measure only --impl native"
            )
        })?;
        Some(loaded)
    } else {
        None
    };
    let largest = plan.largest_adu();
    let limits = ReassemblyLimits {
        max_adu_bytes: largest,
        max_pending_bytes: largest.saturating_mul(2),
        max_pending_bundles: 64,
    };
    if cfg!(debug_assertions) && !args.quiet {
        eprintln!("deepmail: note: a debug build; for numbers worth comparing use a release build (cargo run --release)");
    }

    let mut progress = Progress::new(args.quiet, plan.cells());
    let mut cells = Vec::new();
    for &adu_bytes in &plan.sizes {
        let adu = sample_adu(usize::try_from(adu_bytes).context("ADU size")?);
        for &crc in &plan.crcs {
            for &mtu in &plan.mtus {
                for &implementation in &plan.impls {
                    let subject = match (implementation, &fragmenter) {
                        (Impl::Plugin, Some(f)) => Subject::Plugin(f),
                        _ => Subject::Native,
                    };
                    let label = format!(
                        "{} {} MTU {mtu} {}",
                        implementation.name(),
                        human_bytes(adu_bytes),
                        crc.name()
                    );
                    progress.start(&label);
                    let outcome = measure(&subject, &adu, mtu, crc, &plan, limits);
                    let summary = match &outcome {
                        Ok(m) => format!(
                            "{} median, {:.1} MB/s, {} bundle(s)",
                            human_time(m.fragment.median_ns),
                            m.fragment.mb_per_s(adu_bytes),
                            m.bundles
                        ),
                        Err(e) => format!("FAILED: {e}"),
                    };
                    progress.finish(&label, &summary);
                    cells.push(Cell {
                        implementation,
                        adu_bytes,
                        mtu,
                        crc,
                        outcome,
                    });
                }
            }
        }
    }
    progress.end();

    let plugin_label = match &fragmenter {
        Some(f) => format!(
            "{} ({} {})",
            f.info().source,
            f.info().name,
            f.info().version
        ),
        None => source.to_string(),
    };
    let table = render_table(&cells, &plan, &plugin_label);
    let json_to_stdout = args.json.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if json_to_stdout {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    if let Some(path) = &args.json {
        let doc = render_json(&cells, &plan, &source.to_string(), fragmenter.as_ref());
        let mut text = serde_json::to_string_pretty(&doc)?;
        text.push('\n');
        write_output(Some(path), text.as_bytes())?;
    }
    if let Some(path) = &args.svg {
        let svg = render_svg(&cells, &plan, &plugin_label);
        write_output(Some(path), svg.as_bytes())?;
    }
    let failed = cells.iter().filter(|c| c.outcome.is_err()).count();
    if failed > 0 {
        eprintln!(
            "deepmail: bench fragment: {failed} of {} cells failed (see the table)",
            cells.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The same cell measured natively, for the ratio column.
fn native_twin<'a>(cells: &'a [Cell], c: &Cell) -> Option<&'a Measured> {
    cells
        .iter()
        .find(|n| {
            n.implementation == Impl::Native
                && n.adu_bytes == c.adu_bytes
                && n.mtu == c.mtu
                && n.crc == c.crc
        })
        .and_then(|n| n.outcome.as_ref().ok())
}

/// Plugin median time over native median time, for fragment and reassembly.
fn ratios(cells: &[Cell], c: &Cell) -> (Option<f64>, Option<f64>) {
    if c.implementation != Impl::Plugin {
        return (None, None);
    }
    let (Ok(p), Some(n)) = (c.outcome.as_ref(), native_twin(cells, c)) else {
        return (None, None);
    };
    let fragment = p.fragment.median_ns / n.fragment.median_ns;
    let reassemble = match (&p.reassemble, &n.reassemble) {
        (Some(p), Some(n)) => Some(p.median_ns / n.median_ns),
        _ => None,
    };
    (Some(fragment), reassemble)
}

fn render_table(cells: &[Cell], plan: &Plan, plugin_label: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "fragment ADU -> BPv7 bundles <= MTU (RFC 9171 §5.8){}; median of >= {} samples and >= {} ms per cell",
        if plan.reassemble { ", then reassemble (§5.9)" } else { "" },
        plan.min_samples,
        plan.min_time.as_millis()
    );
    if plan.impls.contains(&Impl::Plugin) {
        let _ = writeln!(
            out,
            "plugin = {plugin_label}; native = deepmail-bundle in this process"
        );
    }
    let _ = writeln!(
        out,
        "MB/s = 10^6 ADU bytes per second; overhead = (bundle bytes - ADU bytes) / ADU bytes; plugin/native = time ratio\n"
    );
    let mut header = format!(
        "{:>8} {:>6} {:<6} {:<6} {:>7} {:>8} {:>8} {:>10} {:>9} {:>10}",
        "ADU",
        "MTU",
        "CRC",
        "impl",
        "bundles",
        "overhead",
        "iters",
        "fragment",
        "MB/s",
        "bundles/s"
    );
    if plan.reassemble {
        let _ = write!(header, " {:>10} {:>9}", "reassemble", "MB/s");
    }
    if plan.impls.len() > 1 {
        let _ = write!(header, " {:>13}", "plugin/native");
        if plan.reassemble {
            let _ = write!(header, " {:>12}", "(reassemble)");
        }
    }
    let _ = writeln!(out, "{header}");
    let _ = writeln!(out, "{}", "-".repeat(header.chars().count()));
    let mut failures = Vec::new();
    for c in cells {
        let _ = write!(
            out,
            "{:>8} {:>6} {:<6} {:<6}",
            human_bytes(c.adu_bytes),
            c.mtu,
            c.crc.name(),
            c.implementation.name()
        );
        match &c.outcome {
            Ok(m) => {
                let _ = write!(
                    out,
                    " {:>7} {:>8.4} {:>8} {:>10} {:>9.1} {:>10.0}",
                    m.bundles,
                    m.overhead(c.adu_bytes),
                    m.iterations(),
                    human_time(m.fragment.median_ns),
                    m.fragment.mb_per_s(c.adu_bytes),
                    m.bundles_per_s()
                );
                if let Some(r) = &m.reassemble {
                    let _ = write!(
                        out,
                        " {:>10} {:>9.1}",
                        human_time(r.median_ns),
                        r.mb_per_s(c.adu_bytes)
                    );
                }
                let (fragment, reassemble) = ratios(cells, c);
                if let Some(f) = fragment {
                    let _ = write!(out, " {:>12.2}x", f);
                }
                if let Some(r) = reassemble {
                    let _ = write!(out, " {:>11.2}x", r);
                }
            }
            Err(e) => {
                failures.push(format!(
                    "{} {} MTU {} {}: {e}",
                    c.implementation.name(),
                    human_bytes(c.adu_bytes),
                    c.mtu,
                    c.crc.name()
                ));
                let _ = write!(out, "  FAILED ({})", failures.len());
            }
        }
        out.push('\n');
    }
    if !failures.is_empty() {
        out.push('\n');
    }
    for (i, f) in failures.iter().enumerate() {
        let _ = writeln!(out, "FAILED ({}): {f}", i + 1);
    }
    out
}

/// What the machine is, as far as the numbers depend on it.
fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    });
    json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "cpu": cpu,
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

fn stats_json(s: Option<&Stats>, adu_bytes: u64) -> Value {
    match s {
        Some(s) => json!({
            "median_ns": s.median_ns, "min_ns": s.min_ns, "max_ns": s.max_ns,
            "mb_per_s": s.mb_per_s(adu_bytes),
        }),
        None => Value::Null,
    }
}

fn render_json(cells: &[Cell], plan: &Plan, source: &str, plugin: Option<&Fragmenter>) -> Value {
    let cells: Vec<Value> = cells
        .iter()
        .map(|c| {
            let (fragment_ratio, reassemble_ratio) = ratios(cells, c);
            let mut v = json!({
                "impl": c.implementation.name(),
                "adu_bytes": c.adu_bytes,
                "mtu": c.mtu,
                "crc": c.crc.name(),
            });
            match &c.outcome {
                Ok(m) => {
                    v["status"] = json!("ok");
                    v["bundles"] = json!(m.bundles);
                    v["wire_bytes"] = json!(m.wire_bytes);
                    v["largest_bundle"] = json!(m.largest_bundle);
                    v["overhead"] = json!(m.overhead(c.adu_bytes));
                    v["iterations"] = json!(m.iterations());
                    v["samples"] = json!(m.samples);
                    v["calls_per_sample"] = json!(m.calls_per_sample);
                    v["fragment"] = stats_json(Some(&m.fragment), c.adu_bytes);
                    v["bundles_per_s"] = json!(m.bundles_per_s());
                    v["reassemble"] = stats_json(m.reassemble.as_ref(), c.adu_bytes);
                    v["plugin_vs_native"] = json!(fragment_ratio);
                    v["plugin_vs_native_reassemble"] = json!(reassemble_ratio);
                }
                Err(e) => {
                    v["status"] = json!("failed");
                    v["error"] = json!(e);
                }
            }
            v
        })
        .collect();
    json!({
        "benchmark": "fragment",
        "deepmail": env!("CARGO_PKG_VERSION"),
        "machine": machine(),
        "plugin": match plugin {
            Some(f) => {
                let i = f.info();
                json!({"source": i.source, "name": i.name, "version": i.version, "size_bytes": i.size_bytes})
            }
            None => json!({"source": source}),
        },
        "settings": {
            "sizes": plan.sizes, "mtus": plan.mtus,
            "crcs": plan.crcs.iter().map(|c| c.name()).collect::<Vec<_>>(),
            "impls": plan.impls.iter().map(|i| i.name()).collect::<Vec<_>>(),
            "min_time_ms": plan.min_time.as_millis() as u64,
            "min_samples": plan.min_samples,
            "reassemble": plan.reassemble,
        },
        "overhead": "(sum of bundle bytes - ADU bytes) / ADU bytes",
        "mb_per_s": "10^6 ADU bytes per second at the median time",
        "plugin_vs_native": "plugin median time / native median time for the same cell",
        "cells": cells,
    })
}

/// Escapes text for SVG (XML) content and attributes.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Line colours, one per MTU (Okabe-Ito, readable by colour-blind people).
const COLOURS: &[&str] = &[
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
];

/// Axis labels for a log-scale throughput axis: 1, 2, 5 × powers of ten.
fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let mut ticks = Vec::new();
    let mut decade = 10f64.powf(lo.log10().floor());
    while decade <= hi * 1.0001 {
        for m in [1.0, 2.0, 5.0] {
            let t = decade * m;
            if t >= lo * 0.9999 && t <= hi * 1.0001 {
                ticks.push(t);
            }
        }
        decade *= 10.0;
    }
    if ticks.len() > 8 {
        ticks.retain(|t| (t.log10() - t.log10().round()).abs() < 1e-9);
    }
    ticks
}

fn format_rate(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// The chart: one panel per CRC type, fragment throughput (log scale)
/// against ADU size (log scale), one line per implementation × MTU.
fn render_svg(cells: &[Cell], plan: &Plan, plugin_label: &str) -> String {
    const PANEL_W: f64 = 480.0;
    const PANEL_H: f64 = 340.0;
    const LEFT: f64 = 78.0;
    const TOP: f64 = 78.0;
    const GAP: f64 = 40.0;
    const PLOT_W: f64 = PANEL_W - 20.0;
    const PLOT_H: f64 = PANEL_H - 60.0;
    const LEGEND_W: f64 = 190.0;

    let panels = plan.crcs.len().max(1);
    let width = LEFT + panels as f64 * PANEL_W + (panels - 1) as f64 * GAP + LEGEND_W;
    let height = TOP + PANEL_H + 30.0;

    let rates: Vec<f64> = cells
        .iter()
        .filter_map(|c| {
            c.outcome
                .as_ref()
                .ok()
                .map(|m| m.fragment.mb_per_s(c.adu_bytes))
        })
        .filter(|r| r.is_finite() && *r > 0.0)
        .collect();
    let (mut y_lo, mut y_hi) = rates.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), r| {
        (lo.min(*r), hi.max(*r))
    });
    if rates.is_empty() {
        (y_lo, y_hi) = (1.0, 1000.0);
    }
    // Whole decades around the data.
    y_lo = 10f64.powf(y_lo.log10().floor());
    y_hi = 10f64.powf(y_hi.log10().ceil());
    if y_hi <= y_lo {
        y_hi = y_lo * 10.0;
    }
    let (x_lo, x_hi) = {
        let lo = plan.sizes.first().copied().unwrap_or(1) as f64;
        let hi = plan.sizes.last().copied().unwrap_or(1) as f64;
        if hi > lo {
            (lo.log2(), hi.log2())
        } else {
            (lo.log2() - 1.0, lo.log2() + 1.0)
        }
    };
    let x_of =
        |bytes: u64| (((bytes as f64).log2() - x_lo) / (x_hi - x_lo)) * (PLOT_W - 30.0) + 15.0;
    let y_of =
        |rate: f64| PLOT_H - (rate.log10() - y_lo.log10()) / (y_hi.log10() - y_lo.log10()) * PLOT_H;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{width:.0}" height="{height:.0}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.0}" y="26" font-size="17" font-weight="bold" text-anchor="middle">{}</text>"#,
        width / 2.0,
        xml_escape("deepmail bench fragment: fragment throughput against ADU size")
    );
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let _ = writeln!(
        s,
        r##"<text x="{:.0}" y="46" text-anchor="middle" fill="#444">{}</text>"##,
        width / 2.0,
        xml_escape(&format!(
            "plugin = {plugin_label}; native = deepmail-bundle; median of >= {} samples, >= {} ms per point; {cores} cores; {} build",
            plan.min_samples,
            plan.min_time.as_millis(),
            if cfg!(debug_assertions) { "debug" } else { "release" }
        ))
    );

    for (p, crc) in plan.crcs.iter().enumerate() {
        let ox = LEFT + p as f64 * (PANEL_W + GAP);
        let _ = writeln!(s, r#"<g transform="translate({ox:.1},{TOP:.1})">"#);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="-10" text-anchor="middle" font-weight="bold">{}</text>"#,
            PLOT_W / 2.0,
            xml_escape(&format!("CRC: {}", crc.name()))
        );
        let _ = writeln!(
            s,
            r##"<rect x="0" y="0" width="{PLOT_W:.1}" height="{PLOT_H:.1}" fill="none" stroke="#888"/>"##
        );
        // Y grid and labels.
        for t in log_ticks(y_lo, y_hi) {
            let y = y_of(t);
            let _ = writeln!(
                s,
                r##"<line x1="0" y1="{y:.1}" x2="{PLOT_W:.1}" y2="{y:.1}" stroke="#ddd"/>"##
            );
            let _ = writeln!(
                s,
                r#"<text x="-6" y="{:.1}" text-anchor="end">{}</text>"#,
                y + 4.0,
                format_rate(t)
            );
        }
        // X grid and labels, one per measured size.
        for &size in &plan.sizes {
            let x = x_of(size);
            let _ = writeln!(
                s,
                r##"<line x1="{x:.1}" y1="0" x2="{x:.1}" y2="{PLOT_H:.1}" stroke="#eee"/>"##
            );
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                PLOT_H + 16.0,
                xml_escape(&human_bytes(size))
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">ADU size (log scale)</text>"#,
            PLOT_W / 2.0,
            PLOT_H + 38.0
        );
        if p == 0 {
            let _ = writeln!(
                s,
                r#"<text transform="translate(-52,{:.1}) rotate(-90)" text-anchor="middle">fragment throughput, MB/s of ADU (log scale)</text>"#,
                PLOT_H / 2.0
            );
        }
        for (m, &mtu) in plan.mtus.iter().enumerate() {
            let colour = COLOURS[m % COLOURS.len()];
            for &implementation in &plan.impls {
                let points: Vec<(f64, f64)> = cells
                    .iter()
                    .filter(|c| c.crc == *crc && c.mtu == mtu && c.implementation == implementation)
                    .filter_map(|c| {
                        let m = c.outcome.as_ref().ok()?;
                        let rate = m.fragment.mb_per_s(c.adu_bytes);
                        (rate.is_finite() && rate > 0.0).then(|| (x_of(c.adu_bytes), y_of(rate)))
                    })
                    .collect();
                if points.is_empty() {
                    continue;
                }
                let dash = match implementation {
                    Impl::Native => "",
                    Impl::Plugin => r#" stroke-dasharray="7 4""#,
                };
                let path: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = writeln!(
                    s,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{dash}><title>{}</title></polyline>"#,
                    path.join(" "),
                    xml_escape(&format!(
                        "{} MTU {mtu} {}",
                        implementation.name(),
                        crc.name()
                    ))
                );
                for (x, y) in &points {
                    let fill = match implementation {
                        Impl::Native => colour,
                        Impl::Plugin => "white",
                    };
                    let _ = writeln!(
                        s,
                        r#"<circle cx="{x:.1}" cy="{y:.1}" r="3" fill="{fill}" stroke="{colour}" stroke-width="1.5"/>"#
                    );
                }
            }
        }
        let _ = writeln!(s, "</g>");
    }

    // Legend: colour = MTU, line style = implementation.
    let lx = LEFT + panels as f64 * PANEL_W + (panels - 1) as f64 * GAP + 20.0;
    let _ = writeln!(s, r#"<g transform="translate({lx:.1},{TOP:.1})">"#);
    let _ = writeln!(
        s,
        r#"<text x="0" y="0" font-weight="bold">MTU (bytes)</text>"#
    );
    let mut y = 20.0;
    for (m, &mtu) in plan.mtus.iter().enumerate() {
        let colour = COLOURS[m % COLOURS.len()];
        let _ = writeln!(
            s,
            r#"<line x1="0" y1="{:.1}" x2="28" y2="{:.1}" stroke="{colour}" stroke-width="3"/>"#,
            y - 4.0,
            y - 4.0
        );
        let _ = writeln!(s, r#"<text x="36" y="{y:.1}">{mtu}</text>"#);
        y += 18.0;
    }
    y += 12.0;
    let _ = writeln!(
        s,
        r#"<text x="0" y="{y:.1}" font-weight="bold">implementation</text>"#
    );
    y += 20.0;
    for &implementation in &plan.impls {
        let (dash, fill) = match implementation {
            Impl::Native => ("", "#333"),
            Impl::Plugin => (r#" stroke-dasharray="7 4""#, "white"),
        };
        let _ = writeln!(
            s,
            r##"<line x1="0" y1="{:.1}" x2="28" y2="{:.1}" stroke="#333" stroke-width="2"{dash}/>"##,
            y - 4.0,
            y - 4.0
        );
        let _ = writeln!(
            s,
            r##"<circle cx="14" cy="{:.1}" r="3" fill="{fill}" stroke="#333" stroke-width="1.5"/>"##,
            y - 4.0
        );
        let _ = writeln!(
            s,
            r#"<text x="36" y="{y:.1}">{}</text>"#,
            implementation.name()
        );
        y += 18.0;
    }
    let failed = cells.iter().filter(|c| c.outcome.is_err()).count();
    if failed > 0 {
        y += 12.0;
        let _ = writeln!(
            s,
            r##"<text x="0" y="{y:.1}" fill="#b00">{failed} failed cell(s) not drawn</text>"##
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(s, "</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("1KiB"), Ok(1024));
        assert_eq!(parse_bytes("64K"), Ok(64 * 1024));
        assert_eq!(parse_bytes(" 16MiB "), Ok(16 << 20));
        assert!(parse_bytes("1MB").unwrap_err().contains("MiB"));
        assert!(parse_bytes("KiB").is_err());
        assert!(parse_bytes("12XB").unwrap_err().contains("unknown unit"));
        assert!(parse_adu_size("0").is_err());
        assert!(parse_adu_size("1024MiB").is_err());
        assert!(parse_crc("none").unwrap_err().contains("4.3.1"));
    }

    #[test]
    fn human_units() {
        assert_eq!(human_bytes(1024), "1 KiB");
        assert_eq!(human_bytes(16 << 20), "16 MiB");
        assert_eq!(human_bytes(1000), "1000 B");
        assert_eq!(human_time(1500.0), "1.50 µs");
        assert_eq!(human_time(250e6), "250 ms");
    }

    #[test]
    fn median_of_even_and_odd_counts() {
        let odd = Stats::of(vec![3.0, 1.0, 2.0]);
        assert_eq!((odd.min_ns, odd.median_ns, odd.max_ns), (1.0, 2.0, 3.0));
        assert_eq!(Stats::of(vec![4.0, 1.0, 2.0, 3.0]).median_ns, 2.5);
    }

    #[test]
    fn the_check_catches_a_wrong_fragmenter() {
        let adu = sample_adu(5000);
        let limits = ReassemblyLimits::default();
        let good = Subject::Native
            .fragment(&adu, BenchCrc::Crc32c, 1024)
            .unwrap();
        assert_eq!(check_bundles(&adu, &good, 1024, limits), Ok(()));
        // Too big for a smaller MTU.
        assert!(check_bundles(&adu, &good, 512, limits)
            .unwrap_err()
            .contains("MTU"));
        // One fragment missing.
        let short = &good[..good.len() - 1];
        assert!(check_bundles(&adu, short, 1024, limits)
            .unwrap_err()
            .contains("missing"));
        // The bundles of a different ADU.
        let mut other = adu.clone();
        other[4000] ^= 1;
        let wrong = Subject::Native
            .fragment(&other, BenchCrc::Crc32c, 1024)
            .unwrap();
        assert!(check_bundles(&adu, &wrong, 1024, limits)
            .unwrap_err()
            .contains("byte 4000"));
    }

    #[test]
    fn log_ticks_cover_the_range() {
        assert_eq!(
            log_ticks(1.0, 100.0),
            vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
        );
        assert_eq!(
            log_ticks(1.0, 1e6),
            vec![1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
        );
    }
}
