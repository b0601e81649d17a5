//! The order in which to try URI records: by priority, then RFC 2782's
//! weighted random selection within a priority (RFC 7553 §4.3, §4.4;
//! RFC 2782 "Weight").

use crate::uri::UriRecord;

/// Orders `records` for trying one after another.
///
/// 1. Keeps only records whose scheme is in `schemes` (ASCII
///    case-insensitively; an empty `schemes` keeps nothing), e.g.
///    `&["https"]` for deepmail's gateway.
/// 2. Sorts by priority, lowest first (RFC 7553 §4.3).
/// 3. Within a priority, repeats RFC 2782's weighted selection until every
///    record is placed: weight-0 records go to the front of the pending
///    list (the rest keep the order they came in), a number is drawn from
///    `0..=sum` of the pending weights, and the first record whose running
///    sum reaches it is taken. A weight-0 record is thus picked only when
///    the draw is 0, a small chance of 1/(sum + 1).
///
///    Two refinements where the RFC's text is known to misfire (RFC 2782
///    errata discussion): when no weight-0 record is pending the draw is
///    from `1..=sum`, so weights are followed exactly instead of handing
///    the first record one extra share (weights 1 and 1 give ½ each, not
///    ⅔ and ⅓); and when every pending weight is 0 the pick is uniform
///    (the RFC lets the list be arranged "in any order"), not always the
///    first record.
///
/// `random` is the only source of randomness: each call must return a
/// uniformly distributed `u64`. It is called once per placement that has a
/// choice (never for the last record of a priority), so the result is
/// deterministic for a given sequence — seed it for tests, feed it from
/// the host's CSPRNG in production.
///
/// ```
#[doc = include_str!("../examples/order_records.rs")]
/// ```
pub fn order_records(
    records: &[UriRecord],
    random: &mut impl FnMut() -> u64,
    schemes: &[&str],
) -> Vec<UriRecord> {
    let mut allowed: Vec<&UriRecord> = records
        .iter()
        .filter(|r| {
            let scheme = r.scheme();
            schemes.iter().any(|s| s.eq_ignore_ascii_case(scheme))
        })
        .collect();
    // Stable: equal priorities keep the order they came in.
    allowed.sort_by_key(|r| r.priority);

    let mut ordered = Vec::with_capacity(allowed.len());
    for group in allowed.chunk_by(|a, b| a.priority == b.priority) {
        let mut pending: Vec<&UriRecord> = group
            .iter()
            .filter(|r| r.weight == 0)
            .chain(group.iter().filter(|r| r.weight != 0))
            .copied()
            .collect();
        while !pending.is_empty() {
            let index = pick_weighted(&pending, random);
            ordered.push(pending.remove(index).clone());
        }
    }
    ordered
}

/// One RFC 2782 selection step over `pending` (weight-0 records first).
fn pick_weighted(pending: &[&UriRecord], random: &mut impl FnMut() -> u64) -> usize {
    let last = pending.len() - 1;
    if last == 0 {
        return 0;
    }
    let sum: u64 = pending.iter().map(|r| u64::from(r.weight)).sum();
    if sum == 0 {
        // Cannot truncate: the result is below pending.len().
        return below(random(), pending.len() as u64) as usize;
    }
    let has_zero = pending[0].weight == 0;
    let draw = if has_zero {
        below(random(), sum + 1)
    } else {
        1 + below(random(), sum)
    };
    let mut running = 0u64;
    pending
        .iter()
        .position(|r| {
            running += u64::from(r.weight);
            running >= draw
        })
        .unwrap_or(last)
}

