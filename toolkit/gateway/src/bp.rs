//! The gateway as a Bundle Protocol node: a TCPCLv4 listener (RFC 9174)
//! that takes bundles for its mail endpoints (`ipn:N.25`, a `dtn:` EID),
//! reassembles fragments (RFC 9171 §5.9) with the fragmenter plugin,
//! decodes the ADU with the codec plugin and stores it in the spool, where
//! the inbound relay picks it up like any received batch.
//!
//! Nothing is acknowledged before it is durable: a fragment is written to
//! `SPOOL/fragments/<id>/` (fsync) before its final XFER_ACK, a complete
//! ADU is in `incoming/` before the last fragment's. At start, held
//! fragments are fed to the reassembler again, so partial ADUs survive a
//! restart; they expire at the bundle's lifetime, or once held longer than
//! `[bp] max-partial-age-hours` (a sender chooses its bundles' lifetime;
//! this cap is ours). Bundles for other
//! destinations, and bundles that do not parse, are refused
//! (`XFER_REFUSE` "not acceptable") and never stored.

use std::fs::{self, File};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use deepmail_host::types::{BibKey, DecodeMode, DecodeOptions, ReassemblyLimits};
use deepmail_host::{Codec, Fragmenter, ReassemblerSession};
use deepmail_tcpcl::{BundleHandler, RefuseReason};
use tokio::sync::Notify;

use crate::config::BpConfig;
use crate::deliver::dtn_ms;
use crate::metrics::Metrics;
use crate::queue::now_ms;
use crate::spool::{self, BatchMeta, NewBatch, Spool, StoreOutcome};

/// The spool batch id of a bundle (the same for every fragment of an ADU
/// and on every retransmission): `bp-` and the first 32 hex digits of the
/// SHA-256 of "source creation-time sequence-number".
pub(crate) fn batch_id_of(source: &str, creation_time: u64, sequence_number: u64) -> String {
    let key = format!("{source} {creation_time} {sequence_number}");
    let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    format!("bp-{}", &hex::encode(digest.as_ref())[..32])
}

fn reassembly_limits(config: &BpConfig) -> ReassemblyLimits {
    ReassemblyLimits {
        max_adu_bytes: config.max_adu_bytes,
        max_pending_bytes: config.max_pending_bytes,
        max_pending_bundles: 100_000,
    }
}

/// When the first of a held ADU's fragments arrived: the oldest file's
/// modification time in its directory.
fn held_since(dir: &std::path::Path) -> Option<SystemTime> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
        .min()
}

/// Receives bundles for the gateway's endpoints.
pub struct BpInbound {
    config: BpConfig,
    spool: Arc<Spool>,
    codec: Codec,
    fragmenter: Fragmenter,
    reassembler: Mutex<ReassemblerSession>,
    fragments: PathBuf,
    /// Bytes of held fragments per partial ADU (batch id) and the peer
    /// address they came from, for the per-peer share of the store.
    /// Fragments re-read at start count for nobody.
    held_by_peer: Mutex<std::collections::HashMap<String, (std::net::IpAddr, u64)>>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
    /// `[bp.bib-keys]` in the form the fragmenter takes.
    bib_keys: Vec<BibKey>,
}

/// Why the BP listener's receiving side could not start.
#[derive(Debug, thiserror::Error)]
pub enum BpInboundError {
    /// The fragmenter plugin would not open a reassembler.
    #[error("the fragmenter's reassembler: {0}")]
    Reassembler(deepmail_host::StageError),
    /// The held fragments in the spool could not be read, or their
    /// directory made.
    #[error("held fragments in the spool: {0}")]
    Spool(std::io::Error),
}

// (Not `#[from]`: that would also make them the `source`, and an error
// chain printer would say the cause twice.)
impl From<deepmail_host::StageError> for BpInboundError {
    fn from(e: deepmail_host::StageError) -> Self {
        BpInboundError::Reassembler(e)
    }
}

impl From<std::io::Error> for BpInboundError {
    fn from(e: std::io::Error) -> Self {
        BpInboundError::Spool(e)
    }
}

