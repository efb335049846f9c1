//! The node's part in the cluster map ([`common::registry`]): it announces itself (id,
//! address, incarnation) to the metadata group on every start, then follows the map so
//! its transport knows every node's address, including nodes that joined after it
//! started.

mod registration;

pub use registration::{register_and_follow, Registrar, MAP_FOLLOW_EVERY};
