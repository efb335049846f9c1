//! The receiving side: `POST /raft/batch`. Decodes the batch, drops it whole if the sender
//! is blocked by the fault filter, and delivers each group's messages, in order, to the
//! local replica. A message for a group this node does not host is dropped with a warning.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use common::wire::{self, RaftBatch};
use raft::prelude::Message;

use super::{FaultFilter, Mailboxes};

/// Largest accepted batch (snapshots travel in batches too).
pub const MAX_BATCH_BYTES: usize = 1 << 30;

/// Batches above this size are decoded on the blocking pool, not on the HTTP worker.
const INLINE_DECODE_BYTES: usize = 1 << 20;

#[derive(Clone)]
pub struct Inbound {
    pub node_id: u64,
    pub filter: Arc<FaultFilter>,
    pub mailboxes: Arc<dyn Mailboxes>,
}

/// Registers `POST /raft/batch`.
pub fn configure(cfg: &mut web::ServiceConfig, inbound: Inbound) {
    cfg.service(
        web::resource("/raft/batch")
            .app_data(web::PayloadConfig::new(MAX_BATCH_BYTES))
            .app_data(web::Data::new(inbound))
            .route(web::post().to(raft_batch)),
    );
}

/// A decoded batch: the sender, then per-group runs of messages in arrival order.
pub struct Decoded {
    pub from: u64,
    pub runs: Vec<(u64, Vec<Message>)>,
}

/// Decodes a batch into per-group runs of messages for this node, in arrival order.
pub fn decode_batch(node_id: u64, body: &[u8]) -> Result<Decoded, String> {
    let batch: RaftBatch = wire::decode(body).map_err(|e| e.to_string())?;
    let mut runs: Vec<(u64, Vec<Message>)> = Vec::new();
    for gm in batch.messages {
        let m: Message = match protobuf::Message::parse_from_bytes(&gm.message) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(from = batch.from, group = gm.group, error = %e, "undecodable raft message dropped");
                continue;
            }
        };
        if m.to != node_id {
            tracing::warn!(
                from = batch.from,
                group = gm.group,
                to = m.to,
                "raft message for another node dropped"
            );
            continue;
        }
        match runs.last_mut() {
            Some((g, ms)) if *g == gm.group => ms.push(m),
            _ => runs.push((gm.group, vec![m])),
        }
    }
    Ok(Decoded {
        from: batch.from,
        runs,
    })
}

async fn raft_batch(body: web::Bytes, inbound: web::Data<Inbound>) -> HttpResponse {
    let node_id = inbound.node_id;
    let decoded = if body.len() > INLINE_DECODE_BYTES {
        match web::block(move || decode_batch(node_id, &body)).await {
            Ok(r) => r,
            Err(e) => Err(e.to_string()),
        }
    } else {
        decode_batch(node_id, &body)
    };
    let Decoded { from, runs } = match decoded {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, "bad raft batch");
            return HttpResponse::BadRequest().body(e);
        }
    };
    if inbound.filter.is_blocked(from) {
        return HttpResponse::ServiceUnavailable().body("partitioned");
    }
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
        let Decoded { from, runs } = decode_batch(1, &wire::encode(&batch).unwrap()).unwrap();
        assert_eq!(from, 2);
        let shape: Vec<(u64, Vec<u64>)> = runs
            .iter()
            .map(|(g, ms)| (*g, ms.iter().map(|m| m.index).collect()))
            .collect();
        assert_eq!(shape, vec![(1, vec![10, 11]), (3, vec![5]), (1, vec![12])]);
        assert!(decode_batch(1, b"garbage").is_err());
    }
}
