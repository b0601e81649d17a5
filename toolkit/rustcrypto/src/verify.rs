//! Signature verification for certificate chains and TLS 1.3
//! CertificateVerify (RFC 8446 §4.2.3): ECDSA on P-256 and P-384 (with
//! SHA-256 or SHA-384, as certificate chains mix them), Ed25519, and RSA
//! (PKCS#1 v1.5 and PSS, 2048 to 8192 bits).

use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::SignatureScheme;
use rustls_pki_types::{
    alg_id, AlgorithmIdentifier, InvalidSignature, SignatureVerificationAlgorithm,
};
use sha2::Digest;
use signature::hazmat::PrehashVerifier;
use signature::Verifier;

pub(crate) static SUPPORTED_ALGORITHMS: WebPkiSupportedAlgorithms = WebPkiSupportedAlgorithms {
    all: &[
        ECDSA_P256_SHA256,
        ECDSA_P256_SHA384,
        ECDSA_P384_SHA256,
        ECDSA_P384_SHA384,
        ED25519,
        RSA_PSS_SHA256,
        RSA_PSS_SHA384,
        RSA_PSS_SHA512,
        RSA_PKCS1_SHA256,
        RSA_PKCS1_SHA384,
        RSA_PKCS1_SHA512,
    ],
    mapping: &[
        (
            SignatureScheme::ECDSA_NISTP384_SHA384,
            &[ECDSA_P384_SHA384, ECDSA_P256_SHA384],
        ),
        (
            SignatureScheme::ECDSA_NISTP256_SHA256,
            &[ECDSA_P256_SHA256, ECDSA_P384_SHA256],
        ),
        (SignatureScheme::ED25519, &[ED25519]),
        (SignatureScheme::RSA_PSS_SHA512, &[RSA_PSS_SHA512]),
        (SignatureScheme::RSA_PSS_SHA384, &[RSA_PSS_SHA384]),
        (SignatureScheme::RSA_PSS_SHA256, &[RSA_PSS_SHA256]),
        (SignatureScheme::RSA_PKCS1_SHA512, &[RSA_PKCS1_SHA512]),
        (SignatureScheme::RSA_PKCS1_SHA384, &[RSA_PKCS1_SHA384]),
        (SignatureScheme::RSA_PKCS1_SHA256, &[RSA_PKCS1_SHA256]),
    ],
};

/// Which hash a signature covers.
#[derive(Debug, Clone, Copy)]
enum HashAlg {
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    fn digest(self, message: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(message).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(message).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(message).to_vec(),
        }
    }
}

#[derive(Debug)]
enum Curve {
    P256,
    P384,
}

/// ECDSA with a DER-encoded signature (RFC 5480, RFC 8446 §4.2.3).
#[derive(Debug)]
struct Ecdsa {
    curve: Curve,
    hash: HashAlg,
    public_key_alg_id: AlgorithmIdentifier,
    signature_alg_id: AlgorithmIdentifier,
}

impl SignatureVerificationAlgorithm for Ecdsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let prehash = self.hash.digest(message);
        match self.curve {
            Curve::P256 => {
                let key = p256::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                    .map_err(|_| InvalidSignature)?;
                let sig =
                    p256::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
                key.verify_prehash(&prehash, &sig)
                    .map_err(|_| InvalidSignature)
            }
            Curve::P384 => {
                let key = p384::ecdsa::VerifyingKey::from_sec1_bytes(public_key)
                    .map_err(|_| InvalidSignature)?;
                let sig =
                    p384::ecdsa::Signature::from_der(signature).map_err(|_| InvalidSignature)?;
                key.verify_prehash(&prehash, &sig)
                    .map_err(|_| InvalidSignature)
            }
        }
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        self.public_key_alg_id
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature_alg_id
    }
}

static ECDSA_P256_SHA256: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P256,
    hash: HashAlg::Sha256,
    public_key_alg_id: alg_id::ECDSA_P256,
    signature_alg_id: alg_id::ECDSA_SHA256,
};
static ECDSA_P256_SHA384: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P256,
    hash: HashAlg::Sha384,
    public_key_alg_id: alg_id::ECDSA_P256,
    signature_alg_id: alg_id::ECDSA_SHA384,
};
static ECDSA_P384_SHA256: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P384,
    hash: HashAlg::Sha256,
    public_key_alg_id: alg_id::ECDSA_P384,
    signature_alg_id: alg_id::ECDSA_SHA256,
};
static ECDSA_P384_SHA384: &dyn SignatureVerificationAlgorithm = &Ecdsa {
    curve: Curve::P384,
    hash: HashAlg::Sha384,
    public_key_alg_id: alg_id::ECDSA_P384,
    signature_alg_id: alg_id::ECDSA_SHA384,
};

