//! One TOML file per gateway: what it listens on, which domains it carries,
//! which plugin serves each stage, where it spools, who its peers are and
//! its limits. [`GatewayConfig::from_toml`] validates everything at start
//! and names the key (and the file's line) of anything wrong.
//!
//! ```toml
//! name = "gw.earth.example"        # SMTP greeting, Received:, DSN Reporting-MTA
//! spool = "spool/earth"            # relative to this file
//!
//! [smtp]                           # SMTP ingress (the Earth MTA relays to it)
//! listen = "127.0.0.1:2525"
//! relay-domains = ["moon.example"] # anything else: 550 5.7.1 (no open relay)
//!
//! [receive]                        # HTTPS / HTTP/3 endpoint for Batch SMTP
//! https-listen = "127.0.0.1:8443"
//! cert = "tls/server.pem"
//! key = "tls/server.key"
//!
//! [relay]                          # received mail goes to the local MTA by SMTP
//! smtp = "127.0.0.1:25"
//! domains = ["earth.example"]      # only these are relayed; others get a DSN
//!
//! [[route]]                        # how mail for a domain leaves
//! domain = "moon.example"
//! uri = "https://gw.moon.example/inboundmail"   # else: DNS URI records
//! ca = "tls/ca.pem"
//! ```

//!
//! Loading reads key and certificate files and looks up addresses through an
//! [`Environment`]: [`Disk`] at start-up and for `deepmail gateway --check`
//! (so `--check` loads exactly what start-up loads), or one that touches
//! nothing, as the fuzz target does.

#![warn(missing_docs)]

mod env;
mod file;
mod model;
mod sections;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use crate::env::{Disk, Environment, MAX_FILE_BYTES};
pub use crate::model::*;
use crate::sections::Ctx;

/// The HTTP path batches are posted to when a route's URI or the receiver
/// config names none.
pub const DEFAULT_PATH: &str = "/inboundmail";

/// A configuration that failed to load. Its message names the file and
/// the key (and, for syntax errors, the line); callers can match on what
/// kind of problem it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not UTF-8.
    #[error("{}: not UTF-8 text ({error})", path.display())]
    NotUtf8 {
        /// The configuration file.
        path: PathBuf,
        /// Where the bytes stopped being UTF-8.
        error: std::string::FromUtf8Error,
    },
    /// The file is larger than any gateway configuration.
    #[error("{}: {size} bytes; a gateway configuration is at most {max}", path.display())]
    TooLarge {
        /// The configuration file.
        path: PathBuf,
        /// Its size.
        size: usize,
        /// The limit.
        max: u64,
    },
    /// Not TOML, or not the shape of a gateway configuration (the detail
    /// names the line and the key).
    #[error("{}: {detail}", path.display())]
    Syntax {
        /// The configuration file.
        path: PathBuf,
        /// The TOML parser's explanation.
        detail: String,
    },
    /// A key's value is not acceptable.
    #[error("{}key `{key}`: {detail}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Key {
        /// The configuration file, once known.
        path: Option<PathBuf>,
        /// The key, e.g. `route[0].uri`.
        key: String,
        /// What is wrong with its value.
        detail: String,
    },
}

pub(crate) fn bad(key: &str, detail: impl std::fmt::Display) -> ConfigError {
    ConfigError::Key {
        path: None,
        key: key.to_string(),
        detail: detail.to_string(),
    }
}

/// The largest configuration file read (a gateway's is a few KiB).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

