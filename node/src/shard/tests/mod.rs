//! Tests of the shard state machine against a brute-force model.

mod model;
mod oracle;
mod restore;
mod rules;
