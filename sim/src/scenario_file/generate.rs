//! Scenarios drawn from bytes, valid by construction: `arbitrary::Unstructured` shapes them
//! into a cluster, a registered job that fits it (its sink plain or two-phase), a
//! configuration (heartbeats, failover strategy, placement, checkpoints, restart strategy)
//! and up to a few faults on real nodes, at millisecond times across the job's lifetime, some
//! of them anchored to the job's own cycle (a checkpoint's trigger, acknowledgement or
//! completion, a failover, a redeployment). Each scenario's expectations are derived from its
//! plan ([`derive_expectations`]): the outcome, delivery guarantee and liveness bound that
//! every way the plan can play out must meet.
//!
//! [`generate`] draws the bytes from a ChaCha8 stream seeded with the seed (`--scenario
//! generated --seed N`); [`generate_from_bytes`] takes them as they come, from a fuzzer, and
//! draws the simulator's seed from them too. A [`Profile`] bounds the draws: the seeded
//! scenarios' ([`Profile::SEEDED`]) or the fuzzer's shorter ones ([`Profile::FUZZ`]).

use std::time::Duration;

use crate::fault::{Anchor, AnchorEvent};
use crate::{
    ClusterShape, DeliveryMode, Direction, Fault, FaultKind, NodeName, Scenario, StoreFailureMode,
};
use arbitrary::Unstructured;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rill::api::registry::JOBS;
use rill::config::keys::{
    CHECKPOINT_INTERVAL, CHECKPOINT_TIMEOUT, EXP_ATTEMPTS_BEFORE_RESET, EXP_BACKOFF_MULTIPLIER,
    EXP_INITIAL_BACKOFF, EXP_MAX_BACKOFF, FAILOVER_STRATEGY, FIXED_DELAY_ATTEMPTS,
    FIXED_DELAY_DELAY, FR_DELAY, FR_INTERVAL, FR_MAX_FAILURES, HEARTBEAT_INTERVAL,
    HEARTBEAT_TIMEOUT, LOAD_BALANCE_MODE, RESTART_STRATEGY,
};
use rill::config::Configuration;
use rill::JobSpec;

use super::derive::{derive_expectations, drain_bound, stopping_for_good};
use super::validate::{apply_memory, known_nodes};
use super::write::duration_str;

type Draw<T> = arbitrary::Result<T>;

/// Bytes drawn per seeded scenario; far more than a scenario consumes (an exhausted
/// `Unstructured` would still give valid, minimal values).
const ENTROPY: usize = 2048;

/// What a run of a generated scenario is given on top of the latest its faults can end and
/// its drain bound.
const RUN_SLACK: Duration = Duration::from_secs(10);

/// The bounds of what the generator draws.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// TaskManagers, fewest to most.
    pub taskmanagers: (u32, u32),
    /// Slots per TaskManager, fewest to most.
    pub slots: (u32, u32),
    /// The job's input records, fewest to most.
    pub records: (u32, u32),
    /// The job's input rate in records per second, lowest to highest.
    pub rate: (u32, u32),
    /// The most faults a scenario gets.
    pub max_faults: u32,
    /// The longest a fault that ends by itself lasts.
    pub max_fault_duration: Duration,
    /// Faults start within the job's input time (records / rate) plus this.
    pub faults_after_input: Duration,
    /// Heartbeat intervals to choose from (the timeout is 3, 5 or 10 of them).
    pub heartbeat_intervals: &'static [Duration],
    /// The shortest and longest checkpoint interval (when the scenario checkpoints).
    pub checkpoint_interval: (Duration, Duration),
    /// The shortest `run_for` (a run ends earlier when its job ends).
    pub min_run_for: Duration,
}

impl Profile {
    /// `--scenario generated --seed N`: up to 6 TaskManagers, up to 50,000 records over up to
    /// 10 s, up to four faults of up to 10 s.
    pub const SEEDED: Profile = Profile {
        taskmanagers: (1, 6),
        slots: (1, 4),
        records: (1_000, 50_000),
        rate: (5_000, 20_000),
        max_faults: 4,
        max_fault_duration: Duration::from_secs(10),
        faults_after_input: Duration::from_millis(500),
        heartbeat_intervals: &[Duration::from_millis(500), Duration::from_secs(1)],
        checkpoint_interval: (Duration::from_millis(100), Duration::from_secs(2)),
        min_run_for: Duration::from_secs(30),
    };

