//! Cluster events: the typed facts the JobManager and TaskManagers report about what they
//! decided and saw — a TaskManager registered or lost, a failover and exactly what it restarts,
//! tasks deployed, states changed, checkpoints, rebalancing moves, records dropped, memory
//! climbing towards the limit.
//!
//! Log lines are for people and may be reworded at will; events are for programs. Everything
//! that judges the cluster (the simulation harness's checkers, its reports and snapshots, and
//! later metrics) reads events, never message text. See ARCHITECTURE.md, "Cluster events".
//!
//! The runtime emits through one small interface, [`EventSink`], handed to the JobManager
//! ([`crate::jobmanager::JobManagerServices`]) and to each TaskManager
//! ([`crate::taskmanager::TaskManagerOptions`]). Production uses [`Events::tracing`], which
//! writes each event as one `tracing` line (target `rill::events`); the harness records them
//! with virtual time.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod file;
pub use file::{
    encode_frame, read_events, read_frames, read_frames_up_to, unix_nanos, EventsFile, FileEvents,
    FrameFile, Frames, StampedEvent, JOURNAL_MAX_FRAME,
};

use crate::config::FailoverStrategy;
use crate::graph::{
    CheckpointId, ExecutionAttemptId, ExecutionState, JobId, JobStatus, SubtaskId, TaskManagerId,
};

/// Why the JobManager declared a TaskManager lost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LossCause {
    /// No heartbeat reply within `heartbeat.timeout`.
    HeartbeatTimeout(Duration),
    /// `heartbeat.rpc-failure-threshold` heartbeats in a row could not be sent.
    HeartbeatRpcFailures(u32),
    /// Its control connection closed or failed.
    ConnectionClosed(String),
    /// A TaskManager of the same name registered again: this instance is stale.
    RegisteredAgain,
}

/// Why a TaskManager gave up on its JobManager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobManagerLossCause {
    /// No heartbeat from the JobManager within `heartbeat.timeout`: only the TaskManager's own
    /// timer can notice a JobManager that is paused, or cut off without a close reaching here.
    HeartbeatTimeout(Duration),
    /// The control connection closed or failed (the JobManager died, or dropped this
    /// TaskManager), or a message to it could not be sent.
    ConnectionClosed(String),
}

/// What set a failover off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailoverCause {
    /// A task reported its own failure.
    TaskFailed {
        /// The failed attempt.
        attempt: ExecutionAttemptId,
        /// The failure, as the task reported it.
        error: String,
    },
    /// A TaskManager was lost with tasks of the job on it.
    TaskManagerLost {
        /// The lost TaskManager's name.
        taskmanager: String,
        /// Why the JobManager declared it lost.
        cause: LossCause,
    },
}

/// Why a pending checkpoint was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortReason {
    /// A failover cancels what the checkpoint waits for.
    Failover,
    /// A rebalancing move restarts subtasks it waits for.
    Rebalancing,
    /// A task it waits for ended (finished, failed, cancelled) before acknowledging.
    TaskEnded(ExecutionAttemptId),
    /// `execution.checkpointing.timeout` passed.
    Expired,
    /// The checkpoint store refused to write it.
    StoreFailed,
    /// A newer checkpoint completed while it was being written: it is discarded.
    Subsumed,
    /// Its snapshot could not be encoded for the store.
    EncodeFailed,
    /// The job ended.
    JobEnded,
}

/// One task the JobManager deployed: which attempt, on which TaskManager.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    /// The attempt deployed (a new attempt number per restart).
    pub attempt: ExecutionAttemptId,
    /// The TaskManager's name.
    pub taskmanager: String,
    /// The slot its slot-sharing group holds on that TaskManager.
    pub slot: Option<u32>,
}

/// A slot-sharing group moved by rebalancing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMove {
    /// The group's subtasks: they restart on `to`.
    pub subtasks: Vec<SubtaskId>,
    /// The TaskManager it left (empty if it held no slot).
    pub from: String,
    /// The TaskManager it moved to.
    pub to: String,
}

