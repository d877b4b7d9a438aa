//! Checkers over a run's history. Each returns a verdict with its evidence: the first offending
//! record or interval, with virtual time.
//!
//! This module holds `check_all`, which runs the checkers a scenario's expectations ask for,
//! and what several checkers share: the fault margins, `disruptive_faults` and the
//! `disruptions` windows that excuse lost or replayed records. The checkers live in
//! submodules by concern and are re-exported here.

use std::time::Duration;

use rill::api::OutputChecks;
use rill::events::ClusterEvent;

use crate::history::{AppliedFault, RunEnd, RunHistory, Verdict};
use crate::node::NodeName;
use crate::scenario::{DeliveryMode, Scenario};

mod accounting;
mod attempts;
mod backoff;
mod balance;
pub mod bounds;
mod checkpoints;
mod claims;
mod delivery;
mod jobmanager;
mod memory;
mod outcome;
mod recovery;
mod reference;
mod snapshots;
mod stall;
mod state;
mod timeliness;
mod transactions;

pub use accounting::{drop_accounting, Reader};
pub use attempts::at_most_once_per_attempt;
pub use backoff::restart_backoff;
pub use balance::{balance, balance_at_deployments, memory_balance, task_range};
pub use bounds::Bounds;
pub use checkpoints::checkpoint_coherence;
pub use claims::restarts;
pub use delivery::{delivery, ExpectedInput};
pub use jobmanager::jobmanager_loss;
pub use memory::memory_accounting;
pub use outcome::{fencing, job_outcome, liveness, waiting_for};
pub use recovery::recovery_time;
pub use reference::matches_reference;
pub use snapshots::snapshot_contents;
pub use stall::zero_stall;
pub use state::keyed_state;
pub use timeliness::detection;
pub use transactions::transactions;

/// How long a record may be in flight between source and sink: a missing record is attributed
/// to a fault active within this margin of when it would have been output.
const IN_FLIGHT: Duration = Duration::from_secs(1);

/// How long after a fault's window a replay may still re-emit records: a restarted source
/// replays at most one checkpoint interval (1 s in the scenarios), paced, after the restart
/// (which may be the rebalancing move when a crashed TaskManager rejoins).
const REPLAY: Duration = Duration::from_secs(2);
use bounds::STALE_CONNECTION;
/// The longest a fault's window extends to the output resuming after it (see `disruptions`).
const RESUME_WITHIN: Duration = Duration::from_secs(10);

