//! The glue between quinn-proto's crypto traits and rustls's QUIC API, for
//! the client side only, on the pure-Rust provider of
//! [`deepmail_rustcrypto`].
//!
//! quinn-proto ships the same glue (`crypto::rustls`), but only with
//! *ring* or aws-lc underneath, and both compile C, which for
//! `wasm32-wasip2` needs clang. This module is that glue without them: TLS
//! 1.3 handshake bytes in and out of a `rustls::quic::ClientConnection`,
//! its packet and header-protection keys handed to quinn-proto, the Initial
//! keys (RFC 9001 §5.2), 0-RTT keys, and the Retry integrity check (§5.8).

use std::any::Any;
use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use quinn_proto::crypto::{
    self, CryptoError, ExportKeyingMaterialError, HeaderKey, KeyPair, Keys, UnsupportedVersion,
};
use quinn_proto::transport_parameters::TransportParameters;
use quinn_proto::{ConnectError, ConnectionId, Side, TransportError, TransportErrorCode};
use rustls::quic::{Connection, KeyChange, Secrets, Suite, Version};
use rustls_pki_types::ServerName;

/// A rustls client configuration ready for QUIC, with the suite that
/// protects Initial packets (always AES-128-GCM, RFC 9001 §5.2).
pub struct QuicClientConfig {
    inner: Arc<rustls::ClientConfig>,
    initial: Suite,
}

/// The provider has no TLS_AES_128_GCM_SHA256 with QUIC keys, which every
/// QUIC Initial packet needs.
#[derive(Debug, Clone, Copy)]
pub struct NoInitialSuite;

impl std::fmt::Display for NoInitialSuite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the TLS provider has no TLS_AES_128_GCM_SHA256 for QUIC Initial packets")
    }
}

impl QuicClientConfig {
    /// Wraps a rustls client configuration (TLS 1.3, ALPN set by the
    /// caller).
    pub fn new(inner: rustls::ClientConfig) -> Result<Self, NoInitialSuite> {
        // Initial packets are always AES-128-GCM (RFC 9001 §5.2), whatever
        // the handshake negotiates afterwards.
        let initial = deepmail_rustcrypto::TLS13_AES_128_GCM_SHA256
            .tls13()
            .and_then(|s| s.quic_suite())
            .ok_or(NoInitialSuite)?;
        Ok(Self {
            inner: Arc::new(inner),
            initial,
        })
    }
}

/// QUIC versions rustls has keys for (quinn-proto's own mapping).
fn interpret_version(version: u32) -> Result<Version, UnsupportedVersion> {
    match version {
        0xff00_001d..=0xff00_0020 => Ok(Version::V1Draft),
        0x0000_0001 | 0xff00_0021..=0xff00_0022 => Ok(Version::V1),
        _ => Err(UnsupportedVersion),
    }
}

impl crypto::ClientConfig for QuicClientConfig {
    fn start_session(
        self: Arc<Self>,
        version: u32,
        server_name: &str,
        params: &TransportParameters,
    ) -> Result<Box<dyn crypto::Session>, ConnectError> {
        let version = interpret_version(version).map_err(|_| ConnectError::UnsupportedVersion)?;
        let name = ServerName::try_from(server_name.to_string())
            .map_err(|_| ConnectError::InvalidServerName(server_name.into()))?;
        let mut encoded = Vec::new();
        params.write(&mut encoded);
        // Fails only for a configuration without TLS 1.3 or QUIC-capable
        // suites, which `QuicClientConfig::new` already ruled out.
        let conn = rustls::quic::ClientConnection::new(self.inner.clone(), version, name, encoded)
            .map_err(|_| ConnectError::UnsupportedVersion)?;
        Ok(Box::new(ClientSession {
            version,
            got_handshake_data: false,
            next_secrets: None,
            inner: Connection::Client(conn),
            initial: self.initial,
        }))
    }
}

/// What quinn-proto's `handshake_data()` returns for these sessions: the
/// negotiated ALPN protocol.
pub struct HandshakeData {
    /// The ALPN protocol the server chose.
    pub protocol: Option<Vec<u8>>,
}

struct ClientSession {
    version: Version,
    got_handshake_data: bool,
    next_secrets: Option<Secrets>,
    inner: Connection,
    initial: Suite,
}

fn wrap_keys(keys: rustls::quic::Keys) -> Keys {
    Keys {
        header: KeyPair {
            local: Box::new(HeaderProtection(keys.local.header)),
            remote: Box::new(HeaderProtection(keys.remote.header)),
        },
        packet: KeyPair {
            local: Box::new(PacketProtection(keys.local.packet)),
            remote: Box::new(PacketProtection(keys.remote.packet)),
        },
    }
}

