//! The router's client of the nodes' internal API lives in `common` (the nodes use the
//! same client to reach the metadata group): see [`common::group_client`].

pub use common::group_client::{ClientInitError, ClusterClient, ClusterError, Op};
