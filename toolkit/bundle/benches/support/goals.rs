//! The fast-path goals as ratios of criterion's medians from the same run,
//! printed at the end of a bench. Shared by `deepmail-bundle`'s fragment
//! bench and `deepmail-host`'s plugin bench (included by path), with the
//! bp7 bundle both measure against.

/// The anchor the fragmenters are measured against: bp7 0.12's bundle for
/// `payload` (ipn:1.0 to ipn:2.25, 24 h lifetime, CRC-32 on every block),
/// ready for `to_cbor`.
pub(crate) fn bp7_bundle(payload: Vec<u8>, creation_ms: u64, sequence: u64) -> bp7::bundle::Bundle {
    use bp7::flags::BlockControlFlags;
    use bp7::{canonical, crc, dtntime::CreationTimestamp, eid::EndpointID, primary};
    let p = primary::PrimaryBlockBuilder::default()
        .destination(EndpointID::with_ipn(2, 25).unwrap())
        .source(EndpointID::with_ipn(1, 0).unwrap())
        .report_to(EndpointID::none())
        .creation_timestamp(CreationTimestamp::with_time_and_seq(creation_ms, sequence))
        .lifetime(std::time::Duration::from_millis(86_400_000))
        .build()
        .unwrap();
    let mut bundle = bp7::bundle::BundleBuilder::default()
        .primary(p)
        .canonicals(vec![canonical::new_payload_block(
            BlockControlFlags::empty(),
            payload,
        )])
        .build()
        .unwrap();
    bundle.set_crc(crc::CRC_32);
    bundle
}

/// One goal: `anchor`'s time over `ours` (criterion ids), at least `goal`
/// (0: a figure to state, no goal).
pub(crate) struct Goal {
    pub what: &'static str,
    pub anchor: &'static str,
    pub ours: &'static str,
    pub goal: f64,
}

/// Criterion's median estimate (ns) for `id`, from this run's results.
fn median_ns(id: &str) -> Option<f64> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            Some(exe.parent()?.parent()?.parent()?.to_path_buf())
        })?;
    let file = target.join("criterion").join(id).join("new/estimates.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// Prints each goal: both times, the ratio, met or not.
pub(crate) fn report(title: &str, goals: &[Goal]) {
    println!("\n{title}:");
    for g in goals {
        match (median_ns(g.anchor), median_ns(g.ours)) {
            (Some(a), Some(o)) if g.goal == 0.0 => println!(
                "  {}: {:.2} ms vs {:.2} ms = {:.2}x",
                g.what,
                o / 1e6,
                a / 1e6,
                a / o
            ),
            (Some(a), Some(o)) => println!(
                "  {}: {:.2} ms vs {:.2} ms = {:.2}x (goal >= {}x: {})",
                g.what,
                o / 1e6,
                a / 1e6,
                a / o,
                g.goal,
                if a / o >= g.goal { "met" } else { "NOT met" }
            ),
            _ => println!("  {}: not measured in this run (filter it in)", g.what),
        }
    }
}