impl crypto::Session for ClientSession {
    fn initial_keys(&self, dst_cid: &ConnectionId, side: Side) -> Keys {
        let side = match side {
            Side::Client => rustls::Side::Client,
            Side::Server => rustls::Side::Server,
        };
        wrap_keys(self.initial.keys(dst_cid, side, self.version))
    }

    fn handshake_data(&self) -> Option<Box<dyn Any>> {
        if !self.got_handshake_data {
            return None;
        }
        Some(Box::new(HandshakeData {
            protocol: self.inner.alpn_protocol().map(<[u8]>::to_vec),
        }))
    }

    fn peer_identity(&self) -> Option<Box<dyn Any>> {
        self.inner.peer_certificates().map(|certs| -> Box<dyn Any> {
            Box::new(
                certs
                    .iter()
                    .map(|c| c.clone().into_owned())
                    .collect::<Vec<_>>(),
            )
        })
    }

    fn early_crypto(&self) -> Option<(Box<dyn HeaderKey>, Box<dyn crypto::PacketKey>)> {
        let keys = self.inner.zero_rtt_keys()?;
        Some((
            Box::new(HeaderProtection(keys.header)),
            Box::new(PacketProtection(keys.packet)),
        ))
    }

    fn early_data_accepted(&self) -> Option<bool> {
        match &self.inner {
            Connection::Client(conn) => Some(conn.is_early_data_accepted()),
            Connection::Server(_) => None,
        }
    }

    fn is_handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    fn read_handshake(&mut self, buf: &[u8]) -> Result<bool, TransportError> {
        self.inner
            .read_hs(buf)
            .map_err(|e| match self.inner.alert() {
                Some(alert) => TransportError {
                    code: TransportErrorCode::crypto(alert.into()),
                    frame: None,
                    reason: e.to_string(),
                },
                None => TransportError {
                    code: TransportErrorCode::PROTOCOL_VIOLATION,
                    frame: None,
                    reason: format!("TLS error: {e}"),
                },
            })?;
        // rustls says nothing when ALPN is settled; the first time it is
        // (or the handshake is over), the handshake data is ready.
        if !self.got_handshake_data
            && (self.inner.alpn_protocol().is_some() || !self.inner.is_handshaking())
        {
            self.got_handshake_data = true;
            return Ok(true);
        }
        Ok(false)
    }

    fn transport_parameters(&self) -> Result<Option<TransportParameters>, TransportError> {
        match self.inner.quic_transport_parameters() {
            None => Ok(None),
            Some(buf) => TransportParameters::read(Side::Client, &mut io::Cursor::new(buf))
                .map(Some)
                .map_err(Into::into),
        }
    }

    fn write_handshake(&mut self, buf: &mut Vec<u8>) -> Option<Keys> {
        let keys = match self.inner.write_hs(buf)? {
            KeyChange::Handshake { keys } => keys,
            KeyChange::OneRtt { keys, next } => {
                self.next_secrets = Some(next);
                keys
            }
        };
        Some(wrap_keys(keys))
    }

    fn next_1rtt_keys(&mut self) -> Option<KeyPair<Box<dyn crypto::PacketKey>>> {
        let keys = self.next_secrets.as_mut()?.next_packet_keys();
        Some(KeyPair {
            local: Box::new(PacketProtection(keys.local)),
            remote: Box::new(PacketProtection(keys.remote)),
        })
    }

    fn is_valid_retry(&self, orig_dst_cid: &ConnectionId, header: &[u8], payload: &[u8]) -> bool {
        let Some(tag_start) = payload.len().checked_sub(16) else {
            return false;
        };
        // RFC 9001 §5.8: the Retry pseudo-packet is the original
        // Destination Connection ID (length-prefixed) and the Retry packet
        // without its tag.
        let mut aad = Vec::with_capacity(1 + orig_dst_cid.len() + header.len() + tag_start);
        aad.push(orig_dst_cid.len() as u8);
        aad.extend_from_slice(orig_dst_cid);
        aad.extend_from_slice(header);
        aad.extend_from_slice(&payload[..tag_start]);
        let (key, nonce) = match self.version {
            Version::V1Draft => (&RETRY_KEY_DRAFT, &RETRY_NONCE_DRAFT),
            _ => (&RETRY_KEY_V1, &RETRY_NONCE_V1),
        };
        deepmail_rustcrypto::retry_tag_is_valid(key, nonce, &aad, &payload[tag_start..])
    }

    fn export_keying_material(
        &self,
        output: &mut [u8],
        label: &[u8],
        context: &[u8],
    ) -> Result<(), ExportKeyingMaterialError> {
        self.inner
            .export_keying_material(output, label, Some(context))
            .map(|_| ())
            .map_err(|_| ExportKeyingMaterialError)
    }
}

