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
