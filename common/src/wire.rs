//! Wire messages between processes: node-to-node Raft batches, the internal API the router
//! calls on nodes (bincode bodies), and the node's admin status (JSON).
//!
//! # Routes (served by every node on its `addr`)
//! Every route requires the cluster secret in the `x-cluster-secret` header
//! ([`crate::secret`]); without it a node answers 401 and does nothing. POST bodies must
//! have the content type the route speaks ([`BINCODE_CONTENT_TYPE`] or `application/json`),
//! else 415.
//! - `POST /raft/batch`: body [`RaftBatch`] (bincode). Raft traffic between nodes, except
//!   snapshots.
//! - `POST /raft/snapshot`: body [`RaftBatch`] (bincode) carrying snapshot messages (a
//!   larger body limit, `security.max_raft_snapshot_bytes`).
//! - `POST /internal/{group}/propose`: body = a [`Proposal`] of the group's command
//!   (bincode); reply [`InternalReply`] (bincode) whose `Ok` bytes are the state machine's
//!   encoded outcome.
//! - `POST /internal/{group}/read`: body = the group's encoded read request; linearizable
//!   (ReadIndex on the leader, then the read once the replica applied up to the read index);
//!   reply [`InternalReply`] whose `Ok` bytes are the state machine's encoded answer.
//! - `GET /internal/groups`: reply `Vec<GroupInfo>` (bincode), one per hosted group.
//! - `GET /admin/status`: reply [`NodeStatus`] (JSON).
//! - `POST /admin/partition` (JSON [`PartitionRequest`]), `POST /admin/delay` (JSON
//!   [`DelayRequest`]), `POST /admin/heal`: the transport fault filter used for chaos tests.
//! - `POST /admin/transfer-leader` (JSON [`TransferLeaderRequest`]).
//!
//! Propose and read take the caller's remaining time budget in the [`TIMEOUT_HEADER`]
//! header (milliseconds); without it the node uses the config's `router.request_timeout_ms`.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::placement::GroupKind;

/// Request header carrying the caller's time budget for a propose or read, in ms.
pub const TIMEOUT_HEADER: &str = "x-request-timeout-ms";

/// Content type of bincode bodies.
pub const BINCODE_CONTENT_TYPE: &str = "application/x-bincode";

/// One request of the Raft transport: every message queued for one destination node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RaftBatch {
    /// Sending node id.
    pub from: u64,
    pub messages: Vec<GroupMessage>,
}

/// A raft-rs `Message` (protobuf bytes) for the replica of `group` on the destination.
/// Encodes exactly like the tuple `(u64, Vec<u8>)`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupMessage {
    pub group: u64,
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

/// What a Raft group's log carries, and the body of `POST /internal/{group}/propose`: the
/// group's command (`command::ShardCommand`, `catalog::CatalogCommand`) with the request
/// header the node reads (TiKV's `RaftRequestHeader`). The node decodes it once, before
/// proposing: the request id attaches a retried proposal to the one in flight, and the
/// state machine applies a request id once.
///
/// The deadline is absolute (wall clock, see [`crate::clock`]): the router sends the same
/// proposal to several nodes in turn, and a copy that waited in some node's queue must not
/// start a fresh budget there. No node proposes it after the deadline, and the dedup
/// window keeps its request id until the log's clock is past the deadline (plus twice the
/// allowed clock skew), so a late copy can never apply a second time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal<C> {
    /// Unique per logical request (the router picks it, random 128 bits).
    pub request_id: u128,
    /// Unix ms after which no node may propose this request (0: already expired).
    pub deadline_ms: u64,
    pub command: C,
}

/// What a node reads from a proposal's header before proposing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProposalHeader {
    pub request_id: u128,
    pub deadline_ms: u64,
}

impl<C> Proposal<C> {
    pub fn header(&self) -> ProposalHeader {
        ProposalHeader {
            request_id: self.request_id,
            deadline_ms: self.deadline_ms,
        }
    }
}

/// Bytes of an encoded [`Proposal`] before its command: bincode writes the fields in
/// order, the request id as 16 bytes and the deadline as 8.
pub const PROPOSAL_HEADER_BYTES: u64 = 24;

