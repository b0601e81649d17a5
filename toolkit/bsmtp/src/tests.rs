//! Tests of the public API: canonical encoding, every decode error class
//! with its position, Exim-style batches, hostile input, streaming
//! equivalence, and proptest round trips.

use proptest::prelude::*;

use crate::*;

const STRICT: DecodeOptions = DecodeOptions {
    mode: DecodeMode::Strict,
};
const LENIENT: DecodeOptions = DecodeOptions {
    mode: DecodeMode::Lenient,
};

fn message(rp: &str, rcpts: &[&str], content: &[u8]) -> Message {
    Message {
        envelope: Envelope {
            reverse_path: rp.into(),
            mail_parameters: vec![],
            forward_paths: rcpts.iter().map(|r| ForwardPath::new(*r)).collect(),
        },
        content: content.to_vec(),
    }
}

fn ok(input: &[u8], options: DecodeOptions) -> Vec<Message> {
    match decode(input, &options) {
        Ok(messages) => messages,
        Err(e) => panic!(
            "{:?} should decode, got {e}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// (class, line, offset) of the error decoding `input`, checked to be the
/// same when streamed byte at a time.
fn fail(input: &[u8], options: DecodeOptions) -> (&'static str, u64, u64) {
    let error = match decode(input, &options) {
        Ok(m) => panic!(
            "{:?} should fail, decoded {m:?}",
            String::from_utf8_lossy(input)
        ),
        Err(e) => e,
    };
    let streamed = decode_chunked(input, options, &(1..input.len()).collect::<Vec<_>>());
    assert_eq!(
        streamed,
        Err(error.clone()),
        "byte-at-a-time differs for {:?}",
        String::from_utf8_lossy(input)
    );
    (error.code(), error.line, error.offset)
}

/// Decodes `input` fed to a [`Decoder`] in pieces ending at `cuts`.
fn decode_chunked(
    input: &[u8],
    options: DecodeOptions,
    cuts: &[usize],
) -> Result<Vec<Message>, DecodeError> {
    let mut decoder = Decoder::new(options);
    let mut out = Vec::new();
    let mut previous = 0;
    for &cut in cuts {
        let cut = cut.clamp(previous, input.len());
        decoder.feed(&input[previous..cut])?;
        out.extend(std::iter::from_fn(|| decoder.next_message()));
        previous = cut;
    }
    decoder.feed(&input[previous..])?;
    out.extend(std::iter::from_fn(|| decoder.next_message()));
    out.extend(decoder.finish()?);
    Ok(out)
}

/// What decoding an encoded message gives back: line ends CRLF, ending in CRLF.
fn normalise(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < content.len() {
        match content[i] {
            b'\r' if content.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
            }
            b'\r' | b'\n' => out.extend_from_slice(b"\r\n"),
            b => out.push(b),
        }
        i += 1;
    }
    if !out.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out
}

mod encoding {
    use super::*;

    #[test]
    fn canonical_form() {
        let mut m = message(
            "alice@earth.example",
            &["bob@moon.example", "carol@mars.example"],
            b"Subject: hi\r\n\r\nhello\r\n",
        );
        m.envelope.mail_parameters = vec![
            SmtpParam::new("BODY", "8BITMIME"),
            SmtpParam::flag("SMTPUTF8"),
        ];
        m.envelope.forward_paths[1].parameters = vec![SmtpParam::new("NOTIFY", "FAILURE,DELAY")];
        let options = EncodeOptions {
            greeting: Greeting::Ehlo("earth-gw.example".into()),
            quit: true,
        };
        assert_eq!(
            String::from_utf8(
                encode(&[m.clone(), message("", &["postmaster"], b"x")], &options).unwrap()
            )
            .unwrap(),
            "EHLO earth-gw.example\r\n\
             MAIL FROM:<alice@earth.example> BODY=8BITMIME SMTPUTF8\r\n\
             RCPT TO:<bob@moon.example>\r\n\
             RCPT TO:<carol@mars.example> NOTIFY=FAILURE,DELAY\r\n\
             DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\n\
             MAIL FROM:<>\r\nRCPT TO:<postmaster>\r\nDATA\r\nx\r\n.\r\n\
             QUIT\r\n"
        );
        let helo = EncodeOptions {
            greeting: Greeting::Helo("[192.0.2.1]".into()),
            quit: false,
        };
        assert!(encode(&[], &helo).unwrap() == b"HELO [192.0.2.1]\r\n");
        assert!(encode(&[], &EncodeOptions::default()).unwrap().is_empty());
    }

    #[test]
    fn content_is_normalised_and_dot_stuffed() {
        let cases: [(&[u8], &[u8]); 9] = [
            (b"", b"\r\n"),
            (b"a", b"a\r\n"),
            (b"a\nb\n", b"a\r\nb\r\n"),
            (b"a\rb", b"a\r\nb\r\n"),
            (b"a\r\r\nb\r", b"a\r\n\r\nb\r\n"),
            (b".\r\n", b"..\r\n"),
            (b"..\n.foo\n. \nx.y\n", b"...\r\n..foo\r\n.. \r\nx.y\r\n"),
            (b"\n\n", b"\r\n\r\n"),
            (b".", b"..\r\n"),
        ];
        for (content, body) in cases {
            let out = encode(
                &[message("a@b", &["c@d"], content)],
                &EncodeOptions::default(),
            )
            .unwrap();
            let mut expected = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
            expected.extend_from_slice(body);
            expected.extend_from_slice(b".\r\n");
            assert_eq!(
                out,
                expected,
                "content {:?}",
                String::from_utf8_lossy(content)
            );
        }
    }

    fn invalid(m: Message) -> EncodeError {
        let e = encode(
            &[message("x@y", &["z@w"], b""), m],
            &EncodeOptions::default(),
        )
        .unwrap_err();
        assert_eq!(e.message_index, 1);
        e
    }

    #[test]
    fn unsafe_paths_are_refused() {
        for path in [
            "a@b\r\nRCPT TO:<evil@x>",
            "a\n@b",
            "a\0@b",
            "a b@c",
            "a@b> SIZE=1",
            "<a@b",
            "no-domain",
            "a@b..c",
            "\"unbalanced@b",
            "ü@b",
        ] {
            let e = invalid(message(path, &["c@d"], b""));
            assert_eq!(e.code(), "invalid-envelope", "reverse path {path:?}");
            let e = invalid(message("a@b", &["c@d", path], b""));
            assert_eq!(
                e.kind,
                EncodeErrorKind::InvalidEnvelope,
                "forward path {path:?}"
            );
            assert!(
                e.to_string().starts_with("message #1: forward path 1 "),
                "{e}"
            );
        }
        assert_eq!(
            invalid(message("a@b", &[""], b"")).code(),
            "invalid-envelope"
        );
        // Valid but unusual paths are written verbatim.
        let m = message(
            "@r1.example,@r2.example:a@[IPv6:2001:db8::1]",
            &["\"q.x\"@b", "Postmaster"],
            b"",
        );
        let out = encode(&[m], &EncodeOptions::default()).unwrap();
        assert!(out.starts_with(
            b"MAIL FROM:<@r1.example,@r2.example:a@[IPv6:2001:db8::1]>\r\nRCPT TO:<\"q.x\"@b>\r\n"
        ));
        // UTF-8 paths need SMTPUTF8.
        let mut m = message("ü@b", &["ä@bücher.example"], b"");
        m.envelope.mail_parameters.push(SmtpParam::flag("SMTPUTF8"));
        assert!(encode(&[m], &EncodeOptions::default()).is_ok());
    }

    #[test]
    fn unsafe_parameters_are_refused() {
        let bad = [
            SmtpParam::new("BODY", ""),
            SmtpParam::new("BODY", "8BIT MIME"),
            SmtpParam::new("BODY", "a=b"),
            SmtpParam::new("BODY", "x\r\nRCPT"),
            SmtpParam::new("", "x"),
            SmtpParam::new("-X", "x"),
            SmtpParam::new("X_Y", "x"),
            SmtpParam::new("X", "ü"),
            SmtpParam::flag("X Y"),
        ];
        for param in bad {
            let mut m = message("a@b", &["c@d"], b"");
            m.envelope.mail_parameters.push(param.clone());
            assert_eq!(invalid(m).code(), "invalid-envelope", "{param:?}");
            let mut m = message("a@b", &["c@d"], b"");
            m.envelope.forward_paths[0].parameters.push(param.clone());
            assert_eq!(invalid(m).code(), "invalid-envelope", "{param:?}");
        }
        let mut m = message("a@b", &["c@d"], b"");
        m.envelope.mail_parameters =
            vec![SmtpParam::flag("SMTPUTF8"), SmtpParam::new("ENVID", "ü")];
        assert!(encode(&[m], &EncodeOptions::default()).is_ok());
    }

    #[test]
    fn greeting_is_validated() {
        for domain in ["", "a b", "a\r\nMAIL", "bad_name", "[1.2.3]"] {
            let e = encode(
                &[],
                &EncodeOptions {
                    greeting: Greeting::Helo(domain.into()),
                    quit: false,
                },
            )
            .unwrap_err();
            assert_eq!(
                (e.kind, e.code()),
                (EncodeErrorKind::InvalidGreeting, "invalid-envelope")
            );
            assert!(e.to_string().starts_with("greeting: HELO "), "{e}");
        }
    }

    #[test]
    fn no_recipients_nul_and_long_lines() {
        let e = invalid(message("a@b", &[], b"x"));
        assert_eq!((e.code(), e.message_index), ("no-recipients", 1));
        let e = invalid(message("a@b", &["c@d"], b"abc\r\nd\0e"));
        assert_eq!(e.code(), "nul-byte");
        assert!(e.to_string().contains("content octet 6"), "{e}");

        let limit = |content: Vec<u8>, eight_bit: bool| {
            let mut m = message("a@b", &["c@d"], &content);
            if eight_bit {
                m.envelope
                    .mail_parameters
                    .push(SmtpParam::new("body", "8bitmime"));
            }
            encode(&[m], &EncodeOptions::default())
        };
        assert!(limit(vec![b'a'; 998], false).is_ok());
        assert_eq!(
            limit(vec![b'a'; 999], false).unwrap_err().code(),
            "line-too-long"
        );
        // 998 octets starting with a dot: 999 on the wire once stuffed,
        // within the limit, which does not count the stuffing dot
        // (RFC 5321 §4.5.3.1.6), and the decoder reads it back.
        let mut dotted = vec![b'.'];
        dotted.extend(vec![b'a'; 997]);
        let wire = limit(dotted.clone(), false).unwrap();
        let back = decode(&wire, &DecodeOptions::default()).unwrap();
        assert_eq!(&back[0].content[..998], &dotted[..]);
        dotted.push(b'a');
        let e = limit(dotted.clone(), false).unwrap_err();
        assert_eq!(e.code(), "line-too-long");
        assert!(
            e.to_string()
                .contains("content line 1 (at content octet 0) is 999 octets"),
            "{e}"
        );
        assert!(limit(dotted, true).is_ok());
        assert!(limit(vec![b'a'; 5000], true).is_ok());
    }

    #[test]
    fn encode_into_appends_and_rolls_back() {
        let mut out = b"prefix".to_vec();
        encode_into(
            &[message("a@b", &["c@d"], b"x")],
            &EncodeOptions::default(),
            &mut out,
        )
        .unwrap();
        assert!(out.starts_with(b"prefixMAIL FROM:<a@b>\r\n"));
        let mut out = b"prefix".to_vec();
        let e = encode_into(
            &[message("a@b", &["c@d"], b"x"), message("a@b", &[], b"")],
            &EncodeOptions::default(),
            &mut out,
        );
        assert_eq!(e.unwrap_err().message_index, 1);
        assert_eq!(out, b"prefix");
    }
}

mod decoding {
    use super::*;

    const HEAD: &str = "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"; // 17 + 15 + 6 = 38 octets

    fn batch(parts: &[&str]) -> Vec<u8> {
        parts.concat().into_bytes()
    }

    #[test]
    fn full_featured_batch() {
        let input = batch(&[
            "EHLO earth.example\r\n",
            "mail from:<@relay.example:alice@earth.example> BODY=8BITMIME SIZE=42\r\n",
            "NOOP keep going\r\n",
            "RCPT TO:<\"bob smith\"@[192.0.2.7]> NOTIFY=NEVER\r\n",
            "rcpt to:<postmaster>\r\n",
            "data\r\n",
            "Subject: dots\r\n\r\n..\r\n...x\r\n.foo\r\n \r\n",
            ".\r\n",
            "RSET\r\n",
            "MAIL FROM:<> \r\nRCPT TO:<x@y>\r\nRSET\r\n",
            "HELO earth.example\r\n",
            "MAIL FROM:<>\r\nRCPT TO:<x@y>\r\nDATA\r\n.\r\n",
            "QUIT\r\n\r\n",
        ]);
        let messages = ok(&input, STRICT);
        assert_eq!(messages.len(), 2);
        let first = &messages[0].envelope;
        assert_eq!(first.reverse_path, "@relay.example:alice@earth.example");
        assert_eq!(
            first.mail_parameters,
            vec![
                SmtpParam::new("BODY", "8BITMIME"),
                SmtpParam::new("SIZE", "42")
            ]
        );
        assert_eq!(first.forward_paths[0].mailbox, "\"bob smith\"@[192.0.2.7]");
        assert_eq!(
            first.forward_paths[0].parameters,
            vec![SmtpParam::new("NOTIFY", "NEVER")]
        );
        assert_eq!(first.forward_paths[1], ForwardPath::new("postmaster"));
        assert_eq!(
            messages[0].content,
            b"Subject: dots\r\n\r\n.\r\n..x\r\nfoo\r\n \r\n"
        );
        assert_eq!(messages[1], message("", &["x@y"], b""));
        assert_eq!(ok(&input, LENIENT), messages);
    }

    #[test]
    fn empty_input_and_empty_content() {
        assert_eq!(ok(b"", STRICT), vec![]);
        assert_eq!(ok(b"", LENIENT), vec![]);
        assert_eq!(ok(b"HELO a\r\nQUIT\r\n", STRICT), vec![]);
        let m = ok(batch(&[HEAD, ".\r\n"]).as_slice(), STRICT);
        assert_eq!(m, vec![message("a@b", &["c@d"], b"")]);
        let m = ok(batch(&[HEAD, "\r\n.\r\n"]).as_slice(), STRICT);
        assert_eq!(m[0].content, b"\r\n");
    }

    #[test]
    fn eight_bit_utf8_content_and_smtputf8_envelope() {
        let input = batch(&[
            "MAIL FROM:<jösé@bücher.example> SMTPUTF8 BODY=8BITMIME\r\n",
            "RCPT TO:<пётр@почта.example> ORCPT=utf-8;пётр@почта.example\r\nDATA\r\n",
            "Subject: grüße\r\n\r\n日本語 ✉\r\n.\r\n",
        ]);
        let m = ok(&input, STRICT);
        assert_eq!(m[0].envelope.reverse_path, "jösé@bücher.example");
        assert_eq!(
            m[0].envelope.forward_paths[0].parameters[0]
                .value
                .as_deref(),
            Some("utf-8;пётр@почта.example")
        );
        assert_eq!(
            m[0].content,
            "Subject: grüße\r\n\r\n日本語 ✉\r\n".as_bytes()
        );
        // Re-encoding gives the same bytes.
        assert_eq!(encode(&m, &EncodeOptions::default()).unwrap(), input);
        // Without SMTPUTF8 a UTF-8 path or parameter does not parse.
        assert_eq!(
            fail("MAIL FROM:<jösé@b>\r\n".as_bytes(), STRICT),
            ("malformed-path", 1, 0)
        );
        assert_eq!(
            fail("MAIL FROM:<a@b> ENVID=ü\r\n".as_bytes(), STRICT),
            ("bad-parameter", 1, 0)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a\xff@b> SMTPUTF8\r\n", STRICT),
            ("malformed-path", 1, 0)
        );
    }

    #[test]
    fn two_megabyte_content() {
        let mut content = Vec::new();
        let mut n = 0u32;
        while content.len() < 2 << 20 {
            if n.is_multiple_of(7) {
                content.push(b'.');
            }
            content.extend_from_slice(
                format!("line {n:08} of a two megabyte message, with some padding text here")
                    .as_bytes(),
            );
            content.extend_from_slice(if n.is_multiple_of(3) { b"\n" } else { b"\r\n" });
            n += 1;
        }
        let m = message("a@b", &["c@d"], &content);
        let batch = encode(std::slice::from_ref(&m), &EncodeOptions::default()).unwrap();
        let expected = vec![Message {
            content: normalise(&content),
            ..m
        }];
        assert_eq!(ok(&batch, STRICT), expected);
        let cuts: Vec<usize> = (1..batch.len()).step_by(4093).collect();
        assert_eq!(decode_chunked(&batch, STRICT, &cuts), Ok(expected));
    }

    #[test]
    fn every_error_class_with_position() {
        let s = |parts: &[&str]| batch(parts);
        // missing-final-dot: at end of input, on the line that would come next.
        assert_eq!(
            fail(&s(&[HEAD, "hello\r\n"]), STRICT),
            ("missing-final-dot", 5, 45)
        );
        assert_eq!(
            fail(&s(&[HEAD, "hello"]), STRICT),
            ("missing-final-dot", 4, 43)
        );
        assert_eq!(
            fail(&s(&[HEAD, "hello\n"]), LENIENT),
            ("missing-final-dot", 5, 44)
        );
        assert_eq!(fail(&s(&[HEAD]), LENIENT), ("missing-final-dot", 4, 38));
        // incomplete-transaction
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", STRICT),
            ("incomplete-transaction", 3, 32)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\r\nQUIT\r\n", STRICT),
            ("incomplete-transaction", 2, 17)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\n", LENIENT),
            ("incomplete-transaction", 2, 16)
        );
        // unterminated-line
        assert_eq!(
            fail(&s(&[HEAD, "hi\r\n.\r\nQUIT"]), STRICT),
            ("unterminated-line", 6, 45)
        );
        assert_eq!(
            fail(&s(&[HEAD, "hi\r\n."]), STRICT),
            ("unterminated-line", 5, 42)
        );
        assert_eq!(fail(b"HELO a", STRICT), ("unterminated-line", 1, 0));
        // out-of-sequence
        assert_eq!(
            fail(b"RCPT TO:<c@d>\r\n", STRICT),
            ("out-of-sequence", 1, 0)
        );
        assert_eq!(
            fail(b"HELO x\r\nDATA\r\n", STRICT),
            ("out-of-sequence", 2, 8)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\n", STRICT),
            ("out-of-sequence", 2, 17)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\r\nEHLO earth.example\r\n", STRICT),
            ("out-of-sequence", 2, 17)
        );
        assert_eq!(fail(b"RCPT TO:<c@d>\n", LENIENT), ("out-of-sequence", 1, 0));
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\nMAIL FROM:<a@b>\n", LENIENT),
            ("out-of-sequence", 2, 16)
        );
        // no-recipients
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\r\nDATA\r\n", STRICT),
            ("no-recipients", 2, 17)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\nDATA\n", LENIENT),
            ("no-recipients", 2, 16)
        );
        // malformed-command
        assert_eq!(
            fail(b"MAIL TO:<a@b>\r\n", STRICT),
            ("malformed-command", 1, 0)
        );
        assert_eq!(fail(b"MAIL\r\n", STRICT), ("malformed-command", 1, 0));
        assert_eq!(fail(b"HELO x\r\n\r\n", STRICT), ("malformed-command", 2, 8));
        assert_eq!(fail(b"HELO\r\n", STRICT), ("malformed-command", 1, 0));
        assert_eq!(fail(b"HELO a b\r\n", STRICT), ("malformed-command", 1, 0));
        assert_eq!(
            fail(b"MAIL FROM: <a@b>\r\n", STRICT),
            ("malformed-command", 1, 0)
        );
        assert_eq!(fail(b"RSET now\r\n", STRICT), ("malformed-command", 1, 0));
        assert_eq!(fail(b"QUIT2\r\n", STRICT), ("malformed-command", 1, 0));
        assert_eq!(
            fail(
                &s(&["MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n", "DATA now\r\n"]),
                STRICT
            ),
            ("malformed-command", 3, 32)
        );
        assert_eq!(
            fail(b"HELO x\nMAIL FROM <a@b>\n", LENIENT),
            ("malformed-command", 2, 7)
        );
        // malformed-path
        assert_eq!(
            fail(b"MAIL FROM:<a b@c>\r\n", STRICT),
            ("malformed-path", 1, 0)
        );
        assert_eq!(fail(b"MAIL FROM:a@b\r\n", STRICT), ("malformed-path", 1, 0));
        assert_eq!(fail(b"MAIL FROM:\r\n", STRICT), ("malformed-path", 1, 0));
        assert_eq!(
            fail(b"MAIL FROM:<a@b>x\r\n", STRICT),
            ("malformed-path", 1, 0)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\r\nRCPT TO:<>\r\n", STRICT),
            ("malformed-path", 2, 17)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\nRCPT TO:<c@[1.2.3]>\n", LENIENT),
            ("malformed-path", 2, 16)
        );
        // bad-parameter
        assert_eq!(
            fail(b"MAIL FROM:<a@b> BODY=\r\n", STRICT),
            ("bad-parameter", 1, 0)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b> -X\r\n", STRICT),
            ("bad-parameter", 1, 0)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b> A=1  B=2\r\n", STRICT),
            ("bad-parameter", 1, 0)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d> X=a=b\r\n", STRICT),
            ("bad-parameter", 2, 17)
        );
        assert_eq!(
            fail(b"MAIL FROM:<a@b> X_Y\n", LENIENT),
            ("bad-parameter", 1, 0)
        );
        // unknown-command
        assert_eq!(
            fail(b"HELO x\r\nVRFY bob\r\n", STRICT),
            ("unknown-command", 2, 8)
        );
        assert_eq!(fail(b"BDAT 10 LAST\r\n", STRICT), ("unknown-command", 1, 0));
        assert_eq!(fail(b"STARTTLS\n", LENIENT), ("unknown-command", 1, 0));
        assert_eq!(fail(b"\x80\x81\r\n", STRICT), ("unknown-command", 1, 0));
        // nul-byte: the octet itself
        assert_eq!(
            fail(&s(&[HEAD, "he\0llo\r\n.\r\n"]), STRICT),
            ("nul-byte", 4, 40)
        );
        assert_eq!(
            fail(&s(&[HEAD, "he\0llo\r\n.\r\n"]), LENIENT),
            ("nul-byte", 4, 40)
        );
        assert_eq!(fail(b"HELO a\0\r\n", LENIENT), ("nul-byte", 1, 6));
        // bare-cr: the octet itself, in both modes
        assert_eq!(fail(b"HELO x\rNOOP\r\n", STRICT), ("bare-cr", 1, 6));
        assert_eq!(
            fail(&s(&[HEAD, "a\rb\r\n.\r\n"]), LENIENT),
            ("bare-cr", 4, 39)
        );
        assert_eq!(fail(b"HELO x\r", LENIENT), ("bare-cr", 1, 6));
        assert_eq!(fail(b"HELO x\r\r\n", STRICT), ("bare-cr", 1, 6));
        // bare-lf: strict only
        assert_eq!(fail(b"HELO x\nNOOP\r\n", STRICT), ("bare-lf", 1, 6));
        assert_eq!(
            fail(&s(&[HEAD, "ok\r\nnot ok\n.\r\n"]), STRICT),
            ("bare-lf", 5, 48)
        );
        // line-too-long: the line's first octet
        let long_command = format!("NOOP {}\r\n", "x".repeat(994));
        assert_eq!(
            fail(long_command.as_bytes(), STRICT),
            ("line-too-long", 1, 0)
        );
        assert!(ok(format!("NOOP {}\r\n", "x".repeat(993)).as_bytes(), STRICT).is_empty());
        let long_content = s(&[HEAD, "ok\r\n", &"a".repeat(999), "\r\n.\r\n"]);
        assert_eq!(fail(&long_content, STRICT), ("line-too-long", 5, 42));
        let long_nul = s(&[HEAD, &"a".repeat(1200), "\0\r\n.\r\n"]);
        assert_eq!(fail(&long_nul, STRICT), ("line-too-long", 4, 38));
        // The stuffing dot is not counted: 999 octets of text after it.
        let dotted = s(&[HEAD, ".", &"a".repeat(999), "\r\n.\r\n"]);
        assert_eq!(fail(&dotted, STRICT), ("line-too-long", 4, 38));
        let huge_command = format!("NOOP {}\n", "x".repeat(70_000));
        assert_eq!(
            fail(huge_command.as_bytes(), LENIENT),
            ("line-too-long", 1, 0)
        );
        // trailing-garbage: the first octet that is not a blank line
        assert_eq!(
            fail(b"QUIT\r\nNOOP\r\n", STRICT),
            ("trailing-garbage", 2, 6)
        );
        assert_eq!(fail(b"QUIT\r\n\r\nx", STRICT), ("trailing-garbage", 3, 8));
        assert_eq!(fail(b"QUIT\r\n\n", STRICT), ("trailing-garbage", 2, 6));
        assert_eq!(fail(b"QUIT\r\n\r", STRICT), ("trailing-garbage", 2, 6));
    }

    #[test]
    fn line_limit_boundaries() {
        let exact = s998(998, false);
        assert_eq!(ok(&exact, STRICT)[0].content.len(), 1000);
        assert_eq!(fail(&s998(999, false), STRICT).0, "line-too-long");
        // A stuffed line: 999 octets on the wire, 998 of text (the
        // stuffing dot is not counted, RFC 5321 §4.5.3.1.6), also when the
        // input arrives an octet at a time.
        let stuffed = format!(
            "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n..{}\r\n.\r\n",
            "y".repeat(997)
        )
        .into_bytes();
        assert_eq!(ok(&stuffed, STRICT)[0].content.len(), 1000);
        let mut d = Decoder::new(STRICT);
        for b in &stuffed {
            d.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!(d.finish().unwrap()[0].content.len(), 1000);
        let over = format!(
            "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n..{}\r\n.\r\n",
            "y".repeat(998)
        )
        .into_bytes();
        assert_eq!(fail(&over, STRICT).0, "line-too-long");
        // BODY=8BITMIME / BINARYMIME lift the limit on content only.
        assert_eq!(ok(&s998(5000, true), STRICT)[0].content.len(), 5002);
        assert_eq!(ok(&s998(5000, false), LENIENT)[0].content.len(), 5002);
    }

    fn s998(n: usize, eight_bit: bool) -> Vec<u8> {
        let body = if eight_bit { " BODY=BINARYMIME" } else { "" };
        format!(
            "MAIL FROM:<a@b>{body}\r\nRCPT TO:<c@d>\r\nDATA\r\n{}\r\n.\r\n",
            "y".repeat(n)
        )
        .into_bytes()
    }

    #[test]
    fn error_messages_say_where_and_what() {
        let e = decode(b"HELO x\r\nNOOP\r\nNOOP\r\nRCPT TO:<c@d>\r\n", &STRICT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 4 (byte 20): RCPT TO before MAIL FROM; expected MAIL FROM:<reverse-path> to start a transaction"
        );
        assert_eq!(e.kind, DecodeErrorKind::OutOfSequence);
        let e = decode(format!("{HEAD}hi\r\n").as_bytes(), &STRICT).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 5 (byte 42): input ends inside the content begun by DATA on line 3; expected a line containing only \".\""
        );
        let e = decode(b"MAIL FROM:<a@b c>\r\n", &STRICT).unwrap_err();
        assert!(
            e.to_string()
                .contains("reverse-path \"<a@b c>\" does not parse at octet 4"),
            "{e}"
        );
        let e = decode(b"FOO bar\r\n", &STRICT).unwrap_err();
        assert!(e.to_string().contains("unknown command \"FOO\""), "{e}");
    }

    #[test]
    fn exim_style_batches() {
        // What Exim's use_bsmtp transport writes: LF line ends, no QUIT,
        // optionally a HELO before every message.
        let input = b"HELO earth.example\n\
            MAIL FROM:<alice@earth.example>\n\
            RCPT TO:<bob@moon.example>\n\
            DATA\n\
            Subject: one\n\
            \n\
            ..dot\n\
            .\n\
            HELO earth.example\n\
            MAIL FROM:<>\n\
            RCPT TO:<carol@moon.example>\n\
            RCPT TO:<dave@moon.example>\n\
            DATA\n\
            Subject: two\r\n\
            \r\n\
            mixed line ends\n\
            .\n";
        let messages = ok(input, LENIENT);
        assert_eq!(
            messages,
            vec![
                message(
                    "alice@earth.example",
                    &["bob@moon.example"],
                    b"Subject: one\r\n\r\n.dot\r\n"
                ),
                message(
                    "",
                    &["carol@moon.example", "dave@moon.example"],
                    b"Subject: two\r\n\r\nmixed line ends\r\n"
                ),
            ]
        );
        assert_eq!(fail(input, STRICT), ("bare-lf", 1, 18));
        // Same batch with CRLF is strict-clean.
        let crlf = String::from_utf8_lossy(input)
            .replace("\r\n", "\n")
            .replace('\n', "\r\n");
        assert_eq!(ok(crlf.as_bytes(), STRICT), messages);
    }

    #[test]
    fn lenient_tolerances() {
        // Blank lines, whitespace, space after FROM:, last command without
        // line end, garbage after QUIT, unqualified VRFY/HELP, long lines.
        let input = format!(
            "\n  \nHELO\nmail   from:  <a@b>   BODY=8BITMIME\t SIZE=1\n\nVRFY x\nrcpt to: <c@d>\ndata\n{}\n.\nNOOP\nQUIT\ngarbage\0\r",
            "z".repeat(3000)
        );
        let m = ok(input.as_bytes(), LENIENT);
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].envelope.mail_parameters,
            vec![
                SmtpParam::new("BODY", "8BITMIME"),
                SmtpParam::new("SIZE", "1")
            ]
        );
        assert_eq!(m[0].content.len(), 3002);
        // Final "." or command without a line end.
        assert_eq!(ok(format!("{HEAD}x\r\n.").as_bytes(), LENIENT).len(), 1);
        assert!(ok(b"NOOP\r\nQUIT", LENIENT).is_empty());
        assert_eq!(
            fail(b"NOOP\r\nMAIL FROM:<a@b>", LENIENT),
            ("incomplete-transaction", 2, 21)
        );
        // A greeting inside a transaction acts as RSET, as in Exim.
        assert!(ok(b"MAIL FROM:<a@b>\nRCPT TO:<c@d>\nHELO x\n", LENIENT).is_empty());
    }

    #[test]
    fn rset_aborts_a_transaction() {
        let m = ok(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRSET\r\nMAIL FROM:<e@f>\r\nRCPT TO:<g@h>\r\nDATA\r\n.\r\n", STRICT);
        assert_eq!(m, vec![message("e@f", &["g@h"], b"")]);
        assert_eq!(
            fail(b"MAIL FROM:<a@b>\r\nRSET\r\nDATA\r\n", STRICT),
            ("out-of-sequence", 3, 23)
        );
    }
}

