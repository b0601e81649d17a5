"""Batch SMTP codec (RFC 2442) for deepmail, written in Python.

A `codec-plugin` component (wit/deepmail.wit) built with componentize-py:
it exports `plugin-info` and `bsmtp-codec` (`encode`, `decode` in strict
and lenient mode). Standard library only; no I/O, no clock.

Behaviour follows vectors/README.md:

* encode writes the canonical form: optional `HELO d` / `EHLO d`; per
  message `MAIL FROM:<rp>[ params]`, one `RCPT TO:<fp>[ params]` per
  recipient, `DATA`, the content with every line end turned into CRLF, a
  CRLF appended if missing, lines beginning with `.` stuffed, then `.`;
  optional `QUIT`. Paths and parameters are checked against RFC 5321 §4.1.2
  (RFC 6531 §3.3 with SMTPUTF8) before anything is written.
* decode reads the client side of an SMTP session (RFC 5321 §4.1.4 order),
  undoes dot-stuffing (§4.5.2) and checks line ends (§2.3.8) and, in strict
  mode, the 998-octet line limit (§4.5.3.1.6) unless BODY=8BITMIME or
  BINARYMIME. Lenient mode reads what Exim's `-bS` reads.

Choices on the suite's `acceptable` cases: NUL in content is passed through
by decode and refused by encode (`nul-byte`), so what this plugin writes
any deepmail decoder reads; a 999-octet line is refused in strict mode
without 8BITMIME (and by encode); a space after `FROM:`, an EHLO inside a
transaction and QUIT inside a transaction are refused in strict mode;
VRFY/EXPN/ETRN/HELP are NOOPs in lenient mode.

Errors are raised as `Err(StageError)`, which componentize-py turns into the
`err` case of the WIT `result`. Any other exception would trap the
component, so the exports catch everything and report `internal-error`.
"""

import re

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.bsmtp_codec import (
    DecodeMode,
    DecodeOptions,
    EncodeOptions,
    Greeting_Ehlo,
    Greeting_Helo,
)
from wit_world.exports.plugin_info import Info
from wit_world.imports.types import (
    Envelope,
    ForwardPath,
    Message,
    SmtpParam,
    StageError,
)

VERSION = "0.1.0"

# RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets including CRLF.
MAX_LINE = 998


