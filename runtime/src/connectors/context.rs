//! What a source or a sink needs from the subtask it runs in: who it is, what it restores,
//! where it leaves work for its task, and the TaskManager's connections to external systems.
//!
//! A trait, so the connectors depend on the chain's plumbing (`crate::chain`) and not on the
//! API that builds jobs from them: `api::OperatorContext` implements it, and a source or sink
//! factory hands its `&OperatorContext` straight to `LogSource::open` or
//! `SinkSpec::instantiate`.

use super::log_service::LogClients;
use super::sink_batcher::SinkClients;
use super::sink_store::CollectStore;
use super::write_grant::WriteGrant;
use crate::chain::TaskWaits;
use crate::ids::CheckpointId;
use crate::ids::{ExecutionAttemptId, JobId};
use crate::state::{OperatorState, StateSlot};

/// The subtask a connector runs in, as the connector sees it.
pub trait ConnectorContext {
    /// The job the connector belongs to (its id at the JobManager).
    fn job(&self) -> JobId;
    /// The attempt the connector runs in (its vertex, subtask and attempt number).
    fn attempt(&self) -> ExecutionAttemptId;
    /// How many subtasks the connector's operator runs as.
    fn parallelism(&self) -> u32;
    /// The connector's operator name, as the job named it.
    fn operator_name(&self) -> &str;
    /// A sink's write grant from the JobManager (`connectors::write_grant`).
    fn sink_grant(&self) -> WriteGrant;
    /// The connector's state in the checkpoint the attempt restores from, if any.
    fn restored(&self) -> Option<&OperatorState>;
    /// The checkpoint the attempt restores from, if any.
    fn restored_checkpoint(&self) -> Option<CheckpointId>;
    /// Where the connector leaves work the task must see finished before it goes on.
    fn waits(&self) -> &TaskWaits;
    /// The name of the TaskManager the subtask runs on.
    fn taskmanager(&self) -> &str;
    /// The TaskManager's in-process sink store; only in-process deployments have one.
    fn collect_store(&self) -> Option<&CollectStore>;
    /// The TaskManager's connections to log servers.
    fn log_clients(&self) -> &LogClients;
    /// The TaskManager's connections to sink stores.
    fn sink_clients(&self) -> &SinkClients;
    /// Where the connector records its state (a source's positions, a sink's committables)
    /// when a checkpoint barrier passes it.
    fn state_slot(&self) -> StateSlot;

    /// The subtask's index within the operator.
    fn subtask(&self) -> u32 {
        self.attempt().subtask
    }
}

/// A subtask's context for connector unit tests: one attempt of subtask 0 of 1, with an
/// in-process sink store and, optionally, the state it restores from.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::config::Configuration;
    use crate::ids::VertexId;
    use crate::state::{TaskRestore, TaskSnapshot, TaskStateHandle};

    pub(crate) struct TestContext {
        pub attempt: u32,
        pub state: TaskStateHandle,
        pub waits: TaskWaits,
        pub store: CollectStore,
        logs: LogClients,
        sinks: SinkClients,
    }

    /// The node id the connector under test records its state under.
    pub(crate) const NODE: u32 = 0;

    impl TestContext {
        /// Attempt `attempt`, restoring `restore` (checkpoint and the connector's state).
        pub fn new(
            attempt: u32,
            store: &CollectStore,
            restore: Option<(CheckpointId, OperatorState)>,
        ) -> Self {
            let restore = restore.map(|(checkpoint, state)| TaskRestore {
                checkpoint,
                snapshot: TaskSnapshot {
                    operators: [(NODE, state)].into(),
                    outputs: Default::default(),
                },
                input_age: std::time::Duration::ZERO,
            });
            let config = Configuration::new();
            TestContext {
                attempt,
                state: TaskStateHandle::new(restore),
                waits: TaskWaits::default(),
                store: store.clone(),
                logs: crate::connectors::log_service::log_clients(config.clone(), "tm".into()),
                sinks: crate::connectors::sink_batcher::sink_clients(config, "tm".into()),
            }
        }

        /// What the connector recorded for the checkpoint just taken.
        pub fn taken(&self) -> Result<OperatorState, String> {
            let mut snapshot = self.state.take()?;
            Ok(snapshot.operators.remove(&NODE).unwrap_or_default())
        }
    }

    impl ConnectorContext for TestContext {
        fn job(&self) -> JobId {
            JobId(1)
        }
        fn attempt(&self) -> ExecutionAttemptId {
            ExecutionAttemptId {
                vertex: VertexId(0),
                subtask: 0,
                attempt: self.attempt,
            }
        }
        fn parallelism(&self) -> u32 {
            1
        }
        fn operator_name(&self) -> &str {
            "sink"
        }
        fn sink_grant(&self) -> WriteGrant {
            WriteGrant::default()
        }
        fn restored(&self) -> Option<&OperatorState> {
            self.state.restored(NODE)
        }
        fn restored_checkpoint(&self) -> Option<CheckpointId> {
            self.state.restored_checkpoint()
        }
        fn waits(&self) -> &TaskWaits {
            &self.waits
        }
        fn taskmanager(&self) -> &str {
            "tm"
        }
        fn collect_store(&self) -> Option<&CollectStore> {
            Some(&self.store)
        }
        fn log_clients(&self) -> &LogClients {
            &self.logs
        }
        fn sink_clients(&self) -> &SinkClients {
            &self.sinks
        }
        fn state_slot(&self) -> StateSlot {
            StateSlot::new(NODE, 128, self.state.clone())
        }
    }
}
