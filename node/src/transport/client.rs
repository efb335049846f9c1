//! The sending side: one task per destination node, each with a bounded queue. A task
//! takes everything queued (up to a size cap) and posts it as one [`RaftBatch`]; a full
//! queue drops the message (counted), a failed request drops the batch and reports the
//! destination unreachable to the sending replicas. Raft retransmits.
//!
//! Snapshots take a second lane (task and queue) per destination, so a long snapshot
//! transfer never holds up the heartbeats of every other group to that node.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::ArbiterHandle;
use common::secret::{ClusterSecret, CLUSTER_SECRET_HEADER};
use common::wire::{self, GroupMessage, RaftBatch, BINCODE_CONTENT_TYPE};
use raft::prelude::{Message, MessageType};
use tokio::sync::mpsc;

use parking_lot::RwLock;

use super::{FaultFilter, Mailboxes, PeerBook, SendReport};

#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// Messages queued per destination before new ones are dropped.
    pub queue_capacity: usize,
    /// A batch stops growing past this many payload bytes.
    pub max_batch_bytes: usize,
    pub connect_timeout: Duration,
    /// Timeout of a batch without a snapshot.
    pub request_timeout: Duration,
    /// Timeout of a batch carrying a snapshot.
    pub snapshot_timeout: Duration,
    /// Pause after a failed request before the next one to the same node.
    pub retry_backoff: Duration,
    /// The cluster secret sent with every batch (`None` only where no node checks it).
    pub secret: Option<ClusterSecret>,
    /// A snapshot message larger than this is not sent (the receiver would refuse it:
    /// `security.max_raft_snapshot_bytes`).
    pub max_snapshot_bytes: usize,
    /// A message lane idle this long sends an empty batch, so the peer knows this node
    /// is alive while all their groups are quiet ([`super::PeerLiveness`]). The Raft
    /// heartbeat interval (`tick_ms * heartbeat_ticks`); zero: none.
    pub keepalive: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            queue_capacity: 8192,
            max_batch_bytes: 16 << 20,
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(2),
            snapshot_timeout: Duration::from_secs(120),
            retry_backoff: Duration::from_millis(50),
            secret: None,
            max_snapshot_bytes: common::config::SecuritySection::default().max_raft_snapshot_bytes,
            keepalive: Duration::from_millis(200),
        }
    }
}

struct Outgoing {
    group: u64,
    snapshot: bool,
    bytes: Vec<u8>,
    /// When it was queued (the fault filter's delay counts from here).
    queued: Instant,
}

/// Counters (reported by `/admin/status`).
#[derive(Debug, Default)]
pub struct TransportStats {
    pub sent_batches: AtomicU64,
    pub sent_messages: AtomicU64,
    pub dropped_messages: AtomicU64,
    pub failed_batches: AtomicU64,
}

/// The queues to one destination node.
struct Lanes {
    messages: mpsc::Sender<Outgoing>,
    snapshots: mpsc::Sender<Outgoing>,
}

/// Queue capacity of the snapshot lane.
const SNAPSHOT_QUEUE: usize = 4;

/// The HTTP client of every node-to-node request (Raft batches and the node's own
/// questions to peers): anything every such request needs is set here, once.
pub(crate) fn node_client(options: &TransportOptions) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .tcp_nodelay(true)
        .pool_idle_timeout(common::wire::NODE_CLIENT_POOL_IDLE)
        .build()
}

/// The node's Raft transport (sending side). Shared by every replica of the node.
pub struct Transport {
    node_id: u64,
    /// `host:port` of every peer.
    book: Arc<PeerBook>,
    options: TransportOptions,
    queues: RwLock<HashMap<u64, Lanes>>,
    /// Where the sender tasks of peers added at run time are spawned.
    arbiter: ArbiterHandle,
    filter: Arc<FaultFilter>,
    stats: Arc<TransportStats>,
    mailboxes: Arc<dyn Mailboxes>,
    max_snapshot_bytes: usize,
    liveness: Arc<super::PeerLiveness>,
}

impl Transport {
    /// Starts one sender task per peer of `book` on `arbiter`; peers added to the book
    /// later get theirs from [`Transport::set_peer`].
    pub fn start(
        node_id: u64,
        book: Arc<PeerBook>,
        filter: Arc<FaultFilter>,
        mailboxes: Arc<dyn Mailboxes>,
        options: TransportOptions,
        arbiter: &ArbiterHandle,
    ) -> Arc<Transport> {
        let max_snapshot_bytes = options.max_snapshot_bytes;
        let transport = Arc::new(Transport {
            node_id,
            book,
            options,
            queues: RwLock::new(HashMap::new()),
            filter,
            stats: Arc::new(TransportStats::default()),
            mailboxes,
            max_snapshot_bytes,
            arbiter: arbiter.clone(),
            liveness: Arc::new(super::PeerLiveness::default()),
        });
        for (id, addr) in transport.book.all() {
            transport.start_lanes(id, &addr);
        }
        transport
    }

