//! The contact plan's view of a route: whether the link is up, how much
//! of a window is left, how batches fill it (in link bytes), and how old
//! mail is in planned up-time.

use crate::config::GatewayConfig;
use crate::queue::{Batch, Destination, Index};

/// Whether a message received at `received_ms` for `destination` is
/// too old at `now`: with a contact plan, by the time the link was
/// planned up (a conjunction does not age mail) or the absolute cap;
/// without, by calendar time.
pub(crate) fn too_old(
    config: &GatewayConfig,
    destination: &Destination,
    received_ms: u64,
    now: u64,
) -> bool {
    let age = now.saturating_sub(received_ms);
    let route = match destination {
        Destination::Remote(d) => config.route_for(d),
        Destination::Local => None,
    };
    match route {
        None => age >= config.delivery.max_age.as_millis() as u64,
        Some(r) => match &r.plan {
            None => age >= r.max_age.as_millis() as u64,
            Some(plan) => {
                age >= r.max_age_cap.as_millis() as u64
                    || plan.link.up_ms(received_ms, now) >= r.max_age.as_millis() as u64
            }
        },
    }
}

/// What a contact plan says about a route now.
#[derive(Debug, Clone, Copy)]
pub(super) enum LinkState {
    /// No plan: always worth trying.
    Always,
    /// In a window.
    Open(deepmail_contact_plan::Window),
    /// Between windows; the next opens then (none: the plan has ended).
    Closed(Option<u64>),
}

/// Bytes that can leave from `now` and still arrive before `w` closes (the
/// last byte takes one light time to arrive).
pub(super) fn window_room(w: &deepmail_contact_plan::Window, now: u64) -> u64 {
    w.bytes_left(now.saturating_add(w.owlt_ms))
}

/// Link bytes of `b` still to cross: its messages at `ratio` link bytes
/// per message byte, less the bundles of them the far side already
/// acknowledged.
pub(super) fn remaining(index: &Index, b: &Batch, ratio: f64) -> u64 {
    let members: u64 = b
        .members
        .iter()
        .filter_map(|m| index.entries.get(m))
        .map(|e| e.bytes)
        .sum();
    let crossed: u64 = b.sent.iter().map(|p| p.acknowledged_bytes).sum();
    ((members as f64 * ratio) as u64).saturating_sub(crossed)
}

/// How batches fill what is left of a window (`room`, in link bytes;
/// `None`: no plan).
#[derive(Clone, Copy)]
pub(super) struct Fill {
    pub(super) room: Option<u64>,
    /// Link bytes per message byte.
    pub(super) ratio: f64,
    /// A BP route's MTU: the last message may be cut by the window's end.
    pub(super) mtu: Option<u64>,
    pub(super) max_messages: usize,
    pub(super) max_bytes: u64,
}

/// A batch planned for a window: its members, and the room left in the
/// window when it was begun (its budget).
pub(super) type Planned = (Vec<String>, Option<u64>);

/// Takes messages (id, message bytes) from `line` in order into batches
/// while the window has room for them on the link, at most `free`
/// batches. Returns the batches, each with the room left when it was
/// begun (its budget), and the room left after them.
pub(super) fn fill_window<'a>(
    line: impl Iterator<Item = (&'a String, u64)>,
    fill: Fill,
    free: &mut usize,
) -> (Vec<Planned>, Option<u64>) {
    let mut room = fill.room;
    let mut batches = Vec::new();
    let mut members = Vec::new();
    let mut bytes = 0u64;
    // The room left when the batch being filled was begun.
    let mut budget = room;
    if *free == 0 {
        return (batches, room);
    }
    for (id, size) in line {
        // What it takes of the window, in link bytes.
        let on_link = (size as f64 * fill.ratio) as u64;
        // On a BP route the last message may be cut by the window's end
        // (its first fragments leave now).
        let fits = room.is_none_or(|r| on_link <= r || fill.mtu.is_some_and(|m| r >= m));
        if !fits {
            break;
        }
        if !members.is_empty()
            && (members.len() >= fill.max_messages || bytes + size > fill.max_bytes)
        {
            batches.push((std::mem::take(&mut members), budget));
            bytes = 0;
            *free -= 1;
            if *free == 0 {
                break;
            }
        }
        if members.is_empty() {
            budget = room;
        }
        bytes += size;
        members.push(id.clone());
        if let Some(r) = room.as_mut() {
            *r = r.saturating_sub(on_link);
        }
    }
    if !members.is_empty() && *free > 0 {
        batches.push((members, budget));
        *free -= 1;
    }
    (batches, room)
}
