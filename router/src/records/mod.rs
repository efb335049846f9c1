//! The record operations of one collection across its shards, below the
//! HTTP API and free of Chroma's JSON: add / upsert / update and delete
//! (`write`), get / count / query (`read`). Each splits its request by
//! `crate::routing`, runs the parts through the shard client
//! (`crate::shards`) and joins the answers with `crate::merge`; the unit
//! tests (`tests.rs`) drive them through the in-memory shard client.

mod read;
mod write;

#[cfg(test)]
mod tests;

use common::Filter;

pub use self::read::{count, get, query, Query};
pub use self::write::{delete, write, WriteKind};

/// Which records a get or delete selects.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub ids: Option<Vec<String>>,
    pub filter: Filter,
    pub limit: Option<usize>,
}

impl Selection {
    /// An explicit empty id list selects nothing (no shard is asked).
    pub fn is_nothing(&self) -> bool {
        self.ids.as_ref().is_some_and(Vec::is_empty)
    }
}
