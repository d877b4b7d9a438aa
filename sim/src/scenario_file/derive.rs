//! What a scenario's fault plan lets a run be held to: the job's outcome, the delivery
//! guarantee and a liveness bound, derived from the plan and the configuration the way the
//! named scenarios (`scenarios/specs/*.toml`) reason about theirs. The generator gives every
//! generated scenario these expectations ([`derive_expectations`]).
//!
//! The derivation is conservative: it claims an outcome only where every way the plan can play
//! out leads there, and says "not checked" (no `job`, `delivery = "unchecked"`) where the plan
//! can legitimately go either way. Each fault is read for what it may do to the job:
//!
//! - **restart tasks**: a crash or OOM kill of a TaskManager (its connections close, so it is
//!   declared lost at once), or a cut-off of one (a partition, a pause, a cut link between it
//!   and the JobManager) long enough for a heartbeat timeout to notice. Each may cost the
//!   restart strategy up to [`FAILOVERS_PER_LOSS`] failovers. A cut-off that ends
//!   [`UNNOTICED_MARGIN`] plus a heartbeat interval before the timeout goes unnoticed; it
//!   only delays the job.
//! - **refuse data connections**: a (re)deployment's consumers connect to their producers, and
//!   the simulator refuses a connection across a cut link (and drops connects at the packet
//!   loss rate), which fails the task: a partition of a TaskManager (until it heals or is
//!   declared lost), a cut link between two TaskManagers, or packet loss may cost a failover
//!   per redeployment while it lasts, one every back-off ([`refused_deployments`]), if it may
//!   meet one: the first (it begins at once) or any other (some fault restarts tasks).
//! - **take a TaskManager for good** (a crash without restart, a partition that never heals):
//!   the job needs the others to hold all its slots, or it waits for slots forever.
//! - **stop the job for good**: the log server or the sink store gone for good, a link between
//!   two nodes the data must cross cut for good.
//! - **anything**: a JobManager crash, or a JobManager cut off past the unnoticed margin (every
//!   TaskManager sees it lost, and it every TaskManager): no outcome is claimed.
//! - **nothing that matters**: packet loss, latency, clock skew (the generated jobs run on event
//!   time), a failing checkpoint store (checkpoints fail or expire; the job goes on), and the
//!   checkpoint store's node cut off or down (the JobManager keeps the latest checkpoint).
//!
//! Then:
//! - **job**: `finished` when nothing may stop the job for good, no TaskManager it needs may be
//!   gone for good, and the restart strategy allows every failover the faults may cost
//!   (simulated on `rill`'s own back-off, [`tolerates`]); `failed` when a fault at a fixed time
//!   certainly takes a TaskManager that certainly runs tasks while the job certainly still runs
//!   and the restart strategy allows no restart; else not checked.
//! - **delivery** (only for a job expected to finish): `exactly-once` if no fault may restart
//!   a task; else the guarantee of the failover strategy and the sink: `full` and `region`
//!   restore a consistent cut, so the two-phase sink (`collect-transactional`) is exactly-once
//!   and the plain `collect` at-least-once (the replay since the restored checkpoint, or the
//!   whole input without checkpoints, is written again); `taskmanager` restarts only the lost
//!   TaskManager's tasks while the rest run on, so losses and replays are fault-accounted.
//!   A job whose outputs do not name their input records is compared with a fault-free
//!   reference run, which can only say exactly-once, and only for a deterministic output
//!   (`wordcount` names the record that made a word's n-th count, which depends on how the
//!   channels interleave unless there is one source subtask).
//! - **drain_within** (only for a job expected to finish, with faults): once every fault has
//!   ended the job must still detect a loss, back off, redeploy, wait out connections that
//!   died while it was cut off and a registration that timed out, and then replay at most its
//!   whole input: [`drain_bound`].

use std::collections::BTreeSet;
use std::time::Duration;

use rill::config::{Configuration, FailoverStrategy};
use rill::jobmanager::restart_backoff;
use rill::jobs::JobRegistry;

use crate::check::bounds::{held_by_cut, REDEPLOY, STALE_CONNECTION};
use crate::fault::{Direction, Fault, FaultKind};
use crate::node::NodeName;
use crate::scenario::{DeliveryMode, Expectations, JobOutcome, Scenario};

