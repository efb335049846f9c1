//! Assembles a node process: the replicas this node hosts (from placement), the Raft
//! transport and the HTTP server (transport route, internal API, admin API).
//!
//! A replica that cannot open (damaged WAL, unreadable snapshot) or that lost its data
//! (see [`crate::identity`]) is recorded as failed and never runs; the node and its other
//! groups go on.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Arbiter;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use common::config::ClusterConfig;
use common::group_client::ClusterClient;
use common::placement::{self, GroupKind};
use common::secret::{ClusterSecret, SecretError};
use common::wire::ReplicaState;

use crate::api::{self, gate, ApiState};
use crate::catalog::CatalogStateMachine;
use crate::hosting::Host;
use crate::identity::{self, PeersSeen};
use crate::membership::{register_and_follow, Registrar};
use crate::placement::calls::NodeCalls;
use crate::placement::plan::Rules;
use crate::placement::Driver;
use crate::raft::registry::StoppedReplica;
use crate::raft::{Encoded, Replica, ReplicaParams, Replicas, StateMachineFactory};
use crate::shard::ShardStateMachine;
use crate::storage::{RaftLogs, StorageError, WalOptions};
use crate::transport::{
    server as transport_server, FaultFilter, PeerBook, Transport, TransportOptions,
};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {0} is not in the cluster config")]
    UnknownNode(u64),
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the Raft logs: {0}")]
    Logs(StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("http server: {0}")]
    Server(std::io::Error),
    #[error("{0}")]
    Secret(#[from] SecretError),
    #[error("cannot build the metadata group client: {0}")]
    Client(String),
}

pub struct NodeOptions {
    pub config: ClusterConfig,
    pub node_id: u64,
    /// Makes each hosted group's state machine.
    pub state_machines: StateMachineFactory,
    pub wal: WalOptions,
    pub transport: TransportOptions,
    /// How often a leader that is not its group's preferred leader considers handing over.
    pub transfer_check: Duration,
    pub http_workers: usize,
    /// Whether the node registers in the cluster map and follows it (the metadata group
    /// must run the catalogue: off with the test key/value state machines).
    pub cluster_map: bool,
}

impl NodeOptions {
    pub fn new(config: ClusterConfig, node_id: u64, state_machines: StateMachineFactory) -> Self {
        let wal = WalOptions {
            segment_bytes: config.raft.wal_segment_bytes.max(4096),
            ..WalOptions::default()
        };
        NodeOptions {
            config,
            node_id,
            wal,
            state_machines,
            transport: TransportOptions::default(),
            transfer_check: Duration::from_secs(3),
            http_workers: 2,
            cluster_map: true,
        }
    }
}

/// The cluster's state machines: the catalogue for the metadata group, the
/// shard state machine for every shard group.
pub fn cluster_state_machines() -> StateMachineFactory {
    Arc::new(|_group, kind| match kind {
        GroupKind::Metadata => Box::new(Encoded(CatalogStateMachine::new())),
        GroupKind::Shard => Box::new(Encoded(ShardStateMachine::new())),
    })
}

