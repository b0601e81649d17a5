//! The decoder: a Batch SMTP object (RFC 2442 §2) back into messages.
//!
//! A line-oriented state machine over the client side of an SMTP session:
//! HELO/EHLO (RFC 5321 §4.1.1.1), MAIL (§4.1.1.2), RCPT (§4.1.1.3), DATA
//! with dot-stuffing undone (§4.1.1.4, §4.5.2), RSET (§4.1.1.5), NOOP
//! (§4.1.1.9) and QUIT (§4.1.1.10), in the order §4.1.4 requires. Paths and
//! parameters follow §4.1.2; lines end in CRLF (§2.3.8) and are at most 998
//! octets plus CRLF (§4.5.3.1.6) unless `BODY=8BITMIME`/`BINARYMIME`
//! (RFC 6152, RFC 3030) is declared. Spaces before a command's line end are
//! tolerated in both modes, as §4.1.1 asks of receivers.
//!
//! [`DecodeMode::Lenient`] reads what Exim's `exim -bS` reads: LF or CRLF
//! line ends, lines of any length, blank lines between commands, a last
//! command without line end, anything after QUIT ignored, HELO/EHLO inside a
//! transaction acting as RSET and VRFY/EXPN/ETRN/HELP acting as NOOP. It
//! still rejects NUL, bare CR, a missing final dot, commands out of sequence
//! and paths or parameters that do not parse.
//!
//! The [`Decoder`] is fed arbitrary chunks. It keeps a scan position, so no
//! octet is searched twice, and moves content into the message being built
//! as it arrives, so it buffers at most one command line (998 octets in
//! strict mode, 64 KiB in lenient mode) besides that message.

use std::collections::VecDeque;

use memchr::memchr3;

use crate::encode::{describe_octet, MAX_LINE};
use crate::error::{DecodeError, DecodeErrorKind as Kind};
use crate::message::{is_eight_bit, Envelope, ForwardPath, Message, SmtpParam};
use crate::syntax::{self, PathKind};

/// Longest command line lenient mode buffers.
const LENIENT_MAX_COMMAND_LINE: usize = 64 * 1024;

/// How strictly to read a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DecodeMode {
    /// RFC 2442 / RFC 5321 as written: CRLF only, paths must parse, lines of
    /// at most 998 octets unless 8BITMIME, nothing but blank lines after QUIT.
    #[default]
    Strict,
    /// What Exim's `-bS` accepts (see the module docs).
    Lenient,
}

/// Options for [`decode`] and [`Decoder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DecodeOptions {
    /// How strictly to read.
    pub mode: DecodeMode,
}

/// Decodes a whole Batch SMTP object into its messages, in order.
///
/// Empty input is an empty batch. Equivalent to feeding `batch` to a
/// [`Decoder`] in one piece and calling [`Decoder::finish`], without copying
/// the input.
pub fn decode(batch: &[u8], options: &DecodeOptions) -> Result<Vec<Message>, DecodeError> {
    let mut machine = Machine::new(*options);
    machine.run(batch, 0, true)?;
    Ok(machine.ready.into())
}

/// [`decode`] with the content fast path (scan.rs) off: every line through
/// the per-line state machine, the reference the fast path is tested and
/// fuzzed against. Not for other uses: it is slower and may go.
#[doc(hidden)]
pub fn decode_line_by_line(
    batch: &[u8],
    options: &DecodeOptions,
) -> Result<Vec<Message>, DecodeError> {
    let mut machine = Machine::new(*options);
    machine.fast_from_line = u64::MAX;
    machine.run(batch, 0, true)?;
    Ok(machine.ready.into())
}

/// A streaming decoder: feed it chunks as they arrive, take messages as they
/// complete.
///
/// Results and errors (class, line, offset and text) do not depend on how
/// the input is split. After an error every further call returns it again.
///
/// ```
#[doc = include_str!("../examples/streaming_decoder.rs")]
/// ```
#[derive(Debug)]
pub struct Decoder {
    machine: Machine,
    /// Input not consumed yet: the start of an unfinished line.
    pending: Vec<u8>,
    /// Octets of `pending` already searched for line ends.
    scanned: usize,
    failure: Option<DecodeError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DecodeOptions::default())
    }
}

