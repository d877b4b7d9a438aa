//! The zero-stall checker: the longest interval without output, for the job and for the
//! sinks on TaskManagers no fault touched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rill::events::ClusterEvent;

use super::secs;
use crate::history::{RunHistory, Verdict};
use crate::node::NodeName;

/// The longest interval without output, between the first output and the job's end (checked
/// against the bound), and the longest for any one sink subtask on a TaskManager no fault
/// touched (reported).
///
/// `gated`: the job's output becomes visible only when a checkpoint completes (a
/// transactional sink). A stall in which no checkpoint completed, and one was given up
/// (expired, aborted), had nothing to commit: it is the checkpoints' story, not the data
/// flow's, and is judged only from the first completion inside it.
pub fn zero_stall(h: &RunHistory, bound: Option<Duration>, gated: bool) -> Verdict {
    const NAME: &str = "zero-stall";
    let Some(first) = h.outputs.first().map(|o| o.at) else {
        return Verdict::not_checked(NAME, "no output (nothing to measure)");
    };
    let end = if h.finished() {
        h.outputs.last().map_or(first, |o| o.at)
    } else {
        h.end
    };
    let touched: BTreeSet<u32> = h
        .faults
        .iter()
        .filter(|f| f.took_effect())
        .flat_map(|f| f.fault.targets())
        .filter_map(NodeName::taskmanager)
        .collect();
    // One pass over the outputs (sorted by time), measuring the job and each untouched sink.
    let mut job = GapMeter::new(first, end);
    let mut untouched: BTreeMap<u32, GapMeter> = BTreeMap::new();
    for o in &h.outputs {
        job.see(o.at);
        if !touched.contains(&o.taskmanager) {
            untouched
                .entry(o.sink_subtask)
                .or_insert_with(|| GapMeter::new(first, end))
                .see(o.at);
        }
    }
    let (gap, from) = job.finish();
    let quiet = untouched
        .into_values()
        .map(|m| m.finish().0)
        .max()
        .unwrap_or_default();
    let summary = format!(
        "longest stall {} (from {}), longest on an untouched sink {}",
        secs(gap),
        secs(from),
        secs(quiet)
    );
    let Some(b) = bound else {
        return Verdict::not_checked(NAME, format!("no bound; {summary}"));
    };
    if gap <= b {
        return Verdict::pass(NAME, summary);
    }
    if !gated {
        return Verdict::fail(NAME, summary, no_output(from, from + gap, b));
    }
    let mut explained = Vec::new();
    for (from, to) in gaps_over(h, first, end, b) {
        match unexplained(h, from, to, b) {
            Unexplained::Since(start) if to - start > b => {
                let why = format!("checkpoint completed at {}", secs(start));
                let evidence = format!("{}, {why}", no_output(from, to, b));
                return Verdict::fail(NAME, summary, evidence);
            }
            Unexplained::Since(_) => {}
            Unexplained::Nothing => {
                let evidence = format!(
                    "{}, no checkpoint completed or was given up in it",
                    no_output(from, to, b)
                );
                return Verdict::fail(NAME, summary, evidence);
            }
            Unexplained::NoCommit(given_up) => explained.push(format!(
                "{} to {} ({given_up} checkpoint(s) given up, none completed)",
                secs(from),
                secs(to)
            )),
        }
    }
    let summary = format!(
        "{summary}; no commit was possible from {}",
        explained.join(", ")
    );
    Verdict::pass(NAME, summary)
}

fn no_output(from: Duration, to: Duration, bound: Duration) -> String {
    format!(
        "no output from {} to {} (bound {})",
        secs(from),
        secs(to),
        secs(bound)
    )
}

/// Every interval without output longer than `bound` within [first, end].
fn gaps_over(
    h: &RunHistory,
    first: Duration,
    end: Duration,
    bound: Duration,
) -> Vec<(Duration, Duration)> {
    let mut times: Vec<Duration> = h
        .outputs
        .iter()
        .map(|o| o.at)
        .filter(|t| (first..=end).contains(t))
        .collect();
    times.push(end);
    times
        .windows(2)
        .filter(|w| w[1].saturating_sub(w[0]) > bound)
        .map(|w| (w[0], w[1]))
        .collect()
}

/// What of a gap in a transactional sink's output its checkpoints leave unexplained.
enum Unexplained {
    /// A checkpoint completed inside it at this time: from then on its commit was due.
    Since(Duration),
    /// None completed and this many were given up: nothing could be committed.
    NoCommit(usize),
    /// None completed and none was given up: the checkpoints explain nothing.
    Nothing,
}