    /// The fuzzer's: small clusters, at most 10,000 records over at most 5 s, short
    /// heartbeats and faults, so that one input costs little wall time.
    pub const FUZZ: Profile = Profile {
        taskmanagers: (1, 4),
        slots: (1, 3),
        records: (200, 10_000),
        rate: (2_000, 20_000),
        max_faults: 4,
        max_fault_duration: Duration::from_secs(5),
        faults_after_input: Duration::from_millis(250),
        heartbeat_intervals: &[
            Duration::from_millis(200),
            Duration::from_millis(500),
            Duration::from_secs(1),
        ],
        checkpoint_interval: (Duration::from_millis(50), Duration::from_secs(1)),
        min_run_for: Duration::from_secs(5),
    };
}

/// The scenario for `seed` ([`Profile::SEEDED`]); the same seed always gives the same one.
pub fn generate(seed: u64) -> Scenario {
    let mut bytes = vec![0u8; ENTROPY];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    let name = format!("generated-{seed}");
    let description = format!("generated from seed {seed}");
    draw_scenario(
        &mut Unstructured::new(&bytes),
        &Profile::SEEDED,
        name,
        description,
    )
    .expect("every choice list is non-empty")
}

/// A scenario and the simulator seed to run it under, drawn from a fuzzer's input.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// The scenario (named `fuzz-<hash of the input>`).
    pub scenario: Scenario,
    /// The seed to run it under (madsim's scheduling and network).
    pub seed: u64,
}

/// The scenario `bytes` shape under `profile`, and the seed to run it under (its first eight
/// bytes): any input gives a valid scenario, the same input the same one.
pub fn generate_from_bytes(bytes: &[u8], profile: &Profile) -> Generated {
    let name = format!("fuzz-{:016x}", fnv1a(bytes));
    let mut u = Unstructured::new(bytes);
    let seed = u.arbitrary::<u64>().unwrap_or_default();
    let description = format!("drawn by the fuzzer; run with seed {seed}");
    let scenario =
        draw_scenario(&mut u, profile, name, description).expect("every choice list is non-empty");
    Generated { scenario, seed }
}

/// FNV-1a: the same input has the same name on every machine and toolchain.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn draw_scenario(
    u: &mut Unstructured,
    p: &Profile,
    name: String,
    description: String,
) -> Draw<Scenario> {
    let cluster = ClusterShape {
        taskmanagers: u.int_in_range(p.taskmanagers.0..=p.taskmanagers.1)?,
        slots_per_taskmanager: u.int_in_range(p.slots.0..=p.slots.1)?,
        memory_mb: if u.ratio(1, 4)? {
            Some(u.int_in_range(256..=2048)?)
        } else {
            None
        },
    };
    let job = draw_job(u, p, cluster.taskmanagers * cluster.slots_per_taskmanager)?;
    let mut config = draw_config(u, p)?;
    apply_memory(&mut config, cluster.memory_mb);
    let input = input_time(&job);
    let checkpoints = config.checkpoint_interval();
    let n = u.int_in_range(0..=p.max_faults)?;
    let mut drawn = (0..n)
        .map(|_| draw_fault(u, p, cluster.taskmanagers, input, checkpoints))
        .collect::<Draw<Vec<_>>>()?;
    drawn.sort_by_key(|(f, _)| f.at);
    let (faults, ends): (Vec<Fault>, Vec<Duration>) = drawn.into_iter().unzip();
    let mut scenario = Scenario {
        name,
        description,
        cluster,
        job,
        config,
        run_for: Duration::ZERO,
        faults,
        swarm: None,
        buggify: Vec::new(),
        expect: Default::default(),
    };
    // A fault that never ends and may leave the job waiting forever (for a node, a link, or
    // slots) gets an end: such a run stalls until it is cut off, which no stall or recovery
    // bound allows. Faults the job rides out or fails on stay as drawn.
    for i in stopping_for_good(&scenario) {
        give_end(&mut scenario.faults[i].kind, ends[i]);
    }
    // Long enough for every fault to have come and ended and the job to drain after it.
    let latest_end = scenario
        .faults
        .iter()
        .map(|f| latest_begin(f, input, checkpoints) + f.duration().unwrap_or_default())
        .max()
        .unwrap_or_default()
        .max(input);
    let run_for = latest_end + drain_bound(&scenario.config, input) + RUN_SLACK;
    scenario.run_for = Duration::from_secs(run_for.max(p.min_run_for).as_secs() + 1);
    let derived = derive_expectations(&scenario);
    scenario.expect = derived.expect;
    scenario.description = format!("{}: {}", scenario.description, derived.why.join("; "));
    debug_assert!(
        scenario.expect.delivery == DeliveryMode::Unchecked || scenario.expect.job.is_some()
    );
    Ok(scenario)
}