mod streaming {
    use super::*;

    fn sample() -> Vec<u8> {
        b"EHLO e.example\r\nMAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n..\r\n.y\r\n\r\n.\r\n\
          MAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nDATA\r\n.\r\nQUIT\r\n"
            .to_vec()
    }

    fn broken() -> Vec<Vec<u8>> {
        let mut long = b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
        long.extend(vec![b'q'; 1500]);
        long.extend_from_slice(b"\r\n.\r\n");
        vec![
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nab\r\n.".to_vec(),
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nab\rc\r\n.\r\n".to_vec(),
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.ab\nc\r\n.\r\n".to_vec(),
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.\r\nQUIT\r\n\r\nX".to_vec(),
            b"HELO a\r\nRCPT TO:<c@d>\r\n".to_vec(),
            b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nok\r\n.\r\nMAIL FROM:<\0>\r\n".to_vec(),
            long,
        ]
    }

    #[test]
    fn every_split_point_gives_the_same_result() {
        let mut inputs = broken();
        inputs.push(sample());
        for input in &inputs {
            for options in [STRICT, LENIENT] {
                let whole = decode(input, &options);
                for cut in 0..=input.len() {
                    assert_eq!(
                        decode_chunked(input, options, &[cut]),
                        whole,
                        "cut at {cut} of {:?}",
                        String::from_utf8_lossy(input)
                    );
                }
                let bytewise: Vec<usize> = (1..input.len()).collect();
                assert_eq!(decode_chunked(input, options, &bytewise), whole);
            }
        }
        assert_eq!(decode(&sample(), &STRICT).unwrap().len(), 2);
    }

