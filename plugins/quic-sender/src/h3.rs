//! The HTTP/3 (RFC 9114) client side of one request: frame and stream
//! encodings, and an incremental reader for the response.
//!
//! Only what a single `POST` needs: the control stream preface with SETTINGS
//! (§6.2.1, §7.2.4), the QPACK encoder and decoder stream prefaces (RFC 9204
//! §4.2), HEADERS + DATA on the request stream (§4.1), and the response's
//! HEADERS (interim 1xx ones skipped), DATA and trailers. No server push (the
//! client never sends MAX_PUSH_ID), no dynamic QPACK table.
//!
//! Pure: bytes in, bytes out.

use std::fmt;

use crate::qpack::{decode_field_section, QpackError, RequestHead};

/// Frame types (§7.2, §11.2.1).
mod frame {
    pub const DATA: u64 = 0x00;
    pub const HEADERS: u64 = 0x01;
    pub const CANCEL_PUSH: u64 = 0x03;
    pub const SETTINGS: u64 = 0x04;
    pub const PUSH_PROMISE: u64 = 0x05;
    pub const GOAWAY: u64 = 0x07;
    pub const MAX_PUSH_ID: u64 = 0x0d;
}

/// Unidirectional stream types (§6.2, RFC 9204 §4.2).
pub mod stream_type {
    /// The control stream.
    pub const CONTROL: u64 = 0x00;
    /// QPACK encoder stream.
    pub const QPACK_ENCODER: u64 = 0x02;
    /// QPACK decoder stream.
    pub const QPACK_DECODER: u64 = 0x03;
}

/// Settings identifiers (RFC 9204 §5).
mod setting {
    pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x01;
    pub const QPACK_BLOCKED_STREAMS: u64 = 0x07;
}

/// HTTP/3 error codes (§8.1) used when closing.
pub mod error_code {
    /// H3_NO_ERROR: graceful close.
    pub const NO_ERROR: u64 = 0x100;
    /// H3_FRAME_UNEXPECTED.
    pub const FRAME_UNEXPECTED: u64 = 0x105;
    /// H3_MESSAGE_ERROR.
    pub const MESSAGE_ERROR: u64 = 0x10e;
    /// QPACK_DECOMPRESSION_FAILED.
    pub const QPACK_DECOMPRESSION_FAILED: u64 = 0x200;
}

/// Appends a QUIC variable-length integer (RFC 9000 §16).
pub fn put_varint(out: &mut Vec<u8>, v: u64) {
    if v < 1 << 6 {
        out.push(v as u8);
    } else if v < 1 << 14 {
        out.extend_from_slice(&((v as u16) | 0x4000).to_be_bytes());
    } else if v < 1 << 30 {
        out.extend_from_slice(&((v as u32) | 0x8000_0000).to_be_bytes());
    } else {
        debug_assert!(v < 1 << 62);
        out.extend_from_slice(&(v | 0xc000_0000_0000_0000).to_be_bytes());
    }
}

/// Reads a variable-length integer from the start of `bytes`: the value and
/// its length, or `None` when `bytes` is too short.
pub fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let len = 1usize << (first >> 6);
    let raw = bytes.get(..len)?;
    let mut v = u64::from(first & 0x3f);
    for b in &raw[1..] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

fn put_frame_header(out: &mut Vec<u8>, ty: u64, len: u64) {
    put_varint(out, ty);
    put_varint(out, len);
}

/// The bytes a client writes first on its control stream: the stream type
/// and a SETTINGS frame that turns the QPACK dynamic table off.
pub fn control_stream_preface() -> Vec<u8> {
    let mut settings = Vec::new();
    put_varint(&mut settings, setting::QPACK_MAX_TABLE_CAPACITY);
    put_varint(&mut settings, 0);
    put_varint(&mut settings, setting::QPACK_BLOCKED_STREAMS);
    put_varint(&mut settings, 0);
    let mut out = Vec::new();
    put_varint(&mut out, stream_type::CONTROL);
    put_frame_header(&mut out, frame::SETTINGS, settings.len() as u64);
    out.extend_from_slice(&settings);
    out
}

/// The one byte that opens a QPACK encoder or decoder stream.
pub fn uni_stream_preface(ty: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_varint(&mut out, ty);
    out
}

/// Everything written on the request stream before the body: the HEADERS
/// frame and the DATA frame header for a body of `body_len` bytes.
pub fn request_prefix(head: &RequestHead<'_>, body_len: u64) -> Vec<u8> {
    let section = head.encode_post();
    let mut out = Vec::with_capacity(section.len() + 16);
    put_frame_header(&mut out, frame::HEADERS, section.len() as u64);
    out.extend_from_slice(&section);
    if body_len > 0 {
        put_frame_header(&mut out, frame::DATA, body_len);
    }
    out
}

