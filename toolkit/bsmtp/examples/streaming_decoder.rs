//! Feed a `Decoder` chunks split anywhere; take messages as they complete.
//! Run with `cargo run -p deepmail-bsmtp --example streaming_decoder`.
use deepmail_bsmtp::{DecodeOptions, Decoder};

fn main() -> Result<(), deepmail_bsmtp::DecodeError> {
    let mut decoder = Decoder::new(DecodeOptions::default());
    decoder.feed(b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.exa")?;
    decoder.feed(b"mple>\r\nDATA\r\nhi\r\n.\r\n")?;
    let message = decoder.next_message().expect("one message");
    assert_eq!(message.content, b"hi\r\n");
    assert!(decoder.finish()?.is_empty());
    Ok(())
}
