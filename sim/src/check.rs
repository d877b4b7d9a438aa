//! Checkers over a run's history. Each returns a verdict with its evidence: the first offending
//! record or interval, with virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rill::api::Origin;

use crate::fault::FaultKind;
use crate::history::{OutputRecord, RunHistory, Verdict};
use crate::scenario::{DeliveryMode, Expectations, JobOutcome};

/// What the input of a run was, for the delivery checker: every input record's origin and key.
#[derive(Debug, Clone, Default)]
pub struct ExpectedInput {
    pub records: BTreeMap<Origin, u64>,
}

/// Runs every checker the expectations ask for, plus those that always apply.
pub fn check_all(
    history: &RunHistory,
    expect: &Expectations,
    input: Option<&ExpectedInput>,
) -> Vec<Verdict> {
    let mut verdicts = vec![job_outcome(history, expect.job), fencing(history)];
    if let Some(input) = input.filter(|_| expect.delivery != DeliveryMode::Unchecked) {
        verdicts.push(delivery(history, expect.delivery, input));
    }
    verdicts.push(zero_stall(history, expect.max_stall));
    if !disruptive_faults(history).is_empty() {
        verdicts.push(recovery_time(history, expect.max_recovery));
    }
    verdicts.push(balance(history, expect.max_task_range));
    if let Some(bound) = expect.drain_within {
        verdicts.push(liveness(history, bound));
    }
    verdicts
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

/// The job ended as expected.
pub fn job_outcome(h: &RunHistory, expected: Option<JobOutcome>) -> Verdict {
    let want = match expected {
        None => return Verdict::pass("job", format!("job {} (not checked)", h.job_status)),
        Some(JobOutcome::Finished) => "FINISHED",
        Some(JobOutcome::Failed) => "FAILED",
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

/// Exactly-once: every input record produced exactly one output, with the key's running counts
/// 1..=n. Lossy-accounted: no duplicates, nothing invented, and missing records only where a
/// fault could have dropped them.
pub fn delivery(h: &RunHistory, mode: DeliveryMode, input: &ExpectedInput) -> Verdict {
    const NAME: &str = "delivery";
    let mut seen: BTreeMap<Origin, &OutputRecord> = BTreeMap::new();
    for out in &h.outputs {
        let Some(origin) = out.origin else { continue };
        if let Some(first) = seen.insert(origin, out) {
            return Verdict::fail(
                NAME,
                "duplicate output",
                format!(
                    "input {origin:?} was output at {} (attempt {}) and again at {} (attempt {})",
                    secs(first.at),
                    first.attempt,
                    secs(out.at),
                    out.attempt
                ),
            );
        }
        match input.records.get(&origin) {
            None => {
                return Verdict::fail(
                    NAME,
                    "invented output",
                    format!(
                        "output at {} claims input {origin:?}, which does not exist",
                        secs(out.at)
                    ),
                )
            }
            Some(key) if out.key.is_some_and(|k| k != *key) => {
                return Verdict::fail(
                    NAME,
                    "wrong key",
                    format!(
                        "input {origin:?} has key {key}, its output at {} says {:?}",
                        secs(out.at),
                        out.key
                    ),
                )
            }
            Some(_) => {}
        }
    }
    let missing: Vec<&Origin> = input
        .records
        .keys()
        .filter(|o| !seen.contains_key(o))
        .collect();
    let summary = format!(
        "{} of {} inputs delivered, {} missing, 0 duplicated",
        seen.len(),
        input.records.len(),
        missing.len()
    );
    match (mode, missing.first()) {
        (_, None) => running_counts(h).map_or_else(
            |e| Verdict::fail(NAME, summary.clone(), e),
            |_| Verdict::pass(NAME, summary.clone()),
        ),
        (DeliveryMode::ExactlyOnce, Some(first)) => {
            Verdict::fail(NAME, summary, format!("input {first:?} produced no output"))
        }
        (_, Some(first)) if disruptive_faults(h).is_empty() => Verdict::fail(
            NAME,
            summary,
            format!("input {first:?} is missing and no fault can account for it"),
        ),
        (_, Some(_)) => Verdict::pass(NAME, format!("{summary} (attributed to faults)")),
    }
}

/// For keyed counts: each key's emitted counts are exactly 1..=n.
fn running_counts(h: &RunHistory) -> Result<(), String> {
    let mut counts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for out in &h.outputs {
        if let (Some(k), Some(v)) = (out.key, out.value) {
            counts.entry(k).or_default().push(v);
        }
    }
    for (key, mut c) in counts {
        c.sort_unstable();
        if let Some((i, v)) = c.iter().enumerate().find(|(i, v)| **v != *i as u64 + 1) {
            return Err(format!(
                "key {key}: running counts are not 1..={}; position {i} holds {v}",
                c.len()
            ));
        }
    }
    Ok(())
}

/// Faults that can take records or tasks away (not latency, not skew).
pub fn disruptive_faults(h: &RunHistory) -> Vec<&crate::history::AppliedFault> {
    h.faults
        .iter()
        .filter(|f| {
            matches!(
                f.fault.kind,
                FaultKind::Crash { .. }
                    | FaultKind::OomKill { .. }
                    | FaultKind::Partition { .. }
                    | FaultKind::LinkPartition { .. }
                    | FaultKind::Pause { .. }
            )
        })
        .collect()
}

/// The longest interval without output, between the first output and the job's end: for the
/// whole job, and for sinks on TaskManagers no fault touched.
pub fn zero_stall(h: &RunHistory, bound: Option<Duration>) -> Verdict {
    const NAME: &str = "zero-stall";
    let Some(first) = h.outputs.iter().map(|o| o.at).min() else {
        return Verdict::pass(NAME, "no output (nothing to measure)");
    };
    let end = if h.job_status == "FINISHED" {
        h.outputs.iter().map(|o| o.at).max().unwrap_or(first)
    } else {
        h.end
    };
    let (gap, from) = longest_gap(h.outputs.iter().map(|o| o.at), first, end);
    let touched: BTreeSet<&str> = h.faults.iter().flat_map(|f| f.fault.targets()).collect();
    let untouched = h
        .outputs
        .iter()
        .filter(|o| !touched.contains(&*o.taskmanager))
        .map(|o| o.at);
    let (quiet_gap, _) = longest_gap(untouched, first, end);
    let summary = format!(
        "longest stall {} (from {}), untouched sinks {}",
        secs(gap),
        secs(from),
        secs(quiet_gap)
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
        _ => Verdict::pass(NAME, summary),
    }
}

/// Longest gap between consecutive times within [first, end]; returns (gap, where it starts).
fn longest_gap(
    times: impl Iterator<Item = Duration>,
    first: Duration,
    end: Duration,
) -> (Duration, Duration) {
    let mut times: Vec<Duration> = times.filter(|t| *t >= first && *t <= end).collect();
    times.sort_unstable();
    times.push(end);
    let mut prev = first;
    let mut best = (Duration::ZERO, first);
    for t in times {
        if t.saturating_sub(prev) > best.0 {
            best = (t - prev, prev);
        }
        prev = prev.max(t);
    }
    best
}

/// From each disruptive fault to output back at 95% of its pre-fault rate (mean over the 5 s
/// before), measured in 1 s windows sliding by 100 ms.
pub fn recovery_time(h: &RunHistory, bound: Option<Duration>) -> Verdict {
    const NAME: &str = "recovery";
    let mut times: Vec<Duration> = h.outputs.iter().map(|o| o.at).collect();
    times.sort_unstable();
    let rate_in = |from: Duration, to: Duration| rate_in(&times, from, to);
    let mut worst: Option<(Duration, Duration)> = None;
    for f in disruptive_faults(h) {
        let at = f.fault.at;
        let before = rate_in(at.saturating_sub(Duration::from_secs(5)), at);
        let recovered = (1..)
            .map(|k| at + Duration::from_millis(100 * k))
            .take_while(|t| *t + Duration::from_secs(1) <= h.end)
            .find(|t| before > 0.0 && rate_in(*t, *t + Duration::from_secs(1)) >= 0.95 * before);
        let took = recovered
            .map(|t| t + Duration::from_secs(1) - at)
            .unwrap_or(h.end.saturating_sub(at));
        if worst.is_none_or(|(w, _)| took > w) {
            worst = Some((took, at));
        }
        if recovered.is_none() && before > 0.0 {
            let summary = format!(
                "output never returned to its pre-fault rate after the fault at {}",
                secs(at)
            );
            return match bound {
                Some(_) => Verdict::fail(
                    NAME,
                    summary,
                    format!("{} at {}: rate before {before:.0}/s", f.fault, secs(at)),
                ),
                None => Verdict::pass(NAME, summary + " (not bounded)"),
            };
        }
    }
    let (took, at) = worst.unwrap_or_default();
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
        _ => Verdict::pass(NAME, summary),
    }
}

/// Records per second in [from, to), over output times sorted ascending.
fn rate_in(sorted: &[Duration], from: Duration, to: Duration) -> f64 {
    let n = sorted.partition_point(|t| *t < to) - sorted.partition_point(|t| *t < from);
    n as f64 / (to - from).as_secs_f64().max(1e-9)
}

/// Range of tasks per TaskManager in every placement (initial and after each failover).
pub fn balance(h: &RunHistory, bound: Option<u32>) -> Verdict {
    const NAME: &str = "balance";
    let mut worst = (0u32, Duration::ZERO);
    for p in &h.placements {
        let counts: Vec<u32> = (1..=h.taskmanagers)
            .map(|i| {
                p.tasks
                    .iter()
                    .find(|(n, _)| *n == format!("tm-{i}"))
                    .map_or(0, |(_, c)| *c)
            })
            .collect();
        let range = counts.iter().max().unwrap_or(&0) - counts.iter().min().unwrap_or(&0);
        if range > worst.0 {
            worst = (range, p.at);
        }
    }
    let summary = format!(
        "largest task-count range {} (at {})",
        worst.0,
        secs(worst.1)
    );
    match bound {
        Some(b) if worst.0 > b => {
            let p = h
                .placements
                .iter()
                .find(|p| p.at == worst.1)
                .map(|p| format!("{:?}", p.tasks))
                .unwrap_or_default();
            Verdict::fail(
                NAME,
                summary,
                format!("at {}: {p} (bound {b})", secs(worst.1)),
            )
        }
        _ => Verdict::pass(NAME, summary),
    }
}

/// After the last fault ends, the job drains its input within `bound`.
pub fn liveness(h: &RunHistory, bound: Duration) -> Verdict {
    const NAME: &str = "liveness";
    let healed = h
        .faults
        .iter()
        .map(|f| f.ended_at.unwrap_or(f.fault.at))
        .max()
        .unwrap_or_default();
    if h.job_status != "FINISHED" {
        return Verdict::fail(
            NAME,
            format!("job {}", h.job_status),
            format!(
                "faults healed at {}, job not finished by {}",
                secs(healed),
                secs(h.end)
            ),
        );
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

/// No output from an attempt that was already replaced: once a sink subtask's attempt k has
/// written, nothing from an attempt below k may follow.
pub fn fencing(h: &RunHistory) -> Verdict {
    const NAME: &str = "fencing";
    let mut newest: BTreeMap<u32, (u32, Duration)> = BTreeMap::new();
    // `RunHistory::outputs` is in time order.
    for o in &h.outputs {
        let entry = newest.entry(o.sink_subtask).or_insert((o.attempt, o.at));
        if o.attempt < entry.0 {
            return Verdict::fail(
                NAME,
                "output from a replaced attempt",
                format!(
                    "sink subtask {} attempt {} wrote at {} after attempt {} wrote at {}",
                    o.sink_subtask,
                    o.attempt,
                    secs(o.at),
                    entry.0,
                    secs(entry.1)
                ),
            );
        }
        *entry = (o.attempt, o.at);
    }
    Verdict::pass(NAME, "no output from replaced attempts")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::Fault;
    use crate::history::{AppliedFault, Placement};

    fn out(ms: u64, offset: u64, attempt: u32) -> OutputRecord {
        OutputRecord {
            at: Duration::from_millis(ms),
            taskmanager: "tm-1".into(),
            sink_subtask: 0,
            attempt,
            origin: Some(Origin {
                partition: 0,
                offset,
            }),
            key: Some(offset % 2),
            value: Some(offset / 2 + 1),
        }
    }

    fn input(n: u64) -> ExpectedInput {
        ExpectedInput {
            records: (0..n)
                .map(|o| {
                    (
                        Origin {
                            partition: 0,
                            offset: o,
                        },
                        o % 2,
                    )
                })
                .collect(),
        }
    }

    fn history(outputs: Vec<OutputRecord>) -> RunHistory {
        RunHistory {
            outputs,
            end: Duration::from_secs(10),
            job_status: "FINISHED".into(),
            taskmanagers: 2,
            ..Default::default()
        }
    }

    fn crash_at(secs: u64) -> AppliedFault {
        AppliedFault {
            fault: Fault {
                at: Duration::from_secs(secs),
                kind: FaultKind::Crash {
                    target: "tm-2".into(),
                    restart_after: None,
                },
            },
            ended_at: None,
        }
    }

    #[test]
    fn exactly_once_passes_on_complete_output_and_names_the_first_duplicate() {
        let h = history((0..4).map(|o| out(o * 10, o, 0)).collect());
        assert!(delivery(&h, DeliveryMode::ExactlyOnce, &input(4)).passed);
        let mut dup = h.clone();
        dup.outputs.push(out(500, 2, 1));
        let v = delivery(&dup, DeliveryMode::ExactlyOnce, &input(4));
        assert!(!v.passed);
        assert!(
            v.evidence.unwrap().contains("offset: 2"),
            "evidence names the record"
        );
    }

    #[test]
    fn missing_records_fail_exactly_once_and_need_a_fault_when_lossy() {
        let h = history((0..3).map(|o| out(o * 10, o, 0)).collect());
        assert!(!delivery(&h, DeliveryMode::ExactlyOnce, &input(4)).passed);
        assert!(!delivery(&h, DeliveryMode::LossyAccounted, &input(4)).passed);
        let mut faulted = h;
        faulted.faults.push(crash_at(1));
        assert!(delivery(&faulted, DeliveryMode::LossyAccounted, &input(4)).passed);
    }

    #[test]
    fn invented_output_is_caught() {
        let h = history(vec![out(0, 0, 0), out(10, 99, 0)]);
        let v = delivery(&h, DeliveryMode::LossyAccounted, &input(2));
        assert!(!v.passed && v.summary == "invented output");
    }

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
    fn balance_counts_idle_taskmanagers() {
        let mut h = history(Vec::new());
        h.placements.push(Placement {
            at: Duration::ZERO,
            tasks: vec![("tm-1".into(), 4)],
        });
        let v = balance(&h, Some(1));
        assert!(!v.passed && v.summary.contains("range 4"));
    }

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
            v.summary.starts_with("slowest recovery 3.0"),
            "{}",
            v.summary
        );
        assert!(!recovery_time(&h, Some(Duration::from_secs(2))).passed);
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
}
