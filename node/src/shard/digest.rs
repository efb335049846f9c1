//! An order-independent digest of a shard's records (architecture.md, promise 5). The
//! per-record hash lives in `common::digest`: a backup file is checked against it outside
//! the node (the backup CLI recomputes every collection's digest from the records).

pub use common::digest::{combine, record_hash};
