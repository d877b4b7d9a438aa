//! Faults anchored to the job's own cycle (`at = { after = ... }`): the runner begins them at
//! their event's time plus their offset, reports those whose event never comes, and the named
//! scenarios built on them crash where they say. Also a measurement, not run by default, of
//! where a swarm's faults land in the checkpoint cycle.
#![cfg(madsim)]

use std::time::Duration;

use rill::config::Configuration;
use rill::events::{AbortReason, ClusterEvent};
use rill::graph::{CheckpointId, ExecutionState, JobStatus};
use rill::JobSpec;
use rill_scenarios::load;
use rill_sim::fault::{Anchor, AnchorEvent};
use rill_sim::history::RunHistory;
use rill_sim::runner::run;
use rill_sim::{ClusterShape, DeliveryMode, Expectations, Fault, FaultKind, JobOutcome, Scenario};

/// CI's fixed seeds (as in sim_scenarios).
const CI_SEEDS: [u64; 3] = [1, 2, 3];

/// Each checkpoint's alignment window: from its trigger to its completion or abort.
fn checkpoint_windows(h: &RunHistory) -> Vec<(Duration, Duration)> {
    let mut open: Vec<(rill::graph::CheckpointId, Duration)> = Vec::new();
    let mut out = Vec::new();
    for e in &h.events {
        match &e.event {
            ClusterEvent::CheckpointTriggered { checkpoint, .. } => open.push((*checkpoint, e.at)),
            ClusterEvent::CheckpointCompleted { checkpoint, .. }
            | ClusterEvent::CheckpointAborted { checkpoint, .. } => {
                if let Some(i) = open.iter().position(|(c, _)| c == checkpoint) {
                    out.push((open.remove(i).1, e.at));
                }
            }
            _ => {}
        }
    }
    out
}

/// Not a test: measures where swarm faults land (`RILL_MEASURE=swarm-full cargo test ... -- --ignored`).
#[test]
#[ignore]
fn measure_swarm_fault_phases() {
    let name = std::env::var("RILL_MEASURE").unwrap_or_else(|_| "swarm-full".into());
    let scenario = load(&name).expect("valid");
    let (mut seeds_inside, mut faults, mut inside, mut after_end, mut never) = (0, 0, 0, 0, 0);
    for seed in 1..=20 {
        let o = run(&scenario, seed);
        let h = &o.history;
        let windows = checkpoint_windows(h);
        let finished = h
            .status_changes()
            .find(|(_, s)| *s == JobStatus::Finished)
            .map(|(at, _)| at)
            .unwrap_or(h.end);
        let mut any = false;
        let mut line = Vec::new();
        for f in &h.faults {
            faults += 1;
            let Some(b) = f.began_at else {
                never += 1;
                line.push("never".to_string());
                continue;
            };
            if b >= finished {
                after_end += 1;
            }
            let hit = windows.iter().any(|(t, e)| *t <= b && b < *e);
            if hit {
                inside += 1;
                any = true;
            }
            let anchored = if f.fault.anchor.is_some() { "a" } else { "" };
            line.push(format!(
                "{}ms{anchored}{}",
                b.as_millis(),
                if hit { "*" } else { "" }
            ));
        }
        seeds_inside += any as u32;
        for v in o.verdicts.iter().filter(|v| !v.passed) {
            println!("  {}: {} ({:?})", v.checker, v.summary, v.evidence);
        }
        println!(
            "seed {seed:>2}: end {}ms passed {} faults [{}]",
            finished.as_millis(),
            o.passed(),
            line.join(" ")
        );
    }
    println!("{name}: {seeds_inside}/20 seeds with a fault inside an alignment window; faults {faults}, inside {inside}, after the job ended {after_end}, never began {never}");
}