impl BpInbound {
    /// The receiving node; feeds the fragments a previous run held to the
    /// reassembler again.
    pub fn new(
        config: BpConfig,
        spool: Arc<Spool>,
        codec: Codec,
        fragmenter: Fragmenter,
        metrics: Arc<Metrics>,
        wake: Arc<Notify>,
    ) -> Result<BpInbound, BpInboundError> {
        let reassembler = fragmenter.reassembler(reassembly_limits(&config))?;
        let fragments = spool.root().join("fragments");
        fs::create_dir_all(&fragments)?;
        let bib_keys = config
            .bib_keys
            .iter()
            .map(|(source, key)| BibKey {
                source: source.clone(),
                key: key.0.clone(),
            })
            .collect();
        let inbound = BpInbound {
            bib_keys,
            config,
            spool,
            codec,
            fragmenter,
            reassembler: Mutex::new(reassembler),
            fragments,
            held_by_peer: Mutex::default(),
            metrics,
            wake,
        };
        // Partial ADUs held past the age cap are not worth re-reading.
        inbound.drop_overage();
        inbound.reload()?;
        Ok(inbound)
    }

    /// Removes held partial ADUs older than `[bp] max-partial-age-hours`;
    /// how many.
    fn drop_overage(&self) -> usize {
        let Ok(dirs) = fs::read_dir(&self.fragments) else {
            return 0;
        };
        let now = SystemTime::now();
        let mut dropped = 0;
        for dir in dirs.flatten() {
            let dir = dir.path();
            let age = held_since(&dir).and_then(|t| now.duration_since(t).ok());
            if age.is_some_and(|age| age > self.config.max_partial_age) {
                if let Some(batch) = dir.file_name().and_then(|n| n.to_str()) {
                    self.forget_held(batch);
                }
                tracing::warn!(stage = "bp", held = %dir.display(), max_hours = self.config.max_partial_age.as_secs_f64() / 3600.0, "incomplete ADU held longer than [bp] max-partial-age-hours; fragments dropped");
                if fs::remove_dir_all(&dir).is_ok() {
                    dropped += 1;
                }
            }
        }
        dropped
    }

