//! The execution graph: every subtask of every vertex, with its current attempt and state.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ExecutionAttemptId, JobGraph, VertexId};

/// Lifecycle of one execution attempt (Flink's ExecutionState).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExecutionState {
    Created,
    Scheduled,
    Deploying,
    Running,
    Finished,
    Canceling,
    Canceled,
    Failed,
}

impl ExecutionState {
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
    Created,
    Running,
    /// Failed over: its tasks were cancelled and it restarts after the restart back-off.
    Restarting,
    Finished,
    Failed,
    Canceled,
}

impl JobStatus {
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

#[derive(Debug, Clone)]
pub struct ExecutionVertex {
    pub vertex: VertexId,
    pub subtask: u32,
    pub attempt: u32,
    pub state: ExecutionState,
    /// The TaskManager the current attempt runs on, once scheduled.
    pub location: Option<String>,
}

impl ExecutionVertex {
    pub fn attempt_id(&self) -> ExecutionAttemptId {
        ExecutionAttemptId {
            vertex: self.vertex,
            subtask: self.subtask,
            attempt: self.attempt,
        }
    }
}

pub struct ExecutionGraph {
    pub job: Arc<JobGraph>,
    /// Indexed by vertex id, then subtask.
    pub vertices: Vec<Vec<ExecutionVertex>>,
}

impl ExecutionGraph {
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

    pub fn get(&self, vertex: VertexId, subtask: u32) -> Option<&ExecutionVertex> {
        self.vertices.get(vertex.0 as usize)?.get(subtask as usize)
    }

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

    pub fn all(&self) -> impl Iterator<Item = &ExecutionVertex> {
        self.vertices.iter().flatten()
    }

    pub fn all_mut(&mut self) -> impl Iterator<Item = &mut ExecutionVertex> {
        self.vertices.iter_mut().flatten()
    }

    pub fn subtask_count(&self) -> usize {
        self.vertices.iter().map(Vec::len).sum()
    }
}
