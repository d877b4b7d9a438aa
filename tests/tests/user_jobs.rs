//! A job from outside the built-in table, registered the way a user's crate registers its own
//! (`rill::jobs::JobRegistry`), runs on a real cluster whose JobManager and TaskManagers were
//! given that registry; a cluster without it refuses the job, naming the jobs it has.
#![cfg(not(madsim))]

use std::sync::Arc;

use rill::api::registry::Params;
use rill::api::{JobError, Origin, OutputChecks, StreamEnv, Traceable};
use rill::cluster::LocalCluster;
use rill::config::Configuration;
use rill::connectors::log::{GeneratedLog, LogRecord, PartitionedLog};
use rill::connectors::{LogInput, LogSource, SinkSpec};
use rill::jobs::{JobDef, JobRegistry};
use rill::rpc::JobStatus;
use rill::JobSpec;

/// The user's own output record type.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Even {
    key: u64,
    origin: Origin,
}

impl Traceable for Even {
    fn origin(&self) -> Option<Origin> {
        Some(self.origin)
    }
}

/// The records of a small generated log whose key is even, collected.
fn evens(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let records: u64 = p.get("records", 1_000u64)?;
    let input = LogInput::Local(numbers(records));
    env.source("numbers", LogSource::new(input))
        .parallelism(2)
        .filter("evens", |r: &LogRecord| r.key.is_multiple_of(2))
        .map("even", |r: LogRecord| Even {
            key: r.key,
            origin: r.origin(),
        })
        .sink("collect", SinkSpec::Collect.with_store(None));
    Ok(())
}

fn numbers(records: u64) -> Arc<dyn PartitionedLog> {
    Arc::new(GeneratedLog::new(7, 2, Some(records / 2)))
}

fn registry() -> JobRegistry {
    JobRegistry::new()
        .with(JobDef {
            name: "evens",
            description: "generated log -> filter even keys -> collect",
            build: evens,
            output: OutputChecks::OPAQUE,
        })
        .expect("one job")
}

fn config() -> Configuration {
    Configuration::new()
        .with("taskmanager.numberOfTaskSlots", "2")
        .expect("valid")
}

#[tokio::test]
async fn a_registered_user_job_runs_on_a_cluster_built_with_its_registry() {
    let cluster = LocalCluster::start_with_jobs(2, config(), registry())
        .await
        .expect("cluster");
    let spec = JobSpec::new("evens").with("records", 2_000);
    let report = cluster
        .run_job(&spec, |_| {}, |_| {})
        .await
        .expect("submitted");
    assert_eq!(report.status, JobStatus::Finished, "{:?}", report.message);
    let log = numbers(2_000);
    let mut expected = 0;
    for partition in 0..log.partitions() {
        let mut batch = Vec::new();
        log.read(partition, 0, 10_000, &mut batch)
            .expect("readable");
        expected += batch.iter().filter(|r| r.key.is_multiple_of(2)).count();
    }
    assert!(expected > 0 && expected < 2_000, "{expected}");
    assert_eq!(cluster.collect.len(), expected);
    let outputs = cluster
        .collect
        .decoded::<Even>()
        .expect("the user's records decode");
    assert!(outputs.iter().all(|(_, e)| e.key.is_multiple_of(2)));
    // The JobManager resolves names in this registry only.
    let err = cluster
        .run_job(&JobSpec::new("keyed-count"), |_| {}, |_| {})
        .await
        .expect_err("not registered here");
    assert!(err.to_string().contains("known jobs: evens"), "{err}");
}

#[tokio::test]
async fn a_cluster_of_the_built_in_jobs_refuses_a_user_job_and_lists_its_own() {
    let cluster = LocalCluster::start(1, config()).await.expect("cluster");
    let err = cluster
        .run_job(&JobSpec::new("evens"), |_| {}, |_| {})
        .await
        .expect_err("unknown here");
    let text = err.to_string();
    assert!(
        text.contains("unknown job 'evens'") && text.contains("keyed-count"),
        "{text}"
    );
}
