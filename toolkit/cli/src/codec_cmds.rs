//! `encode` and `decode`: the codec stage on files.

use std::path::PathBuf;

use clap::Args;
use deepmail_host::types::{DecodeMode, DecodeOptions, EncodeOptions, Greeting, Message};
use serde_json::Value;

use deepmail_bench::mail::{envelope_for_dialect, message_json, Body, Dialect};
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
    let mut messages = Vec::new();
    for path in &args.input {
        let content = read_input(path)?;
        let name = path.display().to_string();
        let envelope = envelope_for_dialect(
            args.dialect,
            args.from.as_deref(),
            &args.to,
            &args.params,
            args.body,
            &name,
            &content,
        )?;
        messages.push(Message { envelope, content });
    }
    let greeting = match (&args.helo, &args.ehlo) {
        (Some(d), _) => Greeting::Helo(d.clone()),
        (_, Some(d)) => Greeting::Ehlo(d.clone()),
        _ => Greeting::None,
    };
    let codec = stages.codec()?;
    let batch = codec
        .encode(
            &messages,
            &EncodeOptions {
                greeting,
                quit: args.quit,
            },
        )
        .map_err(|e| anyhow::anyhow!("encoding failed: {e}"))?;
    Ok(write_output(args.output.as_deref(), &batch)?)
}

pub(crate) fn decode(stages: &Stages, args: DecodeArgs) -> anyhow::Result<()> {
    let batch = read_input(&args.input)?;
    let mode = if args.lenient {
        DecodeMode::Lenient
    } else {
        DecodeMode::Strict
    };
    let codec = stages.codec()?;
    let messages = codec.decode(&batch, DecodeOptions { mode }).map_err(|e| {
        let hint = if !args.lenient
            && matches!(
                e.code.as_str(),
                "bare-lf" | "line-too-long" | "trailing-garbage"
            ) {
            "\nhint: batches written by Exim and other MTAs may need --lenient"
        } else {
            ""
        };
        anyhow::anyhow!(
            "{} is not valid Batch SMTP: {e}{hint}",
            args.input.display()
        )
    })?;
    if let Some(dir) = &args.eml_dir {
        let files: Vec<(String, Vec<u8>)> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("{:04}.eml", i + 1), m.content.clone()))
            .collect();
        write_directory(dir, &files)?;
    }
    match args.format {
        Format::Json => {
            let all: Vec<Value> = messages
                .iter()
                .enumerate()
                .map(|(i, m)| message_json(i + 1, m))
                .collect();
            println!("{}", serde_json::to_string_pretty(&all)?);
        }
        Format::Text => {
            for (i, m) in messages.iter().enumerate() {
                let j = message_json(i + 1, m);
                let to: Vec<&str> = m
                    .envelope
                    .forward_paths
                    .iter()
                    .map(|f| f.mailbox.as_str())
                    .collect();
                println!(
                    "#{} from <{}> to {} ({} bytes) subject: {}",
                    i + 1,
                    m.envelope.reverse_path,
                    to.join(", "),
                    m.content.len(),
                    j["subject"].as_str().unwrap_or("(none)")
                );
            }
            println!("{} message(s)", messages.len());
        }
    }
    Ok(())
}
