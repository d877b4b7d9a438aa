//! The fault timeline both runners drive, the simulated one (`runner.rs`) and the one of real
//! processes (`real/driver.rs`): when each fault of the plan begins and ends, which anchored
//! faults still wait for their event, why a fault that never began did not, and how the job
//! ended. The runners differ only in how they apply a fault.

use std::fmt::Display;
use std::time::Duration;

use rill::events::ClusterEvent;
use rill::jobmanager::client::SubmitError;
use rill::rpc::JobStatusReport;

use crate::events::RecordedEvent;
use crate::fault::{format_duration, Anchor, Fault};
use crate::history::{AppliedFault, RunEnd};

/// A step of the fault timeline. Ends sort before begins, so a fault that starts the instant
/// another ends is not undone by that end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// The fault at this index of the plan ends (heals, restarts, resumes).
    End(usize),
    /// The fault at this index of the plan begins.
    Begin(usize),
}

/// Pending steps by time, and the anchored faults whose event has not come yet.
#[derive(Debug, Default)]
pub struct Timeline {
    steps: Vec<(Duration, Step)>,
    /// Anchored faults whose anchor has not come yet, in plan order.
    waiting: Vec<usize>,
    /// Whether a failover or rebalancing came: later deployments are restores.
    restoring: bool,
}

impl Timeline {
    /// The plan's faults at a fixed time on the timeline; anchored ones wait for their event.
    pub fn new(faults: &[Fault]) -> Self {
        let mut steps: Vec<(Duration, Step)> = faults
            .iter()
            .enumerate()
            .filter(|(_, f)| f.anchor.is_none())
            .map(|(i, f)| (f.at, Step::Begin(i)))
            .collect();
        steps.sort();
        let waiting = (0..faults.len())
            .filter(|&i| faults[i].anchor.is_some())
            .collect();
        Timeline {
            steps,
            waiting,
            restoring: false,
        }
    }

    /// Puts `step` on the timeline at `at`, after what is already there at that time.
    pub fn schedule(&mut self, at: Duration, step: Step) {
        let pos = self.steps.partition_point(|(t, s)| (*t, *s) <= (at, step));
        self.steps.insert(pos, (at, step));
    }

    /// When the next step is due, if any is pending.
    pub fn next_at(&self) -> Option<Duration> {
        self.steps.first().map(|(t, _)| *t)
    }

    /// The next step due by `now`, taken off the timeline.
    pub fn pop_due(&mut self, now: Duration) -> Option<Step> {
        let due = self.steps.first().is_some_and(|(t, _)| *t <= now);
        due.then(|| self.steps.remove(0).1)
    }

    /// Whether some anchored fault still waits for its event.
    pub fn waits_for_anchors(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Schedules every anchored fault of `faults` whose event `e` is, at the event's time plus
    /// the anchor's offset (not before `now`); returns them with that time.
    pub fn on_event(
        &mut self,
        faults: &[AppliedFault],
        e: &RecordedEvent,
        now: Duration,
    ) -> Vec<(usize, Duration)> {
        let mut came = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            let fault = &faults[self.waiting[i]].fault;
            let Some(anchor) = fault
                .anchor
                .filter(|a| a.matches(fault.at, &e.event, e.at, self.restoring))
            else {
                i += 1;
                continue;
            };
            let index = self.waiting.remove(i);
            let at = (e.at + anchor.offset).max(now);
            self.schedule(at, Step::Begin(index));
            came.push((index, at));
        }
        if matches!(
            e.event,
            ClusterEvent::FailoverStarted { .. } | ClusterEvent::Rebalanced { .. }
        ) {
            self.restoring = true;
        }
        came
    }

    /// Says why each fault that never began did not, unless it says so already: the run
    /// ended before it was due, or its anchor never came (with what the run recorded of the
    /// checkpoint the anchor names).
    pub fn explain_never_begun(
        &self,
        faults: &mut [AppliedFault],
        end: Duration,
        events: &[RecordedEvent],
    ) {
        for (i, f) in faults.iter_mut().enumerate() {
            if f.began_at.is_some() || f.not_applied.is_some() {
                continue;
            }
            let why = match f.fault.anchor {
                Some(anchor) if self.waiting.contains(&i) => {
                    never_came(&anchor, f.fault.at, events, end)
                }
                _ => format!(
                    "the run ended at {} before it was due",
                    format_duration(end)
                ),
            };
            if f.fault.anchor.is_some() {
                tracing::info!(target: "rill_sim::fault", "not applied: {}: {why}", f.fault);
            }
            f.not_applied = Some(why);
        }
    }
}

