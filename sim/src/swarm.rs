//! Swarm testing: the seed draws the fault mix itself (which kinds are enabled, how many
//! faults, when, how long, on which nodes), so different seeds explore different mixes.
//!
//! Times are drawn in whole milliseconds across the swarm's window. When the scenario
//! checkpoints, a share of the faults (`anchored_percent`) is placed in the checkpoint cycle
//! instead: anchored to the first checkpoint triggered at or after the drawn time, a drawn
//! offset into its barrier alignment, or to its acknowledgement (the store write before it
//! completes). Fixed times alone would land in the quiet part of the cycle most of the time:
//! a checkpoint aligns for about a fifth of its interval.

use std::time::Duration;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::fault::{
    fault_kind, Anchor, AnchorEvent, Direction, Fault, FaultKind, FaultTag, StoreFailureMode,
};
use crate::node::NodeName;
use crate::scenario::{ClusterShape, Swarm};

/// The longest offset into a checkpoint's alignment a drawn fault gets: a little over the
/// ~200 ms a checkpoint of the swarm scenarios takes from trigger to completion.
pub const MAX_ALIGNMENT_OFFSET: Duration = Duration::from_millis(250);
/// The longest offset after a checkpoint's acknowledgement a drawn fault gets: the store
/// writes it within a few milliseconds.
pub const MAX_ACKNOWLEDGED_OFFSET: Duration = Duration::from_millis(3);

/// Draws a fault plan for `seed`, sorted by time. Deterministic: same inputs, same plan.
/// `checkpoints`: whether the scenario checkpoints (only then are faults anchored to its
/// checkpoints, see the module docs).
pub fn draw(swarm: &Swarm, cluster: &ClusterShape, checkpoints: bool, seed: u64) -> Vec<Fault> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5741_524d);
    let mut kinds: Vec<&str> = swarm.kinds.iter().map(String::as_str).collect();
    kinds.shuffle(&mut rng);
    // Enable a random non-empty subset of the kinds: each seed gets its own mix.
    let enabled = rng.gen_range(1..=kinds.len().max(1));
    kinds.truncate(enabled);
    let count = rng.gen_range(swarm.min_faults..=swarm.max_faults.max(swarm.min_faults));
    let mut faults: Vec<Fault> = (0..count)
        .filter_map(|_| draw_one(&mut rng, swarm, cluster, checkpoints, &kinds))
        .collect();
    faults.sort_by_key(|f| f.at);
    faults
}

