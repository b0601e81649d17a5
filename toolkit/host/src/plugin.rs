//! Loading one plugin for one stage, and running calls on its instances
//! under the host's limits.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, Instance, InstancePre, ResourceTable};
use wasmtime::{Engine, ResourceLimiter, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::bindings::exports::deepmail::stages::plugin_info;
use crate::engine::Host;
use crate::error::{LoadError, StageError};
use crate::http::{HttpGrant, HttpHooks, HttpPolicy};

/// The stages a plugin can serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// `policy`: accept, reject or defer senders, recipients and messages
    /// before anything leaves Earth.
    Policy,
    /// `bsmtp-codec`: messages <-> Batch SMTP bytes.
    Codec,
    /// `fragmenter`: ADU -> bundles <= MTU, bundles -> ADU.
    Fragmenter,
    /// `resolver`: mail domain -> next hops.
    Resolver,
    /// `sender`: deliver to a next hop.
    Sender,
}

impl Stage {
    /// Every stage, in pipeline order (the policy judges at ingress).
    pub const ALL: [Stage; 5] = [
        Stage::Policy,
        Stage::Codec,
        Stage::Fragmenter,
        Stage::Resolver,
        Stage::Sender,
    ];

    /// The name used on the command line (`--plugin codec=...`).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Policy => "policy",
            Stage::Codec => "codec",
            Stage::Fragmenter => "fragmenter",
            Stage::Resolver => "resolver",
            Stage::Sender => "sender",
        }
    }

    /// The WIT interface a plugin for this stage exports.
    pub fn interface(self) -> &'static str {
        match self {
            Stage::Policy => "policy",
            Stage::Codec => "bsmtp-codec",
            Stage::Fragmenter => "fragmenter",
            Stage::Resolver => "resolver",
            Stage::Sender => "sender",
        }
    }

    /// The WIT world a plugin for this stage implements.
    pub fn world(self) -> &'static str {
        match self {
            Stage::Policy => "policy-plugin",
            Stage::Codec => "codec-plugin",
            Stage::Fragmenter => "fragmenter-plugin",
            Stage::Resolver => "resolver-plugin",
            Stage::Sender => "sender-plugin",
        }
    }

    /// Fully qualified export name, e.g. `deepmail:stages/bsmtp-codec@0.1.0`.
    pub fn export_name(self) -> String {
        format!("deepmail:stages/{}@0.1.0", self.interface())
    }
}

/// Worlds that extend a stage's own with one more interface: a plugin that
/// exports it is labelled with the wider world, and the host binds the
/// extra interface when it is there.
const EXTENDED_WORLDS: [(Stage, &str, &str); 4] = [
    (Stage::Resolver, "dns-answer", "dns-resolver-plugin"),
    (Stage::Sender, "sender-progress", "bundle-sender-plugin"),
    (Stage::Sender, "sender-sessions", "session-sender-plugin"),
    (Stage::Fragmenter, "bpsec", "bpsec-fragmenter-plugin"),
];

/// Whether `exports` (a component's export names) include the
/// `deepmail:stages` interface `interface`, at any version.
fn exports_interface(exports: &[String], interface: &str) -> bool {
    let prefix = format!("deepmail:stages/{interface}@");
    exports.iter().any(|e| e.starts_with(&prefix))
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// A stage name [`Stage::from_str`](FromStr) does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage `{0}`; stages are policy, codec, fragmenter, resolver, sender")]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;
    fn from_str(s: &str) -> Result<Self, UnknownStage> {
        match s {
            "codec" | "bsmtp-codec" => Ok(Stage::Codec),
            "fragmenter" => Ok(Stage::Fragmenter),
            "resolver" => Ok(Stage::Resolver),
            "sender" => Ok(Stage::Sender),
            "policy" => Ok(Stage::Policy),
            other => Err(UnknownStage(other.to_string())),
        }
    }
}

/// Where a plugin comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PluginSource {
    /// A plugin embedded in this binary, e.g. `builtin:bsmtp-codec`.
    Builtin(String),
    /// A `.wasm` component on disk.
    Path(PathBuf),
}

impl PluginSource {
    /// The default plugin for a stage, if this build embeds one.
    pub fn default_for(stage: Stage) -> Option<PluginSource> {
        crate::builtin::default_for(stage).map(|b| PluginSource::Builtin(b.name.to_string()))
    }

