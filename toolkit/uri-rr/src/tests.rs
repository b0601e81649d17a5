//! Response parsing tests: round trips through the test-only builder,
//! compression pointers inside messages, every error class, CNAME chains,
//! EDNS, truncation, the hand-made `testdata/` vectors, and prefixes.

use std::collections::BTreeSet;

use crate::testutil::{hex_file, RData, Rec, Response, AD, QR, TC, T_OPT, T_TXT, T_URI};
use crate::*;

const ID: u16 = 0xbeef;
const Q: &str = "_bsmtp._https.moon.example";
const GW: &str = "https://gw.moon.example/inboundmail";
/// Where the first record after the question starts.
const AFTER_QUESTION: usize = 12 + 28 + 4;

fn q() -> Name {
    Name::parse(Q).unwrap()
}

fn parse(bytes: &[u8]) -> Result<Answer, DnsError> {
    parse_response(ID, &q(), TYPE_URI, bytes)
}

fn code(bytes: &[u8]) -> &'static str {
    match parse(bytes) {
        Ok(a) => panic!("expected an error, got {a:?}"),
        Err(e) => e.code(),
    }
}

fn malformed_at(bytes: &[u8]) -> (usize, &'static str) {
    match parse(bytes) {
        Err(DnsError::Malformed { offset, reason }) => (offset, reason),
        other => panic!("expected malformed, got {other:?}"),
    }
}

fn ok() -> Response {
    Response::to(ID, Q).uri(Q, 3600, 10, 1, GW)
}

// ---- round trips -------------------------------------------------------

#[test]
fn round_trip_from_build_query() {
    let name = bsmtp_service_name("moon.example").unwrap();
    let query = build_query(0x4242, &name, TYPE_URI, Some(DEFAULT_EDNS_UDP_SIZE));
    // The "server" reads the ID and question back out of the query bytes.
    let id = u16::from_be_bytes([query[0], query[1]]);
    let (qname, end) = crate::wire::read_name(&query, 12).unwrap();
    assert_eq!(qname, name);
    assert_eq!(&query[end..end + 4], &[0x01, 0x00, 0x00, 0x01]);
    let response = Response::to(id, &qname.to_string())
        .uri(&qname.to_string(), 300, 10, 1, GW)
        .uri(
            &qname.to_string(),
            600,
            20,
            5,
            "https://backup.moon.example/inboundmail",
        )
        .opt(1232, 0)
        .build();
    let answer = parse_response(0x4242, &name, TYPE_URI, &response).unwrap();
    assert_eq!(
        answer.records,
        [
            UriRecord {
                priority: 10,
                weight: 1,
                target: GW.into(),
                ttl: 300
            },
            UriRecord {
                priority: 20,
                weight: 5,
                target: "https://backup.moon.example/inboundmail".into(),
                ttl: 600
            },
        ]
    );
    assert_eq!(answer.ttl, 300);
    assert_eq!(answer.canonical_name, name);
    assert!(!answer.authenticated_data);
}

#[test]
fn uncompressed_response_parses_the_same() {
    let mut r = ok();
    let compressed = parse(&r.build()).unwrap();
    r.compress = false;
    let plain = r.build();
    assert!(plain.len() > ok().build().len());
    assert_eq!(parse(&plain).unwrap(), compressed);
}

#[test]
fn question_echo_is_case_insensitive() {
    // DNS 0x20 mixed case, as some resolvers echo it.
    let mixed = "_BsMtP._HTTPS.Moon.EXAMPLE";
    let bytes = Response::to(ID, mixed).uri(mixed, 60, 1, 1, GW).build();
    let answer = parse(&bytes).unwrap();
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.canonical_name, q());
}

#[test]
fn authenticated_data_flag() {
    assert!(parse(&ok().flag(AD).build()).unwrap().authenticated_data);
}

