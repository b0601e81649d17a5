//! QUIC packet protection (RFC 9001 §5.3) and header protection (§5.4)
//! for the TLS 1.3 suites, and the Retry integrity tag check (§5.8).

use aead::{AeadInPlace, KeyInit};
use aes::cipher::BlockEncrypt;
use chacha20::cipher::{KeyIvInit, StreamCipher, StreamCipherSeek};
use rustls::crypto::cipher::{AeadKey, Iv, Nonce};
use rustls::quic::{Algorithm, HeaderProtectionKey, PacketKey, Tag};
use rustls::Error;

use crate::aead::{aead_from_key, TAG_LEN};

/// Header protection samples are 16 bytes for every suite (§5.4.2).
const SAMPLE_LEN: usize = 16;

/// Which cipher makes the header-protection mask (§5.4.3, §5.4.4).
pub(crate) enum HeaderCipher {
    Aes128,
    Aes256,
    ChaCha20,
}

/// The QUIC half of a cipher suite: AEAD `A` for packets, `header` for
/// header protection, and the AEAD's limits (§6.6).
pub(crate) struct QuicAlgorithm<A> {
    pub(crate) header: HeaderCipher,
    pub(crate) confidentiality_limit: u64,
    pub(crate) integrity_limit: u64,
    pub(crate) _aead: std::marker::PhantomData<fn() -> A>,
}

impl<A> Algorithm for QuicAlgorithm<A>
where
    A: AeadInPlace + KeyInit + Send + Sync + 'static,
{
    fn packet_key(&self, key: AeadKey, iv: Iv) -> Box<dyn PacketKey> {
        Box::new(QuicPacketKey {
            aead: aead_from_key::<A>(&key),
            iv,
            confidentiality_limit: self.confidentiality_limit,
            integrity_limit: self.integrity_limit,
        })
    }

    fn header_protection_key(&self, key: AeadKey) -> Box<dyn HeaderProtectionKey> {
        let key = key.as_ref();
        Box::new(match self.header {
            HeaderCipher::Aes128 => MaskKey::Aes128(Box::new(
                aes::Aes128::new_from_slice(key).expect("rustls derives 16-byte AES-128 keys"),
            )),
            HeaderCipher::Aes256 => MaskKey::Aes256(Box::new(
                aes::Aes256::new_from_slice(key).expect("rustls derives 32-byte AES-256 keys"),
            )),
            HeaderCipher::ChaCha20 => MaskKey::ChaCha20(
                key.try_into()
                    .expect("rustls derives 32-byte ChaCha20 keys"),
            ),
        })
    }

    fn aead_key_len(&self) -> usize {
        A::key_size()
    }
}

struct QuicPacketKey<A> {
    aead: A,
    iv: Iv,
    confidentiality_limit: u64,
    integrity_limit: u64,
}

impl<A: AeadInPlace + Send + Sync> PacketKey for QuicPacketKey<A> {
    fn encrypt_in_place(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &mut [u8],
    ) -> Result<Tag, Error> {
        let nonce = Nonce::new(&self.iv, packet_number).0;
        let tag = self
            .aead
            .encrypt_in_place_detached(aead::Nonce::<A>::from_slice(&nonce), header, payload)
            .map_err(|_| Error::EncryptError)?;
        Ok(Tag::from(tag.as_slice()))
    }

    fn decrypt_in_place<'a>(
        &self,
        packet_number: u64,
        header: &[u8],
        payload: &'a mut [u8],
    ) -> Result<&'a [u8], Error> {
        let Some(plain_len) = payload.len().checked_sub(TAG_LEN) else {
            return Err(Error::DecryptError);
        };
        let nonce = Nonce::new(&self.iv, packet_number).0;
        let (text, tag) = payload.split_at_mut(plain_len);
        self.aead
            .decrypt_in_place_detached(
                aead::Nonce::<A>::from_slice(&nonce),
                header,
                text,
                aead::Tag::<A>::from_slice(tag),
            )
            .map_err(|_| Error::DecryptError)?;
        Ok(&payload[..plain_len])
    }

    fn tag_len(&self) -> usize {
        TAG_LEN
    }

    fn confidentiality_limit(&self) -> u64 {
        self.confidentiality_limit
    }

    fn integrity_limit(&self) -> u64 {
        self.integrity_limit
    }
}

