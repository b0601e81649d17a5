#!/usr/bin/env python3
"""The real mail stack around the deepmail gateways, for end-to-end tests.

    swaks -> Exim "earth" (SMTP :E; earth.example -> Maildir alice;
                           moon.example -> SMTP 127.0.0.1:G, the Earth gateway)
          ... deepmail gateways ...
          -> Exim "moon"  (SMTP :M; moon.example -> Maildir bob, unknown users
                           550 5.1.1 at RCPT; earth.example -> 127.0.0.1:H,
                           the Moon gateway, for replies)
          -> Dovecot IMAP (:I; users alice and bob, their Maildirs)
          -> `fetch` (imaplib) writes each message as a raw RFC 822 file

Commands (Python 3.9+, stdlib only):

    mailstack.py start --dir D --earth-smtp E --earth-next-hop G \\
                       --moon-smtp M --moon-next-hop H --imap I
    mailstack.py stop  --dir D
    mailstack.py fetch --dir D --user bob [--wait N] [--count K] --out OUTDIR
    mailstack.py logs  --dir D [--lines N]

`start` writes the configurations (from exim.conf.in and dovecot.conf.in
beside this file) into D, starts both Exim daemons (-bdf -oX port, a queue
runner every --queue-interval, immediate delivery) and Dovecot in the
background, each in a process group of its own, waits until every port
answers with its own greeting, writes D/stack.json and exits 0. On failure it
names the daemon and its logs, stops whatever it had started and exits 1.

Everything listens on 127.0.0.1 only. Invoked as root, every daemon runs as
an unprivileged user (--run-as; default `deepmail-mail`, created by
scripts/peers/install-mailstack.sh, else `nobody`), because Exim may not
deliver as root and Dovecot's rootless mode wants one plain user; D is made
traversable and its daemon directories are given to that user. Invoked as
anyone else, the daemons run as the caller.

Binaries: $DEEPMAIL_EXIM, $DEEPMAIL_DOVECOT, else the Debian paths
(/usr/sbin/exim4, /usr/sbin/dovecot). `bash scripts/peers/install-mailstack.sh`
installs them.
"""

from __future__ import annotations

import argparse
import grp
import imaplib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"

EARTH_DOMAIN = "earth.example"
MOON_DOMAIN = "moon.example"
# IMAP user -> (address, password, which Exim delivers it)
USERS = {
    "alice": {"address": f"alice@{EARTH_DOMAIN}", "password": "alice-secret", "mta": "earth"},
    "bob": {"address": f"bob@{MOON_DOMAIN}", "password": "bob-secret", "mta": "moon"},
}
DEFAULT_RUN_USER = "deepmail-mail"
STARTUP_TIMEOUT = 15.0
STOP_GRACE = 5.0


class StackError(Exception):
    pass


