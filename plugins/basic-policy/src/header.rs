//! The header fields of an RFC 5322 message: the lines before the first
//! empty line (§2.1), each `name: value` with its continuation lines
//! unfolded (§2.2.3: a line break followed by white space is removed).
//! Names compare case-insensitively (§1.2.2). Pure and total over any
//! bytes: bare LF line ends, lines without a colon and non-UTF-8 text are
//! tolerated, never a panic.

/// The unfolded values of every header field called `name`, in message
/// order. Values are decoded as UTF-8 (RFC 6532), invalid sequences
/// replaced.
pub fn field_values(content: &[u8], name: &str) -> Vec<String> {
    let mut values = Vec::new();
    // The value of the field being collected, if it is one we want.
    let mut current: Option<Vec<u8>> = None;
    for line in header_lines(content) {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            // Continuation of the previous field.
            if let Some(value) = current.as_mut() {
                value.extend_from_slice(line);
            }
            continue;
        }
        if let Some(value) = current.take() {
            values.push(String::from_utf8_lossy(&value).into_owned());
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            // Not a field (e.g. an mbox `From ` line): skipped.
            continue;
        };
        let field_name = trim_end_wsp(&line[..colon]);
        if field_name.eq_ignore_ascii_case(name.as_bytes()) {
            current = Some(line[colon + 1..].to_vec());
        }
    }
    if let Some(value) = current {
        values.push(String::from_utf8_lossy(&value).into_owned());
    }
    values
}

/// The lines of the header section, without their line ends; stops at the
/// first empty line (or the end of the content).
fn header_lines(content: &[u8]) -> impl Iterator<Item = &[u8]> {
    content
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty())
}

fn trim_end_wsp(mut s: &[u8]) -> &[u8] {
    while let Some((last, rest)) = s.split_last() {
        if *last == b' ' || *last == b'\t' {
            s = rest;
        } else {
            break;
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn finds_every_field_unfolded_case_insensitively() {
        let msg = b"Received: from a\r\n\tby b\r\nAuthentication-Results: mx.example;\r\n  spf=pass\r\nSubject: hi\r\nauthentication-results : other; none\r\n\r\nAuthentication-Results: body; not a header\r\n";
        assert_eq!(
            field_values(msg, "Authentication-Results"),
            vec![
                " mx.example;  spf=pass".to_string(),
                " other; none".to_string()
            ]
        );
        assert_eq!(field_values(msg, "Received"), vec![" from a\tby b"]);
        assert!(field_values(msg, "To").is_empty());
    }

    #[test]
    fn bare_lf_no_body_and_junk_lines() {
        let msg = b"From mbox-line\nX: 1\n continued\nnot a field\nX:2";
        assert_eq!(field_values(msg, "x"), vec![" 1 continued", "2"]);
        assert!(field_values(b"", "x").is_empty());
        assert!(field_values(b"\r\nX: after blank", "x").is_empty());
        // A continuation with nothing before it belongs to no field.
        assert!(field_values(b" X: 1\r\n", "x").is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let msg = b"X: caf\xe9\r\n\r\n";
        assert_eq!(field_values(msg, "X"), vec![" caf\u{fffd}"]);
    }

    proptest! {
        #[test]
        fn any_bytes_never_panic(content in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = field_values(&content, "Authentication-Results");
        }
    }
}
