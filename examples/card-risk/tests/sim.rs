//! card-risk under the simulator, as a user tests their own job: the scenarios in this crate's
//! `scenarios/` directory, run on this crate's registry over fixed seeds, judged by the
//! harness's checkers, their recovery timelines kept as snapshots in `snapshots/`, and
//! planted bugs the checkers must catch: a logic bug (caught against the input) and a
//! recovery bug (caught against a fault-free reference run).
//!
//! A failing seed prints the command that replays it alone (`RILL_SEEDS=N ...`);
//! `RILL_REPORT=DIR` writes an HTML report of each run into `DIR`.
#![cfg(madsim)]

use std::path::{Path, PathBuf};

use rill::events::ClusterEvent;
use rill_sim::runner::{Harness, RunOutcome};
use rill_sim::testing::{recovery_window, replay, seeds, SimTest};
use rill_sim::{FaultKind, Scenario};

/// The seeds every scenario runs under (narrowed by `RILL_SEEDS`).
const SEEDS: [u64; 3] = [1, 2, 3];

fn harness() -> Harness {
    Harness::new(card_risk::registry())
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn scenarios(h: &Harness) -> Vec<Scenario> {
    rill_sim::scenario_file::load_dir_with(&scenario_dir(), h.jobs())
        .expect("the example's scenarios")
}

/// What a failing run of `test` says: its failed verdicts, evidence and replay command.
fn failure(o: &RunOutcome, test: &str) -> String {
    SimTest::new("card-risk", test, &SEEDS).failure(&o.history, &o.verdicts)
}

#[test]
fn every_scenario_passes_under_the_fixed_seeds() {
    let h = harness();
    let all = scenarios(&h);
    assert!(all.len() >= 3, "the example's scenarios are there");
    let mut failures = Vec::new();
    for scenario in &all {
        for seed in seeds(&SEEDS) {
            let o = h.run(scenario, seed);
            let test = "every_scenario_passes_under_the_fixed_seeds";
            if !o.passed() {
                failures.push(failure(&o, test));
            }
            if let Err(why) = the_fault_mattered(&o) {
                let replay = replay("card-risk", test, seed);
                failures.push(format!(
                    "{} seed {seed}: {why}\nreplay: {replay}",
                    scenario.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A scenario passes for the right reason: its fault did hit the job (a failover, an OOM kill),
/// and the balanced cluster was left alone.
fn the_fault_mattered(o: &RunOutcome) -> Result<(), String> {
    let oom_kills = o
        .history
        .faults
        .iter()
        .filter(|f| f.took_effect() && matches!(f.fault.kind, FaultKind::OomKill { .. }))
        .count();
    let failovers = o
        .history
        .events
        .iter()
        .filter(|e| matches!(e.event, ClusterEvent::FailoverStarted { .. }))
        .count();
    match o.history.scenario.as_str() {
        "card-risk-oom-skew-balanced" if oom_kills > 0 => Err(format!("{oom_kills} OOM kill(s)")),
        "card-risk-oom-skew" if oom_kills == 0 => Err("no OOM kill".into()),
        _ if failovers == 0 && !o.history.scenario.ends_with("balanced") => {
            Err("the fault caused no failover".into())
        }
        _ => Ok(()),
    }
}

#[test]
fn recovery_timelines_match_their_snapshots() {
    let h = harness();
    for scenario in scenarios(&h) {
        let o = h.run(&scenario, 1);
        let text = recovery_window(&o.history, 80);
        insta::with_settings!({ snapshot_path => "../snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(scenario.name.clone(), text);
        });
    }
}

/// The seeds `card-risk-sim sweep` found failing (appended to `scenarios/corpus.txt`) replay
/// green: a bug a sweep found stays fixed. No corpus yet: nothing to replay.
#[test]
fn the_corpus_replays_green() {
    let h = harness();
    let corpus = rill_sim::corpus::read(&scenario_dir().join("corpus.txt")).expect("corpus");
    for entry in corpus {
        let scenario =
            rill_sim::scenario_file::load_named(&scenario_dir(), &entry.scenario, h.jobs())
                .expect("the corpus names a scenario");
        let o = h.run(&scenario, entry.seed);
        assert!(o.passed(), "{}", failure(&o, "the_corpus_replays_green"));
    }
}

/// A bug planted in the job's own operator (every 500th payment counted twice) is caught by
/// the delivery checker, with the first duplicated payment as evidence.
#[test]
fn a_bug_planted_in_the_job_is_caught() {
    let h = harness();
    let mut scenario = scenarios(&h)
        .into_iter()
        .find(|s| s.name == "card-risk-partition-full")
        .expect("the partition scenario");
    scenario.job = scenario.job.clone().with("planted-bug-every", 500);
    let o = h.run(&scenario, 1);
    let delivery = o
        .verdicts
        .iter()
        .find(|v| v.checker == "delivery")
        .expect("delivery is checked: the output says it is one per payment");
    assert!(!delivery.passed, "the planted bug went unnoticed");
    assert_eq!(delivery.summary, "duplicate output");
    // Which doubled payment is seen first depends on the order channels are read in; each
    // one the bug doubles is the 500th of its partition (offsets 499, 999, 1499, ..).
    let evidence = delivery.evidence.clone().unwrap_or_default();
    let offset: Option<u64> = evidence
        .split("offset: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok());
    assert!(offset.is_some_and(|o| o % 500 == 499), "{evidence}");
}

/// A scenario needs no TOML file: built in code, a TaskManager crash under `full` failover with
/// the transactional sink leaves every payment's activity committed exactly once.
#[test]
fn a_scenario_built_in_code_runs_the_same_way() {
    use std::time::Duration;

    use rill::config::Configuration;
    use rill::JobSpec;
    use rill_sim::{ClusterShape, DeliveryMode, Expectations, Fault, JobOutcome};

    let config = Configuration::new()
        .with("jobmanager.execution.failover-strategy", "full")
        .and_then(|c| c.with("execution.checkpointing.interval", "1s"))
        .and_then(|c| c.with("restart-strategy.type", "fixed-delay"))
        .and_then(|c| c.with("taskmanager.load-balance.mode", "tasks"))
        .expect("valid");
    let scenario = Scenario {
        name: "card-risk-crash-in-code".into(),
        description: "tm-2 crashes and returns under full failover".into(),
        cluster: ClusterShape {
            taskmanagers: 3,
            slots_per_taskmanager: 2,
            memory_mb: None,
        },
        job: JobSpec::new("card-risk")
            .with("parallelism", 3)
            .with("records", 30_000)
            .with("keys", 500)
            .with("rate", 3_000)
            .with("sink", "collect-transactional"),
        config,
        run_for: Duration::from_secs(60),
        faults: vec![Fault {
            at: Duration::from_secs(4),
            kind: FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: Some(Duration::from_secs(5)),
            },
            anchor: None,
        }],
        swarm: None,
        buggify: Vec::new(),
        expect: Expectations {
            delivery: DeliveryMode::ExactlyOnce,
            job: Some(JobOutcome::Finished),
            ..Default::default()
        },
    };
    let h = harness();
    rill_sim::scenario_file::validate_with(&scenario, h.jobs()).expect("a valid scenario");
    for seed in seeds(&SEEDS) {
        let o = h.run(&scenario, seed);
        let test = "a_scenario_built_in_code_runs_the_same_way";
        assert!(o.passed(), "{}", failure(&o, test));
        assert!(the_fault_mattered(&o).is_ok(), "seed {seed}: no failover");
    }
}

/// A recovery bug planted in `card-windows` (state the operator keeps outside rill's keyed
/// state, so no checkpoint has it) passes without faults, and is caught once a TaskManager
/// crash makes the job restore: its windows differ from those of the fault-free reference
/// run of the same seed, and the evidence names the first card whose windows went wrong.
#[test]
fn a_recovery_bug_in_the_job_is_caught_against_the_reference_run() {
    let h = harness();
    let mut scenario = scenarios(&h)
        .into_iter()
        .find(|s| s.name == "card-windows-tm-crash-full")
        .expect("the windows scenario");
    scenario.job = scenario.job.clone().with("planted-bug", "unmanaged-state");
    let test = SimTest::new(
        "card-risk",
        "a_recovery_bug_in_the_job_is_caught_against_the_reference_run",
        &[1],
    );
    for seed in test.seeds().iter().copied() {
        let quiet = h.run_with_faults(&scenario, seed, Vec::new());
        assert!(
            quiet.passed(),
            "{}",
            test.failure(&quiet.history, &quiet.verdicts)
        );
        let o = h.run(&scenario, seed);
        test.write_report(&o.history, &o.verdicts);
        let delivery = o
            .verdicts
            .iter()
            .find(|v| v.checker == "delivery")
            .expect("delivery is checked against the reference");
        assert!(
            !delivery.passed,
            "the recovery bug went unnoticed: {}",
            test.replay(seed)
        );
        let evidence = delivery.evidence.clone().unwrap_or_default();
        assert!(evidence.contains("flagged_before"), "{evidence}");
    }
}
