//! A rustls [`CryptoProvider`] made only of pure-Rust RustCrypto crates:
//! TLS 1.3 cipher suites with their QUIC packet and header-protection keys,
//! X25519 / P-256 / P-384 key exchange, certificate signature verification
//! (ECDSA, Ed25519, RSA PKCS#1 v1.5 and PSS) and signing keys for client
//! certificates.
//!
//! It exists so that TLS compiles for `wasm32-wasip2` with nothing but
//! Rust: *ring* and aws-lc compile C and assembly and need clang for wasm.
//! It is not a general provider: there is no TLS 1.2 and no server-side
//! session ticketer (the plugins are TLS and QUIC *clients*), and nothing
//! here is FIPS-certified.
//!
//! Cipher-suite order: ChaCha20-Poly1305 first, because WebAssembly has no
//! AES or carry-less-multiply instructions, so software AES-GCM is slower
//! there; then AES-128-GCM (which QUIC also needs for Initial packets,
//! RFC 9001 §5.2) and AES-256-GCM.
//!
//! No I/O, no clock. Randomness comes from the operating system
//! (`getrandom`; `wasi:random` inside a component).

#![warn(missing_docs)]

mod aead;
mod hash;
mod kx;
mod quic;
mod sign;
mod verify;

use std::sync::Arc;

use rustls::crypto::{CryptoProvider, GetRandomFailed, SecureRandom};
use rustls::SupportedCipherSuite;

pub use crate::aead::{
    TLS13_AES_128_GCM_SHA256, TLS13_AES_256_GCM_SHA384, TLS13_CHACHA20_POLY1305_SHA256,
};
pub use crate::hash::{Sha256Hmac, SHA256_HMAC};
pub use crate::quic::retry_tag_is_valid;

/// The provider: TLS 1.3 only, ChaCha20-Poly1305 preferred.
pub fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: ALL_CIPHER_SUITES.to_vec(),
        kx_groups: kx::ALL_KX_GROUPS.to_vec(),
        signature_verification_algorithms: verify::SUPPORTED_ALGORITHMS,
        secure_random: &OsRandom,
        key_provider: &sign::Keys,
    }
}

/// [`provider`] in an `Arc`, as rustls's config builders take it.
pub fn arc_provider() -> Arc<CryptoProvider> {
    Arc::new(provider())
}

/// Every cipher suite, in order of preference.
pub static ALL_CIPHER_SUITES: &[SupportedCipherSuite] = &[
    TLS13_CHACHA20_POLY1305_SHA256,
    TLS13_AES_128_GCM_SHA256,
    TLS13_AES_256_GCM_SHA384,
];

/// Fills buffers from the operating system's random source.
#[derive(Debug)]
struct OsRandom;

impl SecureRandom for OsRandom {
    fn fill(&self, buf: &mut [u8]) -> Result<(), GetRandomFailed> {
        getrandom::getrandom(buf).map_err(|_| GetRandomFailed)
    }
}

/// Why trust roots could not be read from PEM text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootsError {
    /// A block is not valid PEM.
    BadPem {
        /// Where the text came from, e.g. `ca-pem`.
        setting: String,
        /// Which certificate, from 1.
        index: usize,
        /// The parser's words.
        detail: String,
    },
    /// A certificate cannot be a trust anchor.
    NotATrustRoot {
        /// Where the text came from.
        setting: String,
        /// Which certificate, from 1.
        index: usize,
        /// rustls's words.
        detail: String,
    },
    /// No `-----BEGIN CERTIFICATE-----` block at all.
    Empty {
        /// Where the text came from.
        setting: String,
    },
}

impl std::fmt::Display for RootsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RootsError::BadPem {
                setting,
                index,
                detail,
            } => {
                write!(
                    f,
                    "{setting}: certificate {index} is not valid PEM: {detail}"
                )
            }
            RootsError::NotATrustRoot {
                setting,
                index,
                detail,
            } => {
                write!(
                    f,
                    "{setting}: certificate {index} cannot be a trust root: {detail}"
                )
            }
            RootsError::Empty { setting } => {
                write!(f, "{setting} holds no `-----BEGIN CERTIFICATE-----` block")
            }
        }
    }
}

impl std::error::Error for RootsError {}

/// Trust roots from PEM text (`setting` names where it came from, for
/// the error): every `-----BEGIN CERTIFICATE-----` block, at least one.
pub fn roots_from_pem(setting: &str, pem: &str) -> Result<rustls::RootCertStore, RootsError> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for (n, cert) in rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes()).enumerate() {
        let cert = cert.map_err(|e| RootsError::BadPem {
            setting: setting.into(),
            index: n + 1,
            detail: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| RootsError::NotATrustRoot {
            setting: setting.into(),
            index: n + 1,
            detail: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(RootsError::Empty {
            setting: setting.into(),
        });
    }
    Ok(roots)
}

/// Random bytes from the operating system, for callers that need a key
/// (QUIC's stateless-reset key, for one).
pub fn random_bytes<const N: usize>() -> Result<[u8; N], GetRandomFailed> {
    let mut out = [0u8; N];
    OsRandom.fill(&mut out)?;
    Ok(out)
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}
