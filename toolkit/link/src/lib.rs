//! A user-space deep-space link emulator for deepmail. The kernel here has
//! no `netem`, so this crate plays the link between the Earth side and the
//! far side (the Moon is 1.28 s away one way, Mars 4 to 22 minutes): it
//! relays TCP connections and UDP datagrams between socket addresses
//! (normally loopback) and applies, per direction, a one-way delay, a
//! bandwidth cap with queueing, random loss and jitter, all counted.
//!
//! # The model
//!
//! Each direction (up: Earth → far, client → target; down: the replies)
//! is one transmitter shared by all the relays of the link, and every UDP
//! datagram or TCP segment (at most `mss` bytes of a stream, plus one for
//! each SYN and FIN) goes through it:
//!
//! 1. **Serialisation.** With a rate cap, one transmission at a time: it
//!    starts when the previous one has left and takes `bytes × 8 / rate`.
//!    Payload bytes only, no IP/UDP/TCP header overhead. Without a cap it
//!    takes no time.
//! 2. **Queue limit (UDP).** A datagram that finds more than `queue_limit`
//!    bytes waiting for the transmitter is dropped (tail drop). TCP is
//!    never dropped: the relay stops reading from the sender instead, the
//!    back-pressure a real bottleneck applies.
//! 3. **Loss.** With probability `loss` a transmission is lost in transit
//!    (after using the transmitter). A UDP datagram is gone. A TCP stream
//!    cannot lose bytes, so a lost segment is delivered one round trip (up
//!    delay + down delay: the loss is noticed at the far end and the
//!    retransmission crosses again) later; the stream is delivered in
//!    order, so what follows waits too (head-of-line blocking).
//!    Retransmissions do not use the transmitter again.
//! 4. **Propagation.** The one-way delay divided by `scale`, varied
//!    uniformly within ±jitter (never below zero). UDP datagrams may then
//!    overtake each other; a TCP segment is never delivered before the one
//!    ahead of it. Without jitter both keep their order.
//!
//! Loss and jitter draws come from a seeded generator (`seed`), one stream
//! per direction, one loss draw per transmission: the same traffic with
//! the same seed meets the same fates.
//!
//! # What it is not
//!
//! Not a packet-level emulator. TCP is relayed as a split connection (like
//! a satellite link's performance-enhancing proxy): the client's handshake
//! completes locally at once, the SYN crosses the link in one delay and
//! the far side's connect happens then; data written meanwhile is held
//! behind it, never reordered. So a request and its response cost two
//! one-way delays, not the four of an end-to-end handshake across the
//! link. The end-to-end TCP window and congestion control are not
//! modelled; a close (FIN) crosses like data and the directions close
//! independently; a reset is relayed as a close; a refused connection is
//! a close one round trip after connecting. UDP sessions (one socket
//! towards the target per client address) last until the link stops.
//! What is crossing the link is held in memory: about rate × delay per
//! direction with a cap, and without one whatever the senders write
//! within one delay.
//!
//! [`LinkOptions`] are the emulator's settings as `deepmail link` takes
//! them (a `clap::Args` with the `cli` feature), [`LinkOptions::link_config`]
//! the [`LinkConfig`] they make; [`listening_text`] and [`listening_json`]
//! describe a started link.
//!
//! ```
#![doc = include_str!("../examples/mars_link.rs")]
//! ```
#![warn(missing_docs)]

mod args;
mod channel;
mod config;
mod delay_line;
mod link;
mod stats;
mod tcp;
mod udp;

pub use crate::args::{
    describe, directed_duration, directed_probability, directed_rate, down_mode, listening_json,
    listening_text, node_pair, positive_number, ArgError, Directed, LinkOptions, LinkOptionsError,
    Which,
};
pub use crate::config::{
    parse_duration, parse_probability, ConfigError, DirectionConfig, DownMode, LinkConfig,
    ParseError, Rate, RelaySpec, Schedule, DEFAULT_MSS, DEFAULT_QUEUE_LIMIT,
};
pub use crate::link::{Link, LinkError};
pub use crate::stats::{DirectionStats, LinkStats, Protocol, RelayStats};
pub use deepmail_contact_plan as contact_plan;
