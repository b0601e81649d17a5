#!/usr/bin/env python3
"""Generate the Batch SMTP codec vectors (RFC 2442 over RFC 5321 syntax).

Writes vectors/bsmtp/encode.json, vectors/bsmtp/decode.json (strict and
lenient cases, told apart by input.mode) and the small batches in
vectors/bsmtp/files/. Expected batches for `encode` come from the canonical
encoding in vectors/README.md, written out by the small reference encoder
below; decode expectations are written by hand from RFC 5321 §4.1 (command
syntax), §4.5.2 (transparency) and §4.5.3.1 (size limits). Deterministic.

    python3 vectors/tools/gen_bsmtp_vectors.py [--out DIR]
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vectorlib as V  # noqa: E402

GENERATOR = "vectors/tools/gen_bsmtp_vectors.py"

R2442 = "RFC 2442"
R_MAIL, R_RCPT, R_DATA = "RFC 5321 §4.1.1.2", "RFC 5321 §4.1.1.3", "RFC 5321 §4.1.1.4"
R_RSET, R_NOOP, R_QUIT = "RFC 5321 §4.1.1.5", "RFC 5321 §4.1.1.9", "RFC 5321 §4.1.1.10"
R_HELO = "RFC 5321 §4.1.1.1"
R_ARGS, R_LIT, R_ORDER = "RFC 5321 §4.1.2", "RFC 5321 §4.1.3", "RFC 5321 §4.1.4"
R_TRANSP, R_LEN = "RFC 5321 §4.5.2", "RFC 5321 §4.5.3.1"
R_LINE = "RFC 5321 §2.3.8"
R_CASE = "RFC 5321 §2.4"
R_TXN = "RFC 5321 §3.3"
R_8BIT, R_UTF8 = "RFC 6152", "RFC 6531"

FLAG_NOTES = {
    "greeting": "HELO / EHLO",
    "quit": "QUIT",
    "null-path": "null reverse-path <>",
    "multi-rcpt": "several recipients",
    "multi-message": "several transactions in one batch",
    "params": "ESMTP parameters on MAIL or RCPT",
    "dot-stuffing": "lines beginning with '.' (transparency)",
    "line-ends": "CR / LF normalisation or checking",
    "8bit": "8-bit content (BODY=8BITMIME)",
    "smtputf8": "UTF-8 mailboxes (SMTPUTF8)",
    "injection": "a value that would inject a command if written as is",
    "exim": "written as Exim's BSMTP output (use_bsmtp / -bS) writes it",
    "source-route": "A-d-l source route in a path",
    "quoted": "quoted-string local part",
    "address-literal": "address literal domain",
    "postmaster": "RCPT TO:<Postmaster>",
    "rset-noop": "RSET / NOOP",
    "case": "verbs and keywords in mixed case",
    "length": "line or path length limits",
    "sequence": "command order",
    "syntax": "command or argument syntax",
    "strict": "decode in strict mode",
    "lenient": "decode in lenient mode",
    "empty": "empty content or batch",
    "rfc-open": "the RFC leaves this to the implementation: on an `acceptable` case either outcome "
                "conforms; on a `valid` or `invalid` case the suite takes a position (usually the "
                "stricter one) that the RFC does not require, and the comment says which",
}

# ---------------------------------------------------------------------------
# Messages and the canonical encoding (vectors/README.md, `encode`)
# ---------------------------------------------------------------------------


def param(keyword, value=None):
    return {"keyword": keyword, "value": value}


def fp(mailbox, *params):
    return {"mailbox": mailbox, "parameters": list(params)}


def msg(reverse_path, forward_paths, content, mail_parameters=()):
    """content: str (UTF-8) or bytes."""
    if isinstance(content, str):
        content = content.encode("utf-8")
    return {"reverse_path": reverse_path, "mail_parameters": list(mail_parameters),
            "forward_paths": [f if isinstance(f, dict) else fp(f) for f in forward_paths],
            "content": content}


def normalise_content(c):
    """Bare CR and bare LF to CRLF, then a final CRLF if missing."""
    out, i = bytearray(), 0
    while i < len(c):
        if c[i] == 13:
            out += b"\r\n"
            i += 2 if i + 1 < len(c) and c[i + 1] == 10 else 1
        elif c[i] == 10:
            out += b"\r\n"
            i += 1
        else:
            out.append(c[i])
            i += 1
    if not out.endswith(b"\r\n"):
        out += b"\r\n"
    return bytes(out)


def dot_stuff(c):
    lines = c[:-2].split(b"\r\n")
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)


def params_text(params):
    return "".join(" " + p["keyword"] + ("" if p["value"] is None else "=" + p["value"]) for p in params)


def encode(messages, greeting=None, quit=False):
    out = bytearray()
    if greeting:
        (verb, dom), = greeting.items()
        out += ("%s %s\r\n" % (verb.upper(), dom)).encode()
    for m in messages:
        out += ("MAIL FROM:<%s>%s\r\n" % (m["reverse_path"], params_text(m["mail_parameters"]))).encode()
        for f in m["forward_paths"]:
            out += ("RCPT TO:<%s>%s\r\n" % (f["mailbox"], params_text(f["parameters"]))).encode()
        out += b"DATA\r\n" + dot_stuff(normalise_content(m["content"])) + b".\r\n"
    if quit:
        out += b"QUIT\r\n"
    return bytes(out)


def json_msg(m):
    """Message as it appears in a manifest (content as Bytes)."""
    j = dict(m)
    j["content"] = V.as_bytes(m["content"], prefer_text=True)
    return j


def Bt(b):
    if isinstance(b, str):
        b = b.encode("utf-8")
    return V.as_bytes(b, prefer_text=True)

# ---------------------------------------------------------------------------
# encode.json
# ---------------------------------------------------------------------------


A, BOB, CAROL = "alice@earth.example", "bob@moon.example", "carol@mars.example"
SIMPLE = "Subject: hi\r\n\r\nhello\r\n"


def gen_encode():
    m = V.Manifest("bsmtp-codec", "encode", "Encoding messages as one Batch SMTP object (canonical form)",
                   [R2442, "RFC 5321"], GENERATOR, FLAG_NOTES, "bsmtp-encode")
    NONE = {"greeting": None, "quit": False}

    def ok(comment, flags, refs, messages, options=NONE):
        g = options["greeting"]
        m.add(comment, flags, refs, "valid",
              {"messages": [json_msg(x) for x in messages], "options": options},
              expected={"batch": Bt(encode(messages, g, options["quit"]))})

    def bad(comment, flags, refs, messages, error, options=NONE):
        m.add(comment, flags, refs, "invalid",
              {"messages": [json_msg(x) for x in messages], "options": options}, error=error)

    def acc(comment, flags, refs, messages, options=NONE):
        m.add(comment, flags + ["rfc-open"], refs, "acceptable",
              {"messages": [json_msg(x) for x in messages], "options": options})

    one = [msg(A, [BOB], SIMPLE)]
    ok("one message, no greeting, no QUIT", [], [R2442, R_MAIL, R_RCPT, R_DATA], one)
    ok("HELO greeting and QUIT", ["greeting", "quit"], [R_HELO, R_QUIT], one,
       {"greeting": {"helo": "earth-gw.example"}, "quit": True})
    ok("EHLO greeting and QUIT", ["greeting", "quit"], [R_HELO, R_QUIT], one,
       {"greeting": {"ehlo": "earth-gw.example"}, "quit": True})
    ok("EHLO greeting without QUIT", ["greeting"], [R_HELO], one,
       {"greeting": {"ehlo": "earth-gw.example"}, "quit": False})
    ok("QUIT without greeting", ["quit"], [R_QUIT], one, {"greeting": None, "quit": True})
    ok("null reverse-path is written <>", ["null-path"], [R_MAIL, R_ARGS],
       [msg("", [A], "Subject: delivery status\r\n\r\nfailed\r\n")])
    ok("three recipients, one RCPT each, in order", ["multi-rcpt"], [R_RCPT],
       [msg(A, [BOB, CAROL, "dave@moon.example"], SIMPLE)])
    ok("three messages in one batch", ["multi-message"], [R2442, R_TXN],
       [msg(A, [BOB], "Subject: 1\r\n\r\none\r\n"), msg(BOB, [A, CAROL], "Subject: 2\r\n\r\ntwo\r\n"),
        msg("", [A], "Subject: 3\r\n\r\nthree\r\n")])
    ok("BODY=8BITMIME and SIZE on MAIL, UTF-8 content passed as is", ["params", "8bit"], [R_MAIL, R_8BIT],
       [msg(A, [BOB], "Subject: Grüße\r\n\r\nGrüße vom Mond 🌙\r\n", [param("BODY", "8BITMIME"), param("SIZE", "52")])])
    ok("SMTPUTF8 (no value) with UTF-8 mailboxes", ["params", "smtputf8", "8bit"], [R_UTF8, R_ARGS],
       [msg("jörg@erde.example", ["ólafur@tungl.example"], "Subject: hæ\r\n\r\nhæ\r\n",
            [param("SMTPUTF8"), param("BODY", "8BITMIME")])])
    ok("RCPT parameters NOTIFY and ORCPT", ["params"], [R_RCPT, "RFC 3461"],
       [msg(A, [fp(BOB, param("NOTIFY", "SUCCESS,FAILURE"), param("ORCPT", "rfc822;bob@moon.example")),
                fp(CAROL, param("NOTIFY", "NEVER"))], SIMPLE, [param("RET", "HDRS"), param("ENVID", "abc123")])])
    ok("a line that is a single '.' is written '..'", ["dot-stuffing"], [R_TRANSP],
       [msg(A, [BOB], "Subject: dots\r\n\r\nabove\r\n.\r\nbelow\r\n")])
    ok("a line '..' is written '...'", ["dot-stuffing"], [R_TRANSP],
       [msg(A, [BOB], "Subject: dots\r\n\r\n..\r\n")])
    ok("a line '.x' is written '..x'", ["dot-stuffing"], [R_TRANSP],
       [msg(A, [BOB], "Subject: dots\r\n\r\n.signature\r\n")])
    ok("the first content line starting with '.' is stuffed too", ["dot-stuffing"], [R_TRANSP],
       [msg(A, [BOB], ".hidden: header-like\r\n\r\nbody\r\n")])
    ok("content '.' without line end becomes '..' CRLF", ["dot-stuffing", "line-ends"], [R_TRANSP],
       [msg(A, [BOB], ".")])
    ok("dots inside or at the end of a line are not stuffed; ' .' is not stuffed", ["dot-stuffing"],
       [R_TRANSP], [msg(A, [BOB], "a.b\r\nend.\r\n .\r\n")])
    ok("bare LF line ends become CRLF, then dot-stuffing applies", ["line-ends", "dot-stuffing"],
       [R_LINE, R_TRANSP], [msg(A, [BOB], "Subject: lf\n\nline\n.\n..x\n")])
    ok("bare CR line ends become CRLF", ["line-ends"], [R_LINE],
       [msg(A, [BOB], "Subject: cr\r\rold mac\rtext\r")])
    ok("CR CR LF is a bare CR then CRLF; LF CR is two line ends", ["line-ends"], [R_LINE],
       [msg(A, [BOB], "a\r\r\nb\n\rc\r\n")])
    ok("content without a final line end gets CRLF appended", ["line-ends"], [R_DATA],
       [msg(A, [BOB], "Subject: x\r\n\r\nno final newline")])
    ok("content ending in an empty line keeps it", ["line-ends"], [R_DATA],
       [msg(A, [BOB], "Subject: x\r\n\r\nbody\r\n\r\n")])
    ok("empty content: CRLF is appended, so the object carries one empty line", ["empty", "line-ends"],
       [R_DATA], [msg(A, [BOB], "")])
    ok("no messages, HELO and QUIT only", ["empty", "greeting", "quit"], [R2442],
       [], {"greeting": {"helo": "earth-gw.example"}, "quit": True})
    ok("no messages, no greeting, no QUIT: the empty object", ["empty"], [R2442], [])
    # RFC 5321 §4.1.1.3 and Appendix C: clients SHOULD NOT use source
    # routes and servers SHOULD ignore them; writing one as given (what
    # deepmail does) and dropping it (what Exim's use_bsmtp does) both
    # conform.
    acc("source route in a forward-path: written as given, or dropped (RFC 5321 Appendix C: "
        "servers SHOULD ignore routes)", ["source-route"], [R_ARGS, "RFC 5321 Appendix C"],
        [msg(A, ["@relay.example,@gw.moon.example:bob@moon.example"], SIMPLE)])
    ok("quoted local part without spaces", ["quoted"], [R_ARGS],
       [msg('"alice.smith"@earth.example', ['"b\\"ob"@moon.example'], SIMPLE)])
    ok("address literals (IPv4, IPv6)", ["address-literal"], [R_LIT],
       [msg("alice@[192.0.2.1]", ["bob@[IPv6:2001:db8::25]"], SIMPLE)])
    ok("RCPT TO:<Postmaster> without domain", ["postmaster"], [R_RCPT], [msg(A, ["Postmaster"], SIMPLE)])
    ok("8-bit content that is not UTF-8 (Latin-1) passes byte for byte", ["8bit"], [R_8BIT],
       [msg(A, [BOB], b"Subject: caf\xe9\r\n\r\nd\xe9j\xe0 vu\r\n", [param("BODY", "8BITMIME")])])
    ok("a content line reading 'QUIT' or 'MAIL FROM:' is content, written as is", [], [R_DATA],
       [msg(A, [BOB], "Subject: x\r\n\r\nQUIT\r\nMAIL FROM:<evil@x>\r\n")])

    acc("quoted local part containing a space: valid RFC 5321 Quoted-string, but the WIT lists spaces "
        "among what encode may refuse (invalid-envelope)", ["quoted"], [R_ARGS],
        [msg(A, ['"bob smith"@moon.example'], SIMPLE)])
    acc("content line of 1200 octets: over the 998 limit of §4.5.3.1.6 without BINARYMIME; encode "
        "may write it or refuse", ["length"], [R_LEN], [msg(A, [BOB], "Subject: x\r\n\r\n" + "a" * 1200 + "\r\n")])
    acc("content with a NUL octet: encode has no rule for it; §4.5.2 allows any ASCII character in mail "
        "data, RFC 5322 §3.5 excludes NUL, so decoders may refuse or accept it too",
        ["8bit"], [R_LINE, R_TRANSP, "RFC 5322 §3.5"], [msg(A, [BOB], "Subject: x\r\n\r\nnul\x00here\r\n")])
    acc("local part of 65 octets: over §4.5.3.1.1's 64 but §4.5.3.1 asks for no limits where possible",
        ["length"], [R_LEN], [msg(A, ["b" * 65 + "@moon.example"], SIMPLE)])

    bad("message without recipients", ["multi-rcpt"], [R_DATA, R_ORDER], [msg(A, [], SIMPLE)], "no-recipients")
    bad("second message without recipients", ["multi-message"], [R_DATA],
        [msg(A, [BOB], SIMPLE), msg(A, [], SIMPLE)], "no-recipients")
    for where, rp, fwd, why in [
        ("reverse", "alice@earth.example>\r\nRCPT TO:<evil@x.example", BOB, "CRLF (command injection)"),
        ("reverse", "alice@earth\nexample", BOB, "bare LF"),
        ("reverse", "alice@earth.example\x00", BOB, "NUL"),
        ("reverse", "<alice@earth.example", BOB, "'<'"),
        ("forward", A, "bob@moon.example>", "'>'"),
        ("forward", A, "bob smith@moon.example", "an unquoted space"),
        ("forward", A, "bob@moon.example\rx", "bare CR"),
        ("forward", A, "bob@moon.example> NOTIFY=NEVER", "'>' and a space (parameter injection)"),
    ]:
        bad("%s-path containing %s" % (where, why), ["injection"], [R_ARGS],
            [msg(rp, [fwd], SIMPLE)], "invalid-envelope")
    for p, why in [
        (param("BO DY", "8BITMIME"), "keyword with a space"),
        (param("", "8BITMIME"), "empty keyword"),
        (param("-X", "1"), "keyword starting with '-'"),
        (param("X_Y", "1"), "keyword with '_'"),
        (param("BODY=8BITMIME"), "keyword containing '='"),
        (param("BODY", "8BIT MIME"), "value with a space"),
        (param("BODY", "A=B"), "value containing '='"),
        (param("BODY", ""), "empty value (esmtp-value is 1*char)"),
        (param("ENVID", "x\r\nRCPT TO:<evil@x.example>"), "value with CRLF"),
    ]:
        bad("MAIL parameter: " + why, ["params", "injection"], [R_ARGS],
            [msg(A, [BOB], SIMPLE, [p])], "invalid-envelope")
    bad("RCPT parameter value with a space", ["params", "injection"], [R_ARGS],
        [msg(A, [fp(BOB, param("NOTIFY", "SUCCESS FAILURE"))], SIMPLE)], "invalid-envelope")
    bad("greeting domain containing CRLF", ["greeting", "injection"], [R_HELO],
        [msg(A, [BOB], SIMPLE)], "invalid-envelope",
        {"greeting": {"helo": "earth.example\r\nRCPT TO:<evil@x.example>"}, "quit": False})
    return m

# ---------------------------------------------------------------------------
# decode.json
# ---------------------------------------------------------------------------


EXIM_MESSAGES = [
    msg("alice@earth.example", ["bob@moon.example", "carol@moon.example"],
        "Received: from alice by earth-gw.example with local (Exim 4.97)\r\n"
        "\tid 1tAbCd-000001-2x; Tue, 28 Oct 2025 10:00:00 +0000\r\n"
        "From: alice@earth.example\r\nTo: bob@moon.example, carol@moon.example\r\n"
        "Subject: status\r\n\r\nAll systems nominal.\r\n.\r\n..\r\n"),
    msg("", ["alice@earth.example"],
        "From: Mail Delivery System <Mailer-Daemon@moon.example>\r\nSubject: Mail delivery failed\r\n"
        "\r\nThis message was created automatically.\r\n"),
    msg("dave@earth.example", ["erin@moon.example"],
        "Subject: last\r\n\r\n.leading dot\r\nend\r\n"),
]


def exim_batch(crlf=True, helo_per_message=False):
    out = b""
    for m in EXIM_MESSAGES:
        if helo_per_message:
            out += b"HELO earth-gw.example\r\n"
        out += encode([m])
    return out if crlf else out.replace(b"\r\n", b"\n")


def gen_decode(files_dir):
    m = V.Manifest("bsmtp-codec", "decode", "Decoding a Batch SMTP object (strict and lenient)",
                   [R2442, "RFC 5321"], GENERATOR, FLAG_NOTES, "bsmtp-decode")

    def ok(comment, flags, refs, batch, messages, mode="strict"):
        m.add(comment, [mode] + flags, refs, "valid", {"batch": batch if isinstance(batch, dict) else Bt(batch), "mode": mode},
              expected={"messages": [json_msg(x) for x in messages]})

    def bad(comment, flags, refs, batch, error, mode="strict"):
        m.add(comment, [mode] + flags, refs, "invalid", {"batch": batch if isinstance(batch, dict) else Bt(batch), "mode": mode},
              error=error)

    def acc(comment, flags, refs, batch, mode="strict"):
        m.add(comment, [mode] + flags + ["rfc-open"], refs, "acceptable",
              {"batch": Bt(batch), "mode": mode})

    def rt(comment, flags, refs, messages, greeting=None, quit=False, mode="strict"):
        """A batch in canonical form decodes back to its messages."""
        ok(comment, flags, refs, encode(messages, greeting, quit), messages, mode)

    # files
    os.makedirs(files_dir, exist_ok=True)
    files = {"exim-batch-crlf.bsmtp": exim_batch(True), "exim-batch-lf.bsmtp": exim_batch(False),
             "exim-helo-per-message.bsmtp": exim_batch(True, True)}
    for name, data in files.items():
        with open(os.path.join(files_dir, name), "wb") as f:
            f.write(data)

    H = "MAIL FROM:<alice@earth.example>\r\nRCPT TO:<bob@moon.example>\r\n"
    D = "DATA\r\nhello\r\n.\r\n"
    HELLO = [msg(A, [BOB], "hello\r\n")]

    # ---- strict, valid ----
    ok("minimal transaction without greeting or QUIT", [], [R2442, R_MAIL, R_RCPT, R_DATA], H + D, HELLO)
    rt("HELO, one transaction, QUIT", ["greeting", "quit"], [R_HELO, R_QUIT], [msg(A, [BOB], SIMPLE)],
       {"helo": "earth-gw.example"}, True)
    rt("EHLO, one transaction, QUIT", ["greeting", "quit"], [R_HELO, R_QUIT], [msg(A, [BOB], SIMPLE)],
       {"ehlo": "earth-gw.example"}, True)
    rt("null reverse-path", ["null-path"], [R_MAIL, R_ARGS], [msg("", [A], "Subject: bounce\r\n\r\nx\r\n")])
    rt("three recipients", ["multi-rcpt"], [R_RCPT], [msg(A, [BOB, CAROL, "dave@moon.example"], SIMPLE)])
    rt("three transactions", ["multi-message"], [R2442, R_TXN], EXIM_MESSAGES, {"ehlo": "earth-gw.example"}, True)
    ok("'..' decodes to '.', '...' to '..', '..x' to '.x'", ["dot-stuffing"], [R_TRANSP],
       H + "DATA\r\n..\r\n...\r\n..x\r\n.\r\n", [msg(A, [BOB], ".\r\n..\r\n.x\r\n")])
    ok("a line '.x' that was never stuffed loses its first '.' (§4.5.2)", ["dot-stuffing"], [R_TRANSP],
       H + "DATA\r\n.x\r\n. y\r\n.\r\n", [msg(A, [BOB], "x\r\n y\r\n")])
    ok("' .' is content, not the end of data", ["dot-stuffing"], [R_TRANSP],
       H + "DATA\r\n .\r\n.\r\n", [msg(A, [BOB], " .\r\n")])
    ok("DATA immediately followed by '.' gives empty content", ["empty"], [R_DATA],
       H + "DATA\r\n.\r\n", [msg(A, [BOB], "")])
    ok("empty object: no transactions", ["empty"], [R2442], "", [])
    ok("HELO and QUIT only: no transactions", ["empty", "greeting", "quit"], [R2442],
       "HELO earth-gw.example\r\nQUIT\r\n", [])
    rt("BODY=8BITMIME and SIZE, UTF-8 content", ["params", "8bit"], [R_MAIL, R_8BIT],
       [msg(A, [BOB], "Subject: Grüße\r\n\r\nGrüße 🌙\r\n", [param("BODY", "8BITMIME"), param("SIZE", "40")])])
    rt("8-bit Latin-1 content with BODY=8BITMIME, byte for byte", ["8bit", "params"], [R_8BIT],
       [msg(A, [BOB], b"Subject: caf\xe9\r\n\r\nd\xe9j\xe0 vu\r\n", [param("BODY", "8BITMIME")])])
    rt("SMTPUTF8 with UTF-8 mailboxes", ["smtputf8", "params"], [R_UTF8],
       [msg("jörg@erde.example", ["ólafur@tungl.example"], "Subject: hæ\r\n\r\nhæ\r\n",
            [param("SMTPUTF8"), param("BODY", "8BITMIME")])])
    rt("RCPT parameters NOTIFY and ORCPT, MAIL parameters RET and ENVID", ["params"], [R_RCPT, "RFC 3461"],
       [msg(A, [fp(BOB, param("NOTIFY", "SUCCESS,FAILURE"), param("ORCPT", "rfc822;bob+2B@moon.example"))],
            SIMPLE, [param("RET", "HDRS"), param("ENVID", "QQ314159")])])
    ok("verbs and FROM:/TO: in any case; keywords kept as written", ["case", "params"], [R_CASE],
       "helo earth-gw.example\r\nmail from:<alice@earth.example> body=8bitmime\r\n"
       "Rcpt To:<bob@moon.example> notify=never\r\nData\r\nhello\r\n.\r\nquit\r\n",
       [msg(A, [fp(BOB, param("notify", "never"))], "hello\r\n", [param("body", "8bitmime")])])
    # RFC 5321 §4.1.1.3 / Appendix C: a server MUST accept source-route
    # syntax and SHOULD ignore the route; keeping it as written (deepmail)
    # and dropping it (Exim) both conform, so no output is required.
    acc("source routes in both paths: kept as written or ignored (RFC 5321 §4.1.1.3, Appendix C)",
        ["source-route"], [R_ARGS, "RFC 5321 Appendix C"],
        "MAIL FROM:<@earth-gw.example:alice@earth.example>\r\n"
        "RCPT TO:<@relay.example,@gw.moon.example:bob@moon.example>\r\n" + D)
    ok("quoted local parts, with a space and with an escaped quote", ["quoted"], [R_ARGS],
       'MAIL FROM:<"alice smith"@earth.example>\r\nRCPT TO:<"b\\"ob"@moon.example>\r\n' + D,
       [msg('"alice smith"@earth.example', ['"b\\"ob"@moon.example'], "hello\r\n")])
    ok("address literals: IPv4 and IPv6", ["address-literal"], [R_LIT],
       "MAIL FROM:<alice@[192.0.2.1]>\r\nRCPT TO:<bob@[IPv6:2001:db8::25]>\r\n" + D,
       [msg("alice@[192.0.2.1]", ["bob@[IPv6:2001:db8::25]"], "hello\r\n")])
    ok("RCPT TO:<Postmaster>, <postmaster> and <Postmaster@domain>", ["postmaster", "multi-rcpt"], [R_RCPT],
       "MAIL FROM:<>\r\nRCPT TO:<Postmaster>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<Postmaster@moon.example>\r\n" + D,
       [msg("", ["Postmaster", "postmaster", "Postmaster@moon.example"], "hello\r\n")])
    ok("RSET and NOOP (with and without argument) between transactions", ["rset-noop"], [R_RSET, R_NOOP, R2442],
       "NOOP\r\n" + H + D + "RSET\r\nNOOP still here\r\n" + H + D + "QUIT\r\n", HELLO + HELLO)
    ok("RSET inside a transaction aborts it; the next transaction is kept", ["rset-noop", "sequence"], [R_RSET],
       "MAIL FROM:<carol@mars.example>\r\nRCPT TO:<dave@moon.example>\r\nRSET\r\n" + H + D, HELLO)
    ok("NOOP inside a transaction changes nothing", ["rset-noop"], [R_NOOP],
       "MAIL FROM:<alice@earth.example>\r\nNOOP\r\nRCPT TO:<bob@moon.example>\r\n" + D, HELLO)
    ok("Exim-style batch with CRLF: no HELO, no QUIT, three transactions", ["exim", "multi-message"],
       [R2442, R_TRANSP], {"file": "files/exim-batch-crlf.bsmtp"}, EXIM_MESSAGES)
    ok("Exim-style batch with HELO repeated before every transaction", ["exim", "greeting", "multi-message"],
       [R2442, R_ORDER], {"file": "files/exim-helo-per-message.bsmtp"}, EXIM_MESSAGES)
    ok("content lines reading QUIT and MAIL FROM: are content", [], [R_DATA],
       H + "DATA\r\nQUIT\r\nMAIL FROM:<evil@x.example>\r\n.\r\n",
       [msg(A, [BOB], "QUIT\r\nMAIL FROM:<evil@x.example>\r\n")])
    ok("blank lines after QUIT are allowed", ["quit"], [R_QUIT], H + D + "QUIT\r\n\r\n\r\n", HELLO)
    ok("content line of exactly 998 octets", ["length"], [R_LEN],
       H + "DATA\r\n" + "x" * 998 + "\r\n.\r\n", [msg(A, [BOB], "x" * 998 + "\r\n")])
    # Lines of 999 octets (bsmtp-decode-030 with BODY=8BITMIME, -093 without)
    # were once valid / line-too-long. RFC 6152 does not raise the 998-octet
    # limit of RFC 5321 §4.5.3.1.6 (8bit data per RFC 2045 §2.8 keeps it), and
    # §4.5.3.1 lets a receiver accept larger objects ("implementation
    # techniques that impose no limits ... should be used") or reject them;
    # RFC 2442 warns that longer lines may appear in a batch. So both are
    # `acceptable`, alike, whatever the BODY parameter says.
    acc("content line of 999 octets with BODY=8BITMIME: RFC 6152 does not lift the 998-octet limit of "
        "§4.5.3.1.6, and §4.5.3.1 lets a receiver accept or refuse (line-too-long) longer lines",
        ["length", "8bit"], [R_LEN, R_8BIT, R2442],
        "MAIL FROM:<alice@earth.example> BODY=8BITMIME\r\nRCPT TO:<bob@moon.example>\r\nDATA\r\n" + "y" * 999 + "\r\n.\r\n")

    # ---- strict, acceptable ----
    acc("space between MAIL FROM: and the path: not in the §4.1.2 grammar, but widely written",
        ["syntax"], [R_MAIL], "MAIL FROM: <alice@earth.example>\r\nRCPT TO:<bob@moon.example>\r\n" + D)
    acc("trailing space after a command: receivers SHOULD tolerate it", ["syntax"], ["RFC 5321 §4.1.1"],
        H.replace(">\r\n", "> \r\n", 1) + D)
    acc("8-bit content without BODY=8BITMIME", ["8bit"], [R_8BIT], H + "DATA\r\nGrüße\r\n.\r\n")
    acc("UTF-8 mailbox without SMTPUTF8", ["smtputf8"], [R_ARGS, R_UTF8],
        "MAIL FROM:<jörg@erde.example>\r\nRCPT TO:<bob@moon.example>\r\n" + D)
    acc("local part of 65 octets (limit 64, but no limits is preferred)", ["length"], [R_LEN],
        "MAIL FROM:<alice@earth.example>\r\nRCPT TO:<" + "b" * 65 + "@moon.example>\r\n" + D)
    acc("QUIT inside a transaction: §4.1.1.10 aborts the transaction", ["quit", "sequence"], [R_QUIT],
        H + "QUIT\r\n")
    acc("command line of 600 octets: over §4.5.3.1.4's 512, under 998", ["length"], [R_LEN],
        "MAIL FROM:<alice@earth.example> ENVID=" + "e" * 560 + "\r\nRCPT TO:<bob@moon.example>\r\n" + D)

    # ---- strict, invalid ----
    bad("input ends inside DATA", [], [R_DATA, R_TRANSP], H + "DATA\r\nhello\r\n", "missing-final-dot")
    bad("input ends right after DATA", [], [R_DATA], H + "DATA\r\n", "missing-final-dot")
    bad("last line '..' is a stuffed dot, not the end of data", ["dot-stuffing"], [R_TRANSP],
        H + "DATA\r\nhello\r\n..\r\n", "missing-final-dot")
    bad("input ends after RCPT", [], [R_TXN], H, "incomplete-transaction")
    bad("input ends after MAIL", [], [R_TXN], "MAIL FROM:<alice@earth.example>\r\n", "incomplete-transaction")
    bad("QUIT without CRLF at the end", ["quit", "line-ends"], [R_LINE, R2442], H + D + "QUIT", "unterminated-line")
    bad("RCPT before MAIL", ["sequence"], [R_ORDER], "RCPT TO:<bob@moon.example>\r\n" + D, "out-of-sequence")
    bad("DATA before MAIL", ["sequence"], [R_ORDER], D, "out-of-sequence")
    bad("MAIL inside a transaction", ["sequence"], [R_ORDER], H + H + D, "out-of-sequence")
    # RFC 5321 §4.1.4: an EHLO later in the session that the server finds
    # acceptable MUST reset the state as RSET does, so the first transaction
    # is dropped and the second delivered; but the same section lets the
    # server refuse an EHLO it does not accept ("stay in the same state"), and
    # deepmail's strict mode refuses a greeting inside a transaction
    # (out-of-sequence). Both conform: acceptable.
    acc("EHLO inside a transaction, then a new transaction: §4.1.4 resets the state as RSET does when the "
        "server accepts the EHLO (one message, the second), but lets it refuse the EHLO (out-of-sequence)",
        ["sequence", "greeting"], [R_ORDER, R_RSET],
        "MAIL FROM:<carol@mars.example>\r\nRCPT TO:<dave@moon.example>\r\nEHLO earth-gw.example\r\n" + H + D)
    # RFC 2442 has a BSMTP processor accept DATA even when no recipient is
    # valid (there is no reply to stop the sender), and read the content to
    # the final dot; it does not say the batch is then broken. Reading the
    # content and dropping the empty transaction would conform too; the
    # suite keeps the stricter `no-recipients` (a transaction without any
    # RCPT is a sender bug) and flags it.
    bad("DATA after MAIL without RCPT: refused (no-recipients); RFC 2442 would also let a processor read "
        "the content and drop the transaction, so this is the suite's stricter position",
        ["sequence", "rfc-open"], [R_DATA, R_ORDER, R2442],
        "MAIL FROM:<alice@earth.example>\r\n" + D, "no-recipients")
    for line, why in [("MAIL <alice@earth.example>", "MAIL without FROM:"),
                      ("MAIL FROM<alice@earth.example>", "MAIL FROM without colon")]:
        bad(why, ["syntax"], [R_MAIL], line + "\r\nRCPT TO:<bob@moon.example>\r\n" + D, "malformed-command")
    # RFC 5321 §4.1.1: a command is a verb followed by SP (or CRLF); without
    # the space the first token is no verb at all, which SMTP servers answer
    # with 500 "unrecognized command", so this is unknown-command.
    bad("no space between MAIL and FROM: the token is no known verb", ["syntax"], ["RFC 5321 §4.1.1"],
        "MAILFROM:<alice@earth.example>\r\nRCPT TO:<bob@moon.example>\r\n" + D, "unknown-command")
    bad("RCPT without TO:", ["syntax"], [R_RCPT],
        "MAIL FROM:<alice@earth.example>\r\nRCPT <bob@moon.example>\r\n" + D, "malformed-command")
    bad("blank line between commands", ["syntax"], [R_LINE], "MAIL FROM:<alice@earth.example>\r\n\r\n"
        "RCPT TO:<bob@moon.example>\r\n" + D, "malformed-command")
    bad("HELO without a domain", ["syntax", "greeting"], [R_HELO], "HELO\r\n" + H + D, "malformed-command")
    bad("DATA with an argument", ["syntax"], [R_DATA], H + "DATA now\r\nhello\r\n.\r\n", "malformed-command")
    bad("QUIT with an argument", ["syntax", "quit"], [R_QUIT], H + D + "QUIT now\r\n", "malformed-command")
    bad("RSET with an argument", ["syntax", "rset-noop"], [R_RSET], "RSET all\r\n" + H + D, "malformed-command")
    for rp, rc, why in [
        ("<alice@earth.example", "<bob@moon.example>", "reverse-path without '>'"),
        ("<alice@earth.example>", "<>", "null forward-path"),
        ("<alice@earth.example>", "<bob>", "forward-path without domain (not Postmaster)"),
        ("<Postmaster>", "<bob@moon.example>", "<Postmaster> as reverse-path"),
        ("<alice@earth.example>", "bob@moon.example", "forward-path without angle brackets"),
        ("<alice@earth.example>", "<bob..x@moon.example>", "two dots in a row in the local part"),
        ("<alice@earth.example>", "<bob@-moon.example>", "domain label starting with '-'"),
        ("<alice@earth.example>", "<bob@moon_base.example>", "underscore in a domain"),
        ("<alice@earth.example>", "<bob@[192.0.2.300]>", "IPv4 literal octet over 255"),
        ("<alice@earth.example>", "<@relay.example:>", "source route without a mailbox"),
        ("<alice@earth.example>", "<bob@moon.example@mars.example>", "two '@'"),
        ("<alice@earth.example>", '<"bob@moon.example>', "unterminated quoted string"),
    ]:
        bad(why, ["syntax"], [R_ARGS, R_LIT], "MAIL FROM:%s\r\nRCPT TO:%s\r\n" % (rp, rc) + D, "malformed-path")
    for params, why in [("BODY=", "empty value"), ("=8BITMIME", "empty keyword"), ("BO_DY=8BITMIME", "'_' in keyword"),
                        ("-X=1", "keyword starting with '-'"), ("BODY=8BIT=MIME", "'=' in value"),
                        ("BODY=8BITMIME  SIZE=10", "two spaces between parameters")]:
        bad("MAIL parameter: " + why, ["params", "syntax"], [R_ARGS],
            "MAIL FROM:<alice@earth.example> %s\r\nRCPT TO:<bob@moon.example>\r\n" % params + D, "bad-parameter")
    bad("RCPT parameter: '=' in value", ["params", "syntax"], [R_ARGS],
        "MAIL FROM:<alice@earth.example>\r\nRCPT TO:<bob@moon.example> NOTIFY=A=B\r\n" + D, "bad-parameter")
    for cmd in ["VRFY bob", "EXPN staff", "HELP", "TURN", "ETRN moon.example", "STARTTLS", "AUTH PLAIN", "BDAT 5 LAST", "XYZZY"]:
        bad("%s is not a BSMTP command" % cmd.split()[0], ["syntax"], [R2442],
            cmd + "\r\n" + H + D, "unknown-command")
    # NUL in mail data (bsmtp-decode-086 strict, -110 lenient): RFC 5321
    # §4.5.2 lets mail data carry any of the 128 ASCII characters, while RFC
    # 5322 §3.5 text and RFC 2045 §2.8 (7bit/8bit data) exclude NUL. The
    # RFCs disagree, so refusing (nul-byte) and passing it through both
    # conform: acceptable, as bsmtp-encode-034 is for encoding. NUL in a
    # command line stays invalid: the §4.1.2 grammar has no place for it.
    acc("NUL in content: §4.5.2 lets mail data carry any ASCII character, RFC 5322 §3.5 and RFC 2045 §2.8 "
        "exclude NUL; refusing (nul-byte) or passing it through both conform", [],
        [R_TRANSP, R_LINE, "RFC 5322 §3.5"], H + "DATA\r\nhel\x00lo\r\n.\r\n")
    bad("NUL in a command", [], [R_LINE], "MAIL FROM:<alice@earth.example>\x00\r\nRCPT TO:<bob@moon.example>\r\n" + D,
        "nul-byte")
    bad("bare CR in content", ["line-ends"], [R_LINE], H + "DATA\r\nhel\rlo\r\n.\r\n", "bare-cr")
    bad("bare CR as a command line end", ["line-ends"], [R_LINE],
        "MAIL FROM:<alice@earth.example>\rRCPT TO:<bob@moon.example>\r\n" + D, "bare-cr")
    bad("bare LF as a command line end", ["line-ends"], [R_LINE, R2442],
        "MAIL FROM:<alice@earth.example>\nRCPT TO:<bob@moon.example>\r\n" + D, "bare-lf")
    bad("bare LF in content", ["line-ends"], [R_LINE, R2442], H + "DATA\r\nhello\nworld\r\n.\r\n", "bare-lf")
    bad("Exim-style batch with bare LF line ends", ["exim", "line-ends"], [R2442, R_LINE],
        {"file": "files/exim-batch-lf.bsmtp"}, "bare-lf")
    # Same rule as bsmtp-decode-030 above: acceptable, not line-too-long.
    acc("content line of 999 octets without BODY=8BITMIME: over §4.5.3.1.6's 998, but §4.5.3.1 lets a "
        "receiver accept longer lines or refuse them (line-too-long), as with BODY=8BITMIME",
        ["length"], [R_LEN, R2442], H + "DATA\r\n" + "z" * 999 + "\r\n.\r\n")
    bad("a command after QUIT", ["quit"], [R_QUIT, R2442], H + D + "QUIT\r\n" + H + D, "trailing-garbage")
    bad("text after QUIT", ["quit"], [R_QUIT], H + D + "QUIT\r\n-- \r\nsent from my lander\r\n", "trailing-garbage")

    # ---- lenient ----
    L = "lenient"
    ok("Exim-style batch with bare LF line ends", ["exim", "line-ends", "multi-message"], [R2442],
       {"file": "files/exim-batch-lf.bsmtp"}, EXIM_MESSAGES, mode=L)
    ok("Exim-style batch with CRLF", ["exim", "multi-message"], [R2442],
       {"file": "files/exim-batch-crlf.bsmtp"}, EXIM_MESSAGES, mode=L)
    ok("minimal transaction with bare LF; content gets CRLF", ["line-ends"], [R2442],
       (H + D).replace("\r\n", "\n"), HELLO, mode=L)
    ok("mixed CRLF and bare LF", ["line-ends"], [R2442],
       "MAIL FROM:<alice@earth.example>\nRCPT TO:<bob@moon.example>\r\nDATA\nline one\r\nline two\n.\r\n",
       [msg(A, [BOB], "line one\r\nline two\r\n")], mode=L)
    ok("dot-unstuffing with bare LF", ["line-ends", "dot-stuffing"], [R_TRANSP],
       (H + "DATA\n..\n..x\n.\n").replace("\r\n", "\n"), [msg(A, [BOB], ".\r\n.x\r\n")], mode=L)
    ok("content line of 1200 octets without BODY=8BITMIME", ["length"], [R_LEN],
       H + "DATA\r\n" + "w" * 1200 + "\r\n.\r\n", [msg(A, [BOB], "w" * 1200 + "\r\n")], mode=L)
    ok("blank lines between commands are skipped", ["syntax"], [R2442],
       "\r\n" + "MAIL FROM:<alice@earth.example>\r\n\r\nRCPT TO:<bob@moon.example>\r\n\r\n" + D + "\r\n", HELLO, mode=L)
    ok("junk after QUIT is ignored", ["quit"], [R_QUIT], H + D + "QUIT\r\nMAIL FROM:<x@y>\r\nnot smtp\r\n", HELLO, mode=L)
    ok("QUIT without CRLF at the end", ["quit", "line-ends"], [R_QUIT], H + D + "QUIT", HELLO, mode=L)
    ok("RSET and NOOP between transactions", ["rset-noop"], [R_RSET, R_NOOP],
       H + D + "RSET\nNOOP\n" + H + D, HELLO + HELLO, mode=L)
    ok("lower-case verbs with bare LF", ["case", "line-ends"], [R_CASE],
       "mail from:<alice@earth.example>\nrcpt to:<bob@moon.example>\ndata\nhello\n.\nquit\n", HELLO, mode=L)
    bad("input ends inside DATA", [], [R_DATA], (H + "DATA\nhello\n").replace("\r\n", "\n"), "missing-final-dot", mode=L)
    bad("RCPT before MAIL", ["sequence"], [R_ORDER], "RCPT TO:<bob@moon.example>\n" + D, "out-of-sequence", mode=L)
    # Stricter than RFC 2442 requires, as bsmtp-decode-048 (strict) above.
    bad("DATA without RCPT: refused (no-recipients); RFC 2442 would also let a processor drop the "
        "transaction, so this is the suite's stricter position", ["sequence", "rfc-open"], [R_DATA, R2442],
        "MAIL FROM:<alice@earth.example>\n" + D, "no-recipients", mode=L)
    # Same reading as the strict NUL-in-content case: acceptable.
    acc("NUL in content: refusing (nul-byte) or passing it through both conform (§4.5.2 vs RFC 5322 §3.5)",
        [], [R_TRANSP, R_LINE, "RFC 5322 §3.5"], H + "DATA\nhel\x00lo\n.\n", mode=L)
    bad("malformed forward-path", ["syntax"], [R_ARGS],
        "MAIL FROM:<alice@earth.example>\nRCPT TO:<bob@moon.example\n" + D, "malformed-path", mode=L)
    bad("bare CR in content", ["line-ends"], [R_LINE], H + "DATA\r\nhel\rlo\r\n.\r\n", "bare-cr", mode=L)
    # Lenient mode exists to read real MTA output without losing mail; an
    # implementation may skip a harmless VRFY/EXPN/HELP there (as NOOP) or
    # refuse the batch. Strict mode must refuse (cases above).
    acc("VRFY in a lenient batch: skipping it or refusing the batch are both conforming", ["syntax"], [R2442],
        "VRFY bob\n" + H + D, mode=L)
    bad("input ends after RCPT", [], [R_TXN], H.replace("\r\n", "\n"), "incomplete-transaction", mode=L)
    bad("MAIL inside a transaction", ["sequence"], [R_ORDER], H + H + D, "out-of-sequence", mode=L)
    bad("bad MAIL parameter", ["params"], [R_ARGS],
        "MAIL FROM:<alice@earth.example> BODY=\nRCPT TO:<bob@moon.example>\n" + D, "bad-parameter", mode=L)
    # Exim writes UTF-8 local parts raw in a use_bsmtp batch and never
    # writes MAIL parameters, so no SMTPUTF8 (RFC 6531 §3.4 would want one);
    # `exim -bS` reads such a batch back. Lenient mode reads what Exim
    # writes; strict mode may refuse it (the strict case above is
    # acceptable either way). Octets that are not UTF-8 stay refused.
    ok("UTF-8 mailboxes without SMTPUTF8, as Exim's use_bsmtp writes them", ["exim", "smtputf8"], [R_UTF8, R2442],
       "MAIL FROM:<jörg@erde.example>\nRCPT TO:<zoë@moon.example>\nDATA\nhello\n.\n",
       [msg("jörg@erde.example", ["zoë@moon.example"], "hello\r\n")], mode=L)
    bad("a mailbox that is not UTF-8 (Latin-1 ö)", ["smtputf8", "syntax"], [R_UTF8],
        b"MAIL FROM:<j\xf6rg@erde.example>\nRCPT TO:<bob@moon.example>\nDATA\nhello\n.\n", "malformed-path", mode=L)

    # ---- added after the RFC audit (new ids only after the existing ones) ----
    # §4.5.3.1.6 limits a text line to 1000 octets with CRLF, as the client
    # composed it; the transparency dot of §4.5.2 is added in transit and
    # removed on receipt, so it does not count. A stuffed line of 999 octets
    # on the wire is a 998-octet content line: valid in strict mode.
    ok("dot-stuffed line of 999 octets on the wire is 998 after unstuffing: within §4.5.3.1.6",
       ["length", "dot-stuffing"], [R_LEN, R_TRANSP],
       H + "DATA\r\n.." + "s" * 997 + "\r\n.\r\n", [msg(A, [BOB], "." + "s" * 997 + "\r\n")])
    # ESMTP parameters. The codec keeps keywords and values as written
    # (README "Decoded values"); BODY=7BIT is one of RFC 6152's values.
    ok("BODY=7BIT is kept as written", ["params"], [R_MAIL, R_8BIT],
       "MAIL FROM:<alice@earth.example> BODY=7BIT\r\nRCPT TO:<bob@moon.example>\r\n" + D,
       [msg(A, [BOB], "hello\r\n", [param("BODY", "7BIT")])])
    # RFC 3030 §3 lets BODY=BINARYMIME be used only with BDAT, which BSMTP
    # does not carry; a codec that only checks esmtp-param syntax passes it.
    acc("BODY=BINARYMIME followed by DATA: RFC 3030 §3 requires BDAT for it; the esmtp-param is "
        "well-formed, so keeping it or refusing it (bad-parameter) both conform",
        ["params"], [R_ARGS, "RFC 3030 §3"],
        "MAIL FROM:<alice@earth.example> BODY=BINARYMIME\r\nRCPT TO:<bob@moon.example>\r\n" + D)
    acc("BODY with a value RFC 6152 does not define (BODY=9BIT): well-formed esmtp-param, unknown value",
        ["params"], [R_ARGS, R_8BIT],
        "MAIL FROM:<alice@earth.example> BODY=9BIT\r\nRCPT TO:<bob@moon.example>\r\n" + D)
    acc("SMTPUTF8 with a value (SMTPUTF8=YES): RFC 6531 §3.4 defines it without one; the esmtp-param is "
        "well-formed", ["params", "smtputf8"], [R_ARGS, R_UTF8],
        "MAIL FROM:<alice@earth.example> SMTPUTF8=YES\r\nRCPT TO:<bob@moon.example>\r\n" + D)
    acc("the same keyword twice (BODY=7BIT BODY=8BITMIME): RFC 5321 §4.1.2 does not forbid it, and "
        "which one wins is not said", ["params"], [R_ARGS],
        "MAIL FROM:<alice@earth.example> BODY=7BIT BODY=8BITMIME\r\nRCPT TO:<bob@moon.example>\r\n" + D)
    acc("SIZE=big: RFC 1870 size-value is 1*20DIGIT, but the esmtp-param is well-formed; a syntax-level "
        "codec keeps it", ["params"], [R_ARGS, "RFC 1870"],
        "MAIL FROM:<alice@earth.example> SIZE=big\r\nRCPT TO:<bob@moon.example>\r\n" + D)
    return m


def main():
    out, quiet = V.out_dir_from_args(__doc__.splitlines()[0])
    manifests = [("bsmtp/encode.json", gen_encode()),
                 ("bsmtp/decode.json", gen_decode(os.path.join(out, "bsmtp", "files")))]
    for rel, m in manifests:
        m.write(os.path.join(out, rel))
    V.report(manifests, quiet)


if __name__ == "__main__":
    main()
