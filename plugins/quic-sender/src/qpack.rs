//! QPACK (RFC 9204) for one HTTP/3 request and its response, with the static
//! table and literal field lines only.
//!
//! The client advertises `SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0`, so the peer
//! may not use a dynamic table (§3.2.3): every field section it sends has a
//! Required Insert Count of 0 and refers to the static table (Appendix A) or
//! carries its fields as literals, possibly Huffman-coded (RFC 7541 §5.2 and
//! Appendix B). A field section that references the dynamic table is a
//! decoding error (`QPACK_DECOMPRESSION_FAILED`, §2.2.3).
//!
//! Pure: bytes in, bytes out.

use std::fmt;

/// RFC 9204 Appendix A: the static table, indexed from 0.
const STATIC_TABLE: [(&str, &str); 99] = [
    (":authority", ""),
    (":path", "/"),
    ("age", "0"),
    ("content-disposition", ""),
    ("content-length", "0"),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("referer", ""),
    ("set-cookie", ""),
    (":method", "CONNECT"),
    (":method", "DELETE"),
    (":method", "GET"),
    (":method", "HEAD"),
    (":method", "OPTIONS"),
    (":method", "POST"),
    (":method", "PUT"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "103"),
    (":status", "200"),
    (":status", "304"),
    (":status", "404"),
    (":status", "503"),
    ("accept", "*/*"),
    ("accept", "application/dns-message"),
    ("accept-encoding", "gzip, deflate, br"),
    ("accept-ranges", "bytes"),
    ("access-control-allow-headers", "cache-control"),
    ("access-control-allow-headers", "content-type"),
    ("access-control-allow-origin", "*"),
    ("cache-control", "max-age=0"),
    ("cache-control", "max-age=2592000"),
    ("cache-control", "max-age=604800"),
    ("cache-control", "no-cache"),
    ("cache-control", "no-store"),
    ("cache-control", "public, max-age=31536000"),
    ("content-encoding", "br"),
    ("content-encoding", "gzip"),
    ("content-type", "application/dns-message"),
    ("content-type", "application/javascript"),
    ("content-type", "application/json"),
    ("content-type", "application/x-www-form-urlencoded"),
    ("content-type", "image/gif"),
    ("content-type", "image/jpeg"),
    ("content-type", "image/png"),
    ("content-type", "text/css"),
    ("content-type", "text/html; charset=utf-8"),
    ("content-type", "text/plain"),
    ("content-type", "text/plain;charset=utf-8"),
    ("range", "bytes=0-"),
    ("strict-transport-security", "max-age=31536000"),
    (
        "strict-transport-security",
        "max-age=31536000; includesubdomains",
    ),
    (
        "strict-transport-security",
        "max-age=31536000; includesubdomains; preload",
    ),
    ("vary", "accept-encoding"),
    ("vary", "origin"),
    ("x-content-type-options", "nosniff"),
    ("x-xss-protection", "1; mode=block"),
    (":status", "100"),
    (":status", "204"),
    (":status", "206"),
    (":status", "302"),
    (":status", "400"),
    (":status", "403"),
    (":status", "421"),
    (":status", "425"),
    (":status", "500"),
    ("accept-language", ""),
    ("access-control-allow-credentials", "FALSE"),
    ("access-control-allow-credentials", "TRUE"),
    ("access-control-allow-headers", "*"),
    ("access-control-allow-methods", "get"),
    ("access-control-allow-methods", "get, post, options"),
    ("access-control-allow-methods", "options"),
    ("access-control-expose-headers", "content-length"),
    ("access-control-request-headers", "content-type"),
    ("access-control-request-method", "get"),
    ("access-control-request-method", "post"),
    ("alt-svc", "clear"),
    ("authorization", ""),
    (
        "content-security-policy",
        "script-src 'none'; object-src 'none'; base-uri 'none'",
    ),
    ("early-data", "1"),
    ("expect-ct", ""),
    ("forwarded", ""),
    ("if-range", ""),
    ("origin", ""),
    ("purpose", "prefetch"),
    ("server", ""),
    ("timing-allow-origin", "*"),
    ("upgrade-insecure-requests", "1"),
    ("user-agent", ""),
    ("x-forwarded-for", ""),
    ("x-frame-options", "deny"),
    ("x-frame-options", "sameorigin"),
];