/// How the job ended, and why, from what the client's task returned (`None`: it was still
/// running when the run's `run_for` was up).
pub fn job_end<E: Display>(
    run_for: Duration,
    result: Option<Result<Result<JobStatusReport, SubmitError>, E>>,
) -> (RunEnd, Option<String>) {
    match result {
        None => (
            RunEnd::CutOff,
            Some(format!("still running after {}", format_duration(run_for))),
        ),
        Some(Ok(Ok(report))) => (RunEnd::Ended(report.status), report.message),
        Some(Ok(Err(e @ SubmitError::Rejected(_)))) => (RunEnd::Rejected, Some(e.to_string())),
        Some(Ok(Err(e))) => (RunEnd::Lost, Some(e.to_string())),
        Some(Err(e)) => (RunEnd::Lost, Some(e.to_string())),
    }
}

/// Why an anchor never came: what the run recorded of the checkpoint it names, if it names
/// one, after the anchor and the run's end.
fn never_came(anchor: &Anchor, from: Duration, events: &[RecordedEvent], end: Duration) -> String {
    let mut why = format!(
        "its anchor never came before the run ended at {}",
        format_duration(end)
    );
    let Some(n) = anchor.checkpoint else {
        return why;
    };
    for e in events {
        match &e.event {
            ClusterEvent::CheckpointAborted {
                checkpoint, reason, ..
            } if checkpoint.0 == n => {
                why += &format!(
                    "; chk-{n} was aborted at {}: {reason}",
                    format_duration(e.at)
                );
            }
            ClusterEvent::CheckpointTriggered { checkpoint, .. }
                if checkpoint.0 == n && e.at < from =>
            {
                why += &format!(
                    "; chk-{n} was triggered at {}, before {}",
                    format_duration(e.at),
                    format_duration(from)
                );
            }
            _ => {}
        }
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::{AnchorEvent, FaultKind};
    use crate::node::NodeName;
    use rill::graph::{CheckpointId, JobId};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn pause(at: u64) -> Fault {
        Fault::new(
            ms(at),
            FaultKind::Pause {
                target: NodeName::TaskManager(1),
                duration: ms(100),
            },
        )
    }

    #[test]
    fn steps_come_in_time_order_ends_before_begins() {
        let faults = vec![pause(200), pause(100)];
        let mut t = Timeline::new(&faults);
        t.schedule(ms(200), Step::End(1));
        assert_eq!(t.next_at(), Some(ms(100)));
        assert_eq!(t.pop_due(ms(99)), None);
        assert_eq!(t.pop_due(ms(100)), Some(Step::Begin(1)));
        assert_eq!(t.pop_due(ms(300)), Some(Step::End(1)));
        assert_eq!(t.pop_due(ms(300)), Some(Step::Begin(0)));
        assert_eq!(t.pop_due(ms(300)), None);
    }

    #[test]
    fn an_anchored_fault_waits_for_its_event_and_says_why_if_it_never_comes() {
        let anchor = Anchor {
            event: AnchorEvent::CheckpointTriggered,
            checkpoint: Some(2),
            offset: ms(20),
        };
        let kind = pause(0).kind;
        let faults = vec![
            Fault::anchored(anchor, ms(0), kind.clone()),
            Fault::anchored(
                Anchor {
                    checkpoint: Some(9),
                    ..anchor
                },
                ms(0),
                kind,
            ),
        ];
        let mut t = Timeline::new(&faults);
        assert!(t.waits_for_anchors() && t.next_at().is_none());
        let mut applied: Vec<AppliedFault> =
            faults.into_iter().map(AppliedFault::planned).collect();
        let triggered = |n: u64, at: u64| RecordedEvent {
            at: ms(at),
            node: NodeName::JobManager,
            event: ClusterEvent::CheckpointTriggered {
                job: JobId(1),
                checkpoint: CheckpointId(n),
            },
        };
        assert!(t
            .on_event(&applied, &triggered(1, 1_000), ms(1_000))
            .is_empty());
        assert_eq!(
            t.on_event(&applied, &triggered(2, 2_000), ms(2_005)),
            vec![(0, ms(2_020))]
        );
        assert_eq!(t.pop_due(ms(2_020)), Some(Step::Begin(0)));
        applied[0].began_at = Some(ms(2_020));
        t.explain_never_begun(&mut applied, ms(5_000), &[]);
        assert_eq!(applied[0].not_applied, None);
        let why = applied[1].not_applied.clone().unwrap();
        assert!(why.contains("its anchor never came"), "{why}");
        // A reason given already (a real run that could not apply it) is kept.
        applied[1].not_applied = Some("not applied: no netem".into());
        t.explain_never_begun(&mut applied, ms(5_000), &[]);
        assert_eq!(
            applied[1].not_applied.as_deref(),
            Some("not applied: no netem")
        );
    }
}