impl Decoder {
    /// A decoder at the start of a batch.
    pub fn new(options: DecodeOptions) -> Self {
        Self {
            machine: Machine::new(options),
            pending: Vec::new(),
            scanned: 0,
            failure: None,
        }
    }

    /// Takes the next chunk of the batch. Messages it completes become
    /// available from [`next_message`](Self::next_message).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), DecodeError> {
        if let Some(error) = &self.failure {
            return Err(error.clone());
        }
        let result = if self.pending.is_empty() {
            // Fast path: parse straight from the caller's chunk, keep the tail.
            self.machine.run(chunk, 0, false).map(|progress| {
                self.pending.extend_from_slice(&chunk[progress.consumed..]);
                self.scanned = progress.scanned - progress.consumed;
            })
        } else {
            self.pending.extend_from_slice(chunk);
            self.machine
                .run(&self.pending, self.scanned, false)
                .map(|progress| {
                    self.pending.drain(..progress.consumed);
                    self.scanned = progress.scanned - progress.consumed;
                })
        };
        if let Err(error) = &result {
            self.failure = Some(error.clone());
        }
        result
    }

    /// The oldest completed message not yet taken.
    pub fn next_message(&mut self) -> Option<Message> {
        self.machine.ready.pop_front()
    }

    /// Ends the batch: checks that it ended cleanly and returns the
    /// completed messages not yet taken with [`next_message`](Self::next_message).
    pub fn finish(mut self) -> Result<Vec<Message>, DecodeError> {
        if let Some(error) = self.failure {
            return Err(error);
        }
        self.machine.run(&self.pending, self.scanned, true)?;
        Ok(self.machine.ready.into())
    }
}

/// How far [`Machine::run`] got through its input.
struct Progress {
    /// Octets fully processed; the rest must be offered again.
    consumed: usize,
    /// Octets known to hold no line end (`>= consumed`).
    scanned: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between transactions.
    Idle,
    /// After MAIL, before any RCPT.
    Mail,
    /// After at least one RCPT.
    Rcpt,
    /// Reading content.
    Data,
    /// After QUIT.
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    Rset,
    Noop,
    Quit,
    /// VRFY, EXPN, ETRN, HELP: NOOP in lenient mode, unknown in strict.
    Query,
}

impl Verb {
    fn parse(word: &[u8]) -> Option<Self> {
        const VERBS: [(&[u8], Verb); 12] = [
            (b"HELO", Verb::Helo),
            (b"EHLO", Verb::Ehlo),
            (b"MAIL", Verb::Mail),
            (b"RCPT", Verb::Rcpt),
            (b"DATA", Verb::Data),
            (b"RSET", Verb::Rset),
            (b"NOOP", Verb::Noop),
            (b"QUIT", Verb::Quit),
            (b"VRFY", Verb::Query),
            (b"EXPN", Verb::Query),
            (b"ETRN", Verb::Query),
            (b"HELP", Verb::Query),
        ];
        VERBS
            .iter()
            .find(|(name, _)| word.eq_ignore_ascii_case(name))
            .map(|&(_, verb)| verb)
    }
}

/// The decoding state machine, independent of buffering.
#[derive(Debug)]
struct Machine {
    lenient: bool,
    phase: Phase,
    envelope: Envelope,
    content: Vec<u8>,
    /// BODY=8BITMIME or BINARYMIME declared: no content line limit.
    eight_bit: bool,
    /// SMTPUTF8 declared: UTF-8 allowed in RCPT paths and parameters.
    utf8: bool,
    /// Line of the MAIL command of the open transaction.
    mail_line: u64,
    /// Line of the DATA or QUIT command last seen.
    verb_line: u64,
    /// Absolute offset of the first octet of the data passed to `run`.
    offset: u64,
    /// 1-based number of the current line.
    line: u64,
    /// Absolute offset of the first octet of the current line.
    line_start: u64,
    /// Part of the current content line is already in `content`.
    mid_line: bool,
    /// Octets of the current content line already in `content`.
    line_len: usize,
    /// The content fast path is not tried again before this line.
    fast_from_line: u64,
    ready: VecDeque<Message>,
}

