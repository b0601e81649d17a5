//! The only I/O in the plugin: one `std::net::TcpStream` (which is
//! `wasi:sockets` TCP inside the component) driving an
//! [`ActiveSession`].
//!
//! `std`'s socket timeouts are not implemented on wasm32-wasip2, but
//! wasi-libc's `poll` is, over the same `wasi:sockets` pollables. The loop
//! sleeps in `poll` until the socket can be read or written or the
//! session's next timer is due, and never blocks on a write while the peer
//! waits for us to read: the socket is non-blocking, and when the platform
//! refuses that, writes happen only when `poll` says the socket is
//! writable.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use deepmail_tcpcl::{ActiveSession, Event};

/// Output held back from the socket before the session is asked for more.
const MAX_PENDING_OUTPUT: usize = 256 * 1024;

/// What the socket became ready for.
struct Ready {
    read: bool,
    write: bool,
}

/// Waits until `socket` is ready for what `read`/`write` ask, at most
/// `timeout`.
fn wait(
    socket: &impl AsRawFd,
    read: bool,
    write: bool,
    timeout: Duration,
) -> std::io::Result<Ready> {
    let mut events = 0;
    if read {
        events |= libc::POLLIN;
    }
    if write {
        events |= libc::POLLOUT;
    }
    let mut fds = libc::pollfd {
        fd: socket.as_raw_fd(),
        events,
        revents: 0,
    };
    // Round up so a sub-millisecond timer does not spin.
    let ms = timeout.as_micros().div_ceil(1000);
    let ms = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    // SAFETY: one valid pollfd, for a descriptor `socket` keeps open.
    let n = unsafe { libc::poll(&mut fds, 1, ms) };
    if n < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let trouble = fds.revents & (libc::POLLHUP | libc::POLLERR) != 0;
    Ok(Ready {
        read: fds.revents & libc::POLLIN != 0 || (read && trouble),
        write: fds.revents & libc::POLLOUT != 0 || (write && trouble),
    })
}

/// Why the connection could not be used.
#[derive(Debug)]
pub enum ConnectError {
    /// The host's grant does not cover the address.
    Denied(std::io::Error),
    /// Refused, unreachable, timed out.
    Failed(std::io::Error),
}

/// Opens the TCP connection within `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, ConnectError> {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(stream) => Ok(stream),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => Err(ConnectError::Denied(e)),
        Err(e) => Err(ConnectError::Failed(e)),
    }
}

/// The application's side of the session, called by [`Conn::run`].
pub trait Driver {
    /// An event from the session (the driver may call `send_bundle`,
    /// `terminate`, ...).
    fn on_event(&mut self, session: &mut ActiveSession, event: Event, now: Instant);

    /// Whether the driver has what it wanted: [`Conn::run`] then returns
    /// [`RunEnd::Done`] once the output is written, leaving the session
    /// open for later use.
    fn done(&self) -> bool {
        false
    }
}

/// How [`Conn::run`] ended.
#[derive(Debug, PartialEq, Eq)]
pub enum RunEnd {
    /// The driver is done and the session stays open.
    Done,
    /// The session closed (its last event was `SessionTerminated`).
    Closed,
    /// The deadline passed first.
    Deadline,
    /// The socket failed.
    Io(String),
}

/// Ends the session after a socket error, letting the driver see its
/// last events.
fn fail(session: &mut ActiveSession, driver: &mut impl Driver, detail: String) -> RunEnd {
    let now = Instant::now();
    session.handle_eof(now);
    while let Some(event) = session.poll_event() {
        driver.on_event(session, event, now);
    }
    RunEnd::Io(detail)
}

/// The TCP connection under a session, with the output not yet written:
/// it outlives one [`Conn::run`], so a session kept open between
/// deliveries never loses or reorders a byte.
pub struct Conn {
    stream: TcpStream,
    nonblocking: bool,
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
    buf: Vec<u8>,
}