fn draw_one(
    rng: &mut ChaCha8Rng,
    swarm: &Swarm,
    cluster: &ClusterShape,
    checkpoints: bool,
    kinds: &[&str],
) -> Option<Fault> {
    let kind = *kinds.choose(rng)?;
    let at = between(rng, swarm.from, swarm.until.max(swarm.from));
    let duration = between(
        rng,
        Duration::from_millis(100),
        swarm.max_duration.max(Duration::from_millis(100)),
    );
    let tm = NodeName::TaskManager(rng.gen_range(1..=cluster.taskmanagers.max(1)));
    // Machine faults hit the external systems' nodes as well: together with probability
    // 3/(N+2) for N TaskManagers (each 1/(N+2); with 4 TaskManagers, each TaskManager gets
    // 1/8). The draw order is part of every recorded seed's plan: new draws go last.
    let external = [
        NodeName::CheckpointStore,
        NodeName::SourceLog,
        NodeName::SinkStore,
    ];
    let node = if rng.gen_ratio(external.len() as u32, cluster.taskmanagers.max(1) + 2) {
        external.choose(rng)?.clone()
    } else {
        tm.clone()
    };
    // Kinds a swarm cannot draw (validation refuses them, see `FaultKindSpec::swarm`) and names
    // of no kind draw nothing, after the draws above, as they always have.
    let kind = match fault_kind(kind).map(|k| k.tag) {
        Some(FaultTag::Crash) => FaultKind::Crash {
            target: node,
            restart_after: Some(duration),
        },
        Some(FaultTag::OomKill) => FaultKind::OomKill {
            target: tm,
            restart_after: Some(duration),
        },
        Some(FaultTag::Partition) => {
            let direction =
                *[Direction::Both, Direction::Inbound, Direction::Outbound].choose(rng)?;
            FaultKind::Partition {
                target: node,
                direction,
                heal_after: Some(duration),
            }
        }
        Some(FaultTag::LinkPartition) => {
            // Half the links cut are data-plane links between two TaskManagers; the others
            // the JobManager's link to a TaskManager or to a store.
            let data = cluster.taskmanagers > 1 && rng.gen_ratio(1, 2);
            let (from, to) = if data {
                let other = (tm.taskmanager()? % cluster.taskmanagers) + 1;
                (tm, NodeName::TaskManager(other))
            } else {
                (NodeName::JobManager, node)
            };
            FaultKind::LinkPartition {
                from,
                to,
                both_ways: rng.gen(),
                heal_after: Some(duration),
            }
        }
        Some(FaultTag::PacketLoss) => FaultKind::PacketLoss {
            rate: rng.gen_range(1..=20) as f64 / 100.0,
            duration: Some(duration),
        },
        Some(FaultTag::Latency) => {
            let min = Duration::from_millis(rng.gen_range(1..=20));
            FaultKind::Latency {
                min,
                max: min + Duration::from_millis(rng.gen_range(1..=80)),
                duration: Some(duration),
            }
        }
        Some(FaultTag::Pause) => FaultKind::Pause {
            target: node,
            duration,
        },
        // A step of up to a minute either way, as NTP or an operator makes.
        Some(FaultTag::ClockSkew) => FaultKind::ClockSkew {
            target: tm,
            offset_ms: rng.gen_range(-60_000..=60_000),
        },
        Some(FaultTag::StoreFailure) => FaultKind::StoreFailure {
            mode: *[StoreFailureMode::Fail, StoreFailureMode::Stall].choose(rng)?,
            duration,
        },
        None => return None,
    };
    // Without checkpoints nothing more is drawn, so such a swarm's plans stay as they were.
    if !checkpoints || rng.gen_range(0..100) >= swarm.anchored_percent {
        return Some(Fault::new(at, kind));
    }
    // Mostly into the barrier alignment; one in four into the store write that follows it.
    let anchor = if rng.gen_ratio(3, 4) {
        Anchor {
            event: AnchorEvent::CheckpointTriggered,
            checkpoint: None,
            offset: between(rng, Duration::ZERO, MAX_ALIGNMENT_OFFSET),
        }
    } else {
        Anchor {
            event: AnchorEvent::CheckpointAcknowledged,
            checkpoint: None,
            offset: between(rng, Duration::ZERO, MAX_ACKNOWLEDGED_OFFSET),
        }
    };
    Some(Fault::anchored(anchor, at, kind))
}