impl Machine {
    fn new(options: DecodeOptions) -> Self {
        Self {
            lenient: options.mode == DecodeMode::Lenient,
            phase: Phase::Idle,
            envelope: Envelope::default(),
            content: Vec::new(),
            eight_bit: false,
            utf8: false,
            mail_line: 0,
            verb_line: 0,
            offset: 0,
            line: 1,
            line_start: 0,
            mid_line: false,
            line_len: 0,
            fast_from_line: 0,
            ready: VecDeque::new(),
        }
    }

    fn error(&self, kind: Kind, offset: u64, detail: String) -> DecodeError {
        DecodeError {
            kind,
            line: self.line,
            offset,
            detail,
        }
    }

    /// An error about the current line as a whole.
    fn line_error(&self, kind: Kind, detail: String) -> DecodeError {
        self.error(kind, self.line_start, detail)
    }

    /// The longest line allowed in the current phase, if any.
    fn line_limit(&self) -> Option<usize> {
        match (self.phase, self.lenient) {
            (Phase::Data, true) => None,
            (Phase::Data, false) if self.eight_bit => None,
            (_, true) => Some(LENIENT_MAX_COMMAND_LINE),
            (_, false) => Some(MAX_LINE),
        }
    }

    /// Processes every complete line of `data` (the continuation of the
    /// input at `self.offset`), searching for line ends from `scan`. With
    /// `eof`, `data` is the rest of the input and the batch must end cleanly.
    fn run(&mut self, data: &[u8], mut scan: usize, eof: bool) -> Result<Progress, DecodeError> {
        let mut pos = 0;
        loop {
            if self.phase == Phase::Quit {
                return self.after_quit(data, pos, eof);
            }
            let limit = self.line_limit();
            if self.phase == Phase::Data
                && !self.mid_line
                && scan == pos
                && self.line >= self.fast_from_line
            {
                // Runs of ordinary content lines in bulk (scan.rs); it
                // stops at the first line it leaves to the code below.
                let run = crate::scan::ordinary_lines(data, pos, limit, &mut self.content);
                if run.consumed == pos {
                    // Nothing for it here (an LF-only batch, say): try again
                    // some lines on rather than at every line.
                    self.fast_from_line = self.line + 32;
                } else {
                    pos = run.consumed;
                    scan = pos;
                    self.line += run.lines;
                    self.line_start = self.offset + pos as u64;
                }
            }
            // A content line's stuffing dot is not part of the line
            // (RFC 5321 §4.5.2): 998 octets of text may be 999 on the wire.
            let stuffing = usize::from(
                self.phase == Phase::Data && !self.mid_line && data.get(pos) == Some(&b'.'),
            );
            match memchr3(b'\r', b'\n', 0, &data[scan..]) {
                Some(i) => {
                    let at = scan + i;
                    self.check_length(limit, at - pos - stuffing)?;
                    let next = match data[at] {
                        b'\r' => match data.get(at + 1) {
                            Some(b'\n') => at + 2,
                            None if !eof => {
                                scan = at; // decide when the next octet arrives
                                break;
                            }
                            _ => {
                                return Err(self.error(
                                    Kind::BareCr,
                                    self.offset + at as u64,
                                    "CR not followed by LF; expected CRLF line ends (RFC 5321 §2.3.8)".to_owned(),
                                ))
                            }
                        },
                        b'\n' if self.lenient => at + 1,
                        b'\n' => {
                            return Err(self.error(
                                Kind::BareLf,
                                self.offset + at as u64,
                                "LF without CR; expected CRLF line ends (RFC 5321 §2.3.8), or lenient mode for LF-only batches"
                                    .to_owned(),
                            ))
                        }
                        _ => {
                            return Err(self.error(
                                Kind::NulByte,
                                self.offset + at as u64,
                                "NUL octet; NUL is not allowed anywhere in a batch (RFC 5321 §4.1.1.4)".to_owned(),
                            ))
                        }
                    };
                    self.complete_line(&data[pos..at])?;
                    pos = next;
                    scan = next;
                    self.line += 1;
                    self.line_start = self.offset + next as u64;
                }
                None => {
                    self.check_length(limit, data.len() - pos - stuffing)?;
                    scan = data.len();
                    break;
                }
            }
        }
        if eof {
            self.offset += pos as u64;
            self.end_of_input(&data[pos..])?;
            return Ok(Progress {
                consumed: data.len(),
                scanned: data.len(),
            });
        }
        if self.phase == Phase::Data {
            // Move the known part of an unfinished content line into the
            // message, once its first octets tell it is not the final dot.
            let partial = &data[pos..scan];
            if self.mid_line {
                self.content.extend_from_slice(partial);
                self.line_len += partial.len();
                pos = scan;
            } else if partial.len() >= 2 {
                let skip = usize::from(partial[0] == b'.');
                self.content.extend_from_slice(&partial[skip..]);
                self.line_len = partial.len() - skip;
                self.mid_line = true;
                pos = scan;
            }
        }
        self.offset += pos as u64;
        Ok(Progress {
            consumed: pos,
            scanned: scan,
        })
    }