    /// Feeds every held fragment to the reassembler (after a restart, or
    /// to rebuild it).
    fn reload(&self) -> Result<(), BpInboundError> {
        let mut held = 0;
        for dir in fs::read_dir(&self.fragments)? {
            let dir = dir?.path();
            let mut files: Vec<PathBuf> = fs::read_dir(&dir)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "bundle"))
                .collect();
            files.sort();
            for f in files {
                let bytes = fs::read(&f)?;
                held += 1;
                if let Err(e) = self.take(&bytes, "restart", None) {
                    tracing::warn!(stage = "bp", file = %f.display(), error = ?e, "held fragment no longer usable; dropped");
                    let _ = fs::remove_file(&f);
                }
            }
        }
        if held > 0 {
            tracing::info!(
                stage = "bp",
                fragments = held,
                "partial ADUs restored from the spool"
            );
        }
        Ok(())
    }

    /// Drops incomplete ADUs past their lifetime, and their held fragments.
    pub fn expire(&self) {
        let now = dtn_ms(now_ms());
        let expired = self
            .reassembler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .expire(now);
        match expired {
            Ok(ids) => {
                for id in ids {
                    let batch = batch_id_of(&id.source, id.creation_time, id.sequence_number);
                    tracing::warn!(stage = "bp", batch = %batch, source = %id.source, "incomplete ADU expired at its lifetime; fragments dropped");
                    let _ = fs::remove_dir_all(self.fragments.join(&batch));
                    self.forget_held(&batch);
                }
            }
            Err(e) => tracing::error!(stage = "bp", error = %e, "reassembler expiry failed"),
        }
        // The reassembler knows only the lifetime the bundles claim: ADUs
        // held past our own cap are dropped from disk, and the reassembler
        // is built again from what is still held.
        if self.drop_overage() > 0 {
            match self.fragmenter.reassembler(reassembly_limits(&self.config)) {
                Ok(fresh) => {
                    *self.reassembler.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                    if let Err(e) = self.reload() {
                        tracing::error!(stage = "bp", error = %e, "re-reading held fragments failed");
                    }
                }
                Err(e) => {
                    tracing::error!(stage = "bp", error = %e, "cannot rebuild the reassembler")
                }
            }
        }
    }

    /// One bundle: check, hold durably, reassemble, store. `Err` refuses.
    /// `from`: the peer's address for a bundle off the wire (held durably
    /// and counted against its quota); `None` for fragments re-read at
    /// start.
    fn take(
        &self,
        bytes: &[u8],
        peer: &str,
        from: Option<std::net::IpAddr>,
    ) -> Result<(), RefuseReason> {
        if from.is_some() {
            Metrics::inc(&self.metrics.bundles_received);
        }
        let repaired;
        let (bytes, info) = match self.fragmenter.inspect(bytes) {
            Ok(info) => (bytes, info),
            Err(e) if e.code == "missing-primary-crc" && self.config.accept_primary_without_crc => {
                repaired = with_primary_crc(bytes).ok_or_else(|| {
                    tracing::warn!(stage = "bp", peer, error = %e, "bundle refused: no primary CRC and it cannot be rebuilt (a fragment?)");
                    RefuseReason::NotAcceptable
                })?;
                tracing::info!(stage = "bp", peer, "bundle without a primary-block CRC taken ([bp] accept-primary-without-crc) and rebuilt with CRC-32C");
                let info = self.fragmenter.inspect(&repaired).map_err(|e| {
                    tracing::warn!(stage = "bp", peer, error = %e, "bundle refused: does not parse");
                    RefuseReason::NotAcceptable
                })?;
                (&repaired[..], info)
            }
            Err(e) => {
                tracing::warn!(stage = "bp", peer, error = %e, "bundle refused: does not parse");
                return Err(RefuseReason::NotAcceptable);
            }
        };
        if !self.config.endpoints.contains(&info.destination) {
            tracing::warn!(stage = "bp", peer, destination = %info.destination, endpoints = ?self.config.endpoints, "bundle refused: not for this node's mail endpoints");
            return Err(RefuseReason::NotAcceptable);
        }
        if from.is_some() && (self.config.require_bib || !self.config.bib_keys.is_empty()) {
            // Authenticate before anything is stored: a bundle without a
            // valid BIB from a known key costs the sender one refusal and
            // us no disk.
            match self
                .fragmenter
                .verify_bibs(bytes, &self.bib_keys, self.config.require_bib, false)
            {
                Ok(checks) => {
                    for c in checks.iter().filter(|c| c.verified) {
                        tracing::debug!(stage = "bp", peer, bib = c.block_number, source = %c.source, targets = ?c.targets, "BIB verified");
                    }
                }
                Err(e) => {
                    self.metrics
                        .bp_bib_refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(stage = "bp", peer, source = %info.source, error = %e, "bundle refused: block integrity check failed");
                    return Err(RefuseReason::NotAcceptable);
                }
            }
        }
        let batch = batch_id_of(&info.source, info.creation_time, info.sequence_number);
        if self.spool.contains(&batch) {
            // A retransmission of an ADU already stored or relayed.
            return Ok(());
        }
        let held_dir = self.fragments.join(&batch);
        // The file this fragment is held in, when this call created it.
        let mut new_file = None;
        if let (Some(ip), true) = (from, info.is_fragment) {
            let len = bytes.len() as u64;
            {
                // One peer address may hold at most its share of the store,
                // so whoever fills it cannot starve the others.
                let held = self.held_by_peer.lock().unwrap_or_else(|e| e.into_inner());
                let used: u64 = held
                    .values()
                    .filter(|(p, _)| *p == ip)
                    .map(|(_, n)| n)
                    .sum();
                if used + len > self.config.max_pending_per_peer_bytes {
                    tracing::warn!(stage = "bp", peer, address = %ip, held = used, limit = self.config.max_pending_per_peer_bytes, "fragment refused for now: this peer's share of the reassembly store is full (NoResources)");
                    return Err(RefuseReason::NoResources);
                }
            }
            let name = format!(
                "{:020}-{:020}.bundle",
                info.fragment_offset.unwrap_or(0),
                info.payload_length
            );
            let path = held_dir.join(name);
            let existed = path.exists();
            let stored = fs::create_dir_all(&held_dir)
                .and_then(|()| crate::spool::overwrite_synced(&path, bytes))
                .and_then(|()| File::open(&held_dir)?.sync_all())
                .and_then(|()| File::open(&self.fragments)?.sync_all());
            if let Err(e) = stored {
                tracing::error!(stage = "bp", batch = %batch, error = %e, "cannot hold the fragment; refusing it for now");
                return Err(RefuseReason::NoResources);
            }
            if !existed {
                new_file = Some(path);
                let mut held = self.held_by_peer.lock().unwrap_or_else(|e| e.into_inner());
                held.entry(batch.clone()).or_insert((ip, 0)).1 += len;
            }
        }
        let delivered = self
            .reassembler
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(bytes, dtn_ms(now_ms()));
        let adu = match delivered {
            Ok(Some(adu)) => adu,
            Ok(None) => return Ok(()),
            Err(e) => {
                // Not held after all: drop this fragment's file only (the
                // ADU's other fragments were acknowledged and must stay).
                if let Some(path) = &new_file {
                    let _ = fs::remove_file(path);
                    let _ = fs::remove_dir(&held_dir); // only if now empty
                    let mut held = self.held_by_peer.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(entry) = held.get_mut(&batch) {
                        entry.1 = entry.1.saturating_sub(bytes.len() as u64);
                        if entry.1 == 0 {
                            held.remove(&batch);
                        }
                    }
                }
                // A full reassembly store is a temporary condition: the
                // sender must retry later, not return real mail for good
                // because someone else filled the store. Only an ADU that
                // could never fit, or a bundle that is wrong, is refused
                // for good.
                let adu_fits = info.total_adu_length.unwrap_or(info.payload_length)
                    <= self.config.max_adu_bytes;
                if e.code == "limit-exceeded" && adu_fits {
                    tracing::warn!(stage = "bp", peer, batch = %batch, error = %e, "reassembly store full; fragment refused for now (NoResources: the sender retries)");
                    return Err(RefuseReason::NoResources);
                }
                tracing::warn!(stage = "bp", peer, batch = %batch, error = %e, "bundle refused by the reassembler");
                return Err(RefuseReason::NotAcceptable);
            }
        };
        // A gzip payload (magic 1f 8b; Batch SMTP starts with an ASCII
        // command): decompressed within the ADU limit and 100:1.
        let plain = if crate::compress::is_gzip(&adu.adu) {
            if self.config.accept_compressed {
                crate::compress::gunzip(&adu.adu, self.config.max_adu_bytes)
                    .map(std::borrow::Cow::Owned)
                    .map_err(|e| e.to_string())
            } else {
                Err("a gzip-compressed payload, and [bp] accept-compressed = false".to_string())
            }
        } else {
            Ok(std::borrow::Cow::Borrowed(&adu.adu[..]))
        };
        let decoded = plain.and_then(|plain| {
            self.codec
                .decode(
                    &plain,
                    DecodeOptions {
                        mode: DecodeMode::Strict,
                    },
                )
                .map(|m| (m, plain.into_owned()))
                .map_err(|e| e.to_string())
        });
        let (messages, plain) = match decoded {
            Ok(m) => m,
            Err(e) => {
                // The sender was told "accepted" for earlier fragments: keep it.
                tracing::error!(stage = "bp", batch = %batch, error = %e, "ADU is not Batch SMTP (or not a payload taken here); kept in dead-letter/, nothing spooled");
                let dead = self.spool.root().join("dead-letter").join(&batch);
                let _ = fs::create_dir_all(&dead)
                    .and_then(|()| crate::spool::overwrite_synced(&dead.join("adu.bin"), &adu.adu))
                    .and_then(|()| {
                        crate::spool::overwrite_synced(
                            &dead.join("reason.txt"),
                            format!("{e}\n").as_bytes(),
                        )
                    });
                Metrics::inc(&self.metrics.dead_letters);
                let _ = fs::remove_dir_all(&held_dir);
                self.forget_held(&batch);
                return Ok(());
            }
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, &plain);
        let meta = BatchMeta {
            batch_id: batch.clone(),
            received_at: spool::rfc3339(SystemTime::now()),
            peer: peer.to_string(),
            identity: adu.source.clone(),
            transport: "bp".into(),
            messages: messages.len(),
            bytes: adu.adu.len() as u64,
            sha256: hex::encode(digest.as_ref()),
        };
        let outcome = self.spool.store(&NewBatch {
            meta,
            raw: &plain,
            messages: &messages,
        });
        match outcome {
            Ok(StoreOutcome::Stored) => {
                Metrics::inc(&self.metrics.batches_received);
                Metrics::stamp(&self.metrics.last_batch_received_unix_us);
                self.metrics
                    .messages_received
                    .fetch_add(messages.len() as u64, std::sync::atomic::Ordering::Relaxed);
                tracing::info!(stage = "bp", peer, batch = %batch, source = %adu.source, fragments = adu.fragments, bytes = adu.adu.len(), messages = messages.len(), "ADU reassembled and spooled");
                self.wake.notify_one();
            }
            Ok(StoreOutcome::Duplicate) => {}
            Ok(StoreOutcome::Conflict { stored_sha256 }) => {
                // Same bundle id (source, creation time, sequence) for other
                // bytes: the source node reused an id. Keep what is stored.
                tracing::error!(stage = "bp", peer, batch = %batch, source = %adu.source, stored_sha256, "a different ADU under an already stored bundle id: the source reused a bundle id; dropped");
            }
            Err(e) => {
                tracing::error!(stage = "bp", batch = %batch, error = %e, "cannot spool the ADU; refusing the bundle for now");
                return Err(RefuseReason::NoResources);
            }
        }
        let _ = fs::remove_dir_all(&held_dir);
        self.forget_held(&batch);
        Ok(())
    }

    /// The partial ADU `batch` is held no more.
    fn forget_held(&self, batch: &str) {
        self.held_by_peer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(batch);
    }
}

