//! Buggify in simulated runs: a scenario that turns the runtime's points on fires them, records
//! every firing (point, node, time, delay) in the run's history and trace, and a seed fires the
//! same points at the same times again; a scenario that turns none on installs no hook and
//! records nothing; a swarm draws its live points per seed and the history names them.
#![cfg(madsim)]

use std::collections::BTreeSet;

use rill::buggify::Point;
use rill_scenarios::load;
use rill_sim::buggify::live_points;
use rill_sim::runner::run;
use rill_sim::trace::trace_hash;
use rill_sim::NodeName;

#[test]
fn a_buggified_seed_fires_its_points_and_replays_the_same_firings() {
    let scenario = load("buggify-tm-crash-taskmanager").expect("valid");
    assert_eq!(scenario.buggify, Point::ALL.to_vec());
    let (a, b) = (run(&scenario, 1), run(&scenario, 1));
    let h = &a.history;
    assert!(a.passed(), "{:?}", a.verdicts);
    assert_eq!(h.buggify, Point::ALL.to_vec());
    // Most points fire in one run; each firing is on a node that has that path, with a delay
    // in the point's range.
    let fired: BTreeSet<Point> = h.buggified.iter().map(|f| f.point).collect();
    assert!(fired.len() >= 5, "only {fired:?} fired");
    for f in &h.buggified {
        let spec = f.point.spec();
        assert!(
            f.delay >= spec.min && f.delay <= spec.max,
            "{f:?} outside {:?}..={:?}",
            spec.min,
            spec.max
        );
        let on = match f.point {
            Point::ControlMessageLate => f.node == NodeName::JobManager,
            Point::CheckpointStoreSlow => f.node == NodeName::CheckpointStore,
            Point::SinkStoreAckLate => f.node == NodeName::SinkStore,
            _ => f.node.taskmanager().is_some(),
        };
        assert!(on, "{f:?} fired on the wrong node");
    }
    assert!(h.buggified.windows(2).all(|w| w[0].at <= w[1].at));
    // The trace shows them too.
    let lines = h
        .trace
        .iter()
        .filter(|l| l.text.starts_with("buggify "))
        .count();
    assert_eq!(lines, h.buggified.len());
    // The same seed fires the same points at the same times, and the run is the same.
    assert_eq!(a.history.buggified, b.history.buggified);
    assert_eq!(trace_hash(&a.history.trace), trace_hash(&b.history.trace));
    assert_eq!(a.history.events, b.history.events);
    // Another seed fires differently.
    assert_ne!(run(&scenario, 2).history.buggified, a.history.buggified);
}

#[test]
fn without_live_points_nothing_is_installed_or_recorded() {
    let mut scenario = load("buggify-tm-crash-taskmanager").expect("valid");
    scenario.buggify.clear();
    let o = run(&scenario, 1);
    assert!(o.history.buggify.is_empty() && o.history.buggified.is_empty());
    assert!(!o.history.trace.iter().any(|l| l.text.contains("buggify")));
    assert!(!rill::buggify::installed(), "the hook went with the run");
}

#[test]
fn a_swarm_draws_its_live_points_per_seed_and_the_history_names_them() {
    let scenario = load("swarm-taskmanager").expect("valid");
    let draws: BTreeSet<Vec<Point>> = (1..=20).map(|seed| live_points(&scenario, seed)).collect();
    assert!(draws.len() > 10, "seeds should draw different points");
    // The faults a seed draws do not depend on its buggify draw.
    let without = rill_sim::Scenario {
        swarm: scenario.swarm.clone().map(|mut s| {
            s.buggify.clear();
            s
        }),
        ..scenario.clone()
    };
    for seed in 1..=20 {
        assert_eq!(
            rill_sim::runner::fault_plan(&scenario, seed),
            rill_sim::runner::fault_plan(&without, seed)
        );
        assert!(live_points(&without, seed).is_empty());
    }
    let seed = (1..=20)
        .find(|&s| !live_points(&scenario, s).is_empty())
        .expect("a seed with live points");
    let o = run(&scenario, seed);
    assert_eq!(o.history.buggify, live_points(&scenario, seed));
    assert!(o
        .history
        .buggified
        .iter()
        .all(|f| o.history.buggify.contains(&f.point)));
}