    /// Fails once the current line has grown past the limit, whether or not
    /// its end has arrived, so the error is the same however input is split.
    fn check_length(&self, limit: Option<usize>, unconsumed: usize) -> Result<(), DecodeError> {
        match limit {
            Some(max) if self.line_len + unconsumed > max => Err(self.line_error(
                Kind::LineTooLong,
                if self.phase == Phase::Data {
                    format!(
                        "content line longer than {max} octets; expected at most {max} octets plus CRLF (RFC 5321 §4.5.3.1.6) \
                         or BODY=8BITMIME on MAIL FROM (line {})",
                        self.mail_line
                    )
                } else {
                    format!("command line longer than {max} octets; expected at most {max} octets plus CRLF (RFC 5321 §4.5.3.1.6)")
                },
            )),
            _ => Ok(()),
        }
    }

    /// Handles one complete line (without its line end).
    fn complete_line(&mut self, line: &[u8]) -> Result<(), DecodeError> {
        if self.phase != Phase::Data {
            return self.command(line);
        }
        if self.mid_line {
            self.content.extend_from_slice(line);
            self.mid_line = false;
            self.line_len = 0;
        } else if line == b"." {
            let envelope = std::mem::take(&mut self.envelope);
            let mut content = std::mem::take(&mut self.content);
            // The fast path may have reserved up to the rest of the input.
            if content.capacity() - content.len() > 64 << 10 {
                content.shrink_to_fit();
            }
            self.ready.push_back(Message { envelope, content });
            self.phase = Phase::Idle;
            return Ok(());
        } else {
            let skip = usize::from(line.first() == Some(&b'.'));
            self.content.extend_from_slice(&line[skip..]);
        }
        self.content.extend_from_slice(b"\r\n");
        Ok(())
    }

    /// After the last octet of input: an unfinished line and the phase.
    fn end_of_input(&mut self, partial: &[u8]) -> Result<(), DecodeError> {
        let end = self.offset + partial.len() as u64;
        match self.phase {
            Phase::Quit => return Ok(()),
            Phase::Data if !self.mid_line && partial == b"." && self.lenient => self.complete_line(partial)?,
            Phase::Data if !self.mid_line && partial == b"." => {
                return Err(self.line_error(
                    Kind::UnterminatedLine,
                    "the final \".\" has no line end; expected \".\" followed by CRLF".to_owned(),
                ))
            }
            Phase::Data => {}
            _ if partial.is_empty() => {}
            _ if self.lenient => self.command(partial)?,
            _ => {
                return Err(self.line_error(
                    Kind::UnterminatedLine,
                    "the last line has no line end; expected every line to end in CRLF (RFC 5321 §2.3.8)".to_owned(),
                ))
            }
        }
        match self.phase {
            Phase::Idle | Phase::Quit => Ok(()),
            Phase::Mail | Phase::Rcpt => Err(self.error(
                Kind::IncompleteTransaction,
                end,
                format!(
                    "input ends inside the transaction begun by MAIL FROM on line {}; expected DATA, the content and \".\"",
                    self.mail_line
                ),
            )),
            Phase::Data => Err(self.error(
                Kind::MissingFinalDot,
                end,
                format!(
                    "input ends inside the content begun by DATA on line {}; expected a line containing only \".\"",
                    self.verb_line
                ),
            )),
        }
    }