/// RFC 7541 Appendix B: (code, length in bits) for symbols 0..=255 and EOS (256).
const HUFFMAN_CODES: [(u32, u8); 257] = [
    (0x1ff8, 13),
    (0x7fffd8, 23),
    (0xfffffe2, 28),
    (0xfffffe3, 28),
    (0xfffffe4, 28),
    (0xfffffe5, 28),
    (0xfffffe6, 28),
    (0xfffffe7, 28),
    (0xfffffe8, 28),
    (0xffffea, 24),
    (0x3ffffffc, 30),
    (0xfffffe9, 28),
    (0xfffffea, 28),
    (0x3ffffffd, 30),
    (0xfffffeb, 28),
    (0xfffffec, 28),
    (0xfffffed, 28),
    (0xfffffee, 28),
    (0xfffffef, 28),
    (0xffffff0, 28),
    (0xffffff1, 28),
    (0xffffff2, 28),
    (0x3ffffffe, 30),
    (0xffffff3, 28),
    (0xffffff4, 28),
    (0xffffff5, 28),
    (0xffffff6, 28),
    (0xffffff7, 28),
    (0xffffff8, 28),
    (0xffffff9, 28),
    (0xffffffa, 28),
    (0xffffffb, 28),
    (0x14, 6),
    (0x3f8, 10),
    (0x3f9, 10),
    (0xffa, 12),
    (0x1ff9, 13),
    (0x15, 6),
    (0xf8, 8),
    (0x7fa, 11),
    (0x3fa, 10),
    (0x3fb, 10),
    (0xf9, 8),
    (0x7fb, 11),
    (0xfa, 8),
    (0x16, 6),
    (0x17, 6),
    (0x18, 6),
    (0x0, 5),
    (0x1, 5),
    (0x2, 5),
    (0x19, 6),
    (0x1a, 6),
    (0x1b, 6),
    (0x1c, 6),
    (0x1d, 6),
    (0x1e, 6),
    (0x1f, 6),
    (0x5c, 7),
    (0xfb, 8),
    (0x7ffc, 15),
    (0x20, 6),
    (0xffb, 12),
    (0x3fc, 10),
    (0x1ffa, 13),
    (0x21, 6),
    (0x5d, 7),
    (0x5e, 7),
    (0x5f, 7),
    (0x60, 7),
    (0x61, 7),
    (0x62, 7),
    (0x63, 7),
    (0x64, 7),
    (0x65, 7),
    (0x66, 7),
    (0x67, 7),
    (0x68, 7),
    (0x69, 7),
    (0x6a, 7),
    (0x6b, 7),
    (0x6c, 7),
    (0x6d, 7),
    (0x6e, 7),
    (0x6f, 7),
    (0x70, 7),
    (0x71, 7),
    (0x72, 7),
    (0xfc, 8),
    (0x73, 7),
    (0xfd, 8),
    (0x1ffb, 13),
    (0x7fff0, 19),
    (0x1ffc, 13),
    (0x3ffc, 14),
    (0x22, 6),
    (0x7ffd, 15),
    (0x3, 5),
    (0x23, 6),
    (0x4, 5),
    (0x24, 6),
    (0x5, 5),
    (0x25, 6),
    (0x26, 6),
    (0x27, 6),
    (0x6, 5),
    (0x74, 7),
    (0x75, 7),
    (0x28, 6),
    (0x29, 6),
    (0x2a, 6),
    (0x7, 5),
    (0x2b, 6),
    (0x76, 7),
    (0x2c, 6),
    (0x8, 5),
    (0x9, 5),
    (0x2d, 6),
    (0x77, 7),
    (0x78, 7),
    (0x79, 7),
    (0x7a, 7),
    (0x7b, 7),
    (0x7ffe, 15),
    (0x7fc, 11),
    (0x3ffd, 14),
    (0x1ffd, 13),
    (0xffffffc, 28),
    (0xfffe6, 20),
    (0x3fffd2, 22),
    (0xfffe7, 20),
    (0xfffe8, 20),
    (0x3fffd3, 22),
    (0x3fffd4, 22),
    (0x3fffd5, 22),
    (0x7fffd9, 23),
    (0x3fffd6, 22),
    (0x7fffda, 23),
    (0x7fffdb, 23),
    (0x7fffdc, 23),
    (0x7fffdd, 23),
    (0x7fffde, 23),
    (0xffffeb, 24),
    (0x7fffdf, 23),
    (0xffffec, 24),
    (0xffffed, 24),
    (0x3fffd7, 22),
    (0x7fffe0, 23),
    (0xffffee, 24),
    (0x7fffe1, 23),
    (0x7fffe2, 23),
    (0x7fffe3, 23),
    (0x7fffe4, 23),
    (0x1fffdc, 21),
    (0x3fffd8, 22),
    (0x7fffe5, 23),
    (0x3fffd9, 22),
    (0x7fffe6, 23),
    (0x7fffe7, 23),
    (0xffffef, 24),
    (0x3fffda, 22),
    (0x1fffdd, 21),
    (0xfffe9, 20),
    (0x3fffdb, 22),
    (0x3fffdc, 22),
    (0x7fffe8, 23),
    (0x7fffe9, 23),
    (0x1fffde, 21),
    (0x7fffea, 23),
    (0x3fffdd, 22),
    (0x3fffde, 22),
    (0xfffff0, 24),
    (0x1fffdf, 21),
    (0x3fffdf, 22),
    (0x7fffeb, 23),
    (0x7fffec, 23),
    (0x1fffe0, 21),
    (0x1fffe1, 21),
    (0x3fffe0, 22),
    (0x1fffe2, 21),
    (0x7fffed, 23),
    (0x3fffe1, 22),
    (0x7fffee, 23),
    (0x7fffef, 23),
    (0xfffea, 20),
    (0x3fffe2, 22),
    (0x3fffe3, 22),
    (0x3fffe4, 22),
    (0x7ffff0, 23),
    (0x3fffe5, 22),
    (0x3fffe6, 22),
    (0x7ffff1, 23),
    (0x3ffffe0, 26),
    (0x3ffffe1, 26),
    (0xfffeb, 20),
    (0x7fff1, 19),
    (0x3fffe7, 22),
    (0x7ffff2, 23),
    (0x3fffe8, 22),
    (0x1ffffec, 25),
    (0x3ffffe2, 26),
    (0x3ffffe3, 26),
    (0x3ffffe4, 26),
    (0x7ffffde, 27),
    (0x7ffffdf, 27),
    (0x3ffffe5, 26),
    (0xfffff1, 24),
    (0x1ffffed, 25),
    (0x7fff2, 19),
    (0x1fffe3, 21),
    (0x3ffffe6, 26),
    (0x7ffffe0, 27),
    (0x7ffffe1, 27),
    (0x3ffffe7, 26),
    (0x7ffffe2, 27),
    (0xfffff2, 24),
    (0x1fffe4, 21),
    (0x1fffe5, 21),
    (0x3ffffe8, 26),
    (0x3ffffe9, 26),
    (0xffffffd, 28),
    (0x7ffffe3, 27),
    (0x7ffffe4, 27),
    (0x7ffffe5, 27),
    (0xfffec, 20),
    (0xfffff3, 24),
    (0xfffed, 20),
    (0x1fffe6, 21),
    (0x3fffe9, 22),
    (0x1fffe7, 21),
    (0x1fffe8, 21),
    (0x7ffff3, 23),
    (0x3fffea, 22),
    (0x3fffeb, 22),
    (0x1ffffee, 25),
    (0x1ffffef, 25),
    (0xfffff4, 24),
    (0xfffff5, 24),
    (0x3ffffea, 26),
    (0x7ffff4, 23),
    (0x3ffffeb, 26),
    (0x7ffffe6, 27),
    (0x3ffffec, 26),
    (0x3ffffed, 26),
    (0x7ffffe7, 27),
    (0x7ffffe8, 27),
    (0x7ffffe9, 27),
    (0x7ffffea, 27),
    (0x7ffffeb, 27),
    (0xffffffe, 28),
    (0x7ffffec, 27),
    (0x7ffffed, 27),
    (0x7ffffee, 27),
    (0x7ffffef, 27),
    (0x7fffff0, 27),
    (0x3ffffee, 26),
    (0x3fffffff, 30),
];