    #[test]
    fn every_prefix_decodes_or_fails_cleanly() {
        let input = sample();
        for end in 0..=input.len() {
            for options in [STRICT, LENIENT] {
                let prefix = &input[..end];
                let whole = decode(prefix, &options);
                if let Err(e) = &whole {
                    assert!(e.offset <= end as u64, "offset {} past end {end}", e.offset);
                    assert!(!e.to_string().is_empty());
                }
                assert_eq!(decode_chunked(prefix, options, &[end / 2]), whole);
            }
        }
    }

    #[test]
    fn messages_arrive_as_they_complete_and_errors_stick() {
        let mut decoder = Decoder::new(STRICT);
        decoder
            .feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.")
            .unwrap();
        assert_eq!(decoder.next_message(), None);
        decoder.feed(b"\r\nMAIL FROM:<a@b>\r\n").unwrap();
        assert_eq!(
            decoder.next_message(),
            Some(message("a@b", &["c@d"], b"hi\r\n"))
        );
        assert_eq!(decoder.next_message(), None);
        let e = decoder.feed(b"MAIL FROM:<a@b>\r\n").unwrap_err();
        assert_eq!((e.code(), e.line, e.offset), ("out-of-sequence", 7, 62));
        assert_eq!(decoder.feed(b"").unwrap_err(), e);
        assert_eq!(decoder.finish().unwrap_err(), e);

        let mut decoder = Decoder::new(STRICT);
        decoder
            .feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\n")
            .unwrap();
        assert_eq!(decoder.finish().unwrap().len(), 1);
    }
}

