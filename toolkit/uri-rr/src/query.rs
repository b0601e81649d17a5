//! Query messages (RFC 1035 §4.1) with an optional EDNS(0) OPT record
//! (RFC 6891 §6), and the 2-octet length framing of DNS over TCP
//! (RFC 1035 §4.2.2, RFC 7766 §8).

use crate::name::Name;

/// Class IN (RFC 1035 §3.2.4).
pub(crate) const CLASS_IN: u16 = 1;
/// RR type OPT (RFC 6891 §6.1.1).
pub(crate) const TYPE_OPT: u16 = 41;

/// A UDP payload size that avoids IP fragmentation on practically every
/// path (DNS Flag Day 2020); pass `Some(DEFAULT_EDNS_UDP_SIZE)` to
/// [`build_query`] unless you know the path.
pub const DEFAULT_EDNS_UDP_SIZE: u16 = 1232;

/// Builds a standard query (opcode QUERY) for `name`, type `qtype`, class IN.
///
/// The header has RD set (ask the resolver to recurse, RFC 1035 §4.1.1) and
/// AD set (ask it to report DNSSEC validation in the response's AD bit,
/// RFC 6840 §5.7). With `edns_udp_size`, an OPT record (RFC 6891 §6.1.2:
/// root owner, version 0, no flags, no options) in the additional section
/// advertises that UDP payload size; values below 512 are sent as 512
/// (§6.2.5). The name is written uncompressed.
///
/// `id` should come from a good random source (RFC 5452 §9.2); the caller
/// keeps it, with `name` and `qtype`, for [`crate::parse_response`].
///
/// ```
#[doc = include_str!("../examples/build_query.rs")]
/// ```
pub fn build_query(id: u16, name: &Name, qtype: u16, edns_udp_size: Option<u16>) -> Vec<u8> {
    let wire = name.as_wire();
    let mut msg = Vec::with_capacity(12 + wire.len() + 4 + 11);
    msg.extend_from_slice(&id.to_be_bytes());
    // QR=0 OPCODE=0 AA=0 TC=0 RD=1 | RA=0 Z=0 AD=1 CD=0 RCODE=0
    msg.extend_from_slice(&[0x01, 0x20]);
    msg.extend_from_slice(&1u16.to_be_bytes()); // QDCOUNT
    msg.extend_from_slice(&0u16.to_be_bytes()); // ANCOUNT
    msg.extend_from_slice(&0u16.to_be_bytes()); // NSCOUNT
    msg.extend_from_slice(&u16::from(edns_udp_size.is_some()).to_be_bytes()); // ARCOUNT
    msg.extend_from_slice(wire);
    msg.extend_from_slice(&qtype.to_be_bytes());
    msg.extend_from_slice(&CLASS_IN.to_be_bytes());
    if let Some(size) = edns_udp_size {
        msg.push(0); // owner: root
        msg.extend_from_slice(&TYPE_OPT.to_be_bytes());
        msg.extend_from_slice(&size.max(512).to_be_bytes()); // CLASS: UDP payload size
        msg.extend_from_slice(&0u32.to_be_bytes()); // TTL: ext RCODE 0, version 0, DO=0
        msg.extend_from_slice(&0u16.to_be_bytes()); // RDLENGTH
    }
    msg
}

/// Prefixes `msg` with its length as two octets, for DNS over TCP
/// (RFC 1035 §4.2.2).
///
/// # Panics
///
/// If `msg` is longer than 65,535 octets, which no DNS message can be (a
/// query from [`build_query`] is under 300).
pub fn frame_tcp(msg: &[u8]) -> Vec<u8> {
    let len = u16::try_from(msg.len()).unwrap_or_else(|_| {
        panic!(
            "a DNS message over TCP holds at most 65535 octets, got {}",
            msg.len()
        )
    });
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    framed
}

/// Takes the first length-prefixed message off the front of `buf`, the
/// bytes read so far from a DNS-over-TCP stream (RFC 1035 §4.2.2).
///
/// Returns the message and how many bytes of `buf` it used (2 + its
/// length), or `None` while the length prefix or the message is still
/// incomplete: read more and call again with the longer buffer.
///
/// ```
#[doc = include_str!("../examples/unframe_tcp.rs")]
/// ```
pub fn unframe_tcp(buf: &[u8]) -> Option<(&[u8], usize)> {
    let [hi, lo, rest @ ..] = buf else {
        return None;
    };
    let len = usize::from(u16::from_be_bytes([*hi, *lo]));
    let msg = rest.get(..len)?;
    Some((msg, 2 + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes_without_edns() {
        let name = Name::parse("moon.example").unwrap();
        let q = build_query(0x1234, &name, 256, None);
        let mut want = vec![0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 0];
        want.extend_from_slice(b"\x04moon\x07example\x00");
        want.extend_from_slice(&[0x01, 0x00, 0x00, 0x01]);
        assert_eq!(q, want);
    }

    #[test]
    fn query_bytes_with_edns() {
        let name = Name::parse("moon.example").unwrap();
        let q = build_query(7, &name, 256, Some(1232));
        assert_eq!(&q[10..12], &[0, 1]); // ARCOUNT
        assert_eq!(
            &q[q.len() - 11..],
            &[0, 0, 41, 0x04, 0xD0, 0, 0, 0, 0, 0, 0]
        );
        let small = build_query(7, &name, 256, Some(100));
        assert_eq!(
            &small[small.len() - 8..small.len() - 6],
            &512u16.to_be_bytes()
        );
    }

    #[test]
    fn tcp_framing() {
        assert_eq!(frame_tcp(b"abc"), b"\x00\x03abc");
        assert_eq!(unframe_tcp(b""), None);
        assert_eq!(unframe_tcp(b"\x00"), None);
        assert_eq!(unframe_tcp(b"\x00\x03ab"), None);
        assert_eq!(unframe_tcp(b"\x00\x03abcde"), Some((&b"abc"[..], 5)));
        assert_eq!(unframe_tcp(b"\x00\x00"), Some((&b""[..], 2)));
        let big = vec![7u8; 65535];
        let framed = frame_tcp(&big);
        assert_eq!(unframe_tcp(&framed), Some((&big[..], 65537)));
    }

    #[test]
    #[should_panic(expected = "65535")]
    fn frame_tcp_refuses_oversized() {
        frame_tcp(&vec![0; 65536]);
    }
}