/// How long the job's paced input lasts.
fn input_time(job: &JobSpec) -> Duration {
    let get = |k: &str| job.params.get(k).and_then(|v| v.parse::<u64>().ok());
    match (get("records"), get("rate")) {
        (Some(records), Some(rate)) if rate > 0 => {
            Duration::from_secs_f64(records as f64 / rate as f64)
        }
        _ => Duration::ZERO,
    }
}

/// The latest a fault may begin: its time, or for an anchored one, when its event may come
/// at the latest in a job held up by the other faults (its numbered checkpoint's time, or its
/// `from`, plus the whole input and as long again for the holdups).
fn latest_begin(f: &Fault, input: Duration, checkpoints: Option<Duration>) -> Duration {
    match f.anchor {
        None => f.at,
        Some(a) => {
            let numbered = a.checkpoint.map_or(Duration::ZERO, |n| {
                checkpoints.unwrap_or_default() * n.min(u32::MAX as u64) as u32
            });
            f.at.max(numbered) + 2 * input + RUN_SLACK + a.offset
        }
    }
}

fn draw_job(u: &mut Unstructured, p: &Profile, slots: u32) -> Draw<JobSpec> {
    let name = u.choose(JOBS)?.name;
    let sink = *u.choose(&["collect", "collect-transactional"])?;
    let mut job = JobSpec::new(name)
        .with("parallelism", u.int_in_range(1..=slots)?)
        .with("records", u.int_in_range(p.records.0..=p.records.1)?)
        .with("rate", u.int_in_range(p.rate.0..=p.rate.1)?)
        .with("keys", u.int_in_range(1u32..=4096)?)
        .with("seed", u.int_in_range(0u32..=1_000)?)
        .with("sink", sink);
    if u.ratio(1, 4)? {
        job = job.with("hot-key-per-mille", u.int_in_range(1u32..=900)?);
    }
    if name == "ad-stats" {
        job = job.with("window-ms", u.choose(&[250u32, 500, 1000, 2000])?);
    }
    Ok(job)
}