/// Ed25519 (RFC 8032, RFC 8410).
#[derive(Debug)]
struct Ed25519;

impl SignatureVerificationAlgorithm for Ed25519 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key: [u8; 32] = public_key.try_into().map_err(|_| InvalidSignature)?;
        let key = ed25519_dalek::VerifyingKey::from_bytes(&key).map_err(|_| InvalidSignature)?;
        let sig = ed25519_dalek::Signature::from_slice(signature).map_err(|_| InvalidSignature)?;
        key.verify(message, &sig).map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::ED25519
    }
}

static ED25519: &dyn SignatureVerificationAlgorithm = &Ed25519;

#[derive(Debug, Clone, Copy)]
enum RsaPadding {
    Pkcs1,
    Pss,
}

/// RSA signatures; the public key is a PKCS#1 `RSAPublicKey`.
#[derive(Debug)]
struct Rsa {
    padding: RsaPadding,
    hash: HashAlg,
    signature_alg_id: AlgorithmIdentifier,
}

/// The key sizes *ring* accepts for verification.
const RSA_MIN_BITS: usize = 2048;
const RSA_MAX_BITS: usize = 8192;

fn rsa_public_key(der: &[u8]) -> Result<rsa::RsaPublicKey, InvalidSignature> {
    use rsa::pkcs1::der::Decode;
    let key = rsa::pkcs1::RsaPublicKey::from_der(der).map_err(|_| InvalidSignature)?;
    let n = rsa::BigUint::from_bytes_be(key.modulus.as_bytes());
    let e = rsa::BigUint::from_bytes_be(key.public_exponent.as_bytes());
    let bits = n.bits();
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(InvalidSignature);
    }
    rsa::RsaPublicKey::new_with_max_size(n, e, RSA_MAX_BITS).map_err(|_| InvalidSignature)
}

impl SignatureVerificationAlgorithm for Rsa {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        let key = rsa_public_key(public_key)?;
        let digest = self.hash.digest(message);
        let scheme_result = match (self.padding, self.hash) {
            (RsaPadding::Pkcs1, HashAlg::Sha256) => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha256>(), &digest, signature)
            }
            (RsaPadding::Pkcs1, HashAlg::Sha384) => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha384>(), &digest, signature)
            }
            (RsaPadding::Pkcs1, HashAlg::Sha512) => {
                key.verify(rsa::Pkcs1v15Sign::new::<sha2::Sha512>(), &digest, signature)
            }
            // RFC 8446 §4.2.3: the salt is as long as the digest.
            (RsaPadding::Pss, HashAlg::Sha256) => key.verify(
                rsa::Pss::new_with_salt::<sha2::Sha256>(32),
                &digest,
                signature,
            ),
            (RsaPadding::Pss, HashAlg::Sha384) => key.verify(
                rsa::Pss::new_with_salt::<sha2::Sha384>(48),
                &digest,
                signature,
            ),
            (RsaPadding::Pss, HashAlg::Sha512) => key.verify(
                rsa::Pss::new_with_salt::<sha2::Sha512>(64),
                &digest,
                signature,
            ),
        };
        scheme_result.map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        self.signature_alg_id
    }
}

static RSA_PKCS1_SHA256: &dyn SignatureVerificationAlgorithm = &Rsa {
    padding: RsaPadding::Pkcs1,
    hash: HashAlg::Sha256,
    signature_alg_id: alg_id::RSA_PKCS1_SHA256,
};
static RSA_PKCS1_SHA384: &dyn SignatureVerificationAlgorithm = &Rsa {
    padding: RsaPadding::Pkcs1,
    hash: HashAlg::Sha384,
    signature_alg_id: alg_id::RSA_PKCS1_SHA384,
};
static RSA_PKCS1_SHA512: &dyn SignatureVerificationAlgorithm = &Rsa {
    padding: RsaPadding::Pkcs1,
    hash: HashAlg::Sha512,
    signature_alg_id: alg_id::RSA_PKCS1_SHA512,
};
static RSA_PSS_SHA256: &dyn SignatureVerificationAlgorithm = &Rsa {
    padding: RsaPadding::Pss,
    hash: HashAlg::Sha256,
    signature_alg_id: alg_id::RSA_PSS_SHA256,
};
static RSA_PSS_SHA384: &dyn SignatureVerificationAlgorithm = &Rsa {
    padding: RsaPadding::Pss,
    hash: HashAlg::Sha384,
    signature_alg_id: alg_id::RSA_PSS_SHA384,
};
static RSA_PSS_SHA512: &dyn SignatureVerificationAlgorithm = &Rsa {
    padding: RsaPadding::Pss,
    hash: HashAlg::Sha512,
    signature_alg_id: alg_id::RSA_PSS_SHA512,
};
