//! Delivery on a Bundle Protocol route: each message an ADU, fragmented
//! deterministically to the route's MTU, the bundles of a batch handed to
//! the tcpcl-sender in one pipelined delivery, and what was acknowledged
//! kept so that a cut delivery resumes where it stopped.

use super::*;

/// DTN time (RFC 9171 §4.2.6): milliseconds since 2000-01-01T00:00:00Z.
pub fn dtn_ms(unix_ms: u64) -> u64 {
    deepmail_bundle::dtn_time::from_unix_ms(unix_ms)
}

/// A bundle sequence number derived from the batch id: with the batch's
/// creation time it makes the bundle id the same on every retry, so the
/// far side stores the message once.
pub(super) fn sequence_of(batch_id: &str) -> u64 {
    let digest = ring::digest::digest(&ring::digest::SHA256, batch_id.as_bytes());
    let mut n = [0u8; 4];
    n.copy_from_slice(&digest.as_ref()[..4]);
    u64::from(u32::from_be_bytes(n))
}

/// The WIT twin of a configured SHA-2 variant.
fn wit_variant(v: deepmail_bundle::ShaVariant) -> ShaVariant {
    match v {
        deepmail_bundle::ShaVariant::HmacSha256 => ShaVariant::HmacSha256,
        deepmail_bundle::ShaVariant::HmacSha384 => ShaVariant::HmacSha384,
        deepmail_bundle::ShaVariant::HmacSha512 => ShaVariant::HmacSha512,
    }
}

/// What [`send_bundles`] needs of a batch.
pub(super) struct BundleBatch<'a> {
    pub(super) id: &'a str,
    pub(super) created_ms: u64,
    /// The bundles that crossed in earlier attempts, per ADU.
    pub(super) sent: &'a [BundleProgress],
    /// Bytes of bundles that may leave now (what is left of the window).
    pub(super) budget: Option<u64>,
    /// Messages in the batch: the ADUs given may be the first of them only.
    pub(super) members: usize,
}

