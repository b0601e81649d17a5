#!/usr/bin/env python3
"""A tiny HTTP/3 receiving gateway on aioquic: the interop peer of the
quic-sender plugin (toolkit/host/tests/quic_sender.rs).

It answers `POST /inboundmail` the way a deepmail receiver does:

* 200 with a JSON receipt when the request is a BSMTP object
  (`Content-Type: application/batch-SMTP`) with the right bearer token;
* 401 (missing or wrong `Authorization: Bearer`, when --token is given),
  415 (other content type), 404 (other path), 405 (other method), each with
  a one-line reason as the body;
* any status on request, for failure tests: `POST /inboundmail?status=500`
  answers 500 (the body says so).

Every request is recorded in the --record directory as N.head (every
header field in order, pseudo-headers included, one `name<TAB>value` line
each) and N.body (the body, byte for byte), N counting from 1, N.head
written last.

Certificates: with --certs DIR, a test CA and a server certificate for
--names (default gw.moon.example, localhost, 127.0.0.1) are generated there
unless present: ca.pem, server.pem, server.key, and other-ca.pem, an
unrelated CA for "wrong trust root" tests.

Session tickets are kept in memory, so a client that resumes can send
0-RTT data, which aioquic accepts.

When listening, the actual port is written to --ready (atomically), so
--port 0 works.

Install aioquic with scripts/peers/install-aioquic.sh.
"""

import argparse
import asyncio
import datetime
import hashlib
import ipaddress
import json
import os
import signal
import sys
from urllib.parse import parse_qs, urlsplit

from aioquic.asyncio import QuicConnectionProtocol, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ProtocolNegotiated, QuicEvent
from aioquic.tls import SessionTicket


# --- certificates ---------------------------------------------------------

def _make_ca(common_name):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _pem(cert):
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_certs(directory, names):
    """Creates ca.pem, server.pem, server.key and other-ca.pem in directory."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(directory, exist_ok=True)
    paths = {n: os.path.join(directory, n) for n in
             ("ca.pem", "server.pem", "server.key", "other-ca.pem")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    ca_key, ca_cert = _make_ca("deepmail test CA")
    _, other_cert = _make_ca("deepmail unrelated CA")
    key = ec.generate_private_key(ec.SECP256R1())
    sans = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    with open(paths["server.key"], "wb") as f:
        f.write(key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
    with open(paths["server.pem"], "wb") as f:
        f.write(_pem(cert))
    with open(paths["other-ca.pem"], "wb") as f:
        f.write(_pem(other_cert))
    # ca.pem last: its presence means the set is complete.
    with open(paths["ca.pem"], "wb") as f:
        f.write(_pem(ca_cert))
    return paths


# --- the receiver -----------------------------------------------------------

class TicketStore:
    """In-memory session tickets, so clients can resume and send 0-RTT."""

    def __init__(self):
        self.tickets = {}

    def add(self, ticket: SessionTicket) -> None:
        self.tickets[ticket.ticket] = ticket

    def pop(self, label: bytes):
        return self.tickets.pop(label, None)


class Request:
    def __init__(self, headers):
        self.headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        self.body = bytearray()

    def get(self, name):
        for k, v in self.headers:
            if k == name:
                return v
        return None


class GatewayProtocol(QuicConnectionProtocol):
    options = None
    recorded = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._http = None
        self._requests = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ProtocolNegotiated) and event.alpn_protocol in H3_ALPN:
            self._http = H3Connection(self._quic)
        if self._http is None:
            return
        for h3_event in self._http.handle_event(event):
            self._h3_event(h3_event)

    def _h3_event(self, event):
        if isinstance(event, HeadersReceived):
            req = self._requests.get(event.stream_id)
            if req is None:
                self._requests[event.stream_id] = req = Request(event.headers)
            if event.stream_ended:
                self._respond(event.stream_id)
        elif isinstance(event, DataReceived):
            req = self._requests.get(event.stream_id)
            if req is not None:
                req.body.extend(event.data)
                if event.stream_ended:
                    self._respond(event.stream_id)

    def _respond(self, stream_id):
        req = self._requests.pop(stream_id)
        opts = self.options
        method = req.get(":method")
        target = req.get(":path") or "/"
        parts = urlsplit(target)
        query = parse_qs(parts.query)
        body = bytes(req.body)
        GatewayProtocol.recorded += 1
        base = os.path.join(opts.record, str(GatewayProtocol.recorded))
        with open(base + ".body", "wb") as f:
            f.write(body)
        with open(base + ".head.tmp", "w", encoding="latin-1") as f:
            for k, v in req.headers:
                f.write(f"{k}\t{v}\n")
        os.replace(base + ".head.tmp", base + ".head")

        content_type = (req.get("content-type") or "").lower()
        if method != "POST":
            status, text = 405, f"method {method} not allowed; POST a BSMTP object"
        elif parts.path != "/inboundmail":
            status, text = 404, f"no inbound mail endpoint at {parts.path}"
        elif opts.token is not None and req.get("authorization") != f"Bearer {opts.token}":
            status, text = 401, "bearer token missing or not accepted"
        elif content_type != "application/batch-smtp":
            status, text = 415, f"expected application/batch-SMTP, got {content_type or 'nothing'}"
        elif "status" in query:
            status = int(query["status"][0])
            text = f"status {status} forced by the test"
        else:
            status = 200
            text = json.dumps({
                "accepted": True,
                "bytes": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
                "idempotency_key": req.get("idempotency-key"),
            })
        content = "application/json" if status == 200 else "text/plain"
        payload = text.encode()
        self._http.send_headers(stream_id, [
            (b":status", str(status).encode()),
            (b"content-type", content.encode()),
            (b"content-length", str(len(payload)).encode()),
            (b"server", b"deepmail-aioquic-peer"),
        ])
        self._http.send_data(stream_id, payload, end_stream=True)
        self.transmit()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--certs", required=True, help="directory for the test PKI")
    parser.add_argument("--names", default="gw.moon.example,localhost,127.0.0.1",
                        help="comma-separated SANs of the server certificate")
    parser.add_argument("--record", required=True, help="directory to record requests in")
    parser.add_argument("--ready", required=True, help="file to write the port to")
    parser.add_argument("--token", default=None, help="bearer token to require")
    parser.add_argument("--idle-timeout", type=float, default=60.0)
    opts = parser.parse_args()

    os.makedirs(opts.record, exist_ok=True)
    paths = ensure_certs(opts.certs, [n.strip() for n in opts.names.split(",") if n.strip()])
    config = QuicConfiguration(
        is_client=False,
        alpn_protocols=H3_ALPN,
        idle_timeout=opts.idle_timeout,
        max_datagram_frame_size=65536,
    )
    config.load_cert_chain(paths["server.pem"], paths["server.key"])
    GatewayProtocol.options = opts
    tickets = TicketStore()
    server = await serve(
        opts.host,
        opts.port,
        configuration=config,
        create_protocol=GatewayProtocol,
        session_ticket_fetcher=tickets.pop,
        session_ticket_handler=tickets.add,
    )
    port = server._transport.get_extra_info("sockname")[1]
    tmp = opts.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, opts.ready)
    print(f"h3_server: listening on {opts.host}:{port}", file=sys.stderr, flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


if __name__ == "__main__":
    asyncio.run(main())