/// A small keyed count checkpointing every second, with `faults`.
fn scenario(name: &str, faults: Vec<Fault>) -> Scenario {
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
            .with("records", 40_000)
            .with("rate", 8_000)
            .with("sink", "collect-transactional"),
        config: Configuration::new()
            .with("heartbeat.interval", "1s")
            .and_then(|c| c.with("heartbeat.timeout", "5s"))
            .and_then(|c| c.with("execution.checkpointing.interval", "1s"))
            .and_then(|c| c.with("jobmanager.execution.failover-strategy", "full"))
            .and_then(|c| c.with("restart-strategy.type", "fixed-delay"))
            .and_then(|c| c.with("restart-strategy.fixed-delay.attempts", "3"))
            .and_then(|c| c.with("restart-strategy.fixed-delay.delay", "1s"))
            .expect("valid"),
        run_for: Duration::from_secs(60),
        faults,
        swarm: None,
        buggify: Vec::new(),
        expect: Expectations {
            delivery: DeliveryMode::ExactlyOnce,
            job: Some(JobOutcome::Finished),
            ..Expectations::default()
        },
    }
}

fn checkpoint_event(
    h: &RunHistory,
    n: u64,
    what: fn(&ClusterEvent) -> Option<CheckpointId>,
) -> Option<Duration> {
    h.events
        .iter()
        .find(|e| what(&e.event) == Some(CheckpointId(n)))
        .map(|e| e.at)
}

fn triggered(e: &ClusterEvent) -> Option<CheckpointId> {
    match e {
        ClusterEvent::CheckpointTriggered { checkpoint, .. } => Some(*checkpoint),
        _ => None,
    }
}

fn acknowledged(e: &ClusterEvent) -> Option<CheckpointId> {
    match e {
        ClusterEvent::CheckpointAcknowledged { checkpoint, .. } => Some(*checkpoint),
        _ => None,
    }
}

fn completed(e: &ClusterEvent) -> Option<CheckpointId> {
    match e {
        ClusterEvent::CheckpointCompleted { checkpoint, .. } => Some(*checkpoint),
        _ => None,
    }
}

/// Aborted by the crash: by the failover it caused, or by one of its tasks ending first (a
/// task downstream of the crashed TaskManager may report its lost input before the
/// JobManager hears the TaskManager is gone; which comes first is the seed's).
fn aborted_by_the_crash(e: &ClusterEvent) -> Option<CheckpointId> {
    match e {
        ClusterEvent::CheckpointAborted {
            checkpoint,
            reason: AbortReason::Failover | AbortReason::TaskEnded(_),
            ..
        } => Some(*checkpoint),
        _ => None,
    }
}

/// Whether `began` is `expected`, give or take the microseconds madsim's timers fire late.
fn near(began: Option<Duration>, expected: Duration) -> bool {
    began.is_some_and(|b| b >= expected && b - expected < Duration::from_millis(1))
}

fn pause_tm1(anchor: Anchor, from: Duration) -> Fault {
    Fault::anchored(
        anchor,
        from,
        FaultKind::Pause {
            target: "tm-1".into(),
            duration: Duration::from_millis(300),
        },
    )
}

/// An anchored fault begins exactly its offset after its event, shows there in the timeline,
/// and one anchored to the first checkpoint after a time finds that checkpoint.
#[test]
fn an_anchored_fault_begins_at_its_event_plus_its_offset() {
    let ms = Duration::from_millis;
    let faults = vec![
        pause_tm1(
            Anchor {
                event: AnchorEvent::CheckpointTriggered,
                checkpoint: Some(2),
                offset: ms(30),
            },
            Duration::ZERO,
        ),
        pause_tm1(
            Anchor {
                event: AnchorEvent::CheckpointAcknowledged,
                checkpoint: None,
                offset: Duration::ZERO,
            },
            ms(3_500),
        ),
    ];
    let o = run(&scenario("anchored-pause", faults), 1);
    let h = &o.history;
    assert!(o.passed(), "{:?}", o.verdicts);
    let chk2 = checkpoint_event(h, 2, triggered).expect("chk-2 triggered");
    assert!(
        near(h.faults[0].began_at, chk2 + ms(30)),
        "{:?}",
        h.faults[0]
    );
    assert!(h.faults[0].took_effect());
    // chk-2 completes after the pause began: it was inside its alignment.
    assert!(checkpoint_event(h, 2, completed).is_some_and(|c| c > chk2 + ms(30)));
    // The first checkpoint acknowledged at or after 3.5 s: chk-4 (chk-3 is acknowledged by
    // about 3.2 s).
    let ack = h
        .events
        .iter()
        .find(|e| e.at >= ms(3_500) && acknowledged(&e.event).is_some())
        .expect("an acknowledgement after 3.5 s");
    assert!(near(h.faults[1].began_at, ack.at), "{:?}", h.faults[1]);
    let shown = rill_sim::events::timeline(h);
    let line = shown
        .iter()
        .find(|(_, l)| l.contains("fault pause tm-1 for 300ms at chk-2 triggered +30ms"))
        .expect("the fault's line");
    assert!(near(Some(line.0), chk2 + ms(30)), "{}", line.1);
}

