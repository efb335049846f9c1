//! The node's Prometheus metrics (`GET /metrics`, [`crate::api::metrics`]).
//!
//! Events are counted where they happen, through the functions below (one call per site,
//! no state threaded through constructors): leader changes, proposals and their latency,
//! snapshots taken/sent/restored, WAL flushes. Per-group state (role, term, indexes, log
//! length, records) is read from the node's status at scrape time, so a removed group
//! leaves no series behind. The registry is per process: every node is its own process.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use common::metrics::{HttpMetrics, ProcessMetrics, LATENCY_BUCKETS};
use common::placement::GroupKind;
use common::wire::{InternalError, InternalReply, NodeStatus, RaftRole, ReplicaState};
use parking_lot::Mutex;
use prometheus::proto::MetricFamily;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
};

/// Buckets of WAL flush sizes (bytes): 256 B to 64 MiB.
const FLUSH_BYTES_BUCKETS: &[f64] = &[
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0, 67108864.0,
];

/// Buckets of WAL fsync latency (seconds): 50 µs to 1 s.
const FSYNC_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub struct NodeMetrics {
    registry: Registry,
    pub http: HttpMetrics,
    process: ProcessMetrics,
    leader_changes: IntCounterVec,
    /// The leader each group's replica last reported (0: none), to count changes.
    last_leader: Mutex<HashMap<u64, u64>>,
    proposals: IntCounterVec,
    proposal_seconds: HistogramVec,
    snapshots: IntCounterVec,
    snapshot_seconds: HistogramVec,
    read_phase_seconds: HistogramVec,
    reads: IntCounterVec,
    wal_fsync_seconds: Histogram,
    wal_flush_bytes: Histogram,
    entries_read_back: IntCounterVec,
}

static METRICS: LazyLock<NodeMetrics> = LazyLock::new(|| {
    NodeMetrics::new().unwrap_or_else(|e| panic!("node metrics cannot register: {e}"))
});

