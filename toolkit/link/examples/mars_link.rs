//! Start an emulated Mars link (22 minutes each way, run a thousand times
//! faster: 1.32 s) relaying TCP to a mail server on 127.0.0.1:2525, then
//! stop it. Clients connect to the printed address instead of the server.
//! Run with `cargo run -p deepmail-link --example mars_link`.
use deepmail_link::{Link, LinkConfig, LinkError};
use std::time::Duration;

#[tokio::main]
async fn main() -> Result<(), LinkError> {
    // Mars at its farthest, a thousand times faster: 1.32 s each way.
    let mut config = LinkConfig::with_delay(Duration::from_secs(22 * 60)).tcp(
        "127.0.0.1:0".parse().unwrap(),
        "127.0.0.1:2525".parse().unwrap(),
    );
    config.scale = 1000.0;
    config.up.rate = Some("1Mbit".parse().unwrap());
    let link = Link::start(config).await?;
    println!("connect to {}", link.tcp_listen_addrs()[0]);
    // ... clients talk through the link here ...
    println!("{:?}", link.counters().relays[0].up);
    link.stop();
    Ok(())
}