    /// After QUIT: strict mode allows only blank (CRLF) lines; lenient mode
    /// ignores the rest of the input.
    fn after_quit(
        &mut self,
        data: &[u8],
        mut pos: usize,
        eof: bool,
    ) -> Result<Progress, DecodeError> {
        if self.lenient {
            self.offset += data.len() as u64;
            return Ok(Progress {
                consumed: data.len(),
                scanned: data.len(),
            });
        }
        while pos < data.len() {
            match (data[pos], data.get(pos + 1)) {
                (b'\r', Some(b'\n')) => {
                    pos += 2;
                    self.line += 1;
                    self.line_start = self.offset + pos as u64;
                }
                (b'\r', None) if !eof => break,
                (b, _) => {
                    return Err(self.error(
                        Kind::TrailingGarbage,
                        self.offset + pos as u64,
                        format!(
                            "{} after QUIT on line {}; expected nothing but blank lines after QUIT",
                            describe_octet(b),
                            self.verb_line
                        ),
                    ))
                }
            }
        }
        self.offset += pos as u64;
        Ok(Progress {
            consumed: pos,
            scanned: pos,
        })
    }

    /// Handles one command line.
    fn command(&mut self, line: &[u8]) -> Result<(), DecodeError> {
        let mut line = trim_end(line);
        if self.lenient {
            line = trim_start(line);
            if line.is_empty() {
                return Ok(());
            }
        } else if line.is_empty() {
            return Err(self.line_error(
                Kind::MalformedCommand,
                "blank line; expected a command (blank lines between commands are allowed only in lenient mode)"
                    .to_owned(),
            ));
        }
        let word_end = line
            .iter()
            .position(|b| !b.is_ascii_alphabetic())
            .unwrap_or(line.len());
        let (word, rest) = line.split_at(word_end);
        let verb = match Verb::parse(word) {
            Some(Verb::Query) if !self.lenient => None,
            verb => verb,
        };
        let Some(verb) = verb else {
            let token_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
            let shown = &line[..token_end.min(16)];
            return Err(self.line_error(
                Kind::UnknownCommand,
                format!(
                    "unknown command \"{}\"; expected HELO, EHLO, MAIL, RCPT, DATA, RSET, NOOP or QUIT (RFC 2442 §2)",
                    shown.escape_ascii()
                ),
            ));
        };
        let name = verb_name(word);
        // The verb must be followed by a space or the end of the line.
        let args = match rest.first() {
            None => None,
            Some(b' ') => Some(&rest[1..]),
            Some(b'\t') if self.lenient => Some(&rest[1..]),
            Some(&b) => {
                return Err(self.line_error(
                    Kind::MalformedCommand,
                    format!(
                        "{} right after {name}; expected a space or the end of the line",
                        describe_octet(b)
                    ),
                ))
            }
        };
        let args = if self.lenient {
            args.map(trim_start)
        } else {
            args
        };
        match verb {
            Verb::Helo | Verb::Ehlo => self.greeting(&name, args),
            Verb::Mail => self.mail(args.unwrap_or_default()),
            Verb::Rcpt => self.rcpt(args.unwrap_or_default()),
            Verb::Data => {
                self.no_arguments(&name, args)?;
                self.data()
            }
            Verb::Rset => {
                self.no_arguments(&name, args)?;
                self.reset();
                Ok(())
            }
            Verb::Noop | Verb::Query => Ok(()),
            Verb::Quit => {
                self.no_arguments(&name, args)?;
                if matches!(self.phase, Phase::Mail | Phase::Rcpt) {
                    return Err(self.line_error(
                        Kind::IncompleteTransaction,
                        format!(
                            "QUIT inside the transaction begun by MAIL FROM on line {}; expected DATA, the content and \".\" first",
                            self.mail_line
                        ),
                    ));
                }
                self.verb_line = self.line;
                self.phase = Phase::Quit;
                Ok(())
            }
        }
    }

