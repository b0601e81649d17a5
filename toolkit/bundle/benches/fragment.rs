//! Fragmentation and reassembly throughput, with bp7's whole-bundle encode
//! of the same payload as the baseline.
//!
//! Run: `cargo bench -p deepmail-bundle --bench fragment` (about 2 minutes).
//! It ends with the goals as ratios measured in the same run
//! (`cargo bench -p deepmail-bundle --bench fragment -- 16MiB` for just
//! those): fragmenting against bp7's whole-bundle encode, reassembly
//! against a memcpy of the same bytes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use deepmail_bundle::{
    build, fragment_adu, BundleSpec, CrcType, Eid, Reassembler, ReassemblyLimits,
};

#[path = "support/goals.rs"]
mod goals;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;
const ADUS: [usize; 4] = [KIB, 64 * KIB, MIB, 16 * MIB];
const MTUS: [usize; 3] = [KIB, 64 * KIB, MIB];
const NOW: u64 = 815_000_000_001;

fn spec() -> BundleSpec {
    BundleSpec {
        source: "ipn:1.0".parse().unwrap(),
        destination: "ipn:2.25".parse().unwrap(),
        report_to: Eid::Null,
        creation_time: 815_000_000_000,
        sequence_number: 0,
        lifetime_ms: 86_400_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::Crc32c,
        must_not_fragment: false,
    }
}

fn adu(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn label(n: usize) -> String {
    if n >= MIB {
        format!("{}MiB", n / MIB)
    } else {
        format!("{}KiB", n / KIB)
    }
}

/// ADU/MTU pairs worth measuring: the MTU must force fragmentation.
fn combos() -> impl Iterator<Item = (usize, usize)> {
    ADUS.into_iter().flat_map(|a| {
        MTUS.into_iter()
            .filter(move |&m| m <= a)
            .map(move |m| (a, m))
    })
}

fn bench_fragment(c: &mut Criterion) {
    let mut g = c.benchmark_group("fragment_adu");
    for (a, m) in combos() {
        let data = adu(a);
        g.throughput(Throughput::Bytes(a as u64));
        g.bench_with_input(
            BenchmarkId::new(format!("mtu {}", label(m)), label(a)),
            &data,
            |b, data| b.iter(|| fragment_adu(black_box(data), &spec(), m).unwrap()),
        );
    }
    g.finish();
}

fn bench_reassemble(c: &mut Criterion) {
    let mut g = c.benchmark_group("reassemble");
    for (a, m) in combos() {
        let frags = fragment_adu(&adu(a), &spec(), m).unwrap();
        g.throughput(Throughput::Bytes(a as u64));
        g.bench_with_input(
            BenchmarkId::new(format!("mtu {}", label(m)), label(a)),
            &frags,
            |b, frags| {
                b.iter(|| {
                    let mut r = Reassembler::new(ReassemblyLimits::default());
                    let mut out = None;
                    for f in frags {
                        out = r.push(black_box(f), NOW).unwrap();
                    }
                    out.unwrap()
                })
            },
        );
    }
    g.finish();
}

fn bench_whole_bundle(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode_whole_bundle");
    for a in ADUS {
        let data = adu(a);
        g.throughput(Throughput::Bytes(a as u64));
        g.bench_with_input(
            BenchmarkId::new("deepmail build", label(a)),
            &data,
            |b, data| b.iter(|| build(black_box(data), &spec()).unwrap()),
        );
        let mut bundle = goals::bp7_bundle(data.clone(), 815_000_000_000, 0);
        g.bench_function(BenchmarkId::new("bp7 to_cbor", label(a)), |b| {
            b.iter(|| black_box(&mut bundle).to_cbor())
        });
    }
    g.finish();
}

/// The limits: a memcpy of the ADU into a buffer allocated once, and the
/// CRC-32C of it.
fn bench_limits(c: &mut Criterion) {
    let mut g = c.benchmark_group("limit");
    for a in ADUS {
        let data = adu(a);
        let mut out = vec![0u8; a];
        g.throughput(Throughput::Bytes(a as u64));
        g.bench_function(BenchmarkId::new("memcpy", label(a)), |b| {
            b.iter(|| out.copy_from_slice(black_box(&data)))
        });
        g.bench_function(BenchmarkId::new("crc32c", label(a)), |b| {
            b.iter(|| deepmail_bundle::crc32c(black_box(&data)))
        });
    }
    g.finish();
}

/// The goals of the fast path, as ratios of this run's medians.
fn summary() {
    goals::report(
        &format!(
            "fast-path goals (CRC-32C: {})",
            deepmail_bundle::crc32c_implementation()
        ),
        &[
            goals::Goal {
                what: "fragment_adu 16 MiB at a 64 KiB MTU, CRC-32C, vs bp7 whole-bundle to_cbor",
                anchor: "encode_whole_bundle/bp7 to_cbor/16MiB",
                ours: "fragment_adu/mtu 64KiB/16MiB",
                goal: 3.0,
            },
            goals::Goal {
                what: "reassembly of 16 MiB from 64 KiB fragments vs memcpy of 16 MiB",
                anchor: "limit/memcpy/16MiB",
                ours: "reassemble/mtu 64KiB/16MiB",
                goal: 0.5,
            },
        ],
    );
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
}

criterion_group! { name = benches; config = config(); targets = bench_limits, bench_fragment, bench_reassemble, bench_whole_bundle }

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    summary();
}