/// A fact about the cluster, as the process that knows it reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClusterEvent {
    /// The JobManager accepted a TaskManager.
    TaskManagerRegistered {
        /// The TaskManager's name.
        taskmanager: String,
        /// The instance id the JobManager gave this registration.
        instance: TaskManagerId,
        /// The slots it offers.
        slots: u32,
    },
    /// The JobManager refused a registration (its slot count is out of range).
    RegistrationRefused {
        /// The refused TaskManager's name.
        taskmanager: String,
        /// The slot count it offered.
        slots: u32,
    },
    /// The JobManager gave up on a TaskManager instance.
    TaskManagerLost {
        /// The TaskManager's name.
        taskmanager: String,
        /// The instance given up on (a later registration of the same name is a new one).
        instance: TaskManagerId,
        /// Why it was given up on.
        cause: LossCause,
    },
    /// The JobManager accepted a job.
    JobSubmitted {
        /// The id the job got.
        job: JobId,
        /// The job's name in the registry.
        name: String,
    },
    /// The job's status changed (as clients are told).
    JobStatusChanged {
        /// The job.
        job: JobId,
        /// Its new status.
        status: JobStatus,
    },
    /// A failover began: `restart` is exactly the set of subtasks the failover strategy chose,
    /// `of` the job's subtask count; they are redeployed after `backoff`, restoring
    /// `checkpoint` (none: from the start).
    FailoverStarted {
        /// The job failing over.
        job: JobId,
        /// The failover strategy that chose `restart` (`jobmanager.execution.failover-strategy`).
        strategy: FailoverStrategy,
        /// What set the failover off.
        cause: FailoverCause,
        /// The subtasks to restart.
        restart: Vec<SubtaskId>,
        /// The job's subtask count.
        of: u32,
        /// How long the restart strategy waits before redeploying.
        backoff: Duration,
        /// The checkpoint the restarted subtasks restore, if any.
        checkpoint: Option<CheckpointId>,
    },
    /// The restart strategy allows no more restarts: the job fails.
    RestartsExhausted {
        /// The job.
        job: JobId,
        /// The restart strategy, as configured (its description).
        strategy: String,
    },
    /// The job failed for good (its status turns FAILED), and why.
    JobFailed {
        /// The job.
        job: JobId,
        /// Why it failed: its last failover's cause and the restart strategy's verdict.
        reason: String,
    },
    /// The job (or the restarted part of it) waits: the free slots cannot hold its
    /// slot-sharing groups.
    WaitingForSlots {
        /// The job.
        job: JobId,
        /// The slots its unplaced slot-sharing groups need.
        needed: u32,
        /// The free slots in the cluster.
        free: u32,
    },
    /// Rebalancing moved slot-sharing groups onto lighter TaskManagers; their subtasks restart.
    Rebalanced {
        /// The job.
        job: JobId,
        /// Each group moved, from which TaskManager to which.
        moves: Vec<GroupMove>,
    },
    /// The JobManager sent these tasks to their TaskManagers, each restoring `checkpoint`.
    TasksDeployed {
        /// The job.
        job: JobId,
        /// Each task deployed and where.
        tasks: Vec<Deployment>,
        /// The checkpoint they restore; `None`: from the start.
        checkpoint: Option<CheckpointId>,
    },
    /// A subtask's current attempt changed state, as its TaskManager reported it.
    SubtaskStateChanged {
        /// The job.
        job: JobId,
        /// The subtask's current attempt.
        attempt: ExecutionAttemptId,
        /// Its new state.
        state: ExecutionState,
    },
    /// The coordinator triggered a checkpoint at the sources.
    CheckpointTriggered {
        /// The job.
        job: JobId,
        /// The checkpoint triggered.
        checkpoint: CheckpointId,
    },
    /// Every task acknowledged the checkpoint: the JobManager writes it to the checkpoint store
    /// now, and `CheckpointCompleted` (or `CheckpointAborted`) follows once the write is done.
    /// Between the two the checkpoint is neither pending at the tasks nor restorable.
    CheckpointAcknowledged {
        /// The job.
        job: JobId,
        /// The checkpoint every task acknowledged.
        checkpoint: CheckpointId,
    },
    /// Every task acknowledged and the store holds it: it is the one a restore uses.
    CheckpointCompleted {
        /// The job.
        job: JobId,
        /// The checkpoint completed.
        checkpoint: CheckpointId,
        /// The size of its state over all tasks, in bytes.
        bytes: u64,
    },
    /// A pending or persisting checkpoint was given up; it is never restored.
    CheckpointAborted {
        /// The job.
        job: JobId,
        /// The checkpoint given up.
        checkpoint: CheckpointId,
        /// Why it was given up.
        reason: AbortReason,
    },
    /// A producer's consumer went away (taskmanager failover): it discards what it would
    /// send there until the replacement connects.
    ConsumerGone {
        /// The job.
        job: JobId,
        /// The producer that lost its consumer.
        producer: ExecutionAttemptId,
        /// The subpartition whose consumer went away.
        subpartition: u32,
    },
    /// Discarding for a consumer that went away is over (its replacement connected, or the
    /// producer finished first); `records` were dropped while it was away.
    RecordsDropped {
        /// The job.
        job: JobId,
        /// The producer that dropped them.
        producer: ExecutionAttemptId,
        /// The subpartition the records were meant for.
        subpartition: u32,
        /// How many records were dropped.
        records: u64,
    },
    /// A consumer's input channel lost its producer and waits for its replacement.
    InputPaused {
        /// The job.
        job: JobId,
        /// The consumer attempt that waits.
        consumer: ExecutionAttemptId,
        /// Its input channel that lost its producer.
        channel: u32,
        /// The producer attempt that was lost.
        producer: ExecutionAttemptId,
    },
    /// A paused input channel reads from the replacement producer.
    InputReconnected {
        /// The job.
        job: JobId,
        /// The consumer attempt.
        consumer: ExecutionAttemptId,
        /// Its input channel, now reading again.
        channel: u32,
        /// The replacement producer attempt.
        producer: ExecutionAttemptId,
    },
    /// A TaskManager lost its JobManager: it cancelled every task it ran (`cancelled`), so
    /// their slots are free and nothing of theirs writes output any more, and it registers
    /// again (Flink's behaviour without high availability).
    JobManagerLost {
        /// The TaskManager's name.
        taskmanager: String,
        /// Why it gave up on the JobManager.
        cause: JobManagerLossCause,
        /// The tasks it cancelled, in id order.
        cancelled: Vec<ExecutionAttemptId>,
        /// Tasks that had ended on their own (finished, or failed: say, on an input lost with
        /// another TaskManager that gave up first) within the last heartbeat timeout or whose
        /// end was still to be reported: the JobManager may not know they ended. In id order.
        ended: Vec<ExecutionAttemptId>,
    },
    /// A TaskManager's accounted memory climbed past `percent` of
    /// `taskmanager.memory.process.size` (reported at 50, 75 and 90%).
    MemoryAbove {
        /// The TaskManager's name.
        taskmanager: String,
        /// The threshold crossed, in percent of the limit.
        percent: u32,
        /// Its accounted memory when it crossed, in bytes.
        bytes: u64,
        /// `taskmanager.memory.process.size`, in bytes.
        limit: u64,
    },
}

