//! Checkers over a run's history. Each returns a verdict with its evidence: the first offending
//! record or interval, with virtual time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rill::api::Origin;

use rill::events::ClusterEvent;
use rill::graph::JobStatus;

use crate::history::{AppliedFault, OutputRecord, RunEnd, RunHistory, Verdict};
use crate::node::NodeName;
use crate::scenario::{DeliveryMode, Expectations, JobOutcome};

/// How long a record may be in flight between source and sink: a missing record is attributed
/// to a fault active within this margin of when it would have been output.
const IN_FLIGHT: Duration = Duration::from_secs(1);

/// How long after a fault's window a replay may still re-emit records: a restarted source
/// replays at most one checkpoint interval (1 s in the scenarios), paced, after the restart
/// (which may be the rebalancing move when a crashed TaskManager rejoins).
const REPLAY: Duration = Duration::from_secs(2);
/// How long a task redeployed behind a partition can take to notice that its connections to
/// the log and the sink store died with it: the runtime's service call timeout (5 s) and its
/// longest retry back-off (2 s).
const STALE_CONNECTION: Duration = Duration::from_secs(7);
/// The longest a fault's window extends to the output resuming after it (see `disruptions`).
const RESUME_WITHIN: Duration = Duration::from_secs(10);

/// What the input of a run was, for the delivery checker: the key of every input record, by
/// partition then offset (a partitioned log's offsets run densely from 0), so a check over
/// millions of outputs indexes arrays instead of searching trees.
#[derive(Debug, Clone, Default)]
pub struct ExpectedInput {
    partitions: Vec<Vec<u64>>,
}

impl ExpectedInput {
    /// Adds the next record of its partition; records of a partition come in offset order.
    pub fn push(&mut self, origin: Origin, key: u64) {
        let p = origin.partition as usize;
        if self.partitions.len() <= p {
            self.partitions.resize_with(p + 1, Vec::new);
        }
        debug_assert_eq!(self.partitions[p].len() as u64, origin.offset);
        self.partitions[p].push(key);
    }

    /// Room for `records` records of `partition`, so a large input is not copied as it grows.
    pub fn reserve(&mut self, partition: u32, records: usize) {
        let p = partition as usize;
        if self.partitions.len() <= p {
            self.partitions.resize_with(p + 1, Vec::new);
        }
        self.partitions[p].reserve_exact(records);
    }

    pub fn key(&self, origin: Origin) -> Option<u64> {
        let partition = self.partitions.get(origin.partition as usize)?;
        partition.get(usize::try_from(origin.offset).ok()?).copied()
    }

