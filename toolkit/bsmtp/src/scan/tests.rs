use proptest::prelude::*;

use crate::decode_line_by_line;
use crate::{decode, DecodeMode, DecodeOptions, Decoder};

const HEAD: &[u8] = b"MAIL FROM:<a@earth.example>\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n";
const HEAD_8BIT: &[u8] =
    b"MAIL FROM:<a@earth.example> BODY=8BITMIME\r\nRCPT TO:<b@moon.example>\r\nDATA\r\n";

#[cfg(target_arch = "x86_64")]
thread_local! {
    /// The level [`super::x86::Level::detect`] answers on this thread
    /// (never above the CPU's), when set.
    pub(super) static FORCED: std::cell::Cell<Option<Option<super::x86::Level>>> =
        const { std::cell::Cell::new(None) };
}

/// Runs `f` at every level of the fast path this CPU has, and without
/// it.
fn at_every_level(mut f: impl FnMut(&str)) {
    #[cfg(target_arch = "x86_64")]
    {
        use super::x86::Level;
        let best = Level::detect();
        for level in [Some(Level::Avx512), Some(Level::Avx2), None] {
            if level > best {
                continue;
            }
            FORCED.with(|f| f.set(Some(level)));
            f(&format!("{level:?}"));
        }
        FORCED.with(|f| f.set(None));
    }
    #[cfg(not(target_arch = "x86_64"))]
    f("portable");
}

#[cfg(target_arch = "x86_64")]
#[test]
fn the_environment_only_lowers_the_level() {
    use super::x86::Level;
    let avx512 = Some(Level::Avx512);
    let avx2 = Some(Level::Avx2);
    assert_eq!(Level::choose(avx512, None), avx512);
    assert_eq!(Level::choose(avx512, Some("avx2")), avx2);
    assert_eq!(Level::choose(avx512, Some("none")), None);
    assert_eq!(Level::choose(avx512, Some("avx512")), avx512);
    assert_eq!(Level::choose(avx2, Some("avx512")), avx2);
    assert_eq!(Level::choose(avx2, Some("AVX-9000")), avx2);
    assert_eq!(Level::choose(None, Some("avx2")), None);
}

/// `batch` decodes to the same messages, or fails with the same error
/// (class, line, offset, text), with and without the fast path (at
/// every level), whole and fed in chunks of `chunk` octets.
fn same_as_line_by_line(batch: &[u8], chunk: usize) {
    at_every_level(|level| same_at_this_level(batch, chunk, level));
}

fn same_at_this_level(batch: &[u8], chunk: usize, level: &str) {
    for mode in [DecodeMode::Strict, DecodeMode::Lenient] {
        let options = DecodeOptions { mode };
        let reference = decode_line_by_line(batch, &options);
        assert_eq!(
            decode(batch, &options),
            reference,
            "{level}, {mode:?}, whole"
        );
        let mut decoder = Decoder::new(options);
        let mut streamed = Ok(());
        for piece in batch.chunks(chunk.max(1)) {
            streamed = decoder.feed(piece);
            if streamed.is_err() {
                break;
            }
        }
        let streamed = streamed.and_then(|()| decoder.finish());
        assert_eq!(streamed, reference, "{level}, {mode:?}, chunks of {chunk}");
    }
}