/// Failovers one lost TaskManager may cost the restart strategy: its loss, and a task that
/// failed on its own (a consumer whose producer died) and was reported before the loss.
pub const FAILOVERS_PER_LOSS: u32 = 2;

/// A cut-off that ends this much plus a heartbeat interval before `heartbeat.timeout` is not
/// noticed: the last heartbeat answered before it may be an interval old, and answers take
/// their time.
pub const UNNOTICED_MARGIN: Duration = Duration::from_millis(500);

/// How long a TaskManager that registered during a cut-off may wait for the answer before it
/// tries again (`taskmanager/mod.rs`: 10 s).
pub const REGISTRATION_WAIT: Duration = Duration::from_secs(10);

/// Slack on top of every derived drain bound: the last commit, the job's end reaching the
/// client.
pub const DRAIN_SLACK: Duration = Duration::from_secs(5);

/// A fault must come this long after the job's submission, and this long before its input
/// can have ended, to certainly hit a running job.
const RUNNING_MARGIN: Duration = Duration::from_millis(300);

/// By when the job's first deployment has opened its data connections.
const FIRST_DEPLOYMENT: Duration = Duration::from_millis(300);

/// How long a redeployment takes to open its data connections after its back-off.
const DEPLOY: Duration = Duration::from_millis(10);

/// More failovers than this count as unbounded.
const MANY: u32 = 1_000;

/// The first back-off the restart strategy waits.
fn first_backoff(config: &Configuration) -> Duration {
    let mut backoff = restart_backoff::from_config(config, 0);
    backoff.notify_failure(Duration::from_secs(1));
    backoff.backoff()
}

/// Deployments a fault that refuses data connections for `d` (`None`: for good) may fail,
/// one every `spacing` (a back-off and a redeployment): each fails a task, a failover.
pub fn refused_deployments(d: Option<Duration>, spacing: Duration) -> u32 {
    match d {
        None => MANY,
        Some(d) => (d.as_nanos() / spacing.as_nanos().max(1)).min(MANY as u128) as u32 + 1,
    }
}

/// What a plan lets a run be held to, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// The expectations.
    pub expect: Expectations,
    /// One line per conclusion: why the job, delivery and liveness are expected so (or not
    /// checked).
    pub why: Vec<String>,
}

/// What one fault may do to the job (see the module docs).
#[derive(Debug, Default)]
struct Impact {
    /// Failovers it may cost.
    failovers: u32,
    /// While it lasts (`Some(None)`: for good), a data connection opened by a (re)deployment
    /// may be refused: a cut of a TaskManager's links, or packet loss.
    refuses: Option<Option<Duration>>,
    /// The TaskManager it may take for good.
    gone: Option<u32>,
    /// Why it may stop the job for good.
    stuck: Option<String>,
    /// Why nothing can be claimed.
    wild: Option<String>,
}

/// The job's shape and timing, as far as the plan's reading needs it.
struct Job<'a> {
    config: &'a Configuration,
    taskmanagers: u32,
    slots: u32,
    parallelism: u32,
    /// How long its paced input takes to read at the least: `records / rate`.
    input: Duration,
}

impl Job<'_> {
    /// A cut-off of `d` (`None`: for good) goes unnoticed by the heartbeats.
    fn unnoticed(&self, d: Option<Duration>) -> bool {
        let limit = self
            .config
            .heartbeat_timeout()
            .saturating_sub(self.config.heartbeat_interval() + UNNOTICED_MARGIN);
        d.is_some_and(|d| d < limit)
    }

    /// A cut-off of `d` is certainly noticed (past the detection checker's bound).
    fn surely_noticed(&self, d: Option<Duration>) -> bool {
        d.is_none_or(|d| d > self.detection())
    }

    /// The latest a cut-off TaskManager is declared lost after the cut began.
    fn detection(&self) -> Duration {
        self.config.heartbeat_timeout()
            + self.config.heartbeat_interval()
            + crate::check::bounds::DETECTION_SLACK
    }

    /// Whether every TaskManager runs some task whatever the placement: the others together
    /// cannot hold the job's slots.
    fn every_taskmanager_busy(&self) -> bool {
        self.parallelism > (self.taskmanagers - 1) * self.slots
    }
}

/// The expectations a run of `s` (a scenario of a built-in job) can be held to, derived from
/// its plan and configuration (see the module docs); its own `expect` is ignored.
pub fn derive_expectations(s: &Scenario) -> Derived {
    derive_with(s, &rill::jobs::builtin())
}