/// A duration in [lo, hi], in whole milliseconds.
fn between(rng: &mut ChaCha8Rng, lo: Duration, hi: Duration) -> Duration {
    Duration::from_millis(rng.gen_range(lo.as_millis() as u64..=hi.as_millis() as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fault::FAULT_KINDS;
    use crate::scenario::{CHECKPOINT_STORE, SINK_STORE, SOURCE_LOG};

    fn swarm() -> Swarm {
        Swarm {
            kinds: ["crash", "partition", "pause", "packet-loss", "latency"]
                .map(String::from)
                .to_vec(),
            min_faults: 1,
            max_faults: 4,
            from: Duration::from_secs(5),
            until: Duration::from_secs(20),
            max_duration: Duration::from_secs(10),
            anchored_percent: 50,
            buggify: Vec::new(),
        }
    }

    fn cluster() -> ClusterShape {
        ClusterShape {
            taskmanagers: 4,
            slots_per_taskmanager: 2,
            memory_mb: None,
        }
    }

    #[test]
    fn a_seed_draws_the_same_plan_and_seeds_differ() {
        assert_eq!(
            draw(&swarm(), &cluster(), true, 7),
            draw(&swarm(), &cluster(), true, 7)
        );
        let plans: std::collections::BTreeSet<String> = (0..20)
            .map(|s| format!("{:?}", draw(&swarm(), &cluster(), true, s)))
            .collect();
        assert!(plans.len() > 15, "seeds should explore different plans");
    }

    #[test]
    fn swarms_also_hit_the_external_systems() {
        let faults: Vec<Fault> = (0..100)
            .flat_map(|seed| draw(&swarm(), &cluster(), true, seed))
            .collect();
        for node in [
            NodeName::CheckpointStore,
            NodeName::SourceLog,
            NodeName::SinkStore,
        ] {
            assert!(
                faults.iter().any(|f| f.targets().contains(&&node)),
                "{node}"
            );
        }
    }

    #[test]
    fn drawn_faults_respect_the_swarm_bounds() {
        for seed in 0..100 {
            let plan = draw(&swarm(), &cluster(), true, seed);
            assert!((1..=4).contains(&plan.len()));
            assert!(plan.windows(2).all(|w| w[0].at <= w[1].at));
            for f in &plan {
                assert!(f.at >= Duration::from_secs(5) && f.at <= Duration::from_secs(20));
                assert!(f.duration().is_some_and(|d| d <= Duration::from_secs(10)));
                assert!(f.targets().iter().all(|t| [
                    "tm-1",
                    "tm-2",
                    "tm-3",
                    "tm-4",
                    "jm",
                    CHECKPOINT_STORE,
                    SOURCE_LOG,
                    SINK_STORE
                ]
                .iter()
                .any(|name| *t == name)));
            }
        }
    }

    #[test]
    fn with_checkpoints_some_faults_are_placed_in_the_checkpoint_cycle() {
        let plans: Vec<Fault> = (0..100)
            .flat_map(|seed| draw(&swarm(), &cluster(), true, seed))
            .collect();
        let anchored: Vec<&Anchor> = plans.iter().filter_map(|f| f.anchor.as_ref()).collect();
        // About half, by `anchored_percent`; each into a checkpoint found from its drawn time.
        assert!(
            (plans.len() / 3..plans.len() * 2 / 3).contains(&anchored.len()),
            "{} of {}",
            anchored.len(),
            plans.len()
        );
        assert!(anchored.iter().all(|a| a.checkpoint.is_none()));
        let triggered = |a: &&&Anchor| a.event == AnchorEvent::CheckpointTriggered;
        assert!(anchored.iter().filter(triggered).count() > anchored.len() / 2);
        assert!(anchored.iter().all(|a| match a.event {
            AnchorEvent::CheckpointTriggered => a.offset <= MAX_ALIGNMENT_OFFSET,
            AnchorEvent::CheckpointAcknowledged => a.offset <= MAX_ACKNOWLEDGED_OFFSET,
            _ => false,
        }));
        // Times are drawn in milliseconds, not whole seconds.
        assert!(plans.iter().any(|f| f.at.subsec_millis() != 0));
    }

    #[test]
    fn without_checkpoints_or_with_none_anchored_nothing_is_anchored_and_times_stay() {
        let none = Swarm {
            anchored_percent: 0,
            ..swarm()
        };
        for seed in 0..50 {
            let off = draw(&swarm(), &cluster(), false, seed);
            assert!(off.iter().all(|f| f.anchor.is_none()));
            assert!(draw(&none, &cluster(), true, seed)
                .iter()
                .all(|f| f.anchor.is_none()));
            // Anchoring changes where faults are placed, not how many a seed draws.
            assert_eq!(draw(&swarm(), &cluster(), true, seed).len(), off.len());
        }
    }

    #[test]
    fn a_swarm_draws_exactly_the_kinds_the_table_lets_it() {
        for row in FAULT_KINDS {
            let one = Swarm {
                kinds: vec![row.name.to_string()],
                ..swarm()
            };
            let plan: Vec<Fault> = (0..20)
                .flat_map(|s| draw(&one, &cluster(), true, s))
                .collect();
            assert_eq!(!plan.is_empty(), row.swarm, "{}", row.name);
            assert!(plan.iter().all(|f| f.kind.tag() == row.tag), "{}", row.name);
        }
    }
}