/// The process's metrics.
pub fn get() -> &'static NodeMetrics {
    &METRICS
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: &[f64],
) -> prometheus::Result<Histogram> {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

fn histogram_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<HistogramVec> {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

impl NodeMetrics {
    fn new() -> prometheus::Result<NodeMetrics> {
        let r = Registry::new();
        Ok(NodeMetrics {
            http: HttpMetrics::register(&r, "vdb_node")?,
            process: ProcessMetrics::register(&r)?,
            leader_changes: counter(
                &r,
                "vdb_raft_leader_changes_total",
                "Changes of the leader a group's replica on this node knows of",
                &["group"],
            )?,
            last_leader: Mutex::new(HashMap::new()),
            proposals: counter(
                &r,
                "vdb_raft_proposals_total",
                "Proposals (writes) to a group's replica on this node, by outcome",
                &["group", "outcome"],
            )?,
            proposal_seconds: histogram_vec(
                &r,
                "vdb_raft_proposal_duration_seconds",
                "Time from a proposal's arrival to its answer (applied, or refused)",
                &["group"],
            )?,
            snapshots: counter(
                &r,
                "vdb_raft_snapshots_total",
                "Snapshots of a group: taken (written locally), sent (to a follower), \
                 restored (from the leader's)",
                &["group", "event"],
            )?,
            snapshot_seconds: histogram_vec(
                &r,
                "vdb_raft_snapshot_duration_seconds",
                "Time to write (taken) or restore (restored) a snapshot",
                &["group", "event"],
            )?,
            read_phase_seconds: histogram_vec(
                &r,
                "vdb_read_phase_duration_seconds",
                "Phases of a linearizable read on a leader: queued (waiting for the next \
                 ReadIndex request, per batch), confirm (the heartbeat round, per batch), \
                 apply (read index confirmed to applied, per batch), execute (the state \
                 machine's answer, per read)",
                &["phase"],
            )?,
            reads: counter(
                &r,
                "vdb_reads_total",
                "Linearizable reads a leader admitted, by path: lease (no heartbeat round) \
                 or read_index (a heartbeat round to a quorum first)",
                &["path"],
            )?,
            wal_fsync_seconds: histogram(
                &r,
                "vdb_wal_fsync_duration_seconds",
                "Latency of one WAL fsync (one per flush with sync = fsync)",
                FSYNC_BUCKETS,
            )?,
            wal_flush_bytes: histogram(
                &r,
                "vdb_wal_flush_bytes",
                "Bytes written by one WAL flush (a group commit of every append queued)",
                FLUSH_BYTES_BUCKETS,
            )?,
            entries_read_back: counter(
                &r,
                "vdb_raft_entries_read_back_total",
                "Applied Raft entries a replica read back from its WAL, no longer in \
                 memory (raft.entry_cache_bytes), to send them to a follower: read, or \
                 failed (a newer snapshot was asked for instead)",
                &["outcome"],
            )?,
            registry: r,
        })
    }

    /// A replica of `group` reports its leader (0: none known); counts a change.
    pub fn leader_seen(&self, group: u64, leader: u64) {
        let mut last = self.last_leader.lock();
        if last.insert(group, leader) != Some(leader) && leader != 0 {
            self.leader_changes
                .with_label_values(&[&group.to_string()])
                .inc();
        }
    }

    /// A proposal to `group` was answered after `elapsed`.
    pub fn proposal(&self, group: u64, reply: &InternalReply, elapsed: Duration) {
        let group = group.to_string();
        self.proposals
            .with_label_values(&[&group, outcome(reply)])
            .inc();
        self.proposal_seconds
            .with_label_values(&[&group])
            .observe(elapsed.as_secs_f64());
    }

    /// A snapshot of `group` was taken, sent or restored; `elapsed` when it was timed.
    pub fn snapshot(&self, group: u64, event: SnapshotEvent, elapsed: Option<Duration>) {
        let labels = [&group.to_string(), event.label()];
        self.snapshots.with_label_values(&labels).inc();
        if let Some(d) = elapsed {
            self.snapshot_seconds
                .with_label_values(&labels)
                .observe(d.as_secs_f64());
        }
    }

    /// A phase of a linearizable read took `elapsed`.
    pub fn read_phase(&self, phase: ReadPhase, elapsed: Duration) {
        self.read_phase_seconds
            .with_label_values(&[phase.label()])
            .observe(elapsed.as_secs_f64());
    }

    /// A leader admitted a linearizable read on `path`.
    pub fn read_path(&self, path: ReadPath) {
        self.reads.with_label_values(&[path.label()]).inc();
    }

    /// `n` entries read back from a WAL (`ok`), or a read back that failed.
    pub fn entries_read_back(&self, ok: bool, n: usize) {
        let outcome = if ok { "read" } else { "failed" };
        self.entries_read_back
            .with_label_values(&[outcome])
            .inc_by(n as u64);
    }

    /// One WAL flush of `bytes`, with its fsync's latency when it synced.
    pub fn wal_flush(&self, bytes: usize, fsync: Option<Duration>) {
        self.wal_flush_bytes.observe(bytes as f64);
        if let Some(d) = fsync {
            self.wal_fsync_seconds.observe(d.as_secs_f64());
        }
    }

    /// The text of a scrape: the counted metrics plus per-group gauges from `status`.
    pub fn render(&self, status: &NodeStatus) -> Result<String, prometheus::Error> {
        common::metrics::render(&self.registry, &self.process, group_families(status)?)
    }
}

#[derive(Debug, Clone, Copy)]
pub enum SnapshotEvent {
    Taken,
    Sent,
    Restored,
}

impl SnapshotEvent {
    fn label(self) -> &'static str {
        match self {
            SnapshotEvent::Taken => "taken",
            SnapshotEvent::Sent => "sent",
            SnapshotEvent::Restored => "restored",
        }
    }
}

/// A phase of a linearizable read (see `vdb_read_phase_duration_seconds`).
#[derive(Debug, Clone, Copy)]
pub enum ReadPhase {
    Queued,
    Confirm,
    Apply,
    Execute,
}

impl ReadPhase {
    fn label(self) -> &'static str {
        match self {
            ReadPhase::Queued => "queued",
            ReadPhase::Confirm => "confirm",
            ReadPhase::Apply => "apply",
            ReadPhase::Execute => "execute",
        }
    }
}

/// How a leader admitted a read (see `vdb_reads_total`).
#[derive(Debug, Clone, Copy)]
pub enum ReadPath {
    Lease,
    ReadIndex,
}

impl ReadPath {
    fn label(self) -> &'static str {
        match self {
            ReadPath::Lease => "lease",
            ReadPath::ReadIndex => "read_index",
        }
    }
}

/// The outcome label of a proposal's reply (a fixed set: no free text in labels).
fn outcome(reply: &InternalReply) -> &'static str {
    match reply {
        Ok(_) => "ok",
        Err(InternalError::NotLeader { .. }) => "not_leader",
        Err(InternalError::Timeout) => "timeout",
        Err(InternalError::NoQuorum) => "no_quorum",
        Err(InternalError::Dropped) => "dropped",
        Err(InternalError::Overloaded) => "overloaded",
        Err(_) => "error",
    }
}

fn role_label(role: RaftRole) -> &'static str {
    match role {
        RaftRole::Follower => "follower",
        RaftRole::Candidate => "candidate",
        RaftRole::PreCandidate => "pre_candidate",
        RaftRole::Leader => "leader",
    }
}

