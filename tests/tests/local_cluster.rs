//! End-to-end runs on real tokio: a JobManager and TaskManagers in one process on loopback TCP.
#![cfg(not(madsim))]

use rill::api::registry::AdStats;
use rill::cluster::LocalCluster;
use rill::config::Configuration;
use rill::connectors::log::{GeneratedLog, KeySkew, PartitionedLog};
use rill::connectors::log_service::serve_log;
use rill::connectors::sink_service::serve_sink_store;
use rill::rpc::JobStatus;
use rill::JobSpec;
use rill_sim::expected::verify_keyed_count;

fn config(slots: u32) -> Configuration {
    Configuration::new()
        .with("taskmanager.numberOfTaskSlots", &slots.to_string())
        .expect("valid")
}

/// The log keyed-count reads for these parameters (the job's own defaults otherwise).
fn generated(seed: u64, partitions: u32, records: u64, keys: u64) -> GeneratedLog {
    GeneratedLog {
        seed,
        partitions,
        records_per_partition: Some(records.div_ceil(partitions as u64)),
        keys,
        key_skew: KeySkew::Sequential,
        payload_bytes: 8,
        timestamp_step_ms: 1,
    }
}

/// keyed-count over the log `generated(5, 8, 40_000, 97)`, without a sink yet.
fn keyed_count_40k() -> JobSpec {
    JobSpec::new("keyed-count")
        .with("parallelism", 4)
        .with("partitions", 8)
        .with("records", 40_000)
        .with("keys", 97)
        .with("seed", 5)
}

#[tokio::test]
async fn keyed_count_output_is_exactly_the_expected_result() {
    let cluster = LocalCluster::start(4, config(2)).await.expect("cluster");
    let spec = keyed_count_40k().with("sink", "collect");
    let report = cluster
        .run_job(&spec, |_| {}, |_| {})
        .await
        .expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{report:?}");
    assert_eq!((report.records_in, report.records_out), (40_000, 40_000));
    let checked =
        verify_keyed_count(&cluster.collect, &generated(5, 8, 40_000, 97)).expect("exact output");
    assert_eq!(checked, 40_000);
    // 8 subtasks (4 source chains + 4 count chains) over 4 TaskManagers x 2 slots.
    assert_eq!(
        report
            .tasks_per_taskmanager
            .iter()
            .map(|(_, n)| n)
            .sum::<u32>(),
        8
    );
    cluster.shutdown();
}

#[tokio::test]
async fn ad_stats_windows_count_every_event_once() {
    let cluster = LocalCluster::start(2, config(2)).await.expect("cluster");
    let spec = JobSpec::new("ad-stats")
        .with("records", 20_000)
        .with("keys", 16)
        .with("sink", "collect");
    let report = cluster
        .run_job(&spec, |_| {}, |_| {})
        .await
        .expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{report:?}");
    let stats = cluster.collect.decoded::<AdStats>().expect("decodes");
    let impressions: u64 = stats.iter().map(|(_, s)| s.impressions).sum();
    let clicks: u64 = stats.iter().map(|(_, s)| s.clicks).sum();
    assert_eq!((impressions, clicks), (20_000, 2_000));
    // Each (ad, window) fires exactly once.
    let mut keys: Vec<(u64, u64)> = stats.iter().map(|(_, s)| (s.ad, s.window_start)).collect();
    let n = keys.len();
    keys.sort_unstable();
    keys.dedup();
    assert_eq!(keys.len(), n, "a window fired twice");
    cluster.shutdown();
}

/// Serves the input logs of `spec` on loopback; returns the `log` parameter that reaches them.
async fn log_server(
    spec: &JobSpec,
    config: &Configuration,
) -> (String, tokio::task::JoinHandle<()>) {
    let topics = rill::api::registry::job_inputs(spec).expect("inputs");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("rill://{}", listener.local_addr().unwrap());
    let server = serve_log(listener, topics.into_iter().collect(), config.clone());
    (url, tokio::spawn(server))
}

#[tokio::test]
async fn sources_read_every_topic_of_a_log_server_exactly_once() {
    let cluster = LocalCluster::start(4, config(2)).await.expect("cluster");
    let spec = keyed_count_40k().with("sink", "collect");
    let (url, server) = log_server(&spec, &config(2)).await;
    let report = cluster
        .run_job(&spec.clone().with("log", &url), |_| {}, |_| {})
        .await
        .expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{report:?}");
    let checked =
        verify_keyed_count(&cluster.collect, &generated(5, 8, 40_000, 97)).expect("exact output");
    assert_eq!(checked, 40_000);
    server.abort();

    // Two topics (impressions, clicks) from one server.
    let spec = JobSpec::new("ad-stats")
        .with("records", 20_000)
        .with("keys", 16)
        .with("sink", "collect");
    let (url, server) = log_server(&spec, &config(2)).await;
    let before = cluster.collect.take_batches();
    assert!(!before.is_empty());
    let report = cluster
        .run_job(&spec.with("log", &url), |_| {}, |_| {})
        .await
        .expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{report:?}");
    let stats = cluster.collect.decoded::<AdStats>().expect("decodes");
    let impressions: u64 = stats.iter().map(|(_, s)| s.impressions).sum();
    let clicks: u64 = stats.iter().map(|(_, s)| s.clicks).sum();
    assert_eq!((impressions, clicks), (20_000, 2_000));
    server.abort();
    cluster.shutdown();
}