/// RFC 9001 §5.8 (QUIC v1).
const RETRY_KEY_V1: [u8; 16] = [
    0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e,
];
const RETRY_NONCE_V1: [u8; 12] = [
    0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb,
];
/// draft-ietf-quic-tls-29 §5.8.
const RETRY_KEY_DRAFT: [u8; 16] = [
    0xcc, 0xce, 0x18, 0x7e, 0xd0, 0x9a, 0x09, 0xd0, 0x57, 0x28, 0x15, 0x5a, 0x6c, 0xb9, 0x6b, 0xe1,
];
const RETRY_NONCE_DRAFT: [u8; 12] = [
    0xe5, 0x49, 0x30, 0xf9, 0x7f, 0x21, 0x36, 0xf0, 0x53, 0x0a, 0x8c, 0x1c,
];

struct HeaderProtection(Box<dyn rustls::quic::HeaderProtectionKey>);

impl HeaderProtection {
    /// quinn-proto hands the packet with the packet number at `pn_offset`
    /// and guarantees a full sample after it (RFC 9001 §5.4.2).
    fn apply(&self, pn_offset: usize, packet: &mut [u8], unmask: bool) {
        let (header, sample) = packet.split_at_mut(pn_offset + 4);
        let (first, rest) = header.split_at_mut(1);
        let pn_end = Ord::min(pn_offset + 3, rest.len());
        let sample = &sample[..self.0.sample_len()];
        let pn = &mut rest[pn_offset - 1..pn_end];
        let done = if unmask {
            self.0.decrypt_in_place(sample, &mut first[0], pn)
        } else {
            self.0.encrypt_in_place(sample, &mut first[0], pn)
        };
        done.expect("quinn-proto passes a full sample and at most 4 packet-number bytes");
    }
}

impl HeaderKey for HeaderProtection {
    fn decrypt(&self, pn_offset: usize, packet: &mut [u8]) {
        self.apply(pn_offset, packet, true);
    }

    fn encrypt(&self, pn_offset: usize, packet: &mut [u8]) {
        self.apply(pn_offset, packet, false);
    }

    fn sample_size(&self) -> usize {
        self.0.sample_len()
    }
}

struct PacketProtection(Box<dyn rustls::quic::PacketKey>);

impl crypto::PacketKey for PacketProtection {
    fn encrypt(&self, packet: u64, buf: &mut [u8], header_len: usize) {
        let (header, payload_tag) = buf.split_at_mut(header_len);
        let (payload, tag_storage) = payload_tag.split_at_mut(payload_tag.len() - self.0.tag_len());
        let tag = self
            .0
            .encrypt_in_place(packet, header, payload)
            .expect("AEAD sealing of a QUIC packet cannot fail");
        tag_storage.copy_from_slice(tag.as_ref());
    }

    fn decrypt(
        &self,
        packet: u64,
        header: &[u8],
        payload: &mut BytesMut,
    ) -> Result<(), CryptoError> {
        let plain_len = self
            .0
            .decrypt_in_place(packet, header, payload.as_mut())
            .map_err(|_| CryptoError)?
            .len();
        payload.truncate(plain_len);
        Ok(())
    }

    fn tag_len(&self) -> usize {
        self.0.tag_len()
    }

    fn confidentiality_limit(&self) -> u64 {
        self.0.confidentiality_limit()
    }

    fn integrity_limit(&self) -> u64 {
        self.0.integrity_limit()
    }
}

/// QUIC's stateless-reset key (RFC 9000 §10.3): HMAC-SHA256 under a random
/// per-endpoint key. A client never sends resets, but quinn-proto's
/// endpoint wants one.
pub struct ResetKey(Box<dyn rustls::crypto::hmac::Key>);

impl ResetKey {
    /// A fresh random key.
    pub fn random() -> Result<Self, rustls::crypto::GetRandomFailed> {
        use rustls::crypto::hmac::Hmac;
        let secret: [u8; 32] = deepmail_rustcrypto::random_bytes()?;
        Ok(Self(deepmail_rustcrypto::SHA256_HMAC.with_key(&secret)))
    }
}

impl crypto::HmacKey for ResetKey {
    fn sign(&self, data: &[u8], signature_out: &mut [u8]) {
        let tag = self.0.sign(&[data]);
        signature_out.copy_from_slice(tag.as_ref());
    }

    fn signature_len(&self) -> usize {
        self.0.tag_len()
    }

    fn verify(&self, data: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        let tag = self.0.sign(&[data]);
        if deepmail_rustcrypto::constant_time_eq(tag.as_ref(), signature) {
            Ok(())
        } else {
            Err(CryptoError)
        }
    }
}
