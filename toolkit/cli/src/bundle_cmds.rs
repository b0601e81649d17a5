//! `fragment`, `reassemble` and `inspect`: the fragmenter stage on files.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use deepmail_bench::bundle_options::{dtn_now, BundleOptions};
use deepmail_bench::bundles;
use deepmail_bench::output::{write_directory, write_output};
use deepmail_bench::reassembly::{limits_for, reassemble_files};
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

pub(crate) fn fragment(stages: &Stages, args: FragmentArgs) -> anyhow::Result<()> {
    let input = read_input(&args.input)?;
    let fragmenter = stages.fragmenter()?;
    let spec = args.spec.spec();
    let bundles = bundles::fragment(
        &fragmenter,
        &input,
        args.bundle,
        &spec,
        args.mtu,
        &args.input,
    )?;
    write_directory(&args.output, &bundles::bundle_files(&bundles))?;
    let summary = bundles::fragment_summary(input.len(), &bundles, &args.output);
    eprintln!("deepmail: {summary}");
    Ok(())
}

pub(crate) fn reassemble(stages: &Stages, args: ReassembleArgs) -> anyhow::Result<()> {
    let fragmenter = stages.fragmenter()?;
    let now = args.now.unwrap_or_else(dtn_now);
    let adu = reassemble_files(&fragmenter, &args.bundles, limits_for(args.max_adu), now)?;
    Ok(write_output(args.output.as_deref(), &adu)?)
}

pub(crate) fn inspect(stages: &Stages, args: InspectArgs) -> anyhow::Result<ExitCode> {
    let fragmenter = stages.fragmenter()?;
    let found = bundles::inspect_files(&fragmenter, &args.bundles, |path, e| {
        eprintln!("deepmail: {}: {e}", path.display())
    })?;
    println!("{}", serde_json::to_string_pretty(&found.doc)?);
    Ok(if found.invalid == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
