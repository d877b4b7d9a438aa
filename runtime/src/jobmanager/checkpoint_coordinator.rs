//! The checkpoint coordinator of one job (Flink's CheckpointCoordinator): when to trigger, which
//! acknowledgements a checkpoint still waits for, which completed checkpoints are retained, and
//! what state each subtask restores.
//!
//! It is a plain state machine driven by the JobManager actor: it sends nothing and stores
//! nothing itself. The actor sends the triggers, writes completed checkpoints to the
//! `CheckpointStore` and tells the tasks, so every decision stays in the actor's one order.
//! At most one checkpoint is pending at a time (Flink's default `max-concurrent-checkpoints`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::graph::{CheckpointId, ExecutionAttemptId, JobGraph, VertexId};
use crate::state::{subtask_for_key_group, OperatorState, TaskRestore, TaskSnapshot};

/// A checkpoint every task acknowledged: the state of every subtask, by (vertex, subtask).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletedCheckpoint {
    /// The checkpoint's id.
    pub id: CheckpointId,
    /// Each subtask's snapshot, by (vertex id, subtask index).
    pub tasks: BTreeMap<(u32, u32), TaskSnapshot>,
}

impl CompletedCheckpoint {
    /// The size of its task snapshots, summed.
    pub fn bytes(&self) -> usize {
        self.tasks.values().map(TaskSnapshot::bytes).sum()
    }

    /// The state subtask `subtask` of `vertex` starts from: its own non-keyed state, and the
    /// keyed state of every key group it owns, from whichever subtask held the group.
    pub fn restore_for(&self, job: &JobGraph, vertex: VertexId, subtask: u32) -> TaskRestore {
        let parallelism = job.vertex(vertex).parallelism;
        let max = job.max_parallelism;
        let mut snapshot = TaskSnapshot::default();
        for ((v, s), task) in &self.tasks {
            if *v != vertex.0 {
                continue;
            }
            if *s == subtask {
                snapshot.outputs = task.outputs.clone();
            }
            for (node, state) in &task.operators {
                let mine = snapshot
                    .operators
                    .entry(*node)
                    .or_insert_with(OperatorState::default);
                if *s == subtask {
                    mine.operator = state.operator.clone();
                }
                for (group, bytes) in &state.keyed {
                    if subtask_for_key_group(*group, max, parallelism) == subtask {
                        mine.keyed.insert(*group, bytes.clone());
                    }
                }
            }
        }
        TaskRestore {
            checkpoint: self.id,
            snapshot,
            input_age: Duration::ZERO,
        }
    }
}

struct Pending {
    id: CheckpointId,
    started: Instant,
    waiting: BTreeSet<ExecutionAttemptId>,
    tasks: BTreeMap<(u32, u32), TaskSnapshot>,
}

/// What a finished store write means.
#[derive(Debug, PartialEq, Eq)]
pub enum Persisted {
    /// The checkpoint completed; `subsumed` are no longer retained (delete them).
    Completed {
        /// The older checkpoints no longer retained.
        subsumed: Vec<CheckpointId>,
    },
    /// A newer checkpoint completed first: this one is obsolete (delete it).
    Subsumed,
    /// Aborted while being written (failover, timeout): never restore it (delete it).
    Aborted,
}

/// What an acknowledgement did.
#[derive(Debug)]
pub enum Ack {
    /// Not for the pending checkpoint, or from an attempt it does not wait for.
    Ignored,
    /// Recorded; others are still outstanding.
    Waiting,
    /// The last one: the checkpoint is ready to be persisted.
    AllAcknowledged(Arc<CompletedCheckpoint>),
}

/// One job's checkpoints: the schedule, the pending one, those being written, and the
/// completed ones retained for restore.
pub struct CheckpointCoordinator {
    interval: Option<Duration>,
    timeout: Duration,
    retained: usize,
    next_id: u64,
    next_trigger: Option<Instant>,
    pending: Option<Pending>,
    /// Acknowledged by every task, being written to the store (since when).
    persisting: BTreeMap<CheckpointId, (Instant, Arc<CompletedCheckpoint>)>,
    /// Oldest first; at most `retained`.
    completed: VecDeque<Arc<CompletedCheckpoint>>,
    /// When the latest completed checkpoint was triggered.
    latest_started: Option<Instant>,
}

impl CheckpointCoordinator {
    /// A coordinator triggering every `interval` (none: never), giving up on a checkpoint after
    /// `timeout`, keeping the latest `retained` completed ones.
    pub fn new(interval: Option<Duration>, timeout: Duration, retained: u32) -> Self {
        CheckpointCoordinator {
            interval,
            timeout,
            retained: retained.max(1) as usize,
            next_id: 1,
            next_trigger: None,
            pending: None,
            persisting: BTreeMap::new(),
            completed: VecDeque::new(),
            latest_started: None,
        }
    }

