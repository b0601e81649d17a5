//! The UDP relay. Each client address gets a session: a socket of its own,
//! connected to the target, so the target sees one peer per client and
//! its replies go back to the client they answer. Every datagram goes
//! through the [`Channel`](crate::channel::Channel) model (queue limit,
//! serialisation, loss, delay) and a [`run_delay_line`] per direction.
//! Sessions last until the link stops.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::net::UdpSocket;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::time::{sleep, Instant};

use crate::channel::{Channel, Fate};
use crate::delay_line::run_delay_line;
use crate::link::{lock, spawn_until_stopped, Shared};
use crate::stats::{ActiveGuard, DirectionCounters, RelayCounters};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Relays datagrams arriving on `listen` to `target`, and the replies back.
pub(crate) async fn run_udp_relay(
    listen: UdpSocket,
    target: SocketAddr,
    shared: Arc<Shared>,
    counters: Arc<RelayCounters>,
) {
    let listen = Arc::new(listen);

    let (up_tx, up_rx) = mpsc::unbounded_channel::<(Instant, (Arc<UdpSocket>, Bytes))>();
    let c = counters.clone();
    spawn_until_stopped(
        &shared.stop,
        run_delay_line(up_rx, move |(socket, datagram): (Arc<UdpSocket>, Bytes)| {
            let c = c.clone();
            async move {
                if socket.send(&datagram).await.is_ok() {
                    count_out(&c.up, datagram.len());
                }
            }
        }),
    );
    let (down_tx, down_rx) = mpsc::unbounded_channel::<(Instant, (SocketAddr, Bytes))>();
    let (c, socket) = (counters.clone(), listen.clone());
    spawn_until_stopped(
        &shared.stop,
        run_delay_line(down_rx, move |(client, datagram): (SocketAddr, Bytes)| {
            let (c, socket) = (c.clone(), socket.clone());
            async move {
                if socket.send_to(&datagram, client).await.is_ok() {
                    count_out(&c.down, datagram.len());
                }
            }
        }),
    );

    let mut sessions: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (n, client) = match listen.recv_from(&mut buf).await {
            Ok(received) => received,
            Err(_) => {
                sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let upstream = match sessions.get(&client) {
            Some(upstream) => upstream.clone(),
            None => {
                DirectionCounters::add(&counters.connections, 1);
                let Ok(upstream) = open_session(target).await else {
                    DirectionCounters::add(&counters.connect_failures, 1);
                    continue;
                };
                let upstream = Arc::new(upstream);
                sessions.insert(client, upstream.clone());
                let replies = relay_replies(
                    upstream.clone(),
                    client,
                    shared.clone(),
                    counters.clone(),
                    down_tx.clone(),
                );
                spawn_until_stopped(&shared.stop, replies);
                upstream
            }
        };
        let datagram = Bytes::copy_from_slice(&buf[..n]);
        carry(&shared.up, &counters.up, &up_tx, datagram, upstream);
    }
}

/// A socket towards `target` for one client.
async fn open_session(target: SocketAddr) -> std::io::Result<UdpSocket> {
    let local: IpAddr = match (target.ip(), target.ip().is_loopback()) {
        (IpAddr::V4(_), true) => Ipv4Addr::LOCALHOST.into(),
        (IpAddr::V4(_), false) => Ipv4Addr::UNSPECIFIED.into(),
        (IpAddr::V6(_), true) => Ipv6Addr::LOCALHOST.into(),
        (IpAddr::V6(_), false) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Carries the target's replies on one session back to its client.
async fn relay_replies(
    upstream: Arc<UdpSocket>,
    client: SocketAddr,
    shared: Arc<Shared>,
    counters: Arc<RelayCounters>,
    down_tx: UnboundedSender<(Instant, (SocketAddr, Bytes))>,
) {
    let _active = ActiveGuard::enter(&counters.active);
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let n = match upstream.recv(&mut buf).await {
            Ok(n) => n,
            Err(_) => {
                // E.g. ICMP port unreachable from the target: keep going.
                sleep(Duration::from_millis(1)).await;
                continue;
            }
        };
        let datagram = Bytes::copy_from_slice(&buf[..n]);
        carry(&shared.down, &counters.down, &down_tx, datagram, client);
    }
}

/// Counts a datagram in, decides its fate and queues it for delivery.
fn carry<D>(
    channel: &Mutex<Channel>,
    counters: &DirectionCounters,
    line: &UnboundedSender<(Instant, (D, Bytes))>,
    datagram: Bytes,
    destination: D,
) {
    DirectionCounters::add(&counters.datagrams_in, 1);
    DirectionCounters::add(&counters.bytes_in, datagram.len());
    let fate = lock(channel).datagram(Instant::now(), datagram.len());
    match fate {
        Fate::Arrives(arrival) => {
            let _ = line.send((arrival.at, (destination, datagram)));
        }
        Fate::Lost => DirectionCounters::add(&counters.dropped, 1),
        Fate::QueueFull => DirectionCounters::add(&counters.dropped_queue, 1),
    }
}

fn count_out(counters: &DirectionCounters, len: usize) {
    DirectionCounters::add(&counters.datagrams_out, 1);
    DirectionCounters::add(&counters.bytes_out, len);
}
