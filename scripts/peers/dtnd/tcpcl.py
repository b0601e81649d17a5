#!/usr/bin/env python3
"""Minimal TCPCLv4 (RFC 9174) peer, stdlib only: test tooling for the dtnd
interop scripts. Not the product (that is the gateway's TCPCL listener and
plugins/tcpcl-sender); just enough protocol to stand in for the Moon gateway
at the end of a dtnd chain, and to inject raw bundles into a dtnd.

    tcpcl.py listen --port 4600 --node-id ipn:2.0 [--out DIR] [--count N] [--timeout S]
    tcpcl.py send   --port 4556 --node-id ipn:9.0 BUNDLE.cbor [BUNDLE.cbor ...]

No TLS (the contact header offers none), no session extension items (sent:
none; received: a SESS_INIT carrying any is answered with SESS_TERM), no
reactive fragmentation. Everything printed on stdout is one JSON object a
line (keys sorted), flushed at once, so a caller can follow it; "ts" is the
Unix time of the event (float), "t" seconds since this process started.

listen: passive entity. Accepts any number of sessions (one thread each):
reads the contact header, answers with its own (version 4, flags 0), waits
for the peer's SESS_INIT, answers with its own (--keepalive, default 30;
--segment-mru, default 65536; --transfer-mru, default 16 MiB), then takes
XFER_SEGMENTs, acknowledging each with XFER_ACK (flags mirrored, cumulative
length), and on END writes the bundle to DIR/bundle-NNNN.cbor (if --out) and
prints a "bundle" event with its size, segment count, and the decoded bundle
(id, source, destination, fragment offset, blocks; see bpv7.py). KEEPALIVE:
sent every --ka-interval seconds (default: half the negotiated interval;
0 = never); peer's KEEPALIVEs are reported. SESS_TERM: answered with the
REPLY flag. Unknown message types: MSG_REJECT. --refuse CODE answers every
transfer's first segment with XFER_REFUSE CODE instead (to see what the
sender does). With --count N, exits 0 after the N-th bundle; with --timeout
S, exits 3 if fewer than N arrived within S seconds.

send: active entity. Connects, exchanges contact headers and SESS_INITs
(node id --node-id), sends each file as one transfer in segments of at most
min(--segment-size, peer's segment MRU) octets (--ignore-peer-mru: just
--segment-size), waits for the XFER_ACK that
covers the whole transfer (or an XFER_REFUSE), prints one "sent" event per
file, then SESS_TERM and waits for the peer's reply. Exit 0 when every
transfer was fully acknowledged, 1 otherwise, 2 on no session.
"""
import argparse
import itertools
import json
import os
import socket
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the repo
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bpv7  # noqa: E402

T0 = time.time()
MAGIC = b"dtn!"
XFER_SEGMENT, XFER_ACK, XFER_REFUSE, KEEPALIVE, SESS_TERM, MSG_REJECT, SESS_INIT = range(1, 8)
MSG_NAMES = {1: "XFER_SEGMENT", 2: "XFER_ACK", 3: "XFER_REFUSE", 4: "KEEPALIVE",
             5: "SESS_TERM", 6: "MSG_REJECT", 7: "SESS_INIT"}
FLAG_END, FLAG_START = 0x01, 0x02
TERM_REASONS = {0: "unknown", 1: "idle-timeout", 2: "version-mismatch", 3: "busy",
                4: "contact-failure", 5: "resource-exhaustion"}
REFUSE_REASONS = {0: "unknown", 1: "completed", 2: "no-resources", 3: "retransmit",
                  4: "not-acceptable", 5: "extension-failure", 6: "session-terminating"}

_out_lock = threading.Lock()


def emit(event, **kw):
    kw["event"] = event
    kw["ts"] = round(time.time(), 6)
    kw["t"] = round(time.time() - T0, 6)
    with _out_lock:
        sys.stdout.write(json.dumps(kw, sort_keys=True) + "\n")
        sys.stdout.flush()


