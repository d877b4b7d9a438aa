//! The balance checkers: tasks per TaskManager in every placement, and accounted memory
//! per TaskManager against the mean.

use std::collections::{BTreeMap, BTreeSet};

use rill::events::ClusterEvent;
use rill::ids::SubtaskId;

use crate::node::NodeName;
use std::time::Duration;

use super::secs;
use crate::history::{RunHistory, Verdict};

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
        Some(_) => Verdict::pass(NAME, summary),
        None => Verdict::not_checked(
            NAME,
            format!("first-fit placement packs TaskManagers by design, and no bound was given; {summary}"),
        ),
    }
}

/// Balanced scheduling's promise, checked where the scheduler chose: right after every
/// deployment (the first, each failover's, each rebalancing's), the tasks per TaskManager
/// registered then differ by at most `bound` (a slot's tasks: slots are what it spreads).
/// A TaskManager that registers later is idle until something is deployed again, and that
/// is no imbalance the scheduler chose.
pub fn balance_at_deployments(h: &RunHistory, bound: u32) -> Verdict {
    const NAME: &str = "balance";
    let mut registered: BTreeSet<&str> = BTreeSet::new();
    let mut placed: BTreeMap<SubtaskId, &str> = BTreeMap::new();
    let (mut deployments, mut worst) = (0usize, (0u32, Duration::ZERO));
    for e in h.events.iter().filter(|e| e.node == NodeName::JobManager) {
        match &e.event {
            ClusterEvent::TaskManagerRegistered { taskmanager, .. } => {
                registered.insert(taskmanager);
            }
            ClusterEvent::TaskManagerLost { taskmanager, .. } => {
                registered.remove(taskmanager.as_str());
                placed.retain(|_, tm| *tm != taskmanager.as_str());
            }
            ClusterEvent::TasksDeployed { tasks, .. } => {
                deployments += 1;
                for t in tasks {
                    placed.insert(t.attempt.subtask_id(), &t.taskmanager);
                }
                let mut counts: BTreeMap<&str, u32> =
                    registered.iter().map(|tm| (*tm, 0)).collect();
                for tm in placed.values() {
                    if let Some(c) = counts.get_mut(tm) {
                        *c += 1;
                    }
                }
                let (max, min) = (
                    counts.values().copied().max().unwrap_or(0),
                    counts.values().copied().min().unwrap_or(0),
                );
                if max - min > bound {
                    return Verdict::fail(
                        NAME,
                        format!("task-count range {} right after a deployment", max - min),
                        format!("at {}: {counts:?} (bound {bound})", secs(e.at)),
                    );
                }
                if max - min >= worst.0 {
                    worst = (max - min, e.at);
                }
            }
            _ => {}
        }
    }
    match deployments {
        0 => Verdict::not_checked(NAME, "nothing was deployed"),
        n => Verdict::pass(
            NAME,
            format!(
                "{n} deployment(s), largest task-count range {} (at {})",
                worst.0,
                secs(worst.1)
            ),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::history;
    use crate::history::Placement;

    #[test]
    fn memory_balance_measures_the_fullest_taskmanager_against_the_mean() {
        use crate::history::MemorySample;
        let mut h = history(Vec::new());
        let sample = |tm, bytes| MemorySample {
            at: Duration::from_millis(100),
            taskmanager: tm,
            bytes,
            task_bytes: 0,
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
}
