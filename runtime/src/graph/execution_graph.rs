//! The execution graph: every subtask of every vertex, with its current attempt and state.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ExecutionAttemptId, JobGraph, VertexId};

/// Lifecycle of one execution attempt (Flink's ExecutionState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionState {
    /// Not yet placed: new, or reset for a restart.
    Created,
    /// Given a slot, about to be deployed.
    Scheduled,
    /// Sent to its TaskManager, which has not reported it running yet.
    Deploying,
    /// Its TaskManager reports it running.
    Running,
    /// Ended after its input ended: it is done for good unless a failover restarts it.
    Finished,
    /// Being cancelled (Flink's state; rill never reports it: cancelling drops a task at once).
    Canceling,
    /// Cancelled by the JobManager (a failover, the job's end).
    Canceled,
    /// Ended with an error.
    Failed,
}

impl ExecutionState {
    /// Whether the attempt has ended: finished, cancelled or failed.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            ExecutionState::Finished | ExecutionState::Canceled | ExecutionState::Failed
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
/// Lifecycle of a job (Flink's JobStatus). A partial failover (region, taskmanager) keeps the
/// job RUNNING; only a full restart passes through RESTARTING.
pub enum JobStatus {
    /// Waiting for slots: just submitted, or after a full restart's back-off.
    Created,
    /// Scheduled: its tasks are deployed (a partial failover keeps the job running).
    Running,
    /// Failed over: its tasks were cancelled and it restarts after the restart back-off.
    Restarting,
    /// Every task finished.
    Finished,
    /// Failed for good: the restart strategy allows no more restarts, or it could not be deployed.
    Failed,
    /// Cancelled (Flink's state; rill has no way to cancel a job yet).
    Canceled,
}

impl JobStatus {
    /// Whether the job has ended: finished, failed or cancelled.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            JobStatus::Finished | JobStatus::Failed | JobStatus::Canceled
        )
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so tables can align them with `{:<10}`.
        f.pad(match self {
            JobStatus::Created => "CREATED",
            JobStatus::Running => "RUNNING",
            JobStatus::Restarting => "RESTARTING",
            JobStatus::Finished => "FINISHED",
            JobStatus::Failed => "FAILED",
            JobStatus::Canceled => "CANCELED",
        })
    }
}

impl std::fmt::Display for ExecutionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so tables can align them with `{:<10}`.
        f.pad(match self {
            ExecutionState::Created => "CREATED",
            ExecutionState::Scheduled => "SCHEDULED",
            ExecutionState::Deploying => "DEPLOYING",
            ExecutionState::Running => "RUNNING",
            ExecutionState::Finished => "FINISHED",
            ExecutionState::Canceling => "CANCELING",
            ExecutionState::Canceled => "CANCELED",
            ExecutionState::Failed => "FAILED",
        })
    }
}

/// One subtask of a job vertex, as the JobManager tracks it: its current attempt and that
/// attempt's state.
#[derive(Debug, Clone)]
pub struct ExecutionVertex {
    /// The job vertex.
    pub vertex: VertexId,
    /// The subtask's index within the vertex.
    pub subtask: u32,
    /// The current attempt number (0 at first, one more per restart).
    pub attempt: u32,
    /// The current attempt's state.
    pub state: ExecutionState,
    /// The TaskManager the current attempt runs on, once scheduled.
    pub location: Option<String>,
}

impl ExecutionVertex {
    /// The current attempt's id.
    pub fn attempt_id(&self) -> ExecutionAttemptId {
        ExecutionAttemptId {
            vertex: self.vertex,
            subtask: self.subtask,
            attempt: self.attempt,
        }
    }
}

/// The JobManager's view of a running job: one [`ExecutionVertex`] per subtask of its job graph.
pub struct ExecutionGraph {
    /// The job graph it executes.
    pub job: Arc<JobGraph>,
    /// Indexed by vertex id, then subtask.
    pub vertices: Vec<Vec<ExecutionVertex>>,
}

impl ExecutionGraph {
    /// Every subtask of `job` at attempt 0, created.
    pub fn new(job: Arc<JobGraph>) -> Self {
        let vertices = job
            .vertices
            .iter()
            .map(|v| {
                (0..v.parallelism)
                    .map(|subtask| ExecutionVertex {
                        vertex: v.id,
                        subtask,
                        attempt: 0,
                        state: ExecutionState::Created,
                        location: None,
                    })
                    .collect()
            })
            .collect();
        ExecutionGraph { job, vertices }
    }

    /// The subtask `subtask` of `vertex`, if there is one.
    pub fn get(&self, vertex: VertexId, subtask: u32) -> Option<&ExecutionVertex> {
        self.vertices.get(vertex.0 as usize)?.get(subtask as usize)
    }

    /// [`ExecutionGraph::get`], mutably.
    pub fn get_mut(&mut self, vertex: VertexId, subtask: u32) -> Option<&mut ExecutionVertex> {
        self.vertices
            .get_mut(vertex.0 as usize)?
            .get_mut(subtask as usize)
    }

    /// The execution vertex whose *current* attempt is `id`; stale attempts find nothing.
    pub fn current(&mut self, id: ExecutionAttemptId) -> Option<&mut ExecutionVertex> {
        self.get_mut(id.vertex, id.subtask)
            .filter(|ev| ev.attempt == id.attempt)
    }

    /// Every subtask, vertex by vertex in id order.
    pub fn all(&self) -> impl Iterator<Item = &ExecutionVertex> {
        self.vertices.iter().flatten()
    }

    /// [`ExecutionGraph::all`], mutably.
    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut ExecutionVertex> {
        self.vertices.iter_mut().flatten()
    }

    /// Subtasks over all vertices.
    pub fn subtask_count(&self) -> usize {
        self.vertices.iter().map(Vec::len).sum()
    }
}