    fn no_arguments(&self, name: &str, args: Option<&[u8]>) -> Result<(), DecodeError> {
        match args {
            Some(args) if !args.is_empty() => Err(self.line_error(
                Kind::MalformedCommand,
                format!("{name} takes no argument; expected {name} alone on its line"),
            )),
            _ => Ok(()),
        }
    }

    fn reset(&mut self) {
        self.envelope = Envelope::default();
        self.eight_bit = false;
        self.utf8 = false;
        self.phase = Phase::Idle;
    }

    fn greeting(&mut self, name: &str, args: Option<&[u8]>) -> Result<(), DecodeError> {
        if matches!(self.phase, Phase::Mail | Phase::Rcpt) {
            if self.lenient {
                self.reset(); // Exim: "HELO and EHLO act as RSET"
            } else {
                return Err(self.line_error(
                    Kind::OutOfSequence,
                    format!(
                        "{name} inside the transaction begun by MAIL FROM on line {}; expected RCPT TO, DATA or RSET \
                         (a greeting may only come between transactions)",
                        self.mail_line
                    ),
                ));
            }
        }
        if self.lenient {
            return Ok(());
        }
        match args {
            Some(domain) if syntax::is_greeting_domain(domain) => Ok(()),
            _ => Err(self.line_error(
                Kind::MalformedCommand,
                format!("{name} needs a domain; expected {name} <domain> or {name} [address literal] (RFC 5321 §4.1.1.1)"),
            )),
        }
    }

