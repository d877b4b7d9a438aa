//! Writing: every fault kind and duration back to TOML that parses to the same values.

use std::time::Duration;

use super::{ms, with};
use crate::scenario_file::*;
use crate::{Direction, Fault, FaultKind, StoreFailureMode};

fn every_kind() -> Vec<Fault> {
    let f = |at: u64, kind| Fault::new(ms(at), kind);
    vec![
        f(
            0,
            FaultKind::Crash {
                target: "tm-1".into(),
                restart_after: Some(ms(10_000)),
            },
        ),
        f(
            1_500,
            FaultKind::Crash {
                target: "jm".into(),
                restart_after: None,
            },
        ),
        f(
            2_000,
            FaultKind::OomKill {
                target: "tm-2".into(),
                restart_after: Some(ms(250)),
            },
        ),
        f(
            3_000,
            FaultKind::Partition {
                target: "tm-3".into(),
                direction: Direction::Both,
                heal_after: Some(ms(3_000)),
            },
        ),
        f(
            3_100,
            FaultKind::Partition {
                target: "tm-3".into(),
                direction: Direction::Outbound,
                heal_after: None,
            },
        ),
        f(
            4_000,
            FaultKind::LinkPartition {
                from: "jm".into(),
                to: "tm-1".into(),
                both_ways: false,
                heal_after: Some(ms(1)),
            },
        ),
        f(
            4_000,
            FaultKind::LinkPartition {
                from: "tm-2".into(),
                to: "sink-store".into(),
                both_ways: true,
                heal_after: None,
            },
        ),
        f(
            5_000,
            FaultKind::PacketLoss {
                rate: 0.05,
                duration: Some(ms(2_000)),
            },
        ),
        f(
            5_000,
            FaultKind::PacketLoss {
                rate: 1.0,
                duration: None,
            },
        ),
        f(
            6_000,
            FaultKind::Latency {
                min: ms(5),
                max: ms(50),
                duration: Some(Duration::from_micros(1_500)),
            },
        ),
        f(
            6_000,
            FaultKind::Latency {
                min: ms(0),
                max: ms(0),
                duration: None,
            },
        ),
        f(
            7_000,
            FaultKind::Pause {
                target: "tm-4".into(),
                duration: Duration::from_nanos(7),
            },
        ),
        f(
            8_000,
            FaultKind::ClockSkew {
                target: "tm-1".into(),
                offset_ms: -250,
            },
        ),
        f(
            8_000,
            FaultKind::ClockSkew {
                target: "tm-2".into(),
                offset_ms: 3_000,
            },
        ),
        f(
            9_000,
            FaultKind::StoreFailure {
                mode: StoreFailureMode::Fail,
                duration: ms(3_000),
            },
        ),
        f(
            9_500,
            FaultKind::StoreFailure {
                mode: StoreFailureMode::Stall,
                duration: ms(100),
            },
        ),
    ]
}

#[test]
fn faults_round_trip_through_toml() {
    let faults = every_kind();
    let text = faults_to_toml(&faults);
    let parsed = with(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(parsed.faults, faults, "{text}");
    assert!(text.starts_with("[[faults]]\nat = \"0s\"\nkind = \"crash\"\ntarget = \"tm-1\"\nrestart_after = \"10s\"\n"), "{text}");
    assert!(text.contains("offset = \"-250ms\""), "{text}");
    assert_eq!(faults_to_toml(&[]), "");
}

#[test]
fn durations_print_exactly() {
    assert_eq!(duration_str(ms(20_000)), "20s");
    assert_eq!(duration_str(ms(1_500)), "1500ms");
    assert_eq!(duration_str(Duration::from_micros(2_001)), "2001us");
    assert_eq!(duration_str(Duration::from_nanos(5)), "5ns");
    assert_eq!(duration_str(Duration::ZERO), "0s");
}
