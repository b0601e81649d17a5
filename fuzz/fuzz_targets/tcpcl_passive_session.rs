//! A passive TCPCLv4 session fed hostile bytes in pieces, as a listener
//! receives them: every complete bundle is accepted or refused (by its
//! first byte), and the session's buffers stay within its shared budget.
#![no_main]
use std::time::{Duration, Instant};

use deepmail_tcpcl::{Event, MemoryBudget, PassiveSession, RefuseReason, SessionConfig};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let mut config = SessionConfig::new("ipn:2.0");
    config.segment_mru = 1 << 14;
    config.transfer_mru = 1 << 16;
    let budget = MemoryBudget::new(1 << 17);
    let Ok(mut session) = PassiveSession::new(config, now) else {
        return;
    };
    session.set_budget(budget.clone());
    for (i, piece) in data.chunks(97).enumerate() {
        let t = now + Duration::from_millis(i as u64 * 10);
        session.handle_input(t, piece);
        while let Some(event) = session.poll_event() {
            if let Event::BundleReceived { transfer_id, bytes } = event {
                let _ = if bytes.first().is_some_and(|b| b % 2 == 0) {
                    session.accept(transfer_id)
                } else {
                    session.refuse(transfer_id, RefuseReason::NoResources)
                };
            }
        }
        while session.poll_transmit(t).is_some() {}
        assert!(budget.used() <= budget.limit());
        if session.is_closed() {
            break;
        }
    }
    drop(session);
    assert_eq!(budget.used(), 0, "a dropped session gives its budget back");
});
