//! The runner end to end on hand-built scenarios (the named TOML scenarios have their own tests).
#![cfg(madsim)]

use std::time::Duration;

use rill::config::Configuration;
use rill::JobSpec;
use rill_sim::runner::run;
use rill_sim::{ClusterShape, DeliveryMode, Expectations, Fault, FaultKind, JobOutcome, Scenario};

fn scenario(name: &str, faults: Vec<Fault>, expect: Expectations) -> Scenario {
    Scenario {
        name: name.into(),
        description: String::new(),
        cluster: ClusterShape {
            taskmanagers: 4,
            slots_per_taskmanager: 2,
            memory_mb: None,
        },
        job: JobSpec::new("keyed-count")
            .with("parallelism", 4)
            .with("partitions", 8)
            .with("records", 40_000)
            .with("rate", 4_000)
            .with("sink", "collect"),
        config: Configuration::new()
            .with("heartbeat.interval", "1s")
            .unwrap()
            .with("heartbeat.timeout", "5s")
            .unwrap()
            // Every TaskManager runs tasks, so a crash of any of them fails the job.
            .with("taskmanager.load-balance.mode", "tasks")
            .unwrap(),
        run_for: Duration::from_secs(60),
        faults,
        swarm: None,
        buggify: Vec::new(),
        expect,
    }
}

#[test]
fn steady_run_is_exactly_once_without_stalls() {
    let expect = Expectations {
        delivery: DeliveryMode::ExactlyOnce,
        job: Some(JobOutcome::Finished),
        max_stall: Some(Duration::from_millis(500)),
        ..Default::default()
    };
    let outcome = run(&scenario("steady", Vec::new(), expect), 1);
    for v in &outcome.verdicts {
        println!(
            "{:<11} {} {} {:?}",
            v.checker, v.passed, v.summary, v.evidence
        );
    }
    println!("{}", rill_sim::trace::render(&outcome.history.trace));
    assert!(outcome.passed());
}

#[test]
fn a_crash_without_failover_fails_the_job() {
    let crash = Fault {
        at: Duration::from_secs(3),
        kind: FaultKind::Crash {
            target: "tm-2".into(),
            restart_after: Some(Duration::from_secs(10)),
        },
        anchor: None,
    };
    let expect = Expectations {
        job: Some(JobOutcome::Failed),
        ..Default::default()
    };
    let outcome = run(&scenario("crash", vec![crash], expect), 1);
    for v in &outcome.verdicts {
        println!(
            "{:<11} {} {} {:?}",
            v.checker, v.passed, v.summary, v.evidence
        );
    }
    println!("{}", rill_sim::trace::render(&outcome.history.trace));
    assert!(outcome.passed());
}

/// The harness runs a scenario on the registry it was given: the simulated JobManager and
/// TaskManagers resolve the job there, and one it lacks is refused (the job never runs).
#[test]
fn a_harness_runs_the_jobs_of_its_registry() {
    use rill_sim::runner::Harness;
    use rill_sim::RunEnd;
    let builtin = rill::jobs::builtin();
    let only_etl = rill::jobs::JobRegistry::new()
        .with(*builtin.get("etl").unwrap())
        .unwrap();
    let expect = Expectations {
        job: Some(JobOutcome::Finished),
        delivery: DeliveryMode::ExactlyOnce,
        ..Expectations::default()
    };
    let mut etl = scenario("etl-on-its-registry", Vec::new(), expect.clone());
    etl.job = JobSpec::new("etl")
        .with("parallelism", 4)
        .with("records", 8_000)
        .with("rate", 4_000)
        .with("sink", "collect");
    let o = Harness::new(only_etl.clone()).run(&etl, 3);
    assert!(o.passed(), "{:?}", o.verdicts);
    let keyed = scenario("keyed-count-elsewhere", Vec::new(), expect);
    let o = Harness::new(only_etl).run(&keyed, 3);
    assert_eq!(
        o.history.job_status,
        RunEnd::Rejected,
        "{:?}",
        o.history.job_message
    );
    let why = o.history.job_message.clone().unwrap_or_default();
    assert!(why.contains("known jobs: etl"), "{why}");
}
