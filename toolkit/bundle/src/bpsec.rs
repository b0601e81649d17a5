//! Block integrity (BPSec, RFC 9172) with the BIB-HMAC-SHA2 security
//! context (RFC 9173 §3): adding a block integrity block (BIB) to a bundle
//! and verifying the BIBs a bundle carries.
//!
//! A BIB's block-type-specific data is an abstract security block (RFC 9172
//! §3.6): a CBOR sequence of security targets (block numbers), the context
//! id (1 for BIB-HMAC-SHA2), context flags, the security source (an EID),
//! optional parameters and one result set per target. The HMAC of a target
//! is taken over the integrity-protected plaintext (RFC 9173 §3.7): the
//! integrity scope flags, then, as the flags ask, the primary block, the
//! target's header (type, number, flags) and the BIB's header, then the
//! target's block-type-specific data as a CBOR byte string.
//!
//! What is signed, and when: [`add_bib`] signs the payload block with the
//! full scope (primary block, target header, security header), so the
//! fragment offset and total ADU length in the primary block are covered
//! too. Signing happens per bundle *after* fragmentation
//! ([`fragment_adu_signed`]): each fragment carries its own BIB over its
//! own payload, so a receiver checks every fragment as it arrives and stores
//! nothing it cannot authenticate. Signing before fragmenting would cover
//! the whole ADU once, but then nothing could be checked until every
//! fragment had been stored, which is the resource exhaustion a BIB is
//! meant to stop (and RFC 9171 §5.8 fragments keep the BIB only in the
//! first fragment unless it is replicated, where it cannot be verified
//! against a partial payload anyway).
//!
//! Not implemented: BCB-AES-GCM (RFC 9173 §4) and AES key wrap (the
//! wrapped-key parameter). A BIB under a BCB, or one with a wrapped key, is
//! reported as `unsupported-security-context`.

use core::ops::Range;

use hmac::{Hmac, Mac};

use crate::bundle::{BlockRef, Bundle, CONFIDENTIALITY_BLOCK, INTEGRITY_BLOCK, PAYLOAD_BLOCK};
use crate::cbor::{put_head, put_uint, Reader, MAJOR_ARRAY, MAJOR_BYTES};
use crate::checksum::{seal, CrcType};
use crate::eid::Eid;
use crate::encode::{fragment_adu, BundleSpec};
use crate::error::{BundleError, ErrorKind, Result};

/// Security context id of BIB-HMAC-SHA2 (RFC 9173 §3.1).
pub const CONTEXT_BIB_HMAC_SHA2: u64 = 1;
/// Integrity scope flag: include the primary block (RFC 9173 §3.3.3).
pub const SCOPE_PRIMARY: u64 = 0x1;
/// Integrity scope flag: include the target's type, number and flags.
pub const SCOPE_TARGET_HEADER: u64 = 0x2;
/// Integrity scope flag: include the BIB's type, number and flags.
pub const SCOPE_SECURITY_HEADER: u64 = 0x4;
/// Every scope flag: the RFC 9173 default, and what [`add_bib`] uses.
pub const SCOPE_ALL: u64 = 0x7;

const PARAM_SHA_VARIANT: u64 = 1;
const PARAM_WRAPPED_KEY: u64 = 2;
const PARAM_SCOPE: u64 = 3;
const RESULT_HMAC: u64 = 1;
/// Nesting allowed inside parameter values we skip.
const MAX_DEPTH: usize = 16;

/// The SHA-2 variant of BIB-HMAC-SHA2 (RFC 9173 §3.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ShaVariant {
    /// HMAC 256/256 (parameter value 5).
    HmacSha256,
    /// HMAC 384/384 (value 6), the RFC's default.
    HmacSha384,
    /// HMAC 512/512 (value 7).
    HmacSha512,
}

impl ShaVariant {
    /// The parameter value of RFC 9173 §3.3.1.
    pub fn code(self) -> u64 {
        match self {
            ShaVariant::HmacSha256 => 5,
            ShaVariant::HmacSha384 => 6,
            ShaVariant::HmacSha512 => 7,
        }
    }