    pub(crate) fn bytes(&self) -> Result<std::borrow::Cow<'static, [u8]>, LoadError> {
        match self {
            PluginSource::Builtin(name) => match crate::builtin::find(name) {
                Some(b) => Ok(std::borrow::Cow::Borrowed(b.wasm)),
                None => Err(LoadError::UnknownBuiltin {
                    name: name.clone(),
                    known: crate::builtin::names().join(", "),
                }),
            },
            PluginSource::Path(path) => {
                std::fs::read(path)
                    .map(std::borrow::Cow::Owned)
                    .map_err(|error| LoadError::Read {
                        path: path.clone(),
                        error,
                    })
            }
        }
    }
}

impl FromStr for PluginSource {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.strip_prefix("builtin:") {
            Some(name) => PluginSource::Builtin(name.to_string()),
            None => PluginSource::Path(PathBuf::from(s)),
        })
    }
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::Builtin(name) => write!(f, "builtin:{name}"),
            PluginSource::Path(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Network access granted to one plugin: UDP and/or TCP to exactly these
/// remote addresses, from ephemeral local ports. Everything else (other
/// addresses, listening, name lookup) is refused by the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct NetworkGrant {
    /// May use UDP.
    pub udp: bool,
    /// May use TCP.
    pub tcp: bool,
    /// The remote addresses it may send to or connect to.
    pub remote: Vec<SocketAddr>,
    /// HTTP requests the host makes on its behalf (`wasi:http`).
    pub http: Option<HttpGrant>,
}

impl NetworkGrant {
    /// Whether `addr` may be used for `use_`.
    fn permits(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        match use_ {
            // Only the implicit or explicit bind to an ephemeral port.
            SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => {
                addr.ip().is_unspecified() && addr.port() == 0
            }
            SocketAddrUse::TcpConnect => self.tcp && self.remote.contains(&addr),
            // Datagrams go to, and are taken from, the granted peers only.
            SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => {
                self.udp && self.remote.contains(&addr)
            }
            _ => false,
        }
    }
}

/// What a plugin says about itself, plus what the host found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// Where it was loaded from.
    pub source: String,
    /// The stage it serves.
    pub stage: Stage,
    /// The world it implements, e.g. `codec-plugin`.
    pub world: &'static str,
    /// The interface the host bound, e.g. `deepmail:stages/bsmtp-codec@0.1.0`.
    pub interface: String,
    /// The plugin's own name (from `plugin-info.describe`).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// The plugin's one-line description.
    pub description: String,
    /// Size of the component in bytes.
    pub size_bytes: usize,
}

/// Per-store state: an empty WASI context, its resource table, the memory
/// limiter and the captured stderr.
pub(crate) struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    stderr: MemoryOutputPipe,
    http: wasmtime_wasi_http::WasiHttpCtx,
    http_hooks: HttpHooks,
}

impl wasmtime_wasi_http::WasiHttpView for StoreState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        wasmtime_wasi_http::WasiHttpCtxView {
            hooks: &mut self.http_hooks,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Caps linear memory and table growth, and remembers that it said no.
struct MemoryCap {
    max_bytes: usize,
    hit: Option<usize>,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.hit = Some(desired);
            // Trap at once rather than hand the guest a failed grow it may
            // mishandle; the host reports it as plugin-out-of-memory.
            wasmtime::bail!(
                "plugin memory limit of {} bytes reached (wanted {desired})",
                self.max_bytes
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 1 << 20)
    }
}

/// A live instance with its store.
pub(crate) struct Live {
    pub(crate) store: Store<StoreState>,
    pub(crate) instance: Instance,
}

/// A compiled plugin bound to a stage.
pub(crate) struct LoadedPlugin {
    engine: Engine,
    label: String,
    pre: InstancePre<StoreState>,
    memory_limit: usize,
    deadline_ticks: u64,
    pool: Mutex<Vec<Live>>,
    pool_size: usize,
    pub(crate) info: PluginInfo,
    /// Fully qualified names of everything the component exports.
    pub(crate) exports: Vec<String>,
    network: Option<Arc<NetworkGrant>>,
    http: Option<Arc<HttpPolicy>>,
}

impl LoadedPlugin {
    /// Whether the component exports the `deepmail:stages` interface
    /// `interface` (e.g. `bpsec`), besides its stage's own.
    pub(crate) fn exports_interface(&self, interface: &str) -> bool {
        exports_interface(&self.exports, interface)
    }