fn kind_label(kind: GroupKind) -> &'static str {
    match kind {
        GroupKind::Metadata => "metadata",
        GroupKind::Shard => "shard",
    }
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn as_gauge(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

/// Per-group gauges of this scrape, from the node's status.
fn group_families(status: &NodeStatus) -> prometheus::Result<Vec<MetricFamily>> {
    let r = Registry::new();
    let role = gauge(
        &r,
        "vdb_raft_role",
        "1 for the role this node's replica of the group has now",
        &["group", "kind", "role"],
    )?;
    let running = gauge(
        &r,
        "vdb_replica_running",
        "1 if this node's replica of the group runs, 0 if it failed or waits",
        &["group", "kind"],
    )?;
    let leader = gauge(
        &r,
        "vdb_raft_leader",
        "Node id of the group's leader as this replica knows it (0: none)",
        &["group"],
    )?;
    let term = gauge(&r, "vdb_raft_term", "Current Raft term", &["group"])?;
    let commit = gauge(&r, "vdb_raft_commit_index", "Commit index", &["group"])?;
    let applied = gauge(&r, "vdb_raft_applied_index", "Applied index", &["group"])?;
    let last = gauge(&r, "vdb_raft_last_index", "Last log index", &["group"])?;
    let snapshot = gauge(
        &r,
        "vdb_raft_snapshot_index",
        "Index of the latest snapshot (the log before it is compacted)",
        &["group"],
    )?;
    let log_entries = gauge(
        &r,
        "vdb_raft_log_entries",
        "Entries in the log after the snapshot (last index - snapshot index)",
        &["group"],
    )?;
    let records = gauge(
        &r,
        "vdb_shard_records",
        "Records held by this node's replica of a shard group",
        &["group"],
    )?;
    let index_lag = gauge(
        &r,
        "vdb_shard_index_lag",
        "Record versions applied but not yet in the HNSW graph (queries scan them exactly)",
        &["group"],
    )?;
    let linked_from_hints = gauge(
        &r,
        "vdb_shard_linked_from_hints",
        "Points this replica linked into its HNSW graphs from its leader's link hints, without a search, since it opened",
        &["group"],
    )?;
    for rep in &status.replicas {
        let g = rep.group.to_string();
        let kind = kind_label(rep.kind);
        let is_running = rep.state == ReplicaState::Running;
        running
            .with_label_values(&[&g, kind])
            .set(i64::from(is_running));
        if !is_running {
            continue;
        }
        role.with_label_values(&[&g, kind, role_label(rep.role)])
            .set(1);
        leader
            .with_label_values(&[&g])
            .set(as_gauge(rep.leader.unwrap_or(0)));
        term.with_label_values(&[&g]).set(as_gauge(rep.term));
        commit.with_label_values(&[&g]).set(as_gauge(rep.commit));
        applied.with_label_values(&[&g]).set(as_gauge(rep.applied));
        last.with_label_values(&[&g]).set(as_gauge(rep.last_index));
        snapshot
            .with_label_values(&[&g])
            .set(as_gauge(rep.snapshot_index));
        log_entries
            .with_label_values(&[&g])
            .set(as_gauge(rep.last_index.saturating_sub(rep.snapshot_index)));
        if let Some(n) = rep.records.filter(|_| rep.kind == GroupKind::Shard) {
            records.with_label_values(&[&g]).set(as_gauge(n));
        }
        if let Some(lag) = rep.index_lag {
            index_lag.with_label_values(&[&g]).set(as_gauge(lag));
        }
        if let Some(n) = rep.linked_from_hints {
            linked_from_hints.with_label_values(&[&g]).set(as_gauge(n));
        }
    }
    Ok(r.gather())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_changes_count_new_leaders_only() {
        let m = NodeMetrics::new().unwrap();
        let count = |m: &NodeMetrics| m.leader_changes.with_label_values(&["7"]).get();
        m.leader_seen(7, 0); // no leader yet
        assert_eq!(count(&m), 0);
        m.leader_seen(7, 2);
        m.leader_seen(7, 2); // the same leader again (e.g. a role change of this replica)
        assert_eq!(count(&m), 1);
        m.leader_seen(7, 0);
        m.leader_seen(7, 3);
        assert_eq!(count(&m), 2);
    }

    #[test]
    fn proposals_are_counted_by_outcome() {
        let m = NodeMetrics::new().unwrap();
        m.proposal(4, &Ok(vec![]), Duration::from_millis(2));
        m.proposal(
            4,
            &Err(InternalError::NotLeader { leader: None }),
            Duration::ZERO,
        );
        assert_eq!(m.proposals.with_label_values(&["4", "ok"]).get(), 1);
        assert_eq!(m.proposals.with_label_values(&["4", "not_leader"]).get(), 1);
        assert_eq!(
            m.proposal_seconds
                .with_label_values(&["4"])
                .get_sample_count(),
            2
        );
    }
}