    pub fn len(&self) -> usize {
        self.partitions.iter().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// No output seen yet for an input record.
const UNSEEN: u32 = u32::MAX;

/// Runs every checker the expectations ask for, plus those that always apply.
pub fn check_all(
    history: &RunHistory,
    expect: &Expectations,
    input: Option<&ExpectedInput>,
) -> Vec<Verdict> {
    let mut verdicts = vec![job_outcome(history, expect.job), fencing(history)];
    match (expect.delivery, input) {
        (DeliveryMode::Unchecked, _) => {}
        (mode, Some(input)) => verdicts.push(delivery(history, mode, input)),
        (_, None) => verdicts.push(Verdict::fail(
            "delivery",
            "not checkable",
            "this job's outputs carry no provenance (only keyed-count's and etl's do); set delivery = \"unchecked\"",
        )),
    }
    verdicts.push(zero_stall(history, expect.max_stall));
    if disruptive_faults(history).next().is_some() {
        verdicts.push(recovery_time(history, expect.max_recovery));
    }
    verdicts.push(balance(history, expect.max_task_range));
    if let Some(bound) = expect.max_memory_skew_percent {
        verdicts.push(memory_balance(history, bound));
    }
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
        Some(JobOutcome::Finished) => JobStatus::Finished,
        Some(JobOutcome::Failed) => JobStatus::Failed,
    };
    if h.job_status == RunEnd::Ended(want) {
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
/// 1..=n. Lossy-accounted: no duplicates, nothing invented, and every missing record attributed
/// to a fault that was active around the time it would have been output. At-least-once: every
/// input delivered, duplicates allowed (counted), nothing invented.
pub fn delivery(h: &RunHistory, mode: DeliveryMode, input: &ExpectedInput) -> Verdict {
    const NAME: &str = "delivery";
    let disruptions = disruptions(h);
    // The first output of every input record (index into `h.outputs`), by partition and offset.
    let mut seen: Vec<Vec<u32>> = input
        .partitions
        .iter()
        .map(|p| vec![UNSEEN; p.len()])
        .collect();
    let (mut delivered, mut duplicates) = (0usize, 0u64);
    for (index, out) in h.outputs.iter().enumerate() {
        let Some(origin) = out.origin() else { continue };
        let Some(key) = input.key(origin) else {
            let evidence = format!(
                "output at {} claims input {origin:?}, which does not exist",
                secs(out.at)
            );
            return Verdict::fail(NAME, "invented output", evidence);
        };
        let slot = &mut seen[origin.partition as usize][origin.offset as usize];
        if *slot != UNSEEN {
            let first = &h.outputs[*slot as usize];
            match mode {
                DeliveryMode::AtLeastOnce => duplicates += 1,
                DeliveryMode::FaultAccounted if near(&disruptions, out.at, REPLAY) => {
                    duplicates += 1
                }
                DeliveryMode::FaultAccounted => {
                    let evidence = format!(
                        "input {origin:?} was output again at {} (attempt {}), when no fault was active",
                        secs(out.at),
                        out.attempt
                    );
                    return Verdict::fail(NAME, "unaccounted duplicate", evidence);
                }
                _ => {
                    let evidence = format!(
                        "input {origin:?} was output at {} (attempt {}) and again at {} (attempt {})",
                        secs(first.at),
                        first.attempt,
                        secs(out.at),
                        out.attempt
                    );
                    return Verdict::fail(NAME, "duplicate output", evidence);
                }
            }
            continue;
        }
        *slot = index as u32;
        delivered += 1;
        if out.key().is_some_and(|k| k != key) {
            let evidence = format!(
                "input {origin:?} has key {key}, its output at {} says {:?}",
                secs(out.at),
                out.key()
            );
            return Verdict::fail(NAME, "wrong key", evidence);
        }
    }
    let missing = input.len() - delivered;
    let summary = format!(
        "{delivered} of {} inputs delivered, {missing} missing, {duplicates} duplicated",
        input.len(),
    );
    let complete = matches!(mode, DeliveryMode::ExactlyOnce | DeliveryMode::AtLeastOnce);
    if complete && missing > 0 {
        let first = first_missing(&seen).expect("something is missing");
        return Verdict::fail(NAME, summary, format!("input {first:?} produced no output"));
    }
    if let Some(evidence) = first_unaccounted(h, &seen, &disruptions) {
        return Verdict::fail(NAME, summary, evidence);
    }
    // Running counts are contiguous only when nothing was lost or replayed.
    if missing == 0 && duplicates == 0 {
        if let Err(e) = running_counts(h) {
            return Verdict::fail(NAME, summary, e);
        }
    }
    let note = if missing == 0 {
        ""
    } else {
        " (all attributed to faults)"
    };
    Verdict::pass(NAME, format!("{summary}{note}"))
}

fn first_missing(seen: &[Vec<u32>]) -> Option<Origin> {
    seen.iter().enumerate().find_map(|(p, offsets)| {
        let o = offsets.iter().position(|s| *s == UNSEEN)?;
        Some(Origin {
            partition: p as u32,
            offset: o as u64,
        })
    })
}

/// True if a disruption was active within `IN_FLIGHT` before `at`, or ended at most `after`
/// before it.
fn near(disruptions: &[(Duration, Duration)], at: Duration, after: Duration) -> bool {
    disruptions
        .iter()
        .any(|(b, e)| *b <= at + IN_FLIGHT && *e + after >= at)
}

/// When something disrupted the job: the windows of faults that took effect (until output
/// resumed after them), and the recoveries they set off, from the JobManager's events: from a failover (which may come
/// well after its fault: a heartbeat timeout, a connection that only breaks later) or a
/// rebalancing move to the redeployment of the restarted tasks, and then the replay: paced
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
    let (mut open, mut checkpointed) = (None::<Duration>, Duration::ZERO);
    for e in h.events.iter().filter(|e| e.node == NodeName::JobManager) {
        match e.event {
            ClusterEvent::CheckpointCompleted { .. } => checkpointed = e.at,
            _ if e.at < first_fault => {}
            ClusterEvent::FailoverStarted { .. } | ClusterEvent::Rebalanced { .. } => {
                open.get_or_insert(e.at);
            }
            ClusterEvent::TasksDeployed { .. } => {
                if let Some(from) = open.take() {
                    let replay = e.at.saturating_sub(checkpointed).max(REPLAY);
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

/// The first missing record no disruption accounts for. A missing record would have been
/// output between its partition's neighbouring delivered records; a disruption within
/// `IN_FLIGHT` of that interval accounts for it.
fn first_unaccounted(
    h: &RunHistory,
    seen: &[Vec<u32>],
    disruptions: &[(Duration, Duration)],
) -> Option<String> {
    let at = |slot: u32| h.outputs[slot as usize].at;
    for (p, offsets) in seen.iter().enumerate() {
        if !offsets.contains(&UNSEEN) {
            continue;
        }
        // The output time of the nearest delivered record after each offset, in one pass.
        let mut next = vec![None; offsets.len()];
        let mut later = None;
        for (o, slot) in offsets.iter().enumerate().rev() {
            next[o] = later;
            if *slot != UNSEEN {
                later = Some(at(*slot));
            }
        }
        let mut earlier = None;
        for (o, slot) in offsets.iter().enumerate() {
            if *slot != UNSEEN {
                earlier = Some(at(*slot));
                continue;
            }
            // Neighbours may have been output out of order (a replay, another sink subtask),
            // so the interval runs from the earlier to the later of them.
            let (before, after) = (earlier.unwrap_or_default(), next[o].unwrap_or(h.end));
            let from = before.min(after).saturating_sub(IN_FLIGHT);
            let to = before.max(after) + IN_FLIGHT;
            if !disruptions.iter().any(|(b, e)| *b <= to && *e >= from) {
                let origin = Origin {
                    partition: p as u32,
                    offset: o as u64,
                };
                return Some(format!(
                    "input {origin:?} is missing; it would have been output between {} and {}, when no fault was active",
                    secs(from),
                    secs(to)
                ));
            }
        }
    }
    None
}

/// For keyed counts: each key's emitted counts are exactly 1..=n.
fn running_counts(h: &RunHistory) -> Result<(), String> {
    let mut counts: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for out in &h.outputs {
        if let (Some(k), Some(v)) = (out.key(), out.value()) {
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

/// Faults that took effect and can take records or tasks away (not latency, not skew).
pub fn disruptive_faults(h: &RunHistory) -> impl Iterator<Item = &AppliedFault> {
    h.faults
        .iter()
        .filter(|f| f.took_effect() && f.fault.kind.spec().disruptive)
}

/// The longest interval without output, between the first output and the job's end (checked
/// against the bound), and the longest for any one sink subtask on a TaskManager no fault
/// touched (reported).
pub fn zero_stall(h: &RunHistory, bound: Option<Duration>) -> Verdict {
    const NAME: &str = "zero-stall";
    let Some(first) = h.outputs.first().map(|o| o.at) else {
        return Verdict::pass(NAME, "no output (nothing to measure)");
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
        .filter_map(|name| NodeName::from(name).taskmanager())
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
        _ => Verdict::pass(NAME, summary),
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

/// How long after a fault ends its dip in output may still begin (buffers draining).
const DIP_HORIZON: Duration = Duration::from_secs(5);

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
        let recovered = match windows.clone().take_while(|t| *t <= horizon).find(low) {
            None => Some(at),
            Some(dip) => windows.skip_while(|t| *t < dip).find(|t| !low(t)),
        };
        let took = match recovered {
            Some(t) => (t - at).max(running_again(h, at).unwrap_or(at) - at),
            None if h.finished() => h.end.saturating_sub(at),
            None => {
                let summary = format!(
                    "output never returned to its pre-fault rate after the fault at {}",
                    secs(at)
                );
                let evidence = format!("{} at {}: rate before {before:.0}/s", f.fault, secs(at));
                return match bound {
                    Some(_) => Verdict::fail(NAME, summary, evidence),
                    None => Verdict::pass(NAME, summary + " (not bounded)"),
                };
            }
        };
        if worst.is_none_or(|(w, _)| took > w) {
            worst = Some((took, at));
        }
    }
    let Some((took, at)) = worst else {
        return Verdict::pass(NAME, "no fault with output before it (nothing to measure)");
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
        _ => Verdict::pass(NAME, summary),
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

/// Range of tasks per TaskManager in every placement the JobManager reported (initial and after
/// each failover); a placement lists every registered TaskManager, idle ones with 0.
pub fn balance(h: &RunHistory, bound: Option<u32>) -> Verdict {
    const NAME: &str = "balance";
    let mut worst = (0u32, Duration::ZERO);
    for p in &h.placements {
        let range = task_range(p);
        if range > worst.0 {
            worst = (range, p.at);
        }
    }
    let last = h.placements.last().map_or(0, task_range);
    let summary = format!(
        "largest task-count range {} (at {}), last {last}",
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

/// The difference in task count between the busiest and the idlest TaskManager.
pub fn task_range(p: &crate::history::Placement) -> u32 {
    let counts = p.tasks.iter().map(|(_, c)| *c);
    counts.clone().max().unwrap_or(0) - counts.min().unwrap_or(0)
}

/// How far the fullest TaskManager's accounted memory is above the mean, in percent, at the
/// worst sample. Samples where no TaskManager holds anything are skipped, and so are those of
/// a finished job's last `DRAIN_MARGIN`: its tasks end one by one as the input runs out, and
/// memory freed unevenly then says nothing about placement.
pub fn memory_balance(h: &RunHistory, bound_percent: u32) -> Verdict {
    const NAME: &str = "memory-balance";
    const DRAIN_MARGIN: Duration = Duration::from_millis(500);
    let until = match h.finished() {
        true => h.end.saturating_sub(DRAIN_MARGIN),
        false => h.end,
    };
    let mut by_time: BTreeMap<Duration, Vec<u64>> = BTreeMap::new();
    for m in h.memory.iter().filter(|m| m.at <= until) {
        by_time.entry(m.at).or_default().push(m.bytes);
    }
    let mut worst = (0.0f64, Duration::ZERO, 0u64, 0u64);
    for (at, bytes) in &by_time {
        let (max, sum) = (
            bytes.iter().copied().max().unwrap_or(0),
            bytes.iter().sum::<u64>(),
        );
        if sum == 0 {
            continue;
        }
        let mean = sum as f64 / bytes.len() as f64;
        let skew = 100.0 * (max as f64 - mean) / mean;
        if skew > worst.0 {
            worst = (skew, *at, max, mean as u64);
        }
    }
    let (skew, at, max, mean) = worst;
    let summary = format!(
        "largest memory skew {skew:.1}% above the mean (at {})",
        secs(at)
    );
    if skew > f64::from(bound_percent) {
        let evidence = format!("at {}: the fullest TaskManager holds {max} bytes, the mean is {mean} (bound {bound_percent}%)", secs(at));
        Verdict::fail(NAME, summary, evidence)
    } else {
        Verdict::pass(NAME, summary)
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
            "faults healed at {}, job not finished by {}",
            secs(healed),
            secs(h.end)
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
    use crate::fault::{Fault, FaultKind};
    use crate::history::{AppliedFault, Placement};
    use rill::events::{Deployment, FailoverCause, LossCause};
    use rill::graph::{CheckpointId, JobId, SubtaskId, VertexId};
    use std::num::NonZeroU64;

    fn out(ms: u64, offset: u64, attempt: u32) -> OutputRecord {
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

    fn input(n: u64) -> ExpectedInput {
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

    fn history(outputs: Vec<OutputRecord>) -> RunHistory {
        RunHistory {
            outputs,
            end: Duration::from_secs(10),
            job_status: RunEnd::Ended(JobStatus::Finished),
            taskmanagers: 2,
            ..Default::default()
        }
    }

    fn jm_event(ms: u64, event: ClusterEvent) -> crate::events::RecordedEvent {
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
        let task = |v| Deployment {
            attempt: SubtaskId::new(VertexId(v), 1).attempt(1),
            taskmanager: "tm-1".into(),
            slot: 1,
        };
        ClusterEvent::TasksDeployed {
            job: JobId(1),
            tasks: vec![task(0), task(1)],
            checkpoint: Some(CheckpointId(1)),
        }
    }

    fn crash_at(secs: u64) -> AppliedFault {
        let fault = Fault {
            at: Duration::from_secs(secs),
            kind: FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: None,
            },
        };
        AppliedFault {
            began_at: Some(Duration::from_secs(secs)),
            effective: true,
            ..AppliedFault::planned(fault)
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
    fn at_least_once_counts_duplicates_but_needs_every_input() {
        let mut h = history((0..4).map(|o| out(o * 10, o, 0)).collect());
        h.outputs.push(out(500, 2, 1));
        let v = delivery(&h, DeliveryMode::AtLeastOnce, &input(4));
        assert!(v.passed && v.summary.contains("1 duplicated"), "{v:?}");
        assert!(!delivery(&h, DeliveryMode::AtLeastOnce, &input(5)).passed);
    }

    #[test]
    fn fault_accounted_allows_duplicates_only_near_a_fault() {
        let mut h = history((0..4).map(|o| out(o * 10, o, 0)).collect());
        h.outputs.push(out(1_500, 2, 1));
        let v = delivery(&h, DeliveryMode::FaultAccounted, &input(4));
        assert!(!v.passed && v.summary == "unaccounted duplicate", "{v:?}");
        h.faults.push(crash_at(1));
        let v = delivery(&h, DeliveryMode::FaultAccounted, &input(4));
        assert!(v.passed && v.summary.contains("1 duplicated"), "{v:?}");
        assert!(!delivery(&h, DeliveryMode::LossyAccounted, &input(4)).passed);
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
    fn a_missing_record_needs_a_fault_near_when_it_would_have_been_output() {
        // Offsets 0..10 output every 100 ms; offset 5 (due around 0.5 s) is missing.
        let outputs = (0..10u64)
            .filter(|o| *o != 5)
            .map(|o| out(o * 100, o, 0))
            .collect();
        let mut far = history(outputs);
        far.faults.push(crash_at(8)); // long after: cannot account for it
        let v = delivery(&far, DeliveryMode::LossyAccounted, &input(10));
        assert!(!v.passed, "{v:?}");
        assert!(v.evidence.unwrap().contains("offset: 5"));
        let mut near = far.clone();
        near.faults[0] = crash_at(1);
        assert!(delivery(&near, DeliveryMode::LossyAccounted, &input(10)).passed);
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
        };
        planned.faults.push(AppliedFault::planned(fault));
        assert!(!delivery(&planned, DeliveryMode::LossyAccounted, &input(4)).passed);
    }

    #[test]
    fn memory_balance_measures_the_fullest_taskmanager_against_the_mean() {
        use crate::history::MemorySample;
        let mut h = history(Vec::new());
        let sample = |tm, bytes| MemorySample {
            at: Duration::from_millis(100),
            taskmanager: tm,
            bytes,
        };
        h.memory = vec![sample(1, 100), sample(2, 100), sample(3, 160)];
        let v = memory_balance(&h, 10);
        assert!(!v.passed, "{v:?}");
        assert!(
            v.summary.starts_with("largest memory skew 33.3%"),
            "{}",
            v.summary
        );
        assert!(memory_balance(&h, 40).passed);
        // The same skew in a finished job's last moments is its tasks ending one by one.
        h.end = Duration::from_millis(400);
        assert!(memory_balance(&h, 10).passed);
    }

    #[test]
    fn balance_counts_idle_taskmanagers() {
        let mut h = history(Vec::new());
        h.placements.push(Placement {
            at: Duration::ZERO,
            tasks: vec![("tm-1".into(), 4), ("tm-2".into(), 0)],
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
            v.summary.starts_with("slowest recovery 2.0"),
            "{}",
            v.summary
        );
        assert!(!recovery_time(&h, Some(Duration::from_millis(1_500))).passed);
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
        let v = recovery_time(&h, None);
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
        let v = recovery_time(&h, None);
        assert!(
            v.summary.starts_with("slowest recovery 0.0"),
            "{}",
            v.summary
        );
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
