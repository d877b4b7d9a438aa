//! The keyed-state checker: for a job whose outputs carry each key's running count (the state
//! its keyed operator holds), the state every attempt restored is the one its checkpoint held.
//!
//! Within one attempt of a sink subtask a key's counts run without gaps or repeats: each
//! record the keyed operator processes adds one, whatever was lost or replayed upstream.
//! Across a restart from checkpoint `chk-k` (a failover or a rebalancing move), the new
//! attempt's first count for a key is one more than the state `chk-k` held for it. The output
//! bounds that state: at least the highest count the earlier attempt had output by the time
//! `chk-k` was triggered (output before the barrier left the sources is in it), at most the
//! highest it output at all (a completed checkpoint's pre-commit made everything before its
//! barrier durable). A restart from no checkpoint starts every key at 1. A restore of the
//! wrong checkpoint, of another subtask's key groups, or of none, breaks one of these; so does
//! a keyed operator that counts a record twice or skips one.
//!
//! Under exactly-once the delivery checker already asks for counts 1..=n; this holds the
//! restored state to its checkpoint under every delivery mode, `taskmanager` failover
//! included.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rill::events::ClusterEvent;
use rill::graph::CheckpointId;

use super::secs;
use crate::history::{RunHistory, Verdict};

const NAME: &str = "keyed-state";

/// One key's outputs from one attempt of its sink subtask: (time, count), in time order.
type Counts = Vec<(Duration, u64)>;

/// How each (subtask index, attempt) of the sink's task was deployed: when, and the
/// checkpoint it restored, if any.
type Deployed = BTreeMap<(u32, u32), (Duration, Option<CheckpointId>)>;

/// The deployments of the job's last vertex, the one whose sink writes the counts (under
/// `taskmanager` failover another vertex's subtask of the same index restarts on its own, so
/// its attempts are numbered apart).
fn restores(h: &RunHistory) -> Deployed {
    let deployments = || {
        h.events.iter().filter_map(|e| match &e.event {
            ClusterEvent::TasksDeployed {
                tasks, checkpoint, ..
            } => Some(tasks.iter().map(move |t| (e.at, t.attempt, *checkpoint))),
            _ => None,
        })
    };
    let Some(sink) = deployments().flatten().map(|(_, a, _)| a.vertex).max() else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for (at, attempt, checkpoint) in deployments().flatten() {
        if attempt.vertex == sink {
            out.entry((attempt.subtask, attempt.attempt))
                .or_insert((at, checkpoint));
        }
    }
    out
}

/// What the deployments and checkpoint triggers say, for bounding restored state.
struct Restores {
    deployed: Deployed,
    triggered: BTreeMap<CheckpointId, Duration>,
}

impl Restores {
    /// Bounds on the count `chk` held for a key on sink subtask `subtask`, from `attempts`
    /// (the key's outputs per attempt). The state is the one the attempt running when `chk`
    /// was triggered snapshotted: the subtask's last attempt deployed by then. What it output
    /// before the trigger is in the state, and nothing beyond the highest it output at all
    /// (the checkpoint's pre-commit made everything before its barrier durable). If it output
    /// nothing of the key before the trigger, the state held at least what that attempt
    /// itself restored (and, with no output at all, exactly that). `None`: not known.
    fn state_of(
        &self,
        attempts: &BTreeMap<(u32, u32), Counts>,
        subtask: u32,
        chk: CheckpointId,
    ) -> Option<(u64, u64)> {
        let trigger = *self.triggered.get(&chk)?;
        let (&(_, taker), &(_, base_chk)) = self
            .deployed
            .range((subtask, 0)..=(subtask, u32::MAX))
            .rev()
            .find(|(_, (at, _))| *at <= trigger)?;
        // The taker's own restore is of an earlier checkpoint: this ends.
        let base = match base_chk {
            None => Some((0, 0)),
            Some(earlier) if earlier < chk => self.state_of(attempts, subtask, earlier),
            Some(_) => None,
        };
        let counts = attempts.get(&(subtask, taker)).filter(|c| !c.is_empty());
        let Some(counts) = counts else {
            return base;
        };
        let before = counts
            .iter()
            .filter(|(at, _)| *at <= trigger)
            .map(|(_, c)| *c)
            .max();
        let lo = match before {
            Some(lo) => lo,
            None => base.map_or(0, |(lo, _)| lo),
        };
        let hi = counts.iter().map(|(_, c)| *c).max().unwrap_or(0);
        Some((lo, hi.max(lo)))
    }
}

