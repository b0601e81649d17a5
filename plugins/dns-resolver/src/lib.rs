//! Default `dns-resolver-plugin` component: finds a mail domain's next hops
//! in DNS URI records, `_bsmtp._https.<domain> IN URI prio weight "target"`
//! (RFC 7553), by sending real queries from inside the component.
//!
//! The protocol logic is `deepmail-uri-rr` (sans-IO); this crate adds the
//! sockets: UDP with EDNS(0) first, TCP when the answer is truncated
//! (RFC 7766), per-server timeouts and attempts. Sockets are `wasi:sockets`
//! through Rust's `std::net`; the host grants them for the configured DNS
//! servers only.

wit_bindgen::generate!({
    path: "../../wit",
    world: "dns-resolver-plugin",
});

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use deepmail::stages::types::StageError;
use deepmail_uri_rr::{
    bsmtp_service_name, build_query, frame_tcp, order_records, parse_response, seeded_random,
    unframe_tcp, Answer, DnsError, Name, DEFAULT_EDNS_UDP_SIZE, TYPE_URI,
};
use exports::deepmail::stages::plugin_info::Info;
use exports::deepmail::stages::resolver::{NextHop, ResolveRequest};

struct Plugin;

impl exports::deepmail::stages::plugin_info::Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "dns-resolver".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "next hops from DNS URI records (RFC 7553), UDP with TCP fallback".into(),
        }
    }
}

fn error(code: &str, message: String) -> StageError {
    StageError {
        code: code.into(),
        message,
        offset: None,
    }
}

fn dns_error(e: &DnsError, from: &str) -> StageError {
    let offset = match e {
        DnsError::Malformed { offset, .. } | DnsError::InvalidUri { offset, .. } => {
            Some(*offset as u64)
        }
        _ => None,
    };
    StageError {
        code: e.code().into(),
        message: format!("{from}: {e}"),
        offset,
    }
}

fn service_name(domain: &str) -> Result<Name, StageError> {
    bsmtp_service_name(domain).map_err(|e| {
        error(
            "invalid-domain",
            format!("`{domain}` is not a domain name deepmail can look up: {e}"),
        )
    })
}

/// Orders an answer's records and turns them into next hops.
fn next_hops(
    answer: &Answer,
    seed: u64,
    schemes: &[String],
    origin: &str,
) -> Result<Vec<NextHop>, StageError> {
    let allowed: Vec<&str> = schemes.iter().map(String::as_str).collect();
    let ordered = order_records(&answer.records, &mut seeded_random(seed), &allowed);
    if ordered.is_empty() {
        let targets: Vec<&str> = answer.records.iter().map(|r| r.target.as_str()).collect();
        return Err(error(
            "no-usable-target",
            format!(
                "{origin}: {} URI record(s) for {}, none with a scheme in [{}]: {}",
                answer.records.len(),
                answer.canonical_name,
                allowed.join(", "),
                targets.join(", ")
            ),
        ));
    }
    Ok(ordered
        .into_iter()
        .map(|r| NextHop {
            uri: r.target,
            priority: r.priority,
            weight: r.weight,
            origin: origin.to_string(),
            // RFC 2181 §5.2: an RRset's records share its lowest TTL; the
            // CNAMEs on the way bound it too (that is `answer.ttl`).
            ttl: Some(answer.ttl),
        })
        .collect())
}

impl exports::deepmail::stages::dns_answer::Guest for Plugin {
    fn parse_answer(
        domain: String,
        query_id: u16,
        response: Vec<u8>,
        random_seed: u64,
        schemes: Vec<String>,
    ) -> Result<Vec<NextHop>, StageError> {
        let name = service_name(&domain)?;
        let answer = parse_response(query_id, &name, TYPE_URI, &response)
            .map_err(|e| dns_error(&e, "answer"))?;
        next_hops(&answer, random_seed, &schemes, "dns")
    }
}

/// Settings read from the request's `config`.
struct Settings {
    servers: Vec<SocketAddr>,
    timeout: Duration,
    attempts: u32,
}

fn settings(config: &[(String, String)]) -> Result<Settings, StageError> {
    let mut s = Settings {
        servers: Vec::new(),
        timeout: Duration::from_millis(2000),
        attempts: 2,
    };
    for (key, value) in config {
        match key.as_str() {
            "server" => s.servers.push(value.parse().map_err(|_| {
                error(
                    "invalid-config",
                    format!("server `{value}` is not an address:port, e.g. 127.0.0.1:53"),
                )
            })?),
            "timeout-ms" => {
                let ms: u64 = value.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    error(
                        "invalid-config",
                        format!("timeout-ms `{value}` is not a positive number"),
                    )
                })?;
                s.timeout = Duration::from_millis(ms);
            }
            "attempts" => {
                s.attempts = value.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    error(
                        "invalid-config",
                        format!("attempts `{value}` is not a positive number"),
                    )
                })?
            }
            other => {
                return Err(error(
                    "invalid-config",
                    format!("dns-resolver has no setting `{other}`"),
                ))
            }
        }
    }
    if s.servers.is_empty() {
        return Err(error(
            "invalid-config",
            "dns-resolver needs at least one `server` (address:port)".into(),
        ));
    }
    Ok(s)
}

