//! A small CBOR (RFC 8949) reader and writer for the subset Bundle Protocol
//! v7 uses (RFC 9171 §4.1): unsigned integers, byte and text strings, arrays
//! and the break stop code.
//!
//! The reader never allocates: byte strings come back as slices of the input,
//! and a declared length is compared with what remains of the input before
//! anything is done with it. Integer and length arguments must be in shortest
//! form, the core deterministic encoding RFC 9171 §4.1 requires (indefinite
//! lengths are allowed for arrays, as that section permits). Every error
//! carries the offset of the item it concerns.

use crate::error::{BundleError, ErrorKind, Result};

/// The CBOR "break" stop code ending an indefinite-length item.
pub(crate) const BREAK: u8 = 0xff;
/// Initial byte of an indefinite-length array.
pub(crate) const INDEFINITE_ARRAY: u8 = 0x9f;

pub(crate) const MAJOR_UINT: u8 = 0;
pub(crate) const MAJOR_BYTES: u8 = 2;
pub(crate) const MAJOR_TEXT: u8 = 3;
pub(crate) const MAJOR_ARRAY: u8 = 4;

/// The name of a major type, for error messages.
fn major_name(major: u8) -> &'static str {
    match major {
        0 => "unsigned integer",
        1 => "negative integer",
        2 => "byte string",
        3 => "text string",
        4 => "array",
        5 => "map",
        6 => "tag",
        _ => "simple value or float",
    }
}

/// The head of one CBOR item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    /// Major type, 0..=7.
    pub major: u8,
    /// The argument; `None` for an indefinite length (or the break code).
    pub arg: Option<u64>,
    /// Offset of the initial byte.
    pub offset: usize,
}

/// A cursor over untrusted bytes.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Current offset into the input.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next byte, without consuming it.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn truncated(&self, what: &str) -> BundleError {
        BundleError::at(
            ErrorKind::Truncated,
            self.buf.len(),
            format!("input ends inside {what}"),
        )
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.truncated(what));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// Reads one item head; `what` names the item for error messages.
    pub(crate) fn head(&mut self, what: &str) -> Result<Head> {
        let offset = self.pos;
        let ib = *self.take(1, what)?.first().unwrap_or(&0);
        let major = ib >> 5;
        let ai = ib & 0x1f;
        let (arg, min) = match ai {
            0..=23 => (Some(u64::from(ai)), 0),
            24 => (Some(u64::from(self.take(1, what)?[0])), 24),
            25 => {
                let b = self.take(2, what)?;
                (Some(u64::from(u16::from_be_bytes([b[0], b[1]]))), 0x100)
            }
            26 => {
                let b = self.take(4, what)?;
                (
                    Some(u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
                    0x1_0000,
                )
            }
            27 => {
                let b = self.take(8, what)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                (Some(u64::from_be_bytes(a)), 0x1_0000_0000)
            }
            28..=30 => {
                return Err(BundleError::at(
                    ErrorKind::MalformedCbor,
                    offset,
                    format!(
                        "{what}: reserved additional information {ai} in initial byte 0x{ib:02x}"
                    ),
                ))
            }
            _ => {
                if !matches!(major, 2..=5 | 7) {
                    return Err(BundleError::at(
                        ErrorKind::MalformedCbor,
                        offset,
                        format!(
                            "{what}: a {} cannot have an indefinite length (initial byte 0x{ib:02x})",
                            major_name(major)
                        ),
                    ));
                }
                (None, 0)
            }
        };
        if let Some(v) = arg {
            if major != 7 && v < min {
                return Err(BundleError::at(
                    ErrorKind::MalformedCbor,
                    offset,
                    format!("{what}: argument {v} is not in shortest form"),
                ));
            }
        }
        Ok(Head { major, arg, offset })
    }

    fn expect_major(&mut self, major: u8, what: &str) -> Result<Head> {
        let h = self.head(what)?;
        if h.major != major {
            let found = if h.major == 7 && h.arg.is_none() {
                "a break stop code"
            } else {
                major_name(h.major)
            };
            return Err(BundleError::at(
                ErrorKind::MalformedCbor,
                h.offset,
                format!("{what}: expected {}, found {found}", major_name(major)),
            ));
        }
        Ok(h)
    }

    /// Reads an unsigned integer.
    pub(crate) fn uint(&mut self, what: &str) -> Result<u64> {
        let h = self.expect_major(MAJOR_UINT, what)?;
        Ok(h.arg.unwrap_or(0))
    }

    /// Reads a definite-length string of major type `major`, returning the
    /// content and the offset of its first byte.
    fn string(&mut self, major: u8, what: &str) -> Result<(&'a [u8], usize)> {
        let h = self.expect_major(major, what)?;
        let Some(len) = h.arg else {
            return Err(BundleError::at(
                ErrorKind::MalformedCbor,
                h.offset,
                format!("{what}: indefinite-length {} not allowed here (RFC 9171 §4.3.2 wants a definite-length string)", major_name(major)),
            ));
        };
        // Compare in u64 before converting: nothing is allocated or sliced
        // from a length the input cannot back.
        if len > self.remaining() as u64 {
            return Err(BundleError::at(
                ErrorKind::Truncated,
                h.offset,
                format!(
                    "{what} declares {len} bytes but only {} remain",
                    self.remaining()
                ),
            ));
        }
        let start = self.pos;
        let s = self.take(len as usize, what)?;
        Ok((s, start))
    }

    /// Reads a definite-length byte string: (content, offset of content).
    pub(crate) fn bytes(&mut self, what: &str) -> Result<(&'a [u8], usize)> {
        self.string(MAJOR_BYTES, what)
    }

    /// Reads a definite-length UTF-8 text string.
    pub(crate) fn text(&mut self, what: &str) -> Result<&'a str> {
        let (s, start) = self.string(MAJOR_TEXT, what)?;
        core::str::from_utf8(s).map_err(|e| {
            BundleError::at(
                ErrorKind::MalformedCbor,
                start + e.valid_up_to(),
                format!("{what}: text string is not valid UTF-8"),
            )
        })
    }

    /// Reads an array head and returns an iterator-like cursor over its items.
    pub(crate) fn array(&mut self, what: &str) -> Result<Items> {
        let h = self.expect_major(MAJOR_ARRAY, what)?;
        Ok(Items {
            left: h.arg,
            declared: h.arg,
            offset: h.offset,
        })
    }
}

