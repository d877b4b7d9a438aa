//! Control-plane messages between JobManager, TaskManagers and clients, and what they carry
//! (`InputLocation`, `TaskReport`, `TmReport`, `JobStatusReport`).
//!
//! They name the job spec, the graph's ids, memory reports, subpartitions and checkpoint
//! state, so they sit above `api`, `graph`, `network` and `state`; the framing, handshake and
//! services that carry them (`rpc`) sit below all of those, which use them too. `rpc`
//! re-exports every item here, so `rill::rpc::{TmToJm, JobStatusReport, ..}` keep working.

use serde::{Deserialize, Serialize};

use crate::api::JobSpec;
use crate::config::Configuration;
pub use crate::graph::JobStatus;
use crate::graph::{EdgeId, ExecutionAttemptId, ExecutionState};
use crate::ids::{CheckpointId, JobId, TaskManagerId};
use crate::memory::MemoryReport;
use crate::network::SubpartitionKey;
use crate::state::{TaskRestore, TaskSnapshot};

/// Where one input channel of a task reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLocation {
    pub producer: ExecutionAttemptId,
    pub edge: EdgeId,
    pub subpartition: u32,
    /// The producer TaskManager's data address; `None` when it runs on this TaskManager.
    pub data_addr: Option<String>,
}

/// TaskManager -> JobManager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TmToJm {
    Register {
        name: String,
        slots: u32,
        memory_bytes: u64,
        data_addr: String,
    },
    HeartbeatReply {
        seq: u64,
        report: TmReport,
    },
    TaskStateChanged {
        job: JobId,
        attempt: ExecutionAttemptId,
        state: ExecutionState,
        records_in: u64,
        error: Option<String>,
    },
    /// A task's part of a checkpoint: its barrier passed the whole chain.
    AcknowledgeCheckpoint {
        job: JobId,
        checkpoint: CheckpointId,
        attempt: ExecutionAttemptId,
        snapshot: TaskSnapshot,
    },
}

/// One running task's counters, as of a heartbeat.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TaskReport {
    pub job: JobId,
    pub attempt: ExecutionAttemptId,
    pub records_in: u64,
    /// Records dropped because their consumer was away (`taskmanager` failover).
    pub records_dropped: u64,
}

/// What a TaskManager reports with each heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TmReport {
    pub memory: MemoryReport,
    /// (job, attempt, records in so far) for every running task.
    pub tasks: Vec<TaskReport>,
}

/// JobManager -> TaskManager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JmToTm {
    Registered {
        instance: TaskManagerId,
    },
    Heartbeat {
        seq: u64,
    },
    DeployTask {
        job: JobId,
        spec: JobSpec,
        config: Configuration,
        attempt: ExecutionAttemptId,
        inputs: Vec<InputLocation>,
        /// The state to start from (the latest completed checkpoint), if any.
        restore: Option<TaskRestore>,
        /// Subpartitions (edge, index) whose consumer already finished: a restarted producer
        /// drops what it would send them instead of waiting for a reader that never comes.
        finished_consumers: Vec<(EdgeId, u32)>,
    },
    CancelTask {
        job: JobId,
        attempt: ExecutionAttemptId,
    },
    ReleaseJob {
        job: JobId,
    },
    /// To a source attempt: take checkpoint `checkpoint` and send its barrier.
    TriggerCheckpoint {
        job: JobId,
        checkpoint: CheckpointId,
        attempt: ExecutionAttemptId,
    },
    /// To every other TaskManager when one registers: a connection cached to its data address
    /// reached the process before it (crashed, or cut off and lost), and carries nothing now.
    PeerRegistered {
        data_addr: String,
    },
    /// To a producer still running (a replay) whose consumer finished: drop the subpartition's
    /// queue if nobody claimed it, so the producer discards rather than block on it.
    DropSubpartition {
        key: SubpartitionKey,
    },
    /// To a producer whose consumer was restarted: close the channel that served the old one.
    RevokeSubpartition {
        key: SubpartitionKey,
    },
    /// To a consumer whose producer was restarted elsewhere (`taskmanager` failover): input
    /// channel `index` now reads from `location`.
    UpdatePartitionInfo {
        job: JobId,
        consumer: ExecutionAttemptId,
        index: u32,
        location: InputLocation,
    },
    /// To every TaskManager running the job: the checkpoint is complete, sinks may commit.
    NotifyCheckpointComplete {
        job: JobId,
        checkpoint: CheckpointId,
    },
}

/// Client -> JobManager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientToJm {
    Submit {
        spec: JobSpec,
        config: Configuration,
    },
}

/// JobManager -> client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JmToClient {
    Accepted {
        job: JobId,
        vertices: Vec<String>,
        subtasks: u32,
    },
    Rejected {
        reason: String,
    },
    Status(JobStatusReport),
}

/// A job's state as the JobManager sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatusReport {
    pub job: JobId,
    pub status: JobStatus,
    /// Records emitted by sources / received by sinks so far.
    pub records_in: u64,
    pub records_out: u64,
    pub elapsed_ms: u64,
    /// Subtasks per TaskManager name.
    pub tasks_per_taskmanager: Vec<(String, u32)>,
    /// Accounted memory (bytes) of every registered TaskManager, as of its last heartbeat.
    pub memory_per_taskmanager: Vec<(String, u64)>,
    /// Records producers dropped while their consumer was away, over all attempts.
    pub records_dropped: u64,
    /// Why the job failed, when it did.
    pub message: Option<String>,
}