#[test]
fn other_records_are_ignored() {
    let mut r = ok();
    r.answers.push(Rec {
        owner: Q.into(),
        rtype: T_TXT,
        class: 1,
        ttl: 1,
        rdata: RData::Raw(b"\x05hello".to_vec()),
    });
    r.answers.push(Rec {
        owner: Q.into(),
        rtype: T_URI,
        class: 3, // CH
        ttl: 1,
        rdata: RData::Uri(1, 1, "https://chaos.example/".into()),
    });
    let r = r.uri(
        "_bsmtp._https.other.example",
        1,
        1,
        1,
        "https://other.example/",
    );
    let answer = parse(&r.build()).unwrap();
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.records[0].target, GW);
    assert_eq!(answer.ttl, 3600, "TTLs of ignored records do not count");
}

#[test]
fn ttl_with_top_bit_reads_as_zero() {
    let bytes = Response::to(ID, Q).uri(Q, 0x8000_0001, 1, 1, GW).build();
    let answer = parse(&bytes).unwrap();
    assert_eq!((answer.ttl, answer.records[0].ttl), (0, 0));
}

#[test]
fn trailing_octets_are_ignored() {
    let mut bytes = ok().build();
    bytes.extend_from_slice(b"\x00\x00junk");
    assert_eq!(parse(&bytes).unwrap(), parse(&ok().build()).unwrap());
}

// ---- compression pointers inside messages ------------------------------

#[test]
fn answer_owner_pointer_variants() {
    let good = ok().build();
    assert_eq!(&good[AFTER_QUESTION..AFTER_QUESTION + 2], &[0xC0, 0x0C]);

    // Pointer to a suffix: "moon.example." at 26 is not the owner.
    let mut suffix = good.clone();
    suffix[AFTER_QUESTION + 1] = 26;
    assert_eq!(code(&suffix), "no-data");

    // Self-pointer (a loop).
    let mut looped = good.clone();
    looped[AFTER_QUESTION + 1] = AFTER_QUESTION as u8;
    assert_eq!(malformed_at(&looped).0, AFTER_QUESTION);

    // Forward pointer, into the RDATA.
    let mut forward = good.clone();
    forward[AFTER_QUESTION + 1] = (AFTER_QUESTION + 20) as u8;
    let (at, why) = malformed_at(&forward);
    assert_eq!(at, AFTER_QUESTION);
    assert!(why.contains("forward"), "{why}");

    // Out of range.
    let mut out = good.clone();
    out[AFTER_QUESTION] = 0xC3;
    out[AFTER_QUESTION + 1] = 0xFF;
    assert!(malformed_at(&out).1.contains("past the end"));
}

#[test]
fn cname_target_pointer_loop() {
    let mut r = Response::to(ID, Q).cname(Q, 60, "alias.moon.example");
    r.answers[0].rdata = RData::Raw(vec![0xC0, 0x00]); // patched below
    let mut bytes = r.build();
    // The CNAME RDATA is the last two octets; point it at itself.
    let at = bytes.len() - 2;
    bytes[at + 1] = at as u8;
    assert_eq!(malformed_at(&bytes).0, at);
}

#[test]
fn name_over_255_octets_via_pointers_is_malformed() {
    // A CNAME target that prepends 63-octet labels to a pointer to the
    // question name (28 octets): 4 × 64 + 28 = 284 > 255.
    let mut rdata = Vec::new();
    for _ in 0..4 {
        rdata.push(63);
        rdata.extend(std::iter::repeat_n(b'x', 63));
    }
    rdata.extend_from_slice(&[0xC0, 0x0C]);
    let mut r = Response::to(ID, Q).cname(Q, 60, "x");
    r.answers[0].rdata = RData::Raw(rdata);
    assert!(malformed_at(&r.build()).1.contains("255"));
}

// ---- CNAME chains --------------------------------------------------------

