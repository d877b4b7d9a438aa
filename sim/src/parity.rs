//! Simulated against real: one run's verdicts and figures as a small text file (`run
//! --summary FILE` in the simulator, `real --summary FILE` on real processes), and the two side
//! by side with every difference flagged (`real --compare FILE`).
//!
//! ```text
//! run mode=sim scenario=tm-crash-4x2-taskmanager seed=1 job=FINISHED end_ms=31200
//! figure name=outputs value=240000
//! verdict checker=delivery status=pass summary=every input record output once ...
//! ```
//!
//! Fields are `key=value`; `summary` takes the rest of its line. Readers skip lines they do
//! not know.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use rill::events::ClusterEvent;

use crate::history::{RunEnd, RunHistory, Verdict};

/// What one run came to, in the summary's terms.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// `sim` or `real`.
    pub mode: String,
    /// How the job ended.
    pub job: String,
    /// Figures by name, in the order they were written.
    pub figures: Vec<(String, String)>,
    /// Each checker's status (`pass`, `FAIL`, `not-checked`) and summary, by checker.
    pub verdicts: BTreeMap<String, (String, String)>,
    /// Faults that were not applied, with why.
    pub not_applied: Vec<String>,
    /// Faults applied by a means worth saying (a real OOM kill by the kernel or by SIGKILL).
    pub applied_as: Vec<String>,
}

impl Summary {
    /// The summary of a judged run.
    pub fn of(mode: &str, history: &RunHistory, verdicts: &[Verdict]) -> Summary {
        let job = match history.job_status {
            RunEnd::Ended(status) => format!("{status:?}").to_uppercase(),
            other => format!("{other:?}"),
        };
        let verdicts = verdicts
            .iter()
            .map(|v| {
                let status = match (v.checked, v.passed) {
                    (_, false) => "FAIL",
                    (true, true) => "pass",
                    (false, true) => "not-checked",
                };
                (
                    v.checker.to_string(),
                    (status.to_string(), one_line(&v.summary)),
                )
            })
            .collect();
        let not_applied = history
            .faults
            .iter()
            .filter_map(|f| Some(format!("{}: {}", f.fault, f.not_applied.as_ref()?)))
            .collect();
        let applied_as = history
            .faults
            .iter()
            .filter_map(|f| Some(format!("{}: {}", f.fault, f.applied_as.as_ref()?)))
            .collect();
        Summary {
            mode: mode.into(),
            job,
            figures: figures(history),
            verdicts,
            not_applied,
            applied_as,
        }
    }

    /// The summary as its file's text.
    pub fn render(&self, scenario: &str, seed: u64) -> String {
        let mut out = format!(
            "run mode={} scenario={scenario} seed={seed} job={}\n",
            self.mode, self.job
        );
        for (name, value) in &self.figures {
            let _ = writeln!(out, "figure name={name} value={value}");
        }
        for (checker, (status, summary)) in &self.verdicts {
            let _ = writeln!(
                out,
                "verdict checker={checker} status={status} summary={summary}"
            );
        }
        for why in &self.not_applied {
            let _ = writeln!(out, "not-applied summary={}", one_line(why));
        }
        for how in &self.applied_as {
            let _ = writeln!(out, "applied summary={}", one_line(how));
        }
        out
    }

    /// Reads a summary file's text.
    pub fn parse(text: &str) -> Result<Summary, String> {
        let mut s = Summary::default();
        for line in text.lines() {
            let (kind, rest) = line.split_once(' ').unwrap_or((line, ""));
            let (fields, summary) = match rest.split_once("summary=") {
                Some((fields, summary)) => (fields, summary.to_string()),
                None => (rest, String::new()),
            };
            let get = |key: &str| {
                fields
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                    .map(str::to_string)
            };
            match kind {
                "run" => {
                    s.mode = get("mode").ok_or("a run line without mode")?;
                    s.job = get("job").unwrap_or_default();
                }
                "figure" => s.figures.push((
                    get("name").ok_or("a figure without name")?,
                    get("value").unwrap_or_default(),
                )),
                "verdict" => {
                    let checker = get("checker").ok_or("a verdict without checker")?;
                    s.verdicts
                        .insert(checker, (get("status").unwrap_or_default(), summary));
                }
                "not-applied" => s.not_applied.push(summary),
                "applied" => s.applied_as.push(summary),
                _ => {}
            }
        }
        if s.mode.is_empty() {
            return Err("not a run summary: no run line".into());
        }
        Ok(s)
    }
}

