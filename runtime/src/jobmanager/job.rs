//! One job as the JobManager holds it: its graph and status, and as their own parts where its
//! tasks run ([`Placement`]), what its recovery is waiting for ([`Recovery`]) and what its
//! tasks report ([`JobMetrics`]).

use std::collections::{BTreeMap, BTreeSet};

use tokio::time::Instant;

use super::checkpoint_coordinator::CheckpointCoordinator;
use super::connection::Outbox;
use super::restart_backoff::RestartBackoff;
use super::scheduler::SlotOffer;
use crate::api::JobSpec;
use crate::config::Configuration;
use crate::events::{AbortReason, ClusterEvent, Events};
use crate::graph::{
    EdgeId, ExecutionAttemptId, ExecutionGraph, ExecutionSlotSharingGroup, ExecutionState, JobId,
    JobStatus, SubtaskId, TaskManagerId, VertexId,
};
use crate::rpc::JmToClient;

/// Where a job's tasks run.
#[derive(Default)]
pub(super) struct Placement {
    /// The TaskManager instance of each current attempt.
    pub attempts: BTreeMap<ExecutionAttemptId, TaskManagerId>,
    /// The job's execution slot-sharing groups and the slot each holds (None: needs one).
    pub groups: Vec<ExecutionSlotSharingGroup>,
    pub group_slots: Vec<Option<SlotOffer>>,
}

impl Placement {
    /// The TaskManager instance `attempt` runs on, if it is a current, placed attempt.
    pub fn of(&self, attempt: &ExecutionAttemptId) -> Option<TaskManagerId> {
        self.attempts.get(attempt).copied()
    }

    /// Forgets the slots of TaskManagers that are gone: their groups need a new one.
    pub fn forget_lost(&mut self, alive: impl Fn(TaskManagerId) -> bool) {
        for slot in &mut self.group_slots {
            if slot.is_some_and(|o| !alive(o.tm)) {
                *slot = None;
            }
        }
    }
}

/// What a failed-over job waits for before it runs again.
pub(super) struct Recovery {
    /// Decides whether and when the job may restart after a failure.
    pub backoff: Box<dyn RestartBackoff>,
    /// When the back-off of the latest failover ends.
    pub restart_at: Option<Instant>,
    /// Subtasks waiting to be redeployed after a partial failover; empty when the whole job
    /// restarts.
    pub pending: BTreeSet<SubtaskId>,
}

impl Recovery {
    /// No failover in progress.
    pub fn is_idle(&self) -> bool {
        self.restart_at.is_none() && self.pending.is_empty()
    }
}

/// What the job's tasks reported.
#[derive(Default)]
pub(super) struct JobMetrics {
    /// Records each attempt took in.
    pub records: BTreeMap<ExecutionAttemptId, u64>,
    /// Records each attempt dropped for an absent consumer (kept for replaced attempts too).
    pub dropped: BTreeMap<ExecutionAttemptId, u64>,
}

pub(super) struct Job {
    pub id: JobId,
    pub spec: JobSpec,
    pub config: Configuration,
    pub eg: ExecutionGraph,
    status: JobStatus,
    pub message: Option<String>,
    pub clients: Vec<Outbox<JmToClient>>,
    pub submitted: Instant,
    pub placement: Placement,
    pub recovery: Recovery,
    pub metrics: JobMetrics,
    pub checkpoints: CheckpointCoordinator,
}

impl Job {
    pub fn new(
        id: JobId,
        spec: JobSpec,
        config: Configuration,
        eg: ExecutionGraph,
        client: Outbox<JmToClient>,
        backoff: Box<dyn RestartBackoff>,
        checkpoints: CheckpointCoordinator,
    ) -> Self {
        Job {
            id,
            spec,
            config,
            eg,
            status: JobStatus::Created,
            message: None,
            clients: vec![client],
            submitted: Instant::now(),
            placement: Placement::default(),
            recovery: Recovery {
                backoff,
                restart_at: None,
                pending: BTreeSet::new(),
            },
            metrics: JobMetrics::default(),
            checkpoints,
        }
    }

    pub fn status(&self) -> JobStatus {
        self.status
    }

    /// The one place a job's status changes, so every change is an event.
    pub fn set_status(&mut self, status: JobStatus, events: &Events) {
        if self.status != status {
            self.status = status;
            events.emit(ClusterEvent::JobStatusChanged {
                job: self.id,
                status,
            });
        }
    }

    /// Gives up the pending and persisting checkpoints, each announced as an event.
    pub fn abort_checkpoints(&mut self, reason: AbortReason, events: &Events) {
        for checkpoint in self.checkpoints.abort_all() {
            events.emit(ClusterEvent::CheckpointAborted {
                job: self.id,
                checkpoint,
                reason,
            });
        }
    }

    /// Running with every task running and no failover in progress.
    pub fn is_steady(&self) -> bool {
        self.status == JobStatus::Running
            && self.recovery.is_idle()
            && self.eg.all().all(|ev| ev.state == ExecutionState::Running)
    }

    /// The attempts of this job a loss of `tm` takes: those that have not ended, and those
    /// that finished but whose output some consumer has not read to the end (it dies with the
    /// TaskManager).
    pub fn attempts_lost_with(&self, tm: TaskManagerId) -> Vec<ExecutionAttemptId> {
        self.eg
            .all()
            .filter(|ev| match ev.state {
                ExecutionState::Finished => self.has_unfinished_consumer(ev.vertex, ev.subtask),
                state => !state.is_terminal(),
            })
            .map(|ev| ev.attempt_id())
            .filter(|a| self.placement.of(a) == Some(tm))
            .collect()
    }