/// Why a response could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum H3Error {
    /// The field section did not decode.
    Qpack(QpackError),
    /// A frame that is not allowed on a request stream (§7.2).
    UnexpectedFrame(u64),
    /// DATA before HEADERS, a missing or malformed `:status`, or a frame
    /// larger than allowed.
    Message(String),
    /// The stream ended before the final response's HEADERS.
    IncompleteResponse,
}

impl H3Error {
    /// The HTTP/3 error code to close the connection or stream with.
    pub fn code(&self) -> u64 {
        match self {
            H3Error::Qpack(_) => error_code::QPACK_DECOMPRESSION_FAILED,
            H3Error::UnexpectedFrame(_) => error_code::FRAME_UNEXPECTED,
            H3Error::Message(_) | H3Error::IncompleteResponse => error_code::MESSAGE_ERROR,
        }
    }
}

impl fmt::Display for H3Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            H3Error::Qpack(e) => write!(f, "response headers: {e}"),
            H3Error::UnexpectedFrame(t) => {
                write!(f, "frame type {t:#x} is not allowed on a request stream")
            }
            H3Error::Message(m) => f.write_str(m),
            H3Error::IncompleteResponse => {
                f.write_str("the server ended the request stream before its response headers")
            }
        }
    }
}

/// A response as far as it has been read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// Final status code.
    pub status: u16,
    /// Regular header fields of the final response, in order.
    pub headers: Vec<(String, String)>,
    /// The body, up to the reader's limit.
    pub body: Vec<u8>,
    /// Bytes of body that did not fit under the limit.
    pub body_dropped: u64,
}

/// Reads one response from the bytes of a request stream, fed as they come.
#[derive(Debug)]
pub struct ResponseReader {
    buf: Vec<u8>,
    response: Option<Response>,
    body_limit: usize,
    max_header_bytes: u64,
    /// Bytes of the current frame's payload still to come: DATA and
    /// unknown frames are consumed as they arrive, not buffered whole.
    payload_left: u64,
    /// Whether that payload is body (DATA) or to be skipped.
    payload_is_body: bool,
}

fn keep_body(response: &mut Option<Response>, limit: usize, bytes: &[u8]) {
    if let Some(r) = response.as_mut() {
        let room = limit.saturating_sub(r.body.len());
        let keep = room.min(bytes.len());
        r.body.extend_from_slice(&bytes[..keep]);
        r.body_dropped += (bytes.len() - keep) as u64;
    }
}

impl ResponseReader {
    /// A reader that keeps at most `body_limit` bytes of body and refuses a
    /// HEADERS frame larger than `max_header_bytes`.
    pub fn new(body_limit: usize, max_header_bytes: u64) -> Self {
        ResponseReader {
            buf: Vec::new(),
            response: None,
            body_limit,
            max_header_bytes,
            payload_left: 0,
            payload_is_body: false,
        }
    }

