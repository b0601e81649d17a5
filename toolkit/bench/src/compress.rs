//! `bench compress`: bytes on the link per message byte with
//! `compress = "gzip"`, on a corpus of real messages (by default the email
//! test messages of CPython's test suite, Debian's
//! `libpython3.11-testsuite`), the same suite's image files sent as MIME
//! attachments, and generated telemetry and reports. Each message is
//! encoded alone as a Batch SMTP object by the codec plugin in use, then
//! gzipped as the gateway does.

use std::path::{Path, PathBuf};

use base64::Engine;
use clap::Args;
use deepmail_host::types::{EncodeOptions, Envelope, ForwardPath, Greeting, Message};
use serde_json::json;

use crate::{BenchError, Outcome, Stages};

/// Where Debian puts CPython's email test messages.
const CPYTHON_EMAIL_DATA: &str = "/usr/lib/python3.11/test/test_email/data";

/// `bench compress`: the corpus and the output format.
#[derive(Args)]
pub(crate) struct CompressBenchArgs {
    /// Directory of messages (`*.txt`, RFC 5322) and other files (sent as
    /// attachments). Default: CPython's email test data
    /// (apt-get install libpython3.11-testsuite); without it, generated
    /// messages only.
    #[arg(long, value_name = "DIR")]
    corpus: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// A message carrying `data` as a base64 attachment of `mime` type.
fn with_attachment(name: &str, mime: &str, data: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let mut m = format!(
        "From: ops@earth.example\r\nTo: crew@mars.example\r\nSubject: {name}\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n\
         --b\r\nContent-Type: text/plain\r\n\r\nAttached: {name}.\r\n\
         --b\r\nContent-Type: {mime}; name=\"{name}\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    .into_bytes();
    for line in b64.as_bytes().chunks(76) {
        m.extend_from_slice(line);
        m.extend_from_slice(b"\r\n");
    }
    m.extend_from_slice(b"--b--\r\n");
    m
}

fn mime_of(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "bmp" => "image/bmp",
        "tiff" | "tif" => "image/tiff",
        "au" => "audio/basic",
        "wav" => "audio/wav",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// Messages the rover and the crew write: a CSV telemetry dump and a
/// plain-text status report (deterministic).
fn generated() -> Vec<(String, Vec<u8>)> {
    let mut csv = String::from("time,battery_v,temp_c,pressure_pa,wind_ms\r\n");
    let mut x = 12345u64;
    for i in 0..5000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        csv.push_str(&format!(
            "2027-01-01T{:02}:{:02}:{:02}Z,{:.3},{:.1},{},{:.2}\r\n",
            (i / 3600) % 24,
            (i / 60) % 60,
            i % 60,
            27.0 + (x % 1000) as f64 / 1000.0,
            -60.0 + ((x >> 10) % 400) as f64 / 10.0,
            600 + (x >> 20) % 50,
            ((x >> 30) % 1500) as f64 / 100.0
        ));
    }
    let telemetry = with_attachment("telemetry.csv", "text/csv", csv.as_bytes());
    let mut report = String::from(
        "From: crew@mars.example\r\nTo: ops@earth.example\r\nSubject: sol 412 report\r\n\r\n",
    );
    let words = [
        "habitat", "pressure", "nominal", "the", "rover", "drove", "metres", "towards", "crater",
        "samples", "were", "sealed", "and", "stowed", "for", "return", "dust", "on", "panels",
        "cleaned", "at", "noon", "crew", "health", "good", "water", "recycler", "filter",
        "changed",
    ];
    for i in 0..3000 {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        report.push_str(words[(x >> 33) as usize % words.len()]);
        report.push_str(if i % 12 == 11 { ".\r\n" } else { " " });
    }
    report.push_str("\r\n");
    vec![
        ("generated: telemetry CSV attachment".into(), telemetry),
        ("generated: plain-text report".into(), report.into_bytes()),
    ]
}

struct Row {
    class: String,
    messages: usize,
    message_bytes: u64,
    bsmtp_bytes: u64,
    gzip_bytes: u64,
}

pub(crate) fn run(stages: &Stages, args: CompressBenchArgs) -> Result<Outcome, BenchError> {
    let dir = args
        .corpus
        .clone()
        .unwrap_or_else(|| PathBuf::from(CPYTHON_EMAIL_DATA));
    let mut classes: Vec<(String, Vec<Vec<u8>>)> = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
            paths.sort();
            let mut texts = Vec::new();
            let mut attachments = Vec::new();
            for p in &paths {
                let bytes = std::fs::read(p).map_err(BenchError::io("reading", p))?;
                if p.extension().is_some_and(|e| e == "txt") {
                    texts.push(deepmail_smtp::crlf_lines(&bytes));
                } else {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    attachments.push(with_attachment(&name, mime_of(p), &bytes));
                }
            }
            classes.push((format!("messages ({}/*.txt)", dir.display()), texts));
            classes.push((format!("its other files as attachments ({})", dir.display()), attachments));
        }
        Err(e) if args.corpus.is_some() => {
            return Err(BenchError::io("cannot read the corpus", &dir)(e))
        }
        Err(_) => eprintln!(
            "bench compress: no corpus at {} (apt-get install libpython3.11-testsuite, or --corpus DIR); generated messages only",
            dir.display()
        ),
    }
    for (name, m) in generated() {
        classes.push((name, vec![m]));
    }
    let codec = stages.codec()?;
    let mut rows = Vec::new();
    for (class, messages) in classes {
        if messages.is_empty() {
            continue;
        }
        let mut row = Row {
            class,
            messages: messages.len(),
            message_bytes: 0,
            bsmtp_bytes: 0,
            gzip_bytes: 0,
        };
        for content in messages {
            row.message_bytes += content.len() as u64;
            let message = Message {
                envelope: Envelope {
                    reverse_path: "ops@earth.example".into(),
                    mail_parameters: vec![],
                    forward_paths: vec![ForwardPath {
                        mailbox: "crew@mars.example".into(),
                        parameters: vec![],
                    }],
                },
                content,
            };
            let bsmtp = codec
                .encode(
                    &[message],
                    &EncodeOptions {
                        greeting: Greeting::None,
                        quit: false,
                    },
                )
                .map_err(BenchError::plugin(
                    "the codec cannot encode a corpus message",
                ))?;
            row.bsmtp_bytes += bsmtp.len() as u64;
            row.gzip_bytes += deepmail_gateway::gzip(&bsmtp).len() as u64;
        }
        rows.push(row);
    }
    let total = |f: fn(&Row) -> u64| rows.iter().map(f).sum::<u64>();
    let (m, b, z) = (
        total(|r| r.message_bytes),
        total(|r| r.bsmtp_bytes),
        total(|r| r.gzip_bytes),
    );
    if args.json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| json!({"class": r.class, "messages": r.messages, "message_bytes": r.message_bytes,
                             "bsmtp_bytes": r.bsmtp_bytes, "gzip_bytes": r.gzip_bytes,
                             "link_bytes_per_message_byte": r.gzip_bytes as f64 / r.message_bytes as f64}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"rows": out, "total": {"message_bytes": m, "bsmtp_bytes": b, "gzip_bytes": z,
                "uncompressed_link_bytes_per_message_byte": b as f64 / m as f64,
                "link_bytes_per_message_byte": z as f64 / m as f64}})
            )?
        );
    } else {
        println!("| messages | count | message bytes | Batch SMTP | gzip | link bytes per message byte |");
        println!("|---|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {} | {:.3} |",
                r.class,
                r.messages,
                r.message_bytes,
                r.bsmtp_bytes,
                r.gzip_bytes,
                r.gzip_bytes as f64 / r.message_bytes as f64
            );
        }
        println!(
            "| all | {} | {m} | {b} | {z} | {:.3} (uncompressed: {:.3}) |",
            rows.iter().map(|r| r.messages).sum::<usize>(),
            z as f64 / m as f64,
            b as f64 / m as f64
        );
    }
    Ok(Outcome::Passed)
}