#[test]
fn cname_chain_is_followed() {
    let bytes = Response::to(ID, Q)
        .cname(Q, 300, "a.moon.example")
        .cname("a.moon.example", 30, "b.relay.example")
        .uri("b.relay.example", 120, 1, 1, GW)
        .build();
    let answer = parse(&bytes).unwrap();
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.ttl, 30, "the CNAME TTL limits the answer's");
    assert_eq!(
        answer.canonical_name,
        Name::parse("b.relay.example").unwrap()
    );
}

#[test]
fn cname_chain_in_any_order() {
    let bytes = Response::to(ID, Q)
        .uri("b.relay.example", 120, 1, 1, GW)
        .cname("a.moon.example", 300, "b.relay.example")
        .cname(Q, 300, "a.moon.example")
        .build();
    assert_eq!(parse(&bytes).unwrap().ttl, 120);
}

#[test]
fn uri_records_at_the_alias_itself_are_not_used() {
    // Only the end of the chain owns the answer.
    let bytes = Response::to(ID, Q)
        .uri(Q, 60, 1, 1, "https://stale.example/")
        .cname(Q, 60, "b.relay.example")
        .uri("b.relay.example", 60, 1, 1, GW)
        .build();
    let answer = parse(&bytes).unwrap();
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.records[0].target, GW);
}

#[test]
fn cname_loops_are_errors() {
    let two = Response::to(ID, Q)
        .cname(Q, 60, "a.moon.example")
        .cname("a.moon.example", 60, Q)
        .build();
    assert_eq!(code(&two), "cname-chain");
    let selfloop = Response::to(ID, Q).cname(Q, 60, Q).build();
    assert_eq!(code(&selfloop), "cname-chain");
    // Loop not through the start: Q -> a -> b -> a.
    let inner = Response::to(ID, Q)
        .cname(Q, 60, "a.example")
        .cname("a.example", 60, "b.example")
        .cname("b.example", 60, "A.EXAMPLE")
        .build();
    let e = parse(&inner).unwrap_err();
    assert_eq!(e.code(), "cname-chain");
    assert!(e.to_string().contains("loop"), "{e}");
}

#[test]
fn cname_chain_length_is_bounded() {
    let chain = |hops: usize| {
        let mut r = Response::to(ID, Q);
        let mut owner = Q.to_owned();
        for i in 0..hops {
            let next = format!("hop{i}.example");
            r = r.cname(&owner, 60, &next);
            owner = next;
        }
        r.uri(&owner, 60, 1, 1, GW).build()
    };
    assert!(parse(&chain(MAX_CNAME_CHAIN)).is_ok());
    assert_eq!(code(&chain(MAX_CNAME_CHAIN + 1)), "cname-chain");
}

#[test]
fn cname_fork_is_an_error() {
    let bytes = Response::to(ID, Q)
        .cname(Q, 60, "a.example")
        .cname(Q, 60, "b.example")
        .build();
    assert_eq!(code(&bytes), "cname-chain");
}

#[test]
fn cname_to_name_without_uri_is_no_data() {
    let bytes = Response::to(ID, Q)
        .cname(Q, 60, "a.example")
        .soa("example", 600, 120)
        .build();
    assert_eq!(
        parse(&bytes).unwrap_err(),
        DnsError::NoData {
            negative_ttl: Some(120)
        }
    );
}

#[test]
fn cname_rdata_must_be_exactly_one_name() {
    let mut r = Response::to(ID, Q).cname(Q, 60, "a.example");
    r.answers[0].rdata = RData::Raw(b"\x01a\x07example\x00\x00".to_vec());
    assert!(malformed_at(&r.build()).1.contains("CNAME RDATA"));
}

// ---- negative answers ------------------------------------------------------

