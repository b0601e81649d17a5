//! Response parsing (RFC 1035 §4.1): header and question checks (RFC 5452
//! §4.3), CNAME chains (RFC 1034 §3.6.2, §5.2.2), URI answers (RFC 7553),
//! EDNS(0) OPT (RFC 6891 §6.1) and negative answers (RFC 2308).

use crate::error::DnsError;
use crate::name::Name;
use crate::query::{CLASS_IN, TYPE_OPT};
use crate::uri::{parse_uri_rdata_at, UriRecord, TYPE_URI};
use crate::wire::{read_name, Reader, HEADER_LEN};

const TYPE_CNAME: u16 = 5;
const TYPE_SOA: u16 = 6;

/// Most CNAME records followed from the question name to the URI records.
/// Recursive resolvers give up at similar depths (BIND follows 16, Unbound
/// 11); a URI owner behind more than 8 aliases is a misconfiguration.
pub const MAX_CNAME_CHAIN: usize = 8;

/// The URI records of a positive answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The URI RRs owned by [`Answer::canonical_name`], in message order.
    /// Never empty (that is [`DnsError::NoData`]).
    pub records: Vec<UriRecord>,
    /// How long the answer may be cached: the smallest TTL of the records
    /// used, CNAMEs on the way included (RFC 2181 §5.2, §10.1.2).
    pub ttl: u32,
    /// Whether the resolver set AD: it validated the answer with DNSSEC
    /// (RFC 4035 §3.2.3). Only worth anything over a trusted path to a
    /// validating resolver (RFC 6840 §5.8).
    pub authenticated_data: bool,
    /// The owner of the URI records: the question name, or the last target
    /// of the CNAME chain from it.
    pub canonical_name: Name,
}

/// One resource record, RDATA still encoded.
struct RawRecord<'a> {
    owner: Name,
    rtype: u16,
    class: u16,
    /// TTL as read, values over 2^31 - 1 made 0 (RFC 2181 §8).
    ttl: u32,
    /// Offset of the RDATA in the message, for decoding names in it and
    /// for error offsets.
    rdata_offset: usize,
    rdata: &'a [u8],
}

/// Where a record was read from.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Answer,
    Authority,
    Additional,
}

