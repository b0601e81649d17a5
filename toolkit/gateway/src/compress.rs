//! Batch SMTP is text and base64: gzip (RFC 1952) on the link roughly
//! halves it. Senders compress when their route says `compress = "gzip"`;
//! receivers recognise a gzip member by its magic number (`1f 8b`, never
//! the first bytes of a Batch SMTP object, which begins with an ASCII
//! command) or by `Content-Encoding: gzip`, so mixed traffic is safe.
//! Decompression is bounded: at most a given number of bytes out and at
//! most [`MAX_RATIO`] times the compressed size, so a decompression bomb
//! is refused with a clear error before it costs memory.

use std::io::{Read, Write};

/// The largest expansion accepted: real mail compresses 2-10 times; a
/// bomb, a thousand.
pub(crate) const MAX_RATIO: u64 = 100;

/// Why a compressed payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecompressError {
    /// It expands past a limit: a bomb, or simply too large.
    #[error(
        "the compressed payload ({compressed} bytes) expands past {limit} bytes (limit: {why})"
    )]
    TooLarge {
        /// Its compressed size.
        compressed: u64,
        /// The limit it passed.
        limit: u64,
        /// Which limit.
        why: &'static str,
    },
    /// Not a valid gzip member.
    #[error("the compressed payload is not valid gzip: {0}")]
    Invalid(String),
}

/// Whether `data` starts like a gzip member (RFC 1952 §2.3.1: ID1 ID2 CM=8).
pub(crate) fn is_gzip(data: &[u8]) -> bool {
    data.starts_with(&[0x1f, 0x8b, 0x08])
}

/// `data` as one gzip member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(
        Vec::with_capacity(data.len() / 2 + 64),
        flate2::Compression::default(),
    );
    // Writing into a Vec cannot fail.
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// The content of the gzip member `data`, refused when it would exceed
/// `max_out` bytes or [`MAX_RATIO`] times its compressed size (whichever
/// is less), or is not valid gzip. Memory used is bounded by the limit.
pub(crate) fn gunzip(data: &[u8], max_out: u64) -> Result<Vec<u8>, DecompressError> {
    let compressed = data.len() as u64;
    let by_ratio = compressed.saturating_mul(MAX_RATIO).max(4096);
    let (limit, why) = if by_ratio < max_out {
        (by_ratio, "100 times the compressed size")
    } else {
        (max_out, "the largest message taken")
    };
    let mut out = Vec::new();
    let mut decoder = flate2::read::GzDecoder::new(data).take(limit + 1);
    decoder
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Invalid(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(DecompressError::TooLarge {
            compressed,
            limit,
            why,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_magic() {
        let text =
            b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n".repeat(100);
        let z = gzip(&text);
        assert!(is_gzip(&z) && !is_gzip(&text));
        assert!(z.len() < text.len() / 5, "{} -> {}", text.len(), z.len());
        assert_eq!(gunzip(&z, 1 << 20).unwrap(), text);
        assert!(gunzip(&[], 100).is_err());
        assert!(matches!(
            gunzip(&z[..z.len() / 2], 1 << 20),
            Err(DecompressError::Invalid(_))
        ));
    }

    #[test]
    fn bombs_and_oversized_payloads_are_refused() {
        // 64 MiB of zeros compresses to ~64 KiB: 1000 to 1.
        let bomb = gzip(&vec![0u8; 64 << 20]);
        let e = gunzip(&bomb, 1 << 30).unwrap_err();
        assert!(
            matches!(
                e,
                DecompressError::TooLarge {
                    why: "100 times the compressed size",
                    ..
                }
            ),
            "{e}"
        );
        // Ordinary text over the absolute limit.
        let text = b"Subject: hello\r\n".repeat(10_000);
        let e = gunzip(&gzip(&text), 1000).unwrap_err();
        assert!(
            matches!(e, DecompressError::TooLarge { limit: 1000, .. }),
            "{e}"
        );
    }
}
