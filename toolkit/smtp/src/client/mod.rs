//! The SMTP relay client (RFC 5321): hands a message, with its original
//! envelope, to the next MTA and reports the answer for every recipient.
//!
//! The Moon gateway uses it to give what arrived over the deep-space link to
//! the local MTA (Exim); on Earth it hands delivery status notifications to
//! the Earth MTA. One [`SmtpClient`] session carries many messages; after a
//! failed transaction it sends `RSET` so the session stays usable.
//!
//! What it speaks:
//!
//! * the greeting, `EHLO` with a fallback to `HELO` on a `5xx` (RFC 5321
//!   4.1.1.1), and `STARTTLS` with a second `EHLO` (RFC 3207) when
//!   [`TlsMode`] asks for it;
//! * `PIPELINING` (RFC 2920): `MAIL`, every `RCPT` and `DATA` in one write
//!   (in batches of [`PIPELINE_BATCH`] commands, so a huge recipient list
//!   cannot deadlock two full socket buffers), replies read in order;
//! * `8BITMIME` (RFC 6152), `SMTPUTF8` (RFC 6531), `SIZE` (RFC 1870) and the
//!   DSN parameters (RFC 3461) when the server offers them; a message that
//!   needs an extension the server lacks fails with a local permanent error
//!   ([`RelayError::Incompatible`], `5.6.3` / `5.6.7` / `5.6.9` / `5.3.4`)
//!   instead of being corrupted on the way;
//! * the timeouts of RFC 5321 4.5.3.2 ([`RelayConfig::new`]);
//! * message content normalised to CRLF, dot-stuffed (RFC 5321 4.5.2) and
//!   terminated by exactly one `CRLF.CRLF`, streamed in chunks
//!   ([`DotStuffer`], [`dot_stuff`]).
//!
//! A timeout while waiting for the reply to the final dot leaves it unknown
//! whether the server took the message (RFC 1047); the error is transient, so
//! a retry may deliver a duplicate, which is the lesser evil.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use memchr::{memchr, memchr2};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use crate::{Envelope, Param, Recipient, Reply};

mod wire;

use wire::*;
pub use wire::{dot_stuff, DotStuffer, Extensions};

/// How many commands one pipelined write carries at most (RFC 2920 3.1
/// warns about deadlock when the client writes without reading).
pub const PIPELINE_BATCH: usize = 100;

/// The longest reply line accepted, in octets (RFC 5321 4.5.3.1.5 says 512;
/// real servers exceed it).
const MAX_REPLY_LINE: usize = 4096;

/// The most lines one reply may have (an `EHLO` reply has about twenty).
const MAX_REPLY_LINES: usize = 256;

/// How much message content is dot-stuffed and written at a time.
const CONTENT_CHUNK: usize = 64 * 1024;

/// Whether and how to use `STARTTLS` (RFC 3207).
#[derive(Debug, Clone)]
pub enum TlsMode {
    /// Never: the session stays in plain text.
    Never,
    /// Opportunistic: `STARTTLS` when the server offers it, plain text when
    /// it does not or refuses the command. A failed handshake is an error
    /// (the connection is unusable afterwards); the caller may retry with
    /// [`TlsMode::Never`].
    IfOffered(Arc<rustls::ClientConfig>, ServerName<'static>),
    /// Mandatory: a server without `STARTTLS`, or refusing it, fails the
    /// session ([`RelayError::TlsUnavailable`], [`RelayError::Refused`]).
    Required(Arc<rustls::ClientConfig>, ServerName<'static>),
}

/// Settings of a relay session.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The name sent in `EHLO`/`HELO`: a host name or an address literal
    /// such as `[192.0.2.1]`.
    pub helo_name: String,
    /// TCP connect and TLS handshake, each.
    pub connect_timeout: Duration,
    /// Waiting for the greeting or the reply to a command (`EHLO`, `MAIL`,
    /// `RCPT`, `DATA`, `RSET`, `QUIT`), writing a command, and writing one
    /// chunk of message content (RFC 5321 4.5.3.2.5 asks at least 3
    /// minutes for a data block).
    pub command_timeout: Duration,
    /// Waiting for the reply to the final dot.
    pub data_timeout: Duration,
    /// `STARTTLS` policy.
    pub tls: TlsMode,
}

impl RelayConfig {
    /// A configuration with the timeouts of RFC 5321 4.5.3.2: 5 minutes for
    /// the greeting, each command and each data block (the RFC's values are
    /// lower bounds: 5 for `MAIL`/`RCPT`, 2 for `DATA` initiation, 3 per
    /// data block), 10 minutes for the reply to the final dot; 30 seconds
    /// to connect (the RFC has no value for it); no TLS.
    pub fn new(helo_name: impl Into<String>) -> RelayConfig {
        RelayConfig {
            helo_name: helo_name.into(),
            connect_timeout: Duration::from_secs(30),
            command_timeout: Duration::from_secs(5 * 60),
            data_timeout: Duration::from_secs(10 * 60),
            tls: TlsMode::Never,
        }
    }
}

/// The step of a session an error happened in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// TCP connect.
    Connect,
    /// The `220` greeting.
    Greeting,
    /// `EHLO`.
    Ehlo,
    /// `HELO` (after `EHLO` was refused with a `5xx`).
    Helo,
    /// The `STARTTLS` command.
    StartTls,
    /// The TLS handshake after `STARTTLS`.
    TlsHandshake,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// The `DATA` command.
    Data,
    /// Writing the message content.
    Content,
    /// The reply to the final dot.
    DataEnd,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Connect => "TCP connect",
            Stage::Greeting => "the greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::TlsHandshake => "the TLS handshake",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Content => "the message content",
            Stage::DataEnd => "the end of data",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        })
    }
}

