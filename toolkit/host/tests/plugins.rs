//! The host with real components: the embedded defaults work through the
//! WIT boundary, and a plugin that traps, spins, balloons or overflows its
//! stack yields a clean stage error while the host carries on.

use std::time::{Duration, Instant};

use deepmail_host::types::{
    BundleSpec, CrcType, DecodeMode, DecodeOptions, EncodeOptions, Envelope, ForwardPath, Greeting,
    Message, ReassemblyLimits,
};
use deepmail_host::{Codec, Fragmenter, Host, HostConfig, LoadError, PluginSource, Stage};

fn host(timeout: Duration, memory: usize) -> Host {
    Host::new(HostConfig {
        memory_limit_bytes: memory,
        call_timeout: timeout,
        cache_dir: Some(
            std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("deepmail-cache"),
        ),
        pool_size: 2,
    })
    .expect("host starts")
}

fn builtin(name: &str) -> PluginSource {
    PluginSource::Builtin(name.into())
}

fn message(reverse_path: &str, content: &[u8]) -> Message {
    Message {
        envelope: Envelope {
            reverse_path: reverse_path.into(),
            mail_parameters: vec![],
            forward_paths: vec![ForwardPath {
                mailbox: "ada@moon.example".into(),
                parameters: vec![],
            }],
        },
        content: content.to_vec(),
    }
}

fn spec() -> BundleSpec {
    BundleSpec {
        source: "ipn:1.0".into(),
        destination: "ipn:2.25".into(),
        report_to: "dtn:none".into(),
        creation_time: 800_000_000_000,
        sequence_number: 3,
        lifetime_ms: 3_600_000,
        crc: CrcType::Crc32c,
        block_crc: CrcType::Crc16,
        must_not_fragment: false,
    }
}

#[test]
fn default_codec_round_trips_through_the_component() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let codec = Codec::load(&host, &builtin("bsmtp-codec")).unwrap();
    assert_eq!(codec.info().name, "bsmtp-codec");
    assert_eq!(codec.info().world, "codec-plugin");
    let m = message("ops@earth.example", b"Subject: x\r\n\r\n.dot line\r\n");
    let batch = codec
        .encode(
            std::slice::from_ref(&m),
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .unwrap();
    assert!(
        batch.windows(12).any(|w| w == b"\r\n..dot line"),
        "dot-stuffed: {}",
        String::from_utf8_lossy(&batch)
    );
    let back = codec
        .decode(
            &batch,
            DecodeOptions {
                mode: DecodeMode::Strict,
            },
        )
        .unwrap();
    assert_eq!(back, vec![m]);
}