#[test]
fn nxdomain_negative_ttl_is_min_of_soa_ttl_and_minimum() {
    let nx = |ttl, min| {
        parse(
            &Response::to(ID, Q)
                .rcode(3)
                .soa("moon.example", ttl, min)
                .build(),
        )
        .unwrap_err()
    };
    assert_eq!(
        nx(3600, 900),
        DnsError::NxDomain {
            negative_ttl: Some(900)
        }
    );
    assert_eq!(
        nx(300, 3600),
        DnsError::NxDomain {
            negative_ttl: Some(300)
        }
    );
    assert_eq!(nx(300, 3600).negative_ttl(), Some(300));
}

#[test]
fn nxdomain_without_soa() {
    let e = parse(&Response::to(ID, Q).rcode(3).build()).unwrap_err();
    assert_eq!(e, DnsError::NxDomain { negative_ttl: None });
    assert!(e.to_string().contains("do not cache"), "{e}");
}

#[test]
fn no_data_with_and_without_soa() {
    let with = Response::to(ID, Q).soa("moon.example", 600, 60).build();
    assert_eq!(
        parse(&with).unwrap_err(),
        DnsError::NoData {
            negative_ttl: Some(60)
        }
    );
    // A SOA of an unrelated zone does not count.
    let unrelated = Response::to(ID, Q).soa("mars.example", 600, 60).build();
    assert_eq!(
        parse(&unrelated).unwrap_err(),
        DnsError::NoData { negative_ttl: None }
    );
    assert_eq!(code(&Response::to(ID, Q).build()), "no-data");
}

#[test]
fn bad_soa_rdata_is_malformed() {
    let mut r = Response::to(ID, Q).soa("moon.example", 600, 60);
    if let RData::Soa(..) = r.authority[0].rdata {
        r.authority[0].rdata = RData::Raw(b"\x00\x00\x00\x00\x00".to_vec());
    }
    assert!(malformed_at(&r.build()).1.contains("SOA"));
}

// ---- header and question checks ------------------------------------------

#[test]
fn rcodes() {
    assert_eq!(code(&ok().rcode(2).build()), "servfail");
    assert_eq!(code(&ok().rcode(5).build()), "refused");
    for rcode in [1, 4, 6, 9, 15] {
        assert_eq!(
            parse(&ok().rcode(rcode).build()).unwrap_err(),
            DnsError::OtherRcode { rcode }
        );
    }
}

#[test]
fn extended_rcode_from_opt() {
    // BADVERS (16): header RCODE 0, OPT upper bits 1 (RFC 6891 §6.1.3).
    let bytes = Response::to(ID, Q).opt(1232, 1).build();
    assert_eq!(
        parse(&bytes).unwrap_err(),
        DnsError::OtherRcode { rcode: 16 }
    );
}

#[test]
fn error_rcode_without_question_is_accepted() {
    let mut r = Response::to(ID, Q).rcode(1);
    r.questions.clear();
    assert_eq!(
        parse(&r.build()).unwrap_err(),
        DnsError::OtherRcode { rcode: 1 }
    );
    let mut r = Response::to(ID, Q).rcode(2);
    r.questions.clear();
    assert_eq!(code(&r.build()), "servfail");
}

#[test]
fn question_count_must_be_one() {
    let mut none = ok();
    none.questions.clear();
    assert_eq!(code(&none.build()), "question-mismatch");
    let mut two = ok();
    two.questions.push((Q.into(), T_URI, 1));
    assert_eq!(code(&two.build()), "question-mismatch");
}

#[test]
fn question_mismatches() {
    let other_name = Response::to(ID, "_bsmtp._https.mars.example").build();
    let e = parse(&other_name).unwrap_err();
    assert_eq!(e.code(), "question-mismatch");
    assert!(e.to_string().contains("mars.example"), "{e}");

    let mut other_type = ok();
    other_type.questions[0].1 = T_TXT;
    assert_eq!(code(&other_type.build()), "question-mismatch");

    let mut other_class = ok();
    other_class.questions[0].2 = 3;
    assert_eq!(code(&other_class.build()), "question-mismatch");

    // A parent name is not the question either.
    let parent = Response::to(ID, "_https.moon.example").build();
    assert_eq!(code(&parent), "question-mismatch");
}

