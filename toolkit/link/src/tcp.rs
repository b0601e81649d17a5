//! The TCP relay: a split-connection proxy (like a satellite link's
//! performance-enhancing proxy). The client's handshake completes at once
//! on loopback; the SYN then crosses the link, so the far side's connect
//! happens one up delay later, and whatever the client writes meanwhile is
//! held behind it. Each direction is cut into segments of at most `mss`
//! bytes that go through the [`Channel`] model and are written in order at
//! their arrival time; a close (FIN) crosses like data, and the two
//! directions close independently (half-close works). A target that
//! refuses the connection shows up as the client's connection being closed
//! one round trip after it was opened. A read error (reset) is relayed as
//! a close.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};
use tokio::time::{sleep, sleep_until, Instant};

use crate::channel::{Arrival, Channel, InOrder};
use crate::link::{lock, spawn_until_stopped, Shared};
use crate::stats::{ActiveGuard, DirectionCounters, RelayCounters};

/// How much is read from a socket at once.
const READ_SIZE: usize = 64 << 10;
/// How far ahead of the transmitter a reader may queue before it stops
/// reading (and the sender's socket buffer fills up).
const QUEUE_SLACK: Duration = Duration::from_millis(20);
/// Segments already due are written together, up to this many bytes.
const MAX_WRITE: usize = 256 << 10;

/// What crosses one direction of a connection.
enum Segment {
    Data(Instant, Bytes),
    Fin(Instant),
}

/// Accepts connections on `listener` and relays each to `target`.
pub(crate) async fn run_tcp_relay(
    listener: TcpListener,
    target: SocketAddr,
    shared: Arc<Shared>,
    counters: Arc<RelayCounters>,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(_) => {
                // Out of descriptors or similar: try again shortly.
                sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        DirectionCounters::add(&counters.connections, 1);
        let connection = relay_connection(client, target, shared.clone(), counters.clone());
        spawn_until_stopped(&shared.stop, connection);
    }
}

async fn relay_connection(
    client: TcpStream,
    target: SocketAddr,
    shared: Arc<Shared>,
    counters: Arc<RelayCounters>,
) {
    let _active = ActiveGuard::enter(&counters.active);
    let _ = client.set_nodelay(true);
    let mut up_order = InOrder::default();
    let syn = transmit(&shared.up, &counters.up, Instant::now(), 0);
    let syn_at = up_order.place(syn.at);
    let (client_read, client_write) = client.into_split();
    let (up_tx, up_rx) = mpsc::unbounded_channel();

    let up_read = read_side(
        client_read,
        up_tx,
        &shared.up,
        up_order,
        &counters.up,
        shared.mss,
    );
    let far_side = async {
        sleep_until(syn_at).await;
        let server = match TcpStream::connect(target).await {
            Ok(server) => server,
            Err(_) => {
                DirectionCounters::add(&counters.connect_failures, 1);
                // The refusal crosses back; then the client sees a close.
                let back = lock(&shared.down).delay();
                sleep(back).await;
                drop(client_write);
                return false;
            }
        };
        let _ = server.set_nodelay(true);
        let (server_read, server_write) = server.into_split();
        let (down_tx, down_rx) = mpsc::unbounded_channel();
        tokio::join!(
            write_side(up_rx, server_write, &counters.up),
            read_side(
                server_read,
                down_tx,
                &shared.down,
                InOrder::default(),
                &counters.down,
                shared.mss
            ),
            write_side(down_rx, client_write, &counters.down),
        );
        true
    };
    tokio::pin!(up_read, far_side);
    tokio::select! {
        connected = &mut far_side => {
            if connected {
                (&mut up_read).await;
            }
        }
        () = &mut up_read => {
            far_side.await;
        }
    }
}

/// One transmission through `channel`, counted.
fn transmit(
    channel: &Mutex<Channel>,
    counters: &DirectionCounters,
    now: Instant,
    len: usize,
) -> Arrival {
    let arrival = lock(channel).segment(now, len);
    DirectionCounters::add(&counters.segments, 1);
    if arrival.retransmitted {
        DirectionCounters::add(&counters.delayed_by_loss, 1);
    }
    arrival
}

/// Reads one direction, cuts it into segments, puts each through the
/// channel and queues it for [`write_side`]; ends with a FIN.
async fn read_side<R: AsyncRead + Unpin>(
    mut from: R,
    to: UnboundedSender<Segment>,
    channel: &Mutex<Channel>,
    mut order: InOrder,
    counters: &DirectionCounters,
    mss: usize,
) {
    let mut buf = BytesMut::new();
    loop {
        buf.reserve(READ_SIZE);
        let n = match from.read_buf(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        DirectionCounters::add(&counters.bytes_in, n);
        let data = buf.split().freeze();
        let now = Instant::now();
        let mut last_sent = now;
        let mut offset = 0;
        while offset < data.len() {
            let end = data.len().min(offset + mss);
            let arrival = transmit(channel, counters, now, end - offset);
            last_sent = arrival.sent;
            let segment = Segment::Data(order.place(arrival.at), data.slice(offset..end));
            if to.send(segment).is_err() {
                return; // the writer gave up
            }
            offset = end;
        }
        // Back-pressure: read on only when the transmitter is nearly free.
        if let Some(resume) = last_sent.checked_sub(QUEUE_SLACK) {
            if resume > Instant::now() {
                sleep_until(resume).await;
            }
        }
    }
    let fin = transmit(channel, counters, Instant::now(), 0);
    let _ = to.send(Segment::Fin(order.place(fin.at)));
}

/// Writes the segments of one direction at their arrival times.
async fn write_side<W: AsyncWrite + Unpin>(
    mut from: UnboundedReceiver<Segment>,
    mut to: W,
    counters: &DirectionCounters,
) {
    let mut pending = None;
    let mut batch = Vec::new();
    loop {
        let segment = match pending.take() {
            Some(segment) => segment,
            None => match from.recv().await {
                Some(segment) => segment,
                None => break,
            },
        };
        match segment {
            Segment::Fin(at) => {
                wait_until(at).await;
                break;
            }
            Segment::Data(at, first) => {
                wait_until(at).await;
                let now = Instant::now();
                batch.clear();
                batch.extend_from_slice(&first);
                while batch.len() < MAX_WRITE {
                    match from.try_recv() {
                        Ok(Segment::Data(at, more)) if at <= now => batch.extend_from_slice(&more),
                        Ok(later) => {
                            pending = Some(later);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                if to.write_all(&batch).await.is_err() {
                    return;
                }
                DirectionCounters::add(&counters.bytes_out, batch.len());
            }
        }
    }
    let _ = to.shutdown().await;
}

async fn wait_until(at: Instant) {
    if at > Instant::now() {
        sleep_until(at).await;
    }
}
