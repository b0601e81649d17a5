#!/usr/bin/env python3
"""Run a chain of real dtn7-rs `dtnd` (0.21) Bundle Protocol nodes on
127.0.0.1 that statically routes bundles to a final TCPCLv4 peer which is
not a dtnd (the Moon gateway, or tcpcl.py listen). Stdlib only.

    dtnchain.py start  --dir D [--nodes 2] [--first-port 4556]
                       [--final 127.0.0.1:PORT] [--final-node-id ipn:2.0]
                       [--back 127.0.0.1:PORT --back-node-id ipn:1.0]
    dtnchain.py send   --dir D [--node 1] --dst ipn:2.25 --file F [--lifetime 1h]
    dtnchain.py insert --dir D [--node 1] --file BUNDLE.cbor
    dtnchain.py status --dir D
    dtnchain.py logs   --dir D [--node N] [--tail 50]
    dtnchain.py stop   --dir D

Topology (N = --nodes, P = --first-port, i = 1..N):

    [tcpcl client] -> node1 -> node2 -> ... -> nodeN -> final peer (--final, --final-node-id)
    final <- ... (with --back: bundles for --back-node-id's node flow nodeN -> ... -> node1 -> back peer)

    node i: node id  --node-ids[i] (default ipn:(100+i).0)
            TCPCLv4  127.0.0.1:P+2(i-1)        (-C tcp:port=..:bind=127.0.0.1)
            REST/web 0.0.0.0:P+2(i-1)+1        (dtnd cannot bind its web port to one address)
            files    D/nodeI/ (dtnd.log, routes, and the sled store with --db sled)
    final peer default address: 127.0.0.1:P+2N

start writes every node's static routes file, starts each dtnd detached
(its own session, stdin /dev/null, stdout+stderr to D/nodeI/dtnd.log,
RUST_LOG pinned so a caller's RUST_LOG cannot silence it), and returns when
every node is ready: its process is alive and not a zombie, its own process
holds LISTEN sockets on both its TCPCL and web ports (checked through
/proc, so another server on the port does not count), and GET
/status/nodeid answers its node id. It writes D/chain.json and prints the
same JSON on stdout (one line); everything else goes to stderr. Exit 0
ready; 1 failure (the nodes it started are stopped again, the log tail is
shown); 64 usage.

dtnd is found as: --dtnd, else $DEEPMAIL_DTND, else
${XDG_CACHE_HOME:-$HOME/.cache}/deepmail/peers/dtn7-0.21.0/bin/dtnd (run
scripts/peers/install-dtnd.sh to build it there).

stop: SIGTERM to each node's PID (only if it is still a dtnd), SIGKILL after
5 s; prints the PIDs stopped, one a line; exit 0 also when nothing ran.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

ME = "dtnchain.py"
DEFAULT_DTND = os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"),
    "deepmail", "peers", "dtn7-0.21.0", "bin", "dtnd")


class Fail(Exception):
    pass


def log(msg):
    sys.stderr.write("%s: %s\n" % (ME, msg))
    sys.stderr.flush()


# --- node ids ------------------------------------------------------------------


def norm_node_id(s):
    """'7' -> ipn:7.0, 'moon-gw' -> dtn://moon-gw/, full node ids kept."""
    if s.isdigit():
        return "ipn:%s.0" % s
    if s.startswith("ipn:"):
        node, _, svc = s[4:].partition(".")
        if not node.isdigit() or svc not in ("0", ""):
            raise Fail("%r is not an ipn node id (ipn:N.0)" % s)
        return "ipn:%s.0" % node
    if s.startswith("dtn://"):
        name = s[6:].rstrip("/")
        if not name or "/" in name:
            raise Fail("%r is not a dtn node id (dtn://name/)" % s)
        s = name
    if not (s[0].isalpha() and s[-1].isalnum()
            and all(c.isascii() and (c.isalnum() or c in "-_.") for c in s)):
        raise Fail("node name %r: dtnd wants a letter first, then letters, digits, '-', '_', '.'" % s)
    return "dtn://%s/" % s