/// Parses and checks the response to a query built by
/// [`crate::build_query`]`(query_id, question, qtype, _)`, and returns the
/// URI records for `question`.
///
/// Checks, in this order, each failing with its own [`DnsError`] (see
/// [`DnsError::code`]):
///
/// 1. a 12-octet header (`malformed`), QR set (`not-a-response`), the ID
///    (`id-mismatch`), opcode QUERY (`malformed`);
/// 2. exactly one question, equal to `question` (ASCII case-insensitively,
///    RFC 4343), `qtype` and class IN (`question-mismatch`; a response
///    with an error RCODE and no question is accepted, as FORMERR
///    responses often have none);
/// 3. TC clear (`truncated`: per RFC 2181 §9 a truncated response is not
///    used at all, even if it holds complete records; repeat the query
///    over TCP with [`crate::frame_tcp`]);
/// 4. every record of every section well formed (`malformed`, with the
///    byte offset; names may be compressed, RFC 1035 §4.1.4), at most one
///    OPT record, only in the additional section, owned by the root;
/// 5. the RCODE, extended by the OPT record (RFC 6891 §6.1.3):
///    `servfail`, `refused`, `nxdomain`, `other-rcode`;
/// 6. CNAMEs in the answer section are followed from `question`, at most
///    [`MAX_CNAME_CHAIN`] of them, no loops or forks (`cname-chain`); the
///    URI records owned by the last name are the answer, each with a valid
///    target (`invalid-uri`), and there must be at least one (`no-data`).
///
/// `nxdomain` and `no-data` carry the negative-caching TTL of RFC 2308 §5,
/// min(SOA TTL, SOA MINIMUM), from a SOA in the authority section whose
/// owner is the final name or an ancestor of it. Records of other names,
/// types or classes are ignored, as are octets after the last record.
///
/// ```
#[doc = include_str!("../examples/parse_response.rs")]
/// ```
pub fn parse_response(
    query_id: u16,
    question: &Name,
    qtype: u16,
    bytes: &[u8],
) -> Result<Answer, DnsError> {
    if bytes.len() < HEADER_LEN {
        return Err(DnsError::malformed(
            bytes.len(),
            "message shorter than the 12-octet header",
        ));
    }
    let mut r = Reader::new(bytes);
    let id = r.u16("header")?;
    let flags = r.u16("header")?;
    let qdcount = r.u16("header")?;
    let counts = [r.u16("header")?, r.u16("header")?, r.u16("header")?];

    if flags & 0x8000 == 0 {
        return Err(DnsError::NotAResponse {
            reason: "the QR bit is clear: this is a query",
        });
    }
    if (flags >> 11) & 0xF != 0 {
        return Err(DnsError::NotAResponse {
            reason: "the OPCODE is not QUERY (0), so this answers no query of ours",
        });
    }
    if id != query_id {
        return Err(DnsError::IdMismatch {
            expected: query_id,
            found: id,
        });
    }
    let truncated = flags & 0x0200 != 0;
    let authenticated_data = flags & 0x0020 != 0;
    let header_rcode = flags & 0x000F;

    match qdcount {
        1 => check_question(&mut r, question, qtype)?,
        0 if header_rcode != 0 => {}
        n => {
            return Err(DnsError::QuestionMismatch {
                detail: format!("response has {n} questions, the query had 1"),
            })
        }
    }
    if truncated {
        return Err(DnsError::Truncated);
    }

    let mut answers = Vec::new();
    let mut authority = Vec::new();
    let mut opt_rcode_high: Option<u8> = None;
    for (section, count) in [Section::Answer, Section::Authority, Section::Additional]
        .into_iter()
        .zip(counts)
    {
        for _ in 0..count {
            let owner_offset = r.position();
            let (record, raw_ttl) = read_record(&mut r)?;
            if record.rtype == TYPE_OPT {
                if section != Section::Additional {
                    return Err(DnsError::malformed(
                        owner_offset,
                        "OPT record outside the additional section (RFC 6891 §6.1.1)",
                    ));
                }
                if !record.owner.is_root() {
                    return Err(DnsError::malformed(
                        owner_offset,
                        "OPT record not owned by the root (RFC 6891 §6.1.2)",
                    ));
                }
                if opt_rcode_high.is_some() {
                    return Err(DnsError::malformed(
                        owner_offset,
                        "second OPT record (RFC 6891 §6.1.1)",
                    ));
                }
                opt_rcode_high = Some((raw_ttl >> 24) as u8);
                continue;
            }
            match section {
                Section::Answer => answers.push(record),
                Section::Authority => authority.push(record),
                Section::Additional => {}
            }
        }
    }

    let rcode = u16::from(opt_rcode_high.unwrap_or(0)) << 4 | header_rcode;
    match rcode {
        0 | 3 => {}
        2 => return Err(DnsError::ServFail),
        5 => return Err(DnsError::Refused),
        rcode => return Err(DnsError::OtherRcode { rcode }),
    }

    let (canonical_name, chain_ttl) = follow_cnames(bytes, question, &answers)?;
    if rcode == 3 {
        return Err(DnsError::NxDomain {
            negative_ttl: negative_ttl(bytes, &authority, &canonical_name)?,
        });
    }

    let mut ttl = chain_ttl;
    let mut records = Vec::new();
    for rr in answers
        .iter()
        .filter(|rr| rr.rtype == TYPE_URI && rr.class == CLASS_IN && rr.owner == canonical_name)
    {
        let (priority, weight, target) = parse_uri_rdata_at(rr.rdata, rr.rdata_offset)?;
        ttl = ttl.min(rr.ttl);
        records.push(UriRecord {
            priority,
            weight,
            target,
            ttl: rr.ttl,
        });
    }
    if records.is_empty() {
        return Err(DnsError::NoData {
            negative_ttl: negative_ttl(bytes, &authority, &canonical_name)?,
        });
    }
    Ok(Answer {
        records,
        ttl,
        authenticated_data,
        canonical_name,
    })
}

/// Reads the question and compares it with the query's (RFC 5452 §4.3).
fn check_question(r: &mut Reader<'_>, question: &Name, qtype: u16) -> Result<(), DnsError> {
    let name = r.name()?;
    let rtype = r.u16("question cut off before QTYPE")?;
    let class = r.u16("question cut off before QCLASS")?;
    if name != *question {
        return Err(DnsError::QuestionMismatch {
            detail: format!("response is for {name}, the query asked for {question}"),
        });
    }
    if rtype != qtype {
        return Err(DnsError::QuestionMismatch {
            detail: format!("response is for type {rtype}, the query asked for type {qtype}"),
        });
    }
    if class != CLASS_IN {
        return Err(DnsError::QuestionMismatch {
            detail: format!("response is for class {class}, the query asked for IN (1)"),
        });
    }
    Ok(())
}