    /// Records the address of node `id` (a node that joined, or moved) and starts (or
    /// restarts) its sender tasks. Messages queued to an old address are dropped; Raft
    /// retransmits.
    pub fn set_peer(&self, id: u64, addr: &str) {
        if id == self.node_id || !self.book.set(id, addr) {
            return;
        }
        tracing::info!(node = id, addr, "peer address recorded");
        self.start_lanes(id, addr);
    }

    /// The address book shared with the receiving side.
    pub fn book(&self) -> &Arc<PeerBook> {
        &self.book
    }

    /// Starts the two sender tasks to `addr`; replacing the lanes ends the old tasks.
    fn start_lanes(&self, id: u64, addr: &str) {
        let options = &self.options;
        let (messages, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (snapshots, snapshot_rx) = mpsc::channel(SNAPSHOT_QUEUE);
        let sender = PeerSender {
            from: self.node_id,
            to: id,
            url: format!("http://{addr}{}", super::server::BATCH_PATH),
            filter: self.filter.clone(),
            stats: self.stats.clone(),
            mailboxes: self.mailboxes.clone(),
            options: options.clone(),
        };
        // One snapshot per request, so a request never outgrows the receiver's
        // snapshot limit however many snapshots are queued.
        let snapshot_sender = PeerSender {
            url: format!("http://{addr}{}", super::server::SNAPSHOT_PATH),
            filter: self.filter.clone(),
            stats: self.stats.clone(),
            mailboxes: self.mailboxes.clone(),
            options: TransportOptions {
                max_batch_bytes: 0,
                keepalive: Duration::ZERO,
                ..options.clone()
            },
            ..sender
        };
        self.arbiter.spawn(sender.run(rx));
        self.arbiter.spawn(snapshot_sender.run(snapshot_rx));
        self.queues.write().insert(
            id,
            Lanes {
                messages,
                snapshots,
            },
        );
    }

    pub fn node_id(&self) -> u64 {
        self.node_id
    }

    pub fn filter(&self) -> &Arc<FaultFilter> {
        &self.filter
    }

    pub fn stats(&self) -> &TransportStats {
        &self.stats
    }

    /// When each peer node was last heard from (the receiving side records it).
    pub fn liveness(&self) -> &Arc<super::PeerLiveness> {
        &self.liveness
    }

    /// Asks `peer` whether it ever received a Raft message from this node
    /// (`GET /internal/seen/{me}`, see [`crate::identity`]).
    pub async fn peer_has_seen_me(&self, peer: u64) -> Result<bool, String> {
        let base = self
            .book
            .addr(peer)
            .map(|addr| format!("http://{addr}"))
            .ok_or_else(|| format!("node {peer} is not in the config"))?;
        let client = node_client(&self.options).map_err(|e| e.to_string())?;
        let mut request = client
            .get(format!("{base}/internal/seen/{}", self.node_id))
            .timeout(self.options.request_timeout);
        if let Some(secret) = &self.options.secret {
            request = request.header(CLUSTER_SECRET_HEADER, secret.header_value());
        }
        let resp = request.send().await.map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        let body = resp.bytes().await.map_err(|e| e.to_string())?;
        wire::decode::<bool>(&body).map_err(|e| e.to_string())
    }

    /// Queues `messages` of `group` to their destinations (`Message::to`). Never blocks.
    pub fn send(&self, group: u64, messages: Vec<Message>) {
        let queues = self.queues.read();
        for m in messages {
            let to = m.to;
            let snapshot = m.get_msg_type() == MessageType::MsgSnapshot;
            let dropped = |report| {
                self.stats.dropped_messages.fetch_add(1, Ordering::Relaxed);
                self.mailboxes.report(group, to, report);
            };
            let fail = if snapshot {
                SendReport::SnapshotFailed
            } else {
                SendReport::Unreachable
            };
            let Some(lanes) = queues.get(&to) else {
                tracing::warn!(group, to, "raft message to an unknown node dropped");
                dropped(fail);
                continue;
            };
            if self.filter.is_blocked(to) {
                dropped(fail);
                continue;
            }
            let bytes = match protobuf::Message::write_to_bytes(&m) {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(group, to, error = %e, "cannot encode raft message");
                    dropped(fail);
                    continue;
                }
            };
            if snapshot && bytes.len() > self.max_snapshot_bytes {
                tracing::error!(
                    group,
                    to,
                    bytes = bytes.len(),
                    limit = self.max_snapshot_bytes,
                    "snapshot larger than security.max_raft_snapshot_bytes not sent; the \
                     replica on that node stays behind until the limit is raised"
                );
                dropped(fail);
                continue;
            }
            if snapshot {
                crate::metrics::get().snapshot(group, crate::metrics::SnapshotEvent::Sent, None);
            }
            let out = Outgoing {
                group,
                snapshot,
                bytes,
                queued: Instant::now(),
            };
            let queue = if snapshot {
                &lanes.snapshots
            } else {
                &lanes.messages
            };
            if queue.try_send(out).is_err() {
                // Full (or the sender task is gone): Raft will retransmit.
                dropped(fail);
            }
        }
    }
}

