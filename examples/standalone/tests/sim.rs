//! page-views under the simulator: the crate's own scenario (a TaskManager crash), on the
//! crate's own registry, over fixed seeds; exactly-once is judged against a fault-free run.
#![cfg(madsim)]

use rill::events::ClusterEvent;
use rill_sim::runner::Harness;
use rill_sim::testing::SimTest;

#[test]
fn counts_survive_a_taskmanager_crash() {
    let harness = Harness::new(page_views::registry());
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/page-views-tm-crash.toml");
    let scenario = rill_sim::scenario_file::load_file_with(path.as_ref(), harness.jobs())
        .expect("the scenario");
    let test = SimTest::new("page-views", "counts_survive_a_taskmanager_crash", &[1, 2]);
    for o in test.assert_passes(&harness, &scenario) {
        let failovers = o
            .history
            .events
            .iter()
            .filter(|e| matches!(e.event, ClusterEvent::FailoverStarted { .. }))
            .count();
        assert!(failovers > 0, "the crash caused no failover: {}", test.replay(o.history.seed));
    }
}
