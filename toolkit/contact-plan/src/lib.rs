//! Contact plans: when a deep-space link is up, at what rate, and with what
//! one-way light time, in the syntax operators of ION, HDTN and uD3TN
//! already write (ION's `ionadmin` commands):
//!
//! ```text
//! # Earth (node 1) to Mars (node 2): two 8-hour windows a sol at 250 kB/s.
//! @ 2026/12/07-00:00:00                  # reference for +relative times
//! a contact +0 +28800 1 2 250000         # from, until, from-node, to-node, bytes/s [, confidence]
//! a contact +44400 +73200 1 2 250000
//! a range +0 +2592000 1 2 750            # one-way light time, seconds
//! ```
//!
//! Times are `+SECONDS` (relative to the last `@` line, else to the epoch
//! the caller gives: the gateway's start) or `YYYY/MM/DD-HH:MM:SS` (UTC).
//! Rates are bytes per second, as in ION. A range holds both ways unless
//! the other direction has one of its own. Other `ionadmin` commands
//! (`1`, `s`, `m`, `x`, ...) are skipped, so an ION start-up file can be
//! read as it is; anything else is an error that names the line.
//!
//! Sans-IO: [`ContactPlan::parse`] takes text and an epoch and returns the
//! plan; [`Link`] answers "is it up now, when next, how long has it been
//! up" for one pair of nodes, in `O(log windows)`. Hostile input costs
//! bounded memory: at most [`MAX_ENTRIES`] contacts and ranges and
//! [`MAX_LINE`] bytes per line.

#![warn(missing_docs)]

use std::collections::HashMap;

/// Most `a contact` plus `a range` lines in one plan.
pub const MAX_ENTRIES: usize = 200_000;
/// Longest line, bytes.
pub const MAX_LINE: usize = 4096;

/// A plan that could not be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct PlanError {
    /// 1-based line number (0: the plan as a whole).
    pub line: usize,
    /// What was wrong.
    pub message: String,
}

/// One scheduled contact: `from` can send to `to` during `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contact {
    /// Start, Unix milliseconds.
    pub start_ms: u64,
    /// End (exclusive), Unix milliseconds.
    pub end_ms: u64,
    /// Sending node (ipn node number).
    pub from: u64,
    /// Receiving node.
    pub to: u64,
    /// Transmission rate, bytes per second.
    pub rate: u64,
    /// ION's confidence in the contact, 0..=1 (1 when not given).
    pub confidence: f64,
}

/// One-way light time between two nodes during `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Range {
    /// Start, Unix milliseconds.
    pub start_ms: u64,
    /// End (exclusive), Unix milliseconds.
    pub end_ms: u64,
    /// One node.
    pub from: u64,
    /// The other.
    pub to: u64,
    /// One-way light time, milliseconds.
    pub owlt_ms: u64,
}

/// A parsed plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactPlan {
    /// Every contact, in file order.
    pub contacts: Vec<Contact>,
    /// Every range, in file order.
    pub ranges: Vec<Range>,
}

/// A window of one link: up during `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Opens, Unix ms.
    pub start_ms: u64,
    /// Closes (exclusive), Unix ms.
    pub end_ms: u64,
    /// Bytes per second.
    pub rate: u64,
    /// One-way light time at the window's start, ms.
    pub owlt_ms: u64,
}

impl Window {
    /// Bytes the link can carry from `t` to the window's end.
    pub fn bytes_left(&self, t: u64) -> u64 {
        let ms = self.end_ms.saturating_sub(t.max(self.start_ms));
        ((u128::from(ms) * u128::from(self.rate)) / 1000).min(u128::from(u64::MAX)) as u64
    }
}

/// The windows of one direction of one link, sorted and disjoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Link {
    windows: Vec<Window>,
}