struct PeerSender {
    from: u64,
    to: u64,
    url: String,
    filter: Arc<FaultFilter>,
    stats: Arc<TransportStats>,
    mailboxes: Arc<dyn Mailboxes>,
    options: TransportOptions,
}

impl PeerSender {
    async fn run(self, mut rx: mpsc::Receiver<Outgoing>) {
        let client = match node_client(&self.options) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(to = self.to, error = %e, "cannot build the HTTP client; raft traffic to this node is dropped");
                return;
            }
        };
        loop {
            let next = if self.options.keepalive.is_zero() {
                rx.recv().await
            } else {
                match tokio::time::timeout(self.options.keepalive, rx.recv()).await {
                    Ok(next) => next,
                    Err(_idle) => {
                        self.keepalive(&client).await;
                        continue;
                    }
                }
            };
            let Some(first) = next else { break };
            let delay = self.filter.delay();
            if !delay.is_zero() {
                // Whatever is queued behind the head is younger: it goes in the
                // head's batch, never before it.
                tokio::time::sleep_until((first.queued + delay).into()).await;
            }
            let mut size = first.bytes.len();
            let mut batch = vec![first];
            while size < self.options.max_batch_bytes {
                match rx.try_recv() {
                    Ok(m) => {
                        size += m.bytes.len();
                        batch.push(m);
                    }
                    Err(_) => break,
                }
            }
            if self.filter.is_blocked(self.to) {
                self.failed(&batch, false);
                continue;
            }
            if let Err(e) = self.post(&client, &batch).await {
                tracing::debug!(to = self.to, messages = batch.len(), error = %e, "raft batch not delivered");
                self.failed(&batch, true);
                tokio::time::sleep(self.options.retry_backoff).await;
                continue;
            }
            self.stats.sent_batches.fetch_add(1, Ordering::Relaxed);
            self.stats
                .sent_messages
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            for m in batch.iter().filter(|m| m.snapshot) {
                self.mailboxes
                    .report(m.group, self.to, SendReport::SnapshotFinished);
            }
        }
    }

    /// An empty batch: nothing but "this node is alive" for the peer's liveness.
    async fn keepalive(&self, client: &reqwest::Client) {
        if self.filter.is_blocked(self.to) {
            return;
        }
        if let Err(e) = self.post(client, &[]).await {
            tracing::trace!(to = self.to, error = %e, "keepalive not delivered");
        }
    }

    async fn post(&self, client: &reqwest::Client, batch: &[Outgoing]) -> Result<(), String> {
        let snapshot = batch.iter().any(|m| m.snapshot);
        let body = RaftBatch {
            from: self.from,
            messages: batch
                .iter()
                .map(|m| GroupMessage {
                    group: m.group,
                    message: m.bytes.clone(),
                })
                .collect(),
        };
        let body = wire::encode(&body).map_err(|e| e.to_string())?;
        let timeout = if snapshot {
            self.options.snapshot_timeout
        } else {
            self.options.request_timeout
        };
        let mut request = client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, BINCODE_CONTENT_TYPE);
        if let Some(secret) = &self.options.secret {
            request = request.header(CLUSTER_SECRET_HEADER, secret.header_value());
        }
        let resp = request
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !resp.status().is_success() {
            return Err(format!("status {}", resp.status()));
        }
        Ok(())
    }

    fn failed(&self, batch: &[Outgoing], count_batch: bool) {
        if count_batch {
            self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .dropped_messages
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        let groups: BTreeSet<u64> = batch.iter().map(|m| m.group).collect();
        for g in groups {
            self.mailboxes.report(g, self.to, SendReport::Unreachable);
        }
        for m in batch.iter().filter(|m| m.snapshot) {
            self.mailboxes
                .report(m.group, self.to, SendReport::SnapshotFailed);
        }
    }
}
