//! Property tests: hostile bytes never panic, responses round-trip through
//! an independent builder, names round-trip, TCP framing survives any
//! split, and `order_records` is a priority-sorted permutation whose
//! weighted draws follow RFC 2782.

#[path = "../src/testutil.rs"]
mod testutil;

use deepmail_uri_rr::{
    build_query, frame_tcp, order_records, parse_response, unframe_tcp, Name, UriRecord, TYPE_URI,
};
use proptest::prelude::*;
use testutil::Response;

const ID: u16 = 0x5eed;
const Q: &str = "_bsmtp._https.moon.example";

fn q() -> Name {
    Name::parse(Q).unwrap()
}

/// splitmix64, seeded.
fn rng(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn target() -> impl Strategy<Value = String> {
    (
        prop_oneof![Just("https"), Just("http"), Just("ftp"), Just("HTTPS")],
        "[a-z]{1,12}(\\.[a-z]{1,8}){0,2}",
        "(/[a-zA-Z0-9._~-]{0,12}){0,3}",
    )
        .prop_map(|(s, host, path)| format!("{s}://{host}{path}"))
}

fn record() -> impl Strategy<Value = UriRecord> {
    (
        0u16..4,
        prop_oneof![Just(0u16), 0u16..5, any::<u16>()],
        target(),
        0u32..100_000,
    )
        .prop_map(|(priority, weight, target, ttl)| UriRecord {
            priority,
            weight,
            target,
            ttl,
        })
}

/// A header and question that pass the checks, then the given tail.
fn valid_prefix(flags: u16, counts: [u16; 3]) -> Vec<u8> {
    let mut m = Response::to(ID, Q).build();
    m[2..4].copy_from_slice(&flags.to_be_bytes());
    for (i, c) in counts.iter().enumerate() {
        m[6 + 2 * i..8 + 2 * i].copy_from_slice(&c.to_be_bytes());
    }
    m
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = parse_response(ID, &q(), TYPE_URI, &bytes);
        let _ = deepmail_uri_rr::parse_uri_rdata(&bytes);
        let _ = unframe_tcp(&bytes);
    }

    #[test]
    fn random_records_after_a_valid_question_never_panic(
        flags in prop_oneof![Just(0x8180u16), any::<u16>()],
        counts in proptest::array::uniform3(prop_oneof![0u16..4, any::<u16>()]),
        tail in proptest::collection::vec(
            prop_oneof![any::<u8>(), Just(0xC0), Just(0x0C), Just(0), Just(1), Just(5), Just(6), Just(41)],
            0..400,
        ),
    ) {
        let mut m = valid_prefix(flags, counts);
        m.extend_from_slice(&tail);
        let _ = parse_response(ID, &q(), TYPE_URI, &m);
    }

    #[test]
    fn mutated_valid_responses_never_panic(
        records in proptest::collection::vec(record(), 1..5),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut r = Response::to(ID, Q).cname(Q, 60, "gw.moon.example").soa("moon.example", 60, 30);
        for rec in &records {
            r = r.uri("gw.moon.example", rec.ttl, rec.priority, rec.weight, &rec.target);
        }
        let mut bytes = r.opt(1232, 0).build();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = parse_response(ID, &q(), TYPE_URI, &bytes);
    }

    #[test]
    fn responses_round_trip(
        records in proptest::collection::vec(record(), 1..10),
        compress in any::<bool>(),
        edns in any::<bool>(),
    ) {
        let mut r = Response::to(ID, Q);
        for rec in &records {
            r = r.uri(Q, rec.ttl, rec.priority, rec.weight, &rec.target);
        }
        if edns {
            r = r.opt(1232, 0);
        }
        r.compress = compress;
        let answer = parse_response(ID, &q(), TYPE_URI, &r.build()).unwrap();
        prop_assert_eq!(&answer.records, &records);
        prop_assert_eq!(answer.ttl, records.iter().map(|r| r.ttl).min().unwrap());
    }

    #[test]
    fn queries_carry_the_name(labels in proptest::collection::vec("[a-zA-Z0-9_-]{1,63}", 1..5), id: u16, edns: Option<u16>) {
        let text = labels.join(".");
        let Ok(name) = Name::parse(&text) else {
            // Only possible when the name is over 255 octets.
            prop_assert!(text.len() + 2 > 255);
            return Ok(());
        };
        prop_assert!(name.as_wire().len() <= 255);
        prop_assert_eq!(Name::parse(&name.to_string()).unwrap(), name.clone());
        prop_assert_eq!(Name::parse(&text.to_uppercase()).unwrap(), name.clone());
        let query = build_query(id, &name, TYPE_URI, edns);
        prop_assert_eq!(&query[..2], &id.to_be_bytes());
        prop_assert_eq!(&query[12..12 + name.as_wire().len()], name.as_wire());
        prop_assert_eq!(query.len(), 12 + name.as_wire().len() + 4 + if edns.is_some() { 11 } else { 0 });
    }

    #[test]
    fn tcp_framing_survives_any_split(
        messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5),
        chunk in 1usize..64,
    ) {
        let stream: Vec<u8> = messages.iter().flat_map(|m| frame_tcp(m)).collect();
        // Feed the stream in chunks, taking messages off the front as they complete.
        let mut buffer = Vec::new();
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            buffer.extend_from_slice(piece);
            while let Some((msg, used)) = unframe_tcp(&buffer) {
                got.push(msg.to_vec());
                buffer.drain(..used);
            }
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(got, messages);
    }

    #[test]
    fn order_is_a_sorted_permutation_of_the_allowed(
        records in proptest::collection::vec(record(), 0..16),
        seed: u64,
        allow_http in any::<bool>(),
    ) {
        let schemes: &[&str] = if allow_http { &["https", "http"] } else { &["https"] };
        let ordered = order_records(&records, &mut rng(seed), schemes);
        let mut want: Vec<_> = records
            .iter()
            .filter(|r| schemes.iter().any(|s| r.scheme().eq_ignore_ascii_case(s)))
            .cloned()
            .collect();
        let mut got = ordered.clone();
        let key = |r: &UriRecord| (r.priority, r.weight, r.target.clone(), r.ttl);
        want.sort_by_key(key);
        got.sort_by_key(key);
        prop_assert_eq!(got, want);
        prop_assert!(ordered.windows(2).all(|w| w[0].priority <= w[1].priority));
        // Deterministic for the same sequence.
        prop_assert_eq!(order_records(&records, &mut rng(seed), schemes), ordered);
    }
}