/// Batches of pseudo-random content over the octets that matter to the
/// decoder (CR, LF, NUL, dots at line starts, lines near the 998-octet
/// limit) decode through the plugin, whose content fast path is the
/// wasm SIMD one, exactly as natively line by line: the same messages, or
/// the same error (class, line, offset, text).
#[test]
fn plugin_decode_agrees_with_native_line_by_line() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let codec = Codec::load(&host, &builtin("bsmtp-codec")).unwrap();
    // xorshift64: the same batches every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    let mut checked = 0;
    for case in 0..120 {
        let mut batch =
            b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n".to_vec();
        let size = 256 + next(24_000) as usize;
        while batch.len() < size {
            match next(100) {
                0..=59 => {
                    let len = 1 + next(140) as usize;
                    batch.extend((0..len).map(|_| b'a' + next(26) as u8));
                }
                60..=84 => batch.extend_from_slice(b"\r\n"),
                85..=91 => batch.extend_from_slice(b"\r\n."),
                92..=94 => {
                    let len = 990 + next(20) as usize;
                    batch.extend(std::iter::repeat_n(b'x', len));
                }
                // The rarer anomalies only in some batches, so that most
                // run long enough to cross many blocks.
                95 if case % 4 == 0 => batch.push(b'\r'),
                96 if case % 4 == 1 => batch.push(b'\n'),
                97 if case % 4 == 2 => batch.push(0),
                98 if case % 8 == 3 => batch.extend_from_slice(b"\r\n.\r\n"),
                _ => batch.push(b' '),
            }
        }
        batch.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        for mode in [DecodeMode::Strict, DecodeMode::Lenient] {
            let native = deepmail_bsmtp::decode_line_by_line(
                &batch,
                &deepmail_bsmtp::DecodeOptions {
                    mode: match mode {
                        DecodeMode::Strict => deepmail_bsmtp::DecodeMode::Strict,
                        DecodeMode::Lenient => deepmail_bsmtp::DecodeMode::Lenient,
                    },
                },
            );
            let plugin = codec.decode(&batch, DecodeOptions { mode });
            match (native, plugin) {
                (Ok(native), Ok(plugin)) => {
                    assert_eq!(native.len(), plugin.len(), "case {case}, {mode:?}");
                    for (n, p) in native.iter().zip(&plugin) {
                        assert_eq!(n.envelope.reverse_path, p.envelope.reverse_path);
                        assert!(
                            n.content == p.content,
                            "case {case}, {mode:?}: content differs"
                        );
                    }
                }
                (Err(native), Err(plugin)) => {
                    assert_eq!(native.code(), plugin.code, "case {case}, {mode:?}");
                    assert_eq!(Some(native.offset), plugin.offset, "case {case}, {mode:?}");
                    // The message names the line: the lines counted agree.
                    assert_eq!(native.to_string(), plugin.message, "case {case}, {mode:?}");
                }
                (native, plugin) => panic!(
                    "case {case}, {mode:?}: native {:?}, plugin {:?}",
                    native.map(|m| m.len()),
                    plugin.map(|m| m.len())
                ),
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 240);
}

#[test]
fn codec_errors_carry_class_and_offset() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let codec = Codec::load(&host, &builtin("bsmtp-codec")).unwrap();
    let err = codec
        .decode(
            b"RCPT TO:<a@b>\r\n",
            DecodeOptions {
                mode: DecodeMode::Strict,
            },
        )
        .unwrap_err();
    assert_eq!(err.code, "out-of-sequence");
    assert_eq!(err.offset, Some(0));
    assert!(!err.is_plugin_fault());
}

#[test]
fn default_fragmenter_fragments_and_reassembles_out_of_order() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let f = Fragmenter::load(&host, &builtin("bp7-fragmenter")).unwrap();
    let adu: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let bundles = f.fragment_adu(&adu, &spec(), 4096).unwrap();
    assert!(bundles.len() > 10);
    assert!(bundles.iter().all(|b| b.len() <= 4096));
    let info = f.inspect(&bundles[1]).unwrap();
    assert!(info.is_fragment);
    assert_eq!(info.total_adu_length, Some(adu.len() as u64));
    assert_eq!(info.destination, "ipn:2.25");

    let limits = ReassemblyLimits {
        max_adu_bytes: 1 << 20,
        max_pending_bytes: 1 << 20,
        max_pending_bundles: 4,
    };
    let mut session = f.reassembler(limits).unwrap();
    let mut done = None;
    for b in bundles.iter().rev().chain(bundles.iter().take(2)) {
        if let Some(d) = session.push(b, 800_000_001_000).unwrap() {
            assert!(done.is_none(), "delivered twice");
            done = Some(d);
        }
    }
    let done = done.expect("complete");
    assert_eq!(done.adu, adu);
    assert_eq!(done.source, "ipn:1.0");
    assert_eq!(session.pending().unwrap().bundles, 0);
}

