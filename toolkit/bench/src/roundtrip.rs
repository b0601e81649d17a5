//! `roundtrip`: the README's first command. One email goes through every
//! stage plugin the way the gateways will use them (encode, fragment, the
//! link shuffling and duplicating bundles, reassemble, decode) and the
//! result is compared with what went in.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use deepmail_host::types::{
    DecodeMode, DecodeOptions, EncodeOptions, Greeting, Message, ReassemblyLimits,
};
use serde_json::json;

use crate::bundle_options::BundleOptions;
use crate::mail::{envelope_from, message_json, Body};
use crate::{read_input, BenchError, Outcome, Stages};

const SAMPLE: &[u8] = include_bytes!("../samples/moon-hello.eml");

/// `deepmail roundtrip`: the message, the link's MTU and shuffle, the bundles.
#[derive(Args)]
pub struct RoundtripArgs {
    /// RFC 5322 message to send (default: a built-in sample with 8-bit text,
    /// dot-leading lines and a binary attachment).
    #[arg(value_name = "MESSAGE")]
    input: Option<PathBuf>,
    /// Link MTU: largest bundle in bytes.
    #[arg(long, value_name = "BYTES", default_value_t = 1024)]
    mtu: u64,
    /// Seed for the link's reordering, so a run can be repeated.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    #[command(flatten)]
    bundle: BundleOptions,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// xorshift64*: a deterministic shuffle needs no crate.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// Normalises line ends to CRLF and ends with CRLF, as a codec delivers content.
fn as_delivered(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + content.len() / 40 + 2);
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            b'\r' if content.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.is_empty() && !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

/// Runs the round trip and prints its table (or JSON); [`Outcome::Failed`]
/// when the message came back different.
pub fn run(stages: &Stages, args: RoundtripArgs) -> Result<Outcome, BenchError> {
    let (name, content) = match &args.input {
        Some(p) => (p.display().to_string(), read_input(p)?),
        None => (
            "built-in sample (moon-hello.eml)".to_string(),
            SAMPLE.to_vec(),
        ),
    };
    let load = Instant::now();
    let codec = stages.codec()?;
    let fragmenter = stages.fragmenter()?;
    let load_ms = ms(load);

    let envelope = envelope_from(None, &[], &[], Body::Auto, &name, &content, false)?;
    let message = Message { envelope, content };
    let mut rows = Vec::new();

    let t = Instant::now();
    let batch = codec
        .encode(
            std::slice::from_ref(&message),
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .map_err(BenchError::plugin("encode"))?;
    rows.push((
        "encode",
        codec.info().source.clone(),
        format!("1 message, {} B", message.content.len()),
        format!("{} B Batch SMTP", batch.len()),
        ms(t),
    ));

    let spec = args.bundle.spec();
    let t = Instant::now();
    let bundles = fragmenter
        .fragment_adu(&batch, &spec, args.mtu)
        .map_err(BenchError::plugin("fragment"))?;
    let wire: usize = bundles.iter().map(Vec::len).sum();
    let largest = bundles.iter().map(Vec::len).max().unwrap_or(0);
    rows.push((
        "fragment",
        fragmenter.info().source.clone(),
        format!("{} B ADU", batch.len()),
        format!(
            "{} bundles, largest {largest} B, {wire} B total",
            bundles.len()
        ),
        ms(t),
    ));
    let first = fragmenter
        .inspect(&bundles[0])
        .map_err(BenchError::plugin("inspect"))?;

    // The link: reorder everything and deliver one bundle twice.
    let mut order: Vec<usize> = (0..bundles.len()).collect();
    let mut state = args.seed.max(1);
    for i in (1..order.len()).rev() {
        order.swap(i, (next(&mut state) % (i as u64 + 1)) as usize);
    }
    let dup = order[(next(&mut state) % order.len() as u64) as usize];
    order.push(dup);
    let order_text = order
        .iter()
        .map(|i| (i + 1).to_string())
        .collect::<Vec<_>>()
        .join(" ");
    rows.push((
        "link",
        "-".into(),
        format!("{} bundles", bundles.len()),
        format!("{} arrivals, order {order_text}", order.len()),
        0.0,
    ));

    let t = Instant::now();
    let limits = ReassemblyLimits {
        max_adu_bytes: 64 << 20,
        max_pending_bytes: 128 << 20,
        max_pending_bundles: 16,
    };
    let mut session = fragmenter
        .reassembler(limits)
        .map_err(BenchError::plugin("reassembler"))?;
    let now = spec.creation_time.saturating_add(1280);
    let mut adu = None;
    for &i in &order {
        if let Some(done) = session
            .push(&bundles[i], now)
            .map_err(BenchError::plugin(format!("reassemble bundle {}", i + 1)))?
        {
            adu = Some(done);
        }
    }
    let adu = adu.ok_or_else(|| {
        BenchError::CheckFailed("reassembly did not complete: a fragment went missing".into())
    })?;
    rows.push((
        "reassemble",
        fragmenter.info().source.clone(),
        format!("{} arrivals", order.len()),
        format!("{} B ADU from {} fragments", adu.adu.len(), adu.fragments),
        ms(t),
    ));

    let t = Instant::now();
    let decoded = codec
        .decode(
            &adu.adu,
            DecodeOptions {
                mode: DecodeMode::Strict,
            },
        )
        .map_err(BenchError::plugin("decode"))?;
    rows.push((
        "decode",
        codec.info().source.clone(),
        format!("{} B", adu.adu.len()),
        format!("{} message(s)", decoded.len()),
        ms(t),
    ));

    let want = as_delivered(&message.content);
    let intact = adu.adu == batch
        && decoded.len() == 1
        && decoded[0].content == want
        && decoded[0].envelope == message.envelope;

    if args.json {
        let report = json!({
            "message": name,
            "mtu": args.mtu,
            "plugin_load_ms": load_ms,
            "stages": rows.iter().map(|(s, p, i, o, t)| json!({"stage": s, "plugin": p, "input": i, "output": o, "ms": t})).collect::<Vec<_>>(),
            "first_bundle": deepmail_conformance::bundle_info_json(&first),
            "envelope": message_json(1, &decoded[0])["forward_paths"].clone(),
            "intact": intact,
        });
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "deepmail roundtrip: {name}, {} bytes, link MTU {} bytes\n",
            message.content.len(),
            args.mtu
        );
        println!(
            "{:<11} {:<24} {:<22} {:<44} {:>9}",
            "stage", "plugin", "input", "output", "time"
        );
        for (s, p, i, o, t) in &rows {
            let time = if *s == "link" {
                "-".to_string()
            } else {
                format!("{t:.2} ms")
            };
            println!("{s:<11} {p:<24} {i:<22} {o:<44} {time:>9}");
        }
        println!(
            "(plugins loaded in {load_ms:.0} ms; compiled components are cached between runs)\n"
        );
        let env = &message.envelope;
        let params: Vec<String> = env
            .mail_parameters
            .iter()
            .map(|p| match &p.value {
                Some(v) => format!("{}={v}", p.keyword),
                None => p.keyword.clone(),
            })
            .collect();
        println!(
            "envelope:     MAIL FROM:<{}> {}",
            env.reverse_path,
            params.join(" ")
        );
        for f in &env.forward_paths {
            println!("              RCPT TO:<{}>", f.mailbox);
        }
        println!(
            "first bundle: {} -> {}, payload {}..{} of {} B, crc {}, lifetime {} s",
            first.source,
            first.destination,
            first.fragment_offset.unwrap_or(0),
            first.fragment_offset.unwrap_or(0) + first.payload_length,
            first.total_adu_length.unwrap_or(first.payload_length),
            deepmail_conformance::crc_name(first.crc),
            first.lifetime_ms / 1000
        );
        let head: String = String::from_utf8_lossy(&batch)
            .lines()
            .take(4)
            .collect::<Vec<_>>()
            .join("\n              ");
        println!("batch starts: {head}");
        if intact {
            println!("\nverdict: delivered intact — envelope and all {} content bytes identical after the round trip", want.len());
        } else {
            println!(
                "\nverdict: MISMATCH — the message changed on the way (this is a bug in a plugin)"
            );
        }
    }
    Ok(if intact {
        Outcome::Passed
    } else {
        Outcome::Failed
    })
}
