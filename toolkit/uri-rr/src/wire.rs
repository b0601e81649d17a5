//! Bounds-checked reading of DNS messages (RFC 1035 §4.1): big-endian
//! integers, and names with compression pointers (§4.1.4) followed safely.
//!
//! Every read checks what remains first; every error carries the byte
//! offset. A compression pointer must point strictly before the start of
//! the name (or name suffix) that contains it, so each jump goes backwards,
//! pointer loops cannot exist and decoding a name takes at most one pass
//! over the message.

use crate::error::DnsError;
use crate::name::{Name, MAX_NAME_LEN};

/// Length of the fixed message header (RFC 1035 §4.1.1).
pub(crate) const HEADER_LEN: usize = 12;

/// A cursor over one DNS message.
pub(crate) struct Reader<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(msg: &'a [u8]) -> Self {
        Reader { msg, pos: 0 }
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<&'a [u8], DnsError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.msg.len())
            .ok_or(DnsError::malformed(self.msg.len(), what))?;
        let bytes = &self.msg[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DnsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DnsError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Reads a possibly compressed name at the cursor and moves past it.
    pub(crate) fn name(&mut self) -> Result<Name, DnsError> {
        let (name, next) = read_name(self.msg, self.pos)?;
        self.pos = next;
        Ok(name)
    }
}

/// Decodes the name starting at `start` in `msg` (RFC 1035 §3.1, §4.1.4).
///
/// Returns the name and the offset just after it in the message: after the
/// root label, or after the first compression pointer. Fails on a name
/// running past the end of the message, a pointer past the end, into the
/// header, or not strictly backwards (which covers every loop), the
/// reserved label types `01` and `10` (RFC 6891 §5), and names over 255
/// octets once expanded.
pub(crate) fn read_name(msg: &[u8], start: usize) -> Result<(Name, usize), DnsError> {
    let mut wire = Vec::with_capacity(32);
    let mut pos = start;
    // Pointers must go strictly below this: the start of the current run of
    // uncompressed labels.
    let mut segment_start = start;
    let mut resume_at = None;
    loop {
        let Some(&len) = msg.get(pos) else {
            return Err(DnsError::malformed(
                pos,
                "name runs past the end of the message",
            ));
        };
        match len & 0xC0 {
            0xC0 => {
                let Some(&low) = msg.get(pos + 1) else {
                    return Err(DnsError::malformed(
                        pos,
                        "compression pointer cut off by the end of the message",
                    ));
                };
                let target = usize::from(len & 0x3F) << 8 | usize::from(low);
                if target >= msg.len() {
                    return Err(DnsError::malformed(
                        pos,
                        "compression pointer past the end of the message",
                    ));
                }
                if target >= segment_start {
                    return Err(DnsError::malformed(
                        pos,
                        "compression pointer does not point backwards (forward pointer or loop)",
                    ));
                }
                if target < HEADER_LEN {
                    return Err(DnsError::malformed(
                        pos,
                        "compression pointer into the message header",
                    ));
                }
                resume_at.get_or_insert(pos + 2);
                segment_start = target;
                pos = target;
            }
            0x00 => {
                let len = usize::from(len);
                if len == 0 {
                    // The label check below always leaves room for this.
                    wire.push(0);
                    let next = resume_at.unwrap_or(pos + 1);
                    return Ok((Name::from_validated_wire(wire), next));
                }
                // This label, and the root label still to come.
                if wire.len() + 1 + len + 1 > MAX_NAME_LEN {
                    return Err(DnsError::malformed(
                        pos,
                        "name longer than 255 octets (RFC 1035 §2.3.4)",
                    ));
                }
                let label = msg.get(pos + 1..pos + 1 + len).ok_or(DnsError::malformed(
                    pos,
                    "label runs past the end of the message",
                ))?;
                wire.push(len as u8);
                wire.extend_from_slice(label);
                pos += 1 + len;
            }
            _ => {
                return Err(DnsError::malformed(
                    pos,
                    "reserved label type (first two bits 01 or 10, RFC 6891 §5)",
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg_with(body: &[u8]) -> Vec<u8> {
        let mut m = vec![0u8; HEADER_LEN];
        m.extend_from_slice(body);
        m
    }

    fn reason(r: Result<(Name, usize), DnsError>) -> (usize, &'static str) {
        match r {
            Err(DnsError::Malformed { offset, reason }) => (offset, reason),
            other => panic!("expected malformed, got {other:?}"),
        }
    }

    #[test]
    fn plain_name() {
        let m = msg_with(b"\x04moon\x07example\x00\xff");
        let (n, next) = read_name(&m, 12).unwrap();
        assert_eq!(n.to_string(), "moon.example.");
        assert_eq!(next, 12 + 14);
    }

    #[test]
    fn valid_pointer_and_pointer_chain() {
        // 12: moon.example.  26: gw + ptr(12)  31: _x + ptr(26)
        let m = msg_with(b"\x04moon\x07example\x00\x02gw\xc0\x0c\x02_x\xc0\x1a");
        let (n, next) = read_name(&m, 26).unwrap();
        assert_eq!(n.to_string(), "gw.moon.example.");
        assert_eq!(next, 31);
        let (n, next) = read_name(&m, 31).unwrap();
        assert_eq!(n.to_string(), "_x.gw.moon.example.");
        assert_eq!(next, 36);
        // A name that is only a pointer.
        let mut m2 = m.clone();
        m2.extend_from_slice(b"\xc0\x1f");
        let (n, next) = read_name(&m2, 36).unwrap();
        assert_eq!(n.to_string(), "_x.gw.moon.example.");
        assert_eq!(next, 38);
    }

    #[test]
    fn self_pointer_is_a_loop() {
        let m = msg_with(b"\xc0\x0c");
        let (at, why) = reason(read_name(&m, 12));
        assert_eq!(at, 12);
        assert!(why.contains("loop"), "{why}");
    }

    #[test]
    fn label_then_pointer_back_to_itself_is_a_loop() {
        // 12: "a" then pointer to 12: would expand a.a.a.a... forever.
        let m = msg_with(b"\x01a\xc0\x0c");
        assert_eq!(reason(read_name(&m, 12)).0, 14);
    }

    #[test]
    fn mutual_pointers_are_a_loop() {
        // 12: ptr(14)  14: ptr(12). Starting at 14 jumps back to 12, whose
        // pointer then goes forward again.
        let m = msg_with(b"\xc0\x0e\xc0\x0c");
        assert_eq!(reason(read_name(&m, 14)).0, 12);
        assert_eq!(reason(read_name(&m, 12)).0, 12);
    }

    #[test]
    fn forward_pointer() {
        let m = msg_with(b"\xc0\x0e\x04moon\x00");
        let (at, why) = reason(read_name(&m, 12));
        assert_eq!(at, 12);
        assert!(why.contains("forward"), "{why}");
    }

    #[test]
    fn out_of_range_pointer() {
        let m = msg_with(b"\x04moon\x00\xc3\xff");
        let (at, why) = reason(read_name(&m, 18));
        assert_eq!(at, 18);
        assert!(why.contains("past the end"), "{why}");
    }

    #[test]
    fn pointer_into_header() {
        let m = msg_with(b"\x04moon\x00\xc0\x02");
        let (_, why) = reason(read_name(&m, 18));
        assert!(why.contains("header"), "{why}");
    }

    #[test]
    fn cut_off_pointer_and_label() {
        let m = msg_with(b"\xc0");
        assert!(reason(read_name(&m, 12)).1.contains("cut off"));
        let m = msg_with(b"\x05moo");
        assert!(reason(read_name(&m, 12)).1.contains("label runs past"));
        let m = msg_with(b"\x04moon");
        assert!(reason(read_name(&m, 12)).1.contains("name runs past"));
    }

    #[test]
    fn reserved_label_types() {
        for b in [0x40u8, 0x80] {
            let m = msg_with(&[b, 0]);
            assert!(reason(read_name(&m, 12)).1.contains("reserved"));
        }
    }

    #[test]
    fn over_255_octets_through_pointers() {
        // Each step adds a 63-octet label and points back at the previous
        // name: four steps make 4 × 64 + 1 = 257 octets.
        let mut body = vec![0u8]; // 12: root
        let mut prev = 12usize;
        let mut starts = vec![];
        for _ in 0..4 {
            let start = HEADER_LEN + body.len();
            starts.push(start);
            body.push(63);
            body.extend(std::iter::repeat_n(b'a', 63));
            body.push(0xC0 | (prev >> 8) as u8);
            body.push(prev as u8);
            prev = start;
        }
        let m = msg_with(&body);
        let (n, _) = read_name(&m, starts[2]).unwrap();
        assert_eq!(n.as_wire().len(), 3 * 64 + 1);
        let (_, why) = reason(read_name(&m, starts[3]));
        assert!(why.contains("255"), "{why}");
    }
}
