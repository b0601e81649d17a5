//! The shared engine: one wasmtime [`Engine`] for every plugin, an epoch
//! ticker that bounds call time, and the compiled-component caches.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine};

use crate::error::{HostError, LoadError};
use crate::plugin::{LoadedPlugin, NetworkGrant, PluginSource, Stage, StoreState};

/// Epoch tick; call deadlines are rounded up to whole ticks.
const TICK: Duration = Duration::from_millis(5);

/// Limits and caching for every plugin call.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Linear memory a plugin instance may grow to, in bytes.
    pub memory_limit_bytes: usize,
    /// Wall-clock time one call may take.
    pub call_timeout: Duration,
    /// Where compiled components are cached between runs; `None` disables
    /// the disk cache (components are then compiled once per process).
    pub cache_dir: Option<PathBuf>,
    /// Clean instances kept for reuse per plugin.
    pub pool_size: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            memory_limit_bytes: 1 << 30,
            call_timeout: Duration::from_secs(30),
            cache_dir: default_cache_dir(),
            pool_size: 4,
        }
    }
}

/// `$DEEPMAIL_CACHE_DIR`, else `$XDG_CACHE_HOME/deepmail`, else
/// `~/.cache/deepmail`; `DEEPMAIL_CACHE_DIR=off` disables it.
pub(crate) fn default_cache_dir() -> Option<PathBuf> {
    match std::env::var_os("DEEPMAIL_CACHE_DIR") {
        Some(v) if v == "off" => None,
        Some(v) if !v.is_empty() => Some(PathBuf::from(v)),
        _ => std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("deepmail")),
    }
}

/// A plugin loaded for a stage with a given network grant.
type LoadKey = (PluginSource, Stage, Option<NetworkGrant>);

/// The plugin host. Cheap to clone; clones share the engine and caches.
#[derive(Clone)]
pub struct Host {
    pub(crate) inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreState>,
    pub(crate) config: HostConfig,
    pub(crate) deadline_ticks: u64,
    loaded: Mutex<HashMap<LoadKey, Arc<LoadedPlugin>>>,
    compiled: Mutex<HashMap<PluginSource, (Component, usize)>>,
}

