//! The outbound queue runner: takes what is due from the [`Queue`], forms
//! batches per destination, encodes them with the codec plugin, finds the
//! next hop (the route's fixed URI, else the resolver plugin's DNS URI
//! records), and hands them to the sender plugin. 2xx removes the
//! messages; a temporary failure retries with exponential backoff and
//! ±20 % jitter; a permanent failure, or a message older than the maximum
//! age, goes back to its sender as a DSN (RFC 3464). Messages for the
//! local MTA (DSNs to local senders) are relayed by SMTP.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deepmail_host::types::{
    BibKey, BundleSpec, CrcType, EncodeOptions, Greeting, Message, Outcome, Payload, ShaVariant,
};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

use crate::config::{GatewayConfig, RelayConfig};
use crate::metrics::Metrics;
use crate::queue::{now_ms, Batch, BundleProgress, Destination, Queue, QueueEntry};
use crate::returns::{Failure, Returns};
use crate::spool::SpooledEnvelope;
use crate::stages::GatewayStages;

mod bundles;
mod window;

pub use bundles::dtn_ms;
use bundles::{send_bundles, BundleBatch};
pub(crate) use window::too_old;
use window::{fill_window, remaining, window_room, Fill, LinkState};

/// The outbound side of a gateway.
pub(crate) struct Outbound {
    config: Arc<GatewayConfig>,
    queue: Arc<Queue>,
    stages: Arc<GatewayStages>,
    returns: Arc<Returns>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    in_flight: Mutex<HashSet<String>>,
    /// Per destination with a contact plan: until when (Unix ms) the link
    /// is busy with the bytes already handed to it, at the window's rate.
    /// What can still leave in a window counts from then.
    link_busy: Mutex<HashMap<Destination, u64>>,
    /// Per destination: bytes on the link per message byte, learnt from
    /// what was encoded (Batch SMTP framing, gzip); what fits a window is
    /// judged in link bytes.
    link_ratio: Mutex<HashMap<Destination, f64>>,
    /// Batches formed per destination (every fourth starts with the
    /// oldest message).
    formed: Mutex<HashMap<Destination, u64>>,
}

/// What one attempt at a batch came to.
#[derive(Debug)]
enum Attempt {
    /// The next hop took it.
    Delivered(String),
    /// Try again later.
    Temporary(String),
    /// Return to sender.
    Permanent(String),
    /// Part of a BP batch crossed: the far side acknowledged the bundles
    /// in `progress` (per ADU); the rest goes later. `window_full`:
    /// stopped because the window has no room for more (not a failure);
    /// otherwise the session failed.
    Unfinished {
        why: String,
        progress: Vec<BundleProgress>,
        window_full: bool,
    },
}

/// The delay before attempt `attempts + 1`: `initial * 2^(attempts-1)`,
/// capped, then ±20 % jitter from `random` (0..=u32::MAX).
pub(crate) fn backoff(initial: Duration, max: Duration, attempts: u32, random: u32) -> Duration {
    let base = initial
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(max);
    let jitter = 0.8 + 0.4 * (f64::from(random) / f64::from(u32::MAX));
    base.mul_f64(jitter)
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u32::from_le_bytes(b)
}

/// The host's message type from a spooled envelope and content.
pub(crate) fn to_message(envelope: &SpooledEnvelope, content: Vec<u8>) -> Message {
    Message {
        envelope: envelope.into(),
        content,
    }
}