/// What the delivery checker compares a run's output with.
pub enum DeliveryBasis<'a> {
    /// The input, record by record: the job's outputs name the input record each came from,
    /// one per input ([`rill::api::CheckableOutput::ONE_PER_INPUT`]).
    Input(&'a ExpectedInput),
    /// The output of a fault-free run of the same scenario and seed (exactly-once for any
    /// job), with what the job's output type says of itself.
    Reference(&'a RunHistory, OutputChecks),
    /// Nothing: delivery is unchecked, or the mode asks what the job's output cannot say.
    None,
}

/// Runs every checker on a run of `scenario`: those its expectations ask for with their
/// bounds, and the others with the bounds derived from it ([`Bounds`]); a checker with
/// nothing to hold the run to says it did not check.
pub fn check_all(
    history: &RunHistory,
    scenario: &Scenario,
    bounds: &Bounds,
    basis: DeliveryBasis<'_>,
) -> Vec<Verdict> {
    let expect = &scenario.expect;
    let mut verdicts = vec![job_outcome(history, expect.job), fencing(history)];
    // Only outputs that are one per input record, naming it, can say an attempt repeated one.
    let once = match &basis {
        DeliveryBasis::Input(input) => at_most_once_per_attempt(history, input),
        _ => Verdict::not_checked(
            "attempt-once",
            "the job's outputs do not name one input record each (or delivery is unchecked)",
        ),
    };
    match (expect.delivery, basis) {
        (DeliveryMode::Unchecked, _) => verdicts.push(Verdict::not_checked(
            "delivery",
            "the scenario says delivery = \"unchecked\"",
        )),
        (mode, DeliveryBasis::Input(input)) => {
            verdicts.push(delivery(history, mode, input));
            let buffer_timeout = scenario.config.buffer_timeout();
            verdicts.push(drop_accounting(
                history,
                input,
                buffer_timeout,
                // A given stall bound may be tighter than a lost consumer's detection,
                // which holds its producers up while the rest of the output flows.
                bounds.stall.value.max(bounds.timing.detection),
            ));
        }
        (DeliveryMode::ExactlyOnce, DeliveryBasis::Reference(reference, checks)) => {
            verdicts.push(matches_reference(history, reference, &checks))
        }
        (mode, _) => verdicts.push(Verdict::fail(
            "delivery",
            "not checkable for this job",
            format!(
                "delivery = \"{}\" tells lost and replayed records apart by the input record each output names: it needs a job that reads its input from logs the harness serves (rill::jobs::io::log_source) and an output type that is one output per input record, naming it (CheckableOutput with ONE_PER_INPUT = true); this job's input or output does not say that, so use delivery = \"exactly-once\" (compared with a fault-free reference run of the same seed) or \"unchecked\"",
                mode.name()
            ),
        )),
    }
    verdicts.push(keyed_state(history));
    let (stall, recovery) = (&bounds.stall, &bounds.recovery);
    let lost = history.job_status == RunEnd::Lost;
    // A job lost with its JobManager is over for the client at once, while the run goes on
    // to watch the TaskManagers: its stall and recovery are not the job's.
    let v = match lost {
        true => Verdict::not_checked("zero-stall", "the job was lost with its JobManager"),
        false => zero_stall(
            history,
            Some(stall.value),
            bounds::transactional_sink(scenario),
        ),
    };
    verdicts.push(with_bound(v, &secs(stall.value), &stall.source));
    if disruptive_faults(history).next().is_some() {
        let v = match history.job_status {
            RunEnd::Lost => {
                Verdict::not_checked("recovery", "the job was lost with its JobManager")
            }
            // A job that failed does not recover: its outcome is the job checker's.
            RunEnd::Ended(rill::graph::JobStatus::Failed) => {
                Verdict::not_checked("recovery", "the job failed (nothing recovers)")
            }
            _ => recovery_time(history, Some(recovery.value)),
        };
        verdicts.push(with_bound(v, &secs(recovery.value), &recovery.source));
    }
    verdicts.push(match &bounds.task_range {
        Some(b) if b.source == "given" => balance(history, Some(b.value)),
        Some(b) => {
            let v = balance_at_deployments(history, b.value);
            with_bound(v, &b.value.to_string(), &b.source)
        }
        None => balance(history, None),
    });
    verdicts.push(detection(
        history,
        &bounds.timing,
        scenario.config.heartbeat_timeout(),
    ));
    verdicts.push(jobmanager_loss(
        history,
        &bounds.timing,
        scenario.config.heartbeat_timeout(),
    ));
    verdicts.push(restarts(history));
    verdicts.push(restart_backoff(history, &scenario.config));
    verdicts.push(checkpoint_coherence(history));
    verdicts.push(snapshot_contents(history));
    verdicts.push(once);
    verdicts.push(transactions(history));
    verdicts.push(memory_accounting(
        history,
        scenario.config.task_overhead_bytes(),
    ));
    if let Some(bound) = expect.max_memory_skew_percent {
        verdicts.push(memory_balance(history, bound));
    }
    match &bounds.drain {
        Some(b) => {
            let v = liveness(history, b.value);
            verdicts.push(with_bound(v, &secs(b.value), &b.source));
        }
        None if expect.job == Some(crate::scenario::JobOutcome::Finished)
            && disruptive_faults(history).next().is_some() =>
        {
            verdicts.push(Verdict::not_checked(
                "liveness",
                "no drain_within given, and the job's input time (records / rate) is unknown",
            ))
        }
        None => {}
    }
    verdicts
}

/// Says in a checked verdict's summary which bound it was held to, if that was derived.
fn with_bound(mut v: Verdict, value: &str, source: &str) -> Verdict {
    if v.checked && source != "given" {
        v.summary.push_str(&format!(" [bound {value}, {source}]"));
    }
    v
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// Faults that took effect and can take records or tasks away (not latency, not skew).
pub fn disruptive_faults(h: &RunHistory) -> impl Iterator<Item = &AppliedFault> {
    h.faults
        .iter()
        .filter(|f| f.took_effect() && f.fault.kind.spec().disruptive)
}

/// When something disrupted the job: the windows of faults that took effect (until output
/// resumed after them), and the recoveries they set off, from the JobManager's events: from
/// a failover (which may come well after its fault: a heartbeat timeout, a connection that
/// only breaks later) or a rebalancing move to the redeployment of the restarted tasks
/// (`TasksDeployed`), and then the replay: paced
/// sources re-read everything since the checkpoint they restored at their normal rate, so
/// the replay lasts as long as that checkpoint is old (at least `REPLAY`), and starts late if
/// a fault was still active at the redeployment. Recoveries before the first fault are not
/// counted: nothing should have set them off.
fn disruptions(h: &RunHistory) -> Vec<(Duration, Duration)> {
    // A fault that stopped the output (a sink store or log cut off) lasts until output
    // resumes, within `RESUME_WITHIN`: the burst that follows carries what queued up behind
    // it, so a record lost earlier leaves its gap there. (Bounded, so a job whose output
    // comes in rare bursts does not excuse everything up to its next one.)
    let resumed = |end: Duration| {
        let next = h.outputs.partition_point(|o| o.at < end);
        h.outputs
            .get(next)
            .map_or(end, |o| o.at.clamp(end, end + RESUME_WITHIN))
    };
    let mut windows: Vec<(Duration, Duration)> = disruptive_faults(h)
        .filter_map(|f| f.window(h.end))
        .map(|(b, e)| (b, resumed(e)))
        .collect();
    let Some(first_fault) = windows.iter().map(|(b, _)| *b).min() else {
        return windows;
    };
    let faults = windows.clone();
    let mut open = None::<Duration>;
    let mut triggered = std::collections::BTreeMap::new();
    for e in h.events.iter().filter(|e| e.node == NodeName::JobManager) {
        match &e.event {
            ClusterEvent::CheckpointTriggered { checkpoint, .. } => {
                triggered.insert(*checkpoint, e.at);
            }
            _ if e.at < first_fault => {}
            ClusterEvent::FailoverStarted { .. } | ClusterEvent::Rebalanced { .. } => {
                open.get_or_insert(e.at);
            }
            ClusterEvent::TasksDeployed { checkpoint, .. } => {
                if let Some(from) = open.take() {
                    // The restored sources re-read from where the checkpoint's barrier left
                    // them, at the pace they first read; a slowed pipeline (latency, a
                    // buggified delay) stretches that by up to half again.
                    let since = checkpoint
                        .and_then(|c| triggered.get(&c).copied())
                        .unwrap_or_default();
                    let replay = (e.at.saturating_sub(since) * 3 / 2).max(REPLAY);
                    // Tasks redeployed while a fault still cut nodes off may replay only once
                    // it healed and their dead connections timed out.
                    let start = faults
                        .iter()
                        .filter(|(b, end)| *b <= e.at && *end >= e.at)
                        .map(|(_, end)| *end + STALE_CONNECTION)
                        .fold(e.at, Duration::max);
                    windows.push((from, start + replay));
                }
            }
            _ => {}
        }
    }
    if let Some(from) = open {
        windows.push((from, h.end));
    }
    windows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{Fault, FaultKind};
    use crate::history::{OutputRecord, RunEnd};
    use rill::api::Origin;
    use rill::events::{Deployment, FailoverCause, LossCause};
    use rill::graph::{CheckpointId, JobId, JobStatus, SubtaskId, VertexId};
    use std::num::NonZeroU64;

    pub(super) fn out(ms: u64, offset: u64, attempt: u32) -> OutputRecord {
        OutputRecord::new(
            Duration::from_millis(ms),
            1,
            0,
            attempt,
            Some(Origin {
                partition: 0,
                offset,
            }),
            Some((offset % 2, NonZeroU64::new(offset / 2 + 1).unwrap())),
        )
    }

    pub(super) fn input(n: u64) -> ExpectedInput {
        let mut input = ExpectedInput::default();
        for o in 0..n {
            let origin = Origin {
                partition: 0,
                offset: o,
            };
            input.push(origin, o % 2);
        }
        input
    }

    pub(super) fn history(outputs: Vec<OutputRecord>) -> RunHistory {
        RunHistory {
            outputs,
            end: Duration::from_secs(10),
            job_status: RunEnd::Ended(JobStatus::Finished),
            taskmanagers: 2,
            ..Default::default()
        }
    }

    /// The JobManager's `TasksDeployed` of `tasks` (attempt, TaskManager, slot) restoring
    /// `checkpoint`: the fixture the checkers' tests deploy with.
    pub(super) fn deployed<'a>(
        tasks: impl IntoIterator<Item = (rill::graph::ExecutionAttemptId, &'a str, u32)>,
        checkpoint: Option<CheckpointId>,
    ) -> ClusterEvent {
        let tasks = tasks
            .into_iter()
            .map(|(attempt, tm, slot)| Deployment {
                attempt,
                taskmanager: tm.to_string(),
                slot: Some(slot),
            })
            .collect();
        ClusterEvent::TasksDeployed {
            job: JobId(1),
            tasks,
            checkpoint,
        }
    }

    /// A JobManager event at `ms`: the checkers' tests build their histories from these.
    pub(super) fn jm_event(ms: u64, event: ClusterEvent) -> crate::events::RecordedEvent {
        crate::events::RecordedEvent {
            at: Duration::from_millis(ms),
            node: NodeName::JobManager,
            event,
        }
    }

    fn completed(checkpoint: u64) -> ClusterEvent {
        ClusterEvent::CheckpointCompleted {
            job: JobId(1),
            checkpoint: CheckpointId(checkpoint),
            bytes: 100,
        }
    }

    fn failover_of_two() -> ClusterEvent {
        ClusterEvent::FailoverStarted {
            job: JobId(1),
            strategy: rill::config::FailoverStrategy::TaskManager,
            cause: FailoverCause::TaskManagerLost {
                taskmanager: "tm-2".into(),
                cause: LossCause::ConnectionClosed("connection closed".into()),
            },
            restart: vec![
                SubtaskId::new(VertexId(0), 1),
                SubtaskId::new(VertexId(1), 1),
            ],
            of: 8,
            backoff: Duration::from_secs(1),
            checkpoint: Some(CheckpointId(1)),
        }
    }

    fn deployed_two() -> ClusterEvent {
        let task = |v| (SubtaskId::new(VertexId(v), 1).attempt(1), "tm-1", 1);
        deployed([task(0), task(1)], Some(CheckpointId(1)))
    }

    fn initial_deployment() -> ClusterEvent {
        let task = |v, s, tm| (SubtaskId::new(VertexId(v), s).attempt(0), tm, 0);
        let tasks = [task(0, 0, "tm-1"), task(1, 0, "tm-1")];
        deployed(
            tasks
                .into_iter()
                .chain([task(0, 1, "tm-2"), task(1, 1, "tm-2")]),
            None,
        )
    }

    fn lost(ms: u64) -> crate::events::RecordedEvent {
        jm_event(
            ms,
            ClusterEvent::TaskManagerLost {
                taskmanager: "tm-2".into(),
                instance: rill::ids::TaskManagerId(2),
                cause: LossCause::HeartbeatTimeout(Duration::from_secs(5)),
            },
        )
    }

    fn timing() -> bounds::Timing {
        let config = rill::config::Configuration::new()
            .with("heartbeat.interval", "1s")
            .and_then(|c| c.with("heartbeat.timeout", "5s"))
            .expect("valid");
        bounds::Timing::of(&config)
    }

    #[test]
    fn a_loss_must_be_detected_within_the_timeout_and_an_interval() {
        let mut h = history(vec![out(0, 0, 0)]);
        let registered = ClusterEvent::TaskManagerRegistered {
            taskmanager: "tm-2".into(),
            instance: rill::ids::TaskManagerId(2),
            slots: 2,
        };
        h.events.push(jm_event(0, registered));
        h.faults.push(crash_at(2));
        let timeout = Duration::from_secs(5);
        let v = detection(&h, &timing(), timeout);
        assert!(
            !v.passed && v.summary.contains("never declared lost"),
            "{v:?}"
        );
        h.events.push(lost(9_500));
        let v = detection(&h, &timing(), timeout);
        assert!(!v.passed && v.evidence.unwrap().contains("after the bound 9.000s"));
        h.events[1] = lost(2_100);
        assert!(detection(&h, &timing(), timeout).passed);
        // A second crash of a TaskManager still down from the first: nothing more to detect.
        h.faults.push(crash_at(4));
        assert!(detection(&h, &timing(), timeout).passed);
        let quiet = history(vec![out(0, 0, 0)]);
        let v = detection(&quiet, &timing(), timeout);
        assert!(
            v.passed && !v.checked,
            "nothing to detect is not a pass: {v:?}"
        );
    }

    #[test]
    fn a_taskmanager_the_restarted_jobmanager_never_knew_is_not_to_be_declared_lost() {
        // tm-2 registered, then the JobManager crashed (1 s, back at once) and tm-2 gave up
        // on it; tm-2 crashes at 2 s, before it registered again: the JobManager running
        // then never knew it (a fuzz finding).
        let mut h = history(vec![out(0, 0, 0)]);
        let registered = ClusterEvent::TaskManagerRegistered {
            taskmanager: "tm-2".into(),
            instance: rill::ids::TaskManagerId(2),
            slots: 2,
        };
        h.events.push(jm_event(0, registered));
        let mut jm = crash_at(1);
        jm.fault.kind = FaultKind::Crash {
            target: NodeName::JobManager,
            restart_after: Some(Duration::from_millis(10)),
        };
        jm.ended_at = Some(Duration::from_millis(1_010));
        h.faults.push(jm);
        h.faults.push(crash_at(2));
        let timeout = Duration::from_secs(5);
        let v = detection(&h, &timing(), timeout);
        assert!(v.passed && !v.checked, "{v:?}");
        // Registered again before its crash, it must be declared lost.
        let again = ClusterEvent::TaskManagerRegistered {
            taskmanager: "tm-2".into(),
            instance: rill::ids::TaskManagerId(3),
            slots: 2,
        };
        h.events.push(jm_event(1_500, again));
        let v = detection(&h, &timing(), timeout);
        assert!(
            !v.passed && v.summary.contains("never declared lost"),
            "{v:?}"
        );
    }

    #[test]
    fn every_announced_restart_is_redeployed_and_nothing_else() {
        let mut h = history(vec![out(0, 0, 0)]);
        h.events = vec![
            jm_event(0, initial_deployment()),
            jm_event(2_000, failover_of_two()),
        ];
        let v = restarts(&h);
        assert!(!v.passed && v.summary.contains("never redeployed"), "{v:?}");
        h.events.push(jm_event(3_000, deployed_two()));
        assert!(restarts(&h).passed);
        // A redeployment nobody announced.
        h.events.push(jm_event(4_000, deployed_two()));
        let v = restarts(&h);
        assert!(
            !v.passed && v.summary.contains("no failover announced"),
            "{v:?}"
        );
        let v = restarts(&history(vec![]));
        assert!(!v.checked, "{v:?}");
    }

    pub(super) fn crash_at(secs: u64) -> AppliedFault {
        let fault = Fault {
            at: Duration::from_secs(secs),
            kind: FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: None,
            },
            anchor: None,
        };
        AppliedFault {
            began_at: Some(Duration::from_secs(secs)),
            effective: true,
            ..AppliedFault::planned(fault)
        }
    }

    #[test]
    fn a_replay_is_accounted_for_by_the_failover_events() {
        // A crash at 1 s whose TaskManager restarts at 1.2 s; the JobManager notices only at
        // 3 s (a heartbeat timeout) and redeploys at 4 s from the checkpoint of 0.5 s; the
        // replay's duplicate comes at 6 s, long after the fault's own window.
        let mut h = history((0..100).map(|o| out(o * 100, o, 0)).collect());
        h.outputs.push(out(6_000, 20, 1));
        h.outputs.sort_by_key(|o| o.at);
        h.faults.push(crash_at(1));
        h.faults[0].ended_at = Some(Duration::from_millis(1_200));
        let v = delivery(&h, DeliveryMode::FaultAccounted, &input(100));
        assert!(!v.passed && v.summary == "unaccounted duplicate", "{v:?}");
        h.events = vec![
            jm_event(500, completed(1)),
            jm_event(3_000, failover_of_two()),
            jm_event(4_000, deployed_two()),
        ];
        let v = delivery(&h, DeliveryMode::FaultAccounted, &input(100));
        assert!(v.passed, "{v:?}");
        // Events from other nodes do not stand for the JobManager's decisions.
        for e in &mut h.events {
            e.node = NodeName::TaskManager(1);
        }
        assert!(!delivery(&h, DeliveryMode::FaultAccounted, &input(100)).passed);
    }

    #[test]
    fn a_replay_redeployed_behind_a_partition_may_start_once_it_healed() {
        // A crash at 1 s fails over; the tasks are redeployed at 2 s onto a TaskManager cut off
        // from 1.5 s to 5 s; the replay's duplicate comes at 11 s.
        // Output runs on every 100 ms throughout (other TaskManagers).
        let mut h = history((0..120).map(|o| out(o * 100, o, 0)).collect());
        h.outputs.push(out(11_050, 20, 1));
        h.outputs.sort_by_key(|o| o.at);
        h.end = Duration::from_secs(12);
        h.faults.push(crash_at(1));
        h.faults[0].ended_at = Some(Duration::from_millis(1_200)); // restarted at once
        h.events = vec![
            jm_event(900, completed(1)),
            jm_event(1_000, failover_of_two()),
            jm_event(2_000, deployed_two()),
        ];
        let v = delivery(&h, DeliveryMode::FaultAccounted, &input(120));
        assert!(!v.passed, "{v:?}");
        let cut = Fault {
            at: Duration::from_millis(1_500),
            kind: FaultKind::Partition {
                target: "tm-2".into(),
                direction: crate::fault::Direction::Both,
                heal_after: Some(Duration::from_millis(3_500)),
            },
            anchor: None,
        };
        h.faults.push(AppliedFault {
            began_at: Some(cut.at),
            ended_at: Some(Duration::from_secs(5)),
            effective: true,
            ..AppliedFault::planned(cut)
        });
        let v = delivery(&h, DeliveryMode::FaultAccounted, &input(120));
        assert!(v.passed, "{v:?}");
    }

    #[test]
    fn a_fault_that_stopped_the_output_lasts_until_output_resumes() {
        // Output every 100 ms until 1 s; a partition of the sink store from 1 s to 3 s; output
        // resumes only at 5 s, and offset 20, in that first burst, is missing.
        let outputs = (0..40u64)
            .filter(|o| *o != 20)
            .map(|o| out(if o < 10 { o * 100 } else { 5_000 + o * 10 }, o, 0))
            .collect();
        let mut h = history(outputs);
        let cut = Fault {
            at: Duration::from_secs(1),
            kind: FaultKind::Partition {
                target: "sink-store".into(),
                direction: crate::fault::Direction::Both,
                heal_after: Some(Duration::from_secs(2)),
            },
            anchor: None,
        };
        h.faults.push(AppliedFault {
            began_at: Some(Duration::from_secs(1)),
            ended_at: Some(Duration::from_secs(3)),
            effective: true,
            ..AppliedFault::planned(cut)
        });
        let v = delivery(&h, DeliveryMode::LossyAccounted, &input(40));
        assert!(v.passed, "{v:?}");
    }

    #[test]
    fn faults_that_never_began_account_for_nothing() {
        let h = history((0..3).map(|o| out(o * 10, o, 0)).collect());
        let mut planned = h.clone();
        let fault = Fault {
            at: Duration::from_secs(50),
            kind: FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: None,
            },
            anchor: None,
        };
        planned.faults.push(AppliedFault::planned(fault));
        assert!(!delivery(&planned, DeliveryMode::LossyAccounted, &input(4)).passed);
    }
}