/// Static-table indices the encoder uses.
mod index {
    pub const AUTHORITY: u64 = 0;
    pub const PATH: u64 = 1;
    pub const PATH_SLASH: u64 = 1;
    pub const CONTENT_LENGTH: u64 = 4;
    pub const METHOD_POST: u64 = 20;
    pub const SCHEME_HTTPS: u64 = 23;
    pub const CONTENT_TYPE: u64 = 44;
    pub const AUTHORIZATION: u64 = 84;
    pub const USER_AGENT: u64 = 95;
}

/// Why a field section could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QpackError {
    /// The section ended inside a field line.
    Truncated,
    /// An integer does not fit in 62 bits.
    IntegerOverflow,
    /// A reference to the dynamic table, which this client disabled.
    DynamicTableReference,
    /// A static-table index past the end of the table.
    UnknownStaticIndex(u64),
    /// Huffman data that is not a valid encoding (EOS inside, bad padding).
    BadHuffman,
}

impl fmt::Display for QpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QpackError::Truncated => f.write_str("field section ends inside a field line"),
            QpackError::IntegerOverflow => f.write_str("integer too large in field section"),
            QpackError::DynamicTableReference => {
                f.write_str("peer referenced the QPACK dynamic table although its capacity is 0")
            }
            QpackError::UnknownStaticIndex(i) => write!(f, "no static table entry {i}"),
            QpackError::BadHuffman => f.write_str("invalid Huffman-coded string"),
        }
    }
}

