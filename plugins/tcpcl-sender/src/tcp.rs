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

use crate::tls::TlsClient;

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
    /// The session's output not yet written (or, with TLS, not yet given
    /// to rustls).
    out: Vec<u8>,
    out_pos: usize,
    eof: bool,
    buf: Vec<u8>,
    /// How to start TLS when the session asks ([`Event::StartTls`]).
    tls_client: Option<TlsClient>,
    /// The TLS connection once started: the session's bytes are its
    /// plaintext.
    tls: Option<Box<rustls::ClientConnection>>,
}

impl Conn {
    /// Wraps a connected stream (non-blocking where the platform allows);
    /// `tls` is how to run TLS if the session negotiates it.
    pub fn new(stream: TcpStream, tls: Option<TlsClient>) -> Conn {
        let _ = stream.set_nodelay(true);
        let nonblocking = stream.set_nonblocking(true).is_ok();
        Conn {
            stream,
            nonblocking,
            out: Vec::new(),
            out_pos: 0,
            eof: false,
            buf: vec![0u8; 64 * 1024],
            tls_client: tls,
            tls: None,
        }
    }

    /// Whether the peer closed its side.
    pub fn peer_closed(&self) -> bool {
        self.eof
    }

    /// Whether the session runs over TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    fn flushed(&self) -> bool {
        self.out_pos == self.out.len() && !self.tls.as_ref().is_some_and(|t| t.wants_write())
    }

    /// Closes the connection at once (after a best-effort write of what
    /// is pending, and TLS's close_notify).
    pub fn close(mut self) {
        if !self.eof {
            let _ = self.stream.set_nonblocking(false);
            if let Some(tls) = self.tls.as_mut() {
                let _ = tls.writer().write_all(&self.out[self.out_pos..]);
                tls.send_close_notify();
                while tls.wants_write() {
                    if tls.write_tls(&mut self.stream).is_err() {
                        break;
                    }
                }
            } else if !self.flushed() {
                let _ = self.stream.write_all(&self.out[self.out_pos..]);
            }
        }
        let _ = self.stream.flush();
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Starts TLS as [`Event::StartTls`] asks: what is pending goes out in
    /// the clear first (our contact header), then the handshake begins;
    /// SESS_INIT is queued at once and rustls holds it until the
    /// handshake is done.
    fn start_tls(&mut self, session: &mut ActiveSession) {
        let Some(client) = self.tls_client.clone() else {
            session.tls_failed(
                "the peer and this side negotiated TLS but no TLS client is configured".into(),
            );
            return;
        };
        if !self.flushed() {
            let _ = self.stream.set_nonblocking(false);
            let written = self.stream.write_all(&self.out[self.out_pos..]);
            self.nonblocking = self.stream.set_nonblocking(true).is_ok();
            if let Err(e) = written {
                session.tls_failed(format!("writing the contact header failed: {e}"));
                return;
            }
        }
        self.out.clear();
        self.out_pos = 0;
        match rustls::ClientConnection::new(client.config, client.name) {
            Ok(tls) => {
                self.tls = Some(Box::new(tls));
                session.tls_established(Instant::now());
            }
            Err(e) => session.tls_failed(format!("cannot start TLS: {e}")),
        }
    }

    /// Writes what is pending: in the clear, or through TLS.
    fn write_pending(&mut self) -> std::io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            let n = if self.nonblocking {
                self.stream.write(&self.out[self.out_pos..])?
            } else {
                self.stream.write_all(&self.out[self.out_pos..])?;
                self.out.len() - self.out_pos
            };
            self.out_pos += n;
            return Ok(());
        };
        // rustls takes plaintext up to its buffer limit.
        while self.out_pos < self.out.len() {
            let n = tls.writer().write(&self.out[self.out_pos..])?;
            if n == 0 {
                break;
            }
            self.out_pos += n;
        }
        while tls.wants_write() {
            match tls.write_tls(&mut self.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads what arrived into the session (through TLS when started).
    /// `Err`: the connection failed, with the words to say so.
    fn read_into(&mut self, session: &mut ActiveSession) -> Result<(), String> {
        loop {
            let Some(tls) = self.tls.as_mut() else {
                match self.stream.read(&mut self.buf) {
                    Ok(0) => {
                        self.eof = true;
                        session.handle_eof(Instant::now());
                        return Ok(());
                    }
                    Ok(n) => {
                        session.handle_input(Instant::now(), &self.buf[..n]);
                        // The peer's contact header may have asked for TLS:
                        // what follows is not the session's.
                        if !self.nonblocking || session.awaiting_tls() {
                            return Ok(());
                        }
                        continue;
                    }
                    Err(e)
                        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) =>
                    {
                        return Ok(())
                    }
                    Err(e) => {
                        self.eof = true;
                        return Err(format!("reading from the TCP connection failed: {e}"));
                    }
                }
            };
            let n = match tls.read_tls(&mut self.stream) {
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                    return Ok(())
                }
                Err(e) => {
                    self.eof = true;
                    return Err(format!("reading from the TCP connection failed: {e}"));
                }
            };
            if let Err(e) = tls.process_new_packets() {
                // Send the alert, then give up.
                let _ = tls.write_tls(&mut self.stream);
                self.eof = true;
                let detail = if session.peer().is_none() {
                    format!("TLS handshake with the peer failed: {e}")
                } else {
                    format!("TLS failed: {e}")
                };
                session.tls_failed(detail.clone());
                return Err(detail);
            }
            loop {
                match tls.reader().read(&mut self.buf) {
                    Ok(0) => {
                        // close_notify.
                        self.eof = true;
                        session.handle_eof(Instant::now());
                        return Ok(());
                    }
                    Ok(m) => session.handle_input(Instant::now(), &self.buf[..m]),
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => {
                        self.eof = true;
                        session.handle_eof(Instant::now());
                        return Err(format!("the TLS stream ended uncleanly: {e}"));
                    }
                }
            }
            if n == 0 {
                self.eof = true;
                session.handle_eof(Instant::now());
                return Ok(());
            }
            if !self.nonblocking {
                return Ok(());
            }
        }
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
                if event == Event::StartTls {
                    self.start_tls(session);
                    continue;
                }
                driver.on_event(session, event, now);
            }
            if self.out_pos == self.out.len() {
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
                if let Err(e) = self.write_pending() {
                    if !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) {
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
                if let Err(detail) = self.read_into(session) {
                    return fail(session, driver, detail);
                }
            }
            let now = Instant::now();
            if session.poll_timeout().is_some_and(|t| t <= now) {
                session.handle_timeout(now);
            }
        }
    }
}