/// Runs the node until the HTTP server stops (SIGINT/SIGTERM). Call inside an actix
/// `System`.
pub async fn run(opts: NodeOptions) -> Result<(), NodeError> {
    let config = &opts.config;
    let me = config
        .node(opts.node_id)
        .ok_or(NodeError::UnknownNode(opts.node_id))?
        .clone();
    let data_dir = config.node_data_dir(me.id);
    std::fs::create_dir_all(&data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;

    // Before anything listens: a node without its secret could serve no one.
    let secret = ClusterSecret::load(&config.secret_file())?;
    let incarnation = identity::incarnation(&data_dir).map_err(|source| NodeError::DataDir {
        path: data_dir.join(identity::INCARNATION_FILE),
        source,
    })?;
    let metadata =
        Arc::new(ClusterClient::new(config).map_err(|e| NodeError::Client(e.to_string()))?);

    let replicas = Arc::new(Replicas::default());
    let filter = Arc::new(FaultFilter::default());
    let peers: Vec<(u64, String)> = config
        .nodes
        .iter()
        .map(|n| (n.id, n.addr.clone()))
        .collect();
    let book = Arc::new(PeerBook::new(me.id, &peers));
    let transport_arbiter = Arbiter::new();
    let transport = Transport::start(
        me.id,
        book.clone(),
        filter.clone(),
        replicas.clone(),
        TransportOptions {
            secret: Some(secret.clone()),
            max_snapshot_bytes: config.security.max_raft_snapshot_bytes,
            keepalive: Duration::from_millis(
                config.raft.tick_ms * config.raft.heartbeat_ticks.max(1) as u64,
            ),
            ..opts.transport.clone()
        },
        &transport_arbiter.handle(),
    );

    let logs = RaftLogs::open(&data_dir, config.raft.log, opts.wal).map_err(NodeError::Logs)?;
    let host = Arc::new(Host::new(
        me.id,
        data_dir.clone(),
        config.raft.clone(),
        logs,
        opts.transfer_check,
        opts.state_machines.clone(),
        transport.clone(),
        replicas.clone(),
    ));
    // The placement driver's and the cluster report's requests to nodes: an admin
    // request waits for a membership change to apply, so a request timeout and more.
    let calls = NodeCalls::new(
        Some(secret.clone()),
        Duration::from_millis(config.router.request_timeout_ms) + Duration::from_secs(5),
    )
    .map_err(|e| NodeError::Client(e.to_string()))?;
    let seeds: Vec<(u64, String)> = config
        .nodes
        .iter()
        .map(|n| (n.id, n.addr.clone()))
        .collect();
    let registered = opts
        .cluster_map
        .then(|| Arc::new(std::sync::atomic::AtomicBool::new(false)));
    let api_state = web::Data::new(ApiState {
        cluster: api::ClusterAccess {
            metadata: metadata.clone(),
            calls: calls.clone(),
            seeds: seeds.clone(),
        },
        node_id: me.id,
        incarnation,
        replicas: replicas.clone(),
        transport: transport.clone(),
        host: host.clone(),
        default_timeout: Duration::from_millis(config.router.request_timeout_ms),
        max_timeout: Duration::from_secs(600),
        exports: crate::api::backup::Exports::new(data_dir.join("backup-scratch")),
        registered: registered.clone(),
    });
    let inbound = transport_server::Inbound {
        liveness: transport.liveness().clone(),
        node_id: me.id,
        peers: book,
        filter,
        mailboxes: replicas.clone(),
        max_batch_bytes: config.security.max_raft_batch_bytes,
        max_snapshot_bytes: config.security.max_raft_snapshot_bytes,
    };
    let gate = gate::Gate::new(secret, &config.security, config.nodes.len() - 1);
    let server = HttpServer::new(move || {
        let inbound = inbound.clone();
        let api_state = api_state.clone();
        let gate = gate.clone();
        App::new()
            .wrap(from_fn(move |req, next| {
                gate::check(gate.clone(), req, next)
            }))
            .configure(|cfg| transport_server::configure(cfg, inbound))
            .configure(|cfg| api::configure(cfg, api_state))
            .wrap(from_fn(api::trace::trace))
            .wrap(from_fn(api::metrics::track))
    })
    .workers(opts.http_workers.max(1))
    .keep_alive(common::wire::NODE_KEEP_ALIVE)
    .shutdown_timeout(5)
    .bind(&me.addr)
    .map_err(|source| NodeError::Bind {
        addr: me.addr.clone(),
        source,
    })?;

    // Replicas with a log open now; those without one wait for the amnesia check.
    let seen = Arc::new(PeersSeen::load(&data_dir));
    replicas.set_peers_seen(seen);
    let marker = identity::marker_exists(&data_dir);
    let mut opened = Vec::new();
    let mut unproven = Vec::new();
    let created = host.created_groups();
    host.discard_removed_logs();
    for group in placement::hosted_groups(config, me.id) {
        if host.is_removed(group) || created.iter().any(|&(g, _)| g == group) {
            continue;
        }
        let kind = placement::group_kind(group);
        let params = host.params(
            group,
            placement::replicas(config, group),
            placement::preferred_leader(config, group),
            0,
        );
        if !host.logs.has_log(group, &params.dir) {
            if marker {
                fail_replica(&replicas, group, kind, group_dir_lost(&params.dir));
            } else {
                unproven.push(params);
            }
            continue;
        }
        if let Some(replica) = open_replica(&replicas, params, &opts.state_machines, &transport) {
            opened.push((replica, kind));
        }
    }
    // Replicas created at run time: no bootstrap voters; one that has not received the
    // group's log yet has no configuration and does not vote.
    for &(group, joined_at) in &created {
        let kind = placement::group_kind(group);
        let params = host.params(group, Vec::new(), None, joined_at);
        if let Some(replica) = open_replica(&replicas, params, &opts.state_machines, &transport) {
            opened.push((replica, kind));
        }
    }
    let server = server.run();
    if unproven.is_empty() {
        if !marker {
            write_marker(&data_dir, me.id)?;
        }
        for (replica, kind) in opened {
            replicas.insert(replica.start(kind));
        }
    } else {
        // Even the replicas with a log wait: a message from this node before the check
        // would make the peers answer that they have seen it.
        actix::spawn(first_start(FirstStart {
            node_id: me.id,
            data_dir,
            groups: unproven,
            opened,
            replicas: replicas.clone(),
            transport: transport.clone(),
            state_machines: opts.state_machines.clone(),
        }));
    }
    if let Some(registered) = registered {
        actix::spawn(register_and_follow(Registrar {
            node_id: me.id,
            addr: me.addr.clone(),
            incarnation,
            client: metadata.clone(),
            transport: transport.clone(),
            registered,
        }));
        actix::spawn(
            Driver {
                node_id: me.id,
                settings: config.placement.clone(),
                rules: Rules {
                    replication_factor: config.cluster.replication_factor,
                    down_after: Duration::from_secs(config.placement.down_after_secs),
                    shard_count: config.cluster.shard_count as u64,
                    initial_nodes: config.initial_nodes().count(),
                },
                metadata,
                calls,
                replicas: replicas.clone(),
                seeds,
            }
            .run(),
        );
    }
    tracing::info!(node = me.id, addr = %me.addr, incarnation, placed = ?placement::hosted_groups(config, me.id), ?created, "node started");
    server.await.map_err(NodeError::Server)
}

/// Records a hosted replica that will not run, and why (logged, and shown by
/// `/admin/status`).
fn fail_replica(replicas: &Replicas, group: u64, kind: GroupKind, reason: String) {
    tracing::error!(group, %reason, "replica failed: not stepping, voting or serving");
    replicas.set_stopped(StoppedReplica {
        group,
        kind,
        state: ReplicaState::Failed,
        reason,
    });
}

/// Opens a replica; a failure (damaged WAL, unreadable snapshot) fails that replica
/// alone.
fn open_replica(
    replicas: &Replicas,
    params: ReplicaParams,
    state_machines: &StateMachineFactory,
    transport: &Arc<Transport>,
) -> Option<Replica> {
    let (group, kind) = (params.group, params.kind);
    let sm = state_machines(group, kind);
    match Replica::open(params, sm, transport.clone()) {
        Ok(replica) => Some(replica),
        Err(e) => {
            fail_replica(replicas, group, kind, e.to_string());
            None
        }
    }
}

fn write_marker(data_dir: &std::path::Path, node_id: u64) -> Result<(), NodeError> {
    identity::write_marker(data_dir, node_id).map_err(|source| NodeError::DataDir {
        path: data_dir.join(identity::MARKER_FILE),
        source,
    })
}

fn group_dir_lost(dir: &std::path::Path) -> String {
    format!(
        "this node lost its data for the group: {} holds no Raft log, but the node had one \
         (it is bootstrapped); it must not vote with an empty log and has to rejoin the group \
         as a new member",
        dir.display()
    )
}

/// Groups without a log on a node without the bootstrapped marker (and the replicas with
/// a log, opened, to start once the check is done).
struct FirstStart {
    node_id: u64,
    data_dir: PathBuf,
    groups: Vec<ReplicaParams>,
    opened: Vec<(Replica, GroupKind)>,
    replicas: Arc<Replicas>,
    transport: Arc<Transport>,
    state_machines: StateMachineFactory,
}

/// How often the amnesia check asks the peers that have not answered yet.
const ASK_EVERY: Duration = Duration::from_millis(300);

/// Decides whether groups without a log may be bootstrapped (see [`crate::identity`]):
/// asks every peer they share a group with whether it ever heard from this node. Until
/// they all said no, the groups wait; one yes fails them for good.
async fn first_start(f: FirstStart) {
    let peers: BTreeSet<u64> = f
        .groups
        .iter()
        .flat_map(|p| p.voters.iter().copied())
        .filter(|&n| n != f.node_id)
        .collect();
    let waiting = f
        .groups
        .iter()
        .map(|p| (p.group, p.kind))
        .chain(f.opened.iter().map(|(r, kind)| (r.group(), *kind)));
    for (group, kind) in waiting {
        f.replicas.set_stopped(StoppedReplica {
            group,
            kind,
            state: ReplicaState::Waiting,
            reason: format!(
                "this node has groups without a Raft log: waiting for nodes {peers:?} to \
                 confirm it never took part"
            ),
        });
    }
    let mut pending = peers.clone();
    let mut seen_by = Vec::new();
    let started = Instant::now();
    let mut next_log = started;
    while !pending.is_empty() && seen_by.is_empty() {
        for &peer in &pending.clone() {
            match f.transport.peer_has_seen_me(peer).await {
                Ok(true) => seen_by.push(peer),
                Ok(false) => {
                    pending.remove(&peer);
                }
                Err(e) => tracing::debug!(peer, error = %e, "amnesia check: no answer yet"),
            }
        }
        if !pending.is_empty() && seen_by.is_empty() {
            if Instant::now() >= next_log {
                tracing::warn!(waiting_for = ?pending, elapsed_s = started.elapsed().as_secs(), "groups without a log wait until every peer confirms this node never took part");
                next_log = Instant::now() + Duration::from_secs(10);
            }
            tokio::time::sleep(ASK_EVERY).await;
        }
    }
    if !seen_by.is_empty() {
        for p in f.groups {
            let reason = format!(
                "this node lost its data: {} holds no Raft log, but nodes {seen_by:?} have \
                 received Raft messages from this node before; it must not vote with an empty \
                 log and has to rejoin the group as a new member",
                p.dir.display()
            );
            fail_replica(&f.replicas, p.group, p.kind, reason);
        }
        // The verdict stays, even if the peers forget.
        if let Err(e) = write_marker(&f.data_dir, f.node_id) {
            tracing::error!(error = %e, "cannot write the bootstrapped marker");
        }
        for (r, kind) in f.opened {
            f.replicas.insert(r.start(kind));
        }
        return;
    }
    tracing::info!(
        groups = f.groups.len(),
        "amnesia check: no peer has heard from this node; bootstrapping"
    );
    let mut opened = f.opened;
    for p in f.groups {
        let kind = p.kind;
        if let Some(r) = open_replica(&f.replicas, p, &f.state_machines, &f.transport) {
            opened.push((r, kind));
        }
    }
    // Every group's log is durable before the marker, and the marker before any message.
    if let Err(e) = write_marker(&f.data_dir, f.node_id) {
        tracing::error!(error = %e, "cannot write the bootstrapped marker; the new replicas do not start");
        for (r, kind) in opened {
            fail_replica(&f.replicas, r.group(), kind, e.to_string());
        }
        return;
    }
    for (r, kind) in opened {
        f.replicas.insert(r.start(kind));
    }
}
