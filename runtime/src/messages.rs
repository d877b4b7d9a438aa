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
use crate::connectors::write_grant::WriteGrant;
pub use crate::graph::JobStatus;
use crate::graph::{EdgeId, ExecutionAttemptId, ExecutionState};
use crate::ids::{CheckpointId, JobId, TaskManagerId};
use crate::memory::MemoryReport;
use crate::network::{ClaimGrant, ClaimKey, SubpartitionKey};
use crate::state::{TaskRestore, TaskSnapshot};

/// Where one input channel of a task reads from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputLocation {
    /// The attempt that produces the data.
    pub producer: ExecutionAttemptId,
    /// The edge the data travels on.
    pub edge: EdgeId,
    /// The producer's subpartition this channel reads (the consumer's subtask index on that edge).
    pub subpartition: u32,
    /// The producer TaskManager's data address; `None` when it runs on this TaskManager.
    pub data_addr: Option<String>,
    /// The producer TaskManager's name: with TLS, the data server must hold its certificate
    /// (`<name>.taskmanager.rill`), so no other TaskManager can pose as it. Empty: any
    /// TaskManager of the cluster.
    #[serde(default)]
    pub taskmanager: String,
    /// The JobManager's permission for the consumer this location is given to, on its
    /// TaskManager, to read the subpartition (`network::claim`): the producer's data server
    /// serves no request without it.
    #[serde(default)]
    pub grant: ClaimGrant,
}

/// TaskManager -> JobManager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum TmToJm {
    /// The first message on a TaskManager's control connection: who it is and what it offers.
    Register {
        /// The TaskManager's name (`taskmanager.name`), stable across restarts of the process.
        name: String,
        /// How many tasks it can run at once.
        slots: u32,
        /// Its process memory budget (`taskmanager.memory.process.size`), in bytes.
        memory_bytes: u64,
        /// The address its data server listens on, for producers' channels to other TaskManagers.
        data_addr: String,
    },
    /// The answer to a `JmToTm::Heartbeat`: it is alive, and this is its report.
    HeartbeatReply {
        /// The sequence number of the heartbeat answered.
        seq: u64,
        /// Memory and per-task counters as of now.
        report: TmReport,
    },
    /// A task's execution state changed (running, finished, failed).
    TaskStateChanged {
        /// The job the task belongs to.
        job: JobId,
        /// The attempt whose state changed.
        attempt: ExecutionAttemptId,
        /// The attempt's new state.
        state: ExecutionState,
        /// Records the task received so far.
        records_in: u64,
        /// Why the task failed, when `state` is `Failed`.
        error: Option<String>,
    },
    /// A task's part of a checkpoint: its barrier passed the whole chain.
    AcknowledgeCheckpoint {
        /// The job being checkpointed.
        job: JobId,
        /// The checkpoint acknowledged.
        checkpoint: CheckpointId,
        /// The attempt acknowledging.
        attempt: ExecutionAttemptId,
        /// The state of every operator in the task's chain, as of the barrier.
        snapshot: TaskSnapshot,
    },
}

/// One running task's counters, as of a heartbeat.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct TaskReport {
    /// The job the task belongs to.
    pub job: JobId,
    /// The task's attempt.
    pub attempt: ExecutionAttemptId,
    /// Records the task received so far.
    pub records_in: u64,
    /// Records dropped because their consumer was away (`taskmanager` failover).
    pub records_dropped: u64,
}

/// What a TaskManager reports with each heartbeat.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TmReport {
    /// The TaskManager's accounted memory, by consumer.
    pub memory: MemoryReport,
    /// (job, attempt, records in so far) for every running task.
    pub tasks: Vec<TaskReport>,
}