/// Maps a uniform `u64` to a uniform number in `0..n` (multiply-shift; the
/// bias is below n / 2^64, nil for DNS-sized weights).
fn below(random: u64, n: u64) -> u64 {
    ((u128::from(random) * u128::from(n)) >> 64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(priority: u16, weight: u16, target: &str) -> UriRecord {
        UriRecord {
            priority,
            weight,
            target: target.into(),
            ttl: 60,
        }
    }

    /// splitmix64: a tiny, well-mixed, seedable sequence for tests.
    fn rng(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    /// How often each target comes first over `n` orderings.
    fn first_counts(records: &[UriRecord], n: usize) -> Vec<usize> {
        let mut random = rng(7);
        let mut counts = vec![0; records.len()];
        for _ in 0..n {
            let first = &order_records(records, &mut random, &["https"])[0];
            let i = records.iter().position(|r| r == first).unwrap();
            counts[i] += 1;
        }
        counts
    }

    #[test]
    fn filters_schemes_and_sorts_by_priority() {
        let records = [
            uri(30, 5, "https://c.example/"),
            uri(10, 5, "HTTPS://a.example/"),
            uri(20, 5, "http://insecure.example/"),
            uri(20, 5, "https://b.example/"),
            uri(5, 5, "mailto:postmaster@moon.example"),
        ];
        let ordered = order_records(&records, &mut rng(1), &["https"]);
        let targets: Vec<_> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(
            targets,
            [
                "HTTPS://a.example/",
                "https://b.example/",
                "https://c.example/"
            ]
        );
        assert!(order_records(&records, &mut rng(1), &[]).is_empty());
        assert_eq!(
            order_records(&records, &mut rng(1), &["https", "http", "mailto"]).len(),
            5
        );
    }

    #[test]
    fn deterministic_for_a_given_sequence() {
        let records: Vec<_> = (0..8)
            .map(|i| uri(10, i * 10, &format!("https://{i}.example/")))
            .collect();
        let a = order_records(&records, &mut rng(99), &["https"]);
        let b = order_records(&records, &mut rng(99), &["https"]);
        assert_eq!(a, b);
        let differs = (0..20u64).any(|s| order_records(&records, &mut rng(s), &["https"]) != a);
        assert!(differs, "the random source must matter");
    }

    #[test]
    fn draws_only_when_there_is_a_choice() {
        let mut calls = 0;
        let mut random = || {
            calls += 1;
            0
        };
        let records = [uri(1, 5, "https://a/"), uri(2, 5, "https://b/")];
        order_records(&records, &mut random, &["https"]);
        assert_eq!(calls, 0);
    }

    #[test]
    fn draw_zero_takes_weight_zero_record_first() {
        // RFC 2782: weight-0 records lead the list, so the draw 0 picks them.
        let records = [uri(1, 9, "https://heavy/"), uri(1, 0, "https://zero/")];
        let ordered = order_records(&records, &mut || 0, &["https"]);
        assert_eq!(ordered[0].target, "https://zero/");
        let ordered = order_records(&records, &mut || u64::MAX, &["https"]);
        assert_eq!(ordered[0].target, "https://heavy/");
    }

    #[test]
    fn weight_zero_gets_a_small_chance() {
        // P(zero first) = 1 / (9 + 1).
        let records = [uri(1, 9, "https://heavy/"), uri(1, 0, "https://zero/")];
        let c = first_counts(&records, 20_000);
        assert!((1_600..2_400).contains(&c[1]), "{c:?}");
    }

    #[test]
    fn rfc2782_erratum_example_zero_one_one() {
        // {0, 1, 1}: each entry first a third of the time.
        let records = [
            uri(1, 0, "https://z/"),
            uri(1, 1, "https://a/"),
            uri(1, 1, "https://b/"),
        ];
        let c = first_counts(&records, 30_000);
        for n in c {
            assert!((9_000..11_000).contains(&n), "{n}");
        }
    }

    #[test]
    fn equal_weights_without_zero_are_fair() {
        let records = [uri(1, 1, "https://a/"), uri(1, 1, "https://b/")];
        let c = first_counts(&records, 20_000);
        assert!((9_400..10_600).contains(&c[0]), "{c:?}");
    }

    #[test]
    fn weights_are_followed() {
        let records = [
            uri(1, 10, "https://a/"),
            uri(1, 30, "https://b/"),
            uri(1, 60, "https://c/"),
        ];
        let c = first_counts(&records, 30_000);
        // Expected 3 000, 9 000, 18 000.
        assert!((2_600..3_400).contains(&c[0]), "{c:?}");
        assert!((8_400..9_600).contains(&c[1]), "{c:?}");
        assert!((17_200..18_800).contains(&c[2]), "{c:?}");
    }

    #[test]
    fn all_zero_weights_are_uniform() {
        let records = [
            uri(1, 0, "https://a/"),
            uri(1, 0, "https://b/"),
            uri(1, 0, "https://c/"),
        ];
        let c = first_counts(&records, 30_000);
        for n in &c {
            assert!((9_000..11_000).contains(n), "{c:?}");
        }
    }

    #[test]
    fn below_stays_in_range() {
        for n in [1u64, 2, 3, 65_536, u64::MAX] {
            for r in [0, 1, u64::MAX / 2, u64::MAX] {
                assert!(below(r, n) < n);
            }
        }
    }
}

/// A deterministic pseudo-random sequence (splitmix64) from `seed`, for
/// [`order_records`]: the same seed always gives the same order, which is
/// what tests and reproducible runs need. Not for secrets.
pub fn seeded_random(seed: u64) -> impl FnMut() -> u64 {
    let mut state = seed;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod seeded_random_tests {
    use super::seeded_random;

    #[test]
    fn same_seed_same_sequence_different_seed_different_sequence() {
        let a: Vec<u64> = std::iter::repeat_with(seeded_random(7)).take(4).collect();
        let b: Vec<u64> = std::iter::repeat_with(seeded_random(7)).take(4).collect();
        let c: Vec<u64> = std::iter::repeat_with(seeded_random(8)).take(4).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.windows(2).all(|w| w[0] != w[1]));
    }
}