/// [`derive_expectations`] for a scenario whose job is one of `jobs`.
pub fn derive_with(s: &Scenario, jobs: &JobRegistry) -> Derived {
    let a = analyse(s);
    let job = &a.job;
    let mut why = Vec::new();
    let stuck = a
        .impacts
        .iter()
        .find_map(|i| i.wild.clone().or_else(|| i.stuck.clone()))
        .or_else(|| a.short_of_slots())
        .or_else(|| {
            (!tolerates(&s.config, a.failovers)).then(|| {
                format!(
                    "the faults may cost up to {} failovers, more than the restart strategy allows",
                    a.failovers
                )
            })
        });
    let outcome = match (stuck, certain_failure(job, s)) {
        (_, Some(reason)) => {
            why.push(format!("job failed: {reason}"));
            Some(JobOutcome::Failed)
        }
        (Some(reason), None) => {
            why.push(format!("job not checked: {reason}"));
            None
        }
        (None, None) => {
            let restarts = if a.failovers > 0 {
                format!(
                    "the restart strategy allows the up to {} failovers the faults may cost",
                    a.failovers
                )
            } else {
                "no fault may restart a task".to_string()
            };
            why.push(format!("job finished: {restarts}"));
            Some(JobOutcome::Finished)
        }
    };
    let delivery = match outcome {
        Some(JobOutcome::Finished) => {
            let (mode, reason) = delivery(s, jobs, a.failovers > 0, job);
            why.push(format!("delivery {}: {reason}", mode.name()));
            mode
        }
        _ => {
            why.push("delivery unchecked: the job may not finish".into());
            DeliveryMode::Unchecked
        }
    };
    let drain_within = (outcome == Some(JobOutcome::Finished) && !s.faults.is_empty()).then(|| {
        let bound = drain_bound(&s.config, job.input);
        why.push(format!(
            "drain within {}: detection, back-off, redeployment, stale connections, a registration and the whole input again",
            crate::fault::format_duration(bound)
        ));
        bound
    });
    Derived {
        expect: Expectations {
            delivery,
            job: outcome,
            drain_within,
            ..Expectations::default()
        },
        why,
    }
}

/// The faults of `s` (by index) that may stop its job for good: that never end, and may leave
/// it waiting forever for a node, a link or slots (rather than fail it, or be ridden out).
/// Such a run stalls until `run_for`, which every run's stall and recovery bounds fail; the
/// generator gives these faults an end.
pub fn stopping_for_good(s: &Scenario) -> Vec<usize> {
    let a = analyse(s);
    let short = a.short_of_slots().is_some();
    (0..s.faults.len())
        .filter(|&i| {
            let impact = &a.impacts[i];
            impact.stuck.is_some() || (short && impact.gone.is_some())
        })
        .collect()
}

/// What every fault of a plan may do, and what that adds up to.
struct Analysis<'a> {
    job: Job<'a>,
    impacts: Vec<Impact>,
    /// The failovers the faults may cost together.
    failovers: u32,
    /// Whether the restart strategy restarts at all (else a lost TaskManager fails the job,
    /// and nothing waits for slots).
    restarts: bool,
}

fn analyse(s: &Scenario) -> Analysis<'_> {
    let job = Job {
        config: &s.config,
        taskmanagers: s.cluster.taskmanagers.max(1),
        slots: s.cluster.slots_per_taskmanager.max(1),
        parallelism: param(s, "parallelism").unwrap_or(2) as u32,
        input: input_time(s),
    };
    let impacts: Vec<Impact> = s.faults.iter().map(|f| impact(&job, f)).collect();
    let losses: u32 = impacts.iter().map(|i| i.failovers).sum();
    // Deployments open data connections: the first at once, the others after failovers.
    let spacing = first_backoff(&s.config) + DEPLOY;
    let refused: u32 = s
        .faults
        .iter()
        .zip(&impacts)
        .filter_map(|(f, i)| Some((f, i.refuses?)))
        .filter(|(f, _)| losses > 0 || (f.anchor.is_none() && f.at <= FIRST_DEPLOYMENT))
        .map(|(_, d)| refused_deployments(d, spacing))
        .fold(0u32, u32::saturating_add);
    let failovers = losses.saturating_add(refused);
    Analysis {
        restarts: tolerates(&s.config, 1),
        job,
        impacts,
        failovers,
    }
}

