//! The placement driver: keeps every group at the replication factor on live nodes,
//! replaces replicas that lost their data (a wiped node comes back as a new member of
//! each group, never voting with a lost log), rebuilds the replicas of a node down longer
//! than `placement.down_after_secs` elsewhere, empties draining nodes, and spreads
//! replicas and leaders evenly. It runs on every node and acts only where the node's
//! replica leads the metadata group.
//!
//! - [`view`]: one round's observation (node statuses, group configurations, the map)
//!   and the operator's summary of it.
//! - [`plan`]: the rules, pure.
//! - [`driver`]: the loop that observes, plans and acts through the admin API.
//! - [`calls`]: the JSON requests to nodes.

pub mod calls;
pub mod driver;
pub mod plan;
pub mod view;

pub use driver::Driver;