/// The figures both runs are compared by.
fn figures(h: &RunHistory) -> Vec<(String, String)> {
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let (mut failovers, mut restarted) = (0u32, 0usize);
    for e in &h.events {
        if let ClusterEvent::FailoverStarted { restart, .. } = &e.event {
            failovers += 1;
            restarted += restart.len();
        }
    }
    let range = h
        .placements
        .iter()
        .filter_map(|p| {
            let counts = || p.tasks.iter().map(|(_, n)| *n);
            Some(counts().max()? - counts().min()?)
        })
        .max();
    let mut figures = vec![
        ("outputs".into(), h.outputs.len().to_string()),
        ("longest_stall".into(), ms(longest_stall(h))),
        ("failovers".into(), failovers.to_string()),
        ("restarted_subtasks".into(), restarted.to_string()),
        (
            "balance_range".into(),
            range.map_or("-".into(), |r| r.to_string()),
        ),
    ];
    if let Some(b) = Breakdown::of(h) {
        let at = |d: Option<Duration>| d.map_or("-".into(), ms);
        figures.extend([
            ("recovery.detected".into(), at(b.detected)),
            ("recovery.failover".into(), at(b.failover)),
            ("recovery.deployed".into(), at(b.deployed)),
            ("recovery.running".into(), at(b.running)),
            ("recovery.reconnected".into(), at(b.reconnected)),
            ("recovery.back_at_95".into(), at(b.back_at_95)),
        ]);
    }
    figures
}

/// Where the time of the first TaskManager loss goes, each phase as the time since the fault
/// began: the JobManager declares it lost, starts the failover, deploys the replacements
/// (after the restart back-off), they run, the consumers read from them, and the output rate
/// is back at 95% of what it was in the 2 s before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Breakdown {
    /// `TaskManagerLost`.
    pub detected: Option<Duration>,
    /// `FailoverStarted`.
    pub failover: Option<Duration>,
    /// The `TasksDeployed` after it.
    pub deployed: Option<Duration>,
    /// The last of the deployed attempts reported RUNNING.
    pub running: Option<Duration>,
    /// The last `InputReconnected` to a deployed attempt.
    pub reconnected: Option<Duration>,
    /// The first moment after the fault from which the next second holds 95% or more of the
    /// output a second held on average in the 2 s before the fault.
    pub back_at_95: Option<Duration>,
}

impl Breakdown {
    /// The breakdown of the run's first crash, OOM kill or pause of a TaskManager, if it had
    /// one that took effect.
    pub fn of(h: &RunHistory) -> Option<Breakdown> {
        let fault = h.faults.iter().find(|f| {
            f.took_effect()
                && f.fault.targets().iter().any(|n| n.taskmanager().is_some())
                && matches!(
                    f.fault.kind,
                    crate::fault::FaultKind::Crash { .. }
                        | crate::fault::FaultKind::OomKill { .. }
                        | crate::fault::FaultKind::Pause { .. }
                )
        })?;
        let t0 = fault.began_at?;
        let since = |at: Duration| at.saturating_sub(t0);
        let after = h.events.iter().filter(|e| e.at >= t0);
        let mut b = Breakdown {
            detected: None,
            failover: None,
            deployed: None,
            running: None,
            reconnected: None,
            back_at_95: back_at_95(h, t0).map(since),
        };
        let mut deployed = Vec::new();
        for e in after {
            match &e.event {
                ClusterEvent::TaskManagerLost { .. } if b.detected.is_none() => {
                    b.detected = Some(since(e.at))
                }
                ClusterEvent::FailoverStarted { .. } if b.failover.is_none() => {
                    b.failover = Some(since(e.at))
                }
                ClusterEvent::TasksDeployed { tasks, .. }
                    if b.failover.is_some() && b.deployed.is_none() =>
                {
                    b.deployed = Some(since(e.at));
                    deployed = tasks.iter().map(|t| t.attempt).collect();
                }
                ClusterEvent::SubtaskStateChanged {
                    attempt,
                    state: rill::graph::ExecutionState::Running,
                    ..
                } if deployed.contains(attempt) => b.running = Some(since(e.at)),
                ClusterEvent::InputReconnected { producer, .. } if deployed.contains(producer) => {
                    b.reconnected = Some(since(e.at))
                }
                _ => {}
            }
        }
        Some(b)
    }
}

