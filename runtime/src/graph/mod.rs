//! Job graphs and execution graphs.
//!
//! The logical graph the builder records is compiled into a `JobGraph` of chained vertices
//! (operators joined by forward edges run in one task) and from there into an
//! `ExecutionGraph` of subtasks, each with its current execution attempt.

mod execution_graph;
mod job_graph;
mod regions;
mod slot_sharing;

pub use execution_graph::{ExecutionGraph, ExecutionState, ExecutionVertex, JobStatus};
// The typed ids (`crate::ids`) and the edge kinds (`crate::network`) live below `api` and
// `network`, which name them; this module sits above both (a `JobGraph` holds the API's
// logical graph). Re-exported so `rill::graph::{ExecutionAttemptId, PartitionerKind, ..}`
// keep working.
pub use crate::ids::{
    CheckpointId, EdgeId, ExecutionAttemptId, JobId, NodeId, SubtaskId, TaskManagerId, VertexId,
};
pub use crate::network::{PartitionerKind, ResultType};
pub use job_graph::{InputChannelSpec, JobEdge, JobGraph, JobVertex};
pub use regions::{pipelined_regions, region_restart_set, Topology};
pub use slot_sharing::{default_slot_sharing_groups, ExecutionSlotSharingGroup};