/// Content of `lines`, each `len` octets of text (dot first when
/// `dot`), with CRLF.
fn text(lines: &[(usize, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (n, &(len, dot)) in lines.iter().enumerate() {
        if dot {
            out.push(b'.');
        }
        out.extend((0..len).map(|i| b'a' + ((n + i) % 26) as u8));
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[test]
fn a_long_message_with_stuffing_is_copied_exactly() {
    let lines: Vec<(usize, bool)> = (0..20_000).map(|n| (n % 120 + 1, n % 7 == 0)).collect();
    let body = text(&lines);
    let mut batch = HEAD.to_vec();
    batch.extend_from_slice(&body);
    batch.extend_from_slice(b".\r\nQUIT\r\n");
    let messages = decode(&batch, &DecodeOptions::default()).unwrap();
    assert_eq!(messages.len(), 1);
    let unstuffed: Vec<u8> = body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .flat_map(|l| {
            let l = l.strip_prefix(b".").unwrap_or(l);
            l.iter().copied().chain([b'\n'])
        })
        .collect();
    assert_eq!(messages[0].content, unstuffed);
    same_as_line_by_line(&batch, 4093);
}

/// A large message reserves room for the rest of the input at once;
/// what it does not use is given back when it ends, so a large message
/// before many small ones holds no more than its own size, and each
/// small one no more than the first window.
#[test]
fn a_message_keeps_no_more_room_than_it_needs() {
    let big = text(&vec![(70, false); 3_000]);
    let small = text(&[(40, false); 3]);
    let mut batch = HEAD.to_vec();
    batch.extend_from_slice(&big);
    batch.extend_from_slice(b".\r\n");
    for _ in 0..2_000 {
        batch.extend_from_slice(HEAD);
        batch.extend_from_slice(&small);
        batch.extend_from_slice(b".\r\n");
    }
    at_every_level(|level| {
        let messages = decode(&batch, &DecodeOptions::default()).unwrap();
        assert_eq!(messages.len(), 2_001, "{level}");
        assert_eq!(messages[0].content, big, "{level}");
        assert!(
            messages[0].content.capacity() <= big.len() + (64 << 10),
            "{level}: {} for {}",
            messages[0].content.capacity(),
            big.len()
        );
        for m in &messages[1..] {
            assert_eq!(m.content, small, "{level}");
            assert!(
                m.content.capacity() <= 64 << 10,
                "{level}: {}",
                m.content.capacity()
            );
        }
    });
}

/// Consuming a large message window by window reserves its output
/// once: the windows after the large one (the input's last octets,
/// short of a whole block) fit in what it reserved.
#[test]
fn the_output_of_a_large_run_is_reserved_once() {
    for line in [74, 100, 200, 990] {
        let body = text(&vec![(line, false); (1 << 20) / line]);
        let mut data = HEAD.to_vec();
        let start = data.len();
        data.extend_from_slice(&body);
        at_every_level(|level| {
            let mut content = Vec::new();
            let mut pos = start;
            loop {
                let run = super::ordinary_lines(&data, pos, Some(998), &mut content);
                if run.consumed == pos {
                    break;
                }
                pos = run.consumed;
            }
            if level != "None" {
                // All but what ends in the last part-block.
                assert!(data.len() - pos < 64 + line + 2, "{level}, {line}: {pos}");
            }
            assert!(
                content.capacity() <= body.len() + 64,
                "{level}, lines of {line}: {} reserved for {}",
                content.capacity(),
                body.len()
            );
        });
    }
}

#[test]
fn every_anomaly_is_left_to_the_line_by_line_decoder() {
    let lines: Vec<(usize, bool)> = (0..300).map(|n| (n % 90 + 1, n % 5 == 0)).collect();
    let body = text(&lines);
    // An anomaly at every position of the first 5,000 octets in turn.
    for at in (0..5_000.min(body.len())).step_by(7) {
        for bad in [&b"\r"[..], b"\n", b"\0", b".\r\n", b"\r\r\n", b"."] {
            let mut content = body[..at].to_vec();
            content.extend_from_slice(bad);
            content.extend_from_slice(&body[at..]);
            let mut batch = HEAD.to_vec();
            batch.extend_from_slice(&content);
            batch.extend_from_slice(b".\r\n");
            same_as_line_by_line(&batch, 1000);
        }
    }
}

#[test]
fn lines_at_the_limit_are_judged_exactly() {
    for len in 990..1010 {
        for dot in [false, true] {
            for head in [HEAD, HEAD_8BIT] {
                let mut lines = vec![(70, false); 40];
                lines.insert(17, (len, dot));
                let mut batch = head.to_vec();
                batch.extend_from_slice(&text(&lines));
                batch.extend_from_slice(b".\r\n");
                same_as_line_by_line(&batch, 333);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Random content over the octets that matter (CR, LF, NUL, dot)
    /// and text, in runs long enough to cross blocks and windows.
    #[test]
    fn fast_and_line_by_line_agree(
        pieces in proptest::collection::vec(
            prop_oneof![
                8 => "[a-z ]{1,140}".prop_map(String::into_bytes),
                6 => Just(b"\r\n".to_vec()),
                2 => Just(b"\r\n.".to_vec()),
                1 => Just(b"\r\n.\r\n".to_vec()),
                1 => Just(b"\r".to_vec()),
                1 => Just(b"\n".to_vec()),
                1 => Just(b"\0".to_vec()),
                1 => "[a-z]{900,1100}".prop_map(String::into_bytes),
            ],
            0..400,
        ),
        eight_bit in any::<bool>(),
        tail in prop_oneof![Just(&b".\r\n"[..]), Just(&b""[..]), Just(&b".\r\nQUIT\r\n"[..]), Just(&b"."[..])],
        chunk in 1usize..5000,
    ) {
        let mut batch = if eight_bit { HEAD_8BIT } else { HEAD }.to_vec();
        for p in &pieces {
            batch.extend_from_slice(p);
        }
        batch.extend_from_slice(b"\r\n");
        batch.extend_from_slice(tail);
        same_as_line_by_line(&batch, chunk);
    }
}
