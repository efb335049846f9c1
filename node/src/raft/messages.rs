//! What a replica actor accepts. Callers build a [`Waiter`] with their deadline, send the
//! message with `do_send`, and await the waiter's receiver.

use common::wire::{InternalReply, MemberChange, ProposalHeader};
use raft::prelude::Message;

use super::pending::{ReadReply, Waiter};
use super::replica::MembershipError;
use crate::transport::SendReport;

/// Raft messages from peers (all for this group, in arrival order).
pub struct StepBatch(pub Vec<Message>);

impl actix::Message for StepBatch {
    type Result = ();
}

/// Propose an encoded `Proposal` whose header the caller read
/// ([`super::ReplicaHandle::admit`]). Answered when the entry is applied (with the state
/// machine's encoded result), or with `NotLeader`, `Dropped`, `Timeout`, `NoQuorum`.
pub struct Propose {
    pub header: ProposalHeader,
    pub data: Vec<u8>,
    pub waiter: Waiter<InternalReply>,
}

impl actix::Message for Propose {
    type Result = ();
}

/// Confirm leadership with ReadIndex and wait until the read index is applied. `Ok(())`
/// means the caller may now read the state machine linearizably.
pub struct ReadIndex {
    pub waiter: Waiter<ReadReply>,
}

impl actix::Message for ReadIndex {
    type Result = ();
}

/// Hand leadership to node `to` (ignored unless this replica leads).
pub struct SetPreferredLeader {
    pub to: Option<u64>,
}

impl actix::Message for SetPreferredLeader {
    type Result = ();
}

/// Hands leadership to node `to` now (if this replica leads).
pub struct TransferLeader {
    pub to: u64,
}

impl actix::Message for TransferLeader {
    type Result = ();
}

/// Change the group's membership (on the leader). Answered when the conf change entry is
/// in the leader's log, with its index (`None`: nothing to change), or why not.
pub struct ChangeMembership {
    pub changes: Vec<MemberChange>,
    pub reply: tokio::sync::oneshot::Sender<Result<Option<u64>, MembershipError>>,
}

impl actix::Message for ChangeMembership {
    type Result = ();
}

/// Remove this replica from the node: stop it, delete its data, leave a tombstone. The
/// caller has made sure the group no longer counts it (its leader's configuration does
/// not hold this node); a leader refuses.
pub struct Destroy {
    /// Its group was retired: a leader is destroyed too.
    pub retired: bool,
    pub reply: tokio::sync::oneshot::Sender<Result<(), MembershipError>>,
}

impl actix::Message for Destroy {
    type Result = ();
}

/// The transport's report about messages sent to node `to`.
pub struct Report {
    pub to: u64,
    pub report: SendReport,
}

impl actix::Message for Report {
    type Result = ();
}

/// A command the replica's background work answered (an encoded proposal): proposed
/// if the replica leads, dropped otherwise; nobody waits for it.
pub struct ProposeBackground {
    pub data: Vec<u8>,
}

impl actix::Message for ProposeBackground {
    type Result = ();
}

/// Internal: run the ready loop (scheduled once per batch of handled messages).
pub(super) struct RunReady;

impl actix::Message for RunReady {
    type Result = ();
}