/// A whole bundle whose primary block lacks its CRC, rebuilt with CRC-32C
/// on the primary and payload blocks (same ids, lifetime and payload;
/// extension blocks such as hop count are dropped: we are the
/// destination). `None` for fragments and anything else that is wrong.
fn with_primary_crc(bytes: &[u8]) -> Option<Vec<u8>> {
    let bundle = deepmail_bundle::parse_allowing_missing_primary_crc(bytes).ok()?;
    let info = bundle.info();
    if info.is_fragment {
        return None;
    }
    let spec = deepmail_bundle::BundleSpec {
        source: info.source.clone(),
        destination: info.destination.clone(),
        report_to: info.report_to.clone(),
        creation_time: info.creation_time,
        sequence_number: info.sequence_number,
        lifetime_ms: info.lifetime_ms,
        crc: deepmail_bundle::CrcType::Crc32c,
        block_crc: deepmail_bundle::CrcType::Crc32c,
        must_not_fragment: info.must_not_fragment,
    };
    deepmail_bundle::build(bundle.payload(), &spec).ok()
}

/// The TCPCL handler: runs [`BpInbound::take`] off the async threads.
pub struct BpHandler(pub Arc<BpInbound>);

impl BundleHandler for BpHandler {
    async fn on_bundle(
        &self,
        peer: std::net::SocketAddr,
        peer_node_id: &str,
        bytes: Vec<u8>,
    ) -> Result<(), RefuseReason> {
        let inbound = self.0.clone();
        let node = peer_node_id.to_string();
        tokio::task::spawn_blocking(move || inbound.take(&bytes, &node, Some(peer.ip())))
            .await
            .unwrap_or(Err(RefuseReason::NoResources))
    }
}

/// Runs expiry every minute until `stop`.
pub(crate) async fn expire_loop(
    inbound: Arc<BpInbound>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let i = inbound.clone();
        let _ = tokio::task::spawn_blocking(move || i.expire()).await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn batch_ids_are_stable_and_valid() {
        let a = super::batch_id_of("ipn:1.0", 5, 7);
        assert_eq!(a, super::batch_id_of("ipn:1.0", 5, 7));
        assert_ne!(a, super::batch_id_of("ipn:1.0", 5, 8));
        assert!(crate::spool::is_valid_batch_id(&a));
        assert_eq!(a.len(), 35);
    }
}
