//! `resolve`: a mail domain's next hops, through the resolver plugin.

use std::process::ExitCode;

use clap::Args;

use deepmail_bench::next_hops::{hops_json, hops_table, random_seed, resolve};
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
    let seed = args.seed.unwrap_or_else(random_seed);
    let resolved = resolve(&resolver, &args.domain, &args.schemes, seed)?;
    let plugin = &resolver.info().source;
    if args.json {
        let doc = hops_json(&args.domain, plugin, &resolved);
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        print!("{}", hops_table(&args.domain, plugin, &resolved));
    }
    Ok(ExitCode::SUCCESS)
}