fn unexplained(h: &RunHistory, from: Duration, to: Duration, bound: Duration) -> Unexplained {
    let inside = h.events.iter().filter(|e| e.at > from && e.at < to);
    let (mut given_up, mut tried) = (0, vec![from]);
    for e in inside {
        match e.event {
            ClusterEvent::CheckpointCompleted { .. } => return Unexplained::Since(e.at),
            ClusterEvent::CheckpointAborted { .. } => {
                given_up += 1;
                tried.push(e.at);
            }
            ClusterEvent::CheckpointTriggered { .. } => tried.push(e.at),
            _ => {}
        }
    }
    tried.push(to);
    // The checkpoints must have kept trying all along: a coordinator that stopped after an
    // abort, or a data flow whose barriers stopped, leaves a stretch without a trigger.
    let kept_trying = tried.windows(2).all(|w| w[1] - w[0] <= bound);
    match (given_up, kept_trying) {
        (n, true) if n > 0 => Unexplained::NoCommit(n),
        _ => Unexplained::Nothing,
    }
}

/// The longest gap between consecutive times within [first, end], measured as the times
/// arrive in order: (gap, where it starts).
struct GapMeter {
    first: Duration,
    end: Duration,
    prev: Duration,
    best: (Duration, Duration),
}

impl GapMeter {
    fn new(first: Duration, end: Duration) -> Self {
        GapMeter {
            first,
            end,
            prev: first,
            best: (Duration::ZERO, first),
        }
    }

    /// The next time, no earlier than the previous one.
    fn see(&mut self, t: Duration) {
        if t < self.first || t > self.end {
            return;
        }
        if t.saturating_sub(self.prev) > self.best.0 {
            self.best = (t - self.prev, self.prev);
        }
        self.prev = self.prev.max(t);
    }

    fn finish(mut self) -> (Duration, Duration) {
        let end = self.end;
        self.see(end);
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{history, out};

    #[test]
    fn zero_stall_reports_the_longest_gap_with_its_start() {
        let h = history(vec![
            out(0, 0, 0),
            out(100, 1, 0),
            out(1_600, 2, 0),
            out(1_700, 3, 0),
        ]);
        let v = zero_stall(&h, Some(Duration::from_millis(1_000)), false);
        assert!(!v.passed);
        assert!(v.evidence.unwrap().contains("from 0.100s to 1.600s"));
        assert!(zero_stall(&h, Some(Duration::from_secs(2)), false).passed);
    }

    fn checkpoint(ms: u64, n: u64, completed: bool) -> crate::events::RecordedEvent {
        use rill::events::AbortReason;
        use rill::graph::{CheckpointId, JobId};
        let (job, checkpoint) = (JobId(1), CheckpointId(n));
        let event = match completed {
            true => ClusterEvent::CheckpointCompleted {
                job,
                checkpoint,
                bytes: 0,
            },
            false => ClusterEvent::CheckpointAborted {
                job,
                checkpoint,
                reason: AbortReason::Expired,
            },
        };
        crate::events::RecordedEvent {
            at: Duration::from_millis(ms),
            node: NodeName::JobManager,
            event,
        }
    }

    #[test]
    fn a_transactional_sinks_stall_without_a_completed_checkpoint_is_the_checkpoints_story() {
        let bound = Some(Duration::from_millis(1_000));
        let mut h = history(vec![out(0, 0, 0), out(100, 1, 0), out(1_600, 2, 0)]);
        // Nothing in the gap says why: a stall, gated or not.
        assert!(!zero_stall(&h, bound, true).passed);
        // One expiry in it, then nothing for longer than the bound: the checkpoints stopped.
        h.events.push(checkpoint(300, 1, false));
        assert!(!zero_stall(&h, bound, true).passed);
        // Every checkpoint in it expired, and they kept coming: nothing could be committed.
        h.events.push(checkpoint(1_100, 2, false));
        let v = zero_stall(&h, bound, true);
        assert!(v.passed, "{v:?}");
        assert!(v.summary.contains("2 checkpoint(s) given up"), "{v:?}");
        assert!(!zero_stall(&h, bound, false).passed, "ungated, a stall");
        // A completion inside it makes the commit due: judged from there.
        h.events.push(checkpoint(400, 3, true));
        h.events.sort_by_key(|e| e.at);
        let v = zero_stall(&h, bound, true);
        assert!(!v.passed, "{v:?}");
        assert!(v
            .evidence
            .unwrap()
            .contains("checkpoint completed at 0.400s"));
    }
}
