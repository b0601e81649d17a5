//! The deepmail gateway: everything between an MTA on one side of a
//! deep-space link and an MTA on the other.
//!
//! * Mail in from the local MTA: the SMTP ingress (on
//!   `deepmail_smtp::serve`) and local submission ([`submit()`]), checked
//!   by the policy plugin ([`GatewayPolicy`]) and durably queued
//!   ([`Queue`]) before `250`.
//! * Out across the link: the queue runner batches per domain, encodes
//!   with the codec plugin, resolves and sends with the resolver and sender
//!   plugins ([`GatewayStages`]), retries with backoff, and returns what
//!   fails for good as a DSN.
//! * In from the link: the HTTPS / HTTP/3 endpoint ([`Receiver`]) decodes
//!   `application/batch-SMTP` with the codec plugin and stores it in the
//!   deduplicating [`Spool`] before `200`; the inbound relay hands each
//!   message to the local MTA and sends DSNs back for refused recipients.
//! * The Bundle Protocol route: a TCPCLv4 listener ([`BpInbound`]) that
//!   reassembles bundles for the gateway's mail endpoints into the spool;
//!   `bp` routes send through the fragmenter and tcpcl-sender plugins.
//! * [`RunningGateway`] runs all of it from one [`config`] file, with
//!   [`Metrics`].
//!
//! The HTTP side is the server half of the senders' wire contract
//! (`wit/deepmail.wit`, `interface sender`): `POST` with
//! `Content-Type: application/batch-SMTP`, `Idempotency-Key` and optionally
//! `Authorization: Bearer`; 2xx delivered, 4xx permanent, 5xx temporary.
//!
//! Everything public is re-exported here; the modules are private.

#![warn(missing_docs)]

mod bp;
mod client;
mod compress;
mod deliver;
mod envelope;
mod gateway;
mod ingress;
mod metrics;
pub mod mta_config;
mod policy;
mod queue;
mod queue_report;
mod receive;
mod relay;
mod returns;
mod spool;
mod stages;
mod submit;
mod tls;

/// The configuration file's model and loader (`deepmail-gateway-config`).
pub use deepmail_gateway_config as config;

// Running a gateway, and submitting to one.
pub use crate::config::{ConfigError, GatewayConfig};
pub use crate::envelope::smtp_envelope;
pub use crate::gateway::{
    load_tls_files, CheckError, CheckReport, RunningGateway, StartError, TlsFiles,
};
pub use crate::metrics::Metrics;
pub use crate::policy::{GatewayPolicy, PolicyLoadError};
pub use crate::stages::{
    authority_of, load_hop_sender, system_nameservers, GatewayStages, HopError, NextHop,
    SenderError,
};
pub use crate::submit::{pipe_message, submit, sysexits, MessageReport, SubmitError, SubmitReport};

// The queue and the spool, for tools that read them (`deepmail queue`).
pub use crate::queue::{
    header_value, record_bytes, shard_of, Destination, Queue, QueueEntry, Snapshot,
};
pub use crate::queue_report::{make_due, QueueReport};
pub use crate::spool::{
    BatchMeta, Spool, SpoolError, SpooledBatch, SpooledEnvelope, SpooledRecipient, StoreOutcome,
};

// The HTTP receiver and client, and the BP listener, to run on their own.
pub use crate::bp::{BpHandler, BpInbound, BpInboundError};
pub use crate::client::{batch_request, ClientError, Connection, HttpVersion};
pub use crate::compress::gzip;
pub use crate::deliver::dtn_ms;
pub use crate::receive::{
    shutdown_signal, ReceiveError, ReceiveSettings, ReceiveSettingsError, ReceiveSetup, Receiver,
    ReceiverConfig, RequestRecord, Transport, BATCH_SMTP, DEFAULT_MAX_BODY_BYTES, DEFAULT_PATH,
};

// TLS material: loading it, and a throwaway PKI for tests and demos.
pub use crate::tls::{client_config, load_certs, load_private_key, TestPki, TlsError};
