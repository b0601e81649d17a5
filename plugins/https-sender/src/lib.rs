//! Default `sender-plugin` for HTTPS: POSTs one Batch SMTP object to the
//! next hop through `wasi:http`.
//!
//! The host makes the connection on the plugin's behalf and decides what is
//! allowed: only the next hop's authority, trusting only the configured
//! roots, with the configured client certificate (see the host's
//! `HttpGrant`). HTTP/2 is negotiated there when the server offers it. This
//! crate only speaks the wire contract of the WIT `sender` interface:
//! `Content-Type: application/batch-SMTP`, `Idempotency-Key`, optional
//! bearer token; 2xx delivered, 4xx permanent, 5xx and network errors
//! temporary.

wit_bindgen::generate!({
    path: "../../wit",
    world: "sender-plugin",
});

use deepmail::stages::types::StageError;
use exports::deepmail::stages::plugin_info::Info;
use exports::deepmail::stages::sender::{Delivery, Outcome, Payload};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

struct Plugin;

impl exports::deepmail::stages::plugin_info::Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "https-sender".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "POSTs Batch SMTP over HTTPS (HTTP/1.1 or HTTP/2) through wasi:http"
                .into(),
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

/// The parts of an `http(s)://authority/path` URI.
struct Target<'a> {
    https: bool,
    authority: &'a str,
    path: &'a str,
}

fn target(uri: &str) -> Result<Target<'_>, StageError> {
    let (https, rest) = if let Some(rest) = uri.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = uri.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(error(
            "invalid-next-hop",
            format!("`{uri}` is not an http:// or https:// URI"),
        ));
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(error(
            "invalid-next-hop",
            format!("`{uri}` has no usable host (and userinfo is not allowed)"),
        ));
    }
    Ok(Target {
        https,
        authority,
        path: if path.starts_with('?') { "/" } else { path },
    })
}

/// Settings from the delivery's `config`.
struct Settings {
    bearer: Option<String>,
    timeout_ns: u64,
    /// `gzip` when the host compressed the body.
    content_encoding: Option<String>,
}

fn settings(config: &[(String, String)]) -> Result<Settings, StageError> {
    let mut s = Settings {
        bearer: None,
        timeout_ns: 60_000_000_000,
        content_encoding: None,
    };
    for (key, value) in config {
        match key.as_str() {
            "bearer-token" => s.bearer = Some(value.clone()),
            // The host compressed the body; say so (RFC 9110 §8.4).
            "content-encoding" => {
                if value != "gzip" {
                    return Err(error(
                        "invalid-config",
                        format!("content-encoding `{value}`: only gzip"),
                    ));
                }
                s.content_encoding = Some(value.clone());
            }
            "timeout-ms" => {
                let ms: u64 = value.parse().ok().filter(|ms| *ms > 0).ok_or_else(|| {
                    error(
                        "invalid-config",
                        format!("timeout-ms `{value}` is not a positive number"),
                    )
                })?;
                s.timeout_ns = ms.saturating_mul(1_000_000);
            }
            // Settings the host acts on (trust roots, client certificate,
            // allowed authorities) are not the plugin's business.
            _ => {}
        }
    }
    Ok(s)
}

/// Network and protocol errors: the delivery may succeed later.
fn network(what: &str, e: &ErrorCode) -> Outcome {
    let hint = match e {
        ErrorCode::HttpRequestDenied => {
            " (the host refused: the next hop is not in this sender's grant)"
        }
        ErrorCode::TlsCertificateError => {
            " (the server's certificate does not chain to the configured trust roots)"
        }
        ErrorCode::ConnectionRefused => " (nothing listens there)",
        _ => "",
    };
    Outcome::TemporaryFailure(format!("{what}: {e:?}{hint}"))
}

fn read_body(response: &wasi::http::types::IncomingResponse, limit: usize) -> String {
    let Ok(body) = response.consume() else {
        return String::new();
    };
    let Ok(stream) = body.stream() else {
        return String::new();
    };
    let mut out = Vec::new();
    while out.len() < limit {
        match stream.blocking_read((limit - out.len()) as u64) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(_) => break,
        }
    }
    drop(stream);
    String::from_utf8_lossy(&out).trim().to_string()
}

