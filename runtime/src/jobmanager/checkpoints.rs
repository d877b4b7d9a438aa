//! The JobManager's side of checkpointing: triggering at the sources when the coordinator says
//! one is due, collecting acknowledgements, writing completed checkpoints to the
//! `CheckpointStore` off the actor's loop, and telling the tasks once one is durable (sinks
//! commit). The decisions themselves are `checkpoint_coordinator.rs`'s.

use tokio::time::Instant;

use super::checkpoint_coordinator::{Ack, Persisted};
use super::connection::ActorMessage;
use super::JobManager;
use crate::events::{AbortReason, ClusterEvent};
use crate::graph::{CheckpointId, ExecutionAttemptId, ExecutionState, JobId, JobStatus};
use crate::rpc::JmToTm;
use crate::state::TaskSnapshot;

impl JobManager {
    pub(super) fn next_checkpoint_wakeup(&self) -> Option<Instant> {
        self.jobs
            .values()
            .filter(|j| j.status() == JobStatus::Running)
            .filter_map(|j| j.checkpoints.next_wakeup())
            .min()
    }

    /// Expires checkpoints past their timeout and triggers those that are due, at the sources:
    /// only when every task runs (a checkpoint of a half-deployed job could never complete).
    pub(super) fn checkpoint_tick(&mut self) {
        let now = Instant::now();
        let events = &self.services.events;
        for (&id, job) in &mut self.jobs {
            if job.status() != JobStatus::Running {
                continue;
            }
            for checkpoint in job.checkpoints.expire(now) {
                events.emit(ClusterEvent::CheckpointAborted {
                    job: id,
                    checkpoint,
                    reason: AbortReason::Expired,
                });
            }
            if !job.eg.all().all(|ev| ev.state == ExecutionState::Running) {
                job.checkpoints.postpone_if_due(now);
                continue;
            }
            let attempts: Vec<ExecutionAttemptId> =
                job.eg.all().map(|ev| ev.attempt_id()).collect();
            let Some(checkpoint) = job.checkpoints.trigger_if_due(now, attempts) else {
                continue;
            };
            events.emit(ClusterEvent::CheckpointTriggered {
                job: id,
                checkpoint,
            });
            let graph = &job.eg.job;
            for ev in job.eg.all().filter(|ev| graph.vertex(ev.vertex).is_source) {
                let attempt = ev.attempt_id();
                if let Some(tm) = job.placement.of(&attempt).and_then(|tm| self.tms.get(&tm)) {
                    let _ = tm.out.send(JmToTm::TriggerCheckpoint {
                        job: id,
                        checkpoint,
                        attempt,
                    });
                }
            }
        }
    }

    /// A task's snapshot for `checkpoint`. Once every task acknowledged, the checkpoint is
    /// encoded and written to the store in the background; the write's result comes back
    /// through the actor's inbox.
    pub(super) fn acknowledge_checkpoint(
        &mut self,
        id: JobId,
        checkpoint: CheckpointId,
        attempt: ExecutionAttemptId,
        snapshot: TaskSnapshot,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.eg.current(attempt).is_none() {
            tracing::debug!(%attempt, %checkpoint, "acknowledgement of a replaced attempt ignored");
            return;
        }
        let Ack::AllAcknowledged(completed) =
            job.checkpoints.acknowledge(checkpoint, attempt, snapshot)
        else {
            return;
        };
        self.services
            .events
            .emit(ClusterEvent::CheckpointAcknowledged {
                job: id,
                checkpoint,
            });
        let data = match bincode::serialize(&*completed) {
            Ok(data) => bytes::Bytes::from(data),
            Err(e) => {
                job.checkpoints.persist_failed(checkpoint);
                tracing::error!(%id, %checkpoint, error = %e, "checkpoint could not be encoded");
                self.services.events.emit(ClusterEvent::CheckpointAborted {
                    job: id,
                    checkpoint,
                    reason: AbortReason::EncodeFailed,
                });
                return;
            }
        };
        let write = self.services.checkpoint_store.put(id, checkpoint, data);
        let inbox = self.inbox.clone();
        tokio::spawn(async move {
            let result = write.await.map_err(|e| e.to_string());
            let persisted = ActorMessage::CheckpointPersisted {
                job: id,
                checkpoint,
                result,
            };
            let _ = inbox.send(persisted).await;
        });
    }

    /// A completed checkpoint is in the store: it becomes the one to restore, older ones beyond
    /// `state.checkpoints.num-retained` are deleted, and the tasks are told (sinks commit).
    pub(super) fn checkpoint_persisted(
        &mut self,
        id: JobId,
        checkpoint: CheckpointId,
        result: Result<(), String>,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let events = &self.services.events;
        let aborted = |reason| ClusterEvent::CheckpointAborted {
            job: id,
            checkpoint,
            reason,
        };
        if let Err(error) = result {
            if job.checkpoints.persist_failed(checkpoint) {
                tracing::warn!(%id, %checkpoint, %error, "the checkpoint store refused a checkpoint");
                events.emit(aborted(AbortReason::StoreFailed));
            }
            return;
        }
        let subsumed = match job.checkpoints.persisted(checkpoint) {
            Persisted::Completed { subsumed } => subsumed,
            // Aborted meanwhile (failover, timeout: already announced), or overtaken by a
            // newer checkpoint: it must never be restored, and sinks have nothing to commit.
            Persisted::Aborted => return self.delete_checkpoint(id, checkpoint),
            Persisted::Subsumed => {
                events.emit(aborted(AbortReason::Subsumed));
                return self.delete_checkpoint(id, checkpoint);
            }
        };
        let bytes = job.checkpoints.latest().map_or(0, |c| c.bytes()) as u64;
        events.emit(ClusterEvent::CheckpointCompleted {
            job: id,
            checkpoint,
            bytes,
        });
        for tm in job.taskmanagers() {
            if let Some(tm) = self.tms.get(&tm) {
                let _ = tm.out.send(JmToTm::NotifyCheckpointComplete {
                    job: id,
                    checkpoint,
                });
            }
        }
        for old in subsumed {
            self.delete_checkpoint(id, old);
        }
    }

    /// Deletes a checkpoint from the store in the background; a failure only leaves garbage.
    fn delete_checkpoint(&self, job: JobId, checkpoint: CheckpointId) {
        let delete = self.services.checkpoint_store.delete(job, checkpoint);
        tokio::spawn(async move {
            if let Err(e) = delete.await {
                tracing::warn!(%job, %checkpoint, error = %e, "could not delete a checkpoint");
            }
        });
    }
}
