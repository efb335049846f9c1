//! What the nodes report: admin status, leaders, convergence, records.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::placement;
use common::wire::{self, GroupInfo, NodeStatus, RaftRole, ReplicaStatus};

use super::{Cluster, Scrape};

impl Cluster {
    /// Node `id`'s admin status (`None`: no answer within 2 s).
    pub async fn status(&self, id: u64) -> Option<NodeStatus> {
        let resp = self
            .admin
            .get(format!("{}/admin/status", self.node_url(id)))
            .send()
            .await
            .ok()?;
        resp.json().await.ok()
    }

    /// Node `id`'s `/metrics` (`None`: no answer).
    pub async fn node_metrics(&self, id: u64) -> Option<Scrape> {
        let text = self
            .admin
            .get(format!("{}/metrics", self.node_url(id)))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        Some(Scrape::parse(&text))
    }

    /// Node `id`'s status of its replica of `group` (`None`: no answer).
    pub async fn replica(&self, id: u64, group: u64) -> Option<ReplicaStatus> {
        let status = self.status(id).await?;
        status.replicas.into_iter().find(|r| r.group == group)
    }

    /// `GET /internal/groups` on node `id`.
    pub async fn group_infos(&self, id: u64) -> Vec<GroupInfo> {
        let bytes = self
            .admin
            .get(format!("{}/internal/groups", self.node_url(id)))
            .send()
            .await
            .expect("groups request")
            .bytes()
            .await
            .expect("groups body");
        wire::decode(&bytes).expect("Vec<GroupInfo>")
    }

