//! rill-sim: the deterministic simulation harness.
//!
//! Under `--cfg madsim` every rill process (JobManager, TaskManagers, a client) runs as a madsim
//! node whose init future is the production code, on a simulated network with a seeded
//! scheduler, so a seed replays bit for bit. The pieces that need no simulator (fault and
//! scenario types, scenario files, run histories, checkers, shrinking, reports) build on real
//! tokio too, so they are unit-tested in both builds.

#![warn(missing_docs)]

#[cfg(madsim)]
pub mod apply;
pub mod buggify;
pub mod check;
#[cfg(madsim)]
pub mod cli;
#[cfg(madsim)]
pub mod cluster;
pub mod collected;
pub mod corpus;
pub mod events;
pub mod expected;
pub mod fault;
#[cfg(madsim)]
pub mod fuzz;
pub mod history;
pub mod judge;
pub mod node;
pub mod parity;
#[cfg(not(madsim))]
pub mod real;
pub mod report;
#[cfg(madsim)]
pub mod runner;
pub mod scenario;
pub mod scenario_file;
pub mod shrink;
pub mod store;
pub mod swarm;
pub mod testing;
pub mod timeline;
pub mod trace;

pub use events::{EventRecorder, RecordedEvent};
pub use fault::{Direction, Fault, FaultKind, StoreFailureMode};
pub use history::{
    AppliedFault, CommitRecord, MemorySample, OutputRecord, Placement, RunEnd, RunHistory,
    TraceLine, Verdict,
};
pub use node::NodeName;
pub use scenario::{
    ClusterShape, DeliveryMode, Expectations, JobOutcome, Scenario, Swarm, CHECKPOINT_STORE,
    EXTERNAL_NODES, SINK_STORE, SOURCE_LOG,
};
pub use store::SimCheckpointStore;

/// The command that replays a simulated test of this workspace's `rill-tests` under madsim's
/// test seed `seed`. Tests that run the harness over seeds of their own (any user's crate)
/// use [`testing::seeds`] and [`testing::replay`] instead.
pub fn replay_command(test: &str, seed: u64) -> String {
    format!(
        "MADSIM_TEST_SEED={seed} RUSTFLAGS=\"--cfg madsim\" CARGO_TARGET_DIR=target-sim cargo test -p rill-tests -- --exact {test} --nocapture"
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn replay_command_names_seed_and_test() {
        let cmd = super::replay_command("sim_keyed_count::exact_output", 42);
        assert!(cmd.starts_with("MADSIM_TEST_SEED=42 "));
        assert!(cmd.contains("--cfg madsim") && cmd.contains("sim_keyed_count::exact_output"));
    }
}

// The simulated half of the first sample (`#[cfg(madsim)]`) is compiled only with
// RUSTDOCFLAGS="--cfg madsim" as well: rustdoc does not read RUSTFLAGS.
/// The README's code samples, compiled as doc tests.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