impl Analysis<'_> {
    /// Why the job may wait for slots forever: TaskManagers that may be gone for good leave
    /// too few for its parallelism, and a restart would need them.
    fn short_of_slots(&self) -> Option<String> {
        let gone: BTreeSet<u32> = self.impacts.iter().filter_map(|i| i.gone).collect();
        let job = &self.job;
        let left = job.taskmanagers.saturating_sub(gone.len() as u32) * job.slots;
        (self.restarts && left < job.parallelism).then(|| {
            let names: Vec<String> = gone.iter().map(|n| format!("tm-{n}")).collect();
            format!(
                "{} may never come back, and the other TaskManagers' {left} slots cannot hold parallelism {}",
                names.join(", "),
                job.parallelism
            )
        })
    }
}

/// A numeric job parameter.
fn param(s: &Scenario, name: &str) -> Option<u64> {
    s.job.params.get(name).and_then(|v| v.parse().ok())
}

/// How long the job's paced input takes at the least (`records / rate`; 0 if unpaced).
pub fn input_time(s: &Scenario) -> Duration {
    match (param(s, "records"), param(s, "rate")) {
        (Some(records), Some(rate)) if rate > 0 => {
            Duration::from_secs_f64(records as f64 / rate as f64)
        }
        _ => Duration::ZERO,
    }
}

/// The longest a job whose input takes `input` may take to finish after its last fault
/// ended, under `config`: a loss to detect, the longest back-off, a redeployment, connections
/// that died during a cut-off, a registration sent into one, two checkpoint intervals (the
/// two-phase sink's last commit), the whole input replayed, and a slack of 5 s (`DRAIN_SLACK`).
pub fn drain_bound(config: &Configuration, input: Duration) -> Duration {
    let detection = config.heartbeat_timeout()
        + config.heartbeat_interval()
        + crate::check::bounds::DETECTION_SLACK;
    let backoff = restart_backoff::from_config(config, 0).longest_backoff();
    let commits = 2 * config.checkpoint_interval().unwrap_or_default();
    let whole = detection
        + backoff
        + REDEPLOY
        + STALE_CONNECTION
        + REGISTRATION_WAIT
        + commits
        + input
        + DRAIN_SLACK;
    // Whole milliseconds, so the bound prints as the file format writes it.
    Duration::from_millis(whole.as_millis() as u64)
}

/// Whether the restart strategy `config` configures allows `failures` failovers, however
/// close together they come (each as soon as the previous restart's back-off allows).
pub fn tolerates(config: &Configuration, failures: u32) -> bool {
    let mut backoff = restart_backoff::from_config(config, 0);
    let mut now = Duration::from_secs(1);
    for _ in 0..failures.min(MANY) {
        backoff.notify_failure(now);
        if !backoff.can_restart() {
            return false;
        }
        now += backoff.backoff() + Duration::from_millis(1);
    }
    true
}

