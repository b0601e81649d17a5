//! Full TLS 1.3 handshakes in memory between a rustls client on this
//! provider and a rustls server on *ring* (an independent implementation of
//! every primitive): each cipher suite, each key-exchange group, server
//! certificates of each key type, and client certificates (mutual TLS).

use std::io::{Read, Write};
use std::sync::Arc;

use rustls::crypto::ring as ring_provider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

struct Identity {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// A CA and a leaf for `name`, both of key type `alg`.
fn identity(alg: &'static rcgen::SignatureAlgorithm, name: &str) -> Identity {
    let key_pair = |alg: &'static rcgen::SignatureAlgorithm| {
        if alg == &rcgen::PKCS_RSA_SHA256 {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
            let der = key.to_pkcs8_der().unwrap();
            rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
                &PrivatePkcs8KeyDer::from(der.as_bytes().to_vec()),
                alg,
            )
            .unwrap()
        } else {
            rcgen::KeyPair::generate_for(alg).unwrap()
        }
    };
    let ca_key = key_pair(alg);
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = key_pair(alg);
    let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&leaf_key, &rcgen::Issuer::new(ca_params, &ca_key))
        .unwrap();
    Identity {
        ca: ca.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
    }
}

fn roots(ca: &CertificateDer<'static>) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    roots
}

/// Drives both sides to completion and sends a message each way.
fn handshake(client: ClientConfig, server: ServerConfig) -> (ClientConnection, ServerConnection) {
    let mut c = ClientConnection::new(Arc::new(client), "gw.example".try_into().unwrap()).unwrap();
    let mut s = ServerConnection::new(Arc::new(server)).unwrap();
    for _ in 0..20 {
        if !c.is_handshaking() && !s.is_handshaking() {
            break;
        }
        let mut buf = Vec::new();
        c.write_tls(&mut buf).unwrap();
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets().unwrap();
        let mut buf = Vec::new();
        s.write_tls(&mut buf).unwrap();
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets().unwrap();
    }
    assert!(
        !c.is_handshaking() && !s.is_handshaking(),
        "handshake did not finish"
    );
    c.writer()
        .write_all(b"MAIL FROM:<a@earth.example>\r\n")
        .unwrap();
    let mut buf = Vec::new();
    c.write_tls(&mut buf).unwrap();
    s.read_tls(&mut &buf[..]).unwrap();
    s.process_new_packets().unwrap();
    let mut got = vec![0u8; 29];
    s.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"MAIL FROM:<a@earth.example>\r\n");
    s.writer().write_all(b"250 ok\r\n").unwrap();
    let mut buf = Vec::new();
    s.write_tls(&mut buf).unwrap();
    c.read_tls(&mut &buf[..]).unwrap();
    c.process_new_packets().unwrap();
    let mut got = vec![0u8; 8];
    c.reader().read_exact(&mut got).unwrap();
    assert_eq!(&got, b"250 ok\r\n");
    (c, s)
}

fn client_config(ca: &CertificateDer<'static>) -> ClientConfig {
    ClientConfig::builder_with_provider(deepmail_rustcrypto::arc_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(ca))
        .with_no_client_auth()
}

fn ring_server(id: &Identity) -> ServerConfig {
    ServerConfig::builder_with_provider(Arc::new(ring_provider::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(id.chain.clone(), id.key.clone_key())
        .unwrap()
}

#[test]
fn every_suite_and_group_against_ring() {
    let id = identity(&rcgen::PKCS_ECDSA_P256_SHA256, "gw.example");
    for suite in deepmail_rustcrypto::ALL_CIPHER_SUITES {
        for group in deepmail_rustcrypto::provider().kx_groups {
            let mut provider = deepmail_rustcrypto::provider();
            provider.cipher_suites = vec![*suite];
            provider.kx_groups = vec![group];
            let client = ClientConfig::builder_with_provider(Arc::new(provider))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots(&id.ca))
                .with_no_client_auth();
            let (c, _) = handshake(client, ring_server(&id));
            assert_eq!(c.negotiated_cipher_suite().unwrap().suite(), suite.suite());
            assert_eq!(
                c.negotiated_key_exchange_group().unwrap().name(),
                group.name()
            );
        }
    }
}

#[test]
fn chacha20_is_preferred() {
    let id = identity(&rcgen::PKCS_ECDSA_P256_SHA256, "gw.example");
    let (c, _) = handshake(client_config(&id.ca), ring_server(&id));
    assert_eq!(
        c.negotiated_cipher_suite().unwrap().suite(),
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
    );
}

#[test]
fn server_certificates_of_every_key_type_verify() {
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let id = identity(alg, "gw.example");
        handshake(client_config(&id.ca), ring_server(&id));
    }
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let id = identity(&rcgen::PKCS_ECDSA_P256_SHA256, "gw.example");
    let other = identity(&rcgen::PKCS_ECDSA_P256_SHA256, "gw.example");
    let mut c = ClientConnection::new(
        Arc::new(client_config(&other.ca)),
        "gw.example".try_into().unwrap(),
    )
    .unwrap();
    let mut s = ServerConnection::new(Arc::new(ring_server(&id))).unwrap();
    let mut buf = Vec::new();
    c.write_tls(&mut buf).unwrap();
    s.read_tls(&mut &buf[..]).unwrap();
    s.process_new_packets().unwrap();
    let mut buf = Vec::new();
    s.write_tls(&mut buf).unwrap();
    c.read_tls(&mut &buf[..]).unwrap();
    let err = c.process_new_packets().unwrap_err();
    assert!(
        matches!(err, rustls::Error::InvalidCertificate(_)),
        "{err:?}"
    );
}

#[test]
fn client_certificates_of_every_key_type_are_accepted_by_ring() {
    let server_id = identity(&rcgen::PKCS_ECDSA_P256_SHA256, "gw.example");
    for alg in [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
        &rcgen::PKCS_RSA_SHA256,
    ] {
        let client_id = identity(alg, "earth-gateway");
        let ring = Arc::new(ring_provider::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots(&client_id.ca)),
            ring.clone(),
        )
        .build()
        .unwrap();
        let server = ServerConfig::builder_with_provider(ring)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(server_id.chain.clone(), server_id.key.clone_key())
            .unwrap();
        let client = ClientConfig::builder_with_provider(deepmail_rustcrypto::arc_provider())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots(&server_id.ca))
            .with_client_auth_cert(client_id.chain.clone(), client_id.key.clone_key())
            .unwrap();
        let (_, s) = handshake(client, server);
        assert_eq!(s.peer_certificates().unwrap()[0], client_id.chain[0]);
    }
}

#[test]
fn a_key_that_does_not_match_its_certificate_is_refused() {
    let a = identity(&rcgen::PKCS_ECDSA_P256_SHA256, "earth-gateway");
    let b = identity(&rcgen::PKCS_ECDSA_P256_SHA256, "earth-gateway");
    let err = ClientConfig::builder_with_provider(deepmail_rustcrypto::arc_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots(&a.ca))
        .with_client_auth_cert(a.chain.clone(), b.key.clone_key())
        .unwrap_err();
    assert!(matches!(err, rustls::Error::InconsistentKeys(_)), "{err:?}");
}

#[test]
fn a_garbage_key_is_refused_with_what_is_supported() {
    let err = deepmail_rustcrypto::provider()
        .key_provider
        .load_private_key(PrivateKeyDer::Pkcs8(
            vec![0x30, 0x03, 0x02, 0x01, 0x00].into(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("ECDSA P-256"), "{err}");
}