impl Host {
    /// Creates the engine, the WASI-linked linker and the epoch ticker.
    pub fn new(config: HostConfig) -> Result<Host, HostError> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true);
        wasm.epoch_interruption(true);
        let engine =
            Engine::new(&wasm).map_err(|e| HostError::new("create the wasmtime engine", e))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .map_err(|e| HostError::new("link WASI into the host", e))?;
        // Every plugin may import wasi:http; only a granted one gets an answer.
        wasmtime_wasi_http::p2::add_only_http_to_linker_sync(&mut linker)
            .map_err(|e| HostError::new("link wasi:http into the host", e))?;
        link_host_checksum(&mut linker)
            .map_err(|e| HostError::new("link host-checksum into the host", e))?;
        start_epoch_ticker(&engine);
        let ticks = config
            .call_timeout
            .as_nanos()
            .div_ceil(TICK.as_nanos())
            .max(1);
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                linker,
                deadline_ticks: u64::try_from(ticks).unwrap_or(u64::MAX),
                config,
                loaded: Mutex::new(HashMap::new()),
                compiled: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The configuration this host runs with.
    pub fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    /// Compiles `source` now (through the disk cache), so that loading it
    /// later, with whatever network grant, only instantiates it: a gateway
    /// prepares its senders at start, and its first message does not wait
    /// for a compiler.
    pub fn prepare(&self, source: &PluginSource) -> Result<(), LoadError> {
        self.compiled_component(source).map(|_| ())
    }

    fn compiled_component(&self, source: &PluginSource) -> Result<(Component, usize), LoadError> {
        let cached = self
            .inner
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(source)
            .cloned();
        if let Some(c) = cached {
            return Ok(c);
        }
        let bytes = source.bytes()?;
        let component = self.compile(source, &bytes)?;
        let entry = (component, bytes.len());
        self.inner
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(source.clone(), entry.clone());
        Ok(entry)
    }

    /// Loads (once) the plugin `source` as the `stage` stage, with the
    /// network access in `network` (none when `None`).
    pub(crate) fn load(
        &self,
        source: &PluginSource,
        stage: Stage,
        network: Option<NetworkGrant>,
    ) -> Result<Arc<LoadedPlugin>, LoadError> {
        let key = (source.clone(), stage, network.clone());
        if let Some(p) = self
            .inner
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(p.clone());
        }
        let (component, size) = self.compiled_component(source)?;
        let plugin = Arc::new(LoadedPlugin::new(
            self,
            source.clone(),
            stage,
            component,
            size,
            network,
        )?);
        self.inner
            .loaded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, plugin.clone());
        Ok(plugin)
    }

    /// Compiles a component, through the disk cache when there is one.
    fn compile(&self, source: &PluginSource, bytes: &[u8]) -> Result<Component, LoadError> {
        let engine = &self.inner.engine;
        let compile_error = |e: wasmtime::Error| LoadError::Compile {
            plugin: source.to_string(),
            detail: format!("{e:#}"),
        };
        let Some(dir) = self.inner.config.cache_dir.as_ref() else {
            return Component::new(engine, bytes).map_err(compile_error);
        };
        let path = dir.join(format!("{}.cwasm", cache_key(engine, bytes)));
        if path.is_file() {
            // SAFETY: the file was written by `precompile_component` of an
            // engine with the same compatibility hash (it is in the file
            // name) into the user's own cache directory.
            if let Ok(component) = unsafe { Component::deserialize_file(engine, &path) } {
                return Ok(component);
            }
        }
        let compiled = engine.precompile_component(bytes).map_err(compile_error)?;
        // The cache is an optimisation: failing to write it is not an error.
        if std::fs::create_dir_all(dir).is_ok() {
            let tmp = path.with_extension(format!("tmp{}", std::process::id()));
            if std::fs::write(&tmp, &compiled).is_ok() && std::fs::rename(&tmp, &path).is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
        }
        // SAFETY: `compiled` was produced by `precompile_component` just now.
        unsafe { Component::deserialize(engine, &compiled) }.map_err(compile_error)
    }
}

/// The cache key of a component for this engine: SHA-256 of the engine's
/// compatibility hash and the component's bytes. The cached file is loaded
/// with `unsafe` deserialisation, so its name must never be shared by two
/// different components: a cryptographic hash, not `DefaultHasher`, whose
/// fixed keys let anyone craft a colliding plugin.
fn cache_key(engine: &Engine, bytes: &[u8]) -> String {
    let mut compat = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut compat);
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(b"deepmail component cache v2\0");
    ctx.update(&compat.finish().to_le_bytes());
    ctx.update(bytes);
    hex::encode(ctx.finish().as_ref())
}

/// Advances the engine's epoch every [`TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let _ = std::thread::Builder::new()
        .name("deepmail-epoch".into())
        .spawn(move || loop {
            std::thread::sleep(TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        });
}

/// `deepmail:stages/host-checksum`: CRC-32C over a list the plugin passes,
/// read in place in its memory (no copy), in hardware where the CPU has it.
/// Plugins that do not import it are unaffected.
fn link_host_checksum(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    use wasmtime::component::WasmList;
    let mut checksum = linker.instance("deepmail:stages/host-checksum@0.1.0")?;
    checksum.func_wrap(
        "crc32c",
        |store: wasmtime::StoreContextMut<'_, StoreState>, (state, data): (u32, WasmList<u8>)| {
            Ok((deepmail_bundle::crc32c_update(
                state,
                data.as_le_slice(&store),
            ),))
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_are_sha256_of_engine_and_bytes() {
        let engine = Engine::default();
        let a = cache_key(&engine, b"component a");
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(a, cache_key(&engine, b"component a"));
        assert_ne!(a, cache_key(&engine, b"component b"));
    }
}
