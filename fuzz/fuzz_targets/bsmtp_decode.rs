//! The Batch SMTP decoder in strict and in lenient mode, each whole and
//! streamed in two pieces (split where the first byte says): whole and
//! streamed must agree (the same messages, or both an error), whole must
//! equal the line-by-line reference exactly (the content fast path decides
//! nothing else; errors included), and what decodes must encode again.
#![no_main]
use deepmail_bsmtp::{decode, decode_line_by_line, DecodeMode, DecodeOptions, Decoder};
use libfuzzer_sys::fuzz_target;

fn check(data: &[u8], mode: DecodeMode) {
    let options = DecodeOptions { mode };
    let whole = decode(data, &options);
    assert_eq!(
        whole,
        decode_line_by_line(data, &options),
        "{mode:?}: fast path and reference differ"
    );
    let split = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let mut decoder = Decoder::new(options);
    let mut streamed = Vec::new();
    let mut result = Ok(());
    for piece in [&data[..split], &data[split..]] {
        result = decoder.feed(piece);
        while let Some(m) = decoder.next_message() {
            streamed.push(m);
        }
        if result.is_err() {
            break;
        }
    }
    let streamed = result.and_then(|()| decoder.finish()).map(|rest| {
        streamed.extend(rest);
        streamed
    });
    assert_eq!(
        whole.is_ok(),
        streamed.is_ok(),
        "{mode:?}: whole {whole:?} vs streamed {streamed:?}"
    );
    if let (Ok(a), Ok(b)) = (&whole, &streamed) {
        assert_eq!(a, b, "{mode:?}: whole and streamed decode differ");
        let _ = deepmail_bsmtp::encode(a, &deepmail_bsmtp::EncodeOptions::default());
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, DecodeMode::Strict);
    check(data, DecodeMode::Lenient);
});
