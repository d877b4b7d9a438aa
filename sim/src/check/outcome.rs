//! The checkers of how the job ended and who wrote last: its final status, draining after
//! the faults healed (liveness), and no output from a replaced attempt (fencing).

use std::collections::BTreeMap;
use std::time::Duration;

use rill::events::ClusterEvent;
use rill::graph::{ExecutionAttemptId, ExecutionState, JobStatus, SubtaskId};

use super::secs;
use crate::history::{RunEnd, RunHistory, Verdict};
use crate::scenario::JobOutcome;

/// The job ended as expected.
pub fn job_outcome(h: &RunHistory, expected: Option<JobOutcome>) -> Verdict {
    let want = match expected {
        None => {
            return Verdict::not_checked(
                "job",
                format!("job {}; the scenario expects no outcome", h.job_status),
            )
        }
        Some(JobOutcome::Finished) => RunEnd::Ended(JobStatus::Finished),
        Some(JobOutcome::Failed) => RunEnd::Ended(JobStatus::Failed),
        Some(JobOutcome::Lost) => RunEnd::Lost,
    };
    if h.job_status == want {
        Verdict::pass("job", format!("job {want} at {}", secs(h.end)))
    } else {
        let why = h.job_message.clone().unwrap_or_default();
        Verdict::fail(
            "job",
            format!("job {} (expected {want})", h.job_status),
            format!("at {}: {why}", secs(h.end)),
        )
    }
}

/// After the last fault ends, the job drains its input within `bound`. A fault that never ends
/// (a crash without restart) counts from when it began.
pub fn liveness(h: &RunHistory, bound: Duration) -> Verdict {
    const NAME: &str = "liveness";
    let healed = h
        .faults
        .iter()
        .filter(|f| f.took_effect())
        .filter_map(|f| f.ended_at.or(f.began_at))
        .max()
        .unwrap_or_default();
    if !h.finished() {
        let evidence = format!(
            "faults healed at {}, job not finished by {}; still waiting for {}",
            secs(healed),
            secs(h.end),
            waiting_for(h)
        );
        return Verdict::fail(NAME, format!("job {}", h.job_status), evidence);
    }
    let took = h.end.saturating_sub(healed);
    let summary = format!("drained {} after the last fault healed", secs(took));
    if took > bound {
        Verdict::fail(
            NAME,
            summary,
            format!(
                "healed at {}, finished at {} (bound {})",
                secs(healed),
                secs(h.end),
                secs(bound)
            ),
        )
    } else {
        Verdict::pass(NAME, summary)
    }
}

/// What a job that did not finish was still waiting for at the run's end, from the
/// JobManager's events: subtasks not finished (their current attempt's last state and since
/// when), slots it could not get, and faults that never ended.
pub fn waiting_for(h: &RunHistory) -> String {
    let mut current: BTreeMap<SubtaskId, (ExecutionAttemptId, ExecutionState, Duration)> =
        BTreeMap::new();
    let mut slots = None;
    for e in &h.events {
        match &e.event {
            ClusterEvent::TasksDeployed { tasks, .. } => {
                slots = None;
                for t in tasks {
                    current.insert(
                        t.attempt.subtask_id(),
                        (t.attempt, ExecutionState::Deploying, e.at),
                    );
                }
            }
            ClusterEvent::SubtaskStateChanged { attempt, state, .. } => {
                let entry = current.entry(attempt.subtask_id());
                let slot = entry.or_insert((*attempt, *state, e.at));
                if slot.0 == *attempt || attempt.attempt > slot.0.attempt {
                    *slot = (*attempt, *state, e.at);
                }
            }
            ClusterEvent::WaitingForSlots { needed, free, .. } => {
                slots = Some((e.at, *needed, *free))
            }
            _ => {}
        }
    }
    let mut parts: Vec<String> = Vec::new();
    let pending: Vec<String> = current
        .values()
        .filter(|(_, state, _)| *state != ExecutionState::Finished)
        .map(|(a, state, at)| format!("{a} {state:?} since {}", secs(*at)))
        .collect();
    if !pending.is_empty() {
        let shown = pending.len().min(6);
        let more = pending.len() - shown;
        let mut line = format!(
            "{} subtask(s): {}",
            pending.len(),
            pending[..shown].join(", ")
        );
        if more > 0 {
            line += &format!(" and {more} more");
        }
        parts.push(line);
    }
    if let Some((at, needed, free)) = slots {
        parts.push(format!("{needed} slot(s), {free} free, since {}", secs(at)));
    }
    for f in h
        .faults
        .iter()
        .filter(|f| f.took_effect() && f.ended_at.is_none())
    {
        parts.push(format!("{} to end (it never did)", f.fault));
    }
    if parts.is_empty() {
        return "nothing the events name (no deployment was recorded)".into();
    }
    parts.join("; ")
}

