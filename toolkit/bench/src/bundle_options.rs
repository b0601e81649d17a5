//! The primary-block fields of new bundles as command-line options
//! (`--src`, `--dst`, `--crc`, ...), shared by `fragment` and `roundtrip`.

use clap::{Args, ValueEnum};
use deepmail_host::types::{BundleSpec, CrcType};

/// DTN time (ms since 2000-01-01T00:00:00Z, RFC 9171 §4.2.6) now.
pub fn dtn_now() -> u64 {
    let unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    deepmail_bundle::dtn_time::from_unix_ms(unix_ms)
}

/// CRC type names on the command line.
// No doc comments on the variants: clap would list them in `--help`.
#[allow(missing_docs)]
#[derive(Clone, Copy, ValueEnum, Debug, PartialEq, Eq)]
pub enum Crc {
    None,
    Crc16,
    Crc32c,
}

impl From<Crc> for CrcType {
    fn from(c: Crc) -> CrcType {
        match c {
            Crc::None => CrcType::None,
            Crc::Crc16 => CrcType::Crc16,
            Crc::Crc32c => CrcType::Crc32c,
        }
    }
}

/// Primary-block fields for new bundles.
#[derive(Args, Clone, Debug)]
pub struct BundleOptions {
    /// Source node EID.
    #[arg(long = "src", value_name = "EID", default_value = "ipn:1.0")]
    pub source: String,
    /// Destination EID; mail goes to service 25.
    #[arg(long = "dst", value_name = "EID", default_value = "ipn:2.25")]
    pub destination: String,
    /// Report-to EID.
    #[arg(long, value_name = "EID", default_value = "dtn:none")]
    pub report_to: String,
    /// Bundle lifetime in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 86_400)]
    pub lifetime: u64,
    /// Creation time, DTN ms (default: now).
    #[arg(long, value_name = "DTN_MS")]
    pub creation_time: Option<u64>,
    /// Creation timestamp sequence number.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seq: u64,
    /// CRC of the primary block (RFC 9171 §4.3.1 requires one).
    #[arg(long, value_enum, default_value_t = Crc::Crc32c)]
    pub crc: Crc,
    /// CRC of the payload block.
    #[arg(long, value_enum, default_value_t = Crc::Crc32c)]
    pub block_crc: Crc,
    /// Flag the bundle "must not be fragmented".
    #[arg(long)]
    pub must_not_fragment: bool,
}

impl BundleOptions {
    /// The bundle spec these options describe (creation time: now, unless given).
    pub fn spec(&self) -> BundleSpec {
        BundleSpec {
            source: self.source.clone(),
            destination: self.destination.clone(),
            report_to: self.report_to.clone(),
            creation_time: self.creation_time.unwrap_or_else(dtn_now),
            sequence_number: self.seq,
            lifetime_ms: self.lifetime.saturating_mul(1000),
            crc: self.crc.into(),
            block_crc: self.block_crc.into(),
            must_not_fragment: self.must_not_fragment,
        }
    }
}
