//! A shard replica's state: the state machine, its filter index and its
//! per-collection vector index.

pub mod index;
