//! The back-off checker: the restart strategy the JobManager applied against the one the
//! configuration gives (`restart-strategy.*`, Flink's `RestartBackoffTimeStrategy`).
//!
//! The harness replays every failure the JobManager handled (each `FailoverStarted` and the
//! `RestartsExhausted` that ends a job) through the strategy the scenario's configuration
//! gives and asks of each job:
//! - every failure the strategy allows is a failover, announcing the back-off the strategy
//!   gives for it (none where the JobManager skips the delay: a lost TaskManager under
//!   `taskmanager` failover, `restart_backoff::skips_delay`); the first it refuses ends the
//!   job with `RestartsExhausted`, and nothing restarts after that;
//! - no restarted subtask is redeployed before the back-off of its job's latest failover is
//!   over. The JobManager keeps one restart time per job, which each failover sets anew, so a
//!   later failover that skips its delay (a lost TaskManager under `taskmanager` failover)
//!   also ends an earlier one's wait; Flink waits per failover. That is the runtime's rule,
//!   and this checks it, not Flink's.
//!
//! `none` and `fixed-delay` (what the scenarios use) are stated here, independently of the
//! runtime's code, so that a bug in the runtime's strategy fails too; `failure-rate` and
//! `exponential-delay` (with its jitter) are replayed through the runtime's own port of Flink's
//! (`restart_backoff::from_config`, seeded with the job id as the JobManager seeds it), which
//! its unit tests hold to Flink's: for those, only the JobManager's use of it is checked.
//!
//! So a strategy that miscounts its attempts, a delay that does not grow, or a redeployment
//! that does not wait fails here, even where the output could not show it.

use std::collections::BTreeMap;
use std::time::Duration;

use rill::config::{keys, Configuration, RestartStrategyKind};
use rill::events::ClusterEvent;
use rill::graph::JobId;
use rill::jobmanager::restart_backoff::{self, RestartBackoff};

use super::secs;
use crate::history::{RunHistory, Verdict};
use crate::node::NodeName;

const NAME: &str = "back-off";

/// Event times of different sources may differ by the clock's grain; the JobManager reads
/// failure times in whole milliseconds.
const GRAIN: Duration = Duration::from_millis(1);

/// What the harness expects of a job's failures: stated here where the strategy is simple,
/// else the runtime's strategy replayed.
#[derive(Clone, Copy)]
enum Oracle {
    NoRestart,
    FixedDelay { attempts: u32, delay: Duration },
    Replayed,
}

impl Oracle {
    /// As `restart_backoff::from_config` chooses (Flink's factory loader): an explicit
    /// `restart-strategy.type` wins; without one, a checkpointed job gets exponential delay
    /// and any other none.
    fn of(config: &Configuration) -> Oracle {
        if config.get_raw(keys::RESTART_STRATEGY).is_none() {
            return match config.checkpoint_interval() {
                Some(_) => Oracle::Replayed,
                None => Oracle::NoRestart,
            };
        }
        match config.restart_strategy() {
            RestartStrategyKind::None => Oracle::NoRestart,
            RestartStrategyKind::FixedDelay => Oracle::FixedDelay {
                attempts: config.fixed_delay_attempts(),
                delay: config.fixed_delay_delay(),
            },
            _ => Oracle::Replayed,
        }
    }
}

/// One job's strategy as the harness replays it, and what it is waiting for.
struct Replay {
    oracle: Oracle,
    /// When the job was submitted: the JobManager times failures from there (and rounds them
    /// to milliseconds, so the origin matters at a failure-rate window's edge).
    submitted: Duration,
    strategy: Box<dyn RestartBackoff>,
    failures: u32,
    /// The latest failover: when the wait for its redeployment is over, and what it restarts.
    waiting: Option<(Duration, Vec<rill::ids::SubtaskId>)>,
    exhausted: Option<Duration>,
}

/// `job`'s replay, begun with the strategy the JobManager built for it.
fn replay<'a>(
    jobs: &'a mut BTreeMap<JobId, Replay>,
    job: JobId,
    config: &Configuration,
) -> &'a mut Replay {
    jobs.entry(job).or_insert_with(|| Replay {
        oracle: Oracle::of(config),
        submitted: Duration::ZERO,
        // Seeded with the job id, as the JobManager seeds exponential-delay's jitter.
        strategy: restart_backoff::from_config(config, job.0),
        failures: 0,
        waiting: None,
        exhausted: None,
    })
}

