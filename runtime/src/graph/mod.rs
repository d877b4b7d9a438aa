//! Job graphs and execution graphs.
//!
//! The logical graph the builder records is compiled into a `JobGraph` of chained vertices
//! (operators joined by forward edges run in one task) and from there into an
//! `ExecutionGraph` of subtasks, each with its current execution attempt.

mod execution_graph;
mod ids;
mod job_graph;
mod regions;
mod slot_sharing;

use serde::{Deserialize, Serialize};

pub use execution_graph::{ExecutionGraph, ExecutionState, ExecutionVertex, JobStatus};
pub use ids::{
    CheckpointId, EdgeId, ExecutionAttemptId, JobId, NodeId, SubtaskId, TaskManagerId, VertexId,
};
pub use job_graph::{InputChannelSpec, JobEdge, JobGraph, JobVertex};
pub use regions::{pipelined_regions, region_restart_set, Topology};
pub use slot_sharing::{default_slot_sharing_groups, ExecutionSlotSharingGroup};

/// How records are routed from producer subtasks to consumer subtasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionerKind {
    /// Not chosen by the user: forward when parallelisms match, rebalance otherwise (Flink's rule).
    Default,
    /// Subtask i to subtask i; requires equal parallelism. Chained when possible.
    Forward,
    /// Round robin over all consumers.
    Rebalance,
    /// By key group of the record's key.
    Hash,
    /// Every record to every consumer.
    Broadcast,
}

impl PartitionerKind {
    /// Pointwise edges connect producer i only to consumer i.
    pub fn is_pointwise(self) -> bool {
        matches!(self, PartitionerKind::Forward)
    }
}

/// Whether the consumer reads while the producer writes, or only a finished partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResultType {
    Pipelined,
    Blocking,
}
