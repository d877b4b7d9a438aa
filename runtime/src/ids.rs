//! The identifiers of the runtime, each with one `Display`: what a log line, a cluster event
//! and an error message call a job, a TaskManager, a subtask, an attempt or a checkpoint.
//!
//! They serialize as the bare number (`serde(transparent)`), so typing them changes no frame
//! on the wire.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An operator of the logical graph (before chaining).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

/// A chained vertex of the job graph.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct VertexId(pub u32);

/// An edge of the job graph; also names the result partition its producer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EdgeId(pub u32);

/// A job the JobManager accepted, numbered in submission order: from 1 under the simulator,
/// from a random incarnation of the JobManager process in the real build (so no id repeats
/// across JobManager restarts; `jobmanager::first_job_id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

/// One registration of a TaskManager at the JobManager (its *instance*): a TaskManager that
/// registers again, after a restart or a lost connection, is a new instance under the same
/// name, and nothing addressed to the old one reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskManagerId(pub u64);

/// A checkpoint of one job, numbered from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CheckpointId(pub u64);

impl CheckpointId {
    /// The id under which a sink pre-commits and commits at the end of its input. Nothing
    /// more can change the output then, so it is committed at once rather than waiting for a
    /// final checkpoint (which rill does not take). A sink subtask whose end-of-input commit
    /// landed has its output complete: an attempt restarted after that (its task cancelled by
    /// a failover before the JobManager learned it had finished) replays the same input to
    /// the same end, and must write nothing more, or the output would hold that replay twice.
    pub const END_OF_INPUT: CheckpointId = CheckpointId(u64::MAX);
}

/// One parallel instance of a vertex, whatever its attempt: what a failover restarts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubtaskId {
    /// The vertex.
    pub vertex: VertexId,
    /// The subtask's index within the vertex.
    pub subtask: u32,
}

impl SubtaskId {
    /// Subtask `subtask` of `vertex`.
    pub fn new(vertex: VertexId, subtask: u32) -> Self {
        SubtaskId { vertex, subtask }
    }

    /// This subtask's attempt number `attempt`.
    pub fn attempt(self, attempt: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            vertex: self.vertex,
            subtask: self.subtask,
            attempt,
        }
    }
}

/// One deployment of one subtask. Every data connection, partition request, acknowledgement and
/// commit carries it, so anything from a replaced attempt can be refused (fencing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ExecutionAttemptId {
    /// The vertex.
    pub vertex: VertexId,
    /// The subtask's index within the vertex.
    pub subtask: u32,
    /// The attempt number: 0 at first, one more for each restart of the subtask.
    pub attempt: u32,
}

impl ExecutionAttemptId {
    /// The subtask this is an attempt of.
    pub fn subtask_id(self) -> SubtaskId {
        SubtaskId::new(self.vertex, self.subtask)
    }
}

impl fmt::Display for VertexId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "job-{}", self.0)
    }
}

impl fmt::Display for TaskManagerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "instance-{}", self.0)
    }
}

impl fmt::Display for CheckpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "chk-{}", self.0)
    }
}

impl fmt::Display for SubtaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}[{}]", self.vertex.0, self.subtask)
    }
}

impl fmt::Display for ExecutionAttemptId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}[{}]#{}", self.vertex.0, self.subtask, self.attempt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_identifier_has_one_spelling() {
        let s = SubtaskId::new(VertexId(1), 3);
        assert_eq!(s.to_string(), "v1[3]");
        assert_eq!(s.attempt(2).to_string(), "v1[3]#2");
        assert_eq!(s.attempt(2).subtask_id(), s);
        assert_eq!(JobId(4).to_string(), "job-4");
        assert_eq!(CheckpointId(7).to_string(), "chk-7");
        assert_eq!(TaskManagerId(5).to_string(), "instance-5");
    }

    #[test]
    fn typed_numbers_keep_their_wire_form() {
        let bytes = bincode::serialize(&JobId(9)).expect("encodes");
        assert_eq!(bytes, bincode::serialize(&9u64).expect("encodes"));
    }
}
