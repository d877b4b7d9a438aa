//! What a source or a sink needs from the subtask it runs in: who it is, what it restores,
//! where it leaves work for its task, and the TaskManager's connections to external systems.
//!
//! A trait, so the connectors depend on the chain's plumbing (`crate::chain`) and not on the
//! API that builds jobs from them: `api::OperatorContext` implements it, and a source or sink
//! factory hands its `&OperatorContext` straight to `LogSource::open` or
//! `SinkSpec::instantiate`.

use super::log_service::LogClients;
use super::sink_service::SinkClients;
use super::sink_store::CollectStore;
use crate::chain::TaskWaits;
use crate::ids::CheckpointId;
use crate::ids::{ExecutionAttemptId, JobId};
use crate::state::OperatorState;

/// The subtask a connector runs in, as the connector sees it.
pub trait ConnectorContext {
    /// The job the connector belongs to (its id at the JobManager).
    fn job(&self) -> JobId;
    fn attempt(&self) -> ExecutionAttemptId;
    fn parallelism(&self) -> u32;
    fn operator_name(&self) -> &str;
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

    fn subtask(&self) -> u32 {
        self.attempt().subtask
    }
}
