//! Assembles a node process: the replicas this node hosts (from placement), the Raft
//! transport and the HTTP server (transport route, internal API, admin API).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::Arbiter;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use common::config::ClusterConfig;
use common::placement::{self, GroupKind};
use common::secret::{ClusterSecret, SecretError};

use crate::api::{self, gate, ApiState};
use crate::catalog::CatalogStateMachine;
use crate::raft::kv::KvStateMachine;
use crate::raft::{Replica, ReplicaError, ReplicaParams, Replicas, StateMachineFactory};
use crate::shard::ShardStateMachine;
use crate::storage::WalOptions;
use crate::transport::{server as transport_server, FaultFilter, Transport, TransportOptions};

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("node {0} is not in the cluster config")]
    UnknownNode(u64),
    #[error("cannot create {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("group {group}: {source}")]
    Replica { group: u64, source: ReplicaError },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("http server: {0}")]
    Server(std::io::Error),
    #[error("{0}")]
    Secret(#[from] SecretError),
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
}

impl NodeOptions {
    pub fn new(config: ClusterConfig, node_id: u64, state_machines: StateMachineFactory) -> Self {
        NodeOptions {
            config,
            node_id,
            state_machines,
            wal: WalOptions::default(),
            transport: TransportOptions::default(),
            transfer_check: Duration::from_secs(3),
            http_workers: 2,
        }
    }
}

/// The cluster's state machines: the catalogue for the metadata group, the
/// shard state machine for every shard group.
pub fn cluster_state_machines() -> StateMachineFactory {
    Arc::new(|_group, kind| match kind {
        GroupKind::Metadata => Box::new(CatalogStateMachine::new()),
        GroupKind::Shard => Box::new(ShardStateMachine::new()),
    })
}

/// Every group runs the small ordered-map [`KvStateMachine`]: the replication
/// tests drive Raft through it with plain key/value commands.
pub fn kv_state_machines() -> StateMachineFactory {
    Arc::new(|_group, _kind| Box::new(KvStateMachine::new()))
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

    let replicas = Arc::new(Replicas::default());
    let filter = Arc::new(FaultFilter::default());
    let peers: Vec<(u64, String)> = config
        .nodes
        .iter()
        .map(|n| (n.id, n.addr.clone()))
        .collect();
    let transport_arbiter = Arbiter::new();
    let transport = Transport::start(
        me.id,
        &peers,
        filter.clone(),
        replicas.clone(),
        TransportOptions {
            secret: Some(secret.clone()),
            max_snapshot_bytes: config.security.max_raft_snapshot_bytes,
            ..opts.transport.clone()
        },
        &transport_arbiter.handle(),
    );

    let api_state = web::Data::new(ApiState {
        node_id: me.id,
        replicas: replicas.clone(),
        transport: transport.clone(),
        default_timeout: Duration::from_millis(config.router.request_timeout_ms),
        max_timeout: Duration::from_secs(600),
    });
    let inbound = transport_server::Inbound {
        node_id: me.id,
        peers: config
            .nodes
            .iter()
            .map(|n| n.id)
            .filter(|&id| id != me.id)
            .collect(),
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
    })
    .workers(opts.http_workers.max(1))
    .shutdown_timeout(5)
    .bind(&me.addr)
    .map_err(|source| NodeError::Bind {
        addr: me.addr.clone(),
        source,
    })?;

    for group in placement::hosted_groups(config, me.id) {
        let kind = placement::group_kind(group);
        let params = ReplicaParams {
            node_id: me.id,
            group,
            kind,
            dir: data_dir.join(format!("group-{group}")),
            voters: placement::replicas(config, group),
            preferred_leader: placement::preferred_leader(config, group),
            raft: config.raft.clone(),
            wal: opts.wal,
            transfer_check: opts.transfer_check,
        };
        let sm = (opts.state_machines)(group, kind);
        let replica = Replica::open(params, sm, transport.clone())
            .map_err(|source| NodeError::Replica { group, source })?;
        replicas.insert(replica.start(kind));
    }
    tracing::info!(node = me.id, addr = %me.addr, groups = ?placement::hosted_groups(config, me.id), "node started");
    server.run().await.map_err(NodeError::Server)
}
