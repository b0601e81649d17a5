//! SHA-256 / SHA-384 and their HMACs, as rustls's `hash` and `hmac` traits.

use hmac::Mac;
use rustls::crypto::hash::{Context, Hash, HashAlgorithm, Output};
use rustls::crypto::hmac::{Hmac, Key, Tag};
use sha2::Digest;

/// A rustls hash over a RustCrypto digest.
pub(crate) struct ShaHash<D>(std::marker::PhantomData<fn() -> D>);

pub(crate) static SHA256: ShaHash<sha2::Sha256> = ShaHash(std::marker::PhantomData);
pub(crate) static SHA384: ShaHash<sha2::Sha384> = ShaHash(std::marker::PhantomData);

/// Which TLS hash algorithm a digest is.
pub(crate) trait Named {
    const ALGORITHM: HashAlgorithm;
}

impl Named for sha2::Sha256 {
    const ALGORITHM: HashAlgorithm = HashAlgorithm::SHA256;
}

impl Named for sha2::Sha384 {
    const ALGORITHM: HashAlgorithm = HashAlgorithm::SHA384;
}

impl<D> Hash for ShaHash<D>
where
    D: Digest + Clone + Send + Sync + Named + 'static,
{
    fn start(&self) -> Box<dyn Context> {
        Box::new(ShaContext(D::new()))
    }

    fn hash(&self, data: &[u8]) -> Output {
        Output::new(&D::digest(data))
    }

    fn output_len(&self) -> usize {
        <D as Digest>::output_size()
    }

    fn algorithm(&self) -> HashAlgorithm {
        D::ALGORITHM
    }
}

struct ShaContext<D>(D);

impl<D> Context for ShaContext<D>
where
    D: Digest + Clone + Send + Sync + 'static,
{
    fn fork_finish(&self) -> Output {
        Output::new(&self.0.clone().finalize())
    }

    fn fork(&self) -> Box<dyn Context> {
        Box::new(ShaContext(self.0.clone()))
    }

    fn finish(self: Box<Self>) -> Output {
        Output::new(&self.0.finalize())
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
}

/// HMAC over a RustCrypto digest, as rustls's `Hmac` (which rustls turns
/// into HKDF with `HkdfUsingHmac`).
pub struct ShaHmac<D>(std::marker::PhantomData<fn() -> D>);

/// HMAC-SHA256.
pub type Sha256Hmac = ShaHmac<sha2::Sha256>;

/// HMAC-SHA256, for TLS 1.3's SHA-256 suites and for QUIC's reset tokens.
pub static SHA256_HMAC: Sha256Hmac = ShaHmac(std::marker::PhantomData);
pub(crate) static SHA384_HMAC: ShaHmac<sha2::Sha384> = ShaHmac(std::marker::PhantomData);

impl<D> Hmac for ShaHmac<D>
where
    D: Digest + hmac::digest::core_api::BlockSizeUser + 'static,
    hmac::SimpleHmac<D>: Mac + hmac::digest::KeyInit + Clone + Send + Sync + 'static,
{
    fn with_key(&self, key: &[u8]) -> Box<dyn Key> {
        // HMAC takes keys of any length (RFC 2104 §2).
        Box::new(ShaHmacKey(
            <hmac::SimpleHmac<D> as hmac::digest::KeyInit>::new_from_slice(key)
                .expect("HMAC accepts every key length"),
        ))
    }

    fn hash_output_len(&self) -> usize {
        <D as Digest>::output_size()
    }
}

struct ShaHmacKey<M>(M);

impl<M: Mac + Clone + Send + Sync> Key for ShaHmacKey<M> {
    fn sign_concat(&self, first: &[u8], middle: &[&[u8]], last: &[u8]) -> Tag {
        let mut mac = self.0.clone();
        mac.update(first);
        for part in middle {
            mac.update(part);
        }
        mac.update(last);
        Tag::new(&mac.finalize().into_bytes())
    }

    fn tag_len(&self) -> usize {
        <M as hmac::digest::OutputSizeUser>::output_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc4231_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let tag = SHA256_HMAC
            .with_key(b"Jefe")
            .sign(&[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn sha384_context_forks() {
        let mut ctx = SHA384.start();
        ctx.update(b"ab");
        let fork = ctx.fork_finish();
        ctx.update(b"c");
        assert_eq!(fork.as_ref(), SHA384.hash(b"ab").as_ref());
        assert_eq!(ctx.finish().as_ref(), SHA384.hash(b"abc").as_ref());
        assert_eq!(SHA384.output_len(), 48);
    }
}