/// When the output, counted in 100 ms buckets, is back at 95% of its rate over the 2 s before
/// `t0`: the first bucket from which the next second (10 buckets; fewer at the end of the
/// output) holds 95% of a second's worth. A sliding second, not single buckets: a paced source
/// never makes up lost time, so single buckets dip below 95% by jitter alone.
fn back_at_95(h: &RunHistory, t0: Duration) -> Option<Duration> {
    const WINDOW: Duration = Duration::from_millis(100);
    let bucket = |at: Duration| (at.as_millis() / WINDOW.as_millis()) as usize;
    let last = h.outputs.last()?.at;
    let mut counts = vec![0u64; bucket(last) + 1];
    for o in &h.outputs {
        counts[bucket(o.at)] += 1;
    }
    let (start, before) = (bucket(t0), 20usize);
    let hi = start.min(counts.len());
    let base: u64 = counts[start.saturating_sub(before).min(hi)..hi]
        .iter()
        .sum();
    let threshold = base as f64 / before as f64 * 0.95;
    if threshold <= 0.0 {
        return None;
    }
    (start..counts.len())
        .find(|&i| {
            let end = (i + 10).min(counts.len());
            let held: u64 = counts[i..end].iter().sum();
            held as f64 >= threshold * (end - i) as f64
        })
        .map(|i| WINDOW * i as u32)
}