mod properties {
    use super::*;

    fn atom() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,8}"
    }

    fn label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
    }

    fn domain_name() -> impl Strategy<Value = String> {
        prop::collection::vec(label(), 1..4).prop_map(|l| l.join("."))
    }

    fn domain() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => domain_name(),
            1 => any::<[u8; 4]>().prop_map(|[a, b, c, d]| format!("[{a}.{b}.{c}.{d}]")),
            1 => any::<u16>().prop_map(|n| format!("[IPv6:2001:db8::{n:x}]")),
            1 => "[a-z]{1,5}:[!-;=?-Z^-~]{1,8}".prop_map(|s| format!("[{s}]")),
        ]
    }

    fn mailbox() -> impl Strategy<Value = String> {
        let local = prop_oneof![
            3 => prop::collection::vec(atom(), 1..3).prop_map(|a| a.join(".")),
            1 => "([!#-;=?-\\[\\]-~]|\\\\[!-;=?-~]){0,8}".prop_map(|q| format!("\"{q}\"")),
        ];
        let route = prop::option::weighted(0.2, prop::collection::vec(domain_name(), 1..3));
        (route, local, domain()).prop_map(|(route, local, domain)| {
            let route = route.map(|r| {
                r.iter()
                    .map(|d| format!("@{d}"))
                    .collect::<Vec<_>>()
                    .join(",")
                    + ":"
            });
            format!("{}{local}@{domain}", route.unwrap_or_default())
        })
    }

    fn params() -> impl Strategy<Value = Vec<SmtpParam>> {
        prop::collection::vec(
            (
                "[A-Za-z0-9][A-Za-z0-9-]{0,7}",
                prop::option::of("[!-<>-~]{1,10}"),
            )
                .prop_map(|(keyword, value)| SmtpParam { keyword, value }),
            0..3,
        )
    }

    fn content() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(
            prop_oneof![3 => Just(b'.'), 3 => Just(b'\r'), 3 => Just(b'\n'), 2 => Just(b'a'), 2 => 1u8..=255],
            0..300,
        )
    }

    fn messages() -> impl Strategy<Value = Vec<Message>> {
        let reverse = prop_oneof![1 => Just(String::new()), 4 => mailbox()];
        let forward = prop_oneof![1 => Just("Postmaster".to_owned()), 6 => mailbox()];
        let recipient = (forward, params()).prop_map(|(mailbox, parameters)| ForwardPath {
            mailbox,
            parameters,
        });
        let one = (
            reverse,
            params(),
            prop::collection::vec(recipient, 1..4),
            content(),
        )
            .prop_map(
                |(reverse_path, mail_parameters, forward_paths, content)| Message {
                    envelope: Envelope {
                        reverse_path,
                        mail_parameters,
                        forward_paths,
                    },
                    content,
                },
            );
        prop::collection::vec(one, 0..4)
    }

    fn options() -> impl Strategy<Value = EncodeOptions> {
        let greeting = prop_oneof![
            Just(Greeting::None),
            domain().prop_map(Greeting::Helo),
            domain().prop_map(Greeting::Ehlo)
        ];
        (greeting, any::<bool>()).prop_map(|(greeting, quit)| EncodeOptions { greeting, quit })
    }

    /// Cut points for a batch of length `len`, as fractions.
    fn cuts() -> impl Strategy<Value = Vec<f64>> {
        prop::collection::vec(0.0..1.0f64, 0..8)
    }

    fn to_cuts(fractions: &[f64], len: usize) -> Vec<usize> {
        let mut c: Vec<usize> = fractions
            .iter()
            .map(|f| (f * len as f64) as usize)
            .collect();
        c.sort_unstable();
        c
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn round_trip(messages in messages(), options in options(), fractions in cuts()) {
            let batch = encode(&messages, &options).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let expected: Vec<Message> = messages
                .iter()
                .map(|m| Message { content: normalise(&m.content), ..m.clone() })
                .collect();
            prop_assert_eq!(decode(&batch, &STRICT), Ok(expected.clone()));
            prop_assert_eq!(decode(&batch, &LENIENT), Ok(expected.clone()));
            prop_assert_eq!(decode_chunked(&batch, STRICT, &to_cuts(&fractions, batch.len())), Ok(expected.clone()));
            // Decoded messages re-encode to the same batch.
            prop_assert_eq!(encode(&expected, &options), Ok(batch));
        }

        #[test]
        fn random_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..512), fractions in cuts()) {
            for options in [STRICT, LENIENT] {
                let whole = decode(&input, &options);
                prop_assert_eq!(decode_chunked(&input, options, &to_cuts(&fractions, input.len())), whole);
            }
        }

        #[test]
        fn spliced_commands_never_panic(
            pieces in prop::collection::vec(
                prop_oneof![
                    Just(&b"MAIL FROM:<a@b>"[..]), Just(&b"RCPT TO:<c@d>"[..]), Just(&b"DATA"[..]),
                    Just(&b"."[..]), Just(&b".."[..]), Just(&b"QUIT"[..]), Just(&b"RSET"[..]),
                    Just(&b"HELO x"[..]), Just(&b" BODY=8BITMIME"[..]), Just(&b"\r\n"[..]), Just(&b"\n"[..]),
                    Just(&b"\r"[..]), Just(&b"\0"[..]), Just(&b"<"[..]), Just(&b" "[..]), Just(&b"text"[..]),
                ],
                0..40,
            ),
            fractions in cuts(),
        ) {
            let input = pieces.concat();
            for options in [STRICT, LENIENT] {
                let whole = decode(&input, &options);
                if let Err(e) = &whole {
                    prop_assert!(e.offset <= input.len() as u64);
                }
                prop_assert_eq!(decode_chunked(&input, options, &to_cuts(&fractions, input.len())), whole);
            }
        }

        #[test]
        fn encode_never_writes_what_strict_decode_rejects(
            rp in "[ -~]{0,12}",
            fp in "[ -~]{0,12}",
            keyword in "[ -~]{0,6}",
            value in prop::option::of("[ -~\u{e9}]{0,6}"),
        ) {
            let m = Message {
                envelope: Envelope {
                    reverse_path: rp,
                    mail_parameters: vec![SmtpParam { keyword, value }],
                    forward_paths: vec![ForwardPath::new(fp)],
                },
                content: b"x".to_vec(),
            };
            if let Ok(batch) = encode(std::slice::from_ref(&m), &EncodeOptions::default()) {
                let decoded = decode(&batch, &STRICT);
                prop_assert_eq!(decoded, Ok(vec![Message { content: b"x\r\n".to_vec(), ..m }]));
            }
        }
    }
}
