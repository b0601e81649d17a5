#!/usr/bin/env python3
"""deepmail-adapter/1 adapter for Exim 4.96 (Debian's exim4-daemon-light).

Speaks the line protocol of vectors/README.md ("Adapter protocol") on
stdin/stdout and runs the real Exim binary for the `bsmtp-codec` stage, one
private sandbox per case: a configuration file written into a temporary
directory and passed with `-C`, its own spool directory and log directory
there, no daemon, no queue runner, foreground delivery (`-odi`), and one
router that accepts every address for one `appendfile` transport writing
into the same directory. Nothing leaves the machine (there is no smtp
transport) and no system file is read or written.

`bsmtp-codec.decode`: the case's batch is Exim's standard input under
`exim -bS` (batched SMTP in, spec ch. 49.11). Exim's verdict is its exit
code: 0 means every transaction was accepted; 1 or 2 means Exim gave up at
an error (1: after accepting some messages), which is a refused batch, with
Exim's stylized report ("501 ...", "Error detected in line N") as the
message. The messages are what Exim delivered: the transport writes each
one with `use_bsmtp` and `use_crlf` to a file named by the message id, so
the envelope sender, the recipients (one RCPT each, in Exim's order) and
the content come from Exim's own output, which is read back here (MAIL,
RCPT, DATA, lines up to the lone dot, the transparency dot removed); the
messages are put in the order of the `<=` (arrival) lines of Exim's main
log. Exim's batched SMTP accepts no ESMTP parameters, so accepted messages
carry none.

`bsmtp-codec.encode`: each message is handed to Exim as local submission,
`exim -odi -oi -f REVERSE-PATH -- FORWARD-PATH...` with the content on
standard input, and the batch is the file the same `use_bsmtp`/`use_crlf`
transport appended every message to. Exim takes the envelope as argv and
has no way to receive ESMTP parameters (or a greeting or QUIT for its
output: those would be text the adapter writes into the configuration), so
cases with any of them are answered `unsupported`.

Two settings keep Exim from adding text that is not the codec's business
(documented options, not patches): `received_header_text =` (no
`Received:` trace header) and `control = suppress_local_fixups` in the
non-SMTP start ACL (no `Message-Id:`, `Date:`, `From:`, `Sender:` added to
local submissions). `allow_domain_literals` is on, so address literals are
addresses rather than policy refusals.

Privilege: called by root with `-C`, Exim keeps root but Debian's build
refuses deliveries as root (FIXED_NEVER_USERS=0), so everything runs as
nobody (65534) and the sandbox's directories are given to it; called by
another user, Exim drops to that user. (Same reasoning as
scripts/peers/exim/exim.conf.in.)

Exim is `$DEEPMAIL_EXIM`, else /usr/sbin/exim4, /usr/sbin/exim, or exim4 /
exim on PATH. Error classes are not reported (`error_classes: false`): the
runner compares only accepted/refused, and the message carries Exim's own
words. Any Python 3 runs it (stdlib only).
"""

import os
import re
import shutil
import subprocess
import tempfile

from adapterlib import serve

FORMAT = "deepmail-adapter/1"
TIMEOUT = 60

CONFIG = """\
# Written by conformance/adapters/exim_adapter.py for one case.
primary_hostname = exim-adapter.invalid
qualify_domain = exim-adapter.invalid
spool_directory = {dir}/spool
split_spool_directory = false
log_file_path = {dir}/log/%slog
log_selector = +received_recipients
exim_user = {uid}
exim_group = {gid}
trusted_users = {uid}
never_users =
deliver_drop_privilege = true
keep_environment =
allow_domain_literals = true
received_header_text =
acl_not_smtp_start = acl_start

begin acl

acl_start:
  accept control = suppress_local_fixups

begin routers

# Decode: the envelope as Exim's use_bsmtp writer gives it (MAIL, RCPT...),
# and the content exactly as delivered to a plain file (no prefix, suffix
# or "From " escaping). Encode: only the BSMTP file is used.
envelope:
  driver = accept
  unseen
  transport = envelope

content:
  driver = accept
  transport = {content}

begin transports

envelope:
  driver = appendfile
  file = {dir}/out/{file}
  use_bsmtp
  use_crlf
  batch_max = 100000
  user = {uid}
  group = {gid}

content:
  driver = appendfile
  file = {dir}/out/$message_exim_id.content
  use_crlf
  message_prefix =
  message_suffix =
  check_string =
  escape_string =
  batch_max = 100000
  user = {uid}
  group = {gid}

discard:
  driver = appendfile
  file = /dev/null
  user = {uid}
  group = {gid}
"""


