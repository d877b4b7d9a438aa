//! Expectations derived from a plan: what each fault may do to the job, and what the failover
//! strategy and the sink then guarantee.

use std::time::Duration;

use super::ms;
use crate::check::bounds::held_by_cut;
use crate::fault::{Anchor, AnchorEvent};
use crate::scenario_file::{derive_expectations, drain_bound, parse_scenario, tolerates};
use crate::{DeliveryMode, Direction, Fault, FaultKind, JobOutcome, NodeName, Scenario};
use rill::config::Configuration;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// keyed-count over 5 s of input on `tms` x 2 slots at parallelism `parallelism`, with
/// heartbeats every second timing out after 5 s, `config` (TOML lines) on top and `faults`.
fn scenario(tms: u32, parallelism: u32, sink: &str, config: &str, faults: Vec<Fault>) -> Scenario {
    let text = format!(
        r#"
name = "t"
run_for = "120s"
[cluster]
taskmanagers = {tms}
slots_per_taskmanager = 2
[job]
name = "keyed-count"
parallelism = {parallelism}
records = 50000
rate = 10000
sink = "{sink}"
[config]
"heartbeat.interval" = "1s"
"heartbeat.timeout" = "5s"
{config}
"#
    );
    let mut s = parse_scenario("t.toml", &text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    s.faults = faults;
    s
}

const FULL: &str = r#"
"jobmanager.execution.failover-strategy" = "full"
"execution.checkpointing.interval" = "1s"
"restart-strategy.type" = "fixed-delay"
"restart-strategy.fixed-delay.attempts" = "10"
"#;

fn with_strategy(strategy: &str) -> String {
    FULL.replace("\"full\"", &format!("\"{strategy}\""))
}

fn crash(at: Duration, tm: u32, restart: Option<Duration>) -> Fault {
    Fault::new(
        at,
        FaultKind::Crash {
            target: NodeName::TaskManager(tm),
            restart_after: restart,
        },
    )
}

fn partition(at: Duration, target: NodeName, heal: Option<Duration>) -> Fault {
    Fault::new(
        at,
        FaultKind::Partition {
            target,
            direction: Direction::Both,
            heal_after: heal,
        },
    )
}

fn derived(s: &Scenario) -> (Option<JobOutcome>, DeliveryMode, Option<Duration>) {
    let d = derive_expectations(s);
    (d.expect.job, d.expect.delivery, d.expect.drain_within)
}

#[test]
fn a_crash_under_full_failover_with_the_two_phase_sink_keeps_exactly_once() {
    let s = scenario(
        4,
        4,
        "collect-transactional",
        FULL,
        vec![crash(secs(2), 2, Some(secs(3)))],
    );
    let (job, delivery, drain) = derived(&s);
    assert_eq!(job, Some(JobOutcome::Finished));
    assert_eq!(delivery, DeliveryMode::ExactlyOnce);
    // Detection 7 s, back-off 1 s, redeploy 2 s, stale connections 7 s, a registration 10 s,
    // two checkpoint intervals 2 s, the whole input 5 s, slack 5 s.
    assert_eq!(drain, Some(secs(39)));
    assert_eq!(drain, Some(drain_bound(&s.config, secs(5))));
    // The same crash anchored into a checkpoint's alignment: the same guarantee.
    let anchor = Anchor {
        event: AnchorEvent::CheckpointTriggered,
        checkpoint: Some(2),
        offset: ms(20),
    };
    let mut anchored = s.clone();
    anchored.faults = vec![Fault::anchored(
        anchor,
        Duration::ZERO,
        anchored.faults[0].kind.clone(),
    )];
    assert_eq!(derived(&anchored), derived(&s));
}

#[test]
fn the_plain_sink_is_at_least_once_under_full_and_region_and_fault_accounted_under_taskmanager() {
    let faults = || vec![crash(secs(2), 2, Some(secs(3)))];
    for (strategy, want) in [
        ("full", DeliveryMode::AtLeastOnce),
        ("region", DeliveryMode::AtLeastOnce),
        ("taskmanager", DeliveryMode::FaultAccounted),
    ] {
        let s = scenario(4, 4, "collect", &with_strategy(strategy), faults());
        assert_eq!(derived(&s).0, Some(JobOutcome::Finished), "{strategy}");
        assert_eq!(derived(&s).1, want, "{strategy}");
    }
    let s = scenario(
        4,
        4,
        "collect-transactional",
        &with_strategy("taskmanager"),
        faults(),
    );
    assert_eq!(derived(&s).1, DeliveryMode::FaultAccounted);
}

#[test]
fn a_permanent_crash_of_the_only_taskmanager_fails_the_job_without_restarts() {
    let s = scenario(1, 2, "collect", "", vec![crash(secs(1), 1, None)]);
    let d = derive_expectations(&s);
    assert_eq!(d.expect.job, Some(JobOutcome::Failed), "{:?}", d.why);
    assert_eq!(d.expect.delivery, DeliveryMode::Unchecked);
    assert_eq!(d.expect.drain_within, None);
    // With restarts it waits for slots that never come: nothing can be claimed.
    let s = scenario(1, 2, "collect", FULL, vec![crash(secs(1), 1, None)]);
    let d = derive_expectations(&s);
    assert_eq!(d.expect.job, None, "{:?}", d.why);
    assert!(d.why[0].contains("may never come back"), "{:?}", d.why);
    // A crash after the input may have ended may find the job finished.
    let s = scenario(1, 2, "collect", "", vec![crash(ms(4_900), 1, None)]);
    assert_eq!(derived(&s).0, None);
}

#[test]
fn a_crash_of_a_taskmanager_that_may_run_no_task_claims_nothing_without_restarts() {
    // Parallelism 4 fits on two of the four TaskManagers: tm-2 may be idle.
    let s = scenario(4, 4, "collect", "", vec![crash(secs(1), 2, Some(secs(1)))]);
    assert_eq!(derived(&s), (None, DeliveryMode::Unchecked, None));
    // At parallelism 8 every TaskManager runs tasks.
    let s = scenario(4, 8, "collect", "", vec![crash(secs(1), 2, Some(secs(1)))]);
    assert_eq!(derived(&s).0, Some(JobOutcome::Failed));
}

#[test]
fn enough_slots_elsewhere_ride_out_a_taskmanager_gone_for_good() {
    let s = scenario(
        4,
        4,
        "collect-transactional",
        FULL,
        vec![crash(secs(2), 3, None)],
    );
    assert_eq!(derived(&s).0, Some(JobOutcome::Finished));
    assert_eq!(derived(&s).1, DeliveryMode::ExactlyOnce);
}

#[test]
fn more_failovers_than_the_restart_strategy_allows_claim_nothing() {
    let two_attempts = FULL.replace("\"10\"", "\"2\"");
    let crashes = vec![
        crash(secs(1), 1, Some(secs(1))),
        crash(secs(3), 2, Some(secs(1))),
    ];
    // Each crash may cost two failovers: four, more than two.
    let s = scenario(4, 4, "collect", &two_attempts, crashes.clone());
    let d = derive_expectations(&s);
    assert_eq!(d.expect.job, None);
    assert!(d.why[0].contains("more than the restart strategy allows"));
    let four_attempts = FULL.replace("\"10\"", "\"4\"");
    let s = scenario(4, 4, "collect", &four_attempts, crashes);
    assert_eq!(derived(&s).0, Some(JobOutcome::Finished));
}

#[test]
fn a_cut_is_noticed_by_how_long_it_holds_the_heartbeats_not_by_how_long_it_lasts() {
    // The link tries a held message 1, 3, 7, ... ms after it was sent: a 1.243 s cut holds
    // the heartbeats for 2.047 s (a fuzz finding: under a 2 s timeout the TaskManager gave up
    // 0.6 s after the heal, and its restart from no checkpoint replayed what the sink had).
    assert_eq!(
        held_by_cut(Some(Duration::from_millis(1_243))),
        Some(Duration::from_millis(2_047))
    );
    assert_eq!(held_by_cut(None), None);
    let cut = |s| vec![partition(secs(1), NodeName::TaskManager(1), Some(secs(s)))];
    // Under the 5 s timeout less the 1 s interval and the margin: a 3 s cut holds them for
    // 4.095 s and may be noticed; a 2 s one holds them 2.047 s and is not.
    let s = scenario(4, 8, "collect", "", cut(3));
    assert_ne!(derived(&s).1, DeliveryMode::ExactlyOnce);
    let s = scenario(4, 8, "collect", "", cut(2));
    assert_eq!(derived(&s).1, DeliveryMode::ExactlyOnce);
}

#[test]
fn a_cut_off_shorter_than_the_heartbeat_timeout_restarts_nothing() {
    // A 2 s cut holds what it cut off until the link's try 2.047 s after it was sent; with
    // the 1 s interval and the margin that stays under the 5 s timeout: exactly-once even
    // with the plain sink and no restarts at all.
    let s = scenario(
        4,
        8,
        "collect",
        "",
        vec![partition(secs(1), NodeName::TaskManager(1), Some(secs(2)))],
    );
    assert_eq!(
        derived(&s),
        (
            Some(JobOutcome::Finished),
            DeliveryMode::ExactlyOnce,
            Some(drain_bound(&s.config, secs(5)))
        )
    );
    // 4 s may be noticed: without restarts the job may fail, or not.
    let s = scenario(
        4,
        8,
        "collect",
        "",
        vec![partition(secs(1), NodeName::TaskManager(1), Some(secs(4)))],
    );
    assert_eq!(derived(&s).0, None);
    // 8 s certainly is (past timeout + interval + 1 s), 1 s in: by 8 s, before the input ends
    // only if the input lasts that long; this one lasts 5 s.
    let s = scenario(
        4,
        8,
        "collect",
        "",
        vec![partition(ms(500), NodeName::TaskManager(1), Some(secs(8)))],
    );
    assert_eq!(derived(&s).0, None);
}

#[test]
fn a_jobmanager_crash_or_a_store_gone_for_good_claims_nothing() {
    for fault in [
        Fault::new(
            secs(1),
            FaultKind::Crash {
                target: NodeName::JobManager,
                restart_after: Some(secs(1)),
            },
        ),
        partition(secs(1), NodeName::JobManager, Some(secs(10))),
        partition(secs(1), NodeName::SourceLog, None),
        Fault::new(
            secs(1),
            FaultKind::Crash {
                target: NodeName::SinkStore,
                restart_after: None,
            },
        ),
    ] {
        let s = scenario(4, 4, "collect-transactional", FULL, vec![fault.clone()]);
        assert_eq!(
            derived(&s),
            (None, DeliveryMode::Unchecked, None),
            "{fault}"
        );
    }
    // Healing external faults and the checkpoint store gone for good only hold the job up.
    for fault in [
        partition(secs(1), NodeName::SourceLog, Some(secs(3))),
        partition(secs(1), NodeName::CheckpointStore, None),
        Fault::new(
            secs(1),
            FaultKind::PacketLoss {
                rate: 0.1,
                duration: None,
            },
        ),
    ] {
        let s = scenario(4, 4, "collect", "", vec![fault.clone()]);
        let (job, delivery, _) = derived(&s);
        assert_eq!(
            (job, delivery),
            (Some(JobOutcome::Finished), DeliveryMode::ExactlyOnce),
            "{fault}"
        );
    }
}

#[test]
fn jobs_compared_with_a_reference_get_exactly_once_or_nothing() {
    let mut s = scenario(
        4,
        4,
        "collect-transactional",
        FULL,
        vec![crash(secs(2), 2, Some(secs(3)))],
    );
    s.job.name = "ad-stats".into();
    assert_eq!(derived(&s).1, DeliveryMode::ExactlyOnce);
    s.job.params.insert("sink".into(), "collect".into());
    assert_eq!(derived(&s).1, DeliveryMode::Unchecked);
    // wordcount's counts name their line: deterministic with one source subtask only.
    s.job.name = "wordcount".into();
    s.job
        .params
        .insert("sink".into(), "collect-transactional".into());
    assert_eq!(derived(&s).1, DeliveryMode::Unchecked);
    s.job.params.insert("parallelism".into(), "1".into());
    assert_eq!(derived(&s).1, DeliveryMode::ExactlyOnce);
}

#[test]
fn the_restart_strategies_tolerate_what_they_allow() {
    let config = |pairs: &[(&str, &str)]| Configuration::from_pairs(pairs.iter().copied()).unwrap();
    let none = config(&[("restart-strategy.type", "none")]);
    assert!(tolerates(&none, 0) && !tolerates(&none, 1));
    let fixed = config(&[
        ("restart-strategy.type", "fixed-delay"),
        ("restart-strategy.fixed-delay.attempts", "3"),
    ]);
    assert!(tolerates(&fixed, 3) && !tolerates(&fixed, 4));
    let rate = config(&[
        ("restart-strategy.type", "failure-rate"),
        (
            "restart-strategy.failure-rate.max-failures-per-interval",
            "2",
        ),
        ("restart-strategy.failure-rate.failure-rate-interval", "60s"),
    ]);
    assert!(tolerates(&rate, 2) && !tolerates(&rate, 3));
    // Unset with checkpoints: exponential-delay, as good as unbounded.
    let default = config(&[("execution.checkpointing.interval", "1s")]);
    assert!(tolerates(&default, 50));
}

#[test]
fn a_cut_that_may_meet_a_redeployment_may_cost_a_failover_per_back_off() {
    // A 2 s partition of tm-1 goes unnoticed (it holds the heartbeats 2.047 s), but the
    // crash of tm-2 redeploys the job, and a consumer's connection to tm-1 is refused while
    // it lasts: with the 1 s back-off (and a redeployment's 10 ms), at its start and once
    // more, on top of the crash's 2.
    let faults = vec![
        crash(secs(1), 2, Some(secs(1))),
        partition(secs(1), NodeName::TaskManager(1), Some(secs(2))),
    ];
    let four = FULL.replace("\"10\"", "\"4\"");
    let s = scenario(4, 4, "collect", &four, faults.clone());
    assert_eq!(derived(&s).0, Some(JobOutcome::Finished));
    assert_eq!(derived(&s).1, DeliveryMode::AtLeastOnce);
    let three = FULL.replace("\"10\"", "\"3\"");
    let s = scenario(4, 4, "collect", &three, faults);
    assert_eq!(derived(&s).0, None);
    // Packet loss for good drops a connect now and then as long as the job redeploys: only
    // an unbounded strategy rides that out.
    let lossy = vec![
        crash(secs(1), 2, Some(secs(1))),
        Fault::new(
            secs(1),
            FaultKind::PacketLoss {
                rate: 0.05,
                duration: None,
            },
        ),
    ];
    let s = scenario(4, 4, "collect", FULL, lossy.clone());
    assert_eq!(derived(&s).0, None);
    let unbounded = "\"execution.checkpointing.interval\" = \"1s\"";
    let s = scenario(4, 4, "collect", unbounded, lossy);
    assert_eq!(derived(&s).0, Some(JobOutcome::Finished));
    // A cut in the first deployment's time, without restarts: the job may fail, or not.
    let s = scenario(
        4,
        8,
        "collect",
        "",
        vec![partition(ms(100), NodeName::TaskManager(1), Some(secs(2)))],
    );
    assert_eq!(derived(&s).0, None);
}

#[test]
fn what_may_stop_the_job_for_good_is_named_by_index() {
    use crate::scenario_file::stopping_for_good;
    let faults = vec![
        crash(secs(1), 2, None),
        partition(secs(2), NodeName::JobManager, None),
        partition(secs(3), NodeName::SinkStore, None),
        partition(secs(4), NodeName::CheckpointStore, None),
    ];
    // 4 x 2 slots at parallelism 4 ride out tm-2 gone; the JobManager or the sink store cut
    // off for good stop the job; the checkpoint store does not.
    let s = scenario(4, 4, "collect", FULL, faults.clone());
    assert_eq!(stopping_for_good(&s), vec![1, 2]);
    // At parallelism 8 tm-2 gone for good leaves too few slots too.
    let s = scenario(4, 8, "collect", FULL, faults);
    assert_eq!(stopping_for_good(&s), vec![0, 1, 2]);
}

/// A windowed job's output comes once per window: the derived stall bound allows that pause
/// on top of the steady one (found by the scenario fuzzer: fuzz-a23ffcff17fd5e52).
#[test]
fn a_windowed_job_may_pause_its_output_for_a_window() {
    let jobs = rill::jobs::builtin();
    let judge = crate::judge::Judge::new(&jobs);
    let plain = scenario(4, 4, "collect", "", Vec::new());
    let mut windowed = plain.clone();
    windowed.job = rill::api::JobSpec::new("ad-stats")
        .with("parallelism", 4)
        .with("window-ms", 2000)
        .with("sink", "collect");
    let (plain, windowed) = (judge.bounds(&plain, &[]), judge.bounds(&windowed, &[]));
    assert_eq!(plain.stall.value, secs(1));
    assert_eq!(windowed.stall.value, secs(3), "{}", windowed.stall.source);
    assert!(windowed.stall.source.contains("windows 2.000s"));
}
