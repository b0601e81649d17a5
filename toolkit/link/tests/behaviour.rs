//! Measures the relays through the public API with real loopback sockets:
//! what a TCP request/response costs, that FINs and held data cross like
//! data, the rate cap, UDP loss, order and replies. Timing bounds are
//! loose above (these machines are shared and noisy) and tight below.

use std::net::SocketAddr;
use std::time::Duration;

use deepmail_link::{DirectionConfig, Link, LinkConfig, Protocol, Rate};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

const MS: Duration = Duration::from_millis(1);
const ANY: &str = "127.0.0.1:0";

fn any() -> SocketAddr {
    ANY.parse().unwrap()
}

/// A TCP server that echoes each connection until EOF, then closes; it
/// reports when it accepted each connection.
async fn echo_server() -> (SocketAddr, mpsc::UnboundedReceiver<Instant>) {
    let listener = TcpListener::bind(ANY).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let _ = tx.send(Instant::now());
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    (addr, rx)
}

/// A UDP server that echoes every datagram to its sender.
async fn udp_echo() -> SocketAddr {
    let socket = UdpSocket::bind(ANY).await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = socket.recv_from(&mut buf).await.unwrap();
            socket.send_to(&buf[..n], from).await.unwrap();
        }
    });
    addr
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out");
        sleep(10 * MS).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_request_and_response_cost_two_one_way_delays() {
    let (target, mut accepted) = echo_server().await;
    // Mars at 4 minutes, 600 times faster: 400 ms each way.
    let mut config = LinkConfig::with_delay(Duration::from_secs(240)).tcp(any(), target);
    config.scale = 600.0;
    let link = Link::start(config).await.unwrap();
    let delay = 400 * MS;

    let start = Instant::now();
    let mut c = TcpStream::connect(link.tcp_listen_addrs()[0])
        .await
        .unwrap();
    // Written before the far side has connected: held, then delivered.
    c.write_all(b"ping").await.unwrap();
    let mut reply = [0u8; 4];
    c.read_exact(&mut reply).await.unwrap();
    let elapsed = start.elapsed();
    assert_eq!(&reply, b"ping");

    let far_connect = accepted.recv().await.unwrap() - start;
    eprintln!("measured: far connect {far_connect:?}, request/response {elapsed:?}");
    assert!(
        far_connect >= delay,
        "far side connected after {far_connect:?}"
    );
    assert!(elapsed >= delay * 2, "{elapsed:?}");
    // Not three delays (the data does not wait for a handshake round trip).
    assert!(elapsed < delay * 2 + 350 * MS, "{elapsed:?}");

    let stats = link.counters();
    let relay = stats.relay(link.tcp_listen_addrs()[0]).unwrap();
    assert_eq!(relay.protocol, Protocol::Tcp);
    assert_eq!(relay.connections, 1);
    assert_eq!(relay.up.bytes_in, 4);
    assert_eq!(relay.up.bytes_out, 4);
    assert_eq!(relay.down.bytes_out, 4);
    // SYN + one data segment.
    assert_eq!(relay.up.segments, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_crosses_the_link_like_data_and_directions_are_independent() {
    let listener = TcpListener::bind(ANY).await.unwrap();
    let target = listener.local_addr().unwrap();
    let delay = 300 * MS;
    let link = Link::start(LinkConfig::with_delay(delay).tcp(any(), target))
        .await
        .unwrap();
    let mut c = TcpStream::connect(link.tcp_listen_addrs()[0])
        .await
        .unwrap();
    let (mut s, _) = listener.accept().await.unwrap();

    // Client half-closes; the server sees data then EOF one delay later.
    c.write_all(b"last words").await.unwrap();
    let closed = Instant::now();
    c.shutdown().await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    let eof_after = closed.elapsed();
    assert_eq!(got, b"last words");
    eprintln!("measured: FIN after {eof_after:?}");
    assert!(eof_after >= delay, "{eof_after:?}");

    // The other direction is still open, and its close is delayed too.
    s.write_all(b"reply").await.unwrap();
    let closed = Instant::now();
    drop(s);
    let mut got = Vec::new();
    c.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"reply");
    assert!(closed.elapsed() >= delay, "{:?}", closed.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_stays_whole_and_in_order_through_loss_and_jitter() {
    let (target, _) = echo_server().await;
    let mut config = LinkConfig::with_delay(30 * MS).tcp(any(), target);
    for d in [&mut config.up, &mut config.down] {
        d.loss = 0.2;
        d.jitter = 20 * MS;
    }
    config.seed = 7;
    let link = Link::start(config).await.unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let c = TcpStream::connect(link.tcp_listen_addrs()[0])
        .await
        .unwrap();
    let (mut r, mut w) = c.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move {
        // Small writes, so there are many segments and read chunks.
        for chunk in sent.chunks(1000) {
            w.write_all(chunk).await.unwrap();
        }
        w.shutdown().await.unwrap();
    });
    let mut back = Vec::new();
    timeout(Duration::from_secs(60), r.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert!(back == data, "the echoed stream differs");
    let relay = link.counters().relays[0];
    assert_eq!(relay.up.bytes_in, data.len() as u64);
    assert_eq!(relay.up.bytes_out, data.len() as u64);
    assert_eq!(relay.down.bytes_out, data.len() as u64);
    assert!(relay.up.segments >= (data.len() / 1460) as u64);
    let loss = relay.up.delayed_by_loss as f64 / relay.up.segments as f64;
    eprintln!("measured: {relay:?}");
    assert!((0.08..0.35).contains(&loss), "{relay:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_megabyte_at_8_mbit_takes_about_a_second() {
    let listener = TcpListener::bind(ANY).await.unwrap();
    let target = listener.local_addr().unwrap();
    let mut config = LinkConfig::with_delay(50 * MS).tcp(any(), target);
    config.up.rate = Some("8Mbit".parse().unwrap());
    let link = Link::start(config).await.unwrap();
    let mut c = TcpStream::connect(link.tcp_listen_addrs()[0])
        .await
        .unwrap();
    let (mut s, _) = listener.accept().await.unwrap();

    let start = Instant::now();
    let writer = tokio::spawn(async move {
        c.write_all(&vec![7u8; 1_000_000]).await.unwrap();
        c.shutdown().await.unwrap();
        c
    });
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    let elapsed = start.elapsed();
    let _c = writer.await.unwrap();
    assert_eq!(got.len(), 1_000_000);
    eprintln!("measured: 1 MB at 8 Mbit in {elapsed:?}");
    // 1 s of serialisation + 50 ms of delay.
    assert!(elapsed >= 1000 * MS, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_connection_is_closed_one_round_trip_later() {
    // A port with nothing listening.
    let target = TcpListener::bind(ANY).await.unwrap().local_addr().unwrap();
    let delay = 200 * MS;
    let link = Link::start(LinkConfig::with_delay(delay).tcp(any(), target))
        .await
        .unwrap();
    let start = Instant::now();
    let mut c = TcpStream::connect(link.tcp_listen_addrs()[0])
        .await
        .unwrap();
    let mut buf = [0u8; 1];
    let n = timeout(Duration::from_secs(10), c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(start.elapsed() >= delay * 2, "{:?}", start.elapsed());
    assert_eq!(link.counters().relays[0].connect_failures, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_udp_loss_is_near_the_probability_and_reproducible() {
    async fn run(seed: u64) -> (u64, u64) {
        let sink = UdpSocket::bind(ANY).await.unwrap();
        let target = sink.local_addr().unwrap();
        let mut config = LinkConfig::with_delay(MS).udp(any(), target);
        config.up.loss = 0.1;
        config.seed = seed;
        let link = Link::start(config).await.unwrap();
        let received = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            let mut n = 0u64;
            while timeout(Duration::from_secs(2), sink.recv(&mut buf))
                .await
                .is_ok()
            {
                n += 1;
            }
            n
        });
        let client = UdpSocket::bind(ANY).await.unwrap();
        let relay = link.udp_listen_addrs()[0];
        for batch in 0..200u32 {
            for i in 0..50u32 {
                client
                    .send_to(&(batch * 50 + i).to_be_bytes(), relay)
                    .await
                    .unwrap();
            }
            // Flow control, so no socket buffer overflows: wait for the
            // relay to have read the batch.
            let sent = u64::from(batch + 1) * 50;
            wait_for(|| link.counters().relays[0].up.datagrams_in >= sent).await;
        }
        let received = received.await.unwrap();
        let up = link.counters().relays[0].up;
        assert_eq!(up.datagrams_in, 10_000, "the kernel dropped some: {up:?}");
        assert_eq!(up.datagrams_out + up.dropped, 10_000, "{up:?}");
        assert_eq!(received, up.datagrams_out);
        (up.dropped, received)
    }
    let (dropped, received) = run(42).await;
    eprintln!("measured: seed 42, loss 0.1: {dropped} of 10000 dropped, {received} received");
    // Binomial(10000, 0.1): sigma = 30; allow 4 sigma.
    assert!((880..=1120).contains(&dropped), "{dropped}");
    let (again, _) = run(42).await;
    assert_eq!(dropped, again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_replies_go_back_to_their_client_after_two_delays() {
    let target = udp_echo().await;
    let delay = 250 * MS;
    let link = Link::start(LinkConfig::with_delay(delay).udp(any(), target))
        .await
        .unwrap();
    let relay = link.udp_listen_addrs()[0];
    let a = UdpSocket::bind(ANY).await.unwrap();
    let b = UdpSocket::bind(ANY).await.unwrap();
    let start = Instant::now();
    a.send_to(b"from a", relay).await.unwrap();
    b.send_to(b"from b", relay).await.unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = a.recv_from(&mut buf).await.unwrap();
    assert_eq!((&buf[..n], from), (&b"from a"[..], relay));
    let (n, _) = b.recv_from(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"from b");
    assert!(start.elapsed() >= delay * 2, "{:?}", start.elapsed());
    assert!(
        start.elapsed() < delay * 2 + 350 * MS,
        "{:?}",
        start.elapsed()
    );
    let stats = link.counters().relays[0];
    assert_eq!(stats.protocol, Protocol::Udp);
    assert_eq!(stats.connections, 2);
    assert_eq!(stats.active, 2);
    assert_eq!((stats.up.datagrams_out, stats.down.datagrams_out), (2, 2));
    assert_eq!(stats.down.bytes_out, 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_keeps_order_without_jitter_and_the_rate_spaces_datagrams() {
    let sink = UdpSocket::bind(ANY).await.unwrap();
    let target = sink.local_addr().unwrap();
    let mut config = LinkConfig::with_delay(20 * MS).udp(any(), target);
    // 100 datagrams of 1000 bytes at 800 kbit: one second.
    config.up.rate = Some(Rate::bits_per_second(800_000));
    let link = Link::start(config).await.unwrap();
    let client = UdpSocket::bind(ANY).await.unwrap();
    let relay = link.udp_listen_addrs()[0];
    let start = Instant::now();
    for i in 0..100u32 {
        let mut datagram = vec![0u8; 1000];
        datagram[..4].copy_from_slice(&i.to_be_bytes());
        client.send_to(&datagram, relay).await.unwrap();
        if i % 10 == 9 {
            // Paced a little, so the kernel's socket buffers drop nothing.
            sleep(MS).await;
        }
    }
    let mut buf = [0u8; 1000];
    for expected in 0..100u32 {
        let n = timeout(Duration::from_secs(10), sink.recv(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("datagram {expected}: {:?}", link.counters()))
            .unwrap();
        assert_eq!(n, 1000);
        assert_eq!(buf[..4], expected.to_be_bytes());
    }
    let elapsed = start.elapsed();
    eprintln!("measured: 100 x 1000 B at 800 kbit in {elapsed:?}");
    assert!(elapsed >= 1000 * MS, "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_udp_queue_drops_the_tail() {
    let sink = UdpSocket::bind(ANY).await.unwrap();
    let target = sink.local_addr().unwrap();
    let mut config = LinkConfig::with_delay(MS).udp(any(), target);
    config.up = DirectionConfig {
        rate: Some("80kbit".parse().unwrap()), // 10 bytes per ms
        ..config.up
    };
    config.queue_limit = 5_000;
    let link = Link::start(config).await.unwrap();
    let client = UdpSocket::bind(ANY).await.unwrap();
    for _ in 0..20 {
        client
            .send_to(&[0u8; 1000], link.udp_listen_addrs()[0])
            .await
            .unwrap();
    }
    wait_for(|| link.counters().relays[0].up.datagrams_in == 20).await;
    let up = link.counters().relays[0].up;
    // About five fit (one sending, four queued); the rest are dropped.
    assert!((10..=15).contains(&up.dropped_queue), "{up:?}");
    assert_eq!(up.dropped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_closes_the_listeners() {
    let (target, _) = echo_server().await;
    let link = Link::start(LinkConfig::with_delay(MS).tcp(any(), target))
        .await
        .unwrap();
    let addr = link.tcp_listen_addrs()[0];
    TcpStream::connect(addr).await.unwrap();
    link.stop();
    wait_for(|| std::net::TcpStream::connect(addr).is_err()).await;
}

#[tokio::test]
async fn a_taken_port_is_an_error_naming_it() {
    let taken = TcpListener::bind(ANY).await.unwrap();
    let addr = taken.local_addr().unwrap();
    let err = Link::start(LinkConfig::default().tcp(addr, addr))
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    let err = Link::start(LinkConfig::default()).await.unwrap_err();
    assert!(err.to_string().contains("relays nothing"), "{err}");
}
