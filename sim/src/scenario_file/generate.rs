//! Scenarios drawn from a seed, valid by construction: bytes from a ChaCha8 stream seeded with
//! the seed, shaped by `arbitrary::Unstructured` into a cluster, a registered job that fits it,
//! a configuration and up to four faults on real nodes within the run.

use std::time::Duration;

use crate::{
    ClusterShape, DeliveryMode, Direction, Expectations, Fault, FaultKind, JobOutcome, NodeName,
    Scenario, StoreFailureMode,
};
use arbitrary::Unstructured;
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rill::api::registry::JOBS;
use rill::config::keys::{FAILOVER_STRATEGY, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT};
use rill::config::Configuration;
use rill::JobSpec;

use super::validate::{apply_memory, known_nodes};

type Draw<T> = arbitrary::Result<T>;

/// Bytes drawn per scenario; far more than a scenario consumes (an exhausted `Unstructured`
/// would still give valid, minimal values).
const ENTROPY: usize = 2048;

/// Faults start no later than this (bounded jobs here run for at most ~10 s).
const LATEST_FAULT: Duration = Duration::from_secs(20);

/// The scenario for `seed`; the same seed always gives the same scenario.
pub fn generate(seed: u64) -> Scenario {
    let mut bytes = vec![0u8; ENTROPY];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut bytes);
    draw_scenario(seed, &mut Unstructured::new(&bytes)).expect("every choice list is non-empty")
}

fn draw_scenario(seed: u64, u: &mut Unstructured) -> Draw<Scenario> {
    let cluster = ClusterShape {
        taskmanagers: u.int_in_range(1..=6)?,
        slots_per_taskmanager: u.int_in_range(1..=4)?,
        memory_mb: if u.ratio(1, 4)? {
            Some(u.int_in_range(256..=2048)?)
        } else {
            None
        },
    };
    let job = draw_job(u, cluster.taskmanagers * cluster.slots_per_taskmanager)?;
    let mut config = draw_config(u)?;
    apply_memory(&mut config, cluster.memory_mb);
    let run_for = Duration::from_secs(u.int_in_range(30..=90)?);
    let n = u.int_in_range(0..=4)?;
    let faults = (0..n)
        .map(|_| draw_fault(u, cluster.taskmanagers))
        .collect::<Draw<Vec<_>>>()?;
    // Without faults and with the default memory, the run must be exact (checkable for jobs
    // whose output type says it is one output per input).
    let provenance = rill::jobs::builtin()
        .output_checks(&job)
        .is_ok_and(|c| c.one_per_input());
    let expect = if faults.is_empty() && cluster.memory_mb.is_none() && provenance {
        Expectations {
            delivery: DeliveryMode::ExactlyOnce,
            job: Some(JobOutcome::Finished),
            ..Default::default()
        }
    } else {
        Expectations::default()
    };
    Ok(Scenario {
        name: format!("generated-{seed}"),
        description: format!("generated from seed {seed}"),
        cluster,
        job,
        config,
        run_for,
        faults,
        swarm: None,
        expect,
    })
}

fn draw_job(u: &mut Unstructured, slots: u32) -> Draw<JobSpec> {
    let name = u.choose(JOBS)?.name;
    let mut job = JobSpec::new(name)
        .with("parallelism", u.int_in_range(1..=slots)?)
        .with("records", u.int_in_range(1_000u32..=50_000)?)
        .with("rate", u.int_in_range(5_000u32..=20_000)?)
        .with("keys", u.int_in_range(1u32..=4096)?)
        .with("seed", u.int_in_range(0u32..=1_000)?)
        .with("sink", "collect");
    if u.ratio(1, 4)? {
        job = job.with("hot-key-per-mille", u.int_in_range(1u32..=900)?);
    }
    if name == "ad-stats" {
        job = job.with("window-ms", u.choose(&[250u32, 500, 1000, 2000])?);
    }
    Ok(job)
}

fn draw_config(u: &mut Unstructured) -> Draw<Configuration> {
    let timeout = u.choose(&["3s", "5s", "10s"])?;
    let failover = u.choose(&["full", "region", "taskmanager"])?;
    Ok(Configuration::from_pairs([
        (HEARTBEAT_INTERVAL, "1s"),
        (HEARTBEAT_TIMEOUT, *timeout),
        (FAILOVER_STRATEGY, *failover),
    ])
    .expect("fixed valid values"))
}

/// A multiple of 100 ms within `lo..=hi`.
fn millis(u: &mut Unstructured, lo: u64, hi: u64) -> Draw<Duration> {
    Ok(Duration::from_millis(
        u.int_in_range(lo / 100..=hi / 100)? * 100,
    ))
}

fn maybe_millis(u: &mut Unstructured, lo: u64, hi: u64) -> Draw<Option<Duration>> {
    Ok(if u.ratio(3, 4)? {
        Some(millis(u, lo, hi)?)
    } else {
        None
    })
}

fn draw_fault(u: &mut Unstructured, taskmanagers: u32) -> Draw<Fault> {
    let nodes = known_nodes(taskmanagers);
    let at = millis(u, 0, LATEST_FAULT.as_millis() as u64)?;
    let target = u.choose(&nodes)?.clone();
    let kind = match u.int_in_range(0..=8u8)? {
        0 => FaultKind::Crash {
            target,
            restart_after: maybe_millis(u, 100, 10_000)?,
        },
        1 => FaultKind::OomKill {
            target,
            restart_after: maybe_millis(u, 100, 10_000)?,
        },
        2 => FaultKind::Partition {
            target,
            direction: *u.choose(&[Direction::Both, Direction::Inbound, Direction::Outbound])?,
            heal_after: maybe_millis(u, 100, 10_000)?,
        },
        3 => {
            let others: Vec<&NodeName> = nodes.iter().filter(|n| **n != target).collect();
            let to = (*u.choose(&others)?).clone();
            FaultKind::LinkPartition {
                from: target,
                to,
                both_ways: u.arbitrary()?,
                heal_after: maybe_millis(u, 100, 10_000)?,
            }
        }
        4 => FaultKind::PacketLoss {
            rate: f64::from(u.int_in_range(1u32..=200)?) / 1000.0,
            duration: maybe_millis(u, 100, 10_000)?,
        },
        5 => {
            let min = Duration::from_millis(u.int_in_range(0..=20)?);
            let max = min + Duration::from_millis(u.int_in_range(0..=100)?);
            FaultKind::Latency {
                min,
                max,
                duration: maybe_millis(u, 100, 10_000)?,
            }
        }
        6 => FaultKind::Pause {
            target,
            duration: millis(u, 100, 10_000)?,
        },
        7 => FaultKind::ClockSkew {
            target,
            offset_ms: u.int_in_range(-5_000..=5_000)?,
        },
        _ => FaultKind::StoreFailure {
            mode: *u.choose(&[StoreFailureMode::Fail, StoreFailureMode::Stall])?,
            duration: millis(u, 100, 10_000)?,
        },
    };
    Ok(Fault::new(at, kind))
}
