//! Faults anchored to the job's cycle: `at = { after = "...", ... }`, what it parses to,
//! what it refuses and why, and that written plans keep their anchors.

use std::time::Duration;

use super::{err, ms, with};
use crate::fault::{Anchor, AnchorEvent};
use crate::scenario_file::*;
use crate::FaultKind;

const CHECKPOINTS: &str = "[config]\n\"execution.checkpointing.interval\" = \"1s\"\n";

/// BASE checkpointing every second, with one crash of tm-1 whose `at` is `at`.
fn crash_at(at: &str) -> String {
    format!("{CHECKPOINTS}[[faults]]\nat = {at}\nkind = \"crash\"\ntarget = \"tm-1\"\n")
}

#[test]
fn anchors_parse_with_their_defaults() {
    let cases: &[(&str, Duration, Anchor)] = &[
        (
            r#"{ after = "checkpoint-triggered", checkpoint = 3, offset = "20ms" }"#,
            Duration::ZERO,
            Anchor {
                event: AnchorEvent::CheckpointTriggered,
                checkpoint: Some(3),
                offset: ms(20),
            },
        ),
        (
            r#"{ after = "checkpoint-acknowledged", from = "4500ms" }"#,
            ms(4_500),
            Anchor {
                event: AnchorEvent::CheckpointAcknowledged,
                checkpoint: None,
                offset: Duration::ZERO,
            },
        ),
        (
            r#"{ after = "checkpoint-completed", checkpoint = 1 }"#,
            Duration::ZERO,
            Anchor {
                event: AnchorEvent::CheckpointCompleted,
                checkpoint: Some(1),
                offset: Duration::ZERO,
            },
        ),
        (
            r#"{ after = "failover-started", offset = "1s" }"#,
            Duration::ZERO,
            Anchor {
                event: AnchorEvent::FailoverStarted,
                checkpoint: None,
                offset: ms(1_000),
            },
        ),
        (
            r#"{ after = "tasks-redeployed", from = "5s", offset = "5ms" }"#,
            ms(5_000),
            Anchor {
                event: AnchorEvent::TasksRedeployed,
                checkpoint: None,
                offset: ms(5),
            },
        ),
    ];
    for (at, from, anchor) in cases {
        let s = with(&crash_at(at)).unwrap_or_else(|e| panic!("{at}: {e}"));
        let f = &s.faults[0];
        assert_eq!((f.at, f.anchor), (*from, Some(*anchor)), "{at}");
        assert!(matches!(f.kind, FaultKind::Crash { .. }));
    }
    // A plain duration is still a fixed time.
    let s = with(&crash_at("\"1500ms\"")).unwrap();
    assert_eq!((s.faults[0].at, s.faults[0].anchor), (ms(1_500), None));
}