    /// The variant a parameter value names.
    pub fn from_code(code: u64) -> Option<ShaVariant> {
        match code {
            5 => Some(ShaVariant::HmacSha256),
            6 => Some(ShaVariant::HmacSha384),
            7 => Some(ShaVariant::HmacSha512),
            _ => None,
        }
    }

    /// Length of the HMAC in bytes.
    pub fn mac_len(self) -> usize {
        match self {
            ShaVariant::HmacSha256 => 32,
            ShaVariant::HmacSha384 => 48,
            ShaVariant::HmacSha512 => 64,
        }
    }

    /// The name used in configuration files: `hmac-sha256`, `hmac-sha384`,
    /// `hmac-sha512`.
    pub fn name(self) -> &'static str {
        match self {
            ShaVariant::HmacSha256 => "hmac-sha256",
            ShaVariant::HmacSha384 => "hmac-sha384",
            ShaVariant::HmacSha512 => "hmac-sha512",
        }
    }
}

/// A name [`ShaVariant::from_str`](core::str::FromStr) does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownShaVariant(pub String);

impl core::fmt::Display for UnknownShaVariant {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "`{}` is not a BIB-HMAC-SHA2 variant; use hmac-sha256, hmac-sha384 or hmac-sha512",
            self.0
        )
    }
}

impl std::error::Error for UnknownShaVariant {}

impl core::str::FromStr for ShaVariant {
    type Err = UnknownShaVariant;
    fn from_str(s: &str) -> core::result::Result<Self, UnknownShaVariant> {
        match s {
            "hmac-sha256" => Ok(ShaVariant::HmacSha256),
            "hmac-sha384" => Ok(ShaVariant::HmacSha384),
            "hmac-sha512" => Ok(ShaVariant::HmacSha512),
            _ => Err(UnknownShaVariant(s.to_owned())),
        }
    }
}

/// A key shared with one security source: the node that adds the BIB.
#[derive(Clone, PartialEq, Eq)]
pub struct BibKey {
    /// The security source the key belongs to, e.g. `ipn:1.0`.
    pub source: Eid,
    /// The HMAC key itself.
    pub key: Vec<u8>,
}

impl core::fmt::Debug for BibKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BibKey")
            .field("source", &self.source)
            .field("key", &format_args!("<{} bytes>", self.key.len()))
            .finish()
    }
}

/// How [`add_bib`] signs: as whom, with what key and variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BibSigner {
    /// The key and the security source written into the BIB.
    pub key: BibKey,
    /// The SHA-2 variant.
    pub variant: ShaVariant,
}

/// What [`verify_bibs`] found in one BIB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BibCheck {
    /// The BIB's block number.
    pub block_number: u64,
    /// Its security source.
    pub source: Eid,
    /// The blocks it covers.
    pub targets: Vec<u64>,
    /// Its SHA-2 variant (`None` when the context is not BIB-HMAC-SHA2).
    pub variant: Option<ShaVariant>,
    /// Its integrity scope flags.
    pub scope: u64,
    /// True when every target's HMAC was checked and matched; false when
    /// it could not be checked (unknown source or unsupported context,
    /// allowed only when integrity is not required).
    pub verified: bool,
}

/// A parsed abstract security block (RFC 9172 §3.6).
struct Asb {
    targets: Vec<u64>,
    /// Security context id (a negative one is refused while parsing).
    context: u64,
    source: Eid,
    variant: ShaVariant,
    scope: u64,
    wrapped_key: bool,
    /// One HMAC per target, as a range of the bundle's bytes.
    results: Vec<Range<usize>>,
}

fn invalid(offset: usize, detail: impl Into<String>) -> BundleError {
    BundleError::at(ErrorKind::InvalidSecurityBlock, offset, detail)
}