fn draw_config(u: &mut Unstructured, p: &Profile) -> Draw<Configuration> {
    let interval = *u.choose(p.heartbeat_intervals)?;
    let timeout = interval * *u.choose(&[3u32, 5, 10])?;
    let failover = *u.choose(&["full", "region", "taskmanager"])?;
    let balance = *u.choose(&["none", "slots", "tasks"])?;
    let mut pairs: Vec<(&str, String)> = vec![
        (HEARTBEAT_INTERVAL, duration_str(interval)),
        (HEARTBEAT_TIMEOUT, duration_str(timeout)),
        (FAILOVER_STRATEGY, failover.to_string()),
        (LOAD_BALANCE_MODE, balance.to_string()),
    ];
    if u.ratio(3, 4)? {
        let (lo, hi) = p.checkpoint_interval;
        pairs.push((CHECKPOINT_INTERVAL, ms_str(ms_in(u, lo, hi)?)));
        if u.ratio(1, 4)? {
            pairs.push((CHECKPOINT_TIMEOUT, ms_str(ms_in(u, lo, hi * 5)?)));
        }
    }
    let ms = |u: &mut Unstructured, lo: u64, hi: u64| -> Draw<String> {
        Ok(ms_str(Duration::from_millis(u.int_in_range(lo..=hi)?)))
    };
    match u.int_in_range(0..=5u8)? {
        // Unset: exponential-delay with Flink's defaults if the job checkpoints, else none.
        0 => {}
        1 => pairs.push((RESTART_STRATEGY, "none".into())),
        2 | 3 => {
            pairs.push((RESTART_STRATEGY, "fixed-delay".into()));
            let attempts = *u.choose(&[0u32, 1, 2, 3, 10, 10])?;
            pairs.push((FIXED_DELAY_ATTEMPTS, attempts.to_string()));
            pairs.push((FIXED_DELAY_DELAY, ms(u, 0, 1_000)?));
        }
        4 => {
            pairs.push((RESTART_STRATEGY, "exponential-delay".into()));
            let initial = u.int_in_range(10..=500u64)?;
            pairs.push((EXP_INITIAL_BACKOFF, ms_str(Duration::from_millis(initial))));
            pairs.push((EXP_MAX_BACKOFF, ms(u, initial, 2_000)?));
            let multiplier = *u.choose(&["1.5", "2"])?;
            pairs.push((EXP_BACKOFF_MULTIPLIER, multiplier.into()));
            if u.ratio(1, 2)? {
                let attempts = u.int_in_range(1..=10u32)?;
                pairs.push((EXP_ATTEMPTS_BEFORE_RESET, attempts.to_string()));
            }
        }
        _ => {
            pairs.push((RESTART_STRATEGY, "failure-rate".into()));
            let max = u.int_in_range(1..=10u32)?;
            pairs.push((FR_MAX_FAILURES, max.to_string()));
            pairs.push((FR_INTERVAL, ms(u, 1_000, 60_000)?));
            pairs.push((FR_DELAY, ms(u, 0, 1_000)?));
        }
    }
    Ok(
        Configuration::from_pairs(pairs.iter().map(|(k, v)| (*k, v.as_str())))
            .expect("drawn values are valid"),
    )
}

