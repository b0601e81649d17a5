//! A deliberately broken `codec-plugin`, used only by the host's tests to
//! prove that a plugin which traps, spins forever or allocates without end
//! yields a clean stage error while the host carries on. Never embedded as a
//! default.
//!
//! The behaviour is chosen by the first message's reverse-path on `encode`
//! (or the whole batch text on `decode`): `trap`, `loop`, `balloon`, `stack`;
//! anything else succeeds, so the same instance can be shown to recover.

wit_bindgen::generate!({
    path: "../../wit",
    world: "codec-plugin",
});

use deepmail::stages::types::{Message, StageError};
use exports::deepmail::stages::bsmtp_codec::{DecodeOptions, EncodeOptions};
use exports::deepmail::stages::plugin_info::Info;

struct Plugin;

impl exports::deepmail::stages::plugin_info::Guest for Plugin {
    fn describe() -> Info {
        Info {
            name: "misbehaving".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "test plugin that traps, loops or balloons on request".into(),
        }
    }
}

fn misbehave(what: &str) -> Result<Vec<u8>, StageError> {
    match what {
        "trap" => panic!("misbehaving plugin: trap requested"),
        "loop" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "balloon" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(vec![0xA5; 1 << 20]);
                std::hint::black_box(&hoard);
            }
        }
        "stack" => Ok(recurse(u64::MAX).to_le_bytes().to_vec()),
        other => Ok(format!("ok:{other}").into_bytes()),
    }
}

fn recurse(n: u64) -> u64 {
    if n == 0 {
        return 0;
    }
    let pad = std::hint::black_box([n; 64]);
    recurse(n - 1).wrapping_add(pad[7])
}

impl exports::deepmail::stages::bsmtp_codec::Guest for Plugin {
    fn encode(messages: Vec<Message>, _options: EncodeOptions) -> Result<Vec<u8>, StageError> {
        let what = messages
            .first()
            .map(|m| m.envelope.reverse_path.clone())
            .unwrap_or_default();
        misbehave(&what)
    }

    fn decode(batch: Vec<u8>, _options: DecodeOptions) -> Result<Vec<Message>, StageError> {
        let what = String::from_utf8_lossy(&batch).trim().to_string();
        misbehave(&what)?;
        Err(StageError {
            code: "not-a-codec".into(),
            message: "the misbehaving plugin decodes nothing".into(),
            offset: None,
        })
    }
}

export!(Plugin);
