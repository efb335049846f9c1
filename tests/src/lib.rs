//! End-to-end tests across processes through the router (Chroma's HTTP API)
//! live in this crate's `tests/`; node-level multi-process tests live in
//! `node/tests/` because they need the node binary's path from Cargo.
