//! The sender stage as the host calls it: a plugin exporting
//! `deepmail:stages/sender`, with exactly the network access its next hop
//! needs.

use std::sync::Arc;

use crate::bindings::deepmail::stages::types;
use crate::bindings::exports::deepmail::stages::sender::{self, Delivery, Outcome, Payload};
use crate::bindings::exports::deepmail::stages::sender_progress;
use crate::bindings::exports::deepmail::stages::sender_sessions;
use crate::engine::Host;
use crate::error::{LoadError, StageError};
use crate::plugin::{LoadedPlugin, NetworkGrant, PluginInfo, PluginSource, Stage};

/// A loaded sender plugin with its settings. Cheap to clone.
#[derive(Clone)]
pub struct Sender {
    plugin: Arc<LoadedPlugin>,
    indices: Arc<sender::GuestIndices>,
    /// When the plugin exports `sender-sessions` (keeps connections open).
    sessions: Option<Arc<sender_sessions::GuestIndices>>,
    /// When the plugin exports `sender-progress` (says which bundles the
    /// far side acknowledged).
    progress: Option<Arc<sender_progress::GuestIndices>>,
    config: Vec<(String, String)>,
}

impl Sender {
    /// Loads `source` as the sender stage with `config` (key/value settings
    /// passed on every delivery) and the sockets it may use (`None`: none;
    /// plugins that speak HTTP through `wasi:http` need none).
    pub fn load(
        host: &Host,
        source: &PluginSource,
        config: Vec<(String, String)>,
        network: Option<NetworkGrant>,
    ) -> Result<Sender, LoadError> {
        let plugin = host.load(source, Stage::Sender, network)?;
        let indices =
            sender::GuestIndices::new(plugin.instance_pre()).map_err(|e| LoadError::Link {
                plugin: plugin.label().to_string(),
                detail: format!("{e:#}"),
            })?;
        let sessions = plugin
            .exports_interface("sender-sessions")
            .then(|| sender_sessions::GuestIndices::new(plugin.instance_pre()))
            .transpose()
            .map_err(|e| LoadError::Link {
                plugin: plugin.label().to_string(),
                detail: format!("{e:#}"),
            })?
            .map(Arc::new);
        let progress = plugin
            .exports_interface("sender-progress")
            .then(|| sender_progress::GuestIndices::new(plugin.instance_pre()))
            .transpose()
            .map_err(|e| LoadError::Link {
                plugin: plugin.label().to_string(),
                detail: format!("{e:#}"),
            })?
            .map(Arc::new);
        Ok(Sender {
            plugin,
            indices: Arc::new(indices),
            sessions,
            progress,
            config,
        })
    }

    /// What the plugin is.
    pub fn info(&self) -> &PluginInfo {
        &self.plugin.info
    }

    /// Whether the plugin keeps connections open between deliveries (it
    /// exports `sender-sessions`); then call [`Sender::maintain`] about
    /// once a second, and with `closing` before dropping the sender.
    pub fn keeps_sessions(&self) -> bool {
        self.sessions.is_some()
    }

    /// Lets every idle instance of the plugin service its open
    /// connections (read what peers sent, send keepalives, close what
    /// idled too long), or close them all when `closing`. Returns how
    /// many stay open; 0 for plugins without `sender-sessions`. Runs the
    /// plugin, so call it off the async executor.
    pub fn maintain(&self, closing: bool) -> u32 {
        let Some(sessions) = &self.sessions else {
            return 0;
        };
        self.plugin.for_each_pooled(|store, instance| {
            sessions
                .load(&mut *store, instance)?
                .call_maintain(&mut *store, closing)
        })
    }

    /// Whether the plugin says which bundles the far side acknowledged (it
    /// exports `sender-progress`); [`Sender::send_tracked`] then reports them.
    pub fn tracks_progress(&self) -> bool {
        self.progress.is_some()
    }

    /// Delivers `payload` to `next_hop`, keyed by `idempotency_key` so the
    /// receiver can deduplicate retries.
    pub fn send(
        &self,
        next_hop: &str,
        idempotency_key: &str,
        payload: Payload,
    ) -> Result<Outcome, StageError> {
        let delivery = self.delivery(next_hop, idempotency_key, payload);
        let result = self.plugin.call(|store, instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_send(&mut *store, &delivery)
        })?;
        result.map_err(|e| self.stage_error(e))
    }

    /// Like [`Sender::send`], and which of the bundles (0-based positions,
    /// ascending) the far side acknowledged: `None` when the plugin does
    /// not say (no `sender-progress`), so only `Delivered` tells.
    pub fn send_tracked(
        &self,
        next_hop: &str,
        idempotency_key: &str,
        payload: Payload,
    ) -> Result<(Outcome, Option<Vec<u32>>), StageError> {
        let Some(progress) = &self.progress else {
            return self
                .send(next_hop, idempotency_key, payload)
                .map(|o| (o, None));
        };
        let delivery = self.delivery(next_hop, idempotency_key, payload);
        let result = self.plugin.call(|store, instance| {
            progress
                .load(&mut *store, instance)?
                .call_send_tracked(&mut *store, &delivery)
        })?;
        let report = result.map_err(|e| self.stage_error(e))?;
        let mut acknowledged = report.acknowledged;
        acknowledged.sort_unstable();
        acknowledged.dedup();
        Ok((report.outcome, Some(acknowledged)))
    }

    fn delivery(&self, next_hop: &str, idempotency_key: &str, payload: Payload) -> Delivery {
        Delivery {
            next_hop: next_hop.to_string(),
            idempotency_key: idempotency_key.to_string(),
            payload,
            config: self.config.clone(),
        }
    }

    fn stage_error(&self, e: types::StageError) -> StageError {
        StageError {
            code: e.code,
            message: e.message,
            offset: e.offset,
            plugin: self.plugin.label().to_string(),
        }
    }
}