/// Skips one CBOR item (any type), refusing nesting deeper than MAX_DEPTH.
fn skip_item(r: &mut Reader<'_>, depth: usize, what: &str) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(invalid(
            r.pos(),
            format!("{what} nests deeper than {MAX_DEPTH} levels"),
        ));
    }
    let at = r.pos();
    match r.peek().map(|b| b >> 5) {
        Some(2) => {
            r.bytes(what)?;
        }
        Some(3) => {
            r.text(what)?;
        }
        Some(4) => {
            let mut items = r.array(what)?;
            while items.more(r, what)? {
                skip_item(r, depth + 1, what)?;
            }
        }
        Some(5) => {
            let h = r.head(what)?;
            let Some(n) = h.arg else {
                return Err(invalid(at, format!("{what}: indefinite-length map")));
            };
            for _ in 0..n.saturating_mul(2) {
                skip_item(r, depth + 1, what)?;
            }
        }
        Some(6) => {
            r.head(what)?;
            skip_item(r, depth + 1, what)?;
        }
        Some(_) => {
            let h = r.head(what)?;
            if h.arg.is_none() {
                return Err(invalid(
                    at,
                    format!("{what}: unexpected break or indefinite item"),
                ));
            }
        }
        None => {
            return Err(BundleError::at(
                ErrorKind::Truncated,
                at,
                format!("{what}: input ends inside the item"),
            ))
        }
    }
    Ok(())
}

/// Rebases an error found inside a block's data to an offset in the bundle,
/// as an invalid security block (a truncated ASB is a malformed one).
fn in_block(block: &BlockRef) -> impl Fn(BundleError) -> BundleError + '_ {
    move |mut e| {
        if matches!(
            e.kind,
            ErrorKind::Truncated | ErrorKind::MalformedCbor | ErrorKind::InvalidEid
        ) {
            e.kind = ErrorKind::InvalidSecurityBlock;
        }
        e.offset = e.offset.map(|o| o + block.data.start as u64);
        e.detail = format!("security block {}: {}", block.number, e.detail);
        e
    }
}

/// Reads the security targets array only (used for BCBs, whose targets
/// are in the clear).
fn asb_targets(bytes: &[u8], block: &BlockRef) -> Result<Vec<u64>> {
    let mut r = Reader::new(&bytes[block.data.clone()]);
    let mut items = r.array("security targets").map_err(in_block(block))?;
    let mut targets = Vec::new();
    while items
        .more(&mut r, "security targets")
        .map_err(in_block(block))?
    {
        targets.push(r.uint("security target").map_err(in_block(block))?);
    }
    Ok(targets)
}

