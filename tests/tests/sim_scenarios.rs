//! The named scenarios under CI's fixed seeds, their recovery traces as insta snapshots, the
//! determinism self-check, the regression corpus, and a planted bug the checkers must catch.
#![cfg(madsim)]

use rill::events::ClusterEvent;
use rill_scenarios::{load, names};
use rill_sim::runner::{run, RunOutcome};
use rill_sim::testing::recovery_window;
use rill_sim::trace::{first_difference, trace_hash};

/// CI's fixed seeds; long sweeps belong to `cargo xtask sim sweep`.
const CI_SEEDS: [u64; 3] = [1, 2, 3];

fn replay(name: &str, seed: u64) -> String {
    format!("cargo xtask sim run --scenario {name} --seed {seed}")
}

fn describe_failure(o: &RunOutcome) -> String {
    let failed: Vec<String> = o
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| {
            format!(
                "{}: {} ({})",
                v.checker,
                v.summary,
                v.evidence.as_deref().unwrap_or("")
            )
        })
        .collect();
    format!(
        "{} seed {} failed:\n  {}\nreplay: {}",
        o.history.scenario,
        o.history.seed,
        failed.join("\n  "),
        replay(&o.history.scenario, o.history.seed)
    )
}

#[test]
fn every_named_scenario_passes_under_the_ci_seeds() {
    let mut failures = Vec::new();
    for name in names().expect("scenario dir") {
        let scenario = load(&name).expect("valid scenario");
        for seed in CI_SEEDS {
            let outcome = run(&scenario, seed);
            if !outcome.passed() {
                failures.push(describe_failure(&outcome));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn recovery_timelines_match_their_snapshots() {
    for name in names().expect("scenario dir") {
        let outcome = run(&load(&name).expect("valid"), 1);
        let text = recovery_window(&outcome.history, 80);
        insta::with_settings!({ snapshot_path => "../../snapshots", prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(name.clone(), text);
        });
    }
}

#[test]
fn a_seed_replays_with_the_same_trace() {
    for name in ["tm-crash-4x2", "loss-and-latency", "swarm"] {
        let scenario = load(name).expect("valid");
        let (a, b) = (run(&scenario, 7), run(&scenario, 7));
        if let Some((line, left, right)) = first_difference(&a.history.trace, &b.history.trace) {
            panic!("{name} seed 7 is not deterministic: first difference at line {line}:\n  {left:?}\n  {right:?}\nreplay: {}", replay(name, 7));
        }
        assert_eq!(trace_hash(&a.history.trace), trace_hash(&b.history.trace));
        assert_eq!(
            a.history.events, b.history.events,
            "{name}: cluster events differ between replays"
        );
        assert_eq!(
            a.history.outputs, b.history.outputs,
            "{name}: outputs differ between replays"
        );
    }
}

#[test]
fn the_regression_corpus_replays_green() {
    let corpus = rill_sim::corpus::read(&rill_scenarios::corpus_path()).expect("corpus");
    assert!(!corpus.is_empty(), "the corpus has entries");
    for entry in corpus {
        let scenario = if entry.scenario == "generated" {
            rill_sim::scenario_file::generate(entry.seed)
        } else {
            rill_scenarios::load_entry(&entry.scenario).expect("corpus names a scenario")
        };
        let outcome = run(&scenario, entry.seed);
        let replay = rill_scenarios::replay_entry(&entry.scenario, entry.seed);
        let Some(known) = &entry.known else {
            assert!(
                outcome.passed(),
                "{}\n(corpus entry: {replay})",
                describe_failure(&outcome)
            );
            continue;
        };
        // An open finding: it fails that checker alone, and the mark goes once it passes.
        let others_pass = outcome
            .verdicts
            .iter()
            .all(|v| v.passed || v.checker == known.as_str());
        assert!(others_pass, "{}", describe_failure(&outcome));
        assert!(
            !outcome.passed(),
            "{} seed {} now passes {known}: drop `known={known}` from its corpus line",
            entry.scenario,
            entry.seed
        );
    }
}

/// A bug planted on purpose (every 1000th record emitted twice) is caught by the delivery
/// checker with the offending record as evidence, and replaying the seed reproduces it exactly.
#[test]
fn a_planted_duplicate_is_caught_and_replays() {
    let mut scenario = load("steady-4x2").expect("valid");
    scenario.job = scenario.job.clone().with("buggify-duplicate-every", 1000);
    let first = run(&scenario, 11);
    let delivery = first
        .verdicts
        .iter()
        .find(|v| v.checker == "delivery")
        .expect("delivery checked");
    assert!(!delivery.passed, "the duplicate went unnoticed");
    assert_eq!(delivery.summary, "duplicate output");
    let evidence = delivery.evidence.clone().expect("evidence");
    assert!(
        evidence.contains("offset: 999"),
        "the first duplicated input is offset 999 of a partition: {evidence}"
    );
    let message = describe_failure(&first);
    assert!(
        message.contains("replay: cargo xtask sim run --scenario steady-4x2 --seed 11"),
        "{message}"
    );
    let again = run(&scenario, 11);
    let replayed = again
        .verdicts
        .iter()
        .find(|v| v.checker == "delivery")
        .expect("delivery checked");
    assert_eq!(
        replayed.evidence.as_ref(),
        Some(&evidence),
        "the replay reproduces the same evidence"
    );
}

/// Shrinking on the real simulator: of three faults, only the crash fails the job (today a lost
/// TaskManager fails it); the shrinker must drop the others and keep a crash of tm-2.
#[test]
fn shrinking_keeps_only_the_fault_that_matters() {
    use rill_sim::runner::run_with_faults;
    use rill_sim::shrink::{shrink, Trial};
    use rill_sim::{Fault, FaultKind, JobOutcome};
    use std::time::Duration;

    let mut scenario = load("partition-heals-in-time").expect("valid");
    scenario.expect.job = Some(JobOutcome::Finished);
    let s = |secs| Duration::from_secs(secs);
    let plan = vec![
        Fault {
            at: s(2),
            kind: FaultKind::Latency {
                min: Duration::from_millis(5),
                max: Duration::from_millis(20),
                duration: Some(s(2)),
            },
            anchor: None,
        },
        Fault {
            at: s(3),
            kind: FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: Some(s(4)),
            },
            anchor: None,
        },
        Fault {
            at: s(4),
            kind: FaultKind::Pause {
                target: "tm-3".into(),
                duration: s(1),
            },
            anchor: None,
        },
    ];
    let fails = |faults: &[Fault]| {
        let o = run_with_faults(&scenario, 5, faults.to_vec());
        o.verdicts.iter().any(|v| v.checker == "job" && !v.passed)
    };
    assert!(
        fails(&plan),
        "the full plan must fail for the test to mean anything"
    );
    let (minimal, stats) = shrink(plan, 40, |c| {
        if fails(c) {
            Trial::StillFails
        } else {
            Trial::Passes
        }
    });
    assert!(stats.trials <= 40);
    assert_eq!(minimal.len(), 1, "{minimal:?}");
    assert!(
        matches!(&minimal[0].kind, FaultKind::Crash { target, .. } if target == "tm-2"),
        "{minimal:?}"
    );
    println!("{}", rill_sim::scenario_file::faults_to_toml(&minimal));
}

/// Scenarios generated from seeds (valid by construction) run in the simulator and meet the
/// expectations the generator gave them.
#[test]
fn generated_scenarios_run_and_meet_their_expectations() {
    let mut failures = Vec::new();
    for seed in 0..6 {
        let scenario = rill_sim::scenario_file::generate(seed);
        let outcome = run(&scenario, seed);
        if !outcome.passed() {
            failures.push(format!("{}\n  (generated scenario: cargo xtask sim run --scenario generated --seed {seed})", describe_failure(&outcome)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Under `taskmanager` failover in `tasks` mode, the crashed TaskManager's group lands on the
/// least-loaded survivor, and when the TaskManager rejoins a group moves back onto it: the
/// placement ends even again.
#[test]
fn balance_is_restored_when_the_crashed_taskmanager_rejoins() {
    let scenario = load("tm-crash-4x2-taskmanager").expect("valid");
    for seed in CI_SEEDS {
        let o = run(&scenario, seed);
        let last = o.history.placements.last().expect("placements");
        assert_eq!(
            rill_sim::check::task_range(last),
            0,
            "{:?}\nreplay: {}",
            last.tasks,
            replay("tm-crash-4x2-taskmanager", seed)
        );
        assert!(o
            .history
            .events
            .iter()
            .any(|e| matches!(e.event, ClusterEvent::Rebalanced { .. })));
    }
}

/// Log lines are for people: the checkers judge from typed events alone. Every line of the
/// runtime's trace reworded (as a changed `tracing::warn!` in the JobManager would) leaves every
/// verdict, summary and evidence as it was, on runs that fail over. (That the verdicts do read
/// the events is `check::tests::a_replay_is_accounted_for_by_the_failover_events`.)
#[test]
fn rewording_log_messages_changes_no_verdict() {
    use rill_sim::runner::judge;
    for (name, seed) in [
        ("tm-crash-4x2-taskmanager", 1),
        ("tm-crash-4x2-full", 2),
        ("jm-tm-partition-region", 3),
    ] {
        let scenario = load(name).expect("valid");
        let outcome = run(&scenario, seed);
        assert!(
            outcome
                .history
                .events
                .iter()
                .any(|e| matches!(e.event, ClusterEvent::FailoverStarted { .. })),
            "{name} seed {seed} should fail over; replay: {}",
            replay(name, seed)
        );
        let mut reworded = outcome.history.clone();
        for (i, line) in reworded.trace.iter_mut().enumerate() {
            line.text = format!("reworded message {i}");
        }
        assert_eq!(
            judge(&scenario, &reworded),
            outcome.verdicts,
            "{name} seed {seed}: a reworded log changed a verdict; replay: {}",
            replay(name, seed)
        );
    }
}
