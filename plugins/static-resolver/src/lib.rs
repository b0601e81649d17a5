//! Default `resolver-plugin` for sites without DNS: next hops from a table
//! in the gateway's configuration (the seeds expect few gateways, statically
//! configured, for quite some time).
//!
//! Each `route` setting is `DOMAIN URI [PRIORITY [WEIGHT]]`; `*` as DOMAIN
//! is the default route. Several routes for one domain are ordered like DNS
//! URI records: by priority, weighted random within a priority (RFC 2782,
//! via `deepmail-uri-rr`). Pure: no I/O at all.

wit_bindgen::generate!({
    path: "../../wit",
    world: "resolver-plugin",
});

use deepmail::stages::types::StageError;
use deepmail_uri_rr::{order_records, seeded_random, UriRecord};
use exports::deepmail::stages::plugin_info::Info;
use exports::deepmail::stages::resolver::{NextHop, ResolveRequest};

struct Plugin;

impl exports::deepmail::stages::plugin_info::Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "static-resolver".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "next hops from a static route table in the configuration".into(),
        }
    }
}

fn invalid(message: String) -> StageError {
    StageError {
        code: "invalid-config".into(),
        message,
        offset: None,
    }
}

struct Route {
    domain: String,
    record: UriRecord,
}

/// Parses `DOMAIN URI [PRIORITY [WEIGHT]]`.
fn route(text: &str) -> Result<Route, StageError> {
    let mut words = text.split_whitespace();
    let usage = || format!("route `{text}`: expected `DOMAIN URI [PRIORITY [WEIGHT]]`");
    let domain = words
        .next()
        .ok_or_else(|| invalid(usage()))?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let target = words.next().ok_or_else(|| invalid(usage()))?.to_string();
    let scheme_ok = target.split_once(':').is_some_and(|(s, rest)| {
        !s.is_empty()
            && !rest.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if !scheme_ok {
        return Err(invalid(format!(
            "route `{text}`: `{target}` is not a URI with a scheme"
        )));
    }
    let mut number = |what: &str| -> Result<u16, StageError> {
        match words.next() {
            None => Ok(if what == "priority" { 10 } else { 1 }),
            Some(w) => w
                .parse()
                .map_err(|_| invalid(format!("route `{text}`: {what} `{w}` is not 0..65535"))),
        }
    };
    let priority = number("priority")?;
    let weight = number("weight")?;
    if let Some(extra) = words.next() {
        return Err(invalid(format!(
            "route `{text}`: unexpected `{extra}`; {}",
            usage()
        )));
    }
    Ok(Route {
        domain,
        record: UriRecord {
            priority,
            weight,
            target,
            ttl: 0,
        },
    })
}

impl exports::deepmail::stages::resolver::Guest for Plugin {
    fn resolve(request: ResolveRequest) -> Result<Vec<NextHop>, StageError> {
        let mut routes = Vec::new();
        for (key, value) in &request.config {
            match key.as_str() {
                "route" => routes.push(route(value)?),
                other => return Err(invalid(format!("static-resolver has no setting `{other}`"))),
            }
        }
        let domain = request.domain.trim_end_matches('.').to_ascii_lowercase();
        let mut matching: Vec<UriRecord> = routes
            .iter()
            .filter(|r| r.domain == domain)
            .map(|r| r.record.clone())
            .collect();
        if matching.is_empty() {
            matching = routes
                .iter()
                .filter(|r| r.domain == "*")
                .map(|r| r.record.clone())
                .collect();
        }
        if matching.is_empty() {
            let known: Vec<&str> = routes.iter().map(|r| r.domain.as_str()).collect();
            return Err(StageError {
                code: "no-route".into(),
                message: format!(
                    "no static route for {domain} (routes exist for: {})",
                    if known.is_empty() {
                        "nothing".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
                offset: None,
            });
        }
        let allowed: Vec<&str> = request.schemes.iter().map(String::as_str).collect();
        let ordered = order_records(&matching, &mut seeded_random(request.random_seed), &allowed);
        if ordered.is_empty() {
            return Err(StageError {
                code: "no-usable-target".into(),
                message: format!(
                    "static routes for {domain} have no target with a scheme in [{}]",
                    allowed.join(", ")
                ),
                offset: None,
            });
        }
        Ok(ordered
            .into_iter()
            .map(|r| NextHop {
                uri: r.target,
                priority: r.priority,
                weight: r.weight,
                origin: "static".into(),
                ttl: None,
            })
            .collect())
    }
}

export!(Plugin);