/// The bundled fragmenter computes CRC-32C through the host's optional
/// `host-checksum` import (in hardware here); plugins that do not import it
/// load as before. Its bundles are byte for byte the native library's, and
/// a damaged one is still refused.
#[test]
fn the_fragmenter_takes_crc32c_from_the_host_and_matches_native() {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    let engine = wasmtime::Engine::new(&config).unwrap();
    let imports = |name: &str| -> Vec<String> {
        let wasm = deepmail_host::builtin::find(name).unwrap().wasm;
        let component = wasmtime::component::Component::new(&engine, wasm).unwrap();
        let ty = component.component_type();
        ty.imports(&engine).map(|(n, _)| n.to_string()).collect()
    };
    let checksum = "deepmail:stages/host-checksum@0.1.0";
    assert!(imports("bp7-fragmenter").iter().any(|n| n == checksum));
    assert!(!imports("bsmtp-codec").iter().any(|n| n == checksum));

    let host = host(Duration::from_secs(30), 256 << 20);
    Codec::load(&host, &builtin("bsmtp-codec")).expect("a plugin without the import loads");
    let f = Fragmenter::load(&host, &builtin("bp7-fragmenter")).unwrap();
    let adu: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 253) as u8).collect();
    let spec = BundleSpec {
        block_crc: CrcType::Crc32c,
        ..spec()
    };
    let bundles = f.fragment_adu(&adu, &spec, 65_536).unwrap();
    let native = deepmail_bundle::fragment_adu(
        &adu,
        &deepmail_bundle::BundleSpec {
            source: "ipn:1.0".parse().unwrap(),
            destination: "ipn:2.25".parse().unwrap(),
            report_to: deepmail_bundle::Eid::Null,
            creation_time: spec.creation_time,
            sequence_number: spec.sequence_number,
            lifetime_ms: spec.lifetime_ms,
            crc: deepmail_bundle::CrcType::Crc32c,
            block_crc: deepmail_bundle::CrcType::Crc32c,
            must_not_fragment: false,
        },
        65_536,
    )
    .unwrap();
    assert_eq!(bundles, native);
    let limits = ReassemblyLimits {
        max_adu_bytes: 1 << 20,
        max_pending_bytes: 1 << 20,
        max_pending_bundles: 4,
    };
    let mut session = f.reassembler(limits).unwrap();
    assert!(session
        .push(&bundles[0], 800_000_001_000)
        .unwrap()
        .is_none());
    let mut bad = bundles[1].clone();
    let at = bad.len() / 2;
    bad[at] ^= 1;
    let e = session.push(&bad, 800_000_001_000).unwrap_err();
    assert_eq!(e.code, "crc-mismatch", "{e}");
    let mut done = None;
    for b in &bundles[1..] {
        done = session.push(b, 800_000_001_000).unwrap();
    }
    assert_eq!(done.expect("complete").adu, adu);
}

#[test]
fn reassembler_rejects_bad_fragment_and_keeps_going() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let f = Fragmenter::load(&host, &builtin("bp7-fragmenter")).unwrap();
    let adu = vec![0x5a; 10_000];
    let bundles = f.fragment_adu(&adu, &spec(), 2048).unwrap();
    let limits = ReassemblyLimits {
        max_adu_bytes: 1 << 20,
        max_pending_bytes: 1 << 20,
        max_pending_bundles: 4,
    };
    let mut session = f.reassembler(limits).unwrap();
    let mut corrupt = bundles[0].clone();
    let mid = corrupt.len() / 2;
    corrupt[mid] ^= 0xff;
    let err = session.push(&corrupt, 800_000_001_000).unwrap_err();
    assert_eq!(err.code, "crc-mismatch", "{err}");
    let mut done = None;
    for b in &bundles {
        done = done.or(session.push(b, 800_000_001_000).unwrap());
    }
    assert_eq!(done.expect("complete").adu, adu);
}

