//! `deepmail`: the command-line face of the toolkit. Every protocol stage
//! runs as a WebAssembly component loaded by the host; `--plugin
//! STAGE=SOURCE` swaps one for your own `.wasm` on any command.

mod bundle_cmds;
mod certs_cmd;
mod codec_cmds;
mod conformance_cmd;
mod gateway_cmd;
mod link_cmd;
mod mta_config_cmd;
mod receive_cmd;
mod resolve_cmd;
mod send_cmd;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use deepmail_bench::Stages;

const EXAMPLES: &str = "\
Examples:
  deepmail demo                                   # Earth -> Moon through two gateways, 1.28 s link
  deepmail roundtrip                              # the whole pipeline on a sample email
  deepmail encode msg.eml -o msg.bsmtp            # envelope from the headers (like sendmail -t)
  deepmail encode msg.eml --from ops@earth.example --to ada@moon.example -o msg.bsmtp
  deepmail decode msg.bsmtp                       # messages as JSON
  deepmail decode exim-batch.bsmtp --lenient --eml-dir out/
  deepmail fragment msg.bsmtp --mtu 1024 --dst ipn:2.25 -o bundles/
  deepmail inspect bundles/*.bundle
  deepmail reassemble bundles/*.bundle -o msg.bsmtp
  deepmail conformance                            # check the default plugins against vectors/
  deepmail --plugin codec=./my_codec.wasm conformance --stage codec
  deepmail conformance --adapter 'python3 my_adapter.py'
  deepmail resolve moon.example --dns-server 127.0.0.1:53     # _bsmtp._https URI records
  deepmail resolve moon.example --route 'moon.example https://gw.moon.example/inboundmail 10 1'
  deepmail gateway --config earth.toml            # run a gateway until SIGTERM
  deepmail queue --config earth.toml list         # what is waiting, and why
  deepmail submit --config earth.toml -f ops@earth.example -- ada@moon.example < msg.eml
  deepmail link --tcp 127.0.0.1:2526=127.0.0.1:2525 --delay 1.28s --loss 1%   # a Moon-like link

Stages and their default plugins (embedded in this binary):
  codec       builtin:bsmtp-codec      messages <-> Batch SMTP (RFC 2442)
  fragmenter  builtin:bp7-fragmenter   ADU <-> BPv7 bundles (RFC 9171 §5.8, §5.9)
  resolver    builtin:dns-resolver     domain -> next hops from DNS URI records (RFC 7553)
              builtin:static-resolver  domain -> next hops from --route / configured routes
  sender      builtin:https-sender     POST Batch SMTP over HTTPS (HTTP/2 or 1.1) via wasi:http
              builtin:quic-sender      POST Batch SMTP over HTTP/3, QUIC inside the plugin
  policy      builtin:basic-policy     size, sender/recipient domains, Authentication-Results

Environment:
  DEEPMAIL_CACHE_DIR   where compiled plugins are cached (default ~/.cache/deepmail; `off` disables)";

/// Email to and from deep space: Batch SMTP, BPv7 bundles, WebAssembly stage plugins.
#[derive(Parser)]
#[command(name = "deepmail", version, about, after_long_help = EXAMPLES, max_term_width = 100)]
struct Cli {
    #[command(flatten)]
    plugins: PluginArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command shares: which plugin serves each stage, and its limits.
#[derive(Args, Clone)]
struct PluginArgs {
    /// Use SOURCE for STAGE: `builtin:<name>` or a path to a .wasm component
    /// (stages: codec, fragmenter, resolver, sender, policy). Repeatable.
    #[arg(long = "plugin", value_name = "STAGE=SOURCE", global = true)]
    plugin: Vec<String>,
    /// Seconds one plugin call may take before it is stopped.
    #[arg(long, value_name = "SECONDS", default_value_t = 30.0, global = true)]
    plugin_timeout: f64,
    /// Memory one plugin instance may use, in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 1024, global = true)]
    plugin_memory: usize,
}

#[derive(Subcommand)]
enum Command {
    /// Show the whole pipeline on one email: encode -> fragment -> shuffle -> reassemble -> decode.
    Roundtrip(deepmail_bench::roundtrip::RoundtripArgs),
    /// Encode an RFC 5322 message and its envelope as Batch SMTP (RFC 2442).
    Encode(codec_cmds::EncodeArgs),
    /// Decode Batch SMTP into messages (JSON, or one .eml per message).
    Decode(codec_cmds::DecodeArgs),
    /// Wrap a payload (e.g. a .bsmtp file) in BPv7 bundles of at most --mtu bytes.
    Fragment(bundle_cmds::FragmentArgs),
    /// Reassemble bundle files (any order, duplicates allowed) into their payload.
    Reassemble(bundle_cmds::ReassembleArgs),
    /// Parse and validate bundle files; print their fields as JSON.
    Inspect(bundle_cmds::InspectArgs),
    /// Find a mail domain's next hops: DNS URI records (RFC 7553) or static routes.
    Resolve(resolve_cmd::ResolveArgs),
    /// Deliver a Batch SMTP object to a mail domain's gateway: resolve, then send (HTTPS), with retries.
    Send(send_cmd::SendArgs),
    /// List the embedded plugins and the ones chosen with --plugin.
    Plugins(PluginsArgs),
    /// Make a plugin project: `plugin new codec --lang rust|python`, `plugin new fragmenter --lang js`.
    Plugin(PluginNewCmd),
    /// Check stage implementations against the conformance vectors.
    Conformance(conformance_cmd::ConformanceArgs),
    /// Run the receiving endpoint: HTTPS and HTTP/3 POST of Batch SMTP into a durable spool.
    Receive(receive_cmd::ReceiveArgs),
    /// Generate a test CA, server and client certificates (rcgen).
    Certs(certs_cmd::CertsArgs),
    /// Measure: `bench gateway` (messages/s, memory), `bench fragment` (fragmenters), `bench link` (latency per transport), `bench queue` (cost of a long queue), `bench compress` (link bytes per message byte), `bench contact` (the Mars month: contact windows and a conjunction, with and without a plan).
    Bench(deepmail_bench::bench::BenchArgs),
    /// Earth -> Moon through two gateways on this machine, with a delayed link: prints a timeline.
    Demo(deepmail_bench::demo::DemoArgs),
    /// Run a gateway from its TOML file: SMTP in, queue, send, receive, relay to the MTA, DSNs.
    Gateway(gateway_cmd::GatewayArgs),
    /// List, retry or delete messages in a gateway's outbound queue.
    Queue(gateway_cmd::QueueArgs),
    /// Queue mail from an MTA's pipe transport (sendmail-style: -f SENDER -- RCPT..., or --bsmtp).
    Submit(gateway_cmd::SubmitArgs),
    /// Emulate a deep-space link: relay TCP/UDP between loopback addresses with delay, loss, rate cap.
    Link(link_cmd::LinkArgs),
    /// Print the Earth MTA's configuration (Exim or Postfix) that hands the far domains to a gateway.
    MtaConfig(mta_config_cmd::MtaConfigArgs),
}

#[derive(Args)]
struct PluginNewCmd {
    #[command(subcommand)]
    command: PluginCommand,
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Scaffold a stage plugin project that builds to a component: the WIT,
    /// the source, a README and a Makefile whose `make check` runs the
    /// conformance vectors on it.
    New(deepmail_conformance::scaffold::NewPlugin),
}

#[derive(Args)]
struct PluginsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Output format for commands that print structured data.
#[derive(Clone, Copy, ValueEnum, PartialEq, Eq)]
enum Format {
    Json,
    Text,
}

fn list_plugins(stages: &Stages, args: &PluginsArgs) -> anyhow::Result<()> {
    let list = stages.plugin_list()?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&list.to_json())?);
    } else {
        print!("{}", list.table());
        println!(
            "\nWIT package: {}  (see wit/deepmail.wit)",
            deepmail_host::WIT_PACKAGE
        );
    }
    Ok(())
}

/// `plugin new`: makes the project, says what it wrote and what to run.
fn new_plugin(args: &deepmail_conformance::scaffold::NewPlugin) -> anyhow::Result<()> {
    let made = deepmail_conformance::scaffold::create(args)?;
    println!(
        "created {} ({} {} plugin `{}`):",
        made.dir.display(),
        made.lang_name,
        made.stage,
        made.name
    );
    for rel in &made.files {
        println!("  {rel}");
    }
    println!(
        "next: cd {} && make check DEEPMAIL={}",
        made.dir.display(),
        std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "deepmail".into())
    );
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let plugins = &cli.plugins;
    let stages = Stages::new(
        plugins.plugin_timeout,
        plugins.plugin_memory,
        &plugins.plugin,
    )?;
    match cli.command {
        Command::Roundtrip(a) => Ok(deepmail_bench::roundtrip::run(&stages, a)?.into()),
        Command::Encode(a) => codec_cmds::encode(&stages, a).map(|_| ExitCode::SUCCESS),
        Command::Decode(a) => codec_cmds::decode(&stages, a).map(|_| ExitCode::SUCCESS),
        Command::Fragment(a) => bundle_cmds::fragment(&stages, a).map(|_| ExitCode::SUCCESS),
        Command::Reassemble(a) => bundle_cmds::reassemble(&stages, a).map(|_| ExitCode::SUCCESS),
        Command::Inspect(a) => bundle_cmds::inspect(&stages, a),
        Command::Resolve(a) => resolve_cmd::run(&stages, a),
        Command::Send(a) => send_cmd::run(&stages, a),
        Command::Plugins(a) => list_plugins(&stages, &a).map(|_| ExitCode::SUCCESS),
        Command::Plugin(a) => match a.command {
            PluginCommand::New(n) => new_plugin(&n).map(|_| ExitCode::SUCCESS),
        },
        Command::Conformance(a) => conformance_cmd::run_cmd(&stages, a),
        Command::Receive(a) => receive_cmd::run(&stages, a).map(|_| ExitCode::SUCCESS),
        Command::Certs(a) => certs_cmd::run(a).map(|_| ExitCode::SUCCESS),
        Command::Demo(a) => Ok(deepmail_bench::demo::run(&stages, a)?.into()),
        Command::Bench(a) => Ok(deepmail_bench::bench::run(&stages, a)?.into()),
        Command::Gateway(a) => gateway_cmd::run_gateway(&stages, a),
        Command::Queue(a) => gateway_cmd::run_queue(a),
        Command::Submit(a) => Ok(gateway_cmd::run_submit(&stages, a)),
        Command::Link(a) => link_cmd::run(a),
        Command::MtaConfig(a) => mta_config_cmd::run(a).map(|_| ExitCode::SUCCESS),
    }
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("deepmail: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `deepmail … | head -1`: when the reader goes away, stop quietly and
/// successfully, as `cat` and ripgrep do, instead of panicking in
/// `println!` ("failed printing to stdout: Broken pipe", exit 101).
fn quiet_on_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        // std's print macros panic with this text when stdout is a closed
        // pipe (EPIPE is os error 32 on every Unix).
        if message.starts_with("failed printing to stdout") && message.contains("os error 32") {
            std::process::exit(0);
        }
        default(info);
    }));
}