    pub(crate) fn new(
        host: &Host,
        source: PluginSource,
        stage: Stage,
        component: Component,
        size_bytes: usize,
        network: Option<NetworkGrant>,
    ) -> Result<LoadedPlugin, LoadError> {
        let label = source.to_string();
        let http = match network.as_ref().and_then(|n| n.http.clone()) {
            Some(grant) => Some(Arc::new(HttpPolicy::new(grant).map_err(|e| {
                LoadError::Grant {
                    plugin: label.clone(),
                    detail: e.to_string(),
                }
            })?)),
            None => None,
        };
        let engine = host.inner.engine.clone();
        let exports: Vec<String> = component
            .component_type()
            .exports(&engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let wanted = stage.export_name();
        if !exports.iter().any(|e| e == &wanted) {
            return Err(LoadError::WrongWorld {
                plugin: label,
                stage: stage.name(),
                interface: wanted,
                exports: if exports.is_empty() {
                    "nothing".into()
                } else {
                    exports.join(", ")
                },
            });
        }
        let pre = host
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Link {
                plugin: label.clone(),
                detail: format!("{e:#}"),
            })?;
        let mut plugin = LoadedPlugin {
            engine,
            label: label.clone(),
            pre,
            memory_limit: host.inner.config.memory_limit_bytes,
            deadline_ticks: host.inner.deadline_ticks,
            pool: Mutex::new(Vec::new()),
            pool_size: host.inner.config.pool_size,
            info: PluginInfo {
                source: label.clone(),
                stage,
                world: EXTENDED_WORLDS
                    .iter()
                    .find(|(s, iface, _)| *s == stage && exports_interface(&exports, iface))
                    .map_or(stage.world(), |(_, _, world)| world),
                interface: wanted,
                name: String::new(),
                version: String::new(),
                description: String::new(),
                size_bytes,
            },
            exports: exports.clone(),
            network: network.map(Arc::new),
            http,
        };
        let described = if exports_interface(&exports, "plugin-info") {
            let indices =
                plugin_info::GuestIndices::new(&plugin.pre).map_err(|e| LoadError::Link {
                    plugin: label.clone(),
                    detail: format!("{e:#}"),
                })?;
            plugin
                .call(|store, instance| {
                    indices
                        .load(&mut *store, instance)?
                        .call_describe(&mut *store)
                })
                .ok()
        } else {
            None
        };
        if let Some(d) = described {
            plugin.info.name = d.name;
            plugin.info.version = d.version;
            plugin.info.description = d.description;
        } else {
            plugin.info.name = "(undescribed)".into();
            plugin.info.version = "?".into();
        }
        Ok(plugin)
    }