/// Where events go. Implementations must not block: the JobManager's actor emits inline.
pub trait EventSink: Send + Sync {
    /// Takes one event, in the order the process decided it.
    fn emit(&self, event: ClusterEvent);
}

/// The handle every process holds: cheap to clone, one sink behind it.
#[derive(Clone)]
pub struct Events(Arc<dyn EventSink>);

impl Events {
    /// Events that go to `sink`.
    pub fn new(sink: impl EventSink + 'static) -> Self {
        Events(Arc::new(sink))
    }

    /// Production: every event as one `tracing` line.
    pub fn tracing() -> Self {
        Events::new(TracingEvents)
    }

    /// Hands `event` to the sink.
    pub fn emit(&self, event: ClusterEvent) {
        self.0.emit(event);
    }
}

/// A sink that keeps every event in memory, for tests: clones share the log.
#[derive(Clone, Default)]
pub struct EventLog(Arc<std::sync::Mutex<Vec<ClusterEvent>>>);

impl EventLog {
    /// The events kept so far, and forgets them.
    pub fn take(&self) -> Vec<ClusterEvent> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: ClusterEvent) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).push(event);
    }
}

impl Default for Events {
    fn default() -> Self {
        Events::tracing()
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Events")
    }
}

/// Writes events to `tracing` under target `rill::events`: WARN for losses, failovers and
/// aborted checkpoints, INFO otherwise.
pub struct TracingEvents;

impl EventSink for TracingEvents {
    fn emit(&self, event: ClusterEvent) {
        if event.is_warning() {
            tracing::warn!(target: "rill::events", "{event}");
        } else {
            tracing::info!(target: "rill::events", "{event}");
        }
    }
}

