//! Static routes to TCPCLv4 peers at fixed addresses.
//!
//! Hardy routes by node ID: a TCPCLv4 session registers its peer's SESS_INIT
//! node ID as a neighbour (a RIB entry `that node's EIDs -> CLA peer`), and a
//! routing agent adds `pattern -> Via(EID)` entries resolved through those.
//! A route here names an *address*, so:
//!
//! * [`WatchedCla`] wraps hardy-tcpclv4's CLA and its BPA sink, so it sees
//!   each session's peer appear (`add_peer`) and go (`remove_peer`);
//! * when the peer at a route's address appears, the [`RouteAgent`] installs
//!   `pattern -> Via(peer node ID)`; the route stays when the session drops
//!   (bundles then wait in the store) and is replaced if the peer comes back
//!   with another node ID;
//! * a supervisor task per address opens the active session and reopens it
//!   whenever it is down.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hardy_bpa::Bytes;
use hardy_bpa::async_trait;
use hardy_bpa::cla::{ClaAddress, ClaAddressType, ForwardBundleResult, Sink};
use hardy_bpa::filter::{ReadFilter, ReadResult};
use hardy_bpa::routing::{RouteAction, RoutingAgent, RoutingSink};
use hardy_bpv7::eid::{Eid, NodeId};
use hardy_bpv7::status_report::ReasonCode;
use hardy_eid_patterns::EidPattern;
use tracing::{debug, info, warn};

/// Priority of the first --route; later ones get +1 each (lower = tried first).
/// Hardy's own neighbour entries use priority 0.
const FIRST_PRIORITY: u32 = 100;

#[derive(Debug, Clone)]
pub struct Route {
    pub text: String,
    pub pattern: EidPattern,
    pub addr: SocketAddr,
}

#[derive(Default)]
struct Inner {
    /// Addresses (route targets only) with a live session, and the node IDs
    /// their peers announced.
    up: HashMap<SocketAddr, Vec<NodeId>>,
    /// The Via EID currently installed for each route index.
    installed: HashMap<usize, Eid>,
}

pub struct State {
    routes: Vec<Route>,
    own: NodeId,
    inner: Mutex<Inner>,
    changed: tokio::sync::Notify,
    routing_sink: OnceLock<Box<dyn RoutingSink>>,
}

impl State {
    pub fn new(routes: Vec<Route>, own: NodeId) -> Arc<Self> {
        Arc::new(Self {
            routes,
            own,
            inner: Mutex::new(Inner::default()),
            changed: tokio::sync::Notify::new(),
            routing_sink: OnceLock::new(),
        })
    }

    pub fn agent(self: &Arc<Self>) -> Arc<dyn RoutingAgent> {
        Arc::new(RouteAgent(self.clone()))
    }

    pub fn unrouted_filter(self: &Arc<Self>) -> Arc<dyn ReadFilter> {
        Arc::new(UnroutedFilter(self.clone()))
    }

    fn is_route_addr(&self, addr: &SocketAddr) -> bool {
        self.routes.iter().any(|r| &r.addr == addr)
    }

    fn is_up(&self, addr: &SocketAddr) -> bool {
        self.inner.lock().unwrap().up.contains_key(addr)
    }

    async fn peer_up(&self, addr: SocketAddr, node_ids: &[NodeId]) {
        if !self.is_route_addr(&addr) {
            return;
        }
        info!(%addr, peer = ?node_ids.iter().map(|n| n.to_string()).collect::<Vec<_>>(), "route session up");
        let Some(node_id) = node_ids.first() else {
            warn!(%addr, "peer sent no node ID in SESS_INIT: routes to it cannot be used");
            return;
        };
        if node_id == &self.own {
            warn!(%addr, "peer claims this node's own node ID {node_id}: routes to it are not installed");
            return;
        }
        let via: Eid = node_id.clone().into();
        // Work out the route changes under the lock, apply them after.
        let mut changes = Vec::new();
        {
            let mut inner = self.inner.lock().unwrap();
            inner.up.insert(addr, node_ids.to_vec());
            for (i, r) in self.routes.iter().enumerate() {
                if r.addr != addr || inner.installed.get(&i) == Some(&via) {
                    continue;
                }
                let old = inner.installed.insert(i, via.clone());
                changes.push((i, old, via.clone()));
            }
        }
        let Some(sink) = self.routing_sink.get() else {
            warn!("routing agent not registered; cannot install routes");
            return;
        };
        for (i, old, via) in changes {
            let r = &self.routes[i];
            let prio = FIRST_PRIORITY + i as u32;
            if let Some(old) = old {
                let _ = sink
                    .remove_route(&r.pattern, &RouteAction::Via(old.clone()), prio)
                    .await;
                info!(route = %r.text, "removed route via {old}");
            }
            match sink
                .add_route(r.pattern.clone(), RouteAction::Via(via.clone()), prio)
                .await
            {
                Ok(_) => {
                    info!(route = %r.text, %addr, priority = prio, "installed route {} => via {via}", r.text)
                }
                Err(e) => warn!(route = %r.text, "route {} => via {via} rejected: {e}", r.text),
            }
        }
    }

