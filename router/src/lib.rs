//! The router: a stateless HTTP front end serving Chroma's v2 API over the
//! cluster. `api` holds the endpoints, `cluster` the client of the nodes'
//! internal API (leader following, retries, deadlines), `catalog` the
//! metadata group's view with a collection cache, `shards` the per-shard
//! commands and reads of one collection, `settings` the router's options,
//! `auth` token authentication, `limits` the bound on requests in flight, `tls` the optional HTTPS setup,
//! `error` the one error type and its Chroma JSON form, `server` startup,
//! `embedding` all-MiniLM-L6-v2 document embeddings (candle).

pub mod api;
pub mod auth;
pub mod catalog;
pub mod cluster;
pub mod embedding;
pub mod error;
pub mod limits;
pub mod server;
pub mod settings;
pub mod shards;
pub mod tls;
