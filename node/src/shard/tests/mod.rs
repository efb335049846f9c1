//! Tests of the shard state machine against a brute-force model.

mod hints;
mod limits;
mod model;
mod oracle;
mod restore;
mod rules;
mod steps;
mod tail;
