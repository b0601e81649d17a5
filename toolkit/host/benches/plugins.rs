//! What the sandbox costs: the same codec and fragmenter code called
//! natively (the sans-IO crates) and through the embedded WebAssembly
//! plugins (the host, limits, pooled instances, copying across the WIT
//! boundary). Run: `cargo bench -p deepmail-host`.

use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use deepmail_host::types::{
    BundleSpec, CrcType, DecodeMode, DecodeOptions, EncodeOptions, Envelope, ForwardPath, Greeting,
    Message, ReassemblyLimits,
};
use deepmail_host::{Codec, Fragmenter, Host, HostConfig, PluginSource};

#[path = "../../bundle/benches/support/goals.rs"]
mod goals;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// A realistic body: 76-column lines, some starting with a dot.
/// `size` octets of 74-octet lines, one in 17 starting with a dot (which
/// the batch stuffs).
fn body(size: usize) -> Vec<u8> {
    body_with(size, true)
}

/// As [`body`], with (`dots`) or without the lines that start with a dot.
fn body_with(size: usize, dots: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 80);
    let mut n = 0u32;
    while out.len() < size {
        if dots && n.is_multiple_of(17) {
            out.push(b'.');
        }
        for i in 0..74u32 {
            out.push(b'A' + ((n + i) % 26) as u8);
        }
        out.extend_from_slice(b"\r\n");
        n += 1;
    }
    out
}

fn host() -> Host {
    Host::new(HostConfig {
        cache_dir: None,
        ..HostConfig::default()
    })
    .expect("host")
}

fn spec() -> BundleSpec {
    BundleSpec {
        source: "ipn:1.0".into(),
        destination: "ipn:2.25".into(),
        report_to: "dtn:none".into(),
        creation_time: 800_000_000_000,
        sequence_number: 1,
        lifetime_ms: 86_400_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::Crc32c,
        must_not_fragment: false,
    }
}

fn native_spec() -> deepmail_bundle::BundleSpec {
    deepmail_bundle::BundleSpec {
        source: "ipn:1.0".parse().unwrap(),
        destination: "ipn:2.25".parse().unwrap(),
        report_to: "dtn:none".parse().unwrap(),
        creation_time: 800_000_000_000,
        sequence_number: 1,
        lifetime_ms: 86_400_000,
        crc: deepmail_bundle::CrcType::Crc32c,
        block_crc: deepmail_bundle::CrcType::Crc32c,
        must_not_fragment: false,
    }
}

