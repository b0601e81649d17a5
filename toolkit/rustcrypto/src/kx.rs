//! Ephemeral key exchange for TLS 1.3 (RFC 8446 §4.2.8.2, §7.4): X25519,
//! then the NIST curves P-256 and P-384 with uncompressed points.

use rand_core::OsRng;
use rustls::crypto::{ActiveKeyExchange, SharedSecret, SupportedKxGroup};
use rustls::{Error, NamedGroup, PeerMisbehaved};

/// The groups in order of preference.
pub(crate) static ALL_KX_GROUPS: &[&dyn SupportedKxGroup] = &[&X25519, &SECP256R1, &SECP384R1];

#[derive(Debug)]
struct X25519Group;
static X25519: X25519Group = X25519Group;

impl SupportedKxGroup for X25519Group {
    fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
        let secret = x25519_dalek::EphemeralSecret::random_from_rng(OsRng);
        let public = x25519_dalek::PublicKey::from(&secret);
        Ok(Box::new(X25519Exchange {
            secret,
            public: public.to_bytes(),
        }))
    }

    fn name(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

struct X25519Exchange {
    secret: x25519_dalek::EphemeralSecret,
    public: [u8; 32],
}

impl ActiveKeyExchange for X25519Exchange {
    fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
        let peer: [u8; 32] = peer_pub_key
            .try_into()
            .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
        let shared = self
            .secret
            .diffie_hellman(&x25519_dalek::PublicKey::from(peer));
        // RFC 8446 §7.4.2: an all-zero result must be refused.
        if !shared.was_contributory() {
            return Err(PeerMisbehaved::InvalidKeyShare.into());
        }
        Ok(SharedSecret::from(&shared.as_bytes()[..]))
    }

    fn pub_key(&self) -> &[u8] {
        &self.public
    }

    fn group(&self) -> NamedGroup {
        NamedGroup::X25519
    }
}

/// ECDHE over a NIST curve, with the curve's crate as `C`.
macro_rules! nist_group {
    ($group:ident, $exchange:ident, $static:ident, $curve:ident, $name:expr) => {
        #[derive(Debug)]
        struct $group;
        static $static: $group = $group;

        impl SupportedKxGroup for $group {
            fn start(&self) -> Result<Box<dyn ActiveKeyExchange>, Error> {
                let secret = $curve::ecdh::EphemeralSecret::random(&mut OsRng);
                let public = $curve::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
                    &secret.public_key(),
                    false,
                )
                .as_bytes()
                .to_vec();
                Ok(Box::new($exchange { secret, public }))
            }

            fn name(&self) -> NamedGroup {
                $name
            }
        }

        struct $exchange {
            secret: $curve::ecdh::EphemeralSecret,
            public: Vec<u8>,
        }

        impl ActiveKeyExchange for $exchange {
            fn complete(self: Box<Self>, peer_pub_key: &[u8]) -> Result<SharedSecret, Error> {
                // §4.2.8.2: the uncompressed form (0x04 || X || Y) only;
                // from_sec1_bytes checks the point is on the curve.
                if peer_pub_key.len() != self.public.len() || peer_pub_key.first() != Some(&4) {
                    return Err(PeerMisbehaved::InvalidKeyShare.into());
                }
                let peer = $curve::PublicKey::from_sec1_bytes(peer_pub_key)
                    .map_err(|_| Error::from(PeerMisbehaved::InvalidKeyShare))?;
                let shared = self.secret.diffie_hellman(&peer);
                Ok(SharedSecret::from(&shared.raw_secret_bytes()[..]))
            }

            fn pub_key(&self) -> &[u8] {
                &self.public
            }

            fn group(&self) -> NamedGroup {
                $name
            }
        }
    };
}

nist_group!(
    Secp256r1Group,
    Secp256r1Exchange,
    SECP256R1,
    p256,
    NamedGroup::secp256r1
);
nist_group!(
    Secp384r1Group,
    Secp384r1Exchange,
    SECP384R1,
    p384,
    NamedGroup::secp384r1
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_group_agrees_with_itself_and_refuses_bad_shares() {
        for group in ALL_KX_GROUPS {
            let a = group.start().unwrap();
            let b = group.start().unwrap();
            let b_pub = b.pub_key().to_vec();
            let a_pub = a.pub_key().to_vec();
            let ab = a.complete(&b_pub).unwrap();
            let ba = b.complete(&a_pub).unwrap();
            assert_eq!(ab.secret_bytes(), ba.secret_bytes(), "{:?}", group.name());

            // Truncated share.
            let c = group.start().unwrap();
            assert!(c.complete(&b_pub[..b_pub.len() - 1]).is_err());
            // A share that is not a valid point / low order.
            let d = group.start().unwrap();
            let mut bogus = vec![0u8; b_pub.len()];
            if group.name() != NamedGroup::X25519 {
                bogus[0] = 4;
            }
            assert!(d.complete(&bogus).is_err(), "{:?}", group.name());
        }
    }

    #[test]
    fn nist_groups_refuse_compressed_points() {
        let a = SECP256R1.start().unwrap();
        let b = SECP256R1.start().unwrap();
        let point = p256::PublicKey::from_sec1_bytes(b.pub_key()).unwrap();
        let compressed = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&point, true);
        assert!(a.complete(compressed.as_bytes()).is_err());
    }
}
