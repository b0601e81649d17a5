//! Encode one message as a Batch SMTP stream and decode it back.
//! Run with `cargo run -p deepmail-bsmtp --example round_trip`.
use deepmail_bsmtp::{
    decode, encode, DecodeOptions, EncodeOptions, Envelope, ForwardPath, Message,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let message = Message {
        envelope: Envelope {
            reverse_path: "alice@earth.example".into(),
            mail_parameters: vec![],
            forward_paths: vec![ForwardPath::new("bob@moon.example")],
        },
        content: b"Subject: hi\n\n.hidden dot\n".to_vec(),
    };
    let batch = encode(std::slice::from_ref(&message), &EncodeOptions::default())?;
    assert_eq!(
        batch,
        b"MAIL FROM:<alice@earth.example>\r\nRCPT TO:<bob@moon.example>\r\nDATA\r\n\
          Subject: hi\r\n\r\n..hidden dot\r\n.\r\n"
    );
    let decoded = decode(&batch, &DecodeOptions::default())?;
    assert_eq!(decoded[0].content, b"Subject: hi\r\n\r\n.hidden dot\r\n");
    Ok(())
}
