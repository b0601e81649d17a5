//! The TLS 1.3 cipher suites (RFC 8446 §B.4) and their record protection
//! (§5.2): AEAD over the record, the inner content type appended, the nonce
//! from the per-record sequence number XORed into the IV.

use aead::{AeadInPlace, KeyInit};
use rustls::crypto::cipher::{
    make_tls13_aad, AeadKey, InboundOpaqueMessage, InboundPlainMessage, Iv, MessageDecrypter,
    MessageEncrypter, Nonce, OutboundOpaqueMessage, OutboundPlainMessage, PrefixedPayload,
    Tls13AeadAlgorithm, UnsupportedOperationError,
};
use rustls::crypto::tls13::HkdfUsingHmac;
use rustls::crypto::CipherSuiteCommon;
use rustls::{
    CipherSuite, ConnectionTrafficSecrets, ContentType, Error, ProtocolVersion,
    SupportedCipherSuite, Tls13CipherSuite,
};

use crate::hash::{SHA256, SHA256_HMAC, SHA384, SHA384_HMAC};
use crate::quic::{HeaderCipher, QuicAlgorithm};

/// Every AEAD here has a 16-byte tag.
pub(crate) const TAG_LEN: usize = 16;

/// TLS_CHACHA20_POLY1305_SHA256.
pub static TLS13_CHACHA20_POLY1305_SHA256: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
            hash_provider: &SHA256,
            // RFC 8446 §5.5: no practical limit for ChaCha20-Poly1305.
            confidentiality_limit: u64::MAX,
        },
        hkdf_provider: &HkdfUsingHmac(&SHA256_HMAC),
        aead_alg: &Tls13Aead::<chacha20poly1305::ChaCha20Poly1305> {
            suite: Suite::Chacha20Poly1305,
            _aead: std::marker::PhantomData,
        },
        quic: Some(&QuicAlgorithm::<chacha20poly1305::ChaCha20Poly1305> {
            header: HeaderCipher::ChaCha20,
            // RFC 9001 §6.6.
            confidentiality_limit: u64::MAX,
            integrity_limit: 1 << 36,
            _aead: std::marker::PhantomData,
        }),
    });

/// TLS_AES_128_GCM_SHA256 (also QUIC's Initial suite).
pub static TLS13_AES_128_GCM_SHA256: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: CipherSuite::TLS13_AES_128_GCM_SHA256,
            hash_provider: &SHA256,
            // RFC 8446 §5.5: 2^24.5 full-size records.
            confidentiality_limit: 1 << 24,
        },
        hkdf_provider: &HkdfUsingHmac(&SHA256_HMAC),
        aead_alg: &Tls13Aead::<aes_gcm::Aes128Gcm> {
            suite: Suite::Aes128Gcm,
            _aead: std::marker::PhantomData,
        },
        quic: Some(&QuicAlgorithm::<aes_gcm::Aes128Gcm> {
            header: HeaderCipher::Aes128,
            confidentiality_limit: 1 << 23,
            integrity_limit: 1 << 52,
            _aead: std::marker::PhantomData,
        }),
    });

/// TLS_AES_256_GCM_SHA384.
pub static TLS13_AES_256_GCM_SHA384: SupportedCipherSuite =
    SupportedCipherSuite::Tls13(&Tls13CipherSuite {
        common: CipherSuiteCommon {
            suite: CipherSuite::TLS13_AES_256_GCM_SHA384,
            hash_provider: &SHA384,
            confidentiality_limit: 1 << 24,
        },
        hkdf_provider: &HkdfUsingHmac(&SHA384_HMAC),
        aead_alg: &Tls13Aead::<aes_gcm::Aes256Gcm> {
            suite: Suite::Aes256Gcm,
            _aead: std::marker::PhantomData,
        },
        quic: Some(&QuicAlgorithm::<aes_gcm::Aes256Gcm> {
            header: HeaderCipher::Aes256,
            confidentiality_limit: 1 << 23,
            integrity_limit: 1 << 52,
            _aead: std::marker::PhantomData,
        }),
    });

