//! Carrying recovery out: reacting to task states, failing over what the planner
//! (`failover.rs`) chose once the restart back-off allows, rebalancing moves, and ending jobs.
//!
//! Every restarted subtask gets a new attempt number, so nothing from its old attempt is
//! accepted any more, and restores the latest completed checkpoint when it is redeployed
//! (`deployment.rs`).

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

use super::failover::{subtasks_to_restart, FailureScope};
use super::rebalance::plan_moves;
use super::{restart_backoff, JobManager};
use crate::config::{FailoverStrategy, LoadBalanceMode};
use crate::events::{AbortReason, ClusterEvent, FailoverCause, GroupMove};
use crate::graph::{ExecutionAttemptId, ExecutionState, JobId, JobStatus, SubtaskId};
use crate::rpc::JmToTm;

impl JobManager {
    pub(super) fn on_task_state(
        &mut self,
        id: JobId,
        attempt: ExecutionAttemptId,
        state: ExecutionState,
        records: u64,
        error: Option<String>,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.status().is_terminal() {
            return;
        }
        let Some(ev) = job.eg.current(attempt) else {
            tracing::debug!(%attempt, "state change of a replaced attempt ignored");
            return;
        };
        ev.state = state;
        job.metrics.records.insert(attempt, records);
        let events = &self.services.events;
        events.emit(ClusterEvent::SubtaskStateChanged {
            job: id,
            attempt,
            state,
        });
        if state.is_terminal() {
            if let Some(checkpoint) = job.checkpoints.abort_waiting_for(attempt) {
                events.emit(ClusterEvent::CheckpointAborted {
                    job: id,
                    checkpoint,
                    reason: AbortReason::TaskEnded(attempt),
                });
            }
        }
        match state {
            ExecutionState::Failed => {
                let cause = FailoverCause::TaskFailed {
                    attempt,
                    error: error.unwrap_or_default(),
                };
                self.fail_over(id, cause, &[attempt], FailureScope::Task);
            }
            ExecutionState::Finished
                if job.eg.all().all(|ev| ev.state == ExecutionState::Finished) =>
            {
                self.end_job(id, JobStatus::Finished, None);
            }
            ExecutionState::Finished => self.release_finished_consumer(id, attempt),
            // A TaskManager that joined while the job was restoring found it unsteady and
            // moved nothing: the job's last subtask running again is the next chance.
            ExecutionState::Running if job.is_steady() => self.rebalance_jobs(),
            _ => {}
        }
    }