enum MaskKey {
    // Boxed: an expanded AES key is ~1 KB, a ChaCha20 key 32 bytes.
    Aes128(Box<aes::Aes128>),
    Aes256(Box<aes::Aes256>),
    ChaCha20([u8; 32]),
}

impl MaskKey {
    /// The five mask bytes for `sample` (§5.4.1: one for the first byte,
    /// up to four for the packet number).
    fn mask(&self, sample: &[u8]) -> Result<[u8; 5], Error> {
        let sample: &[u8; SAMPLE_LEN] = sample
            .get(..SAMPLE_LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| Error::General("QUIC header protection sample too short".into()))?;
        let mut mask = [0u8; 5];
        match self {
            MaskKey::Aes128(cipher) => {
                let mut block = aes::Block::from(*sample);
                cipher.encrypt_block(&mut block);
                mask.copy_from_slice(&block[..5]);
            }
            MaskKey::Aes256(cipher) => {
                let mut block = aes::Block::from(*sample);
                cipher.encrypt_block(&mut block);
                mask.copy_from_slice(&block[..5]);
            }
            MaskKey::ChaCha20(key) => {
                // §5.4.4: counter = sample[0..4] little-endian, nonce =
                // sample[4..16]; the mask is the key stream over zeros.
                let counter = u32::from_le_bytes([sample[0], sample[1], sample[2], sample[3]]);
                let nonce: [u8; 12] = sample[4..].try_into().expect("16 - 4 = 12 bytes");
                let mut stream = chacha20::ChaCha20::new(key.into(), &nonce.into());
                stream.seek(u64::from(counter) * 64);
                stream.apply_keystream(&mut mask);
            }
        }
        Ok(mask)
    }

    /// Applies the mask to the first byte's low bits and the packet number
    /// (§5.4.1). `protected` says whether the header is masked now, which
    /// decides where the packet-number length is read from.
    fn apply(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
        protected: bool,
    ) -> Result<(), Error> {
        let mask = self.mask(sample)?;
        if packet_number.len() > 4 {
            return Err(Error::General(
                "QUIC packet number longer than 4 bytes".into(),
            ));
        }
        let low_bits = if *first & 0x80 != 0 { 0x0f } else { 0x1f };
        let plain_first = if protected {
            *first ^ (mask[0] & low_bits)
        } else {
            *first
        };
        let pn_len = usize::from(plain_first & 0x03) + 1;
        *first ^= mask[0] & low_bits;
        for (byte, m) in packet_number.iter_mut().zip(&mask[1..]).take(pn_len) {
            *byte ^= m;
        }
        Ok(())
    }
}

impl HeaderProtectionKey for MaskKey {
    fn encrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), Error> {
        self.apply(sample, first, packet_number, false)
    }

    fn decrypt_in_place(
        &self,
        sample: &[u8],
        first: &mut u8,
        packet_number: &mut [u8],
    ) -> Result<(), Error> {
        self.apply(sample, first, packet_number, true)
    }

    fn sample_len(&self) -> usize {
        SAMPLE_LEN
    }
}

