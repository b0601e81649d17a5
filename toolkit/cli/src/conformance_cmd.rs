//! `conformance`: run the vectors against the default plugins, a user's
//! `.wasm`, or an external program speaking the adapter protocol.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use deepmail_conformance::{
    run, ExpectedFailures, ExternalImplementation, Implementation, RunOptions, Suite,
    WasmImplementation,
};

use deepmail_bench::Stages;

/// Which stages to check.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub(crate) enum StageChoice {
    All,
    Codec,
    Fragmenter,
    Resolver,
}

#[derive(Args)]
pub(crate) struct ConformanceArgs {
    /// Stages to check.
    #[arg(long, value_enum, default_value_t = StageChoice::All)]
    stage: StageChoice,
    /// Check an external program instead of plugins: the command line that
    /// starts it (split on spaces); it speaks the adapter protocol of vectors/README.md.
    #[arg(long, value_name = "COMMAND")]
    adapter: Option<String>,
    /// Known gaps of the implementation: a JSON file listing case ids and reasons.
    #[arg(long, value_name = "FILE")]
    expected_failures: Option<PathBuf>,
    /// Vector directory (default: the suite embedded in this binary).
    #[arg(long, value_name = "DIR")]
    vectors: Option<PathBuf>,
    /// Only cases whose id, manifest, stage or operation contains TEXT.
    #[arg(long, value_name = "TEXT")]
    filter: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// Also write the report as JUnit XML to FILE (a test suite per
    /// manifest, a test case per vector), for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// List passing cases too.
    #[arg(short, long)]
    verbose: bool,
    /// Also fail on unexpected passes (an expected-failures entry that no longer fails).
    #[arg(long)]
    strict: bool,
}

pub(crate) fn run_cmd(stages: &Stages, args: ConformanceArgs) -> anyhow::Result<ExitCode> {
    let suite = match &args.vectors {
        Some(dir) => Suite::load(dir)?,
        None => Suite::embedded()?,
    };
    let mut implementation: Box<dyn Implementation> = match &args.adapter {
        Some(command) => Box::new(ExternalImplementation::from_command_line(command)?),
        None => {
            let all = args.stage == StageChoice::All;
            let codec = (all || args.stage == StageChoice::Codec)
                .then(|| stages.codec())
                .transpose()?;
            let fragmenter = (all || args.stage == StageChoice::Fragmenter)
                .then(|| stages.fragmenter())
                .transpose()?;
            let resolver = (all || args.stage == StageChoice::Resolver)
                .then(|| -> anyhow::Result<_> {
                    let source = stages.source(deepmail_host::Stage::Resolver)?;
                    Ok(deepmail_host::Resolver::load(
                        &stages.host,
                        &source,
                        vec![],
                    )?)
                })
                .transpose()?;
            Box::new(WasmImplementation::with_resolver(
                codec, fragmenter, resolver,
            ))
        }
    };
    let options = RunOptions {
        filter: args.filter.clone(),
        expected_failures: match &args.expected_failures {
            Some(path) => ExpectedFailures::load(path)?,
            None => ExpectedFailures::default(),
        },
    };
    let mut report = run(&suite, implementation.as_mut(), &options);
    if args.stage != StageChoice::All && args.adapter.is_none() {
        let wanted = match args.stage {
            StageChoice::Codec => "bsmtp-codec",
            StageChoice::Fragmenter => "fragmenter",
            _ => "resolver",
        };
        report = report.only_stage(wanted);
    }
    if let Some(path) = &args.junit {
        std::fs::write(path, report.junit())
            .with_context(|| format!("cannot write the JUnit report to {}", path.display()))?;
    }
    print!("{}", report.render(args.json, args.verbose)?);
    Ok(if report.conforms(args.strict) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
