//! The receiving side: `POST /raft/batch` and `POST /raft/snapshot` (the same body, a
//! larger size limit: snapshot messages go only there). The cluster secret is checked
//! before (by [`crate::api::gate`]). A batch is refused whole (403) unless its sender is a
//! configured node other than this one, and dropped whole if the fault filter blocks the
//! sender. Within it, a message is dropped (with a warning) when it cannot be decoded,
//! its `from` is not the batch's sender, it is for another node, or it is a snapshot on
//! the batch route. The rest is delivered, in order, to the local replica of each group,
//! which checks each message against its Raft state before stepping it
//! ([`crate::raft::inbound`]).

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use common::wire::{self, RaftBatch};
use raft::prelude::{Message, MessageType};

use super::{FaultFilter, Mailboxes, PeerBook};

/// Route of Raft traffic other than snapshots.
pub const BATCH_PATH: &str = "/raft/batch";
/// Route of snapshot messages.
pub const SNAPSHOT_PATH: &str = "/raft/snapshot";

/// What a snapshot request may carry beyond the snapshot message itself (batch framing).
const SNAPSHOT_FRAMING_BYTES: usize = 64 << 10;

/// Batches above this size are decoded on the blocking pool, not on the HTTP worker.
const INLINE_DECODE_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct Inbound {
    pub node_id: u64,
    /// Every other node of the cluster (the address book, updated as nodes join): the
    /// only accepted senders.
    pub peers: Arc<PeerBook>,
    pub filter: Arc<FaultFilter>,
    pub mailboxes: Arc<dyn Mailboxes>,
    /// Records the sender of every batch accepted (empty keepalives included).
    pub liveness: Arc<super::PeerLiveness>,
    /// Body limit of [`BATCH_PATH`] (`security.max_raft_batch_bytes`).
    pub max_batch_bytes: usize,
    /// Snapshot message limit of [`SNAPSHOT_PATH`] (`security.max_raft_snapshot_bytes`).
    pub max_snapshot_bytes: usize,
}

/// Which route a batch came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Batch,
    Snapshot,
}

/// Registers `POST /raft/batch` and `POST /raft/snapshot`.
pub fn configure(cfg: &mut web::ServiceConfig, inbound: Inbound) {
    let batch_limit = inbound.max_batch_bytes;
    let snapshot_limit = inbound
        .max_snapshot_bytes
        .saturating_add(SNAPSHOT_FRAMING_BYTES);
    let data = web::Data::new(inbound);
    cfg.service(
        web::resource(BATCH_PATH)
            .app_data(web::PayloadConfig::new(batch_limit))
            .app_data(data.clone())
            .route(web::post().to(|body, inbound| raft_batch(body, inbound, Lane::Batch))),
    )
    .service(
        web::resource(SNAPSHOT_PATH)
            .app_data(web::PayloadConfig::new(snapshot_limit))
            .app_data(data)
            .route(web::post().to(|body, inbound| raft_batch(body, inbound, Lane::Snapshot))),
    );
}

/// A decoded batch: the sender, then per-group runs of messages in arrival order.
pub struct Decoded {
    pub from: u64,
    pub runs: Vec<(u64, Vec<Message>)>,
}

/// Why a batch was refused whole.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("undecodable raft batch: {0}")]
    Undecodable(#[from] wire::WireError),
    #[error("raft batch from node {0}, which is not a peer of this node")]
    UnknownSender(u64),
}

/// Decodes a batch into per-group runs of messages for this node, in arrival order,
/// dropping each message that is undecodable, not from the batch's sender, for another
/// node, or (on the batch lane) a snapshot.
pub fn decode_batch(
    node_id: u64,
    peers: &BTreeSet<u64>,
    lane: Lane,
    body: &[u8],
) -> Result<Decoded, BatchError> {
    let batch: RaftBatch = wire::decode(body)?;
    let from = batch.from;
    if from == node_id || !peers.contains(&from) {
        return Err(BatchError::UnknownSender(from));
    }
    let mut runs: Vec<(u64, Vec<Message>)> = Vec::new();
    for gm in batch.messages {
        let group = gm.group;
        let m: Message = match protobuf::Message::parse_from_bytes(&gm.message) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(from, group, error = %e, "undecodable raft message dropped");
                continue;
            }
        };
        let why = if m.from != from {
            Some("its sender is not the batch's sender")
        } else if m.to != node_id {
            Some("it is for another node")
        } else if lane == Lane::Batch && m.get_msg_type() == MessageType::MsgSnapshot {
            Some("snapshots travel only on the snapshot route")
        } else {
            None
        };
        if let Some(why) = why {
            tracing::warn!(
                from,
                group,
                msg_from = m.from,
                to = m.to,
                "raft message dropped: {why}"
            );
            continue;
        }
        match runs.last_mut() {
            Some((g, ms)) if *g == group => ms.push(m),
            _ => runs.push((group, vec![m])),
        }
    }
    Ok(Decoded { from, runs })
}