/// Why a session or a message failed as a whole. Recipients refused one by
/// one are not errors: they are in [`Delivery::recipients`].
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// The TCP connection could not be made.
    #[error("cannot connect to {addr}: {error}")]
    Connect {
        /// The address tried.
        addr: SocketAddr,
        /// Why.
        error: io::Error,
    },
    /// The server did not answer (or accept data) in time.
    #[error("timed out after {after:?} during {stage}")]
    Timeout {
        /// What was being waited for.
        stage: Stage,
        /// The limit that ran out.
        after: Duration,
    },
    /// The server refused the session (greeting), `EHLO`/`HELO`,
    /// `STARTTLS` or `MAIL FROM` with a `4xx` (transient) or `5xx`
    /// (permanent) reply.
    #[error("the server refused {stage}: {reply}")]
    Refused {
        /// The command refused.
        stage: Stage,
        /// The server's reply.
        reply: Reply,
    },
    /// The server sent something that is not a valid SMTP reply, or a reply
    /// that makes no sense at this point.
    #[error("protocol violation during {stage}: {detail}")]
    Protocol {
        /// Where.
        stage: Stage,
        /// What was wrong.
        detail: String,
    },
    /// Reading or writing the connection failed (including the server
    /// closing it).
    #[error("I/O error during {stage}: {error}")]
    Io {
        /// Where.
        stage: Stage,
        /// The error.
        error: io::Error,
    },
    /// The TLS handshake after `STARTTLS` failed.
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
    /// [`TlsMode::Required`], but the server does not offer `STARTTLS`.
    #[error("TLS is required but the server does not offer STARTTLS")]
    TlsUnavailable,
    /// The message needs an extension the server does not offer, or is too
    /// big for it; nothing was sent and the session is still usable.
    /// `status` is the enhanced status code (RFC 3463) for the DSN.
    #[error("{status} {reason}")]
    Incompatible {
        /// `5.6.3`, `5.6.7`, `5.6.9` or `5.3.4`.
        status: &'static str,
        /// A sentence for the DSN's diagnostic.
        reason: String,
    },
    /// The envelope cannot be written as SMTP commands (no recipients, or a
    /// path with control characters or angle brackets).
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(String),
    /// [`RelayConfig`] is unusable (e.g. `helo_name` is empty or has
    /// spaces).
    #[error("invalid relay configuration: {0}")]
    InvalidConfig(String),
    /// An earlier error (I/O, timeout, protocol violation, `421`) left the
    /// session in an unknown state; connect again.
    #[error("the SMTP session is no longer usable after an earlier error")]
    SessionBroken,
}

impl RelayError {
    /// Whether trying again later may succeed: network trouble, timeouts,
    /// `4xx` replies, protocol violations and TLS trouble are transient;
    /// `5xx` replies, [`RelayError::Incompatible`] and
    /// [`RelayError::InvalidEnvelope`] are permanent. A configuration error
    /// counts as transient: the operator can fix it without losing mail.
    pub fn is_transient(&self) -> bool {
        match self {
            RelayError::Refused { reply, .. } => !reply.is_permanent(),
            RelayError::Incompatible { .. } | RelayError::InvalidEnvelope(_) => false,
            RelayError::Connect { .. }
            | RelayError::Timeout { .. }
            | RelayError::Protocol { .. }
            | RelayError::Io { .. }
            | RelayError::Tls(_)
            | RelayError::TlsUnavailable
            | RelayError::InvalidConfig(_)
            | RelayError::SessionBroken => true,
        }
    }

