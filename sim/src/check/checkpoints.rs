//! The checkpoint-coherence checker: what the JobManager announces about checkpoints against
//! what it does with them, from its events alone.
//!
//! - A failover (`FailoverStarted`) announces the latest checkpoint completed at that moment
//!   (none if none completed), and every deployment (`TasksDeployed`) restores the latest one
//!   completed by then; a failover's restarted subtasks restore the checkpoint it announced.
//! - A checkpoint triggered before a failover or rebalancing began (still collecting
//!   acknowledgements, or acknowledged and being written) never completes after it: the
//!   restart cancels what it waits for and aborts the sinks' transactions staged for it, as
//!   Flink aborts pending checkpoints on failover.
//! - Checkpoints complete in increasing order: a restore takes the last one completed, so an
//!   older one completing late would roll every later restore back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rill::events::ClusterEvent;
use rill::ids::{CheckpointId, JobId, SubtaskId};

use super::secs;
use crate::events::RecordedEvent;
use crate::history::{RunHistory, Verdict};
use crate::node::NodeName;

const NAME: &str = "checkpoints";

/// One job's checkpoints as its JobManager's events tell them so far.
#[derive(Default)]
struct JobCheckpoints {
    /// The latest completed checkpoint: the one a restore must use.
    latest: Option<CheckpointId>,
    /// Triggered and neither completed nor aborted yet.
    in_flight: BTreeSet<CheckpointId>,
    /// In flight when a failover or rebalancing began (at the time given): never to complete.
    doomed: BTreeMap<CheckpointId, Duration>,
    /// Subtasks a failover or rebalancing restarts, not yet redeployed: the checkpoint it
    /// announced for them and when.
    restarts: BTreeMap<SubtaskId, (Option<CheckpointId>, Duration)>,
}

/// What the run gave the checker to hold it to.
#[derive(Default)]
struct Tally {
    restarts: usize,
    completed: usize,
    deployments: usize,
}

/// Failovers, completions and deployments agree on which checkpoint is restored.
pub fn checkpoint_coherence(h: &RunHistory) -> Verdict {
    let mut jobs = BTreeMap::<JobId, JobCheckpoints>::new();
    let mut tally = Tally::default();
    for e in h.events.iter().filter(|e| e.node == NodeName::JobManager) {
        let Some(id) = e.event.job() else { continue };
        if matches!(e.event, ClusterEvent::JobSubmitted { .. }) {
            // A job id names a new job from its submission on (a restarted JobManager counts
            // from 1 again).
            jobs.insert(id, JobCheckpoints::default());
            continue;
        }
        let job = jobs.entry(id).or_default();
        if let Err(evidence) = job.apply(e, &mut tally) {
            return Verdict::fail(NAME, evidence.0, evidence.1);
        }
    }
    if tally.restarts == 0 {
        return Verdict::not_checked(NAME, "no failover or rebalancing restored anything");
    }
    Verdict::pass(
        NAME,
        format!(
            "{} failover(s) or move(s), {} completion(s), {} deployment(s): each restore the latest completed checkpoint, nothing in flight at a restart completed",
            tally.restarts, tally.completed, tally.deployments
        ),
    )
}