/// A duration as the configuration reads it (whole milliseconds).
fn ms_str(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// Whole milliseconds within `lo..=hi`.
fn ms_in(u: &mut Unstructured, lo: Duration, hi: Duration) -> Draw<Duration> {
    let (lo, hi) = (lo.as_millis() as u64, hi.as_millis() as u64);
    Ok(Duration::from_millis(u.int_in_range(lo..=hi.max(lo))?))
}

/// A fault's duration: whole milliseconds from 10 ms up to the profile's longest.
fn duration(u: &mut Unstructured, p: &Profile) -> Draw<Duration> {
    ms_in(u, Duration::from_millis(10), p.max_fault_duration)
}

/// A duration, or (one in four) none: the fault never ends by itself.
fn maybe_duration(u: &mut Unstructured, p: &Profile) -> Draw<Option<Duration>> {
    Ok(if u.ratio(3, 4)? {
        Some(duration(u, p)?)
    } else {
        None
    })
}

/// Gives a fault that never ends by itself the end `d`.
fn give_end(kind: &mut FaultKind, d: Duration) {
    match kind {
        FaultKind::Crash {
            restart_after: end, ..
        }
        | FaultKind::OomKill {
            restart_after: end, ..
        }
        | FaultKind::Partition {
            heal_after: end, ..
        }
        | FaultKind::LinkPartition {
            heal_after: end, ..
        }
        | FaultKind::PacketLoss { duration: end, .. }
        | FaultKind::Latency { duration: end, .. } => *end = end.or(Some(d)),
        FaultKind::Pause { .. } | FaultKind::ClockSkew { .. } | FaultKind::StoreFailure { .. } => {}
    }
}

/// A fault, and the end it gets should it never end and that stop the job for good.
fn draw_fault(
    u: &mut Unstructured,
    p: &Profile,
    taskmanagers: u32,
    input: Duration,
    checkpoints: Option<Duration>,
) -> Draw<(Fault, Duration)> {
    let nodes = known_nodes(taskmanagers);
    let at = ms_in(u, Duration::ZERO, input + p.faults_after_input)?;
    // Mostly TaskManagers; the JobManager one time in eight, the external systems in four.
    let target = match u.int_in_range(0..=7u8)? {
        0 => NodeName::JobManager,
        1 | 2 => u.choose(&nodes[1 + taskmanagers as usize..])?.clone(),
        _ => NodeName::TaskManager(u.int_in_range(1..=taskmanagers)?),
    };
    // Crashes, partitions and pauses (what restarts tasks) twice or three times as often as
    // the rest.
    let kind = match u.int_in_range(0..=12u8)? {
        0..=2 => FaultKind::Crash {
            target,
            restart_after: maybe_duration(u, p)?,
        },
        3 => FaultKind::OomKill {
            target,
            restart_after: maybe_duration(u, p)?,
        },
        4 | 5 => FaultKind::Partition {
            target,
            direction: *u.choose(&[Direction::Both, Direction::Inbound, Direction::Outbound])?,
            heal_after: maybe_duration(u, p)?,
        },
        6 => {
            let others: Vec<&NodeName> = nodes.iter().filter(|n| **n != target).collect();
            let to = (*u.choose(&others)?).clone();
            FaultKind::LinkPartition {
                from: target,
                to,
                both_ways: u.arbitrary()?,
                heal_after: maybe_duration(u, p)?,
            }
        }
        7 => FaultKind::PacketLoss {
            rate: f64::from(u.int_in_range(1u32..=200)?) / 1000.0,
            duration: maybe_duration(u, p)?,
        },
        8 => {
            let min = Duration::from_millis(u.int_in_range(0..=20)?);
            let max = min + Duration::from_millis(u.int_in_range(0..=100)?);
            FaultKind::Latency {
                min,
                max,
                duration: maybe_duration(u, p)?,
            }
        }
        9 | 10 => FaultKind::Pause {
            target,
            duration: duration(u, p)?,
        },
        11 => FaultKind::ClockSkew {
            target,
            offset_ms: u.int_in_range(-5_000..=5_000)?,
        },
        _ => FaultKind::StoreFailure {
            mode: *u.choose(&[StoreFailureMode::Fail, StoreFailureMode::Stall])?,
            duration: duration(u, p)?,
        },
    };
    let end = duration(u, p)?;
    // One fault in three waits for a point of the job's cycle instead of a time.
    if !u.ratio(1, 3)? {
        return Ok((Fault::new(at, kind), end));
    }
    let fault = match draw_anchor(u, input, checkpoints)? {
        // A numbered checkpoint counts from the start, so its `from` is 0.
        a if a.checkpoint.is_some() => Fault::anchored(a, Duration::ZERO, kind),
        a => Fault::anchored(a, at, kind),
    };
    Ok((fault, end))
}

/// A point of the job's cycle: a checkpoint's barrier alignment (after its trigger), its store
/// write (after every acknowledgement), its commit (after its completion), or a failover's
/// back-off or restore; the checkpoint numbered one time in three, else the first from the
/// fault's time on.
fn draw_anchor(
    u: &mut Unstructured,
    input: Duration,
    checkpoints: Option<Duration>,
) -> Draw<Anchor> {
    let ms = |u: &mut Unstructured, hi: u64| -> Draw<Duration> {
        Ok(Duration::from_millis(u.int_in_range(0..=hi)?))
    };
    let events: &[AnchorEvent] = match checkpoints {
        Some(_) => &[
            AnchorEvent::CheckpointTriggered,
            AnchorEvent::CheckpointTriggered,
            AnchorEvent::CheckpointAcknowledged,
            AnchorEvent::CheckpointCompleted,
            AnchorEvent::FailoverStarted,
            AnchorEvent::TasksRedeployed,
        ],
        None => &[AnchorEvent::FailoverStarted, AnchorEvent::TasksRedeployed],
    };
    let event = *u.choose(events)?;
    let offset = match event {
        AnchorEvent::CheckpointTriggered => ms(u, 250)?,
        AnchorEvent::CheckpointAcknowledged => ms(u, 3)?,
        AnchorEvent::CheckpointCompleted => ms(u, 100)?,
        AnchorEvent::FailoverStarted => ms(u, 1_000)?,
        AnchorEvent::TasksRedeployed => ms(u, 100)?,
    };
    let checkpoint = match checkpoints {
        Some(every) if event.is_checkpoint() && u.ratio(1, 3)? => {
            let last = (input.as_millis() / every.as_millis().max(1)).max(1) as u64;
            Some(u.int_in_range(1..=last)?)
        }
        _ => None,
    };
    Ok(Anchor {
        event,
        checkpoint,
        offset,
    })
}