#[test]
fn id_mismatch() {
    let bytes = Response::to(ID ^ 1, Q).uri(Q, 1, 1, 1, GW).build();
    assert_eq!(
        parse(&bytes).unwrap_err(),
        DnsError::IdMismatch {
            expected: ID,
            found: ID ^ 1
        }
    );
}

#[test]
fn not_a_response() {
    let mut r = ok();
    r.flags &= !QR;
    assert_eq!(code(&r.build()), "not-a-response");
    // Our own query reflected back.
    let query = build_query(ID, &q(), TYPE_URI, Some(1232));
    assert_eq!(code(&query), "not-a-response");
}

#[test]
fn opcode_must_be_query() {
    // A response copies its query's OPCODE, so another one answers no query of ours.
    let mut r = ok();
    r.flags |= 2 << 11; // STATUS
    assert_eq!(code(&r.build()), "not-a-response");
}

#[test]
fn short_header() {
    for len in 0..12 {
        assert_eq!(malformed_at(&ok().build()[..len]).0, len);
    }
}

// ---- truncation --------------------------------------------------------------

#[test]
fn truncated_response_is_an_error_even_with_complete_records() {
    assert_eq!(code(&ok().flag(TC).build()), "truncated");
    // A UDP response cut short by the server after the question.
    let cut = ok().flag(TC).build();
    assert_eq!(code(&cut[..AFTER_QUESTION + 5]), "truncated");
}

#[test]
fn truncation_does_not_bypass_id_and_question_checks() {
    let mut r = Response::to(ID ^ 7, Q).flag(TC);
    assert_eq!(code(&r.build()), "id-mismatch");
    r.id = ID;
    r.questions[0].0 = "evil.example".into();
    assert_eq!(code(&r.build()), "question-mismatch");
}

// ---- EDNS ------------------------------------------------------------------

#[test]
fn opt_record_in_additional_is_ignored() {
    let mut r = ok().opt(4096, 0);
    // An OPT with options (NSID, RFC 5001), and an unrelated additional record.
    r.additional[0].rdata = RData::Raw(b"\x00\x03\x00\x04ns-1".to_vec());
    r.additional.push(Rec {
        owner: "gw.moon.example".into(),
        rtype: 1,
        class: 1,
        ttl: 60,
        rdata: RData::Raw(vec![192, 0, 2, 1]),
    });
    let answer = parse(&r.build()).unwrap();
    assert_eq!(answer.records.len(), 1);
    assert_eq!(answer.ttl, 3600);
}

#[test]
fn opt_rules() {
    let two = ok().opt(1232, 0).opt(1232, 0).build();
    assert!(malformed_at(&two).1.contains("second OPT"));

    let mut in_answer = ok();
    in_answer.answers.push(Rec {
        owner: ".".into(),
        rtype: T_OPT,
        class: 1232,
        ttl: 0,
        rdata: RData::Raw(vec![]),
    });
    assert!(malformed_at(&in_answer.build()).1.contains("outside"));

    let mut named = ok().opt(1232, 0);
    named.additional[0].owner = "moon.example".into();
    assert!(malformed_at(&named.build()).1.contains("root"));
}

// ---- malformed records ---------------------------------------------------------

#[test]
fn rdlength_past_end() {
    let mut bytes = ok().build();
    let len_at = AFTER_QUESTION + 10;
    bytes[len_at] = 0x01; // RDLENGTH 256 + 39
    let (at, why) = malformed_at(&bytes);
    assert_eq!(at, bytes.len());
    assert!(why.contains("RDATA"), "{why}");
}