/// Why a propose or read did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
pub enum InternalError {
    /// This replica is not the leader; retry on `leader` (a node id) if known, else after
    /// a short backoff. Nothing was proposed.
    #[error("not leader (leader hint: {leader:?})")]
    NotLeader { leader: Option<u64> },
    /// The deadline passed first. For a proposal the outcome is unknown: it may still
    /// commit (retry with the same request id).
    #[error("timed out")]
    Timeout,
    /// The deadline passed while the replica knew of no leader with a quorum.
    #[error("no quorum")]
    NoQuorum,
    /// The proposal was discarded before it committed (leader change overwrote it, or a
    /// leadership transfer was in progress): safe to retry.
    #[error("proposal dropped")]
    Dropped,
    /// This node hosts no replica of the group.
    #[error("unknown group {0}")]
    UnknownGroup(u64),
    /// The request itself is unusable (e.g. an empty command).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The body is larger than the node takes ([`crate::limits::MAX_PROPOSAL_BYTES`]);
    /// nothing was proposed, and retrying the same body cannot succeed.
    #[error("the request is {size} bytes, over the limit of {limit} bytes (MAX_PROPOSAL_BYTES)")]
    TooLarge { size: u64, limit: u64 },
    /// The node failed (I/O, shutting down).
    #[error("internal error: {0}")]
    Internal(String),
    /// The request did not carry the cluster secret (HTTP 401). Nothing was done.
    #[error("the node refused the request: missing or wrong cluster secret")]
    Unauthorized,
    /// The node serves as many requests as it allows (HTTP 503 with `Retry-After`).
    /// Nothing was done; retry after a pause.
    #[error("the node is overloaded; retry later")]
    Overloaded,
    /// This node's replica of the group is stopped (damaged storage, a panic while
    /// applying, lost data) and serves nothing; another replica can answer. Nothing was
    /// proposed or read.
    #[error("replica unavailable: {0}")]
    ReplicaFailed(String),
}

/// The reply of `/internal/{group}/propose` and `/internal/{group}/read`.
pub type InternalReply = Result<Vec<u8>, InternalError>;

/// Raft role of a replica.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RaftRole {
    Follower,
    Candidate,
    PreCandidate,
    Leader,
}

/// One hosted group, as `GET /internal/groups` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub group: u64,
    pub kind: GroupKind,
    pub role: RaftRole,
    /// Leader node id, if this replica knows one.
    pub leader: Option<u64>,
    pub term: u64,
    pub commit: u64,
    pub applied: u64,
}

/// Whether a replica runs.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReplicaState {
    /// Stepping, voting and serving.
    #[default]
    Running,
    /// Not started yet: a replica with no data waits until its peers confirm this node
    /// never took part in the group (see the node's amnesia check).
    Waiting,
    /// Stopped for good (until an operator acts): no stepping, no voting, no serving.
    Failed,
    /// Removed from its group: stopped, its data deleted, a tombstone left.
    Removed,
}

/// One replica, as `GET /admin/status` reports it. A replica that is not running reports
/// zeroes for the Raft fields and an empty digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub group: u64,
    pub kind: GroupKind,
    pub role: RaftRole,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub applied: u64,
    pub applied_term: u64,
    pub last_index: u64,
    pub snapshot_index: u64,
    /// The state machine's digest, 16 hex digits.
    pub digest: String,
    /// Records held, when the state machine counts them.
    pub records: Option<u64>,
    /// Shard replicas: record versions applied (and acknowledged) but not yet in the
    /// HNSW graph; queries scan them exactly. Writes wait above `[raft] max_index_lag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_lag: Option<u64>,
    /// Shard replicas: points this replica linked into its graphs from its leader's link
    /// hints, without a search, since it opened (a follower's; a leader's stays put).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linked_from_hints: Option<u64>,
    /// Node ids of the group's voters.
    pub voters: Vec<u64>,
    /// Node ids of the group's learners (replicas catching up before they vote).
    #[serde(default)]
    pub learners: Vec<u64>,
    /// The voters of the outgoing configuration while the group is in a joint one
    /// (empty otherwise).
    #[serde(default)]
    pub voters_outgoing: Vec<u64>,
    #[serde(default)]
    pub state: ReplicaState,
    /// The node this replica hands leadership to when it leads (see
    /// [`PreferredLeaderRequest`]).
    #[serde(default)]
    pub preferred_leader: Option<u64>,
    /// The group is idle and this replica stopped ticking until something wakes it
    /// (`raft.hibernate_after_ticks`).
    #[serde(default)]
    pub hibernating: bool,
    /// Why the replica is not running (e.g. `WAL damaged: <file> at offset N: ...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ReplicaStatus {
    /// A replica with no Raft state to show (not started, or stopped before it ran):
    /// zeroes, no voters, an empty digest.
    pub fn idle(group: u64, kind: GroupKind, state: ReplicaState, error: Option<String>) -> Self {
        ReplicaStatus {
            group,
            kind,
            role: RaftRole::Follower,
            term: 0,
            leader: None,
            commit: 0,
            applied: 0,
            applied_term: 0,
            last_index: 0,
            snapshot_index: 0,
            digest: String::new(),
            records: None,
            index_lag: None,
            linked_from_hints: None,
            voters: Vec::new(),
            learners: Vec::new(),
            voters_outgoing: Vec::new(),
            state,
            preferred_leader: None,
            hibernating: false,
            error,
        }
    }
}