def log(msg: str) -> None:
    print(f"mailstack: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# binaries and the run user


def find_binary(env: str, candidates: list[str], names: list[str], what: str) -> str:
    v = os.environ.get(env)
    if v:
        if os.access(v, os.X_OK):
            return v
        raise StackError(f"${env}={v} is not an executable")
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    for n in names:
        p = shutil.which(n)
        if p:
            return p
    raise StackError(
        f"no {what} found (${env}, {', '.join(candidates)}): "
        "run `bash scripts/peers/install-mailstack.sh` (as root) to install the mail stack"
    )


def binaries() -> dict:
    exim = find_binary("DEEPMAIL_EXIM", ["/usr/sbin/exim4", "/usr/sbin/exim"], ["exim4", "exim"], "Exim")
    dovecot = find_binary("DEEPMAIL_DOVECOT", ["/usr/sbin/dovecot"], ["dovecot"], "Dovecot")
    try:
        swaks = find_binary("DEEPMAIL_SWAKS", ["/usr/bin/swaks"], ["swaks"], "swaks")
    except StackError:
        swaks = None  # only the tests that send need it
    return {"exim": exim, "dovecot": dovecot, "swaks": swaks, "python3": sys.executable}


def run_user(requested: str | None) -> dict:
    """The user the daemons run as: the caller unless we are root."""
    if os.geteuid() != 0:
        pw = pwd.getpwuid(os.geteuid())
        if requested and requested not in (pw.pw_name, str(pw.pw_uid)):
            raise StackError(f"--run-as {requested}: only root can run the daemons as another user")
        return {"user": pw.pw_name, "uid": pw.pw_uid, "gid": os.getegid(),
                "group": grp.getgrgid(os.getegid()).gr_name, "switch": False}
    names = [requested] if requested else [os.environ.get("DEEPMAIL_MAIL_USER") or DEFAULT_RUN_USER, "nobody"]
    for name in names:
        try:
            pw = pwd.getpwnam(name) if not name.isdigit() else pwd.getpwuid(int(name))
        except KeyError:
            continue
        if pw.pw_uid == 0:
            raise StackError(f"run user {name} is root: Exim may not deliver as root, choose another")
        try:
            gname = grp.getgrgid(pw.pw_gid).gr_name
        except KeyError:
            gname = str(pw.pw_gid)
        return {"user": pw.pw_name, "uid": pw.pw_uid, "gid": pw.pw_gid, "group": gname, "switch": True}
    raise StackError(f"no run user ({' or '.join(names)}): run `bash scripts/peers/install-mailstack.sh`")


# ---------------------------------------------------------------------------
# processes


def popen_daemon(argv: list[str], ru: dict, stdout_path: Path, cwd: Path) -> subprocess.Popen:
    out = open(stdout_path, "ab")
    kw = dict(stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=str(cwd),
              start_new_session=True, close_fds=True, umask=0o077,
              env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    if ru["switch"]:
        kw.update(user=ru["uid"], group=ru["gid"], extra_groups=[])
    try:
        return subprocess.Popen(argv, **kw)
    finally:
        out.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_table() -> list[dict]:
    """Every process: pid, pgid, sid, cmdline (as bytes)."""
    procs = []
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{e}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        procs.append({"pid": int(e), "state": rest[0], "pgid": int(rest[2]), "sid": int(rest[3]), "cmd": cmd})
    return procs


def daemon_exe(pid: int) -> bool:
    """Is pid running an Exim or Dovecot binary (or one we cannot see)?"""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except PermissionError:
        return True
    except OSError:
        return False
    base = os.path.basename(exe)
    return base.startswith(("exim", "dovecot")) or "/dovecot/" in exe


def stack_processes(d: Path, groups: set[int]) -> list[int]:
    """Processes of this stack: an Exim or Dovecot whose command line names
    one of its configurations, or an Exim or Dovecot process (Dovecot's
    children retitle themselves) in one of its process groups or sessions."""
    marks = [str(d / n / c).encode() for n, c in (("earth", "exim.conf"), ("moon", "exim.conf"),
                                                  ("dovecot", "dovecot.conf"))]
    me = os.getpid()
    pids = []
    for p in proc_table():
        if p["pid"] == me or p["state"] == "Z":
            continue
        if any(m in p["cmd"] for m in marks) or (
                (p["pgid"] in groups or p["sid"] in groups) and daemon_exe(p["pid"])):
            pids.append(p["pid"])
    return pids


def kill_stack(d: Path, groups: set[int]) -> list[int]:
    """SIGTERM the daemons (the group leaders) and let them end their
    children, then SIGTERM whatever of the stack is left, then SIGKILL.
    Returns the pids that needed SIGKILL."""

    def signal_all(pids, sig):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass

    def wait_gone(seconds):
        deadline = time.monotonic() + seconds
        while True:
            reap()
            left = stack_processes(d, groups)
            if not left or time.monotonic() >= deadline:
                return left
            time.sleep(0.05)

    signal_all([p for p in stack_processes(d, groups) if p in groups], signal.SIGTERM)
    left = wait_gone(2.0)
    if not left:
        return []
    signal_all(left, signal.SIGTERM)
    left = wait_gone(STOP_GRACE)
    if not left:
        return []
    signal_all(left, signal.SIGKILL)
    wait_gone(2.0)
    return left


def reap() -> None:
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


# ---------------------------------------------------------------------------
# readiness


def greeting(port: int, timeout: float = 2.0) -> bytes | None:
    """Connect to 127.0.0.1:port and read the first line, or None."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.settimeout(timeout)
            buf = b""
            while b"\n" not in buf and len(buf) < 4096:
                chunk = s.recv(4096)
                if not chunk:
                    break
                buf += chunk
            # End the session so the daemon logs no error; do not wait for
            # the answer (Exim holds its 221 back ~200 ms).
            try:
                s.sendall(b"QUIT\r\n" if buf.startswith(b"220") else b"a LOGOUT\r\n")
            except OSError:
                pass
            return buf
    except OSError:
        return None


def port_free(port: int) -> bool:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the daemons do: a connection of ours in TIME_WAIT does not count.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((HOST, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# Exim logs this at every re-exec (each queue run): nothing to read.
NOISE = "exim user lost privilege for using -C option"


def tail(path: Path, lines: int = 30) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return f"   ({path}: not there)"
    text = [l for l in data.decode("utf-8", "replace").splitlines() if not l.endswith(NOISE)][-lines:]
    return "\n".join("   " + l for l in text) if text else "   (empty)"


def wait_ready(name: str, proc: subprocess.Popen, port: int, expect: bytes, logs: list[Path]) -> float:
    t0 = time.monotonic()
    deadline = t0 + STARTUP_TIMEOUT
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(
                f"{name} (pid {proc.pid}) exited with status {proc.returncode} before it listened "
                f"on {HOST}:{port}; its logs:\n" + "\n".join(f"  {p}:\n{tail(p)}" for p in logs))
        last = greeting(port, timeout=1.0)
        if last:
            if expect in last:
                return time.monotonic() - t0
            raise StackError(f"{HOST}:{port} answers {last!r}, which is not our {name} "
                             f"(expected {expect!r}): is another server on that port?")
        time.sleep(0.05)
    raise StackError(f"{name} (pid {proc.pid}) did not answer on {HOST}:{port} within "
                     f"{STARTUP_TIMEOUT:.0f} s; its logs:\n" + "\n".join(f"  {p}:\n{tail(p)}" for p in logs))


# ---------------------------------------------------------------------------
# layout


def layout(d: Path) -> dict:
    lay = {}
    for name in ("earth", "moon"):
        b = d / name
        lay[name] = {
            "base": b,
            "config": b / "exim.conf",
            "spool": b / "spool",
            "logdir": b / "log",
            "mainlog": b / "log" / "mainlog",
            "rejectlog": b / "log" / "rejectlog",
            "paniclog": b / "log" / "paniclog",
            "stdout": b / "log" / "daemon.out",
            "maildir_root": b / "maildir",
        }
    b = d / "dovecot"
    lay["dovecot"] = {
        "base": b,
        "config": b / "dovecot.conf",
        "passwd": b / "passwd",
        "logdir": b / "log",
        "log": b / "log" / "dovecot.log",
        "stdout": b / "log" / "daemon.out",
    }
    return lay


def maildir_of(d: Path, user: str) -> Path:
    return d / USERS[user]["mta"] / "maildir" / user


def subst(template: Path, values: dict) -> str:
    text = template.read_text()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise StackError(f"{template}: placeholders left unfilled: {left}")
    return text


def chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            os.chown(os.path.join(dirpath, n), uid, gid, follow_symlinks=False)


def check_reachable(d: Path, ru: dict) -> None:
    """The run user must reach D (every parent directory searchable)."""
    if not ru["switch"]:
        return
    r = subprocess.run(["/bin/sh", "-c", 'test -w "$1" && test -x "$1"', "sh", str(d / "earth")],
                       user=ru["uid"], group=ru["gid"], extra_groups=[], capture_output=True)
    if r.returncode != 0:
        raise StackError(
            f"the run user {ru['user']} cannot reach {d}/earth: every directory above {d} must be "
            f"searchable by others (o+x); use a directory under /tmp")


# ---------------------------------------------------------------------------
# commands


def cmd_start(a) -> int:
    d = Path(a.dir).resolve()
    d.mkdir(parents=True, exist_ok=True)
    if (d / "pids.json").exists() or (d / "stack.json").exists():
        raise StackError(f"{d} already holds a stack (pids.json/stack.json): `stop --dir {d}` it first")
    bins = binaries()
    ru = run_user(a.run_as)
    lay = layout(d)

    ports = {"earth-smtp": a.earth_smtp, "moon-smtp": a.moon_smtp, "imap": a.imap}
    if len(set(ports.values())) != len(ports):
        raise StackError(f"listening ports must differ: {ports}")
    for what, p in ports.items():
        if not port_free(p):
            raise StackError(f"--{what} {p}: {HOST}:{p} is already in use")

    # Directories and configurations.
    if ru["switch"]:
        os.chmod(d, 0o755)  # the run user must reach its directories
    relay = {"earth": a.earth_relay_domains or MOON_DOMAIN, "moon": a.moon_relay_domains or EARTH_DOMAIN}
    hop = {"earth": a.earth_next_hop, "moon": a.moon_next_hop}
    domain = {"earth": EARTH_DOMAIN, "moon": MOON_DOMAIN}
    for name in ("earth", "moon"):
        L = lay[name]
        for k in ("spool", "logdir", "maildir_root"):
            L[k].mkdir(parents=True, exist_ok=True)
        users = [u for u, v in USERS.items() if v["mta"] == name]
        for u in users:
            md = maildir_of(d, u)
            for sub in ("new", "cur", "tmp"):
                (md / sub).mkdir(parents=True, exist_ok=True)
        L["config"].write_text(subst(HERE / "exim.conf.in", {
            "NAME": name, "DIR": L["base"], "DOMAIN": domain[name], "USERS": " : ".join(users),
            "RELAY_DOMAINS": relay[name], "NEXT_HOP_PORT": hop[name], "UID": ru["uid"], "GID": ru["gid"],
        }))
        os.chmod(L["config"], 0o644)
    D = lay["dovecot"]
    for sub in ("run", "state", "log", "home"):
        (D["base"] / sub).mkdir(parents=True, exist_ok=True)
    lines = []
    for u, v in USERS.items():
        home = D["base"] / "home" / u
        home.mkdir(parents=True, exist_ok=True)
        mail = (f"maildir:{maildir_of(d, u)}:INDEX={D['base'] / 'index' / u}"
                f":CONTROL={D['base'] / 'control' / u}")
        lines.append(f"{u}:{{PLAIN}}{v['password']}:{ru['uid']}:{ru['gid']}::{home}::userdb_mail={mail}")
    D["passwd"].write_text("\n".join(lines) + "\n")
    D["config"].write_text(subst(HERE / "dovecot.conf.in", {
        "DIR": D["base"], "PORT": a.imap, "USER": ru["user"], "GROUP": ru["group"], "UID": ru["uid"],
    }))
    if ru["switch"]:
        for name in ("earth", "moon", "dovecot"):
            chown_tree(lay[name]["base"], ru["uid"], ru["gid"])
        check_reachable(d, ru)

    started: dict[str, int] = {}

    def record():
        (d / "pids.json").write_text(json.dumps(started) + "\n")

    t_start = time.monotonic()
    timings = {}
    try:
        # All three start at once; then each must answer with its own greeting.
        waits = []
        for name, port in (("earth", a.earth_smtp), ("moon", a.moon_smtp)):
            L = lay[name]
            argv = [bins["exim"], "-C", str(L["config"]), "-bdf", "-oX", str(port), f"-q{a.queue_interval}"]
            proc = popen_daemon(argv, ru, L["stdout"], L["base"])
            started[f"exim-{name}"] = proc.pid
            record()
            waits.append((f"exim-{name}", f"Exim {name}", proc, port, f"deepmail-{name}".encode(),
                          [L["stdout"]]))
        argv = [bins["dovecot"], "-F", "-c", str(D["config"])]
        proc = popen_daemon(argv, ru, D["stdout"], D["base"])
        started["dovecot"] = proc.pid
        record()
        waits.append(("dovecot", "Dovecot", proc, a.imap, b"deepmail IMAP ready", [D["stdout"], D["log"]]))
        for key, *args in waits:
            wait_ready(*args)
            timings[key] = time.monotonic() - t_start
    except BaseException:
        kill_stack(d, set(started.values()))
        (d / "pids.json").unlink(missing_ok=True)
        raise

    watch_pid = os.getppid() if a.watch_pid is None else a.watch_pid
    if watch_pid and start_time(watch_pid) is None:
        kill_stack(d, set(started.values()))
        (d / "pids.json").unlink(missing_ok=True)
        raise StackError(f"--watch-pid {watch_pid}: no such process")
    watchdog = spawn_watchdog(d, watch_pid, a.max_seconds)

    def exim_info(name):
        L = lay[name]
        return {
            "smtp": {"host": HOST, "port": ports[f"{name}-smtp"]},
            "next_hop": {"host": HOST, "port": hop[name]},
            "domain": domain[name],
            "hostname": f"mx.{domain[name]}",
            "relay_domains": [x.strip() for x in relay[name].split(":") if x.strip()],
            "pid": started[f"exim-{name}"],
            "config": str(L["config"]),
            "spool": str(L["spool"]),
            # Every Exim log line (main, reject, panic) goes here; see exim.conf.in.
            "log": str(L["stdout"]),
        }

    stack = {
        "dir": str(d),
        "host": HOST,
        "earth": exim_info("earth"),
        "moon": exim_info("moon"),
        "imap": {"host": HOST, "port": a.imap, "pid": started["dovecot"], "config": str(D["config"]),
                 "passwd": str(D["passwd"]),
                 "log": str(D["log"]), "daemon_output": str(D["stdout"])},
        "users": {u: {"address": v["address"], "imap_user": u, "password": v["password"],
                      "mta": v["mta"], "maildir": str(maildir_of(d, u))} for u, v in USERS.items()},
        "run_as": {k: ru[k] for k in ("user", "uid", "gid", "group")},
        "binaries": bins,
        "queue_interval": a.queue_interval,
        "watchdog": watchdog,
        "pids": started,
        "startup_seconds": round(time.monotonic() - t_start, 3),
        "ready_seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    tmp = d / "stack.json.tmp"
    tmp.write_text(json.dumps(stack, indent=2) + "\n")
    tmp.replace(d / "stack.json")
    print(json.dumps({"ok": True, "dir": str(d), "pids": started, "startup_seconds": stack["startup_seconds"]}))
    return 0


def stop_dir(d: Path) -> int:
    groups: set[int] = set()
    for f in ("pids.json", "stack.json"):
        try:
            j = json.loads((d / f).read_text())
        except (OSError, ValueError):
            continue
        groups.update(int(p) for p in (j.get("pids", j) or {}).values())
    stop_watchdog(d)
    if not groups and not stack_processes(d, set()):
        log(f"{d}: nothing to stop")
        return 0
    t0 = time.monotonic()
    killed = kill_stack(d, groups)
    left = stack_processes(d, groups)
    (d / "pids.json").unlink(missing_ok=True)
    try:
        (d / "stack.json").rename(d / "stack.stopped.json")
    except OSError:
        pass
    if killed:
        log(f"had to SIGKILL {killed}")
    if left:
        log(f"still running after SIGKILL: {left}")
        return 1
    log(f"stopped in {time.monotonic() - t0:.2f} s")
    return 0


def cmd_stop(a) -> int:
    return stop_dir(Path(a.dir).resolve())


# ---------------------------------------------------------------------------
# the watchdog: nothing survives the test, even one that was killed


def start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def stop_watchdog(d: Path) -> None:
    """End the stack's watchdog, unless we are it."""
    try:
        pid = int((d / "watchdog.pid").read_text())
    except (OSError, ValueError):
        return
    if pid == os.getpid():
        (d / "watchdog.pid").unlink(missing_ok=True)
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read()
    except OSError:
        cmd = b""
    if b"_watchdog" in cmd and str(d).encode() in cmd:
        try:
            os.kill(pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
    (d / "watchdog.pid").unlink(missing_ok=True)


def spawn_watchdog(d: Path, watch_pid: int, max_seconds: float) -> dict | None:
    if not watch_pid and not max_seconds:
        return None
    out = open(d / "watchdog.log", "ab")
    try:
        wd = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "_watchdog", "--dir", str(d),
             "--pid", str(watch_pid), "--start-time", (start_time(watch_pid) or "-") if watch_pid else "-",
             "--max-seconds", str(max_seconds)],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            close_fds=True)
    finally:
        out.close()
    (d / "watchdog.pid").write_text(f"{wd.pid}\n")
    return {"pid": wd.pid, "watch_pid": watch_pid, "max_seconds": max_seconds,
            "log": str(d / "watchdog.log")}


def cmd_watchdog(a) -> int:
    d = Path(a.dir).resolve()
    deadline = time.monotonic() + a.max_seconds if a.max_seconds else float("inf")
    while True:
        if not (d / "pids.json").exists():
            return 0  # stopped by someone else
        if a.pid and start_time(a.pid) != (None if a.start_time == "-" else a.start_time):
            reason = f"the process it watched (pid {a.pid}) is gone"
            break
        if time.monotonic() >= deadline:
            reason = f"it ran for --max-seconds {a.max_seconds:g}"
            break
        time.sleep(0.5)
    log(f"watchdog: stopping the stack in {d}: {reason}")
    return stop_dir(d)


def load_stack(d: Path) -> dict:
    try:
        return json.loads((d / "stack.json").read_text())
    except FileNotFoundError:
        raise StackError(f"{d}/stack.json: no running stack there (start it first)")


def cmd_fetch(a) -> int:
    d = Path(a.dir).resolve()
    st = load_stack(d)
    if a.user not in st["users"]:
        raise StackError(f"--user {a.user}: the stack has users {sorted(st['users'])}")
    u = st["users"][a.user]
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + a.wait
    t0 = time.monotonic()
    imap = imaplib.IMAP4(st["imap"]["host"], st["imap"]["port"], timeout=30)
    try:
        imap.login(u["imap_user"], u["password"])
        while True:
            typ, data = imap.select("INBOX")
            if typ != "OK":
                raise StackError(f"SELECT INBOX for {a.user}: {typ} {data}")
            n = int(data[0])
            if n >= a.count or time.monotonic() >= deadline:
                break
            imap.close()
            time.sleep(0.2)
        typ, data = imap.uid("SEARCH", None, "ALL")
        uids = [int(x) for x in data[0].split()] if typ == "OK" and data[0] else []
        written = []
        for i, uid in enumerate(sorted(uids), 1):
            typ, resp = imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
            raw = next((r[1] for r in resp if isinstance(r, tuple)), None)
            if typ != "OK" or raw is None:
                raise StackError(f"FETCH UID {uid} for {a.user}: {typ} {resp!r}")
            p = out / f"{i:03d}.eml"
            p.write_bytes(raw)
            written.append({"file": str(p), "uid": uid, "size": len(raw)})
        imap.close()
    finally:
        try:
            imap.logout()
        except Exception:
            pass
    print(json.dumps({"user": a.user, "count": len(written), "seconds": round(time.monotonic() - t0, 3),
                      "messages": written}))
    if len(written) < a.count:
        log(f"only {len(written)} of {a.count} messages in {a.user}'s INBOX after {a.wait:g} s "
            f"(`mailstack.py logs --dir {d}` shows why)")
        return 1
    return 0


def cmd_logs(a) -> int:
    d = Path(a.dir).resolve()
    lay = layout(d)
    files = []
    for name in ("earth", "moon"):
        L = lay[name]
        files += [(f"Exim {name} log", L["stdout"]), (f"Exim {name} mainlog", L["mainlog"]),
                  (f"Exim {name} rejectlog", L["rejectlog"]), (f"Exim {name} paniclog", L["paniclog"])]
    files += [("Dovecot log", lay["dovecot"]["log"]), ("Dovecot daemon output", lay["dovecot"]["stdout"])]
    shown = 0
    for title, p in files:
        if not p.exists():
            continue  # Exim writes main/reject/panic lines to daemon.out (see exim.conf.in)
        shown += 1
        if p.stat().st_size == 0:
            print(f"== {title} ({p}): empty")
            continue
        print(f"== {title} ({p}):")
        print(tail(p, a.lines))
    if not shown:
        print(f"== no daemon logs under {d}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("start", help="write configs, start both Exims and Dovecot, write D/stack.json")
    s.add_argument("--dir", required=True)
    s.add_argument("--earth-smtp", type=int, required=True, help="Earth Exim's SMTP port")
    s.add_argument("--earth-next-hop", type=int, required=True,
                   help="port on 127.0.0.1 the Earth Exim relays the moon domain to (Earth gateway)")
    s.add_argument("--moon-smtp", type=int, required=True, help="Moon Exim's SMTP port")
    s.add_argument("--moon-next-hop", type=int, required=True,
                   help="port on 127.0.0.1 the Moon Exim relays the earth domain to (Moon gateway)")
    s.add_argument("--imap", type=int, required=True, help="Dovecot's IMAP port")
    s.add_argument("--earth-relay-domains", help=f"Exim list relayed by Earth (default {MOON_DOMAIN})")
    s.add_argument("--moon-relay-domains", help=f"Exim list relayed by Moon (default {EARTH_DOMAIN})")
    s.add_argument("--queue-interval", default="2s", help="Exim queue runner interval (default 2s)")
    s.add_argument("--run-as", help=f"user the daemons run as when invoked as root (default {DEFAULT_RUN_USER}, else nobody)")
    s.add_argument("--watch-pid", type=int,
                   help="stop the stack when this process ends (default: our parent, the test; 0: never)")
    s.add_argument("--max-seconds", type=float, default=1800,
                   help="stop the stack after this long whatever happens (default 1800; 0: never)")
    s.set_defaults(func=cmd_start)

    s = sub.add_parser("stop", help="stop every daemon of the stack in D")
    s.add_argument("--dir", required=True)
    s.set_defaults(func=cmd_stop)

    s = sub.add_parser("fetch", help="read a user's INBOX over IMAP into OUTDIR/NNN.eml")
    s.add_argument("--dir", required=True)
    s.add_argument("--user", required=True)
    s.add_argument("--wait", type=float, default=0.0, help="seconds to wait for --count messages")
    s.add_argument("--count", type=int, default=0, help="messages to wait for (exit 1 if fewer)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=cmd_fetch)

    s = sub.add_parser("logs", help="print the tail of every daemon log")
    s.add_argument("--dir", required=True)
    s.add_argument("--lines", type=int, default=40)
    s.set_defaults(func=cmd_logs)

    s = sub.add_parser("_watchdog")  # internal: spawned by start
    s.add_argument("--dir", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--start-time", required=True)
    s.add_argument("--max-seconds", type=float, required=True)
    s.set_defaults(func=cmd_watchdog)

    a = ap.parse_args(argv)
    try:
        return a.func(a)
    except StackError as e:
        log(f"{a.cmd}: {e}")
        return 1
    except imaplib.IMAP4.error as e:
        log(f"{a.cmd}: IMAP: {e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
