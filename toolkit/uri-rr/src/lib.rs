//! DNS URI resource record ([RFC 7553]) lookup logic for deepmail: building
//! the query, checking and parsing the response, and ordering the URIs to
//! try — the way the Earth gateway finds the far gateway from
//!
//! ```text
//! _bsmtp._https.moon.example. IN URI 10 1 "https://gw.moon.example/inboundmail"
//! ```
//!
//! This crate is a fully deterministic implementation of that protocol
//! logic. It contains no networking code: it opens no sockets, reads no
//! clock and has no source of randomness — the caller sends the bytes
//! [`build_query`] makes (over UDP, and over TCP with [`frame_tcp`] /
//! [`unframe_tcp`] when the answer is [`DnsError::Truncated`]), hands what
//! comes back to [`parse_response`], and passes its own random numbers to
//! [`order_records`]. It depends on `std` and `thiserror` only and compiles
//! unchanged for `wasm32-wasip2`, where deepmail's resolver plugin wraps
//! it.
//!
//! - Messages follow RFC 1035 §4: names are validated ([`Name`]: ASCII,
//!   labels of 1–63 octets, ≤ 255 octets, case-insensitive), compression
//!   pointers are followed only backwards so loops, forward and
//!   out-of-range pointers are errors, and every read is bounds-checked;
//!   no input makes it panic, and memory use is linear in the input.
//! - Responses are matched to the query (ID, QR, opcode, echoed question;
//!   RFC 5452 §4.3), CNAME chains in the answer are followed (bounded,
//!   loop-safe), EDNS(0) OPT records (RFC 6891) are understood, and
//!   negative answers carry their RFC 2308 caching TTL.
//! - Every failure is a [`DnsError`] (or [`NameError`]) with a stable
//!   [`code`](DnsError::code), the byte offset where there is one and the
//!   RFC section.
//! - [`order_records`] implements RFC 7553 §4.4: priority order, then
//!   RFC 2782 weighted random selection.
//!
//! ```
#![doc = include_str!("../examples/lookup.rs")]
//! ```
//!
//! [RFC 7553]: https://www.rfc-editor.org/rfc/rfc7553

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod error;
mod name;
mod query;
mod response;
mod select;
mod uri;
mod wire;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;

pub use crate::error::{DnsError, NameError};
pub use crate::name::{bsmtp_service_name, Labels, Name, MAX_LABEL_LEN, MAX_NAME_LEN};
pub use crate::query::{build_query, frame_tcp, unframe_tcp, DEFAULT_EDNS_UDP_SIZE};
pub use crate::response::{parse_response, Answer, MAX_CNAME_CHAIN};
pub use crate::select::{order_records, seeded_random};
pub use crate::uri::{parse_uri_rdata, UriRecord, TYPE_URI};