def node_name(nid):
    """The last part of a dtnd static peer URL: ipn:7.0 -> 7, dtn://x/ -> x."""
    return nid[4:-2] if nid.startswith("ipn:") else nid[6:-1]


def default_glob(nid):
    """Static-route destination pattern for every endpoint of a node."""
    return "ipn:%s.*" % node_name(nid) if nid.startswith("ipn:") else "%s**" % nid


# --- processes -----------------------------------------------------------------


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rindex(")") + 2] not in "ZX"


def is_dtnd(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv0 = f.read().split(b"\0")[0]
    except OSError:
        return False
    return os.path.basename(argv0) == b"dtnd"


def listen_ports(pid):
    """Local ports of the TCP LISTEN sockets the process holds (Linux /proc)."""
    inodes = set()
    try:
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
            except OSError:
                continue
            if t.startswith("socket:["):
                inodes.add(t[8:-1])
    except OSError:
        return set()
    ports = set()
    for tab in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
        try:
            with open(tab) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] == "0A" and p[9] in inodes:
                        ports.add(int(p[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def http(port, path, data=None, timeout=2.0):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), data=data,
                                 method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read().decode("utf-8", "replace")


def tail(path, n=30):
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(lines[-n:])


def stop_pids(pids):
    """SIGTERM, wait up to 5 s, SIGKILL; return the PIDs that were running."""
    running = [p for p in pids if p and alive(p) and is_dtnd(p)]
    for p in running:
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + 5
    while time.time() < deadline and any(alive(p) for p in running):
        time.sleep(0.05)
    for p in running:
        if alive(p):
            log("dtnd %d still there after SIGTERM and 5 s; SIGKILL" % p)
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
    for p in running:
        # reap it if it is our child (it is not, after start returned; harmless)
        try:
            os.waitpid(p, os.WNOHANG)
        except OSError:
            pass
    return running


def find_dtnd(arg):
    for c in (arg, os.environ.get("DEEPMAIL_DTND"), DEFAULT_DTND):
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return os.path.abspath(c)
    raise Fail("dtnd not found (--dtnd, $DEEPMAIL_DTND, %s); build it with: "
               "bash scripts/peers/install-dtnd.sh" % DEFAULT_DTND)


def load(d):
    path = os.path.join(d, "chain.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def addr_port(s, what):
    host, _, port = s.rpartition(":")
    if not host or not port.isdigit():
        raise Fail("%s must be HOST:PORT, not %r" % (what, s))
    return host.strip("[]"), int(port)


# --- start ---------------------------------------------------------------------


def cmd_start(a):
    dtnd = find_dtnd(a.dtnd)
    d = os.path.abspath(a.dir)
    os.makedirs(d, exist_ok=True)
    old = load(d)
    if old:
        live = [n["pid"] for n in old.get("nodes", []) if alive(n["pid"]) and is_dtnd(n["pid"])]
        if live:
            raise Fail("a chain already runs from %s (pids %s); stop it first: %s stop --dir %s"
                       % (d, " ".join(map(str, live)), ME, d))
    n = a.nodes
    if n < 1:
        raise Fail("--nodes must be >= 1")
    ids = [norm_node_id(x) for x in a.node_ids.split(",")] if a.node_ids else \
        ["ipn:%d.0" % (100 + i) for i in range(1, n + 1)]
    if len(ids) != n:
        raise Fail("--node-ids names %d nodes, --nodes is %d" % (len(ids), n))
    final_id = norm_node_id(a.final_node_id)
    fhost, fport = addr_port(a.final, "--final") if a.final else ("127.0.0.1", a.first_port + 2 * n)
    globs = a.route or [default_glob(final_id)]
    back = None
    if a.back:
        bhost, bport = addr_port(a.back, "--back")
        bid = norm_node_id(a.back_node_id)
        back = {"addr": bhost, "port": bport, "node_id": bid,
                "route_globs": a.back_route or [default_glob(bid)]}
    names = [node_name(x) for x in ids + [final_id] + ([back["node_id"]] if back else [])]
    if len(set(names)) != len(names):
        raise Fail("node names must differ (dtnd keys peers by the name without scheme: %s)"
                   % ", ".join(names))
    try:
        version = subprocess.run([dtnd, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        raise Fail("cannot run %s --version: %s" % (dtnd, e))

    nodes = []
    for i in range(1, n + 1):
        nd = os.path.join(d, "node%d" % i)
        os.makedirs(nd, exist_ok=True)
        tport, wport = a.first_port + 2 * (i - 1), a.first_port + 2 * (i - 1) + 1
        nodes.append({"index": i, "node_id": ids[i - 1], "tcpcl_port": tport, "web_port": wport,
                      "dir": nd, "log": os.path.join(nd, "dtnd.log"),
                      "routes_file": os.path.join(nd, "routes")})
    for i, node in enumerate(nodes):
        routes, peers = [], []
        if i + 1 < n:
            nxt = nodes[i + 1]
            fwd_via, fwd_peer = nxt["node_id"], "tcp://127.0.0.1:%d/%s" % (
                nxt["tcpcl_port"], node_name(nxt["node_id"]))
        else:
            fwd_via, fwd_peer = final_id, "tcp://%s:%d/%s" % (fhost, fport, node_name(final_id))
        peers.append(fwd_peer)
        for g in globs:
            routes.append((g, fwd_via))
        node["next_hop"] = fwd_via
        if back:
            if i > 0:
                prv = nodes[i - 1]
                bvia, bpeer = prv["node_id"], "tcp://127.0.0.1:%d/%s" % (
                    prv["tcpcl_port"], node_name(prv["node_id"]))
            else:
                bvia, bpeer = back["node_id"], "tcp://%s:%d/%s" % (
                    back["addr"], back["port"], node_name(back["node_id"]))
            peers.append(bpeer)
            for g in back["route_globs"]:
                routes.append((g, bvia))
            node["back_hop"] = bvia
        with open(node["routes_file"], "w") as f:
            f.write("# written by scripts/peers/dtnd/dtnchain.py: idx source-glob "
                    "destination-glob next-hop-node-id\n")
            for k, (g, via) in enumerate(routes, 1):
                f.write("%d ** %s %s\n" % (k, g, via))
        argv = [dtnd, "-n", node["node_id"], "-W", node["dir"], "-w", str(node["web_port"]),
                "-C", "tcp:port=%d:bind=127.0.0.1" % node["tcpcl_port"],
                "-r", "static", "-R", "static.routes=%s" % node["routes_file"],
                "--disable_nd", "-i", "0", "-j", a.janitor, "-D", a.db]
        for p in peers:
            argv += ["-s", p]
        if a.debug:
            argv.append("-d")
        argv += a.dtnd_arg or []
        node["argv"] = argv
        node["static_peers"] = peers
        node["routes"] = [{"idx": k, "src": "**", "dst": g, "via": via}
                          for k, (g, via) in enumerate(routes, 1)]

    env = dict(os.environ)
    env["RUST_LOG"] = "dtn7=debug,dtnd=debug" if a.debug else "dtn7=info,dtnd=info"
    env.pop("RUST_BACKTRACE", None)
    t0 = time.time()
    started = []
    try:
        for node in nodes:
            with open(node["log"], "ab") as lf:
                lf.write(("--- %s start %s\n--- %s\n" % (ME, time.strftime("%Y-%m-%dT%H:%M:%S"),
                                                          " ".join(node["argv"]))).encode())
                lf.flush()
                p = subprocess.Popen(node["argv"], stdin=subprocess.DEVNULL, stdout=lf,
                                     stderr=subprocess.STDOUT, cwd=node["dir"], env=env,
                                     start_new_session=True, close_fds=True)
            node["pid"] = p.pid
            node["_popen"] = p
            started.append(p.pid)
        deadline = t0 + a.timeout
        pending = list(nodes)
        while pending:
            for node in list(pending):
                pid = node["pid"]
                if node["_popen"].poll() is not None or not alive(pid):
                    raise Fail("dtnd node%d (%s, pid %d) exited (status %s) before it was ready "
                               "(port %d or %d taken?)\n--- %s ---\n%s"
                               % (node["index"], node["node_id"], pid, node["_popen"].returncode,
                                  node["tcpcl_port"], node["web_port"], node["log"],
                                  tail(node["log"])))
                lp = listen_ports(pid)
                if node["tcpcl_port"] in lp and node["web_port"] in lp:
                    try:
                        st, body = http(node["web_port"], "/status/nodeid", timeout=0.5)
                    except (OSError, urllib.error.URLError):
                        st, body = None, None
                    if st == 200 and body.strip() == node["node_id"]:
                        node["ready_s"] = round(time.time() - t0, 3)
                        pending.remove(node)
            if pending and time.time() > deadline:
                nd = pending[0]
                raise Fail("dtnd node%d (pid %d) not ready within %gs\n--- %s ---\n%s"
                           % (nd["index"], nd["pid"], a.timeout, nd["log"], tail(nd["log"])))
            if pending:
                time.sleep(0.02)
    except BaseException:
        stop_pids(started)
        raise
    for node in nodes:
        del node["_popen"]
    chain = {
        "dir": d, "dtnd": dtnd, "version": version, "started_at": t0,
        "ready_s": round(time.time() - t0, 3), "janitor": a.janitor, "db": a.db,
        "nodes": nodes,
        "final": {"addr": fhost, "port": fport, "node_id": final_id, "route_globs": globs},
        "back": back,
        "inject": {"tcpcl": "127.0.0.1:%d" % nodes[0]["tcpcl_port"],
                   "rest": "http://127.0.0.1:%d" % nodes[0]["web_port"]},
    }
    tmp = os.path.join(d, "chain.json.tmp")
    with open(tmp, "w") as f:
        json.dump(chain, f, indent=2, sort_keys=True)
    os.replace(tmp, os.path.join(d, "chain.json"))
    log("%d dtnd node(s) ready in %.3fs: %s -> final %s @ %s:%d"
        % (n, chain["ready_s"], " -> ".join(x["node_id"] for x in nodes), final_id, fhost, fport))
    print(json.dumps(chain, sort_keys=True))
    return 0


# --- other commands ------------------------------------------------------------


def need_chain(a):
    c = load(os.path.abspath(a.dir))
    if not c:
        raise Fail("no chain.json in %s (start one first)" % a.dir)
    return c


def pick(c, idx):
    for n in c["nodes"]:
        if n["index"] == idx:
            return n
    raise Fail("no node %d (the chain has %d)" % (idx, len(c["nodes"])))


def cmd_stop(a):
    c = load(os.path.abspath(a.dir))
    if not c:
        return 0
    for p in stop_pids([n.get("pid") for n in c["nodes"]]):
        print(p)
    return 0


def cmd_send(a):
    c = need_chain(a)
    node = pick(c, a.node)
    with open(a.file, "rb") as f:
        body = f.read()
    q = {"dst": a.dst}
    if a.lifetime:
        q["lifetime"] = a.lifetime
    t = time.time()
    try:
        st, text = http(node["web_port"], "/send?" + urllib.parse.urlencode(q), data=body,
                        timeout=a.timeout)
    except urllib.error.HTTPError as e:
        st, text = e.code, e.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as e:
        # an unparsable dst makes dtnd's handler panic: no HTTP answer at all
        raise Fail("POST /send to node%d (port %d): %s" % (a.node, node["web_port"], e))
    print(json.dumps({"node": a.node, "node_id": node["node_id"], "dst": a.dst,
                      "bytes": len(body), "status": st, "response": text.strip(), "ts": t},
                     sort_keys=True))
    return 0 if st == 200 else 1


def cmd_insert(a):
    c = need_chain(a)
    node = pick(c, a.node)
    with open(a.file, "rb") as f:
        body = f.read()
    t = time.time()
    try:
        st, text = http(node["web_port"], "/insert", data=body, timeout=a.timeout)
    except urllib.error.HTTPError as e:
        st, text = e.code, e.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as e:
        raise Fail("POST /insert to node%d: %s" % (a.node, e))
    print(json.dumps({"node": a.node, "node_id": node["node_id"], "bytes": len(body),
                      "status": st, "response": text.strip(), "ts": t}, sort_keys=True))
    return 0 if st == 200 else 1


def cmd_status(a):
    c = need_chain(a)
    out = []
    for n in c["nodes"]:
        s = {"index": n["index"], "node_id": n["node_id"], "pid": n["pid"],
             "alive": alive(n["pid"]) and is_dtnd(n["pid"])}
        if s["alive"]:
            for key, path in (("peers", "/status/peers"), ("bundles", "/status/bundles"),
                              ("stats", "/status/info")):
                try:
                    s[key] = json.loads(http(n["web_port"], path)[1])
                except (OSError, ValueError, urllib.error.URLError) as e:
                    s[key] = {"error": str(e)}
            try:
                s["routes"] = http(n["web_port"], "/routing/getdata")[1].splitlines()
            except (OSError, urllib.error.URLError) as e:
                s["routes"] = {"error": str(e)}
        out.append(s)
    print(json.dumps(out, sort_keys=True))
    return 0 if all(s["alive"] for s in out) else 1


def cmd_logs(a):
    c = need_chain(a)
    for n in c["nodes"]:
        if a.node and n["index"] != a.node:
            continue
        print("===== node%d %s (pid %s) %s" % (n["index"], n["node_id"], n["pid"], n["log"]))
        print(tail(n["log"], a.tail) if a.tail else open(n["log"], errors="replace").read())
    return 0


class Parser(argparse.ArgumentParser):
    def error(self, message):
        self.print_usage(sys.stderr)
        log(message)
        sys.exit(64)


def main():
    ap = Parser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=Parser)
    s = sub.add_parser("start")
    s.add_argument("--dir", required=True)
    s.add_argument("--nodes", type=int, default=2)
    s.add_argument("--first-port", type=int, default=4556)
    s.add_argument("--node-ids", help="comma-separated node ids (ipn:N.0, dtn://name/, N or name)")
    s.add_argument("--final", help="HOST:PORT of the final TCPCLv4 peer (default 127.0.0.1:P+2N)")
    s.add_argument("--final-node-id", default="ipn:2.0")
    s.add_argument("--route", action="append",
                   help="destination glob routed to the final peer (repeatable; default "
                        "ipn:N.* for ipn:N.0, dtn://name/** for dtn://name/)")
    s.add_argument("--back", help="HOST:PORT of a TCPCLv4 peer behind node 1 (reverse path)")
    s.add_argument("--back-node-id", default="ipn:1.0")
    s.add_argument("--back-route", action="append")
    s.add_argument("--janitor", default="1s",
                   help="dtnd -j: how often stored bundles are retried (dtnd default 10s)")
    s.add_argument("--db", default="mem", choices=["mem", "sled", "sneakers"])
    s.add_argument("--debug", action="store_true", help="dtnd -d (debug log)")
    s.add_argument("--dtnd")
    s.add_argument("--dtnd-arg", action="append", help="extra dtnd argument (repeatable)")
    s.add_argument("--timeout", type=float,
                   default=float(os.environ.get("DEEPMAIL_DTND_START_TIMEOUT", "20")))
    for name in ("stop", "status"):
        x = sub.add_parser(name)
        x.add_argument("--dir", required=True)
    lg = sub.add_parser("logs")
    lg.add_argument("--dir", required=True)
    lg.add_argument("--node", type=int, default=0)
    lg.add_argument("--tail", type=int, default=0)
    se = sub.add_parser("send")
    se.add_argument("--dir", required=True)
    se.add_argument("--node", type=int, default=1)
    se.add_argument("--dst", required=True)
    se.add_argument("--file", required=True)
    se.add_argument("--lifetime", help="humantime, e.g. 1h, 30s (dtnd default 1h)")
    se.add_argument("--timeout", type=float, default=10)
    ins = sub.add_parser("insert")
    ins.add_argument("--dir", required=True)
    ins.add_argument("--node", type=int, default=1)
    ins.add_argument("--file", required=True)
    ins.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    try:
        return {"start": cmd_start, "stop": cmd_stop, "send": cmd_send, "insert": cmd_insert,
                "status": cmd_status, "logs": cmd_logs}[a.cmd](a)
    except Fail as e:
        log(str(e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