    fn peer_down(&self, addr: &SocketAddr) {
        if !self.is_route_addr(addr) {
            return;
        }
        let was = self.inner.lock().unwrap().up.remove(addr).is_some();
        if was {
            info!(%addr, "route session down; bundles for it wait until it is reopened");
            self.changed.notify_waiters();
        }
    }

    /// One task per distinct route address: open the active TCPCLv4 session
    /// while there is none.
    pub fn spawn_supervisors(
        self: &Arc<Self>,
        cla: Arc<hardy_tcpclv4::Cla>,
        every: Duration,
        cancel: tokio::sync::watch::Sender<bool>,
    ) -> Vec<tokio::task::JoinHandle<()>> {
        let mut addrs: Vec<SocketAddr> = self.routes.iter().map(|r| r.addr).collect();
        addrs.sort();
        addrs.dedup();
        addrs
            .into_iter()
            .map(|addr| {
                let state = self.clone();
                let cla = cla.clone();
                let mut stop = cancel.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = state.supervise(addr, cla, every) => {}
                        _ = stop.wait_for(|v| *v) => {}
                    }
                })
            })
            .collect()
    }

    async fn supervise(&self, addr: SocketAddr, cla: Arc<hardy_tcpclv4::Cla>, every: Duration) {
        let mut failures = 0u64;
        loop {
            // Created before the check so a session dropping meanwhile is seen.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            if !self.is_up(&addr) {
                let t0 = Instant::now();
                match cla.connect(&addr).await {
                    Ok(()) => {
                        // The session registers its peer from a spawned task.
                        let mut registered = false;
                        for _ in 0..100 {
                            if self.is_up(&addr) {
                                registered = true;
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        if registered {
                            info!(%addr, "opened TCPCLv4 session in {} ms", t0.elapsed().as_millis());
                            failures = 0;
                        } else {
                            warn!(%addr, "TCPCLv4 session opened but its peer was not registered within 2 s");
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_power_of_two() {
                            warn!(%addr, attempts = failures, "cannot open TCPCLv4 session: {e}; retrying every {:.1} s", every.as_secs_f64());
                        } else {
                            debug!(%addr, attempts = failures, "cannot open TCPCLv4 session: {e}");
                        }
                    }
                }
            }
            tokio::select! {
                _ = &mut changed => {}
                _ = tokio::time::sleep(every) => {}
            }
        }
    }

    fn dest_allowed(&self, dest: &Eid) -> bool {
        // This node's own endpoints: only the administrative endpoint exists.
        let local_admin = match (dest, &self.own) {
            (
                Eid::Ipn {
                    fqnn,
                    service_number,
                }
                | Eid::LegacyIpn {
                    fqnn,
                    service_number,
                },
                NodeId::Ipn(me),
            ) if fqnn == me => Some(*service_number == 0),
            (
                Eid::Dtn {
                    node_name,
                    service_name,
                },
                NodeId::Dtn(me),
            ) if node_name == me => Some(service_name.is_empty()),
            _ => None,
        };
        match local_admin {
            Some(admin) => admin,
            None => self.routes.iter().any(|r| r.pattern.matches(dest)),
        }
    }
}

struct RouteAgent(Arc<State>);

#[async_trait]
impl RoutingAgent for RouteAgent {
    async fn on_register(&self, sink: Box<dyn RoutingSink>, _node_ids: &[NodeId]) {
        if self.0.routing_sink.set(sink).is_err() {
            warn!("static routing agent registered twice");
        }
    }

    async fn on_unregister(&self) {}
}

struct UnroutedFilter(Arc<State>);

#[async_trait]
impl ReadFilter for UnroutedFilter {
    async fn filter(
        &self,
        bundle: &hardy_bpa::bundle::Bundle,
        _data: &[u8],
    ) -> Result<ReadResult, hardy_bpa::Error> {
        let dest = &bundle.bundle.destination;
        if self.0.dest_allowed(dest) {
            Ok(ReadResult::Continue)
        } else {
            info!(bundle = %bundle.bundle.id, destination = %dest, "no --route matches; bundle dropped");
            Ok(ReadResult::Drop(Some(
                ReasonCode::NoKnownRouteToDestinationFromHere,
            )))
        }
    }
}

/// hardy-tcpclv4's CLA, with its BPA sink wrapped to watch peers come and go.
pub struct WatchedCla {
    inner: Arc<hardy_tcpclv4::Cla>,
    state: Arc<State>,
}

impl WatchedCla {
    pub fn new(inner: Arc<hardy_tcpclv4::Cla>, state: Arc<State>) -> Self {
        Self { inner, state }
    }
}

#[async_trait]
impl hardy_bpa::cla::Cla for WatchedCla {
    async fn on_register(&self, sink: Box<dyn Sink>, node_ids: &[NodeId]) {
        let sink = Box::new(WatchedSink {
            inner: sink,
            state: self.state.clone(),
        });
        hardy_bpa::cla::Cla::on_register(&*self.inner, sink, node_ids).await
    }

    async fn on_unregister(&self) {
        hardy_bpa::cla::Cla::on_unregister(&*self.inner).await
    }

    fn address_type(&self) -> Option<ClaAddressType> {
        hardy_bpa::cla::Cla::address_type(&*self.inner)
    }

    fn queue_count(&self) -> u32 {
        hardy_bpa::cla::Cla::queue_count(&*self.inner)
    }

    async fn forward(
        &self,
        queue: Option<u32>,
        cla_addr: &ClaAddress,
        bundle: Bytes,
    ) -> hardy_bpa::cla::Result<ForwardBundleResult> {
        let len = bundle.len();
        let r = hardy_bpa::cla::Cla::forward(&*self.inner, queue, cla_addr, bundle).await;
        match &r {
            Ok(ForwardBundleResult::Sent) => debug!(to = %cla_addr, octets = len, "bundle sent"),
            Ok(ForwardBundleResult::NoNeighbour) => {
                debug!(to = %cla_addr, octets = len, "no session to send on")
            }
            Err(e) => debug!(to = %cla_addr, octets = len, "forward failed: {e}"),
        }
        r
    }
}

struct WatchedSink {
    inner: Box<dyn Sink>,
    state: Arc<State>,
}

#[async_trait]
impl Sink for WatchedSink {
    async fn unregister(&self) {
        self.inner.unregister().await
    }

    async fn dispatch(
        &self,
        bundle: Bytes,
        peer_node: Option<&NodeId>,
        peer_addr: Option<&ClaAddress>,
    ) -> hardy_bpa::cla::Result<()> {
        debug!(from = ?peer_addr.map(|a| a.to_string()), octets = bundle.len(), "bundle received");
        self.inner.dispatch(bundle, peer_node, peer_addr).await
    }

    async fn add_peer(
        &self,
        cla_addr: ClaAddress,
        node_ids: &[NodeId],
    ) -> hardy_bpa::cla::Result<bool> {
        let r = self.inner.add_peer(cla_addr.clone(), node_ids).await;
        if let ClaAddress::Tcp(addr) = cla_addr {
            debug!(%addr, ?node_ids, "peer added");
            self.state.peer_up(addr, node_ids).await;
        }
        r
    }

    async fn remove_peer(&self, cla_addr: &ClaAddress) -> hardy_bpa::cla::Result<bool> {
        let r = self.inner.remove_peer(cla_addr).await;
        if let ClaAddress::Tcp(addr) = cla_addr {
            debug!(%addr, "peer removed");
            self.state.peer_down(addr);
        }
        r
    }
}