    /// The final response's status, once its HEADERS arrived.
    pub fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status)
    }

    /// Takes more bytes of the request stream.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), H3Error> {
        self.buf.extend_from_slice(bytes);
        let mut pos = 0;
        let result = self.parse(&mut pos);
        self.buf.drain(..pos);
        result
    }

    fn parse(&mut self, pos: &mut usize) -> Result<(), H3Error> {
        loop {
            let rest = &self.buf[*pos..];
            if self.payload_left > 0 {
                if rest.is_empty() {
                    return Ok(());
                }
                let take = usize::try_from(self.payload_left)
                    .unwrap_or(usize::MAX)
                    .min(rest.len());
                if self.payload_is_body {
                    keep_body(&mut self.response, self.body_limit, &rest[..take]);
                }
                *pos += take;
                self.payload_left -= take as u64;
                continue;
            }
            let Some((ty, n1)) = get_varint(rest) else {
                return Ok(());
            };
            let Some((len, n2)) = get_varint(&rest[n1..]) else {
                return Ok(());
            };
            let header = n1 + n2;
            match ty {
                frame::DATA => {
                    if self.response.is_none() {
                        return Err(H3Error::Message(
                            "DATA frame before the response HEADERS".into(),
                        ));
                    }
                    *pos += header;
                    self.payload_left = len;
                    self.payload_is_body = true;
                }
                frame::HEADERS => {
                    if len > self.max_header_bytes {
                        return Err(H3Error::Message(format!(
                            "response HEADERS frame of {len} bytes is larger than the {} allowed",
                            self.max_header_bytes
                        )));
                    }
                    let end = header + len as usize;
                    if rest.len() < end {
                        return Ok(());
                    }
                    let section = rest[header..end].to_vec();
                    *pos += end;
                    self.headers(&section)?;
                }
                frame::CANCEL_PUSH
                | frame::SETTINGS
                | frame::PUSH_PROMISE
                | frame::GOAWAY
                | frame::MAX_PUSH_ID => return Err(H3Error::UnexpectedFrame(ty)),
                _ => {
                    // Unknown and reserved frame types are ignored (§9).
                    *pos += header;
                    self.payload_left = len;
                    self.payload_is_body = false;
                }
            }
        }
    }

    fn headers(&mut self, section: &[u8]) -> Result<(), H3Error> {
        if self.response.is_some() {
            // Trailers: decoded for validity, not kept.
            decode_field_section(section).map_err(H3Error::Qpack)?;
            return Ok(());
        }
        let fields = decode_field_section(section).map_err(H3Error::Qpack)?;
        let mut status = None;
        let mut headers = Vec::new();
        for (name, value) in fields {
            if name == b":status" {
                let text = String::from_utf8_lossy(&value).into_owned();
                let code = text
                    .parse::<u16>()
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| H3Error::Message(format!("malformed :status `{text}`")))?;
                status = Some(code);
            } else if name.first() == Some(&b':') {
                return Err(H3Error::Message(format!(
                    "unexpected pseudo-header `{}` in a response",
                    String::from_utf8_lossy(&name)
                )));
            } else {
                headers.push((
                    String::from_utf8_lossy(&name).into_owned(),
                    String::from_utf8_lossy(&value).into_owned(),
                ));
            }
        }
        let status =
            status.ok_or_else(|| H3Error::Message("response HEADERS without :status".into()))?;
        if (100..200).contains(&status) {
            // Interim response (§4.1): wait for the final one.
            return Ok(());
        }
        self.response = Some(Response {
            status,
            headers,
            body: Vec::new(),
            body_dropped: 0,
        });
        Ok(())
    }

    /// The response, when the stream ended (FIN) after it.
    pub fn finish(self) -> Result<Response, H3Error> {
        if self.payload_left > 0 || !self.buf.is_empty() {
            if self.response.is_none() {
                return Err(H3Error::IncompleteResponse);
            }
            return Err(H3Error::Message(
                "the request stream ended inside a frame".into(),
            ));
        }
        self.response.ok_or(H3Error::IncompleteResponse)
    }

    /// The response read so far, if the stream was cut short (reset) after
    /// its headers.
    pub fn partial(self) -> Option<Response> {
        self.response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put_frame_header(&mut out, ty, payload.len() as u64);
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn varints_round_trip() {
        for v in [
            0u64,
            63,
            64,
            16383,
            16384,
            (1 << 30) - 1,
            1 << 30,
            (1 << 62) - 1,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(get_varint(&out), Some((v, out.len())));
        }
        assert_eq!(get_varint(&[0x40]), None);
    }

    #[test]
    fn control_preface_is_settings_with_zero_table() {
        assert_eq!(
            control_stream_preface(),
            [0x00, 0x04, 0x04, 0x01, 0x00, 0x07, 0x00]
        );
    }

    #[test]
    fn reads_interim_then_final_response_byte_by_byte() {
        // 100 (static 63), then 401 literal with name ref to :status (24),
        // then a body and unknown reserved frame type 0x21.
        let mut bytes = frame(frame::HEADERS, &[0, 0, 0xc0 | 63, 0x00]);
        bytes.extend(frame(
            frame::HEADERS,
            &[0, 0, 0x5f, 0x09, 3, b'4', b'0', b'1'],
        ));
        bytes.extend(frame(0x21, b"grease"));
        bytes.extend(frame(frame::DATA, b"bad "));
        bytes.extend(frame(frame::DATA, b"token"));
        let mut reader = ResponseReader::new(1024, 4096);
        for b in &bytes {
            reader.push(std::slice::from_ref(b)).unwrap();
        }
        let r = reader.finish().unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.body, b"bad token");
    }

    #[test]
    fn body_is_capped() {
        let mut bytes = frame(frame::HEADERS, &[0, 0, 0xc0 | 25]);
        bytes.extend(frame(frame::DATA, &[b'x'; 100]));
        let mut reader = ResponseReader::new(10, 4096);
        reader.push(&bytes).unwrap();
        let r = reader.finish().unwrap();
        assert_eq!((r.status, r.body.len(), r.body_dropped), (200, 10, 90));
    }

    #[test]
    fn errors_are_reported() {
        let mut reader = ResponseReader::new(10, 4096);
        assert!(reader.push(&frame(frame::DATA, b"x")).is_err());
        let mut reader = ResponseReader::new(10, 4096);
        assert_eq!(
            reader.push(&frame(frame::SETTINGS, b"")),
            Err(H3Error::UnexpectedFrame(frame::SETTINGS))
        );
        let reader = ResponseReader::new(10, 4096);
        assert_eq!(reader.finish(), Err(H3Error::IncompleteResponse));
        let mut reader = ResponseReader::new(10, 4);
        assert!(reader.push(&frame(frame::HEADERS, &[0; 5])).is_err());
    }
}
