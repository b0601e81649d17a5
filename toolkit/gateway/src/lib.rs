//! The deepmail gateway's receiving side: the HTTPS / HTTP/3 endpoint that
//! accepts Batch SMTP objects (RFC 2442, `application/batch-SMTP`) from the
//! previous hop, decodes them with the codec plugin, and stores them in a
//! durable spool before answering 200 ("nothing accepted is lost").
//!
//! It is the server side of the HTTP senders' wire contract
//! (`wit/deepmail.wit`, `interface sender`): `POST` with
//! `Content-Type: application/batch-SMTP`, `Idempotency-Key` and optionally
//! `Authorization: Bearer`; 2xx delivered, 4xx permanent, 5xx temporary.
//! This crate does I/O (sockets, files, clocks); the codec it calls does
//! not.
//!
//! * [`receive`]: the server ([`Receiver`]), one request handler for
//!   HTTP/1.1, HTTP/2 (hyper over tokio-rustls) and HTTP/3 (quinn + h3);
//! * [`spool`]: the durable, deduplicating spool ([`Spool`]);
//! * [`tls`]: PEM loading, rustls configurations over `ring`, a test PKI;
//! * [`client`]: a small client for tests and measurements.

#![warn(missing_docs)]

pub mod client;
pub mod receive;
pub mod spool;
pub mod tls;

pub use crate::receive::{
    shutdown_signal, ReceiveError, Receiver, ReceiverConfig, RequestRecord, Transport, BATCH_SMTP,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_PATH,
};
pub use crate::spool::{BatchMeta, Spool, SpoolError, SpooledBatch, StoreOutcome};
pub use crate::tls::{TestPki, TlsError};