/// Checks a Retry packet's integrity tag (RFC 9001 §5.8): AES-128-GCM with
/// the version's fixed `key` and `nonce` over the Retry pseudo-packet
/// (`aad`), which must produce `tag`.
pub fn retry_tag_is_valid(key: &[u8; 16], nonce: &[u8; 12], aad: &[u8], tag: &[u8]) -> bool {
    if tag.len() != TAG_LEN {
        return false;
    }
    let aead = aes_gcm::Aes128Gcm::new(key.into());
    aead.decrypt_in_place_detached(nonce.into(), aad, &mut [], tag.into())
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::quic::{Keys, Suite, Version};
    use rustls::Side;

    fn quic_suite(suite: rustls::SupportedCipherSuite) -> Suite {
        suite
            .tls13()
            .and_then(|s| s.quic_suite())
            .expect("TLS 1.3 suite with QUIC keys")
    }

    /// RFC 9001 Appendix A.2: header protection of the client's Initial
    /// packet with its `hp` key and sample gives the mask 437b9aec36.
    #[test]
    fn aes_header_protection_matches_rfc9001_a2() {
        let hp: [u8; 16] = hex::decode("9f50449e04a0e810283a1e9933adedd2")
            .unwrap()
            .try_into()
            .unwrap();
        let key = MaskKey::Aes128(Box::new(aes::Aes128::new(&hp.into())));
        let sample = hex::decode("d1b1c98dd7689fb8ec11d242b123dc9b").unwrap();
        assert_eq!(hex::encode(key.mask(&sample).unwrap()), "437b9aec36");
        let mut header = hex::decode("c300000001088394c8f03e5157080000449e00000002").unwrap();
        let (first, rest) = header.split_at_mut(1);
        let pn = rest.len() - 4;
        key.encrypt_in_place(&sample, &mut first[0], &mut rest[pn..])
            .unwrap();
        assert_eq!(
            hex::encode(&header),
            "c000000001088394c8f03e5157080000449e7b9aec34"
        );
        let (first, rest) = header.split_at_mut(1);
        key.decrypt_in_place(&sample, &mut first[0], &mut rest[pn..])
            .unwrap();
        assert_eq!(
            hex::encode(&header),
            "c300000001088394c8f03e5157080000449e00000002"
        );
        assert!(key.mask(&sample[..15]).is_err());
    }

    /// Every suite's QUIC keys protect a packet exactly as *ring*'s do,
    /// from the same Initial secrets: the same ciphertext, tag and masked
    /// header, and each side opens the other's packet.
    #[test]
    fn quic_packets_match_ring_for_every_suite() {
        use rustls::crypto::ring::cipher_suite as ring_suites;
        let pairs = [
            (
                crate::TLS13_AES_128_GCM_SHA256,
                ring_suites::TLS13_AES_128_GCM_SHA256,
            ),
            (
                crate::TLS13_AES_256_GCM_SHA384,
                ring_suites::TLS13_AES_256_GCM_SHA384,
            ),
            (
                crate::TLS13_CHACHA20_POLY1305_SHA256,
                ring_suites::TLS13_CHACHA20_POLY1305_SHA256,
            ),
        ];
        let dcid = hex::decode("8394c8f03e515708").unwrap();
        for (ours_suite, ring_suite) in pairs {
            let (ours_suite, ring_suite) = (quic_suite(ours_suite), quic_suite(ring_suite));
            let initial = |suite: &Suite, side| {
                Keys::initial(Version::V1, suite.suite, suite.quic, &dcid, side)
            };
            let header = hex::decode("c300000001088394c8f03e5157080000449e00000002").unwrap();
            let plain: Vec<u8> = (0..1146u32).map(|i| (i * 7) as u8).collect();
            let protect = |keys: &Keys| {
                let mut body = plain.clone();
                let tag = keys
                    .local
                    .packet
                    .encrypt_in_place(2, &header, &mut body)
                    .unwrap();
                let mut packet = header.clone();
                packet.extend_from_slice(&body);
                packet.extend_from_slice(tag.as_ref());
                let sample = packet[22..38].to_vec();
                let (first, rest) = packet.split_at_mut(1);
                keys.local
                    .header
                    .encrypt_in_place(&sample, &mut first[0], &mut rest[17..21])
                    .unwrap();
                packet
            };
            let mut packet = protect(&initial(&ours_suite, Side::Client));
            assert_eq!(packet, protect(&initial(&ring_suite, Side::Client)));

            // The server's keys of our provider open it again.
            let server = initial(&ours_suite, Side::Server);
            let sample = packet[22..38].to_vec();
            let (first, rest) = packet.split_at_mut(1);
            server
                .remote
                .header
                .decrypt_in_place(&sample, &mut first[0], &mut rest[17..21])
                .unwrap();
            assert_eq!(&packet[..header.len()], &header[..]);
            // A flipped bit in the ciphertext is refused.
            let mut forged = packet.clone();
            forged[40] ^= 1;
            let (head, body) = forged.split_at_mut(header.len());
            assert!(server
                .remote
                .packet
                .decrypt_in_place(2, head, body)
                .is_err());
            let (head, body) = packet.split_at_mut(header.len());
            let opened = server
                .remote
                .packet
                .decrypt_in_place(2, head, body)
                .unwrap();
            assert_eq!(opened, &plain[..]);
        }
    }

    /// RFC 9001 Appendix A.5: a short-header packet protected with
    /// ChaCha20-Poly1305 and ChaCha20 header protection.
    #[test]
    fn chacha20_short_packet_matches_rfc9001_a5() {
        let secret =
            hex::decode("9ac312a7f877468ebe69422748ad00a15443f18203a07d6060f688f30f21632b")
                .unwrap();
        let suite = quic_suite(crate::TLS13_CHACHA20_POLY1305_SHA256);
        let hkdf = suite.suite.hkdf_provider;
        let expander = hkdf.expander_for_okm(&rustls::crypto::tls13::OkmBlock::new(&secret));
        let label = |name: &[u8], len: usize| {
            // HKDF-Expand-Label (RFC 8446 §7.1) with an empty context.
            let mut out = vec![0u8; len];
            let full = [b"tls13 ".as_slice(), name].concat();
            let info = [
                &(len as u16).to_be_bytes()[..],
                &[full.len() as u8][..],
                &full[..],
                &[0u8][..],
            ];
            expander.expand_slice(&info, &mut out).unwrap();
            out
        };
        let key = label(b"quic key", 32);
        let iv = label(b"quic iv", 12);
        let hp = label(b"quic hp", 32);
        assert_eq!(
            hex::encode(&hp),
            "25a282b9e82f06f21f488917a4fc8f1b73573685608597d0efcb076b0ab7a7a4"
        );
        let packet_key = suite.quic.packet_key(
            AeadKey::from(<[u8; 32]>::try_from(&key[..]).unwrap()),
            Iv::from(<[u8; 12]>::try_from(&iv[..]).unwrap()),
        );
        let mut hp_bytes = [0u8; 32];
        hp_bytes.copy_from_slice(&hp);
        let header_key = suite.quic.header_protection_key(AeadKey::from(hp_bytes));

        let mut packet = hex::decode("4200bff4").unwrap();
        let mut payload = vec![0x01];
        let tag = packet_key
            .encrypt_in_place(654_360_564, &packet, &mut payload)
            .unwrap();
        packet.extend_from_slice(&payload);
        packet.extend_from_slice(tag.as_ref());
        let sample = packet[1 + 4..1 + 4 + 16].to_vec();
        let (first, rest) = packet.split_at_mut(1);
        header_key
            .encrypt_in_place(&sample, &mut first[0], &mut rest[..3])
            .unwrap();
        assert_eq!(
            hex::encode(&packet),
            "4cfe4189655e5cd55c41f69080575d7999c25a5bfb"
        );
    }

    /// RFC 9001 Appendix A.4: the Retry packet and its tag.
    #[test]
    fn retry_tag_matches_rfc9001_a4() {
        let key: [u8; 16] = hex::decode("be0c690b9f66575a1d766b54e368c84e")
            .unwrap()
            .try_into()
            .unwrap();
        let nonce: [u8; 12] = hex::decode("461599d35d632bf2239825bb")
            .unwrap()
            .try_into()
            .unwrap();
        let odcid = hex::decode("8394c8f03e515708").unwrap();
        let retry =
            hex::decode("ff000000010008f067a5502a4262b5746f6b656e04a265ba2eff4d829058fb3f0f2496ba")
                .unwrap();
        let (body, tag) = retry.split_at(retry.len() - 16);
        let mut aad = vec![odcid.len() as u8];
        aad.extend_from_slice(&odcid);
        aad.extend_from_slice(body);
        assert!(retry_tag_is_valid(&key, &nonce, &aad, tag));
        let mut bad = tag.to_vec();
        bad[0] ^= 1;
        assert!(!retry_tag_is_valid(&key, &nonce, &aad, &bad));
        assert!(!retry_tag_is_valid(&key, &nonce, &aad, &tag[..15]));
    }
}
