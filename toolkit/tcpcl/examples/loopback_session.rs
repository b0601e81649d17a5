//! An active (Earth) and a passive (Moon) TCPCLv4 session wired to each
//! other in memory: contact header, SESS_INIT, one transfer, its ack.
//! Run with `cargo run -p deepmail-tcpcl --example loopback_session`.
use deepmail_tcpcl::{ActiveSession, Event, PassiveSession, SessionConfig};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = Instant::now();
    let mut earth = ActiveSession::new(SessionConfig::new("ipn:1.0"), now)?;
    let mut moon = PassiveSession::new(SessionConfig::new("ipn:2.0"), now)?;
    let mut sent = None;
    let mut acked = false;
    for _ in 0..10 {
        while let Some(bytes) = earth.poll_transmit(now) {
            moon.handle_input(now, &bytes);
        }
        while let Some(bytes) = moon.poll_transmit(now) {
            earth.handle_input(now, &bytes);
        }
        while let Some(event) = moon.poll_event() {
            if let Event::BundleReceived { transfer_id, bytes } = event {
                assert_eq!(bytes, b"a bundle");
                moon.accept(transfer_id)?;
            }
        }
        while let Some(event) = earth.poll_event() {
            match event {
                Event::Established(peer) => {
                    assert_eq!(peer.node_id, "ipn:2.0");
                    sent = Some(earth.send_bundle(b"a bundle".to_vec())?);
                }
                Event::TransferAcked(id) => acked = Some(id) == sent,
                _ => {}
            }
        }
    }
    assert!(acked);
    Ok(())
}
