//! [`Link`]: binds every relay of a [`LinkConfig`], runs them on the
//! current tokio runtime, and stops them.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use thiserror::Error;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;

use crate::channel::{Channel, Windows};
use crate::config::{ConfigError, LinkConfig};
use crate::stats::{LinkStats, Protocol, RelayCounters};
use crate::tcp::run_tcp_relay;
use crate::udp::run_udp_relay;

/// Why a link did not start.
#[derive(Debug, Error)]
pub enum LinkError {
    /// The configuration is not usable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A listening address could not be bound.
    #[error("cannot listen for {protocol:?} on {addr}: {error}")]
    Bind {
        /// TCP or UDP.
        protocol: Protocol,
        /// The address.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
}

/// What every relay task shares: the two directions of the link.
#[derive(Debug)]
pub(crate) struct Shared {
    /// Earth → far.
    pub(crate) up: Mutex<Channel>,
    /// Far → Earth.
    pub(crate) down: Mutex<Channel>,
    pub(crate) mss: usize,
    pub(crate) stop: watch::Receiver<bool>,
}

/// Locks a channel; a panic elsewhere does not make its state unusable.
pub(crate) fn lock(channel: &Mutex<Channel>) -> MutexGuard<'_, Channel> {
    channel.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spawns `task`, which is dropped (sockets closed, queued data
/// discarded) when the link stops.
pub(crate) fn spawn_until_stopped<F>(stop: &watch::Receiver<bool>, task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let mut stop = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = task => {}
            _ = stop.wait_for(|stopped| *stopped) => {}
        }
    });
}

/// A running link emulator. Dropping it stops it too.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    tcp: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
    relays: Vec<Arc<RelayCounters>>,
    stop: watch::Sender<bool>,
}

/// Seed offset of the down direction's draws, so the two directions are
/// independent streams of the same seed.
const DOWN_SEED: u64 = 0x6a09_e667_f3bc_c909;

impl Link {
    /// Validates `config`, binds every listening address (port 0 picks a
    /// free one) and starts relaying on the current tokio runtime (panics
    /// outside one, like `tokio::spawn`).
    pub async fn start(config: LinkConfig) -> Result<Link, LinkError> {
        config.validate()?;
        let up = config.up.scaled(config.scale);
        let down = config.down.scaled(config.scale);
        let round_trip = up.delay + down.delay;
        let (stop, stop_rx) = watch::channel(false);
        let mut up = Channel::new(up, round_trip, config.queue_limit, config.seed);
        let mut down = Channel::new(
            down,
            round_trip,
            config.queue_limit,
            config.seed ^ DOWN_SEED,
        );
        if let Some(schedule) = &config.schedule {
            let start = tokio::time::Instant::now();
            up = up.with_windows(Windows::new(
                &schedule.up,
                start,
                config.scale,
                schedule.mode,
            ));
            down = down.with_windows(Windows::new(
                &schedule.down,
                start,
                config.scale,
                schedule.mode,
            ));
        }
        let shared = Arc::new(Shared {
            up: Mutex::new(up),
            down: Mutex::new(down),
            mss: config.mss,
            stop: stop_rx,
        });

        // Bind everything first, so a taken port starts nothing.
        let mut listeners = Vec::new();
        for spec in &config.tcp {
            let bind_error = |error| LinkError::Bind {
                protocol: Protocol::Tcp,
                addr: spec.listen,
                error,
            };
            let listener = TcpListener::bind(spec.listen).await.map_err(bind_error)?;
            let addr = listener.local_addr().map_err(bind_error)?;
            listeners.push((listener, addr, spec.target));
        }
        let mut sockets = Vec::new();
        for spec in &config.udp {
            let bind_error = |error| LinkError::Bind {
                protocol: Protocol::Udp,
                addr: spec.listen,
                error,
            };
            let socket = UdpSocket::bind(spec.listen).await.map_err(bind_error)?;
            let addr = socket.local_addr().map_err(bind_error)?;
            sockets.push((socket, addr, spec.target));
        }

        let mut link = Link {
            config,
            tcp: Vec::new(),
            udp: Vec::new(),
            relays: Vec::new(),
            stop,
        };
        for (listener, addr, target) in listeners {
            let counters = Arc::new(RelayCounters::new(Protocol::Tcp, addr, target));
            let relay = run_tcp_relay(listener, target, shared.clone(), counters.clone());
            spawn_until_stopped(&shared.stop, relay);
            link.tcp.push(addr);
            link.relays.push(counters);
        }
        for (socket, addr, target) in sockets {
            let counters = Arc::new(RelayCounters::new(Protocol::Udp, addr, target));
            let relay = run_udp_relay(socket, target, shared.clone(), counters.clone());
            spawn_until_stopped(&shared.stop, relay);
            link.udp.push(addr);
            link.relays.push(counters);
        }
        Ok(link)
    }

    /// Where each TCP relay listens, in configuration order (with the
    /// ports actually bound).
    pub fn tcp_listen_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// Where each UDP relay listens, in configuration order.
    pub fn udp_listen_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// The configuration it runs with (delays before `scale`).
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// A snapshot of every relay's counters.
    pub fn counters(&self) -> LinkStats {
        LinkStats {
            relays: self.relays.iter().map(|r| r.snapshot()).collect(),
        }
    }

    /// Stops every relay now: listeners and connections close, data still
    /// crossing the link is discarded. Counters stay readable.
    pub fn stop(&self) {
        self.stop.send_replace(true);
    }
}

impl Drop for Link {
    fn drop(&mut self) {
        self.stop();
    }
}
