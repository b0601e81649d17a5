//! `certs`: a test CA, a server certificate and a client certificate (for
//! mutual TLS), generated with rcgen, to try `deepmail receive` without a
//! real PKI.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use deepmail_gateway::TestPki;

#[derive(Args)]
pub(crate) struct CertsArgs {
    /// Directory to write ca.pem, ca.key, server.pem, server.key, client.pem, client.key into.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// DNS name or IP address the server certificate is valid for; repeatable.
    #[arg(long = "server-name", value_name = "NAME", required = true)]
    server_names: Vec<String>,
    /// Common name of the client certificate.
    #[arg(long = "client-name", value_name = "NAME", default_value = "earth-gw")]
    client_name: String,
}

pub(crate) fn run(args: CertsArgs) -> anyhow::Result<()> {
    let pki = TestPki::generate(&args.server_names, &args.client_name)
        .context("generating the certificates")?;
    let written = pki
        .write_to(&args.dir)
        .with_context(|| format!("writing into {}", args.dir.display()))?;
    let what = [
        "CA certificate: the trust anchor of both sides",
        "CA private key (0600): signs more certificates; keep it away from the gateways",
        "server certificate",
        "server private key (0600)",
        "client certificate (CN=",
        "client private key (0600)",
    ];
    for (path, what) in written.iter().zip(what) {
        let what = if what.ends_with("CN=") {
            format!("{what}{}), for mutual TLS", args.client_name)
        } else if what == "server certificate" {
            format!("{what} for {}", args.server_names.join(", "))
        } else {
            what.to_string()
        };
        println!("wrote {:<40} {what}", path.display());
    }
    let d = args.dir.display();
    println!();
    println!("Receive with them (mutual TLS and/or a bearer token):");
    println!(
        "  deepmail receive --cert {d}/server.pem --key {d}/server.key --client-ca {d}/ca.pem --spool SPOOL"
    );
    println!(
        "Senders trust {d}/ca.pem and present {d}/client.pem with {d}/client.key, and reach the server as {}.",
        args.server_names[0]
    );
    Ok(())
}
