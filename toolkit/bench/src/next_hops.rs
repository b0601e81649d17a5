//! `deepmail resolve`: a mail domain's next hops through the resolver
//! plugin, as JSON for tools or a table for people, and the seed of the
//! weighted order when none is given.

use std::fmt::Write as _;

use deepmail_host::{Resolved, Resolver};
use serde_json::{json, Value};

use crate::BenchError;

/// A seed for the RFC 2782 weighted order that differs from run to run:
/// the clock's nanoseconds mixed with the process id.
pub fn random_seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64);
    t.unwrap_or(0) ^ u64::from(std::process::id()).rotate_left(32)
}

/// The next hops of `domain` over `schemes`, ordered with `seed`.
pub fn resolve(
    resolver: &Resolver,
    domain: &str,
    schemes: &[String],
    seed: u64,
) -> Result<Resolved, BenchError> {
    resolver
        .resolve(domain, schemes, seed)
        .map_err(BenchError::plugin(format!("resolving {domain}")))
}

/// The answer as JSON: the domain, the resolver plugin (`plugin`) and
/// each next hop's URI, priority, weight, origin and TTL.
pub fn hops_json(domain: &str, plugin: &str, resolved: &Resolved) -> Value {
    let hops: Vec<_> = resolved
        .hops
        .iter()
        .map(|h| json!({"uri": h.uri, "priority": h.priority, "weight": h.weight, "origin": h.origin, "ttl": h.ttl}))
        .collect();
    json!({"domain": domain, "plugin": plugin, "next_hops": hops})
}

/// The answer as text: a heading, then one numbered line per next hop,
/// best first.
pub fn hops_table(domain: &str, plugin: &str, resolved: &Resolved) -> String {
    let mut out = format!("next hops for {domain} ({plugin}):\n");
    for (i, h) in resolved.hops.iter().enumerate() {
        let ttl = h.ttl.map(|t| format!("ttl {t}s")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}. {:<48} priority {:<5} weight {:<5} from {} {ttl}",
            i + 1,
            h.uri,
            h.priority,
            h.weight,
            h.origin
        );
    }
    out
}
