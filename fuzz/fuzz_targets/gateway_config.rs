//! The gateway configuration loader: TOML syntax, then every section's
//! validation, on hostile text. Files and addresses come from an
//! environment that touches nothing (every file exists and holds 32
//! bytes; only literal addresses resolve), so the target never reads the
//! disk or asks DNS.
#![no_main]
use std::net::SocketAddr;
use std::path::Path;

use deepmail_gateway_config::{Environment, GatewayConfig};
use libfuzzer_sys::fuzz_target;

struct Nothing;

impl Environment for Nothing {
    fn read(&self, path: &Path) -> std::io::Result<Vec<u8>> {
        if path.to_string_lossy().contains("missing") {
            Err(std::io::ErrorKind::NotFound.into())
        } else {
            Ok(vec![0x41; 32])
        }
    }
    fn is_file(&self, path: &Path) -> bool {
        !path.to_string_lossy().contains("missing")
    }
    fn resolve(&self, text: &str) -> std::io::Result<Vec<SocketAddr>> {
        text.parse()
            .map(|a| vec![a])
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(c) = GatewayConfig::from_toml_in(text, Path::new("/fuzz/gw.toml"), &Nothing) {
        // What the gateway asks of a loaded config must not panic either.
        for d in ["moon.example", "MARS.example.", "", "*"] {
            let _ = c.route_for(d);
        }
    }
});