impl Restores {
    /// Where `state_of`'s bounds for `chk` came from, for a failure's evidence: when `chk` was
    /// triggered, the attempt whose state it holds, and that attempt's counts of the key
    /// around the trigger.
    fn explain(
        &self,
        attempts: &BTreeMap<(u32, u32), Counts>,
        subtask: u32,
        chk: CheckpointId,
    ) -> String {
        let Some(&trigger) = self.triggered.get(&chk) else {
            return format!("{chk} was never triggered");
        };
        let taker = self
            .deployed
            .range((subtask, 0)..=(subtask, u32::MAX))
            .rev()
            .find(|(_, (at, _))| *at <= trigger);
        let Some((&(_, attempt), &(deployed, restored))) = taker else {
            return format!(
                "{chk} was triggered at {}, before any attempt ran",
                secs(trigger)
            );
        };
        let counts = attempts
            .get(&(subtask, attempt))
            .map_or(&[][..], |c| &c[..]);
        let last_before = counts.iter().rev().find(|(at, _)| *at <= trigger);
        let after = counts.iter().find(|(at, _)| *at > trigger);
        let shown = |c: Option<&(Duration, u64)>| {
            c.map_or("none".to_string(), |(at, n)| {
                format!("{n} at {}", secs(*at))
            })
        };
        format!(
            "{chk} was triggered at {} while attempt {attempt} ran (deployed at {}, restoring {}); its last count of the key before the trigger: {}; its first after: {}",
            secs(trigger),
            secs(deployed),
            restored.map_or("nothing".to_string(), |c| c.to_string()),
            shown(last_before),
            shown(after),
        )
    }
}

fn triggered(h: &RunHistory) -> BTreeMap<CheckpointId, Duration> {
    h.events
        .iter()
        .filter_map(|e| match &e.event {
            ClusterEvent::CheckpointTriggered { checkpoint, .. } => Some((*checkpoint, e.at)),
            _ => None,
        })
        .collect()
}

/// Every key's counts, per (sink subtask, attempt), attempts in order.
fn counts_by_key(h: &RunHistory) -> BTreeMap<u64, BTreeMap<(u32, u32), Counts>> {
    // Grouped by hash first (one lookup per output: a run has millions), then ordered: the
    // groups are few, and the verdict must not depend on the hash's order.
    let mut groups: HashMap<(u64, u32, u32), Counts> = HashMap::new();
    for o in &h.outputs {
        let (Some(key), Some(count)) = (o.key(), o.value()) else {
            continue;
        };
        groups
            .entry((key, o.sink_subtask, o.attempt))
            .or_default()
            .push((o.at, count));
    }
    let mut keys: BTreeMap<u64, BTreeMap<(u32, u32), Counts>> = BTreeMap::new();
    for ((key, subtask, attempt), counts) in groups {
        keys.entry(key)
            .or_default()
            .insert((subtask, attempt), counts);
    }
    keys
}

