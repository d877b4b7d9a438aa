//! Bounds a scenario implies when it sets none: from its configuration (the failover
//! strategy, the heartbeat timeout, the restart back-off, the checkpoint interval) and its
//! fault plan. A checker holds every run to its scenario's bound or to the derived one, and
//! says which; only when neither exists is its verdict "not checked".

use std::time::Duration;

use rill::config::{Configuration, FailoverStrategy, LoadBalanceMode};
use rill::jobmanager::restart_backoff;

use super::recovery::DIP_HORIZON;
use crate::fault::{Fault, FaultKind};
use crate::scenario::Scenario;

/// A bound and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Bound<T> {
    /// The bound.
    pub value: T,
    /// "given", or how it was derived.
    pub source: String,
}

impl<T: Copy> Bound<T> {
    fn given(value: T) -> Self {
        Bound {
            value,
            source: "given".into(),
        }
    }
}

/// How long the JobManager may take to act on anything (a redeployment, a status change),
/// and a restarted task to be running again: scheduling, connecting, restoring state.
pub const REDEPLOY: Duration = Duration::from_secs(2);
/// How long a task on a TaskManager that lived through a cut-off can take to notice that its
/// connections to the log and the sink store died: the runtime's service call timeout (5 s)
/// and its longest retry back-off (2 s).
pub const STALE_CONNECTION: Duration = Duration::from_secs(7);

/// The longest a cut link waits before it tries a message it holds again: madsim's links,
/// like TCP's retransmission, try again after 1 ms and then twice as long each time, up to
/// this. A message a cut held for `d` lands up to `d` (at most this) after the heal.
pub const LINK_RETRY_MAX: Duration = Duration::from_secs(10);

/// How long a cut of `d` (`None`: for good) keeps a message sent as it began from its
/// receiver: the link tries it again 1, 3, 7, ... ms after it was sent (the wait doubling up
/// to [`LINK_RETRY_MAX`]), and the first try after the heal delivers it, with everything sent
/// after it on the link. Between `d` and twice `d`.
pub fn held_by_cut(d: Option<Duration>) -> Option<Duration> {
    let d = d?;
    let (mut at, mut wait) = (Duration::ZERO, Duration::from_millis(1));
    while at < d {
        at += wait;
        wait = (wait * 2).min(LINK_RETRY_MAX);
    }
    Some(at)
}

/// When everything a cut from `began` to `ended` held has landed: a message sent at `s` in
/// it lands at `s + held_by_cut(ended - s)`, and since the link's wait is under twice what it
/// already waited (and at most [`LINK_RETRY_MAX`]), that is before `ended` plus as long again
/// as the cut lasted, capped there.
pub fn cut_delivers_by(began: Duration, ended: Duration) -> Duration {
    ended + ended.saturating_sub(began).min(LINK_RETRY_MAX)
}

/// What output may lag by in a healthy job: buffer timeouts, a sink's flush.
pub const STEADY_STALL: Duration = Duration::from_secs(1);
/// How late a loss may be detected after `heartbeat.timeout`: the heartbeat that finds it
/// runs every `heartbeat.interval`, and the JobManager needs a moment to act.
pub const DETECTION_SLACK: Duration = Duration::from_secs(1);

/// What the configuration says about recovery.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long until a TaskManager that stopped answering is declared lost.
    pub detection: Duration,
    /// The longest back-off the restart strategy waits before redeploying.
    pub backoff: Duration,
    /// How often checkpoints are taken, if they are.
    pub checkpoint_interval: Option<Duration>,
    /// The failover strategy.
    pub strategy: FailoverStrategy,
    /// Balanced scheduling or not.
    pub balance: LoadBalanceMode,
}

impl Timing {
    /// The timing of a cluster configured by `config`.
    pub fn of(config: &Configuration) -> Self {
        Timing {
            detection: config.heartbeat_timeout() + config.heartbeat_interval() + DETECTION_SLACK,
            backoff: restart_backoff::from_config(config, 0).longest_backoff(),
            checkpoint_interval: config.checkpoint_interval(),
            strategy: config.failover_strategy(),
            balance: config.load_balance_mode(),
        }
    }

    /// How long output may pause without any fault: a transactional sink's output becomes
    /// visible once per checkpoint, so up to an interval (and its completion) apart.
    fn steady(&self, transactional: bool) -> Duration {
        match (transactional, self.checkpoint_interval) {
            (true, Some(every)) => 2 * every + STEADY_STALL,
            _ => STEADY_STALL,
        }
    }

    /// The longest one fault can keep a job's output from flowing: while it lasts (or until
    /// the TaskManager it took is declared lost), then the back-off, the redeployment, and
    /// the replay of at most a checkpoint interval.
    /// What one fault may add to the longest stall: a disruptive one its whole disruption;
    /// another (latency, packet loss, a failing checkpoint store, which holds a transactional
    /// sink's commits back) as long as it lasts, and a checkpoint interval.
    fn allowance(&self, fault: &Fault) -> Duration {
        match fault.kind.spec().disruptive {
            true => self.disruption(fault),
            false => {
                fault.duration().unwrap_or(self.detection)
                    + self.checkpoint_interval.unwrap_or_default()
            }
        }
    }

    fn disruption(&self, fault: &Fault) -> Duration {
        // A fault shorter than the detection may still be detected (a lost connection is
        // noticed at once, and the restarted tasks then wait for slots while it lasts).
        let held = fault
            .duration()
            .unwrap_or(self.detection)
            .max(self.detection);
        let replay = self.checkpoint_interval.unwrap_or_default();
        // A TaskManager that was cut off but lived on (paused, partitioned) keeps connections
        // that died meanwhile: tasks deployed to it find out by a call's timeout and retry.
        let stale = match fault.kind {
            FaultKind::Pause { .. }
            | FaultKind::Partition { .. }
            | FaultKind::LinkPartition { .. } => STALE_CONNECTION,
            _ => Duration::ZERO,
        };
        held + self.backoff + REDEPLOY + replay + stale
    }
}

