//! The recovery checker: how long after each disruptive fault the output rate was back and
//! the job running again.

use std::time::Duration;

use rill::graph::JobStatus;

use super::{disruptive_faults, secs};
use crate::history::{OutputRecord, RunHistory, Verdict};

/// How long after a fault ends its dip in output may still begin (buffers draining).
pub(super) const DIP_HORIZON: Duration = Duration::from_secs(5);

/// From each disruptive fault to the later of: output back at 95% of its pre-fault rate (the
/// mean over the 5 s before, measured over 1 s windows sliding by 100 ms) after the dip the
/// fault caused, and the job RUNNING again with every task deployed if it had restarted. A
/// job that finished counts as recovered when it did. Faults with no output before them have
/// no baseline and are skipped; a fault whose dip never comes recovered at once.
pub fn recovery_time(h: &RunHistory, bound: Option<Duration>) -> Verdict {
    const NAME: &str = "recovery";
    let times = &h.outputs;
    let window = Duration::from_secs(1);
    let mut worst: Option<(Duration, Duration)> = None;
    for f in disruptive_faults(h) {
        let Some(at) = f.began_at else { continue };
        let before = rate_in(times, at.saturating_sub(Duration::from_secs(5)), at);
        if before == 0.0 {
            continue;
        }
        // Buffers (a prefetched log, queued network buffers) can carry output on for a while
        // after the fault: the recovery is from the dip, whenever it comes while the fault
        // lasts or shortly after, back to the pre-fault rate. Windows past the last output
        // of a finished job would show its end, not a dip.
        let last = match times.last() {
            Some(o) if h.finished() => o.at,
            _ => h.end,
        };
        let windows = (0..)
            .map(|k| at + Duration::from_millis(100 * k))
            .take_while(|t| *t + window <= last);
        let low = |t: &Duration| rate_in(times, *t, *t + window) < 0.95 * before;
        let horizon = at + f.fault.duration().unwrap_or_default() + DIP_HORIZON;
        let dip = windows.clone().take_while(|t| *t <= horizon).find(low);
        let recovered = match dip {
            None => Some(at),
            Some(dip) => windows.skip_while(|t| *t < dip).find(|t| !low(t)),
        };
        let origin = dip.map_or(at, |dip| disrupted_at(at, f.ended_at, dip, window));
        let took = match recovered {
            Some(t) => t
                .saturating_sub(origin)
                .max(running_again(h, at).unwrap_or(at) - at),
            None if h.finished() => h.end.saturating_sub(at),
            None => {
                let summary = format!(
                    "output never returned to its pre-fault rate after the fault at {}",
                    secs(at)
                );
                let evidence = format!("{} at {}: rate before {before:.0}/s", f.fault, secs(at));
                return match bound {
                    Some(_) => Verdict::fail(NAME, summary, evidence),
                    None => Verdict::not_checked(NAME, summary + " (no bound)"),
                };
            }
        };
        if worst.is_none_or(|(w, _)| took > w) {
            worst = Some((took, at));
        }
    }
    let Some((took, at)) = worst else {
        return Verdict::not_checked(
            NAME,
            "no disruptive fault with output before it (nothing to measure)",
        );
    };
    let summary = format!("slowest recovery {} (fault at {})", secs(took), secs(at));
    match bound {
        Some(b) if took > b => Verdict::fail(
            NAME,
            summary,
            format!(
                "recovery from the fault at {} took {} (bound {})",
                secs(at),
                secs(took),
                secs(b)
            ),
        ),
        Some(_) => Verdict::pass(NAME, summary),
        None => Verdict::not_checked(NAME, format!("no bound; {summary}")),
    }
}

/// What the dip that begins at `dip` (a window of `window`) is a recovery from: the fault's
/// beginning, or (the earlier of) the dip's start and the fault's end, when the dip begins
/// at least two windows after the fault did and reaches its end. A
/// fault has two disruptive moments: a crashed TaskManager that comes back rejoins and gets
/// subtasks moved to it (a rebalancing), a healed partition reconnects. When the runtime rides
/// out the first without a dip (taskmanager failover, a restored source making up its
/// backlog), the dip of the second must be timed from the second, not from the fault's start.
fn disrupted_at(
    at: Duration,
    ended: Option<Duration>,
    dip: Duration,
    window: Duration,
) -> Duration {
    match ended {
        // Two windows of steady output after the fault began: the runtime rode it out, and
        // the dip is the end's. (Within that, buffers may still be hiding the beginning's.)
        Some(end) if dip >= at + 2 * window && end <= dip + window => end.min(dip).max(at),
        _ => at,
    }
}