/// Holds every key's counts to the state each attempt restored.
pub fn keyed_state(h: &RunHistory) -> Verdict {
    let keys = counts_by_key(h);
    if keys.is_empty() {
        return Verdict::not_checked(NAME, "the job's outputs carry no running counts");
    }
    let restores = Restores {
        deployed: restores(h),
        triggered: triggered(h),
    };
    let mut resumed = 0usize;
    for (key, attempts) in &keys {
        for (&(subtask, attempt), counts) in attempts {
            if let Some(evidence) = gap_within(counts) {
                return Verdict::fail(
                    NAME,
                    format!("key {key}: counts of one attempt are not contiguous"),
                    format!("sink subtask {subtask} attempt {attempt}: {evidence}"),
                );
            }
            let first = counts.iter().map(|(_, c)| *c).min().unwrap_or(1);
            let restored = restores
                .deployed
                .get(&(subtask, attempt))
                .and_then(|(_, chk)| *chk);
            let (lo, hi) = match restored {
                // Attempts of another subtask index hold other keys (a key's group moves only
                // with its subtask), so only the same subtask's attempts bound it. Unknown:
                // nothing output bounds it from above but the restore itself.
                Some(chk) => restores
                    .state_of(attempts, subtask, chk)
                    .unwrap_or((0, u64::MAX)),
                None => (0, 0),
            };
            if first == 0 || first - 1 < lo || first - 1 > hi {
                let from = restored.map_or("no checkpoint".to_string(), |c| c.to_string());
                let expected = match hi {
                    u64::MAX => format!("at least {}", lo + 1),
                    _ if lo == hi => format!("{}", lo + 1),
                    _ => format!("{}..={}", lo + 1, hi + 1),
                };
                let why = restored.map_or(String::new(), |chk| {
                    format!("; {}", restores.explain(attempts, subtask, chk))
                });
                return Verdict::fail(
                    NAME,
                    format!("key {key}: attempt {attempt} restored the wrong state"),
                    format!(
                        "sink subtask {subtask} attempt {attempt} (restoring {from}, deployed at {}) output count {first} first, at {}; the state it restored must give {expected}{why}",
                        secs(restores.deployed.get(&(subtask, attempt)).map_or(Duration::ZERO, |d| d.0)),
                        secs(counts[0].0)
                    ),
                );
            }
            if attempt > 0 {
                resumed += 1;
            }
        }
    }
    Verdict::pass(
        NAME,
        format!(
            "{} keys: counts contiguous within every attempt; {resumed} restart(s) of a key resumed from its checkpoint's state",
            keys.len()
        ),
    )
}