/// Over many draws with a fixed seed, how often each record comes first
/// matches RFC 2782's probabilities: w / sum without weight-0 records, and
/// w / (sum + 1) with them (the first weight-0 record taking 1 / (sum + 1)).
#[test]
fn first_choice_follows_weights() {
    const DRAWS: usize = 40_000;
    let cases: [&[u16]; 5] = [
        &[1, 1, 1, 1],
        &[10, 20, 70],
        &[0, 1, 1],
        &[0, 0, 8],
        &[65_535, 1, 30_000],
    ];
    let mut random = rng(2026);
    for weights in cases {
        let records: Vec<UriRecord> = weights
            .iter()
            .enumerate()
            .map(|(i, &weight)| UriRecord {
                priority: 7,
                weight,
                target: format!("https://{i}.moon.example/"),
                ttl: 60,
            })
            .collect();
        let mut counts = vec![0usize; records.len()];
        for _ in 0..DRAWS {
            let first = &order_records(&records, &mut random, &["https"])[0];
            counts[records.iter().position(|r| r == first).unwrap()] += 1;
        }
        let sum: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let first_zero = weights.iter().position(|&w| w == 0);
        let denominator = (sum + u64::from(first_zero.is_some())) as f64;
        for (i, &w) in weights.iter().enumerate() {
            let expected = if Some(i) == first_zero {
                1.0 / denominator
            } else {
                f64::from(w) / denominator
            };
            let observed = counts[i] as f64 / DRAWS as f64;
            // Generous: 5 standard deviations plus 0.2 percentage points.
            let sd = (expected * (1.0 - expected) / DRAWS as f64).sqrt();
            assert!(
                (observed - expected).abs() <= 5.0 * sd + 0.002,
                "weights {weights:?}: record {i} first {observed:.4}, expected {expected:.4}"
            );
        }
    }
}

/// Every position, not just the first: with weights 1, 2, 3, 4 the heavier
/// records sit earlier on average.
#[test]
fn heavier_records_come_earlier_on_average() {
    let records: Vec<UriRecord> = [1u16, 2, 3, 4]
        .iter()
        .map(|&weight| UriRecord {
            priority: 1,
            weight,
            target: format!("https://w{weight}.example/"),
            ttl: 60,
        })
        .collect();
    let mut random = rng(11);
    let mut position_sum = [0usize; 4];
    for _ in 0..10_000 {
        for (pos, r) in order_records(&records, &mut random, &["https"])
            .iter()
            .enumerate()
        {
            position_sum[usize::from(r.weight) - 1] += pos;
        }
    }
    assert!(
        position_sum.windows(2).all(|w| w[0] > w[1]),
        "{position_sum:?}"
    );
}