    /// Strips `FROM:` / `TO:` and, in lenient mode only, spaces after it.
    fn after_keyword<'a>(
        &self,
        args: &'a [u8],
        keyword: &str,
        usage: &str,
    ) -> Result<&'a [u8], DecodeError> {
        let k = keyword.len();
        if args.len() < k || !args[..k].eq_ignore_ascii_case(keyword.as_bytes()) {
            return Err(self.line_error(
                Kind::MalformedCommand,
                format!("missing \"{keyword}\"; expected {usage}"),
            ));
        }
        let rest = &args[k..];
        match rest.first() {
            Some(b' ' | b'\t') if self.lenient => Ok(trim_start(rest)),
            Some(b' ' | b'\t') => Err(self.line_error(
                Kind::MalformedCommand,
                format!("space after \"{keyword}\"; expected {usage} with no space (RFC 5321 §4.1.1.2, §4.1.1.3)"),
            )),
            None => Err(self.line_error(Kind::MalformedPath, format!("missing path; expected {usage}"))),
            Some(_) => Ok(rest),
        }
    }

    fn mail(&mut self, args: &[u8]) -> Result<(), DecodeError> {
        if self.phase != Phase::Idle {
            return Err(self.line_error(
                Kind::OutOfSequence,
                format!(
                    "MAIL FROM inside the transaction begun on line {}; expected RCPT TO, DATA or RSET",
                    self.mail_line
                ),
            ));
        }
        const USAGE: &str = "MAIL FROM:<reverse-path>";
        let rest = self.after_keyword(args, "FROM:", USAGE)?;
        let (path, tail) = self.path(rest, PathKind::Reverse, "reverse-path", USAGE)?;
        let utf8 = split_params(tail, self.lenient).any(|token| {
            let keyword = token.split(|&b| b == b'=').next().unwrap_or_default();
            keyword.eq_ignore_ascii_case(b"SMTPUTF8")
        });
        let parameters = self.params(tail, utf8)?;
        let reverse_path = self.path_string(path, utf8, "reverse-path")?;
        self.eight_bit = is_eight_bit(&parameters);
        self.utf8 = utf8;
        self.envelope = Envelope {
            reverse_path,
            mail_parameters: parameters,
            forward_paths: Vec::new(),
        };
        self.mail_line = self.line;
        self.phase = Phase::Mail;
        Ok(())
    }

    fn rcpt(&mut self, args: &[u8]) -> Result<(), DecodeError> {
        if self.phase == Phase::Idle {
            return Err(self.line_error(
                Kind::OutOfSequence,
                "RCPT TO before MAIL FROM; expected MAIL FROM:<reverse-path> to start a transaction".to_owned(),
            ));
        }
        const USAGE: &str = "RCPT TO:<forward-path>";
        let rest = self.after_keyword(args, "TO:", USAGE)?;
        let (path, tail) = self.path(rest, PathKind::Forward, "forward-path", USAGE)?;
        let parameters = self.params(tail, self.utf8)?;
        let mailbox = self.path_string(path, self.utf8, "forward-path")?;
        self.envelope.forward_paths.push(ForwardPath {
            mailbox,
            parameters,
        });
        self.phase = Phase::Rcpt;
        Ok(())
    }

    fn data(&mut self) -> Result<(), DecodeError> {
        match self.phase {
            Phase::Idle => Err(self.line_error(
                Kind::OutOfSequence,
                "DATA before MAIL FROM; expected MAIL FROM and at least one RCPT TO first".to_owned(),
            )),
            Phase::Mail => Err(self.line_error(
                Kind::NoRecipients,
                format!(
                    "DATA without RCPT TO in the transaction begun on line {}; expected at least one RCPT TO:<forward-path>",
                    self.mail_line
                ),
            )),
            _ => {
                self.verb_line = self.line;
                self.content = Vec::new();
                self.phase = Phase::Data;
                Ok(())
            }
        }
    }

    /// Splits `<path>` off the front of `rest`; returns the path without
    /// brackets and what follows it.
    fn path<'a>(
        &self,
        rest: &'a [u8],
        kind: PathKind,
        what: &str,
        usage: &str,
    ) -> Result<(&'a [u8], &'a [u8]), DecodeError> {
        let end = syntax::parse_path(rest, kind).map_err(|e| {
            self.line_error(
                Kind::MalformedPath,
                format!(
                    "{what} \"{}\" does not parse at octet {}: {}; expected {usage} (RFC 5321 §4.1.2)",
                    shorten(rest).escape_ascii(),
                    e.at,
                    e.reason
                ),
            )
        })?;
        let tail = &rest[end..];
        match tail.first() {
            None | Some(b' ') => {}
            Some(b'\t') if self.lenient => {}
            Some(&b) => {
                return Err(self.line_error(
                    Kind::MalformedPath,
                    format!(
                        "{} right after the {what}; expected a space before any parameter",
                        describe_octet(b)
                    ),
                ))
            }
        }
        Ok((&rest[1..end - 1], tail))
    }

    /// The path as text. Non-ASCII needs SMTPUTF8 in strict mode; lenient
    /// mode takes UTF-8 paths without it, because Exim writes them so in a
    /// `use_bsmtp` batch (it never writes MAIL parameters) and `exim -bS`
    /// reads them back.
    fn path_string(&self, path: &[u8], utf8: bool, what: &str) -> Result<String, DecodeError> {
        if !utf8 && !self.lenient && !path.is_ascii() {
            return Err(self.line_error(
                Kind::MalformedPath,
                format!(
                    "non-ASCII {what}; expected ASCII, or SMTPUTF8 on MAIL FROM (RFC 6531 §3.3), or lenient mode for Exim's batches"
                ),
            ));
        }
        String::from_utf8(path.to_vec()).map_err(|_| {
            self.line_error(
                Kind::MalformedPath,
                format!("{what} is not valid UTF-8; expected UTF-8 (RFC 6531 §3.3)"),
            )
        })
    }

    /// Parses `*(SP esmtp-param)` after a path.
    fn params(&self, tail: &[u8], utf8: bool) -> Result<Vec<SmtpParam>, DecodeError> {
        let mut parameters = Vec::new();
        for token in split_params(tail, self.lenient) {
            let (keyword, value) = match token.iter().position(|&b| b == b'=') {
                Some(eq) => (&token[..eq], Some(&token[eq + 1..])),
                None => (token, None),
            };
            let bad = |why: String| {
                self.line_error(
                    Kind::BadParameter,
                    format!(
                        "parameter \"{}\" {why} (RFC 5321 §4.1.2 esmtp-param)",
                        shorten(token).escape_ascii()
                    ),
                )
            };
            if token.is_empty() {
                return Err(self.line_error(
                    Kind::BadParameter,
                    "empty parameter (two spaces in a row); expected one space between parameters"
                        .to_owned(),
                ));
            }
            if !syntax::is_esmtp_keyword(keyword) {
                return Err(bad("has an invalid keyword; expected letters, digits and '-', starting with a letter or digit"
                    .to_owned()));
            }
            let value = match value {
                None => None,
                Some(v) if syntax::is_esmtp_value(v, utf8) => match String::from_utf8(v.to_vec()) {
                    Ok(v) => Some(v),
                    Err(_) => return Err(bad("has a value that is not UTF-8; expected UTF-8".to_owned())),
                },
                Some(_) => {
                    return Err(bad(format!(
                        "has an invalid value; expected 1 or more printable characters other than space and '='{}",
                        if utf8 { "" } else { " (ASCII only without SMTPUTF8)" }
                    )))
                }
            };
            // The keyword is ASCII, checked above.
            let keyword = String::from_utf8_lossy(keyword).into_owned();
            parameters.push(SmtpParam { keyword, value });
        }
        Ok(parameters)
    }
}

