//! The fragmenter stage as the host calls it: a plugin exporting
//! `deepmail:stages/fragmenter`, including its stateful `reassembler`
//! resource, which lives in an instance of its own, and optionally
//! `deepmail:stages/bpsec` (BIB signing and verification).

use std::sync::Arc;

use wasmtime::component::ResourceAny;

use crate::bindings::deepmail::stages::types;
use crate::bindings::exports::deepmail::stages::bpsec::{self, BibCheck, BibKey, ShaVariant};
use crate::bindings::exports::deepmail::stages::fragmenter::{
    self, BundleId, BundleInfo, BundleSpec, DeliveredAdu, PendingStats, ReassemblyLimits,
};
use crate::engine::Host;
use crate::error::{LoadError, StageError};
use crate::plugin::{Live, LoadedPlugin, PluginInfo, PluginSource, Stage};

/// A loaded fragmenter plugin. Cheap to clone.
#[derive(Clone)]
pub struct Fragmenter {
    plugin: Arc<LoadedPlugin>,
    indices: Arc<fragmenter::GuestIndices>,
    bpsec: Option<Arc<bpsec::GuestIndices>>,
}

fn to_stage_error(plugin: &LoadedPlugin, e: types::StageError) -> StageError {
    StageError {
        code: e.code,
        message: e.message,
        offset: e.offset,
        plugin: plugin.label().to_string(),
    }
}

impl Fragmenter {
    /// Loads `source` as the fragmenter stage.
    pub fn load(host: &Host, source: &PluginSource) -> Result<Fragmenter, LoadError> {
        let plugin = host.load(source, Stage::Fragmenter, None)?;
        let link = |e: wasmtime::Error| LoadError::Link {
            plugin: plugin.label().to_string(),
            detail: format!("{e:#}"),
        };
        let indices = fragmenter::GuestIndices::new(plugin.instance_pre()).map_err(link)?;
        let bpsec = if plugin.exports_interface("bpsec") {
            Some(Arc::new(
                bpsec::GuestIndices::new(plugin.instance_pre()).map_err(link)?,
            ))
        } else {
            None
        };
        Ok(Fragmenter {
            plugin,
            indices: Arc::new(indices),
            bpsec,
        })
    }

    /// Whether the plugin exports `bpsec` (BIB signing and verification).
    pub fn has_bpsec(&self) -> bool {
        self.bpsec.is_some()
    }

    fn bpsec(&self) -> Result<&Arc<bpsec::GuestIndices>, StageError> {
        self.bpsec.as_ref().ok_or_else(|| StageError {
            code: "unsupported-security-context".into(),
            message: "this fragmenter plugin does not export deepmail:stages/bpsec, so it cannot sign or verify bundles; use builtin:bp7-fragmenter".into(),
            offset: None,
            plugin: self.plugin.label().to_string(),
        })
    }

    /// Adds a BIB over the payload block, signed with `key`.
    pub fn add_bib(
        &self,
        bundle: &[u8],
        key: &BibKey,
        variant: ShaVariant,
    ) -> Result<Vec<u8>, StageError> {
        let indices = self.bpsec()?;
        let r = self.plugin.call(|store, instance| {
            indices
                .load(&mut *store, instance)?
                .call_add_bib(&mut *store, bundle, key, variant)
        })?;
        r.map_err(|e| to_stage_error(&self.plugin, e))
    }

    /// Builds and fragments the bundle for `adu`, each bundle with its own
    /// BIB and at most `mtu` bytes.
    pub fn fragment_adu_signed(
        &self,
        adu: &[u8],
        spec: &BundleSpec,
        mtu: u64,
        key: &BibKey,
        variant: ShaVariant,
    ) -> Result<Vec<Vec<u8>>, StageError> {
        let indices = self.bpsec()?;
        let r = self.plugin.call(|store, instance| {
            indices
                .load(&mut *store, instance)?
                .call_fragment_adu_signed(&mut *store, adu, spec, mtu, key, variant)
        })?;
        r.map_err(|e| to_stage_error(&self.plugin, e))
    }

    /// Verifies the BIBs of `bundle` (see the WIT `verify-bibs`).
    pub fn verify_bibs(
        &self,
        bundle: &[u8],
        keys: &[BibKey],
        require: bool,
        lenient: bool,
    ) -> Result<Vec<BibCheck>, StageError> {
        let indices = self.bpsec()?;
        let r = self.plugin.call(|store, instance| {
            indices.load(&mut *store, instance)?.call_verify_bibs(
                &mut *store,
                bundle,
                keys,
                require,
                lenient,
            )
        })?;
        r.map_err(|e| to_stage_error(&self.plugin, e))
    }