impl GatewayConfig {
    /// Reads and validates `path`. Relative paths inside are relative to
    /// the file's directory.
    pub fn load(path: &Path) -> Result<GatewayConfig, ConfigError> {
        let bytes = Disk.read(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        let text = String::from_utf8(bytes).map_err(|error| ConfigError::NotUtf8 {
            path: path.to_path_buf(),
            error,
        })?;
        GatewayConfig::from_toml(&text, path)
    }

    /// Parses and validates `text`, as if read from `path`, reading the
    /// files it names from disk.
    pub fn from_toml(text: &str, path: &Path) -> Result<GatewayConfig, ConfigError> {
        GatewayConfig::from_toml_in(text, path, &Disk)
    }

    /// Parses and validates `text`, as if read from `path`, reading files
    /// and looking up addresses through `env`.
    pub fn from_toml_in(
        text: &str,
        path: &Path,
        env: &dyn Environment,
    ) -> Result<GatewayConfig, ConfigError> {
        if text.len() as u64 > MAX_CONFIG_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                size: text.len(),
                max: MAX_CONFIG_BYTES,
            });
        }
        let file: file::File = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            path: path.to_path_buf(),
            detail: e.to_string().trim().to_string(),
        })?;
        let cx = Ctx {
            base: path.parent().unwrap_or(Path::new(".")),
            env,
        };
        GatewayConfig::validate(&cx, &file, path).map_err(|e| match e {
            ConfigError::Key {
                path: None,
                key,
                detail,
            } => ConfigError::Key {
                path: Some(path.to_path_buf()),
                key,
                detail,
            },
            other => other,
        })
    }

    fn validate(cx: &Ctx, file: &file::File, path: &Path) -> Result<GatewayConfig, ConfigError> {
        if file.name.trim().is_empty() {
            return Err(bad("name", "must not be empty"));
        }
        let name = sections::domain_name("name", &file.name)?;
        let smtp = file
            .smtp
            .as_ref()
            .map(|s| sections::smtp(cx, s))
            .transpose()?;
        let receive = file
            .receive
            .as_ref()
            .map(|r| sections::receive(cx, r))
            .transpose()?;
        let relay = file
            .relay
            .as_ref()
            .map(|r| sections::relay(cx, r, &name))
            .transpose()?;
        if receive.is_some() {
            sections::receiver_relays("[receive]", relay.as_ref())?;
        }
        let delivery = sections::delivery(&file.delivery)?;
        let mut routes: Vec<Route> = Vec::new();
        for (i, r) in file.routes.iter().enumerate() {
            let route = sections::route(
                cx,
                i,
                r,
                file.bp.as_ref().map(|b| b.node_id.as_str()),
                delivery.max_age,
            )?;
            if routes.iter().any(|x| x.domain == route.domain) {
                return Err(bad(
                    &format!("route[{i}].domain"),
                    format!("`{}` has two routes", route.domain),
                ));
            }
            routes.push(route);
        }
        let dns_servers = sections::dns_servers(cx, &file.dns)?;
        let stages = sections::stages(cx, &file.stages)?;
        let policy = sections::policy(&file.policy)?;
        let bp = file
            .bp
            .as_ref()
            .map(|b| sections::bp(cx, b, relay.as_ref()))
            .transpose()?;
        let receives_bp = bp.as_ref().is_some_and(|b| b.listen.is_some());
        if smtp.is_none() && receive.is_none() && !receives_bp {
            return Err(bad(
                "smtp",
                "nothing to do: configure [smtp] (mail in from an MTA), [receive] (Batch SMTP in) and/or [bp] listen (bundles in)",
            ));
        }
        if smtp.is_some() && routes.is_empty() {
            return Err(bad(
                "route",
                "[smtp] accepts mail for relay-domains but no [[route]] says how it leaves",
            ));
        }
        Ok(GatewayConfig {
            source: path.to_path_buf(),
            name,
            spool: cx.rel(&file.spool),
            smtp,
            receive,
            relay,
            delivery,
            routes,
            dns_servers,
            dns_timeout_ms: file.dns.timeout_ms.unwrap_or(2000).max(1),
            stages,
            policy,
            metrics_listen: file
                .metrics
                .as_ref()
                .map(|m| cx.addr("metrics.listen", &m.listen))
                .transpose()?,
            bp,
        })
    }

    /// Takes the contact plans of `fresh` (the same file, read again) into
    /// this running configuration: every clone sees the new windows at
    /// once. Returns what changed, and what only a restart can change (a
    /// route that gained or lost its plan, or a new route).
    pub fn reload_plans(&self, fresh: &GatewayConfig) -> (Vec<String>, Vec<String>) {
        let mut reloaded = Vec::new();
        let mut need_restart = Vec::new();
        for new in &fresh.routes {
            let old = self.routes.iter().find(|r| r.domain == new.domain);
            match (old.and_then(|r| r.plan.as_ref()), &new.plan) {
                (Some(old), Some(new_plan)) => {
                    if old != new_plan {
                        old.link.replace(new_plan.link.read().clone());
                        reloaded.push(format!(
                            "{}: {} window(s) from {}",
                            new.domain,
                            new_plan.link.read().windows().len(),
                            new_plan.source
                        ));
                    }
                }
                (None, None) => {}
                _ => need_restart.push(format!(
                    "{}: a route's plan was added or removed (or the route is new)",
                    new.domain
                )),
            }
        }
        (reloaded, need_restart)
    }

    /// The route for mail to `domain`: its own, else a parent domain's
    /// `.parent` route, else `*`.
    pub fn route_for(&self, domain: &str) -> Option<&Route> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        self.routes
            .iter()
            .find(|r| r.domain == domain)
            .or_else(|| {
                self.routes
                    .iter()
                    .find(|r| r.domain.starts_with('.') && domain.ends_with(r.domain.as_str()))
            })
            .or_else(|| self.routes.iter().find(|r| r.domain == "*"))
    }
}

/// Whether `eid` looks like an `ipn:N.S` or `dtn://node/...` EID (RFC 9171 §4.2.5).
pub fn valid_eid(eid: &str) -> bool {
    if let Some(rest) = eid.strip_prefix("ipn:") {
        let mut parts = rest.split('.');
        let ok = |p: Option<&str>| {
            p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        };
        ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
    } else if let Some(rest) = eid.strip_prefix("dtn://") {
        rest.split('/').next().is_some_and(|n| !n.is_empty()) && rest.contains('/')
    } else {
        false
    }
}

/// Whether `domain` is one of `domains` (exact, or a subdomain of a
/// `.parent` entry), case-insensitively.
pub fn domain_listed(domains: &[String], domain: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    domains.iter().any(|d| {
        if let Some(parent) = d.strip_prefix('.') {
            domain.ends_with(d.as_str()) || domain == parent
        } else {
            *d == domain
        }
    })
}
