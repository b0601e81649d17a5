//! Fragment a 10,000-octet ADU into bundles of at most 1,500 octets and
//! reassemble them arriving in reverse order.
//! Run with `cargo run -p deepmail-bundle --example fragment_reassemble`.
use deepmail_bundle::{fragment_adu, BundleSpec, CrcType, Reassembler, ReassemblyLimits};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let spec = BundleSpec {
        source: "ipn:1.0".parse()?,
        destination: "ipn:2.25".parse()?,
        report_to: "dtn:none".parse()?,
        creation_time: 815_000_000_000,
        sequence_number: 0,
        lifetime_ms: 86_400_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::Crc16,
        must_not_fragment: false,
    };
    let adu = vec![b'x'; 10_000];
    let bundles = fragment_adu(&adu, &spec, 1_500)?;
    assert!(bundles.len() > 1 && bundles.iter().all(|b| b.len() <= 1_500));

    let mut reassembler = Reassembler::new(ReassemblyLimits::default());
    let mut delivered = None;
    for b in bundles.iter().rev() {
        delivered = reassembler.push(b, 815_000_000_001)?;
    }
    assert_eq!(
        delivered.expect("the last fragment completes the ADU").adu,
        adu
    );
    Ok(())
}
