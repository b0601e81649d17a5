//! The Delay-Tolerant Networking TCP Convergence Layer, version 4
//! ([RFC 9174]): how two Bundle Protocol (RFC 9171) nodes hand bundles to
//! each other over one TCP connection.
//!
//! This crate is a deterministic implementation of TCPCLv4's protocol
//! logic. It contains no networking code and reads no clock: bytes go in
//! through `handle_input`, bytes to write come out of `poll_transmit`, and
//! time is an argument (`now: Instant`), in the manner of `quinn-proto`.
//! So it compiles unchanged for `wasm32-wasip2`, where deepmail's
//! `tcpcl-sender` plugin drives it over `wasi:sockets`, and its tests run
//! whole sessions in memory. With the `tokio` feature it adds `serve`, a
//! TCP listener that runs a [`PassiveSession`] per connection.
//!
//! What is here:
//!
//! * the wire format ([`message`]): contact header (§4.2), SESS_INIT
//!   (§4.6), SESS_TERM (§6.1), XFER_SEGMENT with the Transfer Length
//!   extension (§5.2.2, §5.2.5.1), XFER_ACK (§5.2.3), XFER_REFUSE (§5.2.4),
//!   KEEPALIVE (§5.1.1) and MSG_REJECT (§5.1.2), with length limits checked
//!   before anything is allocated;
//! * [`ActiveSession`], the connecting side as a bundle sender: contact
//!   header, SESS_INIT, keepalive negotiation (the smaller interval wins,
//!   §4.7), segments no larger than the peer's Segment MRU, pipelined
//!   transfers, [`Event::TransferAcked`] when the acknowledged length covers
//!   the whole bundle;
//! * [`PassiveSession`], the listening side as a bundle receiver:
//!   reassembly up to its Transfer MRU, an XFER_ACK per segment, and the
//!   final XFER_ACK or XFER_REFUSE when the application decides.
//!
//! * TLS negotiation (§4.4): with [`SessionConfig::offer_tls`] the contact
//!   header carries CAN_TLS; when both sides offer it the session stops
//!   at [`Event::StartTls`], the driver runs the TLS handshake on the
//!   connection and calls `tls_established`, and SESS_INIT follows inside
//!   TLS. [`SessionConfig::require_tls`] ends a session with a peer that
//!   does not offer TLS (`ContactFailure`, §4.3). The handshake and the
//!   certificate checks are the driver's (the `tokio` server's and the
//!   `tcpcl-sender` plugin's), as all I/O is.
//!
//! What is not: session extensions (an unknown critical one ends the
//! session, as §4.8 says); the only transfer extension is Transfer
//! Length.
//!
//! ```
#![doc = include_str!("../examples/loopback_session.rs")]
//! ```
//!
//! [RFC 9174]: https://www.rfc-editor.org/rfc/rfc9174

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod active;
pub mod message;
mod passive;
#[cfg(feature = "tokio")]
mod serve;
mod session;
#[cfg(test)]
mod tests;

pub use crate::active::{ActiveSession, SendError};
pub use crate::message::{
    ContactHeader, DecodeError, DecodeLimits, EncodeError, Message, MsgRejectReason, RefuseReason,
    SessTermReason, TRANSFER_LENGTH_EXTENSION,
};
pub use crate::passive::{DecideError, MemoryBudget, PassiveSession};
#[cfg(feature = "tokio")]
pub use crate::serve::{
    serve, serve_connection, BundleHandler, ServeStats, ServerConfig, SessionSummary,
};
pub use crate::session::{ConfigError, Event, Initiator, PeerInfo, SessionConfig, Termination};