/// `GET /admin/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: u64,
    pub replicas: Vec<ReplicaStatus>,
    /// Nodes this node currently drops Raft traffic to and from (the fault filter).
    pub blocked: Vec<u64>,
    /// Raft messages dropped by the transport (full queue, failed send, fault filter).
    pub dropped_messages: u64,
    /// Raft messages the transport delivered to other nodes since the node started
    /// (idle groups hibernate: this stops growing when nothing happens).
    #[serde(default)]
    pub sent_messages: u64,
    /// Whether the node's registration in the cluster map was accepted; `None` for a node
    /// that follows no map (test key/value state machines). A node that has not
    /// registered yet proposes its registration again, so the catalogue is not quiet.
    #[serde(default)]
    pub registered: Option<bool>,
}

/// How long a node's HTTP server keeps an idle connection open (keep-alive).
pub const NODE_KEEP_ALIVE: Duration = Duration::from_secs(75);

/// How long a client of a node (peers, routers, the placement driver, tools, tests)
/// keeps an idle pooled connection: shorter than [`NODE_KEEP_ALIVE`], so the client
/// always drops an idle connection first. The other way round (actix's 5 s keep-alive
/// against reqwest's 30-90 s pools), a request sent on a connection at the moment the
/// node closes it fails before any answer (hyper's "IncompleteMessage"; long-tier run
/// s21, seed 1000: a heal refused that way).
pub const NODE_CLIENT_POOL_IDLE: Duration = Duration::from_secs(30);

/// `POST /admin/partition`: drop all Raft traffic to and from these nodes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRequest {
    pub blocked: Vec<u64>,
}

/// `POST /admin/delay`: hold every Raft message this node sends for `ms` milliseconds
/// (at most [`MAX_FAULT_DELAY_MS`]; 0 clears it, and so does `POST /admin/heal`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelayRequest {
    pub ms: u64,
}

/// The longest fault delay `POST /admin/delay` accepts (10 s): past Raft's election
/// timeout many times over, a longer one only tests patience.
pub const MAX_FAULT_DELAY_MS: u64 = 10_000;

/// `POST /admin/transfer-leader`: ask this node's replica of `group`, if it leads, to hand
/// leadership to node `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferLeaderRequest {
    pub group: u64,
    pub to: u64,
}

/// One change of a group's membership (`POST /admin/members`). Raft peer ids are node
/// ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", content = "node", rename_all = "snake_case")]
pub enum MemberChange {
    /// A new replica that receives the log (or a snapshot) but does not vote yet.
    AddLearner(u64),
    /// A caught-up learner becomes a voter.
    Promote(u64),
    /// The replica leaves the group (a leader hands leadership over first).
    Remove(u64),
}

/// `POST /admin/members`, on the group's leader: the changes go in one conf change (two
/// or more: through a joint configuration, left automatically). Answered once applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersRequest {
    pub group: u64,
    pub changes: Vec<MemberChange>,
}

/// A group's configuration, as `POST /admin/members` answers it once applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembersReply {
    pub group: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The log index of the change (none when nothing had to change).
    #[serde(default)]
    pub index: Option<u64>,
}

/// `POST /admin/replicas`: host a new, empty replica of `group` on this node; it waits
/// for the group's leader (after an `add_learner`) to send it the log or a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateReplicaRequest {
    pub group: u64,
    /// The index of the conf change that added this node to the group (the answer of
    /// that `POST /admin/members`): the group's configurations before it are history
    /// to the new replica. 0: none (a replica created before it is added).
    #[serde(default)]
    pub joined_at: u64,
    /// For a first voter of a group created at run time: bootstrap the replica with the
    /// group's first configuration instead of waiting for a leader's log.
    #[serde(default)]
    pub bootstrap: Option<BootstrapReplica>,
}

/// `DELETE /admin/replicas/{group}`'s body (`{}` or none: the defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestroyReplicaRequest {
    /// The group was retired (the node checks the cluster map): the replica is deleted
    /// even while it leads, since its group is gone as a whole.
    #[serde(default)]
    pub retired: bool,
}

/// How a first voter of a group created at run time starts its replica (see
/// [`crate::registry::GroupBirth`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapReplica {
    /// The group's first voters (the receiving node among them).
    pub voters: Vec<u64>,
    /// The incarnation the receiving node had when it was chosen: a node that has
    /// another one lost its disk since, and refuses (it must not vote with an empty log
    /// in a group that may have moved on).
    pub incarnation: u64,
    /// The voter meant to lead first.
    pub leader: u64,
}

