//! A sans-IO ESMTP server session (RFC 5321): it is fed the bytes a client
//! sent and hands back, one [`Event`] at a time, the replies to write and
//! the questions only the application can answer (sender, each recipient,
//! the finished message). No sockets, no clocks, no tasks: the tokio
//! driver lives in [`crate::serve`].
//!
//! What it speaks: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, VRFY (252),
//! HELP, QUIT and STARTTLS (RFC 3207), with the extensions PIPELINING
//! (RFC 2920), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), SIZE (RFC 1870),
//! ENHANCEDSTATUSCODES (RFC 2034, codes from RFC 3463) and DSN (RFC 3461,
//! whose parameters are checked and passed through). No AUTH, no CHUNKING.
//!
//! Defences built in, so a driver cannot forget them:
//!
//! * message data ends only at `CRLF . CRLF`; a bare LF or bare CR in the
//!   data never ends it and gets the whole message refused (SMTP
//!   smuggling);
//! * bytes pipelined after `STARTTLS` are discarded (CVE-2011-0411) and
//!   the session starts over, as RFC 3207 §4.2 requires;
//! * a command line is bounded ([`MAX_COMMAND_LINE`]) and message content
//!   beyond the size limit is counted, not stored;
//! * after [`SessionConfig::max_errors`] bad commands the session closes
//!   with `421`.
//!
//! Flushing (RFC 2920 §3.2): write the replies of [`Event::Reply`] into a
//! buffer and send it when [`ServerSession::next_event`] returns `None`
//! (the input holds no further complete command), and right away when
//! [`Event::must_flush`] says so (the `354` go-ahead, STARTTLS, QUIT,
//! closing).

use std::collections::VecDeque;

use memchr::{memchr, memchr2};

use crate::{Envelope, Param, Recipient, Reply};

mod data;
mod syntax;

use data::*;
pub use syntax::parse_mt_priority;
use syntax::*;

/// The longest command line accepted, CRLF included. RFC 5321 §4.5.3.1.4
/// says 512 octets, and lets each extension used add to it (SIZE, DSN's
/// `ENVID`/`ORCPT` of up to 100 and 500 characters, SMTPUTF8 addresses);
/// 2048 covers all of them. Longer lines get `500 5.5.2` and are skipped.
pub const MAX_COMMAND_LINE: usize = 2048;

/// RFC 5321 §4.5.3.1.3: a path, angle brackets included, is at most 256
/// octets.
const MAX_PATH: usize = 256;

/// What a session needs to know; the driver builds it from its own
/// configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The name in the greeting, the EHLO reply and the QUIT reply.
    pub hostname: String,
    /// The largest message accepted, in octets after dot-unstuffing;
    /// advertised as `SIZE`.
    pub max_message_bytes: u64,
    /// The most recipients accepted in one transaction; more get
    /// `452 4.5.3` (RFC 5321 §4.5.3.1.10: at least 100).
    pub max_recipients: usize,
    /// Whether STARTTLS is offered (a TLS configuration exists).
    pub starttls_available: bool,
    /// After this many bad commands (syntax and sequence errors, unknown
    /// commands) the session answers `421` and closes; 0: never.
    pub max_errors: usize,
}

impl SessionConfig {
    /// Defaults: 25 MiB messages, 100 recipients, no STARTTLS, close after
    /// 10 bad commands.
    pub fn new(hostname: impl Into<String>) -> SessionConfig {
        SessionConfig {
            hostname: hostname.into(),
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            starttls_available: false,
            max_errors: 10,
        }
    }
}

/// What the application must act on, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write this reply (the session answered a command itself).
    Reply(Reply),
    /// `MAIL FROM` passed the syntax checks: decide with
    /// [`ServerSession::answer`] (2xx starts the transaction). The
    /// reverse path is empty for `<>`.
    MailFrom {
        /// The path without brackets (source route dropped).
        reverse_path: String,
        /// The parameters as the client sent them, all checked.
        params: Vec<Param>,
    },
    /// `RCPT TO` passed the syntax and limit checks: decide with
    /// [`ServerSession::answer`] (2xx adds the recipient). The envelope so
    /// far is [`ServerSession::envelope`].
    RcptTo {
        /// The recipient, parameters checked.
        recipient: Recipient,
    },
    /// The message is complete and clean: spool it, then give the final
    /// reply with [`ServerSession::answer`] (2xx only once it is safe on
    /// disk). The transaction is over whatever the answer.
    Message {
        /// Sender, parameters and accepted recipients.
        envelope: Envelope,
        /// The message exactly: CRLF line endings as sent, dots unstuffed,
        /// the last line's CRLF included, the final `.` line not.
        content: Vec<u8>,
    },
    /// Write this `220`, flush, then start the TLS handshake and call
    /// [`ServerSession::tls_established`]. Anything the client pipelined
    /// after STARTTLS has been discarded.
    StartTls(Reply),
    /// Write this `221`, flush and close.
    Quit(Reply),
    /// Write this `421` (too many errors), flush and close.
    Close(Reply),
}

impl Event {
    /// Whether the output must be flushed right after this event's reply is
    /// written, rather than when the input runs out: the `354` go-ahead
    /// (the client waits for it before sending the message) and the
    /// replies after which the connection is upgraded or closed.
    pub fn must_flush(&self) -> bool {
        match self {
            Event::Reply(reply) => reply.code == 354,
            Event::StartTls(_) | Event::Quit(_) | Event::Close(_) => true,
            Event::MailFrom { .. } | Event::RcptTo { .. } | Event::Message { .. } => false,
        }
    }
}

/// Misuse of a session by the application (never caused by the client).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// [`ServerSession::answer`] was called while no MAIL, RCPT or message
    /// was waiting for an answer.
    #[error("answer() called, but no MAIL, RCPT or message is waiting for one")]
    NothingToAnswer,
}

/// A MAIL that was accepted by the application.
#[derive(Debug, Clone)]
struct Transaction {
    envelope: Envelope,
    smtputf8: bool,
}

/// What the application was asked.
#[derive(Debug)]
enum Question {
    Mail {
        reverse_path: String,
        params: Vec<Param>,
        smtputf8: bool,
    },
    Rcpt(Recipient),
    Message,
}

#[derive(Debug)]
enum Mode {
    /// Reading command lines.
    Command,
    /// Reading message content after `354`.
    Data(DataReader),
    /// An event waits for [`ServerSession::answer`].
    Awaiting(Question),
    /// STARTTLS was accepted; waiting for the handshake.
    AwaitingTls,
    /// QUIT or too many errors: nothing more is read.
    Closed,
}

/// One SMTP server session, from greeting to QUIT.
#[derive(Debug)]
pub struct ServerSession {
    config: SessionConfig,
    /// Unprocessed input; `input[consumed..]` is still to read.
    input: Vec<u8>,
    consumed: usize,
    /// Skipping the rest of an over-long command line.
    skipping_line: bool,
    mode: Mode,
    queued: VecDeque<Event>,
    helo: Option<String>,
    transaction: Option<Transaction>,
    tls: bool,
    errors: usize,
}

