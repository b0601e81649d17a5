//! Counters every part of the gateway bumps, served as Prometheus text at
//! `GET /metrics` (plain HTTP, on the address `[metrics] listen` names) and
//! printed by `deepmail demo`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

macro_rules! counters {
    ($($name:ident: $help:literal,)* ; $($gauge:ident: $ghelp:literal,)*) => {
        /// The gateway's counters (monotonic, since start) and gauges
        /// (current values).
        #[derive(Debug, Default)]
        pub struct Metrics {
            $(#[doc = $help] pub $name: AtomicU64,)*
            $(#[doc = $ghelp] pub $gauge: AtomicU64,)*
        }

        impl Metrics {
            /// `(name, help, value)` of every counter.
            pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), $help, self.$name.load(Ordering::Relaxed)),)*]
            }

            /// `(name, help, value)` of every gauge.
            pub fn gauges(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($gauge), $ghelp, self.$gauge.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    smtp_sessions: "SMTP sessions accepted",
    smtp_messages_accepted: "messages accepted over SMTP (250 after spooling)",
    smtp_recipients_refused: "recipients refused at RCPT (relay rules or policy)",
    smtp_messages_refused: "messages refused at end of DATA (policy, spool failure)",
    queue_enqueued: "messages put in the outbound queue (SMTP, submit, DSNs)",
    batches_sent: "batches the next hop accepted (2xx)",
    batch_attempts_failed: "batch attempts that failed temporarily (will retry)",
    messages_sent: "messages in batches the next hop accepted",
    messages_returned: "messages returned to their sender (permanent failure or expiry)",
    dsns_generated: "delivery status notifications generated",
    delay_warnings: "delay warnings (Action: delayed DSNs) sent, one per message at most",
    batches_received: "Batch SMTP objects received and spooled (HTTPS / HTTP/3)",
    messages_received: "messages in the batches received and spooled",
    relay_messages_delivered: "received messages the local MTA accepted for at least one recipient",
    relay_recipients_refused: "recipients the local MTA refused (a DSN goes back)",
    relay_attempts_failed: "relay attempts that failed temporarily (will retry)",
    dead_letters: "messages kept in dead-letter/ (no sender to return them to)",
    queue_quarantined: "damaged queue records (message records, batch records) moved into quarantine/",
    bundles_sent: "bundles handed to the BP sender (a bundle sent again after a failure counts again)",
    bundle_bytes_sent: "bytes of the bundles handed to the BP sender",
    bundles_acknowledged: "bundles the far BP node acknowledged (TCPCL XFER_ACK)",
    bp_batches_cut: "BP batches of which only part crossed (the window closed or the session broke); the rest goes later, acknowledged bundles never again",
    bundles_received: "bundles that arrived over TCPCL (before any check)",
    bp_bib_refused: "bundles refused because their block integrity check failed (no BIB, unknown key, wrong HMAC)",
    ;
    sender_sessions_open: "connections sender plugins keep open between deliveries (TCPCL sessions)",
    queue_messages: "messages in the outbound queue",
    queue_bytes_waiting: "bytes of queued messages not on their way now (waiting for a window, a retry or a delivery slot)",
    last_smtp_accept_unix_us: "when a message was last accepted over SMTP (its 250 sent), microseconds since the Unix epoch; 0: not yet",
    last_batch_sent_unix_us: "when the next hop last accepted a batch, microseconds since the Unix epoch; 0: not yet",
    last_batch_received_unix_us: "when a received batch was last spooled (HTTPS, HTTP/3 or BP), microseconds since the Unix epoch; 0: not yet",
}

impl Metrics {
    /// Adds one.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets a `last_*_unix_us` gauge to now. It records the instant of the
    /// event itself, so a reader (an alert on "no delivery for an hour",
    /// `bench link`'s timings) does not depend on when it polls.
    pub fn stamp(gauge: &AtomicU64) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        gauge.fetch_max(now, Ordering::Relaxed);
    }

    /// Prometheus text exposition format, names prefixed `deepmail_`.
    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        for (name, help, value) in self.snapshot() {
            out.push_str(&format!(
                "# HELP deepmail_{name}_total {help}\n# TYPE deepmail_{name}_total counter\ndeepmail_{name}_total {value}\n"
            ));
        }
        for (name, help, value) in self.gauges() {
            out.push_str(&format!(
                "# HELP deepmail_{name} {help}\n# TYPE deepmail_{name} gauge\ndeepmail_{name} {value}\n"
            ));
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until `stop` turns true.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    let response = if req.uri().path() == "/metrics" {
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(metrics.prometheus())))
                    } else {
                        Response::builder()
                            .status(404)
                            .body(Full::new(Bytes::from_static(b"try /metrics\n")))
                    };
                    Ok::<_, http::Error>(response.unwrap_or_default())
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Binds the metrics listener.
pub(crate) async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_every_counter() {
        let m = Metrics::default();
        Metrics::inc(&m.batches_sent);
        let text = m.prometheus();
        assert!(text.contains("deepmail_batches_sent_total 1\n"), "{text}");
        assert!(text.contains("# TYPE deepmail_dead_letters_total counter"));
        assert!(text.contains("# TYPE deepmail_sender_sessions_open gauge"));
    }

    #[test]
    fn a_stamp_is_the_time_of_the_event_and_never_goes_back() {
        let m = Metrics::default();
        assert_eq!(m.last_batch_sent_unix_us.load(Ordering::Relaxed), 0);
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros() as u64;
        Metrics::stamp(&m.last_batch_sent_unix_us);
        let stamped = m.last_batch_sent_unix_us.load(Ordering::Relaxed);
        assert!(
            stamped >= before && stamped < before + 60_000_000,
            "{stamped} vs {before}"
        );
        // A stamp from a thread that read the clock earlier cannot undo a later one.
        m.last_batch_sent_unix_us
            .store(u64::MAX - 1, Ordering::Relaxed);
        Metrics::stamp(&m.last_batch_sent_unix_us);
        assert_eq!(
            m.last_batch_sent_unix_us.load(Ordering::Relaxed),
            u64::MAX - 1
        );
        assert!(m
            .prometheus()
            .contains("# TYPE deepmail_last_batch_sent_unix_us gauge"));
    }
}