/// Fragments each message's ADU to the route's MTU (each bundle signed
/// with a BIB when the route has a key; its lifetime the route's, or what
/// is left of the message's maximum age if that is less) and hands the
/// bundles of all of them to the tcpcl-sender in one delivery (blocking,
/// pipelined): those not acknowledged in an earlier attempt, as many as
/// fit the window's `budget`. Returns the positions of the messages whose
/// every bundle is now acknowledged, and the outcome for the others.
///
/// The cut is deterministic: the same ADU and MTU give the same bundles
/// with the same id (the batch's creation time and a sequence number from
/// the batch id and the ADU's digest), so the far side reassembles
/// fragments sent in different attempts, and a changed ADU starts over
/// under a new id.
pub(super) fn send_bundles(
    stages: &GatewayStages,
    metrics: &Metrics,
    route: &crate::config::Route,
    bp: &crate::config::BpRoute,
    batch: &BundleBatch<'_>,
    adus: Vec<(Vec<u8>, Duration)>,
) -> (Vec<usize>, Attempt) {
    use std::sync::atomic::Ordering::Relaxed;
    let Some(fragmenter) = &stages.fragmenter else {
        return (
            Vec::new(),
            Attempt::Permanent("no fragmenter loaded ([bp] missing)".into()),
        );
    };
    let crc = if bp.crc == "crc16" {
        CrcType::Crc16
    } else {
        CrcType::Crc32c
    };
    // Each ADU's bundles and what of them crossed before.
    let mut all: Vec<(Vec<Vec<u8>>, BundleProgress)> = Vec::with_capacity(adus.len());
    for (adu, lifetime) in adus {
        let adu_sha256 = hex::encode(ring::digest::digest(&ring::digest::SHA256, &adu).as_ref());
        let spec = BundleSpec {
            source: stages.node_id().to_string(),
            destination: bp.destination.clone(),
            report_to: "dtn:none".into(),
            creation_time: dtn_ms(batch.created_ms),
            sequence_number: sequence_of(&format!("{}/{adu_sha256}", batch.id)),
            lifetime_ms: lifetime.as_millis() as u64,
            crc,
            block_crc: crc,
            must_not_fragment: false,
        };
        let built = match &bp.bib {
            None => fragmenter.fragment_adu(&adu, &spec, bp.mtu),
            Some(bib) => fragmenter.fragment_adu_signed(
                &adu,
                &spec,
                bp.mtu,
                &BibKey {
                    source: stages.node_id().to_string(),
                    key: bib.key.0.clone(),
                },
                wit_variant(bib.variant),
            ),
        };
        let bundles = match built {
            Ok(b) => b,
            Err(e) => {
                return (
                    Vec::new(),
                    Attempt::Permanent(format!("the fragmenter cannot build the bundles: {e}")),
                )
            }
        };
        let count = bundles.len() as u32;
        let bytes: u64 = bundles.iter().map(|b| b.len() as u64).sum();
        let progress = batch
            .sent
            .iter()
            .find(|p| p.adu_sha256 == adu_sha256 && p.bundles == count && p.bytes == bytes)
            .cloned()
            .unwrap_or(BundleProgress {
                adu_sha256,
                bundles: count,
                bytes,
                acknowledged: Vec::new(),
                acknowledged_bytes: 0,
            });
        all.push((bundles, progress));
    }
    let total: usize = all.iter().map(|(b, _)| b.len()).sum();
    let crossed_before: usize = all.iter().map(|(_, p)| p.acknowledged.len()).sum();
    // The bundles still to cross, in order, as many as the window takes:
    // (ADU, bundle) of each.
    let mut chosen: Vec<(usize, u32)> = Vec::new();
    let mut payload: Vec<Vec<u8>> = Vec::new();
    let mut used = 0u64;
    let mut window_full = false;
    'adus: for (a, (bundles, progress)) in all.iter_mut().enumerate() {
        let crossed: HashSet<u32> = progress.acknowledged.iter().copied().collect();
        for (i, bundle) in std::mem::take(bundles).into_iter().enumerate() {
            let i = i as u32;
            if crossed.contains(&i) {
                continue;
            }
            if batch.budget.is_some_and(|b| used + bundle.len() as u64 > b) {
                window_full = true;
                break 'adus;
            }
            used += bundle.len() as u64;
            chosen.push((a, i));
            payload.push(bundle);
        }
    }
    // Messages left unencoded because the window had no room for them.
    if all.len() < batch.members {
        window_full = true;
    }
    let progress_of = |all: Vec<(Vec<Vec<u8>>, BundleProgress)>| -> Vec<BundleProgress> {
        all.into_iter()
            .map(|(_, p)| p)
            .filter(|p| !p.acknowledged.is_empty())
            .collect()
    };
    if chosen.is_empty() {
        return (
            Vec::new(),
            Attempt::Unfinished {
                why: "no further bundle fits what is left of the window".into(),
                progress: progress_of(all),
                window_full: true,
            },
        );
    }
    let sizes: Vec<u64> = payload.iter().map(|b| b.len() as u64).collect();
    let hop = format!("tcpcl://{}", bp.tcpcl);
    let sender = match stages.bp_sender(route) {
        Ok(s) => s,
        Err(e) => return (Vec::new(), Attempt::Temporary(e.to_string())),
    };
    metrics.bundles_sent.fetch_add(chosen.len() as u64, Relaxed);
    metrics.bundle_bytes_sent.fetch_add(used, Relaxed);
    let sent = chosen.len();
    let (outcome, acknowledged) =
        match sender.send_tracked(&hop, batch.id, Payload::Bundles(payload)) {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Attempt::Temporary(format!("{hop}: {e}"))),
        };
    // Which of the chosen bundles crossed: the plugin says, or (a sender
    // without `sender-progress`) all of them when delivered, none if not.
    let took: Vec<usize> = match (&outcome, acknowledged) {
        (_, Some(positions)) => positions
            .into_iter()
            .map(|p| p as usize)
            .filter(|p| *p < sent)
            .collect(),
        (Outcome::Delivered(_), None) => (0..sent).collect(),
        (_, None) => Vec::new(),
    };
    metrics
        .bundles_acknowledged
        .fetch_add(took.len() as u64, Relaxed);
    for p in &took {
        let (a, i) = chosen[*p];
        let progress = &mut all[a].1;
        progress.acknowledged.push(i);
        progress.acknowledged_bytes += sizes[*p];
    }
    let mut done = Vec::new();
    for (a, (_, p)) in all.iter_mut().enumerate() {
        p.acknowledged.sort_unstable();
        p.acknowledged.dedup();
        if p.acknowledged.len() as u32 == p.bundles {
            done.push(a);
        }
    }
    let messages = batch.members;
    let crossed_now: usize = all.iter().map(|(_, p)| p.acknowledged.len()).sum();
    let attempt = match outcome {
        Outcome::PermanentFailure(said) if done.len() < messages => {
            Attempt::Permanent(format!("{hop} refused the bundles: {said}"))
        }
        _ if done.len() == messages => Attempt::Delivered(format!(
            "{hop}: {total} bundle(s) of {messages} message(s) to {}{}",
            bp.destination,
            if crossed_before == 0 {
                String::new()
            } else {
                format!(" ({crossed_before} of them in earlier attempts)")
            }
        )),
        Outcome::Delivered(said) | Outcome::PermanentFailure(said) => Attempt::Unfinished {
            why: format!(
                "{crossed_now} of {total} bundle(s) acknowledged, the rest when the window has room: {said}"
            ),
            progress: progress_of(all),
            window_full,
        },
        Outcome::TemporaryFailure(said) if crossed_now > crossed_before => Attempt::Unfinished {
            why: format!("{hop}: {said}"),
            progress: progress_of(all),
            window_full: false,
        },
        Outcome::TemporaryFailure(said) => Attempt::Temporary(format!("{hop}: {said}")),
    };
    (done, attempt)
}