impl ServerSession {
    /// A new session and the `220` greeting to send first.
    pub fn new(config: &SessionConfig) -> (ServerSession, Reply) {
        let greeting = Reply::new(
            220,
            None,
            format!("{} ESMTP deepmail ready", config.hostname),
        );
        let session = ServerSession {
            config: config.clone(),
            input: Vec::new(),
            consumed: 0,
            skipping_line: false,
            mode: Mode::Command,
            queued: VecDeque::new(),
            helo: None,
            transaction: None,
            tls: false,
            errors: 0,
        };
        (session, greeting)
    }

    /// Buffer bytes received from the client. Ignored once the session is
    /// closed or waits for a TLS handshake (plaintext injected after
    /// STARTTLS). Call [`ServerSession::next_event`] until it returns
    /// `None` before feeding more: the buffer then holds at most one
    /// incomplete command line.
    pub fn feed(&mut self, bytes: &[u8]) {
        if matches!(self.mode, Mode::Closed | Mode::AwaitingTls) {
            return;
        }
        if self.consumed > 0 {
            self.input.drain(..self.consumed);
            self.consumed = 0;
        }
        self.input.extend_from_slice(bytes);
    }

    /// The next thing to act on, or `None` when more input is needed (or
    /// an answer, a TLS handshake, or nothing at all once closed).
    pub fn next_event(&mut self) -> Option<Event> {
        if let Some(event) = self.queued.pop_front() {
            return Some(event);
        }
        match self.mode {
            Mode::Command => self.next_command(),
            Mode::Data(_) => self.next_data(),
            Mode::Awaiting(_) | Mode::AwaitingTls | Mode::Closed => None,
        }
    }