/// No output from an attempt that was already replaced: once a sink subtask's attempt k has
/// written, nothing from an attempt below k may follow. Judged in the order outputs reached
/// the store (their time order), which is when a zombie's buffered records would land.
pub fn fencing(h: &RunHistory) -> Verdict {
    const NAME: &str = "fencing";
    let mut newest: BTreeMap<u32, (u32, Duration)> = BTreeMap::new();
    for o in &h.outputs {
        let entry = newest.entry(o.sink_subtask).or_insert((o.attempt, o.at));
        if o.attempt < entry.0 {
            let evidence = format!(
                "sink subtask {} attempt {} wrote at {} after attempt {} wrote at {}",
                o.sink_subtask,
                o.attempt,
                secs(o.at),
                entry.0,
                secs(entry.1)
            );
            return Verdict::fail(NAME, "output from a replaced attempt", evidence);
        }
        *entry = (o.attempt, o.at);
    }
    Verdict::pass(NAME, "no output from replaced attempts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{crash_at, deployed, history, out};
    use crate::history::AppliedFault;

    #[test]
    fn fencing_catches_a_zombie_attempt() {
        let h = history(vec![out(0, 0, 0), out(100, 1, 1), out(200, 2, 0)]);
        let v = fencing(&h);
        assert!(!v.passed);
        assert!(v
            .evidence
            .unwrap()
            .contains("attempt 0 wrote at 0.200s after attempt 1"));
        assert!(fencing(&history(vec![out(0, 0, 0), out(100, 1, 1)])).passed);
    }

    #[test]
    fn liveness_needs_the_job_to_finish_in_time() {
        let mut h = history(Vec::new());
        h.faults.push(AppliedFault {
            ended_at: Some(Duration::from_secs(4)),
            ..crash_at(2)
        });
        assert!(liveness(&h, Duration::from_secs(7)).passed);
        assert!(!liveness(&h, Duration::from_secs(5)).passed);
    }

    #[test]
    fn a_job_that_never_finishes_says_what_it_waits_for() {
        use crate::events::RecordedEvent;
        use crate::node::NodeName;
        use rill::graph::{JobId, VertexId};
        let mut h = history(Vec::new());
        h.job_status = RunEnd::CutOff;
        h.faults.push(crash_at(2)); // never restarted
        let attempt = |s| SubtaskId::new(VertexId(0), s).attempt(1);
        let at = |ms, event| RecordedEvent {
            at: Duration::from_millis(ms),
            node: NodeName::JobManager,
            event,
        };
        h.events = vec![
            at(
                3_000,
                deployed((0..2).map(|s| (attempt(s), "tm-1", s)), None),
            ),
            at(
                3_500,
                ClusterEvent::SubtaskStateChanged {
                    job: JobId(1),
                    attempt: attempt(0),
                    state: ExecutionState::Finished,
                },
            ),
            at(
                4_000,
                ClusterEvent::WaitingForSlots {
                    job: JobId(1),
                    needed: 2,
                    free: 0,
                },
            ),
        ];
        let v = liveness(&h, Duration::from_secs(30));
        assert!(!v.passed);
        let evidence = v.evidence.unwrap();
        assert!(
            evidence.contains("1 subtask(s): v0[1]#1 Deploying since 3.000s"),
            "{evidence}"
        );
        assert!(
            evidence.contains("2 slot(s), 0 free, since 4.000s"),
            "{evidence}"
        );
        assert!(evidence.contains("to end (it never did)"), "{evidence}");
    }
}