impl exports::deepmail::stages::sender::Guest for Plugin {
    fn send(delivery: Delivery) -> Result<Outcome, StageError> {
        let Payload::Bsmtp(body) = delivery.payload else {
            return Err(error(
                "unsupported-payload",
                "https-sender carries one Batch SMTP object; bundles go to a BP sender".into(),
            ));
        };
        let settings = settings(&delivery.config)?;
        let target = target(&delivery.next_hop)?;
        let mut headers: Vec<(String, Vec<u8>)> = vec![
            ("content-type".into(), b"application/batch-SMTP".to_vec()),
            (
                "idempotency-key".into(),
                delivery.idempotency_key.clone().into_bytes(),
            ),
            ("content-length".into(), body.len().to_string().into_bytes()),
            (
                "user-agent".into(),
                concat!("deepmail-https-sender/", env!("CARGO_PKG_VERSION"))
                    .as_bytes()
                    .to_vec(),
            ),
        ];
        if let Some(encoding) = &settings.content_encoding {
            headers.push(("content-encoding".into(), encoding.clone().into_bytes()));
        }
        if let Some(token) = &settings.bearer {
            headers.push((
                "authorization".into(),
                format!("Bearer {token}").into_bytes(),
            ));
        }
        let fields = Fields::from_list(&headers).map_err(|e| {
            error(
                "invalid-header",
                format!("a header could not be sent: {e:?}"),
            )
        })?;
        let request = OutgoingRequest::new(fields);
        let set = |ok: Result<(), ()>, what: &str| {
            ok.map_err(|_| error("invalid-next-hop", format!("{what} rejected")))
        };
        set(request.set_method(&Method::Post), "method")?;
        set(
            request.set_scheme(Some(if target.https {
                &Scheme::Https
            } else {
                &Scheme::Http
            })),
            "scheme",
        )?;
        set(request.set_authority(Some(target.authority)), "authority")?;
        set(request.set_path_with_query(Some(target.path)), "path")?;
        let outgoing = request
            .body()
            .map_err(|_| error("plugin-failed", "request body unavailable".into()))?;
        let options = RequestOptions::new();
        let _ = options.set_connect_timeout(Some(settings.timeout_ns));
        let _ = options.set_first_byte_timeout(Some(settings.timeout_ns));
        let _ = options.set_between_bytes_timeout(Some(settings.timeout_ns));

        let future = match outgoing_handler::handle(request, Some(options)) {
            Ok(f) => f,
            Err(e) => return Ok(network(&format!("POST {}", delivery.next_hop), &e)),
        };
        // Stream the body. A server may answer before it has read it all
        // (413, 401) and close: then the write fails, but the answer is
        // there, and it is what counts; so is a connection error.
        let mut write_error = None;
        {
            let stream = outgoing
                .write()
                .map_err(|_| error("plugin-failed", "request stream unavailable".into()))?;
            // As much per write as the host takes (`check-write`, up to
            // its chunk limit), waiting on the stream when it is full: far
            // fewer host calls and frames than 4 KiB blocking writes.
            let describe = |e: StreamError| match e {
                StreamError::LastOperationFailed(err) => err.to_debug_string(),
                StreamError::Closed => "the connection closed while sending the body".to_string(),
            };
            let ready = stream.subscribe();
            let mut rest: &[u8] = &body;
            while !rest.is_empty() {
                match stream.check_write() {
                    Ok(0) => ready.block(),
                    Ok(n) => {
                        let n = usize::try_from(n).unwrap_or(usize::MAX).min(rest.len());
                        if let Err(e) = stream.write(&rest[..n]) {
                            write_error = Some(describe(e));
                            break;
                        }
                        rest = &rest[n..];
                    }
                    Err(e) => {
                        write_error = Some(describe(e));
                        break;
                    }
                }
            }
            if write_error.is_none() {
                if let Err(e) = stream.blocking_flush() {
                    write_error = Some(describe(e));
                }
            }
            drop(ready);
        }
        if write_error.is_none() {
            if let Err(e) = OutgoingBody::finish(outgoing, None) {
                return Ok(network(&format!("POST {}", delivery.next_hop), &e));
            }
        } else {
            drop(outgoing);
        }
        future.subscribe().block();
        let response = match future.get() {
            Some(Ok(Ok(response))) => response,
            Some(Ok(Err(e))) => return Ok(network(&format!("POST {}", delivery.next_hop), &e)),
            Some(Err(())) | None => {
                let why = write_error.unwrap_or_else(|| "no response".into());
                return Ok(Outcome::TemporaryFailure(format!(
                    "POST {}: {why}",
                    delivery.next_hop
                )));
            }
        };
        let status = response.status();
        let reason = read_body(&response, 8 * 1024);
        let said = format!("HTTP {status} from {}: {reason}", delivery.next_hop);
        Ok(match status {
            200..=299 => Outcome::Delivered(said),
            400..=499 => Outcome::PermanentFailure(said),
            _ => Outcome::TemporaryFailure(said),
        })
    }
}

export!(Plugin);