/// Appends `value` as an HPACK/QPACK prefix integer (RFC 7541 §5.1) whose
/// first byte carries `flags` in the bits above the `prefix`-bit field.
fn put_int(out: &mut Vec<u8>, flags: u8, prefix: u32, value: u64) {
    let max = (1u64 << prefix) - 1;
    if value < max {
        out.push(flags | value as u8);
        return;
    }
    out.push(flags | max as u8);
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push((rest as u8 & 0x7f) | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// Appends a string literal, not Huffman-coded, with an `prefix`-bit length
/// after the `flags` bits.
fn put_str(out: &mut Vec<u8>, flags: u8, prefix: u32, value: &[u8]) {
    put_int(out, flags, prefix, value.len() as u64);
    out.extend_from_slice(value);
}

/// Encodes the field section of an HTTP/3 request from the static table and
/// literals. `fields` are regular fields with lower-case names; the pseudo
/// fields come from the arguments.
pub struct RequestHead<'a> {
    /// `:authority`, host[:port].
    pub authority: &'a str,
    /// `:path`, starting with `/`.
    pub path: &'a str,
    /// Regular fields, names lower case. `authorization` is sent as a
    /// never-indexed literal.
    pub fields: &'a [(&'a str, &'a str)],
}

impl RequestHead<'_> {
    /// The encoded field section of a `POST https://authority/path`.
    pub fn encode_post(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        // Required Insert Count 0, Delta Base 0 (§4.5.1).
        out.extend_from_slice(&[0, 0]);
        indexed(&mut out, index::METHOD_POST);
        indexed(&mut out, index::SCHEME_HTTPS);
        name_ref(&mut out, index::AUTHORITY, self.authority.as_bytes(), false);
        if self.path == "/" {
            indexed(&mut out, index::PATH_SLASH);
        } else {
            name_ref(&mut out, index::PATH, self.path.as_bytes(), false);
        }
        for (name, value) in self.fields {
            let value = value.as_bytes();
            match *name {
                "content-type" => name_ref(&mut out, index::CONTENT_TYPE, value, false),
                "content-length" => name_ref(&mut out, index::CONTENT_LENGTH, value, false),
                "authorization" => name_ref(&mut out, index::AUTHORIZATION, value, true),
                "user-agent" => name_ref(&mut out, index::USER_AGENT, value, false),
                _ => {
                    // Literal field line with literal name (§4.5.6), N = 0, H = 0.
                    put_str(&mut out, 0x20, 3, name.as_bytes());
                    put_str(&mut out, 0x00, 7, value);
                }
            }
        }
        out
    }
}

/// Indexed field line, static table (§4.5.2): `1 T=1 index(6)`.
fn indexed(out: &mut Vec<u8>, index: u64) {
    put_int(out, 0xc0, 6, index);
}

/// Literal field line with a static name reference (§4.5.4):
/// `0 1 N T=1 index(4)`, then the value. `never_index` sets N.
fn name_ref(out: &mut Vec<u8>, index: u64, value: &[u8], never_index: bool) {
    put_int(out, 0x50 | if never_index { 0x20 } else { 0 }, 4, index);
    put_str(out, 0x00, 7, value);
}