/// Unix ms as ION's absolute time, `YYYY/MM/DD-HH:MM:SS` (UTC; the
/// milliseconds dropped): what an `@` line or a contact's times take.
pub fn format_time(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let of_day = secs % 86_400;
    let (year, month, day) = civil::from_days((secs / 86_400) as i64);
    format!(
        "{year:04}/{month:02}/{day:02}-{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    )
}

fn err(line: usize, message: impl Into<String>) -> PlanError {
    PlanError {
        line,
        message: message.into(),
    }
}

/// `YYYY/MM/DD-HH:MM:SS` (UTC) as Unix ms.
fn absolute(text: &str) -> Option<u64> {
    let (date, time) = text.split_once('-')?;
    let d: Vec<&str> = date.split('/').collect();
    let t: Vec<&str> = time.split(':').collect();
    if d.len() != 3 || t.len() != 3 {
        return None;
    }
    let num = |s: &str, max: u32| -> Option<u32> {
        if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok().filter(|v| *v <= max)
    };
    let (y, mo, da) = (num(d[0], 9999)?, num(d[1], 12)?, num(d[2], 31)?);
    let (h, mi, s) = (num(t[0], 23)?, num(t[1], 59)?, num(t[2], 60)?);
    if y < 1970 || mo == 0 || da == 0 {
        return None;
    }
    let days = civil::to_days(i64::from(y), mo, da);
    let secs = days * 86_400 + i64::from(h) * 3600 + i64::from(mi) * 60 + i64::from(s);
    u64::try_from(secs).ok()?.checked_mul(1000)
}

/// A time: `+SECONDS` after `reference`, or absolute.
fn time(line: usize, text: &str, reference: u64) -> Result<u64, PlanError> {
    if let Some(rel) = text.strip_prefix('+') {
        let secs: f64 = rel
            .parse()
            .ok()
            .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e11)
            .ok_or_else(|| err(line, format!("`{text}` is not +SECONDS")))?;
        return reference
            .checked_add((secs * 1000.0).round() as u64)
            .ok_or_else(|| err(line, format!("`{text}` is too far in the future")));
    }
    absolute(text).ok_or_else(|| {
        err(
            line,
            format!("`{text}` is neither +SECONDS nor YYYY/MM/DD-HH:MM:SS"),
        )
    })
}

fn number(line: usize, what: &str, text: &str) -> Result<u64, PlanError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(line, format!("{what} `{text}` is not a whole number")));
    }
    text.parse()
        .map_err(|_| err(line, format!("{what} `{text}` is too large")))
}

/// `ionadmin` commands that say nothing about contacts (initialise, start,
/// stop, management, list, ...): skipped.
const OTHER_IONADMIN: &[&str] = &["1", "s", "x", "m", "e", "v", "h", "?", "i", "l", "w", "t"];

impl ContactPlan {
    /// Reads a plan; `+relative` times count from `epoch_ms` (Unix ms)
    /// until an `@` line sets another reference.
    pub fn parse(text: &str, epoch_ms: u64) -> Result<ContactPlan, PlanError> {
        let mut plan = ContactPlan::default();
        let mut reference = epoch_ms;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            if raw.len() > MAX_LINE {
                return Err(err(n, format!("longer than {MAX_LINE} bytes")));
            }
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["@", t] => reference = time(n, t, reference)?,
                ["a", "contact", rest @ ..] => {
                    if !(5..=6).contains(&rest.len()) {
                        return Err(err(
                            n,
                            "a contact FROM-TIME UNTIL-TIME FROM-NODE TO-NODE BYTES/S [CONFIDENCE]",
                        ));
                    }
                    let (start_ms, end_ms) = span(n, rest[0], rest[1], reference)?;
                    let confidence = match rest.get(5) {
                        None => 1.0,
                        Some(c) => c
                            .parse::<f64>()
                            .ok()
                            .filter(|c| (0.0..=1.0).contains(c))
                            .ok_or_else(|| {
                                err(n, format!("confidence `{c}` is not between 0 and 1"))
                            })?,
                    };
                    plan.contacts.push(Contact {
                        start_ms,
                        end_ms,
                        from: number(n, "node", rest[2])?,
                        to: number(n, "node", rest[3])?,
                        rate: number(n, "rate (bytes/s)", rest[4])?,
                        confidence,
                    });
                }
                ["a", "range", rest @ ..] => {
                    if rest.len() != 5 {
                        return Err(err(
                            n,
                            "a range FROM-TIME UNTIL-TIME FROM-NODE TO-NODE OWLT-SECONDS",
                        ));
                    }
                    let (start_ms, end_ms) = span(n, rest[0], rest[1], reference)?;
                    // Whole seconds in ION; a fraction is taken too (a
                    // time-scaled plan, as `deepmail bench contact` writes).
                    let owlt: f64 = rest[4]
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && !rest[4].starts_with('+'))
                        .ok_or_else(|| {
                            err(
                                n,
                                format!(
                                    "one-way light time (s) `{}` is not a number of seconds",
                                    rest[4]
                                ),
                            )
                        })?;
                    if owlt >= 1e11 {
                        return Err(err(n, "one-way light time too large"));
                    }
                    plan.ranges.push(Range {
                        start_ms,
                        end_ms,
                        from: number(n, "node", rest[2])?,
                        to: number(n, "node", rest[3])?,
                        owlt_ms: (owlt * 1000.0).round() as u64,
                    });
                }
                [cmd, ..] if OTHER_IONADMIN.contains(cmd) => {}
                [cmd, what, ..] if *cmd == "a" || *cmd == "d" || *cmd == "c" => {
                    return Err(err(
                        n,
                        format!("`{cmd} {what}`: only `a contact` and `a range` are read here"),
                    ))
                }
                _ => {
                    return Err(err(
                        n,
                        format!("`{line}` is not a contact plan command (a contact, a range, @)"),
                    ))
                }
            }
            if plan.contacts.len() + plan.ranges.len() > MAX_ENTRIES {
                return Err(err(
                    n,
                    format!("more than {MAX_ENTRIES} contacts and ranges"),
                ));
            }
        }
        // Like ION, refuse two contacts of one direction that overlap.
        let mut by_pair: HashMap<(u64, u64), Vec<(u64, u64)>> = HashMap::new();
        for c in &plan.contacts {
            by_pair
                .entry((c.from, c.to))
                .or_default()
                .push((c.start_ms, c.end_ms));
        }
        for ((from, to), mut spans) in by_pair {
            spans.sort_unstable();
            for w in spans.windows(2) {
                if w[1].0 < w[0].1 {
                    return Err(err(
                        0,
                        format!(
                            "two contacts from node {from} to node {to} overlap (one starts at {} ms, before the other ends at {} ms)",
                            w[1].0, w[0].1
                        ),
                    ));
                }
            }
        }
        Ok(plan)
    }

    /// The one-way light time from `from` to `to` at `t` (its own range,
    /// else the reverse direction's), if the plan gives one.
    pub fn owlt_ms(&self, from: u64, to: u64, t: u64) -> Option<u64> {
        let covers = |r: &&Range| r.start_ms <= t && t < r.end_ms;
        self.ranges
            .iter()
            .filter(covers)
            .find(|r| r.from == from && r.to == to)
            .or_else(|| {
                self.ranges
                    .iter()
                    .filter(covers)
                    .find(|r| r.from == to && r.to == from)
            })
            .map(|r| r.owlt_ms)
    }

    /// The windows from `from` to `to`, sorted (contacts of rate 0 are no
    /// window).
    pub fn link(&self, from: u64, to: u64) -> Link {
        let mut windows: Vec<Window> = self
            .contacts
            .iter()
            .filter(|c| c.from == from && c.to == to && c.rate > 0)
            .map(|c| Window {
                start_ms: c.start_ms,
                end_ms: c.end_ms,
                rate: c.rate,
                owlt_ms: self.owlt_ms(from, to, c.start_ms).unwrap_or(0),
            })
            .collect();
        windows.sort_by_key(|w| w.start_ms);
        Link { windows }
    }
}