/// Parses a BIB's abstract security block.
fn parse_asb(bytes: &[u8], block: &BlockRef) -> Result<Asb> {
    let data = &bytes[block.data.clone()];
    let base = block.data.start;
    let wrap = in_block(block);
    let mut r = Reader::new(data);

    let at = r.pos();
    let mut items = r.array("security targets").map_err(&wrap)?;
    let mut targets = Vec::new();
    while items.more(&mut r, "security targets").map_err(&wrap)? {
        let t_at = r.pos();
        let t = r.uint("security target").map_err(&wrap)?;
        if targets.contains(&t) {
            return Err(invalid(
                base + t_at,
                format!("security block {} lists target {t} twice", block.number),
            ));
        }
        targets.push(t);
    }
    if targets.is_empty() {
        return Err(invalid(
            base + at,
            format!("security block {} has no security targets", block.number),
        ));
    }

    let ctx_at = r.pos();
    let context = match r.peek().map(|b| b >> 5) {
        Some(1) => {
            let h = r.head("security context id").map_err(&wrap)?;
            return Err(BundleError::at(
                ErrorKind::UnsupportedSecurityContext,
                base + ctx_at,
                format!(
                    "BIB {} uses security context -{}; only BIB-HMAC-SHA2 (1) is supported",
                    block.number,
                    h.arg.unwrap_or(0).saturating_add(1)
                ),
            ));
        }
        _ => r.uint("security context id").map_err(&wrap)?,
    };
    let flags = r.uint("security context flags").map_err(&wrap)?;
    let source = Eid::decode(&mut r, "security source").map_err(&wrap)?;

    let mut variant = ShaVariant::HmacSha384;
    let mut scope = SCOPE_ALL;
    let mut wrapped_key = false;
    if flags & 1 != 0 {
        let mut params = r.array("security context parameters").map_err(&wrap)?;
        let mut seen = Vec::new();
        while params
            .more(&mut r, "security context parameters")
            .map_err(&wrap)?
        {
            let p_at = r.pos();
            let mut pair = r.array("security context parameter").map_err(&wrap)?;
            pair.need(&mut r, "security context parameter", "id")
                .map_err(&wrap)?;
            let id = r.uint("parameter id").map_err(&wrap)?;
            if seen.contains(&id) {
                return Err(invalid(
                    base + p_at,
                    format!("BIB {} gives parameter {id} twice", block.number),
                ));
            }
            seen.push(id);
            pair.need(&mut r, "security context parameter", "value")
                .map_err(&wrap)?;
            let v_at = r.pos();
            if context == CONTEXT_BIB_HMAC_SHA2 && id == PARAM_SHA_VARIANT {
                let code = r.uint("SHA variant").map_err(&wrap)?;
                variant = ShaVariant::from_code(code).ok_or_else(|| {
                    BundleError::at(
                        ErrorKind::UnsupportedSecurityContext,
                        base + v_at,
                        format!(
                            "BIB {} asks for SHA variant {code}; RFC 9173 defines 5, 6 and 7",
                            block.number
                        ),
                    )
                })?;
            } else if context == CONTEXT_BIB_HMAC_SHA2 && id == PARAM_SCOPE {
                scope = r.uint("integrity scope flags").map_err(&wrap)?;
            } else if context == CONTEXT_BIB_HMAC_SHA2 && id == PARAM_WRAPPED_KEY {
                r.bytes("wrapped key").map_err(&wrap)?;
                wrapped_key = true;
            } else if context == CONTEXT_BIB_HMAC_SHA2 {
                return Err(invalid(
                    base + p_at,
                    format!(
                        "BIB {} has parameter {id}; BIB-HMAC-SHA2 defines 1, 2 and 3",
                        block.number
                    ),
                ));
            } else {
                skip_item(&mut r, 0, "parameter value").map_err(&wrap)?;
            }
            pair.end(&mut r, "security context parameter")
                .map_err(&wrap)?;
        }
    }

    let res_at = r.pos();
    let mut sets = r.array("security results").map_err(&wrap)?;
    let mut results = Vec::new();
    while sets.more(&mut r, "security results").map_err(&wrap)? {
        let mut set = r.array("target results").map_err(&wrap)?;
        let mut hmac = None;
        while set.more(&mut r, "target results").map_err(&wrap)? {
            let e_at = r.pos();
            let mut pair = r.array("security result").map_err(&wrap)?;
            pair.need(&mut r, "security result", "id").map_err(&wrap)?;
            let id = r.uint("result id").map_err(&wrap)?;
            pair.need(&mut r, "security result", "value")
                .map_err(&wrap)?;
            if context == CONTEXT_BIB_HMAC_SHA2 && id == RESULT_HMAC && hmac.is_none() {
                let (mac, mac_at) = r.bytes("expected HMAC").map_err(&wrap)?;
                hmac = Some(base + mac_at..base + mac_at + mac.len());
            } else if context == CONTEXT_BIB_HMAC_SHA2 {
                return Err(invalid(
                    base + e_at,
                    format!(
                        "BIB {} has result {id}; BIB-HMAC-SHA2 has one result, 1 (expected HMAC)",
                        block.number
                    ),
                ));
            } else {
                skip_item(&mut r, 0, "result value").map_err(&wrap)?;
            }
            pair.end(&mut r, "security result").map_err(&wrap)?;
        }
        if context == CONTEXT_BIB_HMAC_SHA2 {
            results.push(hmac.ok_or_else(|| {
                invalid(
                    base + res_at,
                    format!(
                        "BIB {}: a target's results have no expected HMAC",
                        block.number
                    ),
                )
            })?);
        } else {
            results.push(0..0);
        }
    }
    if results.len() != targets.len() {
        return Err(invalid(
            base + res_at,
            format!(
                "BIB {} has {} targets but {} result sets (RFC 9172 §3.6 wants one per target)",
                block.number,
                targets.len(),
                results.len()
            ),
        ));
    }
    if r.remaining() != 0 {
        return Err(invalid(
            base + r.pos(),
            format!(
                "BIB {}: {} bytes follow the security results",
                block.number,
                r.remaining()
            ),
        ));
    }
    Ok(Asb {
        targets,
        context,
        source,
        variant,
        scope,
        wrapped_key,
        results,
    })
}