/// When the job was RUNNING again after restarting, if it restarted after `at`.
fn running_again(h: &RunHistory, at: Duration) -> Option<Duration> {
    let restarted = h
        .status_changes()
        .find(|(t, s)| *t >= at && *s == JobStatus::Restarting)?
        .0;
    h.status_changes()
        .find(|(t, s)| *t >= restarted && *s == JobStatus::Running)
        .map(|(t, _)| t)
}

/// Records per second in [from, to), over output times sorted ascending.
fn rate_in(sorted: &[OutputRecord], from: Duration, to: Duration) -> f64 {
    let n = sorted.partition_point(|o| o.at < to) - sorted.partition_point(|o| o.at < from);
    n as f64 / (to - from).as_secs_f64().max(1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::{crash_at, history, out};

    #[test]
    fn recovery_measures_until_the_rate_is_back() {
        // 100 records/s, silent from 5 s to 7 s after a crash at 5 s, then back.
        let outputs = (0..1000u64)
            .filter(|i| !(500..700).contains(i))
            .map(|i| out(i * 10, i, 0))
            .collect();
        let mut h = history(outputs);
        h.faults.push(crash_at(5));
        let v = recovery_time(&h, Some(Duration::from_secs(10)));
        assert!(v.passed, "{v:?}");
        assert!(
            v.summary.starts_with("slowest recovery 2.0"),
            "{}",
            v.summary
        );
        assert!(!recovery_time(&h, Some(Duration::from_millis(1_500))).passed);
    }

    #[test]
    fn a_dip_at_the_end_of_a_fault_is_timed_from_the_end() {
        // 100 records/s; a crash at 3 s for 10 s rides out without a dip, and the rejoin at
        // 13 s silences the output until 13.5 s.
        let outputs = (0..2000u64)
            .filter(|i| !(1300..1350).contains(i))
            .map(|i| out(i * 10, i, 0))
            .collect();
        let mut h = history(outputs);
        h.faults.push(crash_at(3));
        h.faults[0].fault.kind = crate::fault::FaultKind::Crash {
            target: "tm-2".into(),
            restart_after: Some(Duration::from_secs(10)),
        };
        h.faults[0].ended_at = Some(Duration::from_secs(13));
        let v = recovery_time(&h, Some(Duration::from_secs(2)));
        assert!(v.passed, "{v:?}");
        // The same dip with the fault still on (no end in sight) counts from its start.
        h.faults[0].ended_at = None;
        h.faults[0].fault.kind = crate::fault::FaultKind::Crash {
            target: "tm-2".into(),
            restart_after: Some(Duration::from_secs(60)),
        };
        assert!(!recovery_time(&h, Some(Duration::from_secs(2))).passed);
    }

    #[test]
    fn recovery_counts_from_a_dip_that_comes_after_the_fault() {
        // A crash at 3 s that buffers hide until 5 s; silent from 5 s to 7 s, then back.
        let outputs = (0..1000u64)
            .filter(|i| !(500..700).contains(i))
            .map(|i| out(i * 10, i, 0))
            .collect();
        let mut h = history(outputs);
        h.faults.push(crash_at(3));
        let v = recovery_time(&h, Some(Duration::from_secs(60)));
        // Back at 7 s: 4 s after the fault, not "at once" because the rate held at first.
        assert!(
            v.summary.starts_with("slowest recovery 4.0"),
            "{}",
            v.summary
        );
        // The end of a finished job is no dip.
        let steady = (0..1000u64).map(|i| out(i * 10, i, 0)).collect();
        let mut h = history(steady);
        h.faults.push(crash_at(8));
        let v = recovery_time(&h, Some(Duration::from_secs(60)));
        assert!(
            v.summary.starts_with("slowest recovery 0.0"),
            "{}",
            v.summary
        );
    }
}