impl ClusterEvent {
    /// Whether an operator should notice it: something was lost or given up.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            ClusterEvent::TaskManagerLost { .. }
                | ClusterEvent::JobManagerLost { .. }
                | ClusterEvent::RegistrationRefused { .. }
                | ClusterEvent::FailoverStarted { .. }
                | ClusterEvent::RestartsExhausted { .. }
                | ClusterEvent::JobFailed { .. }
                | ClusterEvent::CheckpointAborted { .. }
                | ClusterEvent::JobStatusChanged {
                    status: JobStatus::Failed,
                    ..
                }
        )
    }

    /// The job the event concerns, if it concerns one.
    pub fn job(&self) -> Option<JobId> {
        use ClusterEvent::*;
        match self {
            JobSubmitted { job, .. }
            | JobStatusChanged { job, .. }
            | FailoverStarted { job, .. }
            | RestartsExhausted { job, .. }
            | JobFailed { job, .. }
            | WaitingForSlots { job, .. }
            | Rebalanced { job, .. }
            | TasksDeployed { job, .. }
            | SubtaskStateChanged { job, .. }
            | CheckpointTriggered { job, .. }
            | CheckpointAcknowledged { job, .. }
            | CheckpointCompleted { job, .. }
            | CheckpointAborted { job, .. }
            | ConsumerGone { job, .. }
            | RecordsDropped { job, .. }
            | InputPaused { job, .. }
            | InputReconnected { job, .. } => Some(*job),
            TaskManagerRegistered { .. }
            | RegistrationRefused { .. }
            | TaskManagerLost { .. }
            | JobManagerLost { .. }
            | MemoryAbove { .. } => None,
        }
    }
}

/// `a b c`: a list of displayable items, space-separated.
fn spaced<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl fmt::Display for LossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LossCause::HeartbeatTimeout(d) => write!(f, "heartbeat timeout after {}", duration(*d)),
            LossCause::HeartbeatRpcFailures(n) => write!(f, "{n} heartbeat RPCs failed"),
            LossCause::ConnectionClosed(why) => write!(f, "{why}"),
            LossCause::RegisteredAgain => f.write_str("registered again"),
        }
    }
}

impl fmt::Display for JobManagerLossCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JobManagerLossCause::HeartbeatTimeout(d) => {
                write!(f, "no heartbeat for {}", duration(*d))
            }
            JobManagerLossCause::ConnectionClosed(why) => write!(f, "{why}"),
        }
    }
}

impl fmt::Display for FailoverCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailoverCause::TaskFailed { attempt, error } => {
                write!(f, "task {attempt} failed: {error}")
            }
            FailoverCause::TaskManagerLost { taskmanager, cause } => {
                write!(f, "TaskManager {taskmanager} lost: {cause}")
            }
        }
    }
}

impl fmt::Display for AbortReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AbortReason::Failover => f.write_str("failover"),
            AbortReason::Rebalancing => f.write_str("rebalancing"),
            AbortReason::TaskEnded(attempt) => write!(f, "task {attempt} ended"),
            AbortReason::Expired => f.write_str("expired"),
            AbortReason::StoreFailed => f.write_str("store refused it"),
            AbortReason::Subsumed => f.write_str("subsumed while being written"),
            AbortReason::EncodeFailed => f.write_str("snapshot could not be encoded"),
            AbortReason::JobEnded => f.write_str("job ended"),
        }
    }
}

impl fmt::Display for Deployment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.slot {
            Some(slot) => write!(f, "{}@{}/{slot}", self.attempt, self.taskmanager),
            None => write!(f, "{}@{}", self.attempt, self.taskmanager),
        }
    }
}

impl fmt::Display for GroupMove {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}->{}", spaced(&self.subtasks), self.from, self.to)
    }
}