class Failure(Exception):
    """A stage error on its way out: class, explanation, offset."""

    def __init__(self, code, message, offset=None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.offset = offset


# --------------------------------------------------------------------------
# RFC 5321 §4.1.2 / §4.1.3 syntax, on bytes. Octets >= 0x80 are accepted
# wherever RFC 6531 §3.3 allows UTF-8; callers refuse them without SMTPUTF8.


class SyntaxFault(Exception):
    def __init__(self, at, reason):
        super().__init__(reason)
        self.at = at
        self.reason = reason


_ALNUM = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_HIGH = frozenset(range(0x80, 0x100))
_ATEXT = _ALNUM | frozenset(b"!#$%&'*+-/=?^_`{|}~") | _HIGH
_LET_DIG = _ALNUM | _HIGH
_LDH = _LET_DIG | {0x2D}
# qtextSMTP (%d32-33 / %d35-91 / %d93-126) plus UTF-8.
_QTEXT = frozenset(range(32, 127)) - {34, 92} | _HIGH
# dcontent of an address literal: %d33-90 / %d94-126.
_DCONTENT = frozenset(range(33, 91)) | frozenset(range(94, 127))
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")


def _domain(s, i):
    """`Domain = sub-domain *("." sub-domain)`; returns the index after it."""
    n = len(s)
    while True:
        if i >= n or s[i] not in _LET_DIG:
            raise SyntaxFault(i, "expected a domain label starting with a letter or digit")
        j = i + 1
        while j < n and s[j] in _LDH:
            j += 1
        if s[j - 1] == 0x2D:
            raise SyntaxFault(j - 1, "a domain label must not end in '-'")
        if j < n and s[j] == 0x2E:
            i = j + 1
            continue
        return j


def _ipv4(s):
    parts = s.split(b".")
    return len(parts) == 4 and all(
        1 <= len(p) <= 3 and all(c in _DIGITS for c in p) and int(p) <= 255 for p in parts
    )


def _hex_groups(s):
    if not s:
        return []
    groups = s.split(b":")
    if all(1 <= len(g) <= 4 and all(c in _HEX for c in g) for g in groups):
        return groups
    return None


def _ipv6(s):
    """The four RFC 5321 §4.1.3 IPv6 forms (full, compressed, with IPv4 tail)."""
    groups_max = 8
    colon = s.rfind(b":")
    if colon >= 0 and b"." in s[colon + 1:]:
        if not _ipv4(s[colon + 1:]):
            return False
        groups_max = 6
        # Keep a "::" that ends right before the IPv4 part, drop a lone ':'.
        s = s[: colon + 1] if s[: colon + 1].endswith(b"::") else s[:colon]
    if b"::" in s:
        left, _, right = s.partition(b"::")
        if b"::" in right:
            return False
        lg, rg = _hex_groups(left), _hex_groups(right)
        return lg is not None and rg is not None and len(lg) + len(rg) <= groups_max - 2
    groups = _hex_groups(s)
    return groups is not None and len(groups) == groups_max


def _address_literal(s, i):
    """`"[" (IPv4 / "IPv6:" IPv6 / tag ":" dcontent) "]"` at s[i] == '['."""
    start = i + 1
    j = start
    n = len(s)
    while j < n and s[j] in _DCONTENT:
        j += 1
    if j >= n or s[j] != 0x5D:
        raise SyntaxFault(j, "expected ']' to close the address literal")
    body = s[start:j]
    if _ipv4(body):
        ok = True
    elif body[:5].lower() == b"ipv6:":
        ok = _ipv6(body[5:])
    else:
        tag, colon, rest = body.partition(b":")
        ok = (
            bool(colon)
            and bool(tag)
            and bool(rest)
            and all(c in _ALNUM or c == 0x2D for c in tag)
            and tag[-1] in _ALNUM
        )
    if not ok:
        raise SyntaxFault(start, "expected an IPv4, IPv6: or tagged address literal")
    return j + 1


def _local_part(s, i):
    n = len(s)
    if i < n and s[i] == 0x22:  # Quoted-string
        i += 1
        while True:
            if i >= n:
                raise SyntaxFault(i, "expected '\"' to close the quoted local part")
            c = s[i]
            if c == 0x22:
                return i + 1
            if c == 0x5C:
                if i + 1 >= n or not 32 <= s[i + 1] <= 126:
                    raise SyntaxFault(i + 1, "expected a printable ASCII character after '\\'")
                i += 2
            elif c in _QTEXT:
                i += 1
            else:
                raise SyntaxFault(i, "character not allowed in a quoted local part")
    while True:  # Dot-string = Atom *("." Atom)
        j = i
        while j < n and s[j] in _ATEXT:
            j += 1
        if j == i:
            raise SyntaxFault(i, "expected an atom (letters, digits or !#$%&'*+-/=?^_`{|}~) in the local part")
        if j < n and s[j] == 0x2E:
            i = j + 1
            continue
        return j


def _mailbox(s, i):
    i = _local_part(s, i)
    if i >= len(s) or s[i] != 0x40:
        raise SyntaxFault(i, "expected '@' after the local part")
    i += 1
    if i < len(s) and s[i] == 0x5B:
        return _address_literal(s, i)
    return _domain(s, i)


def parse_path(s, forward):
    """Parses `<path>` at the start of s; returns the index just past '>'.

    `<>` is allowed as a reverse-path only, `<Postmaster>` (any case) as a
    forward-path only (RFC 5321 §4.1.1.3); a source route (A-d-l) is kept.
    """
    if not s.startswith(b"<"):
        raise SyntaxFault(0, "expected '<' to open the path")
    if s.startswith(b"<>"):
        if forward:
            raise SyntaxFault(1, "expected a mailbox: the null path <> is only a reverse-path")
        return 2
    if forward and s[1:12].lower() == b"postmaster>":
        return 12
    i = 1
    if s[i:i + 1] == b"@":  # A-d-l ":"
        while True:
            if s[i:i + 1] != b"@":
                raise SyntaxFault(i, "expected '@' to start a source-route domain")
            i = _domain(s, i + 1)
            sep = s[i:i + 1]
            if sep == b",":
                i += 1
            elif sep == b":":
                i += 1
                break
            else:
                raise SyntaxFault(i, "expected ',' or ':' after a source-route domain")
    i = _mailbox(s, i)
    if s[i:i + 1] != b">":
        raise SyntaxFault(i, "expected '>' to close the path")
    return i + 1


def is_greeting_domain(s):
    """A HELO/EHLO argument: Domain or address-literal (RFC 5321 §4.1.1.1)."""
    try:
        end = _address_literal(s, 0) if s[:1] == b"[" else _domain(s, 0)
    except SyntaxFault:
        return False
    return end == len(s)


_KEYWORD = re.compile(rb"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_VALUE_ASCII = re.compile(rb"[\x21-\x3c\x3e-\x7e]+\Z")
_VALUE_UTF8 = re.compile(rb"[\x21-\x3c\x3e-\x7e\x80-\xff]+\Z")


def is_keyword(b):
    """`esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-")`."""
    return _KEYWORD.match(b) is not None


def is_value(b, utf8):
    """`esmtp-value = 1*(%d33-60 / %d62-126)`, plus UTF-8 with SMTPUTF8."""
    return (_VALUE_UTF8 if utf8 else _VALUE_ASCII).match(b) is not None


def _eight_bit(params):
    """BODY=8BITMIME or BINARYMIME: no 998-octet limit on content lines."""
    return any(
        k.upper() == "BODY" and v is not None and v.upper() in ("8BITMIME", "BINARYMIME")
        for k, v in params
    )


def _has_smtputf8(params):
    return any(k.upper() == "SMTPUTF8" for k, _ in params)


def _show(b, limit=64):
    text = b[:limit].decode("utf-8", "backslashreplace")
    return repr(text + ("..." if len(b) > limit else ""))


# --------------------------------------------------------------------------
# Encoding

_FORBIDDEN_IN_PATH = re.compile(rb"[\r\n\x00 <>]")
_OCTET_NAMES = {0x0D: "CR", 0x0A: "LF", 0x00: "NUL", 0x20: "a space", 0x3C: "'<'", 0x3E: "'>'"}


def _check_path(path, forward, utf8, what):
    raw = path.encode("utf-8")
    bad = _FORBIDDEN_IN_PATH.search(raw)
    if bad:
        raise Failure(
            "invalid-envelope",
            f"{what} {path!r} contains {_OCTET_NAMES[raw[bad.start()]]}; expected a mailbox "
            "such as local@domain without CR, LF, NUL, spaces or angle brackets",
        )
    if not raw:
        raise Failure("invalid-envelope", f"{what} is empty; the null path <> is only a reverse-path")
    try:
        end = parse_path(b"<" + raw + b">", forward)
    except SyntaxFault as e:
        raise Failure(
            "invalid-envelope",
            f"{what} {path!r} does not parse at octet {max(e.at - 1, 0)}: {e.reason} (RFC 5321 §4.1.2)",
        ) from None
    if end != len(raw) + 2:
        raise Failure("invalid-envelope", f"{what} {path!r} is more than one mailbox")
    if not utf8 and not path.isascii():
        raise Failure(
            "invalid-envelope",
            f"{what} {path!r} is not ASCII; expected ASCII or the SMTPUTF8 MAIL parameter (RFC 6531 §3.3)",
        )
    return raw


def _params_bytes(params, utf8, what):
    out = []
    for p in params:
        keyword = p.keyword.encode("utf-8")
        if not is_keyword(keyword):
            raise Failure(
                "invalid-envelope",
                f"{what} keyword {p.keyword!r} is not valid; expected letters, digits and '-', "
                "starting with a letter or digit (RFC 5321 §4.1.2 esmtp-keyword)",
            )
        out.append(b" " + keyword)
        if p.value is not None:
            value = p.value.encode("utf-8")
            if not is_value(value, utf8):
                raise Failure(
                    "invalid-envelope",
                    f"{what} {p.keyword}={p.value!r} has an invalid value; expected 1 or more printable "
                    "characters other than space and '='"
                    + ("" if utf8 else " (ASCII only without SMTPUTF8)")
                    + " (RFC 5321 §4.1.2 esmtp-value)",
                )
            out.append(b"=" + value)
    return b"".join(out)


def _first_long_line(text, sep):
    """Index and length of the first line of `text` (lines split on `sep`,
    a leading transparency dot not counted) over MAX_LINE octets, or None."""
    lines = text.split(sep)
    if max(map(len, lines)) <= MAX_LINE:
        return None
    offset = 0
    for line in lines:
        size = len(line) - (1 if line[:1] == b"." else 0)
        if size > MAX_LINE:
            return offset, size
        offset += len(line) + len(sep)
    return None


def _stuffed_content(content, eight_bit, index):
    """CRLF line ends, a final CRLF, dot-stuffing (RFC 5321 §4.5.2)."""
    nul = content.find(b"\x00")
    if nul >= 0:
        raise Failure(
            "nul-byte",
            f"message {index}: content octet {nul} is NUL; this encoder does not carry NUL in DATA "
            "(RFC 5322 §3.5, RFC 2045 §2.8)",
        )
    # CRLF, then every remaining CR, and every LF, is one line end.
    text = content.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if not text.endswith(b"\n"):
        text += b"\n"
    if text.startswith(b"."):
        text = b"." + text
    text = text.replace(b"\n.", b"\n..")
    if not eight_bit:
        long = _first_long_line(text[:-1], b"\n")
        if long:
            raise Failure(
                "line-too-long",
                f"message {index}: a content line of {long[1]} octets; expected at most {MAX_LINE} "
                "(RFC 5321 §4.5.3.1.6) or the MAIL parameter BODY=8BITMIME",
            )
    return text.replace(b"\n", b"\r\n")


def encode(messages, options):
    out = []
    greeting = options.greeting
    if isinstance(greeting, (Greeting_Helo, Greeting_Ehlo)):
        verb = b"HELO " if isinstance(greeting, Greeting_Helo) else b"EHLO "
        domain = greeting.value.encode("utf-8")
        if not is_greeting_domain(domain):
            raise Failure(
                "invalid-envelope",
                f"greeting domain {greeting.value!r} is not a domain or address literal; expected e.g. "
                "earth-gw.example or [192.0.2.1] (RFC 5321 §4.1.1.1)",
            )
        out.append(verb + domain + b"\r\n")
    for index, message in enumerate(messages):
        env = message.envelope
        mail_params = [(p.keyword, p.value) for p in env.mail_parameters]
        utf8 = _has_smtputf8(mail_params)
        rp = b""
        if env.reverse_path:
            rp = _check_path(env.reverse_path, False, utf8, f"message {index}: reverse-path")
        out.append(
            b"MAIL FROM:<" + rp + b">"
            + _params_bytes(env.mail_parameters, utf8, f"message {index}: MAIL parameter")
            + b"\r\n"
        )
        if not env.forward_paths:
            raise Failure(
                "no-recipients",
                f"message {index} has no forward paths; expected at least one recipient (RCPT TO)",
            )
        for n, fp in enumerate(env.forward_paths):
            mailbox = _check_path(fp.mailbox, True, utf8, f"message {index}: forward-path {n}")
            params = _params_bytes(fp.parameters, utf8, f"message {index}: RCPT parameter of forward-path {n}")
            out.append(b"RCPT TO:<" + mailbox + b">" + params + b"\r\n")
        out.append(b"DATA\r\n")
        out.append(_stuffed_content(bytes(message.content), _eight_bit(mail_params), index))
        out.append(b".\r\n")
    if options.quit:
        out.append(b"QUIT\r\n")
    return b"".join(out)


# --------------------------------------------------------------------------
# Decoding

IDLE, MAIL, RCPT, QUIT = "idle", "mail", "rcpt", "quit"

_VERBS = {
    b"HELO": "greeting",
    b"EHLO": "greeting",
    b"MAIL": "mail",
    b"RCPT": "rcpt",
    b"DATA": "data",
    b"RSET": "rset",
    b"NOOP": "noop",
    b"QUIT": "quit",
}
# Not BSMTP commands (RFC 2442 §2); Exim's -bS treats them as NOOP.
_QUERY_VERBS = (b"VRFY", b"EXPN", b"ETRN", b"HELP")

_VERB = re.compile(rb"[A-Za-z]*")
# The line "." that ends DATA, searched from the line end before the content;
# group 1 is what follows the dot.
_END_STRICT = re.compile(rb"\r\n\.(\r\n|\r|\n|\Z)")
_END_LENIENT = re.compile(rb"\n\.(\r\n|\r|\n|\Z)")
_BARE_STRICT = re.compile(rb"\r(?!\n)|(?<!\r)\n")
_BARE_CR = re.compile(rb"\r(?!\n)")
# An octet that is not part of a CRLF (searched from a line start).
_NOT_CRLF = re.compile(rb"[^\r\n]|\r(?!\n)|(?<!\r)\n")
# The first octet that makes a line more than blank (lenient mode).
_NOT_BLANK = re.compile(rb"[^ \t\r\n]|\r(?!\n)")


class Decoder:
    def __init__(self, batch, lenient):
        self.buf = batch
        self.lenient = lenient
        self.phase = IDLE
        self.messages = []
        self.reset()

    def reset(self):
        self.reverse_path = None
        self.mail_params = []
        self.forward_paths = []
        self.utf8 = False
        self.eight_bit = False
        self.mail_at = 0
        if self.phase != QUIT:
            self.phase = IDLE

    def fail(self, code, offset, what):
        line = self.buf.count(b"\n", 0, offset) + 1
        raise Failure(code, f"line {line} (offset {offset}): {what}", offset)

    # -- reading -----------------------------------------------------------

    def run(self):
        buf = self.buf
        n = len(buf)
        pos = 0
        while pos < n:
            if self.phase == QUIT:
                self.after_quit(pos)
                break
            if self.lenient:
                # Skip a run of blank lines in one regex step, not one
                # interpreted iteration per line.
                found = _NOT_BLANK.search(buf, pos)
                skip = buf.rfind(b"\n", pos, found.start() if found else n) + 1
                if skip > pos:
                    pos = skip
                    continue
            pos = self.command_line(pos)
        if self.phase in (MAIL, RCPT):
            self.fail(
                "incomplete-transaction",
                n,
                f"input ends inside the transaction begun by MAIL FROM at offset {self.mail_at}; "
                "expected DATA, the content and \".\"",
            )
        return self.messages

    def command_line(self, pos):
        """Checks and runs the command line at pos; returns the next line's offset."""
        buf = self.buf
        nl = buf.find(b"\n", pos)
        terminated = nl >= 0
        end = nl if terminated else len(buf)
        raw = buf[pos:end]
        # Byte-level faults win over syntax (vectors/README.md), earliest first.
        cr = raw.find(b"\r")
        crlf = terminated and raw.endswith(b"\r")
        if crlf:
            raw = raw[:-1]
        if not self.lenient:
            first = min(x for x in (raw.find(b"\x00"), cr, len(raw)) if x >= 0)
            if first > MAX_LINE:
                self.fail(
                    "line-too-long",
                    pos,
                    f"command line longer than {MAX_LINE} octets; expected at most {MAX_LINE} octets "
                    "plus CRLF (RFC 5321 §4.5.3.1.6)",
                )
        faults = []
        nul = raw.find(b"\x00")
        if nul >= 0:
            faults.append((nul, "nul-byte", "NUL octet in a command line; expected none (RFC 5321 §4.1.1)"))
        bare = raw.find(b"\r")
        if bare >= 0:
            faults.append((bare, "bare-cr", "CR not followed by LF; expected CRLF line ends (RFC 5321 §2.3.8)"))
        if terminated and not crlf and not self.lenient:
            faults.append((
                len(raw),
                "bare-lf",
                "LF without CR; expected CRLF line ends (RFC 5321 §2.3.8), or lenient mode for LF-only batches",
            ))
        if faults:
            at, code, what = min(faults)
            self.fail(code, pos + at, what)
        if not terminated and not self.lenient:
            self.fail(
                "unterminated-line",
                pos,
                "the last line has no line end; expected every line to end in CRLF (RFC 5321 §2.3.8)",
            )
        after = nl + 1 if terminated else len(buf)
        return self.command(raw, pos, after)

    def after_quit(self, pos):
        """Strict: only blank lines may follow QUIT. Lenient: anything."""
        if self.lenient:
            return
        garbage = _NOT_CRLF.search(self.buf, pos)
        if garbage:
            end = garbage.start()
            self.fail(
                "trailing-garbage",
                end,
                f"{_show(self.buf[end:end + 16], 16)} after QUIT; expected nothing but blank lines after QUIT",
            )

    def read_content(self, start):
        """Reads DATA content from `start` (just after the DATA line's end);
        returns the offset after the terminating "." line."""
        buf = self.buf
        if start >= len(buf):
            self.fail(
                "missing-final-dot",
                len(buf),
                "input ends right after DATA; expected the content and a line containing only \".\"",
            )
        lenient = self.lenient
        # Search from the DATA line's own line end so a "." first line matches.
        sep = 1 if lenient else 2
        match = (_END_LENIENT if lenient else _END_STRICT).search(buf, start - sep)
        stop = match.start() + sep if match else len(buf)
        block = buf[start:stop]
        # Counting is much faster than the regex; search only when a count
        # says some CR or LF is bare.
        crlfs = block.count(b"\r\n")
        clean = block.count(b"\r") == crlfs and (lenient or block.count(b"\n") == crlfs)
        bare = None if clean else (_BARE_CR if lenient else _BARE_STRICT).search(block)
        checked = block[: bare.start()] if bare else block
        if not lenient and not self.eight_bit:
            long = _first_long_line(checked, b"\r\n")
            if long:
                self.fail(
                    "line-too-long",
                    start + long[0],
                    f"content line of {long[1]} octets; expected at most {MAX_LINE} octets plus CRLF "
                    "(RFC 5321 §4.5.3.1.6) or BODY=8BITMIME on MAIL FROM",
                )
        if bare:
            at = start + bare.start()
            if buf[at] == 0x0D:
                self.fail("bare-cr", at, "CR not followed by LF in the content; expected CRLF line ends (RFC 5321 §2.3.8)")
            self.fail(
                "bare-lf",
                at,
                "LF without CR in the content; expected CRLF line ends (RFC 5321 §2.3.8), or lenient mode",
            )
        if match is None:
            self.fail(
                "missing-final-dot",
                len(buf),
                "input ends inside the content; expected a line containing only \".\"",
            )
        tail = match.group(1)
        dot = match.start(1) - 1
        if tail == b"\r":
            self.fail("bare-cr", match.start(1), "CR not followed by LF after the final \".\"; expected CRLF")
        if not lenient and tail == b"\n":
            self.fail("bare-lf", match.start(1), "LF without CR after the final \".\"; expected CRLF")
        if not lenient and tail == b"":
            self.fail("unterminated-line", dot, "the final \".\" has no line end; expected \".\" followed by CRLF")
        if lenient:
            block = block.replace(b"\r\n", b"\n")
            if block.startswith(b"."):
                block = block[1:]
            content = block.replace(b"\n.", b"\n").replace(b"\n", b"\r\n")
        else:
            if block.startswith(b"."):
                block = block[1:]
            content = block.replace(b"\r\n.", b"\r\n")
        self.messages.append(
            Message(
                envelope=Envelope(
                    reverse_path=self.reverse_path,
                    mail_parameters=[SmtpParam(keyword=k, value=v) for k, v in self.mail_params],
                    forward_paths=[
                        ForwardPath(mailbox=m, parameters=[SmtpParam(keyword=k, value=v) for k, v in ps])
                        for m, ps in self.forward_paths
                    ],
                ),
                content=content,
            )
        )
        self.reset()
        return match.end()

    # -- commands ----------------------------------------------------------

    def command(self, line, at, after):
        """Runs one command line (without line end); returns the next offset."""
        line = line.rstrip(b" \t")  # trailing spaces: RFC 5321 §4.1.1 asks receivers to tolerate them
        if self.lenient:
            line = line.lstrip(b" \t")
            if not line:
                return after
        elif not line:
            self.fail(
                "malformed-command",
                at,
                "blank line; expected a command (blank lines between commands are allowed only in lenient mode)",
            )
        word = _VERB.match(line).group()
        upper = word.upper()
        verb = _VERBS.get(upper)
        if verb is None and self.lenient and upper in _QUERY_VERBS:
            verb = "noop"
        if verb is None:
            self.fail(
                "unknown-command",
                at,
                f"unknown command {_show(line.split(b' ')[0], 16)}; expected HELO, EHLO, MAIL, RCPT, DATA, "
                "RSET, NOOP or QUIT (RFC 2442 §2)",
            )
        name = upper.decode("ascii")
        rest = line[len(word):]
        if not rest:
            args = None
        elif rest[:1] == b" " or (self.lenient and rest[:1] == b"\t"):
            args = rest[1:].lstrip(b" \t") if self.lenient else rest[1:]
        else:
            self.fail("malformed-command", at, f"{_show(rest[:1])} right after {name}; expected a space or the end of the line")

        if verb == "noop":
            return after
        if verb in ("data", "rset", "quit") and args:
            self.fail("malformed-command", at, f"{name} takes no argument; expected {name} alone on its line")
        if verb == "greeting":
            self.greeting(name, args, at)
        elif verb == "mail":
            self.mail(args or b"", at)
        elif verb == "rcpt":
            self.rcpt(args or b"", at)
        elif verb == "rset":
            self.reset()
        elif verb == "quit":
            if self.phase in (MAIL, RCPT):
                self.fail(
                    "incomplete-transaction",
                    at,
                    f"QUIT inside the transaction begun at offset {self.mail_at}; expected DATA, the content "
                    "and \".\" first",
                )
            self.phase = QUIT
        elif verb == "data":
            if self.phase == IDLE:
                self.fail("out-of-sequence", at, "DATA before MAIL FROM; expected MAIL FROM and RCPT TO first")
            if self.phase == MAIL:
                self.fail(
                    "no-recipients",
                    at,
                    "DATA without RCPT TO; expected at least one RCPT TO:<forward-path> (RFC 5321 §4.1.1.4)",
                )
            return self.read_content(after)
        return after

    def greeting(self, name, args, at):
        if self.phase in (MAIL, RCPT):
            if not self.lenient:
                self.fail(
                    "out-of-sequence",
                    at,
                    f"{name} inside the transaction begun at offset {self.mail_at}; expected RCPT TO, DATA "
                    "or RSET (a greeting may only come between transactions)",
                )
            self.reset()  # Exim: HELO and EHLO act as RSET
        if not self.lenient and (args is None or not is_greeting_domain(args)):
            self.fail(
                "malformed-command",
                at,
                f"{name} needs a domain; expected {name} <domain> or {name} [address literal] (RFC 5321 §4.1.1.1)",
            )

    def after_keyword(self, args, keyword, usage, at):
        k = len(keyword)
        if args[:k].upper() != keyword:
            self.fail("malformed-command", at, f"missing {keyword.decode()!r}; expected {usage}")
        rest = args[k:]
        if not rest:
            self.fail("malformed-path", at, f"missing path; expected {usage}")
        if rest[:1] in (b" ", b"\t"):
            if not self.lenient:
                self.fail(
                    "malformed-command",
                    at,
                    f"space after {keyword.decode()!r}; expected {usage} with no space (RFC 5321 §4.1.1.2, §4.1.1.3)",
                )
            rest = rest.lstrip(b" \t")
        return rest

    def split_path(self, rest, forward, what, usage, at):
        try:
            end = parse_path(rest, forward)
        except SyntaxFault as e:
            self.fail(
                "malformed-path",
                at,
                f"{what} {_show(rest)} does not parse at octet {e.at}: {e.reason}; expected {usage} (RFC 5321 §4.1.2)",
            )
        tail = rest[end:]
        if tail and not (tail[:1] == b" " or (self.lenient and tail[:1] == b"\t")):
            self.fail("malformed-path", at, f"{_show(tail[:1])} right after the {what}; expected a space before any parameter")
        return rest[1:end - 1], tail

    def tokens(self, tail):
        if not tail:
            return []
        if self.lenient:
            return tail.replace(b"\t", b" ").split()
        return tail[1:].split(b" ")

    def params(self, tokens, utf8, at):
        out = []
        for token in tokens:
            if not token:
                self.fail(
                    "bad-parameter",
                    at,
                    "empty parameter (two spaces in a row); expected one space between parameters (RFC 5321 §4.1.2)",
                )
            keyword, eq, value = token.partition(b"=")
            if not is_keyword(keyword):
                self.fail(
                    "bad-parameter",
                    at,
                    f"parameter {_show(token)} has an invalid keyword; expected letters, digits and '-', starting "
                    "with a letter or digit (RFC 5321 §4.1.2 esmtp-keyword)",
                )
            text = None
            if eq:
                if not is_value(value, utf8):
                    self.fail(
                        "bad-parameter",
                        at,
                        f"parameter {_show(token)} has an invalid value; expected 1 or more printable characters "
                        "other than space and '='" + ("" if utf8 else " (ASCII only without SMTPUTF8)")
                        + " (RFC 5321 §4.1.2 esmtp-value)",
                    )
                try:
                    text = value.decode("utf-8")
                except UnicodeDecodeError:
                    self.fail("bad-parameter", at, f"parameter {_show(token)} has a value that is not UTF-8 (RFC 6531 §3.3)")
            out.append((keyword.decode("ascii"), text))
        return out

    def path_text(self, path, utf8, what, at):
        # Non-ASCII needs SMTPUTF8 in strict mode; lenient takes UTF-8 paths
        # without it, as Exim's use_bsmtp writes them.
        if not utf8 and not self.lenient and not path.isascii():
            self.fail(
                "malformed-path",
                at,
                f"non-ASCII {what}; expected ASCII, or SMTPUTF8 on MAIL FROM (RFC 6531 §3.3), or lenient mode",
            )
        try:
            return path.decode("utf-8")
        except UnicodeDecodeError:
            self.fail("malformed-path", at, f"{what} is not valid UTF-8; expected UTF-8 (RFC 6531 §3.3)")

    def mail(self, args, at):
        if self.phase != IDLE:
            self.fail(
                "out-of-sequence",
                at,
                f"MAIL FROM inside the transaction begun at offset {self.mail_at}; expected RCPT TO, DATA or RSET",
            )
        usage = "MAIL FROM:<reverse-path>"
        rest = self.after_keyword(args, b"FROM:", usage, at)
        path, tail = self.split_path(rest, False, "reverse-path", usage, at)
        tokens = self.tokens(tail)
        utf8 = any(t.partition(b"=")[0].upper() == b"SMTPUTF8" for t in tokens)
        params = self.params(tokens, utf8, at)
        self.reverse_path = self.path_text(path, utf8, "reverse-path", at)
        self.mail_params = params
        self.utf8 = utf8
        self.eight_bit = _eight_bit(params)
        self.mail_at = at
        self.phase = MAIL

    def rcpt(self, args, at):
        if self.phase == IDLE:
            self.fail("out-of-sequence", at, "RCPT TO before MAIL FROM; expected MAIL FROM:<reverse-path> first")
        usage = "RCPT TO:<forward-path>"
        rest = self.after_keyword(args, b"TO:", usage, at)
        path, tail = self.split_path(rest, True, "forward-path", usage, at)
        params = self.params(self.tokens(tail), self.utf8, at)
        self.forward_paths.append((self.path_text(path, self.utf8, "forward-path", at), params))
        self.phase = RCPT


def decode(batch, lenient):
    return Decoder(bytes(batch), lenient).run()


# --------------------------------------------------------------------------
# The component's exports


def _stage_error(e):
    if isinstance(e, Failure):
        return StageError(code=e.code, message=e.message, offset=e.offset)
    # Never trap: a bug here is reported, not a crash of the host's call.
    return StageError(
        code="internal-error",
        message=f"python bsmtp-codec bug: {type(e).__name__}: {e}",
        offset=None,
    )


class PluginInfo(exports.PluginInfo):
    def describe(self) -> Info:
        return Info(
            name="bsmtp-codec",
            version=VERSION,
            description="RFC 2442 Batch SMTP codec in Python (componentize-py), standard library only",
        )


class BsmtpCodec(exports.BsmtpCodec):
    def encode(self, messages, options: EncodeOptions) -> bytes:
        try:
            return encode(messages, options)
        except Exception as e:  # noqa: BLE001 - every failure becomes a stage-error
            raise Err(_stage_error(e))

    def decode(self, batch: bytes, options: DecodeOptions):
        try:
            return decode(batch, options.mode == DecodeMode.LENIENT)
        except Exception as e:  # noqa: BLE001
            raise Err(_stage_error(e))