/// The bounds of one scenario: given or derived.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// The longest interval without output.
    pub stall: Bound<Duration>,
    /// The longest recovery from one fault.
    pub recovery: Bound<Duration>,
    /// The largest task-count range across TaskManagers, if one applies.
    pub task_range: Option<Bound<u32>>,
    /// How soon after the last fault ended the job must finish, if that is known: given
    /// (`drain_within`), or derived by whoever knows the job's input time.
    pub drain: Option<Bound<Duration>>,
    /// The configuration's timing.
    pub timing: Timing,
}

/// What the job's graph says about the bounds.
#[derive(Debug, Clone, Copy, Default)]
pub struct JobShape {
    /// The most tasks one slot holds (the unit balanced scheduling spreads).
    pub tasks_per_slot: u32,
    /// How long its operators may hold input before output comes of it (its windows'
    /// sizes: [`rill::graph::JobGraph::output_hold`]): a healthy run's output pauses that long.
    pub output_hold: Duration,
}

impl Bounds {
    /// The bounds `s` gives, with the ones it does not give derived from it, from its job's
    /// `shape` and from `faults`, the faults that took effect in the run (a swarm's are drawn
    /// per seed).
    pub fn of(s: &Scenario, shape: JobShape, faults: &[&Fault]) -> Self {
        let timing = Timing::of(&s.config);
        let transactional = transactional_sink(s);
        let steady = timing.steady(transactional) + shape.output_hold;
        let disruptive: Vec<&Fault> = faults
            .iter()
            .copied()
            .filter(|f| f.kind.spec().disruptive)
            .collect();
        let stall = s.expect.max_stall.map(Bound::given).unwrap_or_else(|| {
            // Faults can follow one another: each can hold the output up for its own time.
            let faults: Duration = faults.iter().map(|f| timing.allowance(f)).sum();
            let windows = match shape.output_hold.is_zero() {
                true => String::new(),
                false => format!(" (windows {})", secs(shape.output_hold)),
            };
            Bound {
                value: steady + faults,
                source: format!(
                    "derived: steady {}{windows} + per fault its duration or detection {}, back-off {}, redeploy {}, replay",
                    secs(steady),
                    secs(timing.detection),
                    secs(timing.backoff),
                    secs(REDEPLOY)
                ),
            }
        });
        let recovery = s.expect.max_recovery.map(Bound::given).unwrap_or_else(|| {
            let worst = chained_disruption(&timing, &disruptive);
            // The rate is back only once the backlog the fault left is caught up: a margin of
            // a redeployment for that.
            Bound {
                value: worst + steady + REDEPLOY,
                source: "derived: the slowest fault's duration or detection, back-off, redeploy and replay, with the faults that struck before it was over".into(),
            }
        });
        let task_range = match (s.expect.max_task_range, timing.balance) {
            (Some(b), _) => Some(Bound::given(b)),
            (None, LoadBalanceMode::Tasks) => Some(Bound {
                value: shape.tasks_per_slot.max(1),
                source: "derived per deployment: 1 where its free slots allowed that, else the best they allowed and at least a slot's tasks (this)".into(),
            }),
            (None, _) => None,
        };
        Bounds {
            stall,
            recovery,
            task_range,
            drain: s.expect.drain_within.map(Bound::given),
            timing,
        }
    }
}

/// Whether `s`'s job writes through a transactional sink: its output becomes visible only
/// when a checkpoint completes.
pub fn transactional_sink(s: &Scenario) -> bool {
    s.job.params.get("sink").map(String::as_str) == Some("collect-transactional")
}

/// The longest disruption of one fault together with the faults that begin before its own
/// (and the dip it may still cause) is over: a recovery is measured from a fault to the
/// output's return, so every later fault that strikes meanwhile extends it.
fn chained_disruption(timing: &Timing, faults: &[&Fault]) -> Duration {
    let mut faults: Vec<&Fault> = faults.to_vec();
    faults.sort_by_key(|f| f.at);
    let mut worst = Duration::ZERO;
    for (i, first) in faults.iter().enumerate() {
        let mut end = first.at + timing.disruption(first);
        for next in &faults[i + 1..] {
            if next.at > end + DIP_HORIZON {
                break;
            }
            end = end.max(next.at + timing.disruption(next));
        }
        worst = worst.max(end - first.at);
    }
    worst
}

fn secs(d: Duration) -> String {
    format!("{:.3}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every message a cut held, whenever in the cut it was sent, lands by `cut_delivers_by`.
    #[test]
    fn a_cut_has_delivered_all_it_held_by_as_long_again_after_it_ends() {
        let ms = Duration::from_millis;
        for (began, ended) in [(0, 1), (0, 9), (5, 1_243), (100, 4_000), (0, 30_000)] {
            let (began, ended) = (ms(began), ms(ended));
            let by = cut_delivers_by(began, ended);
            let latest = (began.as_millis() as u64..ended.as_millis() as u64)
                .map(|s| ms(s) + held_by_cut(Some(ended - ms(s))).expect("a cut that ends"))
                .max()
                .expect("a cut of a millisecond at least");
            assert!(latest <= by, "{latest:?} > {by:?} for {began:?}..{ended:?}");
        }
        // Capped by the link's longest wait.
        assert_eq!(cut_delivers_by(ms(0), ms(60_000)), ms(70_000));
    }
}
