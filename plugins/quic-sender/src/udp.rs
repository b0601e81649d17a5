//! The only I/O in the plugin: one connected `std::net::UdpSocket` (which is
//! `wasi:sockets` UDP inside the component) driving an [`Exchange`].
//!
//! `std`'s socket timeouts are not implemented on wasm32-wasip2, but
//! wasi-libc's `poll` is, over the same `wasi:sockets` pollables; the loop
//! sleeps in `poll` until a datagram arrives or the exchange's next timer.

use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use crate::exchange::{Delivered, Exchange, Failure};

/// Waits until `socket` is readable, at most `timeout`.
fn wait_readable(socket: &impl AsRawFd, timeout: Duration) -> std::io::Result<bool> {
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // Round up so a sub-millisecond timer does not spin.
    let ms = timeout.as_micros().div_ceil(1000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for a descriptor `socket` keeps open.
    match unsafe { libc::poll(&mut fds, 1, ms) } {
        n if n < 0 => Err(std::io::Error::last_os_error()),
        0 => Ok(false),
        _ => Ok(true),
    }
}

/// Opens a UDP socket connected to `remote`.
pub fn connect(remote: SocketAddr) -> std::io::Result<UdpSocket> {
    let bind: SocketAddr = if remote.is_ipv4() {
        SocketAddr::from(([0, 0, 0, 0], 0))
    } else {
        SocketAddr::from(([0u16; 8], 0))
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(remote)?;
    Ok(socket)
}

fn refused(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
            | ErrorKind::HostUnreachable
            | ErrorKind::NetworkUnreachable
    )
}

/// Runs `exchange` to its end over `socket`.
pub fn run(socket: &UdpSocket, mut exchange: Exchange) -> Result<Delivered, Failure> {
    let mut out = Vec::with_capacity(1500);
    let mut buf = vec![0u8; 65_535];
    loop {
        let now = Instant::now();
        while let Some(len) = exchange.poll_transmit(now, &mut out) {
            if let Err(e) = socket.send(&out[..len]) {
                if refused(&e) {
                    exchange.handle_refused(now, &e.to_string());
                } else if e.kind() != ErrorKind::WouldBlock {
                    // A lost datagram: QUIC's loss recovery resends it.
                }
            }
        }
        if exchange.result().is_some() {
            // The CONNECTION_CLOSE (if any) went out above; do not wait
            // for the draining period.
            return exchange
                .take_result()
                .unwrap_or_else(|| Err(Failure::Protocol("no outcome".into())));
        }
        let wake = exchange.poll_timeout();
        let now = Instant::now();
        let readable = if wake > now {
            match wait_readable(socket, wake - now) {
                Ok(r) => r,
                Err(e) => {
                    return Err(Failure::Connection(format!(
                        "poll on the UDP socket failed: {e}"
                    )))
                }
            }
        } else {
            false
        };
        if readable {
            match socket.recv(&mut buf) {
                Ok(n) => exchange.handle_datagram(Instant::now(), &buf[..n]),
                Err(e) if refused(&e) => exchange.handle_refused(Instant::now(), &e.to_string()),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                Err(e) => {
                    return Err(Failure::Connection(format!(
                        "receiving from the UDP socket failed: {e}"
                    )))
                }
            }
        }
        let now = Instant::now();
        if exchange.poll_timeout() <= now {
            exchange.handle_timeout(now);
        }
    }
}