/// The HMAC of one target (RFC 9173 §3.7).
fn compute_hmac(
    primary: &[u8],
    target: Target<'_>,
    bib: (u64, u64),
    scope: u64,
    variant: ShaVariant,
    key: &[u8],
) -> Vec<u8> {
    let mut ippt: Vec<u8> = Vec::with_capacity(32);
    put_uint(&mut ippt, scope & SCOPE_ALL);
    // The target's canonical form, as a byte string: a block's
    // block-type-specific data, or the whole primary block (RFC 9173 §3.7
    // step 5; Appendix A.3 checks the latter). For the primary block as
    // target, the primary-block and target-header flags add nothing.
    let target_data = match target {
        Target::Primary => primary,
        Target::Block { header, data } => {
            if scope & SCOPE_PRIMARY != 0 {
                ippt.extend_from_slice(primary);
            }
            if scope & SCOPE_TARGET_HEADER != 0 {
                header.iter().for_each(|v| put_uint(&mut ippt, *v));
            }
            data
        }
    };
    if scope & SCOPE_SECURITY_HEADER != 0 {
        put_uint(&mut ippt, INTEGRITY_BLOCK);
        put_uint(&mut ippt, bib.0);
        put_uint(&mut ippt, bib.1);
    }
    put_head(&mut ippt, MAJOR_BYTES, target_data.len() as u64);
    // HMAC takes keys of any length (RFC 2104 §2), so `new_from_slice`
    // cannot fail.
    macro_rules! mac {
        ($d:ty) => {{
            let mut mac =
                <Hmac<$d> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            mac.update(&ippt);
            mac.update(target_data);
            mac.finalize().into_bytes().to_vec()
        }};
    }
    match variant {
        ShaVariant::HmacSha256 => mac!(sha2::Sha256),
        ShaVariant::HmacSha384 => mac!(sha2::Sha384),
        ShaVariant::HmacSha512 => mac!(sha2::Sha512),
    }
}

/// What one HMAC is taken over.
#[derive(Clone, Copy)]
enum Target<'b> {
    /// The primary block (block number 0).
    Primary,
    /// A canonical block: its type, number and flags, and its
    /// block-type-specific data.
    Block { header: [u64; 3], data: &'b [u8] },
}

