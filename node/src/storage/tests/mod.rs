//! Storage tests on real files: Raft `Storage` semantics, restart, crash recovery and
//! group commit.

mod support;
mod semantics;
