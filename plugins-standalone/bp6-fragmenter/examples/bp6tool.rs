//! A small native front end to the BPv6 codec, used by
//! `scripts/bp6/pyd3tn_interop.py` (and handy by hand). Arguments are
//! `key=value` pairs after the command; times are BPv6 seconds.
//!
//!   bp6tool inspect FILE...                 one JSON object per line
//!   bp6tool build adu=F out=F [spec]
//!   bp6tool fragment-adu adu=F dir=D mtu=N [spec]
//!   bp6tool fragment in=F dir=D mtu=N
//!   bp6tool reassemble out=F now=DTN_MS FILE...
//!   bp6tool bench size=BYTES mtu=N [iters=N]   native fragment/reassemble MB/s
//!
//! spec: src=EID dst=EID rpt=EID time=S seq=N life=S mnf=0|1
//! (defaults ipn:1.0, ipn:2.25, dtn:none, 815000000, 0, 3600, 0).

use std::collections::HashMap;
use std::process::ExitCode;

use deepmail_plugin_bp6_fragmenter as bp6;

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn opt(v: Option<u64>) -> String {
    v.map_or("null".into(), |n| n.to_string())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn inspect_json(bytes: &[u8]) -> String {
    match bp6::Bundle::parse(bytes).and_then(|b| bp6::inspect(bytes).map(|i| (b, i))) {
        Err(e) => format!(
            "{{\"error\":{{\"code\":{},\"message\":{},\"offset\":{}}}}}",
            json_str(e.code),
            json_str(&e.message),
            opt(e.offset)
        ),
        Ok((b, i)) => {
            let blocks: Vec<String> = i
                .blocks
                .iter()
                .map(|k| {
                    format!(
                        "{{\"block_type\":{},\"block_number\":{},\"flags\":{},\"data_length\":{}}}",
                        k.block_type, k.block_number, k.flags, k.data_length
                    )
                })
                .collect();
            format!(
                "{{\"version\":{},\"flags\":{},\"is_fragment\":{},\"must_not_fragment\":{},\"destination\":{},\"source\":{},\"report_to\":{},\"custodian\":{},\"creation_time\":{},\"sequence_number\":{},\"lifetime\":{},\"fragment_offset\":{},\"total_adu_length\":{},\"payload_length\":{},\"payload_hex\":{},\"dictionary_length\":{},\"blocks\":[{}]}}",
                i.version,
                i.flags,
                i.is_fragment,
                i.must_not_fragment,
                json_str(&i.destination.to_string()),
                json_str(&i.source.to_string()),
                json_str(&i.report_to.to_string()),
                json_str(&i.custodian.to_string()),
                i.creation_time,
                i.sequence_number,
                i.lifetime,
                opt(i.fragment_offset),
                opt(i.total_adu_length),
                i.payload_length,
                json_str(&hex(b.payload())),
                b.primary.dictionary.len(),
                blocks.join(",")
            )
        }
    }
}

fn spec(kv: &HashMap<String, String>) -> Result<bp6::Spec, String> {
    let get = |k: &str, d: &str| kv.get(k).cloned().unwrap_or_else(|| d.to_string());
    let num = |k: &str, d: &str| get(k, d).parse::<u64>().map_err(|e| format!("{k}: {e}"));
    let eid = |k: &str, d: &str| {
        get(k, d)
            .parse::<bp6::Eid>()
            .map_err(|e| format!("{k}: {e}"))
    };
    Ok(bp6::Spec {
        source: eid("src", "ipn:1.0")?,
        destination: eid("dst", "ipn:2.25")?,
        report_to: eid("rpt", "dtn:none")?,
        creation_time: num("time", "815000000")?,
        sequence_number: num("seq", "0")?,
        lifetime: num("life", "3600")?,
        must_not_fragment: get("mnf", "0") == "1",
    })
}

fn write_dir(dir: &str, bundles: &[Vec<u8>]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    for (i, b) in bundles.iter().enumerate() {
        let p = format!("{dir}/{:04}.bundle", i + 1);
        std::fs::write(&p, b).map_err(|e| format!("{p}: {e}"))?;
        println!("{p}");
    }
    Ok(())
}

fn run(args: Vec<String>) -> Result<(), String> {
    let cmd = args.first().ok_or("usage: bp6tool COMMAND ...")?.clone();
    let mut kv = HashMap::new();
    let mut files = Vec::new();
    for a in &args[1..] {
        match a.split_once('=') {
            Some((k, v)) if !k.contains('/') => {
                kv.insert(k.to_string(), v.to_string());
            }
            _ => files.push(a.clone()),
        }
    }
    let read = |k: &str| -> Result<Vec<u8>, String> {
        let p = kv.get(k).ok_or(format!("{k}= missing"))?;
        std::fs::read(p).map_err(|e| format!("{p}: {e}"))
    };
    let mtu = || -> Result<u64, String> {
        kv.get("mtu")
            .ok_or("mtu= missing")?
            .parse()
            .map_err(|e| format!("mtu: {e}"))
    };
    match cmd.as_str() {
        "inspect" => {
            for f in &files {
                let bytes = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
                println!("{}", inspect_json(&bytes));
            }
        }
        "build" => {
            let b = bp6::build(&read("adu")?, &spec(&kv)?).map_err(|e| e.to_string())?;
            let out = kv.get("out").ok_or("out= missing")?;
            std::fs::write(out, b).map_err(|e| e.to_string())?;
        }
        "fragment-adu" => {
            let frags =
                bp6::fragment_adu(&read("adu")?, &spec(&kv)?, mtu()?).map_err(|e| e.to_string())?;
            write_dir(kv.get("dir").ok_or("dir= missing")?, &frags)?;
        }
        "fragment" => {
            let frags = bp6::fragment(&read("in")?, mtu()?).map_err(|e| e.to_string())?;
            write_dir(kv.get("dir").ok_or("dir= missing")?, &frags)?;
        }
        "reassemble" => {
            let now: u64 = kv
                .get("now")
                .ok_or("now= missing")?
                .parse()
                .map_err(|e| format!("now: {e}"))?;
            let mut r = bp6::Reassembler::new(bp6::Limits {
                max_adu_bytes: 64 << 20,
                max_pending_bytes: 128 << 20,
                max_pending_bundles: 64,
            });
            let mut delivered = Vec::new();
            for f in &files {
                let bytes = std::fs::read(f).map_err(|e| format!("{f}: {e}"))?;
                if let Some(d) = r.push(&bytes, now).map_err(|e| format!("{f}: {e}"))? {
                    delivered.push(d);
                }
            }
            if delivered.len() != 1 {
                return Err(format!("{} ADUs delivered, wanted 1", delivered.len()));
            }
            let out = kv.get("out").ok_or("out= missing")?;
            std::fs::write(out, &delivered[0].adu).map_err(|e| e.to_string())?;
            println!(
                "{{\"source\":{},\"creation_time\":{},\"sequence_number\":{},\"fragments\":{},\"adu_length\":{}}}",
                json_str(&delivered[0].id.source.to_string()),
                delivered[0].id.creation_time,
                delivered[0].id.sequence_number,
                delivered[0].fragments,
                delivered[0].adu.len()
            );
        }
        "bench" => {
            let num = |k: &str, d: u64| {
                kv.get(k)
                    .map_or(Ok(d), |v| v.parse::<u64>().map_err(|e| format!("{k}: {e}")))
            };
            let size = num("size", 1 << 20)? as usize;
            let mtu = mtu()?;
            let iters = num("iters", 20)?;
            let adu: Vec<u8> = (0..size).map(|i| (i * 131 % 251) as u8).collect();
            let s = spec(&kv)?;
            let mut frag_ns = Vec::new();
            let mut reas_ns = Vec::new();
            let mut count = 0;
            for _ in 0..iters {
                let t = std::time::Instant::now();
                let frags = bp6::fragment_adu(&adu, &s, mtu).map_err(|e| e.to_string())?;
                frag_ns.push(t.elapsed().as_nanos() as f64);
                count = frags.len();
                let t = std::time::Instant::now();
                let mut r = bp6::Reassembler::new(bp6::Limits {
                    max_adu_bytes: 1 << 30,
                    max_pending_bytes: 1 << 31,
                    max_pending_bundles: 4,
                });
                let mut got = None;
                for f in &frags {
                    if let Some(d) = r
                        .push(f, s.creation_time * 1000)
                        .map_err(|e| e.to_string())?
                    {
                        got = Some(d.adu);
                    }
                }
                reas_ns.push(t.elapsed().as_nanos() as f64);
                if got.as_deref() != Some(&adu[..]) {
                    return Err("round trip differs".into());
                }
            }
            let median = |v: &mut Vec<f64>| {
                v.sort_by(|a, b| a.total_cmp(b));
                v[v.len() / 2]
            };
            let (f, r) = (median(&mut frag_ns), median(&mut reas_ns));
            println!(
                "native bp6 size={size} mtu={mtu} bundles={count} fragment={:.1} µs ({:.1} MB/s) reassemble={:.1} µs ({:.1} MB/s)",
                f / 1e3,
                size as f64 / f * 1e3,
                r / 1e3,
                size as f64 / r * 1e3
            );
        }
        other => return Err(format!("unknown command `{other}`")),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bp6tool: {e}");
            ExitCode::FAILURE
        }
    }
}
