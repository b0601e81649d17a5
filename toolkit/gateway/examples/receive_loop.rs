//! A quick loopback measurement of the receiving endpoint: sequential 1 KiB
//! POSTs on one connection over HTTP/1.1, HTTP/2 and HTTP/3 (each a new
//! batch: decoded, fsynced into the spool), then 10 MiB POSTs.
//!
//! ```sh
//! cargo run -p deepmail-gateway --example receive_loop [SPOOL_PARENT_DIR]
//! ```

use std::sync::Arc;
use std::time::Instant;

use deepmail_gateway::{batch_request, Connection, HttpVersion};
use deepmail_gateway::{client_config, TestPki};
use deepmail_gateway::{Receiver, ReceiverConfig, Spool};
use deepmail_host::{Codec, Host, HostConfig, PluginSource};

fn batch(content_bytes: usize, n: usize) -> Vec<u8> {
    let mut b = format!(
        "MAIL FROM:<ops@earth.example>\r\nRCPT TO:<ada@moon.example>\r\nDATA\r\nSubject: {n}\r\n\r\n"
    )
    .into_bytes();
    let line = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n";
    while b.len() + line.len() + 5 <= content_bytes {
        b.extend_from_slice(line);
    }
    b.extend_from_slice(b".\r\n");
    b
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let parent = std::env::args()
        .nth(1)
        .unwrap_or_else(|| std::env::temp_dir().display().to_string());
    let dir = tempfile::tempdir_in(parent)?;
    let pki = TestPki::generate(&["gw.moon.example".into()], "earth-gw")?;
    let host = Host::new(HostConfig::default())?;
    let codec = Codec::load(&host, &PluginSource::Builtin("bsmtp-codec".into()))?;
    let (chain, key) = pki.server_identity();
    let mut config = ReceiverConfig::new(chain, key);
    config.https_listen = Some("127.0.0.1:0".parse()?);
    config.h3_listen = Some("127.0.0.1:0".parse()?);
    let spool = Arc::new(Spool::open(dir.path())?);
    let receiver = Receiver::bind(config, spool.clone(), codec).await?;
    let (https, h3) = (receiver.https_addr().unwrap(), receiver.h3_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(receiver.serve(async {
        let _ = stopped.await;
    }));
    let tls = client_config(&[pki.ca_der()], None, &[])?;
    println!("spool in {}", dir.path().display());
    let requests = 300;
    for (version, addr) in [
        (HttpVersion::Http1, https),
        (HttpVersion::Http2, https),
        (HttpVersion::Http3, h3),
    ] {
        let url = format!("https://gw.moon.example:{}/inboundmail", addr.port());
        let mut conn = Connection::connect(addr, "gw.moon.example", &tls, version).await?;
        // Small: every request a new batch (decode + fsync'd spool write).
        let started = Instant::now();
        for i in 0..requests {
            let body = batch(1024, i);
            let key = format!("{version:?}-small-{i}");
            let r = conn
                .send(batch_request(&url, body, Some(&key), None)?)
                .await?;
            assert_eq!(r.status(), 200);
        }
        let small = requests as f64 / started.elapsed().as_secs_f64();
        // The same 1 KiB as duplicates: the protocol and decode, no fsync.
        let body = batch(1024, 0);
        let started = Instant::now();
        for _ in 0..requests {
            let key = format!("{version:?}-small-0");
            let r = conn
                .send(batch_request(&url, body.clone(), Some(&key), None)?)
                .await?;
            assert_eq!(r.status(), 200);
        }
        let dup = requests as f64 / started.elapsed().as_secs_f64();
        // Large: 10 MiB batches.
        let big = batch(10 << 20, 0);
        let rounds = 5;
        let started = Instant::now();
        for i in 0..rounds {
            let key = format!("{version:?}-big-{i}");
            let r = conn
                .send(batch_request(&url, big.clone(), Some(&key), None)?)
                .await?;
            assert_eq!(r.status(), 200, "{:?}", r.body());
        }
        let mbps = (rounds * big.len()) as f64 / started.elapsed().as_secs_f64() / 1e6;
        let started = Instant::now();
        for _ in 0..rounds {
            let key = format!("{version:?}-big-0");
            let r = conn
                .send(batch_request(&url, big.clone(), Some(&key), None)?)
                .await?;
            assert_eq!(r.status(), 200, "{:?}", r.body());
        }
        let dup_mbps = (rounds * big.len()) as f64 / started.elapsed().as_secs_f64() / 1e6;
        println!(
            "{version:?}: 1 KiB new batches {small:.0} req/s, 1 KiB duplicates {dup:.0} req/s, 10 MiB batches {mbps:.0} MB/s, 10 MiB duplicates {dup_mbps:.0} MB/s"
        );
        conn.close().await;
    }
    let _ = stop.send(());
    server.await?;
    Ok(())
}