    /// The application's answer to [`Event::MailFrom`], [`Event::RcptTo`]
    /// or [`Event::Message`]. It comes back as the next
    /// [`Event::Reply`], so every reply is written in one place.
    pub fn answer(&mut self, reply: Reply) -> Result<(), SessionError> {
        if !matches!(self.mode, Mode::Awaiting(_)) {
            return Err(SessionError::NothingToAnswer);
        }
        let Mode::Awaiting(question) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return Err(SessionError::NothingToAnswer);
        };
        let accepted = reply.is_positive();
        match question {
            Question::Mail {
                reverse_path,
                params,
                smtputf8,
            } => {
                if accepted {
                    self.transaction = Some(Transaction {
                        envelope: Envelope {
                            reverse_path,
                            mail_params: params,
                            recipients: Vec::new(),
                        },
                        smtputf8,
                    });
                }
            }
            Question::Rcpt(recipient) => {
                if accepted {
                    if let Some(t) = self.transaction.as_mut() {
                        t.envelope.recipients.push(recipient);
                    }
                }
            }
            Question::Message => self.transaction = None,
        }
        self.queued.push_back(Event::Reply(reply));
        Ok(())
    }

    /// The TLS handshake after [`Event::StartTls`] succeeded: the session
    /// continues encrypted, back in the state before EHLO.
    pub fn tls_established(&mut self) {
        if matches!(self.mode, Mode::AwaitingTls) {
            self.mode = Mode::Command;
            self.tls = true;
        }
    }

    /// The name the client gave in EHLO/HELO (cleared by STARTTLS).
    pub fn helo(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// The envelope of the transaction in progress, if MAIL was accepted.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.transaction.as_ref().map(|t| &t.envelope)
    }

    /// Whether the connection is encrypted (after a STARTTLS).
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Whether message content is being read (the driver uses the longer
    /// data timeout, RFC 5321 §4.5.3.2).
    pub fn is_receiving_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_))
    }

    /// Whether no transaction is in progress and the session waits for a
    /// command: a good moment to close for shutdown.
    pub fn is_idle(&self) -> bool {
        matches!(self.mode, Mode::Command) && self.transaction.is_none()
    }

    /// Whether QUIT or the error limit ended the session.
    pub fn is_closed(&self) -> bool {
        matches!(self.mode, Mode::Closed)
    }

    // ---- command mode ----------------------------------------------------

    fn next_command(&mut self) -> Option<Event> {
        loop {
            let pending = &self.input[self.consumed..];
            if self.skipping_line {
                match memchr(b'\n', pending) {
                    Some(i) => {
                        self.consumed += i + 1;
                        self.skipping_line = false;
                        continue;
                    }
                    None => {
                        self.consumed = self.input.len();
                        return None;
                    }
                }
            }
            let Some(lf) = memchr(b'\n', pending) else {
                if pending.len() > MAX_COMMAND_LINE {
                    self.consumed = self.input.len();
                    self.skipping_line = true;
                    return Some(self.line_too_long());
                }
                return None;
            };
            let start = self.consumed;
            self.consumed += lf + 1;
            if lf + 1 > MAX_COMMAND_LINE {
                return Some(self.line_too_long());
            }
            let mut end = start + lf;
            if end > start && self.input[end - 1] == b'\r' {
                end -= 1;
            }
            let line = self.input[start..end].to_vec();
            return Some(self.command(&line));
        }
    }

    fn line_too_long(&mut self) -> Event {
        self.error(Reply::new(
            500,
            Some("5.5.2"),
            format!("line too long (the limit is {MAX_COMMAND_LINE} octets)"),
        ))
    }

    /// Count a bad command; past the limit, queue the `421`.
    fn error(&mut self, reply: Reply) -> Event {
        self.errors += 1;
        if self.config.max_errors > 0 && self.errors >= self.config.max_errors {
            self.mode = Mode::Closed;
            self.queued.push_back(Event::Close(Reply::new(
                421,
                Some("4.7.0"),
                format!(
                    "{} too many errors, closing connection",
                    self.config.hostname
                ),
            )));
        }
        Event::Reply(reply)
    }

    fn command(&mut self, line: &[u8]) -> Event {
        if let Some(bad) = line.iter().position(|&b| b < 0x20 || b == 0x7f) {
            let what = match line[bad] {
                b'\r' => "bare CR".to_string(),
                b => format!("control character 0x{b:02x}"),
            };
            return self.error(Reply::new(
                500,
                Some("5.5.2"),
                format!("{what} at column {} of the command line", bad + 1),
            ));
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return self.error(Reply::new(
                500,
                Some("5.5.2"),
                "command line is not valid UTF-8",
            ));
        };
        let (verb, arg) = match line.find(' ') {
            Some(i) => (&line[..i], &line[i + 1..]),
            None => (line, ""),
        };
        let verb = verb.to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => self.hello(arg, true),
            "HELO" => self.hello(arg, false),
            "MAIL" => self.mail(arg),
            "RCPT" => self.rcpt(arg),
            "DATA" => self.data(arg),
            "RSET" => {
                if !arg.trim().is_empty() {
                    return self.error(syntax("RSET"));
                }
                self.transaction = None;
                ok("OK")
            }
            "NOOP" => ok("OK"),
            "QUIT" => {
                self.mode = Mode::Closed;
                Event::Quit(Reply::new(
                    221,
                    Some("2.0.0"),
                    format!("{} closing connection", self.config.hostname),
                ))
            }
            "VRFY" => {
                if arg.trim().is_empty() {
                    return self.error(syntax("VRFY <address>"));
                }
                Event::Reply(Reply::new(
                    252,
                    Some("2.5.0"),
                    "cannot VRFY user, but will accept message and attempt delivery",
                ))
            }
            "HELP" => Event::Reply(Reply {
                code: 214,
                enhanced: Some("2.0.0".into()),
                lines: vec![
                    "commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT STARTTLS".into(),
                    "see RFC 5321".into(),
                ],
            }),
            "STARTTLS" => self.starttls(arg),
            "AUTH" | "BDAT" | "EXPN" | "ETRN" | "TURN" | "ATRN" | "BURL" => self.error(Reply::new(
                502,
                Some("5.5.1"),
                format!("{verb} not implemented"),
            )),
            "" => self.error(Reply::new(500, Some("5.5.2"), "empty command line")),
            _ => {
                let shown: String = verb.chars().take(16).collect();
                self.error(Reply::new(
                    500,
                    Some("5.5.1"),
                    format!("unknown command {shown}"),
                ))
            }
        }
    }

    fn hello(&mut self, arg: &str, extended: bool) -> Event {
        // Leniently, the first word: some clients add text after the name.
        let name = arg.split(' ').find(|w| !w.is_empty()).unwrap_or("");
        if name.is_empty() {
            let verb = if extended { "EHLO" } else { "HELO" };
            return self.error(syntax(&format!("{verb} <your hostname>")));
        }
        // RFC 5321 §4.1.4: EHLO/HELO also resets the transaction.
        self.transaction = None;
        self.helo = Some(name.to_string());
        let host = &self.config.hostname;
        // RFC 2034 §4: no enhanced codes on greetings and EHLO lines.
        if !extended {
            return Event::Reply(Reply::new(250, None, host.clone()));
        }
        let mut lines = vec![
            format!("{host} greets {name}"),
            "PIPELINING".into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            format!("SIZE {}", self.config.max_message_bytes),
            "ENHANCEDSTATUSCODES".into(),
            "DSN".into(),
            // RFC 6710; no policy name: the default, MIXER.
            "MT-PRIORITY".into(),
        ];
        if self.config.starttls_available && !self.tls {
            lines.push("STARTTLS".into());
        }
        Event::Reply(Reply {
            code: 250,
            enhanced: None,
            lines,
        })
    }

    fn mail(&mut self, arg: &str) -> Event {
        if self.helo.is_none() {
            return self.error(sequence("send EHLO or HELO first"));
        }
        if self.transaction.is_some() {
            return self.error(sequence("sender already given (send RSET to start over)"));
        }
        let Some(rest) = strip_prefix_ignore_case(arg, "FROM:") else {
            return self.error(syntax("MAIL FROM:<address> [parameters]"));
        };
        let (path, params) = match split_path(rest) {
            Ok(split) => split,
            Err(why) => {
                return self.error(Reply::new(501, Some("5.5.4"), format!("MAIL FROM: {why}")))
            }
        };
        let reverse_path = match strip_source_route(path) {
            Ok(p) => p,
            Err(why) => return self.error(Reply::new(501, Some("5.1.7"), why.to_string())),
        };
        let params = match parse_params(params) {
            Ok(p) => p,
            Err(reply) => return self.error(reply),
        };
        let mut smtputf8 = false;
        if let Err(reply) = self.check_mail_params(&params, &mut smtputf8) {
            return self.error(reply);
        }
        if !reverse_path.is_empty() {
            if let Err(why) = check_mailbox(reverse_path) {
                return self.error(Reply::new(
                    501,
                    Some("5.1.7"),
                    format!("bad sender address syntax: {why}"),
                ));
            }
        }
        if !reverse_path.is_ascii() && !smtputf8 {
            return self.error(Reply::new(
                553,
                Some("5.6.7"),
                "non-ASCII sender address needs the SMTPUTF8 parameter",
            ));
        }
        let reverse_path = reverse_path.to_string();
        self.mode = Mode::Awaiting(Question::Mail {
            reverse_path: reverse_path.clone(),
            params: params.clone(),
            smtputf8,
        });
        Event::MailFrom {
            reverse_path,
            params,
        }
    }

    fn check_mail_params(&self, params: &[Param], smtputf8: &mut bool) -> Result<(), Reply> {
        for p in params {
            let value = p.value.as_deref();
            match p.keyword.to_ascii_uppercase().as_str() {
                "SIZE" => {
                    let Some(v) = value.filter(|v| {
                        !v.is_empty() && v.len() <= 20 && v.bytes().all(|b| b.is_ascii_digit())
                    }) else {
                        return Err(bad_param("SIZE", "a number of octets"));
                    };
                    // A 20-digit number may not fit: it is too big anyway.
                    let size = v.parse::<u64>().unwrap_or(u64::MAX);
                    if size > self.config.max_message_bytes {
                        return Err(Reply::new(
                            552,
                            Some("5.3.4"),
                            format!(
                                "message size {size} exceeds the limit of {} octets",
                                self.config.max_message_bytes
                            ),
                        ));
                    }
                }
                "BODY" => match value.map(str::to_ascii_uppercase).as_deref() {
                    Some("7BIT" | "8BITMIME") => {}
                    Some("BINARYMIME") => {
                        return Err(Reply::new(
                            555,
                            Some("5.5.4"),
                            "BODY=BINARYMIME needs CHUNKING, which is not offered",
                        ))
                    }
                    _ => return Err(bad_param("BODY", "7BIT or 8BITMIME")),
                },
                "SMTPUTF8" => {
                    if value.is_some() {
                        return Err(bad_param("SMTPUTF8", "no value"));
                    }
                    *smtputf8 = true;
                }
                "RET" => match value.map(str::to_ascii_uppercase).as_deref() {
                    Some("FULL" | "HDRS") => {}
                    _ => return Err(bad_param("RET", "FULL or HDRS")),
                },
                "ENVID" => {
                    // RFC 3461 §4.4: xtext, at most 100 characters.
                    if !value.is_some_and(|v| v.len() <= 100 && is_xtext(v)) {
                        return Err(bad_param("ENVID", "xtext of at most 100 characters"));
                    }
                }
                "MT-PRIORITY" => {
                    if value.and_then(parse_mt_priority).is_none() {
                        return Err(bad_param("MT-PRIORITY", "a priority from -9 to 9"));
                    }
                }
                _ => {
                    return Err(unknown_param(
                        "MAIL",
                        &p.keyword,
                        "SIZE BODY SMTPUTF8 RET ENVID MT-PRIORITY",
                    ))
                }
            }
        }
        Ok(())
    }

    fn rcpt(&mut self, arg: &str) -> Event {
        if self.helo.is_none() {
            return self.error(sequence("send EHLO or HELO first"));
        }
        let Some(transaction) = &self.transaction else {
            return self.error(sequence("need MAIL before RCPT"));
        };
        let smtputf8 = transaction.smtputf8;
        let count = transaction.envelope.recipients.len();
        let Some(rest) = strip_prefix_ignore_case(arg, "TO:") else {
            return self.error(syntax("RCPT TO:<address> [parameters]"));
        };
        let (path, params) = match split_path(rest) {
            Ok(split) => split,
            Err(why) => {
                return self.error(Reply::new(501, Some("5.5.4"), format!("RCPT TO: {why}")))
            }
        };
        let mailbox = match strip_source_route(path) {
            Ok(m) => m,
            Err(why) => return self.error(Reply::new(501, Some("5.1.3"), why.to_string())),
        };
        if mailbox.is_empty() {
            return self.error(Reply::new(
                501,
                Some("5.1.3"),
                "the null path <> is not a recipient",
            ));
        }
        let params = match parse_params(params) {
            Ok(p) => p,
            Err(reply) => return self.error(reply),
        };
        if let Err(reply) = check_rcpt_params(&params) {
            return self.error(reply);
        }
        // RFC 5321 §4.5.1: <postmaster> without a domain must be accepted.
        if !mailbox.eq_ignore_ascii_case("postmaster") {
            if let Err(why) = check_mailbox(mailbox) {
                return self.error(Reply::new(
                    501,
                    Some("5.1.3"),
                    format!("bad recipient address syntax: {why}"),
                ));
            }
        }
        if !mailbox.is_ascii() && !smtputf8 {
            return self.error(Reply::new(
                553,
                Some("5.6.7"),
                "non-ASCII recipient address needs SMTPUTF8 on MAIL FROM",
            ));
        }
        if count >= self.config.max_recipients {
            return Event::Reply(Reply::new(
                452,
                Some("4.5.3"),
                format!(
                    "too many recipients (at most {} per message)",
                    self.config.max_recipients
                ),
            ));
        }
        let recipient = Recipient {
            mailbox: mailbox.to_string(),
            params,
        };
        self.mode = Mode::Awaiting(Question::Rcpt(recipient.clone()));
        Event::RcptTo { recipient }
    }

    fn data(&mut self, arg: &str) -> Event {
        if !arg.trim().is_empty() {
            return self.error(syntax("DATA (no arguments)"));
        }
        if self.helo.is_none() {
            return self.error(sequence("send EHLO or HELO first"));
        }
        let Some(transaction) = &self.transaction else {
            return self.error(sequence("need MAIL and RCPT before DATA"));
        };
        if transaction.envelope.recipients.is_empty() {
            return self.error(Reply::new(554, Some("5.5.1"), "no valid recipients"));
        }
        self.mode = Mode::Data(DataReader::new(self.config.max_message_bytes));
        Event::Reply(Reply::new(354, None, "end data with <CR><LF>.<CR><LF>"))
    }

    fn starttls(&mut self, arg: &str) -> Event {
        if !self.config.starttls_available {
            return self.error(Reply::new(502, Some("5.5.1"), "STARTTLS not available"));
        }
        if self.tls {
            return self.error(sequence("TLS already active"));
        }
        if !arg.trim().is_empty() {
            return self.error(syntax("STARTTLS (no arguments)"));
        }
        if self.helo.is_none() {
            return self.error(sequence("send EHLO first"));
        }
        if self.transaction.is_some() {
            return self.error(sequence("mail transaction in progress (send RSET first)"));
        }
        // RFC 3207 §4.2: forget everything the client said before; drop
        // whatever it pipelined after STARTTLS (CVE-2011-0411).
        self.input.clear();
        self.consumed = 0;
        self.skipping_line = false;
        self.helo = None;
        self.transaction = None;
        self.mode = Mode::AwaitingTls;
        Event::StartTls(Reply::new(220, Some("2.0.0"), "ready to start TLS"))
    }

    // ---- data mode -------------------------------------------------------

    fn next_data(&mut self) -> Option<Event> {
        let Mode::Data(reader) = &mut self.mode else {
            return None;
        };
        let (used, done) = reader.read(&self.input[self.consumed..]);
        self.consumed += used;
        if !done {
            return None;
        }
        let Mode::Data(reader) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return None;
        };
        let refusal = if reader.bare_lf {
            Some(Reply::new(
                554,
                Some("5.6.0"),
                "bare LF in message data (lines must end with CRLF); message refused",
            ))
        } else if reader.bare_cr {
            Some(Reply::new(
                554,
                Some("5.6.0"),
                "bare CR in message data (lines must end with CRLF); message refused",
            ))
        } else if reader.oversize {
            Some(Reply::new(
                552,
                Some("5.3.4"),
                format!(
                    "message of {} octets exceeds the limit of {} octets",
                    reader.size, self.config.max_message_bytes
                ),
            ))
        } else {
            None
        };
        if let Some(reply) = refusal {
            self.transaction = None;
            return Some(Event::Reply(reply));
        }
        let envelope = match self.transaction.as_mut() {
            Some(t) => std::mem::take(&mut t.envelope),
            None => Envelope::default(),
        };
        self.mode = Mode::Awaiting(Question::Message);
        Some(Event::Message {
            envelope,
            content: reader.content,
        })
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> SessionConfig {
        SessionConfig {
            hostname: "mx.moon.example".into(),
            max_message_bytes: 1000,
            max_recipients: 3,
            starttls_available: true,
            max_errors: 5,
        }
    }

    /// The application in these tests: accept every sender, every
    /// recipient except `nobody@…`, and every message.
    fn accept(event: &Event) -> Reply {
        match event {
            Event::RcptTo { recipient } if recipient.mailbox.starts_with("nobody@") => {
                Reply::new(550, Some("5.1.1"), "no such user")
            }
            Event::Message { .. } => Reply::new(250, Some("2.0.0"), "queued"),
            _ => Reply::new(250, Some("2.1.0"), "OK"),
        }
    }

    /// Drain all events, answering questions with [`accept`].
    fn drain(session: &mut ServerSession) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = session.next_event() {
            let question = matches!(
                event,
                Event::MailFrom { .. } | Event::RcptTo { .. } | Event::Message { .. }
            );
            let reply = accept(&event);
            events.push(event);
            if question {
                session.answer(reply).unwrap();
            }
        }
        events
    }

    fn session() -> ServerSession {
        ServerSession::new(&config()).0
    }

    fn run(session: &mut ServerSession, input: &[u8]) -> Vec<String> {
        session.feed(input);
        transcript(&drain(session))
    }

    /// One short line per event: `250 2.1.0`, `MAIL <a@b>`, `RCPT <c@d>`,
    /// `MESSAGE 42`, `STARTTLS`, `QUIT`, `CLOSE 421`.
    fn transcript(events: &[Event]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                Event::Reply(r) => match &r.enhanced {
                    Some(enh) => format!("{} {enh}", r.code),
                    None => r.code.to_string(),
                },
                Event::MailFrom { reverse_path, .. } => format!("MAIL <{reverse_path}>"),
                Event::RcptTo { recipient } => format!("RCPT <{}>", recipient.mailbox),
                Event::Message { content, .. } => format!("MESSAGE {}", content.len()),
                Event::StartTls(_) => "STARTTLS".into(),
                Event::Quit(_) => "QUIT".into(),
                Event::Close(r) => format!("CLOSE {}", r.code),
            })
            .collect()
    }

    fn reply_of(e: &Event) -> &Reply {
        match e {
            Event::Reply(r) | Event::StartTls(r) | Event::Quit(r) | Event::Close(r) => r,
            other => panic!("not a reply: {other:?}"),
        }
    }

    fn ready() -> ServerSession {
        let mut s = session();
        assert_eq!(run(&mut s, b"EHLO earth.example\r\n"), ["250"]);
        s
    }

    #[test]
    fn greeting_names_the_host() {
        let (_, greeting) = ServerSession::new(&config());
        assert_eq!(
            greeting.to_wire(),
            b"220 mx.moon.example ESMTP deepmail ready\r\n"
        );
    }

    #[test]
    fn pipelined_transaction_in_one_feed() {
        let mut s = session();
        s.feed(
            b"EHLO earth.example\r\nMAIL FROM:<ann@earth.example> BODY=8BITMIME SIZE=100\r\n\
              RCPT TO:<bob@moon.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@moon.example\r\n\
              RCPT TO:<nobody@moon.example>\r\nRCPT TO:<cy@moon.example>\r\nDATA\r\n",
        );
        let events = drain(&mut s);
        assert_eq!(
            transcript(&events),
            [
                "250",
                "MAIL <ann@earth.example>",
                "250 2.1.0",
                "RCPT <bob@moon.example>",
                "250 2.1.0",
                "RCPT <nobody@moon.example>",
                "550 5.1.1",
                "RCPT <cy@moon.example>",
                "250 2.1.0",
                "354",
            ]
        );
        assert!(events.last().is_some_and(Event::must_flush));
        assert!(s.is_receiving_data());
        s.feed(b"Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n");
        let events = drain(&mut s);
        let Event::Message { envelope, content } = &events[0] else {
            panic!("expected the message: {events:?}");
        };
        assert_eq!(content, b"Subject: hi\r\n\r\n.dot\r\nbody\r\n");
        assert_eq!(envelope.reverse_path, "ann@earth.example");
        assert_eq!(
            envelope.mail_params,
            [
                Param::new("BODY", Some("8BITMIME")),
                Param::new("SIZE", Some("100"))
            ]
        );
        let mailboxes: Vec<_> = envelope
            .recipients
            .iter()
            .map(|r| r.mailbox.as_str())
            .collect();
        assert_eq!(mailboxes, ["bob@moon.example", "cy@moon.example"]);
        assert_eq!(
            envelope.recipients[0].params,
            [
                Param::new("NOTIFY", Some("SUCCESS,FAILURE")),
                Param::new("ORCPT", Some("rfc822;bob@moon.example"))
            ]
        );
        assert_eq!(transcript(&events[1..]), ["250 2.0.0", "QUIT"]);
        assert!(s.is_closed());
        assert_eq!(run(&mut s, b"NOOP\r\n"), Vec::<String>::new());
    }

    #[test]
    fn ehlo_advertises_extensions() {
        let mut s = session();
        s.feed(b"EHLO earth.example\r\n");
        let events = drain(&mut s);
        assert_eq!(
            reply_of(&events[0]).to_wire(),
            b"250-mx.moon.example greets earth.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
              250-SMTPUTF8\r\n250-SIZE 1000\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n\
              250-MT-PRIORITY\r\n250 STARTTLS\r\n"
        );
        let mut plain = ServerSession::new(&SessionConfig {
            starttls_available: false,
            ..config()
        })
        .0;
        plain.feed(b"ehlo earth.example\r\n");
        let events = drain(&mut plain);
        assert!(!reply_of(&events[0]).lines.contains(&"STARTTLS".to_string()));
        assert_eq!(run(&mut plain, b"STARTTLS\r\n"), ["502 5.5.1"]);
    }

    #[test]
    fn helo_works_and_sets_the_name() {
        let mut s = session();
        s.feed(b"HELO earth.example\r\n");
        let events = drain(&mut s);
        assert_eq!(reply_of(&events[0]).to_wire(), b"250 mx.moon.example\r\n");
        assert_eq!(s.helo(), Some("earth.example"));
        assert_eq!(run(&mut s, b"MAIL FROM:<>\r\n"), ["MAIL <>", "250 2.1.0"]);
        assert_eq!(s.envelope().map(|e| e.reverse_path.as_str()), Some(""));
    }

    #[test]
    fn commands_out_of_sequence() {
        let mut s = ServerSession::new(&SessionConfig {
            max_errors: 0,
            ..config()
        })
        .0;
        assert_eq!(run(&mut s, b"MAIL FROM:<a@b.example>\r\n"), ["503 5.5.1"]);
        assert_eq!(
            run(&mut s, b"HELO x\r\nRCPT TO:<a@b.example>\r\n"),
            ["250", "503 5.5.1"]
        );
        assert_eq!(run(&mut s, b"DATA\r\n"), ["503 5.5.1"]);
        assert_eq!(
            run(
                &mut s,
                b"MAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n"
            ),
            ["MAIL <a@b.example>", "250 2.1.0", "503 5.5.1"]
        );
        // Only rejected recipients: DATA is refused.
        assert_eq!(
            run(&mut s, b"RCPT TO:<nobody@moon.example>\r\nDATA\r\n"),
            ["RCPT <nobody@moon.example>", "550 5.1.1", "554 5.5.1"]
        );
    }

    #[test]
    fn sender_refused_by_the_application_starts_no_transaction() {
        let mut s = ready();
        s.feed(b"MAIL FROM:<spam@earth.example>\r\nRCPT TO:<bob@moon.example>\r\n");
        assert!(matches!(s.next_event(), Some(Event::MailFrom { .. })));
        // Unanswered: nothing more until the answer.
        assert_eq!(s.next_event(), None);
        s.answer(Reply::new(550, Some("5.7.1"), "go away")).unwrap();
        assert_eq!(transcript(&drain(&mut s)), ["550 5.7.1", "503 5.5.1"]);
        assert_eq!(
            s.answer(Reply::new(250, None, "?")),
            Err(SessionError::NothingToAnswer)
        );
    }

    #[test]
    fn mt_priority_values() {
        assert_eq!(parse_mt_priority("9"), Some(9));
        assert_eq!(parse_mt_priority("+4"), Some(4));
        assert_eq!(parse_mt_priority("-9"), Some(-9));
        assert_eq!(parse_mt_priority("0"), Some(0));
        for bad in ["", "10", "-", "+-1", "a", "--1", "١"] {
            assert_eq!(parse_mt_priority(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn mail_parameters() {
        let cases: &[(&str, &str)] = &[
            ("MAIL FROM:<a@b.example> FOO=1", "555 5.5.4"),
            ("MAIL FROM:<a@b.example> AUTH=<>", "555 5.5.4"),
            ("MAIL FROM:<a@b.example> BODY=BINARYMIME", "555 5.5.4"),
            ("MAIL FROM:<a@b.example> BODY=9BIT", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> SIZE=1001", "552 5.3.4"),
            (
                "MAIL FROM:<a@b.example> SIZE=99999999999999999999",
                "552 5.3.4",
            ),
            ("MAIL FROM:<a@b.example> SIZE=12k", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> SIZE", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> SMTPUTF8=yes", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> RET=ALL", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> ENVID=a+zz", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> SIZE=1 SIZE=2", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> MT-PRIORITY=10", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> MT-PRIORITY=+", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> MT-PRIORITY", "501 5.5.4"),
            ("MAIL FROM:<a@b.example> =x", "501 5.5.4"),
            ("MAIL FROM:<a@b.example>SIZE=1", "501 5.5.4"),
            ("MAIL FROM:a@b.example", "501 5.5.4"),
            ("MAIL FROM:<a@b.example", "501 5.5.4"),
            ("MAIL TO:<a@b.example>", "501 5.5.4"),
            ("MAIL FROM:<a b@c.example>", "501 5.1.7"),
            ("MAIL FROM:<ab.example>", "501 5.1.7"),
            ("MAIL FROM:<a@-b.example>", "501 5.1.7"),
            ("MAIL FROM:<ännä@b.example>", "553 5.6.7"),
        ];
        for (command, expected) in cases {
            let mut s = ready();
            let input = format!("{command}\r\n");
            assert_eq!(run(&mut s, input.as_bytes()), [*expected], "{command}");
            assert!(s.envelope().is_none());
        }
        let mut s = ready();
        s.feed(
            b"MAIL FROM:<a@b.example> body=7bit SIZE=1000 SMTPUTF8 RET=HDRS ENVID=QQ+2B314159 MT-PRIORITY=-3\r\n",
        );
        let events = drain(&mut s);
        assert_eq!(
            events[0],
            Event::MailFrom {
                reverse_path: "a@b.example".into(),
                params: vec![
                    Param::new("body", Some("7bit")),
                    Param::new("SIZE", Some("1000")),
                    Param::new("SMTPUTF8", None),
                    Param::new("RET", Some("HDRS")),
                    Param::new("ENVID", Some("QQ+2B314159")),
                    Param::new("MT-PRIORITY", Some("-3")),
                ],
            }
        );
        // A space after the colon is tolerated, UTF-8 with SMTPUTF8 too.
        let mut s = ready();
        assert_eq!(
            run(
                &mut s,
                "MAIL FROM: <ännä@b.example> SMTPUTF8\r\n".as_bytes()
            ),
            ["MAIL <ännä@b.example>", "250 2.1.0"]
        );
        assert_eq!(
            run(&mut s, "RCPT TO:<jürgen@möön.example>\r\n".as_bytes()),
            ["RCPT <jürgen@möön.example>", "250 2.1.0"]
        );
    }

    #[test]
    fn rcpt_parameters_and_addresses() {
        let cases: &[(&str, &str)] = &[
            ("RCPT TO:<b@moon.example> FOO", "555 5.5.4"),
            ("RCPT TO:<b@moon.example> NOTIFY=NEVER,SUCCESS", "501 5.5.4"),
            ("RCPT TO:<b@moon.example> NOTIFY=SOMETIMES", "501 5.5.4"),
            ("RCPT TO:<b@moon.example> NOTIFY=DELAY,DELAY", "501 5.5.4"),
            ("RCPT TO:<b@moon.example> ORCPT=b@moon.example", "501 5.5.4"),
            ("RCPT TO:<b@moon.example> ORCPT=rfc822;", "501 5.5.4"),
            ("RCPT TO:<>", "501 5.1.3"),
            ("RCPT TO:<b@>", "501 5.1.3"),
            ("RCPT TO:<b@moon..example>", "501 5.1.3"),
            ("RCPT TO:<@-x:b@moon.example>", "501 5.1.3"),
            ("RCPT FROM:<b@moon.example>", "501 5.5.4"),
            ("RCPT TO:<bö@moon.example>", "553 5.6.7"),
        ];
        for (command, expected) in cases {
            let mut s = ready();
            s.feed(b"MAIL FROM:<a@earth.example>\r\n");
            drain(&mut s);
            let input = format!("{command}\r\n");
            assert_eq!(run(&mut s, input.as_bytes()), [*expected], "{command}");
        }
        let mut s = ready();
        s.feed(
            b"MAIL FROM:<@relay.example,@hop.example:a@earth.example>\r\n\
              RCPT TO:<Postmaster>\r\nRCPT TO:<\"odd>name\"@moon.example> notify=never\r\n\
              RCPT TO:<c@[192.0.2.1]>\r\n",
        );
        let events = drain(&mut s);
        assert_eq!(
            transcript(&events),
            [
                "MAIL <a@earth.example>",
                "250 2.1.0",
                "RCPT <Postmaster>",
                "250 2.1.0",
                "RCPT <\"odd>name\"@moon.example>",
                "250 2.1.0",
                "RCPT <c@[192.0.2.1]>",
                "250 2.1.0",
            ]
        );
    }

    #[test]
    fn too_many_recipients() {
        let mut s = ready();
        let t = run(
            &mut s,
            b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b1@moon.example>\r\n\
              RCPT TO:<b2@moon.example>\r\nRCPT TO:<nobody@moon.example>\r\n\
              RCPT TO:<b3@moon.example>\r\nRCPT TO:<b4@moon.example>\r\n",
        );
        assert_eq!(t.last().map(String::as_str), Some("452 4.5.3"));
        assert_eq!(s.envelope().map(|e| e.recipients.len()), Some(3));
        // Not a bad command: the error count is untouched.
        assert_eq!(s.errors, 0);
    }

    #[test]
    fn simple_commands() {
        let mut s = session();
        assert_eq!(
            run(&mut s, b"NOOP\r\nnoop hello\r\n"),
            ["250 2.0.0", "250 2.0.0"]
        );
        assert_eq!(run(&mut s, b"VRFY bob\r\n"), ["252 2.5.0"]);
        assert_eq!(run(&mut s, b"HELP\r\n"), ["214 2.0.0"]);
        assert_eq!(
            run(&mut s, b"AUTH PLAIN AGFuYQBzZWNyZXQ=\r\nBDAT 10 LAST\r\n"),
            ["502 5.5.1", "502 5.5.1"]
        );
        assert_eq!(run(&mut s, b"XYZZY\r\n"), ["500 5.5.1"]);
        assert_eq!(s.errors, 3);
        let mut s = session();
        assert_eq!(run(&mut s, b"QUIT\r\nNOOP\r\n"), ["QUIT"]);
    }

    #[test]
    fn rset_clears_the_transaction() {
        let mut s = ready();
        let t = run(
            &mut s,
            b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nRSET\r\n\
              RCPT TO:<b@moon.example>\r\nMAIL FROM:<c@earth.example>\r\n",
        );
        assert_eq!(
            t,
            [
                "MAIL <a@earth.example>",
                "250 2.1.0",
                "RCPT <b@moon.example>",
                "250 2.1.0",
                "250 2.0.0",
                "503 5.5.1",
                "MAIL <c@earth.example>",
                "250 2.1.0",
            ]
        );
        // EHLO resets too.
        assert_eq!(
            run(&mut s, b"EHLO again\r\nRCPT TO:<b@moon.example>\r\n"),
            ["250", "503 5.5.1"]
        );
    }

    #[test]
    fn long_lines_are_refused_and_skipped() {
        let mut s = ready();
        let mut line = b"NOOP ".to_vec();
        line.resize(MAX_COMMAND_LINE + 10, b'x');
        line.extend_from_slice(b"\r\nNOOP\r\n");
        assert_eq!(run(&mut s, &line), ["500 5.5.2", "250 2.0.0"]);
        // The same without the end in sight: refused before it ends, and
        // nothing is buffered while the rest streams past.
        let mut s = ready();
        assert_eq!(run(&mut s, &[b'x'; MAX_COMMAND_LINE + 1]), ["500 5.5.2"]);
        for _ in 0..100 {
            assert!(run(&mut s, &[b'y'; 4096]).is_empty());
            assert!(s.input.len() <= 4096);
        }
        assert_eq!(run(&mut s, b"yyy\r\nNOOP\r\n"), ["250 2.0.0"]);
        // A line of exactly the limit is fine.
        let mut s = ready();
        let mut line = b"NOOP ".to_vec();
        line.resize(MAX_COMMAND_LINE - 2, b'x');
        line.extend_from_slice(b"\r\n");
        assert_eq!(run(&mut s, &line), ["250 2.0.0"]);
    }

    #[test]
    fn bad_bytes_in_commands() {
        let mut s = ready();
        assert_eq!(run(&mut s, b"NOOP\0\r\n"), ["500 5.5.2"]);
        assert_eq!(run(&mut s, b"NO\rOP\r\n"), ["500 5.5.2"]);
        assert_eq!(run(&mut s, b"NOOP \xff\r\n"), ["500 5.5.2"]);
        assert_eq!(run(&mut s, b"\r\n"), ["500 5.5.2"]);
        // Bare LF ends a command line (only data is strict).
        assert_eq!(run(&mut s, b"NOOP\n"), ["250 2.0.0"]);
    }

    #[test]
    fn too_many_errors_close_the_session() {
        let mut s = session();
        let t = run(&mut s, b"A\r\nB\r\nC\r\nD\r\nE\r\nF\r\n");
        assert_eq!(
            t,
            [
                "500 5.5.1",
                "500 5.5.1",
                "500 5.5.1",
                "500 5.5.1",
                "500 5.5.1",
                "CLOSE 421"
            ]
        );
        assert!(s.is_closed());
        assert!(run(&mut s, b"NOOP\r\n").is_empty());
    }

    #[test]
    fn starttls_discards_pipelined_plaintext() {
        let mut s = session();
        s.feed(b"EHLO earth.example\r\nSTARTTLS\r\nMAIL FROM:<evil@earth.example>\r\n");
        let events = drain(&mut s);
        assert_eq!(transcript(&events), ["250", "STARTTLS"]);
        assert_eq!(
            reply_of(&events[1]).to_wire(),
            b"220 2.0.0 ready to start TLS\r\n"
        );
        assert!(events[1].must_flush());
        // More plaintext before the handshake is ignored as well.
        assert!(run(&mut s, b"RCPT TO:<evil@moon.example>\r\n").is_empty());
        s.tls_established();
        assert!(s.is_tls());
        assert_eq!(s.helo(), None);
        assert!(drain(&mut s).is_empty());
        // Back to the state before EHLO.
        assert_eq!(
            run(&mut s, b"MAIL FROM:<a@earth.example>\r\n"),
            ["503 5.5.1"]
        );
        s.feed(b"EHLO earth.example\r\n");
        let events = drain(&mut s);
        assert!(!reply_of(&events[0]).lines.contains(&"STARTTLS".to_string()));
        assert_eq!(run(&mut s, b"STARTTLS\r\n"), ["503 5.5.1"]);
    }

    #[test]
    fn starttls_refusals() {
        let mut s = session();
        assert_eq!(run(&mut s, b"STARTTLS\r\n"), ["503 5.5.1"]);
        let mut s = ready();
        assert_eq!(run(&mut s, b"STARTTLS now\r\n"), ["501 5.5.4"]);
        assert_eq!(
            run(&mut s, b"MAIL FROM:<a@earth.example>\r\nSTARTTLS\r\n"),
            ["MAIL <a@earth.example>", "250 2.1.0", "503 5.5.1"]
        );
    }

    /// A transaction up to `354`.
    fn in_data() -> ServerSession {
        let mut s = ready();
        let t = run(
            &mut s,
            b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n",
        );
        assert_eq!(t.last().map(String::as_str), Some("354"));
        s
    }

    fn message_of(events: &[Event]) -> Option<&[u8]> {
        events.iter().find_map(|e| match e {
            Event::Message { content, .. } => Some(content.as_slice()),
            _ => None,
        })
    }

    #[test]
    fn smuggled_end_of_data_is_refused_not_split() {
        for fake_end in [
            "\n.\r\n", "\n.\n", "\r.\r\n", "\r\n.\n", "\r\n.\r", "\r.\r", "\n..\r\n",
        ] {
            let mut s = in_data();
            let input = format!(
                "Subject: one\r\n\r\nbody{fake_end}MAIL FROM:<evil@earth.example>\r\n\
                 RCPT TO:<victim@moon.example>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\nNOOP\r\n"
            );
            let t = run(&mut s, input.as_bytes());
            assert_eq!(t.len(), 2, "{fake_end:?}: {t:?}");
            assert_eq!(t[0], "554 5.6.0", "{fake_end:?}");
            assert_eq!(t[1], "250 2.0.0", "{fake_end:?}");
            assert!(s.envelope().is_none());
        }
        let mut s = in_data();
        s.feed(b"a\nb\r\n.\r\n");
        let events = drain(&mut s);
        assert_eq!(
            reply_of(&events[0]).lines,
            ["bare LF in message data (lines must end with CRLF); message refused"]
        );
    }

    #[test]
    fn data_is_unstuffed_exactly() {
        let cases: &[(&[u8], &[u8])] = &[
            (b".\r\n", b""),
            (b"\r\n.\r\n", b"\r\n"),
            (b"..\r\n.\r\n", b".\r\n"),
            (b"...x\r\n. \r\n.\r\n", b"..x\r\n \r\n"),
            (b"a\r\n..\r\n\r\n.\r\n", b"a\r\n.\r\n\r\n"),
            (
                b"caf\xc3\xa9 \x80\xff\r\n.\r\n",
                b"caf\xc3\xa9 \x80\xff\r\n",
            ),
        ];
        for (wire, content) in cases {
            let mut s = in_data();
            s.feed(wire);
            let events = drain(&mut s);
            assert_eq!(message_of(&events), Some(*content), "{wire:?}");
            assert!(!s.is_receiving_data());
        }
    }

    #[test]
    fn oversize_message_is_read_to_the_end_and_refused() {
        let mut s = in_data();
        for _ in 0..50 {
            s.feed(&[b'x'; 100]);
            assert!(drain(&mut s).is_empty());
            s.feed(b"\r\n");
        }
        if let Mode::Data(reader) = &s.mode {
            assert!(reader.content.is_empty());
        }
        assert_eq!(run(&mut s, b".\r\nNOOP\r\n"), ["552 5.3.4", "250 2.0.0"]);
        assert!(s.envelope().is_none());
        // Exactly the limit is accepted.
        let mut s = in_data();
        let mut wire = vec![b'y'; 998];
        wire.extend_from_slice(b"\r\n.\r\n");
        let events = drain({
            s.feed(&wire);
            &mut s
        });
        assert_eq!(message_of(&events).map(<[u8]>::len), Some(1000));
    }

    #[test]
    fn the_session_goes_on_after_a_message() {
        let mut s = in_data();
        let t = run(
            &mut s,
            b"one\r\n.\r\nMAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n",
        );
        assert_eq!(
            t,
            [
                "MESSAGE 5",
                "250 2.0.0",
                "MAIL <a@earth.example>",
                "250 2.1.0",
                "RCPT <b@moon.example>",
                "250 2.1.0",
                "354"
            ]
        );
    }

    /// A conversation a well-behaved pipelining client could send.
    fn conversation() -> impl Strategy<Value = Vec<u8>> {
        let line = proptest::collection::vec(
            prop_oneof![Just(b'.'), Just(b' '), Just(0xc3), b'!'..=b'~'],
            0..20,
        );
        let body = proptest::collection::vec(line, 0..6);
        let rcpts = proptest::collection::vec("[a-z]{1,6}", 1..4);
        proptest::collection::vec((rcpts, body), 1..3).prop_map(|messages| {
            let mut wire = b"EHLO earth.example\r\n".to_vec();
            for (rcpts, body) in messages {
                wire.extend_from_slice(b"MAIL FROM:<a@earth.example> BODY=8BITMIME\r\n");
                for r in rcpts {
                    wire.extend_from_slice(format!("RCPT TO:<{r}@moon.example>\r\n").as_bytes());
                }
                wire.extend_from_slice(b"DATA\r\n");
                for line in body {
                    if line.first() == Some(&b'.') {
                        wire.push(b'.');
                    }
                    wire.extend_from_slice(&line);
                    wire.extend_from_slice(b"\r\n");
                }
                wire.extend_from_slice(b".\r\nRSET\r\nNOOP\r\n");
            }
            wire.extend_from_slice(b"QUIT\r\n");
            wire
        })
    }

    fn run_chunks(wire: &[u8], cuts: &[usize]) -> Vec<Event> {
        let mut s = session();
        let mut events = Vec::new();
        let mut at = 0;
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        cuts.sort_unstable();
        for cut in cuts.into_iter().chain([wire.len()]) {
            s.feed(&wire[at..cut]);
            events.extend(drain(&mut s));
            at = cut;
        }
        events
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn chunking_does_not_change_the_conversation(
            wire in conversation(),
            cuts in proptest::collection::vec(any::<usize>(), 0..40),
        ) {
            let whole = run_chunks(&wire, &[]);
            prop_assert!(matches!(whole.last(), Some(Event::Quit(_))));
            prop_assert!(whole.iter().all(|e| match e {
                Event::Reply(r) => r.code < 400,
                _ => true,
            }), "{:?}", transcript(&whole));
            prop_assert_eq!(run_chunks(&wire, &cuts), whole);
        }

        #[test]
        fn chunking_does_not_change_hostile_input_either(
            pieces in proptest::collection::vec(
                prop_oneof![
                    Just(b"EHLO x\r\n".to_vec()),
                    Just(b"MAIL FROM:<a@b.example>\r\n".to_vec()),
                    Just(b"RCPT TO:<c@d.example>\r\n".to_vec()),
                    Just(b"DATA\r\n".to_vec()),
                    Just(b"\r\n.\r\n".to_vec()),
                    Just(b"\n.\n".to_vec()),
                    Just(b"STARTTLS\r\n".to_vec()),
                    Just(vec![b'z'; MAX_COMMAND_LINE - 1]),
                    proptest::collection::vec(any::<u8>(), 0..40),
                ],
                0..20,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let wire = pieces.concat();
            prop_assert_eq!(run_chunks(&wire, &cuts), run_chunks(&wire, &[]));
        }

        #[test]
        fn content_round_trips_through_dot_stuffing(
            lines in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![Just(b'.'), any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n')],
                    0..30,
                ),
                0..20,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..10),
        ) {
            let mut content = Vec::new();
            let mut wire = Vec::new();
            for line in &lines {
                content.extend_from_slice(line);
                content.extend_from_slice(b"\r\n");
                if line.first() == Some(&b'.') {
                    wire.push(b'.');
                }
                wire.extend_from_slice(line);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            let mut s = in_data();
            let mut at = 0;
            let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
            cuts.sort_unstable();
            let mut events = Vec::new();
            for cut in cuts.into_iter().chain([wire.len()]) {
                s.feed(&wire[at..cut]);
                events.extend(drain(&mut s));
                at = cut;
            }
            prop_assert_eq!(message_of(&events), Some(content.as_slice()));
        }

        #[test]
        fn hostile_bytes_never_panic_and_stay_bounded(
            chunks in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![
                        4 => any::<u8>(),
                        1 => Just(b'\n'),
                        1 => Just(b'\r'),
                        1 => Just(b'.'),
                    ],
                    0..3000,
                ),
                0..8,
            ),
            prefix in prop_oneof![
                Just(&b""[..]),
                Just(&b"EHLO x\r\n"[..]),
                Just(&b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n"[..]),
                Just(&b"EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n"[..]),
            ],
        ) {
            let mut s = ServerSession::new(&SessionConfig { max_errors: 0, ..config() }).0;
            s.feed(prefix);
            drain(&mut s);
            for chunk in &chunks {
                s.feed(chunk);
                for event in drain(&mut s) {
                    if let Event::Message { content, .. } = &event {
                        prop_assert!(content.len() <= 1000);
                    }
                }
                if !s.is_receiving_data() {
                    prop_assert!(s.input.len() - s.consumed <= MAX_COMMAND_LINE);
                }
            }
        }

        #[test]
        fn random_command_lines_never_panic(
            lines in proptest::collection::vec(
                prop_oneof![
                    "(MAIL FROM|RCPT TO|mail from|EHLO|HELO|STARTTLS|DATA|RSET|VRFY):?[ <>@\"\\\\.,:;=+a-zA-Z0-9\u{e4}-]{0,40}",
                    "\\PC{0,40}",
                ],
                0..30,
            ),
        ) {
            let mut s = ServerSession::new(&SessionConfig { max_errors: 0, ..config() }).0;
            for line in lines {
                s.feed(line.as_bytes());
                s.feed(b"\r\n");
                for event in drain(&mut s) {
                    if let Event::StartTls(_) = event {
                        s.tls_established();
                    }
                }
            }
        }
    }
}