impl Replay {
    /// The strategy, as the harness holds the job to it.
    fn describe(&self) -> String {
        match self.oracle {
            Oracle::NoRestart => "none (no restarts)".into(),
            Oracle::FixedDelay { attempts, delay } => {
                format!("fixed-delay ({attempts} restart(s) allowed, {delay:?} apart)")
            }
            Oracle::Replayed => self.strategy.describe(),
        }
    }

    /// The next failure, at `at`: whether the job may restart, and after what back-off.
    fn decide(&mut self, at: Duration) -> (bool, Duration) {
        self.failures += 1;
        self.strategy
            .notify_failure(at.saturating_sub(self.submitted));
        match self.oracle {
            Oracle::NoRestart => (false, Duration::ZERO),
            Oracle::FixedDelay { attempts, delay } => (self.failures <= attempts, delay),
            Oracle::Replayed => (self.strategy.can_restart(), self.strategy.backoff()),
        }
    }
}

/// Checks the JobManager's restarts of each job against the strategy `config` gives.
pub fn restart_backoff(h: &RunHistory, config: &Configuration) -> Verdict {
    let mut jobs: BTreeMap<JobId, Replay> = BTreeMap::new();
    let jm = h.events.iter().filter(|e| e.node == NodeName::JobManager);
    for e in jm {
        let fail = |summary: &str, evidence: String| Verdict::fail(NAME, summary, evidence);
        match &e.event {
            ClusterEvent::JobSubmitted { job, .. } => {
                replay(&mut jobs, *job, config).submitted = e.at;
            }
            ClusterEvent::FailoverStarted {
                job,
                strategy: failover,
                cause,
                restart,
                backoff,
                ..
            } => {
                let r = replay(&mut jobs, *job, config);
                if let Some(at) = r.exhausted {
                    return fail(
                        "a job restarted after its restarts were exhausted",
                        format!(
                            "{job} failed over at {} after RestartsExhausted at {}",
                            secs(e.at),
                            secs(at)
                        ),
                    );
                }
                let (may_restart, gives) = r.decide(e.at);
                if !may_restart {
                    return fail(
                        "a failover the restart strategy does not allow",
                        format!(
                            "{job}'s failure {} at {}: {} allows no more restarts, yet the JobManager failed over",
                            r.failures,
                            secs(e.at),
                            r.describe()
                        ),
                    );
                }
                let expected = match restart_backoff::skips_delay(config, *failover, cause) {
                    true => Duration::ZERO,
                    false => gives,
                };
                if backoff.abs_diff(expected) > GRAIN {
                    return fail(
                        "a failover announced a back-off its restart strategy does not give",
                        format!(
                            "{job}'s failure {} at {}: announced back-off {}, {} gives {}",
                            r.failures,
                            secs(e.at),
                            secs(*backoff),
                            r.describe(),
                            secs(expected)
                        ),
                    );
                }
                r.waiting = Some((e.at + *backoff, restart.clone()));
            }
            ClusterEvent::RestartsExhausted { job, .. } => {
                let r = replay(&mut jobs, *job, config);
                if r.decide(e.at).0 {
                    return fail(
                        "restarts exhausted before the restart strategy was",
                        format!(
                            "{job}'s failure {} at {}: the JobManager gave up, yet {} allows a restart",
                            r.failures,
                            secs(e.at),
                            r.describe()
                        ),
                    );
                }
                r.exhausted = Some(e.at);
            }
            ClusterEvent::TasksDeployed { job, tasks, .. } => {
                let Some(r) = jobs.get_mut(job) else { continue };
                if let Some(at) = r.exhausted {
                    return fail(
                        "a job redeployed after its restarts were exhausted",
                        format!(
                            "{job} deployed at {} after RestartsExhausted at {}",
                            secs(e.at),
                            secs(at)
                        ),
                    );
                }
                let Some((due, restart)) = &r.waiting else {
                    continue;
                };
                let early = tasks
                    .iter()
                    .find(|t| restart.contains(&t.attempt.subtask_id()));
                if let Some(t) = early.filter(|_| e.at + GRAIN < *due) {
                    return fail(
                        "a restarted subtask was redeployed before its back-off was over",
                        format!(
                            "{} deployed at {}, its failover's back-off is over at {}",
                            t.attempt,
                            secs(e.at),
                            secs(*due)
                        ),
                    );
                }
                if early.is_some() {
                    r.waiting = None;
                }
            }
            _ => {}
        }
    }
    let failures: u32 = jobs.values().map(|r| r.failures).sum();
    if failures == 0 {
        return Verdict::not_checked(NAME, "no failure reached the restart strategy");
    }
    let described: Vec<String> = jobs
        .iter()
        .filter(|(_, r)| r.failures > 0)
        .map(|(job, r)| {
            let end = match r.exhausted {
                Some(at) => format!(", exhausted at {}", secs(at)),
                None => String::new(),
            };
            format!("{job}: {} failure(s), {}{end}", r.failures, r.describe())
        })
        .collect();
    Verdict::pass(
        NAME,
        format!(
            "every failover's back-off as the restart strategy gives it, no redeployment before it ({})",
            described.join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::tests::jm_event as at;
    use crate::events::RecordedEvent;
    use rill::config::FailoverStrategy;
    use rill::events::{Deployment, FailoverCause, LossCause};
    use rill::graph::{SubtaskId, VertexId};

    const JOB: JobId = JobId(1);

    fn subtask() -> SubtaskId {
        SubtaskId::new(VertexId(0), 0)
    }

    fn failover(ms: u64, backoff_ms: u64, strategy: FailoverStrategy, lost: bool) -> RecordedEvent {
        let cause = match lost {
            true => FailoverCause::TaskManagerLost {
                taskmanager: "tm-1".into(),
                cause: LossCause::ConnectionClosed("closed".into()),
            },
            false => FailoverCause::TaskFailed {
                attempt: subtask().attempt(0),
                error: "boom".into(),
            },
        };
        at(
            ms,
            ClusterEvent::FailoverStarted {
                job: JOB,
                strategy,
                cause,
                restart: vec![subtask()],
                of: 1,
                backoff: Duration::from_millis(backoff_ms),
                checkpoint: None,
            },
        )
    }

    fn deployed(ms: u64, attempt: u32) -> RecordedEvent {
        at(
            ms,
            ClusterEvent::TasksDeployed {
                job: JOB,
                tasks: vec![Deployment {
                    attempt: subtask().attempt(attempt),
                    taskmanager: "tm-1".into(),
                    slot: Some(0),
                }],
                checkpoint: None,
            },
        )
    }

    fn exhausted(ms: u64) -> RecordedEvent {
        let strategy = "fixed-delay".into();
        at(ms, ClusterEvent::RestartsExhausted { job: JOB, strategy })
    }

    /// Fixed delay of 100 ms, two restarts allowed.
    fn fixed_delay() -> Configuration {
        Configuration::default()
            .with("restart-strategy.type", "fixed-delay")
            .and_then(|c| c.with("restart-strategy.fixed-delay.attempts", "2"))
            .and_then(|c| c.with("restart-strategy.fixed-delay.delay", "100ms"))
            .expect("valid")
    }

    fn judge(events: Vec<RecordedEvent>, config: &Configuration) -> Verdict {
        let h = RunHistory {
            events,
            ..RunHistory::default()
        };
        restart_backoff(&h, config)
    }

    #[test]
    fn restarts_as_the_strategy_gives_them_pass() {
        let region = FailoverStrategy::Region;
        let events = vec![
            deployed(0, 0),
            failover(1_000, 100, region, false),
            deployed(1_100, 1),
            failover(2_000, 100, region, true),
            deployed(2_150, 2),
            exhausted(3_000),
        ];
        let v = judge(events, &fixed_delay());
        assert!(v.passed && v.checked, "{v:?}");
        assert!(v.summary.contains("3 failure(s)"), "{}", v.summary);
    }

    #[test]
    fn a_back_off_the_strategy_does_not_give_fails() {
        let v = judge(
            vec![failover(1_000, 0, FailoverStrategy::Region, false)],
            &fixed_delay(),
        );
        assert!(!v.passed && v.summary.contains("does not give"), "{v:?}");
        // A lost TaskManager under taskmanager failover skips the delay, unless told not to.
        let tm = FailoverStrategy::TaskManager;
        assert!(judge(vec![failover(1_000, 0, tm, true)], &fixed_delay()).passed);
        let waits = fixed_delay()
            .with(rill::config::keys::TM_FAILOVER_IMMEDIATE, "false")
            .expect("valid");
        assert!(!judge(vec![failover(1_000, 0, tm, true)], &waits).passed);
    }

    #[test]
    fn a_redeployment_before_the_back_off_fails() {
        let region = FailoverStrategy::Region;
        let events = vec![failover(1_000, 100, region, false), deployed(1_050, 1)];
        let v = judge(events, &fixed_delay());
        assert!(
            !v.passed && v.summary.contains("before its back-off"),
            "{v:?}"
        );
    }

    #[test]
    fn restarts_counted_wrong_fail_either_way() {
        let region = FailoverStrategy::Region;
        // Given up at the second failure, with two restarts allowed.
        let early = vec![failover(1_000, 100, region, false), exhausted(2_000)];
        let v = judge(early, &fixed_delay());
        assert!(!v.passed && v.summary.contains("exhausted before"), "{v:?}");
        // A third restart, with two allowed.
        let late = vec![
            failover(1_000, 100, region, false),
            failover(2_000, 100, region, false),
            failover(3_000, 100, region, false),
        ];
        let v = judge(late, &fixed_delay());
        assert!(!v.passed && v.summary.contains("does not allow"), "{v:?}");
        // And anything after the end.
        let after = vec![exhausted(1_000), failover(2_000, 0, region, false)];
        let none = Configuration::default()
            .with("restart-strategy.type", "none")
            .unwrap();
        let v = judge(after, &none);
        assert!(
            !v.passed && v.summary.contains("after its restarts"),
            "{v:?}"
        );
    }

    /// A checkpointed job with no strategy set gets exponential delay with jitter, seeded with
    /// its id: the harness draws the same back-off.
    #[test]
    fn exponential_delay_is_replayed_with_the_jobs_seed() {
        let config = Configuration::default()
            .with("execution.checkpointing.interval", "1s")
            .expect("valid");
        let mut strategy = restart_backoff::from_config(&config, JOB.0);
        strategy.notify_failure(Duration::from_secs(1));
        let drawn = strategy.backoff().as_millis() as u64;
        let region = FailoverStrategy::Region;
        assert!(judge(vec![failover(1_000, drawn, region, false)], &config).passed);
        let v = judge(vec![failover(1_000, drawn + 50, region, false)], &config);
        assert!(!v.passed && v.summary.contains("does not give"), "{v:?}");
    }

    /// At most one failure in 10 s: a second 4 s after the first ends the job.
    #[test]
    fn failure_rate_counts_failures_within_its_interval() {
        let config = Configuration::default()
            .with("restart-strategy.type", "failure-rate")
            .and_then(|c| {
                c.with(
                    "restart-strategy.failure-rate.max-failures-per-interval",
                    "1",
                )
            })
            .and_then(|c| c.with("restart-strategy.failure-rate.failure-rate-interval", "10s"))
            .and_then(|c| c.with("restart-strategy.failure-rate.delay", "100ms"))
            .expect("valid");
        let region = FailoverStrategy::Region;
        let submitted = at(
            500,
            ClusterEvent::JobSubmitted {
                job: JOB,
                name: "j".into(),
            },
        );
        let ends = vec![
            submitted.clone(),
            failover(1_000, 100, region, false),
            exhausted(5_000),
        ];
        let v = judge(ends, &config);
        assert!(v.passed && v.checked, "{v:?}");
        let goes_on = vec![
            submitted.clone(),
            failover(1_000, 100, region, false),
            failover(5_000, 100, region, false),
        ];
        assert!(!judge(goes_on, &config).passed);
        // Eleven seconds apart, the first has left the interval.
        let later = vec![
            submitted,
            failover(1_000, 100, region, false),
            failover(12_000, 100, region, false),
        ];
        assert!(judge(later, &config).passed);
    }

    #[test]
    fn without_failures_nothing_is_checked() {
        let v = judge(vec![deployed(0, 0)], &fixed_delay());
        assert!(v.passed && !v.checked, "{v:?}");
    }
}