/// The fault's reading (see the module docs).
fn impact(job: &Job, f: &Fault) -> Impact {
    let lost = |tm: u32, d: Option<Duration>| Impact {
        failovers: FAILOVERS_PER_LOSS,
        gone: d.is_none().then_some(tm),
        ..Impact::default()
    };
    // A TaskManager cut off from the JobManager for `d`.
    let cut_off = |tm: u32, d: Option<Duration>| match job.unnoticed(d) {
        true => Impact::default(),
        false => lost(tm, d),
    };
    let jm_cut = |d: Option<Duration>| {
        match job.unnoticed(d) {
        true => Impact::default(),
        false => Impact {
            wild: Some(format!(
                "{f}: the JobManager cut off past the heartbeat timeout loses every TaskManager, and they it"
            )),
            // For good: the job waits for slots that never register again.
            stuck: d
                .is_none()
                .then(|| format!("{f}: no TaskManager can register with the JobManager again")),
            ..Impact::default()
        },
    }
    };
    let needed_for_good = |node: &NodeName, d: Option<Duration>| match (node, d) {
        (NodeName::SourceLog | NodeName::SinkStore, None) => Impact {
            stuck: Some(format!(
                "{f}: the job's sources or sinks wait for {node} forever"
            )),
            ..Impact::default()
        },
        _ => Impact::default(),
    };
    match &f.kind {
        FaultKind::Crash {
            target,
            restart_after,
        }
        | FaultKind::OomKill {
            target,
            restart_after,
        } => match target {
            NodeName::JobManager => Impact {
                wild: Some(format!("{f}: a JobManager crash loses the job")),
                ..Impact::default()
            },
            NodeName::TaskManager(tm) => lost(*tm, *restart_after),
            node => needed_for_good(node, *restart_after),
        },
        // A partition holds what it cut off past its heal, until the link's next try: the
        // heartbeats sent after the heal wait behind what it held.
        FaultKind::Partition {
            target, heal_after, ..
        } => match target {
            NodeName::JobManager => jm_cut(held_by_cut(*heal_after)),
            // Until it heals, or is declared lost: nothing is deployed to it then.
            NodeName::TaskManager(tm) => Impact {
                refuses: Some(Some(
                    heal_after.unwrap_or(Duration::MAX).min(job.detection()),
                )),
                ..cut_off(*tm, held_by_cut(*heal_after))
            },
            node => needed_for_good(node, *heal_after),
        },
        FaultKind::Pause { target, duration } => match target {
            NodeName::JobManager => jm_cut(Some(*duration)),
            NodeName::TaskManager(tm) => cut_off(*tm, Some(*duration)),
            _ => Impact::default(),
        },
        FaultKind::LinkPartition {
            from,
            to,
            heal_after,
            ..
        } => link(f, from, to, *heal_after, &cut_off),
        FaultKind::PacketLoss { duration, .. } => Impact {
            refuses: Some(*duration),
            ..Impact::default()
        },
        FaultKind::Latency { .. }
        | FaultKind::ClockSkew { .. }
        | FaultKind::StoreFailure { .. } => Impact::default(),
    }
}

/// A cut link's reading: between the JobManager and a TaskManager it is that TaskManager cut
/// off; between two TaskManagers, or a TaskManager and the log or the sink store, the data
/// that must cross it waits (for good, if it never heals; a connection opened meanwhile may
/// time out and fail its task); the JobManager talks to no external node but the checkpoint
/// store, which no job needs to finish.
fn link(
    f: &Fault,
    from: &NodeName,
    to: &NodeName,
    heal: Option<Duration>,
    cut_off: &dyn Fn(u32, Option<Duration>) -> Impact,
) -> Impact {
    use NodeName::{JobManager, SinkStore, SourceLog, TaskManager};
    let data = |what: &str| match heal {
        None => Impact {
            stuck: Some(format!("{f}: {what} never crosses the cut link again")),
            ..Impact::default()
        },
        Some(_) => Impact::default(),
    };
    match (from, to) {
        (JobManager, TaskManager(tm)) | (TaskManager(tm), JobManager) => {
            cut_off(*tm, held_by_cut(heal))
        }
        (TaskManager(_), TaskManager(_)) => Impact {
            refuses: Some(heal),
            ..data("the data between the two TaskManagers")
        },
        (TaskManager(_), SourceLog | SinkStore) | (SourceLog | SinkStore, TaskManager(_)) => {
            match heal {
                None => data("what the TaskManager's tasks read or write"),
                // The service clients retry, as they do for the node cut off.
                Some(_) => Impact::default(),
            }
        }
        _ => Impact::default(),
    }
}

/// Why the job certainly fails, if it does: the restart strategy allows no restart, and a
/// fault at a fixed time certainly takes a TaskManager that certainly runs tasks, while the
/// job certainly still runs (past its deployment, before its paced input can have ended), with
/// no JobManager crash that may come first.
fn certain_failure(job: &Job, s: &Scenario) -> Option<String> {
    if tolerates(&s.config, 1) || !job.every_taskmanager_busy() {
        return None;
    }
    let latest = job.input.checked_sub(RUNNING_MARGIN)?;
    let jm_crash = |f: &Fault| {
        matches!(
            &f.kind,
            FaultKind::Crash {
                target: NodeName::JobManager,
                ..
            } | FaultKind::OomKill {
                target: NodeName::JobManager,
                ..
            }
        )
    };
    let mut fixed: Vec<&Fault> = s.faults.iter().filter(|f| f.anchor.is_none()).collect();
    fixed.sort_by_key(|f| f.at);
    for f in fixed {
        let Some(lost_by) = certain_loss(job, f) else {
            continue;
        };
        let earlier_jm_crash = s
            .faults
            .iter()
            .any(|g| jm_crash(g) && (g.anchor.is_some() || g.at <= lost_by));
        if f.at >= RUNNING_MARGIN && lost_by <= latest && !earlier_jm_crash {
            return Some(format!(
                "{f} takes a TaskManager that runs tasks (parallelism {} needs every one of the {} x {} slots' TaskManagers) while the job runs, and the restart strategy allows no restart",
                job.parallelism, job.taskmanagers, job.slots
            ));
        }
    }
    None
}