#[test]
fn invalid_uri_target_fails_with_message_offset() {
    let bytes = Response::to(ID, Q)
        .uri(Q, 60, 1, 1, "gw.moon.example/inboundmail")
        .build();
    let rdata_at = AFTER_QUESTION + 12;
    assert_eq!(
        parse(&bytes).unwrap_err(),
        DnsError::InvalidUri {
            offset: rdata_at + 4,
            reason: "target has no scheme (expected e.g. \"https:\" at the start)"
        }
    );
    let mut short = Response::to(ID, Q);
    short.answers.push(Rec {
        owner: Q.into(),
        rtype: T_URI,
        class: 1,
        ttl: 60,
        rdata: RData::Raw(vec![0, 1, 0]),
    });
    assert_eq!(malformed_at(&short.build()).0, rdata_at + 3);
    // An empty target leaves 4-octet RDATA: structurally short (RFC 7553 §4.5).
    let empty = Response::to(ID, Q).uri(Q, 60, 1, 1, "").build();
    assert_eq!(code(&empty), "malformed");
}

// ---- every class, every prefix -------------------------------------------------

#[test]
fn every_error_code_is_reachable() {
    let mut not_response = ok();
    not_response.flags &= !QR;
    let cases: Vec<Vec<u8>> = vec![
        ok().rcode(3).build(),
        Response::to(ID, Q).build(),
        ok().rcode(2).build(),
        ok().rcode(5).build(),
        ok().rcode(4).build(),
        ok().flag(TC).build(),
        Response::to(ID + 1, Q).build(),
        Response::to(ID, "other.example").build(),
        not_response.build(),
        ok().build()[..20].to_vec(),
        Response::to(ID, Q).uri(Q, 1, 1, 1, "no scheme").build(),
        Response::to(ID, Q).cname(Q, 1, Q).build(),
    ];
    let codes: BTreeSet<&str> = cases.iter().map(|c| code(c)).collect();
    let want: BTreeSet<&str> = [
        "nxdomain",
        "no-data",
        "servfail",
        "refused",
        "other-rcode",
        "truncated",
        "id-mismatch",
        "question-mismatch",
        "not-a-response",
        "malformed",
        "invalid-uri",
        "cname-chain",
    ]
    .into();
    assert_eq!(codes, want);
}

#[test]
fn error_messages_name_position_and_section() {
    let e = parse(&ok().build()[..20]).unwrap_err();
    let text = e.to_string();
    // The "_https" label at 19 is cut off at 20.
    assert!(text.starts_with("malformed at byte 19:"), "{text}");
    assert!(text.contains("RFC 1035"), "{text}");
    let text = DnsError::Truncated.to_string();
    assert!(text.contains("TCP"), "{text}");
}

/// Valid responses of every shape the tests use.
fn valid_responses() -> Vec<Vec<u8>> {
    vec![
        ok().build(),
        ok().opt(1232, 0).flag(AD).build(),
        Response::to(ID, Q)
            .cname(Q, 300, "a.moon.example")
            .cname("a.moon.example", 30, "b.relay.example")
            .uri("b.relay.example", 120, 1, 1, GW)
            .uri("b.relay.example", 120, 2, 1, "https://x.example/")
            .soa("relay.example", 60, 60)
            .opt(1232, 0)
            .build(),
        {
            let mut r = ok().uri(Q, 60, 20, 3, "https://backup.moon.example/");
            r.compress = false;
            r.build()
        },
    ]
}

#[test]
fn every_prefix_of_a_valid_response_is_an_error() {
    for full in valid_responses() {
        assert!(parse(&full).is_ok());
        for len in 0..full.len() {
            let result = parse(&full[..len]);
            assert!(
                result.is_err(),
                "prefix of {len}/{} octets parsed: {result:?}",
                full.len()
            );
        }
    }
}

