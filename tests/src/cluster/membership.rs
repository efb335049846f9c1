//! Membership requests to running nodes (`node/src/api/members.rs`): host a new
//! replica, change a group's configuration on its leader (following the leader
//! hint and retrying while a change is in progress or a learner catches up),
//! remove a replica's data, teach a node a peer's address.

use std::time::{Duration, Instant};

use common::wire::{CreateReplicaRequest, MemberChange, MembersReply, MembersRequest, PeerRequest};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use super::Cluster;

/// Whether a configuration shows `change` made.
fn shows(reply: &MembersReply, change: MemberChange) -> bool {
    match change {
        MemberChange::AddLearner(n) => reply.learners.contains(&n) || reply.voters.contains(&n),
        MemberChange::Promote(n) => reply.voters.contains(&n),
        MemberChange::Remove(n) => !reply.learners.contains(&n) && !reply.voters.contains(&n),
    }
}

impl Cluster {
    /// One JSON admin request to node `id`: (status, body); `None` if the node
    /// did not answer.
    pub async fn admin_json(
        &self,
        id: u64,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Option<(StatusCode, Value)> {
        let mut request = self
            .admin
            .request(method, format!("{}{path}", self.node_url(id)))
            .timeout(Duration::from_secs(15));
        if let Some(body) = body {
            request = request.json(body);
        }
        let resp = request.send().await.ok()?;
        let status = resp.status();
        let value = resp.json().await.unwrap_or(Value::Null);
        Some((status, value))
    }

    /// A JSON admin request to node `id` that must succeed (`accept`: other
    /// statuses that count as done).
    async fn admin_ok(
        &self,
        id: u64,
        method: Method,
        path: &str,
        body: &impl serde::Serialize,
        accept: &[StatusCode],
    ) {
        let body = serde_json::to_value(body).expect("json");
        let answer = self.admin_json(id, method, path, Some(&body)).await;
        assert!(
            matches!(&answer, Some((s, _)) if s.is_success() || accept.contains(s)),
            "{path} on node {id} with {body}: {answer:?}"
        );
    }

    /// Hosts a new, empty replica of `group` on node `id` (before it is added).
    pub async fn create_replica(&self, id: u64, group: u64) {
        self.create_replica_joined(id, group, 0).await
    }

    /// Hosts a new, empty replica of `group` on node `id`, which the conf change at
    /// index `joined_at` added (so the group's history before it, where `id` may
    /// have been removed, is not news to the replica).
    pub async fn create_replica_joined(&self, id: u64, group: u64, joined_at: u64) {
        let body = CreateReplicaRequest {
            group,
            joined_at,
            bootstrap: None,
        };
        self.admin_ok(id, Method::POST, "/admin/replicas", &body, &[])
            .await;
    }

    /// Tells node `id` the address of node `peer`.
    pub async fn set_peer(&self, id: u64, peer: u64, addr: &str) {
        let body = PeerRequest {
            id: peer,
            addr: addr.to_owned(),
        };
        self.admin_ok(id, Method::POST, "/admin/peers", &body, &[])
            .await;
    }

    /// Makes `changes` to `group` on its leader among the running nodes: follows
    /// the leader hint (a leader asked to remove itself hands over first) and
    /// retries while another change is in progress or a learner catches up,
    /// until `timeout`. Returns the configuration once applied.
    pub async fn change_members(
        &self,
        group: u64,
        changes: &[MemberChange],
        timeout: Duration,
    ) -> MembersReply {
        self.try_change_members(group, changes, Instant::now() + timeout)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Cluster::change_members`] until `deadline`, with the refusal or the
    /// timeout as an error instead of a panic (a chaos fault reports it as a
    /// finding and goes on). Retries while no leader answers, on a 421 (to the
    /// hinted leader), 409 (another change in progress, a learner not caught
    /// up), 503 and 504 (the change may still apply: asking again is safe, a
    /// change already made is answered with the configuration), and 500 with
    /// raft's "proposal dropped" (a leadership transfer under way: raft-rs drops
    /// proposals meanwhile; the node answers it as an internal error).
    pub async fn try_change_members(
        &self,
        group: u64,
        changes: &[MemberChange],
        deadline: Instant,
    ) -> Result<MembersReply, String> {
        let body = serde_json::to_value(MembersRequest {
            group,
            changes: changes.to_vec(),
        })
        .map_err(|e| e.to_string())?;
        let mut target = self.find_leader(group, &self.running()).await;
        let mut last = None;
        while Instant::now() < deadline {
            let Some(id) = target else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                target = self.find_leader(group, &self.running()).await;
                continue;
            };
            let answer = self
                .admin_json(id, Method::POST, "/admin/members", Some(&body))
                .await;
            match &answer {
                Some((s, v)) if s.is_success() => {
                    let reply: MembersReply = serde_json::from_value(v.clone())
                        .map_err(|e| format!("members reply {v}: {e}"))?;
                    if changes.iter().all(|c| shows(&reply, *c)) {
                        return Ok(reply);
                    }
                    // Answered for another entry at the change's index (a
                    // deposed leader's entry overwritten; NOTES-chaoslong.md
                    // finding 7): not made, ask again.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    target = self.find_leader(group, &self.running()).await;
                }
                Some((StatusCode::MISDIRECTED_REQUEST, v)) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    target = match v["leader"].as_u64() {
                        Some(l) if l != id => Some(l),
                        _ => self.find_leader(group, &self.running()).await,
                    };
                }
                Some((
                    StatusCode::CONFLICT
                    | StatusCode::SERVICE_UNAVAILABLE
                    | StatusCode::GATEWAY_TIMEOUT
                    | StatusCode::NOT_FOUND,
                    _,
                ))
                | None => {
                    // 404: the node asked no longer hosts the group (it was
                    // removed, or is the replica being replaced).
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    target = self.find_leader(group, &self.running()).await;
                }
                Some((StatusCode::INTERNAL_SERVER_ERROR, v))
                    if v["error"]
                        .as_str()
                        .is_some_and(|e| e.contains("proposal dropped")) =>
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    target = self.find_leader(group, &self.running()).await;
                }
                Some(_) => {
                    return Err(format!(
                        "membership change {changes:?} of group {group} on node {id}: {answer:?}"
                    ))
                }
            }
            last = answer;
        }
        Err(format!(
            "membership change {changes:?} of group {group} not done in time: last answer {last:?}"
        ))
    }

    /// Deletes node `id`'s replica of `group` (one its group no longer counts);
    /// fine if it already removed itself.
    pub async fn destroy_replica(&self, id: u64, group: u64) {
        // Like every non-GET node request, with the route's content type.
        let path = format!("/admin/replicas/{group}");
        let empty = Value::Object(Default::default());
        self.admin_ok(id, Method::DELETE, &path, &empty, &[StatusCode::NOT_FOUND])
            .await;
    }
}