fn span(line: usize, a: &str, b: &str, reference: u64) -> Result<(u64, u64), PlanError> {
    let (start, end) = (time(line, a, reference)?, time(line, b, reference)?);
    if end <= start {
        return Err(err(line, format!("`{b}` is not after `{a}`")));
    }
    Ok((start, end))
}

impl Link {
    /// A link of these windows (sorted by start, and disjoint).
    pub fn new(mut windows: Vec<Window>) -> Link {
        windows.sort_by_key(|w| w.start_ms);
        Link { windows }
    }

    /// Every window, in order.
    pub fn windows(&self) -> &[Window] {
        &self.windows
    }

    /// Whether the plan has no window at all for this link.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// The window open at `t`, if any.
    pub fn at(&self, t: u64) -> Option<&Window> {
        let i = self.windows.partition_point(|w| w.start_ms <= t);
        i.checked_sub(1)
            .map(|i| &self.windows[i])
            .filter(|w| t < w.end_ms)
    }

    /// The window open at `t`, else the first one opening after `t`.
    pub fn next(&self, t: u64) -> Option<&Window> {
        self.at(t).or_else(|| {
            let i = self.windows.partition_point(|w| w.start_ms <= t);
            self.windows.get(i)
        })
    }

    /// How long the link is planned up within `[a, b)`, ms.
    pub fn up_ms(&self, a: u64, b: u64) -> u64 {
        if b <= a {
            return 0;
        }
        // Windows ending after a, starting before b.
        let first = self.windows.partition_point(|w| w.end_ms <= a);
        self.windows[first..]
            .iter()
            .take_while(|w| w.start_ms < b)
            .map(|w| w.end_ms.min(b) - w.start_ms.max(a))
            .sum()
    }

    /// The earliest instant at which the link will have been up for
    /// `up_ms` since `a` (when mail received at `a` has aged `up_ms` of
    /// link time), if the plan gets there; `a` itself for 0.
    pub fn after_up(&self, a: u64, up_ms: u64) -> Option<u64> {
        if up_ms == 0 {
            return Some(a);
        }
        let mut left = up_ms;
        let first = self.windows.partition_point(|w| w.end_ms <= a);
        for w in &self.windows[first..] {
            let start = w.start_ms.max(a);
            let len = w.end_ms - start;
            if len >= left {
                return Some(start + left);
            }
            left -= len;
        }
        None
    }
}

#[cfg(test)]
mod tests;

pub mod civil;
