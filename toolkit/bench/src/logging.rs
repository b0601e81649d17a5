//! The gateways' logs on stderr (`gateway --log-format`, `demo --verbose`,
//! `bench contact --log-level`).

use clap::ValueEnum;

use crate::BenchError;

/// Log line format.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the tracing subscriber (stderr).
pub fn init_logging(format: LogFormat, level: &str) -> Result<(), BenchError> {
    let level: tracing::Level = level.parse().map_err(|_| {
        BenchError::BadArgument(format!(
            "--log-level {level}: one of error, warn, info, debug, trace"
        ))
    })?;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    result.map_err(BenchError::Logging)
}
