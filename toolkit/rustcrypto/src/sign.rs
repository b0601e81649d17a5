//! Private keys for client certificates (mutual TLS): ECDSA P-256 and
//! P-384 (PKCS#8 or SEC1), Ed25519 (PKCS#8) and RSA (PKCS#8 or PKCS#1,
//! signing with PSS as TLS 1.3 requires, RFC 8446 §4.2.3).

use std::sync::Arc;

use p256::pkcs8::{DecodePrivateKey, EncodePublicKey};
use rand_core::OsRng;
use rustls::crypto::KeyProvider;
use rustls::sign::{Signer, SigningKey};
use rustls::{Error, SignatureAlgorithm, SignatureScheme};
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use signature::{RandomizedSigner, SignatureEncoding, Signer as _};

/// Loads private keys for rustls.
#[derive(Debug)]
pub(crate) struct Keys;

impl KeyProvider for Keys {
    fn load_private_key(
        &self,
        key_der: PrivateKeyDer<'static>,
    ) -> Result<Arc<dyn SigningKey>, Error> {
        let key = match &key_der {
            PrivateKeyDer::Pkcs8(der) => {
                let der = der.secret_pkcs8_der();
                if let Ok(k) = p256::ecdsa::SigningKey::from_pkcs8_der(der) {
                    Key::P256(k)
                } else if let Ok(k) = p384::ecdsa::SigningKey::from_pkcs8_der(der) {
                    Key::P384(k)
                } else if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_der(der) {
                    Key::Ed25519(k)
                } else if let Ok(k) = rsa::RsaPrivateKey::from_pkcs8_der(der) {
                    Key::Rsa(Box::new(k))
                } else {
                    return Err(unsupported());
                }
            }
            PrivateKeyDer::Sec1(der) => {
                let der = der.secret_sec1_der();
                if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
                    Key::P256(k.into())
                } else if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
                    Key::P384(k.into())
                } else {
                    return Err(unsupported());
                }
            }
            PrivateKeyDer::Pkcs1(der) => {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                Key::Rsa(Box::new(
                    rsa::RsaPrivateKey::from_pkcs1_der(der.secret_pkcs1_der())
                        .map_err(|_| unsupported())?,
                ))
            }
            _ => return Err(unsupported()),
        };
        let spki = key.spki()?;
        Ok(Arc::new(LoadedKey {
            key: Arc::new(key),
            spki,
        }))
    }
}

fn unsupported() -> Error {
    Error::General(
        "unsupported private key: use ECDSA P-256 or P-384 (PKCS#8 or SEC1), Ed25519 (PKCS#8) \
         or RSA (PKCS#8 or PKCS#1)"
            .into(),
    )
}

enum Key {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Ed25519(ed25519_dalek::SigningKey),
    Rsa(Box<rsa::RsaPrivateKey>),
}

impl Key {
    fn spki(&self) -> Result<Vec<u8>, Error> {
        let doc = match self {
            Key::P256(k) => p256::PublicKey::from(k.verifying_key()).to_public_key_der(),
            Key::P384(k) => p384::PublicKey::from(k.verifying_key()).to_public_key_der(),
            Key::Ed25519(k) => k.verifying_key().to_public_key_der(),
            Key::Rsa(k) => k.to_public_key().to_public_key_der(),
        };
        doc.map(|d| d.as_bytes().to_vec())
            .map_err(|e| Error::General(format!("cannot encode the public key: {e}")))
    }

    /// The schemes this key can sign with, in order of preference.
    fn schemes(&self) -> &'static [SignatureScheme] {
        match self {
            Key::P256(_) => &[SignatureScheme::ECDSA_NISTP256_SHA256],
            Key::P384(_) => &[SignatureScheme::ECDSA_NISTP384_SHA384],
            Key::Ed25519(_) => &[SignatureScheme::ED25519],
            Key::Rsa(_) => &[
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::RSA_PSS_SHA384,
                SignatureScheme::RSA_PSS_SHA512,
            ],
        }
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.write_str(match self {
            Key::P256(_) => "Key::P256",
            Key::P384(_) => "Key::P384",
            Key::Ed25519(_) => "Key::Ed25519",
            Key::Rsa(_) => "Key::Rsa",
        })
    }
}

#[derive(Debug)]
struct LoadedKey {
    key: Arc<Key>,
    spki: Vec<u8>,
}

impl SigningKey for LoadedKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let scheme = self.key.schemes().iter().find(|s| offered.contains(s))?;
        Some(Box::new(KeySigner {
            key: self.key.clone(),
            scheme: *scheme,
        }))
    }

    fn public_key(&self) -> Option<SubjectPublicKeyInfoDer<'_>> {
        Some(SubjectPublicKeyInfoDer::from(self.spki.as_slice()))
    }

    fn algorithm(&self) -> SignatureAlgorithm {
        match *self.key {
            Key::P256(_) | Key::P384(_) => SignatureAlgorithm::ECDSA,
            Key::Ed25519(_) => SignatureAlgorithm::ED25519,
            Key::Rsa(_) => SignatureAlgorithm::RSA,
        }
    }
}

#[derive(Debug)]
struct KeySigner {
    key: Arc<Key>,
    scheme: SignatureScheme,
}

impl Signer for KeySigner {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        let failed = |e: signature::Error| Error::General(format!("signing failed: {e}"));
        Ok(match (&*self.key, self.scheme) {
            (Key::P256(k), _) => {
                let sig: p256::ecdsa::Signature = k.try_sign(message).map_err(failed)?;
                sig.to_der().as_bytes().to_vec()
            }
            (Key::P384(k), _) => {
                let sig: p384::ecdsa::Signature = k.try_sign(message).map_err(failed)?;
                sig.to_der().as_bytes().to_vec()
            }
            (Key::Ed25519(k), _) => k.try_sign(message).map_err(failed)?.to_bytes().to_vec(),
            (Key::Rsa(k), SignatureScheme::RSA_PSS_SHA384) => {
                let signer = rsa::pss::BlindedSigningKey::<sha2::Sha384>::new((**k).clone());
                signer
                    .try_sign_with_rng(&mut OsRng, message)
                    .map_err(failed)?
                    .to_vec()
            }
            (Key::Rsa(k), SignatureScheme::RSA_PSS_SHA512) => {
                let signer = rsa::pss::BlindedSigningKey::<sha2::Sha512>::new((**k).clone());
                signer
                    .try_sign_with_rng(&mut OsRng, message)
                    .map_err(failed)?
                    .to_vec()
            }
            (Key::Rsa(k), _) => {
                let signer = rsa::pss::BlindedSigningKey::<sha2::Sha256>::new((**k).clone());
                signer
                    .try_sign_with_rng(&mut OsRng, message)
                    .map_err(failed)?
                    .to_vec()
            }
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.scheme
    }
}