/// A fault whose anchor never comes is recorded as not applied, with why; it took no effect,
/// so the run is judged as a fault-free one, and the timeline says so at the run's end.
#[test]
fn an_anchor_that_never_comes_is_reported_not_applied() {
    let never = Fault::anchored(
        Anchor {
            event: AnchorEvent::CheckpointTriggered,
            checkpoint: Some(1_000),
            offset: Duration::from_millis(5),
        },
        Duration::ZERO,
        FaultKind::Crash {
            target: "tm-2".into(),
            restart_after: Some(Duration::from_secs(5)),
        },
    );
    let restore = Fault::anchored(
        Anchor {
            event: AnchorEvent::TasksRedeployed,
            checkpoint: None,
            offset: Duration::ZERO,
        },
        Duration::ZERO,
        FaultKind::Crash {
            target: "tm-3".into(),
            restart_after: Some(Duration::from_secs(5)),
        },
    );
    let o = run(&scenario("anchor-never-comes", vec![never, restore]), 2);
    let h = &o.history;
    assert!(h.finished(), "{:?}", h.job_status);
    for f in &h.faults {
        assert_eq!(f.began_at, None);
        assert!(!f.took_effect());
        let why = f.not_applied.as_deref().unwrap_or_default();
        assert!(
            why.starts_with("its anchor never came before the run ended at "),
            "{why}"
        );
    }
    let shown = rill_sim::events::timeline(h);
    let last = &shown
        .iter()
        .rev()
        .find(|(_, l)| l.contains("harness"))
        .expect("a harness line")
        .1;
    assert!(
        last.contains(
            "fault not applied: crash tm-3 for 5s at tasks redeployed: its anchor never came"
        ),
        "{last}"
    );
    assert!(o.passed(), "{:?}", o.verdicts);
    let reference = o
        .verdicts
        .iter()
        .find(|v| v.checker == "delivery")
        .expect("delivery");
    println!("{}: {}", reference.checker, reference.summary);
}

/// crash-during-checkpoint-full crashes tm-2 inside checkpoint 5: after its trigger, before
/// it could complete; the failover aborts it and it never completes.
#[test]
fn crash_during_checkpoint_crashes_inside_the_checkpoint() {
    let scenario = load("crash-during-checkpoint-full").expect("valid");
    for seed in CI_SEEDS {
        let o = run(&scenario, seed);
        let h = &o.history;
        let crash = h
            .faults
            .iter()
            .find(|f| matches!(f.fault.kind, FaultKind::Crash { .. }))
            .expect("the crash");
        let began = crash.began_at.expect("the crash began");
        let trigger = checkpoint_event(h, 5, triggered).expect("chk-5 triggered");
        let abort =
            checkpoint_event(h, 5, aborted_by_the_crash).expect("chk-5 aborted by the crash");
        assert!(
            near(Some(began), trigger + Duration::from_millis(20)),
            "seed {seed}"
        );
        assert!(
            trigger < began && began <= abort,
            "seed {seed}: {trigger:?} {began:?} {abort:?}"
        );
        assert_eq!(
            checkpoint_event(h, 5, completed),
            None,
            "seed {seed}: chk-5 completed"
        );
        assert_eq!(
            checkpoint_event(h, 5, acknowledged),
            None,
            "seed {seed}: chk-5 acknowledged"
        );
        assert!(o.passed(), "seed {seed}: {:?}", o.verdicts);
    }
}