class Refused(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def find_exim():
    env = os.environ.get("DEEPMAIL_EXIM")
    if env:
        return env if os.access(env, os.X_OK) else None
    for c in ("/usr/sbin/exim4", "/usr/sbin/exim"):
        if os.access(c, os.X_OK):
            return c
    return shutil.which("exim4") or shutil.which("exim")


# Found when the adapter starts (main), not on import: matrix.py imports
# find_exim from here.
EXIM = None


def exim_version():
    if not EXIM:
        return None
    try:
        out = subprocess.run([EXIM, "-bV"], capture_output=True, text=True, timeout=TIMEOUT).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.match(r"Exim version (\S+)", out)
    return m.group(1) if m else None


VERSION = None


class Sandbox:
    """One temporary directory with a configuration, spool, log and out/."""

    def __init__(self, file_name, content):
        self.dir = tempfile.mkdtemp(prefix="deepmail-exim-")
        root = os.geteuid() == 0
        uid, gid = (65534, 65534) if root else (os.getuid(), os.getgid())
        os.chmod(self.dir, 0o755)
        for sub in ("spool", "log", "out"):
            p = os.path.join(self.dir, sub)
            os.mkdir(p)
            if root:
                os.chown(p, uid, gid)
        self.conf = os.path.join(self.dir, "exim.conf")
        with open(self.conf, "w") as f:
            f.write(CONFIG.format(dir=self.dir, uid=uid, gid=gid, file=file_name, content=content))

    def run(self, args, stdin):
        return subprocess.run([EXIM, "-C", self.conf] + args, input=stdin,
                              capture_output=True, timeout=TIMEOUT)

    def path(self, *rel):
        return os.path.join(self.dir, *rel)

    def arrivals(self, protocol):
        """Message ids of the `<=` lines of the main log with P=PROTOCOL,
        in order (a bounce Exim might generate itself is P=local)."""
        try:
            log = open(self.path("log", "mainlog"), encoding="utf-8", errors="replace").read()
        except FileNotFoundError:
            return []
        return [mid for mid, proto in re.findall(r"^\S+ \S+ (\S+) <= .*? P=(\S+)", log, re.M)
                if proto == protocol]

    def log_tail(self):
        text = ""
        for name in ("mainlog", "paniclog", "rejectlog"):
            try:
                text += open(self.path("log", name), encoding="utf-8", errors="replace").read()
            except FileNotFoundError:
                pass
        return text[-1500:]

    def close(self):
        shutil.rmtree(self.dir, ignore_errors=True)


def read_bsmtp_output(data):
    """Exim's own use_bsmtp + use_crlf output: MAIL, RCPT..., DATA, the
    dot-stuffed content, '.'; as often as Exim wrote a transaction."""
    messages = []
    lines = data.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    i = 0
    while i < len(lines):
        m = re.fullmatch(rb"MAIL FROM:<(.*)>", lines[i])
        if not m:
            raise Refused("adapter-failed", "unexpected line in Exim's output: %r" % lines[i][:80])
        msg = {"reverse_path": m.group(1).decode("utf-8", "surrogateescape"),
               "mail_parameters": [], "forward_paths": []}
        i += 1
        while i < len(lines) and lines[i].startswith(b"RCPT TO:<"):
            r = re.fullmatch(rb"RCPT TO:<(.*)>", lines[i])
            msg["forward_paths"].append({"mailbox": r.group(1).decode("utf-8", "surrogateescape"),
                                         "parameters": []})
            i += 1
        if i >= len(lines) or lines[i] != b"DATA":
            raise Refused("adapter-failed", "no DATA line in Exim's output")
        i += 1
        content = []
        while i < len(lines) and lines[i] != b".":
            line = lines[i]
            content.append(line[1:] if line.startswith(b".") else line)
            i += 1
        if i >= len(lines):
            raise Refused("adapter-failed", "no final dot in Exim's output")
        i += 1
        msg["content"] = b"".join(l + b"\r\n" for l in content)
        messages.append(msg)
    return messages


def as_json(messages):
    out = []
    for m in messages:
        m = dict(m)
        for k in ("reverse_path",):
            m[k] = m[k].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        for f in m["forward_paths"]:
            f["mailbox"] = f["mailbox"].encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        m["content"] = {"hex": m["content"].hex()}
        out.append(m)
    return out


def exim_said(proc):
    text = (proc.stdout or b"").decode("utf-8", "replace").strip()
    err = (proc.stderr or b"").decode("utf-8", "replace").strip()
    return (text + ("\n" if text and err else "") + err)[:1500]


def decode(inp):
    batch = bytes.fromhex(inp["batch"]["hex"])
    box = Sandbox("$message_exim_id", "content")
    try:
        proc = box.run(["-odi", "-bS"], batch)
        ids = box.arrivals("local-bsmtp")
        if proc.returncode != 0:
            raise Refused("exim-refused", "exim -bS exit %d after accepting %d message(s): %s"
                          % (proc.returncode, len(ids), exim_said(proc)))
        messages = []
        for mid in ids:
            try:
                data = open(box.path("out", mid), "rb").read()
            except FileNotFoundError:
                raise Refused("adapter-failed", "Exim accepted %s but delivered nothing: %s"
                              % (mid, box.log_tail())) from None
            parts = read_bsmtp_output(data)
            if len(parts) != 1:
                raise Refused("adapter-failed", "Exim split %s into %d deliveries" % (mid, len(parts)))
            try:
                parts[0]["content"] = open(box.path("out", mid + ".content"), "rb").read()
            except FileNotFoundError:
                raise Refused("adapter-failed", "no content file for %s: %s"
                              % (mid, box.log_tail())) from None
            messages.append(parts[0])
        return {"messages": as_json(messages)}
    finally:
        box.close()


def encode(inp):
    opts = inp.get("options") or {}
    if opts.get("greeting") or opts.get("quit"):
        raise Unsupported("Exim's use_bsmtp writer writes no EHLO and no QUIT; a HELO "
                          "only as configured text (message_prefix), per message")
    msgs = inp["messages"]
    for m in msgs:
        if m.get("mail_parameters") or any(f.get("parameters") for f in m.get("forward_paths", [])):
            raise Unsupported("Exim's local submission (-f, recipients as arguments) takes "
                              "no ESMTP parameters")
    box = Sandbox("batch.bsmtp", "discard")
    try:
        for n, m in enumerate(msgs):
            rcpts = [f["mailbox"] for f in m["forward_paths"]]
            content = bytes.fromhex(m["content"]["hex"])
            # -oep: errors to stderr, not a bounce message.
            args = ["-odi", "-oi", "-oep", "-f", m["reverse_path"] or "<>", "--"] + rcpts
            if any("\0" in a for a in args):
                raise Unsupported("an argument list cannot carry a NUL to Exim")
            proc = box.run(args, content)
            if proc.returncode != 0:
                raise Refused("exim-refused", "exim exit %d on message %d: %s"
                              % (proc.returncode, n + 1, exim_said(proc)))
            if len(box.arrivals("local")) != n + 1:
                raise Refused("exim-refused", "Exim accepted no message %d: %s"
                              % (n + 1, exim_said(proc) or box.log_tail()))
        try:
            batch = open(box.path("out", "batch.bsmtp"), "rb").read()
        except FileNotFoundError:
            if msgs:
                raise Refused("adapter-failed", "Exim delivered nothing: %s" % box.log_tail()) from None
            batch = b""
        return {"batch": {"hex": batch.hex()}}
    finally:
        box.close()


class Unsupported(Exception):
    pass


def answer(req):
    rid = req.get("id")
    op = req.get("operation")
    if op == "hello":
        return {"id": rid, "result": "ok", "output": {
            "name": "exim", "version": VERSION or "missing",
            "operations": ["bsmtp-codec.decode", "bsmtp-codec.encode"],
            "error_classes": False}}
    if not EXIM or not VERSION:
        return {"id": rid, "result": "unsupported",
                "reason": "no working exim (bash scripts/peers/install-exim.sh)"}
    handlers = {("bsmtp-codec", "decode"): decode, ("bsmtp-codec", "encode"): encode}
    fn = handlers.get((req.get("stage"), op))
    if fn is None:
        return {"id": rid, "result": "unsupported", "reason": "Exim is a mail transfer agent"}
    try:
        return {"id": rid, "result": "ok", "output": fn(req["input"])}
    except Unsupported as e:
        return {"id": rid, "result": "unsupported", "reason": str(e)}
    except Refused as e:
        return {"id": rid, "result": "error", "error": {"code": e.code, "message": str(e)}}
    except subprocess.TimeoutExpired as e:
        return {"id": rid, "result": "error",
                "error": {"code": "adapter-failed", "message": "exim timed out: %s" % e}}


def main():
    global EXIM, VERSION
    EXIM = find_exim()
    VERSION = exim_version()
    serve(answer, "adapter-failed")


if __name__ == "__main__":
    main()