    /// What the plugin is.
    pub fn info(&self) -> &PluginInfo {
        &self.plugin.info
    }

    /// Builds one (unfragmented) bundle carrying `adu`.
    pub fn build(&self, adu: &[u8], spec: &BundleSpec) -> Result<Vec<u8>, StageError> {
        let r = self.plugin.call(|store, instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_build(&mut *store, adu, spec)
        })?;
        r.map_err(|e| to_stage_error(&self.plugin, e))
    }

    /// Builds the bundle for `adu` and fragments it to `mtu`.
    pub fn fragment_adu(
        &self,
        adu: &[u8],
        spec: &BundleSpec,
        mtu: u64,
    ) -> Result<Vec<Vec<u8>>, StageError> {
        let r = self.plugin.call(|store, instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_fragment_adu(&mut *store, adu, spec, mtu)
        })?;
        r.map_err(|e| to_stage_error(&self.plugin, e))
    }

    /// Fragments an existing bundle to `mtu`.
    pub fn fragment(&self, bundle: &[u8], mtu: u64) -> Result<Vec<Vec<u8>>, StageError> {
        let r = self.plugin.call(|store, instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_fragment(&mut *store, bundle, mtu)
        })?;
        r.map_err(|e| to_stage_error(&self.plugin, e))
    }

    /// Parses and validates a bundle.
    pub fn inspect(&self, bundle: &[u8]) -> Result<BundleInfo, StageError> {
        let r = self.plugin.call(|store, instance| {
            self.indices
                .load(&mut *store, instance)?
                .call_inspect(&mut *store, bundle)
        })?;
        r.map_err(|e| to_stage_error(&self.plugin, e))
    }

    /// Starts a reassembler in an instance of its own.
    pub fn reassembler(&self, limits: ReassemblyLimits) -> Result<ReassemblerSession, StageError> {
        let mut live = self.plugin.checkout()?;
        let indices = self.indices.clone();
        let resource = self.plugin.run(&mut live, |store, instance| {
            indices
                .load(&mut *store, instance)?
                .reassembler()
                .call_constructor(&mut *store, limits)
        })?;
        Ok(ReassemblerSession {
            plugin: self.plugin.clone(),
            indices,
            live: Some(live),
            resource,
        })
    }
}

/// A `reassembler` resource living in a plugin instance of its own for the
/// session's lifetime (taken from the pool, returned to it when the session
/// ends cleanly). If the plugin traps, the session is lost (its partial ADUs
/// with it) and every later call says so; start a new session.
pub struct ReassemblerSession {
    plugin: Arc<LoadedPlugin>,
    indices: Arc<fragmenter::GuestIndices>,
    live: Option<Live>,
    resource: ResourceAny,
}

impl ReassemblerSession {
    fn with<R>(
        &mut self,
        f: impl FnOnce(
            &fragmenter::Guest,
            &mut wasmtime::Store<crate::plugin::StoreState>,
            ResourceAny,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, StageError> {
        let Some(live) = self.live.as_mut() else {
            return Err(StageError {
                code: "plugin-failed".into(),
                message: "this reassembler's plugin instance failed earlier and its state is gone; start a new reassembler".into(),
                offset: None,
                plugin: self.plugin.label().to_string(),
            });
        };
        let indices = self.indices.clone();
        let resource = self.resource;
        let result = self.plugin.run(live, |store, instance| {
            let guest = indices.load(&mut *store, instance)?;
            f(&guest, store, resource)
        });
        if result.is_err() {
            self.live = None;
        }
        result
    }

    /// Pushes one bundle received at DTN time `now` (ms since 2000).
    pub fn push(&mut self, bundle: &[u8], now: u64) -> Result<Option<DeliveredAdu>, StageError> {
        let r = self.with(|g, store, res| g.reassembler().call_push(store, res, bundle, now))?;
        r.map_err(|e| to_stage_error(&self.plugin, e))
    }

    /// Drops incomplete ADUs whose lifetime ended before `now`.
    pub fn expire(&mut self, now: u64) -> Result<Vec<BundleId>, StageError> {
        self.with(|g, store, res| g.reassembler().call_expire(store, res, now))
    }

    /// What the reassembler holds.
    pub fn pending(&mut self) -> Result<PendingStats, StageError> {
        self.with(|g, store, res| g.reassembler().call_pending(store, res))
    }
}

impl Drop for ReassemblerSession {
    fn drop(&mut self) {
        // Free the guest's state, then lend the instance to the next caller
        // (it is clean: every call on it succeeded).
        if let Some(mut live) = self.live.take() {
            if self.resource.resource_drop(&mut live.store).is_ok() {
                self.plugin.checkin(live);
            }
        }
    }
}