    /// The last checkpoint triggered (`chk-0` before the first).
    pub fn last_triggered(&self) -> CheckpointId {
        CheckpointId(self.next_id - 1)
    }

    /// Starts the periodic schedule (the job is running): the first checkpoint one interval
    /// from now.
    pub fn start(&mut self, now: Instant) {
        // A configured duration may be huge: past the clock's range means never.
        self.next_trigger = self.interval.and_then(|i| now.checked_add(i));
    }

    /// Stops triggering (the job is restarting or ended).
    pub fn stop(&mut self) {
        self.next_trigger = None;
    }

    /// When the coordinator next needs the actor: a trigger or a checkpoint's timeout.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let pending = self.pending.as_ref().map(|p| p.started);
        let persisting = self.persisting.values().map(|(started, _)| *started).min();
        let expiry = [pending, persisting]
            .into_iter()
            .flatten()
            .min()
            .and_then(|t| t.checked_add(self.timeout));
        [self.next_trigger, expiry].into_iter().flatten().min()
    }

    /// Moves the schedule on if a checkpoint is due but the job cannot take one now (not every
    /// task is running): Flink declines such a checkpoint and tries at the next interval.
    pub fn postpone_if_due(&mut self, now: Instant) -> bool {
        match (self.interval, self.next_trigger) {
            (Some(interval), Some(due)) if now >= due => {
                self.next_trigger = now.checked_add(interval);
                true
            }
            _ => false,
        }
    }

    /// If a checkpoint is due and none is pending, starts one waiting for `sources`'
    /// acknowledgements and everything downstream (`all` current attempts); returns its id.
    /// The schedule moves on either way, so a busy job skips a beat rather than bunching up.
    pub fn trigger_if_due(
        &mut self,
        now: Instant,
        all: impl IntoIterator<Item = ExecutionAttemptId>,
    ) -> Option<CheckpointId> {
        let (interval, due) = (self.interval?, self.next_trigger?);
        if now < due {
            return None;
        }
        self.next_trigger = now.checked_add(interval);
        if self.pending.is_some() {
            return None;
        }
        let id = CheckpointId(self.next_id);
        self.next_id += 1;
        self.pending = Some(Pending {
            id,
            started: now,
            waiting: all.into_iter().collect(),
            tasks: BTreeMap::new(),
        });
        Some(id)
    }

    /// Records a task's acknowledgement.
    pub fn acknowledge(
        &mut self,
        id: CheckpointId,
        attempt: ExecutionAttemptId,
        snapshot: TaskSnapshot,
    ) -> Ack {
        let Some(pending) = self.pending.as_mut().filter(|p| p.id == id) else {
            return Ack::Ignored;
        };
        if !pending.waiting.remove(&attempt) {
            return Ack::Ignored;
        }
        pending
            .tasks
            .insert((attempt.vertex.0, attempt.subtask), snapshot);
        if !pending.waiting.is_empty() {
            return Ack::Waiting;
        }
        let done = self.pending.take().expect("checked above");
        let completed = Arc::new(CompletedCheckpoint {
            id: done.id,
            tasks: done.tasks,
        });
        self.persisting
            .insert(done.id, (done.started, completed.clone()));
        Ack::AllAcknowledged(completed)
    }

    /// The store holds checkpoint `id`: it becomes the latest completed one, unless a newer
    /// one completed first (a slow write) or it was aborted meanwhile.
    pub fn persisted(&mut self, id: CheckpointId) -> Persisted {
        let Some((started, completed)) = self.persisting.remove(&id) else {
            return Persisted::Aborted;
        };
        if self.completed.back().is_some_and(|c| c.id > id) {
            return Persisted::Subsumed;
        }
        self.completed.push_back(completed);
        self.latest_started = Some(started);
        let mut subsumed = Vec::new();
        while self.completed.len() > self.retained {
            subsumed.extend(self.completed.pop_front().map(|c| c.id));
        }
        Persisted::Completed { subsumed }
    }

    /// Writing checkpoint `id` to the store failed: it never completes.
    pub fn persist_failed(&mut self, id: CheckpointId) -> bool {
        self.persisting.remove(&id).is_some()
    }

    /// Aborts the checkpoints started longer than the timeout ago, whether still waiting for
    /// acknowledgements or for the store; returns their ids.
    pub fn expire(&mut self, now: Instant) -> Vec<CheckpointId> {
        let timeout = self.timeout;
        let overdue = |started: &Instant| started.checked_add(timeout).is_some_and(|e| now >= e);
        let mut expired = Vec::new();
        if self.pending.as_ref().is_some_and(|p| overdue(&p.started)) {
            expired.extend(self.pending.take().map(|p| p.id));
        }
        let stalled: Vec<CheckpointId> = self
            .persisting
            .iter()
            .filter(|(_, (started, _))| overdue(started))
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            self.persisting.remove(&id);
            expired.push(id);
        }
        expired.sort_unstable();
        expired
    }

    /// Aborts the pending checkpoint if it waits for `attempt` (which finished or failed, and
    /// will never acknowledge); returns its id.
    pub fn abort_waiting_for(&mut self, attempt: ExecutionAttemptId) -> Option<CheckpointId> {
        if self.pending.as_ref()?.waiting.contains(&attempt) {
            return self.pending.take().map(|p| p.id);
        }
        None
    }

    /// Aborts everything in flight (a failover): returns the aborted ids.
    pub fn abort_all(&mut self) -> Vec<CheckpointId> {
        let mut aborted: Vec<CheckpointId> =
            self.pending.take().map(|p| p.id).into_iter().collect();
        aborted.extend(std::mem::take(&mut self.persisting).into_keys());
        aborted.sort_unstable();
        aborted
    }

    /// The checkpoint a restart restores from.
    pub fn latest(&self) -> Option<&Arc<CompletedCheckpoint>> {
        self.completed.back()
    }

    /// How long ago the latest completed checkpoint was triggered, as of `now`.
    pub fn latest_age(&self, now: Instant) -> Duration {
        self.latest_started
            .map_or(Duration::ZERO, |s| now.saturating_duration_since(s))
    }

    /// The completed checkpoints retained, oldest first.
    pub fn retained_ids(&self) -> Vec<CheckpointId> {
        self.completed.iter().map(|c| c.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{build_job, JobSpec};

    fn attempt(vertex: u32, subtask: u32) -> ExecutionAttemptId {
        ExecutionAttemptId {
            vertex: VertexId(vertex),
            subtask,
            attempt: 0,
        }
    }

    fn coordinator() -> CheckpointCoordinator {
        CheckpointCoordinator::new(Some(Duration::from_secs(1)), Duration::from_secs(5), 2)
    }

    #[tokio::test]
    async fn completes_after_every_acknowledgement_and_retains_the_newest() {
        let mut c = coordinator();
        let t0 = Instant::now();
        c.start(t0);
        let tasks = [attempt(0, 0), attempt(1, 0)];
        assert_eq!(
            c.trigger_if_due(t0, tasks),
            None,
            "not due before one interval"
        );
        for round in 1..=3u64 {
            let now = t0 + Duration::from_secs(round);
            let id = c.trigger_if_due(now, tasks).expect("due");
            assert_eq!(id, CheckpointId(round));
            assert!(matches!(
                c.acknowledge(id, tasks[0], TaskSnapshot::default()),
                Ack::Waiting
            ));
            assert!(matches!(
                c.acknowledge(id, tasks[0], TaskSnapshot::default()),
                Ack::Ignored
            ));
            assert!(matches!(
                c.acknowledge(id, tasks[1], TaskSnapshot::default()),
                Ack::AllAcknowledged(_)
            ));
            let subsumed = if round == 3 {
                vec![CheckpointId(1)]
            } else {
                vec![]
            };
            assert_eq!(c.persisted(id), Persisted::Completed { subsumed });
        }
        assert_eq!(c.retained_ids(), vec![CheckpointId(2), CheckpointId(3)]);
        assert_eq!(c.latest().unwrap().id, CheckpointId(3));
    }

    #[tokio::test]
    async fn one_pending_at_a_time_and_a_timeout_aborts_it() {
        let mut c = coordinator();
        let t0 = Instant::now();
        c.start(t0);
        let tasks = [attempt(0, 0)];
        let id = c
            .trigger_if_due(t0 + Duration::from_secs(1), tasks)
            .unwrap();
        assert_eq!(c.trigger_if_due(t0 + Duration::from_secs(2), tasks), None);
        assert_eq!(
            c.expire(t0 + Duration::from_secs(3)),
            Vec::<CheckpointId>::new()
        );
        assert_eq!(c.expire(t0 + Duration::from_secs(6)), vec![id]);
        assert!(matches!(
            c.acknowledge(id, tasks[0], TaskSnapshot::default()),
            Ack::Ignored
        ));
        assert!(
            c.latest().is_none(),
            "an aborted checkpoint never completes"
        );
        assert_eq!(
            c.trigger_if_due(t0 + Duration::from_secs(7), tasks),
            Some(CheckpointId(id.0 + 1))
        );
    }

    #[tokio::test]
    async fn a_failed_store_write_or_a_failover_leaves_the_last_completed_one() {
        let mut c = coordinator();
        let t0 = Instant::now();
        c.start(t0);
        let tasks = [attempt(0, 0)];
        let first = c
            .trigger_if_due(t0 + Duration::from_secs(1), tasks)
            .unwrap();
        c.acknowledge(first, tasks[0], TaskSnapshot::default());
        c.persisted(first);
        let second = c
            .trigger_if_due(t0 + Duration::from_secs(2), tasks)
            .unwrap();
        c.acknowledge(second, tasks[0], TaskSnapshot::default());
        assert!(c.persist_failed(second));
        assert_eq!(c.persisted(second), Persisted::Aborted);
        let third = c
            .trigger_if_due(t0 + Duration::from_secs(3), tasks)
            .unwrap();
        assert_eq!(c.abort_all(), vec![third]);
        assert_eq!(c.latest().unwrap().id, first);
        // A store write that never returns times out like a missing acknowledgement.
        let fourth = c
            .trigger_if_due(t0 + Duration::from_secs(4), tasks)
            .unwrap();
        c.acknowledge(fourth, tasks[0], TaskSnapshot::default());
        assert_eq!(c.expire(t0 + Duration::from_secs(9)), vec![fourth]);
        assert_eq!(c.persisted(fourth), Persisted::Aborted);
        assert_eq!(c.latest().unwrap().id, first);
    }

    #[tokio::test]
    async fn a_huge_interval_or_timeout_means_never_not_a_panic() {
        let mut c = CheckpointCoordinator::new(Some(Duration::MAX), Duration::MAX, 1);
        let t0 = Instant::now();
        c.start(t0);
        assert_eq!(c.next_wakeup(), None);
        assert!(!c.postpone_if_due(t0));
        let mut c = CheckpointCoordinator::new(Some(Duration::from_secs(1)), Duration::MAX, 1);
        c.start(t0);
        let id = c
            .trigger_if_due(t0 + Duration::from_secs(1), [attempt(0, 0)])
            .unwrap();
        assert!(c.expire(t0 + Duration::from_secs(3600)).is_empty());
        assert!(c.next_wakeup().is_some());
        assert!(matches!(
            c.acknowledge(id, attempt(0, 0), TaskSnapshot::default()),
            Ack::AllAcknowledged(_)
        ));
    }

    #[tokio::test]
    async fn a_write_that_finishes_after_a_newer_checkpoint_is_subsumed() {
        let mut c = coordinator();
        let t0 = Instant::now();
        c.start(t0);
        let tasks = [attempt(0, 0)];
        let slow = c
            .trigger_if_due(t0 + Duration::from_secs(1), tasks)
            .unwrap();
        c.acknowledge(slow, tasks[0], TaskSnapshot::default());
        let fast = c
            .trigger_if_due(t0 + Duration::from_secs(2), tasks)
            .unwrap();
        c.acknowledge(fast, tasks[0], TaskSnapshot::default());
        assert_eq!(c.persisted(fast), Persisted::Completed { subsumed: vec![] });
        assert_eq!(c.persisted(slow), Persisted::Subsumed);
        assert_eq!(c.retained_ids(), vec![fast]);
    }

    #[test]
    fn restore_hands_keyed_state_back_by_key_group_owner() {
        let job = build_job(&JobSpec::new("keyed-count").with("parallelism", 4), 16).unwrap();
        let keyed = job.vertices.iter().find(|v| v.is_sink).unwrap();
        let max = job.max_parallelism;
        let node = keyed.nodes[0].0;
        // Every subtask held some groups; the restore gives each the groups of its range.
        let mut tasks = BTreeMap::new();
        for s in 0..keyed.parallelism {
            let mut snap = TaskSnapshot::default();
            snap.operators.insert(
                node,
                OperatorState {
                    keyed: (0..max)
                        .filter(|g| g % keyed.parallelism == s)
                        .map(|g| (g, vec![g as u8]))
                        .collect(),
                    operator: Some(vec![s as u8]),
                },
            );
            tasks.insert((keyed.id.0, s), snap);
        }
        let c = CompletedCheckpoint {
            id: CheckpointId(9),
            tasks,
        };
        let mut seen = 0;
        for s in 0..keyed.parallelism {
            let r = c.restore_for(&job, keyed.id, s);
            assert_eq!(r.checkpoint, CheckpointId(9));
            let op = &r.snapshot.operators[&node];
            assert_eq!(op.operator, Some(vec![s as u8]));
            assert!(op
                .keyed
                .keys()
                .all(|g| subtask_for_key_group(*g, max, keyed.parallelism) == s));
            seen += op.keyed.len();
        }
        assert_eq!(seen, max as usize);
    }
}
