//! `resolve`: a mail domain's next hops, through the resolver plugin.

use std::process::ExitCode;

use clap::Args;
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

pub(crate) fn run(stages: &Stages, args: ResolveArgs) -> anyhow::Result<ExitCode> {
    let resolver = stages.resolver(&args.dns_servers, &args.routes, args.timeout_ms)?;
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