/// The parameter tokens after a path: `tail` is empty or starts with a
/// space. Strict mode splits on single spaces (an empty token is an error);
/// lenient mode on runs of spaces and tabs.
fn split_params(tail: &[u8], lenient: bool) -> Box<dyn Iterator<Item = &[u8]> + '_> {
    if tail.is_empty() {
        Box::new(std::iter::empty())
    } else if lenient {
        Box::new(
            tail.split(|&b| b == b' ' || b == b'\t')
                .filter(|t| !t.is_empty()),
        )
    } else {
        Box::new(tail[1..].split(|&b| b == b' '))
    }
}

fn verb_name(word: &[u8]) -> String {
    String::from_utf8_lossy(word).to_ascii_uppercase()
}

fn shorten(s: &[u8]) -> &[u8] {
    &s[..s.len().min(64)]
}

fn trim_end(s: &[u8]) -> &[u8] {
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &s[..end]
}

fn trim_start(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decoder buffers at most the unfinished command line; content
    /// goes straight into the message, and buffered octets are never
    /// searched twice.
    #[test]
    fn memory_stays_bounded_and_nothing_is_rescanned() {
        let mut decoder = Decoder::new(DecodeOptions {
            mode: DecodeMode::Strict,
        });
        decoder
            .feed(b"MAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<c@d>\r\nDATA\r\n")
            .unwrap();
        let line = vec![b'x'; 1 << 20];
        for byte in line.chunks(1) {
            decoder.feed(byte).unwrap();
            assert!(
                decoder.pending.len() <= 1,
                "buffered {} octets",
                decoder.pending.len()
            );
        }
        decoder.feed(b"\r").unwrap();
        assert_eq!(
            (decoder.pending.as_slice(), decoder.scanned),
            (&b"\r"[..], 0)
        );
        decoder.feed(b"\n.\r\n").unwrap();
        let message = decoder.next_message().unwrap();
        assert_eq!(message.content.len(), (1 << 20) + 2);

        let mut decoder = Decoder::new(DecodeOptions {
            mode: DecodeMode::Lenient,
        });
        let command = format!("NOOP {}", "y".repeat(60_000));
        for byte in command.as_bytes().chunks(1) {
            decoder.feed(byte).unwrap();
            assert_eq!(decoder.scanned, decoder.pending.len());
        }
        decoder.feed(b"\n").unwrap();
        assert!(decoder.pending.is_empty());
        assert!(decoder.finish().unwrap().is_empty());
    }

    #[test]
    fn dot_decision_waits_for_the_second_octet() {
        let mut decoder = Decoder::new(DecodeOptions::default());
        decoder
            .feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n.")
            .unwrap();
        assert_eq!(decoder.pending, b".");
        decoder.feed(b".x").unwrap();
        assert!(decoder.pending.is_empty());
        decoder.feed(b"y\r\n.\r\n").unwrap();
        assert_eq!(decoder.next_message().unwrap().content, b".xy\r\n");
    }
}