impl Conn {
    /// Wraps a connected stream (non-blocking where the platform allows).
    pub fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        let nonblocking = stream.set_nonblocking(true).is_ok();
        Conn {
            stream,
            nonblocking,
            out: Vec::new(),
            out_pos: 0,
            eof: false,
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// Whether the peer closed its side.
    pub fn peer_closed(&self) -> bool {
        self.eof
    }

    fn flushed(&self) -> bool {
        self.out_pos == self.out.len()
    }

    /// Closes the connection at once (after a best-effort write of what
    /// is pending).
    pub fn close(mut self) {
        if !self.flushed() && !self.eof {
            let _ = self.stream.set_nonblocking(false);
            let _ = self.stream.write_all(&self.out[self.out_pos..]);
        }
        let _ = self.stream.flush();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Runs `session` until it closes, the driver is [`Driver::done`], or
    /// `deadline` passes. Every call does at least one round of socket
    /// I/O, so a `deadline` of now services a session without waiting:
    /// what the peer sent is read, keepalives due are sent.
    pub fn run(
        &mut self,
        session: &mut ActiveSession,
        driver: &mut impl Driver,
        deadline: Instant,
    ) -> RunEnd {
        let mut first = true;
        loop {
            let now = Instant::now();
            // Events before output: when the peer's contact header and
            // SESS_INIT arrive together, `Established` makes the driver
            // queue its bundles here, so our SESS_INIT and the first
            // XFER_SEGMENTs leave in the same write (RFC 9174 §4.7: the
            // session is established from our side once both SESS_INITs
            // are through), one round trip earlier than waiting for
            // another read.
            while let Some(event) = session.poll_event() {
                driver.on_event(session, event, now);
            }
            if self.flushed() {
                self.out.clear();
                self.out_pos = 0;
            }
            while self.out.len() - self.out_pos < MAX_PENDING_OUTPUT {
                match session.poll_transmit(now) {
                    Some(bytes) => self.out.extend_from_slice(&bytes),
                    None => break,
                }
            }
            if session.is_closed() && (self.flushed() || self.eof) {
                let _ = self.stream.flush();
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                while let Some(event) = session.poll_event() {
                    driver.on_event(session, event, now);
                }
                return RunEnd::Closed;
            }
            if !first {
                if driver.done() && self.flushed() {
                    return RunEnd::Done;
                }
                if now >= deadline {
                    return RunEnd::Deadline;
                }
            }
            first = false;
            let wake = session.poll_timeout().map_or(deadline, |t| t.min(deadline));
            let pending = !self.flushed() && !self.eof;
            let ready = match wait(
                &self.stream,
                !self.eof,
                pending,
                wake.saturating_duration_since(now),
            ) {
                Ok(r) => r,
                Err(e) => return RunEnd::Io(format!("poll on the TCP socket failed: {e}")),
            };
            if ready.write && pending {
                let result = if self.nonblocking {
                    self.stream.write(&self.out[self.out_pos..])
                } else {
                    self.stream
                        .write_all(&self.out[self.out_pos..])
                        .map(|()| self.out.len() - self.out_pos)
                };
                match result {
                    Ok(n) => self.out_pos += n,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {}
                    Err(e) => {
                        // Before the peer's contact header, a write that
                        // fails as "not connected" or "refused" is the
                        // connect itself failing (a non-blocking connect
                        // reports it late).
                        let detail = if session.peer().is_none()
                            && matches!(
                                e.kind(),
                                ErrorKind::NotConnected | ErrorKind::ConnectionRefused
                            ) {
                            format!("cannot connect: {e}")
                        } else {
                            format!("writing to the TCP connection failed: {e}")
                        };
                        // The peer is gone; what it said before still counts.
                        self.eof = true;
                        return fail(session, driver, detail);
                    }
                }
            }
            if ready.read && !self.eof {
                loop {
                    match self.stream.read(&mut self.buf) {
                        Ok(0) => {
                            self.eof = true;
                            session.handle_eof(Instant::now());
                            break;
                        }
                        Ok(n) => {
                            session.handle_input(Instant::now(), &self.buf[..n]);
                            if !self.nonblocking {
                                break;
                            }
                        }
                        Err(e)
                            if matches!(
                                e.kind(),
                                ErrorKind::WouldBlock | ErrorKind::Interrupted
                            ) =>
                        {
                            break
                        }
                        Err(e) => {
                            self.eof = true;
                            return fail(
                                session,
                                driver,
                                format!("reading from the TCP connection failed: {e}"),
                            );
                        }
                    }
                }
            }
            let now = Instant::now();
            if session.poll_timeout().is_some_and(|t| t <= now) {
                session.handle_timeout(now);
            }
        }
    }
}