/// crash-during-checkpoint-write-full crashes tm-2 after every task acknowledged checkpoint 5
/// and before the stalled store holds it: aborted, never completed.
#[test]
fn crash_during_checkpoint_write_crashes_between_acknowledgement_and_completion() {
    let scenario = load("crash-during-checkpoint-write-full").expect("valid");
    let o = run(&scenario, 1);
    let h = &o.history;
    let crash = h
        .faults
        .iter()
        .find(|f| matches!(f.fault.kind, FaultKind::Crash { .. }))
        .expect("the crash");
    let began = crash.began_at.expect("the crash began");
    let ack = checkpoint_event(h, 5, acknowledged).expect("chk-5 acknowledged");
    let abort = checkpoint_event(h, 5, aborted_by_the_crash).expect("chk-5 aborted by the crash");
    assert!(near(Some(began), ack + Duration::from_millis(100)));
    assert!(began <= abort);
    assert_eq!(checkpoint_event(h, 5, completed), None);
    assert!(o.passed(), "{:?}", o.verdicts);
}

/// crash-during-restore-full's second crash comes while the redeployed attempts restore:
/// after the redeployment, before all of them run again, and fails the job over again.
#[test]
fn crash_during_restore_crashes_while_the_job_restores() {
    let scenario = load("crash-during-restore-full").expect("valid");
    for seed in CI_SEEDS {
        let o = run(&scenario, seed);
        let h = &o.history;
        let second = h.faults[1].began_at.expect("the second crash began");
        let (redeployed, deployed) = h
            .events
            .iter()
            .filter_map(|e| match &e.event {
                ClusterEvent::TasksDeployed { tasks, .. } => Some((e.at, tasks.len())),
                _ => None,
            })
            .nth(1)
            .expect("a redeployment");
        assert!(
            near(Some(second), redeployed + Duration::from_millis(10)),
            "seed {seed}"
        );
        let running_before = h
            .events
            .iter()
            .filter(|e| e.at >= redeployed && e.at < second)
            .filter(|e| {
                matches!(
                    e.event,
                    ClusterEvent::SubtaskStateChanged {
                        state: ExecutionState::Running,
                        ..
                    }
                )
            })
            .count();
        assert!(
            running_before < deployed,
            "seed {seed}: {running_before} of {deployed} redeployed subtasks ran before the crash"
        );
        assert!(
            h.events
                .iter()
                .any(|e| e.at >= second && matches!(e.event, ClusterEvent::FailoverStarted { .. })),
            "seed {seed}: the second crash fails the restoring job over"
        );
        assert!(o.passed(), "seed {seed}: {:?}", o.verdicts);
    }
}

/// Anchored faults keep a seed's run reproducible: the same trace, events, faults and outputs
/// twice, for a scenario anchored to a checkpoint's acknowledgement and for a swarm whose
/// draws anchor faults to checkpoint triggers.
#[test]
fn anchored_runs_replay_identically() {
    use rill_sim::trace::first_difference;
    for (name, seed) in [("crash-during-checkpoint-write-full", 7), ("swarm-full", 5)] {
        let scenario = load(name).expect("valid");
        let (a, b) = (run(&scenario, seed), run(&scenario, seed));
        assert!(
            a.history
                .faults
                .iter()
                .any(|f| f.fault.anchor.is_some() && f.took_effect()),
            "{name} seed {seed} has an anchored fault that took effect"
        );
        if let Some((line, left, right)) = first_difference(&a.history.trace, &b.history.trace) {
            panic!("{name} seed {seed}: first difference at line {line}:\n  {left:?}\n  {right:?}");
        }
        assert_eq!(a.history.events, b.history.events, "{name}");
        assert_eq!(a.history.faults, b.history.faults, "{name}");
        assert_eq!(a.history.outputs, b.history.outputs, "{name}");
    }
}