/// A reader over one field section.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Result<u8, QpackError> {
        self.bytes
            .get(self.pos)
            .copied()
            .ok_or(QpackError::Truncated)
    }

    /// Reads a prefix integer whose `prefix` low bits start in the current byte.
    fn int(&mut self, prefix: u32) -> Result<u64, QpackError> {
        let first = self.peek()?;
        self.pos += 1;
        let max = (1u64 << prefix) - 1;
        let mut value = u64::from(first) & max;
        if value < max {
            return Ok(value);
        }
        let mut shift = 0u32;
        loop {
            let byte = self.peek()?;
            self.pos += 1;
            if shift > 56 {
                return Err(QpackError::IntegerOverflow);
            }
            value = value
                .checked_add(u64::from(byte & 0x7f) << shift)
                .ok_or(QpackError::IntegerOverflow)?;
            shift += 7;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
    }

    /// Reads a string literal whose H bit is `huffman_bit` of the current
    /// byte, followed by a `prefix`-bit length.
    fn string(&mut self, huffman_bit: u8, prefix: u32) -> Result<Vec<u8>, QpackError> {
        let huffman = self.peek()? & huffman_bit != 0;
        let len = self.int(prefix)?;
        let len = usize::try_from(len).map_err(|_| QpackError::Truncated)?;
        let end = self.pos.checked_add(len).ok_or(QpackError::Truncated)?;
        let raw = self.bytes.get(self.pos..end).ok_or(QpackError::Truncated)?;
        self.pos = end;
        if huffman {
            huffman_decode(raw)
        } else {
            Ok(raw.to_vec())
        }
    }
}

fn static_entry(index: u64) -> Result<(&'static str, &'static str), QpackError> {
    usize::try_from(index)
        .ok()
        .and_then(|i| STATIC_TABLE.get(i))
        .copied()
        .ok_or(QpackError::UnknownStaticIndex(index))
}

/// One decoded field line: name and value, as bytes.
pub type Field = (Vec<u8>, Vec<u8>);

/// Decodes a field section that uses no dynamic table into (name, value)
/// pairs, in order.
pub fn decode_field_section(section: &[u8]) -> Result<Vec<Field>, QpackError> {
    let mut r = Reader {
        bytes: section,
        pos: 0,
    };
    // Encoded Required Insert Count (8-bit prefix), then S + Delta Base (7-bit).
    if r.int(8)? != 0 {
        return Err(QpackError::DynamicTableReference);
    }
    r.int(7)?;
    let mut fields = Vec::new();
    while r.pos < section.len() {
        let first = r.peek()?;
        if first & 0x80 != 0 {
            // Indexed field line: 1 T index(6).
            let is_static = first & 0x40 != 0;
            let index = r.int(6)?;
            if !is_static {
                return Err(QpackError::DynamicTableReference);
            }
            let (name, value) = static_entry(index)?;
            fields.push((name.as_bytes().to_vec(), value.as_bytes().to_vec()));
        } else if first & 0x40 != 0 {
            // Literal with name reference: 0 1 N T index(4).
            let is_static = first & 0x10 != 0;
            let index = r.int(4)?;
            if !is_static {
                return Err(QpackError::DynamicTableReference);
            }
            let (name, _) = static_entry(index)?;
            let value = r.string(0x80, 7)?;
            fields.push((name.as_bytes().to_vec(), value));
        } else if first & 0x20 != 0 {
            // Literal with literal name: 0 0 1 N H namelen(3).
            let name = r.string(0x08, 3)?;
            let value = r.string(0x80, 7)?;
            fields.push((name, value));
        } else {
            // 0001xxxx indexed post-base, 0000xxxx literal post-base name:
            // both name dynamic-table entries.
            return Err(QpackError::DynamicTableReference);
        }
    }
    Ok(fields)
}