/// `POST /admin/preferred-leader`: the node this replica hands leadership to whenever it
/// leads and that node is caught up (`None`: nobody); replaces the config's choice until
/// the node restarts. The placement driver sets it on every replica of a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreferredLeaderRequest {
    pub group: u64,
    pub to: Option<u64>,
}

/// `POST /admin/peers`: the address of node `id` (a new node, or a node that moved).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerRequest {
    pub id: u64,
    pub addr: String,
}

#[derive(Debug, Error)]
#[error("bincode: {0}")]
pub struct WireError(#[from] bincode::Error);

/// Encodes a bincode body (bincode 1.3 defaults: fixed-width integers, little endian).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, WireError> {
    Ok(bincode::serialize(value)?)
}

/// The size of `value`'s bincode encoding, computed without encoding it.
pub fn encoded_size<T: Serialize + ?Sized>(value: &T) -> Result<u64, WireError> {
    Ok(bincode::serialized_size(value)?)
}

/// Decodes a bincode body; malformed input is an error, never a panic.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    Ok(bincode::deserialize(bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proposals_round_trip_and_cut_ones_are_an_error() {
        let shard = crate::command::Proposal {
            request_id: u128::MAX - 3,
            deadline_ms: 0,
            command: crate::command::ShardCommand::DropCollection {
                collection: "c".into(),
            },
        };
        let bytes = encode(&shard).unwrap();
        assert_eq!(decode::<crate::command::Proposal>(&bytes).unwrap(), shard);
        assert!(decode::<crate::command::Proposal>(&bytes[..10]).is_err());
        assert!(decode::<crate::command::Proposal>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn group_message_encodes_like_a_tuple() {
        let batch = RaftBatch {
            from: 3,
            messages: vec![GroupMessage {
                group: 7,
                message: vec![1, 2, 3],
            }],
        };
        let tuple: (u64, Vec<(u64, Vec<u8>)>) = (3, vec![(7, vec![1, 2, 3])]);
        assert_eq!(encode(&batch).unwrap(), encode(&tuple).unwrap());
        assert_eq!(
            decode::<RaftBatch>(&encode(&batch).unwrap()).unwrap(),
            batch
        );
    }

    #[test]
    fn replies_round_trip_and_garbage_is_an_error() {
        for reply in [
            Ok(vec![9u8; 5]),
            Err(InternalError::NotLeader { leader: Some(2) }),
            Err(InternalError::NoQuorum),
            Err(InternalError::TooLarge {
                size: 70 << 20,
                limit: 64 << 20,
            }),
        ] {
            let bytes = encode(&reply).unwrap();
            assert_eq!(decode::<InternalReply>(&bytes).unwrap(), reply);
        }
        assert!(decode::<InternalReply>(&[0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        assert!(decode::<RaftBatch>(&[
            1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
        ])
        .is_err());
    }

    mod fuzz {
        use proptest::prelude::*;

        use super::*;
        use crate::catalog::{CatalogProposal, CatalogRead};
        use crate::command::Proposal;
        use crate::read::ShardRead;

        /// Every decoder of bytes a node or router receives, on `bytes`: an error or a
        /// value, never a panic (or an allocation the input does not pay for).
        fn decode_all(bytes: &[u8]) {
            let _ = decode::<RaftBatch>(bytes);
            let _ = decode::<InternalReply>(bytes);
            let _ = decode::<Vec<GroupInfo>>(bytes);
            let _ = decode::<Proposal>(bytes);
            let _ = decode::<CatalogProposal>(bytes);
            let _ = decode::<ShardRead>(bytes);
            let _ = decode::<CatalogRead>(bytes);
        }

        fn valid_batch() -> impl Strategy<Value = Vec<u8>> {
            (
                any::<u64>(),
                prop::collection::vec(
                    (any::<u64>(), prop::collection::vec(any::<u8>(), 0..40)),
                    0..4,
                ),
            )
                .prop_map(|(from, messages)| {
                    encode(&RaftBatch {
                        from,
                        messages: messages
                            .into_iter()
                            .map(|(group, message)| GroupMessage { group, message })
                            .collect(),
                    })
                    .unwrap()
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            #[test]
            fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
                decode_all(&bytes);
            }

            /// Valid encodings with bytes flipped, cut or grown: lengths and tags that
            /// are almost right reach deeper into the decoders than random bytes.
            #[test]
            fn mutated_batches_never_panic(
                batch in valid_batch(),
                flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
                cut in any::<prop::sample::Index>(),
            ) {
                let mut bytes = batch;
                for (at, value) in flips {
                    if !bytes.is_empty() {
                        let i = at.index(bytes.len());
                        bytes[i] = value;
                    }
                }
                decode_all(&bytes);
                let keep = cut.index(bytes.len() + 1);
                decode_all(&bytes[..keep]);
            }
        }
    }
}