#[tokio::test]
async fn sinks_write_through_a_served_sink_store_exactly_once_with_transactions() {
    let cluster = LocalCluster::start(4, config(2)).await.expect("cluster");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("rill://{}", listener.local_addr().unwrap());
    let served = rill::connectors::CollectStore::new();
    let server = tokio::spawn(serve_sink_store(listener, served.clone(), config(2), None));
    for sink in ["collect", "collect-transactional"] {
        let spec = keyed_count_40k()
            .with("sink", sink)
            .with("sink-store", &url);
        let report = cluster
            .run_job(&spec, |_| {}, |_| {})
            .await
            .expect("submitted");
        assert_eq!(report.status, JobStatus::Finished, "{sink}: {report:?}");
        // Every record in the served store by the time the job is FINISHED; none in-process.
        let checked = verify_keyed_count(&served, &generated(5, 8, 40_000, 97))
            .unwrap_or_else(|e| panic!("{sink}: {e}"));
        assert_eq!(checked, 40_000);
        assert!(cluster.collect.is_empty());
        served.take_batches();
    }
    server.abort();
    cluster.shutdown();
}

#[tokio::test]
async fn a_log_parameter_that_is_not_a_service_address_is_refused() {
    let cluster = LocalCluster::start(1, config(2)).await.expect("cluster");
    let spec = JobSpec::new("keyed-count").with("log", "kafka://broker:9092");
    let err = cluster.run_job(&spec, |_| {}, |_| {}).await.unwrap_err();
    assert!(
        err.to_string().contains("expected rill://HOST:PORT"),
        "{err}"
    );
    cluster.shutdown();
}

#[tokio::test]
async fn wordcount_counts_every_word() {
    let cluster = LocalCluster::start(2, config(2)).await.expect("cluster");
    let spec = JobSpec::new("wordcount")
        .with("records", 5_000)
        .with("sink", "collect");
    let report = cluster
        .run_job(&spec, |_| {}, |_| {})
        .await
        .expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{report:?}");
    let log = generated(1, 2, 5_000, 1024);
    let mut batch = Vec::new();
    let mut words = 0;
    for p in 0..log.partitions() {
        log.read(p, 0, 10_000, &mut batch).expect("read");
    }
    for r in &batch {
        words += rill::api::registry::words_of(r).len();
    }
    assert_eq!(cluster.collect.len(), words);
    cluster.shutdown();
}

#[tokio::test]
async fn invalid_jobs_are_rejected_with_a_reason() {
    let cluster = LocalCluster::start(1, config(2)).await.expect("cluster");
    for (spec, expected) in [
        (JobSpec::new("no-such-job"), "unknown job 'no-such-job'"),
        (
            JobSpec::new("keyed-count").with("parallelism", 0),
            "parallelism 0",
        ),
        (
            JobSpec::new("keyed-count").with("colour", "red"),
            "unknown parameter 'colour'",
        ),
        (
            JobSpec::new("keyed-count").with("records", "many"),
            "invalid parameter 'records'",
        ),
    ] {
        let err = cluster
            .run_job(&spec, |_| {}, |_| {})
            .await
            .expect_err("rejected");
        assert!(
            err.to_string().contains(expected),
            "{err} should mention {expected}"
        );
    }
    // The JobManager keeps serving after rejections.
    let ok = JobSpec::new("keyed-count").with("records", 100);
    assert_eq!(
        cluster
            .run_job(&ok, |_| {}, |_| {})
            .await
            .expect("runs")
            .status,
        JobStatus::Finished
    );
    cluster.shutdown();
}

#[tokio::test]
async fn losing_a_taskmanager_fails_the_job_with_the_reason() {
    let config = config(2)
        .with("heartbeat.interval", "100ms")
        .unwrap()
        .with("heartbeat.timeout", "500ms")
        .unwrap();
    let cluster = LocalCluster::start(2, config).await.expect("cluster");
    // Unbounded and paced, so the job is still running when tm-1 dies.
    let spec = JobSpec::new("keyed-count")
        .with("records", 0)
        .with("rate", 1000)
        .with("parallelism", 2);
    let run = cluster.run_job(&spec, |_| {}, |_| {});
    let kill = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        cluster.kill_taskmanager(0);
        cluster.kill_taskmanager(1);
    };
    let (report, ()) = tokio::join!(run, kill);
    let report = report.expect("job reported");
    assert_eq!(report.status, JobStatus::Failed);
    let message = report.message.unwrap_or_default();
    assert!(
        message.contains("TaskManager tm-") && message.contains("lost"),
        "{message}"
    );
}