async fn raft_batch(body: web::Bytes, inbound: web::Data<Inbound>, lane: Lane) -> HttpResponse {
    let decoded = if body.len() > INLINE_DECODE_BYTES {
        let inbound = inbound.clone();
        match web::block(move || decode_batch(inbound.node_id, &inbound.peers.ids(), lane, &body))
            .await
        {
            Ok(r) => r,
            Err(e) => return HttpResponse::InternalServerError().body(e.to_string()),
        }
    } else {
        decode_batch(inbound.node_id, &inbound.peers.ids(), lane, &body)
    };
    let Decoded { from, runs } = match decoded {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "raft batch refused");
            return match e {
                BatchError::Undecodable(_) => HttpResponse::BadRequest().body(e.to_string()),
                BatchError::UnknownSender(_) => HttpResponse::Forbidden().body(e.to_string()),
            };
        }
    };
    if inbound.filter.is_blocked(from) {
        return HttpResponse::ServiceUnavailable().body("partitioned");
    }
    inbound.liveness.heard_from(from);
    for (group, messages) in runs {
        if !inbound.mailboxes.deliver(group, messages) {
            tracing::warn!(
                from,
                group,
                "raft messages for a group this node does not host dropped"
            );
        }
    }
    HttpResponse::Ok().finish()
}

#[cfg(test)]
mod tests {
    use common::wire::GroupMessage;
    use raft::prelude::MessageType;

    use super::*;

    fn msg(to: u64, index: u64) -> Vec<u8> {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = to;
        m.from = 2;
        m.index = index;
        protobuf::Message::write_to_bytes(&m).unwrap()
    }

    #[test]
    fn batches_decode_into_ordered_runs_per_group() {
        let batch = RaftBatch {
            from: 2,
            messages: vec![
                GroupMessage {
                    group: 1,
                    message: msg(1, 10),
                },
                GroupMessage {
                    group: 1,
                    message: msg(1, 11),
                },
                GroupMessage {
                    group: 3,
                    message: msg(1, 5),
                },
                GroupMessage {
                    group: 3,
                    message: msg(7, 6),
                },
                GroupMessage {
                    group: 3,
                    message: vec![0xff, 0xff, 0xff],
                },
                GroupMessage {
                    group: 1,
                    message: msg(1, 12),
                },
            ],
        };
        let peers: BTreeSet<u64> = [2, 3].into();
        let encoded = wire::encode(&batch).unwrap();
        let Decoded { from, runs } = decode_batch(1, &peers, Lane::Batch, &encoded).unwrap();
        assert_eq!(from, 2);
        let shape: Vec<(u64, Vec<u64>)> = runs
            .iter()
            .map(|(g, ms)| (*g, ms.iter().map(|m| m.index).collect()))
            .collect();
        assert_eq!(shape, vec![(1, vec![10, 11]), (3, vec![5]), (1, vec![12])]);
        assert!(decode_batch(1, &peers, Lane::Batch, b"garbage").is_err());
    }

    #[test]
    fn batches_from_strangers_are_refused_and_spoofed_messages_dropped() {
        let peers: BTreeSet<u64> = [2, 3].into();
        let batch = |from: u64, messages: Vec<Vec<u8>>| {
            wire::encode(&RaftBatch {
                from,
                messages: messages
                    .into_iter()
                    .map(|message| GroupMessage { group: 1, message })
                    .collect(),
            })
            .unwrap()
        };
        for stranger in [1, 4, 0] {
            let body = batch(stranger, vec![msg(1, 1)]);
            assert!(matches!(
                decode_batch(1, &peers, Lane::Batch, &body),
                Err(BatchError::UnknownSender(s)) if s == stranger
            ));
        }
        // msg() says from = 2: from node 3's batch it is spoofed.
        let Decoded { runs, .. } =
            decode_batch(1, &peers, Lane::Batch, &batch(3, vec![msg(1, 1)])).unwrap();
        assert!(runs.is_empty());
        let mut snap = Message::default();
        snap.set_msg_type(MessageType::MsgSnapshot);
        snap.from = 2;
        snap.to = 1;
        let snap = protobuf::Message::write_to_bytes(&snap).unwrap();
        let body = batch(2, vec![snap]);
        let Decoded { runs, .. } = decode_batch(1, &peers, Lane::Batch, &body).unwrap();
        assert!(runs.is_empty(), "a snapshot on the batch route is dropped");
        let Decoded { runs, .. } = decode_batch(1, &peers, Lane::Snapshot, &body).unwrap();
        assert_eq!(runs.len(), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Arbitrary bytes, and batches of arbitrary "messages", never panic the decoder.
        #[test]
        fn the_batch_decoder_never_panics(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            messages in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64), 0..4),
        ) {
            let peers: BTreeSet<u64> = [2, 3].into();
            let _ = decode_batch(1, &peers, Lane::Batch, &bytes);
            let body = wire::encode(&RaftBatch {
                from: 2,
                messages: messages
                    .into_iter()
                    .map(|message| GroupMessage { group: 1, message })
                    .collect(),
            })
            .unwrap();
            let _ = decode_batch(1, &peers, Lane::Snapshot, &body);
        }
    }
}
