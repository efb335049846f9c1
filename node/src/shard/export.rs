//! A shard's content for a backup (`common::backup`): per collection its part's index
//! settings and dimension, then its records in id order in frames of
//! [`RECORDS_PER_FRAME`], and what the summary says of it (count and digest, the same
//! digest the replica reports). Runs under the state machine's read lock; only one frame
//! of records is copied at a time.

use std::collections::BTreeMap;
use std::io;

use common::backup::{BackupItem, BackupRecord, CollectionCount, RECORDS_PER_FRAME};

use super::ShardStateMachine;

impl ShardStateMachine {
    /// See `StateMachine::export`.
    pub fn export(
        &self,
        include_records: bool,
        out: &mut dyn FnMut(BackupItem) -> io::Result<()>,
    ) -> io::Result<BTreeMap<String, CollectionCount>> {
        let mut summary = BTreeMap::new();
        for (id, c) in &self.collections {
            let state = c.state();
            out(BackupItem::ShardCollection {
                id: id.clone(),
                config: state.config.clone(),
                dimension: state.dimension.and_then(|d| u32::try_from(d).ok()),
            })?;
            if include_records {
                let mut batch = Vec::with_capacity(RECORDS_PER_FRAME);
                for (record_id, r) in &state.records {
                    batch.push(BackupRecord {
                        id: record_id.clone(),
                        embedding: r.embedding.to_vec(),
                        metadata: r.metadata.clone(),
                        document: r.document.clone(),
                        uri: r.uri.clone(),
                    });
                    if batch.len() == RECORDS_PER_FRAME {
                        out(BackupItem::Records(std::mem::take(&mut batch)))?;
                    }
                }
                if !batch.is_empty() {
                    out(BackupItem::Records(batch))?;
                }
            }
            summary.insert(
                id.clone(),
                CollectionCount {
                    records: c.len() as u64,
                    digest: c.digest(id, 0),
                },
            );
        }
        Ok(summary)
    }
}
