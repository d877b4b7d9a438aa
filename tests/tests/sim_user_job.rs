//! A user's job under the simulator, the way a user's crate tests its own: its own record
//! types, registered in its own registry, run by `Harness::new(registry)` on a scenario built in
//! code, with a TaskManager crash, over fixed seeds; and a bug planted in its operator that the
//! harness catches.
#![cfg(madsim)]

use std::time::Duration;

use rill::api::registry::Params;
use rill::api::{CheckableOutput, JobError, Origin, OutputChecks, StreamEnv, Traceable};
use rill::config::Configuration;
use rill::connectors::log::LogRecord;
use rill::jobs::io::{add_sink, log_source, SinkParams, SourceParams};
use rill::jobs::{JobDef, JobRegistry};
use rill::JobSpec;
use rill_sim::runner::{Harness, RunOutcome};
use rill_sim::{ClusterShape, DeliveryMode, Expectations, Fault, FaultKind, JobOutcome, Scenario};
use serde::{Deserialize, Serialize};

const SEEDS: [u64; 3] = [1, 2, 3];

/// A card payment, as the user's job sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Payment {
    card: u64,
    origin: Origin,
}

/// How many payments a card has made so far: one per payment.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct CardCount {
    card: u64,
    payments: u64,
    origin: Origin,
}

impl Traceable for CardCount {
    fn origin(&self) -> Option<Origin> {
        Some(self.origin)
    }
}

impl CheckableOutput for CardCount {
    const ONE_PER_INPUT: bool = true;
    const RUNNING_COUNTS: bool = true;

    fn running_count(&self) -> Option<(u64, u64)> {
        Some((self.card, self.payments))
    }
}

/// payments -> per card running count -> sink. `buggy-every=N` plants a bug: every N-th
/// payment is counted (and emitted) twice, as a retry that is not deduplicated would.
fn card_counts(p: &mut Params<'_>, env: &StreamEnv) -> Result<(), JobError> {
    let parallelism = p.get("parallelism", 2u32)?;
    let source = SourceParams::read(p, 0, parallelism)?;
    let sink = SinkParams::read(p)?;
    let buggy_every = p.get("buggy-every", 0u64)?;
    let payments = log_source(p, env, "payments", source).flat_map("parse", move |r: LogRecord| {
        let payment = Payment {
            card: r.key,
            origin: r.origin(),
        };
        let twice = buggy_every > 0 && r.offset % buggy_every == buggy_every - 1;
        std::iter::repeat_n(payment, if twice { 2 } else { 1 })
    });
    let counts = payments
        .key_by(|p: &Payment| p.card)
        .aggregate(
            "count",
            || 0u64,
            |n, _| *n += 1,
            |card, n, p| CardCount {
                card: *card,
                payments: *n,
                origin: p.origin,
            },
        )
        .parallelism(parallelism);
    add_sink(counts, sink, parallelism);
    Ok(())
}

fn registry() -> JobRegistry {
    JobRegistry::new()
        .with(JobDef {
            name: "card-counts",
            description: "payments -> key_by card -> running count -> sink",
            build: card_counts,
            output: OutputChecks::of::<CardCount>(),
        })
        .expect("one job")
}

/// A TaskManager crash under full failover with the transactional sink: exactly-once.
fn crash_scenario(job: JobSpec) -> Scenario {
    let crash = Fault {
        at: Duration::from_secs(4),
        kind: FaultKind::Crash {
            target: "tm-2".into(),
            restart_after: Some(Duration::from_secs(5)),
        },
    };
    let config = Configuration::new()
        .with("jobmanager.execution.failover-strategy", "full")
        .and_then(|c| c.with("execution.checkpointing.interval", "1s"))
        .and_then(|c| c.with("restart-strategy.type", "fixed-delay"))
        .and_then(|c| c.with("taskmanager.load-balance.mode", "tasks"))
        .expect("valid");
    Scenario {
        name: "card-counts-crash".into(),
        description: "a user's job, a TaskManager crash, full failover".into(),
        cluster: ClusterShape {
            taskmanagers: 3,
            slots_per_taskmanager: 2,
            memory_mb: None,
        },
        job,
        config,
        run_for: Duration::from_secs(60),
        faults: vec![crash],
        swarm: None,
        expect: Expectations {
            delivery: DeliveryMode::ExactlyOnce,
            job: Some(JobOutcome::Finished),
            ..Default::default()
        },
    }
}

fn job() -> JobSpec {
    JobSpec::new("card-counts")
        .with("parallelism", 3)
        .with("records", 30_000)
        .with("keys", 500)
        .with("rate", 3_000)
        .with("sink", "collect-transactional")
}

fn failures(o: &RunOutcome, test: &str, seed: u64) -> String {
    let failed: Vec<String> = o
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| format!("{}: {} ({:?})", v.checker, v.summary, v.evidence))
        .collect();
    format!(
        "{}\nreplay: {}",
        failed.join("\n"),
        rill_sim::testing::replay("rill-tests", test, seed)
    )
}

#[test]
fn a_users_job_is_exactly_once_through_a_taskmanager_crash() {
    let harness = Harness::new(registry());
    let scenario = crash_scenario(job());
    rill_scenarios::validate_with(&scenario, harness.jobs()).expect("a valid scenario");
    for seed in rill_sim::testing::seeds(&SEEDS) {
        let o = harness.run(&scenario, seed);
        let test = "a_users_job_is_exactly_once_through_a_taskmanager_crash";
        assert!(o.passed(), "seed {seed}: {}", failures(&o, test, seed));
        // The crash did hit the job: the checkers judged a recovery, not a quiet run.
        assert!(
            o.history
                .events
                .iter()
                .any(|e| matches!(e.event, rill::events::ClusterEvent::FailoverStarted { .. })),
            "seed {seed}: no failover"
        );
    }
}

#[test]
fn a_bug_planted_in_the_users_operator_is_caught() {
    let harness = Harness::new(registry());
    let scenario = crash_scenario(job().with("buggy-every", 700));
    let o = harness.run(&scenario, 1);
    let delivery = o
        .verdicts
        .iter()
        .find(|v| v.checker == "delivery")
        .expect("delivery is checked for a job whose output says it is one per input");
    assert!(!delivery.passed, "the planted duplicate went unnoticed");
    assert_eq!(delivery.summary, "duplicate output");
    let evidence = delivery.evidence.clone().unwrap_or_default();
    assert!(evidence.contains("offset: 699"), "{evidence}");
}