class Closed(Exception):
    pass


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.wlock = threading.Lock()

    def recv_exact(self, n):
        buf = bytearray()
        while len(buf) < n:
            chunk = self.sock.recv(min(n - len(buf), 1 << 20))
            if not chunk:
                raise Closed("peer closed the connection")
            buf += chunk
        return bytes(buf)

    def u8(self):
        return self.recv_exact(1)[0]

    def u16(self):
        return struct.unpack(">H", self.recv_exact(2))[0]

    def u32(self):
        return struct.unpack(">I", self.recv_exact(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.recv_exact(8))[0]

    def send(self, data):
        with self.wlock:
            self.sock.sendall(data)

    # --- messages ----------------------------------------------------------

    def contact_header(self):
        self.send(MAGIC + bytes([4, 0]))

    def read_contact_header(self):
        h = self.recv_exact(6)
        if h[:4] != MAGIC:
            raise Closed("bad contact header magic %r" % h[:4])
        return {"version": h[4], "flags": h[5]}

    def sess_init(self, keepalive, seg_mru, xfer_mru, node_id):
        nid = node_id.encode()
        self.send(struct.pack(">BHQQH", SESS_INIT, keepalive, seg_mru, xfer_mru, len(nid))
                  + nid + struct.pack(">I", 0))

    def read_message(self):
        """Return (type, dict)."""
        t = self.u8()
        if t == SESS_INIT:
            ka, seg, xfer, nlen = self.u16(), self.u64(), self.u64(), self.u16()
            nid = self.recv_exact(nlen).decode("utf-8", "replace")
            elen = self.u32()
            ext = self.recv_exact(elen)
            return t, {"keepalive": ka, "segment_mru": seg, "transfer_mru": xfer,
                       "node_id": nid, "ext_len": len(ext)}
        if t == XFER_SEGMENT:
            flags, tid = self.u8(), self.u64()
            exts = []
            if flags & FLAG_START:
                elen = self.u32()
                raw = self.recv_exact(elen)
                off = 0
                while off + 5 <= len(raw):
                    iflags, itype, ilen = struct.unpack(">BHH", raw[off:off + 5])
                    exts.append({"flags": iflags, "type": itype,
                                 "value_hex": raw[off + 5:off + 5 + ilen].hex()})
                    off += 5 + ilen
            n = self.u64()
            data = self.recv_exact(n) if n else b""
            return t, {"flags": flags, "tid": tid, "data": data, "extensions": exts}
        if t == XFER_ACK:
            return t, {"flags": self.u8(), "tid": self.u64(), "len": self.u64()}
        if t == XFER_REFUSE:
            r = self.u8()
            return t, {"reason": r, "reason_name": REFUSE_REASONS.get(r, str(r)), "tid": self.u64()}
        if t == KEEPALIVE:
            return t, {}
        if t == SESS_TERM:
            f, r = self.u8(), self.u8()
            return t, {"flags": f, "reason": r, "reason_name": TERM_REASONS.get(r, str(r))}
        if t == MSG_REJECT:
            return t, {"reason": self.u8(), "header": self.u8()}
        return t, None

    def xfer_ack(self, flags, tid, length):
        self.send(struct.pack(">BBQQ", XFER_ACK, flags, tid, length))

    def xfer_refuse(self, reason, tid):
        self.send(struct.pack(">BBQ", XFER_REFUSE, reason, tid))

    def keepalive(self):
        self.send(bytes([KEEPALIVE]))

    def sess_term(self, flags, reason):
        self.send(bytes([SESS_TERM, flags, reason]))

    def msg_reject(self, reason, header):
        self.send(bytes([MSG_REJECT, reason, header]))


def describe_bundle(data):
    try:
        s = bpv7.summary(data)
    except Exception as e:  # noqa: BLE001 - report anything a bad bundle causes
        return {"decode_error": str(e)}
    p = s["primary"]
    d = {"id": s["id"], "source": p["source"], "destination": p["destination"],
         "report_to": p["report_to"], "flags": p["flags_hex"], "is_fragment": p["is_fragment"],
         "creation_ms": p["creation_ms"], "seq": p["seq"], "lifetime_ms": p["lifetime_ms"],
         "primary_crc_type": p["crc_type"], "primary_crc_ok": p["crc_ok"],
         "primary_sha256": p["raw_sha256"],
         "payload_len": s["payload_len"], "payload_sha256": s["payload_sha256"],
         "blocks": [{k: b[k] for k in b if k not in ("raw_sha256", "data_sha256")}
                    for b in s["blocks"]]}
    if p["is_fragment"]:
        d["fragment_offset"] = p["fragment_offset"]
        d["total_adu_length"] = p["total_adu_length"]
    return d


# --- listen ------------------------------------------------------------------


class Listener:
    def __init__(self, a):
        self.a = a
        self.count = 0
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.seq = itertools.count(1)

    def session(self, sock, addr):
        a = self.a
        peer = "%s:%d" % addr[:2]
        c = Conn(sock)
        try:
            ch = c.read_contact_header()
            c.contact_header()
            t, init = c.read_message()
            if t != SESS_INIT:
                emit("error", peer=peer, error="expected SESS_INIT, got %s" % MSG_NAMES.get(t, t))
                return
            if init["ext_len"]:
                c.sess_init(a.keepalive, a.segment_mru, a.transfer_mru, a.node_id)
                c.sess_term(0, 0)
                emit("error", peer=peer, error="SESS_INIT with extension items; terminated")
                return
            c.sess_init(a.keepalive, a.segment_mru, a.transfer_mru, a.node_id)
            ka = min(a.keepalive, init["keepalive"])
            emit("session", peer=peer, contact_version=ch["version"], contact_flags=ch["flags"],
                 peer_node_id=init["node_id"], peer_keepalive=init["keepalive"],
                 peer_segment_mru=init["segment_mru"], peer_transfer_mru=init["transfer_mru"],
                 keepalive=ka)
            stop = threading.Event()
            interval = a.ka_interval if a.ka_interval is not None else ka / 2.0
            if interval and ka:
                def ka_loop():
                    while not stop.wait(interval):
                        try:
                            c.keepalive()
                        except OSError:
                            return
                        if a.verbose:
                            emit("keepalive", peer=peer, dir="tx")
                threading.Thread(target=ka_loop, daemon=True).start()
            buf, tid, segs, exts, t_first = None, None, 0, [], None
            refused = set()  # segments of a refused transfer may still arrive: drop them
            try:
                while True:
                    t, m = c.read_message()
                    if t == XFER_SEGMENT:
                        if m["tid"] in refused:
                            continue
                        if a.refuse is not None:
                            c.xfer_refuse(a.refuse, m["tid"])
                            refused.add(m["tid"])
                            emit("refused", peer=peer, tid=m["tid"], reason=a.refuse,
                                 size_hint=len(m["data"]))
                            continue
                        if m["flags"] & FLAG_START:
                            if buf is not None:
                                emit("protocol", peer=peer, note="START inside a transfer", tid=m["tid"])
                            buf, tid, segs, exts, t_first = bytearray(), m["tid"], 0, m["extensions"], time.time()
                        elif buf is None or m["tid"] != tid:
                            emit("protocol", peer=peer, note="segment without START", tid=m["tid"])
                            c.msg_reject(3, XFER_SEGMENT)
                            continue
                        buf += m["data"]
                        segs += 1
                        if len(buf) > a.transfer_mru:
                            c.xfer_refuse(2, tid)
                            refused.add(tid)
                            emit("refused", peer=peer, tid=tid, reason=2,
                                 note="over our transfer MRU %d" % a.transfer_mru)
                            buf = None
                            continue
                        c.xfer_ack(m["flags"], tid, len(buf))
                        if m["flags"] & FLAG_END:
                            n = next(self.seq)
                            data = bytes(buf)
                            path = None
                            if a.out:
                                path = os.path.join(a.out, "bundle-%04d.cbor" % n)
                                with open(path + ".tmp", "wb") as f:
                                    f.write(data)
                                os.replace(path + ".tmp", path)
                            emit("bundle", peer=peer, peer_node_id=init["node_id"], n=n, tid=tid,
                                 size=len(data), segments=segs, file=path, extensions=exts,
                                 transfer_s=round(time.time() - t_first, 6),
                                 bundle=describe_bundle(data))
                            buf = None
                            with self.lock:
                                self.count += 1
                                if a.count and self.count >= a.count:
                                    self.done.set()
                    elif t == KEEPALIVE:
                        if a.verbose:
                            emit("keepalive", peer=peer, dir="rx")
                    elif t == SESS_TERM:
                        emit("sess_term", peer=peer, by="peer", **m)
                        if not m["flags"] & 1:
                            c.sess_term(1, m["reason"])
                        break
                    elif t in (XFER_ACK, XFER_REFUSE, MSG_REJECT):
                        emit("unexpected", peer=peer, type=MSG_NAMES[t], **m)
                    elif t == SESS_INIT:
                        emit("protocol", peer=peer, note="second SESS_INIT")
                        c.msg_reject(3, t)
                    else:
                        emit("protocol", peer=peer, note="unknown message type %d" % t)
                        c.msg_reject(1, t)
                        break
            finally:
                stop.set()
        except (Closed, OSError) as e:
            emit("closed", peer=peer, reason=str(e))
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def run(self):
        a = self.a
        if a.out:
            os.makedirs(a.out, exist_ok=True)
        srv = socket.socket(socket.AF_INET6 if ":" in a.bind else socket.AF_INET)
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind((a.bind, a.port))
        srv.listen(16)
        emit("listening", addr=a.bind, port=srv.getsockname()[1], node_id=a.node_id,
             pid=os.getpid())

        def accept_loop():
            while True:
                try:
                    s, addr = srv.accept()
                except OSError:
                    return
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                threading.Thread(target=self.session, args=(s, addr), daemon=True).start()

        threading.Thread(target=accept_loop, daemon=True).start()
        ok = self.done.wait(a.timeout) if a.timeout else self.done.wait()
        if not ok:
            emit("timeout", received=self.count, wanted=a.count)
            return 3
        emit("done", received=self.count)
        time.sleep(0.05)  # let the last XFER_ACK leave
        return 0


# --- send --------------------------------------------------------------------


def cmd_send(a):
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    except OSError as e:
        emit("error", error="connect %s:%d: %s" % (a.host, a.port, e))
        return 2
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c = Conn(s)
    try:
        c.contact_header()
        ch = c.read_contact_header()
        c.sess_init(a.keepalive, a.segment_mru, a.transfer_mru, a.node_id)
        t, init = c.read_message()
        if t != SESS_INIT:
            emit("error", error="expected SESS_INIT, got %s" % MSG_NAMES.get(t, t))
            return 2
    except (Closed, OSError) as e:
        emit("error", error="session setup: %s" % e)
        return 2
    emit("session", peer="%s:%d" % (a.host, a.port), contact_version=ch["version"],
         contact_flags=ch["flags"], peer_node_id=init["node_id"],
         peer_keepalive=init["keepalive"], peer_segment_mru=init["segment_mru"],
         peer_transfer_mru=init["transfer_mru"], keepalive=min(a.keepalive, init["keepalive"]))
    seg_size = a.segment_size or init["segment_mru"]
    if not a.ignore_peer_mru:
        seg_size = min(seg_size, init["segment_mru"])
    rc = 0
    tid = a.first_tid
    for path in a.files:
        with open(path, "rb") as f:
            data = f.read()
        t_start = time.time()
        nseg = max(1, -(-len(data) // seg_size))
        for i in range(nseg):
            chunk = data[i * seg_size:(i + 1) * seg_size]
            flags = (FLAG_START if i == 0 else 0) | (FLAG_END if i == nseg - 1 else 0)
            msg = struct.pack(">BBQ", XFER_SEGMENT, flags, tid)
            if i == 0:
                ext = b""
                if a.transfer_length_ext:
                    ext = struct.pack(">BHHQ", 0, 1, 8, len(data))
                msg += struct.pack(">I", len(ext)) + ext
            msg += struct.pack(">Q", len(chunk)) + chunk
            c.send(msg)
        acks, result, ack_flags = 0, None, []
        try:
            while result is None:
                t, m = c.read_message()
                if t == XFER_ACK and m["tid"] == tid:
                    acks += 1
                    ack_flags.append(m["flags"])
                    if m["len"] >= len(data):
                        result = "acked"
                elif t == XFER_REFUSE and m["tid"] == tid:
                    result = "refused:%s" % m["reason_name"]
                elif t == KEEPALIVE:
                    pass
                elif t == SESS_TERM:
                    result = "sess_term:%s" % m["reason_name"]
                    c.sess_term(1, m["reason"])
                    break
                else:
                    emit("unexpected", type=MSG_NAMES.get(t, t),
                         **{k: v for k, v in (m or {}).items() if k != "data"})
        except (Closed, OSError) as e:
            result = "closed:%s" % e
        emit("sent", file=path, size=len(data), tid=tid, segments=nseg, acks=acks,
             ack_flags=sorted(set(ack_flags)), result=result,
             elapsed_ms=round((time.time() - t_start) * 1000, 3))
        if result != "acked":
            rc = 1
        if result.startswith(("sess_term", "closed")):
            return 1
        tid += 1
        if a.pause:
            time.sleep(a.pause)
    if a.linger:
        time.sleep(a.linger)
    try:
        c.sess_term(0, 0)
        s.settimeout(3)
        while True:
            t, m = c.read_message()
            if t == SESS_TERM:
                emit("sess_term", by="peer", **m)
                break
    except (Closed, OSError) as e:
        emit("closed", reason=str(e))
    s.close()
    return rc


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lp = sub.add_parser("listen")
    lp.add_argument("--bind", default="127.0.0.1")
    lp.add_argument("--port", type=int, required=True)
    lp.add_argument("--node-id", required=True)
    lp.add_argument("--out")
    lp.add_argument("--keepalive", type=int, default=30)
    lp.add_argument("--ka-interval", type=float,
                    help="send KEEPALIVE every N s (default half the negotiated interval; 0 never)")
    lp.add_argument("--segment-mru", type=int, default=65536)
    lp.add_argument("--transfer-mru", type=int, default=16 << 20)
    lp.add_argument("--count", type=int, default=0)
    lp.add_argument("--timeout", type=float, default=0)
    lp.add_argument("--refuse", type=int)
    lp.add_argument("--verbose", action="store_true", help="also report keepalives")
    sp = sub.add_parser("send")
    sp.add_argument("--host", default="127.0.0.1")
    sp.add_argument("--port", type=int, required=True)
    sp.add_argument("--node-id", required=True)
    sp.add_argument("--keepalive", type=int, default=30)
    sp.add_argument("--segment-mru", type=int, default=65536)
    sp.add_argument("--transfer-mru", type=int, default=16 << 20)
    sp.add_argument("--segment-size", type=int, default=0,
                    help="max octets per XFER_SEGMENT (default: the peer's segment MRU)")
    sp.add_argument("--ignore-peer-mru", action="store_true",
                    help="use --segment-size even above the peer's segment MRU (to test it)")
    sp.add_argument("--transfer-length-ext", action="store_true",
                    help="send the RFC 9174 Transfer Length extension item (type 1)")
    sp.add_argument("--first-tid", type=int, default=0)
    sp.add_argument("--pause", type=float, default=0, help="seconds between transfers")
    sp.add_argument("--linger", type=float, default=0, help="seconds before SESS_TERM")
    sp.add_argument("--timeout", type=float, default=10)
    sp.add_argument("files", nargs="+")
    a = ap.parse_args()
    if a.cmd == "listen":
        return Listener(a).run()
    return cmd_send(a)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
