//! A user-space deep-space link for TCP: a relay between two loopback
//! addresses that holds every byte for a fixed one-way delay in each
//! direction (the kernel here has no `netem`). The demo puts it between
//! the Earth and Moon gateways; it preserves ordering and byte counts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// Bytes carried, per direction.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Connections relayed.
    pub connections: AtomicU64,
    /// Bytes from the client side to the server side.
    pub bytes_forward: AtomicU64,
    /// Bytes from the server side back.
    pub bytes_back: AtomicU64,
}

/// A running delaying TCP relay.
pub struct DelayLink {
    /// Where clients connect.
    pub listen: SocketAddr,
    /// The counters.
    pub counters: Arc<LinkCounters>,
    stop: watch::Sender<bool>,
}

impl DelayLink {
    /// Listens on `listen` (port 0 picks one) and relays each connection to
    /// `target`, delaying both directions by `one_way`.
    pub async fn start(
        listen: SocketAddr,
        target: SocketAddr,
        one_way: Duration,
    ) -> std::io::Result<DelayLink> {
        let listener = TcpListener::bind(listen).await?;
        let listen = listener.local_addr()?;
        let counters = Arc::new(LinkCounters::default());
        let (stop, mut stop_rx) = watch::channel(false);
        let c = counters.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    _ = stop_rx.wait_for(|s| *s) => return,
                };
                let Ok((client, _)) = accepted else { continue };
                let c = c.clone();
                tokio::spawn(async move {
                    // The connection attempt itself crosses the link.
                    tokio::time::sleep(one_way).await;
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    c.connections.fetch_add(1, Ordering::Relaxed);
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let forward = pipe(cr, sw, one_way, c.clone(), true);
                    let back = pipe(sr, cw, one_way, c, false);
                    let _ = tokio::join!(forward, back);
                });
            }
        });
        Ok(DelayLink {
            listen,
            counters,
            stop,
        })
    }

    /// Stops accepting (open connections finish on their own).
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    delay: Duration,
    counters: Arc<LinkCounters>,
    forward: bool,
) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reader = async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let counter = if forward {
                        &counters.bytes_forward
                    } else {
                        &counters.bytes_back
                    };
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
        // Dropping tx delivers the end of stream after the queued bytes.
    };
    let writer = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(delay).await;
        let _ = to.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bytes_arrive_after_the_delay_in_order() {
        let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let target = server.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        });
        let delay = Duration::from_millis(150);
        let link = DelayLink::start("127.0.0.1:0".parse().unwrap(), target, delay)
            .await
            .unwrap();
        let start = std::time::Instant::now();
        let mut c = TcpStream::connect(link.listen).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut back = [0u8; 5];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"hello");
        // connect + forward + back: three one-way delays at least.
        assert!(start.elapsed() >= delay * 3, "{:?}", start.elapsed());
        assert_eq!(link.counters.bytes_forward.load(Ordering::Relaxed), 5);
        link.stop();
    }
}