    pub(crate) fn instance_pre(&self) -> &InstancePre<StoreState> {
        &self.pre
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// A fresh instance in a fresh store with the host's limits.
    pub(crate) fn instantiate(&self) -> Result<Live, StageError> {
        let stderr = MemoryOutputPipe::new(16 * 1024);
        let mut wasi = WasiCtx::builder();
        wasi.stderr(stderr.clone())
            .allow_ip_name_lookup(false)
            .allow_udp(false)
            .allow_tcp(false);
        if let Some(grant) = &self.network {
            let check = grant.clone();
            wasi.allow_udp(grant.udp)
                .allow_tcp(grant.tcp)
                .socket_addr_check(move |addr, use_| {
                    let ok = check.permits(addr, use_);
                    Box::pin(async move { ok })
                });
        }
        let state = StoreState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: MemoryCap {
                max_bytes: self.memory_limit,
                hit: None,
            },
            stderr,
            http: wasmtime_wasi_http::WasiHttpCtx::new(),
            http_hooks: HttpHooks {
                policy: self.http.clone(),
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        store.set_epoch_deadline(self.deadline_ticks);
        match self.pre.instantiate(&mut store) {
            Ok(instance) => Ok(Live { store, instance }),
            Err(e) => Err(self.classify(e, &store)),
        }
    }

    /// Runs `f` on a pooled or fresh instance. On success the instance goes
    /// back to the pool; on any failure it is dropped, so the next call
    /// starts clean.
    pub(crate) fn call<R>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, StageError> {
        let mut live = self.checkout()?;
        let result = self.run(&mut live, f);
        if result.is_ok() {
            self.checkin(live);
        }
        result
    }

    /// Runs `f` on a fresh instance used for this call only: nothing an
    /// earlier call left in a reused instance can reach it, and nothing it
    /// leaves reaches a later one.
    pub(crate) fn call_fresh<R>(
        &self,
        f: impl FnOnce(&mut Store<StoreState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, StageError> {
        let mut live = self.instantiate()?;
        self.run(&mut live, f)
    }

    /// A clean instance: pooled if there is one, else a fresh one.
    pub(crate) fn checkout(&self) -> Result<Live, StageError> {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match pooled {
            Some(live) => Ok(live),
            None => self.instantiate(),
        }
    }

    /// Returns an instance whose last call succeeded to the pool.
    pub(crate) fn checkin(&self, live: Live) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < self.pool_size {
            pool.push(live);
        }
    }

    /// Runs `f` on every pooled (idle) instance, under the pool's lock so
    /// no delivery takes one meanwhile, and sums what it returns. An
    /// instance whose call fails is dropped.
    pub(crate) fn for_each_pooled(
        &self,
        f: impl Fn(&mut Store<StoreState>, &Instance) -> wasmtime::Result<u32>,
    ) -> u32 {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let mut total = 0u32;
        let mut kept = Vec::with_capacity(pool.len());
        for mut live in pool.drain(..) {
            if let Ok(n) = self.run(&mut live, &f) {
                total = total.saturating_add(n);
                kept.push(live);
            }
        }
        *pool = kept;
        total
    }

    /// Runs `f` on a given instance under a fresh deadline.
    pub(crate) fn run<R>(
        &self,
        live: &mut Live,
        f: impl FnOnce(&mut Store<StoreState>, &Instance) -> wasmtime::Result<R>,
    ) -> Result<R, StageError> {
        live.store.set_epoch_deadline(self.deadline_ticks);
        f(&mut live.store, &live.instance).map_err(|e| self.classify(e, &live.store))
    }

    /// Turns a wasmtime failure into a stage error that says what happened.
    fn classify(&self, e: wasmtime::Error, store: &Store<StoreState>) -> StageError {
        let state = store.data();
        let stderr = String::from_utf8_lossy(&state.stderr.contents())
            .trim()
            .to_string();
        let said = if stderr.is_empty() {
            String::new()
        } else {
            format!("; the plugin wrote: {stderr}")
        };
        let (code, message) = if let Some(wanted) = state.limiter.hit {
            (
                "plugin-out-of-memory",
                format!(
                    "plugin exceeded its memory limit of {} MiB (it asked for {} MiB); raise --plugin-memory if the input is that large{said}",
                    self.memory_limit >> 20,
                    wanted >> 20
                ),
            )
        } else if let Some(trap) = e.downcast_ref::<wasmtime::Trap>() {
            match trap {
                wasmtime::Trap::Interrupt => (
                    "plugin-timeout",
                    format!("plugin did not finish within its time limit and was stopped{said}"),
                ),
                other => ("plugin-trap", format!("plugin trapped: {other}{said}")),
            }
        } else {
            ("plugin-failed", format!("plugin call failed: {e:#}{said}"))
        };
        StageError {
            code: code.into(),
            message,
            offset: None,
            plugin: self.label.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_grant_admits_only_its_peers_from_ephemeral_ports() {
        let dns: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:53".parse().unwrap();
        let grant = NetworkGrant {
            udp: true,
            tcp: false,
            remote: vec![dns],
            http: None,
        };
        assert!(grant.permits("0.0.0.0:0".parse().unwrap(), SocketAddrUse::UdpBind));
        assert!(
            !grant.permits("0.0.0.0:25".parse().unwrap(), SocketAddrUse::UdpBind),
            "no fixed local port"
        );
        assert!(
            !grant.permits("127.0.0.1:0".parse().unwrap(), SocketAddrUse::UdpBind),
            "no specific local address"
        );
        assert!(grant.permits(dns, SocketAddrUse::UdpSend));
        assert!(grant.permits(dns, SocketAddrUse::UdpReceive));
        assert!(
            !grant.permits(other, SocketAddrUse::UdpSend),
            "only the granted peer"
        );
        assert!(
            !grant.permits(other, SocketAddrUse::UdpReceive),
            "datagrams from others are refused"
        );
        assert!(
            !grant.permits(dns, SocketAddrUse::TcpConnect),
            "TCP not granted"
        );
        assert!(!grant.permits("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpListen));
        let tcp = NetworkGrant {
            udp: false,
            tcp: true,
            remote: vec![dns],
            http: None,
        };
        assert!(tcp.permits(dns, SocketAddrUse::TcpConnect));
        assert!(!tcp.permits(dns, SocketAddrUse::UdpSend));
        assert!(!tcp.permits(dns, SocketAddrUse::TcpAccept));
    }
}
