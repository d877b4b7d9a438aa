//! rill's named scenario files: all of them parse, are named after their files, write back to
//! themselves, and read as written. The parser's own tests live with it in
//! `rill_sim::scenario_file`.

use std::time::Duration;

use rill_sim::scenario_file::{parse_scenario, scenario_to_toml, ScenarioError};
use rill_sim::{DeliveryMode, Fault, FaultKind, JobOutcome};

use crate::*;

#[test]
fn every_spec_parses_and_is_named_after_its_file() {
    let all = load_dir().unwrap();
    let names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "bench-crash-4x2",
            "buggify-tm-crash-taskmanager",
            "checkpoint-store-down",
            "clock-skew",
            "clock-skew-crash-full",
            "crash-during-checkpoint-full",
            "crash-during-checkpoint-write-full",
            "crash-during-restore-full",
            "etl-crash-region",
            "full-slots-crash-taskmanager",
            "jm-crash",
            "jm-pause-full",
            "jm-tm-partition",
            "jm-tm-partition-full",
            "jm-tm-partition-region",
            "jm-tm-partition-taskmanager",
            "latency-crash-during-checkpoint-full",
            "latency-during-checkpoints",
            "link-partition-data-taskmanager",
            "link-partition-jm-tm-full",
            "long-pause",
            "loss-and-latency",
            "oom-kill-4x2-full",
            "oom-kill-4x2-region",
            "oom-kill-4x2-taskmanager",
            "oom-skew",
            "oom-skew-balanced",
            "partition-heals-in-time",
            "partition-heals-in-time-taskmanager",
            "partition-zombie-taskmanager",
            "replacement-crash-taskmanager",
            "sink-store-down",
            "source-log-down",
            "spare-slots-crash-region",
            "spare-slots-crash-taskmanager",
            "steady-4x2",
            "store-failure",
            "swarm",
            "swarm-full",
            "swarm-network-taskmanager",
            "swarm-region",
            "swarm-taskmanager",
            "tm-crash-4x2",
            "tm-crash-4x2-full",
            "tm-crash-4x2-region",
            "tm-crash-4x2-taskmanager",
            "tm-deaf-taskmanager",
            "tm-mute-region",
            "tm-pause-zombie-full",
            "two-crashes-two-attempts-region",
        ]
    );
    for s in &all {
        assert!(
            !s.description.is_empty() && !s.description.contains('\n'),
            "{}",
            s.name
        );
        assert_eq!(load(&s.name).unwrap(), *s);
    }
}

#[test]
fn tm_crash_spec_reads_as_written() {
    let s = load("tm-crash-4x2").unwrap();
    assert_eq!(
        (s.cluster.taskmanagers, s.cluster.slots_per_taskmanager),
        (4, 2)
    );
    assert_eq!(s.job.params["parallelism"], "8");
    assert_eq!(s.config.heartbeat_timeout(), Duration::from_secs(5));
    assert_eq!(
        s.faults,
        [Fault {
            at: Duration::from_secs(5),
            kind: FaultKind::Crash {
                target: "tm-2".into(),
                restart_after: Some(Duration::from_secs(10))
            },
            anchor: None,
        }]
    );
    assert_eq!(s.expect.job, Some(JobOutcome::Failed));
    assert_eq!(s.expect.delivery, DeliveryMode::Unchecked);
    let swarm = load("swarm").unwrap().swarm.unwrap();
    assert_eq!(
        (swarm.min_faults, swarm.max_faults, swarm.until),
        (1, 4, Duration::from_secs(10))
    );
}

#[test]
fn every_spec_writes_back_to_itself() {
    for s in load_dir().unwrap() {
        let text = scenario_to_toml(&s);
        assert_eq!(
            parse_scenario(&format!("{}.toml", s.name), &text).unwrap(),
            s,
            "{text}"
        );
    }
}

#[test]
fn load_of_an_unknown_name_lists_the_known_ones() {
    let e = load("no-such-scenario").unwrap_err();
    assert!(
        matches!(&e, ScenarioError::UnknownScenario { known, .. } if known.iter().any(|k| k == "steady-4x2"))
    );
    assert!(
        e.to_string()
            .starts_with("no scenario named 'no-such-scenario' in "),
        "{e}"
    );
}

#[test]
fn oom_skew_mirrors_its_memory_limit_into_the_configuration() {
    let s = load("oom-skew").unwrap();
    assert_eq!(s.cluster.memory_mb, Some(2));
    assert_eq!(s.config.memory_process_size(), 2 << 20);
}