/// Walks the items of a definite- or indefinite-length array.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Items {
    /// Items left for a definite array; `None` for an indefinite one.
    left: Option<u64>,
    /// The count in the head, for a definite-length array.
    declared: Option<u64>,
    /// Offset of the array head.
    pub offset: usize,
}

impl Items {
    /// The declared item count, for a definite-length array.
    pub(crate) fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// True when another item follows; at the end of an indefinite array
    /// this consumes the break code.
    pub(crate) fn more(&mut self, r: &mut Reader<'_>, what: &str) -> Result<bool> {
        match &mut self.left {
            Some(0) => Ok(false),
            Some(n) => {
                *n -= 1;
                Ok(true)
            }
            None => match r.peek() {
                None => Err(r.truncated(what)),
                Some(BREAK) => {
                    r.pos += 1;
                    self.left = Some(0);
                    Ok(false)
                }
                Some(_) => Ok(true),
            },
        }
    }

    /// Requires another item; `field` names it for the error.
    pub(crate) fn need(&mut self, r: &mut Reader<'_>, what: &str, field: &str) -> Result<()> {
        if self.more(r, what)? {
            Ok(())
        } else {
            Err(BundleError::at(
                ErrorKind::MalformedCbor,
                self.offset,
                format!("{what} ends before its {field}"),
            ))
        }
    }

    /// Requires the array to end here.
    pub(crate) fn end(&mut self, r: &mut Reader<'_>, what: &str) -> Result<()> {
        if self.more(r, what)? {
            Err(BundleError::at(
                ErrorKind::MalformedCbor,
                self.offset,
                format!("{what} has more items than RFC 9171 allows"),
            ))
        } else {
            Ok(())
        }
    }
}

