//! Encode and decode throughput for one message of 1 KiB to 16 MiB of
//! ordinary text (72-octet lines, one in 16 starting with a dot).
//!
//! `cargo bench -p deepmail-bsmtp` (or `-- 1MiB` for one size).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use deepmail_bsmtp::{
    decode, encode, DecodeOptions, EncodeOptions, Envelope, ForwardPath, Message, SmtpParam,
};

const SIZES: [(&str, usize); 4] = [
    ("1KiB", 1 << 10),
    ("64KiB", 64 << 10),
    ("1MiB", 1 << 20),
    ("16MiB", 16 << 20),
];

fn content(size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 80);
    let mut n = 0usize;
    while out.len() < size {
        if n.is_multiple_of(16) {
            out.push(b'.');
        }
        out.extend_from_slice(
            format!("{n:08} The quick brown fox jumps over the lazy dog, again and again.")
                .as_bytes(),
        );
        out.extend_from_slice(b"\r\n");
        n += 1;
    }
    out
}

fn message(size: usize) -> Message {
    Message {
        envelope: Envelope {
            reverse_path: "alice@earth.example".into(),
            mail_parameters: vec![SmtpParam::new("BODY", "8BITMIME")],
            forward_paths: vec![ForwardPath::new("bob@moon.example")],
        },
        content: content(size),
    }
}

fn codec(c: &mut Criterion) {
    for (name, size) in SIZES {
        let messages = vec![message(size)];
        let batch = encode(&messages, &EncodeOptions::default()).expect("bench message encodes");
        let mut group = c.benchmark_group("codec");
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1 << 20 {
            group.sample_size(10);
        }
        group.bench_with_input(BenchmarkId::new("encode", name), &messages, |b, m| {
            b.iter(|| encode(black_box(m), &EncodeOptions::default()))
        });
        group.bench_with_input(BenchmarkId::new("decode", name), &batch, |b, batch| {
            b.iter(|| decode(black_box(batch), &DecodeOptions::default()))
        });
        // What decoding is at best: one copy of the batch.
        let mut copy = vec![0u8; batch.len()];
        group.bench_with_input(BenchmarkId::new("memcpy", name), &batch, |b, batch| {
            b.iter(|| copy.copy_from_slice(black_box(batch)))
        });
        group.finish();
    }
}

criterion_group!(benches, codec);
criterion_main!(benches);
