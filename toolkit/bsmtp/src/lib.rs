//! deepmail-bsmtp is a deterministic implementation of Batch SMTP (RFC 2442,
//! `application/batch-SMTP`): an encoder from messages to one BSMTP object
//! and a streaming decoder back. It contains no I/O: it opens no files or
//! sockets, reads no clock and spawns no threads. Callers hand it bytes and
//! get messages, or messages and get bytes, which is what lets the same code
//! run natively and inside a `wasm32-wasip2` component.
//!
//! A BSMTP object is the client half of an SMTP session (RFC 5321 §4.1)
//! written down: `MAIL FROM`, `RCPT TO`, `DATA`, dot-stuffed content (§4.5.2)
//! and `.`, per message, optionally framed by `HELO`/`EHLO` and `QUIT`.
//!
//! - [`encode`] / [`encode_into`] write the canonical form of
//!   `vectors/README.md` and refuse anything that could not be read back
//!   or could inject a command.
//! - [`decode`] reads a whole batch; [`Decoder`] reads it in chunks of any
//!   size with the same results and errors. [`DecodeMode::Strict`] follows
//!   the RFCs as written; [`DecodeMode::Lenient`] reads what `exim -bS` reads.
//! - Errors carry a stable class ([`DecodeError::code`], [`EncodeError::code`])
//!   from `vectors/README.md`, the position (line, byte offset or message
//!   index) and what was expected.
//!
//! Line scanning uses `memchr`; encoding and decoding are single passes,
//! linear in the input. On x86-64, runs of ordinary content lines are
//! decoded with AVX2 or AVX-512, detected at run time; [`SIMD_VAR`] lowers
//! that for the process (the results are the same at every level).
//!
//! ```
#![doc = include_str!("../examples/round_trip.rs")]
//! ```
#![warn(missing_docs)]

mod decode;
mod encode;
mod error;
mod message;
mod scan;
mod syntax;

#[cfg(test)]
mod tests;

pub use crate::decode::{decode, decode_line_by_line, DecodeMode, DecodeOptions, Decoder};
pub use crate::encode::{encode, encode_into, EncodeOptions, Greeting};
pub use crate::error::{DecodeError, DecodeErrorKind, EncodeError, EncodeErrorKind};
pub use crate::message::{Envelope, ForwardPath, Message, SmtpParam};
pub use crate::scan::SIMD_VAR;