fn codec(c: &mut Criterion) {
    let host = host();
    let plugin = Codec::load(&host, &PluginSource::Builtin("bsmtp-codec".into())).unwrap();
    let mut g = c.benchmark_group("codec");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    for size in [KIB, 64 * KIB, MIB, 16 * MIB] {
        // The 1 MiB decode is a goal: more and longer samples, so that a
        // neighbour's burst on this shared VM moves its median less.
        if size == MIB {
            g.sample_size(40).measurement_time(Duration::from_secs(4));
        } else {
            g.sample_size(10).measurement_time(Duration::from_secs(2));
        }
        let content = body(size);
        let wit_msg = Message {
            envelope: Envelope {
                reverse_path: "ops@earth.example".into(),
                mail_parameters: vec![],
                forward_paths: vec![ForwardPath {
                    mailbox: "ada@moon.example".into(),
                    parameters: vec![],
                }],
            },
            content: content.clone(),
        };
        let native_msg = deepmail_bsmtp::Message {
            envelope: deepmail_bsmtp::Envelope {
                reverse_path: "ops@earth.example".into(),
                mail_parameters: vec![],
                forward_paths: vec![deepmail_bsmtp::ForwardPath {
                    mailbox: "ada@moon.example".into(),
                    parameters: vec![],
                }],
            },
            content: content.clone(),
        };
        let opts = EncodeOptions {
            greeting: Greeting::None,
            quit: false,
        };
        let batch =
            deepmail_bsmtp::encode(std::slice::from_ref(&native_msg), &Default::default()).unwrap();
        g.throughput(Throughput::Bytes(size as u64));
        let label = format!("{}KiB", size / KIB);
        g.bench_with_input(
            BenchmarkId::new("encode/native", &label),
            &native_msg,
            |b, m| {
                b.iter(|| {
                    deepmail_bsmtp::encode(std::slice::from_ref(m), &Default::default()).unwrap()
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("encode/plugin", &label),
            &wit_msg,
            |b, m| b.iter(|| plugin.encode(std::slice::from_ref(m), &opts).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("decode/native", &label),
            &batch,
            |b, batch| b.iter(|| deepmail_bsmtp::decode(batch, &Default::default()).unwrap()),
        );
        if size == MIB {
            // The same text with no line starting with a dot: no stuffing.
            let mut plain = native_msg.clone();
            plain.content = body_with(size, false);
            let batch =
                deepmail_bsmtp::encode(std::slice::from_ref(&plain), &Default::default()).unwrap();
            g.bench_with_input(
                BenchmarkId::new("decode/native-unstuffed", &label),
                &batch,
                |b, batch| b.iter(|| deepmail_bsmtp::decode(batch, &Default::default()).unwrap()),
            );
        }
        g.bench_with_input(
            BenchmarkId::new("decode/plugin", &label),
            &batch,
            |b, batch| {
                b.iter(|| {
                    plugin
                        .decode(
                            batch,
                            DecodeOptions {
                                mode: DecodeMode::Strict,
                            },
                        )
                        .unwrap()
                })
            },
        );
    }
    g.finish();
}

fn fragmenter(c: &mut Criterion) {
    let host = host();
    let plugin = Fragmenter::load(&host, &PluginSource::Builtin("bp7-fragmenter".into())).unwrap();
    let mut g = c.benchmark_group("fragmenter");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    let limits = ReassemblyLimits {
        max_adu_bytes: 64 << 20,
        max_pending_bytes: 128 << 20,
        max_pending_bundles: 8,
    };
    let native_limits = deepmail_bundle::ReassemblyLimits {
        max_adu_bytes: 64 << 20,
        max_pending_bytes: 128 << 20,
        max_pending_bundles: 8,
    };
    for (adu_size, mtu) in [
        (64 * KIB, KIB),
        (MIB, 64 * KIB),
        (16 * MIB, 64 * KIB),
        (16 * MIB, MIB),
    ] {
        let adu = body(adu_size);
        let label = format!("{}KiB@{}KiB", adu_size / KIB, mtu / KIB);
        g.throughput(Throughput::Bytes(adu_size as u64));
        g.bench_with_input(
            BenchmarkId::new("fragment/native", &label),
            &adu,
            |b, adu| b.iter(|| deepmail_bundle::fragment_adu(adu, &native_spec(), mtu).unwrap()),
        );
        g.bench_with_input(
            BenchmarkId::new("fragment/plugin", &label),
            &adu,
            |b, adu| b.iter(|| plugin.fragment_adu(adu, &spec(), mtu as u64).unwrap()),
        );
        let bundles = deepmail_bundle::fragment_adu(&adu, &native_spec(), mtu).unwrap();
        g.bench_with_input(
            BenchmarkId::new("reassemble/native", &label),
            &bundles,
            |b, bundles| {
                b.iter(|| {
                    let mut r = deepmail_bundle::Reassembler::new(native_limits);
                    let mut out = None;
                    for x in bundles.iter().rev() {
                        out = out.or(r.push(x, 800_000_000_001).unwrap());
                    }
                    out.unwrap()
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("reassemble/plugin", &label),
            &bundles,
            |b, bundles| {
                b.iter(|| {
                    let mut r = plugin.reassembler(limits).unwrap();
                    let mut out = None;
                    for x in bundles.iter().rev() {
                        out = out.or(r.push(x, 800_000_000_001).unwrap());
                    }
                    out.unwrap()
                })
            },
        );
    }
    g.finish();
}

/// The anchors: bp7's whole-bundle encode of 16 MiB (what the plugin
/// fragmenter is measured against) and a memcpy of a 1 MiB batch (what
/// decoding is).
fn anchors(c: &mut Criterion) {
    let mut g = c.benchmark_group("anchor");
    g.warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sample_size(10);
    let mut bundle = goals::bp7_bundle(body(16 * MIB), 800_000_000_000, 1);
    g.throughput(Throughput::Bytes(16 * MIB as u64));
    g.bench_function(BenchmarkId::new("bp7 to_cbor", "16384KiB"), |b| {
        b.iter(|| std::hint::black_box(&mut bundle).to_cbor())
    });
    let batch = body(MIB);
    let mut out = vec![0u8; batch.len()];
    g.throughput(Throughput::Bytes(MIB as u64));
    // As the 1 MiB decode it is the anchor of.
    g.sample_size(40).measurement_time(Duration::from_secs(4));
    g.bench_function(BenchmarkId::new("memcpy", "1024KiB"), |b| {
        b.iter(|| out.copy_from_slice(std::hint::black_box(&batch)))
    });
    g.finish();
}

/// What a policy call costs in the accept path: `check-sender` on a reused
/// instance against `check-message` of a 4 KiB message on a fresh one (each
/// message is judged in its own instance unless the plugin exports
/// `policy-state`), with the default basic-policy.
fn policy(c: &mut Criterion) {
    let host = host();
    let policy = deepmail_host::Policy::load(
        &host,
        &PluginSource::Builtin("basic-policy".into()),
        vec![("max-message-bytes".into(), "10485760".into())],
    )
    .expect("basic-policy loads");
    let envelope = deepmail_host::types::Envelope {
        reverse_path: "ops@earth.example".into(),
        mail_parameters: vec![],
        forward_paths: vec![deepmail_host::types::ForwardPath {
            mailbox: "ada@moon.example".into(),
            parameters: vec![],
        }],
    };
    let content = body(4 * KIB);
    let mut g = c.benchmark_group("policy");
    g.bench_function("check_sender (reused instance)", |b| {
        b.iter(|| policy.check_sender("ops@earth.example", &[]).unwrap())
    });
    g.bench_function("check_message 4KiB (fresh instance)", |b| {
        b.iter(|| policy.check_message(&envelope, &content).unwrap())
    });
    g.finish();
}

criterion_group!(benches, codec, fragmenter, anchors, policy);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    goals::report(
        "fast-path goals through the plugins",
        &[
            goals::Goal {
                what:
                    "plugin fragment-adu 16 MiB at a 64 KiB MTU vs bp7 native whole-bundle to_cbor",
                anchor: "anchor/bp7 to_cbor/16384KiB",
                ours: "fragmenter/fragment_plugin/16384KiB@64KiB",
                goal: 1.0,
            },
            goals::Goal {
                what: "native BSMTP decode of a 1 MiB batch, one line in 17 stuffed, vs memcpy of 1 MiB",
                anchor: "anchor/memcpy/1024KiB",
                ours: "codec/decode_native/1024KiB",
                goal: 0.5,
            },
            goals::Goal {
                what: "native BSMTP decode of a 1 MiB batch, no line stuffed, vs memcpy of 1 MiB",
                anchor: "anchor/memcpy/1024KiB",
                ours: "codec/decode_native-unstuffed/1024KiB",
                goal: 0.5,
            },
            goals::Goal {
                what:
                    "plugin BSMTP decode of a 1 MiB batch vs memcpy of 1 MiB (the figure; no goal)",
                anchor: "anchor/memcpy/1024KiB",
                ours: "codec/decode_plugin/1024KiB",
                goal: 0.0,
            },
        ],
    );
}