#[test]
fn bad_anchors_are_refused_with_their_path_and_the_fix() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{ after = "checkpoint-trigered", checkpoint = 3 }"#,
            "t.toml: `faults[0].at.after`: unknown anchor 'checkpoint-trigered'; expected one of: checkpoint-triggered, checkpoint-acknowledged, checkpoint-completed, failover-started, tasks-redeployed",
        ),
        (
            r#"{ after = "checkpoint-triggered", checkpoint = 0 }"#,
            "t.toml: `faults[0].at.checkpoint`: 0: checkpoints are numbered from 1 (chk-1 is the job's first)",
        ),
        (
            r#"{ after = "checkpoint-triggered", checkpoint = -2 }"#,
            "t.toml: `faults[0].at.checkpoint`: -2: checkpoints are numbered from 1 (chk-1 is the job's first)",
        ),
        (
            r#"{ after = "checkpoint-triggered", checkpoint = "3" }"#,
            "t.toml: `faults[0].at.checkpoint`: expected an integer, found string \"3\"",
        ),
        (
            r#"{ after = "failover-started", checkpoint = 2 }"#,
            "t.toml: `faults[0].at.checkpoint`: only checkpoint anchors name a checkpoint; 'failover-started' waits for the first such event at or after `from`",
        ),
        (
            r#"{ after = "tasks-redeployed", from = "60s" }"#,
            "t.toml: `faults[0].at.from`: 60s is not before run_for (60s)",
        ),
        (
            "3",
            "t.toml: `faults[0].at`: expected a duration (\"5s\") or an anchor ({ after = \"checkpoint-triggered\", checkpoint = 3, offset = \"20ms\" }), found integer 3",
        ),
    ];
    for (at, expected) in cases {
        let e = err(&crash_at(at));
        assert_eq!(e.to_string(), *expected, "{at}");
    }
    // Shape errors keep their own variants.
    let e = err(&crash_at(
        r#"{ after = "checkpoint-triggered", offest = "20ms" }"#,
    ));
    assert_eq!(
        e.to_string(),
        "t.toml: unknown key `faults[0].at.offest`; accepted keys: after, checkpoint, from, offset"
    );
    let e = err(&crash_at(r#"{ checkpoint = 3 }"#));
    assert_eq!(
        e.to_string(),
        "t.toml: missing required key `faults[0].at.after`"
    );
    let e = err(&crash_at(
        r#"{ after = "checkpoint-triggered", offset = "soon" }"#,
    ));
    assert!(
        matches!(e, ScenarioError::BadDuration { ref path, .. } if path == "faults[0].at.offset"),
        "{e}"
    );
}

#[test]
fn a_checkpoint_anchor_needs_a_scenario_that_checkpoints() {
    let text =
        crash_at(r#"{ after = "checkpoint-triggered", checkpoint = 3 }"#).replace(CHECKPOINTS, "");
    assert_eq!(
        err(&text).to_string(),
        "t.toml: `faults[0].at.after`: 'checkpoint-triggered' waits for a checkpoint, but the scenario takes none (execution.checkpointing.interval is not set)"
    );
    // A restore anchor does not.
    let text = crash_at(r#"{ after = "tasks-redeployed", from = "5s" }"#).replace(CHECKPOINTS, "");
    assert!(with(&text).is_ok());
}

#[test]
fn written_plans_keep_their_anchors() {
    let text = format!(
        "{}\n[[faults]]\nat = {}\nkind = \"pause\"\ntarget = \"tm-2\"\nduration = \"1s\"\n",
        crash_at(r#"{ after = "checkpoint-triggered", checkpoint = 3, offset = "20ms" }"#),
        r#"{ after = "tasks-redeployed", from = "5s" }"#
    );
    let s = with(&text).unwrap();
    let written = faults_to_toml(&s.faults);
    assert!(
        written.starts_with("[[faults]]\nat = { after = \"checkpoint-triggered\", checkpoint = 3, offset = \"20ms\" }\nkind = \"crash\""),
        "{written}"
    );
    assert!(
        written.contains("at = { after = \"tasks-redeployed\", from = \"5s\" }\n"),
        "{written}"
    );
    let again = with(&format!("{CHECKPOINTS}{written}")).unwrap();
    assert_eq!(again.faults, s.faults);
    let whole = scenario_to_toml(&s);
    assert_eq!(parse_scenario("t.toml", &whole).unwrap(), s, "{whole}");
}

#[test]
fn swarms_anchor_half_their_faults_unless_told() {
    let s = with(&format!("{CHECKPOINTS}[swarm]\nkinds = [\"crash\"]\n")).unwrap();
    assert_eq!(s.swarm.as_ref().map(|w| w.anchored_percent), Some(50));
    let s = with("[swarm]\nkinds = [\"crash\"]\nanchored_percent = 0\n").unwrap();
    assert_eq!(s.swarm.as_ref().map(|w| w.anchored_percent), Some(0));
    assert_eq!(parse_scenario("t.toml", &scenario_to_toml(&s)).unwrap(), s);
    assert_eq!(
        err("[swarm]\nkinds = [\"crash\"]\nanchored_percent = 101\n").to_string(),
        "t.toml: `swarm.anchored_percent`: 101 is not within 0..=100"
    );
}
