//! Power loss of one node: every write it had not fsynced is gone.
//!
//! The node must run with `NODE_FAULT_STORAGE=lose-unsynced`
//! ([`power_loss_program`] sets it): its WAL segments and snapshot files then
//! keep written bytes in the process's memory until they are fsynced
//! (`common::synced_file`), so a SIGKILL loses exactly what a power cut would
//! (a kill -9 without the mode loses nothing that reached the page cache).
//! Heal: [`Cluster::spawn_node`] restarts the node on what was synced.

use common::synced_file::{FAULT_STORAGE_ENV, LOSE_UNSYNCED};

use crate::cluster::NodeProgram;
use crate::Cluster;

/// `program` with the lose-unsynced storage mode on every node.
pub fn power_loss_program(mut program: NodeProgram) -> NodeProgram {
    program
        .env
        .push((FAULT_STORAGE_ENV.to_owned(), LOSE_UNSYNCED.to_owned()));
    program
}

impl Cluster {
    /// Cuts node `id`'s power: SIGKILL of a node running in the
    /// lose-unsynced mode, so whatever it wrote and had not fsynced is lost.
    /// Panics if the cluster's nodes do not run in that mode (the cut would
    /// then be an ordinary kill -9). Heal: [`Cluster::spawn_node`].
    pub fn power_cut(&self, id: u64) {
        let mode = self
            .node_program()
            .env
            .iter()
            .any(|(k, v)| k == FAULT_STORAGE_ENV && v == LOSE_UNSYNCED);
        assert!(
            mode,
            "power_cut needs nodes started with faults::power::power_loss_program"
        );
        self.kill_node(id);
    }
}
