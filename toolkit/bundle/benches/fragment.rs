//! Fragmentation and reassembly throughput, with bp7's whole-bundle encode
//! of the same payload as the baseline.
//!
//! Run: `cargo bench -p deepmail-bundle --bench fragment` (about 2 minutes).

use std::hint::black_box;
use std::time::Duration;

use bp7::flags::BlockControlFlags;
use bp7::{canonical, crc, dtntime::CreationTimestamp, eid::EndpointID, primary};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deepmail_bundle::{
    build, fragment_adu, BundleSpec, CrcType, Eid, Reassembler, ReassemblyLimits,
};

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
        let p = primary::PrimaryBlockBuilder::default()
            .destination(EndpointID::with_ipn(2, 25).unwrap())
            .source(EndpointID::with_ipn(1, 0).unwrap())
            .report_to(EndpointID::none())
            .creation_timestamp(CreationTimestamp::with_time_and_seq(815_000_000_000, 0))
            .lifetime(Duration::from_millis(86_400_000))
            .build()
            .unwrap();
        let mut bundle = bp7::bundle::BundleBuilder::default()
            .primary(p)
            .canonicals(vec![canonical::new_payload_block(
                BlockControlFlags::empty(),
                data.clone(),
            )])
            .build()
            .unwrap();
        bundle.set_crc(crc::CRC_32);
        g.bench_function(BenchmarkId::new("bp7 to_cbor", label(a)), |b| {
            b.iter(|| black_box(&mut bundle).to_cbor())
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1500))
}

criterion_group! { name = benches; config = config(); targets = bench_fragment, bench_reassemble, bench_whole_bundle }
criterion_main!(benches);