/// When the fault certainly has a TaskManager declared lost, if it does: a crash at once (its
/// connections close), a cut-off past the detection bound by then.
fn certain_loss(job: &Job, f: &Fault) -> Option<Duration> {
    let cut = |d: Option<Duration>| job.surely_noticed(d).then(|| f.at + job.detection());
    match &f.kind {
        FaultKind::Crash {
            target: NodeName::TaskManager(_),
            ..
        }
        | FaultKind::OomKill {
            target: NodeName::TaskManager(_),
            ..
        } => Some(f.at),
        FaultKind::Partition {
            target: NodeName::TaskManager(_),
            heal_after,
            direction: Direction::Both | Direction::Inbound | Direction::Outbound,
        } => cut(*heal_after),
        FaultKind::Pause {
            target: NodeName::TaskManager(_),
            duration,
        } => cut(Some(*duration)),
        FaultKind::LinkPartition {
            from: NodeName::JobManager,
            to: NodeName::TaskManager(_),
            heal_after,
            ..
        }
        | FaultKind::LinkPartition {
            from: NodeName::TaskManager(_),
            to: NodeName::JobManager,
            heal_after,
            ..
        } => cut(*heal_after),
        _ => None,
    }
}

/// The delivery guarantee of a run that finishes, and why; `restarts`: some fault may restart
/// tasks.
fn delivery(s: &Scenario, jobs: &JobRegistry, restarts: bool, job: &Job) -> (DeliveryMode, String) {
    let transactional =
        s.job.params.get("sink").map(String::as_str) == Some("collect-transactional");
    let strategy = s.config.failover_strategy();
    let (mode, reason) = match (restarts, strategy, transactional) {
        (false, _, _) => (
            DeliveryMode::ExactlyOnce,
            "nothing restarts, so nothing is replayed".to_string(),
        ),
        (true, FailoverStrategy::Full | FailoverStrategy::Region, true) => (
            DeliveryMode::ExactlyOnce,
            format!("{strategy} failover restores a consistent cut and the two-phase sink commits only what it covers"),
        ),
        (true, FailoverStrategy::Full | FailoverStrategy::Region, false) => (
            DeliveryMode::AtLeastOnce,
            format!("{strategy} failover replays from the restored checkpoint (or the start) into a sink that already wrote some of it"),
        ),
        (true, FailoverStrategy::TaskManager, _) => (
            DeliveryMode::FaultAccounted,
            "taskmanager failover restarts only the lost tasks: what live producers sent them meanwhile is dropped, and their replay may repeat what a sink wrote".to_string(),
        ),
    };
    let checks = jobs.output_checks(&s.job);
    let traced = checks.as_ref().is_ok_and(|c| c.one_per_input())
        && jobs.inputs(&s.job).is_ok_and(|i| !i.is_empty());
    if traced {
        return (mode, reason);
    }
    // Compared with a fault-free reference run: exactly-once or nothing.
    if mode != DeliveryMode::ExactlyOnce {
        return (
            DeliveryMode::Unchecked,
            format!("{reason}, and this job's outputs name no input record, so only exactly-once (against a reference run) can be checked"),
        );
    }
    // A running count naming the record it counted depends on how records from several
    // source subtasks meet (as does anything any fault, even latency, reorders).
    let names_counted_record = s.job.name == "wordcount";
    if names_counted_record && job.parallelism > 1 && !s.faults.is_empty() {
        return (
            DeliveryMode::Unchecked,
            "wordcount's n-th count of a word names the line it came from, which depends on how its source subtasks' records interleave, which any fault changes".into(),
        );
    }
    (
        mode,
        format!("{reason}; compared with the fault-free reference run"),
    )
}