/// The readable one-line form that logs and snapshots show: `what key=value ...`.
impl fmt::Display for ClusterEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ClusterEvent::*;
        let from = |c: &Option<CheckpointId>| c.map_or("none".to_string(), |c| c.to_string());
        match self {
            TaskManagerRegistered {
                taskmanager,
                instance,
                slots,
            } => write!(
                f,
                "taskmanager registered {taskmanager} {instance} slots={slots}"
            ),
            RegistrationRefused { taskmanager, slots } => {
                write!(f, "registration refused {taskmanager} slots={slots}")
            }
            TaskManagerLost {
                taskmanager,
                instance,
                cause,
            } => write!(f, "taskmanager lost {taskmanager} {instance}: {cause}"),
            JobSubmitted { job, name } => write!(f, "job submitted {job} name={name}"),
            JobStatusChanged { job, status } => write!(f, "job status {job} {status}"),
            FailoverStarted {
                job,
                strategy,
                cause,
                restart,
                of,
                backoff,
                checkpoint,
            } => write!(
                f,
                "failover {job} strategy={strategy} restart {} of {of} [{}] backoff={} from={} cause: {cause}",
                restart.len(),
                spaced(restart),
                duration(*backoff),
                from(checkpoint),
            ),
            RestartsExhausted { job, strategy } => {
                write!(f, "restarts exhausted {job} restart-strategy={strategy}")
            }
            JobFailed { job, reason } => write!(f, "job failed {job}: {reason}"),
            WaitingForSlots { job, needed, free } => {
                write!(f, "waiting for slots {job} needed={needed} free={free}")
            }
            Rebalanced { job, moves } => write!(f, "rebalanced {job} {}", spaced(moves)),
            TasksDeployed {
                job,
                tasks,
                checkpoint,
            } => write!(
                f,
                "deployed {job} {} task(s) from={} [{}]",
                tasks.len(),
                from(checkpoint),
                spaced(tasks)
            ),
            SubtaskStateChanged {
                job,
                attempt,
                state,
            } => write!(f, "subtask {job} {attempt} {state}"),
            CheckpointTriggered { job, checkpoint } => {
                write!(f, "checkpoint triggered {job} {checkpoint}")
            }
            CheckpointAcknowledged { job, checkpoint } => {
                write!(f, "checkpoint acknowledged {job} {checkpoint}")
            }
            CheckpointCompleted {
                job,
                checkpoint,
                bytes,
            } => write!(f, "checkpoint completed {job} {checkpoint} bytes={bytes}"),
            CheckpointAborted {
                job,
                checkpoint,
                reason,
            } => write!(f, "checkpoint aborted {job} {checkpoint}: {reason}"),
            ConsumerGone {
                job,
                producer,
                subpartition,
            } => write!(f, "consumer gone {job} {producer}/{subpartition}: discarding"),
            RecordsDropped {
                job,
                producer,
                subpartition,
                records,
            } => write!(
                f,
                "records dropped {job} {producer}/{subpartition}: {records} while its consumer was away"
            ),
            InputPaused {
                job,
                consumer,
                channel,
                producer,
            } => write!(
                f,
                "input paused {job} {consumer} channel={channel} producer={producer}"
            ),
            InputReconnected {
                job,
                consumer,
                channel,
                producer,
            } => write!(
                f,
                "input reconnected {job} {consumer} channel={channel} producer={producer}"
            ),
            JobManagerLost {
                taskmanager,
                cause,
                cancelled,
                ended,
            } => {
                write!(
                    f,
                    "jobmanager lost by {taskmanager}: {cause}; cancelled [{}]",
                    spaced(cancelled)
                )?;
                if !ended.is_empty() {
                    write!(f, "; had ended [{}]", spaced(ended))?;
                }
                Ok(())
            }
            MemoryAbove {
                taskmanager,
                percent,
                bytes,
                limit,
            } => write!(
                f,
                "memory above {percent}% {taskmanager} bytes={bytes} limit={limit}"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::VertexId;

    #[test]
    fn a_sink_receives_what_is_emitted_and_the_rendering_is_readable() {
        let keep = EventLog::default();
        let events = Events::new(keep.clone());
        let restart = vec![
            SubtaskId::new(VertexId(0), 1),
            SubtaskId::new(VertexId(1), 1),
        ];
        events.emit(ClusterEvent::FailoverStarted {
            job: JobId(1),
            strategy: FailoverStrategy::TaskManager,
            cause: FailoverCause::TaskManagerLost {
                taskmanager: "tm-2".into(),
                cause: LossCause::HeartbeatTimeout(Duration::from_secs(5)),
            },
            restart,
            of: 8,
            backoff: Duration::from_secs(1),
            checkpoint: Some(CheckpointId(4)),
        });
        let got = keep.take();
        assert_eq!(got.len(), 1);
        assert_eq!(
            got[0].to_string(),
            "failover job-1 strategy=taskmanager restart 2 of 8 [v0[1] v1[1]] backoff=1000ms from=chk-4 cause: TaskManager tm-2 lost: heartbeat timeout after 5000ms"
        );
        assert!(got[0].is_warning());
        assert_eq!(got[0].job(), Some(JobId(1)));
    }
}