    /// Handles a failure of a running job: restarts what the failover strategy says, if the
    /// restart back-off allows, after its delay; otherwise fails the job. `failed` are the
    /// attempts that failed or were lost.
    pub(super) fn fail_over(
        &mut self,
        id: JobId,
        cause: FailoverCause,
        failed: &[ExecutionAttemptId],
        scope: FailureScope,
    ) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        if job.status() != JobStatus::Running {
            return;
        }
        job.recovery.backoff.notify_failure(job.submitted.elapsed());
        if !job.recovery.backoff.can_restart() {
            let strategy = job.recovery.backoff.describe();
            self.events().emit(ClusterEvent::RestartsExhausted {
                job: id,
                strategy: strategy.clone(),
            });
            let reason = format!("{cause}; restart strategy {strategy}: no more restarts");
            return self.fail_job(id, reason);
        }
        let strategy = job.config.failover_strategy();
        let backoff = if restart_backoff::skips_delay(&job.config, strategy, &cause) {
            Duration::ZERO
        } else {
            job.recovery.backoff.backoff()
        };
        let restart = subtasks_to_restart(&job.eg, strategy, failed, scope);
        let events = &self.services.events;
        job.abort_checkpoints(AbortReason::Failover, events);
        events.emit(ClusterEvent::FailoverStarted {
            job: id,
            strategy,
            cause,
            restart: restart.iter().copied().collect(),
            of: job.eg.subtask_count() as u32,
            backoff,
            checkpoint: job.checkpoints.latest().map(|c| c.id),
        });
        if restart.len() == job.eg.subtask_count() {
            return self.restart_all(id, backoff);
        }
        self.restart_some(id, restart, backoff);
    }

    /// The `full` restart: every task is cancelled and the whole job is placed again.
    fn restart_all(&mut self, id: JobId, backoff: Duration) {
        self.cancel_tasks(id);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        for ev in job.eg.all_mut() {
            ev.attempt += 1;
            ev.state = ExecutionState::Created;
            ev.location = None;
        }
        job.placement.attempts.clear();
        job.recovery.pending.clear();
        job.set_status(JobStatus::Restarting, &self.services.events);
        job.checkpoints.stop();
        job.recovery.restart_at = Some(Instant::now() + backoff);
        self.pool.release_job(id);
        self.broadcast_status(id);
    }

    /// A partial restart: only `subtasks` are cancelled; the slots of lost TaskManagers are
    /// found anew when they are redeployed. The job stays RUNNING, as in Flink.
    fn restart_some(&mut self, id: JobId, subtasks: BTreeSet<SubtaskId>, backoff: Duration) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        for s in &subtasks {
            let Some(ev) = job.eg.get_mut(s.vertex, s.subtask) else {
                continue;
            };
            let old = ev.attempt_id();
            if !ev.state.is_terminal() {
                if let Some(tm) = job.placement.of(&old).and_then(|tm| self.tms.get(&tm)) {
                    let _ = tm.out.send(JmToTm::CancelTask {
                        job: id,
                        attempt: old,
                    });
                }
            }
            job.placement.attempts.remove(&old);
            ev.attempt += 1;
            ev.state = ExecutionState::Created;
            ev.location = None;
        }
        self.revoke_old_consumers(id, &subtasks);
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        // A group whose TaskManager is gone must find a new slot.
        job.placement.forget_lost(|tm| self.tms.contains_key(&tm));
        job.recovery.pending.extend(subtasks);
        job.recovery.restart_at = Some(Instant::now() + backoff);
        self.broadcast_status(id);
    }

    pub(super) fn next_restart(&self) -> Option<Instant> {
        self.jobs
            .values()
            .filter_map(|j| j.recovery.restart_at)
            .min()
    }

    /// Jobs whose back-off is over go back to scheduling (a full restart) or redeploy their
    /// restarted subtasks (a partial one).
    pub(super) fn restart_due(&mut self) {
        let now = Instant::now();
        for job in self.jobs.values_mut() {
            if job.recovery.restart_at.is_some_and(|at| at <= now) {
                job.recovery.restart_at = None;
                if job.recovery.pending.is_empty() {
                    job.set_status(JobStatus::Created, &self.services.events);
                }
            }
        }
        self.schedule_waiting();
    }

    /// Fails a job for good: cancels its remaining tasks.
    pub(super) fn fail_job(&mut self, id: JobId, reason: String) {
        self.events().emit(ClusterEvent::JobFailed {
            job: id,
            reason: reason.clone(),
        });
        self.end_job(id, JobStatus::Failed, Some(reason));
    }

    pub(super) fn end_job(&mut self, id: JobId, status: JobStatus, message: Option<String>) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        job.set_status(status, &self.services.events);
        job.message = message;
        job.recovery.restart_at = None;
        job.recovery.pending.clear();
        job.checkpoints.stop();
        job.abort_checkpoints(AbortReason::JobEnded, &self.services.events);
        self.cancel_tasks(id);
        for tm in self.tms.values() {
            let _ = tm.out.send(JmToTm::ReleaseJob { job: id });
        }
        self.pool.release_job(id);
        self.broadcast_status(id);
        self.schedule_waiting();
    }

    /// A TaskManager joined (a replacement, after a failover left the others uneven), or a
    /// job became steady again: steady jobs under `taskmanager` failover in `tasks` mode move
    /// the groups `rebalance.rs` chooses. Only the moved subtasks restart, as on the loss of
    /// theirs.
    pub(super) fn rebalance_jobs(&mut self) {
        let ids: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, j)| {
                j.is_steady()
                    && j.config.failover_strategy() == FailoverStrategy::TaskManager
                    && j.config.load_balance_mode() == LoadBalanceMode::Tasks
            })
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.rebalance(id);
        }
    }

    fn rebalance(&mut self, id: JobId) {
        let Some(job) = self.jobs.get_mut(&id) else {
            return;
        };
        let placement = &mut job.placement;
        let groups: Vec<(usize, Option<_>)> = placement
            .groups
            .iter()
            .zip(&placement.group_slots)
            .map(|(g, slot)| (g.tasks(), *slot))
            .collect();
        let moves = plan_moves(self.tms.keys().copied(), &groups, self.pool.free());
        if moves.is_empty() {
            return;
        }
        let name = |tm| {
            self.tms
                .get(&tm)
                .map_or_else(String::new, |t| t.name.clone())
        };
        let mut subtasks = BTreeSet::new();
        let mut moved = Vec::new();
        for (g, offer) in &moves {
            let members: Vec<SubtaskId> = placement.groups[*g]
                .members
                .iter()
                .map(|&(v, s)| SubtaskId::new(v, s))
                .collect();
            let from = placement.group_slots[*g];
            if let Some(old) = from {
                self.pool.release(old);
            }
            self.pool.allocate(*offer, id);
            placement.group_slots[*g] = Some(*offer);
            subtasks.extend(members.iter().copied());
            moved.push(GroupMove {
                subtasks: members,
                from: from.map_or_else(String::new, |o| name(o.tm)),
                to: name(offer.tm),
            });
        }
        let events = &self.services.events;
        job.abort_checkpoints(AbortReason::Rebalancing, events);
        events.emit(ClusterEvent::Rebalanced {
            job: id,
            moves: moved,
        });
        self.restart_some(id, subtasks, Duration::ZERO);
    }
}
