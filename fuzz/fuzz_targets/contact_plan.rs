//! The contact plan parser (ION's `a contact` / `a range` / `@` lines) on
//! hostile text, and the link queries on whatever it accepts.
#![no_main]
use deepmail_contact_plan::ContactPlan;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(plan) = ContactPlan::parse(text, 1_800_000_000_000) else {
        return;
    };
    for c in plan.contacts.iter().take(4) {
        let link = plan.link(c.from, c.to);
        for t in [0, c.start_ms, c.end_ms, u64::MAX] {
            let _ = link.at(t);
            let _ = link.next(t);
            let up = link.up_ms(c.start_ms, t);
            if let Some(end) = link.after_up(c.start_ms, up) {
                assert!(end <= t.max(c.start_ms));
            }
        }
    }
});
