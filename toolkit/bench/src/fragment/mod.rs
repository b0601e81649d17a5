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
//! SVG chart of throughput against ADU size (`--svg`).

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use deepmail_bundle::{Eid, Reassembler, ReassemblyLimits};
use deepmail_host::types::{self, BundleSpec};
use deepmail_host::{Fragmenter, Stage};
use serde_json::{json, Value};

use crate::output::write_output;
use crate::{BenchError, CellFailure, Outcome, Stages};

mod report;
mod svg;
mod timing;

use report::*;
use svg::*;
use timing::*;
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

/// `bench fragment`: the grid, the times, the outputs.
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

/// Why a `--sizes`, `--mtus` or `--crcs` value is refused; clap prints
/// it after the flag and the value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FlagError {
    /// No digits.
    #[error(
        "`{0}` is not a size: expected a number of bytes, optionally with KiB or MiB, e.g. 64KiB"
    )]
    NotASize(String),
    /// More than a `u64` of bytes.
    #[error("`{0}` is too large")]
    TooLarge(String),
    /// kB or MB: 1000 or 1024?
    #[error(
        "`{0}`: decimal units are ambiguous here; use KiB (1024 bytes) or MiB (1048576 bytes)"
    )]
    DecimalUnit(String),
    /// A unit that is none of B, KiB, MiB.
    #[error("`{input}`: unknown unit `{unit}`; use a number of bytes, KiB or MiB, e.g. 64KiB")]
    UnknownUnit {
        /// The value given.
        input: String,
        /// Its unit.
        unit: String,
    },
    /// An ADU of 0 bytes.
    #[error("an ADU of 0 bytes has nothing to fragment; use at least 1")]
    EmptyAdu,
    /// An ADU over [`MAX_ADU`].
    #[error("`{0}` is more than the benchmark's largest ADU, {largest}", largest = human_bytes(MAX_ADU))]
    AduTooLarge(String),
    /// An MTU of 0 bytes.
    #[error("an MTU of 0 bytes fits no bundle")]
    ZeroMtu,
    /// `none`: the primary block needs a CRC.
    #[error("the primary block needs a CRC (RFC 9171 §4.3.1); use crc16 or crc32c")]
    NoCrc,
    /// Not a CRC type.
    #[error("expected crc16 or crc32c")]
    UnknownCrc,
}

fn parse_crc(s: &str) -> Result<BenchCrc, FlagError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "crc16" => Ok(BenchCrc::Crc16),
        "crc32c" => Ok(BenchCrc::Crc32c),
        "none" => Err(FlagError::NoCrc),
        _ => Err(FlagError::UnknownCrc),
    }
}

/// `1024`, `1KiB`, `64K`, `16MiB`, `2M`: a byte count.
fn parse_bytes(s: &str) -> Result<u64, FlagError> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(FlagError::NotASize(s.into()));
    }
    let n: u64 = digits.parse().map_err(|_| FlagError::TooLarge(s.into()))?;
    let scale = match unit.trim() {
        "" | "B" | "b" => 1,
        "K" | "k" | "KiB" | "kiB" | "KIB" | "kib" => KIB,
        "M" | "m" | "MiB" | "MIB" | "mib" => MIB,
        "KB" | "kB" | "kb" | "MB" | "mb" => return Err(FlagError::DecimalUnit(s.into())),
        other => {
            return Err(FlagError::UnknownUnit {
                input: s.into(),
                unit: other.into(),
            })
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| FlagError::TooLarge(s.into()))
}

fn parse_adu_size(s: &str) -> Result<u64, FlagError> {
    match parse_bytes(s)? {
        0 => Err(FlagError::EmptyAdu),
        n if n > MAX_ADU => Err(FlagError::AduTooLarge(s.into())),
        n => Ok(n),
    }
}

fn parse_mtu(s: &str) -> Result<u64, FlagError> {
    match parse_bytes(s)? {
        0 => Err(FlagError::ZeroMtu),
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
    fn new(args: &FragmentBenchArgs) -> Result<Plan, BenchError> {
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
            return Err(BenchError::BadArgument(
                "--min-samples must be at least 1".into(),
            ));
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

pub(crate) fn run(stages: &Stages, args: FragmentBenchArgs) -> Result<Outcome, BenchError> {
    let plan = Plan::new(&args)?;
    let source = stages.source(Stage::Fragmenter)?;
    let fragmenter = if plan.impls.contains(&Impl::Plugin) {
        let loaded = Fragmenter::load(&stages.host, &source).map_err(|error| {
            let chosen = match stages.chosen(Stage::Fragmenter) {
                Some(_) => format!("--plugin fragmenter={source}"),
                None => format!("the default fragmenter {source}"),
            };
            BenchError::NotAFragmenter { chosen, error }
        })?;
        Some(loaded)
    } else {
        None
    };
    let bp_version = fragmenter
        .as_ref()
        .map_or(7, deepmail_conformance::bundle_version);
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
        let adu = sample_adu(usize::try_from(adu_bytes).map_err(|_| {
            BenchError::BadArgument(format!(
                "an ADU of {adu_bytes} bytes does not fit in memory"
            ))
        })?);
        for &crc in &plan.crcs {
            for &mtu in &plan.mtus {
                for &implementation in &plan.impls {
                    let subject = match (implementation, &fragmenter) {
                        (Impl::Plugin, Some(f)) => Subject::Plugin(f, bp_version),
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
    let table = render_table(&cells, &plan, &plugin_label, bp_version);
    let json_to_stdout = args.json.as_ref().is_some_and(|p| p.as_os_str() == "-");
    if json_to_stdout {
        eprint!("{table}");
    } else {
        print!("{table}");
    }
    if let Some(path) = &args.json {
        let doc = render_json(
            &cells,
            &plan,
            &source.to_string(),
            fragmenter.as_ref(),
            bp_version,
        );
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
        return Ok(Outcome::Failed);
    }
    Ok(Outcome::Passed)
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
        assert!(parse_bytes("1MB").unwrap_err().to_string().contains("MiB"));
        assert!(parse_bytes("KiB").is_err());
        assert!(parse_bytes("12XB")
            .unwrap_err()
            .to_string()
            .contains("unknown unit"));
        assert!(parse_adu_size("0").is_err());
        assert!(parse_adu_size("1024MiB").is_err());
        assert!(parse_crc("none").unwrap_err().to_string().contains("4.3.1"));
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
        check_bundles(&adu, &good, 1024, limits).unwrap();
        // Too big for a smaller MTU.
        assert!(check_bundles(&adu, &good, 512, limits)
            .unwrap_err()
            .to_string()
            .contains("MTU"));
        // One fragment missing.
        let short = &good[..good.len() - 1];
        assert!(check_bundles(&adu, short, 1024, limits)
            .unwrap_err()
            .to_string()
            .contains("missing"));
        // The bundles of a different ADU.
        let mut other = adu.clone();
        other[4000] ^= 1;
        let wrong = Subject::Native
            .fragment(&other, BenchCrc::Crc32c, 1024)
            .unwrap();
        assert!(check_bundles(&adu, &wrong, 1024, limits)
            .unwrap_err()
            .to_string()
            .contains("byte 4000"));
    }
}
