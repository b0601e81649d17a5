//! Response parsing and record ordering: a compressed response with 8 URI
//! records behind a CNAME plus an OPT record, and ordering those 8 records
//! (two priorities, mixed weights including 0).
//!
//! Run: `cargo bench -p deepmail-uri-rr --bench parse` (about 10 seconds).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use deepmail_uri_rr::{
    bsmtp_service_name, build_query, order_records, parse_response, Name, UriRecord, TYPE_URI,
};

const ID: u16 = 0x1234;

/// The response a resolver would send: header, the question, a CNAME to
/// `gw.moon.example`, 8 URI records owned by it (owners compressed to the
/// CNAME target), an OPT record.
fn response(name: &Name) -> Vec<u8> {
    let mut m = build_query(ID, name, TYPE_URI, None);
    m[2] = 0x81; // QR RD
    m[3] = 0x80; // RA
    m[7] = 9; // ANCOUNT: 1 CNAME + 8 URI
    m[11] = 1; // ARCOUNT: OPT
    let cname_rdata_at = m.len() + 12;
    // CNAME: owner -> question name; RDATA "gw" + pointer to "moon.example."
    // (offset 12 + 7 + 7 = 26).
    m.extend_from_slice(&[0xC0, 0x0C, 0, 5, 0, 1, 0, 0, 0x0E, 0x10, 0, 5]);
    m.extend_from_slice(&[2, b'g', b'w', 0xC0, 26]);
    for i in 0..8u16 {
        let target = format!("https://gw{i}.moon.example/inboundmail");
        let rdlength = (4 + target.len()) as u16;
        m.extend_from_slice(&[0xC0, cname_rdata_at as u8, 1, 0, 0, 1, 0, 0, 0x0E, 0x10]);
        m.extend_from_slice(&rdlength.to_be_bytes());
        m.extend_from_slice(&(10 + i / 4 * 10).to_be_bytes());
        m.extend_from_slice(&(i % 4 * 10).to_be_bytes());
        m.extend_from_slice(target.as_bytes());
    }
    m.extend_from_slice(&[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]);
    m
}

fn bench(c: &mut Criterion) {
    let name = bsmtp_service_name("moon.example").unwrap();
    let bytes = response(&name);
    let answer = parse_response(ID, &name, TYPE_URI, &bytes).unwrap();
    assert_eq!(answer.records.len(), 8);
    let records: Vec<UriRecord> = answer.records.clone();

    let mut group = c.benchmark_group("uri-rr");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("parse_response/8-uri+cname+opt", |b| {
        b.iter(|| parse_response(ID, &name, TYPE_URI, black_box(&bytes)))
    });
    group.throughput(Throughput::Elements(records.len() as u64));
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut random = move || {
        // xorshift64*: cheap, so the bench measures the ordering.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    group.bench_function("order_records/8", |b| {
        b.iter(|| order_records(black_box(&records), &mut random, &["https"]))
    });
    group.bench_function("build_query", |b| {
        b.iter(|| build_query(black_box(ID), black_box(&name), TYPE_URI, Some(1232)))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
