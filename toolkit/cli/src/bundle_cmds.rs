//! `fragment`, `reassemble` and `inspect`: the fragmenter stage on files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use deepmail_host::types::{BundleInfo, ReassemblyLimits};
use serde_json::{json, Value};

use deepmail_bench::bundle_options::{dtn_now, BundleOptions};
use deepmail_bench::output::{write_directory, write_output};
use deepmail_bench::reassembly::reassemble_files;
use deepmail_bench::{read_input, Stages};

#[derive(Args)]
pub(crate) struct FragmentArgs {
    /// The payload (ADU), e.g. a .bsmtp file; with --bundle, an existing bundle to re-fragment.
    #[arg(value_name = "FILE")]
    input: PathBuf,
    /// Largest bundle to produce, in bytes (the link's MTU).
    #[arg(long, value_name = "BYTES", default_value_t = 65_536)]
    mtu: u64,
    /// FILE is already a bundle (or fragment): fragment it further, keeping its offsets.
    #[arg(long)]
    bundle: bool,
    #[command(flatten)]
    spec: BundleOptions,
    /// Directory to write NNNN.bundle files into (must be new or empty).
    #[arg(short, long, value_name = "DIR")]
    output: PathBuf,
}

#[derive(Args)]
pub(crate) struct ReassembleArgs {
    /// Bundle files, in any order; duplicates are fine.
    #[arg(required = true, value_name = "BUNDLE")]
    bundles: Vec<PathBuf>,
    /// Where to write the payload (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Largest ADU to reassemble, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    max_adu: u64,
    /// Time of arrival, DTN ms (default: now); bundles whose lifetime ended before it are refused.
    #[arg(long, value_name = "DTN_MS")]
    now: Option<u64>,
}

#[derive(Args)]
pub(crate) struct InspectArgs {
    /// Bundle files.
    #[arg(required = true, value_name = "BUNDLE")]
    bundles: Vec<PathBuf>,
}

pub(crate) fn info_json(i: &BundleInfo) -> Value {
    deepmail_conformance::bundle_info_json(i)
}

pub(crate) fn fragment(stages: &Stages, args: FragmentArgs) -> anyhow::Result<()> {
    let input = read_input(&args.input)?;
    let fragmenter = stages.fragmenter()?;
    let bundles = if args.bundle {
        fragmenter.fragment(&input, args.mtu)
    } else {
        fragmenter.fragment_adu(&input, &args.spec.spec(), args.mtu)
    }
    .map_err(|e| anyhow::anyhow!("fragmenting {} failed: {e}", args.input.display()))?;
    let files: Vec<(String, Vec<u8>)> = bundles
        .iter()
        .enumerate()
        .map(|(i, b)| (format!("{:04}.bundle", i + 1), b.clone()))
        .collect();
    write_directory(&args.output, &files)?;
    let total: usize = bundles.iter().map(Vec::len).sum();
    eprintln!(
        "deepmail: {} bytes -> {} bundle(s), {} bytes on the wire ({:.2}% overhead), in {}",
        input.len(),
        bundles.len(),
        total,
        if input.is_empty() {
            0.0
        } else {
            (total as f64 / input.len() as f64 - 1.0) * 100.0
        },
        args.output.display()
    );
    Ok(())
}

pub(crate) fn reassemble(stages: &Stages, args: ReassembleArgs) -> anyhow::Result<()> {
    let fragmenter = stages.fragmenter()?;
    let max = args.max_adu.saturating_mul(1 << 20);
    let limits = ReassemblyLimits {
        max_adu_bytes: max,
        max_pending_bytes: max.saturating_mul(2),
        max_pending_bundles: 64,
    };
    let now = args.now.unwrap_or_else(dtn_now);
    let adu = reassemble_files(&fragmenter, &args.bundles, limits, now)?;
    Ok(write_output(args.output.as_deref(), &adu)?)
}

pub(crate) fn inspect(stages: &Stages, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let fragmenter = stages.fragmenter()?;
    let mut out = Vec::new();
    let mut bad = 0;
    for path in &args.bundles {
        let bytes = read_input(path).with_context(|| format!("reading {}", path.display()))?;
        let mut v = match fragmenter.inspect(&bytes) {
            Ok(info) => info_json(&info),
            Err(e) => {
                bad += 1;
                eprintln!("deepmail: {}: {e}", path.display());
                json!({"error": {"code": e.code, "message": e.message, "offset": e.offset}})
            }
        };
        v["file"] = json!(path.display().to_string());
        v["size"] = json!(bytes.len());
        out.push(v);
    }
    let doc = if out.len() == 1 {
        out.remove(0)
    } else {
        Value::Array(out)
    };
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