/// Which suite an AEAD serves, for `extract_keys` (kTLS and the like).
#[derive(Clone, Copy)]
pub(crate) enum Suite {
    Chacha20Poly1305,
    Aes128Gcm,
    Aes256Gcm,
}

/// A RustCrypto AEAD as rustls's TLS 1.3 AEAD algorithm.
pub(crate) struct Tls13Aead<A> {
    suite: Suite,
    _aead: std::marker::PhantomData<fn() -> A>,
}

/// Builds the AEAD from key bytes whose length rustls derived from
/// `key_len`, so it cannot be wrong.
pub(crate) fn aead_from_key<A: KeyInit>(key: &AeadKey) -> A {
    A::new_from_slice(key.as_ref()).expect("rustls derives keys of the suite's key length")
}

impl<A> Tls13AeadAlgorithm for Tls13Aead<A>
where
    A: AeadInPlace + KeyInit + Send + Sync + 'static,
{
    fn encrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageEncrypter> {
        Box::new(RecordSealer {
            aead: aead_from_key::<A>(&key),
            iv,
        })
    }

    fn decrypter(&self, key: AeadKey, iv: Iv) -> Box<dyn MessageDecrypter> {
        Box::new(RecordOpener {
            aead: aead_from_key::<A>(&key),
            iv,
        })
    }

    fn key_len(&self) -> usize {
        A::key_size()
    }

    fn extract_keys(
        &self,
        key: AeadKey,
        iv: Iv,
    ) -> Result<ConnectionTrafficSecrets, UnsupportedOperationError> {
        Ok(match self.suite {
            Suite::Chacha20Poly1305 => ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv },
            Suite::Aes128Gcm => ConnectionTrafficSecrets::Aes128Gcm { key, iv },
            Suite::Aes256Gcm => ConnectionTrafficSecrets::Aes256Gcm { key, iv },
        })
    }
}

struct RecordSealer<A> {
    aead: A,
    iv: Iv,
}

impl<A: AeadInPlace + Send + Sync> MessageEncrypter for RecordSealer<A> {
    fn encrypt(
        &mut self,
        msg: OutboundPlainMessage<'_>,
        seq: u64,
    ) -> Result<OutboundOpaqueMessage, Error> {
        let total_len = self.encrypted_payload_len(msg.payload.len());
        let mut payload = PrefixedPayload::with_capacity(total_len);
        payload.extend_from_chunks(&msg.payload);
        payload.extend_from_slice(&msg.typ.to_array());
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(total_len);
        let tag = self
            .aead
            .encrypt_in_place_detached(aead::Nonce::<A>::from_slice(&nonce), &aad, payload.as_mut())
            .map_err(|_| Error::EncryptError)?;
        payload.extend_from_slice(&tag);
        Ok(OutboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            payload,
        ))
    }

    fn encrypted_payload_len(&self, payload_len: usize) -> usize {
        payload_len + 1 + TAG_LEN
    }
}

struct RecordOpener<A> {
    aead: A,
    iv: Iv,
}

impl<A: AeadInPlace + Send + Sync> MessageDecrypter for RecordOpener<A> {
    fn decrypt<'a>(
        &mut self,
        mut msg: InboundOpaqueMessage<'a>,
        seq: u64,
    ) -> Result<InboundPlainMessage<'a>, Error> {
        let payload = &mut msg.payload;
        let Some(plain_len) = payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, seq).0;
        let aad = make_tls13_aad(payload.len());
        let (text, tag) = payload.split_at_mut(plain_len);
        self.aead
            .decrypt_in_place_detached(
                aead::Nonce::<A>::from_slice(&nonce),
                &aad,
                text,
                aead::Tag::<A>::from_slice(tag),
            )
            .map_err(|_| Error::DecryptError)?;
        payload.truncate(plain_len);
        msg.into_tls13_unpadded_message()
    }
}