/// Waits until `socket` has something to read, at most `timeout`.
///
/// `std`'s read timeouts are not implemented on wasm32-wasip2, but
/// wasi-libc's `poll` is, over the same `wasi:sockets` pollables.
fn wait_readable(socket: &impl AsRawFd, timeout: Duration) -> std::io::Result<bool> {
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = libc::c_int::try_from(timeout.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for a descriptor `socket` keeps open.
    match unsafe { libc::poll(&mut fds, 1, ms) } {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// What one exchange with one server came to.
enum Exchange {
    Answer(Answer),
    /// Authoritative "no": NXDOMAIN or NODATA. Asking elsewhere won't help.
    Final(StageError),
    /// Worth asking again, or the next server.
    Retry(StageError),
}

fn classify(result: Result<Answer, DnsError>, from: &str) -> Exchange {
    match result {
        Ok(answer) => Exchange::Answer(answer),
        Err(e @ (DnsError::NxDomain { .. } | DnsError::NoData { .. })) => {
            Exchange::Final(dns_error(&e, from))
        }
        Err(e) => Exchange::Retry(dns_error(&e, from)),
    }
}

fn query_udp(server: SocketAddr, name: &Name, id: u16, timeout: Duration) -> Exchange {
    let from = format!("dns {server} (udp)");
    let bind: SocketAddr = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    }
    .parse()
    .expect("literal");
    let socket = match UdpSocket::bind(bind).and_then(|s| s.connect(server).map(|_| s)) {
        Ok(s) => s,
        Err(e) => {
            return Exchange::Retry(error(
                "network",
                format!("{from}: cannot open a socket: {e}"),
            ))
        }
    };
    let query = build_query(id, name, TYPE_URI, Some(DEFAULT_EDNS_UDP_SIZE));
    if let Err(e) = socket.send(&query) {
        return Exchange::Retry(error("network", format!("{from}: cannot send: {e}")));
    }
    let deadline = Instant::now() + timeout;
    let mut buf = vec![0u8; 65_535];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Exchange::Retry(error(
                "timeout",
                format!("{from}: no answer within {} ms", timeout.as_millis()),
            ));
        }
        match wait_readable(&socket, left) {
            Ok(true) => {}
            Ok(false) => {
                return Exchange::Retry(error(
                    "timeout",
                    format!("{from}: no answer within {} ms", timeout.as_millis()),
                ))
            }
            Err(e) => return Exchange::Retry(error("network", format!("{from}: {e}"))),
        }
        let n = match socket.recv(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Exchange::Retry(error(
                    "timeout",
                    format!("{from}: no answer within {} ms", timeout.as_millis()),
                ));
            }
            Err(e) => return Exchange::Retry(error("network", format!("{from}: {e}"))),
        };
        match parse_response(id, name, TYPE_URI, &buf[..n]) {
            // Not an answer to this query (stale or spoofed): keep listening.
            Err(
                DnsError::IdMismatch { .. }
                | DnsError::QuestionMismatch { .. }
                | DnsError::NotAResponse { .. },
            ) => continue,
            other => return classify(other, &from),
        }
    }
}

fn query_tcp(server: SocketAddr, name: &Name, id: u16, timeout: Duration) -> Exchange {
    let from = format!("dns {server} (tcp)");
    let mut stream = match TcpStream::connect_timeout(&server, timeout) {
        Ok(s) => s,
        Err(e) => return Exchange::Retry(error("network", format!("{from}: cannot connect: {e}"))),
    };
    let query = frame_tcp(&build_query(id, name, TYPE_URI, None));
    if let Err(e) = stream.write_all(&query) {
        return Exchange::Retry(error("network", format!("{from}: cannot send: {e}")));
    }
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some((message, _)) = unframe_tcp(&buf) {
            return classify(parse_response(id, name, TYPE_URI, message), &from);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match wait_readable(&stream, left) {
            Ok(true) => {}
            Ok(false) => {
                return Exchange::Retry(error(
                    "timeout",
                    format!("{from}: no answer within {} ms", timeout.as_millis()),
                ))
            }
            Err(e) => return Exchange::Retry(error("network", format!("{from}: {e}"))),
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Exchange::Retry(error(
                    "network",
                    format!("{from}: the server closed the connection"),
                ))
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Exchange::Retry(error(
                    "timeout",
                    format!("{from}: no answer within {} ms", timeout.as_millis()),
                ));
            }
            Err(e) => return Exchange::Retry(error("network", format!("{from}: {e}"))),
        }
    }
}

impl exports::deepmail::stages::resolver::Guest for Plugin {
    fn resolve(request: ResolveRequest) -> Result<Vec<NextHop>, StageError> {
        let settings = settings(&request.config)?;
        let name = service_name(&request.domain)?;
        let mut ids = seeded_random(request.random_seed ^ 0xD1B5_4A32_D192_ED03);
        let mut last = None;
        for server in &settings.servers {
            for _ in 0..settings.attempts {
                let id = (ids() >> 48) as u16;
                let mut outcome = query_udp(*server, &name, id, settings.timeout);
                if let Exchange::Retry(e) = &outcome {
                    if e.code == "truncated" {
                        outcome = query_tcp(*server, &name, id, settings.timeout);
                    }
                }
                match outcome {
                    Exchange::Answer(answer) => {
                        return next_hops(
                            &answer,
                            request.random_seed,
                            &request.schemes,
                            &format!("dns {server}"),
                        );
                    }
                    Exchange::Final(e) => return Err(e),
                    Exchange::Retry(e) => {
                        // A server that answered SERVFAIL or REFUSED won't
                        // change its mind on a second try; move on.
                        let move_on =
                            matches!(e.code.as_str(), "servfail" | "refused" | "other-rcode");
                        last = Some(e);
                        if move_on {
                            break;
                        }
                    }
                }
            }
        }
        Err(last.unwrap_or_else(|| error("timeout", "no DNS server answered".into())))
    }
}

export!(Plugin);