    /// Not [`RelayError::is_transient`]: bounce the message.
    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    /// The server's reply, for [`RelayError::Refused`].
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            RelayError::Refused { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// Whether the session cannot carry another message after this error.
    fn breaks_session(&self) -> bool {
        match self {
            RelayError::Refused { reply, .. } => reply.code == 421,
            RelayError::Incompatible { .. } | RelayError::InvalidEnvelope(_) => false,
            _ => true,
        }
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// The recipient, as in the envelope.
    pub recipient: Recipient,
    /// The `RCPT` reply if the server refused the recipient there; the
    /// final `DATA` reply (or the refusal of the `DATA` command) otherwise.
    pub reply: Reply,
    /// Whether the server took responsibility for this recipient.
    pub accepted: bool,
}

impl RecipientOutcome {
    /// Refused with a `4xx`: retry this recipient later.
    pub fn is_transient(&self) -> bool {
        !self.accepted && !self.reply.is_permanent()
    }

    /// Refused with a `5xx`: bounce.
    pub fn is_permanent(&self) -> bool {
        !self.accepted && self.reply.is_permanent()
    }
}

/// The outcome of one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// One entry per envelope recipient, in envelope order.
    pub recipients: Vec<RecipientOutcome>,
    /// The reply that ended the transaction for the recipients accepted at
    /// `RCPT`: the reply to the final dot, or the refusal of `DATA`. `None`
    /// when no recipient was accepted (the content was not sent).
    pub data_reply: Option<Reply>,
}

impl Delivery {
    /// Whether every recipient was accepted.
    pub fn all_accepted(&self) -> bool {
        self.recipients.iter().all(|r| r.accepted)
    }

    /// The recipients the server took.
    pub fn accepted(&self) -> impl Iterator<Item = &RecipientOutcome> {
        self.recipients.iter().filter(|r| r.accepted)
    }

    /// The recipients the server did not take.
    pub fn refused(&self) -> impl Iterator<Item = &RecipientOutcome> {
        self.recipients.iter().filter(|r| !r.accepted)
    }
}

/// The transport under a session: TCP, or TLS over TCP after `STARTTLS`.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection with its read buffer.
struct Wire {
    stream: Stream,
    rbuf: Vec<u8>,
}

impl Wire {
    fn new(stream: Stream) -> Wire {
        Wire {
            stream,
            rbuf: Vec::new(),
        }
    }

    async fn write(
        &mut self,
        bytes: &[u8],
        limit: Duration,
        stage: Stage,
    ) -> Result<(), RelayError> {
        let stream = &mut self.stream;
        let io = async {
            stream.write_all(bytes).await?;
            stream.flush().await
        };
        match tokio::time::timeout(limit, io).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(RelayError::Io { stage, error }),
            Err(_) => Err(RelayError::Timeout {
                stage,
                after: limit,
            }),
        }
    }

    async fn read_reply(&mut self, limit: Duration, stage: Stage) -> Result<Reply, RelayError> {
        match tokio::time::timeout(limit, self.read_reply_untimed(stage)).await {
            Ok(result) => result,
            Err(_) => Err(RelayError::Timeout {
                stage,
                after: limit,
            }),
        }
    }

    async fn read_reply_untimed(&mut self, stage: Stage) -> Result<Reply, RelayError> {
        let mut parser = ReplyParser::default();
        loop {
            let line = self.read_line(stage).await?;
            match parser.push_line(&line) {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(e) => {
                    return Err(RelayError::Protocol {
                        stage,
                        detail: e.to_string(),
                    })
                }
            }
        }
    }

    async fn read_line(&mut self, stage: Stage) -> Result<Vec<u8>, RelayError> {
        let mut scanned = 0;
        loop {
            if let Some(i) = memchr(b'\n', &self.rbuf[scanned..]) {
                let mut line: Vec<u8> = self.rbuf.drain(..=scanned + i).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            scanned = self.rbuf.len();
            if scanned > MAX_REPLY_LINE {
                return Err(RelayError::Protocol {
                    stage,
                    detail: format!("reply line longer than {MAX_REPLY_LINE} octets"),
                });
            }
            let mut chunk = [0u8; 4096];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|error| RelayError::Io { stage, error })?;
            if n == 0 {
                return Err(RelayError::Io {
                    stage,
                    error: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed the connection",
                    ),
                });
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Writes a command and reads its reply.
    async fn command(
        &mut self,
        line: &[u8],
        limit: Duration,
        stage: Stage,
    ) -> Result<Reply, RelayError> {
        self.write(line, limit, stage).await?;
        self.read_reply(limit, stage).await
    }

    /// Best effort `QUIT` before giving up on a session.
    async fn quit_quietly(&mut self, limit: Duration) {
        let _ = self.command(b"QUIT\r\n", limit, Stage::Quit).await;
    }
}

/// `EHLO`, or `HELO` when `EHLO` is refused with a `5xx`.
async fn hello(
    wire: &mut Wire,
    name: &str,
    limit: Duration,
) -> Result<(Reply, Extensions), RelayError> {
    let reply = wire
        .command(format!("EHLO {name}\r\n").as_bytes(), limit, Stage::Ehlo)
        .await?;
    if reply.is_positive() {
        let ext = Extensions::from_ehlo(&reply);
        return Ok((reply, ext));
    }
    if reply.is_transient() {
        return Err(RelayError::Refused {
            stage: Stage::Ehlo,
            reply,
        });
    }
    if !reply.is_permanent() {
        return Err(unexpected(Stage::Ehlo, &reply));
    }
    let reply = wire
        .command(format!("HELO {name}\r\n").as_bytes(), limit, Stage::Helo)
        .await?;
    if reply.is_positive() {
        Ok((reply, Extensions::default()))
    } else if reply.is_transient() || reply.is_permanent() {
        Err(RelayError::Refused {
            stage: Stage::Helo,
            reply,
        })
    } else {
        Err(unexpected(Stage::Helo, &reply))
    }
}

fn unexpected(stage: Stage, reply: &Reply) -> RelayError {
    RelayError::Protocol {
        stage,
        detail: format!("unexpected reply {reply}"),
    }
}

/// The timeouts a session keeps from its [`RelayConfig`].
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    command: Duration,
    data_block: Duration,
    data_end: Duration,
}

/// The commands of one transaction, checked against the server's
/// extensions.
#[derive(Debug)]
struct Plan {
    mail: Vec<u8>,
    rcpts: Vec<Vec<u8>>,
}

/// An SMTP session with one server, carrying any number of messages.
pub struct SmtpClient {
    wire: Wire,
    timeouts: Timeouts,
    greeting: Reply,
    ehlo: Reply,
    extensions: Extensions,
    tls: bool,
    usable: bool,
}

impl fmt::Debug for SmtpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpClient")
            .field("greeting", &self.greeting)
            .field("extensions", &self.extensions)
            .field("tls", &self.tls)
            .field("usable", &self.usable)
            .finish_non_exhaustive()
    }
}