#[tokio::test]
async fn a_slow_sink_throttles_the_source_with_bounded_memory() {
    // One slot per TaskManager: the keyed exchange crosses TaskManagers over remote,
    // credit-based channels as well as local ones.
    let config = config(1).with("heartbeat.interval", "100ms").unwrap();
    let cluster = LocalCluster::start(2, config).await.expect("cluster");
    let spec = JobSpec::new("keyed-count")
        .with("parallelism", 2)
        .with("records", 50_000_000)
        .with("sink-rate", 20_000);
    let samples = std::sync::Mutex::new(Vec::new());
    let run = cluster.run_job(
        &spec,
        |_| {},
        |r| {
            samples
                .lock()
                .unwrap()
                .push((r.elapsed_ms, r.records_in, r.records_out))
        },
    );
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(2_500), run)
            .await
            .is_err(),
        "the job cannot finish"
    );
    let samples = samples.into_inner().unwrap();
    let &(elapsed_ms, records_in, records_out) = samples.last().expect("status reports");
    assert!(elapsed_ms >= 1_500, "only {elapsed_ms} ms observed");
    // The sink takes 20,000 records/s; unthrottled the source would emit millions per second.
    assert!(
        records_out <= 20 * elapsed_ms + 5_000,
        "sink ran too fast: {records_out} in {elapsed_ms} ms"
    );
    // In flight: bounded by subpartition queues, credits and partial buffers (~1,170 records per
    // 32 KiB buffer, at most ~10 buffers per channel, 4 channels).
    assert!(
        records_in <= records_out + 60_000,
        "source emitted {records_in}, sink took {records_out}"
    );
    let backlog = samples
        .iter()
        .map(|(_, i, o)| i.saturating_sub(*o))
        .max()
        .unwrap_or(0);
    assert!(
        backlog <= 60_000,
        "source ran {backlog} records ahead of the sink"
    );
    for tm in &cluster.taskmanagers {
        let peak = tm.memory.report().peak_bytes;
        let buffers_and_tasks =
            2 * 1024 * 1024 + 2 * rill::config::Configuration::new().task_overhead_bytes();
        assert!(peak <= buffers_and_tasks, "{}: peak {peak} bytes", tm.name);
    }
    cluster.shutdown();
}

/// Producers that finish before their remote consumers ask (sources without partitions) must
/// keep their output until it is read.
#[tokio::test]
async fn producers_that_finish_first_keep_their_output_for_remote_consumers() {
    let cluster = LocalCluster::start(4, config(1)).await.expect("cluster");
    let spec = JobSpec::new("keyed-count")
        .with("parallelism", 4)
        .with("partitions", 2)
        .with("records", 8)
        .with("sink", "collect");
    let run = cluster.run_job(&spec, |_| {}, |_| {});
    let report = tokio::time::timeout(std::time::Duration::from_secs(30), run)
        .await
        .expect("no hang")
        .expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{report:?}");
    assert_eq!(cluster.collect.len(), 8);
    cluster.shutdown();
}

/// With a restart strategy, losing a TaskManager restarts the job on the remaining slots (full
/// failover, new attempt numbers) and it finishes with every record delivered.
#[tokio::test]
async fn a_job_with_a_restart_strategy_survives_a_lost_taskmanager() {
    let config = config(1)
        .with("heartbeat.interval", "100ms")
        .unwrap()
        .with("heartbeat.timeout", "500ms")
        .unwrap()
        .with("restart-strategy.type", "fixed-delay")
        .unwrap()
        .with("restart-strategy.fixed-delay.delay", "100ms")
        .unwrap();
    // Three TaskManagers with one slot each; the job needs two, so one spare remains.
    let cluster = LocalCluster::start(3, config).await.expect("cluster");
    let spec = JobSpec::new("keyed-count")
        .with("parallelism", 2)
        .with("records", 20_000)
        .with("rate", 10_000)
        .with("keys", 16)
        .with("sink", "collect");
    let placement = std::sync::Mutex::new(Vec::new());
    let run = cluster.run_job(
        &spec,
        |_| {},
        |r| *placement.lock().unwrap() = r.tasks_per_taskmanager.clone(),
    );
    let kill = async {
        // Kill a TaskManager that runs tasks, once the job reports where they run.
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let busy = placement
                .lock()
                .unwrap()
                .iter()
                .find(|(_, n)| *n > 0)
                .map(|(tm, _)| tm.clone());
            if let Some(index) =
                busy.and_then(|tm| cluster.taskmanagers.iter().position(|t| t.name == tm))
            {
                cluster.kill_taskmanager(index);
                return;
            }
        }
    };
    let (report, ()) = tokio::join!(run, kill);
    let report = report.expect("job reported");
    assert_eq!(report.status, JobStatus::Finished, "{report:?}");
    let records = cluster.collect.records();
    let attempts: std::collections::BTreeSet<u32> = records.iter().map(|r| r.attempt).collect();
    let origins: std::collections::BTreeSet<_> = records.iter().filter_map(|r| r.origin).collect();
    assert_eq!(origins.len(), 20_000, "every input delivered at least once");
    assert!(
        attempts.contains(&1),
        "the restarted attempts wrote: {attempts:?}"
    );
    cluster.shutdown();
}
