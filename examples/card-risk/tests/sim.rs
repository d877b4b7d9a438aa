//! card-risk under the simulator, as a user tests their own job: the scenarios in this crate's
//! `scenarios/` directory, run on this crate's registry over fixed seeds, judged by the
//! harness's checkers, their recovery timelines kept as snapshots in `snapshots/`, and a
//! planted bug the checkers must catch.
//!
//! A failing seed prints the command that replays it alone (`RILL_SEEDS=N ...`).
#![cfg(madsim)]

use std::path::{Path, PathBuf};

use rill_sim::runner::{Harness, RunOutcome};
use rill_sim::testing::{recovery_window, replay, seeds};
use rill_sim::Scenario;

/// The seeds every scenario runs under (narrowed by `RILL_SEEDS`).
const SEEDS: [u64; 3] = [1, 2, 3];

fn harness() -> Harness {
    Harness::new(card_risk::registry())
}

fn scenario_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios")
}

fn scenarios(h: &Harness) -> Vec<Scenario> {
    rill_scenarios::load_dir_with(&scenario_dir(), h.jobs()).expect("the example's scenarios")
}

fn failure(o: &RunOutcome, test: &str) -> String {
    let failed: Vec<String> = o
        .verdicts
        .iter()
        .filter(|v| !v.passed)
        .map(|v| {
            let evidence = v.evidence.as_deref().unwrap_or("");
            format!("{}: {} ({evidence})", v.checker, v.summary)
        })
        .collect();
    format!(
        "{} seed {}:\n  {}\nreplay: {}",
        o.history.scenario,
        o.history.seed,
        failed.join("\n  "),
        replay("card-risk", test, o.history.seed)
    )
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
            if !o.passed() {
                failures.push(failure(&o, "every_scenario_passes_under_the_fixed_seeds"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
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
    let evidence = delivery.evidence.clone().unwrap_or_default();
    assert!(evidence.contains("offset: 499"), "{evidence}");
}
