//! `encode` and `decode`: the codec stage on files.

use std::path::PathBuf;

use clap::Args;
use deepmail_host::types::{EncodeOptions, Greeting};

use deepmail_bench::mail::{
    decode_batch, eml_files, message_line, messages_from_files, messages_json, Body, Dialect,
    EnvelopeFlags,
};
use deepmail_bench::output::{write_directory, write_output};
use deepmail_bench::{read_input, Stages};

use crate::Format;

#[derive(Args)]
pub(crate) struct EncodeArgs {
    /// RFC 5322 message file(s); `-` reads standard input. Several files make one batch.
    #[arg(required = true, value_name = "MESSAGE")]
    input: Vec<PathBuf>,
    /// Envelope sender (MAIL FROM). `<>` is the null reverse-path. Default:
    /// the message's Return-Path, else its From address.
    #[arg(long, value_name = "ADDRESS")]
    from: Option<String>,
    /// Envelope recipient (RCPT TO), repeatable. Default: the To and Cc
    /// addresses of the message (Bcc is never read).
    #[arg(long, value_name = "ADDRESS")]
    to: Vec<String>,
    /// Extra MAIL parameter, repeatable, e.g. --param SIZE=5021 or --param SMTPUTF8.
    #[arg(long = "param", value_name = "KEYWORD[=VALUE]")]
    params: Vec<String>,
    /// BODY parameter to declare.
    #[arg(long, value_enum, default_value_t = Body::Auto)]
    body: Body,
    /// Whose reader the batch is for: `exim` writes no ESMTP parameters,
    /// because `exim -bS` refuses them.
    #[arg(long, value_enum, default_value_t = Dialect::Rfc)]
    dialect: Dialect,
    /// Write `HELO DOMAIN` first.
    #[arg(long, value_name = "DOMAIN", conflicts_with = "ehlo")]
    helo: Option<String>,
    /// Write `EHLO DOMAIN` first.
    #[arg(long, value_name = "DOMAIN")]
    ehlo: Option<String>,
    /// Write QUIT at the end.
    #[arg(long)]
    quit: bool,
    /// Output file (default: standard output).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
pub(crate) struct DecodeArgs {
    /// Batch SMTP file; `-` reads standard input.
    #[arg(value_name = "BSMTP")]
    input: PathBuf,
    /// Accept what Exim accepts: bare LF line ends, long lines, blank lines, junk after QUIT.
    #[arg(long)]
    lenient: bool,
    /// Output format on standard output.
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    /// Also write each message to DIR/NNNN.eml (DIR must be new or empty).
    #[arg(long, value_name = "DIR")]
    eml_dir: Option<PathBuf>,
}

pub(crate) fn encode(stages: &Stages, args: EncodeArgs) -> anyhow::Result<()> {
    let flags = EnvelopeFlags {
        dialect: args.dialect,
        from: args.from.as_deref(),
        to: &args.to,
        params: &args.params,
        body: args.body,
    };
    let messages = messages_from_files(&args.input, flags)?;
    let greeting = match (&args.helo, &args.ehlo) {
        (Some(d), _) => Greeting::Helo(d.clone()),
        (_, Some(d)) => Greeting::Ehlo(d.clone()),
        _ => Greeting::None,
    };
    let codec = stages.codec()?;
    let options = EncodeOptions {
        greeting,
        quit: args.quit,
    };
    let batch = codec
        .encode(&messages, &options)
        .map_err(|e| anyhow::anyhow!("encoding failed: {e}"))?;
    Ok(write_output(args.output.as_deref(), &batch)?)
}

pub(crate) fn decode(stages: &Stages, args: DecodeArgs) -> anyhow::Result<()> {
    let batch = read_input(&args.input)?;
    let codec = stages.codec()?;
    let messages = decode_batch(&codec, &batch, args.lenient, &args.input)?;
    if let Some(dir) = &args.eml_dir {
        write_directory(dir, &eml_files(&messages))?;
    }
    match args.format {
        Format::Json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&messages_json(&messages))?
            );
        }
        Format::Text => {
            for (i, m) in messages.iter().enumerate() {
                println!("{}", message_line(i + 1, m));
            }
            println!("{} message(s)", messages.len());
        }
    }
    Ok(())
}