/// The first gap or repeat among one attempt's counts of a key, if any.
fn gap_within(counts: &Counts) -> Option<String> {
    // Counts in time order are contiguous exactly when each is one more than the one before:
    // the common case, checked without sorting.
    if counts.windows(2).all(|w| w[1].1 == w[0].1 + 1) {
        return None;
    }
    let mut values: Vec<(u64, Duration)> = counts.iter().map(|(at, c)| (*c, *at)).collect();
    values.sort_unstable();
    values.windows(2).find_map(|w| {
        let ((a, at_a), (b, at_b)) = (w[0], w[1]);
        (b != a + 1).then(|| {
            format!(
                "count {a} (at {}) is followed by {b} (at {})",
                secs(at_a),
                secs(at_b)
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::history;
    use crate::check::tests::jm_event as event;
    use crate::history::OutputRecord;
    use rill::events::Deployment;
    use rill::graph::{JobId, SubtaskId, VertexId};
    use std::num::NonZeroU64;

    fn out(ms: u64, attempt: u32, count: u64) -> OutputRecord {
        OutputRecord::new(
            Duration::from_millis(ms),
            1,
            0,
            attempt,
            None,
            Some((7, NonZeroU64::new(count).unwrap())),
        )
    }

    /// Key 7 counted 1..=6 by attempt 0 (one every 100 ms), chk-1 triggered at 350 ms, then
    /// attempt 1 restoring chk-1 and resuming at `resume`.
    fn run(resume: u64, checkpoint: Option<u64>) -> RunHistory {
        let mut outputs: Vec<OutputRecord> = (1..=6).map(|c| out(c * 100, 0, c)).collect();
        outputs.extend((0..3).map(|i| out(2_000 + i * 100, 1, resume + i)));
        let mut h = history(outputs);
        h.events = vec![
            event(0, deployed(0, None)),
            event(350, triggered(1)),
            event(1_500, deployed(1, checkpoint)),
        ];
        h
    }

    /// Sink subtask 0's attempt `attempt` deployed, restoring `checkpoint`.
    fn deployed(attempt: u32, checkpoint: Option<u64>) -> ClusterEvent {
        ClusterEvent::TasksDeployed {
            job: JobId(1),
            tasks: vec![Deployment {
                attempt: SubtaskId::new(VertexId(1), 0).attempt(attempt),
                taskmanager: "tm-2".into(),
                slot: Some(0),
            }],
            checkpoint: checkpoint.map(CheckpointId),
        }
    }

    fn triggered(n: u64) -> ClusterEvent {
        ClusterEvent::CheckpointTriggered {
            job: JobId(1),
            checkpoint: CheckpointId(n),
        }
    }

    #[test]
    fn a_checkpoint_holds_the_state_of_the_attempt_that_took_it() {
        // Attempt 0 counts key 7 to 2; attempt 1 starts over (no checkpoint yet) and reads
        // nothing of it before chk-1 is triggered at 1 s; attempt 2 restores chk-1. Its state
        // for key 7 is attempt 1's (none), not attempt 0's: it counts from 1 again.
        let mut outputs = vec![out(100, 0, 1), out(200, 0, 2)];
        outputs.push(out(2_000, 2, 1));
        let mut h = history(outputs);
        h.events = vec![
            event(0, deployed(0, None)),
            event(500, deployed(1, None)),
            event(1_000, triggered(1)),
            event(1_500, deployed(2, Some(1))),
        ];
        let v = keyed_state(&h);
        assert!(v.passed && v.checked, "{v:?}");
        // Resuming from attempt 0's count would have restored a state chk-1 never held.
        h.outputs[2] = out(2_000, 2, 3);
        let v = keyed_state(&h);
        assert!(!v.passed, "{v:?}");
        assert!(v.evidence.unwrap().contains("must give 1"));
    }

    #[test]
    fn a_restart_resumes_from_the_checkpoints_state() {
        // chk-1 holds at least 3 (output before its trigger) and at most 6.
        for resume in 4..=7 {
            let v = keyed_state(&run(resume, Some(1)));
            assert!(v.passed && v.checked, "{resume}: {v:?}");
        }
        let v = keyed_state(&run(3, Some(1)));
        assert!(
            !v.passed && v.summary.contains("restored the wrong state"),
            "{v:?}"
        );
        let evidence = v.evidence.unwrap();
        assert!(evidence.contains("4..=7"), "{evidence}");
        // It says where the bounds came from.
        assert!(
            evidence.contains("chk-1 was triggered at 0.350s while attempt 0 ran")
                && evidence
                    .contains("before the trigger: 3 at 0.300s; its first after: 4 at 0.400s"),
            "{evidence}"
        );
        assert!(!keyed_state(&run(8, Some(1))).passed);
        // From no checkpoint: every key starts over.
        assert!(keyed_state(&run(1, None)).passed);
        assert!(!keyed_state(&run(4, None)).passed);
    }

    #[test]
    fn a_gap_or_repeat_within_an_attempt_fails() {
        let mut h = run(4, Some(1));
        h.outputs.push(out(1_000, 0, 8));
        let v = keyed_state(&h);
        assert!(!v.passed && v.summary.contains("not contiguous"), "{v:?}");
        let mut h = run(4, Some(1));
        h.outputs.push(out(1_000, 0, 6));
        assert!(!keyed_state(&h).passed);
    }

    #[test]
    fn outputs_without_counts_are_not_checked() {
        let h = history(Vec::new());
        assert!(!keyed_state(&h).checked);
    }
}
