//! The resolver stage as the host calls it: a plugin exporting
//! `deepmail:stages/resolver`, optionally `dns-answer` too. Answers are
//! cached in the host for their TTL.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::bindings::deepmail::stages::types;
use crate::bindings::exports::deepmail::stages::dns_answer;
use crate::bindings::exports::deepmail::stages::resolver::{self, NextHop, ResolveRequest};
use crate::engine::Host;
use crate::error::{LoadError, StageError};
use crate::plugin::{LoadedPlugin, NetworkGrant, PluginInfo, PluginSource, Stage};

/// Longest the host keeps an answer, whatever its TTL says.
const MAX_CACHE: Duration = Duration::from_secs(24 * 3600);

/// What `resolve` returns: the next hops and whether they came from cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Next hops, best first.
    pub hops: Vec<NextHop>,
    /// True when the answer came from the host's TTL cache.
    pub cached: bool,
}

/// (domain, schemes) -> (valid until, next hops).
type CacheKey = (String, Vec<String>);
type Cache = HashMap<CacheKey, (Instant, Vec<NextHop>)>;

/// A loaded resolver plugin with its settings. Cheap to clone.
#[derive(Clone)]
pub struct Resolver {
    plugin: Arc<LoadedPlugin>,
    indices: Arc<resolver::GuestIndices>,
    dns: Option<Arc<dns_answer::GuestIndices>>,
    config: Vec<(String, String)>,
    cache: Arc<Mutex<Cache>>,
}

/// The network a resolver plugin gets: UDP and TCP to each `server` in its
/// settings (the DNS servers it is configured to ask), nothing else.
fn grant_for(config: &[(String, String)]) -> Option<NetworkGrant> {
    let remote: Vec<SocketAddr> = config
        .iter()
        .filter(|(k, _)| k == "server")
        .filter_map(|(_, v)| v.parse().ok())
        .collect();
    (!remote.is_empty()).then_some(NetworkGrant {
        udp: true,
        tcp: true,
        remote,
        http: None,
    })
}

impl Resolver {
    /// Loads `source` as the resolver stage with `config` (key/value
    /// settings passed on every call; `server` entries also decide which
    /// addresses the plugin may reach).
    pub fn load(
        host: &Host,
        source: &PluginSource,
        config: Vec<(String, String)>,
    ) -> Result<Resolver, LoadError> {
        let plugin = host.load(source, Stage::Resolver, grant_for(&config))?;
        let link = |e: wasmtime::Error| LoadError::Link {
            plugin: plugin.label().to_string(),
            detail: format!("{e:#}"),
        };
        let indices = resolver::GuestIndices::new(plugin.instance_pre()).map_err(link)?;
        let dns = if plugin.exports_interface("dns-answer") {
            Some(Arc::new(
                dns_answer::GuestIndices::new(plugin.instance_pre()).map_err(link)?,
            ))
        } else {
            None
        };
        Ok(Resolver {
            plugin,
            indices: Arc::new(indices),
            dns,
            config,
            cache: Arc::default(),
        })
    }

    /// What the plugin is.
    pub fn info(&self) -> &PluginInfo {
        &self.plugin.info
    }

    /// Whether the plugin exports the pure `dns-answer` interface.
    pub fn has_dns_answer(&self) -> bool {
        self.dns.is_some()
    }

    fn stage_error(&self, e: types::StageError) -> StageError {
        StageError {
            code: e.code,
            message: e.message,
            offset: e.offset,
            plugin: self.plugin.label().to_string(),
        }
    }

    /// Next hops for `domain` whose scheme is in `schemes`, from the cache
    /// while the answer's TTL lasts, else from the plugin. `seed` orders
    /// equal-priority hops (RFC 2782).
    pub fn resolve(
        &self,
        domain: &str,
        schemes: &[String],
        seed: u64,
    ) -> Result<Resolved, StageError> {
        let key = (
            domain.trim_end_matches('.').to_ascii_lowercase(),
            schemes.to_vec(),
        );
        let now = Instant::now();
        if let Some((until, hops)) = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            if *until > now {
                return Ok(Resolved {
                    hops: hops.clone(),
                    cached: true,
                });
            }
        }
        let request = ResolveRequest {
            domain: key.0.clone(),
            random_seed: seed,
            schemes: schemes.to_vec(),
            config: self.config.clone(),
        };
        let hops = self
            .plugin
            .call(|store, instance| {
                self.indices
                    .load(&mut *store, instance)?
                    .call_resolve(&mut *store, &request)
            })?
            .map_err(|e| self.stage_error(e))?;
        let ttl = hops.iter().filter_map(|h| h.ttl).min();
        if let Some(ttl) = ttl.filter(|t| *t > 0) {
            let until = now + Duration::from_secs(u64::from(ttl)).min(MAX_CACHE);
            self.cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(key, (until, hops.clone()));
        }
        Ok(Resolved {
            hops,
            cached: false,
        })
    }

    /// The plugin's pure answer parser (`dns-answer`), if it has one.
    pub fn parse_answer(
        &self,
        domain: &str,
        query_id: u16,
        response: &[u8],
        seed: u64,
        schemes: &[String],
    ) -> Option<Result<Vec<NextHop>, StageError>> {
        let dns = self.dns.as_ref()?;
        let result = self.plugin.call(|store, instance| {
            dns.load(&mut *store, instance)?.call_parse_answer(
                &mut *store,
                domain,
                query_id,
                response,
                seed,
                schemes,
            )
        });
        Some(match result {
            Ok(inner) => inner.map_err(|e| self.stage_error(e)),
            Err(e) => Err(e),
        })
    }
}
