//! Split a DNS-over-TCP stream into messages (RFC 1035 §4.2.2).
//! Run with `cargo run -p deepmail-uri-rr --example unframe_tcp`.
use deepmail_uri_rr::{frame_tcp, unframe_tcp};

fn main() {
    let mut stream = frame_tcp(b"first");
    stream.extend(frame_tcp(b"second"));
    let (msg, used) = unframe_tcp(&stream).unwrap();
    assert_eq!((msg, used), (&b"first"[..], 7));
    assert_eq!(unframe_tcp(&stream[used..]).unwrap().0, b"second");
    assert_eq!(unframe_tcp(&stream[..6]), None);
}