impl SmtpClient {
    /// Connects, reads the `220` greeting, says `EHLO` (falling back to
    /// `HELO`), and does `STARTTLS` and a second `EHLO` when
    /// [`RelayConfig::tls`] asks for it. Must run inside a tokio runtime
    /// with the time driver enabled.
    pub async fn connect(addr: SocketAddr, config: &RelayConfig) -> Result<SmtpClient, RelayError> {
        check_helo_name(&config.helo_name)?;
        let timeouts = Timeouts {
            command: config.command_timeout,
            data_block: config.command_timeout,
            data_end: config.data_timeout,
        };
        let tcp = match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await
        {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(error)) => return Err(RelayError::Connect { addr, error }),
            Err(_) => {
                return Err(RelayError::Timeout {
                    stage: Stage::Connect,
                    after: config.connect_timeout,
                })
            }
        };
        // Commands are small and answered one by one: do not wait for Nagle.
        let _ = tcp.set_nodelay(true);
        let mut wire = Wire::new(Stream::Plain(tcp));
        let greeting = wire.read_reply(timeouts.command, Stage::Greeting).await?;
        if greeting.code != 220 {
            if greeting.is_transient() || greeting.is_permanent() {
                wire.quit_quietly(timeouts.command).await;
                return Err(RelayError::Refused {
                    stage: Stage::Greeting,
                    reply: greeting,
                });
            }
            return Err(unexpected(Stage::Greeting, &greeting));
        }
        let (mut ehlo, mut extensions) =
            hello(&mut wire, &config.helo_name, timeouts.command).await?;
        let mut tls = false;
        let (tls_config, server_name, required) = match &config.tls {
            TlsMode::Never => {
                return Ok(SmtpClient {
                    wire,
                    timeouts,
                    greeting,
                    ehlo,
                    extensions,
                    tls,
                    usable: true,
                })
            }
            TlsMode::IfOffered(c, n) => (c, n, false),
            TlsMode::Required(c, n) => (c, n, true),
        };
        if !extensions.starttls {
            if required {
                wire.quit_quietly(timeouts.command).await;
                return Err(RelayError::TlsUnavailable);
            }
        } else {
            let reply = wire
                .command(b"STARTTLS\r\n", timeouts.command, Stage::StartTls)
                .await?;
            if reply.code == 220 {
                // RFC 3207 5: anything the server sent after its 220 was sent
                // before the handshake and must not be trusted (an injection
                // attack, CVE-2011-0411 and kin).
                if !wire.rbuf.is_empty() {
                    return Err(RelayError::Protocol {
                        stage: Stage::StartTls,
                        detail: "the server sent data after its reply to STARTTLS".into(),
                    });
                }
                let tcp = match wire.stream {
                    Stream::Plain(tcp) => tcp,
                    Stream::Tls(_) => {
                        return Err(RelayError::Protocol {
                            stage: Stage::StartTls,
                            detail: "STARTTLS inside TLS".into(),
                        })
                    }
                };
                let connector = tokio_rustls::TlsConnector::from(tls_config.clone());
                let handshake = connector.connect(server_name.clone(), tcp);
                let stream = match tokio::time::timeout(config.connect_timeout, handshake).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return Err(RelayError::Tls(e)),
                    Err(_) => {
                        return Err(RelayError::Timeout {
                            stage: Stage::TlsHandshake,
                            after: config.connect_timeout,
                        })
                    }
                };
                wire = Wire::new(Stream::Tls(Box::new(stream)));
                tls = true;
                // RFC 3207 4.2: forget what was learnt before TLS.
                (ehlo, extensions) = hello(&mut wire, &config.helo_name, timeouts.command).await?;
            } else if reply.is_transient() || reply.is_permanent() {
                if required {
                    wire.quit_quietly(timeouts.command).await;
                    return Err(RelayError::Refused {
                        stage: Stage::StartTls,
                        reply,
                    });
                }
            } else {
                return Err(unexpected(Stage::StartTls, &reply));
            }
        }
        Ok(SmtpClient {
            wire,
            timeouts,
            greeting,
            ehlo,
            extensions,
            tls,
            usable: true,
        })
    }

    /// The server's greeting.
    pub fn greeting(&self) -> &Reply {
        &self.greeting
    }

    /// The server's (last) reply to `EHLO` or `HELO`.
    pub fn ehlo_reply(&self) -> &Reply {
        &self.ehlo
    }

    /// The extensions the server offers (none after a `HELO` fallback).
    pub fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether the session can carry another message; `false` after an
    /// I/O error, a timeout, a protocol violation or a `421`.
    pub fn is_usable(&self) -> bool {
        self.usable
    }

    /// Sends one message with its envelope. A recipient refused at `RCPT`
    /// keeps that reply; the accepted ones get the final reply. The content
    /// is the message as received (any line endings); it is normalised,
    /// dot-stuffed and streamed. After a failed transaction, `RSET` is sent
    /// so the session can carry the next message.
    ///
    /// Errors: [`RelayError::Refused`] for `MAIL FROM`,
    /// [`RelayError::Incompatible`] / [`RelayError::InvalidEnvelope`]
    /// before anything is sent, and network errors (after which the session
    /// is unusable).
    pub async fn send(
        &mut self,
        envelope: &Envelope,
        content: &[u8],
    ) -> Result<Delivery, RelayError> {
        if !self.usable {
            return Err(RelayError::SessionBroken);
        }
        let plan = plan_transaction(&self.extensions, envelope, content)?;
        let result = self.transaction(&plan, envelope, content).await;
        if let Err(e) = &result {
            if e.breaks_session() {
                self.usable = false;
            }
        }
        result
    }

    /// Sends `QUIT` and closes the connection.
    pub async fn quit(mut self) -> Result<(), RelayError> {
        let result = if self.usable {
            self.wire
                .command(b"QUIT\r\n", self.timeouts.command, Stage::Quit)
                .await
                .map(drop)
        } else {
            Ok(())
        };
        let _ = tokio::time::timeout(self.timeouts.command, self.wire.stream.shutdown()).await;
        result
    }

    async fn read(&mut self, limit: Duration, stage: Stage) -> Result<Reply, RelayError> {
        let reply = self.wire.read_reply(limit, stage).await?;
        if reply.code == 421 {
            // RFC 5321 3.8: the server is closing the transmission channel.
            self.usable = false;
        }
        Ok(reply)
    }

    async fn command(&mut self, line: &[u8], stage: Stage) -> Result<Reply, RelayError> {
        self.wire.write(line, self.timeouts.command, stage).await?;
        self.read(self.timeouts.command, stage).await
    }

    /// `RSET` after a failed transaction; a failure only marks the session
    /// unusable (the transaction's outcome is already known).
    async fn reset(&mut self) {
        if !self.usable {
            return;
        }
        match self.command(b"RSET\r\n", Stage::Rset).await {
            Ok(reply) if reply.is_positive() => {}
            _ => self.usable = false,
        }
    }

    /// Sends `commands` and reads one reply each, pipelined in batches
    /// when the server allows it; stops after the batch in which `MAIL`
    /// (the first command) was refused, and fails on a `421`.
    async fn exchange(&mut self, commands: &[(Stage, &[u8])]) -> Result<Vec<Reply>, RelayError> {
        let mut replies = Vec::with_capacity(commands.len());
        let batch = if self.extensions.pipelining {
            PIPELINE_BATCH
        } else {
            1
        };
        for group in commands.chunks(batch) {
            let mut out = Vec::new();
            for (_, line) in group {
                out.extend_from_slice(line);
            }
            self.wire
                .write(&out, self.timeouts.command, group[0].0)
                .await?;
            for (stage, _) in group {
                let reply = self.read(self.timeouts.command, *stage).await?;
                if reply.code == 421 {
                    // The server is going away; the rest of the replies will
                    // not come. The whole message is to be retried.
                    return Err(RelayError::Refused {
                        stage: *stage,
                        reply,
                    });
                }
                replies.push(reply);
            }
            if replies.first().is_some_and(|mail| !mail.is_positive()) {
                break;
            }
        }
        Ok(replies)
    }

    async fn transaction(
        &mut self,
        plan: &Plan,
        envelope: &Envelope,
        content: &[u8],
    ) -> Result<Delivery, RelayError> {
        let pipelining = self.extensions.pipelining;
        let mut commands: Vec<(Stage, &[u8])> = Vec::with_capacity(plan.rcpts.len() + 2);
        commands.push((Stage::Mail, &plan.mail));
        commands.extend(plan.rcpts.iter().map(|r| (Stage::Rcpt, r.as_slice())));
        if pipelining {
            // RFC 2920 3.1: DATA goes in the group; its reply tells whether
            // the server will take content.
            commands.push((Stage::Data, b"DATA\r\n"));
        }
        let mut replies = self.exchange(&commands).await?.into_iter();
        let mail = replies.next().ok_or_else(|| RelayError::Protocol {
            stage: Stage::Mail,
            detail: "no reply to MAIL".into(),
        })?;
        let rcpt_replies: Vec<Reply> = replies.by_ref().take(plan.rcpts.len()).collect();
        let pipelined_data = replies.next();

        let is_final = |r: &Reply| r.is_positive() || r.is_transient() || r.is_permanent();
        if !is_final(&mail) {
            return Err(unexpected(Stage::Mail, &mail));
        }
        if !mail.is_positive() {
            self.abandon(pipelined_data).await?;
            return Err(RelayError::Refused {
                stage: Stage::Mail,
                reply: mail,
            });
        }
        if let Some(odd) = rcpt_replies.iter().find(|r| !is_final(r)) {
            return Err(unexpected(Stage::Rcpt, odd));
        }
        if rcpt_replies.len() != plan.rcpts.len() {
            return Err(RelayError::Protocol {
                stage: Stage::Rcpt,
                detail: "fewer RCPT replies than RCPT commands".into(),
            });
        }
        let any_accepted = rcpt_replies.iter().any(Reply::is_positive);
        let outcomes = |data_reply: Option<Reply>| {
            let recipients = envelope
                .recipients
                .iter()
                .zip(&rcpt_replies)
                .map(|(recipient, reply)| {
                    let (reply, accepted) = match (&data_reply, reply.is_positive()) {
                        (Some(final_reply), true) => {
                            (final_reply.clone(), final_reply.is_positive())
                        }
                        _ => (reply.clone(), false),
                    };
                    RecipientOutcome {
                        recipient: recipient.clone(),
                        reply,
                        accepted,
                    }
                })
                .collect();
            Delivery {
                recipients,
                data_reply,
            }
        };
        if !any_accepted {
            self.abandon(pipelined_data).await?;
            return Ok(outcomes(None));
        }
        let data = match pipelined_data {
            Some(reply) => reply,
            None => self.command(b"DATA\r\n", Stage::Data).await?,
        };
        let final_reply = if data.code == 354 {
            self.write_content(content).await?;
            let reply = self.read(self.timeouts.data_end, Stage::DataEnd).await?;
            if !(reply.is_positive() || reply.is_transient() || reply.is_permanent()) {
                return Err(unexpected(Stage::DataEnd, &reply));
            }
            reply
        } else if data.is_transient() || data.is_permanent() {
            data
        } else {
            return Err(unexpected(Stage::Data, &data));
        };
        if !final_reply.is_positive() {
            self.reset().await;
        }
        Ok(outcomes(Some(final_reply)))
    }

    /// Ends a transaction that will not carry content: if a pipelined
    /// `DATA` was nonetheless accepted, sends an empty message's dot
    /// (RFC 2920 3.1), then `RSET`.
    async fn abandon(&mut self, pipelined_data: Option<Reply>) -> Result<(), RelayError> {
        if pipelined_data.is_some_and(|r| r.code == 354) {
            self.wire
                .write(b".\r\n", self.timeouts.data_block, Stage::Content)
                .await?;
            self.read(self.timeouts.data_end, Stage::DataEnd).await?;
        }
        self.reset().await;
        Ok(())
    }

    async fn write_content(&mut self, content: &[u8]) -> Result<(), RelayError> {
        let mut stuffer = DotStuffer::new();
        let mut out = Vec::with_capacity(2 * CONTENT_CHUNK.min(content.len()) + 8);
        let limit = self.timeouts.data_block;
        let mut chunks = content.chunks(CONTENT_CHUNK).peekable();
        while let Some(chunk) = chunks.next() {
            stuffer.feed(chunk, &mut out);
            if chunks.peek().is_some() {
                self.wire.write(&out, limit, Stage::Content).await?;
                out.clear();
            }
        }
        stuffer.finish(&mut out);
        self.wire.write(&out, limit, Stage::Content).await
    }
}