    /// The subpartitions (edge, index) of (`vertex`, `subtask`) whose consumer finished.
    pub fn finished_consumers(&self, vertex: VertexId, subtask: u32) -> Vec<(EdgeId, u32)> {
        let graph = &self.eg.job;
        let mut out = Vec::new();
        for &edge in &graph.vertex(vertex).outputs {
            let cv = graph.edge(edge).target;
            for cs in 0..graph.vertex(cv).parallelism {
                if self
                    .eg
                    .get(cv, cs)
                    .is_some_and(|ev| ev.state == ExecutionState::Finished)
                {
                    out.extend(
                        graph
                            .input_channels(cv, cs)
                            .iter()
                            .filter(|ch| ch.edge == edge && ch.producer_subtask == subtask)
                            .map(|ch| (edge, ch.subpartition)),
                    );
                }
            }
        }
        out
    }

    /// True if a consumer of (`vertex`, `subtask`) has not finished.
    fn has_unfinished_consumer(&self, vertex: VertexId, subtask: u32) -> bool {
        let graph = &self.eg.job;
        graph.vertex(vertex).outputs.iter().any(|&edge| {
            let cv = graph.edge(edge).target;
            (0..graph.vertex(cv).parallelism).any(|cs| {
                let reads = graph
                    .input_channels(cv, cs)
                    .iter()
                    .any(|ch| ch.edge == edge && ch.producer_subtask == subtask);
                reads
                    && self
                        .eg
                        .get(cv, cs)
                        .is_some_and(|ev| ev.state != ExecutionState::Finished)
            })
        })
    }

    /// The TaskManagers running current attempts of this job.
    pub fn taskmanagers(&self) -> BTreeSet<TaskManagerId> {
        self.eg
            .all()
            .filter(|ev| !ev.state.is_terminal())
            .filter_map(|ev| self.placement.of(&ev.attempt_id()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::build_job;
    use crate::events::EventLog;
    use crate::jobmanager::restart_backoff;
    use crate::jobmanager::scheduler::SlotOffer;

    /// keyed-count p=2 (v0 source+map, v1 count+sink), every subtask running, subtask i of
    /// both vertices on TaskManager i+1.
    fn job() -> Job {
        let spec = JobSpec::new("keyed-count").with("parallelism", 2);
        let config = Configuration::new();
        let eg = ExecutionGraph::new(std::sync::Arc::new(build_job(&spec, 128).unwrap()));
        let (client, _, _) = crate::jobmanager::connection::outbox();
        let backoff = restart_backoff::from_config(&config, 1);
        let checkpoints = CheckpointCoordinator::new(None, Duration::from_secs(10), 1);
        let mut job = Job::new(JobId(1), spec, config, eg, client, backoff, checkpoints);
        for ev in job.eg.all_mut() {
            ev.state = ExecutionState::Running;
            let tm = TaskManagerId(u64::from(ev.subtask) + 1);
            job.placement.attempts.insert(ev.attempt_id(), tm);
        }
        job
    }

    #[test]
    fn a_status_change_is_an_event_and_a_repeat_is_not() {
        let keep = EventLog::default();
        let events = Events::new(keep.clone());
        let mut job = job();
        job.set_status(JobStatus::Running, &events);
        job.set_status(JobStatus::Running, &events);
        job.set_status(JobStatus::Finished, &events);
        let got = keep.take();
        let statuses: Vec<JobStatus> = got
            .iter()
            .filter_map(|e| match e {
                ClusterEvent::JobStatusChanged { status, .. } => Some(*status),
                _ => None,
            })
            .collect();
        assert_eq!(statuses, vec![JobStatus::Running, JobStatus::Finished]);
    }

    #[test]
    fn a_lost_taskmanager_takes_its_running_attempts_and_needed_finished_ones() {
        let mut job = job();
        let on_tm1 = job.attempts_lost_with(TaskManagerId(1));
        let subtasks: Vec<SubtaskId> = on_tm1.iter().map(|a| a.subtask_id()).collect();
        assert_eq!(
            subtasks,
            vec![
                SubtaskId::new(VertexId(0), 0),
                SubtaskId::new(VertexId(1), 0)
            ]
        );
        // Source 0 finished, but consumer v1[1] on tm-2 still reads its output: it dies with
        // tm-1 and must be counted lost.
        job.eg.get_mut(VertexId(0), 0).unwrap().state = ExecutionState::Finished;
        assert!(job
            .attempts_lost_with(TaskManagerId(1))
            .iter()
            .any(|a| a.subtask_id() == SubtaskId::new(VertexId(0), 0)));
        // Once every consumer finished, its output is no longer needed.
        for s in 0..2 {
            job.eg.get_mut(VertexId(1), s).unwrap().state = ExecutionState::Finished;
        }
        assert!(job.attempts_lost_with(TaskManagerId(1)).is_empty());
        assert_eq!(
            job.finished_consumers(VertexId(0), 0).len(),
            2,
            "both of source 0's subpartitions lead to finished consumers"
        );
    }

    #[test]
    fn forgetting_lost_taskmanagers_frees_only_their_groups() {
        let mut placement = Placement {
            group_slots: vec![
                Some(SlotOffer {
                    tm: TaskManagerId(1),
                    slot: 0,
                }),
                Some(SlotOffer {
                    tm: TaskManagerId(2),
                    slot: 0,
                }),
            ],
            ..Placement::default()
        };
        placement.forget_lost(|tm| tm == TaskManagerId(2));
        assert_eq!(placement.group_slots[0], None);
        assert!(placement.group_slots[1].is_some());
    }
}
