//! The WebAssembly host and the plugin chosen for each stage (`--plugin
//! STAGE=SOURCE`), shared by every command; and reading an input file.

use std::path::Path;
use std::time::Duration;

use deepmail_host::{Codec, Fragmenter, Host, HostConfig, PluginSource, Resolver, Stage};

use crate::BenchError;

/// The host plus the plugin chosen for each stage.
pub struct Stages {
    /// The WebAssembly host every plugin is loaded into.
    pub host: Host,
    chosen: Vec<(Stage, PluginSource)>,
}

impl Stages {
    /// Starts a host whose plugin calls may take `timeout_secs` and whose
    /// instances may use `memory_mib`, with the `STAGE=SOURCE` choices of
    /// `--plugin` (a later choice for a stage replaces an earlier one).
    pub fn new(
        timeout_secs: f64,
        memory_mib: usize,
        plugins: &[String],
    ) -> Result<Stages, BenchError> {
        if !(timeout_secs > 0.0 && timeout_secs.is_finite()) {
            return Err(BenchError::BadArgument(
                "--plugin-timeout must be a positive number of seconds".into(),
            ));
        }
        let config = HostConfig {
            memory_limit_bytes: memory_mib.saturating_mul(1 << 20),
            call_timeout: Duration::from_secs_f64(timeout_secs),
            ..HostConfig::default()
        };
        let host = Host::new(config).map_err(BenchError::Host)?;
        let mut chosen = Vec::new();
        for spec in plugins {
            let (stage, source) = spec.split_once('=').ok_or_else(|| {
                BenchError::BadArgument(format!(
                    "--plugin {spec}: expected STAGE=SOURCE, e.g. codec=./my_codec.wasm"
                ))
            })?;
            let stage: Stage = stage
                .parse()
                .map_err(|e| BenchError::BadArgument(format!("--plugin {spec}: {e}")))?;
            let source: PluginSource = source.parse().unwrap_or_else(|e| match e {});
            chosen.retain(|(s, _)| *s != stage);
            chosen.push((stage, source));
        }
        Ok(Stages { host, chosen })
    }

    /// Whether the user chose a plugin for `stage`.
    pub fn chosen(&self, stage: Stage) -> Option<&PluginSource> {
        self.chosen
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, p)| p)
    }

    /// Every choice made with `--plugin`, in order.
    pub fn all_chosen(&self) -> &[(Stage, PluginSource)] {
        &self.chosen
    }

    /// The plugin for `stage`: the one chosen, else the default.
    pub fn source(&self, stage: Stage) -> Result<PluginSource, BenchError> {
        self.chosen(stage)
            .cloned()
            .or_else(|| PluginSource::default_for(stage))
            .ok_or(BenchError::NoPlugin { stage })
    }

    /// Lets `--plugin` choices override a gateway file's `[stages]`.
    pub fn apply_to(&self, stages: &mut std::collections::BTreeMap<String, String>) {
        for (stage, source) in &self.chosen {
            stages.insert(stage.name().to_string(), source.to_string());
        }
    }

    /// Loads the codec plugin.
    pub fn codec(&self) -> Result<Codec, BenchError> {
        let source = self.source(Stage::Codec)?;
        Ok(Codec::load(&self.host, &source)?)
    }

    /// Loads the fragmenter plugin.
    pub fn fragmenter(&self) -> Result<Fragmenter, BenchError> {
        let source = self.source(Stage::Fragmenter)?;
        Ok(Fragmenter::load(&self.host, &source)?)
    }

    /// The resolver the flags ask for: static routes (`--route`, the
    /// static-resolver unless `--plugin resolver=...` says otherwise) or
    /// DNS (`--dns-server`, default the nameservers of /etc/resolv.conf),
    /// with each server checked and granted to the plugin. `resolve` and
    /// `send` use it.
    pub fn resolver(
        &self,
        dns_servers: &[String],
        routes: &[String],
        timeout_ms: u64,
    ) -> Result<Resolver, BenchError> {
        let (source, config) = if !routes.is_empty() {
            let source = self
                .chosen(Stage::Resolver)
                .cloned()
                .unwrap_or(PluginSource::Builtin("static-resolver".into()));
            (
                source,
                routes
                    .iter()
                    .map(|r| ("route".to_string(), r.clone()))
                    .collect::<Vec<_>>(),
            )
        } else {
            let servers = if dns_servers.is_empty() {
                deepmail_gateway::system_nameservers()
                    .iter()
                    .map(|a| a.to_string())
                    .collect()
            } else {
                dns_servers.to_vec()
            };
            if servers.is_empty() {
                return Err(BenchError::BadArgument(
                    "no DNS server to ask: give --dns-server ADDR:PORT (/etc/resolv.conf has none)"
                        .into(),
                ));
            }
            for s in &servers {
                s.parse::<std::net::SocketAddr>()
                    .map_err(|source| BenchError::Address {
                        what: format!("--dns-server {s}: expected address:port, e.g. 127.0.0.1:53"),
                        source,
                    })?;
            }
            let mut config: Vec<(String, String)> = servers
                .into_iter()
                .map(|s| ("server".to_string(), s))
                .collect();
            config.push(("timeout-ms".into(), timeout_ms.to_string()));
            (self.source(Stage::Resolver)?, config)
        };
        Ok(Resolver::load(&self.host, &source, config)?)
    }
}

/// Reads a file, or stdin for `-`.
pub fn read_input(path: &Path) -> Result<Vec<u8>, BenchError> {
    if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)
            .map_err(BenchError::system("reading standard input"))?;
        Ok(buf)
    } else {
        std::fs::read(path).map_err(BenchError::io("cannot read", path))
    }
}