/// JobManager -> TaskManager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JmToTm {
    /// The answer to `TmToJm::Register`: the TaskManager is admitted.
    Registered {
        /// The id of this instance of the TaskManager (a new one each time it registers).
        instance: TaskManagerId,
        /// The key its data server checks consumers' grants with (`network::claim`); only
        /// this TaskManager and the JobManager hold it.
        claim_key: ClaimKey,
    },
    /// Asks for a `TmToJm::HeartbeatReply`; sent every `heartbeat.interval`.
    Heartbeat {
        /// Counts up with every round of heartbeats; the reply echoes it.
        seq: u64,
    },
    /// Start an attempt of one subtask.
    DeployTask {
        /// The job the task belongs to.
        job: JobId,
        /// The job as submitted, from which the TaskManager builds the task's chain.
        spec: JobSpec,
        /// The job's configuration.
        config: Configuration,
        /// The attempt to run (the subtask and its attempt number).
        attempt: ExecutionAttemptId,
        /// Where each of the task's input channels reads from, in channel order.
        inputs: Vec<InputLocation>,
        /// The state to start from (the latest completed checkpoint), if any.
        restore: Option<TaskRestore>,
        /// Subpartitions (edge, index) whose consumer already finished: a restarted producer
        /// drops what it would send them instead of waiting for a reader that never comes.
        finished_consumers: Vec<(EdgeId, u32)>,
        /// For each sink chained into the task, by name, the grant a sink store asks of its
        /// writes (`connectors::write_grant`); none when the JobManager holds no write key.
        sink_grants: Vec<(String, WriteGrant)>,
    },
    /// Stop an attempt and release what it holds (its subpartitions, its memory).
    CancelTask {
        /// The job the task belongs to.
        job: JobId,
        /// The attempt to cancel.
        attempt: ExecutionAttemptId,
    },
    /// The job is over: cancel whatever of it still runs here and drop its graph and subpartitions.
    ReleaseJob {
        /// The job released.
        job: JobId,
    },
    /// To a source attempt: take checkpoint `checkpoint` and send its barrier.
    TriggerCheckpoint {
        /// The job to checkpoint.
        job: JobId,
        /// The checkpoint to take.
        checkpoint: CheckpointId,
        /// The source attempt that takes it.
        attempt: ExecutionAttemptId,
    },
    /// To every other TaskManager when one registers: a connection cached to its data address
    /// reached the process before it (crashed, or cut off and lost), and carries nothing now.
    PeerRegistered {
        /// The registering TaskManager's data address: cached connections to it are stale.
        data_addr: String,
    },
    /// To a producer still running (a replay) whose consumer finished: drop the subpartition's
    /// queue if nobody claimed it, so the producer discards rather than block on it.
    DropSubpartition {
        /// The subpartition to drop.
        key: SubpartitionKey,
    },
    /// To a producer whose consumer was restarted: close the channel that served the old one.
    /// Only a claim by an attempt before `consumer` is closed: this message and the
    /// replacement's own request travel different connections, so the replacement may have
    /// claimed the subpartition already (found by buggify: a TaskManager's session busy while
    /// the replacement connected).
    RevokeSubpartition {
        /// The subpartition whose channel is closed.
        key: SubpartitionKey,
        /// The consumer's new attempt: claims by its earlier attempts are closed.
        consumer: ExecutionAttemptId,
    },
    /// To a consumer whose producer was restarted elsewhere (`taskmanager` failover): input
    /// channel `index` now reads from `location`.
    UpdatePartitionInfo {
        /// The job of the consumer.
        job: JobId,
        /// The consumer attempt whose input moves.
        consumer: ExecutionAttemptId,
        /// The input channel's index, in the order of `DeployTask`'s `inputs`.
        index: u32,
        /// Where the channel reads from now.
        location: InputLocation,
        /// The last checkpoint triggered before the new producer was deployed: it never sends
        /// the barrier of this one or an earlier one, so an alignment on such a checkpoint is
        /// abandoned when the channel reconnects; one on a later checkpoint goes on (this
        /// message may come after that checkpoint's other barriers: found by buggify).
        stale_through: CheckpointId,
    },
    /// To every TaskManager running the job: the checkpoint is complete, sinks may commit.
    NotifyCheckpointComplete {
        /// The job the checkpoint belongs to.
        job: JobId,
        /// The checkpoint now complete.
        checkpoint: CheckpointId,
    },
}

/// Client -> JobManager.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ClientToJm {
    /// Run a job.
    Submit {
        /// The job to run (a registered job's name and parameters).
        spec: JobSpec,
        /// Settings for this job, merged over the JobManager's own.
        config: Configuration,
    },
}

/// JobManager -> client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum JmToClient {
    /// The job is compiled and scheduled.
    Accepted {
        /// The id the JobManager gave the job.
        job: JobId,
        /// Every vertex of the job graph, as `name (xparallelism)`.
        vertices: Vec<String>,
        /// Subtasks over all vertices.
        subtasks: u32,
    },
    /// The job could not be accepted (unknown job, bad parameters, an invalid graph).
    Rejected {
        /// What was wrong, for the user.
        reason: String,
    },
    /// A status update: one each heartbeat while the job runs, and one whenever its status
    /// changes (the last one is final).
    Status(JobStatusReport),
}

/// A job's state as the JobManager sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobStatusReport {
    /// The job reported on.
    pub job: JobId,
    /// Its current status.
    pub status: JobStatus,
    /// Records emitted by sources / received by sinks so far.
    pub records_in: u64,
    /// Records received by sinks so far.
    pub records_out: u64,
    /// Milliseconds since the job was submitted.
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