#[test]
fn every_prefix_of_a_negative_response_is_still_an_error() {
    let full = Response::to(ID, Q)
        .rcode(3)
        .soa("moon.example", 60, 30)
        .build();
    let whole = parse(&full);
    assert_eq!(whole.as_ref().unwrap_err().negative_ttl(), Some(30));
    for len in 0..full.len() {
        let prefix = parse(&full[..len]);
        assert_eq!(prefix.unwrap_err().code(), "malformed", "prefix {len}");
    }
}

// ---- testdata/ ---------------------------------------------------------------

fn testdata(name: &str) -> Vec<u8> {
    let path = format!("{}/testdata/{name}", env!("CARGO_MANIFEST_DIR"));
    hex_file(&std::fs::read_to_string(&path).unwrap())
}

#[test]
fn testdata_noerror_two_uris() {
    let bytes = testdata("noerror-two-uris.hex");
    assert_eq!(bytes.len(), 161);
    let answer = parse_response(0xa1b2, &q(), TYPE_URI, &bytes).unwrap();
    let got: Vec<_> = answer
        .records
        .iter()
        .map(|r| (r.priority, r.weight, r.target.as_str(), r.ttl))
        .collect();
    assert_eq!(
        got,
        [
            (10, 1, GW, 3600),
            (20, 1, "https://backup.moon.example/inboundmail", 3600)
        ]
    );
    assert_eq!(answer.ttl, 3600);
    assert!(answer.authenticated_data);
    let first = order_records(&answer.records, &mut || 0, &["https"]);
    assert_eq!(first[0].target, GW);
}

#[test]
fn testdata_cname_chain() {
    let bytes = testdata("cname-chain.hex");
    assert_eq!(bytes.len(), 121);
    let answer = parse_response(0x4c7e, &q(), TYPE_URI, &bytes).unwrap();
    assert_eq!(
        answer.records,
        [UriRecord {
            priority: 5,
            weight: 10,
            target: "https://relay.example/bsmtp".into(),
            ttl: 60
        }]
    );
    assert_eq!(answer.ttl, 60);
    assert_eq!(
        answer.canonical_name.to_string(),
        "_bsmtp._https.relay.example."
    );
    assert!(!answer.authenticated_data);
}

#[test]
fn testdata_nxdomain_soa() {
    let bytes = testdata("nxdomain-soa.hex");
    assert_eq!(bytes.len(), 95);
    let mars = bsmtp_service_name("mars.example").unwrap();
    assert_eq!(
        parse_response(0x0f0f, &mars, TYPE_URI, &bytes).unwrap_err(),
        DnsError::NxDomain {
            negative_ttl: Some(900)
        }
    );
}

#[test]
fn testdata_nodata_soa_edns() {
    let bytes = testdata("nodata-soa-edns.hex");
    assert_eq!(bytes.len(), 106);
    assert_eq!(
        parse_response(0x7777, &q(), TYPE_URI, &bytes).unwrap_err(),
        DnsError::NoData {
            negative_ttl: Some(300)
        }
    );
}

#[test]
fn testdata_truncated() {
    let bytes = testdata("truncated.hex");
    assert_eq!(bytes.len(), 55);
    assert_eq!(
        parse_response(0x5151, &q(), TYPE_URI, &bytes).unwrap_err(),
        DnsError::Truncated
    );
}

#[test]
fn testdata_prefixes_never_parse() {
    for file in [
        "noerror-two-uris.hex",
        "cname-chain.hex",
        "nxdomain-soa.hex",
        "nodata-soa-edns.hex",
    ] {
        let bytes = testdata(file);
        let id = u16::from_be_bytes([bytes[0], bytes[1]]);
        let (question, _) = crate::wire::read_name(&bytes, 12).unwrap();
        let full = parse_response(id, &question, TYPE_URI, &bytes);
        for len in 0..bytes.len() {
            let prefix = parse_response(id, &question, TYPE_URI, &bytes[..len]);
            assert!(
                prefix.is_err() && prefix != full,
                "{file}: prefix {len} gave {prefix:?}"
            );
        }
    }
}
