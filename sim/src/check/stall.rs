//! The zero-stall checker: the longest interval without output, for the job and for the
//! sinks on TaskManagers no fault touched.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::secs;
use crate::history::{RunHistory, Verdict};
use crate::node::NodeName;

/// The longest interval without output, between the first output and the job's end (checked
/// against the bound), and the longest for any one sink subtask on a TaskManager no fault
/// touched (reported).
pub fn zero_stall(h: &RunHistory, bound: Option<Duration>) -> Verdict {
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
    match bound {
        Some(b) if gap > b => Verdict::fail(
            NAME,
            summary,
            format!(
                "no output from {} to {} (bound {})",
                secs(from),
                secs(from + gap),
                secs(b)
            ),
        ),
        Some(_) => Verdict::pass(NAME, summary),
        None => Verdict::not_checked(NAME, format!("no bound; {summary}")),
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
        let v = zero_stall(&h, Some(Duration::from_millis(1_000)));
        assert!(!v.passed);
        assert!(v.evidence.unwrap().contains("from 0.100s to 1.600s"));
        assert!(zero_stall(&h, Some(Duration::from_secs(2))).passed);
    }
}
