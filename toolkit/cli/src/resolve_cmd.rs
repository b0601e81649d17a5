//! `resolve`: a mail domain's next hops, through the resolver plugin.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use deepmail_host::{PluginSource, Resolver, Stage};
use serde_json::json;

use deepmail_bench::Stages;

#[derive(Args)]
pub(crate) struct ResolveArgs {
    /// Mail domain, e.g. moon.example (its `_bsmtp._https` URI records are looked up).
    #[arg(value_name = "DOMAIN")]
    domain: String,
    /// DNS server to ask, address:port; repeatable, tried in order
    /// (default: the nameservers of /etc/resolv.conf).
    #[arg(long = "dns-server", value_name = "ADDR:PORT")]
    dns_servers: Vec<String>,
    /// A static route instead of DNS: "DOMAIN URI [PRIORITY [WEIGHT]]" (`*` for
    /// any domain); repeatable. Selects the static-resolver plugin.
    #[arg(long = "route", value_name = "ROUTE")]
    routes: Vec<String>,
    /// URI scheme the next hop may use; repeatable.
    #[arg(long = "scheme", value_name = "SCHEME", default_values_t = ["https".to_string()])]
    schemes: Vec<String>,
    /// Seed for the weighted order within a priority (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// Milliseconds to wait for each DNS answer.
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout_ms: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The resolver the flags ask for: static routes (`--route`, the
/// static-resolver unless `--plugin resolver=...` says otherwise) or DNS
/// (`--dns-server`, default the nameservers of /etc/resolv.conf), with
/// each server checked and granted to the plugin. `send` uses it too.
pub(crate) fn load_resolver(
    stages: &Stages,
    dns_servers: &[String],
    routes: &[String],
    timeout_ms: u64,
) -> anyhow::Result<Resolver> {
    let (source, config) = if !routes.is_empty() {
        let source = stages
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
            anyhow::bail!(
                "no DNS server to ask: give --dns-server ADDR:PORT (/etc/resolv.conf has none)"
            );
        }
        for s in &servers {
            s.parse::<std::net::SocketAddr>().with_context(|| {
                format!("--dns-server {s}: expected address:port, e.g. 127.0.0.1:53")
            })?;
        }
        let mut config: Vec<(String, String)> = servers
            .into_iter()
            .map(|s| ("server".to_string(), s))
            .collect();
        config.push(("timeout-ms".into(), timeout_ms.to_string()));
        (stages.source(Stage::Resolver)?, config)
    };
    Ok(Resolver::load(&stages.host, &source, config)?)
}

pub(crate) fn run(stages: &Stages, args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let resolver = load_resolver(stages, &args.dns_servers, &args.routes, args.timeout_ms)?;
    let seed = args.seed.unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64);
        t.unwrap_or(0) ^ u64::from(std::process::id()).rotate_left(32)
    });
    let resolved = resolver
        .resolve(&args.domain, &args.schemes, seed)
        .map_err(|e| anyhow::anyhow!("resolving {}: {e}", args.domain))?;
    if args.json {
        let hops: Vec<_> = resolved
            .hops
            .iter()
            .map(|h| json!({"uri": h.uri, "priority": h.priority, "weight": h.weight, "origin": h.origin, "ttl": h.ttl}))
            .collect();
        let doc =
            json!({"domain": args.domain, "plugin": resolver.info().source, "next_hops": hops});
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "next hops for {} ({}):",
            args.domain,
            resolver.info().source
        );
        for (i, h) in resolved.hops.iter().enumerate() {
            let ttl = h.ttl.map(|t| format!("ttl {t}s")).unwrap_or_default();
            println!(
                "  {}. {:<48} priority {:<5} weight {:<5} from {} {ttl}",
                i + 1,
                h.uri,
                h.priority,
                h.weight,
                h.origin
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
