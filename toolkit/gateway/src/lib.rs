//! The deepmail gateway: everything between an MTA on one side of a
//! deep-space link and an MTA on the other.
//!
//! * Mail in from the local MTA: the SMTP ingress ([`ingress`], on
//!   `deepmail_smtp::serve`) and `deepmail submit`, checked by the policy
//!   plugin ([`policy`]) and durably queued ([`queue`]) before `250`.
//! * Out across the link: the queue runner ([`deliver`]) batches per
//!   domain, encodes with the codec plugin, resolves and sends with the
//!   resolver and sender plugins ([`stages`]), retries with backoff, and
//!   returns what fails for good as a DSN ([`returns`]).
//! * In from the link: the HTTPS / HTTP/3 endpoint ([`receive`]) decodes
//!   `application/batch-SMTP` with the codec plugin and stores it in the
//!   deduplicating [`spool`] before `200`; the inbound relay ([`relay`])
//!   hands each message to the local MTA and sends DSNs back for refused
//!   recipients.
//! * The Bundle Protocol route ([`bp`]): a TCPCLv4 listener that
//!   reassembles bundles for the gateway's mail endpoints into the spool;
//!   `bp` routes send through the fragmenter and tcpcl-sender plugins.
//! * [`gateway`] runs all of it from one [`config`] file, with [`metrics`].
//!
//! The HTTP side is the server half of the senders' wire contract
//! (`wit/deepmail.wit`, `interface sender`): `POST` with
//! `Content-Type: application/batch-SMTP`, `Idempotency-Key` and optionally
//! `Authorization: Bearer`; 2xx delivered, 4xx permanent, 5xx temporary.

#![warn(missing_docs)]

pub mod bp;
pub use deepmail_gateway_config as config;
pub mod client;
pub mod compress;
pub mod deliver;
mod envelope;
pub mod gateway;
pub mod ingress;
pub mod metrics;
pub mod mta_config;
pub mod policy;
pub mod queue;
pub mod receive;
pub mod relay;
pub mod returns;
pub mod spool;
pub mod stages;
pub mod submit;
pub mod tls;

pub use crate::config::{ConfigError, GatewayConfig};
pub use crate::gateway::{RunningGateway, StartError};
pub use crate::receive::{
    shutdown_signal, ReceiveError, Receiver, ReceiverConfig, RequestRecord, Transport, BATCH_SMTP,
    DEFAULT_MAX_BODY_BYTES, DEFAULT_PATH,
};
pub use crate::spool::{BatchMeta, Spool, SpoolError, SpooledBatch, StoreOutcome};
pub use crate::tls::{TestPki, TlsError};
