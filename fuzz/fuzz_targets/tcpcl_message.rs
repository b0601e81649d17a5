//! The TCPCLv4 message decoder (RFC 9174 §4, §5): the contact header, then
//! messages decoded one after another from the same buffer; a decoded
//! message encodes again to the bytes it came from.
#![no_main]
use deepmail_tcpcl::message::decode_message;
use deepmail_tcpcl::{ContactHeader, DecodeLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ContactHeader::decode(data);
    let limits = DecodeLimits {
        max_segment_data: 1 << 16,
        ..DecodeLimits::default()
    };
    let mut rest = data;
    while let Ok(Some((message, used))) = decode_message(rest, &limits) {
        assert!(used > 0 && used <= rest.len());
        let mut again = Vec::new();
        if message.encode(&mut again).is_ok() {
            assert_eq!(again, &rest[..used], "{message:?} does not encode to its bytes");
        }
        rest = &rest[used..];
    }
});