/// A failure's summary and evidence.
type Failure = (&'static str, String);

impl JobCheckpoints {
    fn apply(&mut self, e: &RecordedEvent, tally: &mut Tally) -> Result<(), Failure> {
        match &e.event {
            ClusterEvent::CheckpointTriggered { checkpoint, .. } => {
                self.in_flight.insert(*checkpoint);
            }
            ClusterEvent::CheckpointAborted { checkpoint, .. } => {
                self.in_flight.remove(checkpoint);
                self.doomed.remove(checkpoint);
            }
            ClusterEvent::CheckpointCompleted { checkpoint, .. } => {
                tally.completed += 1;
                self.completed(*checkpoint, e.at)?;
            }
            ClusterEvent::FailoverStarted {
                restart,
                checkpoint,
                ..
            } => {
                tally.restarts += 1;
                self.announced(*checkpoint, e.at)?;
                self.restart(restart.iter().copied(), *checkpoint, e.at);
            }
            ClusterEvent::Rebalanced { moves, .. } => {
                tally.restarts += 1;
                let moved = moves.iter().flat_map(|m| m.subtasks.iter().copied());
                self.restart(moved, self.latest, e.at);
            }
            ClusterEvent::TasksDeployed {
                tasks, checkpoint, ..
            } => {
                tally.deployments += 1;
                let subtasks = tasks.iter().map(|t| t.attempt.subtask_id());
                self.deployed(subtasks, *checkpoint, e.at)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn completed(&mut self, checkpoint: CheckpointId, at: Duration) -> Result<(), Failure> {
        if let Some(since) = self.doomed.get(&checkpoint) {
            return Err((
                "a checkpoint completed after a restart began",
                format!(
                    "{checkpoint} was in flight when a failover or rebalancing began at {} and completed at {} instead of being aborted with the restart (which cancelled the tasks it waited for)",
                    secs(*since),
                    secs(at)
                ),
            ));
        }
        if let Some(latest) = self.latest.filter(|l| *l >= checkpoint) {
            return Err((
                "checkpoints completed out of order",
                format!("{checkpoint} completed at {} after {latest}", secs(at)),
            ));
        }
        self.in_flight.remove(&checkpoint);
        self.latest = Some(checkpoint);
        Ok(())
    }

    /// A failover announced `checkpoint`: it must be the latest completed.
    fn announced(&mut self, checkpoint: Option<CheckpointId>, at: Duration) -> Result<(), Failure> {
        if checkpoint != self.latest {
            return Err((
                "a failover announced a checkpoint other than the latest completed",
                format!(
                    "the failover at {} announced {}, the latest completed checkpoint is {}",
                    secs(at),
                    name(checkpoint),
                    name(self.latest)
                ),
            ));
        }
        Ok(())
    }

    /// A failover or rebalancing restarts `subtasks` from `checkpoint`: what is in flight
    /// must not complete any more.
    fn restart(
        &mut self,
        subtasks: impl Iterator<Item = SubtaskId>,
        checkpoint: Option<CheckpointId>,
        at: Duration,
    ) {
        for c in std::mem::take(&mut self.in_flight) {
            self.doomed.insert(c, at);
        }
        // A later failover before the redeployment announces for the subtasks it names.
        self.restarts
            .extend(subtasks.map(|s| (s, (checkpoint, at))));
    }

    /// A deployment restores `checkpoint`: the latest completed, and for restarted subtasks
    /// the one their failover announced.
    fn deployed(
        &mut self,
        subtasks: impl Iterator<Item = SubtaskId>,
        checkpoint: Option<CheckpointId>,
        at: Duration,
    ) -> Result<(), Failure> {
        if checkpoint != self.latest {
            return Err((
                "a deployment restores a checkpoint other than the latest completed",
                format!(
                    "the deployment at {} restores {}, the latest completed checkpoint is {}",
                    secs(at),
                    name(checkpoint),
                    name(self.latest)
                ),
            ));
        }
        for s in subtasks {
            let Some((announced, since)) = self.restarts.remove(&s) else {
                continue;
            };
            if announced != checkpoint {
                return Err((
                    "a redeployment restores another checkpoint than its failover announced",
                    format!(
                        "{s:?}: the restart at {} announced {}, its redeployment at {} restores {}",
                        secs(since),
                        name(announced),
                        secs(at),
                        name(checkpoint)
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn name(checkpoint: Option<CheckpointId>) -> String {
    checkpoint.map_or_else(|| "none (from the start)".into(), |c| c.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::jm_event as at;
    use rill::events::{AbortReason, Deployment, FailoverCause, LossCause};
    use rill::ids::VertexId;

    const JOB: JobId = JobId(1);

    fn triggered(ms: u64, c: u64) -> RecordedEvent {
        let checkpoint = CheckpointId(c);
        at(
            ms,
            ClusterEvent::CheckpointTriggered {
                job: JOB,
                checkpoint,
            },
        )
    }

    fn completed(ms: u64, c: u64) -> RecordedEvent {
        let checkpoint = CheckpointId(c);
        at(
            ms,
            ClusterEvent::CheckpointCompleted {
                job: JOB,
                checkpoint,
                bytes: 10,
            },
        )
    }

    fn aborted(ms: u64, c: u64) -> RecordedEvent {
        let (checkpoint, reason) = (CheckpointId(c), AbortReason::Failover);
        at(
            ms,
            ClusterEvent::CheckpointAborted {
                job: JOB,
                checkpoint,
                reason,
            },
        )
    }

    fn failover(ms: u64, c: Option<u64>) -> RecordedEvent {
        let event = ClusterEvent::FailoverStarted {
            job: JOB,
            strategy: rill::config::FailoverStrategy::Full,
            cause: FailoverCause::TaskManagerLost {
                taskmanager: "tm-2".into(),
                cause: LossCause::ConnectionClosed("closed".into()),
            },
            restart: vec![SubtaskId::new(VertexId(0), 0)],
            of: 1,
            backoff: Duration::from_secs(1),
            checkpoint: c.map(CheckpointId),
        };
        at(ms, event)
    }

    fn deployed(ms: u64, c: Option<u64>, attempt: u32) -> RecordedEvent {
        let task = Deployment {
            attempt: SubtaskId::new(VertexId(0), 0).attempt(attempt),
            taskmanager: "tm-1".into(),
            slot: Some(0),
        };
        let event = ClusterEvent::TasksDeployed {
            job: JOB,
            tasks: vec![task],
            checkpoint: c.map(CheckpointId),
        };
        at(ms, event)
    }

    fn run(events: Vec<RecordedEvent>) -> RunHistory {
        RunHistory {
            events,
            ..Default::default()
        }
    }

    /// Checkpoint 1 completed, checkpoint 2 in flight when tm-2 is lost at 2.5 s.
    fn before_the_failover() -> Vec<RecordedEvent> {
        vec![
            deployed(0, None, 0),
            triggered(1_000, 1),
            completed(1_100, 1),
            triggered(2_000, 2),
        ]
    }

    #[test]
    fn a_failover_that_aborts_what_is_in_flight_and_restores_the_latest_passes() {
        let mut events = before_the_failover();
        events.extend([aborted(2_500, 2), failover(2_500, Some(1))]);
        events.push(deployed(3_500, Some(1), 1));
        let v = checkpoint_coherence(&run(events));
        assert!(v.passed && v.checked, "{v:?}");
    }

    #[test]
    fn a_checkpoint_in_flight_at_a_failover_must_not_complete_after_it() {
        // The planted bug: the persisting checkpoint 2 is spared and completes during the
        // restart, so the redeployment restores it, not the announced 1.
        let mut events = before_the_failover();
        events.extend([failover(2_500, Some(1)), completed(2_600, 2)]);
        let v = checkpoint_coherence(&run(events));
        assert!(
            !v.passed && v.summary == "a checkpoint completed after a restart began",
            "{v:?}"
        );
        assert!(v.evidence.unwrap().contains("chk-2 was in flight"));
    }

    #[test]
    fn a_failover_must_announce_the_latest_completed_checkpoint() {
        let mut events = before_the_failover();
        events.extend([aborted(2_500, 2), failover(2_500, None)]);
        let v = checkpoint_coherence(&run(events));
        assert!(!v.passed && v.summary.contains("announced"), "{v:?}");
        let v = checkpoint_coherence(&run(vec![deployed(0, None, 0), failover(500, None)]));
        assert!(
            v.passed && v.checked,
            "none completed, none announced: {v:?}"
        );
    }

    #[test]
    fn a_redeployment_restores_what_its_failover_announced_and_the_latest() {
        let mut events = before_the_failover();
        events.extend([aborted(2_500, 2), failover(2_500, Some(1))]);
        let mut stale = events.clone();
        stale.push(deployed(3_500, None, 1));
        let v = checkpoint_coherence(&run(stale));
        assert!(!v.passed && v.summary.contains("latest completed"), "{v:?}");
        // Announced 1, but 2 completed meanwhile (through no restart) and is restored.
        let mut events = vec![
            deployed(0, None, 0),
            triggered(1_000, 1),
            completed(1_100, 1),
        ];
        events.extend([failover(1_500, Some(1)), completed(1_600, 2)]);
        events.push(deployed(2_500, Some(2), 1));
        let v = checkpoint_coherence(&run(events));
        assert!(
            !v.passed && v.summary.contains("than its failover announced"),
            "{v:?}"
        );
    }

    #[test]
    fn checkpoints_complete_in_order() {
        let events = vec![
            completed(1_000, 2),
            completed(1_100, 1),
            failover(2_000, Some(1)),
        ];
        let v = checkpoint_coherence(&run(events));
        assert!(!v.passed && v.summary.contains("out of order"), "{v:?}");
    }

    #[test]
    fn without_a_restart_nothing_is_checked() {
        let events = vec![
            deployed(0, None, 0),
            triggered(1_000, 1),
            completed(1_100, 1),
        ];
        let v = checkpoint_coherence(&run(events));
        assert!(v.passed && !v.checked, "{v:?}");
    }
}
