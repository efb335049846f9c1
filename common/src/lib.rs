//! Types shared by the router and the nodes, with no HTTP or Chroma JSON in
//! them (that lives in the router's `api`):
//!
//! - `record`, `filter`, `distance`: records and their metadata, the `where` /
//!   `where_document` filter language, distance spaces and kernels.
//! - `command`, `read`: what a shard's Raft log carries and what a shard answers.
//! - `catalog`: the metadata group's commands, reads, models, typed collection
//!   configuration and its validation rules, and its errors.
//! - `wire`: messages between processes (Raft batches, internal API, status).
//! - `config`, `placement`, `secret`: the cluster configuration file, where
//!   groups live, the cluster secret.
//! - `limits`, `hash`, `digest`, `error`: size limits, the stable hash, the
//!   order-independent record digest, `CommonError`.
//! - `registry`: the cluster map (nodes, incarnations, group replicas) the metadata group keeps.
//! - `clock`: wall-clock deadlines and entry stamps, and the clock skew they assume.
//! - `group_client` (feature `client`): calls to a Raft group's leader over the nodes'
//!   internal API, following leader changes and the cluster map.
//! - `backup`: the backup stream of one group (frames, checks).
//! - `logging`: the processes' log setup (`--log-format text|json`, `RUST_LOG`) and the
//!   request id header the router sends the nodes.
//! - `metrics`: Prometheus metrics both processes export (requests, memory, the scrape).

pub mod backup;
pub mod catalog;
pub mod clock;
pub mod command;
pub mod config;
pub mod digest;
pub mod distance;
pub mod error;
pub mod filter;
pub mod fs;
#[cfg(feature = "client")]
pub mod group_client;
pub mod hash;
pub mod limits;
pub mod logging;
pub mod metrics;
pub mod placement;
pub mod read;
pub mod record;
pub mod registry;
pub mod secret;
pub mod synced_file;
pub mod wire;

pub use distance::Space;
pub use error::CommonError;
pub use filter::Filter;
pub use record::{Metadata, MetadataValue};