    /// The node among `among` that reports itself leader of `group` with
    /// the highest term.
    pub async fn find_leader(&self, group: u64, among: &[u64]) -> Option<u64> {
        let mut best: Option<(u64, u64)> = None;
        for &id in among {
            let Some(status) = self.status(id).await else {
                continue;
            };
            for r in status.replicas.into_iter().filter(|r| r.group == group) {
                if r.role == RaftRole::Leader && best.is_none_or(|(t, _)| r.term > t) {
                    best = Some((r.term, id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// Waits until `group` has a leader among `among`.
    pub async fn wait_leader(&self, group: u64, among: &[u64], timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.find_leader(group, among).await {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "group {group}: no leader among {among:?} after {timeout:?}; node log tails:\n{}",
                among
                    .iter()
                    .map(|id| format!("node {id}:\n{}", self.node_log_tail(*id, 10)))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until node `id` reports its replica of `group` in another role than
    /// leader (a cut-off leader stepping down); returns how long after `since` it did.
    pub async fn wait_stepped_down(
        &self,
        id: u64,
        group: u64,
        since: Instant,
        timeout: Duration,
    ) -> Duration {
        loop {
            let replica = self.replica(id, group).await;
            if replica.is_some_and(|r| r.role != RaftRole::Leader) {
                return since.elapsed();
            }
            assert!(
                since.elapsed() < timeout,
                "node {id} still leads group {group} {:?} after being cut off\n{}",
                since.elapsed(),
                self.log_tails(20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every running node's registration in the cluster map was accepted.
    /// A node retries its registration every second until then, so a test that
    /// watches the catalogue's log for changes starts after this.
    pub async fn wait_registered(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for id in self.running() {
            loop {
                // `None` inside: the node follows no map (key/value test nodes).
                if let Some(status) = self.status(id).await {
                    if status.registered != Some(false) {
                        break;
                    }
                }
                assert!(
                    Instant::now() < deadline,
                    "node {id}: not registered in the cluster map after {timeout:?}; log tail:\n{}",
                    self.node_log_tail(id, 10)
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }

    /// Waits until every group (catalogue and shards) that has a quorum of
    /// running nodes has a leader among them; returns group -> leader.
    pub async fn wait_all_leaders(&self, timeout: Duration) -> BTreeMap<u64, u64> {
        let deadline = Instant::now() + timeout;
        let running = self.running();
        let mut leaders = BTreeMap::new();
        for g in placement::groups(&self.config) {
            let replicas = self.replicas_of(g);
            let up: Vec<u64> = replicas
                .iter()
                .copied()
                .filter(|id| running.contains(id))
                .collect();
            if up.len() * 2 <= replicas.len() {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            leaders.insert(g, self.wait_leader(g, &up, left).await);
        }
        leaders
    }

    /// Waits until the replicas of `group` on `nodes` have applied the same
    /// index and report the same digest; returns (applied, digest). Unlike
    /// [`Cluster::wait_converged`] it looks at some nodes only (e.g. the live
    /// ones while another is down) and does not wait for the commit index.
    pub async fn wait_group_converged(
        &self,
        group: u64,
        nodes: &[u64],
        timeout: Duration,
    ) -> (u64, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for &id in nodes {
                seen.push(self.replica(id, group).await.map(|r| (r.applied, r.digest)));
            }
            if let Some(Some(first)) = seen.first() {
                if seen.iter().all(|s| s.as_ref() == Some(first)) {
                    return first.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "group {group} did not converge on {nodes:?}: {seen:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every replica of every group has applied up to the
    /// highest commit index any of them reports, then asserts that they
    /// report the same digest (architecture.md promise 5); returns group ->
    /// (applied, digest). Call it on a quiet, healed cluster with every node
    /// running. Equal applied indexes with different digests are checked
    /// again a few times before failing, since a status reads the applied
    /// index and the digest one after the other.
    pub async fn wait_converged(&self, timeout: Duration) -> BTreeMap<u64, (u64, String)> {
        let deadline = Instant::now() + timeout;
        let mut out = BTreeMap::new();
        for g in placement::groups(&self.config) {
            let mut mismatches = 0;
            loop {
                let mut seen = Vec::new();
                for id in self.replicas_of(g) {
                    seen.push((id, self.replica(id, g).await));
                }
                let commit = seen
                    .iter()
                    .filter_map(|(_, r)| r.as_ref())
                    .map(|r| r.commit)
                    .max();
                let caught_up = seen.iter().all(|(_, r)| {
                    r.as_ref()
                        .is_some_and(|r| Some(r.applied) == commit && r.commit == r.applied)
                });
                let summary = || {
                    seen.iter()
                        .map(|(id, r)| match r {
                            Some(r) => format!(
                                "node {id}: {:?} term {} commit {} applied {} digest {} records {:?}",
                                r.role, r.term, r.commit, r.applied, r.digest, r.records
                            ),
                            None => format!("node {id}: no status"),
                        })
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                if caught_up {
                    let first = seen[0].1.as_ref().map(|r| r.digest.clone());
                    if seen
                        .iter()
                        .all(|(_, r)| r.as_ref().map(|r| r.digest.clone()) == first)
                    {
                        out.insert(g, (commit.unwrap_or(0), first.unwrap_or_default()));
                        break;
                    }
                    mismatches += 1;
                    assert!(
                        mismatches < 5,
                        "group {g}: replicas applied the same index but hold different \
                         records (digests differ): {}",
                        summary()
                    );
                }
                assert!(
                    Instant::now() < deadline,
                    "group {g}: replicas not caught up after {timeout:?}: {}",
                    summary()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        out
    }

    /// Records per shard group as the group's leader reports them (admin
    /// status; every collection counted). Tests use it on a quiet cluster.
    pub async fn shard_records(&self) -> BTreeMap<u64, u64> {
        let mut out = BTreeMap::new();
        for g in self.shard_groups() {
            for id in self.replicas_of(g) {
                let Some(status) = self.status(id).await else {
                    continue;
                };
                let leading = status
                    .replicas
                    .iter()
                    .find(|r| r.group == g && r.role == RaftRole::Leader);
                if let Some(n) = leading.and_then(|r| r.records) {
                    out.insert(g, n);
                }
            }
        }
        out
    }
}