/// Decodes an HPACK/QPACK Huffman string (RFC 7541 §5.2).
pub fn huffman_decode(data: &[u8]) -> Result<Vec<u8>, QpackError> {
    let mut out = Vec::with_capacity(data.len() * 8 / 5);
    let mut acc: u64 = 0;
    let mut bits: u32 = 0;
    for &byte in data {
        acc = (acc << 8) | u64::from(byte);
        bits += 8;
        // Codes are 5..=30 bits; decode as long as a whole code may be there.
        while bits >= 5 {
            match match_code(acc, bits) {
                Some((256, _)) => return Err(QpackError::BadHuffman),
                Some((symbol, len)) => {
                    out.push(symbol as u8);
                    bits -= u32::from(len);
                    acc &= (1u64 << bits) - 1;
                }
                None if bits >= 30 => return Err(QpackError::BadHuffman),
                None => break,
            }
        }
    }
    // Padding: fewer than 8 bits, all ones (the most significant bits of EOS).
    if bits >= 8 || acc != (1u64 << bits) - 1 {
        return Err(QpackError::BadHuffman);
    }
    Ok(out)
}

/// Finds the code at the top of the `bits` valid bits of `acc`.
fn match_code(acc: u64, bits: u32) -> Option<(usize, u8)> {
    for len in 5..=bits.min(30) {
        let candidate = (acc >> (bits - len)) as u32;
        if let Some(symbol) = HUFFMAN_CODES
            .iter()
            .position(|&(code, l)| u32::from(l) == len && code == candidate)
        {
            return Some((symbol, len as u8));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7541 §C.4.1: "www.example.com" Huffman-coded.
    #[test]
    fn huffman_rfc7541_example() {
        let coded = [
            0xf1, 0xe3, 0xc2, 0xe5, 0xf2, 0x3a, 0x6b, 0xa0, 0xab, 0x90, 0xf4, 0xff,
        ];
        assert_eq!(huffman_decode(&coded).unwrap(), b"www.example.com");
        // §C.4.2: "no-cache".
        let coded = [0xa8, 0xeb, 0x10, 0x64, 0x9c, 0xbf];
        assert_eq!(huffman_decode(&coded).unwrap(), b"no-cache");
    }

    #[test]
    fn huffman_rejects_bad_padding() {
        // "a" is 00011 (5 bits); padding with zeros instead of ones.
        assert_eq!(huffman_decode(&[0b0001_1000]), Err(QpackError::BadHuffman));
        assert_eq!(huffman_decode(&[0b0001_1111]).unwrap(), b"a");
        // A whole byte of padding is too much.
        assert_eq!(
            huffman_decode(&[0b0001_1111, 0xff]),
            Err(QpackError::BadHuffman)
        );
    }

    #[test]
    fn request_round_trips_through_decoder() {
        let head = RequestHead {
            authority: "gw.moon.example:4433",
            path: "/inboundmail",
            fields: &[
                ("content-type", "application/batch-SMTP"),
                ("content-length", "1234"),
                ("idempotency-key", "abc"),
                ("authorization", "Bearer t0k3n"),
            ],
        };
        let fields = decode_field_section(&head.encode_post()).unwrap();
        let text: Vec<(String, String)> = fields
            .into_iter()
            .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
            .collect();
        let want = [
            (":method", "POST"),
            (":scheme", "https"),
            (":authority", "gw.moon.example:4433"),
            (":path", "/inboundmail"),
            ("content-type", "application/batch-SMTP"),
            ("content-length", "1234"),
            ("idempotency-key", "abc"),
            ("authorization", "Bearer t0k3n"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(text, want);
    }

    #[test]
    fn long_integers_use_continuation_bytes() {
        let mut out = Vec::new();
        put_int(&mut out, 0x50, 4, 44);
        assert_eq!(out, [0x5f, 0x1d]);
        let mut r = Reader {
            bytes: &out,
            pos: 0,
        };
        assert_eq!(r.int(4).unwrap(), 44);
    }

    #[test]
    fn dynamic_references_are_refused() {
        assert_eq!(
            decode_field_section(&[1, 0]),
            Err(QpackError::DynamicTableReference)
        );
        assert_eq!(
            decode_field_section(&[0, 0, 0x80]),
            Err(QpackError::DynamicTableReference)
        );
        assert_eq!(
            decode_field_section(&[0, 0, 0x10]),
            Err(QpackError::DynamicTableReference)
        );
    }

    #[test]
    fn truncated_sections_are_errors_not_panics() {
        for cut in [
            &[0u8][..],
            &[0, 0, 0x5f],
            &[0, 0, 0x51, 0x05, b'a'],
            &[0, 0, 0x2f],
        ] {
            assert!(decode_field_section(cut).is_err(), "{cut:?}");
        }
    }
}