impl Outbound {
    /// The runner over `queue`.
    pub(crate) fn new(
        config: Arc<GatewayConfig>,
        queue: Arc<Queue>,
        stages: Arc<GatewayStages>,
        returns: Arc<Returns>,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Outbound {
        Outbound {
            config,
            queue,
            stages,
            returns,
            metrics,
            wake,
            in_flight: Mutex::new(HashSet::new()),
            link_busy: Mutex::new(HashMap::new()),
            link_ratio: Mutex::new(HashMap::new()),
            formed: Mutex::new(HashMap::new()),
        }
    }

    /// Runs until `stop` turns true; in-flight attempts finish first
    /// (their messages stay queued whatever happens).
    pub(crate) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut tasks = JoinSet::new();
        loop {
            if *stop.borrow() {
                break;
            }
            let wait = match self.plan() {
                Ok((due, wait)) => {
                    for batch in due {
                        if tasks.len() >= self.config.delivery.concurrency {
                            break;
                        }
                        self.in_flight
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(batch.id.clone());
                        let me = self.clone();
                        tasks.spawn(async move {
                            let id = batch.id.clone();
                            me.attempt(batch).await;
                            me.in_flight
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .remove(&id);
                        });
                    }
                    wait
                }
                Err(e) => {
                    tracing::error!(stage = "queue", error = %e, "cannot read the queue; retrying in 5 s");
                    Duration::from_secs(5)
                }
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    /// The most messages and bytes one batch to `destination` carries.
    fn batch_limits(&self, destination: &Destination) -> (usize, u64) {
        let limits = &self.config.delivery;
        match destination {
            Destination::Local => (1, u64::MAX),
            // On a BP route each message is its own ADU
            // (draft-blanchet-dtn-email-over-bp); a batch is the messages
            // whose bundles go out together in one delivery, pipelined.
            Destination::Remote(_) => (limits.batch_max_messages, limits.batch_max_bytes),
        }
    }

    /// What the route's contact plan says about sending to `destination`
    /// at `now`.
    fn link_state(&self, destination: &Destination, now: u64) -> LinkState {
        let Destination::Remote(d) = destination else {
            return LinkState::Always;
        };
        match self.config.route_for(d).and_then(|r| r.plan.as_ref()) {
            None => LinkState::Always,
            Some(plan) => match plan.link.at(now) {
                Some(w) => LinkState::Open(w),
                None => LinkState::Closed(plan.link.next(now).map(|w| w.start_ms)),
            },
        }
    }

    fn too_old(&self, destination: &Destination, received_ms: u64, now: u64) -> bool {
        too_old(&self.config, destination, received_ms, now)
    }

    /// Link bytes per message byte to `destination` (1 until learnt).
    fn ratio(&self, destination: &Destination) -> f64 {
        self.link_ratio
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(destination)
            .copied()
            .unwrap_or(1.0)
    }

    /// Learns from `link` bytes encoded for `message` bytes (a moving
    /// average, so a run of photos or of text moves it smoothly).
    fn learn_ratio(&self, destination: &Destination, link: u64, message: u64) {
        if message == 0 {
            return;
        }
        let sample = (link as f64 / message as f64).clamp(0.01, 4.0);
        let mut ratios = self.link_ratio.lock().unwrap_or_else(|e| e.into_inner());
        let r = ratios.entry(destination.clone()).or_insert(sample);
        *r = 0.7 * *r + 0.3 * sample;
    }

    /// From when the link to `destination` is free: now, or later while it
    /// still carries what was handed to it.
    fn busy_from(&self, destination: &Destination, now: u64) -> u64 {
        self.link_busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(destination)
            .map_or(now, |b| (*b).max(now))
    }

    /// Records that `bytes` were handed to the link to `destination` at
    /// `from`: it is busy for as long as `rate` (bytes/s) takes.
    fn keep_busy(&self, destination: &Destination, from: u64, bytes: u64, rate: u64) {
        if rate == 0 {
            return;
        }
        let until = from.saturating_add(bytes.saturating_mul(1000) / rate);
        self.link_busy
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(destination.clone(), until);
    }

    /// The MTU of `destination`'s route when it carries bundles: its
    /// messages can cross a window's end as fragments.
    fn bp_mtu(&self, destination: &Destination) -> Option<u64> {
        let Destination::Remote(d) = destination else {
            return None;
        };
        self.config
            .route_for(d)
            .and_then(|r| r.bp.as_ref())
            .map(|bp| bp.mtu)
    }

    /// Returns the due batches not already in flight (as many as there are
    /// free delivery slots), forming new batches from waiting messages for
    /// destinations that are not held back by a temporary failure, plus
    /// how long to sleep when nothing is due. Works on the queue's index:
    /// its cost does not grow with the number of messages queued.
    fn plan(&self) -> Result<(Vec<Batch>, Duration), crate::SpoolError> {
        for q in self.queue.refresh()? {
            Metrics::inc(&self.metrics.queue_quarantined);
            tracing::error!(stage = "queue", from = %q.from.display(), to = %q.to.display(), reason = %q.reason, "damaged queue record moved aside; the rest of the queue goes on");
        }
        let now = now_ms();
        self.expire_waiting(now);
        self.warn_delayed(now);
        let in_flight = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut free = self
            .config
            .delivery
            .concurrency
            .saturating_sub(in_flight.len());
        let mut due = Vec::new();
        let mut empty = Vec::new();
        let mut next = u64::MAX;
        let mut to_form: Vec<(Destination, Vec<String>, Option<u64>)> = Vec::new();
        {
            let guard = self.queue.index();
            let Some(index) = guard.as_ref() else {
                return Ok((due, Duration::from_secs(1)));
            };
            for (at, id) in &index.schedule {
                if in_flight.contains(id) {
                    continue;
                }
                let Some(b) = index.batches.get(id) else {
                    continue;
                };
                if b.members.is_empty() {
                    empty.push(id.clone());
                    continue;
                }
                if *at > now {
                    next = next.min(*at);
                    break;
                }
                if free == 0 {
                    break;
                }
                // What is still to cross: the bundles not yet acknowledged
                // when part of it did.
                let bytes = remaining(index, b, self.ratio(&b.destination));
                let mut budget = None;
                match self.link_state(&b.destination, now) {
                    LinkState::Always => {}
                    LinkState::Closed(opens) => {
                        // Known down: no attempt, no error, no retry burned.
                        next = next.min(opens.unwrap_or(u64::MAX));
                        continue;
                    }
                    LinkState::Open(w) => {
                        let from = self.busy_from(&b.destination, now);
                        let left = window_room(&w, from);
                        let partial = self.bp_mtu(&b.destination).is_some_and(|m| left >= m);
                        if bytes > left && !partial {
                            // Cannot finish before the window closes, and
                            // not as fragments: the next window.
                            next = next.min(w.end_ms);
                            continue;
                        }
                        budget = Some(left);
                        self.keep_busy(&b.destination, from, bytes.min(left), w.rate);
                    }
                }
                let mut b = b.clone();
                b.budget = budget;
                due.push(b);
                free -= 1;
            }
            for (destination, waiting) in &index.waiting {
                if free == 0 {
                    break;
                }
                if let Some(&held) = index.held_until.get(destination) {
                    if held > now {
                        next = next.min(held);
                        continue;
                    }
                }
                // One batch in four starts with the oldest message, so a
                // large or low-priority one is never starved by a stream
                // of small or urgent ones.
                let oldest = index
                    .aged
                    .get(destination)
                    .and_then(|a| a.first())
                    .map(|(_, id)| id);
                let formed_before = self
                    .formed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(destination)
                    .copied()
                    .unwrap_or(0);
                let oldest = oldest.filter(|_| formed_before % 4 == 3);
                let line = oldest.into_iter().chain(
                    waiting
                        .iter()
                        .map(|p| &p.id)
                        .filter(|id| Some(*id) != oldest),
                );
                let (max_messages, max_bytes) = self.batch_limits(destination);
                // On a BP route a message larger than what is left of the
                // window starts as the fragments that fit (at least one of
                // the route's MTU); the rest cross in the next window.
                let mtu = self.bp_mtu(destination);
                let ratio = self.ratio(destination);
                // In a window: what can still leave and arrive before it
                // closes, less what is already on its way; batches fill it
                // (the link kept full), the rest waits for the next window.
                let mut room: Option<u64> = None;
                let mut opened = None;
                match self.link_state(destination, now) {
                    LinkState::Always => {}
                    LinkState::Closed(opens) => {
                        next = next.min(opens.unwrap_or(u64::MAX));
                        continue;
                    }
                    LinkState::Open(w) => {
                        let from = self.busy_from(destination, now);
                        let left = window_room(&w, from);
                        opened = Some((from, w.rate));
                        let first = oldest
                            .or_else(|| waiting.first().map(|p| &p.id))
                            .and_then(|id| index.entries.get(id))
                            .map_or(0, |e| (e.bytes as f64 * ratio) as u64);
                        if first > left && mtu.is_none_or(|m| left < m) {
                            next = next.min(w.end_ms);
                            continue;
                        }
                        room = Some(left);
                    }
                }
                let formed_now = to_form.len();
                let start_room = room;
                let line = line.map(|id| (id, index.entries.get(id).map_or(0, |e| e.bytes)));
                let (batches, left) = fill_window(
                    line,
                    Fill {
                        room,
                        ratio,
                        mtu,
                        max_messages,
                        max_bytes,
                    },
                    &mut free,
                );
                room = left;
                to_form.extend(
                    batches
                        .into_iter()
                        .map(|(members, budget)| (destination.clone(), members, budget)),
                );
                // The link is busy with what was just planned for it.
                if let (Some((from, rate)), Some(start)) = (opened, start_room) {
                    self.keep_busy(destination, from, start - room.unwrap_or(0), rate);
                }
                let added = (to_form.len() - formed_now) as u64;
                *self
                    .formed
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(destination.clone())
                    .or_insert(0) += added;
            }
        }
        {
            // The gauges: what is queued, and what of it is not on its way.
            let guard = self.queue.index();
            if let Some(index) = guard.as_ref() {
                let going: u64 = in_flight
                    .iter()
                    .chain(due.iter().map(|b| &b.id))
                    .filter_map(|id| index.batches.get(id))
                    .map(|b| remaining(index, b, 1.0))
                    .sum::<u64>()
                    + to_form
                        .iter()
                        .flat_map(|(_, members, _)| members)
                        .filter_map(|m| index.entries.get(m))
                        .map(|e| e.bytes)
                        .sum::<u64>();
                use std::sync::atomic::Ordering::Relaxed;
                self.metrics
                    .queue_messages
                    .store(index.entries.len() as u64, Relaxed);
                self.metrics
                    .queue_bytes_waiting
                    .store(index.bytes.saturating_sub(going), Relaxed);
            }
        }
        for id in empty {
            self.queue.remove_batch(&id)?;
        }
        for (destination, members, budget) in to_form {
            let mut batch = self.queue.new_batch(destination, members)?;
            batch.budget = budget;
            due.push(batch);
        }
        let wait = if next == u64::MAX {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(next.saturating_sub(now)).min(Duration::from_secs(1))
        };
        Ok((due, wait))
    }

    /// Senders of messages queued longer than `[delivery]
    /// delay-warning-hours` get one `Action: delayed` DSN each (as MTAs'
    /// delay warnings), saying when the next window opens when the route
    /// has a plan: at most 64 per call, oldest first. `NOTIFY=` is
    /// honoured (RFC 3461: `DELAY`, or no `NOTIFY` at all).
    fn warn_delayed(&self, now: u64) {
        let Some(after) = self.config.delivery.delay_warning else {
            return;
        };
        let cutoff = now.saturating_sub(after.as_millis() as u64);
        let due: Vec<String> = {
            let guard = self.queue.index();
            let Some(index) = guard.as_ref() else {
                return;
            };
            index
                .unwarned
                .iter()
                .take_while(|(received, _)| *received <= cutoff)
                .take(64)
                .map(|(_, id)| id.clone())
                .collect()
        };
        for id in due {
            let (entry, content) = match self.queue.message(&id) {
                Ok(m) => m,
                Err(_) => {
                    self.queue.remove_from_index(&id);
                    continue;
                }
            };
            // Only to a sender there is a way back to (a warning is never
            // a dead letter).
            let reachable = crate::returns::domain_of(&entry.envelope.reverse_path)
                .and_then(|d| self.returns.destination_for(&d))
                .is_some();
            if reachable {
                let why = match self.link_state(&entry.destination, now) {
                    LinkState::Closed(Some(opens)) => format!(
                        "the link to {} is down until {} (contact plan)",
                        entry.destination,
                        crate::spool::rfc3339(std::time::UNIX_EPOCH + Duration::from_millis(opens))
                    ),
                    LinkState::Closed(None) => format!(
                        "the contact plan has no further window to {}",
                        entry.destination
                    ),
                    _ => format!("{} has not taken it yet", entry.destination),
                };
                let failures: Vec<(String, Failure)> = entry
                    .envelope
                    .forward_paths
                    .iter()
                    .map(|f| (f.mailbox.clone(), Failure::delayed(&why)))
                    .collect();
                match self
                    .returns
                    .return_to_sender(&entry.envelope, &content, &failures, &id)
                {
                    Err(e) => {
                        tracing::error!(stage = "dsn", msg = %id, error = %e, "cannot queue the delay warning; trying again later");
                        continue;
                    }
                    Ok(true) => {
                        Metrics::inc(&self.metrics.delay_warnings);
                        tracing::info!(stage = "dsn", msg = %id, to = %entry.destination, reason = %why, "delay warning");
                    }
                    Ok(false) => {}
                }
            }
            if let Err(e) = self.queue.mark_warned(&id) {
                tracing::error!(stage = "queue", msg = %id, error = %e, "cannot record the delay warning");
            }
        }
    }

    /// Messages still waiting (in no batch, their destination held back by
    /// failures) past the maximum age go back to their senders: at most
    /// 256 per call, oldest first.
    fn expire_waiting(&self, now: u64) {
        let mut expired: Vec<(String, Option<String>)> = Vec::new();
        {
            let guard = self.queue.index();
            let Some(index) = guard.as_ref() else {
                return;
            };
            for (destination, waiting) in &index.aged {
                let last_error = index
                    .batches
                    .values()
                    .filter(|b| &b.destination == destination)
                    .find_map(|b| b.last_error.clone());
                // Oldest first: the first one young enough ends the walk.
                for (received, id) in waiting {
                    if expired.len() >= 256 || !self.too_old(destination, *received, now) {
                        break;
                    }
                    expired.push((id.clone(), last_error.clone()));
                }
            }
        }
        for (id, last_error) in expired {
            let (entry, content) = match self.queue.message(&id) {
                Ok(m) => m,
                Err(_) => {
                    // Gone meanwhile, or unreadable: the index forgets it;
                    // a damaged record is quarantined at the next rebuild.
                    self.queue.remove_from_index(&id);
                    continue;
                }
            };
            let why = last_error.unwrap_or_else(|| "no delivery attempt succeeded".into());
            tracing::warn!(stage = "deliver", msg = %id, to = %entry.destination, error = %why, "too old: returning to sender");
            self.give_up_one(&entry, &content, Failure::expired(&why), &id);
        }
    }

    /// One attempt at a batch; records the outcome durably.
    async fn attempt(self: &Arc<Self>, mut batch: Batch) {
        let mut members: Vec<(QueueEntry, Vec<u8>)> = Vec::new();
        for id in &batch.members {
            match self.queue.message(id) {
                Ok(m) => members.push(m),
                // Deleted meanwhile (`deepmail queue delete`): skip it.
                _ if !self.queue.contains(id) => {}
                Err(e) => {
                    tracing::error!(stage = "queue", batch = %batch.id, msg = %id, error = %e, "unreadable queued message left in place");
                }
            }
        }
        if members.is_empty() {
            let _ = self.queue.remove_batch(&batch.id);
            return;
        }
        let started = std::time::Instant::now();
        let outcome = match &batch.destination {
            Destination::Remote(domain) => {
                let (done, outcome) = self.send_remote(&batch, domain, &members).await;
                if !done.is_empty() && !matches!(outcome, Attempt::Delivered(_)) {
                    // On a BP route: these messages crossed whole; the
                    // batch goes on with the others.
                    let done: HashSet<usize> = done.into_iter().collect();
                    let mut i = 0;
                    members.retain(|(e, _)| {
                        let crossed = done.contains(&i);
                        i += 1;
                        if crossed {
                            Metrics::inc(&self.metrics.messages_sent);
                            tracing::debug!(stage = "deliver", batch = %batch.id, msg = %e.id, message_id = %e.message_id, "message delivered (the rest of its batch not yet)");
                            if let Err(err) = self.queue.remove(&e.id) {
                                tracing::error!(stage = "queue", msg = %e.id, error = %err, "delivered but cannot remove from the queue");
                            }
                        }
                        !crossed
                    });
                    batch.members = members.iter().map(|(e, _)| e.id.clone()).collect();
                }
                outcome
            }
            Destination::Local => match &self.config.relay {
                Some(relay) => self.send_local(relay, &members).await,
                None => {
                    Attempt::Permanent("no [relay] configured to deliver local mail to".to_string())
                }
            },
        };
        batch.attempts += 1;
        let ids: Vec<&str> = members.iter().map(|(e, _)| e.id.as_str()).collect();
        match outcome {
            Attempt::Delivered(said) => {
                tracing::info!(stage = "deliver", batch = %batch.id, to = %batch.destination, messages = members.len(), elapsed_ms = started.elapsed().as_millis() as u64, said = %said, "delivered");
                Metrics::inc(&self.metrics.batches_sent);
                Metrics::stamp(&self.metrics.last_batch_sent_unix_us);
                for (e, _) in &members {
                    self.metrics
                        .messages_sent
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(stage = "deliver", batch = %batch.id, msg = %e.id, message_id = %e.message_id, "message delivered");
                    if let Err(err) = self.queue.remove(&e.id) {
                        tracing::error!(stage = "queue", msg = %e.id, error = %err, "delivered but cannot remove from the queue");
                    }
                }
                let _ = self.queue.remove_batch(&batch.id);
                self.queue.release(&batch.destination);
            }
            Attempt::Permanent(why) => {
                tracing::warn!(stage = "deliver", batch = %batch.id, to = %batch.destination, messages = ?ids, error = %why, "refused for good: returning to sender");
                self.give_up(&batch, &members, Failure::permanent(&why));
            }
            Attempt::Unfinished {
                why,
                progress,
                window_full: true,
            } => {
                // Not a failure: the window is full. What crossed stays
                // crossed; the scheduler sends the rest when there is room.
                batch.attempts -= 1;
                tracing::info!(stage = "deliver", batch = %batch.id, to = %batch.destination, messages_left = members.len(), said = %why, "part of the batch crossed; the rest goes when the window has room");
                Metrics::inc(&self.metrics.bp_batches_cut);
                batch.sent = progress;
                batch.next_attempt_ms = now_ms();
                if let Err(e) = self.queue.save_batch(&batch) {
                    tracing::error!(stage = "queue", batch = %batch.id, error = %e, "cannot record what crossed; it will be sent again");
                }
            }
            Attempt::Unfinished {
                why,
                progress,
                window_full: false,
            } => {
                Metrics::inc(&self.metrics.bp_batches_cut);
                batch.sent = progress;
                self.retry_later(batch, &members, why);
            }
            Attempt::Temporary(why) => self.retry_later(batch, &members, why),
        }
    }

    /// After a temporary failure: returns the batch to its senders when
    /// too old, else schedules its next attempt (backoff, or the next
    /// window's opening when the retry would fall after this one closes).
    fn retry_later(&self, mut batch: Batch, members: &[(QueueEntry, Vec<u8>)], why: String) {
        Metrics::inc(&self.metrics.batch_attempts_failed);
        let oldest = members
            .iter()
            .map(|(e, _)| e.received_ms)
            .min()
            .unwrap_or(0);
        if self.too_old(&batch.destination, oldest, now_ms()) {
            tracing::warn!(stage = "deliver", batch = %batch.id, to = %batch.destination, attempts = batch.attempts, error = %why, "too old: returning to sender");
            self.give_up(&batch, members, Failure::expired(&why));
            return;
        }
        let delay = backoff(
            self.config.delivery.retry_initial,
            self.config.delivery.retry_max,
            batch.attempts,
            random_u32(),
        );
        let now = now_ms();
        batch.next_attempt_ms = now + delay.as_millis() as u64;
        // With a plan, a retry that would fall after this window
        // closes is made at the next window's opening instead.
        if let Destination::Remote(d) = &batch.destination {
            if let Some(plan) = self.config.route_for(d).and_then(|r| r.plan.as_ref()) {
                let closes = plan.link.at(now).map_or(now, |w| w.end_ms);
                if batch.next_attempt_ms >= closes {
                    if let Some(w) = plan.link.next(closes) {
                        batch.next_attempt_ms = w.start_ms.max(now);
                    }
                }
            }
        }
        batch.last_error = Some(why.clone());
        tracing::warn!(stage = "deliver", batch = %batch.id, to = %batch.destination, attempts = batch.attempts, retry_in_ms = delay.as_millis() as u64, error = %why, "temporary failure");
        if let Err(e) = self.queue.save_batch(&batch) {
            tracing::error!(stage = "queue", batch = %batch.id, error = %e, "cannot record the retry; it will be retried at once");
        }
    }

    /// Returns every member to its sender and drops the batch.
    fn give_up(&self, batch: &Batch, members: &[(QueueEntry, Vec<u8>)], failure: Failure) {
        for (e, content) in members {
            if !self.give_up_one(e, content, failure.clone(), &batch.id) {
                return;
            }
        }
        let _ = self.queue.remove_batch(&batch.id);
        self.wake.notify_one();
    }

    /// Returns one message to its sender (`reference`: the batch or queue
    /// id the DSN names) and removes it; false when the DSN could not be
    /// queued (the message stays).
    fn give_up_one(
        &self,
        e: &QueueEntry,
        content: &[u8],
        failure: Failure,
        reference: &str,
    ) -> bool {
        let failures: Vec<(String, Failure)> = e
            .envelope
            .forward_paths
            .iter()
            .map(|f| (f.mailbox.clone(), failure.clone()))
            .collect();
        match self
            .returns
            .return_to_sender(&e.envelope, content, &failures, reference)
        {
            Ok(_) => {
                Metrics::inc(&self.metrics.messages_returned);
                let _ = self.queue.remove(&e.id);
                true
            }
            Err(err) => {
                tracing::error!(stage = "dsn", batch = %reference, msg = %e.id, error = %err, "cannot return the message; it stays queued");
                false
            }
        }
    }

    async fn send_remote(
        self: &Arc<Self>,
        batch: &Batch,
        domain: &str,
        members: &[(QueueEntry, Vec<u8>)],
    ) -> (Vec<usize>, Attempt) {
        let Some(route) = self.config.route_for(domain).cloned() else {
            return (
                Vec::new(),
                Attempt::Permanent(format!(
                    "no route for {domain} in {}",
                    self.config.source.display()
                )),
            );
        };
        let messages: Vec<Message> = members
            .iter()
            .map(|(e, c)| to_message(&e.envelope, c.clone()))
            .collect();
        let me = self.clone();
        let batch_id = batch.id.clone();
        let created_ms = batch.created_ms;
        let sent = batch.sent.clone();
        let budget = batch.budget;
        let received: Vec<u64> = members.iter().map(|(e, _)| e.received_ms).collect();
        let destination = batch.destination.clone();
        let domain = domain.to_string();
        let joined = tokio::task::spawn_blocking(move || {
            let stages = &me.stages;
            let options = EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            };
            if let Some(bp) = &route.bp {
                // One ADU per message (draft-blanchet-dtn-email-over-bp),
                // each bundle living no longer than its message may still
                // wait; the far side recognises gzip by its magic number.
                // Only as many as the window takes now (each ADU less what
                // of it crossed before): the rest stay in the batch.
                let mut adus = Vec::with_capacity(messages.len());
                let mut planned = 0u64;
                let (mut link_bytes, mut message_bytes) = (0u64, 0u64);
                for (m, received) in messages.iter().zip(&received) {
                    if budget.is_some_and(|b| planned > b) {
                        break;
                    }
                    let body = match stages.codec.encode(std::slice::from_ref(m), &options) {
                        Ok(b) if route.compress => crate::compress::gzip(&b),
                        Ok(b) => b,
                        Err(e) => {
                            return (
                                Vec::new(),
                                Attempt::Permanent(format!(
                                    "the codec cannot encode the batch: {e}"
                                )),
                            )
                        }
                    };
                    let expires = received.saturating_add(route.max_age_cap.as_millis() as u64);
                    let lifetime = bp
                        .lifetime
                        .min(Duration::from_millis(expires.saturating_sub(created_ms)))
                        .max(Duration::from_secs(1));
                    let digest = hex::encode(ring::digest::digest(&ring::digest::SHA256, &body));
                    let crossed = sent
                        .iter()
                        .find(|p| p.adu_sha256 == digest)
                        .map_or(0, |p| p.acknowledged_bytes);
                    planned += (body.len() as u64).saturating_sub(crossed);
                    link_bytes += body.len() as u64;
                    message_bytes += m.content.len() as u64;
                    adus.push((body, lifetime));
                }
                me.learn_ratio(&destination, link_bytes, message_bytes);
                return send_bundles(
                    stages,
                    &me.metrics,
                    &route,
                    bp,
                    &BundleBatch {
                        id: &batch_id,
                        created_ms,
                        sent: &sent,
                        budget,
                        members: messages.len(),
                    },
                    adus,
                );
            }
            let attempt = || {
                let body = match stages.codec.encode(
                    &messages,
                    &EncodeOptions {
                        greeting: Greeting::None,
                        quit: false,
                    },
                ) {
                    Ok(b) => b,
                    Err(e) => {
                        return Attempt::Permanent(format!(
                            "the codec cannot encode the batch: {e}"
                        ))
                    }
                };
                // The far side recognises gzip by its magic number (bundles) or
                // by Content-Encoding (HTTP, set by the sender from its settings).
                let body = if route.compress {
                    crate::compress::gzip(&body)
                } else {
                    body
                };
                me.learn_ratio(
                    &destination,
                    body.len() as u64,
                    messages.iter().map(|m| m.content.len() as u64).sum(),
                );
                let hops: Vec<String> = match &route.uri {
                    Some(uri) => vec![uri.clone()],
                    None => {
                        let Some(resolver) = &stages.resolver else {
                            return Attempt::Temporary("no resolver loaded".into());
                        };
                        let schemes = if route.allow_plain_http {
                            vec!["https".to_string(), "http".to_string()]
                        } else {
                            vec!["https".to_string()]
                        };
                        match resolver.resolve(&domain, &schemes, u64::from(random_u32())) {
                            Ok(r) if r.hops.is_empty() => {
                                return Attempt::Temporary(format!(
                                    "no next hop found for {domain}"
                                ))
                            }
                            Ok(r) => r.hops.into_iter().map(|h| h.uri).collect(),
                            Err(e) if e.code == "no-such-domain" || e.code == "no-records" => {
                                return Attempt::Permanent(format!("no gateway for {domain}: {e}"))
                            }
                            Err(e) => {
                                return Attempt::Temporary(format!("resolving {domain}: {e}"))
                            }
                        }
                    }
                };
                let mut last = String::new();
                for hop in &hops {
                    let sender = match stages.sender(&route, hop) {
                        Ok(s) => s,
                        Err(e) => {
                            last = e.to_string();
                            continue;
                        }
                    };
                    match sender.send(hop, &batch_id, Payload::Bsmtp(body.clone())) {
                        Ok(Outcome::Delivered(said)) => {
                            return Attempt::Delivered(format!("{hop}: {said}"))
                        }
                        Ok(Outcome::PermanentFailure(said)) => {
                            return Attempt::Permanent(format!("{hop} refused the batch: {said}"))
                        }
                        Ok(Outcome::TemporaryFailure(said)) => last = format!("{hop}: {said}"),
                        Err(e) => last = format!("{hop}: {e}"),
                    }
                }
                Attempt::Temporary(last)
            };
            (Vec::new(), attempt())
        })
        .await;
        joined.unwrap_or_else(|e| {
            (
                Vec::new(),
                Attempt::Temporary(format!("delivery task failed: {e}")),
            )
        })
    }

    async fn send_local(&self, relay: &RelayConfig, members: &[(QueueEntry, Vec<u8>)]) -> Attempt {
        let mut said = Vec::new();
        for (e, content) in members {
            match crate::relay::relay_message(relay, &e.envelope, content).await {
                Ok(result) => {
                    if !result.refused.is_empty() {
                        // A DSN to a local sender that the local MTA refuses
                        // has nowhere else to go.
                        let reasons: Vec<String> = result
                            .refused
                            .iter()
                            .map(|(r, reply)| format!("{r}: {reply}"))
                            .collect();
                        self.returns.dead_letter(
                            &e.envelope,
                            content,
                            &format!("the local MTA refused: {}", reasons.join("; ")),
                            &e.id,
                        );
                        Metrics::inc(&self.metrics.dead_letters);
                    }
                    if !result.deferred.is_empty() {
                        return Attempt::Temporary(format!(
                            "the local MTA deferred {}",
                            result.deferred.join(", ")
                        ));
                    }
                    said.push(result.summary);
                }
                Err(e) if e.transient => return Attempt::Temporary(e.message),
                Err(e) => return Attempt::Permanent(e.message),
            }
        }
        Attempt::Delivered(said.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::bundles::sequence_of;
    use super::*;

    #[test]
    fn bundle_ids_are_stable_per_batch() {
        assert_eq!(sequence_of("b1"), sequence_of("b1"));
        assert_ne!(sequence_of("b1"), sequence_of("b2"));
        assert_eq!(dtn_ms(946_684_800_000 + 5), 5);
        assert_eq!(dtn_ms(3), 0);
    }

    /// With a contact plan only planned up-time ages mail (a conjunction
    /// does not), up to the absolute cap; without one, calendar time.
    #[test]
    fn a_conjunction_does_not_age_mail() {
        let toml = |extra: &str| {
            format!(
                "name = \"gw.earth.example\"\nspool = \"s\"\n[smtp]\nlisten = \"127.0.0.1:0\"\n\
                 relay-domains = [\"mars.example\"]\n[[route]]\ndomain = \"mars.example\"\n\
                 uri = \"https://gw.mars.example/inboundmail\"\nmax-age-hours = 2\n{extra}"
            )
        };
        let load = |t: &str| {
            crate::config::GatewayConfig::from_toml(t, std::path::Path::new("/x/earth.toml"))
                .unwrap()
        };
        let hour = 3_600_000u64;
        // Windows: hour 0-1, then a 14-day blackout, then hour 337-338.
        let planned = load(&toml(
            "contacts = \"\"\"\n@ 2027/01/01-00:00:00\na contact +0 +3600 1 2 250000\na contact +1213200 +1216800 1 2 250000\n\"\"\"\nmax-age-cap-days = 30\n",
        ));
        let plain = load(&toml(""));
        let mars = Destination::Remote("mars.example".into());
        let t0 = 1_798_761_600_000; // 2027-01-01T00:00:00Z
                                    // One hour up, then the blackout: not old, though 14 days passed.
        assert!(!too_old(&planned, &mars, t0, t0 + 337 * hour));
        assert!(too_old(&plain, &mars, t0, t0 + 337 * hour));
        // Two hours of planned up-time: old.
        assert!(too_old(&planned, &mars, t0, t0 + 338 * hour));
        // Received during the blackout: only the next window ages it.
        assert!(!too_old(&planned, &mars, t0 + 2 * hour, t0 + 338 * hour));
        // The absolute cap holds whatever the plan.
        assert!(too_old(
            &planned,
            &mars,
            t0 + 2 * hour,
            t0 + 2 * hour + 30 * 24 * hour
        ));
        assert!(!too_old(&plain, &mars, t0, t0 + hour));
        assert!(too_old(&plain, &mars, t0, t0 + 2 * hour));
    }

    /// A window is filled in link bytes: with gzip making a message byte
    /// 0.5 link bytes, a window with room for 1,000 link bytes takes
    /// 2,000 bytes of mail (counted in message bytes it took 1,000, and
    /// the window went half empty).
    #[test]
    fn a_window_is_filled_in_link_bytes() {
        let ids: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        let line = || ids.iter().map(|id| (id, 200u64));
        let fill = Fill {
            room: Some(1_000),
            ratio: 0.5,
            mtu: None,
            max_messages: 100,
            max_bytes: 1 << 20,
        };
        let mut free = 4;
        let (batches, left) = fill_window(line(), fill, &mut free);
        assert_eq!(batches.len(), 1);
        assert_eq!(
            batches[0].0.len(),
            10,
            "2,000 message bytes in 1,000 link bytes"
        );
        assert_eq!(
            batches[0].1,
            Some(1_000),
            "the budget is the room at the start"
        );
        assert_eq!(left, Some(0));
        assert_eq!(free, 3);
        // Uncompressed, half of it.
        let mut free = 4;
        let (batches, left) = fill_window(line(), Fill { ratio: 1.0, ..fill }, &mut free);
        assert_eq!(batches[0].0.len(), 5);
        assert_eq!(left, Some(0));
        // Batch limits split it; each batch's budget is the room it began with.
        let mut free = 4;
        let (batches, _) = fill_window(
            line(),
            Fill {
                max_messages: 4,
                ..fill
            },
            &mut free,
        );
        let shape: Vec<(usize, Option<u64>)> = batches.iter().map(|(m, b)| (m.len(), *b)).collect();
        assert_eq!(shape, [(4, Some(1_000)), (4, Some(600)), (2, Some(200))]);
        assert_eq!(free, 1);
        // No more batches than free slots.
        let mut free = 2;
        let (batches, _) = fill_window(
            line(),
            Fill {
                max_messages: 4,
                ..fill
            },
            &mut free,
        );
        assert_eq!(batches.len(), 2);
        assert_eq!(free, 0);
        // On a BP route the last message may be cut: one that does not
        // fit whole still starts while an MTU's worth is left.
        let big = [("a".to_string(), 3_000u64)];
        let mut free = 1;
        let (batches, _) = fill_window(
            big.iter().map(|(id, n)| (id, *n)),
            Fill {
                mtu: Some(500),
                ..fill
            },
            &mut free,
        );
        assert_eq!(batches.len(), 1);
        let mut free = 1;
        let (batches, _) = fill_window(big.iter().map(|(id, n)| (id, *n)), fill, &mut free);
        assert!(
            batches.is_empty(),
            "an HTTP route waits for a window it fits"
        );
        // Without a plan, only the batch limits count.
        let mut free = 1;
        let (batches, left) = fill_window(line(), Fill { room: None, ..fill }, &mut free);
        assert_eq!((batches[0].0.len(), left), (10, None));
    }

    #[test]
    fn backoff_doubles_caps_and_jitters() {
        let s = Duration::from_secs;
        let mid = |n| backoff(s(10), s(100), n, u32::MAX / 2).as_secs_f64();
        assert!((mid(1) - 10.0).abs() < 0.1);
        assert!((mid(2) - 20.0).abs() < 0.1);
        assert!((mid(3) - 40.0).abs() < 0.1);
        assert!((mid(9) - 100.0).abs() < 0.1);
        assert!((backoff(s(10), s(100), 1, 0).as_secs_f64() - 8.0).abs() < 0.01);
        assert!((backoff(s(10), s(100), 1, u32::MAX).as_secs_f64() - 12.0).abs() < 0.01);
        // Never overflows.
        assert!(backoff(s(10), s(100), u32::MAX, 7) <= s(120));
    }
}