/// Reads one resource record (RFC 1035 §4.1.3); also returns the TTL field
/// as sent, which for OPT holds the extended RCODE and flags.
fn read_record<'a>(r: &mut Reader<'a>) -> Result<(RawRecord<'a>, u32), DnsError> {
    let owner = r.name()?;
    let rtype = r.u16("record cut off before TYPE")?;
    let class = r.u16("record cut off before CLASS")?;
    let raw_ttl = r.u32("record cut off before TTL")?;
    let rdlength = r.u16("record cut off before RDLENGTH")?;
    let rdata_offset = r.position();
    let rdata = r.take(
        usize::from(rdlength),
        "RDATA runs past the end of the message",
    )?;
    let record = RawRecord {
        owner,
        rtype,
        class,
        ttl: ttl_from_wire(raw_ttl),
        rdata_offset,
        rdata,
    };
    Ok((record, raw_ttl))
}

/// RFC 2181 §8: a TTL with the most significant bit set is read as 0.
fn ttl_from_wire(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 {
        0
    } else {
        ttl
    }
}

/// Follows CNAMEs in the answer section from `start`; returns the last name
/// and the smallest CNAME TTL (`u32::MAX` without CNAMEs).
fn follow_cnames(
    msg: &[u8],
    start: &Name,
    answers: &[RawRecord<'_>],
) -> Result<(Name, u32), DnsError> {
    let mut visited = vec![start.clone()];
    let mut ttl = u32::MAX;
    loop {
        let current = visited.last().unwrap_or(start);
        let mut cnames = answers
            .iter()
            .filter(|rr| rr.rtype == TYPE_CNAME && rr.class == CLASS_IN && rr.owner == *current);
        let Some(cname) = cnames.next() else {
            break;
        };
        if cnames.next().is_some() {
            return Err(DnsError::CnameChain {
                detail: format!("{current} has more than one CNAME record"),
            });
        }
        if visited.len() > MAX_CNAME_CHAIN {
            return Err(DnsError::CnameChain {
                detail: format!(
                    "more than {MAX_CNAME_CHAIN} CNAMEs from {start}; stopped at {current}"
                ),
            });
        }
        let target = read_rdata_name(msg, cname)?;
        if visited.contains(&target) {
            return Err(DnsError::CnameChain {
                detail: format!("CNAME loop: {current} points back to {target}"),
            });
        }
        ttl = ttl.min(cname.ttl);
        visited.push(target);
    }
    let last = visited.pop().unwrap_or_else(|| start.clone());
    Ok((last, ttl))
}

/// Decodes RDATA that is exactly one domain name (CNAME, RFC 1035 §3.3.1).
fn read_rdata_name(msg: &[u8], rr: &RawRecord<'_>) -> Result<Name, DnsError> {
    let (name, next) = read_name(msg, rr.rdata_offset)?;
    if next != rr.rdata_offset + rr.rdata.len() {
        return Err(DnsError::malformed(
            rr.rdata_offset,
            "CNAME RDATA length does not match the name in it",
        ));
    }
    Ok(name)
}

/// RFC 2308 §5: the negative TTL is min(SOA TTL, SOA MINIMUM) of the SOA in
/// the authority section that covers `name`.
fn negative_ttl(
    msg: &[u8],
    authority: &[RawRecord<'_>],
    name: &Name,
) -> Result<Option<u32>, DnsError> {
    let Some(soa) = authority
        .iter()
        .find(|rr| rr.rtype == TYPE_SOA && rr.class == CLASS_IN && name.is_subdomain_of(&rr.owner))
    else {
        return Ok(None);
    };
    // SOA RDATA (RFC 1035 §3.3.13): MNAME, RNAME, then SERIAL REFRESH RETRY
    // EXPIRE MINIMUM, 32 bits each.
    let (_mname, next) = read_name(msg, soa.rdata_offset)?;
    let (_rname, next) = read_name(msg, next)?;
    let end = soa.rdata_offset + soa.rdata.len();
    if end.checked_sub(next) != Some(20) {
        return Err(DnsError::malformed(
            soa.rdata_offset,
            "SOA RDATA length does not match its two names and five 32-bit fields",
        ));
    }
    let Some(&minimum) = soa.rdata.last_chunk::<4>() else {
        return Ok(None); // Unreachable: the RDATA ends in 20 fixed octets.
    };
    Ok(Some(
        soa.ttl.min(ttl_from_wire(u32::from_be_bytes(minimum))),
    ))
}
