//! Counters per relay and direction, updated by the relay tasks with
//! relaxed atomics, and the plain snapshots ([`LinkStats`]) callers read
//! and print as JSON.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Which transport a relay carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// A TCP relay.
    Tcp,
    /// A UDP relay.
    Udp,
}

/// The live counters of one direction.
#[derive(Debug, Default)]
pub(crate) struct DirectionCounters {
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) datagrams_in: AtomicU64,
    pub(crate) datagrams_out: AtomicU64,
    pub(crate) segments: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) dropped_queue: AtomicU64,
    pub(crate) delayed_by_loss: AtomicU64,
}

impl DirectionCounters {
    pub(crate) fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> DirectionStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DirectionStats {
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            datagrams_in: get(&self.datagrams_in),
            datagrams_out: get(&self.datagrams_out),
            segments: get(&self.segments),
            dropped: get(&self.dropped),
            dropped_queue: get(&self.dropped_queue),
            delayed_by_loss: get(&self.delayed_by_loss),
        }
    }
}

/// The live counters of one relay.
#[derive(Debug)]
pub(crate) struct RelayCounters {
    pub(crate) protocol: Protocol,
    pub(crate) listen: SocketAddr,
    pub(crate) target: SocketAddr,
    pub(crate) connections: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) up: DirectionCounters,
    pub(crate) down: DirectionCounters,
}

impl RelayCounters {
    pub(crate) fn new(protocol: Protocol, listen: SocketAddr, target: SocketAddr) -> RelayCounters {
        RelayCounters {
            protocol,
            listen,
            target,
            connections: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            active: AtomicU64::new(0),
            up: DirectionCounters::default(),
            down: DirectionCounters::default(),
        }
    }

    pub(crate) fn snapshot(&self) -> RelayStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        RelayStats {
            protocol: self.protocol,
            listen: self.listen,
            target: self.target,
            connections: get(&self.connections),
            connect_failures: get(&self.connect_failures),
            active: get(&self.active),
            up: self.up.snapshot(),
            down: self.down.snapshot(),
        }
    }
}

/// Decrements `active` when a connection or session ends, however it ends.
pub(crate) struct ActiveGuard<'a>(&'a AtomicU64);

impl<'a> ActiveGuard<'a> {
    pub(crate) fn enter(active: &'a AtomicU64) -> ActiveGuard<'a> {
        active.fetch_add(1, Ordering::Relaxed);
        ActiveGuard(active)
    }
}

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one direction of a relay has carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct DirectionStats {
    /// Payload bytes read from the sender.
    pub bytes_in: u64,
    /// Payload bytes written to the receiver.
    pub bytes_out: u64,
    /// UDP datagrams received from the sender.
    pub datagrams_in: u64,
    /// UDP datagrams delivered.
    pub datagrams_out: u64,
    /// TCP transmissions: segments of at most `mss` bytes, plus one for
    /// each SYN and FIN.
    pub segments: u64,
    /// UDP datagrams lost to `loss`.
    pub dropped: u64,
    /// UDP datagrams dropped because the transmit queue was full.
    pub dropped_queue: u64,
    /// TCP transmissions "lost" and delivered one round trip late.
    pub delayed_by_loss: u64,
}

/// What one relay has carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RelayStats {
    /// TCP or UDP.
    pub protocol: Protocol,
    /// Where it listens (the port actually bound).
    pub listen: SocketAddr,
    /// Where it relays to.
    pub target: SocketAddr,
    /// TCP connections accepted, or UDP client addresses seen.
    pub connections: u64,
    /// TCP connections the target refused (the client is closed one round
    /// trip after connecting), or UDP sockets that could not be opened.
    pub connect_failures: u64,
    /// TCP connections or UDP sessions open now.
    pub active: u64,
    /// Earth → far (client → target).
    pub up: DirectionStats,
    /// Far → Earth (target → client).
    pub down: DirectionStats,
}

/// What every relay of a link has carried, in the order of the
/// configuration (TCP relays first).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct LinkStats {
    /// One entry per relay.
    pub relays: Vec<RelayStats>,
}

impl LinkStats {
    /// The relay listening on `listen`.
    pub fn relay(&self, listen: SocketAddr) -> Option<&RelayStats> {
        self.relays.iter().find(|r| r.listen == listen)
    }
}