/// Connects, sends one message and quits (a failing `QUIT` is ignored).
pub async fn relay(
    addr: SocketAddr,
    config: &RelayConfig,
    envelope: &Envelope,
    content: &[u8],
) -> Result<Delivery, RelayError> {
    let mut client = SmtpClient::connect(addr, config).await?;
    let result = client.send(envelope, content).await;
    let _ = client.quit().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stuffed(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        dot_stuff(content, &mut out);
        out
    }

    /// Reference CRLF normalisation, byte by byte.
    fn normalise(content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < content.len() {
            match content[i] {
                b'\r' => {
                    out.extend_from_slice(b"\r\n");
                    if content.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    }
                }
                b'\n' => out.extend_from_slice(b"\r\n"),
                b => out.push(b),
            }
            i += 1;
        }
        out
    }

    /// What a server does with the bytes after `354`: split at CRLF, stop
    /// at the lone dot, remove one leading dot. `None` if the terminator is
    /// missing, not at the end, or a line break is not CRLF.
    fn unstuff(wire: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = wire;
        loop {
            let i = rest.windows(2).position(|w| w == b"\r\n")?;
            let line = &rest[..i];
            if line.contains(&b'\r') || line.contains(&b'\n') {
                return None;
            }
            rest = &rest[i + 2..];
            if line == b"." {
                return rest.is_empty().then_some(out);
            }
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
            out.extend_from_slice(b"\r\n");
        }
    }

    #[test]
    fn terminator_added_once() {
        assert_eq!(stuffed(b""), b".\r\n");
        assert_eq!(stuffed(b"a\r\n"), b"a\r\n.\r\n");
        assert_eq!(stuffed(b"a"), b"a\r\n.\r\n");
        assert_eq!(stuffed(b"a\n"), b"a\r\n.\r\n");
        assert_eq!(stuffed(b"a\r"), b"a\r\n.\r\n");
        assert_eq!(stuffed(b"a\r\n\r\n"), b"a\r\n\r\n.\r\n");
    }

    #[test]
    fn dots_and_bare_line_ends() {
        assert_eq!(stuffed(b".\r\n"), b"..\r\n.\r\n");
        assert_eq!(
            stuffed(b"a\n.b\r..c\r\n.\n"),
            b"a\r\n..b\r\n...c\r\n..\r\n.\r\n"
        );
        assert_eq!(stuffed(b"x.y\r\r\n"), b"x.y\r\n\r\n.\r\n");
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let content = b"a\r\n.b\rc\r\n\r.\n..\r";
        let whole = stuffed(content);
        for split in 0..=content.len() {
            let mut s = DotStuffer::new();
            let mut out = Vec::new();
            s.feed(&content[..split], &mut out);
            s.feed(&content[split..], &mut out);
            s.finish(&mut out);
            assert_eq!(out, whole, "split at {split}");
        }
    }

    proptest! {
        #[test]
        fn stuff_then_unstuff_gives_normalised_content(
            content in proptest::collection::vec(
                prop_oneof![Just(b'.'), Just(b'\r'), Just(b'\n'), Just(b'a'), any::<u8>()],
                0..300,
            ),
            splits in proptest::collection::vec(0usize..300, 0..4),
        ) {
            let wire = stuffed(&content);
            let mut expected = normalise(&content);
            if !expected.is_empty() && !expected.ends_with(b"\r\n") {
                expected.extend_from_slice(b"\r\n");
            }
            prop_assert_eq!(unstuff(&wire), Some(expected));

            // Streaming in arbitrary chunks gives the same bytes.
            let mut cuts: Vec<usize> = splits.into_iter().map(|s| s.min(content.len())).collect();
            cuts.sort_unstable();
            let mut s = DotStuffer::new();
            let mut out = Vec::new();
            let mut prev = 0;
            for cut in cuts {
                s.feed(&content[prev..cut], &mut out);
                prev = cut;
            }
            s.feed(&content[prev..], &mut out);
            s.finish(&mut out);
            prop_assert_eq!(out, wire);
        }

        #[test]
        fn reply_parser_never_panics(lines in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..20), 1..5)) {
            let mut p = ReplyParser::default();
            for line in &lines {
                if p.push_line(line).is_err() {
                    break;
                }
            }
        }
    }

    fn parse(lines: &[&str]) -> Result<Option<Reply>, wire::ReplyLineError> {
        let mut p = ReplyParser::default();
        let mut last = Ok(None);
        for line in lines {
            last = p.push_line(line.as_bytes());
            if last.is_err() {
                break;
            }
        }
        last
    }

    #[test]
    fn replies_parse() {
        let r = parse(&["250-mx.example Hello", "250-PIPELINING", "250 SIZE 1000"])
            .unwrap()
            .unwrap();
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, ["mx.example Hello", "PIPELINING", "SIZE 1000"]);
        let ext = Extensions::from_ehlo(&r);
        assert!(ext.pipelining && !ext.dsn);
        assert_eq!(ext.size, Some(1000));

        let r = parse(&["550-5.1.1 no such", "550 5.1.1 user"])
            .unwrap()
            .unwrap();
        assert_eq!(r.enhanced.as_deref(), Some("5.1.1"));
        assert_eq!(r.lines, ["no such", "user"]);
        assert_eq!(r.to_string(), "550 5.1.1 no such / user");

        let r = parse(&["250"]).unwrap().unwrap();
        assert_eq!(r.lines, [""]);
        // Class mismatch: not an enhanced code.
        let r = parse(&["250 5.1.1 odd"]).unwrap().unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, ["5.1.1 odd"]);
        let r = parse(&["451 4.3.0"]).unwrap().unwrap();
        assert_eq!(r.enhanced.as_deref(), Some("4.3.0"));
        assert_eq!(r.lines, [""]);
    }

    #[test]
    fn bad_replies_are_errors() {
        assert!(parse(&["hello"]).is_err());
        assert!(parse(&["25"]).is_err());
        assert!(parse(&["250x"]).is_err());
        assert!(parse(&["150 too low"]).is_err());
        assert!(parse(&["250-a", "251 b"]).is_err());
    }

    fn env(from: &str, to: &[&str]) -> Envelope {
        Envelope {
            reverse_path: from.into(),
            mail_params: vec![],
            recipients: to
                .iter()
                .map(|m| Recipient {
                    mailbox: m.to_string(),
                    params: vec![],
                })
                .collect(),
        }
    }

    #[test]
    fn plan_drops_and_passes_params() {
        let mut e = env("a@x", &["b@y"]);
        e.mail_params = vec![
            Param::new("BODY", Some("8BITMIME")),
            Param::new("RET", Some("hdrs")),
            Param::new("ENVID", Some("QQ+2B1")),
            Param::new("AUTH", Some("<>")),
        ];
        e.recipients[0].params = vec![
            Param::new("NOTIFY", Some("failure,delay")),
            Param::new("ORCPT", Some("rfc822;b@y")),
            Param::new("XFOO", None),
        ];
        let all = Extensions {
            dsn: true,
            size: Some(0),
            ..Extensions::default()
        };
        let p = plan_transaction(&all, &e, b"Subject: x\r\n\r\nhi\r\n").unwrap();
        assert_eq!(
            String::from_utf8(p.mail).unwrap(),
            "MAIL FROM:<a@x> SIZE=18 RET=HDRS ENVID=QQ+2B1\r\n"
        );
        assert_eq!(
            String::from_utf8(p.rcpts[0].clone()).unwrap(),
            "RCPT TO:<b@y> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@y\r\n"
        );
        let p = plan_transaction(&Extensions::default(), &e, b"hi").unwrap();
        assert_eq!(p.mail, b"MAIL FROM:<a@x>\r\n");
        assert_eq!(p.rcpts[0], b"RCPT TO:<b@y>\r\n");
    }

    #[test]
    fn plan_refuses_what_the_server_cannot_carry() {
        let none = Extensions::default();
        let e = env("a@x", &["b@y"]);
        let err = plan_transaction(&none, &e, "caf\u{e9}".as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            RelayError::Incompatible {
                status: "5.6.3",
                ..
            }
        ));
        assert!(err.is_permanent());
        let err = plan_transaction(&none, &env("a@x", &["j\u{fc}rgen@y"]), b"hi").unwrap_err();
        assert!(matches!(
            err,
            RelayError::Incompatible {
                status: "5.6.7",
                ..
            }
        ));
        let mut utf8 = env("a@x", &["b@y"]);
        utf8.mail_params.push(Param::new("SMTPUTF8", None));
        let eight = Extensions {
            eight_bit_mime: true,
            ..Extensions::default()
        };
        let err =
            plan_transaction(&eight, &utf8, "Subject: \u{e9}\r\n\r\nx".as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            RelayError::Incompatible {
                status: "5.6.9",
                ..
            }
        ));
        // UTF-8 only in the body: 8BITMIME is enough.
        let p = plan_transaction(&eight, &utf8, "Subject: e\r\n\r\n\u{e9}".as_bytes()).unwrap();
        assert_eq!(p.mail, b"MAIL FROM:<a@x> BODY=8BITMIME\r\n");
        let small = Extensions {
            size: Some(3),
            ..Extensions::default()
        };
        let err = plan_transaction(&small, &e, b"four").unwrap_err();
        assert!(matches!(
            err,
            RelayError::Incompatible {
                status: "5.3.4",
                ..
            }
        ));
    }

    #[test]
    fn plan_refuses_injection() {
        let none = Extensions::default();
        for bad in ["a@x>\r\nRSET", "a\n@x", "<a@x>"] {
            let err = plan_transaction(&none, &env(bad, &["b@y"]), b"").unwrap_err();
            assert!(matches!(err, RelayError::InvalidEnvelope(_)), "{bad:?}");
            let err = plan_transaction(&none, &env("a@x", &[bad]), b"").unwrap_err();
            assert!(matches!(err, RelayError::InvalidEnvelope(_)), "{bad:?}");
        }
        let err = plan_transaction(&none, &env("a@x", &[]), b"").unwrap_err();
        assert!(matches!(err, RelayError::InvalidEnvelope(_)));
        let mut e = env("", &["b@y"]);
        e.mail_params.push(Param::new("ENVID", Some("a b")));
        let dsn = Extensions {
            dsn: true,
            ..Extensions::default()
        };
        let p = plan_transaction(&dsn, &e, b"").unwrap();
        assert_eq!(p.mail, b"MAIL FROM:<>\r\n");
    }

    #[test]
    fn size_counts_crlf() {
        assert_eq!(crlf_len(b""), 0);
        assert_eq!(crlf_len(b"a\r\nb"), 4);
        assert_eq!(crlf_len(b"a\nb\r"), 6);
        assert_eq!(crlf_len(b"\r\r\n\n"), 6);
    }

    #[test]
    fn header_end_finds_the_blank_line() {
        assert_eq!(header_end(b"A: b\r\n\r\nbody"), 6);
        assert_eq!(header_end(b"A: b\n\nbody"), 5);
        assert_eq!(header_end(b"A: b\r\n"), 6);
        assert_eq!(header_end(b"\r\nbody"), 0);
    }
}