impl<'b> Target<'b> {
    fn of(bytes: &'b [u8], b: &BlockRef) -> Target<'b> {
        Target::Block {
            header: [b.block_type, b.number, b.flags],
            data: &bytes[b.data.clone()],
        }
    }
}

/// Constant-time comparison of two MACs.
fn same_mac(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Verifies every BIB in `bundle` with `keys`.
///
/// - A BIB whose HMAC does not match its target is always an error
///   (`bib-mismatch`), as are malformed BIBs (`invalid-security-block`).
/// - A BIB from a source without a key (`bib-unknown-key`) or in a context
///   this crate does not support (`unsupported-security-context`) is an
///   error when `require` is set, and otherwise reported unverified.
/// - With `require` set, the payload must be covered by a verified BIB
///   whose scope includes the primary block (or the primary block must be
///   covered by a verified BIB of its own); otherwise `bib-missing`.
///
/// Returns what each BIB was, in the order they appear.
pub fn verify_bibs(bundle: &Bundle<'_>, keys: &[BibKey], require: bool) -> Result<Vec<BibCheck>> {
    let bytes = bundle.as_bytes();
    let blocks = &bundle.block_refs;
    let find = |n: u64| blocks.iter().find(|b| b.number == n);

    // Blocks a BCB encrypts: a BIB among them cannot be read.
    let mut encrypted = Vec::new();
    for b in blocks
        .iter()
        .filter(|b| b.block_type == CONFIDENTIALITY_BLOCK)
    {
        for t in asb_targets(bytes, b)? {
            encrypted.push((t, b.number));
        }
    }

    let mut checks = Vec::new();
    let mut covered: Vec<(u64, u64)> = Vec::new(); // (target, bib)
    for b in blocks.iter().filter(|b| b.block_type == INTEGRITY_BLOCK) {
        if let Some((_, bcb)) = encrypted.iter().find(|(t, _)| *t == b.number) {
            let e = BundleError::at(
                ErrorKind::UnsupportedSecurityContext,
                b.range.start,
                format!(
                    "BIB {} is encrypted by BCB {bcb}; BCB-AES-GCM is not supported",
                    b.number
                ),
            );
            if require {
                return Err(e);
            }
            continue;
        }
        let asb = parse_asb(bytes, b)?;
        for &t in &asb.targets {
            let target_ok = t == 0
                || find(t).is_some_and(|x| {
                    x.block_type != INTEGRITY_BLOCK && x.block_type != CONFIDENTIALITY_BLOCK
                });
            if !target_ok {
                let why = if find(t).is_some() {
                    "a security block (RFC 9172 §3.7: a BIB must not target a BIB or a BCB)"
                } else {
                    "not in the bundle"
                };
                return Err(invalid(
                    b.range.start,
                    format!("BIB {} targets block {t}, which is {why}", b.number),
                ));
            }
            if let Some((_, other)) = covered.iter().find(|(x, _)| *x == t) {
                return Err(invalid(
                    b.range.start,
                    format!("block {t} is the target of BIB {other} and BIB {} (RFC 9172 §3.3 allows one)", b.number),
                ));
            }
            covered.push((t, b.number));
        }
        let mut check = BibCheck {
            block_number: b.number,
            source: asb.source.clone(),
            targets: asb.targets.clone(),
            variant: (asb.context == CONTEXT_BIB_HMAC_SHA2).then_some(asb.variant),
            scope: asb.scope,
            verified: false,
        };
        let unsupported = if asb.context != CONTEXT_BIB_HMAC_SHA2 {
            Some(format!(
                "BIB {} uses security context {}; only BIB-HMAC-SHA2 (1) is supported",
                b.number, asb.context
            ))
        } else if asb.wrapped_key {
            Some(format!(
                "BIB {} carries a wrapped key (AES key wrap is not supported)",
                b.number
            ))
        } else {
            None
        };
        if let Some(why) = unsupported {
            if require {
                return Err(BundleError::at(
                    ErrorKind::UnsupportedSecurityContext,
                    b.range.start,
                    why,
                ));
            }
            checks.push(check);
            continue;
        }
        let Some(key) = keys.iter().find(|k| k.source == asb.source) else {
            if require {
                return Err(BundleError::at(
                    ErrorKind::BibUnknownKey,
                    b.range.start,
                    format!(
                        "BIB {} is from {}, which has no key here",
                        b.number, asb.source
                    ),
                ));
            }
            checks.push(check);
            continue;
        };
        for (t, result) in asb.targets.iter().zip(&asb.results) {
            let target = if *t == 0 {
                Target::Primary
            } else {
                Target::of(bytes, find(*t).expect("checked above"))
            };
            let mac = compute_hmac(
                &bytes[bundle.primary_range.clone()],
                target,
                (b.number, b.flags),
                asb.scope,
                asb.variant,
                &key.key,
            );
            if !same_mac(&mac, &bytes[result.clone()]) {
                return Err(BundleError::at(
                    ErrorKind::BibMismatch,
                    result.start,
                    format!(
                        "BIB {} from {}: the {} HMAC of block {t} does not match",
                        b.number,
                        asb.source,
                        asb.variant.name()
                    ),
                ));
            }
        }
        check.verified = true;
        checks.push(check);
    }
    if require {
        let payload_covered = checks.iter().any(|c| c.verified && c.targets.contains(&1));
        let primary_covered = checks.iter().any(|c| {
            c.verified
                && (c.targets.contains(&0)
                    || (c.targets.contains(&1) && c.scope & SCOPE_PRIMARY != 0))
        });
        if !payload_covered || !primary_covered {
            let what = if checks.is_empty() {
                "the bundle has no block integrity block".to_string()
            } else if !payload_covered {
                "no verified BIB covers the payload block".to_string()
            } else {
                "the payload's BIB leaves the primary block out of its scope and no BIB covers it"
                    .to_string()
            };
            return Err(BundleError::new(ErrorKind::BibMissing, what));
        }
    }
    Ok(checks)
}

/// The encoded BIB block that [`add_bib`] inserts, with `mac` as its result.
fn encode_bib_block(number: u64, crc: CrcType, signer: &BibSigner, mac: &[u8]) -> Vec<u8> {
    let mut asb = Vec::with_capacity(32 + mac.len());
    put_head(&mut asb, MAJOR_ARRAY, 1);
    put_uint(&mut asb, PAYLOAD_BLOCK);
    put_uint(&mut asb, CONTEXT_BIB_HMAC_SHA2);
    put_uint(&mut asb, 1); // parameters present
    signer.key.source.encode(&mut asb);
    put_head(&mut asb, MAJOR_ARRAY, 2);
    put_head(&mut asb, MAJOR_ARRAY, 2);
    put_uint(&mut asb, PARAM_SHA_VARIANT);
    put_uint(&mut asb, signer.variant.code());
    put_head(&mut asb, MAJOR_ARRAY, 2);
    put_uint(&mut asb, PARAM_SCOPE);
    put_uint(&mut asb, SCOPE_ALL);
    put_head(&mut asb, MAJOR_ARRAY, 1); // one target's results
    put_head(&mut asb, MAJOR_ARRAY, 1);
    put_head(&mut asb, MAJOR_ARRAY, 2);
    put_uint(&mut asb, RESULT_HMAC);
    put_head(&mut asb, MAJOR_BYTES, mac.len() as u64);
    asb.extend_from_slice(mac);

    let mut block = Vec::with_capacity(asb.len() + 16);
    let start = block.len();
    put_head(
        &mut block,
        MAJOR_ARRAY,
        if crc == CrcType::None { 5 } else { 6 },
    );
    put_uint(&mut block, INTEGRITY_BLOCK);
    put_uint(&mut block, number);
    put_uint(&mut block, 0); // block processing control flags
    put_uint(&mut block, crc.code());
    put_head(&mut block, MAJOR_BYTES, asb.len() as u64);
    block.extend_from_slice(&asb);
    seal(&mut block, start, crc);
    block
}

/// Bytes [`add_bib`] adds to a bundle whose highest block number is below
/// 24 (every bundle [`crate::build`] and [`fragment_adu`] make), with the
/// payload block losing a CRC of `payload_crc`.
fn bib_overhead(signer: &BibSigner, crc: CrcType) -> usize {
    encode_bib_block(2, crc, signer, &vec![0; signer.variant.mac_len()]).len()
}

/// Adds a BIB-HMAC-SHA2 block integrity block to `bundle`, signed by
/// `signer`, that covers the payload block with the full integrity scope
/// (primary block, payload header and BIB header included).
///
/// The BIB goes just before the payload block, numbered one above the
/// highest block number; it has the CRC type of the primary block. The
/// payload block loses its CRC (RFC 9173 §3.8.1: the target's CRC is
/// removed before signing; the HMAC protects it now). Errors: the bundle's
/// own parse errors, and `invalid-security-block` when the payload already
/// has a BIB.
pub fn add_bib(bundle: &[u8], signer: &BibSigner) -> core::result::Result<Vec<u8>, BundleError> {
    let parsed = Bundle::parse(bundle)?;
    add_bib_parsed(&parsed, signer)
}

fn add_bib_parsed(parsed: &Bundle<'_>, signer: &BibSigner) -> Result<Vec<u8>> {
    let bytes = parsed.as_bytes();
    let blocks = &parsed.block_refs;
    for b in blocks.iter().filter(|b| b.block_type == INTEGRITY_BLOCK) {
        if let Ok(targets) = asb_targets(bytes, b) {
            if targets.contains(&PAYLOAD_BLOCK) {
                return Err(invalid(
                    b.range.start,
                    format!(
                        "the payload already has a BIB (block {}); RFC 9172 §3.3 allows one",
                        b.number
                    ),
                ));
            }
        }
    }
    let payload = blocks
        .iter()
        .find(|b| b.block_type == PAYLOAD_BLOCK)
        .expect("a parsed bundle has a payload block");
    let number = blocks.iter().map(|b| b.number).max().unwrap_or(1) + 1;
    let crc = parsed.info().crc;

    // The payload block without its CRC: [1, 1, flags, 0, data]; as it is
    // when it has none already (as `fragment_adu_signed` builds it).
    let data = &bytes[payload.data.clone()];
    let rebuilt;
    let payload_block = if parsed.payload_crc == CrcType::None {
        &bytes[payload.range.clone()]
    } else {
        let mut block = Vec::with_capacity(data.len() + 16);
        put_head(&mut block, MAJOR_ARRAY, 5);
        put_uint(&mut block, PAYLOAD_BLOCK);
        put_uint(&mut block, PAYLOAD_BLOCK);
        put_uint(&mut block, payload.flags);
        put_uint(&mut block, 0);
        put_head(&mut block, MAJOR_BYTES, data.len() as u64);
        block.extend_from_slice(data);
        rebuilt = block;
        &rebuilt[..]
    };
    // Only the payload's data and header and the primary block enter the
    // IPPT, so dropping the CRC does not change the HMAC.
    let mac = compute_hmac(
        &bytes[parsed.primary_range.clone()],
        Target::of(bytes, payload),
        (number, 0),
        SCOPE_ALL,
        signer.variant,
        &signer.key.key,
    );
    let mut out = Vec::with_capacity(bytes.len() + 128);
    out.extend_from_slice(&bytes[..payload.range.start]);
    out.extend_from_slice(&encode_bib_block(number, crc, signer, &mac));
    out.extend_from_slice(payload_block);
    out.extend_from_slice(&bytes[payload.range.end..]);
    Ok(out)
}

/// Builds the bundle for `adu`, fragments it so that every bundle *with its
/// BIB* fits `mtu`, and signs each bundle with [`add_bib`]: each fragment is
/// authenticated on its own (see the module documentation for why).
pub fn fragment_adu_signed(
    adu: &[u8],
    spec: &BundleSpec,
    mtu: usize,
    signer: &BibSigner,
) -> core::result::Result<Vec<Vec<u8>>, BundleError> {
    let overhead = bib_overhead(signer, spec.crc);
    // The payload block loses its CRC when signed, so the fragments are
    // built without one and the MTU left for them shrinks by the BIB only.
    let unsigned_spec = BundleSpec {
        block_crc: CrcType::None,
        ..spec.clone()
    };
    let budget = mtu
        .checked_sub(overhead)
        .filter(|b| *b > 0)
        .ok_or_else(|| {
            BundleError::new(
                ErrorKind::MtuTooSmall,
                format!("an MTU of {mtu} bytes cannot hold a {overhead}-byte BIB and a fragment"),
            )
        })?;
    let bundles = fragment_adu(adu, &unsigned_spec, budget)?;
    let mut out = Vec::with_capacity(bundles.len());
    for b in &bundles {
        let parsed = Bundle::parse(b)?;
        let signed = add_bib_parsed(&parsed, signer)?;
        debug_assert!(signed.len() <= mtu, "{} > {mtu}", signed.len());
        out.push(signed);
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
