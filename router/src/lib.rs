//! The router: a stateless HTTP front end serving Chroma's v2 API over the
//! cluster. `api` holds the endpoints (Chroma's JSON in and out),
//! `records` the record operations across a collection's shards, `routing`
//! which shard group holds an id, `merge` joining the shards' answers,
//! `shards` the shard-client trait (over HTTP, or in memory for tests) with
//! lazy repair of missing parts, `cluster` the client of the nodes'
//! internal API (leader following, retries, deadlines), `catalog` the
//! metadata group's view with a collection cache, `settings` the router's
//! options, `auth` token authentication, `limits` the bound on requests in
//! flight, `metrics` the Prometheus `/metrics`, `tls` the optional HTTPS
//! setup, `dashboard` the live cluster page (`/dashboard`), `trace` request ids (`chroma-trace-id`), `error` the one error type
//! and its Chroma JSON form, `server` startup, `embedding` all-MiniLM-L6-v2
//! document embeddings (candle), `backup` the backup and restore of a whole
//! cluster (the `backup` binary).

pub mod api;
pub mod auth;
pub mod backup;
pub mod catalog;
pub mod cluster;
pub mod dashboard;
pub mod embedding;
pub mod error;
pub mod limits;
pub mod merge;
pub mod metrics;
pub mod records;
pub mod routing;
pub mod server;
pub mod settings;
pub mod shards;
pub mod tls;
pub mod trace;