#[test]
fn trapping_plugin_is_reported_and_host_recovers() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let bad = Codec::load(&host, &builtin("misbehaving")).unwrap();
    let err = bad
        .encode(
            &[message("trap", b"x\r\n")],
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .unwrap_err();
    assert_eq!(err.code, "plugin-trap", "{err}");
    assert!(
        err.message.contains("trap requested"),
        "stderr of the plugin is captured: {err}"
    );
    // The same plugin serves the next call from a fresh instance.
    let ok = bad
        .encode(
            &[message("fine", b"x\r\n")],
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .unwrap();
    assert_eq!(ok, b"ok:fine");
}

#[test]
fn looping_plugin_is_stopped_at_its_deadline() {
    let host = host(Duration::from_millis(300), 256 << 20);
    let bad = Codec::load(&host, &builtin("misbehaving")).unwrap();
    let start = Instant::now();
    let err = bad
        .encode(
            &[message("loop", b"x\r\n")],
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .unwrap_err();
    let took = start.elapsed();
    assert_eq!(err.code, "plugin-timeout", "{err}");
    assert!(
        took < Duration::from_secs(5),
        "stopped promptly, took {took:?}"
    );
    let ok = bad
        .encode(
            &[message("again", b"x\r\n")],
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .unwrap();
    assert_eq!(ok, b"ok:again");
}

#[test]
fn ballooning_plugin_hits_its_memory_cap() {
    let host = host(Duration::from_secs(30), 64 << 20);
    let bad = Codec::load(&host, &builtin("misbehaving")).unwrap();
    let err = bad
        .encode(
            &[message("balloon", b"x\r\n")],
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .unwrap_err();
    assert_eq!(err.code, "plugin-out-of-memory", "{err}");
    assert!(err.message.contains("64 MiB"), "{err}");
    let ok = bad
        .encode(
            &[message("after", b"x\r\n")],
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .unwrap();
    assert_eq!(ok, b"ok:after");
}

#[test]
fn stack_overflow_is_a_trap_not_a_crash() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let bad = Codec::load(&host, &builtin("misbehaving")).unwrap();
    let err = bad
        .encode(
            &[message("stack", b"x\r\n")],
            &EncodeOptions {
                greeting: Greeting::None,
                quit: false,
            },
        )
        .unwrap_err();
    assert_eq!(err.code, "plugin-trap", "{err}");
    assert!(err.is_plugin_fault());
}

#[test]
fn wrong_world_is_refused_at_load_time() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let err = match Codec::load(&host, &builtin("bp7-fragmenter")) {
        Err(e) => e,
        Ok(_) => panic!("a fragmenter must not load as a codec"),
    };
    assert!(
        matches!(err, LoadError::WrongWorld { stage: "codec", .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("deepmail:stages/fragmenter@0.1.0"),
        "names what it does export: {err}"
    );
}

#[test]
fn garbage_and_missing_files_are_load_errors() {
    let host = host(Duration::from_secs(30), 256 << 20);
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0 not really").unwrap();
    let err = Codec::load(&host, &PluginSource::Path(junk))
        .err()
        .expect("junk refused");
    assert!(matches!(err, LoadError::Compile { .. }), "{err}");
    let err = Codec::load(&host, &PluginSource::Path(dir.path().join("missing.wasm")))
        .err()
        .expect("missing refused");
    assert!(matches!(err, LoadError::Read { .. }), "{err}");
    let err = Codec::load(&host, &"builtin:nope".parse().unwrap())
        .err()
        .expect("unknown builtin refused");
    assert!(
        err.to_string().contains("bsmtp-codec"),
        "lists the known builtins: {err}"
    );
}

#[test]
fn compiled_components_are_cached_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let config = HostConfig {
        cache_dir: Some(dir.path().to_path_buf()),
        ..HostConfig::default()
    };
    let first = Host::new(config.clone()).unwrap();
    Codec::load(&first, &builtin("bsmtp-codec")).unwrap();
    let cached: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(cached.len(), 1, "one .cwasm written");
    let second = Host::new(config).unwrap();
    let start = Instant::now();
    let codec = Codec::load(&second, &builtin("bsmtp-codec")).unwrap();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(codec.info().name, "bsmtp-codec");
}

#[test]
fn stage_names_parse() {
    for stage in Stage::ALL {
        assert_eq!(stage.name().parse::<Stage>().unwrap(), stage);
    }
    assert!("transport"
        .parse::<Stage>()
        .unwrap_err()
        .to_string()
        .contains("codec"));
}