/// The longest time without output between the first output and the last.
fn longest_stall(h: &RunHistory) -> Duration {
    h.outputs
        .windows(2)
        .map(|w| w[1].at.saturating_sub(w[0].at))
        .max()
        .unwrap_or_default()
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// The two runs side by side: job, figures and each checker's status, `<<` on every row that
/// differs. Returns the table and how many rows that judge differ (the job's outcome and each
/// checker's status; figures are measurements and may).
pub fn side_by_side(sim: &Summary, real: &Summary) -> (String, usize) {
    let mut out = String::new();
    let mark = |a: &str, b: &str| if a == b { "" } else { "  <<" };
    let _ = writeln!(out, "{:<22} {:<28} {:<28}", "", "simulated", "real");
    let _ = writeln!(
        out,
        "{:<22} {:<28} {:<28}{}",
        "job",
        sim.job,
        real.job,
        mark(&sim.job, &real.job)
    );
    for (name, value) in &sim.figures {
        let other = real
            .figures
            .iter()
            .find(|(n, _)| n == name)
            .map_or("-", |(_, v)| v.as_str());
        let _ = writeln!(out, "{name:<22} {value:<28} {other:<28}");
    }
    let mut differ = usize::from(sim.job != real.job);
    let checkers: std::collections::BTreeSet<&String> =
        sim.verdicts.keys().chain(real.verdicts.keys()).collect();
    for checker in checkers {
        let status = |s: &Summary| {
            s.verdicts
                .get(checker)
                .map_or("-".to_string(), |v| v.0.clone())
        };
        let (a, b) = (status(sim), status(real));
        if a != b {
            differ += 1;
        }
        let _ = writeln!(out, "{checker:<22} {a:<28} {b:<28}{}", mark(&a, &b));
    }
    for why in &real.not_applied {
        let _ = writeln!(out, "real run, {why}");
    }
    for how in &real.applied_as {
        let _ = writeln!(out, "real run, {how}");
    }
    (out, differ)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(mode: &str, delivery: &str) -> Summary {
        Summary {
            mode: mode.into(),
            job: "FINISHED".into(),
            figures: vec![("outputs".into(), "10".into())],
            verdicts: [
                (
                    "delivery".to_string(),
                    (delivery.to_string(), "lost 0".to_string()),
                ),
                (
                    "balance".to_string(),
                    ("not-checked".to_string(), "why".to_string()),
                ),
            ]
            .into_iter()
            .collect(),
            not_applied: vec!["partition of tm-1: not applied: no netns".into()],
            applied_as: vec!["oom-kill of tm-2: by the kernel's OOM killer".into()],
        }
    }

    #[test]
    fn the_breakdown_times_each_phase_from_the_kill() {
        use crate::events::RecordedEvent;
        use crate::fault::{Fault, FaultKind};
        use crate::history::{AppliedFault, OutputRecord};
        use crate::node::NodeName;
        use rill::events::{Deployment, LossCause};
        use rill::graph::{ExecutionAttemptId, ExecutionState, JobId, VertexId};

        let ms = Duration::from_millis;
        let attempt = ExecutionAttemptId {
            vertex: VertexId(0),
            subtask: 1,
            attempt: 1,
        };
        let ev = |at: u64, event: ClusterEvent| RecordedEvent {
            at: ms(at),
            node: NodeName::JobManager,
            event,
        };
        let mut h = RunHistory::default();
        let kill = FaultKind::Crash {
            target: NodeName::TaskManager(2),
            restart_after: None,
        };
        let mut fault = AppliedFault::planned(Fault::new(ms(5_000), kill));
        (fault.began_at, fault.effective) = (Some(ms(5_000)), true);
        h.faults.push(fault);
        h.events = vec![
            ev(
                5_010,
                ClusterEvent::TaskManagerLost {
                    taskmanager: "tm-2".into(),
                    instance: rill::graph::TaskManagerId(2),
                    cause: LossCause::ConnectionClosed("closed".into()),
                },
            ),
            ev(
                5_012,
                ClusterEvent::FailoverStarted {
                    job: JobId(1),
                    strategy: rill::config::FailoverStrategy::TaskManager,
                    cause: rill::events::FailoverCause::TaskFailed {
                        attempt,
                        error: "x".into(),
                    },
                    restart: vec![attempt.subtask_id()],
                    of: 4,
                    backoff: ms(0),
                    checkpoint: None,
                },
            ),
            ev(
                5_020,
                ClusterEvent::TasksDeployed {
                    job: JobId(1),
                    tasks: vec![Deployment {
                        attempt,
                        taskmanager: "tm-1".into(),
                        slot: Some(1),
                    }],
                    checkpoint: None,
                },
            ),
            ev(
                5_050,
                ClusterEvent::SubtaskStateChanged {
                    job: JobId(1),
                    attempt,
                    state: ExecutionState::Running,
                },
            ),
        ];
        // 10 records every 100 ms, none from 5.0 s to 5.3 s, then 10 again.
        let out = |at: u64| OutputRecord::new(ms(at), 1, 0, 0, None, None);
        h.outputs = (0..80u64)
            .filter(|i| !(50..53).contains(i))
            .flat_map(|i| (0..10).map(move |k| out(i * 100 + k)))
            .collect();
        let b = Breakdown::of(&h).expect("a TaskManager was killed");
        assert_eq!(b.detected, Some(ms(10)));
        assert_eq!(b.failover, Some(ms(12)));
        assert_eq!(b.deployed, Some(ms(20)));
        assert_eq!(b.running, Some(ms(50)));
        assert_eq!(b.reconnected, None);
        assert_eq!(b.back_at_95, Some(ms(300)));
        assert!(Breakdown::of(&RunHistory::default()).is_none());
        // A fault long after the last output has no rate to come back to.
        h.faults[0].began_at = Some(ms(60_000));
        assert_eq!(Breakdown::of(&h).and_then(|b| b.back_at_95), None);
    }

    #[test]
    fn a_summary_reads_back_as_written() {
        let s = summary("real", "pass");
        let text = s.render("x", 3);
        assert_eq!(Summary::parse(&text).unwrap(), s);
        assert!(Summary::parse("figure name=a value=1").is_err());
    }

    #[test]
    fn differing_verdicts_are_flagged_and_counted() {
        let (table, differ) = side_by_side(&summary("sim", "pass"), &summary("real", "FAIL"));
        assert_eq!(differ, 1);
        let row = table.lines().find(|l| l.starts_with("delivery")).unwrap();
        assert!(row.ends_with("<<"), "{row}");
        let row = table.lines().find(|l| l.starts_with("balance")).unwrap();
        assert!(!row.ends_with("<<"), "{row}");
        assert!(table.contains("not applied: no netns"));
        assert!(table.contains("real run, oom-kill of tm-2: by the kernel's OOM killer"));
        let (_, same) = side_by_side(&summary("sim", "pass"), &summary("real", "pass"));
        assert_eq!(same, 0);
        let failed = Summary {
            job: "FAILED".into(),
            ..summary("real", "pass")
        };
        assert_eq!(side_by_side(&summary("sim", "pass"), &failed).1, 1);
    }
}