/// Length of a head carrying `v`.
pub(crate) fn head_len(v: u64) -> usize {
    match v {
        0..=23 => 1,
        24..=0xff => 2,
        0x100..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

/// Appends a shortest-form head.
pub(crate) fn put_head(out: &mut Vec<u8>, major: u8, v: u64) {
    let m = major << 5;
    match v {
        0..=23 => out.push(m | v as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, v as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(v as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

/// Appends an unsigned integer.
pub(crate) fn put_uint(out: &mut Vec<u8>, v: u64) {
    put_head(out, MAJOR_UINT, v);
}

/// Appends a definite-length byte string.
#[cfg(test)]
pub(crate) fn put_bytes(out: &mut Vec<u8>, data: &[u8]) {
    put_head(out, MAJOR_BYTES, data.len() as u64);
    out.extend_from_slice(data);
}

/// Appends a definite-length text string.
pub(crate) fn put_text(out: &mut Vec<u8>, s: &str) {
    put_head(out, MAJOR_TEXT, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uint_round_trip_at_every_width_boundary() {
        for v in [
            0u64,
            23,
            24,
            255,
            256,
            65535,
            65536,
            u32::MAX as u64,
            u32::MAX as u64 + 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_uint(&mut out, v);
            assert_eq!(out.len(), head_len(v));
            let mut r = Reader::new(&out);
            assert_eq!(r.uint("v").unwrap(), v);
            assert_eq!(r.remaining(), 0);
        }
    }

    #[test]
    fn non_shortest_forms_are_malformed() {
        for bytes in [
            &[0x18, 0x05][..],
            &[0x19, 0x00, 0xff],
            &[0x1a, 0, 0, 0xff, 0xff],
        ] {
            let e = Reader::new(bytes).uint("v").unwrap_err();
            assert_eq!(e.kind, ErrorKind::MalformedCbor, "{bytes:02x?}");
            assert_eq!(e.offset, Some(0));
        }
    }

    #[test]
    fn reserved_additional_information_is_malformed() {
        for ib in [0x1c, 0x1d, 0x1e, 0x1f] {
            let e = Reader::new(&[ib]).uint("v").unwrap_err();
            assert_eq!(e.kind, ErrorKind::MalformedCbor);
        }
    }

    #[test]
    fn huge_declared_length_is_truncated_without_allocating() {
        // bstr claiming 2^63 bytes
        let bytes = [0x5b, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3];
        let e = Reader::new(&bytes).bytes("data").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Truncated);
        assert_eq!(e.offset, Some(0));
        assert!(e.detail.contains("9223372036854775808"), "{}", e.detail);
    }

    #[test]
    fn wrong_type_names_both_types() {
        let e = Reader::new(&[0x41, 0x00]).uint("lifetime").unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedCbor);
        assert!(e
            .detail
            .contains("expected unsigned integer, found byte string"));
    }

    #[test]
    fn invalid_utf8_text_is_malformed() {
        let e = Reader::new(&[0x62, 0xc3, 0x28]).text("ssp").unwrap_err();
        assert_eq!(e.kind, ErrorKind::MalformedCbor);
        assert_eq!(e.offset, Some(1));
    }

    #[test]
    fn indefinite_array_items_end_at_break() {
        let bytes = [0x9f, 0x01, 0x02, 0xff];
        let mut r = Reader::new(&bytes);
        let mut items = r.array("a").unwrap();
        assert_eq!(items.declared(), None);
        let mut got = Vec::new();
        while items.more(&mut r, "a").unwrap() {
            got.push(r.uint("x").unwrap());
        }
        assert_eq!(got, [1, 2]);
        assert_eq!(r.remaining(), 0);
    }

    #[test]
    fn indefinite_array_without_break_is_truncated() {
        let bytes = [0x9f, 0x01];
        let mut r = Reader::new(&bytes);
        let mut items = r.array("a").unwrap();
        assert!(items.more(&mut r, "a").unwrap());
        r.uint("x").unwrap();
        assert_eq!(
            items.more(&mut r, "a").unwrap_err().kind,
            ErrorKind::Truncated
        );
    }
}
