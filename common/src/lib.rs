//! Types shared by every process of the cluster: records and metadata, the
//! `where` / `where_document` filter language, distance spaces, shard
//! commands, and (later) the wire messages and cluster configuration.

pub mod catalog;
pub mod command;
pub mod config;
pub mod distance;
pub mod error;
pub mod filter;
pub mod fs;
pub mod hash;
pub mod limits;
pub mod placement;
pub mod read;
pub mod record;
pub mod secret;
pub mod wire;

pub use distance::Space;
pub use error::CommonError;
pub use filter::Filter;
pub use record::{Metadata, MetadataValue, Record};
