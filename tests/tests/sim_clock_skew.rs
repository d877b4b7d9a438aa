//! Clock skew acts on processing time, and processing-time windows stay correct through it:
//! ad-stats with `time=processing` while one TaskManager's clock runs a minute ahead and
//! another's is stepped back.
#![cfg(madsim)]

use std::time::Duration;

use madsim::runtime::Runtime;
use rill::api::registry::{job_inputs, AdStats};
use rill::config::Configuration;
use rill::rpc::JobStatus;
use rill::JobSpec;
use rill_sim::cluster::{source_log_url, SimCluster, SimClusterSpec};
use rill_sim::{replay_command, NodeName};

const SEEDS: [u64; 3] = [1, 2, 3];
const SKEW_MS: i64 = 60_000;

/// Runs the job, skewing tm-1's clock a minute ahead 3 s in and stepping tm-2's back 5 s at 6 s;
/// returns every window it emitted with the TaskManager that emitted it.
async fn skewed_run() -> Vec<(String, AdStats)> {
    let spec = JobSpec::new("ad-stats")
        .with("parallelism", 4)
        .with("records", 100_000)
        .with("keys", 64)
        .with("rate", 10_000)
        .with("time", "processing")
        .with("sink", "collect");
    let inputs = job_inputs(&spec).expect("inputs").into_iter().collect();
    let config = Configuration::new()
        .with("taskmanager.load-balance.mode", "tasks")
        .unwrap();
    let cluster = SimCluster::start(SimClusterSpec {
        taskmanagers: 4,
        slots: 2,
        config,
        inputs,
        events: Default::default(),
        jobs: rill::jobs::builtin(),
    });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let job = cluster.submit(&spec.with("log", source_log_url()), |_| {});
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.clocks[&NodeName::TaskManager(1)].set_offset(SKEW_MS);
    // tm-2's clock is stepped 5 s back: windows it already fired must not open again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster.clocks[&NodeName::TaskManager(2)].set_offset(-5_000);
    let report = job.await.expect("client task").expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{report:?}");
    let stats = cluster.collect.decoded::<AdStats>().expect("decodes");
    stats
        .into_iter()
        .map(|(r, s)| (r.taskmanager.to_string(), s))
        .collect()
}

fn check(stats: &[(String, AdStats)]) {
    // Every event counted once, whichever clock assigned its window.
    let impressions: u64 = stats.iter().map(|(_, s)| s.impressions).sum();
    let clicks: u64 = stats.iter().map(|(_, s)| s.clicks).sum();
    assert_eq!((impressions, clicks), (100_000, 10_000));
    let mut windows: Vec<(u64, u64)> = stats.iter().map(|(_, s)| (s.ad, s.window_start)).collect();
    let n = windows.len();
    windows.sort_unstable();
    windows.dedup();
    assert_eq!(windows.len(), n, "a window fired twice for an ad");
    // The skew acted: tm-1's windows run a minute ahead of everyone else's.
    let latest = |on_tm1: bool| {
        stats
            .iter()
            .filter(|(tm, _)| (tm == "tm-1") == on_tm1)
            .map(|(_, s)| s.window_start)
            .max()
            .expect("windows on both sides")
    };
    let ahead = latest(true) as i64 - latest(false) as i64;
    assert!(
        ahead >= SKEW_MS - 5_000,
        "tm-1's windows are only {ahead} ms ahead"
    );
}

fn run_seed(seed: u64) {
    let mut rt = Runtime::with_seed_and_config(seed, madsim::Config::default());
    rt.set_time_limit(Duration::from_secs(120));
    check(&rt.block_on(skewed_run()));
}

#[test]
fn processing_time_windows_count_every_event_once_under_clock_skew() {
    for seed in SEEDS {
        if std::panic::catch_unwind(|| run_seed(seed)).is_err() {
            panic!(
                "seed {seed} failed; replay with:\n  {}",
                replay_command("clock_skew_under_seed_from_env", seed)
            );
        }
    }
}

/// Runs the seed in MADSIM_TEST_SEED (default 1), as the replay command does.
#[test]
fn clock_skew_under_seed_from_env() {
    let seed = std::env::var("MADSIM_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    run_seed(seed);
}
